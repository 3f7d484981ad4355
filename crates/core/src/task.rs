//! The task model: what a recipe contributes to a deploy besides the built-in phases.

use crate::config::TaskConfig;
use crate::phase::Phase;
use serde::Serialize;

/// What a task is hooked to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "kind", content = "name")]
#[non_exhaustive]
pub enum Target {
    /// A built-in phase.
    Phase(Phase),
    /// Another task, by name.
    Task(String),
}

impl Target {
    /// Reads a `before`/`after` value: a phase name, or else a task name.
    pub fn parse(name: &str) -> Target {
        Phase::from_name(name).map_or_else(|| Target::Task(name.to_owned()), Target::Phase)
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Phase(p) => write!(f, "{p}"),
            Target::Task(t) => write!(f, "{t}"),
        }
    }
}

/// One task of a deploy, from the user's `Ship.toml` or from an adapter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TaskSpec {
    /// Its name (unique in a deploy).
    pub name: String,
    /// The shell command, run with `sh -c` in the new release's directory (a plain command,
    /// a program and its arguments, is exec'd by the step's shell itself: the same to it).
    pub run: String,
    /// Runs before this.
    pub before: Option<Target>,
    /// Runs after this.
    pub after: Option<Target>,
    /// Its roles; empty means every host.
    pub roles: Vec<String>,
    /// On one host only: the primary or first host of its roles.
    pub once: bool,
    /// With `once`: on one host of each of its roles instead.
    pub once_per_role: bool,
    /// On the deploying machine.
    pub local: bool,
    /// A sentence for listings.
    pub description: Option<String>,
}

impl TaskSpec {
    /// The task a `[<stage>.tasks.<name>]` table describes.
    pub fn from_config(name: &str, cfg: &TaskConfig) -> TaskSpec {
        TaskSpec {
            name: name.to_owned(),
            run: cfg.run.clone(),
            before: cfg.before.as_deref().map(Target::parse),
            after: cfg.after.as_deref().map(Target::parse),
            roles: cfg.roles.clone(),
            once: cfg.once.is_once(),
            once_per_role: cfg.once == crate::config::Once::Role,
            local: cfg.local,
            description: cfg.description.clone(),
        }
    }

    /// How the hook reads in a plan: `after install`, `before switch, after migrate`.
    pub fn hook(&self) -> String {
        let mut parts = Vec::new();
        if let Some(b) = &self.before {
            parts.push(format!("before {b}"));
        }
        if let Some(a) = &self.after {
            parts.push(format!("after {a}"));
        }
        parts.join(", ")
    }
}
