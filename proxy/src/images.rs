//! The guest images a run loads: kernel-min (the KVM platform's LWK) and the
//! runtime (libos + shims, on both platforms). By default the ones `build.rs`
//! built for x86_64-unknown-none with this proxy and embedded here; with `mote
//! run --kernel FILE` / `--runtime FILE`, images built apart (`cargo xtask
//! image`, for instance with another libos policy). A file is checked before
//! anything is built from it — an x86_64 ELF whose loadable segments lie in
//! the file, the note `mote_abi::image` in its section, the right kind, and the
//! ABI this proxy speaks — and every image is named by a build id (a hash of
//! its bytes), which `mote info` and `mote run --stats` print. A leaf module.

use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use goblin::elf::program_header::PT_LOAD;
use goblin::elf::Elf;
use mote_abi::image::{self as abi, ImageNote, KIND_KERNEL, KIND_RUNTIME};

/// kernel-min as built with this proxy.
static KERNEL_ELF: &[u8] = include_bytes!(env!("MOTE_KERNEL_ELF"));
/// The runtime as built with this proxy.
static RUNTIME_ELF: &[u8] = include_bytes!(env!("MOTE_RUNTIME_ELF"));
/// Their build ids, hashed by `build.rs` (not at every run).
const KERNEL_BUILD_ID: u64 = parse_hex(env!("MOTE_KERNEL_BUILD_ID"));
const RUNTIME_BUILD_ID: u64 = parse_hex(env!("MOTE_RUNTIME_BUILD_ID"));

const fn parse_hex(s: &str) -> u64 {
    let b = s.as_bytes();
    let mut v = 0u64;
    let mut i = 0;
    while i < b.len() {
        let d = match b[i] {
            c @ b'0'..=b'9' => c - b'0',
            c @ b'a'..=b'f' => c - b'a' + 10,
            _ => panic!("build id: not lower-case hex"),
        };
        v = v << 4 | d as u64;
        i += 1;
    }
    v
}

/// Where an image came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// Embedded in this `mote`.
    BuiltIn,
    /// `--kernel FILE` / `--runtime FILE` (absolute, for child runs).
    File(PathBuf),
}

/// A checked image.
#[derive(Clone, Debug)]
pub struct Image {
    pub bytes: Cow<'static, [u8]>,
    pub source: Source,
    pub build_id: u64,
    pub note: ImageNote,
}

impl fmt::Display for Image {
    /// `runtime 1f2e3d4c5b6a7988 (policy pack, /path/to/image)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:016x} (", self.note.kind_name(), self.build_id)?;
        if self.note.kind == KIND_RUNTIME {
            write!(f, "policy {}, ", self.note.policy_name())?;
        }
        match &self.source {
            Source::BuiltIn => write!(f, "built-in)"),
            Source::File(p) => write!(f, "{})", p.display()),
        }
    }
}

/// The images of a run.
#[derive(Debug)]
pub struct Images {
    pub kernel: Image,
    pub runtime: Image,
}

impl fmt::Display for Images {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}, {}", self.kernel, self.runtime)
    }
}

/// Why an image file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("--{flag} {}: cannot read it: {err}", path.display())]
    Read {
        flag: &'static str,
        path: PathBuf,
        err: std::io::Error,
    },
    #[error("--{flag} {}: not a mote {} image: {why}", path.display(), abi::kind_name(*kind))]
    NotImage {
        flag: &'static str,
        path: PathBuf,
        kind: u32,
        why: String,
    },
    #[error(
        "--{flag} {}: a {} image, not a {} image",
        path.display(), abi::kind_name(*found), abi::kind_name(*kind)
    )]
    WrongKind {
        flag: &'static str,
        path: PathBuf,
        kind: u32,
        found: u32,
    },
    #[error(
        "--{flag} {}: the image speaks mote ABI version {} (sources {:016x}); this mote loads \
         images of ABI version {} built from sources {:016x} only: rebuild the image from this \
         mote's tree (`cargo xtask image`)",
        path.display(), note.abi_version, note.abi_hash, abi::ABI_VERSION, abi::ABI_HASH
    )]
    Abi {
        flag: &'static str,
        path: PathBuf,
        note: ImageNote,
    },
}

/// The run's images, once chosen.
static CHOSEN: OnceLock<Images> = OnceLock::new();

/// The built-in image of `kind`.
fn built_in(kind: u32) -> Image {
    let (bytes, build_id) = match kind {
        KIND_KERNEL => (KERNEL_ELF, KERNEL_BUILD_ID),
        _ => (RUNTIME_ELF, RUNTIME_BUILD_ID),
    };
    let note = note_of(bytes).expect("the built-in images carry their note");
    Image {
        bytes: Cow::Borrowed(bytes),
        source: Source::BuiltIn,
        build_id,
        note,
    }
}

/// Choose the run's images: the files given, else the built-in ones. Call
/// once, before the partition is built; the images stay for the whole run (a
/// forked run's copy of the proxy keeps them too).
pub fn choose(
    kernel: Option<&Path>,
    runtime: Option<&Path>,
) -> Result<&'static Images, ImageError> {
    let pick = |path: Option<&Path>, kind| match path {
        Some(p) => load(p, kind),
        None => Ok(built_in(kind)),
    };
    let images = Images {
        kernel: pick(kernel, KIND_KERNEL)?,
        runtime: pick(runtime, KIND_RUNTIME)?,
    };
    Ok(CHOSEN.get_or_init(|| images))
}

/// The run's images (the built-in ones when none were chosen).
pub fn chosen() -> &'static Images {
    CHOSEN.get_or_init(|| Images {
        kernel: built_in(KIND_KERNEL),
        runtime: built_in(KIND_RUNTIME),
    })
}

/// The built-in images, for `mote info`.
pub fn built_in_images() -> Images {
    Images {
        kernel: built_in(KIND_KERNEL),
        runtime: built_in(KIND_RUNTIME),
    }
}

fn flag(kind: u32) -> &'static str {
    if kind == KIND_KERNEL {
        "kernel"
    } else {
        "runtime"
    }
}

/// Read and check the image file `path` of `kind`.
pub fn load(path: &Path, kind: u32) -> Result<Image, ImageError> {
    let flag = flag(kind);
    let read_err = |err| ImageError::Read {
        flag,
        path: path.to_path_buf(),
        err,
    };
    let path = std::fs::canonicalize(path).map_err(read_err)?;
    let bytes = std::fs::read(&path).map_err(|err| ImageError::Read {
        flag,
        path: path.clone(),
        err,
    })?;
    let note = check(&bytes, &path, kind)?;
    Ok(Image {
        build_id: abi::build_id(&bytes),
        bytes: Cow::Owned(bytes),
        source: Source::File(path),
        note,
    })
}

/// What `bytes`, the file `path` given for an image of `kind`, says it is,
/// when it is one this proxy can load.
pub fn check(bytes: &[u8], path: &Path, kind: u32) -> Result<ImageNote, ImageError> {
    let flag = flag(kind);
    let note = note_of(bytes).map_err(|why| ImageError::NotImage {
        flag,
        path: path.to_path_buf(),
        kind,
        why,
    })?;
    if note.kind != kind {
        return Err(ImageError::WrongKind {
            flag,
            path: path.to_path_buf(),
            kind,
            found: note.kind,
        });
    }
    if !note.speaks_this_abi() {
        return Err(ImageError::Abi {
            flag,
            path: path.to_path_buf(),
            note,
        });
    }
    Ok(note)
}

/// The note of the ELF image `bytes`, after checking that its headers and
/// loadable segments lie in it (the ABI is not compared here). Reads the
/// headers only (no symbols or relocations): cheap enough for every run.
pub fn note_of(bytes: &[u8]) -> Result<ImageNote, String> {
    use goblin::container::{Container, Ctx, Endian};
    use goblin::elf::header::{EI_CLASS, EI_DATA, ELFCLASS64, ELFDATA2LSB, EM_X86_64};
    use goblin::elf::{ProgramHeader, SectionHeader};
    let corrupt = |e: goblin::error::Error| format!("truncated or corrupt ELF ({e})");
    let header = Elf::parse_header(bytes).map_err(corrupt)?;
    if header.e_ident[EI_CLASS] != ELFCLASS64
        || header.e_ident[EI_DATA] != ELFDATA2LSB
        || header.e_machine != EM_X86_64
    {
        return Err("not an x86_64 ELF".into());
    }
    let ctx = Ctx::new(Container::Big, Endian::Little);
    let phs = ProgramHeader::parse(bytes, header.e_phoff as usize, header.e_phnum.into(), ctx)
        .map_err(corrupt)?;
    let len = bytes.len() as u64;
    for ph in phs.iter().filter(|p| p.p_type == PT_LOAD) {
        if ph
            .p_offset
            .checked_add(ph.p_filesz)
            .is_none_or(|end| end > len)
        {
            return Err(format!(
                "truncated: a loadable segment ends beyond the file's {len} bytes"
            ));
        }
    }
    let shs = SectionHeader::parse(bytes, header.e_shoff as usize, header.e_shnum.into(), ctx)
        .map_err(corrupt)?;
    let range = |sh: &SectionHeader| {
        (sh.sh_offset as usize)
            .checked_add(sh.sh_size as usize)
            .and_then(|end| bytes.get(sh.sh_offset as usize..end))
    };
    let names = shs
        .get(usize::from(header.e_shstrndx))
        .and_then(range)
        .ok_or_else(|| "truncated or corrupt ELF (no section names)".to_string())?;
    let name_of = |sh: &SectionHeader| {
        let rest = names.get(sh.sh_name..)?;
        let end = rest.iter().position(|&b| b == 0)?;
        Some(&rest[..end])
    };
    let sh = shs
        .iter()
        .find(|s| name_of(s) == Some(abi::SECTION.as_bytes()))
        .ok_or_else(|| format!("no image note (section {})", abi::SECTION))?;
    let data = range(sh).ok_or_else(|| {
        format!(
            "truncated: section {} beyond the end of the file",
            abi::SECTION
        )
    })?;
    ImageNote::parse(data).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path() -> &'static Path {
        Path::new("/x/img")
    }

    #[test]
    fn the_built_in_images_carry_notes_of_their_kind_and_this_abi() {
        let i = built_in_images();
        assert_eq!(i.kernel.note.kind, KIND_KERNEL);
        assert_eq!(i.runtime.note.kind, KIND_RUNTIME);
        assert!(i.kernel.note.speaks_this_abi() && i.runtime.note.speaks_this_abi());
        assert_eq!(i.kernel.build_id, abi::build_id(KERNEL_ELF));
        assert_eq!(i.runtime.build_id, abi::build_id(RUNTIME_ELF));
        assert!(check(RUNTIME_ELF, path(), KIND_RUNTIME).is_ok());
        let s = i.runtime.to_string();
        assert!(s.starts_with("runtime ") && s.ends_with("built-in)"), "{s}");
    }

    #[test]
    fn a_kernel_given_as_runtime_is_refused_naming_both_kinds() {
        let e = check(KERNEL_ELF, path(), KIND_RUNTIME).unwrap_err();
        assert!(matches!(e, ImageError::WrongKind { .. }), "{e}");
        assert_eq!(
            e.to_string(),
            "--runtime /x/img: a kernel-min image, not a runtime image"
        );
    }

    #[test]
    fn truncated_and_corrupt_images_are_refused_as_such() {
        for cut in [10, 64, RUNTIME_ELF.len() / 2, RUNTIME_ELF.len() - 1] {
            let e = check(&RUNTIME_ELF[..cut], path(), KIND_RUNTIME).unwrap_err();
            assert!(matches!(e, ImageError::NotImage { .. }), "{cut}: {e}");
            assert!(
                e.to_string()
                    .starts_with("--runtime /x/img: not a mote runtime image: "),
                "{e}"
            );
        }
        let e = check(b"#!/bin/sh\necho hi\n", path(), KIND_KERNEL).unwrap_err();
        assert!(e.to_string().contains("truncated or corrupt ELF"), "{e}");
    }

    #[test]
    fn another_abi_is_refused_naming_the_versions_that_match() {
        let mut bytes = RUNTIME_ELF.to_vec();
        let elf = Elf::parse(RUNTIME_ELF).unwrap();
        let at = elf
            .section_headers
            .iter()
            .find(|s| elf.shdr_strtab.get_at(s.sh_name) == Some(abi::SECTION))
            .unwrap()
            .sh_offset as usize;
        assert_eq!(bytes[at..at + 8], abi::MAGIC);
        bytes[at + 8] ^= 0x40;
        let e = check(&bytes, path(), KIND_RUNTIME).unwrap_err();
        let want = format!(
            "the image speaks mote ABI version {} (sources {:016x}); this mote loads images of ABI version {} built from sources {:016x} only",
            abi::ABI_VERSION ^ 0x40,
            abi::ABI_HASH,
            abi::ABI_VERSION,
            abi::ABI_HASH
        );
        assert!(e.to_string().contains(&want), "{e}");
    }

    #[test]
    fn hex_build_ids_parse() {
        assert_eq!(parse_hex("00ff10"), 0xff10);
        assert_eq!(parse_hex("cbf29ce484222325"), 0xcbf2_9ce4_8422_2325);
    }
}
