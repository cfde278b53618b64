//! What a fresh machine lacks, and getting it: the rustup target and components
//! of the pinned toolchain, the Debian packages the apps and the tests need, and
//! (for the test suite, as root) the hugetlbfs pages the hosted platform uses.
//!
//! Each prerequisite is checked by what it is for (does `gcc` find a static
//! libc? does `mpicc` run?), not by package name, so a machine that has the
//! tools from elsewhere is left alone. What is missing is installed when that
//! needs no one's permission — `rustup` is the user's own, `apt-get` only as
//! root — and otherwise the run stops with the one command that would install it.

use std::fs;
use std::path::Path;
use std::process::Command;

use crate::error::Error;
use crate::{apps, check_busybox, step};

use crate::guest::GUEST_TARGET;

/// The 2 MiB hugetlbfs pages reserved for the test suite (2 GiB), when Linux
/// has fewer and we run as root; the hosted platform uses them for large pages.
const HUGEPAGES: u64 = 1024;
const NR_HUGEPAGES: &str = "/proc/sys/vm/nr_hugepages";

/// A prerequisite: how to check it and which Debian packages provide it.
struct Need {
    what: &'static str,
    check: fn() -> Result<(), Error>,
    packages: &'static [&'static str],
}

/// gcc with a static libc: the demo and every test build `apps/*.c` with it.
const COMPILER: Need = Need {
    what: "gcc and a static libc",
    check: apps::check_prerequisites,
    packages: &["gcc", "libc6-dev"],
};
/// The static `/bin/busybox` the busybox tests run.
const BUSYBOX: Need = Need {
    what: "a static /bin/busybox",
    check: check_busybox,
    packages: &["busybox-static"],
};
/// MPICH's and Open MPI's compiler wrappers and launchers: the MPI tests.
const MPI: Need = Need {
    what: "MPICH and Open MPI",
    check: apps::check_mpi,
    packages: &["mpich", "libmpich-dev", "openmpi-bin", "libopenmpi-dev"],
};
/// Slurm and MUNGE: the `srun` tests start a single-node Slurm of their own.
const SLURM: Need = Need {
    what: "Slurm",
    check: apps::check_slurm,
    packages: &["slurmctld", "slurmd", "slurm-client", "munge"],
};

/// What `cargo xtask demo` needs.
pub fn for_demo(root: &Path) -> Result<(), Error> {
    guest_target(root)?;
    debian_packages(&[COMPILER])
}

/// What `cargo xtask test` needs: the demo's, rustfmt and clippy, busybox, MPICH,
/// Open MPI and Slurm; as root also the hugetlbfs pages.
pub fn for_test(root: &Path) -> Result<(), Error> {
    guest_target(root)?;
    components(root)?;
    debian_packages(&[COMPILER, BUSYBOX, MPI, SLURM])?;
    hugepages();
    Ok(())
}

/// Whether the standard library for the guest target is installed in the
/// toolchain that `root` selects (rust-toolchain.toml).
pub fn guest_target_installed(root: &Path) -> bool {
    let Ok(out) = Command::new("rustc")
        .args(["--print", "sysroot"])
        .current_dir(root)
        .output()
    else {
        return false;
    };
    let sysroot = String::from_utf8_lossy(&out.stdout).trim().to_string();
    out.status.success()
        && Path::new(&sysroot)
            .join("lib/rustlib")
            .join(GUEST_TARGET)
            .join("lib")
            .is_dir()
}

/// The guest target: `rustup target add` in the workspace, so the pinned
/// toolchain gets it.
fn guest_target(root: &Path) -> Result<(), Error> {
    if guest_target_installed(root) {
        return Ok(());
    }
    let mut cmd = Command::new("rustup");
    cmd.args(["target", "add", GUEST_TARGET]).current_dir(root);
    rustup(cmd, "install the guest target")?;
    if guest_target_installed(root) {
        Ok(())
    } else {
        Err(Error::Missing {
            what: format!("the {GUEST_TARGET} standard library after `rustup target add`"),
            fix: "check that `rustc --print sysroot` in the workspace is the rustup toolchain \
                  rust-toolchain.toml pins",
        })
    }
}

/// rustfmt and clippy, which `test` runs.
fn components(root: &Path) -> Result<(), Error> {
    let works = |tool: &str| {
        Command::new("cargo")
            .args([tool, "--version"])
            .current_dir(root)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if works("fmt") && works("clippy") {
        return Ok(());
    }
    let mut cmd = Command::new("rustup");
    cmd.args(["component", "add", "rustfmt", "clippy"])
        .current_dir(root);
    rustup(cmd, "install rustfmt and clippy")
}

/// Runs a `rustup` step; without rustup, says what to install by hand.
fn rustup(cmd: Command, step_name: &'static str) -> Result<(), Error> {
    let found = Command::new("rustup")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        return Err(Error::Missing {
            what: format!("rustup, to run `{}`", step::show(&cmd)),
            fix: "install Rust with rustup (https://rustup.rs), or install the target and \
                  components rust-toolchain.toml lists into your toolchain by hand",
        });
    }
    step::run(step_name, cmd, "see rustup's message above")
}

/// The Debian packages behind the `needs` that fail their check: installed
/// with apt-get when we are root, else the run stops with the command to run.
fn debian_packages(needs: &[Need]) -> Result<(), Error> {
    let missing: Vec<&Need> = needs.iter().filter(|n| (n.check)().is_err()).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let packages: Vec<&str> = missing.iter().flat_map(|n| n.packages).copied().collect();
    let what: Vec<&str> = missing.iter().map(|n| n.what).collect();
    let line = format!("apt-get install -y {}", packages.join(" "));
    let apt = Path::new("/usr/bin/apt-get").is_file();
    if !is_root() || !apt {
        let fix = if apt {
            format!("run `sudo {line}` (or run this command as root, which installs them)")
        } else {
            format!("install the equivalent of Debian's {}", packages.join(" "))
        };
        return Err(Error::Other(format!("missing {}: {fix}", what.join(", "))));
    }
    println!(
        "\nxtask: installing {} for {}",
        packages.join(" "),
        what.join(", ")
    );
    let mut update = Command::new("apt-get");
    update.arg("update");
    step::run(
        "update the package lists",
        update,
        "see apt-get's message above",
    )?;
    let mut install = Command::new("apt-get");
    install
        .args(["install", "-y", "--no-install-recommends"])
        .args(&packages)
        .env("DEBIAN_FRONTEND", "noninteractive");
    step::run(
        "install Debian packages",
        install,
        "see apt-get's message above",
    )?;
    // Each check again: the packages must have given what they are for.
    for need in missing {
        (need.check)()?;
    }
    Ok(())
}

/// As root, tops `nr_hugepages` up to [`HUGEPAGES`]; otherwise, or when Linux
/// cannot find the memory, the hosted runs use 4 KiB pages and the tests that
/// check page sizes say so.
fn hugepages() {
    let now = fs::read_to_string(NR_HUGEPAGES)
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    let Some(now) = now else { return };
    if now >= HUGEPAGES || !is_root() {
        return;
    }
    match fs::write(NR_HUGEPAGES, HUGEPAGES.to_string()) {
        Ok(()) => println!(
            "\nxtask: reserved {HUGEPAGES} hugetlbfs pages of 2 MiB ({NR_HUGEPAGES} was {now}) \
             for the hosted platform's large pages"
        ),
        Err(e) => eprintln!(
            "xtask: cannot reserve hugetlbfs pages ({e}); the hosted platform runs on 4 KiB pages"
        ),
    }
}

/// Whether we run with effective user id 0 (from /proc, without libc).
fn is_root() -> bool {
    fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1).map(|e| e == "0"))
            .unwrap_or(false)
    })
}
