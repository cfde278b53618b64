//! Randomized tests of the ELF loader's decisions: headers and program-header
//! tables built at random around the edges the checks guard (types, sizes,
//! offsets, addresses near the user range's ends, overflowing sums), and real
//! executables with a few bytes changed. Whatever the file, `plan` answers
//! without a panic, asks for more bytes only within the file and `HEAD_MAX`,
//! and a plan it accepts maps only user addresses, with every segment's file
//! bytes inside the file and inside its memory size.

use super::*;
use alloc::vec;
use mote_fuzz::{inputs, seed, Rng};

/// A random ELF64 image: a header (mostly valid), `n` program headers.
fn random_elf(rng: &mut Rng) -> Vec<u8> {
    let n = rng.below(6) as usize;
    let extra = rng.below(0x3000) as usize;
    let mut v = vec![0u8; 64 + n * 56 + extra];
    v[..4].copy_from_slice(b"\x7fELF");
    v[4] = if rng.one_in(20) {
        rng.next_u64() as u8
    } else {
        2
    };
    v[5] = if rng.one_in(20) { 2 } else { 1 };
    v[6] = 1;
    let e_type: u16 = [2, 3, 1, 4][rng.below(4) as usize];
    v[16..18].copy_from_slice(&e_type.to_le_bytes());
    let machine: u16 = if rng.one_in(20) { 3 } else { 62 };
    v[18..20].copy_from_slice(&machine.to_le_bytes());
    v[24..32].copy_from_slice(&rng.edgy().to_le_bytes());
    let phoff = if rng.one_in(10) { rng.edgy() } else { 64 };
    v[32..40].copy_from_slice(&phoff.to_le_bytes());
    v[52..54].copy_from_slice(&64u16.to_le_bytes());
    let phentsize: u16 = if rng.one_in(20) { 32 } else { 56 };
    v[54..56].copy_from_slice(&phentsize.to_le_bytes());
    let phnum = if rng.one_in(20) {
        rng.next_u64() as u16
    } else {
        n as u16
    };
    v[56..58].copy_from_slice(&phnum.to_le_bytes());
    let near = |rng: &mut Rng, x: u64| x.wrapping_add(rng.below(0x3000)).wrapping_sub(0x1000);
    for i in 0..n {
        let b = 64 + i * 56;
        let ty = [
            ph::PT_LOAD,
            ph::PT_LOAD,
            ph::PT_INTERP,
            ph::PT_PHDR,
            ph::PT_GNU_STACK,
            ph::PT_NOTE,
        ][rng.below(6) as usize];
        let ty = if rng.one_in(30) {
            rng.next_u64() as u32
        } else {
            ty
        };
        let flags = rng.below(8) as u32;
        let off = match rng.below(3) {
            0 => 0,
            1 => rng.below(v.len() as u64 + 0x100),
            _ => rng.edgy(),
        };
        let vaddr = match rng.below(5) {
            0 => 0x40_0000 + rng.below(0x10_0000),
            1 => near(rng, USER_END),
            2 => near(rng, USER_START),
            3 => rng.below(0x10_0000),
            _ => rng.edgy(),
        };
        let filesz = match rng.below(3) {
            0 => rng.below(0x2000),
            1 => rng.edgy(),
            _ => 0,
        };
        let memsz = match rng.below(3) {
            0 => filesz.wrapping_add(rng.below(0x4000)),
            1 => rng.edgy(),
            _ => filesz,
        };
        v[b..b + 4].copy_from_slice(&ty.to_le_bytes());
        v[b + 4..b + 8].copy_from_slice(&flags.to_le_bytes());
        v[b + 8..b + 16].copy_from_slice(&off.to_le_bytes());
        v[b + 16..b + 24].copy_from_slice(&vaddr.to_le_bytes());
        v[b + 32..b + 40].copy_from_slice(&filesz.to_le_bytes());
        v[b + 40..b + 48].copy_from_slice(&memsz.to_le_bytes());
        v[b + 48..b + 56].copy_from_slice(&(1u64 << rng.below(22)).to_le_bytes());
    }
    v
}

/// `plan` driven as `exec` drives it, checking what it asks for.
fn plan_checked(data: &[u8], base: u64) -> Result<LoadPlan, LoadError> {
    let mut n = HEAD_LEN.min(data.len());
    loop {
        match plan_at(&data[..n], data.len() as u64, base) {
            Err(LoadError::NeedBytes(m)) => {
                assert!(
                    m > n && m <= data.len() && m <= HEAD_MAX,
                    "asked {m} of {}",
                    data.len()
                );
                n = m;
            }
            r => return r,
        }
    }
}

fn check(plan: &LoadPlan, file_len: u64) {
    assert!(!plan.segments.is_empty());
    for s in &plan.segments {
        assert!(s.filesz <= s.memsz);
        let end = s.vaddr.checked_add(s.memsz).expect("no overflow");
        assert!(s.vaddr >= USER_START && end <= USER_END, "{s:?}");
        assert!(
            s.offset
                .checked_add(s.filesz)
                .is_some_and(|e| e <= file_len),
            "{s:?}"
        );
    }
    for r in plan.regions() {
        assert!(r.start < r.end && r.start >= align_down(USER_START, PAGE_SIZE));
        assert!(r.end <= align_up(USER_END, PAGE_SIZE));
    }
    assert!(plan.brk_start >= USER_START);
    if let Some(i) = plan.interp {
        assert!(i.len >= 2 && i.len <= INTERP_MAX);
        assert!(i.offset.checked_add(i.len).is_some_and(|e| e <= file_len));
    }
}

#[test]
fn fuzz_plan() {
    let mut rng = Rng::new(seed(std::env::var("MOTE_FUZZ_SEED").ok().as_deref()));
    let n = inputs(std::env::var("MOTE_FUZZ_INPUTS").ok().as_deref());
    let mut real = std::fs::read("/bin/busybox").expect("/bin/busybox (static x86_64)");
    let mut accepted = 0;
    for _ in 0..n {
        let base = if rng.one_in(2) {
            USER_PIE_BASE
        } else {
            rng.edgy() & !(PAGE_SIZE - 1)
        };
        if rng.one_in(4) {
            // The real program with a few header bytes changed, put back after.
            let mut saved = Vec::new();
            for _ in 0..1 + rng.below(3) {
                let i = rng.below(0x240) as usize;
                saved.push((i, real[i]));
                real[i] = rng.next_u64() as u8;
            }
            if let Ok(p) = plan_checked(&real, base) {
                accepted += 1;
                check(&p, real.len() as u64);
            }
            for (i, b) in saved.into_iter().rev() {
                real[i] = b;
            }
            continue;
        }
        let mut data = random_elf(&mut rng);
        if rng.one_in(8) {
            rng.mutate(&mut data);
        }
        let base = if rng.one_in(2) {
            USER_PIE_BASE
        } else {
            rng.edgy() & !(PAGE_SIZE - 1)
        };
        if let Ok(p) = plan_checked(&data, base) {
            accepted += 1;
            check(&p, data.len() as u64);
        }
        let len = rng.below(16) as usize;
        let raw: Vec<u8> = (0..len)
            .map(|_| [0u8, b'/', b'a'][rng.below(3) as usize])
            .collect();
        if let Ok(name) = interp_name(&raw) {
            assert!(!name.is_empty() && !name.contains(&0));
        }
    }
    eprintln!("elf fuzz: {accepted} of {n} accepted");
    assert!(accepted > 0, "no input was accepted");
}
