//! The cores' time-sharing timers, the runtime's side: whether each core's timer
//! runs (as last asked of the platform), starting and stopping it with the `TICK`
//! doorbell (`mote_abi::ports`: the hosted process's per-core Linux timer, or the
//! VMM's timer on the vCPU thread), the deferred slice end a timer event left
//! for the runtime (`CorePage::preempt_due`), and the counts `--stats` reports.
//!
//! What a core wants (`Threads::wants_tick`) and whom it runs when the slice
//! ends (`Threads::preempt`) are libos's decisions; the switch is `rt::threads`'s.
//! Each core's flag and its doorbell change together under that core's own
//! small lock, so the timer always is as the flag says. A stop is decided under
//! the `THREADS` lock (the core wants no timer now); a thread made runnable on
//! a core later comes with a kick (`rt::threads::kick`), which starts it again.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use mote_abi::layout::MAX_CORES;
use mote_abi::{kcall, ports};

use super::ikc::core_page;
use super::platform::{self, kcall_raw};

/// Per core: its timer runs (as last asked).
static ARMED: [spin::Mutex<bool>; MAX_CORES] = [const { spin::Mutex::new(false) }; MAX_CORES];
/// Per core: timer events that reached the runtime.
static TICKS: [AtomicU64; MAX_CORES] = [const { AtomicU64::new(0) }; MAX_CORES];
/// Per core: threads preempted at the end of their slice.
static PREEMPTIONS: [AtomicU64; MAX_CORES] = [const { AtomicU64::new(0) }; MAX_CORES];
/// The timer of some core was ever started (`--stats` says so).
static EVER: AtomicBool = AtomicBool::new(false);

/// A fork's copy (`rt::fork`): no core's timer runs in this process (Linux's
/// timers do not cross a fork), its counts start at 0, and a flag's lock another
/// core of the parent held during the copy is nobody's here.
pub fn forget_parent() {
    for ((armed, ticks), preemptions) in ARMED.iter().zip(&TICKS).zip(&PREEMPTIONS) {
        // SAFETY: no other thread of this process runs yet (`fork::adopt` runs
        // before any other core starts), so no one holds the lock.
        unsafe { armed.force_unlock() };
        *armed.lock() = false;
        ticks.store(0, Ordering::Relaxed);
        preemptions.store(0, Ordering::Relaxed);
    }
    EVER.store(false, Ordering::Relaxed);
}

/// The slice in ns (`mote run --time-slice`; 0: never preempt).
pub fn slice_ns() -> u64 {
    platform::get().boot.time_slice_ns
}

fn doorbell(core: usize, on: bool) {
    let data = (core as u32 & ports::TICK_CORE) | if on { ports::TICK_ON } else { 0 };
    let _ = kcall_raw(kcall::DOORBELL, [ports::TICK as u64, data as u64, 0, 0]);
}

/// Start `core`'s timer unless it runs (time-sharing off: never).
pub fn start(core: usize) {
    if slice_ns() == 0 || core >= MAX_CORES {
        return;
    }
    let mut armed = ARMED[core].lock();
    if !*armed {
        *armed = true;
        EVER.store(true, Ordering::Relaxed);
        doorbell(core, true);
    }
}

/// Stop `core`'s timer. `fired`: a timer event just arrived, so it runs whatever
/// the flag says (a start and a stop from two cores may have crossed on their way
/// to the platform): stop it anyway.
pub fn stop(core: usize, fired: bool) {
    if core >= MAX_CORES {
        return;
    }
    let mut armed = ARMED[core].lock();
    if *armed || fired {
        *armed = false;
        doorbell(core, false);
    }
}

/// Does `core`'s timer run?
pub fn armed(core: usize) -> bool {
    core < MAX_CORES && *ARMED[core].lock()
}

/// Take the slice end a timer event left while `core` ran the runtime.
pub fn take_due(core: usize) -> bool {
    core_page(core).preempt_due.swap(0, Ordering::AcqRel) != 0
}

/// Is a slice end due on `core` (one load: the entries' return paths ask)?
pub fn due(core: usize) -> bool {
    core_page(core).preempt_due.load(Ordering::Relaxed) != 0
}

/// A timer event reached `core`'s runtime at ring 3.
pub fn count_tick(core: usize) {
    if let Some(n) = TICKS.get(core) {
        n.fetch_add(1, Ordering::Relaxed);
    }
}

/// `core` preempted its running thread.
pub fn count_preemption(core: usize) {
    if let Some(n) = PREEMPTIONS.get(core) {
        n.fetch_add(1, Ordering::Relaxed);
    }
}

/// The `--stats` line: the slice, and per core the threads preempted and the
/// timer events taken.
pub fn stats_line(ncores: usize) -> alloc::string::String {
    use core::fmt::Write;
    let mut s = alloc::string::String::new();
    let slice = slice_ns();
    if slice == 0 {
        s.push_str("time-sharing: off (--time-slice 0)");
    } else {
        let _ = write!(s, "time-sharing: slice {} ms", slice / 1_000_000);
    }
    s.push_str("; preemptions per core:");
    for n in PREEMPTIONS.iter().take(ncores) {
        let _ = write!(s, " {}", n.load(Ordering::Relaxed));
    }
    s.push_str("; timer events per core:");
    for n in TICKS.iter().take(ncores) {
        let _ = write!(s, " {}", n.load(Ordering::Relaxed));
    }
    if !EVER.load(Ordering::Relaxed) {
        s.push_str(" (no timer started)");
    }
    s
}
