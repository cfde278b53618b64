//! Faults and bad input: a bad pointer ends the run as SIGSEGV would natively,
//! with the output written before it kept; programs mote cannot run are refused
//! with a non-zero status and one `mote: ` line, and nothing is left behind.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use mote_testsuite::{app, has_interp, Platform, Program, Run, TempDir};

/// The values of every `0x…` hexadecimal number in `text`.
fn hex_numbers(text: &str) -> Vec<u64> {
    text.match_indices("0x")
        .filter_map(|(i, _)| {
            let digits: String = text[i + 2..]
                .chars()
                .take_while(char::is_ascii_hexdigit)
                .collect();
            u64::from_str_radix(&digits, 16).ok()
        })
        .collect()
}

fn segv_ends_with_139_naming_the_signal_and_address(pf: Platform) {
    let (native, mote) = Program::new(app("segv")).on(pf).same_as_native();
    assert_eq!(native.status, 139, "natively the program dies of SIGSEGV");
    assert_eq!(
        mote.stdout_text(),
        "segv: about to write through 0x1234\n",
        "output written before the fault must not be lost"
    );
    let stderr = mote.stderr_text();
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("mote: ") && l.contains("SIGSEGV")),
        "stderr must have a `mote: ` line naming SIGSEGV\n{mote:?}"
    );
    assert!(
        hex_numbers(&stderr).contains(&0x1234),
        "stderr must name the faulting address 0x1234\n{mote:?}"
    );
}

/// Asserts that mote refused to run the program: status 126 or 127, nothing on
/// stdout, and exactly one stderr line, which starts with `mote: `.
fn assert_refused(run: &Run) {
    assert!(
        run.status == 126 || run.status == 127,
        "a refused program ends with status 126 or 127\n{run:?}"
    );
    assert!(run.stdout.is_empty(), "nothing may reach stdout\n{run:?}");
    let stderr = run.stderr_text();
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(
        lines.len() == 1 && lines[0].starts_with("mote: ") && stderr.ends_with('\n'),
        "expected exactly one stderr line starting with `mote: `\n{run:?}"
    );
}

fn executable(path: &Path) -> PathBuf {
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).expect("chmod");
    path.to_path_buf()
}

fn non_elf_text_file_is_refused(pf: Platform) {
    let dir = TempDir::new("notelf");
    let file = executable(&dir.file("script.txt", "this is text, not a program\n"));
    assert_refused(&Program::new(file).on(pf).mote());
}

/// A well-formed ELF32 i386 executable header with one PT_LOAD program header
/// (System V gABI; i386 psABI), 84 bytes.
fn elf32_i386() -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(b"\x7fELF\x01\x01\x01\x00"); // class 32, little-endian, version 1
    b.extend_from_slice(&[0; 8]);
    b.extend_from_slice(&2u16.to_le_bytes()); // e_type: ET_EXEC
    b.extend_from_slice(&3u16.to_le_bytes()); // e_machine: EM_386
    b.extend_from_slice(&1u32.to_le_bytes()); // e_version
    b.extend_from_slice(&0x0804_8054u32.to_le_bytes()); // e_entry
    b.extend_from_slice(&52u32.to_le_bytes()); // e_phoff
    b.extend_from_slice(&0u32.to_le_bytes()); // e_shoff
    b.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    b.extend_from_slice(&52u16.to_le_bytes()); // e_ehsize
    b.extend_from_slice(&32u16.to_le_bytes()); // e_phentsize
    b.extend_from_slice(&1u16.to_le_bytes()); // e_phnum
    b.extend_from_slice(&[0; 6]); // e_shentsize, e_shnum, e_shstrndx
    assert_eq!(b.len(), 52);
    for word in [1u32, 0, 0x0804_8000, 0x0804_8000, 84, 84, 5, 0x1000] {
        b.extend_from_slice(&word.to_le_bytes()); // PT_LOAD, R+X, whole file
    }
    b
}

fn elf32_is_refused(pf: Platform) {
    let dir = TempDir::new("elf32");
    let file = executable(&dir.file("i386", elf32_i386()));
    assert_refused(&Program::new(file).on(pf).mote());
}

fn missing_file_is_refused(pf: Platform) {
    let dir = TempDir::new("missing");
    assert_refused(
        &Program::new(dir.path().join("no-such-program"))
            .on(pf)
            .mote(),
    );
}

fn truncated_elf_is_refused(pf: Platform) {
    let dir = TempDir::new("truncated");
    let hello = fs::read(app("hello")).expect("read hello");
    let half = executable(&dir.file("hello-half", &hello[..hello.len() / 2]));
    assert_refused(&Program::new(half).on(pf).mote());
}

fn elf_truncated_inside_its_header_is_refused(pf: Platform) {
    let dir = TempDir::new("truncated-header");
    let hello = fs::read(app("hello")).expect("read hello");
    let stub = executable(&dir.file("hello-40", &hello[..40]));
    assert_refused(&Program::new(stub).on(pf).mote());
}

fn directory_is_refused(pf: Platform) {
    let dir = TempDir::new("directory");
    assert_refused(&Program::new(dir.path()).on(pf).mote());
}

/// A dynamically linked program whose interpreter is missing (built for another
/// system) is refused by name, with the shell's "not found" status.
fn dynamic_elf_with_a_missing_interpreter_is_refused(pf: Platform) {
    let dynamic = ["/bin/true", "/usr/bin/true", "/bin/ls", "/usr/bin/env"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| fs::read(p).map(|b| has_interp(&b)).unwrap_or(false))
        .expect("no dynamically linked program found among /bin/true, /usr/bin/true, /bin/ls, /usr/bin/env");
    let mut data = fs::read(&dynamic).unwrap();
    let name = b"/lib64/ld-linux-x86-64.so.2";
    let at = data
        .windows(name.len())
        .position(|w| w == name)
        .expect("the usual x86_64 interpreter name");
    data[at..at + name.len()].copy_from_slice(b"/lib64/ld-missing-x86-64.so");
    let dir = TempDir::new("missing-interp");
    let prog = dir.file("other-system", &data);
    fs::set_permissions(&prog, fs::Permissions::from_mode(0o755)).unwrap();
    let run = Program::new(&prog).on(pf).mote();
    assert_refused(&run);
    assert_eq!(run.status, 127);
    assert!(
        run.stderr_text().contains("/lib64/ld-missing-x86-64.so"),
        "{}",
        run.stderr_text()
    );
}

/// Regression: an application that closed its stderr took mote's crash report
/// with it (the application's fd 2 is the proxy's). The report goes to the stderr
/// mote was started with.
fn crash_report_survives_the_application_closing_stderr(pf: Platform) {
    let prog = Program::new(app("segv_nostderr")).on(pf);
    let native = prog.native();
    let mote = prog.mote();
    assert_eq!(native.status, 139);
    assert_eq!(mote.status, 139, "{mote:?}");
    assert_eq!(mote.stdout, native.stdout);
    let err = mote.stderr_text();
    assert!(err.contains("SIGSEGV") && err.contains("0x1234"), "{err}");
}

mote_testsuite::on_both_platforms!(
    segv_ends_with_139_naming_the_signal_and_address,
    non_elf_text_file_is_refused,
    elf32_is_refused,
    missing_file_is_refused,
    truncated_elf_is_refused,
    elf_truncated_inside_its_header_is_refused,
    directory_is_refused,
    dynamic_elf_with_a_missing_interpreter_is_refused,
    crash_report_survives_the_application_closing_stderr,
);
