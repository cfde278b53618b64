//! One frame pool per NUMA node: the partition's memory split by the topology
//! in `BootInfo` (which guest-physical range the proxy bound to which host node,
//! `mote run --numa`), so a frame handed out for a node really lies in the host
//! memory bound to it. A request is served as a [`Placement`]
//! (`crate::numa::Numa::placement`) says: from which nodes, in which order,
//! interleaved or filled, and where it falls back when a node is full.
//!
//! With one node (every run on a one-node machine, and `--numa off`) this is the
//! single [`FramePool`] it was before.

use alloc::vec::Vec;

use mote_abi::errno::Errno;
use mote_abi::numa::Topology;

use super::{FramePool, FrameSize, Held, Run};
use crate::numa::Placement;

/// The partition's frames, a [`FramePool`] per node.
#[derive(Debug)]
pub struct Frames {
    pools: Vec<FramePool>,
    topo: Topology,
    /// Which chunks may hold data (`held`), over all pools.
    held: Held,
}

impl From<FramePool> for Frames {
    /// One node holding the whole pool.
    fn from(pool: FramePool) -> Frames {
        let topo = Topology::single(pool.range().1, 1);
        Frames {
            held: Held::new(pool.range().1),
            pools: alloc::vec![pool],
            topo,
        }
    }
}

impl Frames {
    /// The pools of a partition: node `i`'s is its guest-physical range above
    /// the boot regions (`BootInfo::pool_start`), with its share of the 2 MiB-only
    /// memory (`BootInfo::large_pool_start`).
    pub fn from_boot(boot: &mote_abi::boot::BootInfo, topo: Topology) -> Frames {
        let pools = (0..topo.nodes())
            .map(|i| {
                let (s, e) = topo.range(i);
                let s = s.max(boot.pool_start);
                let e = e.max(s);
                match boot.large_pool_start {
                    0 => FramePool::new(s, e),
                    large => FramePool::with_large(s, large.clamp(s, e), e),
                }
            })
            .collect::<Vec<FramePool>>();
        let end = pools.iter().map(|p| p.range().1).max().unwrap_or(0);
        Frames {
            pools,
            topo,
            held: Held::new(end),
        }
    }

    /// The topology the pools follow.
    pub fn topology(&self) -> Topology {
        self.topo
    }

    /// Number of nodes (pools).
    pub fn nodes(&self) -> usize {
        self.pools.len()
    }

    /// The node index holding `gpa`.
    pub fn node_of(&self, gpa: u64) -> usize {
        self.topo.node_of_gpa(gpa).min(self.pools.len() - 1)
    }

    /// Node `i`'s pool.
    pub fn pool(&self, i: usize) -> &FramePool {
        &self.pools[i]
    }

    /// Hand out `len` bytes (rounded up to the frame size) as `place` says:
    /// the runs in order (interleaved chunks alternate nodes) and the node index
    /// of the last chunk. Nothing is taken when the request cannot be met
    /// (`ENOMEM`).
    pub fn alloc_placed(
        &mut self,
        len: u64,
        size: FrameSize,
        place: &Placement,
    ) -> Result<(Vec<Run>, usize), Errno> {
        let free: Vec<u64> = self.pools.iter().map(|p| p.available_in(size)).collect();
        let parts = place.split(len.max(1), size.bytes(), &free)?;
        let mut runs = Vec::new();
        let mut last = 0;
        for (node, bytes) in parts {
            match self.pools[node].alloc(bytes, size) {
                Ok(r) => runs.extend(r),
                Err(e) => {
                    for r in runs {
                        self.free(r.gpa, r.len);
                    }
                    return Err(e);
                }
            }
            last = node;
        }
        self.hold(&runs);
        Ok((runs, last))
    }

    /// Hand out `len` bytes from node `node` only (a page moved there).
    pub fn alloc_on(&mut self, node: usize, len: u64, size: FrameSize) -> Result<Vec<Run>, Errno> {
        let runs = self
            .pools
            .get_mut(node)
            .ok_or(Errno::ENOMEM)?
            .alloc(len, size)?;
        self.hold(&runs);
        Ok(runs)
    }

    /// Hand out `len` bytes from node `first`, else from the others in order
    /// (frames with no policy of their own: page tables, a split page's copy).
    pub fn alloc(&mut self, len: u64, size: FrameSize, first: usize) -> Result<Vec<Run>, Errno> {
        if let [only] = self.pools.as_mut_slice() {
            let runs = only.alloc(len, size)?;
            self.hold(&runs);
            return Ok(runs);
        }
        let first = first.min(self.pools.len() - 1);
        let place = Placement {
            nodes: alloc::vec![first],
            spread: false,
            fallback: self.topo.fallback(first).filter(|&i| i != first).collect(),
            near: Vec::new(),
        };
        self.alloc_placed(len, size, &place).map(|(r, _)| r)
    }

    /// Give back `[gpa, gpa+len)` (page aligned, previously handed out, within
    /// one node). The frames are dirty from now on.
    pub fn free(&mut self, gpa: u64, len: u64) {
        let node = self.node_of(gpa);
        self.pools[node].free(gpa, len);
        if let Some((a, l)) = self.pools[node].free_run_at(gpa) {
            self.held.release(a, l);
        }
    }

    /// Record handed-out runs as holding data.
    fn hold(&mut self, runs: &[Run]) {
        for r in runs {
            self.held.hold(r.gpa, r.len);
        }
    }

    /// Which 2 MiB chunks may hold data (`held`): what `fork` copies of the
    /// pools.
    pub fn held(&self) -> &Held {
        &self.held
    }

    /// Bytes that can still be handed out.
    pub fn available(&self) -> u64 {
        self.pools.iter().map(FramePool::available).sum()
    }

    /// Bytes that can still be handed out in chunks of `size`.
    pub fn available_in(&self, size: FrameSize) -> u64 {
        self.pools.iter().map(|p| p.available_in(size)).sum()
    }

    /// Bytes of never-used memory left.
    pub fn untouched(&self) -> u64 {
        self.pools.iter().map(FramePool::untouched).sum()
    }

    /// Bounds of what was ever handed out (`FramePool::used_ends`, over all
    /// nodes: the highest bump pointer of each kind). Memory beyond holds
    /// nothing; memory below that was never handed out is zero (`fork`'s copy
    /// skips zero blocks).
    pub fn used_ends(&self) -> (u64, u64, u64) {
        let first = self.pools[0].used_ends();
        self.pools[1..].iter().fold(first, |(a, ls, lb), p| {
            let (pa, pls, plb) = p.used_ends();
            // A node whose ordinary memory was never used (or is empty) adds nothing.
            let a = if pa > p.range().0 { a.max(pa) } else { a };
            let ls = match (ls, pls) {
                (0, x) | (x, 0) => x,
                (x, y) => x.min(y),
            };
            (a, ls, lb.max(plb))
        })
    }

    /// `[start, end)` of all the pools.
    pub fn range(&self) -> (u64, u64) {
        let start = self.pools.iter().map(|p| p.range().0).min().unwrap_or(0);
        let end = self.pools.iter().map(|p| p.range().1).max().unwrap_or(0);
        (start, end)
    }

    /// Does any pool have memory the platform maps only whole?
    pub fn has_whole_only(&self) -> bool {
        self.pools.iter().any(FramePool::has_whole_only)
    }

    /// Is the frame at `gpa` part of a whole-only 2 MiB chunk?
    pub fn whole_chunks_only(&self, gpa: u64) -> bool {
        self.pools[self.node_of(gpa)].whole_chunks_only(gpa)
    }

    /// The platform cannot back 2 MiB-only frames any more (on any node).
    pub fn retire_large(&mut self) {
        self.pools.iter_mut().for_each(FramePool::retire_large);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mote_abi::boot::BootInfo;
    use mote_abi::layout::PAGE_SIZE;
    use mote_abi::numa::PLACE_LIST;

    const MB: u64 = 1 << 20;

    /// Three nodes (ids 0, 2, 5) of 16 MiB each, the pool from 4 MiB.
    fn three() -> Frames {
        let topo = Topology::new(
            6,
            PLACE_LIST,
            &[(0, 16 * MB), (2, 32 * MB), (5, 48 * MB)],
            &[0, 1, 2],
            48 * MB,
        )
        .unwrap();
        let boot = BootInfo {
            pool_start: 4 * MB,
            mem_size: 48 * MB,
            ..BootInfo::default()
        };
        Frames::from_boot(&boot, topo)
    }

    #[test]
    fn held_chunks_follow_what_is_handed_out_and_given_back() {
        let mut f = three();
        let held = |f: &Frames, gpa: u64| f.held().may_hold(gpa);
        assert!(!held(&f, 4 * MB) && !held(&f, 20 * MB));
        let a = f.alloc(4 * MB, FrameSize::Large, 0).unwrap();
        let b = f.alloc_on(1, PAGE_SIZE, FrameSize::Small).unwrap();
        for r in a.iter().chain(&b) {
            assert!(held(&f, r.gpa) && held(&f, r.gpa + r.len - 1), "{r:?}");
        }
        // The 4 KiB frame's chunk stays held while any frame of it is out.
        let c = f.alloc_on(1, PAGE_SIZE, FrameSize::Small).unwrap()[0];
        f.free(b[0].gpa, PAGE_SIZE);
        assert!(held(&f, c.gpa));
        f.free(c.gpa, PAGE_SIZE);
        // Both back: if the chunk is whole in one free run, it is released.
        let run = f.pool(1).free_run_at(c.gpa).unwrap();
        let chunk = c.gpa & !(2 * MB - 1);
        assert_eq!(
            !held(&f, c.gpa),
            run.0 <= chunk && run.0 + run.1 >= chunk + 2 * MB
        );
        // Whole chunks given back are released.
        for r in a {
            f.free(r.gpa, r.len);
            assert!(!held(&f, r.gpa) && !held(&f, r.gpa + r.len - 1), "{r:?}");
        }
    }

    fn fill(nodes: &[usize], fallback: &[usize]) -> Placement {
        Placement {
            nodes: nodes.to_vec(),
            spread: false,
            fallback: fallback.to_vec(),
            near: Vec::new(),
        }
    }

    #[test]
    fn each_node_hands_out_its_own_range() {
        let mut f = three();
        assert_eq!(f.range(), (4 * MB, 48 * MB));
        assert_eq!(f.available(), 44 * MB);
        for node in 0..3 {
            let (runs, last) = f
                .alloc_placed(2 * MB, FrameSize::Large, &fill(&[node], &[]))
                .unwrap();
            assert_eq!(last, node);
            assert!(runs.iter().all(|r| f.node_of(r.gpa) == node));
            let (s, e) = f.topology().range(node);
            assert!(runs
                .iter()
                .all(|r| r.gpa >= s.max(4 * MB) && r.gpa + r.len <= e));
        }
        assert_eq!(f.pool(1).available(), 14 * MB);
    }

    #[test]
    fn interleave_alternates_the_pools() {
        let mut f = three();
        let place = Placement {
            nodes: alloc::vec![1, 2],
            spread: true,
            fallback: alloc::vec![0, 1, 2],
            near: Vec::new(),
        };
        let (runs, last) = f.alloc_placed(8 * MB, FrameSize::Large, &place).unwrap();
        let nodes: Vec<usize> = runs.iter().map(|r| f.node_of(r.gpa)).collect();
        assert_eq!(nodes, [1, 2, 1, 2]);
        assert_eq!(last, 2);
        let (runs, _) = f
            .alloc_placed(3 * 4096, FrameSize::Small, &place.starting_at(2))
            .unwrap();
        let nodes: Vec<usize> = runs.iter().map(|r| f.node_of(r.gpa)).collect();
        assert_eq!(nodes, [2, 1, 2]);
    }

    #[test]
    fn a_full_node_falls_back_or_is_enomem_when_bound() {
        let mut f = three();
        // Node 1 full.
        f.alloc_placed(16 * MB, FrameSize::Small, &fill(&[1], &[]))
            .unwrap();
        assert_eq!(f.pool(1).available(), 0);
        let bind = fill(&[1], &[]);
        let before = f.available();
        assert_eq!(
            f.alloc_placed(4096, FrameSize::Small, &bind),
            Err(Errno::ENOMEM)
        );
        assert_eq!(f.available(), before, "a failed request takes nothing");
        // Preferred node 1: node 0, then 2.
        let pref = fill(&[1], &[0, 2]);
        let (runs, last) = f.alloc_placed(14 * MB, FrameSize::Large, &pref).unwrap();
        assert_eq!(last, 2);
        let on = |n| {
            runs.iter()
                .filter(|r| f.node_of(r.gpa) == n)
                .map(|r| r.len)
                .sum::<u64>()
        };
        assert_eq!((on(0), on(2)), (12 * MB, 2 * MB));
        // Interleave over 1 and 2 with 1 full: every chunk on 2.
        let il = Placement {
            nodes: alloc::vec![1, 2],
            spread: true,
            fallback: alloc::vec![0, 1, 2],
            near: Vec::new(),
        };
        let (runs, _) = f.alloc_placed(4 * MB, FrameSize::Large, &il).unwrap();
        assert!(runs.iter().all(|r| f.node_of(r.gpa) == 2));
        // Freed frames go back to their own node.
        assert_eq!(f.pool(2).available(), 10 * MB);
        f.free(runs[0].gpa, runs[0].len);
        assert_eq!(f.pool(2).available(), 14 * MB);
    }

    #[test]
    fn two_mib_only_memory_is_split_by_node_too() {
        let topo =
            Topology::new(2, PLACE_LIST, &[(0, 16 * MB), (1, 32 * MB)], &[0], 32 * MB).unwrap();
        let boot = BootInfo {
            pool_start: 4 * MB,
            large_pool_start: 12 * MB,
            mem_size: 32 * MB,
            ..BootInfo::default()
        };
        let f = Frames::from_boot(&boot, topo);
        assert!(f.whole_chunks_only(12 * MB) && f.whole_chunks_only(20 * MB));
        assert!(!f.whole_chunks_only(8 * MB));
        assert_eq!(f.pool(0).available_in(FrameSize::Small), 8 * MB);
        assert_eq!(f.pool(1).available_in(FrameSize::Small), 0);
        assert_eq!(f.used_ends(), (4 * MB, 12 * MB, 16 * MB));
    }

    #[test]
    fn one_pool_is_one_node() {
        let mut f = Frames::from(FramePool::new(4 * MB, 20 * MB));
        assert_eq!(f.nodes(), 1);
        let r = f.alloc(4 * MB, FrameSize::Large, 0).unwrap();
        assert_eq!(r[0].gpa, 4 * MB);
        assert_eq!(f.used_ends(), (8 * MB, 0, 0));
    }
}
