//! Tests of program loading (with a host file and the fake platform), shebang
//! parsing, errnos and messages.

use super::*;
use crate::fake::FakePlatform;
use crate::uapi::auxv::*;
use mote_abi::layout::USER_START;

struct HostFile(Vec<u8>);

impl ExecFile for HostFile {
    fn size(&self) -> u64 {
        self.0.len() as u64
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize, Errno> {
        let data = self.0.get(offset as usize..).unwrap_or_default();
        let n = buf.len().min(data.len());
        buf[..n].copy_from_slice(&data[..n]);
        Ok(n)
    }
    fn fd(&self) -> u64 {
        3
    }
}

fn boot() -> BootInfo {
    BootInfo {
        pid: 77,
        pool_start: 16 << 20,
        mem_size: 256 << 20,
        hwcap: 0xbfebfbff,
        random: [7; 16],
        ..Default::default()
    }
}

#[test]
fn busybox_is_loaded_with_its_stack() {
    let data = std::fs::read("/bin/busybox").unwrap();
    let p = FakePlatform::new();
    p.add_file(3, data.clone());
    p.reply(Sysno::getuid, 1000);
    p.reply(Sysno::geteuid, 1000);
    p.reply(Sysno::getgid, 100);
    p.reply(Sysno::getegid, 100);
    let mut pr = Process::new(&boot());
    let args = ExecArgs {
        path: b"/bin/busybox",
        argv: vec![b"busybox", b"echo", b"hi"],
        envp: vec![b"HOME=/"],
    };
    let e = pr.load(&p, &HostFile(data.clone()), &args).unwrap();
    let plan = elf::plan(&data[..HEAD_LEN], data.len() as u64).unwrap();
    assert_eq!(e.rip, plan.entry);
    assert_eq!(e.rsp % 16, 0);
    // Every segment's file bytes are in place, bss is zero, protections final.
    for s in &plan.segments {
        let n = s.filesz.min(256) as usize;
        assert_eq!(p.peek(s.vaddr, n), data[s.offset as usize..][..n]);
        if s.memsz > s.filesz {
            assert_eq!(p.peek(s.vaddr + s.filesz, 1), [0]);
        }
        assert_eq!(p.mapping(s.vaddr).unwrap().1, s.prot, "{s:?}");
    }
    // Stack: argc and argv[1].
    assert_eq!(p.peek(e.rsp, 8), 3u64.to_le_bytes());
    let argv1 = u64::from_le_bytes(p.peek(e.rsp + 16, 8).try_into().unwrap());
    assert_eq!(p.peek(argv1, 5), b"echo\0");
    // auxv: find AT_PHDR and AT_UID.
    let mut at = e.rsp + 8 * (1 + 3 + 1 + 1 + 1);
    let mut aux = std::collections::BTreeMap::new();
    loop {
        let k = u64::from_le_bytes(p.peek(at, 8).try_into().unwrap());
        let v = u64::from_le_bytes(p.peek(at + 8, 8).try_into().unwrap());
        aux.insert(k, v);
        at += 16;
        if k == AT_NULL {
            break;
        }
    }
    assert_eq!(aux[&AT_PHDR], plan.phdr);
    assert_eq!(aux[&AT_UID], 1000);
    assert_eq!(aux[&AT_HWCAP], 0xbfebfbff);
    assert_eq!(p.peek(aux[&AT_RANDOM], 16), [7; 16]);
    // The phdrs are readable at AT_PHDR (glibc reads them for TLS).
    assert_eq!(p.peek(plan.phdr, 4), data[64..68]);
    // brk starts after the image.
    assert_eq!(pr.mm.current_brk(), plan.brk_start);
    assert!(pr.mm.brk(&p, plan.brk_start + 100) == plan.brk_start + 100);
    assert!(plan.segments[0].vaddr >= USER_START);
    p.assert_mirror_matches();
}

#[test]
fn the_vdso_is_mapped_and_its_page_written_only_while_mapped() {
    use crate::vdso::{VData, VDATA_LEN, VDSO_VA, VVAR_VA};
    let data = std::fs::read("/bin/busybox").unwrap();
    let p = FakePlatform::new();
    p.add_file(3, data.clone());
    p.reply(Sysno::clock_gettime, 0);
    let mut pr = Process::new(&BootInfo {
        tsc_khz: 2_000_000,
        ..boot()
    });
    pr.direct_entry = 0x4000_0000_1234;
    let args = ExecArgs {
        path: b"/bin/busybox",
        argv: vec![b"busybox"],
        envp: vec![],
    };
    let e = pr.load(&p, &HostFile(data), &args).unwrap();
    assert_eq!(p.peek(VDSO_VA, 4), b"\x7fELF");
    assert_eq!(p.mapping(VDSO_VA).unwrap().1, PROT_READ | PROT_EXEC);
    assert_eq!(p.mapping(VVAR_VA).unwrap().1, PROT_READ);
    // A clock read refreshes the references and publishes them.
    let tp = e.rsp - 64;
    crate::syscall::time::clock_gettime(&mut pr, &p, 1, tp).unwrap();
    let d = VData::parse(&p.peek(VVAR_VA, VDATA_LEN).try_into().unwrap());
    assert!(d.seq > 0 && d.seq.is_multiple_of(2), "{d:?}");
    assert!(d.mult != 0 && d.max_ticks != 0 && d.direct == 0x4000_0000_1234);
    // Once the application unmaps it, libos no longer writes there (the fake
    // panics on a write to unmapped memory), even when a refresh is due.
    pr.mm.munmap(&p, VVAR_VA, PAGE_SIZE).unwrap();
    p.st.borrow_mut().tsc += 10_000_000_000;
    crate::syscall::time::clock_gettime(&mut pr, &p, 1, tp).unwrap();
    assert!(!pr.clock.has_vdso());
}

#[test]
fn refused_programs_map_nothing() {
    let p = FakePlatform::new();
    let mut pr = Process::new(&boot());
    let args = ExecArgs {
        path: b"/tmp/cut",
        argv: vec![b"cut"],
        envp: vec![],
    };
    // busybox cut short inside its program headers.
    let data = std::fs::read("/bin/busybox").unwrap()[..100].to_vec();
    let err = pr.load(&p, &HostFile(data), &args).unwrap_err();
    assert!(matches!(
        err,
        ExecErrorKind::Load(LoadError::TruncatedPhdrs { .. })
    ));
    assert_eq!(pr.mm.vmas().count(), 0);
    let e = ExecError {
        path: "/tmp/cut".into(),
        kind: err,
    };
    assert!(e.to_string().starts_with("/tmp/cut: truncated ELF"));
    assert_eq!(e.status(), 126);
}

#[test]
fn a_missing_interpreter_is_named() {
    let e = ExecError {
        path: "/opt/x".into(),
        kind: ExecErrorKind::Interp("/lib/ld-musl-x86_64.so.1".into(), Errno::ENOENT),
    };
    assert!(e
        .to_string()
        .contains("interpreter /lib/ld-musl-x86_64.so.1 does not exist"));
    assert_eq!(e.status(), 127);
}

#[test]
fn args_block_decodes() {
    let block = b"/usr/bin/prog\0prog\0-v\0A=1\0B=2\0";
    let a = ExecArgs::from_block(block, 3, 2).unwrap();
    assert_eq!(a.path, b"/usr/bin/prog");
    assert_eq!(a.argv, [&b"prog"[..], b"-v"]);
    assert_eq!(a.envp, [&b"A=1"[..], b"B=2"]);
    assert!(ExecArgs::from_block(b"/x\0", 2, 0).is_none());
}

#[test]
fn shebang_lines_parse_like_linux() {
    assert_eq!(
        shebang(b"#!/bin/sh\necho"),
        Some((b"/bin/sh".to_vec(), None))
    );
    assert_eq!(
        shebang(b"#! /usr/bin/env  python3 \n"),
        Some((b"/usr/bin/env".to_vec(), Some(b"python3".to_vec())))
    );
    assert_eq!(shebang(b"#!\n"), None);
    assert_eq!(shebang(b"\x7fELF"), None);
}

#[test]
fn paths_from_files_are_escaped() {
    assert_eq!(escape(b"/lib/ld.so"), "/lib/ld.so");
    assert_eq!(escape(b"/x/\x1b[2J\x07\n"), "/x/\\x1b[2J\\x07\\x0a");
    assert_eq!(escape(b"a\\b\xff\xc2\x9b"), "a\\\\b\\xff\\xc2\\x9b");
    let e = ExecError {
        path: "/p\x1b".into(),
        kind: ExecErrorKind::InterpNotRegular(b"/dev/\x1bnull".to_vec(), 0o020_644),
    };
    assert_eq!(
        e.to_string(),
        "/p\\x1b: permission denied: its interpreter /dev/\\x1bnull is a character device, not a program"
    );
    assert_eq!(e.status(), 126);
    assert_eq!(exec_errno(&e.kind), Errno::EACCES);
    let e = ExecErrorKind::InterpNotExecutable(b"/opt/ld.so".to_vec());
    assert_eq!(exec_errno(&e), Errno::EACCES);
}

#[test]
fn exec_failures_map_to_execve_errnos() {
    assert_eq!(
        exec_errno(&ExecErrorKind::Open(Errno::ENOENT)),
        Errno::ENOENT
    );
    assert_eq!(exec_errno(&ExecErrorKind::NotExecutable), Errno::EACCES);
    assert_eq!(
        exec_errno(&ExecErrorKind::Load(LoadError::NotElf)),
        Errno::ENOEXEC
    );
}

/// A 64-bit ELF header and one `PT_NOTE` entry holding `notes`.
fn with_notes(notes: &[u8]) -> HostFile {
    let mut f = vec![0u8; 120];
    f[..4].copy_from_slice(b"\x7fELF");
    f[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
    f[56..58].copy_from_slice(&1u16.to_le_bytes()); // e_phnum
    f[64..68].copy_from_slice(&4u32.to_le_bytes()); // PT_NOTE
    f[72..80].copy_from_slice(&120u64.to_le_bytes()); // p_offset
    f[96..104].copy_from_slice(&(notes.len() as u64).to_le_bytes()); // p_filesz
    f.extend_from_slice(notes);
    HostFile(f)
}

/// A program `mote link` rewrote with its interpreter beside it is loaded with
/// that copy (`PATH.libs/ld-linux-x86-64.so.2`); any other keeps its PT_INTERP.
#[test]
fn a_linked_program_s_own_interpreter_is_chosen_by_its_note() {
    use mote_abi::note::{Policy, F_LINKED, F_OWN_INTERP, VERSION};
    let note = |flags| {
        Policy {
            version: VERSION,
            flags,
            ..Policy::default()
        }
        .to_note()
    };
    assert_eq!(
        own_interp(&with_notes(&note(F_LINKED | F_OWN_INTERP)), b"/x/app"),
        Some(b"/x/app.libs/ld-linux-x86-64.so.2".to_vec())
    );
    assert_eq!(own_interp(&with_notes(&note(F_LINKED)), b"/x/app"), None);
    assert_eq!(own_interp(&with_notes(b""), b"/x/app"), None);
    // A damaged note: PT_INTERP's (mote run has refused it already).
    let mut bad = note(F_OWN_INTERP);
    bad[20] = 9; // version
    assert_eq!(own_interp(&with_notes(&bad), b"/x/app"), None);
}

/// A `linux_dirent64` record as Linux lays it out (8-byte aligned length).
fn dirent(name: &str) -> Vec<u8> {
    let len = (19 + name.len() + 1).next_multiple_of(8);
    let mut r = vec![0u8; len];
    r[16..18].copy_from_slice(&(len as u16).to_le_bytes());
    r[18] = 10; // DT_LNK
    r[19..19 + name.len()].copy_from_slice(name.as_bytes());
    r
}

#[test]
fn close_on_exec_reads_descriptor_numbers_from_dirents() {
    let buf: Vec<u8> = [".", "..", "0", "1", "2", "17", "64", "1048575"]
        .iter()
        .flat_map(|n| dirent(n))
        .collect();
    let fds: Vec<u64> = dirent_numbers(&buf).collect();
    assert_eq!(fds, [0, 1, 2, 17, 64, 1048575]);
    // A record whose length runs past the buffer, or is too short to hold a
    // name, ends the walk instead of reading beyond it.
    let mut cut = dirent("5");
    cut[16..18].copy_from_slice(&200u16.to_le_bytes());
    assert_eq!(
        dirent_numbers(&[dirent("3"), cut].concat()).collect::<Vec<_>>(),
        [3]
    );
    let mut short = dirent("5");
    short[16..18].copy_from_slice(&19u16.to_le_bytes());
    assert_eq!(dirent_numbers(&short).count(), 0);
}
