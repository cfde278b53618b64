//! The offload server's tests: a server thread on slot 0 of a small guest
//! memory, driven as libos drives it.
//!
//! Allows `unsafe` for test set-up only: descriptors at fixed numbers (`dup2`,
//! `fcntl`, `close`).
#![allow(unsafe_code)]

use super::forward::{close_range_around_own, refused, REFUSED, X32_SYSCALL_BIT};
use super::*;
use crate::fds::protect_fds;
use crate::futex::futex_wake;
use crate::mirror::TEST_RESERVATION;
use mote_abi::ikc::Doorbell;
use mote_abi::maplog::{Change, KIND_MAP};
use mote_abi::trap::FaultReport;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::sync::mpsc::{channel, Receiver};
use std::time::Duration;
use syscalls::Sysno;

/// The LWK side's doorbell as the VMM implements it: futexes on the slot.
struct FutexBell;
impl Doorbell for FutexBell {
    fn notify_proxy(&self, slot: &Slot) {
        futex_wake(&slot.req_seq);
    }
    fn wait_response(&self, slot: &Slot, seen: u32) {
        // The server wakes core 0's wake_seq (waiter 1); polling is enough here.
        while slot.resp_seq.load(Ordering::Acquire) == seen {
            std::thread::sleep(Duration::from_micros(50));
        }
    }
}

struct Server {
    guest: Arc<GuestMem>,
    events: Receiver<Event>,
    thread: Option<JoinHandle<()>>,
    _mirror: Arc<Mirror>,
    _reservation: std::sync::MutexGuard<'static, ()>,
}

impl Server {
    fn start() -> Server {
        let reservation = TEST_RESERVATION.lock().unwrap_or_else(|p| p.into_inner());
        let guest = Arc::new(GuestMem::new(4 << 20).unwrap());
        let mirror = Arc::new(Mirror::reserve(&guest).unwrap());
        let (tx, events) = channel();
        SERVED[0].fetch_and(!1, Ordering::AcqRel);
        let thread = spawn(0, guest.clone(), mirror.clone(), tx, None)
            .unwrap()
            .unwrap();
        Server {
            guest,
            events,
            thread: Some(thread),
            _mirror: mirror,
            _reservation: reservation,
        }
    }
    /// Publish a request without waiting for its answer (steps 1-3 of the
    /// requester's protocol); returns its sequence number.
    fn publish(&self, op: u32, args: [u64; 6]) -> u32 {
        let slot = &self.guest.thread_slot(0);
        slot.op.store(op, Ordering::Relaxed);
        for (a, v) in slot.args.iter().zip(args) {
            a.store(v, Ordering::Relaxed);
        }
        let s = slot.req_seq.load(Ordering::Relaxed).wrapping_add(1);
        slot.req_seq.store(s, Ordering::Release);
        std::sync::atomic::fence(Ordering::SeqCst);
        if slot.proxy_waiting.load(Ordering::Relaxed) != 0 {
            futex_wake(&slot.req_seq);
        }
        s
    }
    fn call(&self, op: Op, nr: u64, args: [u64; 6]) -> i64 {
        self.guest.thread_slot(0).call(op, nr, args, &FutexBell)
    }
    fn syscall(&self, nr: Sysno, args: [u64; 6]) -> i64 {
        self.call(Op::Syscall, nr.id() as u64, args)
    }
    /// Publish a request the server will not answer (Exit, Fatal) and wait for its
    /// event and the end of the thread.
    fn finish(mut self, op: Op, args: [u64; 6]) -> Event {
        self.publish(op as u32, args);
        let ev = self
            .events
            .recv_timeout(Duration::from_secs(10))
            .expect("event");
        self.thread.take().unwrap().join().unwrap();
        ev
    }
}

/// Let the server exhaust its spin and go to sleep.
fn wait_until_asleep(slot: &Slot) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while slot.proxy_waiting.load(Ordering::Relaxed) == 0 {
        assert!(std::time::Instant::now() < deadline, "server never slept");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn forwarded_getppid_is_the_real_one() {
    let s = Server::start();
    let ppid = s.syscall(Sysno::getppid, [0; 6]);
    assert_eq!(ppid, i64::from(std::os::unix::process::parent_id()));
    assert_eq!(s.call(Op::Nop, 0, [0; 6]), 0);
    // Linux's errno comes back unchanged.
    assert_eq!(
        s.syscall(Sysno::close, [u64::MAX >> 33, 0, 0, 0, 0, 0]),
        -i64::from(libc::EBADF)
    );
    assert!(matches!(
        s.finish(Op::Exit, [42, 0, 0, 0, 0, 0]),
        Event::Exited(42)
    ));
}

#[test]
fn write_to_a_pipe_uses_the_applications_address() {
    let s = Server::start();
    let (mut reader, writer) = std::io::pipe().unwrap();
    let (va, gpa) = (0x7000_0000u64, 0x20_0000u64);
    s.guest.write(gpa + 0x10, b"through the mirror\n");
    // libos publishes the mapping, then makes the call: the server applies the
    // log before executing it.
    assert!(s.guest.maplog().push(Change {
        kind: KIND_MAP,
        va,
        len: 0x1000,
        gpa
    }));
    let n = s.syscall(
        Sysno::write,
        [writer.as_raw_fd() as u64, va + 0x10, 19, 0, 0, 0],
    );
    assert_eq!(n, 19);
    drop(writer);
    let mut got = String::new();
    reader.read_to_string(&mut got).unwrap();
    assert_eq!(got, "through the mirror\n");

    // A read lands in guest memory, seen through the KVM view.
    let (reader2, mut writer2) = std::io::pipe().unwrap();
    std::io::Write::write_all(&mut writer2, b"back").unwrap();
    let n = s.syscall(
        Sysno::read,
        [reader2.as_raw_fd() as u64, va + 0x100, 4, 0, 0, 0],
    );
    assert_eq!(n, 4);
    let mut b = [0u8; 4];
    s.guest.read(gpa + 0x100, &mut b);
    assert_eq!(&b, b"back");

    // An application address that is not mirrored is EFAULT, not a proxy crash.
    let n = s.syscall(Sysno::write, [1, 0x9000_0000, 4, 0, 0, 0]);
    assert_eq!(n, -i64::from(libc::EFAULT));
    s.finish(Op::Exit, [0; 6]);
}

#[test]
fn calls_that_would_act_on_the_proxy_are_refused() {
    let s = Server::start();
    let enosys = -i64::from(libc::ENOSYS);
    assert_eq!(s.syscall(Sysno::exit_group, [3, 0, 0, 0, 0, 0]), enosys);
    assert_eq!(s.syscall(Sysno::exit, [3, 0, 0, 0, 0, 0]), enosys);
    assert_eq!(
        s.syscall(Sysno::mmap, [0, 4096, 3, 0x22, u64::MAX, 0]),
        enosys
    );
    assert_eq!(
        s.syscall(Sysno::munmap, [0x1000_0000, 4096, 0, 0, 0, 0]),
        enosys
    );
    assert_eq!(s.syscall(Sysno::rt_sigaction, [11, 0, 0, 8, 0, 0]), enosys);
    assert_eq!(s.syscall(Sysno::clone, [0; 6]), enosys);
    assert_eq!(
        s.syscall(Sysno::arch_prctl, [0x1002, 0, 0, 0, 0, 0]),
        enosys
    );
    // The x32 alias of exit_group is refused too.
    let x32_exit = X32_SYSCALL_BIT | Sysno::exit_group.id() as u64;
    assert_eq!(s.call(Op::Syscall, x32_exit, [0; 6]), enosys);
    // An unknown op is answered, not ignored.
    assert_eq!(
        s.call(Op::Syscall, 100_000, [0; 6]),
        enosys,
        "Linux's own ENOSYS"
    );
    // SAFETY-free check through the public helpers.
    assert_eq!(refused(Sysno::getppid.id() as u64), None);
    assert_eq!(refused(Sysno::brk.id() as u64), Some(Sysno::brk));
    s.finish(Op::Exit, [0; 6]);
}

#[test]
fn the_proxys_own_descriptors_cannot_be_closed_or_replaced() {
    let s = Server::start();
    // Four descriptors at fixed numbers nothing else in the tests uses.
    let (lo, own, mid, hi) = (1000, 1001, 1002, 1003);
    let (r, _w) = std::io::pipe().unwrap();
    for fd in [lo, own, mid, hi] {
        // SAFETY: dup2 onto numbers no other part of the test process uses.
        assert_eq!(unsafe { libc::dup2(r.as_raw_fd(), fd) }, fd);
    }
    protect_fds([own]);
    let open = |fd: i32| {
        // SAFETY: F_GETFD only queries the descriptor table.
        (unsafe { libc::fcntl(fd, libc::F_GETFD) }) >= 0
    };
    let ebadf = -i64::from(libc::EBADF);
    assert_eq!(s.syscall(Sysno::close, [own as u64, 0, 0, 0, 0, 0]), ebadf);
    assert_eq!(
        s.syscall(Sysno::dup2, [lo as u64, own as u64, 0, 0, 0, 0]),
        -i64::from(libc::EBUSY)
    );
    assert_eq!(
        s.syscall(Sysno::prctl, [libc::PR_SET_SECCOMP as u64, 1, 0, 0, 0, 0]),
        -i64::from(libc::EINVAL)
    );
    // close_range over all four closes the application's three only.
    let r = s.syscall(Sysno::close_range, [lo as u64, hi as u64, 0, 0, 0, 0]);
    assert_eq!(r, 0);
    assert!(open(own));
    assert!(!open(lo) && !open(mid) && !open(hi));
    assert_eq!(
        s.syscall(Sysno::close_range, [5, 3, 0, 0, 0, 0]),
        -i64::from(libc::EINVAL)
    );
    // SAFETY: `own` is the duplicate made above; nothing else refers to it.
    unsafe { libc::close(own) };
    s.finish(Op::Exit, [0; 6]);
}

#[test]
fn close_range_splits_around_own_descriptors() {
    // Pure range arithmetic on numbers far above anything open.
    protect_fds([900_010, 900_012]);
    assert_eq!(close_range_around_own(900_010, 900_010, 0), 0);
    assert_eq!(close_range_around_own(900_009, 900_013, 0), 0);
    assert_eq!(
        close_range_around_own(u64::MAX, 1, 0),
        -i64::from(libc::EINVAL)
    );
}

#[test]
fn a_bad_log_address_is_answered_efault() {
    let s = Server::start();
    assert_eq!(s.call(Op::Nop, 0, [0; 6]), 0);
    // A log message at an address that is not mapped.
    assert_eq!(
        s.call(Op::Log, 0, [0x5000_0000, 10, 0, 0, 0, 0]),
        -i64::from(libc::EFAULT)
    );
    s.finish(Op::Exit, [0; 6]);
}

/// The runtime publishes only ops it knows: op 77 means the application wrote
/// over the slot, and the run ends naming it (it was answered ENOSYS and the
/// run went on with a damaged IKC area), also when it arrives while the server
/// sleeps.
#[test]
fn an_unknown_op_ends_the_run_naming_the_slot() {
    let mut s = Server::start();
    assert_eq!(s.call(Op::Nop, 0, [0; 6]), 0);
    wait_until_asleep(s.guest.thread_slot(0));
    s.publish(77, [0; 6]);
    let ev = s
        .events
        .recv_timeout(Duration::from_secs(10))
        .expect("event");
    s.thread.take().unwrap().join().unwrap();
    match ev {
        Event::Corrupted(what) => {
            assert!(what.starts_with("IKC request slot 0 "), "{what}");
            assert!(what.contains("op 77"), "{what}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn sleeping_server_is_woken_by_the_doorbell() {
    let s = Server::start();
    let slot = &s.guest.thread_slot(0);
    wait_until_asleep(slot);
    for _ in 0..100 {
        assert_eq!(
            s.syscall(Sysno::getppid, [0; 6]),
            i64::from(std::os::unix::process::parent_id())
        );
    }
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(
        s.syscall(Sysno::getppid, [0; 6]),
        i64::from(std::os::unix::process::parent_id())
    );
    s.finish(Op::Exit, [7, 0, 0, 0, 0, 0]);
}

#[test]
fn fatal_reports_signal_and_fault() {
    let s = Server::start();
    let page = s.guest.core_page(0);
    let report = FaultReport {
        origin: 1,
        signal: 11,
        vector: 14,
        error_code: 6,
        addr: 0xdead_b000,
        regs: core::array::from_fn(|i| i as u64),
    };
    let off = mote_abi::layout::IKC_GPA
        + mote_abi::ikc::core_page_offset(0)
        + std::mem::offset_of!(mote_abi::ikc::CorePage, fault) as u64;
    s.guest.write_plain(off, &report);
    let _ = page;
    match s.finish(Op::Fatal, [11, 1, 0, 0, 0, 0]) {
        Event::Killed {
            signal: 11,
            fault: Some(f),
        } => {
            assert_eq!(f.addr, 0xdead_b000);
            assert_eq!(f.error_code, 6);
            assert_eq!(f.regs[16], 16);
        }
        e => panic!("{e:?}"),
    }
}

#[test]
fn fatal_without_report() {
    let s = Server::start();
    assert!(matches!(
        s.finish(Op::Fatal, [6, 0, 0, 0, 0, 0]),
        Event::Killed {
            signal: 6,
            fault: None
        }
    ));
}

/// What the runtime's table does with `nr`, in a word.
fn route_kind(nr: u32) -> &'static str {
    use mote_shims::table::{route, Route};
    match route::<mote_libos::fake::FakePlatform>(nr) {
        Route::Forward => "Forward",
        Route::Refused(_) => "Refused",
        _ => "answered in the runtime",
    }
}

/// The proxy's refused list and the runtime's route table (`mote_shims::table`)
/// agree: a call the table forwards is executed here, never refused, so every refused call is one the table keeps from
/// Linux (answers locally, as a wait or in the thread layer, or refuses itself).
/// Over every number a call can have, and the x32 aliases, which both refuse.
#[test]
fn refused_list_agrees_with_the_route_table() {
    let mut wrong = Vec::new();
    for nr in 0..4096u32 {
        let Some(sysno) = refused(u64::from(nr)) else {
            continue;
        };
        if route_kind(nr) == "Forward" {
            wrong.push(format!(
                "{} ({nr}): routed Forward by the table, refused by the proxy",
                sysno.name()
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "the proxy refuses calls the runtime forwards:\n{}",
        wrong.join("\n")
    );
    for sysno in REFUSED.iter() {
        assert_ne!(
            route_kind(sysno.id() as u32),
            "Forward",
            "{} is in offload::REFUSED",
            sysno.name()
        );
    }
    // x32 numbers: the table refuses them, and the proxy never executes one.
    for sysno in [Sysno::exit_group, Sysno::getppid, Sysno::write] {
        let nr = X32_SYSCALL_BIT | sysno.id() as u64;
        assert_eq!(route_kind(nr as u32), "Refused", "x32 {}", sysno.name());
        assert_eq!(forward(nr, [0; 6]), -i64::from(libc::ENOSYS));
    }
}
