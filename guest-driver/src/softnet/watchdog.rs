//! `dev_watchdog` (net/sched/sch_generic.c): a queue that has been
//! xmit-stopped for longer than `watchdog_timeo` without progress gets
//! `ndo_tx_timeout`. Progress is `trans_start`, stamped when the queue
//! stops, after every successful transmit and at open (`dev_activate`).
//! The caller ticks it from a timer; it runs only while the device is up
//! with carrier.

use super::queue::TxQueue;

/// Linux's default `watchdog_timeo` (5 s) in ns.
pub const DEFAULT_WATCHDOG_TIMEO_NS: u64 = 5_000_000_000;

/// Watchdog state for one queue.
#[derive(Clone, Copy, Debug)]
pub struct Watchdog {
    timeo_ns: u64,
    /// When it last fired (0: never); a fire re-arms it, as
    /// `dev_watchdog`'s `mod_timer` does.
    last_fire_ns: u64,
    fired: u32,
}

impl Watchdog {
    /// A watchdog with the given timeout.
    pub fn new(timeo_ns: u64) -> Self {
        Self {
            timeo_ns,
            last_fire_ns: 0,
            fired: 0,
        }
    }

    /// The timeout.
    pub fn timeo_ns(&self) -> u64 {
        self.timeo_ns
    }

    /// Timeouts fired so far (`trans_timeout`).
    pub fn fired(&self) -> u32 {
        self.fired
    }

    /// One tick. Returns the stall length if `ndo_tx_timeout` must be
    /// called now. After firing, the next timeout needs another full
    /// `timeo` without progress (re-armed from the fire time).
    pub fn check(&mut self, q: &TxQueue<'_>, running_with_carrier: bool) -> Option<u64> {
        if !running_with_carrier || !q.xmit_stopped() {
            return None;
        }
        let now = q.env().now_ns();
        let since = q.trans_start().max(self.last_fire_ns);
        let stalled = now.saturating_sub(since);
        if stalled <= self.timeo_ns {
            return None;
        }
        self.last_fire_ns = now;
        self.fired += 1;
        Some(now.saturating_sub(q.trans_start()))
    }
}
