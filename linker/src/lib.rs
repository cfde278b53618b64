//! `mote link`: rewrite an x86_64 executable so each of its system calls reaches
//! mote's direct entry by a plain call instead of a trap, lay out what it adds on
//! 2 MiB boundaries, and record the program's kernel policy in an ELF note. The
//! output is still an ordinary Linux program: outside mote every call takes its
//! original `syscall` instruction.
//!
//! Modules: `scan` finds and plans the sites (iced-x86 decoding), `tramp` emits the
//! added code, `elf` checks the input and writes the output, `note` reads the
//! policy note back, `wrap` runs a compiler driver (`mote link -- cc ...`), `cli`
//! is the command line.

pub mod cli;
pub mod elf;
pub mod note;
pub mod scan;
pub mod tramp;
pub mod wrap;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

pub use cli::{run, LinkArgs};

/// Why `mote link` (or a reader of the note) gave up.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The input cannot be rewritten safely: the reason.
    #[error("cannot rewrite: {0}")]
    Refused(String),
    /// A mote note that is not well-formed.
    #[error("{0}")]
    BadNote(String),
    /// Reading or writing a file.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    /// A usage error (options).
    #[error("{0}")]
    Usage(String),
    /// The compiler driver failed (its status).
    #[error("the link command failed ({0})")]
    Command(String),
}

/// Rewrite `input` into `output` (written whole to a temporary file beside it, then
/// renamed, with the input's permissions). Returns what was done.
pub fn link_file(
    input: &Path,
    output: &Path,
    policy: &mote_abi::note::Policy,
    patch: bool,
) -> Result<elf::Outcome, LinkError> {
    let io = |p: &Path| {
        let s = p.display().to_string();
        move |e| LinkError::Io(s, e)
    };
    let bytes = std::fs::read(input).map_err(io(input))?;
    let out = elf::rewrite(&bytes, policy, patch)?;
    let mut tmp = PathBuf::from(output);
    tmp.as_mut_os_string().push(".mote-link.tmp");
    std::fs::write(&tmp, &out.bytes).map_err(io(&tmp))?;
    let perm = std::fs::metadata(input).map_err(io(input))?.permissions();
    std::fs::set_permissions(&tmp, perm).map_err(io(&tmp))?;
    std::fs::rename(&tmp, output).map_err(io(output))?;
    Ok(out)
}
