//! Unit tests of the scan, the emitted code, the input checks and the options.

use iced_x86::{Code, Decoder, DecoderOptions, Instruction, Mnemonic};

use crate::scan::{scan, Kept, Rewrite, Text};
use crate::{elf, tramp, wrap, LinkError};

const BASE: u64 = 0x40_1000;

fn one(code: &[u8]) -> crate::scan::Scan {
    scan(
        &[Text {
            addr: BASE,
            bytes: code,
        }],
        [],
    )
}

fn only_rewrite(code: &[u8]) -> Rewrite {
    let s = one(code);
    assert_eq!(s.kept, [], "{s:?}");
    assert_eq!(s.rewrites.len(), 1, "{s:?}");
    s.rewrites[0].clone()
}

fn decode_all(at: u64, b: &[u8]) -> Vec<Instruction> {
    let mut d = Decoder::with_ip(64, b, at, DecoderOptions::NONE);
    let mut v = Vec::new();
    while d.can_decode() {
        let i = d.decode();
        assert_ne!(i.code(), Code::INVALID, "undecodable byte at {:#x}", i.ip());
        v.push(i);
    }
    v
}

#[test]
fn a_mov_before_the_syscall_moves_and_the_syscall_stays() {
    // mov eax, 39; syscall; ret
    let r = only_rewrite(&[0xb8, 39, 0, 0, 0, 0x0f, 0x05, 0xc3]);
    assert_eq!(
        (r.start, r.syscall, r.end, r.after),
        (BASE, BASE + 5, BASE + 5, false)
    );
    assert_eq!(r.nr, Some(39));
    assert_eq!(r.moved.len(), 1);
    let j = tramp::site_jump(&r, 0x60_0000).unwrap();
    assert_eq!(j.len(), 5);
    assert_eq!(j[0], 0xe9);
}

#[test]
fn a_jump_straight_to_the_syscall_keeps_the_before_shape() {
    // jmp +5 (to the syscall); mov eax, 39; syscall; ret
    let r = only_rewrite(&[0xeb, 0x05, 0xb8, 39, 0, 0, 0, 0x0f, 0x05, 0xc3]);
    assert_eq!((r.start, r.syscall, r.after), (BASE + 2, BASE + 7, false));
}

#[test]
fn a_short_mov_takes_the_instruction_after_the_syscall() {
    // mov eax, [rdi]; syscall; cmp rax, -4095; ret
    let r = only_rewrite(&[
        0x8b, 0x07, 0x0f, 0x05, 0x48, 0x3d, 0x01, 0xf0, 0xff, 0xff, 0xc3,
    ]);
    assert!(r.after);
    assert_eq!(r.nr, None, "eax is loaded from memory");
    assert_eq!((r.start, r.syscall, r.end), (BASE + 2, BASE + 2, BASE + 10));
    assert_eq!(r.moved, []);
    assert_eq!(r.moved_after.len(), 1);
    assert_eq!(r.moved_after[0].mnemonic(), Mnemonic::Cmp);
}

#[test]
fn glibc_exit_loop_is_rewritten_around_the_syscall() {
    // 1: xor edi, edi; mov eax, edx; syscall; jmp 1b
    let r = only_rewrite(&[0x31, 0xff, 0x89, 0xd0, 0x0f, 0x05, 0xeb, 0xf8]);
    assert!(r.after);
    // mov eax, edx (2) + syscall (2) + jmp (2): the xor stays.
    assert_eq!((r.start, r.end), (BASE + 2, BASE + 8));
    assert_eq!(r.moved.len(), 1);
    // The moved jmp still goes to the loop's head.
    let stub = tramp::site_stub(0x60_0000, &r, 0x80_0000).unwrap();
    let insns = decode_all(0x60_0000, &stub);
    assert!(insns
        .iter()
        .any(|i| i.mnemonic() == Mnemonic::Jmp && i.near_branch_target() == BASE));
}

#[test]
fn a_jump_target_inside_the_moved_bytes_keeps_the_syscall() {
    // jmp T; mov edi, 1; T: mov eax, edx; syscall; ret
    let s = one(&[0xeb, 0x05, 0xbf, 1, 0, 0, 0, 0x89, 0xd0, 0x0f, 0x05, 0xc3]);
    assert_eq!(s.rewrites, []);
    assert_eq!(s.kept, [(BASE + 9, Kept::NoRoom)]);
}

#[test]
fn clone_sites_call_the_frame_entry() {
    // mov eax, 56; syscall; ret
    let r = only_rewrite(&[0xb8, 56, 0, 0, 0, 0x0f, 0x05, 0xc3]);
    assert_eq!(r.nr, Some(56));
    let (at, word) = (0x60_0040, 0x80_0000);
    let stub = tramp::site_stub(at, &r, word).unwrap();
    let insns = decode_all(at, &stub);
    let m: Vec<Mnemonic> = insns.iter().map(|i| i.mnemonic()).collect();
    use Mnemonic::*;
    // Not the register entry: the frame entry, with rsp below the red zone, and no
    // rsp fix-up after it (it comes back with the syscall's rsp).
    assert_eq!(m, [Mov, Mov, Jrcxz, Lea, Call, Jmp, Jmp]);
    assert_eq!(insns[1].ip_rel_memory_address(), word + 8);
    assert_eq!(insns[2].near_branch_target(), insns[6].ip());
    assert_eq!(insns[3].memory_displacement64() as i64, -128);
    assert_eq!(insns[4].op0_register(), iced_x86::Register::RCX);
    assert_eq!(insns[5].near_branch_target(), r.syscall + 2);
    assert_eq!(insns[6].near_branch_target(), r.syscall);
    // clone3 (435), set with a 64-bit mov.
    let r = only_rewrite(&[0x48, 0xc7, 0xc0, 0xb3, 0x01, 0, 0, 0x0f, 0x05, 0xc3]);
    assert_eq!(r.nr, Some(435));
}

#[test]
fn a_number_set_before_a_branch_target_is_not_known() {
    // mov eax, 39; T: nop*5; syscall; ret  with a jmp to T first
    let code = [
        0xeb, 0x05, 0xb8, 39, 0, 0, 0, 0x0f, 0x1f, 0x44, 0, 0, 0x0f, 0x05, 0xc3,
    ];
    let s = one(&code);
    assert_eq!(s.rewrites.len(), 1, "{s:?}");
    assert_eq!(s.rewrites[0].nr, None);
}

#[test]
fn the_stub_falls_back_to_the_syscall_and_calls_the_register_entry() {
    let r = only_rewrite(&[0xb8, 39, 0, 0, 0, 0x0f, 0x05, 0xc3]);
    let (at, word) = (0x60_0040, 0x80_0000);
    let stub = tramp::site_stub(at, &r, word).unwrap();
    let insns = decode_all(at, &stub);
    let m: Vec<Mnemonic> = insns.iter().map(|i| i.mnemonic()).collect();
    use Mnemonic::*;
    assert_eq!(m, [Mov, Mov, Jrcxz, Lea, Call, Lea, Jmp, Jmp]);
    assert_eq!(insns[0].immediate32(), 39);
    assert_eq!(insns[1].ip_rel_memory_address(), word);
    let fallback = insns[7].ip();
    assert_eq!(insns[2].near_branch_target(), fallback);
    // Below the red zone, through the word, and back over the red zone.
    assert_eq!(insns[3].memory_displacement64() as i64, -128);
    assert_eq!(insns[4].ip_rel_memory_address(), word);
    assert_eq!(insns[5].memory_displacement64(), 128);
    assert_eq!(insns[6].near_branch_target(), r.syscall + 2);
    assert_eq!(insns[7].near_branch_target(), r.syscall);
}

#[test]
fn an_unknown_number_is_checked_for_every_frame_call() {
    let r = only_rewrite(&[
        0x8b, 0x07, 0x0f, 0x05, 0x48, 0x3d, 0x01, 0xf0, 0xff, 0xff, 0xc3,
    ]);
    let stub = tramp::site_stub(0x60_0040, &r, 0x80_0000).unwrap();
    let insns = decode_all(0x60_0040, &stub);
    let syscall = insns
        .iter()
        .find(|i| i.code() == Code::Syscall)
        .expect("own syscall");
    let checks: Vec<&Instruction> = insns
        .iter()
        .filter(|i| i.mnemonic() == Mnemonic::Jrcxz)
        .collect();
    // The register entry's word, each number needing the frame, the frame
    // entry's word.
    assert_eq!(checks.len(), 2 + crate::scan::NEEDS_FRAME.len());
    let frame = insns
        .iter()
        .find(|i| i.is_ip_rel_memory_operand() && i.ip_rel_memory_address() == 0x80_0008)
        .expect("the frame word is read");
    let (first, rest) = checks.split_first().unwrap();
    let (last, middle) = rest.split_last().unwrap();
    assert_eq!(first.near_branch_target(), syscall.ip());
    assert_eq!(last.near_branch_target(), syscall.ip());
    assert!(middle.iter().all(|i| i.near_branch_target() == frame.ip()));
    let subtracted: Vec<i64> = insns
        .iter()
        .filter(|i| i.mnemonic() == Mnemonic::Lea && i.op0_register() == iced_x86::Register::ECX)
        .map(|i| i.memory_displacement64() as i64)
        .collect();
    assert_eq!(subtracted, [-56, -57, -58, -435]);
    // After the fallback syscall: the moved cmp, then back after the moved bytes.
    let last = insns.last().unwrap();
    assert_eq!(last.near_branch_target(), r.end);
}

#[test]
fn a_sigreturn_site_takes_the_register_entry_like_any_other() {
    // mov rax, 15; syscall: the runtime finds the frame above the red zone.
    let r = only_rewrite(&[0x48, 0xc7, 0xc0, 15, 0, 0, 0, 0x0f, 0x05, 0xc3]);
    assert_eq!(r.nr, Some(15));
    let stub = tramp::site_stub(0x60_0040, &r, 0x80_0000).unwrap();
    let m: Vec<Mnemonic> = decode_all(0x60_0040, &stub)
        .iter()
        .map(|i| i.mnemonic())
        .collect();
    use Mnemonic::*;
    assert_eq!(m, [Mov, Mov, Jrcxz, Lea, Call, Lea, Jmp, Jmp]);
}

#[test]
fn the_init_stub_finds_the_auxv_entries_and_jumps_on() {
    let b = tramp::init_stub(0x60_0300, 0x80_0000, 0x40_1510).unwrap();
    let insns = decode_all(0x60_0300, &b);
    let cmps: Vec<u32> = insns
        .iter()
        .filter(|i| i.mnemonic() == Mnemonic::Cmp && i.op0_register() == iced_x86::Register::RAX)
        .map(|i| i.immediate32())
        .collect();
    assert_eq!(
        cmps,
        [
            mote_abi::boot::AT_MOTE_SYSCALL_REGS as u32,
            mote_abi::boot::AT_MOTE_SYSCALL_FRAME as u32
        ]
    );
    let stores: Vec<u64> = insns
        .iter()
        .filter(|i| i.is_ip_rel_memory_operand() && i.mnemonic() == Mnemonic::Mov)
        .map(|i| i.ip_rel_memory_address())
        .collect();
    assert_eq!(stores, [0x80_0000, 0x80_0008]);
    assert_eq!(insns.last().unwrap().near_branch_target(), 0x40_1510);
    // Every branch lands on an instruction of the stub (or the entry).
    let starts: Vec<u64> = insns.iter().map(|i| i.ip()).collect();
    for i in insns
        .iter()
        .filter(|i| i.is_jcc_short_or_near() || i.is_jmp_short_or_near())
    {
        let t = i.near_branch_target();
        assert!(starts.contains(&t) || t == 0x40_1510, "{t:#x}");
    }
}

fn refused(bytes: &[u8]) -> String {
    match elf::rewrite(bytes, &Default::default(), true) {
        Err(LinkError::Refused(m)) => m,
        other => panic!("not refused: {other:?}"),
    }
}

/// An ELF header (64 bytes) with this class, machine and type, nothing else.
fn header(class: u8, machine: u16, ty: u16) -> Vec<u8> {
    let mut h = vec![0u8; 64];
    h[..4].copy_from_slice(b"\x7fELF");
    h[4] = class;
    h[5] = 1;
    h[6] = 1;
    h[16..18].copy_from_slice(&ty.to_le_bytes());
    h[18..20].copy_from_slice(&machine.to_le_bytes());
    h[20..24].copy_from_slice(&1u32.to_le_bytes());
    h[52..54].copy_from_slice(&64u16.to_le_bytes());
    h
}

#[test]
fn inputs_it_cannot_rewrite_are_refused_with_the_reason() {
    assert!(refused(b"#!/bin/sh\necho hi\n").contains("not an ELF file"));
    assert!(refused(&header(1, 3, 2)).contains("32-bit"));
    assert!(
        refused(&header(2, 183, 2)).contains("not x86_64"),
        "{}",
        refused(&header(2, 183, 2))
    );
    assert!(refused(&header(2, 62, 1)).contains("not an executable"));
}

#[test]
fn a_dynamic_program_is_refused() {
    // Any dynamically linked system program will do.
    let Some(bytes) = ["/bin/true", "/usr/bin/true"]
        .iter()
        .find_map(|p| std::fs::read(p).ok())
    else {
        panic!("no /bin/true to test with");
    };
    assert!(refused(&bytes).contains("dynamically linked"));
}

#[test]
fn the_wrapped_command_names_its_output() {
    let args = |v: &[&str]| v.iter().map(std::ffi::OsString::from).collect::<Vec<_>>();
    assert_eq!(
        wrap::output_of(&args(&["-O2", "x.c"])),
        std::path::Path::new("a.out")
    );
    assert_eq!(
        wrap::output_of(&args(&["-o", "app", "x.c"])),
        std::path::Path::new("app")
    );
    assert_eq!(
        wrap::output_of(&args(&["-oapp2", "-o", "app3"])),
        std::path::Path::new("app3")
    );
    assert_eq!(
        wrap::output_of(&args(&["-oapp2"])),
        std::path::Path::new("app2")
    );
}

#[test]
fn policy_sizes_parse_as_mote_run_takes_them() {
    use crate::cli::parse_mem;
    assert_eq!(parse_mem("512M"), Ok(512 << 20));
    assert_eq!(parse_mem("2GiB"), Ok(2 << 30));
    assert_eq!(parse_mem("129m"), Ok(130 << 20));
    assert!(parse_mem("64M").is_err());
    assert!(parse_mem("x").is_err());
    assert!(parse_mem("99999999999999T").is_err());
}
