//! The application's own `RLIMIT_AS` and `RLIMIT_NOFILE` (issue 15, point 6).
//! Forwarded calls run in the `mote` process, so a limit the application set
//! with `setrlimit`/`prlimit64` on itself would, applied by Linux, bind mote's
//! own bookkeeping too: its 64 TiB mirror reservation and the memory it maps
//! for the application (`RLIMIT_AS`), the descriptors it opens above
//! `fds::LOW_FDS` (`RLIMIT_NOFILE`). This module keeps those two limits as the
//! application's values instead, and enforces them where they are the
//! application's:
//!
//! - `getrlimit`, `setrlimit` and `prlimit64` on the application itself
//!   ([`call`]) read and write the values kept here, with Linux's checks
//!   (`EINVAL` for a soft limit above the hard one, `EPERM` for raising the
//!   hard limit without `CAP_SYS_RESOURCE` or `RLIMIT_NOFILE`'s above
//!   `fs.nr_open`, `EFAULT`). The process's real limits are only ever raised,
//!   to stay at or above the application's.
//! - `RLIMIT_NOFILE`: a forwarded call that makes descriptors ([`new_fds`])
//!   fails with `EMFILE` when the lowest free numbers are not below the soft
//!   limit, `dup2`/`dup3` onto a number at or above it with `EBADF`,
//!   `fcntl(F_DUPFD)` from one with `EINVAL` ([`before_call`],
//!   [`made_past_limit`]); a check made only while the soft limit is below the
//!   process's real one ([`NOFILE_LIMITED`]: one relaxed load on every call).
//! - `RLIMIT_AS`: libos counts the application's mappings and answers `ENOMEM`
//!   (`mote_libos::syscall::mm`); it reads the limit with `prlimit64`, which
//!   lands here.
//!
//! Limits set before `mote run` ([`adopt_at_start`]): the values are the
//! application's and the process's soft limit goes up to the hard one; a hard
//! limit below what mote needs for itself is lifted for the process when it
//! may (`CAP_SYS_RESOURCE`), and refused otherwise with a message naming the
//! limit and the fix. A program the application starts gets the application's
//! values as its real limits ([`hand_over_to_exec`]), and its `mote run` adopts
//! them in turn.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
use syscalls::Sysno;

/// `RLIMIT_NOFILE` and `RLIMIT_AS` (`include/uapi/asm-generic/resource.h`).
pub const RLIMIT_NOFILE: u64 = 7;
pub const RLIMIT_AS: u64 = 9;
/// `RLIM_INFINITY`.
pub const INFINITY: u64 = u64::MAX;

/// The descriptors mote may need for itself above `fds::LOW_FDS` (vCPUs,
/// pidfds of children, pass-through files): a hard `RLIMIT_NOFILE` below
/// this is refused at start.
pub const NOFILE_NEEDED: u64 = 1024;

/// One limit of the application's: soft and hard.
struct Limit {
    cur: AtomicU64,
    max: AtomicU64,
}

impl Limit {
    const fn new() -> Self {
        Limit {
            cur: AtomicU64::new(INFINITY),
            max: AtomicU64::new(INFINITY),
        }
    }
    fn get(&self) -> (u64, u64) {
        (
            self.cur.load(Ordering::Acquire),
            self.max.load(Ordering::Acquire),
        )
    }
    fn set(&self, (cur, max): (u64, u64)) {
        self.max.store(max, Ordering::Release);
        self.cur.store(cur, Ordering::Release);
    }
}

static AS: Limit = Limit::new();
static NOFILE: Limit = Limit::new();
/// Whether the application's soft `RLIMIT_NOFILE` is below the process's
/// real one (then descriptor-making calls are checked).
pub static NOFILE_LIMITED: AtomicBool = AtomicBool::new(false);
/// Whether [`adopt_at_start`] ran: before it (unit tests) the process's own
/// limits are the application's.
static ADOPTED: AtomicBool = AtomicBool::new(false);

fn limit_of(resource: u64) -> Option<(&'static Limit, Resource)> {
    match resource {
        RLIMIT_AS => Some((&AS, Resource::As)),
        RLIMIT_NOFILE => Some((&NOFILE, Resource::Nofile)),
        _ => None,
    }
}

fn raw(l: Rlimit) -> (u64, u64) {
    (l.current.unwrap_or(INFINITY), l.maximum.unwrap_or(INFINITY))
}

fn rlimit((cur, max): (u64, u64)) -> Rlimit {
    let opt = |v: u64| (v != INFINITY).then_some(v);
    Rlimit {
        current: opt(cur),
        maximum: opt(max),
    }
}

/// Why mote cannot run under the limits it was started with.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StartLimit {
    #[error(
        "the hard address-space limit (`ulimit -Hv`) of {0} KiB is below the {1} TiB mote \
         reserves for the application's addresses: raise it, or set only a soft limit \
         (`ulimit -Sv {0}`), which mote applies to the application"
    )]
    AddressSpace(u64, u64),
    #[error(
        "the hard descriptor limit (`ulimit -Hn`) of {0} is below the {1} descriptors mote \
         needs for its own: raise it, or set only a soft limit (`ulimit -Sn {0}`), which \
         mote applies to the application"
    )]
    Descriptors(u64, u64),
}

/// At start, before mote opens or maps anything of its own: the limits the
/// process has are the application's; the real soft limits go up to the hard
/// ones. `as_needed`: the bytes of address space mote reserves.
pub fn adopt_at_start(as_needed: u64) -> Result<(), StartLimit> {
    // A hard limit below mote's needs is lifted for the process when it may
    // (CAP_SYS_RESOURCE), and stays the application's.
    let as_now = raw(getrlimit(Resource::As));
    if as_now.1 < as_needed && setrlimit(Resource::As, rlimit((INFINITY, INFINITY))).is_err() {
        return Err(StartLimit::AddressSpace(
            as_now.1 / 1024,
            as_needed.div_ceil(1 << 40),
        ));
    }
    let nofile_now = raw(getrlimit(Resource::Nofile));
    if nofile_now.1 < NOFILE_NEEDED
        && setrlimit(Resource::Nofile, rlimit((NOFILE_NEEDED, NOFILE_NEEDED))).is_err()
    {
        return Err(StartLimit::Descriptors(nofile_now.1, NOFILE_NEEDED));
    }
    AS.set(as_now);
    NOFILE.set(nofile_now);
    for res in [Resource::As, Resource::Nofile] {
        let real = raw(getrlimit(res));
        if real.0 < real.1 {
            let _ = setrlimit(res, rlimit((real.1, real.1)));
        }
    }
    ADOPTED.store(true, Ordering::Release);
    refresh_nofile_limited();
    Ok(())
}

/// The application's soft `RLIMIT_AS` (`BootInfo::as_limit`: libos applies
/// it from the start without asking).
pub fn app_as_limit() -> u64 {
    AS.get().0
}

fn refresh_nofile_limited() {
    let real = raw(getrlimit(Resource::Nofile)).0;
    NOFILE_LIMITED.store(NOFILE.get().0 < real, Ordering::Release);
}

/// In a process about to exec the application's child program (`spawn`):
/// the application's limits become the real ones, for its `mote run` to
/// adopt (a hard limit lowered below what mote needs is then refused there).
pub fn hand_over_to_exec() {
    if !ADOPTED.load(Ordering::Acquire) {
        return;
    }
    for (l, res) in [(&AS, Resource::As), (&NOFILE, Resource::Nofile)] {
        let _ = setrlimit(res, rlimit(l.get()));
    }
}

/// The application's soft `RLIMIT_NOFILE` when it is below the process's.
fn nofile_soft() -> Option<u64> {
    NOFILE_LIMITED
        .load(Ordering::Relaxed)
        .then(|| NOFILE.get().0)
}

/// `getrlimit`, `setrlimit` or `prlimit64` of the application on itself for
/// one of the two limits kept here: the answer (`Some`), or `None` for Linux.
pub fn call(nr: u64, args: &[u64; 6]) -> Option<i64> {
    if !ADOPTED.load(Ordering::Acquire) {
        return None;
    }
    const GET: u64 = Sysno::getrlimit as u64;
    const SET: u64 = Sysno::setrlimit as u64;
    const PRLIMIT: u64 = Sysno::prlimit64 as u64;
    let (resource, new, old) = match nr {
        GET => (args[0], 0, args[1]),
        SET => (args[0], args[1], 0),
        PRLIMIT => {
            let pid = args[0] as u32 as i32;
            if pid != 0 && pid != std::process::id() as i32 {
                return None;
            }
            (args[1], args[2], args[3])
        }
        _ => return None,
    };
    let (limit, res) = limit_of(resource as u32 as u64)?;
    Some(match update(limit, res, resource as u32 as u64, new, old) {
        Ok(()) => 0,
        Err(e) => -i64::from(e),
    })
}

fn update(limit: &Limit, res: Resource, resource: u64, new: u64, old: u64) -> Result<(), i32> {
    let new = if new != 0 {
        let mut b = [0u8; 16];
        match crate::mirror::read_user(new, &mut b) {
            Ok(16) => {}
            _ => return Err(libc::EFAULT),
        }
        let word = |i: usize| u64::from_le_bytes(b[i * 8..][..8].try_into().expect("8 bytes"));
        Some((word(0), word(1)))
    } else {
        None
    };
    let before = limit.get();
    if let Some((cur, max)) = new {
        if cur > max {
            return Err(libc::EINVAL);
        }
        if max > before.1 && !may_raise_hard() {
            return Err(libc::EPERM);
        }
        if resource == RLIMIT_NOFILE && max > nr_open() {
            return Err(libc::EPERM);
        }
        // The process's real limit stays at or above the application's.
        let real = raw(getrlimit(res));
        if cur > real.0 || max > real.1 {
            let up = (cur.max(real.0), max.max(real.1));
            setrlimit(res, rlimit(up)).map_err(|e| e.raw_os_error())?;
        }
        limit.set((cur, max));
        if resource == RLIMIT_NOFILE {
            refresh_nofile_limited();
        }
    }
    if old != 0 {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&before.0.to_le_bytes());
        b[8..].copy_from_slice(&before.1.to_le_bytes());
        crate::mirror::write_user(old, &b).map_err(|_| libc::EFAULT)?;
    }
    Ok(())
}

/// Whether the process may raise a hard limit (`CAP_SYS_RESOURCE` in its
/// effective set: the application's, its credentials being the process's).
fn may_raise_hard() -> bool {
    rustix::thread::capabilities(None).is_ok_and(|c| {
        c.effective
            .contains(rustix::thread::CapabilitySet::SYS_RESOURCE)
    })
}

/// `fs.nr_open`: the highest hard `RLIMIT_NOFILE` Linux accepts.
fn nr_open() -> u64 {
    std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1 << 20)
}

/// How many descriptors call `nr` makes (at the lowest free numbers), and
/// whether it writes them to application memory at `args[ptr]` as two `int`s
/// (`pipe`, `socketpair`) instead of returning one.
fn new_fds(nr: u64, args: &[u64; 6]) -> Option<NewFds> {
    let s = Sysno::new(usize::try_from(nr).ok()?)?;
    Some(match s {
        Sysno::open
        | Sysno::openat
        | Sysno::openat2
        | Sysno::creat
        | Sysno::dup
        | Sysno::socket
        | Sysno::accept
        | Sysno::accept4
        | Sysno::epoll_create
        | Sysno::epoll_create1
        | Sysno::eventfd
        | Sysno::eventfd2
        | Sysno::timerfd_create
        | Sysno::inotify_init
        | Sysno::inotify_init1
        | Sysno::fanotify_init
        | Sysno::memfd_create
        | Sysno::memfd_secret
        | Sysno::userfaultfd
        | Sysno::pidfd_open
        | Sysno::pidfd_getfd
        | Sysno::io_uring_setup
        | Sysno::open_tree
        | Sysno::fsopen
        | Sysno::fsmount
        | Sysno::fspick
        | Sysno::open_by_handle_at
        | Sysno::mq_open => NewFds::Returned { from: 0 },
        Sysno::pipe | Sysno::pipe2 => NewFds::Pair { ptr: args[0] },
        Sysno::socketpair => NewFds::Pair { ptr: args[3] },
        Sysno::fcntl
            if args[1] == libc::F_DUPFD as u64 || args[1] == libc::F_DUPFD_CLOEXEC as u64 =>
        {
            NewFds::Returned { from: args[2] }
        }
        Sysno::dup2 | Sysno::dup3 => NewFds::Onto { fd: args[1] },
        _ => return None,
    })
}

enum NewFds {
    /// One descriptor, returned, at the lowest free number at or above `from`.
    Returned { from: u64 },
    /// Two, written as `int[2]` at `ptr`.
    Pair { ptr: u64 },
    /// Onto the number `fd` (`dup2`, `dup3`).
    Onto { fd: u64 },
}

/// Before a forwarded call, while the application's `RLIMIT_NOFILE` is below
/// the process's: Linux's answer under the application's limit when the call
/// would make a descriptor at or above it.
#[inline]
pub fn before_call(nr: u64, args: &[u64; 6]) -> Option<i64> {
    let soft = nofile_soft()?;
    let err = |e: i32| Some(-i64::from(e));
    match new_fds(nr, args)? {
        NewFds::Onto { fd } => {
            let fd = fd as u32;
            // dup2(fd, fd) is fd when it is open, whatever the limit.
            let same = nr == Sysno::dup2 as u64 && u64::from(fd) == args[0] as u32 as u64;
            (!same && u64::from(fd) >= soft).then(|| -i64::from(libc::EBADF))
        }
        NewFds::Returned { from } => {
            let from = from as u32 as i32;
            if from >= 0 && from as u64 >= soft {
                return err(libc::EINVAL);
            }
            (lowest_free(1) >= soft).then(|| -i64::from(libc::EMFILE))
        }
        NewFds::Pair { .. } => (lowest_free(2) >= soft).then(|| -i64::from(libc::EMFILE)),
    }
}

/// The highest of the `n` lowest free descriptor numbers (found by taking
/// and closing them), `u64::MAX` when none could be taken.
fn lowest_free(n: usize) -> u64 {
    let mut taken = Vec::with_capacity(n);
    for _ in 0..n {
        match std::fs::File::open("/dev/null") {
            Ok(fd) => taken.push(fd),
            Err(_) => return u64::MAX,
        }
    }
    taken
        .iter()
        .map(|fd| std::os::fd::AsRawFd::as_raw_fd(fd) as u64)
        .max()
        .unwrap_or(0)
}

/// After a forwarded call that made descriptors (`ret`): those made at or
/// above the soft limit meanwhile (another thread took the lower numbers),
/// for the caller to close and answer `EMFILE`, as the call would have
/// failed; -1 for none.
#[inline]
pub fn made_past_limit(nr: u64, args: &[u64; 6], ret: i64) -> Option<[i32; 2]> {
    let soft = nofile_soft()?;
    if ret < 0 {
        return None;
    }
    match new_fds(nr, args)? {
        NewFds::Returned { .. } if ret as u64 >= soft => Some([ret as i32, -1]),
        NewFds::Pair { ptr } => {
            let mut b = [0u8; 8];
            if !matches!(crate::mirror::read_user(ptr, &mut b), Ok(8)) {
                return None;
            }
            let a = i32::from_le_bytes(b[..4].try_into().expect("4 bytes"));
            let c = i32::from_le_bytes(b[4..].try_into().expect("4 bytes"));
            (a as u64 >= soft || c as u64 >= soft).then_some([a, c])
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_making_calls_are_known() {
        let a = [0u64; 6];
        assert!(matches!(
            new_fds(Sysno::openat as u64, &a),
            Some(NewFds::Returned { from: 0 })
        ));
        assert!(matches!(
            new_fds(Sysno::pipe2 as u64, &[77, 0, 0, 0, 0, 0]),
            Some(NewFds::Pair { ptr: 77 })
        ));
        assert!(matches!(
            new_fds(Sysno::socketpair as u64, &[1, 1, 0, 88, 0, 0]),
            Some(NewFds::Pair { ptr: 88 })
        ));
        assert!(matches!(
            new_fds(
                Sysno::fcntl as u64,
                &[3, libc::F_DUPFD_CLOEXEC as u64, 10, 0, 0, 0]
            ),
            Some(NewFds::Returned { from: 10 })
        ));
        assert!(new_fds(Sysno::fcntl as u64, &[3, libc::F_GETFD as u64, 0, 0, 0, 0]).is_none());
        assert!(new_fds(Sysno::read as u64, &a).is_none());
        assert!(new_fds(Sysno::getpid as u64, &a).is_none());
    }

    #[test]
    fn start_limits_name_the_limit_and_the_fix() {
        let e = StartLimit::AddressSpace(1024, 65).to_string();
        assert!(
            e.contains("`ulimit -Hv`") && e.contains("`ulimit -Sv 1024`"),
            "{e}"
        );
        let e = StartLimit::Descriptors(16, NOFILE_NEEDED).to_string();
        assert!(
            e.contains("`ulimit -Hn`") && e.contains("`ulimit -Sn 16`"),
            "{e}"
        );
    }

    #[test]
    fn lowest_free_takes_the_lowest_numbers_and_gives_them_back() {
        let one = lowest_free(1);
        let two = lowest_free(2);
        assert!(two > one, "{one} {two}");
    }
}
