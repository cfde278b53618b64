//! The runtime's heap: a fixed region of the runtime's memory
//! (`layout::RUNTIME_HEAP_*`), mapped at boot and mirrored by the proxy, so buffers
//! libos allocates can be passed to forwarded calls as they are.

use linked_list_allocator::LockedHeap;
use mote_abi::layout::{RUNTIME_HEAP_OFF, RUNTIME_HEAP_SIZE, RUNTIME_VA};

#[global_allocator]
static HEAP: LockedHeap = LockedHeap::empty();

/// Hand the heap region to the allocator (once, at start-up).
pub fn init() {
    // SAFETY: the region is mapped read-write for the partition's life, used by
    // nothing else, and init runs once before any allocation.
    unsafe {
        HEAP.lock().init(
            (RUNTIME_VA + RUNTIME_HEAP_OFF) as *mut u8,
            RUNTIME_HEAP_SIZE as usize,
        );
    }
}

/// Hold the heap's lock (`rt::fork`: while the proxy copies the process, no
/// other core is half-way through an allocation). The holder must not allocate.
pub fn hold() -> impl Drop {
    HEAP.lock()
}

/// A fork's copy, before its first allocation: the lock [`hold`] took in the
/// parent is free here.
///
/// # Safety
/// Only in a fork's copy, before any other thread of it runs: the holder
/// (the parent's forking thread) does not exist there.
pub unsafe fn forget_holder() {
    // SAFETY: per the contract, nobody holds the lock in this copy.
    unsafe { HEAP.force_unlock() }
}
