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

/// This machine's target triple (installed, so `--target` can build for it).
fn host_triple() -> String {
    let out = std::process::Command::new("rustc")
        .arg("-vV")
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("rustc -vV names the host")
        .to_owned()
}

#[test]
fn target_features_and_profile_are_built_and_the_binary_is_found_from_cargos_messages() {
    let fleet = Fleet::start(1);
    let triple = host_triple();
    let ship = |features: &str| {
        format!(
            "[default]\napp = \"hello\"\ndeploy_to = \"/srv/hello\"\nlayout = \"version\"\n\
             source = {{ cargo = \"hello-server\" }}\n\
             cargo = {{ target = \"{triple}\", features = [{features}], profile = \"dist\" }}\n\
             ssh_config = \"{}\"\n[staging]\nhosts = [{}]\n",
            fleet.ssh_config().display(),
            fleet.toml_hosts(0..1)
        )
    };
    let f = Fixture::new(&[
        (
            "Cargo.toml",
            "[package]\nname = \"hello-server\"\nversion = \"0.4.0\"\nedition = \"2021\"\n\n\
             [features]\nloud = []\n\n\
             [profile.dist]\ninherits = \"release\"\ndebug-assertions = true\n\n[workspace]\n",
        ),
        (
            "src/main.rs",
            "fn main() {\n    let greeting = if cfg!(feature = \"loud\") { \"HELLO\" } else { \"hello\" };\n    \
             println!(\"{greeting} debug_assertions={}\", cfg!(debug_assertions));\n}\n",
        ),
        ("Ship.toml", &ship("\"loud\"")),
    ]);
    let lock = std::process::Command::new("cargo")
        .args(["generate-lockfile", "--offline"])
        .current_dir(f.path())
        .output()
        .unwrap();
    assert!(lock.status.success());
    f.commit("hello 0.4.0");

    let plan = f.ship(&["plan", "staging", "--format", "json"]);
    ok(&plan);
    let v: serde_json::Value = serde_json::from_str(&plan.stdout).unwrap();
    let commands = v["artifact"]["commands"].to_string();
    for arg in [
        "--profile=dist".to_owned(),
        format!("--target={triple}"),
        "--features=loud".to_owned(),
    ] {
        assert!(commands.contains(&arg), "{arg} in {commands}");
    }
    let text = f.ship(&["plan", "staging"]);
    ok(&text);
    assert!(
        text.stdout.contains("--features=loud") && text.stdout.contains("--profile=dist"),
        "the plan shows how the binary is built:\n{}",
        text.stdout
    );
    // Where cargo put it, not where a plain release build would.
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| f.join("target"));
    assert!(target_dir.join(&triple).join("dist/hello-server").is_file());
    assert!(!target_dir.join("release/hello-server").exists());

    ok(&f.ship(&["apply", "staging"]));
    let out = f.ship(&["run", "staging", "--", "bin/hello-server"]);
    ok(&out);
    assert!(
        out.stdout.contains("HELLO debug_assertions=true"),
        "the feature and the profile were built: {}",
        out.stdout
    );

    // Without the feature: another configuration digest and another binary.
    f.write("Ship.toml", &ship(""));
    let quiet = f.ship(&["plan", "staging", "--format", "json"]);
    ok(&quiet);
    let q: serde_json::Value = serde_json::from_str(&quiet.stdout).unwrap();
    assert_ne!(q["config_digest"], v["config_digest"]);
    assert_ne!(q["artifact"]["digest"], v["artifact"]["digest"]);

    // The keys belong to a cargo source only.
    f.write(
        "Ship.toml",
        &ship("\"loud\"").replace("{ cargo = \"hello-server\" }", "{ dir = \"src\" }"),
    );
    let out = f.ship(&["plan", "staging"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("`default.cargo`: applies to a `source = { cargo")
            && out.stderr.contains("Ship.toml:6"),
        "{}",
        out.stderr
    );
}

fn lockfile(f: &Fixture) {
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
}

const MAIN: &str = "fn main() {\n    println!(\"hi\");\n}\n";

#[test]
fn init_in_a_cargo_package_ships_its_binary_under_its_name() {
    let f = Fixture::new(&[
        (
            "Cargo.toml",
            "[package]\nname = \"hello-server\"\nversion = \"0.3.1\"\nedition = \"2021\"\n\n[workspace]\n",
        ),
        ("src/main.rs", MAIN),
    ]);
    lockfile(&f);
    let out = f.ship(&["init"]);
    ok(&out);
    assert!(
        out.stdout.contains("a Cargo package with a binary"),
        "{}",
        out.stdout
    );
    let text = std::fs::read_to_string(f.join("Ship.toml")).unwrap();
    assert!(text.contains("\napp = \"hello-server\"\n"), "{text}");
    assert!(
        text.contains("\nsource = { cargo = \"hello-server\" }\n"),
        "{text}"
    );
    // What init wrote plans as it is: the binary built and shipped.
    let plan = f.ship(&["plan", "staging", "--format", "json"]);
    ok(&plan);
    let v: serde_json::Value = serde_json::from_str(&plan.stdout).unwrap();
    assert_eq!(v["app"], "hello-server");
    assert_eq!(v["artifact"]["source"], "cargo hello-server");
}

#[test]
fn a_workspace_member_has_its_own_ship_toml_and_the_nearest_one_wins() {
    let member = |name: &str, version: &str| {
        format!("[package]\nname = \"{name}\"\nversion = \"{version}\"\nedition = \"2021\"\n")
    };
    let f = Fixture::new(&[
        (
            "Cargo.toml",
            "[workspace]\nmembers = [\"api\", \"worker\"]\nresolver = \"2\"\n",
        ),
        ("api/Cargo.toml", &member("api-server", "2.0.0")),
        ("api/src/main.rs", MAIN),
        ("worker/Cargo.toml", &member("worker", "1.0.0")),
        ("worker/src/main.rs", MAIN),
        (
            "Ship.toml",
            "[default]\napp = \"jobs\"\ndeploy_to = \"/srv/jobs\"\nlayout = \"version\"\n\
             source = { cargo = \"worker\" }\nversion = \"1.0.0\"\n[staging]\nhosts = [\"w1\"]\n",
        ),
    ]);
    lockfile(&f);
    // init in the member: the Ship.toml goes beside its Cargo.toml, named after it.
    let out = f.ship_in("api", &["init"], &[]);
    ok(&out);
    let text = std::fs::read_to_string(f.join("api/Ship.toml")).unwrap();
    assert!(text.contains("\napp = \"api-server\"\n"), "{text}");
    assert!(
        text.contains("source = { cargo = \"api-server\" }"),
        "{text}"
    );
    assert!(
        std::fs::read_to_string(f.join("Ship.toml"))
            .unwrap()
            .contains("app = \"jobs\""),
        "the workspace's Ship.toml is left as it was"
    );
    f.write(
        "api/Ship.toml",
        &text.replace("layout = \"timestamp\"", "layout = \"version\""),
    );

    // In the member (and below it): its own Ship.toml, its own version and binary.
    for dir in ["api", "api/src"] {
        let plan = f.ship_in(dir, &["plan", "staging", "--format", "json"], &[]);
        ok(&plan);
        let v: serde_json::Value = serde_json::from_str(&plan.stdout).unwrap();
        assert_eq!(v["app"], "api-server", "from {dir}");
        assert_eq!(v["release"], "2.0.0", "the member's version, from {dir}");
        assert_eq!(v["artifact"]["source"], "cargo api-server");
    }
    // Its plans are kept apart from the workspace's.
    assert!(
        f.join("target/ship/members/api/staging.plan.json")
            .is_file()
    );
    assert!(!f.join("target/ship/staging.plan.json").exists());

    // In a member without one, and at the root: the workspace's.
    for dir in ["worker", ""] {
        let plan = f.ship_in(dir, &["plan", "staging", "--format", "json"], &[]);
        ok(&plan);
        let v: serde_json::Value = serde_json::from_str(&plan.stdout).unwrap();
        assert_eq!(v["app"], "jobs", "from {dir:?}");
        assert_eq!(v["artifact"]["source"], "cargo worker");
    }
    assert!(f.join("target/ship/staging.plan.json").is_file());
}
