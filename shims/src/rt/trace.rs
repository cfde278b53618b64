//! The trace rings as the runtime reaches them (`mote run --trace`, protocol in
//! `mote_abi::trace`): one per core at `layout::RUNTIME_VA +
//! trace::RUNTIME_TRACE_OFF`, and the flag, read from `BootInfo` once at
//! start-up, that says whether calls are recorded. A leaf: it imports no other
//! runtime module.

use core::sync::atomic::{AtomicBool, Ordering};

use mote_abi::boot::{BootInfo, BOOT_F_TRACE};
use mote_abi::layout::{MAX_CORES, RUNTIME_VA};
use mote_abi::trace::{ring_offset, Ring};

/// Calls are recorded (set once, before the application's first call).
static ON: AtomicBool = AtomicBool::new(false);

/// Read the flag from `boot` (core 0, before the application starts).
pub fn init(boot: &BootInfo) {
    ON.store(boot.flags & BOOT_F_TRACE != 0, Ordering::Relaxed);
}

/// Are calls recorded?
#[inline]
pub fn on() -> bool {
    ON.load(Ordering::Relaxed)
}

/// Core `core`'s ring.
pub fn ring(core: usize) -> &'static Ring {
    assert!(core < MAX_CORES);
    // SAFETY: the runtime region is mapped user read-write for the partition's
    // life on both platforms, and the rings fit in it (static assertion in
    // `mote_abi::trace`); Ring is atomics and padding integers, valid for any
    // bit pattern, and 64-byte aligned at its offset.
    unsafe { &*((RUNTIME_VA + ring_offset(core)) as *const Ring) }
}
