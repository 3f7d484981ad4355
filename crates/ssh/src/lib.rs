//! ship-ssh: cargo ship's transport to hosts.
//!
//! **Status:** this version plans deploys but does not apply them, so this crate holds
//! only the part of the transport that is pure: how a plan's host script becomes the one
//! remote command of one SSH session. The `Transport` over the `openssh` crate (one
//! native-mux connection per host, the artifact on the session's stdin, timeouts, strict
//! host keys) arrives with `cargo ship apply`.
//!
//! # Example
//!
//! ```
//! let script = "set -eu\necho \"deploying $SHIP_RELEASE\"\n";
//! let command = ship_ssh::remote_command(script);
//! // The login shell of the remote user may be anything; the script always runs in `sh`.
//! assert!(command.starts_with("exec sh -c "));
//! let out = std::process::Command::new("sh").arg("-c").arg(&command)
//!     .env("SHIP_RELEASE", "20261122235800").output().unwrap();
//! assert_eq!(String::from_utf8_lossy(&out.stdout), "deploying 20261122235800\n");
//! ```
#![warn(missing_docs, unreachable_pub)]

use ship_core::shell::quote;

/// The remote command that runs `script` with POSIX `sh`, whatever the login shell is.
///
/// sshd hands the command to the user's login shell as one string; quoting the script as a
/// single word makes that shell pass it to `sh -c` untouched.
pub fn remote_command(script: &str) -> String {
    format!("exec sh -c {}", quote(script))
}
