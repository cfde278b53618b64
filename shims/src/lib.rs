//! mote's Linux system call ABI for the partition: the trap entry, the
//! local-or-forward table, the forwarding client and the runtime's start-up.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

pub mod sigcontext;
pub mod table;
pub mod trace;
