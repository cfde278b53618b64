//! One system call of the application as the dispatcher (`mote_shims::table`)
//! sees the runtime: [`Call`] is its `Runtime`, and the thread calls' `Machine`
//! (the machine part of threads is `rt::threads`).

use core::cell::Cell;
use core::sync::atomic::Ordering;

use mote_abi::boot::{BOOT_F_DEBUG, BOOT_F_STATS};
use mote_abi::trap::TrapFrame;
use mote_libos::exec::Entry;
use mote_libos::platform::Platform;
use mote_libos::process::Process;
use mote_libos::sched::Threads;
use mote_libos::syscall::thread::{Machine, ProcessLock, ThreadsLock};
use mote_shims::table::Runtime;

use super::locks::{PROCESS, THREADS};
use super::percpu;
use super::platform::RtPlatform;
use super::threads;

/// A call in progress: how it arrived (`frame`: the full registers of a trapped
/// call; `caller_sp`: the application's rsp at the call), and where a successful
/// `execve` continues.
pub struct Call<'a> {
    p: &'static RtPlatform,
    frame: Option<&'a TrapFrame>,
    caller_sp: u64,
    entry: Cell<Option<Entry>>,
}

impl<'a> Call<'a> {
    pub fn new(p: &'static RtPlatform, frame: Option<&'a TrapFrame>, caller_sp: u64) -> Self {
        Call {
            p,
            frame,
            caller_sp,
            entry: Cell::new(None),
        }
    }

    /// Run the call: the value for `rax`, and where a successful `execve`
    /// continues.
    pub fn run(self, nr: u64, args: [u64; 6]) -> (u64, Option<Entry>) {
        let r = mote_shims::table::dispatch(&self, nr, args);
        (r, self.entry.take())
    }
}

impl Machine<RtPlatform> for Call<'_> {
    fn platform(&self) -> &RtPlatform {
        self.p
    }
    fn process(&self) -> &ProcessLock {
        &PROCESS
    }
    fn threads(&self) -> &ThreadsLock {
        &THREADS
    }
    fn tid(&self) -> u32 {
        percpu::tid()
    }
    fn core(&self) -> usize {
        percpu::core()
    }
    fn tsc_khz(&self) -> u64 {
        self.p.boot.tsc_khz
    }
    fn reschedule(&self, g: spin::MutexGuard<'_, Option<Threads>>) {
        threads::reschedule(g, self.p)
    }
    fn kick(&self, core: usize) {
        threads::kick(core)
    }
    fn update_word(&self, addr: u64, f: &mut dyn FnMut(u32) -> Option<u32>) -> Option<u32> {
        threads::update_word(addr, f)
    }
    fn trapped(&self) -> bool {
        self.frame.is_some()
    }
    fn start_server(&self, slot: usize) -> i64 {
        self.p.start_server(slot)
    }
    fn fork_server(&self, slot: usize) -> i64 {
        self.p.fork_server(slot)
    }
    fn fork_process(&self, set_tid: u64, clear_tid: u64) -> i64 {
        let f = self.frame.expect("fork from a trap");
        super::fork::fork(self.p, f, set_tid, clear_tid)
    }
    fn vfork_wait(&self, tid: u32, slot: usize) -> i64 {
        self.p.vfork_wait(tid, slot)
    }
    fn spawn_exec(
        &self,
        path: u64,
        argv: u64,
        envp: u64,
        sigs: mote_libos::syscall::thread::ExecSignals,
    ) -> i64 {
        self.p.spawn_exec(path, argv, envp, sigs)
    }
    fn new_context(&self, slot: usize, stack: u64) -> bool {
        let f = self.frame.expect("clone from a trap");
        threads::new_context(slot, stack, f)
    }
    fn is_vfork_child(&self) -> bool {
        threads::current_is_child()
    }
    fn end_threads(&self, on: bool) {
        // The runtime looks for doomed threads before the proxy kicks them,
        // and stops only once the proxy stopped kicking.
        if on {
            threads::set_ending(true);
        }
        self.p.end_threads(on);
        if !on {
            threads::set_ending(false);
        }
    }
    fn became(&self, tid: u32) {
        percpu::cpu().tid.store(u64::from(tid), Ordering::Relaxed);
    }
}

impl Runtime<RtPlatform> for Call<'_> {
    fn caller_sp(&self) -> u64 {
        self.caller_sp
    }
    fn after_local(&self, proc: &mut Process) {
        self.p.settle_mirror();
        self.entry.set(proc.pending_entry.take());
    }
    /// `--stats` (or `MOTE_DEBUG`): how the calls arrived, said at exit.
    fn at_exit(&self, proc: &Process) {
        if self.p.boot.flags & (BOOT_F_DEBUG | BOOT_F_STATS) != 0 {
            let mut s = proc.patcher.stats;
            s.direct = percpu::direct_calls();
            self.p.log(&alloc::format!(
                "system calls: {} trapped, {} without a trap (patched sites, direct entry); {} sites patched, {} left trapping",
                s.trapped, s.direct, s.patched, s.declined
            ));
            let ncores = self.p.boot.ncores as usize;
            self.p.log(&super::tick::stats_line(ncores));
        }
    }
    #[inline]
    fn tracing(&self) -> bool {
        super::trace::on()
    }
    fn forward_mark(&self) -> (u32, u64) {
        let slot = super::ikc::thread_slot(percpu::cpu().slot.load(Ordering::Relaxed) as usize);
        (
            slot.req_seq.load(Ordering::Relaxed),
            slot.nr.load(Ordering::Relaxed),
        )
    }
    fn record(&self, e: &mote_abi::trace::Entry) {
        super::trace::ring(percpu::core()).push(e);
    }
}
