//! What the launcher (`proxy/src/program.rs`) and libos's `execve` agree on, so a
//! program is judged alike before the run and inside it: Linux's `#!` depth, and
//! how a path taken from a file is printed.

use core::fmt::{self, Write};

/// Linux's `#!` nesting (fs/exec.c: binfmt depth 0..=5): five scripts may lead to
/// an ELF program; a sixth is `ELOOP`.
pub const SCRIPT_DEPTH_MAX: usize = 5;

/// Bytes a file or the user gave (a path, an interpreter name), safe to print on
/// a terminal: control characters (escape sequences included) become `\xNN`, a
/// backslash `\\`, bytes that are not UTF-8 `\xNN`.
pub struct Escaped<'a>(pub &'a [u8]);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.0.utf8_chunks() {
            for c in chunk.valid().chars() {
                match c {
                    '\\' => f.write_str("\\\\")?,
                    c if c.is_control() => {
                        let mut b = [0u8; 4];
                        for byte in c.encode_utf8(&mut b).bytes() {
                            write!(f, "\\x{byte:02x}")?;
                        }
                    }
                    c => f.write_char(c)?,
                }
            }
            for byte in chunk.invalid() {
                write!(f, "\\x{byte:02x}")?;
            }
        }
        Ok(())
    }
}
