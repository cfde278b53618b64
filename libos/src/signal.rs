//! Signal state: process-wide dispositions (`rt_sigaction`) and process-directed
//! pending signals in [`Signals`]; what belongs to a thread — its blocked mask
//! (`rt_sigprocmask`), thread-directed pending signals, its alternate stack
//! (`sigaltstack`), the mask `sigsuspend` swapped out and a call to restart after a
//! handler — in [`ThreadSignals`], so it can move into a per-thread structure.
//!
//! Also the delivery decisions that do not need the machine: which pending signal
//! comes next, what mask a handler runs with, what an interrupted call does
//! ([`after_eintr`]), and what the proxy must wake the application for
//! ([`Signals::publish`], protocol in `mote_abi::signal`). Frames are
//! `sigframe`'s; the runtime builds them.

use mote_abi::errno::Errno;
use mote_abi::signal::{SignalPage, INFO_BYTES};
use syscalls::Sysno;

use crate::sigframe::SigInfo;
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

/// A system call to run again once the handler returns (`SA_RESTART`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Restart {
    pub nr: u64,
    pub args: [u64; 6],
}

/// What belongs to one thread.
#[derive(Clone, Debug)]
pub struct ThreadSignals {
    /// The blocked mask.
    pub mask: u64,
    /// Thread-directed signals pending (`tkill`, `tgkill`, faults).
    pub pending: u64,
    /// The alternate signal stack.
    pub altstack: AltStack,
    /// The mask the next frame records instead of `mask` (`sigsuspend`'s caller's).
    pub saved_mask: Option<u64>,
    /// The interrupted call the next frame resumes into (`SA_RESTART`).
    pub restart: Option<Restart>,
    /// Signals `rt_sigtimedwait` waits for: they wake the thread while blocked.
    pub waiting: u64,
    /// The application's rsp at the system call being served (0: unknown), set
    /// by the entries: whether the thread runs on its alternate stack.
    pub caller_sp: u64,
    /// A vfork child's own dispositions (`None` for a thread): it is another
    /// process, whose `sigaction` must not change its parent's (Linux's vfork
    /// child has its own `sighand` unless `CLONE_SIGHAND`; glibc's `posix_spawn`
    /// child resets every handled signal to `SIG_DFL` before `execve`).
    pub own_actions: Option<alloc::boxed::Box<[SigAction; NSIG as usize]>>,
}

impl Default for ThreadSignals {
    fn default() -> Self {
        ThreadSignals {
            mask: 0,
            pending: 0,
            altstack: AltStack::DISABLED,
            saved_mask: None,
            restart: None,
            waiting: 0,
            caller_sp: 0,
            own_actions: None,
        }
    }
}

/// The process's signal state.
#[derive(Clone, Debug)]
pub struct Signals {
    actions: [SigAction; NSIG as usize],
    /// Process-directed signals pending.
    pending: u64,
    /// The `siginfo` of each pending signal.
    infos: [[u8; INFO_BYTES]; NSIG as usize],
    /// The state of the thread that holds the process now (the runtime swaps it
    /// in with `switch_thread` when a thread takes the process lock).
    pub thread: ThreadSignals,
    /// Whose state `thread` is (0: not yet said; the main thread).
    current: u32,
    /// The other threads' state, by tid.
    others: alloc::collections::BTreeMap<u32, ThreadSignals>,
    /// Signals from outside, shared with the proxy (none in host tests).
    page: Option<&'static SignalPage>,
    /// The application's real uid (`si_uid` of signals it sends itself), once asked.
    pub sender_uid: Option<u32>,
}

impl Default for Signals {
    fn default() -> Self {
        Signals {
            actions: [SigAction::default(); NSIG as usize],
            pending: 0,
            infos: [[0; INFO_BYTES]; NSIG as usize],
            thread: ThreadSignals::default(),
            current: 0,
            others: alloc::collections::BTreeMap::new(),
            page: None,
            sender_uid: None,
        }
    }
}

/// `Signals::current` after the current thread ended: nobody's state is loaded.
const NOBODY: u32 = u32::MAX;

/// Whether the proxy routes `sig` when Linux signals its process with it
/// (`mote_abi::signal::routed`, the one list).
pub fn proxy_routes(sig: u32) -> bool {
    mote_abi::signal::routed(sig)
}

/// Signals Linux dequeues first: the synchronous ones (`SYNCHRONOUS_MASK`).
const SYNCHRONOUS: u64 =
    bit(SIGSEGV) | bit(SIGBUS) | bit(SIGILL) | bit(SIGTRAP) | bit(SIGFPE) | bit(SIGSYS);

/// The next of `set` to deliver: synchronous signals first, then the lowest.
fn first(set: u64) -> Option<u32> {
    let pick = if set & SYNCHRONOUS != 0 {
        set & SYNCHRONOUS
    } else {
        set
    };
    (pick != 0).then(|| pick.trailing_zeros() + 1)
}

impl Signals {
    /// The action of `sig` (1..=64), the running vfork child's own if it is one.
    pub fn action(&self, sig: u32) -> SigAction {
        match &self.thread.own_actions {
            Some(own) => own[sig as usize - 1],
            None => self.actions[sig as usize - 1],
        }
    }

    /// Install `act` for `sig`; returns the previous action. SIGKILL and SIGSTOP
    /// cannot be changed (`EINVAL`).
    pub fn set_action(&mut self, sig: u32, mut act: SigAction) -> Result<SigAction, Errno> {
        if bit(sig) & UNBLOCKABLE != 0 {
            return Err(Errno::EINVAL);
        }
        act.mask &= !UNBLOCKABLE;
        let table = match &mut self.thread.own_actions {
            Some(own) => &mut own[..],
            None => &mut self.actions[..],
        };
        let old = core::mem::replace(&mut table[sig as usize - 1], act);
        // A signal that becomes ignored is discarded even while pending (POSIX).
        if self.ignored(sig) {
            self.pending &= !bit(sig);
            self.thread.pending &= !bit(sig);
        }
        self.publish();
        Ok(old)
    }

    /// A new process's signal state: default actions but for `ignored` (bit
    /// `sig - 1`), which it inherits ignored as `execve` keeps them, and the
    /// `blocked` mask it inherits; SIGKILL and SIGSTOP cannot be ignored or
    /// blocked.
    pub fn inheriting(ignored: u64, blocked: u64) -> Self {
        let mut s = Signals::default();
        s.thread.mask = blocked & !UNBLOCKABLE;
        for sig in
            (1..=NSIG).filter(|&sig| ignored & bit(sig) != 0 && sig != SIGKILL && sig != SIGSTOP)
        {
            s.actions[(sig - 1) as usize].handler = SIG_IGN;
        }
        s
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
        self.thread.altstack = AltStack::DISABLED;
        self.thread.saved_mask = None;
        self.thread.restart = None;
        self.thread.waiting = 0;
        self.publish();
    }

    /// How `sig` is treated now.
    pub fn disposition(&self, sig: u32) -> Disposition {
        match self.action(sig).handler {
            SIG_DFL => Disposition::Default(default_action(sig)),
            SIG_IGN => Disposition::Ignore,
            h => Disposition::Handler(h),
        }
    }

    /// Signals with a handler installed.
    pub fn handled_set(&self) -> u64 {
        (1..=NSIG)
            .filter(|&s| matches!(self.disposition(s), Disposition::Handler(_)))
            .fold(0, |m, s| m | bit(s))
    }

    /// Whether `sig` would be discarded now (ignored, or ignored by default).
    pub fn ignored(&self, sig: u32) -> bool {
        matches!(
            self.disposition(sig),
            Disposition::Ignore | Disposition::Default(DefaultAction::Ignore)
        )
    }

    /// The blocked mask.
    pub fn mask(&self) -> u64 {
        self.thread.mask
    }

    /// Set the blocked mask (SIGKILL and SIGSTOP stay unblocked).
    pub fn set_mask(&mut self, mask: u64) {
        self.thread.mask = mask & !UNBLOCKABLE;
        self.publish();
    }

    /// `rt_sigprocmask(how, set)`: returns the old mask. SIGKILL and SIGSTOP are never
    /// blocked.
    pub fn change_mask(&mut self, how: u64, set: u64) -> Result<u64, Errno> {
        let old = self.thread.mask;
        let new = match how {
            SIG_BLOCK => old | set,
            SIG_UNBLOCK => old & !set,
            SIG_SETMASK => set,
            _ => return Err(Errno::EINVAL),
        };
        self.set_mask(new);
        Ok(old)
    }

    /// Is `sig` blocked?
    pub fn blocked(&self, sig: u32) -> bool {
        self.thread.mask & bit(sig) != 0
    }

    /// Remember `sig` (process-directed, no details) until it is acted on.
    pub fn make_pending(&mut self, sig: u32) {
        self.queue(
            sig,
            SigInfo::new(sig, crate::sigframe::code::SI_USER),
            false,
        );
    }

    /// Queue `sig` with its `siginfo`, for the thread or the process. Like Linux's
    /// standard signals, a signal already pending is not queued twice.
    pub fn queue(&mut self, sig: u32, info: SigInfo, thread: bool) {
        if self.ignored(sig) && !self.blocked(sig) {
            return;
        }
        let b = bit(sig);
        if (self.pending | self.thread.pending) & b == 0 {
            self.infos[sig as usize - 1].copy_from_slice(&info.0[..INFO_BYTES]);
        }
        if thread {
            self.thread.pending |= b;
        } else {
            self.pending |= b;
        }
        self.publish();
    }

    /// Signals pending for the thread (its own and the process's).
    pub fn pending(&self) -> u64 {
        self.pending | self.thread.pending
    }

    /// The next pending signal that is not blocked, removed from the sets.
    pub fn take_deliverable(&mut self) -> Option<u32> {
        self.take_from(!self.thread.mask).map(|(s, _)| s)
    }

    /// The next pending signal of `set`, with its `siginfo`, removed.
    pub fn take_from(&mut self, set: u64) -> Option<(u32, SigInfo)> {
        let sig = first(self.thread.pending & set).or_else(|| first(self.pending & set))?;
        self.thread.pending &= !bit(sig);
        self.pending &= !bit(sig);
        Some((sig, SigInfo::from_prefix(&self.infos[sig as usize - 1])))
    }

    /// Make `tid`'s state the current one (`thread`), keeping the previous
    /// thread's aside. `tid` 0 (no thread) changes nothing.
    pub fn switch_thread(&mut self, tid: u32) {
        if tid == 0 || tid == self.current {
            return;
        }
        if self.current == 0 {
            // The first thread to ask is the main thread, whose state `thread` is.
            self.current = tid;
            return;
        }
        let next = self.others.remove(&tid).unwrap_or_default();
        let prev = core::mem::replace(&mut self.thread, next);
        if self.current != NOBODY {
            self.others.insert(self.current, prev);
        }
        self.current = tid;
    }

    /// Whose state is current (0: the main thread, before threads).
    pub fn current_thread(&self) -> u32 {
        self.current
    }

    /// A new thread `tid`, created by the current one: it starts with the
    /// creator's mask, nothing pending and no alternate stack (Linux, CLONE_VM).
    pub fn new_thread(&mut self, tid: u32) {
        let t = ThreadSignals {
            mask: self.thread.mask,
            ..ThreadSignals::default()
        };
        self.others.insert(tid, t);
    }

    /// A vfork child `tid` of the current thread: the creator's mask and a copy
    /// of the dispositions of its own (`own_actions`); it takes none of the
    /// parent process's signals.
    pub fn new_vfork_child(&mut self, tid: u32) {
        let actions = match &self.thread.own_actions {
            Some(own) => **own,
            None => self.actions,
        };
        let t = ThreadSignals {
            mask: self.thread.mask,
            own_actions: Some(alloc::boxed::Box::new(actions)),
            ..ThreadSignals::default()
        };
        self.others.insert(tid, t);
    }

    /// Whether process-directed `sig`, sent by the current thread, is for
    /// another thread: the current one blocks it, and another thread of the
    /// process does not or waits for it (`sigwait`). That thread may be blocked
    /// in Linux (a forwarded wait), which only the proxy can interrupt.
    pub fn for_another_thread(&self, sig: u32) -> bool {
        let b = bit(sig);
        self.blocked(sig)
            && self
                .others
                .values()
                .any(|t| t.own_actions.is_none() && (t.mask & b == 0 || t.waiting & b != 0))
    }

    /// The ignored signals (bit `sig - 1`), what `execve` keeps ignored.
    pub fn ignored_handlers(&self) -> u64 {
        (1..=NSIG)
            .filter(|&s| self.action(s).handler == SIG_IGN)
            .fold(0, |m, s| m | bit(s))
    }

    /// Threads that would take a pending process-directed signal now (they do not
    /// block it), by tid; the current thread's state counts as `current`'s.
    pub fn takers(&self) -> alloc::vec::Vec<u32> {
        let wanted = self.pending & !self.ignored_set();
        let mut out = alloc::vec::Vec::new();
        if self.current != 0 && self.current != NOBODY && wanted & !self.thread.mask != 0 {
            out.push(self.current);
        }
        for (&tid, t) in &self.others {
            // A vfork child is a process of its own: the parent's signals are
            // not its.
            let wanted = if t.own_actions.is_some() { 0 } else { wanted };
            if (wanted | t.pending) & !t.mask != 0 {
                out.push(tid);
            }
        }
        out
    }

    fn ignored_set(&self) -> u64 {
        (1..=NSIG)
            .filter(|&s| self.ignored(s))
            .fold(0, |m, s| m | bit(s))
    }

    /// Thread `tid` ended.
    pub fn end_thread(&mut self, tid: u32) {
        self.others.remove(&tid);
        if self.current == tid {
            self.thread = ThreadSignals::default();
            self.current = NOBODY;
        }
    }

    /// The child of a `fork`: only the calling thread goes on, as `tid`, with
    /// its mask, handlers and alternate stack (the state `switch_thread` put in
    /// place), and nothing pending, as Linux's `fork` leaves it.
    pub fn forked(&mut self, tid: u32) {
        self.others.clear();
        self.current = tid;
        self.pending = 0;
        self.thread.pending = 0;
        self.thread.waiting = 0;
        self.thread.restart = None;
        self.thread.saved_mask = None;
    }

    /// The current thread called `execve` and the others have ended: it goes
    /// on as `leader` (the pid), with its mask and its pending signals, and the
    /// process's pending signals (Linux keeps them across `execve`).
    pub fn exec_by(&mut self, leader: u32) {
        self.others.clear();
        self.current = leader;
    }

    /// Is `tid` another live thread of the process?
    pub fn has_other_thread(&self, tid: u32) -> bool {
        self.others.contains_key(&tid)
    }

    /// Queue thread-directed `sig` for another thread `tid` (`tgkill`); it acts
    /// on it when it next returns to the application. False if no such thread.
    pub fn queue_for(&mut self, tid: u32, sig: u32, info: SigInfo) -> bool {
        if self.ignored(sig) {
            return self.others.contains_key(&tid);
        }
        let Some(t) = self.others.get_mut(&tid) else {
            return false;
        };
        let b = bit(sig);
        if (self.pending | t.pending) & b == 0 {
            self.infos[sig as usize - 1].copy_from_slice(&info.0[..INFO_BYTES]);
        }
        t.pending |= b;
        true
    }

    /// Use the signal page the proxy fills (the runtime calls this once).
    pub fn attach(&mut self, page: &'static SignalPage) {
        self.page = Some(page);
        self.publish();
    }

    /// Move signals that arrived from outside into the pending set.
    pub fn take_external(&mut self) {
        let Some(page) = self.page else { return };
        page.attention
            .store(0, core::sync::atomic::Ordering::Relaxed);
        let mut got = page.pending.swap(0, core::sync::atomic::Ordering::Acquire);
        while got != 0 {
            let sig = got.trailing_zeros() + 1;
            got &= !bit(sig);
            let mut info = SigInfo::from_prefix(&page.info_bytes(sig));
            if info.signo() != sig {
                info = SigInfo::new(sig, crate::sigframe::code::SI_USER);
            }
            if self.unwanted_cldstop(sig, &info) {
                continue;
            }
            self.queue(sig, info, false);
        }
        self.publish();
    }

    /// A child's stop or continuation (`SIGCHLD` with `CLD_STOPPED` or
    /// `CLD_CONTINUED`) while the application's action has `SA_NOCLDSTOP`:
    /// Linux does not send it. (The proxy's own action, which Linux looks at,
    /// has no such flag, so it arrives; it is dropped here.)
    fn unwanted_cldstop(&self, sig: u32, info: &SigInfo) -> bool {
        const CLD_STOPPED: i32 = 5;
        const CLD_CONTINUED: i32 = 6;
        sig == crate::uapi::signal::SIGCHLD
            && matches!(info.code(), CLD_STOPPED | CLD_CONTINUED)
            && self.action(sig).flags & crate::uapi::signal::SA_NOCLDSTOP != 0
    }

    /// Signals whose arrival must interrupt the thread now: not blocked and not
    /// ignored, and those `rt_sigtimedwait` waits for.
    pub fn wake_set(&self) -> u64 {
        let mut wake = self
            .others
            .values()
            .fold(self.thread.waiting, |w, t| w | t.waiting);
        // Blocked only if every thread blocks it (a process-directed signal goes to
        // any thread that does not).
        let blocked = self
            .others
            .values()
            .fold(self.thread.mask, |m, t| m & t.mask);
        for sig in 1..=NSIG {
            if blocked & bit(sig) == 0 && !self.ignored(sig) {
                wake |= bit(sig);
            }
        }
        wake & !(bit(SIGSTOP) | bit(SIGCONT) | bit(SIGTSTP) | bit(SIGTTIN) | bit(SIGTTOU))
    }

    /// Whether a pending signal needs acting on before the thread returns to the
    /// application (or an interrupted call must be restarted).
    pub fn needs_attention(&self) -> bool {
        self.pending() & self.wake_set() != 0
            || self.thread.restart.is_some()
            || self.others.values().any(|t| t.pending & !t.mask != 0)
    }

    /// Tell the proxy what to wake the application for, and raise the attention
    /// flag the entries check when something is pending here already.
    pub fn publish(&self) {
        use core::sync::atomic::Ordering;
        let Some(page) = self.page else { return };
        // Linux: a blocked signal is never ignored (the disposition may change
        // before it is unblocked).
        let ignored = (1..=NSIG)
            .filter(|&s| self.ignored(s) && !self.blocked(s))
            .fold(0, |m, s| m | bit(s));
        page.ignored.store(ignored, Ordering::Release);
        // Arrived while ignored (the proxy may have seen the old set): discarded.
        page.pending.fetch_and(!ignored, Ordering::AcqRel);
        page.wake.store(self.wake_set(), Ordering::Release);
        if self.needs_attention() {
            page.attention.store(1, Ordering::Release);
        }
    }

    /// A handler for `sig` with `act` starts: the mask the frame records (the
    /// mask before, or `sigsuspend`'s caller's), and the mask the handler runs
    /// with becomes current. `SA_RESETHAND` resets the action.
    pub fn begin_handler(&mut self, sig: u32, act: SigAction) -> u64 {
        let old = self.thread.saved_mask.take().unwrap_or(self.thread.mask);
        let mut mask = self.thread.mask | act.mask;
        if act.flags & SA_NODEFER == 0 {
            mask |= bit(sig);
        }
        if act.flags & SA_RESETHAND != 0 && sig != SIGILL && sig != SIGTRAP {
            match &mut self.thread.own_actions {
                Some(own) => own[sig as usize - 1].handler = SIG_DFL,
                None => self.actions[sig as usize - 1].handler = SIG_DFL,
            }
        }
        self.set_mask(mask);
        old
    }

    /// The alternate signal stack.
    pub fn altstack(&self) -> AltStack {
        self.thread.altstack
    }

    /// `sigaltstack(ss)`: validate and install (`EPERM` while running on it).
    pub fn set_altstack(&mut self, ss: AltStack) -> Result<(), Errno> {
        let mode = ss.flags & !SS_AUTODISARM;
        if mode != 0 && mode != SS_DISABLE && mode != SS_ONSTACK {
            return Err(Errno::EINVAL);
        }
        let sp = self.thread.caller_sp;
        if sp != 0 && crate::sigframe::on_altstack(self.thread.altstack, sp) {
            return Err(Errno::EPERM);
        }
        if mode == SS_DISABLE {
            self.thread.altstack = AltStack::DISABLED;
            return Ok(());
        }
        if ss.size < MINSIGSTKSZ {
            return Err(Errno::ENOMEM);
        }
        self.thread.altstack = AltStack {
            sp: ss.sp,
            flags: ss.flags & SS_AUTODISARM,
            size: ss.size,
        };
        Ok(())
    }
}

/// How Linux treats a call a signal interrupted (`-ERESTARTSYS` and friends,
/// signal(7) "Interruption of system calls and library functions by signal
/// handlers").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Restartable {
    /// Restarted after a handler with `SA_RESTART` (`-ERESTARTSYS`): read, write,
    /// ioctl, wait, socket calls, locks, open of a FIFO, ...
    WithSaRestart,
    /// `EINTR` whenever a handler runs (`-ERESTARTNOHAND`,
    /// `-ERESTART_RESTARTBLOCK`): sleeps, poll/select/epoll, pause, sigsuspend,
    /// sigtimedwait, semaphores and message queues with timeouts.
    Never,
}

/// The restart class of call `nr`.
pub fn restartable(nr: u64) -> Restartable {
    const SA_RESTART_CALLS: &[Sysno] = &[
        Sysno::read,
        Sysno::readv,
        Sysno::write,
        Sysno::writev,
        Sysno::pread64,
        Sysno::pwrite64,
        Sysno::preadv,
        Sysno::pwritev,
        Sysno::preadv2,
        Sysno::pwritev2,
        Sysno::ioctl,
        Sysno::wait4,
        Sysno::waitid,
        Sysno::open,
        Sysno::openat,
        Sysno::openat2,
        Sysno::creat,
        Sysno::accept,
        Sysno::accept4,
        Sysno::connect,
        Sysno::recvfrom,
        Sysno::recvmsg,
        Sysno::recvmmsg,
        Sysno::sendto,
        Sysno::sendmsg,
        Sysno::sendmmsg,
        Sysno::flock,
        Sysno::fcntl,
        Sysno::getrandom,
        Sysno::splice,
        Sysno::tee,
        Sysno::sendfile,
        Sysno::copy_file_range,
        Sysno::mq_timedsend,
        Sysno::mq_timedreceive,
        Sysno::futex,
    ];
    if SA_RESTART_CALLS.iter().any(|s| s.id() as u64 == nr) {
        Restartable::WithSaRestart
    } else {
        Restartable::Never
    }
}

/// What a call that came back with `EINTR` does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterEintr {
    /// No handler runs (the signal was taken by a default action or is no longer
    /// deliverable): restart at once, invisibly, as Linux does.
    RestartNow,
    /// Run the handler, then the call again (`SA_RESTART`).
    RestartAfterHandler,
    /// Return `EINTR` once the handler has run.
    Eintr,
}

/// The decision for a call of class `class` interrupted while `handler` (the
/// `sa_flags` of the handler about to run, if one is) is next.
pub fn after_eintr(class: Restartable, handler: Option<u64>) -> AfterEintr {
    match handler {
        None => AfterEintr::RestartNow,
        Some(flags) if class == Restartable::WithSaRestart && flags & SA_RESTART != 0 => {
            AfterEintr::RestartAfterHandler
        }
        Some(_) => AfterEintr::Eintr,
    }
}

/// Name of a signal for messages.
pub fn name(sig: u32) -> &'static str {
    match sig {
        32..=64 => "a real-time signal",
        _ => mote_abi::signal::name(sig).unwrap_or("an invalid signal"),
    }
}

#[cfg(test)]
mod tests;
