//! Process trees beyond `fork` itself (issue 13), each case against a native
//! run (same stdout, same status): process groups and sessions, a socketpair,
//! a `SIGCHLD` handler and a forking TCP echo server, Python's `multiprocessing`
//! with the spawn and forkserver start methods, `/proc/self/task`.
//! All on both platforms (the partition forks too).

use std::path::PathBuf;
use std::process::Command;

use mote_testsuite::{app, busybox, Platform, Program, TempDir};

/// `/proc/self/task` and `/proc/<pid>/task` list exactly the application's
/// threads (the ids `gettid` gives them), and each thread's `comm`, `stat` and
/// `status` carry its name, state and ids. Regression: the listing was the
/// `mote` process's, with `mote-offloadN`, `mote-signals` and the vCPU threads,
/// and a thread's files were its offload thread's. Regression: writing another
/// thread's `comm` (`pthread_setname_np`, which opens it `O_RDWR`) was
/// `EACCES`; it renames the thread, as Linux's `comm_write` (15 bytes, a
/// newline kept).
fn proc_self_task_lists_the_applications_threads(pf: Platform) {
    let (native, _) = Program::new(app("tasks")).on(pf).same_as_native();
    let text = native.stdout_text();
    for line in [
        "/proc/self/comm: tasks-main",
        "/proc/self/task lists the 4 threads: yes",
        "/proc/<pid>/task/ lists the 4 threads: yes",
        "main: comm tasks-main, stat name tasks-main state R pid=tid yes, status name tasks-main state R tgid=pid yes pid=tid yes threads 4",
        "spinner: comm spinner, stat name spinner state R pid=tid yes, status name spinner state R tgid=pid yes pid=tid yes threads 4",
        "futex waiter: comm futex-waiter, stat name futex-waiter state S pid=tid yes, status name futex-waiter state S tgid=pid yes pid=tid yes threads 4",
        "reader: comm tasks-main, stat name tasks-main state S pid=tid yes, status name tasks-main state S tgid=pid yes pid=tid yes threads 4",
        "/proc/thread-self/comm: tasks-main",
        "a thread that is not ours: no such file",
        "pthread_setname_np of another thread: 0, pthread_getname_np: 0 renamed",
        "renamed reader: comm renamed, stat name renamed state S pid=tid yes, status name renamed state S tgid=pid yes pid=tid yes threads 4",
        "write \"raw\\n\" to the spinner's comm: 4",
        "spinner: comm \"raw\\n\\n\"",
        "write 20 bytes (O_RDWR): 20",
        "spinner: comm \"abcdefghijklmno\\n\"",
        "write /proc/self/comm (O_WRONLY|O_CREAT|O_TRUNC): 10",
        "main: comm \"main-again\\n\"",
        "main's stat name: main-again",
        "after the joins, /proc/self/task lists the main thread only: yes",
    ] {
        assert!(text.contains(line), "{line}: {text}");
    }
}

/// `ls /proc/self/task` (busybox, after an `exec` that keeps the shell's pid)
/// prints the one thread, whose id is the pid.
fn busybox_ls_of_proc_self_task(pf: Platform) {
    let p = Program::new(busybox())
        .args(["sh", "-c", "echo $$; exec busybox ls /proc/self/task"])
        .on(pf);
    // The pid differs between the runs: each run's two lines are the same.
    for run in [p.native(), p.mote()] {
        assert_eq!(run.status, 0, "{run:?}");
        let text = run.stdout_text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert_eq!(lines[0], lines[1], "{text}");
    }
}

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

/// A socketpair between a parent and its child, a `SIGCHLD` handler counting
/// five children, and a forking TCP echo server on loopback (a child per
/// connection, reaped by its handler) serving 100 clients.
fn socketpair_sigchld_and_a_forking_echo_server(pf: Platform) {
    let (native, _) = Program::new(app("forkserve")).on(pf).same_as_native();
    assert_eq!(
        native.stdout_text(),
        "socketpair: child answered OVER A SOCKETPAIR, exited 0\n\
         SIGCHLD handler: reaped 5 children\n\
         echo server: 100 of 100 clients got their line back\n\
         server: 100 connections, 100 children reaped by its handler\n\
         server exited 0\n"
    );
}

/// The real CPython binary (PATH may hold a wrapper script, e.g. pyenv's shim).
fn python() -> PathBuf {
    let out = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3 is needed for this test");
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// `multiprocessing.Pool.map` with start method `method`, from a script file
/// (spawn and forkserver children import the main module again: a `-c`
/// program's functions cannot be found there, natively either).
fn pool_map(pf: Platform, method: &str) {
    let code = "
import multiprocessing as mp, sys
def sq(x):
    return x * x
if __name__ == '__main__':
    with mp.get_context(sys.argv[1]).Pool(2) as p:
        print(sum(p.map(sq, range(100))))
";
    let dir = TempDir::new("pool");
    let script = dir.file("pool.py", code);
    let (native, mote) = Program::new(python())
        .arg(&script)
        .arg(method)
        .on(pf)
        .same_as_native();
    assert_eq!(native.stdout_text(), "328350\n");
    // The pool ends its workers with SIGTERM: natively nothing is printed.
    // Regression: each spawned worker's mote said `mote: application killed
    // by SIGTERM`.
    assert_eq!(mote.stderr_text(), native.stderr_text(), "{mote:?}");
}

/// `Pool.map` with the spawn start method: each worker a `mote run` of its
/// own through `posix_spawn`.
fn python_pool_map_with_spawn(pf: Platform) {
    pool_map(pf, "spawn");
}

/// The forkserver start method: a server started by spawn forks the workers.
fn python_pool_map_with_forkserver(pf: Platform) {
    pool_map(pf, "forkserver");
}

mote_testsuite::on_both_platforms!(
    proc_self_task_lists_the_applications_threads,
    busybox_ls_of_proc_self_task,
    python_pool_map_with_spawn,
    process_groups_and_sessions,
    socketpair_sigchld_and_a_forking_echo_server,
    python_pool_map_with_forkserver,
);
