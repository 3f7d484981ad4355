//! `source = { archive = "https://…", sha256 = "…" }`: an artifact made elsewhere (CI, a
//! build server) fetched from a URL when the plan is made, checked against its sha256, and
//! deployed like any other; a wrong sha256 or a missing file is a clear error, and nothing
//! is deployed (issue 18: Fapistrano-style setups deploy a curl'd build).

use ship_tests::{Fixture, Fleet, ok};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

/// A tarball of `index.html` holding `text`, gzip-compressed.
fn tarball(text: &str) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(text.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(&mut header, "index.html", text.as_bytes())
        .unwrap();
    let tar = tar.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).unwrap();
    gz.finish().unwrap()
}

/// An HTTP server answering `GET /app.tar.gz` with what `served` holds, 404 otherwise.
fn server(served: Arc<Mutex<Vec<u8>>>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut first = String::new();
            let _ = reader.read_line(&mut first);
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 2 {
                line.clear();
            }
            let body = served.lock().unwrap().clone();
            if first.starts_with("GET /app.tar.gz ") {
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(&body);
            } else {
                let _ = stream.write_all(
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            }
        }
    });
    port
}

#[test]
fn an_archive_fetched_from_a_url_is_checked_and_deployed() {
    let fleet = Fleet::start(2);
    let served = Arc::new(Mutex::new(tarball("built by CI, v1\n")));
    let port = server(served.clone());
    let sha = ship_core::sha256_hex(&served.lock().unwrap());
    let ship = |source: &str| {
        format!(
            "[default]\napp = \"demo\"\ndeploy_to = \"/srv/app\"\nsource = {source}\n\
             ssh_config = \"{}\"\n[staging]\nhosts = [\"h1\", \"h2\"]\n",
            fleet.ssh_config().display()
        )
    };
    let url = format!("http://127.0.0.1:{port}/app.tar.gz");
    let f = Fixture::new(&[(
        "Ship.toml",
        &ship(&format!("{{ archive = \"{url}\", sha256 = \"{sha}\" }}")),
    )]);
    let out = f.ship(&["apply", "staging", "--release-id", "20261101000001"]);
    ok(&out);
    for h in ["h1", "h2"] {
        assert_eq!(
            fleet.read(h, "/srv/app/current/index.html"),
            "built by CI, v1\n"
        );
    }
    let plan = f.ship(&["plan", "staging", "--release-id", "20261101000002"]);
    ok(&plan);
    assert!(
        plan.stdout.contains(&format!("archive {url}")),
        "{}",
        plan.stdout
    );

    // The server now serves something else: the sha256 says no, nothing is deployed.
    *served.lock().unwrap() = tarball("tampered\n");
    std::fs::remove_dir_all(f.join("target/ship/downloads")).unwrap();
    let refused = f.ship(&["apply", "staging", "--release-id", "20261101000003"]);
    assert_eq!(refused.code, 1, "{}\n{}", refused.stdout, refused.stderr);
    assert!(
        refused
            .stderr
            .contains(&format!("source.archive {url}: its sha256 is "))
            && refused
                .stderr
                .contains(&format!("not the {sha} that `source.sha256` says")),
        "{}",
        refused.stderr
    );
    for h in ["h1", "h2"] {
        assert!(
            fleet
                .readlink(h, "/srv/app/current")
                .ends_with("20261101000001")
        );
    }

    // A URL that is not there: the status, named.
    let missing = Fixture::new(&[(
        "Ship.toml",
        &ship(&format!(
            "{{ archive = \"http://127.0.0.1:{port}/gone.tar.gz\" }}"
        )),
    )]);
    let out = missing.ship(&["plan", "staging"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "source.archive http://127.0.0.1:{port}/gone.tar.gz: cannot fetch it"
        )) && out.stderr.contains("404"),
        "{}",
        out.stderr
    );

    // Without a sha256 the URL is fetched again at each plan: what it serves now ships.
    *served.lock().unwrap() = tarball("built by CI, v2\n");
    let f2 = Fixture::new(&[("Ship.toml", &ship(&format!("{{ archive = \"{url}\" }}")))]);
    ok(&f2.ship(&["apply", "staging", "--release-id", "20261101000004"]));
    assert_eq!(
        fleet.read("h1", "/srv/app/current/index.html"),
        "built by CI, v2\n"
    );

    // A sha256 that is not one: a configuration error naming the key.
    let bad = Fixture::new(&[(
        "Ship.toml",
        &ship(&format!("{{ archive = \"{url}\", sha256 = \"abc\" }}")),
    )]);
    let out = bad.ship(&["plan", "staging"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("`sha256`: expected the archive's sha256, 64 hex digits"),
        "{}",
        out.stderr
    );
}
