//! kernel-min: mote's privileged kernel. It does three things — paging, traps and
//! inter-kernel communication — plus the boot that they need. Everything else lives
//! in libos at CPL3.
//!
//! The proxy (the VMM) enters `_start` in 64-bit mode with the boot page tables
//! loaded and `rdi` pointing at `BootInfo` through the direct map. kernel-min loads
//! its GDT/TSS/IDT, points the `syscall` MSRs at its entry and drops to the runtime
//! (libos + shims) in ring 3. From then on it only runs when the CPU traps:
//! a Linux system call or an exception from the application is handed up to the
//! shim at CPL3 (`trap`), a `syscall` from the runtime's own text is a kernel call
//! (`kcall`), and anything else ends the run with a report to the proxy.
//!
//! Built for `x86_64-unknown-none`. On the host this crate is an empty program so
//! that workspace-wide `cargo build`/`cargo test` work.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod arch;
#[cfg(target_os = "none")]
mod console;
#[cfg(target_os = "none")]
mod kcall;
#[cfg(target_os = "none")]
mod paging;
#[cfg(target_os = "none")]
mod trap;

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("kernel-min runs inside a mote partition; `mote run` loads it (build for x86_64-unknown-none)");
    std::process::exit(2);
}

#[cfg(target_os = "none")]
use mote_abi::boot::{BootInfo, BOOT_MAGIC, BOOT_VERSION};

/// What this image is (`mote_abi::image`): the proxy reads it from the file
/// before loading it (`mote run --kernel FILE`).
#[cfg(target_os = "none")]
#[used]
#[unsafe(link_section = ".mote_image")]
static IMAGE_NOTE: mote_abi::image::ImageNote =
    mote_abi::image::ImageNote::new(mote_abi::image::KIND_KERNEL, "-");

/// Boot information, set once in `kmain`.
#[cfg(target_os = "none")]
static BOOT: spin::Once<&'static BootInfo> = spin::Once::new();

/// The partition's boot information.
#[cfg(target_os = "none")]
pub fn boot() -> &'static BootInfo {
    BOOT.get().expect("boot info before kmain")
}

/// Rust entry from `_start`.
#[cfg(target_os = "none")]
#[unsafe(no_mangle)]
extern "C" fn kmain(boot: &'static BootInfo, core: usize) -> ! {
    if boot.magic != BOOT_MAGIC || boot.version != BOOT_VERSION {
        panic!("boot info: bad magic or version {}", boot.version);
    }
    BOOT.call_once(|| boot);
    arch::init(core);
    if core == 0 && boot.flags & mote_abi::boot::BOOT_F_DEBUG != 0 {
        kprintln!(
            "kernel-min: up, {} MiB, entering runtime at {:#x}",
            boot.mem_size >> 20,
            boot.runtime_entry
        );
    }
    arch::enter_user(
        boot.runtime_entry,
        mote_abi::layout::upcall_stack_top(core),
        mote_abi::layout::LIBOS_VA,
        core,
    )
}

#[cfg(target_os = "none")]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    kprintln!("kernel-min: panic: {}", info);
    trap::fatal_kernel(None)
}
