//! `mremap`: shrinking, growing in place, and moving a range (the same frames mapped
//! at the new address, no copy), with `MREMAP_FIXED` and `MREMAP_DONTUNMAP`.

use alloc::vec::Vec;

use mote_abi::errno::Errno;
use mote_abi::layout::{LARGE_PAGE_SIZE, PAGE_SIZE, USER_END, USER_MMAP_TOP, USER_START};
use mote_abi::maplog::{KIND_MAP, KIND_UNMAP};

use crate::platform::Platform;
use crate::uapi::mman::*;

use super::backing::{change, Backing};
use super::vma::{split, Label};
use super::{page_len, AddressSpace, Note, Vma, VmaKind};

impl AddressSpace {
    /// `mremap(old, old_len, new_len, flags, new_addr)`.
    pub fn mremap<P: Platform>(
        &mut self,
        p: &P,
        old: u64,
        old_len: u64,
        new_len: u64,
        flags: u64,
        new_addr: u64,
    ) -> Result<u64, Errno> {
        if flags & !(MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP) != 0
            || !old.is_multiple_of(PAGE_SIZE)
        {
            return Err(Errno::EINVAL);
        }
        if flags & (MREMAP_FIXED | MREMAP_DONTUNMAP) != 0 && flags & MREMAP_MAYMOVE == 0 {
            return Err(Errno::EINVAL);
        }
        let old_len = page_len(old_len).map_err(|_| Errno::EINVAL)?;
        let new_len = page_len(new_len).map_err(|_| Errno::EINVAL)?;
        if new_len == 0 || old_len == 0 {
            // old_len == 0 duplicates a shared mapping in Linux; there is none here.
            return Err(Errno::EINVAL);
        }
        let (vstart, vma) = self
            .vma_at(old)
            .map(|(s, v)| (s, *v))
            .ok_or(Errno::EFAULT)?;
        let old_end = old.checked_add(old_len).ok_or(Errno::EFAULT)?;
        if old_end > vma.end {
            return Err(Errno::EFAULT);
        }
        let _ = vstart;
        let passthrough = matches!(vma.kind, VmaKind::Passthrough { .. });
        if passthrough && (new_len > old_len || flags & MREMAP_FIXED != 0) {
            // Its memory is the proxy's Linux mapping at this address.
            self.note(
                p,
                Note::SharedFile,
                "mremap: moving or growing a shared file or System V shared memory mapping is not supported yet; returning EINVAL",
            );
            return Err(Errno::EINVAL);
        }

        if flags & MREMAP_DONTUNMAP != 0 {
            return self.move_dont_unmap(p, old, old_len, new_len, flags, new_addr, vma);
        }

        if flags & MREMAP_FIXED != 0 {
            if !new_addr.is_multiple_of(PAGE_SIZE)
                || new_len > USER_END
                || new_addr > USER_END - new_len
            {
                return Err(Errno::EINVAL);
            }
            if new_addr < USER_START {
                return Err(Errno::EPERM);
            }
            if new_addr < old_end && old < new_addr + new_len {
                return Err(Errno::EINVAL);
            }
            if new_len > old_len && vma.kind == VmaKind::File {
                return self.grow_file_refused(p);
            }
            // Both cuts first, so that a failing one (ENOMEM) changes nothing.
            self.split_whole_chunk(p, new_addr)?;
            self.split_whole_chunk(p, new_addr + new_len)?;
            self.split_whole_chunk(p, old + new_len.min(old_len))?;
            self.remove_range(p, new_addr, new_addr + new_len)?;
            let moved_len = old_len.min(new_len);
            if old_len > new_len {
                self.remove_range(p, old + new_len, old_end)?;
            }
            self.move_range(p, old, moved_len, new_addr, new_len, vma)?;
            return Ok(new_addr);
        }

        if new_len <= old_len {
            self.remove_range(p, old + new_len, old_end)?;
            return Ok(old);
        }
        if vma.kind == VmaKind::File {
            return self.grow_file_refused(p);
        }
        // Grow in place when the pages after the range are free.
        if old_end == vma.end && old <= USER_END - new_len && self.is_free(old_end, old + new_len) {
            self.map_new(p, old_end, old + new_len, vma.prot, vma.kind, vma.shared)?;
            return Ok(old);
        }
        if flags & MREMAP_MAYMOVE == 0 {
            return Err(Errno::ENOMEM);
        }
        let align = self.placement_align(new_len);
        let to = self
            .find_free(new_len, align, USER_START, USER_MMAP_TOP)
            .ok_or(Errno::ENOMEM)?;
        self.move_range(p, old, old_len, to, new_len, vma)?;
        Ok(to)
    }

    /// `mremap` with `MREMAP_DONTUNMAP`: the pages move to a new range (`new_addr`
    /// with `MREMAP_FIXED`), and the old range stays mapped, reading zero from then
    /// on, as Linux leaves a private anonymous mapping. Like Linux, only private
    /// anonymous memory, and the length cannot change.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn move_dont_unmap<P: Platform>(
        &mut self,
        p: &P,
        old: u64,
        len: u64,
        new_len: u64,
        flags: u64,
        new_addr: u64,
        vma: Vma,
    ) -> Result<u64, Errno> {
        let anon = matches!(vma.kind, VmaKind::Anon | VmaKind::Heap | VmaKind::Stack);
        if new_len != len || !anon || vma.shared {
            if !anon {
                self.note(
                    p,
                    Note::DontUnmap,
                    "mremap: MREMAP_DONTUNMAP of a file mapping is not supported yet; returning EINVAL",
                );
            }
            return Err(Errno::EINVAL);
        }
        let to = if flags & MREMAP_FIXED != 0 {
            if !new_addr.is_multiple_of(PAGE_SIZE) || new_addr > USER_END - len {
                return Err(Errno::EINVAL);
            }
            if new_addr < USER_START {
                return Err(Errno::EPERM);
            }
            if new_addr < old + len && old < new_addr + len {
                return Err(Errno::EINVAL);
            }
            self.split_whole_chunk(p, old)?;
            self.split_whole_chunk(p, old + len)?;
            self.remove_range(p, new_addr, new_addr + len)?;
            new_addr
        } else {
            let align = self.placement_align(len);
            self.find_free(len, align, USER_START, USER_MMAP_TOP)
                .ok_or(Errno::ENOMEM)?
        };
        self.move_range(p, old, len, to, len, vma)?;
        // Fresh zeroed memory where the pages were; without memory for it, the
        // pages go back and nothing changed.
        if let Err(e) = self.map_new(p, old, old + len, vma.prot, vma.kind, false) {
            let moved = Vma {
                end: to + len,
                ..vma
            };
            self.move_range(p, to, len, old, len, moved)?;
            return Err(e);
        }
        Ok(to)
    }

    pub(super) fn grow_file_refused<P: Platform>(&mut self, p: &P) -> Result<u64, Errno> {
        self.note(
            p,
            Note::GrowFile,
            "mremap: growing a private file mapping is not supported yet; returning ENOMEM",
        );
        Err(Errno::ENOMEM)
    }

    /// Move `[old, old+len)` (inside one VMA with properties `vma`) to the free range
    /// `[to, to+new_len)`, `new_len >= len`: the same frames are mapped at the new
    /// address (no copy), then the old range is unmapped and the rest of the new range
    /// is backed with fresh memory.
    pub(super) fn move_range<P: Platform>(
        &mut self,
        p: &P,
        old: u64,
        len: u64,
        to: u64,
        new_len: u64,
        vma: Vma,
    ) -> Result<(), Errno> {
        self.split_whole_chunk(p, old)?;
        self.split_whole_chunk(p, old + len)?;
        if !(to.wrapping_sub(old)).is_multiple_of(LARGE_PAGE_SIZE) {
            // Whole-only 2 MiB pages can only land 2 MiB aligned.
            let whole: Vec<u64> = self
                .backed_in(old, old + len)
                .into_iter()
                .filter(|&(_, _, gpa)| self.frames.whole_chunks_only(gpa))
                .flat_map(|(va, len, _)| (va..va + len).step_by(LARGE_PAGE_SIZE as usize))
                .collect();
            for chunk in whole {
                self.split_chunk(p, chunk)?;
            }
        }
        split(&mut self.backing, old);
        split(&mut self.backing, old + len);
        let runs: Vec<(u64, Backing)> = self
            .backing
            .range(old..old + len)
            .map(|(&s, &b)| (s, b))
            .collect();
        // Map the new range first: if that fails the old mapping is still intact.
        let mut done: Vec<(u64, Backing)> = Vec::new();
        for &(s, b) in &runs {
            let va = to + (s - old);
            if let Err(e) = self.kmap(p, va, b.gpa, b.len, vma.prot) {
                for &(va, b) in &done {
                    let _ = p.unmap(va, b.len);
                    p.publish(change(KIND_UNMAP, va, b.len, b.gpa));
                }
                return Err(e);
            }
            p.publish(change(KIND_MAP, va, b.len, b.gpa));
            done.push((va, b));
        }
        // The name goes along.
        split(&mut self.labels, old);
        split(&mut self.labels, old + len);
        let moved: Vec<(u64, Label)> = self
            .labels
            .range(old..old + len)
            .map(|(&s, l)| (s, l.clone()))
            .collect();
        self.unlabel(old, old + len);
        for (s, l) in moved {
            let end = to + (l.end - old);
            self.labels.insert(to + (s - old), Label { end, ..l });
        }
        // Drop the old range without freeing its frames: they live on at `to`.
        split(&mut self.vmas, old);
        split(&mut self.vmas, old + len);
        let keys: Vec<u64> = self.vmas.range(old..old + len).map(|(&s, _)| s).collect();
        for k in keys {
            self.vmas.remove(&k);
        }
        for &(s, _) in &runs {
            self.backing.remove(&s);
        }
        self.unmap_runs(p, &runs);
        for (va, b) in done {
            self.backing.insert(va, b);
        }
        self.vmas.insert(
            to,
            Vma {
                end: to + len,
                ..vma
            },
        );
        if new_len > len {
            if let Err(e) = self.map_new(p, to + len, to + new_len, vma.prot, vma.kind, vma.shared)
            {
                // Just mapped by us at a free range: its ends cut nothing.
                let _ = self.remove_range(p, to, to + len);
                return Err(e);
            }
        }
        self.merge_around(to, to + new_len);
        Ok(())
    }
}
