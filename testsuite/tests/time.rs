//! The partition's clocks (answered from the TSC by libos): consistent with each
//! other, monotonic, and running at the rate of Linux's clocks — the same lines as
//! natively; and the vDSO that answers the clocks in the application itself.

use mote_testsuite::{app, Platform, Program};

fn clocks_agree_and_advance(pf: Platform) {
    let (_, mote) = Program::new(app("clocks")).on(pf).same_as_native();
    assert!(mote.stdout_text().contains("went backwards 0 times"));
    assert!(mote
        .stdout_text()
        .contains("a 200 ms sleep measures at least 200 ms on both clocks"));
}

/// The number of system calls (trapped and without a trap) from `--stats`.
fn system_calls(stderr: &str) -> u64 {
    let line = stderr
        .lines()
        .find(|l| l.contains("system calls:"))
        .unwrap_or_else(|| panic!("no statistics line in stderr:\n{stderr}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    let before = |w: &str| -> u64 {
        let i = words.iter().position(|x| *x == w).unwrap();
        words[i - 1].parse().unwrap()
    };
    before("trapped,") + before("without")
}

fn clock_reads_are_answered_in_the_vdso_without_a_system_call(pf: Platform) {
    let prog = Program::new(app("clocks")).on(pf);
    let native = prog.native();
    let mote = prog.mote_with(&["--stats"]);
    assert_eq!(mote.status, native.status, "{mote:?}");
    assert_eq!(mote.stdout, native.stdout);
    // 200,000 monotonic reads; the runtime sees only the start-up calls, the
    // nanosleep and a reference refresh per second.
    let calls = system_calls(&mote.stderr_text());
    assert!(
        calls < 1000,
        "{calls} system calls: clock_gettime did not stay in the vDSO"
    );
}

fn the_vdso_is_mapped_and_exports_linuxs_clock_functions_after_execve_too(pf: Platform) {
    let (_, mote) = Program::new(app("vdso"))
        .on(pf)
        .arg("exec")
        .same_as_native();
    let out = mote.stdout_text();
    assert_eq!(out.matches("AT_SYSINFO_EHDR: present").count(), 2, "{out}");
    assert_eq!(out.matches("@LINUX_2.6: found").count(), 10, "{out}");
}

fn a_dynamically_linked_program_finds_the_vdso(pf: Platform) {
    let (_, mote) = Program::new(app("vdso_dyn")).on(pf).same_as_native();
    let out = mote.stdout_text();
    assert!(
        out.contains("[vdso] in maps: yes, [vvar] in maps: yes"),
        "{out}"
    );
    assert!(out.contains("agrees with the system call: yes"), "{out}");
}

/// `getrusage` and `times` describe the partition: user time is the vCPUs' (the
/// application's computing), the peak resident size its memory, and the minor
/// faults kernel-min's — none while touching fresh memory, which natively takes
/// thousands.
fn getrusage_and_times_describe_the_partition(pf: Platform) {
    let run = Program::new(app("rusage")).on(pf).mote();
    assert_eq!(run.status, 0, "{run:?}");
    let text = run.stdout_text();
    for line in [
        "user time grew: yes",
        "peak resident size covers the 64 MiB touched: yes",
        "minor faults while touching 64 MiB: 0",
        "times: user ticks: yes, elapsed ticks: yes",
        "RUSAGE_THREAD: ok",
        "RUSAGE_CHILDREN: ok",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
}

mote_testsuite::on_both_platforms!(
    clocks_agree_and_advance,
    clock_reads_are_answered_in_the_vdso_without_a_system_call,
    the_vdso_is_mapped_and_exports_linuxs_clock_functions_after_execve_too,
    a_dynamically_linked_program_finds_the_vdso,
    getrusage_and_times_describe_the_partition,
);
