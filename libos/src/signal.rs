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
        if self.ignored(sig) {
            self.pending &= !bit(sig);
            self.thread.pending &= !bit(sig);
        }
        self.publish();
        Ok(old)
    }

    /// A new process's signal state: default actions but for `ignored` (bit
    /// `sig - 1`), which it inherits ignored as `execve` keeps them; SIGKILL and
    /// SIGSTOP cannot be ignored.
    pub fn inheriting_ignored(ignored: u64) -> Self {
        let mut s = Signals::default();
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

    /// Threads that would take a pending process-directed signal now (they do not
    /// block it), by tid; the current thread's state counts as `current`'s.
    pub fn takers(&self) -> alloc::vec::Vec<u32> {
        let wanted = self.pending & !self.ignored_set();
        let mut out = alloc::vec::Vec::new();
        if self.current != 0 && self.current != NOBODY && wanted & !self.thread.mask != 0 {
            out.push(self.current);
        }
        for (&tid, t) in &self.others {
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
            self.queue(sig, info, false);
        }
        self.publish();
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
            self.actions[sig as usize - 1].handler = SIG_DFL;
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
    fn per_thread_state_follows_the_running_thread() {
        let mut s = Signals::default();
        s.switch_thread(10); // the main thread
        s.set_mask(bit(SIGUSR1));
        s.new_thread(11);
        s.new_thread(12);
        s.switch_thread(12);
        assert_eq!(
            s.mask(),
            bit(SIGUSR1),
            "a new thread starts with its creator's mask"
        );
        s.set_mask(0);
        s.switch_thread(10);
        assert_eq!(s.mask(), bit(SIGUSR1));
        // A process-directed SIGUSR1 is for the threads that do not block it.
        s.queue(SIGUSR1, crate::sigframe::SigInfo::new(SIGUSR1, 0), false);
        assert_eq!(s.takers(), [12]);
        assert!(s.queue_for(11, SIGUSR2, crate::sigframe::SigInfo::new(SIGUSR2, 0)));
        assert!(!s.queue_for(99, SIGUSR2, crate::sigframe::SigInfo::new(SIGUSR2, 0)));
        s.switch_thread(11);
        assert_eq!(s.thread.pending, bit(SIGUSR2));
        s.end_thread(11);
        s.switch_thread(12);
        assert!(!s.has_other_thread(11));
        assert_eq!(s.mask(), 0);
    }

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
    fn proxy_is_told_what_to_wake_for() {
        use core::sync::atomic::Ordering;
        let page: &'static SignalPage = Box::leak(Box::new(SignalPage::new()));
        let mut s = Signals::default();
        s.attach(page);
        let wake = page.wake.load(Ordering::Relaxed);
        assert_ne!(wake & bit(SIGINT), 0, "default-terminate wakes");
        assert_eq!(wake & bit(SIGCHLD), 0, "default-ignore does not");
        s.change_mask(SIG_BLOCK, bit(SIGINT)).unwrap();
        assert_eq!(page.wake.load(Ordering::Relaxed) & bit(SIGINT), 0);
        s.thread.waiting = bit(SIGINT);
        s.publish();
        assert_ne!(
            page.wake.load(Ordering::Relaxed) & bit(SIGINT),
            0,
            "sigtimedwait"
        );
        s.thread.waiting = 0;
        assert_ne!(page.ignored.load(Ordering::Relaxed) & bit(SIGCHLD), 0);
        s.set_action(
            SIGCHLD,
            SigAction {
                handler: 0x1000,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(page.ignored.load(Ordering::Relaxed) & bit(SIGCHLD), 0);
        // The proxy records SIGTERM with its siginfo; libos takes it.
        page.info[SIGTERM as usize - 1][0].store(SIGTERM as u64, Ordering::Relaxed);
        page.info[SIGTERM as usize - 1][2].store(777, Ordering::Relaxed);
        page.pending.fetch_or(bit(SIGTERM), Ordering::Release);
        page.attention.store(1, Ordering::Release);
        s.take_external();
        assert_eq!(page.pending.load(Ordering::Relaxed), 0);
        assert_eq!(s.pending(), bit(SIGTERM));
        assert_eq!(
            page.attention.load(Ordering::Relaxed),
            1,
            "deliverable: still"
        );
        let (sig, info) = s.take_from(!s.mask()).unwrap();
        assert_eq!((sig, info.signo()), (SIGTERM, SIGTERM));
        assert_eq!(&info.0[16..20], &777u32.to_le_bytes());
        s.take_external();
        assert_eq!(page.attention.load(Ordering::Relaxed), 0, "nothing left");
    }

    #[test]
    fn synchronous_signals_come_first_and_thread_before_process() {
        let mut s = Signals::default();
        s.make_pending(SIGHUP);
        s.queue(SIGSEGV, SigInfo::new(SIGSEGV, 1), true);
        s.queue(SIGUSR1, SigInfo::new(SIGUSR1, 0), true);
        assert_eq!(s.take_deliverable(), Some(SIGSEGV));
        assert_eq!(s.take_deliverable(), Some(SIGUSR1));
        assert_eq!(s.take_deliverable(), Some(SIGHUP));
    }

    #[test]
    fn restart_rules_follow_linux() {
        let read = restartable(Sysno::read as u64);
        assert_eq!(read, Restartable::WithSaRestart);
        assert_eq!(restartable(Sysno::nanosleep as u64), Restartable::Never);
        assert_eq!(restartable(Sysno::epoll_wait as u64), Restartable::Never);
        assert_eq!(after_eintr(read, None), AfterEintr::RestartNow);
        assert_eq!(
            after_eintr(read, Some(SA_RESTART)),
            AfterEintr::RestartAfterHandler
        );
        assert_eq!(after_eintr(read, Some(0)), AfterEintr::Eintr);
        assert_eq!(
            after_eintr(Restartable::Never, Some(SA_RESTART)),
            AfterEintr::Eintr
        );
    }

    #[test]
    fn handler_mask_and_resethand() {
        let mut s = Signals::default();
        s.set_mask(bit(SIGHUP));
        let act = SigAction {
            handler: 0x1000,
            flags: SA_RESETHAND,
            restorer: 0,
            mask: bit(SIGUSR2),
        };
        s.set_action(SIGUSR1, act).unwrap();
        assert_eq!(s.begin_handler(SIGUSR1, act), bit(SIGHUP));
        assert_eq!(s.mask(), bit(SIGHUP) | bit(SIGUSR1) | bit(SIGUSR2));
        assert_eq!(s.action(SIGUSR1).handler, SIG_DFL);
        // sigsuspend's caller's mask goes into the frame.
        s.thread.saved_mask = Some(7);
        assert_eq!(s.begin_handler(SIGUSR2, SigAction::default()), 7);
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
        // Running on it: no change (EPERM), and it reports SS_ONSTACK.
        s.thread.caller_sp = 0x1800;
        assert_eq!(s.set_altstack(AltStack::DISABLED), Err(Errno::EPERM));
        assert_eq!(crate::sigframe::altstack_flags(ok, 0x1800), SS_ONSTACK);
        s.thread.caller_sp = 0x9000;
        assert_eq!(crate::sigframe::altstack_flags(ok, 0x9000), 0);
        assert_eq!(s.set_altstack(AltStack::DISABLED), Ok(()));
    }
}
