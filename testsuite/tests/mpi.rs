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
        // (libos places threads on the least loaded core). With one, it shares
        // the main thread's core, where the main thread can spin in
        // `pthread_spin_lock` on a lock the progress thread holds and libos,
        // which never preempts a spinning thread, hangs in MPI_Finalize
        // (README, "MPI").
        .args(["--cores", "2"])
        .arg("--")
        .arg(&prog)
        .native();
    assert_eq!(mote.status, 0, "{mote:?}");
    let want = sorted_lines(&native.stdout_text());
    assert_eq!(want.len(), 2, "{native:?}");
    assert_eq!(sorted_lines(&mote.stdout_text()), want, "{mote:?}");
}

mote_testsuite::on_both_platforms!(two_ranks_exchange_messages_and_reduce_as_natively);
