//! Interrupt bookkeeping shared by the interrupt entry and the driver.
//!
//! The kernel's interrupt entry (src/arch/x86_64/idt.rs) acknowledges the
//! x2APIC (EOI) and then calls [`raise`], which sets the vector's pending
//! bit, counts it and runs the optional registered handler. Handlers run
//! in interrupt context with IF=0: they must not block, allocate or wait;
//! they should only note work (the usual pattern is to register nothing
//! and let the driver poll [`take`]).
//!
//! The kernel runs with interrupts disabled except inside
//! `Platform::wait_until` (`sti; hlt`). So a driver that checks
//! [`take`] and then calls `wait_until` cannot lose a wake-up: a pending
//! bit can only be set while the CPU sits in `hlt`.
//!
//! Pending bits are global, not per CPU: a vector means one event source,
//! whichever CPU its MSI-X entry targets.

use crate::platform::Platform;
use core::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

/// First vector a device may use (0..32 are exceptions).
pub const FIRST_DEVICE_VECTOR: u8 = 0x20;
/// Suggested vectors for the NIC's MSI-X entries (abi::pci::MSIX_TX,
/// MSIX_RX, MSIX_MISC map to +0, +1, +2).
pub const VECTOR_NIC_BASE: u8 = 0x40;
/// The kernel's timer (TSC-deadline or one-shot x2APIC timer).
pub const VECTOR_TIMER: u8 = 0xe0;
/// Inter-processor wake-up (mailbox kick, CPU online).
pub const VECTOR_WAKE: u8 = 0xf0;
/// The x2APIC spurious vector (no EOI, never pending).
pub const VECTOR_SPURIOUS: u8 = 0xff;

/// Why a registration was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IrqError {
    /// Exceptions (0..32) and the kernel's own vectors are not for devices.
    Reserved(u8),
    /// Another handler is already registered on this vector.
    Busy(u8),
}

/// A handler run in interrupt context (IF=0); gets its vector.
pub type Handler = fn(u8);

static PENDING: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];
static COUNTS: [AtomicU32; 256] = [const { AtomicU32::new(0) }; 256];
/// `Handler` pointers as usize; 0 = none.
static HANDLERS: [AtomicUsize; 256] = [const { AtomicUsize::new(0) }; 256];

fn reserved(vector: u8) -> bool {
    vector < FIRST_DEVICE_VECTOR
        || vector == VECTOR_TIMER
        || vector == VECTOR_WAKE
        || vector == VECTOR_SPURIOUS
}

/// Register `handler` for a device vector.
pub fn register(vector: u8, handler: Handler) -> Result<(), IrqError> {
    if reserved(vector) {
        return Err(IrqError::Reserved(vector));
    }
    HANDLERS[vector as usize]
        .compare_exchange(0, handler as usize, Ordering::AcqRel, Ordering::Acquire)
        .map(|_| ())
        .map_err(|_| IrqError::Busy(vector))
}

/// Remove the handler of `vector` (its pending bit is left alone).
pub fn unregister(vector: u8) {
    HANDLERS[vector as usize].store(0, Ordering::Release);
}

/// Called by the interrupt entry, after EOI, for every non-exception
/// vector: mark it pending, count it, run its handler if any.
pub fn raise(vector: u8) {
    let bit = 1u64 << (vector & 63);
    PENDING[(vector >> 6) as usize].fetch_or(bit, Ordering::AcqRel);
    COUNTS[vector as usize].fetch_add(1, Ordering::Relaxed);
    let h = HANDLERS[vector as usize].load(Ordering::Acquire);
    if h != 0 {
        // SAFETY: HANDLERS only ever holds 0 or a value stored by
        // `register` from a `Handler`, and fn pointers round-trip through
        // usize on x86_64.
        let f: Handler = unsafe { core::mem::transmute::<usize, Handler>(h) };
        f(vector);
    }
}

/// Clear `vector`'s pending bit and say whether it was set.
pub fn take(vector: u8) -> bool {
    let bit = 1u64 << (vector & 63);
    PENDING[(vector >> 6) as usize].fetch_and(!bit, Ordering::AcqRel) & bit != 0
}

/// Whether `vector` is pending (does not clear it).
pub fn is_pending(vector: u8) -> bool {
    PENDING[(vector >> 6) as usize].load(Ordering::Acquire) & (1u64 << (vector & 63)) != 0
}

/// Sleep until `vector` is pending or `timeout_ns` passes; consumes the
/// pending bit. Returns whether the vector fired. Race-free in the kernel
/// because interrupts are only taken inside `Platform::wait_until`.
pub fn wait<P: Platform + ?Sized>(p: &P, vector: u8, timeout_ns: u64) -> bool {
    let deadline = p.now_ns().saturating_add(timeout_ns);
    loop {
        if take(vector) {
            return true;
        }
        if p.now_ns() >= deadline {
            return take(vector);
        }
        p.wait_until(deadline);
    }
}

/// How many times `vector` was raised since boot (wraps at 2^32).
pub fn count(vector: u8) -> u32 {
    COUNTS[vector as usize].load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    static SEEN: AtomicU32 = AtomicU32::new(0);
    fn note(v: u8) {
        SEEN.store(v as u32, Ordering::SeqCst);
    }

    // Each test uses its own vectors: the tables are process-wide statics.
    #[test]
    fn raise_sets_pending_counts_and_calls_handler() {
        let v = 0x51;
        assert!(!is_pending(v));
        register(v, note).unwrap();
        raise(v);
        raise(v);
        assert_eq!(SEEN.load(Ordering::SeqCst), v as u32);
        assert_eq!(count(v), 2);
        assert!(is_pending(v));
        assert!(take(v));
        assert!(!take(v));
        unregister(v);
    }

    #[test]
    fn pending_bits_are_independent_across_words() {
        for v in [0x3fu8, 0x40, 0x7f, 0xbf, 0xc0] {
            raise(v);
        }
        assert!(!is_pending(0x3e) && !is_pending(0x41));
        for v in [0x3fu8, 0x40, 0x7f, 0xbf, 0xc0] {
            assert!(take(v), "vector {v:#x}");
        }
    }

    /// A platform whose sleep "delivers" one interrupt on vector 0x70
    /// after three sleeps, and whose clock advances 1 µs per sleep.
    struct Sleepy {
        sleeps: std::cell::Cell<u64>,
        fire_after: u64,
    }
    impl Platform for Sleepy {
        fn pci_read32(&self, _: (u8, u8, u8), _: u8) -> u32 {
            u32::MAX
        }
        fn pci_write32(&self, _: (u8, u8, u8), _: u8, _: u32) {}
        fn mmio_read32(&self, _: u64) -> u32 {
            0
        }
        fn mmio_write32(&self, _: u64, _: u32) {}
        fn now_ns(&self) -> u64 {
            self.sleeps.get() * 1000
        }
        fn wait_until(&self, _: u64) {
            self.sleeps.set(self.sleeps.get() + 1);
            if self.sleeps.get() == self.fire_after {
                raise(0x70);
            }
        }
        fn marker(&self, _: crate::abi::Marker, _: &[u64]) {}
        fn marker_text(&self, _: crate::abi::Marker, _: &[u64], _: &str) {}
        fn cpu_id(&self) -> u32 {
            0
        }
    }

    #[test]
    fn wait_returns_when_the_vector_fires_or_times_out() {
        let p = Sleepy {
            sleeps: 0.into(),
            fire_after: 3,
        };
        assert!(wait(&p, 0x70, 1_000_000));
        assert_eq!(p.sleeps.get(), 3);
        assert!(!is_pending(0x70), "wait consumes the pending bit");
        // Nothing fires now: gives up at the deadline (10 sleeps of 1 µs).
        assert!(!wait(&p, 0x70, 10_000));
        assert_eq!(p.sleeps.get(), 13);
    }

    #[test]
    fn registration_rules() {
        assert_eq!(register(14, note), Err(IrqError::Reserved(14)));
        assert_eq!(
            register(VECTOR_TIMER, note),
            Err(IrqError::Reserved(VECTOR_TIMER))
        );
        assert_eq!(
            register(VECTOR_WAKE, note),
            Err(IrqError::Reserved(VECTOR_WAKE))
        );
        register(0x60, note).unwrap();
        assert_eq!(register(0x60, note), Err(IrqError::Busy(0x60)));
        unregister(0x60);
        register(0x60, note).unwrap();
        unregister(0x60);
    }
}
