//! Kernel calls: the few things libos asks kernel-min to do.
//!
//! A kernel call is a `syscall` instruction executed from the runtime's text
//! (`BootInfo::runtime_text_*`); the same instruction anywhere else is an
//! application's Linux system call, handed up to the shim. Registers follow the
//! Linux convention: number in `rax`, arguments in `rdi, rsi, rdx, r10, r8, r9`,
//! result in `rax` (0 or a value on success, `-errno` on failure).

/// `map(va, gpa, len, prot)`: map `[va, va+len)` to guest-physical `[gpa, gpa+len)`
/// with `PROT_*` bits; uses 2 MiB pages where alignment allows (`prot` may add
/// `MAP_PAGES_4K` or `MAP_PAGES_1G` to change the largest page size). Fails with
/// `EEXIST` if any page is already mapped, `EINVAL` for a range outside the user
/// half, or for guest-physical memory outside both the frame pool and the
/// pass-through window (`layout::PASSTHROUGH_GPA`).
pub const MAP: u64 = 1;
/// `unmap(va, len)`: remove the mappings in `[va, va+len)` (holes are fine).
pub const UNMAP: u64 = 2;
/// `protect(va, len, prot)`: change protection of mapped pages in the range.
pub const PROTECT: u64 = 3;
/// `give_tables(gpa, len)`: hand kernel-min frames to build page tables from.
pub const GIVE_TABLES: u64 = 4;
/// `set_fs(base)`: set the FS base (when `wrfsbase` is not usable at CPL3).
pub const SET_FS: u64 = 5;

/// `set_gs(base)`: set the GS base (when `wrgsbase` is not usable at CPL3). The
/// runtime keeps its per-core data there; applications cannot set GS.
pub const SET_GS: u64 = 7;

/// `doorbell(port, value)`: `out` to `ports::NOTIFY`, `ports::WAIT` or
/// `ports::WAKE_CORE` on the
/// runtime's behalf (a VM exit). A kernel call rather than port I/O at CPL3 because
/// software KVM (kvm_pvm) ignores the TSS I/O permission bitmap.
pub const DOORBELL: u64 = 6;

/// `PROT_READ`, as in Linux.
pub const PROT_READ: u64 = 1;
/// `PROT_WRITE`, as in Linux.
pub const PROT_WRITE: u64 = 2;
/// `PROT_EXEC`, as in Linux.
pub const PROT_EXEC: u64 = 4;

/// `map`'s `prot` may carry this: 4 KiB pages only.
pub const MAP_PAGES_4K: u64 = 1 << 16;
/// `map`'s `prot` may carry this: 1 GiB pages where virtual and physical addresses
/// are 1 GiB aligned (the CPU must offer `pdpe1gb`).
pub const MAP_PAGES_1G: u64 = 1 << 17;
/// `PROT_*` bits `map` and `protect` look at.
pub const PROT_MASK: u64 = PROT_READ | PROT_WRITE | PROT_EXEC;
