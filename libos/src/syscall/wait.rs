//! The calls that wait for a signal or for time: `pause`, `rt_sigsuspend`,
//! `rt_sigtimedwait`, `nanosleep`, `clock_nanosleep`, and the descriptor waits
//! with a signal-mask argument (`pselect6`, `ppoll`, `epoll_pwait`,
//! `epoll_pwait2`), as resumable steps.
//!
//! Each call is a [`Wait`] that the caller drives: [`Wait::step`] runs with the
//! process in hand and either ends the call or names the Linux call to wait in
//! (`pause`, an absolute `clock_nanosleep`, the sleep itself). The runtime makes
//! that forwarded call *without* holding the process, so the other threads go on
//! while this one waits, then steps again with the result. [`run`] drives a wait
//! with the process held throughout (one thread; the host tests).

use mote_abi::errno::Errno;
use syscalls::Sysno;

use super::forwarded;
use crate::platform::Platform;
use crate::process::Process;
use crate::signal::UNBLOCKABLE;
use crate::uapi::signal::SIGSET_SIZE;

/// `EINTR` as a raw result.
const EINTR: i64 = Errno::EINTR.ret();
/// `TIMER_ABSTIME` and `CLOCK_MONOTONIC` (`include/uapi/linux/time.h`).
const TIMER_ABSTIME: u64 = 1;
const CLOCK_MONOTONIC: u64 = 1;

/// What to do next.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// The call is over.
    Done(Result<usize, Errno>),
    /// Make this Linux call (it may block) and step again with its result.
    Forward(u64, [u64; 6]),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Pause,
    Suspend,
    TimedWait,
    Sleep,
    /// `pselect6`, `ppoll`, `epoll_pwait`, `epoll_pwait2`: Linux waits for the
    /// descriptors while libos holds the call's mask (`Wait::masked`).
    Masked,
}

/// One waiting call. Holds the buffers Linux writes during the wait, so it must
/// stay where it is between steps (the runtime keeps it on the thread's stack).
#[derive(Debug)]
pub struct Wait {
    kind: Kind,
    nr: u64,
    args: [u64; 6],
    started: bool,
    /// `rt_sigsuspend`: the caller's mask, put back by `rt_sigreturn`.
    old_mask: u64,
    /// A descriptor wait put its own mask in place (`old_mask` is the caller's).
    masked: bool,
    /// `rt_sigtimedwait`: the set, and the deadline (`[sec, nsec]` on
    /// CLOCK_MONOTONIC; `true`: a zero timeout, poll only).
    set: u64,
    deadline: Option<([u8; 16], bool)>,
    /// Sleeps: the time left Linux writes, and the request of a resumed sleep.
    left: [u8; 16],
    again: [u8; 16],
    call: [u64; 6],
}

impl Wait {
    /// The wait for call `nr` with `args`, if `nr` is one of these calls.
    pub fn new(nr: u64, args: [u64; 6]) -> Option<Wait> {
        let kind = match Sysno::new(nr as usize)? {
            Sysno::pause => Kind::Pause,
            Sysno::rt_sigsuspend => Kind::Suspend,
            Sysno::rt_sigtimedwait => Kind::TimedWait,
            Sysno::nanosleep | Sysno::clock_nanosleep => Kind::Sleep,
            Sysno::pselect6 | Sysno::ppoll | Sysno::epoll_pwait | Sysno::epoll_pwait2 => {
                Kind::Masked
            }
            _ => return None,
        };
        Some(Wait {
            kind,
            nr,
            args,
            started: false,
            old_mask: 0,
            masked: false,
            set: 0,
            deadline: None,
            left: [0; 16],
            again: [0; 16],
            call: args,
        })
    }

    /// The next step; `last` is the result of the previous `Forward` (None on the
    /// first step).
    pub fn step<P: Platform>(&mut self, pr: &mut Process, p: &P, last: Option<i64>) -> Step {
        let first = !self.started;
        self.started = true;
        match self.kind {
            Kind::Pause => self.pause(pr, p),
            Kind::Suspend => match self.suspend(pr, p, first) {
                Ok(s) => s,
                Err(e) => Step::Done(Err(e)),
            },
            Kind::TimedWait => match self.timedwait(pr, p, first, last) {
                Ok(s) => s,
                Err(e) => Step::Done(Err(e)),
            },
            Kind::Sleep => match self.sleep(pr, p, first, last) {
                Ok(s) => s,
                Err(e) => Step::Done(Err(e)),
            },
            Kind::Masked => match self.masked(pr, p, first, last) {
                Ok(s) => s,
                Err(e) => Step::Done(Err(e)),
            },
        }
    }

    /// Where the signal mask of a descriptor wait is: the index of the argument
    /// holding its address, and of its size (`pselect6`'s sixth argument is the
    /// address of `{ const sigset_t *ss; size_t ss_len; }`, read first).
    fn mask_args(&self) -> (usize, usize) {
        match Sysno::new(self.nr as usize) {
            Some(Sysno::ppoll) => (3, 4),
            _ => (4, 5),
        }
    }

    /// The mask a descriptor wait asks for (`None`: a null pointer, the mask
    /// stays), checked as Linux does (`EINVAL` for a size other than 8).
    fn wanted_mask<P: Platform>(&self, pr: &mut Process, p: &P) -> Result<Option<u64>, Errno> {
        let (ptr, size) = if self.nr == Sysno::pselect6 as u64 {
            if self.args[5] == 0 {
                return Ok(None);
            }
            let mut b = [0u8; 16];
            pr.read_user(p, self.args[5], &mut b)?;
            (
                u64::from_le_bytes(b[..8].try_into().expect("8")),
                u64::from_le_bytes(b[8..].try_into().expect("8")),
            )
        } else {
            let (a, s) = self.mask_args();
            (self.args[a], self.args[s])
        };
        if ptr == 0 {
            return Ok(None);
        }
        if size != SIGSET_SIZE {
            return Err(Errno::EINVAL);
        }
        let mut b = [0u8; 8];
        pr.read_user(p, ptr, &mut b)?;
        Ok(Some(u64::from_le_bytes(b)))
    }

    /// `pselect6`, `ppoll`, `epoll_pwait`, `epoll_pwait2` with a signal mask:
    /// the mask is libos's, so libos puts it in place for the wait (the proxy
    /// then interrupts the forwarded call for a signal it unblocks: `make -j2`
    /// waits for SIGCHLD so) and Linux waits without one. Like `rt_sigsuspend`,
    /// a signal that runs a handler ends the call with `EINTR` and the handler's
    /// frame records the caller's mask; other interruptions wait on (`pselect6`
    /// and `ppoll` wrote the time left into the caller's timeout, as Linux's
    /// restart does). Without a mask the call is only forwarded, with the same
    /// `EINTR` rule.
    fn masked<P: Platform>(
        &mut self,
        pr: &mut Process,
        p: &P,
        first: bool,
        last: Option<i64>,
    ) -> Result<Step, Errno> {
        if first {
            let wanted = self.wanted_mask(pr, p)?;
            self.old_mask = pr.signals.mask();
            self.masked = wanted.is_some();
            if let Some(mask) = wanted {
                pr.signals.set_mask(mask);
            }
            // Linux's call without the mask: libos holds it.
            if self.nr == Sysno::pselect6 as u64 {
                self.call[5] = 0;
            } else {
                let (a, s) = self.mask_args();
                (self.call[a], self.call[s]) = (0, 0);
            }
        }
        let masked = self.masked;
        if first || last == Some(EINTR) {
            if pr.handler_due(p).is_some() {
                if masked {
                    pr.signals.thread.saved_mask = Some(self.old_mask);
                }
                return Err(Errno::EINTR);
            }
            return Ok(Step::Forward(self.nr, self.call));
        }
        if masked {
            pr.signals.set_mask(self.old_mask);
        }
        Ok(Step::Done(forwarded(last.unwrap_or(0))))
    }

    fn wait_outside<P: Platform>(&self, p: &P, deadline: Option<&[u8; 16]>) -> Step {
        match deadline {
            Some(ts) => Step::Forward(
                Sysno::clock_nanosleep as u64,
                [CLOCK_MONOTONIC, TIMER_ABSTIME, p.addr_of(ts), 0, 0, 0],
            ),
            None => Step::Forward(Sysno::pause as u64, [0; 6]),
        }
    }

    /// `pause()`: until a signal runs a handler (or ends the process).
    fn pause<P: Platform>(&mut self, pr: &mut Process, p: &P) -> Step {
        if pr.handler_due(p).is_some() {
            return Step::Done(Err(Errno::EINTR));
        }
        self.wait_outside(p, None)
    }

    /// `rt_sigsuspend(mask, sigsetsize)`: wait with `mask` in place; the handler's
    /// frame records the caller's mask, which `rt_sigreturn` puts back.
    fn suspend<P: Platform>(
        &mut self,
        pr: &mut Process,
        p: &P,
        first: bool,
    ) -> Result<Step, Errno> {
        if first {
            let (mask, sigsetsize) = (self.args[0], self.args[1]);
            if sigsetsize != SIGSET_SIZE {
                return Err(Errno::EINVAL);
            }
            let mut b = [0u8; 8];
            pr.read_user(p, mask, &mut b)?;
            self.old_mask = pr.signals.mask();
            pr.signals.set_mask(u64::from_le_bytes(b));
        }
        if pr.handler_due(p).is_some() {
            pr.signals.thread.saved_mask = Some(self.old_mask);
            return Err(Errno::EINTR);
        }
        Ok(self.wait_outside(p, None))
    }

    /// `rt_sigtimedwait(set, info, timeout, sigsetsize)`.
    fn timedwait<P: Platform>(
        &mut self,
        pr: &mut Process,
        p: &P,
        first: bool,
        last: Option<i64>,
    ) -> Result<Step, Errno> {
        let (set, info, timeout, sigsetsize) =
            (self.args[0], self.args[1], self.args[2], self.args[3]);
        if first {
            if sigsetsize != SIGSET_SIZE {
                return Err(Errno::EINVAL);
            }
            let mut b = [0u8; 8];
            pr.read_user(p, set, &mut b)?;
            self.set = u64::from_le_bytes(b) & !UNBLOCKABLE;
            if info != 0 {
                pr.mm.check_access(info, 128, true)?;
            }
            if timeout != 0 {
                self.deadline = Some(deadline(pr, p, timeout)?);
            }
        } else {
            pr.signals.thread.waiting = 0;
            pr.signals.publish();
        }
        pr.signals.take_external();
        if let Some((sig, i)) = pr.signals.take_from(self.set) {
            if info != 0 {
                pr.write_user(p, info, &i.0)?;
            }
            pr.signals.publish();
            return Ok(Step::Done(Ok(sig as usize)));
        }
        if pr.handler_due(p).is_some() {
            return Err(Errno::EINTR);
        }
        // A zero timeout polls; a wait that ran to its deadline is over.
        if matches!(self.deadline, Some((_, true))) || (last == Some(0) && self.deadline.is_some())
        {
            return Err(Errno::EAGAIN);
        }
        pr.signals.thread.waiting = self.set;
        pr.signals.publish();
        Ok(self.wait_outside(p, self.deadline.as_ref().map(|d| &d.0)))
    }

    /// `nanosleep(req, rem)` and `clock_nanosleep`: forwarded; a signal that runs
    /// a handler ends it with `EINTR` and the time left, any other interruption
    /// sleeps on for the time left (Linux's restart block).
    fn sleep<P: Platform>(
        &mut self,
        pr: &mut Process,
        p: &P,
        first: bool,
        last: Option<i64>,
    ) -> Result<Step, Errno> {
        let clock = self.nr == Sysno::clock_nanosleep as u64;
        let (req_i, rem_i) = if clock { (2, 3) } else { (0, 1) };
        let absolute = clock && self.args[1] & TIMER_ABSTIME != 0;
        if first {
            if !absolute {
                self.call[rem_i] = p.addr_of(&self.left);
            }
            return Ok(Step::Forward(self.nr, self.call));
        }
        let r = last.unwrap_or(0);
        if r != EINTR {
            return Ok(Step::Done(forwarded(r)));
        }
        if pr.handler_due(p).is_some() {
            let rem = self.args[rem_i];
            if !absolute && rem != 0 {
                pr.write_user(p, rem, &self.left)?;
            }
            return Err(Errno::EINTR);
        }
        if !absolute {
            self.again = self.left;
            self.call[req_i] = p.addr_of(&self.again);
        }
        Ok(Step::Forward(self.nr, self.call))
    }
}

/// An absolute CLOCK_MONOTONIC deadline `timeout` (a relative `timespec` in user
/// memory) from now, as Linux's clock reads it; `true` for a zero timeout.
fn deadline<P: Platform>(pr: &mut Process, p: &P, timeout: u64) -> Result<([u8; 16], bool), Errno> {
    let mut ts = [0u8; 16];
    pr.read_user(p, timeout, &mut ts)?;
    let total = crate::time::parse_timespec(&ts)?;
    let (sec, nsec) = (
        (total / 1_000_000_000) as i64,
        (total % 1_000_000_000) as i64,
    );
    let now = [0u8; 16];
    let r = p.forward(
        Sysno::clock_gettime as u64,
        [CLOCK_MONOTONIC, p.addr_of(&now), 0, 0, 0, 0],
    );
    forwarded(r)?;
    let s0 = i64::from_le_bytes(now[..8].try_into().expect("8"));
    let n0 = i64::from_le_bytes(now[8..].try_into().expect("8"));
    let mut n = n0 + nsec;
    let mut s = s0.saturating_add(sec);
    if n >= 1_000_000_000 {
        n -= 1_000_000_000;
        s = s.saturating_add(1);
    }
    let mut d = [0u8; 16];
    d[..8].copy_from_slice(&s.to_le_bytes());
    d[8..].copy_from_slice(&n.to_le_bytes());
    Ok((d, sec == 0 && nsec == 0))
}

/// Drive `w` to its end with the process held throughout.
pub fn run<P: Platform>(mut w: Wait, pr: &mut Process, p: &P) -> Result<usize, Errno> {
    let mut last = None;
    loop {
        match w.step(pr, p, last) {
            Step::Done(r) => return r,
            Step::Forward(nr, args) => last = Some(p.forward(nr, args)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakePlatform;
    use crate::signal::{bit, SigAction};
    use crate::uapi::signal::{SIGCHLD, SIGUSR1};

    /// A process with one read-write page, and the page.
    fn process(p: &FakePlatform) -> (Process, u64) {
        crate::fake::process_with_memory(p, 4096)
    }

    /// Regression: the mask argument of `pselect` was ignored, so a blocked
    /// SIGCHLD never interrupted it (`make -j2` waited for ever).
    #[test]
    fn a_descriptor_wait_holds_its_mask_and_a_signal_it_unblocks_interrupts_it() {
        let p = FakePlatform::new();
        let (mut pr, page) = process(&p);
        let handler = SigAction {
            handler: 0x1234,
            ..Default::default()
        };
        pr.signals.set_action(SIGCHLD, handler).unwrap();
        pr.signals.set_mask(bit(SIGCHLD) | bit(SIGUSR1));
        // The wait's mask: SIGUSR1 only.
        pr.write_user(&p, page, &bit(SIGUSR1).to_le_bytes())
            .unwrap();
        // pselect6's sixth argument: { ss, ss_len }.
        let mut arg = [0u8; 16];
        arg[..8].copy_from_slice(&page.to_le_bytes());
        arg[8..].copy_from_slice(&8u64.to_le_bytes());
        pr.write_user(&p, page + 64, &arg).unwrap();
        let args = [0, 0, 0, 0, 0, page + 64];

        // Nothing pending: Linux waits without the mask, which is libos's meanwhile.
        let mut w = Wait::new(Sysno::pselect6 as u64, args).unwrap();
        match w.step(&mut pr, &p, None) {
            Step::Forward(nr, a) => assert_eq!((nr, a[5]), (Sysno::pselect6 as u64, 0)),
            s => panic!("{s:?}"),
        }
        assert_eq!(pr.signals.mask(), bit(SIGUSR1));
        // A descriptor was ready: the caller's mask is back.
        assert_eq!(w.step(&mut pr, &p, Some(1)), Step::Done(Ok(1)));
        assert_eq!(pr.signals.mask(), bit(SIGCHLD) | bit(SIGUSR1));

        // SIGCHLD pending: the wait ends with EINTR at once, and the handler's
        // frame will record the caller's mask.
        pr.signals.make_pending(SIGCHLD);
        let mut w = Wait::new(Sysno::pselect6 as u64, args).unwrap();
        assert_eq!(w.step(&mut pr, &p, None), Step::Done(Err(Errno::EINTR)));
        assert_eq!(
            pr.signals.thread.saved_mask,
            Some(bit(SIGCHLD) | bit(SIGUSR1))
        );

        // ppoll's size must be 8.
        let mut w = Wait::new(Sysno::ppoll as u64, [0, 0, 0, page, 4, 0]).unwrap();
        assert_eq!(w.step(&mut pr, &p, None), Step::Done(Err(Errno::EINVAL)));
    }
}
