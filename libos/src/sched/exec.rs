//! `execve` from a process with other threads, as Linux's `de_thread`: the
//! scheduler's part. The calling thread dooms every other thread of the
//! application ([`Threads::doom_others`]); each one ends the next time it
//! passes through the runtime — woken from a futex wait or a sleep, answered
//! (the proxy interrupts its forwarded call, `Op::EndThreads`), kicked out of
//! application code, or picked from a run queue — and never returns to the
//! application (`rt::threads::leave_if_doomed`). The caller waits until it is
//! the only thread in the table ([`Threads::alone`]: ended threads reaped,
//! vfork children, which share this memory, exec'd or ended), then takes the
//! thread-group leader's id ([`Threads::exec_done`]) and loads the new program.

use alloc::vec::Vec;

use super::{State, Threads, Wake};

impl Threads {
    /// Thread `me` calls `execve`: every other thread of the application is to
    /// end (threads it creates meanwhile too: `admit`). Those blocked in a futex
    /// wait or a sleep are made runnable, to end when they run. Returns the
    /// cores of the doomed threads, to wake; `None` when another thread's
    /// `execve` got there first and ends this one (Linux's `de_thread` answers
    /// `EAGAIN` then, which the ending thread never sees).
    pub fn doom_others(&mut self, me: u32) -> Option<Vec<usize>> {
        if self.exec_by.is_some_and(|x| x != me) || self.doomed.contains(&me) {
            return None;
        }
        self.exec_by = Some(me);
        let others: Vec<(u32, usize)> = self
            .threads
            .values()
            .filter(|t| t.tid != me && !t.child_process && t.state != State::Dead)
            .map(|t| (t.tid, t.core))
            .collect();
        let mut cores = Vec::new();
        for (tid, core) in others {
            self.doomed.insert(tid);
            self.interrupt(tid);
            if !cores.contains(&core) {
                cores.push(core);
            }
        }
        Some(cores)
    }

    /// Is `tid` one of the threads an `execve` is ending, and may it end now?
    /// A vfork parent waits for its child first: the child runs on this memory
    /// (the `execve` waits for it too), and only the parent's wait sees it go.
    pub fn is_doomed(&self, tid: u32) -> bool {
        self.doomed.contains(&tid) && !self.vfork_parents.values().any(|&p| p == tid)
    }

    /// Vfork child `child` was made by thread `parent`, which waits until it
    /// exec'd or ended.
    pub fn vfork_child_of(&mut self, child: u32, parent: u32) {
        self.vfork_parents.insert(child, parent);
    }

    /// Is `me` the only thread in the table: every other one ended and reaped
    /// (its core switched away from it for good), and no vfork child left in
    /// this memory?
    pub fn alone(&self, me: u32) -> bool {
        self.threads.len() == 1 && self.threads.contains_key(&me)
    }

    /// A thread was reaped: if an `execve` waits for the others to end and none
    /// is left, the caller runs again. Returns its core, to wake.
    pub fn exec_wake(&mut self) -> Option<usize> {
        let me = self.exec_by?;
        if !self.alone(me) {
            return None;
        }
        self.wake_thread(me, Wake::Woken)
    }

    /// The `execve` of thread `me` (running on `core`) goes on alone: it is
    /// thread `leader` from now on, the thread-group leader's id (the pid), as
    /// Linux's `de_thread` gives the caller the leader's place (also called
    /// by an `execve` with no other thread, where `me` is `leader`).
    pub fn exec_done(&mut self, me: u32, leader: u32, core: usize) {
        self.exec_by = None;
        self.doomed.clear();
        // What the old program registered for the thread is gone with it
        // (Linux's `exec_mm_release` forgets `clear_child_tid` and the robust
        // list; the new program starts with FS base 0).
        if let Some(t) = self.threads.get_mut(&me) {
            t.clear_child_tid = 0;
            t.robust_list = (0, 0);
            t.fs_base = 0;
        }
        if me == leader {
            return;
        }
        if let Some(mut t) = self.threads.remove(&me) {
            t.tid = leader;
            self.threads.insert(leader, t);
        }
        if let Some(c) = self.current.get_mut(core) {
            if *c == Some(me) {
                *c = Some(leader);
            }
        }
    }

    /// End thread `tid` at once, wherever it is (a fake runtime's way of
    /// ending a doomed thread: the runtime ends it on its own core).
    #[cfg(any(test, feature = "fake"))]
    pub fn end_now(&mut self, tid: u32) {
        self.unqueue_futex(tid);
        for q in &mut self.runq {
            q.retain(|&x| x != tid);
        }
        for c in &mut self.current {
            if *c == Some(tid) {
                *c = None;
            }
        }
        if let Some(t) = self.threads.get_mut(&tid) {
            t.state = State::Dead;
        }
    }
}
