//! Builds the partition's vDSO (`vdso/vdso.c`, laid out by `vdso/vdso.lds`) with
//! gcc and ld into `$OUT_DIR/vdso.so`, which `src/vdso.rs` embeds. Reproducible:
//! no build id, stripped, no paths in the image; gcc and binutils are already
//! required for `apps/`.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("vdso");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("vdso.so");
    for f in ["vdso.c", "vdso.lds"] {
        println!("cargo:rerun-if-changed={}", dir.join(f).display());
    }
    let cc = std::env::var("MOTE_VDSO_CC").unwrap_or_else(|_| "gcc".into());
    let status = Command::new(&cc)
        .current_dir(&dir)
        .args([
            "-O2",
            "-fPIC",
            "-ffreestanding",
            "-fno-stack-protector",
            "-fno-asynchronous-unwind-tables",
            "-fno-unwind-tables",
            "-fcf-protection=none",
            "-Wall",
            "-Werror",
            "-nostdlib",
            "-shared",
            "-Wl,-T,vdso.lds",
            "-Wl,-soname=linux-vdso.so.1",
            "-Wl,--hash-style=both",
            "-Wl,--build-id=none",
            "-Wl,-z,noexecstack",
            "-Wl,-z,norelro",
            "-s",
            "-o",
        ])
        .arg(&out)
        .arg("vdso.c")
        .status()
        .unwrap_or_else(|e| {
            panic!("libos: cannot run {cc} to build the vDSO ({e}): install Debian packages gcc binutils")
        });
    assert!(
        status.success(),
        "libos: building the vDSO (libos/vdso/vdso.c) with {cc} failed; see above"
    );
}
