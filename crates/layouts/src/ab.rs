//! The `ab` layout: two slots, `releases/a` and `releases/b`; the new release goes into
//! whichever is not live, and a rollback swaps back.

use crate::shell::{activate_dir, link_current, parse_state, unpack};
use ship_core::{HostState, Layout, LayoutContext, LayoutError};

/// Two alternating slots. Cleanup has nothing to do; a rollback returns to the other slot.
#[derive(Clone, Copy, Debug, Default)]
pub struct Ab;

impl Layout for Ab {
    fn name(&self) -> &'static str {
        "ab"
    }
    fn about(&self) -> &'static str {
        "two slots"
    }
    fn cleanup_summary(&self, _keep: usize) -> String {
        "remove artifacts neither slot came from: the ab layout keeps its two slots".to_owned()
    }
    fn release_dir(&self, _cx: &LayoutContext<'_>) -> String {
        "releases/a or releases/b, whichever is not live".to_owned()
    }
    fn locate(&self, _cx: &LayoutContext<'_>) -> String {
        // `-ef`, not the link's text: `current` made by hand as `releases/a` (relative) is
        // slot a too, and the new release must never be the live one.
        r#"if [ "$SHIP_DEPLOY_TO/current" -ef "$SHIP_DEPLOY_TO/releases/a" ]; then
  SHIP_RELEASE_PATH="$SHIP_DEPLOY_TO/releases/b"
else
  SHIP_RELEASE_PATH="$SHIP_DEPLOY_TO/releases/a"
fi"#
        .to_owned()
    }
    fn prepare(&self, cx: &LayoutContext<'_>) -> String {
        unpack(cx.delta)
    }
    fn switch(&self, _cx: &LayoutContext<'_>) -> String {
        link_current("\"$SHIP_RELEASE_PATH\"")
    }
    fn activate(&self, _cx: &LayoutContext<'_>, dir: &str) -> String {
        activate_dir(dir)
    }
    fn rollback_target(&self, state: &HostState, to: Option<&str>) -> Result<String, LayoutError> {
        let other = match state.live.as_deref() {
            Some("a") => "b",
            _ => "a",
        };
        let available = state.releases.clone();
        if !state.releases.iter().any(|d| d == other) {
            return Err(LayoutError::NoPreviousRelease { available });
        }
        // Only cargo ship writes the slots: a slot with no record is taken as finished.
        if state.unfinished(other) {
            let id = state.record_of(other).map_or(other, |r| r.id.as_str());
            return Err(LayoutError::Unfinished(id.to_owned()));
        }
        match to {
            None => Ok(other.to_owned()),
            Some(id) => {
                let slot = state
                    .records
                    .iter()
                    .rev()
                    .find(|r| r.id == id)
                    .map_or(id, |r| r.dir.as_str());
                if slot == other {
                    Ok(other.to_owned())
                } else {
                    Err(LayoutError::UnknownRelease {
                        wanted: id.to_owned(),
                        available,
                    })
                }
            }
        }
    }
    fn new_dir(&self, state: &HostState, _release: &str) -> String {
        match state.live.as_deref() {
            Some("a") => "b".to_owned(),
            _ => "a".to_owned(),
        }
    }
    fn cleanup(&self, _state: &HostState, _new_dir: &str, _keep: usize) -> Vec<String> {
        Vec::new()
    }
    fn parse_state(&self, deploy_to: &str, current: Option<&str>, listing: &str) -> HostState {
        let mut state = parse_state(deploy_to, current, listing);
        state.releases.retain(|d| d == "a" || d == "b");
        state
    }
}
