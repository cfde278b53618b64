//! The process as libos keeps it: its address space, identity (pid; the main thread's
//! tid is the pid), signal state, the per-thread words glibc registers
//! (`set_tid_address`, `set_robust_list`, the FS base), and what was already logged.
//!
//! What happens when the application signals itself lives here too ([`Process::raise`]):
//! a default action is taken at once; a signal with a handler stays pending until the
//! runtime's entry builds its frame (`deliver`).

use alloc::collections::BTreeSet;
use alloc::format;
use alloc::string::String;

use mote_abi::boot::{BootInfo, BOOT_F_DEBUG};
use mote_abi::errno::Errno;
use syscalls::Sysno;

use crate::frames::Frames;
use crate::mm::AddressSpace;
use crate::platform::Platform;
use crate::signal::{self, DefaultAction, Disposition, Signals};
use crate::uapi::signal::SIGSTOP;

/// The application process.
#[derive(Debug)]
pub struct Process {
    /// Its address space.
    pub mm: AddressSpace,
    /// Linux pid (the proxy's); also the main thread's tid.
    pub pid: u32,
    /// Signal dispositions, mask, alternate stack.
    pub signals: Signals,
    /// `set_robust_list` head and length.
    pub robust_list: (u64, u64),
    /// `set_tid_address` pointer (cleared and futex-woken at thread exit, once
    /// threads exist).
    pub clear_child_tid: u64,
    /// FS base set with `arch_prctl(ARCH_SET_FS)`.
    pub fs_base: u64,
    /// `AT_HWCAP`, `AT_HWCAP2`, `AT_RANDOM` for the initial stack.
    pub hwcap: (u64, u64),
    pub random: [u8; 16],
    /// `AT_MINSIGSTKSZ` for the initial stack; 0 means `stack::DEFAULT_MINSIGSTKSZ`.
    /// The runtime sets the real signal-frame size here once it knows it.
    pub minsigstksz: u64,
    /// The runtime's direct system-call entry, passed as `AT_MOTE_SYSCALL` (0: none).
    pub direct_entry: u64,
    /// The runtime's frame entry, passed as `AT_MOTE_SYSCALL_FRAME` (0: none).
    pub frame_entry: u64,
    /// Absolute path of the running program (`/proc/self/exe`).
    pub exe: alloc::vec::Vec<u8>,
    /// Set by a successful `execve`: where the new program starts (the shim
    /// returns there instead of to the caller).
    pub pending_entry: Option<crate::exec::Entry>,
    /// The partition's clocks (TSC-based).
    pub clock: crate::time::Clock,
    /// Rewrites trapping system-call sites into direct calls.
    pub patcher: crate::patch::Patcher,
    /// Log decisions that are normal (e.g. `rseq` refused) too.
    pub debug: bool,
    /// LWK cores of the partition, numbered `0..ncores` inside it.
    pub ncores: u32,
    /// Live threads, as the runtime's thread layer last said.
    pub threads: usize,
    /// Threads a signal was sent to (`tgkill`): the runtime interrupts their
    /// waits once it has let go of the process.
    pub interrupt: alloc::vec::Vec<u32>,
    /// Thread names given with `prctl(PR_SET_NAME)` or inherited from the
    /// creating thread; a thread without one has the program's (`name_of`).
    names: alloc::collections::BTreeMap<u32, [u8; 16]>,
    /// Descriptors opened on the task directory (`/proc/self/task`): number,
    /// device and inode, whose listing is the application's threads only
    /// (`crate::syscall::fs`).
    pub task_dirs: alloc::vec::Vec<(u64, u64, u64)>,
    /// Descriptors opened for writing on a thread's `comm`: number, device,
    /// inode and the thread; their writes rename it (`crate::syscall::fs`).
    pub comm_files: alloc::vec::Vec<CommFile>,
    logged: BTreeSet<u64>,
}

/// A descriptor the application opened for writing on thread `tid`'s `comm`
/// (`/proc/self/task/<tid>/comm`, `/proc/self/comm`, `/proc/thread-self/comm`),
/// known by its number and the device and inode Linux gave it, so that a number
/// closed behind libos's back and reused for another file is told apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommFile {
    pub fd: u64,
    pub dev: u64,
    pub ino: u64,
    pub tid: u32,
}

impl Process {
    /// This process is the child of a `fork` now (its memory a copy of the
    /// parent's): its pid is `pid`, and only the thread that forked lives on,
    /// as the main thread `pid`.
    pub fn forked(&mut self, pid: u32) {
        let tid = self.tid();
        self.mm.numa.forked(tid, pid);
        self.pid = pid;
        self.signals.forked(pid);
        self.threads = 1;
        self.interrupt.clear();
        self.pending_entry = None;
        self.robust_list = (0, 0);
        // The thread that forked goes on as the main thread, with its name.
        let name = self.names.remove(&self.signals.current_thread());
        self.names.clear();
        if let Some(n) = name {
            self.names.insert(pid, n);
        }
    }

    /// Thread `tid` calls `execve` and every other thread has ended (Linux's
    /// `de_thread`): it is the process's one thread, with the thread-group
    /// leader's id (the pid), its own signal mask, pending signals and memory
    /// policy.
    pub fn de_threaded(&mut self, tid: u32) {
        self.switch_thread(tid);
        self.signals.exec_by(self.pid);
        self.mm.numa.forked(tid, self.pid);
        self.threads = 1;
        self.interrupt.clear();
    }

    /// The name (`comm`) of thread `tid`: what it was given, else the program's
    /// base name.
    pub fn name_of(&self, tid: u32) -> String {
        match self.names.get(&tid) {
            Some(n) => {
                let len = n.iter().position(|&b| b == 0).unwrap_or(n.len());
                String::from_utf8_lossy(&n[..len]).into_owned()
            }
            None => crate::procfs::comm(&self.exe),
        }
    }

    /// Thread `tid` is called `name` now (cut to 15 bytes, as Linux does).
    pub fn set_name(&mut self, tid: u32, name: &[u8]) {
        let len = name
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(name.len())
            .min(15);
        let mut n = [0u8; 16];
        n[..len].copy_from_slice(&name[..len]);
        self.names.insert(tid, n);
    }

    /// Thread `tid` was created by thread `creator`: it has its name (Linux copies
    /// `comm`). Names of threads that have ended are dropped here.
    pub fn inherit_name(&mut self, creator: u32, tid: u32, live: impl Fn(u32) -> bool) {
        self.names.retain(|&t, _| t == creator || live(t));
        if let Some(&n) = self.names.get(&creator) {
            self.names.insert(tid, n);
        }
    }

    /// A new program runs (`execve`): every thread has its name again.
    pub fn forget_names(&mut self) {
        self.names.clear();
    }

    /// The process of a partition, before anything is loaded.
    pub fn new(boot: &BootInfo) -> Self {
        // The runtime refuses a BootInfo whose topology does not check before
        // it makes the process (`shims/src/main.rs`).
        let topo = mote_abi::numa::Topology::from_boot(boot).unwrap_or_else(|_| {
            mote_abi::numa::Topology::single(boot.mem_size, boot.ncores as usize)
        });
        let mut mm = AddressSpace::new(Frames::from_boot(boot, topo));
        // The application's RLIMIT_AS, given at boot (0: ask at the first growth).
        if boot.as_limit != 0 {
            mm.set_as_limit(Some(boot.as_limit));
        }
        mm.numa.set_caller(boot.pid);
        // The image's policy may change it (`crate::policy`).
        mm.set_page_size(<crate::policy::Active as crate::policy::Policy>::page_size(
            boot.page_size,
        ));
        Process {
            mm,
            pid: boot.pid,
            signals: Signals::inheriting(boot.ignored_signals, boot.blocked_signals),
            robust_list: (0, 0),
            clear_child_tid: 0,
            fs_base: 0,
            hwcap: (boot.hwcap, boot.hwcap2),
            random: boot.random,
            minsigstksz: 0,
            direct_entry: 0,
            frame_entry: 0,
            patcher: crate::patch::Patcher::default(),
            clock: crate::time::Clock::new(boot.tsc_khz),
            exe: alloc::vec::Vec::new(),
            pending_entry: None,
            debug: boot.flags & BOOT_F_DEBUG != 0,
            ncores: boot.ncores.max(1),
            threads: 1,
            interrupt: alloc::vec::Vec::new(),
            names: alloc::collections::BTreeMap::new(),
            task_dirs: alloc::vec::Vec::new(),
            comm_files: alloc::vec::Vec::new(),
            logged: BTreeSet::new(),
        }
    }

    /// Make thread `tid`'s per-thread state the current one (its signal mask,
    /// its memory policy); `tid` 0 (no thread) changes nothing.
    pub fn switch_thread(&mut self, tid: u32) {
        self.signals.switch_thread(tid);
        if tid != 0 {
            self.mm.numa.set_caller(tid);
        }
    }

    /// The calling thread's id (only the main thread exists so far).
    pub fn tid(&self) -> u32 {
        match self.signals.current_thread() {
            0 => self.pid,
            t => t,
        }
    }

    /// Threads of the process (`/proc/self/status`).
    pub fn thread_count(&self) -> usize {
        self.threads.max(1)
    }

    /// Log `msg()` the first time `key` (a system call number, usually) asks.
    pub fn log_once<P: Platform>(&mut self, p: &P, key: u64, msg: impl FnOnce() -> String) {
        if self.logged.insert(key) {
            p.log(&msg());
        }
    }

    /// Check and read application memory on its behalf (`EFAULT` if it may not be
    /// read).
    pub fn read_user<P: Platform>(&self, p: &P, va: u64, buf: &mut [u8]) -> Result<(), Errno> {
        self.mm.check_access(va, buf.len() as u64, false)?;
        p.read_mem(va, buf);
        Ok(())
    }

    /// Check and write application memory on its behalf (`EFAULT` if it may not be
    /// written).
    pub fn write_user<P: Platform>(&self, p: &P, va: u64, data: &[u8]) -> Result<(), Errno> {
        self.mm.check_access(va, data.len() as u64, true)?;
        p.write_mem(va, data);
        Ok(())
    }

    /// The application sent itself `sig` (kill, tgkill, tkill, raise). Signal 0 only
    /// checks that the process exists.
    pub fn raise<P: Platform>(&mut self, p: &P, sig: u64) -> Result<usize, Errno> {
        if sig == 0 {
            return Ok(0);
        }
        let sig = signal::valid(sig).ok_or(Errno::EINVAL)?;
        if self.signals.ignored(sig) && !self.signals.blocked(sig) {
            return Ok(0);
        }
        let info = self.sender_info(p, sig, crate::sigframe::code::SI_USER);
        self.raise_info(p, sig, info, false);
        Ok(0)
    }

    /// Act on signals that became deliverable (after the mask changed, or from
    /// outside): default actions now; signals with a handler stay pending for the
    /// entry that returns to the application.
    pub fn deliver_pending<P: Platform>(&mut self, p: &P) {
        self.signals.take_external();
        let set = !self.signals.mask() & !self.signals.handled_set();
        while let Some((sig, _)) = self.signals.take_from(set) {
            self.act_on(p, sig);
        }
    }

    /// Take the action `sig` calls for now; returns if the process goes on.
    fn act_on<P: Platform>(&mut self, p: &P, sig: u32) {
        match self.signals.disposition(sig) {
            Disposition::Ignore
            | Disposition::Default(DefaultAction::Ignore)
            | Disposition::Default(DefaultAction::Continue) => {}
            Disposition::Default(DefaultAction::Terminate) => p.die(sig, None),
            Disposition::Default(DefaultAction::Stop) => {
                // Stopping is Linux's business: the proxy *is* the process to the
                // shell. SIGSTOP cannot be caught, so the proxy stops for sure (and
                // the partition with it) until SIGCONT. As natively, nothing is
                // said: the stop is what the program asked for (a note only
                // under `MOTE_DEBUG`).
                if p.debugging() {
                    self.log_once(p, 0x1_0000 + sig as u64, || {
                        format!(
                            "{} with the default action: the whole run is stopped with SIGSTOP",
                            signal::name(sig)
                        )
                    });
                }
                p.forward(
                    Sysno::kill as u64,
                    [self.pid as u64, SIGSTOP as u64, 0, 0, 0, 0],
                );
            }
            // Its frame is built by the entry returning to the application.
            Disposition::Handler(_) => self.signals.make_pending(sig),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakePlatform;
    use crate::signal::{bit, SigAction};
    use crate::uapi::signal::*;
    use std::panic::{catch_unwind, AssertUnwindSafe};

    fn proc() -> Process {
        let boot = BootInfo {
            pid: 4242,
            pool_start: 16 << 20,
            mem_size: 64 << 20,
            ..Default::default()
        };
        Process::new(&boot)
    }

    fn panics(f: impl FnOnce()) -> String {
        let e = catch_unwind(AssertUnwindSafe(f)).expect_err("should end the run");
        e.downcast_ref::<String>().cloned().unwrap_or_default()
    }

    #[test]
    fn default_terminating_signal_ends_the_run() {
        let p = FakePlatform::new();
        let mut pr = proc();
        let msg = panics(|| {
            let _ = pr.raise(&p, SIGABRT as u64);
        });
        assert!(msg.contains("killed by signal 6"), "{msg}");
    }

    #[test]
    fn ignored_and_default_ignored_signals_do_nothing() {
        let p = FakePlatform::new();
        let mut pr = proc();
        assert_eq!(pr.raise(&p, SIGCHLD as u64), Ok(0));
        assert_eq!(pr.raise(&p, SIGWINCH as u64), Ok(0));
        pr.signals
            .set_action(
                SIGTERM,
                SigAction {
                    handler: SIG_IGN,
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(pr.raise(&p, SIGTERM as u64), Ok(0));
        assert_eq!(pr.raise(&p, 0), Ok(0));
        assert_eq!(pr.raise(&p, 65), Err(Errno::EINVAL));
    }

    #[test]
    fn blocked_signal_waits_until_unblocked() {
        let p = FakePlatform::new();
        let mut pr = proc();
        pr.signals.change_mask(SIG_BLOCK, bit(SIGUSR1)).unwrap();
        assert_eq!(pr.raise(&p, SIGUSR1 as u64), Ok(0));
        pr.deliver_pending(&p);
        pr.signals.change_mask(SIG_UNBLOCK, bit(SIGUSR1)).unwrap();
        let msg = panics(|| pr.deliver_pending(&p));
        assert!(msg.contains("killed by signal 10"), "{msg}");
    }

    /// Regression: a program stopping itself (`raise(SIGSTOP)`, a shell's
    /// job control) had mote print a `mote: libos:` line, which natively
    /// nothing prints; only `MOTE_DEBUG` says it now. The stop itself is the
    /// proxy's: a forwarded `kill(pid, SIGSTOP)` either way.
    #[test]
    fn a_default_stop_is_quiet_unless_debugging() {
        for debugging in [false, true] {
            let p = FakePlatform::new();
            p.st.borrow_mut().debugging = debugging;
            let mut pr = proc();
            assert_eq!(pr.raise(&p, SIGSTOP as u64), Ok(0));
            assert_eq!(pr.raise(&p, SIGTSTP as u64), Ok(0));
            let kills = p
                .forwarded_nrs()
                .iter()
                .filter(|&&nr| nr == Sysno::kill as u64)
                .count();
            assert_eq!(kills, 2);
            let logs = p.st.borrow().logs.clone();
            if debugging {
                assert_eq!(logs.len(), 2, "{logs:?}");
                assert!(
                    logs[0].starts_with("SIGSTOP with the default action"),
                    "{logs:?}"
                );
            } else {
                assert!(logs.is_empty(), "{logs:?}");
            }
        }
    }

    #[test]
    fn signal_with_a_handler_stays_pending_for_the_entry() {
        let p = FakePlatform::new();
        let mut pr = proc();
        pr.signals
            .set_action(
                SIGUSR2,
                SigAction {
                    handler: 0x40_1000,
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(pr.raise(&p, SIGUSR2 as u64), Ok(0));
        assert_eq!(pr.signals.pending(), bit(SIGUSR2));
        let d = pr.next_delivery(&p).expect("a handler to run");
        assert_eq!((d.sig, d.action.handler), (SIGUSR2, 0x40_1000));
        assert_eq!(d.info.code(), crate::sigframe::code::SI_USER);
        assert_eq!(pr.signals.pending(), 0);
    }
}
