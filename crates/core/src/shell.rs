//! Shell quoting: the one function through which every value reaches a remote command.

use std::borrow::Cow;

/// Quotes `value` for a POSIX shell, so that the shell reads it back as exactly one word.
///
/// Every value that cargo ship puts into a command (paths, release ids, host names,
/// linked files, environment values) goes through this function; nothing is
/// interpolated raw. A value holding a NUL byte cannot be passed to a shell at all
/// and is replaced by a quoted marker that makes the command fail loudly instead.
///
/// ```
/// use ship_core::shell::quote;
/// assert_eq!(quote("releases/20261122235800"), "releases/20261122235800");
/// assert_eq!(quote("a b"), "'a b'");
/// assert_eq!(quote("$(rm -rf /)"), "'$(rm -rf /)'");
/// assert_eq!(quote(""), "''");
/// ```
pub fn quote(value: &str) -> Cow<'_, str> {
    if value.is_empty() {
        return Cow::Borrowed("''");
    }
    if value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/._-+=:@,%".contains(&b))
    {
        return Cow::Borrowed(value);
    }
    match shlex::try_quote(value) {
        Ok(quoted) => quoted,
        // NUL cannot travel in a shell word; values are validated before they get here,
        // so this only guards against a bug: the remote command fails instead of truncating.
        Err(_) => Cow::Borrowed("'<value with NUL byte>'\"$(exit 99)\""),
    }
}

/// Quotes every value and joins them with spaces: a command line of words.
///
/// ```
/// use ship_core::shell::join;
/// assert_eq!(join(["ln", "-s", "a b", "c"]), "ln -s 'a b' c");
/// ```
pub fn join<'a>(words: impl IntoIterator<Item = &'a str>) -> String {
    words.into_iter().map(quote).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::quote;
    use std::process::Command;

    /// Round-trips hostile values through a real `sh`: what comes out is what went in.
    #[test]
    fn quoted_values_survive_a_real_shell() {
        let values = [
            "plain",
            "with space",
            "semi;colon",
            "$(touch /tmp/ship-pwned)",
            "`id`",
            "quote's",
            "double\"quote",
            "new\nline",
            "glob*?[a]",
            "-dash",
            "~tilde",
            "back\\slash",
            "!bang",
            "tab\there",
        ];
        for value in values {
            let out = Command::new("sh")
                .arg("-c")
                .arg(format!("printf %s {}", quote(value)))
                .output()
                .expect("sh runs");
            assert_eq!(
                String::from_utf8_lossy(&out.stdout),
                value,
                "value {value:?}"
            );
        }
    }
}
