//! Pointers and descriptors nested in a forwarded call's arguments (issue 15,
//! points 1 and 3): the buffers an `iovec` array names (`readv`, `writev`,
//! `preadv*`, `pwritev*`, `vmsplice`, `process_vm_*` on the application
//! itself or on a child of it, whose `mote` process holds its application's
//! memory in the same range), a `msghdr`'s name, buffers and control data
//! (`sendmsg`, `recvmsg`, `sendmmsg`, `recvmmsg`), and descriptors inside
//! `select` sets, `poll` arrays and `SCM_RIGHTS` messages; `ioctl`'s
//! structures are `ioctl`'s, the key calls' `keys`'s, dispatched from
//! [`check`]. `guard::outside_reach` checks direct pointers; this module
//! reads the structures (through `mirror::read_user`, so a bad pointer to the
//! structure itself is Linux's `EFAULT` to give) and answers as Linux would
//! natively, where no memory of the program's lies outside
//! `[USER_START, LIBOS_END)` and mote's descriptors are not open:
//!
//! - a nested buffer outside the range: `EFAULT`;
//! - one of mote's descriptors in a `select` set or sent with `SCM_RIGHTS`:
//!   `EBADF`; in a `poll` array: that entry's `revents` is `POLLNVAL` and it
//!   counts as ready ([`poll_around_own`]).
//!
//! The `iovec` arrays of the calls that take them directly are not only
//! checked but copied ([`pin`]), and so are `sendmsg`'s and `recvmsg`'s
//! `msghdr`s: Linux reads mote's checked copy, so
//! another thread of the application cannot swap a buffer pointer between
//! the check and Linux's read. The structures of the other calls are still
//! checked in place (docs/architecture.md, "Isolation").
//!
//! Only the calls named here pay for it (one `process_vm_readv` of the
//! structure); every other call, the null call included, goes by with one
//! `match` on its number.

use syscalls::Sysno;

use mote_abi::layout::{LIBOS_END, USER_START};

use super::reach::{half, iovec_out_of_reach, out_of_reach, read, word, TASK_SIZE_MAX, UIO_MAXIOV};
use crate::fds;
use crate::mirror::{read_user, write_user};

/// Bytes of control data looked at for `SCM_RIGHTS` (Linux's `optmem_max`
/// is about 20 KiB; a larger buffer is Linux's `ENOBUFS` to give).
const MAX_CONTROL: u64 = 64 << 10;

/// What a `msghdr` (`struct user_msghdr`, 56 bytes: name, namelen, iov,
/// iovlen, control, controllen, flags) at `va` names: `EFAULT` for a buffer out
/// of reach, `EBADF` for one of mote's descriptors sent with `SCM_RIGHTS`.
fn msghdr(va: u64, sending: bool) -> Option<i32> {
    let m = read(va, 56)?;
    let (name, namelen) = (word(&m, 0), u64::from(half(&m, 8)));
    let (iov, iovlen) = (word(&m, 16), word(&m, 24));
    let (control, controllen) = (word(&m, 32), word(&m, 40));
    if out_of_reach(name, namelen)
        || out_of_reach(control, controllen)
        || (iovlen <= UIO_MAXIOV && iovec_out_of_reach(iov, iovlen))
    {
        return Some(libc::EFAULT);
    }
    if sending && control != 0 && (16..=MAX_CONTROL).contains(&controllen) {
        let c = read(control, controllen)?;
        if sends_own_fd(&c) {
            return Some(libc::EBADF);
        }
    }
    None
}

/// Whether control data `c` (`struct cmsghdr`s: len, level, type, data,
/// each 8-byte aligned) holds an `SCM_RIGHTS` message naming one of mote's
/// descriptors.
fn sends_own_fd(c: &[u8]) -> bool {
    let mut at = 0usize;
    while at + 16 <= c.len() {
        let len = word(c, at) as usize;
        if len < 16 || at + len > c.len() {
            return false;
        }
        let (level, kind) = (half(c, at + 8), half(c, at + 12));
        if level == libc::SOL_SOCKET as u32 && kind == libc::SCM_RIGHTS as u32 {
            let own = c[at + 16..at + len]
                .chunks_exact(4)
                .any(|f| fds::is_own_fd(u64::from(half(f, 0))));
            if own {
                return true;
            }
        }
        at += len.next_multiple_of(8);
    }
    false
}

/// The answer (`-errno`) to call `nr` when a structure it points at names
/// memory or a descriptor of mote's; `None`: Linux's to run. `poll` and
/// `ppoll` are [`poll_around_own`]'s.
pub fn check(nr: u64, args: &[u64; 6]) -> Option<i64> {
    const SENDMMSG: u64 = Sysno::sendmmsg as u64;
    const RECVMMSG: u64 = Sysno::recvmmsg as u64;
    const IOCTL: u64 = Sysno::ioctl as u64;
    const SELECT: u64 = Sysno::select as u64;
    const KEYCTL: u64 = Sysno::keyctl as u64;
    const ADD_KEY: u64 = Sysno::add_key as u64;
    const PSELECT6: u64 = Sysno::pselect6 as u64;
    let err = |e: i32| Some(-i64::from(e));
    match nr {
        SENDMMSG | RECVMMSG => {
            let vlen = (args[2] as u32 as u64).min(UIO_MAXIOV);
            (0..vlen)
                .find_map(|i| msghdr(args[1] + i * 64, nr == SENDMMSG))
                .and_then(err)
        }
        IOCTL => super::ioctl::check(args[1], args[2]).and_then(err),
        KEYCTL => super::keys::keyctl(args).and_then(err),
        ADD_KEY => super::keys::add_key(args).and_then(err),
        SELECT | PSELECT6 => select_names_own(args).then(|| -i64::from(libc::EBADF)),
        _ => None,
    }
}

/// Checked private copies of the structures a call names (direct `iovec`
/// arrays; a `msghdr` with its `iovec` array and, when sending, its control
/// data), which Linux reads instead of the application's: keep it until the
/// call has returned, then [`Pinned::finish`].
#[derive(Default)]
pub struct Pinned {
    copies: Vec<Vec<u64>>,
    /// A `recvmsg`'s `msghdr`: the application's address and the copy's
    /// index, whose fields Linux wrote go back there.
    back: Option<(u64, usize)>,
}

impl Pinned {
    fn keep(&mut self, copy: Vec<u64>) -> u64 {
        let at = copy.as_ptr() as u64;
        self.copies.push(copy);
        at
    }

    /// After the call: what Linux wrote into a copied `recvmsg` header
    /// (`msg_namelen`, `msg_controllen`, `msg_flags`) goes to the
    /// application's, as Linux writes it there natively.
    pub fn finish(&self, ret: i64) {
        let Some((va, i)) = self.back.filter(|_| ret >= 0) else {
            return;
        };
        let h = &self.copies[i];
        let _ = write_user(va + 8, &(h[1] as u32).to_le_bytes());
        let _ = write_user(va + 40, &h[5].to_le_bytes());
        let _ = write_user(va + 48, &(h[6] as u32).to_le_bytes());
    }
}

/// For the calls whose structures are copied (the `readv` family,
/// `vmsplice`, `process_vm_*` on the application itself or a child,
/// `sendmsg`, `recvmsg`): check each structure and point `args` at a checked
/// copy, so another thread of the application cannot switch a pointer
/// between the check and Linux's read. `Err(-errno)`: the call's answer
/// (`EFAULT` for a buffer out of reach, `EBADF` for one of mote's
/// descriptors sent with `SCM_RIGHTS`). A structure Linux cannot read, or a
/// count it refuses, is left to Linux.
pub fn pin(nr: u64, args: &mut [u64; 6]) -> Result<Pinned, i64> {
    const READV: u64 = Sysno::readv as u64;
    const WRITEV: u64 = Sysno::writev as u64;
    const PREADV: u64 = Sysno::preadv as u64;
    const PWRITEV: u64 = Sysno::pwritev as u64;
    const PREADV2: u64 = Sysno::preadv2 as u64;
    const PWRITEV2: u64 = Sysno::pwritev2 as u64;
    const VMSPLICE: u64 = Sysno::vmsplice as u64;
    const VM_READ: u64 = Sysno::process_vm_readv as u64;
    const VM_WRITE: u64 = Sysno::process_vm_writev as u64;
    const SENDMSG: u64 = Sysno::sendmsg as u64;
    const RECVMSG: u64 = Sysno::recvmsg as u64;
    let mut pinned = Pinned::default();
    let arrays: &[(usize, usize)] = match nr {
        READV | WRITEV | PREADV | PWRITEV | PREADV2 | PWRITEV2 | VMSPLICE => &[(1, 2)],
        VM_READ | VM_WRITE => {
            // The remote side is the application's own memory when it names
            // itself, and a child's when it names a child: that child is a
            // `mote` process too, holding its application's memory in the
            // same range (another process's memory is that process's).
            let pid = args[0] as u32;
            if pid == 0 || pid == std::process::id() || is_child(pid) {
                &[(1, 2), (3, 4)]
            } else {
                &[(1, 2)]
            }
        }
        SENDMSG | RECVMSG => {
            if let Some(at) = pin_msghdr(args[1], nr == SENDMSG, &mut pinned)? {
                if nr == RECVMSG {
                    pinned.back = Some((args[1], pinned.copies.len() - 1));
                }
                args[1] = at;
            }
            return Ok(pinned);
        }
        _ => return Ok(pinned),
    };
    for &(p, c) in arrays {
        if let Some(copy) = pin_iovec(args[p], args[c])? {
            args[p] = pinned.keep(copy);
        }
    }
    Ok(pinned)
}

/// A checked copy of the `iovec` array of `cnt` entries at `iov`, checked as
/// Linux's `import_iovec` does, in order: a buffer outside the application's
/// range, or one ending above the address space, is `EFAULT`; one that starts
/// inside and runs past the range's end is cut there (Linux copies in order
/// and stops where memory ends; beyond the reservation's unmapped top lies
/// mote's). A negative length stops the walk (Linux's `EINVAL` for the call).
/// `None`: an array Linux cannot read or a count it refuses, Linux's to answer.
fn pin_iovec(iov: u64, cnt: u64) -> Result<Option<Vec<u64>>, i64> {
    if iov == 0 || cnt == 0 || cnt > UIO_MAXIOV {
        return Ok(None);
    }
    let Some(bytes) = read(iov, cnt * 16) else {
        return Ok(None);
    };
    let mut copy: Vec<u64> = bytes.chunks_exact(8).map(|w| word(w, 0)).collect();
    for seg in copy.chunks_exact_mut(2) {
        let (base, len) = (seg[0], seg[1]);
        if (len as i64) < 0 {
            break;
        }
        if len == 0 {
            continue;
        }
        let end = base.checked_add(len);
        if !(USER_START..LIBOS_END).contains(&base) || end.is_none_or(|e| e > TASK_SIZE_MAX) {
            return Err(-i64::from(libc::EFAULT));
        }
        seg[1] = len.min(LIBOS_END - base);
    }
    Ok(Some(copy))
}

/// A checked copy of the `msghdr` (`struct user_msghdr`, 56 bytes: name,
/// namelen, iov, iovlen, control, controllen, flags) at `va`, kept in
/// `pinned` with its `iovec` array and, when sending, its control data;
/// the copy's address, or `None` when Linux cannot read it.
fn pin_msghdr(va: u64, sending: bool, pinned: &mut Pinned) -> Result<Option<u64>, i64> {
    let Some(m) = read(va, 56) else {
        return Ok(None);
    };
    let mut h: Vec<u64> = m.chunks_exact(8).map(|w| word(w, 0)).collect();
    let (name, namelen) = (h[0], h[1] as u32 as u64);
    let (control, controllen) = (h[4], h[5]);
    if out_of_reach(name, namelen) || out_of_reach(control, controllen) {
        return Err(-i64::from(libc::EFAULT));
    }
    if let Some(copy) = pin_iovec(h[2], h[3])? {
        h[2] = pinned.keep(copy);
    }
    if sending && control != 0 && (16..=MAX_CONTROL).contains(&controllen) {
        if let Some(c) = read(control, controllen) {
            if sends_own_fd(&c) {
                return Err(-i64::from(libc::EBADF));
            }
            let mut copy = vec![0u64; c.len().div_ceil(8)];
            for (w, b) in copy.iter_mut().zip(c.chunks(8)) {
                let mut word = [0u8; 8];
                word[..b.len()].copy_from_slice(b);
                *w = u64::from_le_bytes(word);
            }
            h[4] = pinned.keep(copy);
        }
    }
    Ok(Some(pinned.keep(h)))
}

/// Whether `pid` is a child of the proxy's (the `mote` process of one of
/// the application's children: a fork, a spawned program), asked without
/// reaping it.
fn is_child(pid: u32) -> bool {
    use rustix::process::{waitid, Pid, WaitId, WaitIdOptions};
    let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
        return false;
    };
    let how = WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT;
    waitid(WaitId::Pid(pid), how).is_ok()
}

/// Whether a `select` names one of mote's descriptors (below `nfds`) in one
/// of its three sets (natively: not open, `EBADF`).
fn select_names_own(args: &[u64; 6]) -> bool {
    let nfds = args[0] as u32 as i32;
    if nfds <= fds::LOW_FDS {
        return false;
    }
    fds::own_fds()
        .into_iter()
        .filter(|&fd| (fd as i32) < nfds)
        .any(|fd| {
            args[1..4].iter().any(|&set| {
                let mut byte = [0u8];
                set != 0
                    && matches!(read_user(set + u64::from(fd / 8), &mut byte), Ok(1))
                    && byte[0] & (1 << (fd % 8)) != 0
            })
        })
}

/// `POLLNVAL`.
const POLLNVAL: u16 = 0x20;

/// `poll(fds, nfds, timeout)` or `ppoll(fds, nfds, tsp, sigmask, size)`
/// naming one of mote's descriptors: natively that entry is not open, its
/// `revents` is `POLLNVAL` and counts, so the call returns at once. Those
/// entries are set to -1 (ignored) for the call, made with no timeout,
/// then given back with `POLLNVAL`. `run` executes the call with the
/// arguments given. `None`: no such entry, Linux's to run as it is.
pub fn poll_around_own(nr: u64, args: &[u64; 6], run: impl Fn(&[u64; 6]) -> i64) -> Option<i64> {
    let (arr, n) = (args[0], args[1]);
    if arr == 0 || n == 0 || n > 1 << 20 {
        return None;
    }
    let b = read(arr, n * 8)?;
    let own: Vec<u64> = (0..n)
        .filter(|&i| {
            let fd = half(&b, i as usize * 8) as i32;
            fd >= 0 && fds::is_own_fd(fd as u64)
        })
        .collect();
    if own.is_empty() {
        return None;
    }
    let minus_one = (-1i32).to_le_bytes();
    for &i in &own {
        write_user(arr + i * 8, &minus_one).ok()?;
    }
    let zero = [0u64; 2];
    let mut now = *args;
    if nr == Sysno::poll as u64 {
        now[2] = 0;
    } else {
        now[2] = zero.as_ptr() as u64;
    }
    let ret = run(&now);
    for &i in &own {
        let e = &b[i as usize * 8..i as usize * 8 + 8];
        let mut back = [0u8; 8];
        back[..6].copy_from_slice(&e[..6]);
        back[6..].copy_from_slice(&POLLNVAL.to_le_bytes());
        let _ = write_user(arr + i * 8, &back);
    }
    Some(if ret < 0 { ret } else { ret + own.len() as i64 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mote_abi::layout::USER_START;

    #[test]
    fn nested_buffers_outside_the_range_are_efault() {
        let stack = [0u8; 32];
        let proxy = stack.as_ptr() as u64;
        // An iovec array (in the proxy's memory here: read_user reads it) with
        // one buffer in the application's range and one outside it.
        let iov: [u64; 4] = [USER_START, 16, proxy, 32];
        let arr = iov.as_ptr() as u64;
        let readv = Sysno::readv as u64;
        let readv_pin = |a: [u64; 6]| {
            let mut a = a;
            super::pin(readv, &mut a).map(|p| (a, p))
        };
        assert_eq!(
            readv_pin([0, arr, 2, 0, 0, 0]).err(),
            Some(-i64::from(libc::EFAULT))
        );
        // Linux reads mote's checked copy, not the application's array.
        let (a, p) = readv_pin([0, arr, 1, 0, 0, 0]).unwrap();
        assert_ne!(a[1], arr);
        assert_eq!(a[1], p.copies[0].as_ptr() as u64);
        assert_eq!(p.copies[0], [USER_START, 16]);
        // An empty buffer anywhere is fine; a count Linux refuses is Linux's.
        let empty: [u64; 2] = [proxy, 0];
        assert!(readv_pin([0, empty.as_ptr() as u64, 1, 0, 0, 0]).is_ok());
        assert_eq!(
            readv_pin([0, arr, 1025, 0, 0, 0]).unwrap().1.copies.len(),
            0
        );
        // A buffer running past the range's end is cut there, unless it ends
        // above the address space (Linux's access_ok: EFAULT).
        let long: [u64; 2] = [LIBOS_END - 8, 1 << 30];
        let (_, p) = readv_pin([0, long.as_ptr() as u64, 1, 0, 0, 0]).unwrap();
        assert_eq!(p.copies[0], [LIBOS_END - 8, 8]);
        let huge: [u64; 2] = [LIBOS_END - 8, 1 << 47];
        assert!(readv_pin([0, huge.as_ptr() as u64, 1, 0, 0, 0]).is_err());
        // A negative length is Linux's EINVAL before any copy: not judged.
        let neg: [u64; 4] = [USER_START, u64::MAX, proxy, 32];
        assert!(readv_pin([0, neg.as_ptr() as u64, 2, 0, 0, 0]).is_ok());
        // Other calls are not touched.
        let mut a = [0, arr, 2, 0, 0, 0];
        assert!(super::pin(Sysno::getppid as u64, &mut a)
            .unwrap()
            .copies
            .is_empty());
        assert_eq!(a[1], arr);
        // A msghdr whose iovec names the proxy, or whose control buffer does.
        let mut m = [0u64; 7];
        m[2] = arr;
        m[3] = 2;
        let sendmsg = Sysno::sendmsg as u64;
        let mp = m.as_ptr() as u64;
        let efault = -i64::from(libc::EFAULT);
        assert_eq!(
            super::pin(sendmsg, &mut [0, mp, 0, 0, 0, 0]).err(),
            Some(efault)
        );
        m[3] = 1;
        // Linux reads the copy: the header and its iovec array.
        let mut a = [0, m.as_ptr() as u64, 0, 0, 0, 0];
        let p = super::pin(sendmsg, &mut a).unwrap();
        assert_eq!(p.copies.len(), 2);
        assert_eq!(a[1], p.copies[1].as_ptr() as u64);
        assert_eq!(p.copies[1][2], p.copies[0].as_ptr() as u64);
        assert_eq!(p.copies[0], [USER_START, 16]);
        // recvmsg: what Linux writes into the copied header goes back.
        let recvmsg = Sysno::recvmsg as u64;
        let mut a = [0, m.as_ptr() as u64, 0, 0, 0, 0];
        let p = super::pin(recvmsg, &mut a).unwrap();
        assert_eq!(p.back, Some((m.as_ptr() as u64, 1)));
        assert_eq!(
            super::pin(recvmsg, &mut [0, mp, 0, 0, 0, 0]).map(|_| ()),
            Ok(())
        );
        m[4] = proxy;
        m[5] = 8;
        let recvmmsg = Sysno::recvmmsg as u64;
        assert_eq!(
            check(recvmmsg, &[0, m.as_ptr() as u64, 1, 0, 0, 0]),
            Some(-i64::from(libc::EFAULT))
        );
        // ioctl(TCGETS) into the proxy's stack.
        let ioctl = Sysno::ioctl as u64;
        assert_eq!(
            check(ioctl, &[0, 0x5401, proxy, 0, 0, 0]),
            Some(-i64::from(libc::EFAULT))
        );
        assert_eq!(check(ioctl, &[0, 0x5401, USER_START, 0, 0, 0]), None);
        // TCFLSH takes a value: Linux's to judge (a value that is an address
        // of mote's is taken as a pointer there: `ioctl::in_motes_memory`).
        assert_eq!(check(ioctl, &[0, 0x540b, 2, 0, 0, 0]), None);
        assert_eq!(check(Sysno::getppid as u64, &[proxy; 6]), None);
    }

    /// Regression (issue 15): `process_vm_readv`/`writev` aimed at a child
    /// (another `mote` process) read or wrote its proxy's memory through a
    /// remote iovec outside the application's range; natively EFAULT. A
    /// process that is not a child is its own.
    #[test]
    fn the_remote_side_of_process_vm_at_a_child_is_its_application_range() {
        let mine = [0u8; 16];
        let local: [u64; 2] = [USER_START, 16];
        let remote: [u64; 2] = [mine.as_ptr() as u64, 16];
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("sleep");
        let pid = u64::from(child.id());
        let vm = |pid: u64, nr: Sysno, remote: u64| {
            let mut a = [pid, local.as_ptr() as u64, 1, remote, 1, 0];
            pin(nr as u64, &mut a).map(|p| p.copies.len())
        };
        let remote = remote.as_ptr() as u64;
        let efault = Err(-i64::from(libc::EFAULT));
        assert!(is_child(child.id()));
        assert_eq!(vm(pid, Sysno::process_vm_readv, remote), efault);
        assert_eq!(vm(pid, Sysno::process_vm_writev, remote), efault);
        // Not a child: the remote side is that process's, only the local
        // array is pinned.
        assert_eq!(vm(1, Sysno::process_vm_readv, remote), Ok(1), "not a child");
        let inside: [u64; 2] = [USER_START, 16];
        assert_eq!(
            vm(pid, Sysno::process_vm_readv, inside.as_ptr() as u64),
            Ok(2)
        );
        child.kill().expect("kill");
        child.wait().expect("wait");
        assert!(!is_child(child.id()), "reaped");
    }

    #[test]
    fn own_descriptors_inside_structures_are_seen() {
        let own = 3002u32;
        fds::protect_fds([own as i32]);
        // SCM_RIGHTS with one of mote's descriptors.
        let mut c = [0u8; 24];
        c[..8].copy_from_slice(&20u64.to_le_bytes());
        c[8..12].copy_from_slice(&(libc::SOL_SOCKET as u32).to_le_bytes());
        c[12..16].copy_from_slice(&(libc::SCM_RIGHTS as u32).to_le_bytes());
        c[16..20].copy_from_slice(&own.to_le_bytes());
        assert!(sends_own_fd(&c));
        c[16..20].copy_from_slice(&5u32.to_le_bytes());
        assert!(!sends_own_fd(&c));
        // A select set with its bit.
        let mut set = [0u8; 512];
        set[own as usize / 8] |= 1 << (own % 8);
        let s = set.as_ptr() as u64;
        let select = Sysno::select as u64;
        assert_eq!(
            check(select, &[4000, s, 0, 0, 0, 0]),
            Some(-i64::from(libc::EBADF))
        );
        assert_eq!(
            check(select, &[3000, s, 0, 0, 0, 0]),
            None,
            "below nfds only"
        );
        // A poll array: the entry is POLLNVAL and counts.
        let mut pfd = [0u8; 16];
        pfd[..4].copy_from_slice(&own.to_le_bytes());
        pfd[4..6].copy_from_slice(&1u16.to_le_bytes());
        pfd[8..12].copy_from_slice(&(-1i32).to_le_bytes());
        let arr = pfd.as_mut_ptr() as u64;
        let poll = Sysno::poll as u64;
        let seen = std::cell::Cell::new(0u64);
        let r = poll_around_own(poll, &[arr, 2, 5000, 0, 0, 0], |a| {
            seen.set(a[2]);
            0
        });
        assert_eq!(r, Some(1));
        assert_eq!(seen.get(), 0, "no timeout");
        let pfd = std::hint::black_box(pfd);
        assert_eq!(half(&pfd, 0), own, "the number given back");
        assert_eq!(u16::from_le_bytes([pfd[6], pfd[7]]), POLLNVAL);
        fds::unprotect_fd(own as i32);
    }
}
