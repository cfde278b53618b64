//! Rewriting an executable: check that it is one `mote link` understands, plan the
//! added segments, and write the output file.
//!
//! # The output's layout
//! Nothing of the input moves in memory (a static executable has no relocations to
//! move it by). In the file, a region is inserted at the first page boundary `X`
//! after the segment holding the ELF header (every later byte moves up by the
//! region's size, a multiple of every moved segment's alignment, so offsets stay
//! congruent to addresses). The region holds, mapped by two added `PT_LOAD`s at the
//! first free 2 MiB boundary `V` above the program:
//!
//! ```text
//!   X, V            the new program header table (the old entries, the two
//!                   loads, a PT_NOTE), the policy note, the init stub and
//!                   one stub per site                                  R E
//!   X + code, V + 2 MiB   the entry words (register, frame)            RW
//! ```
//!
//! The table moves because the old one has no room for more entries; it stays
//! within the first 128 KiB of the file (where mote and Linux read it), and
//! `AT_PHDR` finds it in the added load as Linux (since 5.18) and libos compute it.
//! `e_entry` becomes the init stub. Each segment on its own 2 MiB range lets libos
//! back the added code and the word with whole large pages.

use goblin::elf::{header, program_header as ph, section_header as sh, Elf};
use mote_abi::note::{Policy, F_LINKED, NOTE_SIZE};

use crate::dynamic::{self, Dynamic, Edit};
use crate::scan::{self, Kept, Scan, Text};
use crate::tramp::{self, Start, Then};
use crate::LinkError;

/// The only interpreter whose way of calling a library's `DT_INIT` (argc, argv,
/// envp) the library init stubs rely on.
pub const GLIBC_INTERP: &str = "ld-linux-x86-64.so.2";

/// What the rewritten file is to its loader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A program (static, static-PIE, or dynamically linked): the init stub is its
    /// entry point.
    Program,
    /// A shared library a dynamically linked program loads: the init stub is its
    /// `DT_INIT` (and goes on to the old one).
    Library,
    /// glibc's ld.so, as a program's interpreter: the init stub is its entry
    /// point, as for a program. ld.so finds its own program header table at
    /// `__ehdr_start + e_phoff` (its relro, `dl_iterate_phdr`), so the table
    /// stays where it is: its `PT_NOTE` entry becomes the added code's load, and
    /// the entry words extend its last (read-write) load's zero fill, on the page
    /// after `_end`'s (its start-up allocator uses the rest of that one); no
    /// policy note.
    Interp,
}

/// How to rewrite.
#[derive(Clone, Copy, Debug)]
pub struct Options<'a> {
    /// Program or library.
    pub role: Role,
    /// Rewrite the sites (false: only add the note, `--no-patch`).
    pub patch: bool,
    /// For a dynamically linked file: put first in its run path (where its
    /// rewritten libraries are, `$ORIGIN/...`).
    pub run_path: Option<&'a str>,
}

const PAGE: u64 = 4096;
const LARGE: u64 = 2 << 20;
const PHDR_SIZE: u64 = 56;
/// The program header table must end within this many bytes of the file's start.
const HEAD_MAX: u64 = 128 * 1024;
/// Stubs are 16-byte aligned.
const STUB_ALIGN: u64 = 16;

fn align_up(x: u64, a: u64) -> u64 {
    x.div_ceil(a) * a
}

/// What a rewrite did.
#[derive(Debug)]
pub struct Outcome {
    /// The output file's bytes.
    pub bytes: Vec<u8>,
    /// The scan (rewritten and kept sites).
    pub scan: Scan,
    /// Address of the added code.
    pub code_vaddr: u64,
}

/// Check the input and say what kind of program it is; refusals name the reason.
fn check(bytes: &[u8], role: Role) -> Result<Elf<'_>, LinkError> {
    if bytes.len() < 16 || &bytes[..4] != b"\x7fELF" {
        return Err(LinkError::Refused("not an ELF file".into()));
    }
    if bytes[4] != 2 {
        return Err(LinkError::Refused(
            "a 32-bit ELF file: mote link rewrites x86_64 (64-bit) programs only".into(),
        ));
    }
    if bytes[5] != 1 {
        return Err(LinkError::Refused(
            "a big-endian ELF file: mote link rewrites x86_64 programs only".into(),
        ));
    }
    let elf =
        Elf::parse(bytes).map_err(|e| LinkError::Refused(format!("a malformed ELF file ({e})")))?;
    let h = &elf.header;
    if h.e_machine != header::EM_X86_64 {
        return Err(LinkError::Refused(format!(
            "an ELF file for {} (machine {}), not x86_64",
            header::machine_to_str(h.e_machine),
            h.e_machine
        )));
    }
    match h.e_type {
        header::ET_EXEC | header::ET_DYN => {}
        t => {
            return Err(LinkError::Refused(format!(
                "not an executable (ELF type {}): link it first",
                header::et_to_str(t)
            )))
        }
    }
    if h.e_phentsize as u64 != PHDR_SIZE {
        return Err(LinkError::Refused(format!(
            "program headers of {} bytes: a layout mote link does not understand",
            h.e_phentsize
        )));
    }
    match (role, elf.interpreter) {
        (Role::Program, Some(i)) if i.rsplit('/').next() != Some(GLIBC_INTERP) => {
            return Err(LinkError::Refused(format!(
                "a program for the interpreter {i}: mote link rewrites programs for glibc's \
                 {GLIBC_INTERP} (its libraries' init stubs rely on how it calls DT_INIT); \
                 link with glibc, or with -static"
            )))
        }
        (Role::Library, _) if h.e_type != header::ET_DYN => {
            return Err(LinkError::Refused(
                "a shared library that is not ET_DYN".into(),
            ))
        }
        _ => {}
    }
    if role == Role::Interp && (h.e_type != header::ET_DYN || elf.interpreter.is_some()) {
        return Err(LinkError::Refused(
            "an interpreter that is not a self-contained ET_DYN program".into(),
        ));
    }
    if role != Role::Library && h.e_type == header::ET_DYN && elf.entry == 0 {
        return Err(LinkError::Refused("a shared library, not a program".into()));
    }
    if elf.section_headers.len() < 2 {
        return Err(LinkError::Refused(
            "no section headers: mote link cannot tell code from data".into(),
        ));
    }
    if let Some(p) = crate::note::policy_in(bytes, &elf)? {
        if p.flags & F_LINKED != 0 {
            return Err(LinkError::Refused(
                "already rewritten by mote link (it has a mote note); rewrite the original".into(),
            ));
        }
    }
    if elf
        .program_headers
        .iter()
        .any(|p| p.p_type == ph::PT_LOAD && p.p_flags & ph::PF_W != 0 && p.p_flags & ph::PF_X != 0)
    {
        return Err(LinkError::Refused(
            "a writable and executable segment (code that may modify itself)".into(),
        ));
    }
    Ok(elf)
}

/// The insertion point: the first page boundary, from one page on, that no
/// segment's or section's file bytes straddle.
fn insertion_point(elf: &Elf, file_len: u64, max: u64) -> Result<u64, LinkError> {
    let mut ranges: Vec<(u64, u64)> = elf
        .program_headers
        .iter()
        .filter(|p| p.p_filesz > 0)
        .map(|p| (p.p_offset, p.p_offset + p.p_filesz))
        .collect();
    ranges.extend(
        elf.section_headers
            .iter()
            .filter(|s| s.sh_type != sh::SHT_NOBITS && s.sh_size > 0)
            .map(|s| (s.sh_offset, s.sh_offset + s.sh_size)),
    );
    let mut x = PAGE;
    while x + PAGE <= max && x <= file_len {
        if ranges.iter().all(|&(a, b)| !(a < x && x < b)) {
            return Ok(x);
        }
        x += PAGE;
    }
    Err(LinkError::Refused(
        "no page boundary in the first 128 KiB between segments (the ELF header shares its \
         segment with the code): a layout mote link does not understand; relink with the \
         default -z separate-code"
            .into(),
    ))
}

/// Targets known from outside the code: symbols in the text, and every
/// pointer-sized word of the allocated data that points into it (function
/// pointers, absolute jump tables); relocation addends of a static-PIE.
fn extra_targets(bytes: &[u8], elf: &Elf, in_text: &dyn Fn(u64) -> bool) -> Vec<u64> {
    let mut v: Vec<u64> = elf
        .syms
        .iter()
        .map(|s| s.st_value)
        .filter(|&a| in_text(a))
        .collect();
    for s in elf.section_headers.iter() {
        let data = s.sh_flags & u64::from(sh::SHF_ALLOC) != 0
            && s.sh_flags & u64::from(sh::SHF_EXECINSTR) == 0
            && s.sh_type != sh::SHT_NOBITS;
        if !data {
            continue;
        }
        let Some(b) = bytes.get(s.sh_offset as usize..(s.sh_offset + s.sh_size) as usize) else {
            continue;
        };
        for w in b.chunks_exact(8) {
            let a = u64::from_le_bytes(w.try_into().expect("8 bytes"));
            if in_text(a) {
                v.push(a);
            }
        }
        // Relative jump tables (gcc's `lea base(%rip); movslq (base,i,4)`): words
        // that, added to a 4-byte-aligned address of this section, land in the
        // text. An over-approximation: extra targets only make the scan careful.
        for (k, w) in b.chunks_exact(4).enumerate() {
            let d = i32::from_le_bytes(w.try_into().expect("4 bytes")) as i64;
            for base in [s.sh_addr, s.sh_addr + 4 * k as u64] {
                let a = base.wrapping_add(d as u64);
                if d != 0 && in_text(a) {
                    v.push(a);
                }
            }
        }
    }
    v.extend(
        elf.dynsyms
            .iter()
            .map(|s| s.st_value)
            .filter(|&a| in_text(a)),
    );
    v.extend(
        elf.dynrelas
            .iter()
            .filter_map(|r| r.r_addend)
            .map(|a| a as u64)
            .filter(|&a| in_text(a)),
    );
    v
}

/// Rewrite `bytes` with `policy` in its note.
pub fn rewrite(bytes: &[u8], policy: &Policy, o: &Options) -> Result<Outcome, LinkError> {
    let patch = o.patch;
    let elf = check(bytes, o.role)?;
    let file_len = bytes.len() as u64;
    let dynamic = dynamic::read(bytes, &elf)?;
    if elf.interpreter.is_some() && dynamic.is_none() {
        return Err(LinkError::Refused(
            "an interpreter but no dynamic section: a layout mote link does not understand".into(),
        ));
    }
    // `.dynamic` moves for a library (its DT_INIT) and for a program given a run
    // path; a static-PIE keeps its own.
    let edit_dyn = dynamic
        .as_ref()
        .filter(|_| o.role == Role::Library || o.run_path.is_some());
    if o.role == Role::Library && edit_dyn.is_none() {
        return Err(LinkError::Refused(
            "a shared library without a dynamic section".into(),
        ));
    }
    // Linux and libos read a program's header table from its first 128 KiB; ld.so
    // reads a library's wherever it is.
    let head_max = match o.role {
        Role::Program => HEAD_MAX,
        Role::Library | Role::Interp => file_len.max(PAGE) + PAGE,
    };
    let in_place = o.role == Role::Interp;
    let x = insertion_point(&elf, file_len, head_max)?;
    let loads: Vec<&goblin::elf::ProgramHeader> = elf
        .program_headers
        .iter()
        .filter(|p| p.p_type == ph::PT_LOAD)
        .collect();
    if loads.is_empty() {
        return Err(LinkError::Refused("no loadable segment".into()));
    }
    if loads.windows(2).any(|w| w[1].p_vaddr < w[0].p_vaddr) {
        return Err(LinkError::Refused(
            "loadable segments out of address order: a layout mote link does not understand".into(),
        ));
    }
    let top = loads
        .iter()
        .map(|p| p.p_vaddr + p.p_memsz)
        .max()
        .unwrap_or(0);
    let (v, word) = if in_place {
        let last = loads.last().expect("a load");
        if last.p_flags & ph::PF_W == 0 || last.p_vaddr + last.p_memsz != top {
            return Err(LinkError::Refused(
                "an interpreter whose last loadable segment is not its writable one: a layout \
                 mote link does not understand"
                    .into(),
            ));
        }
        if !elf.program_headers.iter().any(|p| p.p_type == ph::PT_NOTE) {
            return Err(LinkError::Refused(
                "an interpreter without a PT_NOTE entry to give to the added code".into(),
            ));
        }
        // The page after `_end`'s: ld.so's start-up allocator hands out the
        // rest of `_end`'s page, then maps pages of its own.
        let word = align_up(top, PAGE);
        (align_up(word + 16, LARGE), word)
    } else {
        let v = align_up(top, LARGE);
        (v, v + LARGE)
    };

    // The code: executable sections, each inside an executable load.
    let mut texts = Vec::new();
    let mut text_file = Vec::new(); // (addr, len, file offset)
    for s in elf.section_headers.iter() {
        let code = s.sh_type == sh::SHT_PROGBITS
            && s.sh_flags & u64::from(sh::SHF_ALLOC) != 0
            && s.sh_flags & u64::from(sh::SHF_EXECINSTR) != 0;
        if !code || s.sh_size == 0 {
            continue;
        }
        let inside = loads.iter().any(|p| {
            p.p_flags & ph::PF_X != 0
                && p.p_vaddr <= s.sh_addr
                && s.sh_addr + s.sh_size <= p.p_vaddr + p.p_filesz
                && s.sh_addr - p.p_vaddr == s.sh_offset - p.p_offset
        });
        if !inside {
            return Err(LinkError::Refused(format!(
                "code section at {:#x} is not where an executable segment maps it: a layout \
                 mote link does not understand",
                s.sh_addr
            )));
        }
        let b = bytes
            .get(s.sh_offset as usize..(s.sh_offset + s.sh_size) as usize)
            .ok_or_else(|| LinkError::Refused("a code section past the end of the file".into()))?;
        texts.push(Text {
            addr: s.sh_addr,
            bytes: b,
        });
        text_file.push((s.sh_addr, s.sh_size, s.sh_offset));
    }
    let in_text = |a: u64| text_file.iter().any(|&(s, l, _)| s <= a && a < s + l);
    // A relocation the program's start-up code applies (a static-PIE's
    // `.rela.dyn`, a static program's IRELATIVE `.rela.plt`: the loaded ones)
    // would write over rewritten or moved bytes if it targets the code.
    let loaded = elf.shdr_relocs.iter().filter(|(k, _)| {
        elf.section_headers
            .get(*k)
            .is_some_and(|s| s.sh_flags & u64::from(sh::SHF_ALLOC) != 0)
    });
    let relr = match &dynamic {
        Some(d) => dynamic::relr_targets(bytes, &elf, d)?,
        None => Vec::new(),
    };
    if let Some(at) = elf
        .dynrelas
        .iter()
        .chain(elf.dynrels.iter())
        .chain(elf.pltrelocs.iter())
        .chain(loaded.flat_map(|(_, rs)| rs.iter()))
        .map(|r| r.r_offset)
        .chain(relr.iter().copied())
        .find(|&a| in_text(a))
    {
        return Err(LinkError::Refused(format!(
            "a relocation writes into the code at {at:#x} (text relocations): the rewritten \
             bytes would be overwritten at start-up"
        )));
    }
    let scan = if patch {
        let extra = extra_targets(bytes, &elf, &in_text);
        scan::scan(&texts, extra)
    } else {
        Scan::default()
    };

    // The region: table, note, code.
    let old_n = elf.program_headers.len() as u64;
    let table_len = if in_place { 0 } else { (old_n + 3) * PHDR_SIZE };
    let note_len = if in_place { 0 } else { NOTE_SIZE as u64 };
    if x + table_len > head_max {
        return Err(LinkError::Refused("too many program headers".into()));
    }
    let note_off = align_up(table_len, 8);
    let strtab_off = align_up(note_off + note_len, 8);
    let (strtab, paths) = match edit_dyn {
        Some(d) => dynamic::strtab(
            d,
            &Edit {
                run_path: o.run_path,
                ..Edit::default()
            },
        ),
        None => (Vec::new(), Vec::new()),
    };
    let mut code_off = align_up(strtab_off + strtab.len() as u64, STUB_ALIGN);
    let mut code = vec![0u8; code_off as usize];
    code[strtab_off as usize..strtab_off as usize + strtab.len()].copy_from_slice(&strtab);
    let emit = |b: Vec<u8>, code: &mut Vec<u8>, off: &mut u64| {
        code.extend_from_slice(&b);
        *off = align_up(code.len() as u64, STUB_ALIGN);
        code.resize(*off as usize, 0xcc);
    };
    let entry = elf.entry;
    let init_at = v + code_off;
    let unreachable = || {
        LinkError::Refused(
            "the program spans more than 2 GiB: the added code is out of a jump's reach".into(),
        )
    };
    let old_init = edit_dyn.and_then(|d: &Dynamic| d.get(goblin::elf::dynamic::DT_INIT));
    let (start, then) = match o.role {
        Role::Program | Role::Interp => (Start::Stack, Then::Jump(entry)),
        Role::Library => (Start::Envp, old_init.map_or(Then::Ret, Then::Jump)),
    };
    let init = tramp::init_stub(init_at, word, start, then).ok_or_else(unreachable)?;
    let dyn_bytes = match edit_dyn {
        Some(d) => dynamic::section(
            d,
            &Edit {
                run_path: o.run_path,
                init: (o.role == Role::Library).then_some(init_at),
            },
            v + strtab_off,
            strtab.len() as u64,
            &paths,
        ),
        None => Vec::new(),
    };
    // The read-write segment: the two entry words, then the moved `.dynamic`.
    let dyn_off = 16u64;
    let rw_len = if in_place {
        0
    } else {
        dyn_off + dyn_bytes.len() as u64
    };
    emit(init, &mut code, &mut code_off);
    let mut jumps = Vec::new();
    let mut kept = Vec::new();
    let mut done = Vec::new();
    for r in &scan.rewrites {
        let at = v + code_off;
        match (tramp::site_stub(at, r, word), tramp::site_jump(r, at)) {
            (Some(stub), Some(j)) => {
                emit(stub, &mut code, &mut code_off);
                jumps.push((r.start, j));
                done.push(r.clone());
            }
            _ => kept.push((r.syscall, Kept::NoRoom)),
        }
    }
    let code_len = code.len() as u64;
    if code_len > LARGE {
        return Err(LinkError::Refused(format!(
            "{} system-call sites need more than 2 MiB of stubs",
            done.len()
        )));
    }
    let rx_file = align_up(code_len, PAGE);
    let moved_align = elf
        .program_headers
        .iter()
        .filter(|p| p.p_offset >= x)
        .map(|p| p.p_align.max(1))
        .chain(
            elf.section_headers
                .iter()
                .filter(|s| s.sh_offset >= x)
                .map(|s| s.sh_addralign.max(1)),
        )
        .max()
        .unwrap_or(PAGE)
        .max(PAGE);
    if !moved_align.is_power_of_two() {
        return Err(LinkError::Refused(
            "a segment alignment that is not a power of two".into(),
        ));
    }
    let region = align_up(rx_file + align_up(rw_len, PAGE), moved_align);
    let shift = |off: u64| if off >= x { off + region } else { off };

    // Program headers: the old ones (moved), the two loads after the last load, a note.
    let mut phdrs: Vec<goblin::elf::ProgramHeader> = Vec::new();
    let last_load = elf
        .program_headers
        .iter()
        .rposition(|p| p.p_type == ph::PT_LOAD)
        .expect("a load");
    let mut note_given = false;
    for (i, p) in elf.program_headers.iter().enumerate() {
        let mut q = p.clone();
        if in_place && q.p_type == ph::PT_NOTE && !note_given {
            q = load(x, v, code_len, ph::PF_R | ph::PF_X, PAGE);
            note_given = true;
        } else if in_place && i == last_load {
            q.p_offset = shift(q.p_offset);
            q.p_memsz = word + 16 - q.p_vaddr;
        } else if q.p_type == ph::PT_PHDR {
            q.p_offset = x;
            q.p_vaddr = v;
            q.p_paddr = v;
            q.p_filesz = table_len;
            q.p_memsz = table_len;
        } else if q.p_type == ph::PT_DYNAMIC && edit_dyn.is_some() {
            q.p_offset = x + rx_file + dyn_off;
            q.p_vaddr = word + dyn_off;
            q.p_paddr = word + dyn_off;
            q.p_filesz = dyn_bytes.len() as u64;
            q.p_memsz = dyn_bytes.len() as u64;
        } else if q.p_type != ph::PT_GNU_STACK {
            q.p_offset = shift(q.p_offset);
        }
        phdrs.push(q);
        if i == last_load && !in_place {
            phdrs.push(load(x, v, code_len, ph::PF_R | ph::PF_X, PAGE));
            phdrs.push(load(x + rx_file, word, rw_len, ph::PF_R | ph::PF_W, PAGE));
        }
    }
    if !in_place {
        let mut n = load(x + note_off, v + note_off, NOTE_SIZE as u64, ph::PF_R, 4);
        n.p_type = ph::PT_NOTE;
        phdrs.push(n);
    }

    // The region's bytes.
    let mut reg = code;
    reg.resize(region as usize, 0);
    let mut table = vec![0u8; phdrs.len() * PHDR_SIZE as usize];
    for (k, p) in phdrs.iter().enumerate() {
        write_phdr(
            &mut table[k * PHDR_SIZE as usize..(k + 1) * PHDR_SIZE as usize],
            p,
        );
    }
    if !in_place {
        reg[..table.len()].copy_from_slice(&table);
        let mut pol = *policy;
        pol.flags |= if patch { F_LINKED } else { 0 };
        reg[note_off as usize..note_off as usize + NOTE_SIZE].copy_from_slice(&pol.to_note());
        let d = (rx_file + dyn_off) as usize;
        reg[d..d + dyn_bytes.len()].copy_from_slice(&dyn_bytes);
    }

    // The output.
    let mut out = Vec::with_capacity(bytes.len() + region as usize);
    out.extend_from_slice(&bytes[..x as usize]);
    out.extend_from_slice(&reg);
    out.extend_from_slice(&bytes[x as usize..]);
    for (start, j) in &jumps {
        let &(a, _, off) = text_file
            .iter()
            .find(|&&(a, l, _)| a <= *start && *start < a + l)
            .expect("a site in the text");
        let at = shift(off) + (start - a);
        out[at as usize..at as usize + j.len()].copy_from_slice(j);
    }
    // ELF header: table, entry, sections.
    let h = &elf.header;
    if o.role != Role::Library {
        put(&mut out, 24, &init_at.to_le_bytes()); // e_entry
    }
    if in_place {
        put(&mut out, shift(h.e_phoff) as usize, &table); // the table, where it was
    } else {
        put(&mut out, 32, &x.to_le_bytes()); // e_phoff
        put(&mut out, 56, &(phdrs.len() as u16).to_le_bytes()); // e_phnum
    }
    put(&mut out, 40, &shift(h.e_shoff).to_le_bytes()); // e_shoff
    let shoff = shift(h.e_shoff) as usize;
    for k in 0..h.e_shnum as usize {
        let at = shoff + k * h.e_shentsize as usize + 24; // sh_offset
        let old = u64::from_le_bytes(out[at..at + 8].try_into().expect("8 bytes"));
        put(&mut out, at, &shift(old).to_le_bytes());
    }
    // The moved `.dynamic` and `.dynstr` sections: where the loader finds them now.
    if edit_dyn.is_some() {
        let strtab_at = edit_dyn
            .and_then(|d| d.get(goblin::elf::dynamic::DT_STRTAB))
            .and_then(|a| dynamic::file_offset(&elf, a, 1));
        for (k, sec) in elf.section_headers.iter().enumerate() {
            let new = if sec.sh_type == sh::SHT_DYNAMIC {
                (
                    word + dyn_off,
                    x + rx_file + dyn_off,
                    dyn_bytes.len() as u64,
                )
            } else if sec.sh_type == sh::SHT_STRTAB
                && Some(sec.sh_offset) == strtab_at
                && sec.sh_flags & u64::from(sh::SHF_ALLOC) != 0
            {
                (v + strtab_off, x + strtab_off, strtab.len() as u64)
            } else {
                continue;
            };
            let at = shoff + k * h.e_shentsize as usize;
            put(&mut out, at + 16, &new.0.to_le_bytes()); // sh_addr
            put(&mut out, at + 24, &new.1.to_le_bytes()); // sh_offset
            put(&mut out, at + 32, &new.2.to_le_bytes()); // sh_size
        }
    }
    let mut scan = scan;
    scan.rewrites = done;
    scan.kept.extend(kept);
    Ok(Outcome {
        bytes: out,
        scan,
        code_vaddr: v,
    })
}

fn load(offset: u64, vaddr: u64, size: u64, flags: u32, align: u64) -> goblin::elf::ProgramHeader {
    goblin::elf::ProgramHeader {
        p_type: ph::PT_LOAD,
        p_flags: flags,
        p_offset: offset,
        p_vaddr: vaddr,
        p_paddr: vaddr,
        p_filesz: size,
        p_memsz: size,
        p_align: align,
    }
}

fn put(out: &mut [u8], at: usize, b: &[u8]) {
    out[at..at + b.len()].copy_from_slice(b);
}

fn write_phdr(b: &mut [u8], p: &goblin::elf::ProgramHeader) {
    b[0..4].copy_from_slice(&p.p_type.to_le_bytes());
    b[4..8].copy_from_slice(&p.p_flags.to_le_bytes());
    b[8..16].copy_from_slice(&p.p_offset.to_le_bytes());
    b[16..24].copy_from_slice(&p.p_vaddr.to_le_bytes());
    b[24..32].copy_from_slice(&p.p_paddr.to_le_bytes());
    b[32..40].copy_from_slice(&p.p_filesz.to_le_bytes());
    b[40..48].copy_from_slice(&p.p_memsz.to_le_bytes());
    b[48..56].copy_from_slice(&p.p_align.to_le_bytes());
}
