//! Signal calls: `rt_sigaction`, `rt_sigprocmask`, `sigaltstack`, and the ways a
//! process signals itself (`kill`, `tkill`, `tgkill`, `rt_sigqueueinfo`,
//! `rt_tgsigqueueinfo`). A signal addressed to any other process goes to Linux
//! through the proxy.

use mote_abi::errno::Errno;
use syscalls::Sysno;

use super::forwarded;
use crate::platform::Platform;
use crate::process::Process;
use crate::signal::{self, AltStack, SigAction};
use crate::uapi::signal::{sigaction, stack_t, SIGSET_SIZE};

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
        pr.write_user(p, old_ss, &old.to_bytes())?;
    }
    Ok(0)
}

/// `kill(pid, sig)`.
pub fn kill<P: Platform>(pr: &mut Process, p: &P, pid: u64, sig: u64) -> Result<usize, Errno> {
    if pid as i32 == pr.pid as i32 {
        return pr.raise(p, sig);
    }
    // Other processes, process groups (0, -pgid) and -1 are Linux's to reach.
    forwarded(p.forward(Sysno::kill as u64, [pid, sig, 0, 0, 0, 0]))
}

/// `tkill(tid, sig)`.
pub fn tkill<P: Platform>(pr: &mut Process, p: &P, tid: u64, sig: u64) -> Result<usize, Errno> {
    let tid = tid as i32;
    if tid <= 0 {
        return Err(Errno::EINVAL);
    }
    if tid == pr.tid() as i32 {
        return pr.raise(p, sig);
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
        if tid != pr.tid() as i32 {
            // No other thread exists yet.
            return Err(Errno::ESRCH);
        }
        return pr.raise(p, sig);
    }
    forwarded(p.forward(
        Sysno::tgkill as u64,
        [tgid as u64, tid as u64, sig, 0, 0, 0],
    ))
}

/// `rt_sigqueueinfo(tgid, sig, info)`: to ourselves the `siginfo` only matters to a
/// handler, which cannot run yet.
pub fn rt_sigqueueinfo<P: Platform>(
    pr: &mut Process,
    p: &P,
    tgid: u64,
    sig: u64,
    info: u64,
) -> Result<usize, Errno> {
    if tgid as i32 == pr.pid as i32 {
        pr.mm.check_access(info, 128, false)?;
        return pr.raise(p, sig);
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
        pr.mm.check_access(info, 128, false)?;
        return pr.raise(p, sig);
    }
    forwarded(p.forward(
        Sysno::rt_tgsigqueueinfo as u64,
        [tgid, tid, sig, info, 0, 0],
    ))
}
