//! The deploying machine's artifact cache, `target/ship/artifacts/`, kept bounded.
//!
//! Every plan stores its artifact there (`<digest>.tar.zst`, [`crate::artifact::store`]);
//! a host without zstd gets a `<digest>.tar.gz` made beside it; `delta = true` adds each
//! artifact's object list (`<digest>.objects`) and its bundles
//! (`<digest>.delta-<key>.tar.zst`, one per set of artifacts a fleet had). Nothing there is
//! needed once its artifact is old: a plan saved long ago is made again, `promote` reads an
//! artifact it lacks from a host, and delta counts a host's objects for nothing when this
//! machine no longer knows them (the whole file is sent: the correct fallback). Without
//! pruning, every deploy of a 100 MB app left 100 MB or more behind.
//!
//! [`prune`] keeps the [`KEPT_ARTIFACTS`] artifacts used last (by their file's mtime: set
//! when a plan packs or reuses it, and when it is deployed) and those the caller protects
//! (the binary: every plan saved in `target/ship/`, so `apply` of a saved plan and
//! `promote` of what a stage deployed last find theirs), with their `.tar.gz`, object list
//! and bundles; of the others it removes all but the object list, a few bytes a file, which
//! lets delta still count the objects of hosts that have them ([`KEPT_LISTS`] of those are
//! kept). An apply holds [`in_use`] (a shared lock on `.lock` here) while it runs, and
//! `prune` removes nothing while another apply holds it: the transport opens a host's file
//! when it is that host's turn, at any time in the deploy. A file being written (`.part`, a
//! packing's scratch) and an old bundle of an artifact not just deployed are removed only
//! when [`LEFT_OVER`] old; a packing first removes such left-over partial files alone
//! ([`prune_left_over`]), so that a `plan` killed while it packed leaves nothing for good.
//! Names it does not know are left alone.
//!
//! ```
//! use std::time::{Duration, SystemTime};
//!
//! let cache = tempfile::tempdir().unwrap();
//! let now = SystemTime::now();
//! for (i, d) in ["a", "b", "c"].iter().enumerate() {
//!     let file = cache.path().join(format!("{}.tar.zst", d.repeat(64)));
//!     std::fs::write(&file, b"zstd bytes").unwrap();
//!     let used = now - Duration::from_secs(3600 * (3 - i as u64));
//!     std::fs::File::options().write(true).open(&file).unwrap().set_modified(used).unwrap();
//! }
//! // Deployed `c`, keeping the one artifact used last.
//! let none = std::collections::BTreeSet::new();
//! let pruned = ship_core::cache::prune_keeping(cache.path(), &"c".repeat(64), &none, 1, now);
//! let pruned = pruned.unwrap().expect("no other apply holds the cache");
//! assert_eq!((pruned.files, pruned.bytes), (2, 20));
//! assert!(cache.path().join(format!("{}.tar.zst", "c".repeat(64))).exists());
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Artifacts kept, the ones used last (the one just deployed among them).
pub const KEPT_ARTIFACTS: usize = 10;

/// Object lists kept (`<digest>.objects`), the newest.
pub const KEPT_LISTS: usize = 100;

/// Age past which a file being written, or a bundle of an artifact that is kept but was not
/// just deployed, is taken as left over.
pub const LEFT_OVER: Duration = Duration::from_secs(3600);

/// What [`prune`] removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Files removed.
    pub files: usize,
    /// Their bytes.
    pub bytes: u64,
}

/// What a file of the cache is, by its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// `<digest>.tar.zst` or `<digest>.tar.gz`.
    Artifact,
    /// `<digest>.objects`.
    List,
    /// `<digest>.delta-<key>.tar.zst`.
    Bundle,
    /// Being written: a `.part`, a packing's scratch.
    Partial,
}

/// `<digest>.tar.zst`: the artifact, what hosts with zstd are sent.
pub fn artifact(cache: &Path, digest: &str) -> PathBuf {
    cache.join(format!("{digest}.tar.zst"))
}

/// `<digest>.tar.gz`, made from the `.tar.zst` at `zst` for hosts without zstd.
pub fn gz(zst: &Path) -> PathBuf {
    zst.with_extension("gz")
}

/// `<digest>.objects`: the object names of an artifact's files (delta).
pub fn objects_list(cache: &Path, digest: &str) -> PathBuf {
    cache.join(format!("{digest}.objects"))
}

/// `<digest>.delta-<key>.tar.zst`: the delta bundle of the artifact `digest` for hosts that
/// have the artifacts `have` (sorted; the key is the start of their sha256).
pub fn bundle(cache: &Path, digest: &str, have: &[String]) -> PathBuf {
    let key = &crate::sha256_hex(have.join(" ").as_bytes())[..16];
    cache.join(format!("{digest}.delta-{key}.tar.zst"))
}

/// Where `path` is written before it is renamed there: a name of this process's and this
/// call's own (two applies, or two bundles of one apply, may make the same file at once),
/// which [`prune`] knows as being written.
pub fn part(path: &Path) -> PathBuf {
    // Unique per call too: one apply makes several bundles (and object lists) at once.
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    path.with_file_name(format!(".{name}.{}-{n}.part", std::process::id()))
}

/// Writes `path` by `write` (buffered; flushed here, an error of it is this call's) into
/// [`part`] and renames it there: the file is whole or absent.
pub fn write_aside(
    path: &Path,
    write: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let part = part(path);
    let written = std::fs::File::create(&part)
        .and_then(|f| {
            let mut to = std::io::BufWriter::with_capacity(1 << 16, f);
            write(&mut to)?;
            to.into_inner().map_err(|e| e.into_error())?;
            Ok(())
        })
        .and_then(|()| std::fs::rename(&part, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&part);
    }
    written
}

/// The digest a file is of (none for a partial file) and its kind; `None`: not the cache's.
fn classify(name: &str) -> Option<(Option<&str>, Kind)> {
    if name.starts_with(".packing-") || name.ends_with(".part") || name.ends_with(".objects-part") {
        return Some((None, Kind::Partial));
    }
    let (digest, rest) = name.split_once('.')?;
    if !crate::is_sha256_hex(digest) {
        return None;
    }
    let kind = match rest {
        "tar.zst" | "tar.gz" => Kind::Artifact,
        "objects" => Kind::List,
        _ if rest.starts_with("delta-") && rest.ends_with(".tar.zst") => Kind::Bundle,
        _ => return None,
    };
    Some((Some(digest), kind))
}

/// Removes from `cache` only what was being written and is [`LEFT_OVER`] old (a `.part`, a
/// packing's scratch file or directory: left by a `plan` or `apply` killed while it packed
/// or wrote), as [`prune_keeping`] does too; `plan`, which packs but never prunes, calls it
/// before it packs. `None`: another apply holds the cache; nothing removed.
pub fn prune_left_over(cache: &Path, now: SystemTime) -> std::io::Result<Option<Pruned>> {
    let _lock = match exclusive(cache)? {
        Exclusive::Held(lock) => lock,
        Exclusive::Busy => return Ok(None),
        Exclusive::NoCache => return Ok(Some(Pruned::default())),
    };
    let mut pruned = Pruned::default();
    for entry in std::fs::read_dir(cache)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let (Some((_, Kind::Partial)), Ok(meta)) = (classify(&name), entry.metadata()) {
            remove_left_over(&entry.path(), &meta, now, &mut pruned);
        }
    }
    Ok(Some(pruned))
}

/// Removes the partial file or directory `path` if it is [`LEFT_OVER`] old, counting it.
fn remove_left_over(path: &Path, meta: &std::fs::Metadata, now: SystemTime, pruned: &mut Pruned) {
    let modified = meta.modified().unwrap_or(now);
    if now.duration_since(modified).unwrap_or_default() < LEFT_OVER {
        return;
    }
    let removed = if meta.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
    if removed.is_ok() {
        pruned.files += 1;
        pruned.bytes += if meta.is_dir() { 0 } else { meta.len() };
    }
}

/// The cache's lock, taken exclusive for a prune.
enum Exclusive {
    /// Taken (`None`: a file system without locks: as [`in_use`], nothing is protected,
    /// and pruning goes on as it did before there was a lock). Held while it lives.
    Held(Option<std::fs::File>),
    /// Another apply holds it.
    Busy,
    /// No cache directory: nothing to prune.
    NoCache,
}

fn exclusive(cache: &Path) -> std::io::Result<Exclusive> {
    match open_lock(cache) {
        Ok(f) => match f.try_lock() {
            Ok(()) => Ok(Exclusive::Held(Some(f))),
            Err(std::fs::TryLockError::WouldBlock) => Ok(Exclusive::Busy),
            Err(std::fs::TryLockError::Error(_)) => Ok(Exclusive::Held(None)),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Exclusive::NoCache),
        Err(e) => Err(e),
    }
}

/// The lock file an apply holds shared ([`in_use`]) and [`prune`] exclusive.
const LOCK: &str = ".lock";

/// Marks `cache` in use by an apply until the returned file is dropped: [`prune`] (another
/// apply's) removes nothing meanwhile. `None` if the lock could not be taken (no such
/// directory yet, a file system without locks): then nothing is protected, as before.
pub fn in_use(cache: &Path) -> Option<std::fs::File> {
    let file = open_lock(cache).ok()?;
    file.lock_shared().ok()?;
    Some(file)
}

/// Marks the file `path` used now (its mtime): what [`prune`] keeps the newest of.
pub fn touch(path: &Path) {
    touch_at(path, SystemTime::now());
}

fn touch_at(path: &Path, t: SystemTime) {
    if let Ok(f) = std::fs::File::options().write(true).open(path) {
        let _ = f.set_modified(t);
    }
}

/// The lock file, opened to read and write (NFSv4 refuses a shared lock on a file not open
/// for reading).
fn open_lock(cache: &Path) -> std::io::Result<std::fs::File> {
    std::fs::File::options()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(cache.join(LOCK))
}

/// [`prune_keeping`] with [`KEPT_ARTIFACTS`], after a deploy of `deployed`; `protected`:
/// digests kept whatever their age.
pub fn prune(
    cache: &Path,
    deployed: &str,
    protected: &BTreeSet<String>,
) -> std::io::Result<Option<Pruned>> {
    prune_keeping(
        cache,
        deployed,
        protected,
        KEPT_ARTIFACTS,
        SystemTime::now(),
    )
}

/// Marks the artifact `deployed` used at `now`, then removes from `cache` what the `keep`
/// artifacts used last and the `protected` ones do not need (see the module's
/// documentation). `None`: another apply holds the cache ([`in_use`]); nothing removed. A
/// file that cannot be removed is left; an unreadable cache is an error.
pub fn prune_keeping(
    cache: &Path,
    deployed: &str,
    protected: &BTreeSet<String>,
    keep: usize,
    now: SystemTime,
) -> std::io::Result<Option<Pruned>> {
    touch_at(&artifact(cache, deployed), now);
    // Held until the end of this function: an apply starting meanwhile waits for it.
    let _lock = match exclusive(cache)? {
        Exclusive::Held(lock) => lock,
        Exclusive::Busy => return Ok(None),
        Exclusive::NoCache => return Ok(Some(Pruned::default())),
    };
    struct File {
        name: String,
        digest: Option<String>,
        kind: Kind,
        modified: SystemTime,
        bytes: u64,
    }
    let mut pruned = Pruned::default();
    let mut files = Vec::new();
    let listing = std::fs::read_dir(cache)?;
    for entry in listing {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some((digest, kind)) = classify(&name) else {
            continue;
        };
        let Ok(meta) = entry.metadata() else {
            continue;
        };
        if meta.is_dir() && kind == Kind::Partial {
            remove_left_over(&entry.path(), &meta, now, &mut pruned);
            continue;
        }
        if !meta.is_file() {
            continue;
        }
        files.push(File {
            digest: digest.map(str::to_owned),
            name,
            kind,
            modified: meta.modified().unwrap_or(now),
            bytes: meta.len(),
        });
    }
    // An artifact's last use: its newest file (the .tar.zst is marked when deployed).
    let mut used: BTreeMap<&str, SystemTime> = BTreeMap::new();
    for f in files.iter().filter(|f| f.kind == Kind::Artifact) {
        let d = f.digest.as_deref().unwrap_or_default();
        let t = used.entry(d).or_insert(f.modified);
        *t = (*t).max(f.modified);
    }
    let mut by_use: Vec<(SystemTime, &str)> = used.iter().map(|(d, t)| (*t, *d)).collect();
    // Newest first; the same time, by digest (the same files, the same choice).
    by_use.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    let mut kept: BTreeSet<&str> = by_use.iter().take(keep).map(|(_, d)| *d).collect();
    kept.insert(deployed);
    kept.extend(protected.iter().map(String::as_str));
    let mut lists: Vec<(SystemTime, &str)> = files
        .iter()
        .filter(|f| f.kind == Kind::List)
        .map(|f| (f.modified, f.name.as_str()))
        .collect();
    lists.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    let kept_lists: BTreeSet<&str> = lists.iter().take(KEPT_LISTS).map(|(_, n)| *n).collect();
    let old = |f: &File| now.duration_since(f.modified).unwrap_or_default() >= LEFT_OVER;
    for f in &files {
        let of_kept = f.digest.as_deref().is_some_and(|d| kept.contains(d));
        let remove = match f.kind {
            Kind::Artifact => !of_kept,
            Kind::List => !of_kept && !kept_lists.contains(f.name.as_str()),
            Kind::Bundle => !of_kept || (f.digest.as_deref() != Some(deployed) && old(f)),
            Kind::Partial => old(f),
        };
        if remove && std::fs::remove_file(cache.join(&f.name)).is_ok() {
            pruned.files += 1;
            pruned.bytes += f.bytes;
        }
    }
    Ok(Some(pruned))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(path: &Path, t: SystemTime) {
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(t)
            .unwrap();
    }

    /// The names in `dir`, sorted.
    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// A packing's scratch directory with a spilled file, last changed at `t`.
    fn scratch_dir(dir: &Path, t: SystemTime) {
        std::fs::create_dir(dir).unwrap();
        std::fs::write(dir.join("0"), "x").unwrap();
        std::fs::File::open(dir).unwrap().set_modified(t).unwrap();
    }

    /// What a killed packing or write left is removed once old, and nothing else: a fresh
    /// partial file or directory (another packing's, going on), artifacts however old, names
    /// not of the cache; while an apply holds the cache, nothing.
    #[test]
    fn prune_left_over_removes_only_old_partial_files() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000_000);
        let old = now - LEFT_OVER;
        let zst = format!("{}.tar.zst", "a".repeat(64));
        for (name, t) in [
            (".packing-7.tar", old),
            (".packing-8.tar", now),
            (".x.tar.zst.1-0.part", old),
            (zst.as_str(), old),
            ("notes.txt", old),
        ] {
            std::fs::write(cache.join(name), name).unwrap();
            at(&cache.join(name), t);
        }
        for (d, t) in [(".packing-9-0.d", old), (".packing-9-1.d", now)] {
            scratch_dir(&cache.join(d), t);
        }
        let busy = in_use(cache).unwrap();
        assert_eq!(prune_left_over(cache, now).unwrap(), None);
        drop(busy);
        let pruned = prune_left_over(cache, now).unwrap().unwrap();
        assert_eq!(pruned.files, 3);
        let left = names(cache);
        let mut expected = vec![
            ".packing-8.tar".to_owned(),
            ".packing-9-1.d".to_owned(),
            zst,
            "notes.txt".to_owned(),
            LOCK.to_owned(),
        ];
        expected.sort();
        assert_eq!(left, expected);
        // No cache yet: nothing to do, and none made.
        let absent = cache.join("absent");
        assert_eq!(
            prune_left_over(&absent, now).unwrap(),
            Some(Pruned::default())
        );
        assert!(!absent.exists());
    }

    /// The artifacts used last stay with all their files; the others go but for their
    /// object lists; a kept artifact's old bundles, and old partial files, go; a bundle or
    /// a partial file of now (another deploy's) stays; names not of the cache stay.
    #[test]
    fn prune_keeps_what_the_artifacts_used_last_need() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000_000);
        let hours = |h: u64| now - Duration::from_secs(3600 * h);
        let d = |c: char| c.to_string().repeat(64);
        let write = |name: &str, t: SystemTime| {
            std::fs::write(cache.join(name), name).unwrap();
            at(&cache.join(name), t);
        };
        // a: deployed now, though packed long ago; b: used an hour ago; c, e: older.
        for (c, h) in [('a', 50), ('b', 1), ('c', 10), ('e', 20)] {
            write(&format!("{}.tar.zst", d(c)), hours(h));
            write(&format!("{}.objects", d(c)), hours(h));
        }
        write(&format!("{}.tar.gz", d('e')), hours(20));
        write(
            &format!("{}.delta-0123456789abcdef.tar.zst", d('a')),
            hours(30),
        );
        write(
            &format!("{}.delta-1111111111111111.tar.zst", d('b')),
            hours(2),
        );
        write(&format!("{}.delta-2222222222222222.tar.zst", d('b')), now);
        write(&format!("{}.delta-3333333333333333.tar.zst", d('c')), now);
        write(".packing-12.tar", hours(2));
        // A packing's scratch directory, left by one killed (its spilled files); a new one
        // is another packing's, going on.
        for (dir, h) in [(".packing-13.d", hours(2)), (".packing-14.d", now)] {
            scratch_dir(&cache.join(dir), h);
        }
        write(&format!(".{}.tar.zst.part", d('b')), now);
        write("notes.txt", hours(99));
        let none = BTreeSet::new();
        let pruned = prune_keeping(cache, &d('a'), &none, 2, now)
            .unwrap()
            .unwrap();
        let left = names(cache);
        let mut expected = vec![
            format!("{}.tar.zst", d('a')),
            format!("{}.objects", d('a')),
            format!("{}.delta-0123456789abcdef.tar.zst", d('a')),
            format!("{}.tar.zst", d('b')),
            format!("{}.objects", d('b')),
            format!("{}.delta-2222222222222222.tar.zst", d('b')),
            format!("{}.objects", d('c')),
            format!("{}.objects", d('e')),
            format!(".{}.tar.zst.part", d('b')),
            ".packing-14.d".to_owned(),
            "notes.txt".to_owned(),
            LOCK.to_owned(),
        ];
        expected.sort();
        assert_eq!(left, expected);
        // c's and e's artifacts, e's .tar.gz, b's old bundle, c's bundle, the scratch file
        // and the old scratch directory.
        assert_eq!(pruned.files, 7);
        // Used now: the next prune keeps it before b.
        let later = now + Duration::from_secs(1);
        let again = prune_keeping(cache, &d('b'), &none, 1, later)
            .unwrap()
            .unwrap();
        assert_eq!(again.files, 1 + 1); // a's artifact and its bundle
        assert!(cache.join(format!("{}.objects", d('a'))).exists());
        // While another apply holds the cache, nothing is removed; a protected digest
        // (a saved plan's) stays whatever its age.
        write(&format!("{}.tar.zst", d('c')), hours(40));
        let busy = in_use(cache).unwrap();
        assert_eq!(
            prune_keeping(cache, &d('b'), &none, 1, later).unwrap(),
            None
        );
        drop(busy);
        let protected = BTreeSet::from([d('c')]);
        let kept = prune_keeping(cache, &d('b'), &protected, 1, later)
            .unwrap()
            .unwrap();
        assert_eq!(kept.files, 0);
        assert!(cache.join(format!("{}.tar.zst", d('c'))).exists());
    }

    #[test]
    fn names_not_of_the_cache_are_not_classified() {
        let d = "f".repeat(64);
        assert_eq!(
            classify(&format!("{d}.tar.zst")),
            Some((Some(d.as_str()), Kind::Artifact))
        );
        assert_eq!(classify("abc.tar.zst"), None);
        assert_eq!(classify(&format!("{d}.tar.xz")), None);
        assert_eq!(
            classify(&format!("{d}.delta-x.tar.zst")),
            Some((Some(d.as_str()), Kind::Bundle))
        );
        assert_eq!(
            classify(&format!("{d}.delta-x.tar.part")).map(|c| c.1),
            Some(Kind::Partial)
        );
        assert_eq!(classify("README"), None);
    }
}
