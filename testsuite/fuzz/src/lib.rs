//! The input generator of the randomized tests that cover every decoder of
//! bytes crossing from the application's side (`BootInfo`'s topology, the map
//! log, the trace ring, the policy note, IKC slots, ELF headers): a small
//! deterministic generator (SplitMix64), so a failing input is reproduced from
//! its seed, with helpers that bias values toward the edges decoders get wrong.
//!
//! The suite runs 100,000 inputs per decoder; `MOTE_FUZZ_INPUTS` (read by the
//! tests) runs more, `MOTE_FUZZ_SEED` another sequence ([`inputs`], [`seed`]).

/// SplitMix64 (Steele, Lea, Flood 2014): one `u64` state, full period.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A value below `n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// True one time in `n`.
    pub fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }

    /// A value biased toward edges: 0, small numbers, powers of two and their
    /// neighbours, the top of the range, or anything.
    pub fn edgy(&mut self) -> u64 {
        match self.below(6) {
            0 => 0,
            1 => self.below(64),
            2 => (1u64 << self.below(64))
                .wrapping_add(self.below(3))
                .wrapping_sub(1),
            3 => u64::MAX - self.below(4),
            4 => self.below(1 << 32),
            _ => self.next_u64(),
        }
    }

    /// Fill `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }

    /// Change a few bytes of `buf` (a mutation of a valid input): flip bits,
    /// write edge values, or cut.
    pub fn mutate(&mut self, buf: &mut [u8]) {
        if buf.is_empty() {
            return;
        }
        for _ in 0..1 + self.below(4) {
            let i = self.below(buf.len() as u64) as usize;
            match self.below(4) {
                0 => buf[i] ^= 1 << self.below(8),
                1 => buf[i] = 0,
                2 => buf[i] = 0xff,
                _ => buf[i] = self.next_u64() as u8,
            }
        }
    }
}

/// Inputs per decoder: `MOTE_FUZZ_INPUTS` from the environment `var` gives,
/// else 100,000 (the suite's run).
pub fn inputs(var: Option<&str>) -> u64 {
    var.and_then(|v| v.parse().ok()).unwrap_or(100_000)
}

/// The first seed: `MOTE_FUZZ_SEED`, else a fixed one (the suite is repeatable).
pub fn seed(var: Option<&str>) -> u64 {
    var.and_then(|v| v.parse().ok())
        .unwrap_or(0x6d6f_7465_6675_7a7a)
}
