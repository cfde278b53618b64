//! One test list, run on each platform (`mote run --platform P`), compared with
//! native Linux: the behaviour of the hosted platform (issue 6: the runtime in
//! an ordinary Linux process, system calls caught by Syscall User Dispatch)
//! cannot drift from the partition's.
//!
//! Every case is a function of the platform's options; `for_every_case!` makes
//! one `#[test]` per case and platform (`hosted::hello`, `kvm::hello`, ...). The
//! per-area files (`apps.rs`, `shared.rs`, `threads.rs`, ...) go deeper on the
//! partition; a case here is what both platforms must show alike.

use mote_testsuite::{app, assert_same, busybox, Program, Run, TempDir};

/// `same_as_native` on the given platform.
fn same(p: &Program, platform: &[&str]) -> Run {
    let native = p.native();
    let mote = p.mote_with(platform);
    assert_same(&native, &mote);
    mote
}

fn last_line_is(run: &Run, line: &str) {
    assert_eq!(run.status, 0, "{run:?}");
    assert_eq!(
        run.stdout_text().lines().last(),
        Some(line),
        "expected the program to end with {line:?}\n{run:?}"
    );
}

mod cases {
    use super::*;

    pub fn hello(pf: &[&str]) {
        let run = same(&Program::new(app("hello")).args(["a", "b"]), pf);
        assert_eq!(
            run.stdout_text(),
            "Hello, world! I am a static x86_64 program with argc=3.\n"
        );
    }

    pub fn printargs_exact_environment(pf: &[&str]) {
        let run = same(
            &Program::new(app("printargs"))
                .args(["one", "", "two words", "ünïcödé"])
                .env_exact([("PATH", "/usr/bin:/bin"), ("EMPTY", ""), ("A", "b=c")]),
            pf,
        );
        assert!(run.stdout_text().starts_with("argc=5\n"), "{run:?}");
        assert!(run.stdout_text().ends_with("envc=4\n"), "{run:?}");
    }

    pub fn fileio(pf: &[&str]) {
        let tmp = TempDir::new("platform-fileio");
        let mut vars: Vec<(String, String)> = std::env::vars().collect();
        vars.retain(|(k, _)| k != "TMPDIR");
        vars.push(("TMPDIR".into(), tmp.path().display().to_string()));
        let run = same(&Program::new(app("fileio")).env_exact(vars), pf);
        last_line_is(&run, "fileio: all checks passed");
    }

    pub fn exit42(pf: &[&str]) {
        let run = same(&Program::new(app("exit42")), pf);
        assert_eq!(run.status, 42);
    }

    pub fn segv(pf: &[&str]) {
        let run = same(&Program::new(app("segv")), pf);
        assert_eq!(run.status, 139);
        assert_eq!(run.stdout_text(), "segv: about to write through 0x1234\n");
        let err = run.stderr_text();
        assert!(
            err.lines()
                .any(|l| l.starts_with("mote: ") && l.contains("SIGSEGV")),
            "{run:?}"
        );
        assert!(err.contains("0x1234"), "{run:?}");
    }

    pub fn catstdin(pf: &[&str]) {
        let data: Vec<u8> = (0..(256 << 10)).map(|i: u32| (i % 251) as u8).collect();
        let run = same(&Program::new(app("catstdin")).stdin(data.clone()), pf);
        assert_eq!(run.stdout, data);
    }

    pub fn bigmalloc(pf: &[&str]) {
        let run = same(&Program::new(app("bigmalloc")), pf);
        assert!(run
            .stdout_text()
            .contains("touched and verified 131072 pages"));
    }

    pub fn mmapcycle(pf: &[&str]) {
        let run = same(&Program::new(app("mmapcycle")), pf);
        last_line_is(&run, "mmapcycle: all checks passed");
    }

    pub fn sbrk(pf: &[&str]) {
        let run = same(&Program::new(app("sbrk")), pf);
        last_line_is(&run, "sbrk: all checks passed");
    }

    pub fn clocks(pf: &[&str]) {
        let run = same(&Program::new(app("clocks")), pf);
        assert!(run
            .stdout_text()
            .contains("a 200 ms sleep measures at least 200 ms on both clocks"));
    }

    pub fn execve(pf: &[&str]) {
        let run = same(&Program::new(app("execve_echo")), pf);
        assert!(run.stdout_text().ends_with("hi\n"), "{run:?}");
    }

    pub fn busybox_shell(pf: &[&str]) {
        let run = same(
            // No pipeline: creating processes (fork) is not implemented yet.
            &Program::new(busybox()).args(["sh", "-c", "echo one; echo two; exit 3"]),
            pf,
        );
        assert_eq!(run.status, 3);
    }

    pub fn dynamic_sort(pf: &[&str]) {
        let dir = TempDir::new("platform-sort");
        let text: String = (0..500)
            .map(|i| format!("{}\n", (i * 7919) % 503))
            .collect();
        let f = dir.file("numbers", text);
        let sort = ["/usr/bin/sort", "/bin/sort"]
            .into_iter()
            .find(|p| std::path::Path::new(p).is_file())
            .expect("sort");
        same(&Program::new(sort).arg("-n").arg(&f), pf);
    }

    pub fn dlopen(pf: &[&str]) {
        let run = same(&Program::new(app("dlopen_cos")), pf);
        assert!(run.stdout_text().contains("cos(1) = 0.540302305868"));
    }

    /// `--cores N` added to the platform's options.
    fn with_cores<'a>(pf: &[&'a str], cores: &'a str) -> Vec<&'a str> {
        let mut v = pf.to_vec();
        v.extend(["--cores", cores]);
        v
    }

    pub fn threads_on_1_2_4_cores(pf: &[&str]) {
        let p = Program::new(app("threads"));
        let native = p.native();
        for cores in ["1", "2", "4"] {
            assert_same(&native, &p.mote_with(&with_cores(pf, cores)));
        }
        assert!(native
            .stdout_text()
            .contains("mutex counter 16000, atomic counter 16000, join total 28140"));
    }

    pub fn futex_on_1_2_4_cores(pf: &[&str]) {
        let p = Program::new(app("futex"));
        let native = p.native();
        for cores in ["1", "2", "4"] {
            assert_same(&native, &p.mote_with(&with_cores(pf, cores)));
        }
        assert!(native.stdout_text().contains("reader: got 5 bytes: hello"));
    }

    pub fn openmp_on_2_cores(pf: &[&str]) {
        let omp = |n: Option<&str>| {
            let mut env = vec![("PATH", "/usr/bin:/bin")];
            env.extend(n.map(|n| ("OMP_NUM_THREADS", n)));
            Program::new(app("omp")).env_exact(env)
        };
        let native = omp(Some("2")).native();
        let run = omp(None).mote_with(&with_cores(pf, "2"));
        assert_same(&native, &run);
        assert!(run.stdout_text().starts_with("threads 2\n"), "{run:?}");
    }

    pub fn a_thread_faults_on_2_cores(pf: &[&str]) {
        let p = Program::new(app("thread_end")).arg("segv");
        let native = p.native();
        assert_eq!(native.status, 139, "{native:?}");
        let run = p.mote_with(&with_cores(pf, "2"));
        assert_same(&native, &run);
        assert!(run.stderr_text().contains("SIGSEGV"), "{run:?}");
    }

    pub fn thread_ends_the_run(pf: &[&str]) {
        let run = same(&Program::new(app("thread_end")).arg("exit"), pf);
        assert_eq!(run.status, 3);
    }

    pub fn shared_file_written_through_map_shared(pf: &[&str]) {
        let dir = TempDir::new("platform-shmfile");
        let (n, m) = (dir.path().join("native"), dir.path().join("mote"));
        let native = Program::new(app("shmfile")).arg(&n).native();
        let run = Program::new(app("shmfile")).arg(&m).mote_with(pf);
        assert_same(&native, &run);
        assert!(run.stdout_text().contains("all checks passed"), "{run:?}");
        assert_eq!(std::fs::read(&m).unwrap(), std::fs::read(&n).unwrap());
    }

    /// `shmfault MODE FILE` on both sides (each its own copy of `contents`):
    /// same output and status.
    fn shmfault(pf: &[&str], mode: &str, contents: &str) -> Run {
        let dir = TempDir::new("platform-shmfault");
        let (n, m) = (dir.file("native", contents), dir.file("mote", contents));
        let native = Program::new(app("shmfault")).arg(mode).arg(&n).native();
        let run = Program::new(app("shmfault"))
            .arg(mode)
            .arg(&m)
            .mote_with(pf);
        assert_same(&native, &run);
        assert_eq!(std::fs::read(&m).unwrap(), std::fs::read(&n).unwrap());
        run
    }

    pub fn shared_mapping_faults(pf: &[&str]) {
        let ro = shmfault(pf, "ro", "read me\n");
        assert_eq!(ro.status, 139);
        assert!(ro.stderr_text().contains("SIGSEGV"), "{ro:?}");
        let eof = shmfault(pf, "eof", "x");
        assert_eq!(eof.status, 135);
        assert!(eof.stderr_text().contains("SIGBUS"), "{eof:?}");
        let trunc = shmfault(pf, "trunc", "");
        assert_eq!(trunc.status, 135);
        assert!(trunc.stderr_text().contains("SIGBUS"), "{trunc:?}");
    }

    pub fn posix_shm_aliases(pf: &[&str]) {
        let name = |side: &str| format!("/mote-platform-shm-{side}-{}", std::process::id());
        let native = Program::new(app("shm_posix")).arg(name("n")).native();
        let run = Program::new(app("shm_posix")).arg(name("m")).mote_with(pf);
        assert_same(&native, &run);
        assert_eq!(
            run.stdout_text(),
            "two mappings of one shm object alias: yes\n"
        );
    }

    pub fn ping_pong_with_a_native_process(pf: &[&str]) {
        let path = std::path::Path::new("/dev/shm")
            .join(format!("mote-platform-pingpong-{}", std::process::id()));
        std::fs::write(&path, [0u8; 4096]).unwrap();
        let peer = std::process::Command::new(app("shmpingpong"))
            .arg(&path)
            .args(["b", "10000"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("start the native peer");
        let run = Program::new(app("shmpingpong"))
            .arg(&path)
            .args(["a", "10000"])
            .mote_with(pf);
        // The peer bounds its own waits; it ends once side a did (or gave up).
        let out = peer.wait_with_output().expect("peer");
        let page = std::fs::read(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        assert_eq!(
            run.stdout_text(),
            "side a: 10000 rounds, no lost update\n",
            "{run:?}"
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "side b: 10000 rounds, no lost update\n"
        );
        assert_eq!(u64::from_le_bytes(page[8..16].try_into().unwrap()), 20_000);
    }

    /// `apps/memcheck.c`: its own checks (1 GiB mapped and written, DONTNEED,
    /// mremap, a read-only page's SIGSEGV) pass, `/proc/self/smaps` shows the
    /// gigabyte, and writing it took no fault per page (memory is mapped
    /// before use). The page size is the platform's: see `memory.rs` for the
    /// partition's 2 MiB pages.
    pub fn a_gigabyte_mapped_before_use(pf: &[&str]) {
        let run = Program::new(app("memcheck")).mote_with(pf);
        let out = run.stdout_text();
        assert_eq!(run.status, 0, "{run:?}");
        assert!(out.contains("memcheck: all checks passed"), "{out}");
        assert!(out.contains("smaps: Size:            1048576 kB"), "{out}");
        let faults: u64 = out
            .lines()
            .find_map(|l| l.strip_prefix("page faults: "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no page-fault count\n{out}"));
        assert!(
            faults < (1 << 18) / 64,
            "{faults} page faults for 262,144 pages written: memory was not mapped before use\n{out}"
        );
    }

    /// `apps/partition.c` on 2 cores: the program sees the partition's CPUs
    /// everywhere, and its descriptors are numbered as natively (the proxy's
    /// own, the hosted platform's pidfd of its child included, stay out of the
    /// way: a served file opens at the lowest free number).
    pub fn the_partitions_view_on_2_cores(pf: &[&str]) {
        let run = Program::new(app("partition")).mote_with(&with_cores(pf, "2"));
        let out = run.stdout_text();
        assert_eq!(run.status, 0, "{run:?}");
        for line in [
            "nprocs_onln: 2",
            "affinity: 2 cpus",
            "/sys/devices/system/cpu/online: 0-1",
            "/proc/self/status: Cpus_allowed_list:\t0-1",
            "statm agrees with status: yes",
            "lowest descriptor: yes",
        ] {
            assert!(out.lines().any(|l| l == line), "no {line:?} in\n{out}");
        }
    }

    pub fn signals_program(pf: &[&str]) {
        let run = same(&Program::new(app("signals")), pf);
        assert!(
            run.stdout_text().ends_with("all checks passed\n"),
            "{run:?}"
        );
        let mut opts = pf.to_vec();
        opts.push("--no-patch");
        same(&Program::new(app("signals")), &opts);
    }

    /// `apps/spin.c ARGS` natively and under mote, signal `sig` sent to the
    /// process (`mote`) once it printed its first line.
    fn signalled(pf: &[&str], args: &[&str], sig: &str, status: i32, stdout: &str) {
        let prog = Program::new(app("spin")).args(args);
        let native = prog.native_signalled(sig);
        let run = prog.mote_signalled_with(pf, sig);
        assert_same(&native, &run);
        assert_eq!(run.status, status, "{run:?}");
        assert_eq!(run.stdout_text(), stdout, "{run:?}");
    }

    pub fn signals_from_outside(pf: &[&str]) {
        signalled(pf, &[], "INT", 130, "ready\n");
        signalled(pf, &[], "TERM", 143, "ready\n");
        signalled(
            pf,
            &["handler"],
            "INT",
            0,
            "ready\ncaught SIGINT; loop: ended\n",
        );
        signalled(
            pf,
            &["read", "handler"],
            "TERM",
            0,
            "ready\ncaught SIGTERM; read: EINTR\n",
        );
        signalled(
            pf,
            &["threads", "handler"],
            "INT",
            0,
            "ready\ncaught SIGINT; threads: ended\n",
        );
    }

    /// A signal sent while the process that runs the application's code is
    /// stopped (as by a debugger, or starved on a loaded machine) is taken once
    /// it continues: in a blocking call (`read`: the core idles meanwhile), in
    /// application code, or with threads computing on their own runtime stacks.
    /// On the hosted platform the proxy keeps kicking the stopped application
    /// process (`SIGRTMAX`, every 2 ms), and Linux queues every kick: they all
    /// arrive when it continues, and used to nest, a signal frame each, until
    /// they ran off the runtime stack into the runtime's heap (the signals
    /// program crashed on a loaded machine).
    pub fn queued_kicks_after_a_stop(pf: &[&str]) {
        const STOPPED: std::time::Duration = std::time::Duration::from_millis(500);
        for (args, stdout) in [
            (
                &["read", "handler"][..],
                "ready\ncaught SIGTERM; read: EINTR\n",
            ),
            (&["handler"][..], "ready\ncaught SIGTERM; loop: ended\n"),
            (
                &["threads", "handler"][..],
                "ready\ncaught SIGTERM; threads: ended\n",
            ),
        ] {
            let prog = Program::new(app("spin")).args(args);
            let native = prog.native_signalled_while_stopped("TERM", STOPPED);
            let run = prog.mote_signalled_while_stopped_with(pf, "TERM", STOPPED);
            assert_same(&native, &run);
            assert_eq!(run.status, 0, "{run:?}");
            assert_eq!(run.stdout_text(), stdout, "{run:?}");
        }
    }

    /// `posix_spawn`, `system`, `popen` and `vfork` children (their programs run
    /// on the same platform), and a `/bin/sh` script running commands.
    pub fn child_processes(pf: &[&str]) {
        let run = same(&Program::new(app("spawn")), pf);
        assert!(
            run.stdout_text().contains("vfork+_exit(5): exited 5"),
            "{run:?}"
        );
        let dir = TempDir::new("platform-sh");
        let script = dir.file(
            "script.sh",
            "#!/bin/sh\necho one\n/bin/echo two\nls /nonexistent-dir 2>/dev/null || echo three\nexit 7\n",
        );
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let run = same(&Program::new(&script), pf);
        assert_eq!(run.stdout_text(), "one\ntwo\nthree\n");
        assert_eq!(run.status, 7);
    }

    /// The vDSO libos maps (`apps/vdso.c`: found through `AT_SYSINFO_EHDR`, its
    /// time agreeing with the system call's, again after `execve`).
    pub fn vdso(pf: &[&str]) {
        let run = same(&Program::new(app("vdso")), pf);
        assert_eq!(run.status, 0, "{run:?}");
    }

    /// `getrusage`/`times` describe the application: computing is user time,
    /// the peak resident size covers its memory, touching fresh memory takes no
    /// fault per page.
    pub fn getrusage_and_times(pf: &[&str]) {
        let run = Program::new(app("rusage")).mote_with(pf);
        assert_eq!(run.status, 0, "{run:?}");
        let text = run.stdout_text();
        for line in [
            "user time grew: yes",
            "peak resident size covers the 64 MiB touched: yes",
            "minor faults while touching 64 MiB: 0",
            "times: user ticks: yes, elapsed ticks: yes",
            "RUSAGE_THREAD: ok",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }

    /// Threads until the runtime's memory for their stacks is used up: EAGAIN,
    /// then every thread joins (no runtime failure).
    pub fn threads_until_eagain(pf: &[&str]) {
        let run = Program::new(app("manythreads")).mote_with(pf);
        assert_eq!(run.status, 0, "{run:?}");
        let text = run.stdout_text();
        assert!(text.starts_with("created "), "{run:?}");
        assert!(text.ends_with("joined all\n"), "{run:?}");
    }

    pub fn patched_sites_take_no_further_trap(pf: &[&str]) {
        let mut opts = pf.to_vec();
        opts.push("--stats");
        let p = Program::new(app("syscall_loop"));
        let native = p.native();
        let run = p.mote_with(&opts);
        assert_same(&native, &run);
        // "system calls: T trapped, D without a trap (...); P sites patched, ..."
        let err = run.stderr_text();
        let line = err
            .lines()
            .find(|l| l.contains("system calls:"))
            .unwrap_or_else(|| panic!("no statistics line\n{run:?}"));
        let num = |after: &str| -> u64 {
            let rest = &line[line.find(after).expect(after) + after.len()..];
            rest.split_whitespace().next().unwrap().parse().unwrap()
        };
        let (trapped, direct) = (num("system calls: "), num("trapped, "));
        assert!(
            direct >= 4000 && trapped < 100,
            "patched sites must carry the loop's calls: {line}"
        );
        if pf.contains(&"hosted") {
            // Every trapped call was one SIGSYS, and nothing else trapped.
            let hosted = err
                .lines()
                .find_map(|l| l.strip_prefix("mote: hosted: trap signals "))
                .unwrap_or_else(|| panic!("no hosted statistics\n{run:?}"));
            let signals: u64 = hosted.split_whitespace().next().unwrap().parse().unwrap();
            assert_eq!(signals, trapped, "{run:?}");
        }
    }
}

/// One `#[test]` per case for a platform (its `mote run` options).
macro_rules! platform_tests {
    ($platform:ident, $opts:expr, [$($case:ident),* $(,)?]) => {
        mod $platform {
            $(
                #[test]
                fn $case() {
                    super::cases::$case($opts)
                }
            )*
        }
    };
}

/// The test list, handed to `platform_tests!` for one platform.
macro_rules! for_every_case {
    ($platform:ident, $opts:expr) => {
        platform_tests!(
            $platform,
            $opts,
            [
                hello,
                printargs_exact_environment,
                fileio,
                exit42,
                segv,
                catstdin,
                bigmalloc,
                mmapcycle,
                sbrk,
                clocks,
                execve,
                busybox_shell,
                dynamic_sort,
                dlopen,
                threads_on_1_2_4_cores,
                futex_on_1_2_4_cores,
                openmp_on_2_cores,
                a_thread_faults_on_2_cores,
                thread_ends_the_run,
                patched_sites_take_no_further_trap,
                shared_file_written_through_map_shared,
                shared_mapping_faults,
                posix_shm_aliases,
                ping_pong_with_a_native_process,
                a_gigabyte_mapped_before_use,
                the_partitions_view_on_2_cores,
                signals_program,
                signals_from_outside,
                queued_kicks_after_a_stop,
                child_processes,
                vdso,
                getrusage_and_times,
                threads_until_eagain,
            ]
        );
    };
}

for_every_case!(hosted, &["--platform", "hosted"]);
for_every_case!(kvm, &["--platform", "kvm"]);

/// With KVM hidden (`MOTE_KVM=none`), the default platform is the hosted one:
/// `mote info` says so and why, `--platform kvm` refuses naming the cause, and
/// the README's demo (`mote run -- hello`) still works.
#[test]
fn without_kvm_auto_falls_back_to_hosted() {
    let vars = || {
        let mut v: Vec<(String, String)> = std::env::vars().collect();
        v.retain(|(k, _)| k != "MOTE_KVM");
        v.push(("MOTE_KVM".into(), "none".into()));
        v
    };
    let info = mote_info_without_kvm();
    assert_eq!(info.status, 0, "{info:?}");
    assert!(
        info.stdout_text().contains(
            "backend:  mote run will use hosted (a Linux process with Syscall User Dispatch), \
             because no usable /dev/kvm (hidden by MOTE_KVM=none)"
        ),
        "{info:?}"
    );
    let hello = Program::new(app("hello")).env_exact(vars());
    let run = same(&hello, &[]);
    assert_eq!(run.status, 0);
    let forced = hello.mote_with(&["--platform", "kvm"]);
    assert_eq!(forced.status, 125, "{forced:?}");
    assert!(
        forced
            .stderr_text()
            .contains("no usable /dev/kvm (hidden by MOTE_KVM=none)"),
        "{forced:?}"
    );
}

/// `mote info` with KVM hidden. The harness passes its own environment
/// through, so the override is set for this one command by running it through
/// `env`.
fn mote_info_without_kvm() -> Run {
    let mote = mote_testsuite::artifacts()
        .mote
        .to_str()
        .expect("mote's path is UTF-8");
    Program::new("/usr/bin/env")
        .args(["MOTE_KVM=none", mote, "info"])
        .native()
}
