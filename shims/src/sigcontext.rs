//! Linux's x86_64 signal frame as the hosted runtime (`rt::hosted`) reads and
//! writes it: `ucontext`, `sigcontext`, the head of `siginfo`, `stack_t` and the
//! kernel's `sigaction`, with their layouts pinned, and the conversions between
//! the interrupted registers and the `TrapFrame` the shim's trap path takes.
//! Pure data: tested on the host.

use core::mem::{offset_of, size_of};

use mote_abi::hosted::signal as sig;
use mote_abi::trap::{vector, TrapFrame, UpcallHeader, VECTOR_SYSCALL};

/// `struct sigaction` as the kernel takes it (`rt_sigaction`, x86_64).
#[repr(C)]
pub struct SigAction {
    pub handler: u64,
    pub flags: u64,
    pub restorer: u64,
    pub mask: u64,
}

/// `stack_t`.
#[repr(C)]
pub struct StackT {
    pub sp: u64,
    pub flags: i32,
    pub _pad: i32,
    pub size: u64,
}

/// `struct sigcontext` (64-bit, `asm/sigcontext.h`) as it sits in `ucontext`.
#[repr(C)]
pub struct SigContext {
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rbp: u64,
    pub rbx: u64,
    pub rdx: u64,
    pub rax: u64,
    pub rcx: u64,
    pub rsp: u64,
    pub rip: u64,
    pub eflags: u64,
    pub cs_gs_fs_ss: u64,
    pub err: u64,
    pub trapno: u64,
    pub oldmask: u64,
    pub cr2: u64,
    pub fpstate: u64,
    pub reserved: [u64; 8],
}

/// `struct ucontext` (`asm/ucontext.h`): flags, link, `stack_t`, then the
/// registers.
#[repr(C)]
pub struct UContext {
    pub flags: u64,
    pub link: u64,
    pub stack: StackT,
    pub mcontext: SigContext,
    pub sigmask: u64,
}

static_assertions::const_assert_eq!(size_of::<StackT>(), 24);
static_assertions::const_assert_eq!(offset_of!(UContext, mcontext), 40);
static_assertions::const_assert_eq!(offset_of!(SigContext, rip), 128);
static_assertions::const_assert_eq!(offset_of!(SigContext, cr2), 176);
static_assertions::const_assert_eq!(size_of::<SigContext>(), 256);
static_assertions::const_assert_eq!(offset_of!(UContext, sigmask), 296);

/// The head of `siginfo_t` (`asm-generic/siginfo.h`): signo, errno, code, then
/// the union (`si_addr`; for `SIGSYS` `si_call_addr`, `si_syscall`, `si_arch`).
#[repr(C)]
pub struct SigInfoHead {
    pub signo: i32,
    pub errno: i32,
    pub code: i32,
    pub _pad: i32,
    pub addr: u64,
    pub syscall: i32,
    pub arch: u32,
}

/// The `TrapFrame` of a trap signal: `signal` with `info` interrupted the
/// registers `m`. Syscall User Dispatch's `SIGSYS` is a system call (as from
/// `syscall`: rcx and r11 hold the return address and flags); a `SIGBUS` for a page
/// fault (Linux could not back a mapped page: a shared file truncated under its
/// mapping) is a page fault marked `PF_SIGBUS`, so libos finds the page beyond the
/// file's end and delivers `SIGBUS` to the application's handler, or ends the run
/// with it.
pub fn trap_frame(signal: i32, info: &SigInfoHead, m: &SigContext) -> TrapFrame {
    let vector = mote_abi::hosted::trap_vector(signal, info.code, m.trapno);
    let cr2 = if vector == vector::PF { info.addr } else { 0 };
    let mut f = frame_of(m, vector, cr2);
    if signal == sig::SIGBUS && vector == vector::PF {
        f.hdr.error_code |= mote_abi::trap::PF_SIGBUS;
    }
    if vector == VECTOR_SYSCALL {
        // Dispatch rolled rax back to the number; Linux's `syscall` would clobber
        // rcx and r11 with the return address and flags.
        f.rcx = m.rip;
        f.r11 = m.eflags;
    }
    f
}

/// A `TrapFrame` of the interrupted registers.
pub fn frame_of(m: &SigContext, vector: u64, cr2: u64) -> TrapFrame {
    TrapFrame {
        r15: m.r15,
        r14: m.r14,
        r13: m.r13,
        r12: m.r12,
        r11: m.r11,
        r10: m.r10,
        r9: m.r9,
        r8: m.r8,
        rbp: m.rbp,
        rdi: m.rdi,
        rsi: m.rsi,
        rdx: m.rdx,
        rcx: m.rcx,
        rbx: m.rbx,
        rax: m.rax,
        hdr: UpcallHeader {
            vector,
            error_code: m.err,
            cr2,
            rip: m.rip,
            rflags: m.eflags,
            rsp: m.rsp,
            _pad: 0,
        },
    }
}

/// The frame's registers back into the ucontext `rt_sigreturn` restores; unless
/// `full`, a system call returns as from `syscall` (rcx and r11 take the return
/// address and flags).
pub fn write_back(f: &TrapFrame, m: &mut SigContext, full: bool) {
    m.r15 = f.r15;
    m.r14 = f.r14;
    m.r13 = f.r13;
    m.r12 = f.r12;
    m.r11 = f.r11;
    m.r10 = f.r10;
    m.r9 = f.r9;
    m.r8 = f.r8;
    m.rbp = f.rbp;
    m.rdi = f.rdi;
    m.rsi = f.rsi;
    m.rdx = f.rdx;
    m.rcx = f.rcx;
    m.rbx = f.rbx;
    m.rax = f.rax;
    m.rip = f.hdr.rip;
    m.rsp = f.hdr.rsp;
    m.eflags = f.hdr.rflags;
    if !full && f.hdr.vector == VECTOR_SYSCALL {
        m.rcx = f.hdr.rip;
        m.r11 = f.hdr.rflags;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regs() -> SigContext {
        let mut m: SigContext = unsafe_free_zeroed();
        m.rax = 39;
        m.rdi = 1;
        m.rcx = 0xdead;
        m.r11 = 0xbeef;
        m.rip = 0x40_1000;
        m.rsp = 0x7fff_0000;
        m.eflags = 0x246;
        m.err = 6;
        m.trapno = 14;
        m
    }

    /// An all-zero `SigContext` without `unsafe` (the crate denies it).
    fn unsafe_free_zeroed() -> SigContext {
        SigContext {
            r8: 0,
            r9: 0,
            r10: 0,
            r11: 0,
            r12: 0,
            r13: 0,
            r14: 0,
            r15: 0,
            rdi: 0,
            rsi: 0,
            rbp: 0,
            rbx: 0,
            rdx: 0,
            rax: 0,
            rcx: 0,
            rsp: 0,
            rip: 0,
            eflags: 0,
            cs_gs_fs_ss: 0,
            err: 0,
            trapno: 0,
            oldmask: 0,
            cr2: 0,
            fpstate: 0,
            reserved: [0; 8],
        }
    }

    fn info(code: i32, addr: u64) -> SigInfoHead {
        SigInfoHead {
            signo: 0,
            errno: 0,
            code,
            _pad: 0,
            addr,
            syscall: 0,
            arch: 0,
        }
    }

    #[test]
    fn a_dispatched_syscall_is_a_system_call_trap_with_syscalls_rcx_and_r11() {
        let m = regs();
        let f = trap_frame(sig::SIGSYS, &info(sig::SYS_USER_DISPATCH, 0), &m);
        assert_eq!(f.hdr.vector, VECTOR_SYSCALL);
        assert_eq!((f.rax, f.rdi), (39, 1));
        assert_eq!((f.rcx, f.r11), (m.rip, m.eflags));
        assert_eq!((f.hdr.rip, f.hdr.rsp), (m.rip, m.rsp));
    }

    #[test]
    fn a_sigbus_page_fault_is_marked_and_keeps_its_address() {
        let m = regs();
        let f = trap_frame(sig::SIGBUS, &info(0, 0x5000_0000), &m);
        assert_eq!(f.hdr.vector, vector::PF);
        assert_eq!(f.hdr.cr2, 0x5000_0000);
        assert_ne!(f.hdr.error_code & mote_abi::trap::PF_SIGBUS, 0);
        assert_eq!(f.rcx, 0xdead, "not a system call: rcx as interrupted");
    }

    #[test]
    fn write_back_returns_from_a_system_call_as_syscall_does_unless_full() {
        let m = regs();
        let mut f = frame_of(&m, VECTOR_SYSCALL, 0);
        f.rax = 7;
        f.rcx = 1;
        f.r11 = 2;
        let mut out = regs();
        write_back(&f, &mut out, false);
        assert_eq!(out.rax, 7);
        assert_eq!((out.rcx, out.r11), (m.rip, m.eflags));
        write_back(&f, &mut out, true);
        assert_eq!((out.rcx, out.r11), (1, 2));
    }
}
