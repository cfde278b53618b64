//! `mote link [POLICY...] IN -o OUT` and `mote link [POLICY...] -- CC ARGS...`: the
//! options, and what the command prints.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use mote_abi::note::{self, Policy};

use crate::{link_file, wrap, LinkError};

/// Smallest `--mem` (as `mote run`).
const MIN_MEM: u64 = 128 << 20;
const LARGE: u64 = 2 << 20;

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
    #[value(name = "4k", alias = "4K")]
    FourK,
    #[value(name = "2m", alias = "2M")]
    TwoM,
    #[value(name = "1g", alias = "1G")]
    OneG,
}

/// Parse a size like `mote run --mem`: bytes with an optional K/M/G/T suffix,
/// rounded up to 2 MiB, at least 128M.
pub fn parse_mem(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_lowercase();
    let t = t
        .strip_suffix("ib")
        .or_else(|| t.strip_suffix('b'))
        .unwrap_or(&t);
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits);
    let shift = match unit {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => return Err("not a size (use e.g. 512M, 2G or a number of bytes)".into()),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| "not a size (use e.g. 512M, 2G or a number of bytes)".to_string())?;
    let b = n
        .checked_mul(1 << shift)
        .and_then(|b| b.checked_add(LARGE - 1))
        .ok_or("too large")?
        & !(LARGE - 1);
    if b < MIN_MEM {
        return Err(format!("{b} bytes is below the 128M a partition needs"));
    }
    Ok(b)
}

impl LinkArgs {
    /// The note these options make.
    pub fn policy(&self) -> Policy {
        Policy {
            version: note::VERSION,
            flags: if self.no_patch { note::F_NO_PATCH } else { 0 },
            page_size: match self.page_size {
                None => 0,
                Some(PageSize::FourK) => 4 << 10,
                Some(PageSize::TwoM) => 2 << 20,
                Some(PageSize::OneG) => 1 << 30,
            },
            mem: self.mem.unwrap_or(0),
            cores: self.cores.unwrap_or(0),
            reserved: 0,
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
    let out = link_file(&input, &output, &a.policy(), !a.no_patch)?;
    if std::env::var_os("MOTE_DEBUG").is_some() {
        for (site, why) in &out.scan.kept {
            eprintln!("mote: link: site {site:#x} kept as syscall: {why:?}");
        }
    }
    let kept = out.scan.kept.len();
    let frame = out
        .scan
        .kept
        .iter()
        .filter(|(_, k)| matches!(k, crate::scan::Kept::NeedsFrame(_)))
        .count();
    println!(
        "mote link: {}: {} system-call sites rewritten, {} kept as syscall ({} clone/fork/sigreturn), code added at {:#x}",
        output.display(),
        out.scan.rewrites.len(),
        kept,
        frame,
        out.code_vaddr
    );
    Ok(())
}
