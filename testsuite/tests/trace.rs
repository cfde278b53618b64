//! `mote run --trace` on a program whose calls are known (`apps/tracecalls.c`):
//! every call it makes appears once, in order, with its route (local or
//! forwarded), its result and a cost; `--trace=summary` counts what the program
//! made; the application's own stdout is the same as without tracing (the trace
//! goes to FILE or to stderr).

use std::collections::BTreeMap;

use mote_testsuite::{app, Platform, Program, TempDir};

/// What `tracecalls N` printed: its results by name.
fn results(stdout: &str) -> BTreeMap<String, i64> {
    stdout
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

/// One trace line: `TID call(args) = result <route[ trapped] N ns>`.
#[derive(Debug)]
struct Line {
    tid: u32,
    call: String,
    result: String,
    route: String,
    ns: Option<u64>,
}

fn parse(line: &str) -> Option<Line> {
    let (tid, rest) = line.split_once(' ')?;
    let (call, rest) = rest.rsplit_once(" = ")?;
    let (result, tail) = rest.split_once(" <")?;
    let tail = tail.strip_suffix('>')?;
    let mut words = tail.split(' ');
    let route = words.next()?.to_string();
    let words: Vec<&str> = words.filter(|w| *w != "trapped").collect();
    let ns = match words.as_slice() {
        [n, "ns"] => Some(n.parse().ok()?),
        [] => None,
        _ => return None,
    };
    Some(Line {
        tid: tid.parse().ok()?,
        call: call.to_string(),
        result: result.to_string(),
        route,
        ns,
    })
}

fn lines(text: &str) -> Vec<Line> {
    text.lines()
        .map(|l| parse(l).unwrap_or_else(|| panic!("not a trace line: {l:?}\n{text}")))
        .collect()
}

const N: usize = 7;

/// The program's part of the trace: from its first `getppid` to its `munmap`.
fn program_part(trace: &[Line]) -> &[Line] {
    let first = trace
        .iter()
        .position(|l| l.call == "getppid()")
        .expect("the getppids are traced");
    let last = trace
        .iter()
        .rposition(|l| l.call.starts_with("munmap("))
        .expect("the munmap is traced");
    &trace[first..=last]
}

fn every_call_appears_once_with_its_route_and_result(pf: Platform) {
    let dir = TempDir::new("trace");
    let file = dir.path().join("calls.trace");
    let prog = Program::new(app("tracecalls")).on(pf).arg(N.to_string());
    let mote = prog.mote_with(&[&format!("--trace={}", file.display())]);
    assert_eq!(mote.status, 0, "{mote:?}");
    // The application's stdout and stderr carry nothing of the trace.
    assert!(
        mote.stdout_text().starts_with("traced line\ngetppid "),
        "{mote:?}"
    );
    assert_eq!(mote.stderr_text(), "", "{mote:?}");
    let got = results(&mote.stdout_text());
    let text = std::fs::read_to_string(&file).expect("the trace file");
    let trace = lines(&text);
    let part = program_part(&trace);
    let mut want: Vec<(String, String, &str)> = Vec::new();
    for _ in 0..N {
        want.push(("getppid()".into(), got["getppid"].to_string(), "forwarded"));
    }
    for _ in 0..N {
        want.push(("getpid()".into(), got["getpid"].to_string(), "local"));
    }
    want.push((
        "openat(AT_FDCWD, \"/nonexistent/mote-trace-test\", O_RDONLY)".into(),
        "-1 ENOENT (No such file or directory)".into(),
        "forwarded",
    ));
    let proc_fd = &part[2 * N + 1].result;
    want.push((
        "openat(AT_FDCWD, \"/proc/self/status\", O_RDONLY|O_CLOEXEC)".into(),
        proc_fd.clone(),
        "local",
    ));
    want.push((format!("close({proc_fd})"), "0".into(), "forwarded"));
    want.push((
        "close(1000)".into(),
        "-1 EBADF (Bad file number)".into(),
        "forwarded",
    ));
    want.push((
        "write(1, \"traced line\\n\", 12)".into(),
        "12".into(),
        "forwarded",
    ));
    let mmap = &part[2 * N + 5];
    want.push((
        "mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0x0)".into(),
        mmap.result.clone(),
        "local",
    ));
    want.push((
        format!("munmap({}, 8192)", mmap.result),
        "0".into(),
        "local",
    ));
    let seen: Vec<(String, String, &str)> = part
        .iter()
        .map(|l| (l.call.clone(), l.result.clone(), l.route.as_str()))
        .collect();
    assert_eq!(seen, want, "{text}");
    assert!(mmap.result.starts_with("0x"), "{text}");
    let tid = part[0].tid;
    for l in part {
        assert_eq!(l.tid, tid, "one thread: {text}");
        assert!(
            l.ns.is_some(),
            "every call that returned has a cost: {text}"
        );
    }
    // The exit is the last line, without a result.
    let last = trace.last().expect("lines");
    assert_eq!(
        (last.call.as_str(), last.result.as_str(), last.ns),
        ("exit_group(0)", "?", None),
        "{text}"
    );
}

/// Without a FILE the lines go to stderr; stdout is what the program printed.
fn without_a_file_the_trace_goes_to_stderr(pf: Platform) {
    let prog = Program::new(app("tracecalls")).on(pf).arg("2");
    let plain = prog.mote();
    let traced = prog.mote_with(&["--trace"]);
    assert_eq!(traced.status, 0, "{traced:?}");
    let strip = |s: String| {
        s.lines()
            .filter(|l| !l.starts_with("getpid ") && !l.starts_with("getppid "))
            .map(String::from)
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(traced.stdout_text()), strip(plain.stdout_text()));
    let err = traced.stderr_text();
    let trace = lines(&err);
    assert_eq!(program_part(&trace).len(), 2 * 2 + 7, "{err}");
}

/// `--trace=summary`'s rows for what the program made: counts, errors, routes;
/// and the counts agree with the per-call trace of the same program.
fn summary_counts_equal_the_programs(pf: Platform) {
    let prog = Program::new(app("tracecalls")).on(pf).arg("9");
    let mote = prog.mote_with(&["--trace=summary"]);
    assert_eq!(mote.status, 0, "{mote:?}");
    let err = mote.stderr_text();
    let rows: BTreeMap<String, Vec<String>> = err
        .lines()
        .skip(2)
        .filter(|l| !l.starts_with('-'))
        .map(|l| {
            let mut w: Vec<String> = l.split_whitespace().map(String::from).collect();
            let name = w.pop().expect("a name");
            (name, w)
        })
        .collect();
    let row = |name: &str| -> Vec<String> {
        let r = rows
            .get(name)
            .unwrap_or_else(|| panic!("no {name} row: {err}"));
        // calls, errors, route (total and median are costs).
        let mut v = vec![r[0].clone(), r[1].clone()];
        v.extend(r[4..].iter().cloned());
        v
    };
    assert_eq!(row("getppid"), ["9", "0", "forwarded"], "{err}");
    assert_eq!(row("getpid"), ["9", "0", "local"], "{err}");
    assert_eq!(
        row("openat"),
        ["2", "1", "1", "local,", "1", "forwarded"],
        "{err}"
    );
    assert_eq!(row("close"), ["2", "1", "forwarded"], "{err}");
    assert_eq!(row("munmap"), ["1", "0", "local"], "{err}");
    assert_eq!(row("exit_group"), ["1", "0", "local"], "{err}");

    // The same run traced call by call: every call counted once.
    let dir = TempDir::new("trace");
    let file = dir.path().join("calls.trace");
    let traced = prog.mote_with(&[&format!("--trace={}", file.display())]);
    assert_eq!(traced.status, 0, "{traced:?}");
    let text = std::fs::read_to_string(&file).expect("the trace file");
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for l in lines(&text) {
        let name = l.call.split('(').next().unwrap().to_string();
        *counts.entry(name).or_default() += 1;
    }
    let total: u64 = counts.values().sum();
    for (name, n) in &counts {
        assert_eq!(rows[name][0], n.to_string(), "{name}: {err}\n{text}");
    }
    assert_eq!(rows["total"][0], total.to_string(), "{err}");
}

/// A FILE that cannot be created is refused before the program runs.
fn an_uncreatable_trace_file_is_refused_before_the_run(pf: Platform) {
    let prog = Program::new(app("hello")).on(pf);
    let mote = prog.mote_with(&["--trace=/nonexistent/mote-trace-dir/calls"]);
    assert_eq!(mote.status, 2, "{mote:?}");
    assert_eq!(mote.stdout_text(), "", "{mote:?}");
    let err = mote.stderr_text();
    assert_eq!(err.lines().count(), 1, "{mote:?}");
    assert!(
        err.starts_with("mote: --trace=/nonexistent/mote-trace-dir/calls: cannot create it"),
        "{mote:?}"
    );
}

mote_testsuite::on_both_platforms!(
    an_uncreatable_trace_file_is_refused_before_the_run,
    every_call_appears_once_with_its_route_and_result,
    without_a_file_the_trace_goes_to_stderr,
    summary_counts_equal_the_programs,
);
