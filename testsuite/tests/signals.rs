//! Signals, natively and under mote: `apps/signals.c` (faults delivered to
//! handlers with their siginfo, raise/kill, blocked signals, sigsuspend,
//! sigtimedwait, handler flags, FP state, timers waking pause and interrupting
//! reads and sleeps) prints the same lines; and signals sent to the `mote`
//! process from outside (`apps/spin.c`) reach the application: Ctrl-C ends a
//! compute loop with 130 and leaves nothing behind, a handler runs instead when
//! installed, and a blocking forwarded call is interrupted as on Linux.

use mote_testsuite::{app, assert_same, Program};

#[test]
fn signals_program_same_as_native() {
    let (_, mote) = Program::new(app("signals")).same_as_native();
    assert!(
        mote.stdout_text().ends_with("all checks passed\n"),
        "{mote:?}"
    );
}

/// Every call trapping (no patched sites): delivery, sigreturn and restarts from
/// the trap entry's frame instead of the patched entry's slow path.
#[test]
fn signals_program_with_every_call_trapping() {
    let prog = Program::new(app("signals"));
    let native = prog.native();
    let mote = prog.mote_with(&["--no-patch"]);
    assert_same(&native, &mote);
}

/// The same program and signal natively and under mote: same stdout and status.
fn signalled(args: &[&str], sig: &str, status: i32, stdout: &str) {
    let prog = Program::new(app("spin")).args(args);
    let native = prog.native_signalled(sig);
    let mote = prog.mote_signalled(sig);
    assert_same(&native, &mote);
    assert_eq!(mote.status, status, "{mote:?}");
    assert_eq!(mote.stdout_text(), stdout, "{mote:?}");
}

#[test]
fn ctrl_c_ends_a_compute_loop_with_130() {
    signalled(&[], "INT", 130, "ready\n");
}

#[test]
fn sigterm_ends_a_compute_loop_with_143() {
    signalled(&[], "TERM", 143, "ready\n");
}

#[test]
fn sigint_handler_runs_instead_of_ending_the_loop() {
    signalled(
        &["handler"],
        "INT",
        0,
        "ready\ncaught SIGINT; loop: ended\n",
    );
}

#[test]
fn ctrl_c_ends_a_blocking_read_with_130() {
    signalled(&["read"], "INT", 130, "ready\n");
}

#[test]
fn sigterm_handler_interrupts_a_blocking_read_with_eintr() {
    signalled(
        &["read", "handler"],
        "TERM",
        0,
        "ready\ncaught SIGTERM; read: EINTR\n",
    );
}

#[test]
fn sigint_handler_interrupts_nanosleep_with_the_time_left() {
    signalled(
        &["sleep", "handler"],
        "INT",
        0,
        "ready\ncaught SIGINT; nanosleep: EINTR\n",
    );
}

#[test]
fn sigwaitinfo_takes_a_blocked_signal_from_outside() {
    signalled(
        &["wait"],
        "INT",
        0,
        "ready\nsigwaitinfo: SIGINT, sent by a process: yes\n",
    );
}

#[test]
fn ctrl_c_ends_computing_threads_with_130() {
    signalled(&["threads"], "INT", 130, "ready\n");
}

#[test]
fn sigint_handler_runs_while_threads_compute_and_main_waits() {
    signalled(
        &["threads", "handler"],
        "INT",
        0,
        "ready\ncaught SIGINT; threads: ended\n",
    );
}
