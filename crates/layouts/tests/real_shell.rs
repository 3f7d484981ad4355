//! The layouts' shell, run for real by `sh` in a temporary deploy directory.

use ship_core::artifact;
use ship_core::shell::quote;
use ship_core::{LayoutContext, ReleaseRecord, ReleaseState, SourceConfig};
use ship_layouts::layout_for;
use std::path::Path;
use std::process::Command;

struct Host {
    _dir: tempfile::TempDir,
    deploy_to: String,
    /// Whether this host is sent (and keeps) `.tar.zst` artifacts rather than `.tar.gz`.
    zstd: bool,
}

impl Host {
    fn new() -> Host {
        let dir = tempfile::tempdir().unwrap();
        let deploy_to = dir.path().join("app").to_string_lossy().into_owned();
        Host {
            _dir: dir,
            deploy_to,
            zstd: false,
        }
    }

    /// A host with zstd: the artifact arrives as `.tar.zst`.
    fn with_zstd() -> Host {
        Host {
            zstd: true,
            ..Host::new()
        }
    }

    /// Runs `body` with the variables a plan's script sets, the artifact (a `.tar.zst` in
    /// the local cache) received as the upload step leaves it in `.ship/artifacts/`.
    fn run(&self, release: &str, artifact: &Path, locate: &str, body: &str) -> String {
        let digest = artifact
            .file_name()
            .unwrap()
            .to_string_lossy()
            .replace(".tar.zst", "");
        let received = Path::new(&self.deploy_to).join(".ship/artifacts");
        std::fs::create_dir_all(&received).unwrap();
        let (sent, name) = if self.zstd {
            (artifact.to_owned(), format!("{digest}.tar.zst"))
        } else {
            (
                artifact::gz_of(artifact).unwrap().0,
                format!("{digest}.tar.gz"),
            )
        };
        let kept = received.join(name);
        std::fs::copy(sent, &kept).unwrap();
        let script = format!(
            "set -eu\nSHIP_DEPLOY_TO={}\nSHIP_RELEASE={}\nSHIP_DIGEST={digest}\nSHIP_ARTIFACT={}\nSHIP_REVISION=rev-{}\n{}\n{}\n",
            quote(&self.deploy_to),
            quote(release),
            quote(&kept.to_string_lossy()),
            release,
            locate,
            body
        );
        let out = Command::new("sh").arg("-c").arg(&script).output().unwrap();
        assert!(
            out.status.success(),
            "script failed: {}\n{script}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn read(&self, path: &str) -> String {
        std::fs::read_to_string(Path::new(&self.deploy_to).join(path)).unwrap_or_default()
    }

    fn current(&self) -> String {
        std::fs::read_link(Path::new(&self.deploy_to).join("current"))
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

fn artifact_with(text: &str, cache: &Path) -> std::path::PathBuf {
    let project = tempfile::tempdir().unwrap();
    std::fs::create_dir(project.path().join("dist")).unwrap();
    std::fs::write(project.path().join("dist/app.txt"), text).unwrap();
    artifact::build(
        project.path(),
        &SourceConfig::Dir("dist".into()),
        &[],
        cache,
    )
    .unwrap()
    .path
}

fn deploy(host: &Host, kind: &str, release: &str, artifact: &Path) {
    let layout = layout_for(kind).unwrap();
    let cx = LayoutContext {
        deploy_to: &host.deploy_to,
        release,
        delta: false,
    };
    let body = format!("{}\n{}", layout.prepare(&cx), layout.switch(&cx));
    host.run(release, artifact, &layout.locate(&cx), &body);
}

#[test]
fn symlink_layouts_deploy_switch_and_roll_back_for_real() {
    let cache = tempfile::tempdir().unwrap();
    let v1 = artifact_with("one", cache.path());
    let v2 = artifact_with("two", cache.path());
    // Each layout on a host with zstd and on one without.
    for (kind, zstd) in ["timestamp", "version", "ab"]
        .into_iter()
        .flat_map(|k| [(k, false), (k, true)])
    {
        let host = if zstd { Host::with_zstd() } else { Host::new() };
        let (r1, r2) = match kind {
            "version" => ("1.0.0", "1.1.0"),
            _ => ("20261122000000", "20261123000000"),
        };
        deploy(&host, kind, r1, &v1);
        assert_eq!(host.read("current/app.txt"), "one", "{kind:?}");
        assert_eq!(host.read("current/REVISION"), format!("rev-{r1}\n"));
        let first = host.current();
        assert!(first.starts_with(&host.deploy_to), "absolute link: {first}");

        deploy(&host, kind, r2, &v2);
        assert_eq!(host.read("current/app.txt"), "two", "{kind:?}");
        assert_ne!(host.current(), first);

        // Roll back to the first release's directory.
        let layout = layout_for(kind).unwrap();
        let listing = std::fs::read_dir(Path::new(&host.deploy_to).join("releases"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("\n");
        let state = layout.parse_state(&host.deploy_to, Some(&host.current()), &listing);
        let mut state = state;
        let dir_of = |p: &str| p.rsplit('/').next().unwrap().to_owned();
        state.records = vec![
            record(r1, &dir_of(&first), ReleaseState::Good),
            record(r2, &dir_of(&host.current()), ReleaseState::Live),
        ];
        let target = layout.rollback_target(&state, None).unwrap();
        let cx = LayoutContext {
            deploy_to: &host.deploy_to,
            release: r2,
            delta: false,
        };
        host.run(r2, &v2, &layout.locate(&cx), &layout.activate(&cx, &target));
        assert_eq!(host.read("current/app.txt"), "one", "{kind:?} rolled back");
        assert_eq!(host.current(), first);
    }
}

/// A `current` link made by hand, relative (`releases/a`), is the live slot all the same:
/// `ab` prepares the other slot, and undoing a stopped deploy's prepare never removes the
/// live one (both read the link's text before, and took slot a for free: an abort then
/// removed the live release).
#[test]
fn a_relative_current_link_is_live_for_ab_and_an_abort_keeps_it() {
    let cache = tempfile::tempdir().unwrap();
    let v1 = artifact_with("one", cache.path());
    let host = Host::new();
    deploy(&host, "ab", "20261122000000", &v1);
    let current = Path::new(&host.deploy_to).join("current");
    std::fs::remove_file(&current).unwrap();
    std::os::unix::fs::symlink("releases/a", &current).unwrap();
    assert_eq!(host.read("current/app.txt"), "one");
    let layout = layout_for("ab").unwrap();
    let cx = LayoutContext {
        deploy_to: &host.deploy_to,
        release: "20261123000000",
        delta: false,
    };
    let out = host.run(
        "20261123000000",
        &v1,
        &layout.locate(&cx),
        &format!(
            "printf '%s\\n' \"$SHIP_RELEASE_PATH\"\n{}",
            layout.discard_new(&cx, &Default::default())
        ),
    );
    assert_eq!(out.trim(), format!("{}/releases/b", host.deploy_to));
    assert_eq!(host.read("current/app.txt"), "one", "the live slot is kept");
    // The default discard_new (every layout with a directory per release) too, with
    // SHIP_RELEASE_PATH the live release reached by a relative link.
    let ts = layout_for("timestamp").unwrap();
    host.run(
        "20261123000000",
        &v1,
        "SHIP_RELEASE_PATH=\"$SHIP_DEPLOY_TO/releases/a\"",
        &ts.discard_new(&cx, &Default::default()),
    );
    assert_eq!(
        host.read("current/app.txt"),
        "one",
        "the live release is kept"
    );
}

#[test]
fn prepare_refuses_to_unpack_over_the_live_release() {
    let cache = tempfile::tempdir().unwrap();
    let v1 = artifact_with("one", cache.path());
    let host = Host::new();
    deploy(&host, "version", "1.0.0", &v1);
    let layout = layout_for("version").unwrap();
    let cx = LayoutContext {
        deploy_to: &host.deploy_to,
        release: "1.0.0",
        delta: false,
    };
    let script = format!(
        "set -eu\nSHIP_DEPLOY_TO={}\nSHIP_RELEASE=1.0.0\nSHIP_ARTIFACT={}\nSHIP_REVISION=x\n{}\n{}",
        quote(&host.deploy_to),
        quote(&v1.to_string_lossy()),
        layout.locate(&cx),
        layout.prepare(&cx)
    );
    let out = Command::new("sh").arg("-c").arg(script).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("live release"));
    assert_eq!(host.read("current/app.txt"), "one");
}

#[test]
fn single_updates_in_place_and_restores_the_previous_artifact() {
    let cache = tempfile::tempdir().unwrap();
    let v1 = artifact_with("one", cache.path());
    let v2 = artifact_with("two", cache.path());
    let host = Host::new();
    deploy(&host, "single", "20261122000000", &v1);
    assert_eq!(host.read("current/app.txt"), "one");
    assert!(
        std::fs::symlink_metadata(Path::new(&host.deploy_to).join("current"))
            .unwrap()
            .is_dir()
    );
    deploy(&host, "single", "20261123000000", &v2);
    assert_eq!(host.read("current/app.txt"), "two");

    // Rollback unpacks the kept previous artifact from .ship/artifacts.
    let artifacts = Path::new(&host.deploy_to).join(".ship/artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let digest1 = v1
        .file_name()
        .unwrap()
        .to_string_lossy()
        .replace(".tar.zst", "");
    std::fs::copy(&v1, artifacts.join(v1.file_name().unwrap())).unwrap();
    let layout = layout_for("single").unwrap();
    let mut good = record("20261122000000", "current", ReleaseState::Good);
    good.digest = digest1.clone();
    let state = ship_core::HostState {
        records: vec![
            good,
            record("20261123000000", "current", ReleaseState::Live),
        ],
        ..Default::default()
    };
    assert_eq!(layout.rollback_target(&state, None).unwrap(), digest1);
    let cx = LayoutContext {
        deploy_to: &host.deploy_to,
        release: "20261123000000",
        delta: false,
    };
    host.run(
        "20261123000000",
        &v2,
        &layout.locate(&cx),
        &layout.activate(&cx, &digest1),
    );
    assert_eq!(host.read("current/app.txt"), "one");
}

fn record(id: &str, dir: &str, state: ReleaseState) -> ReleaseRecord {
    ReleaseRecord {
        id: id.into(),
        dir: dir.into(),
        revision: None,
        digest: "d".into(),
        time: "t".into(),
        user: "u".into(),
        state,
    }
}
