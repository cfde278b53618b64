//! The application's threads in `/proc`: `/proc/self/task/<tid>/{stat,status,comm}`,
//! `/proc/thread-self/…` and `/proc/self/comm`, rendered from libos's own thread
//! state, and which directory is the task directory (whose listing the caller
//! filters to the application's threads: `crate::syscall::fs`).
//!
//! Linux's task directory of the `mote` process lists the application's threads —
//! each application thread's tid is the Linux tid of its offload thread, and the
//! main thread's is the pid — among mote's own threads (offload servers of idle
//! cores, the signal router, vCPUs). A thread's `stat` and `status` start from
//! Linux's file for that tid (identity, credentials, context switches) and take
//! the partition's figures, the thread's name (`prctl(PR_SET_NAME)`, kept by libos:
//! `Process::set_name`) and its state as the partition's scheduler sees it.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::{linux_file, stat, status, Facts, File};
use crate::platform::Platform;
use crate::process::Process;

/// A thread of the application as the scheduler sees it, for its files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskState {
    pub tid: u32,
    /// Running or ready to (`R`), or waiting: in a futex, a sleep or a forwarded
    /// call (`S`).
    pub running: bool,
}

impl TaskState {
    fn letter(self) -> char {
        if self.running {
            'R'
        } else {
            'S'
        }
    }

    fn words(self) -> &'static str {
        if self.running {
            "R (running)"
        } else {
            "S (sleeping)"
        }
    }
}

/// The canonical decimal `tid` in `s` (no sign, no leading zero).
fn parse_tid(s: &[u8]) -> Option<u32> {
    if s.is_empty() || s.len() > 10 || s[0] == b'0' || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    core::str::from_utf8(s).ok()?.parse().ok()
}

/// Is `who` (a `/proc/` component) the process: `self` or its pid.
fn is_me(pid: u32, who: &[u8]) -> bool {
    who == b"self" || who == format!("{pid}").as_bytes()
}

/// Which served file `path` names for the calling thread `tid` of process `pid`:
/// the thread files, else [`super::lookup`]'s.
pub fn lookup_thread(pid: u32, tid: u32, path: &[u8]) -> Option<File> {
    let thread_file = |t: u32, name: &[u8]| match name {
        b"stat" => Some(File::TaskStat(t)),
        b"status" => Some(File::TaskStatus(t)),
        b"comm" => Some(File::Comm(t)),
        b"maps" => Some(File::Maps),
        b"smaps" => Some(File::Smaps),
        b"statm" => Some(File::Statm),
        _ => None,
    };
    let Some(rest) = path.strip_prefix(b"/proc/") else {
        return super::lookup(pid, path);
    };
    let parts: Vec<&[u8]> = rest.split(|&b| b == b'/').collect();
    match parts.as_slice() {
        [b"thread-self", name] => thread_file(tid, name),
        [who, b"comm"] if is_me(pid, who) => Some(File::Comm(pid)),
        [who, b"task", t, name] if is_me(pid, who) => thread_file(parse_tid(t)?, name),
        _ => super::lookup(pid, path),
    }
}

/// Does `path` name the task directory of process `pid` (`/proc/self/task`,
/// `/proc/<pid>/task`, with or without a final `/`)?
pub fn is_task_dir(pid: u32, path: &[u8]) -> bool {
    let Some(rest) = path.strip_prefix(b"/proc/") else {
        return false;
    };
    let rest = rest.strip_suffix(b"/").unwrap_or(rest);
    match rest.strip_suffix(b"/task") {
        Some(who) => is_me(pid, who),
        None => false,
    }
}

/// The text of thread file `f` of thread `tid` (one of `tasks`).
pub(super) fn render<P: Platform>(
    pr: &Process,
    p: &P,
    f: File,
    tid: u32,
    tasks: &[TaskState],
    mut facts: Facts,
) -> Vec<u8> {
    let me = tasks
        .iter()
        .copied()
        .find(|t| t.tid == tid)
        .unwrap_or(TaskState { tid, running: true });
    facts.comm = pr.name_of(tid);
    if !tasks.is_empty() {
        facts.threads = tasks.len();
    }
    match f {
        File::Comm(_) => format!("{}\n", facts.comm).into_bytes(),
        File::TaskStatus(_) => {
            let linux = linux_file(p, &format!("/proc/self/task/{tid}/status")).unwrap_or_default();
            with_state_line(&status(&String::from_utf8_lossy(&linux), &facts), me).into_bytes()
        }
        _ => {
            let linux = linux_file(p, &format!("/proc/self/task/{tid}/stat")).unwrap_or_default();
            with_state_field(&stat(&String::from_utf8_lossy(&linux), &facts), me).into_bytes()
        }
    }
}

/// `status` text with its `State:` line saying `t`'s state.
pub fn with_state_line(text: &str, t: TaskState) -> String {
    let mut out = String::new();
    for line in text.lines() {
        if line.starts_with("State:") {
            out.push_str(&format!("State:\t{}", t.words()));
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// `stat` line with its state field (the one after the name) saying `t`'s.
pub fn with_state_field(line: &str, t: TaskState) -> String {
    match line.rfind(") ") {
        Some(i) if line.len() > i + 2 => {
            let mut s = String::from(&line[..i + 2]);
            s.push(t.letter());
            s.push_str(&line[i + 3..]);
            s
        }
        _ => String::from(line),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_paths_name_the_thread_files() {
        assert_eq!(
            lookup_thread(42, 43, b"/proc/self/task/43/stat"),
            Some(File::TaskStat(43))
        );
        assert_eq!(
            lookup_thread(42, 43, b"/proc/42/task/7/status"),
            Some(File::TaskStatus(7))
        );
        assert_eq!(
            lookup_thread(42, 43, b"/proc/self/task/42/comm"),
            Some(File::Comm(42))
        );
        assert_eq!(
            lookup_thread(42, 43, b"/proc/thread-self/comm"),
            Some(File::Comm(43))
        );
        assert_eq!(
            lookup_thread(42, 43, b"/proc/thread-self/stat"),
            Some(File::TaskStat(43))
        );
        assert_eq!(
            lookup_thread(42, 43, b"/proc/self/comm"),
            Some(File::Comm(42))
        );
        assert_eq!(
            lookup_thread(42, 43, b"/proc/self/task/43/maps"),
            Some(File::Maps)
        );
        assert_eq!(lookup_thread(42, 43, b"/proc/self/maps"), Some(File::Maps));
        // Regression: every path outside /proc was left to Linux.
        assert_eq!(
            lookup_thread(42, 43, b"/sys/devices/system/cpu/online"),
            Some(File::CpuList)
        );
        assert_eq!(lookup_thread(42, 43, b"/proc/9/task/9/stat"), None);
        assert_eq!(lookup_thread(42, 43, b"/proc/self/task/043/stat"), None);
        assert_eq!(lookup_thread(42, 43, b"/proc/self/task/x/stat"), None);
        assert_eq!(lookup_thread(42, 43, b"/proc/self/task/43/environ"), None);
    }

    #[test]
    fn task_directory_of_self_and_own_pid_only() {
        assert!(is_task_dir(42, b"/proc/self/task"));
        assert!(is_task_dir(42, b"/proc/self/task/"));
        assert!(is_task_dir(42, b"/proc/42/task"));
        assert!(!is_task_dir(42, b"/proc/41/task"));
        assert!(!is_task_dir(42, b"/proc/self/task/42"));
        assert!(!is_task_dir(42, b"/proc/task"));
    }

    #[test]
    fn state_is_rewritten_in_stat_and_status() {
        let sleeping = TaskState {
            tid: 7,
            running: false,
        };
        assert_eq!(
            with_state_field("7 (a) b) R 1 2 3", sleeping),
            "7 (a) b) S 1 2 3"
        );
        assert_eq!(
            with_state_line("Name:\tx\nState:\tR (running)\nTgid:\t1\n", sleeping),
            "Name:\tx\nState:\tS (sleeping)\nTgid:\t1\n"
        );
    }
}
