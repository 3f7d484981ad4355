//! Cleanup and rollback decisions, table-driven: one `check` helper, many cases.

use ship_core::{HostState, ReleaseRecord, ReleaseState};
use ship_layouts::layout_for;

/// `spec` lists releases oldest first as `id:state` (`L` live, `G` good, `F` failed,
/// `R` rolled back, `-` no record); `new` is the release being deployed.
fn state(spec: &str) -> HostState {
    let mut s = HostState::default();
    for item in spec.split_whitespace() {
        let (id, st) = item.split_once(':').unwrap();
        s.releases.push(id.to_owned());
        let state = match st {
            "L" => Some(ReleaseState::Live),
            "G" => Some(ReleaseState::Good),
            "F" => Some(ReleaseState::Failed),
            "R" => Some(ReleaseState::RolledBack),
            "-" => None,
            other => panic!("bad state {other}"),
        };
        if st == "L" {
            s.live = Some(id.to_owned());
        }
        if let Some(state) = state {
            s.records.push(ReleaseRecord {
                id: id.into(),
                dir: id.into(),
                revision: None,
                digest: "d".into(),
                time: "t".into(),
                user: "u".into(),
                state,
            });
        }
    }
    s.releases.sort();
    s
}

fn check(spec: &str, new: &str, keep: usize, expect: &str) {
    let got = layout_for("timestamp")
        .unwrap()
        .cleanup(&state(spec), new, keep);
    assert_eq!(
        got.join(" "),
        expect,
        "cleanup of [{spec}] + {new}, keep {keep}"
    );
}

#[test]
fn cleanup_keeps_keep_releases_and_never_the_live_or_previous_good() {
    check("01:G 02:G 03:L", "04", 5, "");
    check("01:G 02:G 03:G 04:G 05:L", "06", 5, "01");
    check("01:G 02:G 03:G 04:G 05:L", "06", 2, "01 02 03 04");
    // keep = 1 still keeps the new release and the live one, which becomes the previous good.
    check("01:G 02:G 03:L", "04", 1, "01 02");
    // Failed releases go first, even when under the limit.
    check("01:G 02:F 03:L", "04", 5, "02");
    check("01:G 02:G 03:F 04:L", "05", 3, "01 03");
    check("01:G 02:F 03:F 04:L", "05", 2, "01 02 03");
    // After a rollback, the rolled-back release goes before the live one.
    check("01:G 02:L 03:R", "04", 2, "01 03");
    // Directories without a record (e.g. from Capistrano) count as older, by name.
    check("01:- 02:- 03:L", "04", 2, "01 02");
    // A directory a killed deploy left half-made goes first.
    let mut killed = state("01:G 02:G 03:L 04:-");
    killed.half_made = Some("04".into());
    let got = layout_for("timestamp").unwrap().cleanup(&killed, "05", 5);
    assert_eq!(got, ["04"]);
    // Nothing live (the last deploy was reverted on a first install): the previous good stays.
    check("01:G 02:F", "03", 1, "02");
}

#[test]
fn rollback_goes_to_the_previous_good_release_never_a_failed_one() {
    let l = layout_for("timestamp").unwrap();
    assert_eq!(
        l.rollback_target(&state("01:G 02:F 03:L"), None).unwrap(),
        "01"
    );
    assert_eq!(
        l.rollback_target(&state("01:G 02:R 03:L"), None).unwrap(),
        "01"
    );
    // Directories with no record (e.g. Capistrano's) count only when revisions.log says
    // they were deployed to the end, and never the one a killed deploy left half-made.
    let mut capistrano = state("01:- 02:- 03:L");
    assert!(l.rollback_target(&capistrano, None).is_err());
    capistrano.deployed = vec!["01".into(), "02".into(), "03".into()];
    assert_eq!(l.rollback_target(&capistrano, None).unwrap(), "02");
    capistrano.half_made = Some("02".into());
    assert_eq!(l.rollback_target(&capistrano, None).unwrap(), "01");
    let e = l.rollback_target(&capistrano, Some("02")).unwrap_err();
    assert!(e.to_string().contains("never finished"), "{e}");
    // Versions are ordered as versions: 1.9.0 is older than 1.10.0.
    let mut versions = state("1.9.0:- 1.10.0:L");
    versions.deployed = vec!["1.9.0".into(), "1.10.0".into()];
    assert_eq!(l.rollback_target(&versions, None).unwrap(), "1.9.0");
    assert!(l.rollback_target(&state("01:L"), None).is_err());
    assert_eq!(
        l.rollback_target(&state("01:G 02:G 03:L"), Some("01"))
            .unwrap(),
        "01"
    );
    let e = l
        .rollback_target(&state("01:G 02:F 03:L"), Some("02"))
        .unwrap_err();
    assert!(e.to_string().contains("failed"), "{e}");
    let e = l
        .rollback_target(&state("01:G 03:L"), Some("09"))
        .unwrap_err();
    assert!(e.to_string().contains("01, 03"), "{e}");
}

#[test]
fn ab_swaps_slots_and_never_cleans() {
    let l = layout_for("ab").unwrap();
    let s = l.parse_state("/srv/app", Some("/srv/app/releases/b"), "a\nb\n");
    assert_eq!(s.live.as_deref(), Some("b"));
    assert_eq!(l.rollback_target(&s, None).unwrap(), "a");
    assert!(l.cleanup(&s, "a", 1).is_empty());
    let only = l.parse_state("/srv/app", Some("/srv/app/releases/a"), "a\n");
    assert!(l.rollback_target(&only, None).is_err());
}

#[test]
fn parse_state_reads_absolute_and_relative_links() {
    let l = layout_for("timestamp").unwrap();
    let s = l.parse_state("/srv/app", Some("/srv/app/releases/02"), "01\n02\n\n");
    assert_eq!(s.live.as_deref(), Some("02"));
    assert_eq!(s.releases, ["01", "02"]);
    let s = l.parse_state("/srv/app", Some("releases/01"), "01\n");
    assert_eq!(s.live.as_deref(), Some("01"));
    let s = l.parse_state("/srv/app", Some("/elsewhere/x"), "01\n");
    assert_eq!(s.live, None);
}
