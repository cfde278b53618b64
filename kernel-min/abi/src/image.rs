//! What a guest image says about itself: the note kernel-min and the runtime
//! (libos + shims) carry, which `mote run --kernel FILE` / `--runtime FILE` and
//! `mote info FILE` read before loading an image built apart from the proxy
//! (`cargo xtask image`).
//!
//! The note is one [`ImageNote`] in the image's section [`SECTION`]: a magic,
//! the kind of image, the ABI it speaks — [`ABI_VERSION`], bumped by hand when a
//! definition in this crate changes meaning, and [`ABI_HASH`], a hash of this
//! crate's sources computed by its `build.rs`, which catches the changes nobody
//! bumped the version for — and the name of the libos policy the image was built
//! with (`libos::policy`). The proxy loads an image only when both ABI fields
//! equal its own: every structure the two sides share (`BootInfo`, the IKC slot,
//! the map log, the signal page, the trace ring, the layout) is defined here.
//!
//! The reader checks every field ([`ImageNote::parse`]); the image is a file the
//! user names, so nothing of it is trusted before that.

use static_assertions::const_assert_eq;

/// The section the note lives in.
pub const SECTION: &str = ".mote_image";
/// [`ImageNote::magic`].
pub const MAGIC: [u8; 8] = *b"moteimg\0";
/// The ABI this source tree defines. Bump it with any change to a structure,
/// constant or protocol of `mote_abi` that an image built before would read
/// differently.
pub const ABI_VERSION: u32 = 1;
/// FNV-1a hash of `mote_abi`'s sources, whitespace left out (its `build.rs`).
pub const ABI_HASH: u64 = include!(concat!(env!("OUT_DIR"), "/abi_hash.rs"));

/// [`ImageNote::kind`]: kernel-min, the KVM partition's privileged kernel.
pub const KIND_KERNEL: u32 = 1;
/// [`ImageNote::kind`]: the runtime, libos and the shims.
pub const KIND_RUNTIME: u32 = 2;

/// Longest policy name (NUL-padded in [`ImageNote::policy`]).
pub const POLICY_MAX: usize = 32;

/// The note's bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageNote {
    /// [`MAGIC`].
    pub magic: [u8; 8],
    /// [`ABI_VERSION`] of the tree the image was built from.
    pub abi_version: u32,
    /// `KIND_*`.
    pub kind: u32,
    /// [`ABI_HASH`] of the tree the image was built from.
    pub abi_hash: u64,
    /// The libos policy's name, ASCII, NUL-padded (kernel-min: `"-"`).
    pub policy: [u8; POLICY_MAX],
}

const_assert_eq!(core::mem::size_of::<ImageNote>(), 56);
const_assert_eq!(core::mem::offset_of!(ImageNote, magic), 0);
const_assert_eq!(core::mem::offset_of!(ImageNote, abi_version), 8);
const_assert_eq!(core::mem::offset_of!(ImageNote, kind), 12);
const_assert_eq!(core::mem::offset_of!(ImageNote, abi_hash), 16);
const_assert_eq!(core::mem::offset_of!(ImageNote, policy), 24);

/// Size of the note.
pub const NOTE_SIZE: usize = core::mem::size_of::<ImageNote>();

/// Why a note was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoteError {
    /// Not [`NOTE_SIZE`] bytes.
    Size(usize),
    /// Not [`MAGIC`].
    Magic,
    /// A kind this mote does not know.
    Kind(u32),
    /// The policy name is not NUL-padded printable ASCII.
    Policy,
}

impl core::fmt::Display for NoteError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            NoteError::Size(n) => write!(f, "its image note is {n} bytes, not {NOTE_SIZE}"),
            NoteError::Magic => write!(f, "its image note has no mote magic"),
            NoteError::Kind(k) => write!(
                f,
                "its image note names kind {k}, which is neither kernel-min nor runtime"
            ),
            NoteError::Policy => write!(f, "its image note's policy name is not printable ASCII"),
        }
    }
}

impl ImageNote {
    /// The note of an image of `kind` built from this tree with `policy`
    /// (truncated to [`POLICY_MAX`] bytes).
    pub const fn new(kind: u32, policy: &str) -> ImageNote {
        let mut name = [0u8; POLICY_MAX];
        let b = policy.as_bytes();
        let mut i = 0;
        while i < b.len() && i < POLICY_MAX {
            name[i] = b[i];
            i += 1;
        }
        ImageNote {
            magic: MAGIC,
            abi_version: ABI_VERSION,
            kind,
            abi_hash: ABI_HASH,
            policy: name,
        }
    }

    /// The note's bytes (little endian, as x86_64 lays it out).
    pub fn to_bytes(&self) -> [u8; NOTE_SIZE] {
        let mut d = [0u8; NOTE_SIZE];
        d[0..8].copy_from_slice(&self.magic);
        d[8..12].copy_from_slice(&self.abi_version.to_le_bytes());
        d[12..16].copy_from_slice(&self.kind.to_le_bytes());
        d[16..24].copy_from_slice(&self.abi_hash.to_le_bytes());
        d[24..].copy_from_slice(&self.policy);
        d
    }

    /// Read a note from `d`, checking every field but the ABI (which
    /// [`ImageNote::speaks_this_abi`] compares).
    pub fn parse(d: &[u8]) -> Result<ImageNote, NoteError> {
        if d.len() != NOTE_SIZE {
            return Err(NoteError::Size(d.len()));
        }
        let u32_at = |o: usize| u32::from_le_bytes([d[o], d[o + 1], d[o + 2], d[o + 3]]);
        let mut hash = [0u8; 8];
        hash.copy_from_slice(&d[16..24]);
        let mut magic = [0u8; 8];
        magic.copy_from_slice(&d[0..8]);
        let mut policy = [0u8; POLICY_MAX];
        policy.copy_from_slice(&d[24..]);
        let n = ImageNote {
            magic,
            abi_version: u32_at(8),
            kind: u32_at(12),
            abi_hash: u64::from_le_bytes(hash),
            policy,
        };
        if n.magic != MAGIC {
            return Err(NoteError::Magic);
        }
        if n.kind != KIND_KERNEL && n.kind != KIND_RUNTIME {
            return Err(NoteError::Kind(n.kind));
        }
        let len = policy.iter().position(|&b| b == 0).unwrap_or(POLICY_MAX);
        let printable = policy[..len].iter().all(|b| b.is_ascii_graphic());
        if len == 0 || !printable || policy[len..].iter().any(|&b| b != 0) {
            return Err(NoteError::Policy);
        }
        Ok(n)
    }

    /// The policy's name.
    pub fn policy_name(&self) -> &str {
        let len = self
            .policy
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(POLICY_MAX);
        core::str::from_utf8(&self.policy[..len]).unwrap_or("?")
    }

    /// Built from a tree with this tree's ABI: version and source hash.
    pub fn speaks_this_abi(&self) -> bool {
        self.abi_version == ABI_VERSION && self.abi_hash == ABI_HASH
    }

    /// `"kernel-min"` or `"runtime"`.
    pub fn kind_name(&self) -> &'static str {
        kind_name(self.kind)
    }
}

/// The name of image kind `kind`.
pub fn kind_name(kind: u32) -> &'static str {
    match kind {
        KIND_KERNEL => "kernel-min",
        KIND_RUNTIME => "runtime",
        _ => "unknown",
    }
}

/// An image's build id: the FNV-1a hash of its bytes (the whole file), which
/// `mote info` and `mote run --stats` print to name the images a run used.
pub fn build_id(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_note_round_trips_and_names_its_policy() {
        let n = ImageNote::new(KIND_RUNTIME, "pack");
        let b = n.to_bytes();
        assert_eq!(&b[0..8], b"moteimg\0");
        assert_eq!(&b[8..12], &ABI_VERSION.to_le_bytes());
        assert_eq!(&b[12..16], &[2, 0, 0, 0]);
        assert_eq!(&b[24..29], b"pack\0");
        let p = ImageNote::parse(&b).unwrap();
        assert_eq!(p, n);
        assert_eq!(p.policy_name(), "pack");
        assert_eq!(p.kind_name(), "runtime");
        assert!(p.speaks_this_abi());
    }

    #[test]
    fn bad_notes_are_refused_field_by_field() {
        let good = ImageNote::new(KIND_KERNEL, "-").to_bytes();
        assert_eq!(ImageNote::parse(&good[..40]), Err(NoteError::Size(40)));
        let mut b = good;
        b[0] = b'M';
        assert_eq!(ImageNote::parse(&b), Err(NoteError::Magic));
        let mut b = good;
        b[12] = 7;
        assert_eq!(ImageNote::parse(&b), Err(NoteError::Kind(7)));
        let mut b = good;
        b[24] = 0;
        assert_eq!(ImageNote::parse(&b), Err(NoteError::Policy));
        let mut b = good;
        b[30] = b'x';
        assert_eq!(ImageNote::parse(&b), Err(NoteError::Policy));
        let mut b = good;
        b[25] = 0x7f;
        assert_eq!(ImageNote::parse(&b), Err(NoteError::Policy));
    }

    #[test]
    fn another_abi_version_or_source_hash_is_not_this_abi() {
        let mut n = ImageNote::new(KIND_RUNTIME, "default");
        n.abi_version += 1;
        assert!(!ImageNote::parse(&n.to_bytes()).unwrap().speaks_this_abi());
        let mut n = ImageNote::new(KIND_RUNTIME, "default");
        n.abi_hash ^= 1;
        assert!(!n.speaks_this_abi());
    }

    #[test]
    fn build_id_is_fnv1a_of_the_bytes() {
        // FNV-1a 64 test vectors.
        assert_eq!(build_id(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(build_id(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(build_id(b"foobar"), 0x8594_4171_f739_67e8);
    }
}
