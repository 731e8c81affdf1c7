//! A small softnet core that behaves like Linux's, for the NIC driver.
//!
//! - [`skb`]: socket buffers from a fixed pool (linear head + page frags,
//!   clones sharing data with a reference count, `cow_head`), with a
//!   ledger that knows the live skbs and refuses double frees.
//! - [`queue`]: `netdev_queue` state (DRV_XOFF, STACK_XOFF, FROZEN) and the
//!   `include/net/netdev_queues.h` macros with their exact return values
//!   and full fences, plus the BQL hooks of `netdevice.h`.
//! - [`bql`]: `lib/dynamic_queue_limits.c` (dql) with its stall detector,
//!   bit for bit (the `linux-ref` crate's differential test checks it
//!   against Linux's C).
//! - [`napi`]: NAPI scheduling state and the budgeted poll contract.
//! - [`watchdog`]: `dev_watchdog`: tx_timeout for a stopped queue that
//!   makes no progress.
//! - [`netdev`]: `net_device` with its ops, register/unregister (auto
//!   close) and a tiny qdisc that drives xmit with xmit_more batches.
//!
//! Markers the core reports itself (drivers must not repeat them):
//! Register, OpenEnter/OpenExit, StopEnter/StopExit (StopExit only after
//! `ndo_stop` returned), UnregisterEnter/UnregisterExit, XmitBusy,
//! TxTimeout (netdev); QueueStop/QueueWake with a `QueueReason` (queue);
//! SkbAlloc/SkbClone/SkbFree (skb, switchable for benchmarks).
//!
//! Everything here is portable: time and markers come through
//! [`SoftnetEnv`], so host tests and loom run the same code as the guest.
//! Concurrency contract (as in Linux): one producer (xmit) and one
//! consumer (NAPI reclaim) per queue; the skb pool and the device ops
//! are `&mut` and the caller serialises them.

pub mod bql;
pub mod napi;
pub mod netdev;
pub mod queue;
pub mod skb;
pub mod watchdog;

mod sync;

use crate::abi::{DriverMutant, Marker};
use crate::platform::Platform;

/// Time and marker services the softnet core needs.
pub trait SoftnetEnv {
    /// Monotonic time in nanoseconds.
    fn now_ns(&self) -> u64;
    /// Linux's `jiffies` ([`bql::HZ`] per second) for BQL: derived from
    /// [`Self::now_ns`]; a test may run its own (wrapping) clock.
    fn jiffies(&self) -> u64 {
        bql::ns_to_jiffies(self.now_ns())
    }
    /// Report a marker to the host (or record it in a test).
    fn marker(&self, marker: Marker, args: &[u64]);
    /// `__netif_schedule` of the queue's qdisc: a stopped queue was woken;
    /// make sure the transmitter runs again (e.g. kick the CPU that
    /// sleeps in xmit). The queue calls it as Linux does: on every wake
    /// that cleared DRV_XOFF, and after a BQL restart only if no XOFF bit
    /// is left (`netif_schedule_queue`).
    fn netif_schedule(&self, _queue: u32) {}
    /// A scheduling point ([`Platform::sched_point`]): the queue calls it
    /// in try_stop, between the producer's free-space read and its stop
    /// bit.
    fn sched_point(&self) {}
}

/// A [`SoftnetEnv`] over the machine's [`Platform`].
pub struct PlatformEnv<'a, P: ?Sized>(pub &'a P);

impl<P: Platform + ?Sized> SoftnetEnv for PlatformEnv<'_, P> {
    fn now_ns(&self) -> u64 {
        self.0.now_ns()
    }
    fn marker(&self, marker: Marker, args: &[u64]) {
        self.0.marker(marker, args)
    }
    fn sched_point(&self) {
        self.0.sched_point()
    }
}

/// An environment that reports nothing and whose clock stands still
/// (loom models, benchmarks without markers).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoEnv;

impl SoftnetEnv for NoEnv {
    fn now_ns(&self) -> u64 {
        0
    }
    fn marker(&self, _: Marker, _: &[u64]) {}
}

/// Deliberate bugs that live in the softnet core, switched at run time
/// so the oracles can be shown to catch them (abi::DriverMutant).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SoftnetMutants {
    /// No full fence in try_stop, completed_wake and the BQL hooks.
    pub no_fence: bool,
    /// try_stop does not re-check free space after setting DRV_XOFF.
    pub no_recheck: bool,
    /// completed_wake compares with `>` where try_stop uses `>=`
    /// (894d7508316e).
    pub threshold_off_by_one: bool,
    /// completed_wake's `down_cond` used un-negated (649c3fed3673).
    pub wake_inverted: bool,
}

impl SoftnetMutants {
    /// The correct softnet core.
    pub const NONE: Self = Self {
        no_fence: false,
        no_recheck: false,
        threshold_off_by_one: false,
        wake_inverted: false,
    };

    /// The softnet part of a driver mutant; driver-side mutants map to
    /// the correct core.
    pub fn from_driver_mutant(m: DriverMutant) -> Self {
        let mut s = Self::NONE;
        match m {
            DriverMutant::NoFence => s.no_fence = true,
            DriverMutant::NoRecheck => s.no_recheck = true,
            DriverMutant::ThresholdOffByOne => s.threshold_off_by_one = true,
            DriverMutant::WakeInverted => s.wake_inverted = true,
            _ => {}
        }
        s
    }
}

/// Linux errno values the softnet core and driver return.
pub mod errno {
    /// Out of memory (pool exhausted).
    pub const ENOMEM: i32 = 12;
    /// Device or resource busy.
    pub const EBUSY: i32 = 16;
    /// No such device.
    pub const ENODEV: i32 = 19;
    /// Invalid argument.
    pub const EINVAL: i32 = 22;
    /// Cannot assign requested address (open with an invalid MAC).
    pub const EADDRNOTAVAIL: i32 = 99;
}
