//! `mote bench`: each workload in `apps/` natively and under `mote run`, in the
//! same invocation, on the same host core, several repetitions alternating
//! native and mote; then one table of
//! medians, p99 and the mote/native ratio per figure. `--json` keeps the raw
//! samples, `--plot` draws them (SVG), `--load` adds an FWQ configuration with a
//! competing Linux load on the Linux core.
//!
//! Benchmarks print numbers; they never judge them. The bench fails only when a
//! workload fails (its own verification included) or prints no figures.

mod child;
mod load;
mod output;
mod stats;
mod workloads;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::cli::{BenchArgs, EXIT_USAGE};
use stats::{Summary, Value};
use workloads::{Better, Workload};

/// A run still going after this long is killed (a hang, not a measurement).
const RUN_LIMIT: Duration = Duration::from_secs(600);
const REPS_QUICK: usize = 3;
const REPS_FULL: usize = 5;
const BUILD_HINT: &str = "build them with `cargo xtask apps`";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Native,
    Mote,
}

impl Side {
    pub fn name(self) -> &'static str {
        match self {
            Side::Native => "native",
            Side::Mote => "mote",
        }
    }
}

/// One run of one configuration.
#[derive(Debug)]
pub struct Run {
    pub side: Side,
    pub rep: usize,
    pub wall_ms: f64,
    /// Exit status as a shell shows it (128+signal for a signal).
    pub status: i32,
    pub figures: BTreeMap<String, Value>,
    /// Why the run does not count, if it does not.
    pub error: Option<String>,
}

/// A workload under one set of conditions (`fwq`, `fwq+load`, ...).
#[derive(Debug)]
pub struct Config {
    pub name: String,
    pub workload: &'static Workload,
    pub load: bool,
    pub runs: Vec<Run>,
}

impl Config {
    /// The samples of `key` on `side`: one per run, or every sample of every run
    /// when the metric is pooled.
    pub fn samples(&self, side: Side, key: &str) -> Vec<f64> {
        self.runs
            .iter()
            .filter(|r| r.side == side && r.error.is_none())
            .filter_map(|r| r.figures.get(key))
            .flat_map(|v| v.numbers().iter().copied())
            .collect()
    }
}

/// Everything one `mote bench` measured.
#[derive(Debug)]
pub struct Report {
    pub quick: bool,
    pub reps: usize,
    pub lwk_cpu: usize,
    pub linux_cpu: usize,
    pub configs: Vec<Config>,
}

pub fn bench(a: BenchArgs) -> i32 {
    match run_bench(a) {
        Ok(status) => status,
        Err((status, msg)) => {
            eprintln!("mote: bench: {msg}");
            status
        }
    }
}

fn run_bench(a: BenchArgs) -> Result<i32, (i32, String)> {
    let selected = select(&a.workloads)?;
    if a.load && !selected.iter().any(|w| w.name == workloads::FWQ) {
        return Err((
            EXIT_USAGE,
            "--load applies to the fwq workload; select it too".into(),
        ));
    }
    let reps = match a.reps {
        Some(0) => return Err((EXIT_USAGE, "--reps must be at least 1".into())),
        Some(n) => n,
        None if a.quick => REPS_QUICK,
        None => REPS_FULL,
    };
    let mote = std::env::current_exe()
        .map_err(|e| (1, format!("cannot find the mote binary itself: {e}")))?;
    let apps = apps_dir(&mote);
    let missing: Vec<&str> = selected
        .iter()
        .filter(|w| !apps.join(w.program).is_file())
        .map(|w| w.program)
        .collect();
    if !missing.is_empty() {
        return Err((
            1,
            format!(
                "workload programs missing from {}: {}; {BUILD_HINT}",
                apps.display(),
                missing.join(", ")
            ),
        ));
    }
    // The host core mote pins its (first) vCPU to, and the Linux core where its
    // offload thread runs (vmm.rs, offload.rs). A native run is pinned to the
    // vCPU's core. `mote run` is started with the bench's own affinity and pins
    // its threads itself: restricted to one CPU, it would count one host CPU and
    // put its vCPU beside the offload thread.
    let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (lwk_cpu, linux_cpu) = if ncpu > 1 { (1, 0) } else { (0, 0) };
    let all_cpus = child::own_cpus()
        .map_err(|e| (1, format!("cannot read this process's CPU affinity: {e}")))?;
    let cpus = Cpus {
        lwk: lwk_cpu,
        linux: linux_cpu,
        all: all_cpus,
    };

    let mut configs = Vec::new();
    for w in &selected {
        configs.push(Config {
            name: w.name.to_string(),
            workload: w,
            load: false,
            runs: Vec::new(),
        });
        if a.load && w.name == workloads::FWQ {
            configs.push(Config {
                name: format!("{}+load", w.name),
                workload: w,
                load: true,
                runs: Vec::new(),
            });
        }
    }
    println!(
        "mote bench: {} configuration(s), {reps} repetition(s) each, native and mote alternating, \
         pinned to host CPU {lwk_cpu}{}",
        configs.len(),
        if a.load {
            format!("; load on CPU {linux_cpu} for the +load configuration")
        } else {
            String::new()
        }
    );
    if ncpu == 1 {
        println!("mote bench: one host CPU: the Linux side and the workload share it");
    }
    for config in &mut configs {
        let load = config.load.then(|| load::Load::start(linux_cpu));
        for rep in 0..reps {
            for side in [Side::Native, Side::Mote] {
                let run = run_once(config, side, rep, a.quick, &mote, &apps, &cpus, a.platform);
                print_progress(config, &run, reps);
                config.runs.push(run);
            }
        }
        if let Some(load) = load {
            load.stop();
        }
    }

    let report = Report {
        quick: a.quick,
        reps,
        lwk_cpu,
        linux_cpu,
        configs,
    };
    println!();
    for c in report.configs.iter().filter(|c| !c.load) {
        println!("{:<10} {}", c.name, c.workload.what);
    }
    if a.load {
        println!(
            "{:<10} the same, with a busy loop, memory copies and file I/O on CPU {linux_cpu}",
            "fwq+load"
        );
    }
    let incomplete = print_table(&report);
    let mut status = 0;
    if let Some(path) = &a.json {
        match output::write_json(path, &report) {
            Ok(()) => println!("raw samples: {}", path.display()),
            Err(e) => {
                eprintln!("mote: bench: cannot write {}: {e}", path.display());
                status = 1;
            }
        }
    }
    if let Some(dir) = &a.plot {
        match output::write_plots(dir, &report) {
            Ok(files) => {
                for f in files {
                    println!("plot: {}", f.display());
                }
            }
            Err(e) => {
                eprintln!("mote: bench: cannot write plots to {}: {e}", dir.display());
                status = 1;
            }
        }
    }
    let failed: Vec<String> = report
        .configs
        .iter()
        .flat_map(|c| {
            c.runs
                .iter()
                .filter_map(move |r| Some((c, r.error.as_ref()?)))
        })
        .map(|(c, e)| format!("{} ({}): {e}", c.name, c.workload.program))
        .collect();
    for f in &failed {
        eprintln!("mote: bench: {f}");
    }
    if !incomplete.is_empty() {
        eprintln!("mote: bench: no figures for: {}", incomplete.join(", "));
    }
    if !failed.is_empty() || !incomplete.is_empty() {
        status = 1;
    }
    Ok(status)
}

/// The workloads named on the command line, in the table's order; all by default.
fn select(names: &[String]) -> Result<Vec<&'static Workload>, (i32, String)> {
    if names.is_empty() {
        return Ok(workloads::ALL.iter().collect());
    }
    for n in names {
        if workloads::find(n).is_none() {
            let known: Vec<&str> = workloads::ALL.iter().map(|w| w.name).collect();
            return Err((
                EXIT_USAGE,
                format!("no workload `{n}` (known: {})", known.join(", ")),
            ));
        }
    }
    Ok(workloads::ALL
        .iter()
        .filter(|w| names.iter().any(|n| n == w.name))
        .collect())
}

/// `<target>/apps/`, beside the profile directory that holds `mote`
/// (`<target>/release/mote`).
fn apps_dir(mote: &Path) -> PathBuf {
    let profile = mote.parent().unwrap_or(Path::new("."));
    profile.parent().unwrap_or(profile).join("apps")
}

/// Where runs go.
struct Cpus {
    /// The compute core: mote's vCPU, and every native run.
    lwk: usize,
    /// The Linux core: the bench waits there, the load runs there.
    linux: usize,
    /// The affinity the bench started with, for `mote run`.
    all: rustix::thread::CpuSet,
}

#[allow(clippy::too_many_arguments)]
fn run_once(
    config: &Config,
    side: Side,
    rep: usize,
    quick: bool,
    mote: &Path,
    apps: &Path,
    cpus: &Cpus,
    platform: crate::cli::PlatformChoice,
) -> Run {
    let w = config.workload;
    let program = apps.join(w.program);
    let args = if quick { w.quick_args } else { w.args };
    let mut cmd = match side {
        Side::Native => Command::new(&program),
        Side::Mote => {
            let mut c = Command::new(mote);
            c.arg("run").arg("--cores").arg(w.cores.to_string());
            if let Some(p) = clap::ValueEnum::to_possible_value(&platform) {
                c.args(["--platform", p.get_name()]);
            }
            c.arg("--").arg(&program);
            c
        }
    };
    cmd.args(args);
    cmd.env_remove("MOTE_DEBUG");
    let mut run = Run {
        side,
        rep,
        wall_ms: f64::NAN,
        status: -1,
        figures: BTreeMap::new(),
        error: None,
    };
    let affinity = match side {
        Side::Native => child::only(cpus.lwk),
        Side::Mote => cpus.all,
    };
    let out = match child::run_pinned(cmd, &affinity, cpus.linux, RUN_LIMIT) {
        Ok(out) => out,
        Err(e) => {
            run.error = Some(format!("cannot run {}: {e}", program.display()));
            return run;
        }
    };
    run.wall_ms = out.wall.as_secs_f64() * 1e3;
    run.status = shell_status(out.status);
    run.figures = stats::parse(&out.stdout);
    run.figures
        .insert(workloads::WALL_MS.to_string(), Value::One(run.wall_ms));
    if out.timed_out {
        run.error = Some(format!("{} run killed after {RUN_LIMIT:?}", side.name()));
    } else if run.status != 0 {
        let tail: Vec<&str> = out.stderr.lines().rev().take(3).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        run.error = Some(format!(
            "{} run exited with status {}: {}",
            side.name(),
            run.status,
            tail.join(" / ")
        ));
    }
    run
}

fn shell_status(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(-1)
}

fn print_progress(config: &Config, run: &Run, reps: usize) {
    let verdict = match &run.error {
        None => "ok".to_string(),
        Some(e) => format!("FAILED: {e}"),
    };
    println!(
        "  {:<10} {}/{} {:<6} {:>9.1} ms  {verdict}",
        config.name,
        run.rep + 1,
        reps,
        run.side.name(),
        run.wall_ms
    );
}

/// Prints the table; returns the configurations with a figure missing on a side.
fn print_table(report: &Report) -> Vec<String> {
    let mut incomplete = Vec::new();
    println!();
    println!(
        "{:<11} {:<34} {:<7} {:>11} {:>11} {:>11} {:>11} {:>9}  ",
        "workload",
        "figure",
        "unit",
        "native med",
        "native p99",
        "mote med",
        "mote p99",
        "mote/nat"
    );
    for config in &report.configs {
        for metric in config.workload.metrics {
            let native = stats::summarize(&config.samples(Side::Native, metric.native_key));
            let under_mote = stats::summarize(&config.samples(Side::Mote, metric.key));
            let label = if metric.pooled {
                format!("{} (all)", metric.key)
            } else {
                metric.key.to_string()
            };
            let (Some(n), Some(m)) = (native, under_mote) else {
                incomplete.push(format!("{} {}", config.name, metric.key));
                println!(
                    "{:<11} {label:<34} {:<7} {:>11} {:>11} {:>11} {:>11} {:>9}",
                    config.name,
                    metric.unit,
                    cell(native.map(|s| s.median)),
                    cell(native.map(|s| s.p99)),
                    cell(under_mote.map(|s| s.median)),
                    cell(under_mote.map(|s| s.p99)),
                    "-"
                );
                continue;
            };
            println!(
                "{:<11} {label:<34} {:<7} {:>11} {:>11} {:>11} {:>11} {:>8.2}x  {}",
                config.name,
                metric.unit,
                num(n.median),
                num(n.p99),
                num(m.median),
                num(m.p99),
                ratio(&n, &m),
                match metric.better {
                    Better::Lower => "lower is better",
                    Better::Higher => "higher is better",
                    Better::Neither => "",
                }
            );
        }
    }
    println!(
        "(median and p99 over {} repetition(s) per side; `(all)`: over every sample of every \
         repetition)",
        report.reps
    );
    incomplete
}

fn ratio(native: &Summary, under_mote: &Summary) -> f64 {
    under_mote.median / native.median
}

fn cell(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), num)
}

/// A figure with as many digits as it deserves.
fn num(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.3}")
    } else if a >= 0.001 || a == 0.0 {
        format!("{v:.4}")
    } else {
        format!("{v:.3e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_parses() {
        use clap::Parser;
        let cli = crate::cli::Cli::try_parse_from([
            "mote", "bench", "--quick", "--json", "s.json", "--plot", "pics", "--load", "--reps",
            "2", "fwq", "gups",
        ])
        .unwrap();
        let crate::cli::Command::Bench(a) = cli.command else {
            panic!("not bench")
        };
        assert!(a.quick && a.load);
        assert_eq!(a.json.as_deref(), Some(Path::new("s.json")));
        assert_eq!(a.plot.as_deref(), Some(Path::new("pics")));
        assert_eq!(a.reps, Some(2));
        assert_eq!(a.workloads, ["fwq", "gups"]);
    }

    #[test]
    fn apps_are_beside_the_profile_directory() {
        assert_eq!(
            apps_dir(Path::new("/w/target/release/mote")),
            Path::new("/w/target/apps")
        );
    }

    #[test]
    fn every_workload_can_be_selected_by_name() {
        for w in workloads::ALL {
            let names = vec![w.name.to_string()];
            assert_eq!(select(&names).unwrap().len(), 1);
        }
        assert_eq!(select(&[]).unwrap().len(), workloads::ALL.len());
        assert!(select(&["nope".to_string()]).is_err());
    }

    #[test]
    fn numbers_keep_their_digits() {
        assert_eq!(num(50366.0), "50366.0");
        assert_eq!(num(9.27), "9.270");
        assert_eq!(num(0.1078), "0.1078");
        assert_eq!(num(9.6e-11), "9.600e-11");
    }
}
