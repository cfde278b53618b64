//! The map log: how libos tells the proxy which guest-physical memory backs which
//! application addresses, so the proxy can map the same memory at the same virtual
//! addresses (the unified address space).
//!
//! # Protocol
//! Single producer (libos, under its address-space lock), single consumer (the
//! proxy's offload threads, under the proxy's mirror lock). The producer writes entry
//! `head % LEN`, then `head.store(head + 1, Release)`. The consumer applies entries
//! `[tail, head)` (Acquire on `head`) before it executes any forwarded call, then
//! `tail.store(head, Release)`. A producer that finds the log full
//! (`head - tail == LEN`) makes an `ikc::Op::Nop` call, which drains it.

use core::mem::size_of;
use core::sync::atomic::{AtomicU64, Ordering};
use static_assertions::const_assert_eq;

/// Entries in the log.
pub const LEN: usize = 2048;

/// `Entry::kind`: `[va, va+len)` is now backed by guest-physical `[gpa, gpa+len)`.
pub const KIND_MAP: u64 = 1;
/// `Entry::kind`: `[va, va+len)` is no longer mapped.
pub const KIND_UNMAP: u64 = 2;

/// `Entry::kind`: `[va, va+len)`, mapped, now has the application's protection
/// `gpa` (Linux's `PROT_*` bits; the field holds no address for this kind). The
/// proxy's mirror gives forwarded calls the same access (`PROT_WRITE`: read and
/// write; `PROT_READ` or `PROT_EXEC`: read; none: no access). A `KIND_MAP`
/// makes its range read-write until a `KIND_PROTECT` after it says otherwise.
pub const KIND_PROTECT: u64 = 3;

/// One change of the application's address space.
#[repr(C)]
pub struct Entry {
    pub kind: AtomicU64,
    pub va: AtomicU64,
    pub len: AtomicU64,
    pub gpa: AtomicU64,
}

/// A decoded entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Change {
    pub kind: u64,
    pub va: u64,
    pub len: u64,
    pub gpa: u64,
}

/// The log, at `ikc::MAPLOG_OFFSET` in the IKC area.
#[repr(C)]
pub struct MapLog {
    pub head: AtomicU64,
    _pad0: [u64; 7],
    pub tail: AtomicU64,
    _pad1: [u64; 7],
    pub entries: [Entry; LEN],
}

const_assert_eq!(size_of::<Entry>(), 32);
const_assert_eq!(size_of::<MapLog>(), 128 + 32 * LEN);

impl MapLog {
    /// Producer: append; returns false when full (drain, then retry).
    pub fn push(&self, c: Change) -> bool {
        let head = self.head.load(Ordering::Relaxed);
        // Wrapping: the application can write `tail` (a corrupt log then looks
        // full until the consumer resets it, `drain`).
        if head.wrapping_sub(self.tail.load(Ordering::Acquire)) >= LEN as u64 {
            return false;
        }
        let e = &self.entries[(head % LEN as u64) as usize];
        e.kind.store(c.kind, Ordering::Relaxed);
        e.va.store(c.va, Ordering::Relaxed);
        e.len.store(c.len, Ordering::Relaxed);
        e.gpa.store(c.gpa, Ordering::Relaxed);
        self.head.store(head + 1, Ordering::Release);
        true
    }

    /// Consumer: apply every pending change with `f`, then release the entries.
    ///
    /// The log lies in memory the application can write. Indices the producer
    /// could not have left — more than `LEN` entries pending, or `tail` ahead
    /// of `head` — are [`Corrupt`]: nothing is applied and the log is emptied
    /// (`tail = head`), so the consumer never loops over 2^64 entries.
    pub fn drain(&self, mut f: impl FnMut(Change)) -> Result<usize, Corrupt> {
        let head = self.head.load(Ordering::Acquire);
        let tail = self.tail.load(Ordering::Relaxed);
        if head.wrapping_sub(tail) > LEN as u64 {
            self.tail.store(head, Ordering::Release);
            return Err(Corrupt { head, tail });
        }
        let n = head.wrapping_sub(tail);
        for k in 0..n {
            let i = tail.wrapping_add(k);
            let e = &self.entries[(i % LEN as u64) as usize];
            f(Change {
                kind: e.kind.load(Ordering::Relaxed),
                va: e.va.load(Ordering::Relaxed),
                len: e.len.load(Ordering::Relaxed),
                gpa: e.gpa.load(Ordering::Relaxed),
            });
        }
        self.tail.store(head, Ordering::Release);
        Ok(n as usize)
    }
}

/// Map-log indices the producer could not have written ([`MapLog::drain`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Corrupt {
    pub head: u64,
    pub tail: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_log() -> Box<MapLog> {
        // SAFETY: MapLog is atomics and integers; all-zero is an empty log, as a
        // fresh memfd page holds.
        unsafe { Box::new_zeroed().assume_init() }
    }

    #[test]
    fn push_drain_wraps_and_reports_full() {
        let log = new_log();
        let c = |i: u64| Change {
            kind: KIND_MAP,
            va: i << 12,
            len: 4096,
            gpa: i << 12,
        };
        for round in 0..3u64 {
            for i in 0..LEN as u64 {
                assert!(log.push(c(round * 10_000 + i)));
            }
            assert!(!log.push(c(0)), "full log refuses");
            let mut seen = Vec::new();
            assert_eq!(log.drain(|ch| seen.push(ch)), Ok(LEN));
            assert_eq!(seen[0], c(round * 10_000));
            assert_eq!(seen[LEN - 1], c(round * 10_000 + LEN as u64 - 1));
        }
        assert_eq!(log.drain(|_| panic!("empty")), Ok(0));
    }

    /// Regression: the application set `head` far ahead of `tail` and the
    /// proxy's drain looped over 2^63 entries (the run hung in the proxy).
    #[test]
    fn overwritten_indices_are_refused_not_looped_over() {
        let log = new_log();
        log.head.store(1 << 63, Ordering::Relaxed);
        let r = log.drain(|_| panic!("nothing is applied"));
        assert_eq!(
            r,
            Err(Corrupt {
                head: 1 << 63,
                tail: 0
            })
        );
        // Emptied: the producer goes on.
        assert_eq!(log.drain(|_| panic!("empty")), Ok(0));
        log.tail.store(5, Ordering::Relaxed);
        log.head.store(3, Ordering::Relaxed);
        assert!(log.drain(|_| panic!("nothing")).is_err());
        assert!(log.push(Change {
            kind: KIND_MAP,
            va: 0,
            len: 4096,
            gpa: 0
        }));
        assert_eq!(log.drain(|_| {}), Ok(1));
    }

    /// Randomized: whatever the application wrote into the indices and the
    /// entries, a drain calls `f` at most `LEN` times, hands over exactly the
    /// entries' fields, and leaves the log empty.
    #[test]
    fn fuzz_drain() {
        use mote_fuzz::{inputs, seed, Rng};
        let mut rng = Rng::new(seed(std::env::var("MOTE_FUZZ_SEED").ok().as_deref()));
        let n = inputs(std::env::var("MOTE_FUZZ_INPUTS").ok().as_deref());
        let log = new_log();
        for _ in 0..n {
            let tail = match rng.below(3) {
                0 => log.head.load(Ordering::Relaxed),
                _ => rng.edgy(),
            };
            let head = match rng.below(3) {
                0 => tail.wrapping_add(rng.below(LEN as u64 + 2)),
                _ => rng.edgy(),
            };
            log.tail.store(tail, Ordering::Relaxed);
            log.head.store(head, Ordering::Relaxed);
            let i = (rng.below(LEN as u64)) as usize;
            let e = &log.entries[i];
            let w = [rng.edgy(), rng.edgy(), rng.edgy(), rng.edgy()];
            e.kind.store(w[0], Ordering::Relaxed);
            e.va.store(w[1], Ordering::Relaxed);
            e.len.store(w[2], Ordering::Relaxed);
            e.gpa.store(w[3], Ordering::Relaxed);
            let mut calls = 0usize;
            let r = log.drain(|_| calls += 1);
            assert!(calls <= LEN);
            match r {
                Ok(k) => assert_eq!((k, head.wrapping_sub(tail)), (calls, calls as u64)),
                Err(c) => assert_eq!((calls, c), (0, Corrupt { head, tail })),
            }
            assert_eq!(log.tail.load(Ordering::Relaxed), head);
        }
    }
}
