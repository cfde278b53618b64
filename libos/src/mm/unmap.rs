//! `munmap`, and removing a range (VMAs, mappings, frames, labels, pass-through
//! objects) for every operation that replaces or drops memory.

use alloc::vec::Vec;

use mote_abi::errno::Errno;
use mote_abi::layout::{align_up, is_passthrough, PAGE_SIZE, USER_END};

use crate::platform::Platform;

use super::backing::Backing;
use super::vma::split;
use super::{page_len, AddressSpace, VmaKind};

impl AddressSpace {
    /// `munmap(addr, len)`.
    pub fn munmap<P: Platform>(&mut self, p: &P, addr: u64, len: u64) -> Result<(), Errno> {
        if !addr.is_multiple_of(PAGE_SIZE) || len == 0 {
            return Err(Errno::EINVAL);
        }
        let len = page_len(len).map_err(|_| Errno::EINVAL)?;
        if addr > USER_END || len > USER_END - addr {
            return Err(Errno::EINVAL);
        }
        // Where a whole-only 2 MiB page cannot be split, nothing changes (ENOMEM).
        self.remove_range(p, addr, addr + len)
    }

    /// Remove everything in `[start, end)`: VMAs, mappings, frames. The heap
    /// reserve stays contiguous with the break: removing part of it removes the
    /// rest above, too.
    pub(super) fn remove_range<P: Platform>(
        &mut self,
        p: &P,
        start: u64,
        end: u64,
    ) -> Result<(), Errno> {
        if start >= end {
            return Ok(());
        }
        let (reserve, heap_end) = (align_up(self.brk, PAGE_SIZE), self.heap_end());
        let end = if start < heap_end && end > reserve && end < heap_end {
            heap_end
        } else {
            end
        };
        // A whole-only 2 MiB page the range cuts into is split first; without
        // 4 KiB frames for that, nothing changes (ENOMEM).
        self.split_whole_chunk(p, start)?;
        self.split_whole_chunk(p, end)?;
        self.unlabel(start, end);
        split(&mut self.vmas, start);
        split(&mut self.vmas, end);
        split(&mut self.backing, start);
        split(&mut self.backing, end);
        let keys: Vec<u64> = self.vmas.range(start..end).map(|(&s, _)| s).collect();
        let mut released: Vec<(u64, u64, u64)> = Vec::new();
        for k in keys {
            if let Some(v) = self.vmas.remove(&k) {
                if let VmaKind::Passthrough { gpa, .. } = v.kind {
                    released.push((k, v.end, gpa));
                }
            }
        }
        let runs: Vec<(u64, Backing)> = self
            .backing
            .range(start..end)
            .map(|(&s, &b)| (s, b))
            .collect();
        for (s, _) in &runs {
            self.backing.remove(s);
        }
        self.unmap_runs(p, &runs);
        for (_, b) in runs {
            if !is_passthrough(b.gpa, b.len) {
                self.frames.free(b.gpa, b.len);
            }
        }
        self.release_shared(p, &released);
        self.heap_dirty = self.heap_dirty.min(self.heap_end());
        Ok(())
    }
}
