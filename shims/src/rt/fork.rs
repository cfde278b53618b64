//! `fork` in the runtime: the parent's side leaves a record of the calling
//! thread in runtime memory (its trap frame with `rax = 0`, FS base, extended
//! state) and holds the runtime's locks (`THREADS`, then `PROCESS`) while the
//! proxy copies guest memory (`Op::ForkProcess`), so the copy has libos's state
//! as that thread left it and no other thread in the middle of changing it.
//! The copy's runtime starts from the top (`mote_hosted_start`, or kernel-min's
//! entry on a new VM in the partition) and finds the record: [`adopt`] (before
//! any other core runs; the partition's other cores wait in `runtime_main`
//! until [`resume`] ends the fork) gives it a thread table with
//! that thread alone, as the main thread with the child's pid, and the process
//! state of a fork child (`Process::forked`); [`resume`] (core 0) puts the
//! mappings' protections back and returns to the application from the frame.
//!
//! What another thread of the parent does in application memory during the copy
//! is copied as it is at that moment, as with Linux's `fork` (only the calling
//! thread exists in the child). The runtime's heap lock is held across the
//! copy too, so no allocation of another core is half-done in the child.

use core::arch::asm;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU32, Ordering};

use mote_abi::boot::BootInfo;
use mote_abi::errno::Errno;
use mote_abi::ikc::THREAD_SLOTS;
use mote_abi::layout::{is_passthrough, upcall_stack_top, MAX_CORES};
use mote_abi::trap::TrapFrame;
use mote_libos::platform::Platform;
use mote_libos::sched::Threads;

use super::locks::{PROCESS, THREADS};
use super::percpu;
use super::platform::{self, RtPlatform};
use super::threads;

/// What the child needs of the thread that forked.
struct Record {
    frame: TrapFrame,
    fs_base: u64,
    affinity: u64,
    /// `CLONE_CHILD_SETTID` / `CLONE_CHILD_CLEARTID` address (0: none).
    set_tid: u64,
    clear_tid: u64,
    parent_tid: u32,
    xsave: [u8; threads::XSAVE_AREA + 64],
}

struct Slot(UnsafeCell<Record>);
// SAFETY: written only by the forking thread while it holds THREADS and PROCESS
// (one fork at a time), read only by the child's core 0 before anything else
// runs there.
unsafe impl Sync for Slot {}

// SAFETY: all-zero is a valid Record (integers and byte arrays).
static RECORD: Slot = Slot(UnsafeCell::new(unsafe { core::mem::zeroed() }));

/// 1 while a fork is in progress: in the copy, it says "resume the record".
static FORKING: AtomicU32 = AtomicU32::new(0);

/// 1 once the copy's core 0 ran [`adopt`] (cleared by the parent before the
/// copy, as a fork child forking again left it set).
static ADOPTED: AtomicU32 = AtomicU32::new(0);

/// Is this runtime the copy a `fork` made (and not resumed yet)?
pub fn is_child() -> bool {
    FORKING.load(Ordering::Acquire) != 0
}

/// `Machine::fork_process`: the parent's side. Returns the child's pid or
/// `-errno` (`ENOSYS` where the platform has no fork).
pub fn fork(p: &RtPlatform, frame: &TrapFrame, set_tid: u64, clear_tid: u64) -> i64 {
    let me = percpu::tid();
    let tg = THREADS.lock();
    let Some((fs_base, affinity)) = tg
        .as_ref()
        .and_then(|t| t.get(me))
        .map(|x| (x.fs_base, x.affinity))
    else {
        return Errno::ESRCH.ret();
    };
    let pg = PROCESS.lock();
    let Some((used, held)) = pg.as_ref().map(|pr| {
        let words = pr.mm.frames().held().words();
        (
            pr.mm.frames().used_ends(),
            (words.as_ptr() as u64, words.len() as u64),
        )
    }) else {
        return Errno::ESRCH.ret();
    };
    // SAFETY: see Slot: THREADS and PROCESS are held.
    let rec = unsafe { &mut *RECORD.0.get() };
    rec.frame = *frame;
    rec.frame.rax = 0;
    rec.fs_base = fs_base;
    rec.affinity = affinity;
    rec.set_tid = set_tid;
    rec.clear_tid = clear_tid;
    rec.parent_tid = me;
    threads::save_ext(&mut rec.xsave);
    ADOPTED.store(0, Ordering::Relaxed);
    FORKING.store(1, Ordering::Release);
    let tsc = p.tsc();
    // No other core is half-way through an allocation in the copy. From here
    // to the answer this thread allocates nothing: the core sleeps while the
    // proxy copies (PROCESS is held, so it switches to no other thread). The
    // TSC goes along: the child's vCPUs count on from it.
    let heap = super::heap::hold();
    let r = p.fork_process(used, held, tsc);
    drop(heap);
    FORKING.store(0, Ordering::Release);
    drop(pg);
    drop(tg);
    r
}

/// The child, first thing (core 0, no other core started): the thread table
/// holds the thread that forked alone, as main thread `boot.pid`; the process
/// is a fork child's.
pub fn adopt(boot: &BootInfo) {
    if ADOPTED.swap(1, Ordering::AcqRel) != 0 {
        return;
    }
    // SAFETY: see Slot.
    let rec = unsafe { &*RECORD.0.get() };
    let pid = boot.pid;
    // SAFETY: in this copy both locks and the heap's are held by the thread
    // that forked, which does not run here; no other thread of this process
    // runs yet (nothing allocated before this).
    unsafe {
        super::heap::forget_holder();
        THREADS.force_unlock();
        PROCESS.force_unlock();
    }
    let ncores = (boot.ncores as usize).clamp(1, MAX_CORES);
    let mut t = Threads::new(ncores, pid, THREAD_SLOTS);
    if let Some(x) = t.get_mut(pid) {
        x.fs_base = rec.fs_base;
        x.affinity = rec.affinity;
        x.clear_child_tid = rec.clear_tid;
    }
    *THREADS.lock() = Some(t);
    super::tick::forget_parent();
    if let Some(pr) = PROCESS.lock().as_mut() {
        pr.switch_thread(rec.parent_tid);
        pr.forked(pid);
    }
}

/// The child's core 0, once its cores run: back to the application where it
/// called `fork`, with 0.
pub fn resume(boot: &BootInfo) -> ! {
    // SAFETY: see Slot.
    let rec = unsafe { &*RECORD.0.get() };
    let p = platform::get();
    let pid = boot.pid;
    threads::init_core(p, 0);
    threads::init_forked(p, pid);
    {
        let mut g = PROCESS.lock();
        if let Some(pr) = g.as_mut() {
            // MADV_DONTFORK and MADV_WIPEONFORK memory: gone and zero here.
            pr.mm.forked(p);
            // The mappings came from the proxy's mirror (read-write): give each
            // its protection (pass-through ones are the proxy's own, as they are).
            for (start, vma) in pr.mm.vmas() {
                let len = vma.end - start;
                let shared = pr
                    .mm
                    .translate(start)
                    .is_some_and(|gpa| is_passthrough(gpa, len));
                if !shared {
                    let _ = p.protect(start, len, vma.prot);
                }
            }
            if rec.set_tid != 0 {
                let _ = pr.write_user(p, rec.set_tid, &pid.to_le_bytes());
            }
        }
    }
    FORKING.store(0, Ordering::Release);
    p.set_fs(rec.fs_base);
    threads::restore_ext(&rec.xsave);
    let size = core::mem::size_of::<TrapFrame>() as u64;
    let dst = (upcall_stack_top(0) - size) & !15;
    let src = &rec.frame as *const TrapFrame as u64;
    // SAFETY: core 0's upcall stack is the main thread's runtime stack; nothing
    // on it is used again (this function never returns). The frame is copied to
    // its top and `mote_trap_exit` returns to the application from it, as a new
    // thread's first return does (`threads::mote_thread_start`).
    unsafe {
        asm!(
            "mov rsp, rdi",
            "rep movsb",
            "jmp mote_trap_exit",
            in("rdi") dst,
            in("rsi") src,
            in("rcx") size,
            options(noreturn)
        )
    }
}
