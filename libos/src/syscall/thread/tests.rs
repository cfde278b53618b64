//! The thread calls on the fake platform and the fake machine.

use super::*;
use crate::fake::{FakeMachine, FakePlatform, KCall};
use crate::process::Process;
use crate::syscall::mm;
use mote_abi::boot::BootInfo;
use std::panic::{catch_unwind, AssertUnwindSafe};

const PID: u32 = 500;

/// A process with one read-write page at `buf` and a read-only one after it, its
/// main thread on core 0 of 2.
fn setup() -> (FakeMachine<FakePlatform>, u64) {
    let boot = BootInfo {
        pid: PID,
        pool_start: 16 << 20,
        mem_size: 64 << 20,
        ncores: 2,
        ..Default::default()
    };
    let p = FakePlatform::new();
    let mut pr = Process::new(&boot);
    pr.mm.init(&p).unwrap();
    // RLIMIT_AS known (unlimited): the set-up's mmap forwards nothing.
    pr.mm.set_as_limit(Some(crate::mm::UNLIMITED));
    let buf = mm::mmap(&mut pr, &p, 0, 8192, 3, 0x22, u64::MAX, 0).unwrap() as u64;
    mm::mprotect(&mut pr, &p, buf + 4096, 4096, 1).unwrap();
    (FakeMachine::new(p, pr, 2), buf)
}

fn word(m: &FakeMachine<FakePlatform>, va: u64) -> u32 {
    u32::from_le_bytes(m.p.peek(va, 4).try_into().unwrap())
}

/// Another thread `tid` of the process, blocked on futex `addr` on `core`.
fn waiter(m: &FakeMachine<FakePlatform>, tid: u32, slot: usize, core: usize, addr: u64) {
    let mut g = m.threads.lock();
    let t = g.as_mut().unwrap();
    let c = t.spawn_on(
        Thread {
            tid,
            slot,
            core,
            child_process: false,
            affinity: u64::MAX,
            state: State::Runnable,
            wake: Wake::Woken,
            futex: None,
            clear_child_tid: 0,
            robust_list: (0, 0),
            fs_base: 0,
        },
        core,
    );
    assert_eq!(c, core);
    // It runs on its core, then waits.
    assert_eq!(t.pick(core, 0, |_| false), Some(tid));
    t.futex_enqueue(tid, addr, u32::MAX);
    t.stop_current(core, State::Blocked { deadline: 0 });
}

#[test]
fn futex_wait_on_a_changed_word_is_eagain_without_blocking() {
    let (m, buf) = setup();
    m.p.poke(buf, &5u32.to_le_bytes());
    assert_eq!(futex(&m, buf, FUTEX_WAIT, 4, 0, 0, 0), Err(Errno::EAGAIN));
    assert!(m.blocks.borrow().is_empty());
    assert_eq!(
        futex(&m, buf + 2, FUTEX_WAIT, 5, 0, 0, 0),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        futex(&m, buf, FUTEX_WAIT_BITSET, 5, 0, 0, 0),
        Err(Errno::EINVAL),
        "an empty bitset"
    );
}

#[test]
fn futex_wait_blocks_and_says_how_it_ended() {
    let (m, buf) = setup();
    for (wake, want) in [
        (Wake::Woken, Ok(0)),
        (Wake::TimedOut, Err(Errno::ETIMEDOUT)),
        (Wake::Interrupted, Err(Errno::EINTR)),
    ] {
        m.wake_as.set(Some(wake));
        assert_eq!(
            futex(&m, buf, FUTEX_WAIT | FUTEX_PRIVATE_FLAG, 0, 0, 0, 0),
            want
        );
    }
    assert_eq!(
        m.blocks.borrow().as_slice(),
        [State::Blocked { deadline: 0 }; 3]
    );
}

#[test]
fn futex_wake_wakes_waiters_and_kicks_their_cores() {
    let (m, buf) = setup();
    waiter(&m, 601, 1, 1, buf);
    waiter(&m, 602, 2, 1, buf);
    assert_eq!(futex(&m, buf, FUTEX_WAKE, 1, 0, 0, 0), Ok(1));
    assert_eq!(m.kicks.borrow().as_slice(), [1]);
    assert_eq!(futex(&m, buf, FUTEX_WAKE, 10, 0, 0, 0), Ok(1));
    assert_eq!(futex(&m, buf, FUTEX_WAKE, 10, 0, 0, 0), Ok(0));
    assert_eq!(
        futex(&m, buf + 1, FUTEX_WAKE, 1, 0, 0, 0),
        Err(Errno::EINVAL)
    );
}

#[test]
fn futex_wake_op_changes_the_second_word_and_wakes_on_its_condition() {
    let (m, buf) = setup();
    let (a, b) = (buf, buf + 64);
    waiter(&m, 601, 1, 1, a);
    waiter(&m, 602, 2, 1, b);
    m.p.poke(b, &1u32.to_le_bytes());
    // FUTEX_OP(FUTEX_OP_ADD, 2, FUTEX_OP_CMP_EQ, 1): *b += 2; wake b's if old == 1.
    let op = (1 << 28) | (2 << 12) | 1; // cmp FUTEX_OP_CMP_EQ (0) at bits 24..28
    assert_eq!(futex(&m, a, FUTEX_WAKE_OP, 1, 1, b, op), Ok(2));
    assert_eq!(word(&m, b), 3);
}

#[test]
fn futex_requeue_moves_the_rest_and_cmp_requeue_checks_the_word() {
    let (m, buf) = setup();
    let (a, b) = (buf, buf + 64);
    waiter(&m, 601, 1, 1, a);
    waiter(&m, 602, 2, 1, a);
    m.p.poke(a, &7u32.to_le_bytes());
    assert_eq!(
        futex(&m, a, FUTEX_CMP_REQUEUE, 1, 1, b, 8),
        Err(Errno::EAGAIN)
    );
    assert_eq!(futex(&m, a, FUTEX_CMP_REQUEUE, 1, 1, b, 7), Ok(2));
    assert_eq!(
        m.threads.lock().as_ref().unwrap().futex_waiters(b),
        1,
        "the second waiter waits on b now"
    );
}

#[test]
fn futex_pi_operations_are_enosys_and_said_once() {
    let (m, buf) = setup();
    for _ in 0..2 {
        assert_eq!(futex(&m, buf, 6, 0, 0, 0, 0), Err(Errno::ENOSYS)); // FUTEX_LOCK_PI
    }
    assert_eq!(m.p.st.borrow().logs.len(), 1);
    assert_eq!(
        futex(&m, buf, FUTEX_WAKE | FUTEX_CLOCK_REALTIME, 1, 0, 0, 0),
        Err(Errno::ENOSYS)
    );
}

#[test]
fn robust_list_and_tid_address() {
    let (m, buf) = setup();
    assert_eq!(gettid(&m), Ok(PID as usize));
    assert_eq!(set_tid_address(&m, buf), Ok(PID as usize));
    assert_eq!(set_robust_list(&m, 0x1234, 16), Err(Errno::EINVAL));
    assert_eq!(set_robust_list(&m, 0x1234, 24), Ok(0));
    assert_eq!(get_robust_list(&m, 0, buf + 64, buf + 72), Ok(0));
    assert_eq!(m.p.peek(buf + 64, 8), 0x1234u64.to_le_bytes());
    assert_eq!(m.p.peek(buf + 72, 8), 24u64.to_le_bytes());
    assert_eq!(get_robust_list(&m, 4242, buf, buf), Err(Errno::ESRCH));
    assert!(m.p.forwarded_nrs().is_empty());
    let t = m.threads.lock();
    assert_eq!(t.as_ref().unwrap().get(PID).unwrap().clear_child_tid, buf);
}

#[test]
fn arch_prctl_fs() {
    use crate::uapi::arch_prctl::{ARCH_GET_FS, ARCH_SET_FS, ARCH_SET_GS};
    let (m, buf) = setup();
    m.p.take_calls();
    assert_eq!(arch_prctl(&m, ARCH_SET_FS, 0x7000_1000), Ok(0));
    assert_eq!(m.p.take_calls(), [KCall::SetFs(0x7000_1000)]);
    assert_eq!(arch_prctl(&m, ARCH_GET_FS, buf), Ok(0));
    assert_eq!(m.p.peek(buf, 8), 0x7000_1000u64.to_le_bytes());
    assert_eq!(arch_prctl(&m, ARCH_GET_FS, buf + 4096), Err(Errno::EFAULT));
    assert_eq!(arch_prctl(&m, ARCH_SET_FS, 1 << 63), Err(Errno::EPERM));
    assert_eq!(
        arch_prctl(&m, ARCH_SET_FS, crate::uapi::TASK_SIZE_MAX),
        Err(Errno::EPERM)
    );
    assert_eq!(arch_prctl(&m, ARCH_SET_GS, 0), Err(Errno::EINVAL));
    assert_eq!(arch_prctl(&m, 0x3001, 0), Err(Errno::EINVAL));
}

#[test]
fn clone_through_the_direct_entry_is_enosys() {
    let (mut m, _) = setup();
    m.trapped = false;
    let flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD;
    assert_eq!(clone(&m, flags, 0, 0, 0, 0), Err(Errno::ENOSYS));
    assert_eq!(vfork(&m), Err(Errno::ENOSYS));
    assert!(m.contexts.borrow().is_empty());
}

#[test]
fn clone_accepts_threads_and_vfork_children_only() {
    let (m, _) = setup();
    let mut g = m.process.lock();
    let pr = g.as_mut().unwrap();
    let thread = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD;
    let args = |flags| CloneArgs {
        flags,
        stack: 0,
        ptid: 0,
        ctid: 0,
        tls: 0,
    };
    assert_eq!(check_clone(pr, &m.p, &args(thread)), Ok(CloneKind::Thread));
    assert_eq!(
        check_clone(pr, &m.p, &args(CLONE_VM | CLONE_VFORK | 17)),
        Ok(CloneKind::VforkChild)
    );
    assert_eq!(
        check_clone(pr, &m.p, &args(17)),
        Ok(CloneKind::Fork),
        "fork"
    );
    // glibc's fork: the child's tid into its TCB, cleared at its exit.
    let glibc = CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID | 17;
    assert_eq!(check_clone(pr, &m.p, &args(glibc)), Ok(CloneKind::Fork));
    assert_eq!(
        check_clone(pr, &m.p, &args(CLONE_PARENT_SETTID)),
        Ok(CloneKind::Fork),
        "no exit signal"
    );
    // A copy that shares descriptors or handlers, or runs on a new stack: not offered.
    assert_eq!(
        check_clone(pr, &m.p, &args(CLONE_FILES | 17)),
        Err(Errno::ENOSYS)
    );
    let on_stack = CloneArgs {
        stack: 0x1000,
        ..args(17)
    };
    assert_eq!(check_clone(pr, &m.p, &on_stack), Err(Errno::ENOSYS));
    assert_eq!(
        check_clone(pr, &m.p, &args(thread | 17)),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        check_clone(pr, &m.p, &args(thread | CLONE_PIDFD)),
        Err(Errno::EINVAL)
    );
}

#[test]
fn clone_of_a_thread_places_it_and_writes_its_tid() {
    let (m, buf) = setup();
    let flags = CLONE_VM
        | CLONE_FS
        | CLONE_FILES
        | CLONE_SIGHAND
        | CLONE_THREAD
        | CLONE_SETTLS
        | CLONE_PARENT_SETTID
        | CLONE_CHILD_CLEARTID;
    assert_eq!(clone(&m, flags, 0x5000, buf, buf + 4, 0x9000), Ok(777));
    assert_eq!(word(&m, buf), 777);
    assert_eq!(m.contexts.borrow().as_slice(), [(1, 0x5000)]);
    let g = m.threads.lock();
    let x = g.as_ref().unwrap().get(777).unwrap().clone();
    assert_eq!(
        (x.core, x.slot, x.fs_base, x.clear_child_tid),
        (1, 1, 0x9000, buf + 4)
    );
    assert_eq!(m.kicks.borrow().as_slice(), [1]);
    assert_eq!(m.process.lock().as_ref().unwrap().threads, 2);
}

#[test]
fn clone3_reads_struct_clone_args() {
    let (m, buf) = setup();
    let mut a = [0u64; 11];
    a[0] = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD;
    a[3] = buf + 512; // parent_tid
    a[5] = 0x10_0000; // stack
    a[6] = 0x1000; // stack_size
    a[7] = 0x42; // tls
    let b: Vec<u8> = a.iter().flat_map(|w| w.to_le_bytes()).collect();
    m.p.poke(buf, &b);
    let g = m.process.lock();
    let args = clone3_args(g.as_ref().unwrap(), &m.p, buf, 88).unwrap();
    assert_eq!(
        args,
        CloneArgs {
            flags: a[0],
            stack: 0x10_1000,
            ptid: buf + 512,
            ctid: 0,
            tls: 0x42
        }
    );
    assert_eq!(
        clone3_args(g.as_ref().unwrap(), &m.p, buf, 32),
        Err(Errno::EINVAL)
    );
}

#[test]
fn the_last_thread_exit_ends_the_process() {
    let (m, _) = setup();
    let e = catch_unwind(AssertUnwindSafe(|| {
        let _ = exit(&m, 0x1_07);
    }))
    .unwrap_err();
    assert_eq!(e.downcast_ref::<String>().unwrap(), "fake: exit(7)");
}

#[test]
fn sched_setaffinity_moves_the_caller_to_an_allowed_core() {
    let (m, buf) = setup();
    m.p.poke(buf, &0b10u64.to_le_bytes());
    assert_eq!(sched_setaffinity(&m, 0, 8, buf), Ok(0));
    assert_eq!(m.kicks.borrow().as_slice(), [1]);
    assert_eq!(m.blocks.borrow().as_slice(), [State::Runnable]);
    assert_eq!(sched_getaffinity(&m, 0, 8, buf + 64), Ok(8));
    assert_eq!(m.p.peek(buf + 64, 1), [0b10]);
}

#[test]
fn a_local_sleep_blocks_until_its_deadline_and_says_the_time_left_when_interrupted() {
    let (m, buf) = setup();
    let req = [0u64, 5_000_000]; // 5 ms
    let b: Vec<u8> = req.iter().flat_map(|w| w.to_le_bytes()).collect();
    m.p.poke(buf, &b);
    m.wake_as.set(Some(Wake::Woken));
    assert_eq!(
        sleep(&m, Sysno::nanosleep as u64, [buf, buf + 16, 0, 0, 0, 0]),
        Some(Ok(0))
    );
    assert!(matches!(m.blocks.borrow()[0], State::Blocked { deadline } if deadline > 0));
    m.wake_as.set(Some(Wake::Interrupted));
    assert_eq!(
        sleep(&m, Sysno::nanosleep as u64, [buf, buf + 16, 0, 0, 0, 0]),
        Some(Err(Errno::EINTR))
    );
    let left = u64::from_le_bytes(m.p.peek(buf + 24, 8).try_into().unwrap());
    assert!(left > 0 && left < 5_000_000, "{left}");
    // A clock libos does not keep: Linux's.
    assert_eq!(
        sleep(&m, Sysno::clock_nanosleep as u64, [2, 0, buf, 0, 0, 0]),
        None
    );
}

/// Time-sharing: a wake that gives a busy core a second thread that wants to
/// run kicks that core (the runtime starts the core's timer at the kick); a
/// wake onto an idle core leaves it wanting none.
#[test]
fn a_wake_that_makes_a_core_want_its_timer_kicks_it() {
    let (m, buf) = setup();
    waiter(&m, 601, 1, 1, buf);
    waiter(&m, 602, 2, 1, buf + 64);
    assert!(!m.threads.lock().as_ref().unwrap().wants_tick(1), "idle");
    assert_eq!(futex(&m, buf, FUTEX_WAKE, 1, 0, 0, 0), Ok(1));
    assert_eq!(m.kicks.borrow().as_slice(), [1]);
    {
        let mut g = m.threads.lock();
        let t = g.as_mut().unwrap();
        assert!(!t.wants_tick(1), "nothing runs on core 1 yet");
        // Core 1 picks 601: it runs alone.
        assert_eq!(t.pick(1, 0, |_| false), Some(601));
        assert!(!t.wants_tick(1), "one thread wants core 1");
    }
    assert_eq!(futex(&m, buf + 64, FUTEX_WAKE, 1, 0, 0, 0), Ok(1));
    assert_eq!(m.kicks.borrow().as_slice(), [1, 1]);
    let g = m.threads.lock();
    let t = g.as_ref().unwrap();
    assert!(t.wants_tick(1), "601 runs, 602 waits in the queue");
    assert!(!t.wants_tick(0), "main alone on core 0");
}

/// Another thread `tid` of the process, running on `core`.
fn runner(m: &FakeMachine<FakePlatform>, tid: u32, slot: usize, core: usize) {
    let mut g = m.threads.lock();
    let t = g.as_mut().unwrap();
    t.spawn_on(
        Thread {
            tid,
            slot,
            core,
            child_process: false,
            affinity: u64::MAX,
            state: State::Runnable,
            wake: Wake::Woken,
            futex: None,
            clear_child_tid: 0,
            robust_list: (0, 0),
            fs_base: 0,
        },
        core,
    );
    assert_eq!(t.pick(core, 0, |_| false), Some(tid));
}

/// A failing `execve` (no such program) from a process with other threads
/// returns Linux's errno and leaves every thread as it was: none is ended.
/// Regression: `execve` from a process with other threads was `ENOSYS`.
#[test]
fn a_failing_execve_leaves_every_thread_running() {
    let (m, buf) = setup();
    waiter(&m, 601, 1, 1, buf + 64);
    m.p.write_mem(buf, b"/no/such/program\0");
    m.p.reply(Sysno::newfstatat, Errno::ENOENT.ret());
    assert_eq!(
        crate::syscall::exec::execve(&m, buf, 0, 0),
        Err(Errno::ENOENT)
    );
    assert!(m.ended.borrow().is_empty());
    let g = m.threads.lock();
    let t = g.as_ref().unwrap();
    assert!(!t.is_doomed(601));
    assert_eq!(t.futex_waiters(buf + 64), 1, "still waiting");
    assert_eq!(t.live_own(), 2);
}

/// Linux's `de_thread`, from a thread other than the main one: every other
/// thread (the main one running, one in a futex wait) ends, the proxy is told
/// before and after, and the caller goes on alone as the thread-group leader
/// (its tid is the pid), on its own slot and core, with its signal mask.
#[test]
fn execve_from_a_thread_ends_the_others_and_takes_the_leaders_id() {
    let (m, buf) = setup();
    waiter(&m, 601, 1, 1, buf + 64);
    runner(&m, 602, 2, 1);
    m.tid.set(602);
    m.core.set(1);
    {
        let mut g = m.process.lock();
        let pr = g.as_mut().unwrap();
        pr.switch_thread(602);
        pr.signals
            .set_mask(crate::signal::bit(crate::uapi::signal::SIGUSR1));
        pr.threads = 3;
    }
    assert_eq!(crate::syscall::exec::de_thread(&m, PID), Ok(()));
    assert_eq!(*m.ended.borrow(), [true, false]);
    assert_eq!(m.tid.get(), PID);
    let g = m.threads.lock();
    let t = g.as_ref().unwrap();
    assert!(t.alone(PID), "{t:?}");
    let me = t.get(PID).unwrap();
    assert_eq!((me.slot, me.core, me.state), (2, 1, State::Running));
    assert_eq!(t.current(1), Some(PID));
    assert_eq!(t.futex_waiters(buf + 64), 0);
    drop(g);
    let mut g = m.process.lock();
    let pr = g.as_mut().unwrap();
    assert_eq!(pr.threads, 1);
    assert_eq!(pr.signals.current_thread(), PID);
    assert_eq!(
        pr.signals.mask(),
        crate::signal::bit(crate::uapi::signal::SIGUSR1),
        "the caller's mask, now the leader's"
    );
    assert!(!pr.signals.has_other_thread(601));
}

/// With one thread there is nothing to end: the proxy is not asked, and the
/// main thread keeps its id.
#[test]
fn execve_with_one_thread_ends_nothing() {
    let (m, _) = setup();
    assert_eq!(crate::syscall::exec::de_thread(&m, PID), Ok(()));
    assert!(m.ended.borrow().is_empty());
    assert_eq!(m.tid.get(), PID);
    assert!(m.threads.lock().as_ref().unwrap().alone(PID));
}
