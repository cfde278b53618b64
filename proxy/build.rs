//! Builds the guest images — kernel-min and the runtime (libos + shims) — for
//! `x86_64-unknown-none` with a nested cargo, and hands their paths to the proxy,
//! which embeds them with their build ids. A separate target directory avoids the outer build's lock.

use std::path::PathBuf;
use std::process::Command;

#[path = "../xtask/src/guest.rs"]
mod guest;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest.parent().unwrap().to_path_buf();
    for dir in [
        "kernel-min/src",
        "kernel-min/abi/src",
        "libos/src",
        "libos/vdso",
        "shims/src",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    for f in [
        "kernel-min/Cargo.toml",
        "kernel-min/abi/Cargo.toml",
        "libos/Cargo.toml",
        "libos/build.rs",
        "shims/Cargo.toml",
        "Cargo.lock",
        "xtask/src/guest.rs",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(f).display());
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    // Keep the guest build beside the host one (target/guest), so it is cached
    // across profiles and `cargo clean` removes it.
    let target_dir = out
        .ancestors()
        .nth(4)
        .map(|t| t.join("guest"))
        .unwrap_or_else(|| out.join("guest"));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args(guest::GUEST_BUILD_ARGS)
        .arg("--target-dir")
        .arg(&target_dir);
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_WRAPPER",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "CARGO_MAKEFLAGS",
        "MAKEFLAGS",
        "MFLAGS",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd.status().expect("run cargo for the guest images");
    if !status.success() {
        panic!(
            "building kernel-min and the runtime for x86_64-unknown-none failed (see above); \
             if the target is missing: rustup target add x86_64-unknown-none"
        );
    }
    let dir = target_dir.join(guest::GUEST_TARGET).join("release");
    for (var, file) in ["KERNEL", "RUNTIME"].into_iter().zip(guest::GUEST_IMAGES) {
        let path = dir.join(file);
        println!("cargo:rustc-env=MOTE_{var}_ELF={}", path.display());
        // The image's build id (`mote_abi::image::build_id`), hashed here
        // rather than at every run.
        let bytes = std::fs::read(&path).expect("read a guest image just built");
        println!(
            "cargo:rustc-env=MOTE_{var}_BUILD_ID={:016x}",
            mote_abi::image::build_id(&bytes)
        );
    }
}
