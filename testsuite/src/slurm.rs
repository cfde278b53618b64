//! A single-node Slurm of the test's own, as a user's cluster runs jobs: MUNGE
//! authentication, `slurmctld` and `slurmd` on localhost, tasks bound one CPU
//! each (`task/affinity`), MPI through PMI-2. Started in a temporary directory
//! with ports nobody listens on, stopped (every daemon killed and reaped) when
//! dropped. Needs Debian's slurmctld, slurmd, slurm-client and munge (`cargo
//! xtask test` installs them when run as root).

use std::fs;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::TempDir;

/// How long the daemons may take until the node takes jobs.
const START_LIMIT: Duration = Duration::from_secs(60);

const FIX: &str = "install Debian packages slurmctld slurmd slurm-client munge \
                   (`cargo xtask test` does when run as root)";

/// A running single-node Slurm; dropping it stops it.
pub struct Slurm {
    dir: TempDir,
    daemons: Vec<(&'static str, Child)>,
}

impl Slurm {
    /// Starts MUNGE, the controller and the node daemon, and waits until the
    /// node is idle. Panics, with the daemons' logs, if it does not come up.
    pub fn start() -> Self {
        let tool =
            |name: &str| which(name).unwrap_or_else(|| panic!("Slurm tests need `{name}`: {FIX}"));
        let (munged, slurmctld, slurmd) = (tool("munged"), tool("slurmctld"), tool("slurmd"));
        for client in ["srun", "sinfo"] {
            tool(client);
        }
        let mut slurm = Slurm {
            dir: TempDir::new("slurm"),
            daemons: Vec::new(),
        };
        let base = slurm.dir.path().to_owned();
        let path = |name: &str| base.join(name).display().to_string();
        for sub in ["state", "spool"] {
            fs::create_dir_all(base.join(sub)).expect("creating the Slurm directories");
        }
        // A key of our own, private to its user as MUNGE insists.
        let mut key = vec![0u8; 1024];
        fs::File::open("/dev/urandom")
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut key))
            .expect("reading /dev/urandom");
        fs::write(path("munge.key"), key).expect("writing the MUNGE key");
        set_mode(&path("munge.key"), 0o600);
        slurm.spawn(
            "munged",
            Command::new(munged).args([
                "--foreground",
                "--force",
                &format!("--socket={}", path("munge.sock")),
                &format!("--key-file={}", path("munge.key")),
                &format!("--pid-file={}", path("munged.pid")),
                &format!("--log-file={}", path("munged.log")),
                &format!("--seed-file={}", path("munged.seed")),
            ]),
        );
        wait_for(|| base.join("munge.sock").exists(), "munged's socket");

        let node = node_line(&slurmd);
        let name = node
            .split_whitespace()
            .find_map(|w| w.strip_prefix("NodeName="))
            .expect("`slurmd -C` names the node")
            .to_string();
        let user = current_user();
        let conf = format!(
            "ClusterName=mote\n\
             SlurmctldHost={name}(127.0.0.1)\n\
             AuthType=auth/munge\n\
             CredType=cred/munge\n\
             AuthInfo=socket={sock}\n\
             SlurmUser={user}\n\
             SlurmdUser={user}\n\
             SlurmctldPort={ctld_port}\n\
             SlurmdPort={d_port}\n\
             StateSaveLocation={state}\n\
             SlurmdSpoolDir={spool}\n\
             SlurmctldPidFile={ctld_pid}\n\
             SlurmdPidFile={d_pid}\n\
             SlurmctldLogFile={ctld_log}\n\
             SlurmdLogFile={d_log}\n\
             ProctrackType=proctrack/linuxproc\n\
             TaskPlugin=task/affinity\n\
             JobAcctGatherType=jobacct_gather/none\n\
             SchedulerType=sched/builtin\n\
             SelectType=select/cons_tres\n\
             SelectTypeParameters=CR_Core\n\
             ReturnToService=2\n\
             MpiDefault=pmi2\n\
             {node} NodeAddr=127.0.0.1 State=UNKNOWN\n\
             PartitionName=mote Nodes=ALL Default=YES MaxTime=INFINITE State=UP\n",
            sock = path("munge.sock"),
            ctld_port = free_port(),
            d_port = free_port(),
            state = path("state"),
            spool = path("spool"),
            ctld_pid = path("slurmctld.pid"),
            d_pid = path("slurmd.pid"),
            ctld_log = path("slurmctld.log"),
            d_log = path("slurmd.log"),
        );
        fs::write(path("slurm.conf"), conf).expect("writing slurm.conf");
        let conf = slurm.conf();
        slurm.spawn(
            "slurmctld",
            Command::new(slurmctld).args(["-D", "-i", "-f"]).arg(&conf),
        );
        slurm.spawn(
            "slurmd",
            Command::new(slurmd)
                .args(["-D", "-f"])
                .arg(&conf)
                .env("SLURM_CONF", &conf),
        );
        let idle = || {
            Command::new("sinfo")
                .args(["-h", "-N", "-o", "%T"])
                .env("SLURM_CONF", &conf)
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "idle")
        };
        if !wait_until(idle) {
            panic!(
                "the test's Slurm did not come up within {} s:\n{}",
                START_LIMIT.as_secs(),
                slurm.logs()
            );
        }
        slurm
    }

    /// The configuration file `srun` must be given (`SLURM_CONF`).
    pub fn conf(&self) -> PathBuf {
        self.dir.path().join("slurm.conf")
    }

    /// The daemons' logs, for a failure message.
    pub fn logs(&self) -> String {
        ["munged.log", "slurmctld.log", "slurmd.log"]
            .iter()
            .map(|name| {
                let text = fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(15).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                format!("--- {name}\n{}", tail.join("\n"))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn spawn(&mut self, what: &'static str, cmd: &mut Command) {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e} ({FIX})"));
        self.daemons.push((what, child));
    }
}

impl Drop for Slurm {
    fn drop(&mut self) {
        // Node daemon first, controller, then MUNGE: the reverse of the start.
        while let Some((_, mut child)) = self.daemons.pop() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        // A job step the daemons left behind (`slurmstepd` daemonizes; after a
        // hung run its tasks may linger): everything carrying our configuration.
        let tag = format!("SLURM_CONF={}", self.conf().display());
        for pid in processes_with_env(&tag) {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}

/// Processes whose environment holds `entry` (`NAME=value`).
fn processes_with_env(entry: &str) -> Vec<u32> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|&b| b == 0).any(|v| v == entry.as_bytes()))
        })
        .collect()
}

/// `slurmd -C`'s description of this machine, without its `UpTime` line.
fn node_line(slurmd: &std::path::Path) -> String {
    let out = Command::new(slurmd)
        .arg("-C")
        .output()
        .unwrap_or_else(|e| panic!("cannot run `slurmd -C`: {e} ({FIX})"));
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find(|l| l.starts_with("NodeName="))
        .unwrap_or_else(|| panic!("`slurmd -C` printed no NodeName line: {text}"))
        .to_string()
}

/// A TCP port nobody listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding a free port")
}

fn current_user() -> String {
    let out = Command::new("id")
        .arg("-un")
        .output()
        .expect("running id -un");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn set_mode(path: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {path}: {e}"));
}

fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

fn wait_for(ready: impl Fn() -> bool, what: &str) {
    assert!(
        wait_until(ready),
        "{what} did not appear within {} s",
        START_LIMIT.as_secs()
    );
}

fn wait_until(ready: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + START_LIMIT;
    while Instant::now() < deadline {
        if ready() {
            return true;
        }
        thread::sleep(Duration::from_millis(100));
    }
    false
}
