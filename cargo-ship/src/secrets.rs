//! The app's environment: `[env]` values and `[secrets]` read from where a team keeps them
//! (this machine's environment, a command such as `pass show shop/db`, a dotenv file or a
//! file outside git), rendered as the `.env` file each host gets in `shared/` (mode 0600).
//! The values go to the hosts on the deploy's own connection when it is applied; the plan
//! holds only the names and a digest, and no error message ever quotes a value.

use crate::{CliError, Context};
use ship_core::EnvPlan;
use ship_core::SecretSource;
use ship_core::Stage;
use std::path::Path;

/// The rendered `.env` file and what the plan says of it.
pub(crate) struct EnvFile {
    /// `NAME="value"` lines, values escaped as dotenv readers expect.
    pub(crate) content: String,
    /// Names and digest, for the plan.
    pub(crate) plan: EnvPlan,
}

/// The stage's `.env` file, or `None` when it has no `[env]` and no `[secrets]`.
pub(crate) fn render(
    stage: &Stage,
    root: &Path,
    cx: &Context,
) -> Result<Option<EnvFile>, CliError> {
    if stage.env.is_empty() && stage.secrets.is_empty() {
        return Ok(None);
    }
    let mut values: Vec<(String, String)> = stage
        .env
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (name, source) in &stage.secrets {
        values.push((name.clone(), read(name, source, root, cx)?));
    }
    values.sort();
    let mut content = String::new();
    for (name, value) in &values {
        content.push_str(name);
        content.push('=');
        content.push_str(&dotenv_quoted(value));
        content.push('\n');
    }
    let digest = ship_core::sha256_hex(format!("cargo-ship env v1\n{content}").as_bytes());
    Ok(Some(EnvFile {
        plan: EnvPlan {
            names: stage.env.keys().cloned().collect(),
            secrets: stage.secrets.keys().cloned().collect(),
            digest: digest[..16].to_owned(),
        },
        content,
    }))
}

/// A value as `.env` readers agree on it: in single quotes (taken as written by `sh`,
/// python-dotenv, node's dotenv and systemd: no `$` expansion, no escapes) unless it holds a
/// `'` or a newline; then in double quotes with `\\`, `"`, `$` and `` ` `` escaped and
/// newlines as they are (as `sh` reads them; dotenv readers differ on escapes there).
fn dotenv_quoted(value: &str) -> String {
    if !value.contains(['\'', '\n']) {
        return format!("'{value}'");
    }
    let mut out = String::from("\"");
    for c in value.chars() {
        match c {
            '\\' | '"' | '$' | '`' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// One secret's value. Errors name the secret and the source, never a value.
fn read(name: &str, source: &SecretSource, root: &Path, cx: &Context) -> Result<String, CliError> {
    let fail = |why: String| CliError::Build(format!("secrets.{name}: {why}"));
    let path = |p: &str| -> std::path::PathBuf {
        match p.strip_prefix("~/") {
            Some(rest) => Path::new(cx.var("HOME").unwrap_or("/")).join(rest),
            None => root.join(p),
        }
    };
    let trimmed = |s: String| s.strip_suffix('\n').map(str::to_owned).unwrap_or(s);
    match source {
        SecretSource::Env(var) => cx
            .var(var)
            .map(str::to_owned)
            .ok_or_else(|| fail(format!("the environment variable {var} is not set here"))),
        SecretSource::File(p) => std::fs::read_to_string(path(p))
            .map(trimmed)
            .map_err(|e| fail(format!("cannot read {}: {e}", path(p).display()))),
        SecretSource::Command(command) => {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(command)
                .current_dir(root)
                .env_clear()
                .envs(cx.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .stdin(std::process::Stdio::null())
                .output()
                .map_err(|e| fail(format!("cannot run `{command}`: {e}")))?;
            if !out.status.success() {
                // Not its output: a tool may print the secret on standard error too.
                return Err(fail(format!(
                    "`{command}` failed ({}); run it here to see why (its output is not shown: \
                     it may hold the secret)",
                    out.status
                )));
            }
            let value = String::from_utf8(out.stdout)
                .map(trimmed)
                .map_err(|_| fail(format!("`{command}` printed something that is not UTF-8")))?;
            if value.is_empty() {
                return Err(fail(format!("`{command}` printed nothing")));
            }
            Ok(value)
        }
        SecretSource::Dotenv(p) => {
            let text = std::fs::read_to_string(path(p))
                .map_err(|e| fail(format!("cannot read {}: {e}", path(p).display())))?;
            dotenv_value(&text, name)
                .ok_or_else(|| fail(format!("{} has no line `{name}=…`", path(p).display())))
        }
    }
}

/// The value of `name` in a dotenv file: `NAME=value`, `export NAME=value`, quoted or not,
/// `#` comments.
fn dotenv_value(text: &str, name: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let line = line.trim();
        let line = line.strip_prefix("export ").unwrap_or(line);
        let (k, v) = line.split_once('=')?;
        if k.trim() != name {
            return None;
        }
        let v = v.trim();
        let unquoted = match (v.chars().next(), v.chars().last()) {
            (Some('"'), Some('"')) if v.len() >= 2 => v[1..v.len() - 1]
                .replace("\\n", "\n")
                .replace("\\\"", "\"")
                .replace("\\\\", "\\"),
            (Some('\''), Some('\'')) if v.len() >= 2 => v[1..v.len() - 1].to_owned(),
            _ => v.split(" #").next().unwrap_or(v).trim().to_owned(),
        };
        Some(unquoted)
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn values_are_quoted_as_sh_and_dotenv_read_them() {
        assert_eq!(super::dotenv_quoted("p@$s \\ \"x\""), "'p@$s \\ \"x\"'");
        assert_eq!(super::dotenv_quoted("it's"), "\"it's\"");
        assert_eq!(super::dotenv_quoted("a$b`c\\\nd"), "\"a\\$b\\`c\\\\\nd\"");
        // What sh makes of them is the value.
        for value in ["p@$s \\ \"x\"", "it's $HOME", "two\nlines `x`"] {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!(
                    "V={}; printf %s \"$V\"",
                    super::dotenv_quoted(value)
                ))
                .output()
                .unwrap();
            assert_eq!(String::from_utf8_lossy(&out.stdout), value);
        }
    }

    #[test]
    fn dotenv_values_as_teams_write_them() {
        let text = "# db\nexport DB_PASSWORD=\"p@ss \\\"w\\\"\"\nTOKEN='abc=def'\nPLAIN=x # note\n";
        assert_eq!(
            super::dotenv_value(text, "DB_PASSWORD").unwrap(),
            "p@ss \"w\""
        );
        assert_eq!(super::dotenv_value(text, "TOKEN").unwrap(), "abc=def");
        assert_eq!(super::dotenv_value(text, "PLAIN").unwrap(), "x");
        assert_eq!(super::dotenv_value(text, "NONE"), None);
    }
}
