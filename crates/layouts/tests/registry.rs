//! The registry and the properties callers ask the layouts for instead of their names:
//! release ids, records kept, the rollback record, and the abort and revert shell.

use ship_core::{HostState, LayoutContext, ReleaseRecord, ReleaseState};
use ship_layouts::{LAYOUTS, layout_for, names};

fn record(id: &str, dir: &str, digest: &str, state: ReleaseState) -> ReleaseRecord {
    ReleaseRecord {
        id: id.into(),
        dir: dir.into(),
        revision: None,
        digest: digest.into(),
        time: "t".into(),
        user: "u".into(),
        state,
    }
}

const CX: LayoutContext<'static> = LayoutContext {
    deploy_to: "/srv/app",
    release: "20261122000000",
    delta: false,
};

#[test]
fn every_layout_is_found_by_its_name_and_the_first_is_the_default() {
    assert_eq!(names(), ["timestamp", "version", "ab", "single"]);
    for layout in LAYOUTS {
        assert_eq!(layout_for(layout.name()).unwrap().name(), layout.name());
    }
    assert!(layout_for("blue-green").is_none());
    assert_eq!(
        ship_core::config::defaults()["layout"].as_str(),
        Some(LAYOUTS[0].name()),
        "cargo ship init writes the first layout as the default"
    );
}

#[test]
fn release_ids_follow_each_layout() {
    let timestamp = layout_for("timestamp").unwrap();
    assert!(timestamp.check_release_id("20261122235800").is_ok());
    let why = timestamp.check_release_id("v1.2").unwrap_err();
    assert!(why.contains("14 digits"), "{why}");
    for name in ["version", "ab", "single"] {
        assert!(layout_for(name).unwrap().check_release_id("v1.2").is_ok());
    }
    let versioned: Vec<&str> = LAYOUTS
        .iter()
        .filter(|l| l.needs_version())
        .map(|l| l.name())
        .collect();
    assert_eq!(versioned, ["version"]);
}

#[test]
fn records_a_deploy_keeps() {
    let records: Vec<ReleaseRecord> = (1..=5)
        .map(|i| {
            record(
                &format!("0{i}"),
                "current",
                &format!("d{i}"),
                ReleaseState::Good,
            )
        })
        .collect();
    let single = layout_for("single").unwrap();
    assert!(!single.atomic() && !single.keeps_directories());
    assert_eq!(single.replaced("current"), None);
    let kept = single.kept_records(records.clone(), 3);
    assert_eq!(
        kept.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["03", "04", "05"]
    );
    // At least two, so that a rollback has somewhere to go.
    assert_eq!(single.kept_records(records.clone(), 1).len(), 2);
    for name in ["timestamp", "version", "ab"] {
        let l = layout_for(name).unwrap();
        assert!(l.atomic() && l.keeps_directories(), "{name}");
        assert_eq!(l.replaced("b"), Some("b"));
        assert_eq!(l.kept_records(records.clone(), 1), records);
    }
}

#[test]
fn the_rollback_record_is_found_by_directory_or_by_artifact() {
    let state = HostState {
        records: vec![
            record("01", "01", "d1", ReleaseState::Good),
            record("02", "02", "d2", ReleaseState::Live),
        ],
        ..HostState::default()
    };
    let timestamp = layout_for("timestamp").unwrap();
    assert_eq!(timestamp.rollback_record(&state, "01").id, "01");
    // A directory with no record (left by Capistrano): a good record is made up for it.
    let made_up = timestamp.rollback_record(&state, "00");
    assert_eq!(
        (made_up.id.as_str(), made_up.state),
        ("00", ReleaseState::Good)
    );
    // The single layout's target is an artifact's digest.
    assert_eq!(
        layout_for("single")
            .unwrap()
            .rollback_record(&state, "d1")
            .id,
        "01"
    );
}

#[test]
fn abort_and_revert_shell() {
    let nothing = HostState::default();
    let live = HostState {
        live: Some("01".into()),
        releases: vec!["01".into()],
        records: vec![record("01", "01", "d1", ReleaseState::Live)],
        half_made: None,
        deployed: vec![],
        marked: vec![],
        history: vec![],
        revision_files: Default::default(),
    };
    for name in ["timestamp", "version", "ab"] {
        let l = layout_for(name).unwrap();
        // Before the switch: the new release goes unless it is where `current` leads (the
        // directory, `-ef`: real_shell.rs runs it against a relative link).
        assert_eq!(
            l.discard_new(&CX, &live),
            "if [ ! \"$SHIP_DEPLOY_TO/current\" -ef \"$SHIP_RELEASE_PATH\" ]; then\n  rm -rf \"$SHIP_RELEASE_PATH\"\nfi",
            "{name}"
        );
        // After it: back to what was live, or no `current` at all.
        assert_eq!(l.revert(&CX, &live), l.activate(&CX, "01"));
        assert_eq!(l.revert(&CX, &nothing), "rm -f \"$SHIP_DEPLOY_TO/current\"");
    }
    let single = layout_for("single").unwrap();
    let live = HostState {
        live: None,
        releases: Vec::new(),
        ..live
    };
    // current/ was changed in place: the live artifact is unpacked again, or it goes.
    assert_eq!(single.discard_new(&CX, &live), single.activate(&CX, "d1"));
    assert_eq!(single.revert(&CX, &live), single.activate(&CX, "d1"));
    assert_eq!(
        single.discard_new(&CX, &nothing),
        "rm -rf \"$SHIP_RELEASE_PATH\""
    );
    assert_eq!(
        single.revert(&CX, &nothing),
        "rm -rf \"$SHIP_RELEASE_PATH\""
    );
}
