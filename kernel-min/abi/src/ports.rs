//! I/O ports the partition uses to leave the guest. Each `out` is a VM exit
//! (5–27 µs on software KVM), so they are used only off the hot path: debug
//! output, fatal kernel faults, and waking a sleeping peer of an IKC slot.

/// Debug console: one byte per `out` (kernel-min's `kprint!`).
pub const DEBUG: u16 = 0xe9;
/// Kernel-min hit a fault it cannot hand to libos; the report is in the core page.
/// Data: the core index.
pub const FATAL: u16 = 0x4d0;
/// The offload thread of a thread slot sleeps; wake it. Data: the slot index.
pub const NOTIFY: u16 = 0x4d1;
/// The LWK core has nothing to do until its `CorePage::wake_seq` differs from
/// `data`; the vCPU thread sleeps until then.
pub const WAIT: u16 = 0x4d2;
/// Wake core `data`, which sleeps on its `wake_seq` (the partition's only
/// inter-processor wake-up, used only when the target core sleeps).
pub const WAKE_CORE: u16 = 0x4d3;
/// Start or stop the time-sharing timer of core `data & TICK_CORE` (`data &
/// TICK_ON`: start it, periodic at `BootInfo::time_slice_ns`). Sent only when a
/// core's need changes: it gets a second thread that wants to run, or loses it
/// (`mote_libos::sched::Threads::wants_tick`).
pub const TICK: u16 = 0x4d4;
/// `TICK`'s data: the core.
pub const TICK_CORE: u32 = 0xff;
/// `TICK`'s data: start (set) or stop (clear) the timer.
pub const TICK_ON: u32 = 1 << 31;
