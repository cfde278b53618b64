//! MPI on one node, as HPC users launch it: each launcher runs `mote run -- ./app`
//! once per rank, against the same launch of `./app` natively. Each rank is a
//! mote run of its own; the ranks talk through shared memory, sockets, the
//! process manager's pipes and `process_vm_readv`, all passed through to Linux.
//!
//! - MPICH (Debian's, UCX transport): `mpiexec` (hydra) with its default (no
//!   binding) and `-bind-to core`;
//! - Open MPI (Debian's, its shared-memory transport with single copy):
//!   `mpirun` with its default (one core per rank for two ranks) and
//!   `--bind-to none`;
//! - Slurm: `srun -n 2` against a single-node Slurm the test starts itself,
//!   tasks bound one CPU each (`task/affinity`), MPICH through PMI-2.

use std::ffi::OsString;

use mote_testsuite::slurm::Slurm;
use mote_testsuite::{app, artifacts, Platform, Program};

/// The ranks' lines, sorted (they print in any order).
fn sorted_lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    lines.sort();
    lines
}

/// The test's environment plus `extra`.
fn env_with(extra: &[(&str, OsString)]) -> Vec<(OsString, OsString)> {
    std::env::vars_os()
        .chain(extra.iter().map(|(k, v)| (OsString::from(k), v.clone())))
        .collect()
}

/// Open MPI refuses to start as root without being told twice (CI runs as root).
fn openmpi_env() -> Vec<(OsString, OsString)> {
    env_with(&[
        ("OMPI_ALLOW_RUN_AS_ROOT", "1".into()),
        ("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1".into()),
    ])
}

/// `LAUNCHER... prog` natively and `LAUNCHER... mote run --platform P
/// MOTE_OPTIONS -- prog` print the same lines (in any order), and both end 0.
fn ranks_as_natively(
    pf: Platform,
    launcher: &[&str],
    env: Vec<(OsString, OsString)>,
    mote_options: &[&str],
    prog: &str,
) {
    let prog = app(prog);
    let native = Program::new(launcher[0])
        .args(&launcher[1..])
        .env_exact(env.clone())
        .arg(&prog)
        .native();
    assert_eq!(native.status, 0, "{native:?}");
    let mote = Program::new(launcher[0])
        .args(&launcher[1..])
        .env_exact(env)
        .arg(&artifacts().mote)
        .arg("run")
        .args(pf.options())
        .args(mote_options)
        .arg("--")
        .arg(&prog)
        .native();
    assert_eq!(mote.status, 0, "{mote:?}");
    let want = sorted_lines(&native.stdout_text());
    assert_eq!(want.len(), 2, "{native:?}");
    assert_eq!(sorted_lines(&mote.stdout_text()), want, "{mote:?}");
    assert_eq!(mote.stderr_text(), native.stderr_text(), "{mote:?}");
}

/// MPICH's ranks run UCX's progress thread beside the main thread. With one LWK
/// core per rank, the main thread can spin in `pthread_spin_lock` on a lock the
/// progress thread holds, and libos, which does not preempt a spinning thread,
/// hangs in MPI_Finalize (README, "MPI"): two LWK cores per rank until it does.
const MPICH_CORES: &[&str] = &["--cores", "2"];

fn two_ranks_exchange_messages_and_reduce_as_natively(pf: Platform) {
    ranks_as_natively(
        pf,
        &["mpiexec.mpich", "-n", "2"],
        env_with(&[]),
        MPICH_CORES,
        "mpi_ring",
    );
}

fn mpich_mpiexec_bound_to_cores(pf: Platform) {
    ranks_as_natively(
        pf,
        &["mpiexec.mpich", "-bind-to", "core", "-n", "2"],
        env_with(&[]),
        MPICH_CORES,
        "mpi_ring",
    );
}

fn openmpi_mpirun_default_binding_one_lwk_core_per_rank(pf: Platform) {
    ranks_as_natively(
        pf,
        &["mpirun.openmpi", "-n", "2"],
        openmpi_env(),
        &[],
        "openmpi/mpi_ring",
    );
}

fn openmpi_mpirun_bound_to_nothing(pf: Platform) {
    ranks_as_natively(
        pf,
        &["mpirun.openmpi", "--bind-to", "none", "-n", "2"],
        openmpi_env(),
        &[],
        "openmpi/mpi_ring",
    );
}

fn srun_two_ranks_under_a_single_node_slurm(pf: Platform) {
    let slurm = Slurm::start();
    let env = env_with(&[("SLURM_CONF", slurm.conf().into())]);
    // `--quiet`: without it srun says on stderr when a job waited for the
    // previous one's resources to be released, which the two runs may or may not.
    ranks_as_natively(
        pf,
        &["srun", "--quiet", "-n", "2"],
        env,
        MPICH_CORES,
        "mpi_ring",
    );
}

mote_testsuite::on_both_platforms!(
    two_ranks_exchange_messages_and_reduce_as_natively,
    mpich_mpiexec_bound_to_cores,
    openmpi_mpirun_default_binding_one_lwk_core_per_rank,
    openmpi_mpirun_bound_to_nothing,
    srun_two_ranks_under_a_single_node_slurm,
);
