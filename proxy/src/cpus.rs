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
//! ([`host_cpus`]), the Linux core, pinning a thread ([`pin_to`]), and where the
//! offload threads go ([`offload_place`]). A run bound to one CPU (as MPI
//! launchers bind each rank) has its LWK core there; it marks that CPU as a
//! compute CPU with a shared `flock` on the same lock file, so that no other
//! run's offload threads take it as their service CPU. A leaf module: it uses
//! no other proxy module but `say`.

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

/// The host CPUs this process could be given with `sched_setaffinity`: its
/// binding, widened to every CPU its cpuset allows (a `taskset` mask widens, a
/// cgroup cpuset does not). Asked from a short-lived thread, so no thread of the
/// run changes its own set; the allowed set when that cannot be found out.
pub fn usable_cpus() -> Vec<usize> {
    let widened = std::thread::Builder::new()
        .name("mote-cpus".into())
        .spawn(|| {
            let mut all = CpuSet::new();
            for c in 0..CpuSet::MAX_CPU {
                all.set(c);
            }
            sched_setaffinity(None, &all).ok()?;
            Some(host_cpus())
        })
        .ok()
        .and_then(|t| t.join().ok().flatten());
    widened.unwrap_or_else(host_cpus)
}

/// Where a run's offload threads run, and whether they may spin there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OffloadPlace {
    /// The Linux core: the first allowed CPU, the LWK cores on the others.
    LinuxCore(usize),
    /// A CPU outside a one-CPU binding that no mote run computes on: a
    /// node-wide service CPU (every such run picks the same one).
    Service(usize),
    /// The binding's one CPU, which the LWK core computes on: the offload
    /// threads block at once instead of spinning.
    Shared(usize),
}

impl OffloadPlace {
    pub fn cpu(self) -> usize {
        match self {
            OffloadPlace::LinuxCore(c) | OffloadPlace::Service(c) | OffloadPlace::Shared(c) => c,
        }
    }

    /// Whether the offload threads poll for requests before sleeping.
    pub fn spins(self) -> bool {
        !matches!(self, OffloadPlace::Shared(_))
    }
}

impl std::fmt::Display for OffloadPlace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OffloadPlace::LinuxCore(c) => write!(f, "host CPU {c} (the Linux core; spinning)"),
            OffloadPlace::Service(c) => write!(
                f,
                "host CPU {c} (a service CPU outside the one-CPU binding; spinning)"
            ),
            OffloadPlace::Shared(c) => write!(
                f,
                "host CPU {c} (the one CPU allowed, the LWK core's: blocking, never spinning)"
            ),
        }
    }
}

/// The offload threads' place for a run bound to `allowed` that could use
/// `usable` (its cpuset), while other runs compute on `busy`. With more than
/// one CPU allowed, the Linux core (the first). With one: the highest usable
/// CPU outside the binding that no run computes on (launchers bind ranks from
/// CPU 0 up, so the top one is the last a rank gets), else the binding's CPU,
/// blocking — a spinning offload thread there would take time from the
/// computation it serves.
pub fn offload_place(allowed: &[usize], usable: &[usize], busy: &[usize]) -> OffloadPlace {
    match allowed {
        [] => OffloadPlace::Shared(0),
        [one] => usable
            .iter()
            .rev()
            .find(|&c| c != one && !busy.contains(c))
            .map_or(OffloadPlace::Shared(*one), |&c| OffloadPlace::Service(c)),
        [first, ..] => OffloadPlace::LinuxCore(*first),
    }
}

/// The offload threads' place for this process's binding, with the binding and
/// the CPUs it could widen to.
pub fn offload_place_now() -> (OffloadPlace, Vec<usize>, Vec<usize>) {
    let allowed = host_cpus();
    let usable = if allowed.len() == 1 {
        usable_cpus()
    } else {
        allowed.clone()
    };
    let outside: Vec<usize> = usable
        .iter()
        .copied()
        .filter(|c| !allowed.contains(c))
        .collect();
    let busy = busy_cpus(&outside);
    (offload_place(&allowed, &usable, &busy), allowed, usable)
}

/// Among `cpus`, those a mote run computes on now: their lock file is locked
/// (an LWK core's claim or a one-CPU run's mark), read from `/proc/locks`
/// without taking any lock, so a run starting at the same moment is not
/// disturbed.
pub fn busy_cpus(cpus: &[usize]) -> Vec<usize> {
    busy_in(Path::new(LOCK_DIR), cpus)
}

/// `/proc/locks`, kept open from [`keep_proc_locks`] on: a check while the
/// application runs must not open a descriptor, which would take a number the
/// application's next `open` gets natively.
static PROC_LOCKS: OnceLock<File> = OnceLock::new();

/// Open `/proc/locks` for later [`busy_cpus`] calls (before the proxy protects
/// its descriptors from the application).
pub fn keep_proc_locks() {
    if let Ok(f) = File::open("/proc/locks") {
        let _ = PROC_LOCKS.set(f);
    }
}

/// The text of `/proc/locks`: through the kept descriptor (read from offset 0
/// each time) when there is one.
/// Each read of `/proc/locks` takes Linux's file-lock semaphore for writing,
/// which can wait out an RCU grace period (milliseconds): read it in large
/// pieces, not `read_to_string`'s growing ones.
fn read_proc_locks() -> Option<String> {
    use std::os::unix::fs::FileExt;
    let opened;
    let f = match PROC_LOCKS.get() {
        Some(f) => f,
        None => {
            opened = File::open("/proc/locks").ok()?;
            &opened
        }
    };
    let mut text = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match f.read_at(&mut buf, text.len() as u64) {
            Ok(0) => break,
            Ok(n) => text.extend_from_slice(&buf[..n]),
            Err(_) => return None,
        }
    }
    Some(String::from_utf8_lossy(&text).into_owned())
}

fn busy_in(dir: &Path, cpus: &[usize]) -> Vec<usize> {
    if cpus.is_empty() {
        return Vec::new();
    }
    let Some(text) = read_proc_locks() else {
        return Vec::new();
    };
    let locked = locked_files(&text);
    cpus.iter()
        .copied()
        .filter(|&cpu| {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata(lock_path(dir, cpu)).is_ok_and(|m| {
                let id = (
                    rustix::fs::major(m.dev()),
                    rustix::fs::minor(m.dev()),
                    m.ino(),
                );
                locked.contains(&id)
            })
        })
        .collect()
}

/// The files `/proc/locks` lists a lock on, as (major, minor, inode); waiters
/// (`->` lines) are left out.
fn locked_files(text: &str) -> Vec<(u32, u32, u64)> {
    text.lines()
        .filter(|l| !l.contains("->"))
        .filter_map(|l| {
            let id = l.split_whitespace().nth(5)?;
            let mut parts = id.split(':');
            let major = u32::from_str_radix(parts.next()?, 16).ok()?;
            let minor = u32::from_str_radix(parts.next()?, 16).ok()?;
            let inode = parts.next()?.parse().ok()?;
            Some((major, minor, inode))
        })
        .collect()
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

/// Let the calling thread run on the CPUs it may run on now and on the host
/// CPUs of LWK cores `0..cores` (a helper of a thread whose LWK core waits
/// for it: `fork`'s copy).
pub fn widen_to_lwk_cores(cores: usize) {
    let mut cpus = host_cpus();
    cpus.extend((0..cores).map(lwk_host_cpu));
    allow_cpus(&cpus);
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
    let f = open_lock_file(path)?;
    flock(&f, FlockOperation::NonBlockingLockExclusive)
        .is_ok()
        .then_some(f)
}

/// `path` opened read-only for `flock`, created readable by all if missing.
fn open_lock_file(path: &Path) -> Option<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
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
        .ok()
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
    let mut all = HELD.lock().unwrap_or_else(|p| p.into_inner());
    all.extend(held);
    // Bound to one CPU: mark it as computed on (a shared lock: runs bound to the
    // same CPU all mark it), so other runs' offload threads stay off it.
    if let [one] = allowed[..] {
        all.extend(mark_compute(Path::new(LOCK_DIR), one));
    }
    let _ = CLAIMED.set(got.iter().map(|g| g.cpu()).collect());
}

/// A shared lock on `cpu`'s lock file in `dir`, held while a run computes on
/// it; None when the file cannot be had or a run holds it exclusively (it is
/// marked already).
fn mark_compute(dir: &Path, cpu: usize) -> Option<File> {
    let f = open_lock_file(&lock_path(dir, cpu))?;
    flock(&f, FlockOperation::NonBlockingLockShared)
        .is_ok()
        .then_some(f)
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
    fn offload_threads_of_a_multi_cpu_run_stay_on_the_linux_core() {
        assert_eq!(
            offload_place(&[2, 3, 4], &[0, 1, 2, 3, 4], &[]),
            OffloadPlace::LinuxCore(2)
        );
        assert!(OffloadPlace::LinuxCore(2).spins());
    }

    #[test]
    fn a_one_cpu_binding_puts_offload_threads_on_a_free_service_cpu() {
        // taskset -c 0 on a 4-CPU node, CPU 1 another rank's: the top free CPU.
        let place = offload_place(&[0], &[0, 1, 2, 3], &[1]);
        assert_eq!(place, OffloadPlace::Service(3));
        assert!(place.spins());
        // Every rank picks the same one.
        assert_eq!(offload_place(&[1], &[0, 1, 2, 3], &[0]), place);
        // The top one is taken: the next below.
        assert_eq!(
            offload_place(&[0], &[0, 1, 2, 3], &[3, 1]),
            OffloadPlace::Service(2)
        );
    }

    #[test]
    fn a_one_cpu_binding_without_a_free_cpu_blocks_instead_of_spinning() {
        // A cpuset of one CPU: nothing outside the binding.
        let place = offload_place(&[5], &[5], &[]);
        assert_eq!(place, OffloadPlace::Shared(5));
        assert!(!place.spins());
        // Every CPU outside is computed on (ranks fill the node).
        assert_eq!(offload_place(&[0], &[0, 1], &[1]), OffloadPlace::Shared(0));
    }

    #[test]
    fn proc_locks_lines_name_the_locked_files() {
        let text = "1: FLOCK  ADVISORY  WRITE 4242 00:1a:1234 0 EOF\n\
                    1: -> FLOCK  ADVISORY  WRITE 4243 00:1a:1234 0 EOF\n\
                    2: FLOCK  ADVISORY  READ 4244 fd:01:99 0 EOF\n\
                    3: OFDLCK ADVISORY  WRITE -1 08:02:77 0 EOF\n";
        assert_eq!(
            locked_files(text),
            vec![(0, 0x1a, 1234), (0xfd, 1, 99), (8, 2, 77)]
        );
    }

    #[test]
    fn a_one_cpu_run_marks_its_cpu_and_other_runs_see_it_busy() {
        let dir = temp_dir("mark");
        let a = mark_compute(&dir, 7).expect("first mark");
        // Runs bound to the same CPU all mark it.
        let b = mark_compute(&dir, 7).expect("second mark");
        // A multi-CPU run cannot claim it as an LWK core meanwhile, and
        // /proc/locks shows it busy (CPU 8's file exists, unlocked).
        assert!(try_lock(&lock_path(&dir, 7)).is_none());
        let _unlocked = open_lock_file(&lock_path(&dir, 8)).unwrap();
        assert_eq!(busy_in(&dir, &[6, 7, 8]), vec![7]);
        drop((a, b));
        assert_eq!(busy_in(&dir, &[6, 7, 8]), Vec::<usize>::new());
        assert!(try_lock(&lock_path(&dir, 7)).is_some());
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
