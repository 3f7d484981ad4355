//! Webhook notifications: a JSON summary POSTed when a deploy, rollback or promote ends.
//! A failure to notify is a warning for the caller to print, never a failed command.

use crate::{CliError, Context};
use ship_core::Stage;
use ship_core::stage::Notify;
use std::io::Write;

/// POSTs `summary` to the stage's webhook; the error says why it did not arrive.
pub(crate) fn send(notify: &Notify, summary: &serde_json::Value) -> Result<(), String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(notify.timeout))
        .http_status_as_error(true)
        .build()
        .into();
    agent
        .post(&notify.webhook)
        .header("Content-Type", "application/json")
        .header(
            "User-Agent",
            concat!("cargo-ship/", env!("CARGO_PKG_VERSION")),
        )
        .send(summary.to_string().as_bytes())
        .map(|_| ())
        .map_err(|e| format!("could not notify {}: {e}", notify.webhook))
}

/// How a command ended, for notifications: `ok`, `failed` (every host as it was),
/// `unknown` (some host could not be put back), `interrupted`, `refused` (nothing done).
pub(crate) fn result_name(result: &Result<(), CliError>) -> &'static str {
    match result {
        Ok(()) => "ok",
        Err(CliError::DeployFailed(_) | CliError::Remote(_)) => "failed",
        Err(CliError::HostsUnknown(_)) => "unknown",
        Err(CliError::Interrupted { .. }) => "interrupted",
        Err(_) => "refused",
    }
}

/// Tells the stage's webhook, if it has one, that `action` ended with `result`; `details`
/// (an object: `release`, `hosts`, ...) is merged into the summary. A failure to notify is
/// printed as a warning.
pub(crate) fn ended(
    cx: &mut Context,
    stage: &Stage,
    action: &str,
    started: std::time::Instant,
    result: &Result<(), CliError>,
    details: serde_json::Value,
) {
    let Some(notify) = &stage.notify else { return };
    let mut summary = serde_json::json!({
        "action": action,
        "app": stage.app,
        "stage": stage.name,
        "who": crate::who::deployer(cx),
        "result": result_name(result),
        "message": result.as_ref().err().map(ToString::to_string),
        "duration_ms": started.elapsed().as_millis() as u64,
    });
    if let (Some(all), serde_json::Value::Object(more)) = (summary.as_object_mut(), details) {
        all.extend(more);
    }
    if let Err(e) = send(notify, &summary) {
        let _ = writeln!(cx.stderr, "warning: {e}");
    }
}
