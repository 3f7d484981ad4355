//! A plan's host scripts, run by a real `sh` against a local directory standing in for a
//! host: lock, upload from stdin, prepare, link, switch, cleanup and unlock do what the plan
//! says. (Over SSH, the same scripts run in one session each.)

use ship_tests::Fixture;
use std::io::Write;
use std::process::{Command, Stdio};

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(script: &str, stdin: &[u8], vars: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin).unwrap();
    drop(input);
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn a_planned_deploy_runs_for_real_in_sh() {
    let host = tempfile::tempdir().unwrap();
    let deploy_to = host.path().join("srv/my app"); // a space: every value is quoted
    let ship = format!(
        "[default]\napp = \"demo\"\ndeploy_to = \"{}\"\nsource = {{ dir = \"app\" }}\n\
         linked_files = [\"config/settings.py\"]\nlinked_dirs = [\"log\"]\n\
         [default.tasks.hello]\nrun = \"echo \\\"hello from $SHIP_HOST in $PWD\\\" > hello.txt\"\nafter = \"link\"\n\
         [staging]\nhosts = [\"h1\"]\n",
        deploy_to.display()
    );
    let f = Fixture::new(&[("app/index.html", "v1\n"), ("Ship.toml", &ship)]);
    let out = f.ship(&[
        "plan",
        "staging",
        "--release-id",
        "20261122235800",
        "--format",
        "json",
    ]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let plan: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let digest = plan["artifact"]["digest"].as_str().unwrap();
    // Sent as to a host without zstd: the .tar.gz made from the stored .tar.zst.
    let artifact = std::fs::read(
        ship_core::artifact::gz_of(&f.join(&format!("target/ship/artifacts/{digest}.tar.zst")))
            .unwrap()
            .0,
    )
    .unwrap();
    let scripts: Vec<&str> = plan["hosts"][0]["scripts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["script"].as_str().unwrap())
        .collect();
    assert_eq!(scripts.len(), 3);
    // The nonce that frames the control lines reaches a script in `ship_n` (over SSH, from
    // the first line of its input; here, from the environment).
    const N: &str = "n.0123456789abcdef";
    let vars = [
        ("ship_n", N),
        ("SHIP_DEPLOYER", "tester@ci"),
        ("SHIP_STARTED_AT", "2026-11-22T23:58:00Z"),
        ("SHIP_LOCK_INFO", "{\"who\":\"tester@ci\"}"),
        ("SHIP_CLEANUP", ""),
        ("SHIP_RECORDS", "[]"),
    ];

    // 1: lock and state.
    let lock = run(scripts[0], b"", &vars);
    assert_eq!(lock.code, 0, "{}", lock.stderr);
    assert!(
        lock.stdout.contains(&format!("{N} state current \n")),
        "{}",
        lock.stdout
    );
    assert!(deploy_to.join(".ship/lock/info").exists());
    // A second deploy finds the lock and names its holder.
    let again = run(scripts[0], b"", &vars);
    assert_eq!(again.code, 75);
    assert!(again.stderr.contains("tester@ci"), "{}", again.stderr);

    // 2: the upload reads `<encoding> <bytes>`, then the bytes. Damaged bytes are refused
    // and not kept.
    let sent = |bytes: &[u8]| {
        // The sha256 of the bytes cargo ship meant to send: damaged ones do not have it.
        let mut s =
            format!("gz {} {}\n", bytes.len(), ship_core::sha256_hex(&artifact)).into_bytes();
        s.extend_from_slice(bytes);
        s
    };
    let mut damaged = artifact.clone();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0xff;
    let refused = run(scripts[1], &sent(&damaged), &vars);
    assert_eq!(refused.code, 1, "{}", refused.stdout);
    // A step's output (its standard error too) is relayed as framed `out` lines.
    assert!(
        refused.stdout.contains(&format!(
            "{N} out 3 cargo-ship: the artifact arrived damaged"
        )) || refused.stdout.contains(&format!("{N} out 3 gzip")),
        "{}",
        refused.stdout
    );
    assert!(
        !deploy_to
            .join(format!(".ship/artifacts/{digest}.tar.gz"))
            .exists()
    );
    // The linked file is missing from shared/: link fails, naming it; nothing is live.
    let missing = run(scripts[1], &sent(&artifact), &vars);
    assert_eq!(missing.code, 76, "{}", missing.stderr);
    assert!(
        missing
            .stdout
            .contains(&format!("{N} out 5 cargo-ship: missing from"))
            && missing.stdout.contains("config/settings.py"),
        "{}",
        missing.stdout
    );
    assert!(!deploy_to.join("current").exists());

    std::fs::create_dir_all(deploy_to.join("shared/config")).unwrap();
    std::fs::write(deploy_to.join("shared/config/settings.py"), "SECRET=1\n").unwrap();
    let prepare = run(scripts[1], &artifact, &vars);
    assert_eq!(prepare.code, 0, "{}", prepare.stderr);
    assert!(prepare.stdout.contains(&format!("{N} start 3 upload")));
    assert!(
        prepare.stdout.contains(&format!("{N} end 7 0")),
        "{}",
        prepare.stdout
    );
    let release = deploy_to.join("releases/20261122235800");
    assert_eq!(
        std::fs::read_to_string(release.join("index.html")).unwrap(),
        "v1\n"
    );
    assert_eq!(
        std::fs::read_to_string(release.join("config/settings.py")).unwrap(),
        "SECRET=1\n"
    );
    assert!(
        std::fs::read_to_string(release.join("hello.txt"))
            .unwrap()
            .contains("hello from h1")
    );

    // 3: switch, cleanup, unlock.
    let finish = run(scripts[2], b"", &vars);
    assert_eq!(finish.code, 0, "{}", finish.stderr);
    assert_eq!(
        std::fs::read_link(deploy_to.join("current")).unwrap(),
        release
    );
    assert!(!deploy_to.join(".ship/lock").exists());
    let log = std::fs::read_to_string(deploy_to.join("revisions.log")).unwrap();
    assert_eq!(
        log,
        format!("Branch dir (at {digest}) deployed as release 20261122235800 by tester@ci\n")
    );

    assert!(
        deploy_to
            .join(format!(".ship/artifacts/{digest}.tar.gz"))
            .exists()
    );

    // Redeploying uploads nothing: the artifact is already there (stdin is empty).
    let lock = run(scripts[0], b"", &vars);
    assert!(lock.stdout.contains(&format!("{N} state artifact present")));
    assert!(
        lock.stdout
            .contains(&format!("{N} state release 20261122235800"))
    );
}
