//! Self-patching system-call sites: after a `syscall` instruction of the
//! application traps once, its site is rewritten to call the runtime directly, so
//! later executions take no trap at all (the idea of lazypoline, done in the LWK).
//!
//! # The rewrite
//! A site qualifies when the 5 bytes before `syscall` are one whole instruction the
//! shim can move elsewhere unchanged — `mov $nr, %eax` (`b8 imm32`, with `imm32`
//! equal to the number that just trapped: 83% of glibc's sites) or
//! `mov 0x8(%rsp), %r9` (`4c 8b 4c 24 08`, glibc's `syscall()` function). Those
//! 5 bytes become `jmp stub` (`e9 rel32`); the `syscall` itself stays in place, so
//! code that jumps straight to it still works (through the trap path). The stub,
//! in a page of stubs within ±2 GiB of the site:
//!
//! ```text
//!   <the moved instruction>      5 bytes, run where it ran before (same rsp)
//!   lea  -128(%rsp), %rsp        step over the red zone: nothing below the
//!   call *entry(%rip)            application's rsp is ever written
//!   lea  128(%rsp), %rsp
//!   jmp  <after the syscall>
//! ```
//!
//! `entry` (the first 8 bytes of each stub page) is the runtime's patched-call
//! entry, which gives the call `syscall`'s register contract: result in `rax`,
//! `rcx` and `r11` clobbered, everything else and the flags preserved.
//!
//! # Safety of the decision
//! Decoding backwards is ambiguous: the `b8` could be the last bytes of a longer
//! instruction. The match therefore also demands that the immediate equal the
//! number in `rax` at the trap (a displacement that happens to equal it, right
//! before a `syscall`, is implausible) and that the byte before is no prefix that
//! would make the 5 bytes part of a longer instruction. Only executable, not
//! writable program memory (image or file mappings) is patched, and never a stub.
//! The code bytes are written through the proxy's view of the memory
//! (`Platform::poke`), which is writable even where the application's is not.
//!
//! # Threads on other cores (cross-modification)
//! Another core may be executing the very bytes being rewritten. The jump goes in
//! as Linux's `text_poke_bp` does it: `int3` over the first byte, a pause for
//! every other core to pass an instruction boundary (`Platform::quiesce`), the four
//! bytes of the displacement, another pause, then the `jmp` opcode over the
//! `int3`. A core that meets the `int3` meanwhile traps with `#BP` one byte past
//! the site; the runtime sees [`being_patched`] and runs the site again once the
//! write is over. The `syscall` after the 5 bytes is never touched, so a thread
//! already past the `mov` executes it unchanged.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use mote_abi::layout::PAGE_SIZE;

use crate::mm::{AddressSpace, MapRequest};
use crate::platform::Platform;
use crate::uapi::mman::{PROT_EXEC, PROT_READ, PROT_WRITE};

/// Bytes per stub (the stub is 29 bytes).
pub const STUB_SIZE: u64 = 32;
/// Stubs start after the entry pointer at the head of the page.
const FIRST_STUB: u64 = 32;
/// `syscall`.
const SYSCALL: [u8; 2] = [0x0f, 0x05];
/// `mov 0x8(%rsp), %r9`.
const MOV_R9_STACK: [u8; 5] = [0x4c, 0x8b, 0x4c, 0x24, 0x08];
/// The largest system-call number a `mov $nr, %eax` site may load.
const MAX_NR: u32 = 1024;

/// The instruction a site moves into its stub, if the site qualifies. `before` are
/// the 8 bytes before the `syscall` (ending right before it); `rax` the number that
/// trapped.
pub fn movable(before: &[u8; 8], rax: u64) -> Option<[u8; 5]> {
    let prefix = before[2];
    let is_prefix = matches!(
        prefix,
        0x40..=0x4f | 0x66 | 0x67 | 0xf0 | 0xf2 | 0xf3 | 0x26 | 0x2e | 0x36 | 0x3e | 0x64 | 0x65
    );
    if is_prefix {
        return None;
    }
    let insn: [u8; 5] = before[3..8].try_into().expect("5 bytes");
    if insn[0] == 0xb8 {
        let imm = u32::from_le_bytes(insn[1..5].try_into().expect("4 bytes"));
        return (imm < MAX_NR && u64::from(imm) == rax).then_some(insn);
    }
    (insn == MOV_R9_STACK).then_some(insn)
}

fn rel32(from_end: u64, to: u64) -> Option<[u8; 4]> {
    let d = to.wrapping_sub(from_end) as i64;
    i32::try_from(d).ok().map(i32::to_le_bytes)
}

/// The stub at `stub` for a site whose moved instruction is `insn`, resuming at
/// `resume` (after the `syscall`); `entry_slot` holds the entry's address.
pub fn stub(
    stub: u64,
    insn: [u8; 5],
    resume: u64,
    entry_slot: u64,
) -> Option<[u8; STUB_SIZE as usize]> {
    let mut b = [0xccu8; STUB_SIZE as usize];
    b[0..5].copy_from_slice(&insn);
    b[5..10].copy_from_slice(&[0x48, 0x8d, 0x64, 0x24, 0x80]); // lea -0x80(%rsp),%rsp
    b[10..12].copy_from_slice(&[0xff, 0x15]); // call *disp32(%rip)
    b[12..16].copy_from_slice(&rel32(stub + 16, entry_slot)?);
    b[16..24].copy_from_slice(&[0x48, 0x8d, 0xa4, 0x24, 0x80, 0x00, 0x00, 0x00]); // lea 0x80(%rsp),%rsp
    b[24] = 0xe9; // jmp rel32
    b[25..29].copy_from_slice(&rel32(stub + 29, resume)?);
    Some(b)
}

/// The 5 bytes replacing the moved instruction at `site`: `jmp stub`.
pub fn jump(site: u64, stub: u64) -> Option<[u8; 5]> {
    let mut b = [0xe9, 0, 0, 0, 0];
    b[1..5].copy_from_slice(&rel32(site + 5, stub)?);
    Some(b)
}

/// The site whose first byte is a temporary `int3` now (0: none).
static PATCHING: AtomicU64 = AtomicU64::new(0);

/// Is the `int3` at `addr` a site being rewritten? Then the thread that hit it
/// waits with [`wait_patched`] and runs the site again.
pub fn being_patched(addr: u64) -> bool {
    addr != 0 && PATCHING.load(Ordering::Acquire) == addr
}

/// Wait until the rewrite of `site` is over.
pub fn wait_patched(site: u64) {
    while PATCHING.load(Ordering::Acquire) == site {
        core::hint::spin_loop();
    }
}

/// Write `jmp` (5 bytes) over `site` safely for cores executing it (see the module
/// documentation).
fn write_jump<P: Platform>(p: &P, site: u64, jmp: &[u8; 5], old_first: u8) -> bool {
    PATCHING.store(site, Ordering::Release);
    let ok = p.poke(site, &[0xcc]).is_ok() && {
        p.quiesce();
        let rest = p.poke(site + 1, &jmp[1..5]).is_ok();
        p.quiesce();
        // The opcode goes in even if the displacement failed: never leave the int3.
        let first = if rest { jmp[0] } else { old_first };
        p.poke(site, &[first]).is_ok() && rest
    };
    PATCHING.store(0, Ordering::Release);
    ok
}

/// Counters, for `MOTE_DEBUG` and the benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// System calls that arrived by trapping `syscall` instructions.
    pub trapped: u64,
    /// System calls that arrived without a trap (patched sites, direct entry).
    pub direct: u64,
    /// Sites rewritten.
    pub patched: u64,
    /// Sites looked at and left alone (pattern, memory kind or distance).
    pub declined: u64,
}

/// The patcher: stub pages and what it decided.
#[derive(Debug, Default)]
pub struct Patcher {
    /// Off with `--no-patch`.
    pub enabled: bool,
    /// The runtime's patched-call entry.
    pub entry: u64,
    /// Stub pages: (address, stubs used).
    pages: Vec<(u64, u64)>,
    /// Sites declined, not to be examined again.
    declined: Vec<u64>,
    /// Sites rewritten (sorted).
    sites: Vec<u64>,
    pub stats: Stats,
}

impl Patcher {
    /// A patcher sending patched calls to `entry`.
    pub fn new(enabled: bool, entry: u64) -> Self {
        Patcher {
            enabled,
            entry,
            ..Default::default()
        }
    }

    /// Whether `va` lies in a stub page.
    pub fn in_stub(&self, va: u64) -> bool {
        self.pages
            .iter()
            .any(|&(p, _)| (p..p + PAGE_SIZE).contains(&va))
    }

    /// A system call trapped at the `syscall` ending at `rip` with number `rax`:
    /// count it and, when the site qualifies, rewrite it. Returns whether it did.
    pub fn on_trap<P: Platform>(
        &mut self,
        mm: &mut AddressSpace,
        p: &P,
        rip: u64,
        rax: u64,
    ) -> bool {
        self.stats.trapped += 1;
        if !self.enabled || self.entry == 0 || rip < 10 || self.in_stub(rip) {
            return false;
        }
        let site = rip - 7;
        if self.declined.contains(&site) {
            return false;
        }
        let ok = self.try_patch(mm, p, site, rip, rax);
        if ok {
            self.stats.patched += 1;
            if let Err(i) = self.sites.binary_search(&site) {
                self.sites.insert(i, site);
            }
        } else {
            self.stats.declined += 1;
            self.declined.push(site);
        }
        ok
    }

    /// Was `site` rewritten? (A thread that met its temporary `int3` may report the
    /// trap after the rewrite ended: it just runs the site again.)
    pub fn is_patched_site(&self, site: u64) -> bool {
        self.sites.binary_search(&site).is_ok()
    }

    fn try_patch<P: Platform>(
        &mut self,
        mm: &mut AddressSpace,
        p: &P,
        site: u64,
        rip: u64,
        rax: u64,
    ) -> bool {
        // Program text only: executable, not writable, backed by the image or a
        // file (not JIT memory the program may rewrite itself).
        let code_ok = |va: u64| {
            mm.vma_at(va).is_some_and(|(_, v)| {
                v.prot & PROT_EXEC != 0 && v.prot & PROT_WRITE == 0 && v.is_code_backed()
            })
        };
        if !code_ok(site - 1) || !code_ok(rip - 1) {
            return false;
        }
        let mut bytes = [0u8; 10];
        p.read_mem(site - 3, &mut bytes);
        if bytes[8..10] != SYSCALL {
            return false;
        }
        let Some(insn) = movable(bytes[0..8].try_into().expect("8 bytes"), rax) else {
            return false;
        };
        let Some(stub_va) = self.stub_slot(mm, p, site) else {
            return false;
        };
        let page = stub_va & !(PAGE_SIZE - 1);
        let (Some(code), Some(jmp)) = (stub(stub_va, insn, rip, page), jump(site, stub_va)) else {
            return false;
        };
        // The stub first, then the jump to it.
        p.poke(stub_va, &code).is_ok() && write_jump(p, site, &jmp, insn[0])
    }

    /// A free stub within ±2 GiB of `site` (allocating a page near it if needed).
    fn stub_slot<P: Platform>(&mut self, mm: &mut AddressSpace, p: &P, site: u64) -> Option<u64> {
        let near = |a: u64| a.abs_diff(site) < (1 << 31) - 2 * PAGE_SIZE;
        if let Some(pg) = self
            .pages
            .iter_mut()
            .find(|(a, used)| near(*a) && FIRST_STUB + (*used + 1) * STUB_SIZE <= PAGE_SIZE)
        {
            let va = pg.0 + FIRST_STUB + pg.1 * STUB_SIZE;
            pg.1 += 1;
            return Some(va);
        }
        // A new page just below the code's mapping, else wherever mmap puts it.
        let base = mm.vma_at(site).map(|(start, _)| start)?;
        let hint = base.checked_sub(16 * PAGE_SIZE)?;
        let va = mm
            .map(
                p,
                &MapRequest::anonymous(hint, PAGE_SIZE, PROT_READ | PROT_EXEC),
            )
            .ok()?;
        if !near(va) || p.poke(va, &self.entry.to_le_bytes()).is_err() {
            let _ = mm.munmap(p, va, PAGE_SIZE);
            return None;
        }
        mm.mark_stubs(va);
        self.pages.push((va, 1));
        Some(va + FIRST_STUB)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_jump_goes_in_behind_an_int3() {
        use crate::fake::FakePlatform;
        let p = FakePlatform::new();
        let boot = mote_abi::boot::BootInfo {
            pid: 1,
            pool_start: 16 << 20,
            mem_size: 64 << 20,
            ..Default::default()
        };
        let mut pr = crate::process::Process::new(&boot);
        pr.mm.init(&p).unwrap();
        let site =
            crate::syscall::mm::mmap(&mut pr, &p, 0, 4096, 5, 0x22, u64::MAX, 0).unwrap() as u64;
        p.poke(site, &[0xb8, 39, 0, 0, 0, 0x0f, 0x05]);
        assert!(write_jump(&p, site, &[0xe9, 1, 2, 3, 4], 0xb8));
        assert_eq!(p.peek(site, 7), [0xe9, 1, 2, 3, 4, 0x0f, 0x05]);
        assert!(!being_patched(site), "no int3 left behind");
        // The writes happened in the cross-modification order.
        let pokes = p.pokes();
        assert_eq!(
            pokes,
            [
                (site, alloc::vec![0xcc]),
                (site + 1, alloc::vec![1, 2, 3, 4]),
                (site, alloc::vec![0xe9])
            ]
        );
    }

    #[test]
    fn mov_eax_sites_qualify_only_with_the_trapped_number() {
        let b = [0x90, 0x90, 0x90, 0xb8, 0x27, 0, 0, 0];
        assert_eq!(movable(&b, 0x27), Some([0xb8, 0x27, 0, 0, 0]));
        assert_eq!(
            movable(&b, 0x28),
            None,
            "immediate must be the number in rax"
        );
        let big = [0x90, 0x90, 0x90, 0xb8, 0, 0, 1, 0];
        assert_eq!(movable(&big, 0x1_0000), None, "not a system-call number");
    }

    #[test]
    fn a_rex_prefix_makes_it_another_instruction() {
        // 41 b8 imm32 is mov $imm, %r8d: the 5 bytes are not an instruction.
        let b = [0x90, 0x90, 0x41, 0xb8, 9, 0, 0, 0];
        assert_eq!(movable(&b, 9), None);
    }

    #[test]
    fn glibc_syscall_function_qualifies() {
        let b = [0x4d, 0x89, 0xc8, 0x4c, 0x8b, 0x4c, 0x24, 0x08];
        // Byte before is 0xc8 (end of mov %r9,%r8): not a prefix.
        assert_eq!(movable(&b, 39), Some(MOV_R9_STACK));
    }

    #[test]
    fn stub_and_jump_encode_their_targets() {
        let site = 0x40_1000;
        let page = 0x3f_0000;
        let st = page + FIRST_STUB;
        let code = stub(st, [0xb8, 39, 0, 0, 0], site + 7, page).unwrap();
        assert_eq!(&code[0..5], &[0xb8, 39, 0, 0, 0]);
        // call *disp(%rip) reaches the entry slot at the page's start.
        let disp = i32::from_le_bytes(code[12..16].try_into().unwrap()) as i64;
        assert_eq!((st + 16) as i64 + disp, page as i64);
        // jmp goes back right after the syscall.
        let back = i32::from_le_bytes(code[25..29].try_into().unwrap()) as i64;
        assert_eq!((st + 29) as i64 + back, (site + 7) as i64);
        let j = jump(site, st).unwrap();
        assert_eq!(j[0], 0xe9);
        assert_eq!(
            (site + 5) as i64 + i32::from_le_bytes(j[1..5].try_into().unwrap()) as i64,
            st as i64
        );
        assert!(jump(0x1000, 0x1000 + (3 << 30)).is_none(), "beyond ±2 GiB");
    }
}
