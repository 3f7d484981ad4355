//! The `build` phase: the artifact as a reproducible tarball, and its digest.
//!
//! This is the one part of ship-core that does local I/O (it runs `git` and the `build`
//! commands, and reads files). It runs before planning: the planner receives the
//! [`ArtifactInfo`] as an input.
//!
//! Every source is repacked the same way: entries sorted by path, mtime fixed at
//! 2000-01-01, uid/gid 0, no user or group names, modes reduced to 0644/0755. The digest is
//! the sha256 of that uncompressed tar, so the same content gives the same digest whatever
//! the compression. Entries that could escape the release directory (absolute paths, `..`,
//! hard links, devices) are refused, and so is every symlink whose target, resolved against
//! the artifact's own entries (following chains of links, [`MAX_LINK_HOPS`] at most), lands
//! outside the release: `a -> .` and `b -> a/..` each read harmless as text, and `b` is
//! the release's parent. An entry under a symlink of the artifact is refused too
//! (unpacking it would write through the link).
//!
//! # What a build ships
//!
//! A `git` source with build commands is built in a tree of its own: [`export`] writes the
//! commit's files to `target/ship/build/<stage>`, the commands run there, and the artifact
//! is that tree as the build left it ([`Packing::tree`]): the commit's files and everything
//! the build wrote or changed, ignored by git or not (`dist/`, `build/`, `.next/`, compiled
//! assets) — build once, ship the build. What a build installs or caches there does not
//! ship unless the commit has it ([`LEFT_BEHIND`]: `node_modules`, `__pycache__`,
//! `.next/cache`): the hosts install their own dependencies. Nothing of the working tree
//! that the commit lacks gets in (a local `.env`, an old `dist/`), and the same commit and
//! build give the same artifact wherever it is built.
//!
//! The tar is stored zstd-compressed, `<cache>/<digest>.tar.zst`, which is what hosts with
//! `zstd` are sent; [`gz_of`] makes the `.tar.gz` for a host without it, when one needs it.

use crate::config::SourceConfig;
use crate::plan::ArtifactInfo;
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The mtime of every entry: 2000-01-01T00:00:00Z (zip-based tools refuse dates before 1980).
pub const FIXED_MTIME: u64 = 946_684_800;

/// Why the artifact could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArtifactError {
    /// A git command failed.
    #[error("`{command}` failed: {stderr}")]
    Git {
        /// The command.
        command: String,
        /// What git said.
        stderr: String,
    },
    /// A `build` command failed.
    #[error("build command `{command}` failed ({status})")]
    Build {
        /// The command.
        command: String,
        /// How it ended.
        status: String,
    },
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The tree a `git` source was built in is gone, or was made from another commit than
    /// the one the source names now.
    #[error("{}: {reason}; run `cargo ship plan` again", tree.display())]
    Stale {
        /// The tree.
        tree: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// An `archive` source is not what it should be (not fetched, not the sha256 given).
    #[error("source.archive {archive}: {reason}")]
    Archive {
        /// The file or URL.
        archive: String,
        /// What is wrong.
        reason: String,
    },
    /// An entry that could escape the release directory.
    #[error("refusing artifact entry `{entry}`: {reason}")]
    Unsafe {
        /// The entry's path.
        entry: String,
        /// Why.
        reason: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ArtifactError + '_ {
    move |source| ArtifactError::Io {
        path: path.to_owned(),
        source,
    }
}

/// One entry of the artifact.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Entry {
    Dir,
    File {
        data: Vec<u8>,
        executable: bool,
    },
    /// A regular file left on disk (a directory's, or one of a tar spilled by [`Spill`]):
    /// its bytes are streamed into the tar when it is written, never read into memory whole.
    OnDisk {
        path: PathBuf,
        size: u64,
        executable: bool,
    },
    Symlink(String),
}

/// An artifact built and stored in the cache directory.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Built {
    /// What the plan records about it.
    pub info: ArtifactInfo,
    /// The zstd-compressed tarball, `<cache>/<digest>.tar.zst` ([`gz_of`] makes its
    /// `.tar.gz`).
    pub path: PathBuf,
}

/// Runs the `build` commands in `root`, packs `source`, and stores the tarball in `cache`.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use ship_core::{SourceConfig, artifact};
/// let project = tempfile::tempdir()?;
/// std::fs::create_dir(project.path().join("dist"))?;
/// std::fs::write(project.path().join("dist/index.html"), "<h1>hi</h1>")?;
/// let cache = project.path().join("target/ship/artifacts");
/// let source = SourceConfig::Dir("dist".into());
/// let a = artifact::build(project.path(), &source, &[], &cache)?;
/// let b = artifact::build(project.path(), &source, &[], &cache)?;
/// assert_eq!(a.info.digest, b.info.digest); // reproducible
/// assert!(a.path.exists());
/// # Ok(()) }
/// ```
pub fn build(
    root: &Path,
    source: &SourceConfig,
    build_commands: &[String],
    cache: &Path,
) -> Result<Built, ArtifactError> {
    build_with(
        root,
        &Packing {
            content: Content::Source(source),
            build: build_commands,
            extras: &[],
            tree: None,
        },
        cache,
    )
}

/// What an artifact is made of: its main content, the commands run before packing it, and
/// extra files adapters add (a wheelhouse, say).
#[derive(Clone, Copy, Debug)]
pub struct Packing<'a> {
    /// The main content.
    pub content: Content<'a>,
    /// Commands run with `sh -c` in the project's root before anything is packed.
    pub build: &'a [String],
    /// More files or directories, packed after the content (they win on a clash).
    pub extras: &'a [Extra],
    /// Where the build ran when not in the project's root: the tree [`export`] made of a
    /// `git` source. A `git` source is then packed from it (the commit's files and what the
    /// build wrote, see [`LEFT_BEHIND`]), and [`Content::Paths`] are read from it only (a
    /// path neither in the commit nor written by the build is an error: nothing of the
    /// working tree gets in), with the tree's commit as the artifact's revision.
    pub tree: Option<&'a Path>,
}

/// What a build leaves in its tree that ships only if the commit has it: the dependencies
/// it installed (each host installs its own, or the app bundles them) and its caches.
/// Each is a path, matched at any depth (`a/node_modules/x` is left behind).
pub const LEFT_BEHIND: &[&str] = &["node_modules", "__pycache__", ".next/cache"];

/// Whether `path` (of a built tree) is, or lies under, one of [`LEFT_BEHIND`].
fn left_behind(path: &str) -> bool {
    LEFT_BEHIND.iter().any(|p| {
        path == *p
            || path.starts_with(&format!("{p}/"))
            || path.ends_with(&format!("/{p}"))
            || path.contains(&format!("/{p}/"))
    })
}

/// Makes `tree` a clean copy of the project's files at `rev` (what `source = { git = rev }`
/// packs), removing what a previous build left there, and records the commit beside it
/// (`<tree>.commit`); returns the commit. The build commands then run in `tree`.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use ship_core::{Content, Packing, artifact};
/// use ship_core::SourceConfig;
/// let project = tempfile::tempdir()?;
/// let git = |args: &[&str]| std::process::Command::new("git").args(args)
///     .current_dir(project.path()).env("GIT_AUTHOR_NAME", "t").env("GIT_AUTHOR_EMAIL", "t@t")
///     .env("GIT_COMMITTER_NAME", "t").env("GIT_COMMITTER_EMAIL", "t@t").output();
/// std::fs::write(project.path().join(".gitignore"), "dist/\n")?;
/// std::fs::write(project.path().join("app.js"), "console.log(1)")?;
/// git(&["init", "-q"])?;
/// git(&["add", "-A"])?;
/// git(&["commit", "-qm", "v1"])?;
/// std::fs::write(project.path().join("secret.env"), "KEY=1")?; // never committed
///
/// let tree = project.path().join("target/ship/build/staging");
/// artifact::export(project.path(), "HEAD", &tree)?;
/// assert!(tree.join("app.js").is_file() && !tree.join("secret.env").exists());
/// let build = ["mkdir -p dist node_modules/x && echo built > dist/app.js".to_owned()];
/// artifact::run_commands(&tree, &build)?;
///
/// let source = SourceConfig::Git("HEAD".into());
/// let packing = Packing { content: Content::Source(&source), build: &[], extras: &[], tree: Some(&tree) };
/// let built = artifact::build_with(project.path(), &packing, &project.path().join("cache"))?;
/// assert_eq!(built.info.source, "git HEAD + built dist/"); // dist/ ships, node_modules/ does not
/// assert_eq!(built.info.entries, 4); // .gitignore, app.js, dist/, dist/app.js
/// # Ok(()) }
/// ```
pub fn export(root: &Path, rev: &str, tree: &Path) -> Result<String, ArtifactError> {
    let mut spill = Spill::to(scratch_beside(tree));
    let (entries, commit) = git_archive(root, rev, |tar| read_tar(tar, &mut spill))?;
    check_links(&entries)?;
    if std::fs::symlink_metadata(tree).is_ok() {
        std::fs::remove_dir_all(tree).map_err(io(tree))?;
    }
    std::fs::create_dir_all(tree).map_err(io(tree))?;
    for (path, entry) in &entries {
        let to = tree.join(path);
        if let Some(dir) = to.parent() {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
        match entry {
            Entry::Dir => std::fs::create_dir_all(&to).map_err(io(&to))?,
            Entry::File { data, executable } => {
                std::fs::write(&to, data).map_err(io(&to))?;
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    let mode = if *executable { 0o755 } else { 0o644 };
                    std::fs::set_permissions(&to, std::fs::Permissions::from_mode(mode))
                        .map_err(io(&to))?;
                }
            }
            // A file of the archive spilled to disk is moved (copied across file systems).
            Entry::OnDisk {
                path: from,
                executable,
                ..
            } => {
                if std::fs::rename(from, &to).is_err() {
                    std::fs::copy(from, &to).map_err(io(&to))?;
                }
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    let mode = if *executable { 0o755 } else { 0o644 };
                    std::fs::set_permissions(&to, std::fs::Permissions::from_mode(mode))
                        .map_err(io(&to))?;
                }
            }
            Entry::Symlink(target) => {
                #[cfg(unix)]
                std::os::unix::fs::symlink(target, &to).map_err(io(&to))?;
                #[cfg(not(unix))]
                return Err(ArtifactError::Unsafe {
                    entry: path.clone(),
                    reason: format!("symlinks (to {target}) need a unix system"),
                });
            }
        }
    }
    let record = commit_file(tree);
    std::fs::write(&record, format!("{commit}\n")).map_err(io(&record))?;
    Ok(commit)
}

/// Where [`export`] records the commit a tree was made from: `<tree>.commit`.
fn commit_file(tree: &Path) -> PathBuf {
    let mut name = tree.file_name().unwrap_or_default().to_owned();
    name.push(".commit");
    tree.with_file_name(name)
}

/// The entries of a tree [`export`] made of `rev` and a build then ran in: the commit's
/// files and what the build wrote or changed (not [`LEFT_BEHIND`]); with the commit and
/// the top-level paths the build added or changed, for the artifact's label.
#[allow(clippy::type_complexity)]
fn read_built(
    root: &Path,
    rev: &str,
    tree: &Path,
) -> Result<(Vec<(String, Entry)>, String, Vec<String>), ArtifactError> {
    let stale = |reason: String| ArtifactError::Stale {
        tree: tree.to_owned(),
        reason,
    };
    // The commit's entries, each file by its size and sha256: what the build changed is
    // told from them without holding the commit's files.
    let (source, commit) = git_archive(root, rev, |tar| {
        read_tar_with(tar, &mut |size, executable, from| {
            let mut hasher = Sha256::new();
            std::io::copy(from, &mut hasher).map_err(io(Path::new("artifact")))?;
            Ok(Seen {
                size,
                executable,
                sha256: hasher.finalize().into(),
            })
        })
    })?;
    let made_from = std::fs::read_to_string(commit_file(tree)).unwrap_or_default();
    if !tree.is_dir() || made_from.is_empty() {
        return Err(stale("the tree the build ran in is gone".to_owned()));
    }
    if made_from.trim() != commit {
        return Err(stale(format!(
            "the build ran on commit {}, and `{rev}` is now {}",
            &made_from.trim()[..12.min(made_from.trim().len())],
            &commit[..12.min(commit.len())]
        )));
    }
    let source: std::collections::BTreeMap<String, Item<Seen>> = source.into_iter().collect();
    let entries = walk(tree, &|rel| source.contains_key(rel) || !left_behind(rel))?;
    let mut built: Vec<String> = Vec::new();
    for (path, entry) in &entries {
        if source.get(path).is_some_and(|was| unchanged(was, entry)) {
            continue;
        }
        let top = match path.split_once('/') {
            Some((top, _)) => format!("{top}/"),
            None if *entry == Entry::Dir => format!("{path}/"),
            None => path.clone(),
        };
        if built.last() != Some(&top) && !built.contains(&top) {
            built.push(top);
        }
    }
    built.sort();
    Ok((entries, commit, built))
}

/// A file of a commit, as [`read_built`] compares the built tree's with it.
struct Seen {
    size: u64,
    executable: bool,
    sha256: [u8; 32],
}

/// Whether the tree's `entry` is still what the commit had (a file: the same mode, size and
/// sha256, hashed only when the size is the same).
fn unchanged(was: &Item<Seen>, entry: &Entry) -> bool {
    match (was, entry) {
        (Item::Dir, Entry::Dir) => true,
        (Item::Symlink(a), Entry::Symlink(b)) => a == b,
        (
            Item::File(seen),
            Entry::OnDisk {
                path,
                size,
                executable,
            },
        ) => {
            *size == seen.size
                && *executable == seen.executable
                && std::fs::File::open(path).is_ok_and(|mut f| {
                    let mut hasher = Sha256::new();
                    std::io::copy(&mut f, &mut hasher).is_ok()
                        && <[u8; 32]>::from(hasher.finalize()) == seen.sha256
                })
        }
        _ => false,
    }
}

/// The main content of an artifact.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum Content<'a> {
    /// The configured `source`.
    Source(&'a SourceConfig),
    /// Paths of the project, as rsync reads them: `dist/` packs the directory's contents at
    /// the artifact's root, `server.js` or `src` keeps the path.
    Paths(&'a [String]),
}

/// A file or directory added to an artifact at a path of its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Extra {
    /// The file or directory on this machine.
    pub from: PathBuf,
    /// Where it goes in the artifact (a relative path; empty for the root).
    pub to: String,
}

/// [`build`] with adapters' extras, or with a list of paths instead of a `source`.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use ship_core::{Content, Extra, Packing, artifact};
/// let project = tempfile::tempdir()?;
/// std::fs::create_dir_all(project.path().join("dist/css"))?;
/// std::fs::write(project.path().join("dist/index.html"), "<h1>hi</h1>")?;
/// std::fs::write(project.path().join("LICENSE"), "MIT")?;
/// let paths = ["dist/".to_owned()];
/// let extras = [Extra { from: project.path().join("LICENSE"), to: "legal/LICENSE".into() }];
/// let packing = Packing { content: Content::Paths(&paths), build: &[], extras: &extras, tree: None };
/// let built = artifact::build_with(project.path(), &packing, &project.path().join("cache"))?;
/// assert_eq!(built.info.source, "paths dist/");
/// assert_eq!(built.info.entries, 4); // css/, index.html, legal/, legal/LICENSE
/// # Ok(()) }
/// ```
pub fn build_with(
    root: &Path,
    packing: &Packing<'_>,
    cache: &Path,
) -> Result<Built, ArtifactError> {
    run_commands(root, packing.build)?;
    // What a packing killed here earlier left (its scratch): `plan` packs but never prunes.
    let _ = crate::cache::prune_left_over(cache, std::time::SystemTime::now());
    let mut built = pack(root, packing, cache)?;
    built.info.commands = packing.build.to_vec();
    Ok(built)
}

/// Runs build commands with `sh -c` in `root`, in order, stopping at the first that fails.
pub fn run_commands(root: &Path, commands: &[String]) -> Result<(), ArtifactError> {
    for command in commands {
        // Their output goes to stderr: stdout carries the plan (JSON for CI scripts).
        let status = Command::new("sh")
            .arg("-c")
            .arg(command)
            .current_dir(root)
            .stdout(std::process::Stdio::from(std::io::stderr()))
            .status()
            .map_err(io(root))?;
        if !status.success() {
            return Err(ArtifactError::Build {
                command: command.clone(),
                status: status.to_string(),
            });
        }
    }
    Ok(())
}

/// `url` as it may be shown: without the `user:password@` of its authority and without its
/// `?query` (where a presigned or CI URL carries its token), each replaced by `***`.
///
/// ```
/// use ship_core::artifact::without_credentials;
/// assert_eq!(without_credentials("https://ci:tok3n@ci.example.com/a.tgz"), "https://***@ci.example.com/a.tgz");
/// assert_eq!(without_credentials("https://h/a.tgz?token=s3cr3t"), "https://h/a.tgz?***");
/// assert_eq!(without_credentials("app.tar.gz"), "app.tar.gz");
/// ```
pub fn without_credentials(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (rest, query) = match rest.split_once('?') {
        Some((r, _)) => (r, "?***"),
        None => (rest, ""),
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***@{}{query}", &rest[at + 1..]),
        None => format!("{scheme}://{rest}{query}"),
    }
}

/// Whether an `archive` source names a URL (fetched by the caller) rather than a file.
pub fn is_url(archive: &str) -> bool {
    archive.starts_with("https://") || archive.starts_with("http://")
}

/// Where the archive at `url` is kept once fetched, under the project's `ship_dir`
/// (`target/ship`): ship-core fetches nothing; cargo-ship fetches it when it plans.
pub fn download_path(ship_dir: &Path, url: &str) -> PathBuf {
    ship_dir
        .join("downloads")
        .join(&crate::sha256_hex(url.as_bytes())[..32])
}

/// How many links one path may go through before it is refused as a loop (Linux's own
/// limit for a path lookup).
pub const MAX_LINK_HOPS: usize = 40;

fn pack(root: &Path, packing: &Packing<'_>, cache: &Path) -> Result<Built, ArtifactError> {
    // Held until the tar is written: the files of a `git` or `archive` source past
    // IN_MEMORY are read from it.
    let mut spill = Spill::to(cache.join(format!(".packing-{}.d", scratch_id())));
    let (mut entries, revision, label) = match packing.content {
        Content::Source(source) => {
            let (kind, value) = source.parts();
            // A URL's user and password (CI artifact links often carry a token) never reach
            // the plan.
            let label = format!("{kind} {}", without_credentials(value));
            match source {
                SourceConfig::Git(rev) => match packing.tree {
                    Some(tree) => {
                        let (entries, commit, built) = read_built(root, rev, tree)?;
                        let label = if built.is_empty() {
                            label
                        } else {
                            format!("{label} + built {}", built.join(", "))
                        };
                        (entries, Some(commit), label)
                    }
                    None => {
                        let (entries, commit) =
                            git_archive(root, rev, |tar| read_tar(tar, &mut spill))?;
                        (entries, Some(commit), label)
                    }
                },
                SourceConfig::Dir(dir) => {
                    // Never what cargo ship writes (`target/`, where plans, artifacts and logs
                    // go: `dir = "."` packed each artifact into the next) nor `.git`; nor
                    // what `.gitignore` or `.shipignore` files say.
                    (walk_source(&root.join(dir), cache)?, None, label)
                }
                SourceConfig::Cargo(_) => (Vec::new(), None, label),
                SourceConfig::Archive(file, sha256) => {
                    let path = if is_url(file) {
                        download_path(cache.parent().unwrap_or(cache), file)
                    } else {
                        root.join(file)
                    };
                    let archive = std::fs::File::open(&path).map_err(|e| match is_url(file) {
                        true => ArtifactError::Archive {
                            archive: without_credentials(file),
                            reason: format!(
                                "not fetched ({}: {e}); `cargo ship plan` fetches it",
                                path.display()
                            ),
                        },
                        false => io(&path)(e),
                    })?;
                    // Read once, as it is unpacked (never whole in memory), and hashed on the
                    // way: what is packed is what the pin was checked against.
                    let mut hashed = Counting::new(archive);
                    let mut reader = std::io::BufReader::with_capacity(1 << 16, &mut hashed);
                    let gzip = std::io::BufRead::fill_buf(&mut reader)
                        .map_err(io(&path))?
                        .starts_with(&[0x1f, 0x8b]);
                    let read = if gzip {
                        read_tar(flate2::read::GzDecoder::new(&mut reader), &mut spill)
                    } else {
                        read_tar(&mut reader, &mut spill)
                    };
                    // The rest of the file (gzip's trailer, the tar's padding) counts too.
                    std::io::copy(&mut reader, &mut std::io::sink()).map_err(io(&path))?;
                    drop(reader);
                    if let Some(expected) = sha256 {
                        let got = hashed.sha256();
                        if &got != expected {
                            return Err(ArtifactError::Archive {
                                archive: without_credentials(file),
                                reason: format!(
                                    "its sha256 is {got}, not the {expected} that `source.sha256` says: \
                                     nothing was deployed"
                                ),
                            });
                        }
                    }
                    let entries = read.map_err(|e| match e {
                        ArtifactError::Unsafe { .. } => e,
                        e => ArtifactError::Archive {
                            archive: without_credentials(file),
                            reason: format!("not a readable tar or tar.gz archive ({e})"),
                        },
                    })?;
                    (entries, None, label)
                }
            }
        }
        Content::Paths(paths) => {
            let mut entries = Vec::new();
            for p in paths {
                let to = if p.ends_with('/') {
                    String::new()
                } else {
                    p.clone()
                };
                let rel = p.trim_end_matches('/');
                let from = match packing.tree {
                    Some(tree) => {
                        let from = tree.join(rel);
                        if std::fs::symlink_metadata(&from).is_err() {
                            return Err(ArtifactError::Io {
                                path: from,
                                source: std::io::Error::other(format!(
                                    "`{p}` is neither in the commit nor written by the build \
                                     (the artifact is made from the commit, not the working tree)"
                                )),
                            });
                        }
                        from
                    }
                    None => root.join(rel),
                };
                entries.extend(read_extra(&from, &to)?);
            }
            // From the tree of a commit: that commit is the revision.
            let revision = match packing.tree {
                Some(tree) => std::fs::read_to_string(commit_file(tree))
                    .ok()
                    .map(|c| c.trim().to_owned())
                    .filter(|c| !c.is_empty()),
                None => None,
            };
            (entries, revision, format!("paths {}", paths.join(", ")))
        }
    };
    for extra in packing.extras {
        entries.extend(read_extra(&extra.from, &extra.to)?);
    }
    // One entry per path, the last one packed winning: extras replace the content's.
    let entries: Vec<(String, Entry)> = entries
        .drain(..)
        .collect::<std::collections::BTreeMap<String, Entry>>()
        .into_iter()
        .collect();
    // Extras may add links (or entries under links) next to the content's: check them all.
    check_links(&entries)?;
    let count = entries.len() as u64;
    // The tar goes to a file as it is written (hashed on the way) and is compressed from
    // it: a large file of a `dir` source is never held in memory whole.
    std::fs::create_dir_all(cache).map_err(io(cache))?;
    let scratch = cache.join(format!(".packing-{}.tar", std::process::id()));
    let written = (|| {
        let file = std::fs::File::create(&scratch).map_err(io(&scratch))?;
        let hashing = Hashing {
            inner: std::io::BufWriter::new(file),
            hasher: Sha256::new(),
        };
        let hashing = write_tar(&entries, hashing)?;
        let digest = format!("{:x}", hashing.hasher.finalize());
        hashing
            .inner
            .into_inner()
            .map_err(|e| io(&scratch)(e.into_error()))?;
        let (path, bytes) = store_from(cache, &digest, &scratch)?;
        Ok::<_, ArtifactError>((digest, path, bytes))
    })();
    let _ = std::fs::remove_file(&scratch);
    let (digest, path, bytes) = written?;
    Ok(Built {
        info: ArtifactInfo {
            source: label,
            revision,
            digest,
            bytes,
            entries: count,
            commands: Vec::new(),
            promoted_from: None,
            uncommitted: Vec::new(),
        },
        path,
    })
}

/// Stores the tar whose sha256 is `digest` in `cache` as `<digest>.tar.zst`: what hosts
/// with `zstd` are sent (it unpacks several times faster than gzip), and what a
/// `.tar.gz` is made from, by [`gz_of`], for a host without it. A file already there is
/// kept: the same digest, the same content, and compressing again would be most of a
/// re-plan's time. Returns the file and its size.
pub fn store(cache: &Path, digest: &str, tar: &[u8]) -> Result<(PathBuf, u64), ArtifactError> {
    let path = crate::cache::artifact(cache, digest);
    let bytes = keep_or_write(&path, |to| compress(&mut &tar[..], tar.len() as u64, to))?;
    Ok((path, bytes))
}

/// [`store`] of the tar in the file `tar`, compressed as it is read.
fn store_from(cache: &Path, digest: &str, tar: &Path) -> Result<(PathBuf, u64), ArtifactError> {
    let path = crate::cache::artifact(cache, digest);
    let bytes = keep_or_write(&path, |to| {
        let mut from = std::fs::File::open(tar)?;
        let size = from.metadata()?.len();
        compress(&mut from, size, to)
    })?;
    Ok((path, bytes))
}

/// A reader that hashes (sha256) and counts what it passes on.
pub(crate) struct Counting<R> {
    pub(crate) inner: R,
    pub(crate) hasher: Sha256,
    pub(crate) bytes: u64,
}

impl<R> Counting<R> {
    pub(crate) fn new(inner: R) -> Counting<R> {
        Counting {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    /// The sha256 of what it passed on, in hex.
    pub(crate) fn sha256(self) -> String {
        format!("{:x}", self.hasher.finalize())
    }
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// zstd of the `size` bytes `from` reads, to `to`: one way for a tar in memory ([`store`])
/// and one in a file ([`store_from`]), so the stored file, and the size a plan shows, do
/// not depend on which made it.
fn compress(from: &mut dyn Read, size: u64, to: &mut dyn Write) -> std::io::Result<()> {
    let mut encoder = zstd::stream::Encoder::new(to, ZSTD_LEVEL)?;
    encoder.set_pledged_src_size(Some(size))?;
    encoder.include_contentsize(true)?;
    std::io::copy(from, &mut encoder)?;
    encoder.finish()?;
    Ok(())
}

/// A writer that hashes what it passes on.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The `.tar.gz` of a stored `.tar.zst` (made beside it the first time), for hosts
/// without zstd; with its size.
pub fn gz_of(zst: &Path) -> Result<(PathBuf, u64), ArtifactError> {
    let path = crate::cache::gz(zst);
    // Streamed: the .tar.zst unpacked into gzip as it is read, never whole in memory. An
    // error reading it names it, not the .tar.gz.
    let bytes = keep_or_write(&path, |to| {
        let named =
            |e: std::io::Error| std::io::Error::new(e.kind(), format!("{}: {e}", zst.display()));
        let mut tar = std::fs::File::open(zst)
            .and_then(zstd::stream::read::Decoder::new)
            .map_err(named)?;
        let mut gz = flate2::GzBuilder::new()
            .mtime(0)
            .write(to, flate2::Compression::default());
        std::io::copy(&mut tar, &mut gz)?;
        gz.finish()?;
        Ok(())
    })?;
    Ok((path, bytes))
}

/// What a host is sent of a stored artifact (its `.tar.zst`, or the `.tar.gz` made from it):
/// the size and sha256 of its bytes, read once and checked on the way: the tar they unpack
/// to must have sha256 `digest`. A host checks the bytes it receives against this sum alone
/// (one hash of the compressed bytes, no unpacking twice); the tar's digest, checked here
/// on the same bytes, is what ties them to the plan.
pub fn fingerprint(path: &Path, digest: &str) -> Result<(u64, String), ArtifactError> {
    let file = std::fs::File::open(path).map_err(io(path))?;
    let mut raw = Counting::new(std::io::BufReader::with_capacity(1 << 20, file));
    let mut magic = [0u8; 4];
    raw.read_exact(&mut magic).map_err(io(path))?;
    let head = std::io::Cursor::new(magic);
    let mut tar = Hashing {
        inner: std::io::sink(),
        hasher: Sha256::new(),
    };
    let unpacked = if magic == [0x28, 0xb5, 0x2f, 0xfd] {
        zstd::stream::read::Decoder::new(head.chain(&mut raw))
            .and_then(|mut d| std::io::copy(&mut d, &mut tar))
    } else {
        // Every member, as `gzip -dc` on a host reads them.
        std::io::copy(
            &mut flate2::read::MultiGzDecoder::new(head.chain(&mut raw)),
            &mut tar,
        )
    };
    unpacked.map_err(io(path))?;
    // Whatever follows the compressed stream would be sent too, and is not the plan's.
    if std::io::copy(&mut raw, &mut std::io::sink()).map_err(io(path))? > 0 {
        return Err(ArtifactError::Io {
            path: path.to_owned(),
            source: std::io::Error::other("bytes after its compressed stream"),
        });
    }
    let unpacks_to = format!("{:x}", tar.hasher.finalize());
    if unpacks_to != digest {
        return Err(ArtifactError::Io {
            path: path.to_owned(),
            source: std::io::Error::other(format!(
                "it unpacks to sha256 {unpacks_to}, not the plan's {digest}; it changed since it was made: plan again"
            )),
        });
    }
    Ok((raw.bytes, raw.sha256()))
}

/// The size of `path` if it is there (marked used), else of what `write` writes to it
/// (atomically: `cache::write_aside`).
fn keep_or_write(
    path: &Path,
    write: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> Result<u64, ArtifactError> {
    if let Ok(meta) = std::fs::metadata(path)
        && meta.is_file()
        && meta.len() > 0
    {
        // Used again: the cache keeps the artifacts used last (`cache::prune`).
        crate::cache::touch(path);
        return Ok(meta.len());
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    crate::cache::write_aside(path, write).map_err(io(path))?;
    Ok(std::fs::metadata(path).map_err(io(path))?.len())
}

/// zstd's own default level: about gzip's size, made and unpacked several times faster.
const ZSTD_LEVEL: i32 = 3;

/// The tar inside a stored artifact, gzip- or zstd-compressed (told by its first bytes).
pub fn decompress(bytes: &[u8]) -> Result<Vec<u8>, ArtifactError> {
    let here = Path::new("artifact");
    let mut tar = Vec::new();
    if bytes.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        zstd::stream::read::Decoder::new(bytes)
            .and_then(|mut d| d.read_to_end(&mut tar))
            .map_err(io(here))?;
    } else {
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut tar)
            .map_err(io(here))?;
    }
    Ok(tar)
}

/// The files of a stored artifact (a gzip- or zstd-compressed tarball, as cached and shipped), by
/// path, with its digest (the sha256 of the uncompressed tar) and number of entries.
pub fn open(compressed: &[u8]) -> Result<Opened, ArtifactError> {
    let tar = decompress(compressed)?;
    let digest = format!("{:x}", Sha256::digest(&tar));
    let entries = read_tar(&tar[..], &mut Spill::memory())?;
    check_links(&entries)?;
    let count = entries.len() as u64;
    let files = entries
        .into_iter()
        .filter_map(|(path, e)| match e {
            Entry::File { data, .. } => Some((path, data)),
            _ => None,
        })
        .collect();
    Ok(Opened {
        digest,
        entries: count,
        files,
        tar,
    })
}

/// What [`open`] read.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Opened {
    /// The sha256 of the uncompressed tar.
    pub digest: String,
    /// How many entries it has.
    pub entries: u64,
    /// Its regular files, by path.
    pub files: std::collections::BTreeMap<String, Vec<u8>>,
    /// The uncompressed tar itself.
    pub tar: Vec<u8>,
}

/// The entries of a file or directory placed at `to` in the artifact, with the directories
/// leading to it.
fn read_extra(from: &Path, to: &str) -> Result<Vec<(String, Entry)>, ArtifactError> {
    let to = clean_path(to)?;
    let meta = std::fs::symlink_metadata(from).map_err(io(from))?;
    let mut out = Vec::new();
    if let Some(to) = &to {
        let parts: Vec<&str> = to.split('/').collect();
        for n in 1..parts.len() {
            out.push((parts[..n].join("/"), Entry::Dir));
        }
    }
    if meta.is_dir() {
        if let Some(to) = &to {
            out.push((to.clone(), Entry::Dir));
        }
        for (rel, e) in read_dir(from)? {
            let path = match &to {
                Some(to) => format!("{to}/{rel}"),
                None => rel,
            };
            if let Entry::Symlink(target) = &e {
                check_link(&path, target)?;
            }
            out.push((path, e));
        }
    } else {
        let Some(to) = to else {
            return Err(ArtifactError::Unsafe {
                entry: from.display().to_string(),
                reason: "a single file needs a path in the artifact".to_owned(),
            });
        };
        // A link named on its own is packed as the file it points to (read through it when
        // the tar is written): its size is that file's, not the link's.
        let file = std::fs::metadata(from).map_err(io(from))?;
        if !file.is_file() {
            return Err(ArtifactError::Unsafe {
                entry: from.display().to_string(),
                reason: "not a file or directory (a link to a directory: name the directory)"
                    .to_owned(),
            });
        }
        out.push((to, file_entry(from, &file)));
    }
    Ok(out)
}

fn git(root: &Path, args: &[&str]) -> Result<Vec<u8>, ArtifactError> {
    let command = format!("git {}", args.join(" "));
    let out = Command::new("git")
        .args(args)
        .current_dir(root)
        .output()
        .map_err(|e| ArtifactError::Git {
            command: command.clone(),
            stderr: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(ArtifactError::Git {
            command,
            stderr: git_said(&String::from_utf8_lossy(&out.stderr), out.status),
        });
    }
    Ok(out.stdout)
}

/// `git archive` of `rev`, limited to the project's directory inside the repository: its
/// tar given to `read` as git writes it (never whole in memory), with the commit.
fn git_archive<T>(
    root: &Path,
    rev: &str,
    read: impl FnOnce(&mut dyn Read) -> Result<T, ArtifactError>,
) -> Result<(T, String), ArtifactError> {
    let spec = format!("{rev}^{{commit}}");
    let commit = match git(root, &["rev-parse", "--verify", "--quiet", &spec]) {
        Ok(out) => String::from_utf8_lossy(&out).trim().to_owned(),
        Err(ArtifactError::Git { command, .. }) => {
            return Err(ArtifactError::Git {
                command,
                stderr: format!(
                    "`{rev}` is not a commit of this repository (no branch, tag or commit of \
                     that name: `git tag`, `git branch -a` and `git log` list them)"
                ),
            });
        }
        Err(e) => return Err(e),
    };
    let prefix = String::from_utf8_lossy(&git(root, &["rev-parse", "--show-prefix"])?)
        .trim()
        .to_owned();
    let tree = if prefix.is_empty() {
        commit.clone()
    } else {
        format!("{commit}:{prefix}")
    };
    // Run from the repository's top: run from the project's directory, git would narrow
    // `<commit>:<prefix>` to that directory once more, and pack nothing.
    let top = root.join(String::from_utf8_lossy(&git(root, &["rev-parse", "--show-cdup"])?).trim());
    let command = format!("git archive --format=tar {tree}");
    let failed = |stderr: String| ArtifactError::Git {
        command: command.clone(),
        stderr,
    };
    let mut child = Command::new("git")
        .args(["archive", "--format=tar", &tree])
        .current_dir(&top)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| failed(e.to_string()))?;
    // Its standard error is read aside: git never waits on a full pipe of it.
    let mut stderr = child.stderr.take().expect("piped");
    let said = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let mut stdout = child.stdout.take().expect("piped");
    let read = read(&mut stdout);
    if read.is_ok() {
        // The tar's end (a reader stops at its end marker, git pads the last record).
        let _ = std::io::copy(&mut stdout, &mut std::io::sink());
    }
    // What was not read (an entry refused halfway) ends git with a broken pipe.
    drop(stdout);
    let status = child.wait().map_err(|e| failed(e.to_string()))?;
    let said = said.join().unwrap_or_default();
    let said = said.trim();
    match (read, status.success()) {
        (Ok(t), true) => Ok((t, commit)),
        // Reading failed first (an entry refused, a full disk under the spill): git, stopped
        // by the pipe closed under it, said nothing; the cause is the reading's.
        (Err(e @ ArtifactError::Unsafe { .. }), _) | (Err(e), true) => Err(e),
        (Err(e), false) if said.is_empty() => Err(e),
        (_, false) => Err(failed(git_said(said, status))),
    }
}

/// What a failed git command said, never empty: some (`--quiet`) fail saying nothing.
fn git_said(stderr: &str, status: std::process::ExitStatus) -> String {
    match stderr.trim() {
        "" => format!("it said nothing ({status})"),
        said => said.to_owned(),
    }
}

/// A relative path that stays inside the release: no leading `/`, no `..`.
fn clean_path(raw: &str) -> Result<Option<String>, ArtifactError> {
    let unsafe_entry = |reason: &str| ArtifactError::Unsafe {
        entry: raw.to_owned(),
        reason: reason.to_owned(),
    };
    if raw.starts_with('/') {
        return Err(unsafe_entry("absolute path"));
    }
    let mut parts = Vec::new();
    for part in raw.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(unsafe_entry("`..` would leave the release directory")),
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return Ok(None); // the root itself
    }
    Ok(Some(parts.join("/")))
}

/// A symlink may point anywhere inside the release, never outside it.
fn check_link(path: &str, target: &str) -> Result<(), ArtifactError> {
    let refuse = |reason: String| {
        Err(ArtifactError::Unsafe {
            entry: format!("{path} -> {target}"),
            reason,
        })
    };
    if target.starts_with('/') {
        return refuse("a link to an absolute path escapes the release directory".to_owned());
    }
    let mut depth: Vec<&str> = path.split('/').collect();
    depth.pop();
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if depth.pop().is_none() {
                    return refuse("the link points outside the release directory".to_owned());
                }
            }
            p => depth.push(p),
        }
    }
    Ok(())
}

/// Refuses, among `entries` (paths made by [`clean_path`]), every entry that lies under a
/// symlink of the artifact, and every symlink whose target, resolved against the entries
/// the way the host's kernel will (each link met is replaced by its target, chains
/// followed, [`MAX_LINK_HOPS`] at most), leaves the release directory.
fn check_links(entries: &[(String, Entry)]) -> Result<(), ArtifactError> {
    let links: std::collections::BTreeMap<&str, &str> = entries
        .iter()
        .filter_map(|(p, e)| match e {
            Entry::Symlink(t) => Some((p.as_str(), t.as_str())),
            _ => None,
        })
        .collect();
    if links.is_empty() {
        return Ok(());
    }
    for (path, entry) in entries {
        // No entry under a link: tar would write it through the link.
        let mut at = 0;
        while let Some(slash) = path[at..].find('/') {
            let parent = &path[..at + slash];
            if let Some(target) = links.get(parent) {
                return Err(ArtifactError::Unsafe {
                    entry: path.clone(),
                    reason: format!(
                        "it lies under the symlink `{parent} -> {target}`: unpacking it would write through the link"
                    ),
                });
            }
            at += slash + 1;
        }
        if let Entry::Symlink(target) = entry {
            let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
            if let Err(why) = resolve(&links, dir, target) {
                return Err(ArtifactError::Unsafe {
                    entry: format!("{path} -> {target}"),
                    reason: why,
                });
            }
        }
    }
    Ok(())
}

/// Where `target`, read from directory `dir` of the release (no links in it), leads: the
/// path inside the release, or why it does not stay inside.
fn resolve(
    links: &std::collections::BTreeMap<&str, &str>,
    dir: &str,
    target: &str,
) -> Result<String, String> {
    if target.starts_with('/') {
        return Err("a link to an absolute path escapes the release directory".to_owned());
    }
    // The resolved components so far (none of them a link), and what is left to read.
    let mut done: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
    let mut todo: std::collections::VecDeque<&str> = target.split('/').collect();
    let mut via: Vec<String> = Vec::new();
    while let Some(part) = todo.pop_front() {
        match part {
            "" | "." => {}
            ".." => {
                if done.pop().is_none() {
                    let through = if via.is_empty() {
                        String::new()
                    } else {
                        format!(" (through {})", via.join(", "))
                    };
                    return Err(format!(
                        "it resolves to a path outside the release directory{through}"
                    ));
                }
            }
            p => {
                done.push(p);
                let here = done.join("/");
                if let Some(&next) = links.get(here.as_str()) {
                    if via.len() >= MAX_LINK_HOPS {
                        return Err(format!(
                            "resolving it goes through more than {MAX_LINK_HOPS} links (a loop?)"
                        ));
                    }
                    if next.starts_with('/') {
                        return Err(format!(
                            "it goes through `{here} -> {next}`, a link to an absolute path"
                        ));
                    }
                    via.push(format!("`{here} -> {next}`"));
                    done.pop();
                    for q in next.split('/').rev() {
                        todo.push_front(q);
                    }
                }
            }
        }
    }
    Ok(done.join("/"))
}

/// How many bytes of a tar's files one packing holds in memory while it reads them: the
/// rest go to its scratch directory ([`Spill`]) and are streamed into the artifact from
/// there, so that a `git` or `archive` source of hundreds of MB is never in memory whole.
const IN_MEMORY: u64 = 16 << 20;

/// Where the files of a tar being read go: memory while [`IN_MEMORY`] lasts, then files
/// in a scratch directory, removed when the packing is done (a packing killed meanwhile
/// leaves it to [`crate::cache::prune`], `.packing-<pid>-<n>.d`, or to the next
/// [`export`] of the same tree).
struct Spill {
    dir: Option<PathBuf>,
    left: u64,
    next: u64,
}

impl Spill {
    /// Spills into `dir` (made when first needed).
    fn to(dir: PathBuf) -> Spill {
        Spill::keeping(dir, IN_MEMORY)
    }

    /// Spills into `dir` past `bytes` in memory.
    fn keeping(dir: PathBuf, bytes: u64) -> Spill {
        Spill {
            dir: Some(dir),
            left: bytes,
            next: 0,
        }
    }

    /// Holds everything in memory (a tar already in memory: [`open`]'s, the tests').
    fn memory() -> Spill {
        Spill {
            dir: None,
            left: u64::MAX,
            next: 0,
        }
    }

    /// The entry of a file of `size` bytes read from `from`.
    fn take(
        &mut self,
        size: u64,
        executable: bool,
        from: &mut dyn Read,
    ) -> Result<Entry, ArtifactError> {
        let here = Path::new("artifact");
        let dir = match &self.dir {
            Some(dir) if size > self.left => dir.clone(),
            _ => {
                self.left = self.left.saturating_sub(size);
                let mut data = Vec::new();
                from.read_to_end(&mut data).map_err(io(here))?;
                return Ok(Entry::File { data, executable });
            }
        };
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let path = dir.join(self.next.to_string());
        self.next += 1;
        let file = std::fs::File::create(&path).map_err(io(&path))?;
        let mut to = std::io::BufWriter::with_capacity(1 << 16, file);
        let size = std::io::copy(from, &mut to).map_err(io(here))?;
        to.into_inner().map_err(|e| io(&path)(e.into_error()))?;
        Ok(Entry::OnDisk {
            path,
            size,
            executable,
        })
    }
}

impl Drop for Spill {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// `<pid>-<n>`: a name of its own for each scratch directory of this process.
fn scratch_id() -> String {
    static SCRATCHES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = SCRATCHES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}-{n}", std::process::id())
}

/// A scratch directory of its own beside `tree` for [`export`]'s spilled files,
/// `.<tree>.spill-<pid>-<n>`; those that an export killed left there over
/// [`crate::cache::LEFT_OVER`] ago are removed first.
fn scratch_beside(tree: &Path) -> PathBuf {
    let name = tree.file_name().unwrap_or_default().to_string_lossy();
    let prefix = format!(".{name}.spill-");
    if let Some(Ok(listing)) = tree.parent().map(std::fs::read_dir) {
        let now = std::time::SystemTime::now();
        for e in listing.flatten() {
            let old = e
                .metadata()
                .ok()
                .and_then(|m| m.modified().ok())
                .is_some_and(|t| {
                    now.duration_since(t).unwrap_or_default() >= crate::cache::LEFT_OVER
                });
            if old && e.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    tree.with_file_name(format!("{prefix}{}", scratch_id()))
}

/// One entry of a tar as [`read_tar_with`] reads it: a regular file's content is what its
/// caller made of it.
enum Item<T> {
    Dir,
    File(T),
    Symlink(String),
}

/// What [`read_tar_with`] makes of a regular file: given its size, whether anyone may
/// execute it, and its bytes.
type FileReader<'a, T> = dyn FnMut(u64, bool, &mut dyn Read) -> Result<T, ArtifactError> + 'a;

/// The entries of a tar, checked one by one (paths that stay inside the release, links
/// whose text does; no hard links, devices or other kinds), each regular file's content
/// given to `file` (its size, whether anyone may execute it, its bytes).
fn read_tar_with<T>(
    reader: impl Read,
    file: &mut FileReader<'_, T>,
) -> Result<Vec<(String, Item<T>)>, ArtifactError> {
    let mut archive = tar::Archive::new(reader);
    let mut out = Vec::new();
    let here = Path::new("artifact");
    for entry in archive.entries().map_err(io(here))? {
        let mut entry = entry.map_err(io(here))?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() || kind.is_pax_local_extensions() {
            continue;
        }
        let Some(path) = clean_path(&raw)? else {
            continue;
        };
        let e = if kind.is_dir() {
            Item::Dir
        } else if kind.is_file() || kind == tar::EntryType::Continuous {
            let mode = entry.header().mode().unwrap_or(0o644);
            let size = entry.size();
            Item::File(file(size, mode & 0o111 != 0, &mut entry)?)
        } else if kind.is_symlink() {
            let target = entry
                .link_name_bytes()
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            check_link(&path, &target)?;
            Item::Symlink(target)
        } else if kind.is_hard_link() {
            return Err(ArtifactError::Unsafe {
                entry: raw,
                reason: "hard links are not supported: pack a copy or a symlink".to_owned(),
            });
        } else {
            return Err(ArtifactError::Unsafe {
                entry: raw,
                reason: format!("unsupported entry type {kind:?}"),
            });
        };
        out.push((path, e));
    }
    Ok(out)
}

/// The entries of a tar, its files' bytes where `spill` puts them.
fn read_tar(reader: impl Read, spill: &mut Spill) -> Result<Vec<(String, Entry)>, ArtifactError> {
    let items = read_tar_with(reader, &mut |size, executable, from| {
        spill.take(size, executable, from)
    })?;
    Ok(items
        .into_iter()
        .map(|(path, item)| {
            let e = match item {
                Item::Dir => Entry::Dir,
                Item::File(e) => e,
                Item::Symlink(target) => Entry::Symlink(target),
            };
            (path, e)
        })
        .collect())
}

/// A regular file of this machine as an entry: left on disk, streamed into the tar when it
/// is written.
fn file_entry(path: &Path, meta: &std::fs::Metadata) -> Entry {
    Entry::OnDisk {
        path: path.to_owned(),
        size: meta.len(),
        executable: is_executable(meta),
    }
}

fn read_dir(dir: &Path) -> Result<Vec<(String, Entry)>, ArtifactError> {
    walk(dir, &|_| true)
}

/// Refuses to walk what is not a directory.
fn must_be_dir(dir: &Path) -> Result<(), ArtifactError> {
    let meta = std::fs::metadata(dir).map_err(io(dir))?;
    if meta.is_dir() {
        Ok(())
    } else {
        Err(ArtifactError::Io {
            path: dir.to_owned(),
            source: std::io::Error::other("not a directory"),
        })
    }
}

/// The entry a walk found at `path` (`rel` in the artifact), of type `ft`: a directory, a
/// symlink (checked not to lead outside), or a file, read whole or, `on_disk`, left there
/// to be streamed ([`Entry::OnDisk`]); anything else is refused.
fn entry_of(path: &Path, rel: &str, ft: std::fs::FileType) -> Result<Entry, ArtifactError> {
    if ft.is_dir() {
        Ok(Entry::Dir)
    } else if ft.is_symlink() {
        let target = std::fs::read_link(path).map_err(io(path))?;
        let target = target.to_string_lossy().into_owned();
        check_link(rel, &target)?;
        Ok(Entry::Symlink(target))
    } else if ft.is_file() {
        let meta = std::fs::symlink_metadata(path).map_err(io(path))?;
        Ok(file_entry(path, &meta))
    } else {
        Err(ArtifactError::Unsafe {
            entry: rel.to_owned(),
            reason: "not a file, directory or symlink".to_owned(),
        })
    }
}

/// The entries under `dir` whose relative path `keep` accepts (a directory refused is not
/// walked into).
fn walk(dir: &Path, keep: &dyn Fn(&str) -> bool) -> Result<Vec<(String, Entry)>, ArtifactError> {
    must_be_dir(dir)?;
    let mut out = Vec::new();
    let walker = walkdir::WalkDir::new(dir)
        .follow_links(false)
        .min_depth(1)
        .into_iter()
        .filter_entry(|item| {
            let rel = item.path().strip_prefix(dir).unwrap_or(item.path());
            keep(&rel.to_string_lossy().replace('\\', "/"))
        });
    for item in walker {
        let item = item.map_err(|e| ArtifactError::Io {
            path: dir.to_owned(),
            source: e.into(),
        })?;
        let rel = item
            .path()
            .strip_prefix(dir)
            .expect("walkdir stays under its root")
            .to_string_lossy()
            .replace('\\', "/");
        let e = entry_of(item.path(), &rel, item.file_type())?;
        out.push((rel, e));
    }
    Ok(out)
}

/// The entries of a `dir` source: every file under `dir`, hidden ones too (`.env.example`,
/// `.well-known/`), but not what a `.gitignore` (in a git repository or not) or a
/// `.shipignore` (the same syntax) in `dir` or below ignores, nor `.git`, nor the
/// directory under `dir` that holds cargo ship's own output, `cache` (`target/`). Only the
/// ignore files inside `dir` count: none above it and no user-wide excludes, so the same
/// tree gives the same artifact on every machine.
/// Files are left on disk ([`Entry::OnDisk`]).
fn walk_source(dir: &Path, cache: &Path) -> Result<Vec<(String, Entry)>, ArtifactError> {
    must_be_dir(dir)?;
    let root = dir.to_owned();
    let cache = cache.to_path_buf();
    let walker = ignore::WalkBuilder::new(dir)
        .standard_filters(false)
        .hidden(false)
        .parents(false)
        .git_ignore(true)
        .git_exclude(true)
        .git_global(false)
        .require_git(false)
        .add_custom_ignore_filename(SHIPIGNORE)
        .follow_links(false)
        .filter_entry(move |item| {
            let rel = item.path().strip_prefix(&root).unwrap_or(item.path());
            rel != Path::new(".git") && (item.depth() == 0 || !cache.starts_with(item.path()))
        })
        .build();
    let mut out = Vec::new();
    for item in walker {
        let item = item.map_err(|e| ArtifactError::Io {
            path: dir.to_owned(),
            source: std::io::Error::other(e.to_string()),
        })?;
        if item.depth() == 0 {
            continue;
        }
        let rel = item
            .path()
            .strip_prefix(dir)
            .expect("the walk stays under its root")
            .to_string_lossy()
            .replace('\\', "/");
        let Some(ft) = item.file_type() else {
            continue;
        };
        let e = entry_of(item.path(), &rel, ft)?;
        out.push((rel, e));
    }
    Ok(out)
}

/// The file, beside `.gitignore`, whose patterns (gitignore syntax) a `dir` source leaves
/// out of the artifact.
pub const SHIPIGNORE: &str = ".shipignore";

fn is_executable(meta: &std::fs::Metadata) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        meta.permissions().mode() & 0o111 != 0
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        false
    }
}

/// A reader that counts what it gave.
struct Counted<R> {
    inner: R,
    read: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}

/// The reproducible tar of a directory's files, as an artifact packs them (for tests).
#[cfg(test)]
pub(crate) fn tar_of_dir(dir: &Path) -> Result<Vec<u8>, ArtifactError> {
    write_tar(&read_dir(dir)?, Vec::new())
}

/// Writes the entries, sorted by path, as the reproducible tar to `out`; files left on
/// disk are streamed from it.
fn write_tar<W: Write>(entries: &[(String, Entry)], out: W) -> Result<W, ArtifactError> {
    let mut sorted: Vec<&(String, Entry)> = entries.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    sorted.dedup_by(|a, b| a.0 == b.0);
    let mut builder = tar::Builder::new(out);
    let here = Path::new("artifact");
    for (path, entry) in sorted {
        let mut header = tar::Header::new_gnu();
        header.set_mtime(FIXED_MTIME);
        header.set_uid(0);
        header.set_gid(0);
        let _ = header.set_username("");
        let _ = header.set_groupname("");
        match entry {
            Entry::Dir => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
                builder
                    .append_data(&mut header, format!("{path}/"), std::io::empty())
                    .map_err(io(here))?;
            }
            Entry::File { data, executable } => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(if *executable { 0o755 } else { 0o644 });
                header.set_size(data.len() as u64);
                builder
                    .append_data(&mut header, path, &data[..])
                    .map_err(io(here))?;
            }
            Entry::OnDisk {
                path: from,
                size,
                executable,
            } => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(if *executable { 0o755 } else { 0o644 });
                header.set_size(*size);
                let file = std::fs::File::open(from).map_err(io(from))?;
                let mut reader = Counted {
                    inner: file.take(*size),
                    read: 0,
                };
                builder
                    .append_data(&mut header, path, &mut reader)
                    .map_err(io(from))?;
                if reader.read != *size {
                    return Err(ArtifactError::Io {
                        path: from.clone(),
                        source: std::io::Error::other("it changed while it was packed: plan again"),
                    });
                }
            }
            Entry::Symlink(target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_mode(0o777);
                header.set_size(0);
                builder
                    .append_link(&mut header, path, target)
                    .map_err(io(here))?;
            }
        }
    }
    builder.into_inner().map_err(io(here))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(entries: &[(&str, tar::EntryType, &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, kind, link) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_size(0);
            h.set_mode(0o644);
            // Bypass the tar crate's own path checks: write the raw name.
            let name = h.as_old_mut().name.as_mut();
            name[..path.len()].copy_from_slice(path.as_bytes());
            if !link.is_empty() {
                h.set_link_name(link).unwrap();
            }
            h.set_cksum();
            b.append(&h, std::io::empty()).unwrap();
        }
        b.into_inner().unwrap()
    }

    /// A project in a directory of its repository packs that directory's files from the
    /// commit (not nothing: git run from there narrowed the tree to it a second time).
    #[test]
    fn a_git_source_in_a_directory_of_its_repository_packs_that_directory() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path();
        let web = repo.join("services/web");
        std::fs::create_dir_all(web.join("static")).unwrap();
        std::fs::write(web.join("app.py"), "print('hi')\n").unwrap();
        std::fs::write(web.join("static/site.css"), "body {}\n").unwrap();
        std::fs::write(repo.join("README"), "elsewhere\n").unwrap();
        let git = |args: &[&str]| {
            let ok = Command::new("git")
                .args(["-c", "user.email=t@e", "-c", "user.name=t"])
                .args(args)
                .current_dir(repo)
                .output()
                .unwrap()
                .status
                .success();
            assert!(ok, "git {args:?}");
        };
        git(&["init", "-q"]);
        git(&["add", "."]);
        git(&["commit", "-qm", "one"]);
        let (entries, _) =
            git_archive(&web, "HEAD", |tar| read_tar(tar, &mut Spill::memory())).unwrap();
        let paths: Vec<&str> = entries.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths, ["app.py", "static", "static/site.css"]);
    }

    /// A file added on its own through a link is packed whole, as the file it points to
    /// (its size is the file's, not the link's text's).
    #[test]
    fn a_file_added_through_a_link_is_packed_whole() {
        let dir = tempfile::tempdir().unwrap();
        let body = "key: value\n".repeat(20);
        std::fs::write(dir.path().join("real.yml"), &body).unwrap();
        std::os::unix::fs::symlink("real.yml", dir.path().join("cfg.yml")).unwrap();
        let entries = read_extra(&dir.path().join("cfg.yml"), "config/cfg.yml").unwrap();
        let tar = write_tar(&entries, Vec::new()).unwrap();
        let read = read_tar(&tar[..], &mut Spill::memory()).unwrap();
        let file = read.iter().find(|(p, _)| p == "config/cfg.yml").unwrap();
        assert!(
            matches!(&file.1, Entry::File { data, .. } if data == body.as_bytes()),
            "{:?}",
            file.1
        );
    }

    /// A tar's files past what may be held in memory are read into files of the packing's
    /// scratch directory; the tar written from them is the same, byte for byte, and the
    /// directory goes with the packing.
    #[test]
    fn files_of_a_tar_past_the_memory_budget_are_spilled_and_packed_the_same() {
        let mut b = tar::Builder::new(Vec::new());
        for (name, fill) in [("a", b'a'), ("b", b'b'), ("c", b'c')] {
            let mut h = tar::Header::new_gnu();
            h.set_size(100);
            h.set_mode(if name == "b" { 0o755 } else { 0o644 });
            h.set_cksum();
            b.append_data(&mut h, name, &[fill; 100][..]).unwrap();
        }
        let tar = b.into_inner().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let scratch = dir.path().join(".packing-1.d");
        let whole = read_tar(&tar[..], &mut Spill::memory()).unwrap();
        let mut spill = Spill::keeping(scratch.clone(), 150);
        let spilled = read_tar(&tar[..], &mut spill).unwrap();
        let kinds: Vec<bool> = spilled
            .iter()
            .map(|(_, e)| matches!(e, Entry::OnDisk { .. }))
            .collect();
        assert_eq!(kinds, [false, true, true]);
        assert_eq!(std::fs::read_dir(&scratch).unwrap().count(), 2);
        assert_eq!(
            write_tar(&spilled, Vec::new()).unwrap(),
            write_tar(&whole, Vec::new()).unwrap()
        );
        drop(spill);
        assert!(!scratch.exists());
    }

    #[test]
    fn entries_escaping_the_release_are_refused() {
        let cases: &[(&str, tar::EntryType, &str)] = &[
            ("../../etc/passwd", tar::EntryType::Regular, ""),
            ("/etc/passwd", tar::EntryType::Regular, ""),
            ("a/../../b", tar::EntryType::Regular, ""),
            ("link", tar::EntryType::Symlink, "/etc"),
            ("dir/link", tar::EntryType::Symlink, "../../etc"),
            ("hard", tar::EntryType::Link, "other"),
        ];
        for case in cases {
            let tar = tar_of(std::slice::from_ref(case));
            let err = read_tar(&tar[..], &mut Spill::memory()).unwrap_err();
            assert!(
                matches!(err, ArtifactError::Unsafe { .. }),
                "{case:?} gave {err}"
            );
        }
        let ok = tar_of(&[("dir/link", tar::EntryType::Symlink, "../other")]);
        assert_eq!(read_tar(&ok[..], &mut Spill::memory()).unwrap().len(), 1);
    }

    /// What a host is sent is fingerprinted from the stored bytes, and only if they still
    /// unpack to the plan's digest: in either encoding.
    #[test]
    fn a_fingerprint_is_of_the_bytes_and_checks_the_digest() {
        let dir = tempfile::tempdir().unwrap();
        let tar = tar_of(&[("app.py", tar::EntryType::Regular, "print(1)")]);
        let digest = format!("{:x}", Sha256::digest(&tar));
        let (zst, size) = store(dir.path(), &digest, &tar).unwrap();
        let bytes = std::fs::read(&zst).unwrap();
        assert_eq!(
            fingerprint(&zst, &digest).unwrap(),
            (size, format!("{:x}", Sha256::digest(&bytes)))
        );
        let (gz, _) = gz_of(&zst).unwrap();
        let gz_bytes = std::fs::read(&gz).unwrap();
        assert_eq!(
            fingerprint(&gz, &digest).unwrap().1,
            format!("{:x}", Sha256::digest(&gz_bytes))
        );
        // Bytes after the stream would be sent, and are not the plan's: refused.
        let mut trailing = gz_bytes.clone();
        trailing.extend_from_slice(b"extra");
        let odd = dir.path().join("odd.tar.gz");
        std::fs::write(&odd, &trailing).unwrap();
        assert!(fingerprint(&odd, &digest).is_err());
        // A second gzip member is read, as `gzip -dc` on a host reads it: not the digest.
        let mut members = gz_bytes.clone();
        members.extend_from_slice(&gz_bytes);
        std::fs::write(&odd, &members).unwrap();
        assert!(fingerprint(&odd, &digest).is_err());
        let other = "0".repeat(64);
        let wrong = fingerprint(&zst, &other).unwrap_err().to_string();
        assert!(wrong.contains("not the plan's"), "{wrong}");
        // Changed after it was stored: refused, whatever sum its new bytes have.
        let mut changed = tar.clone();
        changed[600] ^= 1;
        std::fs::write(&zst, zstd::bulk::compress(&changed, 3).unwrap()).unwrap();
        assert!(fingerprint(&zst, &digest).is_err());
    }

    /// What [`open`] and [`pack`] check of a tar's entries.
    fn checked(tar: &[u8]) -> Result<Vec<(String, Entry)>, ArtifactError> {
        let entries = read_tar(tar, &mut Spill::memory())?;
        check_links(&entries)?;
        Ok(entries)
    }

    #[test]
    fn chains_of_links_that_resolve_outside_are_refused() {
        use tar::EntryType::{Directory, Regular, Symlink};
        let refused: &[&[(&str, tar::EntryType, &str)]] = &[
            // Each harmless as text; `b` is the release's parent, `c` its parent.
            &[
                ("a", Symlink, "."),
                ("b", Symlink, "a/.."),
                ("c", Symlink, "b/.."),
                ("d", Symlink, "c/.."),
            ],
            // A link inside a directory that is a link to the root.
            &[
                ("up", Symlink, "."),
                ("x", Directory, ""),
                ("x/y", Symlink, "../up/.."),
            ],
            // Through a link to a deeper directory and back up too far.
            &[
                ("deep/er", Directory, ""),
                ("l", Symlink, "deep/er"),
                ("m", Symlink, "l/../../.."),
            ],
            // A loop.
            &[("p", Symlink, "q"), ("q", Symlink, "p")],
            // An entry under a link: tar would write it through the link.
            &[("d", Symlink, "."), ("d/REVISION", Regular, "")],
        ];
        for case in refused {
            let tar = tar_of(case);
            let err = checked(&tar[..]).unwrap_err();
            assert!(
                matches!(err, ArtifactError::Unsafe { .. }),
                "{case:?} gave {err}"
            );
        }
        let tar = tar_of(refused[0]);
        let message = checked(&tar[..]).unwrap_err().to_string();
        assert!(message.contains("`b -> a/..`"), "{message}");
        assert!(message.contains("through `a -> .`"), "{message}");
        assert!(message.contains("outside the release"), "{message}");

        // Links that stay inside, chained or not, dangling or not, are kept.
        let kept: &[(&str, tar::EntryType, &str)] = &[
            ("a", Symlink, "."),
            ("b", Symlink, "a/a/a/dist"),
            ("dist", Directory, ""),
            ("dist/app.js", Regular, ""),
            ("dist/latest", Symlink, "../b/app.js"),
            ("dist/up", Symlink, "../dist/.."),
            ("later", Symlink, "not/there/yet"),
        ];
        let tar = tar_of(kept);
        assert_eq!(checked(&tar[..]).unwrap().len(), kept.len());
    }

    #[test]
    fn an_opened_artifact_is_checked_as_a_built_one() {
        use tar::EntryType::Symlink;
        let tar = tar_of(&[
            ("a", Symlink, "."),
            ("b", Symlink, "a/.."),
            ("c", Symlink, "b/.."),
        ]);
        let zst = zstd::bulk::compress(&tar, ZSTD_LEVEL).unwrap();
        assert!(matches!(open(&zst), Err(ArtifactError::Unsafe { .. })));
    }

    #[test]
    fn same_content_same_digest_whatever_the_mtimes_and_order() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        for (dir, order) in [(&a, ["x", "y"]), (&b, ["y", "x"])] {
            std::fs::create_dir(dir.path().join("d")).unwrap();
            for name in order {
                std::fs::write(dir.path().join("d").join(name), name).unwrap();
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
        let cache = tempfile::tempdir().unwrap();
        let src = SourceConfig::Dir("d".into());
        let da = build(a.path(), &src, &[], cache.path()).unwrap();
        let db = build(b.path(), &src, &[], cache.path()).unwrap();
        assert_eq!(da.info.digest, db.info.digest);
        assert_eq!(da.info.entries, 2);
        std::fs::write(b.path().join("d/x"), "changed").unwrap();
        let dc = build(b.path(), &src, &[], cache.path()).unwrap();
        assert_ne!(da.info.digest, dc.info.digest);
    }

    #[test]
    fn a_streamed_tar_is_stored_as_the_same_bytes_as_one_in_memory() {
        // Any bytes: a megabyte that compresses some, not all.
        let tar: Vec<u8> = (0..262_144u32)
            .flat_map(|i| (i.wrapping_mul(2_654_435_761) % 1000).to_le_bytes())
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t.tar");
        std::fs::write(&file, &tar).unwrap();
        let (bulk, _) = store(&dir.path().join("bulk"), "d", &tar).unwrap();
        let (streamed, _) = store_from(&dir.path().join("streamed"), "d", &file).unwrap();
        assert_eq!(
            std::fs::read(bulk).unwrap(),
            std::fs::read(streamed).unwrap()
        );
    }
}
