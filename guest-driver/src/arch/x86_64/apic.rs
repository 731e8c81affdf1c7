//! x2APIC: enable, EOI, IPIs, and the timer behind `wait_until`.
//!
//! KVM emulates x2APIC regardless of the host CPU,
//! and its registers are MSRs: no MMIO exit per access. The timer uses
//! TSC-deadline mode when CPUID offers it, else one-shot mode counting at
//! KVM's 1 GHz APIC bus (1 count = 1 ns).

use super::cpu::{cpuid, outb, rdmsr, wrmsr};
use core::sync::atomic::{AtomicBool, Ordering};
use nicproof_guest::kernel::irq::{VECTOR_SPURIOUS, VECTOR_TIMER};

const MSR_APIC_BASE: u32 = 0x1b;
const APIC_BASE_ENABLE: u64 = 1 << 11;
const APIC_BASE_X2APIC: u64 = 1 << 10;
const X2APIC_TPR: u32 = 0x808;
const X2APIC_EOI: u32 = 0x80b;
const X2APIC_SVR: u32 = 0x80f;
const X2APIC_ICR: u32 = 0x830;
const X2APIC_LVT_TIMER: u32 = 0x832;
const X2APIC_TIMER_INIT: u32 = 0x838;
const X2APIC_TIMER_DIV: u32 = 0x83e;
const MSR_TSC_DEADLINE: u32 = 0x6e0;

/// SVR: APIC software enable.
const SVR_ENABLE: u64 = 1 << 8;
/// LVT timer mode field: TSC-deadline.
const LVT_TIMER_TSC_DEADLINE: u64 = 0b10 << 17;
/// Divide configuration: divide by 1.
const TIMER_DIV_1: u64 = 0b1011;
/// ICR: level "assert" (required set for fixed IPIs on older parts).
const ICR_ASSERT: u64 = 1 << 14;

static HAVE_X2APIC: AtomicBool = AtomicBool::new(false);
static HAVE_DEADLINE: AtomicBool = AtomicBool::new(false);

/// Read CPUID once (boot CPU): x2APIC and TSC-deadline support.
pub fn probe() -> (bool, bool) {
    let (_, _, ecx, _) = cpuid(1);
    let x2 = ecx & (1 << 21) != 0;
    let dl = ecx & (1 << 24) != 0;
    HAVE_X2APIC.store(x2, Ordering::Relaxed);
    HAVE_DEADLINE.store(dl, Ordering::Relaxed);
    (x2, dl)
}

/// Whether this machine has an x2APIC (else there is no timer and no
/// IPI; `wait_until` then polls the clock).
#[inline]
pub fn available() -> bool {
    HAVE_X2APIC.load(Ordering::Relaxed)
}

/// Enable this CPU's x2APIC with the timer on [`VECTOR_TIMER`] and
/// spurious interrupts on [`VECTOR_SPURIOUS`]. Returns false without
/// touching anything if there is no x2APIC.
pub fn init_cpu() -> bool {
    if !available() {
        return false;
    }
    let base = rdmsr(MSR_APIC_BASE);
    // Disabled -> x2APIC directly is an invalid transition (#GP): go
    // through xAPIC-enabled first.
    if base & APIC_BASE_ENABLE == 0 {
        wrmsr(MSR_APIC_BASE, base | APIC_BASE_ENABLE);
    }
    wrmsr(MSR_APIC_BASE, base | APIC_BASE_ENABLE | APIC_BASE_X2APIC);
    wrmsr(X2APIC_TPR, 0);
    wrmsr(X2APIC_SVR, SVR_ENABLE | VECTOR_SPURIOUS as u64);
    if HAVE_DEADLINE.load(Ordering::Relaxed) {
        wrmsr(
            X2APIC_LVT_TIMER,
            LVT_TIMER_TSC_DEADLINE | VECTOR_TIMER as u64,
        );
    } else {
        wrmsr(X2APIC_TIMER_DIV, TIMER_DIV_1);
        wrmsr(X2APIC_LVT_TIMER, VECTOR_TIMER as u64);
    }
    true
}

/// Mask both 8259 PICs: all device interrupts come as MSIs.
pub fn mask_pic() {
    outb(0x21, 0xff);
    outb(0xa1, 0xff);
}

/// End of interrupt (every vector but the spurious one needs it).
#[inline(always)]
pub fn eoi() {
    wrmsr(X2APIC_EOI, 0);
}

/// Send a fixed IPI with `vector` to the CPU with x2APIC ID `dest`.
pub fn send_ipi(dest: u32, vector: u8) {
    if available() {
        wrmsr(X2APIC_ICR, (dest as u64) << 32 | ICR_ASSERT | vector as u64);
    }
}

/// Start CPU `dest` the PC way (QEMU): INIT, then STARTUP with the
/// real-mode entry page `page` (entry at `page << 12`). KVM needs no
/// delay between the two.
pub fn send_init_sipi(dest: u32, page: u8) {
    if available() {
        const INIT: u64 = 0b101 << 8;
        const STARTUP: u64 = 0b110 << 8;
        wrmsr(X2APIC_ICR, (dest as u64) << 32 | ICR_ASSERT | INIT);
        wrmsr(
            X2APIC_ICR,
            (dest as u64) << 32 | ICR_ASSERT | STARTUP | page as u64,
        );
    }
}

/// Arm the timer to fire at TSC value `deadline`; `ns_left` is the same
/// moment as a distance from now, for one-shot mode.
#[inline]
pub fn arm(deadline: u64, ns_left: u64) {
    if HAVE_DEADLINE.load(Ordering::Relaxed) {
        wrmsr(MSR_TSC_DEADLINE, deadline);
    } else {
        wrmsr(X2APIC_TIMER_INIT, ns_left.clamp(1, u32::MAX as u64));
    }
}

/// Cancel the timer.
#[inline]
pub fn disarm() {
    if HAVE_DEADLINE.load(Ordering::Relaxed) {
        wrmsr(MSR_TSC_DEADLINE, 0);
    } else {
        wrmsr(X2APIC_TIMER_INIT, 0);
    }
}
