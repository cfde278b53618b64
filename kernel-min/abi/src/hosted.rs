//! What the proxy tells the runtime on the Linux-hosted platform (issue 6), beside
//! `BootInfo`: facts a partition learns from its VM, which an ordinary process
//! gets from the proxy that forked it. Written once before the child starts, in
//! the boot-info page after `BootInfo` (the partition keeps its boot GDT further
//! up the same page, which the hosted platform does not use).

use core::mem::size_of;
use static_assertions::const_assert;

use crate::layout::{BOOT_GDT_GPA, BOOT_INFO_GPA, LIBOS_VA, MAX_CORES};

/// `HostedInfo::magic`: "MOTEHOST".
pub const HOSTED_MAGIC: u64 = u64::from_le_bytes(*b"MOTEHOST");

/// Where the proxy writes `HostedInfo` (guest-physical).
pub const HOSTED_INFO_GPA: u64 = BOOT_INFO_GPA + 0x400;
/// Where the runtime reads it (the boot-info page is mapped at `LIBOS_VA`).
pub const HOSTED_INFO_VA: u64 = LIBOS_VA + 0x400;

/// The hosted platform's start-up facts.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct HostedInfo {
    /// `HOSTED_MAGIC`.
    pub magic: u64,
    /// The guest memfd's descriptor number in the application's process.
    pub guest_fd: u64,
    /// Host CPU each LWK core's Linux thread pins itself to.
    pub host_cpu: [u32; MAX_CORES],
}

const_assert!(size_of::<HostedInfo>() == 16 + 4 * MAX_CORES);
const_assert!(HOSTED_INFO_GPA + size_of::<HostedInfo>() as u64 <= BOOT_GDT_GPA);
const_assert!(BOOT_INFO_GPA + size_of::<crate::boot::BootInfo>() as u64 <= HOSTED_INFO_GPA);
