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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakePlatform;
    use crate::uapi::mman::{MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE};
    use mote_abi::boot::BootInfo;

    fn setup() -> (Process, FakePlatform) {
        let boot = BootInfo {
            pid: 500,
            pool_start: 16 << 20,
            mem_size: 64 << 20,
            ..Default::default()
        };
        let p = FakePlatform::new();
        let mut pr = Process::new(&boot);
        pr.mm.init(&p).unwrap();
        (pr, p)
    }

    fn shmctls(p: &FakePlatform) -> usize {
        p.forwarded_nrs()
            .iter()
            .filter(|&&n| n == Sysno::shmctl as u64)
            .count()
    }

    #[test]
    fn address_errors_come_before_linux_is_asked_as_in_do_shmat() {
        let (mut pr, p) = setup();
        let at = 0x1000_0000;
        let cases = [
            (-1i64 as u64, 0, 0, Errno::EINVAL),
            (7, at + 100, 0, Errno::EINVAL),
            (7, 0, SHM_REMAP, Errno::EINVAL),
            (7, 100, SHM_RND | SHM_REMAP, Errno::EINVAL),
            (7, 100, SHM_RND, Errno::EPERM),
        ];
        for (id, addr, flg, want) in cases {
            assert_eq!(
                shmat(&mut pr, &p, id, addr, flg),
                Err(want),
                "{addr:#x} {flg:#o}"
            );
        }
        assert_eq!(shmctls(&p), 0, "Linux never asked");
        // Then the segment: Linux's answer to IPC_STAT (a removed id, say).
        p.reply(Sysno::shmctl, Errno::EIDRM.ret());
        assert_eq!(shmat(&mut pr, &p, 7, at + 100, SHM_RND), Err(Errno::EIDRM));
        assert_eq!(shmctls(&p), 1);
        assert_eq!(pr.mm.vmas().count(), 0, "nothing mapped");
    }

    #[test]
    fn the_application_reads_its_own_attach_count_where_linux_counts_two_per_attachment() {
        let (mut pr, p) = setup();
        p.st.borrow_mut().shm_views = 2;
        p.add_segment(7, 4096, true);
        let a = pr.mm.shmat(&p, 7, 0, 0, 4096, 0).unwrap();
        pr.mm.shmat(&p, 7, 0, 0, 4096, 0).unwrap();
        let rw = PROT_READ | PROT_WRITE;
        let buf = crate::syscall::mm::mmap(
            &mut pr,
            &p,
            0,
            4096,
            rw,
            MAP_PRIVATE | MAP_ANONYMOUS,
            u64::MAX,
            0,
        )
        .unwrap() as u64;
        let at = buf + shmid_ds::NATTCH as u64;
        // Linux: the proxy's and the application process's attachments.
        p.write_mem(at, &4u64.to_le_bytes());
        p.reply(Sysno::shmctl, 0);
        assert_eq!(shmctl(&mut pr, &p, 7, IPC_STAT, buf), Ok(0));
        assert_eq!(p.peek(at, 8), 2u64.to_le_bytes());
        // SHM_STAT names the segment by its result.
        p.write_mem(at, &4u64.to_le_bytes());
        p.reply(Sysno::shmctl, 7);
        assert_eq!(shmctl(&mut pr, &p, 0, SHM_STAT, buf), Ok(7));
        assert_eq!(p.peek(at, 8), 2u64.to_le_bytes());
        // Another segment, another command, or an error: Linux's as it is.
        p.write_mem(at, &4u64.to_le_bytes());
        p.reply(Sysno::shmctl, 0);
        shmctl(&mut pr, &p, 8, IPC_STAT, buf).unwrap();
        shmctl(&mut pr, &p, 7, 1, buf).unwrap();
        p.reply(Sysno::shmctl, Errno::EINVAL.ret());
        assert_eq!(shmctl(&mut pr, &p, 7, IPC_STAT, buf), Err(Errno::EINVAL));
        assert_eq!(p.peek(at, 8), 4u64.to_le_bytes());
        // Detached: nothing to take off.
        pr.mm.shmdt(&p, a).unwrap();
        p.write_mem(at, &2u64.to_le_bytes());
        p.reply(Sysno::shmctl, 0);
        shmctl(&mut pr, &p, 7, IPC_STAT, buf).unwrap();
        assert_eq!(p.peek(at, 8), 1u64.to_le_bytes());
    }
}
