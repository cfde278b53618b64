//! Memory calls: `brk`, `mmap`, `munmap`, `mprotect`, `pkey_mprotect`, `mremap`,
//! `madvise`, over [`crate::mm::AddressSpace`]. `mmap`'s raw arguments are judged
//! here, as Linux's `ksys_mmap_pgoff` and `do_mmap` judge them (flags, length,
//! offset, the descriptor, a fixed address), and decoded into a typed
//! [`MapRequest`] for the address space.

use mote_abi::errno::Errno;
use mote_abi::layout::{
    align_down, align_up, HUGE_PAGE_SIZE, LARGE_PAGE_SIZE, PAGE_SIZE, USER_END, USER_START,
};

use crate::mm::{page_len, MapRequest, MapSource, Placement};
use crate::platform::Platform;
use crate::process::Process;
use crate::uapi::mman::*;

/// `brk(addr)`: never fails; a refused change returns the current break
/// (growth past the application's `RLIMIT_AS` included).
pub fn brk<P: Platform>(pr: &mut Process, p: &P, addr: u64) -> Result<usize, Errno> {
    let cur = pr.mm.current_brk();
    if addr > cur && pr.mm.brk_start() != 0 {
        let grow = align_up(addr, PAGE_SIZE).saturating_sub(align_up(cur, PAGE_SIZE));
        let limit = as_limit(pr, p);
        if pr.mm.may_expand(limit, grow).is_err() {
            return Ok(cur as usize);
        }
    }
    Ok(pr.mm.brk(p, addr) as usize)
}

/// `RLIMIT_AS` (`include/uapi/asm-generic/resource.h`).
const RLIMIT_AS: u64 = 9;

/// The application's soft `RLIMIT_AS` (`crate::mm::limit`): read from the
/// proxy, which keeps the application's limits, at the first growth after
/// start or after a `setrlimit` (`task::setrlimit`).
fn as_limit<P: Platform>(pr: &mut Process, p: &P) -> u64 {
    if let Some(l) = pr.mm.as_limit() {
        return l;
    }
    let lim = [0u8; 16];
    let r = p.forward(
        syscalls::Sysno::prlimit64 as u64,
        [0, RLIMIT_AS, 0, p.addr_of(&lim), 0, 0],
    );
    // Written by the proxy behind the compiler's back: read an opaque copy.
    let lim = core::hint::black_box(lim);
    let l = if r == 0 {
        u64::from_le_bytes(lim[..8].try_into().expect("8 bytes"))
    } else {
        crate::mm::UNLIMITED
    };
    pr.mm.set_as_limit(Some(l));
    l
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
    let req = map_request(p, addr, len, prot, flags, fd, off)?;
    let limit = as_limit(pr, p);
    if limit != crate::mm::UNLIMITED {
        // A mapping that replaces others grows the total by the difference.
        let replaced = match req.placement {
            Placement::Fixed {
                addr,
                replace: true,
            } => pr.mm.mapped_in(addr, addr + req.len),
            _ => 0,
        };
        pr.mm.may_expand(limit, req.len - replaced)?;
    }
    pr.mm.map(p, &req).map(|a| a as usize)
}

/// Judge `mmap`'s raw arguments and decode them into a [`MapRequest`], with
/// Linux's errors in Linux's order: `EINVAL` for an unaligned offset, a zero
/// length, no or an unknown mapping type, or `MAP_HUGETLB` on a file not on
/// hugetlbfs; `EOPNOTSUPP` for flags `MAP_SHARED_VALIDATE` does not know; `ENOMEM`
/// for a length beyond user space; `EACCES` for a writable shared `/dev/zero`
/// opened read-only; `EOVERFLOW` for an offset plus length past `i64::MAX`;
/// `EBADF`/`ENODEV` for a private file mapping of a bad or unmappable descriptor;
/// and for a fixed address `EINVAL` (unaligned), `ENOMEM` (past user space) or
/// `EPERM` (below `mmap_min_addr`). Whether the range is taken
/// (`MAP_FIXED_NOREPLACE`) is the address space's to say.
#[allow(clippy::too_many_arguments)]
pub fn map_request<P: Platform>(
    p: &P,
    addr: u64,
    len: u64,
    prot: u64,
    flags: u64,
    fd: u64,
    off: u64,
) -> Result<MapRequest, Errno> {
    if !off.is_multiple_of(PAGE_SIZE) || len == 0 {
        return Err(Errno::EINVAL);
    }
    let len = page_len(len)?;
    if len > USER_END - USER_START {
        return Err(Errno::ENOMEM);
    }
    let shared = match flags & MAP_TYPE {
        MAP_PRIVATE => false,
        MAP_SHARED => true,
        MAP_SHARED_VALIDATE => {
            if flags & !SHARED_VALIDATE_OK != 0 {
                return Err(Errno::EOPNOTSUPP);
            }
            true
        }
        _ => return Err(Errno::EINVAL),
    };
    let mut anon = flags & MAP_ANONYMOUS != 0;
    let prot = prot & (PROT_READ | PROT_WRITE | PROT_EXEC);
    // A shared mapping of /dev/zero is anonymous shared memory in Linux
    // (`shmem_zero_setup`): here, memory from the pool, which the proxy sees
    // as it sees all of the application's memory. (Passed through, the
    // proxy's and the hosted application's process would each get an object
    // of their own.)
    let dev_zero = !anon && shared && is_dev_zero(p, fd);
    if dev_zero && prot & PROT_WRITE != 0 {
        // As for any shared mapping: writable only through a descriptor open
        // for writing.
        let fl = p.forward(syscalls::Sysno::fcntl as u64, [fd, F_GETFL, 0, 0, 0, 0]);
        if fl >= 0 && fl as u64 & O_ACCMODE == O_RDONLY {
            return Err(Errno::EACCES);
        }
    }
    // A file on hugetlbfs is mapped in whole huge pages (Linux rounds the
    // length up and needs an aligned address); MAP_HUGETLB asks for one and is
    // EINVAL for any other file (`ksys_mmap_pgoff`), /dev/zero included.
    let huge_file = !anon
        && (flags & MAP_HUGETLB != 0 || shared && !dev_zero)
        && match is_hugetlbfs(p, fd) {
            Ok(huge) => huge,
            Err(e) if flags & MAP_HUGETLB != 0 => return Err(e),
            // Not for this check to decide: the mapping reports it.
            Err(_) => false,
        };
    if flags & MAP_HUGETLB != 0 && !anon && !huge_file {
        return Err(Errno::EINVAL);
    }
    // Shared anonymous memory on huge pages is a hugetlbfs object too: Linux
    // rounds its length up to the huge page size the `MAP_HUGE_*` bits name.
    let shared_huge = anon && shared && flags & MAP_HUGETLB != 0;
    let huge_bits = flags & (MAP_HUGE_MASK << MAP_HUGE_SHIFT);
    let len = if huge_file {
        align_up(len, LARGE_PAGE_SIZE)
    } else if shared_huge {
        match huge_bits >> MAP_HUGE_SHIFT {
            0 | 21 => align_up(len, LARGE_PAGE_SIZE),
            30 => align_up(len, HUGE_PAGE_SIZE),
            // A size this machine's hugetlbfs cannot have (Linux: no hstate).
            _ => return Err(Errno::EINVAL),
        }
    } else {
        len
    };
    anon |= dev_zero;
    if !anon && off.checked_add(len).is_none_or(|e| e > i64::MAX as u64) {
        return Err(Errno::EOVERFLOW);
    }
    if !anon && !shared {
        // A zero-length read validates the fd as Linux's mmap would.
        let r = p.forward(syscalls::Sysno::pread64 as u64, [fd, 0, 0, off, 0, 0]);
        if r < 0 {
            return Err(if r == Errno::EBADF.ret() {
                Errno::EBADF
            } else {
                // Pipes, directories, sockets: not mappable.
                Errno::ENODEV
            });
        }
    }

    let placement = if flags & (MAP_FIXED | MAP_FIXED_NOREPLACE) != 0 {
        if !addr.is_multiple_of(PAGE_SIZE) {
            return Err(Errno::EINVAL);
        }
        if addr > USER_END - len {
            return Err(Errno::ENOMEM);
        }
        if addr < USER_START {
            // `mmap_min_addr`: Linux's security check answers EPERM.
            return Err(Errno::EPERM);
        }
        Placement::Fixed {
            addr,
            replace: flags & MAP_FIXED_NOREPLACE == 0,
        }
    } else {
        Placement::Anywhere {
            hint: align_down(addr, PAGE_SIZE),
            low32: flags & MAP_32BIT != 0,
        }
    };
    let source = if shared_huge {
        MapSource::SharedHuge {
            size_bits: huge_bits,
        }
    } else if anon {
        MapSource::Anonymous { shared, dev_zero }
    } else if shared {
        MapSource::SharedFile { fd, off, flags }
    } else {
        MapSource::PrivateFile { fd, off }
    };
    Ok(MapRequest {
        placement,
        len,
        prot,
        source,
        huge: flags & MAP_HUGETLB != 0 || huge_file,
        growsdown: flags & MAP_GROWSDOWN != 0,
    })
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
    // Growth past the application's RLIMIT_AS (Linux's `vma_to_resize`).
    if new_len > old_len {
        let grow = page_len(new_len)?.saturating_sub(page_len(old_len).unwrap_or(0));
        let limit = as_limit(pr, p);
        pr.mm.may_expand(limit, grow)?;
    }
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

/// `fcntl` `F_GETFL` and the access-mode bits of its result (`asm-generic/fcntl.h`).
const F_GETFL: u64 = 3;
const O_ACCMODE: u64 = 3;
const O_RDONLY: u64 = 0;

/// Is `fd` open on `/dev/zero` (a character device 1:5)?
fn is_dev_zero<P: Platform>(p: &P, fd: u64) -> bool {
    use crate::uapi::stat;
    let st = alloc::vec![0u8; stat::SIZE];
    // The proxy writes the stat buffer (unified address space).
    let r = p.forward(
        syscalls::Sysno::fstat as u64,
        [fd, p.addr_of(&st), 0, 0, 0, 0],
    );
    // Written behind the compiler's back: read through an opaque copy.
    let st = core::hint::black_box(st);
    let mode = u32::from_le_bytes(st[stat::ST_MODE..][..4].try_into().expect("4 bytes"));
    let rdev = u64::from_le_bytes(st[stat::ST_RDEV..][..8].try_into().expect("8 bytes"));
    r == 0 && mode & stat::S_IFMT == stat::S_IFCHR && rdev == stat::DEV_ZERO
}

/// Whether `fd` is a file on hugetlbfs (`fstatfs`, forwarded); Linux's error
/// (EBADF) when `fd` is not open.
fn is_hugetlbfs<P: Platform>(p: &P, fd: u64) -> Result<bool, Errno> {
    use crate::uapi::statfs;
    let buf = alloc::vec![0u8; statfs::SIZE];
    // The proxy writes the buffer (unified address space).
    let r = p.forward(
        syscalls::Sysno::fstatfs as u64,
        [fd, p.addr_of(&buf), 0, 0, 0, 0],
    );
    if r < 0 {
        return Err(Errno::from_code(-r as i32).unwrap_or(Errno::EBADF));
    }
    // Written behind the compiler's back: read through an opaque copy.
    let buf = core::hint::black_box(buf);
    let f_type = u64::from_le_bytes(buf[statfs::F_TYPE..][..8].try_into().expect("8 bytes"));
    Ok(f_type == statfs::HUGETLBFS_MAGIC)
}
