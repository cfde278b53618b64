//! Shared file and device mappings passed through from Linux (`mmap` with
//! `MAP_SHARED` and an fd: regular files, `/dev/shm` objects, `/dev/zero`, device
//! files).
//!
//! # Design
//!
//! Linux owns the pages; nothing is copied. For `ikc::Op::MapShared` the proxy
//!
//! 1. `mmap`s the application's fd with `MAP_SHARED | MAP_FIXED` **at the
//!    application's own virtual address**, inside the mirror reservation: that is
//!    the mirror (forwarded calls, `msync` included, see the file at the
//!    application's pointers);
//! 2. finds the memory behind the partition's view: for a regular file (`/dev/shm`
//!    objects are regular files on tmpfs) a live object of the same inode whose
//!    range covers the new one is reused (same slot, the start moved by the offset
//!    difference); otherwise the proxy maps the range once more for itself (outside
//!    the reservation, so the slot outlives any one application mapping of it),
//!    allocates a guest-physical range in the pass-through window
//!    (`layout::PASSTHROUGH_GPA`) and a KVM memory slot number
//!    ([`SlotAllocator`]), and registers the slot. A device or `/dev/zero` is never
//!    shared that way (a second `mmap` of it can be other memory, and some devices
//!    refuse one): its slot is backed by the application-address mapping itself;
//! 3. answers the start; libos maps it into the application like RAM (pages up to
//!    end-of-file only, so an access beyond it faults in the partition and libos
//!    reports `SIGBUS`, as Linux does). The proxy keeps its own descriptor of a
//!    regular file: when the file has grown since (another process extended it),
//!    libos's fault handler asks again (`Op::SharedLen`) and maps the new pages.
//!    A file that shrinks under the mapping makes the host page vanish; KVM_RUN
//!    then fails with `EFAULT` and the run ends with `SIGBUS` (`vmm`).
//!
//! Every mapping of a file reaches the same page-cache pages, so stores by the
//! application are seen by native processes mapping the same file and the other
//! way round. `munmap` is libos's: it unmaps the partition's view and publishes
//! `KIND_UNMAP` for the whole range, which puts the mirror's inaccessible
//! reservation back over the Linux mapping; when no page mapped from a start is
//! left, libos sends `ikc::Op::Unshare` for it, and when an object has no start in
//! use, its slot, range, private mapping and descriptor go.
//!
//! System V shared memory attachments (`ikc::Op::ShmAttach`) take the same path:
//! the proxy attaches the segment with Linux's `shmat(id, va)` at the
//! application's address, in a hole it makes in the reservation (its mirror; a
//! segment that maps larger than libos asked does not fit), and backs a slot with
//! that attachment itself, as for a device, so Linux counts one attachment per
//! application attachment; `KIND_UNMAP` over it (libos unmapped it: `shmdt`,
//! `munmap`) detaches it in Linux, and the proxy's exit detaches the rest.
//!
//! The same path carries MPI intra-node shared memory (`/dev/shm` segments mapped by
//! every rank, native or mote; one slot per segment however often it is mapped) and
//! RDMA device mappings (doorbells and queues of `/dev/infiniband/uverbs*`:
//! `VM_IO | VM_PFNMAP` memory, which KVM slots accept as they do page-cache memory,
//! mapped once, by the application-address mapping).
//!
//! Limits: KVM offers a bounded number of memory slots (`KVM_CAP_NR_MEMSLOTS`: 509
//! on older hosts, 32764 here); slot numbers and window ranges are recycled as soon
//! as an object is released, and a mapping that finds none free fails with
//! `ENOMEM`. Adjacent mappings are not merged into one slot (KVM cannot grow a
//! slot in place). `mremap` growing or moving a pass-through mapping is refused by
//! libos.
//!
//! Allows `unsafe`: it maps files and System V segments into the application's
//! reserved range (`mmap`, `shmat`, `munmap`) and registers KVM memory slots.
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

/// One live pass-through object: a KVM slot over `len` bytes of a file from `off`.
#[derive(Debug)]
struct Object {
    slot: u32,
    len: u64,
    /// Offset of the slot's memory in the file.
    off: u64,
    /// The slot is read-only (the first mapping's fd was).
    readonly: bool,
    /// The host memory behind the slot.
    hva: u64,
    /// A regular file: its device and inode (other mappings of the same range
    /// share the slot), the proxy's own descriptor (for its current size: the file
    /// may grow after it was mapped) and the proxy's private mapping behind the
    /// slot. `None` for devices and `/dev/zero`, whose slot memory is the one
    /// application mapping itself (a second `mmap` of those is other memory).
    file: Option<FileBacking>,
    /// Application mappings using the slot: guest-physical start given to libos →
    /// (virtual address, length) of each.
    attached: BTreeMap<u64, Vec<(u64, u64)>>,
}

#[derive(Debug)]
struct FileBacking {
    inode: (u64, u64),
    fd: OwnedFd,
    /// The proxy's own mapping of the slot's range (outside the mirror).
    hva: u64,
    len: u64,
}

impl Object {
    /// Bytes of a mapping attached at `gpa` (from object start `base`) with `len`
    /// bytes that lie before the file's end now.
    fn valid(&self, base: u64, gpa: u64, len: u64) -> u64 {
        self.file.as_ref().map_or(len, |f| {
            valid_len(f.fd.as_raw_fd(), len, self.off + (gpa - base))
        })
    }
}

struct State {
    alloc: SlotAllocator,
    /// By guest-physical start.
    objects: BTreeMap<u64, Object>,
}

/// The partition's pass-through objects.
pub struct Passthrough {
    /// Replaced once, in a fork's child (`rebind`), with its new VM's slots.
    slots: std::sync::RwLock<Box<dyn MemSlots>>,
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
            slots: std::sync::RwLock::new(slots),
            st: Mutex::new(State {
                alloc: SlotAllocator::new(FIRST_SLOT, nr_slots, PASSTHROUGH_GPA, PASSTHROUGH_SIZE),
                objects: BTreeMap::new(),
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.st.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn slots(&self) -> std::sync::RwLockReadGuard<'_, Box<dyn MemSlots>> {
        self.slots.read().unwrap_or_else(|p| p.into_inner())
    }

    /// A fork's child (`offload::fork`): register every live object's slot
    /// with `slots` (the child's new VM) and use it from now on. The memory
    /// behind the slots is the parent's (shared mappings, shared file pages and
    /// System V attachments are inherited by Linux's `fork` as shared), so
    /// both processes see the same pages, as natively.
    pub fn rebind(&self, slots: Box<dyn MemSlots>) -> io::Result<()> {
        let st = self.state();
        for (&gpa, o) in &st.objects {
            slots.set(o.slot, gpa, o.len, o.hva, o.readonly)?;
        }
        *self.slots.write().unwrap_or_else(|p| p.into_inner()) = slots;
        Ok(())
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
        let mut st = self.state();
        let inode = file_inode(fd);
        // Another mapping of the same file range: share its slot.
        if let Some(inode) = inode {
            let found = st.objects.iter_mut().find(|(_, o)| {
                o.file.as_ref().is_some_and(|f| f.inode == inode)
                    && (readonly || !o.readonly)
                    && o.off <= off
                    && off + len <= o.off + o.len
            });
            if let Some((&base, o)) = found {
                let gpa = base + (off - o.off);
                o.attached.entry(gpa).or_default().push((va, len));
                return (gpa | if readonly { SHARED_READONLY } else { 0 }) as i64;
            }
        }
        // A new slot. For a regular file its memory is a mapping of the proxy's own
        // (the application's may go while others still use the slot).
        let file = match inode {
            Some(inode) => match FileBacking::new(inode, fd, len, off, readonly) {
                Ok(f) => Some(f),
                Err(errno) => {
                    drop(st);
                    restore_reservation(va, len);
                    return neg(errno);
                }
            },
            None => None,
        };
        match self.install(&mut st, va, len, off, readonly, file) {
            Ok(r) => r,
            Err(errno) => {
                drop(st);
                restore_reservation(va, len);
                neg(errno)
            }
        }
    }

    /// A slot for the object just mapped at `[va, va+len)` (its file's own
    /// mapping at `file.hva` when it has one), recorded as attached at `va`:
    /// the op's result (`gpa`, `| SHARED_READONLY`), or the errno (no slot
    /// taken; a file mapping is dropped).
    fn install(
        &self,
        st: &mut State,
        va: u64,
        len: u64,
        off: u64,
        readonly: bool,
        file: Option<FileBacking>,
    ) -> Result<i64, i32> {
        let hva = file.as_ref().map_or(va, |f| f.hva);
        let (slot, gpa) = st.alloc.alloc(len).map_err(|_| libc::ENOMEM)?;
        if let Err(e) = self.slots().set(slot, gpa, len, hva, readonly) {
            st.alloc.free(slot, gpa, len);
            return Err(e.raw_os_error().unwrap_or(libc::ENOMEM));
        }
        st.objects.insert(
            gpa,
            Object {
                slot,
                len,
                off,
                readonly,
                hva,
                file,
                attached: BTreeMap::from([(gpa, vec![(va, len)])]),
            },
        );
        Ok((gpa | if readonly { SHARED_READONLY } else { 0 }) as i64)
    }

    /// `Op::ShmAttach`: attach System V segment `shmid` at the application's `va`
    /// (`len` bytes: the whole segment, page-rounded; `EINVAL` if Linux maps it
    /// larger, as a `SHM_HUGETLB` segment of a size that is not a multiple of the
    /// huge page size) and give it a slot backed by
    /// that very attachment, as a device's slot is by its mapping: another attach
    /// for the slot would count in the segment's `shm_nattch`. Linux's `shmat`
    /// judges the id and the permissions. The caller holds the mirror's lock.
    pub fn attach_shm(&self, va: u64, len: u64, shmid: u64, shmflg: u64) -> i64 {
        let aligned = |x: u64| x.is_multiple_of(PAGE_SIZE);
        if len == 0
            || !aligned(va)
            || !aligned(len)
            || va < USER_START
            || va.checked_add(len).is_none_or(|e| e > USER_END)
        {
            return neg(libc::EINVAL);
        }
        let Ok(id) = i32::try_from(shmid) else {
            return neg(libc::EINVAL);
        };
        // The segment is as long as libos found it (an id names one segment for
        // its life), checked before attaching: SHM_REMAP of a longer one would
        // replace mirror mappings beyond the range. IPC_STAT fails as shmat
        // would (a bad or removed id, no read permission).
        match segment_len(id) {
            Ok(l) if l == len => {}
            Ok(_) => return neg(libc::EINVAL),
            Err(errno) => return neg(errno),
        }
        let readonly = shmflg & libc::SHM_RDONLY as u64 != 0;
        let flags = shmflg as i32 & (libc::SHM_RDONLY | libc::SHM_EXEC);
        // Not SHM_REMAP over the reservation: a hole is made for the segment
        // and Linux attaches it only if it fits. A segment can map larger than
        // its size says (SHM_HUGETLB: rounded up to the huge page size), and with
        // SHM_REMAP would replace the mirror's mappings beyond the range.
        // SAFETY: as for `map`'s mmap: 1. [va, va+len) lies in the application's
        // range, which the mirror reserved and libos freed (the map log putting
        // the reservation back was applied before this request), so the munmap
        // and the attach touch only the reservation; the hole lasts until the
        // attach or `restore_reservation`, and the kernel places nothing of the
        // proxy's own that low meanwhile (it searches down from the mmap base,
        // far above); 2. the caller holds the mirror lock; 3. nothing in the proxy
        // holds references into it.
        let p = unsafe {
            libc::munmap(va as *mut libc::c_void, len as usize);
            libc::shmat(id, va as *const libc::c_void, flags)
        };
        if p as isize == -1 {
            let err = io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EINVAL);
            restore_reservation(va, len);
            return neg(err);
        }
        if p as u64 != va {
            restore_reservation(va, len);
            return neg(libc::EINVAL);
        }
        let mut st = self.state();
        match self.install(&mut st, va, len, 0, readonly, None) {
            Ok(r) => r,
            Err(errno) => {
                drop(st);
                // Putting the reservation back detaches the segment.
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
        let Some((base, o)) = object_at(&mut st.objects, gpa) else {
            return neg(libc::EINVAL);
        };
        if o.attached.remove(&gpa).is_none() {
            return neg(libc::EINVAL);
        }
        if !o.attached.is_empty() {
            return 0;
        }
        let o = st.objects.remove(&base).expect("object just found");
        if let Err(e) = self.slots().set(o.slot, base, 0, 0, false) {
            crate::say!("mote: pass-through: cannot delete KVM slot {}: {e}", o.slot);
        }
        st.alloc.free(o.slot, base, o.len);
        // The slot is gone: its private mapping and descriptor may go too (drop).
        0
    }

    /// `Op::SharedLen`: bytes of the object at `gpa` before the file's end, now.
    pub fn valid_len(&self, gpa: u64) -> i64 {
        let mut st = self.state();
        let Some((base, o)) = object_at(&mut st.objects, gpa) else {
            return neg(libc::EINVAL);
        };
        let len = o
            .attached
            .get(&gpa)
            .map_or(0, |a| a.iter().map(|x| x.1).max().unwrap_or(0));
        o.valid(base, gpa, len) as i64
    }

    /// A map-log entry mapping `[va, va+len)` to pass-through `gpa` is consistent with
    /// the object there (it is already in place: the object's mapping is the mirror).
    pub fn covers(&self, va: u64, gpa: u64, len: u64) -> bool {
        if !is_passthrough(gpa, len) {
            return false;
        }
        let mut st = self.state();
        let Some((_, o)) = object_at(&mut st.objects, gpa) else {
            return false;
        };
        o.attached.iter().any(|(&g, maps)| {
            maps.iter()
                .any(|&(ava, alen)| gpa >= g && gpa + len <= g + alen && va == ava + (gpa - g))
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

/// The object holding `gpa`, with its start.
fn object_at(objects: &mut BTreeMap<u64, Object>, gpa: u64) -> Option<(u64, &mut Object)> {
    objects
        .range_mut(..=gpa)
        .next_back()
        .filter(|(&b, o)| gpa < b + o.len)
        .map(|(&b, o)| (b, o))
}

/// Size of System V segment `id`, page-rounded (`IPC_STAT`).
fn segment_len(id: i32) -> Result<u64, i32> {
    // SAFETY: shmid_ds is plain data (all-zero is valid); IPC_STAT writes only
    // into it.
    let mut ds: libc::shmid_ds = unsafe { std::mem::zeroed() };
    // SAFETY: as above; IPC_STAT only reads the segment's state.
    if unsafe { libc::shmctl(id, libc::IPC_STAT, &mut ds) } != 0 {
        return Err(io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EINVAL));
    }
    Ok((ds.shm_segsz as u64).next_multiple_of(PAGE_SIZE))
}

/// Device and inode of `fd` when it is a regular file.
fn file_inode(fd: i32) -> Option<(u64, u64)> {
    // SAFETY: `stat` is plain data (all-zero is valid); fstat writes only into it.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above; `fd` is the application's descriptor, only queried.
    if unsafe { libc::fstat(fd, &mut st) } != 0 || st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return None;
    }
    Some((st.st_dev, st.st_ino))
}

impl FileBacking {
    /// The proxy's own descriptor of `fd` (protected from the application's
    /// `close`/`dup2`) and its own shared mapping of `[off, off+len)`.
    fn new(inode: (u64, u64), fd: i32, len: u64, off: u64, readonly: bool) -> Result<Self, i32> {
        let errno = || {
            io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO)
        };
        // SAFETY: F_DUPFD_CLOEXEC makes a new descriptor, which we own on success.
        let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, SIZE_FD_MIN) };
        // SAFETY: (when dup >= 0) a fresh descriptor nobody else owns.
        let dup = (dup >= 0)
            .then(|| unsafe { OwnedFd::from_raw_fd(dup) })
            .ok_or_else(errno)?;
        let prot = if readonly {
            libc::PROT_READ
        } else {
            libc::PROT_READ | libc::PROT_WRITE
        };
        // SAFETY: a new mapping at an address the kernel chooses: it replaces
        // nothing, and the kernel never places it in the mirror's reservation.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len as usize,
                prot,
                libc::MAP_SHARED,
                dup.as_raw_fd(),
                off as libc::off_t,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(errno());
        }
        crate::fds::protect_fds([dup.as_raw_fd()]);
        Ok(FileBacking {
            inode,
            fd: dup,
            hva: p as u64,
            len,
        })
    }
}

impl Drop for FileBacking {
    fn drop(&mut self) {
        // SAFETY: the proxy's own mapping made in `new`; the slot over it was
        // deleted first (`Passthrough::unshare`) or never made, and nothing else
        // refers to it.
        unsafe { libc::munmap(self.hva as *mut libc::c_void, self.len as usize) };
        crate::fds::unprotect_fd(self.fd.as_raw_fd());
    }
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

    /// `shm_nattch` of segment `id`.
    fn nattch(id: i32) -> u64 {
        // SAFETY: plain data, filled by IPC_STAT.
        let mut ds: libc::shmid_ds = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        assert_eq!(unsafe { libc::shmctl(id, libc::IPC_STAT, &mut ds) }, 0);
        ds.shm_nattch
    }

    #[test]
    fn a_sysv_segment_is_attached_at_the_applications_address_and_backs_its_slot() {
        let _g = crate::mirror::TEST_RESERVATION
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let guest = crate::guest::GuestMem::new(2 << 20).unwrap();
        let _m = crate::mirror::Mirror::reserve(&guest).unwrap();
        let rec = std::sync::Arc::new(Recorder::default());
        let calls = || rec.0.lock().unwrap().clone();
        let pt = Passthrough::new(Box::new(rec.clone()), 8);
        // SAFETY: shmget creates a private segment; removed by the guard.
        let id = unsafe { libc::shmget(libc::IPC_PRIVATE, 3 * 4096 + 100, 0o600) };
        assert!(id >= 0);
        /// Removes the segment however the test ends (it goes with its last
        /// attachment, at the latest when the test process exits).
        struct Remove(i32);
        impl Drop for Remove {
            fn drop(&mut self) {
                // SAFETY: IPC_RMID of the test's own segment.
                unsafe { libc::shmctl(self.0, libc::IPC_RMID, std::ptr::null_mut()) };
            }
        }
        let _remove = Remove(id);
        let (va, len) = (0x5000_0000u64, 4 * PAGE_SIZE);
        let gpa = pt.attach_shm(va, len, id as u64, 0) as u64;
        assert_eq!(gpa & (PAGE_SIZE - 1), 0, "{gpa:#x}");
        assert_eq!(
            calls()[0],
            (FIRST_SLOT, gpa, len, va, false),
            "the attachment backs the slot"
        );
        assert_eq!(nattch(id), 1, "one Linux attachment");
        assert!(pt.covers(va, gpa, len));
        assert_eq!(pt.valid_len(gpa), len as i64, "the whole segment");
        crate::mirror::write_user(va + len - 1, b"z").unwrap();
        // SAFETY: a second attachment (anywhere) to look at the segment's pages.
        let look = unsafe { libc::shmat(id, std::ptr::null(), libc::SHM_RDONLY) };
        // SAFETY: the last byte of the page-rounded segment, attached above.
        assert_eq!(unsafe { *(look as *const u8).add(len as usize - 1) }, b'z');

        // A read-only attachment: read-only slot, and said so.
        let va2 = va + 0x10_0000;
        let r = pt.attach_shm(va2, len, id as u64, libc::SHM_RDONLY as u64) as u64;
        assert_eq!(r & SHARED_READONLY, SHARED_READONLY);
        assert!(calls().last().unwrap().4);
        // Not the segment's size, or no such segment: refused, reservation back.
        let va3 = va + 0x20_0000;
        assert_eq!(
            pt.attach_shm(va3, 2 * PAGE_SIZE, id as u64, 0),
            -i64::from(libc::EINVAL)
        );
        assert_eq!(
            pt.attach_shm(va3, len, u64::from(u32::MAX), 0),
            -i64::from(libc::EINVAL)
        );
        let mut b = [0u8; 1];
        assert!(crate::mirror::read_user(va3, &mut b).is_err());
        assert_eq!(nattch(id), 3, "refusals leave no attachment");

        // libos unmaps (the map log puts the reservation back), then unshares.
        restore_reservation(va, len);
        restore_reservation(va2, len);
        assert_eq!(nattch(id), 1, "only the look is left");
        assert_eq!(pt.unshare(gpa), 0);
        assert_eq!(pt.unshare(r & !SHARED_READONLY), 0);
        assert_eq!(pt.live(), 0);
        assert_eq!(calls().last().unwrap().2, 0, "slot deleted");
        // SAFETY: our own attachment.
        unsafe { libc::shmdt(look) };
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
        let calls = || rec.0.lock().unwrap().clone();
        let pt = Passthrough::new(Box::new(rec.clone()), 3);
        let va = 0x5000_0000u64;
        let fd = std::os::fd::AsRawFd::as_raw_fd(&f) as u64;
        let rw = (libc::PROT_READ | libc::PROT_WRITE) as u64;
        let gpa = pt.map(va, PAGE_SIZE, rw, libc::MAP_SHARED as u64, fd, 0) as u64;
        assert_eq!(gpa, PASSTHROUGH_GPA);
        let (slot, sgpa, slen, hva, ro) = calls()[0];
        assert_eq!((slot, sgpa, slen, ro), (FIRST_SLOT, gpa, PAGE_SIZE, false));
        assert_ne!(
            hva, va,
            "a file's slot is backed by the proxy's own mapping"
        );
        assert!(pt.covers(va, gpa, PAGE_SIZE));
        assert!(!pt.covers(va + PAGE_SIZE, gpa, PAGE_SIZE));
        assert_eq!(pt.valid_len(gpa), PAGE_SIZE as i64);
        assert_eq!(
            valid_len(fd as i32, 4 * PAGE_SIZE, 0),
            PAGE_SIZE,
            "12 bytes"
        );
        assert_eq!(
            valid_len(fd as i32, 4 * PAGE_SIZE, PAGE_SIZE),
            0,
            "beyond EOF"
        );
        // The proxy's view at the application's address is the file, and so is the
        // slot's memory (the partition's view).
        let mut b = [0u8; 12];
        crate::mirror::read_user(va, &mut b).unwrap();
        assert_eq!(&b, b"shared bytes");
        // SAFETY: hva is the proxy's shared mapping of the file, one page, writable.
        unsafe { std::ptr::write_volatile(hva as *mut u8, b'S') };
        crate::mirror::read_user(va, &mut b).unwrap();
        assert_eq!(&b, b"Shared bytes", "one file behind both");
        // SAFETY: msync of the application-address mapping made above.
        assert_eq!(unsafe { libc::msync(va as *mut _, 4096, libc::MS_SYNC) }, 0);
        assert_eq!(std::fs::read(&path).unwrap(), b"Shared bytes");

        // The same range mapped again elsewhere shares the slot.
        let va2 = va + 0x10_0000;
        assert_eq!(pt.map(va2, PAGE_SIZE, rw, 0, fd, 0) as u64, gpa);
        assert_eq!(calls().len(), 1, "no new slot");
        assert!(pt.covers(va2, gpa, PAGE_SIZE) && pt.covers(va, gpa, PAGE_SIZE));
        assert_eq!(pt.unshare(gpa), 0, "libos releases a start once");
        assert_eq!(calls().last().unwrap().2, 0, "slot deleted");
        assert_eq!(pt.unshare(gpa), -i64::from(libc::EINVAL));
        restore_reservation(va, PAGE_SIZE);
        restore_reservation(va2, PAGE_SIZE);

        // A file that grows: the valid part follows it; a mapping of part of the
        // range shares the slot and keeps it after the first one goes.
        let va3 = va + 0x40_0000;
        let g3 = pt.map(va3, 3 * PAGE_SIZE, rw, 0, fd, 0) as u64;
        assert_eq!(pt.valid_len(g3), PAGE_SIZE as i64);
        f.set_len(2 * PAGE_SIZE + 1).unwrap();
        assert_eq!(pt.valid_len(g3), 3 * PAGE_SIZE as i64);
        let g4 = pt.map(va3 + 0x10_0000, PAGE_SIZE, rw, 0, fd, PAGE_SIZE) as u64;
        assert_eq!(g4, g3 + PAGE_SIZE);
        assert_eq!(pt.valid_len(g4), PAGE_SIZE as i64);
        assert!(pt.covers(va3 + 0x10_0000, g4, PAGE_SIZE));
        assert_eq!(pt.unshare(g3), 0);
        assert_eq!(pt.live(), 1, "still used at {g4:#x}");
        assert_eq!(pt.unshare(g4), 0);
        assert_eq!(pt.live(), 0);
        restore_reservation(va3, 0x20_0000);

        // /dev/zero: every mmap is new memory, so no sharing; two slots are all
        // this VM has, the next mapping is ENOMEM and leaves the reservation.
        let zero = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/zero")
            .unwrap();
        let zfd = std::os::fd::AsRawFd::as_raw_fd(&zero) as u64;
        let z1 = pt.map(va, PAGE_SIZE, rw, 0, zfd, 0) as u64;
        assert_eq!(
            calls().last().unwrap().3,
            va,
            "device memory: the app mapping"
        );
        let z2 = pt.map(va2, PAGE_SIZE, rw, 0, zfd, 0) as u64;
        assert_ne!(z1, z2);
        assert_eq!(
            pt.map(va3, PAGE_SIZE, rw, 0, fd, 0),
            -i64::from(libc::ENOMEM)
        );
        assert!(
            crate::mirror::read_user(va3, &mut b).is_err(),
            "a refused mapping leaves the reservation"
        );
        assert_eq!(pt.unshare(z1), 0);
        assert_eq!(pt.unshare(z2), 0);

        // Read-only fd: mapped read-only, and refused for writing as Linux does.
        let ro = std::fs::File::open(&path).unwrap();
        let rfd = std::os::fd::AsRawFd::as_raw_fd(&ro) as u64;
        assert_eq!(
            pt.map(va, PAGE_SIZE, rw, 0, rfd, 0),
            -i64::from(libc::EACCES)
        );
        let r = pt.map(va, PAGE_SIZE, libc::PROT_READ as u64, 0, rfd, 0) as u64;
        assert_eq!(r & SHARED_READONLY, SHARED_READONLY);
        assert!(calls().last().unwrap().4, "read-only slot");
        // A writable mapping of the same range cannot share a read-only slot.
        let w = pt.map(va2, PAGE_SIZE, rw, 0, fd, 0) as u64;
        assert_eq!(w & SHARED_READONLY, 0);
        assert_ne!(w, r & !SHARED_READONLY);
        assert_eq!(pt.live(), 2);
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
