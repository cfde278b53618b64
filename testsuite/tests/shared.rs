//! Shared file and device mappings passed through from Linux: a mote application
//! and a native process share a `/dev/shm` page, a file written through
//! `MAP_SHARED` + `msync` is on disk after the run, and the faults of shared
//! mappings (write to a read-only one, access beyond end-of-file) end the run with
//! the native status; POSIX shared memory (`shm_open`) in a dynamically linked
//! program; System V shared memory (`apps/sysv_shm.c`: `shmat`/`shmdt`/`shmctl`
//! as natively, Linux's permission checks, and a segment shared by key with a
//! native process, gone once both detached); a peer reading the application's
//! fresh memory with `process_vm_readv`, as MPI libraries do between ranks.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mote_testsuite::{app, Platform, Program, TempDir, HANG_LIMIT};

/// What `apps/shmfile.c` leaves in its file: byte i is `(i * 7 + 3) & 0xff`.
fn shmfile_contents() -> Vec<u8> {
    (0..3 * 4096 + 100)
        .map(|i: u32| (i * 7 + 3) as u8)
        .collect()
}

/// A `/dev/shm` file of one zeroed page, removed when dropped.
struct ShmFile(PathBuf);

impl ShmFile {
    fn new(label: &str) -> Self {
        let path = Path::new("/dev/shm").join(format!("mote-test-{label}-{}", std::process::id()));
        fs::write(&path, [0u8; 4096]).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        ShmFile(path)
    }
}

impl Drop for ShmFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// The native peer of a ping-pong with a mote run, once it ends: its status and
/// stdout (killed, and the test failed, if it outlives the hang limit).
fn native_peer_result(
    peer: &mut std::process::Child,
    mote: &mote_testsuite::Run,
) -> (std::process::ExitStatus, String) {
    let deadline = Instant::now() + HANG_LIMIT;
    let status = loop {
        if let Some(s) = peer.try_wait().expect("peer status") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = peer.kill();
            let _ = peer.wait();
            panic!("native peer hung\n{mote:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    std::io::Read::read_to_string(&mut peer.stdout.take().unwrap(), &mut out).unwrap();
    (status, out)
}

fn mote_and_a_native_process_ping_pong_through_a_dev_shm_page(pf: Platform) {
    const ROUNDS: &str = "10000";
    let shm = ShmFile::new("pingpong");
    // The native peer (side b) spins until the application (side a) passes it the
    // turn; both bound their waits themselves, and the peer is killed if it outlives
    // the hang limit.
    let mut peer = Command::new(app("shmpingpong"))
        .arg(&shm.0)
        .args(["b", ROUNDS])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the native peer");
    let mote = Program::new(app("shmpingpong"))
        .on(pf)
        .arg(&shm.0)
        .args(["a", ROUNDS])
        .mote();
    let (status, peer_out) = native_peer_result(&mut peer, &mote);
    assert_eq!(
        mote.stdout_text(),
        "side a: 10000 rounds, no lost update\n",
        "{mote:?}"
    );
    assert_eq!(mote.status, 0, "{mote:?}");
    assert_eq!(peer_out, "side b: 10000 rounds, no lost update\n");
    assert!(status.success(), "native peer: {status:?}");
    // The page holds the final count, seen from here too.
    let page = fs::read(&shm.0).unwrap();
    assert_eq!(u64::from_le_bytes(page[8..16].try_into().unwrap()), 20_000);
}

fn a_file_written_through_map_shared_and_msync_holds_the_data(pf: Platform) {
    let dir = TempDir::new("shmfile");
    let native_file = dir.path().join("native");
    let mote_file = dir.path().join("mote");
    let native = Program::new(app("shmfile"))
        .on(pf)
        .arg(&native_file)
        .native();
    let mote = Program::new(app("shmfile")).on(pf).arg(&mote_file).mote();
    mote_testsuite::assert_same(&native, &mote);
    assert_eq!(mote.status, 0, "{mote:?}");
    assert!(mote.stdout_text().contains("all checks passed"), "{mote:?}");
    let want = shmfile_contents();
    assert_eq!(fs::read(&native_file).unwrap(), want, "natively");
    assert_eq!(fs::read(&mote_file).unwrap(), want, "the file mote wrote");
}

fn writing_a_read_only_shared_mapping_is_sigsegv_as_natively(pf: Platform) {
    let dir = TempDir::new("shmfault-ro");
    let file = dir.file("ro", "read me\n");
    let (native, mote) = Program::new(app("shmfault"))
        .on(pf)
        .args(["ro".as_ref(), file.as_os_str()])
        .same_as_native();
    assert_eq!(native.status, 139);
    assert_eq!(mote.status, 139);
    assert!(mote.stderr_text().contains("SIGSEGV"), "{mote:?}");
    assert_eq!(fs::read(&file).unwrap(), b"read me\n", "file unchanged");
}

fn touching_a_shared_mapping_beyond_end_of_file_is_sigbus_as_natively(pf: Platform) {
    let dir = TempDir::new("shmfault-eof");
    let native_file = dir.file("native", "x");
    let mote_file = dir.file("mote", "x");
    let native = Program::new(app("shmfault"))
        .on(pf)
        .args(["eof".as_ref(), native_file.as_os_str()])
        .native();
    let mote = Program::new(app("shmfault"))
        .on(pf)
        .args(["eof".as_ref(), mote_file.as_os_str()])
        .mote();
    mote_testsuite::assert_same(&native, &mote);
    assert_eq!(native.status, 135, "natively SIGBUS");
    assert_eq!(mote.status, 135, "{mote:?}");
    assert!(mote.stderr_text().contains("SIGBUS"), "{mote:?}");
    // The store inside the file reached it before the fault.
    let data = fs::read(&mote_file).unwrap();
    assert_eq!(data.len(), 100);
    assert_eq!(data[50], b'x');
    assert_eq!(data, fs::read(&native_file).unwrap());
}

fn posix_shm_in_a_dynamic_program_aliases_two_mappings(pf: Platform) {
    let name = |side: &str| format!("/mote-test-shm-{side}-{}", std::process::id());
    let native = Program::new(app("shm_posix"))
        .on(pf)
        .arg(name("n"))
        .native();
    let mote = Program::new(app("shm_posix")).on(pf).arg(name("m")).mote();
    mote_testsuite::assert_same(&native, &mote);
    assert_eq!(
        mote.stdout_text(),
        "two mappings of one shm object alias: yes\n"
    );
    assert_eq!(mote.status, 0, "{mote:?}");
    assert!(
        !Path::new("/dev/shm").join(&name("m")[1..]).exists(),
        "shm_unlink removed it"
    );
}

fn a_shared_file_truncated_under_its_mapping_is_sigbus_as_natively(pf: Platform) {
    let dir = TempDir::new("shmfault-trunc");
    let native_file = dir.file("native", "");
    let mote_file = dir.file("mote", "");
    let native = Program::new(app("shmfault"))
        .on(pf)
        .args(["trunc".as_ref(), native_file.as_os_str()])
        .native();
    let mote = Program::new(app("shmfault"))
        .on(pf)
        .args(["trunc".as_ref(), mote_file.as_os_str()])
        .mote();
    mote_testsuite::assert_same(&native, &mote);
    assert_eq!(native.status, 135, "natively SIGBUS");
    assert!(mote.stderr_text().contains("SIGBUS"), "{mote:?}");
    assert_eq!(fs::read(&mote_file).unwrap().len(), 100);
}

/// The same with a `SIGBUS` handler: on the hosted platform Linux raises the
/// signal in the application's process and libos delivers it to the handler. (In
/// the partition KVM fails on the vanished host page and the proxy ends the run
/// with `SIGBUS`, as without a handler: README, "Shared file mappings".)
#[test]
fn hosted_a_sigbus_handler_runs_for_a_file_truncated_under_its_mapping() {
    let dir = TempDir::new("shmfault-trunc-caught");
    let (native_file, mote_file) = (dir.file("native", ""), dir.file("mote", ""));
    let prog = |f: &Path| {
        Program::new(app("shmfault"))
            .on(Platform::Hosted)
            .args(["trunc-caught".as_ref(), f.as_os_str()])
    };
    let native = prog(&native_file).native();
    let mote = prog(&mote_file).mote();
    mote_testsuite::assert_same(&native, &mote);
    assert_eq!(mote.status, 0, "{mote:?}");
    assert!(
        mote.stdout_text()
            .contains("BUS_ADRERR yes, si_addr is the byte: yes"),
        "{mote:?}"
    );
}

fn system_v_shared_memory_behaves_as_natively(pf: Platform) {
    let (_, mote) = Program::new(app("sysv_shm")).on(pf).same_as_native();
    assert_eq!(mote.status, 0, "{mote:?}");
    let out = mote.stdout_text();
    for line in [
        "a and b alias: yes, nattch 2\n",
        "maps c: 16384 bytes r--s /SYSV00000000 (deleted)\n",
        "store into c: SIGSEGV SEGV_ACCERR\n",
        "store into b after shmdt: SIGSEGV SEGV_MAPERR\n",
        "attach over a mapping: EINVAL, mapping kept: yes\n",
        "munmap a's second page: ok, nattch 3\n",
        "shmdt d: ok, IPC_STAT then: EINVAL\n",
        "all checks passed\n",
    ] {
        assert!(out.contains(line), "{line:?} in {mote:?}");
    }
}

fn a_store_after_shmdt_is_sigsegv_as_natively(pf: Platform) {
    let (native, mote) = Program::new(app("sysv_shm"))
        .on(pf)
        .arg("detached")
        .same_as_native();
    assert_eq!(native.status, 139);
    assert_eq!(mote.stdout_text(), "detached: 0; storing into it\n");
    assert!(mote.stderr_text().contains("SIGSEGV"), "{mote:?}");
}

fn a_store_into_a_shm_rdonly_attachment_is_sigsegv_as_natively(pf: Platform) {
    let (native, mote) = Program::new(app("sysv_shm"))
        .on(pf)
        .arg("rdonly")
        .same_as_native();
    assert_eq!(native.status, 139);
    assert!(mote.stderr_text().contains("SIGSEGV"), "{mote:?}");
}

/// Does this process have `CAP_IPC_OWNER` (bit 15 of `CapEff`), which passes
/// every System V permission check?
fn has_cap_ipc_owner() -> bool {
    let status = fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .expect("CapEff in /proc/self/status");
    eff & (1 << 15) != 0
}

fn shmat_refuses_what_linux_refuses_without_cap_ipc_owner(pf: Platform) {
    let mut prog = Program::new(app("sysv_shm")).on(pf).arg("perm");
    if has_cap_ipc_owner() {
        // As root: without the capability, so the permission bits count
        // (setpriv is util-linux's, on every Debian system).
        prog = prog.under(["setpriv", "--bounding-set", "-ipc_owner"]);
    }
    let (_, mote) = prog.same_as_native();
    assert_eq!(mote.status, 0, "{mote:?}");
    assert_eq!(
        mote.stdout_text(),
        "0400 segment: read-write EACCES, read-only ok (reads 0)\n\
         0600 segment: SHM_EXEC EACCES, read-write ok\n\
         0200 segment: read-write EACCES, nattch EACCES\n\
         nattch after the refusals: 0 0\n"
    );
}

/// System V segments of `key` Linux has now (`/proc/sysvipc/shm`: the key, in
/// decimal, is the first field).
fn segments_of_key(key: i32) -> usize {
    fs::read_to_string("/proc/sysvipc/shm")
        .expect("/proc/sysvipc/shm")
        .lines()
        .skip(1)
        .filter(|l| l.split_whitespace().next().and_then(|k| k.parse().ok()) == Some(key))
        .count()
}

fn mote_and_a_native_process_ping_pong_through_a_system_v_segment(pf: Platform) {
    const ROUNDS: &str = "10000";
    // A key of this test process and platform, free now.
    let mut key = 0x6d6f_0000 | ((std::process::id() as i32 & 0x7ff) << 4);
    if pf == Platform::Hosted {
        key |= 8;
    }
    while segments_of_key(key) != 0 {
        key += 1;
    }
    let key_arg = key.to_string();
    // The native peer (side b) creates or finds the segment and removes it once
    // the application (side a) has moved; both bound their waits themselves, and
    // the peer is killed if it outlives the hang limit.
    let mut peer = Command::new(app("sysv_shm"))
        .args(["peer", &key_arg, "b", ROUNDS])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the native peer");
    let mote = Program::new(app("sysv_shm"))
        .on(pf)
        .args(["peer", &key_arg, "a", ROUNDS])
        .mote();
    let (status, peer_out) = native_peer_result(&mut peer, &mote);
    let left = segments_of_key(key);
    if left != 0 {
        let _ = Command::new("ipcrm").args(["-M", &key_arg]).status();
    }
    assert_eq!(
        mote.stdout_text(),
        "side a: 10000 rounds, no lost update\n",
        "{mote:?}"
    );
    assert_eq!(mote.status, 0, "{mote:?}");
    assert_eq!(peer_out, "side b: 10000 rounds, no lost update\n");
    assert!(status.success(), "native peer: {status:?}");
    // Removed while both were attached: gone once both detached, so every
    // attachment mote made for the application (the proxy's, the hosted
    // application process's) is gone too.
    assert_eq!(left, 0, "the segment outlived both processes");
}

/// Another process reads the application's memory with `process_vm_readv` the
/// moment the mapping call returned, the address passed through shared memory
/// with no system call in between (Open MPI's single-copy path for large
/// messages): the proxy's mirror must already hold the mapping, or the peer gets
/// `EFAULT` (hosted, before: every buffer; kvm: mappings under 256 KiB).
fn a_peer_reads_fresh_memory_with_process_vm_readv_as_natively(pf: Platform) {
    let prog = Program::new(app("cma")).on(pf);
    let (native, mote) = prog.same_as_native();
    assert_eq!(native.status, 0, "{native:?}");
    assert_eq!(mote.status, 0, "{mote:?}");
}

mote_testsuite::on_both_platforms!(
    system_v_shared_memory_behaves_as_natively,
    a_peer_reads_fresh_memory_with_process_vm_readv_as_natively,
    a_store_after_shmdt_is_sigsegv_as_natively,
    a_store_into_a_shm_rdonly_attachment_is_sigsegv_as_natively,
    shmat_refuses_what_linux_refuses_without_cap_ipc_owner,
    mote_and_a_native_process_ping_pong_through_a_system_v_segment,
    mote_and_a_native_process_ping_pong_through_a_dev_shm_page,
    a_file_written_through_map_shared_and_msync_holds_the_data,
    writing_a_read_only_shared_mapping_is_sigsegv_as_natively,
    touching_a_shared_mapping_beyond_end_of_file_is_sigbus_as_natively,
    posix_shm_in_a_dynamic_program_aliases_two_mappings,
    a_shared_file_truncated_under_its_mapping_is_sigbus_as_natively,
);
