//! The KVM partition's [`Edge`]: kernel calls are `syscall`s from the runtime's
//! text into kernel-min; kernel-min counts page faults in the cores' IKC pages.

use core::arch::asm;
use core::sync::atomic::Ordering;

use super::edge::Edge;
use super::ikc::core_page;

/// The partition under kernel-min.
pub struct Kvm;

impl Edge for Kvm {
    fn kcall(&self, nr: u64, a: [u64; 4]) -> u64 {
        let ret: u64;
        // SAFETY: kernel-min serves syscalls from runtime text as kernel calls and
        // follows the syscall register convention (rcx, r11 clobbered).
        unsafe {
            asm!("syscall", inlateout("rax") nr => ret, in("rdi") a[0], in("rsi") a[1],
                 in("rdx") a[2], in("r10") a[3], lateout("rcx") _, lateout("r11") _,
                 options(nostack));
        }
        ret
    }
    fn builds_page_tables(&self) -> bool {
        true
    }
    fn zeroes_locally(&self) -> bool {
        false
    }
    fn shared_mapped(&self, _gpa: u64, _len: u64, _fd: u64, _off: u64) -> i64 {
        0
    }
    fn shm_attach(&self, _va: u64, _len: u64, _shmid: u64, _shmflg: u64) -> i64 {
        0
    }
    fn shm_detach(&self, _va: u64, _len: u64) {}
    fn shm_attached(&self, _gpa: u64, _va: u64, _len: u64) {}
    fn shm_views(&self) -> u64 {
        1
    }
    fn shared_dropped(&self, _gpa: u64) {}
    fn page_faults(&self, ncores: usize) -> u64 {
        (0..ncores)
            .map(|i| core_page(i).page_faults.load(Ordering::Relaxed))
            .sum()
    }
    fn cpu_times(&self, _out: &mut [u64], n: usize, _ncores: usize) -> usize {
        n
    }
    fn core_thread(&self, _core: usize) -> u64 {
        0
    }
    fn idle_stack(&self, base: usize, _ext_state: usize) -> usize {
        base
    }
    fn before_switch(&self, _core: usize) {}
    fn on_switch(&self, _core: usize, _top: u64, _size: u64) {}
}
