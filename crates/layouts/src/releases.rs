//! The `timestamp` and `version` layouts: one directory per release under `releases/`.

use crate::shell::{activate_dir, link_current, parse_state, unpack};
use ship_core::{HostState, Layout, LayoutContext, ReleaseState};

/// `releases/<UTC timestamp>`: Capistrano's layout, byte for byte.
#[derive(Clone, Copy, Debug, Default)]
pub struct Timestamp;

/// `releases/<version>`: the version from Cargo.toml, package.json, pyproject.toml or
/// `--version`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Version;

fn locate() -> String {
    r#"SHIP_RELEASE_PATH="$SHIP_DEPLOY_TO/releases/$SHIP_RELEASE""#.to_owned()
}

/// Cleanup for layouts with one directory per release: keep `keep` directories; never the
/// new one or the live one (which becomes the previous good one once the new one is live;
/// when nothing is live, the previous good one is kept instead); remove failed releases
/// first, then the oldest (by record order; directories with no record count as older, by
/// name, versions ordered as versions).
pub(crate) fn cleanup(state: &HostState, new_dir: &str, keep: usize) -> Vec<String> {
    let previous = match state.live {
        Some(_) => None,
        None => state.previous_good().map(str::to_owned),
    };
    let protected = |d: &str| {
        Some(d) == state.live.as_deref() || d == new_dir || Some(d) == previous.as_deref()
    };
    let mut on_disk: Vec<String> = state.releases.clone();
    if !on_disk.iter().any(|d| d == new_dir) {
        on_disk.push(new_dir.to_owned());
    }
    // Age rank: unrecorded directories by name first, then records oldest first.
    let age = |d: &str| -> (usize, String) {
        match state.records.iter().rposition(|r| r.dir == d) {
            Some(i) => (i + 1, String::new()),
            None => (0, d.to_owned()),
        }
    };
    let failed = |d: &str| {
        state.half_made.as_deref() == Some(d)
            || state
                .record_of(d)
                .is_some_and(|r| r.state == ReleaseState::Failed)
    };
    let mut candidates: Vec<&String> = on_disk.iter().filter(|d| !protected(d)).collect();
    candidates.sort_by(|a, b| {
        let ((ra, na), (rb, nb)) = (age(a), age(b));
        (!failed(a), ra)
            .cmp(&(!failed(b), rb))
            .then_with(|| ship_core::layout::release_order(&na, &nb))
    });
    let mut remaining = on_disk.len();
    let mut removed = Vec::new();
    for d in candidates {
        if remaining <= keep && !failed(d) {
            break;
        }
        removed.push(d.clone());
        remaining -= 1;
    }
    removed.sort();
    removed
}

macro_rules! dir_per_release {
    ($ty:ty, $name:literal, { $($own:tt)* }) => {
        impl Layout for $ty {
            fn name(&self) -> &'static str {
                $name
            }
            $($own)*
            fn release_dir(&self, cx: &LayoutContext<'_>) -> String {
                format!("releases/{}", cx.release)
            }
            fn locate(&self, _cx: &LayoutContext<'_>) -> String {
                locate()
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
            fn cleanup(&self, state: &HostState, new_dir: &str, keep: usize) -> Vec<String> {
                cleanup(state, new_dir, keep)
            }
            fn parse_state(
                &self,
                deploy_to: &str,
                current: Option<&str>,
                listing: &str,
            ) -> HostState {
                parse_state(deploy_to, current, listing)
            }
        }
    };
}

/// Whether `id` is a UTC time written `YYYYMMDDhhmmss`, as the timestamp layout names releases.
fn is_timestamp(id: &str) -> bool {
    id.len() == 14 && id.bytes().all(|b| b.is_ascii_digit())
}

dir_per_release!(Timestamp, "timestamp", {
    fn about(&self) -> &'static str {
        "releases/<UTC time>, as Capistrano"
    }
    fn release_time(&self, id: &str) -> Option<String> {
        is_timestamp(id).then(|| {
            format!(
                "{}-{}-{}T{}:{}:{}Z",
                &id[..4],
                &id[4..6],
                &id[6..8],
                &id[8..10],
                &id[10..12],
                &id[12..]
            )
        })
    }
    fn check_release_id(&self, id: &str) -> Result<(), String> {
        if is_timestamp(id) {
            Ok(())
        } else {
            Err(
                "the timestamp layout names releases by 14 digits (UTC YYYYMMDDhhmmss, as \
                 Capistrano does), e.g. 20261122235800"
                    .to_owned(),
            )
        }
    }
});
dir_per_release!(Version, "version", {
    fn needs_version(&self) -> bool {
        true
    }
});
