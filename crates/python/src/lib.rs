//! ship-python: cargo ship's adapter for Python applications (virtualenvs and pip).
//!
//! **Status:** the adapter does not install anything yet: a `[python]` table in
//! Ship.toml is refused with a clear error, and a task can make the virtualenv meanwhile
//! (`cargo ship init` writes one). What is here is the pure rule the adapter is built on:
//! a virtualenv is reused on a host when its key — the requirements, the wheels built
//! from them and the interpreter's version — is unchanged.
//!
//! # Example
//!
//! ```
//! use ship_python::venv_key;
//! let a = venv_key("flask==3.0.3\n", &["sha256:1111"], "3.11.7");
//! let b = venv_key("flask==3.0.3\n", &["sha256:1111"], "3.11.7");
//! let c = venv_key("flask==3.0.3\n", &["sha256:1111"], "3.12.1");
//! assert_eq!(a, b);        // same inputs: reuse .ship/venvs/<key>
//! assert_ne!(a, c);        // another interpreter: a new virtualenv
//! assert_eq!(a.len(), 64); // a sha256, hex
//! ```
#![warn(missing_docs, unreachable_pub)]

/// The key of a virtualenv: sha256 over the requirements text, the wheel digests (in any
/// order) and the interpreter version.
pub fn venv_key(requirements: &str, wheel_digests: &[&str], python_version: &str) -> String {
    let mut wheels: Vec<&str> = wheel_digests.to_vec();
    wheels.sort_unstable();
    let mut input = String::new();
    for part in [
        "requirements",
        requirements,
        "wheels",
        &wheels.join("\n"),
        "python",
        python_version,
    ] {
        input.push_str(&part.len().to_string());
        input.push(':');
        input.push_str(part);
    }
    ship_core::sha256_hex(input.as_bytes())
}
