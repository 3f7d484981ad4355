//! What a host keeps: the release records of `.ship/releases.json`, updated as data here
//! and written back by a script (the state lines it reports are read in `protocol`).

use crate::layout::{ReleaseRecord, ReleaseState};

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
