//! Traps of the hosted process: the application's `syscall`s (Syscall User
//! Dispatch's `SIGSYS`) and exceptions arrive as Linux signals, are turned into a
//! `TrapFrame` and handed to `shim_trap`, as kernel-min's upcalls are in the
//! partition; the proxy's kick (`SIGRTMAX`) enters the runtime the same way. Each
//! thread's signal frames stay on its own runtime stack (`on_switch`), and kicks
//! never nest (see the parent module).
//!
//! Time-sharing: each core's Linux thread has a POSIX timer (`timer_create` with
//! `SIGEV_THREAD_ID`, on `CLOCK_MONOTONIC`) that sends it `TICK` (`SIGRTMAX - 1`)
//! every slice while the `TICK` doorbell has it running (`set_timer`). Its
//! handler enters the runtime from application code as the partition's VMM
//! redirects a vCPU (`VECTOR_PREEMPT`), where the thread may be switched out like
//! one blocking in a trap; in the runtime it only leaves `preempt_due`. It is
//! `NODEFER`, like the trap signals, so a thread switched out inside it leaves
//! it deliverable for the next thread; and it is blocked with the kick across a
//! stack switch (`before_switch`).

use core::arch::{asm, global_asm};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use mote_abi::boot::BootInfo;
use mote_abi::hosted::signal as sig;
use mote_abi::layout::{MAX_CORES, USER_END};
use mote_libos::uapi::prctl::{PR_SET_SYSCALL_USER_DISPATCH, PR_SYS_DISPATCH_ON};
use mote_libos::uapi::signal::{
    SA_NODEFER, SA_ONSTACK, SA_RESTORER, SA_SIGINFO, SIG_BLOCK, SIG_UNBLOCK, SS_DISABLE,
};
use mote_shims::sigcontext::{
    frame_of, trap_frame, write_back, SigAction, SigInfoHead, StackT, UContext,
};
use syscalls::Sysno;

use super::{linux, INFO, MOTE_HOSTED_TRAPS};

global_asm!(
    r#"
    // Found by the proxy through the symbol table: keep it (R = SHF_GNU_RETAIN).
    .section .text.mote_hosted, "axR"
    // Every trap signal: rdi = signal, rsi = siginfo, rdx = ucontext, on the
    // running thread's runtime stack (sigaltstack).
    .global mote_hosted_signal
mote_hosted_signal:
    cld
    jmp {handler}

    .global mote_hosted_kick
mote_hosted_kick:
    cld
    jmp {kick}

    .global mote_hosted_tick
mote_hosted_tick:
    cld
    jmp {tick}

    // sa_restorer: back to the interrupted code with the ucontext's registers.
    .global mote_hosted_restorer
mote_hosted_restorer:
    mov eax, {sigreturn}
    syscall
    ud2
"#,
    handler = sym hosted_signal,
    kick = sym hosted_kick,
    tick = sym hosted_tick,
    sigreturn = const Sysno::rt_sigreturn as u64,
);

unsafe extern "C" {
    static mote_hosted_signal: u8;
    static mote_hosted_kick: u8;
    static mote_hosted_tick: u8;
    static mote_hosted_restorer: u8;
}

/// The proxy's kick (`SIGRTMAX`, see the proxy's `signals`): a signal from
/// outside is pending for the application.
const KICK: i32 = mote_libos::uapi::signal::NSIG as i32; // SIGRTMAX

/// The cores' time-sharing timers' signal (`SIGRTMAX - 1`). No one else sends
/// it to this process: the proxy routes the application's signals through the
/// signal page, and kicks with `KICK`.
const TICK: i32 = KICK - 1;

/// Install the trap-signal and kick handlers (process-wide) and unblock them.
/// Everything else stays as the forking thread had it: the proxy blocks the
/// signals it routes (Ctrl-C reaches both processes; the proxy's router records
/// it and kicks this process, whose own copy stays pending, unused).
pub fn claim_traps() {
    // Trap signals: NODEFER and an empty mask, so a thread switch inside the
    // handler (a blocking call) leaves the signal deliverable for the next
    // thread. They are synchronous: one at a time, each from its thread's own
    // code. The kick is not NODEFER: Linux defers it while its handler runs, so
    // queued kicks come one after another instead of nesting (see the module
    // comment). Its handler never switches threads (it delivers under the
    // PROCESS lock, and nothing holding it gives up the core), so the deferral
    // ends with the handler.
    let trap = SA_SIGINFO | SA_ONSTACK | SA_RESTORER | SA_NODEFER;
    let kick = SA_SIGINFO | SA_ONSTACK | SA_RESTORER;
    let mut unblock = 0u64;
    for (s, handler, flags) in [
        (sig::SIGSYS, &raw const mote_hosted_signal, trap),
        (sig::SIGSEGV, &raw const mote_hosted_signal, trap),
        (sig::SIGBUS, &raw const mote_hosted_signal, trap),
        (sig::SIGILL, &raw const mote_hosted_signal, trap),
        (sig::SIGFPE, &raw const mote_hosted_signal, trap),
        (sig::SIGTRAP, &raw const mote_hosted_signal, trap),
        (KICK, &raw const mote_hosted_kick, kick),
        (TICK, &raw const mote_hosted_tick, trap),
    ] {
        unblock |= 1 << (s - 1);
        let act = SigAction {
            handler: handler as u64,
            flags,
            restorer: &raw const mote_hosted_restorer as u64,
            mask: 0,
        };
        if linux(
            Sysno::rt_sigaction as u64,
            [s as u64, &act as *const SigAction as u64, 0, 8, 0, 0],
        ) < 0
        {
            linux(Sysno::exit_group as u64, [125, 0, 0, 0, 0, 0]);
        }
    }
    linux(
        Sysno::rt_sigprocmask as u64,
        [SIG_UNBLOCK, &unblock as *const u64 as u64, 0, 8, 0, 0],
    );
}

/// Turn Syscall User Dispatch on for the calling thread: `syscall` outside the
/// runtime's text raises `SIGSYS`.
pub fn dispatch_on(boot: &BootInfo) {
    let (start, end) = (boot.runtime_text_start, boot.runtime_text_end);
    if linux(
        Sysno::prctl as u64,
        [
            PR_SET_SYSCALL_USER_DISPATCH,
            PR_SYS_DISPATCH_ON,
            start,
            end - start,
            0, // no selector: outside the runtime's text every syscall is dispatched
            0,
        ],
    ) < 0
    {
        // The proxy checked that the kernel has it; this is not expected.
        linux(Sysno::exit_group as u64, [125, 0, 0, 0, 0, 0]);
    }
}

/// Top of each core's signal stack as last set (0: not yet).
static SIGNAL_STACK_TOP: [AtomicU64; MAX_CORES] = [const { AtomicU64::new(0) }; MAX_CORES];

/// Cores whose kick is blocked from `before_switch` to the next `on_switch`.
static KICK_HELD: [AtomicBool; MAX_CORES] = [const { AtomicBool::new(false) }; MAX_CORES];

/// The running context of `core` is about to switch stacks. If it is a thread,
/// its runtime stack is the signal stack and holds its live frames (the signal
/// frame of the trap it blocks in, the runtime's frames below it); a kick
/// arriving after the stack switch, before the next context's `on_switch`, would
/// find rsp off that signal stack and Linux would write its frame at the top,
/// over them. Block the kick until `on_switch` (it stays pending and arrives
/// then, on the right stack). Leaving the idle context needs nothing: it has no
/// signal stack, so a kick meanwhile lands below rsp on whichever stack that is.
pub fn before_switch(core: usize) {
    if SIGNAL_STACK_TOP[core % MAX_CORES].load(Ordering::Relaxed) != 0 {
        block_kick(true);
        KICK_HELD[core % MAX_CORES].store(true, Ordering::Relaxed);
    }
}

/// A thread starts or resumes on `core` with its runtime stack `[top - size,
/// top)` (`top == 0`: the idle context, on its own stack): make that the stack
/// its traps are handled on, then let a kick held by `before_switch` in. A trap
/// of one thread may block inside `shim_trap` (a futex wait, a forwarded call)
/// while other threads of the core run, so each thread's signal frames must
/// stay on its own stack. Called on the resumed thread's stack, which is
/// therefore not the signal stack in use (Linux refuses to move that one)
/// unless it is already the right one.
pub fn on_switch(core: usize, top: u64, size: u64) {
    if SIGNAL_STACK_TOP[core % MAX_CORES].swap(top, Ordering::Relaxed) != top {
        set_signal_stack(top, size);
    }
    if KICK_HELD[core % MAX_CORES].swap(false, Ordering::Relaxed) {
        block_kick(false);
    }
}

/// A fork's copy (`rt::fork`): this process's threads have none of the signal
/// stacks or kick blocks the parent's threads had; the first `on_switch` of
/// each core sets its own (the copy's thread came with the proxy's signal stack).
pub fn forget_parent() {
    for (top, held) in SIGNAL_STACK_TOP.iter().zip(&KICK_HELD) {
        top.store(u64::MAX, Ordering::Relaxed);
        held.store(false, Ordering::Relaxed);
    }
}

/// Block (or unblock) the kick and the timer's signal for the calling thread.
fn block_kick(block: bool) {
    let set = (1u64 << (KICK - 1)) | (1u64 << (TICK - 1));
    let how = if block { SIG_BLOCK } else { SIG_UNBLOCK };
    linux(
        Sysno::rt_sigprocmask as u64,
        [how, &set as *const u64 as u64, 0, 8, 0, 0],
    );
}

/// Make `[top - size, top)` the stack signals are handled on (`top == 0`: none,
/// signals are handled on the current stack).
fn set_signal_stack(top: u64, size: u64) {
    let st = StackT {
        sp: top.saturating_sub(size),
        flags: if top == 0 { SS_DISABLE as i32 } else { 0 },
        _pad: 0,
        size,
    };
    linux(
        Sysno::sigaltstack as u64,
        [&st as *const StackT as u64, 0, 0, 0, 0, 0],
    );
}

// --- traps -------------------------------------------------------------------------

/// `struct _fpx_sw_bytes` (`asm/sigcontext.h`): in the reserved bytes 464..512 of
/// a signal frame's FP image, saying whether it is an xsave image and of which
/// features.
const FP_SW_BYTES: u64 = 464;
/// `FP_XSTATE_MAGIC1`.
const FP_XSTATE_MAGIC1: u32 = 0x4650_5853;

/// The xsave feature mask of the signal frame's FP image at `fpstate`, or `None`
/// for a legacy (fxsave) image.
fn fp_features(fpstate: u64) -> Option<u64> {
    // SAFETY: `fpstate` is the kernel's FP image in the signal frame on this
    // thread's signal stack (at least 512 bytes, 64-byte aligned).
    unsafe {
        let magic = ((fpstate + FP_SW_BYTES) as *const u32).read();
        (magic == FP_XSTATE_MAGIC1).then(|| ((fpstate + FP_SW_BYTES + 8) as *const u64).read())
    }
}

/// Load the application's FP/SIMD state, which Linux saved in the signal frame,
/// into the registers: while the runtime handles a trap they hold the
/// application's state, as in the partition (the runtime is soft-float, and
/// libos's signal delivery and thread switches save and restore the registers).
fn fp_load(fpstate: u64) {
    // SAFETY: the image is the one Linux wrote for this signal (valid by
    // construction), 64-byte aligned; xrstor/fxrstor only read it.
    unsafe {
        match fp_features(fpstate) {
            Some(mask) => asm!("xrstor64 [{}]", in(reg) fpstate, in("eax") mask as u32,
                               in("edx") (mask >> 32) as u32, options(nostack)),
            None => asm!("fxrstor64 [{}]", in(reg) fpstate, options(nostack)),
        }
    }
}

/// Put the registers' FP/SIMD state back into the signal frame, which
/// `rt_sigreturn` restores: whatever the runtime left there (a handler's initial
/// state, a state restored by the application's `rt_sigreturn`, another thread's)
/// is what the application continues with. The software bytes (464..512) and the
/// image's size are Linux's: xsave leaves those bytes alone and writes only the
/// features the frame was made for.
fn fp_store(fpstate: u64) {
    // SAFETY: as fp_load; xsave/fxsave write only within the image Linux sized
    // for these features.
    unsafe {
        match fp_features(fpstate) {
            Some(mask) => asm!("xsave64 [{}]", in(reg) fpstate, in("eax") mask as u32,
                               in("edx") (mask >> 32) as u32, options(nostack)),
            None => asm!("fxsave64 [{}]", in(reg) fpstate, options(nostack)),
        }
    }
}

/// The proxy's kick: a signal from outside waits for the application. In
/// application code, enter the runtime as the partition's VMM redirects a vCPU
/// (`VECTOR_SIGNAL`), so the signal is delivered now; anywhere in the runtime,
/// nothing: the runtime sees the signal on its way back to the application, or
/// the next kick catches it.
extern "C" fn hosted_kick(_signal: i32, _info: &SigInfoHead, uc: &mut UContext) {
    let Some((boot, _)) = INFO.get() else { return };
    let rip = uc.mcontext.rip;
    let in_runtime = rip >= boot.runtime_text_start && rip < boot.runtime_text_end;
    if in_runtime || rip >= mote_abi::layout::USER_END {
        return;
    }
    let fpstate = uc.mcontext.fpstate;
    if fpstate != 0 {
        fp_load(fpstate);
    }
    let mut f = frame_of(&uc.mcontext, mote_abi::signal::VECTOR_SIGNAL, 0);
    crate::partition::shim_trap(&mut f);
    write_back(&f, &mut uc.mcontext, true);
    if fpstate != 0 {
        fp_store(fpstate);
    }
}

/// The core's timer: the running thread's slice is over. In application code,
/// enter the runtime as the partition's VMM does (`VECTOR_PREEMPT`): the thread
/// may be switched out inside this handler and resumes with every register and
/// its FP state from the signal frame. In the runtime (its code, or an address
/// beyond the application's), only note it: the runtime acts on it where it
/// returns to the application.
extern "C" fn hosted_tick(_signal: i32, _info: &SigInfoHead, uc: &mut UContext) {
    let Some((boot, _)) = INFO.get() else { return };
    let rip = uc.mcontext.rip;
    let in_runtime = rip >= boot.runtime_text_start && rip < boot.runtime_text_end;
    if in_runtime || rip >= USER_END {
        let core = crate::rt::percpu::core();
        crate::rt::ikc::core_page(core)
            .preempt_due
            .store(1, Ordering::Release);
        return;
    }
    let fpstate = uc.mcontext.fpstate;
    if fpstate != 0 {
        fp_load(fpstate);
    }
    let mut f = frame_of(&uc.mcontext, mote_abi::signal::VECTOR_PREEMPT, 0);
    crate::partition::shim_trap(&mut f);
    write_back(&f, &mut uc.mcontext, true);
    if fpstate != 0 {
        fp_store(fpstate);
    }
}

// --- the cores' timers -------------------------------------------------------------

/// Per core: its Linux timer's id (-1: none).
static TIMER: [core::sync::atomic::AtomicI32; MAX_CORES] =
    [const { core::sync::atomic::AtomicI32::new(-1) }; MAX_CORES];

/// `struct sigevent` with `SIGEV_THREAD_ID` (`asm-generic/siginfo.h`: value,
/// signo, notify, then the union whose first int is the thread id; 64 bytes).
#[repr(C)]
struct SigEvent {
    value: u64,
    signo: i32,
    notify: i32,
    tid: i32,
    _pad: [i32; 11],
}
static_assertions::const_assert_eq!(core::mem::size_of::<SigEvent>(), 64);
static_assertions::const_assert_eq!(core::mem::offset_of!(SigEvent, tid), 16);

/// `SIGEV_THREAD_ID`: the signal goes to the thread `tid`.
const SIGEV_THREAD_ID: i32 = 4;
/// `CLOCK_MONOTONIC`.
const CLOCK_MONOTONIC: u64 = 1;

/// `struct itimerspec`: interval, then first expiry (each seconds, ns).
#[repr(C)]
struct ItimerSpec {
    interval: [i64; 2],
    value: [i64; 2],
}

/// Give core `core`'s Linux thread (the caller, Linux thread `tid`) its timer,
/// stopped. Without one (Linux refused) the core never preempts: the run goes
/// on as with `--time-slice 0`.
pub fn make_timer(core: usize, tid: i32) {
    let ev = SigEvent {
        value: core as u64,
        signo: TICK,
        notify: SIGEV_THREAD_ID,
        tid,
        _pad: [0; 11],
    };
    let mut id: i32 = -1;
    let r = linux(
        Sysno::timer_create as u64,
        [
            CLOCK_MONOTONIC,
            &ev as *const SigEvent as u64,
            &mut id as *mut i32 as u64,
            0,
            0,
            0,
        ],
    );
    if r == 0 {
        TIMER[core % MAX_CORES].store(id, Ordering::Relaxed);
    }
}

/// The `TICK` doorbell: start core `core`'s timer, periodic at the slice
/// (`on`), or stop it. `-EINVAL` for a core without a timer.
pub fn set_timer(core: usize, on: bool, slice_ns: u64) -> i64 {
    let Some(id) = TIMER.get(core).map(|t| t.load(Ordering::Relaxed)) else {
        return mote_abi::errno::Errno::EINVAL.ret();
    };
    if id < 0 {
        return mote_abi::errno::Errno::EINVAL.ret();
    }
    let t = if on { slice_ns.max(1) } else { 0 };
    let ts = [(t / 1_000_000_000) as i64, (t % 1_000_000_000) as i64];
    let spec = ItimerSpec {
        interval: ts,
        value: ts,
    };
    linux(
        Sysno::timer_settime as u64,
        [id as u64, 0, &spec as *const ItimerSpec as u64, 0, 0, 0],
    )
}

extern "C" fn hosted_signal(signal: i32, info: &SigInfoHead, uc: &mut UContext) {
    MOTE_HOSTED_TRAPS.fetch_add(1, Ordering::Relaxed);
    let fpstate = uc.mcontext.fpstate;
    if fpstate != 0 {
        fp_load(fpstate);
    }
    let mut f = trap_frame(signal, info, &uc.mcontext);
    // 0: return as from `syscall`; otherwise every register comes from the frame
    // (as the partition's `mote_full_exit`).
    let full = crate::partition::shim_trap(&mut f) != 0;
    write_back(&f, &mut uc.mcontext, full);
    if fpstate != 0 {
        fp_store(fpstate);
    }
}
