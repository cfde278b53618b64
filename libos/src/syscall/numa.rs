//! NUMA calls answered for the partition's memory and cores: `get_mempolicy`,
//! `set_mempolicy`, `mbind`, `move_pages`, `migrate_pages` (on the application
//! itself; another process's are Linux's, forwarded) and `getcpu`. Forwarded,
//! they would act on the proxy's mirror of the memory and report the offload
//! thread's CPU.
//!
//! Each follows Linux 6.x's `mm/mempolicy.c`, `mm/migrate.c` and
//! `kernel/sys.c` check by check, so a call fails with the same errno. The
//! policies and the placement decision are `crate::numa`'s. Pages are not
//! migrated between nodes: a page asked to move to another node stays where
//! it is and is reported busy (`move_pages`), not migrated (the count
//! `migrate_pages` returns), or fails `MPOL_MF_STRICT` (`mbind`, `EIO`).

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
    let nbytes = u64::from(pr.numa.topo.nr_node_ids()).div_ceil(64) * 8;
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
    if nmask != 0 && maxnode < u64::from(pr.numa.topo.nr_node_ids()) {
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
        (0, pr.numa.allowed())
    } else {
        let pol: Option<Policy> = if flags & MPOL_F_ADDR != 0 {
            let (_, v) = vma_at(pr, addr).ok_or(Errno::EFAULT)?;
            pr.numa.lookup(v.policy)
        } else if addr != 0 {
            return Err(Errno::EINVAL);
        } else {
            pr.numa.task(tid)
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
                pr.numa.node_of_gpa(gpa)
            } else {
                match pol {
                    Some(ref t) if matches!(t.mode, MPOL_INTERLEAVE | MPOL_WEIGHTED_INTERLEAVE) => {
                        pr.numa.interleave_next(tid, t).ok_or(Errno::EINVAL)?
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
    let pol = make(mode, flags, &nodes, &pr.numa.allowed())?;
    let tid = pr.tid();
    pr.numa.set_task(tid, pol);
    Ok(0)
}

/// `mbind(start, len, mode, nmask, maxnode, flags)`: the policy of a range's
/// VMAs. Pages already on other nodes stay there (not migrated).
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
    let pol = make(mode, mode_flags, &nodes, &pr.numa.allowed())?;
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
    // `MPOL_MF_STRICT`: a present page on a node outside the caller's mask
    // (`queue_pages_range` with `MPOL_MF_INVERT`) is an error, moved or not:
    // pages are not migrated here.
    if pol.is_some() && flags & MPOL_MF_STRICT != 0 {
        let misplaced = parts.iter().any(|&(s, e)| {
            (s..e)
                .step_by(PAGE_SIZE as usize)
                .filter_map(|va| pr.mm.translate(va))
                .any(|gpa| !nodes.has(pr.numa.node_of_gpa(gpa)))
        });
        if misplaced {
            return Err(Errno::EIO);
        }
    }
    let id = pr.numa.intern(pol);
    for (s, e) in parts {
        pr.mm.set_policy(s, e, id);
    }
    Ok(0)
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
    let read_u64 = |va: u64| -> Result<u64, Errno> {
        let mut b = [0u8; 8];
        pr.read_user(p, va, &mut b).map(|_| u64::from_le_bytes(b))
    };
    let read_i32 = |va: u64| -> Result<i32, Errno> {
        let mut b = [0u8; 4];
        pr.read_user(p, va, &mut b).map(|_| i32::from_le_bytes(b))
    };
    // Where a page is: its node, or -EFAULT (no VMA), -ENOENT (no page).
    let stat = |pr: &Process, va: u64| -> i32 {
        match vma_at(pr, va) {
            None => -Errno::EFAULT.code(),
            Some(_) => match pr.mm.translate(va) {
                Some(gpa) => pr.numa.node_of_gpa(gpa) as i32,
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
                let Ok(va) = read_u64(pages.wrapping_add((i + k) * 8)) else {
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
    let allowed = pr.numa.allowed();
    let mut not_moved = 0usize;
    for i in 0..count {
        let va = read_u64(pages.wrapping_add(i * 8))?;
        let node = read_i32(nodes.wrapping_add(i * 4))?;
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
            _ => {
                not_moved += 1;
                -Errno::EBUSY.code()
            }
        };
        pr.write_user(p, status.wrapping_add(i * 4), &s.to_le_bytes())?;
    }
    Ok(not_moved)
}

/// `migrate_pages(pid, maxnode, old_nodes, new_nodes)` for this process;
/// another process's is Linux's. Nothing moves between nodes: the answer is
/// the number of pages on `old` nodes that would have to.
pub fn migrate_pages<P: Platform>(pr: &mut Process, p: &P, a: [u64; 6]) -> Result<usize, Errno> {
    let [pid, maxnode, old, new, ..] = a;
    let old = get_nodes(pr, p, old, maxnode)?;
    let new = get_nodes(pr, p, new, maxnode)?;
    if !is_self(pr, pid) {
        return super::forwarded(p.forward(Sysno::migrate_pages as u64, a));
    }
    let allowed = pr.numa.allowed();
    if !new.subset_of(&allowed) && !cap_sys_nice(p) {
        return Err(Errno::EPERM);
    }
    let new = new.and(&allowed);
    if new.is_empty() {
        return Err(Errno::EINVAL);
    }
    // Pages on a node of `old` that is not in `new` would move.
    let moving = |id: u32| old.has(id) && !new.has(id);
    let mut pages = 0usize;
    for (s, v) in pr.mm.vmas() {
        if v.kind == crate::mm::VmaKind::HeapReserve {
            continue;
        }
        pages += (s..v.end)
            .step_by(PAGE_SIZE as usize)
            .filter_map(|va| pr.mm.translate(va))
            .filter(|&gpa| moving(pr.numa.node_of_gpa(gpa)))
            .count();
    }
    Ok(pages)
}

/// `getcpu(cpu, node, cache)`: the LWK core running the caller and its node.
pub fn getcpu<P: Platform>(m: &dyn Machine<P>, cpu: u64, node: u64) -> Result<usize, Errno> {
    let core = m.core();
    let g = m.process().lock();
    let pr = g.as_ref().expect("process");
    let id = pr.numa.node_of_core(core);
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
