//! `docs/compatibility.md` checked against the table, so the document cannot drift.
//!
//! The document lists, in tables headed `| syscall | route | why |`, every system
//! call the partition does not simply forward (routes `local`, `wait`, `thread`,
//! `refused`) and a few forwarded ones worth a word (`forward`), and says that every
//! other call is forwarded. This test reads those tables and checks both directions
//! for every number `syscalls::Sysno` knows: a listed call routes as listed, and a
//! call not listed routes `Forward`. It relies only on `table::route` and the names
//! of `table::Route`'s variants.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use mote_libos::fake::FakePlatform;
use mote_shims::table::{route, Route};
use syscalls::Sysno;

/// The document, as messages name it (relative to the repository).
const DOC: &str = "docs/compatibility.md";

/// The header that marks a table the test reads.
const HEADER: &str = "| syscall | route | why |";

/// `__X32_SYSCALL_BIT` (`arch/x86/include/uapi/asm/unistd.h`).
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// A route as the document names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Local,
    Wait,
    Thread,
    Forward,
    Refused,
}

impl Class {
    fn parse(word: &str) -> Option<Class> {
        Some(match word {
            "local" => Class::Local,
            "wait" => Class::Wait,
            "thread" => Class::Thread,
            "forward" => Class::Forward,
            "refused" => Class::Refused,
            _ => return None,
        })
    }

    /// What the table does with `nr`. `{ .. }` matches a variant whatever it
    /// carries, so a payload added to or removed from a variant leaves this intact.
    #[allow(clippy::unneeded_struct_pattern)]
    fn of(nr: u32) -> Class {
        match route::<FakePlatform>(nr) {
            Route::Local { .. } => Class::Local,
            Route::Wait { .. } => Class::Wait,
            Route::Thread { .. } => Class::Thread,
            Route::Forward { .. } => Class::Forward,
            Route::Refused { .. } => Class::Refused,
        }
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let word = match self {
            Class::Local => "local",
            Class::Wait => "wait",
            Class::Thread => "thread",
            Class::Forward => "forward",
            Class::Refused => "refused",
        };
        f.write_str(word)
    }
}

/// One row of a table: the call, its class, and the document's line number.
struct Row {
    sysno: Sysno,
    class: Class,
    line: usize,
}

/// Reads every `| syscall | route | why |` table of `text`. A malformed row, an
/// unknown name or route, or a call listed twice is an error naming the line.
fn parse(text: &str) -> Result<Vec<Row>, String> {
    let mut rows: Vec<Row> = Vec::new();
    let mut seen: BTreeMap<Sysno, usize> = BTreeMap::new();
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l.trim()));
    while let Some((_, line)) = lines.next() {
        if line != HEADER {
            continue;
        }
        match lines.next() {
            Some((_, sep)) if sep.starts_with("|---") => {}
            Some((n, _)) => {
                return Err(format!(
                    "{DOC}:{n}: expected |---|---|---| under the header"
                ))
            }
            None => return Err(format!("{DOC}: table header at the end of the file")),
        }
        for (n, line) in lines.by_ref() {
            if !line.starts_with('|') {
                break;
            }
            let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
            if cells.len() != 3 {
                return Err(format!("{DOC}:{n}: a row has three cells: {line}"));
            }
            let name = cells[0]
                .strip_prefix('`')
                .and_then(|c| c.strip_suffix('`'))
                .ok_or_else(|| format!("{DOC}:{n}: the call is written `name`: {}", cells[0]))?;
            let sysno = Sysno::from_str(name)
                .map_err(|()| format!("{DOC}:{n}: `{name}` is not an x86_64 system call"))?;
            let class = Class::parse(cells[1]).ok_or_else(|| {
                format!(
                    "{DOC}:{n}: route `{}` is not one of local, wait, thread, forward, refused",
                    cells[1]
                )
            })?;
            if cells[2].is_empty() {
                return Err(format!("{DOC}:{n}: `{name}` needs a why"));
            }
            if let Some(first) = seen.insert(sysno, n) {
                return Err(format!(
                    "{DOC}:{n}: `{name}` is listed twice (first on line {first})"
                ));
            }
            rows.push(Row {
                sysno,
                class,
                line: n,
            });
        }
    }
    Ok(rows)
}

fn read_doc() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/compatibility.md");
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn doc() -> Vec<Row> {
    let rows = parse(&read_doc()).unwrap_or_else(|e| panic!("{e}"));
    assert!(!rows.is_empty(), "{DOC} has no `{HEADER}` table");
    rows
}

/// Every number `Sysno` knows (its `iter` stops before the last one).
fn known_numbers() -> impl Iterator<Item = Sysno> {
    (0..=Sysno::last().id() as usize).filter_map(Sysno::new)
}

#[test]
fn every_listed_call_routes_as_the_document_says() {
    let mut wrong = Vec::new();
    for row in doc() {
        let actual = Class::of(row.sysno as u32);
        if actual != row.class {
            wrong.push(format!(
                "{DOC}:{}: `{}` is listed as {}, but table::route gives {actual}",
                row.line,
                row.sysno.name(),
                row.class
            ));
        }
    }
    assert!(wrong.is_empty(), "\n{}\n", wrong.join("\n"));
}

#[test]
fn every_call_not_listed_is_forwarded() {
    let listed: BTreeMap<Sysno, Class> = doc().into_iter().map(|r| (r.sysno, r.class)).collect();
    let mut wrong = Vec::new();
    for sysno in known_numbers() {
        if listed.contains_key(&sysno) {
            continue;
        }
        let actual = Class::of(sysno as u32);
        if actual != Class::Forward {
            wrong.push(format!(
                "`{}` ({}) routes {actual} but {DOC} does not list it (every call not listed is forwarded): add the row | `{}` | {actual} | (why) |",
                sysno.name(),
                sysno as u32,
                sysno.name()
            ));
        }
    }
    assert!(wrong.is_empty(), "\n{}\n", wrong.join("\n"));
}

/// The document's two sentences about numbers that are no call: a number `syscalls`
/// does not know is forwarded (Linux answers `ENOSYS`), an x32 number refused.
#[test]
fn numbers_that_are_no_call_are_forwarded_and_x32_numbers_refused() {
    let text = read_doc();
    // Prose is wrapped anywhere: compare with the whitespace folded.
    let prose = text.split_whitespace().collect::<Vec<_>>().join(" ");
    for sentence in [
        "A number that names no x86_64 call is forwarded",
        "A number with the x32 bit (`0x4000_0000`) is refused",
    ] {
        assert!(prose.contains(sentence), "{DOC} no longer says: {sentence}");
    }
    let last = Sysno::last().id() as u32;
    for nr in (0..=last + 64).filter(|&nr| Sysno::new(nr as usize).is_none()) {
        assert_eq!(Class::of(nr), Class::Forward, "number {nr}");
    }
    for sysno in known_numbers() {
        let nr = X32_SYSCALL_BIT | sysno as u32;
        assert_eq!(Class::of(nr), Class::Refused, "x32 {}", sysno.name());
    }
}

#[test]
fn the_parser_refuses_what_it_cannot_check() {
    let table = |row: &str| format!("{HEADER}\n|---|---|---|\n{row}\n");
    assert!(parse(&table("| `getpid` | local | libos |")).is_ok());
    assert!(parse(&table("| getpid | local | libos |")).is_err());
    assert!(parse(&table("| `no_such_call` | local | libos |")).is_err());
    assert!(parse(&table("| `getpid` | maybe | libos |")).is_err());
    assert!(parse(&table("| `getpid` | local | |")).is_err());
    assert!(parse(&table("| `getpid` | local | a | b |")).is_err());
    let twice = format!(
        "{}{}",
        table("| `getpid` | local | a |"),
        table("| `getpid` | local | b |")
    );
    assert!(parse(&twice).is_err());
}
