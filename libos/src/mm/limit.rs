//! `RLIMIT_AS`: the application's address-space limit, which Linux would
//! apply to the `mote` process as a whole (its mirror and guest memory
//! included), so the proxy keeps the application's value (`rlimits` there)
//! and libos applies it to the application's own mappings, as Linux's
//! `may_expand_vm`: a `mmap`, `mremap` or `brk` that would take the
//! application's mapped bytes past the soft limit fails with `ENOMEM` (`brk`
//! returns the old break). What counts: every VMA of the application's but the
//! heap's over-extension and the stubs of patched call sites (mote's); the
//! main stack counts with its whole 8 MiB VMA, where Linux counts what it
//! grew to.

use mote_abi::errno::Errno;

use super::{AddressSpace, VmaKind};

/// `RLIM_INFINITY`.
pub const UNLIMITED: u64 = u64::MAX;

impl AddressSpace {
    /// The bytes the application has mapped, as the limit counts them.
    pub fn total_vm(&self) -> u64 {
        self.mapped_in(0, u64::MAX)
    }

    /// The counted bytes mapped inside `[start, end)` (a fixed mapping's
    /// range: what it replaces does not grow the total).
    pub fn mapped_in(&self, start: u64, end: u64) -> u64 {
        self.vmas
            .iter()
            .filter(|(_, v)| !matches!(v.kind, VmaKind::HeapReserve | VmaKind::Stubs))
            .map(|(&s, v)| v.end.min(end).saturating_sub(s.max(start)))
            .sum()
    }

    /// The application's soft `RLIMIT_AS` as last read ([`UNLIMITED`]:
    /// none), `None` until it is read (`syscall::mm`).
    pub fn as_limit(&self) -> Option<u64> {
        self.as_limit
    }

    /// Remember the limit read from the proxy (`None`: read it again at the
    /// next growth, after a `setrlimit`).
    pub fn set_as_limit(&mut self, limit: Option<u64>) {
        self.as_limit = limit;
    }

    /// Whether `grow` more bytes stay within `limit`: `ENOMEM` if not.
    pub fn may_expand(&self, limit: u64, grow: u64) -> Result<(), Errno> {
        if limit == UNLIMITED || grow == 0 {
            return Ok(());
        }
        match self.total_vm().checked_add(grow) {
            Some(t) if t <= limit => Ok(()),
            _ => Err(Errno::ENOMEM),
        }
    }
}
