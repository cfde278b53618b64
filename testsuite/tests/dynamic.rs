//! Dynamically linked distribution binaries — the interpreter (ld.so), shared
//! libraries through private file mappings — behave under mote exactly as
//! natively: same stdout, same exit status.

use std::path::PathBuf;
use std::process::Command;

use mote_testsuite::{app, Platform, Program, TempDir};

/// The first of `candidates` that exists.
fn find(candidates: &[&str]) -> PathBuf {
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("none of {candidates:?} exists"))
}

fn ls_la_of_etc(pf: Platform) {
    let (_, mote) = Program::new(find(&["/bin/ls", "/usr/bin/ls"]))
        .on(pf)
        .args(["-la", "/etc"])
        .same_as_native();
    assert!(mote.stdout_text().contains("passwd"));
}

fn sort_of_a_file(pf: Platform) {
    let dir = TempDir::new("dyn-sort");
    let text: String = (0..2000)
        .map(|i| format!("{}\n", (i * 7919) % 2003))
        .collect();
    let f = dir.file("numbers", text);
    Program::new(find(&["/usr/bin/sort", "/bin/sort"]))
        .on(pf)
        .args(["-n"])
        .arg(&f)
        .same_as_native();
}

fn sha256sum_of_10_mib(pf: Platform) {
    let dir = TempDir::new("dyn-sha");
    let data: Vec<u8> = (0..10u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let f = dir.file("ten-mib", &data);
    let (_, mote) = Program::new(find(&["/usr/bin/sha256sum", "/bin/sha256sum"]))
        .on(pf)
        .arg(&f)
        .same_as_native();
    assert_eq!(
        mote.stdout_text().split_whitespace().next().map(str::len),
        Some(64)
    );
}

fn find_in_usr_share_doc(pf: Platform) {
    Program::new(find(&["/usr/bin/find", "/bin/find"]))
        .on(pf)
        .args(["/usr/share/doc", "-maxdepth", "2", "-name", "*.gz"])
        .same_as_native();
}

/// The real CPython binary (PATH may hold a wrapper script, e.g. pyenv's shim).
fn python() -> Option<PathBuf> {
    let out = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .ok()?;
    let p = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    p.is_file().then_some(p)
}

fn python_json_and_hashlib(pf: Platform) {
    let Some(py) = python() else {
        panic!("python3 is needed for this test (it is on every machine of this kind)");
    };
    let (_, mote) = Program::new(py).on(pf)
        .args([
            "-c",
            "import json,hashlib; print(json.dumps({'h': hashlib.sha256(b'x'*1000000).hexdigest()}))",
        ])
        .same_as_native();
    assert!(mote.stdout_text().starts_with("{\"h\": \""));
}

fn python_json_tool_on_a_file(pf: Platform) {
    let Some(py) = python() else {
        panic!("python3 is needed for this test (it is on every machine of this kind)");
    };
    let dir = TempDir::new("dyn-json");
    let f = dir.file("in.json", r#"{"b": [1, 2, {"c": null}], "a": "mote"}"#);
    Program::new(py)
        .on(pf)
        .args(["-m", "json.tool"])
        .arg(&f)
        .same_as_native();
}

/// A program built with plain `gcc` (dynamic, PIE) that loads libm with `dlopen`.
fn dlopen_of_libm_and_cos(pf: Platform) {
    let (_, mote) = Program::new(app("dlopen_cos")).on(pf).same_as_native();
    assert!(mote.stdout_text().contains("cos(1) = 0.540302305868"));
}

mote_testsuite::on_both_platforms!(
    ls_la_of_etc,
    sort_of_a_file,
    sha256sum_of_10_mib,
    find_in_usr_share_doc,
    python_json_and_hashlib,
    python_json_tool_on_a_file,
    dlopen_of_libm_and_cos,
);
