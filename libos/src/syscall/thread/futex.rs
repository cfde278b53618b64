//! `futex`: waits and wakes on application words, in libos's futex table (the
//! scheduler's queues) for private words and through Linux for words in memory
//! shared with other processes.

use super::*;

/// Read the futex word at `uaddr` (aligned, mapped readable).
fn futex_word<P: Platform>(m: &dyn Machine<P>, uaddr: u64) -> Result<u32, Errno> {
    if !uaddr.is_multiple_of(4) {
        return Err(Errno::EINVAL);
    }
    let mut b = [0u8; 4];
    m.process()
        .lock()
        .as_ref()
        .expect("process")
        .read_user(m.platform(), uaddr, &mut b)?;
    Ok(u32::from_le_bytes(b))
}

fn kick_all<P: Platform>(m: &dyn Machine<P>, cores: &[usize]) {
    for &c in cores {
        m.kick(c);
    }
}

/// A futex word another process may wait on or wake: not `FUTEX_PRIVATE_FLAG`,
/// in a pass-through mapping (a shared file, `/dev/shm`, System V), which the
/// proxy maps at the same address from the same pages. Such a futex is Linux's
/// (forwarded, all its operations), so waits and wakes meet those of the other
/// processes sharing it — a `fork` child's or parent's (process-shared mutexes,
/// POSIX semaphores) or a native process's — which libos's own table never sees.
fn shared_word<P: Platform>(m: &dyn Machine<P>, uaddr: u64, op: u32) -> bool {
    if op & FUTEX_PRIVATE_FLAG != 0 {
        return false;
    }
    let g = m.process().lock();
    g.as_ref()
        .and_then(|pr| pr.mm.translate(uaddr))
        .is_some_and(|gpa| mote_abi::layout::is_passthrough(gpa, 4))
}

/// `futex(uaddr, op, val, timeout|val2, uaddr2, val3)`.
pub fn futex<P: Platform>(
    m: &dyn Machine<P>,
    uaddr: u64,
    op: u32,
    val: u32,
    timeout: u64,
    uaddr2: u64,
    val3: u32,
) -> Result<usize, Errno> {
    if shared_word(m, uaddr, op) {
        let args = [
            uaddr,
            u64::from(op),
            u64::from(val),
            timeout,
            uaddr2,
            u64::from(val3),
        ];
        return crate::syscall::forwarded(m.platform().forward(Sysno::futex as u64, args));
    }
    let cmd = op & !(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME);
    if op & FUTEX_CLOCK_REALTIME != 0 && cmd != FUTEX_WAIT_BITSET && cmd != FUTEX_WAIT {
        return Err(Errno::ENOSYS);
    }
    match cmd {
        FUTEX_WAIT | FUTEX_WAIT_BITSET => {
            let bitset = if cmd == FUTEX_WAIT { u32::MAX } else { val3 };
            futex_wait(m, uaddr, op, val, timeout, bitset)
        }
        FUTEX_WAKE | FUTEX_WAKE_BITSET => {
            let bitset = if cmd == FUTEX_WAKE { u32::MAX } else { val3 };
            if bitset == 0 || !uaddr.is_multiple_of(4) {
                return Err(Errno::EINVAL);
            }
            let cores = m
                .threads()
                .lock()
                .as_mut()
                .expect("threads")
                .futex_wake(uaddr, val, bitset);
            kick_all(m, &cores);
            Ok(cores.len())
        }
        FUTEX_REQUEUE | FUTEX_CMP_REQUEUE => {
            if !uaddr.is_multiple_of(4) || !uaddr2.is_multiple_of(4) {
                return Err(Errno::EINVAL);
            }
            let n_requeue = timeout as u32;
            if (val as i32) < 0 || (n_requeue as i32) < 0 {
                return Err(Errno::EINVAL);
            }
            let mut g = m.threads().lock();
            if cmd == FUTEX_CMP_REQUEUE && futex_word(m, uaddr)? != val3 {
                return Err(Errno::EAGAIN);
            }
            let (cores, moved) = g
                .as_mut()
                .expect("threads")
                .futex_requeue(uaddr, uaddr2, val, n_requeue);
            drop(g);
            kick_all(m, &cores);
            Ok(cores.len() + moved as usize)
        }
        FUTEX_WAKE_OP => {
            if !uaddr.is_multiple_of(4) || !uaddr2.is_multiple_of(4) {
                return Err(Errno::EINVAL);
            }
            let mut g = m.threads().lock();
            m.process()
                .lock()
                .as_ref()
                .expect("process")
                .mm
                .check_access(uaddr2, 4, true)?;
            let mut hold = Ok(false);
            m.update_word(uaddr2, &mut |old| match sched::wake_op(val3, old) {
                Ok((new, h)) => {
                    hold = Ok(h);
                    Some(new)
                }
                Err(e) => {
                    hold = Err(e);
                    None
                }
            });
            let hold = hold?;
            let t = g.as_mut().expect("threads");
            let mut cores = t.futex_wake(uaddr, val, u32::MAX);
            if hold {
                cores.extend(t.futex_wake(uaddr2, timeout as u32, u32::MAX));
            }
            drop(g);
            kick_all(m, &cores);
            Ok(cores.len())
        }
        _ => {
            m.process().lock().as_mut().expect("process").log_once(
                m.platform(),
                0x3_0000 + cmd as u64,
                || {
                    alloc::format!(
                        "futex operation {cmd} (priority-inheritance or requeue-PI) is not implemented; returning ENOSYS"
                    )
                },
            );
            Err(Errno::ENOSYS)
        }
    }
}

/// `FUTEX_WAIT` (relative timeout on CLOCK_MONOTONIC) and `FUTEX_WAIT_BITSET`
/// (absolute, on CLOCK_MONOTONIC or, with `FUTEX_CLOCK_REALTIME`, CLOCK_REALTIME).
fn futex_wait<P: Platform>(
    m: &dyn Machine<P>,
    uaddr: u64,
    op: u32,
    val: u32,
    timeout: u64,
    bitset: u32,
) -> Result<usize, Errno> {
    use crate::time::id;
    let p = m.platform();
    if bitset == 0 {
        return Err(Errno::EINVAL);
    }
    let deadline = if timeout == 0 {
        0
    } else {
        let ts = read_timespec(m, timeout)?;
        let now = now_ns(m);
        if op & !(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME) == FUTEX_WAIT {
            now.saturating_add(ts).max(1)
        } else {
            let clock = if op & FUTEX_CLOCK_REALTIME != 0 {
                id::REALTIME
            } else {
                id::MONOTONIC
            };
            let current = m
                .process()
                .lock()
                .as_mut()
                .and_then(|pr| pr.clock.now(p, clock))
                .ok_or(Errno::ENOSYS)?;
            now.saturating_add(ts.saturating_sub(current)).max(1)
        }
    };
    let (core, me) = (m.core(), m.tid());
    let mut g = m.threads().lock();
    if futex_word(m, uaddr)? != val {
        return Err(Errno::EAGAIN);
    }
    if deadline != 0 && deadline <= now_ns(m) {
        return Err(Errno::ETIMEDOUT);
    }
    let t = g.as_mut().expect("threads");
    t.futex_enqueue(me, uaddr, bitset);
    t.stop_current(core, State::Blocked { deadline });
    m.reschedule(g);
    match m
        .threads()
        .lock()
        .as_ref()
        .and_then(|t| t.get(me))
        .map(|x| x.wake)
    {
        Some(Wake::TimedOut) => Err(Errno::ETIMEDOUT),
        Some(Wake::Interrupted) => Err(Errno::EINTR),
        _ => Ok(0),
    }
}
