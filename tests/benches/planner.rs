//! The planner at fleet scale: 1,000 hosts × 30 tasks (target: under 200 ms), and how its
//! time grows with hosts. Run with `cargo bench -p ship-tests --bench planner`.

use ship_core::{ArtifactInfo, PlanInput, Stage};
use ship_core::{LayoutName, SourceConfig, TaskConfig};
use std::collections::BTreeMap;
use std::time::Duration;

/// Counts allocations, so the run also shows that memory grows linearly with hosts.
#[global_allocator]
static ALLOC: divan::AllocProfiler = divan::AllocProfiler::system();

fn main() {
    divan::main();
}

/// A stage of `hosts` hosts in three roles, with `tasks` tasks spread over the phases.
pub fn stage(hosts: usize, tasks: usize) -> Stage {
    let roles = ["web", "worker", "cron"];
    let mut role_hosts: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut list = Vec::new();
    for i in 0..hosts {
        let role = roles[i % 3];
        let name = format!("{role}{i:04}.example.com");
        role_hosts
            .entry(role.to_owned())
            .or_default()
            .push(name.clone());
        list.push(ship_core::Host {
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
    let task_map = (0..tasks)
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
                    once: if i % 7 == 0 {
                        ship_core::Once::Deploy
                    } else {
                        ship_core::Once::No
                    },
                    ..TaskConfig::default()
                },
            )
        })
        .collect();
    Stage {
        name: "production".to_owned(),
        app: "bench".to_owned(),
        deploy_to: "/srv/app".to_owned(),
        layout: LayoutName::from("timestamp"),
        keep_releases: 5,
        delta: false,
        parallel: 10,
        artifact_store: None,
        source: SourceConfig::Dir("dist".to_owned()),
        build: vec![],
        include: vec![],
        cargo: Default::default(),
        version: None,
        linked_files: vec!["config/settings.py".to_owned()],
        linked_dirs: vec!["log".to_owned()],
        hosts: list,
        roles: role_hosts,
        tasks: task_map,
        skipped: Vec::new(),
        health: None,
        ssh_config: None,
        connect_timeout: Duration::from_secs(10),
        command_timeout: Duration::from_secs(1800),
        keep_connections: None,
        adapters: Default::default(),
        require_pushed: None,
        rolling: None,
        max_fail: 1,
        tag: None,
        notify: None,
        maintenance: None,
        env: BTreeMap::new(),
        secrets: BTreeMap::new(),
    }
}

fn plan(stage: &Stage) -> ship_core::Plan {
    let layout = ship_layouts::layout_for(stage.layout.name()).expect("a registered layout");
    ship_core::plan(&PlanInput {
        stage,
        layout,
        release: "20261122235800".to_owned(),
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

#[divan::bench(args = [10, 100, 1000])]
fn plan_hosts_x_30_tasks(bencher: divan::Bencher<'_, '_>, hosts: usize) {
    let stage = stage(hosts, 30);
    bencher.bench_local(|| plan(divan::black_box(&stage)));
}
