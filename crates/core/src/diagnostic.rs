//! Diagnostics as rustc shows them: the message, where (`file:line:column`), the line of
//! the file with a caret under the key or value at fault, and a help (`did you mean …?`)
//! or the valid choices. The one home of that shape: configuration errors
//! ([`crate::ConfigError::diagnostic`]) and the command line's render through it.
//!
//! Rendering is plain text unless asked for color; it never reads the terminal itself.

use std::fmt::Write as _;
use std::ops::Range;

/// A line of a file with the part at fault marked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snippet {
    /// The file, as shown to the user (`Ship.toml`, `[project]/Cargo.toml`).
    pub file: String,
    /// The 1-based line.
    pub line: usize,
    /// The 1-based column (in characters) where the mark starts.
    pub column: usize,
    /// The whole line, without its newline.
    pub source: String,
    /// How many characters are marked (at least 1).
    pub width: usize,
    /// What the mark says (may be empty).
    pub label: String,
}

/// `line` with what a URL in it may carry as a bearer secret — the `user:password@` before
/// its host, its path (a webhook's token is there) and its `?query` — replaced by `*`, one for each character, so a snippet never
/// quotes a credential (an `artifact_store`, `archive` or webhook URL) while its marks stay
/// under the same columns.
pub fn redact_urls(line: &str) -> String {
    let mut out: Vec<char> = line.chars().collect();
    let mut i = 0;
    while let Some(at) = find(&out, i, &['/', '/']).filter(|&k| k > 0 && out[k - 1] == ':') {
        // The URL runs to the first character that cannot be in one as written in TOML.
        let end = (at + 2..out.len())
            .find(|&k| out[k].is_whitespace() || matches!(out[k], '"' | '\'' | ',' | '}' | ']'))
            .unwrap_or(out.len());
        let authority_end = (at + 2..end).find(|&k| out[k] == '/').unwrap_or(end);
        if let Some(userinfo) = (at + 2..authority_end).rev().find(|&k| out[k] == '@') {
            out[at + 2..userinfo].iter_mut().for_each(|c| *c = '*');
        }
        // The path after its first `/` (a webhook's token is there), and the query.
        if authority_end + 1 < end {
            out[authority_end + 1..end]
                .iter_mut()
                .for_each(|c| *c = '*');
        }
        if let Some(query) = (at + 2..authority_end).find(|&k| out[k] == '?') {
            out[query + 1..end].iter_mut().for_each(|c| *c = '*');
        }
        i = end.max(at + 2);
    }
    out.into_iter().collect()
}

fn find(chars: &[char], from: usize, what: &[char]) -> Option<usize> {
    (from..chars.len().saturating_sub(what.len() - 1)).find(|&k| chars[k..k + what.len()] == *what)
}

impl Snippet {
    /// The snippet of `range` (bytes) of `text`: its first line, marked to the end of the
    /// range or of that line, whichever comes first.
    pub fn of(file: &str, text: &str, range: Range<usize>, label: impl Into<String>) -> Snippet {
        let start = range.start.min(text.len());
        let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
        let source = text[line_start..line_end].trim_end_matches('\r');
        let end = range.end.clamp(start, line_start + source.len());
        let before = &text[line_start..start];
        Snippet {
            file: file.to_owned(),
            line: text[..start].matches('\n').count() + 1,
            column: before.chars().count() + 1,
            source: redact_urls(source),
            width: text[start..end].chars().count().max(1),
            label: label.into(),
        }
    }

    /// `Ship.toml:5:1`.
    pub fn location(&self) -> String {
        format!("{}:{}:{}", self.file, self.line, self.column)
    }
}

/// One error as a person reads it.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Diagnostic {
    /// The headline, after `error: `.
    pub message: String,
    /// Where the value came from when no file line shows it (`environment variable
    /// SHIP_PARALLEL`), or the file alone.
    pub origin: Option<String>,
    /// The line at fault.
    pub snippet: Option<Box<Snippet>>,
    /// `= note: …` lines: the valid choices, what else is known.
    pub notes: Vec<String>,
    /// The `= help: …` line: the likely fix (`did you mean …?`).
    pub help: Option<String>,
}

impl From<String> for Diagnostic {
    fn from(message: String) -> Diagnostic {
        Diagnostic::new(message)
    }
}

/// One line: the message, then its notes and help after `; `.
impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)?;
        for note in &self.notes {
            write!(f, "; {note}")?;
        }
        if let Some(help) = &self.help {
            write!(f, "; {help}")?;
        }
        Ok(())
    }
}

/// The styles of a rendering: empty strings for plain text.
struct Styles {
    error: &'static str,
    bold: &'static str,
    blue: &'static str,
    caret: &'static str,
    reset: &'static str,
}

impl Styles {
    fn new(color: bool) -> Styles {
        if color {
            Styles {
                error: "\x1b[1;31m",
                bold: "\x1b[1m",
                blue: "\x1b[1;34m",
                caret: "\x1b[1;31m",
                reset: "\x1b[0m",
            }
        } else {
            Styles {
                error: "",
                bold: "",
                blue: "",
                caret: "",
                reset: "",
            }
        }
    }
}

impl Diagnostic {
    /// A diagnostic with only a message.
    pub fn new(message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            message: message.into(),
            ..Diagnostic::default()
        }
    }

    /// The same, with the paths of its file line, origin and notes under `dir` (the
    /// working directory) shown relative to it, as rustc shows `src/main.rs`.
    pub fn relative_to(mut self, dir: &std::path::Path) -> Diagnostic {
        let prefix = format!("{}/", dir.display().to_string().trim_end_matches('/'));
        let strip = |s: &mut String| *s = s.replace(&prefix, "");
        if let Some(o) = &mut self.origin {
            strip(o);
        }
        if let Some(sn) = &mut self.snippet {
            strip(&mut sn.file);
        }
        self.notes.iter_mut().for_each(strip);
        self
    }

    /// The diagnostic as rustc prints one, ending with a newline; with ANSI colors when
    /// `color` is true (the caller decides: `--color`, a terminal, `NO_COLOR`).
    ///
    /// ```
    /// use ship_core::{Diagnostic, Snippet};
    /// let text = "[production]\nkeep_relases = 3\n";
    /// let d = Diagnostic {
    ///     message: "unknown key `keep_relases` in `[production]`".into(),
    ///     snippet: Some(Box::new(Snippet::of("Ship.toml", text, 13..25, "unknown key"))),
    ///     help: Some("did you mean `keep_releases`?".into()),
    ///     ..Diagnostic::default()
    /// };
    /// assert_eq!(d.render(false), "\
    /// error: unknown key `keep_relases` in `[production]`
    ///  --> Ship.toml:2:1
    ///   |
    /// 2 | keep_relases = 3
    ///   | ^^^^^^^^^^^^ unknown key
    ///   |
    ///   = help: did you mean `keep_releases`?
    /// ");
    /// ```
    pub fn render(&self, color: bool) -> String {
        let s = Styles::new(color);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{}error{}{}: {}{}",
            s.error, s.reset, s.bold, self.message, s.reset
        );
        let gutter = self
            .snippet
            .as_ref()
            .map_or(1, |sn| sn.line.to_string().len());
        let pad = " ".repeat(gutter);
        let bar = format!("{}{pad} |{}", s.blue, s.reset);
        if let Some(sn) = &self.snippet {
            let _ = writeln!(out, "{pad}{}-->{} {}", s.blue, s.reset, sn.location());
            let _ = writeln!(out, "{bar}");
            // Tabs are shown as four spaces, so that the caret stays under its text.
            let shown = sn.source.replace('\t', "    ");
            let before: String = sn.source.chars().take(sn.column - 1).collect();
            let indent = before.chars().map(|c| if c == '\t' { 4 } else { 1 }).sum();
            let _ = writeln!(out, "{}{} |{} {shown}", s.blue, sn.line, s.reset);
            let label = if sn.label.is_empty() {
                String::new()
            } else {
                format!(" {}", sn.label)
            };
            let _ = writeln!(
                out,
                "{bar} {}{}{}{label}{}",
                " ".repeat(indent),
                s.caret,
                "^".repeat(sn.width),
                s.reset
            );
        } else if let Some(origin) = &self.origin {
            let _ = writeln!(out, "{pad}{}-->{} {origin}", s.blue, s.reset);
        }
        if !self.notes.is_empty() || self.help.is_some() {
            if self.snippet.is_some() || self.origin.is_some() {
                let _ = writeln!(out, "{bar}");
            }
            for note in &self.notes {
                let _ = writeln!(
                    out,
                    "{pad} {}={} {}note{}: {note}",
                    s.blue, s.reset, s.bold, s.reset
                );
            }
            if let Some(help) = &self.help {
                let _ = writeln!(
                    out,
                    "{pad} {}={} {}help{}: {help}",
                    s.blue, s.reset, s.bold, s.reset
                );
            }
        }
        out
    }
}

/// The choice closest to `found`, if one is close enough to be a slip of the keyboard: at
/// most a third of its length in edits (a swap of two letters is one), or the same but
/// for case. The first of equally close ones.
///
/// ```
/// use ship_core::diagnostic::closest;
/// assert_eq!(closest("keep_relases", ["deploy_to", "keep_releases"]), Some("keep_releases"));
/// assert_eq!(closest("prodution", ["staging", "production"]), Some("production"));
/// assert_eq!(closest("wbe", ["web", "worker"]), Some("web"));
/// assert_eq!(closest("database", ["web", "worker"]), None);
/// ```
pub fn closest<'a>(found: &str, choices: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = found.chars().count().max(3) / 3;
    choices
        .into_iter()
        .filter(|c| *c != found)
        .filter_map(|c| {
            let d = if c.eq_ignore_ascii_case(found) {
                0
            } else {
                strsim::damerau_levenshtein(found, c)
            };
            (d <= limit).then_some((d, c))
        })
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// `` `a`, `b` and `c` ``: choices as a sentence names them.
pub fn list<S: AsRef<str>>(choices: &[S]) -> String {
    let quoted: Vec<String> = choices
        .iter()
        .map(|c| format!("`{}`", c.as_ref()))
        .collect();
    match quoted.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// How many choices are short enough to list beside a did-you-mean.
pub const SHORT: usize = 8;

/// What to say about `found`, an unknown one of `choices` (`what` names them: "valid keys
/// here", "stages of Ship.toml"): a help when one is close, and the list of choices when
/// none is, or when it is short.
///
/// ```
/// use ship_core::diagnostic::suggest;
/// let (help, note) = suggest("prodution", &["staging", "production"], "stages");
/// assert_eq!(help.as_deref(), Some("did you mean `production`?"));
/// assert_eq!(note.as_deref(), Some("stages: `staging` and `production`"));
/// ```
pub fn suggest<S: AsRef<str>>(
    found: &str,
    choices: &[S],
    what: &str,
) -> (Option<String>, Option<String>) {
    let help =
        closest(found, choices.iter().map(AsRef::as_ref)).map(|c| format!("did you mean `{c}`?"));
    let note = if choices.is_empty() {
        Some(format!("{what}: none"))
    } else if help.is_none() || choices.len() <= SHORT {
        Some(format!("{what}: {}", list(choices)))
    } else {
        None
    };
    (help, note)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snippet_marks_its_range_on_its_line_in_characters() {
        let text = "[a]\nname = \"é\" # x\nnext = 1\n";
        let start = text.find('"').unwrap();
        let s = Snippet::of("f", text, start..start + 4, "here");
        assert_eq!((s.line, s.column, s.width), (2, 8, 3));
        assert_eq!(s.source, "name = \"é\" # x");
        let s = Snippet::of(
            "Ship.toml",
            "store = \"s3://KEY:SECRET@b/p?X-Amz-Signature=abc\" # é",
            8..49,
            "",
        );
        assert_eq!(
            s.source,
            "store = \"s3://**********@b/*********************\" # é"
        );
        assert_eq!(redact_urls("a = \"http://h/x\""), "a = \"http://h/*\"");
        assert_eq!(
            redact_urls("url = \"https://hooks.slack.com/services/T0/B0/XyZ\", timeout = 1"),
            "url = \"https://hooks.slack.com/******************\", timeout = 1"
        );
        // A range across lines is marked to the end of its first line.
        let s = Snippet::of("f", text, 0..text.len(), "");
        assert_eq!((s.line, s.width, s.source.as_str()), (1, 3, "[a]"));
    }

    #[test]
    fn tabs_keep_the_caret_under_its_text_and_color_is_only_asked_for() {
        let text = "\tkey = 1\n";
        let d = Diagnostic {
            message: "m".into(),
            snippet: Some(Box::new(Snippet::of("f", text, 1..4, "l"))),
            ..Diagnostic::default()
        };
        let plain = d.render(false);
        assert!(
            plain.contains("1 |     key = 1\n  |     ^^^ l\n"),
            "{plain}"
        );
        assert!(!plain.contains('\x1b'));
        assert!(d.render(true).contains("\x1b[1;31merror\x1b[0m"));
    }

    #[test]
    fn far_choices_are_listed_and_close_ones_suggested() {
        let many: Vec<String> = (0..20).map(|i| format!("key_{i:02}")).collect();
        let (help, note) = suggest("key_1", &many, "valid keys");
        assert!(help.is_some() && note.is_none());
        let (help, note) = suggest("completely_else", &many, "valid keys");
        assert!(help.is_none() && note.unwrap().contains("`key_19`"));
        assert_eq!(closest("App", ["app"]), Some("app"));
        assert_eq!(closest("ab", ["abc", "xyz"]), Some("abc"));
        assert_eq!(closest("x", ["yz"]), None);
    }
}
