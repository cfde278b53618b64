//! Typed handlers for the Linux system calls libos answers locally, one file per
//! family. Each returns `Result<usize, Errno>`; the shim's table turns that into the
//! value the application sees (`mote_abi::errno::to_ret`, the one place).

use mote_abi::errno::Errno;

pub mod mm;
pub mod signal;
pub mod task;

/// A forwarded call's raw result as a handler result.
pub fn forwarded(r: i64) -> Result<usize, Errno> {
    if r < 0 {
        Err(crate::errno::from_result(r))
    } else {
        Ok(r as usize)
    }
}
