//! The proxy's own descriptors (guest memfd, KVM, vCPUs, its stderr duplicate,
//! pidfds, pass-through files, ...): forwarded calls run in the proxy's process,
//! so the application shares its descriptor table, and these must stay out of
//! its reach (`offload`'s guard refuses to close or replace them). A leaf module.

use std::io;
use std::sync::RwLock;

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

/// Protect `fds` from forwarded `close`, `close_range`, `dup2` and `dup3`.
pub fn protect_fds(fds: impl IntoIterator<Item = i32>) {
    let mut own = OWN_FDS.write().unwrap_or_else(|p| p.into_inner());
    own.extend(fds.into_iter().filter_map(|fd| u32::try_from(fd).ok()));
    own.sort_unstable();
    own.dedup();
}

/// Give `fd` back to the application's numbering (the proxy closed its own).
pub fn unprotect_fd(fd: i32) {
    let mut own = OWN_FDS.write().unwrap_or_else(|p| p.into_inner());
    if let Ok(fd) = u32::try_from(fd) {
        own.retain(|&o| o != fd);
    }
}

/// Is `fd` (a forwarded call's argument) one of the proxy's own?
pub fn is_own_fd(fd: u64) -> bool {
    u32::try_from(fd).is_ok_and(|fd| {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn open_fds_lists_real_descriptors() {
        let (r, _w) = std::io::pipe().unwrap();
        let fds = open_fds().unwrap();
        assert!(fds.contains(&r.as_raw_fd()));
        assert!(fds.iter().all(|&fd| fd > 2));
    }
}
