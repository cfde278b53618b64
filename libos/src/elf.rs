//! ELF loading decisions: may mote run this file, and where does each piece go?
//!
//! [`plan`] looks at the first bytes of a file (ELF header and program headers, parsed
//! with `goblin`) and its size, and answers with a [`LoadPlan`] or a [`LoadError`]
//! whose one-line `Display` names the cause and the fix. It accepts static `ET_EXEC`
//! programs and static-PIE (`ET_DYN` without `PT_INTERP`, loaded at
//! `layout::USER_PIE_BASE`), and dynamically linked programs, whose interpreter
//! (`PT_INTERP`, the dynamic linker) `exec` loads beside them at
//! `layout::INTERP_BASE`, as Linux does. No memory is touched here: `exec`
//! carries the plan out.

use alloc::vec::Vec;
use core::fmt;

use goblin::container::{Container, Ctx, Endian};
use goblin::elf::header::{self, Header};
use goblin::elf::program_header::{self as ph, ProgramHeader};
use mote_abi::layout::{align_down, align_up, PAGE_SIZE, USER_END, USER_PIE_BASE, USER_START};

use crate::uapi::mman::{PROT_EXEC, PROT_READ, PROT_WRITE};

/// Bytes to read first: enough for the headers of any ordinary program. When the
/// program headers lie further in, `plan` answers [`LoadError::NeedBytes`] with the
/// length to read instead. The interpreter's name may lie anywhere in the file:
/// `plan` gives its place ([`InterpAt`]) and the caller reads it.
pub const HEAD_LEN: usize = 4096;
/// Largest program-header table accepted (as Linux's `load_elf_phdrs`).
const MAX_PHDRS_BYTES: u64 = 64 * 1024;
/// Largest head `plan` asks for.
pub const HEAD_MAX: usize = 128 * 1024;
/// Longest `PT_INTERP` accepted, with its NUL (Linux's `PATH_MAX`).
pub const INTERP_MAX: u64 = 4096;
/// Size of an ELF64 header and program header.
const EHDR64: usize = 64;
const PHDR64: u16 = 56;

/// One `PT_LOAD` segment, at its final address (load bias applied).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    pub vaddr: u64,
    pub memsz: u64,
    pub filesz: u64,
    pub offset: u64,
    /// `PROT_*` bits.
    pub prot: u64,
}

/// What to load where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadPlan {
    /// `PT_LOAD` segments in file order.
    pub segments: Vec<Segment>,
    /// Entry point (biased).
    pub entry: u64,
    /// `AT_PHDR`: the program headers' address in memory.
    pub phdr: u64,
    /// `AT_PHNUM`.
    pub phnum: u64,
    /// `AT_PHENT`.
    pub phent: u64,
    /// Added to every `p_vaddr`: 0 for `ET_EXEC`.
    pub bias: u64,
    /// Static-PIE (`ET_DYN`).
    pub pie: bool,
    /// `PT_GNU_STACK` asks for an executable stack.
    pub exec_stack: bool,
    /// Where brk starts: the page after the highest segment.
    pub brk_start: u64,
    /// `PT_INTERP`: where in the file the name of the program interpreter (the
    /// dynamic linker to load with it) lies; read it and check it with
    /// [`interp_name`].
    pub interp: Option<InterpAt>,
}

/// The file range holding a `PT_INTERP` name (its `p_offset` and `p_filesz`), already
/// checked to lie inside the file and to be 2..=`INTERP_MAX` bytes long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InterpAt {
    pub offset: u64,
    pub len: u64,
}

/// The interpreter's path from the `PT_INTERP` bytes read at [`InterpAt`]: as Linux's
/// `load_elf_binary`, the last byte must be NUL and the name ends at the first NUL.
pub fn interp_name(raw: &[u8]) -> Result<&[u8], LoadError> {
    if raw.last() != Some(&0) {
        return Err(LoadError::BadInterp);
    }
    let name = raw.split(|&b| b == 0).next().unwrap_or(raw);
    if name.is_empty() {
        return Err(LoadError::BadInterp);
    }
    Ok(name)
}

/// A page-aligned range to map with one protection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    pub start: u64,
    pub end: u64,
    pub prot: u64,
}

impl LoadPlan {
    /// The page-aligned ranges the segments cover, without overlaps: a page shared by
    /// two segments gets the union of their protections.
    pub fn regions(&self) -> Vec<Region> {
        let mut pages: Vec<Region> = self
            .segments
            .iter()
            .filter(|s| s.memsz > 0)
            .map(|s| Region {
                start: align_down(s.vaddr, PAGE_SIZE),
                end: align_up(s.vaddr + s.memsz, PAGE_SIZE),
                prot: s.prot,
            })
            .collect();
        pages.sort_by_key(|r| r.start);
        // Cut at every boundary, then give each piece the union of the protections
        // of the segments covering it.
        let mut cuts: Vec<u64> = pages.iter().flat_map(|r| [r.start, r.end]).collect();
        cuts.sort_unstable();
        cuts.dedup();
        let mut out: Vec<Region> = Vec::new();
        for w in cuts.windows(2) {
            let (s, e) = (w[0], w[1]);
            let cover: Vec<&Region> = pages
                .iter()
                .filter(|r| r.start <= s && e <= r.end)
                .collect();
            if cover.is_empty() {
                continue;
            }
            let prot = cover.iter().fold(0, |a, r| a | r.prot);
            match out.last_mut() {
                Some(last) if last.end == s && last.prot == prot => last.end = e,
                _ => out.push(Region {
                    start: s,
                    end: e,
                    prot,
                }),
            }
        }
        out
    }
}

/// Why a file cannot be run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoadError {
    /// The caller must pass at least this many bytes from the file's start.
    NeedBytes(usize),
    /// No ELF magic.
    NotElf,
    /// Shorter than an ELF header.
    TruncatedHeader { file_size: u64 },
    /// `ELFCLASS32`.
    Elf32,
    /// `EI_CLASS` is neither 32 nor 64 bit.
    BadClass(u8),
    /// Big-endian (`ELFDATA2MSB`) or an unknown data encoding.
    NotLittleEndian(u8),
    /// Not `EM_X86_64`.
    WrongMachine(u16),
    /// Not `ET_EXEC` or `ET_DYN`.
    NotExecutable(u16),
    /// The `PT_INTERP` name is empty, longer than `INTERP_MAX`, not NUL-terminated
    /// or past the end of the file.
    BadInterp,
    /// The interpreter itself is not a shared object (`ET_DYN`) or wants another
    /// interpreter.
    InterpNotLoadable,
    /// `e_phentsize` is not 56.
    BadPhentsize(u16),
    /// No program headers, or more than Linux accepts.
    BadPhnum(u16),
    /// The program headers lie past the end of the file.
    TruncatedPhdrs { end: u64, file_size: u64 },
    /// The program headers end further into the file than `HEAD_MAX`.
    PhdrsTooFar { end: u64 },
    /// No `PT_LOAD` segment.
    NoLoadSegments,
    /// Segment `index` has `p_filesz > p_memsz`.
    FileszOverMemsz { index: usize },
    /// Segment `index`'s file bytes end past the end of the file.
    Truncated {
        index: usize,
        end: u64,
        file_size: u64,
    },
    /// Segment `index` lies outside the application's address range.
    OutOfRange { index: usize, start: u64, end: u64 },
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use LoadError::*;
        match self {
            NeedBytes(n) => write!(f, "internal: the loader needs the first {n} bytes of the file"),
            NotElf => write!(f, "not an ELF file: mote runs x86_64 Linux executables"),
            TruncatedHeader { file_size } => write!(
                f,
                "truncated ELF: the header needs {EHDR64} bytes but the file has {file_size}; the file is damaged, rebuild or copy it again"
            ),
            Elf32 => write!(f, "32-bit ELF (ELFCLASS32): mote runs x86_64 (64-bit) programs only"),
            BadClass(c) => write!(f, "not a valid ELF file (unknown class {c}): mote runs x86_64 (64-bit) programs only"),
            NotLittleEndian(d) => write!(
                f,
                "not a little-endian ELF (data encoding {d}): mote runs x86_64 programs only"
            ),
            WrongMachine(m) => write!(
                f,
                "not an x86_64 program (machine EM_{}): build it for x86_64",
                header::machine_to_str(*m)
            ),
            NotExecutable(t) => write!(
                f,
                "not an executable (ELF type ET_{}): link it into a program first",
                header::et_to_str(*t)
            ),
            BadInterp => write!(
                f,
                "malformed ELF: the interpreter name (PT_INTERP) is empty, longer than {INTERP_MAX} bytes, not NUL-terminated or past the end of the file"
            ),
            InterpNotLoadable => write!(
                f,
                "the program interpreter is not a self-contained shared object (ET_DYN without PT_INTERP)"
            ),
            BadPhentsize(n) => write!(
                f,
                "malformed ELF: program headers are {n} bytes each instead of {PHDR64}; the file is damaged"
            ),
            BadPhnum(n) => write!(f, "malformed ELF: {n} program headers; the file is damaged"),
            TruncatedPhdrs { end, file_size } => write!(
                f,
                "truncated ELF: the program headers end at byte {end} but the file has {file_size} bytes; the file is damaged, rebuild or copy it again"
            ),
            PhdrsTooFar { end } => write!(
                f,
                "unusual ELF: the program headers end at byte {end}, past the first {HEAD_MAX} bytes mote reads; relink it with a standard linker"
            ),
            NoLoadSegments => write!(f, "malformed ELF: no loadable (PT_LOAD) segment"),
            FileszOverMemsz { index } => write!(
                f,
                "malformed ELF: segment {index} has more file bytes than memory bytes"
            ),
            Truncated { index, end, file_size } => write!(
                f,
                "truncated ELF: segment {index} ends at byte {end} but the file has {file_size} bytes; the file is damaged, rebuild or copy it again"
            ),
            OutOfRange { index, start, end } => write!(
                f,
                "segment {index} at {start:#x}..{end:#x} is outside the range mote gives programs ({USER_START:#x}..{USER_END:#x}); link it at a usual address (the default -Ttext-segment)"
            ),
        }
    }
}

/// Decide how to load the file whose first bytes are `head` and whose size is
/// `file_size`. `head` should hold `min(HEAD_LEN, file_size)` bytes; when more are
/// needed the answer is `Err(NeedBytes(n))` (n ≤ `HEAD_MAX`, n ≤ `file_size`).
pub fn plan(head: &[u8], file_size: u64) -> Result<LoadPlan, LoadError> {
    plan_at(head, file_size, USER_PIE_BASE)
}

/// As [`plan`], placing a position-independent (`ET_DYN`) file at `base` — the
/// program at `USER_PIE_BASE`, its interpreter at `INTERP_BASE`.
pub fn plan_at(head: &[u8], file_size: u64, base: u64) -> Result<LoadPlan, LoadError> {
    if head.len() < 4 || head[..4] != header::ELFMAG[..] {
        return Err(LoadError::NotElf);
    }
    if head.len() < header::SIZEOF_IDENT {
        return Err(LoadError::TruncatedHeader { file_size });
    }
    match head[header::EI_CLASS] {
        header::ELFCLASS64 => {}
        header::ELFCLASS32 => return Err(LoadError::Elf32),
        c => return Err(LoadError::BadClass(c)),
    }
    if head[header::EI_DATA] != header::ELFDATA2LSB {
        return Err(LoadError::NotLittleEndian(head[header::EI_DATA]));
    }
    if head.len() < EHDR64 {
        return if file_size < EHDR64 as u64 {
            Err(LoadError::TruncatedHeader { file_size })
        } else {
            Err(LoadError::NeedBytes(EHDR64))
        };
    }
    let eh: Header = goblin::elf::Elf::parse_header(head).map_err(|_| LoadError::NotElf)?;
    if eh.e_machine != header::EM_X86_64 {
        return Err(LoadError::WrongMachine(eh.e_machine));
    }
    if eh.e_type != header::ET_EXEC && eh.e_type != header::ET_DYN {
        return Err(LoadError::NotExecutable(eh.e_type));
    }
    if eh.e_phentsize != PHDR64 {
        return Err(LoadError::BadPhentsize(eh.e_phentsize));
    }
    let table = eh.e_phnum as u64 * PHDR64 as u64;
    if eh.e_phnum == 0 || table > MAX_PHDRS_BYTES {
        return Err(LoadError::BadPhnum(eh.e_phnum));
    }
    let ph_end = eh
        .e_phoff
        .checked_add(table)
        .ok_or(LoadError::TruncatedPhdrs {
            end: u64::MAX,
            file_size,
        })?;
    if ph_end > file_size {
        return Err(LoadError::TruncatedPhdrs {
            end: ph_end,
            file_size,
        });
    }
    if ph_end > head.len() as u64 {
        return if ph_end <= HEAD_MAX as u64 {
            Err(LoadError::NeedBytes(ph_end as usize))
        } else {
            Err(LoadError::PhdrsTooFar { end: ph_end })
        };
    }
    let ctx = Ctx::new(Container::Big, Endian::Little);
    let phdrs = ProgramHeader::parse(head, eh.e_phoff as usize, eh.e_phnum as usize, ctx)
        .map_err(|_| LoadError::BadPhnum(eh.e_phnum))?;

    // As Linux: the first PT_INTERP counts; its size is 2..=PATH_MAX bytes.
    let interp = match phdrs.iter().find(|p| p.p_type == ph::PT_INTERP) {
        None => None,
        Some(ip) => {
            let fits = ip
                .p_offset
                .checked_add(ip.p_filesz)
                .is_some_and(|e| e <= file_size);
            if !(2..=INTERP_MAX).contains(&ip.p_filesz) || !fits {
                return Err(LoadError::BadInterp);
            }
            Some(InterpAt {
                offset: ip.p_offset,
                len: ip.p_filesz,
            })
        }
    };
    let pie = eh.e_type == header::ET_DYN;
    let loads: Vec<(usize, &ProgramHeader)> = phdrs
        .iter()
        .filter(|p| p.p_type == ph::PT_LOAD)
        .enumerate()
        .collect();
    if loads.is_empty() {
        return Err(LoadError::NoLoadSegments);
    }
    let bias = if pie {
        let align = loads
            .iter()
            .map(|(_, p)| p.p_align)
            .filter(|a| a.is_power_of_two())
            .max()
            .unwrap_or(PAGE_SIZE)
            .max(PAGE_SIZE);
        let min = loads.iter().map(|(_, p)| p.p_vaddr).min().unwrap_or(0);
        base.wrapping_sub(align_down(min, align))
    } else {
        0
    };

    let mut segments = Vec::new();
    let mut brk = 0;
    for &(index, p) in &loads {
        if p.p_filesz > p.p_memsz {
            return Err(LoadError::FileszOverMemsz { index });
        }
        let file_end = p.p_offset.checked_add(p.p_filesz);
        match file_end {
            Some(end) if end <= file_size => {}
            _ => {
                return Err(LoadError::Truncated {
                    index,
                    end: file_end.unwrap_or(u64::MAX),
                    file_size,
                })
            }
        }
        let start = p.p_vaddr.wrapping_add(bias);
        let end = start.checked_add(p.p_memsz);
        let end = match end {
            Some(e) if start >= USER_START && e <= USER_END => e,
            _ => {
                return Err(LoadError::OutOfRange {
                    index,
                    start,
                    end: end.unwrap_or(u64::MAX),
                })
            }
        };
        brk = brk.max(end);
        segments.push(Segment {
            vaddr: start,
            memsz: p.p_memsz,
            filesz: p.p_filesz,
            offset: p.p_offset,
            prot: prot_of(p.p_flags),
        });
    }

    // AT_PHDR as Linux's load_elf_binary (since 5.18): the address of the table in
    // the last PT_LOAD whose file bytes hold `e_phoff` (PT_PHDR is not consulted), or
    // the bias alone when none does.
    let phdr = loads
        .iter()
        .rev()
        .find(|(_, p)| {
            p.p_offset <= eh.e_phoff && eh.e_phoff < p.p_offset.saturating_add(p.p_filesz)
        })
        .map_or(0, |(_, p)| {
            (eh.e_phoff - p.p_offset).wrapping_add(p.p_vaddr)
        })
        .wrapping_add(bias);
    let exec_stack = phdrs
        .iter()
        .find(|p| p.p_type == ph::PT_GNU_STACK)
        .is_some_and(|p| p.p_flags & ph::PF_X != 0);

    Ok(LoadPlan {
        segments,
        entry: eh.e_entry.wrapping_add(bias),
        phdr,
        phnum: eh.e_phnum as u64,
        phent: PHDR64 as u64,
        bias,
        pie,
        exec_stack,
        brk_start: align_up(brk, PAGE_SIZE),
        interp,
    })
}

fn prot_of(flags: u32) -> u64 {
    let mut prot = 0;
    if flags & ph::PF_R != 0 {
        prot |= PROT_READ;
    }
    if flags & ph::PF_W != 0 {
        prot |= PROT_WRITE;
    }
    if flags & ph::PF_X != 0 {
        prot |= PROT_EXEC;
    }
    prot
}

#[cfg(test)]
mod fuzz;

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;

    /// `plan` the way `exec` drives it: read more while it asks.
    fn plan_file(data: &[u8]) -> Result<LoadPlan, LoadError> {
        let mut n = HEAD_LEN.min(data.len());
        loop {
            match plan(&data[..n], data.len() as u64) {
                Err(LoadError::NeedBytes(m)) => {
                    assert!(m > n && m <= data.len(), "asks for more, within the file");
                    n = m;
                }
                r => return r,
            }
        }
    }

    /// A minimal ELF64 image: header, program headers, then `extra` bytes.
    fn craft(e_type: u16, phdrs: &[(u32, u32, u64, u64, u64, u64)], extra: usize) -> Vec<u8> {
        let phoff = 64u64;
        let mut v = vec![0u8; 64 + phdrs.len() * 56 + extra];
        v[..4].copy_from_slice(b"\x7fELF");
        v[4] = 2; // ELFCLASS64
        v[5] = 1; // little endian
        v[6] = 1;
        v[16..18].copy_from_slice(&e_type.to_le_bytes());
        v[18..20].copy_from_slice(&62u16.to_le_bytes()); // EM_X86_64
        v[20..24].copy_from_slice(&1u32.to_le_bytes());
        v[24..32].copy_from_slice(&0x1040u64.to_le_bytes()); // entry
        v[32..40].copy_from_slice(&phoff.to_le_bytes());
        v[52..54].copy_from_slice(&64u16.to_le_bytes());
        v[54..56].copy_from_slice(&56u16.to_le_bytes());
        v[56..58].copy_from_slice(&(phdrs.len() as u16).to_le_bytes());
        for (i, &(ty, flags, off, vaddr, filesz, memsz)) in phdrs.iter().enumerate() {
            let b = 64 + i * 56;
            v[b..b + 4].copy_from_slice(&ty.to_le_bytes());
            v[b + 4..b + 8].copy_from_slice(&flags.to_le_bytes());
            v[b + 8..b + 16].copy_from_slice(&off.to_le_bytes());
            v[b + 16..b + 24].copy_from_slice(&vaddr.to_le_bytes());
            v[b + 32..b + 40].copy_from_slice(&filesz.to_le_bytes());
            v[b + 40..b + 48].copy_from_slice(&memsz.to_le_bytes());
            v[b + 48..b + 56].copy_from_slice(&0x1000u64.to_le_bytes());
        }
        v
    }

    #[test]
    fn busybox_static_is_accepted() {
        let data = std::fs::read("/bin/busybox").expect("/bin/busybox (static x86_64)");
        let plan = plan_file(&data).unwrap();
        assert!(!plan.pie);
        assert_eq!(plan.bias, 0);
        assert!(plan.segments.len() >= 2);
        assert!(plan.segments.iter().any(|s| s.prot & PROT_EXEC != 0));
        assert!(plan.segments.iter().all(|s| s.vaddr >= USER_START));
        assert!(plan.entry >= plan.segments[0].vaddr);
        assert_eq!(plan.phent, 56);
        assert!(plan.phdr >= plan.segments[0].vaddr);
        let last = plan
            .segments
            .iter()
            .map(|s| s.vaddr + s.memsz)
            .max()
            .unwrap();
        assert_eq!(plan.brk_start, align_up(last, PAGE_SIZE));
        let r = plan.regions();
        assert!(r.windows(2).all(|w| w[0].end <= w[1].start), "no overlaps");
    }

    #[test]
    fn dynamic_ls_is_planned_with_its_interpreter() {
        let data = std::fs::read("/bin/ls").expect("/bin/ls");
        let plan = plan_file(&data).unwrap();
        let at = plan.interp.unwrap();
        let raw = &data[at.offset as usize..][..at.len as usize];
        assert_eq!(interp_name(raw), Ok(&b"/lib64/ld-linux-x86-64.so.2"[..]));
        assert!(plan.pie, "Debian builds /bin/ls as PIE");
        assert!(plan.segments[0].vaddr >= USER_PIE_BASE);
    }

    #[test]
    fn the_dynamic_linker_is_placed_at_the_requested_base() {
        let data = std::fs::read("/lib64/ld-linux-x86-64.so.2").expect("ld.so");
        let plan = plan_at(
            &data[..HEAD_LEN],
            data.len() as u64,
            mote_abi::layout::INTERP_BASE,
        )
        .unwrap();
        assert!(plan.interp.is_none());
        assert_eq!(plan.bias, mote_abi::layout::INTERP_BASE);
        assert!(plan.entry > plan.bias);
    }

    #[test]
    fn elf32_is_refused() {
        let mut h = vec![0u8; 52];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = 1;
        h[5] = 1;
        h[18] = 3; // EM_386
        let err = plan_file(&h).unwrap_err();
        assert_eq!(err, LoadError::Elf32);
        assert!(err.to_string().starts_with("32-bit ELF (ELFCLASS32)"));
    }

    #[test]
    fn truncated_busybox_is_refused_with_offsets() {
        let data = std::fs::read("/bin/busybox").unwrap();
        let cut = &data[..data.len() / 2];
        let err = plan_file(cut).unwrap_err();
        let LoadError::Truncated { end, file_size, .. } = err else {
            panic!("{err:?}")
        };
        assert_eq!(file_size, cut.len() as u64);
        assert!(end > file_size);
        assert!(err.to_string().starts_with("truncated ELF: segment "));
        // Cut inside the header.
        assert_eq!(
            plan_file(&data[..40]),
            Err(LoadError::TruncatedHeader { file_size: 40 })
        );
    }

    #[test]
    fn text_file_is_not_elf() {
        let err = plan_file(b"#!/bin/sh\necho hi\n").unwrap_err();
        assert_eq!(err, LoadError::NotElf);
        assert_eq!(
            err.to_string(),
            "not an ELF file: mote runs x86_64 Linux executables"
        );
        assert_eq!(plan_file(b""), Err(LoadError::NotElf));
    }

    #[test]
    fn other_machines_and_types_are_refused() {
        let mut v = craft(2, &[(1, 5, 0, 0x40_0000, 0x100, 0x100)], 0);
        v[18..20].copy_from_slice(&183u16.to_le_bytes());
        let err = plan_file(&v).unwrap_err();
        assert_eq!(
            err.to_string(),
            "not an x86_64 program (machine EM_AARCH64): build it for x86_64"
        );
        let v = craft(1, &[(1, 5, 0, 0x40_0000, 0x100, 0x100)], 0);
        assert!(plan_file(&v)
            .unwrap_err()
            .to_string()
            .starts_with("not an executable (ELF type ET_REL)"));
    }

    #[test]
    fn static_pie_is_loaded_at_the_pie_base() {
        let v = craft(
            3,
            &[
                (ph::PT_LOAD, ph::PF_R | ph::PF_X, 0, 0, 0x200, 0x200),
                (
                    ph::PT_LOAD,
                    ph::PF_R | ph::PF_W,
                    0x200,
                    0x1200,
                    0x10,
                    0x3000,
                ),
            ],
            0x300,
        );
        let plan = plan_file(&v).unwrap();
        assert!(plan.pie);
        assert_eq!(plan.bias, USER_PIE_BASE);
        assert_eq!(plan.entry, USER_PIE_BASE + 0x1040);
        assert_eq!(plan.phdr, USER_PIE_BASE + 64);
        assert_eq!(plan.segments[1].vaddr, USER_PIE_BASE + 0x1200);
        assert_eq!(plan.brk_start, USER_PIE_BASE + 0x5000);
        assert_eq!(
            plan.regions(),
            [
                Region {
                    start: USER_PIE_BASE,
                    end: USER_PIE_BASE + 0x1000,
                    prot: PROT_READ | PROT_EXEC
                },
                Region {
                    start: USER_PIE_BASE + 0x1000,
                    end: USER_PIE_BASE + 0x5000,
                    prot: PROT_READ | PROT_WRITE
                },
            ]
        );
    }

    #[test]
    fn a_page_shared_by_two_segments_gets_both_protections() {
        let v = craft(
            2,
            &[
                (ph::PT_LOAD, ph::PF_R | ph::PF_X, 0, 0x40_0000, 0x800, 0x800),
                (
                    ph::PT_LOAD,
                    ph::PF_R | ph::PF_W,
                    0x800,
                    0x40_0800,
                    0x100,
                    0x1000,
                ),
            ],
            0x900,
        );
        let r = plan_file(&v).unwrap().regions();
        assert_eq!(
            r,
            [
                Region {
                    start: 0x40_0000,
                    end: 0x40_1000,
                    prot: PROT_READ | PROT_WRITE | PROT_EXEC
                },
                Region {
                    start: 0x40_1000,
                    end: 0x40_2000,
                    prot: PROT_READ | PROT_WRITE
                },
            ]
        );
    }

    #[test]
    fn segments_outside_the_user_range_are_refused() {
        let v = craft(2, &[(ph::PT_LOAD, ph::PF_R, 0, 0x1000, 0x10, 0x10)], 0x10);
        assert!(matches!(
            plan_file(&v),
            Err(LoadError::OutOfRange { index: 0, .. })
        ));
        let v = craft(
            2,
            &[(ph::PT_LOAD, ph::PF_R, 0, USER_END - 0x1000, 0x10, 0x2000)],
            0x10,
        );
        assert!(matches!(plan_file(&v), Err(LoadError::OutOfRange { .. })));
        let v = craft(
            2,
            &[(ph::PT_LOAD, ph::PF_R, 0, 0x40_0000, 0x20, 0x10)],
            0x20,
        );
        assert_eq!(plan_file(&v), Err(LoadError::FileszOverMemsz { index: 0 }));
        let v = craft(2, &[(ph::PT_NOTE, 0, 0, 0, 0, 0)], 0);
        assert_eq!(plan_file(&v), Err(LoadError::NoLoadSegments));
    }

    /// Regression: AT_PHDR was taken from PT_PHDR; Linux ignores PT_PHDR and uses
    /// the load segment whose file bytes hold the table.
    #[test]
    fn at_phdr_comes_from_the_load_segment_holding_the_table() {
        let v = craft(
            2,
            &[
                (ph::PT_PHDR, ph::PF_R, 64, 0x70_0000, 112, 112),
                (ph::PT_LOAD, ph::PF_R | ph::PF_X, 0, 0x40_0000, 0x200, 0x200),
            ],
            0x200,
        );
        assert_eq!(plan_file(&v).unwrap().phdr, 0x40_0040);
        // No segment holds the table: the bias alone (0 here), as Linux.
        let v = craft(
            2,
            &[(ph::PT_LOAD, ph::PF_R, 0x1000, 0x40_0000, 0x10, 0x10)],
            0x1100,
        );
        assert_eq!(plan_file(&v).unwrap().phdr, 0);
    }

    /// Regression: a PT_INTERP past the first 128 KiB was refused; glibc's
    /// libc.so.6 has its name 1.6 MiB in, and Linux runs it.
    #[test]
    fn an_interpreter_name_anywhere_in_the_file_is_found() {
        let data = std::fs::read("/lib/x86_64-linux-gnu/libc.so.6").expect("libc.so.6");
        let plan = plan_file(&data).unwrap();
        let at = plan.interp.unwrap();
        assert!(at.offset > HEAD_MAX as u64);
        let raw = &data[at.offset as usize..][..at.len as usize];
        assert_eq!(interp_name(raw), Ok(&b"/lib64/ld-linux-x86-64.so.2"[..]));
        assert_eq!(interp_name(b"/lib/ld.so"), Err(LoadError::BadInterp));
        assert_eq!(interp_name(b"\0\0"), Err(LoadError::BadInterp));
        // Longer than PATH_MAX, or past the end of the file: ENOEXEC.
        let v = craft(
            2,
            &[
                (ph::PT_INTERP, ph::PF_R, 0x100, 0, 0x1001, 0x1001),
                (ph::PT_LOAD, ph::PF_R, 0, 0x40_0000, 0x10, 0x10),
            ],
            0x2000,
        );
        assert_eq!(plan_file(&v), Err(LoadError::BadInterp));
        let v = craft(
            2,
            &[
                (ph::PT_INTERP, ph::PF_R, 0x100, 0, 0x200, 0x200),
                (ph::PT_LOAD, ph::PF_R, 0, 0x40_0000, 0x10, 0x10),
            ],
            0x100,
        );
        assert_eq!(plan_file(&v), Err(LoadError::BadInterp));
    }
}
