//! The one cargo command that builds the guest images (kernel-min and the
//! runtime) for their target. `cargo xtask image` and the proxy's build script
//! (`proxy/build.rs`, through `#[path]`) both use it, so the two cannot drift apart.
//! Only `const`s: the build script compiles this file on its own.

/// The target triple of the guest crates (kernel-min, the shims' runtime).
pub const GUEST_TARGET: &str = "x86_64-unknown-none";

/// The images built, each `<target-dir>/x86_64-unknown-none/release/<name>`:
/// kernel-min, then the runtime.
pub const GUEST_IMAGES: [&str; 2] = ["kernel-min", "mote-runtime"];

/// cargo's arguments that build both images; the caller adds `--target-dir`
/// and any `--features`.
pub const GUEST_BUILD_ARGS: [&str; 12] = [
    "build",
    "--release",
    "--target",
    GUEST_TARGET,
    "-p",
    "kernel-min",
    "--bin",
    GUEST_IMAGES[0],
    "-p",
    "mote-shims",
    "--bin",
    GUEST_IMAGES[1],
];
