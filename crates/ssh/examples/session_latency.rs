//! Times sessions on one connection: `cargo run --release -p ship-ssh --example session_latency -- SSH_CONFIG HOST`.

use ship_core::Transport;
use ship_ssh::{SshOptions, SshTransport};

fn main() {
    let mut args = std::env::args().skip(1);
    let config = args.next().expect("an ssh_config");
    let host = args.next().expect("a host");
    let ssh = SshTransport::new(SshOptions {
        config_file: Some(config.into()),
        ..SshOptions::default()
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let t = std::time::Instant::now();
        ssh.connect(&host).await.unwrap();
        println!("connect {:?}", t.elapsed());
        for script in ["true", "echo hi", "set -eu\necho hi\n"] {
            let t = std::time::Instant::now();
            let out = ssh.run(&host, script, None).await.unwrap();
            println!("{script:?} {:?} {:?}", t.elapsed(), out.status);
        }
        ssh.close().await;
    });
}
