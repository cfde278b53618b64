//! Threads on the runtime's cores, the machine part: user-level context switches,
//! the idle loop, blocking and waking cores, a new thread's first context. The
//! thread system calls themselves (`clone`, `exit`, `futex`, ...) are libos's
//! (`mote_libos::syscall::thread`), which reaches this module through
//! `rt::call::Call`, its `Machine`.
//!
//! Decisions (who runs next, futex queues, placement) are libos's
//! (`mote_libos::sched::Threads`, under the `THREADS` lock). Every thread has its
//! own runtime stack (its upcall stack: traps and calls of that thread run on it,
//! and a thread blocked inside libos keeps its Rust frames there) and its own IKC
//! slot with its own offload thread in the proxy, so a forwarded call that blocks
//! in Linux blocks only its thread: the core runs the others meanwhile. A switch is
//! a stack switch at CPL3 with the callee-saved registers, the application's
//! extended (FPU/SSE/AVX) state and the FS base; no ring 0. A core with nothing to
//! run sleeps (`ports::WAIT`) until its `wake_seq` moves.
//!
//! Time-sharing (`end_of_slice`): while a core has a second thread that wants to
//! run, its timer (`rt::tick`) interrupts the application at the end of each
//! slice. The interruption enters the runtime as a trap would (`VECTOR_PREEMPT`,
//! a full `TrapFrame` on the thread's runtime stack), so the preempted thread is
//! switched out inside that trap like a thread blocking in a system call, and
//! resumes through the full-restore exit with every register, its flags, its
//! extended state and its FS base. A timer event that finds the core in the
//! runtime (its code, its locks, an IKC call in flight) never switches there: it
//! leaves `preempt_due`, taken where the runtime returns to the application
//! (`end_of_slice_if_due`).
//!
//! Lock order: `THREADS` before `PROCESS` (`rt::locks`).

use alloc::vec::Vec;
use core::arch::{asm, global_asm};
use core::cell::UnsafeCell;
use core::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU64, Ordering};

use mote_abi::boot::BOOT_F_FSGSBASE;
use mote_abi::ikc::{idle_slot, Slot, MAX_THREADS, THREAD_SLOTS};
use mote_abi::layout::{upcall_stack_top, MAX_CORES};
use mote_abi::trap::TrapFrame;
use mote_abi::{kcall, ports};
use mote_libos::platform::Platform;
use mote_libos::sched::{State, Thread, Threads};
use mote_libos::syscall::thread::tsc_ns;

use super::ikc::{core_page, thread_slot};
use super::locks::{PROCESS, THREADS};
use super::percpu;
use super::percpu::{cpu, PerCpu, CPUS};
use super::platform::{self, edge, kcall_raw, RtPlatform, Waiter};
use super::tick;

// The entry stubs (`rt::entry`) name these here.
pub use super::percpu::{PERCPU_CALLS, PERCPU_SCRATCH, PERCPU_TID, PERCPU_UPCALL_TOP, PID};

/// Runtime stack of a thread other than the main one (the main thread has core 0's
/// upcall stack).
const THREAD_STACK: usize = 64 << 10;
/// Stack of core 0's idle context (on the hosted platform, plus room for one
/// Linux signal frame, see `Edge::idle_stack`).
const IDLE_STACK: usize = 16 << 10;
/// Most bytes for one thread's extended state (`xsave`; the size CPUID reports
/// is checked against it, and each thread gets what CPUID says).
pub(super) const XSAVE_AREA: usize = 16 << 10;

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

pub(super) fn save_ext(area: &mut [u8]) {
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

pub(super) fn restore_ext(area: &[u8]) {
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
pub fn init_core(p: &RtPlatform, core: usize) {
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
pub fn init_main(p: &RtPlatform, tid: u32) {
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
    // Core 0's idle context, entered the first time the main thread blocks (on
    // the hosted platform with room for a Linux signal frame, see `Edge::idle_stack`).
    let idle_len = p.edge().idle_stack(IDLE_STACK, ext_state);
    let idle: &'static mut [u8] = Vec::leak(alloc::vec![0u8; idle_len]);
    let top = (idle.as_ptr() as u64 + idle_len as u64) & !15;
    c.idle_rsp.store(
        initial_context(top, &raw const mote_idle_start as u64),
        Ordering::Relaxed,
    );
}

/// Core 0 of a fork child (`rt::fork`): the thread that forked is main thread
/// `tid` (slot 0, core 0's upcall stack, the thread table `fork::adopt` made);
/// core 0 gets an idle context of its own again, no core has a dead thread
/// of the parent's to reap or the parent's FS base loaded.
pub fn init_forked(p: &RtPlatform, tid: u32) {
    PID.store(tid as u64, Ordering::Relaxed);
    for c in &CPUS {
        c.dead.store(0, Ordering::Relaxed);
        // In the partition the child's cores are new vCPUs, FS base 0: the
        // parent's loaded base is not theirs (`set_fs` would skip its call).
        c.fs.store(0, Ordering::Relaxed);
    }
    let c = cpu();
    c.tid.store(tid as u64, Ordering::Relaxed);
    c.slot.store(0, Ordering::Relaxed);
    c.child.store(0, Ordering::Relaxed);
    set_upcall_top(0, upcall_stack_top(0));
    let idle_len = p.edge().idle_stack(IDLE_STACK, ext_bytes());
    let idle: &'static mut [u8] = Vec::leak(alloc::vec![0u8; idle_len]);
    let top = (idle.as_ptr() as u64 + idle_len as u64) & !15;
    c.idle_rsp.store(
        initial_context(top, &raw const mote_idle_start as u64),
        Ordering::Relaxed,
    );
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
/// The context switched to calls `Edge::on_switch` first thing (through
/// `resume_thread_state` or `idle_signal_stack`).
fn switch(save: *mut u64, next_rsp: u64) {
    edge().before_switch(percpu::core());
    // SAFETY: next_rsp is a context saved by mote_switch or made by
    // initial_context; `save` belongs to the context we leave.
    unsafe { mote_switch(save, next_rsp) }
}

/// Code that runs in a context right after a switch into it: recycle a thread that
/// died on this core (an `execve` waiting for the process's other threads to end
/// runs again once the last is reaped), and restore the running thread's machine
/// state.
fn after_switch() {
    let c = cpu();
    let dead = c.dead.swap(0, Ordering::Relaxed);
    if dead != 0 {
        let wake = threads().as_mut().and_then(|t| {
            t.reap(dead as u32);
            t.exec_wake()
        });
        if let Some(core) = wake {
            kick(core);
        }
    }
}

extern "C" fn thread_started() {
    after_switch();
    resume_thread_state();
    // A thread made while an `execve` ends the others never starts.
    leave_if_doomed(platform::get());
}

/// Set while an `execve` ends the process's other threads (`Machine::end_threads`):
/// the runtime then looks, where a thread passes through it, whether it is one
/// of them (`leave_if_doomed`); otherwise that look is this one load.
static ENDING: AtomicBool = AtomicBool::new(false);

/// An `execve` starts (`true`) or has finished (`false`) ending the other threads.
pub fn set_ending(on: bool) {
    ENDING.store(on, Ordering::SeqCst);
}

/// Where a thread passes through the runtime holding none of its locks (an
/// entry from the application, a return to it, a resumption after a block, a
/// call to the proxy): a thread an `execve` of another thread is ending
/// (`Threads::doom_others`) ends here and never returns to the application.
pub fn leave_if_doomed(p: &RtPlatform) {
    if !ENDING.load(Ordering::Acquire) {
        return;
    }
    let me = cpu().tid.load(Ordering::Relaxed) as u32;
    if me == 0 || !threads().as_ref().is_some_and(|t| t.is_doomed(me)) {
        return;
    }
    // Gone for signals and memory policies first (the process lock alone; then
    // the thread table, as lock order wants).
    if let Some(pr) = PROCESS.lock().as_mut() {
        pr.signals.end_thread(me);
        pr.mm.numa.forget(me);
    }
    let core = cpu().core.load(Ordering::Relaxed) as usize;
    let mut g = threads();
    g.as_mut().expect("threads").stop_current(core, State::Dead);
    reschedule(g, p);
    unreachable!("a thread ended by execve was scheduled again")
}

/// The running thread's FS base and extended state (after a switch into it).
fn resume_thread_state() {
    let c = cpu();
    let slot = c.slot.load(Ordering::Relaxed) as usize;
    restore_ext(&tcb(slot).xsave);
    // Hosted platform: this thread's traps arrive as signals on its own stack.
    let size = if slot == 0 {
        mote_abi::layout::UPCALL_STACK_SIZE
    } else {
        // stack_top aligns down by up to 15 bytes.
        (tcb(slot).stack.len() as u64).saturating_sub(16)
    };
    edge().on_switch(percpu::core(), stack_top(slot), size);
}

/// Give the core to the next thread: the caller already changed the running
/// thread's state (`stop_current`) under `g`. Returns when the thread runs again.
pub fn reschedule(mut g: spin::MutexGuard<'_, Option<Threads>>, p: &RtPlatform) {
    let c = cpu();
    let core = c.core.load(Ordering::Relaxed) as usize;
    let me = c.tid.load(Ordering::Relaxed) as u32;
    let my_slot = c.slot.load(Ordering::Relaxed) as usize;
    let t = g.as_mut().expect("threads");
    let dying = t.get(me).is_some_and(|x| x.state == State::Dead);
    if !dying && p.boot.flags & BOOT_F_FSGSBASE != 0 {
        // The application may have moved its FS base itself (`wrfsbase`): the
        // thread resumes with the one it has now.
        if let Some(x) = t.get_mut(me) {
            x.fs_base = read_fs();
        }
    }
    let next = t.pick(core, now_ns(p), answered);
    if next.is_some() && wants_tick(t, core) {
        tick::start(core);
    }
    if next == Some(me) {
        return;
    }
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
    // Woken (or answered) to end: an `execve` of another thread ends it.
    leave_if_doomed(p);
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

/// The FS base the running thread has loaded (with `BOOT_F_FSGSBASE`).
fn read_fs() -> u64 {
    let fs: u64;
    // SAFETY: CR4.FSGSBASE is set (the caller checked the boot flag), so
    // rdfsbase works at CPL3; it only reads the register.
    unsafe { asm!("rdfsbase {}", out(reg) fs, options(nomem, nostack, preserves_flags)) };
    fs
}

/// Does `core` want its time-sharing timer (never with `--time-slice 0`)?
fn wants_tick(t: &Threads, core: usize) -> bool {
    tick::slice_ns() != 0 && t.wants_tick(core)
}

/// The running thread's slice ended: its core's timer interrupted it in the
/// application (`VECTOR_PREEMPT`), or a slice end the runtime deferred is due.
/// libos decides (`Threads::preempt`): another thread of the core runs now and
/// this one goes to the back of the queue, or it keeps the core; and a core that
/// no longer wants its timer stops it. Called with no lock held, on the thread's
/// runtime stack inside its trap; returns when the thread runs again.
pub fn end_of_slice(p: &RtPlatform) {
    let c = cpu();
    let core = c.core.load(Ordering::Relaxed) as usize;
    tick::take_due(core);
    tick::count_tick(core);
    if c.tid.load(Ordering::Relaxed) == 0 {
        return;
    }
    let mut g = threads();
    let Some(t) = g.as_mut() else { return };
    if t.preempt(core, now_ns(p), answered) {
        tick::count_preemption(core);
        reschedule(g, p);
    } else if !wants_tick(t, core) {
        tick::stop(core, true);
    }
}

/// Where the runtime returns to the application: a slice end that arrived while
/// this core ran the runtime is acted on now (one load when none is).
pub fn end_of_slice_if_due(p: &RtPlatform) {
    if tick::due(percpu::core()) {
        end_of_slice(p);
    }
}

/// Make `tid` (slot `slot`) the running thread of this core and switch to it,
/// saving the current context's rsp at `save`. Its slice starts now: a slice end
/// left for the thread before it is void.
fn enter(p: &RtPlatform, core: usize, x: &Thread, save: *mut u64) {
    let (tid, slot, fs) = (x.tid, x.slot, x.fs_base);
    let c = &CPUS[core];
    tick::take_due(core);
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

/// Monotonic time for deadlines.
fn now_ns(p: &RtPlatform) -> u64 {
    tsc_ns(p.tsc(), p.boot.tsc_khz)
}

/// A forwarded call of the thread on `slot` has its answer.
fn answered(slot: usize) -> bool {
    let s = thread_slot(slot);
    s.resp_seq.load(Ordering::Acquire) == s.req_seq.load(Ordering::Relaxed)
}

/// Core `core` has new work: wake it if it sleeps. If it runs a thread, the
/// thread made runnable waits behind it: the core wants its timer (started
/// here; one started in a race with that thread's block stops at its first
/// event, `end_of_slice`).
pub fn kick(core: usize) {
    if core < MAX_CORES && CPUS[core].tid.load(Ordering::Relaxed) != 0 {
        tick::start(core);
    }
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
    idle_loop(platform::get())
}

/// Hosted platform: the idle context handles signals (the proxy's kicks) on its
/// own stack, never on the signal stack of a thread blocked inside a trap.
fn idle_signal_stack(core: usize) {
    edge().on_switch(core, 0, 0);
}

/// What a core runs when none of its threads can: pick a thread, else spin a little,
/// else sleep until woken.
fn idle_loop(p: &'static RtPlatform) -> ! {
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
            if wants_tick(t, core) {
                tick::start(core);
            }
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
        // No thread runs here: a timer left running has nothing to preempt.
        if tick::armed(core) {
            tick::stop(core, false);
        }
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
fn wait_response(slot: &Slot, seen: u32, process_locked: bool) {
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
    reschedule(g, platform::get());
}

/// Is the running thread a vfork child (its process is another)?
pub fn current_is_child() -> bool {
    cpu().child.load(Ordering::Relaxed) != 0
}

/// The running vfork child's process exec'd or ended: the thread leaves the
/// partition. Never called with PROCESS held.
fn end_child_thread() -> ! {
    let core = cpu().core.load(Ordering::Relaxed) as usize;
    let mut g = threads();
    g.as_mut().expect("threads").stop_current(core, State::Dead);
    reschedule(g, platform::get());
    unreachable!("a gone vfork child was scheduled again")
}

/// A signal wants acting on (the signal page's `attention`) while this core runs
/// none of the process's threads: end the futex wait of one of its threads that
/// would take it, so that it does on its way back to the application.
fn attend_signals(core: usize) {
    if super::sig::page().attention.load(Ordering::Acquire) == 0 {
        return;
    }
    // PROCESS first, let go, then THREADS (lock order). The threads that would
    // take a pending signal now (signals from outside collected first).
    let takers = {
        let mut g = PROCESS.lock();
        let Some(pr) = g.as_mut() else { return };
        pr.signals.take_external();
        pr.signals.takers()
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

/// Secondary cores: wait for the main thread to set up the thread table, then idle.
pub fn secondary(p: &'static RtPlatform, core: usize) -> ! {
    init_core(p, core);
    to_idle_context(core);
    while THREADS.lock().is_none() {
        core::hint::spin_loop();
    }
    // The idle loop runs on this boot stack; its rsp is saved in idle_rsp when it
    // switches to a thread.
    idle_loop(p)
}

/// Heap a new thread leaves free (see `new_context`).
const HEAP_HEADROOM: usize = 256 << 10;

/// `len` zero bytes from the runtime's heap, or None when it is full.
fn zeroed(len: usize) -> Option<Vec<u8>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).ok()?;
    v.resize(len, 0);
    Some(v)
}

/// The machine context of a new thread on `slot` (`Machine::new_context`): its
/// runtime stack, the creator's extended state, and a first frame that is `f`
/// with `rax = 0` and, unless `stack` is 0, `rsp = stack`. `false`: the
/// runtime's heap cannot hold its stack.
pub fn new_context(slot: usize, stack: u64, f: &TrapFrame) -> bool {
    let tcb = tcb(slot);
    if tcb.stack.is_empty() {
        // The runtime's heap is fixed (layout::RUNTIME_HEAP_SIZE). A new thread
        // also leaves HEAP_HEADROOM free for the runtime's own later allocations
        // (its log line, libos's bookkeeping): running out of those would end the
        // run instead of refusing one thread.
        let spare = zeroed(HEAP_HEADROOM);
        let (true, Some(stack), Some(xsave)) =
            (spare.is_some(), zeroed(THREAD_STACK), zeroed(ext_bytes()))
        else {
            return false;
        };
        tcb.stack = stack;
        tcb.xsave = xsave;
    }
    // The child's extended state is the parent's now (as Linux copies it).
    save_ext(&mut tcb.xsave);
    let top = stack_top(slot);
    let mut child = *f;
    child.rax = 0;
    if stack != 0 {
        child.hdr.rsp = stack;
    }
    let frame = top - core::mem::size_of::<TrapFrame>() as u64;
    // SAFETY: [frame, top) is the top of the new thread's own stack, unused.
    unsafe { (frame as *mut TrapFrame).write(child) };
    tcb.rsp = initial_context(frame, &raw const mote_thread_start as u64);
    true
}

/// `Machine::update_word`: a compare-and-exchange loop on the application's
/// futex word at `addr`.
pub fn update_word(addr: u64, f: &mut dyn FnMut(u32) -> Option<u32>) -> Option<u32> {
    // SAFETY: libos checked that addr is mapped writable application memory,
    // 4-byte aligned; other threads change it only with atomic instructions too.
    let word = unsafe { &*(addr as *const AtomicU32) };
    let mut old = word.load(Ordering::Relaxed);
    while let Some(new) = f(old) {
        match word.compare_exchange(old, new, Ordering::SeqCst, Ordering::Relaxed) {
            Ok(_) => return Some(old),
            Err(now) => old = now,
        }
    }
    None
}

/// The thread layer as the platform's forwarded calls wait on it.
pub struct Scheduler;

impl Waiter for Scheduler {
    fn wait_response(&self, slot: &Slot, seen: u32, process_locked: bool) {
        wait_response(slot, seen, process_locked)
    }
    fn end_child_thread(&self) -> ! {
        end_child_thread()
    }
    fn leave_if_doomed(&self) {
        // Only where no lock is held: one held by this thread would stay held
        // (a lock another thread holds only makes this look come later).
        if ENDING.load(Ordering::Acquire) && !PROCESS.is_locked() && !THREADS.is_locked() {
            leave_if_doomed(platform::get());
        }
    }
}
