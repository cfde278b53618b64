//! The policy note `mote link` writes into a program (an ELF note in a `PT_NOTE`
//! segment) and `mote run` / `mote info FILE` read: how the program wants its
//! partition, when the `mote run` command line does not say.
//!
//! The note is the ELF note header (`namesz`, `descsz`, `type`, 4-byte words), the
//! name `"mote\0"` padded to 8 bytes, then a [`Policy`] (`descsz` = its size). A field
//! at 0 means "not set": `mote run`'s default applies. The reader checks every field
//! ([`Policy::parse`]): a note of mote's name and type that is not exactly this is
//! refused, never half-read.

use static_assertions::{const_assert, const_assert_eq};

/// The note's name (`namesz` counts the NUL).
pub const NAME: &[u8; 5] = b"mote\0";
/// The note's type: the policy.
pub const NT_MOTE_POLICY: u32 = 1;
/// [`Policy::version`] this layout is.
pub const VERSION: u32 = 1;

/// [`Policy::flags`]: leave the program's remaining system-call sites trapping
/// (`mote run --no-patch`).
pub const F_NO_PATCH: u32 = 1 << 0;
/// [`Policy::flags`]: the program's system-call sites were rewritten by `mote
/// link` (informational).
pub const F_LINKED: u32 = 1 << 1;
/// [`Policy::flags`]: [`Policy::time_slice_ms`] is set (`mote run --time-slice`;
/// its 0, never preempt, is a value, so the field cannot mean "unset" by 0).
pub const F_TIME_SLICE: u32 = 1 << 2;
/// [`Policy::flags`]: under mote the program's interpreter is the rewritten copy
/// of ld.so `mote link` wrote beside it (`PATH.libs/ld-linux-x86-64.so.2`, for the
/// program at `PATH`), not its `PT_INTERP`'s (which runs natively).
pub const F_OWN_INTERP: u32 = 1 << 3;
/// The file name of that copy.
pub const OWN_INTERP_NAME: &[u8] = b"ld-linux-x86-64.so.2";
/// Every flag this version knows.
pub const F_ALL: u32 = F_NO_PATCH | F_LINKED | F_TIME_SLICE | F_OWN_INTERP;
/// The longest time slice a note may carry, in ms (as `mote run --time-slice`).
pub const TIME_SLICE_MAX_MS: u32 = 3_600_000;

/// Page sizes [`Policy::page_size`] may name (besides 0, unset).
pub const PAGE_SIZES: [u64; 3] = [4 << 10, 2 << 20, 1 << 30];

/// The note's descriptor.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    /// [`VERSION`].
    pub version: u32,
    /// `F_*` bits.
    pub flags: u32,
    /// `--page-size` in bytes (one of [`PAGE_SIZES`]; 0: unset).
    pub page_size: u64,
    /// `--mem` in bytes (0: unset).
    pub mem: u64,
    /// `--cores` (0: unset).
    pub cores: u32,
    /// `--time-slice` in ms, when [`F_TIME_SLICE`] is set (else 0). Was a
    /// reserved zero word: notes written before it read the same.
    pub time_slice_ms: u32,
}

const_assert_eq!(core::mem::size_of::<Policy>(), 32);
const_assert_eq!(core::mem::offset_of!(Policy, version), 0);
const_assert_eq!(core::mem::offset_of!(Policy, flags), 4);
const_assert_eq!(core::mem::offset_of!(Policy, page_size), 8);
const_assert_eq!(core::mem::offset_of!(Policy, mem), 16);
const_assert_eq!(core::mem::offset_of!(Policy, cores), 24);
const_assert_eq!(core::mem::offset_of!(Policy, time_slice_ms), 28);

/// Size of the descriptor.
pub const DESC_SIZE: usize = core::mem::size_of::<Policy>();
/// Size of the whole note: header (12), name padded to 8, descriptor.
pub const NOTE_SIZE: usize = 12 + 8 + DESC_SIZE;
const_assert!(NOTE_SIZE.is_multiple_of(4));

/// Why a note was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoteError {
    /// `descsz` is not the size of [`Policy`].
    Size(u32),
    /// A version this mote does not know.
    Version(u32),
    /// Flag bits this version does not know.
    Flags(u32),
    /// A page size that is none of [`PAGE_SIZES`].
    PageSize(u64),
    /// A time slice without [`F_TIME_SLICE`], or above [`TIME_SLICE_MAX_MS`].
    TimeSlice(u32),
}

impl core::fmt::Display for NoteError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            NoteError::Size(n) => write!(f, "its descriptor is {n} bytes, not {DESC_SIZE}"),
            NoteError::Version(v) => {
                write!(f, "version {v}; this mote reads version {VERSION}")
            }
            NoteError::Flags(x) => write!(f, "unknown flag bits {x:#x}"),
            NoteError::PageSize(p) => {
                write!(f, "page size {p} bytes is none of 4k, 2m, 1g")
            }
            NoteError::TimeSlice(t) => write!(
                f,
                "time slice {t} ms is above {TIME_SLICE_MAX_MS} or not marked as set"
            ),
        }
    }
}

impl Policy {
    /// The note's bytes (header, name, descriptor), little-endian.
    pub fn to_note(&self) -> [u8; NOTE_SIZE] {
        let mut b = [0u8; NOTE_SIZE];
        b[0..4].copy_from_slice(&(NAME.len() as u32).to_le_bytes());
        b[4..8].copy_from_slice(&(DESC_SIZE as u32).to_le_bytes());
        b[8..12].copy_from_slice(&NT_MOTE_POLICY.to_le_bytes());
        b[12..17].copy_from_slice(NAME);
        let d = &mut b[20..];
        d[0..4].copy_from_slice(&self.version.to_le_bytes());
        d[4..8].copy_from_slice(&self.flags.to_le_bytes());
        d[8..16].copy_from_slice(&self.page_size.to_le_bytes());
        d[16..24].copy_from_slice(&self.mem.to_le_bytes());
        d[24..28].copy_from_slice(&self.cores.to_le_bytes());
        d[28..32].copy_from_slice(&self.time_slice_ms.to_le_bytes());
        b
    }

    /// Read and check a descriptor (the bytes after a note header whose name is
    /// [`NAME`] and type [`NT_MOTE_POLICY`]).
    pub fn parse(desc: &[u8]) -> Result<Policy, NoteError> {
        if desc.len() != DESC_SIZE {
            return Err(NoteError::Size(desc.len() as u32));
        }
        let u32_at = |o: usize| u32::from_le_bytes(desc[o..o + 4].try_into().expect("4 bytes"));
        let u64_at = |o: usize| u64::from_le_bytes(desc[o..o + 8].try_into().expect("8 bytes"));
        let p = Policy {
            version: u32_at(0),
            flags: u32_at(4),
            page_size: u64_at(8),
            mem: u64_at(16),
            cores: u32_at(24),
            time_slice_ms: u32_at(28),
        };
        if p.version != VERSION {
            return Err(NoteError::Version(p.version));
        }
        if p.flags & !F_ALL != 0 {
            return Err(NoteError::Flags(p.flags & !F_ALL));
        }
        if p.page_size != 0 && !PAGE_SIZES.contains(&p.page_size) {
            return Err(NoteError::PageSize(p.page_size));
        }
        let slice_set = p.flags & F_TIME_SLICE != 0;
        if p.time_slice_ms > TIME_SLICE_MAX_MS || (!slice_set && p.time_slice_ms != 0) {
            return Err(NoteError::TimeSlice(p.time_slice_ms));
        }
        Ok(p)
    }
}

/// Find mote's policy note in the contents of a `PT_NOTE` segment: `Ok(None)` when
/// there is none; a malformed mote note, or a note list that runs past its end, is
/// an error (`Err(None)` for the latter: the segment itself is damaged).
pub fn find(notes: &[u8]) -> Result<Option<Policy>, Option<NoteError>> {
    let mut at = 0usize;
    let pad4 = |n: usize| n.checked_add(3).map(|n| n & !3);
    while at < notes.len() {
        let header = notes.get(at..at + 12).ok_or(None)?;
        let word = |i: usize| u32::from_le_bytes(header[i..i + 4].try_into().expect("4 bytes"));
        let (namesz, descsz, ty) = (word(0) as usize, word(4) as usize, word(8));
        let name_at = at + 12;
        let desc_at = pad4(namesz)
            .and_then(|n| name_at.checked_add(n))
            .ok_or(None)?;
        let end = pad4(descsz)
            .and_then(|d| desc_at.checked_add(d))
            .ok_or(None)?;
        let name = notes.get(name_at..name_at + namesz).ok_or(None)?;
        let desc = notes.get(desc_at..desc_at + descsz).ok_or(None)?;
        if name == NAME && ty == NT_MOTE_POLICY {
            return Policy::parse(desc).map(Some).map_err(Some);
        }
        at = end;
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy {
            version: VERSION,
            flags: F_LINKED,
            page_size: 1 << 30,
            mem: 512 << 20,
            cores: 2,
            time_slice_ms: 0,
        }
    }

    #[test]
    fn a_note_round_trips() {
        let n = policy().to_note();
        assert_eq!(find(&n), Ok(Some(policy())));
    }

    #[test]
    fn other_notes_are_skipped() {
        // A GNU build-id note (name "GNU\0", type 3, 20-byte descriptor) first.
        let mut v = vec![4, 0, 0, 0, 20, 0, 0, 0, 3, 0, 0, 0, b'G', b'N', b'U', 0];
        v.extend_from_slice(&[0xab; 20]);
        v.extend_from_slice(&policy().to_note());
        assert_eq!(find(&v), Ok(Some(policy())));
        assert_eq!(find(&v[..36]), Ok(None));
    }

    #[test]
    fn a_time_slice_of_zero_is_a_value_when_marked_set() {
        let mut p = policy();
        p.flags |= F_TIME_SLICE;
        p.time_slice_ms = 0;
        assert_eq!(find(&p.to_note()), Ok(Some(p)));
        p.time_slice_ms = TIME_SLICE_MAX_MS;
        assert_eq!(find(&p.to_note()), Ok(Some(p)));
    }

    #[test]
    fn malformed_notes_are_refused() {
        let mut bad = policy();
        bad.version = 7;
        assert_eq!(find(&bad.to_note()), Err(Some(NoteError::Version(7))));
        bad = policy();
        bad.flags = 1 << 9;
        assert_eq!(find(&bad.to_note()), Err(Some(NoteError::Flags(1 << 9))));
        bad = policy();
        bad.page_size = 8192;
        assert_eq!(find(&bad.to_note()), Err(Some(NoteError::PageSize(8192))));
        bad = policy();
        bad.time_slice_ms = 1; // without F_TIME_SLICE
        assert_eq!(find(&bad.to_note()), Err(Some(NoteError::TimeSlice(1))));
        bad.flags |= F_TIME_SLICE;
        bad.time_slice_ms = TIME_SLICE_MAX_MS + 1;
        assert_eq!(
            find(&bad.to_note()),
            Err(Some(NoteError::TimeSlice(TIME_SLICE_MAX_MS + 1)))
        );
        let mut short = policy().to_note();
        short[4] = 16; // descsz 16
        assert_eq!(find(&short), Err(Some(NoteError::Size(16))));
        // Truncated list.
        assert_eq!(find(&policy().to_note()[..30]), Err(None));
        let mut huge = policy().to_note();
        huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(find(&huge), Err(None));
    }

    /// Randomized: note lists of random bytes, and valid lists with a few bytes
    /// changed, never panic; a policy found is a valid one (it round-trips), and
    /// a list found whole is found in a longer buffer only if it parses there.
    #[test]
    fn fuzz_find() {
        use mote_fuzz::{inputs, seed, Rng};
        let mut rng = Rng::new(seed(std::env::var("MOTE_FUZZ_SEED").ok().as_deref()));
        let n = inputs(std::env::var("MOTE_FUZZ_INPUTS").ok().as_deref());
        let mut valid = vec![4, 0, 0, 0, 20, 0, 0, 0, 3, 0, 0, 0, b'G', b'N', b'U', 0];
        valid.extend_from_slice(&[0xab; 20]);
        valid.extend_from_slice(&policy().to_note());
        let mut found = 0;
        for _ in 0..n {
            let mut buf = if rng.one_in(4) {
                let mut b = vec![0u8; rng.below(128) as usize];
                rng.fill(&mut b);
                b
            } else {
                valid.clone()
            };
            rng.mutate(&mut buf);
            if rng.one_in(8) {
                let cut = rng.below(buf.len() as u64 + 1) as usize;
                buf.truncate(cut);
            }
            if let Ok(Some(p)) = find(&buf) {
                found += 1;
                assert_eq!(Policy::parse(&p.to_note()[20..]), Ok(p));
                assert!(p.page_size == 0 || PAGE_SIZES.contains(&p.page_size));
                assert_eq!(p.flags & !F_ALL, 0);
                assert!(p.time_slice_ms <= TIME_SLICE_MAX_MS);
                assert!(p.flags & F_TIME_SLICE != 0 || p.time_slice_ms == 0);
            }
        }
        assert!(found > 0, "no mutation left a policy to find");
    }
}
