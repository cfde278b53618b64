//! Forwarded system calls: the raw-syscall executor and what it refuses. A call
//! libos forwards runs here with a raw `syscall` instruction, in the unified
//! address space (`mirror`): the application's pointers are valid as they are.
//! Numbers that would act on the proxy itself (its threads, signal state,
//! address space) are refused with `ENOSYS` ([`REFUSED`]): libos implements
//! them locally, so seeing one here is a bug worth a line on stderr; calls that
//! would close or replace the proxy's own descriptors (`fds`) are answered here.
//!
//! Allows `unsafe`: it is the raw-syscall executor (`syscalls::raw`), the one
//! place the proxy executes the application's calls.
#![allow(unsafe_code)]

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use syscalls::{Sysno, SysnoSet};

use super::{guard, nested, warn_once};
use crate::{fds, rlimits};

/// The x32 ABI bit of a system call number: an x86_64 process never uses it, and the
/// refusal list below would not recognise `exit | X32_BIT`.
pub(super) const X32_SYSCALL_BIT: u64 = 0x4000_0000;

/// Calls that would act on the proxy itself if executed here.
pub const REFUSED: SysnoSet = SysnoSet::new(&[
    // Process and thread life: would end or clone the proxy.
    Sysno::exit,
    Sysno::exit_group,
    Sysno::clone,
    Sysno::clone3,
    Sysno::fork,
    Sysno::vfork,
    Sysno::execve,
    Sysno::execveat,
    // Signal state of the proxy's thread, and the signals the proxy routes to the
    // application (signals.rs): libos answers these.
    Sysno::rt_sigreturn,
    Sysno::rt_sigaction,
    Sysno::rt_sigprocmask,
    Sysno::sigaltstack,
    Sysno::rt_sigsuspend,
    Sysno::rt_sigtimedwait,
    Sysno::signalfd,
    Sysno::signalfd4,
    // The proxy's address space (the application's is libos's).
    Sysno::mmap,
    Sysno::munmap,
    Sysno::mprotect,
    Sysno::pkey_mprotect,
    Sysno::mremap,
    Sysno::remap_file_pages,
    Sysno::brk,
    Sysno::madvise,
    Sysno::mseal,
    Sysno::shmat,
    Sysno::shmdt,
    Sysno::modify_ldt,
    // Per-thread state of the offload thread.
    Sysno::arch_prctl,
    Sysno::set_tid_address,
    Sysno::set_robust_list,
    Sysno::rseq,
    Sysno::seccomp,
    Sysno::unshare,
    Sysno::setns,
    Sysno::personality,
]);

/// Execute system call `nr` for the application; Linux's result or `-errno`.
pub fn forward(nr: u64, args: [u64; 6]) -> i64 {
    if nr & X32_SYSCALL_BIT != 0 {
        warn_once(&X32_WARNED, || {
            format!("mote: refused forwarded x32 system call {nr:#x}")
        });
        return -i64::from(libc::ENOSYS);
    }
    if let Some(sysno) = refused(nr) {
        let id = sysno.id() as usize;
        let bit = 1u64 << (id % 64);
        if REFUSED_WARNED[id / 64].fetch_or(bit, Ordering::Relaxed) & bit == 0 {
            crate::say!("mote: refused forwarded {}", sysno.name());
        }
        return -i64::from(libc::ENOSYS);
    }
    if let Some(ret) = guard_own_state(nr, args) {
        return ret;
    }
    if guard::outside_reach(nr, &args) {
        return -i64::from(libc::EFAULT);
    }
    let args = guard::clamp_to_reach(nr, args);
    if guard::names_own_fd(nr, &args) {
        return -i64::from(libc::EBADF);
    }
    if guard::names_own_task(nr, &args) {
        return -i64::from(libc::ESRCH);
    }
    // Pointers and descriptors inside the call's structures; iovec arrays
    // and msghdrs are copied once checked, and Linux reads the copies
    // (`pinned` lives until the call has returned).
    if let Some(ret) = nested::check(nr, &args) {
        return ret;
    }
    let mut args = args;
    let pinned = match nested::pin(nr, &mut args) {
        Ok(pinned) => pinned,
        Err(ret) => return ret,
    };
    if nr == Sysno::poll as u64 || nr == Sysno::ppoll as u64 {
        if let Some(ret) = nested::poll_around_own(nr, &args, |a| {
            let [a0, a1, a2, a3, a4, a5] = a.map(|x| x as usize);
            // SAFETY: poll/ppoll over the application's array (in the
            // mirror, checked by the kernel), with a zero timeout that is
            // the proxy's own; they change nothing of the proxy's.
            unsafe { syscalls::raw::syscall6(nr as usize, a0, a1, a2, a3, a4, a5) as i64 }
        }) {
            return ret;
        }
    }
    // The application's RLIMIT_NOFILE, while it is below the process's.
    let limited = rlimits::NOFILE_LIMITED.load(Ordering::Relaxed);
    if limited {
        if let Some(ret) = rlimits::before_call(nr, &args) {
            return ret;
        }
    }
    let [a0, a1, a2, a3, a4, a5] = args.map(|a| a as usize);
    // SAFETY: the call acts on the proxy's process on the application's behalf:
    // 1. numbers that would change the proxy's own threads, signal state or address
    //    space are refused above, and so are closing or replacing the proxy's own
    //    descriptors (guard_own_state), so Rust's view of this process stays valid;
    // 2. direct pointer arguments outside the mirror reservation (which holds no
    //    proxy data) were answered EFAULT above (guard::outside_reach); inside it
    //    the kernel checks them against the mirror, which has the application's
    //    protections. Nested pointers of the calls `nested` knows (iovecs,
    //    msghdrs, ioctl structures) were checked the same way, and direct
    //    iovec arrays and msghdrs now point at mote's checked copies
    //    (`pinned`, alive until this returns); a structure of a call it does
    //    not know, and another structure rewritten by another thread after
    //    its check, are the holes docs/architecture.md ("Isolation") states.
    let ret = unsafe { syscalls::raw::syscall6(nr as usize, a0, a1, a2, a3, a4, a5) as i64 };
    pinned.finish(ret);
    if limited {
        if let Some(made) = rlimits::made_past_limit(nr, &args, ret) {
            for fd in made.into_iter().filter(|&fd| fd >= 0) {
                // SAFETY: a descriptor the call just made for the application
                // (not one of mote's: those are never handed out again while
                // open), which the application has not seen yet.
                unsafe { libc::close(fd) };
            }
            return -i64::from(libc::EMFILE);
        }
    }
    ret
}

/// `Op::PerfOpen`: `perf_event_open` on the Linux thread that executes LWK core
/// `args[1]` (`lwk::core_thread`; the runtime named it in `args[5]` on the
/// hosted platform), with the application's attributes, CPU, group and flags:
/// Linux's descriptor or `-errno` (`ESRCH` when the core has no thread of the
/// application's).
pub fn perf_open(args: [u64; 6]) -> i64 {
    let [attr, core, cpu, group, flags, named] = args;
    let Ok(tid) = crate::lwk::core_thread(core as usize, named) else {
        return -i64::from(libc::ESRCH);
    };
    // SAFETY: perf_event_open only reads `attr` (an application address in the
    // mirror; the kernel checks it, EFAULT) and makes a descriptor in the
    // proxy's table, as a forwarded call does; it changes nothing of the
    // proxy's threads, signals or memory.
    unsafe {
        syscalls::raw::syscall5(
            Sysno::perf_event_open.id() as usize,
            attr as usize,
            tid as usize,
            cpu as usize,
            group as usize,
            flags as usize,
        ) as i64
    }
}

/// Calls that are forwarded in general but would act on the proxy with these
/// arguments: answered here (`Some`) or left to Linux (`None`).
fn guard_own_state(nr: u64, args: [u64; 6]) -> Option<i64> {
    const CLOSE: u64 = Sysno::close.id() as u64;
    const DUP2: u64 = Sysno::dup2.id() as u64;
    const DUP3: u64 = Sysno::dup3.id() as u64;
    const CLOSE_RANGE: u64 = Sysno::close_range.id() as u64;
    const PRCTL: u64 = Sysno::prctl.id() as u64;
    const SETITIMER: u64 = Sysno::setitimer.id() as u64;
    const GETITIMER: u64 = Sysno::getitimer.id() as u64;
    use crate::signals::{ITIMER_PROF, ITIMER_VIRTUAL};
    const WAIT4: u64 = Sysno::wait4.id() as u64;
    const WAITID: u64 = Sysno::waitid.id() as u64;
    const GETRLIMIT: u64 = Sysno::getrlimit.id() as u64;
    const SETRLIMIT: u64 = Sysno::setrlimit.id() as u64;
    const PRLIMIT: u64 = Sysno::prlimit64.id() as u64;
    match nr {
        _ if CREDENTIALS.contains(&nr) => Some(set_credentials(nr, args)),
        GETRLIMIT | SETRLIMIT | PRLIMIT => rlimits::call(nr, &args),
        WAIT4 => own_children_only(args, 2).map(|a| raw(nr, a)),
        WAITID => own_children_only(args, 3).map(|a| raw(nr, a)),
        // The application's CPU-time timers run in the router (Linux's would
        // count the proxy's time).
        SETITIMER | GETITIMER if args[0] == ITIMER_VIRTUAL || args[0] == ITIMER_PROF => {
            Some(cpu_itimer(nr == SETITIMER, args))
        }
        // Not the application's descriptor: as if it were not open.
        CLOSE if fds::is_own_fd(args[0]) => Some(-i64::from(libc::EBADF)),
        // Linux's answer when the target number is being set up by someone else.
        DUP2 | DUP3 if fds::is_own_fd(args[1]) => Some(-i64::from(libc::EBUSY)),
        CLOSE_RANGE => Some(close_range_around_own(args[0], args[1], args[2])),
        // Seccomp filters and mm fields would bind the proxy, not the application.
        PRCTL if args[0] == libc::PR_SET_SECCOMP as u64 || args[0] == libc::PR_SET_MM as u64 => {
            warn_once(&PRCTL_WARNED, || {
                format!("mote: refused forwarded prctl option {}", args[0])
            });
            Some(-i64::from(libc::EINVAL))
        }
        _ => None,
    }
}

/// The calls that change the process's user and group ids: Linux changes
/// only the calling thread's (the offload thread's), so these go through the C
/// library, which changes every thread of the proxy at once (glibc's "setxid"
/// broadcast, as for a native program). Every offload thread, and so every
/// application thread's forwarded calls, and every thread started later, has
/// the new credentials. (`setfsuid`, `setfsgid` and `capset` are per thread
/// natively too, and stay raw.)
const CREDENTIALS: [u64; 7] = [
    Sysno::setuid as u64,
    Sysno::setgid as u64,
    Sysno::setreuid as u64,
    Sysno::setregid as u64,
    Sysno::setresuid as u64,
    Sysno::setresgid as u64,
    Sysno::setgroups as u64,
];

/// One of [`CREDENTIALS`] for the whole process: Linux's result or `-errno`.
fn set_credentials(nr: u64, args: [u64; 6]) -> i64 {
    crate::hosted::before_credentials_change();
    let id = |i: usize| args[i] as u32;
    // SAFETY: the C library's wrappers change the process's ids (every
    // thread's); setgroups reads `args[1]` groups from application memory in
    // the mirror, which the kernel checks (EFAULT). Nothing of Rust's state
    // depends on the ids.
    let r = unsafe {
        match nr {
            n if n == Sysno::setuid as u64 => libc::setuid(id(0)),
            n if n == Sysno::setgid as u64 => libc::setgid(id(0)),
            n if n == Sysno::setreuid as u64 => libc::setreuid(id(0), id(1)),
            n if n == Sysno::setregid as u64 => libc::setregid(id(0), id(1)),
            n if n == Sysno::setresuid as u64 => libc::setresuid(id(0), id(1), id(2)),
            n if n == Sysno::setresgid as u64 => libc::setresgid(id(0), id(1), id(2)),
            _ => libc::setgroups(args[0] as usize, args[1] as *const libc::gid_t),
        }
    };
    if r == -1 {
        -i64::from(
            std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EPERM),
        )
    } else {
        i64::from(r)
    }
}

/// `setitimer(which, new, old)` or `getitimer(which, cur)` of a CPU-time timer
/// (`signals::cpu_itimer`), with `struct itimerval` (`it_interval`, then
/// `it_value`, each `struct timeval`) read and written in application memory.
fn cpu_itimer(set: bool, args: [u64; 6]) -> i64 {
    let efault = -i64::from(libc::EFAULT);
    let new = if set && args[1] != 0 {
        let mut b = [0u8; 32];
        match crate::mirror::read_user(args[1], &mut b) {
            Ok(32) => {}
            _ => return efault,
        }
        let word = |i: usize| i64::from_le_bytes(b[i * 8..][..8].try_into().expect("8"));
        let ns = |sec: i64, usec: i64| {
            (sec >= 0 && (0..1_000_000).contains(&usec))
                .then(|| sec as u64 * 1_000_000_000 + usec as u64 * 1000)
        };
        match (ns(word(2), word(3)), ns(word(0), word(1))) {
            (Some(value), Some(interval)) => Some((value, interval)),
            _ => return -i64::from(libc::EINVAL),
        }
    } else if set {
        Some((0, 0))
    } else {
        None
    };
    let (left, interval) = crate::signals::cpu_itimer(args[0], new);
    let out = if set { args[2] } else { args[1] };
    if out != 0 {
        let mut b = [0u8; 32];
        for (i, ns) in [interval, left].into_iter().enumerate() {
            b[i * 16..][..8].copy_from_slice(&(ns / 1_000_000_000).to_le_bytes());
            b[i * 16 + 8..][..8].copy_from_slice(&((ns % 1_000_000_000) / 1000).to_le_bytes());
        }
        if crate::mirror::write_user(out, &b).is_err() {
            return efault;
        }
    }
    0
}

/// `__WCLONE` and `__WALL` (`include/uapi/linux/wait.h`).
const WCLONE: u64 = 0x8000_0000;
const WALL: u64 = 0x4000_0000;

/// `wait4`/`waitid` of the application, whose options are `args[opt]`: the
/// application's children are the proxy's children that signal `SIGCHLD` at
/// exit (the `mote` processes of its forks and spawns); the proxy's own (the
/// hosted application process, made with no exit signal) are "clone" children
/// in Linux's terms, which a wait sees only with `__WCLONE` or `__WALL`. So
/// `__WALL` is dropped (it would count the proxy's own), and `__WCLONE` alone
/// asks for children the application does not have: `ECHILD`, as natively.
/// `None`: nothing to change.
fn own_children_only(mut args: [u64; 6], opt: usize) -> Option<Result<[u64; 6], i64>> {
    let o = args[opt];
    if o & WALL != 0 {
        args[opt] = o & !(WALL | WCLONE);
        return Some(Ok(args));
    }
    if o & WCLONE != 0 {
        return Some(Err(-i64::from(libc::ECHILD)));
    }
    None
}

/// A forwarded call with changed arguments (`Ok`), or the answer (`Err`).
fn raw(nr: u64, a: Result<[u64; 6], i64>) -> i64 {
    let a = match a {
        Ok(a) => a.map(|x| x as usize),
        Err(ret) => return ret,
    };
    // SAFETY: wait4/waitid with the application's own pointers (valid in the
    // mirror, checked by the kernel); they act only on the proxy's children.
    unsafe { syscalls::raw::syscall6(nr as usize, a[0], a[1], a[2], a[3], a[4], a[5]) as i64 }
}

/// `close_range(first, last, flags)` over the application's descriptors only.
pub(super) fn close_range_around_own(first: u64, last: u64, flags: u64) -> i64 {
    let (Ok(first), Ok(last)) = (u32::try_from(first), u32::try_from(last)) else {
        return -i64::from(libc::EINVAL);
    };
    if first > last {
        return -i64::from(libc::EINVAL);
    }
    // CLOSE_RANGE_UNSHARE would give the offload thread a descriptor table of its
    // own, apart from the rest of the proxy; the application has nothing to unshare.
    let flags = flags & !u64::from(libc::CLOSE_RANGE_UNSHARE);
    let own = fds::own_fds();
    let mut ranges = Vec::new();
    let mut lo = Some(first);
    for &fd in own.iter().filter(|&&fd| fd >= first && fd <= last) {
        if let Some(l) = lo.filter(|&l| fd > l) {
            ranges.push((l, fd - 1));
        }
        lo = fd.checked_add(1);
    }
    if let Some(l) = lo.filter(|&l| l <= last) {
        ranges.push((l, last));
    }
    for (lo, hi) in ranges {
        // SAFETY: closes (or marks close-on-exec) only application descriptors: the
        // proxy's own are outside every range.
        let r = unsafe {
            syscalls::raw::syscall3(
                Sysno::close_range.id() as usize,
                lo as usize,
                hi as usize,
                flags as usize,
            )
        } as i64;
        if r < 0 {
            return r;
        }
    }
    0
}

/// The refused call `nr` names, if it is one.
pub fn refused(nr: u64) -> Option<Sysno> {
    let sysno = Sysno::new(usize::try_from(nr).ok()?)?;
    REFUSED.contains(sysno).then_some(sysno)
}

/// One bit per system call number: refusal already reported.
static REFUSED_WARNED: [AtomicU64; 8] = [const { AtomicU64::new(0) }; 8];
static X32_WARNED: AtomicU32 = AtomicU32::new(0);
static PRCTL_WARNED: AtomicU32 = AtomicU32::new(0);
