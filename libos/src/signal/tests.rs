//! Tests of the signal state (`Signals`): masks, pending sets, threads, vfork
//! children, restart rules.
use super::*;

#[test]
fn per_thread_state_follows_the_running_thread() {
    let mut s = Signals::default();
    s.switch_thread(10); // the main thread
    s.set_mask(bit(SIGUSR1));
    s.new_thread(11);
    s.new_thread(12);
    s.switch_thread(12);
    assert_eq!(
        s.mask(),
        bit(SIGUSR1),
        "a new thread starts with its creator's mask"
    );
    s.set_mask(0);
    s.switch_thread(10);
    assert_eq!(s.mask(), bit(SIGUSR1));
    // A process-directed SIGUSR1 is for the threads that do not block it.
    s.queue(SIGUSR1, crate::sigframe::SigInfo::new(SIGUSR1, 0), false);
    assert_eq!(s.takers(), [12]);
    assert!(s.queue_for(11, SIGUSR2, crate::sigframe::SigInfo::new(SIGUSR2, 0)));
    assert!(!s.queue_for(99, SIGUSR2, crate::sigframe::SigInfo::new(SIGUSR2, 0)));
    s.switch_thread(11);
    assert_eq!(s.thread.pending, bit(SIGUSR2));
    s.end_thread(11);
    s.switch_thread(12);
    assert!(!s.has_other_thread(11));
    assert_eq!(s.mask(), 0);
}

/// Regression: a vfork child (Python's `subprocess`, glibc's `posix_spawn`)
/// that set SIGUSR1 back to its default before `execve` reset its parent's
/// handler too, and took the parent's process-directed signals.
#[test]
fn a_vfork_childs_dispositions_are_its_own() {
    let mut s = Signals::default();
    s.switch_thread(10);
    let handler = SigAction {
        handler: 0x1234,
        ..Default::default()
    };
    s.set_action(SIGUSR1, handler).unwrap();
    s.set_action(
        SIGUSR2,
        SigAction {
            handler: SIG_IGN,
            ..Default::default()
        },
    )
    .unwrap();
    s.set_mask(bit(SIGINT));
    s.new_vfork_child(20);
    s.switch_thread(20);
    assert_eq!(s.mask(), bit(SIGINT), "the creator's mask");
    assert_eq!(s.action(SIGUSR1).handler, 0x1234, "a copy of the parent's");
    s.set_action(SIGUSR1, SigAction::default()).unwrap();
    s.set_action(SIGUSR2, SigAction::default()).unwrap();
    s.set_action(
        SIGHUP,
        SigAction {
            handler: SIG_IGN,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(s.ignored_handlers(), bit(SIGHUP), "what its execve keeps");
    s.switch_thread(10);
    assert_eq!(s.action(SIGUSR1).handler, 0x1234);
    assert_eq!(s.ignored_handlers(), bit(SIGUSR2));
    s.set_mask(bit(SIGUSR1));
    s.queue(SIGUSR1, crate::sigframe::SigInfo::new(SIGUSR1, 0), false);
    assert!(
        s.takers().is_empty(),
        "the child takes none of the parent's"
    );
}

/// Regression: `kill(getpid(), …)` from a thread that blocks the signal was
/// queued here only, and `sigwait` in the main thread, waiting in Linux,
/// never woke.
#[test]
fn a_signal_another_thread_waits_for_is_for_that_thread() {
    let mut s = Signals::default();
    s.switch_thread(10);
    s.set_mask(bit(SIGUSR1));
    s.new_thread(11);
    assert!(
        !s.for_another_thread(SIGUSR1),
        "both block it, nobody waits"
    );
    s.thread.waiting = bit(SIGUSR1); // 10 waits in sigwait
    s.switch_thread(11);
    assert!(s.for_another_thread(SIGUSR1));
    assert!(!s.for_another_thread(SIGUSR2), "11 takes it itself");
    assert!(proxy_routes(SIGUSR1) && !proxy_routes(SIGKILL) && !proxy_routes(NSIG));
}

#[test]
fn kill_and_stop_cannot_be_blocked_or_caught() {
    let mut s = Signals::default();
    s.change_mask(SIG_SETMASK, u64::MAX).unwrap();
    assert!(!s.blocked(SIGKILL) && !s.blocked(SIGSTOP) && s.blocked(SIGTERM));
    let act = SigAction {
        handler: 0x1234,
        ..Default::default()
    };
    assert_eq!(s.set_action(SIGKILL, act), Err(Errno::EINVAL));
    assert_eq!(s.set_action(SIGSTOP, act), Err(Errno::EINVAL));
    let mut with_mask = act;
    with_mask.mask = u64::MAX;
    s.set_action(SIGUSR1, with_mask).unwrap();
    assert_eq!(s.action(SIGUSR1).mask, !UNBLOCKABLE);
}

#[test]
fn mask_operations() {
    let mut s = Signals::default();
    assert_eq!(s.change_mask(SIG_BLOCK, bit(SIGINT) | bit(SIGTERM)), Ok(0));
    assert_eq!(
        s.change_mask(SIG_UNBLOCK, bit(SIGINT)),
        Ok(bit(SIGINT) | bit(SIGTERM))
    );
    assert_eq!(s.mask(), bit(SIGTERM));
    assert_eq!(s.change_mask(SIG_SETMASK, bit(SIGHUP)), Ok(bit(SIGTERM)));
    assert_eq!(s.change_mask(7, 0), Err(Errno::EINVAL));
    assert_eq!(s.mask(), bit(SIGHUP));
}

#[test]
fn pending_signals_come_out_when_unblocked() {
    let mut s = Signals::default();
    s.change_mask(SIG_BLOCK, bit(SIGTERM)).unwrap();
    s.make_pending(SIGTERM);
    assert_eq!(s.take_deliverable(), None);
    s.change_mask(SIG_UNBLOCK, bit(SIGTERM)).unwrap();
    assert_eq!(s.take_deliverable(), Some(SIGTERM));
    assert_eq!(s.take_deliverable(), None);
    // Ignoring a pending signal discards it.
    s.change_mask(SIG_BLOCK, bit(SIGUSR1)).unwrap();
    s.make_pending(SIGUSR1);
    s.set_action(
        SIGUSR1,
        SigAction {
            handler: SIG_IGN,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(s.pending(), 0);
}

#[test]
fn proxy_is_told_what_to_wake_for() {
    use core::sync::atomic::Ordering;
    let page: &'static SignalPage = Box::leak(Box::new(SignalPage::new()));
    let mut s = Signals::default();
    s.attach(page);
    let wake = page.wake.load(Ordering::Relaxed);
    assert_ne!(wake & bit(SIGINT), 0, "default-terminate wakes");
    assert_eq!(wake & bit(SIGCHLD), 0, "default-ignore does not");
    s.change_mask(SIG_BLOCK, bit(SIGINT)).unwrap();
    assert_eq!(page.wake.load(Ordering::Relaxed) & bit(SIGINT), 0);
    s.thread.waiting = bit(SIGINT);
    s.publish();
    assert_ne!(
        page.wake.load(Ordering::Relaxed) & bit(SIGINT),
        0,
        "sigtimedwait"
    );
    s.thread.waiting = 0;
    assert_ne!(page.ignored.load(Ordering::Relaxed) & bit(SIGCHLD), 0);
    s.set_action(
        SIGCHLD,
        SigAction {
            handler: 0x1000,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(page.ignored.load(Ordering::Relaxed) & bit(SIGCHLD), 0);
    // The proxy records SIGTERM with its siginfo; libos takes it.
    page.info[SIGTERM as usize - 1][0].store(SIGTERM as u64, Ordering::Relaxed);
    page.info[SIGTERM as usize - 1][2].store(777, Ordering::Relaxed);
    page.pending.fetch_or(bit(SIGTERM), Ordering::Release);
    page.attention.store(1, Ordering::Release);
    s.take_external();
    assert_eq!(page.pending.load(Ordering::Relaxed), 0);
    assert_eq!(s.pending(), bit(SIGTERM));
    assert_eq!(
        page.attention.load(Ordering::Relaxed),
        1,
        "deliverable: still"
    );
    let (sig, info) = s.take_from(!s.mask()).unwrap();
    assert_eq!((sig, info.signo()), (SIGTERM, SIGTERM));
    assert_eq!(&info.0[16..20], &777u32.to_le_bytes());
    s.take_external();
    assert_eq!(page.attention.load(Ordering::Relaxed), 0, "nothing left");
}

#[test]
fn sa_nocldstop_drops_a_childs_stop_and_continuation_only() {
    use core::sync::atomic::Ordering;
    let page: &'static SignalPage = Box::leak(Box::new(SignalPage::new()));
    let mut s = Signals::default();
    s.attach(page);
    let act = |flags| SigAction {
        handler: 0x1000,
        flags,
        ..Default::default()
    };
    // (si_code, SA_NOCLDSTOP set, taken)
    for (code, flag, taken) in [
        (5u64, true, false), // CLD_STOPPED
        (6, true, false),    // CLD_CONTINUED
        (1, true, true),     // CLD_EXITED
        (5, false, true),
        (6, false, true),
    ] {
        s.set_action(SIGCHLD, act(if flag { SA_NOCLDSTOP } else { 0 }))
            .unwrap();
        page.info[SIGCHLD as usize - 1][0].store(SIGCHLD as u64, Ordering::Relaxed);
        page.info[SIGCHLD as usize - 1][1].store(code, Ordering::Relaxed);
        page.pending.fetch_or(bit(SIGCHLD), Ordering::Release);
        s.take_external();
        assert_eq!(
            s.pending() == bit(SIGCHLD),
            taken,
            "code {code}, flag {flag}"
        );
        let _ = s.take_from(u64::MAX);
    }
}

#[test]
fn synchronous_signals_come_first_and_thread_before_process() {
    let mut s = Signals::default();
    s.make_pending(SIGHUP);
    s.queue(SIGSEGV, SigInfo::new(SIGSEGV, 1), true);
    s.queue(SIGUSR1, SigInfo::new(SIGUSR1, 0), true);
    assert_eq!(s.take_deliverable(), Some(SIGSEGV));
    assert_eq!(s.take_deliverable(), Some(SIGUSR1));
    assert_eq!(s.take_deliverable(), Some(SIGHUP));
}

#[test]
fn restart_rules_follow_linux() {
    let read = restartable(Sysno::read as u64);
    assert_eq!(read, Restartable::WithSaRestart);
    assert_eq!(restartable(Sysno::nanosleep as u64), Restartable::Never);
    assert_eq!(restartable(Sysno::epoll_wait as u64), Restartable::Never);
    assert_eq!(after_eintr(read, None), AfterEintr::RestartNow);
    assert_eq!(
        after_eintr(read, Some(SA_RESTART)),
        AfterEintr::RestartAfterHandler
    );
    assert_eq!(after_eintr(read, Some(0)), AfterEintr::Eintr);
    assert_eq!(
        after_eintr(Restartable::Never, Some(SA_RESTART)),
        AfterEintr::Eintr
    );
}

#[test]
fn handler_mask_and_resethand() {
    let mut s = Signals::default();
    s.set_mask(bit(SIGHUP));
    let act = SigAction {
        handler: 0x1000,
        flags: SA_RESETHAND,
        restorer: 0,
        mask: bit(SIGUSR2),
    };
    s.set_action(SIGUSR1, act).unwrap();
    assert_eq!(s.begin_handler(SIGUSR1, act), bit(SIGHUP));
    assert_eq!(s.mask(), bit(SIGHUP) | bit(SIGUSR1) | bit(SIGUSR2));
    assert_eq!(s.action(SIGUSR1).handler, SIG_DFL);
    // sigsuspend's caller's mask goes into the frame.
    s.thread.saved_mask = Some(7);
    assert_eq!(s.begin_handler(SIGUSR2, SigAction::default()), 7);
}

#[test]
fn sigaction_bytes_round_trip() {
    let a = SigAction {
        handler: 0x40_1000,
        flags: 0x0400_0004,
        restorer: 0x40_2000,
        mask: 0x8000_0001,
    };
    let b = a.to_bytes();
    assert_eq!(&b[8..16], &0x0400_0004u64.to_le_bytes());
    assert_eq!(SigAction::from_bytes(&b), a);
}

#[test]
fn altstack_rules() {
    let mut s = Signals::default();
    assert_eq!(s.altstack(), AltStack::DISABLED);
    let small = AltStack {
        sp: 0x1000,
        flags: 0,
        size: 1024,
    };
    assert_eq!(s.set_altstack(small), Err(Errno::ENOMEM));
    let bad = AltStack { flags: 77, ..small };
    assert_eq!(s.set_altstack(bad), Err(Errno::EINVAL));
    let ok = AltStack {
        size: 8192,
        ..small
    };
    s.set_altstack(ok).unwrap();
    assert_eq!(s.altstack(), ok);
    assert_eq!(AltStack::from_bytes(&ok.to_bytes()), ok);
    // Running on it: no change (EPERM), and it reports SS_ONSTACK.
    s.thread.caller_sp = 0x1800;
    assert_eq!(s.set_altstack(AltStack::DISABLED), Err(Errno::EPERM));
    assert_eq!(crate::sigframe::altstack_flags(ok, 0x1800), SS_ONSTACK);
    s.thread.caller_sp = 0x9000;
    assert_eq!(crate::sigframe::altstack_flags(ok, 0x9000), 0);
    assert_eq!(s.set_altstack(AltStack::DISABLED), Ok(()));
}
