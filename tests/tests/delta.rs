//! Big artifacts, small changes (issue #21, part 2) on real SSH hosts: with `delta = true`
//! a host keeps a content-addressed store of files (`.ship/objects/`), a release is made of
//! hard links to it, and a redeploy sends only the files the host lacks. The bytes are the
//! ssh transport's count of what each session was written (`sent_bytes` in the outcome).

use ship_tests::{Fixture, Fleet, Output};

const MB: usize = 1 << 20;

/// Bytes no compressor shrinks (xorshift), the same every run.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A project whose artifact is 20 MB of incompressible files, one small file, a script, a
/// symlink; `delta = true`.
fn project(fleet: &Fleet) -> Fixture {
    let ship = format!(
        "[default]\napp = \"demo\"\ndeploy_to = \"/srv/app\"\nsource = {{ dir = \"app\" }}\n\
         ssh_config = \"{}\"\ncommand_timeout = \"120s\"\nkeep_releases = 2\ndelta = true\n\
         [staging]\nhosts = [{}]\n",
        fleet.ssh_config().display(),
        fleet.toml_hosts(0..fleet.hosts.len())
    );
    let f = Fixture::new(&[
        ("Ship.toml", &ship),
        ("app/config/settings.txt", "version 1\n"),
        ("app/bin/run.sh", "#!/bin/sh\necho run\n"),
    ]);
    for i in 0..20 {
        std::fs::create_dir_all(f.join("app/vendor")).unwrap();
        std::fs::write(f.join(&format!("app/vendor/lib{i:02}.whl")), noise(i, MB)).unwrap();
    }
    std::fs::write(f.join("app/small.dat"), noise(100, 10 << 10)).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        f.join("app/bin/run.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    std::os::unix::fs::symlink("config/settings.txt", f.join("app/settings")).unwrap();
    f
}

fn apply(f: &Fixture, id: &str) -> Output {
    f.ship_env(
        &["apply", "staging", "--release-id", id, "--format", "json"],
        &[("USER", "tester")],
    )
}

fn ok(out: &Output) {
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
}

/// Bytes sent to each host, from the JSON outcome.
fn sent(out: &Output) -> Vec<u64> {
    let last: serde_json::Value =
        serde_json::from_str(out.stdout.lines().last().expect("an outcome")).unwrap();
    last["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["sent_bytes"].as_u64().unwrap())
        .collect()
}

/// `sha256  path` of every file of a release, mode and symlinks: what it holds.
fn listing(fleet: &Fleet, host: &str, dir: &str) -> String {
    fleet.sh(
        host,
        &format!(
            "cd {dir} && find . -path ./REVISION -prune -o -printf '%y %m %p %l\\n' | sort && \
             find . -type f ! -name REVISION | sort | xargs sha256sum"
        ),
    )
}

/// The same listing of the project's `app/`, here.
fn local_listing(f: &Fixture) -> String {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(
            "cd app && find . -printf '%y %m %p %l\\n' | sort && \
             find . -type f | sort | xargs sha256sum",
        )
        .current_dir(f.path())
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn a_redeploy_with_one_small_file_changed_sends_under_one_percent() {
    let fleet = Fleet::start_sized(2, "200m");
    let f = project(&fleet);
    let first = apply(&f, "20261101000001");
    ok(&first);
    for bytes in sent(&first) {
        assert!(
            bytes > 20 * MB as u64,
            "the first deploy sends every file: {bytes}"
        );
    }

    std::fs::write(f.join("app/small.dat"), noise(101, 10 << 10)).unwrap();
    let second = apply(&f, "20261101000002");
    ok(&second);
    for bytes in sent(&second) {
        assert!(
            bytes < (20 * MB / 100) as u64,
            "a redeploy with one 10 KB file changed sent {bytes} bytes"
        );
        assert!(bytes > 10 << 10, "the changed file was sent: {bytes}");
    }

    let v1 = "/srv/app/releases/20261101000001";
    let v2 = "/srv/app/releases/20261101000002";
    for h in ["h1", "h2"] {
        assert_eq!(fleet.readlink(h, "/srv/app/current"), v2);
        // The release holds what the artifact holds: files, modes, the symlink.
        let want = local_listing(&f);
        assert_eq!(listing(&fleet, h, v2), want);
        assert_eq!(fleet.sh(h, &format!("{v2}/bin/run.sh")).trim(), "run");
        // Its files are hard links to the store, shared with the release before.
        let same = |a: &str, b: &str| fleet.try_sh(h, &format!("test {a} -ef {b}")).0;
        assert!(same(
            &format!("{v1}/vendor/lib03.whl"),
            &format!("{v2}/vendor/lib03.whl")
        ));
        assert!(!same(
            &format!("{v1}/small.dat"),
            &format!("{v2}/small.dat")
        ));
        let sha = fleet.sh(h, &format!("sha256sum {v2}/vendor/lib03.whl | cut -c1-64"));
        assert!(same(
            &format!("{v2}/vendor/lib03.whl"),
            &format!("/srv/app/.ship/objects/{}.644", sha.trim())
        ));
    }

    // A third release: keep_releases = 2 removes the first, and the object only it used.
    let old = fleet.sh("h1", &format!("sha256sum {v1}/small.dat | cut -c1-64"));
    let old = format!("/srv/app/.ship/objects/{}.644", old.trim());
    assert!(fleet.try_sh("h1", &format!("test -f {old}")).0);
    std::fs::write(f.join("app/config/settings.txt"), "version 3\n").unwrap();
    let third = apply(&f, "20261101000003");
    ok(&third);
    assert!(!fleet.try_sh("h1", &format!("test -e {v1}")).0);
    assert!(
        !fleet.try_sh("h1", &format!("test -e {old}")).0,
        "an object no kept release uses is removed"
    );
    // Every object left is used by a kept release.
    assert_eq!(
        fleet
            .sh("h1", "find /srv/app/.ship/objects -type f -links 1 | wc -l")
            .trim(),
        "0"
    );
    assert_eq!(
        listing(&fleet, "h1", "/srv/app/current/"),
        local_listing(&f)
    );
}

/// An object written in place on the host (a task that appends to a release's file, the
/// same inode as the store's): the next deploy finds it by its changed inode and its
/// sha256, never links it, sends it again, and the new release is right. Putting its
/// mtime back does not hide it.
#[test]
fn a_changed_object_on_the_host_is_detected_and_never_linked() {
    let fleet = Fleet::start_sized(1, "200m");
    let f = project(&fleet);
    ok(&apply(&f, "20261101000001"));
    let v1 = "/srv/app/releases/20261101000001";
    fleet.sh(
        "h1",
        &format!(
            "echo tampered >> {v1}/vendor/lib05.whl && touch -d @946684800 {v1}/vendor/lib05.whl"
        ),
    );

    std::fs::write(f.join("app/small.dat"), noise(102, 10 << 10)).unwrap();
    let out = apply(&f, "20261101000002");
    ok(&out);
    // It was sent again (the artifact it was part of is forgotten: here all 20 MB), and the
    // new release has the artifact's bytes, not the tampered ones.
    assert!(sent(&out)[0] > MB as u64, "{:?}", sent(&out));
    let v2 = "/srv/app/releases/20261101000002";
    assert_eq!(listing(&fleet, "h1", v2), local_listing(&f));
    assert!(
        !fleet
            .try_sh(
                "h1",
                &format!("test {v1}/vendor/lib05.whl -ef {v2}/vendor/lib05.whl")
            )
            .0
    );
}
