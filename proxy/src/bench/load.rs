//! `--load`: a competing Linux load on the Linux core while FWQ runs — a busy
//! loop, memory traffic (copies through a buffer larger than the caches) and
//! file I/O (write, fsync, read back) — started before and stopped after the
//! configuration's runs.

use std::fs::{self, OpenOptions};
use std::hint::black_box;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use super::child::pin_self;

/// Bytes the memory-traffic thread copies through (twice this is allocated).
const MEMORY_BYTES: usize = 64 << 20;
/// Bytes the I/O thread writes and reads back per round.
const FILE_BYTES: usize = 4 << 20;

/// One kind of load: runs until the flag is set (the path is the I/O file).
type Work = fn(&AtomicBool, &PathBuf);

/// The running load; stopped (and its file removed) by `stop` or on drop.
pub struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    file: PathBuf,
}

impl Load {
    /// Starts the three load threads, each pinned to host CPU `cpu`.
    pub fn start(cpu: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let file = std::env::temp_dir().join(format!("mote-bench-load-{}", std::process::id()));
        let mut threads = Vec::new();
        let kinds: [(&str, Work); 3] = [("busy", busy), ("memory", memory), ("io", io)];
        for (name, work) in kinds {
            let stop = stop.clone();
            let file = file.clone();
            let spawned = thread::Builder::new()
                .name(format!("mote-load-{name}"))
                .spawn(move || {
                    if let Err(e) = pin_self(cpu) {
                        eprintln!("mote: bench: load thread {name}: cannot pin to CPU {cpu}: {e}");
                    }
                    work(&stop, &file);
                });
            match spawned {
                Ok(t) => threads.push(t),
                Err(e) => eprintln!("mote: bench: cannot start load thread {name}: {e}"),
            }
        }
        Load {
            stop,
            threads,
            file,
        }
    }

    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        let _ = fs::remove_file(&self.file);
    }
}

fn busy(stop: &AtomicBool, _: &PathBuf) {
    let mut x = 1u64;
    while !stop.load(Ordering::Relaxed) {
        for _ in 0..10_000 {
            x = black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
}

fn memory(stop: &AtomicBool, _: &PathBuf) {
    let mut a = vec![1u8; MEMORY_BYTES];
    let mut b = vec![2u8; MEMORY_BYTES];
    while !stop.load(Ordering::Relaxed) {
        b.copy_from_slice(&a);
        a[0] = a[0].wrapping_add(b[MEMORY_BYTES - 1]);
        black_box(&mut a);
    }
}

fn io(stop: &AtomicBool, path: &PathBuf) {
    let open = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path);
    let mut f = match open {
        Ok(f) => f,
        Err(e) => {
            eprintln!("mote: bench: load: cannot create {}: {e}", path.display());
            return;
        }
    };
    let block = vec![0x5au8; 64 << 10];
    let mut back = vec![0u8; 64 << 10];
    while !stop.load(Ordering::Relaxed) {
        let round = (|| -> std::io::Result<()> {
            f.seek(SeekFrom::Start(0))?;
            for _ in 0..FILE_BYTES / block.len() {
                f.write_all(&block)?;
            }
            f.sync_data()?;
            f.seek(SeekFrom::Start(0))?;
            for _ in 0..FILE_BYTES / block.len() {
                f.read_exact(&mut back)?;
            }
            Ok(())
        })();
        if let Err(e) = round {
            eprintln!("mote: bench: load: file I/O on {}: {e}", path.display());
            return;
        }
    }
}
