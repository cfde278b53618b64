//! Threads in the partition: per-core data, user-level context switches, the idle
//! loop, and the system calls that create, block, wake and end threads (`clone`,
//! `clone3`, `exit`, `futex`, `sched_yield`, affinity, the per-thread registrations).
//!
//! Decisions (who runs next, futex queues, placement) are libos's
//! (`mote_libos::sched::Threads`, under the `THREADS` lock); this file does the
//! machine part. Every thread has its own runtime stack (its upcall stack: traps and
//! calls of that thread run on it, and a thread blocked inside libos keeps its Rust
//! frames there) and its own IKC slot with its own offload thread in the proxy, so a
//! forwarded call that blocks in Linux blocks only its thread: the core runs the
//! others meanwhile. A switch is a stack switch at CPL3 with the callee-saved
//! registers, the application's extended (FPU/SSE/AVX) state and the FS base; no
//! ring 0. A core with nothing to run sleeps (`ports::WAIT`) until its `wake_seq`
//! moves.
//!
//! Lock order: `THREADS` before `PROCESS`. Nothing holding `PROCESS` takes `THREADS`,
//! and no thread gives up its core while holding `PROCESS` (a forwarded call made
//! under it sleeps the core instead of switching).

use alloc::vec::Vec;
use core::arch::{asm, global_asm};
use core::cell::UnsafeCell;
use core::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

use mote_abi::errno::Errno;
use mote_abi::ikc::{idle_slot, Slot, MAX_THREADS, THREAD_SLOTS};
use mote_abi::layout::{upcall_stack_top, MAX_CORES};
use mote_abi::trap::TrapFrame;
use mote_abi::{kcall, ports};
use mote_libos::platform::Platform;
use mote_libos::process::Process;
use mote_libos::sched::{self, State, Thread, Threads, Wake};
use syscalls::Sysno;

use super::platform::{core_page, kcall_raw, thread_slot, Kvm};

/// Runtime stack of a thread other than the main one (the main thread has core 0's
/// upcall stack).
const THREAD_STACK: usize = 64 << 10;
/// Stack of core 0's idle context (on the hosted platform, plus room for one
/// Linux signal frame, see `init_main`).
const IDLE_STACK: usize = 16 << 10;
/// Most bytes of a Linux signal frame besides its extended-state image (return
/// address, `ucontext`, `siginfo`, the image's alignment and end marker: under
/// 1 KiB), with room to spare.
const SIGFRAME_REST: usize = 2 << 10;
/// Most bytes for one thread's extended state (`xsave`; the size CPUID reports
/// is checked against it, and each thread gets what CPUID says).
const XSAVE_AREA: usize = 16 << 10;

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

static CPUS: [PerCpu; MAX_CORES] = [const {
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

/// Machine context of a thread slot: saved stack pointer while switched out, its
/// runtime stack and its extended-state area.
struct Tcb {
    rsp: u64,
    stack: Vec<u8>,
    xsave: Vec<u8>,
}

struct Tcbs(UnsafeCell<Vec<Tcb>>);
// SAFETY: a slot's Tcb is touched only by the core its thread runs on, or by the
// creator before the thread is published (under THREADS), or by the reaper after its
// core switched away from it for good.
unsafe impl Sync for Tcbs {}
static TCBS: Tcbs = Tcbs(UnsafeCell::new(Vec::new()));

fn tcb(slot: usize) -> &'static mut Tcb {
    // SAFETY: see Tcbs; the vector is sized once in `init_main` and never grows.
    unsafe { &mut (&mut *TCBS.0.get())[slot] }
}

/// All threads and futexes.
pub static THREADS: spin::Mutex<Option<Threads>> = spin::Mutex::new(None);

fn threads() -> spin::MutexGuard<'static, Option<Threads>> {
    THREADS.lock()
}

/// Bytes of a thread's extended-state area: what CPUID says `xsave` writes, plus
/// room to align it (the 512-byte `fxsave` area otherwise).
static EXT_BYTES: AtomicU64 = AtomicU64::new(512 + 64);

fn ext_bytes() -> usize {
    EXT_BYTES.load(Ordering::Relaxed) as usize
}

/// Extended state: saved with `xsave` when the OS enabled it, else `fxsave`.
static XSAVE: AtomicU32 = AtomicU32::new(0);

fn xsave_supported() -> bool {
    let ecx: u32;
    // SAFETY: cpuid leaf 1 is always available.
    unsafe {
        asm!("push rbx", "cpuid", "pop rbx", inout("eax") 1 => _, inout("ecx") 0 => ecx,
             out("edx") _, options(nostack))
    };
    ecx & (1 << 27) != 0 // OSXSAVE
}

fn save_ext(area: &mut [u8]) {
    let p = (area.as_mut_ptr() as u64).next_multiple_of(64);
    // SAFETY: the area is ext_bytes() long, 64 more than the aligned save needs
    // (checked against CPUID at start-up); xsave/fxsave only write there.
    unsafe {
        if XSAVE.load(Ordering::Relaxed) != 0 {
            asm!("xsave64 [{}]", in(reg) p, in("eax") u32::MAX, in("edx") u32::MAX, options(nostack));
        } else {
            asm!("fxsave64 [{}]", in(reg) p, options(nostack));
        }
    }
}

fn restore_ext(area: &[u8]) {
    let p = (area.as_ptr() as u64).next_multiple_of(64);
    // SAFETY: the area holds a state saved by save_ext (or a zeroed header with a
    // valid default, see new_xsave).
    unsafe {
        if XSAVE.load(Ordering::Relaxed) != 0 {
            asm!("xrstor64 [{}]", in(reg) p, in("eax") u32::MAX, in("edx") u32::MAX, options(nostack));
        } else {
            asm!("fxrstor64 [{}]", in(reg) p, options(nostack));
        }
    }
}

global_asm!(
    r#"
    .section .text.mote_switch, "ax"
    // mote_switch(save: *mut u64 = rdi, next_rsp: u64 = rsi): save the callee-saved
    // registers on this stack, its rsp at *save, continue on next_rsp.
    .global mote_switch
mote_switch:
    push rbp
    push rbx
    push r12
    push r13
    push r14
    push r15
    mov [rdi], rsp
    mov rsp, rsi
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbx
    pop rbp
    ret

    // First code of a new thread: `mote_switch` returned here with rsp at the
    // TrapFrame `clone` put at the top of its runtime stack.
    .global mote_thread_start
mote_thread_start:
    call {started}
    jmp mote_trap_exit

    // First code of core 0's idle context.
    .global mote_idle_start
mote_idle_start:
    call {idle}
    ud2
"#,
    started = sym thread_started,
    idle = sym idle_entry,
);

unsafe extern "C" {
    fn mote_switch(save: *mut u64, next_rsp: u64);
    static mote_thread_start: u8;
    static mote_idle_start: u8;
}

/// Set up this core's PerCpu and GS base.
pub fn init_core(p: &Kvm, core: usize) {
    let c = &CPUS[core];
    c.core.store(core as u64, Ordering::Relaxed);
    c.self_ptr
        .store(c as *const PerCpu as u64, Ordering::Relaxed);
    let base = c as *const PerCpu as u64;
    if p.boot.flags & mote_abi::boot::BOOT_F_FSGSBASE != 0 {
        // SAFETY: CR4.FSGSBASE is set (boot flag); GS is the runtime's.
        unsafe { asm!("wrgsbase {}", in(reg) base, options(nostack, preserves_flags)) }
    } else {
        let _ = kcall_raw(kcall::SET_GS, [base, 0, 0, 0]);
    }
}

/// Make `top` the running context's upcall stack on this core (entries and
/// kernel-min's upcalls use it).
fn set_upcall_top(core: usize, top: u64) {
    CPUS[core].upcall_top.store(top, Ordering::Relaxed);
    core_page(core).upcall_rsp.store(top, Ordering::Relaxed);
}

/// The main thread `tid` on core 0, before the application starts.
pub fn init_main(p: &Kvm, tid: u32) {
    // What the enabled extended state takes in an xsave image (a signal frame's
    // too); the legacy fxsave image without xsave.
    let mut ext_state = 512;
    if xsave_supported() {
        let size: u32;
        // SAFETY: cpuid leaf 0xd sub-leaf 0 exists when OSXSAVE is set.
        unsafe {
            asm!("push rbx", "cpuid", "mov {0:e}, ebx", "pop rbx", out(reg) size,
                 inout("eax") 0xd => _, inout("ecx") 0 => _, out("edx") _, options(nostack))
        };
        ext_state = ext_state.max(size as usize);
        if (size as usize) + 64 <= XSAVE_AREA {
            XSAVE.store(1, Ordering::Relaxed);
            EXT_BYTES.store(size as u64 + 64, Ordering::Relaxed);
        } else {
            p.log(&alloc::format!(
                "extended state of {size} bytes exceeds the {XSAVE_AREA} reserved; threads save only the SSE state"
            ));
        }
    }
    // SAFETY: once, on core 0, before any other core or thread uses TCBS.
    let tcbs = unsafe { &mut *TCBS.0.get() };
    tcbs.reserve_exact(MAX_THREADS);
    for _ in 0..MAX_THREADS {
        tcbs.push(Tcb {
            rsp: 0,
            stack: Vec::new(),
            xsave: Vec::new(),
        });
    }
    tcb(0).xsave = alloc::vec![0u8; ext_bytes()];
    let ncores = (p.boot.ncores as usize).clamp(1, MAX_CORES);
    *threads() = Some(Threads::new(ncores, tid, THREAD_SLOTS));
    PID.store(tid as u64, Ordering::Relaxed);
    let c = cpu();
    c.tid.store(tid as u64, Ordering::Relaxed);
    c.slot.store(0, Ordering::Relaxed);
    set_upcall_top(0, upcall_stack_top(0));
    // Core 0's idle context, entered the first time the main thread blocks. On
    // the hosted platform a kick may come while it runs, and Linux writes its
    // signal frame (registers and the whole extended state) below its rsp: one
    // at a time (see `hosted`), but it must fit.
    let idle_len = if super::hosted::active() {
        IDLE_STACK + ext_state + SIGFRAME_REST
    } else {
        IDLE_STACK
    };
    let idle: &'static mut [u8] = Vec::leak(alloc::vec![0u8; idle_len]);
    let top = (idle.as_ptr() as u64 + idle_len as u64) & !15;
    c.idle_rsp.store(
        initial_context(top, &raw const mote_idle_start as u64),
        Ordering::Relaxed,
    );
}

/// Heap a new thread leaves free (see `clone_thread`).
const HEAP_HEADROOM: usize = 256 << 10;

/// `len` zero bytes from the runtime's heap, or None when it is full.
fn zeroed(len: usize) -> Option<Vec<u8>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).ok()?;
    v.resize(len, 0);
    Some(v)
}

/// A context that `mote_switch` resumes at `entry` with rsp = `top` (16-aligned).
fn initial_context(top: u64, entry: u64) -> u64 {
    let words = [0u64, 0, 0, 0, 0, 0, entry];
    let rsp = top - 8 * words.len() as u64;
    for (i, w) in words.iter().enumerate() {
        // SAFETY: [rsp, top) is the unused top of a stack this context owns.
        unsafe { ((rsp + 8 * i as u64) as *mut u64).write(*w) };
    }
    rsp
}

/// Switch from the running context (whose rsp is saved at `save`) to `next_rsp`.
/// The context switched to calls `hosted::on_switch` first thing (through
/// `resume_thread_state` or `idle_signal_stack`).
fn switch(save: *mut u64, next_rsp: u64) {
    if super::hosted::active() {
        super::hosted::before_switch(cpu().core.load(Ordering::Relaxed) as usize);
    }
    // SAFETY: next_rsp is a context saved by mote_switch or made by
    // initial_context; `save` belongs to the context we leave.
    unsafe { mote_switch(save, next_rsp) }
}

/// Code that runs in a context right after a switch into it: recycle a thread that
/// died on this core, and restore the running thread's machine state.
fn after_switch() {
    let c = cpu();
    let dead = c.dead.swap(0, Ordering::Relaxed);
    if dead != 0 {
        if let Some(t) = threads().as_mut() {
            t.reap(dead as u32);
        }
    }
}

extern "C" fn thread_started() {
    after_switch();
    resume_thread_state();
}

/// The running thread's FS base and extended state (after a switch into it).
fn resume_thread_state() {
    let c = cpu();
    let slot = c.slot.load(Ordering::Relaxed) as usize;
    restore_ext(&tcb(slot).xsave);
    if super::hosted::active() {
        // Hosted platform: this thread's traps arrive as signals on its own stack.
        let size = if slot == 0 {
            mote_abi::layout::UPCALL_STACK_SIZE
        } else {
            // stack_top aligns down by up to 15 bytes.
            tcb(slot).stack.len() as u64 - 16
        };
        let core = c.core.load(Ordering::Relaxed) as usize;
        super::hosted::on_switch(core, stack_top(slot), size);
    }
}

/// Give the core to the next thread: the caller already changed the running
/// thread's state (`stop_current`) under `g`. Returns when the thread runs again.
fn reschedule(mut g: spin::MutexGuard<'static, Option<Threads>>, p: &Kvm) {
    let c = cpu();
    let core = c.core.load(Ordering::Relaxed) as usize;
    let me = c.tid.load(Ordering::Relaxed) as u32;
    let my_slot = c.slot.load(Ordering::Relaxed) as usize;
    let t = g.as_mut().expect("threads");
    let next = t.pick(core, now_ns(p), answered);
    if next == Some(me) {
        return;
    }
    let dying = t.get(me).is_some_and(|x| x.state == State::Dead);
    let next = next.map(|tid| t.get(tid).expect("picked thread").clone());
    drop(g);
    if !dying {
        save_ext(&mut tcb(my_slot).xsave);
    } else {
        c.dead.store(me as u64, Ordering::Relaxed);
    }
    let save = &raw mut tcb(my_slot).rsp;
    match next {
        Some(x) => enter(p, core, &x, save),
        None => {
            to_idle_context(core);
            switch(save, c.idle_rsp.load(Ordering::Relaxed));
        }
    }
    after_switch();
    resume_thread_state();
}

/// This core leaves its threads for its idle context: no thread runs, and calls
/// made there (a runtime panic's log and `Fatal`) take the core's own slot, not
/// the slot of the thread that ran last — that one may have a call in flight, or,
/// a vfork child's whose process exec'd or ended, no server any more.
fn to_idle_context(core: usize) {
    let c = &CPUS[core];
    c.tid.store(0, Ordering::Relaxed);
    c.slot.store(idle_slot(core) as u64, Ordering::Relaxed);
    c.child.store(0, Ordering::Relaxed);
    set_upcall_top(core, 0);
}

/// Make `tid` (slot `slot`) the running thread of this core and switch to it,
/// saving the current context's rsp at `save`.
fn enter(p: &Kvm, core: usize, x: &Thread, save: *mut u64) {
    let (tid, slot, fs) = (x.tid, x.slot, x.fs_base);
    let c = &CPUS[core];
    c.child.store(x.child_process as u64, Ordering::Relaxed);
    c.tid.store(tid as u64, Ordering::Relaxed);
    c.slot.store(slot as u64, Ordering::Relaxed);
    set_upcall_top(core, stack_top(slot));
    p.set_fs(fs);
    switch(save, tcb(slot).rsp);
}

fn stack_top(slot: usize) -> u64 {
    if slot == 0 {
        upcall_stack_top(0)
    } else {
        let s = &tcb(slot).stack;
        (s.as_ptr() as u64 + s.len() as u64) & !15
    }
}

/// Monotonic time for futex deadlines.
fn now_ns(p: &Kvm) -> u64 {
    let khz = p.boot.tsc_khz;
    if khz == 0 {
        0
    } else {
        (p.tsc() as u128 * 1_000_000 / khz as u128) as u64
    }
}

/// A forwarded call of the thread on `slot` has its answer.
fn answered(slot: usize) -> bool {
    let s = thread_slot(slot);
    s.resp_seq.load(Ordering::Acquire) == s.req_seq.load(Ordering::Relaxed)
}

/// Core `core` has new work: wake it if it sleeps.
fn kick(core: usize) {
    let me = cpu().core.load(Ordering::Relaxed) as usize;
    if core == me {
        return;
    }
    let page = core_page(core);
    page.wake_seq.fetch_add(1, Ordering::SeqCst);
    if page.sleeping.load(Ordering::SeqCst) != 0 {
        let _ = kcall_raw(
            kcall::DOORBELL,
            [ports::WAKE_CORE as u64, core as u64, 0, 0],
        );
    }
}

/// Sleep this core until its `wake_seq` moves, unless `ready()` holds (checked
/// after announcing the sleep, so no wake-up is lost). `max_ns`: longest sleep (0:
/// none).
fn sleep_core(core: usize, max_ns: u64, ready: impl Fn() -> bool) {
    let page = core_page(core);
    let seen = page.wake_seq.load(Ordering::Acquire);
    if ready() {
        return;
    }
    page.sleeping.store(1, Ordering::SeqCst);
    fence(Ordering::SeqCst);
    if !ready() && page.wake_seq.load(Ordering::Acquire) == seen {
        page.sleep_max_ns.store(max_ns, Ordering::Relaxed);
        let _ = kcall_raw(kcall::DOORBELL, [ports::WAIT as u64, seen as u64, 0, 0]);
    }
    page.sleeping.store(0, Ordering::Relaxed);
}

/// Spins of the idle loop before its core sleeps.
const IDLE_SPINS: u32 = 1 << 12;

extern "C" fn idle_entry() -> ! {
    idle_loop(super::platform::kvm())
}

/// Hosted platform: the idle context handles signals (the proxy's kicks) on its
/// own stack, never on the signal stack of a thread blocked inside a trap.
fn idle_signal_stack(core: usize) {
    if super::hosted::active() {
        super::hosted::on_switch(core, 0, 0);
    }
}

/// What a core runs when none of its threads can: pick a thread, else spin a little,
/// else sleep until woken.
pub fn idle_loop(p: &'static Kvm) -> ! {
    let c = cpu();
    let core = c.core.load(Ordering::Relaxed) as usize;
    after_switch();
    idle_signal_stack(core);
    let mut spins = 0u32;
    loop {
        let mut g = threads();
        let Some(t) = g.as_mut() else {
            drop(g);
            core::hint::spin_loop();
            continue;
        };
        let now = now_ns(p);
        if let Some(tid) = t.pick(core, now, answered) {
            let x = t.get(tid).expect("picked thread").clone();
            drop(g);
            spins = 0;
            enter(p, core, &x, c.idle_rsp.as_ptr());
            after_switch();
            idle_signal_stack(core);
            continue;
        }
        let deadline = t.next_deadline(core);
        drop(g);
        attend_signals(core);
        let shared = p.boot.flags & mote_abi::boot::BOOT_F_SHARED_CPUS != 0;
        if spins < IDLE_SPINS && !shared {
            spins += 1;
            core::hint::spin_loop();
            continue;
        }
        spins = 0;
        let max = if deadline == 0 {
            0
        } else {
            deadline.saturating_sub(now).max(1)
        };
        sleep_core(core, max, || {
            let g = threads();
            let t = g.as_ref().expect("threads");
            t.others_runnable(core)
                || (t.has_forwarded(core) && any_answered(t, core))
                || (deadline != 0 && now_ns(p) >= deadline)
        });
    }
}

fn any_answered(t: &Threads, core: usize) -> bool {
    t.tids().any(|tid| {
        t.get(tid)
            .is_some_and(|x| x.core == core && x.state == State::Forwarded && answered(x.slot))
    })
}

/// The thread on this core waits for its forwarded call's answer (after spinning):
/// other threads of the core run meanwhile. Under the PROCESS lock the core only
/// sleeps (another thread of this core could not take the lock).
pub fn wait_response(slot: &Slot, seen: u32, process_locked: bool) {
    let core = cpu().core.load(Ordering::Relaxed) as usize;
    let done = || slot.resp_seq.load(Ordering::Acquire) != seen;
    if process_locked || cpu().tid.load(Ordering::Relaxed) == 0 {
        sleep_core(core, 0, done);
        return;
    }
    let mut g = threads();
    if g.is_none() {
        drop(g);
        sleep_core(core, 0, done);
        return;
    }
    if done() {
        return;
    }
    g.as_mut()
        .expect("threads")
        .stop_current(core, State::Forwarded);
    reschedule(g, super::platform::kvm());
}

// --- system calls ------------------------------------------------------------

mod clone_flags {
    pub const CSIGNAL: u64 = 0xff;
    pub const CLONE_VM: u64 = 0x100;
    pub const CLONE_FS: u64 = 0x200;
    pub const CLONE_FILES: u64 = 0x400;
    pub const CLONE_SIGHAND: u64 = 0x800;
    pub const CLONE_PIDFD: u64 = 0x1000;
    pub const CLONE_VFORK: u64 = 0x4000;
    pub const CLONE_PARENT: u64 = 0x8000;
    pub const CLONE_THREAD: u64 = 0x10000;
    pub const CLONE_SYSVSEM: u64 = 0x40000;
    pub const CLONE_SETTLS: u64 = 0x80000;
    pub const CLONE_PARENT_SETTID: u64 = 0x100000;
    pub const CLONE_CHILD_CLEARTID: u64 = 0x200000;
    pub const CLONE_DETACHED: u64 = 0x400000;
    pub const CLONE_CHILD_SETTID: u64 = 0x1000000;
    pub const CLONE_IO: u64 = 0x8000_0000;
}

/// A thread `clone`'s arguments, from `clone` or `clone3`.
struct CloneArgs {
    flags: u64,
    stack: u64,
    ptid: u64,
    ctid: u64,
    tls: u64,
}

/// What a `clone` makes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum CloneKind {
    /// A thread of this process.
    Thread,
    /// A vfork child process (`vfork`, `posix_spawn`): it shares the memory and
    /// runs in this partition until it execs (into a partition of its own) or
    /// exits; its calls go to a forked proxy with its own descriptors.
    VforkChild,
}

/// Threads and vfork children. A copy of the process (`fork`) would need a second
/// partition with a copy of the memory, which does not exist yet.
fn check_clone(pr: &mut Process, p: &Kvm, a: &CloneArgs) -> Result<CloneKind, Errno> {
    use clone_flags::*;
    let thread = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD;
    let vfork = CLONE_VM | CLONE_VFORK;
    if a.flags & !CSIGNAL == vfork {
        return Ok(CloneKind::VforkChild);
    }
    if a.flags & thread != thread {
        pr.log_once(p, Sysno::clone as u64, || {
            alloc::format!(
                "clone with flags {:#x}: copying the process (fork) is not implemented yet; threads (CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD) and vfork children (CLONE_VM|CLONE_VFORK: vfork, posix_spawn) are; returning ENOSYS",
                a.flags
            )
        });
        return Err(Errno::ENOSYS);
    }
    let known = CSIGNAL
        | thread
        | CLONE_SYSVSEM
        | CLONE_SETTLS
        | CLONE_PARENT_SETTID
        | CLONE_CHILD_CLEARTID
        | CLONE_DETACHED
        | CLONE_CHILD_SETTID
        | CLONE_IO
        | CLONE_PARENT;
    if a.flags & !known != 0 || a.flags & (CLONE_VFORK | CLONE_PIDFD) != 0 {
        pr.log_once(p, Sysno::clone3 as u64, || {
            alloc::format!(
                "clone of a thread with flags {:#x}: flags beyond a thread's are not offered; returning EINVAL",
                a.flags
            )
        });
        return Err(Errno::EINVAL);
    }
    if a.flags & CSIGNAL != 0 {
        return Err(Errno::EINVAL); // Linux: a thread has no exit signal.
    }
    Ok(CloneKind::Thread)
}

/// `clone` / `clone3` of a thread, from a trap (`f` is the caller's frame: the child
/// starts from a copy of it with `rax = 0`).
fn clone_thread(
    p: &'static Kvm,
    proc: &spin::Mutex<Option<Process>>,
    f: &TrapFrame,
    a: CloneArgs,
) -> Result<usize, Errno> {
    use clone_flags::*;
    let kind = {
        let mut g = proc.lock();
        let pr = g.as_mut().expect("process");
        let kind = check_clone(pr, p, &a)?;
        if a.flags & CLONE_PARENT_SETTID != 0 {
            pr.mm.check_access(a.ptid, 4, true)?;
        }
        if a.flags & CLONE_CHILD_SETTID != 0 {
            pr.mm.check_access(a.ctid, 4, true)?;
        }
        kind
    };
    let (slot, parent) = {
        let mut g = threads();
        let t = g.as_mut().expect("threads");
        let me = t
            .get(cpu().tid.load(Ordering::Relaxed) as u32)
            .cloned()
            .ok_or(Errno::ESRCH)?;
        let slot = match kind {
            CloneKind::Thread => t.alloc_slot()?,
            CloneKind::VforkChild => t.alloc_child_slot()?,
        };
        (slot, me)
    };
    // The slot's own offload thread in the proxy; its Linux tid is the new thread's.
    // A vfork child's is a forked proxy process, whose pid is the child's.
    let tid = match kind {
        CloneKind::Thread => p.start_server(slot),
        CloneKind::VforkChild => p.fork_server(slot),
    };
    if kind == CloneKind::Thread && tid > 0 {
        threads().as_mut().expect("threads").mark_served(slot);
    }
    if tid <= 0 {
        threads().as_mut().expect("threads").free_slot(slot);
        return Err(Errno::from_code((-tid) as i32).unwrap_or(Errno::EAGAIN));
    }
    let tid = tid as u32;
    let tcb = tcb(slot);
    if tcb.stack.is_empty() {
        // The runtime's heap is fixed (layout::RUNTIME_HEAP_SIZE): out of it, the
        // thread is refused as Linux refuses one it has no memory for.
        // A new thread also leaves HEAP_HEADROOM free for the runtime's own later
        // allocations (its log line, libos's bookkeeping): running out of those
        // would end the run instead of refusing one thread.
        let spare = zeroed(HEAP_HEADROOM);
        let (true, Some(stack), Some(xsave)) =
            (spare.is_some(), zeroed(THREAD_STACK), zeroed(ext_bytes()))
        else {
            threads().as_mut().expect("threads").free_slot(slot);
            if let Some(pr) = proc.lock().as_mut() {
                pr.log_once(p, 0x3_2000, || {
                    alloc::format!(
                        "clone: the runtime's memory for thread stacks is used up ({} threads live); returning EAGAIN",
                        live_threads()
                    )
                });
            }
            return Err(Errno::EAGAIN);
        };
        tcb.stack = stack;
        tcb.xsave = xsave;
    }
    // The child's extended state is the parent's now (as Linux copies it).
    save_ext(&mut tcb.xsave);
    let top = stack_top(slot);
    let mut child = *f;
    child.rax = 0;
    if a.stack != 0 {
        child.hdr.rsp = a.stack;
    }
    let frame = top - core::mem::size_of::<TrapFrame>() as u64;
    // SAFETY: [frame, top) is the top of the new thread's own stack, unused.
    unsafe { (frame as *mut TrapFrame).write(child) };
    tcb.rsp = initial_context(frame, &raw const mote_thread_start as u64);
    {
        let g = proc.lock();
        let pr = g.as_ref().expect("process");
        if a.flags & CLONE_PARENT_SETTID != 0 {
            pr.write_user(p, a.ptid, &tid.to_le_bytes())?;
        }
        if a.flags & CLONE_CHILD_SETTID != 0 {
            pr.write_user(p, a.ctid, &tid.to_le_bytes())?;
        }
    }
    let mut g = threads();
    let t = g.as_mut().expect("threads");
    let child = Thread {
        tid,
        slot,
        core: 0,
        child_process: kind == CloneKind::VforkChild,
        affinity: parent.affinity,
        state: State::Runnable,
        wake: Wake::Woken,
        futex: None,
        clear_child_tid: if a.flags & CLONE_CHILD_CLEARTID != 0 {
            a.ctid
        } else {
            0
        },
        robust_list: (0, 0),
        fs_base: if a.flags & CLONE_SETTLS != 0 {
            a.tls
        } else {
            parent.fs_base
        },
    };
    let core = match kind {
        CloneKind::Thread => t.spawn(child),
        // Beside its parent, which waits for it.
        CloneKind::VforkChild => t.spawn_on(child, parent.core),
    };
    drop(g);
    if kind == CloneKind::Thread {
        // The new thread's signal state: the creator's mask, nothing pending.
        if let Some(pr) = proc.lock().as_mut() {
            pr.signals.switch_thread(parent.tid);
            pr.signals.new_thread(tid);
        }
    }
    kick(core);
    if kind == CloneKind::VforkChild {
        // vfork: the parent goes on once the child exec'd or ended (its calls
        // meanwhile are the child's, on this core or another).
        while p.vfork_wait(tid, slot) == Errno::EINTR.ret() {
            // A signal from outside: a default action that ends the process
            // (SIGTERM, SIGINT) ends the run now, as it ends a vfork parent on
            // Linux; a caught one waits until the child exec'd or ended.
            if let Some(pr) = proc.lock().as_mut() {
                pr.deliver_pending(p);
            }
        }
        return Ok(tid as usize);
    }
    publish_thread_count(proc);
    Ok(tid as usize)
}

/// `clone3(args, size)`: `struct clone_args` (at least the first 64 bytes).
fn clone3_args(pr: &Process, p: &Kvm, uargs: u64, size: u64) -> Result<CloneArgs, Errno> {
    if !(64..=4096).contains(&size) {
        return Err(Errno::EINVAL);
    }
    let mut b = [0u8; 88];
    let n = (size as usize).min(88);
    pr.read_user(p, uargs, &mut b[..n])?;
    let w = |i: usize| u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
    // flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls,
    // set_tid, set_tid_size, cgroup.
    if w(4) > 64 || w(8) != 0 || w(9) != 0 {
        return Err(Errno::EINVAL);
    }
    let stack = if w(5) != 0 { w(5) + w(6) } else { 0 };
    Ok(CloneArgs {
        flags: w(0) | (w(4) & clone_flags::CSIGNAL),
        stack,
        ptid: w(3),
        ctid: w(2),
        tls: w(7),
    })
}

/// The running thread ends (`exit`): clear and wake its `clear_child_tid`, and
/// leave the core for good. The last thread's exit ends the process.
fn exit_thread(p: &'static Kvm, proc: &spin::Mutex<Option<Process>>, status: u64) -> ! {
    let me = cpu().tid.load(Ordering::Relaxed) as u32;
    let core = cpu().core.load(Ordering::Relaxed) as usize;
    let mut g = threads();
    let t = g.as_mut().expect("threads");
    if t.live_own() <= 1 {
        drop(g);
        p.exit((status & 0xff) as i32);
    }
    let ctid = t.get(me).map_or(0, |x| x.clear_child_tid);
    if ctid != 0 {
        let ok = proc
            .lock()
            .as_ref()
            .is_some_and(|pr| pr.write_user(p, ctid, &0u32.to_le_bytes()).is_ok());
        if ok {
            for c in t.futex_wake(ctid, 1, u32::MAX) {
                kick(c);
            }
        }
    }
    let robust = t.get(me).map_or(0, |x| x.robust_list.0);
    if robust != 0 {
        release_robust(p, proc, t, me, robust);
    }
    t.stop_current(core, State::Dead);
    let live = t.live_own();
    if let Some(pr) = proc.lock().as_mut() {
        pr.threads = live;
        pr.signals.end_thread(me);
    }
    reschedule(g, p);
    unreachable!("a dead thread was scheduled again")
}

/// A dying thread's robust futexes (`set_robust_list`): each one it still holds
/// gets the owner-died bit, and a waiter is woken, as Linux does.
fn release_robust(
    p: &Kvm,
    proc: &spin::Mutex<Option<Process>>,
    t: &mut Threads,
    tid: u32,
    head: u64,
) {
    let g = proc.lock();
    let Some(pr) = g.as_ref() else {
        return;
    };
    let read = |a: u64| {
        let mut b = [0u8; 8];
        pr.read_user(p, a, &mut b).ok()?;
        Some(u64::from_le_bytes(b))
    };
    for addr in sched::robust_futexes(head, read) {
        if !addr.is_multiple_of(4) || pr.mm.check_access(addr, 4, true).is_err() {
            continue;
        }
        // SAFETY: addr is mapped writable application memory (checked), aligned;
        // other threads change it with atomic instructions too.
        let word = unsafe { &*(addr as *const AtomicU32) };
        let mut old = word.load(Ordering::Relaxed);
        while let Some(new) = sched::owner_died(old, tid) {
            match word.compare_exchange(old, new, Ordering::SeqCst, Ordering::Relaxed) {
                Ok(_) => {
                    if old & sched::FUTEX_WAITERS != 0 {
                        for c in t.futex_wake(addr, 1, u32::MAX) {
                            kick(c);
                        }
                    }
                    break;
                }
                Err(now) => old = now,
            }
        }
    }
}

/// Is the running thread a vfork child (its process is another)?
pub fn current_is_child() -> bool {
    cpu().child.load(Ordering::Relaxed) != 0
}

/// The running vfork child's process exec'd or ended: the thread leaves the
/// partition. Never called with PROCESS held.
pub fn end_child_thread() -> ! {
    let core = cpu().core.load(Ordering::Relaxed) as usize;
    let mut g = threads();
    g.as_mut().expect("threads").stop_current(core, State::Dead);
    reschedule(g, super::platform::kvm());
    unreachable!("a gone vfork child was scheduled again")
}

/// Calls of a vfork child that are its process's, not the partition's: `execve`
/// runs the program in a partition of its own, `exit`/`exit_group` end the child
/// process. `None`: not such a call.
pub fn child_call(p: &Kvm, nr: u64, a: [u64; 6]) -> Option<u64> {
    let nr = nr as u32 as u64;
    let exit = nr == Sysno::exit as u64 || nr == Sysno::exit_group as u64;
    if !(exit || nr == Sysno::execve as u64) || !current_is_child() {
        return None;
    }
    if exit {
        p.exit((a[0] & 0xff) as i32)
    }
    // Returns only when the program cannot be run (-errno).
    Some(p.spawn_exec(a[0], a[1], a[2]) as u64)
}

/// Signals were sent to threads `tids` (`tgkill`): end their futex waits (EINTR)
/// so they act on them. Call without holding PROCESS.
pub fn interrupt(tids: &[u32]) {
    if tids.is_empty() {
        return;
    }
    let mut g = threads();
    let Some(t) = g.as_mut() else { return };
    let cores: Vec<usize> = tids.iter().filter_map(|&tid| t.interrupt(tid)).collect();
    drop(g);
    for c in cores {
        kick(c);
    }
}

/// A signal wants acting on (the signal page's `attention`) while this core runs
/// none of the process's threads: end the futex wait of one of its threads that
/// would take it, so that it does on its way back to the application.
fn attend_signals(core: usize) {
    if super::sig::page().attention.load(Ordering::Acquire) == 0 {
        return;
    }
    // PROCESS first, let go, then THREADS (lock order).
    let takers = match crate::partition::process_with_signals() {
        Some(t) => t,
        None => return,
    };
    let mut g = threads();
    let Some(t) = g.as_mut() else { return };
    let target = takers.iter().copied().find(|&tid| {
        t.get(tid)
            .is_some_and(|x| x.core == core && matches!(x.state, State::Blocked { .. }))
    });
    if let Some(tid) = target {
        t.interrupt(tid);
    }
}

/// Read the futex word at `uaddr` (aligned, mapped readable).
fn futex_word(proc: &spin::Mutex<Option<Process>>, p: &Kvm, uaddr: u64) -> Result<u32, Errno> {
    if !uaddr.is_multiple_of(4) {
        return Err(Errno::EINVAL);
    }
    let mut b = [0u8; 4];
    proc.lock()
        .as_ref()
        .expect("process")
        .read_user(p, uaddr, &mut b)?;
    Ok(u32::from_le_bytes(b))
}

/// `struct timespec` at `ts` as nanoseconds.
fn read_timespec(proc: &spin::Mutex<Option<Process>>, p: &Kvm, ts: u64) -> Result<u64, Errno> {
    let mut b = [0u8; 16];
    proc.lock()
        .as_ref()
        .expect("process")
        .read_user(p, ts, &mut b)?;
    mote_libos::time::parse_timespec(&b)
}

mod futex_op {
    pub const WAIT: u32 = 0;
    pub const WAKE: u32 = 1;
    pub const REQUEUE: u32 = 3;
    pub const CMP_REQUEUE: u32 = 4;
    pub const WAKE_OP: u32 = 5;
    pub const WAIT_BITSET: u32 = 9;
    pub const WAKE_BITSET: u32 = 10;
    pub const PRIVATE: u32 = 128;
    pub const CLOCK_REALTIME: u32 = 256;
}

/// `futex(uaddr, op, val, timeout|val2, uaddr2, val3)`.
fn futex(
    p: &'static Kvm,
    proc: &spin::Mutex<Option<Process>>,
    a: [u64; 6],
) -> Result<usize, Errno> {
    use futex_op::*;
    let (uaddr, op, val, uaddr2, val3) = (a[0], a[1] as u32, a[2] as u32, a[4], a[5] as u32);
    let cmd = op & !(PRIVATE | CLOCK_REALTIME);
    if op & CLOCK_REALTIME != 0 && cmd != WAIT_BITSET && cmd != WAIT {
        return Err(Errno::ENOSYS);
    }
    match cmd {
        WAIT | WAIT_BITSET => {
            let bitset = if cmd == WAIT { u32::MAX } else { val3 };
            if bitset == 0 {
                return Err(Errno::EINVAL);
            }
            // WAIT: relative on CLOCK_MONOTONIC; WAIT_BITSET: absolute, on
            // CLOCK_MONOTONIC or (FUTEX_CLOCK_REALTIME) CLOCK_REALTIME.
            let deadline = if a[3] == 0 {
                0
            } else {
                let ts = read_timespec(proc, p, a[3])?;
                let now = now_ns(p);
                if cmd == WAIT {
                    now.saturating_add(ts).max(1)
                } else if op & CLOCK_REALTIME != 0 {
                    let real = proc
                        .lock()
                        .as_mut()
                        .and_then(|pr| pr.clock.now(p, mote_libos::time::id::REALTIME))
                        .ok_or(Errno::ENOSYS)?;
                    now.saturating_add(ts.saturating_sub(real)).max(1)
                } else {
                    let mono = proc
                        .lock()
                        .as_mut()
                        .and_then(|pr| pr.clock.now(p, mote_libos::time::id::MONOTONIC))
                        .ok_or(Errno::ENOSYS)?;
                    now.saturating_add(ts.saturating_sub(mono)).max(1)
                }
            };
            let core = cpu().core.load(Ordering::Relaxed) as usize;
            let me = cpu().tid.load(Ordering::Relaxed) as u32;
            let mut g = threads();
            if futex_word(proc, p, uaddr)? != val {
                return Err(Errno::EAGAIN);
            }
            if deadline != 0 && deadline <= now_ns(p) {
                return Err(Errno::ETIMEDOUT);
            }
            let t = g.as_mut().expect("threads");
            t.futex_enqueue(me, uaddr, bitset);
            t.stop_current(core, State::Blocked { deadline });
            reschedule(g, p);
            match threads().as_ref().and_then(|t| t.get(me)).map(|x| x.wake) {
                Some(Wake::TimedOut) => Err(Errno::ETIMEDOUT),
                Some(Wake::Interrupted) => Err(Errno::EINTR),
                _ => Ok(0),
            }
        }
        WAKE | WAKE_BITSET => {
            let bitset = if cmd == WAKE { u32::MAX } else { val3 };
            if bitset == 0 {
                return Err(Errno::EINVAL);
            }
            if !uaddr.is_multiple_of(4) {
                return Err(Errno::EINVAL);
            }
            let cores = threads()
                .as_mut()
                .expect("threads")
                .futex_wake(uaddr, val, bitset);
            for &c in &cores {
                kick(c);
            }
            Ok(cores.len())
        }
        REQUEUE | CMP_REQUEUE => {
            if !uaddr.is_multiple_of(4) || !uaddr2.is_multiple_of(4) {
                return Err(Errno::EINVAL);
            }
            let n_requeue = a[3] as u32;
            if (val as i32) < 0 || (n_requeue as i32) < 0 {
                return Err(Errno::EINVAL);
            }
            let mut g = threads();
            if cmd == CMP_REQUEUE && futex_word(proc, p, uaddr)? != val3 {
                return Err(Errno::EAGAIN);
            }
            let (cores, moved) = g
                .as_mut()
                .expect("threads")
                .futex_requeue(uaddr, uaddr2, val, n_requeue);
            drop(g);
            for &c in &cores {
                kick(c);
            }
            Ok(cores.len() + moved as usize)
        }
        WAKE_OP => {
            if !uaddr.is_multiple_of(4) || !uaddr2.is_multiple_of(4) {
                return Err(Errno::EINVAL);
            }
            let mut g = threads();
            {
                let pg = proc.lock();
                pg.as_ref()
                    .expect("process")
                    .mm
                    .check_access(uaddr2, 4, true)?;
            }
            // SAFETY: uaddr2 is mapped writable application memory (checked), 4-byte
            // aligned; other threads change it only with atomic instructions too.
            let word = unsafe { &*(uaddr2 as *const AtomicU32) };
            let mut old = word.load(Ordering::Relaxed);
            let hold = loop {
                let (new, hold) = sched::wake_op(val3, old)?;
                match word.compare_exchange(old, new, Ordering::SeqCst, Ordering::Relaxed) {
                    Ok(_) => break hold,
                    Err(now) => old = now,
                }
            };
            let t = g.as_mut().expect("threads");
            let mut cores = t.futex_wake(uaddr, val, u32::MAX);
            if hold {
                cores.extend(t.futex_wake(uaddr2, a[3] as u32, u32::MAX));
            }
            drop(g);
            for &c in &cores {
                kick(c);
            }
            Ok(cores.len())
        }
        _ => {
            proc.lock().as_mut().expect("process").log_once(
                p,
                0x3_0000 + cmd as u64,
                || {
                    alloc::format!(
                        "futex operation {cmd} (priority-inheritance or requeue-PI) is not implemented; returning ENOSYS"
                    )
                },
            );
            Err(Errno::ENOSYS)
        }
    }
}

/// `nanosleep` and `clock_nanosleep` on the partition's clocks, locally: the
/// thread blocks in the scheduler until its deadline (its core runs other threads
/// or sleeps that long), or until a signal for it ends the wait (`-EINTR`, the
/// time left written to `rem` for a relative sleep). `None`: a clock libos does not
/// keep (the caller forwards the call to Linux).
pub fn local_sleep(
    p: &'static Kvm,
    proc: &spin::Mutex<Option<Process>>,
    nr: u64,
    a: [u64; 6],
) -> Option<i64> {
    use mote_libos::time::id;
    let (clock, absolute, req, rem) = if nr == Sysno::nanosleep as u64 {
        (id::MONOTONIC, false, a[0], a[1])
    } else if nr == Sysno::clock_nanosleep as u64 {
        (a[0], a[1] & 1 != 0, a[2], a[3])
    } else {
        return None;
    };
    if !matches!(clock, id::REALTIME | id::MONOTONIC | id::BOOTTIME) || p.boot.tsc_khz == 0 {
        return None;
    }
    let err = |e: Errno| -(e as i64);
    // The wait steps (libos `wait`) pass their own buffers for the time left and
    // a resumed request: runtime memory, not the application's.
    let runtime = |va: u64| (mote_abi::layout::LIBOS_VA..mote_abi::layout::LIBOS_END).contains(&va);
    let ns = if runtime(req) {
        let mut b = [0u8; 16];
        p.read_mem(req, &mut b);
        match mote_libos::time::parse_timespec(&b) {
            Ok(ns) => ns,
            Err(e) => return Some(err(e)),
        }
    } else {
        match read_timespec(proc, p, req) {
            Ok(ns) => ns,
            Err(e) => return Some(err(e)),
        }
    };
    let now = now_ns(p);
    let deadline = if absolute {
        let current = proc.lock().as_mut()?.clock.now(p, clock)?;
        now.saturating_add(ns.saturating_sub(current))
    } else {
        now.saturating_add(ns)
    };
    if deadline <= now {
        return Some(0);
    }
    let core = cpu().core.load(Ordering::Relaxed) as usize;
    let me = cpu().tid.load(Ordering::Relaxed) as u32;
    let mut g = threads();
    g.as_mut()?.stop_current(core, State::Blocked { deadline });
    reschedule(g, p);
    let wake = threads().as_ref().and_then(|t| t.get(me)).map(|x| x.wake);
    if wake != Some(Wake::Interrupted) {
        return Some(0);
    }
    if !absolute && rem != 0 {
        let left = deadline.saturating_sub(now_ns(p));
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&(left / 1_000_000_000).to_le_bytes());
        b[8..].copy_from_slice(&(left % 1_000_000_000).to_le_bytes());
        if runtime(rem) {
            p.write_mem(rem, &b);
        } else if let Some(pr) = proc.lock().as_ref() {
            if let Err(e) = pr.write_user(p, rem, &b) {
                return Some(err(e));
            }
        }
    }
    Some(err(Errno::EINTR))
}

/// `sched_getaffinity(pid, len, mask)`: a thread's partition cores (libos writes
/// them; another process's go to Linux).
fn getaffinity(
    p: &Kvm,
    proc: &spin::Mutex<Option<Process>>,
    tid: u64,
    len: u64,
    mask: u64,
) -> Result<usize, Errno> {
    let me = cpu().tid.load(Ordering::Relaxed) as u32;
    let who = if tid == 0 { me } else { tid as u32 };
    let ours = threads()
        .as_ref()
        .and_then(|t| t.get(who))
        .filter(|x| x.state != State::Dead)
        .map(|x| x.affinity);
    let mut g = proc.lock();
    let pr = g.as_mut().expect("process");
    mote_libos::syscall::task::sched_getaffinity(pr, p, tid, len, mask, ours)
}

/// `sched_setaffinity(pid, len, mask)`: within the partition's cores.
fn setaffinity(
    p: &'static Kvm,
    proc: &spin::Mutex<Option<Process>>,
    tid: u64,
    len: u64,
    mask: u64,
) -> Result<usize, Errno> {
    let mut b = [0u8; 8];
    let n = (len as usize).min(8);
    proc.lock()
        .as_ref()
        .expect("process")
        .read_user(p, mask, &mut b[..n])?;
    let bits = u64::from_le_bytes(b);
    let me = cpu().tid.load(Ordering::Relaxed) as u32;
    let tid = if tid == 0 { me } else { tid as u32 };
    let core = cpu().core.load(Ordering::Relaxed) as usize;
    let mut g = threads();
    let t = g.as_mut().expect("threads");
    t.set_affinity(tid, bits)?;
    if tid == me && t.get(me).is_some_and(|x| x.core != core) {
        // Move now: give up this core; the thread continues on its new one.
        let new = t.get(me).map_or(0, |x| x.core);
        t.stop_current(core, State::Runnable);
        t.requeue_moved(core);
        kick(new);
        reschedule(g, p);
    }
    Ok(0)
}

/// The calls this module answers (the table routes them here: `Route::Thread`).
/// `frame` is the caller's full register frame when it trapped (needed by `clone`).
pub fn dispatch(
    p: &'static Kvm,
    proc: &spin::Mutex<Option<Process>>,
    nr: u64,
    a: [u64; 6],
    frame: Option<&TrapFrame>,
) -> Result<usize, Errno> {
    let me = cpu().tid.load(Ordering::Relaxed) as u32;
    let with_me = |f: &mut dyn FnMut(&mut Thread) -> Result<usize, Errno>| {
        let mut g = threads();
        let t = g
            .as_mut()
            .expect("threads")
            .get_mut(me)
            .ok_or(Errno::ESRCH)?;
        f(t)
    };
    match Sysno::new(nr as usize) {
        Some(Sysno::gettid) => Ok(me as usize),
        Some(Sysno::clone) => {
            let Some(f) = frame else {
                return Err(direct_clone(p, proc));
            };
            // x86-64: clone(flags, stack, parent_tid, child_tid, tls).
            clone_thread(
                p,
                proc,
                f,
                CloneArgs {
                    flags: a[0],
                    stack: a[1],
                    ptid: a[2],
                    ctid: a[3],
                    tls: a[4],
                },
            )
        }
        Some(Sysno::vfork) => {
            let Some(f) = frame else {
                return Err(direct_clone(p, proc));
            };
            let flags = clone_flags::CLONE_VM | clone_flags::CLONE_VFORK | 17; // SIGCHLD
            clone_thread(
                p,
                proc,
                f,
                CloneArgs {
                    flags,
                    stack: 0,
                    ptid: 0,
                    ctid: 0,
                    tls: 0,
                },
            )
        }
        Some(Sysno::clone3) => {
            let Some(f) = frame else {
                return Err(direct_clone(p, proc));
            };
            let args = {
                let g = proc.lock();
                clone3_args(g.as_ref().expect("process"), p, a[0], a[1])?
            };
            clone_thread(p, proc, f, args)
        }
        Some(Sysno::exit) => exit_thread(p, proc, a[0]),
        Some(Sysno::futex) => futex(p, proc, a),
        Some(Sysno::sched_yield) => {
            let core = cpu().core.load(Ordering::Relaxed) as usize;
            let mut g = threads();
            let t = g.as_mut().expect("threads");
            if t.others_runnable(core) || t.has_forwarded(core) {
                t.stop_current(core, State::Runnable);
                reschedule(g, p);
            }
            Ok(0)
        }
        Some(Sysno::set_tid_address) => with_me(&mut |t| {
            t.clear_child_tid = a[0];
            Ok(t.tid as usize)
        }),
        Some(Sysno::set_robust_list) => {
            if a[1] != 24 {
                return Err(Errno::EINVAL);
            }
            with_me(&mut |t| {
                t.robust_list = (a[0], a[1]);
                Ok(0)
            })
        }
        Some(Sysno::get_robust_list) => {
            let tid = if a[0] == 0 { me } else { a[0] as u32 };
            let (head, len) = threads()
                .as_ref()
                .expect("threads")
                .get(tid)
                .map(|t| t.robust_list)
                .ok_or(Errno::ESRCH)?;
            let g = proc.lock();
            let pr = g.as_ref().expect("process");
            pr.write_user(p, a[1], &head.to_le_bytes())?;
            pr.write_user(p, a[2], &len.to_le_bytes())?;
            Ok(0)
        }
        Some(Sysno::arch_prctl) => {
            use mote_libos::uapi::arch_prctl::*;
            match a[0] {
                ARCH_SET_FS => {
                    if a[1] >= mote_libos::uapi::TASK_SIZE_MAX {
                        return Err(Errno::EPERM);
                    }
                    with_me(&mut |t| {
                        t.fs_base = a[1];
                        Ok(0)
                    })?;
                    p.set_fs(a[1]);
                    Ok(0)
                }
                ARCH_GET_FS => {
                    let fs = with_me(&mut |t| Ok(t.fs_base as usize))? as u64;
                    let g = proc.lock();
                    g.as_ref()
                        .expect("process")
                        .write_user(p, a[1], &fs.to_le_bytes())?;
                    Ok(0)
                }
                _ => {
                    let mut g = proc.lock();
                    let pr = g.as_mut().expect("process");
                    mote_libos::syscall::task::arch_prctl(pr, p, a[0], a[1])
                }
            }
        }
        Some(Sysno::sched_getaffinity) => getaffinity(p, proc, a[0], a[1], a[2]),
        Some(Sysno::sched_setaffinity) => setaffinity(p, proc, a[0], a[1], a[2]),
        _ => Err(Errno::ENOSYS),
    }
}

/// `clone` through the direct entry: a C function call cannot return twice on two
/// stacks, so relinked code must use its C library's `clone` (a `syscall`).
fn direct_clone(p: &Kvm, proc: &spin::Mutex<Option<Process>>) -> Errno {
    if let Some(pr) = proc.lock().as_mut() {
        pr.log_once(p, 0x3_1000, || {
            alloc::string::String::from(
                "clone through the direct entry (mote_syscall) is not possible: a C call cannot return on the child's stack; use the C library's clone; returning ENOSYS",
            )
        });
    }
    Errno::ENOSYS
}

/// Threads of the application alive now.
pub fn live_threads() -> usize {
    threads().as_ref().map_or(1, |t| t.live_own())
}

/// Tell the process how many threads live (for `/proc/self/status`); call without
/// holding PROCESS.
fn publish_thread_count(proc: &spin::Mutex<Option<Process>>) {
    let n = threads().as_ref().map_or(1, |t| t.live_own());
    if let Some(pr) = proc.lock().as_mut() {
        pr.threads = n;
    }
}

/// Secondary cores: wait for the main thread to set up the thread table, then idle.
pub fn secondary(p: &'static Kvm, core: usize) -> ! {
    init_core(p, core);
    to_idle_context(core);
    while THREADS.lock().is_none() {
        core::hint::spin_loop();
    }
    // The idle loop runs on this boot stack; its rsp is saved in idle_rsp when it
    // switches to a thread.
    idle_loop(p)
}

/// Patched sites that would clone must keep trapping (the child needs the full
/// register frame).
pub fn must_trap(nr: u64) -> bool {
    nr == Sysno::clone as u64 || nr == Sysno::clone3 as u64 || nr == Sysno::vfork as u64
}
