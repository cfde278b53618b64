//! The local-or-forward system call table: the one place that says which Linux
//! system calls the partition answers itself.
//!
//! Every call of the application reaches [`dispatch`] with its number and six
//! arguments, on every platform. A number the table names is answered by a typed
//! libos handler (`mote_libos::syscall::*`, returning `Result<usize, Errno>`, turned
//! into the register value by `mote_abi::errno::to_ret` here and nowhere else). A few
//! calls are
//! *refused*: run by the proxy they would act on the proxy process itself (create
//! processes or threads in it, replace it, send it signals, sandbox it), so until their
//! issue lands they return `ENOSYS` and say so once in the log. **Every other number
//! is forwarded** unchanged to Linux through the proxy, which answers with Linux's own
//! result and errno; nothing is answered with a made-up value.
//!
//! What only the runtime can do (switch stacks, block a thread with the process
//! lock released, wake a core) the dispatcher reaches through [`Runtime`] (and the
//! thread calls through its part `mote_libos::syscall::thread::Machine`), so the
//! dispatcher itself runs in host tests over a fake.
//!
//! Numbers come from `syscalls::Sysno`, never typed by hand. Like Linux (6.x), the
//! table looks at the low 32 bits of the number only, and forwards that value, so the
//! proxy's kernel can never run a call the table did not route.

// The crate root (shims/src/lib.rs) does not declare it; the table needs `format!`.
extern crate alloc;

use alloc::format;

use mote_abi::errno::{to_ret, Errno};
use mote_libos::platform::Platform;
use mote_libos::process::Process;
use mote_libos::syscall::thread::{self, Machine};
use mote_libos::syscall::wait::{Step, Wait};
use mote_libos::syscall::{exec, fs, mm, numa, perf, shm, signal, task, time};
use syscalls::Sysno;

/// `__X32_SYSCALL_BIT`: x32-ABI numbers (`arch/x86/include/uapi/asm/unistd.h`).
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// A local handler: the process, the platform, the six argument registers.
pub type Handler<P> = fn(&mut Process, &P, [u64; 6]) -> Result<usize, Errno>;

/// A thread handler: the runtime's machine part of threads, the six argument
/// registers. It runs without the process lock (it takes the locks it needs,
/// threads before process).
pub type ThreadHandler<P> = fn(&dyn Machine<P>, [u64; 6]) -> Result<usize, Errno>;

/// What the dispatcher needs from the runtime beyond the thread machine.
pub trait Runtime<P: Platform>: Machine<P> {
    /// The application's rsp at the call (signals: is it on the alternate stack).
    fn caller_sp(&self) -> u64;
    /// After a local call, with the process still locked (the runtime takes where
    /// a successful `execve` continues, `Process::pending_entry`).
    fn after_local(&self, proc: &mut Process) {
        let _ = proc;
    }
    /// The process is about to end (`exit_group`, the last thread's `exit`): the
    /// runtime's own report (`--stats`).
    fn at_exit(&self, proc: &Process) {
        let _ = proc;
    }
    /// `mote run --trace`: record every call (`crate::trace`). A flag read once at
    /// start-up; when it is off, [`dispatch`] costs one predictable branch more.
    fn tracing(&self) -> bool {
        false
    }
    /// Where the calling thread's forwarded calls stand: a number that changes
    /// with each call Linux runs for it, and the last such call's number.
    fn forward_mark(&self) -> (u32, u64) {
        (0, 0)
    }
    /// Record a traced call (`mote_abi::trace`, the running core's ring).
    fn record(&self, e: &mote_abi::trace::Entry) {
        let _ = e;
    }
}

/// Why a call is refused instead of forwarded, and which work will implement it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Later {
    /// execveat (execve is answered locally).
    Exec,
    /// signalfd, signalfd4: the descriptor would read the proxy's signals.
    Signalfd,
    /// seccomp (and prctl(PR_SET_SECCOMP)): it would filter the proxy.
    Seccomp,
    /// unshare, setns.
    Namespaces,
    /// personality.
    Personality,
    /// modify_ldt, set_thread_area.
    Descriptors,
    /// ptrace.
    Ptrace,
    /// vhangup.
    Vhangup,
    /// pkey_alloc, pkey_free: keys would be allocated in the proxy.
    Pkeys,
    /// remap_file_pages, mseal: they would remap or seal the proxy's mirror of the
    /// address space, which is libos's.
    Mirror,
    /// io_uring_setup, bpf: requests read by Linux later, full of pointers the
    /// proxy cannot check.
    Unchecked,
    /// A number with the x32 bit.
    X32,
}

impl Later {
    /// One line for the log.
    pub fn why(self) -> &'static str {
        match self {
            Later::Exec => "execveat is not implemented yet (use execve; run by Linux it would replace the proxy)",
            Later::Signalfd => "signalfd is not offered yet (run by Linux it would take the proxy's signals, which mote routes to the application)",
            Later::Seccomp => "seccomp is not offered (run by Linux it would filter the proxy)",
            Later::Namespaces => "namespaces are not offered (run by Linux it would move the proxy)",
            Later::Personality => "changing the execution domain is not offered (it would change the proxy's)",
            Later::Descriptors => "LDT and GDT TLS entries are not offered; use arch_prctl(ARCH_SET_FS)",
            Later::Ptrace => "ptrace is not offered (run by Linux it would trace the proxy)",
            Later::Vhangup => "vhangup is not offered (it would hang up the proxy's terminal)",
            Later::Pkeys => "memory protection keys are not offered (Linux would allocate them in the proxy)",
            Later::Mirror => "remap_file_pages and mseal are not offered (run by Linux they would act on the proxy's mirror of the address space, not on libos's mappings)",
            Later::Unchecked => "io_uring and bpf are not offered (Linux would read their requests' pointers later, in the proxy, where mote cannot check them; programs fall back as on a kernel without them)",
            Later::X32 => "x32-ABI system calls are not offered; mote runs x86_64 programs",
        }
    }
}

/// What the table does with a number.
pub enum Route<P> {
    /// Answered by libos.
    Local(Handler<P>),
    /// A wait for a signal or for time (`mote_libos::syscall::wait`), stepped by
    /// [`dispatch`] with the process lock released while Linux or the scheduler
    /// waits.
    Wait,
    /// Answered by libos's thread handlers (`mote_libos::syscall::thread`, over the
    /// scheduler and futex table, with the runtime's machine part): calls that
    /// create, block, wake or end threads, or act on the calling thread. They run
    /// outside the process lock.
    Thread(ThreadHandler<P>),
    /// Sent to Linux unchanged.
    Forward,
    /// `ENOSYS`, logged once.
    Refused(Later),
}

/// The table.
pub fn route<P: Platform>(nr: u32) -> Route<P> {
    use Route::{Forward, Local, Refused, Thread, Wait};
    if nr & X32_SYSCALL_BIT != 0 {
        return Refused(Later::X32);
    }
    let Some(sysno) = Sysno::new(nr as usize) else {
        return Forward;
    };
    match sysno {
        // Memory: libos owns the address space.
        Sysno::brk => Local(|pr, p, a| mm::brk(pr, p, a[0])),
        Sysno::mmap => Local(|pr, p, a| mm::mmap(pr, p, a[0], a[1], a[2], a[3], a[4], a[5])),
        Sysno::munmap => Local(|pr, p, a| mm::munmap(pr, p, a[0], a[1])),
        Sysno::mprotect => Local(|pr, p, a| mm::mprotect(pr, p, a[0], a[1], a[2])),
        Sysno::pkey_mprotect => Local(|pr, p, a| mm::pkey_mprotect(pr, p, a[0], a[1], a[2], a[3])),
        Sysno::mremap => Local(|pr, p, a| mm::mremap(pr, p, a[0], a[1], a[2], a[3], a[4])),
        Sysno::madvise => Local(|pr, p, a| mm::madvise(pr, p, a[0], a[1], a[2])),
        // System V shared memory: segments are Linux's (shmget is forwarded),
        // attachments libos's address space's.
        Sysno::shmat => Local(|pr, p, a| shm::shmat(pr, p, a[0], a[1], a[2])),
        Sysno::shmdt => Local(|pr, p, a| shm::shmdt(pr, p, a[0])),
        Sysno::shmctl => Local(|pr, p, a| shm::shmctl(pr, p, a[0], a[1], a[2])),
        // NUMA: the partition's memory policies and nodes (another process's
        // pages are Linux's, forwarded inside).
        Sysno::get_mempolicy => Local(numa::get_mempolicy),
        Sysno::set_mempolicy => Local(numa::set_mempolicy),
        Sysno::mbind => Local(numa::mbind),
        Sysno::move_pages => Local(numa::move_pages),
        Sysno::migrate_pages => Local(numa::migrate_pages),
        Sysno::set_mempolicy_home_node => Local(numa::set_mempolicy_home_node),

        // Identity, exit of the process.
        Sysno::getpid => Local(|pr, _, _| task::getpid(pr)),
        Sysno::exit_group => Local(|pr, p, a| task::exit_group(pr, p, a[0])),
        Sysno::prctl => Local(|pr, p, a| task::prctl(pr, p, a)),
        // CPU time and faults of the partition, on top of Linux's accounting.
        Sysno::getrusage => Local(|pr, p, a| task::getrusage(pr, p, a[0], a[1])),
        Sysno::times => Local(|pr, p, a| task::times(pr, p, a[0])),
        // Limits are the proxy's to keep; libos applies RLIMIT_AS to its mappings.
        Sysno::setrlimit => Local(|pr, p, a| task::setrlimit(pr, p, a)),
        Sysno::prlimit64 => Local(|pr, p, a| task::prlimit64(pr, p, a)),
        // The partition's /proc and /sys files; every other path is Linux's.
        Sysno::open => Thread(|m, a| fs::open(m, Sysno::open, a)),
        Sysno::openat => Thread(|m, a| fs::open(m, Sysno::openat, a)),
        Sysno::getdents64 => Thread(fs::getdents64),
        Sysno::rseq => Local(|pr, p, _| task::rseq(pr, p)),

        // Threads: creation, exit, futexes, scheduling, per-thread registrations.
        Sysno::clone => Thread(|m, a| thread::clone(m, a[0], a[1], a[2], a[3], a[4])),
        Sysno::clone3 => Thread(|m, a| thread::clone3(m, a[0], a[1])),
        Sysno::vfork => Thread(|m, _| thread::vfork(m)),
        Sysno::fork => Thread(|m, _| thread::fork_call(m)),
        Sysno::exit => Thread(|m, a| thread::exit(m, a[0])),
        Sysno::futex => {
            Thread(|m, a| thread::futex(m, a[0], a[1] as u32, a[2] as u32, a[3], a[4], a[5] as u32))
        }
        Sysno::gettid => Thread(|m, _| thread::gettid(m)),
        Sysno::set_tid_address => Thread(|m, a| thread::set_tid_address(m, a[0])),
        Sysno::set_robust_list => Thread(|m, a| thread::set_robust_list(m, a[0], a[1])),
        Sysno::get_robust_list => Thread(|m, a| thread::get_robust_list(m, a[0], a[1], a[2])),
        Sysno::arch_prctl => Thread(|m, a| thread::arch_prctl(m, a[0], a[1])),
        Sysno::sched_yield => Thread(|m, _| thread::sched_yield(m)),
        Sysno::sched_getaffinity => Thread(|m, a| thread::sched_getaffinity(m, a[0], a[1], a[2])),
        Sysno::sched_setaffinity => Thread(|m, a| thread::sched_setaffinity(m, a[0], a[1], a[2])),
        // The LWK core running the caller and its node.
        Sysno::getcpu => Thread(|m, a| numa::getcpu(m, a[0], a[1])),
        // Performance counters of the application's own threads count the Linux
        // thread that runs their LWK core, not the proxy's offload thread.
        Sysno::perf_event_open => Thread(perf::perf_event_open),

        // The program: execve in the same partition (ending the other threads
        // first, outside the process lock); /proc/self/exe names it.
        Sysno::execve => Thread(|m, a| exec::execve(m, a[0], a[1], a[2])),
        Sysno::readlink => Local(|pr, p, a| {
            exec::readlinkat(pr, p, mote_libos::uapi::fcntl::AT_FDCWD, a[0], a[1], a[2])
        }),
        Sysno::readlinkat => Local(|pr, p, a| exec::readlinkat(pr, p, a[0], a[1], a[2], a[3])),

        // Time, from the TSC (clocks libos does not keep are forwarded inside).
        Sysno::clock_gettime => Local(|pr, p, a| time::clock_gettime(pr, p, a[0], a[1])),
        Sysno::gettimeofday => Local(|pr, p, a| time::gettimeofday(pr, p, a[0], a[1])),
        Sysno::time => Local(|pr, p, a| time::time(pr, p, a[0])),

        // Signals: dispositions and masks live in libos; signals to ourselves too.
        Sysno::rt_sigaction => {
            Local(|pr, p, a| signal::rt_sigaction(pr, p, a[0], a[1], a[2], a[3]))
        }
        Sysno::rt_sigprocmask => {
            Local(|pr, p, a| signal::rt_sigprocmask(pr, p, a[0], a[1], a[2], a[3]))
        }
        Sysno::sigaltstack => Local(|pr, p, a| signal::sigaltstack(pr, p, a[0], a[1])),
        Sysno::kill => Local(|pr, p, a| signal::kill(pr, p, a[0], a[1])),
        Sysno::tkill => Local(|pr, p, a| signal::tkill(pr, p, a[0], a[1])),
        Sysno::tgkill => Local(|pr, p, a| signal::tgkill(pr, p, a[0], a[1], a[2])),
        Sysno::rt_sigqueueinfo => {
            Local(|pr, p, a| signal::rt_sigqueueinfo(pr, p, a[0], a[1], a[2]))
        }
        Sysno::rt_tgsigqueueinfo => {
            Local(|pr, p, a| signal::rt_tgsigqueueinfo(pr, p, a[0], a[1], a[2], a[3]))
        }
        Sysno::rt_sigpending => Local(|pr, p, a| signal::rt_sigpending(pr, p, a[0], a[1])),
        // Waits for a signal or for time (`mote_libos::syscall::wait`): interrupted
        // sleeps return the time left or sleep on (restart block).
        Sysno::rt_sigsuspend
        | Sysno::rt_sigtimedwait
        | Sysno::pause
        | Sysno::nanosleep
        | Sysno::clock_nanosleep
        // Descriptor waits with a signal mask, which is libos's.
        | Sysno::pselect6
        | Sysno::ppoll
        | Sysno::epoll_pwait
        | Sysno::epoll_pwait2 => Wait,
        // The runtime's entries answer rt_sigreturn before the table: they own the
        // registers the frame restores. Reaching here is a bug, said as ENOSYS.
        Sysno::rt_sigreturn => Local(|_, _, _| Err(Errno::ENOSYS)),
        // Timers run in Linux; their signals reach the proxy, which routes them.
        Sysno::alarm => Local(|_, p, a| signal::alarm(p, a[0])),
        Sysno::setitimer => Local(|pr, p, a| signal::setitimer(pr, p, a[0], a[1], a[2])),
        Sysno::timer_create => Local(|pr, p, a| signal::timer_create(pr, p, a[0], a[1], a[2])),

        // Never to Linux: they would act on the proxy itself.
        Sysno::execveat => Refused(Later::Exec),
        Sysno::signalfd | Sysno::signalfd4 => Refused(Later::Signalfd),
        Sysno::seccomp => Refused(Later::Seccomp),
        Sysno::io_uring_setup | Sysno::bpf => Refused(Later::Unchecked),
        Sysno::unshare | Sysno::setns => Refused(Later::Namespaces),
        Sysno::personality => Refused(Later::Personality),
        Sysno::modify_ldt | Sysno::set_thread_area => Refused(Later::Descriptors),
        Sysno::ptrace => Refused(Later::Ptrace),
        Sysno::vhangup => Refused(Later::Vhangup),
        Sysno::pkey_alloc | Sysno::pkey_free => Refused(Later::Pkeys),
        Sysno::remap_file_pages | Sysno::mseal => Refused(Later::Mirror),

        // Everything else is Linux's.
        _ => Forward,
    }
}

/// Name of call `nr` for messages.
fn name(nr: u32) -> alloc::string::String {
    match Sysno::new(nr as usize) {
        Some(s) => s.name().into(),
        None => format!("system call {nr}"),
    }
}

fn is_exit(nr: u64) -> bool {
    nr == Sysno::exit as u64 || nr == Sysno::exit_group as u64
}

/// Handle the application's system call `nr` with `args` on runtime `rt`; returns
/// the value for `rax`. The one place that routes a call, on every platform.
#[inline]
pub fn dispatch<P: Platform, R: Runtime<P>>(rt: &R, nr: u64, args: [u64; 6]) -> u64 {
    if rt.tracing() {
        return crate::trace::traced(rt, nr, args);
    }
    run(rt, nr, args)
}

/// [`dispatch`] itself: route the call and run it.
pub(crate) fn run<P: Platform, R: Runtime<P>>(rt: &R, nr: u64, args: [u64; 6]) -> u64 {
    // A vfork child's exit and execve are its own process's.
    if let Some(r) = thread::vfork_child_call(rt, nr, args) {
        return r;
    }
    let full = nr;
    let nr = nr as u32;
    let p = rt.platform();
    match route::<P>(nr) {
        Route::Thread(handler) => {
            // The last thread's `exit` ends the process.
            if full == Sysno::exit as u64 && thread::live(rt) <= 1 {
                if let Some(proc) = rt.process().lock().as_mut() {
                    rt.at_exit(proc);
                }
            }
            let r = to_ret(handler(rt, args));
            // A successful execve: the runtime takes where the new program
            // starts, as after a local call.
            if nr == Sysno::execve as u32 && r == 0 {
                if let Some(proc) = thread::process_of(rt).as_mut() {
                    rt.after_local(proc);
                }
            }
            r
        }
        // No lock: a call that blocks in Linux holds up only its thread. A signal
        // may interrupt it (EINTR): libos applies SA_RESTART then.
        Route::Forward => {
            // A descriptor on a thread's `comm` opened for writing: its writes
            // rename the thread (one load while none is open).
            if fs::comm_files_open() {
                if let Some(r) = fs::comm_call(rt, nr as u64, args) {
                    return to_ret(r);
                }
            }
            forward(rt, nr, args)
        }
        // Waits for signals or time: the process is released while Linux waits.
        Route::Wait => {
            let Some(mut w) = Wait::new(nr as u64, args) else {
                return to_ret(Err(Errno::ENOSYS));
            };
            let mut last = None;
            loop {
                let step = {
                    let mut g = thread::process_of(rt);
                    let pr = g.as_mut().expect("process");
                    pr.signals.thread.caller_sp = rt.caller_sp();
                    w.step(pr, p, last)
                };
                match step {
                    Step::Done(r) => return to_ret(r),
                    // Sleeps on the partition's clocks are the scheduler's; the
                    // rest (pause, waits on other clocks) wait in Linux.
                    Step::Forward(n, a) => {
                        last = Some(match thread::sleep(rt, n, a) {
                            Some(r) => to_ret(r) as i64,
                            None => p.forward(n, a),
                        })
                    }
                }
            }
        }
        // Answered here, under the process lock.
        local => {
            let mut g = thread::process_of(rt);
            let proc = g.as_mut().expect("process before first call");
            proc.signals.thread.caller_sp = rt.caller_sp(); // signals: SS_ONSTACK
            if is_exit(full) {
                rt.at_exit(proc);
            }
            let r = match local {
                Route::Local(handler) => to_ret(handler(proc, p, args)),
                Route::Refused(later) => {
                    proc.log_once(p, nr as u64, || {
                        format!("{}: {}; returning ENOSYS", name(nr), later.why())
                    });
                    to_ret(Err(Errno::ENOSYS))
                }
                _ => unreachable!("routed above"),
            };
            rt.after_local(proc);
            let interrupt = core::mem::take(&mut proc.interrupt);
            drop(g);
            thread::interrupt(rt, &interrupt);
            r
        }
    }
}

/// A forwarded call: Linux's answer, restarted or `EINTR` after a signal as
/// `SA_RESTART` says, with the synchronous signal Linux raised for it queued.
fn forward<P: Platform, R: Runtime<P>>(rt: &R, nr: u32, args: [u64; 6]) -> u64 {
    let p = rt.platform();
    loop {
        let r = p.forward(nr as u64, args);
        if signal::may_raise(r) {
            let sig = p.take_raised();
            if sig != 0 {
                let mut g = thread::process_of(rt);
                let pr = g.as_mut().expect("process");
                pr.signals.thread.caller_sp = rt.caller_sp();
                signal::raised_by_call(pr, p, sig);
            }
        }
        if r != Errno::EINTR.ret() {
            return r as u64;
        }
        let mut g = thread::process_of(rt);
        let pr = g.as_mut().expect("process");
        pr.signals.thread.caller_sp = rt.caller_sp();
        if let Some(r) = signal::interrupted(pr, p, nr as u64, args, r) {
            return r as u64;
        }
    }
}

#[cfg(test)]
mod tests;
