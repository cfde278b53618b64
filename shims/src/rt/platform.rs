//! The runtime's `Platform`, one for every platform it runs on: kernel calls and
//! the other machine-level operations go to the platform's [`Edge`] (the KVM
//! partition's or the hosted process's, chosen once at start-up), forwarded
//! calls through the running thread's IKC slot, and user memory is reached
//! directly (the same address space at CPL3).

use core::arch::asm;
use core::sync::atomic::{AtomicU64, Ordering};

use mote_abi::boot::{BootInfo, BOOT_F_FSGSBASE};
use mote_abi::errno::Errno;
use mote_abi::ikc::{Doorbell, Op, Slot, SHARED_READONLY};
use mote_abi::kcall;
use mote_abi::layout::PAGE_SIZE;
use mote_abi::maplog::Change;
use mote_abi::ports;
use mote_abi::trap::FaultReport;
use mote_libos::platform::{Platform, SharedMapping};

use super::edge::Edge;
use super::ikc::{core_page, maplog, thread_slot};
use super::kvm::Kvm;
use super::percpu;

/// How a thread waits for the answer to its forwarded call: the thread layer's
/// (`rt::threads`), handed to [`init`] so that this module does not import it.
pub trait Waiter: Sync {
    /// The thread on this core waits for `slot`'s answer to request `seen`;
    /// `process_locked`: the process lock is held (the core only sleeps).
    fn wait_response(&self, slot: &Slot, seen: u32, process_locked: bool);
    /// The running vfork child's process exec'd or ended: the thread leaves.
    fn end_child_thread(&self) -> !;
    /// Before a call to the proxy: a thread an `execve` is ending ends here
    /// (when it holds none of the runtime's locks), instead of making it.
    fn leave_if_doomed(&self);
}

/// The runtime's platform (one for all cores: which core and thread is running
/// comes from the per-core data, `percpu`).
pub struct RtPlatform {
    pub boot: &'static BootInfo,
    edge: &'static dyn Edge,
    waiter: &'static dyn Waiter,
}

static PLATFORM: spin::Once<RtPlatform> = spin::Once::new();
/// The platform's edge, chosen once: the hosted start-up names its own
/// (`choose_edge`) before the runtime starts; otherwise it is the partition's.
static EDGE: spin::Once<&'static dyn Edge> = spin::Once::new();

/// The platform, once `init` ran.
pub fn get() -> &'static RtPlatform {
    PLATFORM.get().expect("runtime not started")
}

/// The hosted start-up: the runtime runs on `edge`, not in a partition.
pub fn choose_edge(edge: &'static dyn Edge) {
    EDGE.call_once(|| edge);
}

/// This platform's edge (the partition's unless `choose_edge` named another).
pub fn edge() -> &'static dyn Edge {
    *EDGE.call_once(|| &Kvm)
}

/// Set up the platform (once, on core 0).
pub fn init(boot: &'static BootInfo, waiter: &'static dyn Waiter) -> &'static RtPlatform {
    PLATFORM.call_once(|| RtPlatform {
        boot,
        edge: edge(),
        waiter,
    })
}

/// New mappings pushed to the map log, and how many of them the proxy is known
/// to have applied to its mirror (`RtPlatform::settle_mirror`).
static MAPS_PUBLISHED: AtomicU64 = AtomicU64::new(0);
static MAPS_MIRRORED: AtomicU64 = AtomicU64::new(0);

/// Raw kernel call through this platform's edge.
pub fn kcall_raw(nr: u64, a: [u64; 4]) -> Result<u64, Errno> {
    to_result(edge().kcall(nr, a))
}

fn to_result(ret: u64) -> Result<u64, Errno> {
    if (ret as i64) < 0 && (ret as i64) > -4096 {
        Err(Errno::from_code(-(ret as i64) as i32).unwrap_or(Errno::EINVAL))
    } else {
        Ok(ret)
    }
}

/// Doorbells: the `DOORBELL` kernel call (a VM exit; off the hot path). `slot`:
/// the thread's slot index, `core`: its core.
struct Ports {
    slot: u32,
    core: u32,
    waiter: &'static dyn Waiter,
}

impl Doorbell for Ports {
    fn notify_proxy(&self, _slot: &Slot) {
        let _ = kcall_raw(
            kcall::DOORBELL,
            [ports::NOTIFY as u64, self.slot as u64, 0, 0],
        );
    }
    fn wait_response(&self, slot: &Slot, seen: u32) {
        self.waiter
            .wait_response(slot, seen, super::locks::PROCESS.is_locked());
    }
    fn waiter(&self) -> u32 {
        self.core + 1
    }
}

impl RtPlatform {
    fn call(&self, op: Op, nr: u64, args: [u64; 6]) -> i64 {
        // A thread being ended makes no more calls (but its run's end).
        if !matches!(op, Op::Exit | Op::Fatal | Op::Log) {
            self.waiter.leave_if_doomed();
        }
        let cpu = percpu::cpu();
        let slot = cpu.slot.load(Ordering::Relaxed) as usize;
        let core = cpu.core.load(Ordering::Relaxed) as u32;
        let ports = Ports {
            slot: slot as u32,
            core,
            waiter: self.waiter,
        };
        let r = thread_slot(slot).call(op, nr, args, &ports);
        if r == mote_abi::ikc::VFORK_GONE {
            // This thread was a vfork child whose process exec'd or ended.
            self.waiter.end_child_thread()
        }
        r
    }

    /// Kernel call `nr` through this platform's edge.
    fn kcall(&self, nr: u64, a: [u64; 4]) -> Result<u64, Errno> {
        to_result(self.edge.kcall(nr, a))
    }

    /// This platform's machine-level operations.
    pub fn edge(&self) -> &'static dyn Edge {
        self.edge
    }

    /// Fork a proxy process to serve slot `slot` (a vfork child); its pid or
    /// `-errno`.
    pub fn fork_server(&self, slot: usize) -> i64 {
        self.call(Op::Fork, 0, [slot as u64, 0, 0, 0, 0, 0])
    }

    /// `Op::ForkProcess` (`rt::fork`) with the frame pool's used ends
    /// (`FramePool::used_ends`) and the calling core's TSC: the child's pid or
    /// `-errno`.
    pub fn fork_process(&self, used: (u64, u64, u64), held: (u64, u64), tsc: u64) -> i64 {
        self.call(
            Op::ForkProcess,
            0,
            [used.0, used.1, used.2, tsc, held.0, held.1],
        )
    }

    /// Wait until vfork child `pid` (slot `slot`) exec'd or ended: 0, or `-EINTR`
    /// when a signal for the application interrupted the wait.
    pub fn vfork_wait(&self, pid: u32, slot: usize) -> i64 {
        self.call(Op::VforkWait, 0, [pid as u64, slot as u64, 0, 0, 0, 0])
    }

    /// A vfork child's `execve`: its program in a partition of its own. Returns
    /// only on failure (`-errno`).
    pub fn spawn_exec(
        &self,
        path: u64,
        argv: u64,
        envp: u64,
        sigs: mote_libos::syscall::thread::ExecSignals,
    ) -> i64 {
        self.call(
            Op::SpawnExec,
            0,
            [path, argv, envp, sigs.ignored, sigs.mask, sigs.pending],
        )
    }

    /// Before a local call that mapped memory returns: make the proxy apply the
    /// map log (an `Op::Nop` round trip), so the new mapping is in its mirror.
    /// From the return on, the application may hand the address to another
    /// process through shared memory, with no system call of its own in between
    /// — MPI libraries do, and the peer reads it with `process_vm_readv` on this
    /// process (`apps/cma.c`). In the partition the proxy's mapping also
    /// allocates the host pages behind it before the application's first touch.
    /// One round trip per call however many runs it mapped (an `execve` maps
    /// dozens).
    pub fn settle_mirror(&self) {
        let published = MAPS_PUBLISHED.load(Ordering::Acquire);
        if MAPS_MIRRORED.load(Ordering::Acquire) < published {
            // Every change counted in `published` was pushed before this
            // request, and the proxy applies the whole log before it answers.
            self.call(Op::Nop, 0, [0; 6]);
            MAPS_MIRRORED.fetch_max(published, Ordering::Release);
        }
    }

    /// This core.
    pub fn core(&self) -> usize {
        percpu::core()
    }

    /// `Op::EndThreads`: an `execve` of the calling thread ends the others
    /// (`on`), or has ended them.
    pub fn end_threads(&self, on: bool) {
        self.call(Op::EndThreads, 0, [u64::from(on), 0, 0, 0, 0, 0]);
    }

    /// Start the offload thread of thread slot `slot`; its Linux tid, or `-errno`.
    pub fn start_server(&self, slot: usize) -> i64 {
        self.call(Op::StartServer, 0, [slot as u64, 0, 0, 0, 0, 0])
    }
}

impl Platform for RtPlatform {
    fn map(&self, va: u64, gpa: u64, len: u64, prot: u64) -> Result<(), Errno> {
        self.kcall(kcall::MAP, [va, gpa, len, prot]).map(|_| ())
    }
    fn unmap(&self, va: u64, len: u64) -> Result<(), Errno> {
        self.kcall(kcall::UNMAP, [va, len, 0, 0]).map(|_| ())
    }
    fn protect(&self, va: u64, len: u64, prot: u64) -> Result<(), Errno> {
        self.kcall(kcall::PROTECT, [va, len, prot, 0]).map(|_| ())
    }
    fn give_tables(&self, gpa: u64, len: u64) -> Result<(), Errno> {
        self.kcall(kcall::GIVE_TABLES, [gpa, len, 0, 0]).map(|_| ())
    }
    fn builds_page_tables(&self) -> bool {
        self.edge.builds_page_tables()
    }
    fn set_fs(&self, base: u64) {
        if self.boot.flags & BOOT_F_FSGSBASE != 0 {
            // SAFETY: CR4.FSGSBASE is set (boot flag), so wrfsbase works at CPL3; FS
            // is the application's, libos does not use it.
            unsafe { asm!("wrfsbase {}", in(reg) base, options(nostack, preserves_flags)) }
        } else {
            // A kernel call (about 80 µs under kvm_pvm, which offers no FSGSBASE):
            // skipped when this core's FS base already is `base` — the usual case
            // of one thread per core going idle and back.
            let fs = &percpu::cpu().fs;
            if fs.load(Ordering::Relaxed) == base {
                return;
            }
            if self.kcall(kcall::SET_FS, [base, 0, 0, 0]).is_ok() {
                fs.store(base, Ordering::Relaxed);
            }
        }
    }
    fn publish(&self, change: Change) {
        while !maplog().push(change) {
            self.call(Op::Nop, 0, [0; 6]);
        }
        if change.kind == mote_abi::maplog::KIND_MAP {
            MAPS_PUBLISHED.fetch_add(1, Ordering::Release);
        }
    }
    fn zero(&self, va: u64, len: u64) {
        // In the partition the proxy zeroes natively through the unified address
        // space; here every page touched for the first time at a new address
        // costs a shadow-paging fault. Locally only if the proxy cannot (it
        // reports why). The hosted platform has no shadow paging, and its memory
        // is this process's own mapping of the memfd: a store here is several
        // times cheaper than the round trip to the proxy and its
        // `process_vm_writev` (re-zeroing 160 KiB of heap that `brk` shrank over
        // and grew back: ~50 µs through the proxy, ~10 µs here).
        if self.edge.zeroes_locally() || self.call(Op::Zero, 0, [va, len, 0, 0, 0, 0]) != 0 {
            // SAFETY: libos only passes ranges it has just mapped writable.
            unsafe { core::ptr::write_bytes(va as *mut u8, 0, len as usize) }
        }
    }
    fn write_mem(&self, va: u64, data: &[u8]) {
        // SAFETY: libos only passes mapped, writable application memory that does
        // not overlap the runtime's own buffers.
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), va as *mut u8, data.len()) }
    }
    fn quiesce(&self) {
        // Without inter-processor interrupts, a pause long enough for any core that
        // fetched the old bytes to have finished that instruction (far longer than
        // an instruction takes; a VM exit in between discards the fetch). Only with
        // several cores.
        if self.boot.ncores > 1 {
            let ticks = self.boot.tsc_khz.max(1_000_000) / 10; // 100 µs
            let start = self.tsc();
            while self.tsc().wrapping_sub(start) < ticks {
                core::hint::spin_loop();
            }
        }
    }
    fn tsc(&self) -> u64 {
        // SAFETY: rdtsc reads a counter; CR4.TSD is clear, so it is allowed at CPL3.
        unsafe { core::arch::x86_64::_rdtsc() }
    }

    fn poke(&self, va: u64, data: &[u8]) -> Result<(), Errno> {
        let r = self.call(
            Op::Write,
            0,
            [va, data.as_ptr() as u64, data.len() as u64, 0, 0, 0],
        );
        match r {
            0 => Ok(()),
            e => Err(Errno::from_code(-e as i32).unwrap_or(Errno::EFAULT)),
        }
    }

    fn read_mem(&self, va: u64, buf: &mut [u8]) {
        // SAFETY: libos only passes mapped application memory.
        unsafe { core::ptr::copy_nonoverlapping(va as *const u8, buf.as_mut_ptr(), buf.len()) }
    }
    fn forward(&self, nr: u64, args: [u64; 6]) -> i64 {
        self.call(Op::Syscall, nr, args)
    }
    fn take_raised(&self) -> u32 {
        let slot = percpu::cpu().slot.load(Ordering::Relaxed) as usize;
        thread_slot(slot).take_raised()
    }
    fn exit(&self, status: i32) -> ! {
        self.call(Op::Exit, 0, [status as u64, 0, 0, 0, 0, 0]);
        loop {
            core::hint::spin_loop();
        }
    }
    fn die(&self, signal: u32, fault: Option<&FaultReport>) -> ! {
        if let Some(f) = fault {
            let p = &core_page(self.core()).fault as *const FaultReport as *mut FaultReport;
            // SAFETY: the fault slot is ours; the proxy reads it after Op::Fatal.
            unsafe { p.write_volatile(*f) };
        }
        self.call(
            Op::Fatal,
            0,
            [
                signal as u64,
                fault.is_some() as u64,
                self.core() as u64,
                0,
                0,
                0,
            ],
        );
        loop {
            core::hint::spin_loop();
        }
    }
    fn debugging(&self) -> bool {
        self.boot.flags & mote_abi::boot::BOOT_F_DEBUG != 0
    }
    fn log(&self, msg: &str) {
        self.call(
            Op::Log,
            0,
            [msg.as_ptr() as u64, msg.len() as u64, 0, 0, 0, 0],
        );
    }
    fn map_shared(
        &self,
        va: u64,
        len: u64,
        prot: u64,
        flags: u64,
        fd: u64,
        off: u64,
    ) -> Result<SharedMapping, Errno> {
        let r = self.call(Op::MapShared, 0, [va, len, prot, flags, fd, off]);
        if r < 0 {
            return Err(Errno::from_code(-r as i32).unwrap_or(Errno::ENOMEM));
        }
        let gpa = r as u64 & !(PAGE_SIZE - 1);
        // The hosted process maps the file itself (see `rt::hosted`).
        let e = self.edge.shared_mapped(gpa, len, fd, off);
        if e < 0 {
            self.unshare(gpa);
            return Err(Errno::from_code(-e as i32).unwrap_or(Errno::ENODEV));
        }
        Ok(SharedMapping {
            gpa,
            valid: self.shared_len(gpa).min(len),
            may_write: r as u64 & SHARED_READONLY == 0,
        })
    }
    fn attach_shm(
        &self,
        va: u64,
        len: u64,
        shmid: u64,
        shmflg: u64,
    ) -> Result<SharedMapping, Errno> {
        // The hosted process attaches the segment itself first (see
        // `rt::hosted`), so the proxy's is the last attach Linux records
        // (`shm_lpid`, the application's pid).
        let e = self.edge.shm_attach(va, len, shmid, shmflg);
        if e < 0 {
            return Err(Errno::from_code(-e as i32).unwrap_or(Errno::EINVAL));
        }
        let r = self.call(Op::ShmAttach, 0, [va, len, shmid, shmflg, 0, 0]);
        if r < 0 {
            self.edge.shm_detach(va, len);
            return Err(Errno::from_code(-r as i32).unwrap_or(Errno::EINVAL));
        }
        let gpa = r as u64 & !(PAGE_SIZE - 1);
        self.edge.shm_attached(gpa, va, len);
        Ok(SharedMapping {
            gpa,
            valid: len,
            may_write: r as u64 & SHARED_READONLY == 0,
        })
    }
    fn shm_views(&self) -> u64 {
        self.edge.shm_views()
    }
    fn unshare(&self, gpa: u64) {
        self.edge.shared_dropped(gpa);
        self.call(Op::Unshare, 0, [gpa, 0, 0, 0, 0, 0]);
    }
    fn shared_len(&self, gpa: u64) -> u64 {
        self.call(Op::SharedLen, 0, [gpa, 0, 0, 0, 0, 0]).max(0) as u64
    }
    fn page_faults(&self) -> u64 {
        self.edge.page_faults(self.boot.ncores as usize)
    }
    fn core(&self) -> usize {
        RtPlatform::core(self)
    }
    fn calls_in_flight(&self) -> alloc::vec::Vec<(u32, u32)> {
        (0..mote_abi::ikc::MAX_THREADS)
            .filter_map(|i| {
                let s = thread_slot(i);
                let req = s.req_seq.load(Ordering::Acquire);
                let resp = s.resp_seq.load(Ordering::Acquire);
                (req != resp).then_some((i as u32, req))
            })
            .collect()
    }
    fn call_answered(&self, slot: u32, seq: u32) -> bool {
        let resp = thread_slot(slot as usize).resp_seq.load(Ordering::Acquire);
        // Sequence numbers wrap: answered when `resp` is at or past `seq`.
        resp.wrapping_sub(seq) as i32 >= 0
    }
    fn cpu_times(&self, out: &mut [u64]) -> usize {
        // The proxy writes into `out` (runtime memory, in the unified address space).
        let r = self.call(
            Op::CpuTimes,
            0,
            [out.as_mut_ptr() as u64, out.len() as u64, 0, 0, 0, 0],
        );
        // Hosted: no vCPUs, the cores are that process's threads.
        self.edge
            .cpu_times(out, r.max(0) as usize, self.boot.ncores as usize)
    }
    fn perf_open(&self, core: usize, args: [u64; 6]) -> i64 {
        let [attr, _, cpu, group, flags, _] = args;
        let thread = self.edge.core_thread(core);
        self.call(
            Op::PerfOpen,
            0,
            [attr, core as u64, cpu, group, flags, thread],
        )
    }
    fn page_sizes(&self, va: u64, len: u64) -> [u64; 3] {
        let mut out = [0u64; 3];
        // The proxy writes the three counts into `out` (runtime memory, in the
        // unified address space) before it answers.
        let r = self.call(
            Op::PageSizes,
            0,
            [va, len, out.as_mut_ptr() as u64, 0, 0, 0],
        );
        if r != 0 {
            return [0; 3];
        }
        // SAFETY: `out` is ours and live; the proxy's write happened before the
        // response that `call` waited for (Acquire), so a volatile read sees it.
        unsafe { core::ptr::read_volatile(&out) }
    }
}
