//! The frames behind the mappings: the `backing` map's [`Backing`] runs, backing
//! a range with zeroed frames from the pools (the node `place` chooses; 2 MiB and 1 GiB chunks where the
//! page-size policy and alignment allow, 4 KiB frames for the ends), and the calls
//! that make kernel-min map, protect and unmap them (giving it page-table frames
//! when it runs out) and tell the proxy (`Platform::publish`).

use alloc::vec::Vec;

use mote_abi::errno::Errno;
use mote_abi::kcall::{MAP_PAGES_1G, MAP_PAGES_4K};
use mote_abi::layout::{align_down, align_up, HUGE_PAGE_SIZE, LARGE_PAGE_SIZE, PAGE_SIZE};
use mote_abi::maplog::{Change, KIND_MAP, KIND_PROTECT, KIND_UNMAP};

use crate::frames::{FrameSize, Run};
use crate::platform::Platform;
use crate::uapi::mman::*;

use super::vma::Piece;
use super::{AddressSpace, Note, VmaKind};

/// Page-table frames handed to kernel-min at start-up and whenever it runs out.
pub const TABLE_GRANT: u64 = LARGE_PAGE_SIZE;
/// Bound on give-tables-and-retry rounds for one mapping.
const MAX_TABLE_ROUNDS: usize = 16;

/// Frames mapped at a virtual range; the map key is the virtual start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Backing {
    pub(super) len: u64,
    pub(super) gpa: u64,
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

/// Merge `(va, len, _)` pieces into virtually contiguous `(start, end)` ranges.
pub(super) fn coalesce(pieces: &[(u64, u64, u64)]) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for &(va, len, _) in pieces {
        match out.last_mut() {
            Some(last) if last.1 == va => last.1 = va + len,
            _ => out.push((va, va + len)),
        }
    }
    out
}

/// A map-log entry for the proxy (`Platform::publish`).
pub(super) fn change(kind: u64, va: u64, len: u64, gpa: u64) -> Change {
    Change { kind, va, len, gpa }
}

impl AddressSpace {
    /// Backed pieces of `[start, end)`, clipped: `(va, len, gpa)`.
    pub(super) fn backed_in(&self, start: u64, end: u64) -> Vec<(u64, u64, u64)> {
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

    /// Back every unbacked page of `[start, end)` with zeroed frames mapped `prot`.
    /// All or nothing.
    pub(super) fn populate<P: Platform>(
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
    pub(super) fn back_hole<P: Platform>(
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
    pub(super) fn back_piece<P: Platform>(
        &mut self,
        p: &P,
        ps: u64,
        pe: u64,
        size: FrameSize,
        prot: u64,
        mapped: &mut Vec<(u64, Backing)>,
    ) -> Result<(), Errno> {
        loop {
            let runs = match self.alloc_for(p, ps, pe - ps, size) {
                Ok(r) => r,
                // No aligned gigabyte left: 2 MiB chunks, else 4 KiB frames.
                Err(_) if size == FrameSize::Huge => {
                    self.note(
                        p,
                        Note::NoHugeFrames,
                        "--page-size 1g: the partition's memory has no free 1 GiB-aligned gigabyte for this mapping; using 2 MiB pages (a larger --mem leaves room)",
                    );
                    match self.alloc_for(p, ps, pe - ps, FrameSize::Large) {
                        Ok(r) => r,
                        Err(_) => self.alloc_for(p, ps, pe - ps, FrameSize::Small)?,
                    }
                }
                // Fragmented: fall back to 4 KiB frames.
                Err(_) if size == FrameSize::Large => {
                    self.alloc_for(p, ps, pe - ps, FrameSize::Small)?
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
    pub(super) fn map_run<P: Platform>(
        &mut self,
        p: &P,
        va: u64,
        run: Run,
        prot: u64,
    ) -> Result<(), Errno> {
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
        if prot != writable {
            p.publish(change(KIND_PROTECT, va, run.len, prot));
        }
        Ok(())
    }

    /// `Platform::map`, giving kernel-min more page-table frames when it runs out.
    pub(super) fn kmap<P: Platform>(
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
    pub(super) fn kprotect<P: Platform>(
        &mut self,
        p: &P,
        va: u64,
        len: u64,
        prot: u64,
    ) -> Result<(), Errno> {
        for _ in 0..MAX_TABLE_ROUNDS {
            match p.protect(va, len, prot) {
                Err(Errno::ENOMEM) if p.builds_page_tables() => self.give_tables(p)?,
                Ok(()) => {
                    p.publish(change(KIND_PROTECT, va, len, prot));
                    return Ok(());
                }
                r => return r,
            }
        }
        Err(Errno::ENOMEM)
    }

    /// `Platform::unmap`, likewise: unmapping part of a 2 MiB page needs a table.
    /// Frames are freed only after their pages are gone, so this must not fail
    /// quietly while there is memory for tables.
    pub(super) fn kunmap<P: Platform>(&mut self, p: &P, va: u64, len: u64) -> Result<(), Errno> {
        for _ in 0..MAX_TABLE_ROUNDS {
            match p.unmap(va, len) {
                Err(Errno::ENOMEM) if p.builds_page_tables() => self.give_tables(p)?,
                r => return r,
            }
        }
        Err(Errno::ENOMEM)
    }

    /// Hand kernel-min `TABLE_GRANT` bytes of frames for page tables (never returned).
    pub(super) fn give_tables<P: Platform>(&mut self, p: &P) -> Result<(), Errno> {
        let node = self.local_node(p);
        let runs = match self.frames.alloc(TABLE_GRANT, FrameSize::Large, node) {
            Ok(r) => r,
            Err(_) => self.frames.alloc(TABLE_GRANT, FrameSize::Small, node)?,
        };
        for r in runs {
            p.give_tables(r.gpa, r.len)?;
            self.tables_given += r.len;
        }
        Ok(())
    }

    /// Unmap backed runs from kernel-min (one call per virtually contiguous group) and
    /// tell the proxy (one entry per run). Frames are not freed here.
    pub(super) fn unmap_runs<P: Platform>(&mut self, p: &P, runs: &[(u64, Backing)]) {
        let flat: Vec<(u64, u64, u64)> = runs.iter().map(|&(va, b)| (va, b.len, b.gpa)).collect();
        for (s, e) in coalesce(&flat) {
            let _ = self.kunmap(p, s, e - s);
        }
        for &(va, b) in runs {
            p.publish(change(KIND_UNMAP, va, b.len, b.gpa));
        }
    }
}
