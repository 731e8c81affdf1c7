//! Transmit: `igc_xmit_frame` (with `igc_tx_map` and `igc_maybe_stop_tx`),
//! the doorbell, and `igc_clean_tx_irq`, the reclaim.

use core::sync::atomic::{fence, AtomicU32, Ordering};

use super::dma::DmaDir;
use super::stats::inc;
use super::{ring, Adapter, Rings, TX_START_THRESH, TX_STOP_THRESH};
use crate::abi::{
    self, regs as r, DriverMutant as Mutant, Marker, QueueReason, TxDesc, MAX_DESC_PER_PACKET,
    TXD_EOP, TXD_STAT_DONE,
};
use crate::softnet::netdev::NetdevTx;
use crate::softnet::skb::SkbId;

/// One TX ring slot's software state (igc's `tx_buffer`).
#[derive(Clone, Copy, Default)]
pub(super) struct TxBuf {
    /// Set on the first slot of a packet: the skb to free at completion.
    pub(super) skb: Option<SkbId>,
    /// Mapped address and length of this slot's fragment (0 = unmapped).
    pub(super) dma: u64,
    pub(super) len: u32,
    /// On the first slot: free-running index of the packet's EOP slot.
    pub(super) eop: u32,
    /// On the first slot: bytes of the packet (for BQL).
    pub(super) bytes: u32,
}

impl Rings {
    /// Free TX descriptors; one slot stays empty so full and empty differ.
    pub(super) fn tx_free(&self) -> u32 {
        tx_free(self.tx.size, &self.tx_prod, &self.tx_cons)
    }

    /// The slot of free-running index `idx`.
    ///
    /// # Safety
    /// The caller owns the slot under the protocol on `tx_buf`, and holds
    /// no other reference to it.
    #[allow(clippy::mut_from_ref)]
    pub(super) unsafe fn slot(&self, idx: u32) -> &mut TxBuf {
        // SAFETY: in bounds by the mask; exclusive by the caller's contract.
        unsafe { &mut *self.tx_buf[(idx & (self.tx.size - 1)) as usize].get() }
    }
}

pub(super) fn tx_free(size: u32, prod: &AtomicU32, cons: &AtomicU32) -> u32 {
    let used = prod
        .load(Ordering::Acquire)
        .wrapping_sub(cons.load(Ordering::Acquire));
    (size - 1).saturating_sub(used)
}

/// Why [`Adapter::tx_map`] posted nothing.
enum TxMapError {
    /// The skb left the pool after xmit's check (it cannot): nothing to
    /// free or unmap.
    SkbGone,
    /// A DMA map failed; the pieces mapped before it are unmapped again.
    MapFailed,
}

impl<'a, 'e> Adapter<'a, 'e> {
    /// `igc_xmit_frame`: one skb, then a [`Marker::TxRing`] snapshot if
    /// this call ends the batch (the stack will not call again before a
    /// doorbell is due: no xmit_more, BUSY, or a stopped queue), so the
    /// host can check that every posted descriptor got its doorbell.
    pub(super) fn xmit_frame(&self, skb: SkbId, xmit_more: bool) -> NetdevTx {
        let ret = self.xmit_frame_ring(skb, xmit_more);
        if !xmit_more || ret == NetdevTx::Busy || self.txq.xmit_stopped() {
            self.report_tx_ring(false);
        }
        ret
    }

    /// The TX ring and its BQL counters for the host's doorbell-pending
    /// and bql-balance oracles (`Marker::TxRing`). Not in BENCH mode: a
    /// marker is a VM exit.
    pub(super) fn report_tx_ring(&self, at_stop: bool) {
        let Some(rg) = self.rings() else { return };
        if self.cfg.bench {
            return;
        }
        let d = self.txq.dql().snapshot();
        let mut flags = if at_stop { abi::TX_RING_AT_STOP } else { 0 };
        if self.txq.bql_enabled() {
            flags |= abi::TX_RING_BQL;
        }
        let (prod, cons) = (
            rg.tx_prod.load(Ordering::Acquire),
            rg.tx_cons.load(Ordering::Acquire),
        );
        self.plat.marker(
            Marker::TxRing,
            &[
                u64::from(prod),
                u64::from(cons),
                u64::from(d.num_queued),
                u64::from(d.num_completed),
                flags,
            ],
        );
    }

    /// `igc_xmit_frame_ring`: checks, BUSY, the source address, then
    /// [`Adapter::tx_map`], the stop and BQL, and the doorbell. Transmit side
    /// only.
    fn xmit_frame_ring(&self, skb: SkbId, xmit_more: bool) -> NetdevTx {
        if self.cfg.mutant == Mutant::ReclaimOnXmit {
            self.clean_tx_irq();
        }
        let Some(rg) = self.rings() else {
            // Not open: the stack never calls us then; drop to be safe.
            return self.drop_skb(skb, xmit_more);
        };
        let got = self
            .skbs
            .borrow()
            .get(skb)
            .map(|s| (s.nr_descs(), s.len(), s.head_len()));
        let Ok((nr, bytes, head_len)) = got else {
            // A freed skb came back: only a driver that freed on BUSY
            // (busy-frees) causes this. Report, never touch it.
            inc(&self.st.stale_skbs, 1);
            self.plat.marker_text(
                Marker::OracleFail,
                &[u64::from(skb.0)],
                "busy-ownership: xmit got a freed skb",
            );
            return NetdevTx::Ok;
        };
        if nr == 0 || nr > MAX_DESC_PER_PACKET || bytes > abi::MAX_FRAME_LEN {
            return self.drop_skb(skb, xmit_more);
        }
        // Full ring at entry: only after a false wake (allowed, rare).
        // BUSY keeps no reference and frees nothing.
        if rg.tx_free() < nr {
            inc(&self.st.busy, 1);
            if !self.txq.stopped() {
                self.txq.stop(QueueReason::RingLow);
            }
            match self.cfg.mutant {
                Mutant::BusyFrees => {
                    let _ = self.skbs.borrow_mut().free(skb);
                }
                Mutant::BusyKeepsRef => self.kept.lock().push(skb),
                _ => {}
            }
            // Packets posted earlier in this xmit_more batch must still
            // reach the device: the batch ends here.
            self.ring_tx_doorbell();
            return NetdevTx::Busy;
        }
        // The hardware wants our address as the source (as some MACs
        // do without insertion support): writing the head of a clone
        // needs a private copy first (skb_cow_head, d4ca73591916).
        if head_len >= 12 {
            let mut pool = self.skbs.borrow_mut();
            let head = if self.cfg.mutant == Mutant::WritesClonedHead {
                pool.head_mut_unchecked(skb)
            } else {
                match pool.cow_head(skb) {
                    Ok(()) => pool.head_mut(skb),
                    Err(e) => Err(e),
                }
            };
            match head {
                Ok(h) => h[6..12].copy_from_slice(&self.mac),
                Err(_) => {
                    drop(pool);
                    return self.drop_skb(skb, xmit_more);
                }
            }
        }
        match self.tx_map(rg, skb, bytes) {
            Ok(()) => {}
            Err(TxMapError::SkbGone) => return NetdevTx::Ok,
            Err(TxMapError::MapFailed) => return self.drop_skb(skb, xmit_more),
        }
        if self.cfg.mutant != Mutant::NoStopInAdvance {
            self.maybe_stop_tx(rg);
        }
        // maybe_stop before the BQL hook (fbnic's order): with
        // xmit_more, ring only if the queue stopped.
        let ring_now = self.txq.sent_queue_more(bytes, xmit_more).unwrap_or(true);
        if ring_now {
            self.ring_tx_doorbell();
        }
        NetdevTx::Ok
    }

    /// `igc_tx_map`: map the skb's head and fragments, write one descriptor
    /// per piece (EOP on the last), fill the slots, mark the skb with its
    /// sequence number and publish the slots (the producer index store).
    /// Everything is mapped before the ring is touched, so a failure needs
    /// no descriptor rollback. Transmit side only.
    fn tx_map(&self, rg: &Rings, skb: SkbId, bytes: u32) -> Result<(), TxMapError> {
        let mut frags = [(0u64, 0u32); MAX_DESC_PER_PACKET as usize];
        let mut n = 0;
        {
            let pool = self.skbs.borrow();
            let Ok(s) = pool.get(skb) else {
                return Err(TxMapError::SkbGone);
            };
            if s.head_len() != 0 {
                frags[0] = (s.head_addr(), s.head_len());
                n = 1;
            }
            for f in s.frags() {
                frags[n] = (f.addr, f.len);
                n += 1;
            }
        }
        // Map everything before touching the ring, so a failure needs
        // no descriptor rollback.
        for i in 0..n {
            let (a, l) = frags[i];
            match self.dma.map(self.plat, a, u64::from(l), DmaDir::ToDevice) {
                Ok(bus) => frags[i].0 = bus,
                Err(_) => {
                    frags[..i]
                        .iter()
                        .for_each(|&(a, l)| self.dma.unmap(self.plat, a, u64::from(l)));
                    return Err(TxMapError::MapFailed);
                }
            }
        }
        let prod = rg.tx_prod.load(Ordering::Relaxed);
        for (i, &(addr, len)) in frags[..n].iter().enumerate() {
            let idx = prod.wrapping_add(i as u32);
            let last = i + 1 == n;
            rg.tx.write(
                idx,
                TxDesc {
                    addr,
                    len: len as u16,
                    flags: if last { TXD_EOP } else { 0 },
                    ..TxDesc::default()
                },
            );
            // SAFETY: slots from prod on belong to xmit until prod is published.
            *unsafe { rg.slot(idx) } = TxBuf {
                skb: None,
                dma: addr,
                len,
                eop: 0,
                bytes: 0,
            };
        }
        // SAFETY: as above.
        let first = unsafe { rg.slot(prod) };
        first.skb = Some(skb);
        first.eop = prod.wrapping_add(n as u32 - 1);
        first.bytes = bytes;
        let seq = self.tx_seq.fetch_add(1, Ordering::Relaxed);
        let _ = self.skbs.borrow_mut().set_mark(skb, seq);
        inc(&self.st.tx_packets, 1);
        // Publish the slots, and store the index before the stop macro
        // reads free space (it fences against reclaim's index store).
        rg.tx_prod
            .store(prod.wrapping_add(n as u32), Ordering::Release);
        Ok(())
    }

    /// `igc_maybe_stop_tx`: stop while a worst-case packet still fits.
    pub(super) fn maybe_stop_tx(&self, rg: &Rings) -> i32 {
        let size = rg.tx.size;
        let first = core::cell::Cell::new(true);
        let seen = core::cell::Cell::new(None);
        let get_desc = || {
            let free = tx_free(size, &rg.tx_prod, &rg.tx_cons);
            if seen.get().is_none() {
                seen.set(Some(free));
            }
            // The lost-wake window, forced: the stop macro has read a
            // low free count and not yet set the stop bit when a NAPI
            // poll (as an interrupt would run it here) reclaims and sees
            // a running queue, so only the re-check can restart it.
            if first.replace(false) && free < TX_STOP_THRESH && self.take_stop_window_reclaim() {
                self.clean_tx_irq();
            }
            free
        };
        let stop_thrs = if self.cfg.mutant == Mutant::StopEarly {
            TX_START_THRESH + 1
        } else {
            TX_STOP_THRESH
        };
        let r = self.txq.maybe_stop(get_desc, stop_thrs, TX_START_THRESH);
        if r == 0 && !self.cfg.bench {
            // Stopped: the free count the stop decision read.
            self.plat
                .marker(Marker::QueueFree, &[0, u64::from(seen.get().unwrap_or(0))]);
        }
        r
    }

    /// Test hook for the lost-wake scenario: the next `times` stops of
    /// the queue run a reclaim between reading the free count and setting
    /// the stop bit (transmit and NAPI on one CPU, so this is the only
    /// way to land a completion in that window deterministically).
    pub fn inject_reclaim_in_stop_window(&self, times: u32) {
        self.stop_window_reclaims.store(times, Ordering::Relaxed);
    }

    fn take_stop_window_reclaim(&self) -> bool {
        self.stop_window_reclaims
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok()
    }

    /// Write TX_TAIL if descriptors were posted since the last doorbell.
    fn ring_tx_doorbell(&self) {
        let Some(rg) = self.rings() else { return };
        let prod = rg.tx_prod.load(Ordering::Relaxed);
        if prod == rg.tx_tail.load(Ordering::Relaxed) {
            return;
        }
        // wmb: descriptors reach memory before the device sees the tail.
        fence(Ordering::Release);
        rg.tx_tail.store(prod, Ordering::Relaxed);
        self.regs.write(r::TX_TAIL, prod);
        inc(&self.st.doorbells, 1);
    }

    /// Drop: free the skb and return OK (ibmvnic 7f5b030830fe); the last
    /// skb of a batch still rings for the ones before it (bnxt e8d8c5d80f5e).
    fn drop_skb(&self, skb: SkbId, xmit_more: bool) -> NetdevTx {
        let _ = self.skbs.borrow_mut().free(skb);
        inc(&self.st.tx_dropped, 1);
        // The mutant returns as if a dropped skb had nothing to flush.
        if !xmit_more && self.cfg.mutant != Mutant::DropSkipsDoorbell {
            self.ring_tx_doorbell();
        }
        NetdevTx::Ok
    }

    /// `igc_clean_tx_irq`: reclaim completed packets (unmap, free, BQL
    /// completed), store the consumer index, then completed_wake.
    /// NAPI side only. Returns packets reclaimed.
    pub fn clean_tx_irq(&self) -> u32 {
        let Some(rg) = self.rings() else { return 0 };
        let prod = rg.tx_prod.load(Ordering::Acquire);
        let mut cons = rg.tx_cons.load(Ordering::Relaxed);
        let (mut pkts, mut bytes) = (0u32, 0u32);
        while cons != prod {
            // SAFETY: [cons, prod) belongs to reclaim (prod loaded Acquire).
            let first = *unsafe { rg.slot(cons) };
            let Some(skb) = first.skb else {
                // Not the start of a packet: ring state is corrupt. Stop
                // reclaiming rather than free the wrong thing.
                break;
            };
            if ring::tx_status(&rg.tx, first.eop) & TXD_STAT_DONE == 0 {
                break;
            }
            // dma_rmb: read the rest only after seeing DONE.
            fence(Ordering::Acquire);
            let mut i = cons;
            loop {
                // SAFETY: still inside [cons, prod).
                let b = unsafe { rg.slot(i) };
                self.dma.unmap(self.plat, b.dma, u64::from(b.len));
                *b = TxBuf::default();
                if i == first.eop {
                    break;
                }
                i = i.wrapping_add(1);
            }
            let _ = self.skbs.borrow_mut().free(skb);
            pkts += 1;
            bytes += first.bytes;
            cons = first.eop.wrapping_add(1);
        }
        if pkts == 0 {
            return 0;
        }
        inc(&self.st.tx_completed, u64::from(pkts));
        let size = rg.tx.size;
        let late = self.cfg.mutant == Mutant::ConsIndexLate;
        // The index goes out before completed_wake's fence (which pairs
        // with the one in try_stop); the mutant stores it after.
        if !late {
            rg.tx_cons.store(cons, Ordering::Release);
        }
        let (p, c) = (&rg.tx_prod, &rg.tx_cons);
        // The mutant counts completions 4 bytes (an FCS) short per
        // packet: a length taken elsewhere than the one xmit reported.
        let bql_bytes = if self.cfg.mutant == Mutant::BqlMiscount {
            bytes.saturating_sub(4 * pkts)
        } else {
            bytes
        };
        let start_thrs = if self.cfg.mutant == Mutant::WakeEarly {
            TX_START_THRESH - 1
        } else {
            TX_START_THRESH
        };
        let seen = core::cell::Cell::new(0);
        let get_desc = || {
            let free = tx_free(size, p, c);
            seen.set(free);
            free
        };
        let woke = self
            .txq
            .completed_wake(pkts, bql_bytes, get_desc, start_thrs);
        if woke == Ok(0) && !self.cfg.bench {
            // Woken: the free count the wake decision read.
            self.plat
                .marker(Marker::QueueFree, &[1, u64::from(seen.get())]);
        }
        if late {
            rg.tx_cons.store(cons, Ordering::Release);
        }
        if woke.is_err() {
            self.plat.marker_text(
                Marker::OracleFail,
                &[u64::from(bytes)],
                "bql: completed more than queued",
            );
        }
        pkts
    }

    /// The driver's service timer (igc's watchdog task), run from the
    /// scenario's timer tick on the CPU that runs NAPI. The correct driver
    /// does nothing here: its reclaim runs from the completion interrupt's
    /// poll. The `reclaim-in-service-task` mutant reclaims only here.
    pub fn service_timer(&self) {
        if self.cfg.mutant == Mutant::ReclaimInServiceTask {
            self.clean_tx_on_slow_timer();
        }
    }

    /// The `reclaim-in-service-task` mutant's reclaim: only from a
    /// periodic service task (every 2 s, a timer independent of
    /// interrupts), never from the completion interrupt's poll, so
    /// completions reach BQL up to two seconds late.
    fn clean_tx_on_slow_timer(&self) {
        const SERVICE_PERIOD_NS: u64 = 2_000_000_000;
        let now = self.plat.now_ns();
        let due = self.slow_reclaim_due_ns.load(Ordering::Relaxed);
        if due == 0 {
            self.slow_reclaim_due_ns
                .store(now + SERVICE_PERIOD_NS, Ordering::Relaxed);
        } else if now >= due {
            self.slow_reclaim_due_ns.store(0, Ordering::Relaxed);
            self.clean_tx_irq();
        }
    }

    /// Free TX descriptors (0 when closed).
    pub fn tx_free(&self) -> u32 {
        self.rings().map_or(0, Rings::tx_free)
    }
}
