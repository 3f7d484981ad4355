//! The release-layout strategy trait and the host state it decides from.
//!
//! A [`Layout`] is pure: it returns shell text and decisions as data, and never runs
//! anything. Implementations live in the `ship-layouts` crate, whose registry is the one
//! place that knows them by name: everything else asks the trait (what a phase does, which
//! records a deploy keeps, what a release id may be, how an abort or a revert puts things
//! back), so a new layout is one file there and one line in its registry.

use serde::{Deserialize, Serialize};

/// What a layout needs to know to write its commands.
#[derive(Clone, Copy, Debug)]
pub struct LayoutContext<'a> {
    /// The absolute deploy directory.
    pub deploy_to: &'a str,
    /// The new release's id.
    pub release: &'a str,
    /// Whether the plan has `delta = true`: a release may be made of hard links to the
    /// host's object store (see `crate::delta`) rather than unpacked from the artifact.
    pub delta: bool,
}

/// The state of a release in `.ship/releases.json`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReleaseState {
    /// `current` points at it.
    Live,
    /// It was live and healthy; a rollback may return to it.
    Good,
    /// Its deploy failed; never a rollback target, removed first by cleanup.
    Failed,
    /// It was live and was rolled back from.
    RolledBack,
}

/// One release recorded in `.ship/releases.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseRecord {
    /// The release id.
    pub id: String,
    /// The directory under `releases/` (the id, or `a`/`b` for the ab layout).
    pub dir: String,
    /// The source revision (a git commit), when known.
    pub revision: Option<String>,
    /// The artifact's sha256.
    pub digest: String,
    /// When it was deployed (RFC 3339, UTC).
    pub time: String,
    /// Who deployed it.
    pub user: String,
    /// Its state.
    pub state: ReleaseState,
}

/// What a host has: read when the lock is taken, and given to the layout's decisions.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostState {
    /// The directory under `releases/` that `current` points at, if any.
    pub live: Option<String>,
    /// The directories under `releases/`, sorted by name.
    pub releases: Vec<String>,
    /// `.ship/releases.json`, oldest first.
    pub records: Vec<ReleaseRecord>,
    /// A release directory a killed deploy left half-made: cleanup removes it first.
    #[serde(default)]
    pub half_made: Option<String>,
    /// The releases `revisions.log` says were deployed to the end (Capistrano writes it
    /// too): what makes a directory with no record a release a rollback may go to. Read by
    /// `rollback` and `releases`, not by a deploy.
    #[serde(default)]
    pub deployed: Vec<String>,
    /// Every release directory a deploy marked as being prepared and did not finish (the
    /// first of them is `half_made`): never a rollback's target, whatever its record says (a
    /// slot or a release id reused by the deploy that was killed).
    #[serde(default)]
    pub marked: Vec<String>,
    /// The last lines of `revisions.log` that say who deployed what, or rolled back to it
    /// (Capistrano's and cargo ship's alike), oldest first: what `releases` shows of a
    /// release made by another tool, and the order releases went live in. Read by
    /// `releases` and `rollback` (see [`crate::records::history_probe`]), not by a deploy.
    #[serde(default)]
    pub history: Vec<crate::records::Logged>,
    /// The first line of each release directory's `REVISION` (directory → revision), as
    /// Capistrano and cargo ship write it. Read with [`HostState::history`].
    #[serde(default)]
    pub revision_files: std::collections::BTreeMap<String, String>,
}

/// Orders release names as people read them: runs of digits by their value, so `1.9.0` comes
/// before `1.10.0` (and 14-digit timestamps still sort by time).
pub fn release_order(a: &str, b: &str) -> std::cmp::Ordering {
    fn chunks(s: &str) -> Vec<(bool, &str)> {
        let mut out = Vec::new();
        let mut start = 0;
        let bytes = s.as_bytes();
        for i in 1..=bytes.len() {
            if i == bytes.len() || bytes[i].is_ascii_digit() != bytes[start].is_ascii_digit() {
                out.push((bytes[start].is_ascii_digit(), &s[start..i]));
                start = i;
            }
        }
        out
    }
    let (x, y) = (chunks(a), chunks(b));
    for (p, q) in x.iter().zip(&y) {
        let ord = match (p, q) {
            ((true, m), (true, n)) => {
                let (m, n) = (m.trim_start_matches('0'), n.trim_start_matches('0'));
                m.len().cmp(&n.len()).then_with(|| m.cmp(n))
            }
            ((_, m), (_, n)) => m.cmp(n),
        };
        if ord != std::cmp::Ordering::Equal {
            return ord;
        }
    }
    // One is the other with more: a pre-release suffix (`-rc.1`, `rc1`, `a1`, `b2`, `.dev3`,
    // `-alpha`) comes before the release it leads to (semver, PEP 440); anything else after.
    let pre = |rest: &[(bool, &str)]| {
        rest.first().is_some_and(|(digits, text)| {
            let t = text
                .trim_start_matches(['-', '.', '_', '~'])
                .to_ascii_lowercase();
            !digits
                && (text.starts_with(['-', '~'])
                    || [
                        "a", "b", "c", "rc", "alpha", "beta", "pre", "preview", "dev",
                    ]
                    .iter()
                    .any(|p| t == *p))
        })
    };
    match x.len().cmp(&y.len()) {
        std::cmp::Ordering::Greater if pre(&x[y.len()..]) => std::cmp::Ordering::Less,
        std::cmp::Ordering::Less if pre(&y[x.len()..]) => std::cmp::Ordering::Greater,
        other => other.then_with(|| a.cmp(b)),
    }
}

/// What a deploy of `release` into directory `new_dir` does to a release already on a host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Redeploy {
    /// Nothing of that name is there: a new release.
    New,
    /// `new_dir` is the live release: a deploy would unpack over what users are served. It
    /// is refused before anything changes (a version deployed again, a pinned release id).
    Live,
    /// A release directory named by this release id is there, not live (a failed deploy, a
    /// version rolled back from): the deploy replaces it, and says so. Its record's state,
    /// if it has one.
    Replaces(Option<ReleaseState>),
}

/// Whether deploying `release` into `new_dir` (see [`Layout::new_dir`]) meets a release
/// already on the host in `state`. Layouts whose directories are slots (`a`/`b`) or that
/// keep none never meet one: only a directory named by the release id is the same release.
pub fn redeploy_of(state: &HostState, new_dir: &str, release: &str) -> Redeploy {
    if new_dir != release || !state.releases.iter().any(|r| r == new_dir) {
        return Redeploy::New;
    }
    if state.live.as_deref() == Some(new_dir) {
        return Redeploy::Live;
    }
    Redeploy::Replaces(
        state
            .records
            .iter()
            .rev()
            .find(|r| r.id == release)
            .map(|r| r.state),
    )
}

#[cfg(test)]
mod tests {
    use super::release_order;
    use std::cmp::Ordering::{Greater, Less};

    #[test]
    fn releases_are_ordered_as_versions() {
        for (older, newer) in [
            ("1.9.0", "1.10.0"),
            ("20261101000009", "20261101000010"),
            ("1.0.0-rc.1", "1.0.0"),
            ("1.0rc1", "1.0"),
            ("1.0a1", "1.0b1"),
            ("1.0.dev3", "1.0"),
            ("1.0", "1.0.1"),
            ("v2", "v10"),
        ] {
            assert_eq!(release_order(older, newer), Less, "{older} < {newer}");
            assert_eq!(release_order(newer, older), Greater, "{newer} > {older}");
        }
    }
}

impl HostState {
    /// The record of the release that is live: the newest record of the directory `current`
    /// points at, whatever state `.ship/releases.json` gives it (another tool, or a hand,
    /// may have moved `current`); none when `current` points at no release directory or at
    /// one with no record. For a layout without release directories (nothing under
    /// `releases/`, no `current` link read), the record `.ship/releases.json` says is live.
    pub fn live_record(&self) -> Option<&ReleaseRecord> {
        match &self.live {
            Some(dir) => self.record_of(dir),
            None if self.releases.is_empty() => self
                .records
                .iter()
                .rev()
                .find(|r| r.state == ReleaseState::Live),
            None => None,
        }
    }

    /// The record of the release in directory `dir`: the newest one, as ab reuses directories.
    pub fn record_of(&self, dir: &str) -> Option<&ReleaseRecord> {
        self.records.iter().rev().find(|r| r.dir == dir)
    }

    /// The directory of the newest good release other than the live one: where a rollback goes.
    ///
    /// With `revisions.log` read ([`HostState::history`]), "newest" is the order releases
    /// went live in, whoever made them (Capistrano and cargo ship alike): the good release
    /// that went live last before the live one did, recorded or not. Without it, the newest
    /// good record, else the newest finished directory with no record older than the live one.
    pub fn previous_good(&self) -> Option<&str> {
        if let Some(dir) = self.previous_in_history() {
            return Some(dir);
        }
        self.records
            .iter()
            .rev()
            .filter(|r| matches!(r.state, ReleaseState::Good | ReleaseState::Live))
            .map(|r| r.dir.as_str())
            .find(|d| Some(*d) != self.live.as_deref() && self.releases.iter().any(|x| x == d))
            .or_else(|| {
                // A release directory with no record (e.g. left by Capistrano), older than
                // the live one, that revisions.log says was deployed to the end and that no
                // killed deploy left half-made: the newest such one.
                let live = self.live.as_deref()?;
                self.releases
                    .iter()
                    .filter(|d| {
                        release_order(d, live) == std::cmp::Ordering::Less
                            && self.record_of(d).is_none()
                            && self.complete(d)
                    })
                    .max_by(|a, b| release_order(a, b))
                    .map(String::as_str)
            })
    }

    /// [`HostState::previous_good`] by the order of `revisions.log`, when it was read and
    /// names the live release.
    fn previous_in_history(&self) -> Option<&str> {
        let live = self.live.as_deref()?;
        let id_of = |d: &str| self.record_of(d).map_or(d, |r| r.id.as_str()).to_owned();
        let went_live = |d: &str| {
            let id = id_of(d);
            self.history.iter().rposition(|l| l.id() == id)
        };
        let now = went_live(live)?;
        self.releases
            .iter()
            .filter(|d| d.as_str() != live && self.complete(d))
            .filter(|d| match self.record_of(d) {
                Some(r) => matches!(r.state, ReleaseState::Good | ReleaseState::Live),
                None => crate::records::unrecorded_state(self, d) == Some(ReleaseState::Good),
            })
            .filter_map(|d| went_live(d).filter(|i| *i < now).map(|i| (i, d)))
            .max_by_key(|(i, _)| *i)
            .map(|(_, d)| d.as_str())
    }

    /// Whether directory `dir` is known not to hold a finished release: a deploy that did not
    /// finish marked it, or its last deploy failed.
    pub fn unfinished(&self, dir: &str) -> bool {
        self.half_made.as_deref() == Some(dir)
            || self.marked.iter().any(|m| m == dir)
            || self
                .record_of(dir)
                .is_some_and(|r| r.state == ReleaseState::Failed)
    }

    /// Whether directory `dir` holds a finished release: not [`HostState::unfinished`], and
    /// recorded or named in `revisions.log`.
    pub fn complete(&self, dir: &str) -> bool {
        !self.unfinished(dir)
            && (self.record_of(dir).is_some() || self.deployed.iter().any(|d| d == dir))
    }
}

/// Why a layout cannot do what was asked.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum LayoutError {
    /// No release to roll back to.
    #[error("no previous good release to roll back to (releases here: {})", if .available.is_empty() { "none".to_owned() } else { .available.join(", ") })]
    NoPreviousRelease {
        /// The releases the host has.
        available: Vec<String>,
    },
    /// The asked-for release is not on the host.
    #[error("release `{wanted}` is not on this host; it has: {}", if .available.is_empty() { "none".to_owned() } else { .available.join(", ") })]
    UnknownRelease {
        /// The release asked for.
        wanted: String,
        /// The releases the host has.
        available: Vec<String>,
    },
    /// The asked-for release failed when it was deployed.
    #[error("release `{0}` failed when it was deployed; roll back to a good release")]
    FailedRelease(String),
    /// The asked-for release was never finished: a killed deploy left it, or nothing says it
    /// was deployed to the end.
    #[error(
        "release `{0}` was never finished (a deploy of it was killed or failed, or nothing records it as deployed); roll back to a finished release"
    )]
    Unfinished(String),
}

/// A release-directory strategy: ship-layouts registers timestamp, version, ab and single.
///
/// Besides its decisions, a layout returns shell text (one or more lines, with no trailing
/// newline) run on the host with `set -eu` and these variables set: `SHIP_DEPLOY_TO`, `SHIP_RELEASE`, `SHIP_RELEASE_PATH` (set by [`Layout::locate`]),
/// `SHIP_DIGEST`, `SHIP_ARTIFACT` (the artifact's path on the host, `.tar.zst` or `.tar.gz`,
/// as found when the script started) and `SHIP_REVISION`.
pub trait Layout: Send + Sync {
    /// The name `Ship.toml` and the plan use (`timestamp`).
    fn name(&self) -> &'static str;
    /// A few words `cargo ship init` says of it (`two slots`); empty when the name says it.
    fn about(&self) -> &'static str {
        ""
    }
    /// Whether `switch` is atomic (one `rename`). The plan says so when it is not.
    fn atomic(&self) -> bool {
        true
    }
    /// Whether each release keeps a directory of its own under `releases/`, which its
    /// record names. When not (one directory updated in place), a record names the
    /// artifact a rollback unpacks again: deploys trim the records (see
    /// [`Layout::kept_records`]) and never drop one because its directory was reused.
    fn keeps_directories(&self) -> bool {
        true
    }
    /// The directory whose earlier records the new release in `new_dir` replaces (their
    /// contents are gone: the ab layout's slot, a version deployed again), if any: `new_dir`
    /// when [`Layout::keeps_directories`].
    fn replaced<'d>(&self, new_dir: &'d str) -> Option<&'d str> {
        self.keeps_directories().then_some(new_dir)
    }
    /// The records a host keeps of a deploy's `records` (oldest first): all of them when
    /// cleanup counts directories; else the newest `keep` (at least 2, so that a rollback
    /// has somewhere to go).
    fn kept_records(&self, mut records: Vec<ReleaseRecord>, keep: usize) -> Vec<ReleaseRecord> {
        if !self.keeps_directories() {
            let extra = records.len().saturating_sub(keep.max(2));
            records.drain(..extra);
        }
        records
    }
    /// Whether new releases are named by the application's version (configured, `--version`,
    /// or read from the project) rather than by the time of the deploy.
    fn needs_version(&self) -> bool {
        false
    }
    /// Checks that `id` may name a release of this layout, beyond the rules of every release
    /// id ([`crate::stage::check_release_id`]); the error says what this layout wants.
    fn check_release_id(&self, _id: &str) -> Result<(), String> {
        Ok(())
    }
    /// The `prepare` step as the plan describes it.
    fn prepare_summary(&self, cx: &LayoutContext<'_>) -> String {
        format!("unpack into {}, write REVISION", self.release_dir(cx))
    }
    /// The `switch` step as the plan describes it.
    fn switch_summary(&self, cx: &LayoutContext<'_>) -> String {
        format!("current → {} (atomic rename)", self.release_dir(cx))
    }
    /// The `cleanup` step as the plan describes it, for `keep_releases = keep`.
    fn cleanup_summary(&self, keep: usize) -> String {
        format!(
            "keep {keep} releases: never the live or the previous good one; failed ones go first; \
             and the artifacts they came from"
        )
    }
    /// Where the new release goes, as the plan prints it (`releases/20261122235800`).
    fn release_dir(&self, cx: &LayoutContext<'_>) -> String;
    /// Shell that sets `SHIP_RELEASE_PATH`; runs at the start of every script on the host.
    fn locate(&self, cx: &LayoutContext<'_>) -> String;
    /// Shell that creates the release directory and unpacks the artifact into it.
    fn prepare(&self, cx: &LayoutContext<'_>) -> String;
    /// Shell that makes the new release live.
    fn switch(&self, cx: &LayoutContext<'_>) -> String;
    /// Shell that makes release directory `dir` live again (a rollback or a revert).
    fn activate(&self, cx: &LayoutContext<'_>, dir: &str) -> String;
    /// Shell that undoes a `prepare` which started (a deploy stopped before `switch`) on a
    /// host that was in `state`: the half-made new release goes, what is live stays.
    fn discard_new(&self, _cx: &LayoutContext<'_>, _state: &HostState) -> String {
        // `-ef`, not the link's text: whatever the link says (relative, through a symlinked
        // deploy directory), the directory it leads to is never removed.
        "if [ ! \"$SHIP_DEPLOY_TO/current\" -ef \"$SHIP_RELEASE_PATH\" ]; then\n  rm -rf \"$SHIP_RELEASE_PATH\"\nfi".to_owned()
    }
    /// Shell that puts back what was live in `state` after the switch (a revert):
    /// [`Layout::activate`] of [`Layout::revert_target`], or [`Layout::revert_to_nothing`].
    fn revert(&self, cx: &LayoutContext<'_>, state: &HostState) -> String {
        match self.revert_target(state) {
            Some(target) => self.activate(cx, &target),
            None => self.revert_to_nothing(),
        }
    }
    /// Shell that reverts a host on which nothing was live before the deploy.
    fn revert_to_nothing(&self) -> String {
        "rm -f \"$SHIP_DEPLOY_TO/current\"".to_owned()
    }
    /// The directory under `releases/` the new release goes into on a host in `state`.
    fn new_dir(&self, _state: &HostState, release: &str) -> String {
        release.to_owned()
    }
    /// What [`Layout::activate`] takes to put back what is live in `state` (a revert); `None`
    /// when nothing is live.
    fn revert_target(&self, state: &HostState) -> Option<String> {
        state.live.clone()
    }
    /// The release directory a rollback goes to: `to`, or the previous good release.
    fn rollback_target(&self, state: &HostState, to: Option<&str>) -> Result<String, LayoutError> {
        let available = state.releases.clone();
        match to {
            Some(id) => {
                let record = state.records.iter().rev().find(|r| r.id == id);
                let dir = record.map_or(id, |r| r.dir.as_str());
                if !state.releases.iter().any(|d| d == dir) {
                    return Err(LayoutError::UnknownRelease {
                        wanted: id.to_owned(),
                        available,
                    });
                }
                if record.is_some_and(|r| r.state == ReleaseState::Failed) {
                    return Err(LayoutError::FailedRelease(id.to_owned()));
                }
                if !state.complete(dir) {
                    return Err(LayoutError::Unfinished(id.to_owned()));
                }
                Ok(dir.to_owned())
            }
            None => state
                .previous_good()
                .map(str::to_owned)
                .ok_or(LayoutError::NoPreviousRelease { available }),
        }
    }
    /// The record a rollback to `target` (what [`Layout::rollback_target`] returned) makes
    /// live: the newest one of that directory, or one made up for a directory with no record.
    /// What the host's `revisions.log` and `REVISION` files say of it fills in what the
    /// record lacks (a directory left by Capistrano has no record: its time, deployer and
    /// revision come from there).
    fn rollback_record(&self, state: &HostState, target: &str) -> ReleaseRecord {
        let mut record = crate::ops::target_record(state, target);
        let time = self.release_time(&record.id);
        crate::records::fill_in(&mut record, state, time);
        record
    }
    /// When release `id` was made, as RFC 3339 UTC, if its name says so (the timestamp
    /// layout's names are UTC times): for releases with no record (Capistrano's).
    fn release_time(&self, _id: &str) -> Option<String> {
        None
    }
    /// `state` with its records made to agree with its directory (see
    /// [`crate::records::reconcile`]), and where they disagreed; for a layout without
    /// release directories, the records are the only account and stay as they are.
    fn reconcile(&self, state: &HostState) -> (HostState, Vec<crate::records::Drift>) {
        if self.keeps_directories() {
            crate::records::reconcile(state)
        } else {
            (state.clone(), Vec::new())
        }
    }
    /// The release directories cleanup removes: never the live one, the new one, or the
    /// previous good one; failed releases first, then the oldest, until `keep` remain.
    fn cleanup(&self, state: &HostState, new_dir: &str, keep: usize) -> Vec<String>;
    /// Parses what the host reported: `current`'s link target and the `releases/` listing.
    fn parse_state(&self, deploy_to: &str, current_link: Option<&str>, listing: &str) -> HostState;
}
