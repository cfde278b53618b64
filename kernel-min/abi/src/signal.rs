//! Signals from outside the partition: the page the proxy and libos share to pass
//! them, and the upcall vectors the runtime's entries use for delivery.
//!
//! # Protocol (the only place it is written down)
//!
//! The proxy owns the Linux process the shell and other processes see: `kill -TERM
//! <pid of mote>`, Ctrl-C, and the timers the application set through forwarded
//! `alarm`/`setitimer`/`timer_create` all signal it. A router thread in the proxy
//! takes each such signal (`sigwaitinfo`; every other proxy thread blocks them) and:
//!
//! 0. drops it if `ignored` has its bit;
//! 1. writes the first 32 bytes of its `siginfo_t` into `info[sig - 1]` (Relaxed);
//! 2. `pending.fetch_or(bit, Release)`;
//! 3. if `bit & wake != 0` (libos wants to hear about it now): `attention.store(1,
//!    Release)`, then kicks the core until libos has taken the bit or no longer
//!    wants it: the vCPU thread is pulled out of `KVM_RUN` and, when the vCPU is
//!    running application code, enters the runtime's trap entry with vector
//!    `VECTOR_SIGNAL` (the VMM builds the `UpcallHeader` kernel-min would have);
//!    a forwarded call the offload thread is blocked in returns `EINTR`.
//!
//! libos (one core so far):
//! * publishes `wake` = the signals whose arrival must interrupt the application
//!   now (not blocked and not ignored, plus those `rt_sigtimedwait` waits for),
//!   and `ignored`, whenever the mask or a disposition changes (Release);
//! * `attention.store(0)`, then `pending.swap(0, Acquire)` and reads `info` for
//!   the bits it took: a signal arriving in between sets `attention` again;
//! * the runtime's direct entries test `attention` after every call (one load) and
//!   take the slow path that can build a signal frame only when it is set.

use core::mem::{offset_of, size_of};
use core::sync::atomic::{AtomicU32, AtomicU64};
use static_assertions::const_assert_eq;

use crate::ikc::MAPLOG_OFFSET;
use crate::layout::{IKC_SIZE, IKC_VA, PAGE_SIZE};
use crate::maplog::MapLog;

/// The names of Linux's x86_64 signals 1-31 (`asm/signal.h`), for messages and
/// traces; `None` for 0, real-time and invalid numbers.
pub fn name(sig: u32) -> Option<&'static str> {
    const NAMES: [&str; 31] = [
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
    NAMES.get((sig as usize).wrapping_sub(1)).copied()
}

/// The signal the proxy interrupts its vCPU and offload threads with (glibc's
/// `SIGRTMAX`): never the application's.
pub const KICK: u32 = 64;

const fn bits(sigs: &[u32]) -> u64 {
    let mut set = 0;
    let mut i = 0;
    while i < sigs.len() {
        set |= 1 << (sigs[i] - 1);
        i += 1;
    }
    set
}

/// Signals `mote` never hands the application when Linux signals its process:
/// SIGKILL and SIGSTOP (they cannot be caught), SIGTRAP and SIGSYS (the hosted
/// platform's traps), job control (SIGTSTP, SIGTTIN, SIGTTOU, SIGCONT stop and
/// continue `mote` itself), glibc's internal 32 and 33, and `KICK`. The one list
/// both sides use: the proxy routes the rest (`proxy/src/signals.rs`), and libos
/// knows which signals it may send through the proxy.
const NOT_ROUTED: u64 = bits(&[9, 19, 5, 31, 20, 21, 22, 18, 32, 33, KICK]);

/// The fault signals (SIGILL, SIGBUS, SIGFPE, SIGSEGV): the proxy cannot block
/// them — a fault of its own must still crash it visibly — so it routes only
/// the ones a process sent (a handler tells them from real faults).
pub const FAULTS: u64 = bits(&[4, 7, 8, 11]);

/// Whether the proxy routes `sig` (1-64) to the application when a process
/// sends it to `mote` (fault signals included: see `FAULTS`).
pub const fn routed(sig: u32) -> bool {
    sig >= 1 && sig <= 64 && NOT_ROUTED & (1 << (sig - 1)) == 0
}

/// `UpcallHeader::vector` when the VMM redirected the vCPU to deliver a signal
/// from outside (no instruction of the application was interrupted mid-way).
pub const VECTOR_SIGNAL: u64 = 0x101;
/// Vector of the frame the patched-site entry builds on its slow path.
pub const VECTOR_PATCHED: u64 = 0x102;
/// Vector of the frame the direct (C-ABI) entry builds on its slow path.
pub const VECTOR_DIRECT: u64 = 0x103;
/// `UpcallHeader::vector` when the core's time-sharing timer interrupted the
/// application (the VMM redirected the vCPU, or the hosted process's timer
/// signal): the running thread's slice is over.
pub const VECTOR_PREEMPT: u64 = 0x104;
/// Vector of the frame the frame entry (`AT_MOTE_SYSCALL_FRAME`) builds: a
/// system call with every register, made by a call from a relinked site.
pub const VECTOR_FRAME: u64 = 0x105;

/// Bytes of each signal's `siginfo_t` the proxy passes on: `si_signo`, `si_errno`,
/// `si_code`, and the first 16 bytes of the union (sender pid and uid, or timer id,
/// overrun and value).
pub const INFO_BYTES: usize = 32;

/// The shared signal page (one per partition).
#[repr(C, align(4096))]
#[derive(Debug)]
pub struct SignalPage {
    /// Signals from outside not yet taken by libos (bit `sig - 1`).
    pub pending: AtomicU64,
    /// Signals whose arrival must interrupt the application (libos writes).
    pub wake: AtomicU64,
    /// Non-zero: libos has something to look at before returning to the application.
    pub attention: AtomicU32,
    /// Non-zero: the entries answer no call themselves (`getpid`, `gettid`) but
    /// take every one to the dispatcher (`mote run --trace`, which records each).
    /// The proxy writes it before the partition starts. Beside `attention`, so
    /// the entries test both with the one 8-byte load they already make.
    pub full_path: AtomicU32,
    /// Signals the application ignores (libos writes): the proxy drops them on
    /// arrival, as Linux discards an ignored signal when it is sent.
    pub ignored: AtomicU64,
    /// `SIGNAL_PAGE_CANARY`, written by the proxy before the partition starts and
    /// never by the runtime: the page lies in memory the application can write,
    /// and a wrong value tells the proxy the application wrote over mote's IKC
    /// area (`SignalPage::intact`), which then ends the run instead of trusting
    /// what the page says (a zeroed `wake` would hold every signal, `SIGTERM`
    /// included, for ever).
    pub canary: AtomicU64,
    _pad2: [u64; 3],
    /// The start of each pending signal's `siginfo_t` (`INFO_BYTES`), as 4 words.
    pub info: [[AtomicU64; INFO_BYTES / 8]; 64],
}

const_assert_eq!(offset_of!(SignalPage, pending), 0);
const_assert_eq!(offset_of!(SignalPage, wake), 8);
const_assert_eq!(offset_of!(SignalPage, attention), 16);
const_assert_eq!(offset_of!(SignalPage, full_path), 20);
const_assert_eq!(offset_of!(SignalPage, ignored), 24);
const_assert_eq!(offset_of!(SignalPage, canary), 32);
const_assert_eq!(offset_of!(SignalPage, info), 64);
const_assert_eq!(size_of::<SignalPage>(), 4096);

/// What `SignalPage::canary` holds while nothing but mote wrote the page.
pub const SIGNAL_PAGE_CANARY: u64 = u64::from_le_bytes(*b"motesig1");

impl SignalPage {
    /// The canary is as the proxy wrote it (see `canary`).
    pub fn intact(&self) -> bool {
        self.canary.load(core::sync::atomic::Ordering::Relaxed) == SIGNAL_PAGE_CANARY
    }
}

/// Offset of the signal page inside the IKC area: its last page, clear of the
/// core pages, the map log and whatever else grows after them.
pub const SIGNAL_PAGE_OFFSET: u64 = IKC_SIZE - PAGE_SIZE;

static_assertions::const_assert!(MAPLOG_OFFSET + size_of::<MapLog>() as u64 <= SIGNAL_PAGE_OFFSET);

/// Virtual address of the signal page in the partition (and, mirrored, in the proxy).
pub const SIGNAL_PAGE_VA: u64 = IKC_VA + SIGNAL_PAGE_OFFSET;

/// Offset of `attention` from `SIGNAL_PAGE_VA`, for the entries' assembly.
pub const ATTENTION_OFFSET: usize = offset_of!(SignalPage, attention);

impl SignalPage {
    /// The bytes the proxy stored for `sig`.
    pub fn info_bytes(&self, sig: u32) -> [u8; INFO_BYTES] {
        let mut b = [0u8; INFO_BYTES];
        for (i, w) in self.info[(sig as usize - 1) % 64].iter().enumerate() {
            b[i * 8..][..8]
                .copy_from_slice(&w.load(core::sync::atomic::Ordering::Relaxed).to_le_bytes());
        }
        b
    }

    /// A fresh page (for tests and host platforms).
    pub const fn new() -> Self {
        SignalPage {
            pending: AtomicU64::new(0),
            wake: AtomicU64::new(0),
            attention: AtomicU32::new(0),
            full_path: AtomicU32::new(0),
            ignored: AtomicU64::new(0),
            canary: AtomicU64::new(SIGNAL_PAGE_CANARY),
            _pad2: [0; 3],
            info: [const { [const { AtomicU64::new(0) }; 4] }; 64],
        }
    }
}

impl Default for SignalPage {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routed_signals_are_all_but_the_uncatchable_traps_job_control_and_internal() {
        let not: Vec<u32> = (1..=64).filter(|&s| !routed(s)).collect();
        assert_eq!(not, [5, 9, 18, 19, 20, 21, 22, 31, 32, 33, 64]);
        assert!(!routed(0) && !routed(65));
        assert!(routed(2) && routed(15) && routed(11) && routed(63));
        assert_eq!(FAULTS, (1 << 3) | (1 << 6) | (1 << 7) | (1 << 10));
    }

    #[test]
    fn a_page_is_intact_until_its_canary_is_overwritten() {
        let page = SignalPage::new();
        assert!(page.intact());
        page.canary.store(0, core::sync::atomic::Ordering::Relaxed);
        assert!(!page.intact());
        page.canary
            .store(SIGNAL_PAGE_CANARY, core::sync::atomic::Ordering::Relaxed);
        assert!(page.intact());
    }

    #[test]
    fn signal_names_follow_linux_numbering() {
        assert_eq!(name(0), None);
        assert_eq!(name(9), Some("SIGKILL"));
        assert_eq!(name(31), Some("SIGSYS"));
        assert_eq!(name(32), None);
    }
}
