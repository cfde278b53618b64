//! `Op::ForkProcess`: `fork` of the application (hosted platform). The proxy
//! copies guest memory into new memfds (eagerly: every page the memfd holds,
//! holes skipped) while the calling thread holds the runtime's locks, then forks
//! itself. The copy of the proxy is the child: its pid is the child's pid (what
//! the parent's `fork` returns, waits for and signals), its descriptors are
//! copies of the parent's, and it is a child of the parent's `mote` as the
//! application's child is of the application. There it points every mapping and
//! descriptor of the old memfds at the new ones, forgets the parent's calls in
//! flight and pending signals, and starts a run of its own on the copy: the
//! offload servers, the signal router and the application's process, where the
//! runtime finds the fork record it left in memory and resumes the calling
//! thread as the child's only thread (`shims/src/rt/fork.rs`). It exits with the
//! child's status, or dies of the signal that killed it.
//!
//! Allows `unsafe`: `fork` of the multi-threaded proxy, `mmap` over the
//! mirror's and guest memory's mappings, `dup2` over their descriptors, and the
//! copy into the new memfd's mapping.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::RawFd;
use std::sync::mpsc::channel;
use std::sync::Arc;

use mote_abi::boot::BootInfo;
use mote_abi::ikc::{idle_slot, MAX_THREADS};
use mote_abi::layout::BOOT_INFO_GPA;

use super::vfork::{child_exit, child_killed};
use crate::event::Event;
use crate::guest::GuestMem;
use crate::mirror::Mirror;

/// Chunk of the copy.
const CHUNK: usize = 2 << 20;

/// `Op::ForkProcess` from the application thread on slot `index`: the child's
/// pid in the parent; the child never returns from here. `held`: the runtime
/// address and word count of libos's record of the chunks that may hold data.
pub(super) fn fork_process(
    guest: &Arc<GuestMem>,
    mirror: &Arc<Mirror>,
    used: [u64; 3],
    held: [u64; 2],
    tsc: u64,
    pin: Option<usize>,
) -> i64 {
    let kind = match crate::hosted::Hosted::forked_child(guest.clone()) {
        Some(h) => Kind::Hosted(h),
        None if crate::vmm::Partition::forks() => Kind::Partition { tsc },
        None => return -i64::from(libc::ENOSYS),
    };
    let t0 = std::time::Instant::now();
    let held = read_held(guest, held);
    let (copy, bytes) = match copy_guest(guest, used, held.as_deref()) {
        Ok(c) => c,
        Err(e) => return -i64::from(e.raw_os_error().unwrap_or(libc::ENOMEM)),
    };
    let copied = t0.elapsed();
    let guard = mirror.fork_guard();
    // SAFETY: the child uses only this thread and what it starts itself; the
    // mirror's lock is held across the fork so its state is consistent there.
    let pid = unsafe { libc::fork() };
    drop(guard);
    if pid > 0 {
        crate::note!(
            "mote: fork: copied {} MiB of guest memory in {copied:?}; the proxy forked at {:?}",
            bytes >> 20,
            t0.elapsed()
        );
    }
    match pid {
        -1 => -i64::from(
            io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EAGAIN),
        ),
        0 => child(guest, mirror, copy, kind, t0, pin),
        pid => i64::from(pid),
    }
}

/// libos's record of the chunks that may hold data (`libos::frames::Held`),
/// read through the mirror from runtime memory at `held[0]`, `held[1]` words:
/// at most one bit per 2 MiB of guest memory. `None` (copy every chunk) when it
/// cannot be read. The application can write it; a wrong record only loses
/// data of its own child, as a corrupted libos would.
fn read_held(guest: &GuestMem, [va, words]: [u64; 2]) -> Option<Vec<u64>> {
    let max = guest.size().div_ceil(CHUNK as u64).div_ceil(64);
    if words == 0 || words > max {
        return None;
    }
    let mut bytes = vec![0u8; words as usize * 8];
    if crate::mirror::read_user(va, &mut bytes).ok()? != bytes.len() {
        return None;
    }
    Some(
        bytes
            .chunks_exact(8)
            .map(|w| u64::from_le_bytes(w.try_into().unwrap_or_default()))
            .collect(),
    )
}

/// One piece of the copy: memfd `fd`'s `[from, to)`, guest-physical `base + off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Piece {
    fd: RawFd,
    from: u64,
    to: u64,
    base: u64,
    /// Copy with `pwrite` (not on hugetlbfs).
    in_kernel: bool,
}

/// The pieces of `[from, to)` of memfd `fd` (guest-physical `base + off`)
/// that may hold data: all of it below `pool_start` (the boot regions and the
/// runtime), above it only the 2 MiB chunks `held` has set (all without a
/// record).
fn pieces(
    fd: RawFd,
    (from, to): (u64, u64),
    base: u64,
    in_kernel: bool,
    pool_start: u64,
    held: Option<&[u64]>,
) -> Vec<Piece> {
    let piece = |from, to| Piece {
        fd,
        from,
        to,
        base,
        in_kernel,
    };
    let Some(held) = held else {
        return (from < to).then(|| piece(from, to)).into_iter().collect();
    };
    let may_hold = |gpa: u64| {
        let c = gpa / CHUNK as u64;
        held.get((c / 64) as usize)
            .is_none_or(|w| w & (1 << (c % 64)) != 0)
    };
    let mut out: Vec<Piece> = Vec::new();
    let mut at = from;
    while at < to {
        let gpa = base + at;
        let next = ((gpa / CHUNK as u64 + 1) * CHUNK as u64 - base).min(to);
        if gpa < pool_start || may_hold(gpa) {
            match out.last_mut() {
                Some(p) if p.to == at => p.to = next,
                _ => out.push(piece(at, next)),
            }
        }
        at = next;
    }
    out
}

/// A copy of `guest`: same sizes; of the small memfd the data below `used[0]`,
/// of the hugetlbfs one the non-zero pages of `[used[1], used[2])`
/// (guest-physical), of the frame pool only the chunks `held` names. Two
/// threads copy, each a half of the bytes. Also returns the bytes copied.
fn copy_guest(
    guest: &GuestMem,
    used: [u64; 3],
    held: Option<&[u64]>,
) -> io::Result<(GuestMem, u64)> {
    let large = guest.large_start().map_or(0, |s| guest.size() - s);
    let copy = GuestMem::with_large(guest.size(), large).map_err(io::Error::other)?;
    let small = guest.size() - large;
    let mut boot = [0u8; std::mem::size_of::<BootInfo>()];
    guest.read(BOOT_INFO_GPA, &mut boot);
    // SAFETY: BootInfo is plain data (`#[repr(C)]` integers); read_unaligned
    // copies it out of the byte buffer. Its pool start only narrows the record.
    let info: BootInfo = unsafe { std::ptr::read_unaligned(boot.as_ptr().cast()) };
    let pool_start = info.pool_start;
    let cores = (info.ncores as usize).clamp(1, mote_abi::layout::MAX_CORES);
    let mut all = pieces(
        guest.fd(),
        (0, used[0].min(small)),
        0,
        true,
        pool_start,
        held,
    );
    if let (Some(fd), Some(start)) = (guest.large_fd(), guest.large_start()) {
        let from = used[1].max(start) - start;
        let to = used[2].min(guest.size()).saturating_sub(start);
        all.extend(pieces(fd, (from, to), start, false, pool_start, held));
    }
    let halves = split_in_two(&all);
    let copy_ref = &copy;
    let bytes = std::thread::scope(|s| -> io::Result<u64> {
        let other = (!halves[1].is_empty())
            .then(|| {
                std::thread::Builder::new()
                    .name("mote-fork-copy".into())
                    .spawn_scoped(s, || {
                        // The forking thread's LWK core waits meanwhile.
                        crate::cpus::widen_to_lwk_cores(cores);
                        copy_pieces(guest, &halves[1], copy_ref)
                    })
                    .ok()
            })
            .flatten();
        let mut n = copy_pieces(guest, &halves[0], copy_ref)?;
        match other {
            Some(h) => {
                n += h
                    .join()
                    .map_err(|_| io::Error::other("fork copy thread"))??
            }
            None => n += copy_pieces(guest, &halves[1], copy_ref)?,
        }
        Ok(n)
    })?;
    Ok((copy, bytes))
}

/// Split `pieces` into two lists of about the same bytes (a piece cut in two
/// at a 2 MiB boundary where needed).
fn split_in_two(pieces: &[Piece]) -> [Vec<Piece>; 2] {
    let total: u64 = pieces.iter().map(|p| p.to - p.from).sum();
    let mut half = total / 2;
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for &p in pieces {
        let len = p.to - p.from;
        if half >= len {
            a.push(p);
            half -= len;
        } else if half > 0 {
            let cut = p.from + (half.div_ceil(CHUNK as u64) * CHUNK as u64).min(len);
            a.push(Piece { to: cut, ..p });
            if cut < p.to {
                b.push(Piece { from: cut, ..p });
            }
            half = 0;
        } else {
            b.push(p);
        }
    }
    [a, b]
}

/// Copy each piece (`copy_data`); the bytes copied.
fn copy_pieces(src: &GuestMem, pieces: &[Piece], copy: &GuestMem) -> io::Result<u64> {
    let mut n = 0;
    for p in pieces {
        n += copy_data(src, p.fd, p.from, p.to, copy, p.base, p.in_kernel)?;
    }
    Ok(n)
}

/// Copy `[from, len)` of memfd `fd` (guest memory `src` from guest-physical
/// `base`) to `copy` at the same place: the data ranges only
/// (`SEEK_DATA`/`SEEK_HOLE`), and of those only the blocks that are not all
/// zero, checked in place through the guest mapping (memory touched only by
/// reads, or hugetlbfs memory, where every page counts as data, is mostly
/// zero). The copy's memfd keeps holes for the rest, which read as zero.
/// `in_kernel`: copy with `pwrite` (not on hugetlbfs, which has no `write`).
/// Returns the bytes copied.
#[allow(clippy::too_many_arguments)]
fn copy_data(
    src: &GuestMem,
    fd: RawFd,
    from: u64,
    len: u64,
    copy: &GuestMem,
    base: u64,
    in_kernel: bool,
) -> io::Result<u64> {
    let mut off = from;
    let mut copied = 0;
    while off < len {
        // SAFETY: lseek on a descriptor GuestMem keeps open.
        let data = unsafe { libc::lseek(fd, off as libc::off_t, libc::SEEK_DATA) };
        if data < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ENXIO) {
                break; // only a hole is left
            }
            return Err(e);
        }
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(fd, data, libc::SEEK_HOLE) };
        let end = if hole < 0 {
            len
        } else {
            (hole as u64).min(len)
        };
        let mut at = data as u64;
        while at < end {
            let block = |at: u64| ((end - at) as usize).min(BLOCK);
            if is_zero(src, base + at, block(at))? {
                at += block(at) as u64;
                continue;
            }
            // A run of non-zero blocks, up to CHUNK.
            let mut run = block(at);
            while at + (run as u64) < end
                && run < CHUNK
                && !is_zero(src, base + at + run as u64, block(at + run as u64))?
            {
                run += block(at + run as u64);
            }
            let s = src
                .ptr(base + at, run as u64)
                .ok_or(io::ErrorKind::InvalidInput)?;
            if !(in_kernel && write_range(copy.fd(), s, at, run)) {
                let dst = copy
                    .ptr(base + at, run as u64)
                    .ok_or(io::ErrorKind::InvalidInput)?;
                // SAFETY: `s` and `dst` are `run` bytes of two different
                // mappings (the guest's and the copy's, used by nobody else
                // yet); the guest's other cores may write `s` meanwhile, as
                // under Linux's `fork`.
                unsafe { std::ptr::copy_nonoverlapping(s, dst, run) };
            }
            copied += run as u64;
            at += run as u64;
        }
        off = end;
    }
    Ok(copied)
}

/// Block of the zero check.
const BLOCK: usize = 64 << 10;

/// Are the `n` bytes of guest memory at `gpa` all zero?
fn is_zero(src: &GuestMem, gpa: u64, n: usize) -> io::Result<bool> {
    let p = src.ptr(gpa, n as u64).ok_or(io::ErrorKind::InvalidInput)?;
    // SAFETY: `n` bytes of the guest mapping (checked by `ptr`), read only;
    // the guest may change them meanwhile (the copy is of that moment).
    let bytes = unsafe { std::slice::from_raw_parts(p, n) };
    Ok(bytes
        .chunks(256)
        .all(|c| c.iter().fold(0u8, |a, &b| a | b) == 0))
}

/// Write the `n` bytes at `src` (guest memory, just read by the zero check) to
/// offset `off` of memfd `to` with `pwrite`: Linux allocates the copy's pages
/// without zeroing them first and takes no page fault in the copy's mapping
/// (faster than `copy_file_range` between two shmem files, which moves the
/// pages one by one through a pipe, and than stores through the mapping).
/// `false`: not done (the caller copies through the mapping instead).
fn write_range(to: RawFd, src: *const u8, off: u64, n: usize) -> bool {
    let mut done = 0;
    while done < n {
        // SAFETY: `src` is `n` bytes of the guest mapping (checked by the
        // caller's `ptr`), only read; `to` is the copy's memfd.
        let r = unsafe {
            libc::pwrite(
                to,
                src.add(done).cast(),
                n - done,
                (off + done as u64) as libc::off_t,
            )
        };
        if r <= 0 {
            return false;
        }
        done += r as usize;
    }
    true
}

/// The platform the child runs on.
enum Kind {
    /// The application's process forked from the child proxy.
    Hosted(crate::hosted::Hosted),
    /// A new VM, made in the child proxy (KVM's descriptors work only in the
    /// process that made them); the parent's core was at TSC `tsc` at the call.
    Partition { tsc: u64 },
}

/// The forked proxy: become the child's proxy and run it to its end.
fn child(
    guest: &Arc<GuestMem>,
    mirror: &Arc<Mirror>,
    copy: GuestMem,
    kind: Kind,
    t0: std::time::Instant,
    pin: Option<usize>,
) -> ! {
    let mut boot = [0u8; std::mem::size_of::<BootInfo>()];
    guest.read(BOOT_INFO_GPA, &mut boot);
    // SAFETY: BootInfo is plain data (`#[repr(C)]` integers), written by this
    // proxy at start-up; read_unaligned copies it out of the byte buffer.
    let info: BootInfo = unsafe { std::ptr::read_unaligned(boot.as_ptr().cast()) };
    let cores = (info.ncores as usize).clamp(1, mote_abi::layout::MAX_CORES);
    let pairs = [
        (Some(guest.fd()), Some(copy.fd())),
        (guest.large_fd(), copy.large_fd()),
    ];
    for (old, new) in pairs {
        if let (Some(old), Some(new)) = (old, new) {
            if let Err(e) = retarget(old, new) {
                crate::note!("mote: fork: cannot switch to the copy of guest memory: {e}");
                child_exit(125);
            }
        }
    }
    // Where the child's time goes, from the call (`MOTE_DEBUG`).
    let mut steps = vec![("retargeted", t0.elapsed())];
    // The copy's own mapping and descriptors: not needed any more (the old
    // numbers and mappings are the copy's now).
    drop(copy);
    forget_parent(guest);
    super::reset_after_fork();
    let mut platform: Box<dyn crate::platform::Platform> = match kind {
        Kind::Hosted(h) => Box::new(h),
        Kind::Partition { tsc } => {
            // The new VM's descriptors go above the application's numbers and
            // out of reach of its close and dup2, as at start-up.
            let before = crate::fds::open_fds().unwrap_or_default();
            let low = crate::fds::LowFds::fill();
            // The TSC counts on from the parent's, plus the copy's time.
            let khz = info.tsc_khz;
            let tsc = tsc.wrapping_add(t0.elapsed().as_micros() as u64 * khz / 1000);
            let made = crate::vmm::Partition::forked_child(guest.clone(), cores, tsc)
                .expect("a partition's fork")
                .and_then(|p| {
                    let (vm, _) = p.memslots();
                    mirror.rebind_passthrough(Box::new(vm)).map_err(|e| {
                        crate::vmm::VmmError::Kvm {
                            what: "add a shared mapping's memory",
                            err: kvm_ioctls::Error::new(e.raw_os_error().unwrap_or(libc::EIO)),
                        }
                    })?;
                    Ok(p)
                });
            drop(low);
            let now = crate::fds::open_fds().unwrap_or_default();
            crate::fds::protect_fds(now.into_iter().filter(|fd| !before.contains(fd)));
            match made {
                Ok(p) => Box::new(p),
                Err(e) => {
                    crate::say!("mote: fork: cannot create the child's partition: {e}");
                    child_exit(125);
                }
            }
        }
    };
    let (tx, rx) = channel();
    let slots = std::iter::once(0).chain((0..cores).map(idle_slot));
    for slot in slots {
        if let Err(e) = super::spawn(slot, guest.clone(), mirror.clone(), tx.clone(), pin) {
            crate::note!("mote: fork: cannot start the offload thread of slot {slot}: {e}");
            child_exit(125);
        }
    }
    if crate::signals::spawn_router(guest.clone(), tx.clone()).is_err() {
        child_exit(125);
    }
    steps.push(("threads started", t0.elapsed()));
    if let Err(e) = platform.start(tx) {
        crate::say!("mote: fork: cannot start the child: {e}");
        child_exit(125);
    }
    steps.push(("running", t0.elapsed()));
    let event = rx.recv();
    steps.push(("ended", t0.elapsed()));
    platform.finish(false);
    steps.push(("finished", t0.elapsed()));
    if crate::say::debug() {
        let line: Vec<String> = steps.iter().map(|(w, t)| format!("{w} {t:?}")).collect();
        crate::say!("mote: fork: the child, from the call: {}", line.join(", "));
    }
    match event {
        Ok(Event::Exited(status)) => child_exit(status),
        Ok(Event::Corrupted(what)) => {
            crate::report::print_corrupted(&what);
            child_killed(libc::SIGSEGV)
        }
        Ok(Event::Killed { signal, fault }) => {
            crate::report::print_killed(signal, fault.as_ref(), true);
            child_killed(signal as i32)
        }
        Ok(Event::Failed(msg)) => {
            crate::say!("mote: {msg}");
            child_exit(125)
        }
        Err(_) => child_exit(125),
    }
}

/// In the copy: no call of the parent's threads is in flight (their slots are
/// answered, nobody reads the answer), no signal of the parent's is pending, and
/// the pid is this process's.
fn forget_parent(guest: &GuestMem) {
    for i in 0..MAX_THREADS {
        let s = guest.thread_slot(i);
        let seq = s.req_seq.load(std::sync::atomic::Ordering::Acquire);
        if s.resp_seq.load(std::sync::atomic::Ordering::Acquire) != seq {
            s.respond(seq, -i64::from(libc::EINTR));
        }
    }
    let page = guest.signal_page();
    page.pending.store(0, std::sync::atomic::Ordering::Release);
    page.attention
        .store(0, std::sync::atomic::Ordering::Release);
    guest.write_plain(
        BOOT_INFO_GPA + std::mem::offset_of!(BootInfo, pid) as u64,
        &std::process::id(),
    );
}

/// Make every shared mapping and every descriptor of the memfd `old` one of
/// the memfd `new` (same offsets, protections and descriptor flags).
fn retarget(old: RawFd, new: RawFd) -> io::Result<()> {
    let id = |fd: RawFd| -> io::Result<(u64, u64)> {
        // SAFETY: all-zero is a valid stat; fstat writes it.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        if unsafe { libc::fstat(fd, &mut st) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok((st.st_dev, st.st_ino))
    };
    let (dev, ino) = id(old)?;
    let maps = std::fs::read_to_string("/proc/self/maps")?;
    for line in maps.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 5 || f[4].parse::<u64>().ok() != Some(ino) {
            continue;
        }
        let Some((maj, min)) = f[3].split_once(':') else {
            continue;
        };
        let (Ok(maj), Ok(min)) = (u32::from_str_radix(maj, 16), u32::from_str_radix(min, 16))
        else {
            continue;
        };
        if libc::makedev(maj, min) != dev || f[1].as_bytes().get(3) != Some(&b's') {
            continue;
        }
        let Some((a, b)) = f[0].split_once('-') else {
            continue;
        };
        let (Ok(a), Ok(b), Ok(off)) = (
            u64::from_str_radix(a, 16),
            u64::from_str_radix(b, 16),
            u64::from_str_radix(f[2], 16),
        ) else {
            continue;
        };
        let p = f[1].as_bytes();
        let mut prot = 0;
        if p[0] == b'r' {
            prot |= libc::PROT_READ;
        }
        if p[1] == b'w' {
            prot |= libc::PROT_WRITE;
        }
        if p[2] == b'x' {
            prot |= libc::PROT_EXEC;
        }
        // SAFETY: replaces a mapping of the old memfd with the same range of
        // the new one (a copy of it): every reference into it stays valid, and
        // no other thread runs in this process yet.
        let r = unsafe {
            libc::mmap(
                a as *mut libc::c_void,
                (b - a) as usize,
                prot,
                // No reservation of hugetlbfs pages (as `GuestMem` maps them):
                // pages are taken as they are used.
                libc::MAP_SHARED | libc::MAP_FIXED | libc::MAP_NORESERVE,
                new,
                off as libc::off_t,
            )
        };
        if r == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
    }
    for e in std::fs::read_dir("/proc/self/fd")?.flatten() {
        let Some(fd) = e.file_name().to_str().and_then(|s| s.parse::<RawFd>().ok()) else {
            continue;
        };
        if fd == new || id(fd).ok() != Some((dev, ino)) {
            continue;
        }
        // SAFETY: fcntl and dup3 on a descriptor of this process that refers to
        // the old memfd; after it, it refers to the new one with the same flags.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            let cloexec = if flags >= 0 && flags & libc::FD_CLOEXEC != 0 {
                libc::O_CLOEXEC
            } else {
                0
            };
            if libc::dup3(new, fd, cloexec) < 0 {
                return Err(io::Error::last_os_error());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: u64 = 1 << 20;

    #[test]
    fn pieces_keep_the_boot_regions_and_the_held_chunks_only() {
        // Pool from 71 MiB; chunks 36 (72-74 MiB) and 38-39 (76-80 MiB) held.
        let held = [(1u64 << 36) | (1 << 38) | (1 << 39)];
        let p = pieces(3, (0, 90 * MB), 0, true, 71 * MB, Some(&held));
        let ranges: Vec<(u64, u64)> = p.iter().map(|p| (p.from, p.to)).collect();
        // [0, 72 MiB): below the pool start (chunk 35 straddles it), then 36.
        // Chunk 37 and those from 40 on are not held.
        assert_eq!(ranges, [(0, 74 * MB), (76 * MB, 80 * MB)]);
        assert!(p.iter().all(|p| p.fd == 3 && p.in_kernel && p.base == 0));
        // Without a record, everything; beyond the record, everything too.
        let all = pieces(3, (0, 90 * MB), 0, true, 70 * MB, None);
        assert_eq!(all.len(), 1);
        assert_eq!((all[0].from, all[0].to), (0, 90 * MB));
        let beyond = pieces(3, (0, 200 * MB), 0, true, 0, Some(&held));
        assert_eq!(
            beyond.last().map(|p| (p.from, p.to)),
            Some((128 * MB, 200 * MB))
        );
    }

    #[test]
    fn pieces_of_the_large_memfd_are_offsets_from_its_start() {
        // The hugetlbfs memfd from guest-physical 1 GiB: chunk 513 held.
        let mut held = vec![0u64; 9];
        held[513 / 64] |= 1 << (513 % 64);
        let p = pieces(4, (0, 16 * MB), 1024 * MB, false, 70 * MB, Some(&held));
        assert_eq!(p.len(), 1);
        assert_eq!((p[0].from, p[0].to, p[0].base), (2 * MB, 4 * MB, 1024 * MB));
        assert!(!p[0].in_kernel);
    }

    #[test]
    fn the_two_halves_cover_every_byte_once() {
        let piece = |from, to| Piece {
            fd: 3,
            from,
            to,
            base: 0,
            in_kernel: true,
        };
        let all = [
            piece(0, 10 * MB),
            piece(20 * MB, 21 * MB),
            piece(30 * MB, 40 * MB),
        ];
        let [a, b] = split_in_two(&all);
        let bytes = |v: &[Piece]| v.iter().map(|p| p.to - p.from).sum::<u64>();
        assert_eq!(bytes(&a) + bytes(&b), 21 * MB);
        assert!(bytes(&a).abs_diff(bytes(&b)) <= 2 * MB);
        let mut cover: Vec<(u64, u64)> = a.iter().chain(&b).map(|p| (p.from, p.to)).collect();
        cover.sort();
        for w in cover.windows(2) {
            assert!(w[0].1 <= w[1].0, "{cover:?}");
        }
        assert_eq!(split_in_two(&[]), [Vec::new(), Vec::new()]);
    }
}
