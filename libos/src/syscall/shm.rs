//! System V shared memory: `shmat`, `shmdt` and the part of `shmctl` that reports
//! attachments. Segments live in Linux, in the proxy's IPC namespace: `shmget` and
//! `shmctl` are Linux's; an attachment is a pass-through mapping
//! ([`crate::mm::AddressSpace::shmat`]).

use mote_abi::errno::Errno;
use syscalls::Sysno;

use crate::platform::Platform;
use crate::process::Process;
use crate::syscall::forwarded;
use crate::uapi::shm::{shmid_ds, IPC_STAT, SHMLBA, SHM_REMAP, SHM_RND, SHM_STAT, SHM_STAT_ANY};
use mote_abi::layout::PAGE_SIZE;

/// `shmat(shmid, addr, shmflg)`, with Linux's checks in `do_shmat`'s order: the
/// address (alignment, `SHM_RND`, `SHM_REMAP` without one), then the segment
/// (Linux's `IPC_STAT`: a bad or removed id, no read permission), then the overlap,
/// then Linux's own `shmat` in the proxy (write or execute permission).
pub fn shmat<P: Platform>(
    pr: &mut Process,
    p: &P,
    shmid: u64,
    addr: u64,
    shmflg: u64,
) -> Result<usize, Errno> {
    if (shmid as i32) < 0 {
        return Err(Errno::EINVAL);
    }
    let mut addr = addr;
    if addr != 0 {
        if !addr.is_multiple_of(SHMLBA) {
            if shmflg & SHM_RND == 0 {
                return Err(Errno::EINVAL);
            }
            addr &= !(SHMLBA - 1);
            if addr == 0 && shmflg & SHM_REMAP != 0 {
                return Err(Errno::EINVAL);
            }
            if addr == 0 {
                // Linux maps at 0 with MAP_FIXED, which mmap_min_addr refuses.
                return Err(Errno::EPERM);
            }
        }
    } else if shmflg & SHM_REMAP != 0 {
        return Err(Errno::EINVAL);
    }
    let (size, key) = segment(p, shmid)?;
    pr.mm
        .shmat(p, shmid as i32 as u64, addr, shmflg, size, key)
        .map(|a| a as usize)
}

/// Size and key of segment `shmid`, from Linux.
fn segment<P: Platform>(p: &P, shmid: u64) -> Result<(u64, u32), Errno> {
    let ds = alloc::vec![0u8; shmid_ds::SIZE];
    let r = p.forward(
        Sysno::shmctl as u64,
        [shmid, IPC_STAT, p.addr_of(&ds), 0, 0, 0],
    );
    forwarded(r)?;
    // The proxy wrote `ds` behind the compiler's back (see `exec`'s `fstat`).
    let ds = core::hint::black_box(ds);
    let size = u64::from_le_bytes(ds[shmid_ds::SEGSZ..][..8].try_into().expect("8 bytes"));
    let key = u32::from_le_bytes(ds[shmid_ds::KEY..][..4].try_into().expect("4 bytes"));
    Ok((size, key))
}

/// `shmdt(addr)`.
pub fn shmdt<P: Platform>(pr: &mut Process, p: &P, addr: u64) -> Result<usize, Errno> {
    pr.mm.shmdt(p, addr).map(|()| 0)
}

/// `shmctl(shmid, cmd, buf)`: Linux's, except that where Linux counts more than
/// one attachment for each of the application's (`Platform::shm_views`: on the
/// hosted platform the proxy's mirror and the application's process both attach),
/// the `shm_nattch` the application reads counts its own attachments, as natively.
/// (Other processes see Linux's count.)
pub fn shmctl<P: Platform>(
    pr: &mut Process,
    p: &P,
    shmid: u64,
    cmd: u64,
    buf: u64,
) -> Result<usize, Errno> {
    let r = forwarded(p.forward(Sysno::shmctl as u64, [shmid, cmd, buf, 0, 0, 0]))?;
    let views = p.shm_views();
    let id = match cmd {
        IPC_STAT => shmid as i32 as u64,
        // These take an index and return the segment's id.
        SHM_STAT | SHM_STAT_ANY => r as u64,
        _ => return Ok(r),
    };
    let at = buf + shmid_ds::NATTCH as u64;
    if views > 1 && pr.mm.check_access(at, 8, true).is_ok() {
        let extra = pr.mm.sysv_runs(id) * (views - 1);
        if extra > 0 {
            let mut n = [0u8; 8];
            p.read_mem(at, &mut n);
            let n = u64::from_le_bytes(n).saturating_sub(extra);
            p.write_mem(at, &n.to_le_bytes());
        }
    }
    Ok(r)
}

const _: () = assert!(SHMLBA == PAGE_SIZE);
