//! Which NUMA node new frames come from: the policy of the VMA being backed
//! (`mbind`), else the calling thread's (`set_mempolicy`), turned into a
//! `crate::numa::Placement` for the core the call runs on, and served by the
//! per-node pools (`crate::frames::Frames`). Interleave follows Linux: a
//! thread policy takes its nodes in turn from where its last allocation left
//! off (`il_prev`); a VMA policy picks by address, chunk `k` of the mapping on
//! its `(va / chunk) % n`-th node, as `interleave_nid` does.

use alloc::vec::Vec;

use mote_abi::errno::Errno;

use crate::frames::{FrameSize, Run};
use crate::platform::Platform;

use super::AddressSpace;

impl AddressSpace {
    /// Frames for `[va, va + len)` in units of `size`, from the nodes the
    /// policy in force at `va` chooses. Nothing is taken on `ENOMEM` (a bound
    /// policy whose nodes are full, or no memory at all).
    pub(super) fn alloc_for<P: Platform>(
        &mut self,
        p: &P,
        va: u64,
        len: u64,
        size: FrameSize,
    ) -> Result<Vec<Run>, Errno> {
        if self.frames.nodes() == 1 {
            return self.frames.alloc(len, size, 0);
        }
        let vma_pol = self
            .vma_containing(va)
            .map(|(_, v)| v.policy)
            .filter(|&id| id != 0)
            .map(|id| self.numa.lookup(id));
        let tid = self.numa.caller();
        let (pol, of_task) = match vma_pol {
            Some(pol) => (pol, false),
            None => (self.numa.task(tid), true),
        };
        let mut place = self.numa.placement(pol.as_ref(), p.core());
        let unit = size.bytes();
        if place.spread && !place.nodes.is_empty() {
            let topo = self.numa.topo;
            let first = match (of_task, pol.as_ref()) {
                (true, Some(pol)) => self
                    .numa
                    .interleave_next(tid, pol)
                    .and_then(|id| topo.index_of(id)),
                _ => Some(place.nodes[((va / unit) % place.nodes.len() as u64) as usize]),
            };
            if let Some(first) = first {
                place = place.starting_at(first);
            }
            let (runs, _) = self.frames.alloc_placed(len, size, &place)?;
            if of_task {
                // The node the last chunk was meant for is the thread's il_prev.
                let chunks = len.max(1).div_ceil(unit) as usize;
                let last = place.nodes[(chunks - 1) % place.nodes.len()];
                self.numa.interleaved(tid, u32::from(topo.id(last)));
            }
            return Ok(runs);
        }
        self.frames.alloc_placed(len, size, &place).map(|(r, _)| r)
    }

    /// The node index of the core the call runs on (frames with no policy of
    /// their own: page tables).
    pub(super) fn local_node<P: Platform>(&self, p: &P) -> usize {
        self.numa.topo.node_of_core(p.core())
    }
}
