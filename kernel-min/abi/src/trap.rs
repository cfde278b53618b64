//! Trap frames: how kernel-min hands a system call or a fault up to the shim at CPL3.
//!
//! Kernel-min hands up no registers. It writes an `UpcallHeader` at the top of the
//! current upcall stack (`CorePage::upcall_rsp`), and `iretq`s to the runtime's trap
//! entry with `rsp` pointing at it. The entry, at CPL3, pushes the general-purpose
//! registers below the header (`push_regs!`), which makes a `TrapFrame`. Kernel-min's
//! own trap entry saves them the same way, as a `Frame` over the interrupt frame.

use core::mem::{offset_of, size_of};
use static_assertions::const_assert_eq;

/// `UpcallHeader::vector` of a Linux system call (above every exception vector).
pub const VECTOR_SYSCALL: u64 = 0x100;

/// Written by kernel-min.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct UpcallHeader {
    /// Exception vector, or `VECTOR_SYSCALL`.
    pub vector: u64,
    /// Exception error code (0 when the exception has none).
    pub error_code: u64,
    /// Faulting address of a page fault (CR2).
    pub cr2: u64,
    /// Where the application was: the faulting instruction, or for a system call the
    /// instruction after `syscall`.
    pub rip: u64,
    /// The application's RFLAGS.
    pub rflags: u64,
    /// The application's stack pointer.
    pub rsp: u64,
    /// Keeps the frame 16-byte aligned.
    pub _pad: u64,
}

/// The general-purpose registers as a trap entry saves them (`push_regs!`), lowest
/// address first, and above them `hdr`: what the stack held before the pushes. The
/// one register layout of both entries that save registers: the shim's (`TrapFrame`,
/// over an `UpcallHeader`) and kernel-min's (over the CPU's interrupt frame).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Frame<H> {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    pub hdr: H,
}

/// The full frame the shim's trap entry builds.
pub type TrapFrame = Frame<UpcallHeader>;

/// Assembly text (for `asm!`/`global_asm!` templates) that pushes the general-purpose
/// registers, completing a `Frame` whose `hdr` is at the stack pointer; the stack
/// pointer ends at the frame. The first push lands highest; the offsets pinned below
/// and a unit test tie this list to `Frame`'s fields.
#[macro_export]
macro_rules! push_regs {
    () => {
        r"
        .irp reg,rax,rbx,rcx,rdx,rsi,rdi,rbp,r8,r9,r10,r11,r12,r13,r14,r15
        push \reg
        .endr
        "
    };
}

/// Assembly text, the inverse of `push_regs!`: loads the general-purpose registers
/// from the `Frame` at the stack pointer, which ends at its `hdr`.
#[macro_export]
macro_rules! pop_regs {
    () => {
        r"
        .irp reg,r15,r14,r13,r12,r11,r10,r9,r8,rbp,rdi,rsi,rdx,rcx,rbx,rax
        pop \reg
        .endr
        "
    };
}

// `push_regs!`'s first push lands highest, its last at the frame's start.
const_assert_eq!(offset_of!(TrapFrame, rax), 14 * 8);
const_assert_eq!(offset_of!(TrapFrame, r15), 0);
const_assert_eq!(offset_of!(TrapFrame, hdr), 15 * 8);
const_assert_eq!(size_of::<UpcallHeader>(), 56);
const_assert_eq!(size_of::<TrapFrame>(), 176);
const_assert_eq!(size_of::<TrapFrame>() % 16, 0);
const_assert_eq!(
    offset_of!(TrapFrame, hdr) + offset_of!(UpcallHeader, rip),
    144
);
const_assert_eq!(
    offset_of!(TrapFrame, hdr) + offset_of!(UpcallHeader, rsp),
    160
);

/// Who was running when a fatal fault happened.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultOrigin {
    /// The application (CPL3, outside the runtime).
    App = 1,
    /// libos or the shim (CPL3, inside the runtime).
    Runtime = 2,
    /// kernel-min itself (CPL0).
    Kernel = 3,
}

/// A fault that ends the run: written into the core page, then reported to the proxy
/// (by libos with `ikc::Op::Fatal`, or by kernel-min through `ports::FATAL`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct FaultReport {
    /// `FaultOrigin` as u32 (0 = none).
    pub origin: u32,
    /// The Linux signal the fault maps to (SIGSEGV, SIGILL, …).
    pub signal: u32,
    /// Exception vector.
    pub vector: u64,
    /// Error code.
    pub error_code: u64,
    /// Faulting address (CR2 for page faults; the instruction otherwise).
    pub addr: u64,
    /// Registers: rax, rbx, rcx, rdx, rsi, rdi, rbp, rsp, r8–r15, rip, rflags.
    pub regs: [u64; 18],
}

const_assert_eq!(size_of::<FaultReport>(), 176);

/// Names of `FaultReport::regs`, in order.
pub const REG_NAMES: [&str; 18] = [
    "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11", "r12", "r13",
    "r14", "r15", "rip", "rflags",
];

/// A page-fault error-code bit no CPU sets (bit 31; Intel SDM vol. 3A 4.7 defines
/// bits 0-6 and 15): the hosted platform's mark that Linux raised `SIGBUS` for the
/// access (it could not back a mapped page: a shared file truncated under it, a
/// full tmpfs, an I/O error), so the fault is `SIGBUS` whatever the page's mapping
/// says and is never retried.
pub const PF_SIGBUS: u64 = 1 << 31;

/// Exception vectors, Intel SDM vol. 3A table 6-1.
pub mod vector {
    pub const DE: u64 = 0;
    pub const DB: u64 = 1;
    pub const NMI: u64 = 2;
    pub const BP: u64 = 3;
    pub const OF: u64 = 4;
    pub const BR: u64 = 5;
    pub const UD: u64 = 6;
    pub const NM: u64 = 7;
    pub const DF: u64 = 8;
    pub const TS: u64 = 10;
    pub const NP: u64 = 11;
    pub const SS: u64 = 12;
    pub const GP: u64 = 13;
    pub const PF: u64 = 14;
    pub const MF: u64 = 16;
    pub const AC: u64 = 17;
    pub const MC: u64 = 18;
    pub const XM: u64 = 19;
}

/// The Linux signal an exception at CPL3 turns into (as Linux's `traps.c` does).
pub const fn signal_for_vector(v: u64) -> u32 {
    match v {
        vector::DE | vector::MF | vector::XM => 8, // SIGFPE
        vector::DB | vector::BP => 5,              // SIGTRAP
        vector::UD => 4,                           // SIGILL
        vector::AC => 7,                           // SIGBUS
        _ => 11,                                   // SIGSEGV
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exceptions_map_to_linux_signals() {
        assert_eq!(signal_for_vector(vector::PF), 11);
        assert_eq!(signal_for_vector(vector::GP), 11);
        assert_eq!(signal_for_vector(vector::DE), 8);
        assert_eq!(signal_for_vector(vector::UD), 4);
        assert_eq!(signal_for_vector(vector::BP), 5);
    }

    /// `pop_regs!` names the registers in `Frame`'s field order, `push_regs!` in reverse.
    #[test]
    fn push_and_pop_regs_follow_the_frame_layout() {
        let irp = |asm: &str| -> Vec<String> {
            let list = asm.lines().find_map(|l| l.trim().strip_prefix(".irp reg,"));
            list.unwrap().split(',').map(String::from).collect()
        };
        // "Frame { r15: 0, r14: 0, …, rax: 0, hdr: () }": a name ends each part before ": ".
        let debug = format!("{:?}", Frame::<()>::default());
        let name = |s: &str| s.rsplit(' ').next().unwrap().to_string();
        let names = debug.split(": ").map(name);
        let mut fields: Vec<_> = names.take_while(|n| n != "hdr").collect();
        assert_eq!(fields.len(), 15);
        assert_eq!(irp(crate::pop_regs!()), fields);
        fields.reverse();
        assert_eq!(irp(crate::push_regs!()), fields);
    }
}
