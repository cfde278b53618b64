//! What can stop an xtask run, each with what happened and, where known, the fix.

use std::fmt;
use std::io;

#[derive(Debug)]
pub enum Error {
    /// Bad command line.
    Usage(String),
    /// A prerequisite is missing: `what` is missing, `fix` says how to get it.
    Missing { what: String, fix: &'static str },
    /// A step (an external command) exited unsuccessfully.
    Step {
        step: &'static str,
        command: String,
        status: String,
        hint: &'static str,
    },
    /// A command could not be started or waited for, or a file not read or written.
    Io { context: String, source: io::Error },
    /// A command ran longer than the hang limit and was killed.
    Hung { command: String, seconds: u64 },
    /// The demo ran, but not as it does natively: why.
    Demo(String),
    /// Anything else, said in full.
    Other(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(text) => write!(f, "{text}"),
            Error::Missing { what, fix } => write!(f, "missing {what}: {fix}"),
            Error::Step {
                step,
                command,
                status,
                hint,
            } => write!(
                f,
                "step \"{step}\" failed: `{command}` exited with {status}; {hint}"
            ),
            Error::Io { context, source } => write!(f, "{context}: {source}"),
            Error::Hung { command, seconds } => {
                write!(f, "`{command}` hung: killed after {seconds} s")
            }
            Error::Demo(why) => write!(f, "the demo failed: {why}"),
            Error::Other(text) => write!(f, "{text}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
