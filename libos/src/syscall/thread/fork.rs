//! `fork` of the process (`fork`, and `clone`/`clone3` without `CLONE_VM`): the
//! runtime makes the copy (`Machine::fork_process`); this is the call's Linux
//! side (its flags' tid reports and the parent's answer).

use alloc::string::String;

use mote_abi::errno::Errno;
use syscalls::Sysno;

use super::{clone_thread, direct_clone, CloneArgs, Machine};
use crate::platform::Platform;
use crate::uapi::sched::*;

/// `fork()`: `clone(SIGCHLD)`.
pub fn fork_call<P: Platform>(m: &dyn Machine<P>) -> Result<usize, Errno> {
    if !m.trapped() {
        return Err(direct_clone(m));
    }
    clone_thread(
        m,
        CloneArgs {
            flags: crate::uapi::signal::SIGCHLD as u64,
            stack: 0,
            ptid: 0,
            ctid: 0,
            tls: 0,
        },
    )
}

/// `fork`: the runtime copies the process (`Machine::fork_process`); the child
/// resumes from the call's frame with 0, the parent gets the child's pid (also
/// at `ptid` with `CLONE_PARENT_SETTID`).
pub(super) fn fork<P: Platform>(m: &dyn Machine<P>, a: &CloneArgs) -> Result<usize, Errno> {
    let set = if a.flags & CLONE_CHILD_SETTID != 0 {
        a.ctid
    } else {
        0
    };
    let clear = if a.flags & CLONE_CHILD_CLEARTID != 0 {
        a.ctid
    } else {
        0
    };
    let pid = m.fork_process(set, clear);
    if pid < 0 {
        let e = Errno::from_code((-pid) as i32).unwrap_or(Errno::EAGAIN);
        if e == Errno::ENOSYS {
            if let Some(pr) = m.process().lock().as_mut() {
                pr.log_once(m.platform(), Sysno::fork as u64, || {
                    String::from(
                        "fork: a vfork child cannot copy its process before its execve (its memory is the parent's); returning ENOSYS",
                    )
                });
            }
        }
        return Err(e);
    }
    if a.flags & CLONE_PARENT_SETTID != 0 {
        let g = m.process().lock();
        let pr = g.as_ref().expect("process");
        pr.write_user(m.platform(), a.ptid, &(pid as u32).to_le_bytes())?;
    }
    Ok(pid as usize)
}
