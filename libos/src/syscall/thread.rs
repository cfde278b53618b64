//! Thread calls: `clone`, `clone3`, `vfork`, `exit`, `futex`, `gettid`,
//! `set_tid_address`, `set_robust_list`, `get_robust_list`, `arch_prctl`,
//! `sched_yield`, `sched_getaffinity`, `sched_setaffinity`, and the local sleeps of
//! `nanosleep`/`clock_nanosleep` on the partition's clocks.
//!
//! The decisions are here, over the scheduler and futex table (`sched::Threads`)
//! and the process; what needs the machine (switching stacks, waking a sleeping
//! core, a new thread's first context, the atomic update of a futex word, the
//! proxy's offload servers) is the runtime's, behind [`Machine`]. Both locks are
//! the runtime's, handed out by [`Machine`]; the order is `threads` before
//! `process`: nothing holding the process lock takes the threads lock, and no
//! thread gives up its core holding the process lock.

use alloc::string::String;
use alloc::vec::Vec;

use mote_abi::errno::Errno;
use spin::{Mutex, MutexGuard};
use syscalls::Sysno;

use crate::platform::Platform;
use crate::process::Process;
use crate::sched::{self, State, Thread, Threads, Wake};
use crate::uapi::futex::*;
use crate::uapi::sched::*;

mod fork;
mod futex;
pub use fork::fork_call;
pub use futex::futex;

#[cfg(test)]
mod tests;

/// The process lock.
pub type ProcessLock = Mutex<Option<Process>>;
/// The threads lock (taken before the process lock).
pub type ThreadsLock = Mutex<Option<Threads>>;

/// What the thread calls need from the runtime: the machine part of threads.
pub trait Machine<P: Platform> {
    /// The platform.
    fn platform(&self) -> &P;
    /// The process (`None` before the application is loaded).
    fn process(&self) -> &ProcessLock;
    /// The threads and futexes (`None` before the thread table exists).
    fn threads(&self) -> &ThreadsLock;
    /// The running thread (0 in a core's idle context).
    fn tid(&self) -> u32;
    /// The running core.
    fn core(&self) -> usize;
    /// The TSC rate (`BootInfo::tsc_khz`; 0: unknown).
    fn tsc_khz(&self) -> u64;
    /// Give the core to the next thread: the caller already changed the running
    /// thread's state (`Threads::stop_current`) under `g`. Returns when the thread
    /// runs again (never once it is `Dead`).
    fn reschedule(&self, g: MutexGuard<'_, Option<Threads>>);
    /// Core `core` has new work: wake it if it sleeps.
    fn kick(&self, core: usize);
    /// Compare-and-exchange loop on the application's 32-bit word at `addr`
    /// (aligned, checked mapped writable by the caller): `f(old)` is the new value,
    /// or `None` to leave the word alone. Returns the value replaced (`None`: left).
    fn update_word(&self, addr: u64, f: &mut dyn FnMut(u32) -> Option<u32>) -> Option<u32>;
    /// Did the call arrive with the caller's full register frame (a trap)? A new
    /// thread starts from a copy of it.
    fn trapped(&self) -> bool;
    /// The proxy's offload thread for slot `slot`: the new thread's Linux tid, or
    /// `-errno`.
    fn start_server(&self, slot: usize) -> i64;
    /// A forked proxy process serving slot `slot` (a vfork child): its pid, or
    /// `-errno`.
    fn fork_server(&self, slot: usize) -> i64;
    /// `fork`: a copy of the process with only the calling thread, which
    /// resumes there from the call's frame with `rax = 0` (its tid written at
    /// `set_tid` when not 0, and cleared at its exit at `clear_tid` when not 0).
    /// Returns the child's pid, or `-errno`.
    fn fork_process(&self, set_tid: u64, clear_tid: u64) -> i64;
    /// Wait until vfork child `tid` (slot `slot`) exec'd or ended: 0, or `-EINTR`.
    fn vfork_wait(&self, tid: u32, slot: usize) -> i64;
    /// A vfork child's `execve` in a partition of its own; returns only on
    /// failure (`-errno`).
    fn spawn_exec(&self, path: u64, argv: u64, envp: u64, sigs: ExecSignals) -> i64;
    /// The machine context of a new thread on slot `slot`: its runtime stack, the
    /// caller's extended state, and a first frame that is the caller's registers
    /// with `rax = 0` and, unless `stack` is 0, `rsp = stack`. `false`: the
    /// runtime's memory for it is used up.
    fn new_context(&self, slot: usize, stack: u64) -> bool;
    /// Is the running thread a vfork child (its process is another)?
    fn is_vfork_child(&self) -> bool;
    /// An `execve` of the running thread ends the process's other threads
    /// (`on`), or has ended them (`!on`): while on, the runtime ends each
    /// thread the scheduler dooms where it passes through, and the proxy
    /// interrupts their forwarded calls and application code (`Op::EndThreads`).
    fn end_threads(&self, on: bool);
    /// The running thread's id is `tid` from now on (it took the thread-group
    /// leader's in `execve`).
    fn became(&self, tid: u32);
}

/// Nanoseconds of monotonic time at TSC value `tsc` (0 with an unknown rate).
pub fn tsc_ns(tsc: u64, khz: u64) -> u64 {
    if khz == 0 {
        0
    } else {
        (tsc as u128 * 1_000_000 / khz as u128) as u64
    }
}

fn now_ns<P: Platform>(m: &dyn Machine<P>) -> u64 {
    tsc_ns(m.platform().tsc(), m.tsc_khz())
}

/// The process, with the running thread's signal state in place (its mask,
/// alternate stack, ... are per thread).
pub fn process_of<'a, P: Platform>(m: &'a dyn Machine<P>) -> MutexGuard<'a, Option<Process>> {
    let mut g = m.process().lock();
    if let Some(pr) = g.as_mut() {
        pr.switch_thread(m.tid());
    }
    g
}

/// Patched sites of calls that create a thread must keep trapping: the child
/// needs the full register frame.
pub fn needs_frame(nr: u64) -> bool {
    nr == Sysno::clone as u64
        || nr == Sysno::clone3 as u64
        || nr == Sysno::vfork as u64
        || nr == Sysno::fork as u64
}

/// Threads of the application alive now.
pub fn live<P: Platform>(m: &dyn Machine<P>) -> usize {
    m.threads().lock().as_ref().map_or(1, |t| t.live_own())
}

/// Tell the process how many threads live (for `/proc/self/status`); call without
/// holding the process.
fn publish_thread_count<P: Platform>(m: &dyn Machine<P>) {
    let n = live(m);
    if let Some(pr) = m.process().lock().as_mut() {
        pr.threads = n;
    }
}

/// Run `f` on the calling thread's entry (`ESRCH` if it has none).
fn with_me<P: Platform, R>(
    m: &dyn Machine<P>,
    f: impl FnOnce(&mut Thread) -> R,
) -> Result<R, Errno> {
    let mut g = m.threads().lock();
    let t = g
        .as_mut()
        .expect("threads")
        .get_mut(m.tid())
        .ok_or(Errno::ESRCH)?;
    Ok(f(t))
}

/// Signals were sent to threads `tids` (`tgkill`): end their futex waits (EINTR)
/// so they act on them. Call without holding the process.
pub fn interrupt<P: Platform>(m: &dyn Machine<P>, tids: &[u32]) {
    if tids.is_empty() {
        return;
    }
    let mut g = m.threads().lock();
    let Some(t) = g.as_mut() else { return };
    let cores: Vec<usize> = tids.iter().filter_map(|&tid| t.interrupt(tid)).collect();
    drop(g);
    for c in cores {
        m.kick(c);
    }
}

/// Calls of a vfork child that are its process's, not the partition's: `execve`
/// runs the program in a partition of its own, `exit`/`exit_group` end the child
/// process. `None`: not such a call (or not a vfork child). The value is the raw
/// result of the failed `execve`.
pub fn vfork_child_call<P: Platform>(m: &dyn Machine<P>, nr: u64, a: [u64; 6]) -> Option<u64> {
    let nr = nr as u32 as u64;
    let exit = nr == Sysno::exit as u64 || nr == Sysno::exit_group as u64;
    if !(exit || nr == Sysno::execve as u64) || !m.is_vfork_child() {
        return None;
    }
    if exit {
        m.platform().exit((a[0] & 0xff) as i32)
    }
    // `/proc/self/exe` names the application's program, not the proxy's, as
    // `execve` in the partition resolves it; the proxy reads the name from here
    // (this thread's runtime stack, gone with the thread when the exec succeeds).
    let mut exe = [0u8; super::exec::PATH_MAX + 1];
    let own = process_of(m)
        .as_ref()
        .and_then(|pr| super::exec::self_exe(pr, m.platform(), a[0]));
    let path = match own {
        Some(name) if name.len() < exe.len() => {
            exe[..name.len()].copy_from_slice(&name);
            exe.as_ptr() as u64
        }
        _ => a[0],
    };
    // What `execve` keeps of the child's signal state: its ignored signals, its
    // mask (`posix_spawnattr_setsigdef`, `setsigmask`) and its pending signals.
    let sigs = process_of(m)
        .as_ref()
        .map_or(ExecSignals::default(), |pr| ExecSignals {
            ignored: pr.signals.ignored_handlers(),
            mask: pr.signals.mask(),
            pending: pr.signals.thread.pending,
        });
    Some(m.spawn_exec(path, a[1], a[2], sigs) as u64)
}

/// The signal state a vfork child's `execve` hands to its new program (bit
/// `sig - 1` each): ignored signals, the mask, and the signals pending for it
/// (Linux keeps them across `execve`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExecSignals {
    pub ignored: u64,
    pub mask: u64,
    pub pending: u64,
}

// --- identity and registrations ---------------------------------------------------

/// `gettid()`.
pub fn gettid<P: Platform>(m: &dyn Machine<P>) -> Result<usize, Errno> {
    Ok(m.tid() as usize)
}

/// `set_tid_address(tidptr)`: cleared and woken when the thread ends.
pub fn set_tid_address<P: Platform>(m: &dyn Machine<P>, tidptr: u64) -> Result<usize, Errno> {
    with_me(m, |t| {
        t.clear_child_tid = tidptr;
        t.tid as usize
    })
}

/// `set_robust_list(head, len)`.
pub fn set_robust_list<P: Platform>(
    m: &dyn Machine<P>,
    head: u64,
    len: u64,
) -> Result<usize, Errno> {
    if len != ROBUST_LIST_HEAD_SIZE {
        return Err(Errno::EINVAL);
    }
    with_me(m, |t| {
        t.robust_list = (head, len);
        0
    })
}

/// `get_robust_list(tid, head_ptr, len_ptr)`.
pub fn get_robust_list<P: Platform>(
    m: &dyn Machine<P>,
    tid: u64,
    head_ptr: u64,
    len_ptr: u64,
) -> Result<usize, Errno> {
    let tid = if tid == 0 { m.tid() } else { tid as u32 };
    let (head, len) = m
        .threads()
        .lock()
        .as_ref()
        .expect("threads")
        .get(tid)
        .map(|t| t.robust_list)
        .ok_or(Errno::ESRCH)?;
    let g = m.process().lock();
    let pr = g.as_ref().expect("process");
    pr.write_user(m.platform(), head_ptr, &head.to_le_bytes())?;
    pr.write_user(m.platform(), len_ptr, &len.to_le_bytes())?;
    Ok(0)
}

/// `arch_prctl(code, addr)`: the FS base is per thread; the rest is the process's
/// (`task::arch_prctl`).
pub fn arch_prctl<P: Platform>(m: &dyn Machine<P>, code: u64, addr: u64) -> Result<usize, Errno> {
    use crate::uapi::arch_prctl::{ARCH_GET_FS, ARCH_SET_FS};
    let p = m.platform();
    match code {
        ARCH_SET_FS => {
            if addr >= crate::uapi::TASK_SIZE_MAX {
                return Err(Errno::EPERM);
            }
            with_me(m, |t| t.fs_base = addr)?;
            p.set_fs(addr);
            Ok(0)
        }
        ARCH_GET_FS => {
            let fs = with_me(m, |t| t.fs_base)?;
            let g = m.process().lock();
            g.as_ref()
                .expect("process")
                .write_user(p, addr, &fs.to_le_bytes())?;
            Ok(0)
        }
        _ => {
            let mut g = m.process().lock();
            let pr = g.as_mut().expect("process");
            super::task::arch_prctl(pr, p, code, addr)
        }
    }
}

// --- scheduling -------------------------------------------------------------------

/// `sched_yield()`: the core goes to another thread if one can run.
pub fn sched_yield<P: Platform>(m: &dyn Machine<P>) -> Result<usize, Errno> {
    let core = m.core();
    let mut g = m.threads().lock();
    let t = g.as_mut().expect("threads");
    if t.others_runnable(core) || t.has_forwarded(core) {
        t.stop_current(core, State::Runnable);
        m.reschedule(g);
    }
    Ok(0)
}

/// `sched_getaffinity(pid, len, mask)`: a thread's partition cores (libos writes
/// them; another process's go to Linux).
pub fn sched_getaffinity<P: Platform>(
    m: &dyn Machine<P>,
    tid: u64,
    len: u64,
    mask: u64,
) -> Result<usize, Errno> {
    let who = if tid == 0 { m.tid() } else { tid as u32 };
    let ours = m
        .threads()
        .lock()
        .as_ref()
        .and_then(|t| t.get(who))
        .filter(|x| x.state != State::Dead)
        .map(|x| x.affinity);
    let mut g = m.process().lock();
    let pr = g.as_mut().expect("process");
    super::task::sched_getaffinity(pr, m.platform(), tid, len, mask, ours)
}

/// `sched_setaffinity(pid, len, mask)`: within the partition's cores; the caller
/// moves to an allowed core at once.
pub fn sched_setaffinity<P: Platform>(
    m: &dyn Machine<P>,
    tid: u64,
    len: u64,
    mask: u64,
) -> Result<usize, Errno> {
    let mut b = [0u8; 8];
    let n = (len as usize).min(8);
    m.process()
        .lock()
        .as_ref()
        .expect("process")
        .read_user(m.platform(), mask, &mut b[..n])?;
    let bits = u64::from_le_bytes(b);
    let me = m.tid();
    let tid = if tid == 0 { me } else { tid as u32 };
    let core = m.core();
    let mut g = m.threads().lock();
    let t = g.as_mut().expect("threads");
    t.set_affinity(tid, bits)?;
    if tid == me && t.get(me).is_some_and(|x| x.core != core) {
        // Move now: give up this core; the thread continues on its new one.
        let new = t.get(me).map_or(0, |x| x.core);
        t.stop_current(core, State::Runnable);
        t.requeue_moved(core);
        m.kick(new);
        m.reschedule(g);
    }
    Ok(0)
}

/// `nanosleep` and `clock_nanosleep` on the partition's clocks, locally: the
/// thread blocks in the scheduler until its deadline (its core runs other threads
/// or sleeps that long), or until a signal for it ends the wait (`EINTR`, the
/// time left written to `rem` for a relative sleep). `None`: a clock libos does
/// not keep, or no thread table (the caller forwards the call to Linux).
pub fn sleep<P: Platform>(
    m: &dyn Machine<P>,
    nr: u64,
    a: [u64; 6],
) -> Option<Result<usize, Errno>> {
    use crate::time::id;
    let p = m.platform();
    let (clock, absolute, req, rem) = if nr == Sysno::nanosleep as u64 {
        (id::MONOTONIC, false, a[0], a[1])
    } else if nr == Sysno::clock_nanosleep as u64 {
        (a[0], a[1] & 1 != 0, a[2], a[3])
    } else {
        return None;
    };
    if !matches!(clock, id::REALTIME | id::MONOTONIC | id::BOOTTIME) || m.tsc_khz() == 0 {
        return None;
    }
    // The wait steps (`wait`) pass their own buffers for the time left and a
    // resumed request: runtime memory, not the application's.
    let runtime = |va: u64| (mote_abi::layout::LIBOS_VA..mote_abi::layout::LIBOS_END).contains(&va);
    let ns = if runtime(req) {
        let mut b = [0u8; 16];
        p.read_mem(req, &mut b);
        crate::time::parse_timespec(&b)
    } else {
        read_timespec(m, req)
    };
    let ns = match ns {
        Ok(ns) => ns,
        Err(e) => return Some(Err(e)),
    };
    let now = now_ns(m);
    let deadline = if absolute {
        let current = m.process().lock().as_mut()?.clock.now(p, clock)?;
        now.saturating_add(ns.saturating_sub(current))
    } else {
        now.saturating_add(ns)
    };
    if deadline <= now {
        return Some(Ok(0));
    }
    let (core, me) = (m.core(), m.tid());
    let mut g = m.threads().lock();
    g.as_mut()?.stop_current(core, State::Blocked { deadline });
    m.reschedule(g);
    let wake = m
        .threads()
        .lock()
        .as_ref()
        .and_then(|t| t.get(me))
        .map(|x| x.wake);
    if wake != Some(Wake::Interrupted) {
        return Some(Ok(0));
    }
    if !absolute && rem != 0 {
        let left = deadline.saturating_sub(now_ns(m));
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&(left / 1_000_000_000).to_le_bytes());
        b[8..].copy_from_slice(&(left % 1_000_000_000).to_le_bytes());
        if runtime(rem) {
            p.write_mem(rem, &b);
        } else if let Some(pr) = m.process().lock().as_ref() {
            if let Err(e) = pr.write_user(p, rem, &b) {
                return Some(Err(e));
            }
        }
    }
    Some(Err(Errno::EINTR))
}

/// `struct timespec` at `ts` as nanoseconds.
fn read_timespec<P: Platform>(m: &dyn Machine<P>, ts: u64) -> Result<u64, Errno> {
    let mut b = [0u8; 16];
    m.process()
        .lock()
        .as_ref()
        .expect("process")
        .read_user(m.platform(), ts, &mut b)?;
    crate::time::parse_timespec(&b)
}

// --- creating and ending threads ------------------------------------------------------

/// A thread `clone`'s arguments, from `clone`, `clone3` or `vfork`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CloneArgs {
    pub flags: u64,
    pub stack: u64,
    pub ptid: u64,
    pub ctid: u64,
    pub tls: u64,
}

/// What a `clone` makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloneKind {
    /// A thread of this process.
    Thread,
    /// A vfork child process (`vfork`, `posix_spawn`): it shares the memory and
    /// runs in this partition until it execs (into a partition of its own) or
    /// exits; its calls go to a forked proxy with its own descriptors.
    VforkChild,
    /// A copy of the process (`fork`, `clone` without `CLONE_VM`): a process of
    /// its own with a copy of the memory and of the descriptors.
    Fork,
}

/// Threads, vfork children and copies of the process (`fork`: no `CLONE_VM`,
/// with an exit signal and the tid-reporting flags only).
pub fn check_clone<P: Platform>(
    pr: &mut Process,
    p: &P,
    a: &CloneArgs,
) -> Result<CloneKind, Errno> {
    let thread = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD;
    let vfork = CLONE_VM | CLONE_VFORK;
    if a.flags & !CSIGNAL == vfork {
        return Ok(CloneKind::VforkChild);
    }
    let fork = CSIGNAL | CLONE_PARENT_SETTID | CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID;
    if a.flags & CLONE_VM == 0 && a.flags & !fork == 0 && a.stack == 0 {
        return Ok(CloneKind::Fork);
    }
    if a.flags & thread != thread {
        pr.log_once(p, Sysno::clone as u64, || {
            alloc::format!(
                "clone with flags {:#x}: only threads (CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD), vfork children (CLONE_VM|CLONE_VFORK: vfork, posix_spawn) and copies of the process (fork: an exit signal, CLONE_PARENT_SETTID, CLONE_CHILD_SETTID, CLONE_CHILD_CLEARTID, no new stack) are offered; returning ENOSYS",
                a.flags
            )
        });
        return Err(Errno::ENOSYS);
    }
    let known = CSIGNAL
        | thread
        | CLONE_SYSVSEM
        | CLONE_SETTLS
        | CLONE_PARENT_SETTID
        | CLONE_CHILD_CLEARTID
        | CLONE_DETACHED
        | CLONE_CHILD_SETTID
        | CLONE_IO
        | CLONE_PARENT;
    if a.flags & !known != 0 || a.flags & (CLONE_VFORK | CLONE_PIDFD) != 0 {
        pr.log_once(p, Sysno::clone3 as u64, || {
            alloc::format!(
                "clone of a thread with flags {:#x}: flags beyond a thread's are not offered; returning EINVAL",
                a.flags
            )
        });
        return Err(Errno::EINVAL);
    }
    if a.flags & CSIGNAL != 0 {
        return Err(Errno::EINVAL); // Linux: a thread has no exit signal.
    }
    Ok(CloneKind::Thread)
}

/// `clone3(args, size)`: `struct clone_args` (at least the first 64 bytes).
pub fn clone3_args<P: Platform>(
    pr: &Process,
    p: &P,
    uargs: u64,
    size: u64,
) -> Result<CloneArgs, Errno> {
    if !(CLONE_ARGS_SIZE_VER0..=4096).contains(&size) {
        return Err(Errno::EINVAL);
    }
    let mut b = [0u8; 88];
    let n = (size as usize).min(88);
    pr.read_user(p, uargs, &mut b[..n])?;
    let w = |i: usize| u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
    // flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls,
    // set_tid, set_tid_size, cgroup.
    if w(4) > 64 || w(8) != 0 || w(9) != 0 {
        return Err(Errno::EINVAL);
    }
    let stack = if w(5) != 0 { w(5) + w(6) } else { 0 };
    Ok(CloneArgs {
        flags: w(0) | (w(4) & CSIGNAL),
        stack,
        ptid: w(3),
        ctid: w(2),
        tls: w(7),
    })
}

/// `clone` through the direct entry: a C function call cannot return twice on two
/// stacks, so relinked code must use its C library's `clone` (a `syscall`).
fn direct_clone<P: Platform>(m: &dyn Machine<P>) -> Errno {
    if let Some(pr) = m.process().lock().as_mut() {
        pr.log_once(m.platform(), 0x3_1000, || {
            String::from(
                "clone through the direct entry (mote_syscall) is not possible: a C call cannot return on the child's stack; use the C library's clone; returning ENOSYS",
            )
        });
    }
    Errno::ENOSYS
}

/// `clone(flags, stack, parent_tid, child_tid, tls)` (x86-64 order).
pub fn clone<P: Platform>(
    m: &dyn Machine<P>,
    flags: u64,
    stack: u64,
    ptid: u64,
    ctid: u64,
    tls: u64,
) -> Result<usize, Errno> {
    if !m.trapped() {
        return Err(direct_clone(m));
    }
    clone_thread(
        m,
        CloneArgs {
            flags,
            stack,
            ptid,
            ctid,
            tls,
        },
    )
}

/// `vfork()`: `clone(CLONE_VM | CLONE_VFORK | SIGCHLD)`.
pub fn vfork<P: Platform>(m: &dyn Machine<P>) -> Result<usize, Errno> {
    if !m.trapped() {
        return Err(direct_clone(m));
    }
    let flags = CLONE_VM | CLONE_VFORK | crate::uapi::signal::SIGCHLD as u64;
    clone_thread(
        m,
        CloneArgs {
            flags,
            stack: 0,
            ptid: 0,
            ctid: 0,
            tls: 0,
        },
    )
}

/// `clone3(args, size)`.
pub fn clone3<P: Platform>(m: &dyn Machine<P>, uargs: u64, size: u64) -> Result<usize, Errno> {
    if !m.trapped() {
        return Err(direct_clone(m));
    }
    let args = {
        let g = m.process().lock();
        clone3_args(g.as_ref().expect("process"), m.platform(), uargs, size)?
    };
    clone_thread(m, args)
}

/// `clone` / `clone3` / `vfork` of a thread or vfork child, from a trap (the child
/// starts from a copy of the caller's frame with `rax = 0`).
fn clone_thread<P: Platform>(m: &dyn Machine<P>, a: CloneArgs) -> Result<usize, Errno> {
    let p = m.platform();
    let kind = {
        let mut g = m.process().lock();
        let pr = g.as_mut().expect("process");
        let kind = check_clone(pr, p, &a)?;
        if a.flags & CLONE_PARENT_SETTID != 0 {
            pr.mm.check_access(a.ptid, 4, true)?;
        }
        if a.flags & CLONE_CHILD_SETTID != 0 {
            pr.mm.check_access(a.ctid, 4, true)?;
        }
        kind
    };
    if kind == CloneKind::Fork {
        return fork::fork(m, &a);
    }
    let (slot, parent) = {
        let mut g = m.threads().lock();
        let t = g.as_mut().expect("threads");
        let me = t.get(m.tid()).cloned().ok_or(Errno::ESRCH)?;
        // (A fork went its own way above.)
        let slot = if kind == CloneKind::Thread {
            t.alloc_slot()?
        } else {
            t.alloc_child_slot()?
        };
        (slot, me)
    };
    let free_slot = |slot| {
        m.threads()
            .lock()
            .as_mut()
            .expect("threads")
            .free_slot(slot)
    };
    // The slot's own offload thread in the proxy; its Linux tid is the new thread's.
    // A vfork child's is a forked proxy process, whose pid is the child's.
    let tid = if kind == CloneKind::Thread {
        m.start_server(slot)
    } else {
        m.fork_server(slot)
    };
    if kind == CloneKind::Thread && tid > 0 {
        m.threads()
            .lock()
            .as_mut()
            .expect("threads")
            .mark_served(slot);
    }
    if tid <= 0 {
        free_slot(slot);
        return Err(Errno::from_code((-tid) as i32).unwrap_or(Errno::EAGAIN));
    }
    let tid = tid as u32;
    if !m.new_context(slot, a.stack) {
        // The runtime's memory is fixed: out of it, the thread is refused as Linux
        // refuses one it has no memory for.
        free_slot(slot);
        let n = live(m);
        if let Some(pr) = m.process().lock().as_mut() {
            pr.log_once(p, 0x3_2000, || {
                alloc::format!(
                    "clone: the runtime's memory for thread stacks is used up ({n} threads live); returning EAGAIN"
                )
            });
        }
        return Err(Errno::EAGAIN);
    }
    {
        let mut g = m.process().lock();
        let pr = g.as_mut().expect("process");
        // The new thread starts with its parent's memory policy.
        pr.mm.numa.inherit(m.tid(), tid);
        if a.flags & CLONE_PARENT_SETTID != 0 {
            pr.write_user(p, a.ptid, &tid.to_le_bytes())?;
        }
        if a.flags & CLONE_CHILD_SETTID != 0 {
            pr.write_user(p, a.ctid, &tid.to_le_bytes())?;
        }
    }
    let mut g = m.threads().lock();
    let t = g.as_mut().expect("threads");
    let child = Thread {
        tid,
        slot,
        core: 0,
        child_process: kind == CloneKind::VforkChild,
        affinity: parent.affinity,
        state: State::Runnable,
        wake: Wake::Woken,
        futex: None,
        clear_child_tid: if a.flags & CLONE_CHILD_CLEARTID != 0 {
            a.ctid
        } else {
            0
        },
        robust_list: (0, 0),
        fs_base: if a.flags & CLONE_SETTLS != 0 {
            a.tls
        } else {
            parent.fs_base
        },
    };
    let core = if kind == CloneKind::Thread {
        t.spawn(child)
    } else {
        // A vfork child: beside its parent, which waits for it.
        t.vfork_child_of(tid, parent.tid);
        t.spawn_on(child, parent.core)
    };
    let live: Vec<u32> = t.tids().collect();
    drop(g);
    // The new thread's signal state: the creator's mask, nothing pending; a
    // vfork child's dispositions are its own. A thread has its creator's name.
    if let Some(pr) = m.process().lock().as_mut() {
        pr.switch_thread(parent.tid);
        if kind == CloneKind::Thread {
            pr.inherit_name(parent.tid, tid, |x| live.contains(&x));
            pr.signals.new_thread(tid)
        } else {
            pr.signals.new_vfork_child(tid)
        }
    }
    m.kick(core);
    if kind == CloneKind::VforkChild {
        // vfork: the parent goes on once the child exec'd or ended (its calls
        // meanwhile are the child's, on this core or another).
        while m.vfork_wait(tid, slot) == Errno::EINTR.ret() {
            // A signal from outside: a default action that ends the process
            // (SIGTERM, SIGINT) ends the run now, as it ends a vfork parent on
            // Linux; a caught one waits until the child exec'd or ended.
            if let Some(pr) = m.process().lock().as_mut() {
                pr.deliver_pending(p);
            }
        }
        return Ok(tid as usize);
    }
    publish_thread_count(m);
    Ok(tid as usize)
}

/// `exit(status)`: the running thread ends: its `clear_child_tid` is cleared and
/// woken, its robust futexes released, and it leaves its core for good. The last
/// thread's exit ends the process.
pub fn exit<P: Platform>(m: &dyn Machine<P>, status: u64) -> Result<usize, Errno> {
    let p = m.platform();
    let (me, core) = (m.tid(), m.core());
    let mut g = m.threads().lock();
    let t = g.as_mut().expect("threads");
    if t.live_own() <= 1 {
        drop(g);
        p.exit((status & 0xff) as i32);
    }
    // Gone for signals first: a joiner woken below may `tgkill` this tid at
    // once, and Linux answers ESRCH by then (the race showed as "ok").
    if let Some(pr) = m.process().lock().as_mut() {
        pr.signals.end_thread(me);
    }
    let ctid = t.get(me).map_or(0, |x| x.clear_child_tid);
    if ctid != 0 {
        let ok = m
            .process()
            .lock()
            .as_ref()
            .is_some_and(|pr| pr.write_user(p, ctid, &0u32.to_le_bytes()).is_ok());
        if ok {
            for c in t.futex_wake(ctid, 1, u32::MAX) {
                m.kick(c);
            }
        }
    }
    let robust = t.get(me).map_or(0, |x| x.robust_list.0);
    if robust != 0 {
        release_robust(m, t, me, robust);
    }
    t.stop_current(core, State::Dead);
    let live = t.live_own();
    if let Some(pr) = m.process().lock().as_mut() {
        pr.threads = live;
    }
    m.reschedule(g);
    unreachable!("a dead thread was scheduled again")
}

/// A dying thread's robust futexes (`set_robust_list`): each one it still holds
/// gets the owner-died bit, and a waiter is woken, as Linux does.
fn release_robust<P: Platform>(m: &dyn Machine<P>, t: &mut Threads, tid: u32, head: u64) {
    let p = m.platform();
    let g = m.process().lock();
    let Some(pr) = g.as_ref() else {
        return;
    };
    let read = |a: u64| {
        let mut b = [0u8; 8];
        pr.read_user(p, a, &mut b).ok()?;
        Some(u64::from_le_bytes(b))
    };
    for addr in sched::robust_futexes(head, read) {
        if !addr.is_multiple_of(4) || pr.mm.check_access(addr, 4, true).is_err() {
            continue;
        }
        let old = m.update_word(addr, &mut |w| sched::owner_died(w, tid));
        if old.is_some_and(|old| old & sched::FUTEX_WAITERS != 0) {
            for c in t.futex_wake(addr, 1, u32::MAX) {
                m.kick(c);
            }
        }
    }
}
