//! Debug console: bytes to `ports::DEBUG`, printed by the proxy. Each byte is a VM
//! exit, so this is for diagnostics and fatal reports only.

use core::fmt;

/// Writer for `kprint!`.
pub struct Console;

impl fmt::Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            crate::arch::outb(mote_abi::ports::DEBUG, b);
        }
        Ok(())
    }
}

/// Print to the debug console.
#[macro_export]
macro_rules! kprintln {
    ($($arg:tt)*) => {{
        use core::fmt::Write as _;
        let _ = writeln!($crate::console::Console, $($arg)*);
    }};
}
