//! `mprotect`: changing the protection of a covered range, backing what becomes
//! accessible (a `PROT_NONE` reservation gets its frames here).

use alloc::vec::Vec;

use mote_abi::errno::Errno;
use mote_abi::layout::{PAGE_SIZE, USER_END};

use crate::platform::Platform;
use crate::uapi::mman::*;

use super::backing::coalesce;
use super::vma::split;
use super::{page_len, AddressSpace, VmaKind};

impl AddressSpace {
    /// `mprotect(addr, len, prot)`.
    pub fn mprotect<P: Platform>(
        &mut self,
        p: &P,
        addr: u64,
        len: u64,
        prot: u64,
    ) -> Result<(), Errno> {
        let grows = prot & (PROT_GROWSDOWN | PROT_GROWSUP);
        let prot = prot & !grows;
        if grows == PROT_GROWSDOWN | PROT_GROWSUP {
            return Err(Errno::EINVAL);
        }
        if prot & !(PROT_READ | PROT_WRITE | PROT_EXEC | PROT_SEM) != 0 {
            return Err(Errno::EINVAL);
        }
        if !addr.is_multiple_of(PAGE_SIZE) {
            return Err(Errno::EINVAL);
        }
        if len == 0 {
            return Ok(());
        }
        let len = page_len(len)?;
        let mut start = addr;
        let end = addr.checked_add(len).ok_or(Errno::ENOMEM)?;
        if end > USER_END {
            return Err(Errno::ENOMEM);
        }
        if grows != 0 {
            // Only the stack grows down; extend to the start of its VMA as Linux does.
            match self.vma_at(start) {
                Some((s, v))
                    if grows == PROT_GROWSDOWN && (v.kind == VmaKind::Stack || v.growsdown) =>
                {
                    start = s
                }
                _ => return Err(Errno::EINVAL),
            }
        }
        if !self.is_covered(start, end) {
            return Err(Errno::ENOMEM);
        }
        // A shared mapping of a file opened read-only never becomes writable.
        if prot & PROT_WRITE != 0
            && self.parts(start, end).iter().any(|(_, _, v)| {
                matches!(
                    v.kind,
                    VmaKind::Passthrough {
                        may_write: false,
                        ..
                    }
                )
            })
        {
            return Err(Errno::EACCES);
        }
        self.change_prot(p, start, end, prot & (PROT_READ | PROT_WRITE | PROT_EXEC))
    }

    /// Set the protection of the covered range `[start, end)`: back what becomes
    /// accessible, change the rest in place.
    pub(super) fn change_prot<P: Platform>(
        &mut self,
        p: &P,
        start: u64,
        end: u64,
        prot: u64,
    ) -> Result<(), Errno> {
        self.split_whole_chunk(p, start)?;
        self.split_whole_chunk(p, end)?;
        // Pages backed before this call; populate maps the new ones with `prot`.
        split(&mut self.vmas, start);
        split(&mut self.vmas, end);
        let changed: Vec<(u64, u64)> = self
            .vmas
            .range(start..end)
            .filter(|(_, v)| v.prot != prot)
            .map(|(&s, v)| (s, v.end))
            .collect();
        let mut old: Vec<(u64, u64, u64)> = Vec::new();
        for &(s, e) in &changed {
            old.extend(self.backed_in(s, e));
        }
        if prot != PROT_NONE {
            self.populate(p, start, end, prot)?;
        }
        for (_, v) in self.vmas.range_mut(start..end) {
            v.prot = prot;
        }
        if prot & (PROT_WRITE | PROT_EXEC) != 0 {
            self.forget_copies(start, end);
        }
        for (s, e) in coalesce(&old) {
            let _ = self.kprotect(p, s, e - s, prot);
        }
        self.merge_around(start, end);
        Ok(())
    }
}
