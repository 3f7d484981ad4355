//! ship-layouts: the release-directory strategies of cargo ship — `timestamp`, `version`,
//! `ab` and `single` — as pure [`Layout`] implementations.
//!
//! A layout never runs anything: it returns the shell of `prepare`, `switch` and
//! `activate` (rollback and revert), decides from a host's [`HostState`] which release a
//! rollback returns to and which releases cleanup removes, and parses what a host reports.
//! The driver runs the shell; the planner puts it into the plan.
//!
//! | layout | new release at | switch | rollback |
//! |---|---|---|---|
//! | [`Timestamp`] | `releases/20261122235800` | atomic symlink rename | previous good release |
//! | [`Version`] | `releases/<version>` | atomic symlink rename | previous good version |
//! | [`Ab`] | `releases/a` or `releases/b`, whichever is not live | atomic symlink rename | the other slot |
//! | [`Single`] | `current/`, updated in place | none: not atomic | unpack the previous artifact again |
//!
//! The timestamp layout is Capistrano's: `releases/<14 digits>`, an absolute `current`
//! link, `shared/`, `revisions.log`.
//!
//! [`LAYOUTS`] is the registry: the one list of layouts, which the configuration checks
//! `layout = "…"` against ([`names`]) and every command picks from ([`layout_for`]). A new
//! layout is a module here implementing [`Layout`] and one line in that list; nothing
//! outside this crate knows a layout by name.
//!
//! # Example
//!
//! Pick a layout by name and ask it what cleanup removes on a host:
//!
//! ```
//! use ship_core::{HostState, ReleaseRecord, ReleaseState};
//! use ship_layouts::layout_for;
//!
//! let layout = layout_for("timestamp").expect("a registered layout");
//! assert_eq!(layout.name(), "timestamp");
//! assert!(layout_for("blue-green").is_none());
//! let record = |id: &str, state| ReleaseRecord {
//!     id: id.into(), dir: id.into(), revision: None, digest: "d".into(),
//!     time: "t".into(), user: "u".into(), state,
//! };
//! let state = HostState {
//!     live: Some("20261103000000".into()),
//!     releases: ["20261101000000", "20261102000000", "20261103000000", "20261104000000"]
//!         .map(String::from).to_vec(),
//!     records: vec![
//!         record("20261101000000", ReleaseState::Good),
//!         record("20261102000000", ReleaseState::Good),
//!         record("20261103000000", ReleaseState::Live),
//!     ],
//!     half_made: None,
//!     deployed: vec![],
//!     marked: vec![],
//!     history: vec![],
//!     revision_files: Default::default(),
//! };
//! // Deploying 20261104000000 with keep_releases = 2: the new one stays, and so does the
//! // live one, which becomes the previous good one; the oldest go.
//! let removed = layout.cleanup(&state, "20261104000000", 2);
//! assert_eq!(removed, ["20261101000000", "20261102000000"]);
//! ```
//!
//! `examples/cleanup.rs` prints what cleanup removes from a host you describe:
//! `cargo run -p ship-layouts --example cleanup -- [--layout NAME] [--keep N] [NEW ID:STATE...]`.
#![warn(missing_docs, unreachable_pub)]

mod ab;
mod releases;
mod shell;
mod single;

pub use ab::Ab;
pub use releases::{Timestamp, Version};
pub use ship_core::{HostState, Layout, LayoutContext, LayoutError, LayoutName};
pub use single::Single;

/// Every layout, in the order `cargo ship init` and configuration errors list them.
pub static LAYOUTS: &[&dyn Layout] = &[&Timestamp, &Version, &Ab, &Single];

/// The layout named `name` (`Ship.toml`'s `layout`, a plan's `layout`), if there is one.
pub fn layout_for(name: &str) -> Option<&'static dyn Layout> {
    LAYOUTS.iter().copied().find(|l| l.name() == name)
}

/// The names of the layouts there are, for `Stage::resolve` to check `layout` against.
pub fn names() -> Vec<&'static str> {
    LAYOUTS.iter().map(|l| l.name()).collect()
}
