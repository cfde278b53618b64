//! The C applications in `apps/`: prerequisites and the build, one program per
//! `.c` file: `apps/*.c` static (`gcc -static -O2 -Wall -Werror`),
//! `apps/dynamic/*.c` as ordinary dynamically linked PIE programs, and
//! `apps/mpi/*.c` with each MPI's compiler wrapper (MPICH's and Open MPI's,
//! dynamic: as MPI codes are built), for the test suite only.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use crate::error::Error;
use crate::step;

const GCC_FIX: &str = "install Debian packages gcc libc6-dev";
/// Flags for `apps/*.c`.
pub const STATIC: &[&str] = &["-static", "-O2", "-Wall", "-Werror"];
/// Flags for `apps/dynamic/*.c` (gcc's defaults: dynamic, PIE) and `apps/mpi/*.c`.
pub const DYNAMIC: &[&str] = &["-O2", "-Wall", "-Werror"];

/// The C compiler of `apps/*.c` and `apps/dynamic/*.c`.
pub const GCC: &str = "gcc";
/// An MPI implementation the tests build `apps/mpi/*.c` with and launch under.
pub struct Mpi {
    /// Its compiler wrapper and launcher, by the names Debian gives them beside
    /// the `mpicc`/`mpiexec` alternatives (which point at one of them).
    pub tools: [&'static str; 2],
    /// Where its builds of `apps/mpi/*.c` go, under the apps directory.
    pub subdir: &'static str,
    /// What installs it.
    pub fix: &'static str,
}

/// MPICH (`mpiexec` is its hydra launcher); its programs are `<apps>/<name>`.
pub const MPICH: Mpi = Mpi {
    tools: ["mpicc.mpich", "mpiexec.mpich"],
    subdir: "",
    fix: "install Debian packages mpich libmpich-dev (the MPI tests run \
          `mpiexec -n 2 mote run -- ...`)",
};
/// Open MPI (`mpirun`); its programs are `<apps>/openmpi/<name>`.
pub const OPENMPI: Mpi = Mpi {
    tools: ["mpicc.openmpi", "mpirun.openmpi"],
    subdir: "openmpi",
    fix: "install Debian packages openmpi-bin libopenmpi-dev (the MPI tests run \
          `mpirun -n 2 mote run -- ...`)",
};

impl Mpi {
    /// Its compiler wrapper and launcher must run.
    pub fn check(&self) -> Result<(), Error> {
        for tool in self.tools {
            let ok = Command::new(tool)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success());
            if !ok {
                return Err(Error::Missing {
                    what: tool.to_string(),
                    fix: self.fix,
                });
            }
        }
        Ok(())
    }
}

/// Both MPI implementations the tests launch under.
pub fn check_mpi() -> Result<(), Error> {
    MPICH.check()?;
    OPENMPI.check()
}

/// Slurm's daemons, client and MUNGE: the `srun` tests start a Slurm of their own.
pub fn check_slurm() -> Result<(), Error> {
    for tool in ["munged", "slurmctld", "slurmd", "srun", "sinfo"] {
        let found = ["/usr/bin", "/usr/sbin", "/bin", "/sbin"]
            .iter()
            .any(|dir| Path::new(dir).join(tool).is_file());
        if !found {
            return Err(Error::Missing {
                what: tool.to_string(),
                fix: "install Debian packages slurmctld slurmd slurm-client munge (the srun \
                      tests start a single-node Slurm of their own)",
            });
        }
    }
    Ok(())
}

/// gcc must run and find a static libc (`libc.a`, from libc6-dev).
pub fn check_prerequisites() -> Result<(), Error> {
    let out = Command::new("gcc")
        .arg("-print-file-name=libc.a")
        .output()
        .map_err(|e| Error::Missing {
            what: format!("gcc ({e})"),
            fix: GCC_FIX,
        })?;
    // gcc prints the bare name back when it cannot find the file.
    let libc = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if !out.status.success() || !libc.is_absolute() || !libc.is_file() {
        return Err(Error::Missing {
            what: "the static C library libc.a".into(),
            fix: GCC_FIX,
        });
    }
    Ok(())
}

fn modified(path: &Path) -> Option<SystemTime> {
    fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Flags a program asks for on its first line: `// mote-cflags: -fopenmp`.
fn extra_cflags(src: &Path) -> Vec<String> {
    let text = fs::read_to_string(src).unwrap_or_default();
    text.lines()
        .next()
        .and_then(|l| l.strip_prefix("// mote-cflags:"))
        .map(|f| f.split_whitespace().map(String::from).collect())
        .unwrap_or_default()
}

/// Compiles every `src_dir/*.c` into `out_dir/<name>` with `cc`, skipping
/// programs newer than their source (and than every `src_dir/*.h`). Returns the
/// programs.
pub fn build_all(
    src_dir: &Path,
    out_dir: &Path,
    cc: &str,
    cflags: &[&str],
) -> Result<Vec<PathBuf>, Error> {
    let io = |context: String| move |e| Error::Io { context, source: e };
    let mut sources = Vec::new();
    let mut newest_header = None;
    for entry in fs::read_dir(src_dir).map_err(io(format!("reading {}", src_dir.display())))? {
        let path = entry
            .map_err(io(format!("reading {}", src_dir.display())))?
            .path();
        match path.extension().and_then(|e| e.to_str()) {
            Some("c") => sources.push(path),
            Some("h") => newest_header = newest_header.max(modified(&path)),
            _ => {}
        }
    }
    sources.sort();
    fs::create_dir_all(out_dir).map_err(io(format!("creating {}", out_dir.display())))?;

    let mut built = 0;
    let mut programs = Vec::new();
    for src in &sources {
        let name = src.file_stem().expect("a .c file has a stem");
        let out = out_dir.join(name);
        let up_to_date = match (modified(&out), modified(src)) {
            (Some(o), Some(s)) => o >= s && newest_header.is_none_or(|h| o >= h),
            _ => false,
        };
        if !up_to_date {
            // Compile to a temporary name so a failed build never leaves a stale program.
            let tmp = out.with_extension("tmp");
            let mut cmd = Command::new(cc);
            cmd.args(cflags)
                .args(extra_cflags(src))
                .arg("-o")
                .arg(&tmp)
                .arg(src);
            let command = step::show(&cmd);
            let status = cmd
                .status()
                .map_err(io(format!("cannot run `{command}`")))?;
            if !status.success() {
                let _ = fs::remove_file(&tmp);
                return Err(Error::Step {
                    step: "build the apps",
                    command,
                    status: step::describe(status),
                    hint: "fix the compiler errors above",
                });
            }
            fs::rename(&tmp, &out).map_err(io(format!("renaming to {}", out.display())))?;
            built += 1;
        }
        programs.push(out);
    }
    println!(
        "apps: {} program(s) in {} ({built} rebuilt)",
        programs.len(),
        out_dir.display()
    );
    Ok(programs)
}
