//! Plans a deploy from a `Ship.toml` string with ship-core alone and prints it as `cargo
//! ship plan` would: `cargo run -p ship-core --example plan_from_toml [-- --json]`.
//!
//! The plan needs a release layout; the real ones live in ship-layouts, so this example
//! brings a small one of its own (each release in `releases/<id>`, `current` switched by
//! an atomic rename, cleanup keeping the newest). Nothing here touches a host: planning is
//! pure, and the artifact's digest is an input.

use ship_core::ArtifactInfo;
use ship_core::Sources;
use ship_core::{HostState, Layout, LayoutContext, Stage};
use ship_core::{PlanInput, plan};
use ship_core::{TextOptions, render::text};

const SHIP_TOML: &str = r#"
[default]
app = "webxample"
deploy_to = "/srv/webxample"
layout = "dirs"
keep_releases = 3

[default.tasks.migrate]
run = "./bin/migrate"
after = "install"
once = true
roles = ["web"]
description = "Migrate the database"

[production.roles.web]
hosts = ["web1", "web2"]
[production.roles.worker]
hosts = ["job1"]
"#;

/// Releases in `releases/<id>`, `current` switched by an atomic rename.
struct Dirs;

impl Layout for Dirs {
    fn name(&self) -> &'static str {
        "dirs"
    }
    fn release_dir(&self, cx: &LayoutContext<'_>) -> String {
        format!("releases/{}", cx.release)
    }
    fn locate(&self, cx: &LayoutContext<'_>) -> String {
        format!(
            "SHIP_RELEASE_PATH='{}/releases/{}'",
            cx.deploy_to, cx.release
        )
    }
    fn prepare(&self, _cx: &LayoutContext<'_>) -> String {
        // The plan's upload step leaves the artifact in $SHIP_ARTIFACT (zstd or gzip).
        r#"mkdir -p "$SHIP_RELEASE_PATH"
case "$SHIP_ARTIFACT" in
  *.zst) zstd -dcq "$SHIP_ARTIFACT" ;;
  *) gzip -dc "$SHIP_ARTIFACT" ;;
esac | tar -x -C "$SHIP_RELEASE_PATH""#
            .to_owned()
    }
    fn switch(&self, cx: &LayoutContext<'_>) -> String {
        format!(
            "ln -sfn \"$SHIP_RELEASE_PATH\" '{0}/current.new' && mv -T '{0}/current.new' '{0}/current'",
            cx.deploy_to
        )
    }
    fn activate(&self, cx: &LayoutContext<'_>, dir: &str) -> String {
        format!(
            "ln -sfn '{0}/{dir}' '{0}/current.new' && mv -T '{0}/current.new' '{0}/current'",
            cx.deploy_to
        )
    }
    fn cleanup(&self, state: &HostState, new_dir: &str, keep: usize) -> Vec<String> {
        let mut old: Vec<String> = state
            .releases
            .iter()
            .filter(|r| *r != new_dir && Some(*r) != state.live.as_ref())
            .cloned()
            .collect();
        old.sort();
        let extra = old.len().saturating_sub(keep.saturating_sub(2));
        old.truncate(extra);
        old
    }
    fn parse_state(&self, _deploy_to: &str, current: Option<&str>, listing: &str) -> HostState {
        HostState {
            live: current.map(str::to_owned),
            releases: listing.lines().map(str::to_owned).collect(),
            ..HostState::default()
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let ship_toml = dir.path().join("Ship.toml");
    std::fs::write(&ship_toml, SHIP_TOML)?;
    let sources = Sources {
        ship_toml,
        ..Sources::default()
    };
    let loaded = sources.load()?;
    let stage = Stage::resolve(&loaded, "production", &[Dirs.name()])?;

    let plan = plan(&PlanInput {
        stage: &stage,
        layout: &Dirs,
        // Inputs, not read from a clock or a file: the same inputs give the same plan.
        release: "20261125120000".into(),
        artifact: ArtifactInfo {
            source: "dir dist".into(),
            revision: None,
            digest: "4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945".into(),
            bytes: 4096,
            entries: 12,
            commands: vec![],
            promoted_from: None,
            uncommitted: vec![],
        },
        config_digest: "0".repeat(64),
        extra_tasks: vec![],
        overrides: vec![],
    })?;

    if std::env::args().any(|a| a == "--json") {
        print!("{}", plan.to_json());
    } else {
        print!("{}", text(&plan, TextOptions::default()));
    }
    Ok(())
}
