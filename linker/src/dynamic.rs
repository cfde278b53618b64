//! The dynamic section of a dynamically linked program or shared library: reading
//! it, refusing what `mote link` cannot keep right once `.dynamic` moves, and
//! writing the moved copy with its run path and (for a library) its `DT_INIT`.
//!
//! The rewrite moves `.dynamic` into the added read-write segment (an entry may be
//! added, and glibc's ld.so adjusts a library's `.dynamic` in place, so it must
//! stay writable) and `.dynstr` into the added code segment, the old strings
//! first (every offset into them stays right), the new run path after them.
//! Nothing else moves in memory, so every other tag keeps its value; a tag not
//! in [`KNOWN`] might mean something that depends on where `.dynamic` is, and is
//! refused.

use goblin::elf::dynamic as dt;
use goblin::elf::{program_header as ph, Elf};

use crate::LinkError;

/// `DT_RELRSZ`, `DT_RELR`, `DT_RELRENT` (glibc 2.36; goblin does not name them).
pub const DT_RELRSZ: u64 = 35;
/// `DT_RELR`: packed relative relocations.
pub const DT_RELR: u64 = 36;
const DT_RELRENT: u64 = 37;
const DT_X86_64_PLT: u64 = 0x7000_0000;
const DT_X86_64_PLTSZ: u64 = 0x7000_0001;
const DT_X86_64_PLTENT: u64 = 0x7000_0003;

/// Tags whose value is a number, a string offset or an address that does not
/// depend on where `.dynamic` is: kept as they are (or rewritten here).
const KNOWN: &[u64] = &[
    dt::DT_NEEDED,
    dt::DT_PLTRELSZ,
    dt::DT_PLTGOT,
    dt::DT_HASH,
    dt::DT_STRTAB,
    dt::DT_SYMTAB,
    dt::DT_RELA,
    dt::DT_RELASZ,
    dt::DT_RELAENT,
    dt::DT_STRSZ,
    dt::DT_SYMENT,
    dt::DT_INIT,
    dt::DT_FINI,
    dt::DT_SONAME,
    dt::DT_RPATH,
    dt::DT_SYMBOLIC,
    dt::DT_REL,
    dt::DT_RELSZ,
    dt::DT_RELENT,
    dt::DT_PLTREL,
    dt::DT_DEBUG,
    dt::DT_JMPREL,
    dt::DT_BIND_NOW,
    dt::DT_INIT_ARRAY,
    dt::DT_FINI_ARRAY,
    dt::DT_INIT_ARRAYSZ,
    dt::DT_FINI_ARRAYSZ,
    dt::DT_RUNPATH,
    dt::DT_FLAGS,
    dt::DT_PREINIT_ARRAY,
    dt::DT_PREINIT_ARRAYSZ,
    DT_RELRSZ,
    DT_RELR,
    DT_RELRENT,
    dt::DT_GNU_HASH,
    dt::DT_VERSYM,
    dt::DT_RELACOUNT,
    dt::DT_RELCOUNT,
    dt::DT_FLAGS_1,
    dt::DT_VERDEF,
    dt::DT_VERDEFNUM,
    dt::DT_VERNEED,
    dt::DT_VERNEEDNUM,
    DT_X86_64_PLT,
    DT_X86_64_PLTSZ,
    DT_X86_64_PLTENT,
];

/// The dynamic section as read from the input.
#[derive(Debug)]
pub struct Dynamic {
    /// Its entries up to (not including) `DT_NULL`.
    pub entries: Vec<(u64, u64)>,
    /// The string table's bytes.
    pub strtab: Vec<u8>,
}

impl Dynamic {
    /// The first value of `tag`.
    pub fn get(&self, tag: u64) -> Option<u64> {
        self.entries.iter().find(|e| e.0 == tag).map(|e| e.1)
    }

    /// The string at `off` in the string table.
    pub fn str_at(&self, off: u64) -> Option<&str> {
        let b = self.strtab.get(off as usize..)?;
        let end = b.iter().position(|&c| c == 0)?;
        std::str::from_utf8(&b[..end]).ok()
    }
}

/// The file offset of `vaddr`, through the loads that map it from the file.
pub fn file_offset(elf: &Elf, vaddr: u64, len: u64) -> Option<u64> {
    elf.program_headers
        .iter()
        .filter(|p| p.p_type == ph::PT_LOAD)
        .find(|p| {
            p.p_vaddr <= vaddr
                && vaddr
                    .checked_add(len)
                    .is_some_and(|end| end <= p.p_vaddr + p.p_filesz)
        })
        .map(|p| vaddr - p.p_vaddr + p.p_offset)
}

/// Read and check the dynamic section; `None` for a file without one.
pub fn read(bytes: &[u8], elf: &Elf) -> Result<Option<Dynamic>, LinkError> {
    let Some(p) = elf
        .program_headers
        .iter()
        .find(|p| p.p_type == ph::PT_DYNAMIC)
    else {
        return Ok(None);
    };
    let bad = |what: &str| LinkError::Refused(format!("a malformed dynamic section ({what})"));
    let raw = p
        .p_offset
        .checked_add(p.p_filesz)
        .and_then(|end| bytes.get(p.p_offset as usize..end as usize))
        .ok_or_else(|| bad("past the end of the file"))?;
    let mut entries = Vec::new();
    for e in raw.chunks_exact(16) {
        let tag = u64::from_le_bytes(e[..8].try_into().expect("8 bytes"));
        let val = u64::from_le_bytes(e[8..].try_into().expect("8 bytes"));
        if tag == dt::DT_NULL {
            break;
        }
        if tag == dt::DT_TEXTREL || (tag == dt::DT_FLAGS && val & dt::DF_TEXTREL != 0) {
            return Err(LinkError::Refused(
                "text relocations (DT_TEXTREL): the loader would write over rewritten code; \
                 rebuild the library with -fPIC"
                    .into(),
            ));
        }
        if !KNOWN.contains(&tag) {
            return Err(LinkError::Refused(format!(
                "an unknown dynamic tag {tag:#x}: mote link moves .dynamic and cannot tell \
                 whether that entry still holds once it has moved"
            )));
        }
        entries.push((tag, val));
    }
    let strtab_at = entries
        .iter()
        .find(|e| e.0 == dt::DT_STRTAB)
        .map(|e| e.1)
        .ok_or_else(|| bad("no DT_STRTAB"))?;
    let strsz = entries
        .iter()
        .find(|e| e.0 == dt::DT_STRSZ)
        .map(|e| e.1)
        .ok_or_else(|| bad("no DT_STRSZ"))?;
    let off = file_offset(elf, strtab_at, strsz).ok_or_else(|| bad("DT_STRTAB not in the file"))?;
    let strtab = bytes[off as usize..(off + strsz) as usize].to_vec();
    Ok(Some(Dynamic { entries, strtab }))
}

/// The addresses packed relative relocations (`DT_RELR`) write to.
pub fn relr_targets(bytes: &[u8], elf: &Elf, d: &Dynamic) -> Result<Vec<u64>, LinkError> {
    let (Some(at), Some(size)) = (d.get(DT_RELR), d.get(DT_RELRSZ)) else {
        return Ok(Vec::new());
    };
    let off = file_offset(elf, at, size).ok_or_else(|| {
        LinkError::Refused("a malformed dynamic section (DT_RELR not in the file)".into())
    })?;
    let mut out = Vec::new();
    let mut next = 0u64;
    for w in bytes[off as usize..(off + size) as usize].chunks_exact(8) {
        let w = u64::from_le_bytes(w.try_into().expect("8 bytes"));
        if w & 1 == 0 {
            out.push(w);
            next = w + 8;
        } else {
            for k in 0..63 {
                if (w >> (k + 1)) & 1 != 0 {
                    out.push(next + 8 * k);
                }
            }
            next += 8 * 63;
        }
    }
    Ok(out)
}

/// What the moved `.dynamic` says differently.
#[derive(Debug, Default)]
pub struct Edit<'a> {
    /// Put first in the run path (`DT_RUNPATH` if there is one, else `DT_RPATH`,
    /// which the loader also searches for the libraries' own dependencies).
    pub run_path: Option<&'a str>,
    /// The new `DT_INIT`.
    pub init: Option<u64>,
}

/// The moved string table (the old one, then the new run path) and the entries
/// whose value changes to a new string: `(tag, new offset)`.
///
/// (The `DT_NEEDED` names stay: ld.so expands a `$ORIGIN/NAME` one before
/// loading it, and then no longer matches the version-needed entries' file
/// names against it.)
pub fn strtab(d: &Dynamic, e: &Edit) -> (Vec<u8>, Vec<(u64, u64)>) {
    let mut s = d.strtab.clone();
    let mut paths = Vec::new();

    let Some(ours) = e.run_path else {
        return (s, paths);
    };
    let mut add = |tag: u64, old: Option<&str>| {
        let off = s.len() as u64;
        paths.push((tag, off));
        let v = match old {
            Some(o) if !o.is_empty() => format!("{ours}:{o}"),
            _ => ours.to_string(),
        };
        s.extend_from_slice(v.as_bytes());
        s.push(0);
    };
    let old_rpath = d.get(dt::DT_RPATH).map(|o| d.str_at(o).unwrap_or(""));
    let old_runpath = d.get(dt::DT_RUNPATH).map(|o| d.str_at(o).unwrap_or(""));
    match (old_rpath, old_runpath) {
        (_, Some(r)) => {
            add(dt::DT_RUNPATH, Some(r));
            if let Some(r) = old_rpath {
                add(dt::DT_RPATH, Some(r));
            }
        }
        (r, None) => add(dt::DT_RPATH, r),
    }
    (s, paths)
}

/// The moved `.dynamic`'s bytes: the old entries with the string table at
/// `strtab_at` (`strtab_len` bytes), the run paths of [`strtab`] and `e.init`.
pub fn section(
    d: &Dynamic,
    e: &Edit,
    strtab_at: u64,
    strtab_len: u64,
    paths: &[(u64, u64)],
) -> Vec<u8> {
    let mut entries: Vec<(u64, u64)> = Vec::with_capacity(d.entries.len() + 4);
    for &(tag, val) in &d.entries {
        let val = match tag {
            dt::DT_STRTAB => strtab_at,
            dt::DT_STRSZ => strtab_len,
            dt::DT_INIT => match e.init {
                Some(i) => i,
                None => val,
            },
            dt::DT_RPATH | dt::DT_RUNPATH => match paths.iter().find(|p| p.0 == tag) {
                Some(p) => p.1,
                None => val,
            },
            _ => val,
        };
        entries.push((tag, val));
    }
    for &(tag, off) in paths {
        if d.get(tag).is_none() {
            entries.push((tag, off));
        }
    }
    if let Some(i) = e.init {
        if d.get(dt::DT_INIT).is_none() {
            entries.push((dt::DT_INIT, i));
        }
    }
    entries.push((dt::DT_NULL, 0));
    entries
        .iter()
        .flat_map(|&(t, v)| t.to_le_bytes().into_iter().chain(v.to_le_bytes()))
        .collect()
}
