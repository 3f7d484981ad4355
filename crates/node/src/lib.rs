//! ship-node: cargo ship's adapter for Node applications (npm builds, node_modules reuse).
//!
//! **Status:** the adapter does not install anything yet: a `[node]` table in Ship.toml is
//! refused with a clear error; meanwhile `build = ["npm ci", "npm run build"]` with
//! `source = { dir = "dist" }` ships a front end built once. What is here is the pure rule
//! the adapter is built on: node_modules is reused on a host when its key — the lock file
//! and the Node major version — is unchanged.
//!
//! # Example
//!
//! ```
//! use ship_node::{modules_key, node_major};
//! assert_eq!(node_major("v20.20.2"), Some(20));
//! let lock = r#"{"lockfileVersion": 3, "packages": {}}"#;
//! assert_eq!(modules_key(lock, 20), modules_key(lock, 20));
//! assert_ne!(modules_key(lock, 20), modules_key(lock, 22));
//! ```
#![warn(missing_docs, unreachable_pub)]

/// The major version in `node --version` output (`v20.20.2` → 20).
pub fn node_major(version: &str) -> Option<u32> {
    version
        .trim()
        .trim_start_matches('v')
        .split('.')
        .next()?
        .parse()
        .ok()
}

/// The key of a node_modules tree: sha256 over the lock file and the Node major version.
pub fn modules_key(package_lock: &str, node_major: u32) -> String {
    ship_core::sha256_hex(format!("node{node_major}\n{package_lock}").as_bytes())
}
