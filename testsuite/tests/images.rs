//! LWK images per job: `mote run --kernel FILE --runtime FILE` loads images
//! built apart from the proxy (`cargo xtask image`), names them by build id in
//! `--stats` (and `mote info`), refuses an image of another ABI, a truncated
//! or corrupt one, or one of the wrong kind, before running anything; the
//! worked experiment's image (`policy-pack`: every thread on the first core,
//! `libos/src/policy.rs`) runs programs as natively on both platforms and
//! places threads as its policy says; and the programs a run's application
//! starts run on the same images.

use std::path::PathBuf;

use mote_testsuite::{app, artifacts, assert_same, run_mote_command, Platform, Program, TempDir};

const HINT: &str = "`cargo xtask test` builds it; by hand: \
    cargo xtask image --features policy-pack --out target/images/pack";

/// `<target>`.
fn target() -> PathBuf {
    artifacts()
        .apps
        .parent()
        .expect("apps/ is in the target directory")
        .to_path_buf()
}

/// The worked experiment's images (`cargo xtask test` builds them).
fn pack(name: &str) -> PathBuf {
    let p = target().join("images/pack").join(name);
    assert!(p.is_file(), "{} is missing: {HINT}", p.display());
    p
}

/// The built-in images, as `proxy/build.rs` built and embedded them, copied
/// into `dir`; their build ids are checked against `mote info`'s, so these are
/// the very images the proxy carries.
fn built_in_copies(dir: &TempDir) -> (PathBuf, PathBuf) {
    let built = target().join("guest/x86_64-unknown-none/release");
    let info = run_mote_command(&["info"]).stdout_text();
    let mut out = Vec::new();
    for name in ["kernel-min", "mote-runtime"] {
        let bytes = std::fs::read(built.join(name)).expect("the guest images are built");
        let copy = dir.file(name, &bytes);
        let id = run_mote_command(&["info", copy.to_str().unwrap()])
            .stdout_text()
            .lines()
            .find_map(|l| l.strip_prefix("build:").map(|v| v.trim().to_string()))
            .expect("mote info FILE names the build id");
        assert!(
            info.contains(&id),
            "{name}: the copy's build id {id} is not the built-in one: {info}"
        );
        out.push(copy);
    }
    (out[0].clone(), out[1].clone())
}

/// The `mote: images:` lines of a run's stderr.
fn image_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.starts_with("mote: images: "))
        .collect()
}

fn built_in_images_copied_to_files_run_as_natively(pf: Platform) {
    let dir = TempDir::new("images-copy");
    let (kernel, runtime) = built_in_copies(&dir);
    let p = Program::new(app("threads")).on(pf);
    let native = p.native();
    assert_eq!(native.status, 0, "{native:?}");
    let mote = p.mote_with(&[
        "--kernel",
        kernel.to_str().unwrap(),
        "--runtime",
        runtime.to_str().unwrap(),
        "--cores",
        "2",
        "--stats",
    ]);
    assert_same(&native, &mote);
    let stderr = mote.stderr_text();
    let lines = image_lines(&stderr);
    assert_eq!(lines.len(), 1, "{mote:?}");
    // Named by build id and file, with the default policy.
    assert!(
        lines[0].contains(&format!("({})", kernel.display()))
            && lines[0].contains(&format!("(policy default, {})", runtime.display())),
        "{mote:?}"
    );
    // Without the options: the built-in ones, the same build ids.
    let builtin = p.mote_with(&["--stats"]);
    let b = builtin.stderr_text();
    let b = image_lines(&b);
    let ids = |l: &str| -> Vec<String> {
        l.split(' ')
            .filter(|w| w.len() == 16 && w.bytes().all(|c| c.is_ascii_hexdigit()))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(ids(b[0]), ids(lines[0]), "{b:?} {lines:?}");
    assert!(b[0].contains("built-in"), "{b:?}");
}

/// A run that must be refused: status 2, no output of the program, exactly
/// one `mote:` line, which starts with `want`.
fn assert_refused(pf: Platform, options: &[&str], want: &str) -> String {
    let run = Program::new(app("hello")).on(pf).mote_with(options);
    assert_eq!(run.status, 2, "{run:?}");
    assert!(run.stdout.is_empty(), "{run:?}");
    let stderr = run.stderr_text();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{run:?}");
    assert!(lines[0].starts_with(want), "want {want:?}: {run:?}");
    lines[0].to_string()
}

/// Offset of the image note in an image file (its magic, the ABI version 1 and
/// the kind, as `mote_abi::image` lays them out).
fn note_offset(bytes: &[u8], kind: u8) -> usize {
    let mut pattern = b"moteimg\0".to_vec();
    pattern.extend_from_slice(&[1, 0, 0, 0, kind, 0, 0, 0]);
    let at: Vec<usize> = bytes
        .windows(pattern.len())
        .enumerate()
        .filter(|(_, w)| *w == pattern.as_slice())
        .map(|(i, _)| i)
        .collect();
    assert_eq!(at.len(), 1, "the image note, once");
    at[0]
}

fn an_image_of_another_abi_is_refused_saying_which_versions_match(pf: Platform) {
    let dir = TempDir::new("images-abi");
    let mut bytes = std::fs::read(pack("mote-runtime")).unwrap();
    let at = note_offset(&bytes, 2);
    // ABI version 1 -> 2.
    bytes[at + 8] = 2;
    let runtime = dir.file("old-runtime", &bytes);
    let shown = runtime.display().to_string();
    let line = assert_refused(
        pf,
        &["--runtime", &shown],
        &format!("mote: --runtime {shown}: the image speaks mote ABI version 2 (sources "),
    );
    assert!(
        line.contains("; this mote loads images of ABI version 1 built from sources ")
            && line
                .ends_with("only: rebuild the image from this mote's tree (`cargo xtask image`)"),
        "{line}"
    );
    // The same sources, another hash: refused too (nobody bumped the version).
    let mut bytes = std::fs::read(pack("kernel-min")).unwrap();
    let at = note_offset(&bytes, 1);
    bytes[at + 16] ^= 1;
    let kernel = dir.file("other-kernel", &bytes);
    let shown = kernel.display().to_string();
    assert_refused(
        pf,
        &["--kernel", &shown],
        &format!("mote: --kernel {shown}: the image speaks mote ABI version 1 (sources "),
    );
}

fn truncated_corrupt_and_wrong_kind_images_are_refused_clearly(pf: Platform) {
    let dir = TempDir::new("images-bad");
    let bytes = std::fs::read(pack("mote-runtime")).unwrap();
    let half = dir.file("half", &bytes[..bytes.len() / 2]);
    let shown = half.display().to_string();
    assert_refused(
        pf,
        &["--runtime", &shown],
        &format!("mote: --runtime {shown}: not a mote runtime image: truncated"),
    );
    let text = dir.file("text", "#!/bin/sh\necho not an image\n");
    let shown = text.display().to_string();
    assert_refused(
        pf,
        &["--kernel", &shown],
        &format!("mote: --kernel {shown}: not a mote kernel-min image: truncated or corrupt ELF"),
    );
    // A program, not an image: an ELF without the note.
    let hello = app("hello");
    let shown = hello.display().to_string();
    assert_refused(
        pf,
        &["--runtime", &shown],
        &format!("mote: --runtime {shown}: not a mote runtime image: no image note (section .mote_image)"),
    );
    // The kernel given as the runtime.
    let kernel = pack("kernel-min");
    let shown = kernel.display().to_string();
    assert_refused(
        pf,
        &["--runtime", &shown],
        &format!("mote: --runtime {shown}: a kernel-min image, not a runtime image"),
    );
    let missing = dir.path().join("missing");
    let shown = missing.display().to_string();
    assert_refused(
        pf,
        &["--runtime", &shown],
        &format!("mote: --runtime {shown}: cannot read it: "),
    );
}

/// `--stats`' time-sharing line: preemptions per core.
fn preemptions(stderr: &str) -> Vec<u64> {
    let line = stderr
        .lines()
        .find(|l| l.contains("preemptions per core:"))
        .unwrap_or_else(|| panic!("no time-sharing line: {stderr}"));
    let after = line.split("preemptions per core:").nth(1).unwrap();
    after
        .split(';')
        .next()
        .unwrap()
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect()
}

/// The worked experiment: with the pack policy, the two threads of `timeshare
/// spinlock` share core 0 of a two-core partition, so they hand the lock over
/// only when the core's timer preempts the one spinning (at least once per
/// turn: 40 each), while core 1 never preempts; the output is native's.
fn the_pack_policy_image_runs_as_natively_with_its_threads_on_one_core(pf: Platform) {
    let (kernel, runtime) = (pack("kernel-min"), pack("mote-runtime"));
    let opts = [
        "--kernel",
        kernel.to_str().unwrap(),
        "--runtime",
        runtime.to_str().unwrap(),
        "--cores",
        "2",
        "--stats",
    ];
    let p = Program::new(app("threads")).on(pf);
    let native = p.native();
    assert_eq!(native.status, 0, "{native:?}");
    let mote = p.mote_with(&opts);
    assert_same(&native, &mote);
    let stderr = mote.stderr_text();
    let lines = image_lines(&stderr);
    assert!(
        lines.len() == 1 && lines[0].contains(&format!("(policy pack, {})", runtime.display())),
        "{mote:?}"
    );

    let p = Program::new(app("timeshare")).arg("spinlock").on(pf);
    let native = p.native();
    assert_eq!(native.status, 0, "{native:?}");
    let mote = p.mote_with(&opts);
    assert_same(&native, &mote);
    let per_core = preemptions(&mote.stderr_text());
    assert_eq!(per_core.len(), 2, "{mote:?}");
    assert!(per_core[0] >= 40 && per_core[1] == 0, "{mote:?}");
}

/// The programs a run's application starts (`posix_spawn`, `system`, `popen`,
/// vfork+execve: each a `mote run` of its own) load the parent's images: every
/// run's `mote: images:` line (MOTE_DEBUG=1) names the files given.
fn child_programs_run_on_the_parents_images(pf: Platform) {
    let runtime = pack("mote-runtime");
    let kernel = pack("kernel-min");
    let p = Program::new(app("spawn")).on(pf);
    let native = p.native();
    let debug = p.clone().under(["env", "MOTE_DEBUG=1"]);
    let mote = debug.mote_with(&[
        "--kernel",
        kernel.to_str().unwrap(),
        "--runtime",
        runtime.to_str().unwrap(),
    ]);
    assert_same(&native, &mote);
    let stderr = mote.stderr_text();
    let lines = image_lines(&stderr);
    // The parent and at least the posix_spawn, system and popen children.
    assert!(lines.len() >= 4, "{lines:?}\n{mote:?}");
    for l in &lines {
        assert!(
            l.contains(&format!("(policy pack, {})", runtime.display()))
                && l.contains(&format!("({})", kernel.display())),
            "{l}\n{mote:?}"
        );
    }
}

/// A forked child is a copy of its parent's run, runtime image included (the
/// proxy forks itself and copies guest memory, `proxy/src/offload/fork.rs`):
/// `fork` (hosted only so far; `ENOSYS` in the partition) under the pack
/// image behaves as natively, with the parent's threads on one core.
#[test]
fn hosted_fork_under_the_pack_image_as_natively() {
    let runtime = pack("mote-runtime");
    for name in ["fork", "fork_threads"] {
        let p = Program::new(app(name)).on(Platform::Hosted);
        let native = p.native();
        assert_eq!(native.status, 0, "{native:?}");
        let mote = p.mote_with(&["--runtime", runtime.to_str().unwrap(), "--cores", "2"]);
        assert_same(&native, &mote);
    }
}

/// `mote info FILE` of an image: what it is and whether this mote loads it.
#[test]
fn mote_info_names_an_image_and_whether_it_loads() {
    let runtime = pack("mote-runtime");
    let run = run_mote_command(&["info", runtime.to_str().unwrap()]);
    assert_eq!(run.status, 0, "{run:?}");
    let text = run.stdout_text();
    assert!(
        text.starts_with(&format!(
            "{}: mote runtime image\npolicy:   pack\nabi:      version 1 (sources ",
            runtime.display()
        )),
        "{text}"
    );
    assert!(
        text.contains("\nloads:    yes (mote run --runtime "),
        "{text}"
    );
    let info = run_mote_command(&["info"]).stdout_text();
    assert!(
        info.contains("images:   kernel-min ")
            && info.contains("runtime ")
            && info.contains("(policy default, built-in)"),
        "{info}"
    );
}

mote_testsuite::on_both_platforms!(
    built_in_images_copied_to_files_run_as_natively,
    an_image_of_another_abi_is_refused_saying_which_versions_match,
    truncated_corrupt_and_wrong_kind_images_are_refused_clearly,
    the_pack_policy_image_runs_as_natively_with_its_threads_on_one_core,
    child_programs_run_on_the_parents_images,
);

/// `mote bench --runtime A --runtime B`: a column per image and platform, each
/// one's ratio to native and B's median over A's per platform (never what the
/// figures are); an image it cannot load is refused before any run.
#[test]
fn bench_compares_two_runtime_images_side_by_side() {
    let runtime = pack("mote-runtime");
    let run = run_mote_command(&[
        "bench",
        "--quick",
        "--reps",
        "1",
        "--runtime",
        "built-in",
        "--runtime",
        runtime.to_str().unwrap(),
        "cg2",
    ]);
    assert_eq!(run.status, 0, "{run:?}");
    let text = run.stdout_text();
    let header = text
        .lines()
        .find(|l| l.starts_with("workload "))
        .unwrap_or_else(|| panic!("no table: {text}"));
    let want = [
        "native med",
        "kvm:default med",
        "kvm:pack med",
        "hosted:default med",
        "hosted:pack med",
        "kvm:default/nat",
        "kvm:pack/nat",
        "hosted:default/nat",
        "hosted:pack/nat",
        "kvm:pack/kvm:default",
        "hosted:pack/hosted:default",
    ];
    for w in want {
        assert!(header.contains(w), "{w:?} missing: {header}");
    }
    let row = text
        .lines()
        .find(|l| l.starts_with("cg2") && l.contains("ms_per_iteration"))
        .unwrap_or_else(|| panic!("no cg2 row: {text}"));
    // Ten numbers (median and p99 of five sides), then six ratios.
    let words: Vec<&str> = row.split_whitespace().collect();
    let ratios = words.iter().filter(|w| w.ends_with('x')).count();
    let numbers = words.iter().filter(|w| w.parse::<f64>().is_ok()).count();
    assert_eq!((numbers, ratios), (10, 6), "{row}");
    assert!(
        text.contains(&format!("mote bench: runtime pack: {}", runtime.display())),
        "{text}"
    );

    let run = run_mote_command(&["bench", "--quick", "--runtime", "/nonexistent/img", "cg2"]);
    assert_eq!(run.status, 2, "{run:?}");
    assert_eq!(
        run.stderr_text(),
        "mote: bench: --runtime /nonexistent/img: cannot read it: No such file or directory (os error 2)\n"
    );
    assert!(run.stdout.is_empty(), "{run:?}");
}
