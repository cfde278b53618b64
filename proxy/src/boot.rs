//! Preparing a partition's memory before its first instruction: loading the
//! kernel-min and runtime images (relocated static-PIE ELFs), building the boot page
//! tables and writing `BootInfo`. The proxy plays the boot loader here, so that
//! kernel-min spends no emulated CPL0 instructions on it.
//!
//! Also what both platforms tell the runtime at boot: the common [`BootParams`]
//! and the one [`boot_info`] builder, to which each platform (`vmm`, `hosted`)
//! adds its part ([`PlatformBoot`]). A leaf module (it uses only `guest`).

use goblin::elf::program_header::{PF_X, PT_LOAD};
use goblin::elf::Elf;
use x86_64::structures::paging::PageTableFlags as F;

use mote_abi::boot::{
    BootInfo, BOOT_F_DEBUG, BOOT_F_FSGSBASE, BOOT_F_NO_PATCH, BOOT_F_SHARED_CPUS, BOOT_F_STATS,
    BOOT_F_TRACE, BOOT_MAGIC, BOOT_VERSION,
};
use mote_abi::errno::Errno;
use mote_abi::layout::*;
use mote_abi::paging::{PageTables, PhysMem};

use crate::guest::GuestMem;

/// What the partition is told at boot, on either platform.
pub struct BootParams {
    pub pid: u32,
    pub argc: u32,
    pub envc: u32,
    pub args_len: u64,
    pub debug: bool,
    pub random: [u8; 16],
    /// `--no-patch`: system-call sites are never rewritten.
    pub no_patch: bool,
    /// `--stats`: report system-call statistics at exit.
    pub stats: bool,
    /// `--trace`: record every system call (`BOOT_F_TRACE`).
    pub trace: bool,
    /// `--page-size` in bytes.
    pub page_size: u64,
    /// LWK cores share host CPUs (`BOOT_F_SHARED_CPUS`).
    pub shared_cpus: bool,
    /// `BootInfo::ignored_signals` (`signals::inherited_ignored`).
    pub ignored_signals: u64,
    /// `--time-slice` in ns (0: never preempt).
    pub time_slice_ns: u64,
    /// `BootInfo::blocked_signals` (`signals::inherited_mask`).
    pub blocked_signals: u64,
    /// The NUMA topology (`numa::plan`), for the whole guest memory.
    pub numa: mote_abi::numa::Topology,
    /// `BootInfo::as_limit`: the application's soft `RLIMIT_AS`.
    pub as_limit: u64,
}

impl BootParams {
    /// `BootInfo::flags` for these parameters on either platform; `fsgsbase`:
    /// user code may use `wrfsbase`/`wrgsbase`.
    pub fn flags(&self, fsgsbase: bool) -> u32 {
        [
            (fsgsbase, BOOT_F_FSGSBASE),
            (self.debug, BOOT_F_DEBUG),
            (self.no_patch, BOOT_F_NO_PATCH),
            (self.stats, BOOT_F_STATS),
            (self.trace, BOOT_F_TRACE),
            // Idle cores sleep at once rather than spin on a host CPU another
            // core needs.
            (self.shared_cpus, BOOT_F_SHARED_CPUS),
        ]
        .into_iter()
        .filter(|&(on, _)| on)
        .fold(0, |f, (_, bit)| f | bit)
    }
}

/// A platform's part of `BootInfo`: where it put the runtime, the page tables
/// and the pools, and what its CPU offers.
pub struct PlatformBoot {
    pub cores: usize,
    pub mem_size: u64,
    pub pool_start: u64,
    /// Start of the 2 MiB-page pool (0: none).
    pub large_pool_start: u64,
    pub runtime_gpa: u64,
    pub runtime_entry: u64,
    pub runtime_text_start: u64,
    pub runtime_text_end: u64,
    /// 0 where the runtime is not entered through traps (hosted).
    pub runtime_trap_entry: u64,
    pub runtime_syscall_entry: u64,
    pub runtime_image_end: u64,
    /// 0 where there are no guest page tables (hosted: Linux's are the application's).
    pub pml4_gpa: u64,
    pub pt_pool_next: u64,
    /// User code may use `wrfsbase`/`wrgsbase`.
    pub fsgsbase: bool,
    pub hwcap: u64,
    pub hwcap2: u64,
    /// The page size the platform can give (`--page-size`, or less).
    pub page_size: u64,
}

/// The `BootInfo` for `params` on a platform; `tsc_khz` is left 0 for the
/// platform to fill in once it knows it.
pub fn boot_info(params: &BootParams, p: &PlatformBoot) -> BootInfo {
    let mut info = BootInfo {
        magic: BOOT_MAGIC,
        version: BOOT_VERSION,
        ncores: p.cores as u32,
        mem_size: p.mem_size,
        pool_start: p.pool_start,
        runtime_gpa: p.runtime_gpa,
        runtime_entry: p.runtime_entry,
        runtime_text_start: p.runtime_text_start,
        runtime_text_end: p.runtime_text_end,
        runtime_trap_entry: p.runtime_trap_entry,
        runtime_syscall_entry: p.runtime_syscall_entry,
        runtime_image_end: p.runtime_image_end,
        pml4_gpa: p.pml4_gpa,
        pt_pool_next: p.pt_pool_next,
        pid: params.pid,
        flags: params.flags(p.fsgsbase),
        tsc_khz: 0,
        args_len: params.args_len,
        argc: params.argc,
        envc: params.envc,
        hwcap: p.hwcap,
        hwcap2: p.hwcap2,
        random: params.random,
        page_size: p.page_size,
        large_pool_start: p.large_pool_start,
        ignored_signals: params.ignored_signals,
        time_slice_ns: params.time_slice_ns,
        blocked_signals: params.blocked_signals,
        as_limit: params.as_limit,
        ..BootInfo::default()
    };
    params.numa.write(&mut info);
    info
}

/// Failure to prepare the partition's memory (a build or proxy bug, or too little
/// memory).
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    #[error("{what} image: {msg}")]
    Image { what: &'static str, msg: String },
    #[error("--mem {mem} MiB is too small: the boot images need {need} MiB")]
    TooSmall { mem: u64, need: u64 },
    #[error("boot page tables: {0:?}")]
    Tables(mote_abi::errno::Errno),
    #[error(
        "--mem {mem}M is more than the partition's boot page tables map with 2 MiB pages (the CPU, \
         as KVM offers it, has no 1 GiB pages: pdpe1gb); give at most --mem {max}M"
    )]
    TooLargeFor2M { mem: u64, max: u64 },
}

/// Where an image landed.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub entry: u64,
    pub text_start: u64,
    pub text_end: u64,
    /// End of the image (virtual, page aligned).
    pub end: u64,
    /// Relocated addresses of named symbols, in the order asked for.
    pub symbols: Vec<u64>,
}

/// Copy static-PIE `elf` to guest-physical `gpa` and relocate it to run at `va`.
pub fn load_image(
    guest: &GuestMem,
    what: &'static str,
    bytes: &[u8],
    gpa: u64,
    va: u64,
    max: u64,
    symbols: &[&str],
) -> Result<Loaded, BootError> {
    let err = |msg: String| BootError::Image { what, msg };
    let elf = Elf::parse(bytes).map_err(|e| err(e.to_string()))?;
    let (mut text_start, mut text_end, mut end) = (u64::MAX, 0, 0);
    for ph in elf.program_headers.iter().filter(|p| p.p_type == PT_LOAD) {
        let seg_end = ph.p_vaddr + ph.p_memsz;
        if seg_end > max {
            return Err(err(format!(
                "segment ends at {seg_end:#x}, beyond the {max:#x} bytes reserved"
            )));
        }
        let data = bytes
            .get(ph.p_offset as usize..(ph.p_offset + ph.p_filesz) as usize)
            .ok_or_else(|| err("segment beyond end of file".into()))?;
        guest.write(gpa + ph.p_vaddr, data);
        if ph.p_flags & PF_X != 0 {
            text_start = text_start.min(va + ph.p_vaddr);
            text_end = text_end.max(va + seg_end);
        }
        end = end.max(seg_end);
    }
    for r in elf.dynrelas.iter().chain(elf.pltrelocs.iter()) {
        match r.r_type {
            goblin::elf::reloc::R_X86_64_RELATIVE => {
                let addend = r.r_addend.unwrap_or(0) as u64;
                guest.write_u64(gpa + r.r_offset, va.wrapping_add(addend));
            }
            t => {
                return Err(err(format!(
                    "unsupported relocation type {t} (only R_X86_64_RELATIVE)"
                )))
            }
        }
    }
    if text_end == 0 {
        return Err(err("no executable segment".into()));
    }
    let symbols = symbols
        .iter()
        .map(|want| {
            elf.syms
                .iter()
                .find(|s| elf.strtab.get_at(s.st_name) == Some(want))
                .map(|s| va + s.st_value)
                .ok_or_else(|| err(format!("symbol {want} not found")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Loaded {
        entry: va + elf.entry,
        text_start,
        text_end,
        end: va + align_up(end, PAGE_SIZE),
        symbols,
    })
}

/// Page-table pages from the boot pool, in guest memory.
struct BootTables<'g> {
    guest: &'g GuestMem,
    next: u64,
}

impl PhysMem for BootTables<'_> {
    fn read(&self, pa: u64) -> u64 {
        self.guest.read_u64(pa)
    }
    fn write(&mut self, pa: u64, v: u64) {
        self.guest.write_u64(pa, v)
    }
    fn alloc_table(&mut self) -> Option<u64> {
        // Pool pages are zero: guest memory is a fresh memfd.
        (self.next + PAGE_SIZE <= PT_POOL_END).then(|| {
            self.next += PAGE_SIZE;
            self.next - PAGE_SIZE
        })
    }
}

/// The partition's live page tables, read only (kernel-min edits them).
struct LiveTables<'g>(&'g GuestMem);

impl PhysMem for LiveTables<'_> {
    fn read(&self, pa: u64) -> u64 {
        if pa + 8 > self.0.size() {
            return 0;
        }
        self.0.read_u64(pa)
    }
    fn write(&mut self, _pa: u64, _v: u64) {
        unreachable!("the proxy only reads the live page tables")
    }
    fn alloc_table(&mut self) -> Option<u64> {
        None
    }
}

/// `ikc::Op::PageSizes`: bytes of `[va, va+len)` mapped by 4 KiB, 2 MiB and 1 GiB
/// pages in the partition's page tables (rooted where the boot tables put it).
pub fn page_sizes(guest: &GuestMem, va: u64, len: u64) -> [u64; 3] {
    let mut mem = LiveTables(guest);
    PageTables::new(&mut mem, PT_POOL_GPA).page_sizes(va, len)
}

/// Build the boot page tables; returns (pml4, next free pool page). The direct
/// map of all guest memory uses 1 GiB pages when `gib_pages` (the guest CPU has
/// pdpe1gb), else 2 MiB pages, one pool page per GiB: the pool then bounds
/// `--mem`, and a larger one is refused naming the most that fits.
pub fn build_page_tables(
    guest: &GuestMem,
    runtime_gpa: u64,
    gib_pages: bool,
) -> Result<(u64, u64), BootError> {
    let mut mem = BootTables {
        guest,
        next: PT_POOL_GPA + PAGE_SIZE,
    };
    match map_boot(&mut mem, guest.size(), runtime_gpa, gib_pages) {
        Err(Errno::ENOMEM) if !gib_pages => {
            // The most whole GiB that fit: the direct map is the only part
            // that grows with --mem.
            let fits = |gib: u64| {
                let mut dry = DryTables::default();
                map_boot(&mut dry, gib << 30, runtime_gpa, false).is_ok()
            };
            let max = (1..guest.size() >> 30)
                .take_while(|&g| fits(g))
                .last()
                .unwrap_or(0);
            Err(BootError::TooLargeFor2M {
                mem: guest.size() >> 20,
                max: max << 10,
            })
        }
        Err(e) => Err(BootError::Tables(e)),
        Ok(()) => Ok((PT_POOL_GPA, mem.next)),
    }
}

/// The boot mappings, into page tables rooted at `PT_POOL_GPA` in `mem`.
fn map_boot(
    mem: &mut impl PhysMem,
    size: u64,
    runtime_gpa: u64,
    gib_pages: bool,
) -> Result<(), Errno> {
    let mut pt = PageTables::new(mem, PT_POOL_GPA);
    let kernel = F::PRESENT | F::WRITABLE | F::GLOBAL;
    let user_ro = F::PRESENT | F::USER_ACCESSIBLE | F::NO_EXECUTE;
    let user_rw = user_ro | F::WRITABLE;
    let direct_page = if gib_pages {
        HUGE_PAGE_SIZE
    } else {
        LARGE_PAGE_SIZE
    };
    pt.map_pages(DIRECT_MAP_BASE, 0, size, kernel, direct_page)?;
    pt.map(LIBOS_VA, BOOT_INFO_GPA, PAGE_SIZE, user_ro, false)?;
    pt.map(IKC_VA, IKC_GPA, IKC_SIZE, user_rw, false)?;
    pt.map(ARGS_VA, ARGS_GPA, ARGS_MAX, user_ro, false)?;
    // The runtime's region: image, heap and upcall stacks (text needs exec).
    pt.map(
        RUNTIME_VA,
        runtime_gpa,
        RUNTIME_SIZE,
        F::PRESENT | F::USER_ACCESSIBLE | F::WRITABLE,
        true,
    )
}

/// Page tables counted, not written: how many pool pages a layout takes.
#[derive(Default)]
struct DryTables {
    entries: std::collections::HashMap<u64, u64>,
    next: u64,
}

impl PhysMem for DryTables {
    fn read(&self, pa: u64) -> u64 {
        self.entries.get(&pa).copied().unwrap_or(0)
    }
    fn write(&mut self, pa: u64, v: u64) {
        self.entries.insert(pa, v);
    }
    fn alloc_table(&mut self) -> Option<u64> {
        let next = self.next.max(PT_POOL_GPA + PAGE_SIZE);
        (next + PAGE_SIZE <= PT_POOL_END).then(|| {
            self.next = next + PAGE_SIZE;
            next
        })
    }
}

/// The boot GDT: null, 64-bit code (0x08), data (0x10). kernel-min loads its own.
pub fn write_boot_gdt(guest: &GuestMem) {
    let gdt: [u64; 3] = [0, 0x00af_9a00_0000_ffff, 0x00cf_9200_0000_ffff];
    for (i, d) in gdt.iter().enumerate() {
        guest.write_u64(BOOT_GDT_GPA + 8 * i as u64, *d);
    }
}

/// Write `info` at `BOOT_INFO_GPA`.
pub fn write_boot_info(guest: &GuestMem, info: &BootInfo) {
    guest.write_plain(BOOT_INFO_GPA, info);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: `--mem` of 125G and up failed with "boot page tables: ENOMEM".
    /// With 1 GiB pages the direct map of the largest `--mem` takes two pool pages;
    /// without, the refusal names the most that fits.
    #[test]
    fn large_mem_fits_the_boot_tables_or_is_refused_with_the_figure() {
        let runtime_gpa = 32 << 20;
        let mut dry = DryTables::default();
        assert_eq!(
            map_boot(&mut dry, PASSTHROUGH_GPA - (2 << 20), runtime_gpa, true),
            Ok(())
        );
        let mut dry = DryTables::default();
        assert_eq!(map_boot(&mut dry, 64 << 30, runtime_gpa, false), Ok(()));
        let guest = GuestMem::new(200 << 30).unwrap();
        assert!(build_page_tables(&guest, runtime_gpa, true).is_ok());
        let guest = GuestMem::new(200 << 30).unwrap();
        let e = build_page_tables(&guest, runtime_gpa, false).unwrap_err();
        let BootError::TooLargeFor2M { mem, max } = e else {
            panic!("{e}")
        };
        assert_eq!(mem, 200 << 10);
        assert!((100 << 10..200 << 10).contains(&max), "{max}");
        let mut dry = DryTables::default();
        assert_eq!(map_boot(&mut dry, max << 20, runtime_gpa, false), Ok(()));
        let mut dry = DryTables::default();
        assert_eq!(
            map_boot(&mut dry, (max << 20) + (1 << 30), runtime_gpa, false),
            Err(Errno::ENOMEM)
        );
        assert!(e
            .to_string()
            .contains(&format!("give at most --mem {max}M")));
    }
}
