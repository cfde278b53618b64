//! `execve` inside a mote application replaces the program in the same partition
//! (the path a launcher or a shell `exec` takes), also from a process with
//! other threads (which end first, as Linux's `de_thread` ends them), and
//! `/proc/self/exe` names the application's program, not the proxy.

use mote_testsuite::{app, Platform, Program};

fn a_launcher_execs_bin_echo(pf: Platform) {
    let (_, mote) = Program::new(app("execve_echo")).on(pf).same_as_native();
    let out = mote.stdout_text();
    assert!(
        out.contains("execve of a missing program: No such file or directory"),
        "{out}"
    );
    assert!(
        out.contains("/proc/self/exe names this program: yes"),
        "{out}"
    );
    assert!(out.ends_with("hi\n"), "{out}");
    assert_eq!(mote.status, 0);
}

/// `mote run -- ./script` runs a `#!` script through its interpreter, as execve
/// does (here busybox's shell, whose `echo` and `exit` are built in).
fn a_shebang_script_runs_through_its_interpreter(pf: Platform) {
    let dir = mote_testsuite::TempDir::new("shebang");
    let script = dir.file(
        "hello.sh",
        format!(
            "#!{} sh\necho \"from a script: $0 $1\"\nexit 7\n",
            mote_testsuite::busybox().display()
        ),
    );
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let (_, mote) = Program::new(&script).on(pf).arg("one").same_as_native();
    assert_eq!(mote.status, 7);
    assert!(mote.stdout_text().contains("from a script:"));
}

/// Regression: Linux resolved `/proc/self/exe` for the proxy, so the application
/// re-executing itself ran the `mote` binary in the partition. The exec closes
/// exactly the close-on-exec descriptors (found from the proxy's open ones, not
/// by trying every number below `RLIMIT_NOFILE`).
fn execve_of_proc_self_exe_runs_the_program_again(pf: Platform) {
    let (_, mote) = Program::new(app("reexec")).on(pf).same_as_native();
    assert_eq!(
        mote.stdout_text(),
        "first run\nrunning again, argc=2\n\
         fd 11: open\nfd 10: closed\nfd 1001: open\nfd 1000: closed\n"
    );
    assert_eq!(mote.status, 3);
}

/// `apps/exec_threads.c` in `mode`, natively and under mote on one core and
/// on two (where the spinning thread runs beside the one that execs, and only
/// the proxy's kick brings it into the runtime): the same output and status,
/// and mote says nothing on stderr.
fn exec_threads(pf: Platform, mode: &str) -> String {
    let p = Program::new(app("exec_threads")).on(pf).arg(mode);
    let native = p.native();
    for cores in ["1", "2"] {
        let mote = p.mote_with(&["--cores", cores]);
        mote_testsuite::assert_same(&native, &mote);
        assert_eq!(mote.stderr_text(), native.stderr_text(), "{mote:?}");
    }
    native.stdout_text()
}

/// `execve` from the main thread while five others run: one spinning, one
/// blocked in a `read` on a pipe (a forwarded call), one in a futex wait, one
/// in `nanosleep`, one making system calls in a loop. Each ends without returning to its code, and the new
/// program has the pid and one thread whose id is the pid. Regression: it was
/// `ENOSYS` (and before that, the new program was loaded under the running
/// threads, which crashed).
fn execve_from_the_main_thread_while_others_run(pf: Platform) {
    let out = exec_threads(pf, "main");
    assert_eq!(
        out,
        "main: five threads running, three of them blocked: yes\n\
         after execve from the main thread: pid kept yes, tid = pid yes, /proc/self/task lists 1\n"
    );
}

/// `execve` from a thread other than the main one (which waits in
/// `pthread_join`): the caller takes the thread-group leader's id, so the new
/// program's `gettid()` is its `getpid()`, as Linux's `de_thread` does.
fn execve_from_a_second_thread_takes_the_leaders_id(pf: Platform) {
    let out = exec_threads(pf, "thread");
    assert!(
        out.ends_with(
            "the exec'ing thread is not the main one: yes\n\
             after execve from the second thread: pid kept yes, tid = pid yes, /proc/self/task lists 1\n"
        ),
        "{out}"
    );
}

/// `execve` from the main thread while another spawns children in a loop
/// (`posix_spawn`: each child a vfork child running on this memory until its
/// own `execve`): the spawning thread ends once its child has left.
fn execve_while_another_thread_spawns_children(pf: Platform) {
    let out = exec_threads(pf, "spawn");
    assert!(
        out.ends_with(
            "after execve from the main thread: pid kept yes, tid = pid yes, /proc/self/task lists 1\n"
        ),
        "{out}"
    );
}

/// A failing `execve` (no such program) from a thread leaves every other
/// thread as it was: the spinner spins, the blocked ones stay blocked, and each
/// ends its wait the ordinary way afterwards.
fn a_failing_execve_from_a_thread_leaves_the_others_running(pf: Platform) {
    let out = exec_threads(pf, "fail");
    for line in [
        "execve of a missing program from a thread: No such file or directory",
        "spinner still spinning: yes",
        "caller still calling: yes",
        "caller stopped",
        "blocked threads still blocked: yes",
        "reader read 1 byte(s): x",
        "futex waiter woken",
        "sleeper: nanosleep -1, Interrupted system call",
    ] {
        assert!(out.contains(line), "{line}: {out}");
    }
}

mote_testsuite::on_both_platforms!(
    a_launcher_execs_bin_echo,
    a_shebang_script_runs_through_its_interpreter,
    execve_of_proc_self_exe_runs_the_program_again,
    execve_from_the_main_thread_while_others_run,
    execve_from_a_second_thread_takes_the_leaders_id,
    a_failing_execve_from_a_thread_leaves_the_others_running,
    execve_while_another_thread_spawns_children,
);
