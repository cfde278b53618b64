//! What an `ioctl` argument names (issue 15, point 1): the structure it points
//! at, sized by the request's `_IOC` encoding or, for requests that encode no
//! size, by a table (the old tty requests, the socket interface requests);
//! the pointers those structures carry where their layout is Linux's own
//! (`SIOCGIFCONF`'s buffer, `SIOCETHTOOL`'s command, `RDMA_VERBS_IOCTL`'s
//! attributes); and, for every other request that encodes no size, the
//! argument itself read as an address ([`in_motes_memory`]).
//!
//! Everything here answers as Linux does for the application natively, where
//! it has no memory outside `[USER_START, LIBOS_END)`: a structure or buffer
//! outside that range is `EFAULT`. A structure that starts inside it and runs
//! past what is counted here meets the inaccessible top of the reservation
//! (above the runtime region, gigabytes wide) before any memory of mote's, so
//! Linux faults there itself: only where a structure starts matters for
//! isolation, and its counted length only for answering as early as Linux.
//!
//! What this cannot see: pointers inside driver-private structures whose
//! layout is the driver's (an `_IOC`-sized structure of a GPU or storage
//! driver that carries a user pointer, what a `SIOCDEVPRIVATE` request's
//! `ifr_data` points at), beyond the first level.

use mote_abi::layout::{LIBOS_END, USER_START};

use super::reach::{half, out_of_reach, read, word};
use crate::mirror::read_user;

/// `SIOCGIFCONF`: its struct ifconf's buffer is written by Linux.
const SIOCGIFCONF: u32 = 0x8912;
/// `SIOCETHTOOL` (`include/uapi/linux/sockios.h`): a struct ifreq whose
/// `ifr_data` points at an ethtool command.
const SIOCETHTOOL: u32 = 0x8946;
/// `SIOCPROTOPRIVATE` and `SIOCDEVPRIVATE`, 16 requests each.
const SIOCPROTOPRIVATE: u32 = 0x89e0;
const SIOCDEVPRIVATE: u32 = 0x89f0;
/// `RDMA_VERBS_IOCTL`: `_IOWR(0x1b, 1, struct ib_uverbs_ioctl_hdr)`
/// (`include/uapi/rdma/rdma_user_ioctl_cmds.h`).
pub const RDMA_VERBS_IOCTL: u32 = 0xc018_1b01;
/// Offset of `ifr_data` (after the 16-byte `ifr_name`) in a struct ifreq.
const IFR_DATA: usize = 16;
/// Size of a struct ifreq.
const IFREQ: u64 = 40;

/// The size of the structure an `ioctl` request's argument points at: from
/// the `_IOC` encoding (`include/uapi/asm-generic/ioctl.h`: direction in
/// bits 30-31, size in bits 16-29) or, for the old-style tty requests that
/// do not encode it (`include/uapi/asm-generic/ioctls.h`), from their
/// structures; 0 for a request whose argument is no pointer or is unknown.
pub fn ioctl_size(req: u64) -> u64 {
    let req = req as u32;
    match req {
        // struct termios (kernel's, 36 bytes), struct termio (18).
        0x5401..=0x5404 => 36,
        0x5405..=0x5408 => 18,
        // struct winsize.
        0x5413 | 0x5414 => 8,
        // TIOCSTI: one byte.
        0x5412 => 1,
        // int: TIOCGPGRP, TIOCSPGRP, TIOCOUTQ, TIOCMGET/MBIS/MBIC/MSET,
        // FIONREAD, TIOCGSOFTCAR, TIOCSSOFTCAR, TIOCSETD, TIOCGETD, FIONBIO,
        // TIOCGSID, FIOASYNC, TIOCSERGETLSR.
        0x540f
        | 0x5410
        | 0x5411
        | 0x5415..=0x541b
        | 0x5423
        | 0x5424
        | 0x5421
        | 0x5429
        | 0x5452
        | 0x5459 => 4,
        // Socket requests (`include/uapi/linux/sockios.h`), no size encoded:
        // SIOCGIFCONF takes a struct ifconf (16 bytes, whose buffer
        // `check` follows); SIOCSIFLINK none; the other interface requests,
        // SIOCGIFNAME to SIOCSIFHWBROADCAST, SIOCETHTOOL and the device-private
        // ones, a struct ifreq (40).
        SIOCGIFCONF => 16,
        0x8911 => 0,
        0x8910..=0x8937 => IFREQ,
        SIOCETHTOOL => IFREQ,
        SIOCDEVPRIVATE..=0x89ff => IFREQ,
        _ => {
            let dir = req >> 30;
            let size = (req >> 16) & 0x3fff;
            if dir == 0 {
                0
            } else {
                u64::from(size)
            }
        }
    }
}

/// The answer (an errno) to `ioctl(fd, req, arg)` when what `arg` names is
/// out of the application's reach or a request mote does not pass on;
/// `None`: Linux's to run.
pub fn check(req: u64, arg: u64) -> Option<i32> {
    let size = ioctl_size(req);
    if out_of_reach(arg, size) {
        return Some(libc::EFAULT);
    }
    match req as u32 {
        SIOCGIFCONF => ifconf_out_of_reach(arg).then_some(libc::EFAULT),
        SIOCETHTOOL => ethtool(arg),
        // A device-private request's ifr_data: the driver's own layout.
        SIOCDEVPRIVATE..=0x89ff => {
            let ifr = read(arg, IFREQ)?;
            in_motes_memory(word(&ifr, IFR_DATA)).then_some(libc::EFAULT)
        }
        RDMA_VERBS_IOCTL => rdma_verbs(arg),
        // A protocol-private request, or any other that encodes no size: its
        // argument, if it is a pointer, cannot point at mote's memory.
        _ if size == 0 || (SIOCPROTOPRIVATE..SIOCPROTOPRIVATE + 16).contains(&(req as u32)) => {
            in_motes_memory(arg).then_some(libc::EFAULT)
        }
        _ => None,
    }
}

/// Whether `v`, read as an address, lies in memory of mote's: outside the
/// application's range and readable in the proxy. Natively the application
/// has nothing mapped there (all of its memory is inside the range under
/// mote, so a pointer outside it came from mote's own maps), and a pointer
/// there faults; a value that is no pointer (a flag, a count, a handle) is
/// never one of the proxy's mapped addresses in practice. One
/// `process_vm_readv` of a byte, only for a value outside the range.
pub fn in_motes_memory(v: u64) -> bool {
    if v < USER_START || (USER_START..LIBOS_END).contains(&v) || v >= 1 << 47 {
        return false;
    }
    let mut b = [0u8];
    matches!(read_user(v, &mut b), Ok(1))
}

/// Whether the buffer of the struct ifconf at `at` (`int ifc_len`, then the
/// `ifc_buf` pointer at 8; a null buffer asks for the length only) is out of
/// the application's reach.
fn ifconf_out_of_reach(at: u64) -> bool {
    let Some(b) = read(at, 16) else {
        return false;
    };
    let (len, buf) = (half(&b, 0) as i32, word(&b, 8));
    buf != 0 && len > 0 && out_of_reach(buf, len as u64)
}

/// `SIOCETHTOOL` with the struct ifreq at `ifr` (inside the range): its
/// `ifr_data` points at an ethtool command whose first `u32` names it
/// (`include/uapi/linux/ethtool.h`). `EFAULT` when the command's structure is
/// out of reach; `EOPNOTSUPP` for a command without a known layout, as from
/// a driver without it.
fn ethtool(ifr: u64) -> Option<i32> {
    let data = word(&read(ifr, IFREQ)?, IFR_DATA);
    if out_of_reach(data, 4) {
        return Some(libc::EFAULT);
    }
    let cmd = half(&read(data, 4)?, 0);
    let Some(shape) = ethtool_shape(cmd) else {
        return Some(libc::EOPNOTSUPP);
    };
    let head = read(data, shape.head())?;
    match shape.len(&head) {
        Some(len) => out_of_reach(data, len).then_some(libc::EFAULT),
        None => Some(libc::EOPNOTSUPP),
    }
}

/// How long an ethtool command's structure is: fixed, or a fixed header
/// followed by a count the header carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// The whole structure.
    Fixed(u64),
    /// `head` bytes, then `unit` bytes per count in the `u32` at `at`.
    Counted { head: u64, at: usize, unit: u64 },
    /// struct ethtool_sset_info: 16 bytes, a `u32` per bit of `sset_mask`.
    SsetInfo,
    /// struct ethtool_rxfh: 24 bytes, `indir_size` `u32`s, `key_size` bytes.
    Rxfh,
    /// struct ethtool_link_settings: 48 bytes, three masks of
    /// `|link_mode_masks_nwords|` `u32`s.
    LinkSettings,
    /// struct ethtool_per_queue_op: 520 bytes, a struct ethtool_coalesce per
    /// queue of `queue_mask` for the coalescing sub-commands.
    PerQueue,
}

/// struct ethtool_coalesce: the command and 22 `u32`s.
const COALESCE: u64 = 92;
/// struct ethtool_rxnfc: 192 bytes, `rule_locs` after `rule_cnt` at 184.
const RXNFC: u64 = 192;

impl Shape {
    /// Bytes read to know the length.
    fn head(self) -> u64 {
        match self {
            Shape::Fixed(n) => n.min(4),
            Shape::Counted { head, .. } => head,
            Shape::SsetInfo | Shape::Rxfh => 16,
            Shape::LinkSettings => 48,
            Shape::PerQueue => 520,
        }
    }

    /// The structure's length given its first [`Shape::head`] bytes; `None`:
    /// a sub-command Linux does not take (`EOPNOTSUPP`).
    pub fn len(self, h: &[u8]) -> Option<u64> {
        let count = |at: usize| u64::from(half(h, at));
        Some(match self {
            Shape::Fixed(n) => n,
            Shape::Counted { head, at, unit } => head + count(at) * unit,
            Shape::SsetInfo => 16 + u64::from(word(h, 8).count_ones()) * 4,
            Shape::Rxfh => 24 + count(8) * 4 + count(12),
            Shape::LinkSettings => 48 + 12 * u64::from((h[15] as i8).unsigned_abs()),
            Shape::PerQueue => {
                // ETHTOOL_GCOALESCE and ETHTOOL_SCOALESCE are the only
                // sub-commands (`ethtool_set_per_queue`).
                if !matches!(half(h, 4), 0x0e | 0x0f) {
                    return None;
                }
                let queues: u32 = h[8..520]
                    .chunks_exact(4)
                    .map(|q| u32::from_le_bytes(q.try_into().expect("4 bytes")).count_ones())
                    .sum();
                520 + u64::from(queues) * COALESCE
            }
        })
    }
}

/// The structure of ethtool command `cmd` (`ETHTOOL_*`, the ioctl interface,
/// frozen since `ETHTOOL_SFECPARAM`), `None` for a number Linux does not
/// know or no longer serves (`ETHTOOL_SRXNTUPLE`, `ETHTOOL_GRXNTUPLE`).
pub fn ethtool_shape(cmd: u32) -> Option<Shape> {
    use Shape::{Counted, Fixed};
    let value = Fixed(8); // struct ethtool_value
    let eeprom = Counted {
        head: 16,
        at: 12,
        unit: 1,
    };
    let stats = Counted {
        head: 8,
        at: 4,
        unit: 8,
    };
    let tunable = Counted {
        head: 16,
        at: 12,
        unit: 1,
    };
    Some(match cmd {
        // ethtool_cmd.
        0x01 | 0x02 => Fixed(44),
        // ethtool_drvinfo.
        0x03 => Fixed(196),
        // ethtool_regs: `len` bytes of registers.
        0x04 => Counted {
            head: 12,
            at: 8,
            unit: 1,
        },
        // ethtool_wolinfo.
        0x05 | 0x06 => Fixed(20),
        // GMSGLVL, SMSGLVL, NWAY_RST, GLINK.
        0x07..=0x0a => value,
        0x0b | 0x0c => eeprom,
        0x0e | 0x0f => Fixed(COALESCE),
        // ethtool_ringparam.
        0x10 | 0x11 => Fixed(36),
        // ethtool_pauseparam.
        0x12 | 0x13 => Fixed(16),
        // GRXCSUM .. SSG.
        0x14..=0x19 => value,
        // ethtool_test: `len` u64 results.
        0x1a => Counted {
            head: 16,
            at: 12,
            unit: 8,
        },
        // ethtool_gstrings: `len` strings of ETH_GSTRING_LEN.
        0x1b => Counted {
            head: 12,
            at: 8,
            unit: 32,
        },
        0x1c => value,
        0x1d => stats,
        0x1e | 0x1f => value,
        // ethtool_perm_addr: `size` bytes.
        0x20 => Counted {
            head: 8,
            at: 4,
            unit: 1,
        },
        // GUFO .. SPFLAGS.
        0x21..=0x28 => value,
        // ethtool_rxnfc (GRXFH, SRXFH).
        0x29 | 0x2a => Fixed(RXNFC),
        0x2b | 0x2c => value,
        // GRXRINGS, GRXCLSRLCNT, GRXCLSRULE.
        0x2d..=0x2f => Fixed(RXNFC),
        // GRXCLSRLALL: `rule_cnt` rule locations.
        0x30 => Counted {
            head: RXNFC,
            at: 184,
            unit: 4,
        },
        0x31 | 0x32 => Fixed(RXNFC),
        // ethtool_flash.
        0x33 => Fixed(136),
        0x34 => value,
        0x37 => Shape::SsetInfo,
        // ethtool_rxfh_indir: `size` u32s.
        0x38 | 0x39 => Counted {
            head: 8,
            at: 4,
            unit: 4,
        },
        // ethtool_gfeatures, ethtool_sfeatures: `size` blocks.
        0x3a => Counted {
            head: 8,
            at: 4,
            unit: 16,
        },
        0x3b => Counted {
            head: 8,
            at: 4,
            unit: 8,
        },
        // ethtool_channels.
        0x3c | 0x3d => Fixed(36),
        // ethtool_dump: SET_DUMP, GET_DUMP_FLAG; GET_DUMP_DATA with `len`.
        0x3e | 0x3f => Fixed(16),
        0x40 => Counted {
            head: 16,
            at: 12,
            unit: 1,
        },
        // ethtool_ts_info, ethtool_modinfo.
        0x41 | 0x42 => Fixed(44),
        0x43 => eeprom,
        // ethtool_eee.
        0x44 | 0x45 => Fixed(40),
        0x46 | 0x47 => Shape::Rxfh,
        0x48 | 0x49 => tunable,
        0x4a => stats,
        0x4b => Shape::PerQueue,
        0x4c | 0x4d => Shape::LinkSettings,
        0x4e | 0x4f => tunable,
        // ethtool_fecparam.
        0x50 | 0x51 => Fixed(16),
        _ => return None,
    })
}

/// `RDMA_VERBS_IOCTL` with its struct ib_uverbs_ioctl_hdr at `at` (24
/// bytes: `length` and `num_attrs` are the first and fourth `u16`), followed by
/// `num_attrs` struct ib_uverbs_attr (16 bytes: `len` the second `u16`, `data`
/// at 8). An attribute's `data` is a pointer to `len` bytes when `len` is over
/// 8 (`uverbs_attr_ptr_is_inline`); an output attribute's is a pointer
/// whatever its length, and a short input's inline: those are judged by
/// [`in_motes_memory`]. `EFAULT` as Linux's copy would give.
fn rdma_verbs(at: u64) -> Option<i32> {
    let hdr = read(at, 24)?;
    let num = u64::from(u16::from_le_bytes([hdr[6], hdr[7]]));
    let length = u64::from(u16::from_le_bytes([hdr[0], hdr[1]]));
    // Linux refuses a header whose length does not match (EINVAL).
    if length != 24 + 16 * num {
        return None;
    }
    if out_of_reach(at, length) {
        return Some(libc::EFAULT);
    }
    let attrs = read(at + 24, 16 * num)?;
    attrs_out_of_reach(&attrs, in_motes_memory).then_some(libc::EFAULT)
}

/// Whether struct ib_uverbs_attr entries `attrs` name memory out of the
/// application's reach; `motes` judges a short attribute's `data`.
pub fn attrs_out_of_reach(attrs: &[u8], motes: impl Fn(u64) -> bool) -> bool {
    attrs.chunks_exact(16).any(|a| {
        let len = u64::from(u16::from_le_bytes([a[2], a[3]]));
        let data = word(a, 8);
        if len > 8 {
            out_of_reach(data, len)
        } else {
            motes(data)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_sizes_come_from_the_encoding_or_the_tty_table() {
        assert_eq!(ioctl_size(0x5401), 36, "TCGETS");
        assert_eq!(ioctl_size(0x5413), 8, "TIOCGWINSZ");
        assert_eq!(ioctl_size(0x541b), 4, "FIONREAD");
        assert_eq!(ioctl_size(0x8004_5430), 4, "TIOCGPTN, _IOR(T, 0x30, int)");
        assert_eq!(ioctl_size(0xae00), 0, "KVM_GET_API_VERSION: _IO");
        assert_eq!(ioctl_size(0x540b), 0, "TCFLSH takes a value");
        assert_eq!(ioctl_size(0x8912), 16, "SIOCGIFCONF");
        assert_eq!(ioctl_size(0x8913), 40, "SIOCGIFFLAGS");
        assert_eq!(ioctl_size(0x8933), 40, "SIOCGIFINDEX");
        assert_eq!(ioctl_size(0x8911), 0, "SIOCSIFLINK takes nothing");
        assert_eq!(ioctl_size(0x8946), 40, "SIOCETHTOOL");
        assert_eq!(ioctl_size(0x89f3), 40, "SIOCDEVPRIVATE + 3");
        assert_eq!(ioctl_size(0x89e3), 0, "SIOCPROTOPRIVATE: the protocol's");
        assert_eq!(ioctl_size(u64::from(RDMA_VERBS_IOCTL)), 24);
        // The upper half of the register is not the request.
        assert_eq!(ioctl_size(0x1_0000_5401), 36);
    }

    /// A value in the proxy's own memory is mote's; one in the application's
    /// range, a small number or an unmapped address is not.
    #[test]
    fn motes_memory_is_what_the_proxy_has_mapped_outside_the_range() {
        let here = 0u64;
        let proxy = &here as *const u64 as u64;
        assert!(in_motes_memory(proxy));
        let heap = Box::new(7u64);
        assert!(in_motes_memory(&*heap as *const u64 as u64));
        assert!(!in_motes_memory(0));
        assert!(!in_motes_memory(1));
        assert!(!in_motes_memory(0x8000));
        assert!(!in_motes_memory(USER_START + 4096));
        assert!(!in_motes_memory(u64::MAX));
        assert!(
            !in_motes_memory(0xffff_ffff_ff60_0000),
            "vsyscall: kernel half"
        );
    }

    fn hdr(cmd: u32, words: &[(usize, u32)]) -> Vec<u8> {
        let mut h = vec![0u8; 520];
        h[..4].copy_from_slice(&cmd.to_le_bytes());
        for &(at, v) in words {
            h[at..at + 4].copy_from_slice(&v.to_le_bytes());
        }
        h
    }

    fn ethtool_len(cmd: u32, words: &[(usize, u32)]) -> Option<u64> {
        ethtool_shape(cmd)?.len(&hdr(cmd, words))
    }

    #[test]
    fn ethtool_commands_have_their_structures_lengths() {
        assert_eq!(ethtool_len(0x01, &[]), Some(44), "GSET");
        assert_eq!(ethtool_len(0x03, &[]), Some(196), "GDRVINFO");
        assert_eq!(ethtool_len(0x0a, &[]), Some(8), "GLINK");
        assert_eq!(ethtool_len(0x04, &[(8, 100)]), Some(112), "GREGS len 100");
        assert_eq!(ethtool_len(0x0b, &[(12, 256)]), Some(272), "GEEPROM");
        assert_eq!(ethtool_len(0x1b, &[(8, 3)]), Some(12 + 96), "GSTRINGS");
        assert_eq!(ethtool_len(0x1d, &[(4, 5)]), Some(48), "GSTATS");
        assert_eq!(ethtool_len(0x1a, &[(12, 2)]), Some(32), "TEST");
        assert_eq!(ethtool_len(0x30, &[(184, 4)]), Some(208), "GRXCLSRLALL");
        assert_eq!(ethtool_len(0x37, &[(8, 0b101)]), Some(24), "GSSET_INFO");
        assert_eq!(
            ethtool_len(0x46, &[(8, 128), (12, 40)]),
            Some(24 + 512 + 40)
        );
        let mut ls = hdr(0x4c, &[]);
        ls[15] = (-3i8) as u8;
        assert_eq!(
            ethtool_shape(0x4c).unwrap().len(&ls),
            Some(48 + 36),
            "handshake"
        );
        ls[15] = 3;
        assert_eq!(ethtool_shape(0x4c).unwrap().len(&ls), Some(48 + 36));
        let pq = |sub: u32| ethtool_len(0x4b, &[(4, sub), (8, 0b11), (12, 1)]);
        assert_eq!(pq(0x0e), Some(520 + 3 * 92), "PERQUEUE GCOALESCE, 3 queues");
        assert_eq!(pq(0x01), None, "another sub-command: EOPNOTSUPP");
        assert_eq!(ethtool_len(0x51, &[]), Some(16), "SFECPARAM");
        for gone in [0x00, 0x0d, 0x35, 0x36, 0x52, 0x1000] {
            assert_eq!(ethtool_shape(gone), None, "{gone:#x}");
        }
        // Every known command reads no more than its header to be sized.
        for cmd in 0..0x60 {
            if let Some(s) = ethtool_shape(cmd) {
                assert!(s.head() <= 520, "{cmd:#x}");
                assert!(s.len(&hdr(cmd, &[])).is_none_or(|l| l >= s.head().min(8)));
            }
        }
    }

    /// An ethtool command in the application's range is Linux's; one whose
    /// structure (or the ifreq's pointer to it) lies in the proxy's memory is
    /// EFAULT, and a command without a known layout EOPNOTSUPP.
    #[test]
    fn siocethtool_follows_ifr_data() {
        let mut ifr = [0u8; 40];
        let cmd = hdr(0x03, &[]);
        ifr[IFR_DATA..IFR_DATA + 8].copy_from_slice(&(cmd.as_ptr() as u64).to_le_bytes());
        let req = u64::from(SIOCETHTOOL);
        // The ifreq itself in the proxy's memory: EFAULT before anything.
        assert_eq!(check(req, ifr.as_ptr() as u64), Some(libc::EFAULT));
        // Read directly (the ifreq would be the application's):
        assert_eq!(ethtool(ifr.as_ptr() as u64), Some(libc::EFAULT));
        ifr[IFR_DATA..IFR_DATA + 8].copy_from_slice(&USER_START.to_le_bytes());
        // USER_START is not mapped in the test: Linux's EFAULT to give.
        assert_eq!(ethtool(ifr.as_ptr() as u64), None);
    }

    #[test]
    fn rdma_attributes_are_checked_by_length() {
        let attr = |len: u16, data: u64| {
            let mut a = [0u8; 16];
            a[2..4].copy_from_slice(&len.to_le_bytes());
            a[8..].copy_from_slice(&data.to_le_bytes());
            a
        };
        let motes = |v: u64| v == 0x7f00_0000_0000;
        let app = USER_START + 0x1000;
        let ok: Vec<u8> = [attr(64, app), attr(8, 5), attr(4, app), attr(0, 0)].concat();
        assert!(!attrs_out_of_reach(&ok, motes));
        // A long attribute's data outside the range.
        let far: Vec<u8> = [attr(8, 1), attr(16, 0x7f00_0000_0000)].concat();
        assert!(attrs_out_of_reach(&far, motes));
        assert!(attrs_out_of_reach(&attr(9, LIBOS_END), |_| false));
        // A short one (an output pointer, or inline data): only mote's memory.
        assert!(attrs_out_of_reach(&attr(8, 0x7f00_0000_0000), motes));
        assert!(!attrs_out_of_reach(&attr(8, 0x7e00_0000_0000), motes));
        // The header: a length that does not match num_attrs is Linux's EINVAL.
        let mut h = [0u8; 24 + 16];
        h[0..2].copy_from_slice(&40u16.to_le_bytes());
        h[6..8].copy_from_slice(&2u16.to_le_bytes());
        assert_eq!(rdma_verbs(h.as_ptr() as u64), None);
        // A matching one in the proxy's memory: EFAULT.
        h[6..8].copy_from_slice(&1u16.to_le_bytes());
        h[24..].copy_from_slice(&attr(64, app));
        assert_eq!(rdma_verbs(h.as_ptr() as u64), Some(libc::EFAULT));
        assert_eq!(
            check(u64::from(RDMA_VERBS_IOCTL), h.as_ptr() as u64),
            Some(libc::EFAULT)
        );
    }

    #[test]
    fn requests_without_a_size_refuse_only_pointers_into_motes_memory() {
        let here = [0u8; 8];
        let proxy = here.as_ptr() as u64;
        // KVM_GET_API_VERSION takes no pointer: a value is Linux's.
        assert_eq!(check(0xae00, 0), None);
        assert_eq!(check(0xae00, 12), None);
        assert_eq!(check(0xae00, proxy), Some(libc::EFAULT));
        assert_eq!(check(0x540b, 2), None, "TCFLSH's value");
        assert_eq!(check(0x89e1, proxy), Some(libc::EFAULT), "SIOCPROTOPRIVATE");
        // A device-private ifreq whose ifr_data is the proxy's: read from the
        // application's range in real use; here its first level is judged.
        let mut ifr = [0u8; 40];
        ifr[IFR_DATA..IFR_DATA + 8].copy_from_slice(&proxy.to_le_bytes());
        assert!(in_motes_memory(word(&ifr, IFR_DATA)));
        assert_eq!(check(0x89f0, ifr.as_ptr() as u64), Some(libc::EFAULT));
        // An encoded size in the range is Linux's.
        assert_eq!(check(0x8004_5430, USER_START), None);
    }

    /// Randomized: ethtool command headers, RDMA attribute arrays and
    /// `ioctl`/`keyctl`/`add_key` arguments come from memory and registers the
    /// application controls. Any of them gives no panic, one of the answers
    /// Linux itself gives (`EFAULT`, `EOPNOTSUPP`, `EBADF`) or none, and never
    /// `EFAULT` when every pointer lies in the application's range (here
    /// unmapped, so nothing nested can be read: Linux's to answer).
    #[test]
    fn fuzz_structure_readers() {
        use mote_fuzz::{inputs, seed, Rng};
        let mut rng = Rng::new(seed(std::env::var("MOTE_FUZZ_SEED").ok().as_deref()));
        let n = inputs(std::env::var("MOTE_FUZZ_INPUTS").ok().as_deref());
        let mut buf = vec![0u8; 1024];
        for _ in 0..n {
            rng.fill(&mut buf);
            let cmd = if rng.one_in(2) {
                rng.below(0x60) as u32
            } else {
                rng.edgy() as u32
            };
            if let Some(shape) = ethtool_shape(cmd) {
                let head = shape.head() as usize;
                if let Some(len) = shape.len(&buf[..head.max(16)]) {
                    assert!(len >= 4 && len >= shape.head().min(16), "{cmd:#x}: {len}");
                }
            }
            let k = rng.below(16) as usize * 16;
            let _ = attrs_out_of_reach(&buf[..k], |v| v % 3 == 0);
            // Arguments: in the (unmapped) range, the test's own random buffer,
            // or anything.
            let inside =
                |rng: &mut Rng| USER_START + rng.below(LIBOS_END - USER_START - (64 << 10));
            let mine = buf.as_ptr() as u64 + rng.below(512);
            let all_inside = rng.one_in(2);
            let arg = |rng: &mut Rng| match (all_inside, rng.below(4)) {
                (true, 0) => 0,
                (true, _) => inside(rng),
                (false, 0) => mine,
                (false, 1) => inside(rng),
                _ => rng.edgy(),
            };
            let req = match rng.below(6) {
                0 => u64::from(SIOCETHTOOL),
                1 => u64::from(RDMA_VERBS_IOCTL),
                2 => u64::from(SIOCDEVPRIVATE) + rng.below(16),
                3 => u64::from(SIOCGIFCONF),
                _ => rng.edgy(),
            };
            let a: [u64; 6] = core::array::from_fn(|_| arg(&mut rng));
            let op = if rng.one_in(4) {
                rng.edgy()
            } else {
                rng.below(34)
            };
            let answers = [
                check(req, a[0]),
                super::super::keys::keyctl(&[op, a[1], a[2], a[3], a[4], a[5]]),
                super::super::keys::add_key(&a),
            ];
            for r in answers.into_iter().flatten() {
                assert!(
                    [libc::EFAULT, libc::EOPNOTSUPP, libc::EBADF].contains(&r),
                    "{r}"
                );
                if all_inside {
                    // Pointers lie 64 KiB or more below the range's top, past
                    // the largest structure judged.
                    assert_ne!(r, libc::EFAULT, "req {req:#x} op {op} {a:x?}");
                }
            }
        }
    }
}
