//! `madvise`: validating the advice, zeroing for `MADV_DONTNEED` and its kin,
//! `MADV_POPULATE_*` access checks, and the fork advice (`MADV_DONTFORK`,
//! `MADV_WIPEONFORK`, applied in a fork's child by [`AddressSpace::forked`]);
//! other advice has nothing to do here (memory is resident and never paged).

use alloc::vec::Vec;

use mote_abi::errno::Errno;
use mote_abi::layout::PAGE_SIZE;

use crate::platform::Platform;
use crate::uapi::mman::*;

use super::backing::coalesce;
use super::vma::{allows, split, ForkAdvice};
use super::{page_len, AddressSpace, Note, Vma, VmaKind};

/// Can `MADV_WIPEONFORK` mark it (Linux: not a file's, not shared)?
fn wipeable(v: &Vma) -> bool {
    matches!(v.kind, VmaKind::Anon | VmaKind::Heap | VmaKind::Stack) && !v.shared
}

impl AddressSpace {
    /// `madvise(addr, len, advice)`.
    pub fn madvise<P: Platform>(
        &mut self,
        p: &P,
        addr: u64,
        len: u64,
        advice: u64,
    ) -> Result<(), Errno> {
        match advice {
            MADV_NORMAL | MADV_RANDOM | MADV_SEQUENTIAL | MADV_WILLNEED | MADV_DONTNEED
            | MADV_FREE | MADV_REMOVE | MADV_DONTFORK | MADV_DOFORK | MADV_MERGEABLE
            | MADV_UNMERGEABLE | MADV_HUGEPAGE | MADV_NOHUGEPAGE | MADV_DONTDUMP | MADV_DODUMP
            | MADV_WIPEONFORK | MADV_KEEPONFORK | MADV_COLD | MADV_PAGEOUT | MADV_POPULATE_READ
            | MADV_POPULATE_WRITE | MADV_DONTNEED_LOCKED | MADV_COLLAPSE => {}
            // Need CAP_SYS_ADMIN.
            MADV_HWPOISON | MADV_SOFT_OFFLINE => return Err(Errno::EPERM),
            _ => return Err(Errno::EINVAL),
        }
        if !addr.is_multiple_of(PAGE_SIZE) {
            return Err(Errno::EINVAL);
        }
        let len = page_len(len).map_err(|_| Errno::EINVAL)?;
        let end = addr.checked_add(len).ok_or(Errno::EINVAL)?;
        if len == 0 {
            return Ok(());
        }
        let covered = self.is_covered(addr, end);
        // The heap reserve is not the application's memory: as unmapped.
        let parts: Vec<(u64, u64, Vma)> = self
            .parts(addr, end)
            .into_iter()
            .filter(|(_, _, v)| v.kind != VmaKind::HeapReserve)
            .collect();
        match advice {
            MADV_DONTNEED | MADV_DONTNEED_LOCKED | MADV_FREE | MADV_REMOVE => {
                // Zeroing may change the protection of part of a whole-only page.
                self.split_whole_chunk(p, addr)?;
                self.split_whole_chunk(p, end)?;
                for &(s, e, v) in &parts {
                    let anon = matches!(v.kind, VmaKind::Anon | VmaKind::Heap | VmaKind::Stack);
                    let passthrough = matches!(v.kind, VmaKind::Passthrough { .. });
                    if advice == MADV_REMOVE && passthrough {
                        // Linux frees the object's pages (shared anonymous
                        // memory is a memfd here, as Linux's is shmem): what
                        // every mapping of it reads afterwards is zero. Writing
                        // the zeros gives the same view (the object keeps the
                        // pages). Linux: only in a writable shared mapping.
                        if v.prot & PROT_WRITE == 0 {
                            return Err(Errno::EACCES);
                        }
                        self.zero_backed(p, s, e, v.prot);
                        continue;
                    }
                    if advice == MADV_REMOVE && !(anon && v.shared) {
                        return Err(Errno::EINVAL);
                    }
                    if passthrough {
                        // Linux drops the page-table entries; the next access finds
                        // the object's pages again, which are these: nothing to do.
                        continue;
                    }
                    if !anon {
                        // Linux would drop the private copy and show the file again.
                        self.note(p, Note::DontneedFile, "madvise: MADV_DONTNEED on a private file or program mapping keeps its contents (reverting to the file is not supported yet)");
                        continue;
                    }
                    self.zero_backed(p, s, e, v.prot);
                }
            }
            MADV_DONTFORK | MADV_DOFORK | MADV_WIPEONFORK | MADV_KEEPONFORK => {
                // Linux: wiping is for private anonymous memory only.
                if advice == MADV_WIPEONFORK && parts.iter().any(|&(_, _, v)| !wipeable(&v)) {
                    return Err(Errno::EINVAL);
                }
                split(&mut self.vmas, addr);
                split(&mut self.vmas, end);
                for (_, v) in self.vmas.range_mut(addr..end) {
                    match advice {
                        MADV_DONTFORK => v.fork.dontfork = true,
                        MADV_DOFORK => v.fork.dontfork = false,
                        MADV_WIPEONFORK => v.fork.wipeonfork = true,
                        _ => v.fork.wipeonfork = false,
                    }
                }
                self.merge_around(addr, end);
            }
            MADV_POPULATE_READ | MADV_POPULATE_WRITE => {
                let write = advice == MADV_POPULATE_WRITE;
                if parts.iter().any(|&(_, _, v)| !allows(v.prot, write)) {
                    return Err(Errno::EFAULT);
                }
            }
            // Everything else is advice about paging, merging, forking or dumping: the
            // memory here is resident, unmerged and never paged, so there is nothing
            // to do.
            _ => {}
        }
        if covered {
            Ok(())
        } else {
            Err(Errno::ENOMEM)
        }
    }

    /// In a fork's child (its memory a copy of the parent's): what `MADV_DONTFORK`
    /// marked is gone, what `MADV_WIPEONFORK` marked is zero, as Linux's
    /// `dup_mmap` leaves them.
    pub fn forked<P: Platform>(&mut self, p: &P) {
        let marked: Vec<(u64, Vma)> = self
            .vmas
            .iter()
            .filter(|(_, v)| v.fork != ForkAdvice::default())
            .map(|(&s, v)| (s, *v))
            .collect();
        for (s, v) in marked {
            if v.fork.dontfork {
                // Whole VMAs: nothing is cut, so only a 2 MiB page the platform
                // cannot split could refuse; it then stays, as a copy.
                let _ = self.remove_range(p, s, v.end);
            } else {
                self.zero_backed(p, s, v.end, v.prot);
            }
        }
    }

    /// Zero the backed pages of `[start, end)` whose protection is `prot`.
    pub(super) fn zero_backed<P: Platform>(&mut self, p: &P, start: u64, end: u64, prot: u64) {
        let runs = self.backed_in(start, end);
        for (s, e) in coalesce(&runs) {
            if prot & PROT_WRITE == 0 {
                if self.kprotect(p, s, e - s, PROT_READ | PROT_WRITE).is_err() {
                    // Without tables to make it writable the page keeps its
                    // contents (never a store into a read-only page).
                    continue;
                }
                p.zero(s, e - s);
                let _ = self.kprotect(p, s, e - s, prot);
            } else {
                p.zero(s, e - s);
            }
        }
    }
}
