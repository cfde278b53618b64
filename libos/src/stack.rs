//! The initial process stack, byte for byte as Linux's `create_elf_tables` builds it
//! (System V x86-64 psABI §3.4.1, "Initial Stack and Register State").
//!
//! From the top down: 8 zero bytes; the `AT_EXECFN` string; the environment strings;
//! the argument strings (so `argv[0]` has the lowest address); 16-byte alignment;
//! the `AT_PLATFORM` string; the 16 `AT_RANDOM` bytes; then, 16-byte aligned at the
//! final `rsp`: `argc`, `argv[]`, NULL, `envp[]`, NULL, the auxiliary vector ending
//! in `AT_NULL`. [`build`] is a pure function returning the bytes and `rsp`; the caller
//! writes them with one `write_mem`.

use alloc::vec;
use alloc::vec::Vec;

use mote_abi::layout::{align_down, PAGE_SIZE};

use crate::uapi::auxv::*;

/// Size of the main thread's stack VMA.
pub const STACK_SIZE: u64 = 8 << 20;
/// Linux's `_STK_LIM`: the default stack limit (8 MiB).
pub const STK_LIM: u64 = 8 << 20;
/// Linux's `ARG_MAX` (32 pages): the least room for arguments, whatever the limit.
pub const ARG_MIN_LIMIT: u64 = 32 * PAGE_SIZE;
/// Linux's `MAX_ARG_STRLEN` (32 pages): the longest single argument or
/// environment string, with its NUL.
pub const MAX_ARG_STRLEN: u64 = 32 * PAGE_SIZE;
/// The most room for arguments whatever the stack limit: three quarters of
/// `_STK_LIM` (6 MiB), as Linux's `bprm_stack_limits`.
pub const MAX_ARGS_BYTES: u64 = STK_LIM / 4 * 3;

/// How many bytes of strings and pointers `execve` accepts with a stack limit
/// (`RLIMIT_STACK`'s soft value) of `stack_rlimit`, as Linux's
/// `bprm_stack_limits` (fs/exec.c): a quarter of the limit, at most
/// [`MAX_ARGS_BYTES`] and at least [`ARG_MIN_LIMIT`]. 2 MiB with the usual 8 MiB.
pub fn args_limit(stack_rlimit: u64) -> u64 {
    (stack_rlimit / 4).clamp(ARG_MIN_LIMIT, MAX_ARGS_BYTES)
}
/// `AT_PLATFORM` on x86_64.
pub const PLATFORM: &[u8] = b"x86_64";
/// `AT_CLKTCK`: `USER_HZ`.
pub const CLKTCK: u64 = 100;
/// `AT_MINSIGSTKSZ` when the runtime has no better value: the uapi `MINSIGSTKSZ`.
/// No signal frame is pushed by mote yet (handler delivery is a later issue); the
/// issue that adds it must pass the real frame size (from the CPU's XSAVE size, as
/// Linux's `get_sigframe_size`) in [`Auxv::minsigstksz`].
pub const DEFAULT_MINSIGSTKSZ: u64 = 2048;

/// The values of the auxiliary vector that depend on the program and the machine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Auxv {
    pub phdr: u64,
    pub phent: u64,
    pub phnum: u64,
    pub entry: u64,
    /// Interpreter base (0 without one).
    pub base: u64,
    pub uid: u64,
    pub euid: u64,
    pub gid: u64,
    pub egid: u64,
    pub hwcap: u64,
    pub hwcap2: u64,
    pub minsigstksz: u64,
    /// The runtime's direct system-call entry (`AT_MOTE_SYSCALL`; 0 = none).
    pub direct_entry: u64,
    /// The runtime's register entry (`AT_MOTE_SYSCALL_REGS`; 0 = none).
    pub regs_entry: u64,
    /// The runtime's frame entry (`AT_MOTE_SYSCALL_FRAME`; 0 = none).
    pub frame_entry: u64,
    /// The vDSO's ELF header (`AT_SYSINFO_EHDR`; 0 = none).
    pub vdso: u64,
}

/// Everything the initial stack holds.
#[derive(Clone, Copy, Debug)]
pub struct StackParams<'a> {
    pub argv: &'a [&'a [u8]],
    pub envp: &'a [&'a [u8]],
    /// `AT_EXECFN`: the path the program was executed by.
    pub execfn: &'a [u8],
    /// `AT_RANDOM` bytes.
    pub random: [u8; 16],
    pub aux: Auxv,
    /// [`args_limit`] of the application's stack limit.
    pub args_limit: u64,
}

/// The built stack: `bytes` belong at `[rsp, top)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitialStack {
    pub rsp: u64,
    pub bytes: Vec<u8>,
}

/// The arguments and environment do not fit (`E2BIG`, as `execve`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TooBig {
    /// Strings (the path, arguments, environment) and their pointers take `bytes`,
    /// more than `limit` ([`args_limit`]).
    Total { bytes: u64, limit: u64 },
    /// One string takes `bytes` with its NUL, more than [`MAX_ARG_STRLEN`].
    String { bytes: u64 },
}

impl core::fmt::Display for TooBig {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            TooBig::Total { bytes, limit } => write!(
                f,
                "argument list too long (E2BIG): arguments and environment take {bytes} bytes, Linux allows {limit} (a quarter of the stack limit, `ulimit -s`, at most {MAX_ARGS_BYTES})"
            ),
            TooBig::String { bytes } => write!(
                f,
                "argument list too long (E2BIG): one argument or environment string takes {bytes} bytes, Linux allows {MAX_ARG_STRLEN} (MAX_ARG_STRLEN)"
            ),
        }
    }
}

/// `E2BIG` as Linux's `execve` decides it: each string (with its NUL) at most
/// [`MAX_ARG_STRLEN`]; the path, the arguments and the environment with one
/// pointer each (argc counted as at least 1) within `limit` ([`args_limit`]).
pub fn check_args<A: AsRef<[u8]>, E: AsRef<[u8]>>(
    argv: &[A],
    envp: &[E],
    execfn: &[u8],
    limit: u64,
) -> Result<(), TooBig> {
    let lens = || {
        argv.iter()
            .map(|s| s.as_ref().len())
            .chain(envp.iter().map(|s| s.as_ref().len()))
            .chain([execfn.len()])
            .map(|n| n as u64 + 1)
    };
    if let Some(bytes) = lens().find(|&n| n > MAX_ARG_STRLEN) {
        return Err(TooBig::String { bytes });
    }
    let bytes = lens().sum::<u64>() + (argv.len().max(1) + envp.len()) as u64 * 8;
    let limit = limit.min(MAX_ARGS_BYTES);
    if bytes > limit {
        return Err(TooBig::Total { bytes, limit });
    }
    Ok(())
}

/// Lay out the initial stack below `top` (page aligned).
pub fn build(top: u64, sp: &StackParams<'_>) -> Result<InitialStack, TooBig> {
    debug_assert!(top.is_multiple_of(PAGE_SIZE));
    let strlen = |s: &[u8]| s.len() as u64 + 1;
    check_args(sp.argv, sp.envp, sp.execfn, sp.args_limit)?;
    let aux = aux_pairs(sp, 0, 0, 0);
    let items = 1 + sp.argv.len() as u64 + 1 + sp.envp.len() as u64 + 1 + aux.len() as u64 * 2;

    // Addresses, top down.
    let mut p = top - 8;
    p -= strlen(sp.execfn);
    let execfn_at = p;
    let mut env_at = vec![0u64; sp.envp.len()];
    for (i, s) in sp.envp.iter().enumerate().rev() {
        p -= strlen(s);
        env_at[i] = p;
    }
    let mut arg_at = vec![0u64; sp.argv.len()];
    for (i, s) in sp.argv.iter().enumerate().rev() {
        p -= strlen(s);
        arg_at[i] = p;
    }
    p = align_down(p, 16);
    p -= strlen(PLATFORM);
    let platform_at = p;
    p -= 16;
    let random_at = p;
    let aux = aux_pairs(sp, platform_at, random_at, execfn_at);
    let words = items;
    let rsp = align_down(p - words * 8, 16);

    let mut bytes = vec![0u8; (top - rsp) as usize];
    let mut put = |at: u64, data: &[u8]| {
        let o = (at - rsp) as usize;
        bytes[o..o + data.len()].copy_from_slice(data);
    };
    put(execfn_at, sp.execfn);
    for (s, &at) in sp.envp.iter().zip(&env_at) {
        put(at, s);
    }
    for (s, &at) in sp.argv.iter().zip(&arg_at) {
        put(at, s);
    }
    put(platform_at, PLATFORM);
    put(random_at, &sp.random);
    let mut w = rsp;
    let mut word = |v: u64| {
        put(w, &v.to_le_bytes());
        w += 8;
    };
    word(sp.argv.len() as u64);
    arg_at.iter().for_each(|&a| word(a));
    word(0);
    env_at.iter().for_each(|&a| word(a));
    word(0);
    for (k, v) in aux {
        word(k);
        word(v);
    }
    debug_assert!(w <= random_at);
    Ok(InitialStack { rsp, bytes })
}

/// The auxiliary vector in Linux's order (`fs/binfmt_elf.c`), ending with `AT_NULL`.
fn aux_pairs(sp: &StackParams<'_>, platform: u64, random: u64, execfn: u64) -> Vec<(u64, u64)> {
    let a = &sp.aux;
    let minsig = if a.minsigstksz == 0 {
        DEFAULT_MINSIGSTKSZ
    } else {
        a.minsigstksz
    };
    let mut v = Vec::new();
    if a.vdso != 0 {
        v.push((AT_SYSINFO_EHDR, a.vdso));
    }
    v.extend([
        (AT_MINSIGSTKSZ, minsig),
        (AT_HWCAP, a.hwcap),
        (AT_PAGESZ, PAGE_SIZE),
        (AT_CLKTCK, CLKTCK),
        (AT_PHDR, a.phdr),
        (AT_PHENT, a.phent),
        (AT_PHNUM, a.phnum),
        (AT_BASE, a.base),
        (AT_FLAGS, 0),
        (AT_ENTRY, a.entry),
        (AT_UID, a.uid),
        (AT_EUID, a.euid),
        (AT_GID, a.gid),
        (AT_EGID, a.egid),
        (AT_SECURE, 0),
        (AT_RANDOM, random),
        (AT_HWCAP2, a.hwcap2),
        (AT_EXECFN, execfn),
        (AT_PLATFORM, platform),
    ]);
    if a.direct_entry != 0 {
        v.push((mote_abi::boot::AT_MOTE_SYSCALL, a.direct_entry));
    }
    if a.regs_entry != 0 {
        v.push((mote_abi::boot::AT_MOTE_SYSCALL_REGS, a.regs_entry));
    }
    if a.frame_entry != 0 {
        v.push((mote_abi::boot::AT_MOTE_SYSCALL_FRAME, a.frame_entry));
    }
    v.push((AT_NULL, 0));
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    const TOP: u64 = 0x3fff_f000_0000;

    /// Read the stack back the way a C runtime does.
    struct Parsed {
        argv: Vec<Vec<u8>>,
        envp: Vec<Vec<u8>>,
        aux: BTreeMap<u64, u64>,
        aux_order: Vec<u64>,
    }

    fn parse(st: &InitialStack) -> Parsed {
        let word = |at: u64| {
            let o = (at - st.rsp) as usize;
            u64::from_le_bytes(st.bytes[o..o + 8].try_into().unwrap())
        };
        let cstr = |at: u64| {
            let o = (at - st.rsp) as usize;
            let n = st.bytes[o..].iter().position(|&b| b == 0).unwrap();
            st.bytes[o..o + n].to_vec()
        };
        let mut at = st.rsp;
        let argc = word(at);
        at += 8;
        let mut argv = Vec::new();
        for _ in 0..argc {
            argv.push(cstr(word(at)));
            at += 8;
        }
        assert_eq!(word(at), 0, "argv ends with NULL");
        at += 8;
        let mut envp = Vec::new();
        while word(at) != 0 {
            envp.push(cstr(word(at)));
            at += 8;
        }
        at += 8;
        let mut aux = BTreeMap::new();
        let mut aux_order = Vec::new();
        loop {
            let (k, v) = (word(at), word(at + 8));
            at += 16;
            aux_order.push(k);
            aux.insert(k, v);
            if k == AT_NULL {
                break;
            }
        }
        Parsed {
            argv,
            envp,
            aux,
            aux_order,
        }
    }

    fn params<'a>(argv: &'a [&'a [u8]], envp: &'a [&'a [u8]]) -> StackParams<'a> {
        StackParams {
            argv,
            envp,
            execfn: b"/bin/busybox",
            random: *b"0123456789abcdef",
            aux: Auxv {
                phdr: 0x40_0040,
                phent: 56,
                phnum: 10,
                entry: 0x40_1000,
                base: 0,
                uid: 1000,
                euid: 1001,
                gid: 100,
                egid: 101,
                hwcap: 0x178bfbff,
                hwcap2: 2,
                minsigstksz: 0,
                direct_entry: 0,
                regs_entry: 0,
                frame_entry: 0,
                vdso: 0,
            },
            args_limit: args_limit(STK_LIM),
        }
    }

    #[test]
    fn layout_parses_back() {
        let argv: &[&[u8]] = &[b"busybox", b"echo", b"hi there"];
        let envp: &[&[u8]] = &[b"HOME=/root", b"PATH=/bin"];
        let st = build(TOP, &params(argv, envp)).unwrap();
        assert_eq!(st.rsp % 16, 0, "rsp 16-byte aligned at argc");
        assert_eq!(st.rsp + st.bytes.len() as u64, TOP);
        assert_eq!(
            &st.bytes[st.bytes.len() - 8..],
            &[0; 8],
            "8 zero bytes at the top"
        );
        let p = parse(&st);
        assert_eq!(p.argv, argv);
        assert_eq!(p.envp, envp);
        let a = &p.aux;
        assert_eq!(a[&AT_PHDR], 0x40_0040);
        assert_eq!(a[&AT_PHENT], 56);
        assert_eq!(a[&AT_PHNUM], 10);
        assert_eq!(a[&AT_PAGESZ], 4096);
        assert_eq!(a[&AT_BASE], 0);
        assert_eq!(a[&AT_FLAGS], 0);
        assert_eq!(a[&AT_ENTRY], 0x40_1000);
        assert_eq!(
            (a[&AT_UID], a[&AT_EUID], a[&AT_GID], a[&AT_EGID]),
            (1000, 1001, 100, 101)
        );
        assert_eq!(a[&AT_SECURE], 0);
        assert_eq!(a[&AT_HWCAP], 0x178bfbff);
        assert_eq!(a[&AT_HWCAP2], 2);
        assert_eq!(a[&AT_CLKTCK], 100);
        assert_eq!(a[&AT_MINSIGSTKSZ], DEFAULT_MINSIGSTKSZ);
        assert!(
            !a.contains_key(&mote_abi::boot::AT_MOTE_SYSCALL),
            "no direct entry unless given"
        );
        assert_eq!(*p.aux_order.last().unwrap(), AT_NULL);
        assert_eq!(p.aux_order.len(), 20);
        let at = |va: u64, n: usize| {
            let o = (va - st.rsp) as usize;
            st.bytes[o..o + n].to_vec()
        };
        assert_eq!(at(a[&AT_RANDOM], 16), b"0123456789abcdef");
        assert_eq!(at(a[&AT_PLATFORM], 7), b"x86_64\0");
        assert_eq!(at(a[&AT_EXECFN], 13), b"/bin/busybox\0");
        // Linux's string order: argv[0] lowest, then envp, then execfn at the top.
        assert!(a[&AT_RANDOM] < a[&AT_PLATFORM]);
        assert!(a[&AT_EXECFN] + 13 + 8 == TOP);
    }

    #[test]
    fn the_runtime_s_entries_are_in_the_auxv_when_given() {
        let argv: &[&[u8]] = &[b"a"];
        let mut pa = params(argv, &[]);
        pa.aux.direct_entry = 0x4000_0000_1000;
        pa.aux.frame_entry = 0x4000_0000_2000;
        pa.aux.regs_entry = 0x4000_0000_3000;
        let p = parse(&build(TOP, &pa).unwrap());
        assert_eq!(p.aux[&mote_abi::boot::AT_MOTE_SYSCALL], 0x4000_0000_1000);
        assert_eq!(
            p.aux[&mote_abi::boot::AT_MOTE_SYSCALL_FRAME],
            0x4000_0000_2000
        );
        assert_eq!(
            p.aux[&mote_abi::boot::AT_MOTE_SYSCALL_REGS],
            0x4000_0000_3000
        );
        assert_eq!(*p.aux_order.last().unwrap(), AT_NULL);
    }

    #[test]
    fn alignment_holds_for_every_table_parity() {
        for n in 0..6 {
            let argv: Vec<&[u8]> = (0..n).map(|_| &b"a"[..]).collect();
            for m in 0..3 {
                let envp: Vec<&[u8]> = (0..m).map(|_| &b"E=1"[..]).collect();
                let st = build(TOP, &params(&argv, &envp)).unwrap();
                assert_eq!(st.rsp % 16, 0);
                let p = parse(&st);
                assert_eq!(p.argv.len(), n);
                assert_eq!(p.envp.len(), m);
            }
        }
    }

    #[test]
    fn too_many_arguments_is_e2big() {
        let big = vec![b'x'; MAX_ARGS_BYTES as usize];
        let argv: &[&[u8]] = &[&big];
        assert!(build(TOP, &params(argv, &[])).is_err());
    }

    /// Regression: 1-2 MiB of arguments were refused; Linux takes up to a quarter
    /// of the stack limit (2 MiB with 8 MiB), each string up to 128 KiB.
    #[test]
    fn arguments_up_to_linux_s_limit_fit() {
        assert_eq!(args_limit(STK_LIM), 2 << 20);
        assert_eq!(args_limit(u64::MAX), 6 << 20);
        assert_eq!(args_limit(64 << 10), 128 << 10);
        let s = vec![b'a'; MAX_ARG_STRLEN as usize - 1];
        let argv: Vec<&[u8]> = (0..15).map(|_| &s[..]).collect();
        let st = build(TOP, &params(&argv, &[])).unwrap();
        assert_eq!(parse(&st).argv.len(), 15);
        let argv: Vec<&[u8]> = (0..16).map(|_| &s[..]).collect();
        assert!(matches!(
            build(TOP, &params(&argv, &[])),
            Err(TooBig::Total {
                limit: 0x20_0000,
                ..
            })
        ));
        let long = vec![b'a'; MAX_ARG_STRLEN as usize];
        assert_eq!(
            build(TOP, &params(&[&long[..]], &[])),
            Err(TooBig::String {
                bytes: MAX_ARG_STRLEN + 1
            })
        );
        // With an unlimited stack, 6 MiB.
        let argv: Vec<&[u8]> = (0..40).map(|_| &s[..]).collect();
        let p = StackParams {
            args_limit: args_limit(u64::MAX),
            ..params(&argv, &[])
        };
        assert_eq!(parse(&build(TOP, &p).unwrap()).argv.len(), 40);
    }
}
