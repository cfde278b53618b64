//! `execve` (replace the program in the same partition, ending the process's
//! other threads first) and the one `/proc` link that must describe the
//! application rather than the proxy: `/proc/self/exe`.

use alloc::vec::Vec;

use mote_abi::errno::Errno;
use syscalls::Sysno;

use super::forwarded;
use super::thread::{process_of, tsc_ns, Machine};
use crate::exec::exec_errno;
use crate::platform::Platform;
use crate::process::Process;
use crate::sched::State;

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
/// (`Process::pending_entry`) instead of returning. A thread handler: with
/// other threads it ends them first, as Linux's `de_thread` (below), which
/// cannot happen under the process lock.
pub fn execve<P: Platform>(
    m: &dyn Machine<P>,
    path: u64,
    argv: u64,
    envp: u64,
) -> Result<usize, Errno> {
    let p = m.platform();
    let (path, argv, envp, pid) = {
        let g = process_of(m);
        let pr = g.as_ref().expect("process");
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
        (path, argv, envp, pr.pid)
    };
    // What fails for ordinary reasons fails here, every thread still running.
    let x = crate::exec::prepare(p, path, argv, envp).map_err(|k| exec_errno(&k))?;
    de_thread(m, pid)?;
    let mut g = process_of(m);
    let pr = g.as_mut().expect("process");
    pr.pending_entry = Some(pr.exec_prepared(p, x));
    Ok(0)
}

/// Longest wait of an `execve` for the other threads to end between two looks
/// (each ending thread wakes it; this bounds a wake-up lost to a race).
const DE_THREAD_LOOK_NS: u64 = 10_000_000;

/// Linux's `de_thread`: every other thread of the process ends — those
/// blocked in a futex wait, a sleep or a forwarded call are interrupted, those
/// running are kicked into the runtime, and none returns to the application
/// (`sched::exec`) — and the caller waits until they are gone (and until a
/// vfork child, which shares this memory, exec'd or ended), then goes on as
/// the thread-group leader, `pid`. A signal whose default action ends the
/// process ends it meanwhile, as a fatal signal ends Linux's wait. `EAGAIN`:
/// another thread's `execve` came first and is ending this one (which never
/// returns to the application to see it).
pub(crate) fn de_thread<P: Platform>(m: &dyn Machine<P>, pid: u32) -> Result<(), Errno> {
    let p = m.platform();
    let (me, core) = (m.tid(), m.core());
    let cores = {
        let mut g = m.threads().lock();
        let Some(t) = g.as_mut() else { return Ok(()) };
        if t.alone(me) {
            None
        } else {
            Some(t.doom_others(me).ok_or(Errno::EAGAIN)?)
        }
    };
    if let Some(cores) = cores {
        m.end_threads(true);
        for c in cores {
            m.kick(c);
        }
        loop {
            let mut g = m.threads().lock();
            let t = g.as_mut().expect("threads");
            if t.alone(me) {
                break;
            }
            let deadline = tsc_ns(p.tsc(), m.tsc_khz()).saturating_add(DE_THREAD_LOOK_NS);
            t.stop_current(core, State::Blocked { deadline });
            m.reschedule(g);
            if let Some(pr) = process_of(m).as_mut() {
                pr.deliver_pending(p);
            }
        }
        m.end_threads(false);
    }
    // The thread table before the process (lock order); the process's own
    // state is switched to this thread's under its old id first.
    let mut g = m.threads().lock();
    if let Some(t) = g.as_mut() {
        t.exec_done(me, pid, core);
    }
    if let Some(pr) = m.process().lock().as_mut() {
        pr.de_threaded(me);
    }
    drop(g);
    m.became(pid);
    Ok(())
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
