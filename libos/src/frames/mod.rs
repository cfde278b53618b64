//! The guest-physical frame pool: every byte of application memory comes from here.
//!
//! The pool covers `[BootInfo::pool_start, BootInfo::mem_size)`; where the platform
//! has memory it can map only in whole 2 MiB pages (`BootInfo::large_pool_start`,
//! the hosted platform's hugetlbfs memory), that part is a region of its own that
//! serves only 2 MiB and 1 GiB requests. Memory that was never
//! handed out is known to be zero (guest RAM is a fresh memfd), so it is tracked by a
//! bump pointer; frames that come back (munmap, brk shrink) go to a free list of
//! coalesced runs and are reported *dirty* when handed out again, so the caller zeroes
//! them. Three sizes are served: 4 KiB frames, 2 MiB chunks aligned to 2 MiB and
//! 1 GiB chunks aligned to 1 GiB (which kernel-min maps with large or huge pages). Requests are answered with as few physically
//! contiguous runs as possible, because every run costs a kernel call to map and a
//! map-log entry to publish.
//!
//! A partition on several NUMA nodes has one pool per node ([`Frames`], `nodes`).

mod held;
mod nodes;

pub use held::Held;
pub use nodes::Frames;

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use mote_abi::errno::Errno;
use mote_abi::layout::{align_down, align_up, HUGE_PAGE_SIZE, LARGE_PAGE_SIZE, PAGE_SIZE};

/// Which frames a request wants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameSize {
    /// 4 KiB frames; runs are page aligned.
    Small,
    /// 2 MiB chunks; every run starts 2 MiB aligned and is a multiple of 2 MiB.
    Large,
    /// 1 GiB chunks; every run starts 1 GiB aligned and is a multiple of 1 GiB.
    Huge,
}

impl FrameSize {
    /// The unit in bytes.
    pub fn bytes(self) -> u64 {
        match self {
            FrameSize::Small => PAGE_SIZE,
            FrameSize::Large => LARGE_PAGE_SIZE,
            FrameSize::Huge => HUGE_PAGE_SIZE,
        }
    }
}

/// A physically contiguous run of frames handed out by the pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    /// Guest-physical start.
    pub gpa: u64,
    /// Length in bytes.
    pub len: u64,
    /// The memory is known to be zero; when false the caller must zero it before the
    /// application can see it.
    pub zeroed: bool,
}

/// A free run on the free list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Free {
    len: u64,
    zeroed: bool,
}

/// The frames of one kind of memory.
#[derive(Debug)]
struct Region {
    start: u64,
    end: u64,
    /// `[bump, end)` has never been handed out.
    bump: u64,
    /// Returned (and skipped) runs, by start address; neighbours with the same
    /// `zeroed` are coalesced.
    free: BTreeMap<u64, Free>,
    /// Sum of the free list's lengths.
    free_bytes: u64,
}

/// The pool: one region of memory the platform maps in any page size, and
/// optionally a second (`BootInfo::large_pool_start`) of 2 MiB pages the platform
/// maps only whole (hugetlbfs on the hosted platform), which serves 2 MiB and 1 GiB
/// requests first.
#[derive(Debug)]
pub struct FramePool {
    any: Region,
    large: Option<Region>,
    /// The platform could not back a chunk of the 2 MiB-only region (Linux ran
    /// out of hugetlbfs pages): no more new requests go there.
    large_retired: bool,
}

impl FramePool {
    /// A pool over `[start, end)`; both are rounded inwards to 4 KiB.
    pub fn new(start: u64, end: u64) -> Self {
        FramePool {
            any: Region::new(start, end),
            large: None,
            large_retired: false,
        }
    }

    /// A pool over `[start, large_start)`, mapped in any page size, and
    /// `[large_start, end)`, handed out and mapped only in whole 2 MiB chunks.
    pub fn with_large(start: u64, large_start: u64, end: u64) -> Self {
        let large_start = align_up(large_start, LARGE_PAGE_SIZE);
        FramePool {
            any: Region::new(start, large_start),
            large: (large_start < end).then(|| Region::new(large_start, end)),
            large_retired: false,
        }
    }

    /// The pool of a partition.
    pub fn from_boot(boot: &mote_abi::boot::BootInfo) -> Self {
        match boot.large_pool_start {
            0 => Self::new(boot.pool_start, boot.mem_size),
            large => Self::with_large(boot.pool_start, large, boot.mem_size),
        }
    }

    fn regions(&self) -> impl Iterator<Item = &Region> {
        core::iter::once(&self.any).chain(self.large.as_ref())
    }

    /// Bytes that can still be handed out.
    pub fn available(&self) -> u64 {
        self.regions().map(Region::available).sum()
    }

    /// Bytes of never-used memory left.
    pub fn untouched(&self) -> u64 {
        self.regions().map(|r| r.end - r.bump).sum()
    }

    /// Where each region's never-used memory starts (its bump pointer): the
    /// ordinary region's, then the 2 MiB region's start and bump pointer (both
    /// 0 without one). Memory beyond holds nothing (`fork` copies up to there).
    pub fn used_ends(&self) -> (u64, u64, u64) {
        let (ls, lb) = self.large.as_ref().map_or((0, 0), |l| (l.start, l.bump));
        (self.any.bump, ls, lb)
    }

    /// `[start, end)` of the pool (both regions).
    pub fn range(&self) -> (u64, u64) {
        let end = self.large.as_ref().map_or(self.any.end, |l| l.end);
        (self.any.start, end)
    }

    /// Bytes that can still be handed out in chunks of `size` (aligned stretches).
    pub fn available_in(&self, size: FrameSize) -> u64 {
        match (size, &self.large) {
            (FrameSize::Small, _) | (_, None) => self.any.available_in(size),
            _ if self.large_retired => self.any.available_in(size),
            (_, Some(l)) => self.any.available_in(size) + l.available_in(size),
        }
    }

    /// Does the pool have memory the platform maps only in whole 2 MiB chunks (the
    /// hosted platform's hugetlbfs memory)? Never in the partition.
    pub fn has_whole_only(&self) -> bool {
        self.large.is_some()
    }

    /// Is the frame at `gpa` part of a 2 MiB chunk the platform can map only whole
    /// and 2 MiB aligned (so libos must never map, unmap or protect part of it)?
    pub fn whole_chunks_only(&self, gpa: u64) -> bool {
        self.large
            .as_ref()
            .is_some_and(|l| gpa >= l.start && gpa < l.end)
    }

    /// The platform cannot back the 2 MiB-only region's frames any more (ENOSPC
    /// from `Platform::map`): later requests go to the other region. Frames of it
    /// already handed out stay valid and come back with `free`.
    pub fn retire_large(&mut self) {
        self.large_retired = true;
    }

    /// Hand out `len` bytes (rounded up to the frame size) as contiguous runs,
    /// preferring a single run. Nothing is taken when the request cannot be met
    /// (`ENOMEM`). 2 MiB and 1 GiB requests come from the 2 MiB-only region first,
    /// then from the other.
    pub fn alloc(&mut self, len: u64, size: FrameSize) -> Result<Vec<Run>, Errno> {
        let retired = self.large_retired;
        let Some(large) = self
            .large
            .as_mut()
            .filter(|_| size != FrameSize::Small && !retired)
        else {
            return self.any.alloc(len, size);
        };
        let len = align_up(len.max(1), size.bytes());
        let from_large = large.available_in(size).min(len);
        if from_large == len {
            return large.alloc(len, size);
        }
        let mut runs = match from_large {
            0 => Vec::new(),
            n => large.alloc(n, size)?,
        };
        match self.any.alloc(len - from_large, size) {
            Ok(more) => {
                runs.extend(more);
                Ok(runs)
            }
            Err(e) => {
                for r in runs {
                    self.free(r.gpa, r.len);
                }
                Err(e)
            }
        }
    }

    /// The free run (after coalescing) holding `gpa`, as `(start, len)`; `None`
    /// when `gpa` is handed out or was never handed out.
    pub fn free_run_at(&self, gpa: u64) -> Option<(u64, u64)> {
        let region = match &self.large {
            Some(l) if gpa >= l.start => l,
            _ => &self.any,
        };
        region
            .free
            .range(..=gpa)
            .next_back()
            .filter(|(&a, f)| gpa < a + f.len)
            .map(|(&a, f)| (a, f.len))
    }

    /// Give back `[gpa, gpa+len)` (page aligned, previously handed out). The frames
    /// are dirty from now on.
    pub fn free(&mut self, gpa: u64, len: u64) {
        match &mut self.large {
            Some(l) if gpa >= l.start => {
                debug_assert!(
                    gpa.is_multiple_of(LARGE_PAGE_SIZE) && len.is_multiple_of(LARGE_PAGE_SIZE)
                );
                l.free(gpa, len)
            }
            _ => self.any.free(gpa, len),
        }
    }
}

impl Region {
    /// A region over `[start, end)`; both are rounded inwards to 4 KiB.
    fn new(start: u64, end: u64) -> Self {
        let start = align_up(start, PAGE_SIZE);
        let end = align_down(end, PAGE_SIZE).max(start);
        Region {
            start,
            end,
            bump: start,
            free: BTreeMap::new(),
            free_bytes: 0,
        }
    }

    /// Bytes that can still be handed out (in 4 KiB frames).
    fn available(&self) -> u64 {
        self.free_bytes + (self.end - self.bump)
    }

    /// Bytes that can still be handed out in chunks of `size` (aligned stretches).
    fn available_in(&self, size: FrameSize) -> u64 {
        let unit = size.bytes();
        let chunks_in = |a: u64, l: u64| align_down(a + l, unit).saturating_sub(align_up(a, unit));
        chunks_in(self.bump, self.end - self.bump)
            + self
                .free
                .iter()
                .map(|(&a, f)| chunks_in(a, f.len))
                .sum::<u64>()
    }

    /// Hand out `len` bytes (rounded up to the frame size) as contiguous runs,
    /// preferring a single run. Nothing is taken when the request cannot be met
    /// (`ENOMEM`).
    fn alloc(&mut self, len: u64, size: FrameSize) -> Result<Vec<Run>, Errno> {
        let unit = size.bytes();
        let len = align_up(len.max(1), unit);
        match size {
            FrameSize::Small => self.alloc_small(len),
            FrameSize::Large | FrameSize::Huge => self.alloc_aligned(len, unit),
        }
    }

    /// Give back `[gpa, gpa+len)` (page aligned, previously handed out). The frames
    /// are dirty from now on.
    fn free(&mut self, gpa: u64, len: u64) {
        debug_assert!(gpa.is_multiple_of(PAGE_SIZE) && len.is_multiple_of(PAGE_SIZE));
        debug_assert!(gpa >= self.start && gpa + len <= self.bump);
        if len == 0 {
            return;
        }
        self.insert_free(gpa, len, false);
    }

    fn alloc_small(&mut self, len: u64) -> Result<Vec<Run>, Errno> {
        if self.available() < len {
            return Err(Errno::ENOMEM);
        }
        // 1. One returned run that fits: best fit, so big runs stay big.
        let best = self
            .free
            .iter()
            .filter(|(_, f)| f.len >= len)
            .min_by_key(|(_, f)| f.len)
            .map(|(&a, _)| a);
        if let Some(a) = best {
            return Ok(alloc::vec![self.take_free(a, a, len)]);
        }
        // 2. One run from never-used memory.
        if self.end - self.bump >= len {
            return Ok(alloc::vec![self.take_bump(len)]);
        }
        // 3. Several runs: what is left above the bump pointer (already zero), then
        //    the largest returned runs.
        let mut runs = Vec::new();
        let mut need = len;
        let bump_left = self.end - self.bump;
        if bump_left > 0 {
            runs.push(self.take_bump(bump_left.min(need)));
            need -= bump_left.min(need);
        }
        while need > 0 {
            let (&a, f) = self
                .free
                .iter()
                .max_by_key(|(_, f)| f.len)
                .expect("available() counted these bytes");
            let take = f.len.min(need);
            runs.push(self.take_free(a, a, take));
            need -= take;
        }
        Ok(runs)
    }

    fn alloc_aligned(&mut self, len: u64, unit: u64) -> Result<Vec<Run>, Errno> {
        // Aligned capacity of each source, so a failing request takes nothing.
        let chunks_in = |a: u64, l: u64| {
            let s = align_up(a, unit);
            let e = align_down(a + l, unit);
            e.saturating_sub(s)
        };
        let bump_cap = chunks_in(self.bump, self.end - self.bump);
        let free_cap: u64 = self.free.iter().map(|(&a, f)| chunks_in(a, f.len)).sum();
        if bump_cap + free_cap < len {
            return Err(Errno::ENOMEM);
        }
        // 1. One returned run holding an aligned stretch of `len`: best fit.
        let best = self
            .free
            .iter()
            .filter(|(&a, f)| chunks_in(a, f.len) >= len)
            .min_by_key(|(_, f)| f.len)
            .map(|(&a, _)| a);
        if let Some(a) = best {
            return Ok(alloc::vec![self.take_free(a, align_up(a, unit), len)]);
        }
        // 2. From never-used memory; the frames skipped for alignment stay free (and
        //    zero).
        if bump_cap >= len {
            return Ok(alloc::vec![self.take_bump_aligned(len, unit)]);
        }
        // 3. Several runs, largest first.
        let mut runs = Vec::new();
        let mut need = len;
        if bump_cap > 0 {
            let take = bump_cap.min(need);
            runs.push(self.take_bump_aligned(take, unit));
            need -= take;
        }
        while need > 0 {
            let (a, cap) = self
                .free
                .iter()
                .map(|(&a, f)| (a, chunks_in(a, f.len)))
                .max_by_key(|&(_, c)| c)
                .expect("capacity was counted");
            debug_assert!(cap > 0);
            let take = cap.min(need);
            runs.push(self.take_free(a, align_up(a, unit), take));
            need -= take;
        }
        Ok(runs)
    }

    fn take_bump(&mut self, len: u64) -> Run {
        let gpa = self.bump;
        self.bump += len;
        Run {
            gpa,
            len,
            zeroed: true,
        }
    }

    fn take_bump_aligned(&mut self, len: u64, unit: u64) -> Run {
        let aligned = align_up(self.bump, unit);
        if aligned > self.bump {
            let (gap, glen) = (self.bump, aligned - self.bump);
            self.bump = aligned;
            self.insert_free(gap, glen, true);
        }
        self.take_bump(len)
    }

    /// Take `[at, at+len)` out of the free run starting at `run`.
    fn take_free(&mut self, run: u64, at: u64, len: u64) -> Run {
        let f = self.free.remove(&run).expect("free run exists");
        debug_assert!(at >= run && at + len <= run + f.len);
        self.free_bytes -= f.len;
        if at > run {
            self.free.insert(
                run,
                Free {
                    len: at - run,
                    zeroed: f.zeroed,
                },
            );
            self.free_bytes += at - run;
        }
        let rest = run + f.len - (at + len);
        if rest > 0 {
            self.free.insert(
                at + len,
                Free {
                    len: rest,
                    zeroed: f.zeroed,
                },
            );
            self.free_bytes += rest;
        }
        Run {
            gpa: at,
            len,
            zeroed: f.zeroed,
        }
    }

    fn insert_free(&mut self, mut gpa: u64, mut len: u64, zeroed: bool) {
        self.free_bytes += len;
        // Coalesce with the run before and the run after when both are equally clean.
        if let Some((&pa, &pf)) = self.free.range(..gpa).next_back() {
            debug_assert!(pa + pf.len <= gpa, "double free of {gpa:#x}");
            if pa + pf.len == gpa && pf.zeroed == zeroed {
                self.free.remove(&pa);
                gpa = pa;
                len += pf.len;
            }
        }
        if let Some(&nf) = self.free.get(&(gpa + len)) {
            if nf.zeroed == zeroed {
                self.free.remove(&(gpa + len));
                len += nf.len;
            }
        }
        self.free.insert(gpa, Free { len, zeroed });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: u64 = 1 << 20;

    #[test]
    fn fresh_memory_is_one_zeroed_run() {
        let mut p = FramePool::new(0x40_0000, 0x40_0000 + 16 * MB);
        let r = p.alloc(3 * PAGE_SIZE, FrameSize::Small).unwrap();
        assert_eq!(
            r,
            [Run {
                gpa: 0x40_0000,
                len: 3 * PAGE_SIZE,
                zeroed: true
            }]
        );
        assert_eq!(p.available(), 16 * MB - 3 * PAGE_SIZE);
    }

    #[test]
    fn used_ends_bound_what_was_ever_handed_out() {
        let mut p = FramePool::with_large(0x40_0000, 0x40_0000 + 8 * MB, 0x40_0000 + 16 * MB);
        assert_eq!(
            p.used_ends(),
            (0x40_0000, 0x40_0000 + 8 * MB, 0x40_0000 + 8 * MB)
        );
        let r = p.alloc(3 * PAGE_SIZE, FrameSize::Small).unwrap();
        p.alloc(2 * MB, FrameSize::Large).unwrap();
        // Freed memory stays below the bump pointer: it may hold data again.
        p.free(r[0].gpa, r[0].len);
        assert_eq!(
            p.used_ends(),
            (
                0x40_0000 + 3 * PAGE_SIZE,
                0x40_0000 + 8 * MB,
                0x40_0000 + 10 * MB
            )
        );
        assert_eq!(FramePool::new(0, 8 * MB).used_ends(), (0, 0, 0));
    }

    #[test]
    fn exhaustion_is_enomem_and_takes_nothing() {
        let mut p = FramePool::new(0, 8 * PAGE_SIZE);
        p.alloc(6 * PAGE_SIZE, FrameSize::Small).unwrap();
        assert_eq!(p.alloc(3 * PAGE_SIZE, FrameSize::Small), Err(Errno::ENOMEM));
        assert_eq!(p.available(), 2 * PAGE_SIZE);
        assert_eq!(p.alloc(PAGE_SIZE, FrameSize::Large), Err(Errno::ENOMEM));
        assert_eq!(p.alloc(2 * PAGE_SIZE, FrameSize::Small).unwrap().len(), 1);
        assert_eq!(p.alloc(PAGE_SIZE, FrameSize::Small), Err(Errno::ENOMEM));
    }

    #[test]
    fn reused_frames_are_reported_dirty() {
        let mut p = FramePool::new(0, 64 * PAGE_SIZE);
        let a = p.alloc(4 * PAGE_SIZE, FrameSize::Small).unwrap()[0];
        p.free(a.gpa, a.len);
        let b = p.alloc(2 * PAGE_SIZE, FrameSize::Small).unwrap();
        assert_eq!(
            b,
            [Run {
                gpa: a.gpa,
                len: 2 * PAGE_SIZE,
                zeroed: false
            }]
        );
    }

    #[test]
    fn large_chunks_are_aligned_and_the_gap_stays_clean() {
        let mut p = FramePool::new(PAGE_SIZE, 16 * MB);
        let r = p.alloc(4 * MB, FrameSize::Large).unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].gpa % LARGE_PAGE_SIZE, 0);
        assert_eq!(r[0].gpa, 2 * MB);
        assert!(r[0].zeroed);
        // The skipped frames below 2 MiB are handed out, still known zero.
        let s = p.alloc(PAGE_SIZE, FrameSize::Small).unwrap();
        assert!(s[0].zeroed && s[0].gpa < 2 * MB);
    }

    #[test]
    fn huge_chunks_are_gigabyte_aligned_or_enomem() {
        const GB: u64 = 1 << 30;
        let mut p = FramePool::new(100 * MB, 2 * GB + 100 * MB);
        // [1G, 2G) is the only aligned gigabyte.
        assert_eq!(p.alloc(2 * GB, FrameSize::Huge), Err(Errno::ENOMEM));
        let r = p.alloc(GB, FrameSize::Huge).unwrap();
        assert_eq!(
            r,
            [Run {
                gpa: GB,
                len: GB,
                zeroed: true
            }]
        );
        assert_eq!(p.alloc(GB, FrameSize::Huge), Err(Errno::ENOMEM));
        // What was skipped below it is still there, in 2 MiB chunks too.
        let l = p.alloc(800 * MB, FrameSize::Large).unwrap();
        assert_eq!(l.iter().map(|r| r.len).sum::<u64>(), 800 * MB);
        assert!(l.iter().all(|r| r.gpa % LARGE_PAGE_SIZE == 0 && r.zeroed));
        p.free(GB, GB);
        assert_eq!(p.alloc(GB, FrameSize::Huge).unwrap()[0].gpa, GB);
    }

    #[test]
    fn freed_small_frames_coalesce_into_a_large_chunk() {
        let mut p = FramePool::new(0, 4 * MB);
        let runs = p.alloc(4 * MB, FrameSize::Small).unwrap();
        assert_eq!(runs.len(), 1);
        for i in 0..1024 {
            p.free(i * PAGE_SIZE, PAGE_SIZE);
        }
        let r = p.alloc(4 * MB, FrameSize::Large).unwrap();
        assert_eq!(
            r,
            [Run {
                gpa: 0,
                len: 4 * MB,
                zeroed: false
            }]
        );
    }

    #[test]
    fn fragmented_request_is_served_in_several_runs() {
        let mut p = FramePool::new(0, 8 * PAGE_SIZE);
        p.alloc(8 * PAGE_SIZE, FrameSize::Small).unwrap();
        p.free(0, PAGE_SIZE);
        p.free(2 * PAGE_SIZE, 2 * PAGE_SIZE);
        p.free(6 * PAGE_SIZE, PAGE_SIZE);
        let r = p.alloc(4 * PAGE_SIZE, FrameSize::Small).unwrap();
        assert_eq!(r.iter().map(|r| r.len).sum::<u64>(), 4 * PAGE_SIZE);
        assert_eq!(r[0].len, 2 * PAGE_SIZE, "largest run first");
        assert_eq!(p.available(), 0);
    }

    #[test]
    fn two_mib_only_memory_serves_large_requests_first_and_small_never() {
        // [4 MiB, 16 MiB) any size, [16 MiB, 24 MiB) whole 2 MiB chunks only.
        let mut p = FramePool::with_large(4 * MB, 16 * MB, 24 * MB);
        assert_eq!(p.range(), (4 * MB, 24 * MB));
        assert!(p.whole_chunks_only(16 * MB) && p.whole_chunks_only(24 * MB - 1));
        assert!(!p.whole_chunks_only(16 * MB - PAGE_SIZE));
        let r = p.alloc(4 * MB, FrameSize::Large).unwrap();
        assert_eq!(
            r,
            [Run {
                gpa: 16 * MB,
                len: 4 * MB,
                zeroed: true
            }]
        );
        let small = p.alloc(PAGE_SIZE, FrameSize::Small).unwrap();
        assert!(
            !p.whole_chunks_only(small[0].gpa),
            "4 KiB frames never from 2 MiB-only memory"
        );
        assert_eq!(p.available_in(FrameSize::Small), 12 * MB - PAGE_SIZE);
        // 6 MiB more: the 4 MiB left of the 2 MiB-only memory, then 2 MiB elsewhere.
        let r = p.alloc(6 * MB, FrameSize::Large).unwrap();
        assert_eq!(r.iter().map(|r| r.len).sum::<u64>(), 6 * MB);
        assert_eq!(
            r.iter()
                .filter(|r| p.whole_chunks_only(r.gpa))
                .map(|r| r.len)
                .sum::<u64>(),
            4 * MB
        );
        assert!(r.iter().all(|r| r.gpa.is_multiple_of(LARGE_PAGE_SIZE)));
        // A chunk given back is handed out again, dirty.
        p.free(16 * MB, 2 * MB);
        let again = p.alloc(2 * MB, FrameSize::Large).unwrap();
        assert_eq!(
            again,
            [Run {
                gpa: 16 * MB,
                len: 2 * MB,
                zeroed: false
            }]
        );
        // Too much for both is ENOMEM and takes nothing.
        let before = p.available();
        assert_eq!(p.alloc(64 * MB, FrameSize::Large), Err(Errno::ENOMEM));
        assert_eq!(p.available(), before);
    }
}
