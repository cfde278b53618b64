//! Opening files and listing directories: the partition's `/proc` and `/sys`
//! files ([`crate::procfs`]) are served by libos; every other path is Linux's,
//! forwarded unchanged. `open`/`openat` run as thread calls, because a thread's
//! files need the thread table (taken first, then the process). `getdents64` on
//! a task directory, whose listing — Linux's, of the `mote` process — is cut down to the
//! application's own threads (never mote's offload servers, router or vCPUs).
//!
//! A task directory is recognised by the descriptor it was opened as and the
//! device and inode Linux gave it (`Process::task_dirs`): a number closed and
//! reused for another directory has another inode, and is listed as it is.
//! A thread's `comm` opened for writing (`pthread_setname_np` of another
//! thread, `echo name > /proc/self/comm`) is recognised the same way
//! (`Process::comm_files`), and its writes rename the thread ([`comm_call`]).

use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};

use mote_abi::errno::Errno;
use syscalls::Sysno;

use super::exec::{read_cstr, PATH_MAX};
use super::forwarded;
use super::thread::{process_of, Machine};
use crate::platform::Platform;
use crate::process::CommFile;
use crate::procfs::{self, TaskState};

/// Task directories remembered at once (the oldest is forgotten beyond).
const MAX_TASK_DIRS: usize = 16;

/// The application's threads now: from the thread table (only the main thread
/// before any other started).
fn tasks<P: Platform>(m: &dyn Machine<P>, pid: u32) -> Vec<TaskState> {
    match m.threads().lock().as_ref() {
        Some(t) => t
            .own_states()
            .map(|(tid, running)| TaskState { tid, running })
            .collect(),
        None => alloc::vec![TaskState {
            tid: pid,
            running: true
        }],
    }
}

/// `open(path, flags, mode)` (`nr` = `open`) or `openat(dirfd, path, flags,
/// mode)`: a served file is libos's, every other path Linux's.
pub fn open<P: Platform>(m: &dyn Machine<P>, nr: Sysno, args: [u64; 6]) -> Result<usize, Errno> {
    let (path_arg, flags) = if nr == Sysno::open {
        (args[0], args[1])
    } else {
        (args[1], args[2])
    };
    let p = m.platform();
    let (file, task_dir, pid) = {
        let g = process_of(m);
        let pr = g.as_ref().expect("process");
        // A path that cannot be read is Linux's to answer (EFAULT, ENAMETOOLONG).
        match read_cstr(pr, p, path_arg, PATH_MAX) {
            Ok(path) => (
                procfs::lookup_thread(pr.pid, m.tid(), &path),
                procfs::is_task_dir(pr.pid, &path),
                pr.pid,
            ),
            Err(_) => (None, false, pr.pid),
        }
    };
    let Some(f) = file else {
        let fd = forwarded(p.forward(nr as u64, args))?;
        if task_dir {
            remember_task_dir(m, fd as u64);
        }
        return Ok(fd);
    };
    // The thread table before the process (lock order).
    let tasks = tasks(m, pid);
    let g = process_of(m);
    let fd = procfs::open_with(g.as_ref().expect("process"), p, f, flags, &tasks)?;
    drop(g);
    if let (procfs::File::Comm(tid), true) = (f, procfs::for_writing(flags)) {
        remember_comm_file(m, fd as u64, tid);
    }
    Ok(fd)
}

/// Descriptors on a thread's `comm` remembered at once (the oldest is
/// forgotten beyond: its writes then go to its memfd only).
const MAX_COMM_FILES: usize = 16;

/// Whether any descriptor is open for writing on a thread's `comm` (a hint kept
/// beside `Process::comm_files`, read without the process lock): while none
/// is, a forwarded `write` or `close` costs one load more, not the lock.
static COMM_FILES: AtomicBool = AtomicBool::new(false);

/// Whether [`comm_call`] may have something to do.
#[inline]
pub fn comm_files_open() -> bool {
    COMM_FILES.load(Ordering::Relaxed)
}

fn publish_comm_files(pr: &crate::process::Process) {
    COMM_FILES.store(!pr.comm_files.is_empty(), Ordering::Relaxed);
}

/// Descriptor `fd` was just opened for writing on thread `tid`'s `comm`.
fn remember_comm_file<P: Platform>(m: &dyn Machine<P>, fd: u64, tid: u32) {
    let Some((dev, ino)) = identity(m.platform(), fd) else {
        return;
    };
    let mut g = process_of(m);
    let pr = g.as_mut().expect("process");
    pr.comm_files.retain(|c| c.fd != fd);
    if pr.comm_files.len() >= MAX_COMM_FILES {
        pr.comm_files.remove(0);
    }
    pr.comm_files.push(CommFile { fd, dev, ino, tid });
    publish_comm_files(pr);
}

/// A forwarded call on a descriptor open for writing on a thread's `comm`
/// (call only while [`comm_files_open`]): `write` renames the thread as
/// Linux's `comm_write` does — the first 15 bytes of the buffer, up to a NUL,
/// whatever the offset; the whole count is the answer, `EFAULT` for a buffer
/// that cannot be read, `ESRCH` once the thread has ended — and `close`
/// forgets the descriptor (then goes to Linux). `None`: not such a call, or
/// not such a descriptor (any more: its number now names another file).
pub fn comm_call<P: Platform>(
    m: &dyn Machine<P>,
    nr: u64,
    args: [u64; 6],
) -> Option<Result<usize, Errno>> {
    let (write, close) = (nr == Sysno::write as u64, nr == Sysno::close as u64);
    if !write && !close {
        return None;
    }
    let p = m.platform();
    let fd = args[0];
    let known = {
        let mut g = process_of(m);
        let pr = g.as_mut().expect("process");
        let known = pr.comm_files.iter().find(|c| c.fd == fd).copied()?;
        if close {
            pr.comm_files.retain(|c| c.fd != fd);
            publish_comm_files(pr);
            return None;
        }
        known
    };
    if identity(p, fd) != Some((known.dev, known.ino)) {
        let mut g = process_of(m);
        let pr = g.as_mut().expect("process");
        pr.comm_files.retain(|c| c.fd != fd);
        publish_comm_files(pr);
        return None;
    }
    let (buf, count) = (args[1], args[2]);
    // The thread table before the process (lock order).
    let alive = tasks(m, 0).iter().any(|t| t.tid == known.tid);
    let mut g = process_of(m);
    let pr = g.as_mut().expect("process");
    let mut name = [0u8; 15];
    let n = (count as usize).min(name.len());
    Some(
        pr.read_user(p, buf, &mut name[..n])
            .and_then(|()| alive.then_some(()).ok_or(Errno::ESRCH))
            .map(|()| {
                pr.set_name(known.tid, &name[..n]);
                count as usize
            }),
    )
}

/// Linux's device and inode of descriptor `fd`.
fn identity<P: Platform>(p: &P, fd: u64) -> Option<(u64, u64)> {
    // `struct stat` (x86_64: 144 bytes; st_dev at 0, st_ino at 8), in runtime
    // memory, which the proxy reaches at the same address.
    let st = [0u8; 144];
    let r = p.forward(Sysno::fstat as u64, [fd, st.as_ptr() as u64, 0, 0, 0, 0]);
    let word = |i: usize| u64::from_ne_bytes(st[i..i + 8].try_into().expect("8 bytes"));
    (r == 0).then(|| (word(0), word(8)))
}

/// Descriptor `fd` was just opened on the task directory.
fn remember_task_dir<P: Platform>(m: &dyn Machine<P>, fd: u64) {
    let Some((dev, ino)) = identity(m.platform(), fd) else {
        return;
    };
    let mut g = process_of(m);
    let pr = g.as_mut().expect("process");
    pr.task_dirs.retain(|&(f, _, _)| f != fd);
    if pr.task_dirs.len() >= MAX_TASK_DIRS {
        pr.task_dirs.remove(0);
    }
    pr.task_dirs.push((fd, dev, ino));
}

/// `getdents64(fd, dirp, count)`: Linux's, but on a task directory only `.`,
/// `..` and the application's own threads are listed.
pub fn getdents64<P: Platform>(m: &dyn Machine<P>, args: [u64; 6]) -> Result<usize, Errno> {
    let p = m.platform();
    let (fd, dirp) = (args[0], args[1]);
    let known = {
        let g = process_of(m);
        let pr = g.as_ref().expect("process");
        pr.task_dirs.iter().find(|&&(f, _, _)| f == fd).copied()
    };
    let is_task_dir = match known {
        Some((_, dev, ino)) => identity(p, fd) == Some((dev, ino)),
        None => false,
    };
    if !is_task_dir {
        return forwarded(p.forward(Sysno::getdents64 as u64, args));
    }
    loop {
        let n = forwarded(p.forward(Sysno::getdents64 as u64, args))?;
        if n == 0 {
            return Ok(0);
        }
        let mut g = process_of(m);
        let pr = g.as_mut().expect("process");
        let mut buf = alloc::vec![0u8; n];
        pr.read_user(p, dirp, &mut buf)?;
        drop(g);
        let own: Vec<u32> = tasks(m, 0).iter().map(|t| t.tid).collect();
        let kept = keep_entries(&buf, |name| {
            name == b"."
                || name == b".."
                || own.iter().any(|t| name == alloc::format!("{t}").as_bytes())
        });
        // A batch of mote's threads only: read on, as an empty answer is the end.
        if kept.is_empty() {
            continue;
        }
        let g = process_of(m);
        g.as_ref().expect("process").write_user(p, dirp, &kept)?;
        return Ok(kept.len());
    }
}

/// The `linux_dirent64` records of `buf` whose name `keep` accepts, in order.
/// Layout (`include/linux/dirent.h`): `d_ino` u64, `d_off` i64, `d_reclen` u16,
/// `d_type` u8, then the NUL-terminated name, padded to `d_reclen`.
pub fn keep_entries(buf: &[u8], keep: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    const NAME: usize = 19;
    let mut out = Vec::with_capacity(buf.len());
    let mut at = 0;
    while at + NAME <= buf.len() {
        let reclen = u16::from_ne_bytes([buf[at + 16], buf[at + 17]]) as usize;
        if reclen < NAME || at + reclen > buf.len() {
            break;
        }
        let rec = &buf[at..at + reclen];
        let name = &rec[NAME..];
        let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
        if keep(name) {
            out.extend_from_slice(rec);
        }
        at += reclen;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(ino: u64, name: &str) -> Vec<u8> {
        let reclen = (19 + name.len() + 1).div_ceil(8) * 8;
        let mut r = Vec::new();
        r.extend_from_slice(&ino.to_ne_bytes());
        r.extend_from_slice(&(ino as i64).to_ne_bytes());
        r.extend_from_slice(&(reclen as u16).to_ne_bytes());
        r.push(4);
        r.extend_from_slice(name.as_bytes());
        r.resize(reclen, 0);
        r
    }

    #[test]
    fn only_the_kept_names_stay_whole_and_in_order() {
        let names = [".", "..", "100", "101", "102", "7"];
        let buf: Vec<u8> = names
            .iter()
            .enumerate()
            .flat_map(|(i, n)| record(i as u64, n))
            .collect();
        let kept = keep_entries(&buf, |n| n != b"101" && n != b"7");
        let want: Vec<u8> = [0usize, 1, 2, 4]
            .iter()
            .flat_map(|&i| record(i as u64, names[i]))
            .collect();
        assert_eq!(kept, want);
        assert!(keep_entries(&buf, |_| false).is_empty());
    }

    #[test]
    fn a_cut_record_ends_the_walk() {
        let mut buf = record(1, "100");
        let whole = buf.len();
        buf.extend_from_slice(&record(2, "200")[..10]);
        assert_eq!(keep_entries(&buf, |_| true).len(), whole);
    }
}
