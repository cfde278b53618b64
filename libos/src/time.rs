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
//! returned, and a new `CLOCK_MONOTONIC` reference starts where the old one had
//! got to). Without a known TSC rate, every read is forwarded.
//!
//! The same references and formula serve the application's vDSO
//! ([`crate::vdso`]): after each refresh they are published in its data page, so a
//! clock read there and one answered here agree to the nanosecond, and
//! `CLOCK_MONOTONIC` never goes backwards whichever way it is read.

use syscalls::Sysno;

use crate::platform::Platform;

/// Clock ids, `include/uapi/linux/time.h`.
pub mod id {
    pub const REALTIME: u64 = 0;
    pub const MONOTONIC: u64 = 1;
    pub const PROCESS_CPUTIME_ID: u64 = 2;
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
    /// ns = ticks * mult >> 32 ([`mult_for`]).
    mult: u64,
    real: Option<Ref>,
    mono: Option<Ref>,
    /// Largest `CLOCK_MONOTONIC` value handed out.
    last_mono: u64,
    /// The vDSO data page the references are published to (0: none).
    vdata: u64,
    /// The runtime's direct entry, for the vDSO's calls back into libos.
    direct: u64,
    /// The data page's sequence byte (odd while an update is written).
    seq: u8,
}

impl Clock {
    /// Clocks over a TSC of `tsc_khz` (0 if unknown).
    pub fn new(tsc_khz: u64) -> Self {
        Clock {
            khz: tsc_khz,
            mult: mult_for(tsc_khz),
            ..Default::default()
        }
    }

    /// TSC ticks after which a reference is refreshed: one second, or less if
    /// `ticks * mult` would not fit 64 bits (the vDSO's multiply) — a TSC
    /// above 4.29 GHz.
    fn max_ticks(&self) -> u64 {
        (self.khz * 1000).min(u64::MAX.checked_div(self.mult).unwrap_or(0))
    }

    /// Publish to the vDSO data page at `vdata` from now on (`direct`: the
    /// runtime's direct entry, for the vDSO's fallback; 0 for `syscall`).
    pub fn attach_vdso<P: Platform>(&mut self, p: &P, vdata: u64, direct: u64) {
        self.vdata = vdata;
        self.direct = direct;
        self.seq = 0;
        self.publish(p);
    }

    /// Whether references are published to a vDSO data page.
    pub fn has_vdso(&self) -> bool {
        self.vdata != 0
    }

    /// Stop publishing (the application unmapped or replaced the data page).
    pub fn detach_vdso(&mut self) {
        self.vdata = 0;
    }

    /// Write the references to the vDSO's data page, under its sequence byte:
    /// odd, the data, even. Each write is its own call to the platform, finished
    /// before the next starts, so a reader that sees the same even byte before
    /// and after reading the data read one consistent update.
    fn publish<P: Platform>(&mut self, p: &P) {
        if self.vdata == 0 {
            return;
        }
        let (mult, real, mono) = match (self.real, self.mono) {
            (Some(r), Some(m)) if self.khz != 0 => (self.mult, r, m),
            _ => (0, Ref::default(), Ref::default()),
        };
        let data = crate::vdso::VData {
            seq: 0,
            mult,
            max_ticks: self.max_ticks(),
            real: [real.tsc, real.ns / NS, real.ns % NS],
            mono: [mono.tsc, mono.ns / NS, mono.ns % NS],
            direct: self.direct,
        }
        .to_bytes();
        self.seq = self.seq.wrapping_add(1) | 1;
        if p.poke(self.vdata, &[self.seq]).is_err() {
            self.vdata = 0;
            return;
        }
        // Even if the data could not be written, never leave readers spinning on
        // an odd sequence.
        let written = p.poke(self.vdata + 8, &data[8..]).is_ok();
        self.seq = self.seq.wrapping_add(1);
        let _ = p.poke(self.vdata, &[self.seq]);
        if !written {
            self.vdata = 0;
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
        let max = self.max_ticks();
        let stale = |r: &Option<Ref>| r.is_none_or(|r| tsc.wrapping_sub(r.tsc) > max);
        if stale(&self.real) || stale(&self.mono) {
            self.resync(p)?;
            self.publish(p);
        }
        let r = match base {
            Base::Real => self.real?,
            Base::Mono => self.mono?,
        };
        let ns = r.ns + ticks_to_ns(tsc.saturating_sub(r.tsc), self.mult);
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
        let mut mono = read(id::MONOTONIC)?;
        // Start where the old reference had got to, plus the one nanosecond the
        // rounding of two conversions can lose: every value computed from the new
        // reference is then at least what the old one gives for the same TSC.
        if let Some(old) = self.mono {
            let reached = old.ns + ticks_to_ns(mono.tsc.saturating_sub(old.tsc), self.mult) + 1;
            mono.ns = mono.ns.max(reached);
        }
        self.real = Some(real);
        self.mono = Some(mono);
        Some(())
    }
}

/// The 32.32 fixed-point ns-per-tick factor for a TSC of `khz`, rounded up (the
/// vDSO computes `ticks * mult >> 32` with one multiply; over the one second a
/// reference lives, the rounding adds less than a nanosecond).
fn mult_for(khz: u64) -> u64 {
    if khz == 0 {
        return 0;
    }
    ((1_000_000u128 << 32).div_ceil(u128::from(khz))) as u64
}

fn ticks_to_ns(ticks: u64, mult: u64) -> u64 {
    ((u128::from(ticks) * u128::from(mult)) >> 32) as u64
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

/// A `struct timespec` as nanoseconds; `EINVAL` for a negative time or
/// nanoseconds out of range, as Linux's sleeps and timeouts say.
pub fn parse_timespec(b: &[u8; 16]) -> Result<u64, mote_abi::errno::Errno> {
    let sec = i64::from_le_bytes(b[..8].try_into().expect("8 bytes"));
    let nsec = i64::from_le_bytes(b[8..].try_into().expect("8 bytes"));
    if sec < 0 || !(0..1_000_000_000).contains(&nsec) {
        return Err(mote_abi::errno::Errno::EINVAL);
    }
    Ok((sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(nsec as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_convert_exactly_over_a_reference_lifetime() {
        for khz in [1_000_000, 2_300_000, 2_994_375, 3_700_001] {
            let m = mult_for(khz);
            assert_eq!(ticks_to_ns(khz, m), 1_000_000, "{khz} kHz");
            let second = ticks_to_ns(khz * 1000, m);
            assert!((NS..=NS + 1).contains(&second), "{khz} kHz: {second}");
        }
    }

    #[test]
    fn monotonic_never_goes_back_when_a_refresh_finds_linux_behind() {
        // Linux's clock (the fake answers 0 ns every time) stands still while the
        // TSC runs: each refresh must start where the old reference had got to.
        let p = crate::fake::FakePlatform::new();
        p.st.borrow_mut()
            .replies
            .insert(Sysno::clock_gettime as u64, 0);
        let mut c = Clock::new(1000);
        let mut last = 0;
        let mut reference: Option<Ref> = None;
        for _ in 0..5000 {
            let ns = c.now(&p, id::MONOTONIC).expect("kept clock");
            assert!(ns >= last, "{ns} after {last}");
            last = ns;
            // The reference itself (what the vDSO computes from, without libos's
            // clamp) never falls behind the one it replaces.
            let new = c.mono.unwrap();
            if let Some(old) = reference.filter(|o| o.tsc != new.tsc) {
                let reached = old.ns + ticks_to_ns(new.tsc - old.tsc, c.mult);
                assert!(new.ns > reached, "{new:?} behind {old:?}");
            }
            reference = Some(new);
        }
        let refreshes = p
            .forwarded_nrs()
            .iter()
            .filter(|&&n| n == Sysno::clock_gettime as u64)
            .count();
        assert!(refreshes >= 8, "only {refreshes} reads of Linux's clocks");
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
