//! The driver hands the machine every line a host's session printed before the session's
//! end, even when the session prints its last lines and ends at once (one poll of its
//! task): a step that failed is told by name, never as "the script ended with status 1".

use ship_core::{
    ApplyOptions, ArtifactInfo, BoxFuture, Driver, Input, PlanInput, RunOutput, Transport,
    TransportError,
};

/// A transport whose every conversation reads the nonce, then at once says that step
/// `fails` started and ended with status 1, and ends with status 1: no await between.
struct AtOnce {
    fails: usize,
}

impl Transport for AtOnce {
    fn connect<'a>(&'a self, _host: &'a str) -> BoxFuture<'a, Result<(), TransportError>> {
        Box::pin(async { Ok(()) })
    }

    fn converse<'a>(
        &'a self,
        _host: &'a str,
        _script: &'a str,
        mut input: tokio::sync::mpsc::UnboundedReceiver<Input>,
        lines: tokio::sync::mpsc::UnboundedSender<String>,
    ) -> BoxFuture<'a, Result<RunOutput, TransportError>> {
        Box::pin(async move {
            let failed = RunOutput {
                status: Some(1),
                stdout: String::new(),
                stderr: "boom".to_owned(),
            };
            let nonce = loop {
                match input.recv().await {
                    Some(Input::Line(l)) => break l.split(' ').next().unwrap_or("").to_owned(),
                    Some(_) => continue,
                    None => return Ok(failed),
                }
            };
            let id = self.fails;
            let _ = lines.send(format!("{nonce} start {id} lock"));
            let _ = lines.send(format!("{nonce} end {id} 1"));
            Ok(failed)
        })
    }
}

#[test]
fn a_sessions_lines_reach_the_machine_before_its_end() {
    let layout = ship_layouts::layout_for("timestamp").expect("registered");
    let stage = ship_core::stage::example();
    let plan = ship_core::plan(&PlanInput {
        stage: &stage,
        layout,
        release: "20261101000001".to_owned(),
        artifact: ArtifactInfo {
            source: "dir dist".to_owned(),
            revision: None,
            digest: "a".repeat(64),
            bytes: 1000,
            entries: 1,
            commands: vec![],
            promoted_from: None,
            uncommitted: Vec::new(),
        },
        config_digest: "0".repeat(64),
        extra_tasks: vec![],
        overrides: vec![],
    })
    .expect("the example's plan");
    let lock = plan
        .steps
        .iter()
        .find(|s| s.name == "lock")
        .expect("a lock step")
        .id;
    let remote = AtOnce { fails: lock };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for _ in 0..20 {
        let outcome = rt.block_on(
            Driver {
                plan: &plan,
                layout,
                remote: &remote,
                local: &remote,
                options: ApplyOptions {
                    deployer: "tester@here".to_owned(),
                    started_at: "2026-11-01T00:00:01Z".to_owned(),
                    artifact: std::path::PathBuf::from("/nonexistent.tar.zst"),
                    segment_timeout: std::time::Duration::from_secs(5),
                    live: false,
                    env: None,
                    artifact_url: None,
                },
                events: &|_| {},
                stop: None,
            }
            .run(),
        );
        let failure = outcome.failure.expect("the lock step failed");
        assert!(
            failure.message.starts_with("step `lock` failed (exit 1)"),
            "{failure:?}"
        );
    }
}
