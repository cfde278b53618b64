//! `mote bench --runtime A --runtime B [--kernel K]`: the runtime images the
//! bench's mote runs load, for comparing LWK policies side by side in one
//! invocation (`docs/experiments.md`). Each image is checked as `mote run`
//! checks it before any run; each becomes a column per platform, named
//! `PLATFORM:POLICY` (the policy its note names, `#2`, `#3` after a repeated
//! one), and the table adds each one's median over the first's. Without
//! `--runtime` there is one, the built-in image, and the columns are named by
//! platform alone, as before.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::OnceLock;

use super::Platform;
use crate::images::{self, Source};

/// `--runtime built-in`: the image embedded in this mote.
pub const BUILT_IN: &str = "built-in";

/// One runtime the mote runs load.
#[derive(Debug)]
struct Runtime {
    /// Its policy, made unique.
    label: String,
    /// None: the built-in one.
    path: Option<PathBuf>,
}

#[derive(Debug)]
struct Chosen {
    runtimes: Vec<Runtime>,
    kernel: Option<PathBuf>,
    /// `names[platform * runtimes.len() + i]`.
    names: Vec<String>,
}

static CHOSEN: OnceLock<Chosen> = OnceLock::new();

/// Check and remember the images (`--runtime`, in order; `--kernel`).
pub fn choose(runtimes: &[PathBuf], kernel: Option<&std::path::Path>) -> Result<(), String> {
    let kernel = match kernel {
        Some(k) => match images::load(k, mote_abi::image::KIND_KERNEL) {
            Ok(img) => match img.source {
                Source::File(p) => Some(p),
                Source::BuiltIn => None,
            },
            Err(e) => return Err(e.to_string()),
        },
        None => None,
    };
    let mut list: Vec<Runtime> = Vec::new();
    for path in runtimes {
        let (policy, path) = if path.as_os_str() == BUILT_IN {
            let img = images::built_in_images().runtime;
            (img.note.policy_name().to_string(), None)
        } else {
            let img =
                images::load(path, mote_abi::image::KIND_RUNTIME).map_err(|e| e.to_string())?;
            let Source::File(p) = img.source else {
                unreachable!("a loaded image is a file")
            };
            (img.note.policy_name().to_string(), Some(p))
        };
        let same = list
            .iter()
            .filter(|r| r.label.split('#').next() == Some(policy.as_str()))
            .count();
        let label = if same == 0 {
            policy
        } else {
            format!("{policy}#{}", same + 1)
        };
        list.push(Runtime { label, path });
    }
    if list.is_empty() {
        list.push(built_in());
    }
    let _ = CHOSEN.set(chosen(list, kernel));
    Ok(())
}

fn chosen(runtimes: Vec<Runtime>, kernel: Option<PathBuf>) -> Chosen {
    let several = runtimes.len() > 1;
    let rts = &runtimes;
    let names = Platform::ALL
        .iter()
        .flat_map(|p| {
            rts.iter().map(move |r| {
                if several {
                    format!("{}:{}", p.name(), r.label)
                } else {
                    p.name().to_string()
                }
            })
        })
        .collect();
    Chosen {
        runtimes,
        kernel,
        names,
    }
}

/// The built-in runtime, alone when no `--runtime` is given.
fn built_in() -> Runtime {
    Runtime {
        label: images::built_in_images()
            .runtime
            .note
            .policy_name()
            .to_string(),
        path: None,
    }
}

fn get() -> &'static Chosen {
    CHOSEN.get_or_init(|| chosen(vec![built_in()], None))
}

/// How many runtimes each platform runs (at least 1).
pub fn count() -> usize {
    get().runtimes.len()
}

/// The column name of platform `p` with runtime `i`.
pub fn side_name(p: Platform, i: usize) -> &'static str {
    let c = get();
    let pi = Platform::ALL.iter().position(|&q| q == p).unwrap_or(0);
    c.names
        .get(pi * c.runtimes.len() + i)
        .map_or("?", String::as_str)
}

/// The `mote run` options that load runtime `i` (and the kernel, if given).
pub fn options(i: usize) -> Vec<OsString> {
    let c = get();
    let mut o = Vec::new();
    if let Some(path) = c.runtimes.get(i).and_then(|r| r.path.as_ref()) {
        o.extend(["--runtime".into(), path.clone().into_os_string()]);
    }
    if let Some(k) = &c.kernel {
        o.extend(["--kernel".into(), k.clone().into_os_string()]);
    }
    o
}

/// Lines naming each runtime, for the bench's header.
pub fn describe() -> Vec<String> {
    let c = get();
    if c.runtimes.len() < 2 && c.runtimes.iter().all(|r| r.path.is_none()) {
        return Vec::new();
    }
    c.runtimes
        .iter()
        .map(|r| {
            format!(
                "runtime {}: {}",
                r.label,
                r.path
                    .as_ref()
                    .map_or(BUILT_IN.to_string(), |p| p.display().to_string())
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_named_by_platform_and_policy_when_there_are_several() {
        let rt = |label: &str| Runtime {
            label: label.into(),
            path: None,
        };
        let c = chosen(vec![rt("default"), rt("pack")], None);
        assert_eq!(
            c.names,
            ["kvm:default", "kvm:pack", "hosted:default", "hosted:pack"]
        );
        let c = chosen(vec![rt("default")], None);
        assert_eq!(c.names, ["kvm", "hosted"]);
    }

    /// Regression: without `--runtime` the bench had no image at all, so no
    /// mote column (`quick_bench_runs_every_workload...` found only native's).
    #[test]
    fn without_runtime_options_the_built_in_image_runs() {
        choose(&[], None).unwrap();
        assert_eq!(count(), 1);
        assert_eq!(
            (side_name(Platform::Kvm, 0), side_name(Platform::Hosted, 0)),
            ("kvm", "hosted")
        );
        assert!(options(0).is_empty());
        assert!(describe().is_empty());
    }
}
