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
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if start.elapsed() > limit {
            timed_out = true;
            let _ = child.kill();
            break child.wait()?;
        }
        thread::sleep(Duration::from_millis(5));
    };
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

fn reader<R: Read + Send + 'static>(pipe: Option<R>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}
