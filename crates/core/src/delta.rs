//! Delta uploads (`delta = true`): what a host is sent when it keeps a content-addressed
//! store of files, `.ship/objects/<sha256>.<mode>`, and each release is made of hard links
//! to it. Reads the artifacts kept in `target/ship/artifacts/` (I/O: only the driver calls
//! it); the host's side is the shell of `protocol::delta_*` and the layouts' `extract`.
//!
//! The bundle sent is a zstd-compressed tar, unpacked in the host's `.ship/`:
//!
//! - `objects/<sha256>.<mode>`: each regular file of the artifact the host lacks (by the
//!   artifacts it said it has, `state have <digest>`), mtime the artifact's fixed one;
//! - `artifacts/<digest>.skel.tar`: the artifact's tar with every regular file replaced by
//!   a hard link to `.ship/objects/<sha256>.<mode>` (directories and symlinks as they are);
//!   unpacked with the release's path put before every name, it makes the release;
//! - `artifacts/<digest>.sums`: `sha256sum -c` lines (run in `.ship/objects`) for every
//!   object the release uses and for the skeleton (the manifest of the release);
//! - `artifacts/<digest>.new`: the same lines for the objects in this bundle and the
//!   skeleton, checked on arrival (objects kept from earlier are checked not to have been
//!   written since: their mtime is still the artifact's fixed one).

use crate::artifact::FIXED_MTIME;
use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};

/// One regular file of an artifact: its object name, `<sha256>.<mode>`.
fn object_name(sha: &str, mode: u32) -> String {
    format!("{sha}.{mode:o}")
}

/// Why a bundle could not be made.
#[derive(Debug, thiserror::Error)]
#[error("making the delta of the artifact {path}: {message}")]
pub struct DeltaError {
    path: PathBuf,
    message: String,
}

fn err(path: &Path) -> impl Fn(std::io::Error) -> DeltaError + '_ {
    move |e| DeltaError {
        path: path.to_owned(),
        message: e.to_string(),
    }
}

/// The tar in the artifact `path` (`.tar.zst`), read as it is unpacked: never whole in
/// memory (an artifact may be 500 MB), one file at a time.
fn open_tar(path: &Path) -> Result<tar::Archive<impl Read>, DeltaError> {
    let file = std::fs::File::open(path).map_err(err(path))?;
    let tar = zstd::stream::read::Decoder::new(file).map_err(err(path))?;
    Ok(tar::Archive::new(tar))
}

/// The object names of the regular files of the artifact `path`.
fn objects_of(path: &Path) -> Result<BTreeSet<String>, DeltaError> {
    let mut names = BTreeSet::new();
    let mut archive = open_tar(path)?;
    for entry in archive.entries().map_err(err(path))? {
        let mut entry = entry.map_err(err(path))?;
        if entry.header().entry_type().is_file() {
            let mode = entry.header().mode().map_err(err(path))? & 0o7777;
            let mut data = Vec::new();
            entry.read_to_end(&mut data).map_err(err(path))?;
            names.insert(object_name(&crate::sha256_hex(&data), mode));
        }
    }
    Ok(names)
}

/// The object names of the artifact `digest` kept in `cache`, from its list
/// `<digest>.objects` (written the first time: an artifact is the same bytes forever, so
/// a later deploy does not unpack and hash it again); none when it is not kept here.
fn kept_objects(cache: &Path, digest: &str) -> Result<BTreeSet<String>, DeltaError> {
    let list = crate::cache::objects_list(cache, digest);
    if let Ok(text) = std::fs::read_to_string(&list) {
        return Ok(text.lines().map(str::to_owned).collect());
    }
    let base = crate::cache::artifact(cache, digest);
    if !base.is_file() {
        return Ok(BTreeSet::new());
    }
    let names = objects_of(&base)?;
    write_list(&list, &names);
    Ok(names)
}

/// Writes an artifact's object list aside and renames it (a list is only a cache: a
/// failure to write it is not one of the deploy's).
fn write_list<'a>(list: &Path, names: impl IntoIterator<Item = &'a String>) {
    let text: String = names.into_iter().map(|n| format!("{n}\n")).collect();
    let _ = crate::cache::write_aside(list, |f| std::io::Write::write_all(f, text.as_bytes()));
}

/// A bundle made in memory, and what it holds (the tests').
#[cfg(test)]
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Bundle {
    /// The bundle, zstd-compressed.
    pub(crate) bytes: Vec<u8>,
    /// Objects sent.
    pub(crate) sent: usize,
    /// Objects the release uses.
    pub(crate) objects: usize,
}

/// The bundle for a host that has the artifacts `have` (digests; those not kept in `cache`,
/// `target/ship/artifacts/`, count for nothing: their objects are sent), to make the
/// artifact `artifact` (`<cache>/<digest>.tar.zst`, of sha256 `digest`).
#[cfg(test)]
pub(crate) fn bundle(
    artifact: &Path,
    digest: &str,
    cache: &Path,
    have: &[String],
) -> Result<Bundle, DeltaError> {
    let (bytes, sent, objects) = bundle_into(artifact, digest, cache, have, Vec::new())?;
    Ok(Bundle {
        bytes,
        sent,
        objects,
    })
}

/// [`bundle`], written to `to` (zstd-compressed as it is made): `to`, the objects sent and
/// the objects the release uses. An artifact that does not unpack to `digest` (changed or
/// damaged since the plan) is an error: no bundle is made from it.
pub(crate) fn bundle_into<W: std::io::Write>(
    artifact: &Path,
    digest: &str,
    cache: &Path,
    have: &[String],
    to: W,
) -> Result<(W, usize, usize), DeltaError> {
    let mut present = BTreeSet::new();
    for d in have {
        if d == digest || !crate::is_sha256_hex(d) {
            continue;
        }
        present.extend(kept_objects(cache, d)?);
    }
    // The bundle is written as the artifact is read, compressed as it goes: what it holds
    // in memory is its compressed bytes and one file at a time, not the artifact.
    let encoder = zstd::stream::write::Encoder::new(to, 3).map_err(err(artifact))?;
    let mut out = tar::Builder::new(encoder);
    let add = |out: &mut tar::Builder<_>, path: String, mode: u32, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mtime(FIXED_MTIME);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mode(mode);
        h.set_size(data.len() as u64);
        out.append_data(&mut h, path, data).map_err(err(artifact))
    };
    let mut skel = tar::Builder::new(Vec::new());
    // Every object's name; those the host lacks are in the bundle once, as they come.
    let mut objects: BTreeSet<String> = BTreeSet::new();
    let mut sent = 0;
    let file = std::fs::File::open(artifact).map_err(err(artifact))?;
    let tar = crate::artifact::Counting::new(
        zstd::stream::read::Decoder::new(file).map_err(err(artifact))?,
    );
    let mut archive = tar::Archive::new(tar);
    for entry in archive.entries().map_err(err(artifact))? {
        let mut entry = entry.map_err(err(artifact))?;
        let mut header = entry.header().clone();
        if header.entry_type().is_file() {
            let mode = header.mode().map_err(err(artifact))? & 0o7777;
            let mut data = Vec::new();
            entry.read_to_end(&mut data).map_err(err(artifact))?;
            let name = object_name(&crate::sha256_hex(&data), mode);
            let path = entry.path().map_err(err(artifact))?.into_owned();
            header.set_entry_type(tar::EntryType::Link);
            header.set_size(0);
            skel.append_link(&mut header, &path, format!(".ship/objects/{name}"))
                .map_err(err(artifact))?;
            if !present.contains(&name) && !objects.contains(&name) {
                add(&mut out, format!("objects/{name}"), mode, &data)?;
                sent += 1;
            }
            objects.insert(name);
        } else {
            let path = entry.path().map_err(err(artifact))?.into_owned();
            match entry.link_name().map_err(err(artifact))? {
                Some(target) => {
                    let target = target.into_owned();
                    skel.append_link(&mut header, &path, &target)
                        .map_err(err(artifact))?;
                }
                None => skel
                    .append_data(&mut header, &path, std::io::empty())
                    .map_err(err(artifact))?,
            }
        }
    }
    // The rest of the tar (its end blocks) hashed too: the whole must be the plan's.
    let mut tar = archive.into_inner();
    std::io::copy(&mut tar, &mut std::io::sink()).map_err(err(artifact))?;
    let read = tar.sha256();
    if read != digest {
        return Err(DeltaError {
            path: artifact.to_owned(),
            message: format!("it unpacks to sha256 {read}, not the plan's {digest}"),
        });
    }
    let skel = skel.into_inner().map_err(err(artifact))?;
    write_list(&crate::cache::objects_list(cache, digest), &objects);
    let skel_line = format!(
        "{}  ../artifacts/{digest}.skel.tar\n",
        crate::sha256_hex(&skel)
    );
    let line = |name: &str| format!("{}  {name}\n", &name[..64]);
    let mut sums = String::new();
    let mut new = String::new();
    for name in &objects {
        sums.push_str(&line(name));
        if !present.contains(name) {
            new.push_str(&line(name));
        }
    }
    sums.push_str(&skel_line);
    new.push_str(&skel_line);
    add(
        &mut out,
        format!("artifacts/{digest}.skel.tar"),
        0o644,
        &skel,
    )?;
    add(
        &mut out,
        format!("artifacts/{digest}.sums"),
        0o644,
        sums.as_bytes(),
    )?;
    add(
        &mut out,
        format!("artifacts/{digest}.new"),
        0o644,
        new.as_bytes(),
    )?;
    let to = out
        .into_inner()
        .and_then(|encoder| encoder.finish())
        .map_err(err(artifact))?;
    Ok((to, sent, objects.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn artifact(dir: &Path, files: &[(&str, &[u8])]) -> (PathBuf, String) {
        let src = dir.join("src");
        let _ = std::fs::remove_dir_all(&src);
        for (name, data) in files {
            let p = src.join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, data).unwrap();
        }
        let tar = crate::artifact::tar_of_dir(&src).unwrap();
        let digest = crate::sha256_hex(&tar);
        let (path, _) = crate::artifact::store(dir, &digest, &tar).unwrap();
        (path, digest)
    }

    fn members(bundle: &Bundle) -> BTreeMap<String, Vec<u8>> {
        let tar = crate::artifact::decompress(&bundle.bytes).unwrap();
        let mut a = tar::Archive::new(&tar[..]);
        a.entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let mut d = Vec::new();
                e.read_to_end(&mut d).unwrap();
                (e.path().unwrap().display().to_string(), d)
            })
            .collect()
    }

    #[test]
    fn only_the_objects_a_host_lacks_are_sent() {
        let dir = tempfile::tempdir().unwrap();
        let big = vec![7u8; 100_000];
        let (_, v1) = artifact(dir.path(), &[("big.bin", &big), ("a.txt", b"one")]);
        let (p2, v2) = artifact(dir.path(), &[("big.bin", &big), ("a.txt", b"two")]);
        let full = bundle(&p2, &v2, dir.path(), &[]).unwrap();
        let delta = bundle(&p2, &v2, dir.path(), std::slice::from_ref(&v1)).unwrap();
        assert_eq!((full.sent, full.objects), (2, 2));
        assert_eq!((delta.sent, delta.objects), (1, 2));
        let m = members(&delta);
        let two = format!("objects/{}.644", crate::sha256_hex(b"two"));
        assert_eq!(m[&two], b"two");
        assert_eq!(m.keys().filter(|k| k.starts_with("objects/")).count(), 1);
        // The manifest names both objects and the skeleton; the new list only what came.
        let sums = String::from_utf8(m[&format!("artifacts/{v2}.sums")].clone()).unwrap();
        assert_eq!(sums.lines().count(), 3, "{sums}");
        let new = String::from_utf8(m[&format!("artifacts/{v2}.new")].clone()).unwrap();
        assert_eq!(new.lines().count(), 2, "{new}");
        // Same inputs, same bytes.
        assert_eq!(
            delta,
            bundle(&p2, &v2, dir.path(), std::slice::from_ref(&v1)).unwrap()
        );
    }

    /// Runs the real `upload` step of a delta plan in `sh` on a deploy directory, with
    /// `bundle` on its standard input.
    fn upload(deploy_to: &Path, digest: &str, bundle: &[u8]) -> std::process::Output {
        use std::io::Write;
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("set -eu\n{}", crate::protocol::delta_upload_step()))
            .env("SHIP_DEPLOY_TO", deploy_to)
            .env("SHIP_DIGEST", digest)
            .env("SHIP_HOST", "h1")
            .env(
                "SHIP_ARTIFACT",
                deploy_to.join(format!(".ship/artifacts/{digest}.tar.gz")),
            )
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(format!("store {}\n", bundle.len()).as_bytes())
            .unwrap();
        stdin.write_all(bundle).unwrap();
        drop(stdin);
        child.wait_with_output().unwrap()
    }

    /// The bundle with one object's bytes changed (damaged on the way, or on the disk
    /// between its arrival and its check).
    fn damaged(bundle: &Bundle) -> Vec<u8> {
        let mut out = tar::Builder::new(Vec::new());
        for (path, mut data) in members(bundle) {
            if path.starts_with("objects/") {
                data[0] ^= 1;
            }
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o644);
            h.set_size(data.len() as u64);
            out.append_data(&mut h, &path, &data[..]).unwrap();
        }
        zstd::bulk::compress(&out.into_inner().unwrap(), 3).unwrap()
    }

    #[test]
    fn the_host_refuses_an_object_without_its_sha256_and_links_nothing() {
        if std::process::Command::new("zstd")
            .arg("--version")
            .output()
            .is_err()
        {
            return; // the host's side needs zstd, as a host sent bundles has it
        }
        let dir = tempfile::tempdir().unwrap();
        let (p, d) = artifact(dir.path(), &[("a.txt", b"hello"), ("b/c.txt", b"world")]);
        let b = bundle(&p, &d, dir.path(), &[]).unwrap();
        let host = dir.path().join("host");
        std::fs::create_dir_all(host.join(".ship/artifacts")).unwrap();

        let out = upload(&host, &d, &damaged(&b));
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("do not have their sha256"), "{err}");
        // Nothing is left to be linked: no object, no skeleton, no manifest.
        assert_eq!(
            std::fs::read_dir(host.join(".ship/objects"))
                .unwrap()
                .count(),
            0
        );
        assert!(!host.join(format!(".ship/artifacts/{d}.sums")).exists());
        assert!(!host.join(format!(".ship/artifacts/{d}.skel.tar")).exists());

        // The same bundle undamaged is taken: its objects kept, the manifest checked.
        let out = upload(&host, &d, &b.bytes);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        assert_eq!(
            std::fs::read_dir(host.join(".ship/objects"))
                .unwrap()
                .count(),
            2
        );
        assert!(host.join(format!(".ship/artifacts/{d}.sums")).exists());
        assert!(!host.join(format!(".ship/artifacts/{d}.new")).exists());
    }

    #[test]
    fn an_unknown_or_malformed_base_counts_for_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (p, d) = artifact(dir.path(), &[("a.txt", b"x")]);
        let b = bundle(&p, &d, dir.path(), &["f".repeat(64), "../x".to_owned()]).unwrap();
        assert_eq!(b.sent, 1);
    }

    /// A kept artifact that no longer unpacks to the plan's digest (changed or damaged since
    /// the plan) makes no bundle: the error names both sums.
    #[test]
    fn no_bundle_is_made_from_an_artifact_that_is_not_the_plans() {
        let dir = tempfile::tempdir().unwrap();
        let (p, d) = artifact(dir.path(), &[("a.txt", b"x")]);
        let other = "0".repeat(64);
        let e = bundle(&p, &other, dir.path(), &[]).unwrap_err().to_string();
        assert!(
            e.contains(&format!("unpacks to sha256 {d}, not the plan's {other}")),
            "{e}"
        );
    }
}
