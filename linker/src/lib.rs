//! `mote link`: rewrite an x86_64 executable so each of its system calls reaches
//! mote's direct entry by a plain call instead of a trap, lay out what it adds on
//! 2 MiB boundaries, and record the program's kernel policy in an ELF note. The
//! output is still an ordinary Linux program: outside mote every call takes its
//! original `syscall` instruction.
//!
//! Modules: `scan` finds and plans the sites (iced-x86 decoding), `tramp` emits the
//! added code, `elf` checks the input and writes the output, `dynamic` moves and
//! edits a dynamic section, `deps` finds the libraries a dynamically linked
//! program loads, `note` reads the policy note back, `wrap` runs a compiler driver
//! (`mote link -- cc ...`), `cli` is the command line.

pub mod cli;
pub mod deps;
pub mod dynamic;
pub mod elf;
pub mod note;
pub mod scan;
pub mod tramp;
pub mod wrap;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

pub use cli::{run, LinkArgs};

/// Why `mote link` (or a reader of the note) gave up.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The input cannot be rewritten safely: the reason.
    #[error("cannot rewrite: {0}")]
    Refused(String),
    /// A mote note that is not well-formed.
    #[error("{0}")]
    BadNote(String),
    /// Reading or writing a file.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    /// A usage error (options).
    #[error("{0}")]
    Usage(String),
    /// The compiler driver failed (its status).
    #[error("the link command failed ({0})")]
    Command(String),
}

/// What `mote link` wrote.
#[derive(Debug)]
pub struct Linked {
    /// The program.
    pub main: elf::Outcome,
    /// The directory beside it holding its rewritten libraries (a dynamically
    /// linked program), and each library's name there with what was done to it.
    pub libs: Option<(PathBuf, Vec<(String, elf::Outcome)>)>,
}

fn io(p: &Path) -> impl FnOnce(std::io::Error) -> LinkError {
    let s = p.display().to_string();
    move |e| LinkError::Io(s, e)
}

/// Write `bytes` to `to` (through a temporary file beside it, renamed), with the
/// permissions of `like`.
fn write_like(to: &Path, bytes: &[u8], like: &Path) -> Result<(), LinkError> {
    let mut tmp = PathBuf::from(to);
    tmp.as_mut_os_string().push(".mote-link.tmp");
    std::fs::write(&tmp, bytes).map_err(io(&tmp))?;
    let perm = std::fs::metadata(like).map_err(io(like))?.permissions();
    std::fs::set_permissions(&tmp, perm).map_err(io(&tmp))?;
    std::fs::rename(&tmp, to).map_err(io(to))
}

/// The directory of `output`'s rewritten libraries: `OUT.libs` beside it; its run
/// path entry is `$ORIGIN/OUT.libs`.
pub fn lib_dir_of(output: &Path) -> Result<(PathBuf, String), LinkError> {
    let name = output
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| LinkError::Usage(format!("{}: not a file name", output.display())))?;
    if name.contains([':', '$']) {
        return Err(LinkError::Usage(format!(
            "{name}: a dynamically linked output's name may hold neither ':' nor '$' (its \
             libraries' directory is named after it in its run path)"
        )));
    }
    let dir = format!("{name}.libs");
    Ok((output.with_file_name(&dir), format!("$ORIGIN/{dir}")))
}

/// The x86_64 `glibc-hwcaps` levels ld.so tries, best first, in every directory
/// of a run path before the directory itself.
pub const HWCAPS_LEVELS: [&str; 3] = ["x86-64-v4", "x86-64-v3", "x86-64-v2"];

/// `DIR/glibc-hwcaps/LEVEL` for each level, a link to `DIR` itself: ld.so's
/// first try in `DIR` (the best level the CPU has) finds the library, instead of
/// failing an `openat` and a `stat` for each level and each legacy
/// `tls/haswell/...` directory before it reaches `DIR` (about 30 calls).
fn hwcaps_links(dir: &Path) -> Result<(), LinkError> {
    let h = dir.join("glibc-hwcaps");
    std::fs::create_dir_all(&h).map_err(io(&h))?;
    for level in HWCAPS_LEVELS {
        let l = h.join(level);
        match std::fs::read_link(&l) {
            Ok(t) if t == Path::new("..") => continue,
            Ok(_) => std::fs::remove_file(&l).map_err(io(&l))?,
            Err(_) => {}
        }
        std::os::unix::fs::symlink("..", &l).map_err(io(&l))?;
    }
    Ok(())
}

/// Rewrite `input` into `output` (written whole to a temporary file beside it, then
/// renamed, with the input's permissions). A dynamically linked program's
/// libraries are rewritten into [`lib_dir_of`]`(output)`. Everything is rewritten
/// in memory first: a refusal writes nothing.
pub fn link_file(
    input: &Path,
    output: &Path,
    policy: &mote_abi::note::Policy,
    patch: bool,
) -> Result<Linked, LinkError> {
    let bytes = std::fs::read(input).map_err(io(input))?;
    let interp = goblin::elf::Elf::parse(&bytes)
        .ok()
        .and_then(|e| e.interpreter.map(PathBuf::from))
        .filter(|_| patch);
    let Some(interp) = interp else {
        let main = elf::rewrite(
            &bytes,
            policy,
            &elf::Options {
                role: elf::Role::Program,
                patch,
                run_path: None,
            },
        )?;
        write_like(output, &main.bytes, input)?;
        return Ok(Linked { main, libs: None });
    };
    let (dir, run_path) = lib_dir_of(output)?;
    // The interpreter, for mote to load instead of PT_INTERP's (the note says so).
    let ld = std::fs::read(&interp).map_err(io(&interp))?;
    let ld_out = elf::rewrite(
        &ld,
        &Default::default(),
        &elf::Options {
            role: elf::Role::Interp,
            patch,
            run_path: None,
        },
    )
    .map_err(|e| match e {
        LinkError::Refused(r) => {
            LinkError::Refused(format!("its interpreter {}: {r}", interp.display()))
        }
        e => e,
    })?;
    let policy = &mote_abi::note::Policy {
        flags: policy.flags | mote_abi::note::F_OWN_INTERP,
        ..*policy
    };
    let main = elf::rewrite(
        &bytes,
        policy,
        &elf::Options {
            role: elf::Role::Program,
            patch,
            run_path: Some(&run_path),
        },
    )?;
    let lib_policy = mote_abi::note::Policy {
        version: mote_abi::note::VERSION,
        ..Default::default()
    };
    let mut libs = Vec::new();
    for d in deps::closure(input)? {
        if d.name.contains('/') {
            return Err(LinkError::Refused(format!(
                "{} needs {} by its path: ld.so loads it from there, not through the run \
                 path, so its rewritten copy would not be used; link it by name (-l)",
                d.needed_by.display(),
                d.name
            )));
        }
        let b = std::fs::read(&d.path).map_err(io(&d.path))?;
        let out = elf::rewrite(
            &b,
            &lib_policy,
            &elf::Options {
                role: elf::Role::Library,
                patch,
                run_path: Some("$ORIGIN"),
            },
        )
        .map_err(|e| match e {
            LinkError::Refused(r) => LinkError::Refused(format!(
                "{} (needed by {}): {r}",
                d.path.display(),
                d.needed_by.display()
            )),
            e => e,
        })?;
        libs.push((d, out));
    }
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    hwcaps_links(&dir)?;
    for (d, out) in &libs {
        write_like(&dir.join(&d.name), &out.bytes, &d.path)?;
    }
    let own = dir.join(String::from_utf8_lossy(mote_abi::note::OWN_INTERP_NAME).as_ref());
    write_like(&own, &ld_out.bytes, &interp)?;
    write_like(output, &main.bytes, input)?;
    let mut libs: Vec<(String, elf::Outcome)> =
        libs.into_iter().map(|(d, o)| (d.name, o)).collect();
    libs.push((
        String::from_utf8_lossy(mote_abi::note::OWN_INTERP_NAME).into_owned(),
        ld_out,
    ));
    Ok(Linked {
        main,
        libs: Some((dir, libs)),
    })
}
