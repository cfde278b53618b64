//! Processes the application creates: `posix_spawn`, `system`, `popen` and
//! `vfork` children run their programs in partitions of their own (the parent's
//! `waitpid` sees their status); shell scripts and Python's `subprocess` work.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use mote_testsuite::{app, assert_same, children_of, send_signal, Platform, Program};

fn posix_spawn_system_popen_and_vfork_as_natively(pf: Platform) {
    let p = Program::new(app("spawn")).on(pf);
    let native = p.native();
    assert_eq!(native.status, 0, "{native:?}");
    for cores in ["1", "2"] {
        mote_testsuite::assert_same(&native, &p.mote_with(&["--cores", cores]));
    }
    let text = native.stdout_text();
    assert!(text.contains("vfork+_exit(5): exited 5"), "{text}");
    assert!(text.contains("popen read: through a pipe"), "{text}");
}

/// `/proc/self/exe` in a child's `execve` (`posix_spawn`, vfork) is the
/// application's program: it was mote's own binary, which then refused the
/// child's arguments (`mote: unexpected argument '--child' found`).
fn a_child_execs_proc_self_exe_as_natively(pf: Platform) {
    let (native, _) = Program::new(app("selfexe")).on(pf).same_as_native();
    assert_eq!(native.status, 0, "{native:?}");
    let text = native.stdout_text();
    assert!(
        text.contains("posix_spawn /proc/self/exe: exited 9"),
        "{text}"
    );
    assert!(
        text.contains("vfork+execve /proc/self/exe: exited 9"),
        "{text}"
    );
}

fn a_shell_script_runs_its_commands(pf: Platform) {
    let dir = mote_testsuite::TempDir::new("spawn-sh");
    let script = dir.file(
        "script.sh",
        "#!/bin/sh\necho one\n/bin/echo two\nls /nonexistent-dir 2>/dev/null || echo three\nexit 7\n",
    );
    Command::new("chmod")
        .arg("+x")
        .arg(&script)
        .status()
        .unwrap();
    let (_, mote) = Program::new(&script).on(pf).same_as_native();
    assert_eq!(mote.stdout_text(), "one\ntwo\nthree\n");
}

/// Regression: a shell script waiting for its child (`wait4` forwarded, its core
/// idle after the vfork child thread left for a partition of its own) ends with
/// 143 on SIGTERM, also when the kicks for it queued while the application's
/// process could not run (hosted: it is stopped meanwhile, so ~150 kicks queue
/// and then land on the idle context). A run of `mote run --platform hosted
/// script.sh` once hung there and ignored SIGTERM: nested kicks had overflowed
/// the idle context's stack into the heap, the runtime panicked in the idle
/// context, and the panic's message went to the IKC slot of the vfork child that
/// ran last, whose server had exec'd: never answered, so the run never ended.
/// The child prints the first line (so the script is past its `vfork` then) and
/// reads a FIFO whose only writer is the script: it ends when the script does.
fn sigterm_ends_a_shell_script_waiting_for_its_child(pf: Platform) {
    let dir = mote_testsuite::TempDir::new("spawn-term");
    let fifo = dir.path().join("fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let script = dir.file(
        "script.sh",
        format!(
            "#!/bin/sh\nexec 3<>{f}\n/bin/sh -c 'echo ready; exec /bin/cat' <{f} 3>&-\necho not reached\nexit 7\n",
            f = fifo.display()
        ),
    );
    Command::new("chmod")
        .arg("+x")
        .arg(&script)
        .status()
        .unwrap();
    let prog = Program::new(&script).on(pf);
    let native = prog.native_signalled("TERM");
    let mut stopped = false;
    let run = prog.mote_poked_with(&[], |mote| {
        if pf == Platform::Hosted && !stopped {
            // The application's process and the child's `mote run`.
            let children = children_of(mote);
            stopped = true;
            for &c in &children {
                send_signal(c, "STOP");
            }
            send_signal(mote, "TERM");
            // The proxy kicks meanwhile (every 2 ms).
            std::thread::sleep(Duration::from_millis(300));
            for &c in &children {
                send_signal(c, "CONT");
            }
        } else {
            send_signal(mote, "TERM");
        }
    });
    assert_same(&native, &run);
    assert_eq!(run.status, 143, "{run:?}");
    assert_eq!(run.stdout_text(), "ready\n", "{run:?}");
    assert!(!run.stderr_text().contains("runtime panic"), "{run:?}");
}

/// The interpreter itself, not a wrapper script (pyenv's shims are bash scripts,
/// and bash forks).
fn python() -> Option<PathBuf> {
    let out = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .ok()?;
    let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    p.is_file().then_some(p)
}

fn python_subprocess(pf: Platform) {
    let py = python().expect("python3 is needed for this test");
    let (_, mote) = Program::new(py)
        .on(pf)
        .args([
            "-c",
            "import subprocess\n\
             print(subprocess.run(['echo', 'x'], capture_output=True).stdout)\n\
             print(subprocess.call('exit 4', shell=True))",
        ])
        .same_as_native();
    assert_eq!(mote.stdout_text(), "b'x\\n'\n4\n");
}

/// asyncio's subprocesses, with the default child watcher (a thread in
/// `waitpid`) and with one that waits for `SIGCHLD` (`SafeChildWatcher`: a
/// handler through `signal.set_wakeup_fd`). Regression (issue 13): a vfork
/// child's reset of the handlers to `SIG_DFL` reset the parent's, so the
/// `SIGCHLD` watcher never heard of its child.
fn python_asyncio_subprocess_with_either_child_watcher(pf: Platform) {
    let py = python().expect("python3 is needed for this test");
    let code = "
import asyncio, sys, warnings
warnings.simplefilter('ignore', DeprecationWarning)
async def main():
    p = await asyncio.create_subprocess_exec('/bin/sh', '-c', 'echo from the child; exit 3',
                                             stdout=asyncio.subprocess.PIPE)
    out, _ = await p.communicate()
    print(sys.argv[1], out.decode().strip(), p.returncode)
if sys.argv[1] == 'sigchld':
    asyncio.set_child_watcher(asyncio.SafeChildWatcher())
asyncio.run(main())
";
    for watcher in ["default", "sigchld"] {
        let (_, mote) = Program::new(&py)
            .on(pf)
            .args(["-c", code, watcher])
            .same_as_native();
        assert_eq!(mote.stdout_text(), format!("{watcher} from the child 3\n"));
    }
}

/// Regression: a vfork child blocked in a call before its `exec`
/// (`apps/vfork_stuck.c`: a read of a pipe nobody writes) kept its parent's
/// wait from being interrupted, so SIGTERM did not end the run; and the child's
/// forked proxy outlived the run. Now the run ends with 143 and nothing is left
/// behind (the harness checks). Not compared with a native run: natively the
/// vfork child outlives its killed parent, blocked for ever.
fn sigterm_ends_a_vfork_parent_whose_child_is_stuck_before_exec(pf: Platform) {
    let run = Program::new(app("vfork_stuck"))
        .on(pf)
        .mote_signalled("TERM");
    assert_eq!(run.status, 143, "{run:?}");
    assert_eq!(run.stdout_text(), "ready\n", "{run:?}");
}

mote_testsuite::on_both_platforms!(
    a_child_execs_proc_self_exe_as_natively,
    posix_spawn_system_popen_and_vfork_as_natively,
    a_shell_script_runs_its_commands,
    sigterm_ends_a_shell_script_waiting_for_its_child,
    sigterm_ends_a_vfork_parent_whose_child_is_stuck_before_exec,
    python_subprocess,
    python_asyncio_subprocess_with_either_child_watcher,
);
