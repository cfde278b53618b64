//! The argv/envp block libos builds the application's initial stack from, written
//! into guest memory at `layout::ARGS_GPA` (format: `mote_abi::boot::parse_strings`).
//!
//! The block holds NUL-terminated strings back to back: the resolved program path
//! (what libos opens), the application's argv as typed (argv[0] as the user gave
//! it), then the environment as `KEY=VALUE`.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use mote_abi::layout::{ARGS_GPA, ARGS_MAX};

use crate::guest::GuestMem;

/// Why the block cannot be built.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ArgsError {
    #[error(
        "argument list too long: {len} bytes of arguments and environment, a partition takes \
         at most {max}"
    )]
    TooLong { len: u64, max: u64 },
    #[error("argument or environment string contains a NUL byte")]
    Nul,
}

/// What `write` put into guest memory (the `BootInfo` fields that describe it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArgsBlock {
    /// Strings before the environment: the program path plus argv.
    pub argc: u32,
    /// Environment strings.
    pub envc: u32,
    /// Bytes used at `ARGS_GPA`.
    pub len: u64,
}

/// Build the block in memory.
pub fn build<'a>(
    program_path: &OsStr,
    argv: impl IntoIterator<Item = &'a OsStr>,
    envp: impl IntoIterator<Item = &'a OsStr>,
) -> Result<(Vec<u8>, ArgsBlock), ArgsError> {
    let mut block = Vec::new();
    let mut push = |s: &OsStr| {
        let b = s.as_bytes();
        if b.contains(&0) {
            return Err(ArgsError::Nul);
        }
        block.extend_from_slice(b);
        block.push(0);
        Ok(())
    };
    push(program_path)?;
    let mut argc = 1u32;
    for a in argv {
        push(a)?;
        argc += 1;
    }
    let mut envc = 0u32;
    for e in envp {
        push(e)?;
        envc += 1;
    }
    let len = block.len() as u64;
    if len > ARGS_MAX {
        return Err(ArgsError::TooLong { len, max: ARGS_MAX });
    }
    Ok((block, ArgsBlock { argc, envc, len }))
}

/// Build the block and write it at `ARGS_GPA`.
pub fn write<'a>(
    guest: &GuestMem,
    program_path: &OsStr,
    argv: impl IntoIterator<Item = &'a OsStr>,
    envp: impl IntoIterator<Item = &'a OsStr>,
) -> Result<ArgsBlock, ArgsError> {
    let (block, info) = build(program_path, argv, envp)?;
    guest.write(ARGS_GPA, &block);
    Ok(info)
}

/// The current environment as `KEY=VALUE` strings.
pub fn environment() -> Vec<std::ffi::OsString> {
    std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k;
            kv.push("=");
            kv.push(v);
            kv
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mote_abi::boot::parse_strings;

    fn s(x: &str) -> &OsStr {
        OsStr::new(x)
    }

    #[test]
    fn block_round_trips_through_parse_strings() {
        let guest = GuestMem::new(2 << 20).unwrap();
        let argv = [s("ls"), s("-la"), s("")];
        let env = [s("HOME=/root"), s("EMPTY=")];
        let info = write(&guest, s("/usr/bin/ls"), argv, env).unwrap();
        assert_eq!(info.argc, 4);
        assert_eq!(info.envc, 2);

        let mut bytes = vec![0u8; info.len as usize];
        guest.read(ARGS_GPA, &mut bytes);
        let (a, used) = parse_strings(&bytes, info.argc as usize);
        let a: Vec<_> = a.collect();
        assert_eq!(a, [&b"/usr/bin/ls"[..], b"ls", b"-la", b""]);
        let (e, used2) = parse_strings(&bytes[used..], info.envc as usize);
        assert_eq!(e.collect::<Vec<_>>(), [&b"HOME=/root"[..], b"EMPTY="]);
        assert_eq!((used + used2) as u64, info.len);
    }

    #[test]
    fn oversized_block_is_refused() {
        let big = "x".repeat(ARGS_MAX as usize);
        let e = build(s("/p"), [s(&big)], []).unwrap_err();
        assert!(matches!(e, ArgsError::TooLong { max: ARGS_MAX, .. }));
        assert!(e.to_string().starts_with("argument list too long"));
        // Exactly at the limit is fine.
        let fit = "y".repeat(ARGS_MAX as usize - "/p\0".len() - 1);
        assert_eq!(build(s("/p"), [s(&fit)], []).unwrap().1.len, ARGS_MAX);
    }

    #[test]
    fn environment_is_key_value() {
        let env = environment();
        assert!(env.iter().all(|e| e.as_bytes().contains(&b'=')));
    }
}
