//! The partition's clocks (answered from the TSC by libos): consistent with each
//! other, monotonic, and running at the rate of Linux's clocks — the same lines as
//! natively.

use mote_testsuite::{app, Program};

#[test]
fn clocks_agree_and_advance() {
    let (_, mote) = Program::new(app("clocks")).same_as_native();
    assert!(mote.stdout_text().contains("went backwards 0 times"));
}
