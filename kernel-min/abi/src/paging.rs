//! x86-64 4-level page tables, edited through a `PhysMem` view of physical memory.
//!
//! One implementation serves both sides: the proxy builds the boot page tables with
//! it (over the guest memory it holds), and kernel-min edits the live tables with it
//! (over its direct map). Format: Intel SDM vol. 3A §4.5. Uses 2 MiB pages (and,
//! when asked, 1 GiB pages: `PDPTE.PS`, §4.5.4) where virtual and physical alignment
//! allow, and splits a large page into the next smaller size when an operation
//! covers only part of it.

use x86_64::structures::paging::PageTableFlags as F;

use crate::errno::Errno;
use crate::kcall::{PROT_EXEC, PROT_READ, PROT_WRITE};
use crate::layout::{HUGE_PAGE_SIZE, LARGE_PAGE_SIZE, PAGE_SIZE};

/// Physical address bits of an entry.
pub const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;
const ENTRIES: u64 = 512;

/// Access to physical memory holding page tables.
pub trait PhysMem {
    /// Read the 8-byte entry at physical address `pa`.
    fn read(&self, pa: u64) -> u64;
    /// Write the 8-byte entry at physical address `pa`.
    fn write(&mut self, pa: u64, v: u64);
    /// A zeroed page for a new table, or `None` when out of table frames.
    fn alloc_table(&mut self) -> Option<u64>;
}

/// Leaf flags for a user mapping with Linux `PROT_*` bits. `PROT_NONE` gives an entry
/// that is not present but keeps its frame, so a later `protect` can restore it.
///
/// Accessed (and, for writable pages, dirty) are set up front: the LWK does not page
/// out, and a shadow-paging hypervisor would otherwise take one more fault per page
/// to emulate setting them on first access.
pub fn user_flags(prot: u64) -> F {
    let mut f = F::USER_ACCESSIBLE;
    if prot & (PROT_READ | PROT_WRITE | PROT_EXEC) != 0 {
        f |= F::PRESENT | F::ACCESSED;
    }
    if prot & PROT_WRITE != 0 {
        f |= F::WRITABLE | F::DIRTY;
    }
    if prot & PROT_EXEC == 0 {
        f |= F::NO_EXECUTE;
    }
    f
}

/// Intermediate-table flags: permissive; the leaf decides.
fn table_flags(user: bool) -> F {
    let f = F::PRESENT | F::WRITABLE;
    if user {
        f | F::USER_ACCESSIBLE
    } else {
        f
    }
}

fn index(va: u64, level: u32) -> u64 {
    (va >> (12 + 9 * (level - 1))) & (ENTRIES - 1)
}

fn va_page(va: u64) -> u64 {
    va & !(PAGE_SIZE - 1)
}

const fn align_down(x: u64, a: u64) -> u64 {
    x & !(a - 1)
}

/// Size of the page a leaf at `level` maps (1: 4 KiB, 2: 2 MiB, 3: 1 GiB).
pub const fn level_size(level: u32) -> u64 {
    match level {
        1 => PAGE_SIZE,
        2 => LARGE_PAGE_SIZE,
        _ => HUGE_PAGE_SIZE,
    }
}

/// Where a virtual address is mapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Translation {
    /// Physical address.
    pub pa: u64,
    /// Leaf flags.
    pub flags: F,
    /// Size of the page that maps it.
    pub page_size: u64,
}

/// An address space rooted at a PML4.
pub struct PageTables<'m, M: PhysMem> {
    pub mem: &'m mut M,
    pub pml4: u64,
}

impl<'m, M: PhysMem> PageTables<'m, M> {
    /// Tables rooted at `pml4` (a zeroed page for a new address space).
    pub fn new(mem: &'m mut M, pml4: u64) -> Self {
        PageTables { mem, pml4 }
    }

    /// Physical address of the entry for `va` at `level` (1 = PTE, 2 = PDE), creating
    /// tables on the way. Fails with ENOMEM when out of tables, EEXIST when a large
    /// page is in the way.
    fn entry_create(&mut self, va: u64, level: u32, user: bool) -> Result<u64, Errno> {
        let mut table = self.pml4;
        for l in (level + 1..=4).rev() {
            let e_pa = table + index(va, l) * 8;
            let e = self.mem.read(e_pa);
            if e & F::HUGE_PAGE.bits() != 0 && (l == 2 || l == 3) {
                // A large page (possibly PROT_NONE, i.e. not present) is in the way.
                return Err(Errno::EEXIST);
            } else if e & F::PRESENT.bits() == 0 {
                let t = self.mem.alloc_table().ok_or(Errno::ENOMEM)?;
                self.mem.write(e_pa, t | table_flags(user).bits());
                table = t;
            } else {
                if user && e & F::USER_ACCESSIBLE.bits() == 0 {
                    self.mem.write(e_pa, e | F::USER_ACCESSIBLE.bits());
                }
                table = e & ADDR_MASK;
            }
        }
        Ok(table + index(va, level) * 8)
    }

    /// Physical address of the leaf entry mapping `va` and its level, if any entry
    /// (present or a kept PROT_NONE one) exists.
    fn leaf(&self, va: u64) -> Option<(u64, u32)> {
        let mut table = self.pml4;
        for l in (1..=4).rev() {
            let e_pa = table + index(va, l) * 8;
            let e = self.mem.read(e_pa);
            if l == 1 || ((l == 2 || l == 3) && e & F::HUGE_PAGE.bits() != 0) {
                return (e != 0).then_some((e_pa, l));
            }
            if e & F::PRESENT.bits() == 0 {
                return None;
            }
            table = e & ADDR_MASK;
        }
        None
    }

    /// Whether the region of `va` that one entry at `level` (2: 2 MiB, 3: 1 GiB)
    /// covers is mapped through a lower table (smaller pages).
    fn has_table(&self, va: u64, level: u32) -> bool {
        let mut table = self.pml4;
        for l in (level..=4).rev() {
            let e = self.mem.read(table + index(va, l) * 8);
            if e & F::PRESENT.bits() == 0 || e & F::HUGE_PAGE.bits() != 0 {
                return false;
            }
            if l == level {
                return true;
            }
            table = e & ADDR_MASK;
        }
        false
    }

    /// Bytes of `[va, va+len)` mapped (present, or kept `PROT_NONE`) by 4 KiB, 2 MiB
    /// and 1 GiB pages, in that order: what `/proc/self/smaps` reports per VMA.
    pub fn page_sizes(&self, va: u64, len: u64) -> [u64; 3] {
        let mut out = [0; 3];
        let end = va.saturating_add(len);
        let mut v = va;
        while v < end {
            // Walk down; an absent entry at level l skips its whole region.
            let mut table = self.pml4;
            let mut step = PAGE_SIZE;
            for l in (1..=4).rev() {
                let e = self.mem.read(table + index(va_page(v), l) * 8);
                let size = if l == 4 {
                    512 * HUGE_PAGE_SIZE
                } else {
                    level_size(l)
                };
                let leaf = l == 1 || ((l == 2 || l == 3) && e & F::HUGE_PAGE.bits() != 0);
                if leaf {
                    if e != 0 {
                        let n = (align_down(v, size) + size).min(end) - v;
                        out[l as usize - 1] += n;
                    }
                    step = size;
                    break;
                }
                if e & F::PRESENT.bits() == 0 {
                    step = size;
                    break;
                }
                table = e & ADDR_MASK;
            }
            v = align_down(v, step).saturating_add(step);
        }
        out
    }

    /// Look up `va`.
    pub fn translate(&self, va: u64) -> Option<Translation> {
        let (e_pa, level) = self.leaf(va)?;
        let e = self.mem.read(e_pa);
        let page_size = level_size(level);
        let base = e & ADDR_MASK & !(page_size - 1);
        Some(Translation {
            pa: base + (va & (page_size - 1)),
            flags: F::from_bits_truncate(e & !ADDR_MASK),
            page_size,
        })
    }

    /// Map `[va, va+len)` to `[pa, pa+len)` with leaf `flags`. Nothing may be mapped
    /// there yet (EEXIST, and nothing is changed). `large` allows 2 MiB pages.
    pub fn map(&mut self, va: u64, pa: u64, len: u64, flags: F, large: bool) -> Result<(), Errno> {
        let max = if large { LARGE_PAGE_SIZE } else { PAGE_SIZE };
        self.map_pages(va, pa, len, flags, max)
    }

    /// [`map`](Self::map) with pages of at most `max_page` bytes (4 KiB, 2 MiB or
    /// 1 GiB): each page is the largest size that alignment and length allow.
    pub fn map_pages(
        &mut self,
        va: u64,
        pa: u64,
        len: u64,
        flags: F,
        max_page: u64,
    ) -> Result<(), Errno> {
        if !va.is_multiple_of(PAGE_SIZE)
            || !pa.is_multiple_of(PAGE_SIZE)
            || !len.is_multiple_of(PAGE_SIZE)
        {
            return Err(Errno::EINVAL);
        }
        let user = flags.contains(F::USER_ACCESSIBLE);
        let mut off = 0;
        while off < len {
            let (v, p) = (va + off, pa + off);
            // The largest page that fits, unless smaller pages were used there before:
            // then their (now empty) table stays and takes smaller entries again.
            let level = [3u32, 2]
                .into_iter()
                .find(|&l| {
                    let size = level_size(l);
                    size <= max_page
                        && v.is_multiple_of(size)
                        && p.is_multiple_of(size)
                        && len - off >= size
                        && !self.has_table(v, l)
                })
                .unwrap_or(1);
            let res = self.entry_create(v, level, user).and_then(|e| {
                if self.mem.read(e) != 0 {
                    return Err(Errno::EEXIST);
                }
                let leaf = if level > 1 {
                    flags | F::HUGE_PAGE
                } else {
                    flags
                };
                self.mem.write(e, p | leaf.bits());
                Ok(level_size(level))
            });
            match res {
                Ok(step) => off += step,
                Err(e) => {
                    self.unmap(va, off)?;
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Replace the large leaf at `e_pa` (at `level` 2 or 3) by a table of 512 leaves
    /// of the next smaller size, same frames, same flags.
    fn split(&mut self, e_pa: u64, level: u32) -> Result<(), Errno> {
        let e = self.mem.read(e_pa);
        let t = self.mem.alloc_table().ok_or(Errno::ENOMEM)?;
        let mut flags = (e & !ADDR_MASK) & !F::HUGE_PAGE.bits();
        if level == 3 {
            flags |= F::HUGE_PAGE.bits();
        }
        let base = e & ADDR_MASK & !(level_size(level) - 1);
        let step = level_size(level - 1);
        for i in 0..ENTRIES {
            self.mem.write(t + i * 8, (base + i * step) | flags);
        }
        let user = e & F::USER_ACCESSIBLE.bits();
        self.mem.write(e_pa, t | table_flags(user != 0).bits());
        Ok(())
    }

    /// Apply `f` to the leaf entries covering `[va, va+len)`, splitting 2 MiB pages
    /// that are only partly covered. Unmapped holes are skipped.
    fn for_each_leaf(
        &mut self,
        va: u64,
        len: u64,
        mut f: impl FnMut(u64) -> u64,
    ) -> Result<(), Errno> {
        if !va.is_multiple_of(PAGE_SIZE) || !len.is_multiple_of(PAGE_SIZE) {
            return Err(Errno::EINVAL);
        }
        let end = va + len;
        let mut v = va;
        while v < end {
            match self.leaf(v) {
                None => v += PAGE_SIZE,
                Some((e_pa, 1)) => {
                    let e = self.mem.read(e_pa);
                    self.mem.write(e_pa, f(e));
                    v += PAGE_SIZE;
                }
                Some((e_pa, level)) => {
                    let size = level_size(level);
                    if v.is_multiple_of(size) && end - v >= size {
                        let e = self.mem.read(e_pa);
                        self.mem.write(e_pa, f(e));
                        v += size;
                    } else {
                        self.split(e_pa, level)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Remove mappings in `[va, va+len)`.
    pub fn unmap(&mut self, va: u64, len: u64) -> Result<(), Errno> {
        self.for_each_leaf(va, len, |_| 0)
    }

    /// Change the leaf flags of mapped pages in `[va, va+len)` (frames unchanged).
    pub fn protect(&mut self, va: u64, len: u64, flags: F) -> Result<(), Errno> {
        let keep = F::HUGE_PAGE.bits();
        self.for_each_leaf(va, len, |e| (e & ADDR_MASK) | (e & keep) | flags.bits())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Physical memory as a Vec, tables allocated from its top.
    struct Mem {
        words: Vec<u64>,
        next_table: u64,
    }
    impl PhysMem for Mem {
        fn read(&self, pa: u64) -> u64 {
            self.words[(pa / 8) as usize]
        }
        fn write(&mut self, pa: u64, v: u64) {
            self.words[(pa / 8) as usize] = v;
        }
        fn alloc_table(&mut self) -> Option<u64> {
            if self.next_table + PAGE_SIZE > (self.words.len() * 8) as u64 {
                return None;
            }
            let t = self.next_table;
            self.next_table += PAGE_SIZE;
            Some(t)
        }
    }
    fn mem() -> Mem {
        Mem {
            words: vec![0; 64 * 512],
            next_table: PAGE_SIZE,
        }
    }

    const RW: u64 = PROT_READ | PROT_WRITE;

    #[test]
    fn large_and_small_pages_by_alignment() {
        let mut m = mem();
        let mut pt = PageTables::new(&mut m, 0);
        let va = 0x40_0000 - 0x1000; // one 4K page, then a 2M page, then 4K
        pt.map(va, 0x1000_0000 - 0x1000, 0x20_2000, user_flags(RW), true)
            .unwrap();
        assert_eq!(pt.translate(va).unwrap().page_size, PAGE_SIZE);
        let t = pt.translate(0x40_0000 + 0x1234).unwrap();
        assert_eq!((t.pa, t.page_size), (0x1000_0000 + 0x1234, LARGE_PAGE_SIZE));
        assert_eq!(pt.translate(0x60_0000).unwrap().page_size, PAGE_SIZE);
        assert!(pt.translate(0x60_1000).is_none());
        assert_eq!(
            pt.map(0x40_1000, 0, 0x1000, user_flags(RW), true),
            Err(Errno::EEXIST)
        );
    }

    #[test]
    fn partial_unmap_splits_large_page() {
        let mut m = mem();
        let mut pt = PageTables::new(&mut m, 0);
        pt.map(0x20_0000, 0x80_0000, 0x20_0000, user_flags(RW), true)
            .unwrap();
        pt.unmap(0x20_1000, 0x1000).unwrap();
        assert!(pt.translate(0x20_1000).is_none());
        assert_eq!(pt.translate(0x20_2000).unwrap().pa, 0x80_2000);
        assert_eq!(pt.translate(0x20_0000).unwrap().page_size, PAGE_SIZE);
    }

    #[test]
    fn protect_none_keeps_frame_and_restores() {
        let mut m = mem();
        let mut pt = PageTables::new(&mut m, 0);
        pt.map(0x1000, 0x5000, 0x2000, user_flags(RW), false)
            .unwrap();
        pt.protect(0x1000, 0x1000, user_flags(0)).unwrap();
        let t = pt.translate(0x1000).unwrap();
        assert!(!t.flags.contains(F::PRESENT));
        assert_eq!(t.pa, 0x5000);
        pt.protect(0x1000, 0x1000, user_flags(PROT_READ)).unwrap();
        let t = pt.translate(0x1000).unwrap();
        assert!(t.flags.contains(F::PRESENT) && !t.flags.contains(F::WRITABLE));
        assert!(t.flags.contains(F::NO_EXECUTE));
        // A PROT_NONE page still counts as mapped.
        assert_eq!(
            pt.map(0x1000, 0, 0x1000, user_flags(RW), false),
            Err(Errno::EEXIST)
        );
    }

    #[test]
    fn failed_map_changes_nothing() {
        let mut m = mem();
        let mut pt = PageTables::new(&mut m, 0);
        pt.map(0x3000, 0x9000, 0x1000, user_flags(RW), false)
            .unwrap();
        assert_eq!(
            pt.map(0x1000, 0x1000, 0x4000, user_flags(RW), false),
            Err(Errno::EEXIST)
        );
        assert!(pt.translate(0x1000).is_none() && pt.translate(0x2000).is_none());
        assert_eq!(pt.translate(0x3000).unwrap().pa, 0x9000);
    }

    #[test]
    fn large_map_after_small_pages_were_unmapped() {
        // Regression: 4 KiB pages mapped and unmapped in a 2 MiB region leave an empty
        // table behind; a later 2 MiB mapping there must not fail with EEXIST.
        let mut m = mem();
        let mut pt = PageTables::new(&mut m, 0);
        pt.map(0x20_0000, 0x40_0000, 0x1000, user_flags(RW), true)
            .unwrap();
        pt.unmap(0x20_0000, 0x1000).unwrap();
        pt.map(0x20_0000, 0x80_0000, 0x20_0000, user_flags(RW), true)
            .unwrap();
        assert_eq!(pt.translate(0x20_5000).unwrap().pa, 0x80_5000);
    }

    #[test]
    fn prot_none_large_page_is_not_replaced_by_a_table() {
        let mut m = mem();
        let mut pt = PageTables::new(&mut m, 0);
        pt.map(0x20_0000, 0x80_0000, 0x20_0000, user_flags(RW), true)
            .unwrap();
        pt.protect(0x20_0000, 0x20_0000, user_flags(0)).unwrap();
        assert_eq!(
            pt.map(0x20_1000, 0, 0x1000, user_flags(RW), true),
            Err(Errno::EEXIST)
        );
        assert_eq!(pt.translate(0x20_1000).unwrap().pa, 0x80_1000);
    }

    #[test]
    fn huge_pages_where_allowed_and_split_in_two_steps() {
        let mut m = mem();
        let mut pt = PageTables::new(&mut m, 0);
        let g = HUGE_PAGE_SIZE;
        // Without permission: 2 MiB pages only.
        pt.map_pages(g, g, g, user_flags(RW), LARGE_PAGE_SIZE)
            .unwrap();
        assert_eq!(pt.translate(g + 0x1234).unwrap().page_size, LARGE_PAGE_SIZE);
        pt.unmap(g, g).unwrap();
        // With it: one 1 GiB page, then a 2 MiB and a 4 KiB page after it.
        pt.map_pages(
            2 * g,
            4 * g,
            g + LARGE_PAGE_SIZE + PAGE_SIZE,
            user_flags(RW),
            HUGE_PAGE_SIZE,
        )
        .unwrap();
        let t = pt.translate(2 * g + 0x12_3456).unwrap();
        assert_eq!((t.pa, t.page_size), (4 * g + 0x12_3456, HUGE_PAGE_SIZE));
        assert_eq!(
            pt.page_sizes(0, 8 * g),
            [PAGE_SIZE, LARGE_PAGE_SIZE, HUGE_PAGE_SIZE]
        );
        assert_eq!(pt.page_sizes(2 * g + 0x1000, 0x2000), [0, 0, 0x2000]);
        assert_eq!(pt.translate(3 * g).unwrap().page_size, LARGE_PAGE_SIZE);
        assert_eq!(
            pt.translate(3 * g + LARGE_PAGE_SIZE).unwrap().page_size,
            PAGE_SIZE
        );
        assert_eq!(
            pt.map(2 * g + 0x5000, 0, 0x1000, user_flags(RW), true),
            Err(Errno::EEXIST)
        );
        // Protecting one 4 KiB page splits 1 GiB -> 2 MiB -> 4 KiB, frames kept.
        pt.protect(2 * g + 0x40_1000, 0x1000, user_flags(PROT_READ))
            .unwrap();
        let t = pt.translate(2 * g + 0x40_1000).unwrap();
        assert_eq!((t.pa, t.page_size), (4 * g + 0x40_1000, PAGE_SIZE));
        assert!(!t.flags.contains(F::WRITABLE));
        let t = pt.translate(2 * g + 0x60_0000).unwrap();
        assert_eq!((t.pa, t.page_size), (4 * g + 0x60_0000, LARGE_PAGE_SIZE));
        assert!(t.flags.contains(F::WRITABLE));
        let [small, large, huge] = pt.page_sizes(2 * g - 0x1000, g + 0x20_3000);
        assert_eq!(huge, 0);
        assert_eq!(small, 512 * PAGE_SIZE + PAGE_SIZE);
        assert_eq!(large, g - LARGE_PAGE_SIZE + LARGE_PAGE_SIZE);
        pt.unmap(2 * g, g).unwrap();
        assert!(pt.translate(2 * g + 0x60_0000).is_none());
        assert!(pt.translate(3 * g).is_some());
    }

    #[test]
    fn out_of_tables_is_enomem() {
        let mut m = Mem {
            words: vec![0; 3 * 512],
            next_table: PAGE_SIZE,
        };
        let mut pt = PageTables::new(&mut m, 0);
        assert_eq!(
            pt.map(0x1000, 0, 0x1000, user_flags(RW), false),
            Err(Errno::ENOMEM)
        );
    }
}
