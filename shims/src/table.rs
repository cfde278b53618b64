//! The local-or-forward system call table: the one place that says which Linux
//! system calls the partition answers itself.
//!
//! Every call of the application reaches [`dispatch`] with its number and six
//! arguments. A number the table names is answered by a typed libos handler
//! (`mote_libos::syscall::*`, returning `Result<usize, Errno>`, turned into the
//! register value by `mote_abi::errno::to_ret` here and nowhere else). A few calls are
//! *refused*: run by the proxy they would act on the proxy process itself (create
//! processes or threads in it, replace it, send it signals, sandbox it), so until their
//! issue lands they return `ENOSYS` and say so once in the log. **Every other number
//! is forwarded** unchanged to Linux through the proxy, which answers with Linux's own
//! result and errno; nothing is answered with a made-up value.
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
use mote_libos::syscall::{exec, fs, mm, shm, signal, task, time};
use syscalls::Sysno;

/// `__X32_SYSCALL_BIT`: x32-ABI numbers (`arch/x86/include/uapi/asm/unistd.h`).
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// A local handler: the process, the platform, the six argument registers.
pub type Handler<P> = fn(&mut Process, &P, [u64; 6]) -> Result<usize, Errno>;

/// Why a call is refused instead of forwarded, and which work will implement it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Later {
    /// fork (a copy of the process; the thread layer refuses `clone` of one).
    Threads,
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
    /// A number with the x32 bit.
    X32,
}

impl Later {
    /// One line for the log.
    pub fn why(self) -> &'static str {
        match self {
            Later::Threads => "copying the process (fork) is not implemented yet (vfork and posix_spawn are); run by Linux it would fork the proxy",
            Later::Exec => "execveat is not implemented yet (use execve; run by Linux it would replace the proxy)",
            Later::Signalfd => "signalfd is not offered yet (run by Linux it would take the proxy's signals, which mote routes to the application)",
            Later::Seccomp => "seccomp is not offered (run by Linux it would filter the proxy)",
            Later::Namespaces => "namespaces are not offered (run by Linux it would move the proxy)",
            Later::Personality => "changing the execution domain is not offered (it would change the proxy's)",
            Later::Descriptors => "LDT and GDT TLS entries are not offered; use arch_prctl(ARCH_SET_FS)",
            Later::Ptrace => "ptrace is not offered (run by Linux it would trace the proxy)",
            Later::Vhangup => "vhangup is not offered (it would hang up the proxy's terminal)",
            Later::Pkeys => "memory protection keys are not offered (Linux would allocate them in the proxy)",
            Later::X32 => "x32-ABI system calls are not offered; mote runs x86_64 programs",
        }
    }
}

/// What the table does with a number.
pub enum Route<P> {
    /// Answered by libos.
    Local(Handler<P>),
    /// A wait for a signal or for time, stepped by the runtime with the process
    /// lock released while Linux waits (`mote_libos::syscall::wait`).
    Wait,
    /// Answered by the runtime's thread layer (`rt::threads`, over libos's
    /// scheduler and futex table): calls that create, block, wake or end threads, or
    /// act on the calling thread. They run outside the process lock.
    Thread,
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

        // Identity, exit of the process.
        Sysno::getpid => Local(|pr, _, _| task::getpid(pr)),
        Sysno::exit_group => Local(|pr, p, a| task::exit_group(pr, p, a[0])),
        Sysno::prctl => Local(|pr, p, a| task::prctl(pr, p, a)),
        // CPU time and faults of the partition, on top of Linux's accounting.
        Sysno::getrusage => Local(|pr, p, a| task::getrusage(pr, p, a[0], a[1])),
        Sysno::times => Local(|pr, p, a| task::times(pr, p, a[0])),
        // The partition's /proc and /sys files; every other path is Linux's.
        Sysno::open => Local(|pr, p, a| fs::open(pr, p, a)),
        Sysno::openat => Local(|pr, p, a| fs::openat(pr, p, a)),
        Sysno::rseq => Local(|pr, p, _| task::rseq(pr, p)),

        // Threads: creation, exit, futexes, scheduling, per-thread registrations.
        Sysno::clone
        | Sysno::clone3
        | Sysno::vfork
        | Sysno::exit
        | Sysno::futex
        | Sysno::gettid
        | Sysno::set_tid_address
        | Sysno::set_robust_list
        | Sysno::get_robust_list
        | Sysno::arch_prctl
        | Sysno::sched_yield
        | Sysno::sched_getaffinity
        | Sysno::sched_setaffinity => Thread,

        // The program: execve in the same partition; /proc/self/exe names it.
        Sysno::execve => Local(|pr, p, a| exec::execve(pr, p, a[0], a[1], a[2])),
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
        | Sysno::clock_nanosleep => Wait,
        // The runtime's entries answer rt_sigreturn before the table: they own the
        // registers the frame restores. Reaching here is a bug, said as ENOSYS.
        Sysno::rt_sigreturn => Local(|_, _, _| Err(Errno::ENOSYS)),
        // Timers run in Linux; their signals reach the proxy, which routes them.
        Sysno::alarm => Local(|_, p, a| signal::alarm(p, a[0])),
        Sysno::setitimer => Local(|pr, p, a| signal::setitimer(pr, p, a[0], a[1], a[2])),
        Sysno::timer_create => Local(|pr, p, a| signal::timer_create(pr, p, a[0], a[1], a[2])),

        // Never to Linux: they would act on the proxy itself.
        Sysno::fork => Refused(Later::Threads),
        Sysno::execveat => Refused(Later::Exec),
        Sysno::signalfd | Sysno::signalfd4 => Refused(Later::Signalfd),
        Sysno::seccomp => Refused(Later::Seccomp),
        Sysno::unshare | Sysno::setns => Refused(Later::Namespaces),
        Sysno::personality => Refused(Later::Personality),
        Sysno::modify_ldt | Sysno::set_thread_area => Refused(Later::Descriptors),
        Sysno::ptrace => Refused(Later::Ptrace),
        Sysno::vhangup => Refused(Later::Vhangup),
        Sysno::pkey_alloc | Sysno::pkey_free => Refused(Later::Pkeys),

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

/// Handle the application's system call `nr` with `args`; returns the value for
/// `rax`.
pub fn dispatch<P: Platform>(proc: &mut Process, p: &P, nr: u64, args: [u64; 6]) -> u64 {
    let nr = nr as u32;
    match route::<P>(nr) {
        Route::Local(handler) => to_ret(handler(proc, p, args)),
        Route::Forward => signal::forward_interruptible(proc, p, nr as u64, args) as u64,
        // The runtime sends these to its thread layer before coming here.
        Route::Thread => to_ret(Err(Errno::ENOSYS)),
        // Held throughout here (one thread); the runtime releases it while waiting.
        Route::Wait => match mote_libos::syscall::wait::Wait::new(nr as u64, args) {
            Some(w) => to_ret(mote_libos::syscall::wait::run(w, proc, p)),
            None => to_ret(Err(Errno::ENOSYS)),
        },
        Route::Refused(later) => {
            proc.log_once(p, nr as u64, || {
                format!("{}: {}; returning ENOSYS", name(nr), later.why())
            });
            to_ret(Err(Errno::ENOSYS))
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
    use mote_libos::platform::SharedMapping;
    use std::panic::{catch_unwind, AssertUnwindSafe};

    /// Records forwarded calls and log lines; kernel calls succeed, memory reads as
    /// zero. Enough to see where a number goes.
    #[derive(Default)]
    struct Recorder {
        forwarded: RefCell<Vec<(u64, [u64; 6])>>,
        logs: RefCell<Vec<String>>,
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
            LINUX_ANSWER
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

    fn setup() -> (Process, Recorder) {
        let boot = BootInfo {
            pid: 4321,
            pool_start: 16 << 20,
            mem_size: 64 << 20,
            ..Default::default()
        };
        let mut pr = Process::new(&boot);
        let p = Recorder::default();
        pr.mm.init(&p).unwrap();
        (pr, p)
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
            Route::Thread => Kind::Thread,
            Route::Wait => Kind::Wait,
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
        ] {
            assert_eq!(kind(s as u32), Kind::Wait, "{}", s.name());
        }
    }

    #[test]
    fn thread_calls_go_to_the_thread_layer() {
        for s in [
            Sysno::clone,
            Sysno::clone3,
            Sysno::vfork,
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
        ] {
            assert_eq!(kind(s as u32), Kind::Thread, "{}", s.name());
        }
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
            Sysno::open,
            Sysno::openat,
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
            Sysno::fork,
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
        let (mut pr, p) = setup();
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
            assert_eq!(dispatch(&mut pr, &p, nr, args), LINUX_ANSWER as u64);
            assert_eq!(p.forwarded.borrow()[before], (nr, args));
        }
        assert!(p.logs.borrow().is_empty());
    }

    #[test]
    fn opening_a_path_libos_does_not_serve_is_forwarded_unchanged() {
        let (mut pr, p) = setup();
        // The path pointer is not readable by libos: Linux's to judge.
        for nr in [Sysno::open as u64, Sysno::openat as u64] {
            let args = [1, 2, 3, 4, 5, 6];
            let before = p.forwarded.borrow().len();
            assert_eq!(dispatch(&mut pr, &p, nr, args), LINUX_ANSWER as u64);
            assert_eq!(p.forwarded.borrow()[before], (nr, args));
        }
    }

    #[test]
    fn local_calls_do_not_reach_linux() {
        let (mut pr, p) = setup();
        assert_eq!(dispatch(&mut pr, &p, Sysno::getpid as u64, [0; 6]), 4321);
        let a = dispatch(
            &mut pr,
            &p,
            Sysno::mmap as u64,
            [0, 8192, 3, 0x22, u64::MAX, 0],
        );
        assert!(a < 1 << 47 && a % 4096 == 0, "{a:#x}");
        assert_eq!(
            dispatch(&mut pr, &p, Sysno::munmap as u64, [a, 8192, 0, 0, 0, 0]),
            0
        );
        assert!(p.forwarded.borrow().is_empty());
    }

    #[test]
    fn errors_become_negative_errno() {
        let (mut pr, p) = setup();
        let r = dispatch(
            &mut pr,
            &p,
            Sysno::munmap as u64,
            [0x1001, 4096, 0, 0, 0, 0],
        );
        assert_eq!(r as i64, -22);
        let r = dispatch(&mut pr, &p, Sysno::rseq as u64, [0; 6]);
        assert_eq!(r as i64, -38);
        let r = dispatch(&mut pr, &p, Sysno::rt_sigaction as u64, [10, 0, 0, 4, 0, 0]);
        assert_eq!(r as i64, -22, "sigsetsize must be 8");
    }

    #[test]
    fn refused_calls_return_enosys_and_log_once() {
        let (mut pr, p) = setup();
        for _ in 0..3 {
            let r = dispatch(&mut pr, &p, Sysno::fork as u64, [0; 6]);
            assert_eq!(r as i64, -38);
        }
        assert!(p.forwarded.borrow().is_empty());
        let logs = p.logs.borrow();
        assert_eq!(logs.len(), 1);
        assert!(logs[0].starts_with("fork: "), "{}", logs[0]);
        assert!(logs[0].ends_with("returning ENOSYS"));
    }

    #[test]
    fn high_bits_of_the_number_are_ignored_as_linux_does() {
        let (mut pr, p) = setup();
        // Linux 6.x runs (1 << 32) | 57 as fork: it must never reach the proxy.
        let r = dispatch(&mut pr, &p, (1 << 32) | Sysno::fork as u64, [0; 6]);
        assert_eq!(r as i64, -38);
        // An x32 number is refused too.
        let r = dispatch(&mut pr, &p, 0x4000_0000 | 520, [0; 6]);
        assert_eq!(r as i64, -38);
        // A forwarded call goes with the number Linux would run.
        dispatch(&mut pr, &p, (7 << 32) | Sysno::getppid as u64, [0; 6]);
        assert_eq!(p.forwarded.borrow()[0].0, Sysno::getppid as u64);
    }

    #[test]
    fn exit_group_passes_the_low_byte() {
        let (mut pr, p) = setup();
        let e = catch_unwind(AssertUnwindSafe(|| {
            dispatch(
                &mut pr,
                &p,
                Sysno::exit_group as u64,
                [0x1_2a, 0, 0, 0, 0, 0],
            );
        }))
        .unwrap_err();
        assert_eq!(e.downcast_ref::<String>().unwrap(), "exit(42)");
    }

    #[test]
    fn signals_to_other_processes_are_forwarded() {
        let (mut pr, p) = setup();
        dispatch(&mut pr, &p, Sysno::kill as u64, [999, 15, 0, 0, 0, 0]);
        assert_eq!(
            p.forwarded.borrow()[0],
            (Sysno::kill as u64, [999, 15, 0, 0, 0, 0])
        );
        // To ourselves: the default action of SIGTERM ends the run here.
        let e = catch_unwind(AssertUnwindSafe(|| {
            dispatch(&mut pr, &p, Sysno::kill as u64, [4321, 15, 0, 0, 0, 0]);
        }))
        .unwrap_err();
        assert_eq!(e.downcast_ref::<String>().unwrap(), "die(15)");
        assert_eq!(p.forwarded.borrow().len(), 1);
    }
}
