use super::*;
use alloc::vec;
use mote_abi::numa::{Topology, PLACE_LIST};

const G: u64 = 1 << 30;
const M2: u64 = 2 << 20;

/// Two nodes, ids 1 and 3, 2 GiB each; cores 0, 1 on node 1 and core 2 on node 3.
fn two() -> Numa {
    Numa::new(Topology::new(4, PLACE_LIST, &[(1, 2 * G), (3, 4 * G)], &[0, 0, 1], 4 * G).unwrap())
}

fn mask(ids: &[u32]) -> Nodes {
    let mut n = Nodes::default();
    for &i in ids {
        n.0[i as usize / 64] |= 1 << (i % 64);
    }
    n
}

#[test]
fn modes_and_flags_are_checked_as_linux() {
    assert_eq!(sanitize(7), Err(Errno::EINVAL));
    let both = MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES | MPOL_BIND;
    assert_eq!(sanitize(u64::from(both)), Err(Errno::EINVAL));
    let nb = MPOL_F_NUMA_BALANCING;
    assert_eq!(
        sanitize(u64::from(nb | MPOL_INTERLEAVE)),
        Err(Errno::EINVAL)
    );
    assert_eq!(sanitize(u64::from(nb | MPOL_BIND)), Ok((MPOL_BIND, nb)));
    let all = two().allowed();
    assert_eq!(make(MPOL_DEFAULT, 0, &mask(&[1]), &all), Err(Errno::EINVAL));
    assert_eq!(make(MPOL_DEFAULT, 0, &Nodes::default(), &all), Ok(None));
    assert_eq!(
        make(MPOL_BIND, 0, &Nodes::default(), &all),
        Err(Errno::EINVAL)
    );
    // Nodes outside the partition only: nothing left.
    assert_eq!(make(MPOL_BIND, 0, &mask(&[0, 2]), &all), Err(Errno::EINVAL));
    let p = make(MPOL_BIND, 0, &mask(&[0, 1, 3]), &all)
        .unwrap()
        .unwrap();
    assert_eq!((p.nodes, p.reported()), (mask(&[1, 3]), mask(&[1, 3])));
    // Preferred keeps the first node; with no node it is local.
    let p = make(MPOL_PREFERRED, 0, &mask(&[3, 1]), &all)
        .unwrap()
        .unwrap();
    assert_eq!(p.nodes, mask(&[1]));
    let p = make(MPOL_PREFERRED, 0, &Nodes::default(), &all)
        .unwrap()
        .unwrap();
    assert_eq!((p.mode, p.reported()), (MPOL_LOCAL, Nodes::default()));
    let st = MPOL_F_STATIC_NODES;
    assert_eq!(
        make(MPOL_PREFERRED, st, &Nodes::default(), &all),
        Err(Errno::EINVAL)
    );
    assert_eq!(make(MPOL_LOCAL, 0, &mask(&[1]), &all), Err(Errno::EINVAL));
    // Static masks are reported as given; relative ones fold onto the partition.
    let p = make(MPOL_INTERLEAVE, st, &mask(&[1, 2, 3]), &all)
        .unwrap()
        .unwrap();
    assert_eq!((p.nodes, p.reported()), (mask(&[1, 3]), mask(&[1, 2, 3])));
    let rel = MPOL_F_RELATIVE_NODES;
    let p = make(MPOL_BIND, rel, &mask(&[2]), &all).unwrap().unwrap();
    assert_eq!(p.nodes, mask(&[1]));
    let p = make(MPOL_BIND, rel, &mask(&[1]), &all).unwrap().unwrap();
    assert_eq!(p.nodes, mask(&[3]));
}

#[test]
fn frames_and_cores_map_to_host_node_ids() {
    let n = two();
    let at = |g| n.node_of_gpa(g);
    assert_eq!((at(0), at(2 * G), at(5 * G)), (1, 3, 3));
    assert_eq!((n.node_of_core(1), n.node_of_core(2)), (1, 3));
}

#[test]
fn placement_follows_the_policy_on_two_nodes() {
    let n = two();
    let all = n.allowed();
    // Default: the caller's core's node first, then the others.
    let order = |pl: Placement| [pl.nodes, pl.fallback].concat();
    assert_eq!(order(n.placement(None, 2)), [1, 0]);
    assert_eq!(order(n.placement(None, 0)), [0, 1]);
    let bind3 = make(MPOL_BIND, 0, &mask(&[3]), &all).unwrap().unwrap();
    let pl = n.placement(Some(&bind3), 0);
    assert_eq!((pl.nodes.as_slice(), pl.fallback.len()), (&[1][..], 0));
    // Bound to node 3 with 1 GiB free there: 2 GiB does not fit, 1 GiB does.
    assert_eq!(pl.split(2 * G, M2, &[2 * G, G]), Err(Errno::ENOMEM));
    assert_eq!(pl.split(G, M2, &[2 * G, G]), Ok(vec![(1, G)]));
    // Preferred node 3 falls back to node 1.
    let pref = make(MPOL_PREFERRED, 0, &mask(&[3]), &all).unwrap().unwrap();
    let pl = n.placement(Some(&pref), 0);
    assert_eq!(
        pl.split(3 * G, M2, &[2 * G, G]),
        Ok(vec![(1, G), (0, 2 * G)])
    );
    // Interleave alternates 2 MiB chunks; a full node's chunk goes to the
    // other (Linux's interleave allocates without a node mask).
    let il = make(MPOL_INTERLEAVE, 0, &mask(&[1, 3]), &all)
        .unwrap()
        .unwrap();
    let pl = n.placement(Some(&il), 0);
    let want = vec![(0, M2), (1, M2), (0, M2), (1, M2)];
    assert_eq!(pl.split(4 * M2, M2, &[G, G]), Ok(want));
    let want = vec![(0, M2), (1, M2), (0, 2 * M2)];
    assert_eq!(pl.split(4 * M2, M2, &[G, M2]), Ok(want));
    assert_eq!(pl.split(3 * M2, M2, &[0, M2]), Err(Errno::ENOMEM));
    // Starting at the second node.
    let want = vec![(1, M2), (0, M2)];
    assert_eq!(
        pl.clone().starting_at(1).split(2 * M2, M2, &[G, G]),
        Ok(want)
    );
    // Interleave over node 3 alone still falls back to node 1 when 3 is full.
    let il3 = make(MPOL_INTERLEAVE, 0, &mask(&[3]), &all)
        .unwrap()
        .unwrap();
    let pl = n.placement(Some(&il3), 0);
    assert_eq!(pl.split(2 * M2, M2, &[G, M2]), Ok(vec![(1, M2), (0, M2)]));
    // Preferred-many: its nodes first (the core's own among them leading),
    // then the rest; bind with a home node starts there.
    let three = Numa::new(
        Topology::new(
            4,
            PLACE_LIST,
            &[(0, G), (1, 2 * G), (2, 3 * G)],
            &[0, 2],
            3 * G,
        )
        .unwrap(),
    );
    let all3 = three.allowed();
    let pm = make(MPOL_PREFERRED_MANY, 0, &mask(&[1, 2]), &all3)
        .unwrap()
        .unwrap();
    let pl = three.placement(Some(&pm), 1);
    assert_eq!(
        (pl.nodes.as_slice(), pl.fallback.as_slice()),
        (&[2, 1][..], &[0][..])
    );
    assert_eq!(
        pl.split(3 * M2, M2, &[G, G, M2]),
        Ok(vec![(2, M2), (1, 2 * M2)])
    );
    let mut b = make(MPOL_BIND, 0, &mask(&[0, 1, 2]), &all3)
        .unwrap()
        .unwrap();
    assert_eq!(three.placement(Some(&b), 0).nodes, [0, 1, 2]);
    b.home = Some(1);
    assert_eq!(three.placement(Some(&b), 0).nodes, [1, 0, 2]);
    // Local follows the core.
    let local = make(MPOL_LOCAL, 0, &Nodes::default(), &all)
        .unwrap()
        .unwrap();
    assert_eq!(order(n.placement(Some(&local), 2)), [1, 0]);
}

#[test]
fn thread_policies_are_per_thread_and_inherited() {
    let mut n = two();
    let all = n.allowed();
    let il = make(MPOL_INTERLEAVE, 0, &mask(&[1, 3]), &all).unwrap();
    n.set_task(7, il);
    assert_eq!(n.task(7), il);
    assert_eq!(n.task(8), None);
    n.inherit(7, 9);
    assert_eq!(n.task(9), il);
    assert_eq!(n.interleave_next(9, &il.unwrap()), Some(1));
    n.forget(9);
    assert_eq!(n.task(9), None);
    // The table interns equal policies once.
    assert_eq!((n.intern(il), n.intern(il), n.intern(None)), (1, 1, 0));
    assert_eq!(n.lookup(1), il);
    assert_eq!(n.lookup(2), None);
}

/// Regression: an interleave over no node divided by zero.
#[test]
fn a_placement_over_no_node_is_enomem() {
    let pl = Placement {
        nodes: vec![],
        spread: true,
        fallback: vec![0],
        near: vec![],
    };
    assert_eq!(pl.split(M2, M2, &[G]), Err(Errno::ENOMEM));
}

/// Fallback goes to the nearest node by the host's distances (BootInfo
/// version 8), and weighted interleave gives each node its weight in chunks.
#[test]
fn fallback_is_nearest_first_and_weights_shape_weighted_interleave() {
    let mut topo = Topology::new(
        8,
        PLACE_LIST,
        &[(0, G), (1, 2 * G), (2, 3 * G)],
        &[0, 1, 2],
        3 * G,
    )
    .unwrap();
    // Node 2 is near node 0; node 1 is far from both.
    let dist = [[10, 40, 12], [40, 10, 40], [12, 40, 10]];
    topo.order_by(|a, b| dist[a][b]);
    topo.set_weights(&[3, 1, 1]);
    let n = Numa::new(topo);
    let all = n.allowed();
    // Default on core 0 (node 0): node 0, then 2, then 1.
    let pl = n.placement(None, 0);
    assert_eq!(
        (pl.nodes.as_slice(), pl.fallback.as_slice()),
        (&[0][..], &[2, 1][..])
    );
    assert_eq!(
        pl.split(3 * M2, M2, &[M2, G, M2]),
        Ok(vec![(0, M2), (2, M2), (1, M2)])
    );
    // Bind to {1, 2} from core 0: node 2 (nearer) first.
    let b = make(MPOL_BIND, 0, &mask(&[1, 2]), &all).unwrap().unwrap();
    assert_eq!(n.placement(Some(&b), 0).nodes, [2, 1]);
    // Weighted interleave over {0, 1}: three chunks on 0, one on 1.
    let w = make(MPOL_WEIGHTED_INTERLEAVE, 0, &mask(&[0, 1]), &all)
        .unwrap()
        .unwrap();
    let pl = n.placement(Some(&w), 0);
    assert_eq!(
        pl.split(8 * M2, M2, &[G, G, G]),
        Ok(vec![(0, 3 * M2), (1, M2), (0, 3 * M2), (1, M2)])
    );
    // Plain interleave ignores the weights; a full node 0's chunk goes to
    // its nearest, node 2, not to node 1.
    let il = make(MPOL_INTERLEAVE, 0, &mask(&[0, 1]), &all)
        .unwrap()
        .unwrap();
    let pl = n.placement(Some(&il), 0);
    assert_eq!(
        pl.split(4 * M2, M2, &[M2, G, G]),
        Ok(vec![(0, M2), (1, M2), (2, M2), (1, M2)])
    );
}
