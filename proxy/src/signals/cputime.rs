//! The application's CPU-time interval timers (`ITIMER_VIRTUAL`,
//! `ITIMER_PROF`) and, on the hosted platform, its `RLIMIT_CPU`: both count the
//! application's CPU time, which Linux's own would not (they would count the
//! proxy's), so the signal router fires them (`cpu_timers`, `cpu_limit`).
//!
//! Allows `unsafe` for zeroed `siginfo_t`s and the CPU-time clock calls.
#![allow(unsafe_code)]

use std::sync::atomic::Ordering;
use std::time::Duration;

use mote_abi::signal::SignalPage;

use super::{cpu_times, record, wake_router, HOSTED_CHILD};

/// The application's CPU-time interval timers, `ITIMER_VIRTUAL` and
/// `ITIMER_PROF` (`setitimer(2)`): run here, because Linux's would count the
/// proxy's time (its offload threads), not the application's. The time they
/// count is what `getrusage` reports to the application: `ITIMER_VIRTUAL` its
/// user time, the LWK cores' (the vCPU threads' CPU time in the partition, the
/// application process's on the hosted platform); `ITIMER_PROF` user and
/// system time, the latter being the proxy's service of its forwarded calls
/// (the `mote` process's own CPU time besides the vCPUs'). Each is the CPU time
/// it fires at (0: disarmed) and its interval, in ns.
static CPU_TIMERS: std::sync::Mutex<[(u64, u64); 2]> = std::sync::Mutex::new([(0, 0); 2]);

/// `ITIMER_VIRTUAL` and `ITIMER_PROF` (`include/uapi/linux/time.h`).
pub const ITIMER_VIRTUAL: u64 = 1;
pub const ITIMER_PROF: u64 = 2;

/// The CPU time CPU-time timer `i` counts (0: `ITIMER_VIRTUAL`, user time; 1:
/// `ITIMER_PROF`, user and system time), in ns.
fn app_cpu_ns(i: usize) -> u64 {
    let hosted = HOSTED_CHILD.load(Ordering::Acquire);
    let prof = i == 1;
    if hosted > 0 {
        // The proxy's whole CPU time is its service of the application.
        process_cpu_ns(hosted) + if prof { process_cpu_ns(0) } else { 0 }
    } else if prof {
        // The process's time holds the vCPU threads' and the proxy's own.
        cpu_times(1).first().copied().unwrap_or(0)
    } else {
        cpu_times(2).get(1).copied().unwrap_or(0)
    }
}

/// Set (`new`: value and interval in ns, a value of 0 disarms) or read CPU-time
/// timer `which` (`ITIMER_VIRTUAL` or `ITIMER_PROF`); returns the old value
/// left and interval. The router fires it (`cpu_timers`).
pub fn cpu_itimer(which: u64, new: Option<(u64, u64)>) -> (u64, u64) {
    let i = usize::from(which == ITIMER_PROF);
    let now = app_cpu_ns(i);
    let mut timers = CPU_TIMERS.lock().unwrap_or_else(|p| p.into_inner());
    let (next, interval) = timers[i];
    // An armed timer whose time has come shows the least Linux shows, 1 µs.
    let left = if next == 0 {
        0
    } else {
        next.saturating_sub(now).max(1000)
    };
    if let Some((value, interval)) = new {
        timers[i] = if value == 0 {
            (0, 0)
        } else {
            (now + value, interval)
        };
    }
    drop(timers);
    if new.is_some() {
        // The router's wait is set for the timers it knew.
        wake_router();
    }
    (left, interval)
}

/// Fire the CPU-time timers whose time has come (`SIGVTALRM`, `SIGPROF`, from
/// the kernel as Linux sends them); returns how long the router may wait before
/// the next one could be due (CPU time passes no faster than wall time on one
/// core; the router looks again then), or `None` with none armed.
pub(super) fn cpu_timers(page: &SignalPage) -> Option<Duration> {
    let mut timers = CPU_TIMERS.lock().unwrap_or_else(|p| p.into_inner());
    if timers.iter().all(|&(next, _)| next == 0) {
        return None;
    }
    let mut soonest = u64::MAX;
    // ITIMER_PROF before ITIMER_VIRTUAL, as Linux's `check_process_timers`
    // looks at them: when both are due at one look, SIGPROF comes first.
    for i in [1, 0] {
        let (next, interval) = &mut timers[i];
        if *next == 0 {
            continue;
        }
        let now = app_cpu_ns(i);
        if now >= *next {
            let sig = if i == 0 {
                libc::SIGVTALRM
            } else {
                libc::SIGPROF
            };
            // SAFETY: siginfo_t is plain data.
            let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
            info.si_signo = sig;
            info.si_code = libc::SI_KERNEL;
            record(page, sig as u32, &info);
            *next = if *interval == 0 {
                0
            } else {
                // Expirations missed meanwhile are one signal, as on Linux.
                now + *interval - (now - *next) % *interval
            };
        }
        if *next != 0 {
            soonest = soonest.min(*next - now.min(*next));
        }
    }
    // At most a tick (4 ms at Linux's usual HZ=250, its own granularity for
    // these timers): the application's CPU time can pass faster than wall time
    // (several threads, the proxy's service besides), so the wait computed
    // from what is left could overshoot by far.
    Some(Duration::from_nanos(soonest.clamp(100_000, TICK_NS)))
}

/// How often the router looks at armed CPU-time timers at the least.
const TICK_NS: u64 = 4_000_000;

/// `RLIMIT_CPU` on the hosted platform, looked at on every pass of the router
/// (`LOOK_AGAIN` at the latest). The application's forwarded `setrlimit` set the
/// limit on the proxy process, where Linux enforces it on the proxy's own CPU
/// time only; the application computes in its own process. So the router
/// enforces it as Linux's `check_process_timers` does, on the CPU time the
/// application sees for itself (`getrusage(RUSAGE_SELF)`, `times`: both
/// processes'): past the soft limit `SIGXCPU` (`SI_KERNEL`), and the soft limit
/// goes up a second for the next one; past the hard limit `SIGKILL`, which
/// libos cannot block or ignore. In the partition the vCPUs are threads of the
/// proxy, whose CPU time is the application's: Linux's own enforcement is right
/// there, and its `SIGXCPU` is routed like any other.
pub(super) fn cpu_limit(page: &SignalPage) {
    let child = HOSTED_CHILD.load(Ordering::Acquire);
    if child <= 0 {
        return;
    }
    let limit = match rustix::process::getrlimit(rustix::process::Resource::Cpu) {
        rustix::process::Rlimit {
            current: Some(soft),
            maximum,
        } => (soft, maximum),
        _ => return,
    };
    let (soft, hard) = limit;
    let used = process_cpu_ns(0).saturating_add(process_cpu_ns(child));
    let past = |secs: u64| used >= secs.saturating_mul(1_000_000_000);
    // SAFETY: siginfo_t is plain data.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    info.si_code = libc::SI_KERNEL;
    if hard.is_some_and(past) {
        info.si_signo = libc::SIGKILL;
        record(page, libc::SIGKILL as u32, &info);
        return;
    }
    if !past(soft) {
        return;
    }
    let _ = rustix::process::setrlimit(
        rustix::process::Resource::Cpu,
        rustix::process::Rlimit {
            current: Some(hard.map_or(soft + 1, |h| (soft + 1).min(h))),
            maximum: hard,
        },
    );
    info.si_signo = libc::SIGXCPU;
    record(page, libc::SIGXCPU as u32, &info);
}

/// CPU time in ns of process `pid` (0: this one), or 0 if it cannot be read.
fn process_cpu_ns(pid: i32) -> u64 {
    let mut clock: libc::clockid_t = libc::CLOCK_PROCESS_CPUTIME_ID;
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock and ts are valid out-parameters.
    let ok = unsafe {
        (pid == 0 || libc::clock_getcpuclockid(pid, &mut clock) == 0)
            && libc::clock_gettime(clock, &mut ts) == 0
    };
    if ok {
        ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
    } else {
        0
    }
}
