//! What a host keeps: the release records of `.ship/releases.json`, updated as data here
//! and written back by a script (the state lines it reports are read in `protocol`); and
//! how they are made to agree with the directory when another tool (Capistrano) or a hand
//! changed it: the live release is what `current` points to, always ([`reconcile`]), and
//! a release with no record is described from `revisions.log` and its `REVISION`.

use crate::layout::{HostState, ReleaseRecord, ReleaseState};
use crate::protocol::{self, Control, NONCE_VAR, Nonce};
use serde::{Deserialize, Serialize};
use std::fmt;

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

/// One line of `revisions.log` that says what went live, as Capistrano (2 and 3) and cargo
/// ship write it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Logged {
    /// `Branch <branch> (at <revision>) deployed as release <id> by <user>`.
    Deployed {
        /// The release id.
        id: String,
        /// The revision (a git commit), when the line names one.
        revision: Option<String>,
        /// Who deployed it, when the line names someone (Capistrano writes `$USER`).
        user: Option<String>,
    },
    /// `<user> rolled back to release <id>`.
    RolledBack {
        /// The release gone back to.
        id: String,
        /// Who rolled back, when the line names someone.
        user: Option<String>,
    },
}

impl Logged {
    /// The release the line made live.
    pub fn id(&self) -> &str {
        match self {
            Logged::Deployed { id, .. } | Logged::RolledBack { id, .. } => id,
        }
    }

    /// Reads one line of `revisions.log`; `None` for a line that says neither.
    pub fn parse(line: &str) -> Option<Logged> {
        let word = |s: &str| {
            let s = s.trim();
            (!s.is_empty()).then(|| s.to_owned())
        };
        let id_ok = |id: &str| !id.is_empty() && !id.contains('/') && id != "." && id != "..";
        if let Some((head, tail)) = line.split_once("deployed as release ") {
            let (id, rest) = tail.trim().split_once(' ').unwrap_or((tail.trim(), ""));
            let revision = head
                .split_once("(at ")
                .and_then(|(_, r)| r.split_once(')'))
                .and_then(|(r, _)| word(r));
            let user = rest.trim_start().strip_prefix("by").and_then(word);
            return id_ok(id).then(|| Logged::Deployed {
                id: id.to_owned(),
                revision,
                user,
            });
        }
        let (user, id) = line.split_once("rolled back to release ")?;
        let id = id.trim();
        id_ok(id).then(|| Logged::RolledBack {
            id: id.to_owned(),
            user: word(user),
        })
    }
}

/// Shell (builtins, and `tail`) that prints, as state lines, the last 200 lines of
/// `revisions.log` (`state history <line>`) and the first line of each release's `REVISION`
/// that is a file, not a link (`state revision <dir> <text>`), for [`read_history`]. Run
/// after `ops::state_script`, in the same session, by `releases` and `rollback`.
///
/// Its home is `protocol::probe_history`, where the other state lines are printed; it is
/// kept here until that module can take it (`Probe` ignores state lines it does not know,
/// so nothing else reads these).
pub fn history_probe() -> String {
    format!(
        r#"if [ -s "$SHIP_DEPLOY_TO/revisions.log" ]; then
  tail -n 200 "$SHIP_DEPLOY_TO/revisions.log" | while IFS= read -r ship_l || [ -n "$ship_l" ]; do
    printf '%s state history %s\n' "${n}" "$ship_l"
  done
fi
for ship_r in "$SHIP_DEPLOY_TO"/releases/*; do
  if [ -f "$ship_r/REVISION" ] && [ ! -L "$ship_r/REVISION" ] && {{ IFS= read -r ship_v < "$ship_r/REVISION"; }} 2>/dev/null; then
    printf '%s state revision %s %s\n' "${n}" "${{ship_r##*/}}" "$ship_v"
  fi
done
true"#,
        n = NONCE_VAR
    )
}

/// Reads what [`history_probe`] printed (framed with `nonce`) into `state`'s
/// [`HostState::history`] and [`HostState::revision_files`].
pub fn read_history(state: &mut HostState, stdout: &str, nonce: &Nonce) {
    for line in stdout.lines() {
        let Some(Control::State(rest)) = protocol::parse(line, nonce) else {
            continue;
        };
        if let Some(text) = rest.strip_prefix("history ") {
            state.history.extend(Logged::parse(text));
        } else if let Some((dir, revision)) = rest
            .strip_prefix("revision ")
            .and_then(|r| r.split_once(' '))
        {
            let revision = revision.trim();
            if !revision.is_empty() {
                state
                    .revision_files
                    .insert(dir.to_owned(), revision.to_owned());
            }
        }
    }
}

/// Fills in what `record` lacks (a revision, who deployed it, when) from the newest
/// `revisions.log` line that deployed it, its directory's `REVISION`, and `time` (when its
/// name says it, see `Layout::release_time`), when it is a record made up for a release
/// cargo ship did not deploy (no artifact digest: Capistrano's). A record of cargo ship's
/// own says what it knows: a release deployed from a directory has no revision, though
/// its `REVISION` holds the artifact's digest.
pub fn fill_in(record: &mut ReleaseRecord, state: &HostState, time: Option<String>) {
    if !record.digest.is_empty() {
        return;
    }
    let logged = state.history.iter().rev().find_map(|l| match l {
        Logged::Deployed { id, revision, user } if *id == record.id => Some((revision, user)),
        _ => None,
    });
    if record.revision.as_deref().is_none_or(str::is_empty) {
        record.revision = logged
            .and_then(|(r, _)| r.clone())
            .or_else(|| state.revision_files.get(&record.dir).cloned());
    }
    if record.user.is_empty()
        && let Some(user) = logged.and_then(|(_, u)| u.clone())
    {
        record.user = user;
    }
    if record.time.is_empty()
        && let Some(time) = time
    {
        record.time = time;
    }
}

/// The state of release directory `dir`, which has no record (made by another tool, e.g.
/// Capistrano), from the directory and `revisions.log`: live when `current` points at it;
/// rolled back when the next line after its deploy is a rollback to another release; good
/// when deployed to the end ([`HostState::complete`]); `None` when nothing says it was
/// finished.
pub fn unrecorded_state(state: &HostState, dir: &str) -> Option<ReleaseState> {
    if state.live.as_deref() == Some(dir) {
        return Some(ReleaseState::Live);
    }
    if !state.complete(dir) {
        return None;
    }
    let deployed = state
        .history
        .iter()
        .rposition(|l| matches!(l, Logged::Deployed { id, .. } if id == dir));
    let rolled_back = deployed.is_some_and(
        |i| matches!(state.history.get(i + 1), Some(Logged::RolledBack { id, .. }) if id != dir),
    );
    Some(if rolled_back {
        ReleaseState::RolledBack
    } else {
        ReleaseState::Good
    })
}

/// Where `.ship/releases.json` and the directory disagreed, found by [`reconcile`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Drift {
    /// The records said `recorded` was live (or nothing), but `current` points at `live` (or
    /// at nothing): moved by another tool (Capistrano) or by hand.
    LiveMoved {
        /// The release the records said was live.
        recorded: Option<String>,
        /// The release directory `current` points at.
        live: Option<String>,
    },
    /// A recorded release's directory is gone (removed by another tool or by hand).
    Gone {
        /// The release.
        id: String,
        /// Its directory under `releases/`.
        dir: String,
    },
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Drift::LiveMoved { recorded, live } => write!(
                f,
                "the records said {} was live, but current points at {}",
                recorded.as_deref().unwrap_or("nothing"),
                live.as_deref()
                    .map_or("no release".to_owned(), |l| format!("releases/{l}"))
            ),
            Drift::Gone { id, dir } => {
                write!(f, "release {id} is recorded but releases/{dir} is gone")
            }
        }
    }
}

/// Where release `id` went live, last, in `state`'s history (`revisions.log`): its index,
/// and whether it was a rollback that made it live; else its place among the releases
/// `revisions.log` says were deployed.
fn went_live(state: &HostState, id: &str) -> Option<(usize, bool)> {
    if state.history.is_empty() {
        return state
            .deployed
            .iter()
            .rposition(|d| d == id)
            .map(|i| (i, false));
    }
    state
        .history
        .iter()
        .rposition(|l| l.id() == id)
        .map(|i| (i, matches!(state.history[i], Logged::RolledBack { .. })))
}

/// `state` with its records made to agree with its directory, and where they disagreed.
/// The directory wins: records of directories that are gone are dropped; the newest
/// record of the directory `current` points at is live, and any other record the file
/// said was live is not: `rolled-back` when `current` went back to a release that was live
/// before it (a rollback by another tool, or by hand), `good` otherwise (a release deployed
/// over it, or `current` removed). For layouts that keep a directory per release.
pub fn reconcile(state: &HostState) -> (HostState, Vec<Drift>) {
    let mut out = state.clone();
    let mut drift = Vec::new();
    out.records.retain(|r| {
        let here = state.releases.contains(&r.dir);
        if !here {
            drift.push(Drift::Gone {
                id: r.id.clone(),
                dir: r.dir.clone(),
            });
        }
        here
    });
    let live = state.live.as_deref();
    let live_at = live.and_then(|d| out.records.iter().rposition(|r| r.dir == d));
    let live_id = live_at.map_or(live.map(str::to_owned), |i| Some(out.records[i].id.clone()));
    let recorded = state
        .records
        .iter()
        .rev()
        .find(|r| r.state == ReleaseState::Live);
    let agrees = match (recorded, live) {
        (Some(r), Some(d)) => r.dir == d && live_at.is_some_and(|i| out.records[i] == *r),
        (Some(_), None) => false,
        // Nothing recorded live: a disagreement only when `current` points at a recorded one.
        (None, _) => live_at.is_none(),
    };
    if !agrees {
        drift.push(Drift::LiveMoved {
            recorded: recorded.map(|r| r.id.clone()),
            live: live_id.clone(),
        });
    }
    let now = live_id.as_deref().and_then(|id| went_live(state, id));
    for (i, r) in out.records.iter_mut().enumerate() {
        if Some(i) == live_at {
            r.state = ReleaseState::Live;
        } else if r.state == ReleaseState::Live {
            let then = went_live(state, &r.id);
            // Went back: `current` made live by a rollback after it, or moved (by hand, with
            // no line) to a release that went live before it.
            let back = match (now, then) {
                (Some((n, by_rollback)), Some((t, _))) => n < t || by_rollback,
                _ => live_id
                    .as_deref()
                    .is_some_and(|l| crate::layout::release_order(l, &r.id).is_lt()),
            };
            r.state = if back {
                ReleaseState::RolledBack
            } else {
                ReleaseState::Good
            };
        }
    }
    (out, drift)
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

    fn deployed(id: &str) -> Logged {
        Logged::Deployed {
            id: id.into(),
            revision: Some("abc".into()),
            user: Some("cap".into()),
        }
    }

    fn back_to(id: &str) -> Logged {
        Logged::RolledBack {
            id: id.into(),
            user: Some("cap".into()),
        }
    }

    /// A timestamp-layout host: `dirs` on disk, `current` at `live`, these records and
    /// `revisions.log` lines.
    fn host(
        dirs: &[&str],
        live: Option<&str>,
        records: Vec<ReleaseRecord>,
        history: Vec<Logged>,
    ) -> HostState {
        HostState {
            live: live.map(str::to_owned),
            releases: dirs.iter().map(|d| (*d).to_owned()).collect(),
            records,
            deployed: history
                .iter()
                .filter(|l| matches!(l, Logged::Deployed { .. }))
                .map(|l| l.id().to_owned())
                .collect(),
            history,
            ..HostState::default()
        }
    }

    #[test]
    fn capistranos_lines_of_revisions_log_are_read() {
        assert_eq!(
            Logged::parse(
                "Branch main (at e1f3d67dc41b3b83a6b0ead85392113ddfad262a) deployed as release 20261125204600 by capuser"
            ),
            Some(Logged::Deployed {
                id: "20261125204600".into(),
                revision: Some("e1f3d67dc41b3b83a6b0ead85392113ddfad262a".into()),
                user: Some("capuser".into()),
            })
        );
        // Capistrano writes `by ` and nothing when $USER is not set.
        assert_eq!(
            Logged::parse("Branch main (at abc) deployed as release 20261125204552 by "),
            Some(Logged::Deployed {
                id: "20261125204552".into(),
                revision: Some("abc".into()),
                user: None,
            })
        );
        assert_eq!(
            Logged::parse("capuser rolled back to release 20261125204610"),
            Some(back_to("20261125204610")).map(|l| match l {
                Logged::RolledBack { id, .. } => Logged::RolledBack {
                    id,
                    user: Some("capuser".into())
                },
                other => other,
            })
        );
        assert_eq!(
            Logged::parse(" rolled back to release 1"),
            Some(Logged::RolledBack {
                id: "1".into(),
                user: None
            })
        );
        for junk in [
            "",
            "deployed as release ../x by me",
            "hello",
            "rolled back to release ",
        ] {
            assert_eq!(Logged::parse(junk), None, "{junk:?}");
        }
    }

    #[test]
    fn the_history_probe_is_read_back_and_fills_in_a_release_with_no_record() {
        let nonce = Nonce::from_bytes(&[7; 16]);
        let n = nonce.as_str();
        let out = format!(
            "{n} state history Branch main (at abc) deployed as release 2 by capuser\n\
             noise\n{n} state revision 2 abc\n{n} state revision 3 \n\
             {n} state history capuser rolled back to release 1\n\
             nonce state history Branch x (at y) deployed as release 9 by forged\n"
        );
        let mut state = HostState::default();
        read_history(&mut state, &out, &nonce);
        assert_eq!(
            state.history,
            vec![
                Logged::Deployed {
                    id: "2".into(),
                    revision: Some("abc".into()),
                    user: Some("capuser".into())
                },
                Logged::RolledBack {
                    id: "1".into(),
                    user: Some("capuser".into())
                },
            ]
        );
        assert_eq!(
            state.revision_files.get("2").map(String::as_str),
            Some("abc")
        );
        assert_eq!(state.revision_files.get("3"), None);
        let mut made_up = ReleaseRecord {
            digest: String::new(),
            time: String::new(),
            user: String::new(),
            ..rec("2", ReleaseState::Good)
        };
        fill_in(&mut made_up, &state, Some("then".into()));
        assert_eq!(
            (
                made_up.revision.as_deref(),
                made_up.user.as_str(),
                made_up.time.as_str()
            ),
            (Some("abc"), "capuser", "then")
        );
        // What a record of cargo ship's says is kept, even with no revision (deployed from
        // a directory: REVISION holds the artifact's digest).
        let mut recorded = rec("2", ReleaseState::Good);
        fill_in(&mut recorded, &state, Some("then".into()));
        assert_eq!(recorded, rec("2", ReleaseState::Good));
    }

    #[test]
    fn records_follow_the_directory_whoever_changed_it() {
        use ReleaseState::{Good, Live, RolledBack};
        // Agreeing: nothing changes, nothing said.
        let agree = host(
            &["1", "2"],
            Some("2"),
            vec![rec("1", Good), rec("2", Live)],
            vec![],
        );
        assert_eq!(reconcile(&agree), (agree.clone(), vec![]));

        // Capistrano deployed 3 over cargo ship's 2: 3 is live, 2 is good.
        let over = host(
            &["1", "2", "3"],
            Some("3"),
            vec![rec("1", Good), rec("2", Live)],
            vec![deployed("1"), deployed("2"), deployed("3")],
        );
        let (state, drift) = reconcile(&over);
        assert_eq!(state.records, vec![rec("1", Good), rec("2", Good)]);
        assert_eq!(
            drift,
            vec![Drift::LiveMoved {
                recorded: Some("2".into()),
                live: Some("3".into())
            }]
        );
        assert_eq!(
            drift[0].to_string(),
            "the records said 2 was live, but current points at releases/3"
        );

        // Capistrano rolled back from 2 to 1 and removed releases/2.
        let rolled = host(
            &["1"],
            Some("1"),
            vec![rec("1", Good), rec("2", Live)],
            vec![deployed("1"), deployed("2"), back_to("1")],
        );
        let (state, drift) = reconcile(&rolled);
        assert_eq!(state.records, vec![rec("1", Live)]);
        assert_eq!(
            drift,
            vec![
                Drift::Gone {
                    id: "2".into(),
                    dir: "2".into()
                },
                Drift::LiveMoved {
                    recorded: Some("2".into()),
                    live: Some("1".into())
                },
            ]
        );

        // `current` moved back by hand (no line in revisions.log): 2 was rolled back from.
        let by_hand = host(
            &["1", "2"],
            Some("1"),
            vec![rec("1", Good), rec("2", Live)],
            vec![deployed("1"), deployed("2")],
        );
        assert_eq!(
            reconcile(&by_hand).0.records,
            vec![rec("1", Live), rec("2", RolledBack)]
        );
        // ... and so without revisions.log, by the names' order.
        let unlogged = host(
            &["1", "2"],
            Some("1"),
            vec![rec("1", Good), rec("2", Live)],
            vec![],
        );
        assert_eq!(
            reconcile(&unlogged).0.records,
            vec![rec("1", Live), rec("2", RolledBack)]
        );

        // A rollback by another tool to a release it deployed after 2: 2 is rolled back from.
        let back = host(
            &["1", "2", "3"],
            Some("3"),
            vec![rec("2", Live)],
            vec![deployed("1"), deployed("3"), deployed("2"), back_to("3")],
        );
        assert_eq!(reconcile(&back).0.records, vec![rec("2", RolledBack)]);

        // `current` removed: nothing is live, and the record says so no more.
        let none = host(
            &["1", "2"],
            None,
            vec![rec("1", Good), rec("2", Live)],
            vec![],
        );
        let (state, drift) = reconcile(&none);
        assert_eq!(state.records, vec![rec("1", Good), rec("2", Good)]);
        assert_eq!(
            drift,
            vec![Drift::LiveMoved {
                recorded: Some("2".into()),
                live: None
            }]
        );
        assert!(
            drift[0]
                .to_string()
                .ends_with("current points at no release")
        );
    }

    #[test]
    fn the_live_release_is_what_current_points_to() {
        use ReleaseState::{Good, Live};
        // Capistrano deployed 3: no record of it; the record of 2 saying "live" is not live.
        let over = host(
            &["1", "2", "3"],
            Some("3"),
            vec![rec("1", Good), rec("2", Live)],
            vec![],
        );
        assert_eq!(over.live_record(), None);
        // `current` put back on 1 by hand: its record is the live one.
        let back = host(
            &["1", "2"],
            Some("1"),
            vec![rec("1", Good), rec("2", Live)],
            vec![],
        );
        assert_eq!(back.live_record(), Some(&rec("1", Good)));
        // The single layout reads no directory: its records say.
        let single = host(&[], None, vec![rec("1", Good), rec("2", Live)], vec![]);
        assert_eq!(single.live_record(), Some(&rec("2", Live)));
    }

    #[test]
    fn a_rollback_goes_to_the_release_live_before_whoever_made_it() {
        use ReleaseState::{Good, Live, RolledBack};
        // Capistrano made 1 and 2; cargo ship 3, rolled back to 2; Capistrano made 4 (no
        // record); cargo ship 5. Before 5, 4 was live: there, not to 2, cargo ship's newest
        // good record.
        let history = vec![
            deployed("1"),
            deployed("2"),
            deployed("3"),
            back_to("2"),
            deployed("4"),
            deployed("5"),
        ];
        let state = host(
            &["1", "2", "3", "4", "5"],
            Some("5"),
            vec![rec("3", RolledBack), rec("2", Good), rec("5", Live)],
            history.clone(),
        );
        assert_eq!(state.previous_good(), Some("4"));
        // Back on 4, the one before is 2 (made live by the rollback after 3), never 3.
        let on_4 = host(
            &["1", "2", "3", "4", "5"],
            Some("4"),
            vec![rec("3", RolledBack), rec("2", Good), rec("5", RolledBack)],
            [history.clone(), vec![back_to("4")]].concat(),
        );
        assert_eq!(on_4.previous_good(), Some("2"));
        // A release with no record that was rolled back from is no target either.
        assert_eq!(
            unrecorded_state(
                &host(
                    &["1", "2"],
                    Some("1"),
                    vec![],
                    vec![deployed("1"), deployed("2"), back_to("1")]
                ),
                "2"
            ),
            Some(RolledBack)
        );
    }
}
