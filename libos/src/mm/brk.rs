//! `brk`: the heap, its over-extension (the [`VmaKind::HeapReserve`] VMA above the
//! break) and the zeroing of memory the break grows over again.

use mote_abi::errno::Errno;
use mote_abi::layout::{align_up, LARGE_PAGE_SIZE, PAGE_SIZE, USER_END};

use crate::platform::Platform;
use crate::uapi::mman::*;

use super::vma::split;
use super::{AddressSpace, VmaKind};

impl AddressSpace {
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
    pub(super) fn shrink_heap<P: Platform>(
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
    pub(super) fn set_kind(&mut self, start: u64, end: u64, kind: VmaKind) {
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
}
