//! Runs one shell script on hosts with ship-ssh alone, every host at once, and prints what
//! each said: `cargo run -p ship-ssh --example run_script -- [-F SSH_CONFIG] [HOST]...`.
//!
//! With hosts, each is reached over OpenSSH with [`SshTransport`] (one master connection
//! per host, the script in one session on it, keys checked against known_hosts); with none,
//! the script runs on this machine with [`LocalTransport`], the same call. Exits 1 when
//! a host could not be reached or the script failed on one.

use ship_core::Transport;
use ship_ssh::{LocalTransport, SshOptions, SshTransport};
use std::sync::Arc;

/// POSIX sh, as every host has it; `$((...))` so the output proves the shell ran it.
const SCRIPT: &str = r#"set -eu
echo "user $(id -un) on $(uname -s), in $(pwd)"
echo "six times seven is $((6 * 7))"
"#;

#[tokio::main]
async fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut options = SshOptions::default();
    if let Some(i) = args.iter().position(|a| a == "-F") {
        assert!(i + 1 < args.len(), "-F needs an ssh_config file");
        options.config_file = Some(args.remove(i + 1).into());
        args.remove(i);
    }
    let ssh = (!args.is_empty()).then(|| Arc::new(SshTransport::new(options)));
    let (transport, hosts): (Arc<dyn Transport>, Vec<String>) = match &ssh {
        Some(ssh) => (ssh.clone(), args),
        None => {
            let here = std::env::temp_dir();
            (Arc::new(LocalTransport::new(here)), vec!["local".into()])
        }
    };

    let mut runs = tokio::task::JoinSet::new();
    for host in hosts {
        let transport = Arc::clone(&transport);
        runs.spawn(async move {
            let out = match transport.connect(&host).await {
                Ok(()) => transport.run(&host, SCRIPT, None).await,
                Err(e) => Err(e),
            };
            (host, out)
        });
    }
    let mut failed = false;
    let mut results = runs.join_all().await;
    results.sort_by(|a, b| a.0.cmp(&b.0));
    for (host, out) in results {
        match out {
            Ok(out) => {
                let status = out.status.map_or("killed".into(), |s| s.to_string());
                println!("{host}: exit status {status}");
                for line in out.stdout.lines() {
                    println!("{host} | {line}");
                }
                for line in out.stderr.lines() {
                    println!("{host} ! {line}");
                }
                failed |= out.status != Some(0);
            }
            Err(e) => {
                println!("{host}: {e}");
                failed = true;
            }
        }
    }
    // The ssh masters end with this process anyway; closing them says goodbye properly.
    if let Some(ssh) = ssh {
        ssh.close().await;
    }
    std::process::exit(i32::from(failed));
}
