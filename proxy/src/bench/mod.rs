//! `mote bench`: each workload in `apps/` natively and on every mote platform
//! this machine offers (the KVM partition, the hosted platform), in the same
//! invocation, on the same host core, several repetitions interleaved (native,
//! kvm, hosted, native, ...); then one table of medians and p99 per
//! configuration and the ratio of each platform to native per figure. `--json`
//! keeps the raw samples, `--plot` draws them (SVG), `--load` adds an FWQ
//! configuration with a competing Linux load on the Linux core, `--linked` a
//! `+linked` configuration of each workload with its program rewritten by `mote
//! link` (`linked`).
//!
//! Benchmarks print numbers; they never judge them. The bench fails only when a
//! workload fails (its own verification included) or prints no figures.

mod child;
mod linked;
mod load;
mod output;
mod runtimes;
mod stats;
mod workloads;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use std::fmt::Write as _;

use crate::cli::{BenchArgs, BenchPlatform, EXIT_USAGE};
use stats::{Summary, Value};
use workloads::{Better, Metric, Workload};

/// A run still going after this long is killed (a hang, not a measurement).
const RUN_LIMIT: Duration = Duration::from_secs(600);
const REPS_QUICK: usize = 3;
const REPS_FULL: usize = 5;
const BUILD_HINT: &str = "build them with `cargo xtask apps`";

/// A mote platform (`mote run --platform`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Platform {
    Kvm,
    Hosted,
}

impl Platform {
    /// In the order the bench runs and prints them.
    pub const ALL: [Platform; 2] = [Platform::Kvm, Platform::Hosted];

    pub fn name(self) -> &'static str {
        match self {
            Platform::Kvm => "kvm",
            Platform::Hosted => "hosted",
        }
    }
}

/// Where a run ran: natively, or under mote on a platform with one of the
/// runtime images (`runtimes`, by index; 0 when there is one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Native,
    Mote(Platform, usize),
}

impl Side {
    pub fn name(self) -> &'static str {
        match self {
            Side::Native => "native",
            Side::Mote(p, i) => runtimes::side_name(p, i),
        }
    }

    pub fn platform(self) -> Option<Platform> {
        match self {
            Side::Native => None,
            Side::Mote(p, _) => Some(p),
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
    /// The program rewritten by `mote link` this configuration runs instead of
    /// the workload's own (`--linked`).
    pub linked: Option<PathBuf>,
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
    /// The platforms that ran, in order.
    pub platforms: Vec<Platform>,
    /// What the host gives memory: `(setting, value)` pairs.
    pub host_memory: Vec<(String, String)>,
    pub configs: Vec<Config>,
}

impl Report {
    /// Native, then each platform: the columns of the table.
    pub fn sides(&self) -> Vec<Side> {
        sides(&self.platforms)
    }
}

fn sides(platforms: &[Platform]) -> Vec<Side> {
    std::iter::once(Side::Native)
        .chain(
            platforms
                .iter()
                .flat_map(|&p| (0..runtimes::count()).map(move |i| Side::Mote(p, i))),
        )
        .collect()
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
    runtimes::choose(&a.runtime, a.kernel.as_deref()).map_err(|e| (EXIT_USAGE, e))?;
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
    if let Some(w) = selected
        .iter()
        .find(|w| w.launcher.is_some_and(|l| !on_path(l[0])))
    {
        return Err((
            1,
            format!(
                "workload {} runs under `{}`, which is not installed here (Debian: openmpi-bin)",
                w.name,
                w.launcher.map_or("", |l| l[0])
            ),
        ));
    }
    let kvm = crate::info::detect_kvm();
    let (platforms, unavailable) = choose_platforms(&a.platform, |p| match p {
        Platform::Kvm => kvm.usable.clone().map_err(|e| e.to_string()),
        Platform::Hosted => crate::hosted::dispatch_available()
            .map_err(|e| crate::hosted::HostedError::NoDispatch(e).to_string()),
    });
    for line in &unavailable {
        println!("mote bench: {line}");
    }
    if platforms.is_empty() {
        return Err((1, "no mote platform can run on this machine".into()));
    }
    // The host core mote pins its (first) LWK core to (a vCPU, or the hosted
    // platform's core thread), and the Linux core where its offload threads run
    // (vmm.rs, hosted.rs, offload.rs). A native run is pinned to the LWK core.
    // `mote run` is started with the bench's own affinity and pins its threads
    // itself: restricted to one CPU, it would count one host CPU and put its LWK
    // core beside the offload thread.
    let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (lwk_cpu, linux_cpu) = if ncpu > 1 { (1, 0) } else { (0, 0) };
    let all_cpus = child::own_cpus()
        .map_err(|e| (1, format!("cannot read this process's CPU affinity: {e}")))?;
    let cpus = Cpus {
        lwk: lwk_cpu,
        linux: linux_cpu,
        all: all_cpus,
    };

    let mut linker = match a.linked {
        true => Some(linked::Linked::new().map_err(|e| (1, e))?),
        false => None,
    };
    let mut configs = Vec::new();
    for w in &selected {
        configs.push(Config {
            name: w.name.to_string(),
            workload: w,
            load: false,
            linked: None,
            runs: Vec::new(),
        });
        if a.load && w.name == workloads::FWQ {
            configs.push(Config {
                name: format!("{}+load", w.name),
                workload: w,
                load: true,
                linked: None,
                runs: Vec::new(),
            });
        }
        if let Some(l) = linker.as_mut() {
            configs.push(Config {
                name: format!("{}+linked", w.name),
                workload: w,
                load: false,
                linked: Some(l.program(&apps, w).map_err(|e| (1, e))?),
                runs: Vec::new(),
            });
        }
    }
    let sides = sides(&platforms);
    let names: Vec<&str> = sides.iter().map(|s| s.name()).collect();
    println!(
        "mote bench: {} configuration(s), {reps} repetition(s) each of {} in turn, \
         pinned to host CPU {lwk_cpu}{}",
        configs.len(),
        names.join(", "),
        if a.load {
            format!("; load on CPU {linux_cpu} for the +load configuration")
        } else {
            String::new()
        }
    );
    if ncpu == 1 {
        println!("mote bench: one host CPU: the Linux side and the workload share it");
    }
    for line in runtimes::describe() {
        println!("mote bench: {line}");
    }
    let host_memory = host_memory();
    let settings: Vec<String> = host_memory
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    println!("mote bench: host memory: {}", settings.join(" "));
    for config in &mut configs {
        let load = config.load.then(|| load::Load::start(linux_cpu));
        for rep in 0..reps {
            for &side in &sides {
                let run = run_once(config, side, rep, a.quick, &mote, &apps, &cpus);
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
        platforms,
        host_memory,
        configs,
    };
    println!();
    for c in report
        .configs
        .iter()
        .filter(|c| !c.load && c.linked.is_none())
    {
        println!("{:<15} {}", c.name, c.workload.what);
    }
    if a.load {
        println!(
            "{:<15} the same, with a busy loop, memory copies and file I/O on CPU {linux_cpu}",
            "fwq+load"
        );
    }
    if a.linked {
        println!(
            "{:<15} the same program rewritten by `mote link` (a dynamic one with its libraries and ld.so)",
            "NAME+linked"
        );
    }
    let incomplete = print_table(&report);
    linked::print_ratios(&report);
    drop(linker);
    print_page_notes(&report, kvm.kind);
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

/// The platforms to run, in `Platform::ALL`'s order: those asked for (`all`:
/// every one) that `usable` accepts; and a line for each one asked for that it
/// refuses, saying why.
fn choose_platforms(
    asked: &[BenchPlatform],
    usable: impl Fn(Platform) -> Result<(), String>,
) -> (Vec<Platform>, Vec<String>) {
    let wanted = |p: Platform| {
        let named = match p {
            Platform::Kvm => BenchPlatform::Kvm,
            Platform::Hosted => BenchPlatform::Hosted,
        };
        asked.iter().any(|&a| a == BenchPlatform::All || a == named)
    };
    let (mut run, mut skipped) = (Vec::new(), Vec::new());
    for p in Platform::ALL.into_iter().filter(|&p| wanted(p)) {
        match usable(p) {
            Ok(()) => run.push(p),
            Err(why) => skipped.push(format!("{}: not run here: {why}", p.name())),
        }
    }
    (run, skipped)
}

/// What this host gives a program's memory: transparent huge pages for
/// anonymous and for shared memory (the hosted platform's memory is a memfd),
/// and reserved hugetlb pages.
fn host_memory() -> Vec<(String, String)> {
    let chosen = |path: &str| {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|text| {
                text.split_whitespace()
                    .find_map(|w| w.strip_prefix('[')?.strip_suffix(']').map(str::to_string))
            })
            .unwrap_or_else(|| "unknown".into())
    };
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let field = |name: &str| {
        meminfo
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or("unknown")
            .to_string()
    };
    let thp = "/sys/kernel/mm/transparent_hugepage";
    vec![
        ("thp_enabled".into(), chosen(&format!("{thp}/enabled"))),
        (
            "shmem_thp_enabled".into(),
            chosen(&format!("{thp}/shmem_enabled")),
        ),
        ("hugepages_total".into(), field("HugePages_Total")),
        ("hugepages_free".into(), field("HugePages_Free")),
        ("hugepagesize_kb".into(), field("Hugepagesize")),
    ]
}

/// `<target>/apps/`, beside the profile directory that holds `mote`
/// (`<target>/release/mote`).
fn apps_dir(mote: &Path) -> PathBuf {
    let profile = mote.parent().unwrap_or(Path::new("."));
    profile.parent().unwrap_or(profile).join("apps")
}

/// Where runs go.
struct Cpus {
    /// The compute core: mote's first LWK core, and every native run.
    lwk: usize,
    /// The Linux core: the bench waits there, the load runs there.
    linux: usize,
    /// The affinity the bench started with, for `mote run`.
    all: rustix::thread::CpuSet,
}

fn run_once(
    config: &Config,
    side: Side,
    rep: usize,
    quick: bool,
    mote: &Path,
    apps: &Path,
    cpus: &Cpus,
) -> Run {
    let w = config.workload;
    let program = config
        .linked
        .clone()
        .unwrap_or_else(|| apps.join(w.program));
    let args = if quick { w.quick_args } else { w.args };
    let start = |first: &Path| match w.launcher {
        Some(launcher) => {
            let mut c = Command::new(launcher[0]);
            c.args(&launcher[1..]).arg(first);
            c
        }
        None => Command::new(first),
    };
    let mut cmd = match side {
        Side::Native => start(&program),
        Side::Mote(platform, image) => {
            let mut c = start(mote);
            c.arg("run")
                .args(["--platform", platform.name(), "--stats", "--cores"])
                .arg(w.cores.to_string())
                .args(runtimes::options(image))
                .arg("--")
                .arg(&program);
            c
        }
    };
    cmd.args(args);
    if let (Side::Native, Some(opt)) = (side, w.native_linux_cpu_arg) {
        // On a one-CPU machine this is the LWK core too, as mote's proxy is.
        cmd.arg(opt).arg(cpus.linux.to_string());
    }
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
        _ if w.launcher.is_some() => cpus.all,
        Side::Native => child::only(cpus.lwk),
        Side::Mote(..) => cpus.all,
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
    if side != Side::Native {
        run.figures.extend(stats::mote_stats(&out.stderr));
    }
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
        "  {:<14} {}/{} {:<6} {:>9.1} ms  {verdict}",
        config.name,
        run.rep + 1,
        reps,
        run.side.name(),
        run.wall_ms
    );
}

/// Prints the table: per figure, the median and p99 of every side, then each
/// platform's median over native's. Returns the figures missing on a side.
fn print_table(report: &Report) -> Vec<String> {
    let sides = report.sides();
    let mut incomplete = Vec::new();
    println!();
    let mut head = format!("{:<15} {:<34} {:<7}", "workload", "figure", "unit");
    // Columns as wide as their names (`hosted:pack med`), at least 11.
    let widths: Vec<usize> = sides.iter().map(|s| (s.name().len() + 4).max(11)).collect();
    for (s, &w) in sides.iter().zip(&widths) {
        let _ = write!(
            head,
            " {:>w$} {:>w$}",
            format!("{} med", s.name()),
            format!("{} p99", s.name())
        );
    }
    let ratio_heads: Vec<String> = sides[1..]
        .iter()
        .map(|s| format!("{}/nat", s.name()))
        .collect();
    // Several runtimes: each one's median over the first's, per platform.
    let versus = image_pairs(&sides);
    let versus_heads: Vec<String> = versus
        .iter()
        .map(|&(first, other)| format!("{}/{}", sides[other].name(), sides[first].name()))
        .collect();
    for h in ratio_heads.iter().chain(&versus_heads) {
        let _ = write!(head, " {h:>10}");
    }
    println!("{head}");
    for config in &report.configs {
        for metric in config.workload.metrics {
            let summaries: Vec<Option<Summary>> = sides
                .iter()
                .map(|&s| stats::summarize(&config.samples(s, metric.key_on(s))))
                .collect();
            let label = match metric.label {
                Some(l) => l.to_string(),
                None if metric.pooled => format!("{} (all)", metric.key),
                None => metric.key.to_string(),
            };
            for (s, summary) in sides.iter().zip(&summaries) {
                if summary.is_none() {
                    incomplete.push(format!("{} {} ({})", config.name, metric.key, s.name()));
                }
            }
            let mut row = format!("{:<15} {label:<34} {:<7}", config.name, metric.unit);
            for (s, &w) in summaries.iter().zip(&widths) {
                let _ = write!(
                    row,
                    " {:>w$} {:>w$}",
                    cell(s.map(|s| s.median)),
                    cell(s.map(|s| s.p99))
                );
            }
            for (s, h) in summaries[1..].iter().zip(&ratio_heads) {
                let w = h.len().max(10);
                let _ = write!(row, " {:>w$}", ratio_cell(metric, summaries[0], *s));
            }
            for (&(first, other), h) in versus.iter().zip(&versus_heads) {
                let w = h.len().max(10);
                let _ = write!(
                    row,
                    " {:>w$}",
                    ratio_cell(metric, summaries[first], summaries[other])
                );
            }
            row.push_str(match metric.better {
                Better::Lower => "  lower is better",
                Better::Higher => "  higher is better",
                Better::Neither => "",
            });
            println!("{row}");
        }
    }
    println!(
        "(median and p99 over {} repetition(s) per configuration, `(all)`: over every sample of \
         every repetition; PLATFORM/nat: the platform's median over native's{})",
        report.reps,
        if versus.is_empty() {
            ""
        } else {
            "; PLATFORM:B/PLATFORM:A: runtime B's median over runtime A's on one platform"
        }
    );
    incomplete
}

/// With several runtime images: (index of a platform's first image's side,
/// index of another image's side on that platform), for the image-over-image
/// ratios.
fn image_pairs(sides: &[Side]) -> Vec<(usize, usize)> {
    let mut pairs = Vec::new();
    for (i, s) in sides.iter().enumerate() {
        if let Side::Mote(p, image) = *s {
            if image > 0 {
                if let Some(first) = sides.iter().position(|&t| t == Side::Mote(p, 0)) {
                    pairs.push((first, i));
                }
            }
        }
    }
    pairs
}

/// Under the table, where a workload reports `large_pages_pct`: where that
/// figure comes from on each side, and what the host offers.
fn print_page_notes(report: &Report, kvm_kind: Option<crate::info::KvmKind>) {
    let reported = report.configs.iter().any(|c| {
        c.workload
            .metrics
            .iter()
            .any(|m| m.key == workloads::LARGE_PAGES)
    });
    if !reported {
        return;
    }
    println!(
        "{}: the share of the workload's memory on 2 MiB or 1 GiB pages, from its \
         /proc/self/smaps: Linux's natively and on the hosted platform, the partition's page \
         tables on kvm",
        workloads::LARGE_PAGES
    );
    if report.platforms.contains(&Platform::Kvm) && kvm_kind == Some(crate::info::KvmKind::Software)
    {
        println!(
            "  this KVM is kvm_pvm (software): its shadow paging maps guest memory with 4 KiB \
             host pages, so kvm's large pages do not widen the TLB's reach here"
        );
    }
    let settings: Vec<String> = report
        .host_memory
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    println!("  host: {}", settings.join(" "));
}

/// A platform's median over native's, when both are there and the figure is
/// one a ratio says something about.
fn ratio_cell(metric: &Metric, native: Option<Summary>, platform: Option<Summary>) -> String {
    match (native, platform) {
        (Some(n), Some(m)) if metric.better != Better::Neither && n.median != 0.0 => {
            format!("{:.2}x", m.median / n.median)
        }
        _ => "-".to_string(),
    }
}

fn cell(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), num)
}

/// The workloads named on the command line, in the table's order; by default
/// all but the ones run only when named (`workloads::ON_REQUEST`).
fn select(names: &[String]) -> Result<Vec<&'static Workload>, (i32, String)> {
    if names.is_empty() {
        return Ok(workloads::ALL
            .iter()
            .filter(|w| !workloads::ON_REQUEST.contains(&w.name))
            .collect());
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

/// Whether `tool` is a file in one of `PATH`'s directories.
fn on_path(tool: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).any(|d| d.join(tool).is_file())
}

/// A figure with as many digits as it deserves.
pub(crate) fn num(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.3}")
    } else if a == 0.0 {
        "0".to_string()
    } else if a >= 0.001 {
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
        assert_eq!(a.platform, [BenchPlatform::All]);

        let cli = crate::cli::Cli::try_parse_from([
            "mote",
            "bench",
            "--platform",
            "hosted,kvm",
            "--platform",
            "kvm",
        ])
        .unwrap();
        let crate::cli::Command::Bench(a) = cli.command else {
            panic!("not bench")
        };
        assert_eq!(
            a.platform,
            [
                BenchPlatform::Hosted,
                BenchPlatform::Kvm,
                BenchPlatform::Kvm
            ]
        );
        assert!(crate::cli::Cli::try_parse_from(["mote", "bench", "--platform", "vm"]).is_err());

        let cli = crate::cli::Cli::try_parse_from([
            "mote",
            "bench",
            "--runtime",
            "built-in",
            "--runtime",
            "a/rt",
            "--kernel",
            "k",
            "cg2",
        ])
        .unwrap();
        let crate::cli::Command::Bench(a) = cli.command else {
            panic!("not bench")
        };
        assert_eq!(a.runtime, [Path::new("built-in"), Path::new("a/rt")]);
        assert_eq!(a.kernel.as_deref(), Some(Path::new("k")));
        assert_eq!(a.workloads, ["cg2"]);
    }

    #[test]
    fn each_image_is_compared_with_the_first_on_its_platform() {
        let sides = [
            Side::Native,
            Side::Mote(Platform::Kvm, 0),
            Side::Mote(Platform::Kvm, 1),
            Side::Mote(Platform::Kvm, 2),
            Side::Mote(Platform::Hosted, 0),
            Side::Mote(Platform::Hosted, 1),
        ];
        assert_eq!(image_pairs(&sides), [(1, 2), (1, 3), (4, 5)]);
        assert_eq!(image_pairs(&sides[..2]), []);
    }

    #[test]
    fn platforms_run_in_order_and_unusable_ones_are_said() {
        let both = |_: Platform| Ok(());
        let no_kvm = |p: Platform| match p {
            Platform::Kvm => Err("no usable /dev/kvm".to_string()),
            Platform::Hosted => Ok(()),
        };
        use BenchPlatform::{All, Hosted, Kvm};
        assert_eq!(
            choose_platforms(&[All], both),
            (vec![Platform::Kvm, Platform::Hosted], vec![])
        );
        assert_eq!(
            choose_platforms(&[Hosted, Kvm, Hosted], both),
            (vec![Platform::Kvm, Platform::Hosted], vec![])
        );
        assert_eq!(
            choose_platforms(&[Hosted], both),
            (vec![Platform::Hosted], vec![])
        );
        assert_eq!(
            choose_platforms(&[All], no_kvm),
            (
                vec![Platform::Hosted],
                vec!["kvm: not run here: no usable /dev/kvm".to_string()]
            )
        );
        let (run, said) = choose_platforms(&[Kvm], no_kvm);
        assert!(run.is_empty());
        assert_eq!(said.len(), 1);
    }

    #[test]
    fn sides_are_native_then_each_platform() {
        assert_eq!(
            sides(&[Platform::Kvm, Platform::Hosted]),
            [
                Side::Native,
                Side::Mote(Platform::Kvm, 0),
                Side::Mote(Platform::Hosted, 0)
            ]
        );
        let names: Vec<&str> = sides(&Platform::ALL).iter().map(|s| s.name()).collect();
        assert_eq!(names, ["native", "kvm", "hosted"]);
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
        assert_eq!(
            select(&[]).unwrap().len(),
            workloads::ALL.len() - workloads::ON_REQUEST.len()
        );
        assert!(select(&["nope".to_string()]).is_err());
    }

    #[test]
    fn numbers_keep_their_digits() {
        assert_eq!(num(50366.0), "50366.0");
        assert_eq!(num(9.27), "9.270");
        assert_eq!(num(0.1078), "0.1078");
        assert_eq!(num(9.6e-11), "9.600e-11");
        assert_eq!(num(0.0), "0");
    }
}
