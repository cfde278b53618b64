//! `execve` (replace the program in the same partition) and the one `/proc` link
//! that must describe the application rather than the proxy: `/proc/self/exe`.

use alloc::vec::Vec;

use mote_abi::errno::Errno;
use syscalls::Sysno;

use super::forwarded;
use crate::exec::exec_errno;
use crate::platform::Platform;
use crate::process::Process;

/// Longest path (`PATH_MAX`).
pub(crate) const PATH_MAX: usize = 4096;
/// Most bytes of arguments and environment (`ARG_MAX` as Linux computes it for an
/// 8 MiB stack: a quarter of it).
const ARG_MAX: usize = 2 << 20;

/// A NUL-terminated string of at most `max` bytes from application memory.
pub(crate) fn read_cstr<P: Platform>(
    pr: &Process,
    p: &P,
    va: u64,
    max: usize,
) -> Result<Vec<u8>, Errno> {
    let mut out = Vec::new();
    let mut at = va;
    loop {
        // Up to the end of the page, so each piece is checked as one access.
        let n = (4096 - (at % 4096)).min(256) as usize;
        pr.mm.check_access(at, n as u64, false)?;
        let mut chunk = [0u8; 256];
        p.read_mem(at, &mut chunk[..n]);
        if let Some(z) = chunk[..n].iter().position(|&b| b == 0) {
            out.extend_from_slice(&chunk[..z]);
            return Ok(out);
        }
        out.extend_from_slice(&chunk[..n]);
        if out.len() > max {
            return Err(Errno::E2BIG);
        }
        at += n as u64;
    }
}

/// A NULL-terminated array of string pointers (argv, envp); NULL itself is empty.
fn read_strv<P: Platform>(
    pr: &Process,
    p: &P,
    va: u64,
    total: &mut usize,
) -> Result<Vec<Vec<u8>>, Errno> {
    let mut v = Vec::new();
    if va == 0 {
        return Ok(v);
    }
    for i in 0.. {
        let slot = va + 8 * i;
        pr.mm.check_access(slot, 8, false)?;
        let mut b = [0u8; 8];
        p.read_mem(slot, &mut b);
        let ptr = u64::from_le_bytes(b);
        if ptr == 0 {
            break;
        }
        let s = read_cstr(pr, p, ptr, ARG_MAX)?;
        *total += s.len() + 1 + 8;
        if *total > ARG_MAX {
            return Err(Errno::E2BIG);
        }
        v.push(s);
    }
    Ok(v)
}

/// `execve(path, argv, envp)`. On success the shim enters the new program
/// (`Process::pending_entry`) instead of returning.
pub fn execve<P: Platform>(
    pr: &mut Process,
    p: &P,
    path: u64,
    argv: u64,
    envp: u64,
) -> Result<usize, Errno> {
    let others = pr.thread_count() - 1;
    if others > 0 {
        // Linux ends the other threads first (`de_thread`); libos cannot yet
        // stop threads running on other cores or blocked in Linux, and loading
        // the new program under them would crash them. Refused visibly instead.
        pr.log_once(p, Sysno::execve as u64, || {
            alloc::format!(
                "execve with {others} other thread(s): ending them first is not built yet; returning ENOSYS"
            )
        });
        return Err(Errno::ENOSYS);
    }
    let mut path = read_cstr(pr, p, path, PATH_MAX)?;
    if path.is_empty() {
        return Err(Errno::ENOENT);
    }
    // Linux would resolve the link for the proxy (the `mote` binary): the
    // application's own program is what it means.
    if is_self_exe(pr, &path) && !pr.exe.is_empty() {
        path = pr.exe.clone();
    }
    let mut total = 0;
    let argv = read_strv(pr, p, argv, &mut total)?;
    let envp = read_strv(pr, p, envp, &mut total)?;
    let entry = pr.execve(p, path, argv, envp).map_err(|k| exec_errno(&k))?;
    pr.pending_entry = Some(entry);
    Ok(0)
}

/// The application's program when the path at `va` names this process's
/// executable link (`/proc/self/exe`) and the program is known.
pub(crate) fn self_exe<P: Platform>(pr: &Process, p: &P, va: u64) -> Option<Vec<u8>> {
    let path = read_cstr(pr, p, va, PATH_MAX).ok()?;
    (is_self_exe(pr, &path) && !pr.exe.is_empty()).then(|| pr.exe.clone())
}

/// Whether `path` names this process's executable link.
fn is_self_exe(pr: &Process, path: &[u8]) -> bool {
    let Some(rest) = path.strip_prefix(b"/proc/") else {
        return false;
    };
    let Some(who) = rest.strip_suffix(b"/exe") else {
        return false;
    };
    who == b"self" || who == b"thread-self" || who == alloc::format!("{}", pr.pid).as_bytes()
}

/// `readlinkat(dirfd, path, buf, size)`: `/proc/self/exe` is the application's
/// program, not the proxy's; everything else is Linux's.
pub fn readlinkat<P: Platform>(
    pr: &mut Process,
    p: &P,
    dirfd: u64,
    path: u64,
    buf: u64,
    size: u64,
) -> Result<usize, Errno> {
    let name = read_cstr(pr, p, path, PATH_MAX)?;
    if !is_self_exe(pr, &name) || pr.exe.is_empty() {
        return forwarded(p.forward(Sysno::readlinkat as u64, [dirfd, path, buf, size, 0, 0]));
    }
    if (size as i64) <= 0 {
        return Err(Errno::EINVAL);
    }
    let n = pr.exe.len().min(size as usize);
    pr.mm.check_access(buf, n as u64, true)?;
    p.write_mem(buf, &pr.exe[..n]);
    Ok(n)
}
