//! Tests of shared and private file mappings and System V shm attachments.

use super::*;
use syscalls::Sysno;

#[test]
fn private_file_mapping_is_filled_by_forwarded_reads() {
    let (mut mm, p) = setup(64 * MB);
    let mut file = vec![0u8; 3 * PAGE_SIZE as usize + 100];
    file[PAGE_SIZE as usize..PAGE_SIZE as usize + 5].copy_from_slice(b"page1");
    *file.last_mut().unwrap() = 0x7f;
    p.add_file(5, file);
    let a = mm
        .mmap(&p, 0, 3 * PAGE_SIZE, PROT_READ, MAP_PRIVATE, 5, PAGE_SIZE)
        .unwrap();
    assert_eq!(p.peek(a, 5), b"page1");
    assert_eq!(
        p.peek(a + 2 * PAGE_SIZE + 99, 2),
        [0x7f, 0],
        "past EOF is zero"
    );
    assert_eq!(p.mapping(a).unwrap().1, PROT_READ);
    assert_eq!(mm.vma_at(a).unwrap().1.kind, VmaKind::File);
    // A bad fd fails like Linux and leaves nothing behind.
    assert_eq!(
        mm.mmap(&p, 0, PAGE_SIZE, PROT_READ, MAP_PRIVATE, 9, 0),
        Err(Errno::EBADF)
    );
    assert_eq!(mm.vmas().count(), 1);
    // An fd the proxy cannot map shared gets Linux's answer, nothing is left.
    assert_eq!(
        mm.mmap(&p, 0, PAGE_SIZE, PROT_READ, MAP_SHARED, 5, 0),
        Err(Errno::ENODEV)
    );
    assert_eq!(mm.vmas().count(), 1);
}

fn is_window(gpa: u64) -> bool {
    is_passthrough(gpa, PAGE_SIZE)
}

#[test]
fn shared_file_mapping_maps_pages_before_eof_and_faults_sigbus_beyond() {
    let (mut mm, p) = setup(64 * MB);
    let before = mm.frames().available();
    // 100 bytes of file, four pages mapped: one page is backed.
    p.add_shareable(7, 100, true);
    let rw = PROT_READ | PROT_WRITE;
    let a = mm.mmap(&p, 0, 4 * PAGE_SIZE, rw, MAP_SHARED, 7, 0).unwrap();
    let (gpa, prot) = p.mapping(a).unwrap();
    assert!(
        is_window(gpa),
        "pass-through memory, not the pool: {gpa:#x}"
    );
    assert_eq!(prot, rw);
    assert_eq!(p.mapping(a + PAGE_SIZE), None, "beyond EOF stays unmapped");
    assert_eq!(mm.frames().available(), before, "no pool frames used");
    assert_eq!(
        mm.page_fault(&p, a + PAGE_SIZE + 8, 0),
        Fault::Signal(signal::SIGBUS)
    );
    assert_eq!(
        mm.page_fault(&p, a + 8, PF_FETCH),
        Fault::Default,
        "a backed page faults as SIGSEGV"
    );
    // The file grows to three pages: the second page is mapped on its fault.
    p.add_shareable(7, 2 * PAGE_SIZE + 1, true);
    assert_eq!(mm.page_fault(&p, a + PAGE_SIZE + 8, 0), Fault::Retry);
    assert_eq!(p.mapping(a + PAGE_SIZE).unwrap(), (gpa + PAGE_SIZE, rw));
    assert_eq!(
        mm.page_fault(&p, a + PAGE_SIZE, PF_FETCH),
        Fault::Default,
        "mapped now"
    );
    assert_eq!(
        mm.page_fault(&p, a + 3 * PAGE_SIZE, 0),
        Fault::Signal(signal::SIGBUS)
    );
    p.add_shareable(7, 100, true);
    assert_eq!(
        mm.page_fault(&p, a + PAGE_SIZE + 8, 0),
        Fault::Signal(signal::SIGBUS),
        "the file shrank under a mapped page"
    );
    assert!(matches!(
        mm.vma_at(a).unwrap().1.kind,
        VmaKind::Passthrough {
            may_write: true,
            ..
        }
    ));
    p.assert_mirror_matches();
    mm.assert_invariants();

    // mprotect does not back the pages beyond EOF with pool memory.
    mm.mprotect(&p, a, 4 * PAGE_SIZE, PROT_NONE).unwrap();
    mm.mprotect(&p, a, 4 * PAGE_SIZE, PROT_READ).unwrap();
    assert_eq!(p.mapping(a).unwrap(), (gpa, PROT_READ));
    assert_eq!(p.mapping(a + PAGE_SIZE).unwrap().1, PROT_READ);
    assert_eq!(p.mapping(a + 2 * PAGE_SIZE), None);
    assert_eq!(mm.frames().available(), before);

    // Growing or moving it is refused; shrinking works.
    assert_eq!(
        mm.mremap(&p, a, 4 * PAGE_SIZE, 8 * PAGE_SIZE, MREMAP_MAYMOVE, 0),
        Err(Errno::EINVAL)
    );
    assert_eq!(mm.mremap(&p, a, 4 * PAGE_SIZE, 3 * PAGE_SIZE, 0, 0), Ok(a));

    // munmap of the pages beyond EOF keeps the object; of the last page, drops it.
    p.take_published();
    mm.munmap(&p, a + PAGE_SIZE, 2 * PAGE_SIZE).unwrap();
    assert_eq!(p.st.borrow().shared.len(), 1, "still mapped at {a:#x}");
    assert!(
        p.take_published()
            .iter()
            .any(|c| c.kind == KIND_UNMAP && c.va == a + PAGE_SIZE && c.len == 2 * PAGE_SIZE),
        "the proxy unmaps unbacked pages too"
    );
    mm.munmap(&p, a, PAGE_SIZE).unwrap();
    assert!(p.st.borrow().shared.is_empty(), "object released");
    assert_eq!(
        mm.frames().available(),
        before,
        "no pool frame freed either"
    );
    mm.assert_invariants();
}

#[test]
fn read_only_shared_file_cannot_become_writable() {
    let (mut mm, p) = setup(64 * MB);
    p.add_shareable(3, 2 * PAGE_SIZE, false);
    assert_eq!(
        mm.mmap(&p, 0, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, 3, 0),
        Err(Errno::EACCES)
    );
    let a = mm
        .mmap(&p, 0, 2 * PAGE_SIZE, PROT_READ, MAP_SHARED, 3, 0)
        .unwrap();
    assert_eq!(
        mm.mprotect(&p, a, PAGE_SIZE, PROT_READ | PROT_WRITE),
        Err(Errno::EACCES)
    );
    assert_eq!(p.mapping(a + PAGE_SIZE).unwrap().1, PROT_READ);
    // A write fault on it is an ordinary SIGSEGV.
    assert_eq!(mm.page_fault(&p, a, PF_WRITE), Fault::Default);
    // MAP_FIXED over it replaces it and releases the object.
    mm.mmap(
        &p,
        a,
        2 * PAGE_SIZE,
        PROT_READ,
        MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
        u64::MAX,
        0,
    )
    .unwrap();
    assert!(p.st.borrow().shared.is_empty());
    assert_eq!(mm.vma_at(a).unwrap().1.kind, VmaKind::Anon);
    p.assert_mirror_matches();
    mm.assert_invariants();
}

#[test]
fn two_mappings_of_one_file_share_an_object_until_both_go() {
    let (mut mm, p) = setup(64 * MB);
    p.add_shareable(4, 4 * MB, true);
    let rw = PROT_READ | PROT_WRITE;
    let a = mm.mmap(&p, 0, 4 * MB, rw, MAP_SHARED, 4, 0).unwrap();
    let b = mm.mmap(&p, 0, 2 * MB, rw, MAP_SHARED, 4, 0).unwrap();
    assert!(a.is_multiple_of(2 * MB) && b.is_multiple_of(2 * MB));
    assert_eq!(
        p.mapping(a).unwrap().0,
        p.mapping(b).unwrap().0,
        "one object"
    );
    assert_eq!(p.st.borrow().shared.len(), 1);
    mm.munmap(&p, a, 4 * MB).unwrap();
    assert_eq!(p.st.borrow().shared.len(), 1, "still used at {b:#x}");
    mm.munmap(&p, b, 2 * MB).unwrap();
    assert!(p.st.borrow().shared.is_empty());
    mm.assert_invariants();
}

#[test]
fn a_sysv_attachment_is_mapped_whole_named_and_detached_by_its_start() {
    use crate::uapi::shm::*;
    let (mut mm, p) = setup(64 * MB);
    let rw = PROT_READ | PROT_WRITE;
    p.add_segment(7, 3 * PAGE_SIZE + 100, true);
    // Anywhere: the whole page-rounded segment, read-write, named by its key.
    let a = mm.shmat(&p, 7, 0, 0, 3 * PAGE_SIZE + 100, 0x1234).unwrap();
    let (_, v) = mm.vma_at(a).unwrap();
    assert_eq!((v.end - a, v.prot, v.shared), (4 * PAGE_SIZE, rw, true));
    assert!(p.mapping(a + 3 * PAGE_SIZE).is_some(), "the last page too");
    assert_eq!(mm.label_at(a), Some(&b"/SYSV00001234 (deleted)"[..]));
    // Read-only and executable attachments of the same segment.
    let r = mm
        .shmat(&p, 7, 0, SHM_RDONLY, 3 * PAGE_SIZE + 100, 0x1234)
        .unwrap();
    assert_eq!(p.mapping(r).unwrap().1, PROT_READ);
    assert_eq!(
        mm.mprotect(&p, r, PAGE_SIZE, rw),
        Err(Errno::EACCES),
        "SHM_RDONLY never becomes writable"
    );
    assert_eq!(mm.page_fault(&p, r, PF_WRITE), Fault::Default, "SIGSEGV");
    let x = mm.shmat(&p, 7, 0, SHM_EXEC, 4 * PAGE_SIZE, 0x1234).unwrap();
    assert_eq!(mm.vma_at(x).unwrap().1.prot, rw | PROT_EXEC);
    assert_eq!(mm.sysv_runs(7), 3);
    mm.assert_invariants();

    // A fixed address over a mapping: EINVAL, unless SHM_REMAP replaces it.
    let d = mm
        .mmap(
            &p,
            0,
            4 * PAGE_SIZE,
            rw,
            MAP_PRIVATE | MAP_ANONYMOUS,
            u64::MAX,
            0,
        )
        .unwrap();
    assert_eq!(
        mm.shmat(&p, 7, d, 0, 4 * PAGE_SIZE, 0x1234),
        Err(Errno::EINVAL)
    );
    assert_eq!(mm.vma_at(d).unwrap().1.kind, VmaKind::Anon, "kept");
    assert_eq!(mm.shmat(&p, 7, d, SHM_REMAP, 4 * PAGE_SIZE, 0x1234), Ok(d));
    assert!(matches!(
        mm.vma_at(d).unwrap().1.kind,
        VmaKind::Passthrough { .. }
    ));
    // Attached again at the same address: the old attachment goes.
    let objects = p.st.borrow().shared.len();
    assert_eq!(mm.shmat(&p, 7, d, SHM_REMAP, 4 * PAGE_SIZE, 0x1234), Ok(d));
    assert_eq!(p.st.borrow().shared.len(), objects, "replaced, released");
    // Linux's refusal changes nothing of the free range it was asked for.
    p.add_segment(8, PAGE_SIZE, false);
    assert_eq!(mm.shmat(&p, 8, 0, 0, PAGE_SIZE, 1), Err(Errno::EACCES));
    assert_eq!(mm.shmat(&p, 9, 0, 0, PAGE_SIZE, 1), Err(Errno::EINVAL));
    assert!(
        p.st.borrow().logs.iter().any(|l| l.contains("SHM_HUGETLB")),
        "an EINVAL for a segment that exists is explained once"
    );
    mm.assert_invariants();

    // munmap of a middle page: two pieces, both detached by one shmdt.
    mm.munmap(&p, a + PAGE_SIZE, PAGE_SIZE).unwrap();
    assert_eq!(mm.sysv_runs(7), 5, "a in two pieces, r, x, d");
    assert_eq!(mm.shmdt(&p, a + PAGE_SIZE), Err(Errno::EINVAL));
    assert_eq!(mm.shmdt(&p, a + 1), Err(Errno::EINVAL));
    // mprotect splits VMAs, not the proxy's attachment.
    mm.mprotect(&p, d, PAGE_SIZE, PROT_READ).unwrap();
    assert_eq!(mm.sysv_runs(7), 5);
    mm.shmdt(&p, a).unwrap();
    assert!(mm.vma_at(a).is_none() && mm.vma_at(a + 2 * PAGE_SIZE).is_none());
    assert_eq!(mm.shmdt(&p, a), Err(Errno::EINVAL), "already detached");
    mm.shmdt(&p, d).unwrap();
    assert!(mm.vma_at(d).is_none() && mm.vma_at(d + 3 * PAGE_SIZE).is_none());
    // shmdt names attachments only: a shared file mapping is not one.
    p.add_shareable(3, PAGE_SIZE, true);
    let f = mm.mmap(&p, 0, PAGE_SIZE, rw, MAP_SHARED, 3, 0).unwrap();
    assert_eq!(mm.shmdt(&p, f), Err(Errno::EINVAL));
    mm.munmap(&p, f, PAGE_SIZE).unwrap();
    // mremap may shrink an attachment, not move or grow it.
    assert_eq!(
        mm.mremap(&p, x, 4 * PAGE_SIZE, 8 * PAGE_SIZE, MREMAP_MAYMOVE, 0),
        Err(Errno::EINVAL)
    );
    assert_eq!(mm.mremap(&p, x, 4 * PAGE_SIZE, PAGE_SIZE, 0, 0), Ok(x));
    mm.shmdt(&p, x).unwrap();
    mm.shmdt(&p, r).unwrap();
    assert!(p.st.borrow().shared.is_empty(), "every object released");
    assert_eq!(mm.sysv_runs(7), 0);
    p.assert_mirror_matches();
    mm.assert_invariants();
}

/// A file of `pages` pages, each filled with its own number.
fn numbered_file(p: &FakePlatform, fd: u64, pages: u64) {
    let mut file = Vec::new();
    for i in 0..pages {
        file.extend(core::iter::repeat_n(i as u8 + 1, PAGE_SIZE as usize));
    }
    p.add_file(fd, file);
    // fd_path: a name, so the mapping is labelled.
    p.reply(Sysno::readlinkat, 4);
}

/// Reads of file bytes so far (not the syscall layer's 0-byte check of the fd).
fn preads(p: &FakePlatform) -> usize {
    p.st.borrow()
        .forwarded
        .iter()
        .filter(|(n, a)| *n == Sysno::pread64 as u64 && a[2] > 0)
        .count()
}

#[test]
fn segments_mapped_over_a_whole_file_copy_keep_its_frames() {
    // ld.so: the whole library read-only, then each segment over it at the
    // same file offsets.
    let (mut mm, p) = setup(64 * MB);
    numbered_file(&p, 5, 4);
    let a = mm
        .mmap(&p, 0, 4 * PAGE_SIZE, PROT_READ, MAP_PRIVATE, 5, 0)
        .unwrap();
    let copied = preads(&p);
    let gpa = |va| p.mapping(va).unwrap().0;
    let before = [gpa(a + PAGE_SIZE), gpa(a + 3 * PAGE_SIZE)];
    let rx = PROT_READ | PROT_EXEC;
    let fixed = MAP_PRIVATE | MAP_FIXED;
    let t = mm
        .mmap(&p, a + PAGE_SIZE, 2 * PAGE_SIZE, rx, fixed, 5, PAGE_SIZE)
        .unwrap();
    assert_eq!(t, a + PAGE_SIZE);
    let rw = PROT_READ | PROT_WRITE;
    mm.mmap(
        &p,
        a + 3 * PAGE_SIZE,
        PAGE_SIZE,
        rw,
        fixed,
        5,
        3 * PAGE_SIZE,
    )
    .unwrap();
    assert_eq!(preads(&p), copied, "no second read of the same bytes");
    assert_eq!([gpa(a + PAGE_SIZE), gpa(a + 3 * PAGE_SIZE)], before);
    assert_eq!(p.mapping(a + PAGE_SIZE).unwrap().1, rx);
    assert_eq!(p.mapping(a + 3 * PAGE_SIZE).unwrap().1, rw);
    for i in 0..4 {
        assert_eq!(p.peek(a + i * PAGE_SIZE, 1), [i as u8 + 1]);
    }
    let v = mm.vma_at(a + 3 * PAGE_SIZE).unwrap().1;
    assert_eq!((v.kind, v.prot), (VmaKind::File, rw));
    p.assert_mirror_matches();
}

#[test]
fn a_file_copy_that_may_have_changed_is_read_again() {
    let (mut mm, p) = setup(64 * MB);
    numbered_file(&p, 5, 4);
    let fixed = MAP_PRIVATE | MAP_FIXED;
    let a = mm
        .mmap(&p, 0, 4 * PAGE_SIZE, PROT_READ, MAP_PRIVATE, 5, 0)
        .unwrap();
    // Made writable and written, then read-only again: not the file's bytes.
    mm.mprotect(&p, a, PAGE_SIZE, PROT_READ | PROT_WRITE)
        .unwrap();
    p.write_mem(a, &[0xee]);
    mm.mprotect(&p, a, PAGE_SIZE, PROT_READ).unwrap();
    let n = preads(&p);
    mm.mmap(&p, a, PAGE_SIZE, PROT_READ, fixed, 5, 0).unwrap();
    assert_eq!(preads(&p), n + 1, "read again");
    assert_eq!(p.peek(a, 1), [1]);
    // Other offsets than the copy's: read.
    mm.mmap(
        &p,
        a + PAGE_SIZE,
        PAGE_SIZE,
        PROT_READ,
        fixed,
        5,
        2 * PAGE_SIZE,
    )
    .unwrap();
    assert_eq!(preads(&p), n + 2);
    assert_eq!(p.peek(a + PAGE_SIZE, 1), [3]);
    // Another file (or this one changed: another size): read.
    numbered_file(&p, 5, 5);
    mm.mmap(
        &p,
        a + 2 * PAGE_SIZE,
        PAGE_SIZE,
        PROT_READ,
        fixed,
        5,
        2 * PAGE_SIZE,
    )
    .unwrap();
    assert_eq!(preads(&p), n + 3);
    // Executable (patchable code) once: never a copy again.
    let b = mm
        .mmap(
            &p,
            0,
            2 * PAGE_SIZE,
            PROT_READ | PROT_EXEC,
            MAP_PRIVATE,
            5,
            0,
        )
        .unwrap();
    mm.mprotect(&p, b, 2 * PAGE_SIZE, PROT_READ).unwrap();
    let n = preads(&p);
    mm.mmap(&p, b, PAGE_SIZE, PROT_READ, fixed, 5, 0).unwrap();
    assert_eq!(preads(&p), n + 1);
    // Moved by mremap: still the file's bytes, at the new place.
    let c = mm
        .mmap(&p, 0, 2 * PAGE_SIZE, PROT_READ, MAP_PRIVATE, 5, PAGE_SIZE)
        .unwrap();
    let d = mm
        .mremap(
            &p,
            c,
            2 * PAGE_SIZE,
            2 * PAGE_SIZE,
            MREMAP_MAYMOVE | MREMAP_FIXED,
            c + 64 * PAGE_SIZE,
        )
        .unwrap();
    let n = preads(&p);
    mm.mmap(
        &p,
        d + PAGE_SIZE,
        PAGE_SIZE,
        PROT_READ,
        fixed,
        5,
        2 * PAGE_SIZE,
    )
    .unwrap();
    assert_eq!(preads(&p), n, "moved with its label");
    assert_eq!(p.peek(d + PAGE_SIZE, 1), [3]);
    p.assert_mirror_matches();
}
