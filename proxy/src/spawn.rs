//! Processes the application creates: a vfork child (`vfork`, `posix_spawn`,
//! `clone(CLONE_VM|CLONE_VFORK)`) that calls `execve` runs its new program in a
//! partition of its own — the forked proxy process execs `mote run` with this
//! run's options, so the program's children are mote applications too, with
//! their own cores and memory, and the parent's `wait4` sees their exit status.
//!
//! Allows `unsafe` for the exec itself: `execve` with raw C vectors built from
//! the application's (the child's signal mask and ignored signals are set by
//! `signals::hand_over_to_exec` first).
#![allow(unsafe_code)]

use std::ffi::{CString, OsString};
use std::os::unix::ffi::OsStrExt;
use std::sync::OnceLock;

/// `mote run` options children inherit (`--cores N --mem SIZE ...`).
static RUN_OPTIONS: OnceLock<Vec<OsString>> = OnceLock::new();

/// The host CPUs mote was started with (the forked proxy thread is pinned to the
/// Linux core; its child `mote run` gets the whole set back).
static HOST_CPUS: OnceLock<Vec<usize>> = OnceLock::new();

/// Remember this run's options and CPUs for the partitions of its children (call
/// from the main thread, before any pinning).
pub fn set_run_options(options: Vec<OsString>) {
    let _ = RUN_OPTIONS.set(options);
    let _ = HOST_CPUS.set(crate::cpus::host_cpus());
}

/// Longest string or vector read from the application (as Linux's limits).
const MAX_STRING: usize = 128 << 10;
const MAX_VECTOR: usize = 1 << 16;

/// The NUL-terminated string at application address `va`.
fn user_string(va: u64) -> Result<Vec<u8>, i32> {
    let mut out = Vec::new();
    let mut chunk = [0u8; 256];
    loop {
        let n = crate::mirror::read_user(va + out.len() as u64, &mut chunk)
            .map_err(|e| e.raw_os_error().unwrap_or(libc::EFAULT))?;
        if n == 0 {
            return Err(libc::EFAULT);
        }
        if let Some(end) = chunk[..n].iter().position(|&b| b == 0) {
            out.extend_from_slice(&chunk[..end]);
            return Ok(out);
        }
        out.extend_from_slice(&chunk[..n]);
        if out.len() > MAX_STRING {
            return Err(libc::E2BIG);
        }
    }
}

/// The strings of the NULL-terminated vector at `va` (0: none).
fn user_vector(va: u64) -> Result<Vec<Vec<u8>>, i32> {
    let mut out = Vec::new();
    if va == 0 {
        return Ok(out);
    }
    loop {
        let mut w = [0u8; 8];
        let n = crate::mirror::read_user(va + 8 * out.len() as u64, &mut w)
            .map_err(|e| e.raw_os_error().unwrap_or(libc::EFAULT))?;
        if n != 8 {
            return Err(libc::EFAULT);
        }
        let p = u64::from_ne_bytes(w);
        if p == 0 {
            return Ok(out);
        }
        out.push(user_string(p)?);
        if out.len() > MAX_VECTOR {
            return Err(libc::E2BIG);
        }
    }
}

fn cstring(b: &[u8]) -> Result<CString, i32> {
    CString::new(b).map_err(|_| libc::EINVAL)
}

/// `Op::SpawnExec` in a vfork child process: exec `mote run OPTIONS -- path
/// argv[1..]` with `envp`, the child's ignored signals `ignored` and its mask
/// `mask` (bit `sig - 1`). Returns `-errno` when the program cannot be run (as
/// `execve` would: ENOENT, EACCES, ...), or when the exec itself fails.
pub fn exec_in_partition(
    path: u64,
    argv: u64,
    envp: u64,
    ignored: u64,
    mask: u64,
    pending: u64,
) -> i64 {
    match build_and_exec(path, argv, envp, ignored, mask, pending) {
        Ok(never) => match never {},
        Err(e) => -i64::from(e),
    }
}

fn build_and_exec(
    path: u64,
    argv: u64,
    envp: u64,
    ignored: u64,
    mask: u64,
    pending: u64,
) -> Result<std::convert::Infallible, i32> {
    let path = user_string(path)?;
    let argv = user_vector(argv)?;
    let envp = user_vector(envp)?;
    if path.is_empty() {
        return Err(libc::ENOENT);
    }
    let c_path = cstring(&path)?;
    // What execve would say about the program itself.
    rustix::fs::access(c_path.as_c_str(), rustix::fs::Access::EXEC_OK)
        .map_err(|e| e.raw_os_error())?;
    let exe = std::env::current_exe().map_err(|e| e.raw_os_error().unwrap_or(libc::ENOENT))?;
    let mut args: Vec<Vec<u8>> = vec![exe.as_os_str().as_bytes().to_vec(), b"run".to_vec()];
    args.extend(
        RUN_OPTIONS
            .get()
            .into_iter()
            .flatten()
            .map(|o| o.as_bytes().to_vec()),
    );
    args.push(b"--".to_vec());
    args.push(path);
    args.extend(argv.into_iter().skip(1));
    let c_args = args
        .iter()
        .map(|a| cstring(a))
        .collect::<Result<Vec<_>, _>>()?;
    let mut c_env = envp
        .iter()
        .map(|a| cstring(a))
        .collect::<Result<Vec<_>, _>>()?;
    // This process's /dev/kvm descriptor, for the child's partition even when
    // the application can no longer open /dev/kvm (a privilege drop): `kvmfd`.
    if let Some(var) = crate::kvmfd::hand_over_to_exec() {
        c_env.push(cstring(var.as_bytes())?);
    }
    let mut arg_ptrs: Vec<*const libc::c_char> = c_args.iter().map(|a| a.as_ptr()).collect();
    arg_ptrs.push(std::ptr::null());
    let mut env_ptrs: Vec<*const libc::c_char> = c_env.iter().map(|a| a.as_ptr()).collect();
    env_ptrs.push(std::ptr::null());
    let c_exe = cstring(exe.as_os_str().as_bytes())?;
    // mote's CPUs (the offload thread is pinned).
    crate::cpus::allow_cpus(HOST_CPUS.get().map_or(&[], |c| c.as_slice()));
    // The child's signal state, not the proxy's (which blocks the routed
    // signals): the new `mote run` hands it to the program.
    crate::signals::hand_over_to_exec(ignored, mask, pending);
    // The new program is a process of its own, which outlives its parent as
    // natively (the forked proxy was to die with the run: `fork_child`).
    let _ = rustix::process::set_parent_process_death_signal(None);
    // The application's RLIMIT_AS and RLIMIT_NOFILE, which the new `mote run`
    // adopts as its program's.
    crate::rlimits::hand_over_to_exec();
    crate::note!(
        "mote: spawn: exec of `mote run` at monotonic {:.2} ms",
        crate::timeline::monotonic_ms()
    );
    // SAFETY: execve with NULL-terminated vectors of valid C strings that outlive
    // the call; on success nothing of this process returns.
    unsafe { libc::execve(c_exe.as_ptr(), arg_ptrs.as_ptr(), env_ptrs.as_ptr()) };
    Err(std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::ENOEXEC))
}
