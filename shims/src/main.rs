//! The runtime: libos and the shim as one ring-3 program in the partition.
//! kernel-min enters `_start` once; `runtime_main` loads the application and
//! jumps to it. From then on the runtime runs only when the application makes a
//! Linux system call or faults (`shim_trap`).
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
mod partition {
    use alloc::string::ToString;

    use mote_abi::boot::BootInfo;
    use mote_abi::trap::{
        signal_for_vector, vector, FaultOrigin, FaultReport, TrapFrame, VECTOR_SYSCALL,
    };
    use mote_libos::exec::Entry;
    use mote_libos::mm::Fault;
    use mote_libos::patch::Patcher;
    use mote_libos::platform::Platform;
    use mote_libos::process::Process;
    use mote_shims::table::Route;

    use mote_abi::errno::to_ret;

    use crate::rt;

    /// The application's process state (address space, signals, identity, ...).
    /// Lock order: `rt::threads::THREADS` first, then this one.
    static PROCESS: spin::Mutex<Option<Process>> = spin::Mutex::new(None);

    fn platform() -> &'static rt::platform::Kvm {
        rt::platform::kvm()
    }

    /// Is the process lock held (by anyone)? A forwarded call made under it must
    /// not give up its core.
    pub fn process_locked() -> bool {
        PROCESS.is_locked()
    }

    /// First code of the runtime on every core, from kernel-min: `boot` is the user
    /// view of BootInfo. Core 0 loads the application and runs it as the main
    /// thread; the others wait for threads.
    pub extern "C" fn runtime_main(boot: &'static BootInfo, core: usize) -> ! {
        if core != 0 {
            let p = loop {
                if let Some(p) = PLATFORM_READY.get() {
                    break *p;
                }
                core::hint::spin_loop();
            };
            rt::threads::secondary(p, core)
        }
        rt::heap::init();
        let p = rt::platform::init(boot);
        rt::threads::init_core(p, 0);
        let mut proc = Process::new(boot);
        rt::threads::init_main(p, proc.pid);
        PLATFORM_READY.call_once(|| p);
        proc.direct_entry = rt::entry::direct_entry_addr();
        let patch = boot.flags & mote_abi::boot::BOOT_F_NO_PATCH == 0;
        proc.patcher = Patcher::new(patch, rt::entry::patched_entry_addr());
        let entry = match proc.exec_from_boot(p, boot, rt::args_block(boot)) {
            Ok(Entry { rip, rsp }) => (rip, rsp),
            Err(e) => {
                p.log(&e.to_string());
                p.exit(e.status())
            }
        };
        *PROCESS.lock() = Some(proc);
        rt::entry::enter_app(entry.0, entry.1)
    }

    /// Set once core 0 has the heap, the platform and the thread table.
    static PLATFORM_READY: spin::Once<&'static rt::platform::Kvm> = spin::Once::new();

    fn is_exit(nr: u64) -> bool {
        nr == syscalls::Sysno::exit as u64 || nr == syscalls::Sysno::exit_group as u64
    }

    /// One system call, however it arrived (`frame`: the full registers of a
    /// trapped call). Returns the value for `rax`, and where a successful `execve`
    /// continues.
    fn syscall(
        p: &'static rt::platform::Kvm,
        nr: u64,
        args: [u64; 6],
        frame: Option<&TrapFrame>,
    ) -> (u64, Option<Entry>) {
        match mote_shims::table::route::<rt::platform::Kvm>(nr as u32) {
            Route::Thread => {
                if is_exit(nr) {
                    if let Some(proc) = PROCESS.lock().as_mut() {
                        report_at_exit(proc, p, nr);
                    }
                }
                let r = rt::threads::dispatch(p, &PROCESS, nr as u32 as u64, args, frame);
                (to_ret(r), None)
            }
            // No lock: a call that blocks in Linux holds up only its thread.
            Route::Forward => (p.forward(nr as u32 as u64, args) as u64, None),
            _ => {
                let mut guard = PROCESS.lock();
                let proc = guard.as_mut().expect("process before first call");
                report_at_exit(proc, p, nr);
                let r = mote_shims::table::dispatch(proc, p, nr, args);
                (r, proc.pending_entry.take())
            }
        }
    }

    /// `mote_syscall` (the direct entry) and `mote_patched_entry` (patched sites):
    /// a system call by a plain function call, no trap.
    #[allow(clippy::too_many_arguments)]
    pub extern "C" fn direct_syscall(
        nr: u64,
        a0: u64,
        a1: u64,
        a2: u64,
        a3: u64,
        a4: u64,
        a5: u64,
    ) -> u64 {
        let (r, entry) = syscall(platform(), nr, [a0, a1, a2, a3, a4, a5], None);
        if let Some(entry) = entry {
            // execve: there is no caller to return to.
            rt::entry::enter_app(entry.rip, entry.rsp)
        }
        r
    }

    /// `--stats` (or `MOTE_DEBUG`): how the calls arrived, said at exit.
    fn report_at_exit(proc: &Process, p: &rt::platform::Kvm, nr: u64) {
        let report = mote_abi::boot::BOOT_F_DEBUG | mote_abi::boot::BOOT_F_STATS;
        if is_exit(nr) && p.boot.flags & report != 0 {
            let mut s = proc.patcher.stats;
            s.direct = rt::threads::direct_calls();
            p.log(&alloc::format!(
                "system calls: {} trapped, {} without a trap (patched sites, direct entry); {} sites patched, {} left trapping",
                s.trapped, s.direct, s.patched, s.declined
            ));
        }
    }

    /// Every system call and exception of the application.
    pub extern "C" fn shim_trap(f: &mut TrapFrame) {
        let p = platform();
        if f.hdr.vector == VECTOR_SYSCALL {
            let nr = f.rax;
            {
                let mut guard = PROCESS.lock();
                let proc = guard.as_mut().expect("process before first trap");
                let Process { patcher, mm, .. } = proc;
                // Sites of calls whose child needs the full frame keep trapping.
                if rt::threads::must_trap(nr) {
                    patcher.stats.trapped += 1;
                } else {
                    patcher.on_trap(mm, p, f.hdr.rip, nr);
                }
            }
            let args = [f.rdi, f.rsi, f.rdx, f.r10, f.r8, f.r9];
            let (r, entry) = syscall(p, nr, args, Some(f));
            f.rax = r;
            if let Some(entry) = entry {
                // A successful execve: the new program starts with a clean
                // register file on its own stack.
                *f = TrapFrame::default();
                f.hdr.vector = VECTOR_SYSCALL;
                f.hdr.rip = entry.rip;
                f.hdr.rsp = entry.rsp;
                f.hdr.rflags = 0x202;
            }
            return;
        }
        // A thread met the int3 of a site another core is rewriting: run the site
        // again once the new bytes are in.
        // (#BP after the int3; #GP at it where the gate is not open to ring 3.)
        let site = match f.hdr.vector {
            vector::BP => f.hdr.rip.wrapping_sub(1),
            vector::GP => f.hdr.rip,
            _ => 0,
        };
        if mote_libos::patch::being_patched(site) {
            mote_libos::patch::wait_patched(site);
            f.hdr.rip = site;
            return;
        }
        if site != 0 {
            let mut b = [0u8; 1];
            p.read_mem(site, &mut b);
            let rewritten = b[0] == 0xe9
                && PROCESS
                    .lock()
                    .as_ref()
                    .is_some_and(|pr| pr.patcher.is_patched_site(site));
            if rewritten {
                f.hdr.rip = site;
                return;
            }
        }
        // An exception of the application. Handlers are a later issue: the default
        // action of the signal ends the run, with what happened.
        let h = f.hdr;
        let mut signal = signal_for_vector(h.vector);
        // libos knows what the faulting page is: beyond the end of a shared file
        // mapping (or over a page it has since grown to), a page fault is libos's.
        if h.vector == vector::PF {
            if let Some(proc) = PROCESS.try_lock().as_mut().and_then(|g| g.as_mut()) {
                match proc.mm.page_fault(p, h.cr2) {
                    Fault::Retry => return,
                    Fault::Signal(s) => signal = s,
                    Fault::Default => {}
                }
            }
        }
        let report = FaultReport {
            origin: FaultOrigin::App as u32,
            signal,
            vector: h.vector,
            error_code: h.error_code,
            addr: if h.vector == vector::PF { h.cr2 } else { h.rip },
            regs: [
                f.rax, f.rbx, f.rcx, f.rdx, f.rsi, f.rdi, f.rbp, h.rsp, f.r8, f.r9, f.r10, f.r11,
                f.r12, f.r13, f.r14, f.r15, h.rip, h.rflags,
            ],
        };
        p.die(signal, Some(&report))
    }

    #[panic_handler]
    fn panic(info: &core::panic::PanicInfo) -> ! {
        let p = platform();
        p.log(&alloc::format!("runtime panic: {info}"));
        p.die(6, None)
    }
}
