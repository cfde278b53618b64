//! The table's routing and the dispatcher, on a recording fake platform.

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
