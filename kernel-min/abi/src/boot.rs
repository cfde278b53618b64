//! Boot information: what the proxy tells kernel-min and libos about the partition.
//! Written once by the proxy before the first vCPU runs; read-only afterwards.

use core::mem::{offset_of, size_of};
use static_assertions::{const_assert, const_assert_eq};

/// `BootInfo::magic`: "MOTEBOOT".
pub const BOOT_MAGIC: u64 = u64::from_le_bytes(*b"MOTEBOOT");
/// Version of this layout; bumped on any change.
pub const BOOT_VERSION: u32 = 9;

/// At `layout::BOOT_INFO_GPA`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct BootInfo {
    /// `BOOT_MAGIC`.
    pub magic: u64,
    /// `BOOT_VERSION`.
    pub version: u32,
    /// Number of LWK cores.
    pub ncores: u32,
    /// Bytes of guest-physical memory.
    pub mem_size: u64,
    /// First guest-physical address libos may allocate frames from.
    pub pool_start: u64,
    /// Guest-physical base of the runtime region.
    pub runtime_gpa: u64,
    /// Entry point of the runtime (virtual).
    pub runtime_entry: u64,
    /// Runtime text range `[text_start, text_end)` (virtual): `syscall` from here is a
    /// kernel call, not a Linux system call.
    pub runtime_text_start: u64,
    /// End of the runtime's text.
    pub runtime_text_end: u64,
    /// The shim's trap entry (`mote_trap_entry`): kernel-min hands traps up to it.
    pub runtime_trap_entry: u64,
    /// The shim's ring-3 `syscall` entry (`mote_syscall_entry`), reached without a
    /// trap where `syscall` does not change privilege (software KVM).
    pub runtime_syscall_entry: u64,
    /// End of the runtime image (virtual, page aligned); its heap starts after it.
    pub runtime_image_end: u64,
    /// Guest-physical address of the top-level page table.
    pub pml4_gpa: u64,
    /// Next free page of the boot page-table pool (kernel-min allocates tables from
    /// here until `PT_POOL_END`, then from the frames libos gives it).
    pub pt_pool_next: u64,
    /// Linux process id of the proxy, which is the application's pid.
    pub pid: u32,
    /// Flags, `BOOT_F_*`.
    pub flags: u32,
    /// TSC frequency in kHz (0 if unknown).
    pub tsc_khz: u64,
    /// Length of the argv/envp block at `layout::ARGS_VA`.
    pub args_len: u64,
    /// Number of argv strings in the block (the first is the program path).
    pub argc: u32,
    /// Number of envp strings following argv in the block.
    pub envc: u32,
    /// AT_HWCAP value for the application.
    pub hwcap: u64,
    /// AT_HWCAP2 value.
    pub hwcap2: u64,
    /// 16 random bytes for AT_RANDOM.
    pub random: [u8; 16],
    /// Page size for the application's anonymous memory, heap and stacks
    /// (`mote run --page-size`): `PAGE_SIZE`, `LARGE_PAGE_SIZE` or `HUGE_PAGE_SIZE`
    /// from `layout`; 0 means the default, 2 MiB.
    pub page_size: u64,
    /// Where 2 MiB-only memory starts (0: there is none): `[large_pool_start,
    /// mem_size)` is backed by 2 MiB pages the platform can map only whole and 2 MiB
    /// aligned (the hosted platform's hugetlbfs memory), so libos hands it out in
    /// 2 MiB chunks alone and never maps part of a chunk.
    pub large_pool_start: u64,
    /// Signals whose disposition was `SIG_IGN` when `mote run` started (bit
    /// `sig - 1`): the application inherits them ignored, as `execve` keeps them
    /// (`nohup`, a shell's background job).
    pub ignored_signals: u64,
    /// Time-sharing slice in ns (`mote run --time-slice`): a core with two or
    /// more threads that want to run preempts the running one after this long;
    /// 0: never (threads switch only when one blocks, yields or exits).
    pub time_slice_ns: u64,
    /// The signal mask `mote run` started with (bit `sig - 1`): the
    /// application's first thread inherits it, as `execve` keeps it
    /// (`posix_spawnattr_setsigmask`).
    pub blocked_signals: u64,
    /// NUMA nodes the partition spans (`mote run --numa`, `crate::numa`):
    /// `1..=numa::MAX_NODES`; 0 means no topology was given (one node, id 0,
    /// holding all memory and cores). Read through [`crate::numa::Topology::from_boot`],
    /// which validates all the fields below.
    pub numa_nodes: u32,
    /// The `--numa` placement the proxy made (`numa::PLACE_*`), for messages.
    pub numa_place: u32,
    /// Linux's `nr_node_ids` on the host (highest possible node id + 1): the
    /// bitmap width the NUMA calls check their `maxnode` against.
    pub nr_node_ids: u32,
    /// Zero.
    pub numa_reserved: u32,
    /// End (guest-physical, exclusive) of each node's memory: node `i` holds
    /// `[node_mem_end[i - 1], node_mem_end[i])` (node 0 from 0), the last ends
    /// at `mem_size`.
    pub node_mem_end: [u64; crate::numa::MAX_NODES],
    /// The host node id of each partition node (what the application sees).
    pub node_id: [u16; crate::numa::MAX_NODES],
    /// The partition node (an index into `node_id`) of each LWK core.
    pub core_node: [u8; crate::layout::MAX_CORES],
    /// Each partition node's fallback order (version 8): nibble `k` of
    /// `node_order[i]` is the partition node `i`'s `k`-th nearest node by the
    /// host's `node_distance`, itself first (Linux's zonelist order). All zero:
    /// the partition's node order.
    pub node_order: [u32; crate::numa::MAX_NODES],
    /// Each partition node's weighted-interleave weight (version 8), as the
    /// host's `/sys/kernel/mm/mempolicy/weighted_interleave/nodeN` says; 0 is 1.
    pub node_weight: [u8; crate::numa::MAX_NODES],
    /// Zero.
    pub numa_reserved2: u64,
    /// The application's soft `RLIMIT_AS` at start (version 9), which the
    /// proxy keeps for it: `u64::MAX` for none; 0 when not given (libos then
    /// asks the proxy at the first growth of the address space).
    pub as_limit: u64,
}

/// Auxiliary-vector type under which a mote application finds the runtime's direct
/// system-call entry: `long mote_syscall(long nr, long a0, …, long a5)`, a plain
/// C-ABI function returning what the `syscall` instruction would (`-errno` on
/// failure). Cooperative or relinked code calls it instead of trapping:
/// `getauxval(AT_MOTE_SYSCALL)` is 0 outside mote. ("mote" in ASCII; far above
/// Linux's own AT_* values.)
pub const AT_MOTE_SYSCALL: u64 = 0x6d6f_7465;

/// Auxiliary-vector type of the runtime's register entry: the way relinked code
/// (`mote link`) makes a system call without a trap. It is entered by `call`
/// with every register as at the `syscall` it replaces (rax = the number,
/// arguments in the `syscall` registers), 128 bytes below the caller's stack
/// pointer (the red zone kept): the return address is at `[rsp]`, the
/// `syscall`'s stack pointer is `rsp + 136`. It returns as `syscall` does: rax
/// the result, rcx and r11 clobbered, every other register and the flags kept
/// (the caller steps back over the red zone). `rt_sigreturn` works through it;
/// the calls whose child starts from the caller's registers do not (ENOSYS):
/// they take `AT_MOTE_SYSCALL_FRAME`. (The self-patcher's stubs call the same
/// entry. "motg"; 0 or absent outside mote.)
pub const AT_MOTE_SYSCALL_REGS: u64 = 0x6d6f_7467;

/// Auxiliary-vector type of the runtime's frame entry: the way relinked code
/// (`mote link`) makes the calls whose child starts from the caller's registers
/// (`clone`, `clone3`, `fork`, `vfork`) and `rt_sigreturn` without a trap. It is
/// entered by `call` with every register as at the `syscall` it replaces (rax =
/// the number), 128 bytes below the caller's stack pointer (the red zone kept):
/// the return address is at `[rsp]`, the `syscall`'s stack pointer is `rsp + 136`.
/// It returns to that address with the stack pointer back at `rsp + 136` and
/// every register as `syscall` leaves them (rax the result, rcx and r11
/// clobbered); a child starts there too, with rax = 0 and its own stack.
/// ("motf"; 0 or absent outside mote.)
pub const AT_MOTE_SYSCALL_FRAME: u64 = 0x6d6f_7466;

/// The CPU supports `wrfsbase` at CPL3 (CR4.FSGSBASE is set).
pub const BOOT_F_FSGSBASE: u32 = 1 << 0;
/// Print libos's decisions on the debug console (`MOTE_DEBUG=1`).
pub const BOOT_F_DEBUG: u32 = 1 << 1;
/// Do not rewrite system-call sites (`mote run --no-patch`).
pub const BOOT_F_NO_PATCH: u32 = 1 << 2;
/// Report system-call statistics at exit (`mote run --stats`).
pub const BOOT_F_STATS: u32 = 1 << 3;
/// LWK cores share host CPUs (more cores than the machine can dedicate): an idle
/// core sleeps at once instead of spinning on a CPU another core needs.
pub const BOOT_F_SHARED_CPUS: u32 = 1 << 4;
/// Record every system call in the trace rings (`mote run --trace`, `mote_abi::trace`).
pub const BOOT_F_TRACE: u32 = 1 << 5;

const_assert_eq!(size_of::<BootInfo>(), 392);
const_assert_eq!(offset_of!(BootInfo, as_limit), 384);
const_assert_eq!(offset_of!(BootInfo, node_order), 336);
const_assert_eq!(offset_of!(BootInfo, node_weight), 368);
const_assert_eq!(offset_of!(BootInfo, numa_reserved2), 376);
const_assert_eq!(offset_of!(BootInfo, pid), 104);
const_assert_eq!(offset_of!(BootInfo, random), 152);
const_assert_eq!(offset_of!(BootInfo, page_size), 168);
const_assert_eq!(offset_of!(BootInfo, large_pool_start), 176);
const_assert_eq!(offset_of!(BootInfo, ignored_signals), 184);
const_assert_eq!(offset_of!(BootInfo, time_slice_ns), 192);
const_assert_eq!(offset_of!(BootInfo, blocked_signals), 200);
const_assert_eq!(offset_of!(BootInfo, numa_nodes), 208);
const_assert_eq!(offset_of!(BootInfo, numa_place), 212);
const_assert_eq!(offset_of!(BootInfo, nr_node_ids), 216);
const_assert_eq!(offset_of!(BootInfo, node_mem_end), 224);
const_assert_eq!(offset_of!(BootInfo, node_id), 288);
const_assert_eq!(offset_of!(BootInfo, core_node), 304);
// It fits below the boot GDT in its page.
const_assert!(
    size_of::<BootInfo>() as u64 <= crate::layout::BOOT_GDT_GPA - crate::layout::BOOT_INFO_GPA
);

/// The argv/envp block: `argc` NUL-terminated strings, then `envc` NUL-terminated
/// strings, back to back. The first argv string is the resolved program path that
/// libos opens; the second is the application's `argv[0]` as the user typed it.
pub fn parse_strings(block: &[u8], count: usize) -> (impl Iterator<Item = &[u8]>, usize) {
    let mut end = 0;
    let mut n = 0;
    while n < count && end < block.len() {
        match block[end..].iter().position(|&b| b == 0) {
            Some(p) => end += p + 1,
            None => end = block.len(),
        }
        n += 1;
    }
    let it = block[..end].split(|&b| b == 0).take(count);
    (it, end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_round_trip() {
        let block = b"/bin/x\0x\0-a\0HOME=/\0";
        let (argv, used) = parse_strings(block, 3);
        let argv: Vec<_> = argv.collect();
        assert_eq!(argv, [&b"/bin/x"[..], b"x", b"-a"]);
        let (env, _) = parse_strings(&block[used..], 1);
        assert_eq!(env.collect::<Vec<_>>(), [&b"HOME=/"[..]]);
    }
}
