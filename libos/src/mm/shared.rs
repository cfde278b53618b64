//! Pass-through mappings: shared file and device mappings and System V shared
//! memory attachments (`shmat`, `shmdt`), whose pages are the proxy's Linux
//! mapping (a pass-through object), and the count of bytes still mapped from each
//! object, which releases it when it drops to zero.

use alloc::vec::Vec;

use mote_abi::errno::Errno;
use mote_abi::layout::{PAGE_SIZE, USER_END, USER_MMAP_TOP, USER_START};
use mote_abi::maplog::{KIND_MAP, KIND_UNMAP};
use syscalls::Sysno;

use crate::platform::{Platform, SharedMapping};
use crate::uapi::mman::*;
use crate::uapi::shm::{SHM_EXEC, SHM_RDONLY};

use super::backing::{change, Backing};
use super::{page_len, AddressSpace, Note, Vma, VmaKind};

/// A System V shared memory attachment: the pass-through object the proxy made for
/// it is the key of [`AddressSpace`]'s `sysv` map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct SysvAttach {
    pub(super) shmid: u64,
    /// Where it was attached: what `shmdt` names. Its pieces lie in
    /// `[va, va+len)` (moving a pass-through mapping is refused).
    pub(super) va: u64,
    pub(super) len: u64,
}

impl AddressSpace {
    /// Shared mapping of `fd` at the free range `[start, end)`: Linux maps it (the
    /// proxy), libos maps the pages before end-of-file.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn map_passthrough<P: Platform>(
        &mut self,
        p: &P,
        start: u64,
        end: u64,
        prot: u64,
        flags: u64,
        fd: u64,
        off: u64,
    ) -> Result<(), Errno> {
        let m = p.map_shared(start, end - start, prot, flags, fd, off)?;
        self.install_passthrough(p, start, end, prot, m)
    }

    /// `MAP_SHARED | MAP_ANONYMOUS`, or a shared mapping of `/dev/zero`, at the
    /// free range `[start, end)`: Linux gives each such mapping an object of
    /// its own in tmpfs (`shmem_zero_setup`), which a `fork` child shares. Here
    /// the same: a memfd from a forwarded `memfd_create` (its descriptor lives
    /// for this call only), sized to the mapping and passed through as a shared
    /// file is, so a forked child's proxy and VM (or process) map its pages too.
    /// `huge`: `MAP_HUGETLB` with these `MAP_HUGE_*` size bits, whose object
    /// Linux puts on hugetlbfs: a memfd there (`MFD_HUGETLB`, the same size
    /// bits), whose pages Linux takes at the proxy's `mmap` (`ENOMEM` when
    /// there are none, as natively).
    pub(super) fn map_shared_anon<P: Platform>(
        &mut self,
        p: &P,
        start: u64,
        end: u64,
        prot: u64,
        huge: Option<u64>,
    ) -> Result<(), Errno> {
        // In the runtime's image, which the proxy mirrors: a valid pointer there.
        static NAME: &[u8] = b"dev/zero\0";
        // Out of descriptors is out of memory for `mmap`.
        let err = |r: i64| match Errno::from_code((-r) as i32) {
            Some(Errno::EMFILE | Errno::ENFILE) | None => Errno::ENOMEM,
            Some(e) => e,
        };
        let fd = p.forward(
            Sysno::memfd_create as u64,
            [
                NAME.as_ptr() as u64,
                MFD_CLOEXEC | huge.map_or(0, |bits| MFD_HUGETLB | bits),
                0,
                0,
                0,
                0,
            ],
        );
        if fd < 0 {
            return Err(err(fd));
        }
        let fd = fd as u64;
        let sized = p.forward(Sysno::ftruncate as u64, [fd, end - start, 0, 0, 0, 0]);
        let r = if sized < 0 {
            Err(err(sized))
        } else {
            self.map_passthrough(p, start, end, prot, MAP_SHARED, fd, 0)
        };
        p.forward(Sysno::close as u64, [fd, 0, 0, 0, 0, 0]);
        r
    }

    /// Map pass-through object `m`, which the proxy placed at the free range
    /// `[start, end)`: its valid pages like RAM, the rest left to fault.
    pub(super) fn install_passthrough<P: Platform>(
        &mut self,
        p: &P,
        start: u64,
        end: u64,
        prot: u64,
        m: SharedMapping,
    ) -> Result<(), Errno> {
        let len = end - start;
        let valid = m.valid.min(len);
        if valid > 0 {
            if let Err(e) = self.kmap(p, start, m.gpa, valid, prot) {
                p.publish(change(KIND_UNMAP, start, len, 0));
                p.unshare(m.gpa);
                return Err(e);
            }
            self.backing.insert(
                start,
                Backing {
                    len: valid,
                    gpa: m.gpa,
                },
            );
            // Already in place in the proxy (its mapping is the mirror); published so
            // every mapped page has its entry, as for RAM.
            p.publish(change(KIND_MAP, start, valid, m.gpa));
        }
        self.vmas.insert(
            start,
            Vma {
                end,
                prot,
                kind: VmaKind::Passthrough {
                    gpa: m.gpa,
                    va: start,
                    may_write: m.may_write,
                },
                shared: true,
                growsdown: false,
                fork: Default::default(),
                policy: 0,
            },
        );
        // The proxy may hand out the same start again (another mapping of the same
        // file range shares its slot): one release when both are gone.
        *self.shared.entry(m.gpa).or_insert(0) += len;
        Ok(())
    }

    /// `shmat`: attach System V segment `shmid`, `len` bytes (its size, as Linux's
    /// `IPC_STAT` gave it; the whole page-rounded segment is mapped), whose key is
    /// `key`, at `addr` — page aligned (`SHM_RND` already applied) — or where libos
    /// chooses for 0 (aligned like any mapping of its size, so at least `SHMLBA`).
    /// Over existing mappings only with `SHM_REMAP` (else `EINVAL`), which replaces
    /// them, as Linux's `do_shmat` does. Read-write, or read-only with
    /// `SHM_RDONLY`, executable too with `SHM_EXEC`. Linux decides the rest in the
    /// proxy (`Platform::attach_shm`).
    #[allow(clippy::too_many_arguments)]
    pub fn shmat<P: Platform>(
        &mut self,
        p: &P,
        shmid: u64,
        addr: u64,
        shmflg: u64,
        len: u64,
        key: u32,
    ) -> Result<u64, Errno> {
        let len = page_len(len)?;
        if len == 0 || len > USER_END - USER_START {
            return Err(Errno::ENOMEM);
        }
        let remap = shmflg & crate::uapi::shm::SHM_REMAP != 0;
        let start = if addr != 0 {
            debug_assert!(addr.is_multiple_of(PAGE_SIZE));
            // Linux: an overlap without SHM_REMAP is EINVAL before do_mmap's checks.
            if !remap
                && addr
                    .checked_add(len)
                    .is_none_or(|e| !self.is_free_but_reserve(addr, e))
            {
                return Err(Errno::EINVAL);
            }
            if addr > USER_END - len {
                return Err(Errno::ENOMEM);
            }
            if addr < USER_START {
                return Err(Errno::EPERM);
            }
            addr
        } else {
            let align = self.placement_align(len);
            self.find_free(len, align, USER_START, USER_MMAP_TOP)
                .ok_or(Errno::ENOMEM)?
        };
        let end = start + len;
        let replaced = !self.is_free_but_reserve(start, end);
        self.remove_range(p, start, end)?;
        let m = match p.attach_shm(start, len, shmid, shmflg) {
            Ok(m) => m,
            Err(e) => {
                if e == Errno::EINVAL {
                    // The segment exists (IPC_STAT said so): Linux maps it larger
                    // than its size, or not at this alignment.
                    self.note(
                        p,
                        Note::SysvHuge,
                        "shmat: Linux refused the attachment with EINVAL although the segment exists: a SHM_HUGETLB segment whose size is not a multiple of the huge page size is not supported yet",
                    );
                }
                if replaced {
                    // Linux judges the id and the permissions before it unmaps
                    // anything; here its shmat comes after libos cleared the range.
                    self.note(
                        p,
                        Note::SysvRemap,
                        "shmat: an attach with SHM_REMAP failed after the mappings it was to replace were removed (Linux would have kept them)",
                    );
                }
                return Err(e);
            }
        };
        let mut prot = PROT_READ;
        if shmflg & SHM_RDONLY == 0 {
            prot |= PROT_WRITE;
        }
        if shmflg & SHM_EXEC != 0 {
            prot |= PROT_EXEC;
        }
        if let Err(e) = self.install_passthrough(p, start, end, prot, m) {
            // The application's own attachment goes too (the hosted platform's).
            let _ = p.unmap(start, len);
            return Err(e);
        }
        self.sysv.insert(
            m.gpa,
            SysvAttach {
                shmid,
                va: start,
                len,
            },
        );
        self.label(
            start,
            end,
            alloc::format!("/SYSV{key:08x} (deleted)").as_bytes(),
        );
        Ok(start)
    }

    /// `shmdt(addr)`: detach the attachment made at `addr`, every piece of it
    /// `munmap` or `mprotect` left; `EINVAL` if none was made there. Like Linux,
    /// which finds the first attachment VMA from `addr` up that was attached at
    /// `addr`, the attachment with the lowest piece goes when there are several.
    pub fn shmdt<P: Platform>(&mut self, p: &P, addr: u64) -> Result<(), Errno> {
        if !addr.is_multiple_of(PAGE_SIZE) {
            return Err(Errno::EINVAL);
        }
        let pieces = self
            .sysv
            .iter()
            .filter(|(_, a)| a.va == addr)
            .map(|(&gpa, a)| self.sysv_pieces(gpa, a))
            .filter(|pieces| !pieces.is_empty())
            .min_by_key(|pieces| pieces[0].0)
            .ok_or(Errno::EINVAL)?;
        for (s, e) in pieces {
            self.remove_range(p, s, e)?;
        }
        Ok(())
    }

    /// The VMA pieces of attachment `a` (object `gpa`), in address order.
    pub(super) fn sysv_pieces(&self, gpa: u64, a: &SysvAttach) -> Vec<(u64, u64)> {
        self.parts(a.va, a.va + a.len)
            .into_iter()
            .filter(|(_, _, v)| matches!(v.kind, VmaKind::Passthrough { gpa: g, .. } if g == gpa))
            .map(|(s, e, _)| (s, e))
            .collect()
    }

    /// Pieces of the application's attachments of segment `shmid` that are
    /// contiguous runs of address space: how many Linux attachments (VMAs) the
    /// proxy's mirror holds of it, which `mprotect` never splits.
    pub fn sysv_runs(&self, shmid: u64) -> u64 {
        let mut runs = 0;
        for (&gpa, a) in self.sysv.iter().filter(|(_, a)| a.shmid == shmid) {
            let mut last_end = None;
            for (s, e) in self.sysv_pieces(gpa, a) {
                if last_end != Some(s) {
                    runs += 1;
                }
                last_end = Some(e);
            }
        }
        runs
    }

    /// Pieces `(start, end, object)` of shared file mappings are gone: the proxy puts
    /// its reservation back over all of them (pages beyond end-of-file included), and
    /// an object no VMA uses any more is released.
    pub(super) fn release_shared<P: Platform>(&mut self, p: &P, pieces: &[(u64, u64, u64)]) {
        for &(s, e, obj) in pieces {
            p.publish(change(KIND_UNMAP, s, e - s, 0));
            let left = self.shared.get_mut(&obj).map(|b| {
                *b = b.saturating_sub(e - s);
                *b
            });
            if left == Some(0) {
                self.shared.remove(&obj);
                self.sysv.remove(&obj);
                p.unshare(obj);
            }
        }
    }
}
