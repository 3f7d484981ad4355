//! ship-node: cargo ship's adapter for Node applications — built once on the deploying
//! machine, shipped as built, production dependencies installed once per lock file on
//! each host and reused across releases.
//!
//! - [`build::prepare`] (build phase, here): the commands to run before packing (default
//!   `npm ci`, then `npm run build` when package.json has a build script) and the
//!   node_modules key. A project without `package-lock.json` is refused, saying how to
//!   make one. package.json and the lock file are read from the tree that ships
//!   (`ship_core::Here::tree`). With a `git` source the commands run on a copy of the commit
//!   (`ship_core::artifact::export`) and what they wrote ships with it (`dist/`, `build/`,
//!   `.next/`), node_modules excepted; `ship = ["dist/"]` chooses what goes into the
//!   artifact instead.
//! - [`tasks()`] (pure): with `install = "production"`, `node.modules` (before `install`)
//!   runs `npm ci --omit=dev` in the release and moves the tree to
//!   `.ship/node_modules/<key>-node<major>`, or reuses that tree when the host has it — an
//!   unchanged lock file installs nothing — and links it as `node_modules`; `node.prune`
//!   (after `cleanup`) removes trees no kept release links to.
//!
//! [`Node`] wires both halves into cargo ship as a `ship_core::Adapter` for the
//! `[node]` table.
//!
//! # Example
//!
//! ```
//! use ship_node::{Install, NodeConfig, lock_key, tasks};
//! let lock = r#"{"lockfileVersion": 3, "packages": {}}"#;
//! assert_eq!(lock_key(lock), lock_key(lock)); // same lock file: same tree on the hosts
//!
//! let cfg = NodeConfig { install: Install::Production, node: "node".into(), ..Default::default() };
//! let key = lock_key(lock);
//! let steps = tasks(&cfg, Some(&key));
//! assert_eq!(steps[0].name, "node.modules");
//! assert!(steps[0].run.contains("npm\" ci --omit=dev"));
//! ```
//!
//! `examples/lock_key.rs` prints a project's build commands and node_modules key:
//! `cargo run -p ship-node --example lock_key -- [PROJECT_DIR]`.
#![warn(missing_docs, unreachable_pub)]

mod adapter;
pub mod build;
mod config;
mod tasks;

pub use adapter::Node;
pub use build::{BuildError, Prepared};
pub use config::{Install, NodeConfig};
pub use tasks::{MODULES_TASK, PRUNE_TASK, tasks};

/// The key of a node_modules tree, from the lock file; the hosts append `-node<major>`.
pub fn lock_key(package_lock: &str) -> String {
    ship_core::sha256_hex(format!("package-lock\n{package_lock}").as_bytes())
}
