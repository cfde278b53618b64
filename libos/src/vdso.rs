//! The application's vDSO: a small ELF shared object (`libos/vdso/vdso.c`, built by
//! `libos/build.rs` with gcc and ld and embedded here) that answers
//! `clock_gettime`, `gettimeofday`, `time`, `clock_getres` and `getcpu` in the
//! application itself, as Linux's vDSO does natively. libos maps it read-only and
//! executable at [`VDSO_VA`] for every program it loads (`execve` included), with
//! its data page ("vvar", read-only) one page below, and passes the image's
//! address as `AT_SYSINFO_EHDR`; glibc, static or dynamic, finds the functions by
//! name and `LINUX_2.6` version through the image's dynamic symbol table.
//!
//! The data page holds [`VData`]: the clock references of [`crate::time::Clock`],
//! which publishes them after every refresh under a one-byte sequence counter
//! (see `Clock::publish`). Both pages are written through [`Platform::poke`], so
//! they never need to be writable for the application. A clock the vDSO does not
//! keep, or a reference older than a second, sends the call to the runtime (its
//! direct entry, else `syscall`), which answers and refreshes the page.

use mote_abi::errno::Errno;
use mote_abi::layout::{align_up, PAGE_SIZE, USER_STACK_TOP};

use crate::mm::{AddressSpace, VmaKind};
use crate::platform::Platform;
use crate::uapi::mman::{PROT_EXEC, PROT_READ};

/// The image (`vdso.so`: one PT_LOAD from offset 0, no relocations).
pub static IMAGE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/vdso.so"));

/// Where the data page goes: above the main stack, as Linux puts `[vvar]` and
/// `[vdso]`, below the end of the user range. The image follows it.
pub const VVAR_VA: u64 = USER_STACK_TOP + (2 << 20);
/// The image's address (`AT_SYSINFO_EHDR`).
pub const VDSO_VA: u64 = VVAR_VA + PAGE_SIZE;

/// The data page's contents (`struct vdata` in `vdso.c`; little-endian).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VData {
    /// Odd while an update is being written.
    pub seq: u8,
    /// ns = ticks * mult >> 32; 0 when there is no reference yet.
    pub mult: u64,
    /// A reference older than this many TSC ticks is not used
    /// (`max_ticks * mult` fits 64 bits).
    pub max_ticks: u64,
    /// `CLOCK_REALTIME` reference: TSC, seconds, nanoseconds (below 10^9).
    pub real: [u64; 3],
    /// `CLOCK_MONOTONIC` reference, the same way.
    pub mono: [u64; 3],
    /// The runtime's direct entry (`mote_syscall`), or 0.
    pub direct: u64,
}

/// Bytes of [`VData`] in the page.
pub const VDATA_LEN: usize = 80;

impl VData {
    fn words(&self) -> [u64; 9] {
        let [a, b, c] = self.real;
        let [d, e, f] = self.mono;
        [self.mult, self.max_ticks, a, b, c, d, e, f, self.direct]
    }

    pub fn to_bytes(&self) -> [u8; VDATA_LEN] {
        let mut b = [0u8; VDATA_LEN];
        b[0] = self.seq;
        for (i, w) in self.words().iter().enumerate() {
            b[8 + 8 * i..16 + 8 * i].copy_from_slice(&w.to_le_bytes());
        }
        b
    }

    pub fn parse(b: &[u8; VDATA_LEN]) -> Self {
        let w = |i: usize| u64::from_le_bytes(b[8 + 8 * i..16 + 8 * i].try_into().unwrap());
        VData {
            seq: b[0],
            mult: w(0),
            max_ticks: w(1),
            real: [w(2), w(3), w(4)],
            mono: [w(5), w(6), w(7)],
            direct: w(8),
        }
    }
}

/// Map the data page and the image into `mm` (replacing whatever is there) and
/// copy the image in. Returns the data page's address and the image's.
pub fn map<P: Platform>(mm: &mut AddressSpace, p: &P) -> Result<(u64, u64), Errno> {
    let image_len = align_up(IMAGE.len() as u64, PAGE_SIZE);
    mm.map_fixed(p, VVAR_VA, PAGE_SIZE, PROT_READ, VmaKind::Anon)?;
    mm.map_fixed(p, VDSO_VA, image_len, PROT_READ | PROT_EXEC, VmaKind::Anon)?;
    mm.label(VVAR_VA, VDSO_VA, b"[vvar]");
    mm.label(VDSO_VA, VDSO_VA + image_len, b"[vdso]");
    p.poke(VDSO_VA, IMAGE)?;
    Ok((VVAR_VA, VDSO_VA))
}

#[cfg(test)]
mod tests {
    use super::*;
    use goblin::elf::Elf;

    /// Linux's names, all at version `LINUX_2.6`.
    const EXPORTS: [&str; 5] = [
        "__vdso_clock_gettime",
        "__vdso_gettimeofday",
        "__vdso_time",
        "__vdso_clock_getres",
        "__vdso_getcpu",
    ];

    #[test]
    fn image_is_one_readonly_executable_load_without_relocations() {
        let elf = Elf::parse(IMAGE).expect("vdso.so parses");
        let loads: Vec<_> = elf
            .program_headers
            .iter()
            .filter(|ph| ph.p_type == goblin::elf::program_header::PT_LOAD)
            .collect();
        assert_eq!(loads.len(), 1);
        assert_eq!((loads[0].p_offset, loads[0].p_vaddr), (0, 0));
        assert!(loads[0].p_filesz as usize <= IMAGE.len());
        assert!(!loads[0].is_write() && loads[0].is_executable());
        assert!(elf.dynrelas.is_empty() && elf.dynrels.is_empty() && elf.pltrelocs.is_empty());
        assert_eq!(elf.soname, Some("linux-vdso.so.1"));
        assert!(IMAGE.len() as u64 <= 2 * PAGE_SIZE, "the vDSO stays small");
    }

    #[test]
    fn image_exports_linuxs_versioned_names() {
        let elf = Elf::parse(IMAGE).unwrap();
        let versym = elf.versym.as_ref().expect(".gnu.version");
        let verdef = elf.verdef.as_ref().expect(".gnu.version_d");
        let version_name = |idx: u16| {
            verdef
                .iter()
                .find(|d| d.vd_ndx == idx & 0x7fff)
                .and_then(|d| d.iter().next())
                .and_then(|a| elf.dynstrtab.get_at(a.vda_name))
        };
        for name in EXPORTS {
            let (i, sym) = elf
                .dynsyms
                .iter()
                .enumerate()
                .find(|(_, s)| elf.dynstrtab.get_at(s.st_name) == Some(name))
                .unwrap_or_else(|| panic!("{name} exported"));
            assert!(sym.is_function() && sym.st_value != 0, "{name}");
            let v = versym.get_at(i).expect("versym entry").vs_val;
            assert_eq!(version_name(v), Some("LINUX_2.6"), "{name}");
        }
        let hash = |tag| {
            elf.dynamic
                .as_ref()
                .unwrap()
                .dyns
                .iter()
                .any(|d| d.d_tag == tag)
        };
        assert!(hash(goblin::elf::dynamic::DT_HASH) && hash(goblin::elf::dynamic::DT_GNU_HASH));
    }

    #[test]
    fn vdata_round_trips_and_matches_the_c_layout() {
        let d = VData {
            seq: 3,
            mult: 1,
            max_ticks: 2,
            real: [3, 4, 5],
            mono: [6, 7, 8],
            direct: 9,
        };
        let b = d.to_bytes();
        assert_eq!(VData::parse(&b), d);
        // vdso.c: seq at 0, then mult, max_ticks, real_*, mono_*, direct at 72..80.
        assert_eq!(b[8..16], 1u64.to_le_bytes());
        assert_eq!(b[24..32], 3u64.to_le_bytes());
        assert_eq!(b[48..56], 6u64.to_le_bytes());
        assert_eq!(b[72..80], 9u64.to_le_bytes());
    }
}
