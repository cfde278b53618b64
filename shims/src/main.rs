//! The runtime: libos and the shim as one ring-3 program in the partition.
//! kernel-min enters `_start` once; from then on the runtime runs when the
//! application makes a system call or faults (`shim_trap`).
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("mote-runtime runs inside a mote partition; `mote run` loads it (build for x86_64-unknown-none)");
    std::process::exit(2);
}

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(target_os = "none")]
mod rt;

#[cfg(target_os = "none")]
use mote_abi::boot::BootInfo;
#[cfg(target_os = "none")]
use mote_abi::trap::TrapFrame;
#[cfg(target_os = "none")]
use mote_libos::platform::Platform;

#[cfg(target_os = "none")]
static PLATFORM: spin::Once<rt::platform::Kvm> = spin::Once::new();

#[cfg(target_os = "none")]
fn platform() -> &'static rt::platform::Kvm {
    PLATFORM.get().expect("runtime not started")
}

/// First code of the runtime, from kernel-min: `boot` is the user view of BootInfo.
#[cfg(target_os = "none")]
extern "C" fn runtime_main(boot: &'static BootInfo) -> ! {
    use core::sync::atomic::Ordering;
    rt::heap::init();
    let p = PLATFORM.call_once(|| rt::platform::Kvm { boot, core: 0 });
    let cp = rt::platform::core_page(0);
    cp.upcall_entry.store(rt::entry::trap_entry_addr(), Ordering::Relaxed);
    cp.upcall_rsp.store(mote_abi::layout::upcall_stack_top(0), Ordering::Relaxed);
    let msg = b"hello from the runtime\n";
    p.forward(1, [2, msg.as_ptr() as u64, msg.len() as u64, 0, 0, 0]);
    p.exit(7)
}

/// Every system call and exception of the application.
#[cfg(target_os = "none")]
extern "C" fn shim_trap(f: &mut TrapFrame) {
    let p = platform();
    p.exit(f.hdr.vector as i32)
}

#[cfg(target_os = "none")]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    use core::fmt::Write;
    let mut s = alloc::string::String::new();
    let _ = write!(s, "runtime panic: {info}");
    let p = platform();
    p.log(&s);
    p.die(6, None)
}
