//! Fetching an `archive` source given as a URL (`source = { archive = "https://…",
//! sha256 = "…" }`) into `target/ship/downloads/`, when a plan is made: ship-core packs it
//! from there. With a sha256, a download that already has it is not fetched again, and one
//! that does not is refused; without one, the URL is fetched again at every plan (what it
//! serves may have changed), and the plan pins what it got by the artifact's digest.

use crate::CliError;
use crate::project::Project;
use ship_core::SourceConfig;
use ship_core::artifact::{download_path, is_url};
use std::io::Read;

/// How long a fetch may take.
const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

/// Fetches the stage's archive, if it is a URL; the error says why it could not.
pub(crate) fn archive(project: &Project, source: &SourceConfig) -> Result<(), CliError> {
    let SourceConfig::Archive(url, sha256) = source else {
        return Ok(());
    };
    if !is_url(url) {
        return Ok(());
    }
    let path = download_path(&project.ship_dir, url);
    if let (Some(expected), Ok(bytes)) = (sha256, std::fs::read(&path))
        && &ship_core::sha256_hex(&bytes) == expected
    {
        return Ok(());
    }
    let shown = ship_core::artifact::without_credentials(url);
    let failed = |reason: String| CliError::Build(format!("source.archive {shown}: {reason}"));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(TIMEOUT))
        .http_status_as_error(true)
        .build()
        .into();
    let response = agent
        .get(url)
        .header(
            "User-Agent",
            concat!("cargo-ship/", env!("CARGO_PKG_VERSION")),
        )
        .call()
        .map_err(|e| failed(format!("cannot fetch it: {e}")))?;
    let mut bytes = Vec::new();
    response
        .into_body()
        .into_reader()
        .read_to_end(&mut bytes)
        .map_err(|e| failed(format!("cannot read it: {e}")))?;
    let got = ship_core::sha256_hex(&bytes);
    if let Some(expected) = sha256
        && &got != expected
    {
        return Err(failed(format!(
            "its sha256 is {got}, not the {expected} that `source.sha256` says: nothing was planned or deployed"
        )));
    }
    let dir = path.parent().expect("a parent");
    let part = path.with_extension("part");
    std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(&part, &bytes))
        .and_then(|()| std::fs::rename(&part, &path))
        .map_err(|e| failed(format!("cannot keep it in {}: {e}", dir.display())))?;
    Ok(())
}
