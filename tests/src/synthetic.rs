//! A synthetic fleet for planning at scale (the planner benchmark, `tests/scale.rs`): one
//! stage of many hosts in three roles with tasks spread over the phases, and its plan.

use ship_core::{ArtifactInfo, Once, Plan, PlanInput, Stage};
use ship_core::{Host, TaskConfig};
use std::collections::BTreeMap;

/// A stage of `hosts` hosts in three roles (web, worker, cron), `parallel` at a time, with
/// `tasks` tasks over the phases: every other one for one role, every seventh `once`.
pub fn stage(hosts: usize, tasks: usize, parallel: usize) -> Stage {
    let roles = ["web", "worker", "cron"];
    let mut role_hosts: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut list = Vec::new();
    for i in 0..hosts {
        let role = roles[i % 3];
        let name = format!("{role}{i:05}.example.com");
        role_hosts
            .entry(role.to_owned())
            .or_default()
            .push(name.clone());
        list.push(Host {
            name,
            roles: vec![role.to_owned()],
            linked_files: vec!["config/settings.py".to_owned()],
            linked_dirs: vec!["log".to_owned()],
            health: None,
            primary: false,
            vars: Default::default(),
            ssh: None,
        });
    }
    let phases = ["link", "install", "switch", "verify"];
    let tasks = (0..tasks)
        .map(|i| {
            (
                format!("task{i:02}"),
                TaskConfig {
                    run: format!("echo task {i} on $SHIP_HOST"),
                    after: Some(phases[i % phases.len()].to_owned()),
                    roles: if i % 2 == 0 {
                        vec![roles[i % 3].to_owned()]
                    } else {
                        vec![]
                    },
                    once: if i % 7 == 0 { Once::Deploy } else { Once::No },
                    ..TaskConfig::default()
                },
            )
        })
        .collect();
    // The core's example stage, with this fleet's hosts, roles and tasks.
    Stage {
        app: "fleet".to_owned(),
        deploy_to: "/srv/app".to_owned(),
        parallel,
        linked_files: vec!["config/settings.py".to_owned()],
        linked_dirs: vec!["log".to_owned()],
        hosts: list,
        roles: role_hosts,
        tasks,
        ..ship_core::stage::example()
    }
}

/// The plan of `stage` for release `release`, with a 1 MiB artifact of 283 entries.
pub fn plan(stage: &Stage, release: &str) -> Plan {
    let layout = ship_layouts::layout_for(stage.layout.name()).expect("a registered layout");
    ship_core::plan(&PlanInput {
        stage,
        layout,
        release: release.to_owned(),
        artifact: ArtifactInfo {
            source: "dir dist".to_owned(),
            revision: None,
            digest: "0".repeat(64),
            bytes: 1 << 20,
            entries: 283,
            commands: vec![],
            promoted_from: None,
            uncommitted: Vec::new(),
        },
        config_digest: "0".repeat(64),
        extra_tasks: vec![],
        overrides: vec![],
    })
    .expect("plans")
}
