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
//! unbacked so an access there is reported as `SIGBUS` ([`AddressSpace::page_fault`]),
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
//!
//! Layout: a file per operation, each with its own `impl AddressSpace` block.
//! `vma` is the region map ([`Vma`], the maps keyed by start, free-range and
//! placement queries), `backing` the frames behind mappings and the calls to
//! kernel-min, `whole_only` the splitting of whole-only 2 MiB pages, `place` which NUMA
//! node new frames come from, `migrate` moving pages between nodes; the
//! operations are `map` (`mmap` of a [`MapRequest`], `map_fixed`), `brk`,
//! `shared` (pass-through mappings, System V `shmat`/`shmdt`), `fault`, `unmap`,
//! `protect`, `remap` and `advise`; `file_copy` the reuse of a read-only private file copy's frames
//! by a mapping of the same bytes over it (ld.so's segments); `tests` holds the
//! unit tests. The raw `mmap`
//! arguments are judged by the syscall layer (`crate::syscall::mm::map_request`),
//! which hands [`AddressSpace::map`] a typed request.

mod advise;
mod backing;
mod brk;
mod fault;
mod file_copy;
mod limit;
mod map;
mod migrate;
mod place;
mod protect;
mod remap;
mod shared;
mod unmap;
mod vma;
mod whole_only;

#[cfg(test)]
mod tests;

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use mote_abi::errno::Errno;
use mote_abi::layout::{HUGE_PAGE_SIZE, LARGE_PAGE_SIZE, PAGE_SIZE};

use crate::frames::Frames;
use crate::platform::Platform;

use backing::Backing;
use shared::SysvAttach;
use vma::{allows, Label};

pub use backing::TABLE_GRANT;
pub use fault::{Fault, PF_FETCH, PF_PK, PF_RSVD, PF_WRITE};
pub use limit::UNLIMITED;
pub use map::{read_file_into, MapRequest, MapSource, Placement};
pub use vma::{ForkAdvice, Vma, VmaKind};

/// `len` rounded up to whole pages; `ENOMEM` if that overflows.
pub(crate) fn page_len(len: u64) -> Result<u64, Errno> {
    len.checked_add(PAGE_SIZE - 1)
        .map(|l| l & !(PAGE_SIZE - 1))
        .ok_or(Errno::ENOMEM)
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
}

impl Note {
    /// A note about an opportunistic optimisation only (the application runs
    /// correctly either way, and nobody asked for it): shown under `MOTE_DEBUG`,
    /// never on the application's stderr otherwise. (`--page-size 1g` not met
    /// is said: the user asked for it, and a larger `--mem` is the fix.)
    fn only_when_debugging(self) -> bool {
        matches!(self, Note::NoHugetlbPages)
    }
}

/// The application's address space.
#[derive(Debug)]
pub struct AddressSpace {
    frames: Frames,
    /// The NUMA topology and memory policies (`crate::numa`): which node new
    /// frames come from (`place`).
    pub numa: crate::numa::Numa,
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
    /// The application's soft `RLIMIT_AS` (`limit`), `None` until read.
    as_limit: Option<u64>,
}

impl AddressSpace {
    /// An empty address space drawing frames from `frames` (one pool, or a pool
    /// per node).
    pub fn new(frames: impl Into<Frames>) -> Self {
        let frames: Frames = frames.into();
        AddressSpace {
            numa: crate::numa::Numa::new(frames.topology()),
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
            as_limit: None,
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

    /// Bytes of `[va, va+len)` mapped by 4 KiB, 2 MiB and 1 GiB pages (asked of
    /// the page tables themselves: `/proc/self/smaps`).
    pub fn page_sizes<P: Platform>(&self, p: &P, va: u64, len: u64) -> [u64; 3] {
        p.page_sizes(va, len)
    }

    /// Start-up: give kernel-min its first page-table frames.
    pub fn init<P: Platform>(&mut self, p: &P) -> Result<(), Errno> {
        self.give_tables(p)
    }

    /// The frame pools (statistics).
    pub fn frames(&self) -> &Frames {
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

    fn note<P: Platform>(&mut self, p: &P, which: Note, msg: &str) {
        if self.noted & which as u32 == 0 {
            self.noted |= which as u32;
            if !which.only_when_debugging() || p.debugging() {
                p.log(msg);
            }
        }
    }
}
