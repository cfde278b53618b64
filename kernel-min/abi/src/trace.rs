//! The system-call trace (`mote run --trace`): one ring per LWK core in the
//! runtime region (`layout::RUNTIME_TRACE_OFF`), written by the runtime at the end
//! of every call of the application, drained and formatted by the proxy.
//!
//! # Protocol (the only place it is written down)
//!
//! Many producers (every thread the core runs, in any interleaving: a thread may
//! block or be switched away between two steps), one consumer (the proxy's trace
//! thread):
//!
//! * **producer (the runtime):**
//!   1. `i = head.fetch_add(1, Relaxed)` reserves record `i` (at `i % RECORDS`);
//!   2. spins (`pause`) while `i >= tail.load(Acquire) + RECORDS`: the place still
//!      holds a record the proxy has not read (a full ring holds the application
//!      up, it never drops a record);
//!   3. writes the record's fields (Relaxed);
//!   4. `seq.store(i + 1, Release)` commits it.
//! * **consumer (the proxy):** for `t = tail`: reads `seq` of record `t % RECORDS`
//!   (Acquire); `seq == t + 1` means committed: reads the fields, then
//!   `tail.store(t + 1, Release)` gives the place back. Anything else means not
//!   committed yet: it looks again later.
//!
//! The application can write this memory (it is in the runtime region, mapped
//! user-writable), so the proxy takes nothing on trust: it reads at most
//! `RECORDS` records per pass, a `seq` that is not exactly `t + 1` stops the pass,
//! and every field is checked when decoded ([`Record::load`]: enum values,
//! string length and argument index).

use core::mem::{offset_of, size_of};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use static_assertions::const_assert_eq;

use crate::layout::{MAX_CORES, RUNTIME_SIZE, RUNTIME_STACKS_OFF, UPCALL_STACK_SIZE};

/// Bytes of a string argument a record carries (a path, the start of a `write`'s
/// buffer); longer ones are cut and marked.
pub const STR_MAX: usize = 168;

/// Records in one core's ring.
pub const RECORDS: usize = 1023;

/// How the table routed the call.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// Answered in the partition (libos, the thread layer, a wait).
    Local = 0,
    /// Linux ran the call itself (the table forwards it, or a local handler passed
    /// it on unchanged, as `openat` of a path libos does not serve).
    Forwarded = 1,
    /// Refused with `ENOSYS` (it would act on the proxy).
    Refused = 2,
}

/// The string argument's kind.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Text {
    /// None.
    None = 0,
    /// A NUL-terminated string (a path).
    CStr = 1,
    /// The start of a buffer (`write`'s data).
    Buf = 2,
    /// The string could not be read (`EFAULT` territory).
    Unreadable = 3,
}

/// `Record::info` bits.
pub mod info {
    /// Bits 0-1: `Route`.
    pub const ROUTE_MASK: u32 = 0x3;
    /// The call arrived through a trap (a `syscall` instruction that was not
    /// rewritten), not a patched site or the direct entry.
    pub const TRAPPED: u32 = 1 << 2;
    /// Written before the call, which does not return (`exit`, `exit_group`):
    /// `ret` and `ticks` mean nothing.
    pub const NO_RETURN: u32 = 1 << 3;
    /// The string was cut at `STR_MAX` bytes.
    pub const CUT: u32 = 1 << 4;
    /// Bits 8-9: `Text`.
    pub const TEXT_SHIFT: u32 = 8;
    /// Bits 12-14: which argument the string is.
    pub const ARG_SHIFT: u32 = 12;
    /// Bits 16-31: the string's length in bytes.
    pub const LEN_SHIFT: u32 = 16;
}

/// One call.
#[repr(C, align(64))]
pub struct Record {
    /// `i + 1` once record `i` is committed.
    pub seq: AtomicU64,
    /// The application thread (its tid).
    pub tid: AtomicU32,
    /// The system-call number as the application passed it (low 32 bits).
    pub nr: AtomicU32,
    pub args: [AtomicU64; 6],
    /// What the call returned (`rax`: a value or `-errno`).
    pub ret: AtomicU64,
    /// TSC ticks from the runtime's dispatch of the call to its answer.
    pub ticks: AtomicU64,
    /// `info::*` bits.
    pub info: AtomicU32,
    _pad: u32,
    /// The string argument's bytes, packed little-endian.
    pub text: [AtomicU64; STR_MAX / 8],
}

const_assert_eq!(size_of::<Record>(), 256);
const_assert_eq!(offset_of!(Record, args), 16);
const_assert_eq!(offset_of!(Record, ret), 64);
const_assert_eq!(offset_of!(Record, ticks), 72);
const_assert_eq!(offset_of!(Record, info), 80);
const_assert_eq!(offset_of!(Record, text), 88);

/// One core's ring.
#[repr(C, align(64))]
pub struct Ring {
    /// Records reserved so far (producers).
    pub head: AtomicU64,
    _pad0: [u64; 7],
    /// Records read so far (the consumer).
    pub tail: AtomicU64,
    _pad1: [u64; 23],
    pub records: [Record; RECORDS],
}

const_assert_eq!(offset_of!(Ring, tail), 64);
const_assert_eq!(offset_of!(Ring, records), 256);
const_assert_eq!(size_of::<Ring>(), 256 << 10);

/// Offset of the rings in the runtime region: after the upcall stacks, to its end.
pub const RUNTIME_TRACE_OFF: u64 = RUNTIME_STACKS_OFF + MAX_CORES as u64 * UPCALL_STACK_SIZE;

static_assertions::const_assert!(
    RUNTIME_TRACE_OFF + (MAX_CORES * size_of::<Ring>()) as u64 <= RUNTIME_SIZE
);

/// Offset of core `core`'s ring in the runtime region.
pub const fn ring_offset(core: usize) -> u64 {
    RUNTIME_TRACE_OFF + (core * size_of::<Ring>()) as u64
}

/// A call as the runtime records it and the proxy reads it back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub tid: u32,
    pub nr: u32,
    pub args: [u64; 6],
    pub ret: u64,
    pub ticks: u64,
    pub route: Route,
    pub trapped: bool,
    pub no_return: bool,
    /// The string argument: which argument, what kind, its bytes, cut or not.
    pub text: Option<(usize, Text, TextBytes)>,
}

/// A string argument's bytes (at most `STR_MAX`) and whether it was cut.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TextBytes {
    pub bytes: [u8; STR_MAX],
    pub len: usize,
    pub cut: bool,
}

impl TextBytes {
    /// The first `STR_MAX` bytes of `b`.
    pub fn new(b: &[u8], cut: bool) -> Self {
        let len = b.len().min(STR_MAX);
        let mut bytes = [0; STR_MAX];
        bytes[..len].copy_from_slice(&b[..len]);
        TextBytes {
            bytes,
            len,
            cut: cut || b.len() > STR_MAX,
        }
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl Record {
    /// Producer step 3: the fields (the commit is [`Ring::push`]'s).
    fn store(&self, e: &Entry) {
        let r = Ordering::Relaxed;
        self.tid.store(e.tid, r);
        self.nr.store(e.nr, r);
        for (a, v) in self.args.iter().zip(e.args) {
            a.store(v, r);
        }
        self.ret.store(e.ret, r);
        self.ticks.store(e.ticks, r);
        let mut info = e.route as u32;
        if e.trapped {
            info |= info::TRAPPED;
        }
        if e.no_return {
            info |= info::NO_RETURN;
        }
        let mut words = [0u64; STR_MAX / 8];
        if let Some((arg, kind, t)) = &e.text {
            info |= (*kind as u32) << info::TEXT_SHIFT
                | ((*arg as u32) & 7) << info::ARG_SHIFT
                | (t.len as u32) << info::LEN_SHIFT;
            if t.cut {
                info |= info::CUT;
            }
            for (i, w) in words.iter_mut().enumerate() {
                *w = u64::from_le_bytes(t.bytes[i * 8..][..8].try_into().unwrap());
            }
        }
        for (w, v) in self.text.iter().zip(words) {
            w.store(v, r);
        }
        self.info.store(info, r);
    }

    /// Consumer: the fields, checked (the application may have written anything
    /// here). `None`: not a record the runtime could have written.
    pub fn load(&self) -> Option<Entry> {
        let r = Ordering::Relaxed;
        let info = self.info.load(r);
        let route = match info & info::ROUTE_MASK {
            0 => Route::Local,
            1 => Route::Forwarded,
            2 => Route::Refused,
            _ => return None,
        };
        let kind = match (info >> info::TEXT_SHIFT) & 3 {
            0 => Text::None,
            1 => Text::CStr,
            2 => Text::Buf,
            _ => Text::Unreadable,
        };
        let arg = ((info >> info::ARG_SHIFT) & 7) as usize;
        let len = (info >> info::LEN_SHIFT) as usize;
        if arg >= 6 || len > STR_MAX {
            return None;
        }
        let text = if kind == Text::None {
            None
        } else {
            let mut bytes = [0u8; STR_MAX];
            for (i, w) in self.text.iter().enumerate() {
                bytes[i * 8..][..8].copy_from_slice(&w.load(r).to_le_bytes());
            }
            Some((
                arg,
                kind,
                TextBytes {
                    bytes,
                    len,
                    cut: info & info::CUT != 0,
                },
            ))
        };
        Some(Entry {
            tid: self.tid.load(r),
            nr: self.nr.load(r),
            args: core::array::from_fn(|i| self.args[i].load(r)),
            ret: self.ret.load(r),
            ticks: self.ticks.load(r),
            route,
            trapped: info & info::TRAPPED != 0,
            no_return: info & info::NO_RETURN != 0,
            text,
        })
    }
}

/// What one pass of [`Ring::drain`] found.
// Handed by value to the consumer's closure, never stored: the size difference
// costs nothing (and this crate has no allocator to box it).
#[allow(clippy::large_enum_variant)]
#[derive(Debug, PartialEq, Eq)]
pub enum Drained {
    /// A record.
    Entry(Entry),
    /// A committed record whose fields make no sense (written by the application).
    Invalid,
}

impl Ring {
    /// Producer: record `e` (protocol steps 1-4). Waits while the ring is full.
    pub fn push(&self, e: &Entry) {
        let i = self.head.fetch_add(1, Ordering::Relaxed);
        while i
            >= self
                .tail
                .load(Ordering::Acquire)
                .wrapping_add(RECORDS as u64)
        {
            core::hint::spin_loop();
        }
        let rec = &self.records[(i % RECORDS as u64) as usize];
        rec.store(e);
        rec.seq.store(i.wrapping_add(1), Ordering::Release);
    }

    /// Consumer: every committed record in order, at most `RECORDS` of them, each
    /// given back to the producers once `f` has it.
    pub fn drain(&self, mut f: impl FnMut(Drained)) -> usize {
        let mut n = 0;
        let mut t = self.tail.load(Ordering::Relaxed);
        while n < RECORDS {
            let rec = &self.records[(t % RECORDS as u64) as usize];
            if rec.seq.load(Ordering::Acquire) != t.wrapping_add(1) {
                break;
            }
            f(match rec.load() {
                Some(e) => Drained::Entry(e),
                None => Drained::Invalid,
            });
            t = t.wrapping_add(1);
            self.tail.store(t, Ordering::Release);
            n += 1;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn ring() -> Arc<Ring> {
        // SAFETY: Ring is atomics and padding integers: all-zero is an empty ring,
        // as a fresh memfd page holds.
        unsafe { Arc::from_raw(Box::into_raw(Box::<Ring>::new_zeroed().assume_init())) }
    }

    fn entry(i: u64) -> Entry {
        Entry {
            tid: 7,
            nr: (i % 400) as u32,
            args: [i, 1, 2, 3, 4, 5],
            ret: i.wrapping_neg(),
            ticks: i * 3,
            route: if i.is_multiple_of(2) {
                Route::Local
            } else {
                Route::Forwarded
            },
            trapped: i.is_multiple_of(3),
            no_return: false,
            text: i
                .is_multiple_of(5)
                .then(|| (1, Text::CStr, TextBytes::new(b"/etc/passwd", false))),
        }
    }

    #[test]
    fn records_round_trip_in_order_through_a_full_ring() {
        let r = ring();
        let producer = {
            let r = r.clone();
            std::thread::spawn(move || {
                for i in 0..5000 {
                    r.push(&entry(i));
                }
            })
        };
        let mut got = Vec::new();
        while got.len() < 5000 {
            if r.drain(|d| got.push(d)) == 0 {
                std::thread::yield_now();
            }
        }
        producer.join().unwrap();
        for (i, d) in got.into_iter().enumerate() {
            assert_eq!(d, Drained::Entry(entry(i as u64)));
        }
    }

    #[test]
    fn long_strings_are_cut_and_marked() {
        let t = TextBytes::new(&[b'a'; 300], false);
        assert_eq!(t.len, STR_MAX);
        assert!(t.cut);
        let r = ring();
        let mut e = entry(1);
        e.text = Some((0, Text::Buf, t));
        r.push(&e);
        let mut got = None;
        r.drain(|d| got = Some(d));
        assert_eq!(got, Some(Drained::Entry(e)));
    }

    #[test]
    fn what_the_application_scribbled_is_refused() {
        let r = ring();
        r.push(&entry(1));
        // An impossible route value.
        r.records[0].info.store(3, Ordering::Relaxed);
        // A length beyond the record.
        r.push(&entry(2));
        r.records[1].info.store(
            ((STR_MAX as u32) + 1) << info::LEN_SHIFT | 1 << info::TEXT_SHIFT,
            Ordering::Relaxed,
        );
        // An argument index beyond six.
        r.push(&entry(3));
        r.records[2].info.store(
            7 << info::ARG_SHIFT | 1 << info::TEXT_SHIFT,
            Ordering::Relaxed,
        );
        let mut got = Vec::new();
        assert_eq!(r.drain(|d| got.push(d)), 3);
        assert_eq!(got, [Drained::Invalid, Drained::Invalid, Drained::Invalid]);
    }

    #[test]
    fn an_uncommitted_or_forged_sequence_stops_the_pass() {
        let r = ring();
        r.push(&entry(1));
        r.records[0].seq.store(99, Ordering::Relaxed);
        assert_eq!(r.drain(|_| panic!("nothing committed")), 0);
        // A forged head does not make the consumer read more than a ring.
        r.records[0].seq.store(1, Ordering::Relaxed);
        r.head.store(u64::MAX, Ordering::Relaxed);
        assert_eq!(r.drain(|_| {}), 1);
    }

    /// Randomized: a ring whose indices, sequence words and fields the
    /// application scribbled over drains at most `RECORDS` records per pass,
    /// each within the decoder's limits (argument index, text length).
    #[test]
    fn fuzz_drain() {
        use mote_fuzz::{inputs, seed, Rng};
        let mut rng = Rng::new(seed(std::env::var("MOTE_FUZZ_SEED").ok().as_deref()));
        let n = inputs(std::env::var("MOTE_FUZZ_INPUTS").ok().as_deref());
        let r = ring();
        let o = Ordering::Relaxed;
        for _ in 0..n {
            let t = match rng.below(3) {
                0 => r.tail.load(o),
                _ => rng.edgy(),
            };
            r.tail.store(t, o);
            // Commit a few records at the tail, and scribble on one.
            for k in 0..rng.below(4) {
                let i = t.wrapping_add(k);
                let rec = &r.records[(i % RECORDS as u64) as usize];
                rec.seq.store(i.wrapping_add(1), o);
                rec.info.store(rng.next_u64() as u32, o);
            }
            let rec = &r.records[rng.below(RECORDS as u64) as usize];
            match rng.below(4) {
                0 => rec.seq.store(rng.edgy(), o),
                1 => rec.info.store(rng.edgy() as u32, o),
                2 => rec.text[rng.below((STR_MAX / 8) as u64) as usize].store(rng.next_u64(), o),
                _ => rec.args[rng.below(6) as usize].store(rng.edgy(), o),
            }
            let mut got = 0;
            let k = r.drain(|d| {
                got += 1;
                if let Drained::Entry(e) = d {
                    if let Some((arg, _, t)) = &e.text {
                        assert!(*arg < 6 && t.len <= STR_MAX);
                        let _ = t.as_slice();
                    }
                }
            });
            assert!(k == got && k <= RECORDS);
        }
    }
}
