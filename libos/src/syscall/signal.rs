//! Signal calls: `rt_sigaction`, `rt_sigprocmask`, `sigaltstack`, `rt_sigpending`,
//! the waits (`pause`, `rt_sigsuspend`, `rt_sigtimedwait`), the ways a process
//! signals itself (`kill`, `tkill`, `tgkill`, `rt_sigqueueinfo`,
//! `rt_tgsigqueueinfo`), the timers that signal (`alarm`, `setitimer`,
//! `timer_create`), and forwarded calls a signal interrupts (`interrupted`, the
//! sleeps). A signal addressed to any other process goes to Linux through the
//! proxy.
//!
//! Where waits happen: signals from outside reach the proxy, so a wait for them is
//! a forwarded `pause` (or an absolute `clock_nanosleep`) that the proxy's offload
//! thread blocks in; the proxy interrupts it with `EINTR` when a signal libos asked
//! to hear about arrives (`mote_abi::signal`), and libos looks again. Timers run in
//! Linux: `alarm`, `setitimer(ITIMER_REAL)` and `timer_create` are forwarded, so the
//! proxy process gets the signal and routes it like any other from outside.

use mote_abi::errno::Errno;
use syscalls::Sysno;

use super::forwarded;
use crate::platform::Platform;
use crate::process::Process;
use crate::sigframe::{code, SigInfo};
use crate::signal::{self, AfterEintr, AltStack, SigAction};
use crate::uapi::signal::{sigaction, stack_t, SIGSET_SIZE};

const EINTR: i64 = Errno::EINTR.ret();

/// What forwarded call `nr` returns after Linux answered `r`: `r` itself, or
/// `None` when a signal interrupted it and no handler runs, so it runs again now.
/// Only needs the process when `r` is `EINTR`, so a caller can forward without
/// holding the process and take it only then.
pub fn interrupted<P: Platform>(
    pr: &mut Process,
    p: &P,
    nr: u64,
    args: [u64; 6],
    r: i64,
) -> Option<i64> {
    (r != EINTR || pr.on_eintr(p, nr, args) != AfterEintr::RestartNow).then_some(r)
}

/// Linux raised `sig` for the calling thread during a forwarded call
/// (`SIGXFSZ` with `EFBIG`: a write past `RLIMIT_FSIZE`; the proxy took it back and
/// passed it on, `Platform::take_raised`): queue it for this thread as Linux's
/// `send_sig` does (`SI_USER`, the process's own pid and uid) and take the default
/// action that is due (core dump: the run ends).
pub fn raised_by_call<P: Platform>(pr: &mut Process, p: &P, sig: u32) {
    let Some(sig) = signal::valid(u64::from(sig)) else {
        return;
    };
    let info = pr.sender_info(p, sig, code::SI_USER);
    pr.raise_info(p, sig, info, true);
}

/// Whether forwarded result `r` may come with a signal Linux raised for the
/// calling thread (then ask `Platform::take_raised`): `EFBIG` (`SIGXFSZ`) and
/// `EPIPE` (`SIGPIPE`).
pub fn may_raise(r: i64) -> bool {
    r == Errno::EFBIG.ret() || r == Errno::EPIPE.ret()
}

/// `pause()`: until a signal runs a handler (or ends the process).
pub fn pause<P: Platform>(pr: &mut Process, p: &P) -> Result<usize, Errno> {
    wait_call(pr, p, Sysno::pause, [0; 6])
}

/// `rt_sigsuspend(mask, sigsetsize)` (see `wait`).
pub fn rt_sigsuspend<P: Platform>(
    pr: &mut Process,
    p: &P,
    mask: u64,
    sigsetsize: u64,
) -> Result<usize, Errno> {
    wait_call(pr, p, Sysno::rt_sigsuspend, [mask, sigsetsize, 0, 0, 0, 0])
}

/// `rt_sigpending(set, sigsetsize)`: pending signals that are blocked.
pub fn rt_sigpending<P: Platform>(
    pr: &mut Process,
    p: &P,
    set: u64,
    sigsetsize: u64,
) -> Result<usize, Errno> {
    if sigsetsize > SIGSET_SIZE {
        return Err(Errno::EINVAL);
    }
    pr.signals.take_external();
    let pending = pr.signals.pending() & pr.signals.mask();
    pr.write_user(p, set, &pending.to_le_bytes()[..sigsetsize as usize])?;
    Ok(0)
}

/// `rt_sigtimedwait(set, info, timeout, sigsetsize)` (see `wait`).
pub fn rt_sigtimedwait<P: Platform>(
    pr: &mut Process,
    p: &P,
    set: u64,
    info: u64,
    timeout: u64,
    sigsetsize: u64,
) -> Result<usize, Errno> {
    wait_call(
        pr,
        p,
        Sysno::rt_sigtimedwait,
        [set, info, timeout, sigsetsize, 0, 0],
    )
}

/// `nanosleep(req, rem)` and `clock_nanosleep` (see `wait`).
pub fn sleep<P: Platform>(
    pr: &mut Process,
    p: &P,
    nr: u64,
    args: [u64; 6],
) -> Result<usize, Errno> {
    let w = super::wait::Wait::new(nr, args).ok_or(Errno::ENOSYS)?;
    super::wait::run(w, pr, p)
}

fn wait_call<P: Platform>(
    pr: &mut Process,
    p: &P,
    nr: Sysno,
    args: [u64; 6],
) -> Result<usize, Errno> {
    let w = super::wait::Wait::new(nr as u64, args).expect("a waiting call");
    super::wait::run(w, pr, p)
}

/// `alarm(seconds)`: Linux's timer; SIGALRM reaches the proxy, which routes it.
pub fn alarm<P: Platform>(p: &P, seconds: u64) -> Result<usize, Errno> {
    forwarded(p.forward(Sysno::alarm as u64, [seconds, 0, 0, 0, 0, 0]))
}

/// `setitimer(which, new, old)`: forwarded. `ITIMER_REAL` counts wall time and
/// signals the process, so Linux's works for us; the CPU-time timers
/// (`ITIMER_VIRTUAL`, `ITIMER_PROF`) the proxy runs itself on the application's
/// CPU time (Linux's would count the proxy's). Another timer is `EINVAL`.
pub fn setitimer<P: Platform>(
    _pr: &mut Process,
    p: &P,
    which: u64,
    new: u64,
    old: u64,
) -> Result<usize, Errno> {
    const ITIMER_PROF: u64 = 2;
    if which > ITIMER_PROF {
        return Err(Errno::EINVAL);
    }
    forwarded(p.forward(Sysno::setitimer as u64, [which, new, old, 0, 0, 0]))
}

/// `timer_create(clock, sevp, timerid)`: wall-clock timers that signal the process
/// (or do not signal) run in Linux; CPU-time clocks and thread-directed or
/// thread-creating notifications are not offered.
pub fn timer_create<P: Platform>(
    pr: &mut Process,
    p: &P,
    clock: u64,
    sevp: u64,
    timerid: u64,
) -> Result<usize, Errno> {
    const SIGEV_SIGNAL: i32 = 0;
    const SIGEV_NONE: i32 = 1;
    let clock_ok = matches!(clock as i32, 0 | 1 | 4 | 7 | 8 | 9 | 11);
    let notify = if sevp != 0 {
        let mut b = [0u8; 16];
        pr.read_user(p, sevp, &mut b)?;
        i32::from_le_bytes(b[12..16].try_into().expect("4"))
    } else {
        SIGEV_SIGNAL
    };
    if !clock_ok || !matches!(notify, SIGEV_SIGNAL | SIGEV_NONE) {
        pr.log_once(p, Sysno::timer_create as u64 + 0x2_0000, || {
            alloc::format!(
                "timer_create(clock {}, notify {notify}): only wall-clock timers that signal the process are offered; returning ENOSYS",
                clock as i32
            )
        });
        return Err(Errno::ENOSYS);
    }
    forwarded(p.forward(Sysno::timer_create as u64, [clock, sevp, timerid, 0, 0, 0]))
}

/// `rt_sigaction(sig, act, oact, sigsetsize)`.
pub fn rt_sigaction<P: Platform>(
    pr: &mut Process,
    p: &P,
    sig: u64,
    act: u64,
    oact: u64,
    sigsetsize: u64,
) -> Result<usize, Errno> {
    if sigsetsize != SIGSET_SIZE {
        return Err(Errno::EINVAL);
    }
    let sig = signal::valid(sig).ok_or(Errno::EINVAL)?;
    let new = if act != 0 {
        let mut b = [0u8; sigaction::SIZE];
        pr.read_user(p, act, &mut b)?;
        Some(SigAction::from_bytes(&b))
    } else {
        None
    };
    if oact != 0 {
        pr.mm.check_access(oact, sigaction::SIZE as u64, true)?;
    }
    let old = match new {
        Some(a) => pr.signals.set_action(sig, a)?,
        None => pr.signals.action(sig),
    };
    if oact != 0 {
        pr.write_user(p, oact, &old.to_bytes())?;
    }
    Ok(0)
}

/// `rt_sigprocmask(how, set, oset, sigsetsize)`.
pub fn rt_sigprocmask<P: Platform>(
    pr: &mut Process,
    p: &P,
    how: u64,
    set: u64,
    oset: u64,
    sigsetsize: u64,
) -> Result<usize, Errno> {
    if sigsetsize != SIGSET_SIZE {
        return Err(Errno::EINVAL);
    }
    let old = pr.signals.mask();
    if oset != 0 {
        pr.mm.check_access(oset, 8, true)?;
    }
    if set != 0 {
        let mut b = [0u8; 8];
        pr.read_user(p, set, &mut b)?;
        pr.signals.change_mask(how, u64::from_le_bytes(b))?;
    }
    if oset != 0 {
        pr.write_user(p, oset, &old.to_le_bytes())?;
    }
    pr.deliver_pending(p);
    Ok(0)
}

/// `sigaltstack(ss, old_ss)`.
pub fn sigaltstack<P: Platform>(
    pr: &mut Process,
    p: &P,
    ss: u64,
    old_ss: u64,
) -> Result<usize, Errno> {
    let old = pr.signals.altstack();
    if old_ss != 0 {
        pr.mm.check_access(old_ss, stack_t::SIZE as u64, true)?;
    }
    if ss != 0 {
        let mut b = [0u8; stack_t::SIZE];
        pr.read_user(p, ss, &mut b)?;
        pr.signals.set_altstack(AltStack::from_bytes(&b))?;
    }
    if old_ss != 0 {
        // Linux reports SS_ONSTACK while the caller runs on it.
        let sp = pr.signals.thread.caller_sp;
        let reported = AltStack {
            flags: crate::sigframe::altstack_flags(old, sp),
            ..old
        };
        pr.write_user(p, old_ss, &reported.to_bytes())?;
    }
    Ok(0)
}

/// `kill(pid, sig)`.
pub fn kill<P: Platform>(pr: &mut Process, p: &P, pid: u64, sig: u64) -> Result<usize, Errno> {
    if pid as i32 == pr.pid as i32 && !through_linux(pr, sig) {
        return pr.raise(p, sig);
    }
    // Other processes, process groups (0, -pgid) and -1 are Linux's to reach.
    forwarded(p.forward(Sysno::kill as u64, [pid, sig, 0, 0, 0, 0]))
}

/// Whether a process-directed signal the application sends itself goes
/// through Linux to the proxy, which routes it as one from outside: when it is
/// for another thread (`Signals::for_another_thread`), which may be blocked in
/// Linux (`sigwait` in the main thread, a `read`) where only the proxy's kick
/// reaches it. Otherwise libos queues it at once, and a signal the caller does
/// not block is delivered before `kill` returns, as POSIX asks.
fn through_linux(pr: &Process, sig: u64) -> bool {
    signal::valid(sig).is_some_and(|s| signal::proxy_routes(s) && pr.signals.for_another_thread(s))
}

/// `tkill(tid, sig)`.
pub fn tkill<P: Platform>(pr: &mut Process, p: &P, tid: u64, sig: u64) -> Result<usize, Errno> {
    let tid = tid as i32;
    if tid <= 0 {
        return Err(Errno::EINVAL);
    }
    if tid == pr.tid() as i32 {
        return raise_thread(pr, p, sig);
    }
    if pr.signals.has_other_thread(tid as u32) {
        return raise_other(pr, p, tid as u32, sig);
    }
    forwarded(p.forward(Sysno::tkill as u64, [tid as u64, sig, 0, 0, 0, 0]))
}

/// `tgkill(tgid, tid, sig)`.
pub fn tgkill<P: Platform>(
    pr: &mut Process,
    p: &P,
    tgid: u64,
    tid: u64,
    sig: u64,
) -> Result<usize, Errno> {
    let (tgid, tid) = (tgid as i32, tid as i32);
    if tgid <= 0 || tid <= 0 {
        return Err(Errno::EINVAL);
    }
    if tgid == pr.pid as i32 {
        if tid == pr.tid() as i32 {
            return raise_thread(pr, p, sig);
        }
        if pr.signals.has_other_thread(tid as u32) {
            return raise_other(pr, p, tid as u32, sig);
        }
        return Err(Errno::ESRCH);
    }
    forwarded(p.forward(
        Sysno::tgkill as u64,
        [tgid as u64, tid as u64, sig, 0, 0, 0],
    ))
}

/// `tkill`/`tgkill` to another thread of the process: queued for it, and the
/// runtime interrupts its wait (`Process::interrupt`).
fn raise_other<P: Platform>(pr: &mut Process, p: &P, tid: u32, sig: u64) -> Result<usize, Errno> {
    if sig == 0 {
        return Ok(0);
    }
    let sig = signal::valid(sig).ok_or(Errno::EINVAL)?;
    let info = pr.sender_info(p, sig, crate::sigframe::code::SI_TKILL);
    pr.signals.queue_for(tid, sig, info);
    pr.interrupt.push(tid);
    pr.signals.publish();
    Ok(0)
}

/// `tkill`/`tgkill` to ourselves: thread-directed, `SI_TKILL`.
fn raise_thread<P: Platform>(pr: &mut Process, p: &P, sig: u64) -> Result<usize, Errno> {
    if sig == 0 {
        return Ok(0);
    }
    let sig = signal::valid(sig).ok_or(Errno::EINVAL)?;
    if pr.signals.ignored(sig) && !pr.signals.blocked(sig) {
        return Ok(0);
    }
    let info = pr.sender_info(p, sig, code::SI_TKILL);
    pr.raise_info(p, sig, info, true);
    Ok(0)
}

/// `rt_sigqueueinfo`/`rt_tgsigqueueinfo` to ourselves: the caller's `siginfo` as it
/// is (Linux's `EPERM` for `si_code >= 0` applies to other processes only).
fn queue_own<P: Platform>(
    pr: &mut Process,
    p: &P,
    sig: u64,
    info: u64,
    thread: bool,
) -> Result<usize, Errno> {
    let mut b = [0u8; 128];
    pr.read_user(p, info, &mut b)?;
    let sig = signal::valid(sig).ok_or(Errno::EINVAL)?;
    let mut i = SigInfo(b);
    i.0[0..4].copy_from_slice(&(sig as i32).to_le_bytes());
    pr.raise_info(p, sig, i, thread);
    Ok(0)
}

/// `rt_sigqueueinfo(tgid, sig, info)`.
pub fn rt_sigqueueinfo<P: Platform>(
    pr: &mut Process,
    p: &P,
    tgid: u64,
    sig: u64,
    info: u64,
) -> Result<usize, Errno> {
    if tgid as i32 == pr.pid as i32 && !through_linux(pr, sig) {
        return queue_own(pr, p, sig, info, false);
    }
    forwarded(p.forward(Sysno::rt_sigqueueinfo as u64, [tgid, sig, info, 0, 0, 0]))
}

/// `rt_tgsigqueueinfo(tgid, tid, sig, info)`.
pub fn rt_tgsigqueueinfo<P: Platform>(
    pr: &mut Process,
    p: &P,
    tgid: u64,
    tid: u64,
    sig: u64,
    info: u64,
) -> Result<usize, Errno> {
    if tgid as i32 == pr.pid as i32 {
        if tid as i32 != pr.tid() as i32 {
            return Err(Errno::ESRCH);
        }
        return queue_own(pr, p, sig, info, true);
    }
    forwarded(p.forward(
        Sysno::rt_tgsigqueueinfo as u64,
        [tgid, tid, sig, info, 0, 0],
    ))
}
