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
        Ok(Topology {
            n,
            nr_node_ids: boot.nr_node_ids,
            place: boot.numa_place,
            mem_end,
            id,
            core_node,
            ncores,
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
