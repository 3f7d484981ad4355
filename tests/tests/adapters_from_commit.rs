//! The adapters build from the commit that ships, never the working tree (issue 18): with
//! real git, pip (and PyPI for setuptools) and a local package index. Each test plans only:
//! what it checks is the artifact `plan` made, opened from `target/ship/artifacts/`.

use ship_tests::{Fixture, Output, git, ok};
use std::collections::BTreeMap;

/// The environment the tests run cargo ship in: HOME for pip's and npm's caches.
fn env() -> Vec<(&'static str, String)> {
    vec![
        ("USER", "tester".to_owned()),
        (
            "HOME",
            std::env::var("HOME").unwrap_or_else(|_| "/root".into()),
        ),
    ]
}

fn run(f: &Fixture, args: &[&str]) -> Output {
    let env = env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    f.ship_env(args, &env)
}

/// The files of the artifact a JSON plan ships, by path.
fn artifact_files(f: &Fixture, plan: &serde_json::Value) -> BTreeMap<String, Vec<u8>> {
    let digest = plan["artifact"]["digest"].as_str().expect("a digest");
    let zst = std::fs::read(f.join(&format!("target/ship/artifacts/{digest}.tar.zst")))
        .expect("the artifact is stored");
    ship_core::artifact::open(&zst).expect("it opens").files
}

/// The files of a wheel (a zip), by path, read with Python's zipfile.
fn wheel_files(wheel: &[u8]) -> BTreeMap<String, String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.whl");
    std::fs::write(&path, wheel).unwrap();
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import json, sys, zipfile\nz = zipfile.ZipFile(sys.argv[1])\n\
             print(json.dumps({n: z.read(n).decode('utf-8', 'replace') for n in z.namelist()}))",
        ])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn json(out: &Output) -> serde_json::Value {
    ok(out);
    serde_json::from_str(&out.stdout).expect("a JSON plan")
}

/// A setuptools project in the flat layout, built into a wheel (`requirements =
/// "pyproject.toml"`, what `init` writes), whose version is dynamic. A tag is deployed while
/// HEAD and the working tree have moved on: the wheel is the tag's code and version, the
/// release is named after the tag's version, nothing uncommitted gets in, the plan names
/// what was left out, and pip leaves nothing in the project.
#[test]
fn a_tag_deploys_the_tags_wheel_and_the_plan_names_what_is_uncommitted() {
    let pyproject = "[build-system]\nrequires = [\"setuptools>=68\"]\n\
                     build-backend = \"setuptools.build_meta\"\n\n\
                     [project]\nname = \"mysite\"\ndynamic = [\"version\"]\n\n\
                     [tool.setuptools.dynamic]\nversion = { attr = \"mysite.__version__\" }\n";
    let ship = "[default]\napp = \"mysite\"\ndeploy_to = \"/srv/mysite\"\nlayout = \"version\"\n\
                [default.python]\nrequirements = \"pyproject.toml\"\n\
                [staging]\nhosts = [\"web1\"]\n";
    let f = Fixture::new(&[
        ("Ship.toml", ship),
        ("pyproject.toml", pyproject),
        (
            "mysite/__init__.py",
            "__version__ = \"1.0.0\"\nMESSAGE = \"v1\"\n",
        ),
        ("manage.py", "print('manage')\n"),
    ]);
    f.commit("v1");
    git(f.path(), &["tag", "v1"]);
    f.write(
        "mysite/__init__.py",
        "__version__ = \"2.0.0\"\nMESSAGE = \"v2\"\n",
    );
    f.commit("v2");
    // Work in progress: a changed file and a new one.
    f.write(
        "mysite/__init__.py",
        "__version__ = \"3.0.0.dev0\"\nMESSAGE = \"uncommitted\"\n",
    );
    f.write("mysite/extra.py", "SECRET = 1\n");
    // What a local build left, as `pip wheel .` or `setup.py bdist_wheel` leave it: a stale
    // build/lib must not reach the wheel.
    f.write("build/lib/mysite/stale.py", "STALE = 1\n");

    let out = run(
        &f,
        &[
            "plan",
            "staging",
            "--set",
            "source.git=\"v1\"",
            "--format",
            "json",
        ],
    );
    let plan = json(&out);
    assert_eq!(
        plan["release"], "1.0.0",
        "the tag's version names the release"
    );
    let files = artifact_files(&f, &plan);
    let wheels: Vec<&String> = files
        .keys()
        .filter(|p| p.starts_with(".wheelhouse/mysite-"))
        .collect();
    assert_eq!(
        wheels,
        [".wheelhouse/mysite-1.0.0-py3-none-any.whl"],
        "{:?}",
        files.keys()
    );
    let wheel = wheel_files(&files[wheels[0].as_str()]);
    assert_eq!(
        wheel.get("mysite/__init__.py").map(String::as_str),
        Some("__version__ = \"1.0.0\"\nMESSAGE = \"v1\"\n")
    );
    assert!(
        !wheel
            .keys()
            .any(|p| p.contains("extra") || p.contains("stale")),
        "{:?}",
        wheel.keys()
    );
    assert_eq!(
        files.get("mysite/__init__.py").map(Vec::as_slice),
        Some(&b"__version__ = \"1.0.0\"\nMESSAGE = \"v1\"\n"[..])
    );
    assert!(!files.contains_key("mysite/extra.py"));

    // The plan says what it leaves out, in JSON and in text.
    assert_eq!(
        plan["artifact"]["uncommitted"],
        serde_json::json!([
            "build/lib/mysite/stale.py",
            "mysite/__init__.py",
            "mysite/extra.py"
        ])
    );
    let out = run(&f, &["plan", "staging", "--set", "source.git=\"v1\""]);
    ok(&out);
    let commit = git(f.path(), &["rev-parse", "v1"]);
    let line = format!(
        "artifact   git v1 at {} (uncommitted changes in 3 files not deployed: \
         build/lib/mysite/stale.py, mysite/__init__.py, mysite/extra.py)",
        &commit[..12]
    );
    assert!(out.stdout.contains(&line), "{line}\n{}", out.stdout);

    // pip built out of tree: nothing of its own in the project.
    for leftover in [
        "mysite.egg-info",
        "build/bdist.linux-x86_64",
        "build/lib/mysite/__init__.py",
    ] {
        assert!(!f.join(leftover).exists(), "{leftover} left in the project");
    }
}

/// The Node adapter with no build here and the hosts installing: the lock file that keys
/// the hosts' node_modules and the files shipped are the commit's, not the working tree's.
#[test]
fn a_node_service_ships_and_keys_the_commits_files() {
    let ship = "[default]\napp = \"service\"\ndeploy_to = \"/srv/service\"\n\n[default.node]\n\
                build = []\nship = [\"server.js\", \"package.json\", \"package-lock.json\"]\n\
                install = \"production\"\n\n[staging]\nhosts = [\"api1\"]\n";
    let f = Fixture::from_fixture("nodeservice", &[("Ship.toml", ship)]);
    f.commit("service v1");
    let server = std::fs::read_to_string(f.join("server.js")).unwrap();
    let lock = std::fs::read_to_string(f.join("package-lock.json")).unwrap();
    f.write("server.js", "throw new Error('work in progress');\n");
    f.write(
        "package-lock.json",
        &lock.replacen('{', "{\"uncommitted\": true, ", 1),
    );

    let plan = json(&run(&f, &["plan", "staging", "--format", "json"]));
    let files = artifact_files(&f, &plan);
    assert_eq!(
        String::from_utf8_lossy(&files["server.js"]),
        server,
        "the commit's server.js ships"
    );
    assert_eq!(String::from_utf8_lossy(&files["package-lock.json"]), lock);
    let modules = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "node.modules")
        .expect("a node.modules step");
    let key = ship_node::lock_key(&lock);
    assert!(
        modules["command"].as_str().unwrap().contains(&key),
        "keyed on the commit's lock file {key}: {}",
        modules["command"]
    );
    assert_eq!(
        plan["artifact"]["revision"],
        git(f.path(), &["rev-parse", "HEAD"]),
        "the paths are the commit's"
    );
    assert_eq!(
        plan["artifact"]["uncommitted"],
        serde_json::json!(["package-lock.json", "server.js"])
    );
}

/// A minimal pure-Python wheel of `name` 1.0 whose module says `VALUE = "private"`, written
/// by Python's zipfile into `dir`; returns its file name.
fn private_wheel(dir: &std::path::Path, name: &str) -> String {
    let script = r#"
import base64, hashlib, sys, zipfile
d, name = sys.argv[1], sys.argv[2]
mod = name.replace("-", "_")
dist = f"{mod}-1.0.dist-info"
files = [(f"{mod}/__init__.py", b'VALUE = "private"\n'),
         (f"{dist}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n".encode()),
         (f"{dist}/WHEEL", b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")]
record = []
whl = f"{mod}-1.0-py3-none-any.whl"
with zipfile.ZipFile(f"{d}/{whl}", "w") as z:
    for p, data in files:
        z.writestr(zipfile.ZipInfo(p, (2000, 1, 1, 0, 0, 0)), data)
        h = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{p},sha256={h},{len(data)}")
    record.append(f"{dist}/RECORD,,")
    z.writestr(zipfile.ZipInfo(f"{dist}/RECORD", (2000, 1, 1, 0, 0, 0)), "\n".join(record) + "\n")
print(whl)
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(dir)
        .arg(name)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Kills the index server when the test ends, however it ends.
struct Server(std::process::Child);
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A private index beside PyPI: `extra_index_url` names a PEP 503 simple index (a
/// directory served by `python3 -m http.server`, started here) holding a package PyPI does
/// not have; the requirements need it and one from PyPI, and the wheelhouse has both.
#[test]
fn extra_index_url_adds_a_private_index_beside_pypi() {
    let name = "ship-test-private-pkg-7f3a";
    let index = tempfile::tempdir().unwrap();
    let simple = index.path().join("simple").join(name);
    std::fs::create_dir_all(&simple).unwrap();
    let whl = private_wheel(&simple, name);
    std::fs::write(
        simple.join("index.html"),
        format!("<!DOCTYPE html><html><body><a href=\"{whl}\">{whl}</a></body></html>\n"),
    )
    .unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let _server = Server(
        std::process::Command::new("python3")
            .args([
                "-m",
                "http.server",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .current_dir(index.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let ship = format!(
        "[default]\napp = \"private\"\ndeploy_to = \"/srv/private\"\n\
         [default.python]\nrequirements = \"requirements.txt\"\n\
         extra_index_url = \"http://127.0.0.1:{port}/simple/\"\n\
         [staging]\nhosts = [\"web1\"]\n"
    );
    let f = Fixture::new(&[
        ("Ship.toml", &ship),
        ("requirements.txt", &format!("{name}==1.0\nsix==1.16.0\n")),
    ]);
    f.commit("private");
    let plan = json(&run(&f, &["plan", "staging", "--format", "json"]));
    let files = artifact_files(&f, &plan);
    let mut wheels: Vec<&str> = files
        .keys()
        .filter_map(|p| p.strip_prefix(".wheelhouse/"))
        .collect();
    wheels.sort_unstable();
    assert_eq!(
        wheels,
        [whl.as_str(), "six-1.16.0-py2.py3-none-any.whl"],
        "the private package from the local index, six from PyPI"
    );

    // Without a wheelhouse, each host's pip is given both indexes.
    let plan = json(&run(
        &f,
        &[
            "plan",
            "staging",
            "--set",
            "python.wheelhouse=false",
            "--format",
            "json",
        ],
    ));
    let venv = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "python.venv")
        .unwrap();
    let command = venv["command"].as_str().unwrap();
    assert!(
        command.contains(&format!(
            "--extra-index-url http://127.0.0.1:{port}/simple/"
        )),
        "{command}"
    );
}
