//! The driver's counters: each side bumps its own, [`Adapter::stats`]
//! takes a snapshot.

use core::sync::atomic::{AtomicU64, Ordering};

use super::Adapter;

/// Counters the scenario and tests read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NicStats {
    /// Packets posted to the ring.
    pub tx_packets: u64,
    /// Packets dropped at xmit (map failure, empty or stale skb).
    pub tx_dropped: u64,
    /// Packets completed by the device.
    pub tx_completed: u64,
    /// Packets aborted at stop.
    pub tx_aborted: u64,
    /// Frames delivered to the stack.
    pub rx_packets: u64,
    /// Frames the device flagged as faulty.
    pub rx_errors: u64,
    /// BUSY returns (full ring at entry).
    pub busy: u64,
    /// Doorbells written.
    pub doorbells: u64,
    /// Stale skb ids handed to xmit (only a mutant makes these).
    pub stale_skbs: u64,
    /// Resets that did not finish within the bound.
    pub reset_timeouts: u64,
    /// ndo_tx_timeout calls.
    pub tx_timeouts: u64,
}

/// The live counters behind [`NicStats`] (each side bumps its own).
#[derive(Default)]
pub(super) struct Counters {
    pub(super) tx_packets: AtomicU64,
    pub(super) tx_dropped: AtomicU64,
    pub(super) tx_completed: AtomicU64,
    pub(super) tx_aborted: AtomicU64,
    pub(super) rx_packets: AtomicU64,
    pub(super) rx_errors: AtomicU64,
    pub(super) busy: AtomicU64,
    pub(super) doorbells: AtomicU64,
    pub(super) stale_skbs: AtomicU64,
    pub(super) reset_timeouts: AtomicU64,
    pub(super) tx_timeouts: AtomicU64,
}

pub(super) fn inc(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

impl<'a, 'e> Adapter<'a, 'e> {
    /// A snapshot of the counters.
    pub fn stats(&self) -> NicStats {
        let c = &self.st;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        NicStats {
            tx_packets: g(&c.tx_packets),
            tx_dropped: g(&c.tx_dropped),
            tx_completed: g(&c.tx_completed),
            tx_aborted: g(&c.tx_aborted),
            rx_packets: g(&c.rx_packets),
            rx_errors: g(&c.rx_errors),
            busy: g(&c.busy),
            doorbells: g(&c.doorbells),
            stale_skbs: g(&c.stale_skbs),
            reset_timeouts: g(&c.reset_timeouts),
            tx_timeouts: g(&c.tx_timeouts),
        }
    }
}
