//! Hostile artifacts and caches on real SSH hosts (issue #16, classes 3 and 8).
//!
//! Class 3: a chain of relative links, each harmless as text, resolved outside the release,
//! and the host wrote through links the artifact shipped (REVISION, a linked file, the
//! maintenance page). Class 8: an artifact kept on a host was unpacked without its sha256
//! being checked, at a deploy and at a rollback of the `single` layout. Each test here
//! failed before the fix.

use ship_tests::{Fixture, Fleet, Output};

fn project(fleet: &Fleet, extra: &str) -> Fixture {
    let ship = format!(
        "[default]\napp = \"demo\"\ndeploy_to = \"/srv/app\"\nsource = {{ dir = \"app\" }}\n\
         ssh_config = \"{}\"\ncommand_timeout = \"60s\"\nkeep_releases = 3\n{extra}\n\
         [staging]\nhosts = [{}]\n",
        fleet.ssh_config().display(),
        fleet.toml_hosts(0..fleet.hosts.len())
    );
    Fixture::new(&[("app/index.html", "v1\n"), ("Ship.toml", &ship)])
}

fn apply(f: &Fixture, id: &str) -> Output {
    f.ship_env(
        &["apply", "staging", "--release-id", id],
        &[("USER", "tester")],
    )
}

fn ok(out: &Output) {
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
}

fn symlink(f: &Fixture, path: &str, target: &str) {
    std::os::unix::fs::symlink(target, f.join(path)).expect("a symlink in the project");
}

/// `a -> .`, `b -> a/..`, `c -> b/..`, `d -> c/..`: each stays inside as text, and `d` is
/// `/srv` on the host (the release is `/srv/app/releases/<id>`). REVISION, a link to
/// `d/escaped`, was written through the chain to `/srv/escaped`, outside `deploy_to`, as
/// root. Now the artifact is refused when it is built, naming the link and the chain, and
/// nothing reaches the host.
#[test]
fn a_chain_of_links_cannot_lead_outside_the_release() {
    let fleet = Fleet::start(1);
    let f = project(&fleet, "");
    for (link, target) in [
        ("a", "."),
        ("b", "a/.."),
        ("c", "b/.."),
        ("d", "c/.."),
        ("REVISION", "d/escaped"),
    ] {
        symlink(&f, &format!("app/{link}"), target);
    }
    let out = apply(&f, "20261101000001");
    assert!(
        !fleet.try_sh("h1", "test -e /srv/escaped").0,
        "written outside deploy_to: {}",
        fleet.read("h1", "/srv/escaped")
    );
    assert_ne!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("`REVISION -> d/escaped`"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("`c -> b/..`"), "{}", out.stderr);
    assert!(
        out.stderr.contains("outside the release directory"),
        "{}",
        out.stderr
    );
    assert!(!fleet.try_sh("h1", "test -e /srv/app/current").0);
}

/// Links that resolve inside the artifact can still lead elsewhere on the host, through what
/// the deploy puts there: `b -> a/..` is the release's root by the artifact's entries, and
/// `shared/` once `a` is linked. The link step removed `shared/x` through it and put a link
/// in its place; now it refuses, naming `b`, and the host keeps its live release.
#[test]
fn a_linked_file_is_never_placed_through_a_link_of_the_artifact() {
    let fleet = Fleet::start(1);
    let f = project(&fleet, "linked_files = [\"a\", \"b/x\"]\n");
    fleet.sh(
        "h1",
        "mkdir -p /srv/app/shared/a /srv/app/shared/b && echo precious > /srv/app/shared/x && echo x > /srv/app/shared/b/x",
    );
    ok(&apply(&f, "20261101000001"));
    assert_eq!(fleet.read("h1", "/srv/app/current/b/x"), "x\n");

    f.write("app/index.html", "v2\n");
    symlink(&f, "app/b", "a/..");
    let out = apply(&f, "20261101000002");
    assert_eq!(
        fleet.read("h1", "/srv/app/shared/x"),
        "precious\n",
        "shared/x was replaced through `b`: {}",
        out.stderr
    );
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr
            .contains("b is a symlink in the release: refusing to link shared files through it"),
        "{}",
        out.stderr
    );
    assert_eq!(
        fleet.readlink("h1", "/srv/app/current"),
        "/srv/app/releases/20261101000001"
    );
}

/// REVISION shipped as a link (inside the release, so the artifact is accepted): the
/// revision was written through it, over `index.html`. Now the deploy refuses.
#[test]
fn revision_is_never_written_through_a_link_of_the_artifact() {
    let fleet = Fleet::start(1);
    let f = project(&fleet, "");
    symlink(&f, "app/REVISION", "index.html");
    let out = apply(&f, "20261101000001");
    let page = fleet.read("h1", "/srv/app/releases/20261101000001/index.html");
    assert!(
        page.is_empty() || page == "v1\n",
        "REVISION was written through its link over index.html: {page}"
    );
    assert_ne!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr
            .contains("the artifact has REVISION as a symlink"),
        "{}",
        out.stderr
    );
    assert!(!fleet.try_sh("h1", "test -e /srv/app/current").0);
}

/// The maintenance page, where the live release has a link (accepted: `a/../x` stays
/// inside by the artifact's entries, and leads to `shared/x` once `a` is linked): `on`
/// wrote the page over `shared/x`. Now it refuses, and `shared/x` is as it was.
#[test]
fn the_maintenance_page_is_never_written_through_a_link_of_the_artifact() {
    let fleet = Fleet::start(1);
    let f = project(
        &fleet,
        "linked_files = [\"a\"]\n[default.maintenance]\nfile = \"page.html\"\n",
    );
    fleet.sh(
        "h1",
        "mkdir -p /srv/app/shared/a && echo precious > /srv/app/shared/x",
    );
    symlink(&f, "app/page.html", "a/../x");
    ok(&apply(&f, "20261101000001"));
    let out = f.ship(&["maintenance", "staging", "on"]);
    assert_eq!(
        fleet.read("h1", "/srv/app/shared/x"),
        "precious\n",
        "the page was written through `page.html`: {}",
        out.stderr
    );
    assert_ne!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr
            .contains("refusing to write the maintenance page"),
        "{}",
        out.stderr
    );
}

/// Replaces, on `host`, every kept artifact with one holding `index.html` = `evil`, in the
/// same compression.
fn tamper(fleet: &Fleet, host: &str) {
    fleet.sh(
        host,
        "mkdir -p /srv/evil && echo evil > /srv/evil/index.html && \
         for a in /srv/app/.ship/artifacts/*.tar.*; do \
           case \"$a\" in \
             *.zst) tar -C /srv/evil -cf - index.html | zstd -q > \"$a\" ;; \
             *) tar -C /srv/evil -cf - index.html | gzip > \"$a\" ;; \
           esac; \
         done",
    );
}

/// A kept artifact changed on the host: a deploy of the same content used it under the
/// plan's digest and put `evil` live. Now the `lock` step checks it, removes it, and the
/// artifact is sent again. The same for one cut short, as an upload cut mid-way leaves it
/// (the upload writes under the artifact's own name, with no rename).
#[test]
fn a_tampered_kept_artifact_is_sent_again() {
    let cut_short = "for a in /srv/app/.ship/artifacts/*.tar.*; do \
                       head -c \"$(($(wc -c < \"$a\") / 2))\" \"$a\" > /tmp/half && cat /tmp/half > \"$a\"; \
                     done";
    for (damage, cut) in [("changed", false), ("cut short", true)] {
        let fleet = Fleet::start(1);
        let f = project(&fleet, "");
        ok(&apply(&f, "20261101000001"));
        if cut {
            fleet.sh("h1", cut_short);
            let test = "for a in /srv/app/.ship/artifacts/*.tar.zst; do zstd -tq \"$a\" 2>/dev/null && echo whole || echo cut; done";
            assert_eq!(fleet.sh("h1", test).trim(), "cut");
        } else {
            tamper(&fleet, "h1");
        }
        let out = apply(&f, "20261101000002");
        ok(&out);
        assert_eq!(
            fleet.read("h1", "/srv/app/current/index.html"),
            "v1\n",
            "{damage}: the damaged artifact was deployed"
        );
        assert_eq!(
            fleet.readlink("h1", "/srv/app/current"),
            "/srv/app/releases/20261101000002",
            "{damage}"
        );
        // What is kept now is the plan's artifact again.
        let digest = fleet
            .sh("h1", "cat /srv/app/releases/20261101000002/REVISION")
            .trim()
            .to_owned();
        let sum = fleet.sh(
            "h1",
            &format!("zstd -dcq /srv/app/.ship/artifacts/{digest}.tar.zst | sha256sum"),
        );
        assert!(sum.starts_with(&digest), "{damage}: {sum}");
    }
}

/// The `single` layout rolls back by unpacking the previous artifact kept on the host: a
/// changed one was put live. Now the rollback refuses, and `current/` stays as it was.
#[test]
fn a_single_layout_rollback_refuses_a_tampered_kept_artifact() {
    let fleet = Fleet::start(1);
    let f = project(&fleet, "layout = \"single\"\n");
    ok(&apply(&f, "20261101000001"));
    f.write("app/index.html", "v2\n");
    ok(&apply(&f, "20261101000002"));
    assert_eq!(fleet.read("h1", "/srv/app/current/index.html"), "v2\n");
    // Only v1's artifact is changed: the live one stays good.
    let records: serde_json::Value =
        serde_json::from_str(&fleet.read("h1", "/srv/app/.ship/releases.json")).unwrap();
    let v1 = records
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "20261101000001")
        .and_then(|r| r["digest"].as_str())
        .unwrap()
        .to_owned();
    fleet.sh(
        "h1",
        &format!(
            "mkdir -p /srv/evil && echo evil > /srv/evil/index.html && \
             tar -C /srv/evil -cf - index.html | zstd -q > /srv/app/.ship/artifacts/{v1}.tar.zst"
        ),
    );
    let out = f.ship_env(&["rollback", "staging"], &[("USER", "tester")]);
    assert_eq!(
        fleet.read("h1", "/srv/app/current/index.html"),
        "v2\n",
        "the rollback unpacked a tampered artifact: {}",
        out.stderr
    );
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("refusing to unpack it"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("does not have that sha256"),
        "{}",
        out.stderr
    );
}
