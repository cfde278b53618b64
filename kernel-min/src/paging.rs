//! The live page tables, edited with `mote_abi::paging` through the direct map.
//! Table frames come from the boot pool and then from frames libos gives
//! (`kcall::GIVE_TABLES`).

use mote_abi::layout::{DIRECT_MAP_BASE, PAGE_SIZE, PT_POOL_END};
use mote_abi::paging::PhysMem;
use spin::Mutex;

/// Frames for new page tables.
pub struct TableFrames {
    /// Next never-used boot-pool page.
    boot_next: u64,
    /// Ranges given by libos: (next, end).
    given: [(u64, u64); 64],
    ngiven: usize,
}

/// Page-table memory and the frames for new tables; one lock for both.
pub static TABLES: Mutex<TableFrames> = Mutex::new(TableFrames {
    boot_next: 0,
    given: [(0, 0); 64],
    ngiven: 0,
});

/// Start with the boot pool's first free page.
pub fn init(pt_pool_next: u64) {
    TABLES.lock().boot_next = pt_pool_next;
}

impl TableFrames {
    /// Accept `[gpa, gpa+len)` for future tables.
    pub fn give(&mut self, gpa: u64, len: u64) -> bool {
        if self.ngiven == self.given.len() {
            return false;
        }
        self.given[self.ngiven] = (gpa, gpa + len);
        self.ngiven += 1;
        true
    }
}

fn direct(pa: u64) -> *mut u64 {
    (DIRECT_MAP_BASE + pa) as *mut u64
}

impl PhysMem for TableFrames {
    fn read(&self, pa: u64) -> u64 {
        // SAFETY: every guest-physical address is mapped in the direct map; page
        // tables are only touched under the TABLES lock.
        unsafe { direct(pa).read_volatile() }
    }

    fn write(&mut self, pa: u64, v: u64) {
        // SAFETY: as in read.
        unsafe { direct(pa).write_volatile(v) }
    }

    fn alloc_table(&mut self) -> Option<u64> {
        if self.boot_next != 0 && self.boot_next + PAGE_SIZE <= PT_POOL_END {
            // Boot-pool pages were zeroed by the proxy (fresh memfd).
            let t = self.boot_next;
            self.boot_next += PAGE_SIZE;
            return Some(t);
        }
        while self.ngiven > 0 {
            let (next, end) = &mut self.given[self.ngiven - 1];
            if *next + PAGE_SIZE <= *end {
                let t = *next;
                *next += PAGE_SIZE;
                for i in 0..(PAGE_SIZE / 8) {
                    self.write(t + i * 8, 0);
                }
                return Some(t);
            }
            self.ngiven -= 1;
        }
        None
    }
}
