//! Self-patching system-call sites: a site that traps once is rewritten into a
//! direct call, so a loop of calls takes no further trap; `--no-patch` keeps every
//! call trapping. Either way the program behaves exactly as natively. On the
//! hosted platform a trapped call is one `SIGSYS`.

use mote_testsuite::{app, Platform, Program};

/// (trapped, through patched sites) from the `--stats` line.
fn counts(stderr: &str) -> (u64, u64) {
    let line = stderr
        .lines()
        .find(|l| l.contains("system calls:"))
        .unwrap_or_else(|| panic!("no statistics line in stderr:\n{stderr}"));
    let num = |after: &str| -> u64 {
        let rest = &line[line
            .find(after)
            .unwrap_or_else(|| panic!("{after:?} in {line:?}"))
            + after.len()..];
        rest.split_whitespace()
            .next()
            .unwrap()
            .trim_end_matches(',')
            .parse()
            .unwrap()
    };
    (num("system calls: "), num("trapped, "))
}

/// The hosted platform's count of trap signals, from its `--stats` line.
fn hosted_trap_signals(stderr: &str) -> u64 {
    let rest = stderr
        .lines()
        .find_map(|l| l.strip_prefix("mote: hosted: trap signals "))
        .unwrap_or_else(|| panic!("no hosted statistics in stderr:\n{stderr}"));
    rest.split_whitespace().next().unwrap().parse().unwrap()
}

fn a_loop_of_system_calls_stops_trapping_once_its_sites_are_patched(pf: Platform) {
    let prog = Program::new(app("syscall_loop")).on(pf);
    let native = prog.native();
    let mote = prog.mote_with(&["--stats"]);
    assert_eq!(mote.status, native.status, "{mote:?}");
    assert_eq!(mote.stdout, native.stdout);
    let (trapped, direct) = counts(&mote.stderr_text());
    // 2 x 2000 calls in the loop and 20 writes: each site traps once.
    assert!(
        trapped < 200,
        "{trapped} trapped calls: the loop's sites were not patched"
    );
    assert!(
        direct >= 4000,
        "only {direct} calls went through patched sites"
    );
    if pf == Platform::Hosted {
        // Every trapped call was one SIGSYS, and nothing else trapped.
        assert_eq!(
            hosted_trap_signals(&mote.stderr_text()),
            trapped,
            "{mote:?}"
        );
    }
}

fn no_patch_keeps_every_call_trapping(pf: Platform) {
    let prog = Program::new(app("syscall_loop")).on(pf);
    let native = prog.native();
    let mote = prog.mote_with(&["--stats", "--no-patch"]);
    assert_eq!(mote.status, native.status, "{mote:?}");
    assert_eq!(mote.stdout, native.stdout);
    let (trapped, direct) = counts(&mote.stderr_text());
    assert!(
        trapped >= 4000,
        "only {trapped} trapped calls with --no-patch"
    );
    assert_eq!(direct, 0);
    if pf == Platform::Hosted {
        assert_eq!(
            hosted_trap_signals(&mote.stderr_text()),
            trapped,
            "{mote:?}"
        );
    }
}

/// Regression: the patched entry gives the arithmetic flags back with `sahf` and
/// an `add` instead of `popfq` (which cost ~70 ns per forwarded call); every flag
/// pattern, DF included, must come back from a patched site as from `syscall`.
fn patched_sites_give_the_flags_back(pf: Platform) {
    let prog = Program::new(app("syscall_flags")).on(pf);
    let native = prog.native();
    assert_eq!(native.status, 0, "{native:?}");
    let mote = prog.mote_with(&["--stats"]);
    assert_eq!(mote.status, native.status, "{mote:?}");
    assert_eq!(mote.stdout, native.stdout);
    let (_, direct) = counts(&mote.stderr_text());
    assert!(
        direct >= 4000,
        "only {direct} calls went through patched sites"
    );
}

mote_testsuite::on_both_platforms!(
    a_loop_of_system_calls_stops_trapping_once_its_sites_are_patched,
    no_patch_keeps_every_call_trapping,
    patched_sites_give_the_flags_back,
);
