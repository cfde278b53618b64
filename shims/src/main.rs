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

/// What this image is (`mote_abi::image`), with the libos policy it was built
/// with (`mote_libos::policy::Active`): the proxy reads it from the file before
/// loading it (`mote run --runtime FILE`), `mote info` and `--stats` print it.
#[cfg(target_os = "none")]
#[used]
#[unsafe(link_section = ".mote_image")]
static IMAGE_NOTE: mote_abi::image::ImageNote = mote_abi::image::ImageNote::new(
    mote_abi::image::KIND_RUNTIME,
    <mote_libos::policy::Active as mote_libos::policy::Policy>::NAME,
);

#[cfg(target_os = "none")]
mod partition {
    use alloc::string::ToString;

    use mote_abi::boot::BootInfo;
    use mote_abi::signal::{VECTOR_FRAME, VECTOR_PATCHED, VECTOR_PREEMPT, VECTOR_SIGNAL};
    use mote_abi::trap::{signal_for_vector, vector, TrapFrame, VECTOR_SYSCALL};
    use mote_libos::exec::Entry;
    use mote_libos::mm::Fault;
    use mote_libos::patch::Patcher;
    use mote_libos::platform::Platform;
    use mote_libos::process::Process;
    use mote_libos::sigframe::SigInfo;

    use crate::rt;

    use rt::locks::PROCESS;

    fn platform() -> &'static rt::platform::RtPlatform {
        rt::platform::get()
    }

    /// The process, with the running thread's signal state in place (its mask,
    /// alternate stack, ... are per thread).
    fn process() -> spin::MutexGuard<'static, Option<Process>> {
        let mut g = PROCESS.lock();
        if let Some(pr) = g.as_mut() {
            pr.switch_thread(rt::percpu::tid());
        }
        g
    }

    /// First code of the runtime on every core, from kernel-min: `boot` is the user
    /// view of BootInfo. Core 0 loads the application and runs it as the main
    /// thread; the others wait for threads.
    pub extern "C" fn runtime_main(boot: &'static BootInfo, core: usize) -> ! {
        if core != 0 {
            // In a fork's copy PLATFORM_READY is set already: wait for core 0 to
            // have made the child's thread table and process (`fork::resume`).
            let p = loop {
                if let Some(p) = PLATFORM_READY.get().filter(|_| !rt::fork::is_child()) {
                    break *p;
                }
                core::hint::spin_loop();
            };
            rt::threads::secondary(p, core)
        }
        if rt::fork::is_child() {
            // A fork's copy: the thread that forked goes on here (the hosted
            // platform adopted it before its other cores started).
            rt::fork::adopt(boot);
            rt::fork::resume(boot)
        }
        rt::heap::init();
        let p = rt::platform::init(boot, &rt::threads::Scheduler);
        rt::trace::init(boot);
        rt::threads::init_core(p, 0);
        // BootInfo lies in memory the application's side can write: its NUMA
        // table is checked before libos uses it.
        if let Err(e) = mote_abi::numa::Topology::from_boot(boot) {
            p.log(&alloc::format!("boot info: bad NUMA topology ({e:?})"));
            p.exit(125)
        }
        let mut proc = Process::new(boot);
        rt::threads::init_main(p, proc.pid);
        proc.signals.attach(rt::sig::page()); // signals: from the proxy
        proc.minsigstksz = rt::fpu::format().min_stack(); // signals: AT_MINSIGSTKSZ
        PLATFORM_READY.call_once(|| p);
        proc.direct_entry = rt::entry::direct_entry_addr();
        proc.frame_entry = rt::entry::frame_entry_addr();
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
    static PLATFORM_READY: spin::Once<&'static rt::platform::RtPlatform> = spin::Once::new();

    /// One system call, however it arrived (`frame`: the full registers of a
    /// trapped call; `caller_sp`: the application's rsp at the call). Returns the
    /// value for `rax`, and where a successful `execve` continues.
    fn syscall(
        p: &'static rt::platform::RtPlatform,
        nr: u64,
        args: [u64; 6],
        frame: Option<&TrapFrame>,
        caller_sp: u64,
    ) -> (u64, Option<Entry>) {
        rt::call::Call::new(p, frame, caller_sp).run(nr, args)
    }

    /// `mote_syscall` (the direct entry): a system call by a plain function call,
    /// no trap. `hint`, an eighth argument on the stack, is `mote_syscall`'s saved
    /// rbp: the caller's rsp was 16 above it (signals: is it on the alternate
    /// stack).
    #[allow(clippy::too_many_arguments)]
    pub extern "C" fn direct_syscall(
        nr: u64,
        a0: u64,
        a1: u64,
        a2: u64,
        a3: u64,
        a4: u64,
        a5: u64,
        hint: u64,
    ) -> u64 {
        direct_common(nr, [a0, a1, a2, a3, a4, a5], hint.wrapping_add(16))
    }

    /// `mote_patched_entry`'s call: `hint` is its saved-register area, 192 bytes
    /// below the rsp of the application's `syscall` (7 saved registers, the
    /// stub's return address, the red zone the stub stepped over).
    #[allow(clippy::too_many_arguments)]
    pub extern "C" fn patched_syscall(
        nr: u64,
        a0: u64,
        a1: u64,
        a2: u64,
        a3: u64,
        a4: u64,
        a5: u64,
        hint: u64,
    ) -> u64 {
        direct_common(nr, [a0, a1, a2, a3, a4, a5], hint.wrapping_add(192))
    }

    fn direct_common(nr: u64, args: [u64; 6], caller_sp: u64) -> u64 {
        // rt_sigreturn needs the registers; the entries' slow path has them.
        if nr == syscalls::Sysno::rt_sigreturn as u64 {
            rt::sig::request_sigreturn();
            return 0;
        }
        let p = platform();
        // A thread an `execve` of another thread is ending ends at its entries.
        rt::threads::leave_if_doomed(p);
        let (r, entry) = syscall(p, nr, args, None, caller_sp);
        if let Some(entry) = entry {
            // execve: there is no caller to return to.
            rt::entry::enter_app(entry.rip, entry.rsp)
        }
        // A slice that ended during the call ends now (no lock held; the
        // caller's registers are the entry's to keep, as across a blocking call).
        rt::threads::end_of_slice_if_due(p);
        rt::threads::leave_if_doomed(p);
        r
    }

    /// Every system call and exception of the application. Returns non-zero when
    /// the entry must restore every register from `f` (a signal frame was built or
    /// taken back, or a faulting instruction is retried), zero for the `syscall`
    /// exit (rcx and r11 clobbered).
    pub extern "C" fn shim_trap(f: &mut TrapFrame) -> u64 {
        let p = platform();
        // A thread an `execve` of another thread is ending ends here, however
        // it entered (the proxy kicks those running application code in).
        rt::threads::leave_if_doomed(p);
        // The frame entry's calls (a relinked site: no trap) are served as a
        // trapped call's, with the same register frame.
        if f.hdr.vector == VECTOR_SYSCALL || f.hdr.vector == VECTOR_FRAME {
            let nr = f.rax;
            {
                let mut guard = process();
                let proc = guard.as_mut().expect("process before first trap");
                let Process { patcher, mm, .. } = proc;
                // A trapped site is the self-patcher's; sites of calls whose
                // child needs the full frame keep trapping.
                if f.hdr.vector == VECTOR_SYSCALL {
                    if mote_libos::syscall::thread::needs_frame(nr) {
                        patcher.stats.trapped += 1;
                    } else {
                        patcher.on_trap(mm, p, f.hdr.rip, nr);
                    }
                }
                if nr == syscalls::Sysno::rt_sigreturn as u64 {
                    proc.signals.thread.caller_sp = f.hdr.rsp;
                    // The restorer's `syscall`: its `ret` popped pretcode.
                    let frame = f.hdr.rsp.wrapping_sub(8);
                    rt::sig::sigreturn(proc, p, f, frame);
                    // A signal the handler left pending (unblocked now) runs next.
                    rt::sig::on_return(proc, p, f);
                    return 1;
                }
            }
            let args = [f.rdi, f.rsi, f.rdx, f.r10, f.r8, f.r9];
            let (r, entry) = syscall(p, nr, args, Some(f), f.hdr.rsp);
            f.rax = r;
            if let Some(entry) = entry {
                // A successful execve: the new program starts with a clean
                // register file on its own stack.
                *f = TrapFrame::default();
                f.hdr.vector = VECTOR_SYSCALL;
                f.hdr.rip = entry.rip;
                f.hdr.rsp = entry.rsp;
                f.hdr.rflags = 0x202;
                return 0;
            }
            rt::threads::end_of_slice_if_due(p);
            rt::threads::leave_if_doomed(p);
            let mut guard = process();
            let proc = guard.as_mut().expect("process");
            return u64::from(rt::sig::on_return(proc, p, f));
        }
        if f.hdr.vector == VECTOR_PREEMPT {
            // The core's timer interrupted the application: its slice is over.
            // Whichever thread runs next, this one resumes here, every register
            // from `f`, after the signals due to it.
            rt::threads::end_of_slice(p);
            let mut guard = process();
            if let Some(proc) = guard.as_mut() {
                rt::sig::on_return(proc, p, f);
            }
            return 1;
        }
        if f.hdr.vector == VECTOR_SIGNAL {
            // The VMM redirected the vCPU: a signal from outside is pending.
            rt::threads::end_of_slice_if_due(p);
            let mut guard = process();
            let proc = guard.as_mut().expect("process before first signal");
            rt::sig::on_return(proc, p, f);
            return 1;
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
            return 1;
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
                return 1;
            }
        }
        // An exception of the application: its handler runs if it has one and the
        // signal is not blocked; otherwise the run ends, with what happened.
        let h = f.hdr;
        let mut signal = signal_for_vector(h.vector);
        let mut guard = process();
        let Some(proc) = guard.as_mut() else {
            p.die(signal, Some(&rt::sig::report(f, signal)))
        };
        // libos knows what the faulting page is: beyond the end of a shared file
        // mapping (or over a page it has since grown to), a page fault is libos's.
        if h.vector == vector::PF {
            match proc.mm.page_fault(p, h.cr2, h.error_code) {
                Fault::Retry => return 1,
                Fault::Signal(s) => signal = s,
                Fault::Default => {}
            }
        }
        let info = fault_info(proc, f, signal);
        if let Some(d) = proc.fault_delivery(signal, info) {
            let ctx = *f;
            let cr2 = if h.vector == vector::PF { h.cr2 } else { 0 };
            rt::sig::deliver(proc, p, f, &ctx, &d, (h.vector, h.error_code, cr2));
            return 1;
        }
        drop(guard);
        p.die(signal, Some(&rt::sig::report(f, signal)))
    }

    /// The `siginfo` of a fault, as Linux's trap handlers fill it.
    fn fault_info(proc: &Process, f: &TrapFrame, signal: u32) -> SigInfo {
        use mote_libos::sigframe::{code, fpe_code, segv_code};
        let h = f.hdr;
        let (code, addr) = match (h.vector, signal) {
            (vector::PF, 7) => (code::BUS_ADRERR, h.cr2),
            (vector::PF, _) => (segv_code(proc.mm.vma_at(h.cr2).is_some()), h.cr2),
            (vector::DE, _) => (code::FPE_INTDIV, h.rip),
            (vector::XM, _) => {
                let (mxcsr, _, _) = rt::fpu::status();
                (fpe_code(mxcsr & 0x3f, (mxcsr >> 7) & 0x3f), h.rip)
            }
            (vector::MF, _) => {
                let (_, fsw, fcw) = rt::fpu::status();
                (
                    fpe_code(u32::from(fsw) & 0x3f, u32::from(fcw) & 0x3f),
                    h.rip,
                )
            }
            (vector::UD, _) => (code::ILL_ILLOPN, h.rip),
            (vector::DB, _) => (code::TRAP_TRACE, h.rip),
            (vector::AC, _) => (code::BUS_ADRALN, 0),
            // int3, #GP and the rest: the kernel's own (SI_KERNEL, no address).
            _ => (code::SI_KERNEL, 0),
        };
        SigInfo::fault(signal, code, addr)
    }

    /// The patched-site and direct entries' slow path: the call returned while the
    /// signal page's `attention` was set. `f` is the state the call returns to.
    pub extern "C" fn direct_slow(f: &mut TrapFrame) {
        let p = platform();
        rt::threads::leave_if_doomed(p);
        let mut guard = process();
        let proc = guard.as_mut().expect("process before first call");
        if rt::sig::take_sigreturn() {
            // At a patched site the stub moved rsp down by the red zone and the
            // call's return address: the `syscall`'s rsp is 128 above the
            // post-return rsp, and the frame 8 below that.
            let sp = if f.hdr.vector == VECTOR_PATCHED {
                f.hdr.rsp + 128
            } else {
                f.hdr.rsp
            };
            rt::sig::sigreturn(proc, p, f, sp.wrapping_sub(8));
        }
        rt::sig::on_return(proc, p, f);
    }

    #[panic_handler]
    fn panic(info: &core::panic::PanicInfo) -> ! {
        let p = platform();
        p.log(&alloc::format!("runtime panic: {info}"));
        p.die(6, None)
    }
}
