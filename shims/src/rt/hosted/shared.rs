//! Shared file mappings and System V attachments as the hosted process sees
//! them: its own descriptor of each file the proxy maps shared (`pidfd_getfd`),
//! and its own `shmat` of each segment at the application's address.

use core::sync::atomic::{AtomicI32, Ordering};

use mote_abi::errno::Errno;
use mote_libos::uapi::shm::{SHM_EXEC, SHM_RDONLY};
use syscalls::Sysno;

use super::{linux, reserve};

/// A pass-through object as this process sees it: the proxy answered `MapShared`
/// with `gpa` for `len` bytes of the file at offset `off`, and this process holds
/// its own descriptor of that open file (`pidfd_getfd`).
#[derive(Clone, Copy)]
struct SharedFile {
    gpa: u64,
    len: u64,
    off: u64,
    fd: u64,
}

static SHARED: spin::Mutex<alloc::vec::Vec<SharedFile>> = spin::Mutex::new(alloc::vec::Vec::new());
/// A pidfd of the proxy (the parent), opened at start-up.
pub static PROXY_PIDFD: AtomicI32 = AtomicI32::new(-1);

/// libos made a shared file mapping: the proxy mapped the application's `fd`
/// (its descriptor: descriptors live in the proxy) at `off` for `len` bytes and
/// answered `gpa`. Take a descriptor of the same open file, so `MAP` of that
/// range can map the file here too; every process mapping a file shares its page
/// cache, so both views are the same memory. (`/dev/zero` is the exception: each
/// `mmap` of it is new memory, so this process and the proxy would see different
/// pages.) Returns `-errno` if the descriptor cannot be had.
pub fn shared_mapped(gpa: u64, len: u64, fd: u64, off: u64) -> i64 {
    let pidfd = PROXY_PIDFD.load(Ordering::Relaxed);
    if pidfd < 0 {
        return Errno::ENODEV.ret();
    }
    let mine = linux(Sysno::pidfd_getfd as u64, [pidfd as u64, fd, 0, 0, 0, 0]);
    if mine < 0 {
        return mine;
    }
    SHARED.lock().push(SharedFile {
        gpa,
        len,
        off,
        fd: mine as u64,
    });
    0
}

/// A System V attachment as this process sees it: the segment is attached here at
/// `va` too (`shm_attach`), and the proxy answered `gpa` for it.
#[derive(Clone, Copy)]
struct SysvView {
    gpa: u64,
    va: u64,
    len: u64,
}

static SYSV: spin::Mutex<alloc::vec::Vec<SysvView>> = spin::Mutex::new(alloc::vec::Vec::new());

/// Attach System V segment `shmid` at `[va, va+len)` of this process (in a hole
/// made in the reservation, so that a segment Linux maps larger than `len` is
/// refused rather than replacing what lies beyond), with `shmat`'s `SHM_RDONLY`
/// and `SHM_EXEC` from `shmflg`, before the proxy attaches it in its mirror:
/// every process attaching a segment shares its pages. Linux's errno if it
/// refuses (the proxy, with the same credentials, would refuse too).
pub fn shm_attach(va: u64, len: u64, shmid: u64, shmflg: u64) -> i64 {
    let flags = shmflg & (SHM_RDONLY | SHM_EXEC);
    // Only the runtime maps memory in this process, and only at fixed
    // addresses: nothing lands in the hole before the attach or `reserve`.
    linux(Sysno::munmap as u64, [va, len, 0, 0, 0, 0]);
    let r = linux(Sysno::shmat as u64, [shmid, va, flags, 0, 0, 0]);
    if r < 0 || r as u64 != va {
        // Whatever Linux did to the range, the reservation goes back over it.
        reserve(va, len);
        return if r < 0 { r } else { Errno::EINVAL.ret() };
    }
    0
}

/// The proxy refused the attachment `shm_attach` made: detach it here (the
/// reservation goes back, which ends the Linux attachment).
pub fn shm_detach(va: u64, len: u64) {
    reserve(va, len);
}

/// The proxy answered `gpa` for the attachment at `va`.
pub fn shm_attached(gpa: u64, va: u64, len: u64) {
    SYSV.lock().push(SysvView { gpa, va, len });
}

/// Where pass-through `[gpa, gpa+len)` lies in this process if it is (part of) a
/// System V attachment.
pub fn sysv_at(gpa: u64, len: u64) -> Option<u64> {
    SYSV.lock()
        .iter()
        .find(|s| gpa >= s.gpa && gpa + len <= s.gpa + s.len)
        .map(|s| s.va + (gpa - s.gpa))
}

/// The proxy dropped the pass-through object at `gpa`: close our descriptors of it
/// (a System V attachment was detached here when libos unmapped its last page).
pub fn shared_dropped(gpa: u64) {
    SYSV.lock().retain(|s| s.gpa != gpa);
    SHARED.lock().retain(|s| {
        if s.gpa == gpa {
            linux(Sysno::close as u64, [s.fd, 0, 0, 0, 0, 0]);
            false
        } else {
            true
        }
    });
}

/// Descriptor and file offset behind pass-through `[gpa, gpa+len)`.
pub fn shared_file(gpa: u64, len: u64) -> Option<(u64, u64)> {
    SHARED
        .lock()
        .iter()
        .find(|s| gpa >= s.gpa && gpa + len <= s.gpa + s.len)
        .map(|s| (s.fd, s.off + (gpa - s.gpa)))
}
