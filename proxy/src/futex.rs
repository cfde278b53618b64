//! Futexes on IKC words in guest memory, and the doorbell that wakes a core
//! waiting for a response. The futexes are shared (not `FUTEX_PRIVATE`): the
//! words are guest memory, which a vfork child process of the proxy and the
//! hosted platform's application process map too. A leaf module (it uses only
//! `guest`).

use std::sync::atomic::{AtomicU32, Ordering};

use rustix::thread::futex;
use rustix::time::Timespec;

use crate::guest::GuestMem;

/// Sleep while `word` holds `val` (no timeout; a signal or spurious wake-up
/// returns early, as callers re-check).
pub fn futex_wait(word: &AtomicU32, val: u32) {
    let _ = futex::wait(word, futex::Flags::empty(), val, None);
}

/// Sleep while `word` holds `val`, at most `ns` nanoseconds.
pub fn futex_wait_for(word: &AtomicU32, val: u32, ns: u64) {
    let ts = Timespec {
        tv_sec: (ns / 1_000_000_000) as _,
        tv_nsec: (ns % 1_000_000_000) as _,
    };
    let _ = futex::wait(word, futex::Flags::empty(), val, Some(&ts));
}

/// Wake every sleeper on `word`.
pub fn futex_wake(word: &AtomicU32) {
    let _ = futex::wake(word, futex::Flags::empty(), i32::MAX as u32);
}

/// Wake core `core`, which may sleep on its `wake_seq` waiting for a response.
pub fn wake_core(guest: &GuestMem, core: usize) {
    if core < mote_abi::layout::MAX_CORES {
        let page = guest.core_page(core);
        page.wake_seq.fetch_add(1, Ordering::SeqCst);
        futex_wake(&page.wake_seq);
    }
}
