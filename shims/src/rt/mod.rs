//! The runtime binary's machine-facing edge: start-up, the trap entry, the
//! `Platform` implementation over kernel calls and the IKC slot, and the heap.
//! This is the only place in shims with `unsafe`.
#![allow(unsafe_code)]

pub mod entry;
pub mod heap;
pub mod platform;
