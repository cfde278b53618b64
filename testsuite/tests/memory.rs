//! The memory policy and the partition's /proc and /sys, seen by applications:
//! `apps/memcheck.c` (1 GiB of anonymous memory mapped before use, visible in
//! `/proc/self/smaps`; on the partition on large pages and without a page fault
//! while it runs) and `apps/partition.c` (the CPU count, memory and status a
//! program finds).

use mote_testsuite::{app, Platform, Program};

/// The `key: value` line of `out` whose key is `key` (first one).
fn value<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(key))
        .unwrap_or_else(|| panic!("no {key:?} line in:\n{out}"))
        .trim()
}

/// kB figure of an smaps line value such as `2048 kB`.
fn kb(v: &str) -> u64 {
    v.trim_end_matches("kB").trim().parse().unwrap()
}

/// Page faults kernel-min took, from `mote run --stats`.
fn kernel_faults(stderr: &str) -> u64 {
    let line = stderr
        .lines()
        .find(|l| l.contains("kernel-min: page faults"))
        .unwrap_or_else(|| panic!("no kernel-min statistics in stderr:\n{stderr}"));
    let rest = &line[line.find("page faults ").unwrap() + "page faults ".len()..];
    rest.split_whitespace().next().unwrap().parse().unwrap()
}

/// Writing memcheck's gigabyte (262,144 4 KiB pages) took no fault per page:
/// memory is mapped before use. In the partition no fault at all (kernel-min
/// maps everything before use); on the hosted platform the count is Linux's,
/// which also counts the first touches of small mappings libos leaves to
/// Linux (it populates those from 256 KiB on), so a handful.
fn assert_mapped_before_use(pf: Platform, out: &str) {
    let faults: u64 = value(out, "page faults:")
        .parse()
        .unwrap_or_else(|_| panic!("no page-fault count\n{out}"));
    if pf == Platform::Kvm {
        assert_eq!(faults, 0, "{out}");
    } else {
        assert!(
            faults < (1 << 18) / 64,
            "{faults} page faults for 262,144 pages written: memory was not mapped before use\n{out}"
        );
    }
}

/// `apps/memcheck.c`: its own checks (1 GiB mapped and written, DONTNEED,
/// mremap, a read-only page's SIGSEGV) pass, `/proc/self/smaps` shows the
/// gigabyte, and writing it took no fault per page (memory is mapped before
/// use). The page size is the platform's: see the next test for the
/// partition's 2 MiB pages.
fn a_gigabyte_mapped_before_use(pf: Platform) {
    let run = Program::new(app("memcheck")).on(pf).mote();
    let out = run.stdout_text();
    assert_eq!(run.status, 0, "{run:?}");
    assert!(out.contains("memcheck: all checks passed"), "{out}");
    assert_eq!(kb(value(&out, "smaps: Size:")), 1 << 20, "{out}");
    assert_mapped_before_use(pf, &out);
}

// kvm only: kernel-min's page-fault counter is the partition's (the hosted
// platform's page sizes: `hosted_a_gigabyte_is_on_hugetlbfs_pages_when_linux_has_them`).
#[test]
fn a_gigabyte_of_anonymous_memory_is_on_large_pages_and_never_faults() {
    let prog = Program::new(app("memcheck")).on(Platform::Kvm);
    // Natively the same checks pass (with whatever pages Linux picks).
    let native = prog.native();
    assert_eq!(native.status, 0, "{native:?}");
    assert!(native.stdout_text().contains("memcheck: all checks passed"));

    let mote = prog.mote_with(&["--stats"]);
    let out = mote.stdout_text();
    assert_eq!(mote.status, 0, "{mote:?}");
    assert!(out.contains("memcheck: all checks passed"), "{out}");
    // /proc/self/maps lists it; smaps says it is backed by 2 MiB pages throughout.
    assert!(value(&out, "maps: ").contains(" rw-p "), "{out}");
    assert_eq!(kb(value(&out, "smaps: Size:")), 1 << 20, "{out}");
    assert_eq!(kb(value(&out, "smaps: KernelPageSize:")), 2048, "{out}");
    assert_eq!(kb(value(&out, "smaps: MMUPageSize:")), 2048, "{out}");
    assert_eq!(kb(value(&out, "smaps: AnonHugePages:")), 1 << 20, "{out}");
    // Writing every page of it (and the rest of the run) took no page fault: the
    // program's own count (minflt + majflt of /proc/self/stat, which under mote
    // are kernel-min's faults) and kernel-min's counter for the whole run.
    assert_eq!(value(&out, "page faults:"), "0", "{out}");
    assert_eq!(kernel_faults(&mote.stderr_text()), 0, "{mote:?}");
    assert_eq!(
        value(&out, "dontunmap:"),
        "moved, the old range reads zero",
        "{out}"
    );
}

fn page_size_4k_backs_the_gigabyte_with_small_pages(pf: Platform) {
    let mote = Program::new(app("memcheck"))
        .on(pf)
        .mote_with(&["--page-size", "4k"]);
    let out = mote.stdout_text();
    assert_eq!(mote.status, 0, "{mote:?}");
    assert_eq!(kb(value(&out, "smaps: KernelPageSize:")), 4, "{out}");
    assert_eq!(kb(value(&out, "smaps: AnonHugePages:")), 0, "{out}");
    assert_mapped_before_use(pf, &out);
}

/// 2 MiB hugetlbfs pages Linux has free for a new reservation.
fn hugetlb_pages_free() -> u64 {
    let read = |f: &str| {
        std::fs::read_to_string(format!("/sys/kernel/mm/hugepages/hugepages-2048kB/{f}"))
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    read("free_hugepages").saturating_sub(read("resv_hugepages"))
}

/// Enough free hugetlbfs pages for memcheck's gigabyte with `--mem 3G` (the
/// hosted platform puts up to three quarters of it on them).
const PAGES_FOR_A_GIGABYTE: u64 = 600;

/// On the hosted platform the gigabyte is on 2 MiB pages from hugetlbfs when
/// Linux has them free (`.ci/run` reserves 1024), else on 4 KiB pages; either
/// way it is mapped before use.
#[test]
fn hosted_a_gigabyte_is_on_hugetlbfs_pages_when_linux_has_them() {
    let free = hugetlb_pages_free();
    let mote = Program::new(app("memcheck"))
        .on(Platform::Hosted)
        .mote_with(&["--mem", "3G"]);
    let out = mote.stdout_text();
    assert_eq!(mote.status, 0, "{mote:?}");
    assert!(out.contains("memcheck: all checks passed"), "{out}");
    if free >= PAGES_FOR_A_GIGABYTE {
        assert_eq!(kb(value(&out, "smaps: KernelPageSize:")), 2048, "{out}");
        assert_eq!(kb(value(&out, "smaps: MMUPageSize:")), 2048, "{out}");
        assert_eq!(kb(value(&out, "smaps: AnonHugePages:")), 1 << 20, "{out}");
    } else if free == 0 {
        eprintln!("no hugetlbfs pages free: checking the 4 KiB fallback");
        assert_eq!(kb(value(&out, "smaps: KernelPageSize:")), 4, "{out}");
        assert_eq!(kb(value(&out, "smaps: AnonHugePages:")), 0, "{out}");
    } else {
        // Part of the gigabyte on 2 MiB pages, as many as were free.
        eprintln!("only {free} hugetlbfs pages free: the page sizes are mixed");
        assert!(
            kb(value(&out, "smaps: AnonHugePages:")) <= free * 2048,
            "{out}"
        );
    }
    assert_mapped_before_use(Platform::Hosted, &out);
}

/// `--page-size 1g`: gigabyte pages where the platform has them, else 2 MiB
/// pages and one line saying so (the partition on a CPU without pdpe1gb as KVM
/// offers it; the hosted platform, which maps hugetlbfs pages of 2 MiB; there
/// 4 KiB pages without free hugetlbfs pages).
fn page_size_1g_uses_gigabyte_pages_or_says_why_not(pf: Platform) {
    let free = hugetlb_pages_free();
    let mote =
        Program::new(app("memcheck"))
            .on(pf)
            .mote_with(&["--page-size", "1g", "--mem", "3G"]);
    let out = mote.stdout_text();
    let err = mote.stderr_text();
    assert_eq!(mote.status, 0, "{mote:?}");
    let page = kb(value(&out, "smaps: KernelPageSize:"));
    if page == 1 << 20 {
        assert!(!err.contains("--page-size 1g"), "{err}");
    } else {
        if pf == Platform::Kvm || free >= PAGES_FOR_A_GIGABYTE {
            assert_eq!(page, 2048, "{out}");
        } else if free == 0 {
            assert_eq!(page, 4, "{out}");
        }
        assert_eq!(err.matches("--page-size 1g").count(), 1, "{err}");
    }
    assert_mapped_before_use(pf, &out);
}

/// kvm only: the counter is kernel-min's (the hosted platform's faults are
/// Linux's, counted by Linux).
#[test]
fn the_fault_counter_counts_a_fault() {
    // The counter the tests above read as 0 does count: a write through a bad
    // pointer is one page fault.
    let mote = Program::new(app("segv"))
        .on(Platform::Kvm)
        .mote_with(&["--stats"]);
    assert_eq!(mote.status, 139, "{mote:?}");
    assert_eq!(kernel_faults(&mote.stderr_text()), 1, "{mote:?}");
}

fn a_write_to_a_page_made_read_only_is_sigsegv(pf: Platform) {
    let prog = Program::new(app("memcheck")).on(pf).arg("rofault");
    let native = prog.native();
    let mote = prog.mote();
    assert_eq!(native.status, 139);
    assert_eq!(mote.status, native.status, "{mote:?}");
    assert_eq!(mote.stdout, native.stdout);
    assert!(mote.stderr_text().contains("SIGSEGV"), "{mote:?}");
    assert!(
        mote.stderr_text().contains("protection violation"),
        "{mote:?}"
    );
}

fn out_of_partition_memory_is_enomem_and_one_message(pf: Platform) {
    // 1 GiB does not fit in a 512 MiB partition: mmap fails as natively on a
    // small machine, and mote says why once.
    let mote = Program::new(app("memcheck"))
        .on(pf)
        .mote_with(&["--mem", "512M"]);
    let err = mote.stderr_text();
    assert_eq!(mote.status, 1, "{mote:?}");
    assert!(
        err.contains("memcheck: mmap 1 GiB: Cannot allocate memory"),
        "{err}"
    );
    assert_eq!(err.matches("out of partition memory").count(), 1, "{err}");
    assert!(err.contains("--mem"), "{err}");
}

fn the_partition_shows_its_own_cores_memory_and_status(pf: Platform) {
    let mote = Program::new(app("partition"))
        .on(pf)
        .mote_with(&["--mem", "512M"]);
    let out = mote.stdout_text();
    assert_eq!(mote.status, 0, "{mote:?}");
    assert_eq!(value(&out, "nprocs_onln:"), "1", "{out}");
    assert_eq!(value(&out, "nprocs_conf:"), "1", "{out}");
    assert_eq!(value(&out, "affinity:"), "1 cpus", "{out}");
    assert_eq!(value(&out, "/sys/devices/system/cpu/online:"), "0", "{out}");
    assert_eq!(
        value(&out, "/sys/devices/system/cpu/possible:"),
        "0",
        "{out}"
    );
    assert_eq!(
        value(&out, "/proc/cpuinfo:"),
        "1 lines starting 'processor'",
        "{out}"
    );
    let total = kb(value(&out, "/proc/meminfo: MemTotal:"));
    assert!(
        total > 0 && total < 512 * 1024,
        "MemTotal {total} kB: {out}"
    );
    assert_eq!(value(&out, "/proc/self/status: Threads:"), "1", "{out}");
    assert_eq!(
        value(&out, "/proc/self/status: Cpus_allowed_list:"),
        "0",
        "{out}"
    );
    assert_eq!(value(&out, "statm agrees with status:"), "yes", "{out}");
    // The served files behave as Linux's read-only descriptors.
    assert_eq!(
        value(&out, "open maps for writing:"),
        "Permission denied",
        "{out}"
    );
    assert_eq!(value(&out, "O_CLOEXEC kept:"), "yes", "{out}");
    assert_eq!(value(&out, "opened read-only:"), "yes", "{out}");
    assert_eq!(value(&out, "write to it:"), "Bad file descriptor", "{out}");
    assert_eq!(value(&out, "lowest descriptor:"), "yes", "{out}");
}

mote_testsuite::on_both_platforms!(
    a_gigabyte_mapped_before_use,
    page_size_4k_backs_the_gigabyte_with_small_pages,
    page_size_1g_uses_gigabyte_pages_or_says_why_not,
    a_write_to_a_page_made_read_only_is_sigsegv,
    out_of_partition_memory_is_enomem_and_one_message,
    the_partition_shows_its_own_cores_memory_and_status,
);
