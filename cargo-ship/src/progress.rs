//! Progress on a terminal while a plan runs: one spinner line per host (its last finished
//! step and elapsed time), or one bar for the whole fleet when there are many hosts.
//! Never used when stderr is not a terminal, with `--format json`, or with `-q`. Styled
//! only when the run is coloured (`Context::color`): indicatif draws on the terminal itself,
//! so the lines printed above the bars are stripped of styles here when it is not.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use ship_core::Plan;
use std::collections::BTreeMap;
use std::time::Duration;

/// More hosts than this get one bar for the fleet instead of a line each.
const LINES_UP_TO: usize = 20;

/// The bars of one run.
pub(crate) struct Progress {
    multi: MultiProgress,
    hosts: BTreeMap<String, ProgressBar>,
    fleet: Option<ProgressBar>,
    color: bool,
}

impl Progress {
    /// Bars for `plan`'s hosts, drawn on stderr; a cyan spinner when `color`.
    pub(crate) fn new(plan: &Plan, color: bool) -> Progress {
        let spinner = if color {
            "{spinner:.cyan}"
        } else {
            "{spinner}"
        };
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let width = plan.hosts.iter().map(|h| h.name.len()).max().unwrap_or(4);
        let mut hosts = BTreeMap::new();
        let mut fleet = None;
        if plan.hosts.len() <= LINES_UP_TO {
            let style = ProgressStyle::with_template(&format!(
                "  {spinner} {{prefix:<{width}}} {{elapsed:>4}}  {{msg}}"
            ))
            .expect("a valid template");
            for h in &plan.hosts {
                let bar = multi.add(ProgressBar::new_spinner());
                bar.set_style(style.clone());
                bar.set_prefix(h.name.clone());
                bar.set_message("connecting");
                bar.enable_steady_tick(Duration::from_millis(120));
                hosts.insert(h.name.clone(), bar);
            }
        } else {
            let steps: usize = plan.hosts.iter().map(|h| h.steps.len()).sum();
            let bar = multi.add(ProgressBar::new(steps as u64));
            bar.set_style(
                ProgressStyle::with_template(&format!(
                    "  {spinner} [{{bar:30}}] {{pos}}/{{len}} host steps {{elapsed:>4}}  {{msg}}"
                ))
                .expect("a valid template")
                .progress_chars("=> "),
            );
            bar.set_message(format!("{} hosts", plan.hosts.len()));
            bar.enable_steady_tick(Duration::from_millis(120));
            fleet = Some(bar);
        }
        Progress {
            multi,
            hosts,
            fleet,
            color,
        }
    }

    /// Says what `host` is at now; `step` counts one step done for the fleet bar.
    pub(crate) fn update(&self, host: &str, message: &str, step: bool) {
        if let Some(bar) = self.hosts.get(host) {
            bar.set_message(message.to_owned());
        }
        if let Some(bar) = &self.fleet {
            if step {
                bar.inc(1);
            }
            bar.set_message(format!("{host}: {message}"));
        }
    }

    /// Prints a line above the bars.
    pub(crate) fn println(&self, line: &str) {
        if self.color {
            let _ = self.multi.println(line);
        } else {
            let _ = self
                .multi
                .println(anstream::adapter::strip_str(line).to_string());
        }
    }

    /// Removes the bars: the summary follows.
    pub(crate) fn finish(&self) {
        for bar in self.hosts.values().chain(&self.fleet) {
            bar.finish_and_clear();
        }
    }
}
