//! The report printed when a signal ends the run: which signal and what it means,
//! where the fault happened and what kind of access it was, who was running
//! (application, runtime or kernel-min) and the registers. One block on stderr,
//! every line starting with `mote: `. mote then dies of the same signal
//! (`signals::die_by`), so its parent sees it killed as natively; 128 + signal,
//! what a shell reports for such a process, is the status only if it survives.

use std::fmt::Write;

use mote_abi::trap::{vector, FaultOrigin, FaultReport, REG_NAMES};

/// Exit status of a run ended by `signal`.
pub fn killed_status(signal: u32) -> i32 {
    128 + (signal & 0x7f) as i32
}

/// Name and description of a Linux signal (signal(7)).
pub fn signal_name(signal: u32) -> (String, &'static str) {
    let (name, what) = match signal as i32 {
        libc::SIGHUP => ("SIGHUP", "hangup"),
        libc::SIGINT => ("SIGINT", "interrupt"),
        libc::SIGQUIT => ("SIGQUIT", "quit"),
        libc::SIGILL => ("SIGILL", "illegal instruction"),
        libc::SIGTRAP => ("SIGTRAP", "trace/breakpoint trap"),
        libc::SIGABRT => ("SIGABRT", "aborted"),
        libc::SIGBUS => ("SIGBUS", "bus error"),
        libc::SIGFPE => ("SIGFPE", "arithmetic exception"),
        libc::SIGKILL => ("SIGKILL", "killed"),
        libc::SIGUSR1 => ("SIGUSR1", "user defined signal 1"),
        libc::SIGSEGV => ("SIGSEGV", "segmentation fault"),
        libc::SIGUSR2 => ("SIGUSR2", "user defined signal 2"),
        libc::SIGPIPE => ("SIGPIPE", "broken pipe"),
        libc::SIGALRM => ("SIGALRM", "alarm clock"),
        libc::SIGTERM => ("SIGTERM", "terminated"),
        libc::SIGSTKFLT => ("SIGSTKFLT", "stack fault"),
        libc::SIGCHLD => ("SIGCHLD", "child exited"),
        libc::SIGCONT => ("SIGCONT", "continued"),
        libc::SIGSTOP => ("SIGSTOP", "stopped (signal)"),
        libc::SIGTSTP => ("SIGTSTP", "stopped"),
        libc::SIGTTIN => ("SIGTTIN", "stopped (tty input)"),
        libc::SIGTTOU => ("SIGTTOU", "stopped (tty output)"),
        libc::SIGURG => ("SIGURG", "urgent I/O condition"),
        libc::SIGXCPU => ("SIGXCPU", "CPU time limit exceeded"),
        libc::SIGXFSZ => ("SIGXFSZ", "file size limit exceeded"),
        libc::SIGVTALRM => ("SIGVTALRM", "virtual timer expired"),
        libc::SIGPROF => ("SIGPROF", "profiling timer expired"),
        libc::SIGWINCH => ("SIGWINCH", "window changed"),
        libc::SIGIO => ("SIGIO", "I/O possible"),
        libc::SIGPWR => ("SIGPWR", "power failure"),
        libc::SIGSYS => ("SIGSYS", "bad system call"),
        s if (libc::SIGRTMIN()..=libc::SIGRTMAX()).contains(&s) => {
            return (
                format!("SIGRTMIN+{}", s - libc::SIGRTMIN()),
                "real-time signal",
            );
        }
        _ => return (format!("signal {signal}"), "unknown signal"),
    };
    (name.to_string(), what)
}

/// Mnemonic and name of an exception vector (Intel SDM vol. 3A, table 6-1).
pub fn vector_name(v: u64) -> (&'static str, &'static str) {
    match v {
        vector::DE => ("#DE", "divide error"),
        vector::DB => ("#DB", "debug exception"),
        vector::NMI => ("NMI", "non-maskable interrupt"),
        vector::BP => ("#BP", "breakpoint"),
        vector::OF => ("#OF", "overflow"),
        vector::BR => ("#BR", "bound range exceeded"),
        vector::UD => ("#UD", "invalid opcode"),
        vector::NM => ("#NM", "device not available"),
        vector::DF => ("#DF", "double fault"),
        vector::TS => ("#TS", "invalid TSS"),
        vector::NP => ("#NP", "segment not present"),
        vector::SS => ("#SS", "stack-segment fault"),
        vector::GP => ("#GP", "general protection"),
        vector::PF => ("#PF", "page fault"),
        vector::MF => ("#MF", "x87 floating-point error"),
        vector::AC => ("#AC", "alignment check"),
        vector::MC => ("#MC", "machine check"),
        vector::XM => ("#XM", "SIMD floating-point exception"),
        _ => ("?", "exception"),
    }
}

/// What a page-fault error code says (Intel SDM vol. 3A, 4.7).
pub fn page_fault_cause(error_code: u64) -> String {
    let access = if error_code & (1 << 4) != 0 {
        "instruction fetch"
    } else if error_code & (1 << 1) != 0 {
        "write"
    } else {
        "read"
    };
    let page = if error_code & 1 != 0 {
        "protection violation"
    } else {
        "page not present"
    };
    let mode = if error_code & (1 << 2) != 0 {
        "user mode"
    } else {
        "kernel mode"
    };
    let mut s = format!("{access}, {page}, {mode}");
    if error_code & (1 << 3) != 0 {
        s.push_str(", reserved bit set in a page-table entry");
    }
    if error_code & (1 << 5) != 0 {
        s.push_str(", protection key");
    }
    if error_code & (1 << 6) != 0 {
        s.push_str(", shadow stack");
    }
    s
}

fn origin_name(origin: u32) -> &'static str {
    match origin {
        o if o == FaultOrigin::App as u32 => "application",
        o if o == FaultOrigin::Runtime as u32 => "runtime (libos/shims)",
        o if o == FaultOrigin::Kernel as u32 => "kernel-min",
        _ => "unknown",
    }
}

/// The report block for a run ended by `signal` (with `fault` when one caused it).
pub fn describe(signal: u32, fault: Option<&FaultReport>) -> String {
    let mut out = String::new();
    let (name, what) = signal_name(signal);
    let who = match fault.map(|f| f.origin) {
        Some(o) if o == FaultOrigin::Runtime as u32 => "the runtime",
        Some(o) if o == FaultOrigin::Kernel as u32 => "kernel-min",
        _ => "application",
    };
    let _ = writeln!(out, "mote: {who} killed by {name} ({what})");
    let Some(f) = fault else { return out };
    let (mn, vname) = vector_name(f.vector);
    if f.vector == vector::PF {
        let _ = writeln!(
            out,
            "mote:   {vname} at address {:#x}: {}",
            f.addr,
            page_fault_cause(f.error_code)
        );
    } else {
        let _ = writeln!(out, "mote:   {vname} ({mn}) at {:#x}", f.addr);
    }
    let _ = writeln!(
        out,
        "mote:   origin: {}; vector {} ({mn}), error code {:#x}",
        origin_name(f.origin),
        f.vector,
        f.error_code
    );
    for row in REG_NAMES
        .iter()
        .zip(f.regs.iter())
        .collect::<Vec<_>>()
        .chunks(4)
    {
        let line: Vec<String> = row
            .iter()
            .map(|(n, v)| format!("{n:>6} {v:#018x}"))
            .collect();
        let _ = writeln!(out, "mote:  {}", line.join(" "));
    }
    out
}

/// Print the report for a killed run on stderr; returns the exit status.
/// The end of a run whose IKC area the application overwrote (`Event::Corrupted`):
/// the message names the area; the status is a segmentation fault's, as for a
/// program storing where natively nothing is mapped. Returns the status.
pub fn print_corrupted(what: &str) -> i32 {
    crate::say::write(format_args!(
        "mote: the application wrote over mote's {what}, in its address space where natively nothing \
         is mapped; the run cannot go on and ends as a segmentation fault (look for a stray store or \
         memset in the program)\n"
    ));
    killed_status(libc::SIGSEGV as u32)
}

///
/// `nested`: the run is a child of a program under mote (a forked copy, or the
/// `mote run` of a child's `execve`). Its parent sees the signal (`mote` dies by
/// it) and reports it as it would a native child's — Python's `Pool` ending its
/// workers with SIGTERM prints nothing natively — so the line is printed only
/// when mote itself failed (a fault of the runtime or kernel-min) or under
/// `MOTE_DEBUG=1`. A top-level run always prints it.
pub fn print_killed(signal: u32, fault: Option<&FaultReport>, nested: bool) -> i32 {
    if should_say(fault, nested, crate::say::debug()) {
        crate::say::write(format_args!("{}", describe(signal, fault)));
    }
    killed_status(signal)
}

/// Whether a run ended by a signal gets its `mote:` lines (see [`print_killed`]).
fn should_say(fault: Option<&FaultReport>, nested: bool, debug: bool) -> bool {
    let mote_failed = fault.is_some_and(|f| f.origin != FaultOrigin::App as u32);
    !nested || mote_failed || debug
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nested_run_leaves_the_report_to_its_parent_unless_mote_failed() {
        let mut f = FaultReport {
            origin: FaultOrigin::App as u32,
            ..Default::default()
        };
        assert!(should_say(None, false, false));
        assert!(should_say(Some(&f), false, false));
        assert!(!should_say(None, true, false));
        assert!(!should_say(Some(&f), true, false));
        assert!(should_say(None, true, true));
        f.origin = FaultOrigin::Runtime as u32;
        assert!(should_say(Some(&f), true, false));
        f.origin = FaultOrigin::Kernel as u32;
        assert!(should_say(Some(&f), true, false));
    }

    #[test]
    fn status_is_128_plus_signal() {
        assert_eq!(killed_status(11), 139);
        assert_eq!(killed_status(6), 134);
        assert_eq!(killed_status(8), 136);
    }

    #[test]
    fn page_fault_error_codes_are_spelled_out() {
        assert_eq!(page_fault_cause(0x4), "read, page not present, user mode");
        assert_eq!(page_fault_cause(0x6), "write, page not present, user mode");
        assert_eq!(
            page_fault_cause(0x7),
            "write, protection violation, user mode"
        );
        assert_eq!(
            page_fault_cause(0x15),
            "instruction fetch, protection violation, user mode"
        );
        assert_eq!(page_fault_cause(0x0), "read, page not present, kernel mode");
    }

    #[test]
    fn segfault_report_names_signal_address_and_registers() {
        let mut regs = [0u64; 18];
        regs[16] = 0x401234; // rip
        regs[7] = 0x7ffe_0000; // rsp
        let f = FaultReport {
            origin: FaultOrigin::App as u32,
            signal: 11,
            vector: vector::PF,
            error_code: 0x6,
            addr: 0x10,
            regs,
        };
        let r = describe(11, Some(&f));
        assert!(r.lines().all(|l| l.starts_with("mote:")), "{r}");
        assert!(r.starts_with("mote: application killed by SIGSEGV (segmentation fault)\n"));
        assert!(
            r.contains("page fault at address 0x10: write, page not present, user mode"),
            "{r}"
        );
        assert!(
            r.contains("origin: application; vector 14 (#PF), error code 0x6"),
            "{r}"
        );
        assert!(r.contains("rip 0x0000000000401234"), "{r}");
        assert!(r.contains("rsp 0x000000007ffe0000"), "{r}");
        assert!(r.contains("rflags"), "{r}");
        assert_eq!(r.lines().count(), 3 + 5);
    }

    #[test]
    fn other_faults_and_plain_signals() {
        let f = FaultReport {
            origin: FaultOrigin::Kernel as u32,
            signal: 4,
            vector: vector::UD,
            error_code: 0,
            addr: 0xffff_8000_0020_1000,
            regs: [0; 18],
        };
        let r = describe(4, Some(&f));
        assert!(
            r.starts_with("mote: kernel-min killed by SIGILL (illegal instruction)"),
            "{r}"
        );
        assert!(
            r.contains("invalid opcode (#UD) at 0xffff800000201000"),
            "{r}"
        );
        assert!(r.contains("origin: kernel-min"), "{r}");
        assert_eq!(
            describe(6, None),
            "mote: application killed by SIGABRT (aborted)\n"
        );
        assert_eq!(signal_name(7).0, "SIGBUS");
        assert_eq!(signal_name(8).0, "SIGFPE");
        assert_eq!(signal_name(5).0, "SIGTRAP");
        assert_eq!(signal_name(99).0, "signal 99");
    }

    /// Randomized: the fault report lies in guest memory the application can
    /// write, so any signal number and report (origin, vector, error code,
    /// registers) gives a block of `mote:` lines of printable text, and a
    /// status a shell can show (1..=255).
    #[test]
    fn fuzz_describe() {
        use mote_fuzz::{inputs, seed, Rng};
        let mut rng = Rng::new(seed(std::env::var("MOTE_FUZZ_SEED").ok().as_deref()));
        let n = inputs(std::env::var("MOTE_FUZZ_INPUTS").ok().as_deref());
        for _ in 0..n {
            let signal = if rng.one_in(2) {
                rng.below(70) as u32
            } else {
                rng.edgy() as u32
            };
            let f = FaultReport {
                origin: if rng.one_in(2) {
                    rng.below(4) as u32
                } else {
                    rng.edgy() as u32
                },
                signal: rng.edgy() as u32,
                vector: if rng.one_in(2) {
                    rng.below(40)
                } else {
                    rng.edgy()
                },
                error_code: rng.edgy(),
                addr: rng.edgy(),
                regs: core::array::from_fn(|_| rng.edgy()),
            };
            let text = describe(signal, if rng.one_in(4) { None } else { Some(&f) });
            for l in text.lines() {
                assert!(l.starts_with("mote: "), "{l:?}");
                assert!(!l.chars().any(|c| c.is_control()), "{l:?}");
            }
            let st = killed_status(signal);
            assert!((1..=255).contains(&st), "signal {signal}: status {st}");
        }
    }
}
