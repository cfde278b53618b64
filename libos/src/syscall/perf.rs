//! `perf_event_open` for the application's own execution. Forwarded unchanged, the
//! call would count the thread Linux runs it in — the proxy's offload thread,
//! idle while the application computes: plausible figures, silently wrong. So
//! an event on the calling thread (`pid` 0) or on another thread of this process
//! (its tid; the main thread's is the pid) goes to the proxy as
//! `Platform::perf_open` with the LWK core that thread runs on, and the proxy
//! opens it on the Linux thread that executes that core (the vCPU thread, or the
//! hosted process's thread). What that counts — the core's thread, with every
//! application thread on that core and the runtime's work for them — is in
//! `docs/compatibility.md`. Events for other processes (`pid` > 0 not ours),
//! and CPU-wide ones (`pid` -1), are Linux's as they are.

use mote_abi::errno::Errno;
use syscalls::Sysno;

use super::forwarded;
use super::thread::Machine;
use crate::platform::Platform;

/// `perf_event_open(attr, pid, cpu, group_fd, flags)`.
pub fn perf_event_open<P: Platform>(m: &dyn Machine<P>, args: [u64; 6]) -> Result<usize, Errno> {
    let p = m.platform();
    let pid = args[1] as i32;
    let core = match pid {
        0 => Some(m.core()),
        pid if pid > 0 => m.threads().lock().as_ref().and_then(|t| {
            t.get(pid as u32)
                .filter(|t| !t.child_process)
                .map(|t| t.core)
        }),
        _ => None,
    };
    match core {
        Some(core) => forwarded(p.perf_open(core, args)),
        None => forwarded(p.forward(Sysno::perf_event_open as u64, args)),
    }
}
