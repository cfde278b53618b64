//! Signals from outside reach the application: Ctrl-C, `kill -TERM <pid of mote>`,
//! and the timers the application set through forwarded calls all signal this
//! process. Protocol with libos: `mote_abi::signal`.
//!
//! * Every thread of the proxy blocks the routed signals (`block_routed`, called
//!   before any thread exists, so all inherit the mask); a router thread takes
//!   them with `sigtimedwait` and records them in the partition's signal page.
//! * When libos wants a signal now (`wake`), the router kicks: it sets each vCPU's
//!   `immediate_exit` and sends it `KICK`, so `KVM_RUN` returns and the vCPU thread
//!   redirects a vCPU that runs application code into the runtime's trap entry
//!   (`redirect`); and it sends `KICK` to each offload thread that is executing a
//!   forwarded call, whose handler is installed without `SA_RESTART`, so a
//!   blocking call returns `EINTR` and libos applies Linux's restart rules.
//! * Kicks repeat (every `REKICK`) until libos has taken the signal or no longer
//!   wants it: a kick that lands just before a blocking call starts, or while the
//!   vCPU is in the runtime, is made good by the next one.
//! * The signals Linux raises for faults (SIGSEGV, SIGBUS, SIGFPE, SIGILL) cannot
//!   be blocked like the others: blocked, a fault of the proxy itself would kill
//!   it without a trace, and a fault's handler must run in the faulting thread.
//!   `on_fault_signal` runs for them in whichever thread takes them and tells the
//!   two kinds apart by `si_code`: one sent with `kill`, `sigqueue` or `tgkill`
//!   (`SI_USER`, `SI_QUEUE`, `SI_TKILL`: codes <= 0) is the application's and is
//!   recorded like a routed one, then the router is woken to kick; a real fault
//!   (`SEGV_MAPERR`, `SI_KERNEL`, ...: codes > 0) is the proxy's own crash and
//!   goes on to what was there before (Rust's stack-overflow report) or to the
//!   default action.
//! * A synchronous signal Linux raises for an offload thread during a forwarded
//!   call (SIGXFSZ) is taken back by that thread and passed to the application
//!   thread that made the call (`raised_by_call`).
//! * On the hosted platform the router also enforces the application's
//!   `RLIMIT_CPU` on the application's process (`cputime::cpu_limit`, beside the CPU-time interval timers).
//! * While an `execve` ends the application's other threads (`end_threads`,
//!   `Op::EndThreads`), the router kicks the same way until it is told to stop,
//!   with no signal pending: each of those threads enters the runtime, which
//!   ends it.
//!
//! Not routed: the kick signal itself (`SIGRTMAX`), SIGTRAP and SIGSYS, SIGKILL
//! and SIGSTOP, job control (SIGTSTP, SIGTTIN, SIGTTOU, SIGCONT: they stop and continue the
//! whole run, as before), and glibc's internal 32 and 33. SIGPIPE is routed: one
//! a forwarded write raises on its offload thread is taken back like SIGXFSZ.
//!
//! Allows `unsafe`: raw signal system calls (`sigaction`, masks, `sigtimedwait`,
//! `pthread_kill`, `tgkill`, thread and process CPU clocks), the fault-signal
//! handler (reads Linux's `siginfo_t`, calls the handler it replaced) and the
//! store into a vCPU's `kvm_run.immediate_exit` byte.
#![allow(unsafe_code)]

use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicU8, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::Duration;

use kvm_ioctls::VcpuFd;
use mote_abi::layout::{RUNTIME_VA, USER_END};
use mote_abi::signal::{SignalPage, INFO_BYTES, SIGNAL_PAGE_CANARY, SIGNAL_PAGE_VA, VECTOR_SIGNAL};
use mote_abi::trap::UpcallHeader;

mod cputime;

pub use cputime::{cpu_itimer, ITIMER_PROF, ITIMER_VIRTUAL};
use cputime::{cpu_limit, cpu_timers};

use crate::event::Event;
use crate::guest::GuestMem;

/// How often an unanswered signal is kicked again.
const REKICK: Duration = Duration::from_millis(2);

/// How often the router looks at the signal page with nothing outstanding: a
/// fault signal recorded by `on_fault_signal` just before the router went to
/// wait (its wake-up spent) is kicked by then at the latest.
const LOOK_AGAIN: Duration = Duration::from_millis(100);

/// The signal that interrupts the vCPU and offload threads.
pub fn kick_signal() -> i32 {
    mote_abi::signal::KICK as i32
}

/// Routed through `sigtimedwait` (blocked in every thread): the routed signals
/// (`mote_abi::signal::routed`, the one list) but the fault signals, which a
/// handler routes (`on_fault_signal`).
fn routed(sig: i32) -> bool {
    let Ok(s) = u32::try_from(sig) else {
        return false;
    };
    mote_abi::signal::routed(s) && mote_abi::signal::FAULTS & (1 << (s - 1)) == 0
}

fn routed_set() -> libc::sigset_t {
    // SAFETY: sigset_t is plain bits; sigemptyset/sigaddset write only into it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in 1..=libc::SIGRTMAX() {
            if routed(sig) {
                libc::sigaddset(&mut set, sig);
            }
        }
        set
    }
}

/// The kick's handler: nothing, but an event of a vCPU's time-sharing timer,
/// which shares the kick's signal, is noted for its vCPU thread (`ticks`).
extern "C" fn on_kick(_: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    if info.is_null() {
        return;
    }
    // SAFETY: Linux passes a valid siginfo_t to an SA_SIGINFO handler; for
    // SI_TIMER its value is the one the timer was made with.
    unsafe {
        if (*info).si_code == libc::SI_TIMER {
            crate::ticks::on_timer_signal((*info).si_value().sival_ptr as usize);
        }
    }
}

/// Whether SIGPIPE was ignored when the process started, read before Rust's
/// start-up ignores it (`record_sigpipe`).
static PIPE_IGNORED_AT_START: AtomicBool = AtomicBool::new(false);

/// Runs from `.init_array`, before Rust's runtime sets SIGPIPE to `SIG_IGN`.
extern "C" fn record_sigpipe() {
    // SAFETY: sigaction with a null new action only reads the current one into
    // `old`, a zeroed local; no Rust runtime state is touched.
    let ignored = unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(libc::SIGPIPE, std::ptr::null(), &mut old) == 0
            && old.sa_sigaction == libc::SIG_IGN
    };
    PIPE_IGNORED_AT_START.store(ignored, Ordering::Relaxed);
}

#[used]
#[unsafe(link_section = ".init_array")]
static RECORD_SIGPIPE: extern "C" fn() = record_sigpipe;

/// The signals whose disposition is `SIG_IGN` now (bit `sig - 1`), before mote
/// changes any: the application inherits them ignored, as across `execve`.
/// SIGPIPE's comes from `PIPE_IGNORED_AT_START` (Rust's start-up has ignored it
/// since), and SIGKILL and SIGSTOP cannot be ignored.
pub fn inherited_ignored() -> u64 {
    let pipe = if PIPE_IGNORED_AT_START.load(Ordering::Relaxed) {
        1 << (libc::SIGPIPE - 1)
    } else {
        0
    };
    pipe | (1..=64)
        .filter(|&sig| sig != libc::SIGPIPE && sig != libc::SIGKILL && sig != libc::SIGSTOP)
        .filter(|&sig| {
            // SAFETY: sigaction with a null new action only reads the current
            // one into `old`, a zeroed local.
            unsafe {
                let mut old: libc::sigaction = std::mem::zeroed();
                libc::sigaction(sig, std::ptr::null(), &mut old) == 0
                    && old.sa_sigaction == libc::SIG_IGN
            }
        })
        .fold(0u64, |m, sig| m | 1 << (sig - 1))
}

/// The signal mask this process started with (bit `sig - 1`), before mote
/// blocks anything: the application inherits it, as across `execve`.
pub fn inherited_mask() -> u64 {
    // SAFETY: sigset_t is plain bits; a null new set only reads the current mask
    // into `old`; sigismember only reads it.
    unsafe {
        let mut old: libc::sigset_t = std::mem::zeroed();
        if libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut old) != 0 {
            return 0;
        }
        (1..=64)
            .filter(|&sig| libc::sigismember(&old, sig) == 1)
            .fold(0u64, |m, sig| m | 1 << (sig - 1))
    }
}

/// Set the calling thread's Linux signal state to what an application thread
/// would hand a program it `execve`s: `ignored` (bit `sig - 1`) ignored and the
/// others at their default (handlers do not survive `execve`; ignored signals
/// do), and `mask` blocked. For a vfork child's forked proxy about to exec
/// `mote run` for the child's program, which reads them back
/// (`inherited_ignored`, `inherited_mask`): `posix_spawnattr_setsigmask` and
/// `setsigdef`, `nohup`, `trap '' PIPE`. The process must be single-threaded.
pub fn hand_over_to_exec(ignored: u64, mask: u64, pending: u64) {
    // SAFETY: 1. sigaction with a zeroed, plain-data struct installs SIG_IGN or
    // SIG_DFL, which touches no Rust state (nothing of the proxy runs in this
    // process after the exec); 2. pthread_sigmask changes this thread's mask;
    // 3. kill sends blocked signals to this process only.
    unsafe {
        for sig in 1..=libc::SIGRTMAX() {
            if sig == libc::SIGKILL || sig == libc::SIGSTOP {
                continue;
            }
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = if ignored & (1 << (sig - 1)) != 0 {
                libc::SIG_IGN
            } else {
                libc::SIG_DFL
            };
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in (1..=64).filter(|&sig| mask & (1u64 << (sig - 1)) != 0) {
            libc::sigaddset(&mut set, sig);
        }
        libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        // 3. The child's pending signals, blocked (else the child took them
        // before its exec) and not ignored, raised on this process, which the
        // exec keeps them pending for: the new `mote run` takes them at start
        // (`take_inherited`).
        let keep = pending & mask & !ignored;
        for sig in (1..=64).filter(|&sig| keep & (1u64 << (sig - 1)) != 0) {
            libc::kill(libc::getpid(), sig);
        }
    }
}

/// Block the routed signals in the calling thread, and only those (call before
/// any thread starts: every later thread inherits the mask; the mask mote was
/// started with is the application's, `inherited_mask`, and must not keep the
/// kick or a fault signal from the proxy), and install the kick handler.
pub fn block_routed() -> std::io::Result<()> {
    let set = routed_set();
    // SAFETY: 1. pthread_sigmask changes only this thread's mask; 2. the kick
    // handler is an extern "C" function that at most stores to an atomic,
    // async-signal-safe, installed without SA_RESTART on purpose (blocking calls
    // must return EINTR).
    unsafe {
        if libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_kick as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO;
        libc::sigemptyset(&mut sa.sa_mask);
        if libc::sigaction(kick_signal(), &sa, std::ptr::null_mut()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    route_fault_signals()
}

/// Fault signals a process outside may also send (`on_fault_signal`).
const FAULT_SIGNALS: [i32; 4] = [libc::SIGSEGV, libc::SIGBUS, libc::SIGFPE, libc::SIGILL];

/// Whether `si_code` says a process sent the signal (`kill`, `sigqueue`,
/// `tgkill`, ...: `SI_USER` is 0, the others negative) rather than the kernel
/// raised it for a fault (`SEGV_MAPERR` and the like are positive, `SI_KERNEL`
/// is 0x80).
fn sent_by_a_process(si_code: i32) -> bool {
    si_code <= 0
}

/// What was installed for each of `FAULT_SIGNALS` before `on_fault_signal`.
static PREVIOUS: std::sync::OnceLock<[libc::sigaction; FAULT_SIGNALS.len()]> =
    std::sync::OnceLock::new();
/// The partition's signal page, once the router runs (for `on_fault_signal`).
static PAGE: AtomicPtr<SignalPage> = AtomicPtr::new(std::ptr::null_mut());
/// The router thread's Linux tid (0: not started), and its process's pid.
static ROUTER_TID: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);
static ROUTER_PID: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

/// A fault signal reached the proxy (see the module's head).
extern "C" fn on_fault_signal(
    sig: libc::c_int,
    info: *mut libc::siginfo_t,
    ctx: *mut libc::c_void,
) {
    // SAFETY: Linux passes a valid siginfo_t to an SA_SIGINFO handler.
    let code = unsafe { (*info).si_code };
    if sent_by_a_process(code) {
        let page = PAGE.load(Ordering::Acquire);
        let router = ROUTER_TID.load(Ordering::Acquire);
        // SAFETY: getpid has no preconditions.
        let pid = unsafe { libc::getpid() };
        // A forked copy of the proxy (a vfork child's server) has no router: the
        // signal is its own, as it is a native vfork child's.
        if !page.is_null() && router != 0 && ROUTER_PID.load(Ordering::Acquire) == pid {
            // SAFETY: 1. PAGE points into guest memory, mapped for the whole run;
            // record only does atomic stores (async-signal-safe); 2. info is
            // valid (above); 3. tgkill only sends the kick, whose empty handler
            // interrupts the router's sigtimedwait so that it kicks the application.
            unsafe {
                record(&*page, sig as u32, &*info);
                libc::syscall(libc::SYS_tgkill, pid, router, kick_signal());
            }
            return;
        }
        // No application (yet) to take it: its default action ends this process
        // once the handler returns (the signal is blocked until then).
        // SAFETY: signal and raise are async-signal-safe and touch no Rust state.
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
            libc::raise(sig);
        }
        return;
    }
    // The proxy's own fault: what was installed before, else the default action
    // (returning re-executes the faulting instruction, which then kills).
    let previous = PREVIOUS
        .get()
        .and_then(|p| FAULT_SIGNALS.iter().position(|&s| s == sig).map(|i| p[i]));
    match previous {
        Some(old) if old.sa_flags & libc::SA_SIGINFO != 0 && old.sa_sigaction > 1 => {
            // SAFETY: the previous SA_SIGINFO handler, called as Linux would.
            let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                unsafe { std::mem::transmute(old.sa_sigaction) };
            f(sig, info, ctx)
        }
        Some(old) if old.sa_sigaction > 1 => {
            // SAFETY: the previous plain handler, called as Linux would.
            let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(old.sa_sigaction) };
            f(sig)
        }
        // SAFETY: installing SIG_DFL touches no Rust state.
        _ => unsafe {
            libc::signal(sig, libc::SIG_DFL);
        },
    }
}

/// Install `on_fault_signal` for `FAULT_SIGNALS`, keeping what was there.
fn route_fault_signals() -> std::io::Result<()> {
    // SAFETY: sigaction is plain data; the handler is an extern "C" function that
    // only does async-signal-safe work (atomics, tgkill, signal, raise) or calls
    // the handler that was installed before.
    unsafe {
        let mut previous: [libc::sigaction; FAULT_SIGNALS.len()] = std::mem::zeroed();
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_fault_signal as *const () as usize;
        // On the alternate stack where a thread has one (Rust's, for stack
        // overflows); not SA_RESTART: an interrupted call of the proxy's returns
        // EINTR as for the kick, which its callers handle.
        sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        libc::sigemptyset(&mut sa.sa_mask);
        for (i, &sig) in FAULT_SIGNALS.iter().enumerate() {
            if libc::sigaction(sig, &sa, &mut previous[i]) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        let _ = PREVIOUS.set(previous);
    }
    Ok(())
}

/// End this process as killed by `sig`, so that its parent's `wait` sees
/// `WIFSIGNALED` with `sig` as it would for the application natively (a shell's
/// 128+signal, Python's negative `returncode`): the signal's default action,
/// unblocked in the calling thread, then raised at it; SIGKILL is sent to the
/// whole process. No core of mote is written for a core-dumping signal (SIGSEGV,
/// SIGABRT, SIGQUIT, ...): it would be the proxy's memory, not the
/// application's, so the process is made non-dumpable (`PR_SET_DUMPABLE` 0,
/// which also stops a `core_pattern` pipe) and `RLIMIT_CORE` goes to 0 first.
/// Returns only if the signal does not end a process by default (SIGCHLD,
/// SIGCONT, ...), which libos never reports as a run's end.
pub fn die_by(sig: u32) {
    let Ok(sig) = i32::try_from(sig) else { return };
    if !(1..=libc::SIGRTMAX()).contains(&sig) {
        return;
    }
    let _ = rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable);
    let hard = rustix::process::getrlimit(rustix::process::Resource::Core).maximum;
    let _ = rustix::process::setrlimit(
        rustix::process::Resource::Core,
        rustix::process::Rlimit {
            current: Some(0),
            maximum: hard,
        },
    );
    // SAFETY: 1. sigaction installs SIG_DFL from a zeroed, plain-data struct;
    // 2. pthread_sigmask changes only this thread's mask; 3. kill and tgkill
    // only send signals to this process and thread. No Rust state is touched.
    unsafe {
        let pid = libc::getpid();
        if sig == libc::SIGKILL {
            libc::kill(pid, libc::SIGKILL);
        }
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = libc::SIG_DFL;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(sig, &sa, std::ptr::null_mut());
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, sig);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::syscall(libc::SYS_tgkill, pid, libc::gettid(), sig);
    }
}

/// Give SIGPIPE back its default action (Rust's runtime ignores it), so the
/// native programs mote starts for the application inherit Linux's default. (In
/// the proxy SIGPIPE is routed and blocked: the one a forwarded write raises is
/// the application thread's, `raised_by_call`.)
pub fn default_sigpipe() {
    // SAFETY: installing SIG_DFL for SIGPIPE touches no Rust state.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
}

/// After a forwarded call returned `r` in this (offload) thread: the synchronous
/// signal Linux raised for the thread during it, taken back so that it reaches the
/// application thread that made the call instead (`mote_abi::ikc`, `raised`).
/// `SIGXFSZ`, which comes with `EFBIG` (a write past `RLIMIT_FSIZE`,
/// `generic_write_check_limits`), and `SIGPIPE`, which comes with `EPIPE` (a
/// write into a pipe or socket nobody reads): both are routed, so blocked here,
/// and stay pending on this thread until taken. The errno without its signal
/// (past the file system's largest size; `MSG_NOSIGNAL`) gives `None`.
pub fn raised_by_call(r: i64) -> Option<u32> {
    let expected = if r == -i64::from(libc::EFBIG) {
        libc::SIGXFSZ
    } else if r == -i64::from(libc::EPIPE) {
        libc::SIGPIPE
    } else {
        return None;
    };
    // SAFETY: set and info are valid for the calls; the signal is blocked in this
    // thread (block_routed), so sigtimedwait takes it instead of a handler; the
    // zero timeout never waits.
    let sig = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, expected);
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        libc::sigtimedwait(&set, &mut info, &ts)
    };
    (sig == expected).then_some(sig as u32)
}

/// Most vCPUs the router interrupts.
const MAX_TARGETS: usize = mote_abi::layout::MAX_CORES;
/// Most offload threads (one per application thread slot).
const MAX_OFFLOADS: usize = mote_abi::ikc::MAX_THREADS;

/// A vCPU thread: its pthread and its `kvm_run.immediate_exit` byte.
struct Vcpu {
    thread: AtomicU64,
    immediate_exit: AtomicPtr<u8>,
}

/// An offload thread: its pthread, and whether it executes a forwarded call.
struct Offload {
    thread: AtomicU64,
    busy: AtomicBool,
}

static VCPUS: [Vcpu; MAX_TARGETS] = [const {
    Vcpu {
        thread: AtomicU64::new(0),
        immediate_exit: AtomicPtr::new(std::ptr::null_mut()),
    }
}; MAX_TARGETS];

static OFFLOADS: [Offload; MAX_OFFLOADS] = [const {
    Offload {
        thread: AtomicU64::new(0),
        busy: AtomicBool::new(false),
    }
}; MAX_OFFLOADS];

fn self_thread() -> u64 {
    // SAFETY: pthread_self has no preconditions.
    unsafe { libc::pthread_self() as u64 }
}

/// The calling thread runs vCPU `core`.
pub fn register_vcpu(core: usize, vcpu: &mut VcpuFd) {
    let Some(v) = VCPUS.get(core) else { return };
    let p = &mut vcpu.get_kvm_run().immediate_exit as *mut u8;
    v.immediate_exit.store(p, Ordering::Release);
    v.thread.store(self_thread(), Ordering::Release);
}

/// CPU time in ns for `Op::CpuTimes`: the process's (RUSAGE_SELF), the vCPU
/// threads' together, then each registered vCPU's; at most `max` values.
pub fn cpu_times(max: usize) -> Vec<u64> {
    let ns = |ts: libc::timespec| ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64;
    let mut per = Vec::new();
    for v in &VCPUS {
        let thread = v.thread.load(Ordering::Acquire);
        if thread == 0 {
            break;
        }
        let mut clock: libc::clockid_t = 0;
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: the thread is a live vCPU thread (they run until the process
        // exits); clock and ts are valid out-parameters.
        let ok = unsafe {
            libc::pthread_getcpuclockid(thread as libc::pthread_t, &mut clock) == 0
                && libc::clock_gettime(clock, &mut ts) == 0
        };
        per.push(if ok { ns(ts) } else { 0 });
    }
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid out-parameter.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    let mut out = vec![ns(ts), per.iter().sum()];
    out.extend(per);
    out.truncate(max);
    out
}

/// The calling thread serves offload slot `index`.
pub fn register_offload(index: usize) {
    if let Some(o) = OFFLOADS.get(index) {
        o.thread.store(self_thread(), Ordering::Release);
    }
}

/// Offload slot `index`'s thread starts (true) or ends (false) a forwarded call.
/// A plain store (twice per forwarded call, on its hot path): a router that reads
/// a stale value kicks in vain or not at all this time, and kicks again every
/// `REKICK` while the signal is outstanding, by when the store is long visible.
/// The same retry covers a kick that lands just before the thread enters its call.
pub fn offload_busy(index: usize, busy: bool) {
    if let Some(o) = OFFLOADS.get(index) {
        o.busy.store(busy, Ordering::Release);
    }
}

/// The hosted platform's application process (0: none): its threads are the
/// LWK cores, kicked like vCPUs (the runtime's kick handler enters the runtime
/// from application code, as `redirect` does for a vCPU).
static HOSTED_CHILD: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

/// The hosted platform started its application process `pid`.
pub fn register_hosted(pid: i32) {
    // The task directory is opened once, as one of mote's own descriptors
    // (above the application's numbers, protected): opened at each kick it took
    // the lowest free number, which the application's `execve` (closing its
    // close-on-exec descriptors while the router kicks) could close, and the
    // router's close then closed what the application opened next there.
    let dir = rustix::fs::open(
        format!("/proc/{pid}/task"),
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .ok()
    .map(crate::fds::above_app)
    .and_then(|fd| {
        crate::fds::protect_fds([std::os::fd::AsRawFd::as_raw_fd(&fd)]);
        rustix::fs::Dir::new(fd).ok()
    });
    *HOSTED_TASKS.lock().unwrap_or_else(|p| p.into_inner()) = dir;
    HOSTED_CHILD.store(pid, Ordering::Release);
}

/// The hosted application process's `/proc/<pid>/task`, read at each kick.
static HOSTED_TASKS: std::sync::Mutex<Option<rustix::fs::Dir>> = std::sync::Mutex::new(None);

/// Send the kick to every thread of the hosted application process.
fn kick_hosted(pid: i32) {
    let mut tasks = HOSTED_TASKS.lock().unwrap_or_else(|p| p.into_inner());
    let Some(dir) = tasks.as_mut() else {
        return;
    };
    dir.rewind();
    for tid in dir
        .flatten()
        .filter_map(|e| e.file_name().to_str().ok()?.parse::<i32>().ok())
    {
        // SAFETY: tgkill only signals; it checks that `tid` belongs to `pid`.
        unsafe { libc::syscall(libc::SYS_tgkill, pid, tid, kick_signal()) };
    }
}

/// While an `execve` ends the application's other threads (`Op::EndThreads`):
/// the slot of the thread that stays, plus one (0: none).
static ENDING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// `Op::EndThreads` from slot `keep` (`Some`): every other application thread
/// is being ended, and until `None` the router kicks, as for a signal, every
/// `REKICK`: each vCPU that runs application code enters the runtime (which
/// ends the thread there), each offload thread in a forwarded call is
/// interrupted (`EINTR`; libos ends its thread when the answer arrives).
pub fn end_threads(keep: Option<usize>) {
    ENDING.store(keep.map_or(0, |k| k + 1), Ordering::SeqCst);
    if keep.is_some() {
        kick();
        // The router's wait may be long (`LOOK_AGAIN`): it kicks again from now.
        wake_router();
    }
}

/// Interrupt the signal router's wait (if it runs) so it looks again now.
fn wake_router() {
    let router = ROUTER_TID.load(Ordering::Acquire);
    if router != 0 {
        // SAFETY: tgkill only sends the kick, whose empty handler interrupts the
        // router's wait, to the router thread.
        unsafe {
            libc::syscall(
                libc::SYS_tgkill,
                ROUTER_PID.load(Ordering::Acquire),
                router,
                kick_signal(),
            )
        };
    }
}

/// Is slot `index`'s thread one an `execve` of another thread is ending?
pub fn being_ended(index: usize) -> bool {
    let keep = ENDING.load(Ordering::Acquire);
    keep != 0 && keep != index + 1
}

fn ending() -> bool {
    ENDING.load(Ordering::Acquire) != 0
}

/// Interrupt every vCPU (the first in application code takes the signal; a
/// process-directed signal may go to any thread) and every offload thread in a
/// forwarded call.
fn kick() {
    let hosted = HOSTED_CHILD.load(Ordering::Acquire);
    if hosted > 0 {
        kick_hosted(hosted);
    }
    for v in &VCPUS {
        let thread = v.thread.load(Ordering::Acquire);
        let exit = v.immediate_exit.load(Ordering::Acquire);
        if thread == 0 || exit.is_null() {
            continue;
        }
        // SAFETY: `exit` points into the vCPU's kvm_run mapping, which lives as
        // long as the vCPU (the whole run); a byte store is what KVM_RUN checks.
        unsafe { AtomicU8::from_ptr(exit).store(1, Ordering::SeqCst) };
        // SAFETY: the thread is a live thread of this process (vCPU threads run
        // until the process exits).
        unsafe { libc::pthread_kill(thread as libc::pthread_t, kick_signal()) };
    }
    for o in &OFFLOADS {
        let thread = o.thread.load(Ordering::Acquire);
        if thread != 0 && o.busy.load(Ordering::SeqCst) {
            // SAFETY: as above (offload threads live until the process exits).
            unsafe { libc::pthread_kill(thread as libc::pthread_t, kick_signal()) };
        }
    }
}

/// Start the router for the partition whose signal page is in `guest`; it
/// ends the run (`Event::Corrupted` on `events`) if the application overwrites
/// the page.
pub fn spawn_router(guest: Arc<GuestMem>, events: Sender<Event>) -> std::io::Result<()> {
    let page = guest.signal_page();
    page.canary.store(SIGNAL_PAGE_CANARY, Ordering::Release);
    take_inherited(page);
    std::thread::Builder::new()
        .name("mote-signals".into())
        .spawn(move || {
            let page = guest.signal_page();
            ROUTER_PID.store(std::process::id() as i32, Ordering::Release);
            ROUTER_TID.store(
                rustix::thread::gettid().as_raw_nonzero().get(),
                Ordering::Release,
            );
            PAGE.store(
                page as *const SignalPage as *mut SignalPage,
                Ordering::Release,
            );
            route(&guest);
            let _ = events.send(Event::Corrupted(damaged_page()));
        })
        .map(|_| ())
}

/// Signals pending for this process when it started (a vfork child's, kept by
/// its `execve` of `mote run`: `hand_over_to_exec`) go to the signal page
/// before the application runs, so it finds them pending from its first
/// instruction, as Linux keeps them across `execve`.
fn take_inherited(page: &SignalPage) {
    let set = routed_set();
    let zero = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    loop {
        // SAFETY: siginfo_t is plain data; sigtimedwait with a zero timeout
        // only takes a pending signal of `set` (blocked here) into it.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: set, info and zero are valid for the call.
        let sig = unsafe { libc::sigtimedwait(&set, &mut info, &zero) };
        if sig <= 0 {
            return;
        }
        if !about_mote_itself(sig, &info) {
            record(page, sig as u32, &info);
        }
    }
}

/// What the application overwrote when the signal page's canary is gone.
fn damaged_page() -> String {
    format!("signal page (IKC area, at {SIGNAL_PAGE_VA:#x})")
}

/// The area of mote's the application overwrote, if it did (the signal page's
/// canary is checked: a store over the IKC area reaches it, and one that
/// missed it damaged nothing the proxy relies on without checking).
pub fn damage(guest: &GuestMem) -> Option<String> {
    (!guest.signal_page().intact()).then(damaged_page)
}

/// Route signals until the application overwrites the signal page: what it
/// says (which signals are wanted, which ignored) can no longer be trusted,
/// and without that no signal reaches the application — not even the
/// `SIGTERM` that should end it.
///
/// A signal still outstanding at a re-kick also wakes every offload server that
/// sleeps (`wake_servers`): if the application wrote over a slot, its
/// thread may wait for the answer to a call whose server never heard of it, and
/// only a served call can be interrupted for the signal.
fn route(guest: &GuestMem) {
    let page = guest.signal_page();
    let set = routed_set();
    let mut outstanding = false;
    loop {
        // SAFETY: siginfo_t is plain data; sigtimedwait writes it.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let wait = if outstanding { REKICK } else { LOOK_AGAIN };
        let wait = cpu_timers(page).map_or(wait, |next| wait.min(next));
        let ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: wait.as_nanos() as i64,
        };
        // SAFETY: set, info and ts are valid for the call; the routed signals are
        // blocked in this thread, so sigtimedwait takes them.
        let sig = unsafe { libc::sigtimedwait(&set, &mut info, &ts) };
        if !page.intact() {
            return;
        }
        if sig > 0 && !about_mote_itself(sig, &info) {
            record(page, sig as u32, &info);
        }
        cpu_limit(page);
        let wanted = page.pending.load(Ordering::Acquire) & page.wake.load(Ordering::Acquire);
        let again = outstanding;
        outstanding = wanted != 0 || ending();
        if wanted != 0 {
            page.attention.store(1, Ordering::Release);
            kick();
            if again {
                wake_servers(guest);
            }
        } else if ending() {
            kick();
        }
    }
}

/// Wake every offload server that sleeps waiting for a request, whatever its
/// slot's flags say: the router's repair when a signal stays untaken after a
/// kick. A request whose requester never rang the doorbell, because the
/// application wrote over the slot's `proxy_waiting`, is then served, and the
/// call can be interrupted for the signal. A server with nothing to do goes
/// back to sleep.
fn wake_servers(guest: &GuestMem) {
    for (i, o) in OFFLOADS.iter().enumerate() {
        if o.thread.load(Ordering::Acquire) != 0 {
            crate::futex::futex_wake(&guest.thread_slot(i).req_seq);
        }
    }
}

/// Whether routed signal `sig` is about mote's own processes rather than the
/// application's: `SIGCHLD` for the hosted platform's application process (it
/// stops or continues with job control; its end is the run's), which natively
/// is the program itself, not a child of it. `SIGCHLD` from the application's
/// children (its vfork children's processes, which become its programs'
/// `mote run`) is the application's.
fn about_mote_itself(sig: i32, info: &libc::siginfo_t) -> bool {
    let hosted = HOSTED_CHILD.load(Ordering::Acquire);
    // SAFETY: for SIGCHLD, Linux fills the si_pid field of the siginfo it passed.
    sig == libc::SIGCHLD && hosted > 0 && unsafe { info.si_pid() } == hosted
}

fn record(page: &SignalPage, sig: u32, info: &libc::siginfo_t) {
    if !(1..=64).contains(&sig) || page.ignored.load(Ordering::Acquire) & (1 << (sig - 1)) != 0 {
        return;
    }
    // SAFETY: siginfo_t is at least 128 bytes of plain data; we read its first 32.
    let bytes: [u8; INFO_BYTES] = unsafe {
        std::ptr::read_unaligned(info as *const libc::siginfo_t as *const [u8; INFO_BYTES])
    };
    for (i, w) in page.info[sig as usize - 1].iter().enumerate() {
        let v = u64::from_le_bytes(bytes[i * 8..][..8].try_into().expect("8 bytes"));
        w.store(v, Ordering::Relaxed);
    }
    page.pending.fetch_or(1 << (sig - 1), Ordering::Release);
}

/// After `KVM_RUN` returned for a kick: if the vCPU runs application code and a
/// signal libos wants is pending (or an `execve` ends the other threads), make it enter the runtime's trap entry as
/// kernel-min's upcall would (`UpcallHeader` with `VECTOR_SIGNAL` on the upcall
/// stack). Anywhere else (runtime, kernel-min) the runtime sees the signal on its
/// way back to the application, or the next kick catches it.
pub fn redirect(
    vcpu: &mut VcpuFd,
    guest: &GuestMem,
    core: usize,
    runtime_gpa: u64,
    trap_entry: u64,
) {
    vcpu.set_kvm_immediate_exit(0);
    let page = guest.signal_page();
    if page.pending.load(Ordering::Acquire) & page.wake.load(Ordering::Acquire) == 0 && !ending() {
        return;
    }
    enter_runtime(vcpu, guest, core, (runtime_gpa, trap_entry), VECTOR_SIGNAL);
}

/// If the vCPU runs application code, make it enter the runtime's trap entry
/// (`runtime`: its guest-physical base and the entry) as kernel-min's upcall
/// would, with `vector` in the `UpcallHeader` on the upcall stack; returns
/// whether it did. Anywhere else (the runtime, kernel-min) it does nothing.
pub fn enter_runtime(
    vcpu: &mut VcpuFd,
    guest: &GuestMem,
    core: usize,
    runtime: (u64, u64),
    vector: u64,
) -> bool {
    let (runtime_gpa, trap_entry) = runtime;
    let (Ok(mut regs), Ok(sregs)) = (vcpu.get_regs(), vcpu.get_sregs()) else {
        return false;
    };
    if sregs.cs.selector & 3 != 3 || regs.rip >= USER_END || regs.rip < 0x1000 {
        return false;
    }
    let top = guest.core_page(core).upcall_rsp.load(Ordering::Relaxed);
    if top == 0 || !top.is_multiple_of(16) || top < RUNTIME_VA {
        return false;
    }
    let hdr_va = top - std::mem::size_of::<UpcallHeader>() as u64;
    let h = UpcallHeader {
        vector,
        error_code: 0,
        cr2: 0,
        rip: regs.rip,
        rflags: regs.rflags,
        rsp: regs.rsp,
        _pad: 0,
    };
    // SAFETY: UpcallHeader is plain integers.
    let bytes: [u8; std::mem::size_of::<UpcallHeader>()] = unsafe { std::mem::transmute(h) };
    let gpa = runtime_gpa + (hdr_va - RUNTIME_VA);
    if guest.ptr(gpa, bytes.len() as u64).is_none() {
        return false;
    }
    guest.write(gpa, &bytes);
    regs.rip = trap_entry;
    regs.rsp = hdr_va;
    regs.rflags = 0x2;
    vcpu.set_regs(&regs).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kick_is_glibc_s_sigrtmax() {
        assert_eq!(kick_signal(), libc::SIGRTMAX());
    }

    #[test]
    fn routed_signals_leave_faults_job_control_and_the_kick_alone() {
        for s in [
            libc::SIGINT,
            libc::SIGTERM,
            libc::SIGALRM,
            libc::SIGHUP,
            libc::SIGUSR1,
            // Taken back from the offload thread after EPIPE (raised_by_call).
            libc::SIGPIPE,
        ] {
            assert!(routed(s), "{s}");
        }
        for s in [
            libc::SIGSEGV,
            libc::SIGKILL,
            libc::SIGSTOP,
            libc::SIGTSTP,
            libc::SIGCONT,
            kick_signal(),
        ] {
            assert!(!routed(s), "{s}");
        }
        assert!(routed(libc::SIGRTMIN()));
    }

    #[test]
    fn fault_signals_sent_by_a_process_are_told_from_real_faults() {
        for code in [libc::SI_USER, libc::SI_QUEUE, libc::SI_TKILL] {
            assert!(sent_by_a_process(code), "{code}");
        }
        // SEGV_MAPERR, SEGV_ACCERR, BUS_ADRERR, FPE_INTDIV, ILL_ILLOPC, SI_KERNEL.
        for code in [1, 2, 3, 0x80] {
            assert!(!sent_by_a_process(code), "{code}");
        }
        for s in FAULT_SIGNALS {
            assert!(!routed(s), "{s}: taken by on_fault_signal, never blocked");
        }
    }

    #[test]
    fn sigchld_of_the_hosted_application_process_is_not_the_applications() {
        // SAFETY: siginfo_t is plain data.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        info.si_signo = libc::SIGCHLD;
        // No hosted process registered: every SIGCHLD is the application's.
        assert!(!about_mote_itself(libc::SIGCHLD, &info));
        assert!(!about_mote_itself(libc::SIGTERM, &info));
    }

    #[test]
    fn cpu_time_timers_arm_read_back_fire_and_disarm() {
        // No vCPU and no hosted process here: the application's user time
        // (ITIMER_VIRTUAL's) is 0; its system time (ITIMER_PROF's) is this
        // process's, which runs on.
        assert_eq!(
            cpu_itimer(ITIMER_VIRTUAL, Some((5_000_000, 1_000_000))),
            (0, 0)
        );
        assert_eq!(cpu_itimer(ITIMER_VIRTUAL, None), (5_000_000, 1_000_000));
        assert_eq!(cpu_itimer(ITIMER_PROF, None), (0, 0));
        let hour = 3_600_000_000_000;
        assert_eq!(cpu_itimer(ITIMER_PROF, Some((hour, 7))), (0, 0));
        let (left, interval) = cpu_itimer(ITIMER_PROF, None);
        assert!(
            left > 0 && left <= hour && interval == 7,
            "{left} {interval}"
        );
        let page = SignalPage::new();
        assert!(cpu_timers(&page).is_some());
        assert_eq!(page.pending.load(Ordering::Relaxed), 0, "not due yet");
        assert_eq!(
            cpu_itimer(ITIMER_VIRTUAL, Some((0, 0))),
            (5_000_000, 1_000_000)
        );
        assert_eq!(cpu_itimer(ITIMER_PROF, Some((0, 0))).1, 7);
        assert_eq!(cpu_itimer(ITIMER_VIRTUAL, None), (0, 0));
        assert_eq!(cpu_itimer(ITIMER_PROF, None), (0, 0));
        assert!(cpu_timers(&page).is_none());
    }

    #[test]
    fn arrivals_are_recorded_unless_ignored() {
        let page = SignalPage::new();
        // SAFETY: siginfo_t is plain data.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        info.si_signo = libc::SIGTERM;
        info.si_code = libc::SI_USER;
        record(&page, libc::SIGTERM as u32, &info);
        assert_eq!(
            page.pending.load(Ordering::Relaxed),
            1 << (libc::SIGTERM - 1)
        );
        assert_eq!(
            page.info_bytes(libc::SIGTERM as u32)[..4],
            libc::SIGTERM.to_le_bytes()
        );
        page.ignored
            .store(1 << (libc::SIGHUP - 1), Ordering::Relaxed);
        record(&page, libc::SIGHUP as u32, &info);
        assert_eq!(
            page.pending.load(Ordering::Relaxed) & (1 << (libc::SIGHUP - 1)),
            0
        );
    }
}
