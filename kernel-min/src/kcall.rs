//! Kernel calls from the runtime (`mote_abi::kcall`): the page-table operations
//! libos cannot do at CPL3, and the FS base.

use mote_abi::errno::Errno;
use mote_abi::kcall::{
    DOORBELL, GIVE_TABLES, MAP, MAP_PAGES_1G, MAP_PAGES_4K, PROTECT, PROT_MASK, SET_FS, SET_GS,
    UNMAP,
};
use mote_abi::layout::{
    is_passthrough, HUGE_PAGE_SIZE, LARGE_PAGE_SIZE, PAGE_SIZE, PT_POOL_END, USER_END, USER_START,
};
use mote_abi::paging::{user_flags, PageTables};

use crate::arch;
use crate::paging::TABLES;

/// Serve kernel call `nr`; returns the value for `rax` (`-errno` on failure).
pub fn dispatch(nr: u64, a: [u64; 6]) -> u64 {
    let r = match nr {
        MAP => map(a[0], a[1], a[2], a[3]),
        UNMAP => unmap(a[0], a[1]),
        PROTECT => protect(a[0], a[1], a[2]),
        GIVE_TABLES => give_tables(a[0], a[1]),
        SET_FS => {
            arch::set_fs(a[0]);
            Ok(0)
        }
        SET_GS => {
            arch::set_gs(a[0]);
            Ok(0)
        }
        DOORBELL => match a[0] as u16 {
            p @ (mote_abi::ports::NOTIFY
            | mote_abi::ports::WAIT
            | mote_abi::ports::WAKE_CORE
            | mote_abi::ports::TICK) => {
                arch::outl(p, a[1] as u32);
                Ok(0)
            }
            _ => Err(Errno::EINVAL),
        },
        _ => Err(Errno::ENOSYS),
    };
    mote_abi::errno::to_ret(r)
}

/// `[va, va+len)` is a page-aligned, non-empty part of the application's range.
fn check_user(va: u64, len: u64) -> Result<(), Errno> {
    let end = va.checked_add(len).ok_or(Errno::EINVAL)?;
    if len == 0
        || !va.is_multiple_of(PAGE_SIZE)
        || !len.is_multiple_of(PAGE_SIZE)
        || va < USER_START
        || end > USER_END
    {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

/// `[gpa, gpa+len)` is inside the frame pool libos owns.
fn check_pool(gpa: u64, len: u64) -> Result<(), Errno> {
    let b = crate::boot();
    let end = gpa.checked_add(len).ok_or(Errno::EINVAL)?;
    if gpa < b.pool_start || end > b.mem_size || !gpa.is_multiple_of(PAGE_SIZE) {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

fn map(va: u64, gpa: u64, len: u64, prot: u64) -> Result<usize, Errno> {
    check_user(va, len)?;
    // Frame-pool memory, or a pass-through slot the proxy made (shared file and
    // device mappings); neither overlaps kernel-min's own memory.
    if !(is_passthrough(gpa, len) && gpa.is_multiple_of(PAGE_SIZE)) {
        check_pool(gpa, len)?;
    }
    let max_page = match prot & (MAP_PAGES_4K | MAP_PAGES_1G) {
        0 => LARGE_PAGE_SIZE,
        MAP_PAGES_4K => PAGE_SIZE,
        MAP_PAGES_1G => HUGE_PAGE_SIZE,
        _ => return Err(Errno::EINVAL),
    };
    let flags = user_flags(prot & PROT_MASK);
    let mut t = TABLES.lock();
    let pml4 = crate::boot().pml4_gpa;
    PageTables::new(&mut *t, pml4).map_pages(va, gpa, len, flags, max_page)?;
    Ok(0)
}

fn unmap(va: u64, len: u64) -> Result<usize, Errno> {
    check_user(va, len)?;
    let mut t = TABLES.lock();
    let pml4 = crate::boot().pml4_gpa;
    PageTables::new(&mut *t, pml4).unmap(va, len)?;
    arch::flush(va, len);
    Ok(0)
}

fn protect(va: u64, len: u64, prot: u64) -> Result<usize, Errno> {
    check_user(va, len)?;
    let mut t = TABLES.lock();
    let pml4 = crate::boot().pml4_gpa;
    PageTables::new(&mut *t, pml4).protect(va, len, user_flags(prot))?;
    arch::flush(va, len);
    Ok(0)
}

fn give_tables(gpa: u64, len: u64) -> Result<usize, Errno> {
    check_pool(gpa, len)?;
    if gpa < PT_POOL_END {
        return Err(Errno::EINVAL);
    }
    if TABLES.lock().give(gpa, len) {
        Ok(0)
    } else {
        Err(Errno::ENOSPC)
    }
}
