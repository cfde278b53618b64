//! The code `mote link` adds: an init stub (the new entry point) and one stub per
//! rewritten site. All of it is position-independent (RIP-relative), so it works
//! in static-PIE programs too.
//!
//! **Init stub.** Runs first (a program's `e_entry`, or a shared library's
//! `DT_INIT`, see [`Start`]): walks the initial stack (argc, argv, envp, auxv), or
//! from the envp glibc's ld.so passes a library's initializer, and stores the values of `AT_MOTE_SYSCALL_REGS` (mote's register
//! entry) and `AT_MOTE_SYSCALL_FRAME` (its frame entry) — 0 or absent outside
//! mote — in the two entry words (in the added read-write segment), then jumps to
//! the original entry (or `DT_INIT`) with every register as it found them, or
//! returns.
//!
//! **Site stub** (rax = number, arguments in the `syscall` registers):
//!
//! ```text
//!   <moved instructions>             ("before" shape: what the jmp replaced)
//!   mov   rcx, [rip + word]          0 natively: take the syscall
//!   jrcxz fallback
//!   lea   ecx, [rax - N]; jrcxz frame    for each N of NEEDS_FRAME, when the
//!                                        number is not known statically
//!   lea   rsp, [rsp - 128]           step over the red zone
//!   call  [rip + word]               the register entry: returns as syscall does
//!   lea   rsp, [rsp + 128]
//!   jmp   <after the syscall>        ("after" shape: jmp cont)
//! frame:                             (number unknown, or clone/clone3/fork/vfork:
//!   mov   rcx, [rip + word + 8]       then the stub starts here)
//!   jrcxz fallback
//!   lea   rsp, [rsp - 128]
//!   call  rcx                        the frame entry: comes back with rsp as the
//!   jmp   <after the syscall>        syscall had it; a child starts here too
//! fallback:
//!   jmp   <the syscall>              ("after" shape: syscall; cont: <moved after>;
//!                                     jmp end)
//! ```
//!
//! Both entries (`mote_abi::boot::AT_MOTE_SYSCALL_REGS`, `AT_MOTE_SYSCALL_FRAME`)
//! take the call with the registers as the `syscall` had them and give back what
//! `syscall` gives: the result in rax, rcx and r11 clobbered, the flags and every
//! other register kept. The register entry is the one the self-patcher's stubs
//! call (`rt_sigreturn` included: the runtime finds the signal frame 128 bytes
//! above the post-return stack pointer). The frame entry builds the trap frame a
//! trapped `syscall` would have had, so a new thread or forked child starts from
//! the caller's registers (rax = 0, its own stack pointer), at the stub's next
//! instruction.
//!
//! `rcx` is free: `syscall` clobbers it. `lea` and `jrcxz` leave the flags alone,
//! so the fallback runs the `syscall` with the flags as they were.

use iced_x86::{BlockEncoder, BlockEncoderOptions, InstructionBlock};

use crate::scan::{Rewrite, NEEDS_FRAME};

/// `AT_MOTE_SYSCALL_REGS`.
pub const AT_MOTE_SYSCALL_REGS: u32 = mote_abi::boot::AT_MOTE_SYSCALL_REGS as u32;
/// `AT_MOTE_SYSCALL_FRAME`.
pub const AT_MOTE_SYSCALL_FRAME: u32 = mote_abi::boot::AT_MOTE_SYSCALL_FRAME as u32;

fn rel32(from_end: u64, to: u64) -> Option<[u8; 4]> {
    i32::try_from(to.wrapping_sub(from_end) as i64)
        .ok()
        .map(i32::to_le_bytes)
}

/// Code being emitted at a known address.
struct Emit {
    base: u64,
    b: Vec<u8>,
}

impl Emit {
    fn new(base: u64) -> Emit {
        Emit {
            base,
            b: Vec::new(),
        }
    }
    fn here(&self) -> u64 {
        self.base + self.b.len() as u64
    }
    fn bytes(&mut self, b: &[u8]) {
        self.b.extend_from_slice(b);
    }
    /// `op` followed by a rel32 to `to`, measured from the end of the instruction.
    fn rel(&mut self, op: &[u8], to: u64) -> Option<()> {
        let end = self.here() + op.len() as u64 + 4;
        self.bytes(op);
        self.bytes(&rel32(end, to)?);
        Some(())
    }
    /// A placeholder rel8 branch; returns where its displacement byte is.
    fn short(&mut self, op: u8) -> usize {
        self.bytes(&[op, 0]);
        self.b.len() - 1
    }
    fn land(&mut self, at: usize) -> Option<()> {
        let d = i8::try_from(self.b.len() - (at + 1)).ok()?;
        self.b[at] = d as u8;
        Some(())
    }
}

/// Where an init stub finds the environment (the auxiliary vector follows it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// A program's entry point: the initial stack (argc, argv, envp, auxv) at rsp.
    Stack,
    /// A shared library's `DT_INIT`, called by glibc's ld.so as
    /// `init(argc, argv, envp)`: envp in rdx (the process's initial one at start-up,
    /// where the auxiliary vector follows it). A null rdx leaves the words 0.
    Envp,
}

/// Where an init stub goes when the words are filled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Then {
    /// Jump to the original entry (or `DT_INIT`) with every register as found.
    Jump(u64),
    /// Return (a library that had no `DT_INIT`).
    Ret,
}

/// The init stub at `at`: fill `word` (and `word + 8`) from the auxiliary vector,
/// then go on as `then` says. Every register but those it restores is left alone.
pub fn init_stub(at: u64, word: u64, start: Start, then: Then) -> Option<Vec<u8>> {
    let mut e = Emit::new(at);
    e.bytes(&[0x9c, 0x50, 0x51, 0x56]); // pushfq; push rax; push rcx; push rsi
    let mut to_done_early = None;
    match start {
        Start::Stack => {
            e.bytes(&[0x48, 0x8d, 0x74, 0x24, 0x20]); // lea rsi, [rsp + 32]: &argc
            e.bytes(&[0x48, 0x8b, 0x0e]); // mov rcx, [rsi]
            e.bytes(&[0x48, 0x8d, 0x74, 0xce, 0x10]); // lea rsi, [rsi + rcx*8 + 16]: envp
        }
        Start::Envp => {
            e.bytes(&[0x48, 0x89, 0xd6]); // mov rsi, rdx: envp
            e.bytes(&[0x48, 0x85, 0xf6]); // test rsi, rsi
            to_done_early = Some(e.short(0x74)); // jz done
        }
    }
    let env = e.b.len();
    e.bytes(&[0x48, 0x8b, 0x06]); // mov rax, [rsi]
    e.bytes(&[0x48, 0x83, 0xc6, 0x08]); // add rsi, 8
    e.bytes(&[0x48, 0x85, 0xc0]); // test rax, rax
    let back = i8::try_from(env as i64 - (e.b.len() as i64 + 2)).ok()?;
    e.bytes(&[0x75, back as u8]); // jnz env; rsi = auxv
    let aux = e.b.len();
    e.bytes(&[0x48, 0x8b, 0x06]); // mov rax, [rsi]
    e.bytes(&[0x48, 0x85, 0xc0]); // test rax, rax
    let to_done = e.short(0x74); // jz done
    e.bytes(&[0x48, 0x3d]); // cmp rax, imm32
    e.bytes(&AT_MOTE_SYSCALL_REGS.to_le_bytes());
    let to_other = e.short(0x75); // jne other
    e.bytes(&[0x48, 0x8b, 0x4e, 0x08]); // mov rcx, [rsi + 8]
    e.rel(&[0x48, 0x89, 0x0d], word)?; // mov [rip + word], rcx
    e.land(to_other)?;
    e.bytes(&[0x48, 0x3d]); // other: cmp rax, imm32
    e.bytes(&AT_MOTE_SYSCALL_FRAME.to_le_bytes());
    let to_next = e.short(0x75); // jne next
    e.bytes(&[0x48, 0x8b, 0x4e, 0x08]); // mov rcx, [rsi + 8]
    e.rel(&[0x48, 0x89, 0x0d], word + 8)?; // mov [rip + word + 8], rcx
    e.land(to_next)?;
    e.bytes(&[0x48, 0x83, 0xc6, 0x10]); // next: add rsi, 16
    let back = i8::try_from(aux as i64 - (e.b.len() as i64 + 2)).ok()?;
    e.bytes(&[0xeb, back as u8]); // jmp aux
    e.land(to_done)?;
    if let Some(d) = to_done_early {
        e.land(d)?;
    }
    e.bytes(&[0x5e, 0x59, 0x58, 0x9d]); // pop rsi; pop rcx; pop rax; popfq
    match then {
        Then::Jump(entry) => e.rel(&[0xe9], entry)?, // jmp entry
        Then::Ret => e.bytes(&[0xc3]),               // ret
    }
    Some(e.b)
}

/// Encode `moved` at `at` (fixing RIP-relative displacements).
fn relocate(moved: &[iced_x86::Instruction], at: u64) -> Option<Vec<u8>> {
    if moved.is_empty() {
        return Some(Vec::new());
    }
    let block = InstructionBlock::new(moved, at);
    BlockEncoder::encode(64, block, BlockEncoderOptions::NONE)
        .ok()
        .map(|r| r.code_buffer)
}

/// The stub of `r` at `at`; `word` holds the register entry and `word + 8` the
/// frame entry.
pub fn site_stub(at: u64, r: &Rewrite, word: u64) -> Option<Vec<u8>> {
    let frame_word = word + 8;
    let mut e = Emit::new(at);
    let code = relocate(&r.moved, at)?;
    e.bytes(&code);
    let mut to_fallback = Vec::new();
    let mut to_cont = Vec::new();
    // Where the call is done: after the `syscall` ("before" shape), or the moved
    // instructions after it ("after" shape, at `cont`).
    let cont = |e: &mut Emit, to_cont: &mut Vec<usize>| -> Option<()> {
        if r.after {
            to_cont.push(e.short(0xeb)); // jmp cont
        } else {
            e.rel(&[0xe9], r.syscall + 2)?; // jmp after the syscall
        }
        Some(())
    };
    let needs_frame = r.nr.is_some_and(|n| NEEDS_FRAME.contains(&n));
    let mut to_frame = Vec::new();
    if !needs_frame {
        e.rel(&[0x48, 0x8b, 0x0d], word)?; // mov rcx, [rip + word]
        to_fallback.push(e.short(0xe3)); // jrcxz fallback
        if r.nr.is_none() {
            for n in NEEDS_FRAME {
                if let Ok(d) = i8::try_from(-i64::from(n)) {
                    e.bytes(&[0x8d, 0x48, d as u8]); // lea ecx, [rax - n]
                } else {
                    e.bytes(&[0x8d, 0x88]); // lea ecx, [rax - n] (disp32)
                    e.bytes(&(-i64::from(n) as i32).to_le_bytes());
                }
                to_frame.push(e.short(0xe3)); // jrcxz frame
            }
        }
        e.bytes(&[0x48, 0x8d, 0x64, 0x24, 0x80]); // lea rsp, [rsp - 128]
        e.rel(&[0xff, 0x15], word)?; // call [rip + word]
        e.bytes(&[0x48, 0x8d, 0xa4, 0x24, 0x80, 0, 0, 0]); // lea rsp, [rsp + 128]
        cont(&mut e, &mut to_cont)?;
    }
    if needs_frame || r.nr.is_none() {
        // frame: the frame entry, every register as at the `syscall`; it comes
        // back with rsp as the `syscall` had it (a child: its own stack).
        for f in to_frame {
            e.land(f)?;
        }
        e.rel(&[0x48, 0x8b, 0x0d], frame_word)?; // mov rcx, [rip + frame word]
        to_fallback.push(e.short(0xe3)); // jrcxz fallback
        e.bytes(&[0x48, 0x8d, 0x64, 0x24, 0x80]); // lea rsp, [rsp - 128]
        e.bytes(&[0xff, 0xd1]); // call rcx
        cont(&mut e, &mut to_cont)?;
    }
    for f in to_fallback {
        e.land(f)?;
    }
    if r.after {
        e.bytes(&[0x0f, 0x05]); // fallback: syscall
        for c in to_cont {
            e.land(c)?;
        }
        let code = relocate(&r.moved_after, e.here())?;
        e.bytes(&code);
        e.rel(&[0xe9], r.end)?; // jmp end
    } else {
        e.rel(&[0xe9], r.syscall)?; // fallback: jmp the syscall
    }
    Some(e.b)
}

/// The bytes replacing `r.start..r.end`: `jmp stub`, the rest `int3` (nothing
/// jumps there). The "before" shape keeps the `syscall` after them.
pub fn site_jump(r: &Rewrite, stub: u64) -> Option<Vec<u8>> {
    let len = (r.end - r.start) as usize;
    let mut b = vec![0xcc; len];
    b[0] = 0xe9;
    b[1..5].copy_from_slice(&rel32(r.start + 5, stub)?);
    Some(b)
}
