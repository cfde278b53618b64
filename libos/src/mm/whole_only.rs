//! Whole-only 2 MiB pages (the hosted platform's hugetlbfs memory,
//! `FramePool::whole_chunks_only`): splitting such a page into 4 KiB frames before a
//! change cuts into it, as Linux splits a transparent huge page, and the quarantine
//! of its old frames while forwarded calls may still write them.

use alloc::vec::Vec;

use mote_abi::errno::Errno;
use mote_abi::kcall::MAP_PAGES_4K;
use mote_abi::layout::{align_down, LARGE_PAGE_SIZE, USER_MMAP_TOP, USER_START};
use mote_abi::maplog::{KIND_MAP, KIND_PROTECT, KIND_UNMAP};

use crate::frames::{FrameSize, Run};
use crate::platform::Platform;
use crate::uapi::mman::*;

use super::backing::{change, Backing};
use super::vma::split;
use super::AddressSpace;

/// How many lately split whole-only chunks `page_fault` remembers (their faults
/// are retried): more than the cores that can fault on one at once.
const SPLIT_LATELY: usize = 64;

/// Bytes copied at a time when a whole-only 2 MiB page is split.
const COPY_BUF: usize = 64 << 10;

impl AddressSpace {
    /// `at` is about to become an edge of a mapping change (an unmap, a protection
    /// change, a move). Where it falls inside a 2 MiB page the platform can map
    /// only whole (`FramePool::whole_chunks_only`: the hosted platform's hugetlbfs
    /// memory), that page is split first, as Linux splits a transparent huge
    /// page: its contents move to 4 KiB frames mapped in its place.
    pub(super) fn split_whole_chunk<P: Platform>(&mut self, p: &P, at: u64) -> Result<(), Errno> {
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
    pub(super) fn split_chunk<P: Platform>(&mut self, p: &P, chunk: u64) -> Result<(), Errno> {
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
        // The copy stays on the page's node when it can.
        let node = self.frames.node_of(old.gpa);
        let runs = self.frames.alloc(LARGE, FrameSize::Small, node)?;
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
        // The mirror maps the new pieces read-write: then each page's protection.
        for &(s, e, v) in &parts {
            if v.prot != PROT_READ | PROT_WRITE {
                p.publish(change(KIND_PROTECT, s, e - s, v.prot));
            }
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
    pub(super) fn release_quarantine<P: Platform>(&mut self, p: &P) {
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
}
