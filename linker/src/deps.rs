//! Finding the shared libraries a dynamically linked program loads, as glibc's
//! ld.so would, without running it: the `DT_NEEDED` entries of the program and of
//! each library found, breadth first, each looked up in (for a name without a
//! slash) the `DT_RPATH` of the object and of the objects that loaded it (when the
//! object has no `DT_RUNPATH`), `LD_LIBRARY_PATH`, the object's `DT_RUNPATH`,
//! `/etc/ld.so.cache`, then the default directories. `$ORIGIN` is the directory of
//! the object whose path it is in. A name seen once is loaded once (ld.so matches
//! it against what is loaded already), and the interpreter is never one of them.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use goblin::elf::Elf;

use crate::elf::GLIBC_INTERP;
use crate::LinkError;

/// Where ld.so looks last (Debian's multiarch directories, then the usual ones).
const DEFAULT_DIRS: &[&str] = &[
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
];

/// The cache ld.so reads.
pub const LD_SO_CACHE: &str = "/etc/ld.so.cache";

/// One library the program loads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dep {
    /// The name it is asked for by (`DT_NEEDED`): its file name in the rewritten
    /// directory.
    pub name: String,
    /// Where it was found.
    pub path: PathBuf,
    /// Who asked for it first.
    pub needed_by: PathBuf,
}

/// What one object says about its dependencies.
#[derive(Clone)]
struct Object {
    needed: Vec<String>,
    rpath: Vec<String>,
    runpath: Vec<String>,
}

fn object(path: &Path) -> Result<Object, LinkError> {
    let bytes = std::fs::read(path).map_err(|e| LinkError::Io(path.display().to_string(), e))?;
    let elf = Elf::parse(&bytes).map_err(|e| {
        LinkError::Refused(format!("{}: a malformed ELF file ({e})", path.display()))
    })?;
    let split = |v: &[&str]| {
        v.iter()
            .flat_map(|s| s.split(':'))
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    };
    Ok(Object {
        needed: elf.libraries.iter().map(|s| s.to_string()).collect(),
        rpath: split(&elf.rpaths),
        runpath: split(&elf.runpaths),
    })
}

/// `$ORIGIN` (or `${ORIGIN}`) in `dir`, for the object at `of`.
fn expand(dir: &str, of: &Path) -> PathBuf {
    let origin = of
        .parent()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|| ".".into());
    let origin = if origin.is_empty() {
        ".".into()
    } else {
        origin
    };
    PathBuf::from(
        dir.replace("${ORIGIN}", &origin)
            .replace("$ORIGIN", &origin),
    )
}

/// `name`'s path in ld.so's cache (`glibc-ld.so.cache1.1`), an x86_64 libc6
/// entry, the baseline one (not a `glibc-hwcaps` subdirectory's) if there is one.
pub fn in_cache(cache: &[u8], name: &str) -> Option<PathBuf> {
    const MAGIC: &[u8] = b"glibc-ld.so.cache1.1";
    const FLAGS_X86_64_LIBC6: i32 = 0x0303;
    let base = cache.windows(MAGIC.len()).position(|w| w == MAGIC)?;
    let c = &cache[base..];
    let u32_at = |o: usize| Some(u32::from_le_bytes(c.get(o..o + 4)?.try_into().ok()?));
    let n = u32_at(20)? as usize;
    let string = |o: u32| {
        let b = c.get(o as usize..)?;
        let end = b.iter().position(|&x| x == 0)?;
        std::str::from_utf8(&b[..end]).ok()
    };
    let mut found = None;
    for k in 0..n.min(1 << 20) {
        let e = 48 + 24 * k;
        let flags = u32_at(e)? as i32;
        let hwcap = u64::from_le_bytes(c.get(e + 16..e + 24)?.try_into().ok()?);
        if flags != FLAGS_X86_64_LIBC6 || string(u32_at(e + 4)?) != Some(name) {
            continue;
        }
        let path = PathBuf::from(string(u32_at(e + 8)?)?);
        if hwcap == 0 {
            return Some(path);
        }
        found.get_or_insert(path);
    }
    found
}

/// Every library `program` (at `path`) loads, in the order ld.so loads them.
pub fn closure(path: &Path) -> Result<Vec<Dep>, LinkError> {
    let cache = std::fs::read(LD_SO_CACHE).unwrap_or_default();
    let ld_library_path: Vec<String> = std::env::var("LD_LIBRARY_PATH")
        .unwrap_or_default()
        .split([':', ';'])
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    let mut seen: HashSet<String> = HashSet::from([GLIBC_INTERP.to_string()]);
    let mut out = Vec::new();
    // (object, the RPATHs of the objects that loaded it)
    let main = object(path)?;
    let mut queue = vec![(path.to_path_buf(), main, Vec::<PathBuf>::new())];
    let mut at = 0;
    while at < queue.len() {
        let (of, obj, mut chain) = queue[at].clone();
        at += 1;
        // An object's own DT_RPATH counts only without a DT_RUNPATH; its
        // loaders' count for it only then too, but still for its dependencies.
        if obj.runpath.is_empty() {
            chain.extend(obj.rpath.iter().map(|d| expand(d, &of)));
        }
        for name in &obj.needed {
            let base = name.rsplit('/').next().unwrap_or(name);
            if !seen.insert(name.clone()) || base == GLIBC_INTERP {
                continue;
            }
            let found = if name.contains('/') {
                Some(expand(name, &of)).filter(|p| p.is_file())
            } else {
                let dirs = (if obj.runpath.is_empty() {
                    chain.clone()
                } else {
                    Vec::new()
                })
                .into_iter()
                .chain(ld_library_path.iter().map(PathBuf::from))
                .chain(obj.runpath.iter().map(|d| expand(d, &of)));
                dirs.map(|d| d.join(name))
                    .find(|p| p.is_file())
                    .or_else(|| in_cache(&cache, name).filter(|p| p.is_file()))
                    .or_else(|| {
                        DEFAULT_DIRS
                            .iter()
                            .map(|d| Path::new(d).join(name))
                            .find(|p| p.is_file())
                    })
            };
            let Some(p) = found else {
                return Err(LinkError::Refused(format!(
                    "{name} (needed by {}) is not found in its run path, LD_LIBRARY_PATH, \
                     {LD_SO_CACHE} or the default directories: install it, or set \
                     LD_LIBRARY_PATH to its directory",
                    of.display()
                )));
            };
            let o = object(&p)?;
            out.push(Dep {
                name: name.clone(),
                path: p.clone(),
                needed_by: of.clone(),
            });
            queue.push((p, o, chain.clone()));
        }
    }
    Ok(out)
}
