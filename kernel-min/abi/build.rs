//! Computes `ABI_HASH` (`mote_abi::image`): an FNV-1a hash of this crate's
//! sources (whitespace left out), so an image built from other definitions of anything that crosses a
//! boundary is told apart from one this mote speaks, even if nobody bumped
//! `ABI_VERSION`.

use std::path::PathBuf;

fn main() {
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("src");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("read mote_abi's src/")
        .map(|e| e.expect("list mote_abi's src/").path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .collect();
    files.sort();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read(f).expect("read a mote_abi source");
        // Whitespace does not count: reformatting is no change of the ABI.
        let text = text.into_iter().filter(|b| !b.is_ascii_whitespace());
        for b in name.bytes().chain([0]).chain(text).chain([0]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("abi_hash.rs");
    std::fs::write(out, format!("{h:#018x}\n")).expect("write abi_hash.rs");
}
