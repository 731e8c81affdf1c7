//! Single-instruction wrappers: port I/O, MSRs, TSC, interrupt flag, hlt.
//!
//! None of these touch Rust-visible memory except [`outl_mem`], whose
//! port write lets the host read or write guest memory (control port).

use core::arch::asm;

/// IA32_GS_BASE: holds this CPU's per-CPU block address.
pub const MSR_GS_BASE: u32 = 0xc000_0101;

/// 8-bit port write.
#[inline(always)]
pub fn outb(port: u16, value: u8) {
    // SAFETY: port I/O has no effect on memory the compiler knows about;
    // the ports the kernel uses are owned by this kernel.
    unsafe {
        asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags))
    }
}

/// 8-bit port read.
#[inline(always)]
pub fn inb(port: u16) -> u8 {
    let v: u8;
    // SAFETY: as for `outb`.
    unsafe {
        asm!("in al, dx", out("al") v, in("dx") port, options(nomem, nostack, preserves_flags))
    }
    v
}

/// 32-bit port write with no memory effect (PCI config, QEMU exit).
#[inline(always)]
pub fn outl(port: u16, value: u32) {
    // SAFETY: as for `outb`.
    unsafe {
        asm!("out dx, eax", in("dx") port, in("eax") value, options(nomem, nostack, preserves_flags))
    }
}

/// 32-bit port write after which the host may have read or written guest
/// memory (the control port: records and the run configuration). Not
/// `nomem`, so the compiler neither sinks earlier stores past it nor
/// caches memory across it.
#[inline(always)]
pub fn outl_mem(port: u16, value: u32) {
    // SAFETY: the host only touches the buffer whose address is `value`,
    // which the caller owns for the duration of the call.
    unsafe {
        asm!("out dx, eax", in("dx") port, in("eax") value, options(nostack, preserves_flags))
    }
}

/// 32-bit port read.
#[inline(always)]
pub fn inl(port: u16) -> u32 {
    let v: u32;
    // SAFETY: as for `outb`.
    unsafe {
        asm!("in eax, dx", out("eax") v, in("dx") port, options(nomem, nostack, preserves_flags))
    }
    v
}

/// Read an MSR. The caller must only name MSRs that exist.
#[inline(always)]
pub fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: reading an architectural MSR has no memory effect; callers
    // only use MSRs this kernel checked for (x2APIC, TSC deadline, GS base).
    unsafe {
        asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags))
    }
    (hi as u64) << 32 | lo as u64
}

/// Write an MSR. The caller must only name MSRs that exist.
#[inline(always)]
pub fn wrmsr(msr: u32, value: u64) {
    // SAFETY: as for `rdmsr`. Not `nomem`: EOI and ICR writes order
    // against memory the handlers publish.
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") value as u32, in("edx") (value >> 32) as u32,
             options(nostack, preserves_flags))
    }
}

/// Time-stamp counter.
#[inline(always)]
pub fn rdtsc() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: rdtsc only reads the counter.
    unsafe { asm!("rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags)) }
    (hi as u64) << 32 | lo as u64
}

/// CPUID leaf `leaf`, subleaf 0: (eax, ebx, ecx, edx).
pub fn cpuid(leaf: u32) -> (u32, u32, u32, u32) {
    let (a, b, c, d): (u32, u32, u32, u32);
    // SAFETY: cpuid only reads; rbx is reserved by LLVM, so it is saved
    // in a scratch register around the instruction.
    unsafe {
        asm!("mov {t:r}, rbx", "cpuid", "xchg {t:r}, rbx", t = out(reg) b,
             inout("eax") leaf => a, inout("ecx") 0 => c, out("edx") d,
             options(nomem, nostack, preserves_flags))
    }
    (a, b, c, d)
}

/// Faulting address of the last page fault.
#[inline(always)]
pub fn read_cr2() -> u64 {
    let v: u64;
    // SAFETY: reading CR2 has no side effect.
    unsafe { asm!("mov {}, cr2", out(reg) v, options(nomem, nostack, preserves_flags)) }
    v
}

/// Disable interrupts.
#[inline(always)]
pub fn cli() {
    // SAFETY: masking interrupts cannot break memory safety. Not `nomem`:
    // it orders memory accesses like a compiler barrier.
    unsafe { asm!("cli", options(nostack)) }
}

/// Open an interrupt window and sleep: `sti; hlt; cli`. `sti` delays
/// interrupts by one instruction, so an interrupt that became pending
/// while IF was 0 wakes the `hlt` instead of being taken before it: no
/// lost wake-up for a caller that checked its condition with IF=0.
#[inline(always)]
pub fn sti_hlt_cli() {
    // SAFETY: handlers run and return here; memory may change (not nomem).
    unsafe { asm!("sti", "hlt", "cli", options(nostack)) }
}

/// Deterministic mode's idle request: `sti; out; cli`. `sti` delays
/// interrupts by one instruction, so none is taken before the `out`
/// (the VMM's scheduler then runs another CPU or moves time on); one
/// that is pending when the VMM re-enters this CPU is taken right after
/// the `out`, before `cli`: the same no-lost-wake-up rule as
/// [`sti_hlt_cli`].
#[inline(always)]
pub fn sti_out_cli(port: u16, value: u32) {
    // SAFETY: handlers run and return here; memory may change (not nomem).
    unsafe { asm!("sti", "out dx, eax", "cli", in("dx") port, in("eax") value, options(nostack)) }
}

/// Stop this CPU for good (IF=0, so nothing wakes it but NMI/INIT).
pub fn halt_forever() -> ! {
    if super::user::at_cpl3() {
        super::user::syscall(super::user::op::HALT_FOREVER, 0, 0);
    }
    loop {
        // SAFETY: see `cli`.
        unsafe { asm!("cli", "hlt", options(nomem, nostack)) }
    }
}
