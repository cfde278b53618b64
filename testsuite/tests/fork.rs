//! Process trees (issue 13): `fork` and `wait4`/`waitid`/`waitpid`, each case
//! against a native run (same stdout, same status).
//!
//! Every case runs on both platforms: on the hosted one the child is a hosted
//! process forked by the child's proxy, in the partition a new VM on a copy of
//! the parent's memory.

use std::path::PathBuf;
use std::process::Command;

use mote_testsuite::{app, busybox, Platform, Program};

/// Regression (hosted): `wait(-1)` with no children hung for ever, because the
/// application's hosted process is a child of the proxy that forwards the wait.
/// Natively and on both platforms: `ECHILD` at once, before a child and after it
/// was reaped, whatever `__WALL`/`__WCLONE`/`WNOHANG` say.
fn wait_without_children_is_echild_at_once(pf: Platform) {
    let (native, _) = Program::new(app("wait_nochild")).on(pf).same_as_native();
    let text = native.stdout_text();
    assert!(
        text.contains("reaped the child: its pid, exited 7"),
        "{text}"
    );
    assert_eq!(text.matches("errno ECHILD").count(), 14, "{text}");
}

/// Exit codes and a child killed by a signal through `waitpid`, the child's
/// pids (`getppid` is the parent's `getpid`), copied memory, a pipe both ways,
/// fork + exec, a double fork whose grandchild is orphaned, then `ECHILD`.
fn fork_and_wait_as_natively(pf: Platform) {
    let (native, _) = Program::new(app("fork")).on(pf).same_as_native();
    let text = native.stdout_text();
    for line in [
        "child 1: exited 3",
        "child 2: killed by signal 9",
        "child 3 answered: THROUGH A PIPE",
        "child 4 (exec): exited 4",
        "grandchild: orphaned, ran on",
        "all checks passed",
    ] {
        assert!(text.contains(line), "{line}: {text}");
    }
}

/// A parent with 4 threads forks: only the calling thread goes on in the child
/// (the others' counters stay still there), `pthread_atfork` handlers run, the
/// child starts and joins a thread of its own, the parent's threads go on.
fn fork_from_a_parent_with_four_threads(pf: Platform) {
    let p = Program::new(app("fork_threads")).on(pf);
    let native = p.native();
    assert_eq!(native.status, 0, "{native:?}");
    for cores in ["1", "2"] {
        mote_testsuite::assert_same(&native, &p.mote_with(&["--cores", cores]));
    }
    let text = native.stdout_text();
    assert!(
        text.contains("workers frozen yes, own thread ran (42), atfork child 1"),
        "{text}"
    );
    assert!(text.contains("parent: joined, 10"), "{text}");
}

/// What a fork child shares and what it copies (apps/fork_memory.c): shared
/// anonymous memory, a shared `/dev/zero` mapping, a `/dev/shm` object and a
/// System V segment written by the child are the parent's too; private memory
/// is copied; `MADV_DONTFORK` memory faults in the child, `MADV_WIPEONFORK`
/// memory is zero there, `MADV_DOFORK`/`MADV_KEEPONFORK` undo them; shared
/// anonymous memory on huge pages is shared both ways.
/// Regression: shared anonymous memory was pool memory, copied like private;
/// with `MAP_HUGETLB` it still was (the child's write was lost).
fn fork_memory_shared_copied_dontfork_wipeonfork(pf: Platform) {
    let (native, _) = Program::new(app("fork_memory")).on(pf).same_as_native();
    let text = native.stdout_text();
    for line in [
        "MAP_SHARED|MAP_ANONYMOUS: child 0, parent sees \"written by the child\"",
        "private: child 0, parent sees \"parent's\"",
        "dontfork: child reading the marked page: 42 (42: SIGSEGV), the page before it: 3",
        "wipeonfork: child sees zeros: yes, parent keeps 'w'",
        "MAP_SHARED|MAP_HUGETLB: child 0, parent sees \"written by the child\"",
        "MAP_SHARED|MAP_HUGETLB: the child sees the parent's later write: yes",
        "all checks passed",
    ] {
        assert!(text.contains(line), "{line}: {text}");
    }
}

/// Memory the parent wrote and freed before a fork (apps/fork_freed.c): the
/// child and the parent find memory they map again zero, the memory kept is
/// the child's too, as natively; and the fork copied none of the freed 256
/// MiB (`MOTE_DEBUG=1`'s `fork: copied N MiB` line: libos's record of the
/// chunks that may hold data, `libos/src/frames/held.rs`).
/// Regression: every chunk below the frame pool's bump pointer was read and
/// its non-zero blocks copied, freed or not (258 MiB here).
fn memory_freed_before_a_fork_is_not_copied(pf: Platform) {
    let p = Program::new(app("fork_freed")).on(pf);
    let (native, _) = p.same_as_native();
    assert!(
        native
            .stdout_text()
            .contains("child: the memory kept is there: yes; memory mapped again is zero: yes"),
        "{native:?}"
    );
    let debug = p.under(["env", "MOTE_DEBUG=1"]).mote();
    assert_eq!(debug.status, 0, "{debug:?}");
    let stderr = debug.stderr_text();
    let copied: Vec<u64> = stderr
        .lines()
        .filter_map(|l| l.split("fork: copied ").nth(1))
        .filter_map(|rest| rest.split(' ').next()?.parse().ok())
        .collect();
    assert_eq!(copied.len(), 1, "{stderr}");
    assert!(copied[0] < 64, "copied {} MiB: {stderr}", copied[0]);
}

/// The script of the shell cases: a pipeline, a subshell with its status,
/// command substitution, a background job and `wait` for it, two background
/// jobs and a bare `wait` for both (their lines sorted: they race), and a
/// job's exit status through `wait`.
const SCRIPT: &str =
    "echo one two three | wc -w; seq 3 | sort -r; echo \"[$(echo substituted)]\"; \
                      (echo in a subshell; exit 3); echo status $?; \
                      (sleep 0.1; echo background) & wait $!; echo waited $?; \
                      { (echo job one) & (sleep 0.1; echo job two) & wait; echo waited for both; } | sort; \
                      (exit 5) & wait $!; echo job status $?";

/// Regression: `bash -c 'echo x | tr x y'` ended with status 2 (its forks were
/// `ENOSYS`).
fn bash_pipelines_subshells_and_jobs(pf: Platform) {
    let bash = PathBuf::from("/bin/bash");
    assert!(bash.is_file(), "bash is needed for this test");
    let (native, _) = Program::new(&bash)
        .args(["-c", "echo x | tr x y"])
        .on(pf)
        .same_as_native();
    assert_eq!(native.stdout_text(), "y\n");
    let (native, _) = Program::new(&bash)
        .args(["-c", SCRIPT])
        .on(pf)
        .same_as_native();
    let text = native.stdout_text();
    assert!(
        text.contains("status 3")
            && text.ends_with("job one\njob two\nwaited for both\njob status 5\n"),
        "{text}"
    );
}

fn busybox_sh_pipelines_subshells_and_jobs(pf: Platform) {
    let (native, _) = Program::new(busybox())
        .args(["sh", "-c", SCRIPT])
        .on(pf)
        .same_as_native();
    let text = native.stdout_text();
    assert!(
        text.contains("[substituted]")
            && text.contains("waited 0")
            && text.ends_with("job one\njob two\nwaited for both\njob status 5\n"),
        "{text}"
    );
}

/// Regression (hosted): `busybox tar -tzf` forks its decompressor, reaps it,
/// then waits once more (`wait4(-1, WNOHANG)`), which hung for ever: the
/// application's hosted process was a child of the proxy. Natively and on
/// both platforms: `ECHILD`, and the listing.
fn busybox_tar_reaps_its_decompressor_and_ends(pf: Platform) {
    let dir = mote_testsuite::TempDir::new("tar");
    std::fs::create_dir(dir.path().join("d")).unwrap();
    dir.file("d/a", "one\n");
    dir.file("d/b", "two\n");
    let made = Command::new(busybox())
        .args(["tar", "-czf", "x.tgz", "d"])
        .current_dir(dir.path())
        .status()
        .expect("busybox tar");
    assert!(made.success());
    let (native, _) = Program::new(busybox())
        .args(["tar", "-tzf", "x.tgz"])
        .cwd(dir.path())
        .on(pf)
        .same_as_native();
    let text = native.stdout_text();
    let mut names: Vec<&str> = text.lines().collect();
    names.sort_unstable();
    assert_eq!(names, ["d/", "d/a", "d/b"]);
}

/// The real CPython binary (PATH may hold a wrapper script, e.g. pyenv's shim).
fn python() -> PathBuf {
    let out = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3 is needed for this test");
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// Python's `os.fork`: a pipe from the child, its `getppid`, `os.waitpid`'s
/// status, and a child killed by a signal (`os.kill`).
fn python_os_fork(pf: Platform) {
    let code = "
import os, signal
r, w = os.pipe()
me = os.getpid()
pid = os.fork()
if pid == 0:
    os.close(r)
    os.write(w, b'child sees its parent: %s' % str(os.getppid() == me).encode())
    os._exit(7)
os.close(w)
print(os.read(r, 100).decode())
p, st = os.waitpid(pid, 0)
print(p == pid, os.WIFEXITED(st), os.WEXITSTATUS(st))
pid = os.fork()
if pid == 0:
    signal.pause()
    os._exit(0)
os.kill(pid, signal.SIGKILL)
p, st = os.waitpid(pid, 0)
print(os.WIFSIGNALED(st), os.WTERMSIG(st))
try:
    os.wait()
except ChildProcessError as e:
    print('no children:', e.errno)
";
    let (native, _) = Program::new(python())
        .args(["-c", code])
        .on(pf)
        .same_as_native();
    assert_eq!(
        native.stdout_text(),
        "child sees its parent: True\nTrue True 7\nTrue 9\nno children: 10\n"
    );
}

/// Regression: `multiprocessing`'s `Pool` with the fork start method hung at its
/// end: its queue's lock is a POSIX semaphore in `/dev/shm`, whose futex wake
/// from a worker (another process) never reached the parent waiting in libos's
/// own futex table. Futexes in shared mappings are Linux's now.
fn python_multiprocessing_pool_with_fork(pf: Platform) {
    let code = "
import multiprocessing as mp
def sq(x):
    return x * x
if __name__ == '__main__':
    with mp.get_context('fork').Pool(2) as p:
        print(sum(p.map(sq, range(100))))
";
    let (native, _) = Program::new(python())
        .args(["-c", code])
        .on(pf)
        .same_as_native();
    assert_eq!(native.stdout_text(), "328350\n");
}

mote_testsuite::on_both_platforms!(
    wait_without_children_is_echild_at_once,
    fork_and_wait_as_natively,
    fork_from_a_parent_with_four_threads,
    fork_memory_shared_copied_dontfork_wipeonfork,
    memory_freed_before_a_fork_is_not_copied,
    bash_pipelines_subshells_and_jobs,
    busybox_sh_pipelines_subshells_and_jobs,
    busybox_tar_reaps_its_decompressor_and_ends,
    python_os_fork,
    python_multiprocessing_pool_with_fork,
);
