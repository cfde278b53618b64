use super::*;
use mote_fuzz::{inputs, seed, Rng};

const G: u64 = 1 << 30;

#[test]
fn no_topology_is_one_node_with_everything() {
    let b = BootInfo {
        mem_size: 4 * G,
        ncores: 3,
        ..BootInfo::default()
    };
    let t = Topology::from_boot(&b).unwrap();
    assert_eq!((t.nodes(), t.id(0), t.range(0)), (1, 0, (0, 4 * G)));
    assert_eq!((t.node_of_gpa(4 * G - 1), t.node_of_core(2)), (0, 0));
}

#[test]
fn two_nodes_round_trip_through_boot_info() {
    let t = Topology::new(4, PLACE_LIST, &[(1, 2 * G), (3, 4 * G)], &[1, 0, 1], 4 * G).unwrap();
    let mut b = BootInfo {
        mem_size: 4 * G,
        ncores: 3,
        ..BootInfo::default()
    };
    t.write(&mut b);
    let u = Topology::from_boot(&b).unwrap();
    assert_eq!(t, u);
    assert_eq!(
        (
            u.node_of_gpa(0),
            u.node_of_gpa(2 * G - 1),
            u.node_of_gpa(2 * G)
        ),
        (0, 0, 1)
    );
    assert_eq!((u.node_of_core(0), u.node_of_core(1)), (1, 0));
    assert_eq!((u.index_of(3), u.index_of(2)), (Some(1), None));
    assert_eq!(u.id_mask()[0], 0b1010);
    assert_eq!(u.range(1), (2 * G, 4 * G));
}

#[test]
fn bad_topologies_are_refused() {
    let two = |a: u16, ea: u64, b: u16, eb: u64, cores: &[u8]| {
        Topology::new(4, PLACE_LIST, &[(a, ea), (b, eb)], cores, 4 * G)
    };
    assert_eq!(two(0, 2 * G, 0, 4 * G, &[0]), Err(TopologyError::BadId(1)));
    assert_eq!(two(0, 2 * G, 4, 4 * G, &[0]), Err(TopologyError::BadId(1)));
    assert_eq!(
        two(0, 2 * G, 1, 2 * G, &[0]),
        Err(TopologyError::BadRange(1))
    );
    assert_eq!(
        two(0, 2 * G, 1, 3 * G, &[0]),
        Err(TopologyError::BadRange(1))
    );
    assert_eq!(
        two(0, 2 * G + 1, 1, 4 * G, &[0]),
        Err(TopologyError::BadRange(0))
    );
    assert_eq!(
        two(0, 2 * G, 1, 4 * G, &[0, 2]),
        Err(TopologyError::BadCore(1))
    );
    let b = BootInfo {
        numa_nodes: 9,
        ..BootInfo::default()
    };
    assert_eq!(Topology::from_boot(&b), Err(TopologyError::TooManyNodes(9)));
    let b = BootInfo {
        numa_nodes: 1,
        nr_node_ids: 0,
        ..BootInfo::default()
    };
    assert_eq!(Topology::from_boot(&b), Err(TopologyError::NodeIds(0)));
}

/// Randomized: whatever the application's side wrote into the topology fields,
/// the reader either refuses it or returns a topology whose every answer is in
/// range (no panic, no out-of-range node for any address or core).
#[test]
fn fuzz_boot_topology() {
    let mut rng = Rng::new(seed(std::env::var("MOTE_FUZZ_SEED").ok().as_deref()));
    let n = inputs(std::env::var("MOTE_FUZZ_INPUTS").ok().as_deref());
    let valid = Topology::new(4, PLACE_LIST, &[(1, 2 * G), (3, 4 * G)], &[1, 0, 1], 4 * G).unwrap();
    let mut accepted = 0;
    for _ in 0..n {
        let mut b = BootInfo {
            mem_size: 4 * G,
            ncores: 3,
            ..BootInfo::default()
        };
        valid.write(&mut b);
        match rng.below(4) {
            0 => {
                b.numa_nodes = rng.edgy() as u32;
                b.nr_node_ids = rng.edgy() as u32;
                b.ncores = rng.edgy() as u32;
            }
            1 => {
                let i = rng.below(MAX_NODES as u64) as usize;
                b.node_mem_end[i] = rng.edgy();
                b.node_id[i] = rng.edgy() as u16;
                b.mem_size = rng.edgy();
            }
            2 => {
                let i = rng.below(MAX_CORES as u64) as usize;
                b.core_node[i] = rng.edgy() as u8;
                b.numa_nodes = rng.below(MAX_NODES as u64 + 2) as u32;
            }
            _ => {
                let i = rng.below(MAX_NODES as u64) as usize;
                b.node_order[i] = rng.edgy() as u32;
                b.node_weight[i] = rng.edgy() as u8;
            }
        }
        let Ok(t) = Topology::from_boot(&b) else {
            continue;
        };
        accepted += 1;
        assert!((1..=MAX_NODES).contains(&t.nodes()));
        let mut prev = 0;
        for i in 0..t.nodes() {
            let (s, e) = t.range(i);
            assert!(s == prev && e > s && u32::from(t.id(i)) < t.nr_node_ids());
            assert_eq!(t.index_of(u32::from(t.id(i))), Some(i));
            prev = e;
        }
        assert!(t.node_of_gpa(rng.next_u64()) < t.nodes());
        for c in 0..MAX_CORES + 2 {
            assert!(t.node_of_core(c) < t.nodes());
        }
        for i in 0..t.nodes() {
            let order: Vec<usize> = t.fallback(i).collect();
            assert_eq!(order.len(), t.nodes());
            assert_eq!(order[0], i);
            assert!(order.iter().all(|&k| k < t.nodes()));
            assert!(t.weight(i) >= 1);
        }
    }
    assert!(accepted > 0, "no mutation kept a valid topology");
}

/// Version 8: each node's fallback order (nearest first) and interleave weight.
#[test]
fn fallback_orders_and_weights_round_trip_and_are_checked() {
    let mut t = Topology::new(
        8,
        PLACE_LIST,
        &[(0, G), (2, 2 * G), (5, 3 * G)],
        &[0, 1, 2],
        3 * G,
    )
    .unwrap();
    // No order given: the partition's order, each node first in its own.
    assert_eq!(t.fallback(1).collect::<Vec<_>>(), [1, 0, 2]);
    assert_eq!(t.weight(2), 1);
    // Node 2 is nearer to node 0 than node 1 is.
    let dist = [[10, 30, 20], [30, 10, 20], [20, 20, 10]];
    t.order_by(|a, b| dist[a][b]);
    t.set_weights(&[3, 0, 1]);
    assert_eq!(t.fallback(0).collect::<Vec<_>>(), [0, 2, 1]);
    assert_eq!(t.fallback(1).collect::<Vec<_>>(), [1, 2, 0]);
    assert_eq!(t.fallback(2).collect::<Vec<_>>(), [2, 0, 1]);
    assert_eq!((t.weight(0), t.weight(1)), (3, 1));
    let mut b = BootInfo {
        mem_size: 3 * G,
        ncores: 3,
        ..BootInfo::default()
    };
    t.write(&mut b);
    assert_eq!(Topology::from_boot(&b), Ok(t));
    // A node missing, repeated, out of range, or not first in its own order.
    for bad in [
        0x0000_0021,
        0x0000_0220,
        0x0000_0310,
        0x0000_0201,
        0x0000_3210,
    ] {
        let mut c = b;
        c.node_order[0] = bad;
        assert_eq!(
            Topology::from_boot(&c),
            Err(TopologyError::BadOrder(0)),
            "{bad:#x}"
        );
    }
}
