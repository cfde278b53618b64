//! Unit tests of the address space on the fake platform: mapping, placement, page
//! sizes, brk, munmap, mprotect, mremap, madvise, faults. File and System V
//! mappings are in `files`, the random-operation and whole-only 2 MiB page tests in
//! `whole_only`; all check [`AddressSpace`]'s invariants (`assert_invariants`).

use super::*;
use crate::fake::{FakePlatform, KCall};
use crate::frames::{FramePool, FrameSize};
use crate::uapi::mman::*;
use crate::uapi::signal;
use alloc::vec;
use mote_abi::kcall::{MAP_PAGES_1G, MAP_PAGES_4K};
use mote_abi::layout::{align_up, is_passthrough, USER_END, USER_MMAP_TOP, USER_START};
use mote_abi::maplog::{KIND_MAP, KIND_PROTECT, KIND_UNMAP};

mod files;
mod fork;
mod whole_only;

const MB: u64 = 1 << 20;
const RW: u64 = PROT_READ | PROT_WRITE;
const ANON: u64 = MAP_PRIVATE | MAP_ANONYMOUS;

fn setup(mem: u64) -> (AddressSpace, FakePlatform) {
    let p = FakePlatform::new();
    let mut mm = AddressSpace::new(FramePool::new(16 * MB, 16 * MB + mem));
    mm.init(&p).unwrap();
    (mm, p)
}

/// `mmap` as the application calls it: the syscall layer's checks of the raw
/// arguments (`crate::syscall::mm::map_request`), then [`AddressSpace::map`].
impl AddressSpace {
    #[allow(clippy::too_many_arguments)]
    fn mmap(
        &mut self,
        p: &FakePlatform,
        addr: u64,
        len: u64,
        prot: u64,
        flags: u64,
        fd: u64,
        off: u64,
    ) -> Result<u64, Errno> {
        let req = crate::syscall::mm::map_request(p, addr, len, prot, flags, fd, off)?;
        self.map(p, &req)
    }
}

fn anon(
    mm: &mut AddressSpace,
    p: &FakePlatform,
    addr: u64,
    len: u64,
    flags: u64,
) -> Result<u64, Errno> {
    mm.mmap(p, addr, len, RW, flags, u64::MAX, 0)
}

#[test]
fn init_gives_kernel_min_two_mib_of_tables() {
    let (mm, p) = setup(64 * MB);
    assert_eq!(mm.tables_given(), TABLE_GRANT);
    assert!(matches!(
        p.take_calls()[..],
        [KCall::GiveTables {
            len: TABLE_GRANT,
            ..
        }]
    ));
}

#[test]
fn map_retries_after_giving_tables() {
    let p = FakePlatform::new();
    let mut mm = AddressSpace::new(FramePool::new(16 * MB, 80 * MB));
    // No tables at all: the first map fails with ENOMEM inside, libos gives a
    // chunk and retries.
    let a = anon(&mut mm, &p, 0, 8 * PAGE_SIZE, ANON).unwrap();
    let calls = p.take_calls();
    assert!(matches!(calls[0], KCall::Map { .. }));
    assert!(calls.iter().any(|c| matches!(c, KCall::GiveTables { .. })));
    assert!(matches!(calls.last(), Some(KCall::Map { .. })));
    assert!(p.mapping(a).is_some());
}

#[test]
fn mmap_is_top_down_and_published() {
    let (mut mm, p) = setup(64 * MB);
    p.take_published();
    let a = anon(&mut mm, &p, 0, 3 * PAGE_SIZE, ANON).unwrap();
    assert_eq!(a, USER_MMAP_TOP - 3 * PAGE_SIZE);
    let b = anon(&mut mm, &p, 0, PAGE_SIZE, ANON).unwrap();
    assert_eq!(b, a - PAGE_SIZE);
    let pubs = p.take_published();
    assert_eq!(pubs.len(), 2);
    assert_eq!(
        (pubs[0].kind, pubs[0].va, pubs[0].len),
        (KIND_MAP, a, 3 * PAGE_SIZE)
    );
    assert_eq!(pubs[0].gpa, mm.translate(a).unwrap());
    // Adjacent anonymous VMAs with equal protection merge.
    assert_eq!(mm.vmas().count(), 1);
}

#[test]
fn mmap_honours_a_free_hint_and_ignores_a_taken_one() {
    let (mut mm, p) = setup(64 * MB);
    let hint = 0x7_0000_0000_u64;
    assert_eq!(anon(&mut mm, &p, hint + 123, PAGE_SIZE, ANON), Ok(hint));
    let again = anon(&mut mm, &p, hint, PAGE_SIZE, ANON).unwrap();
    assert_ne!(again, hint);
    assert!((USER_START..USER_MMAP_TOP).contains(&again));
}

#[test]
fn map_fixed_replaces_and_noreplace_refuses() {
    let (mut mm, p) = setup(64 * MB);
    let a = anon(&mut mm, &p, 0, 4 * PAGE_SIZE, ANON).unwrap();
    p.poke(a, b"old");
    p.poke(a + 3 * PAGE_SIZE, b"keep");
    assert_eq!(
        anon(
            &mut mm,
            &p,
            a + PAGE_SIZE,
            PAGE_SIZE,
            ANON | MAP_FIXED_NOREPLACE
        ),
        Err(Errno::EEXIST)
    );
    // Replace the first two pages: their contents are new and zero.
    assert_eq!(anon(&mut mm, &p, a, 2 * PAGE_SIZE, ANON | MAP_FIXED), Ok(a));
    assert_eq!(p.peek(a, 3), [0, 0, 0]);
    assert_eq!(p.peek(a + 3 * PAGE_SIZE, 4), b"keep");
    assert_eq!(
        anon(&mut mm, &p, a + 1, PAGE_SIZE, ANON | MAP_FIXED),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        anon(&mut mm, &p, 0x1000, PAGE_SIZE, ANON | MAP_FIXED),
        Err(Errno::EPERM)
    );
    assert_eq!(
        anon(
            &mut mm,
            &p,
            USER_END - PAGE_SIZE,
            2 * PAGE_SIZE,
            ANON | MAP_FIXED
        ),
        Err(Errno::ENOMEM)
    );
}

#[test]
fn mmap_argument_errors_match_linux() {
    let (mut mm, p) = setup(64 * MB);
    assert_eq!(anon(&mut mm, &p, 0, 0, ANON), Err(Errno::EINVAL));
    assert_eq!(
        anon(&mut mm, &p, 0, PAGE_SIZE, MAP_ANONYMOUS),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        anon(&mut mm, &p, 0, PAGE_SIZE, MAP_ANONYMOUS | 0x4),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        mm.mmap(&p, 0, PAGE_SIZE, RW, ANON, 0, 1),
        Err(Errno::EINVAL)
    );
    assert_eq!(anon(&mut mm, &p, 0, u64::MAX, ANON), Err(Errno::ENOMEM));
    assert_eq!(
        anon(
            &mut mm,
            &p,
            0,
            PAGE_SIZE,
            MAP_SHARED_VALIDATE | MAP_ANONYMOUS | 1 << 22
        ),
        Err(Errno::EOPNOTSUPP)
    );
    assert!(anon(&mut mm, &p, 0, PAGE_SIZE, MAP_SHARED | MAP_ANONYMOUS).is_ok());
}

#[test]
fn exhausted_pool_is_enomem() {
    let (mut mm, p) = setup(8 * MB);
    assert_eq!(anon(&mut mm, &p, 0, 64 * MB, ANON), Err(Errno::ENOMEM));
    // Nothing leaked: a fitting request still works.
    assert!(anon(&mut mm, &p, 0, 4 * MB, ANON).is_ok());
    assert!(mm.vmas().count() == 1);
}

#[test]
fn large_anonymous_maps_are_two_mib_aligned_and_use_large_frames() {
    let (mut mm, p) = setup(64 * MB);
    anon(&mut mm, &p, 0, PAGE_SIZE, ANON).unwrap(); // disturb the alignment
    p.take_calls();
    let a = anon(&mut mm, &p, 0, 5 * MB, ANON).unwrap();
    assert_eq!(a % LARGE_PAGE_SIZE, 0);
    let maps: Vec<KCall> = p
        .take_calls()
        .into_iter()
        .filter(|c| matches!(c, KCall::Map { .. }))
        .collect();
    // 4 MiB of chunks in one call, the 1 MiB tail in 4 KiB frames.
    let KCall::Map { va, gpa, len, .. } = maps[0] else {
        unreachable!()
    };
    assert_eq!((va, len), (a, 4 * MB));
    assert_eq!(gpa % LARGE_PAGE_SIZE, 0);
    assert_eq!(maps.len(), 2);
}

fn map_calls(p: &FakePlatform) -> Vec<(u64, u64, u64, u64)> {
    p.take_calls()
        .into_iter()
        .filter_map(|c| match c {
            KCall::Map { va, gpa, len, prot } => Some((va, gpa, len, prot)),
            _ => None,
        })
        .collect()
}

#[test]
fn page_size_4k_maps_with_small_pages_only() {
    let (mut mm, p) = setup(64 * MB);
    mm.set_page_size(PAGE_SIZE);
    p.take_calls();
    let a = anon(&mut mm, &p, 0, 6 * MB, ANON).unwrap();
    let maps = map_calls(&p);
    assert!(!maps.is_empty());
    assert!(maps.iter().all(|m| m.3 & MAP_PAGES_4K != 0), "{maps:x?}");
    assert_eq!(p.page_sizes(a, 6 * MB), [6 * MB, 0, 0]);
    assert_eq!(mm.page_sizes(&p, a, 6 * MB), [6 * MB, 0, 0]);
}

#[test]
fn page_size_2m_is_the_default_and_maps_large_pages() {
    let (mut mm, p) = setup(64 * MB);
    assert_eq!(mm.page_size(), LARGE_PAGE_SIZE);
    let a = anon(&mut mm, &p, 0, 6 * MB, ANON).unwrap();
    assert_eq!(p.page_sizes(a, 6 * MB), [0, 6 * MB, 0]);
    assert!(map_calls(&p)
        .iter()
        .all(|m| m.3 & (MAP_PAGES_4K | MAP_PAGES_1G) == 0));
}

#[test]
fn page_size_1g_places_and_backs_a_gigabyte_with_one_huge_page() {
    const GB: u64 = 1 << 30;
    let p = FakePlatform::new();
    // The pool spans [16M, 16M + 2G + 64M): one aligned gigabyte, [1G, 2G).
    let mut mm = AddressSpace::new(FramePool::new(16 * MB, 16 * MB + 2 * GB + 64 * MB));
    mm.init(&p).unwrap();
    mm.set_page_size(HUGE_PAGE_SIZE);
    anon(&mut mm, &p, 0, PAGE_SIZE, ANON).unwrap(); // disturb the alignment
    p.take_calls();
    let a = anon(&mut mm, &p, 0, GB + 4 * MB, ANON).unwrap();
    assert_eq!(a % GB, 0, "placed 1 GiB aligned");
    let maps = map_calls(&p);
    assert_eq!(maps[0].0, a);
    assert_eq!(
        (maps[0].1, maps[0].2),
        (GB, GB),
        "one aligned gigabyte of frames"
    );
    assert!(maps[0].3 & MAP_PAGES_1G != 0);
    assert_eq!(p.page_sizes(a, GB + 4 * MB), [0, 4 * MB, GB]);
    assert!(p.st.borrow().logs.is_empty());
    // No aligned gigabyte is left: 2 MiB pages, said once.
    let c = anon(&mut mm, &p, 0, GB, ANON).unwrap();
    assert_eq!(c % GB, 0);
    assert_eq!(p.page_sizes(c, GB), [0, GB, 0]);
    let logs = p.st.borrow().logs.clone();
    assert_eq!(logs.len(), 1, "{logs:?}");
    assert!(logs[0].contains("--page-size 1g"), "{logs:?}");
    assert_eq!(anon(&mut mm, &p, 0, GB, ANON), Err(Errno::ENOMEM));
    mm.assert_invariants();
}

#[test]
fn out_of_memory_is_enomem_with_one_message_naming_mem() {
    let (mut mm, p) = setup(16 * MB);
    assert_eq!(anon(&mut mm, &p, 0, 64 * MB, ANON), Err(Errno::ENOMEM));
    assert_eq!(anon(&mut mm, &p, 0, 32 * MB, ANON), Err(Errno::ENOMEM));
    let logs = p.st.borrow().logs.clone();
    assert_eq!(logs.len(), 1, "{logs:?}");
    assert!(
        logs[0].contains("--mem") && logs[0].contains("64 MiB"),
        "{logs:?}"
    );
    // Nothing was taken: what fits still maps.
    assert!(anon(&mut mm, &p, 0, 8 * MB, ANON).is_ok());
    mm.assert_invariants();
}

#[test]
fn populate_noreserve_and_stack_flags_map_memory_at_once() {
    let (mut mm, p) = setup(64 * MB);
    for f in [MAP_POPULATE, MAP_NORESERVE, MAP_STACK, MAP_LOCKED] {
        let a = anon(&mut mm, &p, 0, 3 * PAGE_SIZE, ANON | f).unwrap();
        for i in 0..3 {
            assert!(p.mapping(a + i * PAGE_SIZE).is_some(), "flag {f:#x}");
        }
    }
}

#[test]
fn growsdown_mapping_grows_on_a_fault_just_below_it() {
    let (mut mm, p) = setup(64 * MB);
    let a = anon(&mut mm, &p, 0, 4 * PAGE_SIZE, ANON | MAP_GROWSDOWN).unwrap();
    assert!(mm.vma_at(a).unwrap().1.growsdown);
    // A fault two pages below: the VMA grows down to that page, backed.
    assert_eq!(mm.page_fault(&p, a - 2 * PAGE_SIZE + 8, 0), Fault::Retry);
    let (s, v) = mm.vma_at(a).unwrap();
    assert_eq!((s, v.end), (a - 2 * PAGE_SIZE, a + 4 * PAGE_SIZE));
    assert!(v.growsdown);
    assert!(p.mapping(a - 2 * PAGE_SIZE).is_some());
    // Not beyond the stack limit, nor for an ordinary mapping.
    assert_eq!(mm.page_fault(&p, a - 9 * MB, 0), Fault::Default);
    let b = anon(&mut mm, &p, 0, PAGE_SIZE, ANON).unwrap();
    assert_eq!(mm.page_fault(&p, b - PAGE_SIZE, 0), Fault::Default);
    // Not into the guard gap above another mapping.
    let c = anon(&mut mm, &p, 0, PAGE_SIZE, ANON).unwrap();
    let d = mm
        .mmap(
            &p,
            c + 2 * PAGE_SIZE,
            PAGE_SIZE,
            RW,
            ANON | MAP_GROWSDOWN | MAP_FIXED,
            u64::MAX,
            0,
        )
        .unwrap();
    assert_eq!(mm.page_fault(&p, d - PAGE_SIZE, PF_FETCH), Fault::Default);
    // mprotect with PROT_GROWSDOWN reaches the start of a growsdown VMA.
    assert_eq!(
        mm.mprotect(&p, a, PAGE_SIZE, PROT_READ | PROT_GROWSDOWN),
        Ok(())
    );
    assert_eq!(mm.vma_at(a - 2 * PAGE_SIZE).unwrap().1.prot, PROT_READ);
    mm.assert_invariants();
}

#[test]
fn mremap_dontunmap_moves_the_pages_and_leaves_zero_memory_behind() {
    let (mut mm, p) = setup(64 * MB);
    let a = anon(&mut mm, &p, 0, 4 * PAGE_SIZE, ANON).unwrap();
    p.poke(a + PAGE_SIZE, b"moved");
    let dontunmap = MREMAP_MAYMOVE | MREMAP_DONTUNMAP;
    let to = mm
        .mremap(&p, a, 4 * PAGE_SIZE, 4 * PAGE_SIZE, dontunmap, 0)
        .unwrap();
    assert_ne!(to, a);
    assert_eq!(p.peek(to + PAGE_SIZE, 5), b"moved");
    assert_eq!(p.peek(a + PAGE_SIZE, 5), [0; 5], "the old range reads zero");
    assert_eq!(mm.vma_at(a).unwrap().1.prot, RW);
    // To a fixed place; a changed length or a missing MAYMOVE is EINVAL.
    let b = anon(&mut mm, &p, 0, 64 * PAGE_SIZE, ANON).unwrap();
    assert_eq!(
        mm.mremap(
            &p,
            to,
            4 * PAGE_SIZE,
            4 * PAGE_SIZE,
            dontunmap | MREMAP_FIXED,
            b
        ),
        Ok(b)
    );
    assert_eq!(p.peek(b + PAGE_SIZE, 5), b"moved");
    assert_eq!(
        mm.mremap(&p, b, 4 * PAGE_SIZE, 8 * PAGE_SIZE, dontunmap, 0),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        mm.mremap(&p, b, 4 * PAGE_SIZE, 4 * PAGE_SIZE, MREMAP_DONTUNMAP, 0),
        Err(Errno::EINVAL)
    );
    mm.assert_invariants();
    p.assert_mirror_matches();
}

#[test]
fn labels_follow_their_mapping_through_munmap_and_mremap() {
    let (mut mm, p) = setup(64 * MB);
    let a = anon(&mut mm, &p, 0, 8 * PAGE_SIZE, ANON).unwrap();
    mm.label(a, a + 8 * PAGE_SIZE, b"/lib/x.so");
    mm.munmap(&p, a + 2 * PAGE_SIZE, PAGE_SIZE).unwrap();
    assert_eq!(mm.label_at(a), Some(&b"/lib/x.so"[..]));
    assert_eq!(mm.label_at(a + 2 * PAGE_SIZE), None);
    assert_eq!(mm.label_at(a + 3 * PAGE_SIZE), Some(&b"/lib/x.so"[..]));
    // Moving the tail takes its name along.
    let to = mm
        .mremap(
            &p,
            a + 4 * PAGE_SIZE,
            4 * PAGE_SIZE,
            16 * PAGE_SIZE,
            MREMAP_MAYMOVE | MREMAP_FIXED,
            a - 64 * PAGE_SIZE,
        )
        .unwrap();
    assert_eq!(to, a - 64 * PAGE_SIZE);
    assert_eq!(mm.label_at(a + 4 * PAGE_SIZE), None);
    assert_eq!(mm.label_at(to + PAGE_SIZE), Some(&b"/lib/x.so"[..]));
    assert_eq!(
        mm.label_at(to + 4 * PAGE_SIZE),
        None,
        "the grown part is new"
    );
    mm.assert_invariants();
    // Mapping over it removes the name.
    anon(&mut mm, &p, a, PAGE_SIZE, ANON | MAP_FIXED).unwrap();
    assert_eq!(mm.label_at(a), None);
    mm.assert_invariants();
}

#[test]
fn munmap_in_the_middle_splits_the_vma_and_frees_frames() {
    let (mut mm, p) = setup(64 * MB);
    let a = anon(&mut mm, &p, 0, 6 * PAGE_SIZE, ANON).unwrap();
    let before = mm.frames().available();
    p.take_published();
    mm.munmap(&p, a + 2 * PAGE_SIZE, 2 * PAGE_SIZE).unwrap();
    let v: Vec<(u64, u64)> = mm.vmas().map(|(s, v)| (s, v.end)).collect();
    assert_eq!(
        v,
        [
            (a, a + 2 * PAGE_SIZE),
            (a + 4 * PAGE_SIZE, a + 6 * PAGE_SIZE)
        ]
    );
    assert_eq!(mm.frames().available(), before + 2 * PAGE_SIZE);
    assert!(p.mapping(a + 2 * PAGE_SIZE).is_none());
    assert!(p.mapping(a + PAGE_SIZE).is_some() && p.mapping(a + 4 * PAGE_SIZE).is_some());
    let pubs = p.take_published();
    assert_eq!(pubs.len(), 1);
    assert_eq!(
        (pubs[0].kind, pubs[0].va, pubs[0].len),
        (KIND_UNMAP, a + 2 * PAGE_SIZE, 2 * PAGE_SIZE)
    );
    // Holes are fine; bad arguments are not.
    assert_eq!(mm.munmap(&p, a, 8 * PAGE_SIZE), Ok(()));
    assert_eq!(mm.vmas().count(), 0);
    assert_eq!(mm.munmap(&p, a + 1, PAGE_SIZE), Err(Errno::EINVAL));
    assert_eq!(mm.munmap(&p, a, 0), Err(Errno::EINVAL));
}

#[test]
fn reused_frames_come_back_zeroed() {
    let (mut mm, p) = setup(64 * MB);
    let a = anon(&mut mm, &p, 0, PAGE_SIZE, ANON).unwrap();
    p.poke(a, b"secret");
    let gpa = mm.translate(a).unwrap();
    mm.munmap(&p, a, PAGE_SIZE).unwrap();
    let b = anon(&mut mm, &p, 0, PAGE_SIZE, ANON).unwrap();
    assert_eq!(mm.translate(b), Some(gpa), "the freed frame is reused");
    assert_eq!(p.peek(b, 6), [0; 6]);
}

#[test]
fn mprotect_changes_protection_and_refuses_holes() {
    let (mut mm, p) = setup(64 * MB);
    let a = anon(&mut mm, &p, 0, 4 * PAGE_SIZE, ANON).unwrap();
    mm.mprotect(&p, a + PAGE_SIZE, PAGE_SIZE, PROT_READ)
        .unwrap();
    assert_eq!(p.mapping(a + PAGE_SIZE).unwrap().1, PROT_READ);
    assert_eq!(p.mapping(a).unwrap().1, RW);
    assert_eq!(mm.vmas().count(), 3);
    mm.munmap(&p, a + 2 * PAGE_SIZE, PAGE_SIZE).unwrap();
    assert_eq!(
        mm.mprotect(&p, a, 4 * PAGE_SIZE, PROT_READ),
        Err(Errno::ENOMEM)
    );
    assert_eq!(p.mapping(a).unwrap().1, RW, "nothing changed");
    assert_eq!(
        mm.mprotect(&p, a + 1, PAGE_SIZE, PROT_READ),
        Err(Errno::EINVAL)
    );
    assert_eq!(mm.mprotect(&p, a, PAGE_SIZE, 0x10), Err(Errno::EINVAL));
    // Back to RW merges the pieces again.
    mm.mprotect(&p, a, 2 * PAGE_SIZE, RW).unwrap();
    assert_eq!(mm.vmas().count(), 2);
}

/// Regression (issue 15): the map log carried no protection, so the proxy's
/// mirror let forwarded calls write into read-only memory. Every protection
/// other than read-write is published after the mapping, and every mprotect.
#[test]
fn protections_are_published_for_the_mirror() {
    let (mut mm, p) = setup(64 * MB);
    p.take_published();
    let a = mm
        .mmap(&p, 0, 2 * PAGE_SIZE, PROT_READ, ANON, u64::MAX, 0)
        .unwrap();
    let pubs = p.take_published();
    let kinds: Vec<(u64, u64, u64)> = pubs.iter().map(|c| (c.kind, c.va, c.len)).collect();
    assert_eq!(
        kinds,
        [
            (KIND_MAP, a, 2 * PAGE_SIZE),
            (KIND_PROTECT, a, 2 * PAGE_SIZE)
        ]
    );
    assert_eq!(pubs[1].gpa, PROT_READ, "the protection, in the gpa field");
    mm.mprotect(&p, a + PAGE_SIZE, PAGE_SIZE, RW).unwrap();
    let pubs = p.take_published();
    assert_eq!(pubs.len(), 1);
    assert_eq!(
        (pubs[0].kind, pubs[0].va, pubs[0].len, pubs[0].gpa),
        (KIND_PROTECT, a + PAGE_SIZE, PAGE_SIZE, RW)
    );
    // A read-write mapping needs no second entry.
    anon(&mut mm, &p, 0, PAGE_SIZE, ANON).unwrap();
    assert_eq!(p.take_published().len(), 1);
}

#[test]
fn prot_none_is_a_reservation_until_mprotect() {
    let (mut mm, p) = setup(64 * MB);
    let before = mm.frames().available();
    let a = mm
        .mmap(&p, 0, 1 << 30, PROT_NONE, ANON | MAP_NORESERVE, u64::MAX, 0)
        .unwrap();
    assert_eq!(
        mm.frames().available(),
        before,
        "a reservation takes no frames"
    );
    assert!(p.mapping(a).is_none());
    mm.mprotect(&p, a, 3 * PAGE_SIZE, RW).unwrap();
    assert_eq!(p.mapping(a + 2 * PAGE_SIZE).unwrap().1, RW);
    assert!(p.mapping(a + 3 * PAGE_SIZE).is_none());
    assert_eq!(mm.check_access(a, 3 * PAGE_SIZE, true), Ok(()));
    assert_eq!(mm.check_access(a, 4 * PAGE_SIZE, false), Err(Errno::EFAULT));
    mm.munmap(&p, a, 1 << 30).unwrap();
    assert_eq!(mm.frames().available(), before);
    p.assert_mirror_matches();
}

#[test]
fn madvise_dontneed_zeroes_even_read_only_pages() {
    let (mut mm, p) = setup(64 * MB);
    let a = anon(&mut mm, &p, 0, 2 * PAGE_SIZE, ANON).unwrap();
    p.poke(a, b"data");
    p.poke(a + PAGE_SIZE, b"more");
    mm.mprotect(&p, a + PAGE_SIZE, PAGE_SIZE, PROT_READ)
        .unwrap();
    mm.madvise(&p, a, 2 * PAGE_SIZE, MADV_DONTNEED).unwrap();
    assert_eq!(p.peek(a, 4), [0; 4]);
    assert_eq!(p.peek(a + PAGE_SIZE, 4), [0; 4]);
    assert_eq!(p.mapping(a + PAGE_SIZE).unwrap().1, PROT_READ);
    assert_eq!(mm.madvise(&p, a, PAGE_SIZE, MADV_HUGEPAGE), Ok(()));
    assert_eq!(mm.madvise(&p, a, PAGE_SIZE, 77), Err(Errno::EINVAL));
    assert_eq!(
        mm.madvise(&p, a + 1, PAGE_SIZE, MADV_NORMAL),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        mm.madvise(&p, a, 3 * PAGE_SIZE, MADV_NORMAL),
        Err(Errno::ENOMEM)
    );
    assert_eq!(
        mm.madvise(&p, a, PAGE_SIZE, MADV_REMOVE),
        Err(Errno::EINVAL)
    );
}

#[test]
fn brk_grows_shrinks_and_refuses_collisions() {
    let (mut mm, p) = setup(64 * MB);
    let start = 0x40_1234u64;
    mm.set_brk_start(start);
    let b0 = mm.brk(&p, 0);
    assert_eq!(b0, 0x40_2000);
    assert_eq!(mm.brk(&p, b0 + 5000), b0 + 5000);
    assert!(p.mapping(b0 + PAGE_SIZE).is_some());
    p.poke(b0 + 4999, b"x");
    // Shrink: the second page leaves the heap (it stays backed, as reserve).
    assert_eq!(mm.brk(&p, b0 + 10), b0 + 10);
    assert_eq!(
        mm.check_access(b0 + PAGE_SIZE, 1, false),
        Err(Errno::EFAULT)
    );
    // Grow again: zero memory.
    assert_eq!(mm.brk(&p, b0 + 5000), b0 + 5000);
    assert_eq!(p.peek(b0 + 4999, 1), [0]);
    // Below the start or into another mapping: the old break comes back.
    assert_eq!(mm.brk(&p, start - 1), b0 + 5000);
    anon(&mut mm, &p, b0 + 4 * PAGE_SIZE, PAGE_SIZE, ANON | MAP_FIXED).unwrap();
    assert_eq!(mm.brk(&p, b0 + 8 * PAGE_SIZE), b0 + 5000);
    assert_eq!(mm.current_brk(), b0 + 5000);
    mm.assert_invariants();
    p.assert_mirror_matches();
}

fn maps(calls: &[KCall]) -> Vec<(u64, u64, u64)> {
    calls
        .iter()
        .filter_map(|c| match *c {
            KCall::Map { va, gpa, len, .. } => Some((va, gpa, len)),
            _ => None,
        })
        .collect()
}

#[test]
fn brk_growing_in_small_steps_maps_two_mib_at_a_time() {
    let (mut mm, p) = setup(64 * MB);
    mm.set_brk_start(0x40_1234);
    let b0 = mm.brk(&p, 0);
    p.take_calls();
    p.take_published();
    let step = 132 << 10;
    let steps = 100u64;
    for i in 1..=steps {
        let want = b0 + i * step + 8;
        assert_eq!(
            mm.brk(&p, want),
            want,
            "step {i}: brk returns what was asked"
        );
        assert_eq!(mm.current_brk(), want);
        // The new heap memory is there and zero; the break's page too.
        let old = b0 + (i - 1) * step + 8;
        assert_eq!(p.peek(old, 16), [0; 16]);
        assert_eq!(p.peek(want - 16, 16), [0; 16]);
        p.poke(old, &[0xab; 16]);
        // Backed up to the next 2 MiB boundary beyond the break.
        assert_eq!(mm.heap_end(), align_up(want, LARGE_PAGE_SIZE));
        assert!(p.mapping(mm.heap_end() - PAGE_SIZE).is_some());
        mm.assert_invariants();
    }
    let calls = p.take_calls();
    let m = maps(&calls);
    // 13.2 MiB in 132 KiB steps: the first piece up to 0x60_0000, then one
    // 2 MiB chunk per boundary crossed (each 2 MiB aligned, a large page).
    let crossed = (align_up(b0 + steps * step + 8, LARGE_PAGE_SIZE) - 0x60_0000) / (2 * MB);
    assert_eq!(m.len() as u64, 1 + crossed, "{m:x?}");
    assert!(m.len() * 10 < steps as usize);
    for &(va, gpa, len) in &m[1..] {
        assert_eq!((va % (2 * MB), gpa % (2 * MB), len), (0, 0, 2 * MB));
    }
    assert!(!calls.iter().any(|c| matches!(c, KCall::Unmap { .. })));
    // Every chunk reaches the proxy in a piece it populates at once (≥ 256 KiB).
    let pubs = p.take_published();
    assert!(pubs[1..]
        .iter()
        .all(|c| c.kind == KIND_MAP && c.len == 2 * MB));
    p.assert_mirror_matches();
}

#[test]
fn brk_shrink_keeps_the_backing_and_regrowth_reads_zero() {
    let (mut mm, p) = setup(64 * MB);
    mm.set_brk_start(0x40_0000);
    let b0 = mm.brk(&p, 0);
    assert_eq!(mm.brk(&p, b0 + 300_000), b0 + 300_000);
    p.poke(b0, b"keep");
    p.poke(b0 + 100_000, &[0x11; 64]);
    p.poke(b0 + 299_990, &[0x22; 10]);
    p.take_calls();
    let sb = b0 + 50_000;
    assert_eq!(mm.brk(&p, sb), sb);
    assert_eq!(mm.current_brk(), sb);
    assert_eq!(p.take_calls(), [], "shrinking is no kernel call");
    assert!(
        p.mapping(b0 + 100_000).is_some(),
        "still mapped above the break"
    );
    assert_eq!(mm.heap_end(), 0x60_0000);
    mm.assert_invariants();
    // The break's own page keeps its contents, as on Linux.
    assert_eq!(mm.brk(&p, b0 + 280_000), b0 + 280_000);
    assert_eq!(p.peek(b0, 4), b"keep");
    assert!(maps(&p.take_calls()).is_empty(), "regrowth maps nothing");
    assert_eq!(
        p.peek(b0 + 100_000, 64),
        [0; 64],
        "released pages read zero"
    );
    // Beyond the earlier break the reserve was never dirtied; up to it, zeroed.
    assert_eq!(mm.brk(&p, b0 + 300_000), b0 + 300_000);
    assert_eq!(p.peek(b0 + 299_990, 10), [0; 10]);
    mm.assert_invariants();
    // A shrink by far more than 2 MiB gives the excess back.
    let top = b0 + 20 * MB;
    assert_eq!(mm.brk(&p, top), top);
    let avail = mm.frames().available();
    assert_eq!(mm.brk(&p, b0 + 8), b0 + 8);
    assert_eq!(mm.heap_end(), 0x60_0000 + 2 * MB);
    assert!(mm.frames().available() >= avail + 16 * MB);
    assert_eq!(mm.brk(&p, top), top);
    assert_eq!(p.peek(top - 16, 16), [0; 16]);
    assert_eq!(p.peek(b0 + 3 * MB, 16), [0; 16]);
    mm.assert_invariants();
    p.assert_mirror_matches();
}

#[test]
fn map_fixed_into_the_heap_reserve_replaces_it() {
    let (mut mm, p) = setup(64 * MB);
    mm.set_brk_start(0x40_0000);
    let b0 = mm.brk(&p, 0);
    assert_eq!(mm.brk(&p, b0 + 5000), b0 + 5000);
    assert_eq!(mm.heap_end(), 0x60_0000);
    // For the application the reserve is unmapped: no access, no mprotect.
    let r = 0x50_0000u64;
    assert_eq!(mm.check_access(r, 8, false), Err(Errno::EFAULT));
    assert!(mm.vma_at(r).is_none());
    assert_eq!(mm.mprotect(&p, r, PAGE_SIZE, PROT_READ), Err(Errno::ENOMEM));
    p.poke(r, b"beyond");
    assert_eq!(
        mm.madvise(&p, r, PAGE_SIZE, MADV_DONTNEED),
        Err(Errno::ENOMEM)
    );
    assert!(p.st.borrow().logs.is_empty(), "{:?}", p.st.borrow().logs);
    // A hint there is not taken: mmap never places a mapping in the reserve.
    let h = anon(&mut mm, &p, r, PAGE_SIZE, ANON).unwrap();
    assert!(h >= mm.heap_end() || h + PAGE_SIZE <= b0, "{h:#x}");
    assert_eq!(mm.heap_end(), 0x60_0000);
    // MAP_FIXED replaces it; the reserve ends where the mapping starts.
    p.poke(r, b"reserve");
    assert_eq!(anon(&mut mm, &p, r, PAGE_SIZE, ANON | MAP_FIXED), Ok(r));
    assert_eq!(p.peek(r, 7), [0; 7]);
    assert_eq!(mm.vma_at(r).unwrap().1.kind, VmaKind::Anon);
    assert_eq!(mm.heap_end(), r);
    assert!(
        p.mapping(r + PAGE_SIZE).is_none(),
        "the reserve above is gone"
    );
    mm.assert_invariants();
    // The break grows up to the mapping, not into it.
    assert_eq!(mm.brk(&p, r), r);
    assert_eq!(mm.brk(&p, r + 1), r);
    assert_eq!(mm.brk(&p, b0 + 5000), b0 + 5000);
    // MAP_FIXED_NOREPLACE into the reserve succeeds, as into free space.
    let q = 0x48_0000u64;
    assert_eq!(
        anon(&mut mm, &p, q, 2 * PAGE_SIZE, ANON | MAP_FIXED_NOREPLACE),
        Ok(q)
    );
    assert_eq!(mm.heap_end(), q);
    mm.assert_invariants();
    // A mapping above the break before it grows bounds the over-extension.
    mm.munmap(&p, q, 2 * PAGE_SIZE).unwrap();
    assert_eq!(mm.brk(&p, q + 8), q + 8);
    assert_eq!(mm.heap_end(), r);
    mm.assert_invariants();
    p.assert_mirror_matches();
}

#[test]
fn mremap_shrinks_grows_and_moves_keeping_contents() {
    let (mut mm, p) = setup(64 * MB);
    let a = anon(&mut mm, &p, 0, 2 * PAGE_SIZE, ANON).unwrap();
    p.poke(a, b"hello");
    // Shrink in place.
    assert_eq!(mm.mremap(&p, a, 2 * PAGE_SIZE, PAGE_SIZE, 0, 0), Ok(a));
    assert!(p.mapping(a + PAGE_SIZE).is_none());
    // Grow in place (the pages above are free).
    assert_eq!(mm.mremap(&p, a, PAGE_SIZE, 3 * PAGE_SIZE, 0, 0), Ok(a));
    assert_eq!(p.peek(a, 5), b"hello");
    assert_eq!(p.peek(a + 2 * PAGE_SIZE, 1), [0]);
    let b = anon(&mut mm, &p, 0x5000_0000, PAGE_SIZE, ANON).unwrap();
    p.poke(b, b"move me");
    assert_eq!(mm.mremap(&p, b, PAGE_SIZE, 2 * PAGE_SIZE, 0, 0), Ok(b));
    // Blocked above: only MAYMOVE helps, and the frames travel without a copy.
    anon(&mut mm, &p, b + 2 * PAGE_SIZE, PAGE_SIZE, ANON | MAP_FIXED).unwrap();
    assert_eq!(
        mm.mremap(&p, b, 2 * PAGE_SIZE, 4 * PAGE_SIZE, 0, 0),
        Err(Errno::ENOMEM)
    );
    let gpa = mm.translate(b).unwrap();
    let c = mm
        .mremap(&p, b, 2 * PAGE_SIZE, 4 * PAGE_SIZE, MREMAP_MAYMOVE, 0)
        .unwrap();
    assert_ne!(c, b);
    assert_eq!(mm.translate(c), Some(gpa));
    assert_eq!(p.peek(c, 7), b"move me");
    assert_eq!(p.peek(c + 3 * PAGE_SIZE, 1), [0]);
    assert!(p.mapping(b).is_none());
    // MREMAP_FIXED.
    let d = 0x6000_0000u64;
    assert_eq!(
        mm.mremap(
            &p,
            c,
            4 * PAGE_SIZE,
            4 * PAGE_SIZE,
            MREMAP_MAYMOVE | MREMAP_FIXED,
            d
        ),
        Ok(d)
    );
    assert_eq!(p.peek(d, 7), b"move me");
    assert_eq!(
        mm.mremap(&p, d, PAGE_SIZE, PAGE_SIZE, MREMAP_FIXED, c),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        mm.mremap(&p, 0x7000_0000, PAGE_SIZE, PAGE_SIZE, 0, 0),
        Err(Errno::EFAULT)
    );
    p.assert_mirror_matches();
}

impl AddressSpace {
    /// Check the structure's invariants (tests).
    fn assert_invariants(&self) {
        let (pool_start, pool_end) = self.frames.range();
        let backed: u64 = self
            .backing
            .values()
            .filter(|b| !is_passthrough(b.gpa, b.len))
            .map(|b| b.len)
            .sum();
        let quarantined = self.quarantine.len() as u64 * LARGE_PAGE_SIZE;
        assert_eq!(
            self.frames.available() + backed + self.tables_given + quarantined,
            pool_end - pool_start,
            "every frame is free, backing memory, a page table, or quarantined"
        );
        let mut prev_end = 0;
        for (&s, v) in &self.vmas {
            assert!(s >= prev_end && s < v.end, "VMAs ordered and disjoint");
            prev_end = v.end;
        }
        let mut prev_end = 0;
        for (&va, b) in &self.backing {
            if self.frames.whole_chunks_only(b.gpa) {
                let whole = |x: u64| x.is_multiple_of(LARGE_PAGE_SIZE);
                assert!(
                    whole(va) && whole(b.gpa) && whole(b.len),
                    "whole-only memory is backing whole 2 MiB pages: {va:#x} {b:?}"
                );
            }
            assert!(va >= prev_end, "backing disjoint");
            prev_end = va + b.len;
            let mut at = va;
            while at < va + b.len {
                let (_, v) = self.vma_containing(at).expect("backing lies inside VMAs");
                at = v.end;
            }
        }
        for (&s, l) in &self.labels {
            assert!(s < l.end, "labels are not empty");
            assert!(
                self.vma_containing(s).is_some(),
                "a label at {s:#x} outlived its mapping"
            );
        }
        let mut shared: BTreeMap<u64, u64> = BTreeMap::new();
        for (&s, v) in &self.vmas {
            if let VmaKind::Passthrough { gpa, .. } = v.kind {
                *shared.entry(gpa).or_insert(0) += v.end - s;
            }
        }
        assert_eq!(
            shared, self.shared,
            "objects count the bytes mapped from them"
        );
        for (gpa, a) in &self.sysv {
            assert!(
                self.shared.contains_key(gpa),
                "a detached attachment: {a:?}"
            );
            for (&s, v) in self.vmas.range(..a.va + a.len) {
                if matches!(v.kind, VmaKind::Passthrough { gpa: g, .. } if g == *gpa) {
                    assert!(s >= a.va && v.end <= a.va + a.len, "pieces stay in place");
                }
            }
        }
        let reserves: Vec<(u64, Vma)> = self
            .vmas
            .iter()
            .filter(|(_, v)| v.kind == VmaKind::HeapReserve)
            .map(|(&s, &v)| (s, v))
            .collect();
        assert!(reserves.len() <= 1, "one heap reserve: {reserves:x?}");
        if let Some(&(s, v)) = reserves.first() {
            assert_eq!(
                s,
                align_up(self.brk, PAGE_SIZE),
                "reserve starts at the break"
            );
            assert_eq!(v.prot, PROT_READ | PROT_WRITE);
            assert_eq!(v.end, self.heap_end());
        }
        for (&s, v) in &self.vmas {
            if v.prot != PROT_NONE && !matches!(v.kind, VmaKind::Passthrough { .. }) {
                let covered: u64 = self.backed_in(s, v.end).iter().map(|x| x.1).sum();
                assert_eq!(covered, v.end - s, "accessible VMA {s:#x} fully backed");
            }
        }
    }
}
