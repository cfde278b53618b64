//! The process's one `/dev/kvm` descriptor (issue 15, point 5). A `mote`
//! process opens `/dev/kvm` once and makes every VM from duplicates of that
//! descriptor (`open`): its partition, a fork's child partition
//! (`vmm::Partition::forked_child`) and the probe of `mote info`. A program
//! the application starts (`spawn`) gets it too, inherited across the exec and
//! named in the environment ([`VAR`], taken out again by [`adopt_inherited`]
//! before anything else runs), so that a child started after the application
//! dropped its privileges (`setuid(65534)`: no more access to `/dev/kvm`)
//! still gets its partition, as a native child simply starts. It is one of
//! mote's descriptors (`fds`): the application cannot name, close or replace
//! it.
//!
//! Allows `unsafe` to take ownership of the inherited number and to hand a
//! duplicate to `kvm_ioctls::Kvm::from_raw_fd`.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::sync::Mutex;

/// The environment variable naming the inherited descriptor.
pub const VAR: &str = "MOTE_KVM_FD";

/// `/dev/kvm`'s device number: misc major 10, minor 232
/// (`include/linux/miscdevice.h`, `KVM_MINOR`).
const KVM_DEV: (u32, u32) = (10, 232);

static KVM: Mutex<Option<OwnedFd>> = Mutex::new(None);

/// At the start of the process, before any other descriptor is looked at:
/// the descriptor a parent `mote` passed in [`VAR`], kept if it is open on
/// `/dev/kvm` (anything else named there is left alone); the variable is
/// removed so the application never sees it. Returns its number.
pub fn adopt_inherited() -> Option<RawFd> {
    let v = std::env::var_os(VAR)?;
    std::env::remove_var(VAR);
    let fd: RawFd = v.to_str()?.parse().ok()?;
    if fd < crate::fds::LOW_FDS {
        return None;
    }
    // SAFETY: fstat on a number only reads its metadata (EBADF if closed).
    let st = unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        (libc::fstat(fd, &mut st) == 0).then_some(st)?
    };
    let dev = (libc::major(st.st_rdev), libc::minor(st.st_rdev));
    if st.st_mode & libc::S_IFMT != libc::S_IFCHR || dev != KVM_DEV {
        return None;
    }
    // SAFETY: the number is open on /dev/kvm (checked above), was passed to
    // this process for this use only, and nothing else owns it.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let _ = rustix::io::fcntl_setfd(&owned, rustix::io::FdFlags::CLOEXEC);
    *KVM.lock().unwrap_or_else(|p| p.into_inner()) = Some(owned);
    Some(fd)
}

/// A `Kvm` on a duplicate of the process's descriptor, opening `/dev/kvm`
/// (close-on-exec, above the application's numbers) the first time.
pub fn open() -> Result<kvm_ioctls::Kvm, kvm_ioctls::Error> {
    let mut kept = KVM.lock().unwrap_or_else(|p| p.into_inner());
    if kept.is_none() {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/kvm")
            .map_err(errno)?;
        *kept = Some(crate::fds::above_app(f.into()));
    }
    let fd = kept.as_ref().expect("kept above");
    let dup = rustix::io::fcntl_dupfd_cloexec(fd, crate::fds::LOW_FDS)
        .map_err(|e| kvm_ioctls::Error::new(e.raw_os_error()))?;
    // SAFETY: `dup` is a fresh descriptor on /dev/kvm that the Kvm takes over.
    Ok(unsafe { kvm_ioctls::Kvm::from_raw_fd(dup.into_raw_fd()) })
}

fn errno(e: io::Error) -> kvm_ioctls::Error {
    kvm_ioctls::Error::new(e.raw_os_error().unwrap_or(libc::EIO))
}

/// The kept descriptor's number, if there is one.
pub fn kept() -> Option<RawFd> {
    KVM.lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .map(|f| f.as_raw_fd())
}

/// In a process about to exec a child's `mote run` (`spawn`): the kept
/// descriptor stays open across the exec, and `VAR=n` for the child's
/// environment names it (`None`: there is none, the child opens its own).
pub fn hand_over_to_exec() -> Option<String> {
    let kept = KVM.lock().unwrap_or_else(|p| p.into_inner());
    let fd = kept.as_ref()?;
    rustix::io::fcntl_setfd(fd.as_fd(), rustix::io::FdFlags::empty()).ok()?;
    Some(format!("{VAR}={}", fd.as_raw_fd()))
}
