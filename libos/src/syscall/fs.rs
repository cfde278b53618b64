//! Opening files: the partition's `/proc` and `/sys` files ([`crate::procfs`]) are
//! served by libos; every other path is Linux's, forwarded unchanged.

use mote_abi::errno::Errno;
use syscalls::Sysno;

use super::exec::{read_cstr, PATH_MAX};
use super::forwarded;
use crate::platform::Platform;
use crate::process::Process;
use crate::procfs;

/// The served file an absolute `path` in application memory names, if any. A path
/// that cannot be read is left to Linux (which answers `EFAULT` or
/// `ENAMETOOLONG` itself).
fn served<P: Platform>(pr: &Process, p: &P, path: u64) -> Option<procfs::File> {
    let name = read_cstr(pr, p, path, PATH_MAX).ok()?;
    procfs::lookup(pr.pid, &name)
}

/// `open(path, flags, mode)`; `args` are the call's registers, forwarded as they
/// are when the path is Linux's.
pub fn open<P: Platform>(pr: &mut Process, p: &P, args: [u64; 6]) -> Result<usize, Errno> {
    match served(pr, p, args[0]) {
        Some(f) => procfs::open(pr, p, f, args[1]),
        None => forwarded(p.forward(Sysno::open as u64, args)),
    }
}

/// `openat(dirfd, path, flags, mode)`: an absolute path ignores `dirfd`, as in
/// Linux; a relative one is always Linux's.
pub fn openat<P: Platform>(pr: &mut Process, p: &P, args: [u64; 6]) -> Result<usize, Errno> {
    match served(pr, p, args[1]) {
        Some(f) => procfs::open(pr, p, f, args[2]),
        None => forwarded(p.forward(Sysno::openat as u64, args)),
    }
}
