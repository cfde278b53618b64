//! `mote`: the Linux side of a mote partition. It makes the partition (a KVM VM
//! running kernel-min and the runtime), serves the calls the LWK forwards, keeps the
//! unified address space, and exits with the application's status.
#![deny(unsafe_code)]

mod args;
mod bench;
mod boot;
mod cli;
mod cpus;
mod event;
mod fds;
mod futex;
mod guest;
mod hosted;
mod images;
mod info;
mod kvmfd;
mod lwk;
mod mirror;
mod numa;
mod offload;
mod passthrough;
mod platform;
mod program;
mod report;
mod rlimits;
mod run;
mod say;
mod signals;
mod spawn;
mod spinners;
mod ticks;
mod timeline;
mod trace;
mod tsc;
mod vmm;

fn main() {
    // First: a /dev/kvm descriptor from a parent mote, out of the environment.
    timeline::begin();
    kvmfd::adopt_inherited();
    let cli = cli::parse();
    let status = match cli.command {
        cli::Command::Run(a) => run::run(a),
        cli::Command::Info(a) => match a.file {
            None => info::print_info(),
            Some(f) => info::print_note(&f),
        },
        cli::Command::Bench(a) => bench::bench(a),
        cli::Command::Link(a) => mote_linker::run(a),
    };
    std::process::exit(status);
}
