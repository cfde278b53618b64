//! The hosted platform's raw process work: probing for Syscall User Dispatch,
//! forking the proxy into the application's process and entering the runtime
//! there, and reaping it.
//!
//! Allows `unsafe`: `fork` of the multi-threaded proxy, the child's jump onto
//! the runtime's stack and entry (inline assembly), `wait4` with resource usage
//! and the Syscall User Dispatch `prctl`.
#![allow(unsafe_code)]

use std::io;

use mote_abi::hosted::HOSTED_INFO_VA;
use mote_abi::layout::*;
use rustix::process::Pid;

/// `prctl` option and mode of Syscall User Dispatch (`linux/prctl.h`, 5.11).
const PR_SET_SYSCALL_USER_DISPATCH: libc::c_int = 59;
const PR_SYS_DISPATCH_OFF: libc::c_ulong = 0;

/// Can this process use Syscall User Dispatch? Switching it off is accepted
/// exactly where the kernel implements it.
pub fn dispatch_available() -> Result<(), std::io::Error> {
    // SAFETY: prctl with integer arguments; turning dispatch off changes nothing
    // for a thread that never turned it on.
    let r = unsafe {
        libc::prctl(
            PR_SET_SYSCALL_USER_DISPATCH,
            PR_SYS_DISPATCH_OFF,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// A `fork` without an exit signal (a raw `clone`, so libc's fork handlers do
/// not run): Linux counts the child as a "clone" child, which the
/// application's forwarded `wait4(-1)`/`waitid(P_ALL)` never see. 0 in the
/// child, its pid in the parent.
///
/// # Safety
/// The child shares nothing with the proxy's other threads but a copy of their
/// memory: it must make only async-signal-safe calls (no allocation, no lock
/// another thread could hold) and never return into the proxy's code.
unsafe fn clone_quiet() -> io::Result<libc::pid_t> {
    // SAFETY: a clone without CLONE_VM copies the address space; what the child
    // may do afterwards is the caller's contract (above).
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0,
            0,
            0,
        )
    } as libc::pid_t;
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(pid)
}

/// Fork the application's process: the child enters the runtime at `entry`
/// (keeping only the descriptors `keep`, -1: none) and never returns; the parent
/// gets its pid.
pub fn fork_runtime(entry: u64, keep: [i32; 2]) -> io::Result<Pid> {
    let parent = rustix::process::getpid().as_raw_nonzero().get();
    // A `fork` without an exit signal: Linux counts the child as a "clone"
    // child, which the application's forwarded `wait4(-1)`/`waitid(P_ALL)` never
    // see (`offload::forward` keeps `__WALL` from them), so they answer for the
    // application's own children only (ECHILD once those are reaped).
    // SAFETY: the child runs only `child`, which makes async-signal-safe system
    // calls and then leaves the proxy's code for good (no allocation, no lock
    // another thread of the proxy could hold, no libc state of its own: the raw
    // clone skips libc's fork handlers, which the child does not need).
    let pid = unsafe { clone_quiet() }?;
    if pid == 0 {
        child(entry, keep, parent);
    }
    Ok(Pid::from_raw(pid).expect("fork returned a positive pid"))
}

/// How the application's process ended.
pub enum End {
    /// Killed by this signal.
    Signaled(u32),
    /// Exited with this status.
    Exited(i32),
}

/// Wait for our child `pid` to end (the only reaper of it): how it ended and its
/// page faults (minor and major), or None if the wait fails.
pub fn wait(pid: i32) -> Option<(End, u64)> {
    let mut status = 0;
    // SAFETY: all-zero is a valid rusage.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child (a clone child: `__WALL`); `status` and
    // `ru` are live.
    let r = unsafe { libc::wait4(pid, &mut status, libc::__WALL, &mut ru) };
    if r != pid {
        return None;
    }
    let faults = (ru.ru_minflt + ru.ru_majflt) as u64;
    let end = if libc::WIFSIGNALED(status) {
        End::Signaled(libc::WTERMSIG(status) as u32)
    } else {
        End::Exited(libc::WEXITSTATUS(status))
    };
    Some((end, faults))
}

/// The forked child: become the application's process and enter the runtime.
fn child(entry: u64, keep: [i32; 2], parent: libc::pid_t) -> ! {
    // SAFETY: plain system calls on this (single-threaded) child's own state:
    // 1. the parent-death signal and the check that the parent still lives make
    //    the child end with the proxy; its own process group changes nothing
    //    in memory;
    // 2. making the mirrored runtime region executable (the mirror maps it
    //    read-write) touches only this process;
    // 3. closing every descriptor but the memfds: the application's descriptors
    //    live in the proxy, and nothing in this process uses the others again;
    // 4. the jump leaves the proxy's code for the runtime's entry with a fresh
    //    stack (core 0's upcall stack, in the runtime region); nothing returns.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        // A process group of its own: the application's `kill(0, …)`,
        // `kill(-pgid, …)` and a terminal's signals reach its processes (the
        // proxies, which route them), never this process of mote's, whose
        // signals are the runtime's (traps, kicks, timers).
        libc::setpgid(0, 0);
        if libc::getppid() != parent {
            libc::_exit(125);
        }
        if libc::mprotect(
            RUNTIME_VA as *mut libc::c_void,
            RUNTIME_SIZE as usize,
            libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC,
        ) != 0
        {
            libc::_exit(125);
        }
        // Close the gaps around the kept descriptors (sorted; -1 keeps nothing).
        let mut keep = keep;
        keep.sort_unstable();
        let mut from: libc::c_uint = 0;
        for k in keep.into_iter().filter(|&k| k >= 0) {
            let k = k as libc::c_uint;
            if k > from {
                libc::syscall(libc::SYS_close_range, from, k - 1, 0);
            }
            from = k + 1;
        }
        libc::syscall(libc::SYS_close_range, from, libc::c_uint::MAX, 0);
        core::arch::asm!(
            "mov rsp, {top}",
            "jmp {entry}",
            top = in(reg) upcall_stack_top(0),
            entry = in(reg) entry,
            in("rdi") LIBOS_VA,
            in("rsi") 0u64,
            in("rdx") HOSTED_INFO_VA,
            options(noreturn)
        )
    }
}

/// The keeper of the right to end the application's process `target` after the
/// application dropped its privileges (then the proxy, whose ids are the
/// application's, may no longer signal it, nor may its parent-death signal):
/// a copy of the proxy made before the drop, keeping its ids, that waits on a
/// pipe and sends `target` `SIGKILL` when a byte arrives or the proxy is gone
/// (end of file), then exits. Like the application's process it is a "clone"
/// child, out of the application's waits. The write end of the pipe and the
/// keeper's pid.
pub fn fork_ender(target: libc::pid_t) -> io::Result<(std::os::fd::OwnedFd, Pid)> {
    use std::os::fd::AsRawFd;
    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    let rfd = r.as_raw_fd();
    // SAFETY: as for `fork_runtime`: the child makes only async-signal-safe
    // system calls on its own state (closing every descriptor but the pipe's
    // read end, so it holds none of the application's; a read; a kill of the
    // application's process, its sibling; _exit) and never returns.
    let pid = unsafe { clone_quiet() }?;
    if pid == 0 {
        // SAFETY: see above.
        unsafe {
            if rfd > 0 {
                libc::syscall(libc::SYS_close_range, 0, rfd - 1, 0);
            }
            libc::syscall(libc::SYS_close_range, rfd + 1, u32::MAX, 0);
            let mut b = 0u8;
            while libc::read(rfd, (&raw mut b).cast(), 1) < 0
                && *libc::__errno_location() == libc::EINTR
            {}
            libc::kill(target, libc::SIGKILL);
            libc::_exit(0);
        }
    }
    drop(r);
    Ok((w, Pid::from_raw(pid).expect("fork returned a positive pid")))
}

/// Reap the "clone" child `pid` (blocking).
pub fn reap_clone_child(pid: Pid) {
    let mut status = 0;
    // SAFETY: waits for our own child; `status` is a local.
    while unsafe { libc::waitpid(pid.as_raw_nonzero().get(), &mut status, libc::__WALL) } < 0
        && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR)
    {}
}
