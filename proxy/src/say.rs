//! mote's own messages (`mote: …` lines: fault reports, refusals, libos logs).
//!
//! The rule: a `mote:` line goes to stderr ([`say!`]) only when something ended
//! or failed that the user must act on (the run failed, the program was refused,
//! the application was killed, a call mote refuses was made); every other note
//! ([`note!`]: where cores went, fallbacks that change nothing for the
//! application) only under `MOTE_DEBUG=1`, because scripts, test suites and MPI
//! launchers read the application's stderr, and every rank would print it.
//!
//! The application's stderr is the proxy's fd 2 (forwarded calls run in the
//! proxy), so an application that closes or redirects its stderr would take mote's
//! messages with it — the crash report of a program that closed stderr would be
//! lost, where a shell still prints "Segmentation fault". The proxy therefore
//! writes its own lines to a private duplicate of the stderr it was started with,
//! made before the application runs and protected from forwarded calls like the
//! proxy's other descriptors. A leaf module.

use std::fmt;
use std::fs::File;
use std::io::Write;
use std::sync::OnceLock;

static OUT: OnceLock<File> = OnceLock::new();

/// Lowest descriptor the duplicate may take (above the application's usual range).
const FIRST_FD: i32 = 600;

/// Keep a private duplicate of the current stderr for mote's messages. Call before
/// the application runs (its descriptor must be among those the proxy protects).
pub fn init() {
    if let Ok(fd) = rustix::io::fcntl_dupfd_cloexec(std::io::stderr(), FIRST_FD) {
        let _ = OUT.set(File::from(fd));
    }
}

/// Whether `MOTE_DEBUG=1` asks for mote's notes (read once).
pub fn debug() -> bool {
    static DEBUG: OnceLock<bool> = OnceLock::new();
    *DEBUG.get_or_init(|| {
        std::env::var_os("MOTE_DEBUG").is_some_and(|v| v.as_encoded_bytes() == b"1")
    })
}

/// Write one message (a line, newline included by the caller) to mote's stderr.
pub fn write(args: fmt::Arguments<'_>) {
    let text = fmt::format(args);
    match OUT.get() {
        Some(mut f) => {
            let _ = f.write_all(text.as_bytes());
        }
        None => eprint!("{text}"),
    }
}

/// `eprintln!` for mote's own messages: to the stderr mote was started with.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::say::write(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// A note for `MOTE_DEBUG=1` only: something the user need not act on.
#[macro_export]
macro_rules! note {
    ($($arg:tt)*) => {
        if $crate::say::debug() {
            $crate::say!($($arg)*)
        }
    };
}
