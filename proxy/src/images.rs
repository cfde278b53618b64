//! The guest images the proxy carries: kernel-min and the runtime (libos +
//! shims), built for x86_64-unknown-none by build.rs and embedded here. A leaf
//! module.

/// kernel-min (the KVM platform's LWK).
pub static KERNEL_ELF: &[u8] = include_bytes!(env!("MOTE_KERNEL_ELF"));
/// The runtime (libos + shims), on both platforms.
pub static RUNTIME_ELF: &[u8] = include_bytes!(env!("MOTE_RUNTIME_ELF"));
