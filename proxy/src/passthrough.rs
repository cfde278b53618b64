//! Shared file and device mappings passed through from Linux (`mmap` with
//! `MAP_SHARED` and an fd: regular files, `/dev/shm` objects, `/dev/zero`, device
//! files).
//!
//! # Design
//!
//! Linux owns the pages; nothing is copied. For `ikc::Op::MapShared` the proxy
//!
//! 1. `mmap`s the application's fd with `MAP_SHARED | MAP_FIXED` **at the
//!    application's own virtual address**, inside the mirror reservation: this one
//!    Linux mapping is at once the mirror (forwarded calls, `msync` included, see the
//!    file at the application's pointers) and the memory behind the partition's view;
//! 2. allocates a guest-physical range in the pass-through window
//!    (`layout::PASSTHROUGH_GPA`) and a KVM memory slot number ([`SlotAllocator`]),
//!    and registers the slot with that mapping as its host memory;
//! 3. answers the range's start; libos maps it into the application like RAM (pages
//!    up to end-of-file only, so an access beyond it faults in the partition and
//!    libos reports `SIGBUS`, as Linux does). The proxy keeps its own descriptor of
//!    a regular file: when the file has grown since (another process extended it),
//!    libos's fault handler asks again (`Op::SharedLen`) and maps the new pages.
//!    A file that shrinks under the mapping makes the host page vanish; KVM_RUN
//!    then fails with `EFAULT` and the run ends with `SIGBUS` (`vmm`).
//!
//! Stores by the application reach the page cache (or the device) directly, so native
//! processes mapping the same file see them and the other way round. `munmap` is
//! libos's: it unmaps the partition's view and publishes `KIND_UNMAP` for the whole
//! range, which puts the mirror's inaccessible reservation back over the Linux
//! mapping; when no page of an object is mapped any more, libos sends
//! `ikc::Op::Unshare` and the slot and its range are freed for reuse.
//!
//! The same path carries MPI intra-node shared memory (`/dev/shm` segments mapped by
//! every rank, native or mote) and RDMA device mappings (doorbells and queues of
//! `/dev/infiniband/uverbs*`: `VM_IO | VM_PFNMAP` memory, which KVM slots accept as
//! they do page-cache memory). A device that refuses a second `mmap` of the same
//! offset is no problem: there is only one Linux mapping per application mapping.
//!
//! Limits: KVM offers a bounded number of memory slots (`KVM_CAP_NR_MEMSLOTS`, 509
//! on older hosts); slot numbers and window ranges are recycled as soon as an object
//! is released, and a mapping that finds none free fails with `ENOMEM`. Each
//! `mmap` is its own object: two mappings of the same file share the pages through
//! Linux but take two slots. `mremap` of a pass-through mapping is refused by libos
//! (the slot's host memory is tied to the address it was created at).
#![allow(unsafe_code)]

use std::collections::BTreeMap;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Mutex;

use kvm_bindings::{kvm_userspace_memory_region, KVM_MEM_READONLY};
use kvm_ioctls::VmFd;
use mote_abi::ikc::SHARED_READONLY;
use mote_abi::layout::{
    is_passthrough, LARGE_PAGE_SIZE, PAGE_SIZE, PASSTHROUGH_GPA, PASSTHROUGH_SIZE, USER_END,
    USER_START,
};

/// Where KVM memory slots are registered (a trait so tests need no VM).
pub trait MemSlots: Send + Sync {
    /// Register slot `slot` at `[gpa, gpa+len)` backed by host memory at `hva`;
    /// `len == 0` deletes the slot.
    fn set(&self, slot: u32, gpa: u64, len: u64, hva: u64, readonly: bool) -> io::Result<()>;
}

impl<T: MemSlots> MemSlots for std::sync::Arc<T> {
    fn set(&self, slot: u32, gpa: u64, len: u64, hva: u64, readonly: bool) -> io::Result<()> {
        (**self).set(slot, gpa, len, hva, readonly)
    }
}

impl MemSlots for VmFd {
    fn set(&self, slot: u32, gpa: u64, len: u64, hva: u64, readonly: bool) -> io::Result<()> {
        let region = kvm_userspace_memory_region {
            slot,
            flags: if readonly { KVM_MEM_READONLY } else { 0 },
            guest_phys_addr: gpa,
            memory_size: len,
            userspace_addr: hva,
        };
        // SAFETY: `hva` is the proxy's own shared mapping of the object, made by
        // `Passthrough::map` and kept until the slot is deleted (`unshare` deletes
        // the slot before the range is reused); deleting (len 0) touches no memory.
        unsafe { self.set_user_memory_region(region) }
            .map_err(|e| io::Error::from_raw_os_error(e.errno()))
    }
}

/// Why a slot could not be allocated.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SlotError {
    #[error("every KVM memory slot is in use")]
    NoSlot,
    #[error("the pass-through window has no free range of that size")]
    NoSpace,
}

/// KVM slot numbers and guest-physical ranges of the pass-through window.
///
/// Slot numbers are `[first, limit)`; freed numbers are reused first. Ranges are
/// first-fit from a free list whose neighbours are coalesced on free, 2 MiB aligned
/// for mappings of 2 MiB or more (so libos can map them with large pages).
#[derive(Debug)]
pub struct SlotAllocator {
    free_slots: Vec<u32>,
    next_slot: u32,
    limit: u32,
    /// Free ranges of the window: start → length.
    free: BTreeMap<u64, u64>,
}

impl SlotAllocator {
    /// Slots `[first, limit)` over the window `[base, base+size)`.
    pub fn new(first: u32, limit: u32, base: u64, size: u64) -> Self {
        let mut free = BTreeMap::new();
        if size > 0 {
            free.insert(base, size);
        }
        SlotAllocator {
            free_slots: Vec::new(),
            next_slot: first,
            limit,
            free,
        }
    }

    /// A slot number and a window range of `len` bytes (page multiple).
    pub fn alloc(&mut self, len: u64) -> Result<(u32, u64), SlotError> {
        if self.free_slots.is_empty() && self.next_slot >= self.limit {
            return Err(SlotError::NoSlot);
        }
        let align = if len >= LARGE_PAGE_SIZE {
            LARGE_PAGE_SIZE
        } else {
            PAGE_SIZE
        };
        let (start, flen, at) = self
            .free
            .iter()
            .find_map(|(&s, &l)| {
                let at = s.checked_add(align - 1)? & !(align - 1);
                (at.checked_add(len)? <= s + l).then_some((s, l, at))
            })
            .ok_or(SlotError::NoSpace)?;
        self.free.remove(&start);
        if at > start {
            self.free.insert(start, at - start);
        }
        if at + len < start + flen {
            self.free.insert(at + len, start + flen - (at + len));
        }
        let slot = match self.free_slots.pop() {
            Some(s) => s,
            None => {
                self.next_slot += 1;
                self.next_slot - 1
            }
        };
        Ok((slot, at))
    }

    /// Give back what `alloc` handed out.
    pub fn free(&mut self, slot: u32, gpa: u64, len: u64) {
        self.free_slots.push(slot);
        let (mut s, mut l) = (gpa, len);
        if let Some((&ps, &pl)) = self.free.range(..s).next_back() {
            if ps + pl == s {
                self.free.remove(&ps);
                s = ps;
                l += pl;
            }
        }
        if let Some(&nl) = self.free.get(&(s + l)) {
            self.free.remove(&(s + l));
            l += nl;
        }
        self.free.insert(s, l);
    }

    /// Slots in use.
    #[cfg(test)]
    fn in_use(&self, first: u32) -> u32 {
        self.next_slot - first - self.free_slots.len() as u32
    }
}

/// One live pass-through object.
#[derive(Debug)]
struct Object {
    slot: u32,
    va: u64,
    len: u64,
    /// Offset of the mapping in the file.
    off: u64,
    /// The proxy's own descriptor of a regular file (for its current size: the
    /// file may grow after it was mapped); `None` for devices, which have no end.
    file: Option<OwnedFd>,
}

struct State {
    alloc: SlotAllocator,
    /// By guest-physical start.
    objects: BTreeMap<u64, Object>,
}

/// The partition's pass-through objects.
pub struct Passthrough {
    slots: Box<dyn MemSlots>,
    st: Mutex<State>,
}

/// First slot number for pass-through objects (slot 0 is guest RAM).
pub const FIRST_SLOT: u32 = 1;

fn neg(errno: i32) -> i64 {
    -i64::from(errno)
}

impl Passthrough {
    /// Pass-through objects registered with `slots`, which offers `nr_slots` slots
    /// in all (`KVM_CAP_NR_MEMSLOTS`).
    pub fn new(slots: Box<dyn MemSlots>, nr_slots: u32) -> Self {
        Passthrough {
            slots,
            st: Mutex::new(State {
                alloc: SlotAllocator::new(FIRST_SLOT, nr_slots, PASSTHROUGH_GPA, PASSTHROUGH_SIZE),
                objects: BTreeMap::new(),
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.st.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `Op::MapShared`: map `fd` at the application's `va` and give it a slot. The
    /// caller holds the mirror's lock (the range is part of the reservation).
    pub fn map(&self, va: u64, len: u64, prot: u64, flags: u64, fd: u64, off: u64) -> i64 {
        let aligned = |x: u64| x.is_multiple_of(PAGE_SIZE);
        if len == 0
            || !aligned(va)
            || !aligned(len)
            || va < USER_START
            || va.checked_add(len).is_none_or(|e| e > USER_END)
        {
            return neg(libc::EINVAL);
        }
        let Ok(fd) = i32::try_from(fd) else {
            return neg(libc::EBADF);
        };
        let extra = flags & (libc::MAP_POPULATE | libc::MAP_NORESERVE | libc::MAP_LOCKED) as u64;
        let map = |p: i32| {
            // SAFETY: 1. [va, va+len) lies in the application's range (checked above),
            // which the mirror reserved: MAP_FIXED replaces only mirror mappings, no
            // proxy code or data. 2. The caller holds the mirror lock, so no other
            // thread changes that range meanwhile. 3. Nothing in the proxy holds
            // references into it (forwarded calls reach it by raw address only).
            unsafe {
                libc::mmap(
                    va as *mut libc::c_void,
                    len as usize,
                    p,
                    libc::MAP_SHARED | libc::MAP_FIXED | extra as i32,
                    fd,
                    off as libc::off_t,
                )
            }
        };
        let mut readonly = false;
        let mut p = map(libc::PROT_READ | libc::PROT_WRITE);
        if p == libc::MAP_FAILED {
            let err = io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO);
            // An fd open for reading only: fine unless the caller wants to write.
            if err != libc::EACCES || prot & libc::PROT_WRITE as u64 != 0 {
                restore_reservation(va, len);
                return neg(err);
            }
            p = map(libc::PROT_READ);
            if p == libc::MAP_FAILED {
                let err = io::Error::last_os_error()
                    .raw_os_error()
                    .unwrap_or(libc::EIO);
                restore_reservation(va, len);
                return neg(err);
            }
            readonly = true;
        }
        let file = size_fd(fd);
        let mut st = self.state();
        let placed =
            st.alloc
                .alloc(len)
                .map_err(|_| libc::ENOMEM)
                .and_then(
                    |(slot, gpa)| match self.slots.set(slot, gpa, len, va, readonly) {
                        Ok(()) => Ok((slot, gpa)),
                        Err(e) => {
                            st.alloc.free(slot, gpa, len);
                            Err(e.raw_os_error().unwrap_or(libc::ENOMEM))
                        }
                    },
                );
        match placed {
            Ok((slot, gpa)) => {
                st.objects.insert(
                    gpa,
                    Object {
                        slot,
                        va,
                        len,
                        off,
                        file,
                    },
                );
                (gpa | if readonly { SHARED_READONLY } else { 0 }) as i64
            }
            Err(errno) => {
                drop(st);
                restore_reservation(va, len);
                neg(errno)
            }
        }
    }

    /// `Op::Unshare`: the object at `gpa` is no longer mapped by the application.
    /// Its virtual range was already given back to the reservation through the map
    /// log (applied before this request); here the slot goes.
    pub fn unshare(&self, gpa: u64) -> i64 {
        let mut st = self.state();
        let Some(o) = st.objects.remove(&gpa) else {
            return neg(libc::EINVAL);
        };
        if let Some(f) = &o.file {
            crate::offload::unprotect_fd(f.as_raw_fd());
        }
        if let Err(e) = self.slots.set(o.slot, gpa, 0, 0, false) {
            eprintln!("mote: pass-through: cannot delete KVM slot {}: {e}", o.slot);
        }
        st.alloc.free(o.slot, gpa, o.len);
        0
    }

    /// `Op::SharedLen`: bytes of the object at `gpa` before the file's end, now.
    pub fn valid_len(&self, gpa: u64) -> i64 {
        self.state()
            .objects
            .get(&gpa)
            .map_or(neg(libc::EINVAL), |o| {
                o.file
                    .as_ref()
                    .map_or(o.len, |f| valid_len(f.as_raw_fd(), o.len, o.off))
                    as i64
            })
    }

    /// A map-log entry mapping `[va, va+len)` to pass-through `gpa` is consistent with
    /// the object there (it is already in place: the object's mapping is the mirror).
    pub fn covers(&self, va: u64, gpa: u64, len: u64) -> bool {
        if !is_passthrough(gpa, len) {
            return false;
        }
        let st = self.state();
        st.objects.range(..=gpa).next_back().is_some_and(|(&g, o)| {
            gpa + len <= g + o.len && va.wrapping_sub(gpa) == o.va.wrapping_sub(g)
        })
    }

    /// Live objects (statistics, tests).
    #[cfg(test)]
    fn live(&self) -> usize {
        self.state().objects.len()
    }
}

/// Lowest descriptor number the proxy uses for its copies of shared files: far above
/// what applications usually reach, so their `open`s get the numbers they get
/// natively.
const SIZE_FD_MIN: i32 = 512;

/// The proxy's own copy of `fd` when it is a regular file (its size can change),
/// protected from the application's `close`/`dup2`; `None` for anything else.
fn size_fd(fd: i32) -> Option<OwnedFd> {
    // SAFETY: `stat` is plain data (all-zero is valid); fstat writes only into it.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above; `fd` is the application's descriptor, only queried.
    if unsafe { libc::fstat(fd, &mut st) } != 0 || st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return None;
    }
    // SAFETY: F_DUPFD_CLOEXEC makes a new descriptor, which we own on success.
    let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, SIZE_FD_MIN) };
    if dup < 0 {
        return None;
    }
    crate::offload::protect_fds([dup]);
    // SAFETY: `dup` is a fresh descriptor nobody else owns.
    Some(unsafe { OwnedFd::from_raw_fd(dup) })
}

/// Bytes of a `len`-byte mapping of `fd` from `off` that lie before the end of the
/// file, rounded up to whole pages; all of it for anything but a regular file
/// (devices, `/dev/zero`), which has no end to fault beyond.
fn valid_len(fd: i32, len: u64, off: u64) -> u64 {
    // SAFETY: `stat` is plain data (all-zero is valid); fstat writes only into it.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above; `fd` is the application's descriptor, only queried.
    if unsafe { libc::fstat(fd, &mut st) } != 0 || st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return len;
    }
    let size = st.st_size.max(0) as u64;
    let after = size.saturating_sub(off);
    after.div_ceil(PAGE_SIZE).saturating_mul(PAGE_SIZE).min(len)
}

/// Put the mirror's inaccessible reservation back over `[va, va+len)`.
fn restore_reservation(va: u64, len: u64) {
    // SAFETY: as in `Passthrough::map`: the range is in the reservation and the
    // caller holds the mirror lock.
    unsafe {
        libc::mmap(
            va as *mut libc::c_void,
            len as usize,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_FIXED,
            -1,
            0,
        )
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB2: u64 = LARGE_PAGE_SIZE;

    #[test]
    fn slots_and_ranges_are_reused_and_coalesced() {
        let base = PASSTHROUGH_GPA;
        let mut a = SlotAllocator::new(1, 4, base, 16 * MB2);
        let (s1, g1) = a.alloc(PAGE_SIZE).unwrap();
        let (s2, g2) = a.alloc(MB2).unwrap();
        assert_eq!((s1, g1), (1, base));
        assert_eq!(s2, 2);
        assert!(
            g2.is_multiple_of(MB2) && g2 > g1,
            "large objects 2 MiB aligned"
        );
        let (s3, g3) = a.alloc(3 * PAGE_SIZE).unwrap();
        assert_eq!(s3, 3);
        assert_eq!(g3, base + PAGE_SIZE, "small ones fill the gap before it");
        assert_eq!(
            a.alloc(PAGE_SIZE),
            Err(SlotError::NoSlot),
            "slots 1..4 only"
        );
        a.free(s2, g2, MB2);
        let (s4, g4) = a.alloc(MB2).unwrap();
        assert_eq!((s4, g4), (s2, g2), "freed slot and range come back");
        for (s, g, l) in [(s1, g1, PAGE_SIZE), (s3, g3, 3 * PAGE_SIZE), (s4, g4, MB2)] {
            a.free(s, g, l);
        }
        assert_eq!(a.in_use(1), 0);
        assert_eq!(a.free.len(), 1, "everything coalesced: {:?}", a.free);
        assert_eq!(a.free.get(&base), Some(&(16 * MB2)));
    }

    #[test]
    fn exhausted_window_is_no_space() {
        let mut a = SlotAllocator::new(1, 100, PASSTHROUGH_GPA, 2 * MB2);
        let (s, g) = a.alloc(2 * MB2).unwrap();
        assert_eq!(a.alloc(PAGE_SIZE), Err(SlotError::NoSpace));
        a.free(s, g, 2 * MB2);
        assert!(a.alloc(MB2 + PAGE_SIZE).is_ok());
        assert_eq!(a.alloc(MB2), Err(SlotError::NoSpace), "alignment counts");
    }

    /// One `MemSlots::set` call: slot, gpa, len, hva, read-only.
    type SlotCall = (u32, u64, u64, u64, bool);

    /// Slots recorded instead of registered.
    #[derive(Default)]
    struct Recorder(Mutex<Vec<SlotCall>>);
    impl MemSlots for Recorder {
        fn set(&self, slot: u32, gpa: u64, len: u64, hva: u64, ro: bool) -> io::Result<()> {
            self.0.lock().unwrap().push((slot, gpa, len, hva, ro));
            Ok(())
        }
    }

    #[test]
    fn a_shared_file_is_mapped_at_the_applications_address_and_released() {
        let _g = crate::mirror::TEST_RESERVATION
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let guest = crate::guest::GuestMem::new(2 << 20).unwrap();
        let _m = crate::mirror::Mirror::reserve(&guest).unwrap();
        let path = std::env::temp_dir().join(format!("mote-pt-{}", std::process::id()));
        std::fs::write(&path, b"shared bytes").unwrap();
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let rec = std::sync::Arc::new(Recorder::default());
        let pt = Passthrough::new(Box::new(rec.clone()), 3);
        let va = 0x5000_0000u64;
        let fd = std::os::fd::AsRawFd::as_raw_fd(&f) as u64;
        let rw = (libc::PROT_READ | libc::PROT_WRITE) as u64;
        let gpa = pt.map(va, PAGE_SIZE, rw, libc::MAP_SHARED as u64, fd, 0);
        assert_eq!(gpa as u64, PASSTHROUGH_GPA);
        assert_eq!(
            rec.0.lock().unwrap()[0],
            (FIRST_SLOT, PASSTHROUGH_GPA, PAGE_SIZE, va, false)
        );
        assert!(pt.covers(va, PASSTHROUGH_GPA, PAGE_SIZE));
        assert_eq!(pt.valid_len(gpa as u64), PAGE_SIZE as i64);
        assert_eq!(
            valid_len(fd as i32, 4 * PAGE_SIZE, 0),
            PAGE_SIZE,
            "12 bytes: one page"
        );
        assert_eq!(
            valid_len(fd as i32, 4 * PAGE_SIZE, PAGE_SIZE),
            0,
            "all beyond EOF"
        );
        assert!(!pt.covers(va + PAGE_SIZE, PASSTHROUGH_GPA, PAGE_SIZE));
        // The proxy's view at the application's address is the file.
        let mut b = [0u8; 12];
        crate::mirror::read_user(va, &mut b).unwrap();
        assert_eq!(&b, b"shared bytes");
        // SAFETY: va is the shared file mapping made just above, one page, writable.
        unsafe { std::ptr::write_volatile(va as *mut u8, b'S') };
        // SAFETY: msync of that mapping.
        assert_eq!(unsafe { libc::msync(va as *mut _, 4096, libc::MS_SYNC) }, 0);
        assert_eq!(std::fs::read(&path).unwrap(), b"Shared bytes");

        // The file grows: the object's valid part follows it.
        let g3 = pt.map(va + 0x40_0000, 3 * PAGE_SIZE, rw, 0, fd, 0);
        assert_eq!(pt.valid_len(g3 as u64), PAGE_SIZE as i64);
        f.set_len(2 * PAGE_SIZE + 1).unwrap();
        assert_eq!(pt.valid_len(g3 as u64), 3 * PAGE_SIZE as i64);
        f.set_len(12).unwrap();
        assert_eq!(pt.unshare(g3 as u64), 0);
        restore_reservation(va + 0x40_0000, 3 * PAGE_SIZE);

        // A second object takes the next slot; one more finds none.
        let g2 = pt.map(va + 0x10_0000, PAGE_SIZE, rw, 0, fd, 0);
        assert!(g2 > 0);
        assert_eq!(
            pt.map(va + 0x20_0000, PAGE_SIZE, rw, 0, fd, 0),
            -i64::from(libc::ENOMEM)
        );
        assert!(
            crate::mirror::read_user(va + 0x20_0000, &mut b).is_err(),
            "a refused mapping leaves the reservation"
        );
        assert_eq!(pt.unshare(gpa as u64), 0);
        assert_eq!(pt.unshare(gpa as u64), -i64::from(libc::EINVAL));
        assert_eq!(rec.0.lock().unwrap().last().unwrap().2, 0, "slot deleted");
        assert_eq!(pt.live(), 1);

        // Read-only fd: mapped read-only, and refused for writing as Linux does.
        let ro = std::fs::File::open(&path).unwrap();
        let rfd = std::os::fd::AsRawFd::as_raw_fd(&ro) as u64;
        assert_eq!(
            pt.map(va, PAGE_SIZE, rw, 0, rfd, 0),
            -i64::from(libc::EACCES)
        );
        let r = pt.map(va, PAGE_SIZE, libc::PROT_READ as u64, 0, rfd, 0) as u64;
        assert_eq!(r & SHARED_READONLY, SHARED_READONLY);
        assert!(rec.0.lock().unwrap().last().unwrap().4, "read-only slot");
        // Not mappable: a pipe.
        let (pr, _pw) = std::io::pipe().unwrap();
        let pfd = std::os::fd::AsRawFd::as_raw_fd(&pr) as u64;
        assert_eq!(
            pt.map(va + 0x30_0000, PAGE_SIZE, libc::PROT_READ as u64, 0, pfd, 0),
            -i64::from(libc::ENODEV)
        );
        let _ = std::fs::remove_file(&path);
    }
}
