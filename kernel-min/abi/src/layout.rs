//! Physical (guest-physical) and virtual layout of a partition.
//!
//! Guest-physical memory is one memfd in the proxy, mapped into KVM as slot 0 at
//! GPA 0. Its first megabytes hold the boot structures; the rest is the frame pool
//! libos allocates application memory from.
//!
//! ```text
//! GPA 0x0000_1000  BootInfo page            VA LIBOS_VA + 0x0         (user, read-only)
//! GPA 0x0000_2000  boot page-table pool     (kernel only, via the direct map)
//! GPA 0x0008_0000  IKC area (core pages,    VA LIBOS_VA + IKC_VA_OFF  (user, read-write)
//!                  map log)
//! GPA 0x0010_0000  argv/envp block          VA LIBOS_VA + ARGS_VA_OFF (user, read-only)
//! GPA 0x0080_0000  kernel-min image         VA DIRECT_MAP_BASE + GPA  (kernel only)
//! runtime_gpa      libos runtime region     VA RUNTIME_VA             (user)
//! pool_start..mem  frame pool for libos
//! PASSTHROUGH_GPA  pass-through window: KVM memory slots backed by the proxy's
//!   .. +SIZE       Linux mappings of shared files and devices (see below)
//! ```
//!
//! The pass-through window lies far above any guest RAM (`--mem` is refused when
//! it would reach it) and below every guest-physical width a KVM host offers
//! (x86-64 hosts have at least 36 bits, practically 40 and more; the window ends at
//! 2^41). The proxy allocates GPA ranges in it, one KVM memory slot per shared
//! mapping; libos maps them into the application like RAM, and kernel-min's `MAP`
//! accepts them besides the frame pool. Nothing else in the partition touches them
//! (they are not in kernel-min's direct map).
//!
//! Application virtual addresses live in `[USER_START, USER_END)`; the runtime in
//! `[LIBOS_VA, LIBOS_END)`. The proxy reserves `[USER_START, LIBOS_END)` in its own
//! address space at start-up so that none of its own code, heap or stacks can ever
//! land there: that reservation is what makes the unified address space possible.

/// Base page size.
pub const PAGE_SIZE: u64 = 4096;
/// Large (PDE) page size.
pub const LARGE_PAGE_SIZE: u64 = 2 << 20;
/// Huge (PDPTE) page size.
pub const HUGE_PAGE_SIZE: u64 = 1 << 30;

/// Boot information page.
pub const BOOT_INFO_GPA: u64 = 0x1000;
/// Boot GDT used only for the first instruction; kernel-min loads its own.
pub const BOOT_GDT_GPA: u64 = BOOT_INFO_GPA + 0x800;
/// Page-table pages the proxy uses to build the boot page tables.
pub const PT_POOL_GPA: u64 = 0x2000;
/// End of the boot page-table pool.
pub const PT_POOL_END: u64 = 0x8_0000;
/// Inter-kernel communication area (core pages and the map log).
pub const IKC_GPA: u64 = 0x8_0000;
/// Size of the IKC area.
pub const IKC_SIZE: u64 = 0x8_0000;
/// argv/envp block written by the proxy.
pub const ARGS_GPA: u64 = 0x10_0000;
/// Largest argv/envp block: the most `execve` takes on Linux (6 MiB of strings and
/// pointers: three quarters of `_STK_LIM`, reached with an unlimited stack limit)
/// plus room for the resolved program path.
pub const ARGS_MAX: u64 = 0x70_0000;
/// Where the proxy loads kernel-min.
pub const KERNEL_GPA: u64 = 0x80_0000;

/// Start of the pass-through window (guest-physical).
pub const PASSTHROUGH_GPA: u64 = 1 << 40;
/// Size of the pass-through window.
pub const PASSTHROUGH_SIZE: u64 = 1 << 40;

/// `[gpa, gpa+len)` lies inside the pass-through window.
pub const fn is_passthrough(gpa: u64, len: u64) -> bool {
    match gpa.checked_add(len) {
        Some(end) => gpa >= PASSTHROUGH_GPA && end <= PASSTHROUGH_GPA + PASSTHROUGH_SIZE,
        None => false,
    }
}

/// Kernel-only direct map of all guest-physical memory.
pub const DIRECT_MAP_BASE: u64 = 0xffff_8000_0000_0000;
/// Virtual address kernel-min is relocated to.
pub const KERNEL_VA: u64 = DIRECT_MAP_BASE + KERNEL_GPA;

/// Lowest address an application may use.
pub const USER_START: u64 = 0x1_0000;
/// End of the application's address range (64 TiB).
pub const USER_END: u64 = 0x4000_0000_0000;
/// Default top of the application's main stack.
pub const USER_STACK_TOP: u64 = 0x3fff_f000_0000;
/// Top-down mmap allocations start below here (leaving room for the stack).
pub const USER_MMAP_TOP: u64 = 0x3fff_0000_0000;
/// Load base of position-independent executables.
pub const USER_PIE_BASE: u64 = 0x1000_0000_0000;
/// Load base of the program interpreter (the dynamic linker), as Linux puts it in
/// the mmap area; its own mmaps (shared libraries) go top-down from `USER_MMAP_TOP`.
pub const INTERP_BASE: u64 = 0x2000_0000_0000;

/// Start of the runtime's (libos + shims) region.
pub const LIBOS_VA: u64 = USER_END;
/// User-visible alias of kernel-min's `syscall` entry page (read-only, executable):
/// under software KVM a `syscall` from CPL3 runs its target without entering ring 0,
/// so the entry must be reachable from ring 3 (see kernel-min's `arch`).
pub const SYSCALL_PAGE_VA: u64 = LIBOS_VA + 0x1000;
/// Offset of the IKC area inside the runtime's region.
pub const IKC_VA_OFF: u64 = 0x10_0000;
/// Virtual address of the IKC area.
pub const IKC_VA: u64 = LIBOS_VA + IKC_VA_OFF;
/// Offset of the argv/envp block.
pub const ARGS_VA_OFF: u64 = 0x20_0000;
/// Virtual address of the argv/envp block.
pub const ARGS_VA: u64 = LIBOS_VA + ARGS_VA_OFF;
/// Virtual address the runtime image is relocated to.
pub const RUNTIME_VA: u64 = LIBOS_VA + 0x100_0000;
/// Size of the runtime region: image, heap and upcall stacks.
pub const RUNTIME_SIZE: u64 = 64 << 20;
/// Largest runtime image.
pub const RUNTIME_IMAGE_MAX: u64 = 16 << 20;
/// Offset of the libos heap inside the runtime region.
pub const RUNTIME_HEAP_OFF: u64 = RUNTIME_IMAGE_MAX;
/// Size of the libos heap.
pub const RUNTIME_HEAP_SIZE: u64 = 32 << 20;
/// Offset of the upcall stacks inside the runtime region.
pub const RUNTIME_STACKS_OFF: u64 = RUNTIME_HEAP_OFF + RUNTIME_HEAP_SIZE;
/// Size of one core's upcall stack.
pub const UPCALL_STACK_SIZE: u64 = 256 << 10;
/// End of the runtime's range; the proxy reserves up to here.
pub const LIBOS_END: u64 = LIBOS_VA + 0x1_0000_0000;

/// Most LWK cores a partition can have (bounded by the IKC area).
pub const MAX_CORES: usize = 32;

static_assertions::const_assert!(
    RUNTIME_STACKS_OFF + MAX_CORES as u64 * UPCALL_STACK_SIZE <= RUNTIME_SIZE
);
static_assertions::const_assert!(ARGS_GPA + ARGS_MAX <= KERNEL_GPA);
static_assertions::const_assert!(ARGS_VA + ARGS_MAX <= RUNTIME_VA);
static_assertions::const_assert!(ARGS_MAX >= (6 << 20) + 4096);
static_assertions::const_assert!(IKC_GPA + IKC_SIZE <= ARGS_GPA);
static_assertions::const_assert!(RUNTIME_VA + RUNTIME_SIZE <= LIBOS_END);
static_assertions::const_assert!(USER_STACK_TOP < USER_END && USER_MMAP_TOP < USER_STACK_TOP);
static_assertions::const_assert!(PASSTHROUGH_GPA.is_multiple_of(HUGE_PAGE_SIZE));
static_assertions::const_assert!(PASSTHROUGH_GPA + PASSTHROUGH_SIZE <= 1 << 41);
static_assertions::const_assert!(is_passthrough(PASSTHROUGH_GPA, PAGE_SIZE));
static_assertions::const_assert!(!is_passthrough(PASSTHROUGH_GPA - PAGE_SIZE, 2 * PAGE_SIZE));
static_assertions::const_assert!(!is_passthrough(u64::MAX - PAGE_SIZE, 2 * PAGE_SIZE));

/// Round `x` up to a multiple of `align` (a power of two).
pub const fn align_up(x: u64, align: u64) -> u64 {
    (x + align - 1) & !(align - 1)
}

/// Round `x` down to a multiple of `align` (a power of two).
pub const fn align_down(x: u64, align: u64) -> u64 {
    x & !(align - 1)
}

/// Upcall stack top of `core` (virtual).
pub const fn upcall_stack_top(core: usize) -> u64 {
    RUNTIME_VA + RUNTIME_STACKS_OFF + (core as u64 + 1) * UPCALL_STACK_SIZE
}
