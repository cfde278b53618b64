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
    a_run_whose_cpus_are_all_taken_shares_one_and_says_so
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
