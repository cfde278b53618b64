//! The TSC rate for the hosted platform's clocks (`BootInfo::tsc_khz`), taken
//! where something already knows it before measuring it: CPUID's TSC leaf
//! (0x15: crystal clock and ratio), the hypervisor's timing leaf (0x40000010),
//! this boot's remembered rate (`/dev/shm/mote-tsc-<uid>`, written by an earlier
//! run of this user and checked against the boot id, its owner and a sane
//! range), and Linux's own calibration as KVM reports it for a new VM
//! (`KVM_GET_TSC_KHZ` on the VM, Linux 6.0 on). Only when none of them answers
//! does a run measure the rate against `CLOCK_MONOTONIC_RAW` over 20 ms
//! (`Measure`) and remember it for the next runs of this boot. A partition asks
//! its vCPU instead (`vmm`).
//!
//! Allows `unsafe`: `rdtsc` and the one KVM ioctl on a VM descriptor.
#![allow(unsafe_code)]

use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};

/// Rates outside this range (kHz) are not believed: 100 MHz to 10 GHz.
const SANE: std::ops::RangeInclusive<u64> = 100_000..=10_000_000;

/// Where a known rate came from (for `MOTE_DEBUG`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Cpuid,
    Hypervisor,
    Remembered,
    Kvm,
}

/// The TSC rate in kHz if something already knows it, without measuring.
pub fn known_khz() -> Option<(u64, Source)> {
    if !invariant() {
        return None;
    }
    cpuid_khz()
        .map(|k| (k, Source::Cpuid))
        .or_else(|| hypervisor_khz().map(|k| (k, Source::Hypervisor)))
        .or_else(|| remembered().map(|k| (k, Source::Remembered)))
        .or_else(|| {
            let k = kvm_khz()?;
            remember(k);
            Some((k, Source::Kvm))
        })
        .filter(|(k, _)| SANE.contains(k))
}

/// Invariant TSC (CPUID 0x80000007 EDX bit 8): the rate does not change with
/// the CPU's frequency, so one number describes it.
fn invariant() -> bool {
    use core::arch::x86_64::__cpuid;
    __cpuid(0x8000_0000).eax >= 0x8000_0007 && __cpuid(0x8000_0007).edx & (1 << 8) != 0
}

/// CPUID leaf 0x15 (Intel SDM vol. 2A, "Time Stamp Counter and Nominal Core
/// Crystal Clock"): TSC = crystal * EBX / EAX, when all three are given.
fn cpuid_khz() -> Option<u64> {
    use core::arch::x86_64::__cpuid;
    if __cpuid(0).eax < 0x15 {
        return None;
    }
    let l = __cpuid(0x15);
    let (den, num, hz) = (u64::from(l.eax), u64::from(l.ebx), u64::from(l.ecx));
    (den != 0 && num != 0 && hz != 0).then(|| hz * num / den / 1000)
}

/// The hypervisor timing leaf 0x40000010 (EAX: TSC kHz), offered by VMware and
/// by KVM when configured so; only if the hypervisor's maximum leaf reaches it.
fn hypervisor_khz() -> Option<u64> {
    use core::arch::x86_64::__cpuid;
    if __cpuid(1).ecx & (1 << 31) == 0 || __cpuid(0x4000_0000).eax < 0x4000_0010 {
        return None;
    }
    Some(u64::from(__cpuid(0x4000_0010).eax)).filter(|&k| k != 0)
}

/// KVM's rate for a new VM: Linux's own calibrated `tsc_khz` on a host with an
/// invariant TSC.
fn kvm_khz() -> Option<u64> {
    let kvm = crate::kvmfd::open().ok()?;
    let vm = kvm.create_vm().ok()?;
    /// `KVM_GET_TSC_KHZ`, `_IO(KVMIO, 0xa3)` (linux/kvm.h); on a VM descriptor
    /// with `KVM_CAP_VM_TSC_CONTROL`.
    const KVM_GET_TSC_KHZ: libc::c_ulong = 0xae_a3;
    // SAFETY: an ioctl without an argument on a VM descriptor we own; it reads
    // no memory of ours and returns the rate or -1.
    let r = unsafe { libc::ioctl(vm.as_raw_fd(), KVM_GET_TSC_KHZ) };
    u64::try_from(r).ok().filter(|&k| k > 0)
}

fn boot_id() -> Option<String> {
    let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    Some(id.trim().to_owned())
}

fn cache_path() -> std::path::PathBuf {
    format!("/dev/shm/mote-tsc-{}", rustix::process::geteuid().as_raw()).into()
}

/// The rate an earlier run of this user remembered for this boot.
fn remembered() -> Option<u64> {
    let path = cache_path();
    let meta = std::fs::symlink_metadata(&path).ok()?;
    if !meta.is_file() || meta.uid() != rustix::process::geteuid().as_raw() {
        return None;
    }
    parse(&std::fs::read_to_string(&path).ok()?, &boot_id()?)
}

/// `"<boot id> <kHz>\n"` for this boot, the rate if sane.
fn parse(text: &str, boot: &str) -> Option<u64> {
    let (id, khz) = text.trim_end().split_once(' ')?;
    let khz: u64 = khz.parse().ok()?;
    (id == boot && SANE.contains(&khz)).then_some(khz)
}

/// Remember `khz` for the next runs of this boot (best effort: a run that
/// cannot write the file measures again next time).
pub fn remember(khz: u64) {
    let (Some(boot), true) = (boot_id(), SANE.contains(&khz)) else {
        return;
    };
    let path = cache_path();
    let tmp = path.with_extension(format!("{}", std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(format!("{boot} {khz}\n").as_bytes()));
    if written.is_err() || std::fs::rename(&tmp, &path).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

/// A measurement of the TSC rate against `CLOCK_MONOTONIC_RAW` over at least
/// `SPAN` between `start` and `khz`; the proxy's set-up in between (mirroring
/// the runtime region, starting the offload thread) counts towards it. libos
/// refreshes its clock references every second, so the small error only shows
/// as a slew within a second.
pub struct Measure(u64, u64);

/// Shortest measurement.
const SPAN: std::time::Duration = std::time::Duration::from_millis(20);

impl Measure {
    fn sample() -> (u64, u64) {
        // SAFETY: rdtsc only reads the time-stamp counter.
        let a = unsafe { core::arch::x86_64::_rdtsc() };
        let ts = rustix::time::clock_gettime(rustix::time::ClockId::MonotonicRaw);
        // SAFETY: as above.
        let b = unsafe { core::arch::x86_64::_rdtsc() };
        (
            a / 2 + b / 2,
            ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64,
        )
    }

    pub fn start() -> Measure {
        let (t, n) = Self::sample();
        Measure(t, n)
    }

    /// The measured rate (waiting out the rest of `SPAN`), remembered for the
    /// next runs of this boot.
    pub fn khz(&self) -> u64 {
        let (_, now) = Self::sample();
        let span = SPAN.as_nanos() as u64;
        if now.saturating_sub(self.1) < span {
            std::thread::sleep(std::time::Duration::from_nanos(span - (now - self.1)));
        }
        let (t1, n1) = Self::sample();
        let ns = n1.saturating_sub(self.1);
        if ns == 0 {
            return 0;
        }
        let khz = (t1.wrapping_sub(self.0) as u128 * 1_000_000 / ns as u128) as u64;
        remember(khz);
        khz
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remembered_rate_counts_only_for_its_boot_and_when_sane() {
        assert_eq!(parse("abc 2600000\n", "abc"), Some(2_600_000));
        assert_eq!(parse("abc 2600000\n", "abd"), None);
        assert_eq!(parse("abc 26\n", "abc"), None);
        assert_eq!(parse("abc 99999999999\n", "abc"), None);
        assert_eq!(parse("abc x\n", "abc"), None);
        assert_eq!(parse("abc", "abc"), None);
        assert_eq!(parse("", "abc"), None);
    }
}
