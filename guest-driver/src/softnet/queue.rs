//! `struct netdev_queue` and the `include/net/netdev_queues.h` macros.
//!
//! Memory ordering follows Linux exactly: atomic bit operations plus a
//! full `fence(SeqCst)` wherever the header has `smp_mb` /
//! `smp_mb__after_atomic`. The producer (xmit) stores its index, sets
//! the stop bit, fences, re-reads free space; the consumer (NAPI) stores
//! its index, fences (inside the BQL completion or explicitly), reads the
//! stop bit. That store-buffering pair guarantees no lost wake. The
//! fences are explicit (not SeqCst accesses) so that loom checks them.
//!
//! Callers must store their ring index *before* calling the macros, and
//! `get_desc` must read fresh values each time (it may be called twice).

use super::bql::{BqlError, Dql, StallReport, DEFAULT_SLACK_HOLD};
use super::sync::{fence, AtomicU32, AtomicU64, Ordering};
use super::{SoftnetEnv, SoftnetMutants};
use crate::abi::{Marker, QueueReason};

/// Queue state bit: stopped by the driver (`__QUEUE_STATE_DRV_XOFF`).
pub const DRV_XOFF: u32 = 1 << 0;
/// Queue state bit: stopped by BQL (`__QUEUE_STATE_STACK_XOFF`).
pub const STACK_XOFF: u32 = 1 << 1;
/// Queue state bit: frozen by the stack (`__QUEUE_STATE_FROZEN`), e.g.
/// around `ndo_tx_timeout`; the qdisc does not call xmit on it.
pub const FROZEN: u32 = 1 << 2;

/// One transmit queue.
pub struct TxQueue<'e> {
    state: AtomicU32,
    /// Wakes by [`Self::wake`] so far: the stack tells a BUSY after a
    /// wake (a false wake) from one without (see `NetDevice::xmit`).
    wakes: AtomicU32,
    trans_start: AtomicU64,
    dql: Dql,
    bql_enabled: bool,
    index: u32,
    mutants: SoftnetMutants,
    env: &'e (dyn SoftnetEnv + Sync),
}

impl<'e> TxQueue<'e> {
    /// A running queue (no XOFF bits) with a fresh dql.
    pub fn new(
        index: u32,
        bql_enabled: bool,
        mutants: SoftnetMutants,
        env: &'e (dyn SoftnetEnv + Sync),
    ) -> Self {
        Self {
            state: AtomicU32::new(0),
            wakes: AtomicU32::new(0),
            trans_start: AtomicU64::new(env.now_ns()),
            dql: Dql::new(DEFAULT_SLACK_HOLD, env.jiffies()),
            bql_enabled,
            index,
            mutants,
            env,
        }
    }

    /// The queue's index in its device.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The mutant switches this queue runs with.
    pub fn mutants(&self) -> SoftnetMutants {
        self.mutants
    }

    /// The environment (clock, markers) of this queue.
    pub fn env(&self) -> &'e (dyn SoftnetEnv + Sync) {
        self.env
    }

    /// The byte queue limit state.
    pub fn dql(&self) -> &Dql {
        &self.dql
    }

    /// Whether BQL accounting is on for this queue.
    pub fn bql_enabled(&self) -> bool {
        self.bql_enabled
    }

    /// Raw state bits ([`DRV_XOFF`], [`STACK_XOFF`], [`FROZEN`]).
    pub fn state(&self) -> u32 {
        self.state.load(Ordering::Acquire)
    }

    /// `netif_tx_queue_stopped`: DRV_XOFF only.
    pub fn stopped(&self) -> bool {
        self.state() & DRV_XOFF != 0
    }

    /// `netif_xmit_stopped`: either XOFF bit; the stack does not call
    /// xmit on such a queue.
    pub fn xmit_stopped(&self) -> bool {
        self.state() & (DRV_XOFF | STACK_XOFF) != 0
    }

    /// `netif_xmit_frozen_or_stopped`: what the qdisc checks before xmit.
    pub fn xmit_frozen_or_stopped(&self) -> bool {
        self.state() & (DRV_XOFF | STACK_XOFF | FROZEN) != 0
    }

    /// `netif_xmit_frozen_or_drv_stopped`.
    pub fn xmit_frozen_or_drv_stopped(&self) -> bool {
        self.state() & (DRV_XOFF | FROZEN) != 0
    }

    /// `netif_freeze_queues` for this queue: no xmit until unfrozen.
    pub fn freeze(&self) {
        self.state.fetch_or(FROZEN, Ordering::AcqRel);
    }

    /// `netif_unfreeze_queues` for this queue. Like Linux it does not
    /// reschedule: the caller (the watchdog) runs the qdisc again itself.
    pub fn unfreeze(&self) {
        self.state.fetch_and(!FROZEN, Ordering::AcqRel);
    }

    /// `netif_schedule_queue`: reschedule the qdisc unless an XOFF bit is
    /// still set (the driver's stop outlives a BQL restart).
    pub fn schedule(&self) {
        if !self.xmit_stopped() {
            self.env.netif_schedule(self.index);
        }
    }

    /// Time of the last stop or successful transmit (ns).
    pub fn trans_start(&self) -> u64 {
        self.trans_start.load(Ordering::Relaxed)
    }

    /// `txq_trans_cond_update`: the stack stamps progress after an OK xmit.
    pub fn trans_update(&self) {
        self.trans_start.store(self.env.now_ns(), Ordering::Relaxed);
    }

    fn report(&self, marker: Marker, reason: QueueReason) {
        self.env
            .marker(marker, &[reason as u64, u64::from(self.index)]);
    }

    /// Set an XOFF bit: stamp `trans_start` first (95ecba62e2fd), then
    /// the bit with release ordering (`smp_mb__before_atomic; set_bit`).
    fn set_xoff(&self, bit: u32) {
        self.trans_start.store(self.env.now_ns(), Ordering::Relaxed);
        self.state.fetch_or(bit, Ordering::AcqRel);
    }

    /// `netif_tx_stop_queue`.
    pub fn stop(&self, reason: QueueReason) {
        self.set_xoff(DRV_XOFF);
        self.report(Marker::QueueStop, reason);
    }

    /// `netif_tx_start_queue`: clear DRV_XOFF without rescheduling (the
    /// caller is inside xmit or open, so someone keeps dequeuing).
    pub fn start(&self, reason: QueueReason) {
        self.state.fetch_and(!DRV_XOFF, Ordering::AcqRel);
        self.report(Marker::QueueWake, reason);
    }

    /// `netif_tx_wake_queue`: test-and-clear DRV_XOFF and, if it was set,
    /// reschedule transmission. Returns whether the queue was stopped.
    pub fn wake(&self, reason: QueueReason) -> bool {
        let was = self.state.fetch_and(!DRV_XOFF, Ordering::AcqRel);
        if was & DRV_XOFF != 0 {
            self.wakes.fetch_add(1, Ordering::AcqRel);
            self.report(Marker::QueueWake, reason);
            self.env.netif_schedule(self.index);
            true
        } else {
            false
        }
    }

    /// How many times [`Self::wake`] restarted the queue.
    pub fn wakes(&self) -> u32 {
        self.wakes.load(Ordering::Acquire)
    }

    /// `netif_txq_try_stop`: 0 stopped, -1 stopped then restarted because
    /// a concurrent completion freed space.
    pub fn try_stop(&self, get_desc: impl Fn() -> u32, start_thrs: u32) -> i32 {
        // The producer's window (softnet.md scenario 8): it has read a low
        // free count and the stop bit is next. A completion that lands
        // here sees a running queue and does not wake it; only the
        // re-check below restarts it. Under the VMM's one-vCPU-at-a-time
        // scheduler a CPU switch happens only at an exit, so this is one
        // (another follows the stop bit: its marker).
        self.env.sched_point();
        self.stop(QueueReason::RingLow);
        if self.mutants.no_recheck {
            return 0;
        }
        // smp_mb__after_atomic: the stop bit and the producer index must
        // be visible before we re-read the consumer's progress; pairs with
        // the fence in completed_wake (store buffering).
        if !self.mutants.no_fence {
            fence(Ordering::SeqCst);
        }
        if get_desc() >= start_thrs {
            self.start(QueueReason::Raced);
            return -1;
        }
        0
    }

    /// `netif_txq_maybe_stop`: 1 left running, else [`Self::try_stop`].
    pub fn maybe_stop(&self, get_desc: impl Fn() -> u32, stop_thrs: u32, start_thrs: u32) -> i32 {
        if get_desc() < stop_thrs {
            self.try_stop(get_desc, start_thrs)
        } else {
            1
        }
    }

    /// `netif_txq_completed_wake`: 0 woken, 1 running (or vetoed), -1
    /// nothing completed or not enough room.
    pub fn completed_wake(
        &self,
        pkts: u32,
        bytes: u32,
        get_desc: impl Fn() -> u32,
        start_thrs: u32,
    ) -> Result<i32, BqlError> {
        self.completed_wake_cond(pkts, bytes, get_desc, start_thrs, false)
    }

    /// `__netif_txq_completed_wake` with `down_cond`: a true `down_cond`
    /// (device closing) vetoes the wake.
    pub fn completed_wake_cond(
        &self,
        pkts: u32,
        bytes: u32,
        get_desc: impl Fn() -> u32,
        start_thrs: u32,
        down_cond: bool,
    ) -> Result<i32, BqlError> {
        self.completed_mb(pkts, bytes)?;
        // As in the macro, free space is read only if something completed.
        let room = pkts != 0 && {
            let free = get_desc();
            if self.mutants.threshold_off_by_one {
                free > start_thrs
            } else {
                free >= start_thrs
            }
        };
        if room {
            let veto = if self.mutants.wake_inverted {
                !down_cond
            } else {
                down_cond
            };
            if self.stopped() && !veto {
                self.wake(QueueReason::Reclaim);
                return Ok(0);
            }
            return Ok(1);
        }
        Ok(-1)
    }

    /// `netif_txq_completed_wake`'s barrier: the BQL completion (whose
    /// fence we piggy-back on, 301f227fc860) or a bare full fence.
    fn completed_mb(&self, pkts: u32, bytes: u32) -> Result<(), BqlError> {
        if self.bql_enabled {
            self.completed_queue(pkts, bytes)
        } else {
            if bytes != 0 && !self.mutants.no_fence {
                fence(Ordering::SeqCst);
            }
            Ok(())
        }
    }

    /// `netdev_tx_sent_queue`: account `bytes` and set STACK_XOFF if over
    /// the limit (re-checked after a full fence). An object too big for
    /// BQL is not accounted (Linux WARNs) but, as in Linux, the limit is
    /// still checked; the error says what was ignored.
    pub fn sent_queue(&self, bytes: u32) -> Result<(), BqlError> {
        if !self.bql_enabled {
            return Ok(());
        }
        let queued = self.dql.queued_at(bytes, || self.env.jiffies());
        if self.dql.avail() >= 0 {
            return queued;
        }
        self.set_xoff(STACK_XOFF);
        // Pairs with the fence in completed_queue.
        if !self.mutants.no_fence {
            fence(Ordering::SeqCst);
        }
        if self.dql.avail() >= 0 {
            self.state.fetch_and(!STACK_XOFF, Ordering::AcqRel);
        } else {
            self.report(Marker::QueueStop, QueueReason::Bql);
        }
        queued
    }

    /// `__netdev_tx_sent_queue`: with `xmit_more` only account and return
    /// whether the driver stopped the queue; otherwise the full
    /// [`Self::sent_queue`], returning true. The result says whether to
    /// ring the doorbell now. Call maybe_stop *before* this. An object
    /// too big for BQL gives its error instead (the state is Linux's).
    pub fn sent_queue_more(&self, bytes: u32, xmit_more: bool) -> Result<bool, BqlError> {
        if xmit_more {
            if self.bql_enabled {
                self.dql.queued_at(bytes, || self.env.jiffies())?;
            }
            return Ok(self.stopped());
        }
        self.sent_queue(bytes)?;
        Ok(true)
    }

    /// `netdev_tx_completed_queue`: account a completion, fence, and
    /// clear STACK_XOFF (rescheduling unless the driver's stop remains)
    /// if back under the limit. A stall the BQL detector found on the
    /// way is reported as `Marker::BqlStall`.
    pub fn completed_queue(&self, _pkts: u32, bytes: u32) -> Result<(), BqlError> {
        if !self.bql_enabled || bytes == 0 {
            return Ok(());
        }
        if let Some(stall) = self.dql.completed(bytes, self.env.jiffies())? {
            self.report_stall(&stall);
        }
        // Pairs with the fence in sent_queue and in try_stop.
        if !self.mutants.no_fence {
            fence(Ordering::SeqCst);
        }
        if self.dql.avail() < 0 {
            return Ok(());
        }
        let was = self.state.fetch_and(!STACK_XOFF, Ordering::AcqRel);
        if was & STACK_XOFF != 0 {
            self.report(Marker::QueueWake, QueueReason::Bql);
            self.schedule();
        }
        Ok(())
    }

    /// `Marker::BqlStall`: queue, stall length and threshold (jiffies),
    /// stalls so far, ns per jiffy.
    fn report_stall(&self, s: &StallReport) {
        self.env.marker(
            Marker::BqlStall,
            &[
                u64::from(self.index),
                u64::from(s.len),
                u64::from(s.thrs),
                s.count,
                super::bql::NS_PER_JIFFY,
            ],
        );
    }

    /// `netdev_tx_reset_queue`: clear STACK_XOFF and reset the dql; only
    /// with an empty ring (`ring_inflight` packets still posted).
    pub fn reset_queue(&self, ring_inflight: u32) -> Result<(), BqlError> {
        if !self.bql_enabled {
            // As a kernel without CONFIG_BQL: nothing to reset.
            return Ok(());
        }
        self.dql.reset(ring_inflight, self.env.jiffies())?;
        self.state.fetch_and(!STACK_XOFF, Ordering::AcqRel);
        Ok(())
    }

    /// Report a BQL snapshot (`Marker::Bql`: queued, completed, limit,
    /// queue index) for the host's "BQL back to zero" oracle.
    pub fn report_bql(&self) {
        let d = self.dql.snapshot();
        self.env.marker(
            Marker::Bql,
            &[
                u64::from(d.num_queued),
                u64::from(d.num_completed),
                u64::from(d.limit),
                u64::from(self.index),
            ],
        );
    }

    /// The no-lost-wake oracle (scenario 8), for quiescence (no xmit, no
    /// poll, no pending IRQ): a queue the driver stopped although
    /// `free >= start_thrs`, or BQL-stopped with room under the limit,
    /// will never be woken. Returns which bit is stuck, or `None`.
    pub fn stuck_stopped(&self, free: u32, start_thrs: u32) -> Option<u32> {
        let state = self.state();
        if state & DRV_XOFF != 0 && free >= start_thrs {
            return Some(DRV_XOFF);
        }
        if self.bql_enabled && state & STACK_XOFF != 0 && self.dql.avail() >= 0 {
            return Some(STACK_XOFF);
        }
        None
    }

    /// `netif_xmit_timeout_ms` in ns: how long the queue has been
    /// xmit-stopped beyond `timeo_ns`, or `None`.
    pub fn xmit_timeout(&self, timeo_ns: u64) -> Option<u64> {
        if !self.xmit_stopped() {
            return None;
        }
        let since = self.env.now_ns().saturating_sub(self.trans_start());
        (since > timeo_ns).then_some(since)
    }
}
