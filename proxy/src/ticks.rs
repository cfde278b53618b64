//! The partition's time-sharing timers (`mote run --time-slice`): one POSIX timer
//! per vCPU thread (`timer_create` with `SIGEV_THREAD_ID` on `CLOCK_MONOTONIC`),
//! started and stopped by the runtime's `TICK` doorbell
//! (`mote_abi::ports::TICK`) only while the core has a second thread that wants
//! to run. Its signal is the kick's (`signals::kick_signal`), so it interrupts
//! `KVM_RUN` like a kick; the kick's handler tells it apart by `SI_TIMER` and
//! notes it here (`on_timer_signal`), and the vCPU thread takes the note after
//! `KVM_RUN` returns (`take_due`) and enters the runtime with `VECTOR_PREEMPT`
//! (`signals::enter_runtime`). The hosted platform's timers are the application
//! process's own (the runtime's `rt::hosted::traps`).
//!
//! A leaf: it uses no other proxy module.
//!
//! Allows `unsafe`: the raw `timer_create` and `timer_settime` calls.
#![allow(unsafe_code)]

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};

use mote_abi::layout::MAX_CORES;

/// Per vCPU: its timer's id (-1: none).
static TIMER: [AtomicI32; MAX_CORES] = [const { AtomicI32::new(-1) }; MAX_CORES];
/// Per vCPU: a timer event arrived that the vCPU thread has not acted on yet.
static DUE: [AtomicBool; MAX_CORES] = [const { AtomicBool::new(false) }; MAX_CORES];
/// The slice in ns (0: time-sharing off; no timer is made).
static SLICE_NS: AtomicU64 = AtomicU64::new(0);

/// Set the slice before the vCPU threads start.
pub fn set_slice(ns: u64) {
    SLICE_NS.store(ns, Ordering::Relaxed);
}

/// The calling thread runs vCPU `core`: give it a stopped timer whose signal
/// `signo` goes to this thread, with `core` as its value. Without one (Linux
/// refused) the core never preempts, as with `--time-slice 0`.
pub fn register_vcpu(core: usize, signo: i32) {
    if SLICE_NS.load(Ordering::Relaxed) == 0 || core >= MAX_CORES {
        return;
    }
    // SAFETY: sigevent is plain data; zeroed is a valid start.
    let mut ev: libc::sigevent = unsafe { std::mem::zeroed() };
    ev.sigev_notify = libc::SIGEV_THREAD_ID;
    ev.sigev_signo = signo;
    ev.sigev_value = libc::sigval {
        sival_ptr: core as *mut libc::c_void,
    };
    // SAFETY: gettid has no preconditions.
    ev.sigev_notify_thread_id = unsafe { libc::gettid() };
    let mut id: libc::c_int = -1;
    // SAFETY: the raw system call (not glibc's wrapper, whose timer_t is its
    // own) writes the kernel's timer id into `id`; `ev` is a valid sigevent.
    let r = unsafe {
        libc::syscall(
            libc::SYS_timer_create,
            libc::CLOCK_MONOTONIC,
            &mut ev as *mut libc::sigevent,
            &mut id as *mut libc::c_int,
        )
    };
    if r == 0 {
        TIMER[core].store(id, Ordering::Release);
    }
}

/// The `TICK` doorbell's data (`ports::TICK_CORE`, `ports::TICK_ON`): start core
/// `core`'s timer, periodic at the slice, or stop it.
pub fn doorbell(data: u32) {
    let core = (data & mote_abi::ports::TICK_CORE) as usize;
    let on = data & mote_abi::ports::TICK_ON != 0;
    let Some(id) = TIMER.get(core).map(|t| t.load(Ordering::Acquire)) else {
        return;
    };
    if id < 0 {
        return;
    }
    let ns = if on {
        SLICE_NS.load(Ordering::Relaxed).max(1)
    } else {
        0
    };
    let ts = libc::timespec {
        tv_sec: (ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (ns % 1_000_000_000) as libc::c_long,
    };
    let spec = libc::itimerspec {
        it_interval: ts,
        it_value: ts,
    };
    // SAFETY: the raw system call on a timer id this process made; `spec` is a
    // valid itimerspec and no old value is asked for.
    unsafe {
        libc::syscall(
            libc::SYS_timer_settime,
            id,
            0,
            &spec as *const libc::itimerspec,
            std::ptr::null_mut::<libc::itimerspec>(),
        )
    };
}

/// From the kick's signal handler: a timer event for vCPU `core` (the value the
/// timer carries). Async-signal-safe: one atomic store.
pub fn on_timer_signal(core: usize) {
    if let Some(d) = DUE.get(core) {
        d.store(true, Ordering::Release);
    }
}

/// Take vCPU `core`'s timer event, if one arrived.
pub fn take_due(core: usize) -> bool {
    DUE.get(core)
        .is_some_and(|d| d.swap(false, Ordering::AcqRel))
}
