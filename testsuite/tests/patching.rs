//! Self-patching system-call sites: a site that traps once is rewritten into a
//! direct call, so a loop of calls takes no further trap; `--no-patch` keeps every
//! call trapping. Either way the program behaves exactly as natively.

use mote_testsuite::{app, Program};

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

#[test]
fn a_loop_of_system_calls_stops_trapping_once_its_sites_are_patched() {
    let prog = Program::new(app("syscall_loop"));
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
}

#[test]
fn no_patch_keeps_every_call_trapping() {
    let prog = Program::new(app("syscall_loop"));
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
}

/// Regression: the patched entry gives the arithmetic flags back with `sahf` and
/// an `add` instead of `popfq` (which cost ~70 ns per forwarded call); every flag
/// pattern, DF included, must come back from a patched site as from `syscall`.
#[test]
fn patched_sites_give_the_flags_back() {
    let prog = Program::new(app("syscall_flags"));
    let native = prog.native();
    assert_eq!(native.status, 0, "{native:?}");
    for platform in ["kvm", "hosted"] {
        let mote = prog.mote_with(&["--stats", "--platform", platform]);
        assert_eq!(mote.status, native.status, "{platform}: {mote:?}");
        assert_eq!(mote.stdout, native.stdout, "{platform}");
        let (_, direct) = counts(&mote.stderr_text());
        assert!(
            direct >= 4000,
            "{platform}: only {direct} calls went through patched sites"
        );
    }
}
