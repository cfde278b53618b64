//! The region map: [`Vma`] and [`VmaKind`], the `BTreeMap`s keyed by start that
//! describe the address space (VMAs, backing, labels) and how they are cut
//! ([`Piece`], [`split`]), and the queries over them: what lies at an address,
//! which ranges are free, where a new mapping fits, and merging equal neighbours.

use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;

use mote_abi::layout::{align_down, HUGE_PAGE_SIZE, LARGE_PAGE_SIZE, PAGE_SIZE};

use crate::uapi::mman::*;

use super::AddressSpace;

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

/// A virtual memory area; the map key is its start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vma {
    /// End (exclusive).
    pub end: u64,
    /// `PROT_*` bits.
    pub prot: u64,
    /// What it holds.
    pub kind: VmaKind,
    /// Mapped `MAP_SHARED`: a pass-through object, or (`MAP_HUGETLB` anonymous
    /// memory from the pool) shared only within this process.
    pub shared: bool,
    /// Mapped `MAP_GROWSDOWN`: an access just below it extends it downwards
    /// ([`AddressSpace::page_fault`]).
    pub growsdown: bool,
    /// What a `fork` child gets of it (`madvise`).
    pub fork: ForkAdvice,
    /// Its memory policy (`mbind`): an id from `crate::numa::Numa`'s table, 0
    /// for none (the thread's policy applies).
    pub policy: u32,
}

/// `MADV_DONTFORK` and `MADV_WIPEONFORK` of a VMA (Linux's `VM_DONTCOPY` and
/// `VM_WIPEONFORK`): what [`AddressSpace::forked`] does in a fork's child.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ForkAdvice {
    /// Not in the child at all (an access there faults).
    pub dontfork: bool,
    /// Zero-filled in the child (private anonymous memory only).
    pub wipeonfork: bool,
}

impl Vma {
    /// Program code loaded from a file (the image, or a library mapped by ld.so):
    /// what the system-call patcher may rewrite.
    pub fn is_code_backed(&self) -> bool {
        matches!(self.kind, VmaKind::Image | VmaKind::File)
    }
}

/// Something that covers `[key, end)` in a `BTreeMap` and can be cut in two.
pub(super) trait Piece {
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

/// The name `/proc/self/maps` shows for `[key, end)`: the file a mapping came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Label {
    pub(super) end: u64,
    pub(super) name: Arc<[u8]>,
    /// The range still holds, unchanged, the bytes of this file from
    /// `FileCopy::off` (a read-only private file mapping; see `file_copy`).
    pub(super) copy: Option<super::file_copy::FileCopy>,
}

impl Piece for Label {
    fn end(&self, _: u64) -> u64 {
        self.end
    }
    fn cut(&mut self, start: u64, at: u64) -> Self {
        let mut hi = self.clone();
        self.end = at;
        if let Some(c) = &mut hi.copy {
            c.off += at - start;
        }
        hi
    }
}

/// Cut the piece of `map` that straddles `at`, if any, in two there.
pub(super) fn split<T: Piece>(map: &mut BTreeMap<u64, T>, at: u64) {
    let Some((&s, piece)) = map.range_mut(..at).next_back() else {
        return;
    };
    if piece.end(s) > at {
        let hi = piece.cut(s, at);
        map.insert(at, hi);
    }
}

/// access right implies reading on x86 (there are no write- or execute-only pages
/// without protection keys).
pub(super) fn allows(prot: u64, write: bool) -> bool {
    if write {
        prot & PROT_WRITE != 0
    } else {
        prot != PROT_NONE
    }
}

impl AddressSpace {
    /// Name `[start, end)` (a mapping's range) for `/proc/self/maps`: the path of
    /// the file it maps. Removed with the mapping, moved with it by `mremap`.
    pub fn label(&mut self, start: u64, end: u64, name: &[u8]) {
        self.unlabel(start, end);
        self.labels.insert(
            start,
            Label {
                end,
                name: name.into(),
                copy: None,
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

    pub(super) fn unlabel(&mut self, start: u64, end: u64) {
        split(&mut self.labels, start);
        split(&mut self.labels, end);
        let keys: Vec<u64> = self.labels.range(start..end).map(|(&s, _)| s).collect();
        for k in keys {
            self.labels.remove(&k);
        }
    }

    /// Any VMA containing `va`, the heap reserve included.
    pub(super) fn vma_containing(&self, va: u64) -> Option<(u64, &Vma)> {
        self.vmas
            .range(..=va)
            .next_back()
            .filter(|(_, v)| v.end > va)
            .map(|(&s, v)| (s, v))
    }

    /// The VMA pieces intersecting `[start, end)`, clipped.
    pub(super) fn parts(&self, start: u64, end: u64) -> Vec<(u64, u64, Vma)> {
        let first = self.vma_containing(start).map(|(s, _)| s).unwrap_or(start);
        self.vmas
            .range(first..end)
            .filter(|(_, v)| v.end > start)
            .map(|(&s, &v)| (s.max(start), v.end.min(end), v))
            .collect()
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
    pub(super) fn is_free_but_reserve(&self, start: u64, end: u64) -> bool {
        self.parts(start, end)
            .iter()
            .all(|(_, _, v)| v.kind == VmaKind::HeapReserve)
    }

    /// Every page of `[start, end)` is in some VMA.
    pub(super) fn is_covered(&self, start: u64, end: u64) -> bool {
        let mut at = start;
        while at < end {
            match self.vma_at(at) {
                Some((_, v)) => at = v.end,
                None => return false,
            }
        }
        true
    }

    /// Alignment for a new mapping of `len` bytes placed by libos: large mappings
    /// start where large pages can map them.
    pub(super) fn placement_align(&self, len: u64) -> u64 {
        if self.page_size == HUGE_PAGE_SIZE && len >= HUGE_PAGE_SIZE {
            HUGE_PAGE_SIZE
        } else if len >= LARGE_PAGE_SIZE {
            LARGE_PAGE_SIZE
        } else {
            PAGE_SIZE
        }
    }

    /// Highest free range of `len` bytes aligned to `align` inside `[lo, hi)`.
    pub(super) fn find_free(&self, len: u64, align: u64, lo: u64, hi: u64) -> Option<u64> {
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

    /// Give the VMA pieces inside `[start, end)` memory policy `id` (`mbind`),
    /// cutting the VMAs at `start` and `end`, and merge equal neighbours again.
    pub fn set_policy(&mut self, start: u64, end: u64, id: u32) {
        split(&mut self.vmas, start);
        split(&mut self.vmas, end);
        for (_, v) in self.vmas.range_mut(start..end) {
            if v.kind != VmaKind::HeapReserve {
                v.policy = id;
            }
        }
        self.merge_around(start, end);
    }

    /// Merge VMAs touching `[start, end)` with equal neighbours (anonymous memory
    /// and the heap only, as Linux merges it), so later `mremap`s see one VMA.
    pub(super) fn merge_around(&mut self, start: u64, end: u64) {
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
                    && prev.growsdown == v.growsdown
                    && prev.fork == v.fork
                    && prev.policy == v.policy;
                if mergeable {
                    self.vmas.remove(&k);
                    self.vmas.get_mut(&c).expect("present").end = v.end;
                    continue;
                }
            }
            cur = Some(k);
        }
    }
}
