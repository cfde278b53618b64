//! What a forwarded call may name besides memory: the application's descriptors
//! and tasks, never mote's. Forwarded calls run in the proxy's process, so
//! Linux alone would let them act on the proxy's own descriptors (guest memfd,
//! `/dev/kvm`, vCPUs, pidfds: `fds`) and on its threads and the hosted
//! application process. This module owns the two checks `forward` makes
//! before executing a call:
//!
//! - [`names_own_fd`]: a call whose descriptor argument ([`FD_ARGS`]) is one of
//!   mote's is answered `EBADF`, as for a number the application never opened.
//!   (`close`, `dup2`, `dup3`, `close_range` keep their own answers in
//!   `forward`.) Descriptors inside structures (`poll` arrays, `select` sets,
//!   `SCM_RIGHTS`) are `nested`'s.
//! - [`outside_reach`]: a call whose direct pointer argument ([`ptr_args`])
//!   lies outside the application's reservation (`[USER_START, LIBOS_END)`,
//!   the mirror: the only place the application has memory, natively too) is
//!   answered `EFAULT` before Linux could read or write the proxy's own stack,
//!   heap or libraries there. Nested pointers (an `iovec`'s buffers, a
//!   `msghdr`'s, `ioctl` structures) are `nested`'s (see
//!   `docs/architecture.md`, "Isolation").
//! - [`names_own_task`]: a signal, pidfd or scheduling call aimed at a thread of
//!   mote's (an offload thread not serving an application thread, the signal
//!   router, a vCPU, a waiter), at the hosted platform's application process
//!   or at its ender (`hosted::process::fork_ender`) is answered `ESRCH`, as
//!   for a task that does not exist. The proxy's pid (the application's own)
//!   and its threads' tids stay reachable.

use syscalls::Sysno;

/// Per system call number (below 512): bit `i` set when argument `i` is a
/// descriptor (a directory descriptor of an `*at` call included;
/// `AT_FDCWD` is no descriptor of anybody's).
pub const FD_ARGS: [u8; 512] = fd_args();

const fn fd_args() -> [u8; 512] {
    let mut t = [0u8; 512];
    let arg0: &[Sysno] = &[
        Sysno::read,
        Sysno::write,
        Sysno::pread64,
        Sysno::pwrite64,
        Sysno::readv,
        Sysno::writev,
        Sysno::preadv,
        Sysno::pwritev,
        Sysno::preadv2,
        Sysno::pwritev2,
        Sysno::fstat,
        Sysno::lseek,
        Sysno::ioctl,
        Sysno::fcntl,
        Sysno::flock,
        Sysno::fsync,
        Sysno::fdatasync,
        Sysno::ftruncate,
        Sysno::getdents,
        Sysno::getdents64,
        Sysno::fchdir,
        Sysno::fchmod,
        Sysno::fchown,
        Sysno::fstatfs,
        Sysno::fadvise64,
        Sysno::fallocate,
        Sysno::sync_file_range,
        Sysno::syncfs,
        Sysno::readahead,
        Sysno::fsetxattr,
        Sysno::fgetxattr,
        Sysno::flistxattr,
        Sysno::fremovexattr,
        Sysno::inotify_add_watch,
        Sysno::inotify_rm_watch,
        Sysno::epoll_wait,
        Sysno::epoll_pwait,
        Sysno::epoll_pwait2,
        Sysno::timerfd_settime,
        Sysno::timerfd_gettime,
        Sysno::accept,
        Sysno::accept4,
        Sysno::connect,
        Sysno::bind,
        Sysno::listen,
        Sysno::getsockname,
        Sysno::getpeername,
        Sysno::sendto,
        Sysno::recvfrom,
        Sysno::sendmsg,
        Sysno::recvmsg,
        Sysno::sendmmsg,
        Sysno::recvmmsg,
        Sysno::shutdown,
        Sysno::setsockopt,
        Sysno::getsockopt,
        Sysno::dup,
        Sysno::dup2,
        Sysno::dup3,
        Sysno::vmsplice,
        Sysno::pidfd_send_signal,
        Sysno::pidfd_getfd,
        Sysno::process_madvise,
        Sysno::io_uring_enter,
        Sysno::io_uring_register,
        Sysno::finit_module,
        Sysno::fanotify_mark,
        Sysno::openat,
        Sysno::openat2,
        Sysno::mkdirat,
        Sysno::mknodat,
        Sysno::fchownat,
        Sysno::futimesat,
        Sysno::newfstatat,
        Sysno::unlinkat,
        Sysno::readlinkat,
        Sysno::fchmodat,
        Sysno::fchmodat2,
        Sysno::faccessat,
        Sysno::faccessat2,
        Sysno::utimensat,
        Sysno::statx,
        Sysno::name_to_handle_at,
        Sysno::open_by_handle_at,
        Sysno::open_tree,
        Sysno::fspick,
        Sysno::fsconfig,
        Sysno::fsmount,
        Sysno::mount_setattr,
        Sysno::quotactl_fd,
        Sysno::landlock_add_rule,
        Sysno::landlock_restrict_self,
        Sysno::epoll_ctl,
        Sysno::sendfile,
        Sysno::splice,
        Sysno::tee,
        Sysno::copy_file_range,
        Sysno::renameat,
        Sysno::renameat2,
        Sysno::linkat,
        Sysno::move_mount,
    ];
    let mut i = 0;
    while i < arg0.len() {
        t[arg0[i] as usize] |= 1;
        i += 1;
    }
    // Second descriptors: the target of a copy or a rename, the watched one.
    t[Sysno::dup2 as usize] |= 1 << 1;
    t[Sysno::dup3 as usize] |= 1 << 1;
    t[Sysno::sendfile as usize] |= 1 << 1;
    t[Sysno::tee as usize] |= 1 << 1;
    t[Sysno::epoll_ctl as usize] |= 1 << 2;
    t[Sysno::splice as usize] |= 1 << 2;
    t[Sysno::copy_file_range as usize] |= 1 << 2;
    t[Sysno::renameat as usize] |= 1 << 2;
    t[Sysno::renameat2 as usize] |= 1 << 2;
    t[Sysno::linkat as usize] |= 1 << 2;
    t[Sysno::move_mount as usize] |= 1 << 2;
    t[Sysno::symlinkat as usize] |= 1 << 1;
    t[Sysno::fanotify_mark as usize] |= 1 << 3;
    t
}

/// Whether call `nr` names one of mote's descriptors as a descriptor.
/// `dup2`/`dup3` onto one are `forward`'s (`EBUSY`), so their target is
/// left out here.
#[inline]
pub fn names_own_fd(nr: u64, args: &[u64; 6]) -> bool {
    let Some(&mask) = FD_ARGS.get(nr as usize) else {
        return false;
    };
    let mask = if nr == Sysno::dup2 as u64 || nr == Sysno::dup3 as u64 {
        mask & 1
    } else {
        mask
    };
    mask != 0 && (0..6).any(|i| mask & (1 << i) != 0 && crate::fds::is_own_fd(fd_value(args[i])))
}

/// A descriptor argument as Linux reads it: an `int` (so `AT_FDCWD`, -100, is
/// no number of ours).
fn fd_value(a: u64) -> u64 {
    let fd = a as u32 as i32;
    if fd >= 0 {
        fd as u64
    } else {
        u64::MAX
    }
}

/// No length argument: the pointer's first byte is checked.
const NO_LEN: u8 = 0xff;

/// The direct pointer arguments of call `nr`: (pointer index, index of its
/// length in bytes or [`NO_LEN`]).
fn ptr_args(nr: u64) -> &'static [(u8, u8)] {
    let Some(s) = usize::try_from(nr).ok().and_then(Sysno::new) else {
        return &[];
    };
    match s {
        Sysno::read | Sysno::write | Sysno::pread64 | Sysno::pwrite64 => &[(1, 2)],
        Sysno::getdents | Sysno::getdents64 | Sysno::recvfrom | Sysno::sendto => &[(1, 2)],
        Sysno::readv | Sysno::writev | Sysno::preadv | Sysno::pwritev => &[(1, NO_LEN)],
        Sysno::preadv2 | Sysno::pwritev2 | Sysno::recvmsg | Sysno::sendmsg => &[(1, NO_LEN)],
        Sysno::recvmmsg | Sysno::sendmmsg | Sysno::fstat | Sysno::openat => &[(1, NO_LEN)],
        Sysno::bind | Sysno::connect | Sysno::accept | Sysno::accept4 => &[(1, NO_LEN)],
        Sysno::getsockname | Sysno::getpeername | Sysno::mkdirat | Sysno::unlinkat => {
            &[(1, NO_LEN)]
        }
        Sysno::open | Sysno::pipe | Sysno::pipe2 | Sysno::uname | Sysno::sysinfo => &[(0, NO_LEN)],
        Sysno::mkdir | Sysno::unlink | Sysno::rmdir | Sysno::chdir | Sysno::access => {
            &[(0, NO_LEN)]
        }
        Sysno::stat | Sysno::lstat => &[(0, NO_LEN), (1, NO_LEN)],
        Sysno::newfstatat => &[(1, NO_LEN), (2, NO_LEN)],
        Sysno::statx => &[(1, NO_LEN), (4, NO_LEN)],
        Sysno::readlink => &[(0, NO_LEN), (1, 2)],
        Sysno::readlinkat => &[(1, NO_LEN), (2, 3)],
        Sysno::getcwd | Sysno::getrandom => &[(0, 1)],
        Sysno::socketpair => &[(3, NO_LEN)],
        Sysno::setsockopt => &[(3, 4)],
        Sysno::getsockopt => &[(3, NO_LEN), (4, NO_LEN)],
        // The event read (epoll_ctl) or the array written (epoll_wait*).
        Sysno::epoll_ctl => &[(3, NO_LEN)],
        Sysno::epoll_wait | Sysno::epoll_pwait | Sysno::epoll_pwait2 => &[(1, NO_LEN)],
        _ => &[],
    }
}

/// Whether a direct pointer argument of call `nr` lies outside the
/// application's reservation: natively no memory of the program's is there,
/// and in the proxy it is mote's own. A null pointer and an empty buffer are
/// left to Linux (a null one is outside every mapping of the proxy too). A
/// buffer that starts inside and runs past the end is out of reach only where
/// Linux itself refuses it before copying ([`checks_whole_length`]); otherwise
/// its length is cut at the end ([`clamp_to_reach`]).
#[inline]
pub fn outside_reach(nr: u64, args: &[u64; 6]) -> bool {
    use mote_abi::layout::{LIBOS_END, USER_START};
    ptr_args(nr).iter().any(|&(p, l)| {
        let ptr = args[p as usize];
        let len = if l == NO_LEN { 1 } else { args[l as usize] };
        let past = |top: u64| ptr.checked_add(len).is_none_or(|e| e > top);
        ptr != 0
            && len != 0
            && (!(USER_START..LIBOS_END).contains(&ptr)
                || match checks_whole_length(nr) {
                    Whole::Reads => past(LIBOS_END),
                    Whole::AccessOk => past(super::reach::TASK_SIZE_MAX),
                    Whole::No => false,
                })
    })
}

/// What Linux does with a buffer's whole length before copying.
enum Whole {
    /// Reads all of it (`setsockopt`'s option): EFAULT past the end of memory.
    Reads,
    /// `access_ok(buf, count)` (`read`, `write`, `getdents64`, `recvfrom`, ...):
    /// EFAULT only if it ends above the address space, then copies in order.
    AccessOk,
    /// Copies only what it has (`getcwd`, `readlink`, `getrandom`).
    No,
}

#[inline]
fn checks_whole_length(nr: u64) -> Whole {
    match usize::try_from(nr).ok().and_then(Sysno::new) {
        Some(Sysno::setsockopt) => Whole::Reads,
        Some(
            Sysno::read
            | Sysno::write
            | Sysno::pread64
            | Sysno::pwrite64
            | Sysno::getdents
            | Sysno::getdents64
            | Sysno::recvfrom
            | Sysno::sendto,
        ) => Whole::AccessOk,
        _ => Whole::No,
    }
}

/// `args` with each direct buffer that starts inside the application's
/// reservation cut to end at its end. Natively `read(fd, buf, 1 << 30)` on a
/// pipe holding 4 bytes returns 4: Linux copies in order and stops where the
/// data (or memory) ends. Here the unmapped top of the reservation is where it
/// would stop, and beyond that gap lies mote's memory, which the full length
/// could reach. Buffers [`outside_reach`] refused never get here.
#[inline]
pub fn clamp_to_reach(nr: u64, mut args: [u64; 6]) -> [u64; 6] {
    use mote_abi::layout::LIBOS_END;
    for &(p, l) in ptr_args(nr).iter().filter(|&&(_, l)| l != NO_LEN) {
        let room = LIBOS_END.saturating_sub(args[p as usize]);
        if args[l as usize] > room {
            args[l as usize] = room;
        }
    }
    args
}

/// The task arguments of call `nr` (indices): a pid or tid Linux looks up.
fn task_args(nr: u64) -> &'static [usize] {
    const KILL: u64 = Sysno::kill as u64;
    const TKILL: u64 = Sysno::tkill as u64;
    const TGKILL: u64 = Sysno::tgkill as u64;
    const SIGQUEUE: u64 = Sysno::rt_sigqueueinfo as u64;
    const TGSIGQUEUE: u64 = Sysno::rt_tgsigqueueinfo as u64;
    const PIDFD_OPEN: u64 = Sysno::pidfd_open as u64;
    const SETSCHED: u64 = Sysno::sched_setscheduler as u64;
    const GETSCHED: u64 = Sysno::sched_getscheduler as u64;
    const SETPARAM: u64 = Sysno::sched_setparam as u64;
    const GETPARAM: u64 = Sysno::sched_getparam as u64;
    const SETATTR: u64 = Sysno::sched_setattr as u64;
    const GETATTR: u64 = Sysno::sched_getattr as u64;
    const RR: u64 = Sysno::sched_rr_get_interval as u64;
    const KCMP: u64 = Sysno::kcmp as u64;
    const PRLIMIT: u64 = Sysno::prlimit64 as u64;
    const VM_READ: u64 = Sysno::process_vm_readv as u64;
    const VM_WRITE: u64 = Sysno::process_vm_writev as u64;
    const SETPGID: u64 = Sysno::setpgid as u64;
    const GETPGID: u64 = Sysno::getpgid as u64;
    const GETSID: u64 = Sysno::getsid as u64;
    match nr {
        KILL | TKILL | SIGQUEUE | PIDFD_OPEN | SETSCHED | GETSCHED | SETPARAM | GETPARAM
        | SETATTR | GETATTR | RR | PRLIMIT | VM_READ | VM_WRITE | SETPGID | GETPGID | GETSID => {
            &[0]
        }
        TGKILL | TGSIGQUEUE | KCMP => &[0, 1],
        _ => &[],
    }
}

/// Whether call `nr` names a task of mote's own (see the module's text).
pub fn names_own_task(nr: u64, args: &[u64; 6]) -> bool {
    task_args(nr)
        .iter()
        .any(|&i| is_own_task(args[i] as u32 as i32))
}

/// Is `pid` (> 0) a thread of the proxy other than the application's
/// threads, or a task of the hosted platform's application process?
fn is_own_task(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    let me = std::process::id() as i32;
    if pid == me {
        return false;
    }
    if pid == crate::hosted::ender_pid() {
        return true;
    }
    let hosted = crate::lwk::hosted_pid();
    if hosted > 0
        && (pid == hosted || std::path::Path::new(&format!("/proc/{hosted}/task/{pid}")).exists())
    {
        return true;
    }
    std::path::Path::new(&format!("/proc/{me}/task/{pid}")).exists() && !super::is_app_tid(pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_arguments_are_known_for_common_calls() {
        assert_eq!(FD_ARGS[Sysno::read as usize], 1);
        assert_eq!(FD_ARGS[Sysno::ftruncate as usize], 1);
        assert_eq!(FD_ARGS[Sysno::ioctl as usize], 1);
        assert_eq!(FD_ARGS[Sysno::sendfile as usize], 0b11);
        assert_eq!(FD_ARGS[Sysno::epoll_ctl as usize], 0b101);
        assert_eq!(FD_ARGS[Sysno::symlinkat as usize], 0b10);
        assert_eq!(FD_ARGS[Sysno::getpid as usize], 0);
        assert_eq!(FD_ARGS[Sysno::close as usize], 0, "forward answers close");
    }

    #[test]
    fn own_descriptors_are_named_only_as_descriptors() {
        let own = 3001;
        crate::fds::protect_fds([own]);
        let a = |x: u64| [x, 0, 0, 0, 0, 0];
        assert!(names_own_fd(Sysno::ftruncate as u64, &a(own as u64)));
        assert!(names_own_fd(Sysno::ioctl as u64, &a(own as u64)));
        // The upper half of the register is not Linux's `int`.
        assert!(names_own_fd(Sysno::read as u64, &a(own as u64 | 1 << 32)));
        assert!(!names_own_fd(Sysno::read as u64, &a(own as u64 + 1)));
        // A length or a pid equal to the number is no descriptor.
        assert!(!names_own_fd(Sysno::getpid as u64, &a(own as u64)));
        assert!(!names_own_fd(
            Sysno::write as u64,
            &[1, 0, own as u64, 0, 0, 0]
        ));
        // The second descriptor of a copy.
        assert!(names_own_fd(
            Sysno::sendfile as u64,
            &[1, own as u64, 0, 0, 0, 0]
        ));
        // dup2 onto it is forward's EBUSY; dup2 of it is EBADF.
        assert!(!names_own_fd(
            Sysno::dup2 as u64,
            &[1, own as u64, 0, 0, 0, 0]
        ));
        assert!(names_own_fd(
            Sysno::dup2 as u64,
            &[own as u64, 5, 0, 0, 0, 0]
        ));
        assert!(!names_own_fd(Sysno::openat as u64, &a(-100i64 as u64)));
        crate::fds::unprotect_fd(own);
    }

    /// Regression (issue 15): `write(1, <proxy stack>, 32)` printed the
    /// proxy's memory; `read(fd, <proxy heap>, 64 KiB)` overwrote it.
    #[test]
    fn pointers_outside_the_applications_range_are_out_of_reach() {
        use mote_abi::layout::{LIBOS_END, USER_START};
        let stack = 0u64;
        let proxy_stack = &stack as *const u64 as u64;
        assert!(!(USER_START..LIBOS_END).contains(&proxy_stack));
        let w = Sysno::write as u64;
        assert!(outside_reach(w, &[1, proxy_stack, 32, 0, 0, 0]));
        assert!(outside_reach(
            Sysno::read as u64,
            &[3, proxy_stack, 65536, 0, 0, 0]
        ));
        // Inside: the application's, and the kernel checks the rest.
        assert!(!outside_reach(w, &[1, USER_START, 32, 0, 0, 0]));
        // Empty or null: Linux's answer (0 bytes written; EFAULT).
        assert!(!outside_reach(w, &[1, proxy_stack, 0, 0, 0, 0]));
        assert!(!outside_reach(w, &[1, 0, 32, 0, 0, 0]));
        // A buffer that starts past the end of the range.
        assert!(outside_reach(w, &[1, LIBOS_END, 32, 0, 0, 0]));
        assert!(outside_reach(w, &[1, u64::MAX - 8, 32, 0, 0, 0]));
        // One that starts inside and runs past the end is the application's
        // up to the end: its length is cut there...
        for len in [32, 1 << 30] {
            let a = [1, LIBOS_END - 8, len, 0, 0, 0];
            assert!(!outside_reach(w, &a));
            assert_eq!(clamp_to_reach(w, a), [1, LIBOS_END - 8, 8, 0, 0, 0]);
        }
        // ... unless it ends above the address space, which Linux's
        // access_ok refuses before copying (read, write), or wraps.
        assert!(outside_reach(w, &[1, LIBOS_END - 8, 1 << 47, 0, 0, 0]));
        assert!(outside_reach(w, &[1, LIBOS_END - 8, u64::MAX, 0, 0, 0]));
        let inside = [3, USER_START, 4096, 0, 0, 0];
        assert_eq!(clamp_to_reach(Sysno::read as u64, inside), inside);
        // getcwd copies only the path: no limit on its size.
        let gc = [LIBOS_END - 64, u64::MAX, 0, 0, 0, 0];
        assert!(!outside_reach(Sysno::getcwd as u64, &gc));
        assert_eq!(clamp_to_reach(Sysno::getcwd as u64, gc)[1], 64);
        // setsockopt reads its whole option: natively EFAULT past the end.
        let so = [3, 1, 2, LIBOS_END - 4, 16, 0];
        assert!(outside_reach(Sysno::setsockopt as u64, &so));
        // The second pointer of a call.
        let st = Sysno::newfstatat as u64;
        assert!(outside_reach(st, &[3, USER_START, proxy_stack, 0, 0, 0]));
        assert!(!outside_reach(Sysno::getpid as u64, &[proxy_stack; 6]));
        // Regression: epoll_ctl read its struct epoll_event from the proxy
        // (and epoll_wait would give those bytes back as the event's data).
        let ctl = Sysno::epoll_ctl as u64;
        assert!(outside_reach(ctl, &[3, 1, 0, proxy_stack, 0, 0]));
        assert!(
            !outside_reach(ctl, &[3, 2, 0, 0, 0, 0]),
            "EPOLL_CTL_DEL: none"
        );
        let wait = Sysno::epoll_wait as u64;
        assert!(outside_reach(wait, &[3, proxy_stack, 4, 0, 0, 0]));
        assert!(!outside_reach(wait, &[3, USER_START, 4, 0, 0, 0]));
    }

    #[test]
    fn the_proxy_itself_is_not_an_own_task_but_its_other_threads_are() {
        let me = std::process::id() as u64;
        assert!(!names_own_task(Sysno::kill as u64, &[me, 0, 0, 0, 0, 0]));
        let (tx, rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || {
            tx.send(rustix::thread::gettid().as_raw_nonzero().get())
                .unwrap();
            let _ = stop_rx.recv();
        });
        let tid = rx.recv().unwrap() as u64;
        assert!(names_own_task(Sysno::kill as u64, &[tid, 15, 0, 0, 0, 0]));
        assert!(names_own_task(
            Sysno::tgkill as u64,
            &[me, tid, 15, 0, 0, 0]
        ));
        assert!(!names_own_task(Sysno::kill as u64, &[1, 15, 0, 0, 0, 0]));
        assert!(!names_own_task(Sysno::kill as u64, &[0, 15, 0, 0, 0, 0]));
        assert!(!names_own_task(
            Sysno::kill as u64,
            &[-1i64 as u64, 15, 0, 0, 0, 0]
        ));
        assert!(!names_own_task(Sysno::getpid as u64, &[tid, 0, 0, 0, 0, 0]));
        stop_tx.send(()).unwrap();
        t.join().unwrap();
    }
}
