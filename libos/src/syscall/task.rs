//! Identity and the process's registrations: `getpid`, `exit_group`, `prctl`,
//! `arch_prctl` (but the FS base), `sched_getaffinity`, `rseq`, resource usage.
//! What belongs to one thread (its tid, FS base, robust list, `exit`) is
//! `thread`'s.

use mote_abi::errno::Errno;
use syscalls::Sysno;

use super::forwarded;
use crate::platform::Platform;
use crate::process::Process;
use crate::uapi::arch_prctl::*;

/// `getpid()`.
pub fn getpid(pr: &mut Process) -> Result<usize, Errno> {
    Ok(pr.pid as usize)
}

/// `exit_group(status)`.
pub fn exit_group<P: Platform>(_pr: &mut Process, p: &P, status: u64) -> Result<usize, Errno> {
    p.exit((status & 0xff) as i32)
}

/// `arch_prctl(code, addr)` for the codes other than the FS base's (per thread:
/// `thread::arch_prctl`). GS stays the runtime's.
pub fn arch_prctl<P: Platform>(
    pr: &mut Process,
    p: &P,
    code: u64,
    _addr: u64,
) -> Result<usize, Errno> {
    match code {
        ARCH_SET_GS | ARCH_GET_GS => {
            pr.log_once(p, 0x2_0000 + code, || {
                alloc::format!("arch_prctl({code:#x}): the GS base is not offered to applications yet; returning EINVAL")
            });
            Err(Errno::EINVAL)
        }
        _ => Err(Errno::EINVAL),
    }
}

/// `prctl(option, ...)`: Linux's, except `PR_SET_SECCOMP`, which run by Linux would
/// filter the proxy's own calls, and the thread's name (`PR_SET_NAME`,
/// `PR_GET_NAME`), which is libos's: run by Linux it would name the proxy's
/// thread serving the caller (`/proc/self/task/<tid>/comm` shows libos's).
pub fn prctl<P: Platform>(pr: &mut Process, p: &P, args: [u64; 6]) -> Result<usize, Errno> {
    use crate::uapi::prctl::{PR_GET_NAME, PR_SET_NAME};
    match args[0] {
        PR_SET_NAME => {
            // Linux reads up to 15 bytes, to the first NUL.
            let mut name = alloc::vec::Vec::new();
            for i in 0..15 {
                let mut b = [0u8];
                pr.read_user(p, args[1] + i, &mut b)?;
                if b[0] == 0 {
                    break;
                }
                name.push(b[0]);
            }
            let tid = pr.tid();
            pr.set_name(tid, &name);
            return Ok(0);
        }
        PR_GET_NAME => {
            let mut out = [0u8; 16];
            let name = pr.name_of(pr.tid());
            let len = name.len().min(15);
            out[..len].copy_from_slice(&name.as_bytes()[..len]);
            pr.write_user(p, args[1], &out)?;
            return Ok(0);
        }
        _ => {}
    }
    if args[0] == crate::uapi::prctl::PR_SET_SECCOMP {
        pr.log_once(p, 0x2_0000 + args[0], || {
            alloc::string::String::from(
                "prctl(PR_SET_SECCOMP): seccomp is not offered (run by Linux it would filter the proxy); returning ENOSYS",
            )
        });
        return Err(Errno::ENOSYS);
    }
    forwarded(p.forward(Sysno::prctl as u64, args))
}

/// `setrlimit(resource, new)`: Linux's answer (the proxy keeps the
/// application's `RLIMIT_AS` and `RLIMIT_NOFILE`). A new `RLIMIT_AS` is
/// copied first and the proxy given the copy, so the soft limit libos applies
/// from then on (`mm::limit`) is the one the proxy took, with no call to ask.
pub fn setrlimit<P: Platform>(pr: &mut Process, p: &P, args: [u64; 6]) -> Result<usize, Errno> {
    if args[0] as u32 != RLIMIT_AS {
        return forwarded(p.forward(Sysno::setrlimit as u64, args));
    }
    set_as_limit(pr, p, args, 1, Sysno::setrlimit)
}

/// `prlimit64(pid, resource, new, old)`: as `setrlimit` when it changes the
/// caller's own `RLIMIT_AS`.
pub fn prlimit64<P: Platform>(pr: &mut Process, p: &P, args: [u64; 6]) -> Result<usize, Errno> {
    let own = args[0] as u32 == 0 || args[0] as u32 == pr.pid;
    if !(own && args[1] as u32 == RLIMIT_AS && args[2] != 0) {
        return forwarded(p.forward(Sysno::prlimit64 as u64, args));
    }
    set_as_limit(pr, p, args, 2, Sysno::prlimit64)
}

/// Call `nr` whose argument `new` points at the new `struct rlimit` of
/// `RLIMIT_AS`, with a copy of it (an unreadable one is `EFAULT`, Linux's
/// first check too); on success its soft limit is the application's.
fn set_as_limit<P: Platform>(
    pr: &mut Process,
    p: &P,
    mut args: [u64; 6],
    new: usize,
    nr: Sysno,
) -> Result<usize, Errno> {
    let mut lim = [0u8; 16];
    pr.read_user(p, args[new], &mut lim)?;
    args[new] = p.addr_of(&lim);
    let r = p.forward(nr as u64, args);
    if r == 0 {
        let soft = u64::from_le_bytes(lim[..8].try_into().expect("8 bytes"));
        pr.mm.set_as_limit(Some(soft));
    }
    forwarded(r)
}

/// `RLIMIT_AS` (`include/uapi/asm-generic/resource.h`).
const RLIMIT_AS: u32 = 9;

/// `sched_getaffinity(pid, len, mask)`. `ours`: the cores the thread `pid` may
/// run on when it is one of the application's (pid 0 is the caller), as bits of
/// the partition's cores numbered `0..ncores` (as if the kernel had `ncores`
/// possible CPUs); `None`: another process's, which is Linux's to answer.
pub fn sched_getaffinity<P: Platform>(
    pr: &mut Process,
    p: &P,
    pid: u64,
    len: u64,
    mask: u64,
    ours: Option<u64>,
) -> Result<usize, Errno> {
    let pid = pid as i32;
    if pid < 0 {
        return Err(Errno::ESRCH);
    }
    let Some(bits) = ours else {
        return forwarded(p.forward(
            Sysno::sched_getaffinity as u64,
            [pid as u64, len, mask, 0, 0, 0],
        ));
    };
    // As Linux: the buffer must hold nr_cpu_ids bits and be a multiple of a long;
    // the answer is the bytes written (nr_cpu_ids bits rounded up to longs).
    let ncores = u64::from(pr.ncores.max(1));
    let need = ncores.div_ceil(64) * 8;
    if len * 8 < ncores || !len.is_multiple_of(8) {
        return Err(Errno::EINVAL);
    }
    let mut bytes = alloc::vec![0u8; need as usize];
    for core in (0..ncores as usize).filter(|&c| c >= 64 || bits & (1 << c) != 0) {
        bytes[core / 8] |= 1 << (core % 8);
    }
    pr.write_user(p, mask, &bytes)?;
    Ok(need as usize)
}

/// `rseq(...)`: not offered. glibc then runs without restartable sequences, as on
/// kernels older than 4.18.
pub fn rseq<P: Platform>(pr: &mut Process, p: &P) -> Result<usize, Errno> {
    if pr.debug {
        pr.log_once(p, Sysno::rseq as u64, || {
            alloc::string::String::from("rseq: not offered (ENOSYS); the C library runs without it")
        });
    }
    Err(Errno::ENOSYS)
}

/// `getrusage(who, usage)`. Linux fills the structure (block I/O, context
/// switches, children: the proxy is the process to Linux), then the partition's
/// own numbers replace what Linux cannot know: user time is the vCPUs' CPU time
/// (the application's code and libos), system time the rest of the process's
/// (the proxy serving forwarded calls), for `RUSAGE_THREAD` the calling core's
/// vCPU; the peak resident size and the minor faults are the partition's.
pub fn getrusage<P: Platform>(
    pr: &mut Process,
    p: &P,
    who: u64,
    usage: u64,
) -> Result<usize, Errno> {
    const RUSAGE_SELF: i32 = 0;
    const RUSAGE_THREAD: i32 = 1;
    let who = who as i32;
    let linux = [0u8; 144];
    forwarded(p.forward(
        Sysno::getrusage as u64,
        [who as u64, p.addr_of(&linux), 0, 0, 0, 0],
    ))?;
    let mut ru = linux;
    if who == RUSAGE_SELF || who == RUSAGE_THREAD {
        let mut t = [0u64; 2 + 64];
        let n = p.cpu_times(&mut t);
        if n >= 2 {
            let (user, sys) = if who == RUSAGE_SELF {
                (t[1], t[0].saturating_sub(t[1]))
            } else {
                (t.get(2 + p.core()).copied().unwrap_or(0), 0)
            };
            ru[0..16].copy_from_slice(&timeval(user));
            ru[16..32].copy_from_slice(&timeval(sys));
        }
        let facts = crate::procfs::Facts::of(pr, p);
        ru[32..40].copy_from_slice(&(facts.vm_rss / 1024).to_le_bytes());
        ru[64..72].copy_from_slice(&facts.faults.to_le_bytes());
    }
    pr.write_user(p, usage, &ru)?;
    Ok(0)
}

/// `times(buf)`: the same CPU times in clock ticks (100 per second); the
/// children's and the return value (ticks since an arbitrary point) are Linux's.
pub fn times<P: Platform>(pr: &mut Process, p: &P, buf: u64) -> Result<usize, Errno> {
    const TICKS_PER_SEC: u64 = 100;
    let linux = [0u8; 32];
    let r = forwarded(p.forward(Sysno::times as u64, [p.addr_of(&linux), 0, 0, 0, 0, 0]))?;
    if buf != 0 {
        let mut tms = linux;
        let mut t = [0u64; 2];
        if p.cpu_times(&mut t) == 2 {
            let tick = 1_000_000_000 / TICKS_PER_SEC;
            tms[0..8].copy_from_slice(&(t[1] / tick).to_le_bytes());
            tms[8..16].copy_from_slice(&(t[0].saturating_sub(t[1]) / tick).to_le_bytes());
        }
        pr.write_user(p, buf, &tms)?;
    }
    Ok(r)
}

/// `struct timeval` of `ns`.
fn timeval(ns: u64) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&(ns / 1_000_000_000).to_le_bytes());
    b[8..].copy_from_slice(&((ns % 1_000_000_000) / 1000).to_le_bytes());
    b
}
