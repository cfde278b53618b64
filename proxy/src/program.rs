//! Finding the program to run and refusing what mote cannot run, before any
//! partition exists: PATH lookup as a shell does it, and a pre-check of the ELF
//! headers (64-bit, little-endian x86_64 executable, static or static-PIE, every
//! loadable segment inside the file).
//!
//! Each refusal is one line and the shell's status: 127 when the program is not
//! found, 126 when it is found but cannot be executed.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use goblin::container::{Container, Ctx, Endian};
use goblin::elf::header::{self, EI_CLASS, EI_DATA, ELFCLASS32, ELFCLASS64, ELFDATA2LSB};
use goblin::elf::program_header::{ProgramHeader, PT_INTERP, PT_LOAD};

/// Exit status when the program cannot be executed (as a shell reports it).
pub const EXIT_CANNOT_EXECUTE: i32 = 126;
/// Exit status when the program is not found.
pub const EXIT_NOT_FOUND: i32 = 127;

/// PATH a shell uses when the environment has none.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// How the executable is linked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElfKind {
    /// `ET_EXEC` without an interpreter.
    Static,
    /// `ET_DYN` without an interpreter.
    StaticPie,
    /// Needs its program interpreter (`PT_INTERP`, the dynamic linker), which
    /// libos loads beside it.
    Dynamic,
    /// A `#!` script; libos runs its interpreter (which is checked here).
    Script,
}

/// A program that passed every check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Program {
    /// The path libos opens (as found in PATH, or as given when it contains '/').
    pub path: PathBuf,
    pub kind: ElfKind,
    /// Entry point (relative to the load base for static-PIE).
    pub entry: u64,
}

/// Why the program cannot run. `Display` is the reason after "mote: NAME: ".
#[derive(Debug, thiserror::Error)]
pub enum ProgramError {
    #[error("command not found")]
    NotInPath,
    #[error("no such file")]
    NoSuchFile,
    #[error("is a directory")]
    Directory,
    #[error("not a regular file")]
    NotRegular,
    #[error("permission denied (not executable)")]
    NotExecutable,
    #[error("cannot read: {0}")]
    Io(#[from] io::Error),
    #[error("not an ELF file")]
    NotElf,
    #[error("32-bit ELF; mote runs x86_64 (64-bit) programs")]
    Elf32,
    #[error("not an x86_64 ELF (invalid ELF class {0})")]
    BadClass(u8),
    #[error("big-endian ELF; mote runs x86_64 programs")]
    BigEndian,
    #[error("not an x86_64 ELF (machine: {0})")]
    Machine(&'static str),
    #[error("not an executable (ELF type {0})")]
    NotExecutableType(&'static str),
    #[error("shared library, not an executable (entry point 0)")]
    SharedLibrary,
    #[error("truncated ELF file ({0})")]
    Truncated(String),
    #[error("malformed ELF file ({0})")]
    Malformed(String),
    #[error(
        "its interpreter {0} does not exist (the program was built for another system; run it \
         where its dynamic linker is installed, or link it -static)"
    )]
    NoInterpreter(String),
    #[error("permission denied: its interpreter {0} is {1}, not a program")]
    InterpreterNotRegular(String, &'static str),
    #[error("permission denied: its interpreter {0} is not executable (chmod +x it)")]
    InterpreterNotExecutable(String),
    #[error("its interpreter {0} cannot be run: {1}")]
    Interpreter(String, Box<ProgramError>),
    #[error(
        "too many levels of #! interpreters: {0} is script number {n} in the chain, Linux allows \
         {SCRIPT_DEPTH_MAX} (ELOOP); run a shorter chain",
        n = SCRIPT_DEPTH_MAX + 1
    )]
    ScriptLoop(String),
}

/// Most `#!` scripts in a chain (Linux's `exec_binprm` depth), shared with the
/// other side of the launch.
pub use mote_abi::exec::SCRIPT_DEPTH_MAX;

/// `bytes` (a path a file or the user gave) made safe to print on a terminal:
/// control characters (escape sequences included) become `\xNN`, a backslash
/// `\\`, and bytes that are not UTF-8 `\xNN`.
pub fn escape(bytes: &[u8]) -> String {
    mote_abi::exec::Escaped(bytes).to_string()
}

impl ProgramError {
    /// The shell's exit status for this refusal.
    pub fn exit_status(&self) -> i32 {
        match self {
            ProgramError::NotInPath | ProgramError::NoSuchFile | ProgramError::NoInterpreter(_) => {
                EXIT_NOT_FOUND
            }
            _ => EXIT_CANNOT_EXECUTE,
        }
    }
}

/// Find `name` and check it: the whole pre-flight of `mote run`.
pub fn prepare(name: &OsStr) -> Result<Program, ProgramError> {
    let path = resolve(name, std::env::var_os("PATH").as_deref())?;
    // A `#!` script runs its interpreter, as execve does, which may itself be a
    // script, up to Linux's depth; the last must be a program mote can run.
    let mut current = path.clone();
    let mut script = path.clone();
    for depth in 0..=SCRIPT_DEPTH_MAX {
        match check_elf(&current) {
            Err(ProgramError::NotElf) if shebang_interpreter(&current).is_some() => {
                let interp = shebang_interpreter(&current).expect("checked");
                check_interpreter(&interp)?;
                script = std::mem::replace(&mut current, interp);
            }
            // The fault of a `#!` interpreter that is neither a script nor a
            // program mote can run is the interpreter's (execve: ENOEXEC, 126).
            Err(e) if depth > 0 && e.exit_status() == EXIT_CANNOT_EXECUTE => {
                return Err(ProgramError::Interpreter(
                    escape(current.as_os_str().as_bytes()),
                    Box::new(e),
                ))
            }
            r => {
                let (kind, entry) = r?;
                let kind = if depth == 0 { kind } else { ElfKind::Script };
                return Ok(Program { path, kind, entry });
            }
        }
    }
    // `script` is the sixth `#!` script of the chain.
    Err(ProgramError::ScriptLoop(escape(
        script.as_os_str().as_bytes(),
    )))
}

/// An interpreter (`PT_INTERP` or `#!`) Linux would open: it exists (else 127), is
/// a regular file and executable (else `EACCES`, 126, as `open_exec` refuses it).
fn check_interpreter(p: &Path) -> Result<(), ProgramError> {
    let shown = || escape(p.as_os_str().as_bytes());
    let md = match std::fs::metadata(p) {
        Ok(md) => md,
        Err(e)
            if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR) =>
        {
            return Err(ProgramError::NoInterpreter(shown()))
        }
        Err(e) => return Err(ProgramError::Io(e)),
    };
    if !md.is_file() {
        return Err(ProgramError::InterpreterNotRegular(shown(), file_kind(&md)));
    }
    rustix::fs::access(p, rustix::fs::Access::EXEC_OK)
        .map_err(|_| ProgramError::InterpreterNotExecutable(shown()))
}

/// What a non-regular file is, for messages.
fn file_kind(md: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = md.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// The interpreter a `#!` line names, if the file starts with one.
fn shebang_interpreter(path: &Path) -> Option<PathBuf> {
    let mut head = [0u8; 256];
    let n = File::open(path).ok()?.read(&mut head).ok()?;
    let line = head[..n].strip_prefix(b"#!")?;
    let line = &line[..line.iter().position(|&b| b == b'\n').unwrap_or(line.len())];
    let word = line
        .split(|b| b.is_ascii_whitespace())
        .find(|w| !w.is_empty())?;
    Some(PathBuf::from(std::ffi::OsStr::from_bytes(word)))
}

/// Look `name` up like a shell: with a '/', as is; otherwise the first executable
/// regular file `DIR/name` over the entries of `path_var` (an empty entry is the
/// current directory; no PATH at all means `DEFAULT_PATH`).
pub fn resolve(name: &OsStr, path_var: Option<&OsStr>) -> Result<PathBuf, ProgramError> {
    if name.is_empty() {
        return Err(ProgramError::NoSuchFile);
    }
    if name.as_bytes().contains(&b'/') {
        let p = PathBuf::from(name);
        check_executable(&p)?;
        return Ok(p);
    }
    let path_var = path_var.unwrap_or(OsStr::new(DEFAULT_PATH));
    let mut not_executable = None;
    for dir in path_var.as_bytes().split(|&b| b == b':') {
        let dir = if dir.is_empty() {
            Path::new(".")
        } else {
            Path::new(OsStr::from_bytes(dir))
        };
        let candidate = dir.join(name);
        match check_executable(&candidate) {
            Ok(()) => return Ok(candidate),
            // Like bash: a file that exists but cannot be executed is remembered and
            // reported if nothing better turns up later in PATH.
            Err(e @ ProgramError::NotExecutable) if not_executable.is_none() => {
                not_executable = Some(e)
            }
            Err(_) => {}
        }
    }
    Err(not_executable.unwrap_or(ProgramError::NotInPath))
}

/// An existing, executable regular file (by the caller's real permissions).
fn check_executable(p: &Path) -> Result<(), ProgramError> {
    let md = match std::fs::metadata(p) {
        Ok(md) => md,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(ProgramError::NoSuchFile),
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => return Err(ProgramError::NoSuchFile),
        Err(e) => return Err(ProgramError::Io(e)),
    };
    if md.is_dir() {
        return Err(ProgramError::Directory);
    }
    if !md.is_file() {
        return Err(ProgramError::NotRegular);
    }
    rustix::fs::access(p, rustix::fs::Access::EXEC_OK).map_err(|_| ProgramError::NotExecutable)
}

/// Check the ELF headers of `path`: returns how it is linked and its entry point.
pub fn check_elf(path: &Path) -> Result<(ElfKind, u64), ProgramError> {
    let file = File::open(path)?;
    let file_len = file.metadata()?.len();
    let mut ehdr = Vec::with_capacity(header::header64::SIZEOF_EHDR);
    (&file)
        .take(header::header64::SIZEOF_EHDR as u64)
        .read_to_end(&mut ehdr)?;
    if ehdr.len() < header::SELFMAG || &ehdr[..header::SELFMAG] != header::ELFMAG {
        return Err(ProgramError::NotElf);
    }
    if ehdr.len() <= EI_DATA {
        return Err(ProgramError::Truncated("ELF identification".into()));
    }
    match ehdr[EI_CLASS] {
        ELFCLASS64 => {}
        ELFCLASS32 => return Err(ProgramError::Elf32),
        c => return Err(ProgramError::BadClass(c)),
    }
    if ehdr[EI_DATA] != ELFDATA2LSB {
        return Err(ProgramError::BigEndian);
    }
    if ehdr.len() < header::header64::SIZEOF_EHDR {
        return Err(ProgramError::Truncated("ELF header".into()));
    }
    let h = goblin::elf::Elf::parse_header(&ehdr)
        .map_err(|e| ProgramError::Malformed(e.to_string()))?;
    if h.e_machine != header::EM_X86_64 {
        return Err(ProgramError::Machine(header::machine_to_str(h.e_machine)));
    }
    let kind = match h.e_type {
        header::ET_EXEC => ElfKind::Static,
        header::ET_DYN => ElfKind::StaticPie,
        t => return Err(ProgramError::NotExecutableType(header::et_to_str(t))),
    };

    let ctx = Ctx::new(Container::Big, Endian::Little);
    let phent = ProgramHeader::size(ctx);
    if h.e_phnum == 0 {
        return Err(ProgramError::Malformed("no program headers".into()));
    }
    if usize::from(h.e_phentsize) != phent {
        return Err(ProgramError::Malformed(format!(
            "program header size {}, expected {phent}",
            h.e_phentsize
        )));
    }
    if h.e_phnum == u16::MAX {
        return Err(ProgramError::Malformed("too many program headers".into()));
    }
    let ph_bytes = u64::from(h.e_phnum) * phent as u64;
    if h.e_phoff
        .checked_add(ph_bytes)
        .is_none_or(|end| end > file_len)
    {
        return Err(ProgramError::Truncated(
            "program headers beyond end of file".into(),
        ));
    }
    let mut buf = vec![0u8; ph_bytes as usize];
    file.read_exact_at(&mut buf, h.e_phoff)?;
    let phdrs = ProgramHeader::parse(&buf, 0, usize::from(h.e_phnum), ctx)
        .map_err(|e| ProgramError::Malformed(e.to_string()))?;

    let mut loads = 0;
    let mut kind = kind;
    for ph in &phdrs {
        match ph.p_type {
            PT_INTERP => {
                let len = ph.p_filesz.min(4096);
                let mut interp = vec![0u8; len as usize];
                file.read_exact_at(&mut interp, ph.p_offset).map_err(|_| {
                    ProgramError::Truncated("interpreter name beyond end of file".into())
                })?;
                let end = interp.iter().position(|&b| b == 0).unwrap_or(interp.len());
                check_interpreter(Path::new(OsStr::from_bytes(&interp[..end])))?;
                kind = ElfKind::Dynamic;
            }
            PT_LOAD => {
                loads += 1;
                if ph
                    .p_offset
                    .checked_add(ph.p_filesz)
                    .is_none_or(|end| end > file_len)
                {
                    return Err(ProgramError::Truncated(format!(
                        "segment at offset {:#x}, {:#x} bytes, beyond end of file ({:#x} bytes)",
                        ph.p_offset, ph.p_filesz, file_len
                    )));
                }
                if ph.p_filesz > ph.p_memsz {
                    return Err(ProgramError::Malformed(format!(
                        "segment at {:#x} has more file bytes than memory bytes",
                        ph.p_vaddr
                    )));
                }
            }
            _ => {}
        }
    }
    if loads == 0 {
        return Err(ProgramError::Malformed("no loadable segments".into()));
    }
    if kind != ElfKind::Static && h.e_entry == 0 {
        return Err(ProgramError::SharedLibrary);
    }
    Ok((kind, h.e_entry))
}

/// The one-line refusal for `name` (as the user typed it).
pub fn refusal(name: &OsStr, e: &ProgramError) -> String {
    format!("mote: {}: {e}", escape(name.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;
    use std::os::unix::fs::PermissionsExt;

    fn os(s: &str) -> OsString {
        OsString::from(s)
    }

    struct TempDir(PathBuf);
    impl TempDir {
        fn new(tag: &str) -> TempDir {
            let p = std::env::temp_dir().join(format!("mote-prog-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }
        fn file(&self, name: &str, data: &[u8], mode: u32) -> PathBuf {
            let p = self.0.join(name);
            std::fs::write(&p, data).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            p
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn busybox() -> Option<PathBuf> {
        ["/bin/busybox", "/usr/bin/busybox"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
    }

    #[test]
    fn path_lookup_like_a_shell() {
        let a = TempDir::new("path-a");
        let b = TempDir::new("path-b");
        a.file("tool", b"x", 0o644); // not executable: skipped, remembered
        let exe = b.file("tool", b"x", 0o755);
        std::fs::create_dir(a.0.join("dirtool")).unwrap();
        let path = OsString::from(format!("{}:{}", a.0.display(), b.0.display()));
        assert_eq!(resolve(&os("tool"), Some(&path)).unwrap(), exe);
        assert!(matches!(
            resolve(&os("nope"), Some(&path)),
            Err(ProgramError::NotInPath)
        ));
        assert!(matches!(
            resolve(&os("dirtool"), Some(&path)),
            Err(ProgramError::NotInPath)
        ));

        // Only a non-executable match: permission denied (126), like bash.
        let only_a = a.0.clone().into_os_string();
        let e = resolve(&os("tool"), Some(&only_a)).unwrap_err();
        assert!(matches!(e, ProgramError::NotExecutable));
        assert_eq!(e.exit_status(), 126);
        assert_eq!(ProgramError::NotInPath.exit_status(), 127);

        // A name with a slash is used as is.
        let direct = exe.clone().into_os_string();
        assert_eq!(resolve(&direct, Some(OsStr::new(""))).unwrap(), exe);
        let e = resolve(&os("./definitely-not-here"), Some(&path)).unwrap_err();
        assert_eq!(
            refusal(&os("./definitely-not-here"), &e),
            "mote: ./definitely-not-here: no such file"
        );
        assert_eq!(e.exit_status(), 127);
        let e = resolve(a.0.as_os_str(), None).unwrap_err();
        assert!(matches!(e, ProgramError::Directory));
    }

    #[test]
    fn empty_path_entry_is_the_current_directory() {
        let got = resolve(&os("sh"), Some(OsStr::new(":/bin"))).unwrap();
        // Current directory (the crate dir during tests) has no "sh".
        assert_eq!(got, Path::new("/bin/sh"));
        assert!(resolve(&os("sh"), None).is_ok(), "default PATH has sh");
    }

    #[test]
    fn static_busybox_is_accepted() {
        let Some(bb) = busybox() else { return };
        let (kind, entry) = check_elf(&bb).unwrap();
        assert_eq!(kind, ElfKind::Static);
        assert_ne!(entry, 0);
    }

    #[test]
    fn dynamic_ls_is_accepted() {
        let (kind, entry) = check_elf(Path::new("/bin/ls")).unwrap();
        assert_eq!(kind, ElfKind::Dynamic);
        assert_ne!(entry, 0);
    }

    #[test]
    fn missing_interpreter_is_refused_by_name() {
        let dir = std::env::temp_dir().join(format!("mote-interp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut data = std::fs::read("/bin/ls").unwrap();
        let at = data
            .windows(27)
            .position(|w| w == b"/lib64/ld-linux-x86-64.so.2")
            .unwrap();
        data[at..at + 27].copy_from_slice(b"/lib64/ld-missing-x86-64.so");
        let f = dir.join("ls-other");
        std::fs::write(&f, &data).unwrap();
        let e = check_elf(&f).unwrap_err();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(matches!(&e, ProgramError::NoInterpreter(i) if i == "/lib64/ld-missing-x86-64.so"));
        assert_eq!(e.exit_status(), 127);
    }

    #[test]
    fn scripts_run_through_their_interpreter() {
        let d = TempDir::new("shebang");
        let p = d.file("script", b"#!/bin/sh -e\necho hi\n", 0o755);
        let prog = prepare(p.as_os_str()).unwrap();
        assert_eq!(prog.kind, ElfKind::Script);
        let q = d.file("other", b"#!/nonexistent/shell\n", 0o755);
        assert!(matches!(
            prepare(q.as_os_str()),
            Err(ProgramError::NoInterpreter(_))
        ));
        let t = d.file("text", b"just text\n", 0o755);
        assert!(matches!(prepare(t.as_os_str()), Err(ProgramError::NotElf)));
    }

    #[test]
    fn nested_scripts_and_unusable_interpreters() {
        let d = TempDir::new("nested");
        let last = d.file("s3", b"#!/bin/sh\necho hi\n", 0o755);
        let mid = d.file("s2", format!("#!{}\n", last.display()).as_bytes(), 0o755);
        let first = d.file("s1", format!("#!{}\n", mid.display()).as_bytes(), 0o755);
        assert_eq!(prepare(first.as_os_str()).unwrap().kind, ElfKind::Script);
        let dir = d.file("dir", format!("#!{}\n", d.0.display()).as_bytes(), 0o755);
        let e = prepare(dir.as_os_str()).unwrap_err();
        assert!(
            matches!(e, ProgramError::InterpreterNotRegular(_, "a directory")),
            "{e}"
        );
        assert_eq!(e.exit_status(), 126);
        let noexec = d.file("noexec", b"#!/bin/sh\n", 0o644);
        let q = d.file("q", format!("#!{}\n", noexec.display()).as_bytes(), 0o755);
        let e = prepare(q.as_os_str()).unwrap_err();
        assert!(
            matches!(e, ProgramError::InterpreterNotExecutable(_)),
            "{e}"
        );
        assert_eq!(e.exit_status(), 126);
        let esc = d.file("esc", b"#!/nonexistent/\x1b[31m\n", 0o755);
        let e = prepare(esc.as_os_str()).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/\\x1b[31m"), "{e}");
        assert_eq!(escape(b"a\\\xff"), "a\\\\\\xff");
    }

    #[test]
    fn text_file_is_not_elf() {
        let d = TempDir::new("text");
        let p = d.file("script", b"#!/bin/sh\necho hi\n", 0o755);
        assert!(matches!(check_elf(&p), Err(ProgramError::NotElf)));
        let p = d.file("empty", b"", 0o755);
        assert!(matches!(check_elf(&p), Err(ProgramError::NotElf)));
        assert_eq!(
            refusal(&os("./script"), &ProgramError::NotElf),
            "mote: ./script: not an ELF file"
        );
    }

    #[test]
    fn elf32_header_is_refused() {
        let d = TempDir::new("elf32");
        let mut h = vec![0u8; 52];
        h[..4].copy_from_slice(b"\x7fELF");
        h[EI_CLASS] = ELFCLASS32;
        h[EI_DATA] = ELFDATA2LSB;
        h[6] = 1;
        h[16] = 2; // ET_EXEC
        h[18] = 3; // EM_386
        let p = d.file("a32", &h, 0o755);
        let e = check_elf(&p).unwrap_err();
        assert!(matches!(e, ProgramError::Elf32), "{e}");
        assert!(e.to_string().starts_with("32-bit ELF"));
    }

    #[test]
    fn other_machines_and_types_are_refused() {
        let Some(bb) = busybox() else { return };
        let d = TempDir::new("machine");
        let mut data = std::fs::read(&bb).unwrap();
        data[18..20].copy_from_slice(&header::EM_AARCH64.to_le_bytes());
        let p = d.file("arm", &data, 0o755);
        assert!(matches!(
            check_elf(&p),
            Err(ProgramError::Machine("ARM64")) | Err(ProgramError::Machine(_))
        ));
        data[18..20].copy_from_slice(&header::EM_X86_64.to_le_bytes());
        data[16..18].copy_from_slice(&header::ET_REL.to_le_bytes());
        let p = d.file("rel", &data, 0o755);
        assert!(matches!(
            check_elf(&p),
            Err(ProgramError::NotExecutableType(_))
        ));
    }

    #[test]
    fn truncated_copies_are_refused() {
        let Some(bb) = busybox() else { return };
        let data = std::fs::read(&bb).unwrap();
        let d = TempDir::new("trunc");
        // Cut inside the first loadable segment.
        let p = d.file("half", &data[..data.len() / 2], 0o755);
        let e = check_elf(&p).unwrap_err();
        assert!(matches!(e, ProgramError::Truncated(_)), "{e}");
        assert!(e.to_string().starts_with("truncated ELF file"));
        // Cut inside the program headers.
        let p = d.file("hdr", &data[..80], 0o755);
        assert!(matches!(check_elf(&p), Err(ProgramError::Truncated(_))));
        // Cut inside the ELF header.
        let p = d.file("ehdr", &data[..40], 0o755);
        assert!(matches!(check_elf(&p), Err(ProgramError::Truncated(_))));
    }

    #[test]
    fn prepare_reports_not_found_and_checks_elf() {
        let e = prepare(&os("mote-no-such-program-anywhere")).unwrap_err();
        assert_eq!(e.to_string(), "command not found");
        assert_eq!(e.exit_status(), 127);
        if let Some(bb) = busybox() {
            let prog = prepare(bb.as_os_str()).unwrap();
            assert_eq!(prog.path, bb);
            assert_eq!(prog.kind, ElfKind::Static);
        }
    }
}
