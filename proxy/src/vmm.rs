//! The KVM partition: one VM whose memory is the partition's memfd, one vCPU per
//! LWK core pinned to a host core, entered straight in 64-bit mode at kernel-min's
//! entry. vCPU threads run the guest and serve its few port exits (debug console,
//! fatal report, IKC doorbells); forwarded calls never come through here — they
//! travel through shared memory to the offload threads.
//!
//! Allows `unsafe`: the VMM's KVM ioctls (guest memory slot) and `xgetbv`.
#![allow(unsafe_code)]

use std::sync::atomic::Ordering;
use std::sync::mpsc::Sender;
use std::sync::Arc;

use kvm_bindings::{
    kvm_fpu, kvm_segment, kvm_userspace_memory_region, kvm_xcrs, KVM_MAX_CPUID_ENTRIES,
};
use kvm_ioctls::{Kvm, VcpuExit, VcpuFd, VmFd};

use mote_abi::layout::*;
use mote_abi::ports;

use crate::boot::{self, BootError, BootParams, PlatformBoot};
use crate::cpus::{lwk_host_cpu, pin_to};
use crate::event::Event;
use crate::futex::{futex_wait, futex_wait_for, futex_wake, wake_core};
use crate::guest::GuestMem;
use crate::platform::Platform;

/// Failure to create or start the partition.
#[derive(Debug, thiserror::Error)]
pub enum VmmError {
    #[error("no usable /dev/kvm ({0}): load kvm_intel or kvm_amd and check its permissions")]
    NoKvm(kvm_ioctls::Error),
    #[error("KVM refused to {what}: {err}")]
    Kvm {
        what: &'static str,
        err: kvm_ioctls::Error,
    },
    #[error(transparent)]
    Boot(#[from] BootError),
    #[error(
        "--mem {mem}M is too large: guest memory must end below the pass-through window at {max}M"
    )]
    TooLarge { mem: u64, max: u64 },
}

fn kvm_err(what: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> VmmError {
    move |err| VmmError::Kvm { what, err }
}

/// A created, not yet running partition.
pub struct Partition {
    guest: Arc<GuestMem>,
    _kvm: Kvm,
    vm: Arc<VmFd>,
    nr_memslots: u32,
    vcpus: std::sync::Mutex<Vec<VcpuFd>>,
    runtime_gpa: u64,
    /// The runtime's trap entry (where a redirected vCPU enters for a signal).
    trap_entry: u64,
    debug: bool,
    cores: usize,
}

impl Partition {
    /// Load kernel-min and the runtime, build boot structures and the VM.
    pub fn new(
        guest: Arc<GuestMem>,
        cores: usize,
        params: &BootParams,
    ) -> Result<Partition, VmmError> {
        if guest.size() > PASSTHROUGH_GPA {
            return Err(VmmError::TooLarge {
                mem: guest.size() >> 20,
                max: PASSTHROUGH_GPA >> 20,
            });
        }
        let kvm = crate::kvmfd::open().map_err(VmmError::NoKvm)?;
        let vm = make_vm(&kvm, &guest)?;

        let kernel = boot::load_image(
            &guest,
            "kernel-min",
            &crate::images::chosen().kernel.bytes,
            KERNEL_GPA,
            KERNEL_VA,
            16 << 20,
            &[],
        )?;
        let runtime_gpa = align_up(kernel.end - DIRECT_MAP_BASE, LARGE_PAGE_SIZE);
        let pool_start = runtime_gpa + RUNTIME_SIZE;
        if pool_start + (16 << 20) > guest.size() {
            return Err(BootError::TooSmall {
                mem: guest.size() >> 20,
                need: (pool_start >> 20) + 16,
            }
            .into());
        }
        let runtime = boot::load_image(
            &guest,
            "runtime",
            &crate::images::chosen().runtime.bytes,
            runtime_gpa,
            RUNTIME_VA,
            RUNTIME_IMAGE_MAX,
            &["mote_trap_entry", "mote_syscall_entry"],
        )?;
        let cpuid = kvm
            .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
            .map_err(kvm_err("report CPUID"))?;
        let leaf = |f: u32, i: u32| {
            cpuid
                .as_slice()
                .iter()
                .find(|e| e.function == f && e.index == i)
                .copied()
        };
        let fsgsbase = leaf(7, 0).is_some_and(|e| e.ebx & 1 != 0);
        let xsave = leaf(1, 0).is_some_and(|e| e.ecx & (1 << 26) != 0);
        let (hwcap, hwcap2) = (
            leaf(1, 0).map_or(0, |e| e.edx as u64),
            if fsgsbase { 2 } else { 0 },
        );

        // 1 GiB pages need the guest CPU's pdpe1gb (CPUID 0x8000_0001 EDX bit 26).
        let pdpe1gb = leaf(0x8000_0001, 0).is_some_and(|e| e.edx & (1 << 26) != 0);
        // The direct map uses them when it can: one pool page maps 512 GiB.
        let (pml4, pt_next) = boot::build_page_tables(&guest, runtime_gpa, pdpe1gb)?;
        boot::write_boot_gdt(&guest);
        let mut page_size = params.page_size;
        if page_size == HUGE_PAGE_SIZE && !pdpe1gb {
            crate::say!(
                "mote: --page-size 1g: this CPU (as KVM offers it) has no 1 GiB pages (pdpe1gb); using 2m"
            );
            page_size = LARGE_PAGE_SIZE;
        }

        let mut info = boot::boot_info(
            params,
            &PlatformBoot {
                cores,
                mem_size: guest.size(),
                pool_start,
                // One memfd: KVM gives the guest 2 MiB pages of any memory.
                large_pool_start: 0,
                runtime_gpa,
                runtime_entry: runtime.entry,
                runtime_text_start: runtime.text_start,
                runtime_text_end: runtime.text_end,
                runtime_trap_entry: runtime.symbols[0],
                runtime_syscall_entry: runtime.symbols[1],
                runtime_image_end: runtime.end,
                pml4_gpa: pml4,
                pt_pool_next: pt_next,
                fsgsbase,
                hwcap,
                hwcap2,
                page_size,
            },
        );
        let cpu = CpuFacts {
            kernel_entry: kernel.entry,
            pml4,
            fsgsbase,
            xsave,
        };
        let vcpus = make_vcpus(&vm, &cpuid, cores, &cpu, None)?;
        // The guest's TSC rate, for libos's clocks (the builder left it 0:
        // forward every clock read, as when KVM does not say).
        info.tsc_khz = vcpus[0].get_tsc_khz().map_or(0, u64::from);
        boot::write_boot_info(&guest, &info);
        let _ = FORK_FACTS.set(ForkFacts {
            cpu,
            runtime_gpa,
            trap_entry: info.runtime_trap_entry,
            debug: params.debug,
        });
        crate::ticks::set_slice(params.time_slice_ns);
        let nr_memslots = u32::try_from(kvm.get_nr_memslots()).unwrap_or(u32::MAX);
        Ok(Partition {
            guest,
            _kvm: kvm,
            vm: Arc::new(vm),
            nr_memslots,
            vcpus: std::sync::Mutex::new(vcpus),
            runtime_gpa,
            trap_entry: info.runtime_trap_entry,
            debug: params.debug,
            cores,
        })
    }

    /// Can a fork's child make its VM (this process made a partition)?
    pub fn forks() -> bool {
        FORK_FACTS.get().is_some()
    }

    /// A fork's child (`offload::fork`): a new VM on `guest`, the copy of the
    /// parent's memory, kernel-min, page tables and runtime included, with
    /// `cores` vCPUs entering kernel-min as at boot (it finds its tables made and
    /// the runtime resumes the thread that forked) and counting the TSC on from
    /// `tsc`, the parent's. None on the hosted platform.
    pub fn forked_child(
        guest: Arc<GuestMem>,
        cores: usize,
        tsc: u64,
    ) -> Option<Result<Partition, VmmError>> {
        let f = FORK_FACTS.get()?;
        let make = || {
            let kvm = crate::kvmfd::open().map_err(VmmError::NoKvm)?;
            let vm = make_vm(&kvm, &guest)?;
            let cpuid = kvm
                .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
                .map_err(kvm_err("report CPUID"))?;
            let vcpus = make_vcpus(&vm, &cpuid, cores, &f.cpu, Some(tsc))?;
            let nr_memslots = u32::try_from(kvm.get_nr_memslots()).unwrap_or(u32::MAX);
            Ok(Partition {
                guest: guest.clone(),
                _kvm: kvm,
                vm: Arc::new(vm),
                nr_memslots,
                vcpus: std::sync::Mutex::new(vcpus),
                runtime_gpa: f.runtime_gpa,
                trap_entry: f.trap_entry,
                debug: f.debug,
                cores,
            })
        };
        Some(make())
    }

    /// The VM, for pass-through memory slots (`passthrough`), and how many slots
    /// KVM offers (`KVM_CAP_NR_MEMSLOTS`).
    pub fn memslots(&self) -> (Arc<VmFd>, u32) {
        (self.vm.clone(), self.nr_memslots)
    }

    /// Guest-physical base of the runtime region (mirrored at `RUNTIME_VA`).
    pub fn runtime_gpa(&self) -> u64 {
        self.runtime_gpa
    }

    /// Start every vCPU on its own thread, pinned to a host core; the first event
    /// that ends the run is sent to `events`.
    pub fn start(&self, events: Sender<Event>) -> Result<(), VmmError> {
        let vcpus = std::mem::take(&mut *self.vcpus.lock().expect("vcpu list"));
        for (i, vcpu) in vcpus.into_iter().enumerate() {
            let guest = self.guest.clone();
            let events = events.clone();
            let debug = self.debug;
            let (runtime_gpa, trap_entry) = (self.runtime_gpa, self.trap_entry);
            // The first allowed host CPU is the Linux core (offload threads); LWK
            // cores go on the other allowed CPUs, wrapping when there are fewer.
            let host_cpu = lwk_host_cpu(i);
            std::thread::Builder::new()
                .name(format!("mote-vcpu{i}"))
                .spawn(move || {
                    // Best effort: an unpinned vCPU still runs, only noisier.
                    let _ = pin_to(host_cpu);
                    crate::lwk::register_vcpu(i);
                    let mut vcpu = vcpu;
                    crate::signals::register_vcpu(i, &mut vcpu);
                    crate::ticks::register_vcpu(i, crate::signals::kick_signal());
                    let ev = run_vcpu(vcpu, i, &guest, debug, (runtime_gpa, trap_entry));
                    let _ = events.send(ev);
                })
                .expect("spawn vCPU thread");
        }
        Ok(())
    }
}

impl Platform for Partition {
    fn runtime_gpa(&self) -> u64 {
        Partition::runtime_gpa(self)
    }

    fn start(&mut self, events: Sender<Event>) -> Result<(), String> {
        Partition::start(self, events).map_err(|e| format!("cannot start the partition: {e}"))
    }

    fn finish(&mut self, stats: bool) -> Option<String> {
        // The partition has stopped: its counters no longer change.
        stats.then(|| kernel_stats(&self.guest, self.cores))
    }
}

/// `--stats`: what kernel-min counted, summed over the partition's cores, with
/// the page faults per core.
fn kernel_stats(guest: &GuestMem, cores: usize) -> String {
    let (mut faults, mut upcalls, mut kcalls) = (Vec::new(), 0, 0);
    for core in 0..cores {
        let page = guest.core_page(core);
        faults.push(page.page_faults.load(Ordering::Relaxed));
        upcalls += page.upcalls.load(Ordering::Relaxed);
        kcalls += page.kcalls.load(Ordering::Relaxed);
    }
    let per_core: Vec<String> = faults
        .iter()
        .enumerate()
        .map(|(i, n)| format!("core {i}: {n}"))
        .collect();
    format!(
        "kernel-min: page faults {} ({}), traps handed up {upcalls}, kernel calls {kcalls}",
        faults.iter().sum::<u64>(),
        per_core.join(", ")
    )
}

/// The VM with `guest` as its memory (slot 0).
fn make_vm(kvm: &Kvm, guest: &GuestMem) -> Result<VmFd, VmmError> {
    let vm = kvm.create_vm().map_err(kvm_err("create a VM"))?;
    let region = kvm_userspace_memory_region {
        slot: 0,
        flags: 0,
        guest_phys_addr: 0,
        memory_size: guest.size(),
        userspace_addr: guest.host_base(),
    };
    // SAFETY: the region is our live memfd mapping, which outlives the VM
    // (Partition holds the Arc<GuestMem>).
    unsafe { vm.set_user_memory_region(region) }.map_err(kvm_err("add guest memory"))?;
    let _ = vm.set_tss_address(0xfffb_d000);
    Ok(vm)
}

/// How the vCPUs start: kernel-min's entry, the page tables, CPU features.
#[derive(Clone, Copy)]
struct CpuFacts {
    kernel_entry: u64,
    pml4: u64,
    fsgsbase: bool,
    xsave: bool,
}

/// What a fork's child needs of this run to make its VM (set by `Partition::new`).
struct ForkFacts {
    cpu: CpuFacts,
    runtime_gpa: u64,
    trap_entry: u64,
    debug: bool,
}

static FORK_FACTS: std::sync::OnceLock<ForkFacts> = std::sync::OnceLock::new();

/// IA32_TIME_STAMP_COUNTER (Intel SDM vol. 4, table 2-2).
const MSR_TSC: u32 = 0x10;

/// `cores` vCPUs at kernel-min's entry; with `tsc`, their TSC starts there.
fn make_vcpus(
    vm: &VmFd,
    cpuid: &kvm_bindings::CpuId,
    cores: usize,
    f: &CpuFacts,
    tsc: Option<u64>,
) -> Result<Vec<VcpuFd>, VmmError> {
    let mut vcpus = Vec::new();
    for id in 0..cores {
        let vcpu = vm
            .create_vcpu(id as u64)
            .map_err(kvm_err("create a vCPU"))?;
        vcpu.set_cpuid2(cpuid).map_err(kvm_err("set CPUID"))?;
        setup_vcpu(&vcpu, id, f.pml4, f.kernel_entry, f.fsgsbase, f.xsave)?;
        if let Some(tsc) = tsc {
            let msrs = kvm_bindings::Msrs::from_entries(&[kvm_bindings::kvm_msr_entry {
                index: MSR_TSC,
                data: tsc,
                ..Default::default()
            }])
            .map_err(|_| VmmError::Kvm {
                what: "set the TSC",
                err: kvm_ioctls::Error::new(libc::EINVAL),
            })?;
            vcpu.set_msrs(&msrs).map_err(kvm_err("set the TSC"))?;
        }
        vcpus.push(vcpu);
    }
    Ok(vcpus)
}

fn seg(selector: u16, code: bool) -> kvm_segment {
    kvm_segment {
        base: 0,
        limit: 0xffff_ffff,
        selector,
        type_: if code { 11 } else { 3 },
        present: 1,
        dpl: 0,
        db: if code { 0 } else { 1 },
        s: 1,
        l: if code { 1 } else { 0 },
        g: 1,
        avl: 0,
        unusable: 0,
        padding: 0,
    }
}

/// 64-bit mode, paging on, at kernel-min's entry with `rdi` = BootInfo, `rsi` = the
/// core.
fn setup_vcpu(
    vcpu: &VcpuFd,
    core: usize,
    pml4: u64,
    entry: u64,
    fsgsbase: bool,
    xsave: bool,
) -> Result<(), VmmError> {
    let mut s = vcpu.get_sregs().map_err(kvm_err("read vCPU state"))?;
    s.cs = seg(0x08, true);
    for d in [&mut s.ds, &mut s.es, &mut s.fs, &mut s.gs, &mut s.ss] {
        *d = seg(0x10, false);
    }
    s.tr = kvm_segment {
        base: 0,
        limit: 0x67,
        selector: 0,
        type_: 11,
        present: 1,
        s: 0,
        ..Default::default()
    };
    s.ldt = kvm_segment {
        type_: 2,
        present: 1,
        ..Default::default()
    };
    s.gdt.base = DIRECT_MAP_BASE + BOOT_GDT_GPA;
    s.gdt.limit = 3 * 8 - 1;
    s.idt.base = 0;
    s.idt.limit = 0;
    // CR0: PE MP ET NE WP AM PG. CR4: PAE PGE OSFXSR OSXMMEXCPT [FSGSBASE] [OSXSAVE].
    s.cr0 = 0x8005_0033;
    s.cr3 = pml4;
    s.cr4 = 0x20 | 0x80 | 0x200 | 0x400;
    if fsgsbase {
        s.cr4 |= 1 << 16;
    }
    if xsave {
        s.cr4 |= 1 << 18;
    }
    // EFER: SCE LME LMA NXE.
    s.efer = 0x1 | 0x100 | 0x400 | 0x800;
    vcpu.set_sregs(&s).map_err(kvm_err("set 64-bit mode"))?;
    if xsave {
        let mut x = kvm_xcrs {
            nr_xcrs: 1,
            ..Default::default()
        };
        x.xcrs[0].xcr = 0;
        x.xcrs[0].value = host_xcr0();
        vcpu.set_xcrs(&x)
            .map_err(kvm_err("enable XSAVE features (XCR0)"))?;
    }
    let fpu = kvm_fpu {
        fcw: 0x37f,
        mxcsr: 0x1f80,
        ..Default::default()
    };
    vcpu.set_fpu(&fpu).map_err(kvm_err("set FPU state"))?;
    let mut r = vcpu.get_regs().map_err(kvm_err("read registers"))?;
    r.rip = entry;
    r.rdi = DIRECT_MAP_BASE + BOOT_INFO_GPA;
    r.rsi = core as u64;
    r.rflags = 0x2;
    vcpu.set_regs(&r).map_err(kvm_err("set registers"))?;
    Ok(())
}

/// The host's XCR0: the state components the guest's applications may use.
fn host_xcr0() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: xgetbv(0) is valid whenever the OS enabled XSAVE, which Linux does on
    // every CPU that KVM reports XSAVE for (the only caller).
    unsafe {
        std::arch::asm!("xgetbv", in("ecx") 0, out("eax") lo, out("edx") hi, options(nomem, nostack))
    };
    (hi as u64) << 32 | lo as u64
}

/// `runtime`: the runtime's guest-physical base and trap entry (for signals).
fn run_vcpu(
    mut vcpu: VcpuFd,
    core: usize,
    guest: &GuestMem,
    debug: bool,
    runtime: (u64, u64),
) -> Event {
    let mut line = Vec::new();
    loop {
        let exit = match vcpu.run() {
            Ok(e) => e,
            // A kick for a signal from outside (signals.rs), or another signal.
            Err(e) if e.errno() == libc::EINTR => {
                crate::signals::redirect(&mut vcpu, guest, core, runtime.0, runtime.1);
                if crate::ticks::take_due(core) {
                    // The core's time slice ended: in application code the
                    // runtime switches threads now; anywhere else it does on
                    // its way back to the application.
                    let v = mote_abi::signal::VECTOR_PREEMPT;
                    if !crate::signals::enter_runtime(&mut vcpu, guest, core, runtime, v) {
                        guest
                            .core_page(core)
                            .preempt_due
                            .store(1, Ordering::Release);
                    }
                }
                continue;
            }
            Err(e) if e.errno() == libc::EAGAIN => continue,
            // Linux could not provide a page behind a memory slot: guest RAM never
            // shrinks, so it is a pass-through mapping of a file that was truncated
            // under the application. Linux raises SIGBUS for that access.
            Err(e) if e.errno() == libc::EFAULT => {
                return Event::Killed {
                    signal: libc::SIGBUS as u32,
                    fault: None,
                }
            }
            Err(e) => return Event::Failed(format!("vCPU {core}: KVM_RUN failed: {e}")),
        };
        match exit {
            VcpuExit::IoOut(ports::DEBUG, data) => {
                for &b in data {
                    if b == b'\n' {
                        if debug || line.starts_with(b"kernel-min: panic") {
                            crate::say!("mote: [core {core}] {}", String::from_utf8_lossy(&line));
                        }
                        line.clear();
                    } else {
                        line.push(b);
                    }
                }
            }
            VcpuExit::IoOut(ports::NOTIFY, data) => {
                let slot = u32::from_le_bytes(data.try_into().unwrap_or([0; 4])) as usize;
                if slot < mote_abi::ikc::MAX_THREADS {
                    futex_wake(&guest.thread_slot(slot).req_seq);
                }
            }
            VcpuExit::IoOut(ports::WAIT, data) => {
                let seen = u32::from_le_bytes(data.try_into().unwrap_or([0; 4]));
                let page = guest.core_page(core);
                let max = page.sleep_max_ns.load(Ordering::Relaxed);
                if max != 0 {
                    // A futex timeout on the core: one bounded sleep, then the core
                    // looks at its deadlines again.
                    futex_wait_for(&page.wake_seq, seen, max);
                } else {
                    // Until woken, or until the signal router's kick interrupts the
                    // wait while a signal wants the runtime's attention (it then
                    // finds a thread of this core to take it).
                    let signals = guest.signal_page();
                    while page.wake_seq.load(Ordering::Acquire) == seen {
                        futex_wait(&page.wake_seq, seen);
                        if signals.attention.load(Ordering::Acquire) != 0 {
                            break;
                        }
                    }
                }
            }
            VcpuExit::IoOut(ports::TICK, data) => {
                crate::ticks::doorbell(u32::from_le_bytes(data.try_into().unwrap_or([0; 4])));
            }
            VcpuExit::IoOut(ports::WAKE_CORE, data) => {
                let target = u32::from_le_bytes(data.try_into().unwrap_or([0; 4])) as usize;
                wake_core(guest, target);
            }
            VcpuExit::IoOut(ports::FATAL, _) => {
                let fault = guest.fault_report(core);
                return Event::Killed {
                    signal: fault.signal,
                    fault: Some(fault),
                };
            }
            VcpuExit::IoOut(port, _) | VcpuExit::IoIn(port, _) => {
                return Event::Failed(format!("vCPU {core}: unexpected port I/O to {port:#x}"));
            }
            VcpuExit::MmioRead(addr, _) | VcpuExit::MmioWrite(addr, _) => {
                return Event::Failed(format!(
                    "vCPU {core}: access to guest-physical {addr:#x}, outside the partition's memory"
                ));
            }
            VcpuExit::Hlt => return Event::Failed(format!("vCPU {core}: halted unexpectedly")),
            VcpuExit::Shutdown => {
                let r = vcpu
                    .get_regs()
                    .map(|r| format!(" at rip {:#x}", r.rip))
                    .unwrap_or_default();
                return Event::Failed(format!("vCPU {core}: triple fault (shutdown){r}"));
            }
            VcpuExit::FailEntry(reason, cpu) => {
                return Event::Failed(format!(
                    "vCPU {core}: entry failed, reason {reason:#x} on cpu {cpu}"
                ));
            }
            VcpuExit::InternalError => {
                let r = vcpu
                    .get_regs()
                    .map(|r| format!(" at rip {:#x}", r.rip))
                    .unwrap_or_default();
                return Event::Failed(format!("vCPU {core}: KVM internal error{r}"));
            }
            other => return Event::Failed(format!("vCPU {core}: unexpected exit {other:?}")),
        }
    }
}
