//! The plan as people read it: a deterministic text rendering.

use crate::plan::{Placement, Plan, Step};
use std::collections::{HashMap, HashSet};
use std::fmt::Write;

/// How much to show.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TextOptions {
    /// Also print every host's exact scripts.
    pub verbose: bool,
}

fn hosts_column(plan: &Plan, step: &Step) -> String {
    match step.placement {
        Placement::Local => "local".to_owned(),
        Placement::Once => format!("once: {}", step.hosts.join(", ")),
        Placement::Hosts if step.hosts.len() == plan.hosts.len() => {
            if plan.hosts.len() == 1 {
                step.hosts[0].clone()
            } else if plan.hosts.len() == 2 {
                "both hosts".to_owned()
            } else {
                format!("all {} hosts", plan.hosts.len())
            }
        }
        Placement::Hosts if step.hosts.len() <= 3 => step.hosts.join(", "),
        Placement::Hosts => {
            // Many hosts: name the roles whose hosts they are, when they are exactly that.
            // (A set: a step of 10,000 hosts is looked up 10,000 times.)
            let on: HashSet<&str> = step.hosts.iter().map(String::as_str).collect();
            let mut roles: Vec<&String> = plan
                .hosts
                .iter()
                .filter(|h| on.contains(h.name.as_str()))
                .flat_map(|h| &h.roles)
                .collect();
            roles.sort();
            roles.dedup();
            let exact = !roles.is_empty()
                && plan.hosts.iter().all(|h| {
                    on.contains(h.name.as_str()) == h.roles.iter().any(|r| roles.contains(&r))
                });
            if exact {
                let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
                format!("{} hosts: {}", step.hosts.len(), names.join(", "))
            } else {
                format!("{} hosts", step.hosts.len())
            }
        }
    }
}

/// The header's host list: every host with its roles, or for many hosts one line per group
/// of hosts with the same roles (`web ×150: web001 … web150`).
fn host_list(plan: &Plan) -> String {
    if plan.hosts.len() <= 12 {
        return plan
            .hosts
            .iter()
            .map(|h| {
                if h.roles.is_empty() {
                    h.name.clone()
                } else {
                    format!("{} [{}]", h.name, h.roles.join(", "))
                }
            })
            .collect::<Vec<_>>()
            .join(", ");
    }
    // In order of first appearance; the index finds a host's group at once.
    let mut groups: Vec<(String, Vec<&str>)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for h in &plan.hosts {
        let key = if h.roles.is_empty() {
            "no role".to_owned()
        } else {
            h.roles.join("+")
        };
        match index.get(&key) {
            Some(&i) => groups[i].1.push(&h.name),
            None => {
                index.insert(key.clone(), groups.len());
                groups.push((key, vec![&h.name]));
            }
        }
    }
    groups
        .iter()
        .map(|(key, names)| match names.as_slice() {
            [one] => format!("{key} ×1: {one}"),
            [a, b] => format!("{key} ×2: {a}, {b}"),
            [first, .., last] => format!("{key} ×{}: {first} … {last}", names.len()),
            [] => String::new(),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// ` (uncommitted changes in 2 files not deployed: a.py, b.py)`, naming at most 5 files;
/// nothing when every change was committed.
///
/// ```
/// let files = ["a.py".to_owned(), "b.py".to_owned()];
/// assert_eq!(
///     ship_core::render::uncommitted_note(&files),
///     " (uncommitted changes in 2 files not deployed: a.py, b.py)"
/// );
/// assert_eq!(ship_core::render::uncommitted_note(&[]), "");
/// ```
pub fn uncommitted_note(files: &[String]) -> String {
    const NAMED: usize = 5;
    match files {
        [] => String::new(),
        [one] => format!(" (uncommitted changes in 1 file not deployed: {one})"),
        _ => {
            let mut names = files[..files.len().min(NAMED)].join(", ");
            if files.len() > NAMED {
                names.push_str(&format!(", … {} more", files.len() - NAMED));
            }
            format!(
                " (uncommitted changes in {} files not deployed: {names})",
                files.len()
            )
        }
    }
}

/// Renders `plan` as text. The same plan gives the same bytes.
pub fn text(plan: &Plan, options: TextOptions) -> String {
    let mut s = String::new();
    let a = &plan.artifact;
    let _ = writeln!(s, "Plan: deploy {} to {}", plan.app, plan.stage);
    let _ = writeln!(
        s,
        "  release    {} → {} ({} layout, {})",
        plan.release,
        plan.release_dir,
        plan.layout.name(),
        if plan.atomic_switch {
            "atomic switch"
        } else {
            "NOT atomic: updated in place"
        }
    );
    let _ = writeln!(s, "  deploy_to  {}", plan.deploy_to);
    let revision = a
        .revision
        .as_deref()
        .map(|r| format!(" at {}", &r[..r.len().min(12)]))
        .unwrap_or_default();
    let _ = writeln!(
        s,
        "  artifact   {}{}{} → sha256 {}",
        a.source,
        revision,
        uncommitted_note(&a.uncommitted),
        a.digest
    );
    if let Some(object) = &plan.artifact_store {
        let _ = writeln!(
            s,
            "  store      {object}: uploaded once; hosts with zstd that lack it download it (presigned URL, sha256 checked)"
        );
    }
    if let Some(r) = &plan.rolling {
        let _ = writeln!(
            s,
            "  rolling    {} batch{}, each all or nothing; stop after {} failed batch{}:",
            r.batches.len(),
            if r.batches.len() == 1 { "" } else { "es" },
            r.max_fail,
            if r.max_fail == 1 { "" } else { "es" }
        );
        let n = r.batches.len();
        for (i, b) in r.batches.iter().enumerate() {
            if n > 10 && (5..n - 2).contains(&i) {
                if i == 5 {
                    let _ = writeln!(s, "             … {} more batches …", n - 7);
                }
                continue;
            }
            let names = if b.len() > 8 {
                format!("{} … {} ({} hosts)", b[0], b[b.len() - 1], b.len())
            } else {
                b.join(", ")
            };
            let _ = writeln!(s, "             {}. {names}", i + 1);
        }
    }
    if let Some(p) = &a.promoted_from {
        let _ = writeln!(
            s,
            "  promotes   release {} of {}: the artifact live there, not rebuilt",
            p.release, p.stage
        );
    }
    let _ = writeln!(
        s,
        "  hosts      {} ({} at a time): {}",
        plan.hosts.len(),
        plan.parallel,
        host_list(plan)
    );
    if let Some(sel) = &plan.selection {
        let left: Vec<String> = sel
            .left_out
            .iter()
            .map(|(h, why)| format!("{h} ({why})"))
            .collect();
        let _ = writeln!(
            s,
            "  selected   {} of {} hosts by {}; left out: {}",
            plan.hosts.len(),
            plan.hosts.len() + sel.left_out.len(),
            sel.flags,
            left.join(", ")
        );
    }
    if let Some(env) = &plan.env {
        let names: Vec<String> = env
            .names
            .iter()
            .cloned()
            .chain(env.secrets.iter().map(|n| format!("{n} (secret)")))
            .collect();
        let _ = writeln!(
            s,
            "  env        shared/.env (0600), linked as .env: {}; sha256 {}",
            names.join(", "),
            env.digest
        );
    }
    for skipped in &plan.skipped {
        let _ = writeln!(s, "  skipped    {skipped}");
    }
    let _ = writeln!(s, "  keep       {} releases", plan.keep_releases);
    s.push('\n');

    let name_width = plan.steps.iter().map(|st| st.name.len()).max().unwrap_or(0);
    let host_cols: Vec<String> = plan.steps.iter().map(|st| hosts_column(plan, st)).collect();
    let host_width = host_cols
        .iter()
        .map(|c| c.chars().count())
        .max()
        .unwrap_or(0);
    for (step, hosts) in plan.steps.iter().zip(&host_cols) {
        if step.sync_point {
            let _ = writeln!(
                s,
                "  ── sync point: every host finishes the steps above before any goes on ──"
            );
        }
        let _ = writeln!(
            s,
            "  {:>3}  {:<nw$}  {:<hw$}  {}",
            step.id,
            step.name,
            hosts,
            step.summary,
            nw = name_width,
            hw = host_width
        );
    }
    let parts = plan
        .hosts
        .iter()
        .map(|h| h.scripts.len())
        .max()
        .unwrap_or(0);
    let _ = writeln!(
        s,
        "\nOne SSH connection and one session per host, running {} script{}; each starts when every host is ready for it.",
        parts,
        if parts == 1 { "" } else { "s" }
    );

    if options.verbose {
        let _ = writeln!(
            s,
            "\nSet when the plan is applied: {}",
            plan.apply_time
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        );
        for host in &plan.hosts {
            for (n, script) in host.scripts.iter().enumerate() {
                let _ = writeln!(
                    s,
                    "\n──── {} · script {} of {} ────",
                    host.name,
                    n + 1,
                    host.scripts.len()
                );
                s.push_str(&script.script);
            }
        }
        let local: Vec<&Step> = plan
            .steps
            .iter()
            .filter(|st| st.placement == Placement::Local && st.kind == crate::plan::StepKind::Task)
            .collect();
        for step in local {
            let _ = writeln!(s, "\n──── local · step {} {} ────", step.id, step.name);
            let _ = writeln!(s, "{}", step.command);
        }
    }
    s
}
