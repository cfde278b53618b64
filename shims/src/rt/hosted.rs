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
use core::mem::{offset_of, size_of};
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};

use mote_abi::boot::BootInfo;
use mote_abi::hosted::{HostedInfo, HOSTED_MAGIC};
use mote_abi::layout::{
    is_passthrough, upcall_stack_top, LARGE_PAGE_SIZE, MAX_CORES, UPCALL_STACK_SIZE,
};
use mote_abi::trap::{vector, TrapFrame, VECTOR_SYSCALL};
use mote_abi::{kcall, ports};

/// Set once by `mote_hosted_start`, before any kernel call.
static HOSTED: AtomicBool = AtomicBool::new(false);
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

/// Does the runtime run on the hosted platform?
#[inline]
pub fn active() -> bool {
    HOSTED.load(Ordering::Relaxed)
}

// --- Linux system calls, from the runtime's text --------------------------------

/// x86_64 system call numbers and constants used here (`asm/unistd_64.h`,
/// `asm-generic/mman-common.h`, `linux/futex.h`, `asm/prctl.h`, `linux/prctl.h`).
mod nr {
    pub const MMAP: u64 = 9;
    pub const MUNMAP: u64 = 11;
    pub const SHMAT: u64 = 30;
    pub const MPROTECT: u64 = 10;
    pub const RT_SIGACTION: u64 = 13;
    pub const RT_SIGPROCMASK: u64 = 14;
    pub const RT_SIGRETURN: u64 = 15;
    pub const MADVISE: u64 = 28;
    pub const FALLOCATE: u64 = 285;
    pub const SIGALTSTACK: u64 = 131;
    pub const PRCTL: u64 = 157;
    pub const ARCH_PRCTL: u64 = 158;
    pub const FUTEX: u64 = 202;
    pub const EXIT_GROUP: u64 = 231;
    pub const CLONE: u64 = 56;
    pub const CLOSE: u64 = 3;
    pub const GETPPID: u64 = 110;
    pub const PIDFD_OPEN: u64 = 434;
    pub const PIDFD_GETFD: u64 = 438;
    pub const SCHED_SETAFFINITY: u64 = 203;
    /// A thread of this process: `CLONE_VM | CLONE_FS | CLONE_FILES |
    /// CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM`.
    pub const CLONE_THREAD_FLAGS: u64 = 0x100 | 0x200 | 0x400 | 0x800 | 0x10000 | 0x40000;

    pub const PROT_NONE: u64 = 0;
    pub const MAP_SHARED: u64 = 0x01;
    pub const MAP_PRIVATE: u64 = 0x02;
    pub const MAP_FIXED: u64 = 0x10;
    pub const MAP_ANONYMOUS: u64 = 0x20;
    pub const MAP_NORESERVE: u64 = 0x4000;
    pub const MADV_POPULATE_READ: u64 = 22;
    /// `shmat` flags (`linux/shm.h`).
    pub const SHM_RDONLY: u64 = 0o10_000;
    pub const SHM_EXEC: u64 = 0o100_000;
    pub const MADV_POPULATE_WRITE: u64 = 23;
    pub const GETRUSAGE: u64 = 98;
    pub const CLOCK_GETTIME: u64 = 228;
    pub const GETTID: u64 = 186;
    pub const MADV_HUGEPAGE: u64 = 14;
    pub const FUTEX_WAIT: u64 = 0;
    pub const FUTEX_WAKE: u64 = 1;
    pub const ARCH_SET_GS: u64 = 0x1001;
    pub const ARCH_SET_FS: u64 = 0x1002;
    pub const PR_SET_SYSCALL_USER_DISPATCH: u64 = 59;
    pub const PR_SYS_DISPATCH_ON: u64 = 1;
    pub const SIG_BLOCK: u64 = 0;
    pub const SIG_UNBLOCK: u64 = 1;
    pub const SA_SIGINFO: u64 = 0x4;
    pub const SA_ONSTACK: u64 = 0x0800_0000;
    pub const SA_RESTORER: u64 = 0x0400_0000;
    pub const SA_NODEFER: u64 = 0x4000_0000;
}

use mote_abi::hosted::signal as sig;

fn linux(n: u64, a: [u64; 6]) -> i64 {
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
pub fn kcall(n: u64, a: [u64; 4]) -> u64 {
    let r = match n {
        kcall::MAP => map(a[0], a[1], a[2], a[3]),
        kcall::UNMAP => reserve(a[0], a[1]),
        kcall::PROTECT => linux(nr::MPROTECT, [a[0], a[1], a[2] & kcall::PROT_MASK, 0, 0, 0]),
        kcall::GIVE_TABLES => 0,
        kcall::SET_FS => linux(nr::ARCH_PRCTL, [nr::ARCH_SET_FS, a[0], 0, 0, 0, 0]),
        kcall::SET_GS => linux(nr::ARCH_PRCTL, [nr::ARCH_SET_GS, a[0], 0, 0, 0, 0]),
        kcall::DOORBELL => doorbell(a[0] as u16, a[1]),
        _ => -38, // ENOSYS
    };
    r as u64
}

fn map(va: u64, gpa: u64, len: u64, prot: u64) -> i64 {
    let (fd, off) = if is_passthrough(gpa, len) {
        // A System V attachment: attached at this very address already
        // (`shm_attach`); only the protection is libos's to set.
        if let Some(at) = sysv_at(gpa, len) {
            if at != va {
                return -22; // EINVAL: an attachment maps only where it was made
            }
            return linux(nr::MPROTECT, [va, len, prot & kcall::PROT_MASK, 0, 0, 0]);
        }
        // A shared file mapping: the same file, at the same offset, as the
        // proxy's mapping behind this pass-through range.
        match shared_file(gpa, len) {
            Some(fo) => fo,
            None => return -22, // EINVAL: not a range the proxy handed out
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
        let r = linux(nr::FALLOCATE, [fd, 0, off, len, 0, 0]);
        if r < 0 {
            // Give back what the failed call did take (the range is free frames
            // of libos's, about to be freed again): another run may need them.
            const PUNCH_HOLE_KEEP_SIZE: u64 = 0x02 | 0x01;
            linux(nr::FALLOCATE, [fd, PUNCH_HOLE_KEEP_SIZE, off, len, 0, 0]);
            return -28; // ENOSPC
        }
    }
    let flags = nr::MAP_SHARED | nr::MAP_FIXED;
    let r = linux(nr::MMAP, [va, len, prot & kcall::PROT_MASK, flags, fd, off]);
    if r < 0 {
        return r;
    }
    if len >= LARGE_PAGE_SIZE && prot & kcall::MAP_PAGES_4K == 0 && !hugetlb {
        // Large pages where Linux gives them for shared memory (THP for shmem:
        // /sys/kernel/mm/transparent_hugepage/shmem_enabled); failure is harmless.
        // Before populating: the page size is chosen when a page is allocated.
        linux(nr::MADVISE, [va, len, nr::MADV_HUGEPAGE, 0, 0, 0]);
    }
    if len >= POPULATE_MIN && prot & kcall::PROT_MASK != 0 {
        // Memory is mapped before the application touches it, as in the
        // partition: the page-table entries now (writable where the mapping is:
        // MAP_POPULATE would map shared pages read-only, and each first store
        // would still fault), not one fault per page later. The proxy allocates
        // the pages behind large mappings anyway. Linux 5.14; failure only loses
        // the head start.
        let advice = if prot & kcall::PROT_WRITE != 0 {
            nr::MADV_POPULATE_WRITE
        } else {
            nr::MADV_POPULATE_READ
        };
        // Linux counts populating as page faults of this thread: keep them out
        // of the application's count (`page_faults`).
        let before = faults(RUSAGE_THREAD);
        linux(nr::MADVISE, [va, len, advice, 0, 0, 0]);
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
const RUSAGE_SELF: u64 = 0;
const RUSAGE_THREAD: u64 = 1;

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
    if linux(nr::GETRUSAGE, [who, ru.as_mut_ptr() as u64, 0, 0, 0, 0]) < 0 {
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
    const CLOCK_PROCESS_CPUTIME_ID: u64 = 2;
    let mine = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
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
        nr::CLOCK_GETTIME,
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
fn reserve(va: u64, len: u64) -> i64 {
    let flags = nr::MAP_PRIVATE | nr::MAP_ANONYMOUS | nr::MAP_NORESERVE | nr::MAP_FIXED;
    let r = linux(nr::MMAP, [va, len, nr::PROT_NONE, flags, u64::MAX, 0]);
    r.min(0)
}

// --- shared file mappings ------------------------------------------------------------

/// A pass-through object as this process sees it: the proxy answered `MapShared`
/// with `gpa` for `len` bytes of the file at offset `off`, and this process holds
/// its own descriptor of that open file (`pidfd_getfd`).
#[derive(Clone, Copy)]
struct SharedFile {
    gpa: u64,
    len: u64,
    off: u64,
    fd: u64,
}

static SHARED: spin::Mutex<alloc::vec::Vec<SharedFile>> = spin::Mutex::new(alloc::vec::Vec::new());
/// A pidfd of the proxy (the parent), opened at start-up.
static PROXY_PIDFD: AtomicI32 = AtomicI32::new(-1);

/// libos made a shared file mapping: the proxy mapped the application's `fd`
/// (its descriptor: descriptors live in the proxy) at `off` for `len` bytes and
/// answered `gpa`. Take a descriptor of the same open file, so `MAP` of that
/// range can map the file here too; every process mapping a file shares its page
/// cache, so both views are the same memory. (`/dev/zero` is the exception: each
/// `mmap` of it is new memory, so this process and the proxy would see different
/// pages.) Returns `-errno` if the descriptor cannot be had.
pub fn shared_mapped(gpa: u64, len: u64, fd: u64, off: u64) -> i64 {
    let pidfd = PROXY_PIDFD.load(Ordering::Relaxed);
    if pidfd < 0 {
        return -19; // ENODEV
    }
    let mine = linux(nr::PIDFD_GETFD, [pidfd as u64, fd, 0, 0, 0, 0]);
    if mine < 0 {
        return mine;
    }
    SHARED.lock().push(SharedFile {
        gpa,
        len,
        off,
        fd: mine as u64,
    });
    0
}

/// A System V attachment as this process sees it: the segment is attached here at
/// `va` too (`shm_attach`), and the proxy answered `gpa` for it.
#[derive(Clone, Copy)]
struct SysvView {
    gpa: u64,
    va: u64,
    len: u64,
}

static SYSV: spin::Mutex<alloc::vec::Vec<SysvView>> = spin::Mutex::new(alloc::vec::Vec::new());

/// Attach System V segment `shmid` at `[va, va+len)` of this process (in a hole
/// made in the reservation, so that a segment Linux maps larger than `len` is
/// refused rather than replacing what lies beyond), with `shmat`'s `SHM_RDONLY`
/// and `SHM_EXEC` from `shmflg`, before the proxy attaches it in its mirror:
/// every process attaching a segment shares its pages. Linux's errno if it
/// refuses (the proxy, with the same credentials, would refuse too).
pub fn shm_attach(va: u64, len: u64, shmid: u64, shmflg: u64) -> i64 {
    let flags = shmflg & (nr::SHM_RDONLY | nr::SHM_EXEC);
    // Only the runtime maps memory in this process, and only at fixed
    // addresses: nothing lands in the hole before the attach or `reserve`.
    linux(nr::MUNMAP, [va, len, 0, 0, 0, 0]);
    let r = linux(nr::SHMAT, [shmid, va, flags, 0, 0, 0]);
    if r < 0 || r as u64 != va {
        // Whatever Linux did to the range, the reservation goes back over it.
        reserve(va, len);
        return if r < 0 { r } else { -22 };
    }
    0
}

/// The proxy refused the attachment `shm_attach` made: detach it here (the
/// reservation goes back, which ends the Linux attachment).
pub fn shm_detach(va: u64, len: u64) {
    reserve(va, len);
}

/// The proxy answered `gpa` for the attachment at `va`.
pub fn shm_attached(gpa: u64, va: u64, len: u64) {
    SYSV.lock().push(SysvView { gpa, va, len });
}

/// Where pass-through `[gpa, gpa+len)` lies in this process if it is (part of) a
/// System V attachment.
fn sysv_at(gpa: u64, len: u64) -> Option<u64> {
    SYSV.lock()
        .iter()
        .find(|s| gpa >= s.gpa && gpa + len <= s.gpa + s.len)
        .map(|s| s.va + (gpa - s.gpa))
}

/// The proxy dropped the pass-through object at `gpa`: close our descriptors of it
/// (a System V attachment was detached here when libos unmapped its last page).
pub fn shared_dropped(gpa: u64) {
    SYSV.lock().retain(|s| s.gpa != gpa);
    SHARED.lock().retain(|s| {
        if s.gpa == gpa {
            linux(nr::CLOSE, [s.fd, 0, 0, 0, 0, 0]);
            false
        } else {
            true
        }
    });
}

/// Descriptor and file offset behind pass-through `[gpa, gpa+len)`.
fn shared_file(gpa: u64, len: u64) -> Option<(u64, u64)> {
    SHARED
        .lock()
        .iter()
        .find(|s| gpa >= s.gpa && gpa + len <= s.gpa + s.len)
        .map(|s| (s.fd, s.off + (gpa - s.gpa)))
}

fn futex_wake(word: &core::sync::atomic::AtomicU32) -> i64 {
    // Shared (not FUTEX_PRIVATE): the other side is the proxy, another process,
    // waiting on the same memfd page.
    linux(
        nr::FUTEX,
        [
            word.as_ptr() as u64,
            nr::FUTEX_WAKE,
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
                return -22;
            }
            futex_wake(&super::platform::thread_slot(value as usize).req_seq);
            0
        }
        ports::WAIT => {
            let core = super::percpu::cpu().core.load(Ordering::Relaxed) as usize;
            let page = super::platform::core_page(core);
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
                nr::FUTEX,
                [
                    page.wake_seq.as_ptr() as u64,
                    nr::FUTEX_WAIT,
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
                return -22;
            }
            futex_wake(&super::platform::core_page(value as usize).wake_seq);
            0
        }
        _ => -22,
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

    // Every trap signal: rdi = signal, rsi = siginfo, rdx = ucontext, on the
    // running thread's runtime stack (sigaltstack).
    .global mote_hosted_signal
mote_hosted_signal:
    cld
    jmp {handler}

    .global mote_hosted_kick
mote_hosted_kick:
    cld
    jmp {kick}

    // sa_restorer: back to the interrupted code with the ucontext's registers.
    .global mote_hosted_restorer
mote_hosted_restorer:
    mov eax, {sigreturn}
    syscall
    ud2
"#,
    main = sym hosted_main,
    secondary = sym hosted_secondary,
    clone = const nr::CLONE,
    handler = sym hosted_signal,
    kick = sym hosted_kick,
    sigreturn = const nr::RT_SIGRETURN,
);

unsafe extern "C" {
    static mote_hosted_signal: u8;
    static mote_hosted_kick: u8;
    static mote_hosted_restorer: u8;
    fn mote_hosted_clone(flags: u64, stack: u64) -> i64;
}

/// The proxy's start-up facts (set by `hosted_main`).
static INFO: spin::Once<(&'static BootInfo, &'static HostedInfo)> = spin::Once::new();

/// First Rust code of the hosted runtime (core 0, the process's first thread):
/// claim the traps, start a Linux thread per further LWK core, then start as the
/// partition's core 0 does.
extern "C" fn hosted_main(boot: &'static BootInfo, core: usize, info: &'static HostedInfo) -> ! {
    if info.magic != HOSTED_MAGIC {
        linux(nr::EXIT_GROUP, [125, 0, 0, 0, 0, 0]);
    }
    GUEST_FD.store(info.guest_fd as i32, Ordering::Relaxed);
    LARGE_FD.store(info.large_fd as i32, Ordering::Relaxed);
    LARGE_GPA.store(info.large_gpa, Ordering::Relaxed);
    HOSTED.store(true, Ordering::Relaxed);
    INFO.call_once(|| (boot, info));
    // The proxy's descriptors, for shared file mappings (it allowed us with
    // PR_SET_PTRACER where Yama restricts ptrace access).
    let ppid = linux(nr::GETPPID, [0; 6]);
    let pidfd = linux(nr::PIDFD_OPEN, [ppid as u64, 0, 0, 0, 0, 0]);
    PROXY_PIDFD.store(pidfd.max(-1) as i32, Ordering::Relaxed);
    let ncores = (boot.ncores as usize).clamp(1, MAX_CORES);
    claim_traps();
    for c in 1..ncores {
        // The core number at the top of its stack, for mote_hosted_clone.
        let stack = upcall_stack_top(c) - 16;
        // SAFETY: `stack` is the top of core c's upcall stack, in the runtime
        // region (mapped read-write), used by nothing else yet.
        unsafe { (stack as *mut u64).write(c as u64) };
        // SAFETY: the new thread starts in hosted_secondary on that stack and never
        // returns; it shares everything of this process, as a vCPU shares the VM.
        if unsafe { mote_hosted_clone(nr::CLONE_THREAD_FLAGS, stack) } < 0 {
            linux(nr::EXIT_GROUP, [125, 0, 0, 0, 0, 0]);
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
            nr::SCHED_SETAFFINITY,
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
    CORE_TID[core % MAX_CORES].store(linux(nr::GETTID, [0; 6]) as i32, Ordering::Relaxed);
    // Core 0's first context becomes the main thread, whose runtime stack is
    // this upcall stack; a secondary core's becomes its idle context, which has
    // no signal stack (`threads::idle_loop`). Setting one here would stick:
    // Linux refuses to disable the signal stack rsp is on.
    if core == 0 {
        on_switch(core, upcall_stack_top(core), UPCALL_STACK_SIZE);
    }
    dispatch_on(boot);
    crate::partition::runtime_main(boot, core)
}

/// The proxy's kick (`SIGRTMAX`, see the proxy's `signals`): a signal from
/// outside is pending for the application.
const KICK: i32 = 64;

/// Install the trap-signal and kick handlers (process-wide) and unblock them.
/// Everything else stays as the forking thread had it: the proxy blocks the
/// signals it routes (Ctrl-C reaches both processes; the proxy's router records
/// it and kicks this process, whose own copy stays pending, unused).
fn claim_traps() {
    // Trap signals: NODEFER and an empty mask, so a thread switch inside the
    // handler (a blocking call) leaves the signal deliverable for the next
    // thread. They are synchronous: one at a time, each from its thread's own
    // code. The kick is not NODEFER: Linux defers it while its handler runs, so
    // queued kicks come one after another instead of nesting (see the module
    // comment). Its handler never switches threads (it delivers under the
    // PROCESS lock, and nothing holding it gives up the core), so the deferral
    // ends with the handler.
    let trap = nr::SA_SIGINFO | nr::SA_ONSTACK | nr::SA_RESTORER | nr::SA_NODEFER;
    let kick = nr::SA_SIGINFO | nr::SA_ONSTACK | nr::SA_RESTORER;
    let mut unblock = 0u64;
    for (s, handler, flags) in [
        (sig::SIGSYS, &raw const mote_hosted_signal, trap),
        (sig::SIGSEGV, &raw const mote_hosted_signal, trap),
        (sig::SIGBUS, &raw const mote_hosted_signal, trap),
        (sig::SIGILL, &raw const mote_hosted_signal, trap),
        (sig::SIGFPE, &raw const mote_hosted_signal, trap),
        (sig::SIGTRAP, &raw const mote_hosted_signal, trap),
        (KICK, &raw const mote_hosted_kick, kick),
    ] {
        unblock |= 1 << (s - 1);
        let act = SigAction {
            handler: handler as u64,
            flags,
            restorer: &raw const mote_hosted_restorer as u64,
            mask: 0,
        };
        if linux(
            nr::RT_SIGACTION,
            [s as u64, &act as *const SigAction as u64, 0, 8, 0, 0],
        ) < 0
        {
            linux(nr::EXIT_GROUP, [125, 0, 0, 0, 0, 0]);
        }
    }
    linux(
        nr::RT_SIGPROCMASK,
        [nr::SIG_UNBLOCK, &unblock as *const u64 as u64, 0, 8, 0, 0],
    );
}

/// Turn Syscall User Dispatch on for the calling thread: `syscall` outside the
/// runtime's text raises `SIGSYS`.
fn dispatch_on(boot: &BootInfo) {
    let (start, end) = (boot.runtime_text_start, boot.runtime_text_end);
    if linux(
        nr::PRCTL,
        [
            nr::PR_SET_SYSCALL_USER_DISPATCH,
            nr::PR_SYS_DISPATCH_ON,
            start,
            end - start,
            0, // no selector: outside the runtime's text every syscall is dispatched
            0,
        ],
    ) < 0
    {
        // The proxy checked that the kernel has it; this is not expected.
        linux(nr::EXIT_GROUP, [125, 0, 0, 0, 0, 0]);
    }
}

/// `struct sigaction` as the kernel takes it (`rt_sigaction`, x86_64).
#[repr(C)]
struct SigAction {
    handler: u64,
    flags: u64,
    restorer: u64,
    mask: u64,
}

/// `stack_t`.
#[repr(C)]
struct StackT {
    sp: u64,
    flags: i32,
    _pad: i32,
    size: u64,
}

/// Top of each core's signal stack as last set (0: not yet).
static SIGNAL_STACK_TOP: [AtomicU64; MAX_CORES] = [const { AtomicU64::new(0) }; MAX_CORES];

/// Cores whose kick is blocked from `before_switch` to the next `on_switch`.
static KICK_HELD: [AtomicBool; MAX_CORES] = [const { AtomicBool::new(false) }; MAX_CORES];

/// The running context of `core` is about to switch stacks. If it is a thread,
/// its runtime stack is the signal stack and holds its live frames (the signal
/// frame of the trap it blocks in, the runtime's frames below it); a kick
/// arriving after the stack switch, before the next context's `on_switch`, would
/// find rsp off that signal stack and Linux would write its frame at the top,
/// over them. Block the kick until `on_switch` (it stays pending and arrives
/// then, on the right stack). Leaving the idle context needs nothing: it has no
/// signal stack, so a kick meanwhile lands below rsp on whichever stack that is.
pub fn before_switch(core: usize) {
    if SIGNAL_STACK_TOP[core % MAX_CORES].load(Ordering::Relaxed) != 0 {
        block_kick(true);
        KICK_HELD[core % MAX_CORES].store(true, Ordering::Relaxed);
    }
}

/// A thread starts or resumes on `core` with its runtime stack `[top - size,
/// top)` (`top == 0`: the idle context, on its own stack): make that the stack
/// its traps are handled on, then let a kick held by `before_switch` in. A trap
/// of one thread may block inside `shim_trap` (a futex wait, a forwarded call)
/// while other threads of the core run, so each thread's signal frames must
/// stay on its own stack. Called on the resumed thread's stack, which is
/// therefore not the signal stack in use (Linux refuses to move that one)
/// unless it is already the right one.
pub fn on_switch(core: usize, top: u64, size: u64) {
    if SIGNAL_STACK_TOP[core % MAX_CORES].swap(top, Ordering::Relaxed) != top {
        set_signal_stack(top, size);
    }
    if KICK_HELD[core % MAX_CORES].swap(false, Ordering::Relaxed) {
        block_kick(false);
    }
}

/// Block (or unblock) the kick for the calling thread.
fn block_kick(block: bool) {
    let set = 1u64 << (KICK - 1);
    let how = if block {
        nr::SIG_BLOCK
    } else {
        nr::SIG_UNBLOCK
    };
    linux(
        nr::RT_SIGPROCMASK,
        [how, &set as *const u64 as u64, 0, 8, 0, 0],
    );
}

/// Make `[top - size, top)` the stack signals are handled on (`top == 0`: none,
/// signals are handled on the current stack).
fn set_signal_stack(top: u64, size: u64) {
    const SS_DISABLE: i32 = 2;
    let st = StackT {
        sp: top.saturating_sub(size),
        flags: if top == 0 { SS_DISABLE } else { 0 },
        _pad: 0,
        size,
    };
    linux(
        nr::SIGALTSTACK,
        [&st as *const StackT as u64, 0, 0, 0, 0, 0],
    );
}

// --- traps -------------------------------------------------------------------------

/// `struct sigcontext` (64-bit, `asm/sigcontext.h`) as it sits in `ucontext`.
#[repr(C)]
struct SigContext {
    r8: u64,
    r9: u64,
    r10: u64,
    r11: u64,
    r12: u64,
    r13: u64,
    r14: u64,
    r15: u64,
    rdi: u64,
    rsi: u64,
    rbp: u64,
    rbx: u64,
    rdx: u64,
    rax: u64,
    rcx: u64,
    rsp: u64,
    rip: u64,
    eflags: u64,
    cs_gs_fs_ss: u64,
    err: u64,
    trapno: u64,
    oldmask: u64,
    cr2: u64,
    fpstate: u64,
    reserved: [u64; 8],
}

/// `struct ucontext` (`asm/ucontext.h`): flags, link, `stack_t`, then the
/// registers.
#[repr(C)]
struct UContext {
    flags: u64,
    link: u64,
    stack: StackT,
    mcontext: SigContext,
    sigmask: u64,
}

static_assertions::const_assert_eq!(size_of::<StackT>(), 24);
static_assertions::const_assert_eq!(offset_of!(UContext, mcontext), 40);
static_assertions::const_assert_eq!(offset_of!(SigContext, rip), 128);
static_assertions::const_assert_eq!(offset_of!(SigContext, cr2), 176);
static_assertions::const_assert_eq!(size_of::<SigContext>(), 256);
static_assertions::const_assert_eq!(offset_of!(UContext, sigmask), 296);

/// The head of `siginfo_t` (`asm-generic/siginfo.h`): signo, errno, code, then
/// the union (`si_addr`; for `SIGSYS` `si_call_addr`, `si_syscall`, `si_arch`).
#[repr(C)]
struct SigInfoHead {
    signo: i32,
    errno: i32,
    code: i32,
    _pad: i32,
    addr: u64,
    syscall: i32,
    arch: u32,
}

/// `struct _fpx_sw_bytes` (`asm/sigcontext.h`): in the reserved bytes 464..512 of
/// a signal frame's FP image, saying whether it is an xsave image and of which
/// features.
const FP_SW_BYTES: u64 = 464;
/// `FP_XSTATE_MAGIC1`.
const FP_XSTATE_MAGIC1: u32 = 0x4650_5853;

/// The xsave feature mask of the signal frame's FP image at `fpstate`, or `None`
/// for a legacy (fxsave) image.
fn fp_features(fpstate: u64) -> Option<u64> {
    // SAFETY: `fpstate` is the kernel's FP image in the signal frame on this
    // thread's signal stack (at least 512 bytes, 64-byte aligned).
    unsafe {
        let magic = ((fpstate + FP_SW_BYTES) as *const u32).read();
        (magic == FP_XSTATE_MAGIC1).then(|| ((fpstate + FP_SW_BYTES + 8) as *const u64).read())
    }
}

/// Load the application's FP/SIMD state, which Linux saved in the signal frame,
/// into the registers: while the runtime handles a trap they hold the
/// application's state, as in the partition (the runtime is soft-float, and
/// libos's signal delivery and thread switches save and restore the registers).
fn fp_load(fpstate: u64) {
    // SAFETY: the image is the one Linux wrote for this signal (valid by
    // construction), 64-byte aligned; xrstor/fxrstor only read it.
    unsafe {
        match fp_features(fpstate) {
            Some(mask) => asm!("xrstor64 [{}]", in(reg) fpstate, in("eax") mask as u32,
                               in("edx") (mask >> 32) as u32, options(nostack)),
            None => asm!("fxrstor64 [{}]", in(reg) fpstate, options(nostack)),
        }
    }
}

/// Put the registers' FP/SIMD state back into the signal frame, which
/// `rt_sigreturn` restores: whatever the runtime left there (a handler's initial
/// state, a state restored by the application's `rt_sigreturn`, another thread's)
/// is what the application continues with. The software bytes (464..512) and the
/// image's size are Linux's: xsave leaves those bytes alone and writes only the
/// features the frame was made for.
fn fp_store(fpstate: u64) {
    // SAFETY: as fp_load; xsave/fxsave write only within the image Linux sized
    // for these features.
    unsafe {
        match fp_features(fpstate) {
            Some(mask) => asm!("xsave64 [{}]", in(reg) fpstate, in("eax") mask as u32,
                               in("edx") (mask >> 32) as u32, options(nostack)),
            None => asm!("fxsave64 [{}]", in(reg) fpstate, options(nostack)),
        }
    }
}

/// The proxy's kick: a signal from outside waits for the application. In
/// application code, enter the runtime as the partition's VMM redirects a vCPU
/// (`VECTOR_SIGNAL`), so the signal is delivered now; anywhere in the runtime,
/// nothing: the runtime sees the signal on its way back to the application, or
/// the next kick catches it.
extern "C" fn hosted_kick(_signal: i32, _info: &SigInfoHead, uc: &mut UContext) {
    let Some((boot, _)) = INFO.get() else { return };
    let rip = uc.mcontext.rip;
    let in_runtime = rip >= boot.runtime_text_start && rip < boot.runtime_text_end;
    if in_runtime || rip >= mote_abi::layout::USER_END {
        return;
    }
    let fpstate = uc.mcontext.fpstate;
    if fpstate != 0 {
        fp_load(fpstate);
    }
    let mut f = frame_of(&uc.mcontext, mote_abi::signal::VECTOR_SIGNAL, 0);
    crate::partition::shim_trap(&mut f);
    write_back(&f, &mut uc.mcontext, true);
    if fpstate != 0 {
        fp_store(fpstate);
    }
}

/// A `TrapFrame` of the interrupted registers.
fn frame_of(m: &SigContext, vector: u64, cr2: u64) -> TrapFrame {
    TrapFrame {
        r15: m.r15,
        r14: m.r14,
        r13: m.r13,
        r12: m.r12,
        r11: m.r11,
        r10: m.r10,
        r9: m.r9,
        r8: m.r8,
        rbp: m.rbp,
        rdi: m.rdi,
        rsi: m.rsi,
        rdx: m.rdx,
        rcx: m.rcx,
        rbx: m.rbx,
        rax: m.rax,
        hdr: mote_abi::trap::UpcallHeader {
            vector,
            error_code: m.err,
            cr2,
            rip: m.rip,
            rflags: m.eflags,
            rsp: m.rsp,
            _pad: 0,
        },
    }
}

/// The frame's registers back into the ucontext `rt_sigreturn` restores; unless
/// `full`, a system call returns as from `syscall` (rcx and r11 take the return
/// address and flags).
fn write_back(f: &TrapFrame, m: &mut SigContext, full: bool) {
    m.r15 = f.r15;
    m.r14 = f.r14;
    m.r13 = f.r13;
    m.r12 = f.r12;
    m.r11 = f.r11;
    m.r10 = f.r10;
    m.r9 = f.r9;
    m.r8 = f.r8;
    m.rbp = f.rbp;
    m.rdi = f.rdi;
    m.rsi = f.rsi;
    m.rdx = f.rdx;
    m.rcx = f.rcx;
    m.rbx = f.rbx;
    m.rax = f.rax;
    m.rip = f.hdr.rip;
    m.rsp = f.hdr.rsp;
    m.eflags = f.hdr.rflags;
    if !full && f.hdr.vector == VECTOR_SYSCALL {
        m.rcx = f.hdr.rip;
        m.r11 = f.hdr.rflags;
    }
}

extern "C" fn hosted_signal(signal: i32, info: &SigInfoHead, uc: &mut UContext) {
    MOTE_HOSTED_TRAPS.fetch_add(1, Ordering::Relaxed);
    let fpstate = uc.mcontext.fpstate;
    if fpstate != 0 {
        fp_load(fpstate);
    }
    let m = &uc.mcontext;
    let vector = mote_abi::hosted::trap_vector(signal, info.code, m.trapno);
    let cr2 = if vector == vector::PF { info.addr } else { 0 };
    let mut f = frame_of(m, vector, cr2);
    if signal == sig::SIGBUS && vector == vector::PF {
        f.hdr.error_code |= mote_abi::trap::PF_SIGBUS;
    }
    if vector == VECTOR_SYSCALL {
        // Dispatch rolled rax back to the number; Linux's `syscall` would clobber
        // rcx and r11 with the return address and flags.
        f.rcx = m.rip;
        f.r11 = m.eflags;
    }
    // A `SIGBUS` for a page fault (Linux could not back a mapped page: a shared
    // file truncated under its mapping) goes the same way: libos finds the page
    // beyond the file's end and delivers `SIGBUS` to the application's handler,
    // or ends the run with it.
    // 0: return as from `syscall`; otherwise every register comes from the frame
    // (as the partition's `mote_full_exit`).
    let full = crate::partition::shim_trap(&mut f) != 0;
    write_back(&f, &mut uc.mcontext, full);
    if fpstate != 0 {
        fp_store(fpstate);
    }
}
