//! The start-up and teardown timeline of one `mote run` under `MOTE_DEBUG=1`:
//! each phase marks the time since `main` began, and the run prints them on one
//! `mote:` line at its end (`mote: timeline (ms from main): args 0.1, ...`). Off
//! (one relaxed load per mark) without `MOTE_DEBUG`. A leaf module.

use std::sync::Mutex;
use std::time::Instant;

/// The phases marked so far, with their times.
static MARKS: Mutex<Vec<(&'static str, Instant)>> = Mutex::new(Vec::new());

/// When `main` began (the first mark's time when `begin` was not called).
static T0: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

/// `CLOCK_MONOTONIC` at `main`'s start, in milliseconds: the same clock across
/// processes, so a spawned run's timeline lines up with its parent's notes.
static T0_MONOTONIC: std::sync::OnceLock<f64> = std::sync::OnceLock::new();

/// Start the timeline: call first thing in `main`.
pub fn begin() {
    let _ = T0.set(Instant::now());
    let _ = T0_MONOTONIC.set(monotonic_ms());
}

/// `CLOCK_MONOTONIC` now, in milliseconds (for notes that cross processes:
/// a vfork child's proxy copy, the `mote run` it execs).
pub fn monotonic_ms() -> f64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as f64 * 1e3 + t.tv_nsec as f64 / 1e6
}

/// Mark the end of phase `what` (only under `MOTE_DEBUG=1`).
pub fn mark(what: &'static str) {
    if !crate::say::debug() {
        return;
    }
    let now = Instant::now();
    MARKS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((what, now));
}

/// Mark `what` unless it is marked already (a phase another thread sees
/// the end of: the first request of the application's main thread).
pub fn mark_once(what: &'static str) {
    if !crate::say::debug() {
        return;
    }
    let now = Instant::now();
    let mut marks = MARKS.lock().unwrap_or_else(|p| p.into_inner());
    if !marks.iter().any(|m| m.0 == what) {
        marks.push((what, now));
    }
}

/// The marks so far as one line, in milliseconds from `begin`.
pub fn line() -> String {
    let marks = MARKS.lock().unwrap_or_else(|p| p.into_inner());
    let t0 = T0.get().copied().or(marks.first().map(|m| m.1));
    let Some(t0) = t0 else {
        return "timeline (ms from main): nothing marked".into();
    };
    let parts: Vec<String> = marks
        .iter()
        .map(|(what, t)| format!("{what} {:.2}", t.duration_since(t0).as_secs_f64() * 1e3))
        .collect();
    let at = T0_MONOTONIC
        .get()
        .map_or(String::new(), |t| format!(" at monotonic {t:.2} ms"));
    format!("timeline (ms from main{at}): {}", parts.join(", "))
}

/// Print the timeline under `MOTE_DEBUG=1`.
pub fn print() {
    if crate::say::debug() {
        crate::say!("mote: {}", line());
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_line_names_each_mark_in_order() {
        super::begin();
        // `mark` records only under MOTE_DEBUG; push directly as it would.
        let now = std::time::Instant::now();
        super::MARKS.lock().unwrap().push(("first", now));
        super::MARKS.lock().unwrap().push(("second", now));
        let l = super::line();
        let a = l.find("first ").expect("first mark");
        let b = l.find("second ").expect("second mark");
        assert!(a < b, "{l}");
        assert!(l.starts_with("timeline (ms from main at monotonic "), "{l}");
    }
}
