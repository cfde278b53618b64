//! The harness of mote's end-to-end tests (`tests/`): find `mote` and the apps,
//! run a program natively and under `mote run --platform P --` with the same
//! argv, stdin, environment and working directory, and compare what came out.
//!
//! Every mote run names its [`Platform`] (`Program::on`); a test file lists its
//! cases in [`on_both_platforms!`], which makes one `#[test]` per case on each
//! platform (`kvm::hello`, `hosted::hello`), so the partition's and the hosted
//! platform's behaviour cannot drift. A case that is about one platform pins it
//! and says why.
//!
//! Every run made through this harness, native or not, holds one process-wide
//! lock: the machine has two cores, and a mote run spins a vCPU and a proxy
//! thread. Each run is killed after [`HANG_LIMIT`] and the test fails with
//! "hung" — a hang detector, never a performance threshold; after one hang,
//! later mote runs of the same test binary fail at once. After every run the
//! harness checks that the child was reaped and that no process it started (they
//! all carry [`OWNER_VAR`] in their environment) is still alive.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

pub mod slurm;

/// A run still going after this long is killed and the test fails as hung.
pub const HANG_LIMIT: Duration = Duration::from_secs(120);

/// Set in the environment of every process the harness starts, to the test
/// process's pid: how leftover processes are found. Native runs get it too, so
/// both sides see the same environment.
pub const OWNER_VAR: &str = "MOTE_TESTSUITE_OWNER";

/// How often a signal a test sends is sent again until the program ends.
const RESIGNAL: Duration = Duration::from_millis(500);

/// How long processes started by a run may take to disappear after it ended.
const STRAY_GRACE: Duration = Duration::from_secs(5);

const BUILD_HINT: &str = "run `cargo xtask test` (builds mote and the apps)";

/// The static busybox the compatibility tests run.
pub const BUSYBOX: &str = "/bin/busybox";

/// Serialises every run of this test process.
static RUN_LOCK: Mutex<()> = Mutex::new(());

/// The first run of this test process that hung. Later mote runs fail at once
/// instead of waiting out the limit again, which keeps a broken build within
/// CI's time.
static HUNG: OnceLock<String> = OnceLock::new();

fn lock() -> MutexGuard<'static, ()> {
    // A test that failed while holding the lock leaves nothing to repair.
    RUN_LOCK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Where the built artifacts are.
#[derive(Debug)]
pub struct Artifacts {
    /// `<target>/<profile>/mote`
    pub mote: PathBuf,
    /// `<target>/apps`
    pub apps: PathBuf,
}

/// `mote` and the apps, located from this test binary (`<target>/<profile>/deps/…`);
/// panics with how to build them when they are missing.
pub fn artifacts() -> &'static Artifacts {
    static ARTIFACTS: OnceLock<Artifacts> = OnceLock::new();
    ARTIFACTS.get_or_init(|| {
        let exe = std::env::current_exe().expect("current_exe");
        let target = target_dir(&exe);
        // The profile of this test binary first (`release/deps/x` → `release`),
        // then `release`, which is what `cargo xtask test` builds.
        let mut candidates = Vec::new();
        if let Some(profile) = exe.parent().and_then(Path::parent) {
            candidates.push(profile.join("mote"));
        }
        candidates.push(target.join("release").join("mote"));
        candidates.dedup();
        let Some(mote) = candidates.iter().find(|p| p.is_file()).cloned() else {
            panic!(
                "mote is not built (looked for {}): {BUILD_HINT}",
                show_paths(&candidates)
            );
        };
        let apps = target.join("apps");
        if !apps.join("hello").is_file() {
            panic!(
                "the apps are not built (no {}): {BUILD_HINT}",
                apps.join("hello").display()
            );
        }
        Artifacts { mote, apps }
    })
}

fn show_paths(paths: &[PathBuf]) -> String {
    let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    shown.join(", ")
}

/// Cargo's target directory: the ancestor of the test binary holding cargo's
/// `CACHEDIR.TAG`; else `CARGO_TARGET_DIR`; else `<workspace>/target`.
fn target_dir(exe: &Path) -> PathBuf {
    if let Some(dir) = exe.ancestors().find(|d| d.join("CACHEDIR.TAG").is_file()) {
        return dir.to_path_buf();
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testsuite is one level below the workspace root");
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => workspace.join(dir),
        None => workspace.join("target"),
    }
}

/// The path of the app built from `apps/<name>.c`.
pub fn app(name: &str) -> PathBuf {
    let path = artifacts().apps.join(name);
    assert!(
        path.is_file(),
        "{} is not built: {BUILD_HINT}",
        path.display()
    );
    path
}

/// `/bin/busybox`, which must be statically linked; panics with the package to install.
pub fn busybox() -> PathBuf {
    let fix = "install Debian package busybox-static";
    match fs::read(BUSYBOX) {
        Err(e) => panic!("{BUSYBOX}: {e}: {fix}"),
        Ok(bytes) if has_interp(&bytes) => panic!("{BUSYBOX} is dynamically linked: {fix}"),
        Ok(_) => PathBuf::from(BUSYBOX),
    }
}

/// Whether an ELF64 little-endian file has a `PT_INTERP` program header
/// (System V gABI program header table), i.e. is dynamically linked.
pub fn has_interp(b: &[u8]) -> bool {
    let num = |o: usize, n: usize| -> Option<u64> {
        let s = b.get(o..o + n)?;
        Some(s.iter().rev().fold(0, |acc, &x| (acc << 8) | u64::from(x)))
    };
    let (Some(phoff), Some(phentsize), Some(phnum)) = (num(32, 8), num(54, 2), num(56, 2)) else {
        return false;
    };
    (0..phnum).any(|i| num((phoff + i * phentsize) as usize, 4) == Some(3))
}

/// The platform of a mote run (`mote run --platform`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Platform {
    /// `--platform kvm`: the partition, a KVM virtual machine.
    Kvm,
    /// `--platform hosted`: the runtime in an ordinary Linux process.
    Hosted,
    /// No `--platform` option: what `mote run` picks by itself (`auto`).
    Auto,
}

impl Platform {
    /// The `mote run` options that select it.
    pub fn options(self) -> &'static [&'static str] {
        match self {
            Platform::Kvm => &["--platform", "kvm"],
            Platform::Hosted => &["--platform", "hosted"],
            Platform::Auto => &[],
        }
    }
}

/// One `#[test]` per listed case and platform: `mod kvm` and `mod hosted`, each
/// with a test per function `fn case(pf: Platform)` of the calling file, run
/// with `Platform::Kvm` and `Platform::Hosted`.
#[macro_export]
macro_rules! on_both_platforms {
    ($($case:ident),* $(,)?) => {
        mod kvm {
            $(
                #[test]
                fn $case() {
                    super::$case($crate::Platform::Kvm)
                }
            )*
        }
        mod hosted {
            $(
                #[test]
                fn $case() {
                    super::$case($crate::Platform::Hosted)
                }
            )*
        }
    };
}

/// A program to run, natively and under mote, with everything that must be the
/// same on both sides.
#[derive(Clone, Debug)]
pub struct Program {
    argv: Vec<OsString>,
    stdin: Option<Vec<u8>>,
    env: Option<Vec<(OsString, OsString)>>,
    cwd: Option<PathBuf>,
    platform: Option<Platform>,
    /// A command that runs the rest (`setpriv ...`), natively and around `mote`.
    wrapper: Vec<OsString>,
}

impl Program {
    /// `path` with no arguments; argv[0] is `path` as given.
    pub fn new(path: impl AsRef<OsStr>) -> Self {
        Self {
            argv: vec![path.as_ref().to_owned()],
            stdin: None,
            env: None,
            cwd: None,
            platform: None,
            wrapper: Vec::new(),
        }
    }

    /// Run it through `wrapper` (a command that execs the rest of its arguments,
    /// such as `setpriv`): natively `WRAPPER... ARGV...`, under mote
    /// `WRAPPER... mote run ... -- ARGV...`.
    pub fn under<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(mut self, wrapper: I) -> Self {
        self.wrapper = wrapper.into_iter().map(|a| a.as_ref().to_owned()).collect();
        self
    }

    /// A command running `argv` through the wrapper, if any.
    /// `WRAPPER... ARGV...`, started with SIGINT and SIGQUIT at their default
    /// actions (`env --default-signal`): a suite started in the background
    /// (`nohup`, `&` without job control) inherits them ignored, and the Ctrl-C
    /// tests would then wait for a signal neither side can take.
    fn wrapped(&self, argv: impl IntoIterator<Item = OsString>) -> Command {
        let mut cmd = Command::new("env");
        cmd.arg("--default-signal=INT,QUIT")
            .args(self.wrapper.iter().cloned().chain(argv));
        cmd
    }

    /// The platform its mote runs use; a mote run of a program without one
    /// panics (no test may silently depend on what `auto` picks).
    pub fn on(mut self, platform: Platform) -> Self {
        self.platform = Some(platform);
        self
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.argv.push(arg.as_ref().to_owned());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(mut self, args: I) -> Self {
        self.argv
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Bytes fed through a pipe on stdin (otherwise stdin is /dev/null).
    pub fn stdin(mut self, data: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(data.into());
        self
    }

    /// Exactly this environment (plus [`OWNER_VAR`]) instead of the test's own.
    pub fn env_exact<K: AsRef<OsStr>, V: AsRef<OsStr>>(
        mut self,
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.env = Some(
            vars.into_iter()
                .map(|(k, v)| (k.as_ref().to_owned(), v.as_ref().to_owned()))
                .collect(),
        );
        self
    }

    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    /// Runs it natively.
    pub fn native(&self) -> Run {
        let cmd = self.wrapped(self.argv.iter().cloned());
        self.execute(cmd, Side::Native)
    }

    /// Runs it as `mote run --platform P -- ARGV...`.
    pub fn mote(&self) -> Run {
        self.mote_with(&[])
    }

    /// Runs it as `mote run --platform P OPTIONS -- ARGV...`.
    pub fn mote_with(&self, options: &[&str]) -> Run {
        let cmd = self.mote_command(options);
        self.execute(cmd, Side::Mote)
    }

    /// `mote run --platform P OPTIONS -- ARGV...`
    fn mote_command(&self, options: &[&str]) -> Command {
        let platform = self.platform.unwrap_or_else(|| {
            panic!(
                "{}: say which platform mote runs it on: Program::on(Platform::…)",
                self.argv[0].to_string_lossy()
            )
        });
        assert!(
            !options.contains(&"--platform"),
            "the platform is Program::on's: {options:?}"
        );
        let mut cmd = self.wrapped([artifacts().mote.as_os_str().to_owned()]);
        cmd.arg("run")
            .args(platform.options())
            .args(options)
            .arg("--")
            .args(&self.argv);
        cmd
    }

    /// Runs it natively and under mote and asserts the same stdout and exit
    /// status; returns both runs for further checks.
    pub fn same_as_native(&self) -> (Run, Run) {
        let native = self.native();
        let mote = self.mote();
        assert_same(&native, &mote);
        (native, mote)
    }

    /// Runs it natively; once it has printed its first line, sends it signal
    /// `sig` (as `kill -SIG <pid>` from a shell would).
    pub fn native_signalled(&self, sig: &str) -> Run {
        self.native_poked(|pid| send_signal(pid, sig))
    }

    /// Runs it natively; once the program has printed its first line, calls
    /// `poke` with its pid, and again every 0.5 s until it ends.
    pub fn native_poked(&self, mut poke: impl FnMut(u32)) -> Run {
        let cmd = self.wrapped(self.argv.iter().cloned());
        self.execute_poked(cmd, Side::Native, Some(&mut poke))
    }

    /// Runs it under `mote run --platform P --` and sends the `mote` process
    /// signal `sig` once the program has printed its first line.
    pub fn mote_signalled(&self, sig: &str) -> Run {
        self.mote_signalled_with(&[], sig)
    }

    /// `mote_signalled` with `mote run --platform P OPTIONS`.
    pub fn mote_signalled_with(&self, options: &[&str], sig: &str) -> Run {
        self.mote_poked_with(options, |pid| send_signal(pid, sig))
    }

    /// Runs it as `mote run --platform P OPTIONS -- ARGV...`; once the program
    /// has printed its first line, calls `poke` with the pid of `mote`, and
    /// again every 0.5 s until the program ends (as `mote_signalled` sends its
    /// signal).
    pub fn mote_poked_with(&self, options: &[&str], mut poke: impl FnMut(u32)) -> Run {
        let cmd = self.mote_command(options);
        self.execute_poked(cmd, Side::Mote, Some(&mut poke))
    }

    fn execute(&self, cmd: Command, side: Side) -> Run {
        self.execute_poked(cmd, side, None)
    }

    fn execute_poked(
        &self,
        mut cmd: Command,
        side: Side,
        poke: Option<&mut dyn FnMut(u32)>,
    ) -> Run {
        if let Some(vars) = &self.env {
            cmd.env_clear().envs(vars.iter().map(|(k, v)| (k, v)));
        }
        // Diagnostics would change stderr; run `mote` by hand with MOTE_DEBUG=1 instead.
        cmd.env_remove("MOTE_DEBUG");
        cmd.env(OWNER_VAR, std::process::id().to_string());
        if let Some(dir) = &self.cwd {
            cmd.current_dir(dir);
        }
        let _guard = lock();
        run(cmd, self.stdin.clone(), side, poke, HANG_LIMIT)
    }
}

/// `kill -SIG PID`, as a shell sends it (`sig`: a name such as `INT`).
pub fn send_signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

/// The child processes of `pid` (of all its threads).
pub fn children_of(pid: u32) -> Vec<u32> {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|t| fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|text| {
            text.split_whitespace()
                .filter_map(|c| c.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// Runs `mote ARGS...` itself (for example `mote info`), with the same lock,
/// hang limit and leftover checks as every other run.
pub fn run_mote_command(args: &[&str]) -> Run {
    run_mote_command_within(args, HANG_LIMIT)
}

/// [`run_mote_command`] for a command that runs many programs one after another
/// (`mote bench`): it counts as hung only after `limit`, not after one
/// program's [`HANG_LIMIT`]. Not a timing threshold: a slow run passes.
pub fn run_mote_command_within(args: &[&str], limit: Duration) -> Run {
    let mut cmd = Command::new(&artifacts().mote);
    cmd.args(args);
    cmd.env_remove("MOTE_DEBUG");
    cmd.env(OWNER_VAR, std::process::id().to_string());
    let _guard = lock();
    run(cmd, None, Side::Mote, None, limit)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Native,
    Mote,
}

/// What one run produced.
pub struct Run {
    pub side: Side,
    /// The command line, for messages.
    pub command: String,
    /// The exit status as a shell reports it: the exit code, or 128+signal.
    pub status: i32,
    /// The process was killed by a signal (`WIFSIGNALED`; `status` is then
    /// 128+signal), not ended with an exit code.
    pub signalled: bool,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Run {
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

impl fmt::Debug for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{:?} run: {}", self.side, self.command)?;
        let how = if self.signalled {
            " (killed by a signal)"
        } else {
            ""
        };
        writeln!(f, "  status: {}{how}", self.status)?;
        writeln!(
            f,
            "  stdout ({} bytes): {}",
            self.stdout.len(),
            excerpt(&self.stdout)
        )?;
        write!(
            f,
            "  stderr ({} bytes): {}",
            self.stderr.len(),
            excerpt(&self.stderr)
        )
    }
}

/// The start of some output, readable in a failure message.
fn excerpt(bytes: &[u8]) -> String {
    const MAX: usize = 2000;
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX)]);
    let more = if bytes.len() > MAX { " […]" } else { "" };
    format!("{text:?}{more}")
}

/// The first line where two outputs differ, for failure messages.
fn first_difference(a: &[u8], b: &[u8]) -> String {
    let a = String::from_utf8_lossy(a);
    let b = String::from_utf8_lossy(b);
    for (i, (x, y)) in a.lines().zip(b.lines()).enumerate() {
        if x != y {
            return format!("line {}: native {x:?}, mote {y:?}", i + 1);
        }
    }
    format!(
        "native has {} lines, mote {} (one is a prefix of the other)",
        a.lines().count(),
        b.lines().count()
    )
}

/// Asserts that a mote run printed the same stdout and ended with the same
/// status as the native run.
pub fn assert_same(native: &Run, mote: &Run) {
    assert!(
        native.stdout == mote.stdout,
        "stdout differs between native and mote: {}\n{native:?}\n{mote:?}\n\
         (to see mote's diagnostics, run the mote command by hand with MOTE_DEBUG=1)",
        first_difference(&native.stdout, &mote.stdout)
    );
    assert_eq!(
        native.status, mote.status,
        "exit status differs between native and mote\n{native:?}\n{mote:?}"
    );
    assert_eq!(
        native.signalled, mote.signalled,
        "one run was killed by a signal, the other exited with that status\n{native:?}\n{mote:?}"
    );
}

/// The exit status as a shell reports it.
fn shell_status(status: ExitStatus) -> i32 {
    match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        _ => panic!("unexpected wait status {status:?}"),
    }
}

/// The command line, shortened to stay readable in a failure message.
fn show_command(cmd: &Command) -> String {
    const MAX: usize = 400;
    let mut text = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        text.push(' ');
        text.push_str(&arg.to_string_lossy());
    }
    if text.len() > MAX {
        let cut = (0..=MAX)
            .rev()
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(0);
        text.truncate(cut);
        text.push_str(" […]");
    }
    text
}

fn reader(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        pipe.read_to_end(&mut buf)
            .expect("reading the child's output");
        buf
    })
}

/// A reader that says (once) when the first full line has arrived.
fn line_reader(
    mut pipe: impl Read + Send + 'static,
    first_line: std::sync::mpsc::Sender<()>,
) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let mut told = false;
        loop {
            let n = match pipe.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => panic!("reading the child's output: {e}"),
            };
            buf.extend_from_slice(&chunk[..n]);
            if !told && buf.contains(&b'\n') {
                told = true;
                let _ = first_line.send(());
            }
        }
        buf
    })
}

/// Spawns, feeds stdin, collects stdout and stderr, waits with the hang limit,
/// then checks that nothing is left behind. With `poke` (sending a signal, say),
/// calls it with the child's pid once the child printed its first line, and
/// again every `RESIGNAL` until the child ends. The caller holds the run lock.
fn run(
    mut cmd: Command,
    stdin: Option<Vec<u8>>,
    side: Side,
    mut poke: Option<&mut dyn FnMut(u32)>,
    limit: Duration,
) -> Run {
    let command = show_command(&cmd);
    if let (Side::Mote, Some(hung)) = (side, HUNG.get()) {
        panic!("not run: an earlier run in this test binary hung (`{hung}`); fix that first");
    }
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start `{command}`: {e}"));
    let pid = child.id();

    let writer = child.stdin.take().map(|mut pipe| {
        let data = stdin.unwrap_or_default();
        thread::spawn(move || {
            // The program may exit without reading everything: not our concern here.
            let _ = pipe.write_all(&data);
        })
    });
    let (first_line, got_line) = std::sync::mpsc::channel();
    let out = line_reader(child.stdout.take().expect("stdout is piped"), first_line);
    let err = reader(child.stderr.take().expect("stderr is piped"));

    let start = Instant::now();
    // With a poke (a signal to send): once the first line arrived, poke, and
    // again every RESIGNAL until the program ends — a program may take the first
    // signal just before it blocks, natively as under mote, and must not wait
    // forever for it.
    let mut line_seen = false;
    let mut last_sent: Option<Instant> = None;
    let status = loop {
        if let Some(poke) = poke.as_mut() {
            line_seen = line_seen || got_line.try_recv().is_ok();
            if line_seen && last_sent.is_none_or(|t| t.elapsed() >= RESIGNAL) {
                poke(pid);
                last_sent = Some(Instant::now());
            }
        }
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if start.elapsed() < limit => thread::sleep(Duration::from_millis(5)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                kill_all(&leftover_processes());
                let _ = HUNG.set(command.clone());
                panic!(
                    "hung: `{command}` did not finish within {} s and was killed",
                    limit.as_secs()
                );
            }
            Err(e) => panic!("waiting for `{command}`: {e}"),
        }
    };
    // Before collecting the output: a leftover process holding the pipes open
    // would otherwise keep the readers waiting.
    assert_reaped(pid, &command);
    assert_nothing_left_behind(&command);
    if let Some(writer) = writer {
        writer.join().expect("stdin writer thread");
    }
    let stdout = out.join().expect("stdout reader thread");
    let stderr = err.join().expect("stderr reader thread");
    Run {
        side,
        command,
        status: shell_status(status),
        signalled: status.signal().is_some(),
        stdout,
        stderr,
    }
}

/// The child must be gone, not a zombie of ours.
fn assert_reaped(pid: u32, command: &str) {
    if let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) {
        assert!(
            parent_of(&stat) != Some(std::process::id()),
            "`{command}` (pid {pid}) was not reaped: {stat}"
        );
    }
}

/// The parent pid from the text of `/proc/PID/stat` (`pid (comm) state ppid …`).
fn parent_of(stat: &str) -> Option<u32> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    after_comm.split_whitespace().nth(1)?.parse().ok()
}

/// No process started by this test process may outlive its run (a grace period
/// lets exiting processes finish); any found is killed and the test fails.
fn assert_nothing_left_behind(command: &str) {
    let deadline = Instant::now() + STRAY_GRACE;
    loop {
        let left = leftover_processes();
        if left.is_empty() {
            return;
        }
        if Instant::now() >= deadline {
            let described: Vec<String> = left
                .iter()
                .map(|pid| {
                    let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
                    format!("{pid} ({})", comm.trim())
                })
                .collect();
            kill_all(&left);
            panic!(
                "`{command}` left processes behind: {}",
                described.join(", ")
            );
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Live processes (not zombies) whose environment carries this test process's owner tag.
fn leftover_processes() -> Vec<u32> {
    let tag = format!("{OWNER_VAR}={}", std::process::id());
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let environ = fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            let state = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let zombie_or_gone = state
                .rfind(')')
                .and_then(|i| state[i + 1..].split_whitespace().next())
                .is_none_or(|s| s == "Z" || s == "X");
            !zombie_or_gone && environ.split(|&b| b == 0).any(|var| var == tag.as_bytes())
        })
        .collect()
}

fn kill_all(pids: &[u32]) {
    for pid in pids {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .stderr(Stdio::null())
            .status();
    }
}

/// A directory under the system temp dir, removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(label: &str) -> Self {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("mote-test-{label}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes a file in the directory and returns its path.
    pub fn file(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.0.join(name);
        fs::write(&path, contents).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_is_read_after_the_command_name() {
        assert_eq!(parent_of("42 (a) b) c) S 7 42 42 0"), Some(7));
        assert_eq!(parent_of("garbage"), None);
    }

    #[test]
    fn interp_header_is_found() {
        let mut elf = vec![0u8; 64 + 2 * 56];
        elf[32] = 64; // e_phoff
        elf[54] = 56; // e_phentsize
        elf[56] = 2; // e_phnum
        elf[64] = 1; // PT_LOAD
        assert!(!has_interp(&elf));
        elf[64 + 56] = 3; // PT_INTERP
        assert!(has_interp(&elf));
        assert!(!has_interp(&elf[..100]), "a truncated table is not dynamic");
    }

    #[test]
    fn shell_status_of_a_signal_is_128_plus_it() {
        assert_eq!(shell_status(ExitStatus::from_raw(11)), 139);
        assert_eq!(shell_status(ExitStatus::from_raw(42 << 8)), 42);
    }
}
