//! The scheduler's decisions: placement, run queues, futex queues, time-sharing.

use super::*;

fn thread(tid: u32, slot: usize, affinity: u64) -> Thread {
    Thread {
        tid,
        slot,
        core: 0,
        child_process: false,
        affinity,
        state: State::Runnable,
        wake: Wake::Woken,
        futex: None,
        clear_child_tid: 0,
        robust_list: (0, 0),
        fs_base: 0,
    }
}

#[test]
fn placement_is_round_robin_and_honours_affinity() {
    let mut t = Threads::new(4, 100, 16);
    let cores: Vec<usize> = (0..5)
        .map(|i| t.spawn(thread(101 + i, 1 + i as usize, u64::MAX)))
        .collect();
    assert_eq!(cores, [1, 2, 3, 0, 1]);
    assert_eq!(t.spawn(thread(200, 9, 0b100)), 2);
    assert_eq!(
        t.spawn(thread(201, 10, 0b1000_0000)),
        0,
        "no partition core allowed: core 0"
    );
}

#[test]
fn a_new_thread_goes_on_the_least_loaded_core() {
    // Main (tid 100) on core 0 of 3.
    let mut t = Threads::new(3, 100, 16);
    assert_eq!(t.spawn(thread(101, 1, u64::MAX)), 1);
    assert_eq!(t.spawn(thread(102, 2, u64::MAX)), 2);
    // Core 1's thread ends: the next thread goes there, not round robin's
    // turn (core 0, which runs main).
    t.get_mut(101).unwrap().state = State::Dead;
    assert_eq!(t.spawn(thread(103, 3, u64::MAX)), 1);
    // Every core has one: round robin again.
    assert_eq!(t.spawn(thread(104, 4, u64::MAX)), 2);
}

#[test]
fn one_core_round_robin_with_yield() {
    let mut t = Threads::new(1, 1, 16);
    t.spawn(thread(2, 1, 1));
    t.spawn(thread(3, 2, 1));
    assert!(t.others_runnable(0));
    t.stop_current(0, State::Runnable);
    let order: Vec<u32> = (0..6)
        .map(|_| {
            let n = t.pick(0, 0, |_| false).unwrap();
            t.stop_current(0, State::Runnable);
            n
        })
        .collect();
    assert_eq!(order, [2, 3, 1, 2, 3, 1]);
}

#[test]
fn futex_wait_wake_and_bitsets() {
    let mut t = Threads::new(2, 1, 16);
    t.spawn(thread(2, 1, 0b10)); // core 1
    assert_eq!(t.pick(1, 0, |_| false), Some(2));
    t.futex_enqueue(2, 0x1000, 0b01);
    t.stop_current(1, State::Blocked { deadline: 0 });
    t.futex_enqueue(1, 0x1000, 0b10);
    t.stop_current(0, State::Blocked { deadline: 0 });
    assert_eq!(t.pick(0, 0, |_| false), None);
    assert_eq!(t.futex_waiters(0x1000), 2);
    // A bitset that matches only thread 1.
    assert_eq!(t.futex_wake(0x1000, 10, 0b10), [0]);
    assert_eq!(t.futex_waiters(0x1000), 1);
    assert_eq!(t.futex_wake(0x2000, 10, u32::MAX), []);
    assert_eq!(t.futex_wake(0x1000, 1, u32::MAX), [1]);
    assert_eq!(t.futex_waiters(0x1000), 0);
    assert_eq!(t.pick(1, 0, |_| false), Some(2));
    assert_eq!(t.get(2).unwrap().wake, Wake::Woken);
    // Waking twice does nothing.
    assert_eq!(t.futex_wake(0x1000, 1, u32::MAX), []);
}

#[test]
fn futex_deadline_times_out_and_leaves_the_queue() {
    let mut t = Threads::new(1, 1, 16);
    t.futex_enqueue(1, 0x40, u32::MAX);
    t.stop_current(0, State::Blocked { deadline: 500 });
    assert_eq!(t.next_deadline(0), 500);
    assert_eq!(t.pick(0, 499, |_| false), None);
    assert_eq!(t.pick(0, 500, |_| false), Some(1));
    assert_eq!(t.get(1).unwrap().wake, Wake::TimedOut);
    assert_eq!(t.futex_waiters(0x40), 0);
    assert_eq!(t.next_deadline(0), 0);
}

#[test]
fn a_signal_interrupts_a_futex_wait() {
    let mut t = Threads::new(1, 1, 16);
    t.futex_enqueue(1, 0x40, u32::MAX);
    t.stop_current(0, State::Blocked { deadline: 0 });
    assert_eq!(t.blocked_on(0), Some(1));
    assert_eq!(t.interrupt(1), Some(0));
    assert_eq!(t.interrupt(1), None, "already runnable");
    assert_eq!(t.futex_waiters(0x40), 0);
    assert_eq!(t.pick(0, 0, |_| false), Some(1));
    assert_eq!(t.get(1).unwrap().wake, Wake::Interrupted);
    assert_eq!(t.blocked_on(0), None);
}

#[test]
fn requeue_moves_waiters() {
    let mut t = Threads::new(1, 1, 16);
    for i in 2..6 {
        t.spawn(thread(i, i as usize, 1));
    }
    t.stop_current(0, State::Runnable);
    for _ in 0..5 {
        let tid = t.pick(0, 0, |_| false).unwrap();
        t.futex_enqueue(tid, 0x10, u32::MAX);
        t.stop_current(0, State::Blocked { deadline: 0 });
    }
    let (woken, moved) = t.futex_requeue(0x10, 0x20, 1, 2);
    assert_eq!((woken.len(), moved), (1, 2));
    assert_eq!(t.futex_waiters(0x10), 2);
    assert_eq!(t.futex_waiters(0x20), 2);
    assert_eq!(t.futex_wake(0x20, 10, u32::MAX).len(), 2);
}

#[test]
fn forwarded_threads_run_when_answered() {
    let mut t = Threads::new(1, 1, 16);
    t.spawn(thread(2, 1, 1));
    t.stop_current(0, State::Forwarded);
    assert_eq!(t.pick(0, 0, |_| false), Some(2));
    t.stop_current(0, State::Forwarded);
    assert!(t.has_forwarded(0));
    assert_eq!(t.pick(0, 0, |_| false), None);
    assert_eq!(t.pick(0, 0, |slot| slot == 0), Some(1));
}

#[test]
fn dead_threads_give_back_their_slots() {
    let mut t = Threads::new(1, 1, 3);
    let s1 = t.alloc_slot().unwrap();
    let s2 = t.alloc_slot().unwrap();
    assert_eq!((s1, s2), (1, 2));
    assert_eq!(t.alloc_slot(), Err(Errno::EAGAIN));
    t.spawn(thread(2, s1, 1));
    t.stop_current(0, State::Dead);
    assert_eq!(t.live(), 1);
    assert_eq!(t.reap(2), None, "only dead threads are reaped");
    assert_eq!(t.reap(1), Some(0));
    assert_eq!(t.alloc_slot(), Ok(0));
}

#[test]
fn vfork_children_never_get_a_slot_the_proxy_serves() {
    let mut t = Threads::new(1, 1, 8);
    let a = t.alloc_slot().unwrap();
    t.mark_served(a);
    let b = t.alloc_slot().unwrap();
    t.free_slot(a);
    t.free_slot(b);
    // b was never served by the proxy process: a child may have it; a never.
    assert_eq!(t.alloc_child_slot(), Ok(b));
    assert_ne!(t.alloc_child_slot(), Ok(a));
}

#[test]
fn affinity_moves_runnable_threads() {
    let mut t = Threads::new(2, 1, 16);
    t.spawn(thread(2, 1, u64::MAX)); // core 1
    assert_eq!(t.set_affinity(2, 0b01), Ok(()));
    assert_eq!(t.get(2).unwrap().core, 0);
    assert_eq!(t.set_affinity(2, 0b100), Err(Errno::EINVAL));
    assert_eq!(t.set_affinity(9, 1), Err(Errno::ESRCH));
    t.stop_current(0, State::Runnable);
    assert_eq!(t.pick(0, 0, |_| false), Some(2));
}

#[test]
fn robust_list_walk_finds_held_futexes() {
    use alloc::collections::BTreeMap;
    // head at 0x100 -> entry 0x200 -> entry 0x300 -> head; futex at entry + 0x10.
    let mem: BTreeMap<u64, u64> = [
        (0x100, 0x200),
        (0x108, 0x10),
        (0x110, 0x400),
        (0x200, 0x300),
        (0x300, 0x100),
        (0x400, 0x100),
    ]
    .into_iter()
    .collect();
    let read = |a: u64| mem.get(&a).copied();
    assert_eq!(robust_futexes(0x100, read), [0x210, 0x310, 0x410]);
    // A cycle that never returns to the head stops at the limit.
    let cyc: BTreeMap<u64, u64> = [(0x100, 0x200), (0x108, 0), (0x110, 0), (0x200, 0x200)]
        .into_iter()
        .collect();
    assert_eq!(
        robust_futexes(0x100, |a| cyc.get(&a).copied()).len(),
        ROBUST_LIST_LIMIT
    );
    assert!(robust_futexes(0x900, read).is_empty());
    assert_eq!(owner_died(42, 42), Some(FUTEX_OWNER_DIED));
    assert_eq!(
        owner_died(FUTEX_WAITERS | 42, 42),
        Some(FUTEX_WAITERS | FUTEX_OWNER_DIED)
    );
    assert_eq!(owner_died(43, 42), None);
}

#[test]
fn wake_op_decodes_like_linux() {
    // FUTEX_OP(FUTEX_OP_ADD, 1, FUTEX_OP_CMP_GT, 1) as glibc once used.
    let op = (1 << 28) | (4 << 24) | (1 << 12) | 1;
    assert_eq!(wake_op(op, 1), Ok((2, false)));
    assert_eq!(wake_op(op, 2), Ok((3, true)));
    // SET with a shifted oparg, CMP_EQ against -1 (sign extension).
    let op = (8 << 28) | (3 << 12) | 0xfff; // SET, CMP_EQ
    assert_eq!(wake_op(op, u32::MAX), Ok((8, true)));
    assert_eq!(wake_op(7 << 28, 0), Err(Errno::ENOSYS));
}

// --- time-sharing --------------------------------------------------------------

#[test]
fn a_core_with_one_thread_never_wants_its_timer() {
    let mut t = Threads::new(2, 1, 16);
    assert!(!t.wants_tick(0), "the main thread alone");
    // A second thread goes on the other core: each core has one.
    assert_eq!(t.spawn(thread(2, 1, u64::MAX)), 1);
    assert!(!t.wants_tick(0));
    assert!(!t.wants_tick(1), "runnable but nothing runs there yet");
    assert_eq!(t.pick(1, 0, |_| false), Some(2));
    assert!(!t.wants_tick(1));
    // Blocked without a deadline: only a wake-up (which kicks the core) ends it.
    t.futex_enqueue(2, 0x40, u32::MAX);
    t.stop_current(1, State::Blocked { deadline: 0 });
    assert!(!t.wants_tick(1), "an idle core");
    assert!(
        !t.preempt(1, 0, |_| false),
        "nothing runs: nothing to preempt"
    );
}

#[test]
fn a_second_thread_that_wants_the_core_arms_its_timer() {
    let mut t = Threads::new(1, 1, 16);
    t.spawn(thread(2, 1, 1));
    assert!(t.wants_tick(0), "main runs, thread 2 waits in the queue");
    // Thread 2 runs, main blocks untimed: one thread wants the core.
    t.futex_enqueue(1, 0x40, u32::MAX);
    t.stop_current(0, State::Blocked { deadline: 0 });
    assert_eq!(t.pick(0, 0, |_| false), Some(2));
    assert!(!t.wants_tick(0));
    // A wake-up from another core puts main in the queue again.
    assert_eq!(t.futex_wake(0x40, 1, u32::MAX), [0]);
    assert!(t.wants_tick(0));
}

#[test]
fn threads_that_may_become_ready_unnoticed_keep_the_timer() {
    let mut t = Threads::new(1, 1, 16);
    t.spawn(thread(2, 1, 1));
    // Main waits for a forwarded call while thread 2 runs.
    t.stop_current(0, State::Forwarded);
    assert_eq!(t.pick(0, 0, |_| false), Some(2));
    assert!(t.wants_tick(0), "the answer arrives without a kick");
    // The tick before the answer: nothing else can run, thread 2 keeps the core.
    assert!(!t.preempt(0, 0, |_| false));
    assert_eq!(t.current(0), Some(2));
    // The tick after it: main runs next.
    assert!(t.preempt(0, 0, |slot| slot == 0));
    assert_eq!(t.pick(0, 0, |_| false), Some(1));
    assert_eq!(t.get(2).unwrap().state, State::Runnable);
    // A timed wait counts too; an untimed one does not.
    let mut t = Threads::new(1, 1, 16);
    t.spawn(thread(2, 1, 1));
    t.futex_enqueue(1, 0x40, u32::MAX);
    t.stop_current(0, State::Blocked { deadline: 1_000 });
    assert_eq!(t.pick(0, 0, |_| false), Some(2));
    assert!(t.wants_tick(0));
    assert!(!t.preempt(0, 999, |_| false), "before the deadline");
    assert!(t.preempt(0, 1_000, |_| false), "at the deadline");
    assert_eq!(t.pick(0, 1_000, |_| false), Some(1));
    assert_eq!(t.get(1).unwrap().wake, Wake::TimedOut);
    assert_eq!(t.futex_waiters(0x40), 0);
}

#[test]
fn preemption_is_round_robin_over_the_core() {
    // Four CPU-bound threads on one core: each slice's end gives the core to
    // the queue's head, and the preempted thread goes to the back.
    let mut t = Threads::new(1, 1, 16);
    for i in 2..=4 {
        t.spawn(thread(i, i as usize, 1));
    }
    let mut order = alloc::vec![t.current(0).unwrap()];
    for _ in 0..8 {
        assert!(t.wants_tick(0));
        assert!(t.preempt(0, 0, |_| false));
        order.push(t.pick(0, 0, |_| false).unwrap());
    }
    assert_eq!(order, [1, 2, 3, 4, 1, 2, 3, 4, 1]);
    // Three exit (1, then 2 and 3 as they come): the last one alone no longer
    // wants the timer.
    for _ in 0..3 {
        t.stop_current(0, State::Dead);
        t.pick(0, 0, |_| false).unwrap();
    }
    assert_eq!(t.current(0), Some(4));
    assert!(!t.wants_tick(0));
    assert!(!t.preempt(0, 0, |_| false));
    assert_eq!(t.current(0), Some(4), "keeps its core");
}

/// `execve` from thread 3 of four (main 1 on core 0; 2 blocked in a futex on
/// core 1; 3 running on core 2; 4 waiting for a forwarded call on core 1; a
/// vfork child 9): every other thread of the application is doomed, the
/// blocked one made runnable (it ends when it runs), the vfork child is not
/// (another process), and the caller is alone only once each is reaped.
#[test]
fn execve_dooms_the_other_threads_and_waits_until_they_are_reaped() {
    let mut t = Threads::new(3, 1, 16);
    t.spawn(thread(2, 1, 0b10));
    t.spawn(thread(3, 2, 0b100));
    t.spawn(thread(4, 3, 0b10));
    let mut child = thread(9, 4, 0b1);
    child.child_process = true;
    t.vfork_child_of(9, 1);
    t.spawn_on(child, 0);
    assert_eq!(t.pick(1, 0, |_| false), Some(2));
    t.futex_enqueue(2, 0x1000, u32::MAX);
    t.stop_current(1, State::Blocked { deadline: 0 });
    assert_eq!(t.pick(1, 0, |_| false), Some(4));
    t.stop_current(1, State::Forwarded);
    assert_eq!(t.pick(2, 0, |_| false), Some(3));

    let mut cores = t.doom_others(3).expect("the first execve");
    cores.sort_unstable();
    // Another thread's execve, at the same time, comes second: it is ending.
    assert_eq!(t.doom_others(2), None);
    assert!(t.is_doomed(2) && !t.is_doomed(3));
    assert_eq!(cores, [0, 1]);
    for tid in [2, 4] {
        assert!(t.is_doomed(tid), "{tid}");
    }
    assert!(!t.is_doomed(3) && !t.is_doomed(9));
    // Main (1) waits for its vfork child first: it ends once the child is gone.
    assert!(!t.is_doomed(1));
    assert_eq!(t.futex_waiters(0x1000), 0, "the futex wait ended");
    assert_eq!(t.get(2).unwrap().state, State::Runnable);
    assert_eq!(t.get(4).unwrap().state, State::Forwarded);
    // A thread a doomed one was creating meanwhile ends too.
    t.spawn(thread(5, 5, 0b10));
    assert!(t.is_doomed(5));

    // The caller waits (`Blocked`) until it is alone.
    t.stop_current(2, State::Blocked { deadline: 0 });
    for tid in [9, 1, 2, 4, 5] {
        t.get_mut(tid).unwrap().state = State::Dead;
        assert!(!t.alone(3));
        assert_eq!(t.exec_wake(), None, "others left");
        t.reap(tid);
        if tid == 9 {
            assert!(t.is_doomed(1), "the vfork parent ends after its child");
        }
    }
    assert!(t.alone(3));
    assert_eq!(t.exec_wake(), Some(2), "the caller runs again");
    assert_eq!(t.pick(2, 0, |_| false), Some(3));

    // It goes on as the thread-group leader, 1, on its slot and core, with
    // none of the old program's registrations.
    t.get_mut(3).unwrap().clear_child_tid = 0x7000;
    t.get_mut(3).unwrap().fs_base = 0x8000;
    t.exec_done(3, 1, 2);
    assert_eq!(
        t.get(1).map(|x| (x.clear_child_tid, x.fs_base)),
        Some((0, 0))
    );
    assert!(t.get(3).is_none());
    let me = t.get(1).unwrap();
    assert_eq!(
        (me.tid, me.slot, me.core, me.state),
        (1, 2, 2, State::Running)
    );
    assert_eq!(t.current(2), Some(1));
    assert!(!t.is_doomed(1));
    assert_eq!(t.exec_wake(), None);
    // Threads made afterwards are the new program's.
    t.spawn(thread(6, 6, 0b1));
    assert!(!t.is_doomed(6));
}
