//! Time: `clock_gettime`, `gettimeofday` and `time` answered from the TSC
//! ([`crate::time::Clock`]); clocks libos does not keep (CPU-time clocks, dynamic
//! fd clocks, TAI) are forwarded to Linux unchanged.

use mote_abi::errno::Errno;
use syscalls::Sysno;

use super::forwarded;
use crate::platform::Platform;
use crate::process::Process;
use crate::time::{id, timespec, timeval};

/// `clock`'s time from libos's clocks, which also refresh the vDSO's data page —
/// unless the application unmapped or replaced that page: then libos stops
/// writing there.
fn now<P: Platform>(pr: &mut Process, p: &P, clock: u64) -> Option<u64> {
    if pr.clock.has_vdso() && pr.mm.label_at(crate::vdso::VVAR_VA) != Some(&b"[vvar]"[..]) {
        pr.clock.detach_vdso();
    }
    pr.clock.now(p, clock)
}

/// `clock_gettime(clock, tp)`.
pub fn clock_gettime<P: Platform>(
    pr: &mut Process,
    p: &P,
    clock: u64,
    tp: u64,
) -> Result<usize, Errno> {
    let Some(ns) = now(pr, p, clock) else {
        return forwarded(p.forward(Sysno::clock_gettime as u64, [clock, tp, 0, 0, 0, 0]));
    };
    pr.mm.check_access(tp, 16, true)?;
    p.write_mem(tp, &timespec(ns));
    Ok(0)
}

/// `gettimeofday(tv, tz)`: the obsolete timezone argument goes to Linux.
pub fn gettimeofday<P: Platform>(
    pr: &mut Process,
    p: &P,
    tv: u64,
    tz: u64,
) -> Result<usize, Errno> {
    if tz != 0 {
        return forwarded(p.forward(Sysno::gettimeofday as u64, [tv, tz, 0, 0, 0, 0]));
    }
    if tv == 0 {
        return Ok(0);
    }
    let Some(ns) = now(pr, p, id::REALTIME) else {
        return forwarded(p.forward(Sysno::gettimeofday as u64, [tv, 0, 0, 0, 0, 0]));
    };
    pr.mm.check_access(tv, 16, true)?;
    p.write_mem(tv, &timeval(ns));
    Ok(0)
}

/// `time(tloc)`.
pub fn time<P: Platform>(pr: &mut Process, p: &P, tloc: u64) -> Result<usize, Errno> {
    let Some(ns) = now(pr, p, id::REALTIME) else {
        return forwarded(p.forward(Sysno::time as u64, [tloc, 0, 0, 0, 0, 0]));
    };
    let secs = ns / 1_000_000_000;
    if tloc != 0 {
        pr.mm.check_access(tloc, 8, true)?;
        p.write_mem(tloc, &secs.to_le_bytes());
    }
    Ok(secs as usize)
}
