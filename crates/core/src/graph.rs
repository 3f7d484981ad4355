//! The plan's step graph as Graphviz `dot` or Mermaid text (`cargo ship plan --format
//! dot|mermaid`), for docs and reviews.
//!
//! One node per step, saying where it runs (every host, a role, once, or here); the steps of
//! one segment (one script per host) in one cluster, local steps in their own; a sync point
//! between two units is a node of its own, which every last step of the unit above leads to
//! and which leads to every first step of the unit below. Pure and deterministic: the same
//! plan gives the same bytes.

use crate::plan::{Placement, Plan, Step, StepKind};
use std::collections::{BTreeMap, BTreeSet};

/// A run of consecutive steps: one segment of the hosts' scripts, or local steps.
struct Unit<'p> {
    /// `Some(k)`: segment k; `None`: steps on this machine.
    segment: Option<usize>,
    steps: Vec<&'p Step>,
    /// A sync point comes before it.
    sync: bool,
}

enum Edge {
    /// `a` waits for `b` (drawn b → a).
    Step(usize, usize),
    /// A step into the sync point before unit `u`.
    IntoSync(usize, usize),
    /// The sync point before unit `u` to a step.
    FromSync(usize, usize),
}

struct Graph<'p> {
    units: Vec<Unit<'p>>,
    edges: Vec<Edge>,
}

fn graph(plan: &Plan) -> Graph<'_> {
    let mut units: Vec<Unit<'_>> = Vec::new();
    for step in &plan.steps {
        match units.last_mut() {
            Some(u) if u.segment == step.script && !step.sync_point => u.steps.push(step),
            _ => units.push(Unit {
                segment: step.script,
                steps: vec![step],
                sync: step.sync_point && !units.is_empty(),
            }),
        }
    }
    let unit_of: BTreeMap<usize, usize> = units
        .iter()
        .enumerate()
        .flat_map(|(i, u)| u.steps.iter().map(move |s| (s.id, i)))
        .collect();
    let mut edges = Vec::new();
    for (i, unit) in units.iter().enumerate() {
        if unit.sync {
            // Into the sync: the previous unit's steps no step of that unit waits for.
            let prev = &units[i - 1];
            for s in &prev.steps {
                let waited = prev.steps.iter().any(|t| t.after.contains(&s.id));
                if !waited {
                    edges.push(Edge::IntoSync(s.id, i));
                }
            }
        }
        for s in &unit.steps {
            let mut from_sync = false;
            for dep in &s.after {
                match unit_of.get(dep) {
                    Some(&u) if u == i => edges.push(Edge::Step(s.id, *dep)),
                    // Across a sync point: the sync node stands for it.
                    Some(_) if unit.sync => from_sync = true,
                    Some(_) => edges.push(Edge::Step(s.id, *dep)),
                    None => {}
                }
            }
            if unit.sync && (from_sync || !s.after.iter().any(|d| unit_of.get(d) == Some(&i))) {
                edges.push(Edge::FromSync(i, s.id));
            }
        }
    }
    Graph { units, edges }
}

/// Where a step runs, in a few words: `all 4 hosts`, `role web (2 hosts)`, `once: web1`,
/// `here`.
fn placement(plan: &Plan, step: &Step) -> String {
    match step.placement {
        Placement::Local => return "here".to_owned(),
        Placement::Once => return format!("once: {}", step.hosts.join(", ")),
        Placement::Hosts => {}
    }
    if step.hosts.len() == plan.hosts.len() {
        return match plan.hosts.len() {
            1 => "1 host".to_owned(),
            n => format!("all {n} hosts"),
        };
    }
    // The roles whose hosts are exactly these.
    let these: BTreeSet<&str> = step.hosts.iter().map(String::as_str).collect();
    let roles: BTreeSet<&str> = plan
        .hosts
        .iter()
        .filter(|h| these.contains(h.name.as_str()))
        .flat_map(|h| h.roles.iter().map(String::as_str))
        .collect();
    let of_roles: BTreeSet<&str> = plan
        .hosts
        .iter()
        .filter(|h| h.roles.iter().any(|r| roles.contains(r.as_str())))
        .map(|h| h.name.as_str())
        .collect();
    let n = step.hosts.len();
    let hosts = format!("{n} host{}", if n == 1 { "" } else { "s" });
    if !roles.is_empty() && of_roles == these {
        let roles: Vec<&str> = roles.into_iter().collect();
        return format!(
            "role{} {} ({hosts})",
            if roles.len() == 1 { "" } else { "s" },
            roles.join(", ")
        );
    }
    if n <= 3 {
        step.hosts.join(", ")
    } else {
        format!("{}, … ({hosts})", step.hosts[..2].join(", "))
    }
}

fn unit_label(unit: &Unit<'_>) -> String {
    match unit.segment {
        Some(k) => format!("segment {k}: one script per host"),
        None => "on this machine".to_owned(),
    }
}

fn title(plan: &Plan) -> String {
    let mut t = format!(
        "deploy {} to {}, release {}",
        plan.app, plan.stage, plan.release
    );
    if let Some(r) = &plan.rolling {
        t.push_str(&format!(
            " (rolling: {} batches, each runs this graph)",
            r.batches.len()
        ));
    }
    t
}

const SYNC_LABEL: &str = "sync point: every host finishes the steps above before any goes on";

/// A string for a dot quoted ID.
fn dot_quote(s: &str) -> String {
    let escaped = s
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n");
    format!("\"{escaped}\"")
}

/// The plan's step graph in Graphviz's dot language.
pub fn dot(plan: &Plan) -> String {
    let g = graph(plan);
    let mut out = String::new();
    out.push_str("digraph plan {\n");
    out.push_str(&format!(
        "  label={};\n  labelloc=t;\n  rankdir=TB;\n  newrank=true;\n  fontname=\"Helvetica\";\n",
        dot_quote(&title(plan))
    ));
    out.push_str("  node [shape=box, style=\"rounded,filled\", fillcolor=\"#dde8f5\", fontname=\"Helvetica\"];\n");
    out.push_str("  edge [color=\"#555555\"];\n");
    for (i, unit) in g.units.iter().enumerate() {
        if unit.sync {
            out.push_str(&format!(
                "  sync{i} [label={}, shape=box, style=\"dashed\", color=\"#cc0000\", fontcolor=\"#cc0000\"];\n",
                dot_quote(SYNC_LABEL)
            ));
        }
        out.push_str(&format!(
            "  subgraph cluster_{i} {{\n    label={};\n    style={};\n",
            dot_quote(&unit_label(unit)),
            if unit.segment.is_some() {
                "\"rounded\""
            } else {
                "\"rounded,dashed\""
            }
        ));
        for s in &unit.steps {
            let fill = match (s.placement, s.kind) {
                (Placement::Local, _) => "#eeeeee",
                (_, StepKind::Task) => "#fff2cc",
                (_, StepKind::Phase) => "#dde8f5",
            };
            out.push_str(&format!(
                "    s{} [label={}, fillcolor=\"{fill}\"];\n",
                s.id,
                dot_quote(&format!("{} {}\n{}", s.id, s.name, placement(plan, s)))
            ));
        }
        out.push_str("  }\n");
    }
    for e in &g.edges {
        match e {
            Edge::Step(a, b) => out.push_str(&format!("  s{b} -> s{a};\n")),
            Edge::IntoSync(s, u) => {
                out.push_str(&format!("  s{s} -> sync{u} [style=dashed];\n"));
            }
            Edge::FromSync(u, s) => {
                out.push_str(&format!("  sync{u} -> s{s} [style=dashed];\n"));
            }
        }
    }
    out.push_str("}\n");
    out
}

/// A string for a Mermaid node label (in double quotes).
fn mermaid_quote(s: &str) -> String {
    let escaped = s
        .replace('&', "#amp;")
        .replace('"', "#quot;")
        .replace('<', "#lt;")
        .replace('>', "#gt;")
        .replace('\n', "<br/>");
    format!("\"{escaped}\"")
}

/// The plan's step graph as a Mermaid flowchart.
pub fn mermaid(plan: &Plan) -> String {
    let g = graph(plan);
    let mut out = String::new();
    out.push_str(&format!(
        "---\ntitle: {}\n---\nflowchart TB\n",
        mermaid_quote(&title(plan))
    ));
    for (i, unit) in g.units.iter().enumerate() {
        if unit.sync {
            out.push_str(&format!(
                "  sync{i}{{{{{}}}}}\n  class sync{i} sync\n",
                mermaid_quote(SYNC_LABEL)
            ));
        }
        out.push_str(&format!(
            "  subgraph unit{i}[{}]\n",
            mermaid_quote(&unit_label(unit))
        ));
        for s in &unit.steps {
            out.push_str(&format!(
                "    s{}[{}]\n",
                s.id,
                mermaid_quote(&format!("{} {}\n{}", s.id, s.name, placement(plan, s)))
            ));
            match (s.placement, s.kind) {
                (Placement::Local, _) => out.push_str(&format!("    class s{} local\n", s.id)),
                (_, StepKind::Task) => out.push_str(&format!("    class s{} task\n", s.id)),
                (_, StepKind::Phase) => {}
            }
        }
        out.push_str("  end\n");
    }
    for e in &g.edges {
        match e {
            Edge::Step(a, b) => out.push_str(&format!("  s{b} --> s{a}\n")),
            Edge::IntoSync(s, u) => out.push_str(&format!("  s{s} -.-> sync{u}\n")),
            Edge::FromSync(u, s) => out.push_str(&format!("  sync{u} -.-> s{s}\n")),
        }
    }
    out.push_str("  classDef sync stroke:#c00,color:#c00,stroke-dasharray:4 3\n");
    out.push_str("  classDef task fill:#fff2cc\n");
    out.push_str("  classDef local fill:#eee,stroke-dasharray:4 3\n");
    out
}
