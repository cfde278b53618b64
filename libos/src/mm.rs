//! The application's address space: its VMAs, the frames behind them, brk, and the
//! Linux memory calls (`mmap`, `munmap`, `mprotect`, `mremap`, `madvise`, `brk`).
//!
//! Memory is never demand-paged: a mapping is backed by frames from the
//! [`FramePool`] and mapped by kernel-min when it is created, so the application never
//! takes a page fault in it. Regions of 2 MiB or more are placed 2 MiB aligned and
//! backed by 2 MiB chunks, which kernel-min maps with large pages. The page size is
//! a policy (`mote run --page-size`, [`AddressSpace::set_page_size`]): with 4 KiB
//! kernel-min is told to map small pages only (`kcall::MAP_PAGES_4K`); with 1 GiB,
//! regions of 1 GiB or more are placed 1 GiB aligned and their aligned gigabytes
//! backed by 1 GiB chunks when the pool has them (`kcall::MAP_PAGES_1G`), 2 MiB
//! chunks otherwise. The exceptions are `PROT_NONE` anonymous memory, which is only a
//! reservation (allocators reserve large ranges that way) and gets frames when
//! `mprotect` makes it accessible, and the growth of a `MAP_GROWSDOWN` mapping,
//! which happens, as on Linux, on a fault just below it.
//!
//! Two maps describe the space: `vmas` (what the application asked for: range,
//! protection, kind) and `backing` (which physically contiguous frames are mapped
//! where). Every change of `backing` goes to kernel-min (`Platform::map/unmap`) and
//! to the proxy (`Platform::publish`, one entry per contiguous run), so the proxy keeps
//! the same memory at the same addresses.
//!
//! Shared file and device mappings (`MAP_SHARED` with an fd) are not backed by the
//! pool: the proxy maps the file with Linux and makes it a pass-through object (a KVM
//! memory slot in `layout::PASSTHROUGH_GPA`'s window, see the proxy's `passthrough`);
//! libos maps the object's pages before end-of-file like RAM, keeps the rest
//! unbacked so an access there is reported as `SIGBUS` ([`AddressSpace::fault_signal`]),
//! counts the bytes of each object still mapped and releases it (`Platform::unshare`)
//! when none are. `msync` needs nothing here: forwarded, Linux runs it on the proxy's
//! mapping, which is the same file at the same address.
//!
//! System V shared memory attachments (`shmat`) are pass-through objects too: the
//! proxy attaches the segment at the application's address in its mirror (Linux's
//! own `shmat` judges the id and the permissions) and hands its pages to the
//! partition; libos maps the whole page-rounded segment, names it
//! `/SYSV<key> (deleted)` as Linux does, and remembers where each attachment began
//! for `shmdt`, which removes every piece of it that `munmap` left
//! ([`AddressSpace::shmat`], [`AddressSpace::shmdt`]). `munmap`, `mprotect` and
//! `mremap` treat an attachment as a shared file mapping.
//!
//! The brk heap is over-extended, as McKernel does: when the break grows past what
//! is backed, the heap is backed up to the next 2 MiB boundary beyond the new break
//! (a whole 2 MiB-aligned chunk where alignment allows, so kernel-min maps it with a
//! large page and the proxy populates it at once), and the part above the break is
//! kept as a [`VmaKind::HeapReserve`] VMA. Growing the break over it costs no kernel
//! call and no first-touch fault. Shrinking the break keeps the backing (up to one
//! 2 MiB chunk beyond the boundary above the new break) and remembers that it is
//! dirty; growing over it again zeroes it (`Platform::zero`), so new heap memory
//! reads zero as on Linux. Unlike Linux, the reserve stays mapped: a program that
//! touches memory beyond its break (past the break's page) does not fault there.
//! For every call of the application the reserve is unmapped memory (`mprotect`,
//! `madvise`, `mremap` and pointer checks see a hole), except that mmap never
//! places a mapping there; `MAP_FIXED` (or `MAP_FIXED_NOREPLACE`) into it replaces
//! it as Linux would map into free space, and the reserve ends where that mapping
//! starts.
//!
//! Invariant: every page of a VMA whose protection is not `PROT_NONE` is backed,
//! except the pages of a pass-through mapping beyond its file's end. The heap
//! reserve, if any, is one read-write VMA starting at the break's page end.

use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;

use mote_abi::errno::Errno;
use mote_abi::kcall::{MAP_PAGES_1G, MAP_PAGES_4K};
use mote_abi::layout::{
    align_down, align_up, is_passthrough, HUGE_PAGE_SIZE, LARGE_PAGE_SIZE, PAGE_SIZE, USER_END,
    USER_MMAP_TOP, USER_START,
};
use mote_abi::maplog::{Change, KIND_MAP, KIND_UNMAP};

use crate::frames::{FramePool, FrameSize, Run};
use crate::platform::{Platform, SharedMapping};
use crate::uapi::mman::*;
use crate::uapi::shm::{SHM_EXEC, SHM_RDONLY};

/// Page-table frames handed to kernel-min at start-up and whenever it runs out.
pub const TABLE_GRANT: u64 = LARGE_PAGE_SIZE;
/// Bound on give-tables-and-retry rounds for one mapping.
const MAX_TABLE_ROUNDS: usize = 16;
/// Gap a `MAP_GROWSDOWN` mapping keeps from the mapping below it when it grows
/// (Linux's default `stack_guard_gap`, 256 pages).
const STACK_GUARD_GAP: u64 = 256 * PAGE_SIZE;
/// Page-fault error code bits (Intel SDM vol. 3, 4.7): a write; a reserved bit
/// set in a paging entry; an instruction fetch; a protection-key violation.
pub const PF_WRITE: u64 = 1 << 1;
pub const PF_RSVD: u64 = 1 << 3;
pub const PF_FETCH: u64 = 1 << 4;
pub const PF_PK: u64 = 1 << 5;

/// How many lately split whole-only chunks `page_fault` remembers (their faults
/// are retried): more than the cores that can fault on one at once.
const SPLIT_LATELY: usize = 64;

/// Bytes copied at a time when a whole-only 2 MiB page is split.
const COPY_BUF: usize = 64 << 10;

/// Largest size a `MAP_GROWSDOWN` mapping grows to (Linux's default `RLIMIT_STACK`).
const STACK_LIMIT: u64 = 8 << 20;
/// `MAP_32BIT` window (as Linux's x86_64 `find_start_end`).
const MAP_32BIT_LO: u64 = 0x4000_0000;
const MAP_32BIT_HI: u64 = 0x8000_0000;

/// What a VMA holds (for policy and, later, `/proc/self/maps`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmaKind {
    /// Anonymous memory from `mmap`.
    Anon,
    /// A private copy of a file range (`mmap` with an fd).
    File,
    /// A segment of the loaded program.
    Image,
    /// The brk heap.
    Heap,
    /// The main thread's stack.
    Stack,
    /// A shared file or device mapping passed through from Linux: pages of the
    /// pass-through object starting at guest-physical `gpa`, which the proxy mapped
    /// at application address `va` (so page `x` is at `gpa + (x - va)`). Only pages
    /// before the file's end are backed; an access to the others is `SIGBUS`.
    Passthrough { gpa: u64, va: u64, may_write: bool },
    /// Stubs of patched system-call sites (`patch`).
    Stubs,
    /// The brk heap's over-extension: backed read-write memory from the page end of
    /// the break up, which the break can grow over without a kernel call. Not a
    /// mapping for the application ([`AddressSpace::vma_at`] does not show it).
    HeapReserve,
}

/// What to do about a page fault of the application ([`AddressSpace::page_fault`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// libos mapped the page: return to the faulting instruction.
    Retry,
    /// The access raises this signal.
    Signal(u32),
    /// Not libos's: the signal of the exception itself.
    Default,
}

/// A virtual memory area; the map key is its start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vma {
    /// End (exclusive).
    pub end: u64,
    /// `PROT_*` bits.
    pub prot: u64,
    /// What it holds.
    pub kind: VmaKind,
    /// Mapped `MAP_SHARED` (anonymous; there is no other process to share with yet,
    /// so it behaves as private memory).
    pub shared: bool,
    /// Mapped `MAP_GROWSDOWN`: an access just below it extends it downwards
    /// ([`AddressSpace::page_fault`]).
    pub growsdown: bool,
}

impl Vma {
    /// Program code loaded from a file (the image, or a library mapped by ld.so):
    /// what the system-call patcher may rewrite.
    pub fn is_code_backed(&self) -> bool {
        matches!(self.kind, VmaKind::Image | VmaKind::File)
    }
}

/// Frames mapped at a virtual range; the map key is the virtual start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Backing {
    len: u64,
    gpa: u64,
}

/// Something that covers `[key, end)` in a `BTreeMap` and can be cut in two.
trait Piece {
    fn end(&self, start: u64) -> u64;
    /// Cut at `at`: self keeps `[start, at)`, the result is `[at, end)`.
    fn cut(&mut self, start: u64, at: u64) -> Self;
}

impl Piece for Vma {
    fn end(&self, _: u64) -> u64 {
        self.end
    }
    fn cut(&mut self, _: u64, at: u64) -> Self {
        let hi = *self;
        self.end = at;
        hi
    }
}

impl Piece for Backing {
    fn end(&self, start: u64) -> u64 {
        start + self.len
    }
    fn cut(&mut self, start: u64, at: u64) -> Self {
        let hi = Backing {
            len: start + self.len - at,
            gpa: self.gpa + (at - start),
        };
        self.len = at - start;
        hi
    }
}

/// The name `/proc/self/maps` shows for `[key, end)`: the file a mapping came from.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Label {
    end: u64,
    name: Arc<[u8]>,
}

impl Piece for Label {
    fn end(&self, _: u64) -> u64 {
        self.end
    }
    fn cut(&mut self, _: u64, at: u64) -> Self {
        let hi = self.clone();
        self.end = at;
        hi
    }
}

fn split<T: Piece>(map: &mut BTreeMap<u64, T>, at: u64) {
    let Some((&s, piece)) = map.range_mut(..at).next_back() else {
        return;
    };
    if piece.end(s) > at {
        let hi = piece.cut(s, at);
        map.insert(at, hi);
    }
}

fn page_len(len: u64) -> Result<u64, Errno> {
    len.checked_add(PAGE_SIZE - 1)
        .map(|l| l & !(PAGE_SIZE - 1))
        .ok_or(Errno::ENOMEM)
}

/// A System V shared memory attachment: the pass-through object the proxy made for
/// it is the key of [`AddressSpace`]'s `sysv` map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct SysvAttach {
    shmid: u64,
    /// Where it was attached: what `shmdt` names. Its pieces lie in
    /// `[va, va+len)` (moving a pass-through mapping is refused).
    va: u64,
    len: u64,
}

/// Messages logged once per address space.
#[derive(Clone, Copy)]
#[repr(u32)]
enum Note {
    SharedFile = 1 << 0,
    DontneedFile = 1 << 1,
    DontUnmap = 1 << 2,
    GrowFile = 1 << 3,
    NoHugeFrames = 1 << 4,
    OutOfMemory = 1 << 5,
    NoHugetlbPages = 1 << 6,
    SysvRemap = 1 << 7,
    SysvHuge = 1 << 9,
    RemoveShared = 1 << 8,
}

/// The application's address space.
#[derive(Debug)]
pub struct AddressSpace {
    frames: FramePool,
    vmas: BTreeMap<u64, Vma>,
    backing: BTreeMap<u64, Backing>,
    brk_start: u64,
    brk: u64,
    /// `[align_up(brk), heap_dirty)` may hold old heap contents (the break shrank
    /// over it): zeroed when the break grows over it again.
    heap_dirty: u64,
    tables_given: u64,
    noted: u32,
    /// Pass-through objects by guest-physical start: bytes of VMAs still using them.
    shared: BTreeMap<u64, u64>,
    /// The pass-through objects that are System V attachments, by guest-physical
    /// start.
    sysv: BTreeMap<u64, SysvAttach>,
    /// Names of file mappings (`/proc/self/maps`), by start.
    labels: BTreeMap<u64, Label>,
    /// Page size for anonymous memory, heap, stacks and private file copies
    /// (`BootInfo::page_size`, `mote run --page-size`): 4 KiB, 2 MiB or 1 GiB.
    page_size: u64,
    /// Virtual starts of the whole-only chunks split last (`SPLIT_LATELY` of them,
    /// oldest first): a fault there may have met the split (see `page_fault`).
    split_lately: alloc::collections::VecDeque<u64>,
    /// Frames of split whole-only pages that forwarded calls in flight at the
    /// split may still write through the proxy's old mapping: (guest-physical
    /// start, the calls as `(slot, sequence)`). Freed once all are answered.
    quarantine: Vec<(u64, Vec<(u32, u32)>)>,
}

impl AddressSpace {
    /// An empty address space drawing frames from `frames`.
    pub fn new(frames: FramePool) -> Self {
        AddressSpace {
            frames,
            vmas: BTreeMap::new(),
            backing: BTreeMap::new(),
            brk_start: 0,
            brk: 0,
            heap_dirty: 0,
            tables_given: 0,
            noted: 0,
            shared: BTreeMap::new(),
            sysv: BTreeMap::new(),
            page_size: LARGE_PAGE_SIZE,
            split_lately: alloc::collections::VecDeque::new(),
            quarantine: Vec::new(),
            labels: BTreeMap::new(),
        }
    }

    /// Name `[start, end)` (a mapping's range) for `/proc/self/maps`: the path of
    /// the file it maps. Removed with the mapping, moved with it by `mremap`.
    pub fn label(&mut self, start: u64, end: u64, name: &[u8]) {
        self.unlabel(start, end);
        self.labels.insert(
            start,
            Label {
                end,
                name: name.into(),
            },
        );
    }

    /// The name of the mapping at `va`, if it has one.
    pub fn label_at(&self, va: u64) -> Option<&[u8]> {
        self.labels
            .range(..=va)
            .next_back()
            .filter(|(_, l)| l.end > va)
            .map(|(_, l)| &l.name[..])
    }

    fn unlabel(&mut self, start: u64, end: u64) {
        split(&mut self.labels, start);
        split(&mut self.labels, end);
        let keys: Vec<u64> = self.labels.range(start..end).map(|(&s, _)| s).collect();
        for k in keys {
            self.labels.remove(&k);
        }
    }

    /// Back memory with pages of `size` (4 KiB, 2 MiB or 1 GiB; anything else is
    /// the default, 2 MiB). With 1 GiB pages, a mapping of 1 GiB or more is placed
    /// 1 GiB aligned and its aligned gigabytes get 1 GiB frames when the pool has
    /// them (2 MiB frames otherwise, said once).
    pub fn set_page_size(&mut self, size: u64) {
        self.page_size = match size {
            PAGE_SIZE | HUGE_PAGE_SIZE => size,
            _ => LARGE_PAGE_SIZE,
        };
    }

    /// The page-size policy in bytes.
    pub fn page_size(&self) -> u64 {
        self.page_size
    }

    /// Alignment for a new mapping of `len` bytes placed by libos: large mappings
    /// start where large pages can map them.
    fn placement_align(&self, len: u64) -> u64 {
        if self.page_size == HUGE_PAGE_SIZE && len >= HUGE_PAGE_SIZE {
            HUGE_PAGE_SIZE
        } else if len >= LARGE_PAGE_SIZE {
            LARGE_PAGE_SIZE
        } else {
            PAGE_SIZE
        }
    }

    /// Bytes of `[va, va+len)` mapped by 4 KiB, 2 MiB and 1 GiB pages (asked of
    /// the page tables themselves: `/proc/self/smaps`).
    pub fn page_sizes<P: Platform>(&self, p: &P, va: u64, len: u64) -> [u64; 3] {
        p.page_sizes(va, len)
    }

    /// Start-up: give kernel-min its first page-table frames.
    pub fn init<P: Platform>(&mut self, p: &P) -> Result<(), Errno> {
        self.give_tables(p)
    }

    /// The frame pool (statistics).
    pub fn frames(&self) -> &FramePool {
        &self.frames
    }

    /// Bytes of frames handed to kernel-min for page tables.
    pub fn tables_given(&self) -> u64 {
        self.tables_given
    }

    /// The VMAs, in address order, as `(start, vma)`.
    pub fn vmas(&self) -> impl Iterator<Item = (u64, &Vma)> + '_ {
        self.vmas.iter().map(|(&s, v)| (s, v))
    }

    /// Record that the one-page VMA at `va` holds system-call stubs.
    pub fn mark_stubs(&mut self, va: u64) {
        if let Some(v) = self.vmas.get_mut(&va) {
            v.kind = VmaKind::Stubs;
        }
    }

    /// The application's VMA containing `va` (the heap reserve is not one).
    pub fn vma_at(&self, va: u64) -> Option<(u64, &Vma)> {
        self.vma_containing(va)
            .filter(|(_, v)| v.kind != VmaKind::HeapReserve)
    }

    /// Any VMA containing `va`, the heap reserve included.
    fn vma_containing(&self, va: u64) -> Option<(u64, &Vma)> {
        self.vmas
            .range(..=va)
            .next_back()
            .filter(|(_, v)| v.end > va)
            .map(|(&s, v)| (s, v))
    }

    /// Guest-physical address behind `va`, if it is backed.
    pub fn translate(&self, va: u64) -> Option<u64> {
        self.backing
            .range(..=va)
            .next_back()
            .filter(|(&s, b)| s + b.len > va)
            .map(|(&s, b)| b.gpa + (va - s))
    }

    /// Bytes of `[start, end)` backed by memory.
    pub fn backed_bytes(&self, start: u64, end: u64) -> u64 {
        self.backed_in(start, end)
            .iter()
            .map(|&(_, len, _)| len)
            .sum()
    }

    /// Check that the application may read (and, with `write`, write) `[va, va+len)`,
    /// so libos can access it on its behalf without faulting: `EFAULT` otherwise.
    pub fn check_access(&self, va: u64, len: u64, write: bool) -> Result<(), Errno> {
        if len == 0 {
            return Ok(());
        }
        let end = va.checked_add(len).ok_or(Errno::EFAULT)?;
        let mut at = va;
        while at < end {
            let (_, v) = self.vma_at(at).ok_or(Errno::EFAULT)?;
            if !allows(v.prot, write) {
                return Err(Errno::EFAULT);
            }
            at = v.end;
        }
        Ok(())
    }

    // ---------------------------------------------------------------- brk

    /// Where brk starts (page aligned): right after the program's highest segment.
    pub fn set_brk_start(&mut self, va: u64) {
        let va = align_up(va, PAGE_SIZE);
        self.brk_start = va;
        self.brk = va;
        self.heap_dirty = va;
    }

    /// Where brk started.
    pub fn brk_start(&self) -> u64 {
        self.brk_start
    }

    /// Current brk.
    pub fn current_brk(&self) -> u64 {
        self.brk
    }

    /// End of the memory backed for the heap: the end of the heap reserve, or the
    /// break's page end when there is none.
    pub fn heap_end(&self) -> u64 {
        let at = align_up(self.brk, PAGE_SIZE);
        match self.vmas.get(&at) {
            Some(v) if v.kind == VmaKind::HeapReserve => v.end,
            _ => at,
        }
    }

    /// `brk(addr)`: move the break; returns the new break, or the old one when the
    /// request is refused (as Linux does).
    pub fn brk<P: Platform>(&mut self, p: &P, addr: u64) -> u64 {
        if self.brk_start == 0 || addr < self.brk_start || addr > USER_END {
            return self.brk;
        }
        let old_end = align_up(self.brk, PAGE_SIZE);
        let new_end = align_up(addr, PAGE_SIZE);
        let heap_end = self.heap_end();
        if new_end < old_end {
            let old = self.brk;
            self.brk = addr;
            if self.shrink_heap(p, new_end, old_end, heap_end).is_err() {
                self.brk = old;
            }
        } else if new_end > old_end {
            if new_end > heap_end {
                // Back `[heap_end, new_end)` and over-extend to the next 2 MiB
                // boundary (or to the next mapping); with the bare request if
                // memory is short.
                if !self.is_free(heap_end, new_end) {
                    return self.brk;
                }
                let next = self
                    .vmas
                    .range(new_end..)
                    .next()
                    .map_or(USER_END, |(&s, _)| s);
                let target = align_up(new_end, LARGE_PAGE_SIZE).min(next).min(USER_END);
                let rw = PROT_READ | PROT_WRITE;
                let tries = if target > new_end { 2 } else { 1 };
                let backed = [target, new_end].into_iter().take(tries).any(|end| {
                    self.map_new(p, heap_end, end, rw, VmaKind::HeapReserve, false)
                        .is_ok()
                });
                if !backed {
                    return self.brk;
                }
            }
            // Memory the break shrank over earlier comes back zero.
            let dirty_end = new_end.min(self.heap_dirty);
            if dirty_end > old_end {
                p.zero(old_end, dirty_end - old_end);
            }
            self.set_kind(old_end, new_end, VmaKind::Heap);
        }
        self.brk = addr;
        self.brk
    }

    /// The break's page end moved down from `old_end` to `new_end`: the pages
    /// become reserve, still backed and now dirty. If the heap there is not plain
    /// read-write heap memory (the application unmapped, re-protected or mapped
    /// over part of it), everything from `new_end` up is unmapped, as Linux would.
    fn shrink_heap<P: Platform>(
        &mut self,
        p: &P,
        new_end: u64,
        old_end: u64,
        heap_end: u64,
    ) -> Result<(), Errno> {
        let mut at = new_end;
        let plain = loop {
            if at >= old_end {
                break true;
            }
            match self.vma_containing(at) {
                Some((_, v)) if v.kind == VmaKind::Heap && v.prot == PROT_READ | PROT_WRITE => {
                    at = v.end
                }
                _ => break false,
            }
        };
        if !plain {
            self.remove_range(p, new_end, heap_end.max(old_end))?;
            self.heap_dirty = new_end;
            return Ok(());
        }
        self.set_kind(new_end, old_end, VmaKind::HeapReserve);
        self.heap_dirty = self.heap_dirty.max(old_end);
        // Keep at most one chunk beyond the 2 MiB boundary above the new break.
        let keep = align_up(new_end, LARGE_PAGE_SIZE).saturating_add(LARGE_PAGE_SIZE);
        if keep < heap_end {
            // Reserve beyond the break: kept when it cannot be cut (ENOMEM).
            let _ = self.remove_range(p, keep, heap_end);
        }
        Ok(())
    }

    /// Make the VMAs in `[start, end)` (all heap or heap reserve) of `kind`.
    fn set_kind(&mut self, start: u64, end: u64, kind: VmaKind) {
        if start >= end {
            return;
        }
        split(&mut self.vmas, start);
        split(&mut self.vmas, end);
        for (_, v) in self.vmas.range_mut(start..end) {
            debug_assert!(matches!(v.kind, VmaKind::Heap | VmaKind::HeapReserve));
            v.kind = kind;
        }
        self.merge_around(start, end);
    }

    // ---------------------------------------------------------------- mmap

    /// `mmap(addr, len, prot, flags, fd, off)`.
    #[allow(clippy::too_many_arguments)]
    pub fn mmap<P: Platform>(
        &mut self,
        p: &P,
        addr: u64,
        len: u64,
        prot: u64,
        flags: u64,
        fd: u64,
        off: u64,
    ) -> Result<u64, Errno> {
        if !off.is_multiple_of(PAGE_SIZE) || len == 0 {
            return Err(Errno::EINVAL);
        }
        let len = page_len(len)?;
        if len > USER_END - USER_START {
            return Err(Errno::ENOMEM);
        }
        let shared = match flags & MAP_TYPE {
            MAP_PRIVATE => false,
            MAP_SHARED => true,
            MAP_SHARED_VALIDATE => {
                if flags & !SHARED_VALIDATE_OK != 0 {
                    return Err(Errno::EOPNOTSUPP);
                }
                true
            }
            _ => return Err(Errno::EINVAL),
        };
        let mut anon = flags & MAP_ANONYMOUS != 0;
        let prot = prot & (PROT_READ | PROT_WRITE | PROT_EXEC);
        // A shared mapping of /dev/zero is anonymous shared memory in Linux
        // (`shmem_zero_setup`): here, memory from the pool, which the proxy sees
        // as it sees all of the application's memory. (Passed through, the
        // proxy's and the hosted application's process would each get an object
        // of their own.)
        let dev_zero = !anon && shared && is_dev_zero(p, fd);
        if dev_zero && prot & PROT_WRITE != 0 {
            // As for any shared mapping: writable only through a descriptor open
            // for writing.
            let fl = p.forward(syscalls::Sysno::fcntl as u64, [fd, F_GETFL, 0, 0, 0, 0]);
            if fl >= 0 && fl as u64 & O_ACCMODE == O_RDONLY {
                return Err(Errno::EACCES);
            }
        }
        // A file on hugetlbfs is mapped in whole huge pages (Linux rounds the
        // length up and needs an aligned address); MAP_HUGETLB asks for one and is
        // EINVAL for any other file (`ksys_mmap_pgoff`), /dev/zero included.
        let huge_file = !anon
            && (flags & MAP_HUGETLB != 0 || shared && !dev_zero)
            && match is_hugetlbfs(p, fd) {
                Ok(huge) => huge,
                Err(e) if flags & MAP_HUGETLB != 0 => return Err(e),
                // Not for this check to decide: the mapping below reports it.
                Err(_) => false,
            };
        if flags & MAP_HUGETLB != 0 && !anon && !huge_file {
            return Err(Errno::EINVAL);
        }
        let len = if huge_file {
            align_up(len, LARGE_PAGE_SIZE)
        } else {
            len
        };
        anon |= dev_zero;
        if !anon && off.checked_add(len).is_none_or(|e| e > i64::MAX as u64) {
            return Err(Errno::EOVERFLOW);
        }
        if !anon && !shared {
            // A zero-length read validates the fd as Linux's mmap would.
            let r = p.forward(syscalls::Sysno::pread64 as u64, [fd, 0, 0, off, 0, 0]);
            if r < 0 {
                return Err(if r == Errno::EBADF.ret() {
                    Errno::EBADF
                } else {
                    // Pipes, directories, sockets: not mappable.
                    Errno::ENODEV
                });
            }
        }

        let fixed = flags & (MAP_FIXED | MAP_FIXED_NOREPLACE) != 0;
        let start = if fixed {
            if !addr.is_multiple_of(PAGE_SIZE) {
                return Err(Errno::EINVAL);
            }
            if addr > USER_END - len {
                return Err(Errno::ENOMEM);
            }
            if addr < USER_START {
                // `mmap_min_addr`: Linux's security check answers EPERM.
                return Err(Errno::EPERM);
            }
            // The heap reserve is free space for the application.
            if flags & MAP_FIXED_NOREPLACE != 0 && !self.is_free_but_reserve(addr, addr + len) {
                return Err(Errno::EEXIST);
            }
            addr
        } else {
            let hint = align_down(addr, PAGE_SIZE);
            if hint >= USER_START && hint <= USER_END - len && self.is_free(hint, hint + len) {
                hint
            } else {
                let align = if flags & MAP_HUGETLB != 0 || huge_file {
                    self.placement_align(len).max(LARGE_PAGE_SIZE)
                } else {
                    self.placement_align(len)
                };
                let (lo, hi) = if flags & MAP_32BIT != 0 {
                    (MAP_32BIT_LO, MAP_32BIT_HI)
                } else {
                    (USER_START, USER_MMAP_TOP)
                };
                self.find_free(len, align, lo, hi).ok_or(Errno::ENOMEM)?
            }
        };
        let end = start + len;

        if anon {
            if fixed {
                self.remove_range(p, start, end)?;
            }
            if let Err(e) = self.map_new(p, start, end, prot, VmaKind::Anon, shared) {
                self.note_oom(p, e, len);
                return Err(e);
            }
            if flags & MAP_GROWSDOWN != 0 {
                self.set_growsdown(start, end);
            }
        } else if shared {
            if fixed {
                self.remove_range(p, start, end)?;
            }
            self.map_passthrough(p, start, end, prot, flags, fd, off)?;
        } else {
            // Private file mapping: anonymous memory filled by forwarded reads straight
            // into place (the proxy sees the same addresses), then the requested
            // protection.
            if fixed {
                self.remove_range(p, start, end)?;
            }
            self.map_new(p, start, end, PROT_READ | PROT_WRITE, VmaKind::File, false)?;
            if let Err(e) = read_file_into(p, fd, start, len, off) {
                // Just mapped by us: its ends cut nothing.
                let _ = self.remove_range(p, start, end);
                return Err(e);
            }
            if prot != PROT_READ | PROT_WRITE {
                self.change_prot(p, start, end, prot)?;
            }
        }
        if dev_zero {
            self.label(start, end, b"/dev/zero (deleted)");
        } else if !anon {
            if let Some(name) = fd_path(p, fd) {
                self.label(start, end, &name);
            }
        }
        Ok(start)
    }

    /// Map fresh zeroed memory at the fixed range `[va, va+len)` (page aligned),
    /// replacing whatever is there: the ELF loader and the stack use this.
    pub fn map_fixed<P: Platform>(
        &mut self,
        p: &P,
        va: u64,
        len: u64,
        prot: u64,
        kind: VmaKind,
    ) -> Result<(), Errno> {
        if !va.is_multiple_of(PAGE_SIZE) || !len.is_multiple_of(PAGE_SIZE) || len == 0 {
            return Err(Errno::EINVAL);
        }
        if va < USER_START || va > USER_END - len {
            return Err(Errno::ENOMEM);
        }
        self.remove_range(p, va, va + len)?;
        self.map_new(p, va, va + len, prot, kind, false)
    }

    /// Shared mapping of `fd` at the free range `[start, end)`: Linux maps it (the
    /// proxy), libos maps the pages before end-of-file.
    #[allow(clippy::too_many_arguments)]
    fn map_passthrough<P: Platform>(
        &mut self,
        p: &P,
        start: u64,
        end: u64,
        prot: u64,
        flags: u64,
        fd: u64,
        off: u64,
    ) -> Result<(), Errno> {
        let m = p.map_shared(start, end - start, prot, flags, fd, off)?;
        self.install_passthrough(p, start, end, prot, m)
    }

    /// Map pass-through object `m`, which the proxy placed at the free range
    /// `[start, end)`: its valid pages like RAM, the rest left to fault.
    fn install_passthrough<P: Platform>(
        &mut self,
        p: &P,
        start: u64,
        end: u64,
        prot: u64,
        m: SharedMapping,
    ) -> Result<(), Errno> {
        let len = end - start;
        let valid = m.valid.min(len);
        if valid > 0 {
            if let Err(e) = self.kmap(p, start, m.gpa, valid, prot) {
                p.publish(change(KIND_UNMAP, start, len, 0));
                p.unshare(m.gpa);
                return Err(e);
            }
            self.backing.insert(
                start,
                Backing {
                    len: valid,
                    gpa: m.gpa,
                },
            );
            // Already in place in the proxy (its mapping is the mirror); published so
            // every mapped page has its entry, as for RAM.
            p.publish(change(KIND_MAP, start, valid, m.gpa));
        }
        self.vmas.insert(
            start,
            Vma {
                end,
                prot,
                kind: VmaKind::Passthrough {
                    gpa: m.gpa,
                    va: start,
                    may_write: m.may_write,
                },
                shared: true,
                growsdown: false,
            },
        );
        // The proxy may hand out the same start again (another mapping of the same
        // file range shares its slot): one release when both are gone.
        *self.shared.entry(m.gpa).or_insert(0) += len;
        Ok(())
    }

    // ---------------------------------------------------------------- System V shm

    /// `shmat`: attach System V segment `shmid`, `len` bytes (its size, as Linux's
    /// `IPC_STAT` gave it; the whole page-rounded segment is mapped), whose key is
    /// `key`, at `addr` — page aligned (`SHM_RND` already applied) — or where libos
    /// chooses for 0 (aligned like any mapping of its size, so at least `SHMLBA`).
    /// Over existing mappings only with `SHM_REMAP` (else `EINVAL`), which replaces
    /// them, as Linux's `do_shmat` does. Read-write, or read-only with
    /// `SHM_RDONLY`, executable too with `SHM_EXEC`. Linux decides the rest in the
    /// proxy (`Platform::attach_shm`).
    #[allow(clippy::too_many_arguments)]
    pub fn shmat<P: Platform>(
        &mut self,
        p: &P,
        shmid: u64,
        addr: u64,
        shmflg: u64,
        len: u64,
        key: u32,
    ) -> Result<u64, Errno> {
        let len = page_len(len)?;
        if len == 0 || len > USER_END - USER_START {
            return Err(Errno::ENOMEM);
        }
        let remap = shmflg & crate::uapi::shm::SHM_REMAP != 0;
        let start = if addr != 0 {
            debug_assert!(addr.is_multiple_of(PAGE_SIZE));
            // Linux: an overlap without SHM_REMAP is EINVAL before do_mmap's checks.
            if !remap
                && addr
                    .checked_add(len)
                    .is_none_or(|e| !self.is_free_but_reserve(addr, e))
            {
                return Err(Errno::EINVAL);
            }
            if addr > USER_END - len {
                return Err(Errno::ENOMEM);
            }
            if addr < USER_START {
                return Err(Errno::EPERM);
            }
            addr
        } else {
            let align = self.placement_align(len);
            self.find_free(len, align, USER_START, USER_MMAP_TOP)
                .ok_or(Errno::ENOMEM)?
        };
        let end = start + len;
        let replaced = !self.is_free_but_reserve(start, end);
        self.remove_range(p, start, end)?;
        let m = match p.attach_shm(start, len, shmid, shmflg) {
            Ok(m) => m,
            Err(e) => {
                if e == Errno::EINVAL {
                    // The segment exists (IPC_STAT said so): Linux maps it larger
                    // than its size, or not at this alignment.
                    self.note(
                        p,
                        Note::SysvHuge,
                        "shmat: Linux refused the attachment with EINVAL although the segment exists: a SHM_HUGETLB segment whose size is not a multiple of the huge page size is not supported yet",
                    );
                }
                if replaced {
                    // Linux judges the id and the permissions before it unmaps
                    // anything; here its shmat comes after libos cleared the range.
                    self.note(
                        p,
                        Note::SysvRemap,
                        "shmat: an attach with SHM_REMAP failed after the mappings it was to replace were removed (Linux would have kept them)",
                    );
                }
                return Err(e);
            }
        };
        let mut prot = PROT_READ;
        if shmflg & SHM_RDONLY == 0 {
            prot |= PROT_WRITE;
        }
        if shmflg & SHM_EXEC != 0 {
            prot |= PROT_EXEC;
        }
        if let Err(e) = self.install_passthrough(p, start, end, prot, m) {
            // The application's own attachment goes too (the hosted platform's).
            let _ = p.unmap(start, len);
            return Err(e);
        }
        self.sysv.insert(
            m.gpa,
            SysvAttach {
                shmid,
                va: start,
                len,
            },
        );
        self.label(
            start,
            end,
            alloc::format!("/SYSV{key:08x} (deleted)").as_bytes(),
        );
        Ok(start)
    }

    /// `shmdt(addr)`: detach the attachment made at `addr`, every piece of it
    /// `munmap` or `mprotect` left; `EINVAL` if none was made there. Like Linux,
    /// which finds the first attachment VMA from `addr` up that was attached at
    /// `addr`, the attachment with the lowest piece goes when there are several.
    pub fn shmdt<P: Platform>(&mut self, p: &P, addr: u64) -> Result<(), Errno> {
        if !addr.is_multiple_of(PAGE_SIZE) {
            return Err(Errno::EINVAL);
        }
        let pieces = self
            .sysv
            .iter()
            .filter(|(_, a)| a.va == addr)
            .map(|(&gpa, a)| self.sysv_pieces(gpa, a))
            .filter(|pieces| !pieces.is_empty())
            .min_by_key(|pieces| pieces[0].0)
            .ok_or(Errno::EINVAL)?;
        for (s, e) in pieces {
            self.remove_range(p, s, e)?;
        }
        Ok(())
    }

    /// The VMA pieces of attachment `a` (object `gpa`), in address order.
    fn sysv_pieces(&self, gpa: u64, a: &SysvAttach) -> Vec<(u64, u64)> {
        self.parts(a.va, a.va + a.len)
            .into_iter()
            .filter(|(_, _, v)| matches!(v.kind, VmaKind::Passthrough { gpa: g, .. } if g == gpa))
            .map(|(s, e, _)| (s, e))
            .collect()
    }

    /// Pieces of the application's attachments of segment `shmid` that are
    /// contiguous runs of address space: how many Linux attachments (VMAs) the
    /// proxy's mirror holds of it, which `mprotect` never splits.
    pub fn sysv_runs(&self, shmid: u64) -> u64 {
        let mut runs = 0;
        for (&gpa, a) in self.sysv.iter().filter(|(_, a)| a.shmid == shmid) {
            let mut last_end = None;
            for (s, e) in self.sysv_pieces(gpa, a) {
                if last_end != Some(s) {
                    runs += 1;
                }
                last_end = Some(e);
            }
        }
        runs
    }

    /// What a page fault of the application at `addr` (x86 page-fault error code
    /// `error`) means. A fault Linux reported as `SIGBUS` (`trap::PF_SIGBUS`, hosted
    /// platform) is `SIGBUS`. An access the VMA allows to a backed page of a
    /// whole-only 2 MiB page split lately met the split under way (`split_chunk`
    /// makes the page read-only, then maps its copy) and is retried. In a shared
    /// file mapping, an allowed access to a page beyond the file's end is
    /// `SIGBUS`, as in Linux, mapped (the file shrank under it) or not; an
    /// unbacked page the file has grown over since it was mapped is mapped now and
    /// the access retried. Every other fault is the exception's own (`SIGSEGV`).
    pub fn page_fault<P: Platform>(&mut self, p: &P, addr: u64, error: u64) -> Fault {
        if error & mote_abi::trap::PF_SIGBUS != 0 {
            return Fault::Signal(crate::uapi::signal::SIGBUS);
        }
        let Some((_, &v)) = self.vma_at(addr) else {
            return self.grow_down(p, addr);
        };
        let (write, fetch) = (error & PF_WRITE != 0, error & PF_FETCH != 0);
        let allowed = allows(v.prot, write) && (!fetch || v.prot & PROT_EXEC != 0);
        let backed = self.translate(addr).is_some();
        // Reserved-bit and protection-key faults are never a split's.
        let plain = error & (PF_RSVD | PF_PK) == 0;
        let split_lately = self
            .split_lately
            .contains(&align_down(addr, LARGE_PAGE_SIZE));
        let VmaKind::Passthrough { gpa, va, .. } = v.kind else {
            return if backed && allowed && plain && split_lately {
                Fault::Retry
            } else {
                Fault::Default
            };
        };
        if !allowed {
            return Fault::Default;
        }
        // Beyond the file's end now (it may have shrunk under a mapped page): SIGBUS.
        let page = align_down(addr, PAGE_SIZE);
        if page - va >= p.shared_len(gpa) {
            return Fault::Signal(crate::uapi::signal::SIGBUS);
        }
        if backed {
            return Fault::Retry;
        }
        let pgpa = gpa + (page - va);
        if self.kmap(p, page, pgpa, PAGE_SIZE, v.prot).is_err() {
            return Fault::Signal(crate::uapi::signal::SIGBUS);
        }
        self.backing.insert(
            page,
            Backing {
                len: PAGE_SIZE,
                gpa: pgpa,
            },
        );
        p.publish(change(KIND_MAP, page, PAGE_SIZE, pgpa));
        Fault::Retry
    }

    /// An access at `addr`, outside every VMA, just below a `MAP_GROWSDOWN` one:
    /// extend that VMA down to `addr`'s page (backed like the rest of it), as Linux's
    /// `expand_stack` does, if the new start keeps `STACK_GUARD_GAP` from the VMA
    /// below and the whole stays within `STACK_LIMIT`.
    fn grow_down<P: Platform>(&mut self, p: &P, addr: u64) -> Fault {
        let page = align_down(addr, PAGE_SIZE);
        let Some((&start, &v)) = self.vmas.range(addr..).next() else {
            return Fault::Default;
        };
        if !v.growsdown || v.end - page > STACK_LIMIT || page < USER_START {
            return Fault::Default;
        }
        let below = self
            .vmas
            .range(..start)
            .next_back()
            .map_or(0, |(_, b)| b.end);
        if below.saturating_add(STACK_GUARD_GAP) > page {
            return Fault::Default;
        }
        if self
            .map_new(p, page, start, v.prot, v.kind, v.shared)
            .is_err()
        {
            return Fault::Signal(crate::uapi::signal::SIGSEGV);
        }
        self.set_growsdown(page, start);
        Fault::Retry
    }

    /// Mark the VMAs in `[start, end)` `MAP_GROWSDOWN`.
    fn set_growsdown(&mut self, start: u64, end: u64) {
        split(&mut self.vmas, start);
        split(&mut self.vmas, end);
        for (_, v) in self.vmas.range_mut(start..end) {
            v.growsdown = true;
        }
        self.merge_around(start, end);
    }

    /// A mapping of `len` bytes failed for want of memory: say so once, with the fix.
    fn note_oom<P: Platform>(&mut self, p: &P, e: Errno, len: u64) {
        if e != Errno::ENOMEM || self.noted & Note::OutOfMemory as u32 != 0 {
            return;
        }
        let free = self.frames.available() >> 20;
        let (start, end) = self.frames.range();
        // Of what is left, how much only 2 MiB-aligned mappings can use.
        let whole_only = free.saturating_sub(self.frames.available_in(FrameSize::Small) >> 20);
        let split = if whole_only > 0 {
            alloc::format!(
                " ({whole_only} MiB of it only in whole 2 MiB pages: hugetlbfs memory, which 4 KiB pieces cannot use; --page-size 4k puts all of --mem on ordinary pages)"
            )
        } else {
            alloc::string::String::new()
        };
        self.note(
            p,
            Note::OutOfMemory,
            &alloc::format!(
                "out of partition memory: a mapping of {} MiB does not fit in the {free} MiB left of {} MiB{split}; the application gets ENOMEM (give the partition more with mote run --mem)",
                len.div_ceil(1 << 20),
                (end - start) >> 20
            ),
        );
    }

    // ---------------------------------------------------------------- munmap

    /// `munmap(addr, len)`.
    pub fn munmap<P: Platform>(&mut self, p: &P, addr: u64, len: u64) -> Result<(), Errno> {
        if !addr.is_multiple_of(PAGE_SIZE) || len == 0 {
            return Err(Errno::EINVAL);
        }
        let len = page_len(len).map_err(|_| Errno::EINVAL)?;
        if addr > USER_END || len > USER_END - addr {
            return Err(Errno::EINVAL);
        }
        // Where a whole-only 2 MiB page cannot be split, nothing changes (ENOMEM).
        self.remove_range(p, addr, addr + len)
    }

    // ---------------------------------------------------------------- mprotect

    /// `mprotect(addr, len, prot)`.
    pub fn mprotect<P: Platform>(
        &mut self,
        p: &P,
        addr: u64,
        len: u64,
        prot: u64,
    ) -> Result<(), Errno> {
        let grows = prot & (PROT_GROWSDOWN | PROT_GROWSUP);
        let prot = prot & !grows;
        if grows == PROT_GROWSDOWN | PROT_GROWSUP {
            return Err(Errno::EINVAL);
        }
        if prot & !(PROT_READ | PROT_WRITE | PROT_EXEC | PROT_SEM) != 0 {
            return Err(Errno::EINVAL);
        }
        if !addr.is_multiple_of(PAGE_SIZE) {
            return Err(Errno::EINVAL);
        }
        if len == 0 {
            return Ok(());
        }
        let len = page_len(len)?;
        let mut start = addr;
        let end = addr.checked_add(len).ok_or(Errno::ENOMEM)?;
        if end > USER_END {
            return Err(Errno::ENOMEM);
        }
        if grows != 0 {
            // Only the stack grows down; extend to the start of its VMA as Linux does.
            match self.vma_at(start) {
                Some((s, v))
                    if grows == PROT_GROWSDOWN && (v.kind == VmaKind::Stack || v.growsdown) =>
                {
                    start = s
                }
                _ => return Err(Errno::EINVAL),
            }
        }
        if !self.is_covered(start, end) {
            return Err(Errno::ENOMEM);
        }
        // A shared mapping of a file opened read-only never becomes writable.
        if prot & PROT_WRITE != 0
            && self.parts(start, end).iter().any(|(_, _, v)| {
                matches!(
                    v.kind,
                    VmaKind::Passthrough {
                        may_write: false,
                        ..
                    }
                )
            })
        {
            return Err(Errno::EACCES);
        }
        self.change_prot(p, start, end, prot & (PROT_READ | PROT_WRITE | PROT_EXEC))
    }

    // ---------------------------------------------------------------- mremap

    /// `mremap(old, old_len, new_len, flags, new_addr)`.
    pub fn mremap<P: Platform>(
        &mut self,
        p: &P,
        old: u64,
        old_len: u64,
        new_len: u64,
        flags: u64,
        new_addr: u64,
    ) -> Result<u64, Errno> {
        if flags & !(MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP) != 0
            || !old.is_multiple_of(PAGE_SIZE)
        {
            return Err(Errno::EINVAL);
        }
        if flags & (MREMAP_FIXED | MREMAP_DONTUNMAP) != 0 && flags & MREMAP_MAYMOVE == 0 {
            return Err(Errno::EINVAL);
        }
        let old_len = page_len(old_len).map_err(|_| Errno::EINVAL)?;
        let new_len = page_len(new_len).map_err(|_| Errno::EINVAL)?;
        if new_len == 0 || old_len == 0 {
            // old_len == 0 duplicates a shared mapping in Linux; there is none here.
            return Err(Errno::EINVAL);
        }
        let (vstart, vma) = self
            .vma_at(old)
            .map(|(s, v)| (s, *v))
            .ok_or(Errno::EFAULT)?;
        let old_end = old.checked_add(old_len).ok_or(Errno::EFAULT)?;
        if old_end > vma.end {
            return Err(Errno::EFAULT);
        }
        let _ = vstart;
        let passthrough = matches!(vma.kind, VmaKind::Passthrough { .. });
        if passthrough && (new_len > old_len || flags & MREMAP_FIXED != 0) {
            // Its memory is the proxy's Linux mapping at this address.
            self.note(
                p,
                Note::SharedFile,
                "mremap: moving or growing a shared file or System V shared memory mapping is not supported yet; returning EINVAL",
            );
            return Err(Errno::EINVAL);
        }

        if flags & MREMAP_DONTUNMAP != 0 {
            return self.move_dont_unmap(p, old, old_len, new_len, flags, new_addr, vma);
        }

        if flags & MREMAP_FIXED != 0 {
            if !new_addr.is_multiple_of(PAGE_SIZE)
                || new_len > USER_END
                || new_addr > USER_END - new_len
            {
                return Err(Errno::EINVAL);
            }
            if new_addr < USER_START {
                return Err(Errno::EPERM);
            }
            if new_addr < old_end && old < new_addr + new_len {
                return Err(Errno::EINVAL);
            }
            if new_len > old_len && vma.kind == VmaKind::File {
                return self.grow_file_refused(p);
            }
            // Both cuts first, so that a failing one (ENOMEM) changes nothing.
            self.split_whole_chunk(p, new_addr)?;
            self.split_whole_chunk(p, new_addr + new_len)?;
            self.split_whole_chunk(p, old + new_len.min(old_len))?;
            self.remove_range(p, new_addr, new_addr + new_len)?;
            let moved_len = old_len.min(new_len);
            if old_len > new_len {
                self.remove_range(p, old + new_len, old_end)?;
            }
            self.move_range(p, old, moved_len, new_addr, new_len, vma)?;
            return Ok(new_addr);
        }

        if new_len <= old_len {
            self.remove_range(p, old + new_len, old_end)?;
            return Ok(old);
        }
        if vma.kind == VmaKind::File {
            return self.grow_file_refused(p);
        }
        // Grow in place when the pages after the range are free.
        if old_end == vma.end && old <= USER_END - new_len && self.is_free(old_end, old + new_len) {
            self.map_new(p, old_end, old + new_len, vma.prot, vma.kind, vma.shared)?;
            return Ok(old);
        }
        if flags & MREMAP_MAYMOVE == 0 {
            return Err(Errno::ENOMEM);
        }
        let align = self.placement_align(new_len);
        let to = self
            .find_free(new_len, align, USER_START, USER_MMAP_TOP)
            .ok_or(Errno::ENOMEM)?;
        self.move_range(p, old, old_len, to, new_len, vma)?;
        Ok(to)
    }

    /// `mremap` with `MREMAP_DONTUNMAP`: the pages move to a new range (`new_addr`
    /// with `MREMAP_FIXED`), and the old range stays mapped, reading zero from then
    /// on, as Linux leaves a private anonymous mapping. Like Linux, only private
    /// anonymous memory, and the length cannot change.
    #[allow(clippy::too_many_arguments)]
    fn move_dont_unmap<P: Platform>(
        &mut self,
        p: &P,
        old: u64,
        len: u64,
        new_len: u64,
        flags: u64,
        new_addr: u64,
        vma: Vma,
    ) -> Result<u64, Errno> {
        let anon = matches!(vma.kind, VmaKind::Anon | VmaKind::Heap | VmaKind::Stack);
        if new_len != len || !anon || vma.shared {
            if !anon {
                self.note(
                    p,
                    Note::DontUnmap,
                    "mremap: MREMAP_DONTUNMAP of a file mapping is not supported yet; returning EINVAL",
                );
            }
            return Err(Errno::EINVAL);
        }
        let to = if flags & MREMAP_FIXED != 0 {
            if !new_addr.is_multiple_of(PAGE_SIZE) || new_addr > USER_END - len {
                return Err(Errno::EINVAL);
            }
            if new_addr < USER_START {
                return Err(Errno::EPERM);
            }
            if new_addr < old + len && old < new_addr + len {
                return Err(Errno::EINVAL);
            }
            self.split_whole_chunk(p, old)?;
            self.split_whole_chunk(p, old + len)?;
            self.remove_range(p, new_addr, new_addr + len)?;
            new_addr
        } else {
            let align = self.placement_align(len);
            self.find_free(len, align, USER_START, USER_MMAP_TOP)
                .ok_or(Errno::ENOMEM)?
        };
        self.move_range(p, old, len, to, len, vma)?;
        // Fresh zeroed memory where the pages were; without memory for it, the
        // pages go back and nothing changed.
        if let Err(e) = self.map_new(p, old, old + len, vma.prot, vma.kind, false) {
            let moved = Vma {
                end: to + len,
                ..vma
            };
            self.move_range(p, to, len, old, len, moved)?;
            return Err(e);
        }
        Ok(to)
    }

    fn grow_file_refused<P: Platform>(&mut self, p: &P) -> Result<u64, Errno> {
        self.note(
            p,
            Note::GrowFile,
            "mremap: growing a private file mapping is not supported yet; returning ENOMEM",
        );
        Err(Errno::ENOMEM)
    }

    /// Move `[old, old+len)` (inside one VMA with properties `vma`) to the free range
    /// `[to, to+new_len)`, `new_len >= len`: the same frames are mapped at the new
    /// address (no copy), then the old range is unmapped and the rest of the new range
    /// is backed with fresh memory.
    fn move_range<P: Platform>(
        &mut self,
        p: &P,
        old: u64,
        len: u64,
        to: u64,
        new_len: u64,
        vma: Vma,
    ) -> Result<(), Errno> {
        self.split_whole_chunk(p, old)?;
        self.split_whole_chunk(p, old + len)?;
        if !(to.wrapping_sub(old)).is_multiple_of(LARGE_PAGE_SIZE) {
            // Whole-only 2 MiB pages can only land 2 MiB aligned.
            let whole: Vec<u64> = self
                .backed_in(old, old + len)
                .into_iter()
                .filter(|&(_, _, gpa)| self.frames.whole_chunks_only(gpa))
                .flat_map(|(va, len, _)| (va..va + len).step_by(LARGE_PAGE_SIZE as usize))
                .collect();
            for chunk in whole {
                self.split_chunk(p, chunk)?;
            }
        }
        split(&mut self.backing, old);
        split(&mut self.backing, old + len);
        let runs: Vec<(u64, Backing)> = self
            .backing
            .range(old..old + len)
            .map(|(&s, &b)| (s, b))
            .collect();
        // Map the new range first: if that fails the old mapping is still intact.
        let mut done: Vec<(u64, Backing)> = Vec::new();
        for &(s, b) in &runs {
            let va = to + (s - old);
            if let Err(e) = self.kmap(p, va, b.gpa, b.len, vma.prot) {
                for &(va, b) in &done {
                    let _ = p.unmap(va, b.len);
                    p.publish(change(KIND_UNMAP, va, b.len, b.gpa));
                }
                return Err(e);
            }
            p.publish(change(KIND_MAP, va, b.len, b.gpa));
            done.push((va, b));
        }
        // The name goes along.
        split(&mut self.labels, old);
        split(&mut self.labels, old + len);
        let moved: Vec<(u64, Label)> = self
            .labels
            .range(old..old + len)
            .map(|(&s, l)| (s, l.clone()))
            .collect();
        self.unlabel(old, old + len);
        for (s, l) in moved {
            let end = to + (l.end - old);
            self.labels.insert(to + (s - old), Label { end, ..l });
        }
        // Drop the old range without freeing its frames: they live on at `to`.
        split(&mut self.vmas, old);
        split(&mut self.vmas, old + len);
        let keys: Vec<u64> = self.vmas.range(old..old + len).map(|(&s, _)| s).collect();
        for k in keys {
            self.vmas.remove(&k);
        }
        for &(s, _) in &runs {
            self.backing.remove(&s);
        }
        self.unmap_runs(p, &runs);
        for (va, b) in done {
            self.backing.insert(va, b);
        }
        self.vmas.insert(
            to,
            Vma {
                end: to + len,
                ..vma
            },
        );
        if new_len > len {
            if let Err(e) = self.map_new(p, to + len, to + new_len, vma.prot, vma.kind, vma.shared)
            {
                // Just mapped by us at a free range: its ends cut nothing.
                let _ = self.remove_range(p, to, to + len);
                return Err(e);
            }
        }
        self.merge_around(to, to + new_len);
        Ok(())
    }

    // ---------------------------------------------------------------- madvise

    /// `madvise(addr, len, advice)`.
    pub fn madvise<P: Platform>(
        &mut self,
        p: &P,
        addr: u64,
        len: u64,
        advice: u64,
    ) -> Result<(), Errno> {
        match advice {
            MADV_NORMAL | MADV_RANDOM | MADV_SEQUENTIAL | MADV_WILLNEED | MADV_DONTNEED
            | MADV_FREE | MADV_REMOVE | MADV_DONTFORK | MADV_DOFORK | MADV_MERGEABLE
            | MADV_UNMERGEABLE | MADV_HUGEPAGE | MADV_NOHUGEPAGE | MADV_DONTDUMP | MADV_DODUMP
            | MADV_WIPEONFORK | MADV_KEEPONFORK | MADV_COLD | MADV_PAGEOUT | MADV_POPULATE_READ
            | MADV_POPULATE_WRITE | MADV_DONTNEED_LOCKED | MADV_COLLAPSE => {}
            // Need CAP_SYS_ADMIN.
            MADV_HWPOISON | MADV_SOFT_OFFLINE => return Err(Errno::EPERM),
            _ => return Err(Errno::EINVAL),
        }
        if !addr.is_multiple_of(PAGE_SIZE) {
            return Err(Errno::EINVAL);
        }
        let len = page_len(len).map_err(|_| Errno::EINVAL)?;
        let end = addr.checked_add(len).ok_or(Errno::EINVAL)?;
        if len == 0 {
            return Ok(());
        }
        let covered = self.is_covered(addr, end);
        // The heap reserve is not the application's memory: as unmapped.
        let parts: Vec<(u64, u64, Vma)> = self
            .parts(addr, end)
            .into_iter()
            .filter(|(_, _, v)| v.kind != VmaKind::HeapReserve)
            .collect();
        match advice {
            MADV_DONTNEED | MADV_DONTNEED_LOCKED | MADV_FREE | MADV_REMOVE => {
                // Zeroing may change the protection of part of a whole-only page.
                self.split_whole_chunk(p, addr)?;
                self.split_whole_chunk(p, end)?;
                for &(s, e, v) in &parts {
                    let anon = matches!(v.kind, VmaKind::Anon | VmaKind::Heap | VmaKind::Stack);
                    let passthrough = matches!(v.kind, VmaKind::Passthrough { .. });
                    if advice == MADV_REMOVE && !(anon && v.shared) {
                        if passthrough {
                            self.note(p, Note::RemoveShared, "madvise: MADV_REMOVE of a shared file or System V shared memory mapping is not supported yet; returning EINVAL");
                        }
                        return Err(Errno::EINVAL);
                    }
                    if passthrough {
                        // Linux drops the page-table entries; the next access finds
                        // the object's pages again, which are these: nothing to do.
                        continue;
                    }
                    if !anon {
                        // Linux would drop the private copy and show the file again.
                        self.note(p, Note::DontneedFile, "madvise: MADV_DONTNEED on a private file or program mapping keeps its contents (reverting to the file is not supported yet)");
                        continue;
                    }
                    self.zero_backed(p, s, e, v.prot);
                }
            }
            MADV_POPULATE_READ | MADV_POPULATE_WRITE => {
                let write = advice == MADV_POPULATE_WRITE;
                if parts.iter().any(|&(_, _, v)| !allows(v.prot, write)) {
                    return Err(Errno::EFAULT);
                }
            }
            // Everything else is advice about paging, merging, forking or dumping: the
            // memory here is resident, unmerged and never paged, so there is nothing
            // to do.
            _ => {}
        }
        if covered {
            Ok(())
        } else {
            Err(Errno::ENOMEM)
        }
    }

    // ---------------------------------------------------------------- helpers

    /// The VMA pieces intersecting `[start, end)`, clipped.
    fn parts(&self, start: u64, end: u64) -> Vec<(u64, u64, Vma)> {
        let first = self.vma_containing(start).map(|(s, _)| s).unwrap_or(start);
        self.vmas
            .range(first..end)
            .filter(|(_, v)| v.end > start)
            .map(|(&s, &v)| (s.max(start), v.end.min(end), v))
            .collect()
    }

    /// Zero the backed pages of `[start, end)` whose protection is `prot`.
    fn zero_backed<P: Platform>(&mut self, p: &P, start: u64, end: u64, prot: u64) {
        let runs = self.backed_in(start, end);
        for (s, e) in coalesce(&runs) {
            if prot & PROT_WRITE == 0 {
                if self.kprotect(p, s, e - s, PROT_READ | PROT_WRITE).is_err() {
                    // Without tables to make it writable the page keeps its
                    // contents (never a store into a read-only page).
                    continue;
                }
                p.zero(s, e - s);
                let _ = self.kprotect(p, s, e - s, prot);
            } else {
                p.zero(s, e - s);
            }
        }
    }

    /// Backed pieces of `[start, end)`, clipped: `(va, len, gpa)`.
    fn backed_in(&self, start: u64, end: u64) -> Vec<(u64, u64, u64)> {
        let first = self
            .backing
            .range(..=start)
            .next_back()
            .filter(|(&s, b)| s + b.len > start)
            .map(|(&s, _)| s)
            .unwrap_or(start);
        self.backing
            .range(first..end)
            .map(|(&s, b)| {
                let cs = s.max(start);
                let ce = (s + b.len).min(end);
                (cs, ce - cs, b.gpa + (cs - s))
            })
            .collect()
    }

    /// Set the protection of the covered range `[start, end)`: back what becomes
    /// accessible, change the rest in place.
    fn change_prot<P: Platform>(
        &mut self,
        p: &P,
        start: u64,
        end: u64,
        prot: u64,
    ) -> Result<(), Errno> {
        self.split_whole_chunk(p, start)?;
        self.split_whole_chunk(p, end)?;
        // Pages backed before this call; populate maps the new ones with `prot`.
        split(&mut self.vmas, start);
        split(&mut self.vmas, end);
        let changed: Vec<(u64, u64)> = self
            .vmas
            .range(start..end)
            .filter(|(_, v)| v.prot != prot)
            .map(|(&s, v)| (s, v.end))
            .collect();
        let mut old: Vec<(u64, u64, u64)> = Vec::new();
        for &(s, e) in &changed {
            old.extend(self.backed_in(s, e));
        }
        if prot != PROT_NONE {
            self.populate(p, start, end, prot)?;
        }
        for (_, v) in self.vmas.range_mut(start..end) {
            v.prot = prot;
        }
        for (s, e) in coalesce(&old) {
            let _ = self.kprotect(p, s, e - s, prot);
        }
        self.merge_around(start, end);
        Ok(())
    }

    /// Add a VMA over the free range `[start, end)` and back it (unless it is a
    /// `PROT_NONE` reservation).
    fn map_new<P: Platform>(
        &mut self,
        p: &P,
        start: u64,
        end: u64,
        prot: u64,
        kind: VmaKind,
        shared: bool,
    ) -> Result<(), Errno> {
        debug_assert!(self.is_free(start, end));
        self.vmas.insert(
            start,
            Vma {
                end,
                prot,
                kind,
                shared,
                growsdown: false,
            },
        );
        if prot != PROT_NONE {
            if let Err(e) = self.populate(p, start, end, prot) {
                self.vmas.remove(&start);
                return Err(e);
            }
        }
        self.merge_around(start, end);
        Ok(())
    }

    /// Back every unbacked page of `[start, end)` with zeroed frames mapped `prot`.
    /// All or nothing.
    fn populate<P: Platform>(
        &mut self,
        p: &P,
        start: u64,
        end: u64,
        prot: u64,
    ) -> Result<(), Errno> {
        let mut holes = Vec::new();
        let mut at = start;
        for (va, len, _) in self.backed_in(start, end) {
            if va > at {
                holes.push((at, va));
            }
            at = va + len;
        }
        if at < end {
            holes.push((at, end));
        }
        // Unbacked pages of a shared file mapping lie beyond the file's end: they
        // stay unbacked (an access there is SIGBUS).
        let holes: Vec<(u64, u64)> = holes
            .into_iter()
            .flat_map(|(s, e)| {
                let pieces = self.parts(s, e);
                let mut out = Vec::new();
                let mut at = s;
                for (ps, pe, v) in pieces {
                    if at < ps {
                        out.push((at, ps));
                    }
                    if !matches!(v.kind, VmaKind::Passthrough { .. }) {
                        out.push((ps, pe));
                    }
                    at = pe;
                }
                if at < e {
                    out.push((at, e));
                }
                out
            })
            .collect();
        let mut mapped: Vec<(u64, Backing)> = Vec::new();
        for (s, e) in holes {
            if let Err(err) = self.back_hole(p, s, e, prot, &mut mapped) {
                self.unmap_runs(p, &mapped);
                for (_, b) in &mapped {
                    self.frames.free(b.gpa, b.len);
                }
                return Err(err);
            }
        }
        for (va, b) in mapped {
            self.backing.insert(va, b);
        }
        Ok(())
    }

    /// Back `[s, e)`: 2 MiB chunks for its 2 MiB-aligned middle, 4 KiB frames for the
    /// ends.
    fn back_hole<P: Platform>(
        &mut self,
        p: &P,
        s: u64,
        e: u64,
        prot: u64,
        mapped: &mut Vec<(u64, Backing)>,
    ) -> Result<(), Errno> {
        self.release_quarantine(p);
        // The aligned middle of each size the policy allows, largest first; the
        // ends in the next smaller size.
        let sizes: &[FrameSize] = match self.page_size {
            PAGE_SIZE => &[],
            HUGE_PAGE_SIZE => &[FrameSize::Huge, FrameSize::Large],
            _ => &[FrameSize::Large],
        };
        let mut pieces: Vec<(u64, u64, FrameSize)> = alloc::vec![(s, e, FrameSize::Small)];
        for &size in sizes {
            let unit = size.bytes();
            pieces = pieces
                .into_iter()
                .flat_map(|(ps, pe, cur)| {
                    let (ms, me) = (align_up(ps, unit), align_down(pe, unit));
                    if cur != FrameSize::Small || ms >= me {
                        return alloc::vec![(ps, pe, cur)];
                    }
                    let mut v = Vec::new();
                    if ps < ms {
                        v.push((ps, ms, FrameSize::Small));
                    }
                    v.push((ms, me, size));
                    if me < pe {
                        v.push((me, pe, FrameSize::Small));
                    }
                    v
                })
                .collect();
        }
        for (ps, pe, size) in pieces {
            self.back_piece(p, ps, pe, size, prot, mapped)?;
        }
        Ok(())
    }

    /// Back `[ps, pe)` with frames of `size` (falling back to smaller ones), mapped
    /// `prot`, adding the runs to `mapped`. Where the platform cannot back 2 MiB-only
    /// frames any more (hugetlbfs ran out: ENOSPC), that region is retired and the
    /// piece is backed from the rest of the pool.
    fn back_piece<P: Platform>(
        &mut self,
        p: &P,
        ps: u64,
        pe: u64,
        size: FrameSize,
        prot: u64,
        mapped: &mut Vec<(u64, Backing)>,
    ) -> Result<(), Errno> {
        loop {
            let runs = match self.frames.alloc(pe - ps, size) {
                Ok(r) => r,
                // No aligned gigabyte left: 2 MiB chunks, else 4 KiB frames.
                Err(_) if size == FrameSize::Huge => {
                    self.note(
                        p,
                        Note::NoHugeFrames,
                        "--page-size 1g: the partition's memory has no free 1 GiB-aligned gigabyte for this mapping; using 2 MiB pages (a larger --mem leaves room)",
                    );
                    match self.frames.alloc(pe - ps, FrameSize::Large) {
                        Ok(r) => r,
                        Err(_) => self.frames.alloc(pe - ps, FrameSize::Small)?,
                    }
                }
                // Fragmented: fall back to 4 KiB frames.
                Err(_) if size == FrameSize::Large => {
                    self.frames.alloc(pe - ps, FrameSize::Small)?
                }
                Err(e) => return Err(e),
            };
            let mut va = ps;
            let done = mapped.len();
            let mut rest = runs.into_iter();
            while let Some(run) = rest.next() {
                if let Err(err) = self.map_run(p, va, run, prot) {
                    self.frames.free(run.gpa, run.len);
                    for r in rest {
                        self.frames.free(r.gpa, r.len);
                    }
                    if err == Errno::ENOSPC && self.frames.whole_chunks_only(run.gpa) {
                        // Undo this piece and back it again without that region.
                        let undo: Vec<(u64, Backing)> = mapped.drain(done..).collect();
                        self.unmap_runs(p, &undo);
                        for (_, b) in undo {
                            self.frames.free(b.gpa, b.len);
                        }
                        self.frames.retire_large();
                        self.note(
                            p,
                            Note::NoHugetlbPages,
                            "Linux has no more free 2 MiB hugetlbfs pages: further memory uses ordinary pages",
                        );
                        break;
                    }
                    return Err(err);
                }
                mapped.push((
                    va,
                    Backing {
                        len: run.len,
                        gpa: run.gpa,
                    },
                ));
                va += run.len;
            }
            if va == pe {
                return Ok(());
            }
        }
    }

    /// Map one run at `va` with `prot`, zeroing it first when it is dirty.
    fn map_run<P: Platform>(&mut self, p: &P, va: u64, run: Run, prot: u64) -> Result<(), Errno> {
        let writable = PROT_READ | PROT_WRITE;
        let first = if run.zeroed { prot } else { prot | writable };
        self.kmap(p, va, run.gpa, run.len, first)?;
        if !run.zeroed {
            p.zero(va, run.len);
            if first != prot {
                let _ = p.protect(va, run.len, prot);
            }
        }
        p.publish(change(KIND_MAP, va, run.len, run.gpa));
        Ok(())
    }

    /// `Platform::map`, giving kernel-min more page-table frames when it runs out.
    fn kmap<P: Platform>(
        &mut self,
        p: &P,
        va: u64,
        gpa: u64,
        len: u64,
        prot: u64,
    ) -> Result<(), Errno> {
        let pages = match self.page_size {
            PAGE_SIZE => MAP_PAGES_4K,
            HUGE_PAGE_SIZE => MAP_PAGES_1G,
            _ => 0,
        };
        for _ in 0..MAX_TABLE_ROUNDS {
            match p.map(va, gpa, len, prot | pages) {
                Err(Errno::ENOMEM) if p.builds_page_tables() => {
                    // A partly done map must not leave pages behind for the retry.
                    let _ = p.unmap(va, len);
                    self.give_tables(p)?;
                }
                r => return r,
            }
        }
        Err(Errno::ENOMEM)
    }

    /// `Platform::protect`, giving kernel-min more page-table frames when it runs
    /// out (protecting part of a 2 MiB page splits it into a table of 4 KiB
    /// entries). A partly done call is redone whole: it is idempotent.
    fn kprotect<P: Platform>(&mut self, p: &P, va: u64, len: u64, prot: u64) -> Result<(), Errno> {
        for _ in 0..MAX_TABLE_ROUNDS {
            match p.protect(va, len, prot) {
                Err(Errno::ENOMEM) if p.builds_page_tables() => self.give_tables(p)?,
                r => return r,
            }
        }
        Err(Errno::ENOMEM)
    }

    /// `Platform::unmap`, likewise: unmapping part of a 2 MiB page needs a table.
    /// Frames are freed only after their pages are gone, so this must not fail
    /// quietly while there is memory for tables.
    fn kunmap<P: Platform>(&mut self, p: &P, va: u64, len: u64) -> Result<(), Errno> {
        for _ in 0..MAX_TABLE_ROUNDS {
            match p.unmap(va, len) {
                Err(Errno::ENOMEM) if p.builds_page_tables() => self.give_tables(p)?,
                r => return r,
            }
        }
        Err(Errno::ENOMEM)
    }

    /// Hand kernel-min `TABLE_GRANT` bytes of frames for page tables (never returned).
    fn give_tables<P: Platform>(&mut self, p: &P) -> Result<(), Errno> {
        let runs = match self.frames.alloc(TABLE_GRANT, FrameSize::Large) {
            Ok(r) => r,
            Err(_) => self.frames.alloc(TABLE_GRANT, FrameSize::Small)?,
        };
        for r in runs {
            p.give_tables(r.gpa, r.len)?;
            self.tables_given += r.len;
        }
        Ok(())
    }

    /// Unmap backed runs from kernel-min (one call per virtually contiguous group) and
    /// tell the proxy (one entry per run). Frames are not freed here.
    fn unmap_runs<P: Platform>(&mut self, p: &P, runs: &[(u64, Backing)]) {
        let flat: Vec<(u64, u64, u64)> = runs.iter().map(|&(va, b)| (va, b.len, b.gpa)).collect();
        for (s, e) in coalesce(&flat) {
            let _ = self.kunmap(p, s, e - s);
        }
        for &(va, b) in runs {
            p.publish(change(KIND_UNMAP, va, b.len, b.gpa));
        }
    }

    /// `at` is about to become an edge of a mapping change (an unmap, a protection
    /// change, a move). Where it falls inside a 2 MiB page the platform can map
    /// only whole (`FramePool::whole_chunks_only`: the hosted platform's hugetlbfs
    /// memory), that page is split first, as Linux splits a transparent huge
    /// page: its contents move to 4 KiB frames mapped in its place.
    fn split_whole_chunk<P: Platform>(&mut self, p: &P, at: u64) -> Result<(), Errno> {
        // Nothing to look up in the partition (every munmap and mprotect comes here).
        if !self.frames.has_whole_only() || at.is_multiple_of(LARGE_PAGE_SIZE) {
            return Ok(());
        }
        let Some((&va, &b)) = self.backing.range(..=at).next_back() else {
            return Ok(());
        };
        if va + b.len <= at || !self.frames.whole_chunks_only(b.gpa) {
            return Ok(());
        }
        self.split_chunk(p, align_down(at, LARGE_PAGE_SIZE))
    }

    /// Move the whole-only 2 MiB page mapped at `chunk` to 4 KiB frames: copy it
    /// through a scratch mapping, then map the copy in its place, with the same
    /// protection page by page. Other threads are kept from writing meanwhile (the
    /// page is read-only; their faults wait for the address-space lock and then
    /// retry, see `page_fault`). ENOMEM, and nothing changed, without the frames.
    fn split_chunk<P: Platform>(&mut self, p: &P, chunk: u64) -> Result<(), Errno> {
        const LARGE: u64 = LARGE_PAGE_SIZE;
        self.release_quarantine(p);
        split(&mut self.backing, chunk);
        split(&mut self.backing, chunk + LARGE);
        let old = match self.backing.get(&chunk) {
            Some(&b) if b.len == LARGE && self.frames.whole_chunks_only(b.gpa) => b,
            _ => return Ok(()),
        };
        debug_assert!(old.gpa.is_multiple_of(LARGE));
        let parts = self.parts(chunk, chunk + LARGE);
        debug_assert_eq!(
            parts.iter().map(|(s, e, _)| e - s).sum::<u64>(),
            LARGE,
            "a backed chunk lies inside VMAs"
        );
        let prot = |va: u64| {
            parts
                .iter()
                .find(|(s, e, _)| (*s..*e).contains(&va))
                .map_or(PROT_NONE, |(_, _, v)| v.prot)
        };
        let scratch = self
            .find_free(LARGE, LARGE, USER_START, USER_MMAP_TOP)
            .ok_or(Errno::ENOMEM)?;
        let runs = self.frames.alloc(LARGE, FrameSize::Small)?;
        let give_back = |mm: &mut Self, runs: &[Run]| {
            for r in runs {
                mm.frames.free(r.gpa, r.len);
            }
        };
        // 1. The new frames at the scratch address, writable.
        let mut va = scratch;
        for r in &runs {
            if let Err(e) = self.kmap(p, va, r.gpa, r.len, PROT_READ | PROT_WRITE | MAP_PAGES_4K) {
                let _ = p.unmap(scratch, LARGE);
                give_back(self, &runs);
                return Err(e);
            }
            va += r.len;
        }
        // 2. Nobody writes the old page any more; copy it.
        if self.split_lately.len() == SPLIT_LATELY {
            self.split_lately.pop_front();
        }
        self.split_lately.push_back(chunk);
        let _ = p.protect(chunk, LARGE, PROT_READ);
        let mut buf = alloc::vec![0u8; COPY_BUF];
        for off in (0..LARGE).step_by(COPY_BUF) {
            p.read_mem(chunk + off, &mut buf);
            p.write_mem(scratch + off, &buf);
        }
        let _ = p.unmap(scratch, LARGE);
        // 3. The copy in its place, then each page's protection.
        let _ = p.unmap(chunk, LARGE);
        p.publish(change(KIND_UNMAP, chunk, LARGE, old.gpa));
        let first = prot(chunk);
        let mut va = chunk;
        for r in &runs {
            if let Err(e) = self.kmap(p, va, r.gpa, r.len, first | MAP_PAGES_4K) {
                // Put the old page back: the address space is as before.
                let _ = p.unmap(chunk, LARGE);
                let _ = self.kmap(p, chunk, old.gpa, LARGE, first);
                p.publish(change(KIND_MAP, chunk, LARGE, old.gpa));
                give_back(self, &runs);
                return Err(e);
            }
            va += r.len;
        }
        for &(s, e, v) in &parts {
            if v.prot != first {
                let _ = p.protect(s, e - s, v.prot);
            }
        }
        self.backing.remove(&chunk);
        let mut va = chunk;
        for r in runs {
            p.publish(change(KIND_MAP, va, r.len, r.gpa));
            self.backing.insert(
                va,
                Backing {
                    len: r.len,
                    gpa: r.gpa,
                },
            );
            va += r.len;
        }
        // A forwarded call already in flight (a blocking `read` into this page)
        // writes through the proxy's mapping as it was when the call began: the
        // old frames stay out of the pool until every such call is answered.
        let waits = p.calls_in_flight();
        if waits.is_empty() {
            self.frames.free(old.gpa, LARGE);
        } else {
            self.quarantine.push((old.gpa, waits));
        }
        Ok(())
    }

    /// Free the quarantined frames whose forwarded calls have all been answered.
    fn release_quarantine<P: Platform>(&mut self, p: &P) {
        if self.quarantine.is_empty() {
            return;
        }
        let (done, wait): (Vec<_>, Vec<_>) = core::mem::take(&mut self.quarantine)
            .into_iter()
            .partition(|(_, calls)| calls.iter().all(|&(s, q)| p.call_answered(s, q)));
        self.quarantine = wait;
        for (gpa, _) in done {
            self.frames.free(gpa, LARGE_PAGE_SIZE);
        }
    }

    /// Remove everything in `[start, end)`: VMAs, mappings, frames. The heap
    /// reserve stays contiguous with the break: removing part of it removes the
    /// rest above, too.
    fn remove_range<P: Platform>(&mut self, p: &P, start: u64, end: u64) -> Result<(), Errno> {
        if start >= end {
            return Ok(());
        }
        let (reserve, heap_end) = (align_up(self.brk, PAGE_SIZE), self.heap_end());
        let end = if start < heap_end && end > reserve && end < heap_end {
            heap_end
        } else {
            end
        };
        // A whole-only 2 MiB page the range cuts into is split first; without
        // 4 KiB frames for that, nothing changes (ENOMEM).
        self.split_whole_chunk(p, start)?;
        self.split_whole_chunk(p, end)?;
        self.unlabel(start, end);
        split(&mut self.vmas, start);
        split(&mut self.vmas, end);
        split(&mut self.backing, start);
        split(&mut self.backing, end);
        let keys: Vec<u64> = self.vmas.range(start..end).map(|(&s, _)| s).collect();
        let mut released: Vec<(u64, u64, u64)> = Vec::new();
        for k in keys {
            if let Some(v) = self.vmas.remove(&k) {
                if let VmaKind::Passthrough { gpa, .. } = v.kind {
                    released.push((k, v.end, gpa));
                }
            }
        }
        let runs: Vec<(u64, Backing)> = self
            .backing
            .range(start..end)
            .map(|(&s, &b)| (s, b))
            .collect();
        for (s, _) in &runs {
            self.backing.remove(s);
        }
        self.unmap_runs(p, &runs);
        for (_, b) in runs {
            if !is_passthrough(b.gpa, b.len) {
                self.frames.free(b.gpa, b.len);
            }
        }
        self.release_shared(p, &released);
        self.heap_dirty = self.heap_dirty.min(self.heap_end());
        Ok(())
    }

    /// Pieces `(start, end, object)` of shared file mappings are gone: the proxy puts
    /// its reservation back over all of them (pages beyond end-of-file included), and
    /// an object no VMA uses any more is released.
    fn release_shared<P: Platform>(&mut self, p: &P, pieces: &[(u64, u64, u64)]) {
        for &(s, e, obj) in pieces {
            p.publish(change(KIND_UNMAP, s, e - s, 0));
            let left = self.shared.get_mut(&obj).map(|b| {
                *b = b.saturating_sub(e - s);
                *b
            });
            if left == Some(0) {
                self.shared.remove(&obj);
                self.sysv.remove(&obj);
                p.unshare(obj);
            }
        }
    }

    /// No VMA intersects `[start, end)`.
    pub fn is_free(&self, start: u64, end: u64) -> bool {
        if start >= end {
            return true;
        }
        if let Some((_, v)) = self.vmas.range(..start).next_back() {
            if v.end > start {
                return false;
            }
        }
        self.vmas.range(start..end).next().is_none()
    }

    /// No VMA but the heap reserve intersects `[start, end)`.
    fn is_free_but_reserve(&self, start: u64, end: u64) -> bool {
        self.parts(start, end)
            .iter()
            .all(|(_, _, v)| v.kind == VmaKind::HeapReserve)
    }

    /// Every page of `[start, end)` is in some VMA.
    fn is_covered(&self, start: u64, end: u64) -> bool {
        let mut at = start;
        while at < end {
            match self.vma_at(at) {
                Some((_, v)) => at = v.end,
                None => return false,
            }
        }
        true
    }

    /// Highest free range of `len` bytes aligned to `align` inside `[lo, hi)`.
    fn find_free(&self, len: u64, align: u64, lo: u64, hi: u64) -> Option<u64> {
        let mut top = hi;
        let fits = |gap_lo: u64, top: u64| -> Option<u64> {
            let s = align_down(top.checked_sub(len)?, align);
            (s >= gap_lo.max(lo)).then_some(s)
        };
        for (&s, v) in self.vmas.range(..hi).rev() {
            if v.end < top {
                if let Some(a) = fits(v.end, top) {
                    return Some(a);
                }
            }
            top = top.min(s);
            if top <= lo {
                return None;
            }
        }
        fits(lo, top)
    }

    /// Merge VMAs touching `[start, end)` with equal neighbours (anonymous memory
    /// and the heap only, as Linux merges it), so later `mremap`s see one VMA.
    fn merge_around(&mut self, start: u64, end: u64) {
        let first = self
            .vmas
            .range(..start)
            .next_back()
            .map(|(&s, _)| s)
            .unwrap_or(start);
        let keys: Vec<u64> = self.vmas.range(first..=end).map(|(&s, _)| s).collect();
        let mut cur: Option<u64> = None;
        for k in keys {
            let Some(&v) = self.vmas.get(&k) else {
                continue;
            };
            if let Some(c) = cur {
                let prev = self.vmas[&c];
                let mergeable = matches!(
                    prev.kind,
                    VmaKind::Anon | VmaKind::Heap | VmaKind::HeapReserve
                ) && prev.end == k
                    && prev.prot == v.prot
                    && prev.kind == v.kind
                    && prev.shared == v.shared
                    && prev.growsdown == v.growsdown;
                if mergeable {
                    self.vmas.remove(&k);
                    self.vmas.get_mut(&c).expect("present").end = v.end;
                    continue;
                }
            }
            cur = Some(k);
        }
    }

    /// Check the structure's invariants (tests).
    #[cfg(test)]
    fn assert_invariants(&self) {
        let (pool_start, pool_end) = self.frames.range();
        let backed: u64 = self
            .backing
            .values()
            .filter(|b| !is_passthrough(b.gpa, b.len))
            .map(|b| b.len)
            .sum();
        let quarantined = self.quarantine.len() as u64 * LARGE_PAGE_SIZE;
        assert_eq!(
            self.frames.available() + backed + self.tables_given + quarantined,
            pool_end - pool_start,
            "every frame is free, backing memory, a page table, or quarantined"
        );
        let mut prev_end = 0;
        for (&s, v) in &self.vmas {
            assert!(s >= prev_end && s < v.end, "VMAs ordered and disjoint");
            prev_end = v.end;
        }
        let mut prev_end = 0;
        for (&va, b) in &self.backing {
            if self.frames.whole_chunks_only(b.gpa) {
                let whole = |x: u64| x.is_multiple_of(LARGE_PAGE_SIZE);
                assert!(
                    whole(va) && whole(b.gpa) && whole(b.len),
                    "whole-only memory is backing whole 2 MiB pages: {va:#x} {b:?}"
                );
            }
            assert!(va >= prev_end, "backing disjoint");
            prev_end = va + b.len;
            let mut at = va;
            while at < va + b.len {
                let (_, v) = self.vma_containing(at).expect("backing lies inside VMAs");
                at = v.end;
            }
        }
        for (&s, l) in &self.labels {
            assert!(s < l.end, "labels are not empty");
            assert!(
                self.vma_containing(s).is_some(),
                "a label at {s:#x} outlived its mapping"
            );
        }
        let mut shared: BTreeMap<u64, u64> = BTreeMap::new();
        for (&s, v) in &self.vmas {
            if let VmaKind::Passthrough { gpa, .. } = v.kind {
                *shared.entry(gpa).or_insert(0) += v.end - s;
            }
        }
        assert_eq!(
            shared, self.shared,
            "objects count the bytes mapped from them"
        );
        for (gpa, a) in &self.sysv {
            assert!(
                self.shared.contains_key(gpa),
                "a detached attachment: {a:?}"
            );
            for (&s, v) in self.vmas.range(..a.va + a.len) {
                if matches!(v.kind, VmaKind::Passthrough { gpa: g, .. } if g == *gpa) {
                    assert!(s >= a.va && v.end <= a.va + a.len, "pieces stay in place");
                }
            }
        }
        let reserves: Vec<(u64, Vma)> = self
            .vmas
            .iter()
            .filter(|(_, v)| v.kind == VmaKind::HeapReserve)
            .map(|(&s, &v)| (s, v))
            .collect();
        assert!(reserves.len() <= 1, "one heap reserve: {reserves:x?}");
        if let Some(&(s, v)) = reserves.first() {
            assert_eq!(
                s,
                align_up(self.brk, PAGE_SIZE),
                "reserve starts at the break"
            );
            assert_eq!(v.prot, PROT_READ | PROT_WRITE);
            assert_eq!(v.end, self.heap_end());
        }
        for (&s, v) in &self.vmas {
            if v.prot != PROT_NONE && !matches!(v.kind, VmaKind::Passthrough { .. }) {
                let covered: u64 = self.backed_in(s, v.end).iter().map(|x| x.1).sum();
                assert_eq!(covered, v.end - s, "accessible VMA {s:#x} fully backed");
            }
        }
    }

    fn note<P: Platform>(&mut self, p: &P, which: Note, msg: &str) {
        if self.noted & which as u32 == 0 {
            self.noted |= which as u32;
            p.log(msg);
        }
    }
}

/// `prot` lets the application read (or, with `write`, write) its pages. Any
/// access right implies reading on x86 (there are no write- or execute-only pages
/// without protection keys).
fn allows(prot: u64, write: bool) -> bool {
    if write {
        prot & PROT_WRITE != 0
    } else {
        prot != PROT_NONE
    }
}

/// Merge `(va, len, _)` pieces into virtually contiguous `(start, end)` ranges.
fn coalesce(pieces: &[(u64, u64, u64)]) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for &(va, len, _) in pieces {
        match out.last_mut() {
            Some(last) if last.1 == va => last.1 = va + len,
            _ => out.push((va, va + len)),
        }
    }
    out
}

fn change(kind: u64, va: u64, len: u64, gpa: u64) -> Change {
    Change { kind, va, len, gpa }
}

/// The path Linux has for descriptor `fd` (`readlink /proc/self/fd/N`), if any.
fn fd_path<P: Platform>(p: &P, fd: u64) -> Option<Vec<u8>> {
    let mut link = alloc::format!("/proc/self/fd/{}", fd as i32).into_bytes();
    link.push(0);
    let mut buf = alloc::vec![0u8; 4096];
    // The proxy writes the link's text into `buf` (unified address space).
    let r = p.forward(
        syscalls::Sysno::readlinkat as u64,
        [
            crate::uapi::fcntl::AT_FDCWD,
            p.addr_of(&link),
            buf.as_mut_ptr() as u64,
            buf.len() as u64,
            0,
            0,
        ],
    );
    (r > 0 && (r as usize) < buf.len()).then(|| {
        buf.truncate(r as usize);
        buf
    })
}

/// `fcntl` `F_GETFL` and the access-mode bits of its result (`asm-generic/fcntl.h`).
const F_GETFL: u64 = 3;
const O_ACCMODE: u64 = 3;
const O_RDONLY: u64 = 0;

/// Is `fd` open on `/dev/zero` (a character device 1:5)?
fn is_dev_zero<P: Platform>(p: &P, fd: u64) -> bool {
    use crate::uapi::stat;
    let st = alloc::vec![0u8; stat::SIZE];
    // The proxy writes the stat buffer (unified address space).
    let r = p.forward(
        syscalls::Sysno::fstat as u64,
        [fd, p.addr_of(&st), 0, 0, 0, 0],
    );
    // Written behind the compiler's back: read through an opaque copy.
    let st = core::hint::black_box(st);
    let mode = u32::from_le_bytes(st[stat::ST_MODE..][..4].try_into().expect("4 bytes"));
    let rdev = u64::from_le_bytes(st[stat::ST_RDEV..][..8].try_into().expect("8 bytes"));
    r == 0 && mode & stat::S_IFMT == stat::S_IFCHR && rdev == stat::DEV_ZERO
}

/// Whether `fd` is a file on hugetlbfs (`fstatfs`, forwarded); Linux's error
/// (EBADF) when `fd` is not open.
fn is_hugetlbfs<P: Platform>(p: &P, fd: u64) -> Result<bool, Errno> {
    use crate::uapi::statfs;
    let buf = alloc::vec![0u8; statfs::SIZE];
    // The proxy writes the buffer (unified address space).
    let r = p.forward(
        syscalls::Sysno::fstatfs as u64,
        [fd, p.addr_of(&buf), 0, 0, 0, 0],
    );
    if r < 0 {
        return Err(Errno::from_code(-r as i32).unwrap_or(Errno::EBADF));
    }
    // Written behind the compiler's back: read through an opaque copy.
    let buf = core::hint::black_box(buf);
    let f_type = u64::from_le_bytes(buf[statfs::F_TYPE..][..8].try_into().expect("8 bytes"));
    Ok(f_type == statfs::HUGETLBFS_MAGIC)
}

/// Fill mapped, writable user memory `[va, va+len)` with the file's bytes from `off`
/// by forwarded `pread64` calls straight into place; bytes past the end of the file
/// stay as they are (zero).
pub fn read_file_into<P: Platform>(
    p: &P,
    fd: u64,
    va: u64,
    len: u64,
    off: u64,
) -> Result<(), Errno> {
    let mut done = 0;
    while done < len {
        let r = p.forward(
            syscalls::Sysno::pread64 as u64,
            [fd, va + done, len - done, off + done, 0, 0],
        );
        if r < 0 {
            return Err(crate::errno::from_result(r));
        }
        if r == 0 {
            break;
        }
        done += r as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::{FakePlatform, KCall};
    use crate::uapi::signal;
    use alloc::vec;

    const MB: u64 = 1 << 20;
    const RW: u64 = PROT_READ | PROT_WRITE;
    const ANON: u64 = MAP_PRIVATE | MAP_ANONYMOUS;

    fn setup(mem: u64) -> (AddressSpace, FakePlatform) {
        let p = FakePlatform::new();
        let mut mm = AddressSpace::new(FramePool::new(16 * MB, 16 * MB + mem));
        mm.init(&p).unwrap();
        (mm, p)
    }

    fn anon(
        mm: &mut AddressSpace,
        p: &FakePlatform,
        addr: u64,
        len: u64,
        flags: u64,
    ) -> Result<u64, Errno> {
        mm.mmap(p, addr, len, RW, flags, u64::MAX, 0)
    }

    #[test]
    fn init_gives_kernel_min_two_mib_of_tables() {
        let (mm, p) = setup(64 * MB);
        assert_eq!(mm.tables_given(), TABLE_GRANT);
        assert!(matches!(
            p.take_calls()[..],
            [KCall::GiveTables {
                len: TABLE_GRANT,
                ..
            }]
        ));
    }

    #[test]
    fn map_retries_after_giving_tables() {
        let p = FakePlatform::new();
        let mut mm = AddressSpace::new(FramePool::new(16 * MB, 80 * MB));
        // No tables at all: the first map fails with ENOMEM inside, libos gives a
        // chunk and retries.
        let a = anon(&mut mm, &p, 0, 8 * PAGE_SIZE, ANON).unwrap();
        let calls = p.take_calls();
        assert!(matches!(calls[0], KCall::Map { .. }));
        assert!(calls.iter().any(|c| matches!(c, KCall::GiveTables { .. })));
        assert!(matches!(calls.last(), Some(KCall::Map { .. })));
        assert!(p.mapping(a).is_some());
    }

    #[test]
    fn mmap_is_top_down_and_published() {
        let (mut mm, p) = setup(64 * MB);
        p.take_published();
        let a = anon(&mut mm, &p, 0, 3 * PAGE_SIZE, ANON).unwrap();
        assert_eq!(a, USER_MMAP_TOP - 3 * PAGE_SIZE);
        let b = anon(&mut mm, &p, 0, PAGE_SIZE, ANON).unwrap();
        assert_eq!(b, a - PAGE_SIZE);
        let pubs = p.take_published();
        assert_eq!(pubs.len(), 2);
        assert_eq!(
            (pubs[0].kind, pubs[0].va, pubs[0].len),
            (KIND_MAP, a, 3 * PAGE_SIZE)
        );
        assert_eq!(pubs[0].gpa, mm.translate(a).unwrap());
        // Adjacent anonymous VMAs with equal protection merge.
        assert_eq!(mm.vmas().count(), 1);
    }

    #[test]
    fn mmap_honours_a_free_hint_and_ignores_a_taken_one() {
        let (mut mm, p) = setup(64 * MB);
        let hint = 0x7_0000_0000_u64;
        assert_eq!(anon(&mut mm, &p, hint + 123, PAGE_SIZE, ANON), Ok(hint));
        let again = anon(&mut mm, &p, hint, PAGE_SIZE, ANON).unwrap();
        assert_ne!(again, hint);
        assert!((USER_START..USER_MMAP_TOP).contains(&again));
    }

    #[test]
    fn map_fixed_replaces_and_noreplace_refuses() {
        let (mut mm, p) = setup(64 * MB);
        let a = anon(&mut mm, &p, 0, 4 * PAGE_SIZE, ANON).unwrap();
        p.poke(a, b"old");
        p.poke(a + 3 * PAGE_SIZE, b"keep");
        assert_eq!(
            anon(
                &mut mm,
                &p,
                a + PAGE_SIZE,
                PAGE_SIZE,
                ANON | MAP_FIXED_NOREPLACE
            ),
            Err(Errno::EEXIST)
        );
        // Replace the first two pages: their contents are new and zero.
        assert_eq!(anon(&mut mm, &p, a, 2 * PAGE_SIZE, ANON | MAP_FIXED), Ok(a));
        assert_eq!(p.peek(a, 3), [0, 0, 0]);
        assert_eq!(p.peek(a + 3 * PAGE_SIZE, 4), b"keep");
        assert_eq!(
            anon(&mut mm, &p, a + 1, PAGE_SIZE, ANON | MAP_FIXED),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            anon(&mut mm, &p, 0x1000, PAGE_SIZE, ANON | MAP_FIXED),
            Err(Errno::EPERM)
        );
        assert_eq!(
            anon(
                &mut mm,
                &p,
                USER_END - PAGE_SIZE,
                2 * PAGE_SIZE,
                ANON | MAP_FIXED
            ),
            Err(Errno::ENOMEM)
        );
    }

    #[test]
    fn mmap_argument_errors_match_linux() {
        let (mut mm, p) = setup(64 * MB);
        assert_eq!(anon(&mut mm, &p, 0, 0, ANON), Err(Errno::EINVAL));
        assert_eq!(
            anon(&mut mm, &p, 0, PAGE_SIZE, MAP_ANONYMOUS),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            anon(&mut mm, &p, 0, PAGE_SIZE, MAP_ANONYMOUS | 0x4),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            mm.mmap(&p, 0, PAGE_SIZE, RW, ANON, 0, 1),
            Err(Errno::EINVAL)
        );
        assert_eq!(anon(&mut mm, &p, 0, u64::MAX, ANON), Err(Errno::ENOMEM));
        assert_eq!(
            anon(
                &mut mm,
                &p,
                0,
                PAGE_SIZE,
                MAP_SHARED_VALIDATE | MAP_ANONYMOUS | 1 << 22
            ),
            Err(Errno::EOPNOTSUPP)
        );
        assert!(anon(&mut mm, &p, 0, PAGE_SIZE, MAP_SHARED | MAP_ANONYMOUS).is_ok());
    }

    #[test]
    fn exhausted_pool_is_enomem() {
        let (mut mm, p) = setup(8 * MB);
        assert_eq!(anon(&mut mm, &p, 0, 64 * MB, ANON), Err(Errno::ENOMEM));
        // Nothing leaked: a fitting request still works.
        assert!(anon(&mut mm, &p, 0, 4 * MB, ANON).is_ok());
        assert!(mm.vmas().count() == 1);
    }

    #[test]
    fn large_anonymous_maps_are_two_mib_aligned_and_use_large_frames() {
        let (mut mm, p) = setup(64 * MB);
        anon(&mut mm, &p, 0, PAGE_SIZE, ANON).unwrap(); // disturb the alignment
        p.take_calls();
        let a = anon(&mut mm, &p, 0, 5 * MB, ANON).unwrap();
        assert_eq!(a % LARGE_PAGE_SIZE, 0);
        let maps: Vec<KCall> = p
            .take_calls()
            .into_iter()
            .filter(|c| matches!(c, KCall::Map { .. }))
            .collect();
        // 4 MiB of chunks in one call, the 1 MiB tail in 4 KiB frames.
        let KCall::Map { va, gpa, len, .. } = maps[0] else {
            unreachable!()
        };
        assert_eq!((va, len), (a, 4 * MB));
        assert_eq!(gpa % LARGE_PAGE_SIZE, 0);
        assert_eq!(maps.len(), 2);
    }

    fn map_calls(p: &FakePlatform) -> Vec<(u64, u64, u64, u64)> {
        p.take_calls()
            .into_iter()
            .filter_map(|c| match c {
                KCall::Map { va, gpa, len, prot } => Some((va, gpa, len, prot)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn page_size_4k_maps_with_small_pages_only() {
        let (mut mm, p) = setup(64 * MB);
        mm.set_page_size(PAGE_SIZE);
        p.take_calls();
        let a = anon(&mut mm, &p, 0, 6 * MB, ANON).unwrap();
        let maps = map_calls(&p);
        assert!(!maps.is_empty());
        assert!(maps.iter().all(|m| m.3 & MAP_PAGES_4K != 0), "{maps:x?}");
        assert_eq!(p.page_sizes(a, 6 * MB), [6 * MB, 0, 0]);
        assert_eq!(mm.page_sizes(&p, a, 6 * MB), [6 * MB, 0, 0]);
    }

    #[test]
    fn page_size_2m_is_the_default_and_maps_large_pages() {
        let (mut mm, p) = setup(64 * MB);
        assert_eq!(mm.page_size(), LARGE_PAGE_SIZE);
        let a = anon(&mut mm, &p, 0, 6 * MB, ANON).unwrap();
        assert_eq!(p.page_sizes(a, 6 * MB), [0, 6 * MB, 0]);
        assert!(map_calls(&p)
            .iter()
            .all(|m| m.3 & (MAP_PAGES_4K | MAP_PAGES_1G) == 0));
    }

    #[test]
    fn page_size_1g_places_and_backs_a_gigabyte_with_one_huge_page() {
        const GB: u64 = 1 << 30;
        let p = FakePlatform::new();
        // The pool spans [16M, 16M + 2G + 64M): one aligned gigabyte, [1G, 2G).
        let mut mm = AddressSpace::new(FramePool::new(16 * MB, 16 * MB + 2 * GB + 64 * MB));
        mm.init(&p).unwrap();
        mm.set_page_size(HUGE_PAGE_SIZE);
        anon(&mut mm, &p, 0, PAGE_SIZE, ANON).unwrap(); // disturb the alignment
        p.take_calls();
        let a = anon(&mut mm, &p, 0, GB + 4 * MB, ANON).unwrap();
        assert_eq!(a % GB, 0, "placed 1 GiB aligned");
        let maps = map_calls(&p);
        assert_eq!(maps[0].0, a);
        assert_eq!(
            (maps[0].1, maps[0].2),
            (GB, GB),
            "one aligned gigabyte of frames"
        );
        assert!(maps[0].3 & MAP_PAGES_1G != 0);
        assert_eq!(p.page_sizes(a, GB + 4 * MB), [0, 4 * MB, GB]);
        assert!(p.st.borrow().logs.is_empty());
        // No aligned gigabyte is left: 2 MiB pages, said once.
        let c = anon(&mut mm, &p, 0, GB, ANON).unwrap();
        assert_eq!(c % GB, 0);
        assert_eq!(p.page_sizes(c, GB), [0, GB, 0]);
        let logs = p.st.borrow().logs.clone();
        assert_eq!(logs.len(), 1, "{logs:?}");
        assert!(logs[0].contains("--page-size 1g"), "{logs:?}");
        assert_eq!(anon(&mut mm, &p, 0, GB, ANON), Err(Errno::ENOMEM));
        mm.assert_invariants();
    }

    #[test]
    fn out_of_memory_is_enomem_with_one_message_naming_mem() {
        let (mut mm, p) = setup(16 * MB);
        assert_eq!(anon(&mut mm, &p, 0, 64 * MB, ANON), Err(Errno::ENOMEM));
        assert_eq!(anon(&mut mm, &p, 0, 32 * MB, ANON), Err(Errno::ENOMEM));
        let logs = p.st.borrow().logs.clone();
        assert_eq!(logs.len(), 1, "{logs:?}");
        assert!(
            logs[0].contains("--mem") && logs[0].contains("64 MiB"),
            "{logs:?}"
        );
        // Nothing was taken: what fits still maps.
        assert!(anon(&mut mm, &p, 0, 8 * MB, ANON).is_ok());
        mm.assert_invariants();
    }

    #[test]
    fn populate_noreserve_and_stack_flags_map_memory_at_once() {
        let (mut mm, p) = setup(64 * MB);
        for f in [MAP_POPULATE, MAP_NORESERVE, MAP_STACK, MAP_LOCKED] {
            let a = anon(&mut mm, &p, 0, 3 * PAGE_SIZE, ANON | f).unwrap();
            for i in 0..3 {
                assert!(p.mapping(a + i * PAGE_SIZE).is_some(), "flag {f:#x}");
            }
        }
    }

    #[test]
    fn growsdown_mapping_grows_on_a_fault_just_below_it() {
        let (mut mm, p) = setup(64 * MB);
        let a = anon(&mut mm, &p, 0, 4 * PAGE_SIZE, ANON | MAP_GROWSDOWN).unwrap();
        assert!(mm.vma_at(a).unwrap().1.growsdown);
        // A fault two pages below: the VMA grows down to that page, backed.
        assert_eq!(mm.page_fault(&p, a - 2 * PAGE_SIZE + 8, 0), Fault::Retry);
        let (s, v) = mm.vma_at(a).unwrap();
        assert_eq!((s, v.end), (a - 2 * PAGE_SIZE, a + 4 * PAGE_SIZE));
        assert!(v.growsdown);
        assert!(p.mapping(a - 2 * PAGE_SIZE).is_some());
        // Not beyond the stack limit, nor for an ordinary mapping.
        assert_eq!(mm.page_fault(&p, a - 9 * MB, 0), Fault::Default);
        let b = anon(&mut mm, &p, 0, PAGE_SIZE, ANON).unwrap();
        assert_eq!(mm.page_fault(&p, b - PAGE_SIZE, 0), Fault::Default);
        // Not into the guard gap above another mapping.
        let c = anon(&mut mm, &p, 0, PAGE_SIZE, ANON).unwrap();
        let d = mm
            .mmap(
                &p,
                c + 2 * PAGE_SIZE,
                PAGE_SIZE,
                RW,
                ANON | MAP_GROWSDOWN | MAP_FIXED,
                u64::MAX,
                0,
            )
            .unwrap();
        assert_eq!(mm.page_fault(&p, d - PAGE_SIZE, PF_FETCH), Fault::Default);
        // mprotect with PROT_GROWSDOWN reaches the start of a growsdown VMA.
        assert_eq!(
            mm.mprotect(&p, a, PAGE_SIZE, PROT_READ | PROT_GROWSDOWN),
            Ok(())
        );
        assert_eq!(mm.vma_at(a - 2 * PAGE_SIZE).unwrap().1.prot, PROT_READ);
        mm.assert_invariants();
    }

    #[test]
    fn mremap_dontunmap_moves_the_pages_and_leaves_zero_memory_behind() {
        let (mut mm, p) = setup(64 * MB);
        let a = anon(&mut mm, &p, 0, 4 * PAGE_SIZE, ANON).unwrap();
        p.poke(a + PAGE_SIZE, b"moved");
        let dontunmap = MREMAP_MAYMOVE | MREMAP_DONTUNMAP;
        let to = mm
            .mremap(&p, a, 4 * PAGE_SIZE, 4 * PAGE_SIZE, dontunmap, 0)
            .unwrap();
        assert_ne!(to, a);
        assert_eq!(p.peek(to + PAGE_SIZE, 5), b"moved");
        assert_eq!(p.peek(a + PAGE_SIZE, 5), [0; 5], "the old range reads zero");
        assert_eq!(mm.vma_at(a).unwrap().1.prot, RW);
        // To a fixed place; a changed length or a missing MAYMOVE is EINVAL.
        let b = anon(&mut mm, &p, 0, 64 * PAGE_SIZE, ANON).unwrap();
        assert_eq!(
            mm.mremap(
                &p,
                to,
                4 * PAGE_SIZE,
                4 * PAGE_SIZE,
                dontunmap | MREMAP_FIXED,
                b
            ),
            Ok(b)
        );
        assert_eq!(p.peek(b + PAGE_SIZE, 5), b"moved");
        assert_eq!(
            mm.mremap(&p, b, 4 * PAGE_SIZE, 8 * PAGE_SIZE, dontunmap, 0),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            mm.mremap(&p, b, 4 * PAGE_SIZE, 4 * PAGE_SIZE, MREMAP_DONTUNMAP, 0),
            Err(Errno::EINVAL)
        );
        mm.assert_invariants();
        p.assert_mirror_matches();
    }

    #[test]
    fn labels_follow_their_mapping_through_munmap_and_mremap() {
        let (mut mm, p) = setup(64 * MB);
        let a = anon(&mut mm, &p, 0, 8 * PAGE_SIZE, ANON).unwrap();
        mm.label(a, a + 8 * PAGE_SIZE, b"/lib/x.so");
        mm.munmap(&p, a + 2 * PAGE_SIZE, PAGE_SIZE).unwrap();
        assert_eq!(mm.label_at(a), Some(&b"/lib/x.so"[..]));
        assert_eq!(mm.label_at(a + 2 * PAGE_SIZE), None);
        assert_eq!(mm.label_at(a + 3 * PAGE_SIZE), Some(&b"/lib/x.so"[..]));
        // Moving the tail takes its name along.
        let to = mm
            .mremap(
                &p,
                a + 4 * PAGE_SIZE,
                4 * PAGE_SIZE,
                16 * PAGE_SIZE,
                MREMAP_MAYMOVE | MREMAP_FIXED,
                a - 64 * PAGE_SIZE,
            )
            .unwrap();
        assert_eq!(to, a - 64 * PAGE_SIZE);
        assert_eq!(mm.label_at(a + 4 * PAGE_SIZE), None);
        assert_eq!(mm.label_at(to + PAGE_SIZE), Some(&b"/lib/x.so"[..]));
        assert_eq!(
            mm.label_at(to + 4 * PAGE_SIZE),
            None,
            "the grown part is new"
        );
        mm.assert_invariants();
        // Mapping over it removes the name.
        anon(&mut mm, &p, a, PAGE_SIZE, ANON | MAP_FIXED).unwrap();
        assert_eq!(mm.label_at(a), None);
        mm.assert_invariants();
    }

    #[test]
    fn munmap_in_the_middle_splits_the_vma_and_frees_frames() {
        let (mut mm, p) = setup(64 * MB);
        let a = anon(&mut mm, &p, 0, 6 * PAGE_SIZE, ANON).unwrap();
        let before = mm.frames().available();
        p.take_published();
        mm.munmap(&p, a + 2 * PAGE_SIZE, 2 * PAGE_SIZE).unwrap();
        let v: Vec<(u64, u64)> = mm.vmas().map(|(s, v)| (s, v.end)).collect();
        assert_eq!(
            v,
            [
                (a, a + 2 * PAGE_SIZE),
                (a + 4 * PAGE_SIZE, a + 6 * PAGE_SIZE)
            ]
        );
        assert_eq!(mm.frames().available(), before + 2 * PAGE_SIZE);
        assert!(p.mapping(a + 2 * PAGE_SIZE).is_none());
        assert!(p.mapping(a + PAGE_SIZE).is_some() && p.mapping(a + 4 * PAGE_SIZE).is_some());
        let pubs = p.take_published();
        assert_eq!(pubs.len(), 1);
        assert_eq!(
            (pubs[0].kind, pubs[0].va, pubs[0].len),
            (KIND_UNMAP, a + 2 * PAGE_SIZE, 2 * PAGE_SIZE)
        );
        // Holes are fine; bad arguments are not.
        assert_eq!(mm.munmap(&p, a, 8 * PAGE_SIZE), Ok(()));
        assert_eq!(mm.vmas().count(), 0);
        assert_eq!(mm.munmap(&p, a + 1, PAGE_SIZE), Err(Errno::EINVAL));
        assert_eq!(mm.munmap(&p, a, 0), Err(Errno::EINVAL));
    }

    #[test]
    fn reused_frames_come_back_zeroed() {
        let (mut mm, p) = setup(64 * MB);
        let a = anon(&mut mm, &p, 0, PAGE_SIZE, ANON).unwrap();
        p.poke(a, b"secret");
        let gpa = mm.translate(a).unwrap();
        mm.munmap(&p, a, PAGE_SIZE).unwrap();
        let b = anon(&mut mm, &p, 0, PAGE_SIZE, ANON).unwrap();
        assert_eq!(mm.translate(b), Some(gpa), "the freed frame is reused");
        assert_eq!(p.peek(b, 6), [0; 6]);
    }

    #[test]
    fn mprotect_changes_protection_and_refuses_holes() {
        let (mut mm, p) = setup(64 * MB);
        let a = anon(&mut mm, &p, 0, 4 * PAGE_SIZE, ANON).unwrap();
        mm.mprotect(&p, a + PAGE_SIZE, PAGE_SIZE, PROT_READ)
            .unwrap();
        assert_eq!(p.mapping(a + PAGE_SIZE).unwrap().1, PROT_READ);
        assert_eq!(p.mapping(a).unwrap().1, RW);
        assert_eq!(mm.vmas().count(), 3);
        mm.munmap(&p, a + 2 * PAGE_SIZE, PAGE_SIZE).unwrap();
        assert_eq!(
            mm.mprotect(&p, a, 4 * PAGE_SIZE, PROT_READ),
            Err(Errno::ENOMEM)
        );
        assert_eq!(p.mapping(a).unwrap().1, RW, "nothing changed");
        assert_eq!(
            mm.mprotect(&p, a + 1, PAGE_SIZE, PROT_READ),
            Err(Errno::EINVAL)
        );
        assert_eq!(mm.mprotect(&p, a, PAGE_SIZE, 0x10), Err(Errno::EINVAL));
        // Back to RW merges the pieces again.
        mm.mprotect(&p, a, 2 * PAGE_SIZE, RW).unwrap();
        assert_eq!(mm.vmas().count(), 2);
    }

    #[test]
    fn prot_none_is_a_reservation_until_mprotect() {
        let (mut mm, p) = setup(64 * MB);
        let before = mm.frames().available();
        let a = mm
            .mmap(&p, 0, 1 << 30, PROT_NONE, ANON | MAP_NORESERVE, u64::MAX, 0)
            .unwrap();
        assert_eq!(
            mm.frames().available(),
            before,
            "a reservation takes no frames"
        );
        assert!(p.mapping(a).is_none());
        mm.mprotect(&p, a, 3 * PAGE_SIZE, RW).unwrap();
        assert_eq!(p.mapping(a + 2 * PAGE_SIZE).unwrap().1, RW);
        assert!(p.mapping(a + 3 * PAGE_SIZE).is_none());
        assert_eq!(mm.check_access(a, 3 * PAGE_SIZE, true), Ok(()));
        assert_eq!(mm.check_access(a, 4 * PAGE_SIZE, false), Err(Errno::EFAULT));
        mm.munmap(&p, a, 1 << 30).unwrap();
        assert_eq!(mm.frames().available(), before);
        p.assert_mirror_matches();
    }

    #[test]
    fn madvise_dontneed_zeroes_even_read_only_pages() {
        let (mut mm, p) = setup(64 * MB);
        let a = anon(&mut mm, &p, 0, 2 * PAGE_SIZE, ANON).unwrap();
        p.poke(a, b"data");
        p.poke(a + PAGE_SIZE, b"more");
        mm.mprotect(&p, a + PAGE_SIZE, PAGE_SIZE, PROT_READ)
            .unwrap();
        mm.madvise(&p, a, 2 * PAGE_SIZE, MADV_DONTNEED).unwrap();
        assert_eq!(p.peek(a, 4), [0; 4]);
        assert_eq!(p.peek(a + PAGE_SIZE, 4), [0; 4]);
        assert_eq!(p.mapping(a + PAGE_SIZE).unwrap().1, PROT_READ);
        assert_eq!(mm.madvise(&p, a, PAGE_SIZE, MADV_HUGEPAGE), Ok(()));
        assert_eq!(mm.madvise(&p, a, PAGE_SIZE, 77), Err(Errno::EINVAL));
        assert_eq!(
            mm.madvise(&p, a + 1, PAGE_SIZE, MADV_NORMAL),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            mm.madvise(&p, a, 3 * PAGE_SIZE, MADV_NORMAL),
            Err(Errno::ENOMEM)
        );
        assert_eq!(
            mm.madvise(&p, a, PAGE_SIZE, MADV_REMOVE),
            Err(Errno::EINVAL)
        );
    }

    #[test]
    fn brk_grows_shrinks_and_refuses_collisions() {
        let (mut mm, p) = setup(64 * MB);
        let start = 0x40_1234u64;
        mm.set_brk_start(start);
        let b0 = mm.brk(&p, 0);
        assert_eq!(b0, 0x40_2000);
        assert_eq!(mm.brk(&p, b0 + 5000), b0 + 5000);
        assert!(p.mapping(b0 + PAGE_SIZE).is_some());
        p.poke(b0 + 4999, b"x");
        // Shrink: the second page leaves the heap (it stays backed, as reserve).
        assert_eq!(mm.brk(&p, b0 + 10), b0 + 10);
        assert_eq!(
            mm.check_access(b0 + PAGE_SIZE, 1, false),
            Err(Errno::EFAULT)
        );
        // Grow again: zero memory.
        assert_eq!(mm.brk(&p, b0 + 5000), b0 + 5000);
        assert_eq!(p.peek(b0 + 4999, 1), [0]);
        // Below the start or into another mapping: the old break comes back.
        assert_eq!(mm.brk(&p, start - 1), b0 + 5000);
        anon(&mut mm, &p, b0 + 4 * PAGE_SIZE, PAGE_SIZE, ANON | MAP_FIXED).unwrap();
        assert_eq!(mm.brk(&p, b0 + 8 * PAGE_SIZE), b0 + 5000);
        assert_eq!(mm.current_brk(), b0 + 5000);
        mm.assert_invariants();
        p.assert_mirror_matches();
    }

    fn maps(calls: &[KCall]) -> Vec<(u64, u64, u64)> {
        calls
            .iter()
            .filter_map(|c| match *c {
                KCall::Map { va, gpa, len, .. } => Some((va, gpa, len)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn brk_growing_in_small_steps_maps_two_mib_at_a_time() {
        let (mut mm, p) = setup(64 * MB);
        mm.set_brk_start(0x40_1234);
        let b0 = mm.brk(&p, 0);
        p.take_calls();
        p.take_published();
        let step = 132 << 10;
        let steps = 100u64;
        for i in 1..=steps {
            let want = b0 + i * step + 8;
            assert_eq!(
                mm.brk(&p, want),
                want,
                "step {i}: brk returns what was asked"
            );
            assert_eq!(mm.current_brk(), want);
            // The new heap memory is there and zero; the break's page too.
            let old = b0 + (i - 1) * step + 8;
            assert_eq!(p.peek(old, 16), [0; 16]);
            assert_eq!(p.peek(want - 16, 16), [0; 16]);
            p.poke(old, &[0xab; 16]);
            // Backed up to the next 2 MiB boundary beyond the break.
            assert_eq!(mm.heap_end(), align_up(want, LARGE_PAGE_SIZE));
            assert!(p.mapping(mm.heap_end() - PAGE_SIZE).is_some());
            mm.assert_invariants();
        }
        let calls = p.take_calls();
        let m = maps(&calls);
        // 13.2 MiB in 132 KiB steps: the first piece up to 0x60_0000, then one
        // 2 MiB chunk per boundary crossed (each 2 MiB aligned, a large page).
        let crossed = (align_up(b0 + steps * step + 8, LARGE_PAGE_SIZE) - 0x60_0000) / (2 * MB);
        assert_eq!(m.len() as u64, 1 + crossed, "{m:x?}");
        assert!(m.len() * 10 < steps as usize);
        for &(va, gpa, len) in &m[1..] {
            assert_eq!((va % (2 * MB), gpa % (2 * MB), len), (0, 0, 2 * MB));
        }
        assert!(!calls.iter().any(|c| matches!(c, KCall::Unmap { .. })));
        // Every chunk reaches the proxy in a piece it populates at once (≥ 256 KiB).
        let pubs = p.take_published();
        assert!(pubs[1..]
            .iter()
            .all(|c| c.kind == KIND_MAP && c.len == 2 * MB));
        p.assert_mirror_matches();
    }

    #[test]
    fn brk_shrink_keeps_the_backing_and_regrowth_reads_zero() {
        let (mut mm, p) = setup(64 * MB);
        mm.set_brk_start(0x40_0000);
        let b0 = mm.brk(&p, 0);
        assert_eq!(mm.brk(&p, b0 + 300_000), b0 + 300_000);
        p.poke(b0, b"keep");
        p.poke(b0 + 100_000, &[0x11; 64]);
        p.poke(b0 + 299_990, &[0x22; 10]);
        p.take_calls();
        let sb = b0 + 50_000;
        assert_eq!(mm.brk(&p, sb), sb);
        assert_eq!(mm.current_brk(), sb);
        assert_eq!(p.take_calls(), [], "shrinking is no kernel call");
        assert!(
            p.mapping(b0 + 100_000).is_some(),
            "still mapped above the break"
        );
        assert_eq!(mm.heap_end(), 0x60_0000);
        mm.assert_invariants();
        // The break's own page keeps its contents, as on Linux.
        assert_eq!(mm.brk(&p, b0 + 280_000), b0 + 280_000);
        assert_eq!(p.peek(b0, 4), b"keep");
        assert!(maps(&p.take_calls()).is_empty(), "regrowth maps nothing");
        assert_eq!(
            p.peek(b0 + 100_000, 64),
            [0; 64],
            "released pages read zero"
        );
        // Beyond the earlier break the reserve was never dirtied; up to it, zeroed.
        assert_eq!(mm.brk(&p, b0 + 300_000), b0 + 300_000);
        assert_eq!(p.peek(b0 + 299_990, 10), [0; 10]);
        mm.assert_invariants();
        // A shrink by far more than 2 MiB gives the excess back.
        let top = b0 + 20 * MB;
        assert_eq!(mm.brk(&p, top), top);
        let avail = mm.frames().available();
        assert_eq!(mm.brk(&p, b0 + 8), b0 + 8);
        assert_eq!(mm.heap_end(), 0x60_0000 + 2 * MB);
        assert!(mm.frames().available() >= avail + 16 * MB);
        assert_eq!(mm.brk(&p, top), top);
        assert_eq!(p.peek(top - 16, 16), [0; 16]);
        assert_eq!(p.peek(b0 + 3 * MB, 16), [0; 16]);
        mm.assert_invariants();
        p.assert_mirror_matches();
    }

    #[test]
    fn map_fixed_into_the_heap_reserve_replaces_it() {
        let (mut mm, p) = setup(64 * MB);
        mm.set_brk_start(0x40_0000);
        let b0 = mm.brk(&p, 0);
        assert_eq!(mm.brk(&p, b0 + 5000), b0 + 5000);
        assert_eq!(mm.heap_end(), 0x60_0000);
        // For the application the reserve is unmapped: no access, no mprotect.
        let r = 0x50_0000u64;
        assert_eq!(mm.check_access(r, 8, false), Err(Errno::EFAULT));
        assert!(mm.vma_at(r).is_none());
        assert_eq!(mm.mprotect(&p, r, PAGE_SIZE, PROT_READ), Err(Errno::ENOMEM));
        p.poke(r, b"beyond");
        assert_eq!(
            mm.madvise(&p, r, PAGE_SIZE, MADV_DONTNEED),
            Err(Errno::ENOMEM)
        );
        assert!(p.st.borrow().logs.is_empty(), "{:?}", p.st.borrow().logs);
        // A hint there is not taken: mmap never places a mapping in the reserve.
        let h = anon(&mut mm, &p, r, PAGE_SIZE, ANON).unwrap();
        assert!(h >= mm.heap_end() || h + PAGE_SIZE <= b0, "{h:#x}");
        assert_eq!(mm.heap_end(), 0x60_0000);
        // MAP_FIXED replaces it; the reserve ends where the mapping starts.
        p.poke(r, b"reserve");
        assert_eq!(anon(&mut mm, &p, r, PAGE_SIZE, ANON | MAP_FIXED), Ok(r));
        assert_eq!(p.peek(r, 7), [0; 7]);
        assert_eq!(mm.vma_at(r).unwrap().1.kind, VmaKind::Anon);
        assert_eq!(mm.heap_end(), r);
        assert!(
            p.mapping(r + PAGE_SIZE).is_none(),
            "the reserve above is gone"
        );
        mm.assert_invariants();
        // The break grows up to the mapping, not into it.
        assert_eq!(mm.brk(&p, r), r);
        assert_eq!(mm.brk(&p, r + 1), r);
        assert_eq!(mm.brk(&p, b0 + 5000), b0 + 5000);
        // MAP_FIXED_NOREPLACE into the reserve succeeds, as into free space.
        let q = 0x48_0000u64;
        assert_eq!(
            anon(&mut mm, &p, q, 2 * PAGE_SIZE, ANON | MAP_FIXED_NOREPLACE),
            Ok(q)
        );
        assert_eq!(mm.heap_end(), q);
        mm.assert_invariants();
        // A mapping above the break before it grows bounds the over-extension.
        mm.munmap(&p, q, 2 * PAGE_SIZE).unwrap();
        assert_eq!(mm.brk(&p, q + 8), q + 8);
        assert_eq!(mm.heap_end(), r);
        mm.assert_invariants();
        p.assert_mirror_matches();
    }

    #[test]
    fn mremap_shrinks_grows_and_moves_keeping_contents() {
        let (mut mm, p) = setup(64 * MB);
        let a = anon(&mut mm, &p, 0, 2 * PAGE_SIZE, ANON).unwrap();
        p.poke(a, b"hello");
        // Shrink in place.
        assert_eq!(mm.mremap(&p, a, 2 * PAGE_SIZE, PAGE_SIZE, 0, 0), Ok(a));
        assert!(p.mapping(a + PAGE_SIZE).is_none());
        // Grow in place (the pages above are free).
        assert_eq!(mm.mremap(&p, a, PAGE_SIZE, 3 * PAGE_SIZE, 0, 0), Ok(a));
        assert_eq!(p.peek(a, 5), b"hello");
        assert_eq!(p.peek(a + 2 * PAGE_SIZE, 1), [0]);
        let b = anon(&mut mm, &p, 0x5000_0000, PAGE_SIZE, ANON).unwrap();
        p.poke(b, b"move me");
        assert_eq!(mm.mremap(&p, b, PAGE_SIZE, 2 * PAGE_SIZE, 0, 0), Ok(b));
        // Blocked above: only MAYMOVE helps, and the frames travel without a copy.
        anon(&mut mm, &p, b + 2 * PAGE_SIZE, PAGE_SIZE, ANON | MAP_FIXED).unwrap();
        assert_eq!(
            mm.mremap(&p, b, 2 * PAGE_SIZE, 4 * PAGE_SIZE, 0, 0),
            Err(Errno::ENOMEM)
        );
        let gpa = mm.translate(b).unwrap();
        let c = mm
            .mremap(&p, b, 2 * PAGE_SIZE, 4 * PAGE_SIZE, MREMAP_MAYMOVE, 0)
            .unwrap();
        assert_ne!(c, b);
        assert_eq!(mm.translate(c), Some(gpa));
        assert_eq!(p.peek(c, 7), b"move me");
        assert_eq!(p.peek(c + 3 * PAGE_SIZE, 1), [0]);
        assert!(p.mapping(b).is_none());
        // MREMAP_FIXED.
        let d = 0x6000_0000u64;
        assert_eq!(
            mm.mremap(
                &p,
                c,
                4 * PAGE_SIZE,
                4 * PAGE_SIZE,
                MREMAP_MAYMOVE | MREMAP_FIXED,
                d
            ),
            Ok(d)
        );
        assert_eq!(p.peek(d, 7), b"move me");
        assert_eq!(
            mm.mremap(&p, d, PAGE_SIZE, PAGE_SIZE, MREMAP_FIXED, c),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            mm.mremap(&p, 0x7000_0000, PAGE_SIZE, PAGE_SIZE, 0, 0),
            Err(Errno::EFAULT)
        );
        p.assert_mirror_matches();
    }

    #[test]
    fn private_file_mapping_is_filled_by_forwarded_reads() {
        let (mut mm, p) = setup(64 * MB);
        let mut file = vec![0u8; 3 * PAGE_SIZE as usize + 100];
        file[PAGE_SIZE as usize..PAGE_SIZE as usize + 5].copy_from_slice(b"page1");
        *file.last_mut().unwrap() = 0x7f;
        p.add_file(5, file);
        let a = mm
            .mmap(&p, 0, 3 * PAGE_SIZE, PROT_READ, MAP_PRIVATE, 5, PAGE_SIZE)
            .unwrap();
        assert_eq!(p.peek(a, 5), b"page1");
        assert_eq!(
            p.peek(a + 2 * PAGE_SIZE + 99, 2),
            [0x7f, 0],
            "past EOF is zero"
        );
        assert_eq!(p.mapping(a).unwrap().1, PROT_READ);
        assert_eq!(mm.vma_at(a).unwrap().1.kind, VmaKind::File);
        // A bad fd fails like Linux and leaves nothing behind.
        assert_eq!(
            mm.mmap(&p, 0, PAGE_SIZE, PROT_READ, MAP_PRIVATE, 9, 0),
            Err(Errno::EBADF)
        );
        assert_eq!(mm.vmas().count(), 1);
        // An fd the proxy cannot map shared gets Linux's answer, nothing is left.
        assert_eq!(
            mm.mmap(&p, 0, PAGE_SIZE, PROT_READ, MAP_SHARED, 5, 0),
            Err(Errno::ENODEV)
        );
        assert_eq!(mm.vmas().count(), 1);
    }

    fn is_window(gpa: u64) -> bool {
        is_passthrough(gpa, PAGE_SIZE)
    }

    #[test]
    fn shared_file_mapping_maps_pages_before_eof_and_faults_sigbus_beyond() {
        let (mut mm, p) = setup(64 * MB);
        let before = mm.frames().available();
        // 100 bytes of file, four pages mapped: one page is backed.
        p.add_shareable(7, 100, true);
        let rw = PROT_READ | PROT_WRITE;
        let a = mm.mmap(&p, 0, 4 * PAGE_SIZE, rw, MAP_SHARED, 7, 0).unwrap();
        let (gpa, prot) = p.mapping(a).unwrap();
        assert!(
            is_window(gpa),
            "pass-through memory, not the pool: {gpa:#x}"
        );
        assert_eq!(prot, rw);
        assert_eq!(p.mapping(a + PAGE_SIZE), None, "beyond EOF stays unmapped");
        assert_eq!(mm.frames().available(), before, "no pool frames used");
        assert_eq!(
            mm.page_fault(&p, a + PAGE_SIZE + 8, 0),
            Fault::Signal(signal::SIGBUS)
        );
        assert_eq!(
            mm.page_fault(&p, a + 8, PF_FETCH),
            Fault::Default,
            "a backed page faults as SIGSEGV"
        );
        // The file grows to three pages: the second page is mapped on its fault.
        p.add_shareable(7, 2 * PAGE_SIZE + 1, true);
        assert_eq!(mm.page_fault(&p, a + PAGE_SIZE + 8, 0), Fault::Retry);
        assert_eq!(p.mapping(a + PAGE_SIZE).unwrap(), (gpa + PAGE_SIZE, rw));
        assert_eq!(
            mm.page_fault(&p, a + PAGE_SIZE, PF_FETCH),
            Fault::Default,
            "mapped now"
        );
        assert_eq!(
            mm.page_fault(&p, a + 3 * PAGE_SIZE, 0),
            Fault::Signal(signal::SIGBUS)
        );
        p.add_shareable(7, 100, true);
        assert_eq!(
            mm.page_fault(&p, a + PAGE_SIZE + 8, 0),
            Fault::Signal(signal::SIGBUS),
            "the file shrank under a mapped page"
        );
        assert!(matches!(
            mm.vma_at(a).unwrap().1.kind,
            VmaKind::Passthrough {
                may_write: true,
                ..
            }
        ));
        p.assert_mirror_matches();
        mm.assert_invariants();

        // mprotect does not back the pages beyond EOF with pool memory.
        mm.mprotect(&p, a, 4 * PAGE_SIZE, PROT_NONE).unwrap();
        mm.mprotect(&p, a, 4 * PAGE_SIZE, PROT_READ).unwrap();
        assert_eq!(p.mapping(a).unwrap(), (gpa, PROT_READ));
        assert_eq!(p.mapping(a + PAGE_SIZE).unwrap().1, PROT_READ);
        assert_eq!(p.mapping(a + 2 * PAGE_SIZE), None);
        assert_eq!(mm.frames().available(), before);

        // Growing or moving it is refused; shrinking works.
        assert_eq!(
            mm.mremap(&p, a, 4 * PAGE_SIZE, 8 * PAGE_SIZE, MREMAP_MAYMOVE, 0),
            Err(Errno::EINVAL)
        );
        assert_eq!(mm.mremap(&p, a, 4 * PAGE_SIZE, 3 * PAGE_SIZE, 0, 0), Ok(a));

        // munmap of the pages beyond EOF keeps the object; of the last page, drops it.
        p.take_published();
        mm.munmap(&p, a + PAGE_SIZE, 2 * PAGE_SIZE).unwrap();
        assert_eq!(p.st.borrow().shared.len(), 1, "still mapped at {a:#x}");
        assert!(
            p.take_published()
                .iter()
                .any(|c| c.kind == KIND_UNMAP && c.va == a + PAGE_SIZE && c.len == 2 * PAGE_SIZE),
            "the proxy unmaps unbacked pages too"
        );
        mm.munmap(&p, a, PAGE_SIZE).unwrap();
        assert!(p.st.borrow().shared.is_empty(), "object released");
        assert_eq!(
            mm.frames().available(),
            before,
            "no pool frame freed either"
        );
        mm.assert_invariants();
    }

    #[test]
    fn read_only_shared_file_cannot_become_writable() {
        let (mut mm, p) = setup(64 * MB);
        p.add_shareable(3, 2 * PAGE_SIZE, false);
        assert_eq!(
            mm.mmap(&p, 0, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, 3, 0),
            Err(Errno::EACCES)
        );
        let a = mm
            .mmap(&p, 0, 2 * PAGE_SIZE, PROT_READ, MAP_SHARED, 3, 0)
            .unwrap();
        assert_eq!(
            mm.mprotect(&p, a, PAGE_SIZE, PROT_READ | PROT_WRITE),
            Err(Errno::EACCES)
        );
        assert_eq!(p.mapping(a + PAGE_SIZE).unwrap().1, PROT_READ);
        // A write fault on it is an ordinary SIGSEGV.
        assert_eq!(mm.page_fault(&p, a, PF_WRITE), Fault::Default);
        // MAP_FIXED over it replaces it and releases the object.
        mm.mmap(
            &p,
            a,
            2 * PAGE_SIZE,
            PROT_READ,
            MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
            u64::MAX,
            0,
        )
        .unwrap();
        assert!(p.st.borrow().shared.is_empty());
        assert_eq!(mm.vma_at(a).unwrap().1.kind, VmaKind::Anon);
        p.assert_mirror_matches();
        mm.assert_invariants();
    }

    #[test]
    fn two_mappings_of_one_file_share_an_object_until_both_go() {
        let (mut mm, p) = setup(64 * MB);
        p.add_shareable(4, 4 * MB, true);
        let rw = PROT_READ | PROT_WRITE;
        let a = mm.mmap(&p, 0, 4 * MB, rw, MAP_SHARED, 4, 0).unwrap();
        let b = mm.mmap(&p, 0, 2 * MB, rw, MAP_SHARED, 4, 0).unwrap();
        assert!(a.is_multiple_of(2 * MB) && b.is_multiple_of(2 * MB));
        assert_eq!(
            p.mapping(a).unwrap().0,
            p.mapping(b).unwrap().0,
            "one object"
        );
        assert_eq!(p.st.borrow().shared.len(), 1);
        mm.munmap(&p, a, 4 * MB).unwrap();
        assert_eq!(p.st.borrow().shared.len(), 1, "still used at {b:#x}");
        mm.munmap(&p, b, 2 * MB).unwrap();
        assert!(p.st.borrow().shared.is_empty());
        mm.assert_invariants();
    }

    #[test]
    fn a_sysv_attachment_is_mapped_whole_named_and_detached_by_its_start() {
        use crate::uapi::shm::*;
        let (mut mm, p) = setup(64 * MB);
        let rw = PROT_READ | PROT_WRITE;
        p.add_segment(7, 3 * PAGE_SIZE + 100, true);
        // Anywhere: the whole page-rounded segment, read-write, named by its key.
        let a = mm.shmat(&p, 7, 0, 0, 3 * PAGE_SIZE + 100, 0x1234).unwrap();
        let (_, v) = mm.vma_at(a).unwrap();
        assert_eq!((v.end - a, v.prot, v.shared), (4 * PAGE_SIZE, rw, true));
        assert!(p.mapping(a + 3 * PAGE_SIZE).is_some(), "the last page too");
        assert_eq!(mm.label_at(a), Some(&b"/SYSV00001234 (deleted)"[..]));
        // Read-only and executable attachments of the same segment.
        let r = mm
            .shmat(&p, 7, 0, SHM_RDONLY, 3 * PAGE_SIZE + 100, 0x1234)
            .unwrap();
        assert_eq!(p.mapping(r).unwrap().1, PROT_READ);
        assert_eq!(
            mm.mprotect(&p, r, PAGE_SIZE, rw),
            Err(Errno::EACCES),
            "SHM_RDONLY never becomes writable"
        );
        assert_eq!(mm.page_fault(&p, r, PF_WRITE), Fault::Default, "SIGSEGV");
        let x = mm.shmat(&p, 7, 0, SHM_EXEC, 4 * PAGE_SIZE, 0x1234).unwrap();
        assert_eq!(mm.vma_at(x).unwrap().1.prot, rw | PROT_EXEC);
        assert_eq!(mm.sysv_runs(7), 3);
        mm.assert_invariants();

        // A fixed address over a mapping: EINVAL, unless SHM_REMAP replaces it.
        let d = mm
            .mmap(
                &p,
                0,
                4 * PAGE_SIZE,
                rw,
                MAP_PRIVATE | MAP_ANONYMOUS,
                u64::MAX,
                0,
            )
            .unwrap();
        assert_eq!(
            mm.shmat(&p, 7, d, 0, 4 * PAGE_SIZE, 0x1234),
            Err(Errno::EINVAL)
        );
        assert_eq!(mm.vma_at(d).unwrap().1.kind, VmaKind::Anon, "kept");
        assert_eq!(mm.shmat(&p, 7, d, SHM_REMAP, 4 * PAGE_SIZE, 0x1234), Ok(d));
        assert!(matches!(
            mm.vma_at(d).unwrap().1.kind,
            VmaKind::Passthrough { .. }
        ));
        // Attached again at the same address: the old attachment goes.
        let objects = p.st.borrow().shared.len();
        assert_eq!(mm.shmat(&p, 7, d, SHM_REMAP, 4 * PAGE_SIZE, 0x1234), Ok(d));
        assert_eq!(p.st.borrow().shared.len(), objects, "replaced, released");
        // Linux's refusal changes nothing of the free range it was asked for.
        p.add_segment(8, PAGE_SIZE, false);
        assert_eq!(mm.shmat(&p, 8, 0, 0, PAGE_SIZE, 1), Err(Errno::EACCES));
        assert_eq!(mm.shmat(&p, 9, 0, 0, PAGE_SIZE, 1), Err(Errno::EINVAL));
        assert!(
            p.st.borrow().logs.iter().any(|l| l.contains("SHM_HUGETLB")),
            "an EINVAL for a segment that exists is explained once"
        );
        mm.assert_invariants();

        // munmap of a middle page: two pieces, both detached by one shmdt.
        mm.munmap(&p, a + PAGE_SIZE, PAGE_SIZE).unwrap();
        assert_eq!(mm.sysv_runs(7), 5, "a in two pieces, r, x, d");
        assert_eq!(mm.shmdt(&p, a + PAGE_SIZE), Err(Errno::EINVAL));
        assert_eq!(mm.shmdt(&p, a + 1), Err(Errno::EINVAL));
        // mprotect splits VMAs, not the proxy's attachment.
        mm.mprotect(&p, d, PAGE_SIZE, PROT_READ).unwrap();
        assert_eq!(mm.sysv_runs(7), 5);
        mm.shmdt(&p, a).unwrap();
        assert!(mm.vma_at(a).is_none() && mm.vma_at(a + 2 * PAGE_SIZE).is_none());
        assert_eq!(mm.shmdt(&p, a), Err(Errno::EINVAL), "already detached");
        mm.shmdt(&p, d).unwrap();
        assert!(mm.vma_at(d).is_none() && mm.vma_at(d + 3 * PAGE_SIZE).is_none());
        // shmdt names attachments only: a shared file mapping is not one.
        p.add_shareable(3, PAGE_SIZE, true);
        let f = mm.mmap(&p, 0, PAGE_SIZE, rw, MAP_SHARED, 3, 0).unwrap();
        assert_eq!(mm.shmdt(&p, f), Err(Errno::EINVAL));
        mm.munmap(&p, f, PAGE_SIZE).unwrap();
        // mremap may shrink an attachment, not move or grow it.
        assert_eq!(
            mm.mremap(&p, x, 4 * PAGE_SIZE, 8 * PAGE_SIZE, MREMAP_MAYMOVE, 0),
            Err(Errno::EINVAL)
        );
        assert_eq!(mm.mremap(&p, x, 4 * PAGE_SIZE, PAGE_SIZE, 0, 0), Ok(x));
        mm.shmdt(&p, x).unwrap();
        mm.shmdt(&p, r).unwrap();
        assert!(p.st.borrow().shared.is_empty(), "every object released");
        assert_eq!(mm.sysv_runs(7), 0);
        p.assert_mirror_matches();
        mm.assert_invariants();
    }

    #[test]
    fn random_operations_keep_the_invariants() {
        random_operations(LARGE_PAGE_SIZE);
    }

    #[test]
    fn random_operations_keep_the_invariants_with_4k_pages() {
        random_operations(PAGE_SIZE);
    }

    fn random_operations(page_size: u64) {
        let (mm, p) = setup(96 * MB);
        random_operations_on(mm, p, page_size, &[], 0x2545_f491_4f6c_dd1d);
    }

    #[test]
    fn whole_only_random_operations_with_whole_only_memory() {
        for seed in 1..6u64 {
            let (mm, p) = setup_whole_only(32 * MB, 64 * MB);
            random_operations_on(
                mm,
                p,
                LARGE_PAGE_SIZE,
                &[],
                seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1,
            );
        }
    }

    #[test]
    fn whole_only_random_operations_with_whole_only_memory_but_madvise() {
        for seed in 1..6u64 {
            let (mm, p) = setup_whole_only(32 * MB, 64 * MB);
            random_operations_on(
                mm,
                p,
                LARGE_PAGE_SIZE,
                &[5],
                seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1,
            );
        }
    }

    #[test]
    fn whole_only_random_operations_with_whole_only_memory_plenty_small_but_madvise() {
        for seed in 1..6u64 {
            let (mm, p) = setup_whole_only(512 * MB, 64 * MB);
            random_operations_on(
                mm,
                p,
                LARGE_PAGE_SIZE,
                &[5],
                seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1,
            );
        }
    }

    fn random_operations_on(
        mut mm: AddressSpace,
        p: FakePlatform,
        page_size: u64,
        skip: &[u64],
        seed0: u64,
    ) {
        mm.set_page_size(page_size);
        mm.set_brk_start(0x40_0000);
        let mut seed = seed0;
        let mut rnd = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        p.add_shareable(9, 40 * PAGE_SIZE + 100, true);
        for _ in 0..3000 {
            // Now and then around the heap and its reserve.
            let base = if rnd(4) == 0 {
                0x40_0000
            } else {
                0x10_0000_0000u64
            };
            let page = rnd(2048);
            let va = base + page * PAGE_SIZE;
            let big = rnd(8) == 0;
            let len = (1 + rnd(if big { 1200 } else { 24 })) * PAGE_SIZE;
            let prot = [PROT_NONE, PROT_READ, RW, RW | PROT_EXEC][rnd(4) as usize];
            // Dirty whatever the application has at `va`, so reused frames and
            // the heap's old pages must be zeroed.
            if p.mapping(va).is_some() && mm.vma_at(va).is_some() {
                p.poke(va, &[0xee; 16]);
            }
            let fresh = |mm: &AddressSpace, a: u64| {
                if prot != PROT_NONE {
                    assert!(mm.translate(a).is_some());
                    assert_eq!(p.peek(a, 16), [0; 16], "new memory at {a:#x} is zero");
                    assert_eq!(p.peek(a + len - 16, 16), [0; 16]);
                }
            };
            let op = rnd(8);
            if skip.contains(&op) {
                continue;
            }
            let _ = match op {
                0 => mm
                    .mmap(&p, va, len, prot, ANON | MAP_FIXED, u64::MAX, 0)
                    .map(|a| fresh(&mm, a)),
                1 => mm
                    .mmap(&p, 0, len, prot, ANON, u64::MAX, 0)
                    .map(|a| fresh(&mm, a)),
                2 => mm.munmap(&p, va, len),
                3 => mm.mprotect(&p, va, len, prot),
                4 if rnd(3) == 0 => mm
                    .mremap(&p, va, len, len, MREMAP_MAYMOVE | MREMAP_DONTUNMAP, 0)
                    .map(|_| ()),
                4 => {
                    if let Some((s, v)) = mm.vma_at(va).map(|(s, v)| (s, *v)) {
                        if rnd(2) == 0 {
                            mm.label(s, v.end, b"/some/file");
                        }
                    }
                    mm.mremap(&p, va, len, (1 + rnd(40)) * PAGE_SIZE, MREMAP_MAYMOVE, 0)
                        .map(|_| ())
                }
                5 => mm.madvise(&p, va, len, MADV_DONTNEED),
                7 if rnd(2) == 0 => {
                    // A shared file mapping, partly beyond the file's end.
                    let off = rnd(32) * PAGE_SIZE;
                    let flags = MAP_SHARED | MAP_FIXED;
                    mm.mmap(&p, va, len.min(64 * PAGE_SIZE), prot, flags, 9, off)
                        .map(|_| ())
                }
                6 => {
                    let old = mm.current_brk();
                    let want = 0x40_0000 + rnd(64) * 50_000 + rnd(5000);
                    let got = mm.brk(&p, want);
                    assert!(got == want || got == old);
                    let (o, n) = (align_up(old, PAGE_SIZE), align_up(got, PAGE_SIZE));
                    if n > o {
                        assert_eq!(p.peek(o, 16), [0; 16], "new heap at {o:#x} is zero");
                        assert_eq!(p.peek(n - 16, 16), [0; 16]);
                    }
                    Ok(())
                }
                _ => {
                    let grows = if rnd(4) == 0 { MAP_GROWSDOWN } else { 0 };
                    mm.mmap(&p, va, len, prot, ANON | grows, u64::MAX, 0)
                        .map(|_| ())
                }
            };
            if rnd(16) == 0 {
                // An access below some mapping: grows it if it is MAP_GROWSDOWN.
                let _ = mm.page_fault(&p, va.saturating_sub(PAGE_SIZE), 0);
            }
            mm.assert_invariants();
        }
        p.assert_mirror_matches();
        // Everything goes back.
        mm.munmap(&p, USER_START, USER_END - USER_START).unwrap();
        mm.assert_invariants();
        let (ps, pe) = mm.frames().range();
        assert_eq!(mm.frames().available() + mm.tables_given(), pe - ps);
        assert!(p.st.borrow().pages.is_empty());
        assert!(p.st.borrow().mirror.is_empty());
        assert!(p.st.borrow().shared.is_empty(), "every object released");
    }

    /// An address space whose pool has `large` bytes of whole-only 2 MiB pages
    /// above `mem` bytes of ordinary memory, on a fake that refuses partial
    /// operations on them.
    fn setup_whole_only(mem: u64, large: u64) -> (AddressSpace, FakePlatform) {
        let p = FakePlatform::new();
        let (start, split_at) = (16 * MB, 16 * MB + mem);
        p.st.borrow_mut().whole_only = Some((split_at, split_at + large));
        let mut mm = AddressSpace::new(FramePool::with_large(start, split_at, split_at + large));
        mm.init(&p).unwrap();
        (mm, p)
    }

    #[test]
    fn whole_only_pages_are_split_before_a_partial_mprotect_munmap_or_move() {
        let (mut mm, p) = setup_whole_only(64 * MB, 64 * MB);
        let whole = |p: &FakePlatform, va: u64| {
            let gpa = p.mapping(va).unwrap().0;
            gpa >= 80 * MB
        };
        let a = anon(&mut mm, &p, 0, 8 * MB, ANON).unwrap();
        assert!(a.is_multiple_of(2 * MB));
        for i in 0..4 {
            assert!(
                whole(&p, a + i * 2 * MB),
                "large maps use the 2 MiB-only memory"
            );
        }
        // Data in the first chunk, on both sides of the page about to change.
        p.write_mem(a + PAGE_SIZE - 3, b"before");
        p.write_mem(a + 3 * PAGE_SIZE, b"after");
        // A guard page, as pthread_create makes one.
        mm.mprotect(&p, a + PAGE_SIZE, PAGE_SIZE, PROT_NONE)
            .unwrap();
        assert!(!whole(&p, a), "the first chunk moved to 4 KiB frames");
        assert!(whole(&p, a + 2 * MB), "the others stayed");
        assert_eq!(p.mapping(a + PAGE_SIZE).unwrap().1, PROT_NONE);
        assert_eq!(p.mapping(a).unwrap().1, RW);
        // "before" straddles the guard page: read its two halves.
        assert_eq!(p.peek(a + PAGE_SIZE - 3, 3), b"bef");
        assert_eq!(p.peek(a + 3 * PAGE_SIZE, 5), b"after");
        // munmap of one page inside another chunk.
        p.write_mem(a + 2 * MB + 5 * PAGE_SIZE, b"kept");
        mm.munmap(&p, a + 2 * MB + PAGE_SIZE, PAGE_SIZE).unwrap();
        assert_eq!(p.mapping(a + 2 * MB + PAGE_SIZE), None);
        assert_eq!(p.peek(a + 2 * MB + 5 * PAGE_SIZE, 4), b"kept");
        // A move to an address 4 KiB off the 2 MiB grid splits what moves.
        p.write_mem(a + 6 * MB + 7, b"moved");
        let to = mm
            .mremap(
                &p,
                a + 6 * MB,
                2 * MB,
                2 * MB,
                MREMAP_MAYMOVE | MREMAP_FIXED,
                0x7000_1000,
            )
            .unwrap();
        assert_eq!(to, 0x7000_1000);
        assert_eq!(p.peek(to + 7, 5), b"moved");
        assert!(!whole(&p, to));
        mm.assert_invariants();
        p.assert_mirror_matches();
        // Freed whole-only pages are handed out again, whole.
        mm.munmap(&p, a, 8 * MB).unwrap();
        mm.munmap(&p, to, 2 * MB).unwrap();
        let b = anon(&mut mm, &p, 0, 8 * MB, ANON).unwrap();
        assert!((0..4).all(|i| whole(&p, b + i * 2 * MB)));
        mm.assert_invariants();
    }

    // ---- whole-only memory without 4 KiB frames to split it ----

    /// Use up the pool's 4 KiB-capable memory with small mappings.
    fn exhaust_small(mm: &mut AddressSpace, p: &FakePlatform) {
        while anon(mm, p, 0, MB, ANON).is_ok() {}
        while anon(mm, p, 0, PAGE_SIZE, ANON).is_ok() {}
        assert_eq!(mm.frames().available_in(FrameSize::Small), 0);
    }

    #[test]
    fn whole_only_madvise_dontneed_in_part_of_a_read_only_whole_chunk() {
        let (mut mm, p) = setup_whole_only(64 * MB, 64 * MB);
        let a = anon(&mut mm, &p, 0, 4 * MB, ANON).unwrap();
        assert!(p.mapping(a).unwrap().0 >= 80 * MB, "a whole-only chunk");
        p.write_mem(a + PAGE_SIZE, b"gone");
        p.write_mem(a + 2 * PAGE_SIZE, b"kept");
        // Whole chunks: no split needed.
        mm.mprotect(&p, a, 4 * MB, PROT_READ).unwrap();
        // zero_backed protects [a+4K, a+8K) read-write: part of a whole-only page
        // (Linux: EINVAL, ignored; then the runtime's own store faults).
        mm.madvise(&p, a + PAGE_SIZE, PAGE_SIZE, MADV_DONTNEED)
            .unwrap();
        assert_eq!(p.peek(a + PAGE_SIZE, 4), [0; 4]);
        assert_eq!(p.peek(a + 2 * PAGE_SIZE, 4), b"kept");
        mm.assert_invariants();
    }

    #[test]
    fn whole_only_map_fixed_into_a_whole_chunk_without_4k_frames() {
        let (mut mm, p) = setup_whole_only(16 * MB, 64 * MB);
        let a = anon(&mut mm, &p, 0, 4 * MB, ANON).unwrap();
        assert!(p.mapping(a).unwrap().0 >= 32 * MB, "a whole-only chunk");
        p.write_mem(a + PAGE_SIZE, b"old");
        exhaust_small(&mut mm, &p);
        // MAP_FIXED of one page inside the chunk: remove_range cannot split
        // (ENOMEM), silently leaves [a+4K, a+2M) in place, then map_new runs
        // over a range that is not free.
        let r = mm.mmap(
            &p,
            a + PAGE_SIZE,
            PAGE_SIZE,
            RW,
            ANON | MAP_FIXED,
            u64::MAX,
            0,
        );
        match r {
            Err(e) => assert_eq!(e, Errno::ENOMEM),
            Ok(va) => {
                assert_eq!(va, a + PAGE_SIZE);
                assert_eq!(p.peek(a + PAGE_SIZE, 3), [0; 3], "fresh memory is zero");
            }
        }
        mm.assert_invariants();
    }

    #[test]
    fn whole_only_mremap_shrink_of_a_whole_chunk_without_4k_frames() {
        let (mut mm, p) = setup_whole_only(16 * MB, 64 * MB);
        let a = anon(&mut mm, &p, 0, 4 * MB, ANON).unwrap();
        exhaust_small(&mut mm, &p);
        // Shrink to 2 MiB + 4 KiB: the cut at a+2M+4K lies inside a whole chunk.
        let r = mm.mremap(&p, a, 4 * MB, 2 * MB + PAGE_SIZE, 0, 0);
        if r == Ok(a) {
            assert!(
                mm.vma_at(a + 3 * MB).is_none(),
                "mremap said the tail is gone, but it is still mapped"
            );
        }
        mm.assert_invariants();
    }

    #[test]
    fn whole_only_mremap_fixed_onto_part_of_a_whole_chunk_without_4k_frames() {
        let (mut mm, p) = setup_whole_only(16 * MB, 64 * MB);
        let a = anon(&mut mm, &p, 0, 4 * MB, ANON).unwrap();
        let b = anon(&mut mm, &p, 0, 2 * MB, ANON).unwrap();
        p.write_mem(a + 2 * MB + 8, b"victim");
        exhaust_small(&mut mm, &p);
        // Move b (2 MiB) onto a, growing to 2 MiB + 4 KiB: the displacement is
        // 2 MiB aligned, but the new end a+2M+4K cuts a's second whole chunk.
        // remove_range cannot split it, silently keeps [a+2M, a+2M+4K), and
        // map_new then runs over it.
        let r = mm.mremap(
            &p,
            b,
            2 * MB,
            2 * MB + PAGE_SIZE,
            MREMAP_MAYMOVE | MREMAP_FIXED,
            a,
        );
        if r == Ok(a) {
            assert_eq!(
                p.peek(a + 2 * MB + 8, 6),
                [0; 6],
                "the grown part is fresh memory"
            );
        }
        mm.assert_invariants();
    }

    #[test]
    fn only_faults_that_may_have_met_a_split_are_retried() {
        let (mut mm, p) = setup_whole_only(64 * MB, 64 * MB);
        let a = anon(&mut mm, &p, 0, 4 * MB, ANON).unwrap();
        // An allowed access to a backed page elsewhere is the application's fault
        // (on the partition, a fault with the page tables right cannot repeat).
        assert_eq!(mm.page_fault(&p, a + 8, PF_WRITE), Fault::Default);
        // A split makes the chunk read-only, then maps the copy: a fault that met
        // it is retried.
        mm.mprotect(&p, a + PAGE_SIZE, PAGE_SIZE, PROT_READ)
            .unwrap();
        assert_eq!(mm.page_fault(&p, a + 8, PF_WRITE), Fault::Retry);
        assert_eq!(mm.page_fault(&p, a + 2 * PAGE_SIZE, 0), Fault::Retry);
        // What the VMA forbids there is the application's fault, and so are
        // reserved-bit and protection-key faults.
        assert_eq!(mm.page_fault(&p, a + PAGE_SIZE, PF_WRITE), Fault::Default);
        assert_eq!(mm.page_fault(&p, a, PF_FETCH), Fault::Default);
        assert_eq!(mm.page_fault(&p, a, PF_PK), Fault::Default);
        assert_eq!(mm.page_fault(&p, a, PF_RSVD), Fault::Default);
        // The other chunk was not split.
        assert_eq!(mm.page_fault(&p, a + 2 * MB, PF_WRITE), Fault::Default);
        // A fault Linux reported as SIGBUS is SIGBUS, whatever the mapping says.
        assert_eq!(
            mm.page_fault(&p, a + 8, PF_WRITE | mote_abi::trap::PF_SIGBUS),
            Fault::Signal(signal::SIGBUS)
        );
    }

    #[test]
    fn when_the_platform_cannot_back_whole_only_pages_the_rest_of_the_pool_is_used() {
        let (mut mm, p) = setup_whole_only(64 * MB, 64 * MB);
        // Linux has hugetlbfs pages for two chunks only.
        p.st.borrow_mut().whole_only_budget = Some(2);
        let a = anon(&mut mm, &p, 0, 8 * MB, ANON).unwrap();
        let whole = |va: u64| p.mapping(va).unwrap().0 >= 80 * MB;
        // The first mapping's chunks were taken together and failed together: all
        // of it is ordinary memory, on 2 MiB pages still.
        assert!(
            (0..4).all(|i| !whole(a + i * 2 * MB)),
            "no partly hugetlbfs mapping"
        );
        assert_eq!(p.st.borrow().page_size.get(&a), Some(&LARGE_PAGE_SIZE));
        assert_eq!(
            p.st.borrow()
                .logs
                .iter()
                .filter(|l| l.contains("hugetlbfs"))
                .count(),
            1,
            "said once"
        );
        // Later mappings do not try again.
        let b = anon(&mut mm, &p, 0, 4 * MB, ANON).unwrap();
        assert!(!whole(b));
        mm.assert_invariants();
        p.assert_mirror_matches();
    }

    #[test]
    fn a_split_page_waits_for_the_forwarded_calls_in_flight_before_its_frames_are_reused() {
        let (mut mm, p) = setup_whole_only(64 * MB, 8 * MB);
        let a = anon(&mut mm, &p, 0, 4 * MB, ANON).unwrap();
        let old = p.mapping(a).unwrap().0;
        // Another thread's blocking read is in flight (slot 3, request 7).
        p.st.borrow_mut().in_flight = alloc::vec![(3, 7)];
        mm.mprotect(&p, a + PAGE_SIZE, PAGE_SIZE, PROT_READ)
            .unwrap();
        p.st.borrow_mut().in_flight.clear();
        mm.assert_invariants();
        // Its old frames are not handed out while the call is unanswered.
        let b = anon(&mut mm, &p, 0, 4 * MB, ANON).unwrap();
        assert!((0..2).all(|i| p.mapping(b + i * 2 * MB).unwrap().0 != old));
        mm.munmap(&p, b, 4 * MB).unwrap();
        // Once it is answered they are.
        p.st.borrow_mut().answered.insert(3, 7);
        let c = anon(&mut mm, &p, 0, 4 * MB, ANON).unwrap();
        assert!((0..2).any(|i| p.mapping(c + i * 2 * MB).unwrap().0 == old));
        mm.assert_invariants();
    }

    #[test]
    fn enomem_from_a_platform_without_page_tables_gives_no_frames_away() {
        // The hosted platform: Linux owns the page tables, and its mmap fails
        // with ENOMEM at vm.max_map_count.
        let p = FakePlatform::new();
        p.st.borrow_mut().host_tables = Some(Errno::ENOMEM);
        let mut mm = AddressSpace::new(FramePool::new(16 * MB, 80 * MB));
        let before = mm.frames().available();
        assert_eq!(
            mm.mmap(&p, 0, 4 * MB, RW, ANON, u64::MAX, 0),
            Err(Errno::ENOMEM)
        );
        assert_eq!(
            mm.frames().available(),
            before,
            "no frames given for tables"
        );
        assert_eq!(mm.tables_given(), 0);
    }

    #[test]
    fn protecting_or_unmapping_part_of_a_large_page_gives_kernel_min_a_table_first() {
        let (mut mm, p) = setup(64 * MB);
        let a = anon(&mut mm, &p, 0, 4 * MB, ANON).unwrap();
        assert_eq!(p.st.borrow().page_size.get(&a), Some(&LARGE_PAGE_SIZE));
        // kernel-min has no table frame left to split a 2 MiB page with.
        p.st.borrow_mut().table_frames = 0;
        let given = mm.tables_given();
        mm.mprotect(&p, a + PAGE_SIZE, PAGE_SIZE, PROT_READ)
            .unwrap();
        assert_eq!(p.mapping(a + PAGE_SIZE).unwrap().1, PROT_READ, "protected");
        assert_eq!(p.mapping(a).unwrap().1, RW);
        assert!(mm.tables_given() > given, "libos gave tables and retried");
        p.st.borrow_mut().table_frames = 0;
        mm.munmap(&p, a + 2 * MB + PAGE_SIZE, PAGE_SIZE).unwrap();
        assert_eq!(
            p.mapping(a + 2 * MB + PAGE_SIZE),
            None,
            "unmapped before its frame is free"
        );
        mm.assert_invariants();
        p.assert_mirror_matches();
    }
}
