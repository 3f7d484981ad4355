//! `source = { cargo = "<bin>" }`: the binary built here in release mode and shipped with
//! the `include`d files; the version layout takes its id from Cargo.toml; the same commit
//! gives the same artifact digest, wherever it is checked out.

use ship_tests::{Fixture, Fleet, ok};

fn project(ssh_config: &str, hosts: &str) -> Fixture {
    let ship = format!(
        "[default]\napp = \"hello\"\ndeploy_to = \"/srv/hello\"\nlayout = \"version\"\n\
         source = {{ cargo = \"hello-server\" }}\ninclude = [\"static\"]\n{ssh_config}\n\
         [staging]\nhosts = [{hosts}]\n"
    );
    let f = Fixture::new(&[
        (
            "Cargo.toml",
            "[package]\nname = \"hello-server\"\nversion = \"0.3.1\"\nedition = \"2021\"\n\n[workspace]\n",
        ),
        (
            "src/main.rs",
            "fn main() {\n    println!(\"hello from {}\", env!(\"CARGO_PKG_VERSION\"));\n}\n",
        ),
        ("static/index.html", "<h1>hello</h1>\n"),
        ("Ship.toml", &ship),
    ]);
    let lock = std::process::Command::new("cargo")
        .args(["generate-lockfile", "--offline"])
        .current_dir(f.path())
        .output()
        .unwrap();
    assert!(
        lock.status.success(),
        "{}",
        String::from_utf8_lossy(&lock.stderr)
    );
    f.commit("hello 0.3.1");
    f
}

fn digest(plan_json: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(plan_json).unwrap();
    v["artifact"]["digest"].as_str().unwrap().to_owned()
}

#[test]
fn the_same_commit_gives_the_same_digest_in_another_checkout() {
    let a = project("", "\"web1\"");
    let b = project("", "\"web1\"");
    let plan_a = a.ship(&["plan", "staging", "--format", "json"]);
    ok(&plan_a);
    let plan_b = b.ship(&["plan", "staging", "--format", "json"]);
    ok(&plan_b);
    assert_ne!(a.path(), b.path());
    assert_eq!(digest(&plan_a.stdout), digest(&plan_b.stdout));
    let v: serde_json::Value = serde_json::from_str(&plan_a.stdout).unwrap();
    assert_eq!(v["release"], "0.3.1", "the version layout reads Cargo.toml");
    assert_eq!(v["artifact"]["source"], "cargo hello-server");
    assert_eq!(
        v["artifact"]["entries"], 4,
        "bin/, bin/hello-server, static/, static/index.html"
    );
    // Another commit with other code: another digest.
    b.write(
        "src/main.rs",
        "fn main() {\n    println!(\"changed\");\n}\n",
    );
    b.commit("changed");
    let plan_c = b.ship(&["plan", "staging", "--format", "json"]);
    ok(&plan_c);
    assert_ne!(digest(&plan_a.stdout), digest(&plan_c.stdout));
}

#[test]
fn a_cargo_binary_is_deployed_with_its_files_and_runs_on_the_host() {
    let fleet = Fleet::start(1);
    let f = project(
        &format!("ssh_config = \"{}\"", fleet.ssh_config().display()),
        &fleet.toml_hosts(0..1),
    );
    ok(&f.ship(&["apply", "staging"]));
    assert_eq!(
        fleet.readlink("h1", "/srv/hello/current"),
        "/srv/hello/releases/0.3.1"
    );
    let out = f.ship(&[
        "run",
        "staging",
        "--",
        "bin/hello-server && cat static/index.html",
    ]);
    ok(&out);
    assert!(out.stdout.contains("hello from 0.3.1"), "{}", out.stdout);
    assert!(out.stdout.contains("<h1>hello</h1>"), "{}", out.stdout);

    // A name that is not a binary of the workspace: a clear error, nothing sent.
    let ship = std::fs::read_to_string(f.join("Ship.toml"))
        .unwrap()
        .replace("cargo = \"hello-server\"", "cargo = \"no-such-bin\"");
    f.write("Ship.toml", &ship);
    let out = f.ship(&["plan", "staging", "--version", "0.3.2"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("cargo build --release --locked --bin no-such-bin"),
        "{}",
        out.stderr
    );
}
