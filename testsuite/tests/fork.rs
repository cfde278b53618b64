//! Process trees (issue 13): `wait4`/`waitid`/`waitpid` see the application's own
//! children only — never one of mote's processes — each case against a native run.

use mote_testsuite::{app, Platform, Program};

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

mote_testsuite::on_both_platforms!(wait_without_children_is_echild_at_once);
