//! `cargo ship promote <from> <to>`: deploy to `to` the very artifact live on `from` — the
//! same sha256, not rebuilt — then run it like `apply`.

use super::apply::{Execution, execute};
use super::plan::save;
use super::{on_hosts, overrides, read_states, runtime, ssh};
use crate::cli::{Format, PromoteArgs, Ship};
use crate::{CliError, Context};
use ship_core::stage::check_release_id;
use ship_core::{ArtifactInfo, PlanInput, Promotion};
use ship_core::{TextOptions, render::text};
use std::collections::BTreeMap;
use std::io::Write;

/// What is live on the `from` stage: the same on every host, or an error naming the hosts.
struct Live {
    id: String,
    digest: String,
    revision: Option<String>,
    host: String,
}

pub(crate) fn run(ship: &Ship, args: &PromoteArgs, cx: &mut Context) -> Result<(), CliError> {
    if args.from == args.to {
        return Err(CliError::Usage(format!(
            "promote {0} {0}: name two stages, e.g. `cargo ship promote staging production`",
            args.from
        )));
    }
    let set = overrides(&args.remote.set, None)?;
    let (project, from) = super::resolve(ship, &args.from, set.clone(), cx)?;
    let (_, to, adapters) = super::resolve_with_adapters(ship, &args.to, set, cx)?;

    // 1. What is live on every host of `from`.
    let transport = ssh(&project, &from, &args.remote);
    let rt = runtime()?;
    let hosts: Vec<String> = from.hosts.iter().map(|h| h.name.clone()).collect();
    let mut live: BTreeMap<String, Live> = BTreeMap::new();
    let mut problems = Vec::new();
    for (host, observed) in rt.block_on(read_states(&transport, &from, &hosts)) {
        match observed.map(|o| o.state.live_record().cloned()) {
            Err(e) => problems.push(format!("{host}: {e}")),
            Ok(None) => problems.push(format!("{host}: no release is live")),
            Ok(Some(r)) => {
                live.insert(
                    host.clone(),
                    Live {
                        id: r.id,
                        digest: r.digest,
                        revision: r.revision,
                        host,
                    },
                );
            }
        }
    }
    let digests: std::collections::BTreeSet<&str> =
        live.values().map(|l| l.digest.as_str()).collect();
    if problems.is_empty() && digests.len() > 1 {
        let each: Vec<String> = live
            .iter()
            .map(|(h, l)| format!("{h}: {} ({})", l.id, &l.digest[..12]))
            .collect();
        problems.push(format!(
            "the hosts of {} do not have the same release live ({}); deploy or roll back {} first",
            from.name,
            each.join(", "),
            from.name
        ));
    }
    if !problems.is_empty() || live.is_empty() {
        rt.block_on(transport.close());
        return Err(CliError::Remote(format!(
            "cannot promote from {}: {}",
            from.name,
            if problems.is_empty() {
                "the stage has no hosts".to_owned()
            } else {
                problems.join("; ")
            }
        )));
    }
    let source = live.into_values().next().expect("one at least");

    // 2. The artifact: cached here, or fetched from a host of `from`; checked either way.
    let cache = project.ship_dir.join("artifacts");
    let path = ship_core::cache::artifact(&cache, &source.digest);
    let fetched = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(_) => {
            // Either compression: hosts without zstd keep a `.tar.gz`.
            let script = format!(
                "set -eu\na={}/.ship/artifacts/{}\nif [ -s \"$a.tar.zst\" ]; then base64 < \"$a.tar.zst\"; else base64 < \"$a.tar.gz\"; fi",
                ship_core::shell::quote(&from.deploy_to),
                source.digest
            );
            let fetched = rt
                .block_on(on_hosts(
                    &transport,
                    std::slice::from_ref(&source.host),
                    1,
                    |_| script.clone(),
                ))
                .pop()
                .expect("one host, one result")
                .1;
            let out = match fetched {
                Ok(out) if out.status == Some(0) => out,
                Ok(out) => {
                    rt.block_on(transport.close());
                    return Err(CliError::Remote(format!(
                        "the artifact {} of release {} is not cached here and {} could not send it: {}",
                        &source.digest[..12],
                        source.id,
                        source.host,
                        out.stderr.trim()
                    )));
                }
                Err(e) => {
                    rt.block_on(transport.close());
                    return Err(CliError::Remote(format!("{}: {e}", source.host)));
                }
            };
            use base64::Engine;
            let text: String = out.stdout.split_whitespace().collect();
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|e| {
                    CliError::Remote(format!("{} sent the artifact damaged ({e})", source.host))
                })?
        }
    };
    rt.block_on(transport.close());
    let opened = ship_core::artifact::open(&fetched)?;
    if opened.digest != source.digest {
        return Err(CliError::Remote(format!(
            "the artifact of release {} should have sha256 {}, and what was found has {}; nothing was deployed",
            source.id, source.digest, opened.digest
        )));
    }
    let (_, bytes) = ship_core::artifact::store(&cache, &source.digest, &opened.tar)?;

    // 3. The plan for `to`, with this artifact and the adapters' steps keyed from its files.
    let layout = super::layout(&to.layout)?;
    // The source's id, unless the layout names releases otherwise (the timestamp layout:
    // by the time, when the source's id is not one).
    let release = match &args.release_id {
        Some(id) => id.clone(),
        None if layout.check_release_id(&source.id).is_ok() => source.id.clone(),
        None => jiff::Timestamp::now().strftime("%Y%m%d%H%M%S").to_string(),
    };
    check_release_id(&release).map_err(|m| CliError::Usage(format!("release id: {m}")))?;
    let extra_tasks = crate::adapters::tasks_for_artifact(&adapters, &opened.files)?;
    let plan = ship_core::plan(&PlanInput {
        stage: &to,
        layout,
        release,
        artifact: ArtifactInfo {
            source: format!("promoted from {}", from.name),
            revision: source.revision.clone(),
            digest: source.digest.clone(),
            bytes,
            entries: opened.entries,
            commands: Vec::new(),
            promoted_from: Some(Promotion {
                stage: from.name.clone(),
                release: source.id.clone(),
            }),
            uncommitted: Vec::new(),
        },
        config_digest: ship_core::planner::config_digest(&to),
        extra_tasks,
        overrides: args.remote.set.clone(),
    })?;
    // The target stage's own environment and secrets, as a deploy to it writes them.
    let mut plan = plan;
    let env = crate::secrets::render(&to, &project.root, cx)?;
    if let Some(env) = &env {
        plan.env = Some(env.plan.clone());
        plan = plan.sealed();
    }
    let saved = save(&project, &plan)?;
    if args.format == Format::Text {
        let _ = cx.stderr.write_all(
            text(
                &plan,
                TextOptions {
                    verbose: args.verbose,
                },
            )
            .as_bytes(),
        );
        let _ = writeln!(cx.stderr, "saved: {}", project.show(&saved));
    }
    if args.plan_only {
        if args.format == Format::Json {
            let _ = cx.stdout.write_all(plan.to_json().as_bytes());
        }
        return Ok(());
    }
    execute(
        &plan,
        &project,
        &to,
        &Execution {
            verbose: args.verbose,
            format: args.format,
            remote: &args.remote,
            action: "promote",
            progress: cx.terminal && cx.verbosity >= 0 && args.format == Format::Text,
            timings: false,
            env: env.map(|e| e.content),
        },
        cx,
    )
}
