//! The `mote` command line itself: `mote info`, PATH lookup of PROGRAM, options.

use mote_testsuite::{app, busybox, run_mote_command, Platform, Program};

#[test]
fn info_names_kvm_and_the_backend() {
    let info = run_mote_command(&["info"]);
    let text = info.stdout_text();
    assert_eq!(info.status, 0, "mote info failed\n{info:?}");
    assert!(
        text.to_lowercase().contains("kvm"),
        "mote info must say what KVM the machine offers:\n{text}"
    );
}

fn program_is_looked_up_in_path(pf: Platform) {
    let bin = busybox();
    let dir = bin.parent().expect("busybox has a directory");
    let (_, mote) = Program::new("busybox")
        .on(pf)
        .args(["echo", "found through PATH"])
        .env_exact([("PATH", format!("/nonexistent:{}", dir.display()))])
        .same_as_native();
    assert_eq!(mote.stdout_text(), "found through PATH\n");
}

fn options_before_the_program_are_mote_s(pf: Platform) {
    let program = Program::new(app("hello")).on(pf).arg("--cores");
    let native = program.native();
    let mote = program.mote_with(&["--cores", "1"]);
    mote_testsuite::assert_same(&native, &mote);
    assert!(mote.stdout_text().contains("argc=2"));
}

mote_testsuite::on_both_platforms!(
    program_is_looked_up_in_path,
    options_before_the_program_are_mote_s
);
