//! Inter-kernel communication: one request slot per LWK core, in shared memory.
//!
//! # Protocol (the only place it is written down)
//!
//! Each application thread has a `Slot` in the IKC area (`thread_slot_offset`),
//! served by its own offload thread in the proxy (McKernel's per-thread proxy
//! threads): a thread blocked in a forwarded `read` holds up nobody else. A slot
//! carries one call at a time.
//!
//! Each core's idle context (what a core runs while none of its threads can) has a
//! slot of its own too (`idle_slot`), served from the start: the runtime's own
//! calls made there (a panic's `Log`, `Fatal`) must not go on the slot of the
//! thread that ran last, which may have a call in flight, or, a vfork child's
//! whose process exec'd, have no server any more (the call would never be
//! answered and the run would hang).
//!
//! * **LWK side (requester: the slot's thread):**
//!   1. writes `op`, `nr`, `args` (Relaxed — published by step 2);
//!   2. `req_seq.store(s, Release)` with `s = previous + 1`;
//!   3. if `proxy_waiting != 0` (a plain load) the proxy sleeps: `out NOTIFY`;
//!   4. spins until `resp_seq.load(Acquire) == s`, bounded. After `FENCE_SPINS`
//!      spins without an answer (and not rung yet): `fence(SeqCst)`, and if
//!      `proxy_waiting != 0`, `out NOTIFY`. When the proxy it rang said
//!      `PROXY_ASLEEP_HERE` (it serves from this thread's own host CPU, where
//!      spinning only keeps it from running) the spin ends at once. After
//!      `SPIN_LIMIT`: sets
//!      `lwk_waiting = core + 1`, `fence(SeqCst)`, re-checks and if still not
//!      answered lets its core run other threads or sleep (`Doorbell::wait_response`;
//!      the core sleeps on its `CorePage::wake_seq`); clears `lwk_waiting`;
//!   5. reads `ret` (Relaxed — ordered by the Acquire of step 4); only when `ret`
//!      is an error a call may raise a signal for (`EFBIG`: `SIGXFSZ`; `EPIPE`:
//!      `SIGPIPE`), also `raised.swap(0, Relaxed)`, the same way ordered.
//! * **Proxy side (one offload thread per slot):**
//!   1. spins until `req_seq.load(Acquire) != last`, bounded; then sets
//!      `proxy_waiting` (`PROXY_ASLEEP`, or `PROXY_ASLEEP_HERE` when it runs on
//!      the requester's host CPU and never spins), `fence(SeqCst)`, re-checks `req_seq` (a request:
//!      do not sleep); reads `lwk_waiting` and if it is `c + 1 != 0` wakes core
//!      `c` (step 4's late check); sleeps on `req_seq` (futex) until it changes;
//!      clears `proxy_waiting`;
//!   2. reads `op`, `nr`, `args`, executes the call;
//!   3. `ret.store(Relaxed)` — and, when Linux raised a synchronous signal for
//!      the calling thread during the call (it is blocked in the offload thread,
//!      which takes it back with a zero-timeout `sigtimedwait`), `raised.store(sig,
//!      Relaxed)` — then `resp_seq.store(s, Release)`;
//!   4. if `lwk_waiting = c + 1 != 0` (a plain load), bumps core `c`'s
//!      `wake_seq` and futex-wakes it.
//!
//! A core with nothing to run sleeps the same way whatever it waits for (a
//! response, a futex wake from another core): it reads `wake_seq`, sets `sleeping`,
//! `fence(SeqCst)`, re-checks its work and does `out WAIT(seen)`; whoever gives it
//! work bumps `wake_seq` (SeqCst) and, if `sleeping`, wakes it (`ports::WAKE_CORE`
//! from another core, a futex wake from the proxy).
//!
//! ## Why no side loses a wake-up, with no fence on the fast path
//!
//! Each sleep transition is a Dekker handshake: a side stores its flag, fences,
//! and loads the other's sequence number; the other side stores its sequence
//! number, fences, and loads the flag. With both fences, one of the two sees the
//! other's store. The fences of the announcing side are always there (they are
//! off the hot path: a side announces sleep only after spinning in vain). The
//! fence of the publishing side is *deferred*: right after publishing it does a
//! plain load of the flag, which rings at once for a peer asleep for a while (its
//! flag store long visible), and the fenced load follows later, still before the
//! publisher itself could wait for anything:
//! * requester → sleeping proxy: the fenced check at `FENCE_SPINS` comes before
//!   the requester can announce its own sleep (`FENCE_SPINS` < `SPIN_LIMIT`), so
//!   either the proxy's re-check saw `req_seq`, or the requester sees
//!   `proxy_waiting` and rings. Cost of losing the race: the doorbell comes
//!   `FENCE_SPINS` pauses late, once.
//! * responder → sleeping requester: the proxy's fenced check is the `fence` of
//!   its own sleep announcement (proxy step 1), which comes before it sleeps and
//!   before it reads another request of this slot (there is none until the
//!   requester has its answer). Either the requester's re-check saw `resp_seq`,
//!   or that load sees `lwk_waiting` and wakes the core. Cost of losing the race:
//!   the wake comes after the proxy's spin (`SPIN_LIMIT` pauses), once.
//!
//! A plain load that sees a stale flag only causes a spare doorbell or wake,
//! which both sides tolerate (sleeps re-check and may return early). So a call
//! whose peer is awake costs two stores, the cache-line transfers, and no fence:
//! `fence(SeqCst)` is an `mfence`, tens of cycles each way.
//! Requester and responder fields live on different cache lines.

use core::mem::{offset_of, size_of};
use core::sync::atomic::{fence, AtomicI64, AtomicU32, AtomicU64, Ordering};
use static_assertions::const_assert_eq;

use crate::trap::FaultReport;

/// What the LWK asks of the proxy.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Execute Linux system call `nr` with `args` in the unified address space.
    Syscall = 1,
    /// The application exited: `args[0]` is the status (0–255).
    Exit = 2,
    /// The application was killed by signal `args[0]`; `CorePage::fault` says why
    /// when `args[1] != 0`.
    Fatal = 3,
    /// Print `args[1]` bytes at virtual address `args[0]` on the proxy's stderr
    /// (diagnostics from libos; not the application's output).
    Log = 4,
    /// Do nothing (used to make the proxy apply pending map-log entries).
    Nop = 5,
    /// Fill `args[1]` bytes of mapped application memory at `args[0]` with zeroes.
    /// The proxy does it natively through the unified address space: in the
    /// partition, first touches of memory are expensive under shadow paging.
    Zero = 6,
    /// Copy `args[2]` bytes from runtime memory at `args[1]` to mapped application
    /// memory at `args[0]`, whatever its protection (the proxy's view of it is
    /// writable): how the shim patches read-only program text.
    Write = 7,
    /// Shared file or device mapping passed through from Linux (`mmap` with
    /// `MAP_SHARED` and an fd): `args` are `mmap`'s `[va, len, prot, flags, fd, off]`
    /// with `va` chosen by libos (page aligned, free in the mirror). The proxy maps
    /// the file there itself (its mapping is the mirror) and backs a KVM memory slot
    /// with it, in `layout::PASSTHROUGH_GPA`'s window. Returns the slot's
    /// guest-physical start, `| SHARED_READONLY` when the file could only be mapped
    /// for reading, or `-errno` (Linux's from `mmap`; `ENOMEM` when out of slots or
    /// window).
    MapShared = 8,
    /// The pass-through object at guest-physical `args[0]` (a `MapShared` result) is
    /// no longer mapped anywhere in the application: drop its slot and mapping.
    Unshare = 9,
    /// Bytes of the pass-through object at guest-physical `args[0]` that lie before
    /// the file's end (page-rounded; the whole object for a device or `/dev/zero`),
    /// as the proxy found them when it mapped it: libos maps only these, an access
    /// to the rest faults and ends as `SIGBUS`.
    SharedLen = 10,
    /// Start an offload thread serving thread slot `args[0]` (a new application
    /// thread). Idempotent: a slot's server, once started, serves it for the run.
    /// Returns the server's Linux tid, which is the application thread's tid (as
    /// McKernel's proxy threads give theirs), or `-errno`.
    StartServer = 11,
    /// How the application's `[args[0], args[0]+args[1])` is mapped: the proxy walks
    /// the partition's page tables (in guest memory, read only) and writes three
    /// `u64` — bytes mapped by 4 KiB, 2 MiB and 1 GiB pages — to runtime memory at
    /// `args[2]`. Returns 0. For `/proc/self/smaps` (statistics; a walk racing a
    /// kernel call of another core may see either side of it).
    PageSizes = 12,
    /// A vfork child (`clone` with `CLONE_VM|CLONE_VFORK`, as `vfork` and
    /// `posix_spawn` make): the proxy forks itself; the child process serves thread
    /// slot `args[0]`, so the child thread's calls (`dup2`, `close`, `chdir`, ...)
    /// act on the child's own descriptors. Returns the child's pid or `-errno`.
    Fork = 13,
    /// The vfork parent waits until child `args[0]` (slot `args[1]`) has exec'd or
    /// ended; the child thread's pending call then returns `VFORK_GONE`.
    VforkWait = 14,
    /// From a vfork child: exec `args[0]` (path) with `args[1]` (argv) and `args[2]`
    /// (envp) in a new partition (the proxy execs `mote run` with the run's
    /// options), the child's ignored signals `args[3]`, signal mask `args[4]`
    /// and pending signals `args[5]` (bit `sig - 1`) handed over as `execve`
    /// keeps them. Returns only on failure, with `-errno`.
    SpawnExec = 15,
    /// CPU time for `getrusage`/`times`: the proxy writes up to `args[1]` u64 at
    /// runtime memory `args[0]`: the whole process's CPU time (ns, Linux's
    /// `RUSAGE_SELF`), then the vCPUs' together, then each vCPU's. Returns how
    /// many it wrote.
    CpuTimes = 16,
    /// Attach System V shared memory segment `args[2]` (`shmat`'s `shmflg` in
    /// `args[3]`; only `SHM_RDONLY` and `SHM_EXEC` matter here) at application
    /// address `args[0]` for `args[1]` bytes: the whole segment, page-rounded, its
    /// size as libos found it with a forwarded `shmctl(IPC_STAT)`; `args[0]` chosen
    /// by libos (page aligned, free in the mirror). The proxy attaches the segment
    /// there itself with Linux's `shmat(id, va, flags)` in its mirror (in a hole
    /// made in the reservation, so a segment Linux maps larger than `args[1]`, as
    /// `SHM_HUGETLB` rounds, is `EINVAL` and replaces nothing beyond), so Linux
    /// checks the id and the permissions and answers its own errno, and
    /// backs a KVM memory slot with that very attachment, as for a device (the
    /// hosted platform has no slot: the application's process attaches the same id
    /// at the same address itself, before this request). Returns the slot's
    /// guest-physical start, `| SHARED_READONLY` for `SHM_RDONLY`, or `-errno`.
    /// The object is then a pass-through object like `MapShared`'s: libos maps it,
    /// `SharedLen` answers the whole length, `Unshare` drops it once libos has
    /// unmapped every page of it (the map log's `KIND_UNMAP` puts the mirror's
    /// reservation back over the attachment, which detaches it in Linux).
    ///
    /// A separate op rather than a `MapShared` flavour: `MapShared`'s arguments are
    /// `mmap`'s six and every one of them is used; a segment has no fd or offset.
    ShmAttach = 17,
    /// `perf_event_open` for the application's own execution (libos's
    /// `syscall::perf`): `args` are the call's `[attr, _, cpu, group_fd, flags, _]`
    /// with `args[1]` the LWK core whose execution is counted and `args[5]` that
    /// core's Linux thread where only the runtime knows it (the hosted process's
    /// thread; 0 in the partition, whose vCPU threads are the proxy's own). The
    /// proxy opens the event on that Linux thread (checking that it is one of the
    /// application's) and returns the descriptor, or Linux's `-errno`.
    PerfOpen = 18,
    /// `fork` (a `clone` without `CLONE_VM`): the proxy copies guest memory into a
    /// new memfd and forks itself; the copy of the proxy becomes the child's
    /// (its pid is the child's, its descriptors copies of the parent's) and starts
    /// the child's application process (hosted) or a new VM (partition) on the copy, where the runtime resumes
    /// the calling thread from the record it left in memory (`rt::fork`). The
    /// caller holds the runtime's locks for the duration, so the copy is
    /// consistent. `args[0..3]` bound what to copy (libos's frame pool has never
    /// handed out memory beyond): the end of the used ordinary memory (all
    /// guest-physical memory below it is copied), and the start and end of the
    /// used 2 MiB-page memory; `args[3]` is the calling core's TSC (in the
    /// partition the child's new VM counts on from it); `args[4]` and `args[5]`
    /// are the runtime address and length in 64-bit words of libos's record of
    /// the 2 MiB chunks that may hold data (`libos::frames::Held`: bit `i` is
    /// guest-physical `[i * 2 MiB, (i + 1) * 2 MiB)`), of which only the pool's
    /// set chunks are copied (a hint the proxy reads through the mirror, capped
    /// at guest memory's size; 0 words: copy every chunk). Returns the child's
    /// pid or `-errno`.
    ForkProcess = 19,
    /// `execve` from a process with other threads (Linux's `de_thread`): from
    /// `args[0] = 1` until `args[0] = 0`, every application thread but the
    /// caller (the thread on the requesting slot) is being ended. Meanwhile the
    /// proxy kicks, as for a signal and repeated until the end: the vCPUs (or
    /// the hosted process's threads) that run application code enter the
    /// runtime's trap entry (`VECTOR_SIGNAL`) whatever the signal page says,
    /// and the forwarded calls of the other slots' offload threads return
    /// `EINTR`; a `fork` or vfork server asked for from another slot is
    /// refused (`EINTR`). libos ends each of those threads when it next passes
    /// through the runtime, then loads the new program. Returns 0.
    EndThreads = 20,
}

/// What a vfork child thread's call returns once its process exec'd or ended: the
/// thread is gone from the partition.
pub const VFORK_GONE: i64 = -(1 << 40);

/// Bit of a `MapShared` or `ShmAttach` result: the host mapping is read-only (the
/// fd was not open for writing; the segment was attached `SHM_RDONLY`), so the
/// application may never make it writable (`EACCES`).
pub const SHARED_READONLY: u64 = 1;

impl Op {
    /// Decode, rejecting unknown values.
    pub fn from_u32(v: u32) -> Option<Op> {
        Some(match v {
            1 => Op::Syscall,
            2 => Op::Exit,
            3 => Op::Fatal,
            4 => Op::Log,
            5 => Op::Nop,
            6 => Op::Zero,
            7 => Op::Write,
            8 => Op::MapShared,
            9 => Op::Unshare,
            10 => Op::SharedLen,
            11 => Op::StartServer,
            12 => Op::PageSizes,
            13 => Op::Fork,
            14 => Op::VforkWait,
            15 => Op::SpawnExec,
            16 => Op::CpuTimes,
            17 => Op::ShmAttach,
            18 => Op::PerfOpen,
            19 => Op::ForkProcess,
            20 => Op::EndThreads,
            _ => return None,
        })
    }
}

/// One core's request slot.
#[repr(C, align(64))]
pub struct Slot {
    // --- written by the LWK: a request is exactly one cache line ---
    pub req_seq: AtomicU32,
    pub op: AtomicU32,
    pub nr: AtomicU64,
    pub args: [AtomicU64; 6],
    // --- written by the LWK only when it goes to sleep (own cache line) ---
    pub lwk_waiting: AtomicU32,
    _pad1: [u32; 15],
    // --- written by the proxy (own cache lines) ---
    pub resp_seq: AtomicU32,
    pub proxy_waiting: AtomicU32,
    pub ret: AtomicI64,
    /// A signal Linux raised for the calling thread during the forwarded call
    /// (`SIGXFSZ`, `SIGPIPE`), 0 if none; the requester clears it when it reads it.
    pub raised: AtomicU32,
    _pad2: [u32; 11],
}

const_assert_eq!(size_of::<Slot>(), 192);
const_assert_eq!(offset_of!(Slot, args) + 48, 64);
const_assert_eq!(offset_of!(Slot, lwk_waiting), 64);
const_assert_eq!(offset_of!(Slot, resp_seq), 128);
const_assert_eq!(offset_of!(Slot, raised), 144);

/// How long a requester spins for a proxy whose `proxy_waiting` it read.
fn spin_limit(waiting: u32) -> u32 {
    if waiting == PROXY_ASLEEP_HERE {
        0
    } else {
        SPIN_LIMIT
    }
}

/// A request read out of a slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    pub seq: u32,
    pub op: u32,
    pub nr: u64,
    pub args: [u64; 6],
}

/// How a side sleeps and wakes the other when spinning is not enough.
pub trait Doorbell {
    /// LWK: the proxy is asleep; wake it (`out NOTIFY`).
    fn notify_proxy(&self, slot: &Slot);
    /// LWK: nothing to do until `resp_seq` differs from `seen`: run other threads
    /// or sleep. May return early (the caller re-checks).
    fn wait_response(&self, slot: &Slot, seen: u32);
    /// LWK: the value for `lwk_waiting` while this side waits (the core + 1).
    fn waiter(&self) -> u32 {
        1
    }
}

/// Spins before a side goes to sleep (each iteration is one `pause`).
pub const SPIN_LIMIT: u32 = 1 << 14;
/// `proxy_waiting`: the offload thread sleeps.
pub const PROXY_ASLEEP: u32 = 1;
/// `proxy_waiting`: the offload thread sleeps, and runs on the requester's own
/// host CPU (a run bound to one CPU with no free CPU beside it): the requester
/// sleeps at once instead of spinning.
pub const PROXY_ASLEEP_HERE: u32 = 2;
/// Spins of the requester before its fenced look at `proxy_waiting` (see the
/// protocol): a few µs, well past a forwarded call whose proxy is awake.
pub const FENCE_SPINS: u32 = 64;
static_assertions::const_assert!(FENCE_SPINS < SPIN_LIMIT);

impl Slot {
    /// LWK side: make a call and wait for its result.
    pub fn call(&self, op: Op, nr: u64, args: [u64; 6], bell: &impl Doorbell) -> i64 {
        self.op.store(op as u32, Ordering::Relaxed);
        self.nr.store(nr, Ordering::Relaxed);
        for (a, v) in self.args.iter().zip(args) {
            a.store(v, Ordering::Relaxed);
        }
        let s = self.req_seq.load(Ordering::Relaxed).wrapping_add(1);
        self.req_seq.store(s, Ordering::Release);
        // Protocol step 3: a proxy asleep for a while is rung at once; the fenced
        // check below covers one that went to sleep just now.
        let waiting = self.proxy_waiting.load(Ordering::Relaxed);
        let mut rung = waiting != 0;
        if rung {
            bell.notify_proxy(self);
        }
        let mut limit = spin_limit(waiting);
        let mut spins = 0u32;
        loop {
            let r = self.resp_seq.load(Ordering::Acquire);
            if r == s {
                break;
            }
            if spins == FENCE_SPINS && !rung {
                fence(Ordering::SeqCst);
                let waiting = self.proxy_waiting.load(Ordering::Relaxed);
                if waiting != 0 {
                    rung = true;
                    bell.notify_proxy(self);
                    limit = spin_limit(waiting);
                }
            }
            if spins < limit {
                spins += 1;
                core::hint::spin_loop();
                continue;
            }
            self.lwk_waiting.store(bell.waiter(), Ordering::Relaxed);
            fence(Ordering::SeqCst);
            if self.resp_seq.load(Ordering::Acquire) != s {
                bell.wait_response(self, r);
            }
            self.lwk_waiting.store(0, Ordering::Relaxed);
        }
        self.ret.load(Ordering::Relaxed)
    }

    /// Proxy side: a new request, if one is published after `last`.
    pub fn poll(&self, last: u32) -> Option<Request> {
        let seq = self.req_seq.load(Ordering::Acquire);
        if seq == last {
            return None;
        }
        Some(Request {
            seq,
            op: self.op.load(Ordering::Relaxed),
            nr: self.nr.load(Ordering::Relaxed),
            args: core::array::from_fn(|i| self.args[i].load(Ordering::Relaxed)),
        })
    }

    /// Proxy side: announce sleep (`here`: on the requester's own host CPU, see
    /// [`PROXY_ASLEEP_HERE`]); returns false if a request arrived meanwhile
    /// (then do not sleep). Otherwise call [`Slot::waiting_requester`] (its load
    /// comes after this fence) and `end_sleep` after waking.
    pub fn begin_sleep(&self, last: u32, here: bool) -> bool {
        let how = if here {
            PROXY_ASLEEP_HERE
        } else {
            PROXY_ASLEEP
        };
        self.proxy_waiting.store(how, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        if self.req_seq.load(Ordering::Acquire) != last {
            self.proxy_waiting.store(0, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Proxy side, after `begin_sleep` returned true: the requester's
    /// `lwk_waiting` (core + 1, or 0). Non-zero: it may have gone to sleep without
    /// seeing the last response, whose `respond` did not see it waiting (the
    /// deferred fence of the protocol) — wake its core before sleeping.
    pub fn waiting_requester(&self) -> u32 {
        self.lwk_waiting.load(Ordering::Relaxed)
    }

    /// Proxy side: done sleeping.
    pub fn end_sleep(&self) {
        self.proxy_waiting.store(0, Ordering::Relaxed);
    }

    /// Proxy side: publish the result of request `seq`. Returns the waiting
    /// requester's `lwk_waiting` (core + 1) when its core must be woken, else 0.
    /// No fence: a requester that announced its wait just now is found by
    /// [`Slot::waiting_requester`] before this side sleeps.
    pub fn respond(&self, seq: u32, ret: i64) -> u32 {
        self.ret.store(ret, Ordering::Relaxed);
        self.resp_seq.store(seq, Ordering::Release);
        self.lwk_waiting.load(Ordering::Relaxed)
    }

    /// Proxy side, before [`Slot::respond`]: Linux raised `sig` for the calling
    /// thread during the call (published by `respond`'s Release).
    pub fn set_raised(&self, sig: u32) {
        self.raised.store(sig, Ordering::Relaxed);
    }

    /// LWK side, after [`Slot::call`] returned: the signal the call raised for this
    /// thread (0: none), cleared (ordered by `call`'s Acquire of `resp_seq`).
    pub fn take_raised(&self) -> u32 {
        self.raised.swap(0, Ordering::Relaxed)
    }
}

/// One core's page in the IKC area.
#[repr(C, align(4096))]
pub struct CorePage {
    /// Bumped by whoever gives the core work (a response for one of its threads, a
    /// thread made runnable); the core sleeps while it is unchanged.
    pub wake_seq: AtomicU32,
    /// The core sleeps, or is about to (then it re-checks `wake_seq`).
    pub sleeping: AtomicU32,
    /// Longest sleep of the next `ports::WAIT` in ns (0: until woken): a futex
    /// timeout on this core.
    pub sleep_max_ns: AtomicU64,
    /// Non-zero: the core's time-sharing timer fired while the core ran the
    /// runtime (or kernel-min), where it never switches threads; the runtime
    /// acts on it at its next return to the application (written by the VMM or
    /// the hosted timer's handler, cleared by the runtime).
    pub preempt_due: AtomicU32,
    _pad1: u32,
    _pad0: [u64; 21],
    /// Top of the upcall stack kernel-min hands the next trap to (virtual; written by
    /// libos, read by kernel-min).
    pub upcall_rsp: AtomicU64,
    _reserved: u64,
    /// Traps kernel-min handed up from this core (statistics).
    pub upcalls: AtomicU64,
    /// Kernel calls kernel-min served for this core (statistics).
    pub kcalls: AtomicU64,
    /// Page faults (`#PF`) kernel-min took on this core, whatever became of them
    /// (statistics: libos maps memory before the application touches it, so after
    /// start-up this stays put; `mote run --stats` and `/proc/self/stat` show it).
    pub page_faults: AtomicU64,
    _pad: [u64; 3],
    /// The fault that ended the run, if any.
    pub fault: FaultReport,
}

const_assert_eq!(size_of::<CorePage>(), 4096);
const_assert_eq!(offset_of!(CorePage, sleep_max_ns), 8);
const_assert_eq!(offset_of!(CorePage, preempt_due), 16);
const_assert_eq!(offset_of!(CorePage, upcall_rsp), 192);
const_assert_eq!(offset_of!(CorePage, fault), 256);
const_assert_eq!(offset_of!(CorePage, upcalls), 208);
const_assert_eq!(offset_of!(CorePage, kcalls), 216);
const_assert_eq!(offset_of!(CorePage, page_faults), 224);

/// Offset of core `i`'s page inside the IKC area.
pub const fn core_page_offset(i: usize) -> u64 {
    (i as u64) * size_of::<CorePage>() as u64
}

/// Offset of the map log inside the IKC area (after the core pages).
pub const MAPLOG_OFFSET: u64 = core_page_offset(crate::layout::MAX_CORES);

/// IKC slots: one per application thread alive ([`THREAD_SLOTS`]), then one per
/// core's idle context ([`idle_slot`]).
pub const MAX_THREADS: usize = 1024;

/// Most application threads alive at once (slots `0..THREAD_SLOTS`; slot 0 is
/// the main thread's).
pub const THREAD_SLOTS: usize = MAX_THREADS - crate::layout::MAX_CORES;

/// The slot of core `core`'s idle context (`core < MAX_CORES`): never a thread's.
pub const fn idle_slot(core: usize) -> usize {
    THREAD_SLOTS + core
}

static_assertions::const_assert!(idle_slot(crate::layout::MAX_CORES - 1) < MAX_THREADS);

/// Offset of the thread slots inside the IKC area (after the map log).
pub const THREAD_SLOTS_OFFSET: u64 = crate::layout::align_up(
    MAPLOG_OFFSET + size_of::<crate::maplog::MapLog>() as u64,
    crate::layout::PAGE_SIZE,
);

/// Offset of thread slot `i` inside the IKC area.
pub const fn thread_slot_offset(i: usize) -> u64 {
    THREAD_SLOTS_OFFSET + (i as u64) * size_of::<Slot>() as u64
}

static_assertions::const_assert!(
    MAPLOG_OFFSET + size_of::<crate::maplog::MapLog>() as u64 <= THREAD_SLOTS_OFFSET
);
static_assertions::const_assert!(thread_slot_offset(MAX_THREADS) <= crate::layout::IKC_SIZE);
// The signal page is the IKC area's last page.
static_assertions::const_assert!(
    thread_slot_offset(MAX_THREADS) <= crate::signal::SIGNAL_PAGE_OFFSET
);

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// Doorbell that counts rings and just spins (stands in for port I/O).
    struct Spin;
    impl Doorbell for Spin {
        fn notify_proxy(&self, _slot: &Slot) {}
        fn wait_response(&self, slot: &Slot, seen: u32) {
            while slot.resp_seq.load(Ordering::Acquire) == seen {
                std::thread::yield_now();
            }
        }
    }

    fn new_slot() -> Arc<Slot> {
        // SAFETY: Slot is all atomics and padding integers; all-zero is a valid,
        // idle slot, exactly what a fresh memfd page holds.
        Arc::new(unsafe { core::mem::zeroed() })
    }

    #[test]
    fn many_calls_round_trip_in_order() {
        let slot = new_slot();
        let server = {
            let slot = slot.clone();
            std::thread::spawn(move || {
                let mut last = 0;
                let mut served = 0u64;
                loop {
                    let Some(r) = slot.poll(last) else {
                        std::thread::yield_now();
                        continue;
                    };
                    last = r.seq;
                    if r.op == Op::Exit as u32 {
                        slot.respond(r.seq, 0);
                        return served;
                    }
                    served += 1;
                    slot.respond(r.seq, (r.nr + r.args[5]) as i64);
                }
            })
        };
        for i in 0..20_000u64 {
            let ret = slot.call(Op::Syscall, i, [0, 0, 0, 0, 0, 7], &Spin);
            assert_eq!(ret, (i + 7) as i64);
        }
        slot.call(Op::Exit, 0, [0; 6], &Spin);
        assert_eq!(server.join().unwrap(), 20_000);
    }

    #[test]
    fn a_signal_raised_by_a_call_is_seen_once_with_its_response() {
        let slot = new_slot();
        let server = {
            let slot = slot.clone();
            std::thread::spawn(move || {
                let mut last = 0;
                for raise in [25, 0] {
                    let r = loop {
                        match slot.poll(last) {
                            Some(r) => break r,
                            None => std::thread::yield_now(),
                        }
                    };
                    last = r.seq;
                    if raise != 0 {
                        slot.set_raised(raise);
                    }
                    slot.respond(r.seq, -27);
                }
            })
        };
        assert_eq!(slot.call(Op::Syscall, 1, [0; 6], &Spin), -27);
        assert_eq!(slot.take_raised(), 25);
        assert_eq!(slot.take_raised(), 0, "taken");
        assert_eq!(slot.call(Op::Syscall, 1, [0; 6], &Spin), -27);
        assert_eq!(slot.take_raised(), 0);
        server.join().unwrap();
    }

    #[test]
    fn sleeping_proxy_is_seen_by_requester() {
        let slot = new_slot();
        assert!(slot.begin_sleep(0, false));
        // A request published after begin_sleep must be noticed by the requester
        // as "proxy waiting", so it rings the doorbell.
        struct Count(std::sync::atomic::AtomicU32);
        impl Doorbell for Count {
            fn notify_proxy(&self, _s: &Slot) {
                self.0.fetch_add(1, Ordering::Relaxed);
            }
            fn wait_response(&self, _s: &Slot, _seen: u32) {}
        }
        let bell = Count(AtomicU32::new(0));
        let s2 = slot.clone();
        let h = std::thread::spawn(move || {
            while s2.poll(0).is_none() {}
            s2.end_sleep();
            s2.respond(1, -38)
        });
        assert_eq!(slot.call(Op::Syscall, 1, [0; 6], &bell), -38);
        h.join().unwrap();
        assert_eq!(bell.0.load(Ordering::Relaxed), 1);
        assert!(
            !slot.begin_sleep(0, false),
            "a published request cancels sleep"
        );
    }

    /// A proxy asleep on the requester's own CPU (`PROXY_ASLEEP_HERE`): the
    /// requester rings and goes to its wait without spinning; a proxy asleep
    /// elsewhere, or awake, is spun for first.
    #[test]
    fn a_requester_does_not_spin_for_a_proxy_on_its_own_cpu() {
        assert_eq!(spin_limit(PROXY_ASLEEP_HERE), 0);
        assert_eq!(spin_limit(PROXY_ASLEEP), SPIN_LIMIT);
        assert_eq!(spin_limit(0), SPIN_LIMIT);
        // The whole call: rung once, then the response arrives while it waits.
        struct Bell {
            rung: AtomicU32,
            waits: AtomicU32,
        }
        impl Doorbell for Bell {
            fn notify_proxy(&self, _s: &Slot) {
                self.rung.fetch_add(1, Ordering::SeqCst);
            }
            fn wait_response(&self, _s: &Slot, _seen: u32) {
                self.waits.fetch_add(1, Ordering::SeqCst);
                std::thread::yield_now();
            }
        }
        let slot = new_slot();
        let bell = std::sync::Arc::new(Bell {
            rung: AtomicU32::new(0),
            waits: AtomicU32::new(0),
        });
        assert!(slot.begin_sleep(0, true));
        let (s2, b2) = (slot.clone(), bell.clone());
        let h = std::thread::spawn(move || {
            while s2.poll(0).is_none() {}
            s2.end_sleep();
            // As on one CPU: the proxy runs only once the requester waits.
            while b2.waits.load(Ordering::SeqCst) == 0 {
                std::hint::spin_loop();
            }
            s2.respond(1, 5)
        });
        assert_eq!(slot.call(Op::Syscall, 1, [0; 6], &*bell), 5);
        h.join().unwrap();
        assert_eq!(bell.rung.load(Ordering::SeqCst), 1);
    }

    /// Both sides really sleep, as in the partition: the requester's wait returns
    /// only when the responder wakes it (a counter standing in for the core's
    /// `wake_seq`), the responder's only when rung (standing in for the futex).
    /// Slow calls make the requester sleep, pauses between calls the responder;
    /// a lost wake-up shows as a panic after seconds instead of microseconds.
    #[test]
    fn no_wake_up_is_lost_with_the_deferred_fences() {
        use std::sync::atomic::Ordering::SeqCst;
        use std::time::{Duration, Instant};
        fn until(what: &str, mut done: impl FnMut() -> bool) {
            let deadline = Instant::now() + Duration::from_secs(10);
            while !done() {
                assert!(Instant::now() < deadline, "lost wake-up: {what}");
                std::thread::yield_now();
            }
        }
        struct Bell {
            wakes: Arc<AtomicU32>,
            rings: Arc<AtomicU32>,
        }
        impl Doorbell for Bell {
            fn notify_proxy(&self, _slot: &Slot) {
                self.rings.fetch_add(1, SeqCst);
            }
            fn wait_response(&self, slot: &Slot, seen: u32) {
                // As a core going to sleep: note wake_seq, re-check, then wait.
                let w = self.wakes.load(SeqCst);
                if slot.resp_seq.load(Ordering::Acquire) != seen {
                    return;
                }
                until("requester never woken", || self.wakes.load(SeqCst) != w);
            }
        }
        const CALLS: u64 = 300;
        let slot = new_slot();
        let wakes = Arc::new(AtomicU32::new(0));
        let rings = Arc::new(AtomicU32::new(0));
        let server = {
            let (slot, wakes, rings) = (slot.clone(), wakes.clone(), rings.clone());
            std::thread::spawn(move || {
                let mut last = 0;
                let (mut slept, mut woke) = (0, 0);
                loop {
                    let req = 'wait: loop {
                        for _ in 0..SPIN_LIMIT {
                            if let Some(r) = slot.poll(last) {
                                break 'wait r;
                            }
                            core::hint::spin_loop();
                        }
                        let r0 = rings.load(SeqCst);
                        if slot.begin_sleep(last, false) {
                            if slot.waiting_requester() != 0 {
                                wakes.fetch_add(1, SeqCst);
                            }
                            slept += 1;
                            until("proxy never rung", || {
                                rings.load(SeqCst) != r0
                                    || slot.req_seq.load(Ordering::Acquire) != last
                            });
                            slot.end_sleep();
                        }
                    };
                    last = req.seq;
                    if req.nr % 7 == 3 {
                        std::thread::sleep(Duration::from_millis(3));
                    }
                    if slot.respond(req.seq, req.nr as i64 * 2) != 0 {
                        woke += 1;
                        wakes.fetch_add(1, SeqCst);
                    }
                    if req.op == Op::Exit as u32 {
                        return (slept, woke);
                    }
                }
            })
        };
        let bell = Bell { wakes, rings };
        for i in 0..CALLS {
            if i % 11 == 5 {
                std::thread::sleep(Duration::from_millis(3));
            }
            assert_eq!(slot.call(Op::Syscall, i, [0; 6], &bell), i as i64 * 2);
        }
        assert_eq!(slot.call(Op::Exit, 0, [0; 6], &bell), 0);
        let (slept, woke) = server.join().unwrap();
        assert!(
            slept > 0 && woke > 0,
            "both sides slept: {slept} and {woke} times"
        );
    }

    #[test]
    fn idle_slots_are_per_core_and_never_a_threads() {
        let idle: std::collections::BTreeSet<usize> =
            (0..crate::layout::MAX_CORES).map(idle_slot).collect();
        assert_eq!(idle.len(), crate::layout::MAX_CORES, "one slot per core");
        assert!(idle
            .iter()
            .all(|&s| (THREAD_SLOTS..MAX_THREADS).contains(&s)));
    }

    #[test]
    fn op_decoding_rejects_unknown() {
        assert_eq!(Op::from_u32(1), Some(Op::Syscall));
        assert_eq!(Op::from_u32(17), Some(Op::ShmAttach));
        assert_eq!(Op::from_u32(18), Some(Op::PerfOpen));
        assert_eq!(Op::from_u32(19), Some(Op::ForkProcess));
        assert_eq!(Op::from_u32(20), Some(Op::EndThreads));
        assert_eq!(Op::from_u32(0), None);
        assert_eq!(Op::from_u32(21), None);
        assert_eq!(Op::from_u32(99), None);
    }
}
