//! `execve` inside a mote application replaces the program in the same partition
//! (the path a launcher or a shell `exec` takes), and `/proc/self/exe` names the
//! application's program, not the proxy.

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
/// re-executing itself ran the `mote` binary in the partition.
fn execve_of_proc_self_exe_runs_the_program_again(pf: Platform) {
    let (_, mote) = Program::new(app("reexec")).on(pf).same_as_native();
    assert_eq!(mote.stdout_text(), "first run\nrunning again, argc=2\n");
    assert_eq!(mote.status, 3);
}

mote_testsuite::on_both_platforms!(
    a_launcher_execs_bin_echo,
    a_shebang_script_runs_through_its_interpreter,
    execve_of_proc_self_exe_runs_the_program_again,
);
