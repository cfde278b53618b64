//! Processes the application creates: `posix_spawn`, `system`, `popen` and
//! `vfork` children run their programs in partitions of their own (the parent's
//! `waitpid` sees their status); shell scripts and Python's `subprocess` work.

use std::path::PathBuf;
use std::process::Command;

use mote_testsuite::{app, Platform, Program};

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

mote_testsuite::on_both_platforms!(
    posix_spawn_system_popen_and_vfork_as_natively,
    a_shell_script_runs_its_commands,
    python_subprocess,
);
