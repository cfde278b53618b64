//! What differs between the platforms the runtime runs on, at the machine level:
//! the KVM partition under kernel-min (`rt::kvm`) and an ordinary Linux process
//! (`rt::hosted`). One trait, [`Edge`], with one type per platform, chosen once at
//! start-up (`rt::platform::init`); shared code calls it and never asks which
//! platform it is on. A leaf: it imports no other runtime module.

/// The machine-level operations of one platform.
pub trait Edge: Sync {
    /// Kernel call `nr` (`mote_abi::kcall`) with `a`: what kernel-min would
    /// answer (a value, or `-errno` as u64).
    fn kcall(&self, nr: u64, a: [u64; 4]) -> u64;
    /// Does the platform build page tables from frames libos gives it
    /// (`Platform::builds_page_tables`)?
    fn builds_page_tables(&self) -> bool;
    /// Does the runtime zero memory itself rather than ask the proxy first?
    fn zeroes_locally(&self) -> bool;
    /// The proxy made pass-through `gpa` for `len` bytes of the application's
    /// `fd` at `off`: follow it on this side. `-errno` if it cannot.
    fn shared_mapped(&self, gpa: u64, len: u64, fd: u64, off: u64) -> i64;
    /// Before the proxy attaches System V segment `shmid` at `[va, va+len)`:
    /// attach it on this side (`-errno`: Linux refused).
    fn shm_attach(&self, va: u64, len: u64, shmid: u64, shmflg: u64) -> i64;
    /// The proxy refused the attachment `shm_attach` made.
    fn shm_detach(&self, va: u64, len: u64);
    /// The proxy answered `gpa` for the attachment at `va`.
    fn shm_attached(&self, gpa: u64, va: u64, len: u64);
    /// `Platform::shm_views`.
    fn shm_views(&self) -> u64;
    /// The pass-through object at `gpa` is going away.
    fn shared_dropped(&self, gpa: u64);
    /// Page faults of the application so far (`Platform::page_faults`).
    fn page_faults(&self, ncores: usize) -> u64;
    /// `Platform::cpu_times` after the proxy wrote `n` values into `out`.
    fn cpu_times(&self, out: &mut [u64], n: usize, ncores: usize) -> usize;
    /// The Linux thread that runs LWK core `core`, where only the runtime knows
    /// it (`Op::PerfOpen`): the hosted process's thread; 0 in the partition.
    fn core_thread(&self, core: usize) -> u64;
    /// Bytes core 0's idle context needs on its stack beyond `base`, with
    /// `ext_state` bytes of extended state.
    fn idle_stack(&self, base: usize, ext_state: usize) -> usize;
    /// The running context of `core` is about to switch stacks.
    fn before_switch(&self, core: usize);
    /// A context starts or resumes on `core` with its runtime stack `[top - size,
    /// top)` (`top == 0`: the idle context).
    fn on_switch(&self, core: usize, top: u64, size: u64);
}
