//! The runtime binary's machine-facing edge: start-up, the trap entry, the
//! `Platform` implementation over kernel calls and the IKC slot, threads' context
//! switches, and the heap. This is the only place in shims with `unsafe`.
//!
//! Layering (a module imports only modules after it in this list): `entry` (the
//! stubs: entered from the machine, they enter `crate::partition`) → `hosted` (the
//! hosted process's start-up and trap signals: it enters `crate::partition` as
//! kernel-min's upcalls do, and names its `Edge` to `platform`) → `call` (a
//! system call as the dispatcher sees the runtime) → `fork` (a fork's record,
//! and the child's resumption from it) → `threads` (switches, the idle loop,
//! blocking, preemption) → `sig` → `tick` (the cores' time-sharing timers) →
//! `platform` (the runtime's `Platform`) → `kvm` → the leaves `edge`, `ikc`,
//! `percpu`, `locks`, `fpu`, `heap`, `trace`.
#![allow(unsafe_code)]

pub mod call;
pub mod edge;
pub mod entry;
pub mod fork;
pub mod fpu;
pub mod heap;
pub mod hosted;
pub mod ikc;
pub mod kvm;
pub mod locks;
pub mod percpu;
pub mod platform;
pub mod sig;
pub mod threads;
pub mod tick;
pub mod trace;

/// The argv/envp block the proxy wrote (`layout::ARGS_VA`, `BootInfo::args_len`).
pub fn args_block(boot: &mote_abi::boot::BootInfo) -> &'static [u8] {
    let len = boot.args_len.min(mote_abi::layout::ARGS_MAX) as usize;
    // SAFETY: the args area is mapped read-only for the partition's life and the
    // proxy wrote it before the first instruction.
    unsafe { core::slice::from_raw_parts(mote_abi::layout::ARGS_VA as *const u8, len) }
}
