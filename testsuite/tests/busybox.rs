//! Static binaries nobody here wrote: busybox-static applets under mote behave
//! exactly as natively (same stdout, same exit status).

use std::fs::{self, File, FileTimes};
use std::path::Path;
use std::time::{Duration, SystemTime};

use mote_testsuite::{busybox, Platform, Program, TempDir};

fn applet(pf: Platform, args: &[&str]) -> Program {
    Program::new(busybox()).on(pf).args(args)
}

/// Text with repeated words, for cat, wc, sort and grep.
fn sample_text() -> String {
    let words = ["kernel", "proxy", "libos", "shim", "ring", "partition"];
    (0..500)
        .map(|i| format!("{} {i} {}\n", words[i % 6], words[(i * 7) % 6]))
        .collect()
}

fn echo(pf: Platform) {
    let (_, mote) = applet(pf, &["echo", "hello", "from", "busybox"]).same_as_native();
    assert_eq!(mote.stdout, b"hello from busybox\n");
}

fn echo_escapes_without_newline(pf: Platform) {
    let (_, mote) = applet(pf, &["echo", "-n", "-e", "tab\\there\\nnext"]).same_as_native();
    assert_eq!(mote.stdout, b"tab\there\nnext");
}

fn cat_of_a_file(pf: Platform) {
    let dir = TempDir::new("cat");
    // Larger than one pipe buffer and one read, with every byte value.
    let mut data: Vec<u8> = (0..=255u8).cycle().take(300_000).collect();
    data.extend_from_slice(sample_text().as_bytes());
    let file = dir.file("input", &data);
    let (_, mote) = applet(pf, &["cat"]).arg(&file).same_as_native();
    assert_eq!(mote.stdout, data);
}

fn cat_of_a_missing_file_fails_alike(pf: Platform) {
    let dir = TempDir::new("cat-missing");
    let (native, mote) = applet(pf, &["cat"])
        .arg(dir.path().join("absent"))
        .same_as_native();
    assert_eq!(native.status, 1);
    assert_eq!(
        mote.stderr, native.stderr,
        "the application's stderr must pass through unchanged"
    );
}

fn wc_of_a_file_and_of_stdin(pf: Platform) {
    let dir = TempDir::new("wc");
    let file = dir.file("words", sample_text());
    let (_, mote) = applet(pf, &["wc"]).arg(&file).same_as_native();
    assert!(mote.stdout_text().contains("500"), "{}", mote.stdout_text());
    applet(pf, &["wc", "-l", "-w", "-c"])
        .stdin(sample_text())
        .same_as_native();
}

fn sort_numeric_reverse_and_unique(pf: Platform) {
    let input: String = (0..2000)
        .map(|i| format!("{}\n", (i * 7919) % 1009))
        .collect();
    let (_, mote) = applet(pf, &["sort", "-n"])
        .stdin(input.clone())
        .same_as_native();
    let lines: Vec<u32> = mote
        .stdout_text()
        .lines()
        .map(|l| l.parse().expect("a number"))
        .collect();
    assert_eq!(lines.len(), 2000);
    assert!(lines.windows(2).all(|w| w[0] <= w[1]), "not sorted");
    applet(pf, &["sort", "-r", "-u"])
        .stdin(input)
        .same_as_native();
    let dir = TempDir::new("sort");
    let file = dir.file("text", sample_text());
    applet(pf, &["sort", "-k2,2n"]).arg(&file).same_as_native();
}

fn seq_1_1000(pf: Platform) {
    let (_, mote) = applet(pf, &["seq", "1", "1000"]).same_as_native();
    let expected: String = (1..=1000).map(|i| format!("{i}\n")).collect();
    assert_eq!(mote.stdout_text(), expected);
}

fn grep_match_count_and_no_match(pf: Platform) {
    let dir = TempDir::new("grep");
    let file = dir.file("text", sample_text());
    let (_, mote) = applet(pf, &["grep", "-n", "ring"])
        .arg(&file)
        .same_as_native();
    assert_eq!(mote.status, 0);
    assert!(!mote.stdout.is_empty());
    let (_, mote) = applet(pf, &["grep", "-c", "-E", "^(proxy|shim) "])
        .arg(&file)
        .same_as_native();
    assert_eq!(mote.stdout_text().trim(), "167");
    let (_, mote) = applet(pf, &["grep", "absent-word"])
        .arg(&file)
        .same_as_native();
    assert_eq!(mote.status, 1, "grep without a match exits 1");
    assert!(mote.stdout.is_empty());
    applet(pf, &["grep", "-v", "kernel"])
        .stdin(sample_text())
        .same_as_native();
}

/// Sets a file's or directory's times to a fixed day long ago, so `ls -l`
/// prints the same date in both runs.
fn set_old_times(path: &Path) {
    let when = SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000);
    let file = File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    file.set_times(FileTimes::new().set_accessed(when).set_modified(when))
        .unwrap_or_else(|e| panic!("setting times of {}: {e}", path.display()));
}

fn ls_la_of_a_fixed_directory(pf: Platform) {
    // `..` is ours too, so nothing else changes what `ls -la` shows.
    let root = TempDir::new("ls");
    let dir = root.path().join("listed");
    fs::create_dir(&dir).expect("mkdir");
    fs::write(dir.join("small.txt"), "small\n").expect("write");
    fs::write(dir.join("big.bin"), vec![7u8; 123_456]).expect("write");
    fs::write(dir.join(".hidden"), "").expect("write");
    fs::create_dir(dir.join("subdir")).expect("mkdir");
    std::os::unix::fs::symlink("small.txt", dir.join("link")).expect("symlink");
    for name in ["small.txt", "big.bin", ".hidden", "subdir"] {
        set_old_times(&dir.join(name));
    }
    set_old_times(&dir);
    set_old_times(root.path());
    let (_, mote) = applet(pf, &["ls", "-la"]).arg(&dir).same_as_native();
    let text = mote.stdout_text();
    for name in [
        "small.txt",
        "big.bin",
        ".hidden",
        "subdir",
        "link -> small.txt",
        "123456",
    ] {
        assert!(text.contains(name), "ls -la lacks {name}:\n{text}");
    }
    // Also listing the working directory, with relative names.
    applet(pf, &["ls", "-la", "."]).cwd(&dir).same_as_native();
}

fn sha256sum_of_a_file(pf: Platform) {
    let dir = TempDir::new("sha");
    let data: Vec<u8> = (0u32..1 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let file = dir.file("data", &data);
    let (_, mote) = applet(pf, &["sha256sum"]).arg(&file).same_as_native();
    let digest = mote.stdout_text();
    assert_eq!(digest.split_whitespace().next().map(str::len), Some(64));
    // The empty input has a well-known digest.
    let (_, mote) = applet(pf, &["sha256sum"]).stdin("").same_as_native();
    assert!(mote
        .stdout_text()
        .starts_with("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
}

/// busybox's shell running builtins, its exit status the script's.
fn sh_runs_builtins_and_exits_with_their_status(pf: Platform) {
    let (_, mote) = applet(pf, &["sh", "-c", "echo one; echo two; exit 3"]).same_as_native();
    assert_eq!(mote.stdout_text(), "one\ntwo\n");
    assert_eq!(mote.status, 3);
}

fn false_and_true(pf: Platform) {
    let (_, mote) = applet(pf, &["false"]).same_as_native();
    assert_eq!(mote.status, 1);
    let (_, mote) = applet(pf, &["true"]).same_as_native();
    assert_eq!(mote.status, 0);
}

mote_testsuite::on_both_platforms!(
    echo,
    echo_escapes_without_newline,
    cat_of_a_file,
    cat_of_a_missing_file_fails_alike,
    wc_of_a_file_and_of_stdin,
    sort_numeric_reverse_and_unique,
    seq_1_1000,
    grep_match_count_and_no_match,
    ls_la_of_a_fixed_directory,
    sha256sum_of_a_file,
    sh_runs_builtins_and_exits_with_their_status,
    false_and_true,
);
