//! The partition's view of `/proc` and `/sys`: the files that must describe the
//! LWK side (its mappings, memory, cores, threads) rather than the proxy process
//! Linux sees.
//!
//! Served locally (for `self`, `thread-self` and the application's own pid):
//! `/proc/self/maps`, `/proc/self/smaps`, `/proc/self/status`, `/proc/self/stat`,
//! `/proc/self/statm`, `/proc/self/comm`, and each application thread's
//! `/proc/self/task/<tid>/{stat,status,comm}` ([`task`]),
//! `/proc/meminfo`, `/proc/cpuinfo`, `/sys/devices/system/cpu/{online,possible,present}`.
//! Every other path is Linux's (forwarded by the caller).
//!
//! How a file reaches the application: libos renders its text, and hands the
//! application a real Linux descriptor holding it — a `memfd` named after the path
//! (`mote:/proc/self/maps`), filled with a forwarded `write` of the rendered buffer
//! (runtime memory is in the unified address space), then reopened read-only through
//! `/proc/self/fd/N` so the descriptor behaves like Linux's (`write` is `EBADF`,
//! `F_GETFL` says `O_RDONLY`). Reading, seeking, `fstat`, `close` are then ordinary
//! forwarded calls. Like Linux's, the content is a snapshot taken at `open`.
//!
//! `status` and `stat` start from Linux's own file for the proxy (whose pid is the
//! application's, so identity, credentials and CPU times are right) and rewrite what
//! describes the partition: the name, memory figures, threads, allowed CPUs, the
//! page-fault counts, the CPU it runs on. `cpuinfo` repeats the host's entry for the
//! CPU model (every vCPU runs on the same model) once per LWK core, renumbered
//! `0..ncores`. `maps`, `smaps`, `meminfo` and the `/sys` files are rendered from
//! libos's own state; `smaps`'s page sizes come from the page tables themselves
//! (`Platform::page_sizes`).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use mote_abi::errno::Errno;
use mote_abi::layout::{HUGE_PAGE_SIZE, INTERP_BASE, LARGE_PAGE_SIZE, PAGE_SIZE};
use syscalls::Sysno;

use crate::mm::{Vma, VmaKind};
use crate::platform::Platform;
use crate::process::Process;
use crate::signal::Disposition;
use crate::uapi::fcntl::{AT_FDCWD, O_CLOEXEC};
use crate::uapi::mman::{PROT_EXEC, PROT_READ, PROT_WRITE};

pub mod task;
pub use task::{is_task_dir, lookup_thread, TaskState};

/// A file libos serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum File {
    Maps,
    Smaps,
    Status,
    Stat,
    Statm,
    Meminfo,
    Cpuinfo,
    /// `/sys/devices/system/cpu/online`, `possible` and `present` (all the same).
    CpuList,
    /// `/proc/self/task/<tid>/stat` (and `/proc/thread-self/stat`) of thread `tid`.
    TaskStat(u32),
    /// `/proc/self/task/<tid>/status` of thread `tid`.
    TaskStatus(u32),
    /// `comm` of thread `tid` (`/proc/self/comm` is the main thread's).
    Comm(u32),
}

impl File {
    /// The thread a thread's file is of.
    pub fn thread(self) -> Option<u32> {
        match self {
            File::TaskStat(t) | File::TaskStatus(t) | File::Comm(t) => Some(t),
            _ => None,
        }
    }

    /// The name the descriptor's memfd carries.
    fn name(self) -> &'static str {
        match self {
            File::Maps => "mote:/proc/self/maps",
            File::Smaps => "mote:/proc/self/smaps",
            File::Status => "mote:/proc/self/status",
            File::Stat => "mote:/proc/self/stat",
            File::Statm => "mote:/proc/self/statm",
            File::Meminfo => "mote:/proc/meminfo",
            File::Cpuinfo => "mote:/proc/cpuinfo",
            File::CpuList => "mote:/sys/devices/system/cpu",
            File::TaskStat(_) => "mote:/proc/self/task/stat",
            File::TaskStatus(_) => "mote:/proc/self/task/status",
            File::Comm(_) => "mote:/proc/self/comm",
        }
    }
}

/// Which served file an absolute `path` names, if any (`self`, `thread-self` and
/// the application's pid are the process; `.`/`..` components and doubled slashes
/// are not resolved: such paths go to Linux).
pub fn lookup(pid: u32, path: &[u8]) -> Option<File> {
    match path {
        b"/proc/meminfo" => return Some(File::Meminfo),
        b"/proc/cpuinfo" => return Some(File::Cpuinfo),
        b"/sys/devices/system/cpu/online"
        | b"/sys/devices/system/cpu/possible"
        | b"/sys/devices/system/cpu/present" => return Some(File::CpuList),
        _ => {}
    }
    let rest = path.strip_prefix(b"/proc/")?;
    let slash = rest.iter().position(|&b| b == b'/')?;
    let (who, file) = (&rest[..slash], &rest[slash + 1..]);
    let me = who == b"self" || who == b"thread-self" || who == format!("{pid}").as_bytes();
    if !me {
        return None;
    }
    match file {
        b"maps" => Some(File::Maps),
        b"smaps" => Some(File::Smaps),
        b"status" => Some(File::Status),
        b"stat" => Some(File::Stat),
        b"statm" => Some(File::Statm),
        _ => None,
    }
}

/// Open served file `f` with `open` flags `flags`: a read-only Linux descriptor
/// holding its text. Opening for writing is `EACCES`, as Linux answers for these,
/// but for a thread's `comm` (see [`open_with`]).
pub fn open<P: Platform>(pr: &Process, p: &P, f: File, flags: u64) -> Result<usize, Errno> {
    open_with(pr, p, f, flags, &[])
}

/// Does `open` flags `flags` ask to write?
pub fn for_writing(flags: u64) -> bool {
    const O_ACCMODE: u64 = 3;
    flags & O_ACCMODE != 0
}

/// [`open`], knowing the application's threads now (`tasks`; empty: not asked).
/// A thread's file for a thread not among them is `ENOENT`. A thread's `comm`
/// may be opened for writing, as Linux's (mode 0644, written by threads of the
/// same process: `pthread_setname_np` of another thread): the descriptor is
/// then the memfd itself, read-write, and the caller serves its writes
/// (`crate::syscall::fs::comm_call`), which rename the thread.
pub fn open_with<P: Platform>(
    pr: &Process,
    p: &P,
    f: File,
    flags: u64,
    tasks: &[task::TaskState],
) -> Result<usize, Errno> {
    if let Some(tid) = f.thread() {
        if !tasks.iter().any(|t| t.tid == tid) {
            return Err(Errno::ENOENT);
        }
    }
    const O_ACCMODE: u64 = 3;
    const O_DIRECTORY: u64 = 0o200_000;
    const O_CREAT: u64 = 0o100;
    const O_EXCL: u64 = 0o200;
    const MFD_CLOEXEC: u64 = 1;
    if flags & O_CREAT != 0 && flags & O_EXCL != 0 {
        return Err(Errno::EEXIST);
    }
    let writable = matches!(f, File::Comm(_)) && flags & O_ACCMODE != 0;
    if flags & O_ACCMODE != 0 && !writable {
        return Err(Errno::EACCES);
    }
    if flags & O_DIRECTORY != 0 {
        return Err(Errno::ENOTDIR);
    }
    let text = render_with(pr, p, f, tasks);
    let name = cstr(f.name().as_bytes());
    if writable {
        let cloexec = if flags & O_CLOEXEC != 0 {
            MFD_CLOEXEC
        } else {
            0
        };
        let memfd = fwd(p, Sysno::memfd_create, [p.addr_of(&name), cloexec])?;
        if let Err(e) = fill(p, memfd, &text) {
            let _ = fwd(p, Sysno::close, [memfd]);
            return Err(e);
        }
        return Ok(memfd as usize);
    }
    // The memfd takes the lowest free number, which is what `open` returns on
    // Linux; at the end that number holds the read-only descriptor.
    let memfd = fwd(p, Sysno::memfd_create, [p.addr_of(&name), MFD_CLOEXEC])?;
    let done = fill(p, memfd, &text).and_then(|()| {
        // A read-only open of the same file (the memfd itself is read-write) ...
        let path = cstr(format!("/proc/self/fd/{memfd}").as_bytes());
        let ro = fwd(p, Sysno::openat, [AT_FDCWD, p.addr_of(&path), O_CLOEXEC, 0])?;
        // ... put in the memfd's place, with the caller's O_CLOEXEC.
        let r = fwd(p, Sysno::dup3, [ro, memfd, flags & O_CLOEXEC]);
        let _ = fwd(p, Sysno::close, [ro]);
        r
    });
    if let Err(e) = done {
        let _ = fwd(p, Sysno::close, [memfd]);
        return Err(e);
    }
    Ok(memfd as usize)
}

/// Write `text` into descriptor `fd` and rewind it.
fn fill<P: Platform>(p: &P, fd: u64, text: &[u8]) -> Result<(), Errno> {
    let mut done = 0;
    while done < text.len() {
        let rest = &text[done..];
        let n = fwd(p, Sysno::write, [fd, p.addr_of(rest), rest.len() as u64])?;
        if n == 0 {
            return Err(Errno::EIO);
        }
        done += n as usize;
    }
    fwd(p, Sysno::lseek, [fd, 0, 0]).map(|_| ())
}

/// A forwarded call with up to four arguments, as a `Result`.
fn fwd<P: Platform, const N: usize>(p: &P, nr: Sysno, a: [u64; N]) -> Result<u64, Errno> {
    let mut args = [0u64; 6];
    args[..N].copy_from_slice(&a);
    let r = p.forward(nr as u64, args);
    if r < 0 {
        Err(crate::errno::from_result(r))
    } else {
        Ok(r as u64)
    }
}

fn cstr(s: &[u8]) -> Vec<u8> {
    let mut v = s.to_vec();
    v.push(0);
    v
}

/// Linux's own file at `path` (for the proxy, whose pid is the application's),
/// read through forwarded calls; `None` if it cannot be read.
fn linux_file<P: Platform>(p: &P, path: &str) -> Option<Vec<u8>> {
    let path = cstr(path.as_bytes());
    let fd = fwd(p, Sysno::openat, [AT_FDCWD, p.addr_of(&path), O_CLOEXEC, 0]).ok()?;
    let mut out = Vec::new();
    let mut buf = alloc::vec![0u8; 4096];
    loop {
        // The proxy writes into `buf` through this address (unified address space).
        let addr = buf.as_mut_ptr() as u64;
        match fwd(p, Sysno::read, [fd, addr, buf.len() as u64]) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n as usize]),
            Err(Errno::EINTR) => continue,
            Err(_) => {
                out.clear();
                break;
            }
        }
        if out.len() > 1 << 20 {
            break;
        }
    }
    let _ = fwd(p, Sysno::close, [fd]);
    (!out.is_empty()).then_some(out)
}

/// The text of `f` now.
pub fn render<P: Platform>(pr: &Process, p: &P, f: File) -> Vec<u8> {
    render_with(pr, p, f, &[])
}

/// [`render`], knowing the application's threads now (`tasks`).
pub fn render_with<P: Platform>(
    pr: &Process,
    p: &P,
    f: File,
    tasks: &[task::TaskState],
) -> Vec<u8> {
    let facts = Facts::of(pr, p);
    match f {
        File::TaskStat(tid) | File::TaskStatus(tid) | File::Comm(tid) => {
            task::render(pr, p, f, tid, tasks, facts)
        }
        File::Maps => maps(pr, None::<&P>).into_bytes(),
        File::Smaps => maps(pr, Some(p)).into_bytes(),
        File::Status => {
            let linux = linux_file(p, "/proc/self/status").unwrap_or_default();
            status(&String::from_utf8_lossy(&linux), &facts).into_bytes()
        }
        File::Stat => {
            let linux = linux_file(p, "/proc/self/stat").unwrap_or_default();
            stat(&String::from_utf8_lossy(&linux), &facts).into_bytes()
        }
        File::Statm => statm(&facts).into_bytes(),
        File::Meminfo => meminfo(&facts).into_bytes(),
        File::Cpuinfo => {
            let linux = linux_file(p, "/proc/cpuinfo").unwrap_or_default();
            cpuinfo(&String::from_utf8_lossy(&linux), facts.ncores).into_bytes()
        }
        File::CpuList => cpu_list(facts.ncores).into_bytes(),
    }
}

/// What the renderers need to know about the partition and the process.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Facts {
    /// Program name as `comm` (the executable's base name, at most 15 bytes).
    pub comm: String,
    pub ncores: u32,
    pub threads: usize,
    /// Bytes of the application's mappings (the heap reserve excluded).
    pub vm_size: u64,
    /// Bytes of them backed by memory.
    pub vm_rss: u64,
    /// Of which the main stack, program images, heap and other anonymous memory.
    pub vm_stk: u64,
    pub vm_exe: u64,
    pub vm_data: u64,
    /// Bytes of page tables kernel-min got.
    pub vm_pte: u64,
    /// Page faults kernel-min took.
    pub faults: u64,
    /// The frame pool: total bytes, bytes free, and the large-page policy with
    /// how many pages of that size the pool holds and still has free.
    pub mem_total: u64,
    pub mem_free: u64,
    pub page_size: u64,
    pub huge_total: u64,
    pub huge_free: u64,
    /// The program's text `[start, end)`, the main stack's top, where brk started.
    pub code: (u64, u64),
    pub stack_top: u64,
    pub brk_start: u64,
    /// Signal masks as libos keeps them: blocked, pending, ignored, caught.
    pub sig_blk: u64,
    pub sig_pnd: u64,
    pub sig_ign: u64,
    pub sig_cgt: u64,
}

impl Facts {
    /// The facts now.
    pub fn of<P: Platform>(pr: &Process, p: &P) -> Facts {
        let mut f = Facts {
            comm: pr.name_of(pr.pid),
            ncores: pr.ncores,
            threads: pr.thread_count(),
            vm_pte: pr.mm.tables_given(),
            faults: p.page_faults(),
            ..Facts::default()
        };
        for sig in 1..=64u32 {
            let bit = 1u64 << (sig - 1);
            match pr.signals.disposition(sig) {
                Disposition::Ignore => f.sig_ign |= bit,
                Disposition::Handler(_) => f.sig_cgt |= bit,
                Disposition::Default(_) => {}
            }
        }
        f.sig_blk = pr.signals.mask();
        f.sig_pnd = pr.signals.pending();
        f.brk_start = pr.mm.brk_start();
        for (s, v) in pr.mm.vmas().filter(|(_, v)| v.kind != VmaKind::HeapReserve) {
            let len = v.end - s;
            if v.kind == VmaKind::Image && v.prot & PROT_EXEC != 0 && s < INTERP_BASE {
                f.code = if f.code.1 == 0 {
                    (s, v.end)
                } else {
                    (f.code.0.min(s), f.code.1.max(v.end))
                };
            }
            if v.kind == VmaKind::Stack {
                f.stack_top = f.stack_top.max(v.end);
            }
            f.vm_size += len;
            f.vm_rss += pr.mm.backed_bytes(s, v.end);
            match v.kind {
                VmaKind::Stack => f.vm_stk += len,
                VmaKind::Image => f.vm_exe += len,
                VmaKind::Anon | VmaKind::Heap | VmaKind::File if !v.shared => f.vm_data += len,
                _ => {}
            }
        }
        let frames = pr.mm.frames();
        let (start, end) = frames.range();
        f.mem_total = end - start;
        f.mem_free = frames.available();
        f.page_size = pr.mm.page_size().max(LARGE_PAGE_SIZE);
        let size = if f.page_size == HUGE_PAGE_SIZE {
            crate::frames::FrameSize::Huge
        } else {
            crate::frames::FrameSize::Large
        };
        f.huge_total = f.mem_total / f.page_size;
        f.huge_free = frames.available_in(size) / f.page_size;
        f
    }
}

/// `comm` of a program path: its base name, cut to 15 bytes as Linux does.
pub fn comm(exe: &[u8]) -> String {
    let base = exe.rsplit(|&b| b == b'/').next().unwrap_or(exe);
    String::from_utf8_lossy(&base[..base.len().min(15)]).into_owned()
}

fn kb(bytes: u64) -> u64 {
    bytes / 1024
}

/// `/proc/self/maps`, and with `pages` (the platform to ask) `/proc/self/smaps`.
fn maps<P: Platform>(pr: &Process, pages: Option<&P>) -> String {
    let mut out = String::new();
    for (s, v) in pr.mm.vmas() {
        if v.kind == VmaKind::HeapReserve {
            continue;
        }
        let program = v.kind == VmaKind::Image && s < INTERP_BASE;
        let file = pr
            .mm
            .label_at(s)
            .or(program.then_some(&pr.exe[..]))
            .unwrap_or_default();
        let _ = writeln!(out, "{}", maps_line(s, v, file));
        if let Some(p) = pages {
            smaps_fields(&mut out, pr, p, s, v);
        }
    }
    out
}

/// One line of `maps`: range, permissions, offset, device, inode, name (`file`:
/// the mapping's file if libos knows it, else the program's).
fn maps_line(s: u64, v: &Vma, file: &[u8]) -> String {
    let perm = |bit, c| if v.prot & bit != 0 { c } else { '-' };
    let mut line = format!(
        "{s:08x}-{:08x} {}{}{}{} 00000000 00:00 0",
        v.end,
        perm(PROT_READ, 'r'),
        perm(PROT_WRITE, 'w'),
        perm(PROT_EXEC, 'x'),
        if v.shared { 's' } else { 'p' },
    );
    // File mappings carry the path Linux gave for their descriptor, ld.so's
    // segments its path, the program's segments the program's.
    let name = match v.kind {
        VmaKind::Heap => String::from("[heap]"),
        VmaKind::Stack => String::from("[stack]"),
        VmaKind::Stubs => String::from("[mote-stubs]"),
        // Anonymous memory has a name only when libos gave it one (`[vvar]`,
        // `[vdso]`).
        VmaKind::Image | VmaKind::File | VmaKind::Passthrough { .. } | VmaKind::Anon => {
            String::from_utf8_lossy(file).into_owned()
        }
        _ => String::new(),
    };
    if name.is_empty() {
        // Linux ends an unnamed line with one space.
        line.push(' ');
    } else {
        // Linux pads the name to column 74.
        while line.len() < 73 {
            line.push(' ');
        }
        line.push_str(&name);
    }
    line
}

/// The fields `smaps` adds after each VMA's line.
fn smaps_fields<P: Platform>(out: &mut String, pr: &Process, p: &P, s: u64, v: &Vma) {
    let [small, large, huge] = pr.mm.page_sizes(p, s, v.end - s);
    let rss = small + large + huge;
    let page = if huge > 0 {
        HUGE_PAGE_SIZE
    } else if large > 0 {
        LARGE_PAGE_SIZE
    } else {
        PAGE_SIZE
    };
    let anon = matches!(v.kind, VmaKind::Anon | VmaKind::Heap | VmaKind::Stack);
    let field = |out: &mut String, name: &str, bytes: u64| {
        let _ = writeln!(out, "{:<16}{:>8} kB", format!("{name}:"), kb(bytes));
    };
    field(out, "Size", v.end - s);
    field(out, "KernelPageSize", page);
    field(out, "MMUPageSize", page);
    field(out, "Rss", rss);
    field(out, "Pss", rss);
    field(out, "Pss_Dirty", rss);
    field(out, "Shared_Clean", 0);
    field(out, "Shared_Dirty", 0);
    field(out, "Private_Clean", 0);
    field(out, "Private_Dirty", rss);
    field(out, "Referenced", rss);
    field(out, "Anonymous", if anon { rss } else { 0 });
    field(out, "KSM", 0);
    field(out, "LazyFree", 0);
    field(out, "AnonHugePages", if anon { large + huge } else { 0 });
    field(out, "ShmemPmdMapped", 0);
    field(out, "FilePmdMapped", 0);
    field(out, "Shared_Hugetlb", 0);
    field(out, "Private_Hugetlb", 0);
    field(out, "Swap", 0);
    field(out, "SwapPss", 0);
    field(out, "Locked", 0);
    let _ = writeln!(out, "THPeligible:    {}", u8::from(anon));
    let mut flags = String::from("VmFlags:");
    for (bit, name) in [(PROT_READ, " rd"), (PROT_WRITE, " wr"), (PROT_EXEC, " ex")] {
        if v.prot & bit != 0 {
            flags.push_str(name);
        }
    }
    if v.shared {
        flags.push_str(" sh");
    }
    flags.push_str(" mr mw me");
    if v.growsdown || v.kind == VmaKind::Stack {
        flags.push_str(" gd");
    }
    if anon {
        flags.push_str(" ac");
    }
    if large + huge > 0 {
        flags.push_str(" ht");
    }
    let _ = writeln!(out, "{flags}");
}

/// `/proc/self/status`: Linux's lines for the proxy, with those describing the
/// partition replaced (the rest — credentials, signals as Linux keeps them for the
/// proxy, context switches — stays Linux's).
pub fn status(linux: &str, f: &Facts) -> String {
    let cpus = cpu_list(f.ncores);
    let cpus = cpus.trim_end();
    let mask = cpu_mask(f.ncores);
    let mut out = String::new();
    let mut seen_threads = false;
    for line in linux.lines() {
        let key = line.split(':').next().unwrap_or("");
        let kb_line = |bytes: u64| format!("{key}:\t{:>8} kB", kb(bytes));
        let new = match key {
            "Name" => format!("Name:\t{}", f.comm),
            "VmPeak" | "VmSize" => kb_line(f.vm_size),
            "VmHWM" | "VmRSS" => kb_line(f.vm_rss),
            "RssAnon" => kb_line(f.vm_rss),
            "RssFile" | "RssShmem" | "VmLck" | "VmPin" | "VmSwap" | "VmLib" => kb_line(0),
            "VmData" => kb_line(f.vm_data),
            "VmStk" => kb_line(f.vm_stk),
            "VmExe" => kb_line(f.vm_exe),
            "VmPTE" => kb_line(f.vm_pte),
            "HugetlbPages" => kb_line(0),
            "Threads" => {
                seen_threads = true;
                format!("Threads:\t{}", f.threads)
            }
            "Cpus_allowed" => format!("Cpus_allowed:\t{mask}"),
            "Cpus_allowed_list" => format!("Cpus_allowed_list:\t{cpus}"),
            "SigPnd" => format!("SigPnd:\t{:016x}", f.sig_pnd),
            "SigBlk" => format!("SigBlk:\t{:016x}", f.sig_blk),
            "SigIgn" => format!("SigIgn:\t{:016x}", f.sig_ign),
            "SigCgt" => format!("SigCgt:\t{:016x}", f.sig_cgt),
            "Mems_allowed" => String::from("Mems_allowed:\t1"),
            "Mems_allowed_list" => String::from("Mems_allowed_list:\t0"),
            _ => String::from(line),
        };
        out.push_str(&new);
        out.push('\n');
    }
    if !seen_threads {
        // Linux's file could not be read: the partition's part alone.
        out = format!(
            "Name:\t{}\nVmSize:\t{:>8} kB\nVmRSS:\t{:>8} kB\nThreads:\t{}\nCpus_allowed:\t{mask}\nCpus_allowed_list:\t{cpus}\n",
            f.comm,
            kb(f.vm_size),
            kb(f.vm_rss),
            f.threads
        );
    }
    out
}

/// `/proc/self/stat`: Linux's line for the proxy with the partition's fields:
/// comm, minor/major faults (kernel-min's page faults; the LWK never pages from
/// disk), threads, virtual size, resident pages, and the CPU (core 0).
pub fn stat(linux: &str, f: &Facts) -> String {
    let line = linux.trim_end();
    // `pid (comm) state ...`: comm may hold spaces and parentheses; it ends at the
    // last ')'.
    let (Some(open), Some(close)) = (line.find('('), line.rfind(')')) else {
        return format!(
            "0 ({}) R 0 0 0 0 -1 0 {} 0 0 0 0 0 0 0 20 0 {} 0 0 {} {}\n",
            f.comm,
            f.faults,
            f.threads,
            f.vm_size,
            f.vm_rss / PAGE_SIZE
        );
    };
    let pid = &line[..open];
    let mut fields: Vec<String> = line[close + 1..]
        .split_whitespace()
        .map(String::from)
        .collect();
    // Field numbers as in proc(5), minus 3 (pid, comm and state is index 0).
    let mut set = |n: usize, v: u64| {
        if let Some(x) = fields.get_mut(n - 3) {
            *x = format!("{v}");
        }
    };
    set(10, f.faults); // minflt
    set(11, 0); // cminflt
    set(12, 0); // majflt
    set(13, 0); // cmajflt
    set(20, f.threads as u64);
    set(23, f.vm_size);
    set(24, f.vm_rss / PAGE_SIZE);
    set(26, f.code.0); // startcode
    set(27, f.code.1); // endcode
    set(28, f.stack_top); // startstack
    set(29, 0); // kstkesp
    set(30, 0); // kstkeip
    set(31, f.sig_pnd); // signal
    set(32, f.sig_blk); // blocked
    set(33, f.sig_ign); // sigignore
    set(34, f.sig_cgt); // sigcatch
    set(39, 0); // processor
                // start_data, end_data (libos does not keep them), start_brk, then where
                // argv and the environment lie (Linux's figures are the proxy's).
    for n in [45, 46, 48, 49, 50, 51] {
        set(n, 0);
    }
    set(47, f.brk_start);
    format!("{pid}({}) {}\n", f.comm, fields.join(" "))
}

/// `/proc/self/statm`: size, resident, shared, text, lib (0), data, dirty (0), in
/// pages.
pub fn statm(f: &Facts) -> String {
    let pages = |b: u64| b / PAGE_SIZE;
    format!(
        "{} {} 0 {} 0 {} 0\n",
        pages(f.vm_size),
        pages(f.vm_rss),
        pages(f.vm_exe),
        pages(f.vm_data + f.vm_stk)
    )
}

/// `/proc/meminfo`: the partition's memory is the frame pool.
pub fn meminfo(f: &Facts) -> String {
    let mut out = String::new();
    let mut kb_line = |name: &str, bytes: u64| {
        let _ = writeln!(out, "{:<16}{:>8} kB", format!("{name}:"), kb(bytes));
    };
    let used = f.mem_total - f.mem_free;
    kb_line("MemTotal", f.mem_total);
    kb_line("MemFree", f.mem_free);
    kb_line("MemAvailable", f.mem_free);
    kb_line("Buffers", 0);
    kb_line("Cached", 0);
    kb_line("SwapCached", 0);
    kb_line("Active", used);
    kb_line("Inactive", 0);
    kb_line("Unevictable", 0);
    kb_line("Mlocked", 0);
    kb_line("SwapTotal", 0);
    kb_line("SwapFree", 0);
    kb_line("Dirty", 0);
    kb_line("Writeback", 0);
    kb_line("AnonPages", used);
    kb_line("Mapped", 0);
    kb_line("Shmem", 0);
    kb_line("PageTables", f.vm_pte);
    kb_line("CommitLimit", f.mem_total);
    kb_line("Committed_AS", used);
    kb_line("AnonHugePages", 0);
    let _ = writeln!(out, "HugePages_Total:   {:>5}", f.huge_total);
    let _ = writeln!(out, "HugePages_Free:    {:>5}", f.huge_free);
    let _ = writeln!(out, "HugePages_Rsvd:    {:>5}", 0);
    let _ = writeln!(out, "HugePages_Surp:    {:>5}", 0);
    let mut kb_line = |name: &str, bytes: u64| {
        let _ = writeln!(out, "{:<16}{:>8} kB", format!("{name}:"), kb(bytes));
    };
    kb_line("Hugepagesize", f.page_size);
    kb_line("Hugetlb", f.huge_total * f.page_size);
    out
}

/// `/proc/cpuinfo`: the host's first entry (the CPU model every vCPU runs on),
/// once per LWK core, numbered `0..ncores`, as one package of `ncores` cores.
pub fn cpuinfo(linux: &str, ncores: u32) -> String {
    let first = linux.split("\n\n").next().unwrap_or("").trim_end();
    let mut out = String::new();
    for i in 0..ncores {
        for line in first.lines() {
            let key = line.split(':').next().unwrap_or("").trim_end();
            let tab = |v: u32| format!("{key}\t: {v}");
            let new = match key {
                "processor" => tab(i),
                "physical id" => tab(0),
                "core id" | "apicid" | "initial apicid" => tab(i),
                "siblings" | "cpu cores" => tab(ncores),
                _ => String::from(line),
            };
            out.push_str(&new);
            out.push('\n');
        }
        out.push('\n');
    }
    out
}

/// A CPU list of the partition's cores, as `/sys/devices/system/cpu/online` shows
/// it: `0` or `0-N`.
pub fn cpu_list(ncores: u32) -> String {
    match ncores {
        0 | 1 => String::from("0\n"),
        n => format!("0-{}\n", n - 1),
    }
}

/// A CPU mask as `Cpus_allowed` shows it: hex, in comma-separated 32-bit groups.
fn cpu_mask(ncores: u32) -> String {
    let n = ncores.clamp(1, 64);
    let bits: u64 = if n == 64 { u64::MAX } else { (1u64 << n) - 1 };
    if bits >> 32 == 0 {
        format!("{bits:x}")
    } else {
        format!("{:x},{:08x}", bits >> 32, bits & 0xffff_ffff)
    }
}

#[cfg(test)]
mod tests;
