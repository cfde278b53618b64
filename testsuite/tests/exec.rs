//! `execve` inside a mote application replaces the program in the same partition
//! (the path a launcher or a shell `exec` takes), and `/proc/self/exe` names the
//! application's program, not the proxy.

use mote_testsuite::{app, Program};

#[test]
fn a_launcher_execs_bin_echo() {
    let (_, mote) = Program::new(app("execve_echo")).same_as_native();
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
