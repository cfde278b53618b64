//! The partition's NUMA topology as the proxy gives it in `BootInfo` (which
//! node holds which guest-physical memory, which node each LWK core is on, the
//! host's node ids), and its one validating reader, [`Topology::from_boot`].
//!
//! The proxy decides the placement (`mote run --numa`, `proxy/src/numa.rs`) and
//! binds the host memory behind each node's range to that host node; libos
//! answers the memory-policy calls and `getcpu` from this table. `BootInfo`
//! lies in memory the application's side can write, so nothing here is trusted
//! before [`Topology::from_boot`] has checked it.

use crate::boot::BootInfo;
use crate::layout::MAX_CORES;

/// Most nodes a partition spans.
pub const MAX_NODES: usize = 8;
/// Largest node id (plus one) the memory-policy calls accept: Linux's
/// `MAX_NUMNODES` with the distributions' `CONFIG_NODES_SHIFT=10`.
pub const MAX_NUMNODES: u32 = 1024;

/// `BootInfo::numa_place`: no host binding; the partition is one node.
pub const PLACE_OFF: u32 = 0;
/// Memory split over the nodes of the LWK cores, each part bound to its node.
pub const PLACE_CORES: u32 = 1;
/// Memory split over nodes the user listed, each part bound to its node.
pub const PLACE_LIST: u32 = 2;

/// Why a `BootInfo` topology was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TopologyError {
    /// `numa_nodes` is above [`MAX_NODES`].
    TooManyNodes(u32),
    /// `nr_node_ids` is 0 or above [`MAX_NUMNODES`].
    NodeIds(u32),
    /// Node `i`'s id is not below `nr_node_ids`, or repeats an earlier node's.
    BadId(usize),
    /// Node `i`'s memory is empty, not page aligned, or the last node does not
    /// end at `mem_size`.
    BadRange(usize),
    /// Core `c` names a node that does not exist.
    BadCore(usize),
    /// Node `i`'s fallback order is not every node once, itself first.
    BadOrder(usize),
}

/// A checked topology: `n` nodes, each with a memory range, a host id and cores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Topology {
    n: usize,
    nr_node_ids: u32,
    place: u32,
    mem_end: [u64; MAX_NODES],
    id: [u16; MAX_NODES],
    core_node: [u8; MAX_CORES],
    ncores: usize,
    /// `BootInfo::node_order`, checked (or the partition's order).
    order: [u32; MAX_NODES],
    /// `BootInfo::node_weight`.
    weight: [u8; MAX_NODES],
}

/// The partition's node order as a fallback order for node `i` of `n`: `i`,
/// then the others ascending.
fn plain_order(i: usize, n: usize) -> u32 {
    core::iter::once(i)
        .chain((0..n).filter(|&k| k != i))
        .enumerate()
        .fold(0, |acc, (k, node)| acc | (node as u32) << (4 * k))
}

impl Topology {
    /// One node, id 0, with all `mem_size` bytes and every core.
    pub fn single(mem_size: u64, ncores: usize) -> Topology {
        let mut mem_end = [0; MAX_NODES];
        mem_end[0] = mem_size;
        Topology {
            n: 1,
            nr_node_ids: 1,
            place: PLACE_OFF,
            mem_end,
            id: [0; MAX_NODES],
            core_node: [0; MAX_CORES],
            ncores: ncores.min(MAX_CORES),
            order: [0; MAX_NODES],
            weight: [0; MAX_NODES],
        }
    }

    /// Read and check the topology in `boot` (`numa_nodes == 0`: [`Topology::single`]).
    pub fn from_boot(boot: &BootInfo) -> Result<Topology, TopologyError> {
        let ncores = (boot.ncores as usize).clamp(1, MAX_CORES);
        let n = boot.numa_nodes as usize;
        if n == 0 {
            return Ok(Topology::single(boot.mem_size, ncores));
        }
        if n > MAX_NODES {
            return Err(TopologyError::TooManyNodes(boot.numa_nodes));
        }
        if boot.nr_node_ids == 0 || boot.nr_node_ids > MAX_NUMNODES {
            return Err(TopologyError::NodeIds(boot.nr_node_ids));
        }
        let mut prev = 0u64;
        for i in 0..n {
            let end = boot.node_mem_end[i];
            let id = boot.node_id[i];
            if u32::from(id) >= boot.nr_node_ids || boot.node_id[..i].contains(&id) {
                return Err(TopologyError::BadId(i));
            }
            if end <= prev || !end.is_multiple_of(crate::layout::PAGE_SIZE) {
                return Err(TopologyError::BadRange(i));
            }
            prev = end;
        }
        if prev != boot.mem_size {
            return Err(TopologyError::BadRange(n - 1));
        }
        if let Some(c) = (0..ncores).find(|&c| boot.core_node[c] as usize >= n) {
            return Err(TopologyError::BadCore(c));
        }
        let mut mem_end = [0; MAX_NODES];
        mem_end[..n].copy_from_slice(&boot.node_mem_end[..n]);
        let mut id = [0; MAX_NODES];
        id[..n].copy_from_slice(&boot.node_id[..n]);
        let mut core_node = [0; MAX_CORES];
        core_node[..ncores].copy_from_slice(&boot.core_node[..ncores]);
        let mut order = [0; MAX_NODES];
        if boot.node_order.iter().all(|&o| o == 0) {
            (0..n).for_each(|i| order[i] = plain_order(i, n));
        } else {
            for (i, o) in order.iter_mut().enumerate().take(n) {
                let word = boot.node_order[i];
                let nodes = (0..n).map(|k| ((word >> (4 * k)) & 0xf) as usize);
                let mut seen = 0u32;
                for node in nodes {
                    if node >= n || seen & (1 << node) != 0 {
                        return Err(TopologyError::BadOrder(i));
                    }
                    seen |= 1 << node;
                }
                if word & 0xf != i as u32 || (n < 8 && word >> (4 * n) != 0) {
                    return Err(TopologyError::BadOrder(i));
                }
                *o = word;
            }
        }
        let mut weight = [0; MAX_NODES];
        weight[..n].copy_from_slice(&boot.node_weight[..n]);
        Ok(Topology {
            n,
            nr_node_ids: boot.nr_node_ids,
            place: boot.numa_place,
            mem_end,
            id,
            core_node,
            ncores,
            order,
            weight,
        })
    }

    /// Write this topology into `boot` (the proxy's side).
    pub fn write(&self, boot: &mut BootInfo) {
        boot.numa_nodes = self.n as u32;
        boot.numa_place = self.place;
        boot.nr_node_ids = self.nr_node_ids;
        boot.node_mem_end = self.mem_end;
        boot.node_id = self.id;
        boot.core_node = self.core_node;
        boot.node_order = self.order;
        boot.node_weight = self.weight;
    }

    /// Order every node's fallback by `distance(from, to)` (the host's
    /// `node_distance`; ties keep the partition's order): the proxy's side.
    pub fn order_by(&mut self, distance: impl Fn(usize, usize) -> u32) {
        for i in 0..self.n {
            let mut others: [usize; MAX_NODES] = core::array::from_fn(|k| k);
            let others = &mut others[..self.n];
            others.sort_unstable_by_key(|&k| (k != i, distance(i, k), k));
            self.order[i] = others
                .iter()
                .enumerate()
                .fold(0, |acc, (k, &node)| acc | (node as u32) << (4 * k));
        }
    }

    /// Set the weighted-interleave weights (the proxy's side; 0 is 1).
    pub fn set_weights(&mut self, weights: &[u8]) {
        for (w, &x) in self.weight.iter_mut().zip(weights).take(self.n) {
            *w = x;
        }
    }

    /// Node `i`'s nodes, nearest first (itself first): Linux's zonelist order.
    pub fn fallback(&self, i: usize) -> impl Iterator<Item = usize> + '_ {
        let word = self.order.get(i).copied().unwrap_or(0);
        (0..self.n).map(move |k| ((word >> (4 * k)) & 0xf) as usize)
    }

    /// Node `i`'s weighted-interleave weight (at least 1).
    pub fn weight(&self, i: usize) -> u32 {
        u32::from(self.weight.get(i).copied().unwrap_or(0).max(1))
    }

    /// A topology from parts (the proxy's plan; tests). Checked as
    /// [`Topology::from_boot`] checks a `BootInfo`.
    pub fn new(
        nr_node_ids: u32,
        place: u32,
        nodes: &[(u16, u64)],
        core_node: &[u8],
        mem_size: u64,
    ) -> Result<Topology, TopologyError> {
        let mut b = BootInfo {
            mem_size,
            ncores: core_node.len() as u32,
            numa_nodes: nodes.len() as u32,
            numa_place: place,
            nr_node_ids,
            ..BootInfo::default()
        };
        if nodes.is_empty() || nodes.len() > MAX_NODES || core_node.len() > MAX_CORES {
            return Err(TopologyError::TooManyNodes(nodes.len() as u32));
        }
        for (i, &(id, end)) in nodes.iter().enumerate() {
            b.node_id[i] = id;
            b.node_mem_end[i] = end;
        }
        b.core_node[..core_node.len()].copy_from_slice(core_node);
        Topology::from_boot(&b)
    }

    /// Number of nodes.
    pub fn nodes(&self) -> usize {
        self.n
    }

    /// Linux's `nr_node_ids` on the host.
    pub fn nr_node_ids(&self) -> u32 {
        self.nr_node_ids
    }

    /// The `--numa` placement (`PLACE_*`).
    pub fn place(&self) -> u32 {
        self.place
    }

    /// Host id of node `i`.
    pub fn id(&self, i: usize) -> u16 {
        self.id[i]
    }

    /// The node index with host id `id`.
    pub fn index_of(&self, id: u32) -> Option<usize> {
        self.id[..self.n].iter().position(|&x| u32::from(x) == id)
    }

    /// Guest-physical memory of node `i`: `[start, end)`.
    pub fn range(&self, i: usize) -> (u64, u64) {
        let start = if i == 0 { 0 } else { self.mem_end[i - 1] };
        (start, self.mem_end[i])
    }

    /// The node holding guest-physical address `gpa` (the last one for an
    /// address past the end: passed-through memory above RAM belongs to none,
    /// and is reported on the last node).
    pub fn node_of_gpa(&self, gpa: u64) -> usize {
        self.mem_end[..self.n]
            .iter()
            .position(|&end| gpa < end)
            .unwrap_or(self.n - 1)
    }

    /// The node of LWK core `core` (node 0 for a core out of range).
    pub fn node_of_core(&self, core: usize) -> usize {
        if core < self.ncores {
            self.core_node[core] as usize
        } else {
            0
        }
    }

    /// The host node ids of all nodes as a bitmap (bit `id`).
    pub fn id_mask(&self) -> [u64; (MAX_NUMNODES as usize) / 64] {
        let mut m = [0u64; (MAX_NUMNODES as usize) / 64];
        for &id in &self.id[..self.n] {
            m[id as usize / 64] |= 1 << (id % 64);
        }
        m
    }
}

#[cfg(test)]
mod tests;
