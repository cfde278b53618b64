//! The application's FP/SIMD state in signal frames: `xsave`/`xrstor` (or
//! `fxsave`/`fxrstor` without XSAVE), straight between the registers and the frame
//! libos placed. The runtime itself is built soft-float, so between the
//! application's last instruction and these, nothing has touched that state.

use alloc::vec;
use alloc::vec::Vec;
use core::arch::asm;
use core::arch::x86_64::{__cpuid, __cpuid_count};

use mote_libos::sigframe::{self, FpFormat};

static FORMAT: spin::Once<FpFormat> = spin::Once::new();

fn xcr0() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: only called when CPUID says the OS enabled XSAVE (CR4.OSXSAVE), which
    // makes xgetbv legal at any privilege level.
    unsafe { asm!("xgetbv", in("ecx") 0, out("eax") lo, out("edx") hi, options(nomem, nostack)) };
    (u64::from(hi) << 32) | u64::from(lo)
}

/// How this partition saves FP state (CPUID: OSXSAVE and the XSAVE area size for
/// the features XCR0 enables).
pub fn format() -> FpFormat {
    *FORMAT.call_once(|| {
        let osxsave = __cpuid(1).ecx & (1 << 27) != 0;
        if osxsave {
            let size = u64::from(__cpuid_count(0xd, 0).ebx).max(576);
            FpFormat {
                xfeatures: Some(xcr0()),
                size,
            }
        } else {
            FpFormat {
                xfeatures: None,
                size: 512,
            }
        }
    })
}

/// Save the application's FP state at `va` (64-byte aligned, writable application
/// memory libos checked), with the software bytes Linux adds to an xsave image.
pub fn save(va: u64) {
    let f = format();
    match f.xfeatures {
        Some(mask) => {
            // SAFETY: `va` is 64-byte aligned and `f.size` writable bytes of mapped
            // application memory (libos checked the whole frame); xsave writes only
            // there. The header must start zeroed for a standard-form image.
            unsafe {
                core::ptr::write_bytes((va + 512) as *mut u8, 0, 64);
                asm!("xsave64 [{}]", in(reg) va, in("eax") mask as u32, in("edx") (mask >> 32) as u32,
                     options(nostack));
                let sw = sigframe::sw_bytes(&f);
                core::ptr::copy_nonoverlapping(
                    sw.as_ptr(),
                    (va + sigframe::SW_RESERVED as u64) as *mut u8,
                    sw.len(),
                );
                ((va + f.size) as *mut u32).write_unaligned(sigframe::FP_XSTATE_MAGIC2);
            }
        }
        // SAFETY: as above, 512 bytes.
        None => unsafe { asm!("fxsave64 [{}]", in(reg) va, options(nostack)) },
    }
}

/// A 64-byte aligned scratch copy of an image.
struct Aligned {
    buf: Vec<u8>,
    off: usize,
}

impl Aligned {
    fn new(len: usize) -> Self {
        let buf = vec![0u8; len + 64];
        let off = (64 - (buf.as_ptr() as usize % 64)) % 64;
        Aligned { buf, off }
    }
    fn bytes(&mut self) -> &mut [u8] {
        let n = self.buf.len() - 64;
        &mut self.buf[self.off..self.off + n]
    }
    fn addr(&self) -> u64 {
        self.buf.as_ptr() as u64 + self.off as u64
    }
}

/// Restore the FP state from the image at `va` (readable application memory, 64-byte
/// aligned; libos checked it): an xsave image when its magic words say so, else
/// a legacy fxsave image. The image is copied and made valid first (reserved bits
/// cleared), as Linux does, so a corrupt frame cannot fault the runtime.
pub fn restore(va: u64) {
    let f = format();
    let mut img = Aligned::new(f.size as usize);
    let xsave_img = {
        let b = img.bytes();
        let n = b.len();
        // SAFETY: libos checked `va` readable for the frame it decoded; the xsave
        // image length is this partition's format.
        unsafe { core::ptr::copy_nonoverlapping(va as *const u8, b.as_mut_ptr(), n.min(512)) };
        let sw: [u8; 48] = b[sigframe::SW_RESERVED..512].try_into().expect("48 bytes");
        let magic2 = if f.xfeatures.is_some() {
            // SAFETY: as above: the image and the word after it are in the frame.
            unsafe { ((va + f.size) as *const u32).read_unaligned() }
        } else {
            0
        };
        let x = sigframe::is_xsave_image(&sw, magic2, &f);
        if x {
            // SAFETY: as above.
            unsafe {
                core::ptr::copy_nonoverlapping(
                    (va + 512) as *const u8,
                    b.as_mut_ptr().add(512),
                    n - 512,
                )
            };
        }
        // MXCSR: only the architected bits.
        let mxcsr = u32::from_le_bytes(b[24..28].try_into().expect("4")) & 0xffff;
        b[24..28].copy_from_slice(&mxcsr.to_le_bytes());
        if x {
            let mask = f.xfeatures.unwrap_or(3);
            let bv = u64::from_le_bytes(b[512..520].try_into().expect("8")) & mask;
            b[512..520].copy_from_slice(&bv.to_le_bytes());
            b[520..576].fill(0);
        }
        x
    };
    let addr = img.addr();
    match f.xfeatures {
        Some(mask) => {
            if !xsave_img {
                // A legacy image: x87 and SSE from it, the rest initialised.
                img.bytes()[512..520].copy_from_slice(&3u64.to_le_bytes());
                img.bytes()[520..576].fill(0);
            }
            // SAFETY: `addr` is a 64-byte aligned runtime buffer of the format's size
            // holding a standard-form image with a valid header (just sanitised).
            unsafe {
                asm!("xrstor64 [{}]", in(reg) addr, in("eax") mask as u32, in("edx") (mask >> 32) as u32,
                     options(nostack));
            }
        }
        // SAFETY: a 16-byte aligned 512-byte legacy image with a valid MXCSR.
        None => unsafe { asm!("fxrstor64 [{}]", in(reg) addr, options(nostack)) },
    }
}

/// The state a handler starts with: x87 and MXCSR at their defaults.
pub fn reset_for_handler() {
    let mxcsr: u32 = 0x1f80;
    // SAFETY: fninit and ldmxcsr of the default value only change FP control
    // state, which belongs to the application and was saved in its frame.
    unsafe {
        asm!("fninit", "ldmxcsr [{}]", in(reg) &mxcsr, options(nostack));
    }
}

/// MXCSR and the x87 status and control words, for the `si_code` of an FP fault.
pub fn status() -> (u32, u16, u16) {
    let mut mxcsr: u32 = 0;
    let mut fsw: u16 = 0;
    let mut fcw: u16 = 0;
    // SAFETY: stores the FP status/control registers into locals.
    unsafe {
        asm!("stmxcsr [{}]", "fnstsw [{}]", "fnstcw [{}]",
             in(reg) &mut mxcsr, in(reg) &mut fsw, in(reg) &mut fcw, options(nostack));
    }
    (mxcsr, fsw, fcw)
}
