//! The leaf helpers every structure reader of `offload` shares (`nested`,
//! `ioctl`, `keys`): whether a buffer lies out of the application's reach
//! (outside `[USER_START, LIBOS_END)`, where natively it has no memory),
//! reading application memory through `mirror::read_user`, little-endian
//! words, and `iovec` arrays.

use mote_abi::layout::{LIBOS_END, RUNTIME_SIZE, RUNTIME_VA, USER_START};

use crate::mirror::read_user;

/// The top of the reservation above the runtime region is never mapped (the
/// application's memory ends at `USER_END`, the runtime's at
/// `RUNTIME_VA + RUNTIME_SIZE`): a structure that starts inside the range
/// and runs past what a reader counted meets it, and Linux's `EFAULT`, long
/// before any memory of mote's. The readers judge at most a few KiB of a
/// structure (`ioctl` sizes below 16 KiB, key buffers by their first page).
const _: () = assert!(LIBOS_END - (RUNTIME_VA + RUNTIME_SIZE) >= 1 << 30);

/// The top of a process's address space with 4-level paging (Linux's
/// `TASK_SIZE_MAX`): `access_ok` refuses a buffer that ends above it.
pub(super) const TASK_SIZE_MAX: u64 = (1 << 47) - 4096;

/// `UIO_MAXIOV`: the most `iovec`s (and `mmsghdr`s) Linux takes in one call.
pub(super) const UIO_MAXIOV: u64 = 1024;

/// Whether `[ptr, ptr + len)` holds memory the application cannot have (a
/// null pointer or an empty buffer is Linux's to judge).
pub(super) fn out_of_reach(ptr: u64, len: u64) -> bool {
    ptr != 0 && len != 0 && (ptr < USER_START || ptr.checked_add(len).is_none_or(|e| e > LIBOS_END))
}

pub(super) fn word(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

pub(super) fn half(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

/// `n` bytes of application memory at `va`, `None` when they cannot be read
/// (then Linux, reading them too, answers).
pub(super) fn read(va: u64, n: u64) -> Option<Vec<u8>> {
    let mut b = vec![0u8; usize::try_from(n).ok()?];
    matches!(read_user(va, &mut b), Ok(k) if k == b.len()).then_some(b)
}

/// Whether an `iovec` array of `cnt` entries at `iov` names a buffer out of
/// reach. A count Linux refuses, or an array it cannot read, is its own to
/// answer.
pub(super) fn iovec_out_of_reach(iov: u64, cnt: u64) -> bool {
    let cnt = cnt as u32 as u64;
    if iov == 0 || cnt == 0 || cnt > UIO_MAXIOV {
        return false;
    }
    let Some(b) = read(iov, cnt * 16) else {
        return false;
    };
    b.chunks_exact(16)
        .any(|e| out_of_reach(word(e, 0), word(e, 8)))
}
