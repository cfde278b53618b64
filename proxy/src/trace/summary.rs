//! `mote run --trace=summary`: per call, how many, how many failed, their total
//! and median cost, and how they were answered — a table at exit, as `strace -c`
//! prints one.

use std::collections::BTreeMap;

use mote_abi::trace::{Entry, Route};

use super::decode;

/// What the table says of one call.
#[derive(Default)]
struct Row {
    calls: u64,
    errors: u64,
    /// Cost of each call that returned, ns.
    ns: Vec<u64>,
    local: u64,
    forwarded: u64,
    refused: u64,
}

/// The summary so far.
#[derive(Default)]
pub struct Summary {
    rows: BTreeMap<u32, Row>,
}

impl Summary {
    /// Count one call that cost `ns`.
    pub fn add(&mut self, e: &Entry, ns: u64) {
        let row = self.rows.entry(e.nr).or_default();
        row.calls += 1;
        match e.route {
            Route::Local => row.local += 1,
            Route::Forwarded => row.forwarded += 1,
            Route::Refused => row.refused += 1,
        }
        if !e.no_return {
            row.ns.push(ns);
            if (-4095..0).contains(&(e.ret as i64)) {
                row.errors += 1;
            }
        }
    }

    /// The table, most costly first (then by name), with a total line.
    pub fn table(&mut self) -> String {
        let mut rows: Vec<(String, &mut Row)> = self
            .rows
            .iter_mut()
            .map(|(&nr, r)| (decode::name(nr), r))
            .collect();
        for (_, r) in rows.iter_mut() {
            r.ns.sort_unstable();
        }
        let total = |r: &Row| r.ns.iter().sum::<u64>();
        rows.sort_by(|a, b| total(b.1).cmp(&total(a.1)).then(a.0.cmp(&b.0)));
        let rule = format!(
            "{:-<9} {:-<8} {:-<14} {:-<11} {:-<20} {:-<16}",
            "", "", "", "", "", ""
        );
        let mut out = format!(
            "{:>9} {:>8} {:>14} {:>11} {:<20} {}\n{rule}\n",
            "calls", "errors", "total ns", "median ns", "route", "syscall"
        );
        let (mut calls, mut errors, mut ns) = (0, 0, 0);
        for (name, r) in &rows {
            let median = match r.ns.len() {
                0 => "-".to_string(),
                n => r.ns[n / 2].to_string(),
            };
            out.push_str(&format!(
                "{:>9} {:>8} {:>14} {:>11} {:<20} {name}\n",
                r.calls,
                r.errors,
                total(r),
                median,
                route(r)
            ));
            calls += r.calls;
            errors += r.errors;
            ns += total(r);
        }
        out.push_str(&format!(
            "{rule}\n{calls:>9} {errors:>8} {ns:>14} {:>11} {:<20} total\n",
            "", ""
        ));
        out
    }
}

/// `local`, `forwarded`, `refused`, or the counts of each when they differ.
fn route(r: &Row) -> String {
    let parts: Vec<(u64, &str)> = [
        (r.local, "local"),
        (r.forwarded, "forwarded"),
        (r.refused, "refused"),
    ]
    .into_iter()
    .filter(|(n, _)| *n > 0)
    .collect();
    match parts.as_slice() {
        [(_, one)] => (*one).into(),
        many => many
            .iter()
            .map(|(n, w)| format!("{n} {w}"))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use syscalls::Sysno;

    fn e(nr: Sysno, ret: i64, route: Route) -> Entry {
        Entry {
            tid: 1,
            nr: nr as u32,
            args: [0; 6],
            ret: ret as u64,
            ticks: 0,
            route,
            trapped: false,
            no_return: false,
            text: None,
        }
    }

    #[test]
    fn counts_errors_totals_medians_and_routes() {
        let mut s = Summary::default();
        for ns in [10, 30, 20] {
            s.add(&e(Sysno::getppid, 5, Route::Forwarded), ns);
        }
        s.add(&e(Sysno::openat, 3, Route::Forwarded), 1000);
        s.add(&e(Sysno::openat, -2, Route::Local), 500);
        let t = s.table();
        let lines: Vec<&str> = t.lines().collect();
        // Most costly first.
        let cols = |l: &str| l.split_whitespace().map(String::from).collect::<Vec<_>>();
        assert_eq!(
            cols(lines[2]),
            [
                "2",
                "1",
                "1500",
                "1000",
                "1",
                "local,",
                "1",
                "forwarded",
                "openat"
            ]
        );
        assert_eq!(
            cols(lines[3]),
            ["3", "0", "60", "20", "forwarded", "getppid"]
        );
        assert_eq!(cols(lines[5]), ["5", "1", "1560", "total"]);
    }

    #[test]
    fn calls_that_do_not_return_are_counted_without_a_cost() {
        let mut s = Summary::default();
        let mut x = e(Sysno::exit_group, 0, Route::Local);
        x.no_return = true;
        s.add(&x, 0);
        let t = s.table();
        let row: Vec<&str> = t.lines().nth(2).unwrap().split_whitespace().collect();
        assert_eq!(row, ["1", "0", "0", "-", "local", "exit_group"]);
    }
}
