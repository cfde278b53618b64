//! `mote bench --quick` as a smoke test: every workload ran natively and on
//! every platform (kvm and hosted, as `platforms.rs` expects of this machine),
//! and produced figures in each column. What the figures are is never asserted
//! (benchmarks print numbers; tests do not time anything).

use std::fs;
use std::time::Duration;

use mote_testsuite::{run_mote_command, run_mote_command_within, Program, TempDir};

/// A whole `mote bench --quick` runs a few dozen programs: about a minute here
/// unloaded, two or more when the machine is shared. It counts as hung only
/// after this long.
const BENCH_HANG_LIMIT: Duration = Duration::from_secs(600);

/// The configurations `mote bench --quick --load` reports, one or more table rows each.
const CONFIGS: &[&str] = &[
    "latency",
    "fwq",
    "fwq+load",
    "gups",
    "stream",
    "alloc",
    "cg",
    "cg2",
    "startup",
    "startup_dyn",
];

/// The MPI group, run only when named: two ranks under Open MPI's `mpirun`.
const MPI_CONFIGS: &[&str] = &["mpi", "mpi_cg"];

/// The columns besides native.
const PLATFORMS: &[&str] = &["kvm", "hosted"];

/// What a table row holds besides its labels: the finite numbers (a median and
/// a p99 per side), and the ratio cells (`1.23x`, or `-` for a figure a ratio
/// says nothing about, as an iteration count), in order.
fn row_cells(row: &str) -> (usize, Vec<Option<f64>>) {
    let words: Vec<&str> = row.split_whitespace().collect();
    let numbers = words
        .iter()
        .filter(|w| w.parse::<f64>().is_ok_and(f64::is_finite))
        .count();
    // The ratios follow the last number.
    let after = words
        .iter()
        .rposition(|w| w.parse::<f64>().is_ok())
        .map_or(0, |i| i + 1);
    let ratios = words[after..]
        .iter()
        .map_while(|w| match *w {
            "-" => Some(None),
            w => w
                .strip_suffix('x')
                .and_then(|r| r.parse::<f64>().ok())
                .filter(|r| r.is_finite())
                .map(Some),
        })
        .collect();
    (numbers, ratios)
}

/// The table of a bench run: its header has every platform's columns, and each
/// of `configs` has rows with a median and p99 per side, a ratio per platform,
/// and a passing run on every side. Returns the table's lines.
fn check_table(run: &mote_testsuite::Run, configs: &[&str]) -> Vec<String> {
    let text = run.stdout_text();
    assert!(
        !text.contains("not run here"),
        "a platform was left out:\n{text}"
    );
    // The table: its header, then the lines after it.
    let header = text
        .lines()
        .find(|l| l.starts_with("workload "))
        .unwrap_or_else(|| panic!("no table:\n{text}"));
    for p in PLATFORMS {
        for column in [format!("{p} med"), format!("{p} p99"), format!("{p}/nat")] {
            assert!(header.contains(&column), "no {column} column: {header}");
        }
    }
    let table: Vec<String> = text
        .lines()
        .skip_while(|l| !l.starts_with("workload "))
        .skip(1)
        .map(String::from)
        .collect();
    let sides = 1 + PLATFORMS.len();
    for config in configs {
        let rows: Vec<&str> = table
            .iter()
            .map(String::as_str)
            .filter(|l| l.split_whitespace().next() == Some(config))
            .collect();
        assert!(
            !rows.is_empty(),
            "no table row for {config}:\n{text}\n{run:?}"
        );
        let mut with_ratios = 0;
        for row in rows {
            let (numbers, ratios) = row_cells(row);
            assert_eq!(
                numbers,
                2 * sides,
                "{config}: a side without its median and p99: {row}\n{text}"
            );
            assert_eq!(
                ratios.len(),
                PLATFORMS.len(),
                "{config}: not one ratio cell per platform: {row}"
            );
            with_ratios += usize::from(ratios.iter().all(Option::is_some));
        }
        assert!(
            with_ratios > 0,
            "{config}: no platform/native ratio\n{text}"
        );
        // Every side ran and passed its own checks.
        for side in std::iter::once(&"native").chain(PLATFORMS) {
            let ok = text
                .lines()
                .filter(|l| {
                    let w: Vec<&str> = l.split_whitespace().collect();
                    w.first() == Some(config) && w.get(2) == Some(side)
                })
                .filter(|l| l.ends_with(" ok"))
                .count();
            assert!(ok >= 1, "{config}: no {side} run passed:\n{text}");
        }
    }

    table
}

#[test]
fn quick_bench_runs_every_workload_on_every_platform_and_reports_figures() {
    let dir = TempDir::new("bench");
    let json = dir.path().join("samples.json");
    let plots = dir.path().join("plots");
    let run = run_mote_command_within(
        &[
            "bench",
            "--quick",
            "--load",
            "--json",
            json.to_str().expect("utf-8 temp path"),
            "--plot",
            plots.to_str().expect("utf-8 temp path"),
        ],
        BENCH_HANG_LIMIT,
    );
    assert_eq!(run.status, 0, "{run:?}");
    let text = run.stdout_text();
    let table = check_table(&run, CONFIGS);
    // The forwarded call against its floor, measured natively in the same run.
    assert!(
        table
            .iter()
            .any(|l| l.starts_with("latency") && l.contains("getppid vs floor")),
        "no floor row for the forwarded call:\n{text}"
    );

    let samples = fs::read_to_string(&json).expect("--json wrote its file");
    for config in CONFIGS {
        assert!(
            samples.contains(&format!("\"name\": \"{config}\"")),
            "{config} missing from {}",
            json.display()
        );
    }
    assert!(
        samples.contains("\"platforms\": [\"kvm\", \"hosted\"]"),
        "platforms missing from {}",
        json.display()
    );
    for side in ["native", "kvm", "hosted"] {
        assert!(
            samples.contains(&format!("\"side\": \"{side}\"")),
            "no {side} run in {}",
            json.display()
        );
    }
    assert!(
        samples.contains("\"getppid_floor.raw_ns\": ["),
        "the floor's raw samples missing"
    );
    assert!(
        samples.contains("\"raw_cycles\": ["),
        "FWQ raw samples missing"
    );
    for picture in [
        "fwq-timeline.svg",
        "fwq-load-timeline.svg",
        "latency-histogram.svg",
    ] {
        let svg = fs::read_to_string(plots.join(picture)).expect("--plot wrote its picture");
        assert!(
            svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
            "{picture}"
        );
        for panel in ["native", "mote on kvm", "mote on hosted"] {
            assert!(svg.contains(panel), "{picture}: no {panel} panel");
        }
    }
}

/// The MPI group (`mote bench mpi mpi_cg`): both programs ran under `mpirun`
/// natively and with `mote run` on every platform, with figures in each column.
#[test]
fn quick_bench_runs_the_mpi_group_under_mpirun() {
    let run = run_mote_command_within(
        &["bench", "--quick", "--reps", "1", "mpi", "mpi_cg"],
        BENCH_HANG_LIMIT,
    );
    assert_eq!(run.status, 0, "{run:?}");
    let table = check_table(&run, MPI_CONFIGS);
    assert!(
        table.iter().any(|l| l.contains("bandwidth_1m_mbs")),
        "no bandwidth row:\n{}",
        run.stdout_text()
    );
}

/// `mote bench --linked`: each workload beside its `+linked` configuration (the
/// program rewritten by `mote link`) on every side, and the linked/plain table
/// with a ratio per side for each figure. `rawsite` is the loop over a site the
/// self-patcher cannot patch.
#[test]
fn quick_bench_compares_linked_programs_with_their_originals() {
    let run = run_mote_command_within(
        &[
            "bench", "--quick", "--reps", "1", "--linked", "rawsite", "startup",
        ],
        BENCH_HANG_LIMIT,
    );
    assert_eq!(run.status, 0, "{run:?}");
    check_table(
        &run,
        &["rawsite", "rawsite+linked", "startup", "startup+linked"],
    );
    let text = run.stdout_text();
    let header = text
        .lines()
        .find(|l| l.starts_with("linked/plain "))
        .unwrap_or_else(|| panic!("no linked/plain table:\n{text}"));
    for side in std::iter::once(&"native").chain(PLATFORMS) {
        assert!(header.contains(side), "no {side} column: {header}");
    }
    let rows: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("linked/plain "))
        .skip(1)
        .take_while(|l| !l.starts_with('('))
        .collect();
    for config in ["rawsite", "startup"] {
        let name = format!("{config}+linked/{config}");
        let row = rows
            .iter()
            .find(|l| l.split_whitespace().next() == Some(name.as_str()))
            .unwrap_or_else(|| panic!("no linked/plain row for {config}:\n{text}"));
        let ratios = row
            .split_whitespace()
            .filter_map(|w| w.strip_suffix('x')?.parse::<f64>().ok())
            .filter(|r| r.is_finite() && *r > 0.0)
            .count();
        assert_eq!(ratios, 1 + PLATFORMS.len(), "{row}\n{text}");
    }
}

/// Without a usable /dev/kvm the bench says so in one line and runs the
/// hosted platform beside native.
#[test]
fn bench_without_kvm_says_so_and_runs_hosted() {
    let mote = mote_testsuite::artifacts()
        .mote
        .to_str()
        .expect("mote's path is UTF-8");
    // The harness passes its own environment through: the override goes
    // through `env` for this one command.
    let run = Program::new("/usr/bin/env")
        .args([
            "MOTE_KVM=none",
            mote,
            "bench",
            "--quick",
            "--reps",
            "1",
            "startup",
        ])
        .native();
    assert_eq!(run.status, 0, "{run:?}");
    let text = run.stdout_text();
    let said: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("not run here"))
        .collect();
    assert_eq!(said.len(), 1, "{text}");
    assert!(
        said[0].starts_with("mote bench: kvm: not run here: ") && said[0].contains("MOTE_KVM=none"),
        "{text}"
    );
    let header = text
        .lines()
        .find(|l| l.starts_with("workload "))
        .unwrap_or_else(|| panic!("no table:\n{text}"));
    assert!(
        header.contains("hosted med") && !header.contains("kvm"),
        "{header}"
    );
    let row = text
        .lines()
        .skip_while(|l| !l.starts_with("workload "))
        .find(|l| l.starts_with("startup "))
        .unwrap_or_else(|| panic!("no startup row:\n{text}"));
    let (numbers, ratios) = row_cells(row);
    assert_eq!((numbers, ratios.len()), (4, 1), "{row}");
}

#[test]
fn asking_for_the_unusable_platform_alone_fails_naming_it() {
    let mote = mote_testsuite::artifacts()
        .mote
        .to_str()
        .expect("mote's path is UTF-8");
    let run = Program::new("/usr/bin/env")
        .args([
            "MOTE_KVM=none",
            mote,
            "bench",
            "--quick",
            "--platform",
            "kvm",
            "startup",
        ])
        .native();
    assert_eq!(run.status, 1, "{run:?}");
    assert!(run.stdout_text().contains("kvm: not run here: "), "{run:?}");
    assert!(
        run.stderr_text()
            .starts_with("mote: bench: no mote platform can run"),
        "{run:?}"
    );
}

#[test]
fn unknown_workload_is_a_usage_error() {
    let run = run_mote_command(&["bench", "--quick", "nonesuch"]);
    assert_eq!(run.status, 2, "{run:?}");
    let err = run.stderr_text();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("mote: ") && err.contains("nonesuch") && err.contains("fwq"),
        "{err}"
    );
}

#[test]
fn row_parsing() {
    let (numbers, ratios) = row_cells(
        "gups        ns_per_update                      ns           18.442      32.150      \
         14.851      15.586      14.0        15.0       0.81x      0.76x  lower is better",
    );
    assert_eq!((numbers, ratios), (6, vec![Some(0.81), Some(0.76)]));
    let (numbers, ratios) = row_cells(
        "gups        large_pages_pct                    %            0  0  100.0  100.0  0  0  -  -",
    );
    assert_eq!((numbers, ratios), (6, vec![None, None]));
    let (numbers, ratios) = row_cells(
        "gups        ns_per_update                      ns       -   -   9.455  9.658  1  2  -  -",
    );
    assert_eq!((numbers, ratios), (4, vec![None, None]));
}
