//! The Linux x86_64 signal frame, byte for byte: where it goes on the stack and
//! what it holds, as `arch/x86/kernel/signal.c` (`get_sigframe`,
//! `x64_setup_rt_frame`) and `signal_64.c` (`restore_sigcontext`) build and read it.
//!
//! ```text
//!  higher addresses
//!   interrupted rsp
//!   128-byte red zone (skipped)                 or: top of the alternate stack
//!   FP state (fxsave/xsave image), 64-byte aligned, + FP_XSTATE_MAGIC2 after it
//!   struct rt_sigframe {                        <- rsp at handler entry, rsp+8 is
//!       pretcode  = sa_restorer                    16-byte aligned
//!       ucontext  { flags, link, uc_stack, uc_mcontext (sigcontext), uc_sigmask }
//!       siginfo   (128 bytes)
//!   }
//! ```
//!
//! Pure layout and codecs (`arch/x86/include/uapi/asm/sigcontext.h`,
//! `include/uapi/asm-generic/ucontext.h`, `asm/sigframe.h`); the FP image itself is
//! saved and restored by the runtime (`xsave`/`fxsave` are instructions).

use mote_abi::trap::TrapFrame;

use crate::signal::AltStack;
use crate::uapi::signal::{stack_t, SS_AUTODISARM, SS_DISABLE, SS_ONSTACK};

/// Offsets inside `struct rt_sigframe` (x86_64).
pub mod off {
    /// `char *pretcode`: the handler returns here (`sa_restorer`).
    pub const PRETCODE: usize = 0;
    /// `struct ucontext uc`.
    pub const UC: usize = 8;
    pub const UC_FLAGS: usize = UC;
    pub const UC_LINK: usize = UC + 8;
    pub const UC_STACK: usize = UC + 16;
    /// `struct sigcontext uc_mcontext` (256 bytes).
    pub const MCONTEXT: usize = UC + 40;
    /// `sigset_t uc_sigmask` (the kernel's 8 bytes).
    pub const SIGMASK: usize = MCONTEXT + SIGCONTEXT_SIZE;
    /// `siginfo_t info` (128 bytes).
    pub const INFO: usize = SIGMASK + 8;
    /// `sizeof(struct rt_sigframe)`.
    pub const SIZE: usize = INFO + 128;
    /// `sizeof(struct sigcontext)`.
    pub const SIGCONTEXT_SIZE: usize = 256;
}

/// Offsets inside `struct sigcontext` (x86_64).
pub mod sc {
    pub const R8: usize = 0;
    pub const R9: usize = 8;
    pub const R10: usize = 16;
    pub const R11: usize = 24;
    pub const R12: usize = 32;
    pub const R13: usize = 40;
    pub const R14: usize = 48;
    pub const R15: usize = 56;
    pub const RDI: usize = 64;
    pub const RSI: usize = 72;
    pub const RBP: usize = 80;
    pub const RBX: usize = 88;
    pub const RDX: usize = 96;
    pub const RAX: usize = 104;
    pub const RCX: usize = 112;
    pub const RSP: usize = 120;
    pub const RIP: usize = 128;
    pub const EFLAGS: usize = 136;
    /// `u16 cs, gs, fs, ss`.
    pub const CS: usize = 144;
    pub const SS: usize = 150;
    pub const ERR: usize = 152;
    pub const TRAPNO: usize = 160;
    pub const OLDMASK: usize = 168;
    pub const CR2: usize = 176;
    /// `struct _fpstate *fpstate`.
    pub const FPSTATE: usize = 184;
}

/// `uc_flags` bits (`arch/x86/include/uapi/asm/ucontext.h`).
pub const UC_FP_XSTATE: u64 = 0x1;
pub const UC_SIGCONTEXT_SS: u64 = 0x2;
pub const UC_STRICT_RESTORE_SS: u64 = 0x4;

/// `struct _fpx_sw_bytes` in the fxsave image's software-reserved bytes
/// (`sigcontext.h`): present when the image is an xsave image.
pub const FP_XSTATE_MAGIC1: u32 = 0x4650_5853;
pub const FP_XSTATE_MAGIC2: u32 = 0x4650_5845;
/// Offset of `sw_reserved` in the 512-byte legacy area.
pub const SW_RESERVED: usize = 464;

/// The selectors Linux reports for a 64-bit user task (`__USER_CS`, `__USER_DS`).
const USER_CS: u16 = 0x33;
const USER_DS: u16 = 0x2b;

/// RFLAGS bits a frame may change on return (`FIX_EFLAGS`: AC OF DF TF SF ZF AF PF
/// CF RF, and ID which user code may toggle anyway).
pub const FIX_EFLAGS: u64 = 0x0025_0dd5 | 0x1_0000;

/// How the runtime saves FP state: which instruction and how many bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FpFormat {
    /// `xsave` (with this feature mask) rather than `fxsave`.
    pub xfeatures: Option<u64>,
    /// Bytes of the image (`fxsave`: 512; `xsave`: CPUID.(0xd,0).EBX).
    pub size: u64,
}

impl FpFormat {
    /// Bytes reserved on the stack for the FP state (`xstate_sigframe_size`: the
    /// xsave image is followed by the 4-byte `FP_XSTATE_MAGIC2`).
    pub fn frame_size(&self) -> u64 {
        self.size + if self.xfeatures.is_some() { 4 } else { 0 }
    }

    /// `MINSIGSTKSZ`-style bound: frame, FP state, alignment slack.
    pub fn min_stack(&self) -> u64 {
        off::SIZE as u64 + self.frame_size() + 64 + 16
    }
}

/// Where a frame goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    /// `rsp` at handler entry: the frame's start (`pretcode`).
    pub frame: u64,
    /// The FP image (64-byte aligned).
    pub fpstate: u64,
    /// The frame is on the alternate stack (entered now or already on it).
    pub on_altstack: bool,
}

impl Placement {
    pub fn info(&self) -> u64 {
        self.frame + off::INFO as u64
    }
    pub fn ucontext(&self) -> u64 {
        self.frame + off::UC as u64
    }
    /// First byte past what delivery writes.
    pub fn end(&self, fp: &FpFormat) -> u64 {
        self.fpstate + fp.frame_size()
    }
}

/// `sp` lies on `alt` (Linux `on_sig_stack`; an auto-disarming stack never counts).
pub fn on_altstack(alt: AltStack, sp: u64) -> bool {
    alt.flags & SS_AUTODISARM == 0
        && alt.flags & SS_DISABLE == 0
        && sp > alt.sp
        && sp - alt.sp <= alt.size
}

/// `get_sigframe`: below the red zone of `sp`, or at the top of the alternate stack
/// when the action asks for it and the thread is not already on it.
pub fn place(sp: u64, onstack: bool, alt: AltStack, fp: &FpFormat) -> Placement {
    let mut top = sp.wrapping_sub(128);
    let mut on = on_altstack(alt, sp);
    if onstack && alt.flags & SS_DISABLE == 0 && alt.size != 0 && !on {
        top = alt.sp + alt.size;
        on = true;
    }
    let fpstate = top.wrapping_sub(fp.frame_size()) & !63;
    let frame = ((fpstate - off::SIZE as u64) & !15) - 8;
    Placement {
        frame,
        fpstate,
        on_altstack: on,
    }
}

/// What the frame records of the interrupted context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Saved {
    pub mask: u64,
    pub altstack: AltStack,
    /// `trapno`, `err`, `cr2` of a fault (zero otherwise).
    pub trapno: u64,
    pub err: u64,
    pub cr2: u64,
    /// Whether the FP image is an xsave image.
    pub xsave: bool,
}

fn put(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

fn get(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// The registers in sigcontext order, as (offset, value) pairs.
fn regs(f: &TrapFrame) -> [(usize, u64); 18] {
    [
        (sc::R8, f.r8),
        (sc::R9, f.r9),
        (sc::R10, f.r10),
        (sc::R11, f.r11),
        (sc::R12, f.r12),
        (sc::R13, f.r13),
        (sc::R14, f.r14),
        (sc::R15, f.r15),
        (sc::RDI, f.rdi),
        (sc::RSI, f.rsi),
        (sc::RBP, f.rbp),
        (sc::RBX, f.rbx),
        (sc::RDX, f.rdx),
        (sc::RAX, f.rax),
        (sc::RCX, f.rcx),
        (sc::RSP, f.hdr.rsp),
        (sc::RIP, f.hdr.rip),
        (sc::EFLAGS, f.hdr.rflags),
    ]
}

/// The frame's bytes (`off::SIZE`) for context `ctx`, with `info` (128 bytes).
pub fn encode(
    ctx: &TrapFrame,
    saved: &Saved,
    info: &[u8; 128],
    restorer: u64,
    place: &Placement,
) -> [u8; off::SIZE] {
    let mut b = [0u8; off::SIZE];
    put(&mut b, off::PRETCODE, restorer);
    let flags =
        UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS | if saved.xsave { UC_FP_XSTATE } else { 0 };
    put(&mut b, off::UC_FLAGS, flags);
    put(&mut b, off::UC_LINK, 0);
    let st = off::UC_STACK;
    put(&mut b, st + stack_t::SP, saved.altstack.sp);
    b[st + stack_t::FLAGS..][..4].copy_from_slice(&saved.altstack.flags.to_le_bytes());
    put(&mut b, st + stack_t::SS_SIZE, saved.altstack.size);
    let m = off::MCONTEXT;
    for (o, v) in regs(ctx) {
        put(&mut b, m + o, v);
    }
    b[m + sc::CS..][..2].copy_from_slice(&USER_CS.to_le_bytes());
    b[m + sc::SS..][..2].copy_from_slice(&USER_DS.to_le_bytes());
    put(&mut b, m + sc::ERR, saved.err);
    put(&mut b, m + sc::TRAPNO, saved.trapno);
    put(&mut b, m + sc::OLDMASK, saved.mask);
    put(&mut b, m + sc::CR2, saved.cr2);
    put(&mut b, m + sc::FPSTATE, place.fpstate);
    put(&mut b, off::SIGMASK, saved.mask);
    b[off::INFO..].copy_from_slice(info);
    b
}

/// What `rt_sigreturn` takes back from a frame.
#[derive(Clone, Copy, Debug)]
pub struct Restored {
    /// Registers (`hdr.rip`, `hdr.rsp`, `hdr.rflags` included; the vector is 0).
    pub regs: TrapFrame,
    pub mask: u64,
    pub altstack: AltStack,
    /// The FP image to restore (0: reset the FP state).
    pub fpstate: u64,
    pub uc_flags: u64,
}

/// Decode a frame; `cur_rflags` supplies the bits a frame may not change.
pub fn decode(b: &[u8; off::SIZE], cur_rflags: u64) -> Restored {
    let m = off::MCONTEXT;
    let r = |o: usize| get(b, m + o);
    let mut regs = TrapFrame {
        r8: r(sc::R8),
        r9: r(sc::R9),
        r10: r(sc::R10),
        r11: r(sc::R11),
        r12: r(sc::R12),
        r13: r(sc::R13),
        r14: r(sc::R14),
        r15: r(sc::R15),
        rdi: r(sc::RDI),
        rsi: r(sc::RSI),
        rbp: r(sc::RBP),
        rbx: r(sc::RBX),
        rdx: r(sc::RDX),
        rax: r(sc::RAX),
        rcx: r(sc::RCX),
        ..Default::default()
    };
    regs.hdr.rsp = r(sc::RSP);
    regs.hdr.rip = r(sc::RIP);
    regs.hdr.rflags = (cur_rflags & !FIX_EFLAGS) | (r(sc::EFLAGS) & FIX_EFLAGS) | 0x2;
    let st = off::UC_STACK;
    Restored {
        regs,
        mask: get(b, off::SIGMASK),
        altstack: AltStack {
            sp: get(b, st + stack_t::SP),
            flags: u32::from_le_bytes(b[st + stack_t::FLAGS..][..4].try_into().expect("4")),
            size: get(b, st + stack_t::SS_SIZE),
        },
        fpstate: r(sc::FPSTATE),
        uc_flags: get(b, off::UC_FLAGS),
    }
}

/// The software-reserved bytes of an xsave image (`struct _fpx_sw_bytes`).
pub fn sw_bytes(fp: &FpFormat) -> [u8; 48] {
    let mut b = [0u8; 48];
    b[0..4].copy_from_slice(&FP_XSTATE_MAGIC1.to_le_bytes());
    b[4..8].copy_from_slice(&(fp.frame_size() as u32).to_le_bytes());
    b[8..16].copy_from_slice(&fp.xfeatures.unwrap_or(0).to_le_bytes());
    b[16..20].copy_from_slice(&(fp.size as u32).to_le_bytes());
    b
}

/// Whether `sw` (the 48 software-reserved bytes of an image) and the word after
/// the image describe an xsave image of `fp`'s size; anything else is restored
/// as a plain fxsave image, as Linux does.
pub fn is_xsave_image(sw: &[u8; 48], magic2: u32, fp: &FpFormat) -> bool {
    let m1 = u32::from_le_bytes(sw[0..4].try_into().expect("4"));
    let ext = u32::from_le_bytes(sw[4..8].try_into().expect("4"));
    let size = u32::from_le_bytes(sw[16..20].try_into().expect("4"));
    fp.xfeatures.is_some()
        && m1 == FP_XSTATE_MAGIC1
        && u64::from(size) == fp.size
        && u64::from(ext) == fp.frame_size()
        && magic2 == FP_XSTATE_MAGIC2
}

/// A `siginfo_t` (128 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SigInfo(pub [u8; 128]);

/// `si_code` values (`include/uapi/asm-generic/siginfo.h`).
pub mod code {
    pub const SI_USER: i32 = 0;
    pub const SI_KERNEL: i32 = 0x80;
    pub const SI_QUEUE: i32 = -1;
    pub const SI_TIMER: i32 = -2;
    pub const SI_TKILL: i32 = -6;
    pub const SEGV_MAPERR: i32 = 1;
    pub const SEGV_ACCERR: i32 = 2;
    pub const BUS_ADRALN: i32 = 1;
    pub const BUS_ADRERR: i32 = 2;
    pub const ILL_ILLOPN: i32 = 2;
    pub const FPE_INTDIV: i32 = 1;
    pub const FPE_FLTDIV: i32 = 3;
    pub const FPE_FLTOVF: i32 = 4;
    pub const FPE_FLTUND: i32 = 5;
    pub const FPE_FLTRES: i32 = 6;
    pub const FPE_FLTINV: i32 = 7;
    pub const TRAP_BRKPT: i32 = 1;
    pub const TRAP_TRACE: i32 = 2;
}

impl SigInfo {
    /// `si_signo`, `si_errno` 0, `si_code`.
    pub fn new(sig: u32, code: i32) -> Self {
        let mut b = [0u8; 128];
        b[0..4].copy_from_slice(&(sig as i32).to_le_bytes());
        b[8..12].copy_from_slice(&code.to_le_bytes());
        SigInfo(b)
    }

    /// A fault at `addr` (`si_addr`).
    pub fn fault(sig: u32, code: i32, addr: u64) -> Self {
        let mut i = Self::new(sig, code);
        put(&mut i.0, 16, addr);
        i
    }

    /// Sent by a process (`kill`, `tgkill`): `si_pid`, `si_uid`.
    pub fn from_process(sig: u32, code: i32, pid: u32, uid: u32) -> Self {
        let mut i = Self::new(sig, code);
        i.0[16..20].copy_from_slice(&pid.to_le_bytes());
        i.0[20..24].copy_from_slice(&uid.to_le_bytes());
        i
    }

    /// The first bytes as the proxy passed them on; the rest zero.
    pub fn from_prefix(prefix: &[u8]) -> Self {
        let mut b = [0u8; 128];
        let n = prefix.len().min(128);
        b[..n].copy_from_slice(&prefix[..n]);
        SigInfo(b)
    }

    pub fn signo(&self) -> u32 {
        i32::from_le_bytes(self.0[0..4].try_into().expect("4")) as u32
    }

    pub fn code(&self) -> i32 {
        i32::from_le_bytes(self.0[8..12].try_into().expect("4"))
    }
}

/// `si_code` of a page fault: `SEGV_ACCERR` when the address lies in a mapping
/// whose protection forbids the access, `SEGV_MAPERR` when nothing is mapped there.
pub fn segv_code(mapped: bool) -> i32 {
    if mapped {
        code::SEGV_ACCERR
    } else {
        code::SEGV_MAPERR
    }
}

/// `si_code` of an SSE/x87 exception from the status bits that are unmasked
/// (Linux `fpu__exception_code`).
pub fn fpe_code(status: u32, masks: u32) -> i32 {
    let err = status & !masks;
    if err & 0x01 != 0 {
        code::FPE_FLTINV
    } else if err & 0x04 != 0 {
        code::FPE_FLTDIV
    } else if err & 0x08 != 0 {
        code::FPE_FLTOVF
    } else if err & 0x12 != 0 {
        code::FPE_FLTUND
    } else if err & 0x20 != 0 {
        code::FPE_FLTRES
    } else {
        0
    }
}

/// Whether `on` names the SS_ONSTACK flag for `sigaltstack`'s old value.
pub fn altstack_flags(alt: AltStack, sp: u64) -> u32 {
    if alt.flags & SS_DISABLE != 0 {
        SS_DISABLE
    } else if on_altstack(alt, sp) {
        SS_ONSTACK | (alt.flags & SS_AUTODISARM)
    } else {
        alt.flags
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FX: FpFormat = FpFormat {
        xfeatures: None,
        size: 512,
    };
    const XS: FpFormat = FpFormat {
        xfeatures: Some(0x7),
        size: 832,
    };

    #[test]
    fn offsets_match_linux_structs() {
        // sizeof(struct sigcontext) = 256, sizeof(struct ucontext) = 304,
        // sizeof(struct rt_sigframe) = 8 + 304 + 128 = 440 on x86_64.
        assert_eq!(off::SIGCONTEXT_SIZE, 256);
        assert_eq!(off::MCONTEXT, 48);
        assert_eq!(off::SIGMASK - off::UC, 296);
        assert_eq!(off::INFO, 312);
        assert_eq!(off::SIZE, 440);
        // glibc's <sys/ucontext.h> gregs order is REG_R8 .. REG_CR2: 23 words from
        // uc_mcontext, fpregs right after (REG_RIP = 16, REG_RSP = 15).
        assert_eq!(sc::RSP / 8, 15);
        assert_eq!(sc::RIP / 8, 16);
        assert_eq!(sc::CR2 / 8, 22);
        assert_eq!(sc::FPSTATE / 8, 23);
    }

    #[test]
    fn frame_skips_red_zone_and_is_aligned_for_the_handler() {
        for sp in [0x7fff_0000u64, 0x7fff_0008, 0x7ffe_fff3, 0x7fff_1234] {
            for fp in [FX, XS] {
                let pl = place(sp, false, AltStack::DISABLED, &fp);
                assert_eq!(pl.fpstate % 64, 0);
                assert_eq!((pl.frame + 8) % 16, 0, "rsp+8 aligned at entry");
                assert!(pl.end(&fp) <= sp - 128, "red zone untouched");
                assert!(pl.frame + off::SIZE as u64 <= pl.fpstate);
                assert!(!pl.on_altstack);
            }
        }
    }

    #[test]
    fn onstack_switches_to_the_alternate_stack_once() {
        let alt = AltStack {
            sp: 0x10_0000,
            flags: 0,
            size: 0x4000,
        };
        let pl = place(0x7fff_0000, true, alt, &XS);
        assert!(pl.on_altstack);
        assert!(pl.end(&XS) <= alt.sp + alt.size && pl.frame >= alt.sp);
        // Without SA_ONSTACK the normal stack is used.
        assert!(!place(0x7fff_0000, false, alt, &XS).on_altstack);
        // Already on the alternate stack: nest below the current sp.
        let nested = place(0x10_2000, true, alt, &XS);
        assert!(nested.on_altstack && nested.end(&XS) <= 0x10_2000 - 128);
        // Disabled: stay.
        assert!(!place(0x7fff_0000, true, AltStack::DISABLED, &XS).on_altstack);
    }

    #[test]
    fn encode_decode_round_trip() {
        let mut f = TrapFrame {
            r8: 8,
            r9: 9,
            r10: 10,
            r11: 11,
            r12: 12,
            r13: 13,
            r14: 14,
            r15: 15,
            rdi: 0xd1,
            rsi: 0x51,
            rbp: 0xb9,
            rbx: 0xbb,
            rdx: 0xdd,
            rax: 0xaa,
            rcx: 0xcc,
            ..Default::default()
        };
        f.hdr.rip = 0x40_1234;
        f.hdr.rsp = 0x7fff_1000;
        f.hdr.rflags = 0x246 | 0x400; // ZF PF IF-ish DF
        let saved = Saved {
            mask: 0x8000_0002,
            altstack: AltStack::DISABLED,
            trapno: 14,
            err: 6,
            cr2: 0x1234,
            xsave: true,
        };
        let info = SigInfo::fault(11, code::SEGV_MAPERR, 0x1234);
        let pl = place(f.hdr.rsp, false, AltStack::DISABLED, &XS);
        let b = encode(&f, &saved, &info.0, 0x40_9000, &pl);
        assert_eq!(get(&b, 0), 0x40_9000);
        assert_eq!(get(&b, off::MCONTEXT + sc::RIP), 0x40_1234);
        assert_eq!(get(&b, off::MCONTEXT + sc::CR2), 0x1234);
        assert_eq!(get(&b, off::UC_FLAGS), 7);
        assert_eq!(get(&b, off::INFO + 16), 0x1234, "si_addr");
        let r = decode(&b, 0x202);
        assert_eq!(r.regs.rax, 0xaa);
        assert_eq!(r.regs.rcx, 0xcc);
        assert_eq!(r.regs.r15, 15);
        assert_eq!(r.regs.hdr.rip, 0x40_1234);
        assert_eq!(r.regs.hdr.rsp, 0x7fff_1000);
        assert_eq!(r.regs.hdr.rflags, 0x246 | 0x400);
        assert_eq!(r.mask, 0x8000_0002);
        assert_eq!(r.fpstate, pl.fpstate);
        assert_eq!(r.altstack, AltStack::DISABLED);
    }

    #[test]
    fn sigreturn_cannot_set_privileged_flags() {
        let mut b = [0u8; off::SIZE];
        put(&mut b, off::MCONTEXT + sc::EFLAGS, u64::MAX);
        let r = decode(&b, 0x202);
        // IOPL (0x3000), IF (0x200 stays as it was), VM, NT... never from the frame.
        assert_eq!(r.regs.hdr.rflags & 0x3000, 0);
        assert_eq!(r.regs.hdr.rflags & 0x4000, 0);
        assert_eq!(r.regs.hdr.rflags & 0x2_0000, 0, "VM");
        assert_ne!(r.regs.hdr.rflags & 0x400, 0, "DF may change");
    }

    #[test]
    fn xsave_magic_is_checked() {
        let sw = sw_bytes(&XS);
        assert!(is_xsave_image(&sw, FP_XSTATE_MAGIC2, &XS));
        assert!(!is_xsave_image(&sw, 0, &XS));
        assert!(!is_xsave_image(&[0; 48], FP_XSTATE_MAGIC2, &XS));
        assert!(!is_xsave_image(&sw, FP_XSTATE_MAGIC2, &FX));
        assert_eq!(u32::from_le_bytes(sw[4..8].try_into().unwrap()), 836);
    }

    #[test]
    fn siginfo_fields() {
        let i = SigInfo::from_process(10, code::SI_TKILL, 77, 1000);
        assert_eq!(i.signo(), 10);
        assert_eq!(i.code(), -6);
        assert_eq!(&i.0[16..24], &[77, 0, 0, 0, 0xe8, 3, 0, 0]);
        assert_eq!(segv_code(true), 2);
        assert_eq!(segv_code(false), 1);
        assert_eq!(fpe_code(0x04, 0), code::FPE_FLTDIV);
        assert_eq!(fpe_code(0x04, 0x04), 0);
    }
}
