//! Threads of the application: the per-core cooperative scheduler and the futex
//! table, as plain data under one lock (`Threads`).
//!
//! Policy (the LWK's): a thread is placed on a core when it is created (by the
//! image's policy, `crate::policy`; by default round robin over the least loaded
//! of the cores its affinity allows) and never migrates unless
//! `sched_setaffinity` moves it. A core switches threads when the running one
//! blocks (futex wait, a forwarded call still outstanding after its spin), yields
//! or exits, and — time-sharing only when needed, as Kitten and McKernel arm their
//! timer — when its slice ends while another thread of the core wants to run
//! (`wants_tick`, `preempt`). A core with one thread that wants to run takes no
//! timer event at all. The switch itself is the runtime's (user-level stack
//! switch); this module decides who runs next and keeps the futex wait queues.
//!
//! An `execve` from a process with other threads ends them first, as Linux's
//! `de_thread` does; who is being ended and when the caller may go on are
//! decided here too (`sched/exec.rs`).
//!
//! The whole state sits behind one lock so that "check the futex word, enqueue,
//! mark blocked, pick the next thread" is atomic with respect to wakers on other
//! cores: a thread marked `Blocked` runs again only after some core made it
//! `Runnable` and its own core picked it.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;

use crate::policy::{Active, Policy};

use mote_abi::errno::Errno;

/// What a thread is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// On its core now.
    Running,
    /// In its core's run queue.
    Runnable,
    /// In a futex wait queue, until woken or `deadline` (monotonic ns; 0 = none).
    Blocked { deadline: u64 },
    /// Waiting for the answer to a forwarded call; its core checks the slot.
    Forwarded,
    /// Exited; its slot and stack are recycled once its core switched away.
    Dead,
}

/// Why a blocked thread runs again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wake {
    /// A futex wake (or requeue target wake).
    Woken,
    /// Its deadline passed.
    TimedOut,
    /// A signal for it arrived (the wait ends with `EINTR`).
    Interrupted,
}

/// One thread.
#[derive(Clone, Debug)]
pub struct Thread {
    pub tid: u32,
    /// Its IKC slot (and the runtime's index for its machine context).
    pub slot: usize,
    /// The core it runs on.
    pub core: usize,
    /// A vfork child: a process of its own (a forked proxy serves its slot) that
    /// shares this memory until it execs or exits.
    pub child_process: bool,
    /// Cores it may run on (bit per partition core).
    pub affinity: u64,
    pub state: State,
    /// How the last block ended.
    pub wake: Wake,
    /// Futex it waits on, with its bitset.
    pub futex: Option<(u64, u32)>,
    /// `set_tid_address` / `CLONE_CHILD_CLEARTID`: cleared and woken at exit.
    pub clear_child_tid: u64,
    /// `set_robust_list` head and length.
    pub robust_list: (u64, u64),
    /// FS base (TLS).
    pub fs_base: u64,
}

/// All threads, the run queues and the futex queues.
#[derive(Debug)]
pub struct Threads {
    ncores: usize,
    threads: BTreeMap<u32, Thread>,
    /// Per core: runnable threads in order.
    runq: Vec<VecDeque<u32>>,
    /// Per core: the running thread.
    current: Vec<Option<u32>>,
    /// Futex address → waiting threads in arrival order.
    futexes: BTreeMap<u64, VecDeque<u32>>,
    /// Next core for round-robin placement.
    next_core: usize,
    /// Free IKC slots (slot 0 is the main thread's).
    free_slots: Vec<usize>,
    next_slot: usize,
    max_slots: usize,
    /// Slots an offload thread of the proxy process itself serves (all but vfork
    /// children's).
    parent_served: alloc::collections::BTreeSet<usize>,
    /// The thread whose `execve` is ending the others (`exec`), and the threads
    /// being ended.
    exec_by: Option<u32>,
    doomed: alloc::collections::BTreeSet<u32>,
    /// Live vfork children → the thread that waits for each (`vfork_child_of`).
    vfork_parents: BTreeMap<u32, u32>,
}

/// All cores of a partition with `n` cores.
pub fn all_cores(n: usize) -> u64 {
    if n >= 64 {
        u64::MAX
    } else {
        (1u64 << n) - 1
    }
}

impl Threads {
    /// The main thread `tid` running on core 0, slot 0.
    pub fn new(ncores: usize, tid: u32, max_slots: usize) -> Self {
        let ncores = ncores.clamp(1, 64);
        let mut t = Threads {
            ncores,
            threads: BTreeMap::new(),
            runq: (0..ncores).map(|_| VecDeque::new()).collect(),
            current: alloc::vec![None; ncores],
            futexes: BTreeMap::new(),
            next_core: 1 % ncores,
            free_slots: Vec::new(),
            next_slot: 1,
            max_slots,
            parent_served: [0].into_iter().collect(),
            exec_by: None,
            doomed: alloc::collections::BTreeSet::new(),
            vfork_parents: BTreeMap::new(),
        };
        t.threads.insert(
            tid,
            Thread {
                tid,
                slot: 0,
                core: 0,
                child_process: false,
                affinity: all_cores(ncores),
                state: State::Running,
                wake: Wake::Woken,
                futex: None,
                clear_child_tid: 0,
                robust_list: (0, 0),
                fs_base: 0,
            },
        );
        t.current[0] = Some(tid);
        t
    }

    /// Cores of the partition.
    pub fn ncores(&self) -> usize {
        self.ncores
    }

    /// Live threads (not dead).
    pub fn live(&self) -> usize {
        self.threads
            .values()
            .filter(|t| t.state != State::Dead)
            .count()
    }

    pub fn get(&self, tid: u32) -> Option<&Thread> {
        self.threads.get(&tid)
    }

    pub fn get_mut(&mut self, tid: u32) -> Option<&mut Thread> {
        self.threads.get_mut(&tid)
    }

    /// The thread running on `core`.
    pub fn current(&self, core: usize) -> Option<u32> {
        self.current.get(core).copied().flatten()
    }

    /// Live threads' ids, ascending.
    pub fn tids(&self) -> impl Iterator<Item = u32> + '_ {
        self.threads
            .values()
            .filter(|t| t.state != State::Dead)
            .map(|t| t.tid)
    }

    /// A free IKC slot for a new thread (`EAGAIN` when all are taken, as Linux
    /// says when it is out of threads).
    pub fn alloc_slot(&mut self) -> Result<usize, Errno> {
        if let Some(s) = self.free_slots.pop() {
            return Ok(s);
        }
        if self.next_slot >= self.max_slots {
            return Err(Errno::EAGAIN);
        }
        self.next_slot += 1;
        Ok(self.next_slot - 1)
    }

    /// A free IKC slot for a vfork child: one that no offload thread of *this*
    /// proxy process serves (the child's forked proxy serves it; two servers on
    /// one slot would race for its requests).
    pub fn alloc_child_slot(&mut self) -> Result<usize, Errno> {
        if let Some(i) = self
            .free_slots
            .iter()
            .position(|s| !self.parent_served.contains(s))
        {
            return Ok(self.free_slots.swap_remove(i));
        }
        if self.next_slot >= self.max_slots {
            return Err(Errno::EAGAIN);
        }
        self.next_slot += 1;
        Ok(self.next_slot - 1)
    }

    /// An offload thread of this proxy process serves `slot` from now on.
    pub fn mark_served(&mut self, slot: usize) {
        self.parent_served.insert(slot);
    }

    /// Give back a slot `alloc_slot` returned, unused.
    pub fn free_slot(&mut self, slot: usize) {
        self.free_slots.push(slot);
    }

    /// The core a new thread with `affinity` goes on, as the image's policy
    /// decides (`crate::policy`; by default the allowed core with the fewest
    /// live threads, ties taken round robin: a thread beside others shares its
    /// core by time slices, or not at all with `--time-slice 0`, so it goes
    /// beside as few others as it can).
    pub fn place(&mut self, affinity: u64) -> usize {
        let allowed = affinity & all_cores(self.ncores);
        let mut load = alloc::vec![0usize; self.ncores];
        for t in self.threads.values().filter(|t| t.state != State::Dead) {
            if let Some(l) = load.get_mut(t.core) {
                *l += 1;
            }
        }
        match <Active as Policy>::place_thread(&load, allowed, self.next_core) {
            Some(c) => {
                self.next_core = (c + 1) % self.ncores;
                c
            }
            None => 0,
        }
    }

    /// Add a new, runnable thread (from `clone`); returns its core.
    pub fn spawn(&mut self, mut t: Thread) -> usize {
        t.core = self.place(t.affinity);
        t.state = State::Runnable;
        let (tid, core) = (t.tid, t.core);
        self.admit(t);
        self.runq[core].push_back(tid);
        core
    }

    /// Add a new, runnable thread on `core` (a vfork child beside its parent).
    pub fn spawn_on(&mut self, mut t: Thread, core: usize) -> usize {
        t.core = core.min(self.ncores - 1);
        t.state = State::Runnable;
        let (tid, core) = (t.tid, t.core);
        self.admit(t);
        self.runq[core].push_back(tid);
        core
    }

    /// Put new thread `t` in the table: a thread of the application made while
    /// an `execve` ends the others (a `clone` that was under way) ends too.
    fn admit(&mut self, t: Thread) {
        if self.exec_by.is_some() && !t.child_process {
            self.doomed.insert(t.tid);
        }
        self.threads.insert(t.tid, t);
    }

    /// The application's own live threads (not vfork children), ascending, each
    /// with whether it is running or ready to (else it waits).
    pub fn own_states(&self) -> impl Iterator<Item = (u32, bool)> + '_ {
        self.threads
            .values()
            .filter(|t| t.state != State::Dead && !t.child_process)
            .map(|t| (t.tid, matches!(t.state, State::Running | State::Runnable)))
    }

    /// Live threads of the application itself (vfork children are other
    /// processes).
    pub fn live_own(&self) -> usize {
        self.threads
            .values()
            .filter(|t| t.state != State::Dead && !t.child_process)
            .count()
    }

    /// Make a blocked or forwarded thread runnable; returns its core (to wake it
    /// if it sleeps), or None if it was not waiting.
    fn make_runnable(&mut self, tid: u32, why: Wake) -> Option<usize> {
        let t = self.threads.get_mut(&tid)?;
        match t.state {
            State::Blocked { .. } | State::Forwarded => {
                t.state = State::Runnable;
                t.wake = why;
                t.futex = None;
                self.runq[t.core].push_back(tid);
                Some(t.core)
            }
            _ => None,
        }
    }

    /// The running thread of `core` gives the core up: `next` is what it becomes
    /// (`Runnable` for a yield, `Blocked`, `Forwarded`, `Dead`).
    pub fn stop_current(&mut self, core: usize, next: State) {
        let Some(tid) = self.current[core].take() else {
            return;
        };
        if let Some(t) = self.threads.get_mut(&tid) {
            t.state = next;
            if next == State::Runnable {
                self.runq[core].push_back(tid);
            }
        }
    }

    /// A signal for `tid` arrived: end its futex wait (`EINTR`). Returns its core
    /// if it was waiting.
    pub fn interrupt(&mut self, tid: u32) -> Option<usize> {
        if !matches!(self.threads.get(&tid)?.state, State::Blocked { .. }) {
            return None;
        }
        self.unqueue_futex(tid);
        self.make_runnable(tid, Wake::Interrupted)
    }

    /// Make `tid` runnable again if it waits (a futex, a deadline, a forwarded
    /// call), for reason `why`; returns its core.
    pub fn wake_thread(&mut self, tid: u32, why: Wake) -> Option<usize> {
        self.unqueue_futex(tid);
        self.make_runnable(tid, why)
    }

    /// Threads of `core` blocked in a futex wait (a signal from outside interrupts
    /// one of them so that it can act on it).
    pub fn blocked_on(&self, core: usize) -> Option<u32> {
        self.threads
            .values()
            .find(|t| t.core == core && matches!(t.state, State::Blocked { .. }))
            .map(|t| t.tid)
    }

    /// Choose the next thread for `core` (`None`: idle). Threads whose forwarded call
    /// was answered (`answered(slot)`) and whose futex deadline passed (`now`) become
    /// runnable first.
    pub fn pick(&mut self, core: usize, now: u64, answered: impl Fn(usize) -> bool) -> Option<u32> {
        self.promote_ready(core, now, answered);
        let tid = self.runq[core].pop_front()?;
        let t = self.threads.get_mut(&tid).expect("queued thread exists");
        t.state = State::Running;
        self.current[core] = Some(tid);
        Some(tid)
    }

    /// Threads of `core` whose forwarded call was answered (`answered(slot)`) or
    /// whose futex deadline passed (`now`) join its run queue.
    fn promote_ready(&mut self, core: usize, now: u64, answered: impl Fn(usize) -> bool) {
        let mut ready = Vec::new();
        for t in self.threads.values() {
            if t.core != core {
                continue;
            }
            match t.state {
                State::Forwarded if answered(t.slot) => ready.push((t.tid, Wake::Woken)),
                State::Blocked { deadline } if deadline != 0 && deadline <= now => {
                    ready.push((t.tid, Wake::TimedOut))
                }
                _ => {}
            }
        }
        for (tid, why) in ready {
            if why == Wake::TimedOut {
                self.unqueue_futex(tid);
            }
            self.make_runnable(tid, why);
        }
    }

    // --- time-sharing ----------------------------------------------------------

    /// Does `core` want its time-sharing timer? Only while a thread runs there
    /// and another of its threads wants the core: one in its run queue, or one
    /// that may become ready without the core noticing — a forwarded call whose
    /// answer arrives, a timed futex wait or sleep whose deadline passes (the
    /// core finds those only when it picks, which a thread that never makes a
    /// system call never lets it do). A core with one such thread never arms it.
    pub fn wants_tick(&self, core: usize) -> bool {
        let Some(cur) = self.current(core) else {
            return false;
        };
        !self.runq[core].is_empty()
            || self.threads.values().any(|t| {
                t.core == core
                    && t.tid != cur
                    && (t.state == State::Forwarded
                        || matches!(t.state, State::Blocked { deadline } if deadline != 0))
            })
    }

    /// The time-sharing timer of `core` fired: threads that became ready join
    /// its run queue; if any thread waits there, the running one goes to the
    /// back of it (`Runnable`) and the answer is true — the caller switches, and
    /// `pick` gives the queue's head (round robin: every waiting thread runs
    /// before the preempted one again). False: the running thread keeps the core
    /// (nothing else can run yet).
    pub fn preempt(&mut self, core: usize, now: u64, answered: impl Fn(usize) -> bool) -> bool {
        if self.current(core).is_none() {
            return false;
        }
        self.promote_ready(core, now, answered);
        if self.runq[core].is_empty() {
            return false;
        }
        self.stop_current(core, State::Runnable);
        true
    }

    /// Are there runnable threads on `core` besides the running one?
    pub fn others_runnable(&self, core: usize) -> bool {
        !self.runq[core].is_empty()
    }

    /// Earliest futex deadline of `core`'s blocked threads (0: none).
    pub fn next_deadline(&self, core: usize) -> u64 {
        self.threads
            .values()
            .filter(|t| t.core == core)
            .filter_map(|t| match t.state {
                State::Blocked { deadline } if deadline != 0 => Some(deadline),
                _ => None,
            })
            .min()
            .unwrap_or(0)
    }

    /// Does `core` have threads waiting for forwarded calls?
    pub fn has_forwarded(&self, core: usize) -> bool {
        self.threads
            .values()
            .any(|t| t.core == core && t.state == State::Forwarded)
    }

    /// Forget a dead thread (after its core switched away from it); returns its slot.
    pub fn reap(&mut self, tid: u32) -> Option<usize> {
        match self.threads.get(&tid) {
            Some(t) if t.state == State::Dead => {
                let slot = t.slot;
                self.threads.remove(&tid);
                self.doomed.remove(&tid);
                self.vfork_parents.remove(&tid);
                self.free_slots.push(slot);
                Some(slot)
            }
            _ => None,
        }
    }

    /// Move `tid` to the cores in `affinity` (`sched_setaffinity`): it stays where it
    /// is if allowed, else goes to the first allowed core (a running thread moves
    /// when it next gives up its core: the caller yields). `EINVAL` if no partition
    /// core is allowed.
    pub fn set_affinity(&mut self, tid: u32, affinity: u64) -> Result<(), Errno> {
        let allowed = affinity & all_cores(self.ncores);
        if allowed == 0 {
            return Err(Errno::EINVAL);
        }
        let t = self.threads.get_mut(&tid).ok_or(Errno::ESRCH)?;
        t.affinity = allowed;
        if allowed & (1 << t.core) != 0 {
            return Ok(());
        }
        let old = t.core;
        let new = allowed.trailing_zeros() as usize;
        t.core = new;
        if t.state == State::Runnable {
            self.runq[old].retain(|&x| x != tid);
            self.runq[new].push_back(tid);
        }
        Ok(())
    }

    /// Threads whose core differs from where they run now: after `set_affinity` on a
    /// running thread, its core gives it up with `stop_current(Runnable)` and this
    /// puts it on the right queue.
    pub fn requeue_moved(&mut self, core: usize) {
        let moved: Vec<u32> = self.runq[core]
            .iter()
            .copied()
            .filter(|tid| self.threads.get(tid).is_some_and(|t| t.core != core))
            .collect();
        for tid in moved {
            self.runq[core].retain(|&x| x != tid);
            let c = self.threads[&tid].core;
            self.runq[c].push_back(tid);
        }
    }

    // --- futexes -------------------------------------------------------------

    /// Queue the running thread `tid` on futex `addr` with `bitset`; the caller then
    /// stops it (`stop_current(Blocked)`).
    pub fn futex_enqueue(&mut self, tid: u32, addr: u64, bitset: u32) {
        if let Some(t) = self.threads.get_mut(&tid) {
            t.futex = Some((addr, bitset));
        }
        self.futexes.entry(addr).or_default().push_back(tid);
    }

    fn unqueue_futex(&mut self, tid: u32) {
        let Some((addr, _)) = self.threads.get(&tid).and_then(|t| t.futex) else {
            return;
        };
        if let Some(q) = self.futexes.get_mut(&addr) {
            q.retain(|&x| x != tid);
            if q.is_empty() {
                self.futexes.remove(&addr);
            }
        }
    }

    /// Wake up to `n` waiters of `addr` whose bitset meets `bitset`; returns the
    /// woken threads' cores (one entry per woken thread).
    pub fn futex_wake(&mut self, addr: u64, n: u32, bitset: u32) -> Vec<usize> {
        let mut cores = Vec::new();
        let Some(q) = self.futexes.get_mut(&addr) else {
            return cores;
        };
        let mut woken = Vec::new();
        q.retain(|&tid| {
            if woken.len() as u32 >= n {
                return true;
            }
            let bits = self
                .threads
                .get(&tid)
                .and_then(|t| t.futex)
                .map_or(u32::MAX, |f| f.1);
            if bits & bitset != 0 {
                woken.push(tid);
                false
            } else {
                true
            }
        });
        if q.is_empty() {
            self.futexes.remove(&addr);
        }
        for tid in woken {
            if let Some(c) = self.make_runnable(tid, Wake::Woken) {
                cores.push(c);
            }
        }
        cores
    }

    /// `FUTEX_REQUEUE`: wake up to `n_wake` waiters of `from`, move up to
    /// `n_requeue` of the rest to `to`. Returns the woken threads' cores and how
    /// many were requeued.
    pub fn futex_requeue(
        &mut self,
        from: u64,
        to: u64,
        n_wake: u32,
        n_requeue: u32,
    ) -> (Vec<usize>, u32) {
        let cores = self.futex_wake(from, n_wake, u32::MAX);
        let mut moved = 0;
        if from == to {
            return (cores, 0);
        }
        while moved < n_requeue {
            let Some(tid) = self.futexes.get_mut(&from).and_then(|q| q.pop_front()) else {
                break;
            };
            if let Some(t) = self.threads.get_mut(&tid) {
                t.futex = t.futex.map(|(_, b)| (to, b));
            }
            self.futexes.entry(to).or_default().push_back(tid);
            moved += 1;
        }
        if self.futexes.get(&from).is_some_and(|q| q.is_empty()) {
            self.futexes.remove(&from);
        }
        (cores, moved)
    }

    /// Waiters queued on `addr`.
    pub fn futex_waiters(&self, addr: u64) -> usize {
        self.futexes.get(&addr).map_or(0, |q| q.len())
    }
}

/// Most entries of a robust list looked at when a thread dies (Linux's
/// `ROBUST_LIST_LIMIT`).
pub const ROBUST_LIST_LIMIT: usize = 2048;
/// Futex word bits (`linux/futex.h`).
pub const FUTEX_WAITERS: u32 = 0x8000_0000;
pub const FUTEX_OWNER_DIED: u32 = 0x4000_0000;
pub const FUTEX_TID_MASK: u32 = 0x3fff_ffff;

/// The futex words of a dying thread's robust list (`set_robust_list`): `head` is
/// `struct robust_list_head { next, futex_offset, list_op_pending }`; `read`
/// reads a user word (None: unreadable, which ends the walk as in Linux). Entry
/// pointers with bit 0 set are PI futexes, which mote does not offer: skipped.
pub fn robust_futexes(head: u64, read: impl Fn(u64) -> Option<u64>) -> Vec<u64> {
    let mut out = Vec::new();
    let (Some(mut entry), Some(offset), Some(pending)) =
        (read(head), read(head + 8), read(head + 16))
    else {
        return out;
    };
    let offset = offset as i64;
    let word = |e: u64| e.wrapping_add(offset as u64);
    for _ in 0..ROBUST_LIST_LIMIT {
        if entry == head {
            break;
        }
        let next = read(entry & !1);
        if entry & 1 == 0 && entry != pending {
            out.push(word(entry));
        }
        match next {
            Some(n) => entry = n,
            None => break,
        }
    }
    if pending != 0 && pending & 1 == 0 {
        out.push(word(pending));
    }
    out
}

/// What a robust futex word becomes when its owner `tid` dies: `None` if another
/// thread owns it; else the owner-died bit with the waiters bit kept.
pub fn owner_died(word: u32, tid: u32) -> Option<u32> {
    (word & FUTEX_TID_MASK == tid).then_some((word & FUTEX_WAITERS) | FUTEX_OWNER_DIED)
}

/// `FUTEX_WAKE_OP`'s operation on the old value of the second word: returns the new
/// value and whether the comparison holds (Linux `futex_atomic_op_inuser`).
/// `EINVAL` for unknown operations or comparisons (`ENOSYS` in Linux for the op).
pub fn wake_op(encoded: u32, old: u32) -> Result<(u32, bool), Errno> {
    let op = (encoded >> 28) & 7;
    let cmp = (encoded >> 24) & 15;
    let mut oparg = ((encoded << 8) as i32 >> 20) as u32;
    let cmparg = ((encoded << 20) as i32 >> 20) as u32;
    if encoded & (8 << 28) != 0 {
        // FUTEX_OP_OPARG_SHIFT: oparg is a shift count.
        if oparg > 31 {
            return Err(Errno::EINVAL);
        }
        oparg = 1 << oparg;
    }
    let new = match op {
        0 => oparg,                   // SET
        1 => old.wrapping_add(oparg), // ADD
        2 => old | oparg,             // OR
        3 => old & !oparg,            // ANDN
        4 => old ^ oparg,             // XOR
        _ => return Err(Errno::ENOSYS),
    };
    let (o, a) = (old as i32, cmparg as i32);
    let hold = match cmp {
        0 => o == a,
        1 => o != a,
        2 => o < a,
        3 => o <= a,
        4 => o > a,
        5 => o >= a,
        _ => return Err(Errno::ENOSYS),
    };
    Ok((new, hold))
}

mod exec;

#[cfg(test)]
mod tests;
