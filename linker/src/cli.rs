//! `mote link [POLICY...] IN -o OUT` and `mote link [POLICY...] -- CC ARGS...`: the
//! options, and what the command prints. The policy options' values (`PageSize`,
//! `parse_mem`) are defined here once, for `mote run`'s flags as well.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use mote_abi::layout::LARGE_PAGE_SIZE;
use mote_abi::note::{self, Policy};

use crate::{link_file, wrap, LinkError};

/// Smallest partition memory `mote run` accepts.
pub const MIN_MEM: u64 = 128 << 20;

/// `mote link`'s arguments.
#[derive(Debug, Args)]
#[command(
    override_usage = "mote link [POLICY...] IN -o OUT\n       mote link [POLICY...] -- CC ARGS...",
    after_help = "POLICY options are written into OUT's mote note; `mote run` uses them unless \
                  its own flags say otherwise, and `mote info OUT` shows them."
)]
pub struct LinkArgs {
    /// Policy: page size backing the program's memory (4k, 2m, 1g).
    #[arg(long, value_enum, value_name = "SIZE")]
    pub page_size: Option<PageSize>,
    /// Policy: LWK cores of the partition.
    #[arg(long, value_name = "N")]
    pub cores: Option<u32>,
    /// Policy: partition memory (512M, 2G, ...; at least 128M).
    #[arg(long, value_name = "SIZE", value_parser = parse_mem)]
    pub mem: Option<u64>,
    /// Policy: time-sharing slice in ms (`mote run --time-slice`; 0: never
    /// preempt).
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u32).range(0..=note::TIME_SLICE_MAX_MS as i64))]
    pub time_slice: Option<u32>,
    /// Policy: leave the program's system-call sites as they are (no rewrite, and
    /// `mote run` does not patch them either).
    #[arg(long)]
    pub no_patch: bool,
    /// The output file.
    #[arg(short = 'o', value_name = "OUT")]
    pub output: Option<PathBuf>,
    /// The executable to rewrite.
    #[arg(value_name = "IN")]
    pub input: Option<PathBuf>,
    /// After `--`: a link command (compiler driver and its arguments) whose output
    /// is rewritten in place.
    #[arg(last = true, value_name = "CC ARGS")]
    pub command: Vec<OsString>,
}

/// `--page-size`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PageSize {
    /// 4 KiB pages.
    #[value(name = "4k", alias = "4K")]
    FourK,
    /// 2 MiB pages (the default).
    #[value(name = "2m", alias = "2M")]
    TwoM,
    /// 1 GiB pages.
    #[value(name = "1g", alias = "1G")]
    OneG,
}

impl PageSize {
    /// In bytes.
    pub fn bytes(self) -> u64 {
        match self {
            PageSize::FourK => mote_abi::layout::PAGE_SIZE,
            PageSize::TwoM => LARGE_PAGE_SIZE,
            PageSize::OneG => mote_abi::layout::HUGE_PAGE_SIZE,
        }
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum MemError {
    #[error("not a size (use e.g. 512M, 2G or a number of bytes)")]
    Syntax,
    #[error("too large")]
    TooLarge,
    #[error("{0} bytes is below the 128M a partition needs (kernel-min, the runtime and a usable application)")]
    TooSmall(u64),
}

/// Parse a memory size: a decimal number of bytes with an optional binary suffix
/// `K`, `M`, `G`, `T` (case-insensitive, optionally followed by `iB` or `B`), rounded
/// up to 2 MiB and at least `MIN_MEM`.
pub fn parse_mem(s: &str) -> Result<u64, MemError> {
    let s = s.trim();
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, suffix) = s.split_at(digits);
    if num.is_empty() {
        return Err(MemError::Syntax);
    }
    let n: u64 = num.parse().map_err(|_| MemError::TooLarge)?;
    let suffix = suffix.to_ascii_lowercase();
    let unit = suffix
        .strip_suffix("ib")
        .or_else(|| suffix.strip_suffix('b'))
        .unwrap_or(&suffix);
    let shift = match unit {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => return Err(MemError::Syntax),
    };
    // "B" alone is bytes; "iB" alone is not a unit.
    if unit.is_empty() && suffix == "ib" {
        return Err(MemError::Syntax);
    }
    let bytes = n.checked_mul(1u64 << shift).ok_or(MemError::TooLarge)?;
    if bytes < MIN_MEM {
        return Err(MemError::TooSmall(bytes));
    }
    bytes
        .checked_add(LARGE_PAGE_SIZE - 1)
        .map(|b| b & !(LARGE_PAGE_SIZE - 1))
        .ok_or(MemError::TooLarge)
}

impl LinkArgs {
    /// The note these options make.
    pub fn policy(&self) -> Policy {
        Policy {
            version: note::VERSION,
            flags: if self.no_patch { note::F_NO_PATCH } else { 0 }
                | if self.time_slice.is_some() {
                    note::F_TIME_SLICE
                } else {
                    0
                },
            page_size: match self.page_size {
                None => 0,
                Some(PageSize::FourK) => 4 << 10,
                Some(PageSize::TwoM) => 2 << 20,
                Some(PageSize::OneG) => 1 << 30,
            },
            mem: self.mem.unwrap_or(0),
            cores: self.cores.unwrap_or(0),
            time_slice_ms: self.time_slice.unwrap_or(0),
        }
    }
}

/// Run `mote link`; returns the exit status (messages printed as `mote: ...`).
pub fn run(a: LinkArgs) -> i32 {
    match run_inner(&a) {
        Ok(()) => 0,
        Err(LinkError::Usage(m)) => {
            eprintln!("mote: link: {m}");
            2
        }
        Err(e) => {
            eprintln!("mote: link: {e}");
            1
        }
    }
}

fn run_inner(a: &LinkArgs) -> Result<(), LinkError> {
    if a.cores == Some(0) {
        return Err(LinkError::Usage("--cores must be at least 1".into()));
    }
    let (input, output) = if !a.command.is_empty() {
        if a.input.is_some() || a.output.is_some() {
            return Err(LinkError::Usage(
                "give either IN -o OUT or -- CC ARGS..., not both".into(),
            ));
        }
        let out = wrap::run_command(&a.command)?;
        (out.clone(), out)
    } else {
        match (&a.input, &a.output) {
            (Some(i), Some(o)) => (i.clone(), o.clone()),
            (None, _) => {
                return Err(LinkError::Usage(
                    "no input (IN -o OUT, or -- CC ARGS...)".into(),
                ))
            }
            (Some(_), None) => return Err(LinkError::Usage("no output: -o OUT".into())),
        }
    };
    let linked = link_file(&input, &output, &a.policy(), !a.no_patch)?;
    let debug = std::env::var_os("MOTE_DEBUG").is_some();
    let report = |path: &std::path::Path, out: &crate::elf::Outcome| {
        if debug {
            for (site, why) in &out.scan.kept {
                eprintln!(
                    "mote: link: {}: site {site:#x} kept as syscall: {why:?}",
                    path.display()
                );
            }
        }
        println!(
            "mote link: {}: {} system-call sites rewritten, {} kept as syscall, code added at \
             {:#x}",
            path.display(),
            out.scan.rewrites.len(),
            out.scan.kept.len(),
            out.code_vaddr
        );
    };
    report(&output, &linked.main);
    if let Some((dir, libs)) = &linked.libs {
        for (name, out) in libs {
            report(&dir.join(name), out);
        }
    }
    Ok(())
}
