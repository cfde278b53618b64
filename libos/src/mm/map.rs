//! Creating mappings: `mmap` from a typed [`MapRequest`] (the syscall layer has
//! checked the raw arguments), [`AddressSpace::map_fixed`] for the ELF loader and
//! the stack, fresh VMAs over free ranges, and private file copies filled by
//! forwarded reads ([`read_file_into`]).

use alloc::vec::Vec;

use mote_abi::errno::Errno;
use mote_abi::layout::{
    HUGE_PAGE_SIZE, LARGE_PAGE_SIZE, PAGE_SIZE, USER_END, USER_MMAP_TOP, USER_START,
};

use crate::frames::FrameSize;
use crate::platform::Platform;
use crate::uapi::mman::*;

use super::file_copy;
use super::{AddressSpace, Note, Vma, VmaKind};

/// `MAP_32BIT` window (as Linux's x86_64 `find_start_end`).
const MAP_32BIT_LO: u64 = 0x4000_0000;
const MAP_32BIT_HI: u64 = 0x8000_0000;

/// Where a new mapping goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// Where libos chooses: at `hint` (page aligned) if the range there is free user
    /// space, else the highest free range aligned for the length (large mappings
    /// where large pages can map them), below 2 GiB with `low32` (`MAP_32BIT`).
    Anywhere { hint: u64, low32: bool },
    /// Exactly at `addr` (page aligned, the range inside user space): replacing what
    /// is there (`MAP_FIXED`), or with `replace` false (`MAP_FIXED_NOREPLACE`)
    /// `EEXIST` if anything but the heap reserve is.
    Fixed { addr: u64, replace: bool },
}

/// What a new mapping holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapSource {
    /// Fresh zeroed memory from the pool. `shared` for `MAP_SHARED` (there is no
    /// other process to share with yet, so it behaves as private memory);
    /// `dev_zero` for a shared mapping of `/dev/zero`, which is anonymous shared
    /// memory in Linux and is named after it.
    Anonymous { shared: bool, dev_zero: bool },
    /// A private copy of the file open as `fd`, from offset `off`, read in by
    /// forwarded `pread64` calls.
    PrivateFile { fd: u64, off: u64 },
    /// A shared mapping of the file or device open as `fd`, from offset `off`,
    /// passed through from Linux (the proxy maps it with `mmap` flags `flags`).
    SharedFile { fd: u64, off: u64, flags: u64 },
    /// `MAP_SHARED | MAP_ANONYMOUS | MAP_HUGETLB`: Linux's object is a file on
    /// its internal hugetlbfs, which a `fork` child shares. Here the same: a
    /// hugetlbfs memfd (`MFD_HUGETLB` with the request's `MAP_HUGE_*` size
    /// bits, `size_bits`), passed through as a shared file is.
    SharedHuge { size_bits: u64 },
}

/// An `mmap` whose raw arguments the syscall layer has checked and decoded
/// (`crate::syscall::mm::map_request`): what [`AddressSpace::map`] maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapRequest {
    pub placement: Placement,
    /// Length: a nonzero multiple of the page size (of 2 MiB for a hugetlbfs file)
    /// no larger than user space; a fixed range lies inside user space.
    pub len: u64,
    /// `PROT_READ`, `PROT_WRITE` and `PROT_EXEC` bits only.
    pub prot: u64,
    pub source: MapSource,
    /// Placed by libos at least 2 MiB aligned (`MAP_HUGETLB`, a hugetlbfs file).
    pub huge: bool,
    /// `MAP_GROWSDOWN`: anonymous memory grows down on a fault just below it.
    pub growsdown: bool,
}

impl MapRequest {
    /// Private anonymous memory of `len` bytes (a nonzero page multiple) with
    /// protection `prot`, at the page-aligned `hint` if it is free, else where libos
    /// chooses: `mmap(hint, len, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)`.
    pub fn anonymous(hint: u64, len: u64, prot: u64) -> Self {
        MapRequest {
            placement: Placement::Anywhere { hint, low32: false },
            len,
            prot,
            source: MapSource::Anonymous {
                shared: false,
                dev_zero: false,
            },
            huge: false,
            growsdown: false,
        }
    }
}

impl AddressSpace {
    /// `mmap` of a request the syscall layer has checked
    /// (`crate::syscall::mm::map_request`): place it, replacing what is there for a
    /// fixed placement, map it, and name it after its file. Returns its start.
    pub fn map<P: Platform>(&mut self, p: &P, req: &MapRequest) -> Result<u64, Errno> {
        let len = req.len;
        let (start, fixed) = match req.placement {
            Placement::Fixed { addr, replace } => {
                // The heap reserve is free space for the application.
                if !replace && !self.is_free_but_reserve(addr, addr + len) {
                    return Err(Errno::EEXIST);
                }
                (addr, true)
            }
            Placement::Anywhere { hint, low32 } => {
                if hint >= USER_START && hint <= USER_END - len && self.is_free(hint, hint + len) {
                    (hint, false)
                } else {
                    let page = match req.source {
                        // 1 GiB pages (`MAP_HUGE_1GB`) lie 1 GiB aligned.
                        MapSource::SharedHuge { size_bits } if size_bits >> 26 == 30 => {
                            HUGE_PAGE_SIZE
                        }
                        _ => LARGE_PAGE_SIZE,
                    };
                    let align = if req.huge {
                        self.placement_align(len).max(page)
                    } else {
                        self.placement_align(len)
                    };
                    let (lo, hi) = if low32 {
                        (MAP_32BIT_LO, MAP_32BIT_HI)
                    } else {
                        (USER_START, USER_MMAP_TOP)
                    };
                    (
                        self.find_free(len, align, lo, hi).ok_or(Errno::ENOMEM)?,
                        false,
                    )
                }
            }
        };
        let end = start + len;
        let prot = req.prot;
        let mut copy = None;

        match req.source {
            MapSource::Anonymous { shared: true, .. } => {
                if fixed {
                    self.remove_range(p, start, end)?;
                }
                self.map_shared_anon(p, start, end, prot, None)?;
            }
            MapSource::SharedHuge { size_bits } => {
                if fixed {
                    self.remove_range(p, start, end)?;
                }
                self.map_shared_anon(p, start, end, prot, Some(size_bits))?;
            }
            MapSource::Anonymous { shared: false, .. } => {
                if fixed {
                    self.remove_range(p, start, end)?;
                }
                if let Err(e) = self.map_new(p, start, end, prot, VmaKind::Anon, false) {
                    self.note_oom(p, e, len);
                    return Err(e);
                }
                if req.growsdown {
                    self.set_growsdown(start, end);
                }
            }
            MapSource::SharedFile { fd, off, flags } => {
                if fixed {
                    self.remove_range(p, start, end)?;
                }
                self.map_passthrough(p, start, end, prot, flags, fd, off)?;
            }
            MapSource::PrivateFile { fd, off } => {
                // Who the file is: to be remembered (read-only) or to find the
                // same bytes already copied under the new mapping (`file_copy`).
                copy = (prot == PROT_READ || (fixed && self.has_copies(start, end)))
                    .then(|| file_copy::file_id(p, fd, off))
                    .flatten();
                if fixed && copy.is_some_and(|id| self.holds_copy(start, end, &id)) {
                    self.reuse_copy(p, start, end, prot)?;
                } else {
                    // Anonymous memory filled by forwarded reads straight into place
                    // (the proxy sees the same addresses), then the requested
                    // protection.
                    if fixed {
                        self.remove_range(p, start, end)?;
                    }
                    self.map_new(p, start, end, PROT_READ | PROT_WRITE, VmaKind::File, false)?;
                    if let Err(e) = read_file_into(p, fd, start, len, off) {
                        // Just mapped by us: its ends cut nothing.
                        let _ = self.remove_range(p, start, end);
                        return Err(e);
                    }
                    if prot != PROT_READ | PROT_WRITE {
                        self.change_prot(p, start, end, prot)?;
                    }
                }
            }
        }
        match req.source {
            // As Linux names shared anonymous memory (its object's name).
            MapSource::Anonymous { dev_zero: true, .. }
            | MapSource::Anonymous { shared: true, .. } => {
                self.label(start, end, b"/dev/zero (deleted)");
            }
            MapSource::SharedHuge { .. } => {
                self.label(start, end, b"/anon_hugepage (deleted)");
            }
            MapSource::Anonymous { .. } => {}
            MapSource::PrivateFile { fd, .. } | MapSource::SharedFile { fd, .. } => {
                if let Some(name) = fd_path(p, fd) {
                    self.label(start, end, &name);
                    if let Some(id) = copy.filter(|_| prot == PROT_READ) {
                        self.mark_copy(start, end, id);
                    }
                }
            }
        }
        Ok(start)
    }

    /// Map fresh zeroed memory at the fixed range `[va, va+len)` (page aligned),
    /// replacing whatever is there: the ELF loader and the stack use this.
    pub fn map_fixed<P: Platform>(
        &mut self,
        p: &P,
        va: u64,
        len: u64,
        prot: u64,
        kind: VmaKind,
    ) -> Result<(), Errno> {
        if !va.is_multiple_of(PAGE_SIZE) || !len.is_multiple_of(PAGE_SIZE) || len == 0 {
            return Err(Errno::EINVAL);
        }
        if va < USER_START || va > USER_END - len {
            return Err(Errno::ENOMEM);
        }
        self.remove_range(p, va, va + len)?;
        self.map_new(p, va, va + len, prot, kind, false)
    }

    /// Add a VMA over the free range `[start, end)` and back it (unless it is a
    /// `PROT_NONE` reservation).
    pub(super) fn map_new<P: Platform>(
        &mut self,
        p: &P,
        start: u64,
        end: u64,
        prot: u64,
        kind: VmaKind,
        shared: bool,
    ) -> Result<(), Errno> {
        debug_assert!(self.is_free(start, end));
        self.vmas.insert(
            start,
            Vma {
                end,
                prot,
                kind,
                shared,
                growsdown: false,
                fork: Default::default(),
                policy: 0,
            },
        );
        if prot != PROT_NONE {
            if let Err(e) = self.populate(p, start, end, prot) {
                self.vmas.remove(&start);
                return Err(e);
            }
        }
        self.merge_around(start, end);
        Ok(())
    }

    /// A mapping of `len` bytes failed for want of memory: say so once, with the fix.
    pub(super) fn note_oom<P: Platform>(&mut self, p: &P, e: Errno, len: u64) {
        if e != Errno::ENOMEM || self.noted & Note::OutOfMemory as u32 != 0 {
            return;
        }
        let free = self.frames.available() >> 20;
        let (start, end) = self.frames.range();
        // Of what is left, how much only 2 MiB-aligned mappings can use.
        let whole_only = free.saturating_sub(self.frames.available_in(FrameSize::Small) >> 20);
        let split = if whole_only > 0 {
            alloc::format!(
                " ({whole_only} MiB of it only in whole 2 MiB pages: hugetlbfs memory, which 4 KiB pieces cannot use; --page-size 4k puts all of --mem on ordinary pages)"
            )
        } else {
            alloc::string::String::new()
        };
        self.note(
            p,
            Note::OutOfMemory,
            &alloc::format!(
                "out of partition memory: a mapping of {} MiB does not fit in the {free} MiB left of {} MiB{split}; the application gets ENOMEM (give the partition more with mote run --mem)",
                len.div_ceil(1 << 20),
                (end - start) >> 20
            ),
        );
    }
}

/// The path Linux has for descriptor `fd` (`readlink /proc/self/fd/N`), if any.
fn fd_path<P: Platform>(p: &P, fd: u64) -> Option<Vec<u8>> {
    let mut link = alloc::format!("/proc/self/fd/{}", fd as i32).into_bytes();
    link.push(0);
    let mut buf = alloc::vec![0u8; 4096];
    // The proxy writes the link's text into `buf` (unified address space).
    let r = p.forward(
        syscalls::Sysno::readlinkat as u64,
        [
            crate::uapi::fcntl::AT_FDCWD,
            p.addr_of(&link),
            buf.as_mut_ptr() as u64,
            buf.len() as u64,
            0,
            0,
        ],
    );
    (r > 0 && (r as usize) < buf.len()).then(|| {
        buf.truncate(r as usize);
        buf
    })
}

/// Fill mapped, writable user memory `[va, va+len)` with the file's bytes from `off`
/// by forwarded `pread64` calls straight into place; bytes past the end of the file
/// stay as they are (zero).
pub fn read_file_into<P: Platform>(
    p: &P,
    fd: u64,
    va: u64,
    len: u64,
    off: u64,
) -> Result<(), Errno> {
    let mut done = 0;
    while done < len {
        let r = p.forward(
            syscalls::Sysno::pread64 as u64,
            [fd, va + done, len - done, off + done, 0, 0],
        );
        if r < 0 {
            return Err(crate::errno::from_result(r));
        }
        if r == 0 {
            break;
        }
        done += r as u64;
    }
    Ok(())
}
