//! Memory calls: `brk`, `mmap`, `munmap`, `mprotect`, `pkey_mprotect`, `mremap`,
//! `madvise`, over [`crate::mm::AddressSpace`].

use mote_abi::errno::Errno;

use crate::platform::Platform;
use crate::process::Process;

/// `brk(addr)`: never fails; a refused change returns the current break.
pub fn brk<P: Platform>(pr: &mut Process, p: &P, addr: u64) -> Result<usize, Errno> {
    Ok(pr.mm.brk(p, addr) as usize)
}

/// `mmap(addr, len, prot, flags, fd, off)`.
#[allow(clippy::too_many_arguments)]
pub fn mmap<P: Platform>(
    pr: &mut Process,
    p: &P,
    addr: u64,
    len: u64,
    prot: u64,
    flags: u64,
    fd: u64,
    off: u64,
) -> Result<usize, Errno> {
    pr.mm
        .mmap(p, addr, len, prot, flags, fd, off)
        .map(|a| a as usize)
}

/// `munmap(addr, len)`.
pub fn munmap<P: Platform>(pr: &mut Process, p: &P, addr: u64, len: u64) -> Result<usize, Errno> {
    pr.mm.munmap(p, addr, len).map(|()| 0)
}

/// `mprotect(addr, len, prot)`.
pub fn mprotect<P: Platform>(
    pr: &mut Process,
    p: &P,
    addr: u64,
    len: u64,
    prot: u64,
) -> Result<usize, Errno> {
    pr.mm.mprotect(p, addr, len, prot).map(|()| 0)
}

/// `pkey_mprotect(addr, len, prot, pkey)`: with pkey -1 it is `mprotect`; no key can
/// have been allocated (`pkey_alloc` is not offered), so any other key is `EINVAL`.
pub fn pkey_mprotect<P: Platform>(
    pr: &mut Process,
    p: &P,
    addr: u64,
    len: u64,
    prot: u64,
    pkey: u64,
) -> Result<usize, Errno> {
    if pkey as i32 != -1 {
        return Err(Errno::EINVAL);
    }
    mprotect(pr, p, addr, len, prot)
}

/// `mremap(old, old_len, new_len, flags, new_addr)`.
pub fn mremap<P: Platform>(
    pr: &mut Process,
    p: &P,
    old: u64,
    old_len: u64,
    new_len: u64,
    flags: u64,
    new_addr: u64,
) -> Result<usize, Errno> {
    pr.mm
        .mremap(p, old, old_len, new_len, flags, new_addr)
        .map(|a| a as usize)
}

/// `madvise(addr, len, advice)`.
pub fn madvise<P: Platform>(
    pr: &mut Process,
    p: &P,
    addr: u64,
    len: u64,
    advice: u64,
) -> Result<usize, Errno> {
    pr.mm.madvise(p, addr, len, advice).map(|()| 0)
}
