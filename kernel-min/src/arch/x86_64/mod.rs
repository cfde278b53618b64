//! x86-64: descriptor tables, trap and `syscall` entry, MSRs, port I/O.
//!
//! Both entry paths end in `trap_common`, which saves the general-purpose registers
//! as a `KFrame` (`mote_abi::push_regs!`, as the shim's entry does) and calls
//! `trap::handle`:
//! * exceptions: one 16-byte stub per vector pushes (a dummy error code and) the
//!   vector;
//! * `syscall`: LSTAR points at `syscall_entry`, on a page of its own that is also
//!   mapped read-only for ring 3 at `layout::SYSCALL_PAGE_VA`. Its first instruction
//!   (`verw` of a ring-0 selector) tells where the CPU is:
//!   - ring 0 (hardware virtualization, bare metal): `syscall_hw` switches to the
//!     kernel stack and builds the frame with vector `VECTOR_SYSCALL`;
//!   - ring 3 (kvm_pvm, where `syscall` does not change privilege but starts pvm's
//!     emulated kernel mode): an application's call jumps straight to the shim's
//!     ring-3 entry, which leaves that mode with one `iretq` — no exception, no
//!     kernel-min code — and a kernel call from the runtime's text executes
//!     `swapgs` at `sp_kcall`, whose #GP `trap::handle` serves.

use core::arch::{asm, global_asm};
use core::mem::offset_of;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use x86_64::registers::model_specific::{
    Efer, EferFlags, GsBase, KernelGsBase, LStar, SFMask, Star,
};
use x86_64::registers::rflags::RFlags;
use x86_64::registers::segmentation::{Segment, CS, DS, ES, SS};
use x86_64::structures::gdt::{Descriptor, Entry, GlobalDescriptorTable, SegmentSelector};
use x86_64::structures::idt::InterruptDescriptorTable;
use x86_64::structures::paging::PageTableFlags;
use x86_64::structures::tss::TaskStateSegment;
use x86_64::VirtAddr;

use mote_abi::layout::{DIRECT_MAP_BASE, MAX_CORES, SYSCALL_PAGE_VA};
use mote_abi::trap::Frame;

/// What the stack holds under `trap_common`'s registers: the vector and error code
/// the entry stub pushed, then the CPU's interrupt frame (Intel SDM vol. 3A §6.14.2).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct KHeader {
    pub vector: u64,
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

/// Registers saved by `trap_common` (`mote_abi::push_regs!`), over a `KHeader`.
pub type KFrame = Frame<KHeader>;

static_assertions::const_assert_eq!(core::mem::size_of::<KFrame>(), 176);
static_assertions::const_assert_eq!(offset_of!(KFrame, hdr), 120);
static_assertions::const_assert_eq!(offset_of!(KHeader, rip), 16);

/// Selectors (order of `GDT`): sysret needs user data right before user code.
pub const KERNEL_CS: u16 = 0x08;
pub const KERNEL_DS: u16 = 0x10;
pub const USER_DS: u16 = 0x18 | 3;
pub const USER_CS: u16 = 0x20 | 3;

/// Per-core data reached through `KernelGsBase` on the hardware `syscall` path.
#[repr(C)]
struct PerCore {
    kstack_top: u64,
    user_rsp: u64,
}

struct CoreTables {
    gdt: GlobalDescriptorTable<8>,
    selectors: [SegmentSelector; 5],
}

/// Kernel stack of each core for traps from ring 3 (TSS `rsp0`); the core a trap
/// arrived on is known from the stack it runs on (`current_core`).
const TRAP_STACK_SIZE: u64 = 32 << 10;

static TSS: [spin::Once<TaskStateSegment>; MAX_CORES] = [const { spin::Once::new() }; MAX_CORES];
static PERCORE: [spin::Once<PerCore>; MAX_CORES] = [const { spin::Once::new() }; MAX_CORES];
static TABLES: [spin::Once<CoreTables>; MAX_CORES] = [const { spin::Once::new() }; MAX_CORES];
static IDT: spin::Once<InterruptDescriptorTable> = spin::Once::new();
/// Core 0 finished what all cores share (page-table frames, the syscall page).
static SHARED_READY: AtomicBool = AtomicBool::new(false);

/// Top of `core`'s trap stack.
fn trap_top(core: usize) -> u64 {
    core::ptr::addr_of!(trap_stacks_top) as u64 - core as u64 * TRAP_STACK_SIZE
}

/// The core this code runs on, from the trap stack it runs on.
pub fn current_core() -> usize {
    let sp: u64;
    // SAFETY: reads rsp.
    unsafe { asm!("mov {}, rsp", out(reg) sp, options(nomem, nostack, preserves_flags)) };
    let top = core::ptr::addr_of!(trap_stacks_top) as u64;
    (top.saturating_sub(sp) / TRAP_STACK_SIZE) as usize
}

/// Bring up `core`: descriptor tables, syscall MSRs; core 0 also the page-table
/// frames and the syscall page, which the others wait for.
pub fn init(core: usize) {
    assert!(core < MAX_CORES, "core {core} beyond MAX_CORES");
    let trap_top = trap_top(core);
    let tss = TSS[core].call_once(|| {
        let mut tss = TaskStateSegment::new();
        tss.privilege_stack_table[0] = VirtAddr::new(trap_top);
        tss.interrupt_stack_table[0] = VirtAddr::new(core::ptr::addr_of!(df_stack_top) as u64);
        tss
    });
    let percore = PERCORE[core].call_once(|| PerCore {
        kstack_top: trap_top,
        user_rsp: 0,
    });
    let idt = IDT.call_once(|| {
        let mut idt = InterruptDescriptorTable::new();
        // SAFETY (for every entry below): each stub is a valid entry point that
        // ends in trap_common, which handles every vector; #DF runs on its own IST
        // stack. Reserved vectors stay not-present (they would arrive as #NP/#GP).
        macro_rules! set {
            ($($field:ident = $v:expr),* $(,)?) => {$(
                // SAFETY: see above.
                unsafe { idt.$field.set_handler_addr(VirtAddr::new(stub_addr($v))) };
            )*};
        }
        set!(
            divide_error = 0,
            debug = 1,
            non_maskable_interrupt = 2,
            breakpoint = 3,
            overflow = 4,
            bound_range_exceeded = 5,
            invalid_opcode = 6,
            device_not_available = 7,
            invalid_tss = 10,
            segment_not_present = 11,
            stack_segment_fault = 12,
            page_fault = 14,
            x87_floating_point = 16,
            alignment_check = 17,
            machine_check = 18,
            simd_floating_point = 19,
            virtualization = 20,
            cp_protection_exception = 21,
            hv_injection_exception = 28,
            vmm_communication_exception = 29,
            security_exception = 30,
        );
        // SAFETY: gp_entry serves the kernel calls it recognises and otherwise
        // continues as the vector-13 stub does (into trap_common).
        unsafe {
            idt.general_protection_fault
                .set_handler_addr(VirtAddr::new(core::ptr::addr_of!(gp_entry) as u64))
        };
        // SAFETY: see above.
        unsafe {
            idt.double_fault
                .set_handler_addr(VirtAddr::new(stub_addr(8)))
                .set_stack_index(0)
        };
        idt
    });
    let t = TABLES[core].call_once(|| {
        let mut gdt = GlobalDescriptorTable::new();
        let tss_desc = Descriptor::tss_segment(tss);
        let selectors = [
            gdt.append(Descriptor::kernel_code_segment()),
            gdt.append(Descriptor::kernel_data_segment()),
            gdt.append(Descriptor::user_data_segment()),
            gdt.append(Descriptor::user_code_segment()),
            gdt.append(tss_desc),
        ];
        CoreTables { gdt, selectors }
    });
    let [kcs, kds, uds, ucs, tsss] = t.selectors;
    debug_assert_eq!(
        (kcs.0, kds.0, uds.0, ucs.0),
        (KERNEL_CS, KERNEL_DS, USER_DS, USER_CS)
    );
    // A fork's copy boots on the parent's GDT, where `ltr` marked the TSS busy
    // (which `ltr` refuses): make it available again (type 9, bit 41 clear).
    let tss_entry = &t.gdt.entries()[usize::from(tsss.index())];
    // SAFETY: `Entry` is `repr(transparent)` over `AtomicU64` (the `instructions`
    // feature), as the CPU writes this bit itself.
    let tss_entry = unsafe { &*(tss_entry as *const Entry).cast::<AtomicU64>() };
    tss_entry.fetch_and(!(1 << 41), Ordering::Relaxed);
    t.gdt.load();
    // SAFETY: the selectors refer to the descriptors just loaded.
    unsafe {
        CS::set_reg(kcs);
        SS::set_reg(kds);
        DS::set_reg(SegmentSelector(0));
        ES::set_reg(SegmentSelector(0));
        x86_64::instructions::tables::load_tss(tsss);
    }
    idt.load();
    // SAFETY: MSR writes that point syscall at our entry with our selectors;
    // KernelGsBase is only used by syscall_entry.
    unsafe {
        Efer::update(|f| {
            f.insert(EferFlags::SYSTEM_CALL_EXTENSIONS | EferFlags::NO_EXECUTE_ENABLE)
        });
        Star::write(
            SegmentSelector(USER_CS),
            SegmentSelector(USER_DS),
            SegmentSelector(KERNEL_CS),
            SegmentSelector(KERNEL_DS),
        )
        .expect("star selectors");
        LStar::write(VirtAddr::new(alias(core::ptr::addr_of!(syscall_entry))));
        SFMask::write(
            RFlags::INTERRUPT_FLAG
                | RFlags::TRAP_FLAG
                | RFlags::DIRECTION_FLAG
                | RFlags::ALIGNMENT_CHECK
                | RFlags::NESTED_TASK
                | RFlags::IOPL_HIGH
                | RFlags::IOPL_LOW,
        );
        KernelGsBase::write(VirtAddr::new(percore as *const PerCore as u64));
        GsBase::write(VirtAddr::new(0));
    }
    // A fork's copy boots on the parent's memory, where this is done (and the
    // page tables are in use): only the CPU's own state above is set again.
    if core == 0 && !SHARED_READY.load(Ordering::Acquire) {
        let b = crate::boot();
        crate::paging::init(b.pt_pool_next);
        init_syscall_page(b);
        SHARED_READY.store(true, Ordering::Release);
    } else {
        while !SHARED_READY.load(Ordering::Acquire) {
            core::hint::spin_loop();
        }
    }
}

unsafe extern "C" {
    static vec_stub_0: u8;
    static gp_entry: u8;
    static kcall_alias: u64;
    static syscall_page: u8;
    static syscall_entry: u8;
    static syscall_hw: u8;
    static sp_kcall: u8;
    static sp_hw_entry: u64;
    static sp_rt_start: u64;
    static sp_rt_end: u64;
    static sp_shim_entry: u64;
    static trap_stacks_top: u8;
    static df_stack_top: u8;
}

fn stub_addr(v: u8) -> u64 {
    core::ptr::addr_of!(vec_stub_0) as u64 + 16 * v as u64
}

/// Ring-3 alias of a symbol on the syscall page.
fn alias(sym: *const u8) -> u64 {
    SYSCALL_PAGE_VA + (sym as u64 - core::ptr::addr_of!(syscall_page) as u64)
}

/// Where a kernel call from the runtime faults under kvm_pvm (ring-3 alias).
pub fn pvm_kcall_addr() -> u64 {
    alias(core::ptr::addr_of!(sp_kcall))
}

/// Fill the syscall page's data words and map its ring-3 alias.
fn init_syscall_page(b: &mote_abi::boot::BootInfo) {
    for (word, v) in [
        (
            core::ptr::addr_of!(sp_hw_entry),
            core::ptr::addr_of!(syscall_hw) as u64,
        ),
        (core::ptr::addr_of!(sp_rt_start), b.runtime_text_start),
        (core::ptr::addr_of!(sp_rt_end), b.runtime_text_end),
        (core::ptr::addr_of!(sp_shim_entry), b.runtime_syscall_entry),
        (core::ptr::addr_of!(kcall_alias), pvm_kcall_addr()),
    ] {
        // SAFETY: the data words are kernel memory reached through the direct map
        // (writable for ring 0); user mode sees them only through the read-only alias.
        unsafe { (word as *mut u64).write_volatile(v) };
    }
    let page = core::ptr::addr_of!(syscall_page) as u64;
    let mut t = crate::paging::TABLES.lock();
    mote_abi::paging::PageTables::new(&mut *t, b.pml4_gpa)
        .map(
            SYSCALL_PAGE_VA,
            page - DIRECT_MAP_BASE,
            4096,
            PageTableFlags::PRESENT | PageTableFlags::USER_ACCESSIBLE,
            false,
        )
        .expect("map the syscall page alias");
}

/// Drop to ring 3 at `rip` with stack `rsp`, `rdi = arg`, `rsi = core`; interrupts
/// stay off.
pub fn enter_user(rip: u64, rsp: u64, arg: u64, core: usize) -> ! {
    // SAFETY: builds an iretq frame to user code the boot mapped; never returns.
    unsafe {
        asm!(
            "push {ss}", "push {rsp}", "push 0x2", "push {cs}", "push {rip}",
            "xor eax, eax", "xor ebx, ebx", "xor ecx, ecx", "xor edx, edx",
            "xor ebp, ebp", "xor r8d, r8d", "xor r9d, r9d", "xor r10d, r10d", "xor r11d, r11d",
            "xor r12d, r12d", "xor r13d, r13d", "xor r14d, r14d", "xor r15d, r15d",
            "iretq",
            ss = in(reg) USER_DS as u64, cs = in(reg) USER_CS as u64,
            rsp = in(reg) rsp, rip = in(reg) rip, in("rdi") arg, in("rsi") core,
            options(noreturn)
        )
    }
}

/// Write a byte to an I/O port (a VM exit).
pub fn outb(port: u16, v: u8) {
    // SAFETY: port I/O to the VMM's debug/fatal ports has no memory effects.
    unsafe {
        asm!("out dx, al", in("dx") port, in("al") v, options(nomem, nostack, preserves_flags))
    }
}

/// Write a u32 to an I/O port (a VM exit).
pub fn outl(port: u16, v: u32) {
    // SAFETY: as outb.
    unsafe {
        asm!("out dx, eax", in("dx") port, in("eax") v, options(nomem, nostack, preserves_flags))
    }
}

/// Halt for good (the proxy tears the partition down).
pub fn halt_forever() -> ! {
    loop {
        x86_64::instructions::hlt();
    }
}

/// CR2: the faulting address of the last page fault.
pub fn cr2() -> u64 {
    x86_64::registers::control::Cr2::read_raw()
}

/// Flush the TLB for `[va, va+len)`.
pub fn flush(va: u64, len: u64) {
    if len <= 16 * 4096 {
        let mut a = va;
        while a < va + len {
            x86_64::instructions::tlb::flush(VirtAddr::new(a));
            a += 4096;
        }
    } else {
        x86_64::instructions::tlb::flush_all();
    }
}

/// Set the GS base (the runtime's per-core data; kernel-min uses `KernelGsBase`).
pub fn set_gs(base: u64) {
    GsBase::write(VirtAddr::new_truncate(base))
}

/// Set the FS base.
pub fn set_fs(base: u64) {
    // FS base is the application's TLS pointer; the kernel does not use FS.
    x86_64::registers::model_specific::FsBase::write(VirtAddr::new_truncate(base))
}

global_asm!(
    r#"
    .section .text.entry, "ax"
    .global _start
_start:
    // rdi = BootInfo, rsi = this core (set by the VMM): a boot stack per core.
    lea rsp, [rip + boot_stacks_top]
    mov rax, rsi
    shl rax, 14
    sub rsp, rax
    call kmain
    ud2

    .section .text.traps, "ax"
    .balign 16
    .global vec_stub_0
vec_stub_0:
    .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    .balign 16
    .if (\n == 8) || (\n == 10) || (\n == 11) || (\n == 12) || (\n == 13) || (\n == 14) || (\n == 17) || (\n == 21) || (\n == 29) || (\n == 30)
    .else
    push 0
    .endif
    push \n
    jmp trap_common
    .endr

    // #GP. Under kvm_pvm a kernel call arrives here (see the module comment),
    // and every instruction until `iretq` is emulated: the two that run most
    // (`set_fs` at every thread switch, the IKC doorbells) are served right here,
    // in a few instructions, without a frame. Anything else goes on as vector 13.
    .balign 16
    .global gp_entry
gp_entry:
    cmp rax, {k_set_fs}
    je 1f
    cmp rax, {k_doorbell}
    jne 8f
1:  push rcx
    mov rcx, [rip + kcall_alias]
    cmp [rsp + 16], rcx
    pop rcx
    jne 8f
    cmp rax, {k_doorbell}
    je 3f
    push rdx
    push rcx
    mov ecx, 0xc0000100
    mov eax, edi
    mov rdx, rdi
    shr rdx, 32
    wrmsr
    pop rcx
    pop rdx
    jmp 5f
3:  cmp rdi, {p_first}
    jb 8f
    cmp rdi, {p_last}
    ja 8f
    push rdx
    mov edx, edi
    mov eax, esi
    out dx, eax
    pop rdx
    // Return as `syscall` does: to rcx, with the flags in r11 (user bits only).
5:  xor eax, eax
    add rsp, 8
    mov [rsp], rcx
    and r11, {uflags}
    or r11, 2
    mov [rsp + 16], r11
    iretq
8:  push 13
    jmp trap_common

    .balign 16
syscall_hw:
    swapgs
    mov gs:[{user_rsp}], rsp
    mov rsp, gs:[{kstack}]
    push {uds}
    push qword ptr gs:[{user_rsp}]
    push r11
    push {ucs}
    push rcx
    push 0
    push {vsys}
    swapgs
    jmp trap_common

trap_common:
    "#,
    mote_abi::push_regs!(),
    r#"
    mov rdi, rsp
    cld
    call {handle}
    "#,
    mote_abi::pop_regs!(),
    r#"
    add rsp, {iret}
    iretq

    // The syscall page: position independent within itself (it also runs from its
    // ring-3 alias), data words filled in by `init`.
    .section .text.syscall_page, "ax"
    .balign 4096
    .global syscall_page
syscall_page:
    .global syscall_entry
syscall_entry:
    verw word ptr [rip + sp_kds]
    jnz 1f
    jmp qword ptr [rip + sp_hw_entry]
1:  cmp rcx, [rip + sp_rt_start]
    jb 2f
    cmp rcx, [rip + sp_rt_end]
    jb sp_kcall
2:  jmp qword ptr [rip + sp_shim_entry]
    .global sp_kcall
sp_kcall:
    swapgs
    ud2
    .balign 8
sp_kds:
    .quad {kds}
    .global sp_hw_entry
sp_hw_entry:
    .quad 0
    .global sp_rt_start
sp_rt_start:
    .quad 0
    .global sp_rt_end
sp_rt_end:
    .quad 0
    .global sp_shim_entry
sp_shim_entry:
    .quad 0
    .balign 4096

    .section .data.kcall_alias, "aw"
    .balign 8
    .global kcall_alias
kcall_alias:
    .quad 0

    .section .bss.boot_stack, "aw", @nobits
    .balign 16
    .space 16384 * {ncores}
boot_stacks_top:
    .balign 16
    .space {trap_size} * {ncores}
    .global trap_stacks_top
trap_stacks_top:
    .balign 16
    .space 16384
    .global df_stack_top
df_stack_top:
"#,
    user_rsp = const offset_of!(PerCore, user_rsp),
    kstack = const offset_of!(PerCore, kstack_top),
    uds = const USER_DS,
    ucs = const USER_CS,
    vsys = const mote_abi::trap::VECTOR_SYSCALL,
    kds = const KERNEL_DS,
    handle = sym crate::trap::handle,
    iret = const offset_of!(KHeader, rip),
    ncores = const MAX_CORES,
    k_set_fs = const mote_abi::kcall::SET_FS,
    k_doorbell = const mote_abi::kcall::DOORBELL,
    p_first = const mote_abi::ports::NOTIFY,
    p_last = const mote_abi::ports::WAKE_CORE,
    uflags = const crate::trap::USER_RFLAGS_MASK,
    trap_size = const TRAP_STACK_SIZE,
);
