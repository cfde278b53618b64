//! Running one workload: the child is started with a chosen CPU affinity (it
//! inherits the affinity of the thread that spawns it), its output collected,
//! its wall time taken, and it is killed if it outlives a generous limit.

use std::io::{self, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use rustix::thread::{sched_getaffinity, sched_setaffinity, CpuSet};

/// The set holding host CPU `cpu` only.
pub fn only(cpu: usize) -> CpuSet {
    let mut set = CpuSet::new();
    set.set(cpu);
    set
}

/// Pin the calling thread to host CPU `cpu`.
pub fn pin_self(cpu: usize) -> io::Result<()> {
    set_self(&only(cpu))
}

fn set_self(set: &CpuSet) -> io::Result<()> {
    sched_setaffinity(None, set).map_err(io::Error::from)
}

/// The CPUs the calling thread may run on.
pub fn own_cpus() -> io::Result<CpuSet> {
    sched_getaffinity(None).map_err(io::Error::from)
}

/// What one run produced.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub wall: Duration,
    pub timed_out: bool,
}

/// Runs `cmd` with its affinity set to `cpus`, while this thread waits on
/// `wait_cpu` (so the bench's own wake-ups never land on the measured core).
pub fn run_pinned(
    mut cmd: Command,
    cpus: &CpuSet,
    wait_cpu: usize,
    limit: Duration,
) -> io::Result<Output> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    set_self(cpus)?;
    let start = Instant::now();
    let spawned = cmd.spawn();
    pin_self(wait_cpu)?;
    let mut child = spawned?;
    let out = collect(&mut child, start, limit);
    if out.is_err() {
        let _ = child.kill();
        let _ = child.wait();
    }
    out
}

fn collect(child: &mut Child, start: Instant, limit: Duration) -> io::Result<Output> {
    let stdout = reader(child.stdout.take());
    let stderr = reader(child.stderr.take());
    let timed_out = !wait_until(child, start + limit)?;
    if timed_out {
        let _ = child.kill();
    }
    let status = child.wait()?;
    let wall = start.elapsed();
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    Ok(Output {
        status,
        stdout,
        stderr,
        wall,
        timed_out,
    })
}

/// Wait until `child` has ended (true) or `deadline` has passed (false),
/// without reaping it. On its pidfd, which becomes readable the moment the
/// child ends, so a run's wall time is its own (the figure of `startup`, a
/// few milliseconds). Where Linux has no pidfds (before 5.3): polled every
/// 100 µs.
fn wait_until(child: &mut Child, deadline: Instant) -> io::Result<bool> {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let pid = rustix::process::Pid::from_child(child);
    let pidfd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty());
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(pidfd) = &pidfd else {
            if child.try_wait()?.is_some() {
                return Ok(true);
            }
            if left.is_zero() {
                return Ok(false);
            }
            thread::sleep(left.min(Duration::from_micros(100)));
            continue;
        };
        let timeout = Timespec {
            tv_sec: left.as_secs() as i64,
            tv_nsec: left.subsec_nanos() as i64,
        };
        let mut fds = [PollFd::new(pidfd, PollFlags::IN)];
        match poll(&mut fds, Some(&timeout)) {
            Ok(0) if Instant::now() >= deadline => return Ok(false),
            Ok(0) | Err(rustix::io::Errno::INTR) => continue,
            Ok(_) => return Ok(true),
            Err(e) => return Err(e.into()),
        }
    }
}

fn reader<R: Read + Send + 'static>(pipe: Option<R>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn here() -> CpuSet {
        own_cpus().unwrap()
    }

    fn first_cpu() -> usize {
        let set = here();
        (0..CpuSet::MAX_CPU).find(|&c| set.is_set(c)).unwrap()
    }

    #[test]
    fn a_child_that_ends_is_seen_with_its_status_and_output() {
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", "echo out; echo err >&2; exit 3"]);
        let out = run_pinned(cmd, &here(), first_cpu(), Duration::from_secs(60)).unwrap();
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(out.stdout, "out\n");
        assert_eq!(out.stderr, "err\n");
        assert!(!out.timed_out);
    }

    #[test]
    fn a_child_past_the_limit_is_killed() {
        let mut cmd = Command::new("/bin/sleep");
        cmd.arg("600");
        let out = run_pinned(cmd, &here(), first_cpu(), Duration::from_millis(50)).unwrap();
        assert!(out.timed_out);
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&out.status),
            Some(libc::SIGKILL)
        );
    }
}
