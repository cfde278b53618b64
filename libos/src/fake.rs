//! A fake [`Platform`] for host tests: it simulates guest-physical memory, kernel-min's
//! page tables (with a page-table frame budget, so `give_tables` matters), the proxy's
//! mirror of the map log, and answers forwarded calls from a script.
//!
//! It is strict where the real machine would fail: touching an unmapped page, writing
//! a read-only page, mapping over a mapped page, or a forwarded read into memory the
//! proxy was never told about all panic with the address.
//!
//! Built for libos's own tests and, with the `fake` feature, for other crates' tests.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;

use mote_abi::errno::Errno;
use mote_abi::kcall::{MAP_PAGES_1G, MAP_PAGES_4K, PROT_MASK};
use mote_abi::layout::{HUGE_PAGE_SIZE, LARGE_PAGE_SIZE, PAGE_SIZE, PASSTHROUGH_GPA};
use mote_abi::maplog::{Change, KIND_MAP, KIND_PROTECT, KIND_UNMAP};
use mote_abi::trap::FaultReport;
use syscalls::Sysno;

use crate::platform::{Platform, SharedMapping};
use crate::uapi::mman::{PROT_NONE, PROT_WRITE};

/// The fd `State::shared` records for a System V attachment.
pub const SYSV_FD: u64 = u64::MAX;

/// A kernel call the fake saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KCall {
    Map {
        va: u64,
        gpa: u64,
        len: u64,
        prot: u64,
    },
    Unmap {
        va: u64,
        len: u64,
    },
    Protect {
        va: u64,
        len: u64,
        prot: u64,
    },
    GiveTables {
        gpa: u64,
        len: u64,
    },
    SetFs(u64),
}

/// Everything the fake records and simulates.
#[derive(Default, Debug)]
pub struct State {
    /// The fake TSC: advances 1000 ticks per read.
    pub tsc: u64,
    /// Guest-physical pages that were ever written (others read as zero).
    pub phys: BTreeMap<u64, Vec<u8>>,
    /// kernel-min's view: virtual page → (guest-physical page, prot).
    pub pages: BTreeMap<u64, (u64, u64)>,
    /// The proxy's mirror, built from published changes: virtual page → physical page.
    pub mirror: BTreeMap<u64, u64>,
    /// 2 MiB virtual blocks that already have a page table.
    pub tables: BTreeSet<u64>,
    /// Page-table frames kernel-min still has.
    pub table_frames: u64,
    pub calls: Vec<KCall>,
    pub published: Vec<Change>,
    pub forwarded: Vec<(u64, [u64; 6])>,
    /// Files by fd, served by forwarded `pread64`.
    pub files: BTreeMap<u64, Vec<u8>>,
    /// Results of other forwarded calls by number (default `-ENOSYS`).
    pub replies: BTreeMap<u64, i64>,
    pub logs: Vec<String>,
    /// `Platform::poke` writes in order: (address, bytes).
    pub pokes: Vec<(u64, Vec<u8>)>,
    /// Files the proxy can map shared, by fd: (size, open for writing).
    pub shareable: BTreeMap<u64, (u64, bool)>,
    /// Live pass-through objects: guest-physical start → (length, fd, offset).
    pub shared: BTreeMap<u64, (u64, u64, u64)>,
    /// System V segments the proxy can attach, by id: (size, writable by us).
    /// Their pass-through objects are in `shared` with fd [`SYSV_FD`] and the
    /// id as the offset.
    pub segments: BTreeMap<u64, (u64, bool)>,
    /// What `shm_views` reports (0: the default, 1).
    pub shm_views: u64,
    /// Next free offset in the pass-through window.
    pub shared_next: u64,
    /// What `page_faults` reports.
    pub page_faults: u64,
    /// Size of the page mapping each mapped virtual page (kernel-min's rule: the
    /// largest size the `map` call's alignment, length and page-size bits allow).
    pub page_size: BTreeMap<u64, u64>,
    /// Guest-physical memory the platform maps only in whole, aligned 2 MiB
    /// pages (the hosted platform's hugetlbfs memory): `map`, `unmap` and
    /// `protect` of part of such a page panic, as Linux refuses them (EINVAL).
    pub whole_only: Option<(u64, u64)>,
    /// How many whole-only 2 MiB pages the platform can still back (`None`: as
    /// many as asked); a `map` needing more fails with ENOSPC, as the hosted
    /// platform's when Linux has no free hugetlbfs pages. Pages once backed stay.
    pub whole_only_budget: Option<u64>,
    pub whole_only_backed: BTreeSet<u64>,
    /// What `debugging` answers (`MOTE_DEBUG`).
    pub debugging: bool,
    /// What `calls_in_flight` reports, and the last request each slot answered.
    pub in_flight: Vec<(u32, u32)>,
    pub answered: BTreeMap<u32, u32>,
    /// A platform whose host owns the page tables (`builds_page_tables` false),
    /// with what its `map` fails with (the hosted platform's Linux `mmap`).
    pub host_tables: Option<Errno>,
}

impl State {
    /// kernel-min's rule for `protect`/`unmap` of `[va, va+len)`: a 2 MiB page
    /// the range covers only in part is split into a table of 4 KiB entries,
    /// which takes a page-table frame; without one the call fails (ENOMEM).
    fn split_tables(&mut self, va: u64, len: u64) -> Result<(), Errno> {
        let (start, end) = (va & !(LARGE_PAGE_SIZE - 1), va + len);
        let mut need = BTreeSet::new();
        let mut block = start;
        while block < end {
            let partial = block < va || block + LARGE_PAGE_SIZE > end;
            let large = self.page_size.get(&block.max(va)) == Some(&LARGE_PAGE_SIZE);
            if partial && large && !self.tables.contains(&block) {
                need.insert(block);
            }
            block += LARGE_PAGE_SIZE;
        }
        if need.len() as u64 > self.table_frames {
            return Err(Errno::ENOMEM);
        }
        self.table_frames -= need.len() as u64;
        for b in &need {
            for (_, size) in self.page_size.range_mut(*b..*b + LARGE_PAGE_SIZE) {
                *size = PAGE_SIZE;
            }
        }
        self.tables.extend(need);
        Ok(())
    }

    /// An unmap or protect of `[va, va+len)` must not cut into a whole-only page.
    fn check_whole(&self, va: u64, len: u64, what: &str) {
        let Some((ws, we)) = self.whole_only else {
            return;
        };
        for (&v, &(gpa, _)) in self.pages.range(va..va + len) {
            if gpa >= ws && gpa < we {
                let chunk = v & !(LARGE_PAGE_SIZE - 1);
                assert!(
                    chunk >= va && chunk + LARGE_PAGE_SIZE <= va + len,
                    "fake: {what} of part of a whole-only 2 MiB page at {chunk:#x}: [{va:#x}, {:#x})",
                    va + len
                );
            }
        }
    }
}

/// The fake platform.
#[derive(Default, Debug)]
pub struct FakePlatform {
    pub st: RefCell<State>,
}

impl FakePlatform {
    /// A fake with no page-table frames (libos must give some before mapping).
    pub fn new() -> Self {
        Self::default()
    }

    /// Serve `data` as the file behind `fd`.
    pub fn add_file(&self, fd: u64, data: Vec<u8>) {
        self.st.borrow_mut().files.insert(fd, data);
    }

    /// Let the proxy map `fd` shared: a file of `size` bytes, writable or not.
    pub fn add_shareable(&self, fd: u64, size: u64, writable: bool) {
        self.st.borrow_mut().shareable.insert(fd, (size, writable));
    }

    /// Let the proxy attach System V segment `shmid` of `size` bytes, writable or
    /// only readable.
    pub fn add_segment(&self, shmid: u64, size: u64, writable: bool) {
        self.st
            .borrow_mut()
            .segments
            .insert(shmid, (size, writable));
    }

    /// Answer forwarded call `nr` with `ret`.
    pub fn reply(&self, nr: Sysno, ret: i64) {
        self.st.borrow_mut().replies.insert(nr as u64, ret);
    }

    /// Kernel calls so far, then forget them.
    pub fn take_calls(&self) -> Vec<KCall> {
        core::mem::take(&mut self.st.borrow_mut().calls)
    }

    /// Published changes so far, then forget them.
    pub fn take_published(&self) -> Vec<Change> {
        core::mem::take(&mut self.st.borrow_mut().published)
    }

    /// Forwarded call numbers so far.
    pub fn forwarded_nrs(&self) -> Vec<u64> {
        self.st.borrow().forwarded.iter().map(|f| f.0).collect()
    }

    /// kernel-min's mapping of the page holding `va`: (guest-physical page, prot).
    pub fn mapping(&self, va: u64) -> Option<(u64, u64)> {
        self.st
            .borrow()
            .pages
            .get(&(va & !(PAGE_SIZE - 1)))
            .copied()
    }

    /// Assert that the proxy's mirror (built from published changes) agrees with
    /// kernel-min's mappings page for page: the unified address space holds.
    pub fn assert_mirror_matches(&self) {
        let st = self.st.borrow();
        let lwk: BTreeMap<u64, u64> = st.pages.iter().map(|(&va, &(gpa, _))| (va, gpa)).collect();
        assert_eq!(
            lwk, st.mirror,
            "the proxy's mirror differs from kernel-min's tables"
        );
    }

    /// The code writes made so far (`Platform::poke`).
    pub fn pokes(&self) -> Vec<(u64, Vec<u8>)> {
        self.st.borrow().pokes.clone()
    }

    /// Read user memory ignoring protection (a test's view); panics if unmapped.
    pub fn peek(&self, va: u64, len: usize) -> Vec<u8> {
        let mut out = vec![0; len];
        self.access(
            va,
            len,
            |st, gpa, i, n| {
                let page = st.phys.get(&(gpa & !(PAGE_SIZE - 1)));
                let o = (gpa % PAGE_SIZE) as usize;
                if let Some(pg) = page {
                    out[i..i + n].copy_from_slice(&pg[o..o + n]);
                }
            },
            None,
        );
        out
    }

    /// Write user memory ignoring protection (a test's view); panics if unmapped.
    pub fn poke(&self, va: u64, data: &[u8]) {
        self.access(
            va,
            data.len(),
            |st, gpa, i, n| {
                phys_write(st, gpa, &data[i..i + n]);
            },
            None,
        );
    }

    /// Walk `[va, va+len)` page by page through kernel-min's tables, checking `need`
    /// (`Some(write)`) against the page protections.
    fn access(
        &self,
        va: u64,
        len: usize,
        mut f: impl FnMut(&mut State, u64, usize, usize),
        need: Option<bool>,
    ) {
        let mut st = self.st.borrow_mut();
        let mut i = 0usize;
        while i < len {
            let a = va + i as u64;
            let page = a & !(PAGE_SIZE - 1);
            let Some(&(gpa, prot)) = st.pages.get(&page) else {
                panic!("fake: access to unmapped user address {a:#x}");
            };
            match need {
                Some(true) if prot & PROT_WRITE == 0 => {
                    panic!("fake: write to read-only page {a:#x} (prot {prot})")
                }
                Some(false) if prot == PROT_NONE => {
                    panic!("fake: read of PROT_NONE page {a:#x}")
                }
                _ => {}
            }
            let n = ((page + PAGE_SIZE - a) as usize).min(len - i);
            f(&mut st, gpa + (a - page), i, n);
            i += n;
        }
    }

    /// The proxy writing `data` at `va` through its mirror (forwarded calls).
    fn proxy_write(&self, va: u64, data: &[u8]) {
        let mut st = self.st.borrow_mut();
        let mut i = 0usize;
        while i < data.len() {
            let a = va + i as u64;
            let page = a & !(PAGE_SIZE - 1);
            let Some(&gpa) = st.mirror.get(&page) else {
                panic!("fake proxy: {a:#x} was never published to the proxy");
            };
            let n = ((page + PAGE_SIZE - a) as usize).min(data.len() - i);
            phys_write(&mut st, gpa + (a - page), &data[i..i + n]);
            i += n;
        }
    }
}

fn phys_write(st: &mut State, gpa: u64, data: &[u8]) {
    let page = gpa & !(PAGE_SIZE - 1);
    let o = (gpa % PAGE_SIZE) as usize;
    let pg = st
        .phys
        .entry(page)
        .or_insert_with(|| vec![0; PAGE_SIZE as usize]);
    pg[o..o + data.len()].copy_from_slice(data);
}

impl Platform for FakePlatform {
    fn map(&self, va: u64, gpa: u64, len: u64, prot: u64) -> Result<(), Errno> {
        assert!(
            va.is_multiple_of(PAGE_SIZE)
                && gpa.is_multiple_of(PAGE_SIZE)
                && len.is_multiple_of(PAGE_SIZE)
        );
        let mut st = self.st.borrow_mut();
        st.calls.push(KCall::Map { va, gpa, len, prot });
        if let Some(e) = st.host_tables {
            return Err(e);
        }
        if let Some((ws, we)) = st.whole_only {
            if gpa < we && gpa + len > ws {
                let whole = |x: u64| x.is_multiple_of(LARGE_PAGE_SIZE);
                assert!(
                    whole(va) && whole(gpa) && whole(len) && gpa >= ws && gpa + len <= we,
                    "fake: map of part of a whole-only 2 MiB page: va {va:#x} gpa {gpa:#x} len {len:#x}"
                );
                let chunks: Vec<u64> = (gpa..gpa + len)
                    .step_by(LARGE_PAGE_SIZE as usize)
                    .filter(|c| !st.whole_only_backed.contains(c))
                    .collect();
                if let Some(left) = st.whole_only_budget {
                    if (chunks.len() as u64) > left {
                        return Err(Errno::ENOSPC);
                    }
                    st.whole_only_budget = Some(left - chunks.len() as u64);
                }
                st.whole_only_backed.extend(chunks);
            }
        }
        let n = len / PAGE_SIZE;
        if (0..n).any(|i| st.pages.contains_key(&(va + i * PAGE_SIZE))) {
            return Err(Errno::EEXIST);
        }
        // Page tables needed: one per 2 MiB block not covered by a large page.
        let large = va.is_multiple_of(LARGE_PAGE_SIZE) && gpa.is_multiple_of(LARGE_PAGE_SIZE);
        let mut need = BTreeSet::new();
        let mut a = va;
        while a < va + len {
            let block = a & !(LARGE_PAGE_SIZE - 1);
            let whole = large && a + LARGE_PAGE_SIZE <= va + len;
            if !whole && !st.tables.contains(&block) {
                need.insert(block);
            }
            a = if whole {
                a + LARGE_PAGE_SIZE
            } else {
                a + PAGE_SIZE
            };
        }
        if need.len() as u64 > st.table_frames {
            return Err(Errno::ENOMEM);
        }
        st.table_frames -= need.len() as u64;
        st.tables.extend(need);
        let max = match prot & (MAP_PAGES_4K | MAP_PAGES_1G) {
            MAP_PAGES_4K => PAGE_SIZE,
            MAP_PAGES_1G => HUGE_PAGE_SIZE,
            _ => LARGE_PAGE_SIZE,
        };
        let prot = prot & PROT_MASK;
        let mut off = 0;
        while off < len {
            let (v, g) = (va + off, gpa + off);
            let size = [HUGE_PAGE_SIZE, LARGE_PAGE_SIZE]
                .into_iter()
                .find(|&s| s <= max && v.is_multiple_of(s) && g.is_multiple_of(s) && len - off >= s)
                .unwrap_or(PAGE_SIZE);
            for i in 0..size / PAGE_SIZE {
                st.pages
                    .insert(v + i * PAGE_SIZE, (g + i * PAGE_SIZE, prot));
                st.page_size.insert(v + i * PAGE_SIZE, size);
            }
            off += size;
        }
        Ok(())
    }

    fn unmap(&self, va: u64, len: u64) -> Result<(), Errno> {
        let mut st = self.st.borrow_mut();
        st.calls.push(KCall::Unmap { va, len });
        st.check_whole(va, len, "unmap");
        st.split_tables(va, len)?;
        let keys: Vec<u64> = st.pages.range(va..va + len).map(|(&k, _)| k).collect();
        for k in keys {
            st.pages.remove(&k);
            st.page_size.remove(&k);
        }
        Ok(())
    }

    fn protect(&self, va: u64, len: u64, prot: u64) -> Result<(), Errno> {
        let mut st = self.st.borrow_mut();
        st.calls.push(KCall::Protect { va, len, prot });
        st.check_whole(va, len, "protect");
        st.split_tables(va, len)?;
        for (_, e) in st.pages.range_mut(va..va + len) {
            e.1 = prot;
        }
        Ok(())
    }

    fn give_tables(&self, gpa: u64, len: u64) -> Result<(), Errno> {
        let mut st = self.st.borrow_mut();
        st.calls.push(KCall::GiveTables { gpa, len });
        st.table_frames += len / PAGE_SIZE;
        Ok(())
    }

    fn set_fs(&self, base: u64) {
        self.st.borrow_mut().calls.push(KCall::SetFs(base));
    }

    fn publish(&self, c: Change) {
        let mut st = self.st.borrow_mut();
        st.published.push(c);
        for i in 0..c.len / PAGE_SIZE {
            match c.kind {
                KIND_MAP => {
                    st.mirror
                        .insert(c.va + i * PAGE_SIZE, c.gpa + i * PAGE_SIZE);
                }
                KIND_UNMAP => {
                    st.mirror.remove(&(c.va + i * PAGE_SIZE));
                }
                // The proxy's protection of its mirror: nothing to keep here
                // (`published` records it).
                KIND_PROTECT => {}
                k => panic!("fake: unknown change kind {k}"),
            }
        }
    }

    fn zero(&self, va: u64, len: u64) {
        self.access(
            va,
            len as usize,
            |st, gpa, _, n| {
                phys_write(st, gpa, &vec![0; n]);
            },
            Some(true),
        );
    }

    fn write_mem(&self, va: u64, data: &[u8]) {
        self.access(
            va,
            data.len(),
            |st, gpa, i, n| {
                phys_write(st, gpa, &data[i..i + n]);
            },
            Some(true),
        );
    }

    fn tsc(&self) -> u64 {
        let mut st = self.st.borrow_mut();
        st.tsc += 1000;
        st.tsc
    }

    fn poke(&self, va: u64, data: &[u8]) -> Result<(), Errno> {
        self.st.borrow_mut().pokes.push((va, data.to_vec()));
        self.access(
            va,
            data.len(),
            |st, gpa, i, n| {
                phys_write(st, gpa, &data[i..i + n]);
            },
            None,
        );
        Ok(())
    }

    fn read_mem(&self, va: u64, buf: &mut [u8]) {
        let len = buf.len();
        self.access(
            va,
            len,
            |st, gpa, i, n| {
                let page = gpa & !(PAGE_SIZE - 1);
                let o = (gpa % PAGE_SIZE) as usize;
                match st.phys.get(&page) {
                    Some(pg) => buf[i..i + n].copy_from_slice(&pg[o..o + n]),
                    None => buf[i..i + n].fill(0),
                }
            },
            Some(false),
        );
    }

    fn fstat(&self, fd: u64, st: &mut [u8]) -> i64 {
        self.st
            .borrow_mut()
            .forwarded
            .push((Sysno::fstat as u64, [fd, 0, 0, 0, 0, 0]));
        let Some(len) = self.st.borrow().files.get(&fd).map(|f| f.len() as u64) else {
            return Errno::EBADF.ret();
        };
        // A regular file: device 1, inode `fd`, its size.
        st.fill(0);
        st[crate::uapi::stat::ST_MODE..][..4]
            .copy_from_slice(&crate::uapi::stat::S_IFREG.to_le_bytes());
        st[0..8].copy_from_slice(&1u64.to_le_bytes());
        st[8..16].copy_from_slice(&fd.to_le_bytes());
        st[crate::uapi::stat::ST_SIZE..][..8].copy_from_slice(&len.to_le_bytes());
        0
    }

    fn forward(&self, nr: u64, args: [u64; 6]) -> i64 {
        self.st.borrow_mut().forwarded.push((nr, args));
        // Shared anonymous memory's memfd (`mm::shared`): a new shareable file,
        // sized by ftruncate, unless a test set a reply.
        if nr == Sysno::memfd_create as u64 && !self.st.borrow().replies.contains_key(&nr) {
            let mut st = self.st.borrow_mut();
            let fd = 900 + st.shareable.len() as u64;
            st.shareable.insert(fd, (0, true));
            return fd as i64;
        }
        if nr == Sysno::ftruncate as u64 {
            if let Some(f) = self.st.borrow_mut().shareable.get_mut(&args[0]) {
                f.0 = args[1];
                return 0;
            }
        }
        if nr == Sysno::pread64 as u64 {
            let [fd, va, len, off, ..] = args;
            let chunk = {
                let st = self.st.borrow();
                let Some(file) = st.files.get(&fd) else {
                    return Errno::EBADF.ret();
                };
                let s = (off as usize).min(file.len());
                let e = (off.saturating_add(len) as usize).min(file.len());
                file[s..e].to_vec()
            };
            if !chunk.is_empty() {
                self.proxy_write(va, &chunk);
            }
            return chunk.len() as i64;
        }
        let st = self.st.borrow();
        st.replies.get(&nr).copied().unwrap_or(Errno::ENOSYS.ret())
    }

    fn map_shared(
        &self,
        va: u64,
        len: u64,
        prot: u64,
        _flags: u64,
        fd: u64,
        off: u64,
    ) -> Result<SharedMapping, Errno> {
        assert!(va.is_multiple_of(PAGE_SIZE) && len.is_multiple_of(PAGE_SIZE));
        let mut st = self.st.borrow_mut();
        let &(size, writable) = st.shareable.get(&fd).ok_or(Errno::ENODEV)?;
        if prot & PROT_WRITE != 0 && !writable {
            return Err(Errno::EACCES);
        }
        // Like the proxy, a mapping within a live object's range of the same file
        // shares it.
        let same = st
            .shared
            .iter()
            .find(|(_, &(l, f, o))| f == fd && o == off && len <= l)
            .map(|(&g, _)| g);
        if let Some(gpa) = same {
            let valid = size
                .saturating_sub(off)
                .next_multiple_of(PAGE_SIZE)
                .min(len);
            return Ok(SharedMapping {
                gpa,
                valid,
                may_write: writable,
            });
        }
        let gpa = PASSTHROUGH_GPA + st.shared_next.next_multiple_of(LARGE_PAGE_SIZE);
        st.shared_next = gpa - PASSTHROUGH_GPA + len;
        st.shared.insert(gpa, (len, fd, off));
        let valid = size
            .saturating_sub(off)
            .next_multiple_of(PAGE_SIZE)
            .min(len);
        Ok(SharedMapping {
            gpa,
            valid,
            may_write: writable,
        })
    }

    fn attach_shm(
        &self,
        va: u64,
        len: u64,
        shmid: u64,
        shmflg: u64,
    ) -> Result<SharedMapping, Errno> {
        assert!(va.is_multiple_of(PAGE_SIZE) && len.is_multiple_of(PAGE_SIZE));
        let mut st = self.st.borrow_mut();
        let &(size, writable) = st.segments.get(&shmid).ok_or(Errno::EINVAL)?;
        let read_only = shmflg & crate::uapi::shm::SHM_RDONLY != 0;
        if !read_only && !writable {
            return Err(Errno::EACCES);
        }
        assert_eq!(
            len,
            size.next_multiple_of(PAGE_SIZE),
            "fake: the whole segment"
        );
        let gpa = PASSTHROUGH_GPA + st.shared_next.next_multiple_of(LARGE_PAGE_SIZE);
        st.shared_next = gpa - PASSTHROUGH_GPA + len;
        st.shared.insert(gpa, (len, SYSV_FD, shmid));
        Ok(SharedMapping {
            gpa,
            valid: len,
            may_write: !read_only,
        })
    }

    fn shm_views(&self) -> u64 {
        self.st.borrow().shm_views.max(1)
    }

    fn shared_len(&self, gpa: u64) -> u64 {
        let st = self.st.borrow();
        let &(len, fd, off) = st.shared.get(&gpa).expect("fake: unknown object");
        if fd == SYSV_FD {
            return len;
        }
        let size = st.shareable[&fd].0;
        size.saturating_sub(off)
            .next_multiple_of(PAGE_SIZE)
            .min(len)
    }

    fn unshare(&self, gpa: u64) {
        let mut st = self.st.borrow_mut();
        assert!(
            st.shared.remove(&gpa).is_some(),
            "fake: unshare of unknown object {gpa:#x}"
        );
    }

    fn builds_page_tables(&self) -> bool {
        self.st.borrow().host_tables.is_none()
    }

    fn calls_in_flight(&self) -> Vec<(u32, u32)> {
        self.st.borrow().in_flight.clone()
    }

    fn call_answered(&self, slot: u32, seq: u32) -> bool {
        self.st
            .borrow()
            .answered
            .get(&slot)
            .is_some_and(|&a| a >= seq)
    }

    fn page_faults(&self) -> u64 {
        self.st.borrow().page_faults
    }

    fn page_sizes(&self, va: u64, len: u64) -> [u64; 3] {
        let st = self.st.borrow();
        let mut out = [0; 3];
        for (_, &size) in st.page_size.range(va..va.saturating_add(len)) {
            let i = match size {
                PAGE_SIZE => 0,
                LARGE_PAGE_SIZE => 1,
                _ => 2,
            };
            out[i] += PAGE_SIZE;
        }
        out
    }

    fn exit(&self, status: i32) -> ! {
        panic!("fake: exit({status})")
    }

    fn die(&self, signal: u32, fault: Option<&FaultReport>) -> ! {
        panic!(
            "fake: killed by signal {signal} (fault: {})",
            fault.is_some()
        )
    }

    fn debugging(&self) -> bool {
        self.st.borrow().debugging
    }
    fn log(&self, msg: &str) {
        self.st.borrow_mut().logs.push(msg.into());
    }
}

/// A process (pid 4242, a 64 MiB partition with its pool at 16 MiB) with `len`
/// bytes of private read-write anonymous memory mapped on `p`, and that
/// memory's address: the set-up of tests that need application memory (a
/// signal frame's stack, a call's argument page).
pub fn process_with_memory(p: &FakePlatform, len: u64) -> (crate::process::Process, u64) {
    use crate::uapi::mman::{MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE};
    let boot = mote_abi::boot::BootInfo {
        pid: 4242,
        pool_start: 16 << 20,
        mem_size: 64 << 20,
        ..Default::default()
    };
    let mut pr = crate::process::Process::new(&boot);
    let va = crate::syscall::mm::mmap(
        &mut pr,
        p,
        0,
        len,
        PROT_READ | PROT_WRITE,
        MAP_PRIVATE | MAP_ANONYMOUS,
        u64::MAX,
        0,
    )
    .expect("mmap of the test memory") as u64;
    (pr, va)
}

/// A fake of the runtime's machine part of threads (`syscall::thread::Machine`)
/// over a platform: one process, one thread table, the calling thread `tid` on
/// `core`. A block (`reschedule`) returns at once, the thread woken as `wake_as`
/// says (or still blocked if it says nothing); kicks and blocks are recorded; the
/// proxy's offload servers answer `server_tid`.
pub struct FakeMachine<P> {
    pub p: P,
    pub process: crate::syscall::thread::ProcessLock,
    pub threads: crate::syscall::thread::ThreadsLock,
    pub tid: core::cell::Cell<u32>,
    pub core: core::cell::Cell<usize>,
    pub tsc_khz: u64,
    pub trapped: bool,
    /// How a thread that blocks is woken (`None`: it is not).
    pub wake_as: core::cell::Cell<Option<crate::sched::Wake>>,
    /// The state each block left the running thread in.
    pub blocks: RefCell<Vec<crate::sched::State>>,
    pub kicks: RefCell<Vec<usize>>,
    /// What `start_server` and `fork_server` answer.
    pub server_tid: i64,
    /// Slots given a new thread's context.
    pub contexts: RefCell<Vec<(usize, u64)>>,
    /// `end_threads` calls, in order.
    pub ended: RefCell<Vec<bool>>,
}

impl<P: Platform> FakeMachine<P> {
    /// The process `pr` with its main thread (tid `pr.pid`) on core 0 of `ncores`.
    pub fn new(p: P, pr: crate::process::Process, ncores: usize) -> Self {
        let tid = pr.pid;
        FakeMachine {
            p,
            process: spin::Mutex::new(Some(pr)),
            threads: spin::Mutex::new(Some(crate::sched::Threads::new(ncores, tid, 64))),
            tid: core::cell::Cell::new(tid),
            core: core::cell::Cell::new(0),
            tsc_khz: 1_000_000,
            trapped: true,
            wake_as: core::cell::Cell::new(None),
            blocks: RefCell::new(Vec::new()),
            kicks: RefCell::new(Vec::new()),
            server_tid: 777,
            contexts: RefCell::new(Vec::new()),
            ended: RefCell::new(Vec::new()),
        }
    }
}

impl<P: Platform> crate::syscall::thread::Machine<P> for FakeMachine<P> {
    fn platform(&self) -> &P {
        &self.p
    }
    fn process(&self) -> &crate::syscall::thread::ProcessLock {
        &self.process
    }
    fn threads(&self) -> &crate::syscall::thread::ThreadsLock {
        &self.threads
    }
    fn tid(&self) -> u32 {
        self.tid.get()
    }
    fn core(&self) -> usize {
        self.core.get()
    }
    fn tsc_khz(&self) -> u64 {
        self.tsc_khz
    }
    fn reschedule(&self, mut g: spin::MutexGuard<'_, Option<crate::sched::Threads>>) {
        let t = g.as_mut().expect("threads");
        let me = self.tid.get();
        let (state, core) = t
            .get(me)
            .map(|x| (x.state, x.core))
            .expect("running thread");
        self.blocks.borrow_mut().push(state);
        // While `execve` ends the other threads, the runtime ends each doomed
        // one where it passes through, and its core reaps it: all of them
        // before the caller runs again, here.
        let doomed: Vec<u32> = t.tids().filter(|&x| t.is_doomed(x)).collect();
        for tid in doomed {
            t.end_now(tid);
            t.reap(tid);
            if let Some(c) = t.exec_wake() {
                self.kicks.borrow_mut().push(c);
                assert_eq!(t.pick(c, 0, |_| false), Some(me), "fake: runs again");
                return;
            }
        }
        if let Some(w) = self.wake_as.get() {
            t.wake_thread(me, w);
            assert_eq!(t.pick(core, 0, |_| false), Some(me), "fake: runs again");
        }
    }
    fn kick(&self, core: usize) {
        self.kicks.borrow_mut().push(core);
    }
    fn update_word(&self, addr: u64, f: &mut dyn FnMut(u32) -> Option<u32>) -> Option<u32> {
        let mut b = [0u8; 4];
        self.p.read_mem(addr, &mut b);
        let old = u32::from_le_bytes(b);
        let new = f(old)?;
        self.p.write_mem(addr, &new.to_le_bytes());
        Some(old)
    }
    fn trapped(&self) -> bool {
        self.trapped
    }
    fn start_server(&self, _slot: usize) -> i64 {
        self.server_tid
    }
    fn fork_server(&self, _slot: usize) -> i64 {
        self.server_tid
    }
    fn fork_process(&self, _set_tid: u64, _clear_tid: u64) -> i64 {
        self.server_tid
    }
    fn vfork_wait(&self, _tid: u32, _slot: usize) -> i64 {
        0
    }
    fn spawn_exec(
        &self,
        _path: u64,
        _argv: u64,
        _envp: u64,
        _sigs: crate::syscall::thread::ExecSignals,
    ) -> i64 {
        Errno::ENOENT.ret()
    }
    fn new_context(&self, slot: usize, stack: u64) -> bool {
        self.contexts.borrow_mut().push((slot, stack));
        true
    }
    fn is_vfork_child(&self) -> bool {
        false
    }
    fn end_threads(&self, on: bool) {
        self.ended.borrow_mut().push(on);
    }
    fn became(&self, tid: u32) {
        self.tid.set(tid);
    }
}
