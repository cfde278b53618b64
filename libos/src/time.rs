//! The partition's clocks without the proxy: `CLOCK_REALTIME`, `CLOCK_MONOTONIC`
//! (and their `_COARSE`, `_RAW` and `BOOTTIME` variants), `gettimeofday` and `time`
//! are read from the TSC, which runs natively at CPL3 in the partition.
//!
//! Linux's clocks are the reference: libos reads each of them once through the
//! proxy, bracketed by two TSC reads (so the pair is exact to half a forwarded call,
//! ~0.25 µs), and converts TSC ticks with the frequency KVM reports
//! (`BootInfo::tsc_khz`). Linux slews its clocks (NTP) and the nominal TSC rate is
//! not exact either, so the pair is refreshed once a second of TSC time; a refresh
//! never makes `CLOCK_MONOTONIC` go backwards (values are clamped to the last one
//! returned). Without a known TSC rate, every read is forwarded.

use syscalls::Sysno;

use crate::platform::Platform;

/// Clock ids, `include/uapi/linux/time.h`.
pub mod id {
    pub const REALTIME: u64 = 0;
    pub const MONOTONIC: u64 = 1;
    pub const MONOTONIC_RAW: u64 = 4;
    pub const REALTIME_COARSE: u64 = 5;
    pub const MONOTONIC_COARSE: u64 = 6;
    pub const BOOTTIME: u64 = 7;
}

/// Nanoseconds per second.
const NS: u64 = 1_000_000_000;

/// Which of the two kept references a clock derives from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Base {
    Real,
    Mono,
}

fn base_of(clock: u64) -> Option<Base> {
    match clock {
        id::REALTIME | id::REALTIME_COARSE => Some(Base::Real),
        // BOOTTIME equals MONOTONIC while nothing suspends the partition.
        id::MONOTONIC | id::MONOTONIC_RAW | id::MONOTONIC_COARSE | id::BOOTTIME => Some(Base::Mono),
        _ => None,
    }
}

/// A reference pair: the TSC and Linux's clock at the same moment.
#[derive(Clone, Copy, Debug, Default)]
struct Ref {
    tsc: u64,
    ns: u64,
}

/// The clocks of one partition.
#[derive(Debug, Default)]
pub struct Clock {
    /// TSC ticks per millisecond (0: unknown, forward every read).
    khz: u64,
    real: Option<Ref>,
    mono: Option<Ref>,
    /// Largest `CLOCK_MONOTONIC` value handed out.
    last_mono: u64,
}

impl Clock {
    /// Clocks over a TSC of `tsc_khz` (0 if unknown).
    pub fn new(tsc_khz: u64) -> Self {
        Clock {
            khz: tsc_khz,
            ..Default::default()
        }
    }

    /// Nanoseconds of `clock`, or `None` when it is not a clock kept here (or the
    /// TSC rate is unknown): the caller forwards.
    pub fn now<P: Platform>(&mut self, p: &P, clock: u64) -> Option<u64> {
        let base = base_of(clock)?;
        if self.khz == 0 {
            return None;
        }
        let tsc = p.tsc();
        let stale = |r: &Option<Ref>| r.is_none_or(|r| tsc.wrapping_sub(r.tsc) > self.khz * 1000);
        if stale(&self.real) || stale(&self.mono) {
            self.resync(p)?;
        }
        let r = match base {
            Base::Real => self.real?,
            Base::Mono => self.mono?,
        };
        let ns = r.ns + ticks_to_ns(tsc.saturating_sub(r.tsc), self.khz);
        if base == Base::Mono {
            self.last_mono = self.last_mono.max(ns);
            return Some(self.last_mono);
        }
        Some(ns)
    }

    /// Read Linux's clocks through the proxy, each between two TSC reads.
    fn resync<P: Platform>(&mut self, p: &P) -> Option<()> {
        let mut ts = [0u8; 16];
        let mut read = |clock: u64| -> Option<Ref> {
            let t0 = p.tsc();
            let r = p.forward(
                Sysno::clock_gettime as u64,
                [clock, p.addr_of(&ts), 0, 0, 0, 0],
            );
            let t1 = p.tsc();
            // The proxy wrote `ts` through the unified address space.
            ts = core::hint::black_box(ts);
            if r != 0 {
                return None;
            }
            let sec = u64::from_le_bytes(ts[0..8].try_into().ok()?);
            let nsec = u64::from_le_bytes(ts[8..16].try_into().ok()?);
            Some(Ref {
                tsc: t0 + t1.wrapping_sub(t0) / 2,
                ns: sec * NS + nsec,
            })
        };
        let real = read(id::REALTIME)?;
        let mono = read(id::MONOTONIC)?;
        self.real = Some(real);
        self.mono = Some(mono);
        Some(())
    }
}

fn ticks_to_ns(ticks: u64, khz: u64) -> u64 {
    (u128::from(ticks) * 1_000_000 / u128::from(khz)) as u64
}

/// `struct timespec` bytes for `ns`.
pub fn timespec(ns: u64) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[0..8].copy_from_slice(&(ns / NS).to_le_bytes());
    b[8..16].copy_from_slice(&(ns % NS).to_le_bytes());
    b
}

/// `struct timeval` bytes for `ns`.
pub fn timeval(ns: u64) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[0..8].copy_from_slice(&(ns / NS).to_le_bytes());
    b[8..16].copy_from_slice(&((ns % NS) / 1000).to_le_bytes());
    b
}

/// Whether `clock` is one libos keeps (else forwarded).
pub fn is_local(clock: u64) -> bool {
    base_of(clock).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_convert_exactly() {
        assert_eq!(ticks_to_ns(2_300_000, 2_300_000), 1_000_000);
        assert_eq!(ticks_to_ns(2_300_000_000 * 3600, 2_300_000), 3600 * NS);
    }

    #[test]
    fn timespec_and_timeval_split_seconds() {
        let t = timespec(5 * NS + 123_456_789);
        assert_eq!(u64::from_le_bytes(t[0..8].try_into().unwrap()), 5);
        assert_eq!(
            u64::from_le_bytes(t[8..16].try_into().unwrap()),
            123_456_789
        );
        let v = timeval(5 * NS + 123_456_789);
        assert_eq!(u64::from_le_bytes(v[8..16].try_into().unwrap()), 123_456);
    }

    #[test]
    fn only_the_kept_clocks_are_local() {
        assert!(is_local(id::REALTIME) && is_local(id::MONOTONIC) && is_local(id::BOOTTIME));
        assert!(
            !is_local(2),
            "CLOCK_PROCESS_CPUTIME_ID is Linux's to answer"
        );
        assert!(
            !is_local(u64::MAX - 10),
            "dynamic (fd) clocks are forwarded"
        );
    }
}
