//! Entry points at CPL3: `_start` (from kernel-min, once per core) and `mote_trap_entry`
//! (every Linux system call and exception of the application, handed up by
//! kernel-min with an `UpcallHeader` at the top of the upcall stack).
//!
//! The trap entry completes the header into a `mote_abi::trap::TrapFrame` by pushing
//! the general-purpose registers (`mote_abi::push_regs!`, as kernel-min's entry
//! does), calls `shim_trap`, then returns to the application without entering ring 0
//! again: registers come back from the frame (`pop_regs!`), `rcx` and `r11` take the
//! return address and flags (as `syscall` defines), and a `jmp rcx` on the
//! application's own stack finishes the call. Nothing is written below the
//! application's stack pointer, so its red zone is safe.
//!
//! Signals (see `sig`): when `shim_trap` returns non-zero, `mote_full_exit` restores
//! every register from the frame, rcx and r11 included. It writes the return address
//! 8 bytes below the target's red zone (dead stack by the ABI) and `ret 128` pops it
//! and steps back over the red zone. The patched-site and direct entries test the
//! signal page's `attention` word after the call (one load, the fast path) and only
//! when it is set build a `TrapFrame` of the state the call returns to and call
//! `direct_slow`, leaving through `mote_full_exit`.

use core::arch::global_asm;
use core::mem::offset_of;

use mote_abi::trap::{TrapFrame, UpcallHeader};

global_asm!(
    r#"
    .section .text.start, "ax"
    .global _start
_start:
    // rdi = the user view of BootInfo, rsi = this core.
    and rsp, -16
    call {main}
    ud2

    // Found by the proxy through the symbol table, not referenced from Rust: keep
    // the section through --gc-sections (R = SHF_GNU_RETAIN).
    .section .text.mote_entry, "axR"
    // `syscall` under kvm_pvm: kernel-min's syscall page jumped here at CPL3 with
    // rcx = return address, r11 = flags, rsp = the application's stack. Build the
    // upcall header kernel-min would have built, on the upcall stack.
    .global mote_syscall_entry
mote_syscall_entry:
    mov gs:[{scratch}], rsp
    mov rsp, gs:[{top}]
    push 0
    push qword ptr gs:[{scratch}]
    push r11
    push rcx
    push 0
    push 0
    push {vsys}
    // kvm_pvm emulates every instruction from `syscall` on until an `iretq` (or
    // `sysretq`) ends its kernel mode, so leave that mode at once: a same-privilege
    // iretq into mote_trap_entry, which then runs natively.
    mov r11, rsp
    push {uds}
    push r11
    push 2
    push {ucs}
    lea r11, [rip + mote_trap_entry]
    push r11
    iretq

    // A patched system-call site's stub called us (see libos `patch`): rax = the
    // number, arguments in the `syscall` registers, the return address points into
    // the stub, rsp is the application's below its red zone. `syscall` preserves
    // every register but rax, rcx and r11, and the flags.
    //
    // Fast path first: calls whose answer is a word the runtime keeps (getpid: the
    // process's; gettid: the running thread's, in this core's PerCpu) are answered
    // here in a few instructions. Only rcx is touched besides rax, and no flags:
    // `lea` and `jrcxz` leave them alone. The per-core call counter is a plain
    // load-add-store (only this core writes it). Work due at every call's return
    // (a pending signal) belongs before the fast path, tested the same
    // flag-free way: load the word into rcx, `jrcxz` past the slow-path jump.
    .global mote_patched_entry
mote_patched_entry:
    mov rcx, gs:[{calls}]
    lea rcx, [rcx + 1]
    mov gs:[{calls}], rcx
    // getpid and gettid at once, unless a signal wants attention (then the full
    // path delivers it on the way out) or every call must reach the dispatcher
    // (`full_path`, the next word: `--trace`); one 8-byte load tests both. No
    // flags change on this path.
    mov r11, {attn}
    mov rcx, qword ptr [r11]
    jrcxz 6f
    jmp 8f
6:  lea rcx, [rax - {nr_getpid}]
    jrcxz 4f
    lea rcx, [rax - {nr_gettid}]
    jrcxz 5f
    jmp 8f
4:  mov rax, [rip + {pid}]
    ret
5:  mov rax, gs:[{tid}]
    ret
    // Keep what a C call would clobber, switch to the upcall stack, call the
    // direct entry's handler.
8:  pushfq
    push rdi
    push rsi
    push rdx
    push r10
    push r8
    push r9
    mov r11, rsp
    mov rsp, gs:[{top}]
    push r11
    push r9
    mov r9, r8
    mov r8, r10
    mov rcx, rdx
    mov rdx, rsi
    mov rsi, rdi
    mov rdi, rax
    // A raw `syscall` site may run with DF set; Rust code needs it clear (the
    // flags are given back below).
    cld
    call {direct_patched}
    add rsp, 8
    pop rsp
    mov r11, {attn}
    cmp dword ptr [r11], 0
    jne 2f
    pop r9
    pop r8
    pop r10
    pop rdx
    pop rsi
    pop rdi
    // The application's flags back, r11 = them (as `syscall` leaves it). Not with
    // `popfq` when only the arithmetic flags differ from the live ones (the usual
    // case: Rust code changed them and nothing else): right after a forwarded
    // call's spin on the response, `popfq` costs ~70 ns here (measured), while
    // `sahf` (SF ZF AF PF CF) plus an `add` that sets OF as saved cost nothing.
    // Any other difference (DF, AC, TF, ...) takes `popfq`.
    pop r11
    pushfq
    pop rcx
    xor rcx, r11
    test ecx, {not_arith}
    jnz 1f
    mov rcx, rax
    mov eax, r11d
    shl eax, 8
    bt r11d, 11
    setc al
    add al, 0x7f
    sahf
    mov rax, rcx
    ret
1:  push r11
    popfq
    ret
    // Slow path: the frame of the state after `ret`, from the saved area
    // (r9 r8 r10 rdx rsi rdi rflags, return address) and the live registers.
2:  mov r11, rsp
    mov rsp, gs:[{top}]
    push 0
    lea rcx, [r11 + 64]
    push rcx
    push qword ptr [r11 + 48]
    push qword ptr [r11 + 56]
    push 0
    push 0
    push {vpatched}
    push rax
    push rbx
    push 0
    push qword ptr [r11 + 24]
    push qword ptr [r11 + 32]
    push qword ptr [r11 + 40]
    push rbp
    push qword ptr [r11 + 8]
    push qword ptr [r11]
    push qword ptr [r11 + 16]
    push 0
    push r12
    push r13
    push r14
    push r15
    mov rdi, rsp
    cld
    call {slow}
    jmp mote_full_exit

    // The direct entry (`AT_MOTE_SYSCALL`): a C-ABI call from the application,
    // `long mote_syscall(nr, a0, a1, a2, a3, a4, a5)`, served on the upcall stack
    // without any trap; getpid and gettid answered at once as above.
    .global mote_syscall
mote_syscall:
    inc qword ptr gs:[{calls}]
    mov r11, {attn}
    cmp qword ptr [r11], 0
    jne 9f
    cmp rdi, {nr_getpid}
    je 6f
    cmp rdi, {nr_gettid}
    je 7f
9:  push rbp
    mov rbp, rsp
    mov rax, [rbp + 16]
    mov rsp, gs:[{top}]
    push rbp
    push rax
    call {direct}
    mov rsp, rbp
    pop rbp
    mov r11, {attn}
    cmp dword ptr [r11], 0
    jne 3f
    ret
    // Slow path: the state after `ret`; caller-saved registers are dead (zero).
3:  mov r11, rsp
    mov rsp, gs:[{top}]
    push 0
    lea rcx, [r11 + 8]
    push rcx
    pushfq
    push qword ptr [r11]
    push 0
    push 0
    push {vdirect}
    push rax
    push rbx
    push 0
    push 0
    push 0
    push 0
    push rbp
    push 0
    push 0
    push 0
    push 0
    push r12
    push r13
    push r14
    push r15
    mov rdi, rsp
    cld
    call {slow}
    jmp mote_full_exit
6:  mov rax, [rip + {pid}]
    ret
7:  mov rax, gs:[{tid}]
    ret

    // The frame entry (`AT_MOTE_SYSCALL_FRAME`): a relinked site's stub called
    // us with every register as at its `syscall` (rax = the number), 128 bytes
    // below the site's stack pointer: [rsp] = where the stub continues, the
    // `syscall`'s rsp = rsp + 136. The calls that need every register (a child
    // starts from them: clone, clone3, fork, vfork; rt_sigreturn) take the trap
    // path from here, with the upcall header a trap would have had: rip = that
    // return address, rsp = the site's. No flags change before the header
    // holds them; rcx and r11 are `syscall`'s to clobber.
    .global mote_frame_entry
mote_frame_entry:
    mov r11, rsp
    mov rsp, gs:[{top}]
    push 0
    lea rcx, [r11 + 136]
    push rcx
    pushfq
    push qword ptr [r11]
    push 0
    push 0
    push {vframe}
    mov rcx, [r11]
    mov r11, [rsp + {rflags}]
    inc qword ptr gs:[{calls}]
    jmp mote_trap_entry

    .global mote_trap_entry
mote_trap_entry:
    "#,
    mote_abi::push_regs!(),
    r#"
    mov rdi, rsp
    cld
    call {trap}
    test rax, rax
    jnz mote_full_exit
    // Also where a new thread starts (threads::mote_thread_start).
    .global mote_trap_exit
mote_trap_exit:
    "#,
    mote_abi::pop_regs!(),
    r#"
    mov rcx, [rsp + {rip}]
    mov r11, [rsp + {rflags}]
    push r11
    popfq
    mov rsp, [rsp + {rsp}]
    jmp rcx

    // Every register from the TrapFrame at rsp (see the module comment).
mote_full_exit:
    mov rax, [rsp + {f_rsp}]
    sub rax, 136
    mov rcx, [rsp + {f_rip}]
    mov [rax], rcx
    mov [rsp + {f_cr2}], rax
    "#,
    mote_abi::pop_regs!(),
    r#"
    push qword ptr [rsp + {rflags}]
    popfq
    mov rsp, [rsp + {cr2}]
    ret 128
"#,
    main = sym crate::partition::runtime_main,
    scratch = const crate::rt::threads::PERCPU_SCRATCH,
    top = const crate::rt::threads::PERCPU_UPCALL_TOP,
    vsys = const mote_abi::trap::VECTOR_SYSCALL,
    uds = const 0x1b,
    ucs = const 0x23,
    trap = sym crate::partition::shim_trap,
    direct = sym crate::partition::direct_syscall,
    direct_patched = sym crate::partition::patched_syscall,
    calls = const crate::rt::threads::PERCPU_CALLS,
    tid = const crate::rt::threads::PERCPU_TID,
    pid = sym crate::rt::threads::PID,
    nr_getpid = const syscalls::Sysno::getpid as u64,
    nr_gettid = const syscalls::Sysno::gettid as u64,
    rip = const offset_of!(UpcallHeader, rip),
    rflags = const offset_of!(UpcallHeader, rflags),
    rsp = const offset_of!(UpcallHeader, rsp),
    cr2 = const offset_of!(UpcallHeader, cr2),
    f_rsp = const offset_of!(TrapFrame, hdr) + offset_of!(UpcallHeader, rsp),
    f_rip = const offset_of!(TrapFrame, hdr) + offset_of!(UpcallHeader, rip),
    f_cr2 = const offset_of!(TrapFrame, hdr) + offset_of!(UpcallHeader, cr2),
    attn = const mote_abi::signal::SIGNAL_PAGE_VA + mote_abi::signal::ATTENTION_OFFSET as u64,
    vpatched = const mote_abi::signal::VECTOR_PATCHED,
    vdirect = const mote_abi::signal::VECTOR_DIRECT,
    vframe = const mote_abi::signal::VECTOR_FRAME,
    slow = sym crate::partition::direct_slow,
    not_arith = const !ARITH_FLAGS,
);

/// RFLAGS bits `sahf` (CF PF AF ZF SF) and an `add` (OF) can set: the patched
/// entry gives these back without `popfq` (Intel SDM vol. 1, 3.4.3).
const ARITH_FLAGS: u32 = 0x1 | 0x4 | 0x10 | 0x40 | 0x80 | 0x800;

static_assertions::const_assert_eq!(offset_of!(TrapFrame, hdr), 15 * 8);
// The fast paths test `attention` and `full_path` with one 8-byte load.
static_assertions::const_assert_eq!(
    offset_of!(mote_abi::signal::SignalPage, full_path),
    offset_of!(mote_abi::signal::SignalPage, attention) + 4
);
static_assertions::const_assert_eq!(core::mem::size_of::<UpcallHeader>(), 7 * 8);

unsafe extern "C" {
    static mote_syscall: u8;
    static mote_patched_entry: u8;
    static mote_frame_entry: u8;
}

/// Address of the entry patched system-call sites call.
pub fn patched_entry_addr() -> u64 {
    core::ptr::addr_of!(mote_patched_entry) as u64
}

/// Address of the direct system-call entry (`AT_MOTE_SYSCALL`).
pub fn direct_entry_addr() -> u64 {
    core::ptr::addr_of!(mote_syscall) as u64
}

/// Address of the frame entry (`AT_MOTE_SYSCALL_FRAME`).
pub fn frame_entry_addr() -> u64 {
    core::ptr::addr_of!(mote_frame_entry) as u64
}

/// Start the application: its stack, its entry point, a clean register file
/// (`rdx = 0`: no finaliser from a dynamic linker).
pub fn enter_app(rip: u64, rsp: u64) -> ! {
    // SAFETY: rip/rsp come from the ELF loader (mapped entry, built stack); this
    // never returns and leaves nothing of the runtime's stack in use.
    unsafe {
        core::arch::asm!(
            "mov rsp, {rsp}",
            "xor eax, eax", "xor ebx, ebx", "xor ecx, ecx", "xor edx, edx", "xor esi, esi",
            "xor edi, edi", "xor ebp, ebp", "xor r8d, r8d", "xor r9d, r9d", "xor r10d, r10d",
            "xor r11d, r11d", "xor r12d, r12d", "xor r13d, r13d", "xor r14d, r14d",
            "jmp r15",
            rsp = in(reg) rsp, in("r15") rip,
            options(noreturn)
        )
    }
}
