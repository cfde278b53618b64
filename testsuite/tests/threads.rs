//! Threads in the partition: pthreads, OpenMP and raw futexes under mote with 1, 2
//! and 4 LWK cores give the native output; a thread can end the whole run.

use mote_testsuite::{app, Program};

const CORES: [&str; 3] = ["1", "2", "4"];

#[test]
fn pthreads_mutex_condvar_barrier_atomics_join_on_1_2_4_cores() {
    let p = Program::new(app("threads"));
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

#[test]
fn raw_futex_operations_and_a_thread_blocked_in_linux() {
    let p = Program::new(app("futex"));
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

fn omp(threads_var: Option<&str>) -> Program {
    let mut env = vec![("PATH", "/usr/bin:/bin".to_string())];
    if let Some(n) = threads_var {
        env.push(("OMP_NUM_THREADS", n.to_string()));
    }
    Program::new(app("omp")).env_exact(env)
}

#[test]
fn openmp_uses_the_partitions_cores_by_default() {
    for cores in CORES {
        // Natively with as many threads as the partition has cores: the same
        // reduction order, so the same digits.
        let native = omp(Some(cores)).native();
        let mote = omp(None).mote_with(&["--cores", cores]);
        mote_testsuite::assert_same(&native, &mote);
        assert!(
            mote.stdout_text()
                .starts_with(&format!("threads {cores}\n")),
            "{mote:?}"
        );
    }
}

#[test]
fn openmp_honours_omp_num_threads() {
    let native = omp(Some("3")).native();
    for cores in ["1", "2"] {
        let mote = omp(Some("3")).mote_with(&["--cores", cores]);
        mote_testsuite::assert_same(&native, &mote);
    }
    assert!(native.stdout_text().starts_with("threads 3\n"));
}

#[test]
fn a_thread_ends_the_run_while_another_blocks_in_linux() {
    for cores in ["1", "2"] {
        let p = Program::new(app("thread_end")).arg("exit");
        let native = p.native();
        assert_eq!(native.status, 3, "{native:?}");
        mote_testsuite::assert_same(&native, &p.mote_with(&["--cores", cores]));

        let p = Program::new(app("thread_end")).arg("segv");
        let native = p.native();
        assert_eq!(native.status, 139, "{native:?}");
        let mote = p.mote_with(&["--cores", cores]);
        mote_testsuite::assert_same(&native, &mote);
        assert!(mote.stderr_text().contains("SIGSEGV"), "{mote:?}");
    }
}

#[test]
fn the_partition_shows_as_many_cpus_as_cores() {
    let mote = Program::new(app("partition")).mote_with(&["--cores", "4"]);
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

#[test]
fn signals_reach_the_threads_they_are_for() {
    let p = Program::new(app("thread_signals"));
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
#[test]
fn too_many_threads_is_eagain_not_a_crash() {
    let run = Program::new(app("manythreads")).mote();
    assert_eq!(run.status, 0, "{run:?}");
    let text = run.stdout_text();
    assert!(text.ends_with("joined all\n"), "{run:?}");
    assert!(text.starts_with("created "), "{run:?}");
}
