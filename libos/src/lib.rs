//! mote's library OS: the application's address space, ELF loading, the initial
//! stack, process state (identity, signal dispositions) and the typed handlers for
//! the Linux system calls the partition answers locally.
//!
//! Pure logic over the [`platform::Platform`] interface: no `unsafe`, no hardware,
//! tested on the host with a fake platform (`fake`).
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

extern crate alloc;

pub mod deliver;
pub mod elf;
pub mod errno;
pub mod exec;
pub mod frames;
pub mod mm;
pub mod numa;
pub mod patch;
pub mod platform;
pub mod policy;
pub mod process;
pub mod procfs;
pub mod sched;
pub mod sigframe;
pub mod signal;
pub mod stack;
pub mod syscall;
pub mod time;
pub mod uapi;
pub mod vdso;

#[cfg(any(test, feature = "fake"))]
pub mod fake;
