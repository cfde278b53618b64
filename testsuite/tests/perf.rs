//! `perf_event_open` for the application's own execution (`apps/perfself.c`),
//! natively and under mote: the figures a program reads about itself are its
//! own, not the proxy's offload thread's (which is idle while the application
//! computes, and would give a task-clock near 0 and no context switches).
//!
//! The bounds are correctness bounds, never timings of mote: the machine is
//! shared, so wall time says little of CPU time; the task-clock is compared with
//! the CPU time the same run's `getrusage` accounts around the same loop, on
//! both sides.

use std::collections::BTreeMap;

use mote_testsuite::{app, Platform, Program, Run};

fn figures(run: &Run) -> BTreeMap<String, String> {
    assert_eq!(run.status, 0, "{run:?}");
    run.stdout_text()
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn num(f: &BTreeMap<String, String>, key: &str) -> u64 {
    f.get(key)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key}: {f:?}"))
}

/// What holds for a run's own figures, natively and under mote.
fn check_self_consistent(f: &BTreeMap<String, String>, who: &str) {
    let cpu = num(f, "cpu_ns");
    for key in ["task_clock_ns", "task_clock_pid"] {
        let task = num(f, key);
        // The loop's CPU time, as getrusage accounts it, is what task-clock
        // counts; the idle offload thread would count next to nothing.
        assert!(
            task >= cpu / 2 && task <= cpu.saturating_mul(2) + 10_000_000,
            "{who}: {key} {task} ns against {cpu} ns of CPU time: {f:?}"
        );
    }
    // Each sleep blocks the thread once.
    assert!(num(f, "cs") >= num(f, "sleeps"), "{who}: {f:?}");
    // Page faults are what the platform's own accounting says (getrusage).
    let (pf, minflt) = (num(f, "pf"), num(f, "minflt"));
    assert!(pf.abs_diff(minflt) <= 16, "{who}: {f:?}");
}

fn counts_its_own_task_clock_switches_and_faults(pf: Platform) {
    let prog = Program::new(app("perfself")).on(pf);
    let native: Vec<_> = (0..3).map(|_| figures(&prog.native())).collect();
    for f in &native {
        check_self_consistent(f, "native");
    }
    let mote = figures(&prog.mote());
    check_self_consistent(&mote, "mote");
    // Context switches: within what native runs show, give or take the sleeps'
    // number (a core that idles may switch once more than a thread that sleeps).
    let cs = num(&mote, "cs");
    let max = native.iter().map(|f| num(f, "cs")).max().unwrap();
    let min = native.iter().map(|f| num(f, "cs")).min().unwrap();
    assert!(
        cs >= min && cs <= max + num(&mote, "sleeps"),
        "mote {cs} context switches, native {min}..={max}: {mote:?}"
    );
    // Linux takes a fault per page touched; libos maps memory before use, so
    // under mote there is none to count (docs/compatibility.md).
    assert!(num(&native[0], "pf") >= num(&native[0], "touched_pages") / 512);
    assert_eq!(num(&mote, "pf"), 0, "{mote:?}");
}

/// Where the machine has no PMU, a hardware event fails as natively.
fn hardware_events_give_natives_answer(pf: Platform) {
    let prog = Program::new(app("perfself")).on(pf);
    let native = figures(&prog.native());
    let mote = figures(&prog.mote());
    assert_eq!(mote["cycles"], native["cycles"], "{mote:?}");
}

mote_testsuite::on_both_platforms!(
    counts_its_own_task_clock_switches_and_faults,
    hardware_events_give_natives_answer,
);
