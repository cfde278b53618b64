//! NUMA calls (`apps/numa.c`): a table of valid and invalid `get_mempolicy`,
//! `set_mempolicy`, `mbind`, `move_pages`, `migrate_pages`,
//! `set_mempolicy_home_node` and `getcpu` calls (and pages mapped with
//! `MAP_POPULATE` and never touched) prints the same results, errno and
//! written values under mote as natively,
//! on this machine's single node — answered by libos, not by Linux on the
//! proxy's mirror (the trace's routes say so) — with the partition's memory
//! unbound (`--numa off`, the default) and bound to its cores' node (`--numa
//! cores`). A node the machine has no memory on is refused before the run.
//! The multi-node placement, the per-node frame pools and moving pages between
//! them are unit-tested on made-up topologies (`libos/src/numa/tests.rs`,
//! `libos/src/frames/nodes.rs`, `libos/src/syscall/numa/tests.rs`,
//! `proxy/src/numa.rs`).

use mote_testsuite::{app, assert_same, Platform, Program};

fn numa_calls_are_answered_as_natively(pf: Platform) {
    let prog = Program::new(app("numa")).on(pf);
    let (native, _) = prog.same_as_native();
    // The table ran to its end.
    assert!(
        native.stdout_text().contains("getcpu(&cpu, bad)"),
        "{native:?}"
    );
    let bound = prog.mote_with(&["--numa", "cores"]);
    assert_same(&native, &bound);
}

/// Regression (issue 17): the memory-policy calls and `getcpu` were forwarded,
/// so Linux answered them for the proxy's mirror and its offload thread's CPU.
fn numa_calls_are_local(pf: Platform) {
    let mote = Program::new(app("numa"))
        .on(pf)
        .mote_with(&["--trace=summary"]);
    assert_eq!(mote.status, 0, "{mote:?}");
    let err = mote.stderr_text();
    let row = |call: &str| {
        err.lines()
            .find(|l| l.split_whitespace().last() == Some(call))
            .unwrap_or_else(|| panic!("no summary row for {call}: {err}"))
            .to_string()
    };
    for call in [
        "get_mempolicy",
        "set_mempolicy",
        "mbind",
        "getcpu",
        "set_mempolicy_home_node",
    ] {
        let r = row(call);
        assert!(
            r.contains(" local ") && !r.contains("forwarded"),
            "{call}: {r}"
        );
    }
    // Another process's pages are Linux's (the `no such pid` rows), and
    // `CAP_SYS_NICE` is asked of Linux with a `move_pages` of no page.
    let r = row("move_pages");
    assert!(r.contains(" local, ") && r.contains("forwarded"), "{r}");
}

fn a_node_without_memory_is_refused(pf: Platform) {
    let mote = Program::new(app("hello"))
        .on(pf)
        .mote_with(&["--numa", "1000"]);
    assert_eq!(mote.status, 2, "{mote:?}");
    assert!(
        mote.stderr_text()
            .contains("mote: --numa 1000: node 1000 has no memory on this machine"),
        "{mote:?}"
    );
    assert!(mote.stdout.is_empty(), "{mote:?}");
}

mote_testsuite::on_both_platforms!(
    numa_calls_are_answered_as_natively,
    numa_calls_are_local,
    a_node_without_memory_is_refused,
);
