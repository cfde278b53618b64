//! `cargo xtask image --out DIR [--features F,...]`: kernel-min and the runtime
//! built for x86_64-unknown-none apart from the proxy, with the shims' (and so
//! libos's) features — a libos policy, `policy-pack` — and copied to
//! `DIR/kernel-min` and `DIR/mote-runtime` for `mote run --kernel FILE
//! --runtime FILE` and `mote bench --runtime FILE`. Each feature set builds in
//! a target directory of its own (`<target>/image/<features>`), so images with
//! different policies do not rebuild each other, nor the proxy's embedded ones.

use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::{guest, step, Workspace};

/// Where `cargo xtask test` puts the worked experiment's image (the tests run it).
pub const EXPERIMENT_DIR: &str = "images/pack";
/// Its features.
pub const EXPERIMENT_FEATURES: &[&str] = &["policy-pack"];

/// The command line of `image`: `--out DIR` and `--features F[,F...]` (repeatable).
pub fn parse(args: &[String]) -> Result<(PathBuf, Vec<String>), Error> {
    let usage = || {
        Error::Usage(
            "usage: cargo xtask image --out DIR [--features F[,F...]]\n\
             features are mote-shims's: policy-pack (libos/src/policy.rs)"
                .into(),
        )
    };
    let (mut out, mut features) = (None, Vec::new());
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let (flag, value) = match a.split_once('=') {
            Some((f, v)) => (f, Some(v.to_string())),
            None => (a.as_str(), None),
        };
        let mut value = || {
            value
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or_else(usage)
        };
        match flag {
            "--out" => out = Some(PathBuf::from(value()?)),
            "--features" => features.extend(
                value()?
                    .split([',', ' '])
                    .filter(|f| !f.is_empty())
                    .map(str::to_string),
            ),
            _ => return Err(usage()),
        }
    }
    Ok((out.ok_or_else(usage)?, features))
}

impl Workspace {
    /// Build the images with `features` (the shims') and copy them into `out`.
    pub fn image(&self, features: &[String], out: &Path) -> Result<(), Error> {
        let slug = if features.is_empty() {
            "default".to_string()
        } else {
            let mut f = features.to_vec();
            f.sort();
            f.join("+")
        };
        let target_dir = self.target.join("image").join(&slug);
        let target_dir_s = target_dir.display().to_string();
        let mut args = guest::GUEST_BUILD_ARGS.to_vec();
        args.extend(["--target-dir", &target_dir_s]);
        let qualified: Vec<String> = features.iter().map(|f| format!("mote-shims/{f}")).collect();
        let joined = qualified.join(",");
        if !features.is_empty() {
            args.extend(["--features", &joined]);
        }
        step::run(
            "build the guest images",
            self.cargo(&args),
            "fix the build errors above (features are mote-shims's: see shims/Cargo.toml)",
        )?;
        std::fs::create_dir_all(out).map_err(|e| Error::Io {
            context: format!("creating {}", out.display()),
            source: e,
        })?;
        let built = target_dir.join(guest::GUEST_TARGET).join("release");
        for name in guest::GUEST_IMAGES {
            let (from, to) = (built.join(name), out.join(name));
            // Replace, not overwrite in place: a run may be loading the old one.
            let tmp = out.join(format!(".{name}.new"));
            std::fs::copy(&from, &tmp)
                .and_then(|_| std::fs::rename(&tmp, &to))
                .map_err(|e| Error::Io {
                    context: format!("copying {} to {}", from.display(), to.display()),
                    source: e,
                })?;
            println!("xtask: {}", self.show(&to));
        }
        println!(
            "xtask: run with `mote run --runtime {} --kernel {} -- PROGRAM`; `mote info FILE` names an image",
            self.show(&out.join("mote-runtime")),
            self.show(&out.join("kernel-min"))
        );
        Ok(())
    }

    /// The worked experiment's image, where the tests look for it.
    pub fn experiment_image(&self) -> Result<(), Error> {
        let features: Vec<String> = EXPERIMENT_FEATURES.iter().map(|f| f.to_string()).collect();
        self.image(&features, &self.target.join(EXPERIMENT_DIR))
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn out_and_features_parse_in_both_spellings() {
        let (out, f) = parse(&args(&["--out", "d", "--features", "a,b"])).unwrap();
        assert_eq!((out.to_str(), f), (Some("d"), args(&["a", "b"])));
        let (out, f) = parse(&args(&["--features=policy-pack", "--out=x/y"])).unwrap();
        assert_eq!((out.to_str(), f), (Some("x/y"), args(&["policy-pack"])));
        assert!(parse(&args(&["--features", "a"])).is_err());
        assert!(parse(&args(&["--out"])).is_err());
        assert!(parse(&args(&["--bogus", "--out", "d"])).is_err());
    }
}
