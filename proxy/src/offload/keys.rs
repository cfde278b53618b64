//! The kernel key calls' buffers, strings, iovecs and parameter structures
//! (issue 15, point 1): `add_key`'s type, description and payload, and every
//! `keyctl` operation's (`security/keys/keyctl.c`,
//! `include/uapi/linux/keyctl.h`). Each pointer is checked as `nested` checks
//! buffers (outside `[USER_START, LIBOS_END)`: `EFAULT`, as natively where the
//! application has nothing there); a string by its first byte (one that starts
//! inside the range and runs on meets the reservation's inaccessible top
//! before any memory of mote's). `KEYCTL_WATCH_KEY`'s descriptor is checked
//! as a descriptor argument (mote's: `EBADF`). An operation number past
//! `KEYCTL_WATCH_KEY` (32), which no Linux of this ABI knows, is refused with
//! `EOPNOTSUPP`, Linux's own answer to an unknown operation, rather than passed
//! on unchecked.

use super::reach::{half, iovec_out_of_reach, out_of_reach, read, word};

/// A string argument (`NULL` is Linux's to judge).
fn string(p: u64) -> bool {
    out_of_reach(p, 1)
}

/// A buffer of `len` bytes at `p`: judged by its first page. Linux copies at
/// most the key's data into a read buffer, however long the buffer says it
/// is (so a long one is no `EFAULT` natively), and a buffer that starts in
/// the range meets its inaccessible top before any memory of mote's.
fn buffer(p: u64, len: u64) -> bool {
    out_of_reach(p, len.min(4096))
}

/// `add_key(type, description, payload, plen, keyring)`: the errno when one
/// of its pointers is out of reach.
pub fn add_key(a: &[u64; 6]) -> Option<i32> {
    // Linux refuses a payload over 1 MiB - 1 first (EINVAL).
    let plen = a[3];
    let bad = string(a[0]) || string(a[1]) || (plen < 1 << 20 && buffer(a[2], plen));
    bad.then_some(libc::EFAULT)
}

/// `keyctl(option, arg2, arg3, arg4, arg5)`: the errno when what the
/// operation names is out of reach (or mote's descriptor), or the operation
/// is unknown.
pub fn keyctl(a: &[u64; 6]) -> Option<i32> {
    let efault = |bad: bool| bad.then_some(libc::EFAULT);
    match a[0] as u32 as i32 {
        // GET_KEYRING_ID, REVOKE, CHOWN, SETPERM, CLEAR, LINK, UNLINK, NEGATE,
        // SET_REQKEY_KEYRING, SET_TIMEOUT, ASSUME_AUTHORITY, SESSION_TO_PARENT,
        // REJECT, INVALIDATE, GET_PERSISTENT, MOVE: numbers only.
        0 | 3 | 4 | 5 | 7 | 8 | 9 | 13 | 14 | 15 | 16 | 18 | 19 | 21 | 22 | 30 => None,
        // JOIN_SESSION_KEYRING(name).
        1 => efault(string(a[1])),
        // UPDATE(id, payload, plen), DESCRIBE/READ/GET_SECURITY(id, buf, len),
        // INSTANTIATE(id, payload, plen, ring).
        2 | 6 | 11 | 12 | 17 => efault(buffer(a[2], a[3])),
        // SEARCH(ring, type, description, dest), RESTRICT_KEYRING(ring, type,
        // restriction).
        10 | 24 => efault(string(a[2]) || string(a[3])),
        // INSTANTIATE_IOV(id, iov, ioc, ring).
        20 => efault(buffer(a[2], a[3].saturating_mul(16)) || iovec_out_of_reach(a[2], a[3])),
        23 => dh_compute(a),
        // PKEY_QUERY(id, reserved, info, struct keyctl_pkey_query *).
        25 => efault(string(a[3]) || out_of_reach(a[4], 56)),
        26..=29 => pkey_op(a),
        // CAPABILITIES(buf, len).
        31 => efault(buffer(a[1], a[2])),
        // WATCH_KEY(id, watch_queue_fd, watch_id).
        32 => {
            let fd = a[2] as u32 as i32;
            (fd >= 0 && crate::fds::is_own_fd(fd as u64)).then_some(libc::EBADF)
        }
        _ => {
            crate::note!(
                "mote: refused keyctl operation {} (unknown: its arguments cannot be checked)",
                a[0] as u32 as i32
            );
            Some(libc::EOPNOTSUPP)
        }
    }
}

/// `KEYCTL_DH_COMPUTE(struct keyctl_dh_params *, buffer, buflen, struct
/// keyctl_kdf_params *)`: the 12-byte parameters, the output buffer, and
/// the KDF's (56 bytes: `hashname` and `otherinfo` pointers, then
/// `otherinfolen`) with the hash name and other info they point at.
fn dh_compute(a: &[u64; 6]) -> Option<i32> {
    let bad = out_of_reach(a[1], 12) || buffer(a[2], a[3]) || out_of_reach(a[4], 56);
    if bad {
        return Some(libc::EFAULT);
    }
    if a[4] == 0 {
        return None;
    }
    let kdf = read(a[4], 56)?;
    let bad = string(word(&kdf, 0)) || buffer(word(&kdf, 8), u64::from(half(&kdf, 16)));
    bad.then_some(libc::EFAULT)
}

/// `KEYCTL_PKEY_ENCRYPT`, `_DECRYPT`, `_SIGN` (`in`, `out`) and `_VERIFY`
/// (`in`, `in2`): `(struct keyctl_pkey_params *, info, in, out or in2)`, the
/// parameters (40 bytes) giving `in_len` at 4 and `out_len`/`in2_len` at 8.
fn pkey_op(a: &[u64; 6]) -> Option<i32> {
    if out_of_reach(a[1], 40) || string(a[2]) {
        return Some(libc::EFAULT);
    }
    let params = read(a[1], 40)?;
    let bad =
        buffer(a[3], u64::from(half(&params, 4))) || buffer(a[4], u64::from(half(&params, 8)));
    bad.then_some(libc::EFAULT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mote_abi::layout::USER_START;

    const E: Option<i32> = Some(libc::EFAULT);

    /// Every operation that takes a buffer, a string or a structure refuses
    /// one in the proxy's memory; numbers-only operations pass.
    #[test]
    fn key_calls_refuse_the_proxys_memory() {
        let mine = [0u8; 64];
        let p = mine.as_ptr() as u64;
        let app = USER_START + 0x1000;
        let k = |op: u64, rest: [u64; 4]| keyctl(&[op, rest[0], rest[1], rest[2], rest[3], 0]);
        assert_eq!(add_key(&[app, app, p, 8, 0, 0]), E, "payload");
        assert_eq!(add_key(&[p, app, app, 8, 0, 0]), E, "type");
        assert_eq!(add_key(&[app, p, 0, 0, 0, 0]), E, "description");
        assert_eq!(add_key(&[app, app, app, 8, 0, 0]), None);
        assert_eq!(
            add_key(&[app, app, p, 1 << 20, 0, 0]),
            None,
            "Linux's EINVAL"
        );
        assert_eq!(k(1, [p, 0, 0, 0]), E, "JOIN_SESSION_KEYRING");
        for op in [2, 6, 11, 12, 17] {
            assert_eq!(k(op, [1, p, 8, 0]), E, "op {op}");
            assert_eq!(k(op, [1, app, 8, 0]), None, "op {op}");
            assert_eq!(k(op, [1, p, 0, 0]), None, "op {op}: empty");
        }
        for op in [10, 24] {
            assert_eq!(k(op, [1, p, app, 0]), E);
            assert_eq!(k(op, [1, app, p, 0]), E);
            assert_eq!(k(op, [1, app, 0, 0]), None);
        }
        // INSTANTIATE_IOV: the array, then its buffers.
        assert_eq!(k(20, [1, p, 1, 0]), E, "the iovec array");
        let iov: [u64; 2] = [p, 8];
        // (The array is read from the proxy here; its buffer is the proxy's.)
        assert!(iovec_out_of_reach(iov.as_ptr() as u64, 1));
        assert_eq!(k(23, [p, app, 8, 0]), E, "DH params");
        assert_eq!(k(23, [app, p, 8, 0]), E, "DH buffer");
        assert_eq!(k(23, [app, app, 8, p]), E, "KDF params");
        assert_eq!(k(25, [1, 0, p, app]), E, "PKEY_QUERY info");
        assert_eq!(k(25, [1, 0, app, p]), E, "PKEY_QUERY result");
        for op in 26..=29 {
            assert_eq!(k(op, [p, app, app, app]), E, "op {op} params");
            assert_eq!(k(op, [app, p, app, app]), E, "op {op} info");
        }
        assert_eq!(k(31, [p, 4, 0, 0]), E, "CAPABILITIES");
        // A long read buffer that starts in the range: Linux copies what the
        // key holds, no EFAULT.
        assert_eq!(k(11, [1, app, u64::MAX, 0]), None);
        assert_eq!(k(31, [app, 1 << 40, 0, 0]), None);
        for op in [0, 3, 4, 5, 7, 8, 9, 13, 14, 15, 16, 18, 19, 21, 22, 30] {
            assert_eq!(k(op, [p, p, p, p]), None, "op {op} takes numbers");
        }
        assert_eq!(k(33, [0; 4]), Some(libc::EOPNOTSUPP));
        assert_eq!(k(-1i64 as u64, [0; 4]), Some(libc::EOPNOTSUPP));
    }

    #[test]
    fn watch_key_refuses_motes_descriptors() {
        // WATCH_KEY on one of mote's descriptors.
        crate::fds::protect_fds([3003]);
        assert_eq!(keyctl(&[32, 1, 3003, 0, 0, 0]), Some(libc::EBADF));
        assert_eq!(keyctl(&[32, 1, 5, 0, 0, 0]), None);
        crate::fds::unprotect_fd(3003);
    }
}
