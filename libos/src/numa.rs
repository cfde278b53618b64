//! NUMA memory policies of the partition: the topology (`mote_abi::numa`, from
//! `BootInfo`), node masks as Linux's memory-policy calls read and write them,
//! the policies themselves (per thread, `set_mempolicy`; per VMA, `mbind`, whose
//! VMAs hold an id into [`Numa`]'s table), and the placement decision: which
//! nodes a policy draws memory from, in which order.
//!
//! Validation follows Linux's `mm/mempolicy.c` (6.x) step by step, so the
//! calls fail with the same errno in the same order; the system-call handlers
//! are in `crate::syscall::numa`.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use mote_abi::errno::Errno;
use mote_abi::numa::{Topology, MAX_NUMNODES};

/// `include/uapi/linux/mempolicy.h`.
pub mod uapi {
    pub const MPOL_DEFAULT: u32 = 0;
    pub const MPOL_PREFERRED: u32 = 1;
    pub const MPOL_BIND: u32 = 2;
    pub const MPOL_INTERLEAVE: u32 = 3;
    pub const MPOL_LOCAL: u32 = 4;
    pub const MPOL_PREFERRED_MANY: u32 = 5;
    pub const MPOL_WEIGHTED_INTERLEAVE: u32 = 6;
    pub const MPOL_MAX: u32 = 7;
    pub const MPOL_F_STATIC_NODES: u32 = 1 << 15;
    pub const MPOL_F_RELATIVE_NODES: u32 = 1 << 14;
    pub const MPOL_F_NUMA_BALANCING: u32 = 1 << 13;
    pub const MPOL_MODE_FLAGS: u32 =
        MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES | MPOL_F_NUMA_BALANCING;
    /// `get_mempolicy` flags.
    pub const MPOL_F_NODE: u64 = 1;
    pub const MPOL_F_ADDR: u64 = 2;
    pub const MPOL_F_MEMS_ALLOWED: u64 = 4;
    /// `mbind` and `move_pages` flags.
    pub const MPOL_MF_STRICT: u64 = 1;
    pub const MPOL_MF_MOVE: u64 = 2;
    pub const MPOL_MF_MOVE_ALL: u64 = 4;
    pub const MPOL_MF_VALID: u64 = MPOL_MF_STRICT | MPOL_MF_MOVE | MPOL_MF_MOVE_ALL;
}
use uapi::*;

/// Words of a node mask (`MAX_NUMNODES` bits).
pub const MASK_WORDS: usize = MAX_NUMNODES as usize / 64;

/// A set of host node ids (Linux's `nodemask_t`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Nodes(pub [u64; MASK_WORDS]);

impl Nodes {
    /// The set holding `id` alone.
    pub fn one(id: u32) -> Nodes {
        let mut n = Nodes::default();
        n.0[id as usize / 64] |= 1 << (id % 64);
        n
    }
    /// No node.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|&w| w == 0)
    }
    /// `id` is in the set.
    pub fn has(&self, id: u32) -> bool {
        id < MAX_NUMNODES && self.0[id as usize / 64] & (1 << (id % 64)) != 0
    }
    /// Both sets.
    pub fn and(&self, o: &Nodes) -> Nodes {
        let mut r = *self;
        r.0.iter_mut().zip(o.0).for_each(|(a, b)| *a &= b);
        r
    }
    /// The ids in the set, ascending.
    pub fn ids(&self) -> impl Iterator<Item = u32> + '_ {
        (0..MAX_NUMNODES).filter(|&i| self.has(i))
    }
    /// Every id of `self` is in `o`.
    pub fn subset_of(&self, o: &Nodes) -> bool {
        self.and(o) == *self
    }
    /// Linux's `mpol_relative_nodemask`: `self` folded onto the weight of `rel`,
    /// then bit `n` mapped onto the `n`-th node of `rel`.
    pub fn relative_to(&self, rel: &Nodes) -> Nodes {
        let targets: Vec<u32> = rel.ids().collect();
        let mut r = Nodes::default();
        if targets.is_empty() {
            return r;
        }
        for i in self.ids() {
            let t = targets[i as usize % targets.len()];
            r.0[t as usize / 64] |= 1 << (t % 64);
        }
        r
    }
    /// The bytes of the mask's first `n` bytes (`n <= MASK_WORDS * 8`).
    pub fn bytes(&self) -> [u8; MASK_WORDS * 8] {
        let mut b = [0u8; MASK_WORDS * 8];
        for (i, w) in self.0.iter().enumerate() {
            b[i * 8..i * 8 + 8].copy_from_slice(&w.to_le_bytes());
        }
        b
    }
}

/// A memory policy (Linux's `struct mempolicy`, the parts user space sees).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// `MPOL_*` mode after Linux's conversions (`MPOL_PREFERRED` with no node is
    /// `MPOL_LOCAL`).
    pub mode: u32,
    /// `MPOL_F_STATIC_NODES`, `MPOL_F_RELATIVE_NODES`, `MPOL_F_NUMA_BALANCING`.
    pub flags: u32,
    /// The nodes it allows (for `MPOL_PREFERRED`, the one preferred).
    pub nodes: Nodes,
    /// The mask the caller gave, kept with the static and relative flags (what
    /// `get_mempolicy` returns then).
    pub user: Nodes,
    /// The home node (`set_mempolicy_home_node`, bind and preferred-many VMA
    /// policies only): where their allocations start instead of the core's node.
    pub home: Option<u32>,
}

impl Policy {
    /// The mask `get_mempolicy` reports (`get_policy_nodemask`, or the caller's
    /// own for static and relative masks).
    pub fn reported(&self) -> Nodes {
        if self.flags & (MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES) != 0 {
            self.user
        } else if self.mode == MPOL_LOCAL {
            Nodes::default()
        } else {
            self.nodes
        }
    }
}

/// Split a mode argument into mode and flags, as `sanitize_mpol_flags`.
pub fn sanitize(mode: u64) -> Result<(u32, u32), Errno> {
    let m = mode as u32;
    let flags = m & MPOL_MODE_FLAGS;
    let mode = m & !MPOL_MODE_FLAGS;
    if mode >= MPOL_MAX {
        return Err(Errno::EINVAL);
    }
    if flags & MPOL_F_STATIC_NODES != 0 && flags & MPOL_F_RELATIVE_NODES != 0 {
        return Err(Errno::EINVAL);
    }
    if flags & MPOL_F_NUMA_BALANCING != 0 && mode != MPOL_BIND && mode != MPOL_PREFERRED_MANY {
        return Err(Errno::EINVAL);
    }
    Ok((mode, flags))
}

/// A policy from a checked mode, flags and the caller's mask, against the
/// nodes the partition has (`mpol_new` then `mpol_set_nodemask`); `None` is
/// `MPOL_DEFAULT`.
pub fn make(
    mode: u32,
    flags: u32,
    nodes: &Nodes,
    allowed: &Nodes,
) -> Result<Option<Policy>, Errno> {
    let user_flags = flags & (MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES);
    let mut mode = mode;
    match mode {
        MPOL_DEFAULT => {
            return if nodes.is_empty() {
                Ok(None)
            } else {
                Err(Errno::EINVAL)
            }
        }
        MPOL_PREFERRED if nodes.is_empty() => {
            if user_flags != 0 {
                return Err(Errno::EINVAL);
            }
            mode = MPOL_LOCAL;
        }
        MPOL_LOCAL if !nodes.is_empty() || user_flags != 0 => return Err(Errno::EINVAL),
        MPOL_LOCAL => {}
        _ if nodes.is_empty() => return Err(Errno::EINVAL),
        _ => {}
    }
    let mut pol = Policy {
        mode,
        flags,
        nodes: Nodes::default(),
        user: Nodes::default(),
        home: None,
    };
    if mode == MPOL_LOCAL {
        return Ok(Some(pol));
    }
    let eff = if flags & MPOL_F_RELATIVE_NODES != 0 {
        nodes.relative_to(allowed)
    } else {
        nodes.and(allowed)
    };
    if user_flags != 0 {
        pol.user = *nodes;
    }
    let first = eff.ids().next().ok_or(Errno::EINVAL)?;
    pol.nodes = if mode == MPOL_PREFERRED {
        Nodes::one(first)
    } else {
        eff
    };
    Ok(Some(pol))
}

/// The partition's NUMA state: topology, thread policies, VMA policies.
#[derive(Debug)]
pub struct Numa {
    /// Nodes, their memory and cores.
    pub topo: Topology,
    /// Each thread's policy (`set_mempolicy`), by tid; none is `MPOL_DEFAULT`.
    task: BTreeMap<u32, Policy>,
    /// Where each thread's interleave goes next (`il_prev`), by tid.
    il_prev: BTreeMap<u32, u32>,
    /// Policies VMAs name (`Vma::policy` is an index plus one).
    table: Vec<Policy>,
    /// The thread whose call is being answered (`Process::switch_thread`):
    /// whose policy new memory follows.
    caller: u32,
}

impl Numa {
    /// The state of a new partition.
    pub fn new(topo: Topology) -> Numa {
        Numa {
            topo,
            task: BTreeMap::new(),
            il_prev: BTreeMap::new(),
            table: Vec::new(),
            caller: 0,
        }
    }

    /// Thread `tid` is the caller from now on.
    pub fn set_caller(&mut self, tid: u32) {
        self.caller = tid;
    }

    /// The thread whose call is being answered.
    pub fn caller(&self) -> u32 {
        self.caller
    }

    /// Thread `tid`'s interleave took node id `id` last (`il_prev`).
    pub fn interleaved(&mut self, tid: u32, id: u32) {
        self.il_prev.insert(tid, id);
    }

    /// The process forked in thread `tid`: the child's one thread, `child`,
    /// has its policy (`fork` copies the task policy).
    pub fn forked(&mut self, tid: u32, child: u32) {
        let pol = self.task(tid);
        let il = self.il_prev.get(&tid).copied();
        self.task.clear();
        self.il_prev.clear();
        self.set_task(child, pol);
        if let Some(il) = il {
            self.il_prev.insert(child, il);
        }
        self.caller = child;
    }

    /// The nodes the process may use (`cpuset_current_mems_allowed` and
    /// `N_MEMORY`): the partition's.
    pub fn allowed(&self) -> Nodes {
        Nodes(self.topo.id_mask())
    }

    /// Thread `tid`'s policy.
    pub fn task(&self, tid: u32) -> Option<Policy> {
        self.task.get(&tid).copied()
    }

    /// Set thread `tid`'s policy (`do_set_mempolicy`).
    pub fn set_task(&mut self, tid: u32, pol: Option<Policy>) {
        match pol {
            Some(p) => {
                self.task.insert(tid, p);
            }
            None => {
                self.task.remove(&tid);
            }
        }
        self.il_prev.insert(tid, MAX_NUMNODES - 1);
    }

    /// A new thread `child` starts with `parent`'s policy, as `clone` copies it.
    pub fn inherit(&mut self, parent: u32, child: u32) {
        let pol = self.task(parent);
        self.set_task(child, pol);
    }

    /// Forget thread `tid` (it exited).
    pub fn forget(&mut self, tid: u32) {
        self.task.remove(&tid);
        self.il_prev.remove(&tid);
    }

    /// The node thread `tid`'s interleave takes next (`next_node_in(il_prev)`).
    pub fn interleave_next(&self, tid: u32, pol: &Policy) -> Option<u32> {
        let prev = self.il_prev.get(&tid).copied().unwrap_or(MAX_NUMNODES - 1);
        let ids: Vec<u32> = pol.nodes.ids().collect();
        ids.iter()
            .copied()
            .find(|&i| i > prev)
            .or(ids.first().copied())
    }

    /// The id a VMA stores for `pol` (0 for none).
    pub fn intern(&mut self, pol: Option<Policy>) -> u32 {
        let Some(pol) = pol else { return 0 };
        if let Some(i) = self.table.iter().position(|&p| p == pol) {
            return i as u32 + 1;
        }
        self.table.push(pol);
        self.table.len() as u32
    }

    /// The policy a VMA's id names.
    pub fn lookup(&self, id: u32) -> Option<Policy> {
        id.checked_sub(1)
            .and_then(|i| self.table.get(i as usize))
            .copied()
    }

    /// The host node id of guest-physical address `gpa`.
    pub fn node_of_gpa(&self, gpa: u64) -> u32 {
        u32::from(self.topo.id(self.topo.node_of_gpa(gpa)))
    }

    /// The host node id of LWK core `core`.
    pub fn node_of_core(&self, core: usize) -> u32 {
        u32::from(self.topo.id(self.topo.node_of_core(core)))
    }

    /// Where memory under `pol` comes from, for a thread on `core`, as
    /// Linux's `alloc_pages_mpol` decides it (`policy_nodemask`, then the
    /// zonelist of the chosen node): the partition's node indices to try
    /// first, whether a request is spread over them in turn (interleave), and
    /// the nodes a chunk falls back to when its first choice is full — nearest
    /// first, by the host's node distances (`Topology::fallback`).
    ///
    /// - default, `MPOL_LOCAL`: the core's node, then the others;
    /// - `MPOL_PREFERRED`: its node, then the others;
    /// - `MPOL_PREFERRED_MANY`: its nodes, nearest to the home node (or the
    ///   core's) first, then the others;
    /// - `MPOL_BIND`: its nodes only, nearest to the home node (or the core's)
    ///   first; `ENOMEM` beyond them;
    /// - `MPOL_INTERLEAVE`: its nodes in turn, by id; a full node's chunk falls
    ///   back to the nodes nearest to it, any of them, as `__alloc_pages`
    ///   without a node mask does;
    /// - `MPOL_WEIGHTED_INTERLEAVE`: the same, node `i` taking `weight(i)`
    ///   chunks in a row (the host's weights).
    pub fn placement(&self, pol: Option<&Policy>, core: usize) -> Placement {
        let local = self.topo.node_of_core(core);
        let idx = |id: u32| self.topo.index_of(id);
        let zonelist = |nid: usize| self.topo.fallback(nid).collect::<Vec<usize>>();
        let in_mask = |p: &Policy, i: usize| p.nodes.has(u32::from(self.topo.id(i)));
        let home = |p: &Policy| p.home.and_then(idx).unwrap_or(local);
        let first_then_rest = |nid: usize| Placement {
            nodes: alloc::vec![nid],
            spread: false,
            fallback: zonelist(nid).into_iter().filter(|&i| i != nid).collect(),
            near: Vec::new(),
        };
        let masked = |p: &Policy, strict: bool| {
            let (nodes, rest): (Vec<usize>, Vec<usize>) =
                zonelist(home(p)).into_iter().partition(|&i| in_mask(p, i));
            Placement {
                nodes,
                spread: false,
                fallback: if strict { Vec::new() } else { rest },
                near: Vec::new(),
            }
        };
        match pol.map(|p| (p.mode, p)) {
            Some((MPOL_BIND, p)) => masked(p, true),
            Some((MPOL_PREFERRED_MANY, p)) => masked(p, false),
            Some((MPOL_PREFERRED, p)) => match p.nodes.ids().find_map(idx) {
                Some(nid) => first_then_rest(nid),
                None => first_then_rest(local),
            },
            Some((mode @ (MPOL_INTERLEAVE | MPOL_WEIGHTED_INTERLEAVE), p)) => {
                let weighted = mode == MPOL_WEIGHTED_INTERLEAVE;
                let nodes = p
                    .nodes
                    .ids()
                    .filter_map(idx)
                    .flat_map(|i| {
                        let w = if weighted { self.topo.weight(i) } else { 1 };
                        core::iter::repeat_n(i, w as usize)
                    })
                    .collect();
                Placement {
                    nodes,
                    spread: true,
                    fallback: Vec::new(),
                    near: (0..self.topo.nodes()).map(zonelist).collect(),
                }
            }
            _ => first_then_rest(local),
        }
    }
}

/// Where a request's memory comes from ([`Numa::placement`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    /// Partition node indices, in the order to try (interleave: taken in turn).
    pub nodes: Vec<usize>,
    /// Interleave: chunk `k` of the request goes to `nodes[k % len]`.
    pub spread: bool,
    /// Nodes tried, in order, for memory `nodes` cannot hold (Linux's zonelist
    /// fallback); empty for `MPOL_BIND`, whose requests fail there.
    pub fallback: Vec<usize>,
    /// Interleave: each node's nodes, nearest first (`near[t]` for a chunk
    /// meant for node `t` that it cannot hold); empty: `fallback`.
    pub near: Vec<Vec<usize>>,
}

impl Placement {
    /// Interleave from node index `first` on (when it is one of `nodes`).
    pub fn starting_at(mut self, first: usize) -> Placement {
        if let Some(i) = self.nodes.iter().position(|&x| x == first) {
            self.nodes.rotate_left(i);
        }
        self
    }

    /// Split `len` bytes in `chunk`-byte units over the nodes, given what each
    /// node has free (`free[i]` bytes on node index `i`): `(node, bytes)` in
    /// order, or `ENOMEM` if the nodes allowed cannot hold it all.
    pub fn split(&self, len: u64, chunk: u64, free: &[u64]) -> Result<Vec<(usize, u64)>, Errno> {
        let mut left: Vec<u64> = free.to_vec();
        let mut out: Vec<(usize, u64)> = Vec::new();
        let push = |out: &mut Vec<(usize, u64)>, node: usize, bytes: u64| match out.last_mut() {
            Some((n, b)) if *n == node => *b += bytes,
            _ => out.push((node, bytes)),
        };
        let chunks = len.div_ceil(chunk.max(1));
        if self.nodes.is_empty() {
            return Err(Errno::ENOMEM);
        }
        let room = |left: &[u64], n: usize| left.get(n).copied().unwrap_or(0) >= chunk;
        if self.spread {
            let tries = self.nodes.len();
            for k in 0..chunks as usize {
                let target = self.nodes[k % tries];
                let near = self.near.get(target).unwrap_or(&self.fallback);
                let node = core::iter::once(target)
                    .chain(near.iter().copied().filter(|&f| f != target))
                    .find(|&n| room(&left, n))
                    .ok_or(Errno::ENOMEM)?;
                left[node] -= chunk;
                push(&mut out, node, chunk);
            }
            return Ok(out);
        }
        let mut need = chunks;
        let order = self.nodes.iter().copied().chain(
            self.fallback
                .iter()
                .copied()
                .filter(|f| !self.nodes.contains(f)),
        );
        for node in order {
            let can = (left.get(node).copied().unwrap_or(0) / chunk.max(1)).min(need);
            if can > 0 {
                push(&mut out, node, can * chunk);
                need -= can;
            }
            if need == 0 {
                return Ok(out);
            }
        }
        Err(Errno::ENOMEM)
    }
}

#[cfg(test)]
mod tests;
