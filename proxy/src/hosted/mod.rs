//! The Linux-hosted platform, proxy side (`mote run --platform hosted`, issue 6):
//! the application runs in a second Linux process, a child of the proxy, that
//! holds the same runtime (libos + shims) the partition runs, instead of in a KVM
//! partition.
//!
//! How the child comes to be: the proxy prepares guest memory as for a partition
//! (the runtime image relocated into the memfd, `BootInfo`, argv block, IKC area),
//! mirrors the boot regions at their fixed addresses and starts the main thread's
//! offload server; then it `fork`s. The child inherits the reservation of the
//! application's range and the shared memfd mappings of the boot regions at the
//! same addresses, so the runtime is already in place: the child makes the
//! runtime's text executable, closes every descriptor but the memfd (descriptors
//! are the proxy's), and jumps to the runtime's `mote_hosted_start` on core 0's
//! upcall stack. The runtime starts one Linux thread per further LWK core and
//! pins each core's thread to its host CPU (`mote_abi::hosted::HostedInfo`). It
//! never returns into the proxy's code; from then on only the runtime's text may
//! make system calls (Syscall User Dispatch, set up by the runtime), so nothing
//! of the forked proxy's libc can act behind libos's back.
//!
//! Everything else is the partition's: the runtime's `Platform` over kernel calls,
//! which `shims/src/rt/hosted.rs` carries out with Linux calls; the offload
//! servers (shared futexes: the requester is another process); the map log and
//! the mirror; shared file mappings (`passthrough`, without memory slots: the
//! child maps the same file through its own descriptor of the proxy's, taken
//! with `pidfd_getfd`); signals from outside (the router kicks the child's
//! threads instead of vCPUs, `signals::register_hosted`). The run ends on the
//! first event, as with KVM; the child is then killed and reaped before the
//! proxy exits. A child that dies without telling the proxy (SIGKILL from
//! outside, a runtime crash) ends the run with what killed it.
//!
//! The raw parts (forking the proxy, the child's jump into the runtime, reaping
//! it, the Syscall User Dispatch probe, the TSC) are `process`'s; this module
//! prepares memory and drives the child's life.

mod process;

pub use process::dispatch_available;

use std::os::fd::AsRawFd;
use std::sync::mpsc::Sender;

use rustix::process::{PTracer, PidfdFlags, Signal};
use std::sync::Arc;
use std::thread::JoinHandle;

use mote_abi::boot::BootInfo;
use mote_abi::hosted::{HostedInfo, HOSTED_INFO_GPA, HOSTED_MAGIC};
use mote_abi::layout::*;

use crate::boot::{self, BootParams, PlatformBoot};
use crate::cpus::lwk_host_cpu;
use crate::event::Event;
use crate::guest::GuestMem;
use crate::passthrough::{MemSlots, Passthrough};
use crate::platform::Platform;

/// Where the runtime image goes in guest memory (no kernel-min below it here).
const RUNTIME_GPA: u64 = KERNEL_GPA;
const _: () = assert!(RUNTIME_GPA.is_multiple_of(LARGE_PAGE_SIZE));

/// Where Linux counts its 2 MiB hugetlbfs pages.
const HUGETLB_2M: &str = "/sys/kernel/mm/hugepages/hugepages-2048kB";

/// The least of a run's memory kept on ordinary (4 KiB-mappable) pages: the
/// runtime, program images, small mappings, the ends of large ones and split
/// 2 MiB pages come from there.
const SMALL_MIN: u64 = 256 << 20;

/// 2 MiB hugetlbfs pages a new reservation can take now (free less reserved);
/// 0 where Linux has none (`/proc/sys/vm/nr_hugepages` is 0).
pub fn hugetlb_pages_free() -> u64 {
    let read = |f: &str| {
        std::fs::read_to_string(format!("{HUGETLB_2M}/{f}"))
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    read("free_hugepages").saturating_sub(read("resv_hugepages"))
}

/// How much of a hosted run's `mem` goes on 2 MiB hugetlbfs pages, with
/// `free_pages` of them free: none for `--page-size 4k`; otherwise as much as is
/// free, keeping a quarter of `mem` (at least `SMALL_MIN`) on ordinary pages.
pub fn large_memory(mem: u64, page_size: u64, free_pages: u64) -> u64 {
    if page_size != 0 && page_size < LARGE_PAGE_SIZE {
        return 0;
    }
    let small = (mem / 4).max(SMALL_MIN).min(mem);
    let large = (mem - small).min(free_pages.saturating_mul(LARGE_PAGE_SIZE));
    large / LARGE_PAGE_SIZE * LARGE_PAGE_SIZE
}

/// The hosted platform's guest memory: `mem` bytes, with 2 MiB hugetlbfs pages
/// where Linux has them free (`large_memory`), else all ordinary shared memory.
pub fn guest_memory(mem: u64, page_size: u64) -> Result<GuestMem, crate::guest::GuestMemError> {
    let large = large_memory(mem, page_size, hugetlb_pages_free());
    match GuestMem::with_large(mem, large) {
        // hugetlbfs memory could not be set up at all: go without.
        Err(_) if large > 0 => GuestMem::new(mem),
        r => r,
    }
}

/// Failure to set up the hosted platform.
#[derive(Debug, thiserror::Error)]
pub enum HostedError {
    #[error(
        "--platform hosted needs Syscall User Dispatch (Linux 5.11 or later, \
         CONFIG_GENERIC_ENTRY): {0}"
    )]
    NoDispatch(std::io::Error),
    #[error("--mem {mem} MiB is too small: the runtime needs {need} MiB")]
    TooSmall { mem: u64, need: u64 },
    #[error(transparent)]
    Boot(#[from] boot::BootError),
    #[error("cannot start the application's process (fork): {0}")]
    Fork(std::io::Error),
}

/// A prepared, not yet started application process.
pub struct Hosted {
    guest: Arc<GuestMem>,
    entry: u64,
    /// The application's process: a pidfd of it (signals reach that process even
    /// after the waiter reaped it, never a recycled pid) and its waiter.
    child: Option<(std::os::fd::OwnedFd, JoinHandle<Option<u64>>)>,
    /// The runtime's count of trap signals (`MOTE_HOSTED_TRAPS`), mirrored here.
    traps_va: u64,
    /// Page faults of the ended application's process (from `wait4`).
    faults: Option<u64>,
    /// The TSC rate: known at once, or measured while the proxy sets up the
    /// rest (None: a forked child's, whose `BootInfo` has it already).
    tsc: Option<Tsc>,
}

/// Where the TSC rate comes from.
enum Tsc {
    Known(u64),
    Measuring(crate::tsc::Measure),
}

/// The runtime's entry and trap counter of this run (for a forked child's
/// `Hosted`, which loads nothing).
static RUNTIME: std::sync::OnceLock<(u64, u64)> = std::sync::OnceLock::new();

impl Hosted {
    /// Load the runtime into guest memory and write its `BootInfo`.
    pub fn new(
        guest: Arc<GuestMem>,
        cores: usize,
        params: &BootParams,
    ) -> Result<Hosted, HostedError> {
        dispatch_available().map_err(HostedError::NoDispatch)?;
        let pool_start = RUNTIME_GPA + RUNTIME_SIZE;
        if pool_start + (16 << 20) > guest.size() {
            return Err(HostedError::TooSmall {
                mem: guest.size() >> 20,
                need: (pool_start >> 20) + 16,
            });
        }
        let runtime = boot::load_image(
            &guest,
            "runtime",
            &crate::images::chosen().runtime.bytes,
            RUNTIME_GPA,
            RUNTIME_VA,
            RUNTIME_IMAGE_MAX,
            &["mote_hosted_start", "MOTE_HOSTED_TRAPS"],
        )?;
        crate::timeline::mark("runtime loaded");
        let (hwcap, hwcap2) = rustix::param::linux_hwcap();
        let (hwcap, hwcap2) = (hwcap as u64, hwcap2 as u64);
        let mut page_size = params.page_size;
        if page_size == HUGE_PAGE_SIZE {
            crate::say!(
                "mote: --page-size 1g: the hosted platform maps memory with 2 MiB hugetlbfs pages at most; using 2m"
            );
            page_size = LARGE_PAGE_SIZE;
        }
        let info = boot::boot_info(
            params,
            &PlatformBoot {
                cores,
                mem_size: guest.size(),
                pool_start,
                large_pool_start: guest.large_start().unwrap_or(0),
                runtime_gpa: RUNTIME_GPA,
                runtime_entry: runtime.symbols[0],
                runtime_text_start: runtime.text_start,
                runtime_text_end: runtime.text_end,
                runtime_trap_entry: 0,
                runtime_syscall_entry: 0,
                runtime_image_end: runtime.end,
                // No page tables: Linux's are the application's.
                pml4_gpa: 0,
                pt_pool_next: PT_POOL_END,
                // HWCAP2_FSGSBASE: Linux enabled wrfsbase/wrgsbase for user code.
                fsgsbase: hwcap2 & 2 != 0,
                hwcap,
                hwcap2,
                page_size,
            },
        );
        // tsc_khz is written at `start` (measured meanwhile if nothing knows it).
        boot::write_boot_info(&guest, &info);
        let mut hosted = HostedInfo {
            magic: HOSTED_MAGIC,
            guest_fd: guest.fd() as u64,
            large_fd: guest.large_fd().unwrap_or(-1) as u64,
            large_gpa: guest.large_start().unwrap_or(0),
            host_cpu: [0; MAX_CORES],
        };
        for (i, cpu) in hosted.host_cpu.iter_mut().enumerate().take(cores) {
            *cpu = lwk_host_cpu(i) as u32;
        }
        guest.write_plain(HOSTED_INFO_GPA, &hosted);
        let _ = RUNTIME.set((runtime.symbols[0], runtime.symbols[1]));
        Ok(Hosted {
            guest,
            entry: runtime.symbols[0],
            child: None,
            traps_va: runtime.symbols[1],
            faults: None,
            tsc: Some(match crate::tsc::known_khz() {
                Some((khz, source)) => {
                    crate::note!("mote: TSC: {khz} kHz ({source:?})");
                    Tsc::Known(khz)
                }
                None => Tsc::Measuring(crate::tsc::Measure::start()),
            }),
        })
    }

    /// The platform of a forked child's run (`offload::fork`): `guest` is the
    /// copy of the parent's memory, runtime and `BootInfo` included, where the
    /// runtime resumes the thread that forked. None on the partition.
    pub fn forked_child(guest: Arc<GuestMem>) -> Option<Hosted> {
        let &(entry, traps_va) = RUNTIME.get()?;
        Some(Hosted {
            guest,
            entry,
            child: None,
            traps_va,
            faults: None,
            tsc: None,
        })
    }

    /// Guest-physical base of the runtime region (mirrored at `RUNTIME_VA`).
    pub fn runtime_gpa(&self) -> u64 {
        RUNTIME_GPA
    }

    /// Shared file mappings: the proxy maps the file as for a partition (its
    /// mirror) and hands out a pass-through range, but there is no memory slot to
    /// register; the application's process maps the same file itself, through
    /// its own descriptor of the proxy's (`pidfd_getfd`, see the runtime's
    /// `rt::hosted`).
    pub fn passthrough() -> Passthrough {
        Passthrough::new(Box::new(NoSlots), NO_SLOTS_LIMIT)
    }

    /// Fork the application's process and start the runtime in it. Call after the
    /// boot regions are mirrored and the main thread's offload server runs. A
    /// child that dies without an `Exit` or `Fatal` request sends `events` why.
    pub fn start(&mut self, events: Sender<Event>) -> Result<(), HostedError> {
        let entry = self.entry;
        let keep = [self.guest.fd(), self.guest.large_fd().unwrap_or(-1)];
        if let Some(tsc) = &self.tsc {
            let khz = match tsc {
                Tsc::Known(khz) => *khz,
                Tsc::Measuring(m) => m.khz(),
            };
            self.guest.write_u64(
                BOOT_INFO_GPA + std::mem::offset_of!(BootInfo, tsc_khz) as u64,
                khz,
            );
        }
        let child_pid = process::fork_runtime(entry, keep).map_err(HostedError::Fork)?;
        crate::timeline::mark("forked");
        let pid = child_pid.as_raw_nonzero().get();
        crate::lwk::register_hosted(pid);
        // Where Yama restricts ptrace access to descendants, let the child take
        // descriptors from us (pidfd_getfd) for shared file mappings. Without
        // Yama the option does not exist and nothing needs allowing.
        let _ = rustix::process::set_ptracer(PTracer::ProcessID(child_pid));
        // Only the waiter below reaps the child, so the pid is still ours here.
        // Out of the application's numbering (its descriptors are the proxy's
        // low ones) and out of reach of its forwarded close/dup2.
        let pidfd = rustix::process::pidfd_open(child_pid, PidfdFlags::empty())
            .and_then(|raw| rustix::io::fcntl_dupfd_cloexec(&raw, PIDFD_MIN));
        let pidfd = match pidfd {
            Ok(fd) => fd,
            Err(e) => {
                // Our unreaped child.
                let _ = rustix::process::kill_process(child_pid, Signal::KILL);
                return Err(HostedError::Fork(e.into()));
            }
        };
        crate::fds::protect_fds([pidfd.as_raw_fd()]);
        let waiter = std::thread::Builder::new()
            .name("mote-hosted-wait".into())
            .spawn(move || {
                let (end, faults) = process::wait(pid)?;
                let ev = match end {
                    process::End::Signaled(signal) => Event::Killed {
                        signal,
                        fault: None,
                    },
                    process::End::Exited(status) => Event::Failed(format!(
                        "the application's process ended with status {status} before the application did"
                    )),
                };
                let _ = events.send(ev);
                Some(faults)
            })
            .map_err(HostedError::Fork)?;
        CHILD.store(pid, std::sync::atomic::Ordering::Relaxed);
        crate::signals::register_hosted(pid);
        self.child = Some((pidfd, waiter));
        Ok(())
    }

    /// End the application's process (the run is over) and reap it.
    pub fn stop(&mut self) {
        if let Some((pidfd, waiter)) = self.child.take() {
            // Our own pidfd of the child: once the child is reaped this fails with
            // ESRCH instead of reaching another process.
            let sent = rustix::process::pidfd_send_signal(&pidfd, Signal::KILL);
            if sent == Err(rustix::io::Errno::PERM) {
                // The application dropped its privileges (the proxy's ids are
                // its): the process is no longer ours to signal; its ender,
                // made before the drop, ends it.
                end_through_ender();
            }
            crate::timeline::mark("killed");
            // Reaped before the proxy exits, though that waits for the process
            // to get a CPU to die on: a process whose parent is gone is reaped
            // by Linux's init, and a container's first process may reap
            // nothing (tried: each run left a zombie here).
            self.faults = waiter.join().ok().flatten();
        }
    }

    /// `--stats` after `stop`: what the hosted platform counted.
    pub fn stats(&self) -> String {
        let mut n = [0u8; 8];
        let traps = match crate::mirror::read_user(self.traps_va, &mut n) {
            Ok(8) => u64::from_ne_bytes(n).to_string(),
            _ => "unknown".into(),
        };
        let faults = self.faults.map_or("unknown".into(), |f| f.to_string());
        format!(
            "hosted: trap signals {traps} (system calls caught by Syscall User Dispatch, faults), \
             Linux page faults in the application's process {faults} (populating included)"
        )
    }
}

impl Platform for Hosted {
    fn runtime_gpa(&self) -> u64 {
        Hosted::runtime_gpa(self)
    }

    fn start(&mut self, events: Sender<Event>) -> Result<(), String> {
        Hosted::start(self, events).map_err(|e| e.to_string())
    }

    fn finish(&mut self, stats: bool) -> Option<String> {
        // The application's process has nothing left to do (it spins after its
        // last request); end it before the proxy exits.
        self.stop();
        stats.then(|| self.stats())
    }
}

/// The application's process, once started (for `Op::PageSizes`).
static CHILD: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

/// The ender of the application's process (`process::fork_ender`): the write
/// end of its pipe and its pid, once made.
static ENDER: std::sync::Mutex<Option<(std::os::fd::OwnedFd, rustix::process::Pid)>> =
    std::sync::Mutex::new(None);

/// Before the application changes its user or group ids (`offload::forward`,
/// a forwarded `setuid` and its kin): on the hosted platform, make the ender
/// that keeps the proxy's present ids, so the application's process can be
/// ended after a drop. Nothing in the partition, or when already made.
pub fn before_credentials_change() {
    let pid = CHILD.load(std::sync::atomic::Ordering::Relaxed);
    if pid <= 0 {
        return;
    }
    let mut ender = ENDER.lock().unwrap_or_else(|p| p.into_inner());
    if ender.is_some() {
        return;
    }
    match process::fork_ender(pid) {
        Ok((w, ender_pid)) => {
            let w = crate::fds::above_app(w);
            crate::fds::protect_fds([w.as_raw_fd()]);
            *ender = Some((w, ender_pid));
        }
        Err(e) => crate::note!("mote: cannot start the hosted process's ender: {e}"),
    }
}

/// In a forked copy of the proxy that serves a vfork child: the application's
/// process is not this copy's to end. Without this, the child's credential
/// calls (glibc's `posix_spawn` child with `POSIX_SPAWN_RESETIDS`, as GNU make
/// spawns) made an ender aimed at the parent's process, whose pipe closed at
/// the child's `execve`: the ender then killed the parent's process (make died
/// of SIGKILL on its first recipe). The copy's end of the parent's ender pipe,
/// if any, is closed (the parent keeps its own).
pub fn forget_app_process() {
    CHILD.store(0, std::sync::atomic::Ordering::Relaxed);
    // The fork may have caught another thread holding the lock: then leave it.
    if let Ok(mut ender) = ENDER.try_lock() {
        if let Some((w, _)) = ender.take() {
            let raw = w.as_raw_fd();
            drop(w);
            crate::fds::unprotect_fd(raw);
        }
    }
}

/// The ender's pid, once made (0: none): one of mote's processes, out of the
/// application's reach (`offload`'s guard).
pub fn ender_pid() -> i32 {
    ENDER
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .map_or(0, |(_, pid)| pid.as_raw_nonzero().get())
}

/// Have the ender end the application's process, and reap the ender.
fn end_through_ender() {
    let Some((w, pid)) = ENDER.lock().unwrap_or_else(|p| p.into_inner()).take() else {
        return;
    };
    let _ = rustix::io::write(&w, &[1]);
    crate::fds::unprotect_fd(w.as_raw_fd());
    drop(w);
    process::reap_clone_child(pid);
}

/// `ikc::Op::PageSizes` on the hosted platform: bytes of the application's
/// `[va, va+len)` mapped by 4 KiB, 2 MiB and 1 GiB pages, from Linux's view of the
/// application's process (`/proc/PID/smaps`); `None` on the partition.
pub fn page_sizes(va: u64, len: u64) -> Option<[u64; 3]> {
    let pid = CHILD.load(std::sync::atomic::Ordering::Relaxed);
    if pid <= 0 {
        return None;
    }
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    Some(smaps_page_sizes(&text, va, len))
}

/// Sum the mapped bytes of `[va, va+len)` in `smaps` text by page size: an
/// entry's resident bytes (prorated to the overlap) are 2 MiB pages as far as
/// its `*PmdMapped`/`AnonHugePages` say, all of them where its
/// `KernelPageSize` is 2 MiB or 1 GiB (hugetlbfs, whose pages Linux counts in
/// `*_Hugetlb`, not `Rss`), 4 KiB pages otherwise.
fn smaps_page_sizes(text: &str, va: u64, len: u64) -> [u64; 3] {
    let mut out = [0u64; 3];
    let end = va.saturating_add(len);
    let mut entry: Option<(u64, u64)> = None;
    let (mut rss, mut pmd, mut kps) = (0u64, 0u64, 4u64);
    let mut flush = |e: Option<(u64, u64)>, rss: u64, pmd: u64, kps: u64| {
        let Some((s, e)) = e else { return };
        let (lo, hi) = (s.max(va), e.min(end));
        if lo >= hi || e <= s {
            return;
        }
        let part = |x: u64| (x as u128 * (hi - lo) as u128 / (e - s) as u128) as u64;
        match kps {
            1048576 => out[2] += part(rss),
            2048 => out[1] += part(rss),
            _ => {
                let big = part(pmd.min(rss));
                out[1] += big;
                out[0] += part(rss) - big.min(part(rss));
            }
        }
    };
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let Some(first) = words.next() else { continue };
        if let Some((a, b)) = first.split_once('-') {
            if let (Ok(a), Ok(b)) = (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16)) {
                flush(entry, rss, pmd, kps);
                entry = Some((a, b));
                (rss, pmd, kps) = (0, 0, 4);
                continue;
            }
        }
        let kb = || -> u64 {
            words
                .clone()
                .next()
                .and_then(|w| w.parse().ok())
                .unwrap_or(0)
        };
        match first {
            "Rss:" | "Shared_Hugetlb:" | "Private_Hugetlb:" => rss += kb() << 10,
            "AnonHugePages:" | "ShmemPmdMapped:" | "FilePmdMapped:" => pmd += kb() << 10,
            "KernelPageSize:" => kps = kb(),
            _ => {}
        }
    }
    flush(entry, rss, pmd, kps);
    out
}

/// Lowest descriptor number of the proxy's pidfd of the child.
const PIDFD_MIN: libc::c_int = 700;

/// Memory slots of the hosted platform: none to register (the application's
/// process maps shared files itself).
struct NoSlots;

impl MemSlots for NoSlots {
    fn set(&self, _slot: u32, _gpa: u64, _len: u64, _hva: u64, _ro: bool) -> std::io::Result<()> {
        Ok(())
    }
}

/// Pass-through objects at once (slot numbers only count them here).
const NO_SLOTS_LIMIT: u32 = 32768;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hugetlb_share_of_memory() {
        const MB: u64 = 1 << 20;
        // A quarter stays on ordinary pages, at least 256 MiB.
        assert_eq!(large_memory(2048 * MB, 0, 10_000), 1536 * MB);
        assert_eq!(large_memory(2048 * MB, LARGE_PAGE_SIZE, 10), 20 * MB);
        assert_eq!(large_memory(512 * MB, LARGE_PAGE_SIZE, 10_000), 256 * MB);
        assert_eq!(large_memory(256 * MB, LARGE_PAGE_SIZE, 10_000), 0);
        // None free, or 4 KiB pages asked for: none.
        assert_eq!(large_memory(2048 * MB, LARGE_PAGE_SIZE, 0), 0);
        assert_eq!(large_memory(2048 * MB, PAGE_SIZE, 10_000), 0);
        // 1 GiB pages on hosted are 2 MiB hugetlbfs pages mapped a gigabyte at a time.
        assert_eq!(large_memory(4096 * MB, HUGE_PAGE_SIZE, 10_000), 3072 * MB);
    }

    #[test]
    fn guest_memory_with_hugetlb_pages_is_one_range_of_two_memfds() {
        if hugetlb_pages_free() < 2 {
            eprintln!("skipped: fewer than two free 2 MiB hugetlbfs pages");
            return;
        }
        let g = GuestMem::with_large(8 << 20, 4 << 20).unwrap();
        assert_eq!(g.large_start(), Some(4 << 20));
        assert!(g.host_base().is_multiple_of(LARGE_PAGE_SIZE));
        g.write((4 << 20) - 4, b"abcdefgh");
        let mut b = [0u8; 8];
        g.read((4 << 20) - 4, &mut b);
        assert_eq!(&b, b"abcdefgh", "one address range across both memfds");
        let fd = g.large_fd().unwrap();
        // The bytes written at the start of the hugetlbfs memfd are in it.
        let mut first = [0u8; 4];
        let memfd = std::fs::File::open(format!("/proc/self/fd/{fd}")).unwrap();
        std::os::unix::fs::FileExt::read_exact_at(&memfd, &mut first, 0).unwrap();
        assert_eq!(&first, b"efgh");
    }

    #[test]
    fn page_sizes_from_smaps() {
        let text = "\
1000-201000 rw-s 00000000 00:01 5 /memfd:mote-guest (deleted)
Size:               2048 kB
Rss:                1024 kB
ShmemPmdMapped:        0 kB
KernelPageSize:        4 kB
200000000-200400000 rw-s 00000000 00:01 5 /memfd:mote-guest (deleted)
Size:               4096 kB
Rss:                4096 kB
ShmemPmdMapped:     2048 kB
KernelPageSize:        4 kB
7f0000000000-7f0040000000 rw-s 00000000 00:0f 9 /dev/hugepages/x
Size:            1048576 kB
Rss:                   0 kB
Shared_Hugetlb:  1048576 kB
Private_Hugetlb:       0 kB
KernelPageSize:  1048576 kB
3ffec0000000-3fff00000000 rw-s 00200000 00:11 7 /memfd:mote-guest-2m (deleted)
Size:            1048576 kB
Rss:                   0 kB
Shared_Hugetlb:   524288 kB
Private_Hugetlb:       0 kB
KernelPageSize:     2048 kB
";
        // All of the first entry: 1 MiB resident on 4 KiB pages.
        assert_eq!(smaps_page_sizes(text, 0x1000, 0x20_0000), [1 << 20, 0, 0]);
        // Half of the second: half its 2 MiB-mapped and half its 4 KiB bytes.
        assert_eq!(
            smaps_page_sizes(text, 0x2_0000_0000, 0x20_0000),
            [1 << 20, 1 << 20, 0]
        );
        assert_eq!(
            smaps_page_sizes(text, 0x7f00_0000_0000, 1 << 30),
            [0, 0, 1 << 30]
        );
        // hugetlbfs pages are counted in *_Hugetlb, not Rss.
        assert_eq!(
            smaps_page_sizes(text, 0x3ffe_c000_0000, 1 << 30),
            [0, 512 << 20, 0]
        );
        assert_eq!(smaps_page_sizes(text, 0x5000_0000, 0x1000), [0, 0, 0]);
    }
}
