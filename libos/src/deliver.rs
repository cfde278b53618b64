//! Signal delivery decisions of the process: which signal a handler runs for next,
//! what a fault does, what an interrupted call does, and `rt_sigreturn`'s checks.
//! The runtime's entries (shims `sig.rs`) act on these: they own the registers,
//! the FP state and the exit path.

use mote_abi::layout::USER_END;
use mote_abi::signal::{VECTOR_DIRECT, VECTOR_FRAME, VECTOR_PATCHED};
use mote_abi::trap::TrapFrame;
use syscalls::Sysno;

use crate::platform::Platform;
use crate::process::Process;
use crate::sigframe::{self, FpFormat, Placement, Restored, Saved, SigInfo};
use crate::signal::{self, after_eintr, restartable, AfterEintr, Disposition, Restart, SigAction};
use crate::uapi::signal::{SA_ONSTACK, SA_SIGINFO, SS_AUTODISARM, SS_DISABLE};

/// A handler to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub sig: u32,
    pub info: SigInfo,
    pub action: SigAction,
}

/// A frame ready to be written: where, its bytes, and the handler's registers.
#[derive(Clone, Debug)]
pub struct Frame {
    pub place: Placement,
    pub bytes: [u8; sigframe::off::SIZE],
    /// The context the handler starts in.
    pub entry: TrapFrame,
}

/// Why a frame could not be built or taken back: the process gets SIGSEGV.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadFrame {
    /// The stack it would go on (or the frame `rt_sigreturn` reads) is not
    /// writable (readable) memory.
    Stack(u64),
    /// The frame names a return address or stack outside the application.
    Context(u64),
}

impl Process {
    /// The sender fields of a signal the application sends itself.
    pub fn sender_info<P: Platform>(&mut self, p: &P, sig: u32, code: i32) -> SigInfo {
        // Only a handler ever reads it: spare the forwarded getuid otherwise.
        let handled = matches!(self.signals.disposition(sig), Disposition::Handler(_));
        if !handled && !self.signals.blocked(sig) {
            return SigInfo::from_process(sig, code, self.pid, 0);
        }
        let uid = *self
            .signals
            .sender_uid
            .get_or_insert_with(|| p.forward(Sysno::getuid as u64, [0; 6]) as u32);
        SigInfo::from_process(sig, code, self.pid, uid)
    }

    /// Queue `sig` with `info` (for the thread when `thread`), and take the default
    /// actions that are due.
    pub fn raise_info<P: Platform>(&mut self, p: &P, sig: u32, info: SigInfo, thread: bool) {
        self.signals.queue(sig, info, thread);
        self.deliver_pending(p);
    }

    /// The next signal a handler runs for, removed from the pending sets, after
    /// taking the signals from outside and the default actions that are due
    /// (which may end the run).
    pub fn next_delivery<P: Platform>(&mut self, p: &P) -> Option<Delivery> {
        self.deliver_pending(p);
        let set = !self.signals.mask() & self.signals.handled_set();
        let (sig, info) = self.signals.take_from(set)?;
        Some(Delivery {
            sig,
            info,
            action: self.signals.action(sig),
        })
    }

    /// Whether a handler is due to run (after default actions were taken).
    pub fn handler_due<P: Platform>(&mut self, p: &P) -> Option<SigAction> {
        self.deliver_pending(p);
        let set = self.signals.pending() & !self.signals.mask() & self.signals.handled_set();
        (set != 0).then(|| self.signals.action(set.trailing_zeros() + 1))
    }

    /// Forwarded call `nr` came back with `EINTR` (the proxy interrupted it for a
    /// signal): restart it now, after the handler, or return `EINTR` (Linux's
    /// `-ERESTARTSYS` rules).
    pub fn on_eintr<P: Platform>(&mut self, p: &P, nr: u64, args: [u64; 6]) -> AfterEintr {
        let next = self.handler_due(p).map(|a| a.flags);
        let d = after_eintr(restartable(nr), next);
        if d == AfterEintr::RestartAfterHandler {
            self.signals.thread.restart = Some(Restart { nr, args });
            self.signals.publish();
        }
        d
    }

    /// A synchronous fault raises `sig`: the handler that takes it, or `None` when
    /// the run ends (no handler, or the signal is blocked or ignored: Linux's
    /// `force_sig_fault` then kills).
    pub fn fault_delivery(&mut self, sig: u32, info: SigInfo) -> Option<Delivery> {
        match self.signals.disposition(sig) {
            Disposition::Handler(_) if !self.signals.blocked(sig) => Some(Delivery {
                sig,
                info,
                action: self.signals.action(sig),
            }),
            _ => None,
        }
    }

    /// Build the frame for `d` over context `ctx` (the state the handler's return
    /// resumes), with FP images of format `fp`; `fault` gives trapno, err, cr2.
    /// Changes the mask and altstack state as delivery does.
    pub fn build_frame(
        &mut self,
        d: &Delivery,
        ctx: &TrapFrame,
        fp: &FpFormat,
        fault: (u64, u64, u64),
    ) -> Result<Frame, BadFrame> {
        let alt = self.signals.altstack();
        let place = sigframe::place(ctx.hdr.rsp, d.action.flags & SA_ONSTACK != 0, alt, fp);
        let len = place.end(fp) - place.frame;
        if place.frame >= USER_END || self.mm.check_access(place.frame, len, true).is_err() {
            return Err(BadFrame::Stack(place.frame));
        }
        let saved_mask = self.signals.begin_handler(d.sig, d.action);
        let saved = Saved {
            mask: saved_mask,
            altstack: alt,
            trapno: fault.0,
            err: fault.1,
            cr2: fault.2,
            xsave: fp.xfeatures.is_some(),
        };
        if place.on_altstack && alt.flags & SS_AUTODISARM != 0 {
            self.signals.thread.altstack = signal::AltStack::DISABLED;
        }
        let bytes = sigframe::encode(ctx, &saved, &d.info.0, d.action.restorer, &place);
        let mut entry = *ctx;
        entry.hdr.rip = d.action.handler;
        entry.hdr.rsp = place.frame;
        entry.rdi = d.sig as u64;
        entry.rsi = if d.action.flags & SA_SIGINFO != 0 {
            place.info()
        } else {
            0
        };
        entry.rdx = if d.action.flags & SA_SIGINFO != 0 {
            place.ucontext()
        } else {
            0
        };
        entry.rax = 0;
        // Linux clears DF, TF and RF for the handler.
        entry.hdr.rflags &= !(0x400 | 0x100 | 0x1_0000);
        Ok(Frame {
            place,
            bytes,
            entry,
        })
    }

    /// `rt_sigreturn` with the frame at `frame` (the caller's rsp - 8): read and
    /// check it, restore mask and alternate stack. The FP image is the runtime's.
    pub fn sigreturn<P: Platform>(
        &mut self,
        p: &P,
        frame: u64,
        cur_rflags: u64,
        fp: &FpFormat,
    ) -> Result<Restored, BadFrame> {
        let mut b = [0u8; sigframe::off::SIZE];
        self.read_user(p, frame, &mut b)
            .map_err(|_| BadFrame::Stack(frame))?;
        let r = sigframe::decode(&b, cur_rflags);
        let (rip, rsp) = (r.regs.hdr.rip, r.regs.hdr.rsp);
        // The runtime's two entries are where a restarted call resumes
        // (`restart_context`); the application may call them anyway.
        let entry = rip != 0
            && (rip == self.direct_entry || rip == self.frame_entry || rip == self.patcher.entry);
        if (rip >= USER_END && !entry) || rsp >= USER_END {
            return Err(BadFrame::Context(rip));
        }
        // The runtime's exit writes the return address just below the red zone.
        if self
            .mm
            .check_access(rsp.wrapping_sub(136), 8, true)
            .is_err()
        {
            return Err(BadFrame::Stack(rsp));
        }
        if r.fpstate != 0
            && (!r.fpstate.is_multiple_of(64)
                || self
                    .mm
                    .check_access(r.fpstate, fp.frame_size(), false)
                    .is_err())
        {
            return Err(BadFrame::Stack(r.fpstate));
        }
        self.signals.set_mask(r.mask);
        let alt = r.altstack;
        let mode = alt.flags & !SS_AUTODISARM;
        if mode == SS_DISABLE || alt.size == 0 {
            self.signals.thread.altstack = signal::AltStack::DISABLED;
        } else if self.signals.set_altstack(alt).is_err() {
            // Linux ignores what it cannot restore only if unchanged; keep ours.
        }
        Ok(r)
    }

    /// The call to restart after the handler, if the interrupted one asked.
    pub fn take_restart(&mut self) -> Option<Restart> {
        self.signals.thread.restart.take()
    }
}

/// The state that runs call `r` again, from the frame of the entry it came
/// through: the `syscall` instruction itself for a trapped call (as Linux rewinds
/// rip by 2); for the patched-site and direct entries (at `patched` and
/// `direct`), the entry's first instruction with the registers it was called with
/// — its return address is still on the stack, right below the post-return rsp;
/// for the frame entry (at `frame`), that entry with every register, its return
/// address 136 bytes below the `syscall`'s rsp (`AT_MOTE_SYSCALL_FRAME`).
pub fn restart_context(
    f: &TrapFrame,
    r: Restart,
    patched: u64,
    direct: u64,
    frame: u64,
) -> TrapFrame {
    let mut c = *f;
    let a = r.args;
    match f.hdr.vector {
        VECTOR_PATCHED => {
            c.hdr.rip = patched;
            c.hdr.rsp -= 8;
            (c.rax, c.rdi, c.rsi, c.rdx, c.r10, c.r8, c.r9) =
                (r.nr, a[0], a[1], a[2], a[3], a[4], a[5]);
        }
        VECTOR_DIRECT => {
            c.hdr.rip = direct;
            c.hdr.rsp -= 8;
            (c.rdi, c.rsi, c.rdx, c.rcx, c.r8, c.r9) = (r.nr, a[0], a[1], a[2], a[3], a[4]);
        }
        VECTOR_FRAME => {
            c.hdr.rip = frame;
            c.hdr.rsp -= 136;
            (c.rax, c.rdi, c.rsi, c.rdx, c.r10, c.r8, c.r9) =
                (r.nr, a[0], a[1], a[2], a[3], a[4], a[5]);
        }
        _ => {
            c.hdr.rip -= 2;
            c.rax = r.nr;
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakePlatform;
    use crate::signal::bit;
    use crate::uapi::signal::*;

    /// A process with a 64 KiB stack, and the stack's top.
    fn proc_with_stack(p: &FakePlatform) -> (Process, u64) {
        let (pr, stack) = crate::fake::process_with_memory(p, 64 << 10);
        (pr, stack + (64 << 10))
    }

    const FX: FpFormat = FpFormat {
        xfeatures: None,
        size: 512,
    };

    #[test]
    fn handler_mask_and_frame_then_sigreturn_restores() {
        let p = FakePlatform::new();
        let (mut pr, top) = proc_with_stack(&p);
        let act = SigAction {
            handler: 0x40_1000,
            flags: SA_SIGINFO | SA_RESTORER,
            restorer: 0x40_2000,
            mask: bit(SIGUSR2),
        };
        pr.signals.set_action(SIGUSR1, act).unwrap();
        pr.signals.set_mask(bit(SIGHUP));
        pr.raise(&p, SIGUSR1 as u64).unwrap();
        let d = pr.next_delivery(&p).unwrap();
        let mut ctx = TrapFrame {
            rax: 7,
            r12: 12,
            ..Default::default()
        };
        ctx.hdr.rip = 0x40_5000;
        ctx.hdr.rsp = top - 256;
        ctx.hdr.rflags = 0x246;
        let f = pr.build_frame(&d, &ctx, &FX, (0, 0, 0)).unwrap();
        assert_eq!(f.entry.hdr.rip, 0x40_1000);
        assert_eq!(f.entry.rdi, SIGUSR1 as u64);
        assert_eq!(f.entry.rsi, f.place.info());
        assert_eq!(f.entry.rdx, f.place.ucontext());
        assert_eq!((f.entry.hdr.rsp + 8) % 16, 0);
        // The handler runs with its sa_mask and the signal itself blocked.
        assert_eq!(pr.signals.mask(), bit(SIGHUP) | bit(SIGUSR1) | bit(SIGUSR2));
        p.write_mem(f.place.frame, &f.bytes);
        // The restorer's `syscall` sees rsp = frame + 8.
        let r = pr.sigreturn(&p, f.place.frame, 0x202, &FX).unwrap();
        assert_eq!(r.regs.rax, 7);
        assert_eq!(r.regs.r12, 12);
        assert_eq!(r.regs.hdr.rip, 0x40_5000);
        assert_eq!(r.regs.hdr.rsp, top - 256);
        assert_eq!(pr.signals.mask(), bit(SIGHUP));
    }

    #[test]
    fn sigreturn_to_a_restarted_direct_entry_call_is_allowed() {
        let p = FakePlatform::new();
        let (mut pr, top) = proc_with_stack(&p);
        pr.direct_entry = USER_END + 0x40_0000;
        pr.frame_entry = USER_END + 0x40_1000;
        let act = SigAction {
            handler: 0x40_1000,
            ..Default::default()
        };
        for (rip, ok) in [
            (pr.direct_entry, true),
            (pr.frame_entry, true),
            (USER_END + 0x50_0000, false),
        ] {
            pr.signals.set_action(SIGUSR1, act).unwrap();
            pr.raise(&p, SIGUSR1 as u64).unwrap();
            let d = pr.next_delivery(&p).unwrap();
            let mut ctx = TrapFrame::default();
            ctx.hdr.rip = rip;
            ctx.hdr.rsp = top - 512;
            let f = pr.build_frame(&d, &ctx, &FX, (0, 0, 0)).unwrap();
            p.write_mem(f.place.frame, &f.bytes);
            let r = pr.sigreturn(&p, f.place.frame, 0x202, &FX);
            assert_eq!(r.is_ok(), ok, "{rip:#x}");
        }
    }

    #[test]
    fn nodefer_and_resethand() {
        let p = FakePlatform::new();
        let (mut pr, top) = proc_with_stack(&p);
        let act = SigAction {
            handler: 0x40_1000,
            flags: SA_NODEFER | SA_RESETHAND,
            restorer: 0x40_2000,
            mask: 0,
        };
        pr.signals.set_action(SIGUSR1, act).unwrap();
        pr.raise(&p, SIGUSR1 as u64).unwrap();
        let d = pr.next_delivery(&p).unwrap();
        let mut ctx = TrapFrame::default();
        ctx.hdr.rsp = top - 8;
        let f = pr.build_frame(&d, &ctx, &FX, (0, 0, 0)).unwrap();
        assert_eq!(f.entry.rsi, 0, "no SA_SIGINFO: one argument");
        assert_eq!(pr.signals.mask(), 0);
        assert_eq!(pr.signals.action(SIGUSR1).handler, SIG_DFL);
    }

    #[test]
    fn frame_on_unmapped_stack_is_refused() {
        let p = FakePlatform::new();
        let (mut pr, _) = proc_with_stack(&p);
        let d = Delivery {
            sig: SIGSEGV,
            info: SigInfo::fault(SIGSEGV, 1, 0),
            action: SigAction {
                handler: 0x40_1000,
                ..Default::default()
            },
        };
        let mut ctx = TrapFrame::default();
        ctx.hdr.rsp = 0x5000_0000;
        assert!(matches!(
            pr.build_frame(&d, &ctx, &FX, (14, 6, 0)),
            Err(BadFrame::Stack(_))
        ));
        assert!(pr.sigreturn(&p, 0x5000_0000, 0x202, &FX).is_err());
    }

    #[test]
    fn faults_go_to_unblocked_handlers_only() {
        let p = FakePlatform::new();
        let (mut pr, _) = proc_with_stack(&p);
        let info = SigInfo::fault(SIGSEGV, sigframe::code::SEGV_MAPERR, 0x1234);
        assert!(pr.fault_delivery(SIGSEGV, info).is_none(), "default: die");
        let act = SigAction {
            handler: 0x40_1000,
            ..Default::default()
        };
        pr.signals.set_action(SIGSEGV, act).unwrap();
        assert_eq!(pr.fault_delivery(SIGSEGV, info).unwrap().info, info);
        pr.signals.set_mask(bit(SIGSEGV));
        assert!(pr.fault_delivery(SIGSEGV, info).is_none(), "blocked: die");
        let _ = &p;
    }

    #[test]
    fn restart_re_enters_the_way_the_call_came() {
        let r = Restart {
            nr: 0,
            args: [3, 0x1000, 1, 0, 0, 0],
        };
        let mut f = TrapFrame {
            rax: (-4i64) as u64,
            ..Default::default()
        };
        f.hdr.rip = 0x40_1002;
        f.hdr.rsp = 0x7fff_0000;
        f.hdr.vector = mote_abi::trap::VECTOR_SYSCALL;
        let t = restart_context(&f, r, 0xa, 0xb, 0xc);
        assert_eq!((t.hdr.rip, t.rax, t.hdr.rsp), (0x40_1000, 0, 0x7fff_0000));
        f.hdr.vector = VECTOR_PATCHED;
        let c = restart_context(&f, r, 0xa, 0xb, 0xc);
        assert_eq!(
            (c.hdr.rip, c.hdr.rsp, c.rax, c.rdi, c.rsi),
            (0xa, 0x7fff_0000 - 8, 0, 3, 0x1000)
        );
        f.hdr.vector = VECTOR_DIRECT;
        let d = restart_context(&f, r, 0xa, 0xb, 0xc);
        assert_eq!(
            (d.hdr.rip, d.rdi, d.rsi, d.rdx, d.rcx),
            (0xb, 0, 3, 0x1000, 1)
        );
        f.hdr.vector = VECTOR_FRAME;
        let e = restart_context(&f, r, 0xa, 0xb, 0xc);
        assert_eq!(
            (e.hdr.rip, e.hdr.rsp, e.rax, e.rdi, e.rsi, e.rdx),
            (0xc, 0x7fff_0000 - 136, 0, 3, 0x1000, 1)
        );
    }

    #[test]
    fn interrupted_calls_follow_sa_restart() {
        let p = FakePlatform::new();
        let (mut pr, _) = proc_with_stack(&p);
        // Nothing to deliver: restart invisibly.
        assert_eq!(
            pr.on_eintr(&p, Sysno::read as u64, [0; 6]),
            AfterEintr::RestartNow
        );
        let act = SigAction {
            handler: 0x40_1000,
            flags: SA_RESTART,
            ..Default::default()
        };
        pr.signals.set_action(SIGALRM, act).unwrap();
        pr.signals.make_pending(SIGALRM);
        assert_eq!(
            pr.on_eintr(&p, Sysno::read as u64, [3, 0, 0, 0, 0, 0]),
            AfterEintr::RestartAfterHandler
        );
        assert_eq!(pr.take_restart().unwrap().args[0], 3);
        // nanosleep and pause never restart after a handler.
        assert_eq!(
            pr.on_eintr(&p, Sysno::nanosleep as u64, [0; 6]),
            AfterEintr::Eintr
        );
        assert_eq!(
            pr.on_eintr(&p, Sysno::pause as u64, [0; 6]),
            AfterEintr::Eintr
        );
        // Without SA_RESTART, read returns EINTR.
        pr.signals
            .set_action(SIGALRM, SigAction { flags: 0, ..act })
            .unwrap();
        assert_eq!(
            pr.on_eintr(&p, Sysno::read as u64, [0; 6]),
            AfterEintr::Eintr
        );
    }
}
