//! The unified address space, proxy side: the memory behind the application's pages
//! mapped in the proxy at the application's own virtual addresses, so a forwarded
//! call uses every pointer (nested ones too) unchanged.
//!
//! At start-up, before any other thread exists, `Mirror::reserve` claims
//! `[USER_START, LIBOS_END)` of the proxy's address space with an inaccessible,
//! unbacked mapping: nothing of the proxy (heap, thread stacks, libraries) can land
//! there afterwards. Changes from libos's map log then replace pieces of that
//! reservation with shared mappings of the guest memfd (`KIND_MAP`) or put the
//! reservation back (`KIND_UNMAP`). The fixed boot regions (boot info, IKC area,
//! argv block, runtime) are mapped once by `map_boot_regions`.
//!
//! Mirror mappings carry the application's protections (`KIND_PROTECT` entries
//! after a `KIND_MAP`, which maps read-write): a forwarded `read` into a
//! `PROT_READ` page or over the program's text gets Linux's own `EFAULT`, as
//! natively. The proxy's own writes into such memory (the patcher's `Op::Write`)
//! go through its guest-memory view instead ([`Mirror::poke`]), found from the
//! spans of guest memory each mirrored range maps.
//!
//! Allows `unsafe`: it maps guest memory at the application's addresses
//! (`mmap`/`munmap` in the reservation) and copies through them
//! (`process_vm_readv`/`writev`).
#![allow(unsafe_code)]

use std::collections::BTreeMap;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::sync::{Mutex, MutexGuard, OnceLock};

use mote_abi::layout::{
    ARGS_GPA, ARGS_MAX, ARGS_VA, BOOT_INFO_GPA, IKC_GPA, IKC_SIZE, IKC_VA, LIBOS_END, LIBOS_VA,
    PAGE_SIZE, RUNTIME_SIZE, RUNTIME_VA, USER_START,
};
use mote_abi::maplog::{Change, MapLog, KIND_MAP, KIND_PROTECT, KIND_UNMAP};

use crate::guest::GuestMem;
use crate::passthrough::Passthrough;

/// What went wrong with the mirror.
#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    #[error(
        "cannot reserve {start:#x}..{end:#x} of the proxy's address space for the \
         application: {err} (something of the proxy already lives there; mote must be a \
         position-independent executable)"
    )]
    Reserve {
        start: u64,
        end: u64,
        err: io::Error,
    },
    #[error("cannot duplicate the guest memory fd: {0}")]
    Dup(io::Error),
    #[error("range {va:#x}+{len:#x} is outside the mirrored range")]
    OutsideRange { va: u64, len: u64 },
    #[error("guest-physical {gpa:#x}+{len:#x} is beyond guest memory ({size:#x} bytes) or spans both of its memfds")]
    BeyondMemory { gpa: u64, len: u64, size: u64 },
    #[error("unaligned or empty change (va {va:#x}, len {len:#x}, gpa {gpa:#x})")]
    Unaligned { va: u64, len: u64, gpa: u64 },
    #[error("unknown map-log entry kind {0}")]
    UnknownKind(u64),
    #[error("mmap of {va:#x}+{len:#x} failed: {err}")]
    Mmap { va: u64, len: u64, err: io::Error },
}

/// The proxy's copy of the application's address space.
pub struct Mirror {
    /// Our own descriptor of the guest memfd.
    fd: OwnedFd,
    /// And of the hugetlbfs memfd behind `[large_start, guest_size)`, if any.
    large_fd: Option<OwnedFd>,
    large_start: u64,
    guest_size: u64,
    start: u64,
    end: u64,
    /// Serializes changes: the map log has one consumer at a time.
    lock: Mutex<()>,
    /// Shared file and device mappings (set once the VM exists).
    passthrough: OnceLock<Passthrough>,
    /// Allocate the host pages behind new mappings at once (see `apply_locked`).
    populate: std::sync::atomic::AtomicBool,
    /// The proxy's view of guest memory (`GuestMem::host_base`): guest-physical
    /// `gpa` is at `host_base + gpa`.
    host_base: u64,
    /// Guest memory behind each mirrored range: start -> (end, guest-physical
    /// address of the start). Pass-through mappings are not listed.
    spans: Mutex<BTreeMap<u64, (u64, u64)>>,
}

/// Remove `[va, end)` from `spans`, keeping the parts of ranges outside it.
fn cut_spans(spans: &mut BTreeMap<u64, (u64, u64)>, va: u64, end: u64) {
    let hit: Vec<(u64, (u64, u64))> = spans
        .range(..end)
        .rev()
        .take_while(|(_, &(e, _))| e > va)
        .map(|(&s, &v)| (s, v))
        .collect();
    for (s, (e, gpa)) in hit {
        spans.remove(&s);
        if s < va {
            spans.insert(s, (va, gpa));
        }
        if e > end {
            spans.insert(end, (e, gpa + (end - s)));
        }
    }
}

/// `PROT_*` of the application as the mirror gives it to forwarded calls.
fn mirror_prot(prot: u64) -> libc::c_int {
    let (read, write, exec) = (
        libc::PROT_READ as u64,
        libc::PROT_WRITE as u64,
        libc::PROT_EXEC as u64,
    );
    if prot & write != 0 {
        libc::PROT_READ | libc::PROT_WRITE
    } else if prot & (read | exec) != 0 {
        libc::PROT_READ
    } else {
        libc::PROT_NONE
    }
}

impl Mirror {
    /// Reserve `[USER_START, LIBOS_END)` for the application's addresses. Call before
    /// any thread is started, so no thread stack or allocator arena is placed there.
    pub fn reserve(guest: &GuestMem) -> Result<Mirror, MirrorError> {
        Self::reserve_range(guest, USER_START, LIBOS_END)
    }

    fn reserve_range(guest: &GuestMem, start: u64, end: u64) -> Result<Mirror, MirrorError> {
        // SAFETY: guest.fd() is the memfd GuestMem owns and keeps open while `guest`
        // is borrowed; we only duplicate it.
        let borrowed = unsafe { BorrowedFd::borrow_raw(guest.fd()) };
        let fd = borrowed.try_clone_to_owned().map_err(MirrorError::Dup)?;
        let large_fd = match guest.large_fd() {
            // SAFETY: as above, for GuestMem's hugetlbfs memfd.
            Some(raw) => Some(
                unsafe { BorrowedFd::borrow_raw(raw) }
                    .try_clone_to_owned()
                    .map_err(MirrorError::Dup)?,
            ),
            None => None,
        };
        let len = (end - start) as usize;
        // SAFETY: MAP_FIXED_NOREPLACE never replaces an existing mapping: it either
        // creates a fresh inaccessible mapping at `start` or fails.
        let p = unsafe {
            libc::mmap(
                start as *mut libc::c_void,
                len,
                libc::PROT_NONE,
                libc::MAP_PRIVATE
                    | libc::MAP_ANONYMOUS
                    | libc::MAP_NORESERVE
                    | libc::MAP_FIXED_NOREPLACE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            let err = io::Error::last_os_error();
            return Err(MirrorError::Reserve { start, end, err });
        }
        if p as u64 != start {
            // A kernel older than 4.17 treats the flag as a hint.
            // SAFETY: `p` is the mapping just created, of `len` bytes, used by nobody.
            unsafe { libc::munmap(p, len) };
            let err = io::Error::other(format!("kernel placed it at {p:p}"));
            return Err(MirrorError::Reserve { start, end, err });
        }
        Ok(Mirror {
            fd,
            large_fd,
            large_start: guest.large_start().unwrap_or(guest.size()),
            guest_size: guest.size(),
            start,
            end,
            lock: Mutex::new(()),
            passthrough: OnceLock::new(),
            populate: std::sync::atomic::AtomicBool::new(true),
            host_base: guest.host_base(),
            spans: Mutex::new(BTreeMap::new()),
        })
    }

    /// Leave the host pages behind new mappings to be allocated on first touch:
    /// on the hosted platform the application's process touches (or populates)
    /// them natively, so populating them here only costs (~30 ms of start-up for
    /// the runtime region alone).
    pub fn populate_lazily(&self) {
        self.populate
            .store(false, std::sync::atomic::Ordering::Relaxed);
    }

    /// Serve shared file and device mappings with `pt` (once, after the VM exists).
    pub fn attach_passthrough(&self, pt: Passthrough) {
        let _ = self.passthrough.set(pt);
    }

    /// `ikc::Op::MapShared`: map the application's fd at its address `va` (the
    /// mirror's own range) and back a KVM slot with it; `-ENODEV` without a VM.
    pub fn map_shared(&self, args: [u64; 6]) -> i64 {
        let _g = self.lock_changes();
        let [va, len, prot, flags, fd, off] = args;
        match self.passthrough.get() {
            Some(pt) if va >= self.start && va.checked_add(len).is_some_and(|e| e <= self.end) => {
                pt.map(va, len, prot, flags, fd, off)
            }
            Some(_) => -i64::from(libc::EINVAL),
            None => -i64::from(libc::ENODEV),
        }
    }

    /// `ikc::Op::ShmAttach`: attach System V segment `args[2]` at the application's
    /// address `args[0]` (the mirror's own range) for `args[1]` bytes, `shmflg`
    /// `args[3]`, and back a KVM slot with it; `-ENODEV` without a VM.
    pub fn attach_shm(&self, args: [u64; 6]) -> i64 {
        let _g = self.lock_changes();
        let [va, len, shmid, shmflg, ..] = args;
        match self.passthrough.get() {
            Some(pt) if va >= self.start && va.checked_add(len).is_some_and(|e| e <= self.end) => {
                pt.attach_shm(va, len, shmid, shmflg)
            }
            Some(_) => -i64::from(libc::EINVAL),
            None => -i64::from(libc::ENODEV),
        }
    }

    /// `ikc::Op::Unshare`: drop the pass-through object at guest-physical `gpa`.
    pub fn unshare(&self, gpa: u64) -> i64 {
        let _g = self.lock_changes();
        self.passthrough
            .get()
            .map_or(-i64::from(libc::EINVAL), |pt| pt.unshare(gpa))
    }

    /// `ikc::Op::SharedLen`: bytes of the object at `gpa` before the file's end.
    pub fn shared_len(&self, gpa: u64) -> i64 {
        self.passthrough
            .get()
            .map_or(-i64::from(libc::EINVAL), |pt| pt.valid_len(gpa))
    }

    /// A fork's child on the partition: the pass-through objects' slots go to
    /// its new VM (`Passthrough::rebind`).
    pub fn rebind_passthrough(
        &self,
        slots: Box<dyn crate::passthrough::MemSlots>,
    ) -> io::Result<()> {
        match self.passthrough.get() {
            Some(pt) => pt.rebind(slots),
            None => Ok(()),
        }
    }

    /// Hold while forking the proxy: no other thread is half-way through a change.
    pub fn fork_guard(&self) -> MutexGuard<'_, ()> {
        self.lock_changes()
    }

    fn lock_changes(&self) -> MutexGuard<'_, ()> {
        self.lock.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Apply one change of the application's address space (the offload threads use
    /// `sync`; this is for changes that do not come through the map log).
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn apply(&self, c: Change) -> Result<(), MirrorError> {
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        self.apply_locked(c)
    }

    /// Apply every pending map-log entry; a refused entry is reported on stderr and
    /// skipped. Returns the number of entries consumed.
    pub fn sync(&self, log: &MapLog) -> usize {
        // Fast path of every forwarded call: nothing pending. The producer's Release
        // of `head` precedes its request's Release of `req_seq`, which the caller has
        // Acquired; a consumer that applied entries Released `tail` after its mmaps.
        // So `head == tail` here means every change before the request is in place.
        if log.head.load(Ordering::Acquire) == log.tail.load(Ordering::Acquire) {
            return 0;
        }
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        log.drain(|c| {
            if let Err(e) = self.apply_locked(c) {
                crate::say!("mote: mirror: ignored map-log entry: {e}");
            }
        })
        .unwrap_or_else(|c| {
            crate::say!(
                "mote: mirror: the map log was overwritten (head {}, tail {}): its pending changes are dropped",
                c.head,
                c.tail
            );
            0
        })
    }

    /// Map the fixed regions every partition has: boot info, IKC area, argv block and
    /// the runtime region at `runtime_gpa`.
    pub fn map_boot_regions(&self, runtime_gpa: u64) -> Result<(), MirrorError> {
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        for (va, gpa, len) in [
            (LIBOS_VA, BOOT_INFO_GPA, PAGE_SIZE),
            (IKC_VA, IKC_GPA, IKC_SIZE),
            (ARGS_VA, ARGS_GPA, ARGS_MAX),
            (RUNTIME_VA, runtime_gpa, RUNTIME_SIZE),
        ] {
            self.apply_locked(Change {
                kind: KIND_MAP,
                va,
                len,
                gpa,
            })?;
        }
        Ok(())
    }

    fn apply_locked(&self, c: Change) -> Result<(), MirrorError> {
        let Change { kind, va, len, gpa } = c;
        let aligned = |x: u64| x.is_multiple_of(PAGE_SIZE);
        if len == 0 || !aligned(va) || !aligned(len) {
            return Err(MirrorError::Unaligned { va, len, gpa });
        }
        if va < self.start || va.checked_add(len).is_none_or(|e| e > self.end) {
            return Err(MirrorError::OutsideRange { va, len });
        }
        let (prot, flags, fd, off) = match kind {
            KIND_PROTECT => {
                // SAFETY: [va, va+len) lies inside our reservation (checked
                // above), which holds no proxy code or data; only the access
                // of mirror mappings (or of the reservation) changes.
                let r = unsafe {
                    libc::mprotect(va as *mut libc::c_void, len as usize, mirror_prot(gpa))
                };
                // EACCES: a pass-through mapping of a descriptor opened
                // read-only, which stays read-only, as the application's.
                if r != 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EACCES) {
                    return Err(MirrorError::Mmap {
                        va,
                        len,
                        err: io::Error::last_os_error(),
                    });
                }
                return Ok(());
            }
            KIND_MAP => {
                if !aligned(gpa) {
                    return Err(MirrorError::Unaligned { va, len, gpa });
                }
                // A shared file or device mapping: the proxy made it at this very
                // address (`passthrough`), so it is in place already.
                if self
                    .passthrough
                    .get()
                    .is_some_and(|pt| pt.covers(va, gpa, len))
                {
                    return Ok(());
                }
                let end = gpa.checked_add(len);
                let (fd, off) = match (&self.large_fd, end) {
                    (_, Some(e)) if e <= self.large_start => (self.fd.as_raw_fd(), gpa),
                    (Some(large), Some(e)) if gpa >= self.large_start && e <= self.guest_size => {
                        (large.as_raw_fd(), gpa - self.large_start)
                    }
                    _ => {
                        return Err(MirrorError::BeyondMemory {
                            gpa,
                            len,
                            size: self.guest_size,
                        })
                    }
                };
                (
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED | libc::MAP_FIXED,
                    fd,
                    off as libc::off_t,
                )
            }
            KIND_UNMAP => (
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_FIXED,
                -1,
                0,
            ),
            k => return Err(MirrorError::UnknownKind(k)),
        };
        // SAFETY: 1. [va, va+len) lies inside our reservation (checked above), which
        // holds no proxy code or data: MAP_FIXED replaces only mirror mappings.
        // 2. Nothing in the proxy holds Rust references into mirrored memory; it is
        // reached only by raw addresses passed to the kernel (forwarded calls) or
        // through `read_user`, which tolerates unmapped memory.
        let p = unsafe { libc::mmap(va as *mut libc::c_void, len as usize, prot, flags, fd, off) };
        if p == libc::MAP_FAILED {
            return Err(MirrorError::Mmap {
                va,
                len,
                err: io::Error::last_os_error(),
            });
        }
        {
            let mut spans = self.spans.lock().unwrap_or_else(|p| p.into_inner());
            cut_spans(&mut spans, va, va + len);
            if kind == KIND_MAP {
                spans.insert(va, (va + len, gpa));
            }
        }
        if kind == KIND_MAP && self.populate.load(std::sync::atomic::Ordering::Relaxed) {
            // Allocate the host pages behind newly mapped guest memory now, natively:
            // a guest's first touch of a page the host has not allocated yet costs
            // ~60 us under nested virtualization, against ~8 us for one that exists.
            // `fallocate`, not a populating `madvise`: the pages are allocated but
            // left unwritten (Linux zeroes a shmem page `fallocate` made at its
            // first touch), so `SEEK_DATA` on the memfd still finds only the pages
            // someone touched — the guest through KVM, the proxy through the mirror
            // or its own view — and `fork`'s copy reads only those
            // (`offload::fork`). Failure (no memory yet) only loses the head start.
            // SAFETY: fallocate on our own descriptor of the memfd, inside it (the
            // range was checked above); mode 0 allocates and changes no contents.
            unsafe { libc::fallocate(fd, 0, off, len as libc::off_t) };
        }
        Ok(())
    }
}

impl Mirror {
    /// `ikc::Op::Write`: copy `len` bytes from the proxy's address `src` (runtime
    /// memory) to the application's address `dst`, whatever the application's
    /// protection of `dst` (the patcher rewrites read-only program text): through
    /// the guest-memory view, for `dst` mirrored from guest memory. `EFAULT` for
    /// an unmapped `src` or a `dst` not backed by guest memory.
    pub fn poke(&self, dst: u64, src: u64, len: u64) -> io::Result<()> {
        let efault = || io::Error::from_raw_os_error(libc::EFAULT);
        if len > 1 << 20 {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        let mut buf = vec![0u8; len as usize];
        if read_user(src, &mut buf)? != buf.len() {
            return Err(efault());
        }
        let end = dst.checked_add(len).ok_or_else(efault)?;
        let spans = self.spans.lock().unwrap_or_else(|p| p.into_inner());
        // Every byte first, then the copy: all of it or nothing.
        let mut pieces = Vec::new();
        let mut at = dst;
        while at < end {
            let (&s, &(e, gpa)) = spans.range(..=at).next_back().ok_or_else(efault)?;
            if e <= at {
                return Err(efault());
            }
            let n = e.min(end) - at;
            let g = gpa + (at - s);
            if g.checked_add(n).is_none_or(|ge| ge > self.guest_size) {
                return Err(efault());
            }
            pieces.push((g, (at - dst) as usize, n as usize));
            at += n;
        }
        for (g, off, n) in pieces {
            // SAFETY: [g, g+n) is inside guest memory (checked against its size),
            // which the proxy maps read-write at `host_base` for as long as it
            // lives; the bytes are plain data nobody holds a Rust reference to.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    buf.as_ptr().add(off),
                    (self.host_base + g) as *mut u8,
                    n,
                )
            };
        }
        Ok(())
    }
}

impl Drop for Mirror {
    fn drop(&mut self) {
        // SAFETY: the whole reservation is ours (mirror mappings included) and nobody
        // can use it once the Mirror is gone.
        unsafe {
            libc::munmap(
                self.start as *mut libc::c_void,
                (self.end - self.start) as usize,
            )
        };
    }
}

/// Copy from the proxy's address `va` (typically a mirrored application address)
/// into `buf` without risking a fault: unmapped or inaccessible memory gives
/// `EFAULT`. Returns the bytes copied.
pub fn read_user(va: u64, buf: &mut [u8]) -> io::Result<usize> {
    if buf.is_empty() {
        return Ok(0);
    }
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let remote = libc::iovec {
        iov_base: va as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: `local` describes `buf`, writable for its length; `remote` is only read
    // by the kernel, which checks it and reports EFAULT instead of faulting.
    let n = unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Serializes tests that reserve the application's range (one reservation per process).
#[cfg(test)]
pub(crate) static TEST_RESERVATION: Mutex<()> = Mutex::new(());

/// Fill `len` bytes at the proxy's address `va` (a mirrored application address)
/// with zeroes without risking a fault: unmapped memory gives `EFAULT`.
pub fn zero_user(va: u64, len: u64) -> io::Result<()> {
    static ZEROES: [u8; 1 << 16] = [0; 1 << 16];
    let mut done = 0u64;
    while done < len {
        let n = (len - done).min(ZEROES.len() as u64 * 256);
        let locals: Vec<libc::iovec> = (0..n.div_ceil(ZEROES.len() as u64))
            .map(|i| libc::iovec {
                iov_base: ZEROES.as_ptr() as *mut libc::c_void,
                iov_len: (n - i * ZEROES.len() as u64).min(ZEROES.len() as u64) as usize,
            })
            .collect();
        let remote = libc::iovec {
            iov_base: (va + done) as *mut libc::c_void,
            iov_len: n as usize,
        };
        // SAFETY: every local iovec describes (part of) ZEROES, which the kernel only
        // reads; `remote` is checked by the kernel, which reports EFAULT instead of
        // faulting.
        let w = unsafe {
            libc::process_vm_writev(
                libc::getpid(),
                locals.as_ptr(),
                locals.len() as libc::c_ulong,
                &remote,
                1,
                0,
            )
        };
        if w <= 0 {
            return Err(if w < 0 {
                io::Error::last_os_error()
            } else {
                io::Error::from_raw_os_error(libc::EFAULT)
            });
        }
        done += w as u64;
    }
    Ok(())
}

/// Copy `buf` to the proxy's address `dst` (a mirrored application or runtime
/// address) without risking a fault: unmapped memory gives `EFAULT`.
pub fn write_user(dst: u64, buf: &[u8]) -> io::Result<()> {
    let local = libc::iovec {
        iov_base: buf.as_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    let remote = libc::iovec {
        iov_base: dst as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: `local` describes `buf`, which the kernel only reads; `remote` is
    // checked by the kernel, which reports EFAULT instead of faulting.
    let n = unsafe { libc::process_vm_writev(libc::getpid(), &local, 1, &remote, 1, 0) };
    if n as usize != buf.len() {
        return Err(if n < 0 {
            io::Error::last_os_error()
        } else {
            io::Error::from_raw_os_error(libc::EFAULT)
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mote_abi::boot::BOOT_MAGIC;
    use mote_abi::layout::KERNEL_GPA;

    fn reserved(guest: &GuestMem) -> (std::sync::MutexGuard<'static, ()>, Mirror) {
        let g = TEST_RESERVATION.lock().unwrap_or_else(|p| p.into_inner());
        let m = Mirror::reserve(guest).expect("reserve");
        (g, m)
    }

    /// Regression (issue 15): mirror mappings were always read-write, so a
    /// forwarded call wrote into the application's read-only memory.
    #[test]
    fn protections_apply_to_the_mirror_and_poke_writes_through_guest_memory() {
        let guest = GuestMem::new(4 << 20).unwrap();
        let (_g, m) = reserved(&guest);
        let va = 0x1000_0000u64;
        let map = |kind, va, len, gpa| m.apply(Change { kind, va, len, gpa });
        map(KIND_MAP, va, 4 * PAGE_SIZE, 1 << 20).unwrap();
        map(
            KIND_PROTECT,
            va + PAGE_SIZE,
            PAGE_SIZE,
            libc::PROT_READ as u64,
        )
        .unwrap();
        map(KIND_PROTECT, va + 2 * PAGE_SIZE, PAGE_SIZE, 0).unwrap();
        let efault = Some(libc::EFAULT);
        assert!(write_user(va, b"rw").is_ok());
        let ro = va + PAGE_SIZE;
        assert_eq!(write_user(ro, b"x").unwrap_err().raw_os_error(), efault);
        let mut b = [0u8; 2];
        assert_eq!(read_user(ro, &mut b).unwrap(), 2);
        assert_eq!(
            read_user(va + 2 * PAGE_SIZE, &mut b)
                .unwrap_err()
                .raw_os_error(),
            efault
        );
        // The patcher's writes reach read-only memory, across a protection
        // boundary, through the guest-memory view: all of them.
        let src = b"text!".to_vec();
        m.poke(ro + PAGE_SIZE - 2, src.as_ptr() as u64, 5).unwrap();
        let mut got = [0u8; 5];
        guest.read((1 << 20) + 2 * PAGE_SIZE - 2, &mut got);
        assert_eq!(&got, b"text!");
        // Not past the mapped range, and nothing written then.
        let end = va + 4 * PAGE_SIZE;
        assert_eq!(
            m.poke(end - 2, src.as_ptr() as u64, 5)
                .unwrap_err()
                .raw_os_error(),
            efault
        );
        guest.read((1 << 20) + 4 * PAGE_SIZE - 2, &mut got[..2]);
        assert_eq!(&got[..2], &[0, 0]);
        // A span cut by an unmap is no target any more; its rest still is.
        map(KIND_UNMAP, va, PAGE_SIZE, 0).unwrap();
        assert!(m.poke(va, src.as_ptr() as u64, 1).is_err());
        assert!(m.poke(ro, src.as_ptr() as u64, 1).is_ok());
        // Read-write again.
        map(
            KIND_PROTECT,
            ro,
            PAGE_SIZE,
            libc::PROT_READ as u64 | libc::PROT_WRITE as u64,
        )
        .unwrap();
        assert!(write_user(ro, b"x").is_ok());
    }

    #[test]
    fn mapped_memory_is_the_guests_at_the_same_address() {
        let guest = GuestMem::new(4 << 20).unwrap();
        let (_g, m) = reserved(&guest);
        let va = 0x1000_0000u64;
        m.apply(Change {
            kind: KIND_MAP,
            va,
            len: 2 << 20,
            gpa: 2 << 20,
        })
        .unwrap();

        // Guest writes through the KVM view; the proxy sees it at the app's address.
        guest.write((2 << 20) + 5, b"hello");
        let mut buf = [0u8; 5];
        assert_eq!(read_user(va + 5, &mut buf).unwrap(), 5);
        assert_eq!(&buf, b"hello");

        // And the other way round: a forwarded call writing at the app's address.
        // SAFETY: va..va+2MiB is mapped read-write just above; nothing else uses it.
        unsafe { std::ptr::write_volatile((va + 100) as *mut u32, 0xfeed_beef) };
        assert_eq!(guest.read_u64((2 << 20) + 100) as u32, 0xfeed_beef);

        // Unmap puts the inaccessible reservation back.
        m.apply(Change {
            kind: KIND_UNMAP,
            va,
            len: 2 << 20,
            gpa: 0,
        })
        .unwrap();
        let e = read_user(va + 5, &mut buf).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EFAULT));
        // The guest's memory is untouched by the unmap.
        let mut g = [0u8; 5];
        guest.read((2 << 20) + 5, &mut g);
        assert_eq!(&g, b"hello");
    }

    #[test]
    fn bad_changes_are_refused() {
        let guest = GuestMem::new(4 << 20).unwrap();
        let (_g, m) = reserved(&guest);
        let map = |va, len, gpa| Change {
            kind: KIND_MAP,
            va,
            len,
            gpa,
        };
        assert!(matches!(
            m.apply(map(0x1000, 4096, 0)),
            Err(MirrorError::OutsideRange { .. })
        ));
        assert!(matches!(
            m.apply(map(LIBOS_END - 4096, 8192, 0)),
            Err(MirrorError::OutsideRange { .. })
        ));
        assert!(matches!(
            m.apply(map(u64::MAX - 4095, 4096, 0)),
            Err(MirrorError::OutsideRange { .. })
        ));
        assert!(matches!(
            m.apply(map(0x100_0000, 4096, 4 << 20)),
            Err(MirrorError::BeyondMemory { .. })
        ));
        assert!(matches!(
            m.apply(map(0x100_0001, 4096, 0)),
            Err(MirrorError::Unaligned { .. })
        ));
        assert!(matches!(
            m.apply(map(0x100_0000, 0, 0)),
            Err(MirrorError::Unaligned { .. })
        ));
        assert!(matches!(
            m.apply(Change {
                kind: 9,
                va: 0x100_0000,
                len: 4096,
                gpa: 0
            }),
            Err(MirrorError::UnknownKind(9))
        ));
        // Nothing was mapped by the refused changes.
        let mut b = [0u8; 1];
        assert!(read_user(0x100_0000, &mut b).is_err());
    }

    #[test]
    fn second_reservation_is_refused_clearly() {
        let guest = GuestMem::new(2 << 20).unwrap();
        let (_g, _m) = reserved(&guest);
        let e = Mirror::reserve(&guest).err().expect("range is taken");
        assert!(matches!(e, MirrorError::Reserve { .. }));
        assert!(
            e.to_string()
                .starts_with("cannot reserve 0x10000..0x400100000000"),
            "{e}"
        );
    }

    #[test]
    fn sync_drains_the_log_and_skips_bad_entries() {
        let guest = GuestMem::new(16 << 20).unwrap();
        let (_g, m) = reserved(&guest);
        let log = guest.maplog();
        assert!(log.push(Change {
            kind: KIND_MAP,
            va: 0x40_0000,
            len: 4096,
            gpa: KERNEL_GPA
        }));
        assert!(log.push(Change {
            kind: KIND_MAP,
            va: 0x8,
            len: 4096,
            gpa: 0
        }));
        assert!(log.push(Change {
            kind: KIND_MAP,
            va: 0x50_0000,
            len: 4096,
            gpa: KERNEL_GPA
        }));
        assert_eq!(m.sync(log), 3);
        assert_eq!(m.sync(log), 0);
        guest.write(KERNEL_GPA, b"xy");
        let mut b = [0u8; 2];
        read_user(0x50_0000, &mut b).unwrap();
        assert_eq!(&b, b"xy", "two addresses alias one frame");
        read_user(0x40_0000, &mut b).unwrap();
        assert_eq!(&b, b"xy");
    }

    #[test]
    fn boot_regions_are_visible_at_their_runtime_addresses() {
        let guest = GuestMem::new(128 << 20).unwrap();
        let (_g, m) = reserved(&guest);
        let runtime_gpa = 32 << 20;
        m.map_boot_regions(runtime_gpa).unwrap();
        guest.write_u64(BOOT_INFO_GPA, BOOT_MAGIC);
        guest.write(IKC_GPA + 8, b"ikc");
        guest.write(ARGS_GPA, b"/bin/x\0");
        guest.write(runtime_gpa + 16, b"rt");
        let mut b = [0u8; 8];
        read_user(LIBOS_VA, &mut b).unwrap();
        assert_eq!(u64::from_le_bytes(b), BOOT_MAGIC);
        let mut b = [0u8; 3];
        read_user(IKC_VA + 8, &mut b).unwrap();
        assert_eq!(&b, b"ikc");
        let mut b = [0u8; 7];
        read_user(ARGS_VA, &mut b).unwrap();
        assert_eq!(&b, b"/bin/x\0");
        let mut b = [0u8; 2];
        read_user(RUNTIME_VA + 16, &mut b).unwrap();
        assert_eq!(&b, b"rt");
        // Boot info page only: the page after it is not mirrored.
        assert!(read_user(LIBOS_VA + PAGE_SIZE, &mut b).is_err());

        // A runtime region beyond guest memory is refused.
        assert!(matches!(
            m.map_boot_regions(100 << 20),
            Err(MirrorError::BeyondMemory { .. })
        ));
    }
}
