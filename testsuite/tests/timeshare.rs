//! Time-sharing only when needed (`mote run --time-slice`): threads that spin on
//! each other without a system call on one LWK core finish as natively, because
//! the core preempts the running thread at the end of its slice while another
//! wants to run; a preempted thread resumes with every register, its flags, its
//! FP state and its FS base; a core with one thread takes no timer event; and
//! `--time-slice 0` keeps the cooperative switching. All on one core
//! (`--cores 1`), where nothing else would let the other thread run. The
//! program gives up with status 1 after 60 s without progress, so a regression
//! fails instead of hanging.

use mote_testsuite::{app, Platform, Program, Run};

/// The `--stats` time-sharing line: (preemptions, timer events) of each core.
fn time_sharing(run: &Run) -> (Vec<u64>, Vec<u64>) {
    let text = run.stderr_text();
    let line = text
        .lines()
        .find(|l| l.contains("time-sharing: "))
        .unwrap_or_else(|| panic!("no time-sharing line in --stats output\n{run:?}"));
    let counts = |after: &str| -> Vec<u64> {
        let rest = &line[line
            .find(after)
            .unwrap_or_else(|| panic!("{after:?} in {line:?}"))
            + after.len()..];
        rest.split(';')
            .next()
            .unwrap()
            .split_whitespace()
            .map_while(|w| w.parse().ok())
            .collect()
    };
    (
        counts("preemptions per core:"),
        counts("timer events per core:"),
    )
}

fn timeshare(pf: Platform, mode: &str) -> Program {
    Program::new(app("timeshare")).on(pf).arg(mode)
}

/// The native run and the mote run on one core with `--stats` (and `extra`).
fn one_core(p: &Program, extra: &[&str]) -> (Run, Run) {
    let native = p.native();
    assert_eq!(native.status, 0, "{native:?}");
    let mut args = vec!["--cores", "1", "--stats"];
    args.extend_from_slice(extra);
    let mote = p.mote_with(&args);
    mote_testsuite::assert_same(&native, &mote);
    (native, mote)
}

fn two_threads_handing_a_spinlock_back_and_forth_on_one_core_finish(pf: Platform) {
    let (native, mote) = one_core(&timeshare(pf, "spinlock"), &[]);
    assert!(
        native.stdout_text().starts_with("40 turns each, counter "),
        "{native:?}"
    );
    // Every hand-over needs the holder preempted: the waiter spins without a
    // system call.
    let (preempted, _) = time_sharing(&mote);
    assert!(preempted[0] >= 1, "{mote:?}");
}

fn four_cpu_bound_threads_on_one_core_all_make_progress(pf: Platform) {
    let (native, mote) = one_core(&timeshare(pf, "progress"), &[]);
    let text = native.stdout_text();
    for i in 0..4 {
        assert!(
            text.contains(&format!("thread {i} advanced\n")),
            "{native:?}"
        );
    }
    let (preempted, _) = time_sharing(&mote);
    assert!(preempted[0] >= 1, "{mote:?}");
}

/// The case of a program whose main thread polls a flag another thread
/// sets after sleeping 0.1 s: the sleeper's deadline passes while the main
/// thread computes, and the core's timer finds it.
fn a_thread_whose_sleep_ends_runs_beside_a_spinning_one(pf: Platform) {
    let (native, _) = one_core(&timeshare(pf, "sleeper"), &[]);
    assert_eq!(
        native.stdout_text(),
        "the flag was set after the sleep\n",
        "{native:?}"
    );
}

/// The Python program: the main thread polls a flag that another
/// thread sets after sleeping 0.1 s (before time-sharing it never saw it set).
/// The sleeper needs the GIL back, which CPython's timed wait for it asks the
/// polling thread to drop: both the deadline and the hand-over need the core's
/// timer.
fn python_main_thread_sees_the_flag_a_sleeping_thread_sets(pf: Platform) {
    // The real CPython binary (PATH may hold a wrapper script, e.g. pyenv's).
    let out = std::process::Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3 is needed for this test (it is on every machine of this kind)");
    let py = String::from_utf8(out.stdout).expect("utf-8 path");
    let script = "import threading, time\n\
                  flag = False\n\
                  def setter():\n    global flag\n    time.sleep(0.1)\n    flag = True\n\
                  t = threading.Thread(target=setter)\nt.start()\n\
                  while not flag:\n    pass\n\
                  t.join()\nprint('flag seen')\n";
    let p = Program::new(py.trim()).on(pf).args(["-c", script]);
    let (native, _) = one_core(&p, &[]);
    assert_eq!(native.stdout_text(), "flag seen\n", "{native:?}");
}

fn a_preempted_thread_resumes_with_its_registers_flags_fp_state_and_tls(pf: Platform) {
    let (native, mote) = one_core(&timeshare(pf, "registers"), &[]);
    assert_eq!(
        native.stdout_text(),
        "thread 0: 20 checks, 0 failed\nthread 1: 20 checks, 0 failed\n",
        "{native:?}"
    );
    // The checks ran across preemptions (each thread computes for many slices).
    let (preempted, _) = time_sharing(&mote);
    assert!(preempted[0] >= 1, "{mote:?}");
}

fn fwq_alone_on_its_core_takes_no_timer_event(pf: Platform) {
    let p = Program::new(app("fwq")).on(pf).arg("--quick");
    for cores in ["1", "2"] {
        let mote = p.mote_with(&["--cores", cores, "--stats"]);
        assert_eq!(mote.status, 0, "{mote:?}");
        assert!(mote.stdout_text().contains("samples="), "{mote:?}");
        let (preempted, events) = time_sharing(&mote);
        let n: usize = cores.parse().unwrap();
        assert_eq!(preempted, vec![0; n], "{mote:?}");
        assert_eq!(events, vec![0; n], "{mote:?}");
        assert!(
            mote.stderr_text().contains("(no timer started)"),
            "{mote:?}"
        );
    }
}

fn time_slice_0_keeps_the_cooperative_switching(pf: Platform) {
    let (_, mote) = one_core(&timeshare(pf, "yield"), &["--time-slice", "0"]);
    assert!(mote.stderr_text().contains("time-sharing: off"), "{mote:?}");
    let (preempted, events) = time_sharing(&mote);
    assert_eq!((preempted, events), (vec![0], vec![0]), "{mote:?}");
}

mote_testsuite::on_both_platforms!(
    two_threads_handing_a_spinlock_back_and_forth_on_one_core_finish,
    four_cpu_bound_threads_on_one_core_all_make_progress,
    a_thread_whose_sleep_ends_runs_beside_a_spinning_one,
    python_main_thread_sees_the_flag_a_sleeping_thread_sets,
    a_preempted_thread_resumes_with_its_registers_flags_fp_state_and_tls,
    fwq_alone_on_its_core_takes_no_timer_event,
    time_slice_0_keeps_the_cooperative_switching,
);
