//! Reading mote's policy note (`mote_abi::note`) from a file: for `mote link` (is
//! it rewritten already?), `mote run` (the program's policy) and `mote info FILE`.

use std::path::Path;

use goblin::elf::{program_header as ph, Elf};
use mote_abi::note::{self, Policy};

use crate::LinkError;

/// The policy note of a parsed ELF file, if it has one; a malformed one is an error.
pub fn policy_in(bytes: &[u8], elf: &Elf) -> Result<Option<Policy>, LinkError> {
    for p in elf
        .program_headers
        .iter()
        .filter(|p| p.p_type == ph::PT_NOTE)
    {
        let notes = p
            .p_offset
            .checked_add(p.p_filesz)
            .and_then(|end| bytes.get(p.p_offset as usize..end as usize))
            .ok_or_else(|| {
                LinkError::BadNote("a note segment runs past the end of the file".into())
            })?;
        match note::find(notes) {
            Ok(Some(pol)) => return Ok(Some(pol)),
            Ok(None) => {}
            Err(Some(e)) => return Err(LinkError::BadNote(format!("malformed mote note: {e}"))),
            // Not mote's note that is damaged: other tools' business.
            Err(None) => {}
        }
    }
    Ok(None)
}

/// Largest note segment read (mote's note is 52 bytes; build-ids and ABI tags
/// are a few dozen).
const MAX_NOTES: u64 = 64 * 1024;

/// The policy note of the file at `path`: `Ok(None)` when it has none or is no
/// 64-bit little-endian ELF file at all (then whoever runs it says what is wrong
/// with it). Reads only the header, the program headers and the note segments,
/// not the whole file (`mote run` calls this for every program it starts).
pub fn policy_of_file(path: &Path) -> Result<Option<Policy>, LinkError> {
    use std::os::unix::fs::FileExt;
    let io = |e| LinkError::Io(path.display().to_string(), e);
    let f = std::fs::File::open(path).map_err(io)?;
    let len = f.metadata().map_err(io)?.len();
    let mut h = [0u8; 64];
    if len < 64 || f.read_exact_at(&mut h, 0).is_err() {
        return Ok(None);
    }
    if &h[..4] != b"\x7fELF" || h[4] != 2 || h[5] != 1 {
        return Ok(None);
    }
    let phoff = u64::from_le_bytes(h[32..40].try_into().expect("8 bytes"));
    let phentsize = u16::from_le_bytes([h[54], h[55]]) as u64;
    let phnum = u16::from_le_bytes([h[56], h[57]]) as u64;
    if phentsize != 56 || phoff.checked_add(phnum * 56).is_none_or(|e| e > len) {
        return Ok(None);
    }
    let mut table = vec![0u8; (phnum * 56) as usize];
    f.read_exact_at(&mut table, phoff).map_err(io)?;
    for p in table.chunks_exact(56) {
        let word = |o: usize| u64::from_le_bytes(p[o..o + 8].try_into().expect("8 bytes"));
        if u32::from_le_bytes(p[0..4].try_into().expect("4 bytes")) != ph::PT_NOTE {
            continue;
        }
        let (off, size) = (word(8), word(32));
        if size > MAX_NOTES || off.checked_add(size).is_none_or(|e| e > len) {
            return Err(LinkError::BadNote(
                "a note segment over 64 KiB or past the end of the file".into(),
            ));
        }
        let mut notes = vec![0u8; size as usize];
        f.read_exact_at(&mut notes, off).map_err(io)?;
        match note::find(&notes) {
            Ok(Some(pol)) => return Ok(Some(pol)),
            Ok(None) | Err(None) => {}
            Err(Some(e)) => return Err(LinkError::BadNote(format!("malformed mote note: {e}"))),
        }
    }
    Ok(None)
}

/// The policy in words, one `key: value` a line (what `mote info FILE` prints).
pub fn describe(p: &Policy) -> String {
    let unset = "(not set: mote run's default)";
    let page = match p.page_size {
        0 => unset.to_string(),
        s if s >= 1 << 30 => format!("{}g", s >> 30),
        s if s >= 1 << 20 => format!("{}m", s >> 20),
        s => format!("{}k", s >> 10),
    };
    let mem = match p.mem {
        0 => unset.to_string(),
        m => format!("{m} bytes ({} MiB)", m >> 20),
    };
    let cores = match p.cores {
        0 => unset.to_string(),
        c => c.to_string(),
    };
    let slice = match p.flags & note::F_TIME_SLICE {
        0 => unset.to_string(),
        _ => format!("{} ms", p.time_slice_ms),
    };
    format!(
        "page size: {page}\ncores: {cores}\nmem: {mem}\ntime slice: {slice}\nno-patch: {}\nsystem-call sites rewritten: {}\nrewritten interpreter beside it: {}\n",
        if p.flags & note::F_NO_PATCH != 0 { "yes" } else { "no" },
        if p.flags & note::F_LINKED != 0 { "yes" } else { "no" },
        if p.flags & note::F_OWN_INTERP != 0 { "yes" } else { "no" },
    )
}
