//! The C programs in `apps/` (built with `gcc -static`) under mote and natively:
//! same stdout, same exit status, and each program's own checks passed.

use std::fs;

use mote_testsuite::{app, Platform, Program, TempDir, OWNER_VAR};

fn assert_passed(run: &mote_testsuite::Run, last_line: &str) {
    assert_eq!(run.status, 0, "{run:?}");
    assert!(
        run.stdout_text().lines().last() == Some(last_line),
        "expected the program to end with {last_line:?}\n{run:?}"
    );
}

fn hello(pf: Platform) {
    let (_, mote) = Program::new(app("hello")).on(pf).same_as_native();
    assert_eq!(
        mote.stdout_text(),
        "Hello, world! I am a static x86_64 program with argc=1.\n"
    );
    let (_, mote) = Program::new(app("hello"))
        .on(pf)
        .args(["a", "b", "c"])
        .same_as_native();
    assert!(mote.stdout_text().contains("argc=4"));
}

fn printargs_with_an_exact_environment(pf: Platform) {
    let (_, mote) = Program::new(app("printargs"))
        .on(pf)
        .args([
            "one",
            "",
            "two words",
            "tab\there",
            "new\nline",
            "ünïcödé",
            "--",
            "-x",
        ])
        .env_exact([
            ("PATH", "/usr/bin:/bin"),
            ("HOME", "/nonexistent"),
            ("EMPTY", ""),
            ("WITH_EQUALS", "a=b=c"),
            ("SPACES", "  several  spaces  "),
            ("LANG", "C"),
        ])
        .same_as_native();
    let text = mote.stdout_text();
    assert!(text.starts_with("argc=9\n"), "{text}");
    assert!(text.contains("argv[3]=[two words]\n"), "{text}");
    assert!(text.contains("=[EMPTY=]\n"), "{text}");
    assert!(text.contains("=[WITH_EQUALS=a=b=c]\n"), "{text}");
    assert!(text.contains(&format!("=[{OWNER_VAR}=")), "{text}");
    assert!(
        text.ends_with("envc=7\n"),
        "no variable may be added or lost: {text}"
    );
}

fn printargs_with_the_inherited_environment(pf: Platform) {
    let (_, mote) = Program::new(app("printargs")).on(pf).same_as_native();
    let vars = std::env::vars_os().count();
    assert!(
        mote.stdout_text().contains(&format!("envc={}", vars + 1)),
        "{}",
        mote.stdout_text()
    );
}

fn printargs_with_an_empty_environment_and_many_arguments(pf: Platform) {
    let args: Vec<String> = (0..2000).map(|i| format!("argument-{i}")).collect();
    let (_, mote) = Program::new(app("printargs"))
        .on(pf)
        .args(&args)
        .env_exact(std::iter::empty::<(&str, &str)>())
        .same_as_native();
    assert!(mote.stdout_text().starts_with("argc=2001\n"));
    assert!(mote.stdout_text().ends_with("envc=1\n"));
}

fn fileio(pf: Platform) {
    let tmp = TempDir::new("fileio");
    let mut vars: Vec<(String, String)> = std::env::vars().collect();
    vars.retain(|(k, _)| k != "TMPDIR");
    vars.push(("TMPDIR".into(), tmp.path().display().to_string()));
    let (_, mote) = Program::new(app("fileio"))
        .on(pf)
        .env_exact(vars)
        .same_as_native();
    assert_passed(&mote, "fileio: all checks passed");
    let left: Vec<_> = fs::read_dir(tmp.path()).expect("read_dir").collect();
    assert!(left.is_empty(), "fileio left files behind: {left:?}");
}

fn bigmalloc_512_mib(pf: Platform) {
    let (_, mote) = Program::new(app("bigmalloc")).on(pf).same_as_native();
    assert!(mote
        .stdout_text()
        .contains("touched and verified 131072 pages"));
    assert!(mote.stdout_text().contains("checksum"));
}

fn mmapcycle(pf: Platform) {
    let (_, mote) = Program::new(app("mmapcycle")).on(pf).same_as_native();
    assert_passed(&mote, "mmapcycle: all checks passed");
}

fn sbrk(pf: Platform) {
    let (_, mote) = Program::new(app("sbrk")).on(pf).same_as_native();
    assert_passed(&mote, "sbrk: all checks passed");
}

fn exit42(pf: Platform) {
    let (_, mote) = Program::new(app("exit42")).on(pf).same_as_native();
    assert_eq!(mote.status, 42);
    assert_eq!(mote.stdout_text(), "exiting with status 42\n");
}

fn catstdin_through_a_pipe(pf: Platform) {
    // printf 'a\nb\n' | mote run -- catstdin
    let (_, mote) = Program::new(app("catstdin"))
        .on(pf)
        .stdin("a\nb\n")
        .same_as_native();
    assert_eq!(mote.stdout, b"a\nb\n");
    assert_eq!(mote.status, 0);
}

fn catstdin_of_a_megabyte_and_of_nothing(pf: Platform) {
    let data: Vec<u8> = (0..(1 << 20)).map(|i: u32| (i % 251) as u8).collect();
    let (_, mote) = Program::new(app("catstdin"))
        .on(pf)
        .stdin(data.clone())
        .same_as_native();
    assert_eq!(mote.stdout, data);
    let (_, mote) = Program::new(app("catstdin")).on(pf).same_as_native();
    assert!(mote.stdout.is_empty());
    assert_eq!(mote.status, 0);
}

/// The numbers of one `NAME median_ns=X p99_ns=Y …` line.
fn latency_line(stdout: &str, name: &str) -> (f64, f64) {
    let line = stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no `{name}` line in:\n{stdout}"));
    let field = |key: &str| -> f64 {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no number for {key} in {line:?}"))
    };
    (field("median_ns="), field("p99_ns="))
}

fn latency_reports_both_calls(pf: Platform) {
    let program = Program::new(app("latency")).on(pf);
    for run in [program.native(), program.mote()] {
        assert_eq!(run.status, 0, "{run:?}");
        for call in ["getpid", "getppid"] {
            let (median, p99) = latency_line(&run.stdout_text(), call);
            assert!(
                median.is_finite() && median > 0.0 && p99 >= median,
                "{call}: median {median}, p99 {p99}\n{run:?}"
            );
        }
    }
}

mote_testsuite::on_both_platforms!(
    hello,
    printargs_with_an_exact_environment,
    printargs_with_the_inherited_environment,
    printargs_with_an_empty_environment_and_many_arguments,
    fileio,
    bigmalloc_512_mib,
    mmapcycle,
    sbrk,
    exit42,
    catstdin_through_a_pipe,
    catstdin_of_a_megabyte_and_of_nothing,
    latency_reports_both_calls,
);
