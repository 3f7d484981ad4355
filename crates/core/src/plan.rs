//! The plan: plain serde data that says exactly what a deploy will do, host by host.
//!
//! A plan is made by [`crate::planner::plan`], printed by [`crate::render`], saved as
//! JSON, and executed as it is. It depends only on its inputs: no clock, no machine, no
//! hash-map order.

use crate::config::LayoutName;
use crate::phase::Phase;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The version of the plan's JSON format.
pub(crate) const PLAN_FORMAT: u32 = 1;

/// The artifact a plan ships.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactInfo {
    /// Where it came from, as configured: `git HEAD`, `dir dist`, `archive app.tar.gz`.
    pub source: String,
    /// The git commit, for a git source.
    pub revision: Option<String>,
    /// The sha256 of the reproducible tarball, in hex.
    pub digest: String,
    /// Its size in bytes (gzip-compressed, as shipped).
    pub bytes: u64,
    /// The number of entries (files, directories, links) in it.
    pub entries: u64,
    /// The build commands that ran here before it was packed, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub commands: Vec<String>,
    /// For `cargo ship promote`: the stage and release this artifact is live on, taken as
    /// it is instead of being built.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promoted_from: Option<Promotion>,
    /// For a `git` source: the project's files whose changes are not committed when the plan
    /// was made (modified, added, deleted or untracked, relative to the project), which the
    /// artifact does not have; the plan says so, so they are never left out silently.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uncommitted: Vec<String>,
}

/// The app's environment a plan writes to `shared/.env` on each host: the names, and a
/// digest of the whole file. The values are read on the deploying machine when the plan is
/// applied, sent on each host's conversation, and never written in the plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvPlan {
    /// The plain (`[env]`) names.
    pub names: Vec<String>,
    /// The secrets' names.
    pub secrets: Vec<String>,
    /// A short sha256 of the file (names and values): a changed secret is a changed plan.
    pub digest: String,
}

/// A plan made for some hosts of its stage only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selected {
    /// The flags: `--roles web --exclude web2`.
    pub flags: String,
    /// Each host left out, and why.
    pub left_out: Vec<(String, String)>,
}

/// The batches of a rolling deploy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Batches {
    /// The hosts of each batch; the hosts of `once` steps are in the first.
    pub batches: Vec<Vec<String>>,
    /// Failed batches that stop the deploy.
    pub max_fail: usize,
}

impl Plan {
    /// The part of this plan that `hosts` run: their scripts and steps; local steps only
    /// when `with_local` (a rolling deploy runs them with its first batch).
    pub fn subset(&self, hosts: &[String], with_local: bool) -> Plan {
        // A set: a batch of thousands of hosts is looked up once per host and step.
        let hosts: std::collections::HashSet<&str> = hosts.iter().map(String::as_str).collect();
        let mut sub = self.clone_without_scripts();
        sub.hosts = self
            .hosts
            .iter()
            .filter(|h| hosts.contains(h.name.as_str()))
            .cloned()
            .collect();
        sub.steps
            .retain(|s| with_local || s.placement != Placement::Local);
        for step in &mut sub.steps {
            step.hosts.retain(|h| hosts.contains(h.as_str()));
        }
        sub.rolling = None;
        sub
    }

    /// A copy with every host's scripts left out (their names, roles and steps kept):
    /// for what needs the plan's shape, not the shell sent to each host.
    pub fn clone_without_scripts(&self) -> Plan {
        Plan {
            hosts: self
                .hosts
                .iter()
                .map(|h| HostPlan {
                    name: h.name.clone(),
                    roles: h.roles.clone(),
                    steps: h.steps.clone(),
                    scripts: Vec::new(),
                })
                .collect(),
            ..self.clone_shallow()
        }
    }

    /// Everything but the hosts.
    fn clone_shallow(&self) -> Plan {
        let Plan {
            format,
            app,
            stage,
            release,
            layout,
            release_dir,
            atomic_switch,
            deploy_to,
            keep_releases,
            parallel,
            artifact,
            delta,
            artifact_store,
            config_digest,
            overrides,
            config_keys,
            apply_time,
            selection,
            skipped,
            env,
            rolling,
            steps,
            hosts: _,
            digest,
        } = self;
        Plan {
            format: *format,
            app: app.clone(),
            stage: stage.clone(),
            release: release.clone(),
            layout: layout.clone(),
            release_dir: release_dir.clone(),
            atomic_switch: *atomic_switch,
            deploy_to: deploy_to.clone(),
            keep_releases: *keep_releases,
            parallel: *parallel,
            artifact: artifact.clone(),
            delta: *delta,
            artifact_store: artifact_store.clone(),
            config_digest: config_digest.clone(),
            overrides: overrides.clone(),
            config_keys: config_keys.clone(),
            apply_time: apply_time.clone(),
            selection: selection.clone(),
            skipped: skipped.clone(),
            env: env.clone(),
            rolling: rolling.clone(),
            steps: steps.clone(),
            hosts: Vec::new(),
            digest: digest.clone(),
        }
    }
}

/// Where a promoted artifact came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Promotion {
    /// The stage it is live on.
    pub stage: String,
    /// Its release id there.
    pub release: String,
}

/// Where a step runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Placement {
    /// On every host it applies to.
    Hosts,
    /// On the first host of its roles only.
    Once,
    /// On the deploying machine.
    Local,
}

/// What kind of step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum StepKind {
    /// A built-in phase.
    Phase,
    /// A user's or an adapter's task.
    Task,
}

/// One step of the plan, with the hosts it runs on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Step {
    /// Its position in execution order, from 1.
    pub id: usize,
    /// The phase or task name.
    pub name: String,
    /// Phase or task.
    pub kind: StepKind,
    /// The phase it belongs to: its own, or the one its hook places it after.
    pub phase: Phase,
    /// Where it runs.
    pub placement: Placement,
    /// The hosts it runs on (empty for local steps).
    pub hosts: Vec<String>,
    /// The steps it waits for, by id.
    pub after: Vec<usize>,
    /// Every host must have finished every earlier step before this one starts.
    pub sync_point: bool,
    /// The segment this step belongs to: every host runs segment 0's script, then all
    /// wait, then segment 1's, and so on (see [`HostScript::segment`]). `None` for local steps.
    pub script: Option<usize>,
    /// A one-line description for people.
    pub summary: String,
    /// The shell it runs (the same on every host; host values come from the environment).
    pub command: String,
}

/// One host's part of the plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct HostPlan {
    /// The OpenSSH destination.
    pub name: String,
    /// Its roles.
    pub roles: Vec<String>,
    /// The ids of the steps it runs, in order.
    pub steps: Vec<usize>,
    /// The scripts sent to it, one SSH session each, in order: exactly what runs there.
    pub scripts: Vec<HostScript>,
}

/// One script of one host: the host's steps of one segment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct HostScript {
    /// The segment: scripts of segment `k` run on every host before any of segment `k + 1`.
    pub segment: usize,
    /// The POSIX shell script, run with `sh -c` in one SSH session.
    pub script: String,
}

/// A deploy, fully decided.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Plan {
    /// [`PLAN_FORMAT`].
    pub format: u32,
    /// The application.
    pub app: String,
    /// The stage.
    pub stage: String,
    /// The release id, the same on every host.
    pub release: String,
    /// The layout.
    pub layout: LayoutName,
    /// Where the release goes on each host, relative to `deploy_to`.
    pub release_dir: String,
    /// Whether the switch is atomic.
    pub atomic_switch: bool,
    /// The deploy directory on every host.
    pub deploy_to: String,
    /// Releases kept by cleanup.
    pub keep_releases: usize,
    /// Whether hosts are sent only the files they lack (`delta = true`, see `crate::delta`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub delta: bool,
    /// Hosts worked on at once.
    pub parallel: usize,
    /// The artifact.
    pub artifact: ArtifactInfo,
    /// The artifact's object in the stage's `artifact_store` (no credentials, never a
    /// presigned URL): hosts that lack the artifact download it from there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_store: Option<String>,
    /// The sha256 of the resolved configuration: a saved plan whose configuration changed
    /// since is refused.
    pub config_digest: String,
    /// The `--set KEY=VALUE` flags the plan was made with: applying a saved plan checks the
    /// configuration again with them.
    pub overrides: Vec<String>,
    /// A short sha256 of each top-level configuration key, to say which changed.
    pub config_keys: BTreeMap<String, String>,
    /// Variables the driver sets when it runs the scripts, with what they hold; they are
    /// the only values not fixed by the plan.
    pub apply_time: BTreeMap<String, String>,
    /// The steps, in execution order.
    pub steps: Vec<Step>,
    /// Each host's part.
    pub hosts: Vec<HostPlan>,
    /// The hosts left out by `--roles`, `--hosts` or `--exclude`, with the flags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selection: Option<Selected>,
    /// The app's environment written to `shared/.env` (none: no `[env]` or `[secrets]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<EnvPlan>,
    /// What of the configuration does not apply to this stage (tasks for roles it does not
    /// have), one sentence each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<String>,
    /// A rolling deploy's batches, in order (none: every host at once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolling: Option<Batches>,
    /// The sha256 of this plan's JSON with this field empty: a saved plan that was cut short
    /// or edited is refused.
    pub digest: String,
}

impl Plan {
    /// The plan as pretty JSON, as saved and as printed by `--format json`.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("a plan always serializes");
        s.push('\n');
        s
    }

    /// The plan with its [`Plan::digest`] computed.
    pub fn sealed(mut self) -> Plan {
        self.digest = String::new();
        self.digest = bare_digest(&self);
        self
    }

    /// Whether the plan is as it was made: its digest matches its content.
    pub fn intact(&self) -> bool {
        let mut bare = self.clone();
        bare.digest = String::new();
        self.digest == bare_digest(&bare)
    }

    /// Reads a plan saved by [`Plan::to_json`].
    pub fn from_json(text: &str) -> Result<Plan, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The step with this id.
    pub fn step(&self, id: usize) -> Option<&Step> {
        // Not by position: a rolling batch's subset drops local steps.
        self.steps.iter().find(|s| s.id == id)
    }
}

/// The sha256 of `plan`'s JSON (its digest field empty), the JSON streamed into the hash:
/// a plan of 10,000 hosts is not written out whole to be hashed.
fn bare_digest(plan: &Plan) -> String {
    use sha2::Digest;
    struct Hashing(sha2::Sha256);
    impl std::io::Write for Hashing {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.update(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    debug_assert!(plan.digest.is_empty());
    let mut h = Hashing(sha2::Sha256::new());
    serde_json::to_writer(std::io::BufWriter::with_capacity(64 << 10, &mut h), plan)
        .expect("a plan always serializes");
    format!("{:x}", h.0.finalize())
}
