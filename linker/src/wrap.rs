//! `mote link -- CC ARGS...`: run the user's link command with what mote wants
//! added (2 MiB segment alignment), and name its output for the rewrite.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Command;

use crate::LinkError;

/// What is added to the link command: every segment on a 2 MiB boundary in
/// memory (`max-page-size`), and the data segment's start too (`common-page-size`),
/// so libos can back code and data with whole 2 MiB pages.
pub const ADDED: [&str; 2] = [
    "-Wl,-z,max-page-size=0x200000",
    "-Wl,-z,common-page-size=0x200000",
];

/// The output a compiler-driver command line names (`-o FILE`, `-oFILE`; the last
/// one counts, as for gcc), or `a.out`.
pub fn output_of(args: &[OsString]) -> PathBuf {
    let mut out = PathBuf::from("a.out");
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let b = a.as_encoded_bytes();
        if b == b"-o" {
            if let Some(f) = it.next() {
                out = PathBuf::from(f);
            }
        } else if let Some(rest) = b.strip_prefix(b"-o") {
            out = PathBuf::from(String::from_utf8_lossy(rest).into_owned());
        }
    }
    out
}

/// Run `command` (the driver, then its arguments) with [`ADDED`]; its output path.
pub fn run_command(command: &[OsString]) -> Result<PathBuf, LinkError> {
    let (cc, args) = command
        .split_first()
        .ok_or_else(|| LinkError::Usage("no command after --".into()))?;
    let out = output_of(args);
    let status = Command::new(cc)
        .args(args)
        .args(ADDED)
        .status()
        .map_err(|e| LinkError::Command(format!("cannot run {}: {e}", cc.to_string_lossy())))?;
    if !status.success() {
        return Err(LinkError::Command(format!(
            "{} exited with {status}",
            cc.to_string_lossy()
        )));
    }
    Ok(out)
}
