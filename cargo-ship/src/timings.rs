//! `apply --timings`: when each host's steps started and ended (taken here, as the
//! machine's events arrive), and the self-contained HTML page that draws them as bars on one
//! time axis (`target/ship/timings/<stage>-<release>.html`, as `cargo build --timings`).
//!
//! [`Timings::event`] is the only place a time is read; [`Timings::html`] is a pure function
//! of what was recorded and the plan.

use ship_core::Event;
use ship_core::Plan;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One step on one host (`local` for the deploying machine), in seconds from the start.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub(crate) struct Bar {
    pub(crate) host: String,
    pub(crate) id: usize,
    pub(crate) name: String,
    pub(crate) start: f64,
    pub(crate) end: f64,
    /// Its exit status; `None` when it never ended (cut, or the deploy stopped).
    pub(crate) status: Option<i32>,
}

/// What a deploy's events said about time.
#[derive(Debug, Default)]
pub(crate) struct Timings {
    open: BTreeMap<(String, usize), (String, f64)>,
    bars: Vec<Bar>,
    /// When each rolling batch started, from 1.
    batches: Vec<(usize, f64)>,
    /// When each host's connection was open.
    connected: BTreeMap<String, f64>,
}

fn host_of(host: &Option<String>) -> String {
    host.clone().unwrap_or_else(|| "local".to_owned())
}

impl Timings {
    /// Record `event`, which arrived `at` after the deploy started.
    pub(crate) fn event(&mut self, event: &Event, at: Duration) {
        let t = at.as_secs_f64();
        match event {
            Event::Started { host, id, name } => {
                self.open.insert((host_of(host), *id), (name.clone(), t));
            }
            Event::Step {
                host,
                id,
                name,
                status,
                ..
            } => {
                let host = host_of(host);
                // A step whose start line was not seen (it cannot happen on a live
                // session) is drawn as a point at its end.
                let start = self.open.remove(&(host.clone(), *id)).map_or(t, |(_, s)| s);
                self.bars.push(Bar {
                    host,
                    id: *id,
                    name: name.clone(),
                    start,
                    end: t,
                    status: Some(*status),
                });
            }
            Event::Batch { batch, .. } => self.batches.push((*batch, t)),
            Event::Connected { host } => {
                self.connected.entry(host.clone()).or_insert(t);
            }
            _ => {}
        }
    }

    /// Close the steps that started and never ended (cut at a time limit, or stopped), at
    /// `at`.
    pub(crate) fn finish(&mut self, at: Duration) {
        let t = at.as_secs_f64();
        for ((host, id), (name, start)) in std::mem::take(&mut self.open) {
            self.bars.push(Bar {
                host,
                id,
                name,
                start,
                end: t,
                status: None,
            });
        }
    }

    /// The bars recorded, in the order they ended.
    #[cfg(test)]
    pub(crate) fn bars(&self) -> &[Bar] {
        &self.bars
    }

    /// The page: a summary naming the slowest host and step, and the embedded data the
    /// page's script draws as bars (one `rect.bar` per step on a host).
    pub(crate) fn html(&self, plan: &Plan, total: f64, outcome: &str) -> String {
        let mut bars = self.bars.clone();
        bars.sort_by(|a, b| {
            (a.host != "local", &a.host, a.start, a.id)
                .partial_cmp(&(b.host != "local", &b.host, b.start, b.id))
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        // Hosts in the plan's order, the deploying machine first when it ran anything.
        let mut hosts: Vec<String> = Vec::new();
        if bars.iter().any(|b| b.host == "local") {
            hosts.push("local".to_owned());
        }
        hosts.extend(plan.hosts.iter().map(|h| h.name.clone()));
        for b in &bars {
            if !hosts.contains(&b.host) {
                hosts.push(b.host.clone());
            }
        }
        // The sync points: where each segment after the first began on its first host (in
        // each rolling batch).
        let mut syncs: Vec<(f64, String)> = Vec::new();
        let batch_starts: Vec<f64> = self.batches.iter().map(|(_, t)| *t).collect();
        let batch_of = |t: f64| batch_starts.iter().filter(|s| **s <= t).count();
        let mut first: BTreeMap<(usize, usize), (f64, String)> = BTreeMap::new();
        for b in &bars {
            let Some(step) = plan.step(b.id) else {
                continue;
            };
            let Some(k) = step.script.filter(|k| *k > 0) else {
                continue;
            };
            let e = first
                .entry((batch_of(b.start), k))
                .or_insert((b.start, b.name.clone()));
            if b.start < e.0 {
                *e = (b.start, b.name.clone());
            }
        }
        for (_, (t, name)) in first {
            syncs.push((t, format!("sync: {name}")));
        }
        let mut busy: BTreeMap<&str, f64> = BTreeMap::new();
        for b in &bars {
            *busy.entry(b.host.as_str()).or_default() += b.end - b.start;
        }
        let slowest_host = busy
            .iter()
            .filter(|(h, _)| **h != "local")
            .max_by(|a, b| a.1.partial_cmp(b.1).unwrap_or(std::cmp::Ordering::Equal))
            .map(|(h, t)| (h.to_string(), *t));
        let slowest_step = bars
            .iter()
            .max_by(|a, b| {
                (a.end - a.start)
                    .partial_cmp(&(b.end - b.start))
                    .unwrap_or(std::cmp::Ordering::Equal)
            })
            .cloned();
        let data = serde_json::json!({
            "app": plan.app,
            "stage": plan.stage,
            "release": plan.release,
            "total": total,
            "hosts": hosts,
            "bars": bars,
            "syncs": syncs.iter().map(|(t, l)| serde_json::json!({"t": t, "label": l})).collect::<Vec<_>>(),
            "connected": self.connected.iter().map(|(h, t)| serde_json::json!({"host": h, "t": t})).collect::<Vec<_>>(),
            "batches": self.batches.iter().map(|(b, t)| serde_json::json!({"batch": b, "t": t})).collect::<Vec<_>>(),
        });
        let data = embed(&data);
        let slowest_host = slowest_host.map_or("none".to_owned(), |(h, t)| {
            format!(
                "<b id=\"slowest-host\">{}</b> ({t:.2} s in its steps)",
                escape(&h)
            )
        });
        let slowest_step = slowest_step.map_or("none".to_owned(), |b| {
            format!(
                "<b id=\"slowest-step\">{} on {}</b> ({:.2} s)",
                escape(&b.name),
                escape(&b.host),
                b.end - b.start
            )
        });
        let mut per_host = String::new();
        for h in &hosts {
            let n = bars.iter().filter(|b| &b.host == h).count();
            let last = bars
                .iter()
                .filter(|b| &b.host == h)
                .map(|b| b.end)
                .fold(0.0, f64::max);
            per_host.push_str(&format!(
                "<tr><td>{}</td><td>{n}</td><td>{:.2} s</td><td>{last:.2} s</td></tr>\n",
                escape(h),
                busy.get(h.as_str()).copied().unwrap_or(0.0)
            ));
        }
        let title = format!(
            "cargo ship timings: {} release {} to {}",
            plan.app, plan.release, plan.stage
        );
        PAGE.replace("{title}", &escape(&title))
            .replace("{total}", &format!("{total:.2}"))
            .replace("{hosts}", &plan.hosts.len().to_string())
            .replace("{outcome}", &escape(outcome))
            .replace("{slowest_host}", &slowest_host)
            .replace("{slowest_step}", &slowest_step)
            .replace("{per_host}", &per_host)
            .replace("{data}", &data)
    }
}

/// JSON to put inside a `<script>`: `</` would end it, so it is written `<\/` (the same
/// string to a JSON reader).
fn embed(json: &serde_json::Value) -> String {
    json.to_string().replace("</", "<\\/")
}

/// Text for HTML.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Write the page to `<ship_dir>/timings/<stage>-<release>.html` and a copy to
/// `latest.html` beside it; returns the first.
pub(crate) fn save(ship_dir: &Path, plan: &Plan, page: &str) -> std::io::Result<PathBuf> {
    let dir = ship_dir.join("timings");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{}-{}.html", plan.stage, plan.release));
    std::fs::write(&path, page)?;
    std::fs::write(dir.join("latest.html"), page)?;
    Ok(std::path::absolute(&path).unwrap_or(path))
}

const PAGE: &str = r##"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
body { font: 14px system-ui, sans-serif; margin: 1.5em; color: #222; background: #fff; }
h1 { font-size: 1.3em; }
table.summary td:first-child { color: #555; padding-right: 1em; }
table.hosts { border-collapse: collapse; margin-top: 1em; }
table.hosts td, table.hosts th { border-bottom: 1px solid #ddd; padding: 2px 10px; text-align: left; }
#chart svg { display: block; }
#chart text { font: 12px system-ui, sans-serif; fill: #222; }
#chart .axis line { stroke: #ddd; }
#chart .sync { stroke: #c00; stroke-dasharray: 4 3; }
#chart .sync-label { fill: #c00; font-size: 11px; }
#chart .failed { stroke: #c00; stroke-width: 2; }
#chart .connect { fill: #ccc; }
#chart .batch { stroke: #333; }
#chart .batch-label { font-size: 11px; }
p.note { color: #555; font-size: 12px; }
#legend span { display: inline-block; margin-right: 1em; }
#legend i { display: inline-block; width: 10px; height: 10px; margin-right: 4px; }
</style>
</head>
<body>
<h1>{title}</h1>
<table class="summary">
<tr><td>outcome</td><td>{outcome}</td></tr>
<tr><td>total</td><td>{total} s, {hosts} hosts</td></tr>
<tr><td>slowest host</td><td>{slowest_host}</td></tr>
<tr><td>slowest step</td><td>{slowest_step}</td></tr>
</table>
<div id="legend"></div>
<div id="chart"><noscript>The bars are drawn by this page's script.</noscript></div>
<p class="note">Each row is a host (<code>local</code>: this machine); each bar a step, from its
<code>start</code> to its <code>end</code> as the host reported them; the thin grey line, the
time to connect. A grey line starts a rolling batch; a dashed red line is a sync point: no host started the steps after it before
every host had finished the steps before it. Hover a bar for its times.</p>
<table class="hosts">
<tr><th>host</th><th>steps</th><th>time in its steps</th><th>last step ended</th></tr>
{per_host}</table>
<script type="application/json" id="timings-data">{data}</script>
<script>
"use strict";
(function () {
  var data = JSON.parse(document.getElementById("timings-data").textContent);
  var NS = "http://www.w3.org/2000/svg";
  var palette = ["#4e79a7", "#f28e2b", "#59a14f", "#76b7b2", "#edc948", "#b07aa1",
                 "#ff9da7", "#9c755f", "#bab0ac", "#e15759", "#8cd17d", "#499894"];
  var colors = {};
  data.bars.forEach(function (b) {
    if (!(b.name in colors)) colors[b.name] = palette[Object.keys(colors).length % palette.length];
  });
  var left = 160, right = 20, top = 64, row = 22;
  var width = Math.max(600, Math.min(1400, window.innerWidth - 60));
  var total = Math.max(data.total, 0.001);
  var scale = (width - left - right) / total;
  var height = top + row * data.hosts.length + (data.batches.length ? 22 : 10);
  function el(name, attrs, parent) {
    var e = document.createElementNS(NS, name);
    Object.keys(attrs).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    parent.appendChild(e);
    return e;
  }
  var svg = el("svg", { width: width, height: height, "class": "timeline" },
               document.getElementById("chart"));
  var axis = el("g", { "class": "axis" }, svg);
  var step = Math.pow(10, Math.floor(Math.log10(total / 2)));
  if (total / step > 10) step *= 2;
  if (total / step > 10) step *= 2.5;
  for (var t = 0; t <= total + 1e-9; t += step) {
    var x = left + t * scale;
    el("line", { x1: x, x2: x, y1: top - 6, y2: height - 10 }, axis);
    el("text", { x: x, y: top - 10, "text-anchor": "middle" }, axis).textContent =
      (Math.round(t * 100) / 100) + " s";
  }
  data.hosts.forEach(function (h, i) {
    el("text", { x: left - 8, y: top + i * row + 15, "text-anchor": "end", "class": "host" }, svg)
      .textContent = h;
  });
  data.bars.forEach(function (b) {
    var i = data.hosts.indexOf(b.host);
    var w = Math.max(1, (b.end - b.start) * scale);
    var r = el("rect", {
      x: left + b.start * scale, y: top + i * row + 3, width: w, height: row - 6,
      fill: colors[b.name], "class": b.status === 0 ? "bar" : "bar failed",
      "data-host": b.host, "data-step": b.name
    }, svg);
    el("title", {}, r).textContent = b.host + " " + b.id + " " + b.name + ": " +
      (b.end - b.start).toFixed(3) + " s (" + b.start.toFixed(3) + " → " + b.end.toFixed(3) + ")" +
      (b.status === 0 ? "" : b.status === null ? ", never ended" : ", exit " + b.status);
  });
  data.connected.forEach(function (c) {
    var i = data.hosts.indexOf(c.host);
    var r = el("rect", {
      x: left, y: top + i * row + 9, width: Math.max(1, c.t * scale), height: row - 18,
      "class": "connect"
    }, svg);
    el("title", {}, r).textContent = c.host + ": connected at " + c.t.toFixed(3) + " s";
  });
  data.batches.forEach(function (b) {
    var x = left + b.t * scale;
    el("line", { x1: x, x2: x, y1: top - 4, y2: height - 10, "class": "batch" }, svg);
    el("text", { x: x + 3, y: height - 1, "class": "batch-label" }, svg).textContent =
      "batch " + b.batch;
  });
  data.syncs.forEach(function (s, i) {
    var x = left + s.t * scale;
    el("line", { x1: x, x2: x, y1: 10 + (i % 2) * 14, y2: height - 10, "class": "sync" }, svg);
    var end = x > width - 140;
    el("text", { x: end ? x - 3 : x + 3, y: 18 + (i % 2) * 14, "class": "sync-label",
                 "text-anchor": end ? "end" : "start" }, svg).textContent = s.label;
  });
  var legend = document.getElementById("legend");
  Object.keys(colors).forEach(function (name) {
    var span = document.createElement("span");
    var swatch = document.createElement("i");
    swatch.style.background = colors[name];
    span.appendChild(swatch);
    span.appendChild(document.createTextNode(name));
    legend.appendChild(span);
  });
})();
</script>
</body>
</html>
"##;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_is_a_bar_from_its_start_to_its_end_and_a_cut_one_ends_at_finish() {
        let mut t = Timings::default();
        let s = |host: &str, id| Event::Started {
            host: Some(host.to_owned()),
            id,
            name: "install".to_owned(),
        };
        t.event(&s("web1", 6), Duration::from_millis(500));
        t.event(&s("web2", 6), Duration::from_millis(700));
        t.event(
            &Event::Step {
                host: Some("web1".to_owned()),
                id: 6,
                name: "install".to_owned(),
                status: 0,
                output: Vec::new(),
            },
            Duration::from_millis(2500),
        );
        t.finish(Duration::from_secs(3));
        let bars = t.bars();
        assert_eq!(bars.len(), 2);
        assert_eq!(
            (bars[0].start, bars[0].end, bars[0].status),
            (0.5, 2.5, Some(0))
        );
        assert_eq!(
            (bars[1].host.as_str(), bars[1].end, bars[1].status),
            ("web2", 3.0, None)
        );
    }

    #[test]
    fn names_are_escaped_and_the_data_cannot_end_its_script() {
        assert_eq!(
            escape("<a href=\"x\">&"),
            "&lt;a href=&quot;x&quot;&gt;&amp;"
        );
        let json = serde_json::json!({"host": "</script><b>"});
        let embedded = embed(&json);
        assert!(!embedded.contains("</"), "{embedded}");
        let back: serde_json::Value = serde_json::from_str(&embedded).expect("still JSON");
        assert_eq!(back, json);
    }
}
