//! The runtime binary's machine-facing edge: start-up, the trap entry, the
//! `Platform` implementation over kernel calls and the IKC slot, and the heap.
//! This is the only place in shims with `unsafe`.
#![allow(unsafe_code)]

pub mod call;
pub mod entry;
pub mod fpu;
pub mod heap;
pub mod hosted;
pub mod locks;
pub mod percpu;
pub mod platform;
pub mod sig;
pub mod threads;

/// The argv/envp block the proxy wrote (`layout::ARGS_VA`, `BootInfo::args_len`).
pub fn args_block(boot: &mote_abi::boot::BootInfo) -> &'static [u8] {
    let len = boot.args_len.min(mote_abi::layout::ARGS_MAX) as usize;
    // SAFETY: the args area is mapped read-only for the partition's life and the
    // proxy wrote it before the first instruction.
    unsafe { core::slice::from_raw_parts(mote_abi::layout::ARGS_VA as *const u8, len) }
}
