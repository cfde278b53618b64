//! The offload server: one thread per application thread, on the host's Linux core,
//! serving that thread's IKC slot (protocol at the top of `mote_abi::ikc`). Slot 0
//! (the main thread) and each core's idle-context slot (`ikc::idle_slot`) are
//! served from the start; libos asks for more with `Op::StartServer` when it
//! creates threads.
//!
//! A forwarded system call runs here with a raw `syscall` instruction, in the
//! unified address space (`mirror`): the application's pointers are valid as they
//! are. The map log is applied before every request, so memory libos published
//! before making the call is visible. Numbers that would act on the proxy itself
//! (its threads, signal state, address space) are refused with `ENOSYS`: libos
//! implements them locally, so seeing one here is a bug worth a line on stderr.
#![allow(unsafe_code)]

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;

use mote_abi::ikc::{Op, Request, Slot, MAX_THREADS, SPIN_LIMIT, THREAD_SLOTS};
use mote_abi::trap::FaultReport;
use syscalls::{Sysno, SysnoSet};

use crate::guest::GuestMem;
use crate::mirror::{copy_user, read_user, zero_user, Mirror};
use crate::vmm::Event;

/// The host CPUs this process may run on (its affinity set, as `taskset` or a
/// batch system gave it), ascending; never empty.
pub fn host_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain bits; sched_getaffinity(0) fills it for this thread
    // (all threads of mote start with the process's set).
    let cpus: Vec<usize> = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return vec![0];
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    };
    if cpus.is_empty() {
        vec![0]
    } else {
        cpus
    }
}

/// The Linux core: the first allowed host CPU (offload threads run there).
pub fn linux_core() -> usize {
    host_cpus()[0]
}

/// Longest libos log message printed (longer ones are cut).
const LOG_MAX: usize = 4096;

/// The x32 ABI bit of a system call number: an x86_64 process never uses it, and the
/// refusal list below would not recognise `exit | X32_BIT`.
const X32_SYSCALL_BIT: u64 = 0x4000_0000;

/// Calls that would act on the proxy itself if executed here.
pub const REFUSED: SysnoSet = SysnoSet::new(&[
    // Process and thread life: would end or clone the proxy.
    Sysno::exit,
    Sysno::exit_group,
    Sysno::clone,
    Sysno::clone3,
    Sysno::fork,
    Sysno::vfork,
    Sysno::execve,
    Sysno::execveat,
    // Signal state of the proxy's thread, and the signals the proxy routes to the
    // application (signals.rs): libos answers these.
    Sysno::rt_sigreturn,
    Sysno::rt_sigaction,
    Sysno::rt_sigprocmask,
    Sysno::sigaltstack,
    Sysno::rt_sigsuspend,
    Sysno::rt_sigtimedwait,
    Sysno::signalfd,
    Sysno::signalfd4,
    // The proxy's address space (the application's is libos's).
    Sysno::mmap,
    Sysno::munmap,
    Sysno::mprotect,
    Sysno::pkey_mprotect,
    Sysno::mremap,
    Sysno::remap_file_pages,
    Sysno::brk,
    Sysno::madvise,
    Sysno::mseal,
    Sysno::shmat,
    Sysno::shmdt,
    Sysno::modify_ldt,
    // Per-thread state of the offload thread.
    Sysno::arch_prctl,
    Sysno::set_tid_address,
    Sysno::set_robust_list,
    Sysno::rseq,
    Sysno::seccomp,
    Sysno::unshare,
    Sysno::setns,
    Sysno::personality,
]);

/// Linux tid of each slot's server (0: none yet): the application thread's tid.
static TIDS: [AtomicU32; MAX_THREADS] = [const { AtomicU32::new(0) }; MAX_THREADS];

/// Thread slots that have a server (bit per slot).
static SERVED: [AtomicU64; MAX_THREADS / 64] = [const { AtomicU64::new(0) }; MAX_THREADS / 64];

/// Start the offload thread of thread slot `slot`, pinned to host CPU `pin` (None:
/// not pinned). The thread ends after its application thread reports the end of the
/// run (`Exit` or `Fatal`). `Ok(None)`: the slot already has one.
pub fn spawn(
    slot: usize,
    guest: Arc<GuestMem>,
    mirror: Arc<Mirror>,
    events: Sender<Event>,
    pin: Option<usize>,
) -> io::Result<Option<JoinHandle<()>>> {
    if slot >= MAX_THREADS {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let bit = 1u64 << (slot % 64);
    if SERVED[slot / 64].fetch_or(bit, Ordering::AcqRel) & bit != 0 {
        return Ok(None);
    }
    let started = std::thread::Builder::new()
        .name(format!("mote-offload{slot}"))
        .spawn(move || {
            // SAFETY: gettid has no arguments and cannot fail.
            let tid = unsafe { libc::gettid() };
            TIDS[slot].store(tid as u32, Ordering::Release);
            if let Some(cpu) = pin {
                if let Err(e) = pin_to(cpu) {
                    crate::say!("mote: offload thread {slot}: cannot pin to CPU {cpu}: {e}");
                }
            }
            crate::signals::register_offload(slot);
            serve(slot, &guest, &mirror, &events, pin);
        });
    match started {
        Ok(h) => Ok(Some(h)),
        Err(e) => {
            SERVED[slot / 64].fetch_and(!bit, Ordering::AcqRel);
            Err(e)
        }
    }
}

/// This process is a vfork child of the proxy (serving one thread slot).
static IN_VFORK_CHILD: AtomicBool = AtomicBool::new(false);

/// Read ends of the pipes that tell a vfork parent its child exec'd or ended.
static VFORK_PIPES: Mutex<Vec<(i32, i32)>> = Mutex::new(Vec::new());

/// `Op::Fork`: fork the proxy; the child process serves `slot`.
fn fork_child(
    slot: usize,
    guest: &Arc<GuestMem>,
    mirror: &Arc<Mirror>,
    events: &Sender<Event>,
    pin: Option<usize>,
) -> i64 {
    if slot >= MAX_THREADS {
        return -i64::from(libc::EINVAL);
    }
    let mut fds = [0i32; 2];
    // SAFETY: pipe2 writes two descriptors into fds.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return -i64::from(
            io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EMFILE),
        );
    }
    protect_fds(fds);
    let guard = mirror.fork_guard();
    // SAFETY: getpid has no arguments.
    let parent = unsafe { libc::getpid() };
    // SAFETY: the child only serves one slot with raw system calls and the
    // mirror (whose lock is held across the fork, so it is consistent); it never
    // returns into the parent's other threads' state.
    let pid = unsafe { libc::fork() };
    drop(guard);
    match pid {
        -1 => {
            let e = io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EAGAIN);
            // SAFETY: closing our own pipe.
            unsafe {
                libc::close(fds[0]);
                libc::close(fds[1]);
            }
            -i64::from(e)
        }
        0 => {
            IN_VFORK_CHILD.store(true, Ordering::Relaxed);
            // The child's server ends with the run, even while the child is
            // stuck in a call (the parent-death signal comes when this offload
            // thread of the parent ends, at the latest when the run does); its
            // exec clears it (`spawn::exec_in_partition`).
            // SAFETY: prctl and getppid on this process only.
            unsafe {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                if libc::getppid() != parent {
                    libc::_exit(1);
                }
            }
            // SAFETY: the read end is the parent's; the write end closes at exec
            // or exit, which is what the parent waits for.
            unsafe { libc::close(fds[0]) };
            serve(slot, guest, mirror, events, pin);
            // SAFETY: a child process never returns into the parent's code.
            unsafe { libc::_exit(0) }
        }
        pid => {
            // SAFETY: the write end is the child's.
            unsafe { libc::close(fds[1]) };
            VFORK_PIPES
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((pid, fds[0]));
            i64::from(pid)
        }
    }
}

/// `Op::VforkWait`: block until child `pid` exec'd or ended, then release its
/// thread slot's pending call with `VFORK_GONE`. A signal for the application
/// interrupts the wait as it does a forwarded call (`-EINTR`, the child still
/// registered): the parent's libos then acts on it (a `SIGTERM` ends the run, as
/// it ends a vfork parent on Linux, even while the child is stuck in a call
/// served by its own forked proxy) and waits again.
fn vfork_wait(pid: i32, slot: usize, guest: &GuestMem, index: usize) -> i64 {
    let fd = {
        let mut pipes = VFORK_PIPES.lock().unwrap_or_else(|p| p.into_inner());
        let Some(i) = pipes.iter().position(|&(p, _)| p == pid) else {
            return -i64::from(libc::ECHILD);
        };
        pipes.swap_remove(i).1
    };
    let mut b = [0u8; 1];
    crate::signals::offload_busy(index, true);
    // SAFETY: fd is our pipe's read end; read blocks until the child's write end
    // closes (exec or exit).
    let r = unsafe { libc::read(fd, b.as_mut_ptr().cast(), 1) };
    let err = io::Error::last_os_error().raw_os_error();
    crate::signals::offload_busy(index, false);
    if r < 0 && err == Some(libc::EINTR) {
        VFORK_PIPES
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((pid, fd));
        return -i64::from(libc::EINTR);
    }
    // SAFETY: closing our own pipe end.
    unsafe { libc::close(fd) };
    unprotect_fd(fd);
    if slot < MAX_THREADS {
        let s = guest.thread_slot(slot);
        let seq = s.req_seq.load(Ordering::Acquire);
        if s.resp_seq.load(Ordering::Acquire) != seq {
            let waiter = s.respond(seq, mote_abi::ikc::VFORK_GONE);
            if waiter != 0 {
                wake_core(guest, waiter as usize - 1);
            }
        }
    }
    0
}

/// Wake core `core`, which may sleep on its `wake_seq` waiting for a response.
pub fn wake_core(guest: &GuestMem, core: usize) {
    if core < mote_abi::layout::MAX_CORES {
        let page = guest.core_page(core);
        page.wake_seq.fetch_add(1, Ordering::SeqCst);
        futex_wake(&page.wake_seq);
    }
}

/// Serve thread slot `index` until the run ends; sends the ending `Event`.
pub fn serve(
    index: usize,
    guest: &Arc<GuestMem>,
    mirror: &Arc<Mirror>,
    events: &Sender<Event>,
    pin: Option<usize>,
) {
    let slot = guest.thread_slot(index);
    // The last request answered; a request is pending when req_seq differs.
    let mut last = slot.resp_seq.load(Ordering::Acquire);
    let child = IN_VFORK_CHILD.load(Ordering::Relaxed);
    // An idle context calls only to report the end of the run (a runtime panic):
    // its server sleeps at once and leaves the spinning to the threads' servers.
    let spin = index < THREAD_SLOTS;
    loop {
        let req = wait_request(guest, slot, last, spin);
        last = req.seq;
        // A vfork child process leaves the map log to the parent, which is the
        // one that keeps running (the child's mirror stays as it was at the fork).
        if !child {
            mirror.sync(guest.maplog());
        }
        let ret = match Op::from_u32(req.op) {
            Some(Op::Syscall) => {
                // A signal for the application interrupts the call (signals.rs).
                crate::signals::offload_busy(index, true);
                let r = forward(req.nr, req.args);
                crate::signals::offload_busy(index, false);
                r
            }
            Some(Op::Exit) if child => {
                // SAFETY: ends this (forked, single-threaded) process at once.
                unsafe { libc::_exit((req.args[0] & 0xff) as i32) }
            }
            Some(Op::Exit) => {
                let _ = events.send(Event::Exited((req.args[0] & 0xff) as i32));
                return;
            }
            Some(Op::Fatal) if child => {
                let sig = req.args[0] as i32;
                crate::say!(
                    "mote: child process {}: killed by signal {sig}",
                    std::process::id()
                );
                // SAFETY: default action for the signal, then raise it: the process
                // ends as killed by it (the parent's wait4 sees that).
                unsafe {
                    libc::signal(sig, libc::SIG_DFL);
                    libc::raise(sig);
                    libc::_exit(128 + sig)
                }
            }
            Some(Op::Fork) => fork_child(req.args[0] as usize, guest, mirror, events, pin),
            Some(Op::VforkWait) => {
                vfork_wait(req.args[0] as i32, req.args[1] as usize, guest, index)
            }
            Some(Op::SpawnExec) => {
                crate::spawn::exec_in_partition(req.args[0], req.args[1], req.args[2])
            }
            Some(Op::Fatal) => {
                let page = guest.core_page(req.args[2] as usize % mote_abi::layout::MAX_CORES);
                let fault = (req.args[1] != 0).then(|| {
                    // SAFETY: the core page is live shared memory for as long as
                    // `guest`; FaultReport is plain integers (any bit pattern is
                    // valid); libos wrote it before publishing the request, which the
                    // Acquire load of req_seq in `poll` ordered before this read.
                    unsafe { std::ptr::read_volatile(&page.fault as *const FaultReport) }
                });
                let signal = req.args[0] as u32;
                let _ = events.send(Event::Killed { signal, fault });
                return;
            }
            Some(Op::Log) => log(index, req.args[0], req.args[1]),
            Some(Op::Nop) => 0,
            Some(Op::Zero) => match zero_user(req.args[0], req.args[1]) {
                Ok(()) => 0,
                Err(e) => -i64::from(e.raw_os_error().unwrap_or(libc::EFAULT)),
            },
            Some(Op::Write) => match copy_user(req.args[0], req.args[1], req.args[2]) {
                Ok(()) => 0,
                Err(e) => -i64::from(e.raw_os_error().unwrap_or(libc::EFAULT)),
            },
            Some(Op::MapShared) => mirror.map_shared(req.args),
            Some(Op::ShmAttach) => mirror.attach_shm(req.args),
            Some(Op::Unshare) => mirror.unshare(req.args[0]),
            Some(Op::SharedLen) => mirror.shared_len(req.args[0]),
            Some(Op::StartServer) => {
                let r = spawn(
                    req.args[0] as usize,
                    guest.clone(),
                    mirror.clone(),
                    events.clone(),
                    pin,
                );
                match r {
                    Ok(_) => {
                        // The server's tid is the new application thread's.
                        let i = req.args[0] as usize;
                        loop {
                            let tid = TIDS[i].load(Ordering::Acquire);
                            if tid != 0 {
                                break i64::from(tid);
                            }
                            std::thread::yield_now();
                        }
                    }
                    Err(e) => {
                        crate::say!("mote: cannot start the offload thread of application thread slot {}: {e}", req.args[0]);
                        -i64::from(e.raw_os_error().unwrap_or(libc::EAGAIN))
                    }
                }
            }
            Some(Op::CpuTimes) => {
                let times = crate::signals::cpu_times(req.args[1] as usize);
                let bytes: Vec<u8> = times.iter().flat_map(|n| n.to_ne_bytes()).collect();
                match crate::mirror::write_user(req.args[0], &bytes) {
                    Ok(()) => times.len() as i64,
                    Err(e) => -i64::from(e.raw_os_error().unwrap_or(libc::EFAULT)),
                }
            }
            Some(Op::PageSizes) => {
                let sizes = crate::hosted::page_sizes(req.args[0], req.args[1])
                    .unwrap_or_else(|| crate::boot::page_sizes(guest, req.args[0], req.args[1]));
                let bytes: Vec<u8> = sizes.iter().flat_map(|n| n.to_ne_bytes()).collect();
                match crate::mirror::write_user(req.args[2], &bytes) {
                    Ok(()) => 0,
                    Err(e) => -i64::from(e.raw_os_error().unwrap_or(libc::EFAULT)),
                }
            }
            None => {
                warn_once(&UNKNOWN_OP_WARNED, || {
                    format!(
                        "mote: thread slot {index}: unknown IKC op {} (answered ENOSYS)",
                        req.op
                    )
                });
                -i64::from(libc::ENOSYS)
            }
        };
        let waiter = slot.respond(req.seq, ret);
        if waiter != 0 {
            wake_core(guest, waiter as usize - 1);
        }
    }
}

/// Offload threads spinning for a request now, and how many may.
static SPINNERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
const MAX_SPINNERS: usize = 2;

/// Polls right after answering a call before the thread counts itself among the
/// `SPINNERS`: the requester's next call usually comes within a few hundred ns
/// (its thread returns to the application and calls again), and this window
/// serves it without an atomic read-modify-write on a shared counter per call
/// (a locked instruction also waits for the response's store to leave the store
/// buffer). Bounded (a few µs), so a crowd of threads just past their calls
/// cannot starve the Linux core for long.
const GRACE_SPINS: u32 = 256;

/// Wait for a request after `last`: with `spin`, poll for `GRACE_SPINS` and spin
/// (bounded, while few others do); then sleep on `req_seq`. Before sleeping,
/// wake the requester's core if it waits (the late check of the protocol,
/// `mote_abi::ikc`: `respond` does not fence).
fn wait_request(guest: &GuestMem, slot: &Slot, last: u32, spin: bool) -> Request {
    for _ in 0..if spin { GRACE_SPINS } else { 0 } {
        if let Some(r) = slot.poll(last) {
            return r;
        }
        std::hint::spin_loop();
    }
    loop {
        // Spin only while few others do: every offload thread shares the Linux
        // core, and a crowd of spinners (an application with many threads) would
        // starve the one with a request to serve.
        if spin {
            if SPINNERS.fetch_add(1, Ordering::AcqRel) < MAX_SPINNERS {
                for _ in 0..SPIN_LIMIT {
                    if let Some(r) = slot.poll(last) {
                        SPINNERS.fetch_sub(1, Ordering::AcqRel);
                        return r;
                    }
                    std::hint::spin_loop();
                }
            }
            SPINNERS.fetch_sub(1, Ordering::AcqRel);
        }
        if let Some(r) = slot.poll(last) {
            return r;
        }
        if slot.begin_sleep(last) {
            let waiter = slot.waiting_requester();
            if waiter != 0 {
                wake_core(guest, waiter as usize - 1);
            }
            futex_wait(&slot.req_seq, last);
            slot.end_sleep();
        }
    }
}

/// Execute system call `nr` for the application; Linux's result or `-errno`.
pub fn forward(nr: u64, args: [u64; 6]) -> i64 {
    if nr & X32_SYSCALL_BIT != 0 {
        warn_once(&X32_WARNED, || {
            format!("mote: refused forwarded x32 system call {nr:#x}")
        });
        return -i64::from(libc::ENOSYS);
    }
    if let Some(sysno) = refused(nr) {
        let id = sysno.id() as usize;
        let bit = 1u64 << (id % 64);
        if REFUSED_WARNED[id / 64].fetch_or(bit, Ordering::Relaxed) & bit == 0 {
            crate::say!("mote: refused forwarded {}", sysno.name());
        }
        return -i64::from(libc::ENOSYS);
    }
    if let Some(ret) = guard_own_state(nr, args) {
        return ret;
    }
    let [a0, a1, a2, a3, a4, a5] = args.map(|a| a as usize);
    // SAFETY: the call acts on the proxy's process on the application's behalf:
    // 1. numbers that would change the proxy's own threads, signal state or address
    //    space are refused above, and so are closing or replacing the proxy's own
    //    descriptors (guard_own_state), so Rust's view of this process stays valid;
    // 2. pointer arguments are application addresses, inside the mirror reservation
    //    that holds no proxy data; the kernel checks them (EFAULT) and writes through
    //    them only into guest memory.
    unsafe { syscalls::raw::syscall6(nr as usize, a0, a1, a2, a3, a4, a5) as i64 }
}

/// The proxy's own descriptors (guest memfd, KVM, vCPUs, ...), sorted: the
/// application did not open them and must not close or replace them.
static OWN_FDS: RwLock<Vec<u32>> = RwLock::new(Vec::new());

/// The descriptors open now, besides 0, 1 and 2 (call at start-up: these are the
/// application's inherited ones; later, to find the proxy's own).
pub fn open_fds() -> io::Result<Vec<i32>> {
    let mut fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&fd| fd > 2)
        .collect();
    // The directory's own descriptor was listed and is closed now.
    // SAFETY: F_GETFD only queries the descriptor table.
    fds.retain(|&fd| unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0);
    fds.sort_unstable();
    Ok(fds)
}

/// Protect `fds` from forwarded `close`, `close_range`, `dup2` and `dup3`.
pub fn protect_fds(fds: impl IntoIterator<Item = i32>) {
    let mut own = OWN_FDS.write().unwrap_or_else(|p| p.into_inner());
    own.extend(fds.into_iter().filter_map(|fd| u32::try_from(fd).ok()));
    own.sort_unstable();
    own.dedup();
}

/// Give `fd` back to the application's numbering (the proxy closed its own).
pub fn unprotect_fd(fd: i32) {
    let mut own = OWN_FDS.write().unwrap_or_else(|p| p.into_inner());
    if let Ok(fd) = u32::try_from(fd) {
        own.retain(|&o| o != fd);
    }
}

fn is_own_fd(fd: u64) -> bool {
    u32::try_from(fd).is_ok_and(|fd| {
        OWN_FDS
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .binary_search(&fd)
            .is_ok()
    })
}

/// Calls that are forwarded in general but would act on the proxy with these
/// arguments: answered here (`Some`) or left to Linux (`None`).
fn guard_own_state(nr: u64, args: [u64; 6]) -> Option<i64> {
    const CLOSE: u64 = Sysno::close.id() as u64;
    const DUP2: u64 = Sysno::dup2.id() as u64;
    const DUP3: u64 = Sysno::dup3.id() as u64;
    const CLOSE_RANGE: u64 = Sysno::close_range.id() as u64;
    const PRCTL: u64 = Sysno::prctl.id() as u64;
    match nr {
        // Not the application's descriptor: as if it were not open.
        CLOSE if is_own_fd(args[0]) => Some(-i64::from(libc::EBADF)),
        // Linux's answer when the target number is being set up by someone else.
        DUP2 | DUP3 if is_own_fd(args[1]) => Some(-i64::from(libc::EBUSY)),
        CLOSE_RANGE => Some(close_range_around_own(args[0], args[1], args[2])),
        // Seccomp filters and mm fields would bind the proxy, not the application.
        PRCTL if args[0] == libc::PR_SET_SECCOMP as u64 || args[0] == libc::PR_SET_MM as u64 => {
            warn_once(&PRCTL_WARNED, || {
                format!("mote: refused forwarded prctl option {}", args[0])
            });
            Some(-i64::from(libc::EINVAL))
        }
        _ => None,
    }
}

/// `close_range(first, last, flags)` over the application's descriptors only.
fn close_range_around_own(first: u64, last: u64, flags: u64) -> i64 {
    let (Ok(first), Ok(last)) = (u32::try_from(first), u32::try_from(last)) else {
        return -i64::from(libc::EINVAL);
    };
    if first > last {
        return -i64::from(libc::EINVAL);
    }
    // CLOSE_RANGE_UNSHARE would give the offload thread a descriptor table of its
    // own, apart from the rest of the proxy; the application has nothing to unshare.
    let flags = flags & !u64::from(libc::CLOSE_RANGE_UNSHARE);
    let own = OWN_FDS.read().unwrap_or_else(|p| p.into_inner()).clone();
    let mut ranges = Vec::new();
    let mut lo = Some(first);
    for &fd in own.iter().filter(|&&fd| fd >= first && fd <= last) {
        if let Some(l) = lo.filter(|&l| fd > l) {
            ranges.push((l, fd - 1));
        }
        lo = fd.checked_add(1);
    }
    if let Some(l) = lo.filter(|&l| l <= last) {
        ranges.push((l, last));
    }
    for (lo, hi) in ranges {
        // SAFETY: closes (or marks close-on-exec) only application descriptors: the
        // proxy's own are outside every range.
        let r = unsafe {
            syscalls::raw::syscall3(
                Sysno::close_range.id() as usize,
                lo as usize,
                hi as usize,
                flags as usize,
            )
        } as i64;
        if r < 0 {
            return r;
        }
    }
    0
}

/// The refused call `nr` names, if it is one.
pub fn refused(nr: u64) -> Option<Sysno> {
    let sysno = Sysno::new(usize::try_from(nr).ok()?)?;
    REFUSED.contains(sysno).then_some(sysno)
}

/// One bit per system call number: refusal already reported.
static REFUSED_WARNED: [AtomicU64; 8] = [const { AtomicU64::new(0) }; 8];
static X32_WARNED: AtomicU32 = AtomicU32::new(0);
static UNKNOWN_OP_WARNED: AtomicU32 = AtomicU32::new(0);
static PRCTL_WARNED: AtomicU32 = AtomicU32::new(0);

fn warn_once(flag: &AtomicU32, msg: impl FnOnce() -> String) {
    if flag.swap(1, Ordering::Relaxed) == 0 {
        crate::say!("{}", msg());
    }
}

/// `Op::Log`: print libos's message at application address `va`.
fn log(slot: usize, va: u64, len: u64) -> i64 {
    let mut buf = vec![0u8; (len as usize).min(LOG_MAX)];
    match read_user(va, &mut buf) {
        Ok(n) => {
            let text = String::from_utf8_lossy(&buf[..n]);
            for line in text.trim_end_matches('\n').lines() {
                crate::say!("mote: libos: {line}");
            }
            0
        }
        Err(e) => {
            crate::say!("mote: libos: thread slot {slot}: log message at {va:#x} unreadable: {e}");
            -i64::from(e.raw_os_error().unwrap_or(libc::EFAULT))
        }
    }
}

/// Sleep while `word` holds `val` (a shared futex: the IKC words are guest memory,
/// which a vfork child process of the proxy maps too).
pub fn futex_wait(word: &AtomicU32, val: u32) {
    // SAFETY: `word` is a live, aligned u32; the kernel only reads it. No timeout.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            val,
            std::ptr::null::<libc::timespec>(),
        )
    };
}

/// Sleep while `word` holds `val`, at most `ns` nanoseconds.
pub fn futex_wait_for(word: &AtomicU32, val: u32, ns: u64) {
    let ts = libc::timespec {
        tv_sec: (ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (ns % 1_000_000_000) as libc::c_long,
    };
    // SAFETY: `word` is a live, aligned u32; `ts` outlives the call.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            val,
            &ts as *const libc::timespec,
        )
    };
}

/// Wake every sleeper on `word` (shared futex, see `futex_wait`).
pub fn futex_wake(word: &AtomicU32) {
    // SAFETY: `word` is a live, aligned u32; wake does not access it.
    unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, i32::MAX) };
}

/// Pin the calling thread to host CPU `cpu`.
pub fn pin_to(cpu: usize) -> io::Result<()> {
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: cpu_set_t is plain bits (all-zero is the empty set); CPU_SET writes in
    // bounds (checked above); sched_setaffinity(0) acts on the calling thread only.
    let r = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Give SIGPIPE back its default action (Rust's runtime ignores it). A forwarded
/// write into a closed pipe then ends the run with SIGPIPE, as it ends a native
/// process that did not handle it.
pub fn default_sigpipe() {
    // SAFETY: installing SIG_DFL for SIGPIPE touches no Rust state.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mirror::TEST_RESERVATION;
    use mote_abi::ikc::Doorbell;
    use mote_abi::maplog::{Change, KIND_MAP};
    use std::io::Read;
    use std::os::fd::AsRawFd;
    use std::sync::mpsc::{channel, Receiver};
    use std::time::Duration;

    /// The LWK side's doorbell as the VMM implements it: futexes on the slot.
    struct FutexBell;
    impl Doorbell for FutexBell {
        fn notify_proxy(&self, slot: &Slot) {
            futex_wake(&slot.req_seq);
        }
        fn wait_response(&self, slot: &Slot, seen: u32) {
            // The server wakes core 0's wake_seq (waiter 1); polling is enough here.
            while slot.resp_seq.load(Ordering::Acquire) == seen {
                std::thread::sleep(Duration::from_micros(50));
            }
        }
    }

    struct Server {
        guest: Arc<GuestMem>,
        events: Receiver<Event>,
        thread: Option<JoinHandle<()>>,
        _mirror: Arc<Mirror>,
        _reservation: std::sync::MutexGuard<'static, ()>,
    }

    impl Server {
        fn start() -> Server {
            let reservation = TEST_RESERVATION.lock().unwrap_or_else(|p| p.into_inner());
            let guest = Arc::new(GuestMem::new(4 << 20).unwrap());
            let mirror = Arc::new(Mirror::reserve(&guest).unwrap());
            let (tx, events) = channel();
            SERVED[0].fetch_and(!1, Ordering::AcqRel);
            let thread = spawn(0, guest.clone(), mirror.clone(), tx, None)
                .unwrap()
                .unwrap();
            Server {
                guest,
                events,
                thread: Some(thread),
                _mirror: mirror,
                _reservation: reservation,
            }
        }
        /// Publish a request without waiting for its answer (steps 1-3 of the
        /// requester's protocol); returns its sequence number.
        fn publish(&self, op: u32, args: [u64; 6]) -> u32 {
            let slot = &self.guest.thread_slot(0);
            slot.op.store(op, Ordering::Relaxed);
            for (a, v) in slot.args.iter().zip(args) {
                a.store(v, Ordering::Relaxed);
            }
            let s = slot.req_seq.load(Ordering::Relaxed).wrapping_add(1);
            slot.req_seq.store(s, Ordering::Release);
            std::sync::atomic::fence(Ordering::SeqCst);
            if slot.proxy_waiting.load(Ordering::Relaxed) != 0 {
                futex_wake(&slot.req_seq);
            }
            s
        }
        fn call(&self, op: Op, nr: u64, args: [u64; 6]) -> i64 {
            self.guest.thread_slot(0).call(op, nr, args, &FutexBell)
        }
        fn syscall(&self, nr: Sysno, args: [u64; 6]) -> i64 {
            self.call(Op::Syscall, nr.id() as u64, args)
        }
        /// Publish a request the server will not answer (Exit, Fatal) and wait for its
        /// event and the end of the thread.
        fn finish(mut self, op: Op, args: [u64; 6]) -> Event {
            self.publish(op as u32, args);
            let ev = self
                .events
                .recv_timeout(Duration::from_secs(10))
                .expect("event");
            self.thread.take().unwrap().join().unwrap();
            ev
        }
    }

    /// Let the server exhaust its spin and go to sleep.
    fn wait_until_asleep(slot: &Slot) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while slot.proxy_waiting.load(Ordering::Relaxed) == 0 {
            assert!(std::time::Instant::now() < deadline, "server never slept");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn forwarded_getppid_is_the_real_one() {
        let s = Server::start();
        let ppid = s.syscall(Sysno::getppid, [0; 6]);
        assert_eq!(ppid, i64::from(std::os::unix::process::parent_id()));
        assert_eq!(s.call(Op::Nop, 0, [0; 6]), 0);
        // Linux's errno comes back unchanged.
        assert_eq!(
            s.syscall(Sysno::close, [u64::MAX >> 33, 0, 0, 0, 0, 0]),
            -i64::from(libc::EBADF)
        );
        assert!(matches!(
            s.finish(Op::Exit, [42, 0, 0, 0, 0, 0]),
            Event::Exited(42)
        ));
    }

    #[test]
    fn write_to_a_pipe_uses_the_applications_address() {
        let s = Server::start();
        let (mut reader, writer) = std::io::pipe().unwrap();
        let (va, gpa) = (0x7000_0000u64, 0x20_0000u64);
        s.guest.write(gpa + 0x10, b"through the mirror\n");
        // libos publishes the mapping, then makes the call: the server applies the
        // log before executing it.
        assert!(s.guest.maplog().push(Change {
            kind: KIND_MAP,
            va,
            len: 0x1000,
            gpa
        }));
        let n = s.syscall(
            Sysno::write,
            [writer.as_raw_fd() as u64, va + 0x10, 19, 0, 0, 0],
        );
        assert_eq!(n, 19);
        drop(writer);
        let mut got = String::new();
        reader.read_to_string(&mut got).unwrap();
        assert_eq!(got, "through the mirror\n");

        // A read lands in guest memory, seen through the KVM view.
        let (reader2, mut writer2) = std::io::pipe().unwrap();
        std::io::Write::write_all(&mut writer2, b"back").unwrap();
        let n = s.syscall(
            Sysno::read,
            [reader2.as_raw_fd() as u64, va + 0x100, 4, 0, 0, 0],
        );
        assert_eq!(n, 4);
        let mut b = [0u8; 4];
        s.guest.read(gpa + 0x100, &mut b);
        assert_eq!(&b, b"back");

        // An application address that is not mirrored is EFAULT, not a proxy crash.
        let n = s.syscall(Sysno::write, [1, 0x9000_0000, 4, 0, 0, 0]);
        assert_eq!(n, -i64::from(libc::EFAULT));
        s.finish(Op::Exit, [0; 6]);
    }

    #[test]
    fn calls_that_would_act_on_the_proxy_are_refused() {
        let s = Server::start();
        let enosys = -i64::from(libc::ENOSYS);
        assert_eq!(s.syscall(Sysno::exit_group, [3, 0, 0, 0, 0, 0]), enosys);
        assert_eq!(s.syscall(Sysno::exit, [3, 0, 0, 0, 0, 0]), enosys);
        assert_eq!(
            s.syscall(Sysno::mmap, [0, 4096, 3, 0x22, u64::MAX, 0]),
            enosys
        );
        assert_eq!(
            s.syscall(Sysno::munmap, [0x1000_0000, 4096, 0, 0, 0, 0]),
            enosys
        );
        assert_eq!(s.syscall(Sysno::rt_sigaction, [11, 0, 0, 8, 0, 0]), enosys);
        assert_eq!(s.syscall(Sysno::clone, [0; 6]), enosys);
        assert_eq!(
            s.syscall(Sysno::arch_prctl, [0x1002, 0, 0, 0, 0, 0]),
            enosys
        );
        // The x32 alias of exit_group is refused too.
        let x32_exit = X32_SYSCALL_BIT | Sysno::exit_group.id() as u64;
        assert_eq!(s.call(Op::Syscall, x32_exit, [0; 6]), enosys);
        // An unknown op is answered, not ignored.
        assert_eq!(
            s.call(Op::Syscall, 100_000, [0; 6]),
            enosys,
            "Linux's own ENOSYS"
        );
        // SAFETY-free check through the public helpers.
        assert_eq!(refused(Sysno::getppid.id() as u64), None);
        assert_eq!(refused(Sysno::brk.id() as u64), Some(Sysno::brk));
        s.finish(Op::Exit, [0; 6]);
    }

    #[test]
    fn the_proxys_own_descriptors_cannot_be_closed_or_replaced() {
        let s = Server::start();
        // Four descriptors at fixed numbers nothing else in the tests uses.
        let (lo, own, mid, hi) = (1000, 1001, 1002, 1003);
        let (r, _w) = std::io::pipe().unwrap();
        for fd in [lo, own, mid, hi] {
            // SAFETY: dup2 onto numbers no other part of the test process uses.
            assert_eq!(unsafe { libc::dup2(r.as_raw_fd(), fd) }, fd);
        }
        protect_fds([own]);
        let open = |fd: i32| {
            // SAFETY: F_GETFD only queries the descriptor table.
            (unsafe { libc::fcntl(fd, libc::F_GETFD) }) >= 0
        };
        let ebadf = -i64::from(libc::EBADF);
        assert_eq!(s.syscall(Sysno::close, [own as u64, 0, 0, 0, 0, 0]), ebadf);
        assert_eq!(
            s.syscall(Sysno::dup2, [lo as u64, own as u64, 0, 0, 0, 0]),
            -i64::from(libc::EBUSY)
        );
        assert_eq!(
            s.syscall(Sysno::prctl, [libc::PR_SET_SECCOMP as u64, 1, 0, 0, 0, 0]),
            -i64::from(libc::EINVAL)
        );
        // close_range over all four closes the application's three only.
        let r = s.syscall(Sysno::close_range, [lo as u64, hi as u64, 0, 0, 0, 0]);
        assert_eq!(r, 0);
        assert!(open(own));
        assert!(!open(lo) && !open(mid) && !open(hi));
        assert_eq!(
            s.syscall(Sysno::close_range, [5, 3, 0, 0, 0, 0]),
            -i64::from(libc::EINVAL)
        );
        // SAFETY: `own` is the duplicate made above; nothing else refers to it.
        unsafe { libc::close(own) };
        s.finish(Op::Exit, [0; 6]);
    }

    #[test]
    fn close_range_splits_around_own_descriptors() {
        // Pure range arithmetic on numbers far above anything open.
        protect_fds([900_010, 900_012]);
        assert_eq!(close_range_around_own(900_010, 900_010, 0), 0);
        assert_eq!(close_range_around_own(900_009, 900_013, 0), 0);
        assert_eq!(
            close_range_around_own(u64::MAX, 1, 0),
            -i64::from(libc::EINVAL)
        );
    }

    #[test]
    fn open_fds_lists_real_descriptors() {
        let (r, _w) = std::io::pipe().unwrap();
        let fds = open_fds().unwrap();
        assert!(fds.contains(&r.as_raw_fd()));
        assert!(fds.iter().all(|&fd| fd > 2));
    }

    #[test]
    fn unknown_op_and_bad_log_address_are_answered() {
        let s = Server::start();
        assert_eq!(s.call(Op::Nop, 0, [0; 6]), 0);
        let slot = &s.guest.thread_slot(0);
        // Op 77 does not exist: the requester still gets an answer, also when it
        // arrives while the server sleeps.
        wait_until_asleep(slot);
        let seq = s.publish(77, [0; 6]);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while slot.resp_seq.load(Ordering::Acquire) != seq {
            assert!(std::time::Instant::now() < deadline, "no answer");
            std::thread::yield_now();
        }
        assert_eq!(slot.ret.load(Ordering::Relaxed), -i64::from(libc::ENOSYS));
        // A log message at an address that is not mapped.
        assert_eq!(
            s.call(Op::Log, 0, [0x5000_0000, 10, 0, 0, 0, 0]),
            -i64::from(libc::EFAULT)
        );
        s.finish(Op::Exit, [0; 6]);
    }

    #[test]
    fn sleeping_server_is_woken_by_the_doorbell() {
        let s = Server::start();
        let slot = &s.guest.thread_slot(0);
        wait_until_asleep(slot);
        for _ in 0..100 {
            assert_eq!(
                s.syscall(Sysno::getppid, [0; 6]),
                i64::from(std::os::unix::process::parent_id())
            );
        }
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(
            s.syscall(Sysno::getppid, [0; 6]),
            i64::from(std::os::unix::process::parent_id())
        );
        s.finish(Op::Exit, [7, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn fatal_reports_signal_and_fault() {
        let s = Server::start();
        let page = s.guest.core_page(0);
        let report = FaultReport {
            origin: 1,
            signal: 11,
            vector: 14,
            error_code: 6,
            addr: 0xdead_b000,
            regs: core::array::from_fn(|i| i as u64),
        };
        let off = mote_abi::layout::IKC_GPA
            + mote_abi::ikc::core_page_offset(0)
            + std::mem::offset_of!(mote_abi::ikc::CorePage, fault) as u64;
        // SAFETY: FaultReport is repr(C) plain integers; viewing it as bytes is valid.
        let bytes = unsafe {
            std::slice::from_raw_parts(
                (&report as *const FaultReport).cast::<u8>(),
                std::mem::size_of::<FaultReport>(),
            )
        };
        s.guest.write(off, bytes);
        let _ = page;
        match s.finish(Op::Fatal, [11, 1, 0, 0, 0, 0]) {
            Event::Killed {
                signal: 11,
                fault: Some(f),
            } => {
                assert_eq!(f.addr, 0xdead_b000);
                assert_eq!(f.error_code, 6);
                assert_eq!(f.regs[16], 16);
            }
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn fatal_without_report() {
        let s = Server::start();
        assert!(matches!(
            s.finish(Op::Fatal, [6, 0, 0, 0, 0, 0]),
            Event::Killed {
                signal: 6,
                fault: None
            }
        ));
    }
}
