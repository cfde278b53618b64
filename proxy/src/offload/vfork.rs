//! `Op::Fork` and `Op::VforkWait`: a vfork child of the application is served by
//! a forked copy of the proxy (one process per child, serving the child's thread
//! slot), and the parent's wait until the child exec'd or ended.
//!
//! Allows `unsafe`: `fork` of the multi-threaded proxy, and the forked server's
//! immediate `_exit` and signal-raising end (no Rust runtime clean-up may run in
//! a fork child).
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};

use mote_abi::ikc::MAX_THREADS;
use rustix::pipe::{pipe_with, PipeFlags};

use super::serve;
use crate::event::Event;
use crate::fds::{above_app, protect_fds, unprotect_fd};
use crate::futex::wake_core;
use crate::guest::GuestMem;
use crate::mirror::Mirror;

/// This process is a vfork child of the proxy (serving one thread slot).
static IN_VFORK_CHILD: AtomicBool = AtomicBool::new(false);

/// Read ends of the pipes that tell a vfork parent its child exec'd or ended.
static VFORK_PIPES: Mutex<Vec<(i32, OwnedFd)>> = Mutex::new(Vec::new());

/// Is this process a vfork child of the proxy?
pub(super) fn in_vfork_child() -> bool {
    IN_VFORK_CHILD.load(Ordering::Relaxed)
}

/// `Op::Fork`: fork the proxy; the child process serves `slot`.
pub(super) fn fork_child(
    slot: usize,
    guest: &Arc<GuestMem>,
    mirror: &Arc<Mirror>,
    events: &Sender<Event>,
    pin: Option<usize>,
) -> i64 {
    if slot >= MAX_THREADS {
        return -i64::from(libc::EINVAL);
    }
    let (read, write) = match pipe_with(PipeFlags::CLOEXEC) {
        // Out of the application's numbers: its next `open` gets Linux's.
        Ok((r, w)) => (above_app(r), above_app(w)),
        Err(e) => return -i64::from(e.raw_os_error()),
    };
    protect_fds([read.as_raw_fd(), write.as_raw_fd()]);
    let guard = mirror.fork_guard();
    let parent = rustix::process::getpid();
    // SAFETY: the child only serves one slot with raw system calls and the
    // mirror (whose lock is held across the fork, so it is consistent); it never
    // returns into the parent's other threads' state.
    let pid = unsafe { libc::fork() };
    drop(guard);
    match pid {
        -1 => {
            let e = io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EAGAIN);
            // Our own pipe: both ends close.
            drop((read, write));
            -i64::from(e)
        }
        0 => {
            IN_VFORK_CHILD.store(true, Ordering::Relaxed);
            crate::note!(
                "mote: vfork: the proxy's copy forked at monotonic {:.2} ms",
                crate::timeline::monotonic_ms()
            );
            crate::hosted::forget_app_process();
            // The child's server ends with the run, even while the child is
            // stuck in a call (the parent-death signal comes when this offload
            // thread of the parent ends, at the latest when the run does); its
            // exec clears it (`spawn::exec_in_partition`).
            let _ = rustix::process::set_parent_process_death_signal(Some(
                rustix::process::Signal::KILL,
            ));
            if rustix::process::getppid() != Some(parent) {
                child_exit(1);
            }
            // The read end is the parent's; the write end closes at exec or exit,
            // which is what the parent waits for.
            let raw = read.as_raw_fd();
            drop(read);
            unprotect_fd(raw);
            let _write = write;
            serve(slot, guest, mirror, events, pin);
            child_exit(0)
        }
        pid => {
            // The write end is the child's; its number is free again here
            // (regression: it stayed protected, so the application's next
            // descriptor with that number could not be closed: EBADF).
            let raw = write.as_raw_fd();
            drop(write);
            unprotect_fd(raw);
            VFORK_PIPES
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((pid, read));
            i64::from(pid)
        }
    }
}

/// A forked proxy (`Op::ForkProcess`'s child) has none of its parent's vfork
/// children.
pub(super) fn forget_children() {
    VFORK_PIPES
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clear();
}

/// End this forked (single-threaded) server process at once with `status`: a
/// child process never returns into the parent's code.
pub(super) fn child_exit(status: i32) -> ! {
    // SAFETY: _exit ends the process without running the parent's clean-up
    // (atexit handlers, buffered output) that belongs to the proxy.
    unsafe { libc::_exit(status) }
}

/// End this forked server process as killed by signal `sig` (the parent's
/// `wait4` sees that), or with `128 + sig` if the signal does not end it.
pub(super) fn child_killed(sig: i32) -> ! {
    crate::signals::die_by(sig as u32);
    child_exit(128 + (sig & 0x7f))
}

/// `Op::VforkWait`: block until child `pid` exec'd or ended, then release its
/// thread slot's pending call with `VFORK_GONE`. A signal for the application
/// interrupts the wait as it does a forwarded call (`-EINTR`, the child still
/// registered): the parent's libos then acts on it (a `SIGTERM` ends the run, as
/// it ends a vfork parent on Linux, even while the child is stuck in a call
/// served by its own forked proxy) and waits again.
pub(super) fn vfork_wait(pid: i32, slot: usize, guest: &GuestMem, index: usize) -> i64 {
    let fd = {
        let mut pipes = VFORK_PIPES.lock().unwrap_or_else(|p| p.into_inner());
        let Some(i) = pipes.iter().position(|&(p, _)| p == pid) else {
            return -i64::from(libc::ECHILD);
        };
        pipes.swap_remove(i).1
    };
    let mut b = [0u8; 1];
    crate::signals::offload_busy(index, true);
    // Blocks until the child's write end closes (exec or exit).
    let r = rustix::io::read(&fd, &mut b);
    crate::signals::offload_busy(index, false);
    if r == Err(rustix::io::Errno::INTR) {
        VFORK_PIPES
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((pid, fd));
        return -i64::from(libc::EINTR);
    }
    // Closing our own pipe end.
    let raw = fd.as_raw_fd();
    drop(fd);
    unprotect_fd(raw);
    if slot < MAX_THREADS {
        let s = guest.thread_slot(slot);
        let seq = s.req_seq.load(Ordering::Acquire);
        if s.resp_seq.load(Ordering::Acquire) != seq {
            let waiter = s.respond(seq, mote_abi::ikc::VFORK_GONE);
            if waiter != 0 {
                wake_core(guest, waiter as usize - 1);
            }
        }
    }
    0
}
