//! The IKC area as the runtime reaches it: the thread slots, the cores' pages and
//! the map log, mapped at `layout::IKC_VA` for the partition's life. A leaf: it
//! imports no other runtime module.

use mote_abi::ikc::{core_page_offset, thread_slot_offset, CorePage, Slot, MAPLOG_OFFSET};
use mote_abi::layout::IKC_VA;
use mote_abi::maplog::MapLog;

/// Thread slot `i`.
pub fn thread_slot(i: usize) -> &'static Slot {
    assert!(i < mote_abi::ikc::MAX_THREADS);
    // SAFETY: the IKC area is mapped user read-write for the partition's life; the
    // slots fit it (static assertion in ikc); Slot is atomics and integers.
    unsafe { &*((IKC_VA + thread_slot_offset(i)) as *const Slot) }
}

/// Core `i`'s IKC page.
pub fn core_page(i: usize) -> &'static CorePage {
    // SAFETY: the IKC area is mapped user read-write for the partition's life;
    // CorePage is atomics and integers.
    unsafe { &*((IKC_VA + core_page_offset(i)) as *const CorePage) }
}

/// The map log.
pub fn maplog() -> &'static MapLog {
    // SAFETY: as core_page.
    unsafe { &*((IKC_VA + MAPLOG_OFFSET) as *const MapLog) }
}
