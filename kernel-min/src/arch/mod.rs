//! The one switch for architecture-specific code.

mod x86_64;
pub use self::x86_64::*;
