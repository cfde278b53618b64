//! Everything that crosses a boundary in mote.
//!
//! The proxy (host), kernel-min (ring 0 in the partition) and libos/shims (ring 3 in
//! the partition) agree on the definitions in this crate and nothing else. Every
//! structure here is `#[repr(C)]` with its size and field offsets pinned by
//! `static_assertions`, so a change of layout is a compile error, not a silent
//! disagreement between two sides that were built from different sources.
#![cfg_attr(not(test), no_std)]

pub mod boot;
pub mod errno;
pub mod exec;
pub mod hosted;
pub mod ikc;
pub mod image;
pub mod kcall;
pub mod layout;
pub mod maplog;
pub mod note;
pub mod numa;
pub mod paging;
pub mod ports;
pub mod signal;
pub mod trace;
pub mod trap;
