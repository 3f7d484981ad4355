//! Webhook notifications: a JSON summary POSTed when a deploy, rollback or promote ends.
//! A failure to notify is a warning for the caller to print, never a failed command.

use ship_core::stage::Notify;

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
