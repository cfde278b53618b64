//! Threads in the partition: pthreads, OpenMP and raw futexes under mote with 1, 2
//! and 4 LWK cores give the native output; a thread can end the whole run.

use mote_testsuite::{app, Platform, Program};

const CORES: [&str; 3] = ["1", "2", "4"];

fn pthreads_mutex_condvar_barrier_atomics_join_on_1_2_4_cores(pf: Platform) {
    let p = Program::new(app("threads")).on(pf);
    let native = p.native();
    assert_eq!(native.status, 0, "{native:?}");
    for cores in CORES {
        let mote = p.mote_with(&["--cores", cores]);
        mote_testsuite::assert_same(&native, &mote);
    }
    assert!(native
        .stdout_text()
        .contains("mutex counter 16000, atomic counter 16000, join total 28140"));
}

fn raw_futex_operations_and_a_thread_blocked_in_linux(pf: Platform) {
    let p = Program::new(app("futex")).on(pf);
    let native = p.native();
    assert_eq!(native.status, 0, "{native:?}");
    for cores in CORES {
        let mote = p.mote_with(&["--cores", cores]);
        mote_testsuite::assert_same(&native, &mote);
    }
    let text = native.stdout_text();
    assert!(text.contains("wait with timeout: ETIMEDOUT"), "{text}");
    assert!(text.contains("reader: got 5 bytes: hello"), "{text}");
}

fn omp(pf: Platform, threads_var: Option<&str>) -> Program {
    let mut env = vec![("PATH", "/usr/bin:/bin".to_string())];
    if let Some(n) = threads_var {
        env.push(("OMP_NUM_THREADS", n.to_string()));
    }
    Program::new(app("omp")).on(pf).env_exact(env)
}

fn openmp_uses_the_partitions_cores_by_default(pf: Platform) {
    for cores in CORES {
        // Natively with as many threads as the partition has cores: the same
        // reduction order, so the same digits.
        let native = omp(pf, Some(cores)).native();
        let mote = omp(pf, None).mote_with(&["--cores", cores]);
        mote_testsuite::assert_same(&native, &mote);
        assert!(
            mote.stdout_text()
                .starts_with(&format!("threads {cores}\n")),
            "{mote:?}"
        );
    }
}

fn openmp_honours_omp_num_threads(pf: Platform) {
    let native = omp(pf, Some("3")).native();
    for cores in ["1", "2"] {
        let mote = omp(pf, Some("3")).mote_with(&["--cores", cores]);
        mote_testsuite::assert_same(&native, &mote);
    }
    assert!(native.stdout_text().starts_with("threads 3\n"));
}

fn a_thread_ends_the_run_while_another_blocks_in_linux(pf: Platform) {
    for cores in ["1", "2"] {
        let p = Program::new(app("thread_end")).on(pf).arg("exit");
        let native = p.native();
        assert_eq!(native.status, 3, "{native:?}");
        mote_testsuite::assert_same(&native, &p.mote_with(&["--cores", cores]));

        let p = Program::new(app("thread_end")).on(pf).arg("segv");
        let native = p.native();
        assert_eq!(native.status, 139, "{native:?}");
        let mote = p.mote_with(&["--cores", cores]);
        mote_testsuite::assert_same(&native, &mote);
        assert!(mote.stderr_text().contains("SIGSEGV"), "{mote:?}");
    }
}

fn the_partition_shows_as_many_cpus_as_cores(pf: Platform) {
    let mote = Program::new(app("partition"))
        .on(pf)
        .mote_with(&["--cores", "4"]);
    assert_eq!(mote.status, 0, "{mote:?}");
    let out = mote.stdout_text();
    for line in [
        "nprocs_onln: 4",
        "nprocs_conf: 4",
        "affinity: 4 cpus",
        "/sys/devices/system/cpu/online: 0-3",
        "/proc/cpuinfo: 4 lines starting 'processor'",
        "/proc/self/status: Cpus_allowed_list:\t0-3",
    ] {
        assert!(out.lines().any(|l| l == line), "missing {line:?} in\n{out}");
    }
}

fn signals_reach_the_threads_they_are_for(pf: Platform) {
    let p = Program::new(app("thread_signals")).on(pf);
    let native = p.native();
    assert_eq!(native.status, 0, "{native:?}");
    for cores in ["1", "2"] {
        mote_testsuite::assert_same(&native, &p.mote_with(&["--cores", cores]));
    }
    assert!(native
        .stdout_text()
        .contains("taken by the only thread not blocking it: yes"));
}

/// Regression: a thread past the runtime's memory for thread stacks panicked the
/// runtime; it is refused with EAGAIN now, and the others run on.
fn too_many_threads_is_eagain_not_a_crash(pf: Platform) {
    let run = Program::new(app("manythreads")).on(pf).mote();
    assert_eq!(run.status, 0, "{run:?}");
    let text = run.stdout_text();
    assert!(text.ends_with("joined all\n"), "{run:?}");
    assert!(text.starts_with("created "), "{run:?}");
}

mote_testsuite::on_both_platforms!(
    pthreads_mutex_condvar_barrier_atomics_join_on_1_2_4_cores,
    raw_futex_operations_and_a_thread_blocked_in_linux,
    openmp_uses_the_partitions_cores_by_default,
    openmp_honours_omp_num_threads,
    a_thread_ends_the_run_while_another_blocks_in_linux,
    the_partition_shows_as_many_cpus_as_cores,
    signals_reach_the_threads_they_are_for,
    too_many_threads_is_eagain_not_a_crash,
);
