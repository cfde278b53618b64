//! MPI on one node, as an HPC user runs it: `mpiexec -n 2 mote run -- ./app`
//! (Debian's MPICH, its UCX transport), against `mpiexec -n 2 ./app` natively.
//! Each rank is a mote run of its own; the ranks talk through shared memory,
//! sockets and the process manager's pipes, all passed through to Linux.

use mote_testsuite::{app, artifacts, Platform, Program};

/// The ranks' lines, sorted (they print in any order).
fn sorted_lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    lines.sort();
    lines
}

fn two_ranks_exchange_messages_and_reduce_as_natively(pf: Platform) {
    let prog = app("mpi_ring");
    let native = Program::new("mpiexec")
        .args(["-n", "2"])
        .arg(&prog)
        .native();
    assert_eq!(native.status, 0, "{native:?}");
    let mote = Program::new("mpiexec")
        .args(["-n", "2"])
        .arg(&artifacts().mote)
        .arg("run")
        .args(pf.options())
        // Two LWK cores per rank: UCX's progress thread goes on the second
        // (libos places threads on the least loaded core). One core per rank:
        // `one_lwk_core_per_rank_never_hangs_in_mpi_finalize`.
        .args(["--cores", "2"])
        .arg("--")
        .arg(&prog)
        .native();
    assert_eq!(mote.status, 0, "{mote:?}");
    let want = sorted_lines(&native.stdout_text());
    assert_eq!(want.len(), 2, "{native:?}");
    assert_eq!(sorted_lines(&mote.stdout_text()), want, "{mote:?}");
}

/// Regression: with one LWK core per rank, UCX's progress thread shares the
/// main thread's core, and the main thread can spin in `pthread_spin_lock` on a
/// lock the progress thread holds; before time-sharing about one
/// `MPI_Finalize` in three hung for ever on the hosted platform. Ten runs in a
/// row, each as natively (a hang fails at the harness's time limit).
fn one_lwk_core_per_rank_never_hangs_in_mpi_finalize(pf: Platform) {
    let prog = app("mpi_ring");
    let native = Program::new("mpiexec")
        .args(["-n", "2"])
        .arg(&prog)
        .native();
    assert_eq!(native.status, 0, "{native:?}");
    let want = sorted_lines(&native.stdout_text());
    for _ in 0..10 {
        let mote = Program::new("mpiexec")
            .args(["-n", "2"])
            .arg(&artifacts().mote)
            .arg("run")
            .args(pf.options())
            .args(["--cores", "1"])
            .arg("--")
            .arg(&prog)
            .native();
        assert_eq!(mote.status, 0, "{mote:?}");
        assert_eq!(sorted_lines(&mote.stdout_text()), want, "{mote:?}");
    }
}

mote_testsuite::on_both_platforms!(
    two_ranks_exchange_messages_and_reduce_as_natively,
    one_lwk_core_per_rank_never_hangs_in_mpi_finalize,
);
