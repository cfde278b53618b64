//! Running the external commands a step is made of.

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus};
use std::thread;
use std::time::{Duration, Instant};

use crate::error::Error;

/// A program run under mote by the demo or the latency table is killed after
/// this long: a hang detector, not a performance limit.
pub const HANG_LIMIT: Duration = Duration::from_secs(120);

/// The command line, for messages.
pub fn show(cmd: &Command) -> String {
    let mut text = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        text.push(' ');
        text.push_str(&arg.to_string_lossy());
    }
    text
}

/// An exit status as a shell reports it: `exit status 1`, `signal 11 (status 139)`.
pub fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(sig)) => format!("signal {sig} (status {})", 128 + sig),
        _ => format!("{status}"),
    }
}

/// Runs one step with the terminal's stdio; a non-zero status stops the run.
pub fn run(step: &'static str, mut cmd: Command, hint: &'static str) -> Result<(), Error> {
    let command = show(&cmd);
    println!("\n==> {step}: {command}");
    let status = cmd.status().map_err(|e| Error::Io {
        context: format!("cannot run `{command}`"),
        source: e,
    })?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::Step {
            step,
            command,
            status: describe(status),
            hint,
        })
    }
}

/// Runs a command, capturing its stdout (stderr stays the terminal's), and
/// returns its status and output; kills it and reports a hang after [`HANG_LIMIT`].
pub fn stdout_with_timeout(mut cmd: Command) -> Result<(ExitStatus, Vec<u8>), Error> {
    use std::io::Read;
    cmd.stdout(std::process::Stdio::piped());
    let command = show(&cmd);
    let mut child = cmd.spawn().map_err(|e| Error::Io {
        context: format!("cannot run `{command}`"),
        source: e,
    })?;
    let mut pipe = child.stdout.take().expect("stdout is piped");
    let reader = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        buf
    });
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if start.elapsed() < HANG_LIMIT => thread::sleep(Duration::from_millis(10)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Error::Hung {
                    command,
                    seconds: HANG_LIMIT.as_secs(),
                });
            }
            Err(e) => {
                return Err(Error::Io {
                    context: format!("waiting for `{command}`"),
                    source: e,
                })
            }
        }
    };
    let stdout = reader.join().unwrap_or_default();
    Ok((status, stdout))
}
