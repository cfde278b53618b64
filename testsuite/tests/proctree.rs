//! Process trees beyond `fork` itself (issue 13), each case against a native
//! run (same stdout, same status): process groups and sessions.
//!
//! Cases that need `fork` run on the hosted platform only until the partition
//! forks (see fork.rs); they take the platform as an argument, so they join
//! `on_both_platforms!` then.

use mote_testsuite::{app, Platform, Program};

/// `setpgid`/`getpgid`/`setsid`/`getsid`, `kill(-pgid, …)` and `kill(0, …)`
/// reach exactly the application's processes. Regression (hosted): the
/// application's hosted process, a process of mote's, was in the proxy's
/// process group, so `kill(0, SIGSEGV)` reached it as well, and its runtime
/// took the sent signal for a fault of its own and never ended.
fn process_groups_and_sessions(pf: Platform) {
    let (native, _) = Program::new(app("pgroup"))
        .under(["setsid"])
        .on(pf)
        .same_as_native();
    let text = native.stdout_text();
    for line in [
        "session leader: yes",
        "setsid as a leader: -1 EPERM",
        "own group, kill(-pgid, SIGUSR1): exited 10",
        "group of two, second: killed by signal 15",
        "kill(0, SIGUSR2): the caller's handler ran 1 time(s)",
        "same group, kill(0, SIGUSR2): exited 11",
        "other group, not reached, then SIGTERM: killed by signal 15",
        "kill(0, SIGSEGV): handler ran, si_code SI_USER",
        "same group, kill(0, SIGSEGV): killed by signal 11",
        "setsid in a child (13: new session and group, EPERM twice): exited 13",
        "all checks passed",
    ] {
        assert!(text.contains(line), "{line}: {text}");
    }
}

/// Cases that need `fork`: the hosted platform's until the partition forks.
mod hosted {
    use super::*;

    #[test]
    fn process_groups_and_sessions() {
        super::process_groups_and_sessions(Platform::Hosted)
    }
}
