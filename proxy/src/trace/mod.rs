//! `mote run --trace[=FILE]` and `--trace=summary`: the proxy's side of the system
//! call trace. The runtime records every call of the application in its core's
//! ring (`mote_abi::trace`, the protocol); one proxy thread drains the rings and
//! writes a line per call (`decode`) to FILE, or to the stderr mote was started
//! with when no FILE is given (as strace does), or counts them for the table
//! printed at exit (`summary`). The application's own stdout and stderr carry
//! nothing of it. Not passed on to child programs (`execve` of a vfork child
//! starts an untraced `mote run`), as strace without `-f`.

pub mod decode;
pub mod summary;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use mote_abi::trace::Drained;

use crate::guest::GuestMem;

/// `--trace`'s value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// One line per call, to stderr.
    Stderr,
    /// One line per call, to this file (created or truncated).
    File(std::path::PathBuf),
    /// The table at exit, on stderr.
    Summary,
}

impl Mode {
    /// `--trace` (`None`: given without a value) and `--trace=VALUE`.
    pub fn parse(v: Option<&str>) -> Mode {
        match v {
            None | Some("") | Some("-") => Mode::Stderr,
            Some("summary") => Mode::Summary,
            Some(f) => Mode::File(f.into()),
        }
    }
}

/// Where the lines go: opened before the application runs, so the descriptor is
/// one of the proxy's own (protected from the application's `close`/`dup2`).
pub enum Output {
    Lines(BufWriter<File>),
    Summary,
}

/// Lowest descriptor the trace output takes (beside `say`'s duplicate).
const FIRST_FD: i32 = 610;

/// Open `mode`'s output.
pub fn open(mode: &Mode) -> Result<Output, String> {
    let file = match mode {
        Mode::Summary => return Ok(Output::Summary),
        Mode::Stderr => rustix::io::fcntl_dupfd_cloexec(std::io::stderr(), FIRST_FD)
            .map(File::from)
            .map_err(|e| format!("--trace: cannot duplicate stderr: {e}"))?,
        Mode::File(p) => {
            let f = File::create(p)
                .map_err(|e| format!("--trace={}: cannot create it: {e}", p.display()))?;
            let fd = rustix::io::fcntl_dupfd_cloexec(&f, FIRST_FD)
                .map_err(|e| format!("--trace={}: {e}", p.display()))?;
            File::from(fd)
        }
    };
    Ok(Output::Lines(BufWriter::with_capacity(64 << 10, file)))
}

/// The running trace thread.
pub struct Tracer {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

/// Start draining the rings of `cores` cores (the runtime region at
/// `runtime_gpa`).
pub fn start(
    guest: Arc<GuestMem>,
    runtime_gpa: u64,
    cores: usize,
    out: Output,
) -> std::io::Result<Tracer> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let thread = std::thread::Builder::new()
        .name("mote-trace".into())
        .spawn(move || drain_loop(&guest, runtime_gpa, cores, out, &flag))?;
    Ok(Tracer { stop, thread })
}

impl Tracer {
    /// The partition has stopped: drain what is left, print the summary.
    pub fn finish(self) {
        self.stop.store(true, Ordering::Release);
        let _ = self.thread.join();
    }
}

fn ns(ticks: u64, tsc_khz: u64) -> u64 {
    if tsc_khz == 0 {
        return ticks;
    }
    (u128::from(ticks) * 1_000_000 / u128::from(tsc_khz)) as u64
}

fn drain_loop(
    guest: &GuestMem,
    runtime_gpa: u64,
    cores: usize,
    mut out: Output,
    stop: &AtomicBool,
) {
    let mut sum = summary::Summary::default();
    let mut invalid = 0u64;
    loop {
        // Read before draining: records committed before the stop are all seen.
        let stopping = stop.load(Ordering::Acquire);
        // The platform writes the TSC rate into BootInfo when it starts: read it
        // each pass (ticks then become ns).
        let tsc_khz = guest.read_u64(
            mote_abi::layout::BOOT_INFO_GPA
                + std::mem::offset_of!(mote_abi::boot::BootInfo, tsc_khz) as u64,
        );
        let mut n = 0;
        for core in 0..cores {
            n += guest.trace_ring(runtime_gpa, core).drain(|d| match d {
                Drained::Entry(e) => {
                    let t = ns(e.ticks, tsc_khz);
                    match &mut out {
                        Output::Lines(w) => {
                            let _ = writeln!(w, "{}", decode::line(&e, t));
                        }
                        Output::Summary => sum.add(&e, t),
                    }
                }
                Drained::Invalid => invalid += 1,
            });
        }
        if n == 0 {
            if let Output::Lines(w) = &mut out {
                let _ = w.flush();
            }
            if stopping {
                break;
            }
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
    }
    if invalid > 0 {
        crate::say!("mote: trace: {invalid} records in the trace rings were not the runtime's (the application wrote over them); left out");
    }
    if let Output::Summary = out {
        crate::say::write(format_args!("{}", sum.table()));
    }
}
