//! The NUMA calls on a fake platform: a single node as on this machine, and
//! two nodes (the frames of the pool's second half on the other node).

use super::*;
use crate::fake::FakePlatform;
use crate::syscall::mm;
use mote_abi::boot::BootInfo;
use mote_abi::numa::{Topology, PLACE_LIST};

const PID: u32 = 500;
const MB: u64 = 1 << 20;

/// A process with 8 pages read-write at `buf`, then a `PROT_NONE` page, then a
/// hole; the last 64 bytes of the last read-write page are scratch for masks.
fn setup(nodes: &[(u16, u64)]) -> (Process, FakePlatform, u64) {
    let mut boot = BootInfo {
        pid: PID,
        pool_start: 16 * MB,
        mem_size: 64 * MB,
        ncores: 2,
        ..Default::default()
    };
    if nodes.len() > 1 {
        Topology::new(4, PLACE_LIST, nodes, &[0, 1], 64 * MB)
            .unwrap()
            .write(&mut boot);
    }
    let p = FakePlatform::new();
    let mut pr = Process::new(&boot);
    pr.mm.init(&p).unwrap();
    let buf = mm::mmap(&mut pr, &p, 0, 10 * 4096, 3, 0x22, u64::MAX, 0).unwrap() as u64;
    mm::mprotect(&mut pr, &p, buf + 8 * 4096, 4096, 0).unwrap();
    mm::munmap(&mut pr, &p, buf + 9 * 4096, 4096).unwrap();
    (pr, p, buf)
}

fn int(p: &FakePlatform, va: u64) -> i32 {
    i32::from_le_bytes(p.peek(va, 4).try_into().unwrap())
}

fn long(p: &FakePlatform, va: u64) -> u64 {
    u64::from_le_bytes(p.peek(va, 8).try_into().unwrap())
}

#[test]
fn single_node_policies_round_trip() {
    let (mut pr, p, buf) = setup(&[]);
    let (pol, mask) = (buf, buf + 8);
    // Default policy, empty mask.
    assert_eq!(get_mempolicy(&mut pr, &p, [pol, mask, 64, 0, 0, 0]), Ok(0));
    assert_eq!((int(&p, pol), long(&p, mask)), (0, 0));
    // Bind to nodes {0, 1}: the partition has node 0 only.
    p.poke(mask, &3u64.to_le_bytes());
    assert_eq!(set_mempolicy(&mut pr, &p, [2, mask, 64, 0, 0, 0]), Ok(0));
    assert_eq!(get_mempolicy(&mut pr, &p, [pol, mask, 64, 0, 0, 0]), Ok(0));
    assert_eq!((int(&p, pol), long(&p, mask)), (2, 1));
    // Node 1 alone: nothing left.
    p.poke(mask, &2u64.to_le_bytes());
    assert_eq!(
        set_mempolicy(&mut pr, &p, [2, mask, 64, 0, 0, 0]),
        Err(Errno::EINVAL)
    );
    // maxnode below nr_node_ids, bad flags, addr without MPOL_F_ADDR.
    assert_eq!(
        get_mempolicy(&mut pr, &p, [pol, mask, 0, 0, 0, 0]),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        get_mempolicy(&mut pr, &p, [pol, 0, 0, 0, 8, 0]),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        get_mempolicy(&mut pr, &p, [pol, 0, 0, buf, 0, 0]),
        Err(Errno::EINVAL)
    );
    // The node of a page; a hole is EFAULT, and so is PROT_NONE.
    assert_eq!(get_mempolicy(&mut pr, &p, [pol, 0, 0, buf, 3, 0]), Ok(0));
    assert_eq!(int(&p, pol), 0);
    assert_eq!(
        get_mempolicy(&mut pr, &p, [pol, 0, 0, buf + 9 * 4096, 3, 0]),
        Err(Errno::EFAULT)
    );
    assert_eq!(
        get_mempolicy(&mut pr, &p, [pol, 0, 0, buf + 8 * 4096, 3, 0]),
        Err(Errno::EFAULT)
    );
    // MPOL_F_NODE alone needs an interleave policy.
    assert_eq!(
        get_mempolicy(&mut pr, &p, [pol, 0, 0, 0, 1, 0]),
        Err(Errno::EINVAL)
    );
    p.poke(mask, &1u64.to_le_bytes());
    assert_eq!(set_mempolicy(&mut pr, &p, [3, mask, 64, 0, 0, 0]), Ok(0));
    assert_eq!(get_mempolicy(&mut pr, &p, [pol, 0, 0, 0, 1, 0]), Ok(0));
    assert_eq!(int(&p, pol), 0);
    // A bad mask pointer.
    assert_eq!(
        set_mempolicy(&mut pr, &p, [2, buf + 9 * 4096, 64, 0, 0, 0]),
        Err(Errno::EFAULT)
    );
    // Bits past MAX_NUMNODES must be zero.
    p.poke(mask, &[0u8; 24]);
    p.poke(mask + 16 * 8, &1u64.to_le_bytes());
    assert_eq!(
        set_mempolicy(&mut pr, &p, [2, mask, 1025 + 64, 0, 0, 0]),
        Err(Errno::EINVAL)
    );
}

#[test]
fn mbind_sets_the_range_policy_and_refuses_holes() {
    let (mut pr, p, buf) = setup(&[]);
    let (pol, mask) = (buf, buf + 8);
    p.poke(mask, &1u64.to_le_bytes());
    assert_eq!(
        mbind(&mut pr, &p, [buf + 4096, 4096, 2, mask, 64, 0]),
        Ok(0)
    );
    assert_eq!(
        get_mempolicy(&mut pr, &p, [pol, 0, 0, buf + 4096, 2, 0]),
        Ok(0)
    );
    assert_eq!(int(&p, pol), 2);
    assert_eq!(get_mempolicy(&mut pr, &p, [pol, 0, 0, buf, 2, 0]), Ok(0));
    assert_eq!(int(&p, pol), 0);
    // Across the hole: EFAULT for a policy, fine for the default.
    assert_eq!(
        mbind(&mut pr, &p, [buf, 10 * 4096, 2, mask, 64, 0]),
        Err(Errno::EFAULT)
    );
    assert_eq!(mbind(&mut pr, &p, [buf, 10 * 4096, 0, 0, 0, 0]), Ok(0));
    assert_eq!(
        mbind(&mut pr, &p, [buf + 9 * 4096, 4096, 0, 0, 0, 0]),
        Err(Errno::EFAULT)
    );
    assert_eq!(
        get_mempolicy(&mut pr, &p, [pol, 0, 0, buf + 4096, 2, 0]),
        Ok(0)
    );
    assert_eq!(int(&p, pol), 0);
    assert_eq!(
        mbind(&mut pr, &p, [buf + 1, 4096, 2, mask, 64, 0]),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        mbind(&mut pr, &p, [buf, 4096, 2, mask, 64, 8]),
        Err(Errno::EINVAL)
    );
    assert_eq!(mbind(&mut pr, &p, [buf, 0, 2, mask, 64, 0]), Ok(0));
    assert_eq!(mbind(&mut pr, &p, [buf, u64::MAX, 2, mask, 64, 0]), Ok(0));
    assert_eq!(mbind(&mut pr, &p, [buf, 4096, 2, mask, 64, 1]), Ok(0));
}

#[test]
fn move_pages_reports_nodes_and_errors() {
    let (mut pr, p, buf) = setup(&[]);
    let (pages, nodes, status) = (buf, buf + 64, buf + 128);
    for (i, va) in [buf, buf + 9 * 4096, 0].iter().enumerate() {
        p.poke(pages + i as u64 * 8, &va.to_le_bytes());
    }
    assert_eq!(move_pages(&mut pr, &p, [0, 3, pages, 0, status, 0]), Ok(0));
    assert_eq!(
        [int(&p, status), int(&p, status + 4), int(&p, status + 8)],
        [0, -14, -14]
    );
    p.poke(nodes, &[0u8; 12]);
    assert_eq!(
        move_pages(&mut pr, &p, [PID as u64, 1, pages, nodes, status, 2]),
        Ok(0)
    );
    assert_eq!(int(&p, status), 0);
    p.poke(nodes, &1i32.to_le_bytes());
    assert_eq!(
        move_pages(&mut pr, &p, [0, 1, pages, nodes, status, 2]),
        Err(Errno::ENODEV)
    );
    p.poke(nodes, &(-1i32).to_le_bytes());
    assert_eq!(
        move_pages(&mut pr, &p, [0, 1, pages, nodes, status, 2]),
        Err(Errno::ENODEV)
    );
    assert_eq!(
        move_pages(&mut pr, &p, [0, 1, pages, nodes, status, 8]),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        move_pages(&mut pr, &p, [0, 1, buf + 9 * 4096, 0, status, 0]),
        Err(Errno::EFAULT)
    );
    // Another process's pages are Linux's.
    p.reply(Sysno::move_pages, -3);
    assert_eq!(
        move_pages(&mut pr, &p, [1, 1, pages, 0, status, 0]),
        Err(Errno::ESRCH)
    );
}

#[test]
fn migrate_pages_on_one_node_moves_nothing() {
    let (mut pr, p, buf) = setup(&[]);
    let (old, new) = (buf, buf + 8);
    p.poke(old, &1u64.to_le_bytes());
    p.poke(new, &1u64.to_le_bytes());
    assert_eq!(migrate_pages(&mut pr, &p, [0, 64, old, new, 0, 0]), Ok(0));
    p.poke(new, &2u64.to_le_bytes());
    p.reply(Sysno::move_pages, 0);
    assert_eq!(
        migrate_pages(&mut pr, &p, [0, 64, old, new, 0, 0]),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        migrate_pages(&mut pr, &p, [0, 64, buf + 9 * 4096, new, 0, 0]),
        Err(Errno::EFAULT)
    );
}

#[test]
fn two_nodes_report_where_frames_are_and_refuse_misplaced_strict_binds() {
    // Node 1 holds guest-physical [0, 40 MiB), node 3 the rest: the pool's
    // first frames are on node 1.
    let (mut pr, p, buf) = setup(&[(1, 40 * MB), (3, 64 * MB)]);
    let (pol, mask) = (buf, buf + 8);
    assert_eq!(get_mempolicy(&mut pr, &p, [pol, 0, 0, buf, 3, 0]), Ok(0));
    assert_eq!(int(&p, pol), 1);
    assert_eq!(get_mempolicy(&mut pr, &p, [pol, mask, 64, 0, 4, 0]), Ok(0));
    assert_eq!(long(&p, mask), 0b1010);
    p.poke(mask, &8u64.to_le_bytes());
    assert_eq!(
        mbind(&mut pr, &p, [buf, 4096, 2, mask, 64, 1]),
        Err(Errno::EIO)
    );
    assert_eq!(mbind(&mut pr, &p, [buf, 4096, 2, mask, 64, 0]), Ok(0));
    // move_pages to node 3: the page moves, its contents with it.
    let (pages, nodes, status) = (buf + 64, buf + 128, buf + 192);
    p.poke(pages, &buf.to_le_bytes());
    p.poke(nodes, &3i32.to_le_bytes());
    let before = p.peek(buf, 192);
    let old = pr.mm.translate(buf).unwrap();
    assert_eq!(
        move_pages(&mut pr, &p, [0, 1, pages, nodes, status, 2]),
        Ok(0)
    );
    assert_eq!(int(&p, status), 3);
    let new = pr.mm.translate(buf).unwrap();
    assert!(new >= 40 * MB && old < 40 * MB, "{old:#x} -> {new:#x}");
    assert!(
        p.peek(buf, 192) == before,
        "the contents moved with the page"
    );
    assert_eq!(p.st.borrow().mirror.get(&buf), Some(&new), "mirror follows");
    assert_eq!(get_mempolicy(&mut pr, &p, [pol, 0, 0, buf, 3, 0]), Ok(0));
    assert_eq!(int(&p, pol), 3);
    // The query reports it too; the next page stayed.
    p.poke(pages + 8, &(buf + 4096).to_le_bytes());
    assert_eq!(move_pages(&mut pr, &p, [0, 2, pages, 0, status, 0]), Ok(0));
    assert_eq!((int(&p, status), int(&p, status + 4)), (3, 1));
    // With a second thread, a forwarded call could write the page through the
    // mirror while it is copied: the page stays, busy, as a page Linux cannot
    // isolate.
    pr.threads = 2;
    p.poke(nodes, &1i32.to_le_bytes());
    assert_eq!(
        move_pages(&mut pr, &p, [0, 1, pages, nodes, status, 2]),
        Ok(0)
    );
    assert_eq!(int(&p, status), -16);
    assert_eq!(pr.mm.translate(buf), Some(new));
    pr.threads = 1;
    // Node 2 is not the partition's.
    p.poke(nodes, &2i32.to_le_bytes());
    assert_eq!(
        move_pages(&mut pr, &p, [0, 1, pages, nodes, status, 2]),
        Err(Errno::ENODEV)
    );
}

/// Two nodes: node 1 [16 MiB, 40 MiB) of the pool, node 3 [40, 64 MiB).
fn two() -> (Process, FakePlatform, u64) {
    setup(&[(1, 40 * MB), (3, 64 * MB)])
}

/// Nodes (host ids) of each page of `[va, va + len)`.
fn nodes_of(pr: &Process, va: u64, len: u64) -> Vec<u32> {
    (va..va + len)
        .step_by(4096)
        .map(|a| pr.mm.numa.node_of_gpa(pr.mm.translate(a).unwrap()))
        .collect()
}

fn set_policy(pr: &mut Process, p: &FakePlatform, scratch: u64, mode: u64, mask: u64) {
    p.poke(scratch, &mask.to_le_bytes());
    assert_eq!(set_mempolicy(pr, p, [mode, scratch, 64, 0, 0, 0]), Ok(0));
}

#[test]
fn memory_comes_from_the_node_the_thread_policy_chooses() {
    let (mut pr, p, buf) = two();
    let anon =
        |pr: &mut Process, len: u64| mm::mmap(pr, &p, 0, len, 3, 0x22, u64::MAX, 0).unwrap() as u64;
    // Default: the core's node (core 0 is on node 1).
    let a = anon(&mut pr, 4 * MB);
    assert!(nodes_of(&pr, a, 4 * MB).iter().all(|&n| n == 1));
    // Bound to node 3.
    set_policy(&mut pr, &p, buf, 2, 1 << 3);
    let b = anon(&mut pr, 4 * MB);
    assert!(nodes_of(&pr, b, 4 * MB).iter().all(|&n| n == 3));
    // Interleave: the 2 MiB chunks alternate, from the node after the last.
    set_policy(&mut pr, &p, buf, 3, (1 << 1) | (1 << 3));
    let c = anon(&mut pr, 8 * MB);
    let chunks: Vec<u32> = (0..4)
        .map(|k| nodes_of(&pr, c + k * 2 * MB, 4096)[0])
        .collect();
    assert_eq!(chunks, [1, 3, 1, 3]);
    assert_eq!(get_mempolicy(&mut pr, &p, [buf + 64, 0, 0, 0, 1, 0]), Ok(0));
    assert_eq!(int(&p, buf + 64), 1, "the next interleave node");
    // 4 KiB pages interleave one by one.
    let d = anon(&mut pr, 3 * 4096);
    assert_eq!(nodes_of(&pr, d, 3 * 4096), [1, 3, 1]);
    // Preferred node 3 fills node 3, then falls back to node 1.
    set_policy(&mut pr, &p, buf, 1, 1 << 3);
    let free3 = pr
        .mm
        .frames()
        .pool(1)
        .available_in(crate::frames::FrameSize::Large);
    let e = anon(&mut pr, free3 + 4 * MB);
    let on = nodes_of(&pr, e, free3 + 4 * MB);
    assert_eq!(on.iter().filter(|&&n| n == 3).count() as u64 * 4096, free3);
    assert_eq!(on.iter().filter(|&&n| n == 1).count() as u64 * 4096, 4 * MB);
    // Node 3 is full now: bound there, a mapping is ENOMEM; preferred and
    // interleave fall back to node 1.
    set_policy(&mut pr, &p, buf, 2, 1 << 3);
    assert_eq!(
        mm::mmap(&mut pr, &p, 0, 2 * MB, 3, 0x22, u64::MAX, 0),
        Err(Errno::ENOMEM)
    );
    set_policy(&mut pr, &p, buf, 3, 1 << 3);
    let f = anon(&mut pr, 2 * MB);
    assert!(nodes_of(&pr, f, 2 * MB).iter().all(|&n| n == 1));
    // Local (preferred with no node) is the core's node.
    set_policy(&mut pr, &p, buf, 1, 0);
    let g = anon(&mut pr, 4096);
    assert_eq!(nodes_of(&pr, g, 4096), [1]);
}

#[test]
fn a_vma_policy_places_memory_backed_later_and_moves_pages_with_mpol_mf_move() {
    let (mut pr, p, buf) = two();
    // A reservation, bound to node 3 by mbind, then made accessible: backed on 3.
    let r = mm::mmap(&mut pr, &p, 0, 4 * MB, 0, 0x22, u64::MAX, 0).unwrap() as u64;
    p.poke(buf, &(1u64 << 3).to_le_bytes());
    assert_eq!(mbind(&mut pr, &p, [r, 4 * MB, 2, buf, 64, 0]), Ok(0));
    assert_eq!(mm::mprotect(&mut pr, &p, r, 4 * MB, 3), Ok(0));
    assert!(nodes_of(&pr, r, 4 * MB).iter().all(|&n| n == 3));
    // A VMA interleave picks by address: 2 MiB chunk k on node k % 2 of {1, 3}.
    let s = mm::mmap(&mut pr, &p, 0, 4 * MB, 0, 0x22, u64::MAX, 0).unwrap() as u64;
    p.poke(buf, &((1u64 << 1) | (1 << 3)).to_le_bytes());
    assert_eq!(mbind(&mut pr, &p, [s, 4 * MB, 3, buf, 64, 0]), Ok(0));
    assert_eq!(mm::mprotect(&mut pr, &p, s, 4 * MB, 3), Ok(0));
    let want = |va: u64| {
        if (va / (2 * MB)).is_multiple_of(2) {
            1
        } else {
            3
        }
    };
    assert_eq!(nodes_of(&pr, s, 4096)[0], want(s));
    assert_eq!(nodes_of(&pr, s + 2 * MB, 4096)[0], want(s + 2 * MB));
    // Present pages elsewhere: STRICT alone is EIO (the policy set); with
    // MPOL_MF_MOVE they move to the policy's node, contents and all.
    let t = mm::mmap(&mut pr, &p, 0, 2 * 4096, 3, 0x22, u64::MAX, 0).unwrap() as u64;
    p.poke(t, b"moved");
    assert_eq!(nodes_of(&pr, t, 2 * 4096), [1, 1]);
    p.poke(buf, &(1u64 << 3).to_le_bytes());
    assert_eq!(
        mbind(&mut pr, &p, [t, 8192, 2, buf, 64, 1]),
        Err(Errno::EIO)
    );
    assert_eq!(mbind(&mut pr, &p, [t, 8192, 2, buf, 64, 3]), Ok(0));
    assert_eq!(nodes_of(&pr, t, 2 * 4096), [3, 3]);
    assert_eq!(p.peek(t, 5), b"moved");
    assert_eq!(mbind(&mut pr, &p, [t, 8192, 2, buf, 64, 1]), Ok(0));
}

#[test]
fn migrate_pages_moves_a_process_between_nodes() {
    let (mut pr, p, buf) = two();
    let a = mm::mmap(&mut pr, &p, 0, 3 * 4096, 3, 0x22, u64::MAX, 0).unwrap() as u64;
    p.poke(a + 4096, b"data");
    let (old, new) = (buf, buf + 8);
    p.poke(old, &(1u64 << 1).to_le_bytes());
    p.poke(new, &(1u64 << 3).to_le_bytes());
    assert_eq!(migrate_pages(&mut pr, &p, [0, 64, old, new, 0, 0]), Ok(0));
    assert_eq!(nodes_of(&pr, a, 3 * 4096), [3, 3, 3]);
    assert_eq!(nodes_of(&pr, buf, 4096), [3]);
    assert_eq!(p.peek(a + 4096, 4), b"data");
    // Several threads: nothing moves, every page counted.
    pr.threads = 2;
    p.poke(old, &(1u64 << 3).to_le_bytes());
    p.poke(new, &(1u64 << 1).to_le_bytes());
    let n = migrate_pages(&mut pr, &p, [0, 64, old, new, 0, 0]).unwrap();
    assert!(n >= 3, "{n}");
    assert_eq!(nodes_of(&pr, a, 4096), [3]);
}

#[test]
fn home_node_is_checked_as_linux_and_leads_a_bind() {
    let (mut pr, p, buf) = two();
    let r = mm::mmap(&mut pr, &p, 0, 4 * MB, 0, 0x22, u64::MAX, 0).unwrap() as u64;
    let home = |pr: &mut Process, a: [u64; 4]| {
        set_mempolicy_home_node(pr, &p, [a[0], a[1], a[2], a[3], 0, 0])
    };
    // Unaligned start, flags, a node not online (not the partition's).
    assert_eq!(home(&mut pr, [r + 1, 4096, 1, 0]), Err(Errno::EINVAL));
    assert_eq!(home(&mut pr, [r, 4096, 1, 1]), Err(Errno::EINVAL));
    assert_eq!(home(&mut pr, [r, 4096, 2, 0]), Err(Errno::EINVAL));
    assert_eq!(home(&mut pr, [r, 4096, 5000, 0]), Err(Errno::EINVAL));
    assert_eq!(
        home(&mut pr, [r, u64::MAX - 8192, 1, 0]),
        Err(Errno::EINVAL)
    );
    assert_eq!(home(&mut pr, [r, 0, 1, 0]), Ok(0));
    // No VMA with a policy: ENOENT; a preferred one: EOPNOTSUPP.
    assert_eq!(home(&mut pr, [r, 4096, 1, 0]), Err(Errno::ENOENT));
    p.poke(buf, &(1u64 << 3).to_le_bytes());
    assert_eq!(mbind(&mut pr, &p, [r, 4096, 1, buf, 64, 0]), Ok(0));
    assert_eq!(home(&mut pr, [r, 4096, 1, 0]), Err(Errno::EOPNOTSUPP));
    // Bind to {1, 3} with home node 3: memory backed later starts on 3.
    p.poke(buf, &((1u64 << 1) | (1 << 3)).to_le_bytes());
    assert_eq!(mbind(&mut pr, &p, [r, 4 * MB, 2, buf, 64, 0]), Ok(0));
    assert_eq!(home(&mut pr, [r, 4 * MB, 3, 0]), Ok(0));
    assert_eq!(mm::mprotect(&mut pr, &p, r, 4 * MB, 3), Ok(0));
    assert!(nodes_of(&pr, r, 4 * MB).iter().all(|&n| n == 3));
}

/// Randomized: any arguments to the five calls (pointers into the mapping, the
/// hole and elsewhere; masks of any content and width) give an answer, never a
/// panic (the fake platform panics on any access libos did not check).
#[test]
fn fuzz_memory_policy_arguments() {
    use mote_fuzz::{inputs, seed, Rng};
    let (mut pr, p, buf) = setup(&[(1, 40 * MB), (3, 64 * MB)]);
    let mut rng = Rng::new(seed(std::env::var("MOTE_FUZZ_SEED").ok().as_deref()));
    let n = inputs(std::env::var("MOTE_FUZZ_INPUTS").ok().as_deref()) / 4;
    let mut ok = 0;
    for _ in 0..n {
        let ptr = |rng: &mut Rng| match rng.below(4) {
            0 => 0,
            1 => buf + rng.below(10 * 4096 + 64),
            2 => buf + 64 * rng.below(8),
            _ => rng.edgy(),
        };
        let mut bytes = [0u8; 64];
        let len = rng.below(64) as usize;
        rng.fill(&mut bytes[..len]);
        p.poke(buf + 512, &bytes);
        let a = [
            match rng.below(3) {
                0 => rng.below(8),
                1 => buf + 4096 * rng.below(10),
                _ => rng.edgy(),
            },
            rng.edgy(),
            rng.edgy() & 0xffff_f007,
            ptr(&mut rng),
            rng.edgy(),
            rng.edgy() & 7,
        ];
        let a = match rng.below(3) {
            0 => a,
            1 => [a[0], buf + 512, rng.below(200), a[3], a[4], a[5]],
            _ => [
                a[0],
                a[1],
                rng.edgy() & 0xf,
                buf + 512,
                rng.below(1100),
                a[5],
            ],
        };
        p.reply(Sysno::move_pages, 0);
        p.reply(Sysno::migrate_pages, 0);
        let r = match rng.below(5) {
            0 => get_mempolicy(&mut pr, &p, a),
            1 => set_mempolicy(&mut pr, &p, a),
            2 => mbind(&mut pr, &p, a),
            3 => move_pages(
                &mut pr,
                &p,
                [a[0] % 3, a[1] % 40, a[3], a[4], buf + 1024, a[5]],
            ),
            _ => migrate_pages(&mut pr, &p, [0, a[2], buf + 512, buf + 520, 0, 0]),
        };
        ok += usize::from(r.is_ok());
    }
    assert!(ok > 0, "no call succeeded");
}
