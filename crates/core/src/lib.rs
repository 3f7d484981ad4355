//! ship-core: the vocabulary of cargo ship — configuration, stages, tasks, the planner,
//! the plan, and the artifact builder.
//!
//! ship-core knows no SSH, no Python and no npm. It turns a project's configuration into
//! a [`Stage`], a stage plus a [`Layout`] into a [`Plan`], and a plan into text or JSON.
//! Planning is pure: the release id and the artifact digest are inputs, and the same
//! inputs give the same plan, byte for byte.
//!
//! The main types, all at the crate's root:
//! - [`Sources`] → [`Loaded`]: every configuration layer merged with figment;
//! - [`Stage`]: one stage resolved and validated (hosts, roles, tasks);
//! - [`Layout`]: the release-layout strategy trait (implemented in `ship-layouts`);
//! - [`plan()`] → [`Plan`]: steps in order, per-host scripts, sync points;
//! - [`render::text`] and [`Plan::to_json`]: the plan for people and for machines;
//! - [`artifact::build`]: the reproducible tarball and its digest;
//! - [`Adapter`]: what an adapter (ship-python, ship-node) gives the build and the plan;
//! - [`Machine`]: the deploy as a pure state machine (events in, actions out: [`Event`],
//!   [`Outcome`]);
//! - [`Driver`]: runs the machine over a [`Transport`], and puts hosts back on failure;
//! - [`protocol`]: what hosts print and are sent, and the shell of lock, state and records;
//! - [`Rollback`]: a rollback decided from what every host said under its lock.
//!
//! Types are at the root, and only there: name them `ship_core::Plan`, never by a module
//! path (`tests/tests/public_api.rs` checks the workspace). The public modules are the
//! crate's function namespaces, for the functions and constants other tools call by path:
//! `adapter`, `artifact`, `config`, `diagnostic`, `driver`, `graph`, `layout`, `machine`
//! (and its `Input`, which the root's transport [`Input`] would clash with), `ops`,
//! `planner`, `protocol`, `records`, `render`, `rollback`, `script`, `shell`, `stage`,
//! `transport`. The others (`delta`, `load`, `phase`, `plan`, `reuse`, `ssh`, `store`,
//! `task`) are private.
//!
//! # Example
//!
//! Load a stage from a `Ship.toml`; a misspelt key is an error that names the key, the
//! file and line, and the valid keys:
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use ship_core::{Sources, Stage};
//! let dir = tempfile::tempdir()?;
//! let ship_toml = dir.path().join("Ship.toml");
//! std::fs::write(&ship_toml, r#"
//! [default]
//! app = "webxample"
//! deploy_to = "/srv/webxample"
//!
//! [production.roles.web]
//! hosts = ["web1", "web2"]
//! [production.roles.worker]
//! hosts = ["job1"]
//! "#)?;
//! let sources = Sources { ship_toml: ship_toml.clone(), ..Sources::default() };
//! let loaded = sources.load()?;
//! assert_eq!(loaded.stages(), ["production"]);
//! // The layout names there are: ship-layouts' registry (`ship_layouts::names()`).
//! let stage = Stage::resolve(&loaded, "production", &["timestamp", "single"])?;
//! assert_eq!(stage.hosts.len(), 3);
//! assert_eq!(stage.keep_releases, 5); // the built-in default
//!
//! std::fs::write(&ship_toml, "[default]\nkeep_relases = 3\n[production]\nhosts = [\"a\"]\n")?;
//! let err = sources.load()?.settings("production").unwrap_err().to_string();
//! assert!(err.contains("Ship.toml:2"), "{err}");
//! assert!(err.contains("keep_relases") && err.contains("keep_releases"), "{err}");
//! # Ok(()) }
//! ```
//!
//! A whole program using ship-core alone, `examples/plan_from_toml.rs`, loads a stage from
//! a `Ship.toml` string, plans a release with a layout of its own and prints the plan:
//! `cargo run -p ship-core --example plan_from_toml [-- --json]`.
#![warn(missing_docs, unreachable_pub)]

// Every type other tools need is re-exported here, flat (`ship_core::{Plan, Machine,
// Driver, ...}`). The public modules are function namespaces (`protocol::step`,
// `ops::state_script`, `artifact::build`, `shell::quote`, ...); a module with only
// types, or with functions only this crate calls, is private.
pub mod adapter;
pub mod artifact;
pub mod cache;
pub mod config;
mod delta;
pub mod diagnostic;
pub mod driver;
pub mod graph;
pub mod layout;
mod load;
pub mod machine;
pub mod ops;
mod phase;
mod plan;
pub mod planner;
pub mod protocol;
pub mod records;
pub mod render;
mod reuse;
pub mod rollback;
pub mod script;
pub mod shell;
mod ssh;
pub mod stage;
mod store;
mod task;
pub mod transport;

pub use adapter::{Adapter, Configured, Error as AdapterError, Here, Init};
pub use artifact::{ArtifactError, Built, Content, Extra, Opened, Packing};
pub use cache::Pruned;
pub use config::{
    CargoBuild, HealthConfig, InventoryConfig, LayoutName, MaintenanceConfig, NotifyConfig, Once,
    RoleConfig, Rolling, SecretSource, Settings, Shown, SourceConfig, SshConfig, TableError,
    TaskConfig,
};
pub use delta::DeltaError;
pub use diagnostic::{Diagnostic, Snippet};
pub use driver::{ApplyOptions, Driver, FirstParts, StopRequest};
pub use layout::{
    HostState, Layout, LayoutContext, LayoutError, Redeploy, ReleaseRecord, ReleaseState,
};
pub use load::{ConfigError, Detail, Loaded, Mark, Sources};
pub use machine::{
    Action, BatchEnd, BatchResult, Event, Failure, HostEnd, Machine, MachineOptions, Outcome,
    Recovery,
};
pub use ops::{Observed, Restarts};
pub use phase::Phase;
pub use plan::{
    ArtifactInfo, Batches, EnvPlan, HostPlan, HostScript, Placement, Plan, Promotion, Selected,
    Step, StepKind,
};
pub use planner::{PlanError, PlanInput, plan};
pub use protocol::{Control, Nonce, Probe, StepIo, Transcript};
pub use records::{Drift, Logged};
pub use render::TextOptions;
pub use reuse::Trees;
pub use rollback::{Decision, Rollback};
pub use ssh::{Connection, Destination};
pub use stage::{Health, Host, Notify, Selection, Stage};
pub use store::Presigned;
pub use task::{Target, TaskSpec};
// `transport::Input` is a conversation's input; `machine::Input` (the deploy machine's)
// keeps its module path.
pub use transport::{BoxFuture, Input, RunOutput, Transport, TransportError};

/// The sha256 of `bytes`, in lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(bytes))
}

/// Whether `s` reads as a sha256 in hex: 64 hex digits (either case).
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}
