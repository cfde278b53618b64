//! What `run` asks of a platform once it is made: one type per platform
//! (`vmm::Partition` for KVM, `hosted::Hosted`), chosen once in `run`. Both are
//! built from the same `boot::BootParams`; their constructors differ (the KVM
//! partition hands out memory slots, the hosted one has none), the rest of a
//! run goes through this trait. A leaf module.

use std::sync::mpsc::Sender;

use crate::event::Event;

/// A made, not yet started platform.
pub trait Platform {
    /// Guest-physical base of the runtime region (mirrored at `RUNTIME_VA`).
    fn runtime_gpa(&self) -> u64;

    /// Start the application; the first event that ends the run is sent to
    /// `events`. The error is the line `mote` prints.
    fn start(&mut self, events: Sender<Event>) -> Result<(), String>;

    /// After the run's event: stop what is left of the application, and under
    /// `stats` (`--stats`) say what the platform counted (a line for `mote: `).
    fn finish(&mut self, stats: bool) -> Option<String>;
}
