//! Resource limits that end in a signal (`apps/limits.c`), natively and under
//! mote: a write past `RLIMIT_FSIZE` raises `SIGXFSZ` for the writing thread — its
//! default action ends the run with 153, a handler runs, an ignored or blocked one
//! leaves `EFBIG` — and CPU time past `RLIMIT_CPU` raises `SIGXCPU` (152, or the
//! handler, and the soft limit goes up a second), past the hard limit `SIGKILL`
//! (137).

use mote_testsuite::{app, assert_same, Platform, Program, Run, TempDir};

/// `limits fsize FILE ARGS` natively and under mote: same stdout and status, and
/// the file holds what the limit let through (4096 bytes) after each.
fn fsize(pf: Platform, args: &[&str]) -> (Run, Run) {
    let dir = TempDir::new("limits");
    let file = dir.path().join("out");
    let prog = Program::new(app("limits"))
        .on(pf)
        .arg("fsize")
        .arg(&file)
        .args(args);
    let native = prog.native();
    let native_len = std::fs::metadata(&file).map(|m| m.len());
    std::fs::remove_file(&file).expect("the native run wrote the file");
    let mote = prog.mote();
    let mote_len = std::fs::metadata(&file).map(|m| m.len());
    assert_same(&native, &mote);
    assert_eq!(native_len.ok(), Some(4096), "{native:?}");
    assert_eq!(mote_len.ok(), Some(4096), "{mote:?}");
    (native, mote)
}

/// Regression: the forwarded write returned `EFBIG` but `SIGXFSZ` stayed pending
/// in the proxy's offload thread, so the run ended with 0 and a truncated file.
fn write_past_rlimit_fsize_is_killed_by_sigxfsz_with_153(pf: Platform) {
    let (_, mote) = fsize(pf, &[]);
    assert_eq!(mote.status, 153, "{mote:?}");
    assert_eq!(mote.stdout_text(), "write: 4096\n", "{mote:?}");
    assert!(
        mote.stderr_text()
            .contains("mote: application killed by SIGXFSZ"),
        "{mote:?}"
    );
}

fn sigxfsz_handler_runs_and_the_write_fails_with_efbig(pf: Platform) {
    let (_, mote) = fsize(pf, &["handler"]);
    assert_eq!(mote.status, 0, "{mote:?}");
    assert_eq!(
        mote.stdout_text(),
        "write: 4096\nwrite: EFBIG\ncaught SIGXFSZ; SI_USER: yes; own pid: yes\n",
        "{mote:?}"
    );
}

fn ignored_sigxfsz_leaves_efbig(pf: Platform) {
    let (_, mote) = fsize(pf, &["ignore"]);
    assert_eq!(mote.status, 0, "{mote:?}");
    assert_eq!(
        mote.stdout_text(),
        "write: 4096\nwrite: EFBIG\n",
        "{mote:?}"
    );
}

fn blocked_sigxfsz_stays_pending_after_efbig(pf: Platform) {
    let (_, mote) = fsize(pf, &["block"]);
    assert_eq!(mote.status, 0, "{mote:?}");
    assert_eq!(
        mote.stdout_text(),
        "write: 4096\nwrite: EFBIG\npending: SIGXFSZ\n",
        "{mote:?}"
    );
}

/// The signal is the writing thread's (it does not block it; the main thread does).
fn sigxfsz_of_a_second_thread_ends_the_run(pf: Platform) {
    let (_, mote) = fsize(pf, &["thread"]);
    assert_eq!(mote.status, 153, "{mote:?}");
    assert_eq!(mote.stdout_text(), "write: 4096\n", "{mote:?}");
}

fn cpu(pf: Platform, args: &[&str]) -> Run {
    let (_, mote) = Program::new(app("limits"))
        .on(pf)
        .arg("cpu")
        .args(args)
        .same_as_native();
    mote
}

/// Regression (hosted): the application's process computed past `RLIMIT_CPU`
/// forever; the limit was the proxy's, whose own CPU time stayed small.
fn cpu_time_past_rlimit_cpu_is_killed_by_sigxcpu_with_152(pf: Platform) {
    let mote = cpu(pf, &[]);
    assert_eq!(mote.status, 152, "{mote:?}");
    assert_eq!(mote.stdout_text(), "computing\n", "{mote:?}");
}

fn sigxcpu_handler_runs_when_cpu_time_passes_rlimit_cpu(pf: Platform) {
    let mote = cpu(pf, &["handler"]);
    assert_eq!(mote.status, 0, "{mote:?}");
    assert_eq!(
        mote.stdout_text(),
        "computing\ncaught SIGXCPU\nsoft limit now: 2\n",
        "{mote:?}"
    );
}

/// Past the hard limit Linux sends SIGKILL, whatever the handler of SIGXCPU.
fn cpu_time_past_the_hard_rlimit_cpu_is_killed_by_sigkill_with_137(pf: Platform) {
    let mote = cpu(pf, &["hard"]);
    assert_eq!(mote.status, 137, "{mote:?}");
    assert_eq!(
        mote.stdout_text(),
        "computing\ncaught SIGXCPU\n",
        "{mote:?}"
    );
}

mote_testsuite::on_both_platforms!(
    write_past_rlimit_fsize_is_killed_by_sigxfsz_with_153,
    sigxfsz_handler_runs_and_the_write_fails_with_efbig,
    ignored_sigxfsz_leaves_efbig,
    blocked_sigxfsz_stays_pending_after_efbig,
    sigxfsz_of_a_second_thread_ends_the_run,
    cpu_time_past_rlimit_cpu_is_killed_by_sigxcpu_with_152,
    sigxcpu_handler_runs_when_cpu_time_passes_rlimit_cpu,
    cpu_time_past_the_hard_rlimit_cpu_is_killed_by_sigkill_with_137,
);
