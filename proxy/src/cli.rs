//! The `mote` command line: `mote run [...] PROGRAM [ARGS...]`, `mote info [FILE]`,
//! `mote bench` and `mote link` (whose options live in the `mote_linker` crate).
//!
//! Parsing only; what the commands do lives in `run`, `info` and `mote_linker`. Every message the
//! proxy prints starts with `mote: `, clap's own usage errors included.

use std::ffi::OsString;

use clap::{Args, Parser, Subcommand, ValueEnum};
pub use mote_linker::cli::{parse_mem, PageSize};

/// Exit status of a usage error (as clap and most shell utilities use).
pub const EXIT_USAGE: i32 = 2;

/// Default partition memory.
pub const DEFAULT_MEM: &str = "2G";
/// Default time-sharing slice (`--time-slice`), in ms: long enough that a
/// preempted compute thread loses nothing measurable to the switch (a few µs
/// per slice), short enough that two threads spinning on each other on one
/// core hand over within a few slices (Linux's CFS slices are 0.75-6 ms).
pub const DEFAULT_TIME_SLICE_MS: u64 = 10;

#[derive(Debug, Parser)]
#[command(
    name = "mote",
    version,
    about = "Run a program on a lightweight kernel partition, with Linux serving the rest"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run PROGRAM in a new partition; exit with its status.
    #[command(override_usage = "mote run [OPTIONS] [--] PROGRAM [ARGS]...")]
    Run(RunArgs),
    /// Show what this machine offers (KVM kind, cores, memory) and the backend `run`
    /// uses; with FILE, the policy note `mote link` wrote into it.
    Info(InfoArgs),
    /// Run the workloads natively and on each mote platform (kvm, hosted), pinned
    /// to the same core; print one table.
    Bench(BenchArgs),
    /// Rewrite a static x86_64 executable so its system calls reach mote without a
    /// trap (still a Linux program), with POLICY options in an ELF note.
    Link(mote_linker::LinkArgs),
}

#[derive(Debug, Args)]
pub struct InfoArgs {
    /// A program whose mote note to print.
    #[arg(value_name = "FILE")]
    pub file: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Short runs (small problem sizes, 3 repetitions): under 2 minutes.
    #[arg(long)]
    pub quick: bool,
    /// Write every run's figures and raw samples to FILE as JSON.
    #[arg(long, value_name = "FILE")]
    pub json: Option<std::path::PathBuf>,
    /// Draw SVG pictures (FWQ timelines, latency histogram) into DIR.
    #[arg(long, value_name = "DIR")]
    pub plot: Option<std::path::PathBuf>,
    /// Also run FWQ with a competing Linux load (busy loop, memory, file I/O) on the Linux core.
    #[arg(long)]
    pub load: bool,
    /// Also run each workload's program rewritten by `mote link` (a `+linked`
    /// configuration beside each one), and compare the two.
    #[arg(long)]
    pub linked: bool,
    /// Repetitions of each configuration, native and each platform (default 3
    /// with --quick, else 5).
    #[arg(long, value_name = "N")]
    pub reps: Option<usize>,
    /// Platforms of the mote runs, beside native Linux: all usable ones (the
    /// default), or kvm, hosted, or a list (`kvm,hosted`).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "all",
        value_name = "PLATFORM"
    )]
    pub platform: Vec<BenchPlatform>,
    /// The runtime image of the mote runs (`cargo xtask image`); repeat it to
    /// compare images side by side: a column per image and platform, and each
    /// image's median over the first's. `built-in` names the embedded one.
    #[arg(long, value_name = "FILE")]
    pub runtime: Vec<std::path::PathBuf>,
    /// The kernel-min image of the kvm runs [default: the built-in one].
    #[arg(long, value_name = "FILE")]
    pub kernel: Option<std::path::PathBuf>,
    /// Workloads to run (default: all but timeshare, fork, script200, rawsite,
    /// mpi and mpi_cg): latency, fwq, gups, stream, alloc, cg, cg2, startup, startup_dyn,
    /// timeshare, fork, script200, rawsite, mpi, mpi_cg.
    #[arg(value_name = "WORKLOAD")]
    pub workloads: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// LWK cores of the partition [default: 1, or the program's mote note].
    #[arg(long = "cores", value_name = "N")]
    pub cores_flag: Option<usize>,
    /// Partition memory (512M, 2G, 1073741824, ...), rounded up to 2 MiB; at least
    /// 128M [default: 2G, or the program's mote note].
    #[arg(long = "mem", value_name = "SIZE", value_parser = parse_mem)]
    pub mem_flag: Option<u64>,
    /// Page size backing the application's anonymous memory, heap and stacks:
    /// 4k, 2m (physically contiguous 2 MiB pages) or 1g (1 GiB pages where the
    /// partition's memory has 1 GiB-aligned room; 2 MiB otherwise) [default: 2m,
    /// or the program's mote note].
    #[arg(long = "page-size", value_enum, value_name = "SIZE")]
    pub page_size_flag: Option<PageSize>,
    /// LWK cores (set by [`RunArgs::settle`]).
    #[arg(skip)]
    pub cores: usize,
    /// Partition memory (set by [`RunArgs::settle`]).
    #[arg(skip)]
    pub mem: u64,
    /// Page size (set by [`RunArgs::settle`]).
    #[arg(skip = PageSize::TwoM)]
    pub page_size: PageSize,
    /// Which platform runs the program: the KVM partition or the hosted process
    /// (`auto`: the partition only on hardware-virtualised KVM; `mote info` says which).
    #[arg(long, value_enum, default_value_t = PlatformChoice::Auto)]
    pub platform: PlatformChoice,
    /// Leave the program's system-call sites as they are: every call traps
    /// (by default a site that traps once is rewritten into a direct call).
    #[arg(long)]
    pub no_patch: bool,
    /// This run was started by a program running under mote (its `execve`,
    /// `posix_spawn`, `system`): the `mote run` of that child's program. Its
    /// end by a signal is its parent's to report, as for a native child
    /// (`report::print_killed`). Set by mote itself; not for users.
    #[arg(long, hide = true)]
    pub spawned: bool,
    /// At exit, print how the application's system calls arrived (trapped, or
    /// through patched sites) on stderr.
    #[arg(long)]
    pub stats: bool,
    /// Time-sharing slice in ms: a core with two or more threads that want to
    /// run preempts the running one after this long, even in a loop without
    /// system calls (a core with one never takes a timer event). 0: never
    /// preempt (a thread keeps its core until it blocks, yields or exits)
    /// [default: 10, or the program's mote note].
    #[arg(
        long = "time-slice",
        value_name = "MS",
        value_parser = clap::value_parser!(u64).range(0..=u64::from(mote_abi::note::TIME_SLICE_MAX_MS))
    )]
    pub time_slice_flag: Option<u64>,
    /// Time slice in ms (set by [`RunArgs::settle`]).
    #[arg(skip = DEFAULT_TIME_SLICE_MS)]
    pub time_slice: u64,
    /// Trace the application's system calls, one line each (thread, call,
    /// arguments, result, local or forwarded, trapped, cost in ns): to stderr, to
    /// FILE with `--trace=FILE`, or only a table per call at exit with
    /// `--trace=summary`.
    #[arg(
        long,
        value_name = "FILE",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "-"
    )]
    pub trace: Option<String>,
    /// NUMA placement of the partition's memory: `off` (not bound; the
    /// partition is one node, its first core's), `cores` (split over the
    /// nodes of the LWK cores, in proportion to their cores, each part bound
    /// to its node) or a list of host nodes (`0,1`, `0-3`: split evenly). The
    /// memory-policy calls and `getcpu` see these nodes.
    #[arg(long, value_name = "POLICY", default_value = "off")]
    pub numa: crate::numa::Choice,
    /// The runtime image (libos + shims) to load instead of the built-in one:
    /// an image built apart, for instance with another libos policy (`cargo
    /// xtask image`). Child programs the application starts get it too.
    #[arg(long, value_name = "FILE")]
    pub runtime: Option<std::path::PathBuf>,
    /// The kernel-min image to load instead of the built-in one (the KVM
    /// platform's; the hosted platform has no kernel-min, and checks it only).
    #[arg(long, value_name = "FILE")]
    pub kernel: Option<std::path::PathBuf>,
    /// The program (looked up in PATH like a shell does) and its arguments.
    #[arg(
        required = true,
        trailing_var_arg = true,
        value_name = "PROGRAM",
        value_parser = clap::value_parser!(OsString)
    )]
    pub command: Vec<OsString>,
}

impl RunArgs {
    /// Settle cores, memory, page size, time slice and `--no-patch`: a flag given wins, then
    /// the program's policy note (`mote link`), then the default.
    pub fn settle(&mut self, note: Option<&mote_abi::note::Policy>) {
        let note = note.copied().unwrap_or_default();
        self.cores = self
            .cores_flag
            .or((note.cores != 0).then_some(note.cores as usize))
            .unwrap_or(1);
        self.mem = self
            .mem_flag
            .or((note.mem != 0).then_some(note.mem))
            .unwrap_or_else(|| parse_mem(DEFAULT_MEM).expect("the default parses"));
        self.page_size = self.page_size_flag.unwrap_or(match note.page_size {
            0x1000 => PageSize::FourK,
            0x4000_0000 => PageSize::OneG,
            _ => PageSize::TwoM,
        });
        self.no_patch |= note.flags & mote_abi::note::F_NO_PATCH != 0;
        let noted = note.flags & mote_abi::note::F_TIME_SLICE != 0;
        self.time_slice = self
            .time_slice_flag
            .or(noted.then_some(u64::from(note.time_slice_ms)))
            .unwrap_or(DEFAULT_TIME_SLICE_MS);
    }
}

/// `--platform`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PlatformChoice {
    /// KVM when it is hardware-virtualised (kvm_intel, kvm_amd), else the
    /// hosted platform (`mote info` says which and why).
    Auto,
    /// mote's own KVM VMM (also on software KVM).
    Kvm,
    /// An ordinary Linux process beside the proxy, no KVM (Syscall User Dispatch).
    Hosted,
}

/// `mote bench --platform`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BenchPlatform {
    /// Every platform this machine can run: kvm when /dev/kvm is usable, hosted
    /// when Syscall User Dispatch is.
    All,
    /// The KVM partition.
    Kvm,
    /// The hosted platform.
    Hosted,
}

/// Parse the command line; on a usage error print it as `mote: ...` and exit 2.
pub fn parse() -> Cli {
    match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                e.exit();
            }
            let text = e.render().to_string();
            let text = text.strip_prefix("error: ").unwrap_or(&text);
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                eprintln!("mote: {line}");
            }
            std::process::exit(EXIT_USAGE);
        }
    }
}

/// Why a `--mem` value was refused.
#[cfg(test)]
mod tests {
    use super::*;
    use mote_linker::cli::MemError;

    #[test]
    fn mem_sizes_parse_with_suffixes() {
        assert_eq!(parse_mem("512M"), Ok(512 << 20));
        assert_eq!(parse_mem("2G"), Ok(2 << 30));
        assert_eq!(parse_mem("2g"), Ok(2 << 30));
        assert_eq!(parse_mem("2GiB"), Ok(2 << 30));
        assert_eq!(parse_mem("2GB"), Ok(2 << 30));
        assert_eq!(parse_mem("1073741824"), Ok(1 << 30));
        assert_eq!(parse_mem("1073741824B"), Ok(1 << 30));
        assert_eq!(parse_mem("131072K"), Ok(128 << 20));
        assert_eq!(parse_mem("1T"), Ok(1 << 40));
    }

    #[test]
    fn mem_rounds_up_to_2mib() {
        assert_eq!(parse_mem("129M"), Ok(130 << 20));
        assert_eq!(parse_mem("200000001"), Ok(192 << 20));
    }

    #[test]
    fn mem_refuses_small_and_garbage() {
        assert_eq!(parse_mem("127M"), Err(MemError::TooSmall(127 << 20)));
        assert_eq!(parse_mem("64M"), Err(MemError::TooSmall(64 << 20)));
        assert_eq!(parse_mem("0"), Err(MemError::TooSmall(0)));
        assert_eq!(parse_mem("M"), Err(MemError::Syntax));
        assert_eq!(parse_mem("2X"), Err(MemError::Syntax));
        assert_eq!(parse_mem("2iB"), Err(MemError::Syntax));
        assert_eq!(parse_mem("-1G"), Err(MemError::Syntax));
        assert_eq!(parse_mem("99999999999T"), Err(MemError::TooLarge));
        assert_eq!(
            parse_mem("99999999999999999999999"),
            Err(MemError::TooLarge)
        );
    }

    #[test]
    fn run_takes_everything_after_program_as_its_arguments() {
        let cli = Cli::try_parse_from(["mote", "run", "--mem", "1G", "ls", "-la", "--cores", "3"])
            .unwrap();
        let Command::Run(mut r) = cli.command else {
            panic!("not run")
        };
        r.settle(None);
        assert_eq!(r.mem, 1 << 30);
        assert_eq!(r.cores, 1);
        assert_eq!(r.platform, PlatformChoice::Auto);
        assert_eq!(r.command, ["ls", "-la", "--cores", "3"]);

        let cli = Cli::try_parse_from(["mote", "run", "--", "--weird", "x"]).unwrap();
        let Command::Run(mut r) = cli.command else {
            panic!("not run")
        };
        r.settle(None);
        assert_eq!(r.mem, 2 << 30);
        assert_eq!(r.command, ["--weird", "x"]);
    }

    #[test]
    fn page_size_defaults_to_2m_and_takes_4k_and_1g() {
        let size = |args: &[&str]| {
            let mut v = vec!["mote", "run"];
            v.extend_from_slice(args);
            v.push("x");
            match Cli::try_parse_from(v).map(|c| c.command) {
                Ok(Command::Run(mut r)) => {
                    r.settle(None);
                    Some(r.page_size.bytes())
                }
                _ => None,
            }
        };
        assert_eq!(size(&[]), Some(2 << 20));
        assert_eq!(size(&["--page-size", "4k"]), Some(4096));
        assert_eq!(size(&["--page-size", "2M"]), Some(2 << 20));
        assert_eq!(size(&["--page-size=1g"]), Some(1 << 30));
        assert_eq!(size(&["--page-size", "8k"]), None);
    }

    fn parse_from<const N: usize>(v: [&str; N]) -> Command {
        Cli::try_parse_from(v).unwrap().command
    }

    #[test]
    fn trace_takes_a_value_only_after_an_equals_sign() {
        let Command::Run(r) = parse_from(["mote", "run", "--trace", "./app", "x"]) else {
            panic!()
        };
        assert_eq!(r.trace.as_deref(), Some("-"));
        assert_eq!(r.command, ["./app", "x"]);
        let Command::Run(r) = parse_from(["mote", "run", "--trace=summary", "./app"]) else {
            panic!()
        };
        assert_eq!(r.trace.as_deref(), Some("summary"));
        let Command::Run(r) = parse_from(["mote", "run", "./app"]) else {
            panic!()
        };
        assert_eq!(r.trace, None);
    }

    #[test]
    fn flags_override_the_note_and_the_note_overrides_defaults() {
        let note = mote_abi::note::Policy {
            version: mote_abi::note::VERSION,
            flags: mote_abi::note::F_NO_PATCH | mote_abi::note::F_TIME_SLICE,
            page_size: 1 << 30,
            mem: 512 << 20,
            cores: 3,
            time_slice_ms: 0,
        };
        let parse = |args: &[&str]| {
            let mut v = vec!["mote", "run"];
            v.extend_from_slice(args);
            v.push("x");
            match Cli::try_parse_from(v).unwrap().command {
                Command::Run(mut r) => {
                    r.settle(Some(&note));
                    r
                }
                _ => panic!("not run"),
            }
        };
        let r = parse(&[]);
        assert_eq!(
            (r.cores, r.mem, r.page_size, r.no_patch, r.time_slice),
            (3, 512 << 20, PageSize::OneG, true, 0)
        );
        let r = parse(&["--cores", "2", "--mem", "1G", "--page-size", "4k"]);
        assert_eq!((r.cores, r.mem, r.page_size), (2, 1 << 30, PageSize::FourK));
        let r = parse(&["--time-slice", "5"]);
        assert_eq!(r.time_slice, 5);
    }

    #[test]
    fn a_note_without_a_time_slice_leaves_the_default() {
        let note = mote_abi::note::Policy {
            version: mote_abi::note::VERSION,
            ..Default::default()
        };
        let mut r = match Cli::try_parse_from(["mote", "run", "x"]).unwrap().command {
            Command::Run(r) => r,
            _ => panic!("not run"),
        };
        r.settle(Some(&note));
        assert_eq!(r.time_slice, DEFAULT_TIME_SLICE_MS);
    }

    #[test]
    fn time_slice_defaults_to_10ms_and_0_turns_it_off() {
        let slice = |args: &[&str]| {
            let mut v = vec!["mote", "run"];
            v.extend_from_slice(args);
            v.push("x");
            match Cli::try_parse_from(v).map(|c| c.command) {
                Ok(Command::Run(mut r)) => {
                    r.settle(None);
                    Some(r.time_slice)
                }
                _ => None,
            }
        };
        assert_eq!(slice(&[]), Some(DEFAULT_TIME_SLICE_MS));
        assert_eq!(DEFAULT_TIME_SLICE_MS, 10);
        assert_eq!(slice(&["--time-slice", "0"]), Some(0));
        assert_eq!(slice(&["--time-slice=3"]), Some(3));
        // ns in a u64 must not overflow: at most an hour.
        assert_eq!(slice(&["--time-slice", "3600001"]), None);
        assert_eq!(slice(&["--time-slice", "-1"]), None);
    }

    #[test]
    fn runtime_and_kernel_images_are_options_before_the_program() {
        let Command::Run(r) = parse_from([
            "mote",
            "run",
            "--runtime",
            "img/rt",
            "--kernel=img/k",
            "./app",
            "--runtime",
            "x",
        ]) else {
            panic!()
        };
        assert_eq!(r.runtime.as_deref(), Some(std::path::Path::new("img/rt")));
        assert_eq!(r.kernel.as_deref(), Some(std::path::Path::new("img/k")));
        assert_eq!(r.command, ["./app", "--runtime", "x"]);
        let Command::Run(r) = parse_from(["mote", "run", "./app"]) else {
            panic!()
        };
        assert_eq!((r.runtime, r.kernel), (None, None));
    }

    #[test]
    fn unknown_option_before_program_is_a_usage_error() {
        assert!(Cli::try_parse_from(["mote", "run", "--bogus", "x"]).is_err());
    }

    #[test]
    fn run_needs_a_program() {
        assert!(Cli::try_parse_from(["mote", "run"]).is_err());
        assert!(Cli::try_parse_from(["mote", "run", "--mem", "1M", "x"]).is_err());
    }
}
