//! Signal state of the process: dispositions (`rt_sigaction`), the blocked mask
//! (`rt_sigprocmask`), signals pending while blocked, and the alternate stack
//! (`sigaltstack`). Pure bookkeeping; what happens when a signal arrives is
//! `Process::raise`. Delivery to handlers is a later issue.

use mote_abi::errno::Errno;

use crate::uapi::signal::*;

/// The bit of signal `sig` (1..=64) in a `sigset_t`.
pub const fn bit(sig: u32) -> u64 {
    1 << (sig - 1)
}

/// Signals that can be neither blocked, caught nor ignored.
pub const UNBLOCKABLE: u64 = bit(SIGKILL) | bit(SIGSTOP);

/// A valid signal number.
pub fn valid(sig: u64) -> Option<u32> {
    (1..=NSIG as u64).contains(&sig).then_some(sig as u32)
}

/// `struct kernel_sigaction`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SigAction {
    pub handler: u64,
    pub flags: u64,
    pub restorer: u64,
    pub mask: u64,
}

impl SigAction {
    /// Decode the 32 bytes `rt_sigaction` reads.
    pub fn from_bytes(b: &[u8; sigaction::SIZE]) -> Self {
        let w = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"));
        SigAction {
            handler: w(sigaction::HANDLER),
            flags: w(sigaction::FLAGS),
            restorer: w(sigaction::RESTORER),
            mask: w(sigaction::MASK),
        }
    }

    /// Encode as `rt_sigaction` writes it.
    pub fn to_bytes(self) -> [u8; sigaction::SIZE] {
        let mut b = [0u8; sigaction::SIZE];
        b[sigaction::HANDLER..][..8].copy_from_slice(&self.handler.to_le_bytes());
        b[sigaction::FLAGS..][..8].copy_from_slice(&self.flags.to_le_bytes());
        b[sigaction::RESTORER..][..8].copy_from_slice(&self.restorer.to_le_bytes());
        b[sigaction::MASK..][..8].copy_from_slice(&self.mask.to_le_bytes());
        b
    }
}

/// What the kernel does with a signal nobody handles (`signal(7)`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DefaultAction {
    /// End the process (with or without a core dump).
    Terminate,
    /// Nothing.
    Ignore,
    /// Stop the process.
    Stop,
    /// Continue a stopped process.
    Continue,
}

/// The default action of `sig`.
pub fn default_action(sig: u32) -> DefaultAction {
    match sig {
        SIGCHLD | SIGURG | SIGWINCH => DefaultAction::Ignore,
        SIGCONT => DefaultAction::Continue,
        SIGSTOP | SIGTSTP | SIGTTIN | SIGTTOU => DefaultAction::Stop,
        _ => DefaultAction::Terminate,
    }
}

/// How the process currently treats a signal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    Default(DefaultAction),
    Ignore,
    /// The application installed a handler at this address.
    Handler(u64),
}

/// `stack_t` as `sigaltstack` reads and writes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AltStack {
    pub sp: u64,
    pub flags: u32,
    pub size: u64,
}

impl AltStack {
    /// No alternate stack.
    pub const DISABLED: AltStack = AltStack {
        sp: 0,
        flags: SS_DISABLE,
        size: 0,
    };

    pub fn from_bytes(b: &[u8; stack_t::SIZE]) -> Self {
        AltStack {
            sp: u64::from_le_bytes(b[stack_t::SP..][..8].try_into().expect("8 bytes")),
            flags: u32::from_le_bytes(b[stack_t::FLAGS..][..4].try_into().expect("4 bytes")),
            size: u64::from_le_bytes(b[stack_t::SS_SIZE..][..8].try_into().expect("8 bytes")),
        }
    }

    pub fn to_bytes(self) -> [u8; stack_t::SIZE] {
        let mut b = [0u8; stack_t::SIZE];
        b[stack_t::SP..][..8].copy_from_slice(&self.sp.to_le_bytes());
        b[stack_t::FLAGS..][..4].copy_from_slice(&self.flags.to_le_bytes());
        b[stack_t::SS_SIZE..][..8].copy_from_slice(&self.size.to_le_bytes());
        b
    }
}

/// The process's signal state.
#[derive(Clone, Debug)]
pub struct Signals {
    actions: [SigAction; NSIG as usize],
    mask: u64,
    pending: u64,
    altstack: AltStack,
}

impl Default for Signals {
    fn default() -> Self {
        Signals {
            actions: [SigAction::default(); NSIG as usize],
            mask: 0,
            pending: 0,
            altstack: AltStack::DISABLED,
        }
    }
}

impl Signals {
    /// The action of `sig` (1..=64).
    pub fn action(&self, sig: u32) -> SigAction {
        self.actions[sig as usize - 1]
    }

    /// Install `act` for `sig`; returns the previous action. SIGKILL and SIGSTOP
    /// cannot be changed (`EINVAL`).
    pub fn set_action(&mut self, sig: u32, mut act: SigAction) -> Result<SigAction, Errno> {
        if bit(sig) & UNBLOCKABLE != 0 {
            return Err(Errno::EINVAL);
        }
        act.mask &= !UNBLOCKABLE;
        let old = core::mem::replace(&mut self.actions[sig as usize - 1], act);
        // A signal that becomes ignored is discarded even while pending (POSIX).
        if self.disposition(sig) == Disposition::Ignore
            || self.disposition(sig) == Disposition::Default(DefaultAction::Ignore)
        {
            self.pending &= !bit(sig);
        }
        Ok(old)
    }

    /// What `execve` keeps (POSIX): ignored signals stay ignored, handled ones go
    /// back to their default (the handler's code is gone), the mask and pending
    /// signals stay, the alternate stack is dropped.
    pub fn reset_for_exec(&mut self) {
        for a in self.actions.iter_mut() {
            if a.handler != SIG_IGN {
                *a = SigAction::default();
            }
        }
        self.altstack = AltStack::DISABLED;
    }

    /// How `sig` is treated now.
    pub fn disposition(&self, sig: u32) -> Disposition {
        match self.action(sig).handler {
            SIG_DFL => Disposition::Default(default_action(sig)),
            SIG_IGN => Disposition::Ignore,
            h => Disposition::Handler(h),
        }
    }

    /// The blocked mask.
    pub fn mask(&self) -> u64 {
        self.mask
    }

    /// `rt_sigprocmask(how, set)`: returns the old mask. SIGKILL and SIGSTOP are never
    /// blocked.
    pub fn change_mask(&mut self, how: u64, set: u64) -> Result<u64, Errno> {
        let old = self.mask;
        self.mask = match how {
            SIG_BLOCK => old | set,
            SIG_UNBLOCK => old & !set,
            SIG_SETMASK => set,
            _ => return Err(Errno::EINVAL),
        } & !UNBLOCKABLE;
        Ok(old)
    }

    /// Is `sig` blocked?
    pub fn blocked(&self, sig: u32) -> bool {
        self.mask & bit(sig) != 0
    }

    /// Remember `sig` until it is unblocked.
    pub fn make_pending(&mut self, sig: u32) {
        self.pending |= bit(sig);
    }

    /// Signals pending.
    pub fn pending(&self) -> u64 {
        self.pending
    }

    /// The lowest pending signal that is no longer blocked, removed from the set.
    pub fn take_deliverable(&mut self) -> Option<u32> {
        let ready = self.pending & !self.mask;
        if ready == 0 {
            return None;
        }
        let sig = ready.trailing_zeros() + 1;
        self.pending &= !bit(sig);
        Some(sig)
    }

    /// The alternate signal stack.
    pub fn altstack(&self) -> AltStack {
        self.altstack
    }

    /// `sigaltstack(ss)`: validate and install. Nothing runs on the alternate stack
    /// yet, so `EPERM` (changing it while on it) cannot happen.
    pub fn set_altstack(&mut self, ss: AltStack) -> Result<(), Errno> {
        let mode = ss.flags & !SS_AUTODISARM;
        if mode != 0 && mode != SS_DISABLE && mode != SS_ONSTACK {
            return Err(Errno::EINVAL);
        }
        if mode == SS_DISABLE {
            self.altstack = AltStack::DISABLED;
            return Ok(());
        }
        if ss.size < MINSIGSTKSZ {
            return Err(Errno::ENOMEM);
        }
        self.altstack = AltStack {
            sp: ss.sp,
            flags: ss.flags & SS_AUTODISARM,
            size: ss.size,
        };
        Ok(())
    }
}

/// Name of a signal for messages.
pub fn name(sig: u32) -> &'static str {
    const NAMES: [&str; 32] = [
        "?",
        "SIGHUP",
        "SIGINT",
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGKILL",
        "SIGUSR1",
        "SIGSEGV",
        "SIGUSR2",
        "SIGPIPE",
        "SIGALRM",
        "SIGTERM",
        "SIGSTKFLT",
        "SIGCHLD",
        "SIGCONT",
        "SIGSTOP",
        "SIGTSTP",
        "SIGTTIN",
        "SIGTTOU",
        "SIGURG",
        "SIGXCPU",
        "SIGXFSZ",
        "SIGVTALRM",
        "SIGPROF",
        "SIGWINCH",
        "SIGIO",
        "SIGPWR",
        "SIGSYS",
    ];
    match sig {
        1..=31 => NAMES[sig as usize],
        32..=64 => "a real-time signal",
        _ => "an invalid signal",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kill_and_stop_cannot_be_blocked_or_caught() {
        let mut s = Signals::default();
        s.change_mask(SIG_SETMASK, u64::MAX).unwrap();
        assert!(!s.blocked(SIGKILL) && !s.blocked(SIGSTOP) && s.blocked(SIGTERM));
        let act = SigAction {
            handler: 0x1234,
            ..Default::default()
        };
        assert_eq!(s.set_action(SIGKILL, act), Err(Errno::EINVAL));
        assert_eq!(s.set_action(SIGSTOP, act), Err(Errno::EINVAL));
        let mut with_mask = act;
        with_mask.mask = u64::MAX;
        s.set_action(SIGUSR1, with_mask).unwrap();
        assert_eq!(s.action(SIGUSR1).mask, !UNBLOCKABLE);
    }

    #[test]
    fn mask_operations() {
        let mut s = Signals::default();
        assert_eq!(s.change_mask(SIG_BLOCK, bit(SIGINT) | bit(SIGTERM)), Ok(0));
        assert_eq!(
            s.change_mask(SIG_UNBLOCK, bit(SIGINT)),
            Ok(bit(SIGINT) | bit(SIGTERM))
        );
        assert_eq!(s.mask(), bit(SIGTERM));
        assert_eq!(s.change_mask(SIG_SETMASK, bit(SIGHUP)), Ok(bit(SIGTERM)));
        assert_eq!(s.change_mask(7, 0), Err(Errno::EINVAL));
        assert_eq!(s.mask(), bit(SIGHUP));
    }

    #[test]
    fn pending_signals_come_out_when_unblocked() {
        let mut s = Signals::default();
        s.change_mask(SIG_BLOCK, bit(SIGTERM)).unwrap();
        s.make_pending(SIGTERM);
        assert_eq!(s.take_deliverable(), None);
        s.change_mask(SIG_UNBLOCK, bit(SIGTERM)).unwrap();
        assert_eq!(s.take_deliverable(), Some(SIGTERM));
        assert_eq!(s.take_deliverable(), None);
        // Ignoring a pending signal discards it.
        s.change_mask(SIG_BLOCK, bit(SIGUSR1)).unwrap();
        s.make_pending(SIGUSR1);
        s.set_action(
            SIGUSR1,
            SigAction {
                handler: SIG_IGN,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(s.pending(), 0);
    }

    #[test]
    fn sigaction_bytes_round_trip() {
        let a = SigAction {
            handler: 0x40_1000,
            flags: 0x0400_0004,
            restorer: 0x40_2000,
            mask: 0x8000_0001,
        };
        let b = a.to_bytes();
        assert_eq!(&b[8..16], &0x0400_0004u64.to_le_bytes());
        assert_eq!(SigAction::from_bytes(&b), a);
    }

    #[test]
    fn altstack_rules() {
        let mut s = Signals::default();
        assert_eq!(s.altstack(), AltStack::DISABLED);
        let small = AltStack {
            sp: 0x1000,
            flags: 0,
            size: 1024,
        };
        assert_eq!(s.set_altstack(small), Err(Errno::ENOMEM));
        let bad = AltStack { flags: 77, ..small };
        assert_eq!(s.set_altstack(bad), Err(Errno::EINVAL));
        let ok = AltStack {
            size: 8192,
            ..small
        };
        s.set_altstack(ok).unwrap();
        assert_eq!(s.altstack(), ok);
        assert_eq!(AltStack::from_bytes(&ok.to_bytes()), ok);
    }
}
