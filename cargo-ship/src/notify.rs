//! Webhook notifications: a JSON summary POSTed when a deploy, rollback or promote ends.
//! A failure to notify is a warning for the caller to print, never a failed command.

use crate::{CliError, Context};
use ship_core::Notify;
use ship_core::Stage;
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
    // Slack's and Mattermost's incoming webhooks take `text` (and ignore the rest).
    summary["text"] = serde_json::Value::from(text(&summary));
    if let Err(e) = send(notify, &summary) {
        let _ = writeln!(cx.stderr, "warning: {e}");
    }
}

/// One line a person reads in a chat channel: who did what to which stage, and how it ended.
fn text(summary: &serde_json::Value) -> String {
    let field = |k: &str| summary[k].as_str().unwrap_or("?");
    let (action, app, stage, who) = (field("action"), field("app"), field("stage"), field("who"));
    let release = summary["release"]
        .as_str()
        .map(|r| format!(" release {r}"))
        .unwrap_or_default();
    let hosts = summary["hosts"].as_array().map_or(String::new(), |h| {
        format!(", {} host{}", h.len(), if h.len() == 1 { "" } else { "s" })
    });
    let secs = summary["duration_ms"].as_u64().unwrap_or(0) as f64 / 1000.0;
    let what = format!("{action} of {app}{release} to {stage} by {who}");
    match field("result") {
        "ok" => format!("cargo ship: {what} succeeded ({secs:.1} s{hosts})"),
        result => {
            let why = summary["message"]
                .as_str()
                .and_then(|m| m.lines().next())
                .map(|m| format!(": {m}"))
                .unwrap_or_default();
            format!("cargo ship: {what} {result}{why} ({secs:.1} s{hosts})")
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_text_says_who_did_what_and_how_it_ended() {
        let ok = serde_json::json!({"action": "deploy", "app": "shop", "stage": "production",
            "who": "ana@laptop", "result": "ok", "release": "20261125120000",
            "duration_ms": 4200, "hosts": [{}, {}]});
        assert_eq!(
            super::text(&ok),
            "cargo ship: deploy of shop release 20261125120000 to production by ana@laptop succeeded (4.2 s, 2 hosts)"
        );
        let failed = serde_json::json!({"action": "rollback", "app": "shop", "stage": "staging",
            "who": "ci@runner", "result": "failed", "message": "h2 is locked\nmore", "duration_ms": 300});
        assert_eq!(
            super::text(&failed),
            "cargo ship: rollback of shop to staging by ci@runner failed: h2 is locked (0.3 s)"
        );
    }
}
