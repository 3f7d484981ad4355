//! The planner: tasks × hosts → an ordered, per-host [`Plan`]. Pure: no I/O, no clock.
//!
//! The task-level graph (phases and tasks, edges from their hooks) is built with petgraph;
//! a cycle is reported with the names of the tasks in it. Steps are then ordered by a
//! topological sort that breaks ties by a fixed rank (phase order, then task name), and
//! expanded to the hosts of their roles. Each host's steps are cut into scripts at the
//! sync points: after `lock` (every host locked and its state read before anything is
//! sent), before `switch` (no host switches until every host is ready), and around local
//! steps.

use crate::layout::{Layout, LayoutContext};
use crate::phase::Phase;
use crate::plan::{
    ArtifactInfo, HostPlan, HostScript, PLAN_FORMAT, Placement, Plan, Step, StepKind,
};
use crate::script;
use crate::stage::Stage;
use crate::task::{Target, TaskSpec};
use petgraph::graph::{DiGraph, NodeIndex};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

/// Everything a plan is made from. The same input gives the same plan, byte for byte.
pub struct PlanInput<'a> {
    /// The resolved stage.
    pub stage: &'a Stage,
    /// The layout strategy for `stage.layout`.
    pub layout: &'a dyn Layout,
    /// The release id (chosen by the caller: a UTC timestamp, a version, or pinned).
    pub release: String,
    /// The artifact, already built.
    pub artifact: ArtifactInfo,
    /// The sha256 of the resolved configuration.
    pub config_digest: String,
    /// Tasks contributed by adapters, besides the stage's own.
    pub extra_tasks: Vec<TaskSpec>,
    /// The `--set` flags used, recorded in the plan.
    pub overrides: Vec<String>,
}

/// Why no plan could be made.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum PlanError {
    /// Hooks that make tasks wait for each other in a circle.
    #[error("dependency cycle: {}; change a `before`/`after` to break it", .0.join(" → "))]
    Cycle(Vec<String>),
    /// A hook names nothing.
    #[error("task `{task}`: `{field} = \"{target}\"` names no phase or task")]
    UnknownTarget {
        /// The task.
        task: String,
        /// `before` or `after`.
        field: &'static str,
        /// What it named.
        target: String,
    },
    /// A task hooked where it cannot run.
    #[error("task `{task}`: {reason}")]
    Misplaced {
        /// The task.
        task: String,
        /// Why.
        reason: String,
    },
    /// Two tasks with one name.
    #[error("two tasks are named `{0}`")]
    DuplicateTask(String),
}

#[derive(Clone, Debug)]
enum Node {
    Phase(Phase),
    Task(usize),
}

/// Builds the plan. See the module docs for the rules.
pub fn plan(input: &PlanInput<'_>) -> Result<Plan, PlanError> {
    let stage = input.stage;
    let mut tasks: Vec<TaskSpec> = stage
        .tasks
        .iter()
        .map(|(name, cfg)| TaskSpec::from_config(name, cfg))
        .collect();
    tasks.extend(input.extra_tasks.iter().cloned());
    tasks.sort_by(|a, b| a.name.cmp(&b.name));
    for pair in tasks.windows(2) {
        if pair[0].name == pair[1].name {
            return Err(PlanError::DuplicateTask(pair[0].name.clone()));
        }
    }

    // The task-level graph.
    let mut graph: DiGraph<Node, ()> = DiGraph::new();
    let phases: Vec<NodeIndex> = Phase::ALL
        .iter()
        .map(|p| graph.add_node(Node::Phase(*p)))
        .collect();
    for w in phases.windows(2) {
        graph.add_edge(w[0], w[1], ());
    }
    let task_nodes: Vec<NodeIndex> = (0..tasks.len())
        .map(|i| graph.add_node(Node::Task(i)))
        .collect();
    let index_of = |name: &str| tasks.iter().position(|t| t.name == name);
    for (i, task) in tasks.iter().enumerate() {
        let me = task_nodes[i];
        for (field, target) in [("before", &task.before), ("after", &task.after)] {
            let Some(target) = target else { continue };
            let other = match target {
                Target::Phase(p) => {
                    check_hook(task, field, *p)?;
                    phases[p.rank()]
                }
                Target::Task(name) => match index_of(name) {
                    Some(j) => task_nodes[j],
                    None => {
                        return Err(PlanError::UnknownTarget {
                            task: task.name.clone(),
                            field,
                            target: name.clone(),
                        });
                    }
                },
            };
            if field == "before" {
                graph.add_edge(me, other, ());
            } else {
                graph.add_edge(other, me, ());
            }
        }
    }
    if let Some(cycle) = find_cycle(&graph, &tasks) {
        return Err(PlanError::Cycle(cycle));
    }
    // Bound every task between two adjacent phases, so that "after install" also means
    // "before switch", and a task hooked to a task inherits that task's place.
    let bounds = bounds(&tasks);
    for (i, (lower, upper)) in bounds.iter().enumerate() {
        if let Some(l) = lower {
            graph.update_edge(phases[l.rank()], task_nodes[i], ());
        }
        if let Some(u) = upper {
            graph.update_edge(task_nodes[i], phases[u.rank()], ());
        }
    }
    if let Some(cycle) = find_cycle(&graph, &tasks) {
        return Err(PlanError::Cycle(cycle));
    }

    let order = ordered(&graph, &bounds);

    // Steps.
    let cx = LayoutContext {
        deploy_to: &stage.deploy_to,
        release: &input.release,
        delta: stage.delta,
    };
    let all_hosts: Vec<String> = stage.hosts.iter().map(|h| h.name.clone()).collect();
    let mut steps: Vec<Step> = Vec::new();
    let mut id_of_node: BTreeMap<usize, usize> = BTreeMap::new();
    let mut current_phase = Phase::Build;
    for node in &order {
        let id = steps.len() + 1;
        id_of_node.insert(node.index(), id);
        let step = match &graph[*node] {
            Node::Phase(p) => {
                current_phase = *p;
                let local = *p == Phase::Build;
                Step {
                    id,
                    name: p.name().to_owned(),
                    kind: StepKind::Phase,
                    phase: *p,
                    placement: if local {
                        Placement::Local
                    } else {
                        Placement::Hosts
                    },
                    hosts: if local { Vec::new() } else { all_hosts.clone() },
                    after: Vec::new(),
                    sync_point: false,
                    script: None,
                    summary: script::phase_summary(*p, input, stage, &cx),
                    command: script::phase_command(*p, input, &stage.hosts[0], &cx),
                }
            }
            Node::Task(i) => {
                let t = &tasks[*i];
                let mut hosts: Vec<String> = stage
                    .hosts_of(&t.roles)
                    .iter()
                    .map(|h| h.name.clone())
                    .collect();
                let placement = if t.local {
                    hosts.clear();
                    Placement::Local
                } else if t.once {
                    hosts = once_hosts(stage, t);
                    Placement::Once
                } else {
                    Placement::Hosts
                };
                // An adapter's multi-line script reads as its description; `--verbose`
                // and the JSON plan show the script itself.
                let summary = match &t.description {
                    Some(d) if t.run.contains('\n') => format!("{d} ({})", t.hook()),
                    Some(d) => format!("{d} ({}): {}", t.hook(), t.run),
                    None => format!("{}: {}", t.hook(), t.run),
                };
                Step {
                    id,
                    name: t.name.clone(),
                    kind: StepKind::Task,
                    phase: current_phase,
                    placement,
                    hosts,
                    after: Vec::new(),
                    sync_point: false,
                    script: None,
                    summary,
                    command: script::task_command(t),
                }
            }
        };
        steps.push(step);
    }
    for node in &order {
        let id = id_of_node[&node.index()];
        let mut after: Vec<usize> = graph
            .neighbors_directed(*node, petgraph::Direction::Incoming)
            .map(|n| id_of_node[&n.index()])
            .collect();
        after.sort_unstable();
        after.dedup();
        steps[id - 1].after = after;
    }

    // Scripts and sync points: a new script starts after `lock` (every host is locked and
    // its state read before anything is sent), at `switch` (no host switches until every
    // host is ready), and after a local step; a local step waits for every host.
    let mut segment = 0usize;
    let mut segment_used = false;
    let mut any_host_step = false;
    let mut cut = false;
    for step in steps.iter_mut().filter(|s| s.phase != Phase::Build) {
        if step.placement == Placement::Local {
            step.sync_point = any_host_step;
            cut = true;
            continue;
        }
        let at_switch = step.kind == StepKind::Phase && step.phase == Phase::Switch;
        if (cut || at_switch) && segment_used {
            segment += 1;
            step.sync_point = true;
        }
        step.script = Some(segment);
        segment_used = true;
        any_host_step = true;
        cut = step.kind == StepKind::Phase && step.phase == Phase::Lock;
    }

    // Each host's steps, in order: one pass over the steps, linear in steps × hosts.
    let index: BTreeMap<&str, usize> = stage
        .hosts
        .iter()
        .enumerate()
        .map(|(i, h)| (h.name.as_str(), i))
        .collect();
    let mut per_host: Vec<Vec<&Step>> = vec![Vec::new(); stage.hosts.len()];
    for step in &steps {
        for h in &step.hosts {
            per_host[index[h.as_str()]].push(step);
        }
    }
    let hosts: Vec<HostPlan> = stage
        .hosts
        .iter()
        .zip(per_host)
        .map(|(host, mine)| {
            let mut segments: Vec<usize> = mine.iter().filter_map(|s| s.script).collect();
            segments.dedup();
            let scripts = segments
                .iter()
                .enumerate()
                .map(|(n, &k)| {
                    let part: Vec<&Step> = mine
                        .iter()
                        .copied()
                        .filter(|s| s.script == Some(k))
                        .collect();
                    HostScript {
                        segment: k,
                        script: script::host_script(input, host, &cx, n, segments.len(), &part),
                    }
                })
                .collect();
            HostPlan {
                name: host.name.clone(),
                roles: host.roles.clone(),
                steps: mine.iter().map(|s| s.id).collect(),
                scripts,
            }
        })
        .collect();

    Ok(Plan {
        format: PLAN_FORMAT,
        app: stage.app.clone(),
        stage: stage.name.clone(),
        release: input.release.clone(),
        layout: stage.layout.clone(),
        release_dir: input.layout.release_dir(&cx),
        atomic_switch: input.layout.atomic(),
        deploy_to: stage.deploy_to.clone(),
        keep_releases: stage.keep_releases,
        delta: stage.delta,
        parallel: stage.parallel,
        artifact: input.artifact.clone(),
        artifact_store: stage
            .artifact_store
            .as_deref()
            .map(|store| crate::store::object_url(store, &input.artifact.digest)),
        config_digest: input.config_digest.clone(),
        overrides: input.overrides.clone(),
        config_keys: config_keys(stage),
        apply_time: script::apply_time_variables(),
        selection: None,
        skipped: stage.skipped.clone(),
        env: None,
        rolling: batches(stage, &steps),
        steps,
        hosts,
        digest: String::new(),
    }
    .sealed())
}

/// Where a `once` task runs: the primary host of its roles (else the first), or with
/// `once = "role"` the primary (else first) host of each of its roles.
fn once_hosts(stage: &Stage, t: &TaskSpec) -> Vec<String> {
    let pick = |candidates: Vec<&crate::stage::Host>| {
        candidates
            .iter()
            .find(|h| h.primary)
            .or(candidates.first())
            .map(|h| h.name.clone())
    };
    if t.once_per_role {
        let roles: Vec<String> = if t.roles.is_empty() {
            stage.roles.keys().cloned().collect()
        } else {
            t.roles.clone()
        };
        let mut out: Vec<String> = Vec::new();
        for role in roles {
            if let Some(h) = pick(stage.hosts_of(std::slice::from_ref(&role)))
                && !out.contains(&h)
            {
                out.push(h);
            }
        }
        // In stage order, like every other host list.
        out.sort_by_key(|h| stage.hosts.iter().position(|x| &x.name == h));
        out
    } else {
        pick(stage.hosts_of(&t.roles)).into_iter().collect()
    }
}

/// The batches of a rolling stage: hosts in stage order, except that the hosts of `once`
/// steps before the switch (migrations) come first, so that they run before any host
/// switches.
fn batches(stage: &Stage, steps: &[Step]) -> Option<crate::plan::Batches> {
    let rule = stage.rolling.as_ref()?;
    let n = stage.hosts.len();
    let size = match rule {
        crate::config::Rolling::Hosts(k) => *k,
        crate::config::Rolling::Share(p) => {
            let pct: usize = p.trim_end_matches('%').trim().parse().unwrap_or(100);
            (n * pct).div_ceil(100)
        }
    }
    .max(1);
    let once: Vec<&String> = steps
        .iter()
        .filter(|s| s.placement == Placement::Once && !s.phase.after_sync_point())
        .flat_map(|s| &s.hosts)
        .collect();
    let mut order: Vec<String> = stage
        .hosts
        .iter()
        .filter(|h| once.contains(&&h.name))
        .map(|h| h.name.clone())
        .collect();
    order.extend(
        stage
            .hosts
            .iter()
            .filter(|h| !once.contains(&&h.name))
            .map(|h| h.name.clone()),
    );
    Some(crate::plan::Batches {
        batches: order.chunks(size).map(<[String]>::to_vec).collect(),
        max_fail: stage.max_fail,
    })
}

/// A short digest of each top-level key of the resolved stage.
pub fn config_keys(stage: &Stage) -> BTreeMap<String, String> {
    let value = serde_json::to_value(stage).expect("a stage serializes");
    let mut out = BTreeMap::new();
    if let serde_json::Value::Object(map) = value {
        for (k, v) in map {
            let digest = crate::sha256_hex(v.to_string().as_bytes());
            out.insert(k, digest[..12].to_owned());
        }
    }
    out
}

/// The sha256 of the resolved stage: a saved plan records it, and applying checks it.
pub fn config_digest(stage: &Stage) -> String {
    crate::sha256_hex(
        serde_json::to_string(stage)
            .expect("a stage serializes")
            .as_bytes(),
    )
}

fn check_hook(task: &TaskSpec, field: &str, phase: Phase) -> Result<(), PlanError> {
    let misplaced = |reason: String| {
        Err(PlanError::Misplaced {
            task: task.name.clone(),
            reason,
        })
    };
    if phase == Phase::Build {
        return misplaced(format!(
            "`{field} = \"build\"`: the build phase runs when the plan is made; \
             put the command in `build = [...]` instead"
        ));
    }
    if !task.local {
        let outside = (field == "before" && phase == Phase::Lock)
            || (field == "after" && phase == Phase::Unlock);
        if outside {
            return misplaced(format!(
                "`{field} = \"{phase}\"`: a task on the hosts runs while the deploy holds the lock \
                 (after lock, before unlock); use `local = true` to run it on this machine"
            ));
        }
    }
    Ok(())
}

/// The pair of phases each task sits between, derived from its hooks (following task
/// references). `None` on a side means unbounded there.
fn bounds(tasks: &[TaskSpec]) -> Vec<(Option<Phase>, Option<Phase>)> {
    fn resolve(
        tasks: &[TaskSpec],
        i: usize,
        memo: &mut Vec<Option<(Option<Phase>, Option<Phase>)>>,
        depth: usize,
    ) -> (Option<Phase>, Option<Phase>) {
        if let Some(b) = memo[i] {
            return b;
        }
        if depth > tasks.len() {
            return (None, None); // a cycle: reported by the graph
        }
        let t = &tasks[i];
        let prev = |p: Phase| Phase::ALL.get(p.rank().wrapping_sub(1)).copied();
        let next = |p: Phase| Phase::ALL.get(p.rank() + 1).copied();
        let mut lower: Option<Phase> = None;
        let mut upper: Option<Phase> = None;
        let from_task = |name: &str, memo: &mut Vec<_>| {
            tasks
                .iter()
                .position(|x| x.name == name)
                .map(|j| resolve(tasks, j, memo, depth + 1))
        };
        match &t.after {
            Some(Target::Phase(p)) => {
                lower = Some(*p);
                upper = next(*p);
            }
            Some(Target::Task(n)) => {
                if let Some((l, u)) = from_task(n, memo) {
                    lower = l;
                    upper = u;
                }
            }
            None => {}
        }
        match &t.before {
            Some(Target::Phase(p)) => {
                upper = Some(*p);
                if t.after.is_none() {
                    lower = prev(*p);
                }
            }
            Some(Target::Task(n)) => {
                if let Some((l, u)) = from_task(n, memo) {
                    upper = u;
                    if t.after.is_none() {
                        lower = l;
                    }
                }
            }
            None => {}
        }
        memo[i] = Some((lower, upper));
        (lower, upper)
    }
    let mut memo = vec![None; tasks.len()];
    (0..tasks.len())
        .map(|i| resolve(tasks, i, &mut memo, 0))
        .collect()
}

fn node_name(graph: &DiGraph<Node, ()>, tasks: &[TaskSpec], n: NodeIndex) -> String {
    match &graph[n] {
        Node::Phase(p) => format!("phase {p}"),
        Node::Task(i) => tasks[*i].name.clone(),
    }
}

/// The nodes of one cycle, in order, ending where it started; `None` if there is none.
fn find_cycle(graph: &DiGraph<Node, ()>, tasks: &[TaskSpec]) -> Option<Vec<String>> {
    let sccs = petgraph::algo::tarjan_scc(graph);
    let scc = sccs
        .into_iter()
        .find(|c| c.len() > 1 || graph.find_edge(c[0], c[0]).is_some())?;
    // Walk the cycle from its smallest node, staying inside the component.
    let start = *scc.iter().min()?;
    let mut path = vec![start];
    let mut at = start;
    loop {
        let mut next: Vec<NodeIndex> = graph.neighbors(at).filter(|n| scc.contains(n)).collect();
        next.sort();
        let n = *next.iter().find(|n| **n == start || !path.contains(n))?;
        path.push(n);
        if n == start {
            break;
        }
        at = n;
    }
    Some(
        path.into_iter()
            .map(|n| node_name(graph, tasks, n))
            .collect(),
    )
}

/// A topological order, ties broken by a fixed rank: the phase a node belongs to, phases
/// before tasks of the same place, then task names (tasks are sorted by name).
fn ordered(graph: &DiGraph<Node, ()>, bounds: &[(Option<Phase>, Option<Phase>)]) -> Vec<NodeIndex> {
    type Rank = (usize, usize, usize);
    let rank = |n: NodeIndex| -> Rank {
        match &graph[n] {
            Node::Phase(p) => (p.rank(), 0, 0),
            Node::Task(i) => {
                let (lower, _) = bounds[*i];
                (lower.map_or(0, |p| p.rank()), 1, *i)
            }
        }
    };
    let mut indegree: Vec<usize> = graph
        .node_indices()
        .map(|n| {
            graph
                .neighbors_directed(n, petgraph::Direction::Incoming)
                .count()
        })
        .collect();
    let mut ready: BinaryHeap<Reverse<(Rank, NodeIndex)>> = graph
        .node_indices()
        .filter(|n| indegree[n.index()] == 0)
        .map(|n| Reverse((rank(n), n)))
        .collect();
    let mut out = Vec::with_capacity(graph.node_count());
    while let Some(Reverse((_, n))) = ready.pop() {
        out.push(n);
        for m in graph.neighbors(n) {
            indegree[m.index()] -= 1;
            if indegree[m.index()] == 0 {
                ready.push(Reverse((rank(m), m)));
            }
        }
    }
    out
}
