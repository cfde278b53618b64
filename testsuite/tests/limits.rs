//! Resource limits that end in a signal (`apps/limits.c`), natively and under
//! mote: a write past `RLIMIT_FSIZE` raises `SIGXFSZ` for the writing thread — its
//! default action ends the run with 153, a handler runs, an ignored or blocked one
//! leaves `EFBIG` — and CPU time past `RLIMIT_CPU` raises `SIGXCPU` (152, or the
//! handler, and the soft limit goes up a second), past the hard limit `SIGKILL`
//! (137). Limits set before `mote run` (`ulimit -Sf`) are the application's, not
//! a reason for mote to fail; a hard limit mote cannot lift for its own guest
//! memory is refused with a message naming it.
//!
//! `RLIMIT_AS` and `RLIMIT_NOFILE` set by the program limit the program
//! (`limits as`, `limits nofile`), never mote's own mirror or descriptors;
//! soft limits set before the run (`ulimit -Sv`, `-Sn`, `-s`) are the
//! program's, hard ones below what mote needs for itself are refused with the
//! limit and the fix named.

use mote_testsuite::{app, assert_same, busybox, Platform, Program, Run, TempDir};

/// `limits fsize FILE ARGS` natively and under mote: same stdout and status, and
/// the file holds what the limit let through (4096 bytes) after each.
fn fsize(pf: Platform, args: &[&str]) -> (Run, Run) {
    let dir = TempDir::new("limits");
    let file = dir.path().join("out");
    let prog = Program::new(app("limits"))
        .on(pf)
        .arg("fsize")
        .arg(&file)
        .args(args);
    let native = prog.native();
    let native_len = std::fs::metadata(&file).map(|m| m.len());
    std::fs::remove_file(&file).expect("the native run wrote the file");
    let mote = prog.mote();
    let mote_len = std::fs::metadata(&file).map(|m| m.len());
    assert_same(&native, &mote);
    assert_eq!(native_len.ok(), Some(4096), "{native:?}");
    assert_eq!(mote_len.ok(), Some(4096), "{mote:?}");
    (native, mote)
}

/// Regression: the forwarded write returned `EFBIG` but `SIGXFSZ` stayed pending
/// in the proxy's offload thread, so the run ended with 0 and a truncated file.
fn write_past_rlimit_fsize_is_killed_by_sigxfsz_with_153(pf: Platform) {
    let (_, mote) = fsize(pf, &[]);
    assert_eq!(mote.status, 153, "{mote:?}");
    assert_eq!(mote.stdout_text(), "write: 4096\n", "{mote:?}");
    assert!(
        mote.stderr_text()
            .contains("mote: application killed by SIGXFSZ"),
        "{mote:?}"
    );
}

fn sigxfsz_handler_runs_and_the_write_fails_with_efbig(pf: Platform) {
    let (_, mote) = fsize(pf, &["handler"]);
    assert_eq!(mote.status, 0, "{mote:?}");
    assert_eq!(
        mote.stdout_text(),
        "write: 4096\nwrite: EFBIG\ncaught SIGXFSZ; SI_USER: yes; own pid: yes\n",
        "{mote:?}"
    );
}

fn ignored_sigxfsz_leaves_efbig(pf: Platform) {
    let (_, mote) = fsize(pf, &["ignore"]);
    assert_eq!(mote.status, 0, "{mote:?}");
    assert_eq!(
        mote.stdout_text(),
        "write: 4096\nwrite: EFBIG\n",
        "{mote:?}"
    );
}

fn blocked_sigxfsz_stays_pending_after_efbig(pf: Platform) {
    let (_, mote) = fsize(pf, &["block"]);
    assert_eq!(mote.status, 0, "{mote:?}");
    assert_eq!(
        mote.stdout_text(),
        "write: 4096\nwrite: EFBIG\npending: SIGXFSZ\n",
        "{mote:?}"
    );
}

/// The signal is the writing thread's (it does not block it; the main thread does).
fn sigxfsz_of_a_second_thread_ends_the_run(pf: Platform) {
    let (_, mote) = fsize(pf, &["thread"]);
    assert_eq!(mote.status, 153, "{mote:?}");
    assert_eq!(mote.stdout_text(), "write: 4096\n", "{mote:?}");
}

fn cpu(pf: Platform, args: &[&str]) -> Run {
    let (_, mote) = Program::new(app("limits"))
        .on(pf)
        .arg("cpu")
        .args(args)
        .same_as_native();
    mote
}

/// Regression (hosted): the application's process computed past `RLIMIT_CPU`
/// forever; the limit was the proxy's, whose own CPU time stayed small.
fn cpu_time_past_rlimit_cpu_is_killed_by_sigxcpu_with_152(pf: Platform) {
    let mote = cpu(pf, &[]);
    assert_eq!(mote.status, 152, "{mote:?}");
    assert_eq!(mote.stdout_text(), "computing\n", "{mote:?}");
}

fn sigxcpu_handler_runs_when_cpu_time_passes_rlimit_cpu(pf: Platform) {
    let mote = cpu(pf, &["handler"]);
    assert_eq!(mote.status, 0, "{mote:?}");
    assert_eq!(
        mote.stdout_text(),
        "computing\ncaught SIGXCPU\nsoft limit now: 2\n",
        "{mote:?}"
    );
}

/// Past the hard limit Linux sends SIGKILL, whatever the handler of SIGXCPU.
fn cpu_time_past_the_hard_rlimit_cpu_is_killed_by_sigkill_with_137(pf: Platform) {
    let mote = cpu(pf, &["hard"]);
    assert_eq!(mote.status, 137, "{mote:?}");
    assert_eq!(
        mote.stdout_text(),
        "computing\ncaught SIGXCPU\n",
        "{mote:?}"
    );
}

/// `ulimit -Sf 8` (4 KiB in sh's 512-byte blocks) before the run: mote starts (its guest memory is a
/// file larger than that; it lifts the limit for its own file only), and the
/// application's write past the limit is killed by SIGXFSZ (153) as natively.
/// Before, mote failed with 125: "cannot size guest memory ... File too large".
fn a_file_size_limit_set_before_the_run_is_the_application_s(pf: Platform) {
    let dir = TempDir::new("ulimit-f");
    let out = dir.path().join("out");
    let prog = Program::new(busybox())
        .on(pf)
        .under(["sh", "-c", "ulimit -Sf 8 && exec \"$0\" \"$@\""])
        .args(["dd", "if=/dev/zero", "bs=1024", "count=64"])
        .arg(format!("of={}", out.display()));
    let native = prog.native();
    let native_len = std::fs::metadata(&out).map(|m| m.len()).ok();
    let _ = std::fs::remove_file(&out);
    let mote = prog.mote();
    let mote_len = std::fs::metadata(&out).map(|m| m.len()).ok();
    assert_eq!(native.status, 153, "{native:?}");
    assert_eq!(mote.status, native.status, "{mote:?}");
    assert_eq!(mote_len, native_len, "{mote:?}");
}

/// A hard file-size limit below the guest memory, which mote may not lift
/// without CAP_SYS_RESOURCE: refused before anything runs, with the limit, the
/// cause and the fixes named (before: "File too large", no fix).
fn a_hard_file_size_limit_below_guest_memory_is_named(pf: Platform) {
    let run = Program::new(app("hello"))
        .on(pf)
        .under([
            "setpriv",
            "--inh-caps=-sys_resource",
            "--bounding-set=-sys_resource",
            "sh",
            "-c",
            "ulimit -f 8 && exec \"$0\" \"$@\"",
        ])
        .mote();
    assert_eq!(run.status, 125, "{run:?}");
    let err = run.stderr_text();
    assert!(
        err.contains("hard file-size limit (`ulimit -Hf`) of 4096 bytes")
            && err.contains("smaller --mem"),
        "{run:?}"
    );
}

/// Regression (issue 15): `setrlimit(RLIMIT_AS)` bound the whole `mote`
/// process: its mirror could not map the application's new memory (about 40
/// "ignored map-log entry ... ENOMEM" lines), `pthread_create` failed with
/// `EAGAIN` and `read()` into new memory with `EFAULT`.
fn rlimit_as_set_by_the_program_limits_its_own_mappings(pf: Platform) {
    let (_, mote) = Program::new(app("limits"))
        .on(pf)
        .arg("as")
        .same_as_native();
    assert_eq!(
        mote.stdout_text(),
        "soft: 512 MiB, hard unchanged: yes\n\
         reserve 1 GiB: ENOMEM\n\
         mmap 64 MiB: ok\n\
         read into it: 64\n\
         pthread_create: ok\n\
         malloc 768 MiB: NULL\n\
         sbrk 600 MiB: ENOMEM\n\
         mremap to 1 GiB: ENOMEM\n\
         32 MiB pieces until: ENOMEM (some mapped: yes)\n\
         after munmap, 32 MiB: ok\n\
         soft raised: ok\n\
         reserve 1 GiB: ok\n",
        "{mote:?}"
    );
    assert_eq!(mote.stderr_text(), "", "{mote:?}");
}

/// Regression (issue 15): `setrlimit(RLIMIT_NOFILE)` of 4 bound mote's own
/// descriptors: a `MAP_SHARED` mapping failed with `EINVAL` (the proxy could
/// not duplicate the file above its low numbers).
fn rlimit_nofile_set_by_the_program_limits_its_own_descriptors(pf: Platform) {
    let (_, mote) = Program::new(app("limits"))
        .on(pf)
        .arg("nofile")
        .same_as_native();
    assert_eq!(
        mote.stdout_text(),
        "soft: 8\n\
         opened 5 (last 7), then EMFILE\n\
         dup: EMFILE\n\
         dup2 onto 8: EBADF\n\
         dup2 onto 7: ok\n\
         fcntl(F_DUPFD, 8): EINVAL\n\
         fcntl(F_DUPFD, 3): EMFILE\n\
         pipe with one free: EMFILE\n\
         socketpair with one free: EMFILE\n\
         open with one free: ok (7)\n\
         MAP_SHARED of it: ELF\n\
         pipe with two free: ok\n\
         soft raised: ok\n\
         open: ok\n",
        "{mote:?}"
    );
    assert_eq!(mote.stderr_text(), "", "{mote:?}");
}

/// `ulimit -Sv` and `ulimit -Sn` before the run: the program starts with them
/// and is bound by them, as natively. Before, mote failed (status 125) with a
/// cause that was not the limit.
fn soft_limits_set_before_the_run_are_the_application_s(pf: Platform) {
    let (_, mote) = Program::new(app("limits"))
        .on(pf)
        .under([
            "sh",
            "-c",
            "ulimit -Sv 1048576 && ulimit -Sn 10 && exec \"$0\" \"$@\"",
        ])
        .arg("start")
        .same_as_native();
    assert_eq!(
        mote.stdout_text(),
        "RLIMIT_AS: 1048576 KiB\nRLIMIT_NOFILE: 10\nmmap 2 GiB: ENOMEM\n\
         opened 7 of 16, then EMFILE\n",
        "{mote:?}"
    );
    assert_eq!(mote.stderr_text(), "", "{mote:?}");
}

/// A stack limit before the run is the program's too (`ulimit -s`, as a
/// shell under mote reads it back).
fn a_stack_limit_set_before_the_run_is_the_application_s(pf: Platform) {
    let (_, mote) = Program::new(busybox())
        .on(pf)
        .under(["sh", "-c", "ulimit -s 1024 && exec \"$0\" \"$@\""])
        .args(["sh", "-c", "ulimit -s; ulimit -Hs"])
        .same_as_native();
    assert_eq!(mote.stdout_text(), "1024\n1024\n", "{mote:?}");
}

/// Hard limits below what mote needs for its own reservation and
/// descriptors (`ulimit -v` and `ulimit -n` set both soft and hard): without
/// `CAP_SYS_RESOURCE` refused before anything runs, naming the limit and the
/// fix (a soft limit, which mote applies to the program).
fn hard_address_space_and_descriptor_limits_are_refused_with_the_fix(pf: Platform) {
    for (ulimit, named, fix) in [
        ("ulimit -v 1048576", "`ulimit -Hv`", "`ulimit -Sv 1048576`"),
        ("ulimit -n 16", "`ulimit -Hn`", "`ulimit -Sn 16`"),
    ] {
        let run = Program::new(app("hello"))
            .on(pf)
            .under([
                "setpriv",
                "--inh-caps=-sys_resource",
                "--bounding-set=-sys_resource",
                "sh",
                "-c",
                &format!("{ulimit} && exec \"$0\" \"$@\""),
            ])
            .mote();
        assert_eq!(run.status, 125, "{run:?}");
        let err = run.stderr_text();
        assert!(err.contains(named) && err.contains(fix), "{run:?}");
        assert_eq!(run.stdout_text(), "", "{run:?}");
    }
}

/// With `CAP_SYS_RESOURCE` (run as root) mote lifts those hard limits for
/// itself and the program runs under them, as natively.
fn hard_limits_set_before_the_run_bind_the_program_when_mote_may_lift_them(pf: Platform) {
    let prog = Program::new(app("limits"))
        .on(pf)
        .under([
            "sh",
            "-c",
            "ulimit -v 1048576 && ulimit -n 10 && exec \"$0\" \"$@\"",
        ])
        .arg("start");
    let native = prog.native();
    if !native.stdout_text().contains("RLIMIT_AS: 1048576 KiB") {
        // The shell could not set them: nothing to compare.
        return;
    }
    let mote = prog.mote();
    let may_lift = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let hex = s
                .lines()
                .find_map(|l| l.strip_prefix("CapEff:"))?
                .trim()
                .to_owned();
            u64::from_str_radix(&hex, 16).ok()
        })
        .is_some_and(|caps| caps & (1 << 24) != 0);
    if may_lift {
        assert_same(&native, &mote);
        assert_eq!(mote.stderr_text(), "", "{mote:?}");
    } else {
        assert_eq!(mote.status, 125, "{mote:?}");
    }
}

mote_testsuite::on_both_platforms!(
    rlimit_as_set_by_the_program_limits_its_own_mappings,
    rlimit_nofile_set_by_the_program_limits_its_own_descriptors,
    soft_limits_set_before_the_run_are_the_application_s,
    a_stack_limit_set_before_the_run_is_the_application_s,
    hard_address_space_and_descriptor_limits_are_refused_with_the_fix,
    hard_limits_set_before_the_run_bind_the_program_when_mote_may_lift_them,
    a_file_size_limit_set_before_the_run_is_the_application_s,
    a_hard_file_size_limit_below_guest_memory_is_named,
    write_past_rlimit_fsize_is_killed_by_sigxfsz_with_153,
    sigxfsz_handler_runs_and_the_write_fails_with_efbig,
    ignored_sigxfsz_leaves_efbig,
    blocked_sigxfsz_stays_pending_after_efbig,
    sigxfsz_of_a_second_thread_ends_the_run,
    cpu_time_past_rlimit_cpu_is_killed_by_sigxcpu_with_152,
    sigxcpu_handler_runs_when_cpu_time_passes_rlimit_cpu,
    cpu_time_past_the_hard_rlimit_cpu_is_killed_by_sigkill_with_137,
);
