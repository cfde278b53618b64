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
    /// The descriptor of the 2 MiB-page memory (a hugetlbfs memfd) behind
    /// guest-physical `[large_gpa, BootInfo::mem_size)`; unused when `large_gpa`
    /// is 0. Offset 0 of it is `large_gpa`.
    pub large_fd: u64,
    /// Where the 2 MiB-page memory starts (`BootInfo::large_pool_start`), or 0.
    pub large_gpa: u64,
    /// Host CPU each LWK core's Linux thread pins itself to.
    pub host_cpu: [u32; MAX_CORES],
}

const_assert!(size_of::<HostedInfo>() == 32 + 4 * MAX_CORES);
const_assert!(HOSTED_INFO_GPA + size_of::<HostedInfo>() as u64 <= BOOT_GDT_GPA);
const_assert!(BOOT_INFO_GPA + size_of::<crate::boot::BootInfo>() as u64 <= HOSTED_INFO_GPA);

/// Linux signal numbers of the traps (`asm/signal.h`).
pub mod signal {
    pub const SIGILL: i32 = 4;
    pub const SIGTRAP: i32 = 5;
    pub const SIGBUS: i32 = 7;
    pub const SIGFPE: i32 = 8;
    pub const SIGSEGV: i32 = 11;
    pub const SIGSYS: i32 = 31;
    /// `si_code` of a `SIGSYS` raised by Syscall User Dispatch
    /// (`asm-generic/siginfo.h`).
    pub const SYS_USER_DISPATCH: i32 = 2;
}

/// The exception vector (`trap::vector`, or `trap::VECTOR_SYSCALL`) behind a
/// trap signal Linux delivered to the hosted application's process, from its
/// signal number, `si_code` and the `trapno` of its `sigcontext`: what
/// kernel-min would have handed up for the same event in the partition.
pub fn trap_vector(signal: i32, code: i32, trapno: u64) -> u64 {
    use crate::trap::{vector, VECTOR_SYSCALL};
    use signal::*;
    match signal {
        SIGSYS if code == SYS_USER_DISPATCH => VECTOR_SYSCALL,
        SIGSEGV if trapno == vector::PF => vector::PF,
        SIGSEGV => vector::GP,
        // A page Linux could not back (a shared file truncated under it).
        SIGBUS if trapno == vector::PF => vector::PF,
        SIGBUS => vector::AC,
        SIGILL => vector::UD,
        SIGFPE if trapno == vector::XM || trapno == vector::MF => trapno,
        SIGFPE => vector::DE,
        SIGTRAP => vector::BP,
        _ => trapno,
    }
}

#[cfg(test)]
mod tests {
    use super::signal::*;
    use super::*;
    use crate::trap::{signal_for_vector, vector, VECTOR_SYSCALL};

    #[test]
    fn trap_signals_become_the_partitions_vectors() {
        assert_eq!(trap_vector(SIGSYS, SYS_USER_DISPATCH, 0), VECTOR_SYSCALL);
        // A SIGSYS of another origin (seccomp) is not a dispatched system call.
        assert_ne!(trap_vector(SIGSYS, 1, 0), VECTOR_SYSCALL);
        assert_eq!(trap_vector(SIGSEGV, 1, vector::PF), vector::PF);
        assert_eq!(trap_vector(SIGSEGV, 128, vector::GP), vector::GP);
        assert_eq!(trap_vector(SIGBUS, 2, vector::PF), vector::PF);
        assert_eq!(trap_vector(SIGILL, 2, vector::UD), vector::UD);
        assert_eq!(trap_vector(SIGFPE, 1, vector::DE), vector::DE);
        assert_eq!(trap_vector(SIGFPE, 1, vector::XM), vector::XM);
        assert_eq!(trap_vector(SIGTRAP, 128, vector::BP), vector::BP);
        // And the partition's vector-to-signal mapping gives the signal back.
        for (sig, trapno) in [
            (SIGSEGV, vector::GP),
            (SIGILL, vector::UD),
            (SIGFPE, vector::DE),
            (SIGTRAP, vector::BP),
            (SIGBUS, 0),
        ] {
            assert_eq!(signal_for_vector(trap_vector(sig, 0, trapno)), sig as u32);
        }
    }
}
