//! NUMA calls answered for the partition's memory and cores: `get_mempolicy`,
//! `set_mempolicy`, `mbind`, `move_pages`, `migrate_pages` (on the application
//! itself; another process's are Linux's, forwarded) and `getcpu`. Forwarded,
//! they would act on the proxy's mirror of the memory and report the offload
//! thread's CPU.
//!
//! Each follows Linux 6.x's `mm/mempolicy.c`, `mm/migrate.c` and
//! `kernel/sys.c` check by check, so a call fails with the same errno. The
//! policies and the placement decision are `crate::numa`'s; the frames come
//! from the node's own pool (`crate::frames::Frames`). Pages move between
//! nodes (`move_pages` with target nodes, `mbind` with `MPOL_MF_MOVE`,
//! `migrate_pages`: `AddressSpace::move_page`) while the process has one
//! thread; with several, a forwarded call of another thread could write a page
//! through the proxy's mirror while it is copied, so a page that would move is
//! reported as Linux reports a page it cannot isolate: `-EBUSY` in
//! `move_pages`' status, a failure for `mbind`'s `MPOL_MF_STRICT` (`EIO`), not
//! counted as moved by `migrate_pages`.

use mote_abi::errno::Errno;
use mote_abi::layout::PAGE_SIZE;
use syscalls::Sysno;

use super::thread::Machine;
use crate::mm::Vma;
use crate::numa::uapi::*;
use crate::numa::{make, sanitize, Nodes, Policy, MASK_WORDS};
use crate::platform::Platform;
use crate::process::Process;
use crate::uapi::mman::PROT_NONE;

const BITS_PER_LONG: u64 = 64;

/// Read a user node mask (`get_nodes`): `maxnode - 1` bits at `nmask`.
fn get_nodes<P: Platform>(pr: &Process, p: &P, nmask: u64, maxnode: u64) -> Result<Nodes, Errno> {
    let mut maxnode = maxnode.wrapping_sub(1);
    let mut nodes = Nodes::default();
    if maxnode == 0 || nmask == 0 {
        return Ok(nodes);
    }
    if maxnode > PAGE_SIZE * 8 {
        return Err(Errno::EINVAL);
    }
    let max = u64::from(mote_abi::numa::MAX_NUMNODES);
    let word = |i: u64| -> Result<u64, Errno> {
        let mut b = [0u8; 8];
        pr.read_user(p, nmask + i * 8, &mut b)?;
        Ok(u64::from_le_bytes(b))
    };
    // Bits past MAX_NUMNODES must be zero, checked a word at a time from the end.
    while maxnode > max {
        let bits = maxnode.min(BITS_PER_LONG);
        let mut t = word((maxnode - 1) / BITS_PER_LONG)?;
        if !bits.is_multiple_of(BITS_PER_LONG) {
            t &= (1 << (bits % BITS_PER_LONG)) - 1;
        }
        if maxnode - bits >= max {
            maxnode -= bits;
        } else {
            maxnode = max;
            t &= !((1u64 << (max % BITS_PER_LONG)).wrapping_sub(1));
        }
        if t != 0 {
            return Err(Errno::EINVAL);
        }
    }
    let nlongs = maxnode.div_ceil(BITS_PER_LONG);
    for i in 0..nlongs {
        nodes.0[i as usize] = word(i)?;
    }
    if !maxnode.is_multiple_of(BITS_PER_LONG) {
        nodes.0[nlongs as usize - 1] &= (1 << (maxnode % BITS_PER_LONG)) - 1;
    }
    Ok(nodes)
}

/// Write a node mask to the user (`copy_nodes_to_user`).
fn put_nodes<P: Platform>(
    pr: &Process,
    p: &P,
    mask: u64,
    maxnode: u64,
    nodes: &Nodes,
) -> Result<(), Errno> {
    let mut copy = (maxnode.wrapping_sub(1).wrapping_add(63) & !63) / 8;
    let nbytes = u64::from(pr.mm.numa.topo.nr_node_ids()).div_ceil(64) * 8;
    if copy > nbytes {
        if copy > PAGE_SIZE {
            return Err(Errno::EINVAL);
        }
        pr.write_user(
            p,
            mask + nbytes,
            &alloc::vec![0u8; (copy - nbytes) as usize],
        )?;
        copy = nbytes;
    }
    let bytes = nodes.bytes();
    pr.write_user(p, mask, &bytes[..(copy as usize).min(MASK_WORDS * 8)])
}

/// A word of application memory.
fn read_u64<P: Platform>(pr: &Process, p: &P, va: u64) -> Result<u64, Errno> {
    let mut b = [0u8; 8];
    pr.read_user(p, va, &mut b).map(|_| u64::from_le_bytes(b))
}

/// An `int` of application memory.
fn read_i32<P: Platform>(pr: &Process, p: &P, va: u64) -> Result<i32, Errno> {
    let mut b = [0u8; 4];
    pr.read_user(p, va, &mut b).map(|_| i32::from_le_bytes(b))
}

/// The VMA at `addr` as `vma_lookup` finds it (the heap reserve is not one).
fn vma_at(pr: &Process, addr: u64) -> Option<(u64, Vma)> {
    pr.mm.vma_at(addr).map(|(s, v)| (s, *v))
}

/// The calling process holds `CAP_SYS_NICE`: asked of Linux with a `move_pages`
/// of no page that needs it (no memory, no effect).
fn cap_sys_nice<P: Platform>(p: &P) -> bool {
    p.forward(Sysno::move_pages as u64, [0, 0, 0, 0, 0, MPOL_MF_MOVE_ALL]) == 0
}

/// The pid names this process (0, its pid, or one of its threads' tids).
fn is_self(pr: &Process, pid: u64) -> bool {
    let pid = pid as i32;
    pid == 0 || pid as u32 == pr.pid || pid as u32 == pr.tid()
}

/// `get_mempolicy(policy, nmask, maxnode, addr, flags)`.
pub fn get_mempolicy<P: Platform>(pr: &mut Process, p: &P, a: [u64; 6]) -> Result<usize, Errno> {
    let [policy, nmask, maxnode, addr, flags, _] = a;
    if nmask != 0 && maxnode < u64::from(pr.mm.numa.topo.nr_node_ids()) {
        return Err(Errno::EINVAL);
    }
    if flags & !(MPOL_F_NODE | MPOL_F_ADDR | MPOL_F_MEMS_ALLOWED) != 0 {
        return Err(Errno::EINVAL);
    }
    let tid = pr.tid();
    let (pval, nodes) = if flags & MPOL_F_MEMS_ALLOWED != 0 {
        if flags & (MPOL_F_NODE | MPOL_F_ADDR) != 0 {
            return Err(Errno::EINVAL);
        }
        (0, pr.mm.numa.allowed())
    } else {
        let pol: Option<Policy> = if flags & MPOL_F_ADDR != 0 {
            let (_, v) = vma_at(pr, addr).ok_or(Errno::EFAULT)?;
            pr.mm.numa.lookup(v.policy)
        } else if addr != 0 {
            return Err(Errno::EINVAL);
        } else {
            pr.mm.numa.task(tid)
        };
        let pval = if flags & MPOL_F_NODE != 0 {
            if flags & MPOL_F_ADDR != 0 {
                // The node of the page (Linux faults it in; here every page is
                // backed, except where the protection forbids any access).
                let (_, v) = vma_at(pr, addr).ok_or(Errno::EFAULT)?;
                let gpa = match pr.mm.translate(addr) {
                    Some(g) if v.prot != PROT_NONE => g,
                    _ => return Err(Errno::EFAULT),
                };
                pr.mm.numa.node_of_gpa(gpa)
            } else {
                match pol {
                    Some(ref t) if matches!(t.mode, MPOL_INTERLEAVE | MPOL_WEIGHTED_INTERLEAVE) => {
                        pr.mm.numa.interleave_next(tid, t).ok_or(Errno::EINVAL)?
                    }
                    _ => return Err(Errno::EINVAL),
                }
            }
        } else {
            match pol {
                None => MPOL_DEFAULT,
                Some(ref t) => t.mode | (t.flags & MPOL_MODE_FLAGS),
            }
        };
        (pval, pol.map(|t| t.reported()).unwrap_or_default())
    };
    if policy != 0 {
        pr.write_user(p, policy, &pval.to_le_bytes())?;
    }
    if nmask != 0 {
        put_nodes(pr, p, nmask, maxnode, &nodes)?;
    }
    Ok(0)
}

/// `set_mempolicy(mode, nmask, maxnode)`: the calling thread's policy.
pub fn set_mempolicy<P: Platform>(pr: &mut Process, p: &P, a: [u64; 6]) -> Result<usize, Errno> {
    let [mode, nmask, maxnode, ..] = a;
    let (mode, flags) = sanitize(mode)?;
    let nodes = get_nodes(pr, p, nmask, maxnode)?;
    let pol = make(mode, flags, &nodes, &pr.mm.numa.allowed())?;
    let tid = pr.tid();
    pr.mm.numa.set_task(tid, pol);
    Ok(0)
}

/// `mbind(start, len, mode, nmask, maxnode, flags)`: the policy of a range's
/// VMAs; with `MPOL_MF_MOVE`, its pages on other nodes move to the policy's.
pub fn mbind<P: Platform>(pr: &mut Process, p: &P, a: [u64; 6]) -> Result<usize, Errno> {
    let [start, len, mode, nmask, maxnode, flags] = a;
    let flags = u64::from(flags as u32);
    let (mode, mode_flags) = sanitize(mode)?;
    let nodes = get_nodes(pr, p, nmask, maxnode)?;
    if flags & !MPOL_MF_VALID != 0 {
        return Err(Errno::EINVAL);
    }
    if flags & MPOL_MF_MOVE_ALL != 0 && !cap_sys_nice(p) {
        return Err(Errno::EPERM);
    }
    if !start.is_multiple_of(PAGE_SIZE) {
        return Err(Errno::EINVAL);
    }
    let mut flags = flags;
    if mode == MPOL_DEFAULT {
        flags &= !MPOL_MF_STRICT;
    }
    let len = len.wrapping_add(PAGE_SIZE - 1) & !(PAGE_SIZE - 1);
    let end = start.wrapping_add(len);
    if end < start {
        return Err(Errno::EINVAL);
    }
    if end == start {
        return Ok(0);
    }
    let pol = make(mode, mode_flags, &nodes, &pr.mm.numa.allowed())?;
    // Holes: only the default policy may span them, and not a range that is
    // all hole (`queue_pages_range`).
    let parts: alloc::vec::Vec<(u64, u64)> = pr
        .mm
        .vmas()
        .filter(|(s, v)| *s < end && v.end > start && v.kind != crate::mm::VmaKind::HeapReserve)
        .map(|(s, v)| (s.max(start), v.end.min(end)))
        .collect();
    let Some(&(first, _)) = parts.first() else {
        return Err(Errno::EFAULT);
    };
    let contiguous = first == start
        && parts.windows(2).all(|w| w[0].1 == w[1].0)
        && parts.last().is_some_and(|l| l.1 == end);
    if pol.is_some() && !contiguous {
        return Err(Errno::EFAULT);
    }
    let id = pr.mm.numa.intern(pol);
    for &(s, e) in &parts {
        pr.mm.set_policy(s, e, id);
    }
    // Pages on a node outside the policy's (`queue_pages_range` with
    // `MPOL_MF_INVERT`) move with `MPOL_MF_MOVE`; one that does not, or that
    // stays without it, fails `MPOL_MF_STRICT` (`EIO`), the policy set.
    let Some(pol) = pol else { return Ok(0) };
    if flags & (MPOL_MF_STRICT | MPOL_MF_MOVE | MPOL_MF_MOVE_ALL) == 0 {
        return Ok(0);
    }
    let moving = flags & (MPOL_MF_MOVE | MPOL_MF_MOVE_ALL) != 0 && pr.threads <= 1;
    let place = pr.mm.numa.placement(Some(&pol), p.core());
    let mut failed = false;
    for (s, e) in parts {
        for va in (s..e).step_by(PAGE_SIZE as usize) {
            let Some(gpa) = pr.mm.translate(va) else {
                continue;
            };
            // Against the caller's own mask, as Linux's `queue_pages_range`.
            if nodes.has(pr.mm.numa.node_of_gpa(gpa)) {
                continue;
            }
            // The policy's node for this page (`alloc_migration_target_by_mpol`):
            // interleave by address, else its first.
            let target = if place.spread {
                place.nodes[((va / PAGE_SIZE) % place.nodes.len() as u64) as usize]
            } else {
                place.nodes[0]
            };
            failed |= !moving || pr.mm.move_page(p, va, target).is_err();
        }
    }
    if failed && flags & MPOL_MF_STRICT != 0 {
        return Err(Errno::EIO);
    }
    Ok(0)
}

/// `set_mempolicy_home_node(start, len, home_node, flags)`: the node the bind
/// and preferred-many policies of a range's VMAs allocate from first
/// (`mm/mempolicy.c`). A node outside the partition is not online to the
/// application (`EINVAL`).
pub fn set_mempolicy_home_node<P: Platform>(
    pr: &mut Process,
    _p: &P,
    a: [u64; 6],
) -> Result<usize, Errno> {
    let [start, len, home, flags, ..] = a;
    if !start.is_multiple_of(PAGE_SIZE) || flags != 0 {
        return Err(Errno::EINVAL);
    }
    if home >= u64::from(mote_abi::numa::MAX_NUMNODES) || !pr.mm.numa.allowed().has(home as u32) {
        return Err(Errno::EINVAL);
    }
    let len = len.wrapping_add(PAGE_SIZE - 1) & !(PAGE_SIZE - 1);
    let end = start.wrapping_add(len);
    if end < start {
        return Err(Errno::EINVAL);
    }
    if end == start {
        return Ok(0);
    }
    let parts: alloc::vec::Vec<(u64, u64, u32)> = pr
        .mm
        .vmas()
        .filter(|(s, v)| *s < end && v.end > start && v.kind != crate::mm::VmaKind::HeapReserve)
        .map(|(s, v)| (s.max(start), v.end.min(end), v.policy))
        .collect();
    // No VMA with a policy in the range: ENOENT.
    let mut err = Err(Errno::ENOENT);
    for (s, e, id) in parts {
        let Some(mut pol) = pr.mm.numa.lookup(id) else {
            continue;
        };
        if pol.mode != MPOL_BIND && pol.mode != MPOL_PREFERRED_MANY {
            return Err(Errno::EOPNOTSUPP);
        }
        pol.home = Some(home as u32);
        let id = pr.mm.numa.intern(Some(pol));
        pr.mm.set_policy(s, e, id);
        err = Ok(0);
    }
    err
}

/// `move_pages(pid, count, pages, nodes, status, flags)` on this process;
/// another process's is Linux's.
pub fn move_pages<P: Platform>(pr: &mut Process, p: &P, a: [u64; 6]) -> Result<usize, Errno> {
    let [pid, count, pages, nodes, status, flags] = a;
    let flags = flags as i32 as i64 as u64;
    if flags & !(MPOL_MF_MOVE | MPOL_MF_MOVE_ALL) != 0 {
        return Err(Errno::EINVAL);
    }
    if flags & MPOL_MF_MOVE_ALL != 0 && !cap_sys_nice(p) {
        return Err(Errno::EPERM);
    }
    if !is_self(pr, pid) {
        return super::forwarded(p.forward(Sysno::move_pages as u64, a));
    }
    // Where a page is: its node, or -EFAULT (no VMA), -ENOENT (no page).
    let stat = |pr: &Process, va: u64| -> i32 {
        match vma_at(pr, va) {
            None => -Errno::EFAULT.code(),
            Some(_) => match pr.mm.translate(va) {
                Some(gpa) => pr.mm.numa.node_of_gpa(gpa) as i32,
                None => -Errno::ENOENT.code(),
            },
        }
    };
    if nodes == 0 {
        // Query (`do_pages_stat`): 16 pages at a time, stopping at a fault.
        let mut i = 0;
        while i < count {
            let n = (count - i).min(16);
            let mut st = alloc::vec::Vec::with_capacity(n as usize);
            for k in 0..n {
                let Ok(va) = read_u64(pr, p, pages.wrapping_add((i + k) * 8)) else {
                    return Err(Errno::EFAULT);
                };
                st.push(stat(pr, va));
            }
            let bytes: alloc::vec::Vec<u8> = st.iter().flat_map(|s| s.to_le_bytes()).collect();
            pr.write_user(p, status.wrapping_add(i * 4), &bytes)?;
            i += n;
        }
        return Ok(0);
    }
    let allowed = pr.mm.numa.allowed();
    // Pages move only while nothing else can write them (see the top).
    let moving = pr.threads <= 1;
    for i in 0..count {
        let va = read_u64(pr, p, pages.wrapping_add(i * 8))?;
        let node = read_i32(pr, p, nodes.wrapping_add(i * 4))?;
        if node < 0 || node as u32 >= mote_abi::numa::MAX_NUMNODES {
            return Err(Errno::ENODEV);
        }
        // Nodes outside the partition are memoryless to the application
        // (Linux's `N_MEMORY` test).
        if !allowed.has(node as u32) {
            return Err(Errno::ENODEV);
        }
        let s = match stat(pr, va) {
            s if s < 0 => s,
            s if s as u32 == node as u32 => s,
            _ if !moving => -Errno::EBUSY.code(),
            _ => {
                let target = pr.mm.numa.topo.index_of(node as u32).ok_or(Errno::ENODEV)?;
                match pr.mm.move_page(p, va, target) {
                    Ok(()) => node,
                    // The target node is full: the call fails, as Linux's
                    // migration does when it cannot allocate there.
                    Err(Errno::ENOMEM) => return Err(Errno::ENOMEM),
                    Err(e) => -e.code(),
                }
            }
        };
        pr.write_user(p, status.wrapping_add(i * 4), &s.to_le_bytes())?;
    }
    Ok(0)
}

/// `migrate_pages(pid, maxnode, old_nodes, new_nodes)` for this process
/// (another process's is Linux's): its pages on `old` nodes move to `new`
/// ones; the answer is the number that could not.
pub fn migrate_pages<P: Platform>(pr: &mut Process, p: &P, a: [u64; 6]) -> Result<usize, Errno> {
    let [pid, maxnode, old, new, ..] = a;
    let old = get_nodes(pr, p, old, maxnode)?;
    let new = get_nodes(pr, p, new, maxnode)?;
    if !is_self(pr, pid) {
        return super::forwarded(p.forward(Sysno::migrate_pages as u64, a));
    }
    let allowed = pr.mm.numa.allowed();
    if !new.subset_of(&allowed) && !cap_sys_nice(p) {
        return Err(Errno::EPERM);
    }
    let new = new.and(&allowed);
    if new.is_empty() {
        return Err(Errno::EINVAL);
    }
    // Where a page on node `s` goes (`do_migrate_pages`): the node of `new`
    // at `s`'s position in `old` (`node_remap`), unless `s` is not in `old`,
    // or is in `new` while the two masks differ in weight.
    let (wo, wn) = (old.ids().count(), new.ids().count());
    let dest = |s: u32| -> Option<u32> {
        if !old.has(s) || (wo != wn && new.has(s)) {
            return None;
        }
        let pos = old.ids().take_while(|&i| i < s).count();
        new.ids().nth(pos % wn).filter(|&d| d != s)
    };
    let pages: alloc::vec::Vec<(u64, u32)> = pr
        .mm
        .vmas()
        .filter(|(_, v)| {
            v.kind != crate::mm::VmaKind::HeapReserve
                && !matches!(v.kind, crate::mm::VmaKind::Passthrough { .. })
        })
        .flat_map(|(s, v)| (s..v.end).step_by(PAGE_SIZE as usize))
        .filter_map(|va| {
            let gpa = pr.mm.translate(va)?;
            dest(pr.mm.numa.node_of_gpa(gpa)).map(|d| (va, d))
        })
        .collect();
    // Pages move only while nothing else can write them (see the top): the
    // rest are counted as not moved.
    if pr.threads > 1 {
        return Ok(pages.len());
    }
    let mut failed = 0;
    for (va, d) in pages {
        let moved = pr
            .mm
            .numa
            .topo
            .index_of(d)
            .is_some_and(|t| pr.mm.move_page(p, va, t).is_ok());
        failed += usize::from(!moved);
    }
    Ok(failed)
}

/// `getcpu(cpu, node, cache)`: the LWK core running the caller and its node.
pub fn getcpu<P: Platform>(m: &dyn Machine<P>, cpu: u64, node: u64) -> Result<usize, Errno> {
    let core = m.core();
    let g = m.process().lock();
    let pr = g.as_ref().expect("process");
    let id = pr.mm.numa.node_of_core(core);
    let mut fault = false;
    if cpu != 0 {
        fault |= pr
            .write_user(m.platform(), cpu, &(core as u32).to_le_bytes())
            .is_err();
    }
    if node != 0 {
        fault |= pr
            .write_user(m.platform(), node, &id.to_le_bytes())
            .is_err();
    }
    if fault {
        Err(Errno::EFAULT)
    } else {
        Ok(0)
    }
}

#[cfg(test)]
mod tests;
