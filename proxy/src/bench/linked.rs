//! `mote bench --linked`: each selected workload's program is also rewritten by
//! `mote link` (into a directory of the bench's own, removed at the end) and run
//! as a `NAME+linked` configuration beside the unmodified one, natively and on
//! every platform; then one table of each linked figure's median over the
//! unmodified one's, per side. The MPI group's programs are dynamically linked:
//! theirs come with their rewritten libraries and ld.so beside them, and run
//! under their launcher as the unmodified ones do.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::stats::{self, Summary};
use super::workloads::{Better, Workload};
use super::{num, Report};

/// The linked programs of one bench run.
pub struct Linked {
    dir: PathBuf,
    done: BTreeMap<&'static str, PathBuf>,
}

impl Linked {
    /// A fresh directory for the linked programs.
    pub fn new() -> Result<Linked, String> {
        let dir = std::env::temp_dir().join(format!("mote-bench-linked-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot make {}: {e}", dir.display()))?;
        Ok(Linked {
            dir,
            done: BTreeMap::new(),
        })
    }

    /// `w`'s program rewritten by `mote link` (once per program).
    pub fn program(&mut self, apps: &Path, w: &Workload) -> Result<PathBuf, String> {
        if let Some(p) = self.done.get(w.program) {
            return Ok(p.clone());
        }
        let out = self.dir.join(w.program.replace('/', "_"));
        mote_linker::link_file(
            &apps.join(w.program),
            &out,
            &mote_abi::note::Policy {
                version: mote_abi::note::VERSION,
                ..Default::default()
            },
            true,
        )
        .map_err(|e| format!("mote link {}: {e}", w.program))?;
        self.done.insert(w.program, out.clone());
        Ok(out)
    }
}

impl Drop for Linked {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The table of each `+linked` configuration's medians over its unmodified
/// twin's, per figure and side (`OUT/IN`: below 1 is faster when lower is
/// better).
pub fn print_ratios(report: &Report) {
    let pairs: Vec<_> = report
        .configs
        .iter()
        .filter(|c| c.linked.is_some())
        .filter_map(|l| {
            let plain = report
                .configs
                .iter()
                .find(|c| c.linked.is_none() && !c.load && c.name == l.workload.name)?;
            Some((plain, l))
        })
        .collect();
    if pairs.is_empty() {
        return;
    }
    let sides = report.sides();
    println!();
    let mut head = format!("{:<24} {:<34} ", "linked/plain", "figure");
    for s in &sides {
        let _ = write!(head, " {:>12}", s.name());
    }
    println!("{head}");
    for (plain, linked) in pairs {
        for metric in plain.workload.metrics {
            if metric.better == Better::Neither {
                continue;
            }
            let mut row = format!(
                "{:<24} {:<34} ",
                format!("{}/{}", linked.name, plain.name),
                metric.label.unwrap_or(metric.key)
            );
            for &s in &sides {
                let med = |c: &super::Config| -> Option<Summary> {
                    stats::summarize(&c.samples(s, metric.key_on(s)))
                };
                let cell = match (med(plain), med(linked)) {
                    (Some(a), Some(b)) if a.median != 0.0 => {
                        format!("{}x", num(b.median / a.median))
                    }
                    _ => "-".to_string(),
                };
                let _ = write!(row, " {cell:>12}");
            }
            row.push_str(match metric.better {
                Better::Lower => "  lower is better",
                _ => "  higher is better",
            });
            println!("{row}");
        }
    }
    println!(
        "(the `+linked` configuration's median over the unmodified one's, per side: the \
         program rewritten by `mote link` against itself as built)"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_directory_goes_away_with_the_bench() {
        let l = Linked::new().unwrap();
        let dir = l.dir.clone();
        assert!(dir.is_dir());
        drop(l);
        assert!(!dir.exists());
    }
}
