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

/// The policy note of the file at `path`: `Ok(None)` when it has none or is no
/// 64-bit ELF file at all (then whoever runs it says what is wrong with it).
pub fn policy_of_file(path: &Path) -> Result<Option<Policy>, LinkError> {
    let bytes = std::fs::read(path).map_err(|e| LinkError::Io(path.display().to_string(), e))?;
    let Ok(elf) = Elf::parse(&bytes) else {
        return Ok(None);
    };
    if !elf.is_64 {
        return Ok(None);
    }
    policy_in(&bytes, &elf)
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
    format!(
        "page size: {page}\ncores: {cores}\nmem: {mem}\nno-patch: {}\nsystem-call sites rewritten: {}\n",
        if p.flags & note::F_NO_PATCH != 0 { "yes" } else { "no" },
        if p.flags & note::F_LINKED != 0 { "yes" } else { "no" },
    )
}
