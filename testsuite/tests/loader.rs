//! The loader and launcher against Linux (issue 15, points 9 and 10): `AT_PHDR`,
//! `PT_INTERP` anywhere in the file, nested `#!` scripts, Linux's room for
//! arguments, and failures of an interpreter blamed on the interpreter, with
//! Linux's status and escaped names.
//!
//! A program natively refused by `execve` cannot be run by the harness, so those
//! cases are checked twice: `mote run` directly (status 126/127 as a shell gives
//! for the native errno, and a `mote:` line naming the culprit), and the same
//! exec from busybox's shell running natively and under mote (libos's `execve`:
//! same status and output).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use mote_testsuite::{app, busybox, Platform, Program, TempDir};

/// Linux's errno values (`include/uapi/asm-generic/errno-base.h`, `errno.h`).
const ENOENT: i32 = 2;
const ENOTDIR: i32 = 20;
const ELOOP: i32 = 40;

/// `errno` of a native `execve` of `path` (0 if it started).
fn native_errno(path: &Path) -> i32 {
    match std::process::Command::new(path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
    {
        Ok(_) => 0,
        Err(e) => e.raw_os_error().expect("an errno"),
    }
}

/// The status a shell reports for a program `execve` refuses with `errno`.
fn shell_status(errno: i32) -> i32 {
    if errno == ENOENT || errno == ENOTDIR {
        127
    } else {
        126
    }
}

/// `mote run -- path` fails as Linux's `execve` does (status), with one `mote:`
/// line naming `culprit` (escaped) and saying `why`; and busybox's shell exec'ing
/// it (libos's `execve`) gives the same status and output natively and under mote.
fn refused_like_linux(pf: Platform, path: &Path, culprit: &str, why: &str) {
    let errno = native_errno(path);
    assert_ne!(errno, 0, "{} starts natively", path.display());
    let mote = Program::new(path).on(pf).mote();
    assert_eq!(mote.status, shell_status(errno), "{mote:?}");
    let err = mote.stderr_text();
    assert!(
        err.starts_with("mote: ") && err.contains(culprit) && err.contains(why),
        "the mote: line must name {culprit} and say {why}:\n{mote:?}"
    );
    assert!(!err.contains('\x1b'), "raw escape sequence in {err:?}");
    // busybox's `exec` has statuses of its own (127 for ELOOP): the native run is
    // the reference.
    let (native, _) = Program::new(busybox())
        .on(pf)
        .args(["sh", "-c", "exec \"$0\""])
        .arg(path)
        .same_as_native();
    assert_ne!(native.status, 0);
}

fn executable(path: &Path) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The program headers of an ELF64 file: (offset of the entry, p_type).
fn phdrs(data: &[u8]) -> Vec<(usize, u32)> {
    let u64_at = |o: usize| u64::from_le_bytes(data[o..o + 8].try_into().unwrap());
    let u16_at = |o: usize| u16::from_le_bytes(data[o..o + 2].try_into().unwrap());
    let (phoff, phnum) = (u64_at(32) as usize, u16_at(56) as usize);
    (0..phnum)
        .map(|i| {
            let at = phoff + i * 56;
            (at, u32::from_le_bytes(data[at..at + 4].try_into().unwrap()))
        })
        .collect()
}

/// Regression: `AT_PHDR` came from `PT_PHDR`; Linux takes it from the load segment
/// holding the table, so a `PT_PHDR` pointing elsewhere is harmless natively (here
/// at unmapped memory: glibc reads the table through `AT_PHDR` to set up TLS).
fn at_phdr_ignores_a_misleading_pt_phdr(pf: Platform) {
    const PT_NOTE: u32 = 4;
    const PT_PHDR: u32 = 6;
    let mut data = std::fs::read(app("hello")).unwrap();
    let (at, _) = *phdrs(&data)
        .iter()
        .find(|(_, t)| *t == PT_NOTE)
        .expect("hello has a PT_NOTE");
    data[at..at + 4].copy_from_slice(&PT_PHDR.to_le_bytes());
    data[at + 16..at + 24].copy_from_slice(&0x1000_0000u64.to_le_bytes());
    let dir = TempDir::new("phdr");
    let prog = dir.file("hello-phdr", &data);
    executable(&prog);
    let (_, mote) = Program::new(&prog).on(pf).arg("x").same_as_native();
    assert!(mote.stdout_text().starts_with("Hello, world!"), "{mote:?}");
    assert_eq!(mote.status, 0);
}

/// Regression: a `PT_INTERP` past the first 128 KiB was refused; glibc's libc.so.6
/// has its name 1.6 MiB in, and run as a program prints its version.
fn libc_so_prints_its_version(pf: Platform) {
    let libc = "/lib/x86_64-linux-gnu/libc.so.6";
    let (_, mote) = Program::new(libc).on(pf).same_as_native();
    assert!(mote.stdout_text().starts_with("GNU C Library"), "{mote:?}");
    assert_eq!(mote.status, 0);
}

/// A chain of `n` `#!` scripts in `dir`, each the interpreter of the one before,
/// the last run by busybox's shell; returns the first.
fn script_chain(dir: &TempDir, n: usize) -> PathBuf {
    let name = |i: usize| dir.path().join(format!("s{i}"));
    for i in 1..=n {
        let text = if i == n {
            format!(
                "#!{} sh\necho \"args: $0 $*\"\nexit 3\n",
                busybox().display()
            )
        } else {
            format!("#!{}\n", name(i + 1).display())
        };
        let p = dir.file(&format!("s{i}"), text);
        executable(&p);
    }
    name(1)
}

/// Regression: a `#!` script whose interpreter is another script was refused;
/// Linux nests up to five scripts and answers `ELOOP` beyond.
fn nested_scripts_run_up_to_linux_s_depth(pf: Platform) {
    for n in [2, 5] {
        let dir = TempDir::new("nest");
        let first = script_chain(&dir, n);
        let (_, mote) = Program::new(&first)
            .on(pf)
            .args(["a", "b"])
            .same_as_native();
        assert_eq!(mote.status, 3, "{mote:?}");
        assert!(mote.stdout_text().ends_with(" a b\n"), "{mote:?}");
    }
    let dir = TempDir::new("nest");
    let first = script_chain(&dir, 6);
    assert_eq!(native_errno(&first), ELOOP);
    refused_like_linux(pf, &first, "s6", "too many levels of #! interpreters");
}

/// Regression: 1-2 MiB of arguments were refused. With an 8 MiB stack limit Linux
/// takes 2 MiB of strings and pointers, each string up to 128 KiB.
fn a_megabyte_and_a_half_of_arguments_runs(pf: Platform) {
    let arg = "a".repeat(120 << 10);
    let (_, mote) = Program::new(app("printargs"))
        .under(["prlimit", "--stack=8388608", "--"])
        .on(pf)
        .args(std::iter::repeat_n(&arg, 13))
        .same_as_native();
    assert!(mote.stdout_text().starts_with("argc=14\n"), "{mote:?}");
}

/// Beyond Linux's limit, `execve` inside the application is `E2BIG` before the old
/// program is gone: a 4 MiB stack limit leaves 1 MiB, and the shell's exec of
/// 1.2 MB fails (busybox's shell exits with 126).
fn execve_beyond_linux_s_limit_is_e2big(pf: Platform) {
    let arg = "b".repeat(100_000);
    let (_, mote) = Program::new(busybox())
        .under(["prlimit", "--stack=4194304", "--"])
        .on(pf)
        .args(["sh", "-c", "exec \"$0\" \"$@\" \"$@\" \"$@\""])
        .arg(app("printargs"))
        .args(std::iter::repeat_n(&arg, 4))
        .same_as_native();
    assert_eq!(mote.status, 126, "{mote:?}");
}

/// A copy of a dynamically linked app in `dir` whose `PT_INTERP` names `interp`
/// (at most 27 bytes, the length of `/lib64/ld-linux-x86-64.so.2`).
fn with_interp(dir: &Path, interp: &[u8]) -> PathBuf {
    const LD: &[u8] = b"/lib64/ld-linux-x86-64.so.2";
    assert!(interp.len() <= LD.len(), "{interp:?} is too long");
    let mut data = std::fs::read(app("vdso_dyn")).unwrap();
    let at = data
        .windows(LD.len())
        .position(|w| w == LD)
        .expect("vdso_dyn names the usual dynamic linker");
    data[at..at + LD.len()].fill(0);
    data[at..at + interp.len()].copy_from_slice(interp);
    let p = dir.join("prog");
    std::fs::write(&p, &data).unwrap();
    executable(&p);
    p
}

/// A directory with a short path (a patched `PT_INTERP` must fit in 27 bytes),
/// removed when dropped.
struct ShortDir(PathBuf);

impl ShortDir {
    fn new() -> Self {
        static COUNT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = PathBuf::from(format!("/tmp/ml{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir(&p).unwrap();
        ShortDir(p)
    }
}

impl Drop for ShortDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Regression: an interpreter without execute permission was blamed on the
/// program ("chmod +x" it); Linux's `EACCES` is the interpreter's.
fn an_interpreter_without_execute_permission_is_named(pf: Platform) {
    // A #! interpreter.
    let dir = TempDir::new("noexec");
    let sh = dir.file("sh", std::fs::read(busybox()).unwrap());
    std::fs::set_permissions(&sh, std::fs::Permissions::from_mode(0o644)).unwrap();
    let script = dir.file("script", format!("#!{} sh\necho hi\n", sh.display()));
    executable(&script);
    refused_like_linux(pf, &script, &sh.display().to_string(), "not executable");
    // A PT_INTERP.
    let dir = ShortDir::new();
    let ld = dir.0.join("ld");
    std::fs::copy("/lib64/ld-linux-x86-64.so.2", &ld).unwrap();
    std::fs::set_permissions(&ld, std::fs::Permissions::from_mode(0o644)).unwrap();
    let shown = ld.display().to_string();
    let prog = with_interp(&dir.0, shown.as_bytes());
    refused_like_linux(pf, &prog, &shown, "not executable");
}

/// Regression: an interpreter that is a directory, a FIFO or a device was reported
/// as missing (127, "link it -static"); Linux refuses it with `EACCES` (126).
fn an_interpreter_that_is_not_a_file_is_named(pf: Platform) {
    let dir = TempDir::new("notfile");
    let fifo = dir.path().join("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo (coreutils)");
    assert!(made.success());
    for (interp, kind) in [
        (dir.path().to_path_buf(), "a directory"),
        (fifo, "a FIFO"),
        (PathBuf::from("/dev/null"), "a character device"),
    ] {
        let script = dir.file("script", format!("#!{}\n", interp.display()));
        executable(&script);
        refused_like_linux(pf, &script, &interp.display().to_string(), kind);
    }
    let dir = TempDir::new("notfile");
    let prog = with_interp(dir.path(), b"/tmp");
    refused_like_linux(pf, &prog, "/tmp", "a directory");
}

/// An interpreter that opens but is not a program is named too, with Linux's
/// status: a `PT_INTERP` naming a text file (`EIO` when shorter than an ELF header,
/// `ELIBBAD` otherwise), a `#!` naming one (`ENOEXEC`).
fn an_interpreter_that_cannot_be_run_is_named(pf: Platform) {
    let dir = ShortDir::new();
    for (name, len) in [("short", 6), ("text", 5000)] {
        let text = dir.0.join(name);
        std::fs::write(&text, "x".repeat(len)).unwrap();
        executable(&text);
        let shown = text.display().to_string();
        let prog = with_interp(&dir.0, shown.as_bytes());
        refused_like_linux(pf, &prog, &shown, "cannot be run");
    }
    let script = dir.0.join("script");
    std::fs::write(&script, format!("#!{}/text\n", dir.0.display())).unwrap();
    executable(&script);
    assert_eq!(native_errno(&script), 8, "ENOEXEC");
    let mote = Program::new(&script).on(pf).mote();
    assert_eq!(mote.status, 126, "{mote:?}");
    let err = mote.stderr_text();
    assert!(
        err.starts_with("mote: ")
            && err.contains("its interpreter /tmp/ml")
            && err.contains("/text cannot be run"),
        "{mote:?}"
    );
}

/// Regression: control bytes and escape sequences from a file's `PT_INTERP` were
/// printed raw to the terminal.
fn control_bytes_from_a_file_are_escaped(pf: Platform) {
    let dir = TempDir::new("escape");
    let prog = with_interp(dir.path(), b"/nonexistent/\x1b[2J\x07ld");
    refused_like_linux(pf, &prog, "/nonexistent/\\x1b[2J\\x07ld", "does not exist");
}

/// Regression: `--mem` beyond the machine's memory was accepted silently (hosted)
/// or failed with "boot page tables: ENOMEM" (partition, 125G and up): it is
/// refused before anything starts, naming the machine's memory and the most to
/// ask for (the usage status, 2). Up to the machine's memory the partition boots
/// (its direct map uses 1 GiB pages where the CPU has them).
fn mem_beyond_the_machine_is_refused_with_the_figure(pf: Platform) {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("MemTotal in /proc/meminfo");
    let gib = kib >> 20;
    let program = Program::new(app("hello")).on(pf);
    let too_much = format!("{}G", gib + 1);
    let mote = program.mote_with(&["--mem", &too_much]);
    assert_eq!(mote.status, 2, "{mote:?}");
    let err = mote.stderr_text();
    assert!(
        err.starts_with("mote: --mem ")
            && err.contains("more than this machine's")
            && err.contains(&format!("give at most --mem {gib}G")),
        "{mote:?}"
    );
    assert!(mote.stdout.is_empty());
    let native = program.native();
    let mote = program.mote_with(&["--mem", &format!("{}G", gib.clamp(1, 8))]);
    mote_testsuite::assert_same(&native, &mote);
}

mote_testsuite::on_both_platforms!(
    at_phdr_ignores_a_misleading_pt_phdr,
    libc_so_prints_its_version,
    nested_scripts_run_up_to_linux_s_depth,
    a_megabyte_and_a_half_of_arguments_runs,
    execve_beyond_linux_s_limit_is_e2big,
    an_interpreter_without_execute_permission_is_named,
    an_interpreter_that_is_not_a_file_is_named,
    control_bytes_from_a_file_are_escaped,
    an_interpreter_that_cannot_be_run_is_named,
    mem_beyond_the_machine_is_refused_with_the_figure,
);
