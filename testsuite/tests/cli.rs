//! The `mote` command line itself: `mote info`, PATH lookup of PROGRAM, options.

use std::os::unix::process::CommandExt;

use mote_testsuite::{app, busybox, run_mote_command, Platform, Program};

#[test]
fn info_names_kvm_and_the_backend() {
    let info = run_mote_command(&["info"]);
    let text = info.stdout_text();
    assert_eq!(info.status, 0, "mote info failed\n{info:?}");
    assert!(
        text.to_lowercase().contains("kvm"),
        "mote info must say what KVM the machine offers:\n{text}"
    );
}

fn program_is_looked_up_in_path(pf: Platform) {
    let bin = busybox();
    let dir = bin.parent().expect("busybox has a directory");
    let (_, mote) = Program::new("busybox")
        .on(pf)
        .args(["echo", "found through PATH"])
        .env_exact([("PATH", format!("/nonexistent:{}", dir.display()))])
        .same_as_native();
    assert_eq!(mote.stdout_text(), "found through PATH\n");
}

fn options_before_the_program_are_mote_s(pf: Platform) {
    let program = Program::new(app("hello")).on(pf).arg("--cores");
    let native = program.native();
    let mote = program.mote_with(&["--cores", "1"]);
    mote_testsuite::assert_same(&native, &mote);
    assert!(mote.stdout_text().contains("argc=2"));
}

mote_testsuite::on_both_platforms!(
    program_is_looked_up_in_path,
    options_before_the_program_are_mote_s,
    a_run_whose_cpus_are_all_taken_shares_one_and_says_so,
    a_one_cpu_run_keeps_mote_s_notes_off_the_application_s_stderr,
    a_one_cpu_run_with_no_free_cpu_blocks_its_offload_threads_on_its_cpu,
    a_one_cpu_run_spins_its_offload_threads_only_off_its_cpu
);

/// The host CPUs `mote info` lists for LWK cores (empty with one CPU allowed).
fn lwk_candidates() -> Vec<usize> {
    let info = run_mote_command(&["info"]);
    let text = info.stdout_text();
    let layout = text
        .lines()
        .find(|l| l.starts_with("layout:"))
        .unwrap_or_else(|| panic!("no layout line in mote info:\n{text}"));
    layout
        .split_once("LWK cores on host CPUs ")
        .map(|(_, list)| list.split(',').map(|c| c.trim().parse().unwrap()).collect())
        .unwrap_or_default()
}

/// Other mote runs holding CPUs, as the `flock` utility holding their lock
/// files (`/dev/shm/mote-cpu<N>.lock`) until dropped.
struct OtherRuns(Vec<std::process::Child>);

impl OtherRuns {
    fn holding(cpus: &[usize]) -> Self {
        use std::io::BufRead;
        let mut held = OtherRuns(Vec::new());
        for cpu in cpus {
            // `-o`: the lock is flock's own, not its command's, so killing flock
            // frees it; the command is only there to say it holds it, and goes
            // with flock's process group.
            let mut child = std::process::Command::new("flock")
                .arg("-o")
                .arg(format!("/dev/shm/mote-cpu{cpu}.lock"))
                .args(["-c", "echo held; exec sleep 120"])
                .stdout(std::process::Stdio::piped())
                .process_group(0)
                .spawn()
                .expect("the flock utility (util-linux)");
            let mut line = String::new();
            std::io::BufReader::new(child.stdout.take().unwrap())
                .read_line(&mut line)
                .unwrap();
            assert_eq!(line, "held\n", "flock did not take CPU {cpu}'s lock");
            held.0.push(child);
        }
        held
    }
}

impl Drop for OtherRuns {
    fn drop(&mut self) {
        for c in &mut self.0 {
            // The whole group: flock and its sleeping command.
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", c.id())])
                .status();
            let _ = c.wait();
        }
    }
}

/// Concurrent runs (MPI ranks) claim LWK CPUs of their own (`proxy/src/cpus.rs`);
/// when others hold every candidate, a run still starts, shares a CPU and says so
/// under `--stats`.
fn a_run_whose_cpus_are_all_taken_shares_one_and_says_so(pf: Platform) {
    let cpus = lwk_candidates();
    let _others = OtherRuns::holding(&cpus);
    let run = Program::new(app("hello")).on(pf).mote_with(&["--stats"]);
    assert_eq!(run.status, 0, "{run:?}");
    let stderr = run.stderr_text();
    let want = match cpus.first() {
        Some(c) => format!("LWK core 0 on host CPU {c}, shared"),
        None => "the Linux core's (one CPU allowed)".to_string(),
    };
    assert!(stderr.contains(&want), "no {want:?} in:\n{stderr}");
}

/// The CPU a one-CPU test run is bound to (`taskset -c`): the first this test
/// may use.
fn first_allowed_cpu() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .expect("Cpus_allowed_list in /proc/self/status");
    list.trim()
        .split([',', '-'])
        .next()
        .and_then(|c| c.parse().ok())
        .expect("a CPU number")
}

/// The host's online CPUs (`/sys/devices/system/cpu/online`, e.g. `0-3,6`).
fn online_cpus() -> Vec<usize> {
    let text = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap();
    let mut cpus = Vec::new();
    for range in text.trim().split(',') {
        let (a, b) = range.split_once('-').unwrap_or((range, range));
        cpus.extend(a.parse::<usize>().unwrap()..=b.parse::<usize>().unwrap());
    }
    cpus
}

/// A launcher binds each MPI rank to one CPU: the `--cores` note (LWK core and
/// Linux core share it) is not something to act on, so it stays off the
/// application's stderr (every rank would print it), and shows under
/// `MOTE_DEBUG=1`.
fn a_one_cpu_run_keeps_mote_s_notes_off_the_application_s_stderr(pf: Platform) {
    let cpu = first_allowed_cpu().to_string();
    let program = Program::new(app("hello"))
        .on(pf)
        .under(["taskset", "-c", &cpu]);
    let native = program.native();
    let mote = program.mote_with(&["--cores", "1"]);
    mote_testsuite::assert_same(&native, &mote);
    assert_eq!(native.stderr_text(), "", "{native:?}");
    assert_eq!(
        mote.stderr_text(),
        "",
        "mote wrote to the application's stderr\n{mote:?}"
    );

    let debug = Program::new(app("hello"))
        .on(pf)
        .under(["env", "MOTE_DEBUG=1", "taskset", "-c", &cpu])
        .mote_with(&["--cores", "1"]);
    assert_eq!(debug.status, 0, "{debug:?}");
    let want = "mote: --cores 1 with 1 host CPU(s) allowed";
    assert!(
        debug.stderr_text().contains(want),
        "no {want:?} under MOTE_DEBUG=1\n{debug:?}"
    );
}

/// The `--stats` line saying where the offload threads ran and how long they
/// spun: (the place, the time in ms).
fn offload_stats(run: &mote_testsuite::Run) -> (String, f64) {
    let stderr = run.stderr_text();
    let line = stderr
        .lines()
        .find_map(|l| l.strip_prefix("mote: offload threads on "))
        .unwrap_or_else(|| panic!("no offload line in --stats output\n{run:?}"));
    let (place, rest) = line.split_once("; spun ").expect("spun figure");
    let ms = rest
        .split_once(" ms")
        .expect("ms")
        .0
        .parse()
        .expect("a number");
    (place.to_string(), ms)
}

/// A rank bound to one CPU while every other CPU is computed on (ranks fill
/// the node): its offload threads stay on its CPU and block at once instead of
/// spinning — `--stats` says so, with no time spun.
fn a_one_cpu_run_with_no_free_cpu_blocks_its_offload_threads_on_its_cpu(pf: Platform) {
    let cpu = first_allowed_cpu();
    let others: Vec<usize> = online_cpus().into_iter().filter(|&c| c != cpu).collect();
    let _others = OtherRuns::holding(&others);
    let run = Program::new(app("hello"))
        .on(pf)
        .under(["taskset", "-c", &cpu.to_string()])
        .mote_with(&["--cores", "1", "--stats"]);
    assert_eq!(run.status, 0, "{run:?}");
    let (place, spun) = offload_stats(&run);
    assert_eq!(
        place,
        format!("host CPU {cpu} (the one CPU allowed, the LWK core's: blocking, never spinning)"),
        "{run:?}"
    );
    assert_eq!(
        spun, 0.0,
        "offload threads spun on the compute CPU\n{run:?}"
    );
}

/// A rank bound to one CPU by an affinity mask only: its offload threads run
/// on a service CPU outside the binding when one is free, and block on its own
/// CPU otherwise (other runs of the suite may hold the rest); they never spin
/// on the CPU the rank computes on.
fn a_one_cpu_run_spins_its_offload_threads_only_off_its_cpu(pf: Platform) {
    let cpu = first_allowed_cpu();
    let run = Program::new(app("hello"))
        .on(pf)
        .under(["taskset", "-c", &cpu.to_string()])
        .mote_with(&["--cores", "1", "--stats"]);
    assert_eq!(run.status, 0, "{run:?}");
    let (place, spun) = offload_stats(&run);
    let blocking =
        format!("host CPU {cpu} (the one CPU allowed, the LWK core's: blocking, never spinning)");
    // A later place (`, then from T s ...`) may follow the first.
    for one in place.split(", then ") {
        let one = one.split_once(" s ").map_or(one, |(_, p)| p);
        if one != blocking {
            let service = one
                .strip_prefix("host CPU ")
                .and_then(|r| {
                    r.strip_suffix(" (a service CPU outside the one-CPU binding; spinning)")
                })
                .unwrap_or_else(|| panic!("unexpected place {one:?}\n{run:?}"));
            let service: usize = service.parse().unwrap();
            assert_ne!(service, cpu, "the service CPU is the compute CPU\n{run:?}");
            assert!(online_cpus().contains(&service), "{run:?}");
        }
    }
    if place == blocking {
        assert_eq!(spun, 0.0, "{run:?}");
    }
}
