//! A rollback, decided: the deploy machine's sibling for `cargo ship rollback`. Pure, like
//! the machine: it writes the first part each host runs (take the lock, print the state),
//! and from what every host said it decides, as data, either to act (each host's switch
//! back, all to the same release) or to change nothing (each locked host's unlock, and
//! why). The driver runs both parts in one session per host (`driver::two_steps`).
//!
//! ```
//! use ship_core::{Decision, Rollback};
//! use ship_core::Nonce;
//! use ship_core::{RunOutput, TransportError};
//! use std::collections::BTreeMap;
//! # struct L;
//! # impl ship_core::Layout for L {
//! #   fn name(&self) -> &'static str { "toy" }
//! #   fn release_dir(&self, _: &ship_core::LayoutContext<'_>) -> String { String::new() }
//! #   fn locate(&self, _: &ship_core::LayoutContext<'_>) -> String { String::new() }
//! #   fn prepare(&self, _: &ship_core::LayoutContext<'_>) -> String { String::new() }
//! #   fn switch(&self, _: &ship_core::LayoutContext<'_>) -> String { String::new() }
//! #   fn activate(&self, _: &ship_core::LayoutContext<'_>, _: &str) -> String { String::new() }
//! #   fn cleanup(&self, _: &ship_core::HostState, _: &str, _: usize) -> Vec<String> { vec![] }
//! #   fn parse_state(&self, _: &str, _: Option<&str>, _: &str) -> ship_core::HostState { Default::default() }
//! # }
//! let rollback = Rollback {
//!     layout: &L,
//!     deploy_to: "/srv/app",
//!     user: "ann@laptop",
//!     to: None,
//!     after: BTreeMap::new(),
//!     limit: std::time::Duration::from_secs(60),
//!     maintenance: None,
//! };
//! // A host that could not be locked stops the rollback: nothing changes anywhere.
//! let mut first: BTreeMap<String, Result<RunOutput, TransportError>> = BTreeMap::new();
//! first.insert("web1".into(), Err(TransportError::Connect { host: "web1".into(), message: "refused".into() }));
//! match rollback.decide(&Nonce::from_bytes(&[1; 16]), &first) {
//!     Decision::Refuse { problems, .. } => assert!(problems[0].starts_with("web1: ")),
//!     Decision::Act { .. } => unreachable!(),
//! }
//! ```

use crate::layout::{HostState, Layout};
use crate::ops::{self, Observed};
use crate::protocol::{self, Nonce};
use crate::transport::{RunOutput, TransportError};
use std::collections::{BTreeMap, BTreeSet};

/// A rollback of one stage.
pub struct Rollback<'a> {
    /// The stage's layout.
    pub layout: &'a dyn Layout,
    /// The deploy directory.
    pub deploy_to: &'a str,
    /// Who rolls back: `user@machine`; also the lock's text.
    pub user: &'a str,
    /// The release asked for (`--to`), or the previous good one.
    pub to: Option<&'a str>,
    /// Per host, the commands run once it is back (its restarts), `(name, command)`.
    pub after: BTreeMap<String, Vec<(String, String)>>,
    /// How long each of those may take on the host.
    pub limit: std::time::Duration,
    /// The stage's maintenance page: the release made live gets it if the site is in
    /// maintenance, and loses it if not.
    pub maintenance: Option<&'a crate::config::MaintenanceConfig>,
}

/// What a rollback does once every host answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Every host goes back to release `id`: each host's script.
    Act {
        /// The release every host goes back to.
        id: String,
        /// Each host's switch-back.
        scripts: BTreeMap<String, String>,
    },
    /// Nothing changes: each locked host's unlock, and why.
    Refuse {
        /// What stops it, one line a host (or one for them all).
        problems: Vec<String>,
        /// Each locked host's unlock.
        scripts: BTreeMap<String, String>,
    },
}

impl Decision {
    /// The second part each host runs.
    pub fn scripts(&self) -> BTreeMap<String, String> {
        match self {
            Decision::Act { scripts, .. } | Decision::Refuse { scripts, .. } => scripts.clone(),
        }
    }
}

/// A session's result as a short reason when it did not succeed (the lock's holder when
/// another holds it).
pub fn session_failure(result: &Result<RunOutput, TransportError>) -> Option<String> {
    let first_line = |text: &str| {
        text.lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .replace("cargo-ship: ", "")
    };
    match result {
        Ok(out) if out.status == Some(0) => None,
        Ok(out) if out.status == Some(protocol::LOCKED_STATUS) => Some(first_line(&out.stderr)),
        Ok(out) => Some(format!(
            "exit {}: {}",
            out.status.map_or("unknown".to_owned(), |s| s.to_string()),
            first_line(&out.stderr)
        )),
        Err(e) => Some(e.to_string()),
    }
}

impl Rollback<'_> {
    /// The first part on `host`: take the lock (naming this rollback), print the state and
    /// what `revisions.log` and the releases' `REVISION` say (for a release with no record).
    pub fn first(&self, host: &str, lock_info: &str) -> String {
        format!(
            "{}{}\n",
            ops::state_script(self.deploy_to, host, Some(lock_info), None),
            crate::records::history_probe()
        )
    }

    /// Decides from what every host said under its lock (see [`Decision`]).
    pub fn decide(
        &self,
        nonce: &Nonce,
        first: &BTreeMap<String, Result<RunOutput, TransportError>>,
    ) -> Decision {
        let mut problems = Vec::new();
        let mut locked = Vec::new();
        let mut plans: BTreeMap<String, (HostState, String, String)> = BTreeMap::new();
        for (host, result) in first {
            if let Some(reason) = session_failure(result) {
                problems.push(format!("{host}: {reason}"));
                continue;
            }
            locked.push(host.clone());
            let out = result.as_ref().expect("succeeded");
            match ops::observe(self.layout, self.deploy_to, &out.stdout, nonce) {
                Err(e) => problems.push(format!("{host}: {e}")),
                Ok(Observed { mut state, .. }) => {
                    // The directory, not stale records, says what is live and what is there:
                    // another tool (Capistrano) or a hand may have changed it.
                    crate::records::read_history(&mut state, &out.stdout, nonce);
                    let (state, _) = self.layout.reconcile(&state);
                    match self.layout.rollback_target(&state, self.to) {
                        Err(e) => problems.push(format!("{host}: {e}")),
                        Ok(target) => {
                            let id = self.layout.rollback_record(&state, &target).id;
                            plans.insert(host.clone(), (state, target, id));
                        }
                    }
                }
            }
        }
        let ids: BTreeSet<&str> = plans.values().map(|(_, _, id)| id.as_str()).collect();
        if problems.is_empty() && ids.len() > 1 {
            let each: Vec<String> = plans
                .iter()
                .map(|(h, (_, _, id))| format!("{h} → {id}"))
                .collect();
            problems.push(format!(
                "the hosts do not agree on the previous release ({}); choose one with --to ID",
                each.join(", ")
            ));
        }
        if !problems.is_empty() {
            // Nothing changes: release the locks taken.
            let scripts = locked
                .into_iter()
                .map(|h| {
                    let script = ops::unlock_script(self.deploy_to, &h);
                    (h, script)
                })
                .collect();
            return Decision::Refuse { problems, scripts };
        }
        let id = ids.into_iter().next().unwrap_or("?").to_owned();
        let scripts = plans
            .iter()
            .map(|(h, (state, target, _))| {
                let after = self.after.get(h).map(Vec::as_slice).unwrap_or_default();
                (
                    h.clone(),
                    ops::rollback_script(
                        self.layout,
                        self.deploy_to,
                        h,
                        state,
                        target,
                        self.user,
                        ops::Restarts {
                            commands: after,
                            limit: self.limit,
                            maintenance: self.maintenance,
                        },
                    ),
                )
            })
            .collect();
        Decision::Act { id, scripts }
    }
}
