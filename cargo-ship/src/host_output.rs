//! What the hosts print during a deploy: every line goes to the deploy's log file,
//! `target/ship/logs/<stage>-<release>.log` (`host | line`, with each step's end), and the
//! lines of each step in flight are kept (the last [`KEPT_BYTES`]) so that a failed step is
//! shown whole, not only its last lines.

use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};

/// How many bytes of one step's output on one host are kept to show if it fails: what the
/// host relays of a step that did not run live.
pub(crate) const KEPT_BYTES: usize = ship_core::protocol::RELAYED_BYTES as usize;

/// `line` as it may be shown on a terminal: a host's control characters (escape sequences
/// that recolour, retitle or erase, `\r`) are shown escaped, never obeyed. The log file keeps
/// the bytes as they came.
pub(crate) fn visible(line: &str) -> String {
    if !line.chars().any(|c| c.is_control() && c != '\t') {
        return line.to_owned();
    }
    line.chars()
        .map(|c| {
            if c.is_control() && c != '\t' {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// One deploy's log file and the output of its steps in flight.
pub(crate) struct HostOutput {
    path: PathBuf,
    file: Option<std::io::BufWriter<std::fs::File>>,
    steps: BTreeMap<(String, usize), (usize, VecDeque<String>)>,
}

impl HostOutput {
    /// The log of `release` to `stage`, in `ship_dir/logs/` (created; a log that cannot be
    /// written is skipped, with the reason returned).
    pub(crate) fn create(
        ship_dir: &Path,
        stage: &str,
        release: &str,
    ) -> (HostOutput, Option<String>) {
        let path = ship_dir.join("logs").join(format!("{stage}-{release}.log"));
        let file = std::fs::create_dir_all(path.parent().expect("a parent"))
            .and_then(|()| std::fs::File::create(&path));
        let (file, error) = match file {
            Ok(f) => (Some(std::io::BufWriter::new(f)), None),
            Err(e) => (None, Some(format!("cannot write {}: {e}", path.display()))),
        };
        let log = HostOutput {
            path,
            file,
            steps: BTreeMap::new(),
        };
        (log, error)
    }

    /// Where the log is, if it is written.
    pub(crate) fn path(&self) -> Option<&Path> {
        self.file.as_ref().map(|_| self.path.as_path())
    }

    /// A line step `id` printed on `host`.
    pub(crate) fn line(&mut self, host: &str, id: usize, line: &str) {
        self.write(&format!("{host} | {line}"));
        let (bytes, lines) = self.steps.entry((host.to_owned(), id)).or_default();
        *bytes += line.len() + 1;
        lines.push_back(line.to_owned());
        while *bytes > KEPT_BYTES && lines.len() > 1 {
            *bytes -= lines.pop_front().map_or(0, |l| l.len() + 1);
        }
    }

    /// Step `id` (`name`) ended on `host` with `status`: what it printed (kept lines).
    pub(crate) fn step_ended(
        &mut self,
        host: &str,
        id: usize,
        name: &str,
        status: i32,
    ) -> Vec<String> {
        self.write(&format!("{host} | == step {id} {name}: exit {status}"));
        self.steps
            .remove(&(host.to_owned(), id))
            .map(|(_, lines)| lines.into())
            .unwrap_or_default()
    }

    /// A line of its own (a failure, a host put back).
    pub(crate) fn note(&mut self, host: &str, text: &str) {
        self.write(&format!("{host} | == {text}"));
    }

    fn write(&mut self, line: &str) {
        if let Some(f) = self.file.as_mut()
            && writeln!(f, "{line}").is_err()
        {
            self.file = None;
        }
    }

    /// Writes out what is buffered.
    pub(crate) fn flush(&mut self) {
        if let Some(f) = self.file.as_mut() {
            let _ = f.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hosts_control_characters_are_shown_not_obeyed() {
        assert_eq!(
            visible("A\u{1b}[31mRED\u{1b}]0;t\u{7}\rFAKE\tok"),
            "A\\u{1b}[31mRED\\u{1b}]0;t\\u{7}\\rFAKE\tok"
        );
        assert_eq!(visible("plain"), "plain");
    }

    #[test]
    fn a_step_keeps_its_last_lines_and_the_file_every_line() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, error) = HostOutput::create(dir.path(), "production", "7");
        assert_eq!(error, None);
        let long = "x".repeat(1000);
        for _ in 0..(KEPT_BYTES / 1000 + 10) {
            log.line("web1", 3, &long);
        }
        log.line("web1", 3, "last");
        log.line("web2", 3, "other host");
        let kept = log.step_ended("web1", 3, "restart", 1);
        assert_eq!(kept.last().map(String::as_str), Some("last"));
        assert!(kept.iter().map(|l| l.len() + 1).sum::<usize>() <= KEPT_BYTES);
        assert!(log.step_ended("web1", 3, "restart", 1).is_empty());
        log.flush();
        let text = std::fs::read_to_string(dir.path().join("logs/production-7.log")).unwrap();
        assert_eq!(
            text.lines().filter(|l| l.starts_with("web1 | x")).count(),
            KEPT_BYTES / 1000 + 10
        );
        assert!(text.contains("web2 | other host\n"));
        assert!(text.contains("web1 | == step 3 restart: exit 1\n"));
    }
}
