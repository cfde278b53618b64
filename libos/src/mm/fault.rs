//! Page faults of the application: `SIGBUS` beyond a shared file's end, faults that
//! met a whole-only page's split (retried), mapping a page a shared file has grown
//! over, and growing a `MAP_GROWSDOWN` mapping down on a fault just below it.

use mote_abi::layout::{align_down, LARGE_PAGE_SIZE, PAGE_SIZE, USER_START};
use mote_abi::maplog::KIND_MAP;

use crate::platform::Platform;
use crate::uapi::mman::*;

use super::backing::{change, Backing};
use super::vma::{allows, split};
use super::{AddressSpace, VmaKind};

/// Gap a `MAP_GROWSDOWN` mapping keeps from the mapping below it when it grows
/// (Linux's default `stack_guard_gap`, 256 pages).
const STACK_GUARD_GAP: u64 = 256 * PAGE_SIZE;
/// Page-fault error code bits (Intel SDM vol. 3, 4.7): a write; a reserved bit
/// set in a paging entry; an instruction fetch; a protection-key violation.
pub const PF_WRITE: u64 = 1 << 1;
pub const PF_RSVD: u64 = 1 << 3;
pub const PF_FETCH: u64 = 1 << 4;
pub const PF_PK: u64 = 1 << 5;

/// Largest size a `MAP_GROWSDOWN` mapping grows to (Linux's default `RLIMIT_STACK`).
const STACK_LIMIT: u64 = 8 << 20;

/// What to do about a page fault of the application ([`AddressSpace::page_fault`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// libos mapped the page: return to the faulting instruction.
    Retry,
    /// The access raises this signal.
    Signal(u32),
    /// Not libos's: the signal of the exception itself.
    Default,
}

impl AddressSpace {
    /// What a page fault of the application at `addr` (x86 page-fault error code
    /// `error`) means. A fault Linux reported as `SIGBUS` (`trap::PF_SIGBUS`, hosted
    /// platform) is `SIGBUS`. An access the VMA allows to a backed page of a
    /// whole-only 2 MiB page split lately met the split under way (`split_chunk`
    /// makes the page read-only, then maps its copy) and is retried. In a shared
    /// file mapping, an allowed access to a page beyond the file's end is
    /// `SIGBUS`, as in Linux, mapped (the file shrank under it) or not; an
    /// unbacked page the file has grown over since it was mapped is mapped now and
    /// the access retried. Every other fault is the exception's own (`SIGSEGV`).
    pub fn page_fault<P: Platform>(&mut self, p: &P, addr: u64, error: u64) -> Fault {
        if error & mote_abi::trap::PF_SIGBUS != 0 {
            return Fault::Signal(crate::uapi::signal::SIGBUS);
        }
        let Some((_, &v)) = self.vma_at(addr) else {
            return self.grow_down(p, addr);
        };
        let (write, fetch) = (error & PF_WRITE != 0, error & PF_FETCH != 0);
        let allowed = allows(v.prot, write) && (!fetch || v.prot & PROT_EXEC != 0);
        let backed = self.translate(addr).is_some();
        // Reserved-bit and protection-key faults are never a split's.
        let plain = error & (PF_RSVD | PF_PK) == 0;
        let split_lately = self
            .split_lately
            .contains(&align_down(addr, LARGE_PAGE_SIZE));
        let VmaKind::Passthrough { gpa, va, .. } = v.kind else {
            return if backed && allowed && plain && split_lately {
                Fault::Retry
            } else {
                Fault::Default
            };
        };
        if !allowed {
            return Fault::Default;
        }
        // Beyond the file's end now (it may have shrunk under a mapped page): SIGBUS.
        let page = align_down(addr, PAGE_SIZE);
        if page - va >= p.shared_len(gpa) {
            return Fault::Signal(crate::uapi::signal::SIGBUS);
        }
        if backed {
            return Fault::Retry;
        }
        let pgpa = gpa + (page - va);
        if self.kmap(p, page, pgpa, PAGE_SIZE, v.prot).is_err() {
            return Fault::Signal(crate::uapi::signal::SIGBUS);
        }
        self.backing.insert(
            page,
            Backing {
                len: PAGE_SIZE,
                gpa: pgpa,
            },
        );
        p.publish(change(KIND_MAP, page, PAGE_SIZE, pgpa));
        Fault::Retry
    }

    /// An access at `addr`, outside every VMA, just below a `MAP_GROWSDOWN` one:
    /// extend that VMA down to `addr`'s page (backed like the rest of it), as Linux's
    /// `expand_stack` does, if the new start keeps `STACK_GUARD_GAP` from the VMA
    /// below and the whole stays within `STACK_LIMIT`.
    pub(super) fn grow_down<P: Platform>(&mut self, p: &P, addr: u64) -> Fault {
        let page = align_down(addr, PAGE_SIZE);
        let Some((&start, &v)) = self.vmas.range(addr..).next() else {
            return Fault::Default;
        };
        if !v.growsdown || v.end - page > STACK_LIMIT || page < USER_START {
            return Fault::Default;
        }
        let below = self
            .vmas
            .range(..start)
            .next_back()
            .map_or(0, |(_, b)| b.end);
        if below.saturating_add(STACK_GUARD_GAP) > page {
            return Fault::Default;
        }
        if self
            .map_new(p, page, start, v.prot, v.kind, v.shared)
            .is_err()
        {
            return Fault::Signal(crate::uapi::signal::SIGSEGV);
        }
        self.set_growsdown(page, start);
        Fault::Retry
    }

    /// Mark the VMAs in `[start, end)` `MAP_GROWSDOWN`.
    pub(super) fn set_growsdown(&mut self, start: u64, end: u64) {
        split(&mut self.vmas, start);
        split(&mut self.vmas, end);
        for (_, v) in self.vmas.range_mut(start..end) {
            v.growsdown = true;
        }
        self.merge_around(start, end);
    }
}
