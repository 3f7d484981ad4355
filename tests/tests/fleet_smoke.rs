//! The test fleet itself, and the SSH transport on it: one connection per host, one session
//! per script, strict host keys.

use ship_core::Transport;
use ship_ssh::{HostKeys, SshOptions, SshTransport};
use ship_tests::Fleet;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn each_host_has_its_own_filesystem_and_answers_over_ssh() {
    let fleet = Fleet::start(2);
    let ssh = SshTransport::new(SshOptions {
        config_file: Some(fleet.ssh_config()),
        ..SshOptions::default()
    });
    let rt = rt();
    rt.block_on(async {
        for h in ["h1", "h2"] {
            ssh.connect(h).await.unwrap();
            let out = ssh
                .run(
                    h,
                    &format!("echo {h} > /srv/who; cat /srv/who; echo \"$0\""),
                    None,
                )
                .await
                .unwrap();
            assert_eq!(out.status, Some(0), "{}", out.stderr);
            assert_eq!(out.stdout, format!("{h}\nsh\n"));
        }
        // stdin carries a file.
        let file = fleet.dir().join("payload");
        std::fs::write(&file, "payload bytes").unwrap();
        let out = ssh
            .run("h1", "cat > /srv/got; wc -c < /srv/got", Some(&file))
            .await
            .unwrap();
        assert_eq!(out.stdout.trim(), "13");
        ssh.close().await;
    });
    assert_eq!(fleet.read("h1", "/srv/who"), "h1\n");
    assert_eq!(fleet.read("h2", "/srv/who"), "h2\n");
    let counts = ssh.counts();
    assert_eq!(counts["h1"].connections, 1);
    assert_eq!(counts["h1"].sessions, 2);
    assert_eq!(counts["h2"].sessions, 1);
}

/// The control sockets this process's ssh masters for `fleet` were started with (`-S`):
/// those whose configuration, beside the socket, includes the fleet's (tests run at once).
fn masters_sockets(fleet: &Fleet) -> Vec<std::path::PathBuf> {
    let ours = fleet.ssh_config().display().to_string();
    let out = std::process::Command::new("ps")
        .args(["-o", "args=", "--ppid", &std::process::id().to_string()])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("ssh ") && l.contains(" -M "))
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            words.find(|w| *w == "-S")?;
            words.next().map(std::path::PathBuf::from)
        })
        .filter(|socket| {
            std::fs::read_to_string(socket.with_file_name("config"))
                .is_ok_and(|config| config.contains(&ours))
        })
        .collect()
}

/// Masters not kept share one directory (one configuration a transport, not a file and a
/// directory per host), and it is gone once the transport is closed.
#[test]
fn the_masters_of_a_transport_share_one_directory_removed_on_close() {
    let fleet = Fleet::start(2);
    let ssh = SshTransport::new(SshOptions {
        config_file: Some(fleet.ssh_config()),
        ..SshOptions::default()
    });
    let rt = rt();
    let sockets = rt.block_on(async {
        for h in ["h1", "h2"] {
            ssh.connect(h).await.unwrap();
        }
        let sockets = masters_sockets(&fleet);
        for h in ["h1", "h2"] {
            let out = ssh.run(h, "echo ok", None).await.unwrap();
            assert_eq!(out.stdout, "ok\n", "{}", out.stderr);
        }
        ssh.close().await;
        sockets
    });
    assert_eq!(sockets.len(), 2, "{sockets:?}");
    let dir = sockets[0].parent().unwrap().to_owned();
    assert_eq!(sockets[1].parent(), Some(dir.as_path()), "{sockets:?}");
    assert!(!dir.exists(), "{} is still there", dir.display());
}

#[test]
fn an_unknown_host_key_is_refused_before_any_command_runs() {
    let fleet = Fleet::start(1);
    // A config whose known_hosts is empty: the key is unknown.
    let empty = fleet.dir().join("empty_known_hosts");
    std::fs::write(&empty, "").unwrap();
    let config = std::fs::read_to_string(fleet.ssh_config())
        .unwrap()
        .replace(
            &fleet.dir().join("known_hosts").display().to_string(),
            &empty.display().to_string(),
        );
    let cfg = fleet.dir().join("strange_config");
    std::fs::write(&cfg, config).unwrap();
    let ssh = SshTransport::new(SshOptions {
        config_file: Some(cfg.clone()),
        ..SshOptions::default()
    });
    let err = rt().block_on(ssh.connect("h1")).unwrap_err();
    assert!(
        matches!(err, ship_core::TransportError::HostKey { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("--accept-new-host-keys"), "{err}");
    // Trusting a new host is the user's choice, and then it works.
    let ssh = SshTransport::new(SshOptions {
        config_file: Some(cfg),
        host_keys: HostKeys::AcceptNew,
        ..SshOptions::default()
    });
    rt().block_on(ssh.connect("h1")).unwrap();
    assert!(
        std::fs::read_to_string(&empty)
            .unwrap()
            .contains("ssh-ed25519")
    );
}

#[test]
fn a_changed_host_key_is_refused_even_when_new_keys_are_accepted() {
    let fleet = Fleet::start(1);
    // known_hosts holds another key for the host's address: the key "changed".
    let other = fleet.dir().join("other_key");
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other)
        .status()
        .unwrap();
    assert!(status.success());
    let other_pub = std::fs::read_to_string(other.with_extension("pub")).unwrap();
    let other_pub: Vec<&str> = other_pub.split_whitespace().take(2).collect();
    let known = std::fs::read_to_string(fleet.dir().join("known_hosts")).unwrap();
    let address = known.split_whitespace().next().unwrap().to_owned();
    let changed = fleet.dir().join("changed_known_hosts");
    std::fs::write(&changed, format!("{address} {}\n", other_pub.join(" "))).unwrap();
    let config = std::fs::read_to_string(fleet.ssh_config())
        .unwrap()
        .replace(
            &fleet.dir().join("known_hosts").display().to_string(),
            &changed.display().to_string(),
        );
    let cfg = fleet.dir().join("changed_config");
    std::fs::write(&cfg, config).unwrap();
    for host_keys in [HostKeys::Strict, HostKeys::AcceptNew] {
        let ssh = SshTransport::new(SshOptions {
            config_file: Some(cfg.clone()),
            host_keys,
            ..SshOptions::default()
        });
        let err = rt().block_on(ssh.connect("h1")).unwrap_err();
        assert!(
            matches!(err, ship_core::TransportError::HostKey { .. }),
            "{host_keys:?}: {err}"
        );
    }
}
