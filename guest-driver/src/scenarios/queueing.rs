//! Queueing scenarios of the matrix (softnet.md §5 rows 8, 10-16, 19, 21).
//!
//! `scenarios::run_with_pool` dispatches every scenario of the catalogue's
//! `abi::Group::Queueing` here. The host half (device faults, knobs, the cases and
//! the oracle each mutant must trip) is vmm/src/scenarios/queueing.rs.
//!
//! Guest-side oracles report `Marker::OracleFail` with a text that starts
//! with the oracle's short name (`timely:`, `small-budget:`, `watchdog:`,
//! `clone-head:`, `soak:`, `skb-ledger:`, `dma-maps:`, `bql:`,
//! `stop-early:`, `doorbell:`, `stuck-stopped:`, `false-wake:`); the
//! matrix names them `guest:<name>`. lost-wake variant 0 forces the race
//! windows on one CPU (device completes on request + the driver's
//! `inject_reclaim_in_stop_window` hook); variant 1 and bql-random are the
//! default traffic loop (its oracle text is `lost wake:`), with NAPI on a
//! second CPU or with seeded batches.

use alloc::format;
use alloc::string::String;

use super::ctx::{self, Ctx, Stack};
use super::{default, Verdict};
use crate::abi::regs as r;
use crate::abi::{knob, DriverMutant, RunConfig, Scenario, MAX_SKB_FRAGS};
use crate::driver::dma::DmaPool;
use crate::driver::{TX_START_THRESH, TX_STOP_THRESH};
use crate::platform::Platform;
use crate::softnet::netdev::Qdisc;
use crate::softnet::skb::SkbId;

/// skbs the pool holds.
const POOL_SKBS: u16 = 128;
/// Bound on every wait for the device. A correct run needs a few ms; the
/// bound is far above that because a loaded host can deschedule a vCPU
/// for tens of ms (50 ms failed the watchdog scenario under load).
const WAIT_NS: u64 = 500_000_000;
/// The driver's TX coalescing deadline (tx-usecs), in ns.
const TX_USECS_NS: u64 = 200_000;
/// Slack on top of tx-usecs for a completion to be reclaimed: the
/// software KVM backend makes each exit ~5 us and a poll ~100 us apart.
const TIMELY_EPSILON_NS: u64 = 5_000_000;
/// Short watchdog_timeo so the watchdog scenario stays well under a second.
const WATCHDOG_TIMEO_NS: u64 = 5_000_000;
/// Soak cycles when the CYCLES knob is 0.
const SOAK_CYCLES: u64 = 5;

/// Run `scenario` (one of `abi::Group::Queueing`) with DMA memory from `pool`.
pub fn run(
    plat: &(dyn Platform + Sync),
    cfg: &RunConfig,
    scenario: Scenario,
    pool: DmaPool,
) -> Verdict {
    match scenario {
        // Scenario 8, variant 1: the default traffic loop with NAPI on
        // CPU 1 (its quiescence oracle flags a stopped queue with a free
        // ring) on a 64-entry ring, so the queue stops and wakes often.
        // A real race: the VM exits of markers and BQL mostly mask the
        // mutants here; variant 0 forces the windows instead.
        Scenario::LostWake if cfg.knobs[knob::VARIANT] == 1 => {
            return super::run_smp(plat, cfg, pool)
        }
        // Scenario 11: seeded sizes (default's Shapes) and a seeded
        // xmit_more batch from the host; the softnet Dql checks its
        // invariants on every call and the end checks inflight == 0.
        Scenario::BqlRandom => return default::run(plat, cfg, pool, default::Mode::Single),
        _ => {}
    }
    // lost-wake runs without BQL so only the ring stops the queue.
    let bql = scenario != Scenario::LostWake;
    let stack = Stack {
        pool_skbs: POOL_SKBS,
        bql,
        watchdog_timeo_ns: WATCHDOG_TIMEO_NS,
        seed_salt: 0x9e0e,
    };
    ctx::with_stack(plat, cfg, pool, stack, |mut c| {
        let body = c.open().and_then(|()| match scenario {
            Scenario::LostWake => lost_wake(&mut c),
            Scenario::FalseWake => false_wake(&mut c),
            Scenario::TimelyCompletion | Scenario::DroppedIrq => timely(&mut c, scenario),
            Scenario::SmallBudget => small_budget(&mut c),
            Scenario::Watchdog => watchdog(&mut c),
            Scenario::ClonePairs => clone_pairs(&mut c),
            Scenario::BatchLastDropped => batch_last_dropped(&mut c),
            Scenario::Soak => soak(&mut c),
            s => Err(format!("scenario {} is not a queueing scenario", s.name())),
        });
        let note = body.unwrap_or_else(|e| {
            c.fail(&e);
            String::new()
        });
        finish(c, scenario, note)
    })
}

/// The queueing group's helpers on the shared [`Ctx`].
trait Queueing {
    fn skb(&mut self, head: &[u8], nfrags: usize, len: u32) -> Result<SkbId, String>;
    fn mixed_skb(&mut self) -> Result<SkbId, String>;
    fn send(&mut self, q: &mut Qdisc, batch: u32) -> u32;
    fn pump(
        &mut self,
        q: &mut Qdisc,
        batch: u32,
        bound_ns: u64,
        done: impl FnMut(&Self) -> bool,
    ) -> bool;
    fn xmit_one(&mut self) -> Result<(), String>;
    fn complete_now(&self);
    fn all_back(&self) -> bool;
}

impl Queueing for Ctx<'_, '_, '_, '_> {
    /// A seeded frame of 1..=MAX_SKB_FRAGS fragments, `len` bytes in all,
    /// with an optional linear head (copied into the skb's data block).
    fn skb(&mut self, head: &[u8], nfrags: usize, len: u32) -> Result<SkbId, String> {
        let n = nfrags.clamp(1, MAX_SKB_FRAGS as usize);
        let per = (len / n as u32).max(1);
        self.payload_skb(head, n, per, 4096)
            .map_err(|e| format!("skb-ledger: alloc failed: {e}"))
    }

    /// A frame of mixed shape ([`Ctx::mixed_shape`]), no linear head.
    fn mixed_skb(&mut self) -> Result<SkbId, String> {
        let (n, len) = self.mixed_shape();
        self.skb(&[], n, len)
    }

    /// Hand `skbs` to the stack and push them to the driver, batch
    /// `batch` (xmit_more), without polling.
    fn send(&mut self, q: &mut Qdisc, batch: u32) -> u32 {
        self.dev.qdisc_run(q, batch).sent
    }

    /// Send from `q` and poll until `q` is empty and `done` holds; false
    /// after `bound_ns`.
    fn pump(
        &mut self,
        q: &mut Qdisc,
        batch: u32,
        bound_ns: u64,
        mut done: impl FnMut(&Self) -> bool,
    ) -> bool {
        let deadline = self.plat.now_ns() + bound_ns;
        loop {
            self.send(q, batch);
            let moved = self.poll();
            if q.is_empty() && done(self) {
                return true;
            }
            if self.plat.now_ns() > deadline {
                return self.last_chance() && q.is_empty() && done(self);
            }
            if moved == 0 && !self.napi.is_scheduled() {
                // Until the next interrupt (a completion, a frame back).
                self.nic.wait_until(deadline + 1);
            }
        }
    }

    /// One single-descriptor frame straight to the driver (no batching).
    fn xmit_one(&mut self) -> Result<(), String> {
        let r = self.rand();
        let id = self.skb(&[], 1, 60 + (r % 1000) as u32)?;
        match self.dev.xmit(id, false) {
            crate::softnet::netdev::NetdevTx::Ok => Ok(()),
            busy => {
                let _ = self.skbs.borrow_mut().free(id);
                Err(format!(
                    "stop-early: xmit returned {busy:?} (free {})",
                    self.nic.tx_free()
                ))
            }
        }
    }

    /// complete-on-request device: complete everything fetched, and give
    /// the device clock time to write it back.
    fn complete_now(&self) {
        self.nic.wait_until(self.plat.now_ns() + 500_000);
        self.nic.regs().write(r::TEST_COMPLETE, 1);
        self.nic.wait_until(self.plat.now_ns() + 500_000);
    }

    /// Every frame posted so far completed and came back (loopback).
    fn all_back(&self) -> bool {
        let s = self.nic.stats();
        s.tx_completed + s.tx_aborted >= s.tx_packets && s.rx_packets + s.tx_aborted >= s.tx_packets
    }
}

/// Scenario 8, variant 0: the lost-wake windows forced on one CPU. The
/// device completes only on TEST_COMPLETE (host knob), BQL is off, and
/// every frame is one descriptor, so the free count is exact:
///
/// 1. Post A frames and let the device complete them (not reclaimed).
/// 2. Post frames until the ring stops (free = STOP - 1), with A chosen
///    so that reclaiming A gives exactly START free.
/// 3. Round "window": a reclaim runs between the stop macro's free read
///    and its stop bit (driver hook): only the re-check restarts.
///    Round "after": the reclaim runs after the stop: only the wake
///    (free >= START, computed after the consumer index store) restarts.
///
/// Then at quiescence (no xmit, no poll pending, nothing completing) the
/// queue must not be stopped with free >= START (`TxQueue::stuck_stopped`).
fn lost_wake(c: &mut Ctx<'_, '_, '_, '_>) -> Result<String, String> {
    let usable = c.nic.tx_free();
    let a = TX_START_THRESH - (TX_STOP_THRESH - 1);
    let b = usable - (TX_STOP_THRESH - 1) - a;
    for (round, window) in [(1, true), (2, false)] {
        c.phase(
            round,
            if window {
                "reclaim inside the stop window"
            } else {
                "reclaim after the stop"
            },
        );
        for _ in 0..a {
            c.xmit_one()?;
        }
        c.complete_now();
        if window {
            c.nic.inject_reclaim_in_stop_window(1);
        }
        for _ in 0..b {
            c.xmit_one()?;
        }
        c.nic.inject_reclaim_in_stop_window(0);
        if !window {
            if !c.txq.stopped() {
                return Err(format!(
                    "lost-wake: the ring did not stop (free {})",
                    c.nic.tx_free()
                ));
            }
            c.poll();
        }
        // Quiescent now: the B frames are posted but the device holds
        // them until TEST_COMPLETE; nothing else runs.
        let free = c.nic.tx_free();
        if let Some(bit) = c.txq.stuck_stopped(free, TX_START_THRESH) {
            return Err(format!(
                "stuck-stopped: queue stopped (state bit {bit:#x}) with {free} free >= start threshold {TX_START_THRESH} at quiescence ({} round)",
                if window { "window" } else { "after" }
            ));
        }
        c.complete_now();
        if !c.poll_until(WAIT_NS, |c| c.skbs.borrow().live() == 0 && c.all_back()) {
            return Err(format!(
                "timely: frames of round {round} never completed ({:?})",
                c.nic.stats()
            ));
        }
    }
    Ok(format!(
        "2 rounds of {a}+{b} frames, a reclaim inside and after the stop window, no lost wake"
    ))
}

/// Scenario 10: completions land exactly when the producer restarts. The
/// device completes only on TEST_COMPLETE (host knob); between batches
/// the guest has it complete at seeded moments without reclaiming, and
/// every stop runs a reclaim inside its window (driver hook), so the
/// queue restarts from the re-check while completions are still being
/// processed. A spurious (false) wake is allowed; what must not happen:
/// BUSY (the entry check must catch a full ring, never a posted skb), a
/// stale or double-freed skb, or a frame lost or sent twice.
fn false_wake(c: &mut Ctx<'_, '_, '_, '_>) -> Result<String, String> {
    let frames = match c.cfg.knobs[knob::FRAMES] {
        0 => 32,
        n => n.min(POOL_SKBS as u64 / 2),
    };
    let mut q = Qdisc::new(frames as usize);
    for _ in 0..frames {
        let id = c.mixed_skb()?;
        q.enqueue(id).map_err(|_| String::from("qdisc full"))?;
    }
    // Each round waits ~1 ms for the device (complete_now): a loose bound.
    let deadline = c.plat.now_ns() + 20 * WAIT_NS;
    let (mut restarts, mut rounds) = (0u32, 0u32);
    loop {
        c.nic.inject_reclaim_in_stop_window(1);
        let batch = 1 + (c.rand() % 4) as u32;
        c.send(&mut q, batch);
        rounds += 1;
        if c.rand().is_multiple_of(2) {
            c.complete_now();
        }
        if c.txq.stopped() {
            // Nothing raced the stop: complete and reclaim for real.
            c.complete_now();
            c.poll();
        } else if c.nic.stats().tx_packets > 0 && c.rand().is_multiple_of(3) {
            restarts += 1;
            c.poll();
        }
        if q.is_empty() {
            c.complete_now();
            if c.poll_until(WAIT_NS, |c| c.skbs.borrow().live() == 0 && c.all_back()) {
                break;
            }
        }
        if c.plat.now_ns() > deadline {
            return Err(format!(
                "timely: false-wake traffic did not finish ({:?})",
                c.nic.stats()
            ));
        }
    }
    c.nic.inject_reclaim_in_stop_window(0);
    let s = c.nic.stats();
    c.check(
        s.stale_skbs == 0,
        "false-wake: a freed skb was handed to xmit",
    );
    c.check(
        s.tx_packets == frames && s.rx_packets == frames,
        &format!(
            "false-wake: {frames} frames given, {} posted, {} received",
            s.tx_packets, s.rx_packets
        ),
    );
    Ok(format!(
        "{frames} frames in {rounds} rounds, {restarts} early reclaims, 0 BUSY"
    ))
}

/// Scenarios 14 and 15: k frames, fewer than the coalescing frame
/// threshold, then idle (no further xmit). Every skb must be freed within
/// tx-usecs + epsilon of the last xmit: with no frame threshold reached,
/// only the device's usecs timer (or the driver's re-poll, when the host
/// drops that interrupt) completes them. "Reclaim only on the next
/// transmit" never frees them.
fn timely(c: &mut Ctx<'_, '_, '_, '_>, s: Scenario) -> Result<String, String> {
    let k = match c.cfg.knobs[knob::FRAMES] {
        0 => 1 + c.rand() % 8,
        n => n.min(31),
    };
    let rounds = if s == Scenario::DroppedIrq { 3 } else { 1 };
    let mut worst = 0;
    for round in 0..rounds {
        c.phase(1 + round, "k frames then idle");
        let mut q = Qdisc::new(k as usize);
        for _ in 0..k {
            let id = c.mixed_skb()?;
            q.enqueue(id).map_err(|_| String::from("qdisc full"))?;
        }
        // BQL lets only part of a burst out before completions raise its
        // limit: push until the stack has handed everything over.
        if !c.pump(&mut q, 1, WAIT_NS, |_| true) {
            return Err(format!(
                "timely: the stack could not hand over {k} frames ({:?})",
                c.nic.stats()
            ));
        }
        let t0 = c.plat.now_ns();
        let bound = TX_USECS_NS + TIMELY_EPSILON_NS;
        let ok = c.poll_until(bound, |c| c.skbs.borrow().live() == 0 && c.all_back());
        let took = c.plat.now_ns() - t0;
        worst = worst.max(took);
        if !ok {
            let live = c.skbs.borrow().live();
            let what = if s == Scenario::DroppedIrq {
                "after a dropped completion interrupt"
            } else {
                "below the frame threshold"
            };
            let within = format!("within tx-usecs + {} us {what}", TIMELY_EPSILON_NS / 1000);
            // The wait also needs every frame back: say which half failed
            // (with a null backend, say, every skb is freed and none returns).
            return Err(if live > 0 {
                format!("timely: {live} of {k} skbs not freed {within}")
            } else {
                let st = c.nic.stats();
                format!(
                    "timely: every skb freed, but {} of {} frames came back {within}",
                    st.rx_packets, st.tx_packets
                )
            });
        }
    }
    Ok(format!(
        "{rounds} x {k} frames, every skb freed within {} us (bound {} us)",
        worst / 1000,
        (TX_USECS_NS + TIMELY_EPSILON_NS) / 1000
    ))
}

/// Scenario 16: a sender that may only have `budget` frames in flight
/// (SNDBUF-like: its skbs count until freed) sends N frames; it sends
/// the next only after an earlier one is freed. It must finish: the
/// driver has to free skbs without further transmits (the mvneta case).
fn small_budget(c: &mut Ctx<'_, '_, '_, '_>) -> Result<String, String> {
    let budget = 1 + c.rand() % 3;
    let frames = match c.cfg.knobs[knob::FRAMES] {
        0 => 12,
        n => n.min(64),
    };
    let mut q = Qdisc::new(budget as usize);
    let mut sent = 0u64;
    while sent < frames {
        // Wait until the socket's budget has room (its skbs are freed).
        let ok = c.pump(&mut q, 1, WAIT_NS, |c| {
            u64::from(c.skbs.borrow().live()) < budget
        });
        if !ok {
            return Err(format!("small-budget: the sender blocked forever after {sent} frames (budget {budget} in flight)"));
        }
        let id = c.mixed_skb()?;
        q.enqueue(id).map_err(|_| String::from("qdisc full"))?;
        sent += 1;
    }
    if !c.pump(&mut q, 1, WAIT_NS, |c| {
        c.skbs.borrow().live() == 0 && c.all_back()
    }) {
        return Err(String::from(
            "small-budget: the last frames were never freed",
        ));
    }
    Ok(format!("{frames} frames with {budget} in flight at most"))
}

/// Scenario 19: the device stops completing (host knob) while frames are
/// in flight; the queue stops (ring or BQL) and must get ndo_tx_timeout
/// within watchdog_timeo + one tick period, after which the reset
/// recovers: the queue runs again, traffic flows, nothing leaks.
fn watchdog(c: &mut Ctx<'_, '_, '_, '_>) -> Result<String, String> {
    c.phase(1, "stall");
    let frames = match c.cfg.knobs[knob::FRAMES] {
        0 => 24,
        n => n.min(100),
    };
    let mut q = Qdisc::new(frames as usize);
    for _ in 0..frames {
        let id = c.skb(&[], 4, 1200)?;
        q.enqueue(id).map_err(|_| String::from("qdisc full"))?;
    }
    let tick = WATCHDOG_TIMEO_NS / 5;
    let deadline = c.plat.now_ns() + WAIT_NS;
    let mut stopped_at = None;
    let mut fired_at = None;
    // The last tick that ran while the queue was stopped and did not fire.
    let mut quiet_tick = None;
    while fired_at.is_none() && c.plat.now_ns() < deadline {
        c.send(&mut q, 1);
        c.poll();
        // The stall that counts starts at the last stop (BQL may stop and
        // wake the queue before the device stalls).
        let now = c.plat.now_ns();
        if !c.txq.xmit_stopped() {
            stopped_at = None;
        } else if stopped_at.is_none() {
            stopped_at = Some(now);
        }
        // The no-watchdog mutant is a driver with no dev_watchdog timer.
        // The fire time is the tick's start (the reset inside takes long).
        if c.mutant != DriverMutant::NoWatchdog && c.dev.watchdog_tick() {
            fired_at = Some(now);
        } else if stopped_at.is_some() {
            quiet_tick = Some(now);
        }
        c.nic.wait_until(c.plat.now_ns() + tick);
    }
    let Some(t_stop) = stopped_at else {
        return Err(String::from(
            "watchdog: the queue never stopped while the device stalled",
        ));
    };
    let Some(t_fire) = fired_at else {
        return Err(format!(
            "watchdog: no ndo_tx_timeout within {} ms of a stopped queue",
            WAIT_NS / 1_000_000
        ));
    };
    // The stall began at the last trans_start <= the stop; no tick later
    // than stop + timeo + a tick (+ one poll's slack) may pass without
    // firing. Judged by the ticks that ran, not by when the fire came: a
    // loaded host can deschedule the vCPU between two ticks for longer
    // than the whole bound.
    let late = t_fire.saturating_sub(t_stop);
    let quiet = quiet_tick.map_or(0, |t: u64| t.saturating_sub(t_stop));
    c.check(
        quiet <= WATCHDOG_TIMEO_NS + 2 * tick + TIMELY_EPSILON_NS,
        &format!(
            "watchdog: a tick {} us after the stop did not fire (timeo {} us; fired at {} us)",
            quiet / 1000,
            WATCHDOG_TIMEO_NS / 1000,
            late / 1000
        ),
    );
    c.check(
        c.dev.carrier(),
        "watchdog: a timeout fired with carrier off",
    );
    c.phase(2, "recovered");
    // Recovery: the reset aborted what was in flight; the rest goes out.
    // The watchdog keeps running, as in Linux: a timeout whose own reclaim
    // found completions whose interrupt had not been taken yet (the
    // mlx5e lost-interrupt path) does not reset, and if the device is
    // still stuck the next period's timeout does.
    let deadline = c.plat.now_ns() + 4 * WAIT_NS;
    let mut ran_again = false;
    loop {
        c.send(&mut q, 1);
        c.poll();
        ran_again |= !c.txq.stopped();
        if q.is_empty() && c.all_back() {
            break;
        }
        if c.plat.now_ns() > deadline {
            return Err(if ran_again {
                format!(
                    "watchdog: traffic did not recover after the reset ({:?})",
                    c.nic.stats()
                )
            } else {
                String::from("watchdog: the queue stayed stopped after the reset")
            });
        }
        if c.mutant != DriverMutant::NoWatchdog {
            c.dev.watchdog_tick();
        }
        c.nic.wait_until(c.plat.now_ns() + tick);
    }
    let s = c.nic.stats();
    Ok(format!(
        "timeout {} us after the stop, {} aborted by the reset, {} completed after",
        late / 1000,
        s.tx_aborted,
        s.tx_completed
    ))
}

/// Scenario 13: clone pairs (tap/bridge-like). Each pair shares its head;
/// the clone is sent, the original kept. The head bytes the original sees
/// must not change between submit and completion (the driver writes the
/// source MAC into the head, so it must unshare it first). Then the
/// original goes out too.
fn clone_pairs(c: &mut Ctx<'_, '_, '_, '_>) -> Result<String, String> {
    let pairs = match c.cfg.knobs[knob::FRAMES] {
        0 => 4,
        n => n.min(32),
    };
    for p in 0..pairs {
        // An Ethernet-like header with a seeded source MAC that is not
        // the NIC's (so a write of the NIC's address shows).
        let mut head = [0u8; 64];
        for (i, b) in head.iter_mut().enumerate() {
            *b = (c.rand() >> (i % 8)) as u8;
        }
        head[6..12]
            .iter_mut()
            .zip(c.nic.mac)
            .for_each(|(b, m)| *b = !m);
        let orig = c.skb(&head, 1 + (p % 3) as usize, 256)?;
        let clone = c
            .skbs
            .borrow_mut()
            .clone_skb(orig)
            .map_err(|e| format!("skb clone failed: {e}"))?;
        let before = head_hash(c, orig)?;
        let mut q = Qdisc::new(2);
        q.enqueue(clone).map_err(|_| String::from("qdisc full"))?;
        let ok = c.pump(&mut q, 1, WAIT_NS, |c| {
            !c.skbs.borrow().is_live(clone) && c.all_back()
        });
        let after = head_hash(c, orig)?;
        c.check(ok, "timely: the clone was never completed");
        if before != after {
            let _ = c.skbs.borrow_mut().free(orig);
            return Err(format!(
                "clone-head: pair {p}: the shared head changed while the clone was in flight"
            ));
        }
        q.enqueue(orig).map_err(|_| String::from("qdisc full"))?;
        if !c.pump(&mut q, 1, WAIT_NS, |c| {
            c.skbs.borrow().live() == 0 && c.all_back()
        }) {
            return Err(String::from(
                "timely: the original of a pair was never completed",
            ));
        }
    }
    Ok(format!("{pairs} clone pairs, shared heads unchanged"))
}

/// FNV-1a over an skb's head bytes.
fn head_hash(c: &Ctx<'_, '_, '_, '_>, id: SkbId) -> Result<u64, String> {
    let pool = c.skbs.borrow();
    let s = pool
        .get(id)
        .map_err(|e| format!("skb-ledger: the kept original is gone: {e}"))?;
    Ok(s.head().iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    }))
}

/// Scenario 12: one xmit_more batch whose last skb fails to map (the
/// mapper fails every map while it is handed over): the driver drops it
/// with OK, and the frames posted earlier in the batch must still get
/// their doorbell, so they all complete. Without it they sit posted and
/// never sent (the guest sees them never complete; the host's
/// doorbell-pending oracle sees it at once, from the driver's tx-ring
/// marker at the batch end and the last TX_TAIL write).
fn batch_last_dropped(c: &mut Ctx<'_, '_, '_, '_>) -> Result<String, String> {
    let batch = c.cfg.knobs[knob::BATCH].clamp(2, 16);
    let b = c.nic.stats();
    for i in 0..batch {
        let r = c.rand();
        let id = c.skb(&[], 1 + (r % 3) as usize, 60 + ((r >> 8) % 1000) as u32)?;
        let last = i + 1 == batch;
        if last {
            c.nic.dma.set_fail_every(1);
        }
        let ret = c.dev.xmit(id, !last);
        c.nic.dma.set_fail_every(0);
        if ret != crate::softnet::netdev::NetdevTx::Ok {
            return Err(format!(
                "stop-early: xmit {i} of a {batch}-batch returned {ret:?}"
            ));
        }
    }
    let ok = c.poll_until(WAIT_NS, |c| c.skbs.borrow().live() == 0 && c.all_back());
    let s = c.nic.stats();
    let (posted, dropped) = (s.tx_packets - b.tx_packets, s.tx_dropped - b.tx_dropped);
    c.check(
        dropped == 1,
        &format!("doorbell: the last skb was not dropped ({posted} posted, {dropped} dropped)"),
    );
    if !ok {
        return Err(format!("doorbell: {posted} frames posted before a dropped last skb never completed (no doorbell)"));
    }
    Ok(format!(
        "batch {batch}: {posted} posted, last dropped, all completed"
    ))
}

/// Scenario 21: CYCLES up/down cycles under load (frames in flight at
/// every stop). Live skbs, maps and DMA pages must come back to their
/// level after the first cycle every time: no growth.
fn soak(c: &mut Ctx<'_, '_, '_, '_>) -> Result<String, String> {
    let cycles = match c.cfg.knobs[knob::CYCLES] {
        0 => SOAK_CYCLES,
        n => n.min(100_000),
    };
    let pages = c.nic.dma_pages_used();
    for i in 0..cycles {
        // Load: a few frames, some NAPI rounds (seeded), then stop with
        // whatever is still in flight.
        let n = 2 + c.rand() % 6;
        let mut q = Qdisc::new(n as usize);
        for _ in 0..n {
            let id = c.mixed_skb()?;
            q.enqueue(id).map_err(|_| String::from("qdisc full"))?;
        }
        let batch = 1 + (c.rand() % 4) as u32;
        c.send(&mut q, batch);
        for _ in 0..c.rand() % 3 {
            c.wait_and_poll(2_000_000);
        }
        for id in q.drain() {
            let _ = c.skbs.borrow_mut().free(id);
        }
        c.dev.close();
        let (skbs, maps, bql) = (
            c.skbs.borrow().live(),
            c.nic.dma.live(),
            c.txq.dql().inflight(),
        );
        if skbs != 0 || maps != 0 || bql != 0 {
            return Err(format!(
                "soak: cycle {i}: {skbs} skbs, {maps} maps, {bql} BQL bytes live after stop"
            ));
        }
        c.open()?;
        if c.nic.dma_pages_used() != pages {
            return Err(format!(
                "soak: cycle {i}: DMA pages grew from {pages} to {}",
                c.nic.dma_pages_used()
            ));
        }
    }
    // Still working after the soak.
    let mut q = Qdisc::new(4);
    for _ in 0..4 {
        let id = c.mixed_skb()?;
        q.enqueue(id).map_err(|_| String::from("qdisc full"))?;
    }
    if !c.pump(&mut q, 1, WAIT_NS, |c| {
        c.skbs.borrow().live() == 0 && c.all_back()
    }) {
        return Err(String::from("soak: traffic did not flow after the cycles"));
    }
    Ok(format!(
        "{cycles} up/down cycles under load, no growth in skbs, maps or DMA pages"
    ))
}

/// Unregister (auto-close), then the end-of-run ledger, the Summary
/// marker and the verdict.
fn finish(mut c: Ctx<'_, '_, '_, '_>, scenario: Scenario, note: String) -> Verdict {
    c.dev
        .unregister_with(c.mutant == DriverMutant::UnregisterNoStop);
    let busy = c.end_ledger();
    c.check(busy == 0, &format!("stop-early: {busy} BUSY returns"));
    c.verdict(|| format!("{}: {}", scenario.name(), note))
}
