//! The IDT and the Rust side of interrupt entry.
//!
//! Every vector has a stub (entry.rs). Exceptions (0..32) are fatal: they
//! are reported (RecordKind::Exception: vector, error code, RIP, CR2,
//! CPU) and the machine powers off. Any other vector is acknowledged (EOI)
//! and handed to `kernel::irq::raise`, which marks it pending; handlers
//! never block or allocate.

use super::logger::FmtBuf;
use super::{apic, control, cpu, entry, percpu, serial};
use core::fmt::Write;
use nicproof_guest::kernel::irq::{self, VECTOR_SPURIOUS};
use nicproof_guest::kernel::record::{self, exit_code};

/// Registers saved by the interrupt entry, lowest address first.
#[repr(C)]
#[derive(Debug)]
pub struct Frame {
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rax: u64,
    pub vector: u64,
    pub error: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

#[repr(C, align(16))]
struct Idt([[u64; 2]; 256]);

/// 64-bit interrupt gate, present, DPL 0.
const GATE_INTERRUPT: u64 = 0x8e;
const KERNEL_CS: u64 = 0x08;

/// The IDT is a constant: the stubs sit at a fixed address (build.rs), so
/// no boot-time loop fills it (256 gates cost ~2 ms of emulated code here).
const fn build_idt() -> Idt {
    let mut t = [[0u64; 2]; 256];
    let mut v = 0;
    while v < 256 {
        let a = entry::ISR_STUBS_BASE + 16 * v as u64;
        t[v][0] =
            (a & 0xffff) | KERNEL_CS << 16 | GATE_INTERRUPT << 40 | ((a >> 16) & 0xffff) << 48;
        t[v][1] = a >> 32;
        v += 1;
    }
    Idt(t)
}

static IDT: Idt = build_idt();

/// Check that the stubs were linked where the constant IDT expects them.
/// If not (build.rs not applied), stop: every interrupt would jump into
/// the void.
pub fn check() {
    if entry::isr_stubs_address() != entry::ISR_STUBS_BASE {
        serial::write_unlocked("FATAL: interrupt stubs not at ISR_STUBS_BASE (link flags lost?)\n");
        control::power_off(exit_code::EXCEPTION);
    }
}

/// Load the IDT on this CPU.
pub fn load() {
    #[repr(C, packed)]
    struct Ptr {
        limit: u16,
        base: u64,
    }
    let p = Ptr {
        limit: 256 * 16 - 1,
        base: &IDT as *const Idt as u64,
    };
    // SAFETY: the IDT is a constant static that lives forever.
    unsafe {
        core::arch::asm!("lidt [{}]", in(reg) &p, options(readonly, nostack, preserves_flags))
    }
}

/// Load an empty IDT (limit 0): the next exception triple-faults. Used
/// only by the triple-fault bad guest.
pub fn load_empty() {
    let p: [u16; 5] = [0; 5];
    // SAFETY: deliberately breaks exception delivery on this CPU.
    unsafe {
        core::arch::asm!("lidt [{}]", in(reg) &p, options(readonly, nostack, preserves_flags))
    }
}

/// Called by every stub with the saved frame.
pub extern "C" fn dispatch(frame: &mut Frame) {
    let v = frame.vector as u8;
    if frame.vector < 32 {
        if frame.vector == 6 && super::user::try_syscall(frame) {
            return;
        }
        exception(frame);
    }
    if v == VECTOR_SPURIOUS {
        return;
    }
    apic::eoi();
    irq::raise(v);
}

fn exception(frame: &Frame) -> ! {
    if !percpu::enter_fatal() {
        // A fault while reporting a fault: stop now.
        control::power_off(exit_code::EXCEPTION);
    }
    let cpu_no = percpu::cpu_id() as u64;
    let cr2 = cpu::read_cr2();
    control::send(&record::exception(
        frame.vector,
        frame.error,
        frame.rip,
        cr2,
        cpu_no,
    ));
    let mut b = FmtBuf::<160>::new();
    let _ = writeln!(
        b,
        "EXCEPTION cpu{} vector {} error {:#x} rip {:#x} cr2 {:#x} rsp {:#x}",
        cpu_no, frame.vector, frame.error, frame.rip, cr2, frame.rsp
    );
    serial::write_unlocked(b.as_str());
    control::power_off(exit_code::EXCEPTION)
}
