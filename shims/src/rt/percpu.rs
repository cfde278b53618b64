//! Per-core data of the runtime (`PerCpu`), reached through the GS base: which
//! thread and slot run on the core, its upcall stack, the entry stubs' scratch
//! word and call counter. A leaf: it imports no other runtime module.

use core::arch::asm;
use core::sync::atomic::{AtomicU64, Ordering};

use mote_abi::layout::MAX_CORES;

/// Per-core data, reached through the GS base (the entry stubs read `upcall_top`
/// and use `scratch` with `gs:` operands; offsets pinned below).
#[repr(C)]
pub struct PerCpu {
    /// The application's rsp during `mote_syscall_entry`.
    pub scratch: AtomicU64,
    /// Runtime stack top of the running thread (or the idle context).
    pub upcall_top: AtomicU64,
    /// This core.
    pub core: AtomicU64,
    /// The running thread's tid (0 in the idle context).
    pub tid: AtomicU64,
    /// The running thread's slot.
    pub slot: AtomicU64,
    /// Saved rsp of the idle context while a thread runs.
    pub idle_rsp: AtomicU64,
    /// A thread that died on this core, to reap once switched away from.
    pub dead: AtomicU64,
    /// Address of this struct (for Rust code: `gs:[self_ptr]`).
    pub self_ptr: AtomicU64,
    /// System calls that arrived on this core without a trap (patched sites, direct
    /// entry). Only this core writes it, with a plain load-add-store in the entry
    /// stubs (no `lock`); `--stats` sums the cores at exit.
    pub calls: AtomicU64,
    /// The running thread is a vfork child (1) or not (0).
    pub child: AtomicU64,
    /// The FS base this core has loaded (when setting it takes a kernel call).
    pub fs: AtomicU64,
    /// A patched site or the direct entry asked for `rt_sigreturn` (1): the
    /// entry's slow path does it (`rt::sig`).
    pub sigreturn: AtomicU64,
}

pub const PERCPU_SCRATCH: usize = 0;
pub const PERCPU_UPCALL_TOP: usize = 8;
pub const PERCPU_TID: usize = 24;
pub const PERCPU_CALLS: usize = 64;
static_assertions::const_assert_eq!(core::mem::offset_of!(PerCpu, scratch), PERCPU_SCRATCH);
static_assertions::const_assert_eq!(core::mem::offset_of!(PerCpu, upcall_top), PERCPU_UPCALL_TOP);
static_assertions::const_assert_eq!(core::mem::offset_of!(PerCpu, self_ptr), 56);
static_assertions::const_assert_eq!(core::mem::offset_of!(PerCpu, tid), PERCPU_TID);
static_assertions::const_assert_eq!(core::mem::offset_of!(PerCpu, calls), PERCPU_CALLS);

/// The process's pid (Linux's, the proxy's; it stays across `execve`): what the
/// entry stubs answer `getpid` with, without entering Rust.
pub static PID: AtomicU64 = AtomicU64::new(0);

/// Calls that arrived without a trap, on all cores (`PerCpu::calls`).
pub fn direct_calls() -> u64 {
    CPUS.iter().map(|c| c.calls.load(Ordering::Relaxed)).sum()
}

/// Every core's data, by core number.
pub static CPUS: [PerCpu; MAX_CORES] = [const {
    PerCpu {
        scratch: AtomicU64::new(0),
        upcall_top: AtomicU64::new(0),
        core: AtomicU64::new(0),
        tid: AtomicU64::new(0),
        slot: AtomicU64::new(0),
        idle_rsp: AtomicU64::new(0),
        dead: AtomicU64::new(0),
        self_ptr: AtomicU64::new(0),
        calls: AtomicU64::new(0),
        child: AtomicU64::new(0),
        fs: AtomicU64::new(0),
        sigreturn: AtomicU64::new(0),
    }
}; MAX_CORES];

/// The running core's data.
pub fn cpu() -> &'static PerCpu {
    let p: u64;
    // SAFETY: GS points at this core's PerCpu from `init_core` on (before any code
    // that calls this); the load reads its self pointer.
    unsafe { asm!("mov {}, gs:[56]", out(reg) p, options(nostack, readonly, preserves_flags)) };
    // SAFETY: p is the address of a static PerCpu.
    unsafe { &*(p as *const PerCpu) }
}

/// The running core.
pub fn core() -> usize {
    cpu().core.load(Ordering::Relaxed) as usize
}

/// The running thread (0 in a core's idle context).
pub fn tid() -> u32 {
    cpu().tid.load(Ordering::Relaxed) as u32
}
