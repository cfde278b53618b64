//! Signals, natively and under mote: `apps/signals.c` (faults delivered to
//! handlers with their siginfo, raise/kill, blocked signals, sigsuspend,
//! sigtimedwait, handler flags, FP state, timers waking pause and interrupting
//! reads and sleeps) prints the same lines; and signals sent to the `mote`
//! process from outside (`apps/spin.c`) reach the application: Ctrl-C ends a
//! compute loop with 130 and leaves nothing behind, a handler runs instead when
//! installed, and a blocking forwarded call is interrupted as on Linux; `kill
//! -SEGV` and `kill -BUS` are the application's too (139, 135), not mote's crash.

use std::time::Duration;

use mote_testsuite::{app, assert_same, children_of, send_signal, Platform, Program};

fn signals_program_same_as_native(pf: Platform) {
    let (_, mote) = Program::new(app("signals")).on(pf).same_as_native();
    assert!(
        mote.stdout_text().ends_with("all checks passed\n"),
        "{mote:?}"
    );
}

/// Every call trapping (no patched sites): delivery, sigreturn and restarts from
/// the trap entry's frame instead of the patched entry's slow path.
fn signals_program_with_every_call_trapping(pf: Platform) {
    let prog = Program::new(app("signals")).on(pf);
    let native = prog.native();
    let mote = prog.mote_with(&["--no-patch"]);
    assert_same(&native, &mote);
}

/// The same program and signal natively and under mote: same stdout and status.
fn signalled(pf: Platform, args: &[&str], sig: &str, status: i32, stdout: &str) {
    let prog = Program::new(app("spin")).on(pf).args(args);
    let native = prog.native_signalled(sig);
    let mote = prog.mote_signalled(sig);
    assert_same(&native, &mote);
    assert_eq!(mote.status, status, "{mote:?}");
    assert_eq!(mote.stdout_text(), stdout, "{mote:?}");
}

fn ctrl_c_ends_a_compute_loop_with_130(pf: Platform) {
    signalled(pf, &[], "INT", 130, "ready\n");
}

fn sigterm_ends_a_compute_loop_with_143(pf: Platform) {
    signalled(pf, &[], "TERM", 143, "ready\n");
}

fn sigint_handler_runs_instead_of_ending_the_loop(pf: Platform) {
    signalled(
        pf,
        &["handler"],
        "INT",
        0,
        "ready\ncaught SIGINT; loop: ended\n",
    );
}

fn ctrl_c_ends_a_blocking_read_with_130(pf: Platform) {
    signalled(pf, &["read"], "INT", 130, "ready\n");
}

fn sigterm_handler_interrupts_a_blocking_read_with_eintr(pf: Platform) {
    signalled(
        pf,
        &["read", "handler"],
        "TERM",
        0,
        "ready\ncaught SIGTERM; read: EINTR\n",
    );
}

fn sigint_handler_interrupts_nanosleep_with_the_time_left(pf: Platform) {
    signalled(
        pf,
        &["sleep", "handler"],
        "INT",
        0,
        "ready\ncaught SIGINT; nanosleep: EINTR\n",
    );
}

fn sigwaitinfo_takes_a_blocked_signal_from_outside(pf: Platform) {
    signalled(
        pf,
        &["wait"],
        "INT",
        0,
        "ready\nsigwaitinfo: SIGINT, sent by a process: yes\n",
    );
}

fn ctrl_c_ends_computing_threads_with_130(pf: Platform) {
    signalled(pf, &["threads"], "INT", 130, "ready\n");
}

fn sigint_handler_runs_while_threads_compute_and_main_waits(pf: Platform) {
    signalled(
        pf,
        &["threads", "handler"],
        "INT",
        0,
        "ready\ncaught SIGINT; threads: ended\n",
    );
}

/// Regression (hosted): the proxy kicks the application's process (a
/// real-time signal, so Linux queues every one) every 2 ms until a signal from
/// outside is taken. Kicks that piled up while the process could not run were
/// delivered as nested frames at once and overflowed the idle context's stack
/// into the runtime's heap: a runtime panic or a SIGSEGV in its allocator
/// instead of status 130. Here the application's process is stopped while
/// SIGINT arrives, then continued. Hosted only: the partition has no process of
/// its own to stop (its vCPUs are threads of `mote`).
#[test]
fn kicks_queued_while_the_hosted_process_was_stopped_do_not_crash_the_runtime() {
    let prog = Program::new(app("spin")).arg("read").on(Platform::Hosted);
    let native = prog.native_signalled("INT");
    let mut stopped = None;
    let run = prog.mote_poked_with(&[], |mote| {
        let app = children_of(mote);
        match (stopped, app.as_slice()) {
            (None, &[pid]) => {
                stopped = Some(pid);
                send_signal(pid, "STOP");
                send_signal(mote, "INT");
                // The proxy kicks meanwhile (every 2 ms): ~150 queue up.
                std::thread::sleep(Duration::from_millis(300));
                send_signal(pid, "CONT");
            }
            _ => send_signal(mote, "INT"),
        }
    });
    assert!(stopped.is_some(), "no application process to stop\n{run:?}");
    assert_same(&native, &run);
    assert_eq!(run.status, 130, "{run:?}");
    assert!(!run.stderr_text().contains("runtime panic"), "{run:?}");
}

/// Regression: `kill -SEGV <mote>` was taken for a fault of mote itself —
/// ignored once (Rust's stack-overflow handler returned), then mote died of the
/// second without a word. Sent by a process (`SI_USER`), it is the application's.
fn sigsegv_from_outside_ends_a_compute_loop_with_139(pf: Platform) {
    signalled(pf, &[], "SEGV", 139, "ready\n");
}

fn sigbus_from_outside_ends_a_compute_loop_with_135(pf: Platform) {
    signalled(pf, &[], "BUS", 135, "ready\n");
}

fn sigsegv_from_outside_ends_a_blocking_read_with_139(pf: Platform) {
    signalled(pf, &["read"], "SEGV", 139, "ready\n");
}

fn sigsegv_handler_runs_for_a_kill_from_outside(pf: Platform) {
    signalled(
        pf,
        &["handler"],
        "SEGV",
        0,
        "ready\ncaught SIGSEGV; loop: ended\n",
    );
}

fn sigbus_handler_interrupts_a_blocking_read_with_eintr(pf: Platform) {
    signalled(
        pf,
        &["read", "handler"],
        "BUS",
        0,
        "ready\ncaught SIGBUS; read: EINTR\n",
    );
}

/// Regression: a program started with SIGINT ignored (`nohup`, a shell's
/// background job) keeps it ignored across `execve`, natively; under mote the
/// proxy routed SIGINT to an application that had it at its default and the run
/// ended with 130. Ctrl-C first, then SIGTERM, which ends it on both sides.
fn inherited_ignored_sigint_stays_ignored(pf: Platform) {
    let prog =
        Program::new(app("spin"))
            .on(pf)
            .under(["sh", "-c", "trap '' INT; exec \"$@\"", "sh"]);
    let int_then_term = || {
        let mut sent = 0;
        move |pid: u32| {
            send_signal(pid, if sent == 0 { "INT" } else { "TERM" });
            sent += 1;
        }
    };
    let native = prog.native_poked(int_then_term());
    let mote = prog.mote_poked_with(&[], int_then_term());
    assert_same(&native, &mote);
    assert_eq!(mote.status, 143, "{mote:?}");
    assert_eq!(mote.stdout_text(), "ready\n", "{mote:?}");
}

/// A write into a pipe nobody reads: SIGPIPE ends the program (141), or, with
/// SIGPIPE ignored by the program itself (as CPython does) or inherited ignored
/// (`trap '' PIPE`), the write fails with EPIPE. Regression: the forwarded
/// write's SIGPIPE killed mote itself (141) even when the application ignored
/// it, so Python's BrokenPipeError never came; and mote reads the inherited
/// disposition before Rust's start-up ignores SIGPIPE.
fn sigpipe_default_or_inherited_ignored_as_natively(pf: Platform) {
    let prog = Program::new(app("brokenpipe")).on(pf);
    let (_, mote) = prog.same_as_native();
    assert_eq!(mote.status, 141, "{mote:?}");
    let (_, mote) = prog.clone().arg("ignore").same_as_native();
    assert_eq!(mote.stdout_text(), "write: EPIPE\n", "{mote:?}");
    let ignoring = prog.under(["sh", "-c", "trap '' PIPE; exec \"$@\"", "sh"]);
    let (_, mote) = ignoring.same_as_native();
    assert_eq!(mote.status, 0, "{mote:?}");
    assert_eq!(mote.stdout_text(), "write: EPIPE\n", "{mote:?}");
}

mote_testsuite::on_both_platforms!(
    inherited_ignored_sigint_stays_ignored,
    sigpipe_default_or_inherited_ignored_as_natively,
    signals_program_same_as_native,
    signals_program_with_every_call_trapping,
    ctrl_c_ends_a_compute_loop_with_130,
    sigterm_ends_a_compute_loop_with_143,
    sigint_handler_runs_instead_of_ending_the_loop,
    ctrl_c_ends_a_blocking_read_with_130,
    sigterm_handler_interrupts_a_blocking_read_with_eintr,
    sigint_handler_interrupts_nanosleep_with_the_time_left,
    sigwaitinfo_takes_a_blocked_signal_from_outside,
    ctrl_c_ends_computing_threads_with_130,
    sigint_handler_runs_while_threads_compute_and_main_waits,
    sigsegv_from_outside_ends_a_compute_loop_with_139,
    sigbus_from_outside_ends_a_compute_loop_with_135,
    sigsegv_from_outside_ends_a_blocking_read_with_139,
    sigsegv_handler_runs_for_a_kill_from_outside,
    sigbus_handler_interrupts_a_blocking_read_with_eintr,
);
