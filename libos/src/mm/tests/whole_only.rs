//! Random operations checked against the invariants, and whole-only 2 MiB pages
//! (split before a partial change, with and without 4 KiB frames to split them).

use super::*;

#[test]
fn random_operations_keep_the_invariants() {
    random_operations(LARGE_PAGE_SIZE);
}

#[test]
fn random_operations_keep_the_invariants_with_4k_pages() {
    random_operations(PAGE_SIZE);
}

fn random_operations(page_size: u64) {
    let (mm, p) = setup(96 * MB);
    random_operations_on(mm, p, page_size, &[], 0x2545_f491_4f6c_dd1d);
}

#[test]
fn whole_only_random_operations_with_whole_only_memory() {
    for seed in 1..6u64 {
        let (mm, p) = setup_whole_only(32 * MB, 64 * MB);
        random_operations_on(
            mm,
            p,
            LARGE_PAGE_SIZE,
            &[],
            seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1,
        );
    }
}

#[test]
fn whole_only_random_operations_with_whole_only_memory_but_madvise() {
    for seed in 1..6u64 {
        let (mm, p) = setup_whole_only(32 * MB, 64 * MB);
        random_operations_on(
            mm,
            p,
            LARGE_PAGE_SIZE,
            &[5],
            seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1,
        );
    }
}

#[test]
fn whole_only_random_operations_with_whole_only_memory_plenty_small_but_madvise() {
    for seed in 1..6u64 {
        let (mm, p) = setup_whole_only(512 * MB, 64 * MB);
        random_operations_on(
            mm,
            p,
            LARGE_PAGE_SIZE,
            &[5],
            seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1,
        );
    }
}

fn random_operations_on(
    mut mm: AddressSpace,
    p: FakePlatform,
    page_size: u64,
    skip: &[u64],
    seed0: u64,
) {
    mm.set_page_size(page_size);
    mm.set_brk_start(0x40_0000);
    let mut seed = seed0;
    let mut rnd = |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    p.add_shareable(9, 40 * PAGE_SIZE + 100, true);
    for _ in 0..3000 {
        // Now and then around the heap and its reserve.
        let base = if rnd(4) == 0 {
            0x40_0000
        } else {
            0x10_0000_0000u64
        };
        let page = rnd(2048);
        let va = base + page * PAGE_SIZE;
        let big = rnd(8) == 0;
        let len = (1 + rnd(if big { 1200 } else { 24 })) * PAGE_SIZE;
        let prot = [PROT_NONE, PROT_READ, RW, RW | PROT_EXEC][rnd(4) as usize];
        // Dirty whatever the application has at `va`, so reused frames and
        // the heap's old pages must be zeroed.
        if p.mapping(va).is_some() && mm.vma_at(va).is_some() {
            p.poke(va, &[0xee; 16]);
        }
        let fresh = |mm: &AddressSpace, a: u64| {
            if prot != PROT_NONE {
                assert!(mm.translate(a).is_some());
                assert_eq!(p.peek(a, 16), [0; 16], "new memory at {a:#x} is zero");
                assert_eq!(p.peek(a + len - 16, 16), [0; 16]);
            }
        };
        let op = rnd(8);
        if skip.contains(&op) {
            continue;
        }
        let _ = match op {
            0 => mm
                .mmap(&p, va, len, prot, ANON | MAP_FIXED, u64::MAX, 0)
                .map(|a| fresh(&mm, a)),
            1 => mm
                .mmap(&p, 0, len, prot, ANON, u64::MAX, 0)
                .map(|a| fresh(&mm, a)),
            2 => mm.munmap(&p, va, len),
            3 => mm.mprotect(&p, va, len, prot),
            4 if rnd(3) == 0 => mm
                .mremap(&p, va, len, len, MREMAP_MAYMOVE | MREMAP_DONTUNMAP, 0)
                .map(|_| ()),
            4 => {
                if let Some((s, v)) = mm.vma_at(va).map(|(s, v)| (s, *v)) {
                    if rnd(2) == 0 {
                        mm.label(s, v.end, b"/some/file");
                    }
                }
                mm.mremap(&p, va, len, (1 + rnd(40)) * PAGE_SIZE, MREMAP_MAYMOVE, 0)
                    .map(|_| ())
            }
            5 => mm.madvise(&p, va, len, MADV_DONTNEED),
            7 if rnd(2) == 0 => {
                // A shared file mapping, partly beyond the file's end.
                let off = rnd(32) * PAGE_SIZE;
                let flags = MAP_SHARED | MAP_FIXED;
                mm.mmap(&p, va, len.min(64 * PAGE_SIZE), prot, flags, 9, off)
                    .map(|_| ())
            }
            6 => {
                let old = mm.current_brk();
                let want = 0x40_0000 + rnd(64) * 50_000 + rnd(5000);
                let got = mm.brk(&p, want);
                assert!(got == want || got == old);
                let (o, n) = (align_up(old, PAGE_SIZE), align_up(got, PAGE_SIZE));
                if n > o {
                    assert_eq!(p.peek(o, 16), [0; 16], "new heap at {o:#x} is zero");
                    assert_eq!(p.peek(n - 16, 16), [0; 16]);
                }
                Ok(())
            }
            _ => {
                let grows = if rnd(4) == 0 { MAP_GROWSDOWN } else { 0 };
                mm.mmap(&p, va, len, prot, ANON | grows, u64::MAX, 0)
                    .map(|_| ())
            }
        };
        if rnd(16) == 0 {
            // An access below some mapping: grows it if it is MAP_GROWSDOWN.
            let _ = mm.page_fault(&p, va.saturating_sub(PAGE_SIZE), 0);
        }
        mm.assert_invariants();
    }
    p.assert_mirror_matches();
    // Everything goes back.
    mm.munmap(&p, USER_START, USER_END - USER_START).unwrap();
    mm.assert_invariants();
    let (ps, pe) = mm.frames().range();
    assert_eq!(mm.frames().available() + mm.tables_given(), pe - ps);
    assert!(p.st.borrow().pages.is_empty());
    assert!(p.st.borrow().mirror.is_empty());
    assert!(p.st.borrow().shared.is_empty(), "every object released");
}

/// An address space whose pool has `large` bytes of whole-only 2 MiB pages
/// above `mem` bytes of ordinary memory, on a fake that refuses partial
/// operations on them.
fn setup_whole_only(mem: u64, large: u64) -> (AddressSpace, FakePlatform) {
    let p = FakePlatform::new();
    let (start, split_at) = (16 * MB, 16 * MB + mem);
    p.st.borrow_mut().whole_only = Some((split_at, split_at + large));
    let mut mm = AddressSpace::new(FramePool::with_large(start, split_at, split_at + large));
    mm.init(&p).unwrap();
    (mm, p)
}

#[test]
fn whole_only_pages_are_split_before_a_partial_mprotect_munmap_or_move() {
    let (mut mm, p) = setup_whole_only(64 * MB, 64 * MB);
    let whole = |p: &FakePlatform, va: u64| {
        let gpa = p.mapping(va).unwrap().0;
        gpa >= 80 * MB
    };
    let a = anon(&mut mm, &p, 0, 8 * MB, ANON).unwrap();
    assert!(a.is_multiple_of(2 * MB));
    for i in 0..4 {
        assert!(
            whole(&p, a + i * 2 * MB),
            "large maps use the 2 MiB-only memory"
        );
    }
    // Data in the first chunk, on both sides of the page about to change.
    p.write_mem(a + PAGE_SIZE - 3, b"before");
    p.write_mem(a + 3 * PAGE_SIZE, b"after");
    // A guard page, as pthread_create makes one.
    mm.mprotect(&p, a + PAGE_SIZE, PAGE_SIZE, PROT_NONE)
        .unwrap();
    assert!(!whole(&p, a), "the first chunk moved to 4 KiB frames");
    assert!(whole(&p, a + 2 * MB), "the others stayed");
    assert_eq!(p.mapping(a + PAGE_SIZE).unwrap().1, PROT_NONE);
    assert_eq!(p.mapping(a).unwrap().1, RW);
    // "before" straddles the guard page: read its two halves.
    assert_eq!(p.peek(a + PAGE_SIZE - 3, 3), b"bef");
    assert_eq!(p.peek(a + 3 * PAGE_SIZE, 5), b"after");
    // munmap of one page inside another chunk.
    p.write_mem(a + 2 * MB + 5 * PAGE_SIZE, b"kept");
    mm.munmap(&p, a + 2 * MB + PAGE_SIZE, PAGE_SIZE).unwrap();
    assert_eq!(p.mapping(a + 2 * MB + PAGE_SIZE), None);
    assert_eq!(p.peek(a + 2 * MB + 5 * PAGE_SIZE, 4), b"kept");
    // A move to an address 4 KiB off the 2 MiB grid splits what moves.
    p.write_mem(a + 6 * MB + 7, b"moved");
    let to = mm
        .mremap(
            &p,
            a + 6 * MB,
            2 * MB,
            2 * MB,
            MREMAP_MAYMOVE | MREMAP_FIXED,
            0x7000_1000,
        )
        .unwrap();
    assert_eq!(to, 0x7000_1000);
    assert_eq!(p.peek(to + 7, 5), b"moved");
    assert!(!whole(&p, to));
    mm.assert_invariants();
    p.assert_mirror_matches();
    // Freed whole-only pages are handed out again, whole.
    mm.munmap(&p, a, 8 * MB).unwrap();
    mm.munmap(&p, to, 2 * MB).unwrap();
    let b = anon(&mut mm, &p, 0, 8 * MB, ANON).unwrap();
    assert!((0..4).all(|i| whole(&p, b + i * 2 * MB)));
    mm.assert_invariants();
}

// ---- whole-only memory without 4 KiB frames to split it ----

/// Use up the pool's 4 KiB-capable memory with small mappings.
fn exhaust_small(mm: &mut AddressSpace, p: &FakePlatform) {
    while anon(mm, p, 0, MB, ANON).is_ok() {}
    while anon(mm, p, 0, PAGE_SIZE, ANON).is_ok() {}
    assert_eq!(mm.frames().available_in(FrameSize::Small), 0);
}

#[test]
fn whole_only_madvise_dontneed_in_part_of_a_read_only_whole_chunk() {
    let (mut mm, p) = setup_whole_only(64 * MB, 64 * MB);
    let a = anon(&mut mm, &p, 0, 4 * MB, ANON).unwrap();
    assert!(p.mapping(a).unwrap().0 >= 80 * MB, "a whole-only chunk");
    p.write_mem(a + PAGE_SIZE, b"gone");
    p.write_mem(a + 2 * PAGE_SIZE, b"kept");
    // Whole chunks: no split needed.
    mm.mprotect(&p, a, 4 * MB, PROT_READ).unwrap();
    // zero_backed protects [a+4K, a+8K) read-write: part of a whole-only page
    // (Linux: EINVAL, ignored; then the runtime's own store faults).
    mm.madvise(&p, a + PAGE_SIZE, PAGE_SIZE, MADV_DONTNEED)
        .unwrap();
    assert_eq!(p.peek(a + PAGE_SIZE, 4), [0; 4]);
    assert_eq!(p.peek(a + 2 * PAGE_SIZE, 4), b"kept");
    mm.assert_invariants();
}

#[test]
fn whole_only_map_fixed_into_a_whole_chunk_without_4k_frames() {
    let (mut mm, p) = setup_whole_only(16 * MB, 64 * MB);
    let a = anon(&mut mm, &p, 0, 4 * MB, ANON).unwrap();
    assert!(p.mapping(a).unwrap().0 >= 32 * MB, "a whole-only chunk");
    p.write_mem(a + PAGE_SIZE, b"old");
    exhaust_small(&mut mm, &p);
    // MAP_FIXED of one page inside the chunk: remove_range cannot split
    // (ENOMEM), silently leaves [a+4K, a+2M) in place, then map_new runs
    // over a range that is not free.
    let r = mm.mmap(
        &p,
        a + PAGE_SIZE,
        PAGE_SIZE,
        RW,
        ANON | MAP_FIXED,
        u64::MAX,
        0,
    );
    match r {
        Err(e) => assert_eq!(e, Errno::ENOMEM),
        Ok(va) => {
            assert_eq!(va, a + PAGE_SIZE);
            assert_eq!(p.peek(a + PAGE_SIZE, 3), [0; 3], "fresh memory is zero");
        }
    }
    mm.assert_invariants();
}

#[test]
fn whole_only_mremap_shrink_of_a_whole_chunk_without_4k_frames() {
    let (mut mm, p) = setup_whole_only(16 * MB, 64 * MB);
    let a = anon(&mut mm, &p, 0, 4 * MB, ANON).unwrap();
    exhaust_small(&mut mm, &p);
    // Shrink to 2 MiB + 4 KiB: the cut at a+2M+4K lies inside a whole chunk.
    let r = mm.mremap(&p, a, 4 * MB, 2 * MB + PAGE_SIZE, 0, 0);
    if r == Ok(a) {
        assert!(
            mm.vma_at(a + 3 * MB).is_none(),
            "mremap said the tail is gone, but it is still mapped"
        );
    }
    mm.assert_invariants();
}

#[test]
fn whole_only_mremap_fixed_onto_part_of_a_whole_chunk_without_4k_frames() {
    let (mut mm, p) = setup_whole_only(16 * MB, 64 * MB);
    let a = anon(&mut mm, &p, 0, 4 * MB, ANON).unwrap();
    let b = anon(&mut mm, &p, 0, 2 * MB, ANON).unwrap();
    p.write_mem(a + 2 * MB + 8, b"victim");
    exhaust_small(&mut mm, &p);
    // Move b (2 MiB) onto a, growing to 2 MiB + 4 KiB: the displacement is
    // 2 MiB aligned, but the new end a+2M+4K cuts a's second whole chunk.
    // remove_range cannot split it, silently keeps [a+2M, a+2M+4K), and
    // map_new then runs over it.
    let r = mm.mremap(
        &p,
        b,
        2 * MB,
        2 * MB + PAGE_SIZE,
        MREMAP_MAYMOVE | MREMAP_FIXED,
        a,
    );
    if r == Ok(a) {
        assert_eq!(
            p.peek(a + 2 * MB + 8, 6),
            [0; 6],
            "the grown part is fresh memory"
        );
    }
    mm.assert_invariants();
}

#[test]
fn only_faults_that_may_have_met_a_split_are_retried() {
    let (mut mm, p) = setup_whole_only(64 * MB, 64 * MB);
    let a = anon(&mut mm, &p, 0, 4 * MB, ANON).unwrap();
    // An allowed access to a backed page elsewhere is the application's fault
    // (on the partition, a fault with the page tables right cannot repeat).
    assert_eq!(mm.page_fault(&p, a + 8, PF_WRITE), Fault::Default);
    // A split makes the chunk read-only, then maps the copy: a fault that met
    // it is retried.
    mm.mprotect(&p, a + PAGE_SIZE, PAGE_SIZE, PROT_READ)
        .unwrap();
    assert_eq!(mm.page_fault(&p, a + 8, PF_WRITE), Fault::Retry);
    assert_eq!(mm.page_fault(&p, a + 2 * PAGE_SIZE, 0), Fault::Retry);
    // What the VMA forbids there is the application's fault, and so are
    // reserved-bit and protection-key faults.
    assert_eq!(mm.page_fault(&p, a + PAGE_SIZE, PF_WRITE), Fault::Default);
    assert_eq!(mm.page_fault(&p, a, PF_FETCH), Fault::Default);
    assert_eq!(mm.page_fault(&p, a, PF_PK), Fault::Default);
    assert_eq!(mm.page_fault(&p, a, PF_RSVD), Fault::Default);
    // The other chunk was not split.
    assert_eq!(mm.page_fault(&p, a + 2 * MB, PF_WRITE), Fault::Default);
    // A fault Linux reported as SIGBUS is SIGBUS, whatever the mapping says.
    assert_eq!(
        mm.page_fault(&p, a + 8, PF_WRITE | mote_abi::trap::PF_SIGBUS),
        Fault::Signal(signal::SIGBUS)
    );
}

#[test]
fn when_the_platform_cannot_back_whole_only_pages_the_rest_of_the_pool_is_used() {
    // The note is for MOTE_DEBUG only: the application runs correctly either
    // way, and its stderr is its own (it broke stderr comparisons of MPI runs).
    for debugging in [true, false] {
        whole_only_pages_run_out(debugging);
    }
}

fn whole_only_pages_run_out(debugging: bool) {
    let (mut mm, p) = setup_whole_only(64 * MB, 64 * MB);
    // Linux has hugetlbfs pages for two chunks only.
    p.st.borrow_mut().whole_only_budget = Some(2);
    p.st.borrow_mut().debugging = debugging;
    let a = anon(&mut mm, &p, 0, 8 * MB, ANON).unwrap();
    let whole = |va: u64| p.mapping(va).unwrap().0 >= 80 * MB;
    // The first mapping's chunks were taken together and failed together: all
    // of it is ordinary memory, on 2 MiB pages still.
    assert!(
        (0..4).all(|i| !whole(a + i * 2 * MB)),
        "no partly hugetlbfs mapping"
    );
    assert_eq!(p.st.borrow().page_size.get(&a), Some(&LARGE_PAGE_SIZE));
    assert_eq!(
        p.st.borrow()
            .logs
            .iter()
            .filter(|l| l.contains("hugetlbfs"))
            .count(),
        usize::from(debugging),
        "said once, under MOTE_DEBUG only"
    );
    // Later mappings do not try again.
    let b = anon(&mut mm, &p, 0, 4 * MB, ANON).unwrap();
    assert!(!whole(b));
    mm.assert_invariants();
    p.assert_mirror_matches();
}

#[test]
fn a_split_page_waits_for_the_forwarded_calls_in_flight_before_its_frames_are_reused() {
    let (mut mm, p) = setup_whole_only(64 * MB, 8 * MB);
    let a = anon(&mut mm, &p, 0, 4 * MB, ANON).unwrap();
    let old = p.mapping(a).unwrap().0;
    // Another thread's blocking read is in flight (slot 3, request 7).
    p.st.borrow_mut().in_flight = alloc::vec![(3, 7)];
    mm.mprotect(&p, a + PAGE_SIZE, PAGE_SIZE, PROT_READ)
        .unwrap();
    p.st.borrow_mut().in_flight.clear();
    mm.assert_invariants();
    // Its old frames are not handed out while the call is unanswered.
    let b = anon(&mut mm, &p, 0, 4 * MB, ANON).unwrap();
    assert!((0..2).all(|i| p.mapping(b + i * 2 * MB).unwrap().0 != old));
    mm.munmap(&p, b, 4 * MB).unwrap();
    // Once it is answered they are.
    p.st.borrow_mut().answered.insert(3, 7);
    let c = anon(&mut mm, &p, 0, 4 * MB, ANON).unwrap();
    assert!((0..2).any(|i| p.mapping(c + i * 2 * MB).unwrap().0 == old));
    mm.assert_invariants();
}

#[test]
fn enomem_from_a_platform_without_page_tables_gives_no_frames_away() {
    // The hosted platform: Linux owns the page tables, and its mmap fails
    // with ENOMEM at vm.max_map_count.
    let p = FakePlatform::new();
    p.st.borrow_mut().host_tables = Some(Errno::ENOMEM);
    let mut mm = AddressSpace::new(FramePool::new(16 * MB, 80 * MB));
    let before = mm.frames().available();
    assert_eq!(
        mm.mmap(&p, 0, 4 * MB, RW, ANON, u64::MAX, 0),
        Err(Errno::ENOMEM)
    );
    assert_eq!(
        mm.frames().available(),
        before,
        "no frames given for tables"
    );
    assert_eq!(mm.tables_given(), 0);
}

#[test]
fn protecting_or_unmapping_part_of_a_large_page_gives_kernel_min_a_table_first() {
    let (mut mm, p) = setup(64 * MB);
    let a = anon(&mut mm, &p, 0, 4 * MB, ANON).unwrap();
    assert_eq!(p.st.borrow().page_size.get(&a), Some(&LARGE_PAGE_SIZE));
    // kernel-min has no table frame left to split a 2 MiB page with.
    p.st.borrow_mut().table_frames = 0;
    let given = mm.tables_given();
    mm.mprotect(&p, a + PAGE_SIZE, PAGE_SIZE, PROT_READ)
        .unwrap();
    assert_eq!(p.mapping(a + PAGE_SIZE).unwrap().1, PROT_READ, "protected");
    assert_eq!(p.mapping(a).unwrap().1, RW);
    assert!(mm.tables_given() > given, "libos gave tables and retried");
    p.st.borrow_mut().table_frames = 0;
    mm.munmap(&p, a + 2 * MB + PAGE_SIZE, PAGE_SIZE).unwrap();
    assert_eq!(
        p.mapping(a + 2 * MB + PAGE_SIZE),
        None,
        "unmapped before its frame is free"
    );
    mm.assert_invariants();
    p.assert_mirror_matches();
}
