//! Which Linux threads execute the LWK cores: in the partition each core is a
//! vCPU thread of this process (registered as it starts); on the hosted
//! platform they are the threads of the application's process (its pid is
//! registered when it is forked; the runtime names a core's thread, which is
//! checked to be one of that process's). What `perf_event_open` for the
//! application's own execution counts (`Op::PerfOpen`). A leaf module.

use std::sync::atomic::{AtomicI32, Ordering};

use mote_abi::layout::MAX_CORES;

/// Linux tid of each core's vCPU thread (0: none, or not the partition).
static VCPU_TIDS: [AtomicI32; MAX_CORES] = [const { AtomicI32::new(0) }; MAX_CORES];

/// The hosted platform's application process (0: none).
static HOSTED_PID: AtomicI32 = AtomicI32::new(0);

/// The calling thread is the vCPU thread of core `core`.
pub fn register_vcpu(core: usize) {
    if let Some(t) = VCPU_TIDS.get(core) {
        t.store(
            rustix::thread::gettid().as_raw_nonzero().get(),
            Ordering::Release,
        );
    }
}

/// The hosted platform forked the application's process `pid`.
pub fn register_hosted(pid: i32) {
    HOSTED_PID.store(pid, Ordering::Release);
}

/// The hosted platform's application process (0: none, or the partition).
pub fn hosted_pid() -> i32 {
    HOSTED_PID.load(Ordering::Acquire)
}

/// Why no Linux thread could be named for a core.
#[derive(Debug, PartialEq, Eq)]
pub enum NoThread {
    /// The core has no thread (yet), or the named one is not the application's.
    Unknown,
}

/// The Linux thread executing core `core`: its vCPU thread, or, on the hosted
/// platform, `named` (what the runtime said) once checked to be a thread of the
/// application's process.
pub fn core_thread(core: usize, named: u64) -> Result<i32, NoThread> {
    if let Some(t) = VCPU_TIDS.get(core).map(|t| t.load(Ordering::Acquire)) {
        if t > 0 {
            return Ok(t);
        }
    }
    let pid = HOSTED_PID.load(Ordering::Acquire);
    let tid = i32::try_from(named).map_err(|_| NoThread::Unknown)?;
    if pid <= 0 || tid <= 0 {
        return Err(NoThread::Unknown);
    }
    // The application wrote `named` where it could have written anything: only
    // a thread of its own process is taken.
    if std::path::Path::new(&format!("/proc/{pid}/task/{tid}")).exists() {
        Ok(tid)
    } else {
        Err(NoThread::Unknown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_named_thread_must_belong_to_the_hosted_process() {
        // No vCPU registered for core 5, the hosted process is this test process.
        register_hosted(std::process::id() as i32);
        let me = rustix::thread::gettid().as_raw_nonzero().get();
        assert_eq!(core_thread(5, me as u64), Ok(me));
        assert_eq!(
            core_thread(5, 1),
            Err(NoThread::Unknown),
            "init is not ours"
        );
        assert_eq!(core_thread(5, u64::MAX), Err(NoThread::Unknown));
        assert_eq!(core_thread(5, 0), Err(NoThread::Unknown));
    }
}
