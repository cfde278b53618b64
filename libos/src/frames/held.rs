//! Which 2 MiB chunks of guest memory may hold data: one bit per chunk of
//! guest-physical memory, from address 0, set when a frame in the chunk is
//! handed out and cleared when the whole chunk is back in the pool. `fork`'s
//! copy reads it (`Op::ForkProcess` `args[4..6]`, `shims/src/rt/fork.rs`) and
//! skips the pool's chunks whose bit is clear: nothing of the application can
//! be there, because a chunk that comes back is dirty in the pool and zeroed
//! by whoever is handed it next (`Run::zeroed`), in the fork's child too.
//!
//! A chunk handed out stays set whether or not anything was written in it:
//! memory is mapped before use (the hosted platform populates its page
//! tables, the partition's mirror allocates its host pages), so no page table
//! tells a chunk the application never wrote from one it did, and the copy
//! reads it to find out (docs/performance.md says why no cheaper record
//! exists).

use alloc::vec::Vec;

use mote_abi::layout::LARGE_PAGE_SIZE;

/// The record: bit `i` of word `i / 64` is chunk `[i * 2 MiB, (i + 1) * 2 MiB)`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Held {
    words: Vec<u64>,
}

impl Held {
    /// A record for guest-physical memory `[0, end)`, nothing held.
    pub fn new(end: u64) -> Self {
        let chunks = end.div_ceil(LARGE_PAGE_SIZE);
        Held {
            words: alloc::vec![0; chunks.div_ceil(64) as usize],
        }
    }

    /// `[gpa, gpa+len)` was handed out: every chunk it touches may hold data.
    pub fn hold(&mut self, gpa: u64, len: u64) {
        if len == 0 {
            return;
        }
        let first = gpa / LARGE_PAGE_SIZE;
        let last = (gpa + len - 1) / LARGE_PAGE_SIZE;
        for c in first..=last {
            if let Some(w) = self.words.get_mut((c / 64) as usize) {
                *w |= 1 << (c % 64);
            }
        }
    }

    /// `[gpa, gpa+len)` is free in the pool: the chunks wholly inside it hold
    /// nothing of the application's.
    pub fn release(&mut self, gpa: u64, len: u64) {
        let first = gpa.div_ceil(LARGE_PAGE_SIZE);
        let end = (gpa + len) / LARGE_PAGE_SIZE;
        for c in first..end {
            if let Some(w) = self.words.get_mut((c / 64) as usize) {
                *w &= !(1 << (c % 64));
            }
        }
    }

    /// May the chunk holding `gpa` hold data? (Beyond the record: yes.)
    pub fn may_hold(&self, gpa: u64) -> bool {
        let c = gpa / LARGE_PAGE_SIZE;
        self.words
            .get((c / 64) as usize)
            .is_none_or(|w| w & (1 << (c % 64)) != 0)
    }

    /// The words, for the proxy to read.
    pub fn words(&self) -> &[u64] {
        &self.words
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: u64 = 1 << 20;

    #[test]
    fn a_frame_holds_its_chunk_until_the_whole_chunk_is_free() {
        let mut h = Held::new(64 * MB);
        assert_eq!(h.words().len(), 1);
        assert!(!h.may_hold(4 * MB));
        // One 4 KiB frame near the end of chunk 2, a run across chunks 3-4.
        h.hold(6 * MB - 4096, 4096);
        h.hold(7 * MB, 2 * MB);
        assert!(h.may_hold(4 * MB) && h.may_hold(6 * MB) && h.may_hold(8 * MB));
        assert!(!h.may_hold(2 * MB) && !h.may_hold(10 * MB));
        // A free run that covers chunk 3 only in part leaves it held.
        h.release(7 * MB, MB);
        assert!(h.may_hold(6 * MB));
        // Chunks wholly inside a free run are released.
        h.release(4 * MB, 6 * MB);
        assert!(!h.may_hold(4 * MB) && !h.may_hold(6 * MB) && !h.may_hold(8 * MB));
        // Beyond the record: may hold (nothing is skipped that was not recorded).
        assert!(h.may_hold(128 * MB));
        h.hold(128 * MB, MB); // ignored, out of range
        assert_eq!(h.words().len(), 1);
    }
}
