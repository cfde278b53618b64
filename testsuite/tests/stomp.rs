//! A program that writes over mote's IKC area (`apps/stomp_ikc.c`: a stray
//! `memset` over the area's addresses, where natively nothing is mapped). The
//! runtime lives in the application's address space, so it cannot be kept
//! from doing so; what mote guarantees is that the run then ends — with a
//! `mote:` line naming the area and a segmentation fault's status, as natively,
//! or by the signal sent to end it — and never hangs, never leaves processes
//! behind and never blames a signal the program did not raise (regression: the
//! partition hung with `SIGTERM` no longer ending it; the hosted platform ended
//! "killed by SIGILL").

use mote_abi::layout::{IKC_SIZE, IKC_VA};
use mote_abi::signal::SIGNAL_PAGE_OFFSET;
use mote_testsuite::{app, send_signal, Platform, Program};

const DAMAGE: &str = "mote: the application wrote over mote's ";

fn stomp(pf: Platform, len: u64, byte: &str) -> Program {
    Program::new(app("stomp_ikc"))
        .on(pf)
        .arg(format!("{IKC_VA:#x}"))
        .arg(format!("{len:#x}"))
        .arg(byte)
}

/// The whole area, signal page included, zeroed or filled with ones: the run
/// ends as natively, killed by SIGSEGV, and mote names the area.
fn over_the_whole_area(pf: Platform, byte: &str) {
    let prog = stomp(pf, IKC_SIZE, byte);
    let native = prog.native();
    assert_eq!((native.signalled, native.status), (true, 139), "{native:?}");
    let mote = prog.mote();
    assert_eq!((mote.signalled, mote.status), (true, 139), "{mote:?}");
    assert_eq!(mote.stdout_text(), native.stdout_text(), "{mote:?}");
    assert!(mote.stderr_text().contains(DAMAGE), "{mote:?}");
}

fn zeroing_the_ikc_area_ends_the_run_as_a_segfault_naming_it(pf: Platform) {
    over_the_whole_area(pf, "0");
}

fn filling_the_ikc_area_with_ones_ends_the_run_as_a_segfault_naming_it(pf: Platform) {
    over_the_whole_area(pf, "0xff");
}

/// Everything but the signal page zeroed (the request slots, core pages and
/// map log), then the program waits: `SIGTERM` from outside still ends the run,
/// by that signal, unless mote found the damage first (a server that saw its
/// slot change under it). The signal goes out a second after the program's
/// first line and again every half second, so it normally finds the area
/// already overwritten.
fn sigterm_ends_a_run_whose_request_slots_were_zeroed(pf: Platform) {
    let prog = stomp(pf, SIGNAL_PAGE_OFFSET, "0").arg("wait");
    let mut pokes = 0;
    let mote = prog.mote_poked_with(&[], |pid| {
        pokes += 1;
        if pokes > 2 {
            send_signal(pid, "TERM");
        }
    });
    assert!(mote.signalled, "{mote:?}");
    let by_term = mote.status == 143;
    let named = mote.status == 139 && mote.stderr_text().contains(DAMAGE);
    assert!(by_term || named, "{mote:?}");
}

mote_testsuite::on_both_platforms!(
    zeroing_the_ikc_area_ends_the_run_as_a_segfault_naming_it,
    filling_the_ikc_area_with_ones_ends_the_run_as_a_segfault_naming_it,
    sigterm_ends_a_run_whose_request_slots_were_zeroed,
);
