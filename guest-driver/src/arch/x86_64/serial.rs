//! COM1 output. Both the VMM (vm-superio) and QEMU take bytes written to
//! THR at once, so there is no line-status polling; `rep outsb` sends a
//! whole string without a guest loop per byte.

use core::arch::asm;
use nicproof_guest::driver::sync::SpinLock;

const COM1: u16 = 0x3f8;

/// Keeps lines from two CPUs from interleaving.
static LOCK: SpinLock<()> = SpinLock::new(());

fn put(bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    // SAFETY: reads `bytes` only; the direction flag is clear (SysV ABI).
    unsafe {
        asm!("rep outsb", in("dx") COM1, inout("rsi") bytes.as_ptr() => _,
             inout("rcx") bytes.len() => _, options(nostack, readonly, preserves_flags))
    }
}

/// Write several pieces as one line, holding the serial lock.
pub fn write_parts(parts: &[&str]) {
    let _g = LOCK.lock();
    for p in parts {
        put(p.as_bytes());
    }
}

/// Write without taking the lock: for the fatal path, where the lock may
/// be held by the code that faulted.
pub fn write_unlocked(s: &str) {
    put(s.as_bytes());
}
