//! The app's environment and its secrets (issue 19): `[env]` values and `[secrets]` from
//! this machine's environment, a command, a dotenv file and a file outside git are written
//! to `shared/.env` (mode 0600) on each host and linked into the release, and no secret's
//! value is ever in the artifact, the plan, target/ship, the output, the hosts' logs or
//! the webhook.

use ship_tests::{Fixture, Fleet, ok};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

const SECRETS: [&str; 4] = [
    "S3CRET-db-7f3a91",
    "tok-c0mmand-5e2b",
    "mail-d0tenv-9c41",
    "cert-f1le-33ad07",
];

/// Every file under `dir`, as text (zstd artifacts decompressed).
fn files(dir: &std::path::Path) -> Vec<(String, String)> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let bytes = std::fs::read(e.path()).unwrap();
            let bytes = ship_core::artifact::decompress(&bytes).unwrap_or(bytes);
            (
                e.path().display().to_string(),
                String::from_utf8_lossy(&bytes).into_owned(),
            )
        })
        .collect()
}

/// A webhook that keeps every body it is sent.
fn webhook(bodies: Arc<Mutex<Vec<String>>>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 2 {
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                line.clear();
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            bodies
                .lock()
                .unwrap()
                .push(String::from_utf8_lossy(&body).into_owned());
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        }
    });
    port
}

#[test]
fn secrets_reach_the_hosts_env_file_and_nothing_else() {
    let fleet = Fleet::start(2);
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(
        outside.path().join("team.env"),
        format!("# kept outside git\nexport MAIL_KEY=\"{}\"\n", SECRETS[2]),
    )
    .unwrap();
    std::fs::write(outside.path().join("cert.txt"), format!("{}\n", SECRETS[3])).unwrap();
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let port = webhook(bodies.clone());
    let ship = format!(
        "[default]\napp = \"demo\"\ndeploy_to = \"/srv/app\"\nsource = {{ dir = \"app\" }}\n\
         ssh_config = \"{}\"\n\
         [default.env]\nAPP_MODE = \"production\"\n\
         [default.secrets]\nDB_PASSWORD = {{ env = \"TEST_DB_PASSWORD\" }}\n\
         API_TOKEN = {{ command = \"echo read >> {}; printf 'tok-c0mm%s' and-5e2b\" }}\n\
         MAIL_KEY = {{ dotenv = \"{}\" }}\nCERT = {{ file = \"{}\" }}\n\
         [default.tasks.uses-env]\nrun = \". ./.env && printf %s \\\"$DB_PASSWORD$API_TOKEN\\\" | sha256sum > /srv/app/shared/seen\"\nafter = \"switch\"\n\
         [default.tasks.print-mode]\nrun = \"echo mode=${{APP_MODE:-unset}}\"\nafter = \"switch\"\n\
         [default.notify]\nwebhook = \"http://127.0.0.1:{port}/hook\"\n\
         [staging]\nhosts = [\"h1\", \"h2\"]\n",
        fleet.ssh_config().display(),
        outside.path().join("reads").display(),
        outside.path().join("team.env").display(),
        outside.path().join("cert.txt").display(),
    );
    let f = Fixture::new(&[("app/index.html", "v1\n"), ("Ship.toml", &ship)]);
    let env = [("TEST_DB_PASSWORD", SECRETS[0]), ("USER", "tester")];
    let mut said = String::new();
    let plan = f.ship_env(&["plan", "staging", "--release-id", "20261101000001"], &env);
    ok(&plan);
    assert!(
        plan.stdout.contains("env        shared/.env (0600), linked as .env: APP_MODE, API_TOKEN (secret), CERT (secret), DB_PASSWORD (secret), MAIL_KEY (secret); sha256 "),
        "{}",
        plan.stdout
    );
    said.push_str(&format!("{}{}", plan.stdout, plan.stderr));
    let json = f.ship_env(
        &[
            "plan",
            "staging",
            "--release-id",
            "20261101000001",
            "--format",
            "json",
            "-v",
        ],
        &env,
    );
    said.push_str(&format!("{}{}", json.stdout, json.stderr));
    let out = f.ship_env(&["apply", "-v"], &env);
    ok(&out);
    said.push_str(&format!("{}{}", out.stdout, out.stderr));
    // A secret's command runs once per plan, and once per apply (plan and apply in one go
    // included): a `pass` or `op` prompt is not asked twice.
    let reads = || {
        std::fs::read_to_string(outside.path().join("reads"))
            .unwrap_or_default()
            .lines()
            .count()
    };
    let before = reads();
    let out = f.ship_env(
        &[
            "apply",
            "staging",
            "--release-id",
            "20261101000002",
            "--format",
            "json",
        ],
        &env,
    );
    ok(&out);
    assert_eq!(reads() - before, 1, "the secret was read more than once");
    said.push_str(&format!("{}{}", out.stdout, out.stderr));

    for h in ["h1", "h2"] {
        let (_, mode, _) = fleet.try_sh(h, "stat -c %a /srv/app/shared/.env");
        assert_eq!(mode.trim(), "600", "{h}");
        assert_eq!(
            fleet.readlink(h, "/srv/app/current/.env"),
            "/srv/app/shared/.env"
        );
        let file = fleet.read(h, "/srv/app/shared/.env");
        for (name, value) in ["DB_PASSWORD", "API_TOKEN", "MAIL_KEY", "CERT"]
            .iter()
            .zip(SECRETS)
        {
            assert!(file.contains(&format!("{name}='{value}'\n")), "{h}: {file}");
        }
        assert!(file.contains("APP_MODE='production'\n"), "{file}");
        // The app reads it as a shell (or dotenv) would.
        let seen = fleet.read(h, "/srv/app/shared/seen");
        let (_, want, _) = fleet.try_sh(
            h,
            &format!("printf %s '{}{}' | sha256sum", SECRETS[0], SECRETS[1]),
        );
        assert_eq!(seen, want, "{h}");
        // Nowhere else on the host: logs, records, revisions, the releases.
        let (_, found, _) = fleet.try_sh(
            h,
            &format!(
                "grep -rlF -e {} -e {} -e {} -e {} /srv/app --exclude=.env",
                SECRETS[0], SECRETS[1], SECRETS[2], SECRETS[3]
            ),
        );
        assert_eq!(found.trim(), "", "{h}: a secret is in these files");
    }
    // Not in anything cargo ship printed, saved or posted.
    let posted = bodies.lock().unwrap().join("\n");
    assert!(!posted.is_empty());
    for secret in SECRETS {
        assert!(!said.contains(secret), "{secret} was printed:\n{said}");
        assert!(!posted.contains(secret), "{secret} was posted: {posted}");
        for (path, text) in files(&f.join("target/ship")) {
            assert!(!text.contains(secret), "{secret} is in {path}");
        }
    }

    // A secret that changed after the plan was made: the saved plan is refused.
    ok(&f.ship_env(&["plan", "staging", "--release-id", "20261101000003"], &env));
    let changed = [("TEST_DB_PASSWORD", "rotated-91ab"), ("USER", "tester")];
    let refused = f.ship_env(&["apply"], &changed);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused
            .stderr
            .contains("the app's environment ([env] or a secret) changed since it was made"),
        "{}",
        refused.stderr
    );
    // Planned again, it is written.
    ok(&f.ship_env(
        &["apply", "staging", "--release-id", "20261101000004"],
        &changed,
    ));
    assert!(
        fleet
            .read("h1", "/srv/app/shared/.env")
            .contains("DB_PASSWORD='rotated-91ab'\n")
    );

    // `cargo ship task` (and `ssh`) give a command the app's environment.
    let task = f.ship_env(&["task", "staging", "print-mode"], &changed);
    ok(&task);
    assert!(task.stdout.contains("mode=production"), "{}", task.stdout);

    // A secret that cannot be read: named, with its source, and nothing is deployed.
    let missing = f.ship_env(&["plan", "staging"], &[("USER", "tester")]);
    assert_eq!(missing.code, 1, "{}", missing.stderr);
    assert!(
        missing.stderr.contains(
            "secrets.DB_PASSWORD: the environment variable TEST_DB_PASSWORD is not set here"
        ),
        "{}",
        missing.stderr
    );
}
