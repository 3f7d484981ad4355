//! The built-in phases every deploy is made of, in their fixed order.

use serde::{Deserialize, Serialize};
use std::fmt;

/// One built-in phase of a deploy (DESIGN.md, Phases). User tasks hook in before or after one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Phase {
    /// Make the artifact, once, on the deploying machine (done when the plan is made).
    Build,
    /// Take `.ship/lock` on each host and read its state.
    Lock,
    /// Stream the artifact unless the host already has it.
    Upload,
    /// The layout makes the new release directory and unpacks into it.
    Prepare,
    /// Link `linked_files` and `linked_dirs` from `shared/`.
    Link,
    /// Adapters install dependencies (venv, node_modules).
    Install,
    /// Make the new release live; no host starts it before every host finished `install`.
    Switch,
    /// Health checks.
    Verify,
    /// Remove old releases, keeping `keep_releases`.
    Cleanup,
    /// Record the release and release the lock.
    Unlock,
}

impl Phase {
    /// Every phase, in execution order.
    pub const ALL: [Phase; 10] = [
        Phase::Build,
        Phase::Lock,
        Phase::Upload,
        Phase::Prepare,
        Phase::Link,
        Phase::Install,
        Phase::Switch,
        Phase::Verify,
        Phase::Cleanup,
        Phase::Unlock,
    ];

    /// The name used in `Ship.toml` (`after = "install"`) and in plans.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Build => "build",
            Phase::Lock => "lock",
            Phase::Upload => "upload",
            Phase::Prepare => "prepare",
            Phase::Link => "link",
            Phase::Install => "install",
            Phase::Switch => "switch",
            Phase::Verify => "verify",
            Phase::Cleanup => "cleanup",
            Phase::Unlock => "unlock",
        }
    }

    /// The phase named `name`, if there is one.
    ///
    /// ```
    /// use ship_core::Phase;
    /// assert_eq!(Phase::from_name("install"), Some(Phase::Install));
    /// assert_eq!(Phase::from_name("deploy"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<Phase> {
        Phase::ALL.into_iter().find(|p| p.name() == name)
    }

    /// Where the phase stands in [`Phase::ALL`].
    pub fn rank(self) -> usize {
        self as usize
    }

    /// True for the phases that run after the sync point, once every host is ready.
    pub fn after_sync_point(self) -> bool {
        self >= Phase::Switch
    }

    /// All phase names, comma separated: the valid choices in error messages.
    pub fn names() -> String {
        Phase::ALL.map(Phase::name).join(", ")
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
