//! Guest-physical memory of a partition: one memfd (two on the hosted platform
//! with hugetlbfs pages), mapped once into the proxy for KVM (slot 0 at GPA 0) and,
//! piece by piece, at the application's own virtual addresses by `mirror` (the
//! unified address space). A leaf module.
//!
//! Allows `unsafe`: it owns the raw memory: the memfd mappings and the typed
//! views of the shared pages (IKC, signal page, map log, boot structures) in it.
#![allow(unsafe_code)]

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use mote_abi::ikc::{
    core_page_offset, thread_slot_offset, CorePage, Slot, MAPLOG_OFFSET, MAX_THREADS,
};
use mote_abi::layout::{IKC_GPA, IKC_SIZE, LARGE_PAGE_SIZE as LARGE};
use mote_abi::maplog::MapLog;
use mote_abi::trap::FaultReport;

/// Failure to set up guest memory.
#[derive(Debug, thiserror::Error)]
pub enum GuestMemError {
    #[error("cannot create guest memory (memfd_create): {0}")]
    Memfd(std::io::Error),
    #[error("cannot size guest memory to {size} bytes (ftruncate): {err}")]
    Size { size: u64, err: std::io::Error },
    #[error(
        "guest memory of {size} bytes is larger than the hard file-size limit \
         (`ulimit -Hf`) of {limit} bytes, and mote's guest memory is a file: \
         raise that limit (or let mote lift it for its own files: CAP_SYS_RESOURCE, \
         as root usually has) or run with a smaller --mem"
    )]
    FileLimit { size: u64, limit: u64 },
    #[error("cannot map guest memory of {size} bytes: {err}")]
    Map { size: u64, err: std::io::Error },
    #[error("cannot map {pages} 2 MiB hugetlbfs pages of guest memory: {err}")]
    Huge { pages: u64, err: std::io::Error },
}

/// The partition's memory as the proxy holds it: guest-physical `[0, small)` from
/// an ordinary memfd and, on the hosted platform when Linux has 2 MiB pages
/// reserved, `[small, small + large)` from a hugetlbfs memfd (2 MiB pages, which
/// can only be mapped whole). Both are mapped back to back in the proxy, so a
/// guest-physical address is one offset from `host_base` either way.
pub struct GuestMem {
    fd: OwnedFd,
    /// The hugetlbfs memfd behind `[small, size)`, if any.
    large_fd: Option<OwnedFd>,
    base: *mut u8,
    /// Where the 2 MiB-page memory starts (== `size` without it).
    small: u64,
    size: u64,
}

// SAFETY: the mapping is shared memory accessed with atomics (IKC) or before the
// vCPUs start (loading); the raw pointer is valid for the life of GuestMem.
unsafe impl Send for GuestMem {}
// SAFETY: as above.
unsafe impl Sync for GuestMem {}

/// `memfd_create` flags for 2 MiB hugetlbfs pages (`linux/memfd.h`,
/// `MFD_HUGE_2MB` is log2(2 MiB) << `MFD_HUGE_SHIFT`).
const MFD_HUGE_2MB: libc::c_uint = 21 << 26;

fn memfd(name: &std::ffi::CStr, flags: libc::c_uint, size: u64) -> Result<OwnedFd, GuestMemError> {
    // SAFETY: plain syscall with a static C string; the result is checked.
    let raw = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | flags) };
    if raw < 0 {
        return Err(GuestMemError::Memfd(std::io::Error::last_os_error()));
    }
    // SAFETY: raw is a fresh fd we own.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    size_file(&fd, size)?;
    Ok(fd)
}

/// Size mote's own file `fd` (guest memory) to `size` bytes. The file-size
/// limit mote inherited (`ulimit -f`) is the application's, for its own files:
/// it is lifted for the `ftruncate` and put back (before any application call
/// runs, or in a single-threaded process) — the soft limit up to the hard one,
/// and the hard one too where mote may (`CAP_SYS_RESOURCE`).
pub fn size_file(fd: &OwnedFd, size: u64) -> Result<(), GuestMemError> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Fsize);
    let fits = |l: Option<u64>| l.is_none_or(|l| l >= size);
    let lifted = !fits(limit.current);
    if lifted {
        let open = if fits(limit.maximum) {
            Rlimit {
                current: limit.maximum,
                maximum: limit.maximum,
            }
        } else {
            Rlimit {
                current: None,
                maximum: None,
            }
        };
        if setrlimit(Resource::Fsize, open).is_err() {
            return Err(GuestMemError::FileLimit {
                size,
                limit: limit.maximum.unwrap_or(0),
            });
        }
    }
    // SAFETY: ftruncate on our own fd.
    let ok = unsafe { libc::ftruncate(fd.as_raw_fd(), size as libc::off_t) } == 0;
    let err = std::io::Error::last_os_error();
    if lifted {
        // Putting back what was there: lowering never needs a privilege.
        let _ = setrlimit(Resource::Fsize, limit);
    }
    if ok {
        Ok(())
    } else {
        Err(GuestMemError::Size { size, err })
    }
}

impl GuestMem {
    /// Create `size` bytes (a multiple of 2 MiB) of zeroed guest memory.
    pub fn new(size: u64) -> Result<GuestMem, GuestMemError> {
        Self::with_large(size, 0)
    }

    /// Create `size` bytes (a multiple of 2 MiB) of zeroed guest memory, the last
    /// `large` of them (a multiple of 2 MiB, at most `size`) on 2 MiB hugetlbfs
    /// pages, which are allocated only as the runtime maps them.
    pub fn with_large(size: u64, large: u64) -> Result<GuestMem, GuestMemError> {
        assert!(size.is_multiple_of(LARGE) && large.is_multiple_of(LARGE) && large <= size);
        let small = size - large;
        let fd = memfd(c"mote-guest", 0, small)?;
        let large_fd = match large {
            0 => None,
            _ => Some(memfd(
                c"mote-guest-2m",
                libc::MFD_HUGETLB | MFD_HUGE_2MB,
                large,
            )?),
        };
        // One stretch of address space, 2 MiB aligned (hugetlbfs maps only at
        // 2 MiB-aligned addresses), then each memfd at its place in it.
        let span = (size + LARGE) as usize;
        // SAFETY: a fresh inaccessible anonymous mapping; the kernel picks the address.
        let raw = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                span,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if raw == libc::MAP_FAILED {
            return Err(GuestMemError::Map {
                size,
                err: std::io::Error::last_os_error(),
            });
        }
        let base = (raw as u64).next_multiple_of(LARGE);
        // The stretch's ends beyond [base, base + size) go back.
        // SAFETY: both pieces are parts of the mapping just made, used by nobody.
        unsafe {
            let head = base - raw as u64;
            if head > 0 {
                libc::munmap(raw, head as usize);
            }
            let tail = span as u64 - head - size;
            if tail > 0 {
                libc::munmap((base + size) as *mut libc::c_void, tail as usize);
            }
        }
        let mem = GuestMem {
            fd,
            large_fd,
            base: base as *mut u8,
            small,
            size,
        };
        let map = |at: u64, len: u64, fd: i32, flags: libc::c_int| {
            // SAFETY: [at, at + len) lies in the stretch reserved above, which only
            // `mem` owns (it unmaps it on drop); MAP_FIXED replaces the reservation.
            let p = unsafe {
                libc::mmap(
                    at as *mut libc::c_void,
                    len as usize,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED | libc::MAP_FIXED | flags,
                    fd,
                    0,
                )
            };
            if p == libc::MAP_FAILED {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(())
            }
        };
        if small > 0 {
            map(base, small, mem.fd(), libc::MAP_NORESERVE)
                .map_err(|err| GuestMemError::Map { size, err })?;
            // Transparent huge pages for the KVM view where the kernel allows it.
            // SAFETY: advice on our own mapping; failure is harmless.
            unsafe {
                libc::madvise(
                    base as *mut libc::c_void,
                    small as usize,
                    libc::MADV_HUGEPAGE,
                )
            };
        }
        if let Some(fd) = &mem.large_fd {
            // MAP_NORESERVE: nothing is taken from Linux's hugetlbfs pages until
            // the runtime maps a chunk, which allocates its pages first
            // (`fallocate`, see the runtime's `rt::hosted::map`) and falls back
            // to ordinary memory when none are left. Runs side by side (MPI ranks
            // on one node) so share the pages by use, not by their --mem. The
            // proxy touches this memory only where the runtime mapped it.
            map(base + small, large, fd.as_raw_fd(), libc::MAP_NORESERVE).map_err(|err| {
                GuestMemError::Huge {
                    pages: large / LARGE,
                    err,
                }
            })?;
        }
        Ok(mem)
    }

    /// The memfd behind guest-physical `[0, large_start())` (for mirror mappings
    /// and KVM).
    pub fn fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }

    /// The hugetlbfs memfd behind `[large_start(), size())`, if there is one.
    pub fn large_fd(&self) -> Option<i32> {
        self.large_fd.as_ref().map(|f| f.as_raw_fd())
    }

    /// Where the 2 MiB-page memory starts, or `None` without it.
    pub fn large_start(&self) -> Option<u64> {
        self.large_fd.as_ref().map(|_| self.small)
    }

    /// Size in bytes (both memfds).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Host address of the KVM view.
    pub fn host_base(&self) -> u64 {
        self.base as u64
    }

    /// Bind the host memory behind guest-physical `[gpa, gpa + len)` to host
    /// NUMA node `node` (`mbind(MPOL_BIND)` of the view, which sets the memfd's
    /// shared policy; pages already touched move).
    pub fn bind_to_node(&self, gpa: u64, len: u64, node: u16) -> std::io::Result<()> {
        const MPOL_BIND: libc::c_ulong = 2;
        const MPOL_MF_MOVE: libc::c_ulong = 2;
        let mut mask = [0u64; mote_abi::numa::MAX_NUMNODES as usize / 64];
        mask[node as usize / 64] |= 1 << (node % 64);
        let addr = self.ptr(gpa, len).ok_or(std::io::ErrorKind::InvalidInput)?;
        // SAFETY: `mbind` changes only the memory policy of our own mapping
        // `[addr, addr + len)` (in bounds, checked by `ptr`); `mask` outlives the
        // call and holds `maxnode` bits.
        let r = unsafe {
            libc::syscall(
                libc::SYS_mbind,
                addr,
                len as libc::c_ulong,
                MPOL_BIND,
                mask.as_ptr(),
                mote_abi::numa::MAX_NUMNODES as libc::c_ulong + 1,
                MPOL_MF_MOVE,
            )
        };
        if r < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Host pointer to guest-physical `gpa`, if `[gpa, gpa+len)` is inside memory.
    pub fn ptr(&self, gpa: u64, len: u64) -> Option<*mut u8> {
        let end = gpa.checked_add(len)?;
        // SAFETY: in bounds of our mapping (checked just above).
        (end <= self.size).then(|| unsafe { self.base.add(gpa as usize) })
    }

    /// Copy `data` to guest-physical `gpa`. Only before vCPUs run or into memory the
    /// guest does not use concurrently. Panics when out of range (a proxy bug).
    pub fn write(&self, gpa: u64, data: &[u8]) {
        let p = self
            .ptr(gpa, data.len() as u64)
            .expect("guest write out of range");
        // SAFETY: p is valid for data.len() bytes (checked by ptr); data cannot
        // overlap guest memory (it is proxy heap memory).
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), p, data.len()) };
    }

    /// Copy guest-physical `[gpa, gpa + buf.len())` into `buf`. Panics when out of
    /// range (a proxy bug).
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn read(&self, gpa: u64, buf: &mut [u8]) {
        let p = self
            .ptr(gpa, buf.len() as u64)
            .expect("guest read out of range");
        // SAFETY: p is valid for buf.len() bytes (checked by ptr); buf is proxy heap
        // or stack memory, not guest memory, so the ranges do not overlap.
        unsafe { std::ptr::copy_nonoverlapping(p, buf.as_mut_ptr(), buf.len()) };
    }

    /// Read a u64 at guest-physical `gpa`.
    pub fn read_u64(&self, gpa: u64) -> u64 {
        let p = self.ptr(gpa, 8).expect("guest read out of range");
        // SAFETY: in range; unaligned read is allowed.
        unsafe { p.cast::<u64>().read_unaligned() }
    }

    /// Write a u64 at guest-physical `gpa`.
    pub fn write_u64(&self, gpa: u64, v: u64) {
        self.write(gpa, &v.to_le_bytes());
    }

    /// Write `value`'s bytes at guest-physical `gpa` (a `#[repr(C)]` boot
    /// structure: `BootInfo`, `HostedInfo`). As `write`: only before the guest
    /// runs or into memory it does not use concurrently; panics when out of range.
    pub fn write_plain<T: Copy>(&self, gpa: u64, value: &T) {
        let p = self
            .ptr(gpa, std::mem::size_of::<T>() as u64)
            .expect("guest write out of range");
        // SAFETY: p is valid for size_of::<T>() bytes (checked by ptr); the write is
        // unaligned-safe; T is Copy (nothing to drop, no ownership moved into guest
        // memory), and the guest reads it as plain bytes.
        unsafe { p.cast::<T>().write_unaligned(*value) };
    }

    /// The fault report core `core` wrote into its IKC page before reporting a
    /// fatal fault (`ports::FATAL`, `Op::Fatal`).
    pub fn fault_report(&self, core: usize) -> FaultReport {
        let p = &self.core_page(core).fault as *const FaultReport;
        // SAFETY: the core page is live shared memory for as long as `self`;
        // FaultReport is plain integers (any bit pattern is valid); the guest wrote
        // the report before the exit or the request that reports it, which the
        // caller's Acquire (of the request) or the stopped vCPU ordered before this
        // read; a volatile read, as the guest may still write.
        unsafe { p.read_volatile() }
    }

    /// Core `i`'s IKC page.
    pub fn core_page(&self, i: usize) -> &CorePage {
        let off = IKC_GPA + core_page_offset(i);
        let p = self
            .ptr(off, std::mem::size_of::<CorePage>() as u64)
            .expect("core page");
        // SAFETY: in range, page aligned, CorePage is atomics + plain integers for
        // which every bit pattern is valid; lives as long as self.
        unsafe { &*p.cast::<CorePage>() }
    }

    /// Thread slot `i` (`i < MAX_THREADS`).
    pub fn thread_slot(&self, i: usize) -> &Slot {
        assert!(i < MAX_THREADS, "thread slot {i} out of range");
        let p = self
            .ptr(
                IKC_GPA + thread_slot_offset(i),
                std::mem::size_of::<Slot>() as u64,
            )
            .expect("thread slot");
        // SAFETY: in range (checked against MAX_THREADS, whose slots fit the IKC area
        // by a static assertion), 64-byte aligned, atomics and integers only; lives
        // as long as self.
        unsafe { &*p.cast::<Slot>() }
    }

    /// The signal page (`mote_abi::signal`).
    pub fn signal_page(&self) -> &mote_abi::signal::SignalPage {
        use mote_abi::signal::{SignalPage, SIGNAL_PAGE_OFFSET};
        let p = self
            .ptr(
                IKC_GPA + SIGNAL_PAGE_OFFSET,
                std::mem::size_of::<SignalPage>() as u64,
            )
            .expect("signal page");
        // SAFETY: in range, page aligned, all atomics; lives as long as self.
        unsafe { &*p.cast::<SignalPage>() }
    }

    /// Core `core`'s trace ring (`mote_abi::trace`) in the runtime region at
    /// guest-physical `runtime_gpa`.
    pub fn trace_ring(&self, runtime_gpa: u64, core: usize) -> &mote_abi::trace::Ring {
        use mote_abi::trace::{ring_offset, Ring};
        assert!(core < mote_abi::layout::MAX_CORES, "trace ring {core}");
        let p = self
            .ptr(
                runtime_gpa + ring_offset(core),
                std::mem::size_of::<Ring>() as u64,
            )
            .expect("trace ring");
        // SAFETY: in range (checked by ptr), 64-byte aligned (the runtime region
        // is 2 MiB aligned, the offset a multiple of the ring's size); Ring is
        // atomics and padding integers, valid for any bit pattern the guest
        // writes; lives as long as self.
        unsafe { &*p.cast::<Ring>() }
    }

    /// The map log.
    pub fn maplog(&self) -> &MapLog {
        const { assert!(MAPLOG_OFFSET + std::mem::size_of::<MapLog>() as u64 <= IKC_SIZE) };
        let p = self
            .ptr(
                IKC_GPA + MAPLOG_OFFSET,
                std::mem::size_of::<MapLog>() as u64,
            )
            .expect("map log");
        // SAFETY: in range, aligned, all-integer type; lives as long as self.
        unsafe { &*p.cast::<MapLog>() }
    }
}

impl Drop for GuestMem {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the mapping made in new().
        unsafe { libc::munmap(self.base.cast(), self.size as usize) };
    }
}
