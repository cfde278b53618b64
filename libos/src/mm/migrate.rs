//! Moving a page between NUMA nodes (`move_pages` with target nodes, `mbind`
//! with `MPOL_MF_MOVE`, `migrate_pages`): a frame from the target node's
//! pool, the contents copied through a scratch mapping of both frames, the new
//! frame mapped in the old one's place with the same protection, and the change
//! published to the proxy's mirror through the map log, as `mmap` publishes.
//!
//! The copy is safe only while nothing else can write the old frame: the
//! application's other threads through their own mappings, and forwarded calls
//! through the proxy's mirror, which still maps the old frame until the proxy
//! has applied the log. libos cannot hold forwarded calls back (they take no
//! lock), so the system-call layer moves pages only while the process has one
//! thread, and reports a page it cannot move as Linux reports a page it cannot
//! isolate (`EBUSY`, `crate::syscall::numa`).

use mote_abi::errno::Errno;
use mote_abi::kcall::MAP_PAGES_4K;
use mote_abi::layout::{PAGE_SIZE, USER_MMAP_TOP, USER_START};
use mote_abi::maplog::{KIND_MAP, KIND_PROTECT, KIND_UNMAP};

use crate::frames::FrameSize;
use crate::platform::Platform;
use crate::uapi::mman::*;

use super::backing::{change, Backing};
use super::vma::split;
use super::{AddressSpace, VmaKind};

impl AddressSpace {
    /// The node index of the frame behind `va`, if it is backed.
    pub fn node_at(&self, va: u64) -> Option<usize> {
        self.translate(va).map(|gpa| self.frames.node_of(gpa))
    }

    /// Move the 4 KiB page at `va` to node index `node` (nothing to do when it
    /// is there already). `EFAULT`: no backed page of the application there;
    /// `EBUSY`: a page of a pass-through mapping (Linux's memory, not the
    /// partition's); `ENOMEM`: the node has no free frame. On an error nothing
    /// changed.
    pub fn move_page<P: Platform>(&mut self, p: &P, va: u64, node: usize) -> Result<(), Errno> {
        let va = va & !(PAGE_SIZE - 1);
        let (_, v) = self.vma_at(va).ok_or(Errno::EFAULT)?;
        let (prot, pass) = (v.prot, matches!(v.kind, VmaKind::Passthrough { .. }));
        let old = self.translate(va).ok_or(Errno::EFAULT)?;
        if pass {
            return Err(Errno::EBUSY);
        }
        if self.frames.node_of(old) == node || node >= self.frames.nodes() {
            return if node < self.frames.nodes() {
                Ok(())
            } else {
                Err(Errno::ENOMEM)
            };
        }
        // A whole-only 2 MiB page (hosted hugetlbfs) is split first, as Linux
        // splits a transparent huge page to move part of it.
        self.split_whole_chunk(p, va)?;
        self.split_whole_chunk(p, va + PAGE_SIZE)?;
        let old = self.translate(va).ok_or(Errno::EFAULT)?;
        let new = self.frames.alloc_on(node, PAGE_SIZE, FrameSize::Small)?[0];
        // 1. Both frames side by side at a scratch address; copy.
        let Some(scratch) = self.find_free(2 * PAGE_SIZE, PAGE_SIZE, USER_START, USER_MMAP_TOP)
        else {
            self.frames.free(new.gpa, PAGE_SIZE);
            return Err(Errno::ENOMEM);
        };
        let rw = PROT_READ | PROT_WRITE | MAP_PAGES_4K;
        let mapped = self
            .kmap(p, scratch, old, PAGE_SIZE, rw)
            .and_then(|_| self.kmap(p, scratch + PAGE_SIZE, new.gpa, PAGE_SIZE, rw));
        if let Err(e) = mapped {
            let _ = p.unmap(scratch, 2 * PAGE_SIZE);
            self.frames.free(new.gpa, PAGE_SIZE);
            return Err(e);
        }
        let mut buf = [0u8; 512];
        for off in (0..PAGE_SIZE).step_by(buf.len()) {
            p.read_mem(scratch + off, &mut buf);
            p.write_mem(scratch + PAGE_SIZE + off, &buf);
        }
        let _ = p.unmap(scratch, 2 * PAGE_SIZE);
        // 2. The new frame in the old one's place.
        split(&mut self.backing, va);
        split(&mut self.backing, va + PAGE_SIZE);
        self.kunmap(p, va, PAGE_SIZE)?;
        if let Err(e) = self.kmap(p, va, new.gpa, PAGE_SIZE, prot | MAP_PAGES_4K) {
            // Put the old frame back: the address space is as before.
            let _ = self.kmap(p, va, old, PAGE_SIZE, prot | MAP_PAGES_4K);
            self.frames.free(new.gpa, PAGE_SIZE);
            return Err(e);
        }
        // 3. The proxy's mirror follows (applied before the call returns).
        p.publish(change(KIND_UNMAP, va, PAGE_SIZE, old));
        p.publish(change(KIND_MAP, va, PAGE_SIZE, new.gpa));
        if prot != PROT_READ | PROT_WRITE {
            p.publish(change(KIND_PROTECT, va, PAGE_SIZE, prot));
        }
        self.backing.insert(
            va,
            Backing {
                len: PAGE_SIZE,
                gpa: new.gpa,
            },
        );
        self.frames.free(old, PAGE_SIZE);
        Ok(())
    }
}
