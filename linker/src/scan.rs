//! Finding and planning the rewrite of every `syscall` instruction of a program.
//!
//! The executable sections are decoded whole, front to back, with iced-x86 (never
//! by byte pattern). Every direct branch and call target, every RIP-relative
//! address into the text, and every extra target the caller knows (symbols,
//! pointers found in data, relocation addends) is a *target*: a place control may
//! arrive from elsewhere. A site is rewritten only when a 5-byte `jmp` fits without
//! covering a target anywhere but at its first byte or at the `syscall` itself:
//!
//! - **Before**: whole instructions right before the `syscall` (at least 5 bytes,
//!   none of them a branch) move into the stub and become `jmp stub`; the `syscall`
//!   stays where it was, so a jump straight to it still works, and the stub's
//!   fallback jumps back to it. Preferred.
//! - **After**: the `syscall` and whole instructions right after it (5 bytes or
//!   more in all, no target after the `syscall`) become `jmp stub`; the stub holds
//!   its own `syscall` for the fallback and the moved instructions.
//!
//!   The last instruction moved may be a direct `jmp` or `jcc` (the encoder keeps
//!   its target). When that is still short of 5 bytes and nothing jumps to the
//!   `syscall` itself, instructions before it move too, as for "before" (glibc's
//!   `_exit` loop: `1: xor edi,edi; mov eax,edx; syscall; jmp 1b`).
//!
//! The number in `eax` at the site is worked out when the block sets it with an
//! immediate. Sites of calls whose child needs the full register frame (`clone`,
//! `clone3`, `fork`, `vfork`) get a stub calling the runtime's frame entry
//! instead of its register entry (see `tramp`); where the number is not known
//! the stub checks it at run time.

use std::collections::HashSet;

use iced_x86::{
    Code, Decoder, DecoderOptions, FlowControl, Instruction, InstructionInfoFactory, Mnemonic,
    OpAccess, OpKind, Register,
};

/// Calls mote's register entry cannot make (the child needs the full register
/// frame): their stubs call the frame entry, and a stub whose number is not
/// known checks for them at run time.
pub const NEEDS_FRAME: [u32; 4] = [56, 57, 58, 435];

/// Bytes a `jmp rel32` takes.
const JMP_LEN: u64 = 5;
/// At most this many instructions are moved for one site.
const MAX_MOVED: usize = 4;
/// Undecodable bytes this close before a site make it suspect (data in the text,
/// or a decoding out of step).
const INVALID_GUARD: u64 = 32;

/// One executable section.
#[derive(Clone, Copy, Debug)]
pub struct Text<'a> {
    /// Its address.
    pub addr: u64,
    /// Its bytes.
    pub bytes: &'a [u8],
}

/// How a site is rewritten.
#[derive(Clone, Debug, PartialEq)]
pub struct Rewrite {
    /// Address of the `syscall` instruction.
    pub syscall: u64,
    /// First byte overwritten (the `jmp stub` goes here).
    pub start: u64,
    /// End of the overwritten bytes.
    pub end: u64,
    /// The instructions before the `syscall` the stub runs in their place.
    pub moved: Vec<Instruction>,
    /// The instructions after the `syscall` the stub runs in their place (the
    /// "after" shape).
    pub moved_after: Vec<Instruction>,
    /// The `syscall` itself is overwritten (the "after" shape).
    pub after: bool,
    /// The call's number, when the code sets it with an immediate.
    pub nr: Option<u32>,
}

/// Why a site keeps its `syscall`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kept {
    /// No 5 bytes around it can be moved safely.
    NoRoom,
    /// Undecodable bytes close before it.
    NearData,
}

/// What the scan found.
#[derive(Debug, Default)]
pub struct Scan {
    /// Sites to rewrite, by address.
    pub rewrites: Vec<Rewrite>,
    /// Sites left as they are, and why.
    pub kept: Vec<(u64, Kept)>,
    /// Every target found (for tests and the report).
    pub targets: usize,
}

/// Decode one section.
pub fn decode(t: &Text) -> Vec<Instruction> {
    let mut d = Decoder::with_ip(64, t.bytes, t.addr, DecoderOptions::NONE);
    let mut v = Vec::with_capacity(t.bytes.len() / 4);
    while d.can_decode() {
        v.push(d.decode());
    }
    v
}

/// Where control may arrive from elsewhere, as far as the code itself says.
pub fn code_targets(insns: &[Instruction], targets: &mut HashSet<u64>) {
    for i in insns {
        match i.flow_control() {
            FlowControl::UnconditionalBranch
            | FlowControl::ConditionalBranch
            | FlowControl::Call
            | FlowControl::XbeginXabortXend => {
                if matches!(
                    i.op0_kind(),
                    OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64
                ) {
                    targets.insert(i.near_branch_target());
                }
            }
            _ => {}
        }
        if i.is_ip_rel_memory_operand() {
            targets.insert(i.ip_rel_memory_address());
        }
    }
}

fn is_syscall(i: &Instruction) -> bool {
    i.code() == Code::Syscall
}

/// May `i` run somewhere else unchanged (apart from a RIP-relative displacement
/// the encoder fixes)?
fn movable(i: &Instruction) -> bool {
    i.code() != Code::INVALID
        && i.flow_control() == FlowControl::Next
        && i.mnemonic() != Mnemonic::Syscall
        && !i.has_lock_prefix() // harmless, but keep the moved code plain
}

/// The number in `eax` at `insns[at]` (a `syscall`), if the block sets it with an
/// immediate. Walks back through the block: stops at a branch, and at a target
/// (after looking at the instruction there).
fn known_nr(insns: &[Instruction], at: usize, targets: &HashSet<u64>) -> Option<u32> {
    let mut info = InstructionInfoFactory::new();
    for j in (at.saturating_sub(12)..at).rev() {
        let i = &insns[j];
        if i.flow_control() != FlowControl::Next || i.code() == Code::INVALID {
            return None;
        }
        let writes_rax = info.info(i).used_registers().iter().any(|u| {
            u.register().full_register() == Register::RAX
                && !matches!(
                    u.access(),
                    OpAccess::Read | OpAccess::CondRead | OpAccess::None
                )
        });
        if writes_rax {
            let imm = match i.code() {
                Code::Mov_r32_imm32 if i.op0_register() == Register::EAX => Some(i.immediate32()),
                Code::Mov_rm64_imm32
                    if i.op0_kind() == OpKind::Register && i.op0_register() == Register::RAX =>
                {
                    Some(i.immediate32())
                }
                Code::Mov_r64_imm64 if i.op0_register() == Register::RAX => {
                    Some(i.immediate64() as u32)
                }
                _ => None,
            };
            return imm;
        }
        if targets.contains(&i.ip()) {
            return None;
        }
    }
    None
}

/// Plan the site `insns[at]`. `claimed` holds bytes other sites already overwrite.
fn plan_site(
    insns: &[Instruction],
    at: usize,
    targets: &HashSet<u64>,
    claimed: &HashSet<u64>,
) -> Result<Rewrite, Kept> {
    let sc = &insns[at];
    let site = sc.ip();
    let nr = known_nr(insns, at, targets);
    let near_invalid = insns[at.saturating_sub(16)..at]
        .iter()
        .any(|i| i.code() == Code::INVALID && i.ip() + INVALID_GUARD > site);
    if near_invalid {
        return Err(Kept::NearData);
    }
    let free = |from: u64, to: u64| (from..to).all(|b| !claimed.contains(&b));
    // Before: whole instructions ending at the syscall.
    let (j, len) = back(insns, at, JMP_LEN, targets);
    if len >= JMP_LEN {
        let start = insns[j].ip();
        let inner_ok = insns[j + 1..at].iter().all(|i| !targets.contains(&i.ip()));
        if inner_ok && free(start, site) {
            return Ok(Rewrite {
                syscall: site,
                start,
                end: site,
                moved: insns[j..at].to_vec(),
                moved_after: Vec::new(),
                after: false,
                nr,
            });
        }
    }
    // After: the syscall and whole instructions after it.
    let mut len = sc.len() as u64;
    let mut k = at + 1;
    while k < insns.len() && k - at <= MAX_MOVED && len < JMP_LEN {
        let i = &insns[k];
        let branch = i.is_jmp_short_or_near() || i.is_jcc_short_or_near();
        if i.ip() != insns[k - 1].next_ip() || !(movable(i) || branch) || targets.contains(&i.ip())
        {
            break;
        }
        len += i.len() as u64;
        k += 1;
        if branch {
            break; // the last one moved
        }
    }
    // Around: more bytes from before the syscall, if nothing jumps to it.
    let (j, before) = if len < JMP_LEN && !targets.contains(&site) {
        back(insns, at, JMP_LEN - len, targets)
    } else {
        (at, 0)
    };
    let start = insns[j].ip();
    let inner_ok = insns[(j + 1).min(at)..at]
        .iter()
        .all(|i| !targets.contains(&i.ip()));
    let end = site + len;
    if len + before >= JMP_LEN && inner_ok && free(start, end) {
        return Ok(Rewrite {
            syscall: site,
            start,
            end,
            moved: insns[j..at].to_vec(),
            moved_after: insns[at + 1..k].to_vec(),
            after: true,
            nr,
        });
    }
    Err(Kept::NoRoom)
}

/// Whole movable instructions ending at `insns[at]`, at least `need` bytes of them
/// if possible: the first one's index and their length. Only the first may be a
/// target.
fn back(insns: &[Instruction], at: usize, need: u64, targets: &HashSet<u64>) -> (usize, u64) {
    let mut len = 0;
    let mut j = at;
    while j > 0 && at - j < MAX_MOVED && len < need {
        let i = &insns[j - 1];
        if i.next_ip() != insns[j].ip() || !movable(i) {
            break;
        }
        len += i.len() as u64;
        j -= 1;
        if len < need && targets.contains(&i.ip()) {
            break;
        }
    }
    (j, len)
}

/// Find and plan every site of `texts`. `extra` are targets known from outside the
/// code (symbols, pointers in data, relocations).
pub fn scan(texts: &[Text], extra: impl IntoIterator<Item = u64>) -> Scan {
    let decoded: Vec<Vec<Instruction>> = texts.iter().map(decode).collect();
    let mut targets: HashSet<u64> = extra.into_iter().collect();
    for d in &decoded {
        code_targets(d, &mut targets);
    }
    let mut out = Scan {
        targets: targets.len(),
        ..Scan::default()
    };
    let mut claimed = HashSet::new();
    for insns in &decoded {
        for (at, i) in insns.iter().enumerate() {
            if !is_syscall(i) {
                continue;
            }
            match plan_site(insns, at, &targets, &claimed) {
                Ok(r) => {
                    claimed.extend(r.start..r.end.max(r.syscall + 2));
                    out.rewrites.push(r);
                }
                Err(k) => out.kept.push((i.ip(), k)),
            }
        }
    }
    out
}
