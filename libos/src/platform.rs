//! The `Platform` interface: everything libos needs from what it runs on.
//!
//! kernel-min implements it in the partition (through `shims`: kernel calls, IKC
//! slot, direct memory access); a Linux-hosted platform can implement it in an
//! ordinary process; tests implement it with a fake. libos logic never touches
//! hardware or raw pointers itself.

use mote_abi::errno::Errno;
use mote_abi::maplog::Change;
use mote_abi::trap::FaultReport;

/// What libos runs on.
pub trait Platform {
    /// Map user `[va, va+len)` to guest-physical `[gpa, gpa+len)` with Linux `PROT_*`
    /// bits (kernel call `MAP`). Page aligned. Uses 2 MiB pages where aligned.
    fn map(&self, va: u64, gpa: u64, len: u64, prot: u64) -> Result<(), Errno>;
    /// Remove mappings in `[va, va+len)` (kernel call `UNMAP`).
    fn unmap(&self, va: u64, len: u64) -> Result<(), Errno>;
    /// Change protection in `[va, va+len)` (kernel call `PROTECT`).
    fn protect(&self, va: u64, len: u64, prot: u64) -> Result<(), Errno>;
    /// Hand kernel-min `[gpa, gpa+len)` (frames from the pool, 4 KiB aligned) to build
    /// page tables from (kernel call `GIVE_TABLES`). `map` fails with ENOMEM when
    /// kernel-min is out of table frames; give more and retry.
    fn give_tables(&self, gpa: u64, len: u64) -> Result<(), Errno>;
    /// Does the platform build page tables from frames libos gives it (kernel-min
    /// does)? Where it does not (the hosted platform: Linux owns the tables),
    /// ENOMEM from `map` is the host's own limit (`vm.max_map_count`, memory)
    /// and giving frames would not help.
    fn builds_page_tables(&self) -> bool {
        true
    }
    /// Set the FS base of the running thread (`arch_prctl(ARCH_SET_FS)`).
    fn set_fs(&self, base: u64);
    /// Tell the proxy about a change of the application's address space (map log), so
    /// it keeps the same memory at the same virtual addresses.
    fn publish(&self, change: Change);
    /// Fill mapped user memory `[va, va+len)` with zeroes.
    fn zero(&self, va: u64, len: u64);
    /// Copy `data` to mapped user memory at `va`.
    fn write_mem(&self, va: u64, data: &[u8]);
    /// Copy `data` to mapped user memory at `va` whatever its protection (read-only
    /// program text included): for patching code. Fails with EFAULT if unmapped.
    fn poke(&self, va: u64, data: &[u8]) -> Result<(), Errno>;
    /// Let every other core of the partition pass an instruction boundary (after
    /// code was modified under it). Nothing to do with one core.
    fn quiesce(&self) {}
    /// The time-stamp counter (`rdtsc`; it runs natively in the partition).
    fn tsc(&self) -> u64;
    /// Copy mapped user memory at `va` into `buf`.
    fn read_mem(&self, va: u64, buf: &mut [u8]);
    /// Forward Linux system call `nr` to the proxy; returns Linux's raw result
    /// (negative errno on failure). Pointers in `args` must be mapped user memory
    /// or runtime memory (both are in the unified address space).
    fn forward(&self, nr: u64, args: [u64; 6]) -> i64;
    /// `fstat(fd)` forwarded to Linux into `st` (`uapi::stat::SIZE` bytes, as
    /// `struct stat`); Linux's raw result.
    fn fstat(&self, fd: u64, st: &mut [u8]) -> i64 {
        self.forward(
            syscalls::Sysno::fstat as u64,
            [fd, self.addr_of(st), 0, 0, 0, 0],
        )
    }
    /// The synchronous signal Linux raised for the calling thread during its last
    /// forwarded call (`SIGXFSZ` with `EFBIG`, `SIGPIPE` with `EPIPE`), taken: asked only after an error
    /// that may come with one. 0: none.
    fn take_raised(&self) -> u32 {
        0
    }
    /// Virtual address of `buf` as the proxy sees it (runtime memory is in the
    /// unified address space, so this is the pointer value).
    fn addr_of(&self, buf: &[u8]) -> u64 {
        buf.as_ptr() as u64
    }
    /// End the run: the application exited with `status` (0–255).
    fn exit(&self, status: i32) -> !;
    /// End the run: the application was killed by `signal`; `fault` describes the
    /// exception that caused it, if one did.
    fn die(&self, signal: u32, fault: Option<&FaultReport>) -> !;
    /// Diagnostics from libos itself (not application output), shown by the proxy.
    fn log(&self, msg: &str);
    /// Whether mote's notes are wanted (`MOTE_DEBUG`): notes that need no
    /// action are logged only then.
    fn debugging(&self) -> bool {
        false
    }
    /// Have Linux map `fd` shared at user `[va, va+len)` (`mmap`'s arguments; `va`
    /// free and page aligned) and make it reachable from the partition: a
    /// pass-through object (`ikc::Op::MapShared`, then `Op::SharedLen`). libos then
    /// maps its guest-physical range like RAM. `Err` carries Linux's errno.
    fn map_shared(
        &self,
        va: u64,
        len: u64,
        prot: u64,
        flags: u64,
        fd: u64,
        off: u64,
    ) -> Result<SharedMapping, Errno>;
    /// Attach System V shared memory segment `shmid` at user `[va, va+len)` (free,
    /// page aligned; `len` is the segment's size, page-rounded) with `shmat`'s
    /// `shmflg` (`ikc::Op::ShmAttach`): a pass-through object like `map_shared`'s,
    /// valid over its whole length, released the same way (`unshare`). `Err`
    /// carries Linux's errno (a bad or removed id, no permission).
    fn attach_shm(
        &self,
        va: u64,
        len: u64,
        shmid: u64,
        shmflg: u64,
    ) -> Result<SharedMapping, Errno>;
    /// How many Linux attachments (`shm_nattch` counts them) stand behind each of
    /// the application's System V attachments: 1, the proxy's mirror; 2 where the
    /// application's own Linux process attaches the segment too (the hosted
    /// platform). libos reports the application's own count.
    fn shm_views(&self) -> u64 {
        1
    }
    /// The pass-through object at `gpa` is mapped nowhere any more (`Op::Unshare`).
    fn unshare(&self, gpa: u64);
    /// Bytes of the pass-through object at `gpa` that lie before its file's end
    /// now (`Op::SharedLen`): the file may have grown since it was mapped.
    fn shared_len(&self, gpa: u64) -> u64;
    /// Page faults kernel-min has taken on the partition's cores so far
    /// (`ikc::CorePage::page_faults`, summed).
    fn page_faults(&self) -> u64;
    /// Bytes of user `[va, va+len)` mapped by 4 KiB, 2 MiB and 1 GiB pages, as the
    /// page tables hold them now (`Op::PageSizes`).
    fn page_sizes(&self, va: u64, len: u64) -> [u64; 3];
    /// The core the caller runs on (0 where there is one).
    fn core(&self) -> usize {
        0
    }
    /// The IKC slots with a request the proxy has not answered yet, each with that
    /// request's sequence number: forwarded calls in flight now (a blocking
    /// `read` may stay in flight for long). None where nothing is forwarded.
    fn calls_in_flight(&self) -> alloc::vec::Vec<(u32, u32)> {
        alloc::vec::Vec::new()
    }
    /// Has slot `slot` answered its request `seq` (and so every earlier one)?
    fn call_answered(&self, slot: u32, seq: u32) -> bool {
        let _ = (slot, seq);
        true
    }
    /// CPU time in ns (`Op::CpuTimes`): `[process, all vCPUs, vCPU 0, vCPU 1, ...]`
    /// into `out`; returns how many were written (0: unknown).
    fn cpu_times(&self, out: &mut [u64]) -> usize {
        let _ = out;
        0
    }
    /// `perf_event_open` (`args` as the application passed them) on the Linux
    /// thread that executes LWK core `core` (`Op::PerfOpen`): Linux's descriptor
    /// or `-errno`. A platform without LWK cores of its own (the tests' fakes)
    /// has Linux run the call as it is.
    fn perf_open(&self, core: usize, args: [u64; 6]) -> i64 {
        let _ = core;
        self.forward(syscalls::Sysno::perf_event_open as u64, args)
    }
}

/// A pass-through object the proxy made for a shared file or device mapping, or a
/// System V shared memory attachment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SharedMapping {
    /// Guest-physical start (in `layout::PASSTHROUGH_GPA`'s window).
    pub gpa: u64,
    /// Bytes from the start that lie before the file's end (page multiple): only
    /// these may be mapped; the rest of the mapping raises `SIGBUS`.
    pub valid: u64,
    /// The host mapping can be made writable (the fd was open for writing; the
    /// segment was not attached `SHM_RDONLY`).
    pub may_write: bool,
}
