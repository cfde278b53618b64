//! `cargo xtask latency`: `apps/latency.c` natively and under mote in the same
//! invocation, as one table: median and p99 per call, and the mote/native ratio.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::error::Error;
use crate::step;

/// Median and p99 of one call, in ns.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Figures {
    median: f64,
    p99: f64,
}

/// The calls the program reports, in the order of the table.
/// (line under mote, native line it is compared with, what it measures)
const CALLS: &[(&str, &str, &str)] = &[
    ("getpid", "getpid", "local, syscall insn"),
    ("getppid", "getppid", "forwarded, syscall"),
    ("getpid_direct", "getpid", "local, direct entry"),
    ("getppid_direct", "getppid", "forwarded, direct"),
    ("clock_gettime", "clock_gettime", "libc (vDSO)"),
];

pub fn compare(mote: &Path, program: &Path) -> Result<(), Error> {
    let mut native = Command::new(program);
    native.stdin(Stdio::null());
    let native = measure(native)?;
    let mut under_mote = Command::new(mote);
    under_mote
        .arg("run")
        .arg("--")
        .arg(program)
        .stdin(Stdio::null());
    let under_mote = measure(under_mote)?;

    println!(
        "\n{:<15} {:<21} {:>14} {:>14} {:>14} {:>14} {:>13}",
        "call", "", "native median", "native p99", "mote median", "mote p99", "mote/native"
    );
    for (call, native_call, role) in CALLS {
        let (Some(n), Some(m)) = (native.get(*native_call), under_mote.get(*call)) else {
            return Err(Error::Other(format!(
                "the latency program reported no `{call}` line"
            )));
        };
        println!(
            "{call:<15} {role:<21} {:>11.1} ns {:>11.1} ns {:>11.1} ns {:>11.1} ns {:>12.2}x",
            n.median,
            n.p99,
            m.median,
            m.p99,
            m.median / n.median
        );
    }
    Ok(())
}

/// Runs the program (stdout captured, stderr passed through) and parses its lines.
fn measure(cmd: Command) -> Result<BTreeMap<String, Figures>, Error> {
    let command = step::show(&cmd);
    println!("$ {command}");
    let (status, stdout) = step::stdout_with_timeout(cmd)?;
    let text = String::from_utf8_lossy(&stdout);
    print!("{text}");
    if !status.success() {
        return Err(Error::Step {
            step: "measure latency",
            command,
            status: step::describe(status),
            hint: "see its output above",
        });
    }
    Ok(parse(&text))
}

/// Lines `NAME median_ns=X p99_ns=Y [more key=value]`; other lines are ignored.
fn parse(text: &str) -> BTreeMap<String, Figures> {
    let mut calls = BTreeMap::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let Some(name) = words.next() else { continue };
        let fields: BTreeMap<&str, f64> = words
            .filter_map(|w| w.split_once('='))
            .filter_map(|(k, v)| Some((k, v.parse().ok()?)))
            .collect();
        if let (Some(&median), Some(&p99)) = (fields.get("median_ns"), fields.get("p99_ns")) {
            calls.insert(name.to_string(), Figures { median, p99 });
        }
    }
    calls
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_program_lines() {
        let text = "getpid median_ns=104.2 p99_ns=110.5 min_ns=101.0 batch=8192 samples=200\n\
                    noise\n\
                    getppid median_ns=300 p99_ns=x\n";
        let calls = parse(text);
        assert_eq!(
            calls.get("getpid"),
            Some(&Figures {
                median: 104.2,
                p99: 110.5
            })
        );
        assert_eq!(
            calls.len(),
            1,
            "a line with a malformed p99 is not a result"
        );
    }
}
