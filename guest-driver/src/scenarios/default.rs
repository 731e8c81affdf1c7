//! The default scenario: probe, open, send N frames of mixed sizes and
//! fragment counts through loopback, receive them (the host checks each
//! delivery byte for byte), stop, unregister, report a summary.

use alloc::format;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::abi::{knob, DriverMutant, Marker, RunConfig, MAX_SKB_FRAGS};
use crate::driver::dma::DmaPool;
use crate::driver::sync::SkbCell;
use crate::driver::{splitmix64, Adapter, AdapterOps, DriverConfig, TX_START_THRESH};
use crate::platform::Platform;
use crate::softnet::napi::{Napi, NAPI_POLL_WEIGHT};
use crate::softnet::netdev::{NetDevice, Qdisc};
use crate::softnet::queue::TxQueue;
use crate::softnet::skb::{Frag, SkbPool};
use crate::softnet::watchdog::DEFAULT_WATCHDOG_TIMEO_NS;
use crate::softnet::{PlatformEnv, SoftnetMutants};
use nic_model::udp;

use super::{Verdict, PAYLOAD};

/// Frames sent when the FRAMES knob is 0.
pub const DEFAULT_FRAMES: u64 = 64;
/// skbs the qdisc holds at once (and the skb pool's headroom).
const QDISC_LEN: usize = 64;
/// Frames carry Ethernet/IPv4/UDP heads (`nic_model::udp`). Only in the
/// real guest: under the host tests (`tests/common/hostplat.rs`) an skb's
/// linear head lives in host memory, which the emulated device cannot
/// reach, so those runs send bare pool bytes.
const UDP_FRAMES: bool = cfg!(target_os = "none");
/// Idle wait between polls when nothing moved (an interrupt ends it early).
const IDLE_WAIT_NS: u64 = 1_000_000;

/// How NAPI runs.
pub enum Mode<'x> {
    /// Transmit and NAPI on the same CPU.
    Single,
    /// NAPI on a second CPU. `par(a, b)` must run `a` on the other CPU
    /// while running `b` here, and return when both are done (the guest
    /// uses the kernel's AP mailbox, host tests a scoped thread).
    Smp(Par<'x>),
}

/// Run the first job on another CPU while running the second here.
/// Returns false (running neither) if there is no other CPU.
pub type Par<'x> = &'x dyn Fn(&(dyn Fn() + Sync), &mut dyn FnMut()) -> bool;

/// Rounds of `napi_poll(4)` [`napi_loop`] gives a poll still scheduled
/// when traffic ends. Each over-budget poll takes a full budget of RX
/// frames, so a correct driver needs at most ring size / budget polls
/// (64 for the largest ring); only a poll that never completes uses them
/// all.
pub const NAPI_DRAIN_ROUNDS: u32 = 1024;

/// NAPI service loop for a CPU of its own (the one the NIC's MSI-X
/// entries target): handle the interrupts, run the poll they scheduled,
/// sleep until the next interrupt otherwise, until `stop` is set. A poll
/// still scheduled then (over budget) runs to completion first, so the
/// transmit CPU's napi_disable does not wait for a CPU that left.
/// Returns false if it was still scheduled after [`NAPI_DRAIN_ROUNDS`]
/// (a driver whose poll never completes would otherwise spin here for
/// ever).
pub fn napi_loop(
    plat: &(dyn Platform + Sync),
    nic: &Adapter<'_, '_>,
    napi: &Napi,
    stop: &AtomicBool,
) -> bool {
    while !stop.load(Ordering::Acquire) {
        nic.run_irq_work();
        if !napi.is_scheduled() {
            plat.wait_until(plat.now_ns() + IDLE_WAIT_NS / 4);
        }
    }
    for _ in 0..NAPI_DRAIN_ROUNDS {
        if !napi.is_scheduled() {
            return true;
        }
        nic.napi_poll(4);
    }
    !napi.is_scheduled()
}

/// A deterministic stream of frame shapes from the seed.
struct Shapes(u64);

impl Shapes {
    fn next(&mut self) -> u64 {
        self.0 = splitmix64(self.0);
        self.0
    }

    /// Fragments of frame `i`: 1..=MAX_SKB_FRAGS pieces of the payload
    /// pool, 60..=1514 bytes in all with a `head_len`-byte head (mixed:
    /// small, mid and full frames). Returns (fragments, their bytes).
    fn frame(&mut self, frags: &mut [Frag; MAX_SKB_FRAGS as usize], head_len: u32) -> (usize, u32) {
        let r = self.next();
        let len = match r % 4 {
            0 => 60 + (r >> 8) % 68,
            1 => 128 + (r >> 8) % 512,
            _ => 640 + (r >> 8) % 875,
        } as u32;
        let len = len.saturating_sub(head_len).max(2);
        let nfrags = (1 + (r >> 24) % u64::from(MAX_SKB_FRAGS))
            .min(u64::from(len / 4))
            .max(1) as usize;
        let base = PAYLOAD.0 + (r >> 32) % (PAYLOAD.1 - 4096);
        let (mut off, mut left) = (0u64, len);
        for (k, f) in frags.iter_mut().take(nfrags).enumerate() {
            let this = if k + 1 == nfrags {
                left
            } else {
                (left / (nfrags - k) as u32).max(1)
            };
            *f = Frag {
                addr: base + off,
                len: this,
            };
            off += u64::from(this);
            left -= this;
        }
        (nfrags, len)
    }
}

/// Run the scenario; `pool` is the DMA memory the driver may use.
pub fn run(
    plat: &(dyn Platform + Sync),
    cfg: &RunConfig,
    pool: DmaPool,
    mode: Mode<'_>,
) -> Verdict {
    let mutant = DriverMutant::from_u32(cfg.driver_mutant).unwrap_or(DriverMutant::None);
    let frames = match cfg.knobs[knob::FRAMES] {
        0 => DEFAULT_FRAMES,
        n => n.min(100_000),
    };
    let batch = cfg.knobs[knob::BATCH].clamp(1, 64) as u32;
    let env = PlatformEnv(plat);
    let skbs = SkbCell::new(SkbPool::new((QDISC_LEN * 2 + 64) as u16, &env));
    let bench = cfg.knobs[knob::BENCH] != 0;
    if bench {
        // Each marker is a VM exit: benchmarks count, the ledger still checks.
        skbs.borrow_mut().set_markers(false);
    }
    let txq = TxQueue::new(0, true, SoftnetMutants::from_driver_mutant(mutant), &env);
    super::arm_bql_stall_detector(&txq, cfg);
    let napi = Napi::new(NAPI_POLL_WEIGHT);
    let smp = matches!(mode, Mode::Smp(_));
    let mut dcfg = DriverConfig::from_run(cfg);
    if smp {
        // Completions interrupt the CPU that runs NAPI.
        dcfg.irq_cpu = 1;
    }
    let nic = match Adapter::probe(plat, pool, dcfg, &skbs, &txq, &napi) {
        Ok(n) => n,
        Err(e) => return Verdict::fail(format!("probe failed: {e:?}")),
    };
    let nic = &nic;
    let mut dev = NetDevice::new(
        AdapterOps {
            nic,
            napi_here: !smp,
        },
        &txq,
        DEFAULT_WATCHDOG_TIMEO_NS,
    );
    let (mac, how) = (nic.mac, nic.addr_assign);
    dev.set_dev_addr(mac, how);
    if let Err(e) = dev.register() {
        return Verdict::fail(format!("register failed: errno {e}"));
    }
    if let Err(e) = dev.open() {
        dev.unregister();
        return Verdict::fail(format!("open failed: errno {e}"));
    }
    dev.set_carrier(true);

    let mut q = Qdisc::new(QDISC_LEN);
    let mut shapes = Shapes(cfg.seed ^ 0x5eed);
    let mut frags = [Frag::default(); MAX_SKB_FRAGS as usize];
    let mut made = 0u64;
    let deadline = plat.now_ns()
        + match cfg.knobs[knob::DEADLINE_MS] {
            0 => 10_000_000_000 + frames * 50_000_000,
            ms => ms.saturating_mul(1_000_000),
        };
    let mut timed_out = false;
    let t_start = plat.now_ns();
    let (mut lost_wakes, mut stuck_checks) = (0u32, 0u32);
    // Free descriptors of the empty ring (nothing is posted yet).
    let empty_ring_free = nic.tx_free();
    let (mut bql_leak, mut leak_checks) = (false, 0u32);
    let stop_napi = AtomicBool::new(false);
    let napi_never_completed = AtomicBool::new(false);
    let cycles = cfg.knobs[knob::CYCLES].min(10_000);
    let (mut cycle_ns, mut cycle_fail) = (0, false);
    let mut traffic_ns = 1;
    // Traffic, then the open/stop cycles (knob CYCLES), each leaving
    // nothing behind. With NAPI on CPU 1 the cycles run while its loop
    // still takes the interrupts there, so stop's napi_disable and an
    // interrupt forced after it (irq_in_window) meet on two CPUs.
    let mut traffic = || {
        loop {
            while made < frames && q.len() < QDISC_LEN {
                // Real Ethernet/IPv4/UDP frames (a 58-byte head the driver
                // maps, then pool bytes); benchmarks keep bare pool bytes, as
                // a head is one more map marker (a VM exit) per packet.
                let heads = UDP_FRAMES && !bench;
                let (n, len) =
                    shapes.frame(&mut frags, if heads { udp::HEAD_LEN as u32 } else { 0 });
                let off = (frags[0].addr - PAYLOAD.0) as u32;
                let head = udp::head(nic.mac, made as u32, off, cfg.seed, len as u16);
                let head: &[u8] = if heads { &head } else { &[] };
                match skbs.borrow_mut().alloc(head, &frags[..n]) {
                    Ok(id) => q.enqueue(id).expect("qdisc has room"),
                    Err(_) => break,
                }
                made += 1;
            }
            let sent = dev.qdisc_run(&mut q, batch).sent;
            let mut rx = 0;
            if !smp {
                rx = nic.run_irq_work();
            }
            if mutant != DriverMutant::NoWatchdog {
                dev.watchdog_tick();
            }
            if !smp {
                nic.service_timer();
            }
            let s = nic.stats();
            let sent_all = made == frames && q.is_empty();
            if sent_all
                && s.tx_completed + s.tx_aborted >= s.tx_packets
                && s.rx_packets + s.tx_aborted >= s.tx_packets
            {
                break;
            }
            if plat.now_ns() > deadline {
                timed_out = true;
                break;
            }
            if sent == 0 && rx == 0 {
                // Quiescent (no xmit running, no poll pending): a stopped
                // queue with room for a restart is a lost wake (softnet.md
                // scenario 8). With NAPI elsewhere it must persist across a
                // whole idle wait, so a poll in progress is not mistaken.
                let stuck = txq.stopped()
                    && nic.is_open()
                    && nic.tx_free() >= TX_START_THRESH
                    && !napi.is_scheduled();
                stuck_checks = if stuck { stuck_checks + 1 } else { 0 };
                if stuck_checks == if smp { 2 } else { 1 } {
                    lost_wakes += 1;
                    plat.marker_text(
                        Marker::OracleFail,
                        &[u64::from(nic.tx_free())],
                        "lost wake: queue stopped with a free ring",
                    );
                }
                // BQL bytes in flight with every descriptor reclaimed can never
                // come back: a completion was miscounted (the leak that ends in
                // a queue held by BQL for good). Seen across a whole idle wait,
                // report it and end the traffic instead of waiting out the
                // deadline. Single CPU only: with NAPI elsewhere a reclaim may
                // sit between its ring update and its BQL completion.
                let leak = !smp
                    && txq.bql_enabled()
                    && txq.dql().inflight() > 0
                    && nic.tx_free() == empty_ring_free
                    && !napi.is_scheduled();
                leak_checks = if leak { leak_checks + 1 } else { 0 };
                if leak_checks == 2 {
                    bql_leak = true;
                    break;
                }
                nic.wait_until(plat.now_ns() + if smp { IDLE_WAIT_NS / 4 } else { IDLE_WAIT_NS });
            }
        }
        traffic_ns = plat.now_ns().saturating_sub(t_start).max(1);
        if cycles != 0 && !timed_out && !bql_leak {
            plat.marker_text(Marker::Phase, &[1], "open/stop cycles");
            let pages = nic.dma_pages_used();
            let t0 = plat.now_ns();
            for _ in 0..cycles {
                dev.close();
                if let Err(e) = dev.open() {
                    plat.marker_text(Marker::OracleFail, &[e as u64], "cycle: reopen failed");
                    cycle_fail = true;
                    break;
                }
            }
            cycle_ns = (plat.now_ns() - t0) / cycles;
            if nic.dma_pages_used() != pages {
                plat.marker_text(
                    Marker::OracleFail,
                    &[],
                    "cycle: DMA pages leaked across open/stop",
                );
                cycle_fail = true;
            }
        }
    };
    match mode {
        Mode::Single => traffic(),
        Mode::Smp(par) => {
            let napi_job = || {
                if !napi_loop(plat, nic, &napi, &stop_napi) {
                    napi_never_completed.store(true, Ordering::Relaxed);
                }
            };
            let ran = par(&napi_job, &mut || {
                traffic();
                stop_napi.store(true, Ordering::Release);
            });
            if !ran {
                dev.unregister();
                return Verdict::fail("smp: no second CPU to run NAPI on");
            }
        }
    }
    let stats = nic.stats();
    dev.unregister_with(mutant == DriverMutant::UnregisterNoStop);
    // Anything left scheduled after stop runs now (nothing, when correct).
    nic.run_deferred_work();
    // Anything the qdisc still holds is the stack's to free.
    for id in q.drain() {
        let _ = skbs.borrow_mut().free(id);
    }
    let live_skbs = skbs.borrow().live();
    let live_maps = nic.dma.live();
    let busy = dev.busy_count();
    let inflight = txq.dql().inflight();
    txq.report_bql();
    plat.marker(
        Marker::Summary,
        &[u64::from(live_skbs), live_maps, busy, u64::from(inflight)],
    );
    let checks = [
        (
            lost_wakes != 0,
            "lost wake: a stopped queue with a free ring was not woken",
        ),
        (
            bql_leak,
            "bql: bytes in flight with every descriptor reclaimed (a completion miscounted)",
        ),
        (timed_out, "timed out before every frame came back"),
        (
            napi_never_completed.load(Ordering::Relaxed),
            "napi: a poll was still scheduled after traffic ended and NAPI_DRAIN_ROUNDS more rounds (napi_complete_done never released it)",
        ),
        (cycle_fail, "open/stop cycles failed or leaked DMA memory"),
        (
            nic.is_open(),
            "auto-close: the device is still open after unregister",
        ),
        (live_skbs != 0, "skb ledger: skbs still live at the end"),
        (live_maps != 0, "dma: mappings still live at the end"),
        (busy != 0, "xmit returned BUSY"),
        (inflight != 0, "bql: bytes still in flight at the end"),
        (
            skbs.borrow().bad_frees() != 0,
            "skb ledger: double or stale free",
        ),
        (
            stats.stale_skbs != 0,
            "busy-ownership: a freed skb was handed back to xmit",
        ),
        (
            stats.rx_packets + stats.tx_aborted != stats.tx_packets,
            "loopback: received count differs from sent",
        ),
        // Nothing here fails a map or sends an oversized skb: every frame
        // made must be posted (a driver that drops max-fragment packets at
        // xmit passes every other check).
        (
            stats.tx_dropped != 0,
            "loopback: xmit dropped frames the stack handed it",
        ),
    ];
    for (bad, why) in checks {
        if bad {
            plat.marker_text(Marker::OracleFail, &[], why);
            return Verdict::fail(format!("{why} ({stats:?}, live skbs {live_skbs}, live maps {live_maps}, busy {busy}, bql {inflight})"));
        }
    }
    Verdict {
        pass: true,
        text: format!(
            "default: {} frames sent, {} received in {} us ({} pps), {} doorbells, {} open/stop cycles ({} us each), 0 live skbs/maps, 0 BUSY, BQL 0",
            stats.tx_packets,
            stats.rx_packets,
            traffic_ns / 1000,
            stats.rx_packets * 1_000_000_000 / traffic_ns,
            stats.doorbells,
            cycles,
            cycle_ns / 1000
        ),
    }
}
