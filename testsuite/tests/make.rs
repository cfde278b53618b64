//! `make -j2` building a small C project with gcc (`testsuite/fixtures/make_project`:
//! a Makefile, four `.c` files, a generated header), natively and under mote
//! on both platforms: the same commands in the same order, the same status, and
//! the built programs print the same (run natively and under mote). make
//! spawns a shell and gcc, gcc its compiler, assembler and linker: every one of
//! them a child's `execve` under mote.

use std::fs;
use std::path::{Path, PathBuf};

use mote_testsuite::{assert_same, Platform, Program, TempDir};

/// A fresh copy of the fixture project.
fn project(label: &str) -> TempDir {
    let dir = TempDir::new(label);
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/make_project");
    for e in fs::read_dir(&src).expect("the fixture project") {
        let e = e.expect("a fixture file");
        fs::copy(e.path(), dir.path().join(e.file_name())).expect("copying the fixture");
    }
    dir
}

fn make() -> PathBuf {
    let make = PathBuf::from("/usr/bin/make");
    assert!(make.is_file(), "make is needed for this test");
    make
}

/// Regression (hosted): make's first recipe killed make with SIGKILL. Its
/// `posix_spawn` child resets its ids (`POSIX_SPAWN_RESETIDS`), which in the
/// child's copy of the proxy started an ender aimed at make's own process.
fn make_j2_builds_a_c_project_as_natively(pf: Platform) {
    let native_dir = project("make-native");
    let mote_dir = project("make-mote");
    let native = Program::new(make())
        .arg("-j2")
        .cwd(native_dir.path())
        .on(pf)
        .native();
    let mote = Program::new(make())
        .arg("-j2")
        .cwd(mote_dir.path())
        .on(pf)
        .mote();
    assert_same(&native, &mote);
    assert_eq!(native.status, 0, "{native:?}");
    assert!(
        native
            .stdout_text()
            .ends_with("-o calc main.o sum.o primes.o text.o\n"),
        "{native:?}"
    );
    assert_eq!(mote.stderr_text(), native.stderr_text(), "{mote:?}");
    let built_natively = Program::new(native_dir.path().join("calc")).on(pf).native();
    let (built_under_mote, under_mote) = Program::new(mote_dir.path().join("calc"))
        .on(pf)
        .same_as_native();
    assert_same(&built_natively, &built_under_mote);
    assert_eq!(
        under_mote.stdout_text(),
        "calc 1.4: BUILT UNDER MAKE -J2\nsum 1..1000 = 500500\nprimes below 10000: 1229\n"
    );
}

mote_testsuite::on_both_platforms!(make_j2_builds_a_c_project_as_natively);
