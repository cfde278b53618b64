//! Just enough ELF to tell a static x86_64 executable from a dynamic one
//! (a `PT_INTERP` program header means it needs a dynamic loader).
//! Layout: System V gABI, "ELF Header" and "Program Header".

use std::fs;
use std::path::Path;

const PT_INTERP: u32 = 3;
const ELFCLASS64: u8 = 2;
const ELFDATA2LSB: u8 = 1;
const EM_X86_64: u16 = 62;

#[derive(Debug, PartialEq, Eq)]
pub enum Linkage {
    Static,
    Dynamic,
}

/// Static or dynamic, or why `path` is not a readable x86_64 ELF executable.
pub fn linkage(path: &Path) -> Result<Linkage, String> {
    let bytes = fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse(&bytes).map_err(|why| format!("{}: {why}", path.display()))
}

fn parse(b: &[u8]) -> Result<Linkage, String> {
    let u16_at = |o: usize| b.get(o..o + 2).map(|s| u16::from_le_bytes([s[0], s[1]]));
    let u32_at = |o: usize| {
        b.get(o..o + 4)
            .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    };
    let u64_at = |o: usize| {
        b.get(o..o + 8)
            .map(|s| u64::from_le_bytes(s.try_into().expect("8 bytes")))
    };
    if b.get(..4) != Some(b"\x7fELF") {
        return Err("not an ELF file".into());
    }
    if b.get(4) != Some(&ELFCLASS64) || b.get(5) != Some(&ELFDATA2LSB) {
        return Err("not a 64-bit little-endian ELF".into());
    }
    if u16_at(18) != Some(EM_X86_64) {
        return Err("not an x86_64 ELF".into());
    }
    let truncated = || "truncated ELF".to_string();
    let phoff = usize::try_from(u64_at(32).ok_or_else(truncated)?).map_err(|_| truncated())?;
    let phentsize = usize::from(u16_at(54).ok_or_else(truncated)?);
    let phnum = usize::from(u16_at(56).ok_or_else(truncated)?);
    for i in 0..phnum {
        let p_type = u32_at(phoff + i * phentsize).ok_or_else(truncated)?;
        if p_type == PT_INTERP {
            return Ok(Linkage::Dynamic);
        }
    }
    Ok(Linkage::Static)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 header with `phnum` program headers of the given types.
    fn elf(types: &[u32]) -> Vec<u8> {
        let mut b = vec![0u8; 64 + 56 * types.len()];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = ELFCLASS64;
        b[5] = ELFDATA2LSB;
        b[18..20].copy_from_slice(&EM_X86_64.to_le_bytes());
        b[32..40].copy_from_slice(&64u64.to_le_bytes());
        b[54..56].copy_from_slice(&56u16.to_le_bytes());
        b[56..58].copy_from_slice(&(types.len() as u16).to_le_bytes());
        for (i, t) in types.iter().enumerate() {
            b[64 + 56 * i..68 + 56 * i].copy_from_slice(&t.to_le_bytes());
        }
        b
    }

    #[test]
    fn interp_header_means_dynamic() {
        assert_eq!(parse(&elf(&[6, PT_INTERP, 1])), Ok(Linkage::Dynamic));
        assert_eq!(parse(&elf(&[1, 1, 4])), Ok(Linkage::Static));
    }

    #[test]
    fn non_elf_32bit_and_truncated_are_rejected() {
        assert!(parse(b"#!/bin/sh\n").is_err());
        let mut e32 = elf(&[1]);
        e32[4] = 1;
        assert!(parse(&e32).is_err());
        assert_eq!(parse(&elf(&[1, 1])[..100]), Err("truncated ELF".into()));
    }

    #[test]
    fn rust_host_binary_is_dynamic() {
        // Host test binaries for x86_64-unknown-linux-gnu link against glibc dynamically.
        let exe = std::env::current_exe().expect("current_exe");
        assert_eq!(linkage(&exe), Ok(Linkage::Dynamic));
    }
}
