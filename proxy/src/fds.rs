//! The proxy's own descriptors (guest memfd, KVM, vCPUs, its stderr duplicate,
//! pidfds, pass-through files, ...): forwarded calls run in the proxy's process,
//! so the application shares its descriptor table, and these must stay out of
//! its reach (`offload`'s guard refuses to close or replace them). A leaf module.
//!
//! Allows `unsafe` for the standard descriptors a parent left closed
//! (`POSIX_SPAWN_CLOSE` of 0, `0<&-`): read with `fcntl` before Rust's start-up
//! opens `/dev/null` on them (from `.init_array`), and closed again by raw
//! number before the application starts, so that it sees them closed as natively.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::RwLock;

/// The proxy's own descriptors go at or above this number, so the application's
/// descriptors get the numbers they get natively (`run` fills the numbers below
/// while it opens its own at start-up).
pub const LOW_FDS: i32 = 64;

/// `fd` moved to a number at or above `LOW_FDS` (close-on-exec), for a
/// descriptor the proxy opens while the application runs: the lowest free
/// number is the application's next `open`'s. `fd` itself if that fails.
pub fn above_app(fd: OwnedFd) -> OwnedFd {
    rustix::io::fcntl_dupfd_cloexec(&fd, LOW_FDS).unwrap_or(fd)
}

/// Which of descriptors 0, 1 and 2 were closed when the process started (bit n).
static STD_CLOSED_AT_START: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// Runs from `.init_array`, before Rust's runtime opens `/dev/null` on a closed
/// standard descriptor.
extern "C" fn record_closed_std_fds() {
    let closed = (0..3)
        // SAFETY: F_GETFD only reads the descriptor's flags; -1 with EBADF
        // means the number is closed. No Rust runtime state is touched.
        .filter(|&fd| unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1)
        .fold(0u8, |m, fd| m | 1 << fd);
    STD_CLOSED_AT_START.store(closed, std::sync::atomic::Ordering::Relaxed);
}

#[used]
#[unsafe(link_section = ".init_array")]
static RECORD_CLOSED_STD_FDS: extern "C" fn() = record_closed_std_fds;

/// Close the standard descriptors that were closed when mote started (Rust's
/// start-up put `/dev/null` there): the application inherits them closed, as
/// its parent asked. Call once the proxy opened its own descriptors, before the
/// application starts.
pub fn close_std_fds_closed_at_start() {
    let closed = STD_CLOSED_AT_START.load(std::sync::atomic::Ordering::Relaxed);
    for fd in (0..3).filter(|fd| closed & (1 << fd) != 0) {
        // SAFETY: the number holds the /dev/null Rust's start-up opened, which
        // nothing of the proxy uses (its own descriptors are above `LOW_FDS`,
        // its stderr a duplicate: `say`).
        unsafe { libc::close(fd) };
    }
}

/// The proxy's own descriptors, sorted: the application did not open them and
/// must not close or replace them.
static OWN_FDS: RwLock<Vec<u32>> = RwLock::new(Vec::new());

/// The descriptors open now, besides 0, 1 and 2 (call at start-up: these are the
/// application's inherited ones; later, to find the proxy's own).
pub fn open_fds() -> io::Result<Vec<i32>> {
    let mut fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&fd| fd > 2)
        .collect();
    // The directory's own descriptor was listed and is closed now: its entry is
    // gone (the link itself is looked at, never followed).
    fds.retain(|&fd| std::fs::symlink_metadata(format!("/proc/self/fd/{fd}")).is_ok());
    fds.sort_unstable();
    Ok(fds)
}

/// The same set as a bitmap of the numbers below [`BITMAP_FDS`], read without a
/// lock by every forwarded call that names a descriptor (`offload`'s guard).
const BITMAP_FDS: u32 = 4096;
static OWN_BITS: [AtomicU64; BITMAP_FDS as usize / 64] =
    [const { AtomicU64::new(0) }; BITMAP_FDS as usize / 64];
/// Whether some own descriptor is at or above [`BITMAP_FDS`] (then `OWN_FDS` is
/// searched for those numbers).
static OWN_HIGH: AtomicBool = AtomicBool::new(false);

/// Protect `fds` from the application's forwarded calls: `close`,
/// `close_range`, `dup2` and `dup3` leave them alone, and every other call
/// naming one as a descriptor gets `EBADF`, as for a number not open.
pub fn protect_fds(fds: impl IntoIterator<Item = i32>) {
    let mut own = OWN_FDS.write().unwrap_or_else(|p| p.into_inner());
    own.extend(fds.into_iter().filter_map(|fd| u32::try_from(fd).ok()));
    own.sort_unstable();
    own.dedup();
    publish_bits(&own);
}

/// Give `fd` back to the application's numbering (the proxy closed its own).
pub fn unprotect_fd(fd: i32) {
    let mut own = OWN_FDS.write().unwrap_or_else(|p| p.into_inner());
    if let Ok(fd) = u32::try_from(fd) {
        own.retain(|&o| o != fd);
    }
    publish_bits(&own);
}

/// Rewrite the bitmap from `own` (called with `OWN_FDS` locked for writing).
fn publish_bits(own: &[u32]) {
    let mut words = [0u64; BITMAP_FDS as usize / 64];
    for &fd in own.iter().filter(|&&fd| fd < BITMAP_FDS) {
        words[fd as usize / 64] |= 1 << (fd % 64);
    }
    for (w, bits) in OWN_BITS.iter().zip(words) {
        w.store(bits, Ordering::Release);
    }
    OWN_HIGH.store(
        own.last().is_some_and(|&fd| fd >= BITMAP_FDS),
        Ordering::Release,
    );
}

/// Is `fd` (a forwarded call's argument) one of the proxy's own?
pub fn is_own_fd(fd: u64) -> bool {
    if fd < u64::from(BITMAP_FDS) {
        return OWN_BITS[fd as usize / 64].load(Ordering::Acquire) & (1 << (fd % 64)) != 0;
    }
    OWN_HIGH.load(Ordering::Acquire)
        && u32::try_from(fd).is_ok_and(|fd| {
            OWN_FDS
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .binary_search(&fd)
                .is_ok()
        })
}

/// The proxy's own descriptors now, sorted.
pub fn own_fds() -> Vec<u32> {
    OWN_FDS.read().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Placeholders on every free descriptor number below `LOW_FDS` while the proxy
/// opens its own (guest memory, KVM, vCPUs); dropping it frees them for the
/// application.
pub struct LowFds(#[allow(dead_code)] Vec<std::fs::File>);

impl LowFds {
    pub fn fill() -> Result<LowFds, String> {
        let mut held = Vec::new();
        loop {
            let f = std::fs::File::open("/dev/null")
                .map_err(|e| format!("cannot open /dev/null: {e}"))?;
            if std::os::fd::AsRawFd::as_raw_fd(&f) >= LOW_FDS - 1 {
                held.push(f);
                return Ok(LowFds(held));
            }
            held.push(f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn above_app_moves_a_descriptor_out_of_the_applications_numbers() {
        let (r, _w) = std::io::pipe().unwrap();
        let moved = above_app(r.into());
        assert!(moved.as_raw_fd() >= LOW_FDS);
        assert!(rustix::io::fcntl_getfd(&moved)
            .unwrap()
            .contains(rustix::io::FdFlags::CLOEXEC));
    }

    #[test]
    fn protected_descriptors_are_own_until_unprotected() {
        let (low, high) = (4000, 70_000);
        assert!(!is_own_fd(low) && !is_own_fd(high));
        protect_fds([low as i32, high as i32]);
        assert!(is_own_fd(low) && is_own_fd(high));
        assert!(!is_own_fd(low + 1) && !is_own_fd(high - 1));
        assert!(!is_own_fd(u64::MAX) && !is_own_fd(-100i64 as u64));
        unprotect_fd(low as i32);
        unprotect_fd(high as i32);
        assert!(!is_own_fd(low) && !is_own_fd(high));
    }

    #[test]
    fn open_fds_lists_real_descriptors() {
        let (r, _w) = std::io::pipe().unwrap();
        let fds = open_fds().unwrap();
        assert!(fds.contains(&r.as_raw_fd()));
        assert!(fds.iter().all(|&fd| fd > 2));
    }
}
