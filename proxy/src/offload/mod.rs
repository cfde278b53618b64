//! The offload server: one thread per application thread, on the host's Linux core,
//! serving that thread's IKC slot (protocol at the top of `mote_abi::ikc`). Slot 0
//! (the main thread) and each core's idle-context slot (`ikc::idle_slot`) are
//! served from the start; libos asks for more with `Op::StartServer` when it
//! creates threads.
//!
//! This module owns the server loop (`serve`: wait for a request, apply the map
//! log, answer it); the forwarded calls themselves are `forward`'s (the raw
//! executor and the refused list), vfork children `vfork`'s. The map log is
//! applied before every request, so memory libos published before making the
//! call is visible.
//!
//! Where the threads run and whether they spin is the `Placement` set once by
//! `mote run` (`cpus::offload_place`): on the Linux core, or, for a run bound to
//! one CPU, on a free service CPU outside the binding, else on the binding's
//! CPU without ever spinning. A run bound to one CPU checks its service CPU
//! again every [`RECHECK_NS`] (another rank may start computing on it) and
//! moves its threads when the place changes; `--stats` says where they ran and
//! how long they spun ([`stats_line`]).

mod fork;
mod forward;
mod guard;
mod ioctl;
mod keys;
mod nested;
mod reach;
#[cfg(test)]
mod tests;
mod vfork;

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::thread::JoinHandle;

use mote_abi::ikc::{Op, Request, Slot, MAX_THREADS, SPIN_LIMIT, THREAD_SLOTS};

use self::forward::forward;
use crate::cpus::{pin_to, OffloadPlace};
use crate::event::Event;
use crate::futex::{futex_wait, wake_core};
use crate::guest::GuestMem;
use crate::mirror::{read_user, zero_user, Mirror};

/// Longest libos log message printed (longer ones are cut).
const LOG_MAX: usize = 4096;

/// Linux tid of each slot's server (0: none yet): the application thread's tid.
static TIDS: [AtomicU32; MAX_THREADS] = [const { AtomicU32::new(0) }; MAX_THREADS];

/// Is `tid` the Linux tid of an application thread other than the main one
/// (its slot's server; the main thread's tid is the pid, its server's is not
/// the application's)?
pub(crate) fn is_app_tid(tid: i32) -> bool {
    tid > 0
        && TIDS[1..THREAD_SLOTS]
            .iter()
            .any(|t| t.load(Ordering::Acquire) == tid as u32)
}

/// Thread slots that have a server (bit per slot).
static SERVED: [AtomicU64; MAX_THREADS / 64] = [const { AtomicU64::new(0) }; MAX_THREADS / 64];

/// Slots whose idle server is to end: the application thread it served ended
/// and libos gives the slot to a new thread, which gets a server (and so a
/// Linux tid) of its own, as Linux does not give a new thread a tid an ended
/// one had until the ids wrap (`retire`).
static RETIRE: [AtomicBool; MAX_THREADS] = [const { AtomicBool::new(false) }; MAX_THREADS];

/// How often a run bound to one CPU checks its offload threads' place again.
const RECHECK_NS: u64 = 250_000_000;

/// The offload threads' place: set by `mote run` before the first thread starts.
struct Placement {
    /// CPUs of the binding and of the cpuset, for a new decision; None: the
    /// place never changes (more than one CPU allowed).
    recheck: Option<(Vec<usize>, Vec<usize>)>,
    /// Every place taken, with the run's time (ns since it started) it was taken.
    history: std::sync::Mutex<Vec<(u64, OffloadPlace)>>,
    start: std::time::Instant,
}

static PLACEMENT: std::sync::OnceLock<Placement> = std::sync::OnceLock::new();
/// The current place, as `cpu << 1 | spins` (read on every wait).
static PLACE: AtomicU64 = AtomicU64::new(1);
/// Bumped when the place changes; each thread re-pins when it sees a new one.
static PLACE_GEN: AtomicU32 = AtomicU32::new(0);
/// Monotonic (coarse) time of the next check of the place.
static NEXT_CHECK: AtomicU64 = AtomicU64::new(0);
/// Whether spinning is timed (`--stats`, `MOTE_DEBUG`).
static TIMED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
/// Time spent in the long spins (after the grace window), ns, and requests
/// found there.
static SPUN_NS: AtomicU64 = AtomicU64::new(0);
static SPUN_HITS: AtomicU64 = AtomicU64::new(0);
/// Per thread slot: polls made in grace windows and requests found there. Each
/// is written by its slot's thread only (a load and a store, no locked
/// instruction on the path of every call), and turned into time with
/// [`POLL_PS`], measured once: reading a clock twice per call would cost a
/// tenth of a forwarded call.
static GRACE_POLLS: [AtomicU64; MAX_THREADS] = [const { AtomicU64::new(0) }; MAX_THREADS];
static GRACE_HITS: [AtomicU64; MAX_THREADS] = [const { AtomicU64::new(0) }; MAX_THREADS];
/// Cost of one poll of an idle slot, in ps (measured by `set_placement`).
static POLL_PS: AtomicU64 = AtomicU64::new(0);

fn encode(place: OffloadPlace) -> u64 {
    (place.cpu() as u64) << 1 | u64::from(place.spins())
}

/// Set where the offload threads run: `place`, chosen for a run bound to
/// `allowed` that could use `usable`; `timed`: measure spinning for `--stats`.
pub fn set_placement(place: OffloadPlace, allowed: Vec<usize>, usable: Vec<usize>, timed: bool) {
    let recheck = (allowed.len() == 1 && usable.len() > 1).then_some((allowed, usable));
    if recheck.is_some() {
        crate::cpus::keep_proc_locks();
    }
    let p = Placement {
        recheck,
        history: std::sync::Mutex::new(vec![(0, place)]),
        start: std::time::Instant::now(),
    };
    if PLACEMENT.set(p).is_ok() {
        PLACE.store(encode(place), Ordering::Release);
        TIMED.store(timed, Ordering::Relaxed);
        if timed {
            POLL_PS.store(poll_cost_ps(), Ordering::Relaxed);
        }
        NEXT_CHECK.store(coarse_ns() + RECHECK_NS, Ordering::Relaxed);
    }
}

/// What one poll of a slot without a request costs, in ps: a grace window's
/// loop, timed over many turns.
fn poll_cost_ps() -> u64 {
    const TURNS: u32 = 1 << 12;
    let word = AtomicU32::new(0);
    let t0 = std::time::Instant::now();
    for _ in 0..TURNS {
        if std::hint::black_box(&word).load(Ordering::Acquire) == u32::MAX {
            break;
        }
        std::hint::spin_loop();
    }
    (t0.elapsed().as_nanos() as u64 * 1000) / u64::from(TURNS)
}

fn coarse_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::MonotonicCoarse);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// Every [`RECHECK_NS`], one thread decides the place again (the service CPU
/// may have become another rank's compute CPU, or one may have come free).
fn maybe_recheck() {
    let Some(Placement {
        recheck: Some((allowed, usable)),
        history,
        start,
    }) = PLACEMENT.get()
    else {
        return;
    };
    let next = NEXT_CHECK.load(Ordering::Relaxed);
    let now = coarse_ns();
    if now < next
        || NEXT_CHECK
            .compare_exchange(next, now + RECHECK_NS, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
    {
        return;
    }
    let outside: Vec<usize> = usable
        .iter()
        .copied()
        .filter(|c| !allowed.contains(c))
        .collect();
    let place = crate::cpus::offload_place(allowed, usable, &crate::cpus::busy_cpus(&outside));
    if encode(place) != PLACE.load(Ordering::Acquire) {
        let mut h = history.lock().unwrap_or_else(|p| p.into_inner());
        h.push((start.elapsed().as_nanos() as u64, place));
        PLACE.store(encode(place), Ordering::Release);
        PLACE_GEN.fetch_add(1, Ordering::AcqRel);
        crate::note!("mote: offload threads move to {place}");
    }
}

/// `--stats`: where the offload threads ran and how long they polled.
pub fn stats_line() -> Option<String> {
    let p = PLACEMENT.get()?;
    let h = p.history.lock().unwrap_or_else(|p| p.into_inner());
    let places: Vec<String> = h
        .iter()
        .map(|(at, place)| {
            if *at == 0 {
                place.to_string()
            } else {
                format!("from {:.3} s {place}", *at as f64 / 1e9)
            }
        })
        .collect();
    let sum = |a: &[AtomicU64]| a.iter().map(|n| n.load(Ordering::Relaxed)).sum::<u64>();
    let grace_ns = sum(&GRACE_POLLS) * POLL_PS.load(Ordering::Relaxed) / 1000;
    Some(format!(
        "offload threads on {}; spun {:.3} ms, {} requests found spinning",
        places.join(", then "),
        (SPUN_NS.load(Ordering::Relaxed) + grace_ns) as f64 / 1e6,
        SPUN_HITS.load(Ordering::Relaxed) + sum(&GRACE_HITS)
    ))
}

/// Start the offload thread of thread slot `slot`, pinned to host CPU `pin` (None:
/// not pinned) until the place changes. The thread ends after its application
/// thread reports the end of the run (`Exit` or `Fatal`). `Ok(None)`: the slot
/// already has one.
pub fn spawn(
    slot: usize,
    guest: Arc<GuestMem>,
    mirror: Arc<Mirror>,
    events: Sender<Event>,
    pin: Option<usize>,
) -> io::Result<Option<JoinHandle<()>>> {
    if slot >= MAX_THREADS {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let bit = 1u64 << (slot % 64);
    if SERVED[slot / 64].fetch_or(bit, Ordering::AcqRel) & bit != 0 {
        return Ok(None);
    }
    let started = std::thread::Builder::new()
        .name(format!("mote-offload{slot}"))
        .spawn(move || {
            let tid = rustix::thread::gettid().as_raw_nonzero().get();
            TIDS[slot].store(tid as u32, Ordering::Release);
            if let Some(cpu) = pin {
                if let Err(e) = pin_to(cpu) {
                    // It still serves its slot, from wherever Linux runs it.
                    crate::note!("mote: offload thread {slot}: cannot pin to CPU {cpu}: {e}");
                }
            }
            crate::signals::register_offload(slot);
            serve(slot, &guest, &mirror, &events, pin);
        });
    match started {
        Ok(h) => Ok(Some(h)),
        Err(e) => {
            SERVED[slot / 64].fetch_and(!bit, Ordering::AcqRel);
            Err(e)
        }
    }
}

/// Before slot `slot` gets a new server: end its old one, if any. libos gives
/// a slot again only after its thread ended, so that server is idle, waiting
/// for a request; it is woken until it has gone (a wake may land just before
/// it sleeps).
fn retire(guest: &GuestMem, slot: usize) {
    if slot >= MAX_THREADS {
        return;
    }
    let bit = 1u64 << (slot % 64);
    if SERVED[slot / 64].load(Ordering::Acquire) & bit == 0 {
        return;
    }
    RETIRE[slot].store(true, Ordering::Release);
    let s = guest.thread_slot(slot);
    while SERVED[slot / 64].load(Ordering::Acquire) & bit != 0 {
        crate::futex::futex_wake(&s.req_seq);
        std::thread::sleep(std::time::Duration::from_micros(20));
    }
}

/// In a forked proxy (`Op::ForkProcess`'s child): no slot has a server yet.
fn reset_after_fork() {
    for w in &SERVED {
        w.store(0, Ordering::Release);
    }
    for t in &TIDS {
        t.store(0, Ordering::Release);
    }
    vfork::forget_children();
}

/// Serve thread slot `index` until the run ends; sends the ending `Event`.
pub fn serve(
    index: usize,
    guest: &Arc<GuestMem>,
    mirror: &Arc<Mirror>,
    events: &Sender<Event>,
    pin: Option<usize>,
) {
    let slot = guest.thread_slot(index);
    // The last request answered; a request is pending when req_seq differs.
    let mut last = slot.resp_seq.load(Ordering::Acquire);
    let child = vfork::in_vfork_child();
    // An idle context calls only to report the end of the run (a runtime panic):
    // its server sleeps at once and leaves the spinning to the threads' servers.
    let spin = index < THREAD_SLOTS;
    // A thread started after the place changed (its `pin` is the first place)
    // moves on its first wait.
    let mut gen = PLACE_GEN.load(Ordering::Acquire);
    if pin.is_some() && gen != 0 {
        gen = gen.wrapping_sub(1);
    }
    loop {
        let Some(req) = wait_request(guest, index, slot, last, spin, &mut gen) else {
            // Retired (`retire`): the slot is free for a new server.
            RETIRE[index].store(false, Ordering::Relaxed);
            TIDS[index].store(0, Ordering::Release);
            SERVED[index / 64].fetch_and(!(1u64 << (index % 64)), Ordering::AcqRel);
            return;
        };
        last = req.seq;
        if index == 0 && !child {
            // The runtime's boot is over when the main thread first calls.
            crate::timeline::mark_once("first request");
        }
        // A vfork child process leaves the map log to the parent, which is the
        // one that keeps running (the child's mirror stays as it was at the fork).
        if !child {
            mirror.sync(guest.maplog());
        }
        let ret = match Op::from_u32(req.op) {
            Some(Op::Syscall) => {
                // A signal for the application interrupts the call (signals.rs).
                crate::signals::offload_busy(index, true);
                let r = forward(req.nr, req.args);
                crate::signals::offload_busy(index, false);
                // SIGXFSZ (write past RLIMIT_FSIZE) and SIGPIPE (write nobody reads)
                // are the application thread's.
                if let Some(sig) = crate::signals::raised_by_call(r) {
                    slot.set_raised(sig);
                }
                r
            }
            Some(Op::Exit) if child => vfork::child_exit((req.args[0] & 0xff) as i32),
            Some(Op::Exit) => {
                let _ = events.send(Event::Exited((req.args[0] & 0xff) as i32));
                return;
            }
            Some(Op::Fatal) if child => {
                let sig = req.args[0] as i32;
                // Its parent learns it from the wait status, as natively.
                crate::note!(
                    "mote: child process {}: killed by signal {sig}",
                    std::process::id()
                );
                vfork::child_killed(sig)
            }
            // A thread an `execve` is ending makes no new process.
            Some(Op::Fork | Op::ForkProcess) if crate::signals::being_ended(index) => {
                -i64::from(libc::EINTR)
            }
            Some(Op::Fork) => vfork::fork_child(req.args[0] as usize, guest, mirror, events, pin),
            Some(Op::ForkProcess) if child => -i64::from(libc::ENOSYS),
            Some(Op::ForkProcess) => {
                let used = [req.args[0], req.args[1], req.args[2]];
                let held = [req.args[4], req.args[5]];
                fork::fork_process(guest, mirror, used, held, req.args[3], pin)
            }
            Some(Op::VforkWait) => {
                vfork::vfork_wait(req.args[0] as i32, req.args[1] as usize, guest, index)
            }
            Some(Op::SpawnExec) => crate::spawn::exec_in_partition(
                req.args[0],
                req.args[1],
                req.args[2],
                req.args[3],
                req.args[4],
                req.args[5],
            ),
            Some(Op::Fatal) => {
                // libos wrote the report before publishing the request, which the
                // Acquire load of req_seq in `poll` ordered before this read.
                let core = req.args[2] as usize % mote_abi::layout::MAX_CORES;
                let fault = (req.args[1] != 0).then(|| guest.fault_report(core));
                let signal = req.args[0] as u32;
                let _ = events.send(Event::Killed { signal, fault });
                return;
            }
            Some(Op::EndThreads) => {
                crate::signals::end_threads((req.args[0] != 0).then_some(index));
                0
            }
            Some(Op::PerfOpen) => forward::perf_open(req.args),
            Some(Op::Log) => log(index, req.args[0], req.args[1]),
            Some(Op::Nop) => 0,
            Some(Op::Zero) => match zero_user(req.args[0], req.args[1]) {
                Ok(()) => 0,
                Err(e) => -i64::from(e.raw_os_error().unwrap_or(libc::EFAULT)),
            },
            Some(Op::Write) => match mirror.poke(req.args[0], req.args[1], req.args[2]) {
                Ok(()) => 0,
                Err(e) => -i64::from(e.raw_os_error().unwrap_or(libc::EFAULT)),
            },
            Some(Op::MapShared) => mirror.map_shared(req.args),
            Some(Op::ShmAttach) => mirror.attach_shm(req.args),
            Some(Op::Unshare) => mirror.unshare(req.args[0]),
            Some(Op::SharedLen) => mirror.shared_len(req.args[0]),
            Some(Op::StartServer) => {
                retire(guest, req.args[0] as usize);
                let r = spawn(
                    req.args[0] as usize,
                    guest.clone(),
                    mirror.clone(),
                    events.clone(),
                    pin,
                );
                match r {
                    Ok(_) => {
                        // The server's tid is the new application thread's.
                        let i = req.args[0] as usize;
                        loop {
                            let tid = TIDS[i].load(Ordering::Acquire);
                            if tid != 0 {
                                break i64::from(tid);
                            }
                            std::thread::yield_now();
                        }
                    }
                    Err(e) => {
                        crate::say!("mote: cannot start the offload thread of application thread slot {}: {e}", req.args[0]);
                        -i64::from(e.raw_os_error().unwrap_or(libc::EAGAIN))
                    }
                }
            }
            Some(Op::CpuTimes) => {
                let times = crate::signals::cpu_times(req.args[1] as usize);
                let bytes: Vec<u8> = times.iter().flat_map(|n| n.to_ne_bytes()).collect();
                match crate::mirror::write_user(req.args[0], &bytes) {
                    Ok(()) => times.len() as i64,
                    Err(e) => -i64::from(e.raw_os_error().unwrap_or(libc::EFAULT)),
                }
            }
            Some(Op::PageSizes) => {
                let sizes = crate::hosted::page_sizes(req.args[0], req.args[1])
                    .unwrap_or_else(|| crate::boot::page_sizes(guest, req.args[0], req.args[1]));
                let bytes: Vec<u8> = sizes.iter().flat_map(|n| n.to_ne_bytes()).collect();
                match crate::mirror::write_user(req.args[2], &bytes) {
                    Ok(()) => 0,
                    Err(e) => -i64::from(e.raw_os_error().unwrap_or(libc::EFAULT)),
                }
            }
            None => {
                // The runtime publishes only ops it knows: the application
                // wrote over the slot.
                let at = mote_abi::layout::IKC_VA + mote_abi::ikc::thread_slot_offset(index);
                let what = format!(
                    "IKC request slot {index} (at {at:#x}: it held a request with op {}, which mote has \
                     none of)",
                    req.op
                );
                let _ = events.send(Event::Corrupted(what));
                return;
            }
        };
        let waiter = slot.respond(req.seq, ret);
        if waiter != 0 {
            wake_core(guest, waiter as usize - 1);
        }
    }
}

/// Polls right after answering a call before the thread claims one of the
/// spinner slots (`spinners`): the requester's next call usually comes within a few hundred ns
/// (its thread returns to the application and calls again), and this window
/// serves it without an atomic read-modify-write on a shared counter per call
/// (a locked instruction also waits for the response's store to leave the store
/// buffer). Bounded (a few µs), so a crowd of threads just past their calls
/// cannot starve the Linux core for long.
const GRACE_SPINS: u32 = 256;

/// Wait for a request after `last`: with `spin` (and a place that spins), poll
/// for `GRACE_SPINS` and spin (bounded, while few others do); then sleep on
/// `req_seq`. Before sleeping, wake the requester's core if it waits (the late
/// check of the protocol, `mote_abi::ikc`: `respond` does not fence). Moves the
/// thread when the place changed since `gen`. The slot's next request; `None`
/// when the server is to end (`retire`).
fn wait_request(
    guest: &GuestMem,
    index: usize,
    slot: &Slot,
    last: u32,
    spin: bool,
    gen: &mut u32,
) -> Option<Request> {
    if spin && PLACE.load(Ordering::Relaxed) & 1 != 0 {
        for i in 0..GRACE_SPINS {
            if let Some(r) = slot.poll(last) {
                count_grace(index, i + 1, true);
                return Some(r);
            }
            std::hint::spin_loop();
        }
        count_grace(index, GRACE_SPINS, false);
    }
    maybe_recheck();
    let now = PLACE_GEN.load(Ordering::Acquire);
    if now != *gen {
        *gen = now;
        let cpu = (PLACE.load(Ordering::Acquire) >> 1) as usize;
        if let Err(e) = pin_to(cpu) {
            crate::note!("mote: offload thread {index}: cannot move to CPU {cpu}: {e}");
        }
    }
    // A thread's server that may not spin runs on the thread's own CPU (the
    // run is bound to one CPU and no CPU beside it is free): its requester
    // should not spin either (`PROXY_ASLEEP_HERE`).
    let here = spin && PLACE.load(Ordering::Relaxed) & 1 == 0;
    let spin = spin && !here;
    loop {
        if RETIRE[index].load(Ordering::Acquire) {
            return None;
        }
        // Spin only while few others do: every offload thread shares the Linux
        // core, and a crowd of spinners (an application with many threads, or
        // many ranks) would starve the one with a request to serve.
        // The bound is node-wide (`spinners`): every run's offload threads on
        // this CPU count, so N ranks sharing a service CPU keep it usable.
        let cpu = (PLACE.load(Ordering::Relaxed) >> 1) as usize;
        if let Some(_claim) = spin.then(|| crate::spinners::claim(cpu)).flatten() {
            let t0 = timer();
            for _ in 0..SPIN_LIMIT {
                if let Some(r) = slot.poll(last) {
                    count_spin(t0, true);
                    return Some(r);
                }
                std::hint::spin_loop();
            }
            count_spin(t0, false);
        }
        if let Some(r) = slot.poll(last) {
            return Some(r);
        }
        if slot.begin_sleep(last, here) {
            let waiter = slot.waiting_requester();
            if waiter != 0 {
                wake_core(guest, waiter as usize - 1);
            }
            futex_wait(&slot.req_seq, last);
            slot.end_sleep();
        }
    }
}

/// Count `polls` of a grace window of slot `index` (when spinning is counted,
/// `--stats`); `found`: it ended with a request.
fn count_grace(index: usize, polls: u32, found: bool) {
    if TIMED.load(Ordering::Relaxed) {
        let add = |a: &AtomicU64, n: u64| a.store(a.load(Ordering::Relaxed) + n, Ordering::Relaxed);
        add(&GRACE_POLLS[index], u64::from(polls));
        if found {
            add(&GRACE_HITS[index], 1);
        }
    }
}

/// The start of a long spin, when spinning is timed (`--stats`).
fn timer() -> Option<std::time::Instant> {
    TIMED.load(Ordering::Relaxed).then(std::time::Instant::now)
}

/// Count a spin that began at `t0` (if timed); `found`: it ended with a request.
fn count_spin(t0: Option<std::time::Instant>, found: bool) {
    if let Some(t0) = t0 {
        SPUN_NS.fetch_add(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
        if found {
            SPUN_HITS.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Run `msg` and say it, the first time only for `flag`.
fn warn_once(flag: &AtomicU32, msg: impl FnOnce() -> String) {
    if flag.swap(1, Ordering::Relaxed) == 0 {
        crate::say!("{}", msg());
    }
}

/// `Op::Log`: print libos's message at application address `va`.
fn log(slot: usize, va: u64, len: u64) -> i64 {
    let mut buf = vec![0u8; (len as usize).min(LOG_MAX)];
    match read_user(va, &mut buf) {
        Ok(n) => {
            let text = String::from_utf8_lossy(&buf[..n]);
            for line in text.trim_end_matches('\n').lines() {
                crate::say!("mote: libos: {line}");
            }
            0
        }
        Err(e) => {
            crate::say!("mote: libos: thread slot {slot}: log message at {va:#x} unreadable: {e}");
            -i64::from(e.raw_os_error().unwrap_or(libc::EFAULT))
        }
    }
}
