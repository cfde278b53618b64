//! Signal delivery at the runtime's entries: the machine half of what libos
//! (`deliver`, `sigframe`) decides. Every way back to the application passes here
//! when something is pending:
//! * a trapped system call or exception (`shim_trap`, full `TrapFrame`);
//! * a call through a patched site or the direct entry, whose assembly builds a
//!   `TrapFrame` on its slow path only when the signal page's `attention` word is
//!   set (`VECTOR_PATCHED`, `VECTOR_DIRECT`);
//! * the VMM's redirection of a vCPU running application code when a signal from
//!   outside arrives (`VECTOR_SIGNAL`).
//!
//! The entries then leave through the full-restore exit, which reloads every
//! register from the frame.

use core::sync::atomic::Ordering;

use mote_abi::signal::{SignalPage, SIGNAL_PAGE_VA};
use mote_abi::trap::{FaultOrigin, FaultReport, TrapFrame};
use mote_libos::deliver::Delivery;
use mote_libos::platform::Platform;
use mote_libos::process::Process;
use mote_libos::signal::Restart;
use mote_libos::uapi::signal::SIGSEGV;

use super::fpu;

/// The signal page the proxy fills (`mote_abi::signal`).
pub fn page() -> &'static SignalPage {
    // SAFETY: the IKC area (and the signal page in it) is mapped user read-write
    // for the partition's life; SignalPage is atomics and padding.
    unsafe { &*(SIGNAL_PAGE_VA as *const SignalPage) }
}

/// `rt_sigreturn` arrived without a trap: take the slow path on the way out (this
/// core's flag: the same thread takes it right after).
pub fn request_sigreturn() {
    super::percpu::cpu().sigreturn.store(1, Ordering::Relaxed);
    page().attention.store(1, Ordering::Relaxed);
}

/// Whether the slow path must do an `rt_sigreturn`.
pub fn take_sigreturn() -> bool {
    super::percpu::cpu().sigreturn.swap(0, Ordering::Relaxed) != 0
}

/// The report of a fault that ends the run, from the application's registers.
pub fn report(f: &TrapFrame, signal: u32) -> FaultReport {
    let h = f.hdr;
    FaultReport {
        origin: FaultOrigin::App as u32,
        signal,
        vector: h.vector,
        error_code: h.error_code,
        addr: if h.vector == mote_abi::trap::vector::PF {
            h.cr2
        } else {
            h.rip
        },
        regs: [
            f.rax, f.rbx, f.rcx, f.rdx, f.rsi, f.rdi, f.rbp, h.rsp, f.r8, f.r9, f.r10, f.r11,
            f.r12, f.r13, f.r14, f.r15, h.rip, h.rflags,
        ],
    }
}

/// The state that runs call `r` again (see `mote_libos::deliver::restart_context`);
/// the process knows the runtime's entries (`Patcher::entry`, `direct_entry`).
pub fn restart_context(proc: &Process, f: &TrapFrame, r: Restart) -> TrapFrame {
    mote_libos::deliver::restart_context(
        f,
        r,
        proc.patcher.entry,
        proc.direct_entry,
        proc.frame_entry,
    )
}

/// Before the entry of frame `f` returns to the application: run the next
/// handler due (its frame over the state `f` resumes, or over the restart of an
/// interrupted call). Returns whether `f` changed (then all registers must be
/// restored from it).
pub fn on_return<P: Platform>(proc: &mut Process, p: &P, f: &mut TrapFrame) -> bool {
    let restart = proc.take_restart();
    let ctx = restart.map_or(*f, |r| restart_context(proc, f, r));
    match proc.next_delivery(p) {
        Some(d) => {
            deliver(proc, p, f, &ctx, &d, (0, 0, 0));
            true
        }
        None if restart.is_some() => {
            copy_keep_vector(f, &ctx);
            true
        }
        None => false,
    }
}

fn copy_keep_vector(f: &mut TrapFrame, from: &TrapFrame) {
    let v = f.hdr.vector;
    *f = *from;
    f.hdr.vector = v;
}

/// Run the handler of `d` over context `ctx`: save the FP state into the frame,
/// write the frame, and make `f` the handler's entry state. A frame that does not
/// fit on the stack ends the run with SIGSEGV, as Linux's `force_sigsegv`.
pub fn deliver<P: Platform>(
    proc: &mut Process,
    p: &P,
    f: &mut TrapFrame,
    ctx: &TrapFrame,
    d: &Delivery,
    fault: (u64, u64, u64),
) {
    let fmt = fpu::format();
    match proc.build_frame(d, ctx, &fmt, fault) {
        Ok(fr) => {
            fpu::save(fr.place.fpstate);
            p.write_mem(fr.place.frame, &fr.bytes);
            fpu::reset_for_handler();
            copy_keep_vector(f, &fr.entry);
        }
        Err(e) => {
            p.log(&alloc::format!(
                "{}: no room for the signal frame ({e:?}); the run ends with SIGSEGV",
                mote_libos::signal::name(d.sig)
            ));
            p.die(SIGSEGV, Some(&report(ctx, SIGSEGV)))
        }
    }
}

/// `rt_sigreturn` with the frame at `frame`: registers, FP state, mask and
/// alternate stack come back; a bad frame ends the run with SIGSEGV.
pub fn sigreturn<P: Platform>(proc: &mut Process, p: &P, f: &mut TrapFrame, frame: u64) {
    match proc.sigreturn(p, frame, f.hdr.rflags, &fpu::format()) {
        Ok(r) => {
            if r.fpstate != 0 {
                fpu::restore(r.fpstate);
            } else {
                fpu::reset_for_handler();
            }
            copy_keep_vector(f, &r.regs);
        }
        Err(e) => {
            p.log(&alloc::format!(
                "rt_sigreturn: bad signal frame at {frame:#x} ({e:?}); the run ends with SIGSEGV"
            ));
            p.die(SIGSEGV, Some(&report(f, SIGSEGV)))
        }
    }
}
