//! NUMA placement of a partition (`mote run --numa`): which host nodes its
//! memory is spread over, in which guest-physical ranges, and which node each
//! LWK core is on — the `mote_abi::numa::Topology` libos answers the memory-policy
//! calls and `getcpu` from. The host's nodes come from sysfs
//! (`/sys/devices/system/node`, `/sys/devices/system/cpu/cpuN/nodeM`); the
//! plan is pure (tested on made-up hosts); binding each range's host memory to
//! its node is `GuestMem::bind_to_node`.
//!
//! A leaf module: it uses `cpus` (where the LWK cores run) and `guest`.

use mote_abi::layout::LARGE_PAGE_SIZE;
use mote_abi::numa::{Topology, MAX_NODES, MAX_NUMNODES, PLACE_CORES, PLACE_LIST, PLACE_OFF};

/// The `--numa` choice.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Choice {
    /// No binding: the partition is one node, the first LWK core's.
    #[default]
    Off,
    /// The nodes of the LWK cores, memory split in proportion to their cores.
    Cores,
    /// These host nodes, memory split evenly.
    Nodes(Vec<u16>),
}

impl std::str::FromStr for Choice {
    type Err = String;
    fn from_str(s: &str) -> Result<Choice, String> {
        match s {
            "off" => Ok(Choice::Off),
            "cores" => Ok(Choice::Cores),
            _ => {
                let ids = parse_list(s).ok_or_else(|| {
                    format!("`{s}`: give off, cores, or host node ids such as 0,1 or 0-3")
                })?;
                if ids.is_empty() || ids.len() > MAX_NODES {
                    return Err(format!("`{s}`: 1 to {MAX_NODES} nodes"));
                }
                Ok(Choice::Nodes(ids))
            }
        }
    }
}

impl std::fmt::Display for Choice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Choice::Off => f.write_str("off"),
            Choice::Cores => f.write_str("cores"),
            Choice::Nodes(ids) => {
                let s: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
                f.write_str(&s.join(","))
            }
        }
    }
}

/// A sysfs node list (`0`, `0-3`, `0,2-3`), ascending and without repeats;
/// `None` if it does not parse or names a node at or above `MAX_NUMNODES`.
pub fn parse_list(s: &str) -> Option<Vec<u16>> {
    let mut out = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.parse::<u32>().ok()?, b.parse::<u32>().ok()?),
            None => {
                let a = part.parse::<u32>().ok()?;
                (a, a)
            }
        };
        if a > b || b >= MAX_NUMNODES {
            return None;
        }
        out.extend((a..=b).map(|i| i as u16));
    }
    out.sort_unstable();
    out.dedup();
    Some(out)
}

/// What the host has: `nr_node_ids`, the nodes with memory, each CPU's node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Host {
    pub nr_node_ids: u32,
    pub memory: Vec<u16>,
    /// Node of host CPU `i` (`None`: unknown, taken as the first memory node).
    pub cpu_node: Vec<Option<u16>>,
    /// `node_distance(from, to)` by host ids, as sysfs gives it
    /// (`nodeN/distance`); missing: 10 to itself, 20 to any other.
    pub distance: std::collections::BTreeMap<(u16, u16), u32>,
    /// Weighted-interleave weight of each node
    /// (`/sys/kernel/mm/mempolicy/weighted_interleave/nodeN`); missing: 1.
    pub weight: std::collections::BTreeMap<u16, u8>,
}

impl Host {
    /// The host as sysfs describes it; one node 0 where sysfs says nothing
    /// (a kernel without NUMA).
    pub fn read() -> Host {
        let read = |p: &str| std::fs::read_to_string(p).ok();
        let possible = read("/sys/devices/system/node/possible").and_then(|s| parse_list(&s));
        let memory = read("/sys/devices/system/node/has_memory").and_then(|s| parse_list(&s));
        let ncpu = crate::cpus::host_cpus()
            .into_iter()
            .max()
            .map_or(1, |m| m + 1);
        let cpu_node = (0..ncpu)
            .map(|c| {
                std::fs::read_dir(format!("/sys/devices/system/cpu/cpu{c}"))
                    .ok()?
                    .filter_map(|e| e.ok())
                    .find_map(|e| e.file_name().to_str()?.strip_prefix("node")?.parse().ok())
            })
            .collect();
        let memory = memory.filter(|m| !m.is_empty()).unwrap_or_else(|| vec![0]);
        let mut distance = std::collections::BTreeMap::new();
        let mut weight = std::collections::BTreeMap::new();
        for &from in &memory {
            // One number per possible node, in node-id order.
            let row = read(&format!("/sys/devices/system/node/node{from}/distance"));
            for (to, d) in row.iter().flat_map(|r| r.split_whitespace()).enumerate() {
                if let (Ok(to), Ok(d)) = (u16::try_from(to), d.parse()) {
                    distance.insert((from, to), d);
                }
            }
            let w = read(&format!(
                "/sys/kernel/mm/mempolicy/weighted_interleave/node{from}"
            ));
            if let Some(w) = w.and_then(|w| w.trim().parse().ok()) {
                weight.insert(from, w);
            }
        }
        Host {
            nr_node_ids: possible
                .and_then(|p| p.last().map(|&l| u32::from(l) + 1))
                .unwrap_or(1),
            memory,
            cpu_node,
            distance,
            weight,
        }
    }

    /// `node_distance(from, to)`.
    fn distance(&self, from: u16, to: u16) -> u32 {
        self.distance
            .get(&(from, to))
            .copied()
            .unwrap_or(if from == to { 10 } else { 20 })
    }

    fn node_of_cpu(&self, cpu: usize) -> u16 {
        self.cpu_node
            .get(cpu)
            .copied()
            .flatten()
            .unwrap_or(self.memory[0])
    }
}

/// Why a `--numa` choice cannot be followed on this host.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    #[error("--numa {0}: node {1} has no memory on this machine (nodes with memory: {2})")]
    NoMemory(String, u16, String),
    #[error("--numa {0}: {1} nodes need at least {2} MiB of --mem")]
    TooLittle(String, usize, u64),
}

/// The topology for `choice` on `host`, with `mem_size` bytes of guest memory
/// and LWK core `i` on host CPU `core_cpus[i]`.
pub fn plan(
    choice: &Choice,
    host: &Host,
    mem_size: u64,
    core_cpus: &[usize],
) -> Result<Topology, PlanError> {
    let core_ids: Vec<u16> = core_cpus.iter().map(|&c| host.node_of_cpu(c)).collect();
    let listed = |ids: &[u16]| {
        ids.iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    // (host id, weight) per node.
    let (place, nodes): (u32, Vec<(u16, u64)>) = match choice {
        Choice::Off => (
            PLACE_OFF,
            vec![(core_ids.first().copied().unwrap_or(host.memory[0]), 1)],
        ),
        Choice::Cores => {
            let mut ids: Vec<u16> = core_ids
                .iter()
                .copied()
                .filter(|i| host.memory.contains(i))
                .collect();
            ids.sort_unstable();
            ids.dedup();
            if ids.is_empty() {
                ids.push(host.memory[0]);
            }
            ids.truncate(MAX_NODES);
            let w = ids
                .iter()
                .map(|&i| {
                    (
                        i,
                        core_ids.iter().filter(|&&c| c == i).count().max(1) as u64,
                    )
                })
                .collect();
            (PLACE_CORES, w)
        }
        Choice::Nodes(ids) => {
            if let Some(&bad) = ids.iter().find(|i| !host.memory.contains(i)) {
                return Err(PlanError::NoMemory(
                    choice.to_string(),
                    bad,
                    listed(&host.memory),
                ));
            }
            (PLACE_LIST, ids.iter().map(|&i| (i, 1)).collect())
        }
    };
    let unit = LARGE_PAGE_SIZE;
    let units = mem_size / unit;
    let total: u64 = nodes.iter().map(|n| n.1).sum();
    if units < nodes.len() as u64 {
        return Err(PlanError::TooLittle(
            choice.to_string(),
            nodes.len(),
            nodes.len() as u64 * (unit >> 20),
        ));
    }
    // Each node's share in 2 MiB units, at least one; the last ends at mem_size.
    let mut ends = Vec::with_capacity(nodes.len());
    let mut acc = 0u64;
    let mut given = 0u64;
    for (k, &(id, w)) in nodes.iter().enumerate() {
        acc += w;
        let left = (nodes.len() - k - 1) as u64;
        let end = if left == 0 {
            mem_size
        } else {
            ((units * acc / total).max(given + 1).min(units - left)) * unit
        };
        given = end / unit;
        ends.push((id, end));
    }
    let core_node: Vec<u8> = core_ids
        .iter()
        .map(|id| ends.iter().position(|(n, _)| n == id).unwrap_or(0) as u8)
        .collect();
    let nr = host
        .nr_node_ids
        .max(1 + u32::from(ends.iter().map(|e| e.0).max().unwrap_or(0)));
    let mut t = Topology::new(nr, place, &ends, &core_node, mem_size).map_err(|_| {
        PlanError::TooLittle(choice.to_string(), nodes.len(), nodes.len() as u64 * 2)
    })?;
    // Fallback nearest first, and the interleave weights, as the host has them.
    t.order_by(|a, b| host.distance(ends[a].0, ends[b].0));
    let weights: Vec<u8> = ends
        .iter()
        .map(|(id, _)| host.weight.get(id).copied().unwrap_or(1))
        .collect();
    t.set_weights(&weights);
    Ok(t)
}

/// Bind each node's guest memory to its host node (nothing for `--numa off`).
pub fn bind(guest: &crate::guest::GuestMem, topo: &Topology) -> std::io::Result<()> {
    if topo.place() == PLACE_OFF {
        return Ok(());
    }
    for i in 0..topo.nodes() {
        let (start, end) = topo.range(i);
        guest.bind_to_node(start, end - start, topo.id(i))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: u64 = 1 << 30;

    fn host() -> Host {
        // Nodes 0 and 2 with memory, node 1 without; CPUs 0-1 on 0, 2-3 on 2.
        Host {
            nr_node_ids: 3,
            memory: vec![0, 2],
            cpu_node: vec![Some(0), Some(0), Some(2), Some(2)],
            distance: Default::default(),
            weight: Default::default(),
        }
    }

    #[test]
    fn fallback_follows_the_hosts_distances_and_weights() {
        // Nodes 0, 2 and 3: node 3 is nearer to 0 than 2 is.
        let mut h = host();
        h.nr_node_ids = 4;
        h.memory = vec![0, 2, 3];
        for (a, b, d) in [(0, 2, 30), (0, 3, 15), (2, 3, 25)] {
            h.distance.insert((a, b), d);
            h.distance.insert((b, a), d);
        }
        h.weight.insert(2, 4);
        let t = plan(&Choice::Nodes(vec![0, 2, 3]), &h, 3 * G, &[0]).unwrap();
        assert_eq!(t.fallback(0).collect::<Vec<_>>(), [0, 2, 1]);
        assert_eq!(t.fallback(1).collect::<Vec<_>>(), [1, 2, 0]);
        assert_eq!((t.weight(0), t.weight(1)), (1, 4));
        // What sysfs says here: one node, distance 10 to itself.
        let here = Host::read();
        assert_eq!(here.distance(here.memory[0], here.memory[0]), 10);
    }

    #[test]
    fn node_lists_parse_as_sysfs_writes_them() {
        assert_eq!(parse_list("0\n"), Some(vec![0]));
        assert_eq!(parse_list("0-3"), Some(vec![0, 1, 2, 3]));
        assert_eq!(parse_list("3,0-1,1"), Some(vec![0, 1, 3]));
        assert_eq!(parse_list("2-1"), None);
        assert_eq!(parse_list("1024"), None);
        assert_eq!(parse_list("x"), None);
        assert_eq!("cores".parse::<Choice>(), Ok(Choice::Cores));
        assert_eq!("0,2".parse::<Choice>(), Ok(Choice::Nodes(vec![0, 2])));
        assert!("0-9".parse::<Choice>().is_err());
        assert!("".parse::<Choice>().is_err());
    }

    #[test]
    fn off_is_one_node_of_the_first_core() {
        let t = plan(&Choice::Off, &host(), 4 * G, &[3, 0]).unwrap();
        assert_eq!(
            (t.nodes(), t.id(0), t.range(0), t.place()),
            (1, 2, (0, 4 * G), PLACE_OFF)
        );
        assert_eq!(t.nr_node_ids(), 3);
    }

    #[test]
    fn cores_split_memory_by_cores_per_node() {
        // Three cores: two on node 0, one on node 2.
        let t = plan(&Choice::Cores, &host(), 3 * G, &[0, 1, 2]).unwrap();
        assert_eq!(t.nodes(), 2);
        assert_eq!((t.id(0), t.range(0)), (0, (0, 2 * G)));
        assert_eq!((t.id(1), t.range(1)), (2, (2 * G, 3 * G)));
        assert_eq!((t.node_of_core(1), t.node_of_core(2)), (0, 1));
        // All cores on one node: one node.
        let t = plan(&Choice::Cores, &host(), G, &[2, 3]).unwrap();
        assert_eq!((t.nodes(), t.id(0)), (1, 2));
    }

    #[test]
    fn listed_nodes_split_evenly_and_must_have_memory() {
        let t = plan(&Choice::Nodes(vec![0, 2]), &host(), 4 * G + (2 << 20), &[0]).unwrap();
        assert_eq!(t.range(0), (0, 2 * G));
        assert_eq!(t.range(1), (2 * G, 4 * G + (2 << 20)));
        assert_eq!(t.node_of_core(0), 0);
        // A core on a node not listed is put on the first listed node.
        let t = plan(&Choice::Nodes(vec![2]), &host(), G, &[0]).unwrap();
        assert_eq!((t.node_of_core(0), t.id(0)), (0, 2));
        let e = plan(&Choice::Nodes(vec![1]), &host(), G, &[0]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--numa 1: node 1 has no memory on this machine (nodes with memory: 0,2)"
        );
        // Too little memory for a 2 MiB unit per node.
        assert!(plan(&Choice::Nodes(vec![0, 2]), &host(), 2 << 20, &[0]).is_err());
    }

    #[test]
    fn every_plan_is_a_valid_topology() {
        // Any weights, sizes and core placements give ranges that check.
        let mut rng = mote_fuzz::Rng::new(7);
        for _ in 0..20_000 {
            let mem = (1 + rng.below(4096)) * (2 << 20);
            let cores: Vec<usize> = (0..1 + rng.below(32))
                .map(|_| rng.below(6) as usize)
                .collect();
            let choice = match rng.below(3) {
                0 => Choice::Off,
                1 => Choice::Cores,
                _ => Choice::Nodes(if rng.one_in(2) { vec![0, 2] } else { vec![2] }),
            };
            if let Ok(t) = plan(&choice, &host(), mem, &cores) {
                let mut b = mote_abi::boot::BootInfo {
                    mem_size: mem,
                    ncores: cores.len() as u32,
                    ..Default::default()
                };
                t.write(&mut b);
                assert_eq!(Topology::from_boot(&b), Ok(t));
            }
        }
    }
}
