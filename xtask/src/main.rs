//! `cargo xtask`: mote's build and test orchestration, in the spirit of hermit's
//! xtask. Each subcommand is a list of steps; the first step that fails stops the
//! run with a message naming the step and, where there is one, the fix.
//!
//! - `demo`: install what the machine lacks (`setup`: the rustup target; as root
//!   the Debian packages), build the workspace (`target/release/mote`) and the
//!   apps, say which platform `mote run` takes here (`mote info`), run `mote run
//!   -- target/apps/hello`, show its output and status.
//! - `test`: install what the tests need as well (rustfmt, clippy, busybox, MPI;
//!   as root the hugetlbfs pages), the same build, then formatting, lints (host
//!   and guest crates) and every test of the workspace. `.ci/run` runs this. It
//!   builds the worked experiment's image too (`image`, into `<target>/images/pack`).
//! - `latency`: run `apps/latency.c` natively and under mote, print both and the ratio.
//! - `apps`: only compile `apps/*.c` (and `apps/mpi/*.c` where MPI is installed).
//! - `fuzz [INPUTS [SEED]]`: the randomized tests of every decoder of bytes that
//!   cross from the application's side (`fuzz_*` in mote-abi, mote-libos and
//!   the proxy), with INPUTS inputs each (default 10,000,000; the suite runs
//!   100,000) from SEED (default: the suite's).
//! - `image --out DIR [--features F,...]`: kernel-min and the runtime built apart,
//!   with the shims' features (a libos policy), for `mote run --runtime FILE`.

mod apps;
mod elf;
mod error;
mod guest;
mod image;
mod latency;
mod setup;
mod step;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use error::Error;

/// The guest crates, linted for the guest target.
const GUEST_CRATES: &[&str] = &["kernel-min", "mote-shims"];
/// The static busybox the end-to-end tests run (Debian `busybox-static`).
const BUSYBOX: &str = "/bin/busybox";

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  demo      build mote and the apps, then run apps/hello.c under `mote run`
  test      build, then cargo fmt --check, clippy (host and guest crates), cargo test
  latency   run apps/latency.c natively and under mote; print median, p99 and ratio
  apps      compile apps/*.c into <target>/apps (gcc -static; apps/mpi/*.c with mpicc)
  fuzz [INPUTS [SEED]]
            run the decoders' randomized tests longer (default 10,000,000 inputs each)

  image     --out DIR [--features F,...]: build kernel-min and the runtime apart
            (features: policy-pack) into DIR, for mote run --kernel/--runtime FILE";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("demo") => Workspace::locate().and_then(|ws| ws.demo()),
        Some("test") => Workspace::locate().and_then(|ws| ws.test()),
        Some("latency") => Workspace::locate().and_then(|ws| ws.latency()),
        Some("apps") => Workspace::locate().and_then(|ws| {
            ws.build_apps()?;
            // The MPI programs too where MPI is installed; `test` requires it.
            if apps::check_mpi().is_ok() {
                ws.build_mpi_apps()?;
            }
            Ok(())
        }),
        Some("fuzz") => Workspace::locate().and_then(|ws| ws.fuzz(args.get(1), args.get(2))),
        Some("image") => image::parse(&args[1..])
            .and_then(|(out, features)| Workspace::locate()?.image(&features, &out)),
        Some("help" | "-h" | "--help") => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(Error::Usage(format!("unknown command `{other}`\n{USAGE}"))),
        None => Err(Error::Usage(USAGE.to_string())),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Where things are: the workspace root and cargo's target directory.
pub struct Workspace {
    root: PathBuf,
    target: PathBuf,
    cargo: String,
}

impl Workspace {
    fn locate() -> Result<Self, Error> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("xtask lives one level below the workspace root")
            .to_path_buf();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
        let target = target_directory(&cargo, &root)?;
        Ok(Self {
            root,
            target,
            cargo,
        })
    }

    fn cargo(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.cargo);
        cmd.args(args).current_dir(&self.root);
        cmd
    }

    /// `target/release/mote`.
    fn mote(&self) -> PathBuf {
        self.target.join("release").join("mote")
    }

    /// `target/apps`.
    fn apps_dir(&self) -> PathBuf {
        self.target.join("apps")
    }

    /// A path as the user would type it from the workspace root.
    fn show(&self, path: &Path) -> String {
        path.strip_prefix(&self.root)
            .unwrap_or(path)
            .display()
            .to_string()
    }

    /// `cargo build --release` of the workspace, then the apps; first what the
    /// build needs and the machine lacks (`setup`).
    fn build(&self) -> Result<(), Error> {
        setup::for_demo(&self.root)?;
        step::run(
            "build the workspace",
            self.cargo(&["build", "--release"]),
            "fix the build errors above",
        )?;
        if !self.mote().is_file() {
            return Err(Error::Missing {
                what: format!("{} after `cargo build --release`", self.show(&self.mote())),
                fix: "the proxy crate must build the `mote` binary",
            });
        }
        self.build_apps()?;
        Ok(())
    }

    fn build_apps(&self) -> Result<Vec<PathBuf>, Error> {
        apps::check_prerequisites()?;
        let apps = self.root.join("apps");
        let mut built = apps::build_all(&apps, &self.apps_dir(), apps::GCC, apps::STATIC)?;
        built.extend(apps::build_all(
            &apps.join("dynamic"),
            &self.apps_dir(),
            apps::GCC,
            apps::DYNAMIC,
        )?);
        Ok(built)
    }

    /// `apps/mpi/*.c` with each MPI, for the MPI tests (not the demo: it needs
    /// no MPI).
    fn build_mpi_apps(&self) -> Result<Vec<PathBuf>, Error> {
        apps::check_mpi()?;
        let mut built = Vec::new();
        for mpi in [apps::MPICH, apps::OPENMPI] {
            built.extend(apps::build_all(
                &self.root.join("apps").join("mpi"),
                &self.apps_dir().join(mpi.subdir),
                mpi.tools[0],
                apps::DYNAMIC,
            )?);
        }
        Ok(built)
    }

    fn demo(&self) -> Result<(), Error> {
        self.build()?;
        let hello = self.apps_dir().join("hello");
        // The same program natively first: the demo's output must match it.
        let (native_status, native_out) = step::stdout_with_timeout(Command::new(&hello))?;
        // Which platform `mote run` takes here, and why (`mote info`'s backend line).
        let mut info = Command::new(self.mote());
        info.arg("info");
        let (_, text) = step::stdout_with_timeout(info)?;
        if let Some(backend) = String::from_utf8_lossy(&text)
            .lines()
            .find_map(|l| l.strip_prefix("backend:"))
        {
            println!("\n(mote info: {})", backend.trim());
        }
        println!(
            "\n$ {} run -- {}",
            self.show(&self.mote()),
            self.show(&hello)
        );
        let mut cmd = Command::new(self.mote());
        cmd.arg("run").arg("--").arg(&hello).current_dir(&self.root);
        let (status, out) = step::stdout_with_timeout(cmd)?;
        print!("{}", String::from_utf8_lossy(&out));
        println!("[{}]", step::describe(status));
        if !status.success() {
            Err(Error::Demo(format!(
                "`mote run` ended with {} instead of exit status 0",
                step::describe(status)
            )))
        } else if !native_status.success() || out != native_out {
            Err(Error::Demo(format!(
                "the output differs from a native run of the same program, which printed {:?}",
                String::from_utf8_lossy(&native_out)
            )))
        } else {
            println!("(identical to a native run)");
            Ok(())
        }
    }

    fn test(&self) -> Result<(), Error> {
        setup::for_test(&self.root)?;
        self.build()?;
        self.build_mpi_apps()?;
        // The worked experiment's runtime, which the tests run (testsuite/tests/images.rs).
        self.experiment_image()?;
        step::run(
            "check formatting",
            self.cargo(&["fmt", "--all", "--check"]),
            "run `cargo fmt --all`",
        )?;
        step::run(
            "lint the workspace",
            self.cargo(&[
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ]),
            "fix the clippy findings above",
        )?;
        let mut args = vec!["clippy", "--release", "--target", guest::GUEST_TARGET];
        for krate in GUEST_CRATES {
            args.extend(["-p", krate]);
        }
        args.extend(["--bins", "--", "-D", "warnings"]);
        step::run(
            "lint the guest crates",
            self.cargo(&args),
            "fix the clippy findings above",
        )?;
        step::run(
            "run the tests",
            self.cargo(&["test", "--release", "--workspace"]),
            "see the failing tests above",
        )?;
        println!("\nxtask: all steps passed");
        Ok(())
    }

    /// The `fuzz_*` tests with `MOTE_FUZZ_INPUTS` and `MOTE_FUZZ_SEED` set.
    fn fuzz(&self, inputs: Option<&String>, seed: Option<&String>) -> Result<(), Error> {
        let inputs = inputs.map_or("10000000", String::as_str);
        if inputs.parse::<u64>().is_err() || seed.is_some_and(|s| s.parse::<u64>().is_err()) {
            return Err(Error::Usage(format!(
                "fuzz INPUTS [SEED]: numbers\n{USAGE}"
            )));
        }
        let mut cmd = self.cargo(&[
            "test",
            "--release",
            "-p",
            "mote-abi",
            "-p",
            "mote-libos",
            "-p",
            "mote",
            "fuzz_",
            "--",
            "--nocapture",
        ]);
        cmd.env("MOTE_FUZZ_INPUTS", inputs);
        if let Some(s) = seed {
            cmd.env("MOTE_FUZZ_SEED", s);
        }
        step::run(
            "fuzz the decoders",
            cmd,
            "a failing input is reproduced with its SEED",
        )?;
        println!("xtask: {inputs} inputs per decoder, no failure");
        Ok(())
    }

    fn latency(&self) -> Result<(), Error> {
        self.build()?;
        latency::compare(&self.mote(), &self.apps_dir().join("latency"))
    }
}

/// Cargo's target directory, as cargo itself resolves it (CARGO_TARGET_DIR,
/// `build.target-dir`, or `<root>/target`).
fn target_directory(cargo: &str, root: &Path) -> Result<PathBuf, Error> {
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(root)
        .output()
        .map_err(|e| Error::Io {
            context: format!("running `{cargo} metadata`"),
            source: e,
        })?;
    if !out.status.success() {
        return Err(Error::Other(format!(
            "`cargo metadata` failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    let json = String::from_utf8_lossy(&out.stdout);
    json_string_field(&json, "target_directory")
        .map(PathBuf::from)
        .ok_or_else(|| Error::Other("`cargo metadata` printed no target_directory".into()))
}

/// The value of the first `"key":"..."` string field in `json`, unescaped.
/// Enough JSON for one field of `cargo metadata`, without a dependency.
fn json_string_field(json: &str, key: &str) -> Option<String> {
    let pattern = format!("\"{key}\":\"");
    let start = json.find(&pattern)? + pattern.len();
    let mut value = String::new();
    let mut chars = json[start..].chars();
    loop {
        match chars.next()? {
            '"' => return Some(value),
            '\\' => match chars.next()? {
                'n' => value.push('\n'),
                't' => value.push('\t'),
                'u' => {
                    let hex: String = chars.by_ref().take(4).collect();
                    value.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                }
                c => value.push(c),
            },
            c => value.push(c),
        }
    }
}

/// The busybox tests need a statically linked `/bin/busybox`.
fn check_busybox() -> Result<(), Error> {
    let fix = "install Debian package busybox-static";
    match elf::linkage(Path::new(BUSYBOX)) {
        Ok(elf::Linkage::Static) => Ok(()),
        Ok(elf::Linkage::Dynamic) => Err(Error::Missing {
            what: format!("a static {BUSYBOX} ({BUSYBOX} is dynamically linked)"),
            fix,
        }),
        Err(e) => Err(Error::Missing {
            what: format!("a static {BUSYBOX} ({e})"),
            fix,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::json_string_field;

    #[test]
    fn json_field_is_found_and_unescaped() {
        let json = r#"{"packages":[],"target_directory":"/a b/t\"x\\y","version":1}"#;
        assert_eq!(
            json_string_field(json, "target_directory").as_deref(),
            Some("/a b/t\"x\\y")
        );
        assert_eq!(json_string_field(json, "workspace_root"), None);
    }
}
