//! Linux x86_64 user-space ABI values libos interprets: flag bits, auxv tags, signal
//! numbers and the layouts of the few structs it reads or writes in user memory.
//!
//! Values follow the Linux uapi headers named at each group (the `libc` crate has no
//! definitions for `x86_64-unknown-none`, so they are written here once). System call
//! *numbers* are never written here: they come from `syscalls::Sysno`.

/// `include/uapi/asm-generic/mman-common.h`, `mman.h`, `arch/x86/include/uapi/asm/mman.h`.
pub mod mman {
    pub use mote_abi::kcall::{PROT_EXEC, PROT_READ, PROT_WRITE};
    pub const PROT_NONE: u64 = 0;
    pub const PROT_SEM: u64 = 0x8;
    pub const PROT_GROWSDOWN: u64 = 0x0100_0000;
    pub const PROT_GROWSUP: u64 = 0x0200_0000;

    pub const MAP_SHARED: u64 = 0x01;
    /// `memfd_create` flag (include/uapi/linux/memfd.h).
    pub const MFD_CLOEXEC: u64 = 0x01;
    /// `memfd_create` flag: a file on hugetlbfs; its huge page size bits are
    /// `MAP_HUGE_*`'s (include/uapi/linux/memfd.h, `MFD_HUGE_SHIFT` 26).
    pub const MFD_HUGETLB: u64 = 0x04;
    /// `MAP_HUGE_*` page-size bits: log2 of the size at bit 26
    /// (include/uapi/asm-generic/hugetlb_encode.h).
    pub const MAP_HUGE_SHIFT: u64 = 26;
    pub const MAP_HUGE_MASK: u64 = 0x3f;
    pub const MAP_PRIVATE: u64 = 0x02;
    pub const MAP_SHARED_VALIDATE: u64 = 0x03;
    pub const MAP_TYPE: u64 = 0x0f;
    pub const MAP_FIXED: u64 = 0x10;
    pub const MAP_ANONYMOUS: u64 = 0x20;
    pub const MAP_32BIT: u64 = 0x40;
    pub const MAP_GROWSDOWN: u64 = 0x0100;
    pub const MAP_DENYWRITE: u64 = 0x0800;
    pub const MAP_EXECUTABLE: u64 = 0x1000;
    pub const MAP_LOCKED: u64 = 0x2000;
    pub const MAP_NORESERVE: u64 = 0x4000;
    pub const MAP_POPULATE: u64 = 0x8000;
    pub const MAP_NONBLOCK: u64 = 0x1_0000;
    pub const MAP_STACK: u64 = 0x2_0000;
    pub const MAP_HUGETLB: u64 = 0x4_0000;
    pub const MAP_SYNC: u64 = 0x8_0000;
    pub const MAP_FIXED_NOREPLACE: u64 = 0x10_0000;
    pub const MAP_UNINITIALIZED: u64 = 0x400_0000;
    /// Flags `MAP_SHARED_VALIDATE` accepts (`LEGACY_MAP_MASK` plus `MAP_SYNC`, as
    /// `mm/mmap.c`); huge-page size bits live above bit 26 and are accepted too.
    pub const SHARED_VALIDATE_OK: u64 = MAP_SHARED
        | MAP_PRIVATE
        | MAP_FIXED
        | MAP_ANONYMOUS
        | MAP_DENYWRITE
        | MAP_EXECUTABLE
        | MAP_UNINITIALIZED
        | MAP_GROWSDOWN
        | MAP_LOCKED
        | MAP_NORESERVE
        | MAP_POPULATE
        | MAP_NONBLOCK
        | MAP_STACK
        | MAP_HUGETLB
        | MAP_32BIT
        | MAP_FIXED_NOREPLACE
        | MAP_SYNC
        | (0x3f << 26);

    pub const MREMAP_MAYMOVE: u64 = 1;
    pub const MREMAP_FIXED: u64 = 2;
    pub const MREMAP_DONTUNMAP: u64 = 4;

    pub const MADV_NORMAL: u64 = 0;
    pub const MADV_RANDOM: u64 = 1;
    pub const MADV_SEQUENTIAL: u64 = 2;
    pub const MADV_WILLNEED: u64 = 3;
    pub const MADV_DONTNEED: u64 = 4;
    pub const MADV_FREE: u64 = 8;
    pub const MADV_REMOVE: u64 = 9;
    pub const MADV_DONTFORK: u64 = 10;
    pub const MADV_DOFORK: u64 = 11;
    pub const MADV_MERGEABLE: u64 = 12;
    pub const MADV_UNMERGEABLE: u64 = 13;
    pub const MADV_HUGEPAGE: u64 = 14;
    pub const MADV_NOHUGEPAGE: u64 = 15;
    pub const MADV_DONTDUMP: u64 = 16;
    pub const MADV_DODUMP: u64 = 17;
    pub const MADV_WIPEONFORK: u64 = 18;
    pub const MADV_KEEPONFORK: u64 = 19;
    pub const MADV_COLD: u64 = 20;
    pub const MADV_PAGEOUT: u64 = 21;
    pub const MADV_POPULATE_READ: u64 = 22;
    pub const MADV_POPULATE_WRITE: u64 = 23;
    pub const MADV_DONTNEED_LOCKED: u64 = 24;
    pub const MADV_COLLAPSE: u64 = 25;
    pub const MADV_HWPOISON: u64 = 100;
    pub const MADV_SOFT_OFFLINE: u64 = 101;
}

/// `include/uapi/asm-generic/fcntl.h`, `include/uapi/linux/fcntl.h`.
pub mod fcntl {
    pub const O_RDONLY: u64 = 0;
    pub const O_CLOEXEC: u64 = 0o2_000_000;
    /// `AT_FDCWD` (-100) as the register value.
    pub const AT_FDCWD: u64 = -100i64 as u64;
}

/// `struct stat` of x86_64 (`arch/x86/include/uapi/asm/stat.h`): 144 bytes.
pub mod stat {
    pub const SIZE: usize = 144;
    pub const ST_MODE: usize = 24;
    pub const ST_RDEV: usize = 40;
    pub const ST_SIZE: usize = 48;
    pub const S_IFMT: u32 = 0o170_000;
    pub const S_IFCHR: u32 = 0o020_000;
    /// `st_rdev` of `/dev/zero`: `makedev(1, 5)` (`Documentation/admin-guide/devices.txt`).
    pub const DEV_ZERO: u64 = (1 << 8) | 5;
    pub const S_IFREG: u32 = 0o100_000;
    pub const S_IFDIR: u32 = 0o040_000;
}

/// `struct statfs` (`fstatfs`), `arch/x86/include/uapi/asm/statfs.h` via
/// `asm-generic/statfs.h`: 120 bytes on x86_64, `f_type` first.
pub mod statfs {
    pub const SIZE: usize = 120;
    pub const F_TYPE: usize = 0;
    /// `include/uapi/linux/magic.h`.
    pub const HUGETLBFS_MAGIC: u64 = 0x9584_58f6;
}

/// Auxiliary vector tags, `include/uapi/linux/auxvec.h` and
/// `arch/x86/include/uapi/asm/auxvec.h`.
pub mod auxv {
    pub const AT_NULL: u64 = 0;
    pub const AT_PHDR: u64 = 3;
    pub const AT_PHENT: u64 = 4;
    pub const AT_PHNUM: u64 = 5;
    pub const AT_PAGESZ: u64 = 6;
    pub const AT_BASE: u64 = 7;
    pub const AT_FLAGS: u64 = 8;
    pub const AT_ENTRY: u64 = 9;
    pub const AT_UID: u64 = 11;
    pub const AT_EUID: u64 = 12;
    pub const AT_GID: u64 = 13;
    pub const AT_EGID: u64 = 14;
    pub const AT_PLATFORM: u64 = 15;
    pub const AT_HWCAP: u64 = 16;
    pub const AT_CLKTCK: u64 = 17;
    pub const AT_SECURE: u64 = 23;
    pub const AT_RANDOM: u64 = 25;
    pub const AT_HWCAP2: u64 = 26;
    pub const AT_EXECFN: u64 = 31;
    pub const AT_MINSIGSTKSZ: u64 = 51;
    pub const AT_SYSINFO_EHDR: u64 = 33;
}

/// Signals, `arch/x86/include/uapi/asm/signal.h` and `include/uapi/asm-generic/signal-defs.h`.
pub mod signal {
    pub const SIGHUP: u32 = 1;
    pub const SIGINT: u32 = 2;
    pub const SIGQUIT: u32 = 3;
    pub const SIGILL: u32 = 4;
    pub const SIGTRAP: u32 = 5;
    pub const SIGABRT: u32 = 6;
    pub const SIGBUS: u32 = 7;
    pub const SIGFPE: u32 = 8;
    pub const SIGKILL: u32 = 9;
    pub const SIGUSR1: u32 = 10;
    pub const SIGSEGV: u32 = 11;
    pub const SIGUSR2: u32 = 12;
    pub const SIGPIPE: u32 = 13;
    pub const SIGALRM: u32 = 14;
    pub const SIGTERM: u32 = 15;
    pub const SIGSTKFLT: u32 = 16;
    pub const SIGCHLD: u32 = 17;
    pub const SIGCONT: u32 = 18;
    pub const SIGSTOP: u32 = 19;
    pub const SIGTSTP: u32 = 20;
    pub const SIGTTIN: u32 = 21;
    pub const SIGTTOU: u32 = 22;
    pub const SIGURG: u32 = 23;
    pub const SIGXCPU: u32 = 24;
    pub const SIGXFSZ: u32 = 25;
    pub const SIGVTALRM: u32 = 26;
    pub const SIGPROF: u32 = 27;
    pub const SIGWINCH: u32 = 28;
    pub const SIGIO: u32 = 29;
    pub const SIGPWR: u32 = 30;
    pub const SIGSYS: u32 = 31;
    /// Highest signal number (`_NSIG`).
    pub const NSIG: u32 = 64;

    pub const SIG_DFL: u64 = 0;
    pub const SIG_IGN: u64 = 1;

    /// `sa_flags` (`arch/x86/include/uapi/asm/signal.h`).
    pub const SA_NOCLDSTOP: u64 = 0x1;
    pub const SA_SIGINFO: u64 = 0x4;
    pub const SA_RESTORER: u64 = 0x0400_0000;
    pub const SA_ONSTACK: u64 = 0x0800_0000;
    pub const SA_RESTART: u64 = 0x1000_0000;
    pub const SA_NODEFER: u64 = 0x4000_0000;
    pub const SA_RESETHAND: u64 = 0x8000_0000;

    pub const SIG_BLOCK: u64 = 0;
    pub const SIG_UNBLOCK: u64 = 1;
    pub const SIG_SETMASK: u64 = 2;

    /// The kernel's `sigset_t` is 64 bits on x86_64.
    pub const SIGSET_SIZE: u64 = 8;

    /// `struct kernel_sigaction` as `rt_sigaction` reads and writes it (x86_64 has
    /// `SA_RESTORER`): handler, flags, restorer, mask.
    pub mod sigaction {
        pub const SIZE: usize = 32;
        pub const HANDLER: usize = 0;
        pub const FLAGS: usize = 8;
        pub const RESTORER: usize = 16;
        pub const MASK: usize = 24;
    }

    /// `stack_t` (`include/uapi/asm-generic/signal.h`): `ss_sp`, `ss_flags` (int,
    /// padded), `ss_size`.
    pub mod stack_t {
        pub const SIZE: usize = 24;
        pub const SP: usize = 0;
        pub const FLAGS: usize = 8;
        pub const SS_SIZE: usize = 16;
    }
    pub const SS_ONSTACK: u32 = 1;
    pub const SS_DISABLE: u32 = 2;
    pub const SS_AUTODISARM: u32 = 1 << 31;
    /// `MINSIGSTKSZ` of the uapi headers; `sigaltstack` refuses smaller stacks.
    pub const MINSIGSTKSZ: u64 = 2048;
}

/// System V shared memory: `include/uapi/linux/shm.h`, `include/uapi/linux/ipc.h`,
/// and x86_64's `struct shmid64_ds` (`include/uapi/asm-generic/shmbuf.h`, with
/// `struct ipc64_perm` from `include/uapi/asm-generic/ipcbuf.h`), which is what
/// `shmctl` reads and writes on x86_64 (glibc's `struct shmid_ds` has the same
/// layout): 112 bytes.
pub mod shm {
    /// `shmat` flags.
    pub const SHM_RDONLY: u64 = 0o10_000;
    pub const SHM_RND: u64 = 0o20_000;
    pub const SHM_REMAP: u64 = 0o40_000;
    pub const SHM_EXEC: u64 = 0o100_000;
    /// `SHMLBA` on x86_64 (`arch/x86/include/asm/shmparam.h`): the page size.
    pub const SHMLBA: u64 = 4096;
    /// `shmctl` commands that fill a `shmid64_ds`.
    pub const IPC_STAT: u64 = 2;
    pub const SHM_STAT: u64 = 13;
    pub const SHM_STAT_ANY: u64 = 15;
    /// `struct shmid64_ds` field offsets.
    pub mod shmid_ds {
        pub const SIZE: usize = 112;
        /// `shm_perm.key` (`key_t`, i32).
        pub const KEY: usize = 0;
        /// `shm_segsz` (u64).
        pub const SEGSZ: usize = 48;
        /// `shm_nattch` (u64).
        pub const NATTCH: usize = 88;
    }
}

/// `arch/x86/include/uapi/asm/prctl.h`.
pub mod arch_prctl {
    pub const ARCH_SET_GS: u64 = 0x1001;
    pub const ARCH_SET_FS: u64 = 0x1002;
    pub const ARCH_GET_FS: u64 = 0x1003;
    pub const ARCH_GET_GS: u64 = 0x1004;
}

/// `include/uapi/linux/prctl.h`.
pub mod prctl {
    pub const PR_SET_NAME: u64 = 15;
    pub const PR_GET_NAME: u64 = 16;
    pub const PR_SET_SECCOMP: u64 = 22;
    pub const PR_SET_SYSCALL_USER_DISPATCH: u64 = 59;
    pub const PR_SYS_DISPATCH_ON: u64 = 1;
}

/// `include/uapi/linux/futex.h`: operations (the low bits of `op`) and flags.
pub mod futex {
    pub const FUTEX_WAIT: u32 = 0;
    pub const FUTEX_WAKE: u32 = 1;
    pub const FUTEX_REQUEUE: u32 = 3;
    pub const FUTEX_CMP_REQUEUE: u32 = 4;
    pub const FUTEX_WAKE_OP: u32 = 5;
    pub const FUTEX_WAIT_BITSET: u32 = 9;
    pub const FUTEX_WAKE_BITSET: u32 = 10;
    pub const FUTEX_PRIVATE_FLAG: u32 = 128;
    pub const FUTEX_CLOCK_REALTIME: u32 = 256;
    /// `struct robust_list_head` is three words.
    pub const ROBUST_LIST_HEAD_SIZE: u64 = 24;
}

/// `include/uapi/linux/sched.h`: `clone` flags, and `struct clone_args` (`clone3`).
pub mod sched {
    pub const CSIGNAL: u64 = 0xff;
    pub const CLONE_VM: u64 = 0x100;
    pub const CLONE_FS: u64 = 0x200;
    pub const CLONE_FILES: u64 = 0x400;
    pub const CLONE_SIGHAND: u64 = 0x800;
    pub const CLONE_PIDFD: u64 = 0x1000;
    pub const CLONE_VFORK: u64 = 0x4000;
    pub const CLONE_PARENT: u64 = 0x8000;
    pub const CLONE_THREAD: u64 = 0x10000;
    pub const CLONE_SYSVSEM: u64 = 0x40000;
    pub const CLONE_SETTLS: u64 = 0x80000;
    pub const CLONE_PARENT_SETTID: u64 = 0x100000;
    pub const CLONE_CHILD_CLEARTID: u64 = 0x200000;
    pub const CLONE_DETACHED: u64 = 0x400000;
    pub const CLONE_CHILD_SETTID: u64 = 0x1000000;
    pub const CLONE_IO: u64 = 0x8000_0000;
    /// `CLONE_ARGS_SIZE_VER0`: the smallest `struct clone_args`.
    pub const CLONE_ARGS_SIZE_VER0: u64 = 64;
}

/// `include/uapi/linux/resource.h`: `getrusage`'s `who`.
pub mod resource {
    pub const RUSAGE_SELF: u64 = 0;
    pub const RUSAGE_THREAD: u64 = 1;
}

/// `include/uapi/linux/falloc.h`.
pub mod falloc {
    pub const FALLOC_FL_KEEP_SIZE: u64 = 0x01;
    pub const FALLOC_FL_PUNCH_HOLE: u64 = 0x02;
}

/// Highest user address Linux accepts as an FS base (`TASK_SIZE_MAX` with 4-level
/// paging).
pub const TASK_SIZE_MAX: u64 = 0x7fff_ffff_f000;
