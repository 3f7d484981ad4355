//! Shell shared by the layouts that keep releases under `releases/`.
//!
//! Tests use the shell's builtins (`[ -ef ]`, `[ -e ]`) and a program runs only when there
//! is work for it: each program started costs a fork and an exec on every host, every deploy.

use ship_core::HostState;
use ship_core::shell::quote;

/// The artifact this deploy received, as a shell word without its extension.
pub(crate) const RECEIVED: &str = "\"$SHIP_DEPLOY_TO/.ship/artifacts/$SHIP_DIGEST\"";

/// Unpacks `<base>.tar.zst` (kept by hosts with zstd) or else `<base>.tar.gz` into
/// `$SHIP_RELEASE_PATH`; `base` is a shell word. (`$SHIP_ARTIFACT`, set when the script
/// started, may not name an artifact received in this same script.)
pub(crate) fn extract(base: &str) -> String {
    format!(
        r#"if [ -s {base}.tar.zst ]; then
  zstd -dcq {base}.tar.zst | tar -xf - -C "$SHIP_RELEASE_PATH"
else
  tar -xzf {base}.tar.gz -C "$SHIP_RELEASE_PATH"
fi"#
    )
}

/// Makes the release from the host's object store (`delta = true`, see ship-core's
/// `delta` module): `<base>.skel.tar` unpacked in the deploy directory with the
/// release's path put before every name, so each file is a hard link to its object in
/// `.ship/objects/` (checked by the `upload` step just before: each object that came by its
/// sha256, each one kept unchanged since it came) and directories and symlinks are made as
/// the artifact has them. Only GNU tar's `--transform` does this in one program.
pub(crate) fn link_objects(base: &str) -> String {
    format!(
        r#"  ship_rel=${{SHIP_RELEASE_PATH#"$SHIP_DEPLOY_TO"/}}
  tar -xf {base}.skel.tar -C "$SHIP_DEPLOY_TO" --transform "s,^,$ship_rel/,rSH""#
    )
}

/// Refuses (exit 1) to go on when the artifact `base` (a shell word, as for [`extract`]) kept
/// on the host does not unpack to the tar of sha256 `digest` (a shell word): a cache that
/// was changed since it was checked on arrival. For what unpacks a kept artifact outside a
/// deploy (a rollback, a revert); a deploy checks its own in the `lock` step.
pub(crate) fn verify_kept(base: &str, digest: &str) -> String {
    format!(
        r#"if [ -s {base}.tar.zst ]; then ship_sum=$(zstd -dcq {base}.tar.zst | sha256sum); else ship_sum=$(gzip -dc {base}.tar.gz | sha256sum); fi
if [ "${{ship_sum%% *}}" != {digest} ]; then
  echo "cargo-ship: the artifact {digest} kept in .ship/artifacts does not have that sha256 (it has ${{ship_sum%% *}}): refusing to unpack it" >&2
  exit 1
fi"#
    )
}

/// Unpacks the artifact into a new `$SHIP_RELEASE_PATH`, refusing to touch the live release.
/// With `delta` (the plan's `delta = true`), a host that was sent a delta bundle, so keeps
/// no `.tar.zst`/`.tar.gz` of it, makes the release from its object store instead
/// ([`link_objects`]).
pub(crate) fn unpack(delta: bool) -> String {
    let make = if delta {
        format!(
            "if [ -s {r}.tar.zst ] || [ -s {r}.tar.gz ]; then\n{}\nelse\n{}\nfi",
            extract(RECEIVED),
            link_objects(RECEIVED),
            r = RECEIVED
        )
    } else {
        extract(RECEIVED)
    };
    format!(
        r#"if [ "$SHIP_DEPLOY_TO/current" -ef "$SHIP_RELEASE_PATH" ]; then
  echo "cargo-ship: $SHIP_RELEASE_PATH is the live release; refusing to unpack over it" >&2
  exit 1
fi
if [ -e "$SHIP_RELEASE_PATH" ] || [ -L "$SHIP_RELEASE_PATH" ]; then rm -rf "$SHIP_RELEASE_PATH"; fi
mkdir -p "$SHIP_RELEASE_PATH"
{make}
{}"#,
        write_revision(delta)
    )
}

/// Writes `REVISION` in the unpacked release, refusing (exit 1) when the artifact has it as a
/// symlink: the revision is never written through a link the artifact provided. With
/// `delta`, a REVISION the artifact has may be a hard link to the object store: it is
/// removed first, never written through.
pub(crate) fn write_revision(delta: bool) -> String {
    let replace = if delta {
        "\nif [ -e \"$SHIP_RELEASE_PATH/REVISION\" ]; then rm -f \"$SHIP_RELEASE_PATH/REVISION\"; fi"
    } else {
        ""
    };
    format!(
        r#"if [ -L "$SHIP_RELEASE_PATH/REVISION" ]; then
  echo "cargo-ship: the artifact has REVISION as a symlink: refusing to write the revision through it" >&2
  exit 1
fi{replace}
printf '%s\n' "$SHIP_REVISION" > "$SHIP_RELEASE_PATH/REVISION""#
    )
}

/// Points `current` at `target` (a shell word) with one `rename`: a new symlink made
/// aside, then moved over `current`, as Capistrano does.
pub(crate) fn link_current(target: &str) -> String {
    format!(
        r#"[ -d "$SHIP_DEPLOY_TO/.ship/tmp" ] || mkdir -p "$SHIP_DEPLOY_TO/.ship/tmp"
if [ -e "$SHIP_DEPLOY_TO/.ship/tmp/current" ] || [ -L "$SHIP_DEPLOY_TO/.ship/tmp/current" ]; then rm -f "$SHIP_DEPLOY_TO/.ship/tmp/current"; fi
ln -s {target} "$SHIP_DEPLOY_TO/.ship/tmp/current"
mv -fT "$SHIP_DEPLOY_TO/.ship/tmp/current" "$SHIP_DEPLOY_TO/current""#
    )
}

/// `current` pointed back at `releases/<dir>`.
pub(crate) fn activate_dir(dir: &str) -> String {
    link_current(&format!("\"$SHIP_DEPLOY_TO/releases/\"{}", quote(dir)))
}

/// The directory under `releases/` that a `current` link target names.
pub(crate) fn dir_of_link(deploy_to: &str, link: &str) -> Option<String> {
    let link = link.trim().trim_end_matches('/');
    if link.is_empty() {
        return None;
    }
    let rest = link
        .strip_prefix(&format!("{deploy_to}/releases/"))
        .or_else(|| link.strip_prefix("releases/"))
        .or_else(|| link.strip_prefix("./releases/"))?;
    (!rest.contains('/')).then(|| rest.to_owned())
}

/// Parses a `releases/` listing (one name a line) and the `current` link.
pub(crate) fn parse_state(deploy_to: &str, current: Option<&str>, listing: &str) -> HostState {
    let mut releases: Vec<String> = listing
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    releases.sort();
    releases.dedup();
    HostState {
        live: current.and_then(|c| dir_of_link(deploy_to, c)),
        releases,
        records: Vec::new(),
        half_made: None,
        deployed: Vec::new(),
        marked: Vec::new(),
        history: Vec::new(),
        revision_files: Default::default(),
    }
}
