//! Tests of what a fork child gets: shared anonymous memory as a pass-through
//! object, and the fork advice (`MADV_DONTFORK`, `MADV_WIPEONFORK`) applied by
//! `AddressSpace::forked`.

use super::*;
use syscalls::Sysno;

#[test]
fn shared_anonymous_memory_is_a_passed_through_memfd() {
    let (mut mm, p) = setup(64 * MB);
    let before = mm.frames().available();
    let rw = PROT_READ | PROT_WRITE;
    let a = anon(&mut mm, &p, 0, 2 * PAGE_SIZE, MAP_SHARED | MAP_ANONYMOUS).unwrap();
    let (gpa, prot) = p.mapping(a).unwrap();
    assert!(is_passthrough(gpa, PAGE_SIZE), "not pool memory: {gpa:#x}");
    assert_eq!(prot, rw);
    assert!(p.mapping(a + PAGE_SIZE).is_some(), "sized to the mapping");
    assert_eq!(mm.frames().available(), before, "no pool frames used");
    let nrs = p.forwarded_nrs();
    for nr in [Sysno::memfd_create, Sysno::ftruncate, Sysno::close] {
        assert!(nrs.contains(&(nr as u64)), "{nr:?} not forwarded: {nrs:?}");
    }
    mm.munmap(&p, a, 2 * PAGE_SIZE).unwrap();
    assert!(p.st.borrow().shared.is_empty(), "object released");
}

#[test]
fn shared_anonymous_memory_without_a_descriptor_is_enomem() {
    let (mut mm, p) = setup(64 * MB);
    p.reply(Sysno::memfd_create, Errno::EMFILE.ret());
    assert_eq!(
        anon(&mut mm, &p, 0, PAGE_SIZE, MAP_SHARED | MAP_ANONYMOUS),
        Err(Errno::ENOMEM)
    );
    assert_eq!(mm.vmas().count(), 0, "nothing left behind");
}

#[test]
fn fork_advice_splits_and_is_undone() {
    let (mut mm, p) = setup(64 * MB);
    let a = anon(&mut mm, &p, 0, 4 * PAGE_SIZE, ANON).unwrap();
    mm.madvise(&p, a + PAGE_SIZE, PAGE_SIZE, MADV_DONTFORK)
        .unwrap();
    let (s, v) = mm.vma_at(a + PAGE_SIZE).unwrap();
    assert_eq!((s, v.end), (a + PAGE_SIZE, a + 2 * PAGE_SIZE));
    assert!(v.fork.dontfork);
    assert!(!mm.vma_at(a).unwrap().1.fork.dontfork);
    mm.madvise(&p, a + PAGE_SIZE, PAGE_SIZE, MADV_DOFORK)
        .unwrap();
    assert_eq!(mm.vmas().count(), 1, "merged again once undone");
    // Not for shared or file memory (Linux: EINVAL), and nothing changes.
    let s = anon(&mut mm, &p, 0, PAGE_SIZE, MAP_SHARED | MAP_ANONYMOUS).unwrap();
    assert_eq!(
        mm.madvise(&p, s, PAGE_SIZE, MADV_WIPEONFORK),
        Err(Errno::EINVAL)
    );
    assert!(!mm.vma_at(s).unwrap().1.fork.wipeonfork);
}

#[test]
fn forked_drops_dontfork_and_zeroes_wipeonfork_memory() {
    let (mut mm, p) = setup(64 * MB);
    let a = anon(&mut mm, &p, 0, 3 * PAGE_SIZE, ANON).unwrap();
    for i in 0..3 {
        p.poke(a + i * PAGE_SIZE, b"data");
    }
    mm.madvise(&p, a, PAGE_SIZE, MADV_DONTFORK).unwrap();
    mm.madvise(&p, a + PAGE_SIZE, PAGE_SIZE, MADV_WIPEONFORK)
        .unwrap();
    mm.forked(&p);
    assert!(mm.vma_at(a).is_none(), "DONTFORK memory is gone");
    assert_eq!(p.mapping(a), None);
    assert_eq!(
        p.peek(a + PAGE_SIZE, 4),
        [0; 4],
        "WIPEONFORK memory is zero"
    );
    assert!(mm.vma_at(a + PAGE_SIZE).unwrap().1.fork.wipeonfork, "kept");
    assert_eq!(
        p.peek(a + 2 * PAGE_SIZE, 4),
        b"data",
        "the rest is as it was"
    );
    p.assert_mirror_matches();
}

/// Regression: `MADV_REMOVE` zeroed shared anonymous memory while it was pool
/// memory; as a pass-through object it was refused (`EINVAL`).
#[test]
fn madvise_remove_zeroes_shared_anonymous_memory() {
    let (mut mm, p) = setup(64 * MB);
    let a = anon(&mut mm, &p, 0, 2 * PAGE_SIZE, MAP_SHARED | MAP_ANONYMOUS).unwrap();
    p.poke(a, b"data");
    p.poke(a + PAGE_SIZE, b"kept");
    mm.madvise(&p, a, PAGE_SIZE, MADV_REMOVE).unwrap();
    assert_eq!(p.peek(a, 4), [0; 4]);
    assert_eq!(p.peek(a + PAGE_SIZE, 4), b"kept");
    mm.mprotect(&p, a, PAGE_SIZE, PROT_READ).unwrap();
    assert_eq!(
        mm.madvise(&p, a, PAGE_SIZE, MADV_REMOVE),
        Err(Errno::EACCES),
        "Linux: only in a writable shared mapping"
    );
}

/// Regression: `MAP_SHARED | MAP_ANONYMOUS | MAP_HUGETLB` was pool memory,
/// copied into a fork child like private memory (the child's writes were
/// lost to the parent), and its length was not rounded up to the huge page.
#[test]
fn shared_anonymous_huge_memory_is_a_hugetlbfs_memfd_of_whole_pages() {
    let (mut mm, p) = setup(64 * MB);
    let before = mm.frames().available();
    let flags = MAP_SHARED | MAP_ANONYMOUS | MAP_HUGETLB;
    let a = anon(&mut mm, &p, 0, PAGE_SIZE, flags).unwrap();
    assert!(a.is_multiple_of(LARGE_PAGE_SIZE), "{a:#x}");
    let (gpa, _) = p.mapping(a).unwrap();
    assert!(is_passthrough(gpa, PAGE_SIZE), "not pool memory: {gpa:#x}");
    assert!(
        p.mapping(a + LARGE_PAGE_SIZE - PAGE_SIZE).is_some(),
        "whole page"
    );
    assert_eq!(mm.frames().available(), before, "no pool frames used");
    let memfd =
        p.st.borrow()
            .forwarded
            .iter()
            .find(|f| f.0 == Sysno::memfd_create as u64)
            .map(|f| f.1[1]);
    assert_eq!(memfd, Some(MFD_CLOEXEC | MFD_HUGETLB));
    // A huge page size Linux cannot have: EINVAL, as natively.
    assert_eq!(
        anon(&mut mm, &p, 0, PAGE_SIZE, flags | (12 << MAP_HUGE_SHIFT)),
        Err(Errno::EINVAL)
    );
    mm.munmap(&p, a, LARGE_PAGE_SIZE).unwrap();
    assert!(p.st.borrow().shared.is_empty(), "object released");
}
