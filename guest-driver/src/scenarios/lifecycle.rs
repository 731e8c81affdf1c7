//! Lifecycle scenarios of the matrix (softnet.md §5 rows 1-7, 17, 18, 20,
//! plus RX after stop, MSI-X masked at stop, stop racing an interrupt).
//!
//! `scenarios::run_with_pool` dispatches every scenario of the catalogue's
//! `abi::Group::Lifecycle` here. The host half (device faults, knobs, the cases
//! and the oracle each mutant must trip) is vmm/src/scenarios/lifecycle.rs.
//!
//! Guest-side oracles report `Marker::OracleFail` with a text that starts
//! with the oracle's short name (`quiesce:`, `reset-poll:`, `dma-maps:`,
//! `skb-ledger:`, `bql:`, `auto-close:`, `stop-early:`, `stuck-stopped:`,
//! `busy-ownership:`, `map-failure:`, `napi-budget:`, `reopen:`); the
//! matrix names them `guest:<name>`.

use alloc::format;
use alloc::string::String;

use super::ctx::{self, Ctx, Stack};
use super::Verdict;
use crate::abi::{knob, regs as r, DriverMutant, Marker, RunConfig, Scenario};
use crate::driver::dma::DmaPool;
use crate::driver::{NapiSide, TX_START_THRESH, TX_STOP_THRESH};
use crate::platform::Platform;
use crate::softnet::errno::EADDRNOTAVAIL;
use crate::softnet::netdev::{is_valid_ether_addr, AddrAssignType, NetDeviceOps, NetdevTx, Qdisc};
use crate::softnet::skb::SkbId;
use crate::softnet::watchdog::DEFAULT_WATCHDOG_TIMEO_NS;

/// Frames a flood sends when the FRAMES knob is 0.
const FLOOD_FRAMES: u64 = 24;
/// How long the guest stays idle after stop so late DMA or a pending
/// interrupt would show on the host's log (several coalescing periods).
const QUIET_AFTER_STOP_NS: u64 = 2_000_000;
/// Bound on every wait for the device. Generous: each marker is a VM
/// exit (~0.2 ms here under load), so 16 frames with their map, unmap and
/// ledger markers take tens of ms; a bound is for hangs, not speed.
const WAIT_NS: u64 = 2_000_000_000;
/// skbs the pool holds.
const POOL_SKBS: u16 = 192;
/// Longest wait for the interrupt that brings one NAPI round (the
/// device's coalescing timer is 200 us).
const ROUND_WAIT_NS: u64 = 2_000_000;

/// Run `scenario` (one of `abi::Group::Lifecycle`) with DMA memory from `pool`.
pub fn run(
    plat: &(dyn Platform + Sync),
    cfg: &RunConfig,
    scenario: Scenario,
    pool: DmaPool,
) -> Verdict {
    let stack = Stack {
        pool_skbs: POOL_SKBS,
        bql: true,
        watchdog_timeo_ns: DEFAULT_WATCHDOG_TIMEO_NS,
        seed_salt: 0x11fe,
    };
    ctx::with_stack(plat, cfg, pool, stack, |mut c| {
        let body = match scenario {
            Scenario::StopUnderFlood
            | Scenario::SlowReset
            | Scenario::DmaUntilDisabled
            | Scenario::InflightAtStop => flood_then_stop(&mut c, scenario),
            Scenario::RxAfterStop | Scenario::MsixMaskedAtStop | Scenario::StopRacesIrq => {
                flood_then_stop(&mut c, scenario)
            }
            Scenario::InvalidMac => invalid_mac(&mut c),
            Scenario::Unregister => unregister(&mut c),
            Scenario::MaxFragsFill => max_frags_fill(&mut c),
            Scenario::BusyOwnership => busy_ownership(&mut c),
            Scenario::MapFailure => map_failure(&mut c),
            Scenario::NapiBudgetZero => napi_budget_zero(&mut c),
            Scenario::IrqWindow => irq_window(&mut c),
            s => Err(format!("scenario {} is not a lifecycle scenario", s.name())),
        };
        if let Err(e) = body {
            c.fail(&e);
        }
        finish(c, scenario)
    })
}

/// The lifecycle group's helpers on the shared [`Ctx`].
trait Lifecycle {
    fn skb(&mut self, nfrags: usize, frag_len: u32) -> Result<SkbId, String>;
    fn mixed_skb(&mut self) -> Result<SkbId, String>;
    fn traffic(&mut self, n: u64) -> Result<(), String>;
    fn close_and_check(&mut self);
    fn up_down(&mut self, frames: u64) -> Result<(), String>;
    fn cycles(&mut self, n: u64) -> Result<(), String>;
}

impl Lifecycle for Ctx<'_, '_, '_, '_> {
    /// An skb of `nfrags` fragments of `frag_len` bytes from the payload
    /// pool (seeded offset; the host fills and checks the bytes).
    fn skb(&mut self, nfrags: usize, frag_len: u32) -> Result<SkbId, String> {
        self.payload_skb(&[], nfrags, frag_len, 64 * 1024)
            .map_err(|e| format!("skb alloc failed: {e}"))
    }

    /// A frame of mixed shape ([`Ctx::mixed_shape`]), equal fragments.
    fn mixed_skb(&mut self) -> Result<SkbId, String> {
        let (n, len) = self.mixed_shape();
        self.skb(n, len / n as u32)
    }

    /// Send `n` mixed frames through the qdisc and wait until every one
    /// posted is completed and received back (loopback); a frame the
    /// driver dropped (map failure) must be freed, never lost.
    fn traffic(&mut self, n: u64) -> Result<(), String> {
        let b = self.nic.stats();
        let mut q = Qdisc::new(n as usize);
        for _ in 0..n {
            let id = self.mixed_skb()?;
            q.enqueue(id).map_err(|_| String::from("qdisc full"))?;
        }
        let batch = self.cfg.knobs[knob::BATCH].clamp(1, 16) as u32;
        let deadline = self.plat.now_ns() + WAIT_NS;
        let mut last = false;
        loop {
            self.dev.qdisc_run(&mut q, batch);
            self.poll();
            if !last && self.plat.now_ns() > deadline {
                // One more look, with the interrupt window opened.
                last = self.last_chance();
            }
            let s = self.nic.stats();
            let posted = s.tx_packets - b.tx_packets;
            if q.is_empty()
                && s.tx_completed - b.tx_completed >= posted
                && s.rx_packets - b.rx_packets >= posted
            {
                if posted + s.tx_dropped - b.tx_dropped != n {
                    return Err(format!(
                        "skb-ledger: {n} frames given, {posted} posted, {} dropped",
                        s.tx_dropped - b.tx_dropped
                    ));
                }
                return Ok(());
            }
            if last {
                for id in q.drain() {
                    let _ = self.skbs.borrow_mut().free(id);
                }
                return Err(format!(
                    "timely: traffic did not complete within {} ms ({s:?})",
                    WAIT_NS / 1_000_000
                ));
            }
            if self.napi.is_scheduled() || !q.is_empty() && !self.txq.xmit_stopped() {
                continue;
            }
            // Progress comes from the device's interrupts.
            self.nic.wait_until(deadline + 1);
        }
    }

    /// `dev_close`, then the quiescence checks: the reset must be over
    /// when stop returns (STATUS read at once), then the guest stays idle
    /// so late device activity shows on the host's log, then checks what
    /// it can see itself.
    fn close_and_check(&mut self) {
        self.dev.close();
        let status = self.nic.regs().read(r::STATUS);
        self.check(
            status & r::STATUS_RESETTING == 0,
            &format!("reset-poll: stop returned with the reset still running (STATUS {status:#x})"),
        );
        let t = self.plat.now_ns();
        while self.plat.now_ns() < t + QUIET_AFTER_STOP_NS {
            self.nic.wait_until(t + QUIET_AFTER_STOP_NS);
        }
        let regs = self.nic.regs();
        let (ctrl, ie) = (regs.read(r::CTRL), regs.read(r::INT_ENABLE));
        self.check(
            ctrl & (r::CTRL_TX_EN | r::CTRL_RX_EN) == 0 && ie == 0,
            &format!(
                "quiesce: enable bits still set after stop (CTRL {ctrl:#x}, INT_ENABLE {ie:#x})"
            ),
        );
        let (skbs, maps, bql) = (
            self.skbs.borrow().live(),
            self.nic.dma.live(),
            self.txq.dql().inflight(),
        );
        self.check(
            skbs == 0,
            &format!("skb-ledger: {skbs} skbs live after stop (in-flight packets not aborted)"),
        );
        self.check(
            maps == 0,
            &format!("dma-maps: {maps} mappings live after stop"),
        );
        self.check(bql == 0, &format!("bql: {bql} bytes in flight after stop"));
    }

    /// One UP period: open, `frames` frames of traffic, then close with
    /// the quiescence checks.
    fn up_down(&mut self, frames: u64) -> Result<(), String> {
        self.open()?;
        self.traffic(frames)?;
        self.close_and_check();
        Ok(())
    }

    /// `n` UP periods of two frames each, phases 1..=n.
    fn cycles(&mut self, n: u64) -> Result<(), String> {
        for i in 0..n {
            self.phase(1 + i, "cycle");
            self.up_down(2)?;
        }
        Ok(())
    }
}

/// Scenarios 2-5 and the extras: put work in flight, stop at a seeded
/// moment, check quiescence, then reopen and check the rings work again
/// (no stale state from the aborted packets).
fn flood_then_stop(c: &mut Ctx<'_, '_, '_, '_>, s: Scenario) -> Result<(), String> {
    c.open()?;
    let frames = match c.cfg.knobs[knob::FRAMES] {
        0 => FLOOD_FRAMES,
        n => n.min(POOL_SKBS as u64 / 2),
    };
    c.phase(1, "flood");
    let mut q = Qdisc::new(frames as usize);
    for _ in 0..frames {
        let id = c.mixed_skb()?;
        q.enqueue(id).map_err(|_| String::from("qdisc full"))?;
    }
    let batch = c.cfg.knobs[knob::BATCH].clamp(1, 16) as u32;
    // How many NAPI rounds run before stop (seeded): none leaves every
    // completion and every looped-back frame pending at stop.
    let rounds = match s {
        Scenario::StopUnderFlood | Scenario::SlowReset | Scenario::DmaUntilDisabled => c.rand() % 3,
        // Enough rounds for BQL to let more packets out than the device
        // will complete (its stall knob), so some are surely in flight.
        Scenario::InflightAtStop => 3,
        _ => 0,
    };
    c.dev.qdisc_run(&mut q, batch);
    for _ in 0..rounds {
        c.wait_and_poll(ROUND_WAIT_NS);
        c.dev.qdisc_run(&mut q, batch);
    }
    match s {
        // The stall knob holds completions: wait until the device has
        // done what it will, so the rest is surely in flight.
        Scenario::InflightAtStop | Scenario::MsixMaskedAtStop | Scenario::RxAfterStop => {
            c.nic.wait_until(c.plat.now_ns() + 1_000_000);
        }
        // Stop near the coalescing timer (200 us) so the completion
        // interrupt races the stop (seeded 0-400 us).
        Scenario::StopRacesIrq => {
            let t = c.plat.now_ns() + (c.rand() % 400) * 1000;
            while c.plat.now_ns() < t {
                c.nic.wait_until(t);
            }
        }
        _ => {}
    }
    let st = c.nic.stats();
    c.plat.marker_text(
        Marker::Phase,
        &[
            2,
            st.tx_packets - st.tx_completed,
            st.tx_packets - st.rx_packets,
        ],
        "stop with work in flight",
    );
    // dev_deactivate resets the qdisc before ndo_stop: the stack frees
    // what it never handed to the driver.
    for id in q.drain() {
        let _ = c.skbs.borrow_mut().free(id);
    }
    c.close_and_check();
    c.phase(3, "reopen");
    c.up_down(4)
}

/// Interrupts forced into every window (issue 14): the device raises
/// TX and RX at the n-th register write after the n-th stop-enter
/// (VARIANT 0 and 2) or open-enter (1), so CYCLES open/traffic/stop cycles
/// sweep one interrupt across the whole sequence. Wherever it lands, a
/// handler running after napi_disable must leave the device alone
/// (close_and_check: nothing enabled after stop; the host: no cause
/// enabled after stop-exit, no DMA or interrupt after it), and each
/// reopen must carry traffic.
fn irq_window(c: &mut Ctx<'_, '_, '_, '_>) -> Result<(), String> {
    c.cycles(c.cfg.knobs[knob::CYCLES].clamp(1, 64))?;
    c.up_down(4)
}

/// Scenario 1: the EEPROM address is zero, multicast, broadcast (VARIANT
/// 0-2) or valid (3). Probe must end with a valid address (the EEPROM's,
/// or a random one marked RANDOM; the host's `mac-address` oracle checks
/// which against the EEPROM it served), and open must refuse an invalid
/// address with EADDRNOTAVAIL without calling ndo_open.
fn invalid_mac(c: &mut Ctx<'_, '_, '_, '_>) -> Result<(), String> {
    let (mac, how) = (c.nic.mac, c.nic.addr_assign);
    c.check(
        is_valid_ether_addr(&mac),
        &format!("mac-address: registered the invalid address {mac:02x?} ({how:?})"),
    );
    for bad in [[0u8; 6], [0x01, 0, 0x5e, 0, 0, 1], [0xff; 6]] {
        c.dev.set_dev_addr(bad, AddrAssignType::Perm);
        let r = c.dev.open();
        if r.is_ok() {
            c.dev.close();
        }
        c.check(
            r == Err(EADDRNOTAVAIL),
            &format!("mac-address: open of {bad:02x?} returned {r:?}, not EADDRNOTAVAIL"),
        );
    }
    c.dev.set_dev_addr(mac, how);
    c.up_down(c.cfg.knobs[knob::FRAMES].clamp(1, 64))
}

/// Scenario 6: unregister while UP (variant 0), while DOWN (1), and
/// after repeated open/stop cycles (2). ndo_stop must run exactly once
/// per UP period, and never for a DOWN device.
fn unregister(c: &mut Ctx<'_, '_, '_, '_>) -> Result<(), String> {
    let variant = c.cfg.knobs[knob::VARIANT];
    let cycles = match variant {
        2 => c.cfg.knobs[knob::CYCLES].clamp(1, 100).max(3),
        _ => 0,
    };
    c.cycles(cycles)?;
    c.open()?;
    c.traffic(4)?;
    if variant == 1 {
        c.close_and_check();
    }
    // One stop per UP period; unregister of a DOWN device adds none.
    let expect = cycles + 1;
    c.dev
        .unregister_with(c.mutant == DriverMutant::UnregisterNoStop);
    let calls = c.dev.stop_calls();
    c.check(
        calls == expect,
        &format!("auto-close: ndo_stop ran {calls} times, expected {expect} (variant {variant})"),
    );
    c.check(
        !c.nic.is_open(),
        "auto-close: the device is still open after unregister",
    );
    Ok(())
}

/// Scenario 7: fill a 64-descriptor ring with max-fragment packets while
/// the device completes one packet only (stall knob), so that reclaim
/// leaves exactly TX_START_THRESH free: the queue must stop in advance
/// at every step and be woken at exactly the threshold.
fn max_frags_fill(c: &mut Ctx<'_, '_, '_, '_>) -> Result<(), String> {
    c.open()?;
    let max = crate::abi::MAX_SKB_FRAGS as usize;
    // 17 + 17 + 12 descriptors: after the first completes, 29 stay in
    // flight and 63 - 29 = 34 = TX_START_THRESH are free. VARIANT 1 posts
    // one more, so reclaim leaves one short of the threshold: the queue
    // must stay stopped (a wake there is early; the host checks it).
    let extra = usize::from(c.cfg.knobs[knob::VARIANT] == 1);
    let shapes = [
        max,
        max,
        63 - TX_START_THRESH as usize - max + extra,
        max,
        max,
    ];
    let mut busy = 0;
    for (i, &n) in shapes.iter().enumerate() {
        if c.txq.stopped() {
            if i == 3 {
                // Reclaim the one packet the device completes.
                c.phase(2, "reclaim to the start threshold");
                c.poll_until(WAIT_NS, |c| {
                    c.nic.stats().tx_completed >= 1 && !c.napi.is_scheduled()
                });
            }
            if c.txq.stopped() {
                break;
            }
        }
        let id = c.skb(n, 64)?;
        // Straight to the driver (as the stack does once BQL lets it):
        // the driver's own ring-low stop is under test, not BQL's.
        match c.dev.ops.start_xmit(id, false) {
            NetdevTx::Ok => {}
            NetdevTx::Busy => {
                busy += 1;
                c.plat.marker(Marker::XmitBusy, &[u64::from(id.0)]);
                let _ = c.skbs.borrow_mut().free(id);
            }
        }
        let free = c.nic.tx_free();
        c.check(
            c.txq.stopped() || free >= TX_STOP_THRESH,
            &format!("stop-early: xmit returned with {free} descriptors free and the queue running (worst case {TX_STOP_THRESH})"),
        );
    }
    c.check(
        busy == 0,
        &format!("stop-early: {busy} BUSY returns while filling the ring"),
    );
    // Quiescence: no xmit, no poll pending. A stopped queue with room
    // for a restart is stuck (the wake used `>` where stop used `>=`).
    c.poll();
    c.nic.wait_until(c.plat.now_ns() + 1_000_000);
    c.poll();
    let free = c.nic.tx_free();
    c.check(
        !(c.txq.stopped() && free >= TX_START_THRESH),
        &format!("stuck-stopped: queue stopped with {free} free >= start threshold {TX_START_THRESH} at quiescence"),
    );
    c.close_and_check();
    c.phase(3, "reopen");
    c.up_down(4)
}

/// Scenario 17: a full ring at xmit entry (a false wake, forced here by
/// waking the stopped queue while the device holds every completion).
/// BUSY must free nothing and keep no reference; the requeued skb is
/// then sent exactly once.
fn busy_ownership(c: &mut Ctx<'_, '_, '_, '_>) -> Result<(), String> {
    c.open()?;
    let max = crate::abi::MAX_SKB_FRAGS as usize;
    for _ in 0..8 {
        if c.txq.stopped() {
            break;
        }
        let id = c.skb(max, 64)?;
        if c.dev.ops.start_xmit(id, false) != NetdevTx::Ok {
            return Err(String::from(
                "busy-ownership: BUSY before the ring was full",
            ));
        }
    }
    if !c.txq.stopped() {
        return Err(String::from(
            "stop-early: the ring filled without the queue stopping",
        ));
    }
    c.phase(2, "false wake on a full ring");
    c.txq.wake(crate::abi::QueueReason::Reclaim);
    let id = c.skb(max, 64)?;
    let maps = c.nic.dma.live();
    let r = c.dev.ops.start_xmit(id, false);
    if r == NetdevTx::Busy {
        c.plat.marker(Marker::XmitBusy, &[u64::from(id.0)]);
    }
    c.check(
        r == NetdevTx::Busy,
        "busy-ownership: xmit on a full ring did not return BUSY",
    );
    let live = c.skbs.borrow().is_live(id);
    c.check(
        live,
        "busy-ownership: BUSY freed the skb the stack still owns",
    );
    c.check(
        c.nic.dma.live() == maps,
        "busy-ownership: BUSY left a mapping behind",
    );
    // Let the device complete, reclaim (which wakes the queue), requeue.
    c.phase(3, "requeue");
    c.nic.regs().write(r::TEST_COMPLETE, 1);
    c.poll_until(WAIT_NS, |c| !c.txq.stopped());
    if live {
        let sent = c.nic.stats().tx_packets;
        let ok = c.dev.ops.start_xmit(id, false) == NetdevTx::Ok;
        c.check(ok, "busy-ownership: the requeued skb was refused");
        c.check(
            c.nic.stats().tx_packets == sent + 1,
            "busy-ownership: the requeued skb was not posted exactly once",
        );
        c.nic.regs().write(r::TEST_COMPLETE, 1);
        c.poll_until(WAIT_NS, |c| !c.skbs.borrow().is_live(id));
        c.check(
            !c.skbs.borrow().is_live(id),
            "busy-ownership: the requeued skb was never completed",
        );
    }
    c.close_and_check();
    let bad = c.skbs.borrow().bad_frees();
    c.check(
        bad == 0,
        &format!("busy-ownership: {bad} double or stale frees (a reference kept after BUSY)"),
    );
    Ok(())
}

/// Scenario 18: every n-th DMA map fails (seeded n): the packet is
/// dropped, freed exactly once, OK returned, and the rest still flows.
fn map_failure(c: &mut Ctx<'_, '_, '_, '_>) -> Result<(), String> {
    c.open()?;
    let every = 2 + c.rand() % 4;
    c.nic.dma.set_fail_every(every);
    let frames = match c.cfg.knobs[knob::FRAMES] {
        0 => 16,
        n => n.min(64),
    };
    let r = c.traffic(frames);
    c.nic.dma.set_fail_every(0);
    r?;
    let s = c.nic.stats();
    c.check(
        s.tx_dropped != 0,
        &format!("map-failure: no map failed (every {every})"),
    );
    c.check(s.busy == 0, "map-failure: a map failure returned BUSY");
    c.close_and_check();
    let bad = c.skbs.borrow().bad_frees();
    c.check(
        bad == 0,
        &format!("map-failure: {bad} double frees on the drop path"),
    );
    Ok(())
}

/// Scenario 20: a NAPI poll with budget 0 reclaims TX only: no RX, no
/// napi_complete_done.
fn napi_budget_zero(c: &mut Ctx<'_, '_, '_, '_>) -> Result<(), String> {
    c.open()?;
    let mut q = Qdisc::new(4);
    for _ in 0..4 {
        let id = c.mixed_skb()?;
        q.enqueue(id).map_err(|_| String::from("qdisc full"))?;
    }
    c.dev.qdisc_run(&mut q, 4);
    let posted = c.nic.stats().tx_packets;
    // The device's own counter (a register read, no DMA): wait until it
    // sent everything, so completions and RX frames are both pending.
    let deadline = c.plat.now_ns() + WAIT_NS;
    while u64::from(c.nic.regs().read(r::STAT_RX_FRAMES)) < posted && c.plat.now_ns() < deadline {
        c.nic.wait_until(c.plat.now_ns() + 200_000);
    }
    c.nic.wait_until(c.plat.now_ns() + 500_000);
    let b = c.nic.stats();
    // The completion interrupt scheduled the poll; we run it (as netpoll
    // would) with budget 0.
    if !c.napi.is_scheduled() && !c.napi.schedule() {
        return Err(String::from("napi-budget: could not schedule NAPI"));
    }
    let res = c.napi.poll(0, &mut NapiSide(c.nic));
    let a = c.nic.stats();
    c.check(
        res.rx_done == 0 && a.rx_packets == b.rx_packets,
        "napi-budget: a budget-0 poll processed RX",
    );
    c.check(
        !res.completed && c.napi.is_scheduled(),
        "napi-budget: a budget-0 poll called napi_complete_done",
    );
    c.check(
        a.tx_completed > b.tx_completed,
        "napi-budget: a budget-0 poll skipped TX completions",
    );
    // We still own SCHED: finish the poll with the real weight.
    c.nic.napi_poll(4);
    for id in q.drain() {
        let _ = c.skbs.borrow_mut().free(id);
    }
    c.poll_until(WAIT_NS, |c| c.nic.stats().rx_packets >= posted);
    c.traffic(4)?;
    c.close_and_check();
    Ok(())
}

/// Unregister (auto-close), then the end-of-run ledger, the Summary
/// marker and the verdict.
fn finish(mut c: Ctx<'_, '_, '_, '_>, scenario: Scenario) -> Verdict {
    c.dev
        .unregister_with(c.mutant == DriverMutant::UnregisterNoStop);
    c.check(
        !c.nic.is_open(),
        "auto-close: the device is still open after unregister",
    );
    let busy = c.end_ledger();
    if scenario != Scenario::BusyOwnership {
        c.check(busy == 0, &format!("stop-early: {busy} BUSY returns"));
    }
    let s = c.nic.stats();
    c.verdict(|| {
        format!(
            "{}: {} sent, {} completed, {} aborted, {} dropped, {} received; 0 live skbs/maps, BQL 0",
            scenario.name(),
            s.tx_packets,
            s.tx_completed,
            s.tx_aborted,
            s.tx_dropped,
            s.rx_packets
        )
    })
}
