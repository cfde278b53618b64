//! The node-wide bound on spinning offload threads. Every mote run of a user on
//! the node maps one shared file, `/dev/shm/mote-spinners-<uid>`: for each host
//! CPU, `MAX_SPINNERS` slots holding the pid of the process whose offload thread
//! spins there now (0: free). An offload thread spins only while it holds a slot
//! of the CPU it runs on, so N ranks on a node never have more than
//! `MAX_SPINNERS` spinners per service CPU, however many ranks share it. A slot
//! left claimed by a process that died (killed while spinning) is taken back by
//! the next thread that finds every slot of its CPU taken and the owner gone.
//!
//! Where the file cannot be made or mapped, the bound is per process, as
//! before: `MAX_SPINNERS` per run.
//!
//! Allows `unsafe`: the shared mapping of the file, seen as atomic words.
#![allow(unsafe_code)]

use std::fs::OpenOptions;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::OnceLock;

/// Spinning offload threads per host CPU, node-wide (per user).
pub const MAX_SPINNERS: usize = 2;
/// Slots per CPU in the file (room to raise `MAX_SPINNERS` without a new layout).
const PER_CPU: usize = 4;
/// Host CPUs the file covers; offload threads on higher CPUs use the per-process bound.
const CPUS: usize = 4096;
const FILE_LEN: usize = CPUS * PER_CPU * 4;
/// Failed claims between two looks for slots of dead processes.
const SWEEP_EVERY: u32 = 64;

/// The mapped slots, or `None` where the file is unusable.
static NODE: OnceLock<Option<&'static [AtomicU32]>> = OnceLock::new();
/// The per-process bound where there is no file.
static LOCAL: AtomicUsize = AtomicUsize::new(0);
/// Failed claims since the last sweep.
static MISSES: AtomicU32 = AtomicU32::new(0);

/// A claim to spin; dropping it gives the slot back.
pub struct Claim(Held);

enum Held {
    Node(&'static AtomicU32),
    Local,
}

impl Drop for Claim {
    fn drop(&mut self) {
        match self.0 {
            Held::Node(slot) => slot.store(0, Ordering::Release),
            Held::Local => {
                LOCAL.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }
}

/// A slot to spin on host CPU `cpu`, if fewer than `MAX_SPINNERS` spin there.
pub fn claim(cpu: usize) -> Option<Claim> {
    match node() {
        Some(slots) => claim_in(slots, cpu),
        None => claim_local(),
    }
}

/// A claim under the per-process bound.
fn claim_local() -> Option<Claim> {
    if LOCAL.fetch_add(1, Ordering::AcqRel) < MAX_SPINNERS {
        return Some(Claim(Held::Local));
    }
    LOCAL.fetch_sub(1, Ordering::AcqRel);
    None
}

/// A slot of CPU `cpu` in the mapped `slots`.
fn claim_in(slots: &'static [AtomicU32], cpu: usize) -> Option<Claim> {
    if cpu >= CPUS {
        return claim_local();
    }
    let me = std::process::id();
    let mine = &slots[cpu * PER_CPU..cpu * PER_CPU + MAX_SPINNERS];
    for slot in mine {
        if slot.load(Ordering::Relaxed) == 0
            && slot
                .compare_exchange(0, me, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            return Some(Claim(Held::Node(slot)));
        }
    }
    if MISSES.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
        sweep(mine);
    }
    None
}

/// Free the slots whose owner no longer exists.
fn sweep(slots: &[AtomicU32]) {
    for slot in slots {
        let owner = slot.load(Ordering::Relaxed);
        if owner != 0 && !alive(owner) {
            let _ = slot.compare_exchange(owner, 0, Ordering::AcqRel, Ordering::Relaxed);
        }
    }
}

fn alive(pid: u32) -> bool {
    // Signal 0 checks existence only; EPERM means it exists (another user's).
    rustix::process::Pid::from_raw(pid as i32).is_none_or(|pid| {
        !matches!(
            rustix::process::test_kill_process(pid),
            Err(rustix::io::Errno::SRCH)
        )
    })
}

/// The shared slots, mapped on first use.
fn node() -> Option<&'static [AtomicU32]> {
    *NODE.get_or_init(|| match map() {
        Ok(slots) => Some(slots),
        Err(e) => {
            crate::note!("mote: spinner slots: {e}; bounding spinning offload threads per run");
            None
        }
    })
}

fn map() -> std::io::Result<&'static [AtomicU32]> {
    map_at(&format!(
        "/dev/shm/mote-spinners-{}",
        rustix::process::getuid().as_raw()
    ))
}

/// Map the slots file at `path`, made if missing.
fn map_at(path: &str) -> std::io::Result<&'static [AtomicU32]> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(path)?;
    let meta = file.metadata()?;
    if std::os::unix::fs::MetadataExt::uid(&meta) != rustix::process::getuid().as_raw() {
        return Err(std::io::Error::other(format!(
            "{path} belongs to another user"
        )));
    }
    if meta.len() < FILE_LEN as u64 {
        // Growing only: every run sets the same length, and a file's new bytes are zero.
        file.set_len(FILE_LEN as u64)?;
    }
    // SAFETY: a new shared mapping of FILE_LEN bytes of a file at least that long,
    // at an address Linux picks; nothing else is affected. The mapping is never
    // unmapped, so the slice below lives as long as the process.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            FILE_LEN,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the mapping is FILE_LEN bytes, page-aligned, readable and writable,
    // and lives for the rest of the process; AtomicU32 has u32's layout, and
    // every access to the shared words (here and in other processes) is atomic.
    Ok(unsafe { std::slice::from_raw_parts(p.cast::<AtomicU32>(), FILE_LEN / 4) })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Slots in a file of this test's own: the node's file is shared with every
    /// run and every other test process of the user, whose claims (or slots left
    /// by a killed one) would make these counts wrong.
    fn private_slots(name: &str) -> &'static [AtomicU32] {
        let path =
            std::env::temp_dir().join(format!("mote-spinners-test-{name}-{}", std::process::id()));
        let slots = map_at(path.to_str().unwrap()).unwrap();
        std::fs::remove_file(&path).unwrap();
        slots
    }

    #[test]
    fn at_most_max_spinners_per_cpu_and_a_dropped_claim_frees_its_slot() {
        let slots = private_slots("bound");
        let cpu = 7;
        let claims: Vec<Claim> = (0..MAX_SPINNERS)
            .filter_map(|_| claim_in(slots, cpu))
            .collect();
        assert_eq!(claims.len(), MAX_SPINNERS);
        assert!(claim_in(slots, cpu).is_none(), "a spinner beyond the bound");
        assert!(
            claim_in(slots, cpu + 1).is_some(),
            "another CPU has its own slots"
        );
        drop(claims);
        assert!(claim_in(slots, cpu).is_some());
    }

    #[test]
    fn a_slot_of_a_dead_process_is_taken_back() {
        let slots = private_slots("dead");
        let cpu = 3;
        // pid_max is at most 2^22: this pid cannot exist.
        let dead = 1 << 30;
        for slot in &slots[cpu * PER_CPU..cpu * PER_CPU + MAX_SPINNERS] {
            slot.store(dead, Ordering::Relaxed);
        }
        let mut got = None;
        for _ in 0..2 * SWEEP_EVERY {
            got = claim_in(slots, cpu);
            if got.is_some() {
                break;
            }
        }
        assert!(got.is_some(), "slots of a dead owner were never swept");
    }

    #[test]
    fn cpus_beyond_the_file_use_the_per_process_bound() {
        let slots = private_slots("beyond");
        let claims: Vec<Claim> = (0..MAX_SPINNERS + 1)
            .filter_map(|_| claim_in(slots, CPUS))
            .collect();
        assert!(claims.len() <= MAX_SPINNERS);
        assert!(claims.iter().all(|c| matches!(c.0, Held::Local)));
    }
}
