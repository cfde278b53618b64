//! Trap dispatch: every exception and `syscall` lands in `handle`.
//!
//! * A `syscall` from the runtime's text is a kernel call (`kcall::dispatch`).
//! * A `syscall` or an exception from the application is handed up: kernel-min
//!   writes an `UpcallHeader` at the top of the core's upcall stack and returns to
//!   the shim's trap entry at CPL3 with the application's registers untouched.
//!   That is all the CPL0 work a Linux system call costs.
//! * An exception in the runtime or in kernel-min itself ends the run: the report
//!   goes into the core page and the proxy is told through `ports::FATAL`.

use core::sync::atomic::Ordering;

use mote_abi::ikc::CorePage;
use mote_abi::layout::{IKC_VA, LIBOS_END, LIBOS_VA};
use mote_abi::trap::{
    signal_for_vector, vector, FaultOrigin, FaultReport, UpcallHeader, VECTOR_SYSCALL,
};

use crate::arch::{self, KFrame};

/// RFLAGS the shim's entry starts with: reserved bit 1 only (no TF, DF, AC; IF off).
const UPCALL_RFLAGS: u64 = 0x2;
/// User-settable RFLAGS bits (CF PF AF ZF SF TF DF OF AC ID); IF/IOPL stay as set.
pub const USER_RFLAGS_MASK: u64 = 0x0025_0dd5;

/// Core `i`'s IKC page, through the runtime's user mapping (same CR3).
fn core_page(i: usize) -> &'static CorePage {
    let p = (IKC_VA + mote_abi::ikc::core_page_offset(i)) as *const CorePage;
    // SAFETY: the IKC area is mapped for the partition's whole life (boot page
    // tables) and CorePage is atomics and integers, valid for any bit pattern.
    unsafe { &*p }
}

fn in_runtime_text(addr: u64) -> bool {
    let b = crate::boot();
    (b.runtime_text_start..b.runtime_text_end).contains(&addr)
}

/// Called by `trap_common` with the saved registers.
pub extern "C" fn handle(f: &mut KFrame) {
    let from_user = f.hdr.cs & 3 == 3;
    // A kernel call under kvm_pvm arrives as #GP at the syscall page's `sp_kcall`.
    let syscall = f.hdr.vector == VECTOR_SYSCALL
        || (f.hdr.vector == vector::GP && from_user && f.hdr.rip == arch::pvm_kcall_addr());
    if syscall {
        // The application's view: it continues after `syscall` (rcx) with its flags (r11).
        f.hdr.rip = f.rcx;
        f.hdr.rflags = (f.r11 & USER_RFLAGS_MASK) | UPCALL_RFLAGS;
        if in_runtime_text(f.rcx) {
            core_page(arch::current_core())
                .kcalls
                .fetch_add(1, Ordering::Relaxed);
            f.rax = crate::kcall::dispatch(f.rax, [f.rdi, f.rsi, f.rdx, f.r10, f.r8, f.r9]);
            return;
        }
        upcall(f, VECTOR_SYSCALL, 0, 0);
        return;
    }
    let cr2 = if f.hdr.vector == vector::PF {
        core_page(arch::current_core())
            .page_faults
            .fetch_add(1, Ordering::Relaxed);
        arch::cr2()
    } else {
        0
    };
    if !from_user {
        fatal_kernel(Some((f, cr2)));
    }
    if in_runtime_text(f.hdr.rip) || (LIBOS_VA..LIBOS_END).contains(&f.hdr.rip) {
        report(FaultOrigin::Runtime, f, cr2);
        arch::outl(mote_abi::ports::FATAL, arch::current_core() as u32);
        arch::halt_forever();
    }
    upcall(f, f.hdr.vector, f.hdr.error_code, cr2);
}

/// Hand the trap to the shim at CPL3.
fn upcall(f: &mut KFrame, vector: u64, error_code: u64, cr2: u64) {
    let cp = core_page(arch::current_core());
    let top = cp.upcall_rsp.load(Ordering::Relaxed);
    let entry = crate::boot().runtime_trap_entry;
    if top == 0 || entry == 0 || !top.is_multiple_of(16) {
        report(FaultOrigin::Runtime, f, cr2);
        arch::outl(mote_abi::ports::FATAL, arch::current_core() as u32);
        arch::halt_forever();
    }
    let hdr = (top - core::mem::size_of::<UpcallHeader>() as u64) as *mut UpcallHeader;
    let h = UpcallHeader {
        vector,
        error_code,
        cr2,
        rip: f.hdr.rip,
        rflags: f.hdr.rflags,
        rsp: f.hdr.rsp,
        _pad: 0,
    };
    // SAFETY: the upcall stack is in the runtime region, mapped user-writable for
    // the partition's life; top was checked non-zero and aligned.
    unsafe { hdr.write(h) };
    cp.upcalls.fetch_add(1, Ordering::Relaxed);
    f.hdr.rip = entry;
    f.hdr.rsp = hdr as u64;
    f.hdr.rflags = UPCALL_RFLAGS;
}

/// Fill the core page's fault report from a kernel frame.
fn report(origin: FaultOrigin, f: &KFrame, cr2: u64) {
    let h = &f.hdr;
    let r = FaultReport {
        origin: origin as u32,
        signal: signal_for_vector(h.vector),
        vector: h.vector,
        error_code: h.error_code,
        addr: if h.vector == vector::PF { cr2 } else { h.rip },
        regs: [
            f.rax, f.rbx, f.rcx, f.rdx, f.rsi, f.rdi, f.rbp, h.rsp, f.r8, f.r9, f.r10, f.r11,
            f.r12, f.r13, f.r14, f.r15, h.rip, h.rflags,
        ],
    };
    let p = &core_page(arch::current_core()).fault as *const FaultReport as *mut FaultReport;
    // SAFETY: the fault report lives in the IKC area; the core is stopping, nobody
    // else writes it, and the proxy reads it only after the FATAL exit.
    unsafe { p.write_volatile(r) };
}

/// kernel-min itself failed: report what we know and stop.
pub fn fatal_kernel(f: Option<(&KFrame, u64)>) -> ! {
    match f {
        Some((f, cr2)) => report(FaultOrigin::Kernel, f, cr2),
        None => {
            let mut empty = KFrame::default();
            empty.hdr.vector = 0xff;
            report(FaultOrigin::Kernel, &empty, 0)
        }
    }
    arch::outl(mote_abi::ports::FATAL, arch::current_core() as u32);
    arch::halt_forever()
}
