//! The node_modules key and build commands of a Node project, with ship-node alone:
//! `cargo run -p ship-node --example lock_key -- [PROJECT_DIR]`.
//!
//! With `install = "production"`, each host keeps the production dependencies in
//! `.ship/node_modules/<key>-node<major>`, keyed by `package-lock.json`: a deploy whose lock
//! file did not change installs nothing. Given a project directory (package.json and
//! package-lock.json), prints what cargo ship would run here and the key; without one,
//! the key of a small lock file, and of the same after one dependency changed.

use ship_node::{Install, NodeConfig, build, lock_key, tasks};
use std::path::Path;

fn main() {
    let cfg = NodeConfig {
        install: Install::Production,
        node: "node".into(),
        ..NodeConfig::default()
    };
    if let Some(dir) = std::env::args().nth(1) {
        let prepared = build::prepare(Path::new(&dir), &cfg).unwrap_or_else(|e| {
            eprintln!("{e}");
            std::process::exit(1);
        });
        println!("{dir}");
        for command in &prepared.commands {
            println!("  here: {command}");
        }
        let key = prepared.key.expect("install = production keys the tree");
        println!("  key {key}");
        println!("  on each host: .ship/node_modules/{key}-node<major>");
        for task in tasks(&cfg, Some(&key)) {
            let about = task.description.as_deref().unwrap_or(&task.run);
            println!("  step {}: {about}", task.name);
        }
        return;
    }
    let lock = |version: &str| {
        format!(
            r#"{{"name": "app", "lockfileVersion": 3, "packages": {{"node_modules/express": {{"version": "{version}"}}}}}}"#
        )
    };
    for version in ["4.21.2", "5.1.0"] {
        let key = lock_key(&lock(version));
        println!("express {version}: key {key}");
        println!("  on each host: .ship/node_modules/{key}-node<major>");
    }
}
