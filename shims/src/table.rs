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
mod tests {
    use super::*;
    use alloc::string::String;
    use alloc::vec::Vec;
    use core::cell::RefCell;
    use mote_abi::boot::BootInfo;
    use mote_abi::maplog::Change;
    use mote_abi::trap::FaultReport;
    use mote_libos::fake::FakeMachine;
    use mote_libos::platform::SharedMapping;
    use std::panic::{catch_unwind, AssertUnwindSafe};

    /// Records forwarded calls and log lines; kernel calls succeed, memory reads as
    /// zero. Enough to see where a number goes.
    #[derive(Default)]
    struct Recorder {
        forwarded: RefCell<Vec<(u64, [u64; 6])>>,
        logs: RefCell<Vec<String>>,
        /// Answers given before `LINUX_ANSWER`, first first.
        first: RefCell<Vec<i64>>,
        /// The signal the next forwarded call "raised" (`Platform::take_raised`).
        raised: core::cell::Cell<u32>,
        /// `Runtime::tracing`, and what `Runtime::record` got.
        tracing: core::cell::Cell<bool>,
        records: RefCell<Vec<mote_abi::trace::Entry>>,
        /// `Platform::perf_open` calls: the core and the arguments.
        perf: RefCell<Vec<(usize, [u64; 6])>>,
    }

    /// What Linux "answers" to every forwarded call in these tests.
    const LINUX_ANSWER: i64 = 31337;

    impl Platform for Recorder {
        fn map(&self, _: u64, _: u64, _: u64, _: u64) -> Result<(), Errno> {
            Ok(())
        }
        fn unmap(&self, _: u64, _: u64) -> Result<(), Errno> {
            Ok(())
        }
        fn protect(&self, _: u64, _: u64, _: u64) -> Result<(), Errno> {
            Ok(())
        }
        fn give_tables(&self, _: u64, _: u64) -> Result<(), Errno> {
            Ok(())
        }
        fn set_fs(&self, _: u64) {}
        fn publish(&self, _: Change) {}
        fn zero(&self, _: u64, _: u64) {}
        fn write_mem(&self, _: u64, _: &[u8]) {}
        fn poke(&self, _: u64, _: &[u8]) -> Result<(), Errno> {
            Ok(())
        }
        fn tsc(&self) -> u64 {
            0
        }
        fn read_mem(&self, _: u64, buf: &mut [u8]) {
            buf.fill(0)
        }
        fn forward(&self, nr: u64, args: [u64; 6]) -> i64 {
            self.forwarded.borrow_mut().push((nr, args));
            let mut first = self.first.borrow_mut();
            if first.is_empty() {
                LINUX_ANSWER
            } else {
                first.remove(0)
            }
        }
        fn take_raised(&self) -> u32 {
            self.raised.replace(0)
        }
        fn perf_open(&self, core: usize, args: [u64; 6]) -> i64 {
            self.perf.borrow_mut().push((core, args));
            7
        }
        fn exit(&self, status: i32) -> ! {
            panic!("exit({status})")
        }
        fn die(&self, signal: u32, _: Option<&FaultReport>) -> ! {
            panic!("die({signal})")
        }
        fn log(&self, msg: &str) {
            self.logs.borrow_mut().push(msg.into());
        }
        fn map_shared(
            &self,
            _: u64,
            _: u64,
            _: u64,
            _: u64,
            _: u64,
            _: u64,
        ) -> Result<SharedMapping, Errno> {
            Err(Errno::ENODEV)
        }
        fn attach_shm(&self, _: u64, _: u64, _: u64, _: u64) -> Result<SharedMapping, Errno> {
            Err(Errno::ENODEV)
        }
        fn unshare(&self, _: u64) {}
        fn shared_len(&self, _: u64) -> u64 {
            0
        }
        fn page_faults(&self) -> u64 {
            0
        }
        fn page_sizes(&self, _: u64, _: u64) -> [u64; 3] {
            [0; 3]
        }
    }

    impl Runtime<Recorder> for FakeMachine<Recorder> {
        fn caller_sp(&self) -> u64 {
            0
        }
        fn tracing(&self) -> bool {
            self.p.tracing.get()
        }
        fn forward_mark(&self) -> (u32, u64) {
            let f = self.p.forwarded.borrow();
            (f.len() as u32, f.last().map_or(0, |c| c.0))
        }
        fn record(&self, e: &mote_abi::trace::Entry) {
            self.p.records.borrow_mut().push(e.clone());
        }
    }

    #[test]
    fn perf_events_of_the_applications_threads_count_their_core_others_are_linuxs() {
        let rt = setup();
        let nr = Sysno::perf_event_open as u64;
        let own = |pid: i64| [0x1000, pid as u64, u64::MAX, u64::MAX, 0, 0];
        // The calling thread, and the main thread by its tid (the pid).
        assert_eq!(dispatch(&rt, nr, own(0)), 7);
        assert_eq!(dispatch(&rt, nr, own(4321)), 7);
        assert_eq!(*rt.p.perf.borrow(), [(0, own(0)), (0, own(4321))]);
        // Another process, and every process on a CPU: Linux's as they are.
        assert_eq!(dispatch(&rt, nr, own(999)), LINUX_ANSWER as u64);
        let cpu_wide = [0x1000, u64::MAX, 0, u64::MAX, 0, 0];
        assert_eq!(dispatch(&rt, nr, cpu_wide), LINUX_ANSWER as u64);
        assert_eq!(*rt.p.forwarded.borrow(), [(nr, own(999)), (nr, cpu_wide)]);
        assert_eq!(rt.p.perf.borrow().len(), 2);
    }

    mod traced {
        use super::*;
        use mote_abi::trace::{Route, Text};

        fn traced() -> FakeMachine<Recorder> {
            let rt = setup();
            rt.p.tracing.set(true);
            rt
        }

        #[test]
        fn nothing_is_recorded_when_tracing_is_off() {
            let rt = setup();
            dispatch(&rt, Sysno::getpid as u64, [0; 6]);
            dispatch(&rt, Sysno::getppid as u64, [0; 6]);
            assert!(rt.p.records.borrow().is_empty());
        }

        #[test]
        fn each_call_is_recorded_once_with_its_route_and_result() {
            let rt = traced();
            assert_eq!(dispatch(&rt, Sysno::getpid as u64, [0; 6]), 4321);
            dispatch(&rt, Sysno::getppid as u64, [1, 2, 3, 4, 5, 6]);
            assert_eq!(dispatch(&rt, Sysno::seccomp as u64, [0; 6]) as i64, -38);
            let r = rt.p.records.borrow();
            let seen: Vec<(u32, Route, u64, bool)> = r
                .iter()
                .map(|e| (e.nr, e.route, e.ret, e.no_return))
                .collect();
            assert_eq!(
                seen,
                [
                    (Sysno::getpid as u32, Route::Local, 4321, false),
                    (
                        Sysno::getppid as u32,
                        Route::Forwarded,
                        LINUX_ANSWER as u64,
                        false
                    ),
                    (
                        Sysno::seccomp as u32,
                        Route::Refused,
                        (-38i64) as u64,
                        false
                    ),
                ]
            );
            assert_eq!(r[1].args, [1, 2, 3, 4, 5, 6]);
            assert_eq!(r[0].tid, 4321);
        }

        #[test]
        fn a_local_call_passed_on_to_linux_is_forwarded_and_its_bad_path_unreadable() {
            let rt = traced();
            // openat of a path libos cannot read: its handler forwards it.
            let args = [(-100i64) as u64, 0x10, 0, 0, 0, 0];
            assert_eq!(
                dispatch(&rt, Sysno::openat as u64, args),
                LINUX_ANSWER as u64
            );
            let r = rt.p.records.borrow();
            assert_eq!(r.len(), 1);
            assert_eq!(r[0].route, Route::Forwarded);
            let (arg, kind, _) = r[0].text.as_ref().expect("a path argument");
            assert_eq!((*arg, *kind), (1, Text::Unreadable));
        }

        #[test]
        fn a_write_buffer_in_mapped_memory_is_captured() {
            let rt = traced();
            let buf = dispatch(&rt, Sysno::mmap as u64, [0, 4096, 3, 0x22, u64::MAX, 0]);
            dispatch(&rt, Sysno::write as u64, [1, buf, 5, 0, 0, 0]);
            let r = rt.p.records.borrow();
            let (arg, kind, t) = r[1].text.as_ref().expect("the buffer");
            // The recorder's memory reads as zeroes.
            assert_eq!((*arg, *kind, t.as_slice()), (1, Text::Buf, &[0u8; 5][..]));
            assert!(!t.cut);
        }

        #[test]
        fn exit_group_is_recorded_before_it_ends_the_process() {
            let rt = traced();
            let e = catch_unwind(AssertUnwindSafe(|| {
                dispatch(&rt, Sysno::exit_group as u64, [3, 0, 0, 0, 0, 0]);
            }))
            .unwrap_err();
            assert_eq!(e.downcast_ref::<String>().unwrap(), "exit(3)");
            let r = rt.p.records.borrow();
            assert_eq!(r.len(), 1);
            assert!(r[0].no_return);
            assert_eq!(r[0].args[0], 3);
        }
    }

    /// The process (pid 4321) and its main thread, on the recorder.
    fn setup() -> FakeMachine<Recorder> {
        let boot = BootInfo {
            pid: 4321,
            pool_start: 16 << 20,
            mem_size: 64 << 20,
            ..Default::default()
        };
        let mut pr = Process::new(&boot);
        let p = Recorder::default();
        pr.mm.init(&p).unwrap();
        // RLIMIT_AS already read (unlimited): the first mmap's one-time
        // prlimit64 (`mote_libos::mm::limit`) is not what these tests count.
        pr.mm.set_as_limit(Some(mote_libos::mm::UNLIMITED));
        FakeMachine::new(p, pr, 1)
    }

    #[derive(Debug, PartialEq)]
    enum Kind {
        Local,
        Forward,
        Refused,
        Thread,
        Wait,
    }

    fn kind(nr: u32) -> Kind {
        match route::<Recorder>(nr) {
            Route::Local(_) => Kind::Local,
            Route::Forward => Kind::Forward,
            Route::Refused(_) => Kind::Refused,
            Route::Thread(_) => Kind::Thread,
            Route::Wait => Kind::Wait,
        }
    }

    #[test]
    fn calls_whose_pointers_linux_reads_later_are_refused() {
        // io_uring's rings and bpf's attributes hold pointers Linux follows
        // later, in the proxy, past the per-call check (#15).
        for s in [Sysno::io_uring_setup, Sysno::bpf] {
            assert!(
                matches!(
                    route::<Recorder>(s as u32),
                    Route::Refused(Later::Unchecked)
                ),
                "{}",
                s.name()
            );
        }
    }

    #[test]
    fn waits_are_stepped_by_the_runtime() {
        for s in [
            Sysno::rt_sigsuspend,
            Sysno::rt_sigtimedwait,
            Sysno::pause,
            Sysno::nanosleep,
            Sysno::clock_nanosleep,
            Sysno::pselect6,
            Sysno::ppoll,
            Sysno::epoll_pwait,
            Sysno::epoll_pwait2,
        ] {
            assert_eq!(kind(s as u32), Kind::Wait, "{}", s.name());
        }
    }

    #[test]
    fn a_wait_is_stepped_by_the_dispatcher() {
        let rt = setup();
        // rt_sigsuspend with a wrong sigsetsize ends at its first step.
        let r = dispatch(&rt, Sysno::rt_sigsuspend as u64, [0x1000, 4, 0, 0, 0, 0]);
        assert_eq!(r as i64, -22);
        // A relative sleep of nothing (the request reads as zero) is over at once,
        // in the scheduler, not in Linux.
        let req = dispatch(&rt, Sysno::mmap as u64, [0, 4096, 3, 0x22, u64::MAX, 0]);
        let r = dispatch(&rt, Sysno::nanosleep as u64, [req, 0, 0, 0, 0, 0]);
        assert_eq!(r, 0);
        assert!(rt.p.forwarded.borrow().is_empty());
    }

    #[test]
    fn thread_calls_go_to_the_thread_layer() {
        for s in [
            Sysno::clone,
            Sysno::clone3,
            Sysno::vfork,
            Sysno::fork,
            Sysno::exit,
            Sysno::futex,
            Sysno::gettid,
            Sysno::set_tid_address,
            Sysno::set_robust_list,
            Sysno::get_robust_list,
            Sysno::arch_prctl,
            Sysno::sched_yield,
            Sysno::sched_getaffinity,
            Sysno::sched_setaffinity,
            // A thread's /proc files and the task directory need the thread table.
            Sysno::open,
            Sysno::openat,
            Sysno::getdents64,
        ] {
            assert_eq!(kind(s as u32), Kind::Thread, "{}", s.name());
        }
    }

    #[test]
    fn thread_calls_are_answered_by_libos_thread_handlers() {
        let rt = setup();
        assert_eq!(dispatch(&rt, Sysno::gettid as u64, [0; 6]), 4321);
        let r = dispatch(&rt, Sysno::set_robust_list as u64, [0x1000, 16, 0, 0, 0, 0]);
        assert_eq!(r as i64, -22, "the head is 24 bytes");
        assert_eq!(dispatch(&rt, Sysno::sched_yield as u64, [0; 6]), 0);
        assert!(rt.p.forwarded.borrow().is_empty());
    }

    #[test]
    fn local_numbers_go_to_handlers() {
        for s in [
            Sysno::brk,
            Sysno::mmap,
            Sysno::munmap,
            Sysno::mprotect,
            Sysno::mremap,
            Sysno::madvise,
            Sysno::exit_group,
            Sysno::getpid,
            Sysno::rt_sigaction,
            Sysno::rt_sigprocmask,
            Sysno::sigaltstack,
            Sysno::kill,
            Sysno::tgkill,
            Sysno::tkill,
            Sysno::rt_sigreturn,
            Sysno::rt_sigpending,
            Sysno::alarm,
            Sysno::setitimer,
            Sysno::timer_create,
            Sysno::rseq,
            Sysno::shmat,
            Sysno::shmdt,
            Sysno::shmctl,
        ] {
            assert_eq!(kind(s as u32), Kind::Local, "{}", s.name());
        }
    }

    #[test]
    fn calls_that_would_act_on_the_proxy_are_refused() {
        for s in [
            Sysno::execveat,
            Sysno::signalfd,
            Sysno::signalfd4,
            Sysno::seccomp,
            Sysno::unshare,
            Sysno::setns,
            Sysno::personality,
            Sysno::modify_ldt,
            Sysno::set_thread_area,
            Sysno::ptrace,
            Sysno::vhangup,
        ] {
            assert_eq!(kind(s as u32), Kind::Refused, "{}", s.name());
        }
    }

    #[test]
    fn unknown_numbers_are_forwarded_unchanged_never_answered_here() {
        let rt = setup();
        let p = &rt.p;
        let args = [1, 2, 3, 4, 5, 6];
        for nr in [
            9999u64,
            Sysno::getppid as u64,
            Sysno::write as u64,
            Sysno::read as u64,
            Sysno::shmget as u64,
        ] {
            assert_eq!(kind(nr as u32), Kind::Forward);
            let before = p.forwarded.borrow().len();
            assert_eq!(dispatch(&rt, nr, args), LINUX_ANSWER as u64);
            assert_eq!(p.forwarded.borrow()[before], (nr, args));
        }
        assert!(p.logs.borrow().is_empty());
    }

    #[test]
    fn a_forwarded_call_interrupted_with_no_handler_to_run_runs_again() {
        let rt = setup();
        // EINTR with no signal pending for a handler: Linux would restart it.
        rt.p.first.borrow_mut().push(Errno::EINTR.ret());
        let args = [3, 0x1000, 10, 0, 0, 0];
        assert_eq!(dispatch(&rt, Sysno::read as u64, args), LINUX_ANSWER as u64);
        assert_eq!(
            rt.p.forwarded.borrow().as_slice(),
            [(Sysno::read as u64, args); 2]
        );
    }

    #[test]
    fn opening_a_path_libos_does_not_serve_is_forwarded_unchanged() {
        let rt = setup();
        let p = &rt.p;
        // The path pointer is not readable by libos: Linux's to judge.
        for nr in [Sysno::open as u64, Sysno::openat as u64] {
            let args = [1, 2, 3, 4, 5, 6];
            let before = p.forwarded.borrow().len();
            assert_eq!(dispatch(&rt, nr, args), LINUX_ANSWER as u64);
            assert_eq!(p.forwarded.borrow()[before], (nr, args));
        }
    }

    #[test]
    fn local_calls_do_not_reach_linux() {
        let rt = setup();
        let p = &rt.p;
        assert_eq!(dispatch(&rt, Sysno::getpid as u64, [0; 6]), 4321);
        let a = dispatch(&rt, Sysno::mmap as u64, [0, 8192, 3, 0x22, u64::MAX, 0]);
        assert!(a < 1 << 47 && a % 4096 == 0, "{a:#x}");
        assert_eq!(
            dispatch(&rt, Sysno::munmap as u64, [a, 8192, 0, 0, 0, 0]),
            0
        );
        assert!(p.forwarded.borrow().is_empty());
    }

    #[test]
    fn errors_become_negative_errno() {
        let rt = setup();
        let r = dispatch(&rt, Sysno::munmap as u64, [0x1001, 4096, 0, 0, 0, 0]);
        assert_eq!(r as i64, -22);
        let r = dispatch(&rt, Sysno::rseq as u64, [0; 6]);
        assert_eq!(r as i64, -38);
        let r = dispatch(&rt, Sysno::rt_sigaction as u64, [10, 0, 0, 4, 0, 0]);
        assert_eq!(r as i64, -22, "sigsetsize must be 8");
    }

    #[test]
    fn refused_calls_return_enosys_and_log_once() {
        let rt = setup();
        let p = &rt.p;
        for _ in 0..3 {
            let r = dispatch(&rt, Sysno::seccomp as u64, [0; 6]);
            assert_eq!(r as i64, -38);
        }
        assert!(p.forwarded.borrow().is_empty());
        let logs = p.logs.borrow();
        assert_eq!(logs.len(), 1);
        assert!(logs[0].starts_with("seccomp: "), "{}", logs[0]);
        assert!(logs[0].ends_with("returning ENOSYS"));
    }

    #[test]
    fn high_bits_of_the_number_are_ignored_as_linux_does() {
        let rt = setup();
        let p = &rt.p;
        // Linux 6.x runs (1 << 32) | 317 as seccomp: it must never reach the proxy.
        let r = dispatch(&rt, (1 << 32) | Sysno::seccomp as u64, [0; 6]);
        assert_eq!(r as i64, -38);
        // An x32 number is refused too.
        let r = dispatch(&rt, 0x4000_0000 | 520, [0; 6]);
        assert_eq!(r as i64, -38);
        // A forwarded call goes with the number Linux would run.
        dispatch(&rt, (7 << 32) | Sysno::getppid as u64, [0; 6]);
        assert_eq!(p.forwarded.borrow()[0].0, Sysno::getppid as u64);
    }

    #[test]
    fn exit_group_passes_the_low_byte() {
        let rt = setup();
        let e = catch_unwind(AssertUnwindSafe(|| {
            dispatch(&rt, Sysno::exit_group as u64, [0x1_2a, 0, 0, 0, 0, 0]);
        }))
        .unwrap_err();
        assert_eq!(e.downcast_ref::<String>().unwrap(), "exit(42)");
    }

    #[test]
    fn signals_to_other_processes_are_forwarded() {
        let rt = setup();
        let p = &rt.p;
        dispatch(&rt, Sysno::kill as u64, [999, 15, 0, 0, 0, 0]);
        assert_eq!(
            p.forwarded.borrow()[0],
            (Sysno::kill as u64, [999, 15, 0, 0, 0, 0])
        );
        // To ourselves: the default action of SIGTERM ends the run here.
        let e = catch_unwind(AssertUnwindSafe(|| {
            dispatch(&rt, Sysno::kill as u64, [4321, 15, 0, 0, 0, 0]);
        }))
        .unwrap_err();
        assert_eq!(e.downcast_ref::<String>().unwrap(), "die(15)");
        assert_eq!(p.forwarded.borrow().len(), 1);
    }

    const SIGXFSZ: u32 = 25;

    /// A write past RLIMIT_FSIZE: Linux answered EFBIG and raised SIGXFSZ.
    fn write_past_the_limit(rt: &FakeMachine<Recorder>) -> u64 {
        rt.p.first.borrow_mut().push(Errno::EFBIG.ret());
        rt.p.raised.set(SIGXFSZ);
        dispatch(rt, Sysno::write as u64, [3, 0x1000, 10, 0, 0, 0])
    }

    #[test]
    fn sigxfsz_raised_by_a_forwarded_write_ends_the_process_by_default() {
        let rt = setup();
        let e = catch_unwind(AssertUnwindSafe(|| write_past_the_limit(&rt))).unwrap_err();
        assert_eq!(e.downcast_ref::<String>().unwrap(), "die(25)");
    }

    #[test]
    fn sigxfsz_raised_by_a_forwarded_write_is_the_calling_threads_when_blocked() {
        let rt = setup();
        let bit = 1u64 << (SIGXFSZ - 1);
        thread::process_of(&rt)
            .as_mut()
            .unwrap()
            .signals
            .change_mask(0, bit) // SIG_BLOCK
            .unwrap();
        assert_eq!(write_past_the_limit(&rt), Errno::EFBIG.ret() as u64);
        let g = thread::process_of(&rt);
        let pr = g.as_ref().unwrap();
        assert_eq!(pr.signals.thread.pending, bit);
        assert_eq!(pr.signals.pending(), bit, "not the process's");
        assert_eq!(rt.p.raised.get(), 0, "taken");
    }

    #[test]
    fn efbig_without_a_raised_signal_raises_nothing() {
        let rt = setup();
        rt.p.first.borrow_mut().push(Errno::EFBIG.ret());
        let r = dispatch(&rt, Sysno::write as u64, [3, 0x1000, 10, 0, 0, 0]);
        assert_eq!(r, Errno::EFBIG.ret() as u64);
        assert_eq!(
            thread::process_of(&rt).as_ref().unwrap().signals.pending(),
            0
        );
    }
}
