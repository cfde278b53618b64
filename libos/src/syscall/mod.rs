//! Typed handlers for the Linux system calls libos answers locally, one file per
//! family. Each returns `Result<usize, Errno>`; the shim's table turns that into the
//! value the application sees (`mote_abi::errno::to_ret`, the one place).

use mote_abi::errno::Errno;

pub mod exec;
pub mod fs;
pub mod mm;
pub mod numa;
pub mod perf;
pub mod shm;
pub mod signal;
pub mod task;
pub mod thread;
pub mod time;
pub mod wait;

/// A forwarded call's raw result as a handler result.
pub fn forwarded(r: i64) -> Result<usize, Errno> {
    if r < 0 {
        Err(crate::errno::from_result(r))
    } else {
        Ok(r as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakePlatform;
    use crate::platform::Platform as _;
    use crate::process::Process;
    use crate::signal::bit;
    use crate::uapi::signal::*;
    use mote_abi::boot::BootInfo;

    const PID: u32 = 500;

    /// A process with one read-write page at `buf` and one read-only page after it.
    fn setup() -> (Process, FakePlatform, u64) {
        let boot = BootInfo {
            pid: PID,
            pool_start: 16 << 20,
            mem_size: 64 << 20,
            ..Default::default()
        };
        let p = FakePlatform::new();
        let mut pr = Process::new(&boot);
        pr.mm.init(&p).unwrap();
        // RLIMIT_AS known (unlimited): the set-up's mmap forwards nothing.
        pr.mm.set_as_limit(Some(crate::mm::UNLIMITED));
        let buf = mm::mmap(&mut pr, &p, 0, 8192, 3, 0x22, u64::MAX, 0).unwrap() as u64;
        mm::mprotect(&mut pr, &p, buf + 4096, 4096, 1).unwrap();
        (pr, p, buf)
    }

    fn forwarded_count(p: &FakePlatform, nr: syscalls::Sysno) -> usize {
        p.forwarded_nrs()
            .iter()
            .filter(|&&n| n == nr as u64)
            .count()
    }

    /// Regression (issue 15): `setrlimit(RLIMIT_AS)` bound the proxy, not the
    /// application. libos applies the application's limit to its mappings.
    #[test]
    fn rlimit_as_limits_the_applications_mappings() {
        let (mut pr, p, _) = setup();
        let total = pr.mm.total_vm();
        assert_eq!(total, 8192);
        pr.mm.set_as_limit(Some(total + 3 * 4096));
        let a = mm::mmap(&mut pr, &p, 0, 8192, 3, 0x22, u64::MAX, 0).unwrap() as u64;
        assert_eq!(
            mm::mmap(&mut pr, &p, 0, 8192, 0, 0x22, u64::MAX, 0),
            Err(Errno::ENOMEM),
            "a PROT_NONE reservation counts too"
        );
        // Replacing a mapping in place grows nothing.
        assert!(mm::mmap(&mut pr, &p, a, 8192, 3, 0x32, u64::MAX, 0).is_ok());
        assert_eq!(
            mm::mremap(&mut pr, &p, a, 8192, 4 * 4096, 1, 0),
            Err(Errno::ENOMEM)
        );
        assert_eq!(mm::munmap(&mut pr, &p, a, 8192), Ok(0));
        let b = mm::mmap(&mut pr, &p, 0, 3 * 4096, 3, 0x22, u64::MAX, 0).unwrap() as u64;
        // A setrlimit's new soft limit is libos's from then on, with no call
        // to ask the proxy; the proxy gets libos's copy of the structure.
        let mut lim = [0u8; 16];
        lim[..8].copy_from_slice(&(1u64 << 30).to_le_bytes());
        lim[8..].copy_from_slice(&u64::MAX.to_le_bytes());
        p.write_mem(b, &lim);
        p.reply(syscalls::Sysno::setrlimit, 0);
        assert_eq!(task::setrlimit(&mut pr, &p, [9, b, 0, 0, 0, 0]), Ok(0));
        assert_eq!(pr.mm.as_limit(), Some(1 << 30));
        let given = p.st.borrow().forwarded.last().map(|f| f.1[1]);
        assert!(given.is_some_and(|a| a != b), "a copy: {given:x?}");
        // An unreadable structure is EFAULT, as Linux's first check.
        assert_eq!(
            task::setrlimit(&mut pr, &p, [9, 0, 0, 0, 0, 0]),
            Err(Errno::EFAULT)
        );
        // A refused one changes nothing; prlimit64 on itself sets it too.
        p.reply(syscalls::Sysno::setrlimit, -22);
        assert_eq!(
            task::setrlimit(&mut pr, &p, [9, b, 0, 0, 0, 0]),
            Err(Errno::EINVAL)
        );
        lim[..8].copy_from_slice(&(2u64 << 30).to_le_bytes());
        p.write_mem(b, &lim);
        p.reply(syscalls::Sysno::prlimit64, 0);
        assert_eq!(task::prlimit64(&mut pr, &p, [0, 9, b, 0, 0, 0]), Ok(0));
        assert_eq!(pr.mm.as_limit(), Some(2 << 30));
        assert_eq!(forwarded_count(&p, syscalls::Sysno::prlimit64), 1);
    }

    /// Regression (issue 15): the first growth of the address space after
    /// start forwarded one `prlimit64` to learn `RLIMIT_AS`; the proxy now
    /// gives it in `BootInfo::as_limit`.
    #[test]
    fn rlimit_as_comes_at_boot() {
        let boot = BootInfo {
            pid: PID,
            pool_start: 16 << 20,
            mem_size: 64 << 20,
            as_limit: 40 << 20,
            ..Default::default()
        };
        let p = FakePlatform::new();
        let mut pr = Process::new(&boot);
        pr.mm.init(&p).unwrap();
        assert_eq!(pr.mm.as_limit(), Some(40 << 20));
        assert!(mm::mmap(&mut pr, &p, 0, 8192, 3, 0x22, u64::MAX, 0).is_ok());
        assert_eq!(
            mm::mmap(&mut pr, &p, 0, 64 << 20, 3, 0x22, u64::MAX, 0),
            Err(Errno::ENOMEM)
        );
        assert_eq!(forwarded_count(&p, syscalls::Sysno::prlimit64), 0);
        // 0: not given, asked at the first growth as before.
        let pr = Process::new(&BootInfo {
            as_limit: 0,
            ..boot
        });
        assert_eq!(pr.mm.as_limit(), None);
    }

    #[test]
    fn clocks_come_from_the_tsc_after_one_reference_read() {
        let (mut pr, p, buf) = setup();
        pr.clock = crate::time::Clock::new(1_000_000); // 1 GHz: the fake TSC ticks 1 us a read
        p.reply(syscalls::Sysno::clock_gettime, 0);
        let read = |pr: &mut Process| {
            assert_eq!(
                time::clock_gettime(pr, &p, crate::time::id::MONOTONIC, buf),
                Ok(0)
            );
            let b = p.peek(buf, 16);
            u64::from_le_bytes(b[0..8].try_into().unwrap()) * 1_000_000_000
                + u64::from_le_bytes(b[8..16].try_into().unwrap())
        };
        let a = read(&mut pr);
        let b = read(&mut pr);
        assert!(b > a, "monotonic time advances with the TSC ({a} then {b})");
        // One reference read per kept clock, then none.
        assert_eq!(forwarded_count(&p, syscalls::Sysno::clock_gettime), 2);
        for _ in 0..10 {
            read(&mut pr);
        }
        assert_eq!(forwarded_count(&p, syscalls::Sysno::clock_gettime), 2);
        // A CPU-time clock is Linux's to answer.
        let _ = time::clock_gettime(&mut pr, &p, 2, buf);
        assert_eq!(forwarded_count(&p, syscalls::Sysno::clock_gettime), 3);
        // A read-only destination is EFAULT, as Linux.
        assert_eq!(
            time::clock_gettime(&mut pr, &p, crate::time::id::REALTIME, buf + 4096),
            Err(Errno::EFAULT)
        );
    }

    #[test]
    fn clocks_are_forwarded_without_a_known_tsc_rate() {
        let (mut pr, p, buf) = setup();
        pr.clock = crate::time::Clock::new(0);
        p.reply(syscalls::Sysno::clock_gettime, 0);
        assert_eq!(
            time::clock_gettime(&mut pr, &p, crate::time::id::MONOTONIC, buf),
            Ok(0)
        );
        assert_eq!(
            time::clock_gettime(&mut pr, &p, crate::time::id::MONOTONIC, buf),
            Ok(0)
        );
        assert_eq!(forwarded_count(&p, syscalls::Sysno::clock_gettime), 2);
    }

    #[test]
    fn rt_sigaction_reads_and_writes_kernel_sigaction() {
        let (mut pr, p, buf) = setup();
        let mut act = [0u8; 32];
        act[0..8].copy_from_slice(&0x40_1234u64.to_le_bytes()); // handler
        act[8..16].copy_from_slice(&0x0400_0000u64.to_le_bytes()); // SA_RESTORER
        act[16..24].copy_from_slice(&0x40_5678u64.to_le_bytes()); // restorer
        act[24..32].copy_from_slice(&(bit(SIGINT) | bit(SIGKILL)).to_le_bytes());
        p.poke(buf, &act);
        let oact = buf + 64;
        assert_eq!(
            signal::rt_sigaction(&mut pr, &p, SIGUSR1 as u64, buf, oact, 8),
            Ok(0)
        );
        assert_eq!(p.peek(oact, 32), [0; 32], "old action was SIG_DFL");
        assert_eq!(
            signal::rt_sigaction(&mut pr, &p, SIGUSR1 as u64, 0, oact, 8),
            Ok(0)
        );
        let mut want = act;
        want[24..32].copy_from_slice(&bit(SIGINT).to_le_bytes()); // SIGKILL dropped
        assert_eq!(p.peek(oact, 32), want);
        // Errors.
        let e = |r: Result<usize, mote_abi::errno::Errno>| r.unwrap_err();
        use mote_abi::errno::Errno::*;
        assert_eq!(e(signal::rt_sigaction(&mut pr, &p, 10, buf, 0, 4)), EINVAL);
        assert_eq!(e(signal::rt_sigaction(&mut pr, &p, 0, buf, 0, 8)), EINVAL);
        assert_eq!(e(signal::rt_sigaction(&mut pr, &p, 65, buf, 0, 8)), EINVAL);
        assert_eq!(
            e(signal::rt_sigaction(&mut pr, &p, SIGKILL as u64, buf, 0, 8)),
            EINVAL
        );
        assert_eq!(
            signal::rt_sigaction(&mut pr, &p, SIGKILL as u64, 0, oact, 8),
            Ok(0)
        );
        assert_eq!(
            e(signal::rt_sigaction(&mut pr, &p, 10, 0x1000, 0, 8)),
            EFAULT
        );
        assert_eq!(
            e(signal::rt_sigaction(&mut pr, &p, 10, 0, buf + 4096, 8)),
            EFAULT
        );
    }

    #[test]
    fn sched_getaffinity_answers_with_the_partitions_cores() {
        let (mut pr, p, buf) = setup();
        pr.ncores = 3;
        p.poke(buf, &[0xff; 16]);
        assert_eq!(
            task::sched_getaffinity(&mut pr, &p, 0, 128, buf, Some(u64::MAX)),
            Ok(8)
        );
        assert_eq!(p.peek(buf, 9), [0b111, 0, 0, 0, 0, 0, 0, 0, 0xff]);
        assert_eq!(
            task::sched_getaffinity(&mut pr, &p, PID as u64, 8, buf, Some(u64::MAX)),
            Ok(8)
        );
        // As Linux: too small or not a multiple of a long.
        assert_eq!(
            task::sched_getaffinity(&mut pr, &p, 0, 4, buf, Some(u64::MAX)),
            Err(Errno::EINVAL)
        );
        assert_eq!(
            task::sched_getaffinity(&mut pr, &p, 0, 12, buf, Some(u64::MAX)),
            Err(Errno::EINVAL)
        );
        // A read-only buffer is EFAULT.
        assert_eq!(
            task::sched_getaffinity(&mut pr, &p, 0, 8, buf + 4096, Some(u64::MAX)),
            Err(Errno::EFAULT)
        );
        assert!(p.forwarded_nrs().is_empty());
        // Another process's mask is Linux's.
        p.reply(syscalls::Sysno::sched_getaffinity, 8);
        assert_eq!(task::sched_getaffinity(&mut pr, &p, 1, 8, buf, None), Ok(8));
        assert_eq!(forwarded_count(&p, syscalls::Sysno::sched_getaffinity), 1);
    }

    #[test]
    fn rt_sigprocmask_block_unblock_setmask() {
        let (mut pr, p, buf) = setup();
        p.poke(buf, &(bit(SIGINT) | bit(SIGSTOP)).to_le_bytes());
        assert_eq!(
            signal::rt_sigprocmask(&mut pr, &p, SIG_BLOCK, buf, 0, 8),
            Ok(0)
        );
        assert_eq!(
            signal::rt_sigprocmask(&mut pr, &p, SIG_BLOCK, 0, buf + 8, 8),
            Ok(0)
        );
        assert_eq!(
            p.peek(buf + 8, 8),
            bit(SIGINT).to_le_bytes(),
            "SIGSTOP never blocked"
        );
        p.poke(buf, &bit(SIGINT).to_le_bytes());
        assert_eq!(
            signal::rt_sigprocmask(&mut pr, &p, SIG_UNBLOCK, buf, buf + 8, 8),
            Ok(0)
        );
        assert_eq!(pr.signals.mask(), 0);
        use mote_abi::errno::Errno::*;
        assert_eq!(
            signal::rt_sigprocmask(&mut pr, &p, 9, buf, 0, 8),
            Err(EINVAL)
        );
        assert_eq!(
            signal::rt_sigprocmask(&mut pr, &p, SIG_SETMASK, buf, 0, 16),
            Err(EINVAL)
        );
        assert_eq!(
            signal::rt_sigprocmask(&mut pr, &p, SIG_SETMASK, 0, buf + 4096, 8),
            Err(EFAULT)
        );
    }

    #[test]
    fn sigtimedwait_sigpending_and_pause_decide_locally() {
        let (mut pr, p, buf) = setup();
        use mote_abi::errno::Errno::*;
        let act = crate::signal::SigAction {
            handler: 0x40_1000,
            ..Default::default()
        };
        pr.signals.set_action(SIGUSR1, act).unwrap();
        pr.signals.set_mask(bit(SIGUSR1));
        signal::kill(&mut pr, &p, PID as u64, SIGUSR1 as u64).unwrap();
        assert_eq!(signal::rt_sigpending(&mut pr, &p, buf, 8), Ok(0));
        assert_eq!(p.peek(buf, 8), bit(SIGUSR1).to_le_bytes());
        // A blocked pending signal in the set is taken without a handler.
        p.poke(buf, &bit(SIGUSR1).to_le_bytes());
        let info = buf + 64;
        assert_eq!(
            signal::rt_sigtimedwait(&mut pr, &p, buf, info, 0, 8),
            Ok(SIGUSR1 as usize)
        );
        assert_eq!(p.peek(info, 4), (SIGUSR1 as i32).to_le_bytes());
        assert_eq!(pr.signals.pending(), 0);
        // Nothing pending, zero timeout: EAGAIN after one look at Linux's clock.
        p.reply(syscalls::Sysno::clock_gettime, 0);
        p.poke(buf + 32, &[0u8; 16]);
        assert_eq!(
            signal::rt_sigtimedwait(&mut pr, &p, buf, 0, buf + 32, 8),
            Err(EAGAIN)
        );
        // pause() with a handler due returns EINTR without waiting in Linux.
        pr.signals.set_mask(0);
        signal::kill(&mut pr, &p, PID as u64, SIGUSR1 as u64).unwrap();
        let before = p.forwarded_nrs().len();
        assert_eq!(signal::pause(&mut pr, &p), Err(EINTR));
        assert_eq!(p.forwarded_nrs().len(), before);
    }

    #[test]
    fn sigaltstack_round_trips_through_user_memory() {
        let (mut pr, p, buf) = setup();
        assert_eq!(signal::sigaltstack(&mut pr, &p, 0, buf), Ok(0));
        assert_eq!(p.peek(buf + 8, 4), SS_DISABLE.to_le_bytes());
        let mut ss = [0u8; 24];
        ss[0..8].copy_from_slice(&0x7000_0000u64.to_le_bytes());
        ss[16..24].copy_from_slice(&65536u64.to_le_bytes());
        p.poke(buf + 32, &ss);
        assert_eq!(signal::sigaltstack(&mut pr, &p, buf + 32, buf), Ok(0));
        assert_eq!(signal::sigaltstack(&mut pr, &p, 0, buf), Ok(0));
        assert_eq!(p.peek(buf, 24), ss);
    }

    #[test]
    fn thread_directed_signals() {
        let (mut pr, p, _) = setup();
        use mote_abi::errno::Errno::*;
        assert_eq!(signal::tgkill(&mut pr, &p, PID as u64, 77, 10), Err(ESRCH));
        assert_eq!(signal::tgkill(&mut pr, &p, 0, PID as u64, 10), Err(EINVAL));
        assert_eq!(signal::tkill(&mut pr, &p, PID as u64, 0), Ok(0));
        assert_eq!(signal::kill(&mut pr, &p, PID as u64, SIGCHLD as u64), Ok(0));
        assert!(p.forwarded_nrs().is_empty());
        p.reply(syscalls::Sysno::kill, -3);
        assert_eq!(signal::kill(&mut pr, &p, 99999, 0), Err(ESRCH));
    }
}
