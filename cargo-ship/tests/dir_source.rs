//! `source = { dir = "." }` (what `init` writes outside git): what `.gitignore` files (in a
//! git repository or not, nested ones too) and `.shipignore` ignore is left out, hidden
//! files that are not ignored ship, `target/` never does, the same tree gives the same
//! digest plan after plan, and a large file is streamed into the artifact, never held in
//! memory whole; what a killed packing left in the cache goes at the next plan.

use ship_tests::Fixture;
use std::process::{Command, Output};

const SHIP: &str = "[default]\napp = \"site\"\ndeploy_to = \"/srv/site\"\nsource = { dir = \".\" }\n\
                    [staging]\nhosts = [\"web1\"]\n";

fn project() -> Fixture {
    Fixture::new(&[
        ("Ship.toml", SHIP),
        ("app.py", "print('hi')\n"),
        (".env.example", "PORT=8000\n"),
        (
            ".well-known/security.txt",
            "Contact: mailto:sec@example.com\n",
        ),
        (".gitignore", "*.log\nsecret/\n"),
        (".shipignore", "# not for the hosts\nnotes/\n*.bak\n"),
        ("sub/.gitignore", "local.txt\n"),
        ("sub/local.txt", "mine\n"),
        ("sub/kept.txt", "shared\n"),
        ("debug.log", "noise\n"),
        ("sub/deep/trace.log", "noise\n"),
        ("secret/key", "hunter2\n"),
        ("notes/todo.md", "- ship\n"),
        ("app.py.bak", "old\n"),
    ])
}

/// `cargo ship ARGS` in the project as its own process, under GNU time: its output, and
/// its peak resident memory in KiB.
fn ship(f: &Fixture, args: &[&str]) -> (Output, u64) {
    let out = Command::new("/usr/bin/time")
        .arg("-v")
        .arg(env!("CARGO_BIN_EXE_cargo-ship"))
        .arg("ship")
        .args(args)
        .current_dir(f.path())
        .output()
        .expect("/usr/bin/time (GNU time) runs cargo-ship");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let peak = stderr
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Maximum resident set size (kbytes): ")
        })
        .and_then(|kb| kb.trim().parse().ok())
        .unwrap_or_else(|| panic!("GNU time's report in {stderr}"));
    (out, peak)
}

fn plan(f: &Fixture) -> (String, u64) {
    let (out, peak) = ship(f, &["plan", "staging", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    (v["artifact"]["digest"].as_str().unwrap().to_owned(), peak)
}

/// The artifact's entries, as `tar -tv` lists them: (path, size).
fn listing(f: &Fixture, digest: &str) -> Vec<(String, u64)> {
    let path = f.join(&format!("target/ship/artifacts/{digest}.tar.zst"));
    let out = Command::new("tar")
        .args(["--zstd", "-tvf"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            (cols[5].to_owned(), cols[2].parse().unwrap())
        })
        .collect()
}

#[test]
fn a_dir_source_honours_gitignore_and_shipignore_and_ships_hidden_files() {
    let f = project();
    let (first, _) = plan(&f);
    let (second, _) = plan(&f);
    assert_eq!(
        first, second,
        "the second plan packs the same tree (not target/ship with the first artifact in it)"
    );
    let names: Vec<String> = listing(&f, &first).into_iter().map(|(n, _)| n).collect();
    for shipped in [
        "Ship.toml",
        "app.py",
        ".env.example",
        ".well-known/",
        ".well-known/security.txt",
        ".gitignore",
        ".shipignore",
        "sub/",
        "sub/.gitignore",
        "sub/kept.txt",
        "sub/deep/",
    ] {
        assert!(names.iter().any(|n| n == shipped), "{shipped} in {names:?}");
    }
    for left_out in [
        "debug.log",
        "sub/deep/trace.log",
        "secret/",
        "secret/key",
        "notes/",
        "notes/todo.md",
        "app.py.bak",
        "sub/local.txt",
    ] {
        assert!(
            !names.iter().any(|n| n == left_out),
            "{left_out} ignored, yet in {names:?}"
        );
    }
    assert!(
        !names.iter().any(|n| n.starts_with("target")),
        "target/ never ships: {names:?}"
    );

    // An ignored file changing changes nothing; a shipped one does.
    f.write("debug.log", "more noise\n");
    f.write("notes/todo.md", "- ship it\n");
    assert_eq!(plan(&f).0, first);
    f.write("app.py", "print('hello')\n");
    assert_ne!(plan(&f).0, first);
}

#[test]
fn a_large_file_is_streamed_into_the_artifact_not_read_into_memory() {
    const SIZE: u64 = 200 * 1024 * 1024;
    let f = project();
    let (_, small_peak) = plan(&f);
    // Sparse: 200 MiB of zeros that take no disk.
    std::fs::File::create(f.join("big.bin"))
        .unwrap()
        .set_len(SIZE)
        .unwrap();
    let (digest, peak) = plan(&f);
    let big = listing(&f, &digest)
        .into_iter()
        .find(|(n, _)| n == "big.bin")
        .expect("big.bin is packed");
    assert_eq!(big.1, SIZE);
    eprintln!("peak {peak} KiB, without the file {small_peak} KiB");
    assert!(
        peak < small_peak + 64 * 1024,
        "a plan of a 200 MiB file peaked at {peak} KiB, one without it at {small_peak} KiB"
    );
    // The same again: the same digest.
    assert_eq!(plan(&f).0, digest);
}

/// What a packing killed earlier left in the artifact cache (its scratch tar and spill
/// directory, a `.part`) is removed by the next `plan` once an hour old; a fresh one (another
/// packing's, going on) and the artifacts stay. `plan` packs and never prunes otherwise.
#[test]
fn a_plan_removes_what_a_killed_packing_left_once_old() {
    let f = project();
    let (digest, _) = plan(&f);
    let cache = f.join("target/ship/artifacts");
    let two_hours_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
    let age = |p: &std::path::Path| {
        std::fs::File::open(p)
            .unwrap()
            .set_modified(two_hours_ago)
            .unwrap()
    };
    for (dir, old) in [(".packing-4242-0.d", true), (".packing-4243-0.d", false)] {
        std::fs::create_dir(cache.join(dir)).unwrap();
        std::fs::write(cache.join(dir).join("0"), "spilled").unwrap();
        if old {
            age(&cache.join(dir));
        }
    }
    for name in [".packing-4242.tar", ".x.tar.zst.4242-0.part"] {
        std::fs::write(cache.join(name), "partial").unwrap();
        age(&cache.join(name));
    }
    assert_eq!(plan(&f).0, digest);
    let mut left: Vec<String> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != ".lock")
        .collect();
    left.sort();
    assert_eq!(
        left,
        [".packing-4243-0.d".to_owned(), format!("{digest}.tar.zst")]
    );
}
