//! Which host CPUs a run's LWK cores get, so that concurrent runs on one node
//! (MPI ranks started as `mpiexec -n N mote run -- ./app`) each get cores of
//! their own instead of all landing on the same one.
//!
//! The first allowed host CPU is the Linux core, shared by every run (offload
//! threads). Each LWK core claims one of the other allowed CPUs by holding an
//! exclusive `flock` on `/dev/shm/mote-cpu<N>.lock` for the life of the run: the
//! kernel drops it when the run ends, however it ends, so nothing is left to
//! clean up. A file is created readable by all (`0644`) and locked through a
//! read-only descriptor, so runs of different users share the scheme. When every
//! candidate is held by another run, the core shares a CPU as it did before
//! claiming existed (`cpus[1 + i % (n - 1)]`); `--stats` and `MOTE_DEBUG` say
//! where each core went, `mote info` which CPUs other runs hold. No claim is made on a one-CPU machine, where the Linux
//! core and the LWK core share the CPU anyway.
//!
//! Also the host facts every part of the proxy asks about CPUs: the allowed set
//! ([`host_cpus`]), the Linux core, and pinning a thread ([`pin_to`]). A leaf
//! module: it uses no other proxy module but `say`.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use rustix::fs::{flock, FlockOperation};
use rustix::thread::{sched_getaffinity, sched_setaffinity, CpuSet};

/// The host CPUs this process may run on (its affinity set, as `taskset` or a
/// batch system gave it), ascending; never empty.
pub fn host_cpus() -> Vec<usize> {
    // sched_getaffinity(0) reads the calling thread's set (all threads of mote
    // start with the process's set).
    let Ok(set) = sched_getaffinity(None) else {
        return vec![0];
    };
    let cpus: Vec<usize> = (0..CpuSet::MAX_CPU).filter(|&c| set.is_set(c)).collect();
    if cpus.is_empty() {
        vec![0]
    } else {
        cpus
    }
}

/// The Linux core: the first allowed host CPU (offload threads run there).
pub fn linux_core() -> usize {
    host_cpus()[0]
}

/// Pin the calling thread to host CPU `cpu`.
pub fn pin_to(cpu: usize) -> io::Result<()> {
    if cpu >= CpuSet::MAX_CPU {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let mut set = CpuSet::new();
    set.set(cpu);
    sched_setaffinity(None, &set)?;
    Ok(())
}

/// Let the calling thread run on every CPU of `cpus` (those beyond the set's
/// range are left out); errors are ignored, as an unpinned thread still runs.
pub fn allow_cpus(cpus: &[usize]) {
    let mut set = CpuSet::new();
    for &c in cpus.iter().filter(|&&c| c < CpuSet::MAX_CPU) {
        set.set(c);
    }
    let _ = sched_setaffinity(None, &set);
}

/// Where the lock files live: tmpfs, shared by every process of the node.
const LOCK_DIR: &str = "/dev/shm";

/// The LWK cores' host CPUs, chosen once per run by [`claim`].
static CLAIMED: OnceLock<Vec<usize>> = OnceLock::new();

/// The locks this run holds (kept open until the process ends).
static HELD: Mutex<Vec<File>> = Mutex::new(Vec::new());

/// Host CPU of LWK core `i`: the one claimed for it, else the shared layout.
pub fn lwk_host_cpu(i: usize) -> usize {
    CLAIMED
        .get()
        .and_then(|c| c.get(i).copied())
        .unwrap_or_else(|| shared_layout(&host_cpus(), i))
}

/// The layout without claims: the allowed CPUs after the Linux core, wrapping;
/// the Linux core itself only when it is the only one allowed.
fn shared_layout(cpus: &[usize], i: usize) -> usize {
    if cpus.len() > 1 {
        cpus[1 + i % (cpus.len() - 1)]
    } else {
        cpus[0]
    }
}

/// How LWK core `i` got its CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Got {
    /// Claimed: no other mote run uses it.
    Own(usize),
    /// Every candidate was taken: shared with another run (or this run's
    /// other cores, with more cores than candidates).
    Shared(usize),
}

impl Got {
    pub fn cpu(self) -> usize {
        match self {
            Got::Own(c) | Got::Shared(c) => c,
        }
    }
}

/// Claim host CPUs for `cores` LWK cores among `allowed` (the Linux core first)
/// with locks in `dir`; the locks taken are returned with the choice.
fn claim_in(dir: &Path, allowed: &[usize], cores: usize) -> (Vec<Got>, Vec<File>) {
    let mut held = Vec::new();
    let mut got = Vec::new();
    let candidates = if allowed.len() > 1 {
        &allowed[1..]
    } else {
        &[][..]
    };
    let mut next = 0;
    for i in 0..cores {
        let mut mine = None;
        while next < candidates.len() {
            let cpu = candidates[next];
            next += 1;
            if let Some(f) = try_lock(&lock_path(dir, cpu)) {
                held.push(f);
                mine = Some(cpu);
                break;
            }
        }
        got.push(match mine {
            Some(cpu) => Got::Own(cpu),
            None => Got::Shared(shared_layout(allowed, i)),
        });
    }
    (got, held)
}

fn lock_path(dir: &Path, cpu: usize) -> PathBuf {
    dir.join(format!("mote-cpu{cpu}.lock"))
}

/// An exclusive lock on `path` (created if missing), or None when another
/// process holds it or the file cannot be had.
fn try_lock(path: &Path) -> Option<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(false)
        .create(false)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
        .or_else(|_| {
            // Create it readable by every user; another run may create it at
            // the same moment, which is as good.
            std::fs::OpenOptions::new()
                .read(true)
                .append(true)
                .create(true)
                .mode(0o644)
                .custom_flags(libc::O_CLOEXEC)
                .open(path)
        })
        .ok()?;
    flock(&f, FlockOperation::NonBlockingLockExclusive)
        .is_ok()
        .then_some(f)
}

/// Claim this run's LWK CPUs (once, from the main thread before any core
/// starts); says under `say` (`--stats`, `MOTE_DEBUG`) where each core goes.
pub fn claim(cores: usize, say: bool) {
    let allowed = host_cpus();
    let (got, held) = claim_in(Path::new(LOCK_DIR), &allowed, cores);
    if say {
        for (i, g) in got.iter().enumerate() {
            match g {
                Got::Own(c) => crate::say!("mote: LWK core {i} on host CPU {c}"),
                Got::Shared(c) if allowed.len() > 1 => crate::say!(
                    "mote: LWK core {i} on host CPU {c}, shared: every other allowed CPU is \
                     taken by another mote run or by this run's other cores"
                ),
                Got::Shared(c) => crate::say!(
                    "mote: LWK core {i} on host CPU {c}, the Linux core's (one CPU allowed)"
                ),
            }
        }
    }
    HELD.lock().unwrap_or_else(|p| p.into_inner()).extend(held);
    let _ = CLAIMED.set(got.iter().map(|g| g.cpu()).collect());
}

/// The allowed LWK candidates (not the Linux core) that another mote run holds
/// now, for `mote info`.
pub fn taken_by_others() -> Vec<usize> {
    let allowed = host_cpus();
    allowed
        .iter()
        .skip(1)
        .copied()
        .filter(|&cpu| {
            let path = lock_path(Path::new(LOCK_DIR), cpu);
            path.exists() && try_lock(&path).is_none()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("mote-cpus-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn concurrent_runs_get_cores_of_their_own_then_share() {
        let dir = temp_dir("claim");
        let allowed = [0, 1, 2, 3];
        // A first run with two cores takes CPUs 1 and 2.
        let (a, held_a) = claim_in(&dir, &allowed, 2);
        assert_eq!(a, vec![Got::Own(1), Got::Own(2)]);
        // A second takes what is left, then shares.
        let (b, held_b) = claim_in(&dir, &allowed, 2);
        assert_eq!(b, vec![Got::Own(3), Got::Shared(2)]);
        // The first run ends: its CPUs are free again.
        drop(held_a);
        let (c, _held_c) = claim_in(&dir, &allowed, 1);
        assert_eq!(c, vec![Got::Own(1)]);
        drop(held_b);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn one_cpu_shares_it_with_the_linux_core_and_claims_nothing() {
        let dir = temp_dir("one");
        let (got, held) = claim_in(&dir, &[5], 2);
        assert_eq!(got, vec![Got::Shared(5), Got::Shared(5)]);
        assert!(held.is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn without_claims_the_layout_wraps_over_the_cpus_after_the_linux_core() {
        assert_eq!(shared_layout(&[0, 1, 2], 0), 1);
        assert_eq!(shared_layout(&[0, 1, 2], 1), 2);
        assert_eq!(shared_layout(&[0, 1, 2], 2), 1);
        assert_eq!(shared_layout(&[3], 4), 3);
    }
}
