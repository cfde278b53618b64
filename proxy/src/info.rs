//! What the machine offers: the kind of KVM (if any), Syscall User Dispatch, host
//! cores and memory, and the backend `mote run` picks (`--platform auto`: the
//! partition on hardware-virtualised KVM, the hosted platform otherwise) and why.
//! `mote info` prints it; `run` uses `choose_backend` to fail fast, before it
//! builds anything, when no usable backend exists.

use std::fmt;
use std::path::Path;

use crate::cli::PlatformChoice;

/// How the kernel's KVM is implemented.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvmKind {
    /// Hardware virtualization (`kvm_intel`: VT-x, `kvm_amd`: AMD-V).
    Hardware(&'static str),
    /// `kvm_pvm`: software nested virtualization; guest CPL0 is emulated.
    Software,
    /// /dev/kvm works but no known vendor module is loaded.
    Unknown,
}

impl fmt::Display for KvmKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KvmKind::Hardware(m) => write!(f, "hardware ({m})"),
            KvmKind::Software => f.write_str("software (kvm_pvm: nested, CPL0 emulated)"),
            KvmKind::Unknown => f.write_str("unknown (no kvm_intel, kvm_amd or kvm_pvm module)"),
        }
    }
}

/// Why /dev/kvm cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KvmUnusable {
    #[error(
        "no usable /dev/kvm (not found): load kvm_intel or kvm_amd, run on a machine with \
         virtualization, or use --platform hosted"
    )]
    NotFound,
    #[error("no usable /dev/kvm (permission denied): add yourself to group kvm")]
    PermissionDenied,
    #[error("no usable /dev/kvm ({0}); --platform hosted runs without KVM")]
    Other(String),
    #[error("no usable /dev/kvm (KVM API version {0}, mote needs 12)")]
    ApiVersion(i32),
    #[error("no usable /dev/kvm (hidden by {KVM_OVERRIDE_VAR}=none)")]
    Hidden,
}

/// `MOTE_KVM=none` makes mote behave as on a machine without KVM (how the tests
/// reach the hosted fallback of `--platform auto` on a machine that has KVM).
pub const KVM_OVERRIDE_VAR: &str = "MOTE_KVM";

/// The state of KVM on this machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvmStatus {
    /// What the loaded modules say (known even when /dev/kvm cannot be opened).
    pub kind: Option<KvmKind>,
    /// Whether this process can use /dev/kvm.
    pub usable: Result<(), KvmUnusable>,
}

/// The kind of KVM from the loaded modules under `sys_module` (`/sys/module`).
pub fn kvm_kind_in(sys_module: &Path) -> Option<KvmKind> {
    let has = |m: &str| sys_module.join(m).exists();
    if has("kvm_pvm") {
        Some(KvmKind::Software)
    } else if has("kvm_intel") {
        Some(KvmKind::Hardware("kvm_intel: Intel VT-x"))
    } else if has("kvm_amd") {
        Some(KvmKind::Hardware("kvm_amd: AMD-V"))
    } else if has("kvm") {
        Some(KvmKind::Unknown)
    } else {
        None
    }
}

/// Open /dev/kvm and check its API version.
pub fn detect_kvm() -> KvmStatus {
    if std::env::var_os(KVM_OVERRIDE_VAR).is_some_and(|v| v == "none") {
        return KvmStatus {
            kind: None,
            usable: Err(KvmUnusable::Hidden),
        };
    }
    // The descriptor a parent mote passed on, or a probe of /dev/kvm that is
    // closed again (the partition opens the process's own: `kvmfd`).
    let kvm = if crate::kvmfd::kept().is_some() {
        crate::kvmfd::open()
    } else {
        kvm_ioctls::Kvm::new()
    };
    let usable = match kvm {
        Ok(kvm) => match kvm.get_api_version() {
            12 => Ok(()),
            v => Err(KvmUnusable::ApiVersion(v)),
        },
        Err(e) => Err(match e.errno() {
            libc::ENOENT | libc::ENODEV | libc::ENXIO => KvmUnusable::NotFound,
            libc::EACCES | libc::EPERM => KvmUnusable::PermissionDenied,
            _ => KvmUnusable::Other(std::io::Error::from_raw_os_error(e.errno()).to_string()),
        }),
    };
    let mut kind = kvm_kind_in(Path::new("/sys/module"));
    if kind.is_none() && usable.is_ok() {
        kind = Some(KvmKind::Unknown);
    }
    KvmStatus { kind, usable }
}

/// A partition backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backend {
    /// mote's own VMM on /dev/kvm, and why it was chosen.
    Kvm(KvmKind, KvmBecause),
    /// The hosted platform (`hosted.rs`): an ordinary Linux process, and why it
    /// was chosen.
    Hosted(HostedBecause),
}

/// Why `mote run` uses the partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvmBecause {
    /// `--platform kvm`.
    Asked,
    /// `auto`: KVM is hardware-virtualised.
    Hardware,
    /// `auto`: KVM is software or of unknown kind, but the hosted platform
    /// cannot run here (no Syscall User Dispatch: the reason).
    NoDispatch(String),
}

/// Why `mote run` uses the hosted platform.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostedBecause {
    /// `--platform hosted`.
    Asked,
    /// `auto`: /dev/kvm cannot be used.
    NoKvm(KvmUnusable),
    /// `auto`: /dev/kvm is software KVM (kvm_pvm).
    SoftwareKvm,
    /// `auto`: /dev/kvm works, but no hardware-virtualisation module is loaded.
    UnknownKvm,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const HOSTED: &str = "hosted (a Linux process with Syscall User Dispatch)";
        match self {
            Backend::Kvm(k, KvmBecause::Asked) => {
                write!(f, "kvm (--platform kvm: mote's own VMM; {k})")
            }
            Backend::Kvm(k, KvmBecause::Hardware) => write!(
                f,
                "kvm (mote's own VMM; {k}), because KVM is hardware-virtualised"
            ),
            Backend::Kvm(k, KvmBecause::NoDispatch(e)) => write!(
                f,
                "kvm (mote's own VMM; {k}), because the hosted platform needs \
                 Syscall User Dispatch ({e})"
            ),
            Backend::Hosted(HostedBecause::Asked) => f.write_str(
                "hosted (--platform hosted: a Linux process with Syscall User Dispatch)",
            ),
            Backend::Hosted(HostedBecause::NoKvm(why)) => write!(f, "{HOSTED}, because {why}"),
            Backend::Hosted(HostedBecause::SoftwareKvm) => write!(
                f,
                "{HOSTED}, because /dev/kvm is software KVM (kvm_pvm), where a partition's \
                 every kernel entry is emulated; --platform kvm forces the partition"
            ),
            Backend::Hosted(HostedBecause::UnknownKvm) => write!(
                f,
                "{HOSTED}, because /dev/kvm is KVM of unknown kind (neither kvm_intel nor \
                 kvm_amd is loaded), perhaps software; --platform kvm forces the partition"
            ),
        }
    }
}

/// The backend `mote run --platform choice` uses on a machine whose KVM is in
/// `status` and where Syscall User Dispatch (the hosted platform's trap
/// mechanism) is `dispatch`.
///
/// `auto` takes the partition only on hardware-virtualised KVM (kvm_intel,
/// kvm_amd). On software KVM (kvm_pvm) a partition's every kernel entry and
/// trapped system call is emulated (55–80 µs against ~1.2 µs for the hosted
/// platform's trap signal), so the hosted platform is the better choice; so it
/// is on KVM of unknown kind, which mote cannot vouch for. Where the hosted
/// platform cannot run (no Syscall User Dispatch), `auto` takes any usable KVM.
pub fn choose_backend(
    choice: PlatformChoice,
    status: &KvmStatus,
    dispatch: Result<(), String>,
) -> Result<Backend, KvmUnusable> {
    let kind = status.kind.unwrap_or(KvmKind::Unknown);
    match choice {
        PlatformChoice::Kvm => {
            status.usable.clone()?;
            Ok(Backend::Kvm(kind, KvmBecause::Asked))
        }
        PlatformChoice::Hosted => Ok(Backend::Hosted(HostedBecause::Asked)),
        PlatformChoice::Auto => Ok(match (&status.usable, kind, dispatch) {
            (Err(e), _, _) => Backend::Hosted(HostedBecause::NoKvm(e.clone())),
            (Ok(()), KvmKind::Hardware(_), _) => Backend::Kvm(kind, KvmBecause::Hardware),
            (Ok(()), _, Err(e)) => Backend::Kvm(kind, KvmBecause::NoDispatch(e)),
            (Ok(()), KvmKind::Software, Ok(())) => Backend::Hosted(HostedBecause::SoftwareKvm),
            (Ok(()), KvmKind::Unknown, Ok(())) => Backend::Hosted(HostedBecause::UnknownKvm),
        }),
    }
}

/// `mote run`'s backend: as [`choose_backend`], but `/dev/kvm` is probed
/// (`probe`, [`detect_kvm`]) and Syscall User Dispatch looked at (`dispatch`)
/// only when the choice needs them. `--platform hosted` needs neither (the
/// hosted platform checks dispatch itself): opening `/dev/kvm` took 2-7 ms
/// of a hosted start-up here, when other runs' VMs kept a software KVM busy.
pub fn backend_for_run(
    choice: PlatformChoice,
    probe: impl FnOnce() -> KvmStatus,
    dispatch: impl FnOnce() -> Result<(), String>,
) -> Result<Backend, KvmUnusable> {
    match choice {
        PlatformChoice::Hosted => Ok(Backend::Hosted(HostedBecause::Asked)),
        _ => choose_backend(choice, &probe(), dispatch()),
    }
}

/// Whether this machine offers Syscall User Dispatch, as `choose_backend` takes it.
pub fn dispatch_status() -> Result<(), String> {
    crate::hosted::dispatch_available().map_err(|e| e.to_string())
}

/// What page size the hosted platform's memory gets from Linux: 2 MiB hugetlbfs
/// pages where some are free (`hosted::guest_memory`), else transparent huge pages
/// for shared memory, per /sys/kernel/mm/transparent_hugepage/shmem_enabled (mote
/// asks with MADV_HUGEPAGE).
fn hosted_pages() -> String {
    let free = crate::hosted::hugetlb_pages_free();
    if free > 0 {
        return format!(
            "application memory on 2 MiB hugetlbfs pages ({free} free; up to three \
             quarters of --mem goes on them)"
        );
    }
    let path = "/sys/kernel/mm/transparent_hugepage/shmem_enabled";
    let thp = match std::fs::read_to_string(path) {
        Ok(text) => describe_shmem_thp(&text),
        Err(_) => "application memory on 4 KiB pages (no transparent huge pages)".into(),
    };
    format!(
        "{thp}; no 2 MiB hugetlbfs pages are free: as root, \
         `echo 1024 > /proc/sys/vm/nr_hugepages` reserves 2 GiB of them"
    )
}

fn describe_shmem_thp(text: &str) -> String {
    let chosen = text
        .split_whitespace()
        .find_map(|w| w.strip_prefix('[').and_then(|w| w.strip_suffix(']')))
        .unwrap_or("unknown");
    match chosen {
        "always" | "within_size" | "advise" | "force" => format!(
            "application memory on 2 MiB pages where aligned (shmem transparent huge pages: {chosen})"
        ),
        _ => format!(
            "application memory on 4 KiB pages (shmem transparent huge pages: {chosen}; \
             mote asks for 2 MiB pages with MADV_HUGEPAGE, which `advise` in \
             /sys/kernel/mm/transparent_hugepage/shmem_enabled would honour)"
        ),
    }
}

/// CPUs this process may run on.
pub fn host_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Total host memory in bytes (`MemTotal` of /proc/meminfo), if known.
pub fn host_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_meminfo_total(&text)
}

fn parse_meminfo_total(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// `--mem` against the machine's memory (`host`, MemTotal): a partition's memory
/// is the application's real memory, so more than the machine has is refused now,
/// naming the figure, rather than ending the job in the OOM killer or in swap
/// later (as a batch scheduler refuses `--mem` above a node's memory).
pub fn check_mem_fits_host(mem: u64, host: u64) -> Result<(), String> {
    if mem <= host {
        return Ok(());
    }
    let (most, unit) = if host >= 1 << 30 {
        (host >> 30, "G")
    } else {
        (host >> 20, "M")
    };
    Err(format!(
        "--mem {}: more than this machine's {} of memory (MemTotal in /proc/meminfo); give at \
         most --mem {most}{unit}",
        human_size(mem),
        human_size(host)
    ))
}

/// Bytes as a short human size (binary units).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// `mote info FILE`: for a guest image (`cargo xtask image`), what its note says
/// and whether this mote loads it; for a program, the policy note `mote link`
/// wrote into it. 1 when it has none or a malformed one, or is an image this
/// mote refuses.
pub fn print_note(file: &std::path::Path) -> i32 {
    if let Some(status) = print_image_note(file) {
        return status;
    }
    match mote_linker::note::policy_of_file(file) {
        Ok(Some(p)) => {
            println!("{}: mote note", file.display());
            print!("{}", mote_linker::note::describe(&p));
            0
        }
        Ok(None) => {
            println!("{}: no mote note", file.display());
            1
        }
        Err(e) => {
            eprintln!("mote: {}: {e}", file.display());
            1
        }
    }
}

/// `mote info FILE` of a guest image: its kind, policy, ABI, build id and
/// whether this mote loads it; None when FILE is no image.
fn print_image_note(file: &std::path::Path) -> Option<i32> {
    use crate::images;
    let bytes = std::fs::read(file).ok()?;
    let note = images::note_of(&bytes).ok()?;
    println!("{}: mote {} image", file.display(), note.kind_name());
    if note.kind == mote_abi::image::KIND_RUNTIME {
        println!("policy:   {}", note.policy_name());
    }
    println!(
        "abi:      version {} (sources {:016x})",
        note.abi_version, note.abi_hash
    );
    println!("build:    {:016x}", mote_abi::image::build_id(&bytes));
    match images::check(&bytes, file, note.kind) {
        Ok(_) => {
            let flag = if note.kind == mote_abi::image::KIND_KERNEL {
                "--kernel"
            } else {
                "--runtime"
            };
            println!("loads:    yes (mote run {flag} {})", file.display());
            Some(0)
        }
        Err(e) => {
            println!("loads:    no");
            eprintln!("mote: {e}");
            Some(1)
        }
    }
}

/// `mote info`: print the machine's facts on stdout; returns the exit status.
pub fn print_info() -> i32 {
    let status = detect_kvm();
    let cores = host_cores();
    println!("mote {}", env!("CARGO_PKG_VERSION"));
    match (&status.kind, &status.usable) {
        (Some(k), Ok(())) => println!("kvm:      /dev/kvm usable, {k}"),
        (Some(k), Err(e)) => println!("kvm:      {k}, but {e}"),
        (None, Ok(())) => println!("kvm:      /dev/kvm usable"),
        (None, Err(e)) => println!("kvm:      {e}"),
    }
    match host_memory() {
        Some(m) => println!("host:     {cores} cores, {} memory", human_size(m)),
        None => println!("host:     {cores} cores, memory unknown"),
    }
    let allowed = crate::cpus::host_cpus();
    let linux = allowed[0];
    let lwk: Vec<String> = allowed[1..].iter().map(|c| c.to_string()).collect();
    if lwk.is_empty() {
        println!("layout:   Linux core and LWK core share host CPU {linux} (one CPU allowed)");
    } else {
        println!(
            "layout:   Linux core: host CPU {linux} (offload servers); LWK cores on host CPUs {}",
            lwk.join(",")
        );
        let taken: Vec<String> = crate::cpus::taken_by_others()
            .iter()
            .map(|c| c.to_string())
            .collect();
        if !taken.is_empty() {
            println!(
                "          taken by other mote runs now: host CPU(s) {} (a new run's cores \
                 go on the others, and share when none is left)",
                taken.join(",")
            );
        }
    }
    println!(
        "offload:  a run started now puts its offload threads on {}",
        crate::cpus::offload_place_now().0
    );
    let dispatch = dispatch_status();
    match &dispatch {
        Ok(()) => println!("hosted:   Syscall User Dispatch available (--platform hosted)"),
        Err(e) => println!("hosted:   no Syscall User Dispatch ({e}): --platform hosted refuses"),
    }
    println!("hosted:   {}", hosted_pages());
    match choose_backend(PlatformChoice::Auto, &status, dispatch.clone()) {
        Ok(Backend::Hosted(_)) if dispatch.is_err() => println!(
            "backend:  none: mote run will refuse to start (no usable KVM and no Syscall \
             User Dispatch)"
        ),
        Ok(b) => println!("backend:  mote run will use {b}"),
        Err(_) => println!("backend:  none: mote run will refuse to start"),
    }
    let images = crate::images::built_in_images();
    println!(
        "images:   {}; mote run --kernel FILE loads another",
        images.kernel
    );
    println!(
        "          {}; mote run --runtime FILE loads another",
        images.runtime
    );
    println!(
        "abi:      version {} (sources {:016x}): the images mote run loads",
        mote_abi::image::ABI_VERSION,
        mote_abi::image::ABI_HASH
    );
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosted_asked_for_never_probes_kvm() {
        let b = backend_for_run(
            PlatformChoice::Hosted,
            || panic!("/dev/kvm probed for --platform hosted"),
            || panic!("dispatch probed for --platform hosted"),
        )
        .unwrap();
        assert_eq!(b, Backend::Hosted(HostedBecause::Asked));
        // The other choices still look.
        let st = KvmStatus {
            kind: Some(KvmKind::Software),
            usable: Ok(()),
        };
        let b = backend_for_run(PlatformChoice::Auto, || st, || Ok(())).unwrap();
        assert_eq!(b, Backend::Hosted(HostedBecause::SoftwareKvm));
    }

    #[test]
    fn mem_above_the_machine_s_is_refused_with_the_figure() {
        let host = 24 << 30;
        assert_eq!(check_mem_fits_host(host, host), Ok(()));
        let e = check_mem_fits_host(1 << 40, host + (500 << 20)).unwrap_err();
        assert!(
            e.starts_with("--mem 1.0 TiB: more than this machine's 24."),
            "{e}"
        );
        assert!(e.ends_with("give at most --mem 24G"), "{e}");
    }

    #[test]
    fn kind_from_modules() {
        let dir = std::env::temp_dir().join(format!("mote-info-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(kvm_kind_in(&dir), None);
        std::fs::create_dir(dir.join("kvm")).unwrap();
        assert_eq!(kvm_kind_in(&dir), Some(KvmKind::Unknown));
        std::fs::create_dir(dir.join("kvm_intel")).unwrap();
        assert!(matches!(kvm_kind_in(&dir), Some(KvmKind::Hardware(_))));
        std::fs::create_dir(dir.join("kvm_pvm")).unwrap();
        assert_eq!(kvm_kind_in(&dir), Some(KvmKind::Software));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn usable(kind: KvmKind) -> KvmStatus {
        KvmStatus {
            kind: Some(kind),
            usable: Ok(()),
        }
    }

    const INTEL: KvmKind = KvmKind::Hardware("kvm_intel: Intel VT-x");

    #[test]
    fn unusable_kvm_refuses_with_the_fix() {
        let st = KvmStatus {
            kind: None,
            usable: Err(KvmUnusable::PermissionDenied),
        };
        let e = choose_backend(PlatformChoice::Kvm, &st, Ok(())).unwrap_err();
        assert_eq!(
            e.to_string(),
            "no usable /dev/kvm (permission denied): add yourself to group kvm"
        );
        // auto falls back to the hosted platform and says why.
        let b = choose_backend(PlatformChoice::Auto, &st, Ok(())).unwrap();
        assert_eq!(
            b,
            Backend::Hosted(HostedBecause::NoKvm(KvmUnusable::PermissionDenied))
        );
        assert!(b.to_string().ends_with(
            "because no usable /dev/kvm (permission denied): add yourself to group kvm"
        ));
        let st = KvmStatus {
            kind: None,
            usable: Err(KvmUnusable::NotFound),
        };
        let e = choose_backend(PlatformChoice::Kvm, &st, Ok(()))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("no usable /dev/kvm (not found): load kvm_intel or kvm_amd"));
        assert!(e.ends_with("or use --platform hosted"));
    }

    #[test]
    fn auto_takes_the_partition_only_on_hardware_kvm() {
        let b = choose_backend(PlatformChoice::Auto, &usable(INTEL), Ok(())).unwrap();
        assert_eq!(b, Backend::Kvm(INTEL, KvmBecause::Hardware));
        assert!(b
            .to_string()
            .ends_with("because KVM is hardware-virtualised"));
        let amd = KvmKind::Hardware("kvm_amd: AMD-V");
        assert_eq!(
            choose_backend(PlatformChoice::Auto, &usable(amd), Ok(())),
            Ok(Backend::Kvm(amd, KvmBecause::Hardware))
        );
        // Software KVM (this machine's kvm_pvm) and KVM of unknown kind: hosted.
        let b = choose_backend(PlatformChoice::Auto, &usable(KvmKind::Software), Ok(())).unwrap();
        assert_eq!(b, Backend::Hosted(HostedBecause::SoftwareKvm));
        assert!(
            b.to_string()
                .contains("because /dev/kvm is software KVM (kvm_pvm)"),
            "{b}"
        );
        assert_eq!(
            choose_backend(PlatformChoice::Auto, &usable(KvmKind::Unknown), Ok(())),
            Ok(Backend::Hosted(HostedBecause::UnknownKvm))
        );
        // A usable /dev/kvm without a module name (detect_kvm then says Unknown).
        let st = KvmStatus {
            kind: None,
            usable: Ok(()),
        };
        assert_eq!(
            choose_backend(PlatformChoice::Auto, &st, Ok(())),
            Ok(Backend::Hosted(HostedBecause::UnknownKvm))
        );
    }

    #[test]
    fn auto_takes_any_usable_kvm_without_syscall_user_dispatch() {
        let no = || Err("Invalid argument".to_string());
        let b = choose_backend(PlatformChoice::Auto, &usable(KvmKind::Software), no()).unwrap();
        assert_eq!(
            b,
            Backend::Kvm(
                KvmKind::Software,
                KvmBecause::NoDispatch("Invalid argument".into())
            )
        );
        assert!(
            b.to_string()
                .ends_with("needs Syscall User Dispatch (Invalid argument)"),
            "{b}"
        );
        assert_eq!(
            choose_backend(PlatformChoice::Auto, &usable(INTEL), no()),
            Ok(Backend::Kvm(INTEL, KvmBecause::Hardware))
        );
        // Neither: hosted, which then refuses naming Syscall User Dispatch.
        let st = KvmStatus {
            kind: None,
            usable: Err(KvmUnusable::NotFound),
        };
        assert_eq!(
            choose_backend(PlatformChoice::Auto, &st, no()),
            Ok(Backend::Hosted(HostedBecause::NoKvm(KvmUnusable::NotFound)))
        );
    }

    #[test]
    fn an_explicit_platform_is_taken_whatever_the_kvm() {
        for kind in [INTEL, KvmKind::Software, KvmKind::Unknown] {
            assert_eq!(
                choose_backend(PlatformChoice::Kvm, &usable(kind), Ok(())),
                Ok(Backend::Kvm(kind, KvmBecause::Asked))
            );
            assert_eq!(
                choose_backend(PlatformChoice::Hosted, &usable(kind), Ok(())),
                Ok(Backend::Hosted(HostedBecause::Asked))
            );
        }
        let b = choose_backend(PlatformChoice::Kvm, &usable(KvmKind::Software), Ok(())).unwrap();
        assert!(b.to_string().starts_with("kvm (--platform kvm: "), "{b}");
    }

    #[test]
    fn shmem_huge_pages_setting() {
        assert!(
            describe_shmem_thp("always within_size advise [never] deny force\n").starts_with(
                "application memory on 4 KiB pages (shmem transparent huge pages: never;"
            )
        );
        assert!(
            describe_shmem_thp("always within_size [advise] never deny force")
                .starts_with("application memory on 2 MiB pages where aligned")
        );
    }

    #[test]
    fn meminfo_and_sizes() {
        let t = "MemFree:  10 kB\nMemTotal:       24522340 kB\n";
        assert_eq!(parse_meminfo_total(t), Some(24522340 * 1024));
        assert_eq!(parse_meminfo_total("nothing"), None);
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(2 << 30), "2.0 GiB");
        assert!(host_cores() >= 1);
    }

    #[test]
    fn detection_agrees_with_the_device_node() {
        let st = detect_kvm();
        if !Path::new("/dev/kvm").exists() {
            assert_eq!(st.usable, Err(KvmUnusable::NotFound));
        }
        if Path::new("/sys/module/kvm_pvm").exists() {
            assert_eq!(st.kind, Some(KvmKind::Software));
        }
    }
}
