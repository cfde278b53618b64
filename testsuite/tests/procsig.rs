//! Signals between processes and threads, and `posix_spawn`'s attributes, as
//! natively (`apps/procsig.c`, one mode per case): a run ended by a signal ends
//! `mote` by that signal; a child's `SIGUSR1` and its `SIGCHLD` reach the
//! parent's handlers, also through the mask argument of `pselect`, `ppoll` and
//! `epoll_pwait`; `POSIX_SPAWN_CLOSE`, `setsigmask` and `setsigdef` apply in the
//! child and the parent's descriptor numbers stay Linux's; ignored `SIGPIPE`
//! gives `EPIPE`, in a spawned child too; `sigwait` takes a signal another
//! thread sends to the process; thread ids are distinct; a vfork child's handler
//! changes stay in the child; CPU-time interval timers work.

use mote_testsuite::{app, Platform, Program};

fn procsig(pf: Platform, mode: &str) -> String {
    let (native, _) = Program::new(app("procsig"))
        .on(pf)
        .arg(mode)
        .same_as_native();
    native.stdout_text()
}

/// Regression: mote exited with 128+signal, so a parent saw an exit status of
/// 137 where natively its child was killed by SIGKILL (`same_as_native` compares
/// `WIFSIGNALED` too). Also through a parent under mote that spawns them.
fn a_run_ended_by_a_signal_ends_mote_by_that_signal(pf: Platform) {
    for (mode, status) in [("raise9", 137), ("raise15", 143)] {
        let (native, mote) = Program::new(app("procsig"))
            .on(pf)
            .arg(mode)
            .same_as_native();
        assert!(native.signalled && mote.signalled, "{mote:?}");
        assert_eq!(mote.status, status, "{mote:?}");
    }
    let out = procsig(pf, "children");
    assert!(out.contains("raise(SIGKILL): killed by signal 9"), "{out}");
    assert!(out.contains("raise(SIGTERM): killed by signal 15"), "{out}");
}

mote_testsuite::on_both_platforms!(a_run_ended_by_a_signal_ends_mote_by_that_signal,);
