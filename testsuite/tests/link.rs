//! `mote link`: a rewritten static program behaves as the original natively and
//! under mote on both platforms, and under mote none of its system calls traps
//! (`clone`, `fork` and `vfork` included, through the frame entry, in every
//! process of the run); a rewritten dynamically linked program (its libraries
//! and ld.so rewritten beside it), an MPI code among them, behaves as the
//! original and traps one call per process; the policy note travels
//! in the file (`mote info FILE`, `mote run` uses it, its flags win); inputs it
//! cannot rewrite are refused with the reason.

use std::path::{Path, PathBuf};
use std::process::Command;

use mote_testsuite::{
    app, artifacts, assert_same, busybox, run_mote_command, Platform, Program, TempDir,
};

/// Counts from the `--stats` lines: (trapped calls, calls without a trap, sites
/// the self-patcher patched, sites left trapping), summed over every process of
/// the run (each prints its own line).
fn stats(stderr: &str) -> (u64, u64, u64, u64) {
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("system calls:"))
        .collect();
    assert!(!lines.is_empty(), "no statistics line in stderr:\n{stderr}");
    lines.iter().fold((0, 0, 0, 0), |a, l| {
        let b = line_stats(l);
        (a.0 + b.0, a.1 + b.1, a.2 + b.2, a.3 + b.3)
    })
}

fn line_stats(line: &str) -> (u64, u64, u64, u64) {
    let num = |before: &str| -> u64 {
        let end = line
            .find(before)
            .unwrap_or_else(|| panic!("{before:?} in {line:?}"));
        line[..end]
            .split_whitespace()
            .next_back()
            .unwrap()
            .parse()
            .unwrap()
    };
    (
        num(" trapped"),
        num(" without a trap"),
        num(" sites patched"),
        num(" left trapping"),
    )
}

/// `mote link ARGS...`, which must succeed.
fn link(args: &[&str]) {
    let r = run_mote_command(&[&["link"], args].concat());
    assert_eq!(r.status, 0, "{r:?}");
}

fn linked(dir: &TempDir, name: &str) -> PathBuf {
    let out = dir.path().join(name);
    link(&[app(name).to_str().unwrap(), "-o", out.to_str().unwrap()]);
    out
}

/// Static apps whose every call can go through the direct entry (no threads).
const NO_THREADS: &[&str] = &[
    "hello",
    "exit42",
    "fileio",
    "sbrk",
    "clocks",
    "vdso",
    "limits",
    "syscall_loop",
    "syscall_flags",
    "signals",
    "mmapcycle",
    "sysv_shm",
    "shmfile",
    "segv",
];

/// Static apps that start threads or processes: their `clone`, `fork` and
/// `vfork` sites call the frame entry, with (threads) and without (fork) a new
/// stack; `spawn` is `posix_spawn`'s `CLONE_VM | CLONE_VFORK` on a stack of its
/// own.
const THREADS: &[&str] = &[
    "threads",
    "futex",
    "thread_end",
    "thread_signals",
    "fork",
    "fork_threads",
    "fork_memory",
    "spawn",
];

fn linked_apps_behave_as_natively_and_take_no_trap(pf: Platform) {
    let dir = TempDir::new("link-apps");
    for name in NO_THREADS {
        let out = linked(&dir, name);
        let original = Program::new(app(name)).native();
        let prog = Program::new(&out).on(pf);
        let native = prog.native();
        assert_same(&original, &native);
        let mote = prog.mote_with(&["--stats"]);
        assert_same(&native, &mote);
        if *name == "segv" {
            continue; // killed by SIGSEGV: no statistics
        }
        let (trapped, direct, patched, left) = stats(&mote.stderr_text());
        assert_eq!(
            (trapped, patched, left),
            (0, 0, 0),
            "{name}: a call trapped\n{mote:?}"
        );
        assert!(direct > 0, "{name}: no call went through the direct entry");
    }
}

fn linked_threaded_and_forking_apps_take_no_trap_either(pf: Platform) {
    let dir = TempDir::new("link-threads");
    for name in THREADS {
        let out = linked(&dir, name);
        let original = Program::new(app(name)).native();
        let prog = Program::new(&out).on(pf);
        let native = prog.native();
        assert_same(&original, &native);
        let mote = prog.mote_with(&["--stats"]);
        assert_same(&native, &mote);
        let (trapped, direct, patched, left) = stats(&mote.stderr_text());
        assert_eq!(
            (trapped, patched, left),
            (0, 0, 0),
            "{name}: a call trapped\n{mote:?}"
        );
        assert!(direct > 0, "{name}: no call went through the direct entry");
    }
    // The unmodified programs do trap at those sites: what the frame entry saves.
    let plain = Program::new(app("fork")).on(pf).mote_with(&["--stats"]);
    assert!(stats(&plain.stderr_text()).0 > 0, "{plain:?}");
}

/// Apps built with gcc's defaults (dynamic, PIE), loading libc only.
const DYNAMIC_APPS: &[&str] = &[
    "exit42",
    "hello",
    "fileio",
    "signals",
    "clocks",
    "threads",
    "futex",
    "thread_end",
    "fork",
];

/// `gcc -O2 -pthread -o DIR/NAME apps/NAME.c`: dynamically linked.
fn dynamic_build(dir: &TempDir, name: &str) -> PathBuf {
    assert!(
        gcc_available(),
        "gcc is needed (install Debian package gcc)"
    );
    let out = dir.path().join(name);
    let r = Command::new("gcc")
        .args(["-O2", "-pthread", "-o"])
        .arg(&out)
        .arg(source(name))
        .output()
        .unwrap();
    assert!(r.status.success(), "{r:?}");
    out
}

/// The trapped calls of each process of the run (its `--stats` line).
fn trapped_per_process(stderr: &str) -> Vec<u64> {
    stderr
        .lines()
        .filter(|l| l.contains("system calls:"))
        .map(|l| line_stats(l).0)
        .collect()
}

/// The one call a linked dynamically linked program still traps, per process:
/// glibc's `__libc_early_init` asks `getrlimit(RLIMIT_STACK)` (`prlimit64`)
/// after ld.so has relocated libc and before it runs libc's `DT_INIT`, where the
/// init stub fills libc's entry words.
const EARLY_INIT_TRAPS: u64 = 1;

/// Each dynamically linked app, rewritten with its libc and ld.so into
/// `OUT.libs`, behaves as the original natively and under mote (which loads the
/// rewritten ld.so, as the note says); under mote every process traps only
/// [`EARLY_INIT_TRAPS`]. The original traps more in every case.
fn linked_dynamic_apps_behave_as_natively_and_trap_once_before_libc_s_init(pf: Platform) {
    let dir = TempDir::new("link-dyn");
    for name in DYNAMIC_APPS {
        let original = dynamic_build(&dir, name);
        let out = dir.path().join(format!("{name}.linked"));
        link(&[original.to_str().unwrap(), "-o", out.to_str().unwrap()]);
        let libs = dir.path().join(format!("{name}.linked.libs"));
        for lib in ["libc.so.6", "ld-linux-x86-64.so.2"] {
            assert!(libs.join(lib).is_file(), "no rewritten {lib}");
        }
        let plain = Program::new(&original).on(pf);
        let prog = Program::new(&out).on(pf);
        let native = prog.native();
        assert_same(&plain.native(), &native);
        let mote = prog.mote_with(&["--stats"]);
        assert_same(&native, &mote);
        let trapped = trapped_per_process(&mote.stderr_text());
        assert!(
            trapped.iter().all(|&t| t == EARLY_INIT_TRAPS),
            "{name}: {trapped:?} trapped\n{mote:?}"
        );
        let before: u64 = trapped_per_process(&plain.mote_with(&["--stats"]).stderr_text())
            .iter()
            .sum();
        assert!(
            before > trapped.iter().sum(),
            "{name}: the original trapped {before}, linked {trapped:?}"
        );
    }
    // A program that loads a library with dlopen (not rewritten: only what it
    // needs at start-up is) still behaves.
    let out = dir.path().join("dlopen_cos");
    link(&[
        app("dlopen_cos").to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    let prog = Program::new(&out).on(pf);
    let (_, mote) = prog.same_as_native();
    assert!(mote.stdout_text().contains("cos(1) = 0.540302305868"));
}

/// MPICH's `mpiexec -n 2 PROG` natively and `mpiexec -n 2 mote run --stats --
/// PROG`: the ranks' sorted lines, and the trapped calls summed over the ranks.
fn two_ranks(pf: Platform, prog: &Path) -> (Vec<String>, u64) {
    let sorted = |t: String| {
        let mut v: Vec<String> = t.lines().map(String::from).collect();
        v.sort();
        v
    };
    let native = Program::new("mpiexec.mpich")
        .args(["-n", "2"])
        .arg(prog)
        .native();
    assert_eq!(native.status, 0, "{native:?}");
    let mote = Program::new("mpiexec.mpich")
        .args(["-n", "2"])
        .arg(&artifacts().mote)
        .arg("run")
        .args(pf.options())
        .args(["--stats", "--"])
        .arg(prog)
        .native();
    assert_eq!(mote.status, 0, "{mote:?}");
    let lines = sorted(native.stdout_text());
    assert_eq!(lines.len(), 2, "{native:?}");
    assert_eq!(sorted(mote.stdout_text()), lines, "{mote:?}");
    let trapped = trapped_per_process(&mote.stderr_text());
    assert_eq!(trapped.len(), 2, "{mote:?}");
    (lines, trapped.iter().sum())
}

/// `mpi_ring` relinked through MPICH's compiler wrapper (`mote link -- mpicc
/// ...`) and the test suite's build rewritten (`mote link IN -o OUT`): libmpich,
/// UCX, hwloc, libnuma, libudev, libm, libc and ld.so come rewritten beside it;
/// two ranks give the same lines as the original, and each traps only
/// [`EARLY_INIT_TRAPS`] (the original: hundreds, most of them ld.so's `dlopen`
/// of UCX's transport modules).
fn a_relinked_mpi_ring_runs_as_natively_trapping_once_per_rank(pf: Platform) {
    let dir = TempDir::new("link-mpi");
    let wrapped = dir.path().join("ring");
    link(&[
        "--",
        "mpicc.mpich",
        "-O2",
        "-o",
        wrapped.to_str().unwrap(),
        &source("mpi/mpi_ring"),
    ]);
    let rewritten = dir.path().join("ring2");
    link(&[
        app("mpi_ring").to_str().unwrap(),
        "-o",
        rewritten.to_str().unwrap(),
    ]);
    let (want, before) = two_ranks(pf, &app("mpi_ring"));
    for out in [&wrapped, &rewritten] {
        let libs = PathBuf::from(format!("{}.libs", out.display()));
        for lib in ["libc.so.6", "libmpich.so.12", "libm.so.6"] {
            assert!(libs.join(lib).is_file(), "no {lib} beside {out:?}");
        }
        let (lines, trapped) = two_ranks(pf, out);
        assert_eq!(lines, want);
        assert_eq!(
            trapped,
            2 * EARLY_INIT_TRAPS,
            "{out:?}: {trapped} trapped over two ranks, the original {before}"
        );
    }
}

/// The PT_LOAD segments of an ELF file: (vaddr, flags).
fn loads(path: &Path) -> Vec<(u64, u32)> {
    let b = std::fs::read(path).unwrap();
    let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
    let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
    let phoff = u64_at(32) as usize;
    let phnum = u16::from_le_bytes(b[56..58].try_into().unwrap()) as usize;
    (0..phnum)
        .map(|i| phoff + i * 56)
        .filter(|&p| u32_at(p) == 1)
        .map(|p| (u64_at(p + 16), u32_at(p + 4)))
        .collect()
}

fn gcc_available() -> bool {
    Command::new("gcc").arg("--version").output().is_ok()
}

fn source(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../apps")
        .join(format!("{name}.c"))
        .to_string_lossy()
        .into_owned()
}

fn a_wrapped_link_command_gives_a_large_page_static_pie(pf: Platform) {
    assert!(
        gcc_available(),
        "gcc is needed (install Debian package gcc)"
    );
    let dir = TempDir::new("link-wrap");
    let out = dir.path().join("loop");
    let src = source("syscall_loop");
    link(&[
        "--",
        "gcc",
        "-O2",
        "-static-pie",
        "-o",
        out.to_str().unwrap(),
        &src,
    ]);
    // Every segment the compiler's linker laid out starts a 2 MiB range, and so
    // do the two mote link added, except the data segment's relro head.
    let l = loads(&out);
    assert!(l.len() >= 5, "{l:x?}");
    let rw = l.iter().filter(|&&(_, f)| f == 6).count();
    for &(vaddr, flags) in &l {
        if flags != 6 {
            assert_eq!(vaddr % (2 << 20), 0, "segment at {vaddr:#x} ({flags})");
        }
    }
    assert_eq!(rw, 2, "{l:x?}");
    let prog = Program::new(&out).on(pf);
    let native = prog.native();
    assert_eq!(native.status, 0, "{native:?}");
    let mote = prog.mote_with(&["--stats"]);
    assert_same(&native, &mote);
    assert_eq!(stats(&mote.stderr_text()).0, 0, "{mote:?}");
}

fn the_policy_note_is_used_and_flags_override_it(pf: Platform) {
    let dir = TempDir::new("link-note");
    let out = dir.path().join("memcheck");
    link(&[
        "--page-size",
        "4k",
        "--cores",
        "2",
        app("memcheck").to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    let info = run_mote_command(&["info", out.to_str().unwrap()]);
    assert_eq!(info.status, 0, "{info:?}");
    let text = info.stdout_text();
    assert!(text.contains("page size: 4k"), "{text}");
    assert!(text.contains("cores: 2"), "{text}");
    assert!(text.contains("system-call sites rewritten: yes"), "{text}");
    let page = |r: &mote_testsuite::Run| {
        r.stdout_text()
            .lines()
            .find(|l| l.contains("KernelPageSize:"))
            .unwrap_or_else(|| panic!("no KernelPageSize line\n{r:?}"))
            .split_whitespace()
            .nth(2)
            .unwrap()
            .to_string()
    };
    let prog = Program::new(&out).on(pf);
    let by_note = prog.mote_with(&[]);
    assert_eq!(by_note.status, 0, "{by_note:?}");
    assert_eq!(page(&by_note), "4", "the note's 4k page size");
    let by_flag = prog.mote_with(&["--page-size", "2m"]);
    assert_eq!(by_flag.status, 0, "{by_flag:?}");
    assert_eq!(page(&by_flag), "2048", "the flag wins over the note");
    // An unmodified program has no note.
    let none = run_mote_command(&["info", app("memcheck").to_str().unwrap()]);
    assert_eq!(none.status, 1);
    assert!(none.stdout_text().contains("no mote note"), "{none:?}");
}

/// `mote link --time-slice MS`: `mote info` shows it, `mote run` uses it (its
/// 0 — never preempt — included: a value, not "unset"), and `mote run
/// --time-slice` wins over it.
fn the_note_s_time_slice_is_used_and_the_flag_overrides_it(pf: Platform) {
    let dir = TempDir::new("link-slice");
    let out = dir.path().join("timeshare");
    link(&[
        "--time-slice",
        "0",
        app("timeshare").to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    let info = run_mote_command(&["info", out.to_str().unwrap()]);
    assert_eq!(info.status, 0, "{info:?}");
    assert!(info.stdout_text().contains("time slice: 0 ms"), "{info:?}");
    let prog = Program::new(&out).on(pf).arg("yield");
    let native = prog.native();
    let by_note = prog.mote_with(&["--cores", "1", "--stats"]);
    assert_same(&native, &by_note);
    assert!(
        by_note
            .stderr_text()
            .contains("time-sharing: off (--time-slice 0)"),
        "{by_note:?}"
    );
    let by_flag = prog.mote_with(&["--cores", "1", "--stats", "--time-slice", "7"]);
    assert_same(&native, &by_flag);
    assert!(
        by_flag.stderr_text().contains("time-sharing: slice 7 ms"),
        "{by_flag:?}"
    );
    // A program linked without it runs with mote run's default.
    let plain = dir.path().join("plain");
    link(&[
        app("timeshare").to_str().unwrap(),
        "-o",
        plain.to_str().unwrap(),
    ]);
    let info = run_mote_command(&["info", plain.to_str().unwrap()]);
    assert!(
        info.stdout_text().contains("time slice: (not set"),
        "{info:?}"
    );
    let default = Program::new(&plain)
        .on(pf)
        .arg("yield")
        .mote_with(&["--cores", "1", "--stats"]);
    assert_same(&native, &default);
    assert!(
        default.stderr_text().contains("time-sharing: slice 10 ms"),
        "{default:?}"
    );
}

/// `mote link --no-patch`: nothing rewritten, and `mote run` patches nothing
/// either (every call of the loop traps), as with its own `--no-patch`.
fn a_no_patch_note_keeps_every_call_trapping(pf: Platform) {
    let dir = TempDir::new("link-nopatch");
    let out = dir.path().join("loop");
    link(&[
        "--no-patch",
        app("syscall_loop").to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    let prog = Program::new(&out).on(pf);
    let native = prog.native();
    let mote = prog.mote_with(&["--stats"]);
    assert_same(&native, &mote);
    let (trapped, direct, patched, _) = stats(&mote.stderr_text());
    assert!(trapped >= 4000, "only {trapped} trapped\n{mote:?}");
    assert_eq!((direct, patched), (0, 0), "{mote:?}");
}

fn a_malformed_note_is_refused(pf: Platform) {
    let dir = TempDir::new("link-badnote");
    let out = linked(&dir, "hello");
    let mut b = std::fs::read(&out).unwrap();
    // The descriptor follows the name "mote\0" padded to 8 bytes; its first word
    // is the version.
    let at = b
        .windows(8)
        .position(|w| w == b"mote\0\0\0\0")
        .expect("the note's name")
        + 8;
    b[at..at + 4].copy_from_slice(&99u32.to_le_bytes());
    let bad = dir.file("bad", &b);
    std::fs::set_permissions(&bad, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mote = Program::new(&bad).on(pf).mote();
    assert_eq!(mote.status, 126, "{mote:?}");
    let err = mote.stderr_text();
    assert!(
        err.contains("malformed mote note") && err.contains("version 99"),
        "{err}"
    );
    assert!(mote.stdout.is_empty(), "{mote:?}");
    let info = run_mote_command(&["info", bad.to_str().unwrap()]);
    assert_eq!(info.status, 1);
    assert!(
        info.stderr_text().contains("malformed mote note"),
        "{info:?}"
    );
}

/// `apps/rawsite_loop.c`'s site (the number moved in from another register) is
/// one the self-patcher cannot rewrite: unmodified, each of its 2,000 calls
/// traps; linked, none does.
fn a_site_the_self_patcher_cannot_patch_stops_trapping_once_linked(pf: Platform) {
    let prog = Program::new(app("rawsite_loop")).on(pf);
    let native = prog.native();
    assert_eq!(native.status, 0, "{native:?}");
    let plain = prog.mote_with(&["--stats"]);
    assert_same(&native, &plain);
    let (trapped, _, _, left) = stats(&plain.stderr_text());
    assert!(trapped >= 2000, "only {trapped} trapped calls\n{plain:?}");
    assert!(left >= 1, "{plain:?}");
    let dir = TempDir::new("link-raw");
    let out = linked(&dir, "rawsite_loop");
    let mote = Program::new(&out).on(pf).mote_with(&["--stats"]);
    assert_same(&native, &mote);
    let (trapped, direct, _, _) = stats(&mote.stderr_text());
    assert_eq!(trapped, 0, "{mote:?}");
    assert!(direct >= 2000, "{mote:?}");
}

/// A larger static program than the apps: busybox, rewritten (it stays named
/// `busybox`: it picks the applet from argv[0] or its first argument).
fn linked_busybox_applets_behave_as_natively_and_take_no_trap(pf: Platform) {
    let dir = TempDir::new("link-busybox");
    let out = dir.path().join("busybox");
    link(&[busybox().to_str().unwrap(), "-o", out.to_str().unwrap()]);
    let passwd = dir.file("passwd", "b:2\nc:3\na:1\n");
    let p = passwd.to_str().unwrap();
    let cases: &[&[&str]] = &[
        &["echo", "hi", "there"],
        &["sort", p],
        &["md5sum", p],
        &["wc", "-l", p],
        &["find", dir.path().to_str().unwrap(), "-name", "passwd"],
    ];
    for args in cases {
        let original = Program::new(busybox()).args(*args).native();
        let prog = Program::new(&out).args(*args).on(pf);
        let native = prog.native();
        assert_same(&original, &native);
        let mote = prog.mote_with(&["--stats"]);
        assert_same(&native, &mote);
        assert_eq!(stats(&mote.stderr_text()).0, 0, "{args:?}\n{mote:?}");
    }
}

mote_testsuite::on_both_platforms!(
    a_site_the_self_patcher_cannot_patch_stops_trapping_once_linked,
    linked_busybox_applets_behave_as_natively_and_take_no_trap,
    linked_apps_behave_as_natively_and_take_no_trap,
    linked_threaded_and_forking_apps_take_no_trap_either,
    a_wrapped_link_command_gives_a_large_page_static_pie,
    the_policy_note_is_used_and_flags_override_it,
    a_no_patch_note_keeps_every_call_trapping,
    the_note_s_time_slice_is_used_and_the_flag_overrides_it,
    a_malformed_note_is_refused,
    linked_dynamic_apps_behave_as_natively_and_trap_once_before_libc_s_init,
    a_relinked_mpi_ring_runs_as_natively_trapping_once_per_rank,
);

/// `mote link IN -o OUT` on `bytes`: refused (status 1) with `reason` in the
/// message, and no OUT left behind.
fn refused(bytes: &[u8], reason: &str) {
    let dir = TempDir::new("link-refuse");
    let input = dir.file("in", bytes);
    let out = dir.path().join("out");
    let r = run_mote_command(&["link", input.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert_eq!(r.status, 1, "{r:?}");
    let err = r.stderr_text();
    assert!(err.starts_with("mote: link: cannot rewrite: "), "{err}");
    assert!(err.contains(reason), "{reason:?} not in {err:?}");
    assert!(!out.exists(), "an output was written");
}

#[test]
fn a_non_elf_file_is_refused() {
    refused(b"#!/bin/sh\necho hello\n", "not an ELF file");
}

#[test]
fn a_32_bit_program_is_refused() {
    // An ELF32 i386 executable header.
    let mut h = vec![0u8; 52];
    h[..7].copy_from_slice(b"\x7fELF\x01\x01\x01");
    h[16..18].copy_from_slice(&2u16.to_le_bytes());
    h[18..20].copy_from_slice(&3u16.to_le_bytes());
    refused(&h, "32-bit");
}

#[test]
fn a_linked_program_is_refused() {
    let dir = TempDir::new("link-twice");
    let once = linked(&dir, "hello");
    refused(
        &std::fs::read(once).unwrap(),
        "already rewritten by mote link",
    );
}

/// Little-endian field access on an ELF64 file, for crafting inputs.
struct Elf64(Vec<u8>);

impl Elf64 {
    fn u16(&self, at: usize) -> u64 {
        u64::from(u16::from_le_bytes(self.0[at..at + 2].try_into().unwrap()))
    }
    fn u32(&self, at: usize) -> u64 {
        u64::from(u32::from_le_bytes(self.0[at..at + 4].try_into().unwrap()))
    }
    fn u64(&self, at: usize) -> u64 {
        u64::from_le_bytes(self.0[at..at + 8].try_into().unwrap())
    }
    fn put16(&mut self, at: usize, v: u16) {
        self.0[at..at + 2].copy_from_slice(&v.to_le_bytes());
    }
    fn put32(&mut self, at: usize, v: u32) {
        self.0[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }
    fn put64(&mut self, at: usize, v: u64) {
        self.0[at..at + 8].copy_from_slice(&v.to_le_bytes());
    }
    /// File offsets of the program headers.
    fn phdrs(&self) -> Vec<usize> {
        let (off, n) = (self.u64(32) as usize, self.u16(56) as usize);
        (0..n).map(|k| off + k * 56).collect()
    }
    /// File offsets of the PT_LOAD headers.
    fn loads(&self) -> Vec<usize> {
        self.phdrs()
            .into_iter()
            .filter(|&p| self.u32(p) == 1)
            .collect()
    }
    /// File offsets of the section headers.
    fn shdrs(&self) -> Vec<usize> {
        let (off, n) = (self.u64(40) as usize, self.u16(60) as usize);
        (0..n).map(|k| off + k * 64).collect()
    }
    /// The section header of the section called `name`.
    fn section(&self, name: &str) -> usize {
        let names = self.shdrs()[self.u16(62) as usize];
        let strtab = self.u64(names + 24) as usize;
        self.shdrs()
            .into_iter()
            .find(|&s| {
                let at = strtab + self.u32(s) as usize;
                self.0[at..].starts_with(name.as_bytes()) && self.0[at + name.len()] == 0
            })
            .unwrap_or_else(|| panic!("no section {name}"))
    }
}

/// `apps/hello` with one field changed by `craft`: refused for `reason`.
fn crafted(craft: impl Fn(&mut Elf64), reason: &str) {
    let mut e = Elf64(std::fs::read(app("hello")).unwrap());
    craft(&mut e);
    refused(&e.0, reason);
}

#[test]
fn crafted_inputs_it_cannot_rewrite_safely_are_refused_with_the_reason() {
    crafted(|e| e.0[5] = 2, "big-endian");
    crafted(|e| e.put16(18, 183), "not x86_64");
    crafted(|e| e.put16(16, 1), "not an executable");
    crafted(
        |e| {
            e.put64(40, 0);
            e.put16(60, 0);
            e.put16(62, 0);
        },
        "no section headers",
    );
    // The code's segment made writable: code that may modify itself.
    crafted(
        |e| {
            let text = e
                .loads()
                .into_iter()
                .find(|&p| e.u32(p + 4) & 1 != 0)
                .unwrap();
            let flags = e.u32(text + 4) as u32;
            e.put32(text + 4, flags | 2);
        },
        "writable and executable",
    );
    crafted(
        |e| {
            let l = e.loads();
            let (a, b) = (l[0], l[l.len() - 1]);
            let (first, last) = (e.0[a..a + 56].to_vec(), e.0[b..b + 56].to_vec());
            e.0[a..a + 56].copy_from_slice(&last);
            e.0[b..b + 56].copy_from_slice(&first);
        },
        "out of address order",
    );
    // .text one byte off where its segment maps it.
    crafted(
        |e| {
            let t = e.section(".text");
            let addr = e.u64(t + 16);
            e.put64(t + 16, addr + 1);
        },
        "not where an executable segment maps it",
    );
    // The last segment 3 GiB long: the added code would be out of a jump's reach.
    crafted(
        |e| {
            let last = *e.loads().last().unwrap();
            let memsz = e.u64(last + 40);
            e.put64(last + 40, memsz + (3 << 30));
        },
        "more than 2 GiB",
    );
    // A relocation into the code (a text relocation): glibc's static start-up
    // applies `.rela.plt`'s IRELATIVE entries; one pointed at .text would write
    // over rewritten bytes.
    crafted(
        |e| {
            let rela = e.section(".rela.plt");
            let at = e.u64(rela + 24) as usize;
            let text = e.section(".text");
            let addr = e.u64(text + 16);
            e.put64(at, addr + 16);
        },
        "relocation writes into the code",
    );
}

/// `-z noseparate-code` puts the ELF header in the code's segment: no page
/// boundary is free for the new program header table.
#[test]
fn a_program_whose_header_shares_the_code_s_segment_is_refused() {
    if !gcc_available() {
        panic!("gcc is needed to build the input (Debian: gcc)");
    }
    let dir = TempDir::new("link-nosep");
    let src = dir.file("a.c", "int main(void) { return 0; }\n");
    let out = dir.path().join("a");
    let st = Command::new("gcc")
        .args(["-static", "-O2", "-Wl,-z,noseparate-code", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .unwrap();
    assert!(st.success());
    refused(&std::fs::read(&out).unwrap(), "no page boundary");
}

impl Elf64 {
    /// File offsets of the entries of the dynamic section (up to DT_NULL).
    fn dynamic_entries(&self) -> Vec<usize> {
        let p = self
            .phdrs()
            .into_iter()
            .find(|&p| self.u32(p) == 2)
            .expect("a PT_DYNAMIC");
        let (off, size) = (self.u64(p + 8) as usize, self.u64(p + 32) as usize);
        (off..off + size)
            .step_by(16)
            .take_while(|&e| self.u64(e) != 0)
            .collect()
    }
    /// The entry whose tag is `tag`.
    fn dynamic_entry(&self, tag: u64) -> usize {
        self.dynamic_entries()
            .into_iter()
            .find(|&e| self.u64(e) == tag)
            .unwrap_or_else(|| panic!("no dynamic tag {tag:#x}"))
    }
}

/// `/bin/true` (a dynamically linked PIE program) with one thing changed.
fn dynamic_true(craft: impl Fn(&mut Elf64), reason: &str) {
    let mut e = Elf64(std::fs::read("/bin/true").expect("/bin/true"));
    craft(&mut e);
    refused(&e.0, reason);
}

/// `.dynamic` moves in the rewrite: an entry mote link does not know might not
/// hold once it has; text relocations would write over rewritten code.
#[test]
fn a_dynamic_tag_it_does_not_know_and_text_relocations_are_refused() {
    const DT_DEBUG: u64 = 21;
    const DT_TEXTREL: u64 = 22;
    dynamic_true(
        |e| {
            let at = e.dynamic_entry(DT_DEBUG);
            e.put64(at, 0x6fff_fe00);
        },
        "an unknown dynamic tag 0x6ffffe00",
    );
    dynamic_true(
        |e| {
            let at = e.dynamic_entry(DT_DEBUG);
            e.put64(at, DT_TEXTREL);
        },
        "text relocations (DT_TEXTREL)",
    );
}

/// A library the program needs that ld.so's search would not find either:
/// named, with who needs it and the fix; nothing is written.
#[test]
fn a_missing_library_is_refused_naming_it_and_the_fix() {
    dynamic_true(
        |e| {
            let s = e.section(".dynstr");
            let (off, size) = (e.u64(s + 24) as usize, e.u64(s + 32) as usize);
            let at = off
                + e.0[off..off + size]
                    .windows(10)
                    .position(|w| w == b"libc.so.6\0")
                    .expect("libc.so.6 in .dynstr");
            e.0[at..at + 9].copy_from_slice(b"libc.so.9");
        },
        "libc.so.9 (needed by ",
    );
    dynamic_true(
        |e| {
            let s = e.section(".dynstr");
            let (off, size) = (e.u64(s + 24) as usize, e.u64(s + 32) as usize);
            let at = off
                + e.0[off..off + size]
                    .windows(10)
                    .position(|w| w == b"libc.so.6\0")
                    .expect("libc.so.6 in .dynstr");
            e.0[at..at + 9].copy_from_slice(b"libc.so.9");
        },
        "or set LD_LIBRARY_PATH to its directory",
    );
}

/// A library built with a text relocation (an absolute address in its code,
/// `-z notext`), loaded through the program's `$ORIGIN` run path: refused,
/// naming the library; neither the program nor its libraries' directory is
/// written.
#[test]
fn a_library_with_text_relocations_is_refused_naming_it() {
    assert!(
        gcc_available(),
        "gcc is needed (install Debian package gcc)"
    );
    let dir = TempDir::new("link-textrel");
    let lib_c = dir.file(
        "tr.c",
        "long where(void) { long x; __asm__(\"movabs $where, %0\" : \"=r\"(x)); return x; }\n",
    );
    let main_c = dir.file(
        "main.c",
        "long where(void);\nint main(void) { return where() == 0; }\n",
    );
    let lib = dir.path().join("libtr.so");
    let prog = dir.path().join("prog");
    let gcc = |args: &[&std::ffi::OsStr]| {
        let r = Command::new("gcc").args(args).output().unwrap();
        assert!(r.status.success(), "{r:?}");
    };
    gcc(&[
        "-shared".as_ref(),
        "-fPIC".as_ref(),
        "-Wl,-z,notext".as_ref(),
        "-o".as_ref(),
        lib.as_os_str(),
        lib_c.as_os_str(),
    ]);
    gcc(&[
        "-o".as_ref(),
        prog.as_os_str(),
        main_c.as_os_str(),
        "-L".as_ref(),
        dir.path().as_os_str(),
        "-ltr".as_ref(),
        "-Wl,-rpath,$ORIGIN".as_ref(),
    ]);
    let native = Program::new(&prog).native();
    assert_eq!(native.status, 0, "{native:?}");
    let out = dir.path().join("out");
    let r = run_mote_command(&["link", prog.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert_eq!(r.status, 1, "{r:?}");
    let err = r.stderr_text();
    assert!(err.contains("libtr.so (needed by "), "{err}");
    assert!(err.contains("text relocations"), "{err}");
    assert!(!out.exists() && !dir.path().join("out.libs").exists());
}
