//! Tests of the served `/proc` and `/sys` files.
use super::*;

#[test]
fn lookup_knows_self_pid_and_thread_self_only() {
    assert_eq!(lookup(42, b"/proc/self/maps"), Some(File::Maps));
    assert_eq!(lookup(42, b"/proc/42/smaps"), Some(File::Smaps));
    assert_eq!(lookup(42, b"/proc/thread-self/status"), Some(File::Status));
    assert_eq!(lookup(42, b"/proc/self/stat"), Some(File::Stat));
    assert_eq!(lookup(42, b"/proc/meminfo"), Some(File::Meminfo));
    assert_eq!(lookup(42, b"/proc/cpuinfo"), Some(File::Cpuinfo));
    assert_eq!(
        lookup(42, b"/sys/devices/system/cpu/online"),
        Some(File::CpuList)
    );
    assert_eq!(
        lookup(42, b"/sys/devices/system/cpu/possible"),
        Some(File::CpuList)
    );
    assert_eq!(lookup(42, b"/proc/1/maps"), None);
    assert_eq!(lookup(42, b"/proc/421/maps"), None);
    assert_eq!(lookup(42, b"/proc/self/environ"), None);
    assert_eq!(lookup(42, b"/proc/self/maps/x"), None);
    assert_eq!(lookup(42, b"proc/self/maps"), None);
    assert_eq!(lookup(42, b"/proc/uptime"), None);
}

use crate::fake::FakePlatform;
use mote_abi::boot::BootInfo;

fn process() -> (Process, FakePlatform) {
    let boot = BootInfo {
        pid: 77,
        ncores: 2,
        pool_start: 16 << 20,
        mem_size: 80 << 20,
        ..Default::default()
    };
    let p = FakePlatform::new();
    let mut pr = Process::new(&boot);
    pr.mm.init(&p).unwrap();
    pr.exe = b"/bin/memcheck".to_vec();
    (pr, p)
}

#[test]
fn open_hands_out_a_read_only_descriptor_in_the_memfds_place() {
    let (pr, p) = process();
    p.reply(Sysno::memfd_create, 3);
    p.reply(Sysno::write, 1 << 20);
    p.reply(Sysno::lseek, 0);
    p.reply(Sysno::openat, 4);
    p.reply(Sysno::dup3, 3);
    p.reply(Sysno::close, 0);
    assert_eq!(open(&pr, &p, File::CpuList, O_CLOEXEC), Ok(3));
    let calls: Vec<(u64, [u64; 6])> = p.st.borrow().forwarded.clone();
    let nrs: Vec<u64> = calls.iter().map(|c| c.0).collect();
    assert_eq!(
        nrs,
        [
            Sysno::memfd_create,
            Sysno::write,
            Sysno::lseek,
            Sysno::openat,
            Sysno::dup3,
            Sysno::close
        ]
        .map(|s| s as u64)
    );
    assert_eq!(calls[1].1[2], 4, "writes \"0-1\\n\"");
    assert_eq!(calls[3].1[2], O_CLOEXEC, "the reopen is read-only");
    assert_eq!(
        calls[4].1[..3],
        [4, 3, O_CLOEXEC],
        "dup3(ro, memfd, O_CLOEXEC)"
    );
    assert_eq!(calls[5].1[0], 4);
    // Without O_CLOEXEC the descriptor is inherited across exec.
    p.st.borrow_mut().forwarded.clear();
    assert_eq!(open(&pr, &p, File::CpuList, 0), Ok(3));
    assert_eq!(p.st.borrow().forwarded[4].1[2], 0);
}

#[test]
fn open_for_writing_is_eacces_and_reaches_linux_never() {
    let (pr, p) = process();
    for flags in [1, 2, 0o1101] {
        assert_eq!(open(&pr, &p, File::Maps, flags), Err(Errno::EACCES));
    }
    assert_eq!(open(&pr, &p, File::Maps, 0o200_000), Err(Errno::ENOTDIR));
    assert!(p.st.borrow().forwarded.is_empty());
    // A failing memfd is the application's error.
    p.reply(Sysno::memfd_create, Errno::EMFILE.ret());
    assert_eq!(open(&pr, &p, File::Maps, 0), Err(Errno::EMFILE));
}

#[test]
fn maps_and_smaps_show_the_address_space() {
    let (mut pr, p) = process();
    let a = crate::syscall::mm::mmap(
        &mut pr,
        &p,
        0,
        4 << 20,
        PROT_READ | PROT_WRITE,
        0x22,
        u64::MAX,
        0,
    )
    .unwrap() as u64;
    let b = crate::syscall::mm::mmap(&mut pr, &p, 0, 8192, PROT_READ, 0x22, u64::MAX, 0).unwrap()
        as u64;
    let maps = String::from_utf8(render(&pr, &p, File::Maps)).unwrap();
    let want_a = format!("{a:08x}-{:08x} rw-p 00000000 00:00 0 \n", a + (4 << 20));
    let want_b = format!("{b:08x}-{:08x} r--p 00000000 00:00 0 \n", b + 8192);
    assert_eq!(maps, format!("{want_b}{want_a}"));
    let smaps = String::from_utf8(render(&pr, &p, File::Smaps)).unwrap();
    let entry_a = &smaps[smaps.find(&want_a).unwrap()..];
    assert!(
        entry_a.contains("\nKernelPageSize:     2048 kB\n"),
        "{smaps}"
    );
    assert!(
        entry_a.contains("\nAnonHugePages:      4096 kB\n"),
        "{smaps}"
    );
    assert!(
        entry_a.contains("\nRss:                4096 kB\n"),
        "{smaps}"
    );
    let entry_b = &smaps[..smaps.find(&want_a).unwrap()];
    assert!(
        entry_b.contains("\nKernelPageSize:        4 kB\n"),
        "{smaps}"
    );
    assert!(entry_b.contains("\nVmFlags: rd mr mw me ac\n"), "{smaps}");
}

#[test]
fn facts_come_from_the_address_space_pool_and_counter() {
    let (mut pr, p) = process();
    p.st.borrow_mut().page_faults = 5;
    crate::syscall::mm::mmap(
        &mut pr,
        &p,
        0,
        4 << 20,
        PROT_READ | PROT_WRITE,
        0x22,
        u64::MAX,
        0,
    )
    .unwrap();
    let f = Facts::of(&pr, &p);
    assert_eq!(
        (f.comm.as_str(), f.ncores, f.threads, f.faults),
        ("memcheck", 2, 1, 5)
    );
    assert_eq!(
        (f.vm_size, f.vm_rss, f.vm_data),
        (4 << 20, 4 << 20, 4 << 20)
    );
    assert_eq!(f.mem_total, 64 << 20);
    assert_eq!(f.mem_free, (64 << 20) - (4 << 20) - pr.mm.tables_given());
    assert_eq!((f.page_size, f.huge_total), (2 << 20, 32));
    assert_eq!(f.huge_free, f.mem_free / (2 << 20));
}

#[test]
fn cpu_lists_and_masks() {
    assert_eq!(cpu_list(1), "0\n");
    assert_eq!(cpu_list(4), "0-3\n");
    assert_eq!(cpu_mask(1), "1");
    assert_eq!(cpu_mask(4), "f");
    assert_eq!(cpu_mask(40), "ff,ffffffff");
}

fn facts() -> Facts {
    Facts {
        comm: "memcheck".into(),
        ncores: 2,
        threads: 1,
        vm_size: 1 << 30,
        vm_rss: 512 << 20,
        vm_stk: 8 << 20,
        vm_exe: 1 << 20,
        vm_data: 1000 << 20,
        vm_pte: 2 << 20,
        faults: 3,
        mem_total: 2000 << 20,
        mem_free: 1000 << 20,
        page_size: 2 << 20,
        huge_total: 1000,
        huge_free: 499,
        code: (4 << 20, 5 << 20),
        stack_top: 1 << 40,
        brk_start: 8 << 20,
        sig_blk: 1 << 9,
        sig_pnd: 0,
        sig_ign: 1 << 12,
        sig_cgt: 0,
    }
}

#[test]
fn status_rewrites_the_partitions_lines_and_keeps_linuxs() {
    let linux = "Name:\tmote\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t77\nPid:\t77\nUid:\t1000\t1000\t1000\t1000\nVmPeak:\t 4000000 kB\nVmSize:\t 3900000 kB\nVmHWM:\t   90000 kB\nVmRSS:\t   80000 kB\nVmStk:\t     132 kB\nThreads:\t3\nSigBlk:\t0000000000000000\nSigIgn:\t0000000000001000\nCpus_allowed:\t3\nCpus_allowed_list:\t0-1\nMems_allowed:\t00000000,00000001\nvoluntary_ctxt_switches:\t5\n";
    let s = status(linux, &facts());
    let want = "Name:\tmemcheck\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t77\nPid:\t77\nUid:\t1000\t1000\t1000\t1000\nVmPeak:\t 1048576 kB\nVmSize:\t 1048576 kB\nVmHWM:\t  524288 kB\nVmRSS:\t  524288 kB\nVmStk:\t    8192 kB\nThreads:\t1\nSigBlk:\t0000000000000200\nSigIgn:\t0000000000001000\nCpus_allowed:\t3\nCpus_allowed_list:\t0-1\nMems_allowed:\t1\nvoluntary_ctxt_switches:\t5\n";
    assert_eq!(s, want);
    // Without Linux's file, the partition's part alone.
    let alone = status("", &facts());
    assert!(alone.contains("Threads:\t1\n") && alone.contains("Cpus_allowed_list:\t0-1\n"));
}

#[test]
fn stat_replaces_comm_faults_threads_and_sizes() {
    let linux = "77 (mote (x) y) S 1 77 77 34816 77 4194304 900 0 7 0 12 3 0 0 20 0 3 0 12345 4000000000 20000 18446744073709551615 1 1 0 0 0 0 0 4096 17990 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n";
    let s = stat(linux, &facts());
    let fields: Vec<&str> = s.trim_end().split(' ').collect();
    assert_eq!(&fields[..3], ["77", "(memcheck)", "S"]);
    assert_eq!(fields[9], "3", "minflt is kernel-min's page faults");
    assert_eq!(fields[11], "0", "majflt");
    assert_eq!(fields[13], "12", "utime stays Linux's");
    assert_eq!(fields[19], "1", "num_threads");
    assert_eq!(fields[22], (1u64 << 30).to_string(), "vsize");
    assert_eq!(fields[23], (131072).to_string(), "rss in pages");
    assert_eq!(fields[38], "0", "processor");
    assert_eq!(fields[25], "4194304", "startcode");
    assert_eq!(fields[46], "8388608", "start_brk");
    assert_eq!(fields[47], "0", "arg_start is not the proxy's");
    assert_eq!(fields.len(), 52);
}

#[test]
fn statm_counts_pages() {
    assert_eq!(statm(&facts()), "262144 131072 0 256 0 258048 0\n");
    assert_eq!(lookup(42, b"/proc/self/statm"), Some(File::Statm));
}

#[test]
fn meminfo_describes_the_frame_pool() {
    let m = meminfo(&facts());
    assert!(
        m.starts_with("MemTotal:        2048000 kB\nMemFree:         1024000 kB\n"),
        "{m}"
    );
    assert!(
        m.contains("HugePages_Total:    1000\nHugePages_Free:      499\n"),
        "{m}"
    );
    assert!(m.contains("Hugepagesize:       2048 kB\n"), "{m}");
}

#[test]
fn cpuinfo_repeats_the_model_once_per_core() {
    let host = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC\nphysical id\t: 0\nsiblings\t: 2\ncore id\t\t: 0\ncpu cores\t: 2\napicid\t\t: 0\nflags\t\t: fpu sse2\n\nprocessor\t: 1\nvendor_id\t: AuthenticAMD\n\n";
    let c = cpuinfo(host, 3);
    assert_eq!(c.matches("model name\t: AMD EPYC\n").count(), 3);
    assert!(c.contains("processor\t: 2\n"));
    assert!(c.contains("cpu cores\t: 3\n") && c.contains("siblings\t: 3\n"));
    assert!(c.contains("core id\t: 1\n"));
    assert!(c.ends_with("flags\t\t: fpu sse2\n\n"));
    assert_eq!(c.split("\n\n").filter(|e| !e.is_empty()).count(), 3);
}

#[test]
fn maps_lines_name_heap_stack_and_program() {
    let v = Vma {
        end: 0x2000,
        prot: PROT_READ | PROT_EXEC,
        kind: VmaKind::Image,
        shared: false,
        growsdown: false,
        fork: Default::default(),
        policy: 0,
    };
    let l = maps_line(0x1000, &v, b"/bin/x");
    assert_eq!(
        l,
        format!(
            "00001000-00002000 r-xp 00000000 00:00 0{}/bin/x",
            " ".repeat(34)
        )
    );
    let heap = Vma {
        kind: VmaKind::Heap,
        prot: PROT_READ | PROT_WRITE,
        ..v
    };
    assert!(maps_line(0x1000, &heap, b"").ends_with(" [heap]"));
    let anon = Vma {
        kind: VmaKind::Anon,
        shared: true,
        prot: 0,
        ..v
    };
    assert_eq!(
        maps_line(0x1000, &anon, b""),
        "00001000-00002000 ---s 00000000 00:00 0 "
    );
}
