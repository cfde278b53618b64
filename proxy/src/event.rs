//! How a run ends: the one event the platform (vCPU threads, the hosted
//! application's waiter) or an offload server sends the main thread. A leaf
//! module.

use mote_abi::trap::FaultReport;

/// How a run ends.
#[derive(Debug)]
pub enum Event {
    /// The application exited with this status.
    Exited(i32),
    /// A signal ended the application (or the runtime/kernel failed).
    Killed {
        signal: u32,
        fault: Option<FaultReport>,
    },
    /// The partition failed in a way that is not the application's doing.
    Failed(String),
    /// The application wrote over one of mote's areas in its address space (the
    /// IKC area: what is damaged, and where): nothing it says can be trusted
    /// any more, so the run ends (`report::print_corrupted`).
    Corrupted(String),
}
