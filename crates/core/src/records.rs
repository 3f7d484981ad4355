//! What a host reports and keeps: the state lines printed by `lock`, and the release
//! records of `.ship/releases.json`, updated as data here and written back by a script.

use crate::layout::{ReleaseRecord, ReleaseState};
use crate::script::STATE_MARKER;

/// What the `lock` step printed about the host.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Probe {
    /// Where `current` points (empty when it does not exist).
    pub current: Option<String>,
    /// The names under `releases/`, one a line.
    pub listing: String,
    /// Whether `.ship/artifacts/<digest>.tar.gz` (or `.tar.zst`) is there already.
    pub artifact_present: bool,
    /// Whether the host has `zstd`, to be sent the artifact zstd-compressed.
    pub zstd: bool,
    /// The release directory a deploy started to prepare and never recorded (it was killed).
    pub preparing: Option<String>,
    /// `.ship/releases.json`, if there is one.
    pub records: Option<String>,
}

impl Probe {
    /// Reads the `::ship::state` lines out of a script's output.
    pub fn parse(stdout: &str) -> Probe {
        let mut p = Probe::default();
        let mut records: Option<String> = None;
        let prefix = format!("{STATE_MARKER} ");
        for line in stdout.lines() {
            if let Some(r) = records.as_mut() {
                if line == format!("{STATE_MARKER} end") {
                    p.records = records.take();
                } else {
                    r.push_str(line);
                    r.push('\n');
                }
                continue;
            }
            let Some(rest) = line.strip_prefix(&prefix) else {
                continue;
            };
            if let Some(link) = rest.strip_prefix("current ") {
                p.current = (!link.is_empty()).then(|| link.to_owned());
            } else if rest == "current" {
                p.current = None;
            } else if let Some(name) = rest.strip_prefix("release ") {
                p.listing.push_str(name);
                p.listing.push('\n');
            } else if let Some(dir) = rest.strip_prefix("preparing ") {
                p.preparing = Some(dir.to_owned());
            } else if rest == "artifact present" {
                p.artifact_present = true;
            } else if rest == "zstd" {
                p.zstd = true;
            } else if rest == "records" {
                records = Some(String::new());
            }
        }
        p
    }
}

/// Reads `.ship/releases.json`; an empty file means no records.
pub fn parse(json: &str) -> Result<Vec<ReleaseRecord>, serde_json::Error> {
    if json.trim().is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_str(json)
}

/// The records as written to `.ship/releases.json`.
pub fn to_json(records: &[ReleaseRecord]) -> String {
    serde_json::to_string_pretty(records).expect("records serialize")
}

fn pruned(
    records: &[ReleaseRecord],
    removed: &[String],
    replaced: Option<&str>,
) -> Vec<ReleaseRecord> {
    records
        .iter()
        .filter(|r| !removed.contains(&r.dir) && Some(r.dir.as_str()) != replaced)
        .cloned()
        .collect()
}

/// After a successful deploy: the live release becomes good, `new` is live, records of
/// removed directories are dropped, and so are those of the directory `replaced` (the ab
/// layout's slot, a version deployed again), whose contents are gone.
pub fn after_deploy(
    records: &[ReleaseRecord],
    new: ReleaseRecord,
    removed: &[String],
    replaced: Option<&str>,
) -> Vec<ReleaseRecord> {
    let mut out = pruned(records, removed, replaced);
    for r in &mut out {
        if r.state == ReleaseState::Live {
            r.state = ReleaseState::Good;
        }
    }
    out.push(ReleaseRecord {
        state: ReleaseState::Live,
        ..new
    });
    out
}

/// After a failed deploy was reverted: what was live stays live, `new` is recorded failed.
pub fn after_revert(
    records: &[ReleaseRecord],
    new: ReleaseRecord,
    removed: &[String],
    replaced: Option<&str>,
) -> Vec<ReleaseRecord> {
    let mut out = pruned(records, removed, replaced);
    out.push(ReleaseRecord {
        state: ReleaseState::Failed,
        ..new
    });
    out
}

/// After a rollback from the live release to `to` (a record, or a directory with no record,
/// e.g. one left by Capistrano, for which a record is made).
pub fn after_rollback(records: &[ReleaseRecord], to: &ReleaseRecord) -> Vec<ReleaseRecord> {
    let mut out = records.to_vec();
    let target = out.iter().rposition(|r| r.id == to.id && r.dir == to.dir);
    for r in out.iter_mut() {
        if r.state == ReleaseState::Live {
            r.state = ReleaseState::RolledBack;
        }
    }
    match target {
        Some(i) => out[i].state = ReleaseState::Live,
        None => out.push(ReleaseRecord {
            state: ReleaseState::Live,
            ..to.clone()
        }),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_reads_state_lines_between_other_output() {
        let out = "::ship::start 2 lock\nnoise\n::ship::state current /srv/app/releases/2\n\
                   ::ship::state release 1\n::ship::state release 2\n::ship::state artifact present\n\
                   ::ship::state records\n[{\"a\": 1}]\n\n::ship::state end\n::ship::end 2 0\n";
        let p = Probe::parse(out);
        assert_eq!(p.current.as_deref(), Some("/srv/app/releases/2"));
        assert_eq!(p.listing, "1\n2\n");
        assert!(p.artifact_present);
        assert_eq!(p.records.as_deref(), Some("[{\"a\": 1}]\n\n"));
        let empty = Probe::parse("::ship::state current \n");
        assert_eq!(empty, Probe::default());
    }

    fn rec(id: &str, state: ReleaseState) -> ReleaseRecord {
        ReleaseRecord {
            id: id.into(),
            dir: id.into(),
            revision: None,
            digest: "d".into(),
            time: "t".into(),
            user: "u".into(),
            state,
        }
    }

    #[test]
    fn records_follow_deploys_reverts_and_rollbacks() {
        let r = vec![rec("1", ReleaseState::Good), rec("2", ReleaseState::Live)];
        let d = after_deploy(&r, rec("3", ReleaseState::Live), &["1".into()], Some("3"));
        assert_eq!(
            d,
            vec![rec("2", ReleaseState::Good), rec("3", ReleaseState::Live)]
        );
        let f = after_revert(&r, rec("3", ReleaseState::Live), &[], Some("3"));
        assert_eq!(f[1], rec("2", ReleaseState::Live));
        assert_eq!(f[2], rec("3", ReleaseState::Failed));
        let b = after_rollback(&d, &rec("2", ReleaseState::Good));
        assert_eq!(
            b,
            vec![
                rec("2", ReleaseState::Live),
                rec("3", ReleaseState::RolledBack)
            ]
        );
        assert_eq!(parse(&to_json(&b)).unwrap(), b);
        assert_eq!(parse("").unwrap(), vec![]);
    }
}
