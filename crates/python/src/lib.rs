//! ship-python: cargo ship's adapter for Python applications — wheels built once on the
//! deploying machine, installed offline on every host, virtualenvs reused across releases.
//!
//! The adapter has two halves:
//!
//! - [`wheelhouse::build`] (build phase, on this machine): `pip wheel` of the requirements
//!   into a wheelhouse that travels in the artifact (`.wheelhouse/` in each release), with
//!   `SOURCE_DATE_EPOCH` fixed so the same sources give the same digest. Its inputs come
//!   from the tree that ships (`ship_core::Here::tree`: the copy of the commit for a
//!   `git` source), and pip runs out of tree, on a copy of it.
//! - [`tasks()`] (pure): the steps the plan gets. `python.venv` (before `install`) makes
//!   `.ship/venvs/<key>-py<version>` with `python3 -m venv` and `pip install --no-index`
//!   from the wheelhouse — or reuses it when the host already has it, so a deploy whose
//!   requirements did not change runs no pip at all — and links it into the release as
//!   `venv`. `python.prune` (after `cleanup`) removes virtualenvs no kept release links to.
//!   `django.migrate` (once), `django.collectstatic` and `manage.<command>` run after
//!   `install`, before any host switches.
//!
//! [`Python`] wires both halves into cargo ship as a `ship_core::Adapter` for the
//! `[python]` table.
//!
//! The key ([`venv_key`]) is the sha256 of the requirements and the wheels' digests; the
//! host adds its interpreter's version, so another Python gets another virtualenv.
//!
//! The application's own code ships as files in the release (a Django project's
//! `manage.py` and packages); with `requirements = "pyproject.toml"` the project is built
//! into a wheel too, and then any change to its code makes a new virtualenv.
//!
//! # Example
//!
//! ```
//! use ship_python::{PythonConfig, Wheelhouse, tasks, venv_key};
//! let a = venv_key("flask==3.0.3\n", &["flask-3.0.3-py3-none-any.whl 1111"]);
//! let b = venv_key("flask==3.0.3\n", &["flask-3.0.3-py3-none-any.whl 1111"]);
//! let c = venv_key("flask==3.1.0\n", &["flask-3.1.0-py3-none-any.whl 2222"]);
//! assert_eq!(a, b); // same requirements and wheels: the hosts reuse .ship/venvs/<key>-py3.x.y
//! assert_ne!(a, c); // another requirement: a new virtualenv
//!
//! // `[production.python]` with Django migrations, as Ship.toml would hold it:
//! use figment::providers::{Format, Toml};
//! let table: figment::value::Value = figment::Figment::from(Toml::string(
//!     "requirements = \"requirements.txt\"\n[django]\nmigrate = true\nroles = [\"web\"]\n",
//! ))
//! .extract()
//! .unwrap();
//! let cfg = PythonConfig::from_value(&table).unwrap();
//! let plan_tasks = tasks(&cfg, &Wheelhouse { dir: None, wheels: vec![], key: a });
//! let migrate = plan_tasks.iter().find(|t| t.name == "django.migrate").unwrap();
//! assert!(migrate.once);
//! assert_eq!(migrate.run, "venv/bin/python manage.py migrate --noinput");
//! ```
//!
//! `examples/venv_key.rs` prints the virtualenv key of a project (its `requirements.txt`
//! and `.wheelhouse/`): `cargo run -p ship-python --example venv_key -- [PROJECT_DIR]`.
#![warn(missing_docs, unreachable_pub)]

mod adapter;
mod config;
mod tasks;
pub mod wheelhouse;

pub use adapter::Python;
pub use config::{DjangoConfig, PythonConfig};
pub use tasks::{PRUNE_TASK, VENV_TASK, tasks};
pub use wheelhouse::{WHEELHOUSE_DIR, Wheelhouse};

/// The key of a virtualenv: sha256 over the requirements text and the wheels (each
/// `"<file name> <sha256>"`, in any order). The hosts append their interpreter's version.
pub fn venv_key(requirements: &str, wheels: &[&str]) -> String {
    let mut wheels: Vec<&str> = wheels.to_vec();
    wheels.sort_unstable();
    let mut input = String::new();
    for part in ["requirements", requirements, "wheels", &wheels.join("\n")] {
        input.push_str(&part.len().to_string());
        input.push(':');
        input.push_str(part);
    }
    ship_core::sha256_hex(input.as_bytes())
}
