//! The release workflow's git: refusing commits that were not pushed, tagging deploys.

use crate::CliError;
use std::path::Path;
use std::process::Command;

fn git(root: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(root)
        .output()
        .map_err(|e| format!("`git {}`: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(format!(
            "`git {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// `origin/main` for `pushed_to`, reading `@{upstream}` as the checked-out branch's upstream.
fn tracking(root: &Path, stage: &str, pushed_to: &str) -> Result<String, CliError> {
    if pushed_to != "@{upstream}" {
        return Ok(pushed_to.to_owned());
    }
    git(
        root,
        &[
            "rev-parse",
            "--abbrev-ref",
            "--symbolic-full-name",
            "@{upstream}",
        ],
    )
    .map_err(|_| {
        CliError::Usage(format!(
            "stage `{stage}` deploys only pushed commits, and the checked-out branch has no \
             upstream to check against; set `pushed_to = \"origin/main\"` in [{stage}] \
             (or push with `git push -u`)"
        ))
    })
}

/// Refuses `commit` unless it is on `pushed_to` (fetched first, so the answer is today's).
pub(crate) fn check_pushed(
    root: &Path,
    stage: &str,
    commit: &str,
    pushed_to: &str,
) -> Result<(), CliError> {
    let tracking = tracking(root, stage, pushed_to)?;
    let (remote, branch) = tracking.split_once('/').ok_or_else(|| {
        CliError::Usage(format!(
            "pushed_to = {tracking:?}: expected <remote>/<branch>, such as \"origin/main\""
        ))
    })?;
    let refspec = format!("+refs/heads/{branch}:refs/remotes/{remote}/{branch}");
    git(root, &["fetch", "--quiet", remote, &refspec]).map_err(|e| {
        CliError::Remote(format!(
            "stage `{stage}` deploys only pushed commits, and {remote} could not be asked: {e}"
        ))
    })?;
    let short = &commit[..commit.len().min(12)];
    match Command::new("git")
        .args(["merge-base", "--is-ancestor", commit, &tracking])
        .current_dir(root)
        .status()
    {
        Ok(s) if s.success() => Ok(()),
        Ok(s) if s.code() == Some(1) => Err(CliError::Usage(format!(
            "commit {short} is not on {tracking}: stage `{stage}` deploys only what others can \
             see. Push it (`git push {remote} HEAD:{branch}`) or deploy a pushed commit"
        ))),
        _ => Err(CliError::Usage(format!(
            "cannot tell whether commit {short} is on {tracking} (`git merge-base` failed)"
        ))),
    }
}

/// The tag name of a template: `{app}`, `{stage}`, `{id}` replaced.
pub(crate) fn tag_name(template: &str, app: &str, stage: &str, id: &str) -> String {
    template
        .replace("{app}", app)
        .replace("{stage}", stage)
        .replace("{id}", id)
}

/// Makes the annotated tag `name` on `commit` and pushes it to the remote of `pushed_to` (or
/// the upstream's remote, or `origin`).
pub(crate) fn tag_and_push(
    root: &Path,
    name: &str,
    commit: &str,
    message: &str,
    pushed_to: Option<&str>,
) -> Result<String, String> {
    let tracking = match pushed_to {
        Some(p) if p != "@{upstream}" => Some(p.to_owned()),
        _ => git(
            root,
            &[
                "rev-parse",
                "--abbrev-ref",
                "--symbolic-full-name",
                "@{upstream}",
            ],
        )
        .ok(),
    };
    let remote = tracking
        .as_deref()
        .and_then(|t| t.split_once('/'))
        .map_or("origin", |(r, _)| r)
        .to_owned();
    git(root, &["tag", "-a", name, "-m", message, commit])?;
    git(
        root,
        &["push", "--quiet", &remote, &format!("refs/tags/{name}")],
    )?;
    Ok(remote)
}

/// The project's files (paths relative to `root`) whose changes are not committed:
/// modified, staged, deleted, renamed or untracked and not ignored, as `git status` reports
/// them, without what cargo ship itself keeps in `ship_dir`. A `git` source deploys the
/// commit, so these are left out of the artifact, and the plan says which.
pub(crate) fn uncommitted(root: &Path, ship_dir: &Path) -> Result<Vec<String>, CliError> {
    let prefix = git(root, &["rev-parse", "--show-prefix"]).map_err(CliError::Build)?;
    let out = Command::new("git")
        .args([
            "-c",
            "core.quotepath=off",
            "status",
            "--porcelain=v1",
            "-z",
            "--untracked-files=all",
            "--",
            ".",
        ])
        .current_dir(root)
        .output()
        .map_err(|e| CliError::Build(format!("`git status`: {e}")))?;
    if !out.status.success() {
        return Err(CliError::Build(format!(
            "`git status` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let ship = ship_dir
        .strip_prefix(root)
        .ok()
        .map(|p| format!("{}/", p.display()));
    let text = String::from_utf8_lossy(&out.stdout);
    let mut records = text.split('\0');
    let mut files = Vec::new();
    while let Some(record) = records.next() {
        if record.len() < 4 {
            continue;
        }
        let (status, path) = record.split_at(3);
        if status.starts_with('R') || status.starts_with('C') {
            records.next(); // the path it was renamed or copied from
        }
        let path = path.strip_prefix(prefix.as_str()).unwrap_or(path);
        if ship.as_deref().is_some_and(|s| path.starts_with(s)) {
            continue;
        }
        files.push(path.to_owned());
    }
    files.sort();
    files.dedup();
    Ok(files)
}
