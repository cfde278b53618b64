//! The Linux-hosted platform's machine edge (issue 6): the same runtime, libos
//! and shim table as in the partition, run in an ordinary Linux process that the
//! proxy forked (`mote run --platform hosted`).
//!
//! The runtime keeps talking to "kernel-min" through its kernel calls
//! (`mote_abi::kcall`); here, instead of a `syscall` into kernel-min, each kernel
//! call is carried out with Linux system calls issued from the runtime's own text:
//!
//! | kernel call | hosted |
//! |---|---|
//! | `MAP` (va, gpa, len, prot) | `mmap(va, len, prot, MAP_SHARED|MAP_FIXED, guest memfd, gpa)` |
//! | `UNMAP` | back to the inaccessible reservation (`PROT_NONE`, `MAP_FIXED`) |
//! | `PROTECT` | `mprotect` |
//! | `GIVE_TABLES` | nothing: Linux owns the page tables |
//! | `SET_FS` / `SET_GS` | `arch_prctl` |
//! | `DOORBELL` `NOTIFY` / `WAIT` / `WAKE_CORE` | shared futexes on the IKC words the vCPU thread would sleep or wake on |
//! | `DOORBELL` `TICK` | `timer_settime` of the core's Linux timer (`traps::set_timer`) |
//!
//! so the `Platform` implementation above the kernel calls (`rt::platform`), the
//! IKC protocol and the map log are the partition's, unchanged: guest "physical"
//! memory is the memfd, mapped at the application's addresses in this process
//! (by these `MAP`s) and in the proxy (by the map log), which is the unified
//! address space. File descriptors live in the proxy: every call libos does not
//! serve travels through the IKC slot, exactly as from the partition. (The
//! only descriptors of this process are the memfd, a pidfd of the proxy, and
//! its own copies of files the application maps shared, see `shared_mapped`.)
//! A System V shared memory attachment is this process's own `shmat` of the
//! same segment at the same address, made before the proxy's (`shm_attach`);
//! unmapping its pages (the reservation put back over them) detaches it.
//!
//! Traps are signals. Syscall User Dispatch (`PR_SET_SYSCALL_USER_DISPATCH`, Linux
//! 5.11) lets `syscall` run natively only from the runtime's text; a `syscall`
//! anywhere else (the application, and whatever of the forked proxy's libc is
//! still mapped in this process) raises `SIGSYS` instead of reaching Linux.
//! `SIGSYS`, `SIGSEGV`, `SIGBUS`, `SIGILL`, `SIGFPE` and `SIGTRAP` are turned into
//! a `TrapFrame` and handed to the same `shim_trap` kernel-min's upcalls reach, so
//! a trapped call is routed, and its site patched, as in the partition. The
//! handler runs on the running thread's runtime stack (`sigaltstack`, moved at
//! every thread switch), loads the application's FP state from the signal frame
//! into the registers (where the runtime expects it, as in the partition), and
//! returns through `rt_sigreturn` with the frame's registers and FP state. The
//! proxy's kick (`SIGRTMAX`, a signal from outside is pending) enters the
//! runtime the same way from application code (`VECTOR_SIGNAL`).
//!
//! Every signal frame is one Linux writes on a runtime stack, so two rules keep
//! those stacks intact:
//! * Kicks never nest. `SIGRTMAX` is a real-time signal: each of the proxy's
//!   kicks (one every 2 ms while a signal waits) is queued, and when this
//!   process could not run for a while (a loaded machine, a stopped process)
//!   Linux delivers the whole queue at its next return to user mode. With the
//!   kick deferred during its own handler they arrive one after another on the
//!   same few kilobytes; nested, hundreds of frames ran off the bottom of the
//!   stack into the runtime's heap.
//! * No kick lands on a stack a thread switch is leaving. Linux puts a frame at
//!   the top of the signal stack when the interrupted rsp is not on it, and
//!   between the stack switch and the next context's `on_switch` the signal
//!   stack is still the switched-out thread's, whose live frames are at its top:
//!   the kick is blocked across that window (`before_switch`).

use core::arch::{asm, global_asm};
use core::mem::size_of;
use core::sync::atomic::{AtomicI32, AtomicU64, Ordering};

use mote_abi::boot::BootInfo;
use mote_abi::errno::Errno;
use mote_abi::hosted::{HostedInfo, HOSTED_MAGIC};
use mote_abi::layout::{
    is_passthrough, upcall_stack_top, LARGE_PAGE_SIZE, MAX_CORES, UPCALL_STACK_SIZE,
};
use mote_abi::{kcall, ports};
use mote_libos::uapi::arch_prctl::{ARCH_SET_FS, ARCH_SET_GS};
use mote_libos::uapi::falloc::{FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE};
use mote_libos::uapi::futex::{FUTEX_WAIT, FUTEX_WAKE};
use mote_libos::uapi::mman::{
    MADV_HUGEPAGE, MADV_POPULATE_READ, MADV_POPULATE_WRITE, MAP_ANONYMOUS, MAP_FIXED,
    MAP_NORESERVE, MAP_PRIVATE, MAP_SHARED, PROT_NONE,
};
use mote_libos::uapi::resource::{RUSAGE_SELF, RUSAGE_THREAD};
use mote_libos::uapi::sched::{
    CLONE_FILES, CLONE_FS, CLONE_SIGHAND, CLONE_SYSVSEM, CLONE_THREAD, CLONE_VM,
};
use syscalls::Sysno;

use super::edge::Edge;
use super::ikc::{core_page, thread_slot};
use super::percpu;

mod shared;
mod traps;

/// A thread of this process (a core): it shares everything, as a vCPU shares the VM.
const CLONE_THREAD_FLAGS: u64 =
    CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM;

/// The guest memfd (the proxy passed its number, inherited through `fork`).
static GUEST_FD: AtomicI32 = AtomicI32::new(-1);
/// The hugetlbfs memfd behind guest-physical `[LARGE_GPA, mem_size)` (2 MiB
/// pages), and where that memory starts (0: there is none).
static LARGE_FD: AtomicI32 = AtomicI32::new(-1);
static LARGE_GPA: AtomicU64 = AtomicU64::new(0);
/// Trap signals handled so far (statistics: the proxy reads it for `--stats`
/// through the mirrored runtime region, finding it by this symbol).
#[no_mangle]
pub static MOTE_HOSTED_TRAPS: AtomicU64 = AtomicU64::new(0);

/// Linux system call `n` from the runtime's text (numbers from `syscalls::Sysno`,
/// values from `mote_libos::uapi`).
pub fn linux(n: u64, a: [u64; 6]) -> i64 {
    let ret: i64;
    // SAFETY: a raw Linux system call from the runtime's text (allowed by Syscall
    // User Dispatch); callers pass arguments that touch only runtime memory or the
    // ranges libos asked to (re)map; rcx and r11 are clobbered as `syscall` defines.
    unsafe {
        asm!("syscall", inlateout("rax") n as i64 => ret, in("rdi") a[0], in("rsi") a[1],
             in("rdx") a[2], in("r10") a[3], in("r8") a[4], in("r9") a[5],
             lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    ret
}

// --- kernel calls ------------------------------------------------------------------

/// A kernel call carried out with Linux system calls; returns what kernel-min
/// would (a value, or `-errno` as u64).
fn kcall(n: u64, a: [u64; 4]) -> u64 {
    let r = match n {
        kcall::MAP => map(a[0], a[1], a[2], a[3]),
        kcall::UNMAP => reserve(a[0], a[1]),
        kcall::PROTECT => linux(
            Sysno::mprotect as u64,
            [a[0], a[1], a[2] & kcall::PROT_MASK, 0, 0, 0],
        ),
        kcall::GIVE_TABLES => 0,
        kcall::SET_FS => linux(Sysno::arch_prctl as u64, [ARCH_SET_FS, a[0], 0, 0, 0, 0]),
        kcall::SET_GS => linux(Sysno::arch_prctl as u64, [ARCH_SET_GS, a[0], 0, 0, 0, 0]),
        kcall::DOORBELL => doorbell(a[0] as u16, a[1]),
        _ => Errno::ENOSYS.ret(),
    };
    r as u64
}

fn map(va: u64, gpa: u64, len: u64, prot: u64) -> i64 {
    let (fd, off) = if is_passthrough(gpa, len) {
        // A System V attachment: attached at this very address already
        // (`shm_attach`); only the protection is libos's to set.
        if let Some(at) = shared::sysv_at(gpa, len) {
            if at != va {
                return Errno::EINVAL.ret(); // an attachment maps only where it was made
            }
            return linux(
                Sysno::mprotect as u64,
                [va, len, prot & kcall::PROT_MASK, 0, 0, 0],
            );
        }
        // A shared file mapping: the same file, at the same offset, as the
        // proxy's mapping behind this pass-through range.
        match shared::shared_file(gpa, len) {
            Some(fo) => fo,
            None => return Errno::EINVAL.ret(), // not a range the proxy handed out
        }
    } else {
        match LARGE_GPA.load(Ordering::Relaxed) {
            // hugetlbfs memory: libos maps it only in whole, aligned 2 MiB chunks.
            large if large != 0 && gpa >= large => {
                (LARGE_FD.load(Ordering::Relaxed) as u64, gpa - large)
            }
            _ => (GUEST_FD.load(Ordering::Relaxed) as u64, gpa),
        }
    };
    let hugetlb = fd == LARGE_FD.load(Ordering::Relaxed) as u64;
    if hugetlb {
        // The proxy maps hugetlbfs memory without reserving it (so that runs
        // side by side share Linux's pages by use, not by their --mem): take the
        // pages now, or tell libos there are none left (ENOSPC: it maps
        // ordinary memory instead), rather than meet a SIGBUS at first touch.
        // Pages once taken stay the run's (libos reuses freed frames).
        let r = linux(Sysno::fallocate as u64, [fd, 0, off, len, 0, 0]);
        if r < 0 {
            // Give back what the failed call did take (the range is free frames
            // of libos's, about to be freed again): another run may need them.
            let punch = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
            linux(Sysno::fallocate as u64, [fd, punch, off, len, 0, 0]);
            return Errno::ENOSPC.ret();
        }
    }
    let flags = MAP_SHARED | MAP_FIXED;
    let r = linux(
        Sysno::mmap as u64,
        [va, len, prot & kcall::PROT_MASK, flags, fd, off],
    );
    if r < 0 {
        return r;
    }
    if len >= LARGE_PAGE_SIZE && prot & kcall::MAP_PAGES_4K == 0 && !hugetlb {
        // Large pages where Linux gives them for shared memory (THP for shmem:
        // /sys/kernel/mm/transparent_hugepage/shmem_enabled); failure is harmless.
        // Before populating: the page size is chosen when a page is allocated.
        linux(Sysno::madvise as u64, [va, len, MADV_HUGEPAGE, 0, 0, 0]);
    }
    if len >= POPULATE_MIN && prot & kcall::PROT_MASK != 0 {
        // Memory is mapped before the application touches it, as in the
        // partition: the page-table entries now (writable where the mapping is:
        // MAP_POPULATE would map shared pages read-only, and each first store
        // would still fault), not one fault per page later. The proxy allocates
        // the pages behind large mappings anyway. Linux 5.14; failure only loses
        // the head start.
        let advice = if prot & kcall::PROT_WRITE != 0 {
            MADV_POPULATE_WRITE
        } else {
            MADV_POPULATE_READ
        };
        // Linux counts populating as page faults of this thread: keep them out
        // of the application's count (`page_faults`).
        let before = faults(RUSAGE_THREAD);
        linux(Sysno::madvise as u64, [va, len, advice, 0, 0, 0]);
        POPULATED.fetch_add(
            faults(RUSAGE_THREAD).saturating_sub(before),
            Ordering::Relaxed,
        );
    }
    0
}

/// Mappings from this size on are populated at once (`rt::platform` has the same
/// threshold for the proxy's side).
const POPULATE_MIN: u64 = 256 << 10;

/// Faults Linux counted while populating mappings (not the application's).
static POPULATED: AtomicU64 = AtomicU64::new(0);

/// Page faults Linux took in this process so far (minor and major, every thread),
/// less those of populating mappings ahead of use: the hosted platform's count of
/// what kernel-min counts in the partition.
pub fn page_faults() -> u64 {
    faults(RUSAGE_SELF).saturating_sub(POPULATED.load(Ordering::Relaxed))
}

/// `getrusage(who)`'s minor plus major faults.
fn faults(who: u64) -> u64 {
    // struct rusage: two timevals, then longs; ru_minflt and ru_majflt at 64, 72.
    let mut ru = [0u64; 18];
    if linux(
        Sysno::getrusage as u64,
        [who, ru.as_mut_ptr() as u64, 0, 0, 0, 0],
    ) < 0
    {
        return 0;
    }
    ru[8] + ru[9]
}

/// Linux tid of each core's thread (0: not started), for its CPU clock.
static CORE_TID: [AtomicI32; MAX_CORES] = [const { AtomicI32::new(0) }; MAX_CORES];

/// `Platform::cpu_times` on the hosted platform: the proxy answered `n` values
/// in `out` (its own process CPU time first; no vCPUs). The cores are this
/// process's threads: their CPU time is the application's (user time, as the
/// vCPUs' in the partition), and the run's total is both processes'.
pub fn cpu_times(out: &mut [u64], n: usize, ncores: usize) -> usize {
    if n < 1 || out.len() < 2 {
        return n;
    }
    let mine = clock_ns(mote_libos::time::id::PROCESS_CPUTIME_ID);
    out[0] += mine;
    out[1] = mine;
    let mut written = 2;
    for (core, slot) in out[2..].iter_mut().enumerate().take(ncores.min(MAX_CORES)) {
        let tid = CORE_TID[core].load(Ordering::Relaxed);
        // MAKE_THREAD_CPUCLOCK(tid, CPUCLOCK_SCHED) (linux/posix-timers.h).
        let clock = ((!(tid as i64)) << 3 | 6) as u64;
        *slot = if tid > 0 { clock_ns(clock) } else { 0 };
        written += 1;
    }
    written
}

fn clock_ns(clock: u64) -> u64 {
    let mut ts = Timespec { sec: 0, nsec: 0 };
    if linux(
        Sysno::clock_gettime as u64,
        [clock, &mut ts as *mut Timespec as u64, 0, 0, 0, 0],
    ) < 0
    {
        return 0;
    }
    ts.sec as u64 * 1_000_000_000 + ts.nsec as u64
}

/// Put `[va, va+len)` back to the inaccessible reservation the proxy made before
/// forking (never a real `munmap`: nothing of Linux may land in the application's
/// range).
pub fn reserve(va: u64, len: u64) -> i64 {
    let flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED;
    let r = linux(Sysno::mmap as u64, [va, len, PROT_NONE, flags, u64::MAX, 0]);
    r.min(0)
}

fn futex_wake(word: &core::sync::atomic::AtomicU32) -> i64 {
    // Shared (not FUTEX_PRIVATE): the other side is the proxy, another process,
    // waiting on the same memfd page.
    linux(
        Sysno::futex as u64,
        [
            word.as_ptr() as u64,
            FUTEX_WAKE as u64,
            i32::MAX as u64,
            0,
            0,
            0,
        ],
    )
}

/// `struct timespec`.
#[repr(C)]
struct Timespec {
    sec: i64,
    nsec: i64,
}

fn doorbell(port: u16, value: u64) -> i64 {
    match port {
        ports::NOTIFY => {
            if value as usize >= mote_abi::ikc::MAX_THREADS {
                return Errno::EINVAL.ret();
            }
            futex_wake(&thread_slot(value as usize).req_seq);
            0
        }
        ports::WAIT => {
            let page = core_page(percpu::core());
            let max = page.sleep_max_ns.load(Ordering::Relaxed);
            let ts = Timespec {
                sec: (max / 1_000_000_000) as i64,
                nsec: (max % 1_000_000_000) as i64,
            };
            let tsp = if max == 0 {
                0
            } else {
                &ts as *const Timespec as u64
            };
            linux(
                Sysno::futex as u64,
                [
                    page.wake_seq.as_ptr() as u64,
                    FUTEX_WAIT as u64,
                    value & 0xffff_ffff,
                    tsp,
                    0,
                    0,
                ],
            );
            0
        }
        ports::WAKE_CORE => {
            if value as usize >= mote_abi::layout::MAX_CORES {
                return Errno::EINVAL.ret();
            }
            futex_wake(&core_page(value as usize).wake_seq);
            0
        }
        ports::TICK => {
            let data = value as u32;
            let slice = INFO.get().map_or(0, |(boot, _)| boot.time_slice_ns);
            traps::set_timer(
                (data & ports::TICK_CORE) as usize,
                data & ports::TICK_ON != 0,
                slice,
            )
        }
        _ => Errno::EINVAL.ret(),
    }
}

// --- start-up ----------------------------------------------------------------------

global_asm!(
    r#"
    // Found by the proxy through the symbol table: keep it (R = SHF_GNU_RETAIN).
    .section .text.mote_hosted, "axR"
    // The forked proxy jumped here: rdi = BootInfo (user view), rsi = core,
    // rdx = HostedInfo (user view), rsp = this core's upcall stack top.
    .global mote_hosted_start
mote_hosted_start:
    and rsp, -16
    call {main}
    ud2

    // mote_hosted_clone(flags = rdi, stack = rsi): a Linux thread for LWK core
    // [rsi] (the caller stored the core there), starting in hosted_secondary on
    // that stack. Returns the new tid or -errno in the calling thread.
    .global mote_hosted_clone
mote_hosted_clone:
    mov eax, {clone}
    xor edx, edx
    xor r10d, r10d
    xor r8d, r8d
    syscall
    test rax, rax
    jnz 1f
    mov rdi, [rsp]
    call {secondary}
    ud2
1:
    ret
"#,
    main = sym hosted_main,
    secondary = sym hosted_secondary,
    clone = const Sysno::clone as u64,
);

unsafe extern "C" {
    fn mote_hosted_clone(flags: u64, stack: u64) -> i64;
}

/// The proxy's start-up facts (set by `hosted_main`).
pub static INFO: spin::Once<(&'static BootInfo, &'static HostedInfo)> = spin::Once::new();

/// First Rust code of the hosted runtime (core 0, the process's first thread):
/// claim the traps, start a Linux thread per further LWK core, then start as the
/// partition's core 0 does.
extern "C" fn hosted_main(boot: &'static BootInfo, core: usize, info: &'static HostedInfo) -> ! {
    if info.magic != HOSTED_MAGIC {
        linux(Sysno::exit_group as u64, [125, 0, 0, 0, 0, 0]);
    }
    GUEST_FD.store(info.guest_fd as i32, Ordering::Relaxed);
    LARGE_FD.store(info.large_fd as i32, Ordering::Relaxed);
    LARGE_GPA.store(info.large_gpa, Ordering::Relaxed);
    super::platform::choose_edge(&Hosted);
    INFO.call_once(|| (boot, info));
    if super::fork::is_child() {
        // A fork's copy: its thread table and process first, before any
        // other core looks at them.
        super::fork::adopt(boot);
        traps::forget_parent();
    }
    // The proxy's descriptors, for shared file mappings (it allowed us with
    // PR_SET_PTRACER where Yama restricts ptrace access).
    let ppid = linux(Sysno::getppid as u64, [0; 6]);
    let pidfd = linux(Sysno::pidfd_open as u64, [ppid as u64, 0, 0, 0, 0, 0]);
    shared::PROXY_PIDFD.store(pidfd.max(-1) as i32, Ordering::Relaxed);
    let ncores = (boot.ncores as usize).clamp(1, MAX_CORES);
    traps::claim_traps();
    for c in 1..ncores {
        // The core number at the top of its stack, for mote_hosted_clone.
        let stack = upcall_stack_top(c) - 16;
        // SAFETY: `stack` is the top of core c's upcall stack, in the runtime
        // region (mapped read-write), used by nothing else yet.
        unsafe { (stack as *mut u64).write(c as u64) };
        // SAFETY: the new thread starts in hosted_secondary on that stack and never
        // returns; it shares everything of this process, as a vCPU shares the VM.
        if unsafe { mote_hosted_clone(CLONE_THREAD_FLAGS, stack) } < 0 {
            linux(Sysno::exit_group as u64, [125, 0, 0, 0, 0, 0]);
        }
    }
    start_core(core)
}

/// First code of LWK core `core`'s Linux thread.
extern "C" fn hosted_secondary(core: u64) -> ! {
    start_core(core as usize)
}

/// What every core's thread does first: pin itself, take its signal stack (core
/// 0), turn Syscall User Dispatch on (a per-thread setting), enter the runtime.
fn start_core(core: usize) -> ! {
    let (boot, info) = *INFO.get().expect("hosted start-up facts");
    let cpu = info.host_cpu[core % MAX_CORES] as usize;
    let mut set = [0u64; 16]; // cpu_set_t, 1024 CPUs
    if cpu < 1024 {
        set[cpu / 64] |= 1 << (cpu % 64);
        // Best effort, as for a vCPU thread: unpinned still runs, only noisier.
        linux(
            Sysno::sched_setaffinity as u64,
            [
                0,
                size_of::<[u64; 16]>() as u64,
                set.as_ptr() as u64,
                0,
                0,
                0,
            ],
        );
    }
    let tid = linux(Sysno::gettid as u64, [0; 6]) as i32;
    CORE_TID[core % MAX_CORES].store(tid, Ordering::Relaxed);
    if boot.time_slice_ns != 0 {
        traps::make_timer(core, tid);
    }
    // Core 0's first context becomes the main thread, whose runtime stack is
    // this upcall stack; a secondary core's becomes its idle context, which has
    // no signal stack (`threads::idle_loop`). Setting one here would stick:
    // Linux refuses to disable the signal stack rsp is on.
    if core == 0 {
        traps::on_switch(core, upcall_stack_top(core), UPCALL_STACK_SIZE);
    }
    traps::dispatch_on(boot);
    crate::partition::runtime_main(boot, core)
}

/// Most bytes of a Linux signal frame besides its extended-state image (return
/// address, `ucontext`, `siginfo`, the image's alignment and end marker: under
/// 1 KiB), with room to spare.
const SIGFRAME_REST: usize = 2 << 10;

/// The hosted platform's [`Edge`].
pub struct Hosted;

impl Edge for Hosted {
    fn kcall(&self, nr: u64, a: [u64; 4]) -> u64 {
        kcall(nr, a)
    }
    fn builds_page_tables(&self) -> bool {
        false
    }
    fn zeroes_locally(&self) -> bool {
        // No shadow paging, and this process's memory is its own mapping of the
        // memfd: a store is several times cheaper than the proxy's
        // `process_vm_writev`.
        true
    }
    fn shared_mapped(&self, gpa: u64, len: u64, fd: u64, off: u64) -> i64 {
        shared::shared_mapped(gpa, len, fd, off)
    }
    fn shm_attach(&self, va: u64, len: u64, shmid: u64, shmflg: u64) -> i64 {
        shared::shm_attach(va, len, shmid, shmflg)
    }
    fn shm_detach(&self, va: u64, len: u64) {
        shared::shm_detach(va, len)
    }
    fn shm_attached(&self, gpa: u64, va: u64, len: u64) {
        shared::shm_attached(gpa, va, len)
    }
    fn shm_views(&self) -> u64 {
        // The proxy's mirror and this process's own attachment.
        2
    }
    fn shared_dropped(&self, gpa: u64) {
        shared::shared_dropped(gpa)
    }
    fn page_faults(&self, _ncores: usize) -> u64 {
        page_faults()
    }
    fn cpu_times(&self, out: &mut [u64], n: usize, ncores: usize) -> usize {
        cpu_times(out, n, ncores)
    }
    fn core_thread(&self, core: usize) -> u64 {
        CORE_TID
            .get(core)
            .map_or(0, |t| t.load(Ordering::Relaxed).max(0) as u64)
    }
    fn idle_stack(&self, base: usize, ext_state: usize) -> usize {
        // A kick may come while core 0's idle context runs, and Linux writes its
        // signal frame (registers and the whole extended state) below its rsp:
        // one at a time (kicks never nest), but it must fit — and so must the
        // core's timer signal on top of it (a timer queues at most one signal,
        // and its handler returns at once in the runtime).
        base + 2 * (ext_state + SIGFRAME_REST)
    }
    fn before_switch(&self, core: usize) {
        traps::before_switch(core)
    }
    fn on_switch(&self, core: usize, top: u64, size: u64) {
        traps::on_switch(core, top, size)
    }
}
