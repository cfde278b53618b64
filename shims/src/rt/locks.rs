//! The runtime's two locks and their order: `THREADS` (libos's scheduler and
//! futex table) before `PROCESS` (the application's process state). Nothing
//! holding `PROCESS` takes `THREADS`, and no thread gives up its core while
//! holding `PROCESS` (a forwarded call made under it sleeps the core instead of
//! switching). A leaf: it imports no other runtime module.

use mote_libos::process::Process;
use mote_libos::sched::Threads;

/// All threads and futexes.
pub static THREADS: spin::Mutex<Option<Threads>> = spin::Mutex::new(None);

/// The application's process state (address space, signals, identity, ...).
pub static PROCESS: spin::Mutex<Option<Process>> = spin::Mutex::new(None);
