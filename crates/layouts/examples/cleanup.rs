//! Which releases a deploy's cleanup removes from a host, with ship-layouts alone:
//! `cargo run -p ship-layouts --example cleanup -- [--layout NAME] [--keep N] [NEW ID:STATE...]`.
//!
//! A host's releases are given oldest first as `id:state`, the state one of `L` (live),
//! `G` (good), `F` (failed), `R` (rolled back) or `-` (a directory with no record); `NEW` is
//! the release being deployed. Without them, a host of five releases, one failed. Nothing
//! is run: a layout decides from the host's state and returns the directories.

use ship_core::{HostState, ReleaseRecord, ReleaseState};
use ship_layouts::{layout_for, names};

fn host(spec: &[String]) -> Result<HostState, String> {
    let mut state = HostState::default();
    for item in spec {
        let (id, code) = item
            .split_once(':')
            .ok_or_else(|| format!("`{item}`: want ID:STATE"))?;
        let record_state = match code {
            "L" => Some(ReleaseState::Live),
            "G" => Some(ReleaseState::Good),
            "F" => Some(ReleaseState::Failed),
            "R" => Some(ReleaseState::RolledBack),
            "-" => None,
            other => return Err(format!("`{other}`: a state is L, G, F, R or -")),
        };
        state.releases.push(id.to_owned());
        if code == "L" {
            state.live = Some(id.to_owned());
        }
        if let Some(record_state) = record_state {
            state.records.push(ReleaseRecord {
                id: id.into(),
                dir: id.into(),
                revision: None,
                digest: "0".repeat(64),
                time: "2026-11-01T00:00:00Z".into(),
                user: "ann@laptop".into(),
                state: record_state,
            });
        }
    }
    state.releases.sort();
    Ok(state)
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut option = |name: &str| {
        let i = args.iter().position(|a| a == name)?;
        let value = args.get(i + 1).cloned();
        args.drain(i..(i + 2).min(args.len()));
        value
    };
    let layout_name = option("--layout").unwrap_or_else(|| "timestamp".into());
    let keep: usize = option("--keep").map_or(3, |k| k.parse().expect("--keep N"));
    if args.is_empty() {
        args = [
            "20261106000000",
            "20261101000000:G",
            "20261102000000:G",
            "20261103000000:F",
            "20261104000000:G",
            "20261105000000:L",
        ]
        .map(String::from)
        .to_vec();
    }
    let Some(layout) = layout_for(&layout_name) else {
        eprintln!(
            "no layout `{layout_name}`; the layouts: {}",
            names().join(", ")
        );
        std::process::exit(2);
    };
    let new = args.remove(0);
    let state = host(&args).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2);
    });

    let removed = layout.cleanup(&state, &new, keep);
    println!(
        "layout {}, keep_releases = {keep}, deploying {new}",
        layout.name()
    );
    println!("  on the host: {}", state.releases.join(" "));
    println!("  cleanup removes: {}", removed.join(" "));
    let kept: Vec<&String> = state
        .releases
        .iter()
        .chain([&new])
        .filter(|r| !removed.contains(r))
        .collect();
    println!(
        "  kept: {}",
        kept.iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!("  {}", layout.cleanup_summary(keep));
}
