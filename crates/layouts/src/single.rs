//! The `single` layout: one directory, `current/`, updated in place. Not atomic — the plan
//! says so — and a rollback unpacks the previous artifact again.

use crate::shell::{RECEIVED, extract, verify_kept, write_revision};
use ship_core::shell::quote;
use ship_core::{HostState, Layout, LayoutContext, LayoutError, ReleaseRecord, ReleaseState, ops};

/// One directory updated in place. `release_dir` is `current`; `switch` does nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct Single;

impl Layout for Single {
    fn name(&self) -> &'static str {
        "single"
    }
    fn about(&self) -> &'static str {
        "in place"
    }
    fn atomic(&self) -> bool {
        false
    }
    /// One directory: the records name artifacts, and are trimmed to `keep_releases`.
    fn keeps_directories(&self) -> bool {
        false
    }
    fn prepare_summary(&self, cx: &LayoutContext<'_>) -> String {
        format!(
            "unpack over {}/ IN PLACE: the single layout is not atomic, the new files are live from here on",
            self.release_dir(cx)
        )
    }
    fn switch_summary(&self, _cx: &LayoutContext<'_>) -> String {
        "nothing to switch: the single layout updated current/ in place".to_owned()
    }
    fn cleanup_summary(&self, _keep: usize) -> String {
        "remove artifacts no kept release came from: the single layout has one directory".to_owned()
    }
    fn release_dir(&self, _cx: &LayoutContext<'_>) -> String {
        "current".to_owned()
    }
    fn locate(&self, _cx: &LayoutContext<'_>) -> String {
        r#"SHIP_RELEASE_PATH="$SHIP_DEPLOY_TO/current""#.to_owned()
    }
    fn prepare(&self, _cx: &LayoutContext<'_>) -> String {
        unpack_in_place(RECEIVED)
    }
    fn switch(&self, _cx: &LayoutContext<'_>) -> String {
        ": the single layout updated current/ in place".to_owned()
    }
    /// For this layout `dir` is the digest of the artifact to unpack again.
    fn activate(&self, _cx: &LayoutContext<'_>, dir: &str) -> String {
        let base = format!("\"$SHIP_DEPLOY_TO/.ship/artifacts/\"{}", quote(dir));
        // The kept artifact is checked before `current/` is emptied: what a rollback puts
        // back must be what was deployed under that digest.
        format!(
            "{}\n{}",
            verify_kept(&base, &quote(dir)),
            unpack_in_place(&base)
        )
    }
    /// The digest of the previous good artifact (or of release `to`).
    fn rollback_target(&self, state: &HostState, to: Option<&str>) -> Result<String, LayoutError> {
        let ids: Vec<String> = state.records.iter().map(|r| r.id.clone()).collect();
        let record = match to {
            Some(id) => state
                .records
                .iter()
                .rev()
                .find(|r| r.id == id)
                .ok_or_else(|| LayoutError::UnknownRelease {
                    wanted: id.to_owned(),
                    available: ids.clone(),
                })?,
            None => state
                .records
                .iter()
                .rev()
                .find(|r| r.state == ReleaseState::Good)
                .ok_or(LayoutError::NoPreviousRelease { available: ids })?,
        };
        if record.state == ReleaseState::Failed {
            return Err(LayoutError::FailedRelease(record.id.clone()));
        }
        Ok(record.digest.clone())
    }
    /// `current/` was changed in place: unpack the live release's artifact again, or, with
    /// nothing live before, remove it.
    fn discard_new(&self, cx: &LayoutContext<'_>, state: &HostState) -> String {
        self.revert(cx, state)
    }
    fn revert_to_nothing(&self) -> String {
        "rm -rf \"$SHIP_RELEASE_PATH\"".to_owned()
    }
    /// `target` is a digest: the newest record of that artifact.
    fn rollback_record(&self, state: &HostState, target: &str) -> ReleaseRecord {
        state
            .records
            .iter()
            .rev()
            .find(|r| r.digest == target)
            .cloned()
            .unwrap_or_else(|| ops::target_record(state, target))
    }
    fn new_dir(&self, _state: &HostState, _release: &str) -> String {
        "current".to_owned()
    }
    /// The digest of the live release's artifact, unpacked again by a revert.
    fn revert_target(&self, state: &HostState) -> Option<String> {
        state.live_record().map(|r| r.digest.clone())
    }
    fn cleanup(&self, _state: &HostState, _new_dir: &str, _keep: usize) -> Vec<String> {
        Vec::new()
    }
    fn parse_state(&self, _deploy_to: &str, _current: Option<&str>, _listing: &str) -> HostState {
        HostState::default()
    }
}

/// Empties `current/` and unpacks the artifact `base` (a shell word, see [`extract`]) into it.
fn unpack_in_place(base: &str) -> String {
    format!(
        r#"if [ -L "$SHIP_RELEASE_PATH" ]; then
  echo "cargo-ship: $SHIP_RELEASE_PATH is a symlink: this host was deployed with another layout" >&2
  exit 1
fi
mkdir -p "$SHIP_RELEASE_PATH"
find "$SHIP_RELEASE_PATH" -mindepth 1 -maxdepth 1 -exec rm -rf {{}} +
{}
{}"#,
        extract(base),
        write_revision(false)
    )
}
