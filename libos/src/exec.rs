//! Starting the application: open the program through the proxy, decide with
//! [`elf::plan`], map its segments and fill them with forwarded `pread64`s straight
//! into place, set up brk and the initial stack, and hand back where to jump.
//!
//! File access goes through [`ExecFile`] so the loading logic is tested on the host
//! with a file the test provides; the partition uses [`ForwardedFile`].

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use mote_abi::boot::{parse_strings, BootInfo};
use mote_abi::errno::Errno;
use mote_abi::layout::{INTERP_BASE, PAGE_SIZE, USER_PIE_BASE, USER_STACK_TOP};
use syscalls::Sysno;

use crate::elf::{self, LoadError, LoadPlan, HEAD_LEN};
use crate::mm::{read_file_into, VmaKind};
use crate::platform::Platform;
use crate::process::Process;
use crate::stack::{self, Auxv, StackParams, TooBig, STACK_SIZE};
use crate::uapi::fcntl::{AT_FDCWD, O_CLOEXEC, O_RDONLY};
use crate::uapi::mman::{PROT_EXEC, PROT_READ, PROT_WRITE};
use crate::uapi::stat;

/// Where the application starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// First instruction.
    pub rip: u64,
    /// Initial stack pointer (at `argc`).
    pub rsp: u64,
}

/// The program to run, its arguments and environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecArgs<'a> {
    /// Path to open (resolved by the proxy); also `AT_EXECFN`.
    pub path: &'a [u8],
    pub argv: Vec<&'a [u8]>,
    pub envp: Vec<&'a [u8]>,
}

impl<'a> ExecArgs<'a> {
    /// Decode the proxy's argv/envp block (`mote_abi::boot::parse_strings`): `argc`
    /// strings, the first being the path to open and the rest the application's
    /// argv, then `envc` environment strings.
    pub fn from_block(block: &'a [u8], argc: u32, envc: u32) -> Option<Self> {
        // Every string must be NUL-terminated inside the block.
        let nuls = |b: &[u8]| b.iter().filter(|&&c| c == 0).count();
        let (strs, used) = parse_strings(block, argc as usize);
        let strs: Vec<&[u8]> = strs.collect();
        let (env, env_used) = parse_strings(&block[used..], envc as usize);
        let envp: Vec<&[u8]> = env.collect();
        if argc < 2
            || nuls(&block[..used]) != argc as usize
            || nuls(&block[used..used + env_used]) != envc as usize
        {
            return None;
        }
        Some(ExecArgs {
            path: strs[0],
            argv: strs[1..].to_vec(),
            envp,
        })
    }
}

/// What went wrong starting the program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExecErrorKind {
    /// The argv/envp block from the proxy does not decode.
    BadArgs,
    /// `openat` failed.
    Open(Errno),
    /// Not a regular file (a directory, a device...): its `st_mode`.
    NotRegular(u32),
    /// No execute permission.
    NotExecutable,
    /// `fstat` or `pread64` failed.
    Read(Errno),
    /// The ELF file cannot be run.
    Load(LoadError),
    /// The program's interpreter (`PT_INTERP` or a `#!` line's; its path as the
    /// file names it) cannot be opened, or (`ELOOP`) `#!` scripts nest deeper than
    /// Linux allows.
    Interp(Vec<u8>, Errno),
    /// The interpreter is not a regular file (its `st_mode`): `EACCES`.
    InterpNotRegular(Vec<u8>, u32),
    /// The interpreter has no execute permission: `EACCES`.
    InterpNotExecutable(Vec<u8>),
    /// The interpreter opens but cannot be run, with the errno Linux gives
    /// (`ELIBBAD` for a `PT_INTERP`, `ENOEXEC` for a `#!` interpreter).
    InterpLoad(Vec<u8>, LoadError, Errno),
    /// Mapping the program or its stack failed (partition memory exhausted).
    Memory(Errno),
    /// Arguments and environment are too large.
    TooBig(TooBig),
}

/// Why the program could not be started: the path and the reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecError {
    pub path: String,
    pub kind: ExecErrorKind,
}

impl ExecError {
    /// The exit status a shell reports for this failure: 127 when the program does
    /// not exist, 126 when it cannot be executed.
    pub fn status(&self) -> i32 {
        match self.kind {
            ExecErrorKind::Open(Errno::ENOENT)
            | ExecErrorKind::Open(Errno::ENOTDIR)
            | ExecErrorKind::Interp(_, Errno::ENOENT)
            | ExecErrorKind::Interp(_, Errno::ENOTDIR) => 127,
            _ => 126,
        }
    }
}

impl fmt::Display for ExecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ExecErrorKind::*;
        write!(f, "{}: ", escape(self.path.as_bytes()))?;
        match &self.kind {
            BadArgs => write!(
                f,
                "the argument block from the proxy is malformed (a mote bug)"
            ),
            Open(Errno::ENOENT) => write!(f, "no such file or directory"),
            Open(Errno::EACCES) => write!(
                f,
                "permission denied (check the file's and its directories' permissions)"
            ),
            Open(e) => write!(f, "cannot open it ({e:?})"),
            NotRegular(mode) => write!(f, "permission denied: it is {}", file_kind(*mode)),
            NotExecutable => write!(
                f,
                "permission denied: the file is not executable (chmod +x)"
            ),
            Read(e) => write!(f, "cannot read it ({e:?})"),
            Load(e) => write!(f, "{e}"),
            Interp(path, Errno::ENOENT) => write!(
                f,
                "its interpreter {} does not exist (the program was built for another system; run it where its dynamic linker is installed, or link it -static)",
                escape(path)
            ),
            Interp(path, Errno::ELOOP) => write!(
                f,
                "too many levels of #! interpreters: {} is script number {} in the chain, Linux allows {SCRIPT_DEPTH_MAX} (ELOOP); run a shorter chain",
                escape(path),
                SCRIPT_DEPTH_MAX + 1
            ),
            Interp(path, e) => write!(f, "cannot open its interpreter {} ({e:?})", escape(path)),
            InterpNotRegular(path, mode) => write!(
                f,
                "permission denied: its interpreter {} is {}, not a program",
                escape(path),
                file_kind(*mode)
            ),
            InterpLoad(path, e, _) => {
                write!(f, "its interpreter {} cannot be run: {e}", escape(path))
            }
            InterpNotExecutable(path) => write!(
                f,
                "permission denied: its interpreter {} is not executable (chmod +x it)",
                escape(path)
            ),
            Memory(e) => write!(
                f,
                "not enough partition memory to load it ({e:?}); give the run more with --mem"
            ),
            TooBig(e) => write!(f, "{e}"),
        }
    }
}

/// `path` (bytes a file or the user gave) made safe to print on a terminal: control
/// bytes (escape sequences included) become `\xNN`, a backslash `\\`, and bytes
/// that are not UTF-8 `\xNN`.
pub fn escape(path: &[u8]) -> String {
    alloc::format!("{}", mote_abi::exec::Escaped(path))
}

/// What a non-regular file is, for messages.
fn file_kind(mode: u32) -> &'static str {
    match mode & stat::S_IFMT {
        stat::S_IFDIR => "a directory",
        stat::S_IFCHR => "a character device",
        0o060_000 => "a block device",
        0o010_000 => "a FIFO",
        0o140_000 => "a socket",
        _ => "not a regular file",
    }
}

/// The program file, as the loader reads it.
pub trait ExecFile {
    /// Size in bytes.
    fn size(&self) -> u64;
    /// Read up to `buf.len()` bytes at `offset` into `buf`.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize, Errno>;
    /// Read up to `buf.len()` bytes at offset 0 into `buf`.
    fn read_head(&self, buf: &mut [u8]) -> Result<usize, Errno> {
        self.read_at(buf, 0)
    }
    /// The fd the proxy reads segments from (forwarded `pread64` into user memory).
    fn fd(&self) -> u64;
}

/// The program opened in the proxy with forwarded calls.
pub struct ForwardedFile<'p, P: Platform> {
    p: &'p P,
    fd: u64,
    size: u64,
}

impl<'p, P: Platform> ForwardedFile<'p, P> {
    /// `newfstatat` first — a directory, FIFO or device is refused with `EACCES`
    /// without being opened (opening a FIFO would block), as Linux's `may_open`
    /// refuses them for `MAY_EXEC` — then `openat(AT_FDCWD, path,
    /// O_RDONLY|O_CLOEXEC)`. The path and the `struct stat` live in libos's heap,
    /// which is in the unified address space.
    pub fn open(p: &'p P, path: &[u8]) -> Result<Self, ExecErrorKind> {
        let mut cpath = Vec::with_capacity(path.len() + 1);
        cpath.extend_from_slice(path);
        cpath.push(0);
        let st = vec![0u8; stat::SIZE];
        let r = p.forward(
            Sysno::newfstatat as u64,
            [AT_FDCWD, p.addr_of(&cpath), p.addr_of(&st), 0, 0, 0],
        );
        if r < 0 {
            return Err(ExecErrorKind::Open(crate::errno::from_result(r)));
        }
        // The proxy wrote `st` behind the compiler's back: read it through a
        // volatile-free copy (`black_box` keeps the read from being folded away).
        let st = core::hint::black_box(st);
        let mode = u32::from_le_bytes(st[stat::ST_MODE..][..4].try_into().expect("4 bytes"));
        if mode & stat::S_IFMT != stat::S_IFREG {
            return Err(ExecErrorKind::NotRegular(mode));
        }
        if mode & 0o111 == 0 {
            return Err(ExecErrorKind::NotExecutable);
        }
        let r = p.forward(
            Sysno::openat as u64,
            [AT_FDCWD, p.addr_of(&cpath), O_RDONLY | O_CLOEXEC, 0, 0, 0],
        );
        if r < 0 {
            return Err(ExecErrorKind::Open(crate::errno::from_result(r)));
        }
        let mut f = ForwardedFile {
            p,
            fd: r as u64,
            size: 0,
        };
        // The size of what was opened (the path may have changed in between).
        let st = vec![0u8; stat::SIZE];
        let r = p.forward(Sysno::fstat as u64, [f.fd, p.addr_of(&st), 0, 0, 0, 0]);
        if r < 0 {
            return Err(ExecErrorKind::Read(crate::errno::from_result(r)));
        }
        let st = core::hint::black_box(st);
        let mode = u32::from_le_bytes(st[stat::ST_MODE..][..4].try_into().expect("4 bytes"));
        if mode & stat::S_IFMT != stat::S_IFREG {
            return Err(ExecErrorKind::NotRegular(mode));
        }
        f.size = u64::from_le_bytes(st[stat::ST_SIZE..][..8].try_into().expect("8 bytes"));
        Ok(f)
    }

    /// Open `path` as the interpreter of another file: failures name it.
    pub fn open_interp(p: &'p P, path: &[u8]) -> Result<Self, ExecErrorKind> {
        Self::open(p, path).map_err(|e| match e {
            ExecErrorKind::Open(errno) => ExecErrorKind::Interp(path.to_vec(), errno),
            ExecErrorKind::NotRegular(mode) => ExecErrorKind::InterpNotRegular(path.to_vec(), mode),
            ExecErrorKind::NotExecutable => ExecErrorKind::InterpNotExecutable(path.to_vec()),
            other => other,
        })
    }
}

impl<P: Platform> ExecFile for ForwardedFile<'_, P> {
    fn size(&self) -> u64 {
        self.size
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize, Errno> {
        let mut done = 0;
        while done < buf.len() {
            let r = self.p.forward(
                Sysno::pread64 as u64,
                [
                    self.fd,
                    self.p.addr_of(&buf[done..]),
                    (buf.len() - done) as u64,
                    offset + done as u64,
                    0,
                    0,
                ],
            );
            if r < 0 {
                return Err(crate::errno::from_result(r));
            }
            if r == 0 {
                break;
            }
            done += r as usize;
        }
        let _ = core::hint::black_box(&mut *buf);
        Ok(done)
    }
    fn fd(&self) -> u64 {
        self.fd
    }
}

impl<P: Platform> Drop for ForwardedFile<'_, P> {
    fn drop(&mut self) {
        self.p
            .forward(Sysno::close as u64, [self.fd, 0, 0, 0, 0, 0]);
    }
}

/// Longest `#!` line Linux reads (`BINPRM_BUF_SIZE`).
const SHEBANG_MAX: usize = 256;

/// A `#!` script's interpreter and its optional single argument.
fn shebang(head: &[u8]) -> Option<(Vec<u8>, Option<Vec<u8>>)> {
    let line = head.strip_prefix(b"#!")?;
    let end = line.iter().position(|&b| b == b'\n').unwrap_or(line.len());
    let line = &line[..end];
    let trim = |b: &[u8]| -> Vec<u8> {
        let s = b
            .iter()
            .position(|c| !c.is_ascii_whitespace())
            .unwrap_or(b.len());
        let e = b
            .iter()
            .rposition(|c| !c.is_ascii_whitespace())
            .map_or(s, |e| e + 1);
        b[s..e.max(s)].to_vec()
    };
    let line = trim(line);
    let split = line.iter().position(|c| c.is_ascii_whitespace());
    let (interp, arg) = match split {
        Some(i) => (line[..i].to_vec(), Some(trim(&line[i..]))),
        None => (line, None),
    };
    (!interp.is_empty()).then_some((interp, arg.filter(|a| !a.is_empty())))
}

/// Most `#!` scripts in a chain (Linux's `exec_binprm` depth), shared with the
/// other side of the launch.
pub use mote_abi::exec::SCRIPT_DEPTH_MAX;

/// What to run for `path`: itself, or for a `#!` script its interpreter with the
/// script's path as an argument — itself possibly a script, up to
/// [`SCRIPT_DEPTH_MAX`] levels, as Linux's `binfmt_script`. The program that will
/// run is checked (opened, ELF planned).
fn resolve_script<P: Platform>(
    p: &P,
    path: Vec<u8>,
    argv: Vec<Vec<u8>>,
) -> Result<(Vec<u8>, Vec<Vec<u8>>), ExecErrorKind> {
    let (mut path, mut argv) = (path, argv);
    let mut script = Vec::new();
    for depth in 0..=SCRIPT_DEPTH_MAX {
        let f = if depth == 0 {
            ForwardedFile::open(p, &path)?
        } else {
            ForwardedFile::open_interp(p, &path)?
        };
        // A `#!` interpreter that is neither a script nor an ELF: ENOEXEC, its fault.
        let blame = |e| match e {
            ExecErrorKind::Load(l) if depth > 0 => {
                ExecErrorKind::InterpLoad(path.clone(), l, Errno::ENOEXEC)
            }
            other => other,
        };
        let mut head = vec![0u8; SHEBANG_MAX.min(f.size() as usize)];
        let n = f.read_head(&mut head).map_err(ExecErrorKind::Read)?;
        let Some((interp, arg)) = shebang(&head[..n]) else {
            // An ELF: its own interpreter must open too, before the point of no
            // return (Linux opens it before `begin_new_exec`).
            if let (_, Some(ld)) = read_plan(&f, USER_PIE_BASE).map_err(blame)? {
                plan_interp(&ForwardedFile::open_interp(p, &ld)?, &ld)?;
            }
            return Ok((path, argv));
        };
        let mut v = vec![interp.clone()];
        v.extend(arg);
        v.push(path.clone());
        v.extend(argv.into_iter().skip(1));
        script = path;
        (path, argv) = (interp, v);
    }
    // `script` is the sixth `#!` script of the chain.
    Err(ExecErrorKind::Interp(script, Errno::ELOOP))
}

/// The `errno` `execve` returns for a program it cannot start.
pub fn exec_errno(kind: &ExecErrorKind) -> Errno {
    match kind {
        ExecErrorKind::Open(e) | ExecErrorKind::Read(e) => *e,
        ExecErrorKind::Interp(_, e) | ExecErrorKind::InterpLoad(_, _, e) => *e,
        ExecErrorKind::NotRegular(_)
        | ExecErrorKind::NotExecutable
        | ExecErrorKind::InterpNotRegular(..)
        | ExecErrorKind::InterpNotExecutable(_) => Errno::EACCES,
        ExecErrorKind::Load(_) | ExecErrorKind::BadArgs => Errno::ENOEXEC,
        ExecErrorKind::Memory(e) => *e,
        ExecErrorKind::TooBig(_) => Errno::E2BIG,
    }
}

/// An `execve` checked as far as it can be before the old program goes: the
/// program to load (a `#!` script's interpreter) with its arguments.
#[derive(Debug)]
pub struct Prepared {
    path: Vec<u8>,
    argv: Vec<Vec<u8>>,
    envp: Vec<Vec<u8>>,
}

/// The checks of `execve` that fail for ordinary reasons (missing file, no
/// permission, not an executable, `#!` interpreter, arguments too long), made
/// before anything of the old program is touched — before its other threads
/// end, too — so that those failures return to it with Linux's errno.
pub fn prepare<P: Platform>(
    p: &P,
    path: Vec<u8>,
    argv: Vec<Vec<u8>>,
    envp: Vec<Vec<u8>>,
) -> Result<Prepared, ExecErrorKind> {
    let (path, argv) = resolve_script(p, path, argv)?;
    stack::check_args(&argv, &envp, &path, stack::args_limit(stack_rlimit(p)))
        .map_err(ExecErrorKind::TooBig)?;
    Ok(Prepared { path, argv, envp })
}

impl Process {
    /// `execve`: replace the program in the same partition ([`prepare`], then
    /// [`Process::exec_prepared`]).
    pub fn execve<P: Platform>(
        &mut self,
        p: &P,
        path: Vec<u8>,
        argv: Vec<Vec<u8>>,
        envp: Vec<Vec<u8>>,
    ) -> Result<Entry, ExecErrorKind> {
        let x = prepare(p, path, argv, envp)?;
        Ok(self.exec_prepared(p, x))
    }

    /// Replace the program by the prepared one: past Linux's point of no
    /// return, so a failure from here ends the run, as Linux kills a process
    /// that fails there. The caller is the process's only thread.
    pub fn exec_prepared<P: Platform>(&mut self, p: &P, x: Prepared) -> Entry {
        let Prepared { path, argv, envp } = x;
        let fatal = |k: ExecErrorKind| -> ! {
            p.log(&alloc::format!(
                "execve of {} failed after the old program was gone: {k:?}",
                escape(&path)
            ));
            p.die(9, None)
        };
        close_on_exec(p);
        let user = mote_abi::layout::USER_START..mote_abi::layout::USER_END;
        if let Err(e) = self.mm.munmap(p, user.start, user.end - user.start) {
            fatal(ExecErrorKind::Memory(e));
        }
        self.signals.reset_for_exec();
        self.robust_list = (0, 0);
        self.clear_child_tid = 0;
        self.fs_base = 0;
        p.set_fs(0);
        self.patcher = crate::patch::Patcher::new(self.patcher.enabled, self.patcher.entry);
        let args = ExecArgs {
            path: &path,
            argv: argv.iter().map(Vec::as_slice).collect(),
            envp: envp.iter().map(Vec::as_slice).collect(),
        };
        let file = ForwardedFile::open(p, &path).unwrap_or_else(|k| fatal(k));
        let entry = self.load(p, &file, &args).unwrap_or_else(|k| fatal(k));
        self.exe = absolute(p, &path);
        self.forget_names();
        entry
    }
}

impl Process {
    /// Start the program named by the proxy's argv/envp `block` (see
    /// [`ExecArgs::from_block`]): returns where to enter it.
    pub fn exec_from_boot<P: Platform>(
        &mut self,
        p: &P,
        boot: &BootInfo,
        block: &[u8],
    ) -> Result<Entry, ExecError> {
        let args = ExecArgs::from_block(block, boot.argc, boot.envc).ok_or(ExecError {
            path: String::from("mote"),
            kind: ExecErrorKind::BadArgs,
        })?;
        self.exec(p, &args)
    }

    /// Open `args.path` through the proxy and load it.
    pub fn exec<P: Platform>(&mut self, p: &P, args: &ExecArgs<'_>) -> Result<Entry, ExecError> {
        let fail = |kind| ExecError {
            path: String::from_utf8_lossy(args.path).into_owned(),
            kind,
        };
        let argv: Vec<Vec<u8>> = args.argv.iter().map(|a| a.to_vec()).collect();
        let (path, argv) = resolve_script(p, args.path.to_vec(), argv).map_err(fail)?;
        let args = ExecArgs {
            path: &path,
            argv: argv.iter().map(Vec::as_slice).collect(),
            envp: args.envp.clone(),
        };
        let file = ForwardedFile::open(p, &path).map_err(fail)?;
        let entry = self.load(p, &file, &args).map_err(fail)?;
        self.exe = absolute(p, &path);
        self.forget_names();
        Ok(entry)
        // `file` is closed when dropped.
    }

    /// Load the program in `file` into the (empty) address space and build its stack.
    pub fn load<P: Platform>(
        &mut self,
        p: &P,
        file: &impl ExecFile,
        args: &ExecArgs<'_>,
    ) -> Result<Entry, ExecErrorKind> {
        if self.mm.tables_given() == 0 {
            self.mm.init(p).map_err(ExecErrorKind::Memory)?;
        }
        let (plan, interp) = read_plan(file, USER_PIE_BASE)?;
        self.map_image(p, file, &plan)?;
        self.mm.set_brk_start(plan.brk_start);
        // A dynamically linked program starts in its interpreter, which finds the
        // program through AT_PHDR/AT_ENTRY and itself through AT_BASE.
        let (start, base) = match &interp {
            None => (plan.entry, 0),
            Some(named) => {
                // A program `mote link` rewrote brings its own rewritten ld.so.
                let own = own_interp(file, args.path)
                    .and_then(|o| Some((ForwardedFile::open_interp(p, &o).ok()?, o)));
                let (ld, path) = match own {
                    Some((f, o)) => (f, o),
                    None => (ForwardedFile::open_interp(p, named)?, named.clone()),
                };
                let path = &path;
                let ip = plan_interp(&ld, path)?;
                self.map_image(p, &ld, &ip)?;
                for r in ip.regions() {
                    self.mm.label(r.start, r.end, path);
                }
                (ip.entry, ip.bias)
            }
        };

        let stack_prot = PROT_READ | PROT_WRITE | if plan.exec_stack { PROT_EXEC } else { 0 };
        self.mm
            .map_fixed(
                p,
                USER_STACK_TOP - STACK_SIZE,
                STACK_SIZE,
                stack_prot,
                VmaKind::Stack,
            )
            .map_err(ExecErrorKind::Memory)?;
        let (vdata, vdso) = crate::vdso::map(&mut self.mm, p).map_err(ExecErrorKind::Memory)?;
        self.clock.attach_vdso(p, vdata, self.direct_entry);
        let id = |nr: Sysno| {
            let r = p.forward(nr as u64, [0; 6]);
            if r < 0 {
                0
            } else {
                r as u64
            }
        };
        let aux = Auxv {
            phdr: plan.phdr,
            phent: plan.phent,
            phnum: plan.phnum,
            entry: plan.entry,
            base,
            uid: id(Sysno::getuid),
            euid: id(Sysno::geteuid),
            gid: id(Sysno::getgid),
            egid: id(Sysno::getegid),
            hwcap: self.hwcap.0,
            hwcap2: self.hwcap.1,
            minsigstksz: self.minsigstksz,
            direct_entry: self.direct_entry,
            regs_entry: self.patcher.entry,
            frame_entry: self.frame_entry,
            vdso,
        };
        let st = stack::build(
            USER_STACK_TOP,
            &StackParams {
                argv: &args.argv,
                envp: &args.envp,
                execfn: args.path,
                random: self.random,
                aux,
                args_limit: stack::args_limit(stack_rlimit(p)),
            },
        )
        .map_err(ExecErrorKind::TooBig)?;
        p.write_mem(st.rsp, &st.bytes);
        Ok(Entry {
            rip: start,
            rsp: st.rsp,
        })
    }

    /// Map the plan's regions read-write, read the file bytes into place (the rest
    /// stays zero: bss), then give each region its protection.
    fn map_image<P: Platform>(
        &mut self,
        p: &P,
        file: &impl ExecFile,
        plan: &LoadPlan,
    ) -> Result<(), ExecErrorKind> {
        let regions = plan.regions();
        for r in &regions {
            self.mm
                .map_fixed(
                    p,
                    r.start,
                    r.end - r.start,
                    PROT_READ | PROT_WRITE,
                    VmaKind::Image,
                )
                .map_err(ExecErrorKind::Memory)?;
        }
        for s in plan.segments.iter().filter(|s| s.filesz > 0) {
            read_file_into(p, file.fd(), s.vaddr, s.filesz, s.offset)
                .map_err(ExecErrorKind::Read)?;
        }
        for r in regions.iter().filter(|r| r.prot != PROT_READ | PROT_WRITE) {
            self.mm
                .mprotect(p, r.start, r.end - r.start, r.prot)
                .map_err(ExecErrorKind::Memory)?;
        }
        debug_assert!(regions.iter().all(|r| r.start.is_multiple_of(PAGE_SIZE)));
        Ok(())
    }
}

/// Plan the program interpreter (`PT_INTERP`) `path` opened as `file` at
/// `INTERP_BASE`; failures are the interpreter's, with Linux's errno (`EIO` when
/// shorter than an ELF header, else `ELIBBAD`).
fn plan_interp(file: &impl ExecFile, path: &[u8]) -> Result<LoadPlan, ExecErrorKind> {
    let blame = |l: LoadError| {
        let errno = match l {
            LoadError::TruncatedHeader { .. } => Errno::EIO,
            _ => Errno::ELIBBAD,
        };
        ExecErrorKind::InterpLoad(path.to_vec(), l, errno)
    };
    // As Linux's elf_read of the interpreter's header: a short read is EIO.
    if file.size() < 64 {
        return Err(ExecErrorKind::InterpLoad(
            path.to_vec(),
            LoadError::TruncatedHeader {
                file_size: file.size(),
            },
            Errno::EIO,
        ));
    }
    let (ip, _) = read_plan(file, INTERP_BASE).map_err(|e| match e {
        ExecErrorKind::Load(l) => blame(l),
        other => other,
    })?;
    if ip.interp.is_some() || !ip.pie {
        return Err(blame(LoadError::InterpNotLoadable));
    }
    Ok(ip)
}

/// Largest note segment [`own_interp`] reads (mote's note is 52 bytes).
const NOTES_MAX: u64 = 64 * 1024;

/// The interpreter `mote link` wrote beside the program at `path`
/// (`PATH.libs/ld-linux-x86-64.so.2`, its init stub filling its entry words
/// before ld.so's first call) when the program's mote note says to load it
/// (`F_OWN_INTERP`; natively its `PT_INTERP` runs). A file without such a note,
/// or one that cannot be read, keeps its `PT_INTERP` (`mote run` has refused a
/// malformed note already).
fn own_interp(file: &impl ExecFile, path: &[u8]) -> Option<Vec<u8>> {
    use mote_abi::note;
    let mut h = [0u8; 64];
    (file.read_at(&mut h, 0).ok()? == h.len()).then_some(())?;
    let phoff = u64::from_le_bytes(h[32..40].try_into().ok()?);
    let phnum = u64::from(u16::from_le_bytes([h[56], h[57]]));
    let mut table = vec![0u8; (phnum * 56) as usize];
    (file.read_at(&mut table, phoff).ok()? == table.len()).then_some(())?;
    for ph in table.chunks_exact(56) {
        let word = |o: usize| u64::from_le_bytes(ph[o..o + 8].try_into().expect("8 bytes"));
        if u32::from_le_bytes(ph[..4].try_into().expect("4 bytes"))
            != goblin::elf::program_header::PT_NOTE
            || word(32) > NOTES_MAX
        {
            continue;
        }
        let mut notes = vec![0u8; word(32) as usize];
        (file.read_at(&mut notes, word(8)).ok()? == notes.len()).then_some(())?;
        if let Ok(Some(pol)) = note::find(&notes) {
            if pol.flags & note::F_OWN_INTERP == 0 {
                return None;
            }
            let mut own = path.to_vec();
            own.extend_from_slice(b".libs/");
            own.extend_from_slice(note::OWN_INTERP_NAME);
            return Some(own);
        }
    }
    None
}

/// Read the head of the file and plan, reading more while the planner asks; then
/// read the interpreter's name (`PT_INTERP`), wherever in the file it lies.
fn read_plan(
    file: &impl ExecFile,
    base: u64,
) -> Result<(LoadPlan, Option<Vec<u8>>), ExecErrorKind> {
    let size = file.size();
    let mut want = HEAD_LEN.min(size as usize);
    let plan = loop {
        let mut head = vec![0u8; want];
        let n = file.read_head(&mut head).map_err(ExecErrorKind::Read)?;
        head.truncate(n);
        match elf::plan_at(&head, size, base) {
            Err(LoadError::NeedBytes(m)) if m > n && n == want => want = m,
            Err(LoadError::NeedBytes(_)) => {
                // The file shrank under us: treat as truncated.
                return Err(ExecErrorKind::Load(LoadError::TruncatedHeader {
                    file_size: n as u64,
                }));
            }
            r => break r.map_err(ExecErrorKind::Load)?,
        }
    };
    let interp = match plan.interp {
        None => None,
        Some(at) => {
            let mut raw = vec![0u8; at.len as usize];
            let n = file
                .read_at(&mut raw, at.offset)
                .map_err(ExecErrorKind::Read)?;
            if n != raw.len() {
                // As Linux's elf_read: a short read is EIO.
                return Err(ExecErrorKind::Read(Errno::EIO));
            }
            Some(
                elf::interp_name(&raw)
                    .map_err(ExecErrorKind::Load)?
                    .to_vec(),
            )
        }
    };
    Ok((plan, interp))
}

/// The application's stack limit (`RLIMIT_STACK`'s soft value, kept by the proxy):
/// the arguments' room depends on it as on Linux. `_STK_LIM` if unknown.
fn stack_rlimit<P: Platform>(p: &P) -> u64 {
    const RLIMIT_STACK: u64 = 3;
    let lim = [0u8; 16];
    let r = p.forward(
        Sysno::prlimit64 as u64,
        [0, RLIMIT_STACK, 0, p.addr_of(&lim), 0, 0],
    );
    let lim = core::hint::black_box(lim);
    if r == 0 {
        u64::from_le_bytes(lim[0..8].try_into().expect("8 bytes"))
    } else {
        stack::STK_LIM
    }
}

/// Close the application's descriptors marked close-on-exec (they live in the
/// proxy; the proxy's own are protected and answer EBADF). The open numbers
/// come from the proxy's `/proc/self/fd`, so an exec costs one `fcntl` per open
/// descriptor, not one per number below `RLIMIT_NOFILE` (up to 65,536 forwarded
/// calls where the limit is high); the numbers are tried one by one only where
/// that directory cannot be read.
fn close_on_exec<P: Platform>(p: &P) {
    const F_GETFD: u64 = 1;
    const FD_CLOEXEC: i64 = 1;
    let close_if_cloexec = |fd: u64| {
        let flags = p.forward(Sysno::fcntl as u64, [fd, F_GETFD, 0, 0, 0, 0]);
        if flags >= 0 && flags & FD_CLOEXEC != 0 {
            p.forward(Sysno::close as u64, [fd, 0, 0, 0, 0, 0]);
        }
    };
    if let Some(fds) = open_fds(p) {
        fds.into_iter().for_each(close_if_cloexec);
        return;
    }
    let lim = [0u8; 16];
    // RLIMIT_NOFILE (7): the highest descriptor the application can hold.
    let r = p.forward(Sysno::prlimit64 as u64, [0, 7, 0, p.addr_of(&lim), 0, 0]);
    let lim = core::hint::black_box(lim);
    let max = if r == 0 {
        u64::from_le_bytes(lim[0..8].try_into().expect("8 bytes")).min(1 << 16)
    } else {
        1024
    };
    (0..max).for_each(close_if_cloexec);
}

/// The descriptor numbers open in the proxy now (the application's and mote's
/// own), from `/proc/self/fd`; `None` if it cannot be read.
fn open_fds<P: Platform>(p: &P) -> Option<Vec<u64>> {
    const O_DIRECTORY: u64 = 0o200000;
    let path = b"/proc/self/fd\0";
    let dir = p.forward(
        Sysno::openat as u64,
        [
            AT_FDCWD,
            p.addr_of(path),
            O_RDONLY | O_DIRECTORY | O_CLOEXEC,
            0,
            0,
            0,
        ],
    );
    if dir < 0 {
        return None;
    }
    let dir = dir as u64;
    let mut fds = Vec::new();
    let mut buf = vec![0u8; 4096];
    let complete = loop {
        let n = p.forward(
            Sysno::getdents64 as u64,
            [dir, p.addr_of(&buf), buf.len() as u64, 0, 0, 0],
        );
        buf = core::hint::black_box(buf);
        let Ok(n) = usize::try_from(n) else {
            break false;
        };
        if n == 0 {
            break true;
        }
        fds.extend(dirent_numbers(&buf[..n.min(buf.len())]));
    };
    p.forward(Sysno::close as u64, [dir, 0, 0, 0, 0, 0]);
    fds.retain(|&fd| fd != dir);
    complete.then_some(fds)
}

/// The names of the `linux_dirent64` records in `buf` that are numbers (`.` and
/// `..` are not). A record that does not fit ends the walk.
fn dirent_numbers(buf: &[u8]) -> impl Iterator<Item = u64> + '_ {
    // struct linux_dirent64: d_ino u64, d_off i64, d_reclen u16, d_type u8, d_name.
    const NAME: usize = 19;
    let mut at = 0;
    core::iter::from_fn(move || loop {
        let rec = buf.get(at..)?;
        let len = usize::from(u16::from_le_bytes(rec.get(16..18)?.try_into().ok()?));
        if len <= NAME || len > rec.len() {
            return None;
        }
        at += len;
        let name = &rec[NAME..len];
        let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
        if let Some(fd) = core::str::from_utf8(name).ok().and_then(|s| s.parse().ok()) {
            return Some(fd);
        }
    })
}

/// `path` made absolute against the proxy's working directory (the
/// application's), for `/proc/self/exe`.
fn absolute<P: Platform>(p: &P, path: &[u8]) -> Vec<u8> {
    if path.first() == Some(&b'/') {
        return path.to_vec();
    }
    let buf = vec![0u8; 4096];
    let r = p.forward(
        Sysno::getcwd as u64,
        [p.addr_of(&buf), buf.len() as u64, 0, 0, 0, 0],
    );
    let buf = core::hint::black_box(buf);
    if r <= 0 {
        return path.to_vec();
    }
    let cwd = &buf[..buf.iter().position(|&b| b == 0).unwrap_or(0)];
    let rel = path.strip_prefix(b"./").unwrap_or(path);
    let mut v = cwd.to_vec();
    if v.last() != Some(&b'/') {
        v.push(b'/');
    }
    v.extend_from_slice(rel);
    v
}

#[cfg(test)]
mod tests;
