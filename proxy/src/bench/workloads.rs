//! The workloads `mote bench` runs: which program in `<target>/apps/`, with which
//! arguments, and which of the `key=value` figures it prints go into the table.

/// Which way a figure improves (shown in the table, so a ratio reads right).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Better {
    Lower,
    Higher,
    /// Not a performance figure (an iteration count, a residual).
    Neither,
}

/// One figure of a workload's table.
#[derive(Clone, Copy, Debug)]
pub struct Metric {
    /// The key the program prints (`prefix.key` for lines that start with a word).
    pub key: &'static str,
    /// The key to compare with natively, when the program prints another one
    /// there (mote's direct entry against the native call).
    pub native_key: &'static str,
    pub unit: &'static str,
    pub better: Better,
    /// The key holds a comma-separated list of samples: median and p99 are taken
    /// over every sample of every repetition instead of over per-run values.
    pub pooled: bool,
    /// The row's name in the table (the key when None).
    pub label: Option<&'static str>,
}

impl Metric {
    /// The key to read on `side`.
    pub fn key_on(&self, side: super::Side) -> &'static str {
        match side {
            super::Side::Native => self.native_key,
            super::Side::Mote(..) => self.key,
        }
    }
}

const fn m(key: &'static str, unit: &'static str, better: Better) -> Metric {
    Metric {
        key,
        native_key: key,
        unit,
        better,
        pooled: false,
        label: None,
    }
}

const fn pooled(key: &'static str, unit: &'static str) -> Metric {
    Metric {
        key,
        native_key: key,
        unit,
        better: Better::Lower,
        pooled: true,
        label: None,
    }
}

/// Samples under mote compared with another key's samples natively.
const fn pooled_vs(key: &'static str, native_key: &'static str, unit: &'static str) -> Metric {
    Metric {
        key,
        native_key,
        unit,
        better: Better::Lower,
        pooled: true,
        label: None,
    }
}

/// mote's forwarded `getppid` against the offload floor the native run of
/// `latency` measures (`--floor-cpu`): two cache-line handoffs and Linux's call.
const FORWARD_FLOOR: Metric = Metric {
    label: Some("getppid vs floor (all)"),
    ..pooled_vs("getppid.raw_ns", "getppid_floor.raw_ns", "ns")
};

/// One program and how to run it.
#[derive(Debug)]
pub struct Workload {
    pub name: &'static str,
    /// File name in `<target>/apps/`.
    pub program: &'static str,
    pub args: &'static [&'static str],
    pub quick_args: &'static [&'static str],
    pub metrics: &'static [Metric],
    pub what: &'static str,
    /// LWK cores of the mote runs (`--cores`). The native run stays pinned to
    /// the LWK host CPU as for every workload: on a 2-CPU machine every side
    /// then has one host CPU for the threads.
    pub cores: usize,
    /// An option the native run gets with the Linux core's number, for a
    /// helper thread of the program to run there (the native side of what
    /// mote's proxy does there).
    pub native_linux_cpu_arg: Option<&'static str>,
    /// The launcher that starts the program's ranks, on both sides (`LAUNCHER
    /// program` natively, `LAUNCHER mote run ... -- program` under mote), with
    /// its default binding: the bench does not pin these runs itself.
    pub launcher: Option<&'static [&'static str]>,
}

/// Open MPI's launcher, two ranks, its default binding (a core each). Open MPI
/// must be told twice that it may run as root: the flag does nothing otherwise.
const MPIRUN: &[&str] = &["mpirun.openmpi", "--allow-run-as-root", "-n", "2"];

/// The end-to-end wall time of a run, measured by the bench for every run.
pub const WALL_MS: &str = "wall_ms";

pub const FWQ: &str = "fwq";

/// Workloads run only when named (`mote bench timeshare`, `mote bench fork`,
/// `mote bench mpi mpi_cg`, `mote bench script200`, `mote bench rawsite`): not
/// part of the default set, which the test suite's smoke test runs against a
/// time limit.
pub const ON_REQUEST: &[&str] = &["timeshare", "fork", "mpi", "mpi_cg", "script200", "rawsite"];

/// The share of a memory workload's memory on 2 MiB or 1 GiB pages, in percent
/// (`apps/pages.h`): what page size the application's memory got on each side.
pub const LARGE_PAGES: &str = "large_pages_pct";

pub const ALL: &[Workload] = &[
    Workload {
        name: "latency",
        program: "latency",
        args: &["--raw"],
        quick_args: &["--quick", "--raw"],
        metrics: &[
            pooled("getpid.raw_ns", "ns"),
            pooled("getppid.raw_ns", "ns"),
            FORWARD_FLOOR,
            pooled("write_devnull.raw_ns", "ns"),
            pooled("clock_gettime.raw_ns", "ns"),
            pooled_vs("getpid_direct.raw_ns", "getpid.raw_ns", "ns"),
            pooled_vs("getppid_direct.raw_ns", "getppid.raw_ns", "ns"),
            pooled_vs("write_devnull_direct.raw_ns", "write_devnull.raw_ns", "ns"),
            pooled_vs("clock_gettime_direct.raw_ns", "clock_gettime.raw_ns", "ns"),
        ],
        what: "per-call latency: getpid (local under mote), getppid and write to /dev/null \
               (forwarded), libc clock_gettime; the syscall instruction and mote's direct entry; \
               the floor of a forwarded call (native column of `getppid vs floor`)",
        cores: 1,
        native_linux_cpu_arg: Some("--floor-cpu"),
        launcher: None,
    },
    Workload {
        name: FWQ,
        program: "fwq",
        args: &["--raw"],
        quick_args: &["--quick", "--raw"],
        metrics: &[
            pooled("raw_cycles", "cycles"),
            m("max_min_ratio", "", Better::Lower),
            m("mean_min_ratio", "", Better::Lower),
        ],
        what: "Fixed Work Quantum: 10,000 samples of one fixed quantum, in TSC cycles",
        cores: 1,
        native_linux_cpu_arg: None,
        launcher: None,
    },
    Workload {
        name: "gups",
        program: "gups",
        args: &[],
        quick_args: &["--quick"],
        metrics: &[
            m("ns_per_update", "ns", Better::Lower),
            m("gups", "GUP/s", Better::Higher),
            m("cpu_ns_per_update", "ns", Better::Lower),
            m(LARGE_PAGES, "%", Better::Neither),
        ],
        what: "random read-modify-write updates, 1 GiB table (64 MiB quick)",
        cores: 1,
        native_linux_cpu_arg: None,
        launcher: None,
    },
    Workload {
        name: "stream",
        program: "stream",
        args: &[],
        quick_args: &["--quick"],
        metrics: &[
            m("triad_gbs", "GB/s", Better::Higher),
            m(LARGE_PAGES, "%", Better::Neither),
        ],
        what: "STREAM triad, 3 x 160 MB (3 x 16 MB quick)",
        cores: 1,
        native_linux_cpu_arg: None,
        launcher: None,
    },
    Workload {
        name: "alloc",
        program: "alloc",
        args: &[],
        quick_args: &["--quick"],
        metrics: &[
            m("ns_per_op", "ns", Better::Lower),
            m("cpu_ns_per_op", "ns", Better::Lower),
            m(LARGE_PAGES, "%", Better::Neither),
        ],
        what: "malloc/free of mixed sizes, 10M operations (1M quick)",
        cores: 1,
        native_linux_cpu_arg: None,
        launcher: None,
    },
    Workload {
        name: "cg",
        program: "cg",
        args: &[],
        quick_args: &["--quick"],
        metrics: &[
            m("ms_per_iteration", "ms", Better::Lower),
            m("mflops", "MFLOP/s", Better::Higher),
            m("iterations", "", Better::Neither),
        ],
        what: "HPCCG-style CG, 27-point stencil, 64^3 rows (32^3 quick), 1 thread",
        cores: 1,
        native_linux_cpu_arg: None,
        launcher: None,
    },
    Workload {
        name: "cg2",
        program: "cg",
        args: &["--threads", "2"],
        quick_args: &["--quick", "--threads", "2"],
        metrics: &[
            m("ms_per_iteration", "ms", Better::Lower),
            m("mflops", "MFLOP/s", Better::Higher),
            m("iterations", "", Better::Neither),
        ],
        what: "the same CG with 2 threads (pthreads, a barrier per kernel): --cores 2 under mote",
        cores: 2,
        native_linux_cpu_arg: None,
        launcher: None,
    },
    Workload {
        name: "timeshare",
        program: "timeshare",
        args: &["share", "2"],
        quick_args: &["share", "0.3"],
        metrics: &[
            m("share0", "", Better::Neither),
            m("share1", "", Better::Neither),
            m("share2", "", Better::Neither),
            m("share3", "", Better::Neither),
            m("max_dev_pct", "%", Better::Lower),
            m(WALL_MS, "ms", Better::Lower),
        ],
        what: "four CPU-bound threads on one core for 2 s (0.3 s quick): each one's share of \
               the work (a quarter each is fair; under mote the core time-slices them, \
               `--time-slice`; natively Linux does, the run pinned to one CPU)",
        cores: 1,
        native_linux_cpu_arg: None,
        launcher: None,
    },
    Workload {
        name: "fork",
        program: "fork_bench",
        args: &[],
        quick_args: &["--quick"],
        metrics: &[
            m("fork1m_ms", "ms", Better::Lower),
            m("fork1m_min_ms", "ms", Better::Lower),
            m("fork256m_ms", "ms", Better::Lower),
            m("fork256m_min_ms", "ms", Better::Lower),
        ],
        what: "fork + _exit + waitpid of a process with 1 MiB and then 256 MiB touched, \
               median and minimum of 7 (3 quick)",
        cores: 1,
        native_linux_cpu_arg: None,
        launcher: None,
    },
    Workload {
        name: "startup",
        program: "hello",
        args: &[],
        quick_args: &[],
        metrics: &[m(WALL_MS, "ms", Better::Lower)],
        what: "end-to-end time of a program that prints one line and exits",
        cores: 1,
        native_linux_cpu_arg: None,
        launcher: None,
    },
    Workload {
        name: "startup_dyn",
        program: "/bin/true",
        args: &[],
        quick_args: &[],
        metrics: &[m(WALL_MS, "ms", Better::Lower)],
        what: "end-to-end time of the system's /bin/true: a dynamically linked program \
               (ld.so, libc.so.6) that does nothing",
        cores: 1,
        native_linux_cpu_arg: None,
        launcher: None,
    },
    Workload {
        name: "rawsite",
        program: "rawsite_loop",
        args: &["--bench"],
        quick_args: &["--bench", "--quick"],
        metrics: &[pooled("rawsite_getpid.raw_ns", "ns")],
        what: "getpid through a system-call site the self-patcher cannot rewrite (the number \
               moved in from another register): under mote every call of the unmodified \
               program traps; `--linked` compares the program rewritten by `mote link`",
        cores: 1,
        native_linux_cpu_arg: None,
        launcher: None,
    },
    Workload {
        name: "script200",
        program: "script200",
        args: &[],
        quick_args: &[],
        metrics: &[
            m("script_ms", "ms", Better::Lower),
            m(WALL_MS, "ms", Better::Lower),
        ],
        what: "a shell script (`/bin/sh -c`) running 200 short commands (`/bin/true`, \
               `/bin/echo`, `cat`, `uname`), each forked and exec'd by the shell; `script_ms` \
               from the first fork to the shell's end",
        cores: 1,
        native_linux_cpu_arg: None,
        launcher: None,
    },
    Workload {
        name: "mpi",
        program: "openmpi/mpi_bench",
        args: &[],
        quick_args: &["--quick"],
        metrics: &[
            m("pingpong_8b_us", "us", Better::Lower),
            m("pingpong_1m_us", "us", Better::Lower),
            m("bandwidth_1m_mbs", "MB/s", Better::Higher),
            m("allreduce_8b_us", "us", Better::Lower),
        ],
        what: "Open MPI, `mpirun -n 2` with its default binding (a core per rank): ping-pong \
               of 8 B and 1 MiB, 1 MiB bandwidth (16 in flight), allreduce of a double",
        cores: 1,
        native_linux_cpu_arg: None,
        launcher: Some(MPIRUN),
    },
    Workload {
        name: "mpi_cg",
        program: "openmpi/mpi_cg",
        args: &[],
        quick_args: &["--quick"],
        metrics: &[
            m("ms_per_iteration", "ms", Better::Lower),
            m("mflops", "MFLOP/s", Better::Higher),
            m("iterations", "", Better::Neither),
        ],
        what: "the CG of `cg` split over 2 ranks by z planes (halo exchange, allreduce), \
               Open MPI `mpirun -n 2`, default binding",
        cores: 1,
        native_linux_cpu_arg: None,
        launcher: Some(MPIRUN),
    },
];

/// The workload called `name`.
pub fn find(name: &str) -> Option<&'static Workload> {
    ALL.iter().find(|w| w.name == name)
}
