//! Per-CPU block, reached through GS base (one load per access).

use super::cpu::{wrmsr, MSR_GS_BASE};
use core::arch::asm;
use core::sync::atomic::{AtomicBool, Ordering};
use nicproof_guest::kernel::smp::MAX_CPUS;

/// What each CPU keeps for itself. `cpu` must stay the first field:
/// [`cpu_id`] reads it at `gs:[0]`.
#[repr(C)]
pub struct PerCpu {
    cpu: u64,
    /// Set when this CPU enters a panic or exception report, so a fault
    /// inside the report powers off at once instead of recursing.
    fatal: AtomicBool,
}

const fn blocks() -> [PerCpu; MAX_CPUS] {
    let mut a = [const {
        PerCpu {
            cpu: 0,
            fatal: AtomicBool::new(false),
        }
    }; MAX_CPUS];
    let mut i = 0;
    while i < MAX_CPUS {
        a[i].cpu = i as u64;
        i += 1;
    }
    a
}

static PERCPU: [PerCpu; MAX_CPUS] = blocks();

/// Point GS base at `cpu`'s block. `cpu` must be < MAX_CPUS (checked by
/// the entry code).
pub fn init(cpu: u32) {
    let block = &PERCPU[cpu as usize % MAX_CPUS];
    wrmsr(MSR_GS_BASE, block as *const PerCpu as u64);
}

/// Index (= APIC ID) of the running CPU.
#[inline(always)]
pub fn cpu_id() -> u32 {
    let v: u32;
    // SAFETY: GS base points at this CPU's PerCpu block (set by `init`
    // before any caller runs), whose first field is the CPU index.
    unsafe { asm!("mov {:e}, gs:[0]", out(reg) v, options(nostack, readonly, preserves_flags)) }
    v
}

/// Mark this CPU as reporting a fatal error. Returns false if it already
/// was (a fault inside the report): the caller must then stop at once.
pub fn enter_fatal() -> bool {
    !PERCPU[cpu_id() as usize % MAX_CPUS]
        .fatal
        .swap(true, Ordering::AcqRel)
}
