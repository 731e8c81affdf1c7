//! The two small synchronisation tools the driver needs to run its
//! transmit side and its NAPI side on different CPUs.

use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicBool, Ordering};

use crate::softnet::skb::SkbPool;

/// A test-and-set spinlock. Held only for a few instructions (an skb
/// pool operation, a page allocation), never across a wait.
pub struct SpinLock<T> {
    locked: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: the lock hands out one guard at a time, so `T` is only ever
// reached from one CPU at once; moving `T` between CPUs needs `T: Send`.
unsafe impl<T: Send> Sync for SpinLock<T> {}

impl<T> SpinLock<T> {
    /// A lock around `value`.
    pub const fn new(value: T) -> Self {
        Self {
            locked: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    /// Take the lock. Each failed try runs `kernel::smp::relax`, which
    /// yields to the holder when the VMM runs one vCPU at a time.
    pub fn lock(&self) -> SpinGuard<'_, T> {
        while self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            crate::kernel::smp::relax();
        }
        SpinGuard { lock: self }
    }
}

/// Access to a locked value; unlocks on drop.
pub struct SpinGuard<'l, T> {
    lock: &'l SpinLock<T>,
}

impl<T> Deref for SpinGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the lock.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for SpinGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard holds the lock, and only one guard exists.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for SpinGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.locked.store(false, Ordering::Release);
    }
}

/// The skb pool, shared by xmit (reads skbs) and reclaim (frees them),
/// which may run on different CPUs. `borrow`/`borrow_mut` both lock
/// (the names keep single-CPU call sites readable). The pool is `Send`
/// (its env is `Sync`), so the lock makes it `Sync` without more unsafe.
pub struct SkbCell<'e>(SpinLock<SkbPool<'e>>);

impl<'e> SkbCell<'e> {
    /// Share `pool`.
    pub fn new(pool: SkbPool<'e>) -> Self {
        Self(SpinLock::new(pool))
    }

    /// Lock the pool (for reading).
    pub fn borrow(&self) -> SpinGuard<'_, SkbPool<'e>> {
        self.0.lock()
    }

    /// Lock the pool (for writing).
    pub fn borrow_mut(&self) -> SpinGuard<'_, SkbPool<'e>> {
        self.0.lock()
    }
}
