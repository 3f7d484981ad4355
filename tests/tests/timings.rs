//! `apply --timings`: a deploy to real sshd hosts writes an HTML report, and a real headless
//! browser (Debian's chromium) runs its script: the DOM it dumps has one bar per step each
//! host ran, and its screenshot is not blank.
//!
//! Without chromium the test fails, unless `SHIP_SKIP_BROWSER=1` says to skip it (CI installs
//! chromium: `.ci/run`).

use ship_tests::{Fixture, Fleet, ok};
use std::path::Path;
use std::process::Command;

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser"].into_iter().find(|c| {
        Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// Runs headless chromium on `page` with `args` (`--dump-dom`, `--screenshot=...`); its stdout.
fn browse(chromium: &str, page: &Path, args: &[String]) -> String {
    let profile = tempfile::tempdir().expect("a temporary directory");
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The distinct byte values of a PNG's pixel data (its IDAT chunks, inflated): a blank
/// page gives two or three (the filter bytes and one colour), a drawn one many.
fn png_variety(png: &[u8]) -> usize {
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let mut idat = Vec::new();
    let mut at = 8;
    while at + 8 <= png.len() {
        let len = u32::from_be_bytes(png[at..at + 4].try_into().unwrap()) as usize;
        if &png[at + 4..at + 8] == b"IDAT" {
            idat.extend_from_slice(&png[at + 8..at + 8 + len]);
        }
        at += 12 + len;
    }
    let mut pixels = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::ZlibDecoder::new(&idat[..]), &mut pixels)
        .expect("the PNG's data inflates");
    let mut seen = [false; 256];
    pixels.iter().for_each(|b| seen[*b as usize] = true);
    seen.iter().filter(|s| **s).count()
}

#[test]
fn apply_timings_writes_a_page_a_browser_draws_with_one_bar_per_host_step() {
    let Some(chromium) = chromium() else {
        if std::env::var_os("SHIP_SKIP_BROWSER").is_some() {
            eprintln!("skipped: chromium is not installed and SHIP_SKIP_BROWSER is set");
            return;
        }
        panic!(
            "chromium is not installed: `apt-get install chromium` (or set SHIP_SKIP_BROWSER=1 to skip this test)"
        );
    };
    let fleet = Fleet::start(3);
    let slow = fleet.hosts[1].name.clone();
    let ship = format!(
        "[default]\napp = \"demo\"\ndeploy_to = \"/srv/app\"\nsource = {{ dir = \"app\" }}\n\
         ssh_config = \"{}\"\n\n\
         [default.tasks.warm]\nrun = \"case $SHIP_HOST in {slow}) sleep 1.5;; *) sleep 0.2;; esac\"\nafter = \"install\"\n\n\
         [default.tasks.announce]\nrun = \"sleep 0.3; echo announced\"\nafter = \"install\"\nlocal = true\n\n\
         [default.tasks.restart]\nrun = \"echo restarted $SHIP_HOST\"\nafter = \"switch\"\n\n\
         [staging]\nhosts = [{}]\n",
        fleet.ssh_config().display(),
        fleet.toml_hosts(0..3)
    );
    let f = Fixture::new(&[("app/index.html", "v1\n"), ("Ship.toml", &ship)]);
    let release = "20260101000001";
    let out = f.ship(&["apply", "staging", "--release-id", release, "--timings"]);
    ok(&out);
    let page = f.join(&format!("target/ship/timings/staging-{release}.html"));
    let last = out.stderr.lines().last().unwrap_or_default();
    assert_eq!(
        last,
        format!(
            "Timing report saved to file://[project]/target/ship/timings/staging-{release}.html"
        ),
        "{}",
        out.stderr
    );
    let html = std::fs::read_to_string(&page).expect("the report");
    assert_eq!(
        std::fs::read_to_string(f.join("target/ship/timings/latest.html")).expect("latest"),
        html
    );
    // Self-contained: nothing fetched from anywhere (the SVG namespace is a name, not a fetch).
    let fetched = html.replace("\"http://www.w3.org/2000/svg\"", "");
    for outside in ["http://", "https://", "src=", "href=", "url("] {
        assert!(!fetched.contains(outside), "the page refers to {outside}");
    }
    // The slowest host and step are named, and they are the ones made slow.
    assert!(
        html.contains(&format!("<b id=\"slowest-host\">{slow}</b>")),
        "{html}"
    );
    assert!(
        html.contains(&format!("<b id=\"slowest-step\">warm on {slow}</b>")),
        "{html}"
    );

    // What the plan says each host runs, and the local step.
    let plan: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(f.join("target/ship/staging.plan.json")).expect("the plan"),
    )
    .expect("JSON");
    let host_steps: usize = plan["hosts"]
        .as_array()
        .expect("hosts")
        .iter()
        .map(|h| h["steps"].as_array().expect("steps").len())
        .sum();
    let local_run = 1; // announce; the build was done when the plan was made
    assert!(host_steps >= 3 * 10, "{host_steps}");

    // A real browser runs the page's script, which draws the bars from the embedded data.
    let dom = browse(
        chromium,
        &page,
        &[
            "--virtual-time-budget=5000".to_owned(),
            "--dump-dom".to_owned(),
        ],
    );
    let bars = dom.matches("class=\"bar\"").count();
    assert_eq!(
        bars,
        host_steps + local_run,
        "one bar per step on each host and the local one:\n{dom}"
    );
    for h in &fleet.hosts {
        assert!(
            dom.contains(&format!("data-host=\"{}\" data-step=\"switch\"", h.name)),
            "{dom}"
        );
    }
    assert!(
        dom.contains("data-host=\"local\" data-step=\"announce\""),
        "{dom}"
    );
    assert_eq!(dom.matches("class=\"bar failed\"").count(), 0);
    // Each sync point (a segment after the first: here before upload, after the local step,
    // before switch), drawn as a line.
    let segments = plan["hosts"][0]["scripts"]
        .as_array()
        .expect("scripts")
        .len();
    assert_eq!(segments, 4);
    assert_eq!(dom.matches("class=\"sync\"").count(), segments - 1, "{dom}");

    // And it paints: a screenshot with something drawn on it.
    let shot_dir = tempfile::tempdir().expect("a temporary directory");
    let shot = shot_dir.path().join("timings.png");
    browse(
        chromium,
        &page,
        &[
            "--window-size=1200,520".to_owned(),
            "--virtual-time-budget=5000".to_owned(),
            format!("--screenshot={}", shot.display()),
        ],
    );
    let png = std::fs::read(&shot).expect("the screenshot");
    let variety = png_variety(&png);
    assert!(
        variety > 20,
        "the screenshot looks blank ({variety} byte values)"
    );
    if let Some(keep) = std::env::var_os("SHIP_TIMINGS_SCREENSHOT") {
        std::fs::copy(&shot, keep).expect("the screenshot is copied");
    }

    // A deploy that fails after the switch on one host gets its page too: the failed step
    // is the one bar drawn failed.
    f.write(
        "Ship.toml",
        &ship.replace(
            "[staging]",
            &format!("[default.tasks.check]\nrun = \"[ $SHIP_HOST != {slow} ]\"\nafter = \"restart\"\n\n[staging]"),
        ),
    );
    f.write("app/index.html", "v2\n");
    let failed = "20260101000002";
    let out = f.ship(&["apply", "staging", "--release-id", failed, "--timings"]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "Timing report saved to file://[project]/target/ship/timings/staging-{failed}.html"
        )),
        "{}",
        out.stderr
    );
    let page = f.join(&format!("target/ship/timings/staging-{failed}.html"));
    let html = std::fs::read_to_string(&page).expect("the report");
    assert!(html.contains("failed: every host put back"), "{html}");
    let dom = browse(
        chromium,
        &page,
        &[
            "--virtual-time-budget=5000".to_owned(),
            "--dump-dom".to_owned(),
        ],
    );
    assert_eq!(dom.matches("class=\"bar failed\"").count(), 1, "{dom}");
    assert!(
        dom.contains(&format!(
            "class=\"bar failed\" data-host=\"{slow}\" data-step=\"check\""
        )),
        "{dom}"
    );
}

#[test]
fn a_rolling_deploy_has_each_batch_and_its_sync_points_drawn() {
    let Some(chromium) = chromium() else {
        if std::env::var_os("SHIP_SKIP_BROWSER").is_some() {
            eprintln!("skipped: chromium is not installed and SHIP_SKIP_BROWSER is set");
            return;
        }
        panic!(
            "chromium is not installed: `apt-get install chromium` (or set SHIP_SKIP_BROWSER=1 to skip this test)"
        );
    };
    let fleet = Fleet::start(4);
    let ship = format!(
        "[default]\napp = \"demo\"\ndeploy_to = \"/srv/app\"\nsource = {{ dir = \"app\" }}\n\
         ssh_config = \"{}\"\n\n[staging]\nhosts = [{}]\nrolling = 2\n",
        fleet.ssh_config().display(),
        fleet.toml_hosts(0..4)
    );
    let f = Fixture::new(&[("app/index.html", "v1\n"), ("Ship.toml", &ship)]);
    let release = "20260101000001";
    ok(&f.ship(&["apply", "staging", "--release-id", release, "--timings"]));
    let plan: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(f.join("target/ship/staging.plan.json")).expect("the plan"),
    )
    .expect("JSON");
    let host_steps: usize = plan["hosts"]
        .as_array()
        .expect("hosts")
        .iter()
        .map(|h| h["steps"].as_array().expect("steps").len())
        .sum();
    let segments = plan["hosts"][0]["scripts"]
        .as_array()
        .expect("scripts")
        .len();
    let page = f.join(&format!("target/ship/timings/staging-{release}.html"));
    let dom = browse(
        chromium,
        &page,
        &[
            "--virtual-time-budget=5000".to_owned(),
            "--dump-dom".to_owned(),
        ],
    );
    assert_eq!(dom.matches("class=\"bar\"").count(), host_steps, "{dom}");
    assert_eq!(dom.matches("class=\"batch\"").count(), 2, "{dom}");
    // Each batch passes every sync point of its own.
    assert_eq!(
        dom.matches("class=\"sync\"").count(),
        2 * (segments - 1),
        "{dom}"
    );
}
