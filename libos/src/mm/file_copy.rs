//! Reusing the frames of a private file copy. A private file mapping is a copy:
//! frames filled by forwarded `pread64` calls (`map`). ld.so maps a library
//! whole and read-only first, then each segment over that mapping at the same
//! file offsets (`MAP_FIXED`), so the library's bytes would be read and copied
//! twice (issue 13's start-up: ~3.7 MB for glibc's `libc.so.6`).
//!
//! A read-only private file mapping remembers, on its label, which file (device,
//! inode, size, modification time) and offset its range holds ([`FileCopy`]).
//! The memory stays exactly that file's bytes while it is never writable or
//! executable: a protection change adding either forgets it
//! ([`AddressSpace::forget_copies`], from `change_prot`); `munmap` and any
//! mapping over it drop it with the label; `mremap` moves it with the label and
//! its frames. A later private mapping of the same file at matching offsets
//! over such a range, with nothing else in it, keeps those frames: only its
//! protection changes ([`AddressSpace::reuse_copy`]). Linux shows a private
//! file mapping's untouched pages as the file is when they are first touched;
//! mote as it was when they were copied, with or without this (a file changed
//! in between has another modification time or size, and is read again).

use alloc::vec;

use mote_abi::errno::Errno;

use crate::platform::Platform;
use crate::uapi::mman::*;
use crate::uapi::stat;

use super::vma::split;
use super::{AddressSpace, ForkAdvice, VmaKind};

/// A file's identity and the offset of the byte at a label's start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FileCopy {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (u64, u64),
    /// File offset of the label's first byte.
    pub(super) off: u64,
}

impl FileCopy {
    fn same_file(&self, o: &FileCopy) -> bool {
        (self.dev, self.ino, self.size, self.mtime) == (o.dev, o.ino, o.size, o.mtime)
    }
}

/// `struct stat` offsets not in `uapi::stat` (`arch/x86/include/uapi/asm/stat.h`).
const ST_DEV: usize = 0;
const ST_INO: usize = 8;
const ST_MTIME: usize = 88;
const ST_MTIME_NSEC: usize = 96;

/// The identity of the regular file behind `fd` (a forwarded `fstat`), offset
/// `off`; `None` when it is not a regular file or `fstat` fails.
pub(super) fn file_id<P: Platform>(p: &P, fd: u64, off: u64) -> Option<FileCopy> {
    let mut st = vec![0u8; stat::SIZE];
    let r = p.fstat(fd, &mut st);
    // The proxy wrote `st` (unified address space): not a value the compiler knows.
    let st = core::hint::black_box(st);
    let word = |at: usize| u64::from_le_bytes(st[at..at + 8].try_into().expect("8 bytes"));
    let mode = u32::from_le_bytes(st[stat::ST_MODE..][..4].try_into().expect("4 bytes"));
    (r >= 0 && mode & stat::S_IFMT == stat::S_IFREG).then(|| FileCopy {
        dev: word(ST_DEV),
        ino: word(ST_INO),
        size: word(stat::ST_SIZE),
        mtime: (word(ST_MTIME), word(ST_MTIME_NSEC)),
        off,
    })
}

impl AddressSpace {
    /// Does any label in `[start, end)` remember a file copy?
    pub(super) fn has_copies(&self, start: u64, end: u64) -> bool {
        let first = self
            .labels
            .range(..=start)
            .next_back()
            .map_or(start, |(&s, _)| s);
        self.labels
            .range(first..end)
            .any(|(_, l)| l.end > start && l.copy.is_some())
    }

    /// Does `[start, end)` hold, unchanged, the bytes of file `id` from its
    /// offset: labels remembering that file at matching offsets all through,
    /// private file VMAs never made writable or executable since, all backed,
    /// with no `madvise` fork advice or memory policy of their own?
    pub(super) fn holds_copy(&self, start: u64, end: u64, id: &FileCopy) -> bool {
        let mut at = start;
        while at < end {
            let Some((&s, l)) = self.labels.range(..=at).next_back() else {
                return false;
            };
            match &l.copy {
                Some(c)
                    if l.end > at
                        && c.same_file(id)
                        && c.off + (at - s) == id.off + (at - start) =>
                {
                    at = l.end
                }
                _ => return false,
            }
        }
        let mut at = start;
        while at < end {
            match self.vma_at(at) {
                Some((_, v))
                    if v.kind == VmaKind::File
                        && !v.shared
                        && !v.growsdown
                        && v.prot & (PROT_WRITE | PROT_EXEC) == 0
                        && v.fork == ForkAdvice::default()
                        && v.policy == 0 =>
                {
                    at = v.end
                }
                _ => return false,
            }
        }
        self.backed_bytes(start, end) == end - start
    }

    /// `[start, end)` holds a file copy ([`AddressSpace::holds_copy`]): make it
    /// the new private mapping of those bytes with `prot`, on the same frames.
    pub(super) fn reuse_copy<P: Platform>(
        &mut self,
        p: &P,
        start: u64,
        end: u64,
        prot: u64,
    ) -> Result<(), Errno> {
        self.change_prot(p, start, end, prot)?;
        self.unlabel(start, end);
        Ok(())
    }

    /// The label of `[start, end)` (just set) remembers that the range holds
    /// file `id`'s bytes from its offset.
    pub(super) fn mark_copy(&mut self, start: u64, end: u64, id: FileCopy) {
        if let Some(l) = self.labels.get_mut(&start) {
            if l.end == end {
                l.copy = Some(id);
            }
        }
    }

    /// `[start, end)` may change (it becomes writable or executable): its
    /// labels no longer vouch for its bytes.
    pub(super) fn forget_copies(&mut self, start: u64, end: u64) {
        if !self.has_copies(start, end) {
            return;
        }
        split(&mut self.labels, start);
        split(&mut self.labels, end);
        for (_, l) in self.labels.range_mut(start..end) {
            l.copy = None;
        }
    }
}
