//! One trace line, strace-like: `TID call(args) = result <route[ trapped] N ns>`.
//! Arguments of the common calls are decoded (descriptors, `AT_FDCWD`, open and
//! mmap flags, protections, clocks, futex operations, signals, modes in octal,
//! pointers in hex, strings the runtime read at the call); other calls show their
//! six argument registers in hex, since mote does not know their arity.

use std::fmt::Write as _;

use mote_abi::trace::{Entry, Route, Text, TextBytes};
use syscalls::Sysno;

/// How an argument is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arg {
    /// Signed decimal.
    Int,
    /// Unsigned decimal (sizes, counts).
    Size,
    /// A descriptor (`int`).
    Fd,
    /// A directory descriptor: `AT_FDCWD` by name.
    DirFd,
    /// An address, in hex (`NULL` for 0).
    Ptr,
    /// The string the runtime read (else the address).
    Str,
    /// `open` flags.
    OpenFlags,
    /// A mode, in octal.
    Mode,
    /// `mmap`/`mprotect` protection.
    Prot,
    /// `mmap` flags.
    MapFlags,
    /// A clock id.
    Clock,
    /// A futex operation.
    FutexOp,
    /// A signal number.
    Signal,
    /// An `fcntl` command.
    FcntlCmd,
    /// `lseek`'s whence.
    Whence,
    /// Flags in hex.
    Hex,
}

/// The arguments of the calls mote decodes, by number.
pub fn args_of(nr: u32) -> Option<&'static [Arg]> {
    use Arg::*;
    use Sysno as S;
    let s = Sysno::new(nr as usize)?;
    Some(match s {
        S::read | S::write => &[Fd, Str, Size],
        S::pread64 | S::pwrite64 => &[Fd, Str, Size, Int],
        S::readv | S::writev => &[Fd, Ptr, Int],
        S::open => &[Str, OpenFlags, Mode],
        S::openat => &[DirFd, Str, OpenFlags, Mode],
        S::creat => &[Str, Mode],
        S::close | S::fsync | S::fdatasync | S::dup => &[Fd],
        S::dup2 => &[Fd, Fd],
        S::dup3 => &[Fd, Fd, OpenFlags],
        S::stat | S::lstat => &[Str, Ptr],
        S::fstat => &[Fd, Ptr],
        S::newfstatat => &[DirFd, Str, Ptr, Hex],
        S::statx => &[DirFd, Str, Hex, Hex, Ptr],
        S::access => &[Str, Mode],
        S::faccessat | S::faccessat2 => &[DirFd, Str, Mode, Hex],
        S::lseek => &[Fd, Int, Whence],
        S::mmap => &[Ptr, Size, Prot, MapFlags, Fd, Hex],
        S::mprotect => &[Ptr, Size, Prot],
        S::munmap => &[Ptr, Size],
        S::madvise => &[Ptr, Size, Int],
        S::mremap => &[Ptr, Size, Size, Hex, Ptr],
        S::brk => &[Ptr],
        S::ioctl => &[Fd, Hex, Ptr],
        S::fcntl => &[Fd, FcntlCmd, Hex],
        S::pipe => &[Ptr],
        S::pipe2 => &[Ptr, OpenFlags],
        S::getpid | S::gettid | S::getppid | S::getuid | S::geteuid | S::getgid => &[],
        S::getegid | S::sched_yield | S::pause | S::vfork | S::fork | S::setsid => &[],
        S::exit | S::exit_group => &[Int],
        S::execve => &[Str, Ptr, Ptr],
        S::kill => &[Int, Signal],
        S::tgkill => &[Int, Int, Signal],
        S::tkill => &[Int, Signal],
        S::rt_sigaction => &[Signal, Ptr, Ptr, Size],
        S::rt_sigprocmask => &[Int, Ptr, Ptr, Size],
        S::clock_gettime | S::clock_getres => &[Clock, Ptr],
        S::clock_nanosleep => &[Clock, Hex, Ptr, Ptr],
        S::nanosleep => &[Ptr, Ptr],
        S::gettimeofday => &[Ptr, Ptr],
        S::futex => &[Ptr, FutexOp, Int, Ptr, Ptr, Int],
        S::getrandom => &[Ptr, Size, Hex],
        S::unlink | S::rmdir | S::chdir => &[Str],
        S::unlinkat => &[DirFd, Str, Hex],
        S::mkdir => &[Str, Mode],
        S::mkdirat => &[DirFd, Str, Mode],
        S::readlink => &[Str, Ptr, Size],
        S::readlinkat => &[DirFd, Str, Ptr, Size],
        S::rename => &[Str, Ptr],
        S::getcwd => &[Ptr, Size],
        S::arch_prctl => &[Hex, Ptr],
        S::set_tid_address => &[Ptr],
        S::set_robust_list => &[Ptr, Size],
        S::rseq => &[Ptr, Size, Hex, Hex],
        S::prlimit64 => &[Int, Int, Ptr, Ptr],
        S::getrusage => &[Int, Ptr],
        S::uname | S::sysinfo | S::times => &[Ptr],
        S::wait4 => &[Int, Ptr, Hex, Ptr],
        S::clone => &[Hex, Ptr, Ptr, Ptr, Hex],
        S::clone3 => &[Ptr, Size],
        S::sched_getaffinity | S::sched_setaffinity => &[Int, Size, Ptr],
        S::perf_event_open => &[Ptr, Int, Int, Fd, Hex],
        S::prctl => &[Int, Hex, Hex, Hex, Hex],
        S::socket => &[Int, Int, Int],
        S::connect | S::bind => &[Fd, Ptr, Size],
        S::poll => &[Ptr, Size, Int],
        S::ppoll => &[Ptr, Size, Ptr, Ptr, Size],
        S::getdents64 => &[Fd, Ptr, Size],
        _ => return None,
    })
}

/// `AT_FDCWD`.
const AT_FDCWD: i32 = -100;

fn flags(v: u64, names: &[(u64, &str)], rest_hex: bool) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut left = v;
    for &(bit, name) in names {
        if bit != 0 && left & bit == bit {
            out.push(name.into());
            left &= !bit;
        }
    }
    if left != 0 || out.is_empty() {
        out.push(if rest_hex || left > 9 {
            format!("{left:#x}")
        } else {
            left.to_string()
        });
    }
    out.join("|")
}

fn open_flags(v: u64) -> String {
    let acc = match v & 3 {
        0 => "O_RDONLY",
        1 => "O_WRONLY",
        2 => "O_RDWR",
        _ => "O_ACCMODE",
    };
    let rest = v & !3;
    let names: &[(u64, &str)] = &[
        (libc::O_CREAT as u64, "O_CREAT"),
        (libc::O_EXCL as u64, "O_EXCL"),
        (libc::O_NOCTTY as u64, "O_NOCTTY"),
        (libc::O_TRUNC as u64, "O_TRUNC"),
        (libc::O_APPEND as u64, "O_APPEND"),
        (libc::O_NONBLOCK as u64, "O_NONBLOCK"),
        (libc::O_DSYNC as u64, "O_DSYNC"),
        (libc::O_DIRECT as u64, "O_DIRECT"),
        (libc::O_LARGEFILE as u64, "O_LARGEFILE"),
        (libc::O_DIRECTORY as u64, "O_DIRECTORY"),
        (libc::O_NOFOLLOW as u64, "O_NOFOLLOW"),
        (libc::O_NOATIME as u64, "O_NOATIME"),
        (libc::O_CLOEXEC as u64, "O_CLOEXEC"),
        (libc::O_PATH as u64, "O_PATH"),
        (
            libc::O_TMPFILE as u64 & !(libc::O_DIRECTORY as u64),
            "O_TMPFILE",
        ),
    ];
    if rest == 0 {
        acc.into()
    } else {
        format!("{acc}|{}", flags(rest, names, true))
    }
}

fn prot(v: u64) -> String {
    if v == 0 {
        return "PROT_NONE".into();
    }
    flags(
        v,
        &[
            (libc::PROT_READ as u64, "PROT_READ"),
            (libc::PROT_WRITE as u64, "PROT_WRITE"),
            (libc::PROT_EXEC as u64, "PROT_EXEC"),
        ],
        true,
    )
}

fn map_flags(v: u64) -> String {
    let kind = match v & 0xf {
        0x1 => "MAP_SHARED",
        0x2 => "MAP_PRIVATE",
        0x3 => "MAP_SHARED_VALIDATE",
        _ => "",
    };
    let names: &[(u64, &str)] = &[
        (libc::MAP_FIXED as u64, "MAP_FIXED"),
        (libc::MAP_ANONYMOUS as u64, "MAP_ANONYMOUS"),
        (libc::MAP_GROWSDOWN as u64, "MAP_GROWSDOWN"),
        (libc::MAP_DENYWRITE as u64, "MAP_DENYWRITE"),
        (libc::MAP_NORESERVE as u64, "MAP_NORESERVE"),
        (libc::MAP_POPULATE as u64, "MAP_POPULATE"),
        (libc::MAP_STACK as u64, "MAP_STACK"),
        (libc::MAP_HUGETLB as u64, "MAP_HUGETLB"),
        (libc::MAP_FIXED_NOREPLACE as u64, "MAP_FIXED_NOREPLACE"),
    ];
    let rest = v & !0xf;
    match (kind, rest) {
        ("", _) => flags(v, names, true),
        (k, 0) => k.into(),
        (k, r) => format!("{k}|{}", flags(r, names, true)),
    }
}

fn clock(v: u64) -> String {
    const CLOCKS: [&str; 12] = [
        "CLOCK_REALTIME",
        "CLOCK_MONOTONIC",
        "CLOCK_PROCESS_CPUTIME_ID",
        "CLOCK_THREAD_CPUTIME_ID",
        "CLOCK_MONOTONIC_RAW",
        "CLOCK_REALTIME_COARSE",
        "CLOCK_MONOTONIC_COARSE",
        "CLOCK_BOOTTIME",
        "CLOCK_REALTIME_ALARM",
        "CLOCK_BOOTTIME_ALARM",
        "10",
        "CLOCK_TAI",
    ];
    match CLOCKS.get(v as usize) {
        Some(n) => (*n).into(),
        None => (v as i32).to_string(),
    }
}

fn futex_op(v: u64) -> String {
    const OPS: [&str; 14] = [
        "FUTEX_WAIT",
        "FUTEX_WAKE",
        "FUTEX_FD",
        "FUTEX_REQUEUE",
        "FUTEX_CMP_REQUEUE",
        "FUTEX_WAKE_OP",
        "FUTEX_LOCK_PI",
        "FUTEX_UNLOCK_PI",
        "FUTEX_TRYLOCK_PI",
        "FUTEX_WAIT_BITSET",
        "FUTEX_WAKE_BITSET",
        "FUTEX_WAIT_REQUEUE_PI",
        "FUTEX_CMP_REQUEUE_PI",
        "FUTEX_LOCK_PI2",
    ];
    let op = (v & 0x7f) as usize;
    let mut s = OPS.get(op).map_or_else(|| op.to_string(), |n| (*n).into());
    if v & 128 != 0 {
        s.push_str("_PRIVATE");
    }
    if v & 256 != 0 {
        s.push_str("|FUTEX_CLOCK_REALTIME");
    }
    s
}

fn signal(v: u64) -> String {
    match v as i32 {
        0 => "0".into(),
        n @ 1..=31 => mote_abi::signal::name(n as u32).unwrap_or("?").into(),
        n @ 32..=64 => format!("SIGRT_{}", n - 32),
        n => n.to_string(),
    }
}

fn fcntl_cmd(v: u64) -> String {
    let n = match v as i32 {
        libc::F_DUPFD => "F_DUPFD",
        libc::F_GETFD => "F_GETFD",
        libc::F_SETFD => "F_SETFD",
        libc::F_GETFL => "F_GETFL",
        libc::F_SETFL => "F_SETFL",
        libc::F_GETLK => "F_GETLK",
        libc::F_SETLK => "F_SETLK",
        libc::F_SETLKW => "F_SETLKW",
        libc::F_DUPFD_CLOEXEC => "F_DUPFD_CLOEXEC",
        n => return n.to_string(),
    };
    n.into()
}

/// A string as strace shows one: quoted, escaped, `...` after when cut.
pub fn quote(t: &TextBytes) -> String {
    let mut s = String::from("\"");
    for &b in t.as_slice() {
        match b {
            b'"' => s.push_str("\\\""),
            b'\\' => s.push_str("\\\\"),
            b'\n' => s.push_str("\\n"),
            b'\t' => s.push_str("\\t"),
            b'\r' => s.push_str("\\r"),
            0x20..=0x7e => s.push(b as char),
            _ => {
                let _ = write!(s, "\\x{b:02x}");
            }
        }
    }
    s.push('"');
    if t.cut {
        s.push_str("...");
    }
    s
}

fn ptr(v: u64) -> String {
    if v == 0 {
        "NULL".into()
    } else {
        format!("{v:#x}")
    }
}

fn arg(kind: Arg, v: u64, text: Option<&(usize, Text, TextBytes)>, i: usize) -> String {
    match kind {
        Arg::Int => (v as i64).to_string(),
        Arg::Size => v.to_string(),
        Arg::Fd => (v as i32).to_string(),
        Arg::DirFd if v as i32 == AT_FDCWD => "AT_FDCWD".into(),
        Arg::DirFd => (v as i32).to_string(),
        Arg::Ptr => ptr(v),
        Arg::Str => match text {
            Some((a, Text::CStr | Text::Buf, t)) if *a == i => quote(t),
            _ => ptr(v),
        },
        Arg::OpenFlags => open_flags(v),
        Arg::Mode => format!("{v:#o}"),
        Arg::Prot => prot(v),
        Arg::MapFlags => map_flags(v),
        Arg::Clock => clock(v),
        Arg::FutexOp => futex_op(v),
        Arg::Signal => signal(v),
        Arg::FcntlCmd => fcntl_cmd(v),
        Arg::Whence => match v {
            0 => "SEEK_SET".into(),
            1 => "SEEK_CUR".into(),
            2 => "SEEK_END".into(),
            n => n.to_string(),
        },
        Arg::Hex => format!("{v:#x}"),
    }
}

/// The call's name (`syscall_N` for a number Linux does not have).
pub fn name(nr: u32) -> String {
    match Sysno::new(nr as usize) {
        Some(s) => s.name().into(),
        None => format!("syscall_{nr}"),
    }
}

fn is_open(nr: u32) -> bool {
    nr == Sysno::open as u32 || nr == Sysno::openat as u32
}

fn creates(flags: u64) -> bool {
    flags & (libc::O_CREAT as u64 | libc::O_TMPFILE as u64) != 0
}

/// `call(args)`.
pub fn call(e: &Entry) -> String {
    let args: Vec<String> = match args_of(e.nr) {
        Some(kinds) => kinds
            .iter()
            .enumerate()
            // open's mode means something only with O_CREAT or O_TMPFILE.
            .filter(|&(i, &k)| k != Arg::Mode || !is_open(e.nr) || creates(e.args[i - 1]))
            .map(|(i, &k)| arg(k, e.args[i], e.text.as_ref(), i))
            .collect(),
        None => e.args.iter().map(|a| format!("{a:#x}")).collect(),
    };
    format!("{}({})", name(e.nr), args.join(", "))
}

/// The result: a number (an address in hex for the calls that return one), or
/// `-1 ENAME (description)` as strace says an error.
pub fn result(e: &Entry) -> String {
    if e.no_return {
        return "?".into();
    }
    let r = e.ret as i64;
    if (-4095..0).contains(&r) {
        let errno = syscalls::Errno::new(-r as i32);
        return match errno.name_and_description() {
            Some((n, d)) => format!("-1 {n} ({d})"),
            None => format!("-1 errno {}", -r),
        };
    }
    let addr = [Sysno::mmap, Sysno::mremap, Sysno::brk];
    if addr.iter().any(|&s| s as u32 == e.nr) {
        format!("{:#x}", e.ret)
    } else {
        r.to_string()
    }
}

/// The route as a trace line says it.
pub fn route(r: Route) -> &'static str {
    match r {
        Route::Local => "local",
        Route::Forwarded => "forwarded",
        Route::Refused => "refused",
    }
}

/// The whole line (no newline): `TID call(args) = result <route[ trapped] N ns>`.
pub fn line(e: &Entry, ns: u64) -> String {
    let trapped = if e.trapped { " trapped" } else { "" };
    if e.no_return {
        format!("{} {} = ? <{}{trapped}>", e.tid, call(e), route(e.route))
    } else {
        format!(
            "{} {} = {} <{}{trapped} {ns} ns>",
            e.tid,
            call(e),
            result(e),
            route(e.route)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(nr: Sysno, args: [u64; 6], ret: i64) -> Entry {
        Entry {
            tid: 42,
            nr: nr as u32,
            args,
            ret: ret as u64,
            ticks: 0,
            route: Route::Forwarded,
            trapped: false,
            no_return: false,
            text: None,
        }
    }

    #[test]
    fn openat_shows_dirfd_path_and_flags() {
        let mut e = entry(
            Sysno::openat,
            [
                (-100i64) as u64,
                0x1000,
                0o2 | 0o100 | 0o2000000,
                0o644,
                0,
                0,
            ],
            3,
        );
        e.text = Some((1, Text::CStr, TextBytes::new(b"data.txt", false)));
        assert_eq!(
            line(&e, 1234),
            "42 openat(AT_FDCWD, \"data.txt\", O_RDWR|O_CREAT|O_CLOEXEC, 0o644) = 3 <forwarded 1234 ns>"
        );
    }

    #[test]
    fn errors_are_named_as_strace_names_them() {
        let mut e = entry(Sysno::close, [99, 0, 0, 0, 0, 0], -9);
        e.trapped = true;
        assert_eq!(
            line(&e, 5),
            "42 close(99) = -1 EBADF (Bad file number) <forwarded trapped 5 ns>"
        );
    }

    #[test]
    fn mmap_shows_protection_flags_and_an_address() {
        let mut e = entry(
            Sysno::mmap,
            [0, 8192, 3, 0x22, u64::MAX, 0],
            0x7f00_0000_0000,
        );
        e.route = Route::Local;
        assert_eq!(
            line(&e, 80),
            "42 mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0x0) = 0x7f0000000000 <local 80 ns>"
        );
    }

    #[test]
    fn write_buffers_are_quoted_escaped_and_cut() {
        let mut e = entry(Sysno::write, [1, 0x1000, 300, 0, 0, 0], 300);
        let mut data = b"hi \"x\"\n\x01".to_vec();
        data.resize(300, b'a');
        e.text = Some((1, Text::Buf, TextBytes::new(&data, true)));
        let l = line(&e, 1);
        assert!(
            l.starts_with("42 write(1, \"hi \\\"x\\\"\\n\\x01aaa"),
            "{l}"
        );
        assert!(l.contains("aaa\"..., 300) = 300"), "{l}");
    }

    #[test]
    fn unreadable_strings_show_the_address() {
        let mut e = entry(Sysno::open, [0x10, 0, 0, 0, 0, 0], -14);
        e.text = Some((0, Text::Unreadable, TextBytes::new(&[], false)));
        assert_eq!(call(&e), "open(0x10, O_RDONLY)");
    }

    #[test]
    fn calls_that_do_not_return_and_unknown_calls() {
        let mut e = entry(Sysno::exit_group, [3, 0, 0, 0, 0, 0], 0);
        e.no_return = true;
        e.route = Route::Local;
        assert_eq!(line(&e, 0), "42 exit_group(3) = ? <local>");
        let e = entry(Sysno::getpid, [0; 6], 7);
        assert_eq!(call(&e), "getpid()");
        let mut e = entry(Sysno::read, [0; 6], 0);
        e.nr = 4000;
        assert_eq!(call(&e), "syscall_4000(0x0, 0x0, 0x0, 0x0, 0x0, 0x0)");
    }

    #[test]
    fn clocks_futex_ops_and_signals_have_names() {
        assert_eq!(clock(1), "CLOCK_MONOTONIC");
        assert_eq!(futex_op(0x80 | 1), "FUTEX_WAKE_PRIVATE");
        assert_eq!(signal(15), "SIGTERM");
        assert_eq!(signal(34), "SIGRT_2");
        assert_eq!(open_flags(0), "O_RDONLY");
        assert_eq!(prot(0), "PROT_NONE");
    }

    /// Randomized: any record the drain accepts (numbers, arguments, results,
    /// routes, strings of any bytes) formats without a panic into one line of
    /// printable text: no control byte or escape sequence from the application
    /// reaches the trace file or terminal.
    #[test]
    fn fuzz_line() {
        use mote_fuzz::{inputs, seed, Rng};
        let mut rng = Rng::new(seed(std::env::var("MOTE_FUZZ_SEED").ok().as_deref()));
        let n = inputs(std::env::var("MOTE_FUZZ_INPUTS").ok().as_deref());
        for _ in 0..n {
            let mut e = entry(Sysno::read, [0; 6], 0);
            e.nr = match rng.below(3) {
                0 => rng.below(460) as u32,
                1 => [0u32, 1, 2, 9, 10, 13, 14, 56, 57, 59, 62, 72, 202, 228, 257]
                    [rng.below(15) as usize],
                _ => rng.edgy() as u32,
            };
            e.args = core::array::from_fn(|_| rng.edgy());
            e.ret = rng.edgy();
            e.tid = rng.next_u64() as u32;
            e.route = [Route::Local, Route::Forwarded, Route::Refused][rng.below(3) as usize];
            e.trapped = rng.one_in(2);
            e.no_return = rng.one_in(8);
            if rng.one_in(2) {
                let mut b = [0u8; mote_abi::trace::STR_MAX];
                let len = rng.below(mote_abi::trace::STR_MAX as u64 + 1) as usize;
                rng.fill(&mut b[..len]);
                let kind = [Text::CStr, Text::Buf, Text::Unreadable][rng.below(3) as usize];
                e.text = Some((
                    rng.below(6) as usize,
                    kind,
                    TextBytes::new(&b[..len], rng.one_in(2)),
                ));
            }
            let l = line(&e, rng.next_u64());
            assert!(!l.chars().any(|c| c.is_control()), "{l:?}");
        }
    }
}
