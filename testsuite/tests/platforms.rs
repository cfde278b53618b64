//! Which platform `mote run` takes (issue 6). `--platform auto`, the default,
//! takes the partition on hardware-virtualised KVM (kvm_intel, kvm_amd) and the
//! hosted platform otherwise — software KVM such as kvm_pvm, KVM of unknown
//! kind, no usable /dev/kvm — and `mote info` says which and why;
//! `--platform kvm` and `--platform hosted` take the one asked for.
//!
//! What the platforms do is checked by the per-area files (`apps.rs`,
//! `signals.rs`, `threads.rs`, ...): each lists its cases in
//! `on_both_platforms!`, so every case runs as `kvm::CASE` and `hosted::CASE`
//! and the two platforms' behaviour cannot drift.

use std::path::Path;

use mote_testsuite::{app, assert_same, run_mote_command, Platform, Program, Run};

/// Which platform ran, from `mote run --stats`: kernel-min's statistics line
/// (the partition) or the hosted platform's.
fn platform_that_ran(run: &Run) -> Platform {
    let err = run.stderr_text();
    let kvm = err.lines().any(|l| l.contains("kernel-min: page faults"));
    let hosted = err
        .lines()
        .any(|l| l.starts_with("mote: hosted: trap signals "));
    match (kvm, hosted) {
        (true, false) => Platform::Kvm,
        (false, true) => Platform::Hosted,
        _ => panic!("no single platform's statistics in stderr\n{run:?}"),
    }
}

/// `hello --stats` on `pf`: the same as natively; returns the mote run.
fn hello_with_stats(pf: Platform) -> Run {
    let p = Program::new(app("hello")).on(pf);
    let native = p.native();
    let run = p.mote_with(&["--stats"]);
    assert_same(&native, &run);
    run
}

/// `--platform kvm` forces the partition (on this machine's software KVM too)
/// and `--platform hosted` the hosted platform.
#[test]
fn the_platform_asked_for_is_the_one_that_runs() {
    let run = hello_with_stats(Platform::Kvm);
    assert_eq!(platform_that_ran(&run), Platform::Kvm, "{run:?}");
    let run = hello_with_stats(Platform::Hosted);
    assert_eq!(platform_that_ran(&run), Platform::Hosted, "{run:?}");
}

/// What `auto` must take on this machine: the partition only on
/// hardware-virtualised KVM that this process can open.
fn expected_auto() -> Platform {
    let module = |m: &str| Path::new("/sys/module").join(m).exists();
    let hardware = !module("kvm_pvm") && (module("kvm_intel") || module("kvm_amd"));
    let usable = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok();
    if hardware && usable {
        Platform::Kvm
    } else {
        Platform::Hosted
    }
}

/// The default (`auto`) takes the platform `mote info` announces, and that is
/// the hosted one unless KVM is hardware-virtualised (on this machine, software
/// kvm_pvm: hosted).
#[test]
fn auto_takes_kvm_only_on_hardware_virtualisation_and_info_says_why() {
    let want = expected_auto();
    let info = run_mote_command(&["info"]);
    assert_eq!(info.status, 0, "{info:?}");
    let text = info.stdout_text();
    let backend = text
        .lines()
        .find_map(|l| l.strip_prefix("backend:  mote run will use "))
        .unwrap_or_else(|| panic!("no backend line\n{info:?}"));
    match want {
        Platform::Kvm => assert!(
            backend.starts_with("kvm ") && backend.ends_with("because KVM is hardware-virtualised"),
            "{backend}"
        ),
        _ => assert!(
            backend.starts_with("hosted ") && backend.contains(", because "),
            "{backend}"
        ),
    }
    if Path::new("/sys/module/kvm_pvm").exists() && Path::new("/dev/kvm").exists() {
        assert!(
            backend.contains("because /dev/kvm is software KVM (kvm_pvm)"),
            "{backend}"
        );
    }
    let run = hello_with_stats(Platform::Auto);
    assert_eq!(platform_that_ran(&run), want, "{run:?}");
}

/// With KVM hidden (`MOTE_KVM=none`), the default platform is the hosted one:
/// `mote info` says so and why, `--platform kvm` refuses naming the cause, and
/// the README's demo (`mote run -- hello`) still works.
#[test]
fn without_kvm_auto_falls_back_to_hosted() {
    let vars = || {
        let mut v: Vec<(String, String)> = std::env::vars().collect();
        v.retain(|(k, _)| k != "MOTE_KVM");
        v.push(("MOTE_KVM".into(), "none".into()));
        v
    };
    let info = mote_info_without_kvm();
    assert_eq!(info.status, 0, "{info:?}");
    assert!(
        info.stdout_text().contains(
            "backend:  mote run will use hosted (a Linux process with Syscall User Dispatch), \
             because no usable /dev/kvm (hidden by MOTE_KVM=none)"
        ),
        "{info:?}"
    );
    let hello = Program::new(app("hello")).env_exact(vars());
    let native = hello.native();
    let run = hello.clone().on(Platform::Auto).mote();
    assert_same(&native, &run);
    assert_eq!(run.status, 0);
    let forced = hello.on(Platform::Kvm).mote();
    assert_eq!(forced.status, 125, "{forced:?}");
    assert!(
        forced
            .stderr_text()
            .contains("no usable /dev/kvm (hidden by MOTE_KVM=none)"),
        "{forced:?}"
    );
}

/// `mote info` with KVM hidden. The harness passes its own environment
/// through, so the override is set for this one command by running it through
/// `env`.
fn mote_info_without_kvm() -> Run {
    let mote = mote_testsuite::artifacts()
        .mote
        .to_str()
        .expect("mote's path is UTF-8");
    Program::new("/usr/bin/env")
        .args(["MOTE_KVM=none", mote, "info"])
        .native()
}
