//! `--json` and `--plot`: the raw figures of every run as JSON, and SVG pictures
//! (an FWQ timeline per configuration with a panel per side, a system-call
//! latency histogram with a panel per side), written by hand to keep mote's
//! dependencies light.

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::stats::Value;
use super::{Config, Report, Side};

/// Writes every run's figures (sample lists included) as one JSON document. A
/// run's `side` is `native` or its platform, and `platform` its platform (`null`
/// natively).
pub fn write_json(path: &Path, report: &Report) -> io::Result<()> {
    let mut j = String::new();
    let platforms: Vec<String> = report.platforms.iter().map(|p| string(p.name())).collect();
    let host: Vec<String> = report
        .host_memory
        .iter()
        .map(|(k, v)| format!("{}: {}", string(k), string(v)))
        .collect();
    let _ = write!(
        j,
        "{{\n  \"quick\": {},\n  \"repetitions\": {},\n  \"lwk_cpu\": {},\n  \"linux_cpu\": {},\n  \
         \"platforms\": [{}],\n  \"host_memory\": {{{}}},\n  \"configurations\": [",
        report.quick,
        report.reps,
        report.lwk_cpu,
        report.linux_cpu,
        platforms.join(", "),
        host.join(", ")
    );
    for (ci, c) in report.configs.iter().enumerate() {
        let _ = write!(
            j,
            "{}\n    {{\n      \"name\": {},\n      \"workload\": {},\n      \"program\": {},\n      \"load\": {},\n      \"linked\": {},\n      \"runs\": [",
            if ci == 0 { "" } else { "," },
            string(&c.name),
            string(c.workload.name),
            string(c.workload.program),
            c.load,
            c.linked.is_some()
        );
        for (ri, r) in c.runs.iter().enumerate() {
            let _ = write!(
                j,
                "{}\n        {{\"side\": {}, \"platform\": {}, \"rep\": {}, \"status\": {}, \"wall_ms\": {}, \"error\": {}, \"figures\": {{",
                if ri == 0 { "" } else { "," },
                string(r.side.name()),
                r.side
                    .platform()
                    .map_or("null".to_string(), |p| string(p.name())),
                r.rep,
                r.status,
                number(r.wall_ms),
                r.error.as_deref().map_or("null".to_string(), string)
            );
            for (fi, (k, v)) in r.figures.iter().enumerate() {
                let value = match v {
                    Value::One(x) => number(*x),
                    Value::Samples(xs) => {
                        let items: Vec<String> = xs.iter().map(|x| number(*x)).collect();
                        format!("[{}]", items.join(","))
                    }
                };
                let _ = write!(
                    j,
                    "{}{}: {value}",
                    if fi == 0 { "" } else { ", " },
                    string(k)
                );
            }
            j.push_str("}}");
        }
        j.push_str("\n      ]\n    }");
    }
    j.push_str("\n  ]\n}\n");
    fs::write(path, j)
}

/// A JSON string literal (RFC 8259 escapes).
fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JSON number; JSON has no NaN or infinity, so those are null.
fn number(x: f64) -> String {
    if x.is_finite() {
        format!("{x}")
    } else {
        "null".to_string()
    }
}

/// Writes the pictures into `dir` (created if needed); returns the files written.
pub fn write_plots(dir: &Path, report: &Report) -> io::Result<Vec<PathBuf>> {
    fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    for c in &report.configs {
        if c.workload.name == super::workloads::FWQ {
            let path = dir.join(format!("{}-timeline.svg", c.name.replace('+', "-")));
            fs::write(&path, fwq_timeline(report, c))?;
            written.push(path);
        }
        if c.workload.name == "latency" && c.linked.is_none() {
            let path = dir.join("latency-histogram.svg");
            fs::write(&path, latency_histogram(report, c))?;
            written.push(path);
        }
    }
    Ok(written)
}

const W: f64 = 900.0;
const PANEL_H: f64 = 260.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 40.0;
const TOP: f64 = 60.0;
const GAP: f64 = 60.0;
const COLORS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf", "#7f7f7f",
];

fn svg_start(h: f64, title: &str) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{h}\" \
         viewBox=\"0 0 {W} {h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"22\" font-size=\"15\" text-anchor=\"middle\">{}</text>\n",
        W / 2.0,
        xml(title)
    );
    s
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A logarithmic axis from `lo` to `hi` (whole decades around the data).
struct LogAxis {
    lo: f64,
    hi: f64,
}

impl LogAxis {
    fn around(min: f64, max: f64) -> LogAxis {
        let min = min.max(1e-3);
        let max = max.max(min * 1.01);
        LogAxis {
            lo: min.log10().floor(),
            hi: max.log10().ceil().max(min.log10().floor() + 1.0),
        }
    }
    /// 0..1 along the axis.
    fn frac(&self, v: f64) -> f64 {
        ((v.max(1e-3).log10() - self.lo) / (self.hi - self.lo)).clamp(0.0, 1.0)
    }
    fn decades(&self) -> impl Iterator<Item = f64> {
        (self.lo as i32..=self.hi as i32).map(|e| 10f64.powi(e))
    }
}

fn si(v: f64) -> String {
    if v >= 1e9 {
        format!("{}G", v / 1e9)
    } else if v >= 1e6 {
        format!("{}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{}k", v / 1e3)
    } else {
        format!("{v}")
    }
}

/// FWQ: cycles of every sample in order, first repetition of each side, one
/// panel per side (native, then each platform) on the same logarithmic scale.
fn fwq_timeline(report: &Report, c: &Config) -> String {
    let first = |side: Side| -> Vec<f64> {
        c.runs
            .iter()
            .filter(|r| r.side == side && r.error.is_none())
            .find_map(|r| match r.figures.get("raw_cycles") {
                Some(Value::Samples(v)) => Some(v.clone()),
                _ => None,
            })
            .unwrap_or_default()
    };
    let panels: Vec<(Side, Vec<f64>)> = report.sides().into_iter().map(|s| (s, first(s))).collect();
    let all = panels.iter().flat_map(|(_, v)| v.iter().copied());
    let (min, max) = all.fold((f64::INFINITY, 0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let axis = LogAxis::around(if min.is_finite() { min } else { 1.0 }, max);
    let h = TOP + panels.len() as f64 * (PANEL_H + GAP) - GAP + 40.0;
    let mut s = svg_start(
        h,
        &format!(
            "FWQ timeline, {}: cycles per quantum, sample by sample (log scale)",
            c.name
        ),
    );
    for (i, (side, samples)) in panels.iter().enumerate() {
        let y0 = TOP + i as f64 * (PANEL_H + GAP);
        let pw = W - LEFT - RIGHT;
        let y_of = |v: f64| y0 + PANEL_H * (1.0 - axis.frac(v));
        let _ = writeln!(
            s,
            "<rect x=\"{LEFT}\" y=\"{y0}\" width=\"{pw}\" height=\"{PANEL_H}\" fill=\"none\" stroke=\"#888\"/>"
        );
        for d in axis.decades() {
            let y = y_of(d);
            let _ = writeln!(
                s,
                "<line x1=\"{LEFT}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/>\
                 <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                LEFT + pw,
                LEFT - 6.0,
                y + 4.0,
                si(d)
            );
        }
        let min = samples.iter().copied().fold(f64::INFINITY, f64::min);
        let max = samples.iter().copied().fold(0f64, f64::max);
        let _ =
            writeln!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{} — {} samples, max/min {:.3}</text>",
            LEFT + pw / 2.0,
            y0 - 6.0,
            side_title(*side),
            samples.len(),
            if samples.is_empty() { f64::NAN } else { max / min }
        );
        if samples.is_empty() {
            continue;
        }
        let n = samples.len() as f64;
        let mut path = String::new();
        for (k, &v) in samples.iter().enumerate() {
            let _ = write!(path, "M{:.1} {:.1}h1", LEFT + pw * k as f64 / n, y_of(v));
        }
        let _ = writeln!(
            s,
            "<path d=\"{path}\" stroke=\"{}\" stroke-width=\"2\" fill=\"none\"/>",
            COLORS[i % COLORS.len()]
        );
    }
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">sample number (time →)</text>\n</svg>",
        W / 2.0,
        h - 10.0
    );
    s
}

/// A panel's name: `native`, `mote on kvm`, `mote on hosted`.
fn side_title(side: Side) -> String {
    match side.platform() {
        None => side.name().to_string(),
        Some(_) => format!("mote on {}", side.name()),
    }
}

/// The calls the latency histogram shows: the key, and whether only mote has it
/// (the direct entry).
const LATENCY_SERIES: [(&str, bool); 5] = [
    ("getpid.raw_ns", false),
    ("getppid.raw_ns", false),
    ("clock_gettime.raw_ns", false),
    ("getpid_direct.raw_ns", true),
    ("getppid_direct.raw_ns", true),
];

/// One call's samples on one side: its colour index, its name, the samples.
type Series<'a> = (usize, &'a str, Vec<f64>);

/// System-call latency: the distribution of per-call times (every sample of
/// every repetition), one panel per side (native, then each platform) on one
/// logarithmic time axis; a call keeps its colour in every panel.
fn latency_histogram(report: &Report, c: &Config) -> String {
    const LEGEND: f64 = 18.0;
    // Per panel: its side and its series (colour index, name, samples).
    let panels: Vec<(Side, Vec<Series>)> = report
        .sides()
        .into_iter()
        .map(|side| {
            let series = LATENCY_SERIES
                .iter()
                .enumerate()
                .filter(|(_, (_, mote_only))| !mote_only || side != Side::Native)
                .map(|(i, (key, _))| (i, key.trim_end_matches(".raw_ns"), c.samples(side, key)))
                .filter(|(_, _, v)| !v.is_empty())
                .collect();
            (side, series)
        })
        .collect();
    let all = panels
        .iter()
        .flat_map(|(_, series)| series.iter().flat_map(|(_, _, v)| v.iter().copied()));
    let (min, max) = all.fold((f64::INFINITY, 0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let axis = LogAxis::around(if min.is_finite() { min } else { 1.0 }, max.max(10.0));
    const BINS_PER_DECADE: f64 = 20.0;
    let bins = (((axis.hi - axis.lo) * BINS_PER_DECADE) as usize).max(1);
    let hist = |v: &[f64]| -> Vec<f64> {
        let mut counts = vec![0f64; bins];
        for &x in v {
            let b = ((axis.frac(x) * bins as f64) as usize).min(bins - 1);
            counts[b] += 1.0;
        }
        counts.iter().map(|c| c / v.len() as f64).collect()
    };
    let hists: Vec<Vec<Vec<f64>>> = panels
        .iter()
        .map(|(_, series)| series.iter().map(|(_, _, v)| hist(v)).collect())
        .collect();
    let top = hists
        .iter()
        .flatten()
        .flatten()
        .copied()
        .fold(0.0, f64::max)
        .max(0.01);
    let panel_h = |series: usize| PANEL_H + 40.0 + LEGEND * series as f64 + GAP / 2.0;
    let h = TOP + panels.iter().map(|(_, s)| panel_h(s.len())).sum::<f64>();
    let pw = W - LEFT - RIGHT;
    let mut s = svg_start(
        h,
        "System-call latency per call: share of samples (log time axis)",
    );
    let mut y0 = TOP;
    for ((side, series), hists) in panels.iter().zip(&hists) {
        let _ = writeln!(
            s,
            "<rect x=\"{LEFT}\" y=\"{y0}\" width=\"{pw}\" height=\"{PANEL_H}\" fill=\"none\" stroke=\"#888\"/>\
             <text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            LEFT + pw / 2.0,
            y0 - 6.0,
            side_title(*side)
        );
        for d in axis.decades() {
            let x = LEFT + pw * axis.frac(d);
            let label = if d >= 1000.0 {
                format!("{} µs", d / 1000.0)
            } else {
                format!("{d} ns")
            };
            let _ = writeln!(
                s,
                "<line x1=\"{x:.1}\" x2=\"{x:.1}\" y1=\"{y0}\" y2=\"{}\" stroke=\"#ddd\"/>\
                 <text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">{label}</text>",
                y0 + PANEL_H,
                y0 + PANEL_H + 16.0
            );
        }
        for q in [0.5, 1.0] {
            let y = y0 + PANEL_H * (1.0 - q);
            let _ = writeln!(
                s,
                "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{:.0}%</text>",
                LEFT - 6.0,
                y + 4.0,
                q * top * 100.0
            );
        }
        for (k, ((color, name, v), hist)) in series.iter().zip(hists).enumerate() {
            let color = COLORS[color % COLORS.len()];
            let mut path = format!("M{LEFT} {}", y0 + PANEL_H);
            for (b, share) in hist.iter().enumerate() {
                let x0 = LEFT + pw * b as f64 / bins as f64;
                let x1 = LEFT + pw * (b + 1) as f64 / bins as f64;
                let y = y0 + PANEL_H * (1.0 - share / top);
                let _ = write!(path, "L{x0:.1} {y:.1}L{x1:.1} {y:.1}");
            }
            let _ = write!(path, "L{} {}", LEFT + pw, y0 + PANEL_H);
            let _ = writeln!(
                s,
                "<path d=\"{path}\" stroke=\"{color}\" stroke-width=\"1.5\" fill=\"{color}\" fill-opacity=\"0.15\"/>"
            );
            let mut sorted = v.clone();
            sorted.sort_by(f64::total_cmp);
            let y = y0 + PANEL_H + 40.0 + LEGEND * k as f64;
            let _ = writeln!(
                s,
                "<rect x=\"{LEFT}\" y=\"{}\" width=\"12\" height=\"12\" fill=\"{color}\"/>\
                 <text x=\"{}\" y=\"{y}\">{} — median {:.1} ns, {} samples</text>",
                y - 10.0,
                LEFT + 18.0,
                xml(name),
                sorted[sorted.len() / 2],
                sorted.len()
            );
        }
        y0 += panel_h(series.len());
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_and_numbers() {
        assert_eq!(string("a\"b\\c\n\u{1}"), "\"a\\\"b\\\\c\\n\\u0001\"");
        assert_eq!(number(1.5), "1.5");
        assert_eq!(number(f64::NAN), "null");
    }

    #[test]
    fn log_axis_spans_whole_decades() {
        let a = LogAxis::around(16.0, 65_000.0);
        assert_eq!((a.lo, a.hi), (1.0, 5.0));
        assert_eq!(a.frac(10.0), 0.0);
        assert_eq!(a.frac(100_000.0), 1.0);
    }
}
