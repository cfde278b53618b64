//! The LWK policies a researcher changes per job, in one place: where a new
//! thread runs, and the page size backing the application's anonymous memory.
//! An image is built with one [`Policy`] ([`Active`], chosen by a cargo
//! feature of this crate, `policy-*`, forwarded by the shims' features) and
//! run per job with `mote run --runtime FILE`; the image's note names it
//! (`mote_abi::image`), so `mote info` and `--stats` say which policy a run
//! used. `docs/experiments.md` walks through building, running and measuring
//! one.
//!
//! The calls are static (`Active` is a type, its functions are inlined): the
//! default image's paths are the code they were before this hook existed.
//!
//! What is not a hook here, and why: the time slice is `mote run
//! --time-slice` (the proxy arms the partition's timer, so it is per run, not
//! per image); demand paging instead of mapping before use needs the proxy to
//! fault pages in for forwarded calls that touch memory the application has not
//! (a `read` into a fresh buffer would find nothing mapped in the mirror), which
//! is not built.
//!
//! To add a policy: a type implementing [`Policy`] here (override only what
//! changes), a feature `policy-NAME` in `libos/Cargo.toml` and
//! `shims/Cargo.toml`, and a `cfg` arm choosing it as [`Active`]; a unit test
//! of its decisions beside [`Pack`]'s.

/// What an image decides differently. Each function has the default's
/// behaviour unless the policy overrides it.
pub trait Policy {
    /// The name the image's note carries (printable ASCII, at most 32 bytes).
    const NAME: &'static str;

    /// The core a new thread goes on: `load[c]` live threads on core `c`,
    /// `allowed` the cores its affinity allows (bit `c`, never 0 within
    /// `load.len()`), `next` the round-robin cursor. `None`: core 0.
    ///
    /// The default spreads: the allowed core with the fewest live threads,
    /// ties taken round robin from `next`.
    fn place_thread(load: &[usize], allowed: u64, next: usize) -> Option<usize> {
        let n = load.len();
        (0..n)
            .map(|i| (next + i) % n)
            .filter(|&c| allowed & (1 << c) != 0)
            .min_by_key(|&c| load[c])
    }

    /// The page size backing anonymous memory, heap and stacks, given the one
    /// the run asked for (`mote run --page-size`, in bytes). The default takes
    /// it as asked.
    fn page_size(asked: u64) -> u64 {
        asked
    }
}

/// The default policy: threads spread over the partition's cores, memory in
/// the page size the run asks for.
pub struct Spread;

impl Policy for Spread {
    const NAME: &'static str = "default";
}

/// The worked experiment's policy: every new thread on the lowest-numbered
/// core its affinity allows — the threads of a job share one core by time
/// slices, leaving the partition's other cores idle. What it measures: what
/// spreading threads over cores buys a threaded workload (`mote bench cg2
/// timeshare --runtime default.elf --runtime pack.elf`).
pub struct Pack;

impl Policy for Pack {
    const NAME: &'static str = "pack";

    fn place_thread(load: &[usize], allowed: u64, _next: usize) -> Option<usize> {
        (0..load.len()).find(|&c| allowed & (1 << c) != 0)
    }
}

/// The policy this image is built with.
#[cfg(not(feature = "policy-pack"))]
pub type Active = Spread;
/// The policy this image is built with.
#[cfg(feature = "policy-pack")]
pub type Active = Pack;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_spreads_to_the_least_loaded_core_round_robin() {
        assert_eq!(Spread::place_thread(&[1, 0, 0, 0], 0b1111, 0), Some(1));
        assert_eq!(Spread::place_thread(&[1, 1, 0, 0], 0b1111, 3), Some(3));
        assert_eq!(Spread::place_thread(&[1, 1, 1, 1], 0b1111, 2), Some(2));
        assert_eq!(Spread::place_thread(&[1, 0, 0, 0], 0b0001, 1), Some(0));
        assert_eq!(Spread::place_thread(&[1, 0], 0b100, 0), None);
        assert_eq!(Spread::page_size(2 << 20), 2 << 20);
    }

    #[test]
    fn pack_puts_every_thread_on_the_first_allowed_core() {
        assert_eq!(Pack::place_thread(&[1, 0, 0, 0], 0b1111, 1), Some(0));
        assert_eq!(Pack::place_thread(&[5, 0, 0, 0], 0b1111, 3), Some(0));
        assert_eq!(Pack::place_thread(&[1, 0, 0, 0], 0b1100, 0), Some(2));
        assert_eq!(Pack::place_thread(&[1, 0], 0b100, 0), None);
        assert_eq!(Pack::page_size(4096), 4096);
    }

    #[test]
    fn policy_names_fit_the_image_note() {
        for name in [Spread::NAME, Pack::NAME, Active::NAME] {
            assert!(name.len() <= mote_abi::image::POLICY_MAX);
            assert!(!name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic()));
        }
    }
}
