//! `mote run --trace`: what the dispatcher records of each call when tracing is on
//! — the call, its arguments, a string argument read from application memory at
//! the call (a path, the start of a `write`'s data), its result, its route and
//! what it cost — handed to the runtime (`Runtime::record`), which puts it in the
//! running core's trace ring (`mote_abi::trace`); the proxy formats it.
//!
//! Nothing here runs when tracing is off: [`crate::table::dispatch`] tests one
//! flag and goes straight to the table.

use mote_abi::trace::{Entry, Route, Text, TextBytes, STR_MAX};
use mote_libos::platform::Platform;
use mote_libos::syscall::thread;
use syscalls::Sysno;

use crate::table::{self, Runtime};

/// Which argument of call `nr` is a string worth showing, and what kind: a path
/// (`Text::CStr`) or a buffer whose length is another argument (`Text::Buf`,
/// with that argument's index).
pub fn text_arg(nr: u32) -> Option<(usize, Text, usize)> {
    use Sysno as S;
    let s = Sysno::new(nr as usize)?;
    let path = |i| Some((i, Text::CStr, 0));
    match s {
        S::open
        | S::creat
        | S::stat
        | S::lstat
        | S::access
        | S::execve
        | S::unlink
        | S::mkdir
        | S::rmdir
        | S::chdir
        | S::readlink
        | S::rename
        | S::truncate
        | S::chmod
        | S::chown
        | S::lchown
        | S::link
        | S::symlink
        | S::statfs
        | S::mknod
        | S::chroot
        | S::getxattr
        | S::setxattr
        | S::listxattr => path(0),
        S::openat
        | S::openat2
        | S::newfstatat
        | S::statx
        | S::faccessat
        | S::faccessat2
        | S::unlinkat
        | S::mkdirat
        | S::readlinkat
        | S::renameat
        | S::renameat2
        | S::fchmodat
        | S::fchownat
        | S::utimensat
        | S::mknodat
        | S::execveat
        | S::inotify_add_watch => path(1),
        S::write | S::pwrite64 => Some((1, Text::Buf, 2)),
        _ => None,
    }
}

/// The string argument of a call, read now (before the call changes anything),
/// at most `STR_MAX` bytes, through libos's view of the address space: an address
/// the application cannot read gives `Text::Unreadable`, never a fault.
fn capture<P: Platform, R: Runtime<P>>(
    rt: &R,
    nr: u32,
    args: [u64; 6],
) -> Option<(usize, Text, TextBytes)> {
    let (arg, kind, len_arg) = text_arg(nr)?;
    let va = args[arg];
    let want = match kind {
        Text::Buf => args[len_arg].min(STR_MAX as u64) as usize,
        _ => STR_MAX + 1,
    };
    let g = thread::process_of(rt);
    let pr = g.as_ref()?;
    let p = rt.platform();
    let mut buf = [0u8; STR_MAX + 1];
    let mut got = 0;
    // Page by page, each piece checked as one access (as libos reads paths).
    while got < want {
        let at = va.wrapping_add(got as u64);
        let n = ((4096 - at % 4096) as usize).min(want - got);
        if pr.mm.check_access(at, n as u64, false).is_err() {
            return Some((arg, Text::Unreadable, TextBytes::new(&[], false)));
        }
        p.read_mem(at, &mut buf[got..got + n]);
        if kind == Text::CStr {
            if let Some(z) = buf[got..got + n].iter().position(|&b| b == 0) {
                return Some((arg, kind, TextBytes::new(&buf[..got + z], false)));
            }
        }
        got += n;
    }
    let cut = match kind {
        Text::Buf => args[len_arg] > STR_MAX as u64,
        _ => true,
    };
    Some((arg, kind, TextBytes::new(&buf[..got.min(STR_MAX)], cut)))
}

/// Calls that do not return to record after: the record goes first.
fn no_return<P: Platform, R: Runtime<P>>(rt: &R, nr: u64) -> bool {
    let n = nr as u32 as u64;
    n == Sysno::exit as u64
        || n == Sysno::exit_group as u64
        // A vfork child's successful execve ends the thread in this partition.
        || (n == Sysno::execve as u64 && rt.is_vfork_child())
}

/// The table's route of `nr`, as a trace says it.
fn route_of<P: Platform>(nr: u32) -> Route {
    match table::route::<P>(nr) {
        table::Route::Forward => Route::Forwarded,
        table::Route::Refused(_) => Route::Refused,
        _ => Route::Local,
    }
}

/// [`crate::table::dispatch`] with tracing on: the call, recorded.
pub fn traced<P: Platform, R: Runtime<P>>(rt: &R, nr: u64, args: [u64; 6]) -> u64 {
    let n = nr as u32;
    let mut e = Entry {
        tid: rt.tid(),
        nr: n,
        args,
        ret: 0,
        ticks: 0,
        route: route_of::<P>(n),
        trapped: rt.trapped(),
        no_return: false,
        text: capture(rt, n, args),
    };
    if no_return(rt, nr) {
        e.no_return = true;
        rt.record(&e);
        return table::run(rt, nr, args);
    }
    let p = rt.platform();
    let mark = rt.forward_mark();
    let t0 = p.tsc();
    let r = table::run(rt, nr, args);
    e.ticks = p.tsc().wrapping_sub(t0);
    e.ret = r;
    // A local handler that passed this very call on to Linux (openat of a path
    // libos does not serve, a clock libos does not keep): Linux answered it.
    if e.route == Route::Local {
        let (seq, last) = rt.forward_mark();
        if seq != mark.0 && last == u64::from(n) {
            e.route = Route::Forwarded;
        }
    }
    rt.record(&e);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_write_buffers_are_the_strings_shown() {
        assert_eq!(text_arg(Sysno::openat as u32), Some((1, Text::CStr, 0)));
        assert_eq!(text_arg(Sysno::open as u32), Some((0, Text::CStr, 0)));
        assert_eq!(text_arg(Sysno::write as u32), Some((1, Text::Buf, 2)));
        assert_eq!(
            text_arg(Sysno::read as u32),
            None,
            "read's data comes after"
        );
        assert_eq!(text_arg(Sysno::getpid as u32), None);
        assert_eq!(text_arg(9999), None);
    }
}
