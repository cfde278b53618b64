//! `mote bench --quick` as a smoke test: every workload ran natively and under
//! mote and produced figures. What the figures are is never asserted (benchmarks
//! print numbers; tests do not time anything).

use std::fs;

use mote_testsuite::{run_mote_command, Platform, TempDir};

/// The configurations `mote bench --quick --load` reports, one or more table rows each.
const CONFIGS: &[&str] = &[
    "latency", "fwq", "fwq+load", "gups", "stream", "alloc", "cg", "startup",
];

/// Whether a table row carries figures: native and mote median and p99, and a
/// `1.23x` ratio.
fn row_has_figures(row: &str) -> bool {
    let words: Vec<&str> = row.split_whitespace().collect();
    let numbers = words
        .iter()
        .filter(|w| w.parse::<f64>().is_ok_and(f64::is_finite))
        .count();
    let ratio = words.iter().any(|w| {
        w.strip_suffix('x')
            .is_some_and(|r| r.parse::<f64>().is_ok_and(f64::is_finite))
    });
    numbers >= 4 && ratio
}

/// `mote bench --quick --load --platform P`.
fn quick_bench_runs_every_workload_and_reports_figures(pf: Platform) {
    let dir = TempDir::new("bench");
    let json = dir.path().join("samples.json");
    let plots = dir.path().join("plots");
    let mut args = vec![
        "bench",
        "--quick",
        "--load",
        "--json",
        json.to_str().expect("utf-8 temp path"),
        "--plot",
        plots.to_str().expect("utf-8 temp path"),
    ];
    args.extend(pf.options());
    let run = run_mote_command(&args);
    assert_eq!(run.status, 0, "{run:?}");
    let text = run.stdout_text();
    // The table: the lines after its header.
    let table: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("workload "))
        .skip(1)
        .collect();
    for config in CONFIGS {
        let rows: Vec<&str> = table
            .iter()
            .copied()
            .filter(|l| l.split_whitespace().next() == Some(config))
            .collect();
        assert!(
            !rows.is_empty(),
            "no table row for {config}:\n{text}\n{run:?}"
        );
        for row in rows {
            assert!(
                row_has_figures(row),
                "{config}: row without figures: {row}\n{text}"
            );
        }
        // Every repetition of both sides ran and passed its own checks.
        for side in ["native", "mote"] {
            let ok = text
                .lines()
                .filter(|l| {
                    let w: Vec<&str> = l.split_whitespace().collect();
                    w.first() == Some(config) && w.get(2) == Some(&side)
                })
                .filter(|l| l.ends_with(" ok"))
                .count();
            assert!(ok >= 1, "{config}: no {side} run passed:\n{text}");
        }
    }

    let samples = fs::read_to_string(&json).expect("--json wrote its file");
    for config in CONFIGS {
        assert!(
            samples.contains(&format!("\"name\": \"{config}\"")),
            "{config} missing from {}",
            json.display()
        );
    }
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
    }
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
    assert!(row_has_figures(
        "gups        ns_per_update                ns            9.647      11.563       9.455       9.658     0.98x  lower is better"
    ));
    assert!(!row_has_figures(
        "gups        ns_per_update                ns            -   -   9.455       9.658     -"
    ));
}

mote_testsuite::on_both_platforms!(quick_bench_runs_every_workload_and_reports_figures);
