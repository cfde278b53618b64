//! `mote run`: check the request, make the partition, serve it, exit with the
//! application's status.
//!
//! Order matters: everything that can be refused (flags, platform, program, argument
//! size) is refused before any VM exists; the application's address range is
//! reserved before any thread is started; the offload threads exist before the first
//! vCPU instruction. The process exits with `std::process::exit` on the first event
//! that ends the run, which tears down the VM, its threads and the offload threads
//! together: nothing is left behind.

use std::io::Read;
use std::sync::mpsc::channel;
use std::sync::Arc;

use crate::boot::BootParams;
use crate::cli::{PlatformChoice, RunArgs, EXIT_USAGE};
use crate::event::Event;
use crate::fds::LowFds;
use crate::guest::GuestMem;
use crate::hosted::Hosted;
use crate::info::Backend;
use crate::mirror::Mirror;
use crate::passthrough::Passthrough;
use crate::platform::Platform;
use crate::vmm::Partition;
use crate::{args, info, offload, program, report, trace};

/// Exit status when mote itself fails (platform, VM, resources), as `env`, `nice`
/// and `timeout` use for their own failures; 126/127 stay the program's.
pub const EXIT_MOTE_FAILED: i32 = 125;

/// Run the request; returns the exit status (the caller exits with it).
pub fn run(a: RunArgs) -> i32 {
    match run_inner(a) {
        Ok(status) => status,
        Err((status, msg)) => {
            crate::say!("mote: {msg}");
            status
        }
    }
}

type Failure = (i32, String);

fn fail(status: i32) -> impl FnOnce(String) -> Failure {
    move |m| (status, m)
}

fn run_inner(mut a: RunArgs) -> Result<i32, Failure> {
    // Before mote installs or blocks anything: what the application inherits ignored.
    let ignored_signals = crate::signals::inherited_ignored();
    // The program's policy note (`mote link`): flags given win over it. A program
    // that cannot be found is refused below, by `program::prepare`.
    let path_var = std::env::var_os("PATH");
    let note = match program::resolve(&a.command[0], path_var.as_deref()) {
        Ok(path) => mote_linker::note::policy_of_file(&path)
            .map_err(|e| (126, format!("{}: {e}; refusing to run it", path.display())))?,
        Err(_) => None,
    };
    // What the command line said, for the runs of child programs: each of them
    // settles the rest from its own note.
    let given_no_patch = a.no_patch;
    a.settle(note.as_ref());
    crate::timeline::mark("note");
    let blocked_signals = crate::signals::inherited_mask();
    if a.cores == 0 {
        return Err((EXIT_USAGE, "--cores must be at least 1".into()));
    }
    if a.cores > mote_abi::layout::MAX_CORES {
        return Err((
            EXIT_USAGE,
            format!(
                "--cores {}: a partition has at most {} cores",
                a.cores,
                mote_abi::layout::MAX_CORES
            ),
        ));
    }
    let debug = crate::say::debug();
    // The images: files given are read and checked now, before anything is built.
    let images = crate::images::choose(a.kernel.as_deref(), a.runtime.as_deref())
        .map_err(|e| (EXIT_USAGE, e.to_string()))?;
    if let Some(host) = info::host_memory() {
        info::check_mem_fits_host(a.mem, host).map_err(fail(EXIT_USAGE))?;
    }
    let host = crate::cpus::host_cpus().len();
    if a.cores + 1 > host && (debug || a.stats) {
        // Allowed (tests run 4 cores on a 2-CPU machine; launchers bind each MPI
        // rank to one CPU), but the cores are not dedicated any more. A note, not
        // a failure: only under MOTE_DEBUG or --stats, never on the application's
        // stderr otherwise.
        crate::say!(
            "mote: --cores {} with {} host CPU(s) allowed: LWK cores share host CPUs with each other{}; expect noise",
            a.cores,
            host,
            if host > 1 { "" } else { " and the Linux core" }
        );
    }

    // A child's program gets the options given here; its own mote note (`mote
    // link`) and the defaults fill the rest.
    let mut options: Vec<std::ffi::OsString> = Vec::new();
    if let Some(c) = a.cores_flag {
        options.extend(["--cores".into(), c.to_string().into()]);
    }
    if let Some(m) = a.mem_flag {
        options.extend(["--mem".into(), m.to_string().into()]);
    }
    if let Some(p) = a
        .page_size_flag
        .and_then(|p| clap::ValueEnum::to_possible_value(&p))
    {
        options.extend(["--page-size".into(), p.get_name().into()]);
    }
    if let Some(t) = a.time_slice_flag {
        options.extend(["--time-slice".into(), t.to_string().into()]);
    }
    options.extend(["--numa".into(), a.numa.to_string().into()]);
    if given_no_patch {
        options.push("--no-patch".into());
    }
    options.push("--spawned".into());
    // A child's program runs on the images its parent runs on (absolute paths:
    // the child may have another working directory).
    for (flag, image) in [("--kernel", &images.kernel), ("--runtime", &images.runtime)] {
        if let crate::images::Source::File(path) = &image.source {
            options.extend([flag.into(), path.clone().into_os_string()]);
        }
    }

    // Signals: before any thread exists, so every thread blocks the routed ones.
    crate::signals::block_routed().map_err(|e| {
        (
            EXIT_MOTE_FAILED,
            format!("cannot set up signal routing: {e}"),
        )
    })?;

    crate::timeline::mark("options");
    let backend = info::backend_for_run(a.platform, info::detect_kvm, info::dispatch_status)
        .map_err(|e| (EXIT_MOTE_FAILED, e.to_string()))?;
    // A child's program runs on the platform its parent was asked for; `auto`
    // that chose the hosted platform is passed on as `hosted`, which a child
    // settles without opening /dev/kvm (`info::backend_for_run`).
    let child_platform = match (&backend, a.platform) {
        (Backend::Hosted(_), _) => PlatformChoice::Hosted,
        (_, asked) => asked,
    };
    if let Some(p) = clap::ValueEnum::to_possible_value(&child_platform) {
        options.push("--platform".into());
        options.push(p.get_name().into());
    }
    crate::spawn::set_run_options(options);
    if debug {
        crate::say!("mote: platform: {backend}");
        crate::say!("mote: images: {images}");
    }

    crate::timeline::mark("platform chosen");
    let (name, app_args) = a.command.split_first().expect("clap requires PROGRAM");
    let prog = match program::prepare(name) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{}", program::refusal(name, &e));
            return Ok(e.exit_status());
        }
    };

    // Limits set before the run are the application's (`rlimits`); mote's own
    // reservation and descriptors are not bound by its soft limits.
    crate::rlimits::adopt_at_start(
        (mote_abi::layout::LIBOS_END - mote_abi::layout::USER_START).saturating_add(a.mem),
    )
    .map_err(|e| (EXIT_MOTE_FAILED, e.to_string()))?;

    // The descriptors the application inherits are its own; the ones the proxy opens
    // from here on go above LOW_FDS, so the application's first open() gets the
    // number it gets natively, and forwarded calls cannot close them.
    let mut inherited = crate::fds::open_fds().map_err(|e| {
        (
            EXIT_MOTE_FAILED,
            format!("cannot list open descriptors: {e}"),
        )
    })?;
    // The /dev/kvm descriptor a parent mote passed on is mote's.
    inherited.retain(|&fd| Some(fd) != crate::kvmfd::kept());
    crate::say::init();
    let low_fds = LowFds::fill().map_err(fail(EXIT_MOTE_FAILED))?;

    crate::timeline::mark("program and descriptors");
    let guest = match backend {
        Backend::Kvm(..) => GuestMem::new(a.mem),
        Backend::Hosted(_) => crate::hosted::guest_memory(a.mem, a.page_size.bytes()),
    };
    let guest = Arc::new(guest.map_err(|e| (EXIT_MOTE_FAILED, e.to_string()))?);
    // Before any thread exists: nothing of ours may land in the application's range.
    let mirror = Arc::new(Mirror::reserve(&guest).map_err(|e| (EXIT_MOTE_FAILED, e.to_string()))?);

    crate::timeline::mark("guest memory and mirror");
    let env = args::environment();
    let argv = std::iter::once(name.as_os_str()).chain(app_args.iter().map(|s| s.as_os_str()));
    let block = args::write(
        &guest,
        prog.path.as_os_str(),
        argv,
        env.iter().map(|e| e.as_os_str()),
    )
    .map_err(|e| {
        (
            program::EXIT_CANNOT_EXECUTE,
            format!("{}: {e}", name.to_string_lossy()),
        )
    })?;

    let mut params = BootParams {
        pid: std::process::id(),
        argc: block.argc,
        envc: block.envc,
        args_len: block.len,
        debug,
        random: random_bytes().map_err(fail(EXIT_MOTE_FAILED))?,
        no_patch: a.no_patch,
        stats: a.stats,
        trace: a.trace.is_some(),
        page_size: a.page_size.bytes(),
        shared_cpus: a.cores > 1 && a.cores + 1 > crate::cpus::host_cpus().len(),
        ignored_signals,
        time_slice_ns: a.time_slice * 1_000_000,
        blocked_signals,
        numa: mote_abi::numa::Topology::single(guest.size(), a.cores),
        as_limit: crate::rlimits::app_as_limit(),
    };
    crate::timeline::mark("argv block");
    // LWK host CPUs of their own, apart from other mote runs' (MPI ranks).
    crate::cpus::claim(a.cores, params.debug || params.stats);
    // NUMA: which nodes hold the memory and the cores, bound before the boot
    // images touch the memory.
    let core_cpus: Vec<usize> = (0..a.cores).map(crate::cpus::lwk_host_cpu).collect();
    params.numa = crate::numa::plan(
        &a.numa,
        &crate::numa::Host::read(),
        guest.size(),
        &core_cpus,
    )
    .map_err(|e| (EXIT_USAGE, e.to_string()))?;
    crate::numa::bind(&guest, &params.numa).map_err(|e| {
        (
            EXIT_MOTE_FAILED,
            format!(
                "--numa {}: cannot bind the partition's memory to its nodes: {e}",
                a.numa
            ),
        )
    })?;
    // Where the offload threads run: after the claim, so this run's own CPU is
    // marked before it looks for a service CPU.
    let place = crate::cpus::offload_place_now();
    offload::set_placement(place.0, place.1, place.2, params.debug || params.stats);
    crate::note!("mote: offload threads on {}", place.0);
    crate::timeline::mark("cpus and numa");
    let mut platform = match backend {
        Backend::Kvm(..) => {
            let partition = Partition::new(guest.clone(), a.cores, &params).map_err(|e| {
                (
                    EXIT_MOTE_FAILED,
                    format!("cannot create the partition: {e}"),
                )
            })?;
            let (vm, nr_memslots) = partition.memslots();
            mirror.attach_passthrough(Passthrough::new(Box::new(vm), nr_memslots));
            Box::new(partition) as Box<dyn Platform>
        }
        Backend::Hosted(_) => {
            let h = Hosted::new(guest.clone(), a.cores, &params)
                .map_err(|e| (EXIT_MOTE_FAILED, e.to_string()))?;
            mirror.attach_passthrough(Hosted::passthrough());
            mirror.populate_lazily();
            Box::new(h)
        }
    };
    mirror
        .map_boot_regions(platform.runtime_gpa())
        .map_err(|e| {
            (
                EXIT_MOTE_FAILED,
                format!("cannot mirror the boot regions: {e}"),
            )
        })?;

    crate::timeline::mark("boot regions mirrored");
    // The trace's output, among the proxy's own descriptors (protected below).
    let trace_out = match &a.trace {
        Some(v) => Some(trace::open(&trace::Mode::parse(Some(v))).map_err(fail(EXIT_USAGE))?),
        None => None,
    };
    drop(low_fds);
    let own = crate::fds::open_fds().map_err(|e| {
        (
            EXIT_MOTE_FAILED,
            format!("cannot list open descriptors: {e}"),
        )
    })?;
    crate::fds::protect_fds(own.into_iter().filter(|fd| !inherited.contains(fd)));

    crate::signals::default_sigpipe();
    crate::fds::close_std_fds_closed_at_start();
    let (tx, rx) = channel();
    // The main thread's server and each core's idle context's (`ikc::idle_slot`);
    // libos asks for one per thread it creates.
    let first_slots = std::iter::once(0).chain((0..a.cores).map(mote_abi::ikc::idle_slot));
    for slot in first_slots {
        offload::spawn(
            slot,
            guest.clone(),
            mirror.clone(),
            tx.clone(),
            Some(place.0.cpu()),
        )
        .map_err(|e| {
            (
                EXIT_MOTE_FAILED,
                format!("cannot start the offload thread of IKC slot {slot}: {e}"),
            )
        })?;
    }
    crate::signals::spawn_router(guest.clone(), tx.clone()).map_err(|e| {
        (
            EXIT_MOTE_FAILED,
            format!("cannot start the signal router: {e}"),
        )
    })?;
    let tracer = match trace_out {
        Some(out) => {
            // Every call goes to the dispatcher, getpid and gettid included.
            guest
                .signal_page()
                .full_path
                .store(1, std::sync::atomic::Ordering::Relaxed);
            let t =
                trace::start(guest.clone(), platform.runtime_gpa(), a.cores, out).map_err(|e| {
                    (
                        EXIT_MOTE_FAILED,
                        format!("cannot start the trace thread: {e}"),
                    )
                })?;
            Some(t)
        }
        None => None,
    };
    crate::timeline::mark("offload threads and router");
    platform.start(tx).map_err(fail(EXIT_MOTE_FAILED))?;
    crate::timeline::mark("started");

    let event = rx.recv();
    crate::timeline::mark("ended");
    if let Some(t) = tracer {
        t.finish();
    }
    if let Some(stats) = platform.finish(a.stats) {
        crate::say!("mote: {stats}");
    }
    crate::timeline::mark("stopped");
    crate::timeline::print();
    if a.stats {
        if let Some(line) = offload::stats_line() {
            crate::say!("mote: {line}");
        }
        crate::say!("mote: images: {images}");
    }
    // A run whose IKC area the application wrote over ended for no reason it
    // can be trusted on (a runtime that crashed there died of a signal the
    // application never raised): name the real cause.
    let event = match (event, crate::signals::damage(&guest)) {
        (Ok(Event::Failed(msg)), _) => Ok(Event::Failed(msg)),
        (Ok(_), Some(what)) => Ok(Event::Corrupted(what)),
        (event, _) => event,
    };
    Ok(match event {
        Ok(Event::Exited(status)) => status,
        Ok(Event::Corrupted(what)) => {
            let status = report::print_corrupted(&what);
            crate::signals::die_by(libc::SIGSEGV as u32);
            status
        }
        Ok(Event::Killed { signal, fault }) => {
            let status = report::print_killed(signal, fault.as_ref(), a.spawned);
            // As the application died natively: the parent's wait sees the signal.
            crate::signals::die_by(signal);
            status
        }
        Ok(Event::Failed(msg)) => return Err((EXIT_MOTE_FAILED, msg)),
        Err(_) => {
            return Err((
                EXIT_MOTE_FAILED,
                "the partition stopped without an exit status".into(),
            ))
        }
    })
}

/// 16 bytes for AT_RANDOM.
fn random_bytes() -> Result<[u8; 16], String> {
    let mut r = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut r))
        .map_err(|e| format!("cannot read /dev/urandom: {e}"))?;
    Ok(r)
}
