//! The transmit checks and the interrupt side of the driver (driver/tx.rs,
//! driver/ops.rs), driven by hand against the device model for the cases
//! the scenarios never reach: a frame of exactly the maximum length, an
//! empty skb, a packet that exactly fills the ring, BUSY after a false
//! wake, the watchdog on the single-CPU (owned) adapter, a poll over
//! budget, each MSI-X vector alone, and a cause latched before open.
//! Each test names the cargo-mutants survivors it kills
//! (mutation/driver-io.md).

#[macro_use]
#[path = "common/hostplat.rs"]
mod hostplat;

use hostplat::HostPlat;
use nic_model::abi::{layout, pci, regs, DriverMutant, Marker, QueueReason, MAX_FRAME_LEN};
use nic_model::msix::MsiSink;
use nic_model::{IrqWindow, NicConfig, WindowStart};
use nicproof_guest::driver::pci::NIC_VECTOR_BASE;
use nicproof_guest::driver::sync::SkbCell;
use nicproof_guest::platform::Platform;
use nicproof_guest::softnet::netdev::{NetDevice, NetDeviceOps, NetdevTx};
use nicproof_guest::softnet::queue::TxQueue;
use nicproof_guest::softnet::skb::{Frag, SkbId};

/// Probe, register and open the correct driver on `$plat`
/// (hostplat's `registered_nic!` with 64 skb slots) with carrier on.
macro_rules! open_nic {
    ($plat:ident, $skbs:ident, $txq:ident, $napi:ident, $dev:ident,
     weight: $weight:expr, bql: $bql:expr, timeo: $timeo:expr) => {
        registered_nic!($plat, $skbs, $txq, $napi, $dev,
            skbs: 64, bql: $bql, weight: $weight, mutant: DriverMutant::None, timeo: $timeo);
        $dev.open().unwrap();
        $dev.set_carrier(true);
    };
}

/// `lens.len()` fragments of the payload pool with these lengths.
fn frags(lens: &[u32]) -> Vec<Frag> {
    let mut addr = layout::PAYLOAD_BASE;
    lens.iter()
        .map(|&len| {
            let f = Frag { addr, len };
            addr += u64::from(len);
            f
        })
        .collect()
}

fn alloc(skbs: &SkbCell<'_>, lens: &[u32]) -> SkbId {
    skbs.borrow_mut().alloc(&[], &frags(lens)).expect("skb")
}

/// Let `ns` of device time pass, then take the interrupts it sent (as
/// the CPU's next wait would).
fn pass(plat: &HostPlat, ns: u64) {
    plat.advance_to(plat.now_ns() + ns);
    plat.irqs.accept();
}

/// Kills tx.rs:162 `>` -> `==` and `>` -> `>=` on the frame length (a
/// frame of exactly MAX_FRAME_LEN dropped), `||` -> `&&` before it (a
/// longer frame sent) and `||` -> `&&` after `nr == 0` (an empty skb
/// posted as a zero-descriptor packet).
#[test]
fn xmit_sends_a_max_length_frame_and_drops_a_longer_or_empty_one() {
    let plat = HostPlat::new(NicConfig::default());
    open_nic!(plat, skbs, txq, napi, dev, weight: 64, bql: false, timeo: 5_000_000_000);
    let half = MAX_FRAME_LEN / 2;
    let max = alloc(&skbs, &[half, MAX_FRAME_LEN - half]);
    assert_eq!(dev.ops.start_xmit(max, false), NetdevTx::Ok);
    assert_eq!(
        (dev.ops.stats().tx_packets, dev.ops.stats().tx_dropped),
        (1, 0),
        "a {MAX_FRAME_LEN}-byte frame is sent"
    );
    let long = alloc(&skbs, &[half, MAX_FRAME_LEN - half + 1]);
    assert_eq!(dev.ops.start_xmit(long, false), NetdevTx::Ok);
    let empty = alloc(&skbs, &[]);
    assert_eq!(dev.ops.start_xmit(empty, false), NetdevTx::Ok);
    assert_eq!(
        (dev.ops.stats().tx_packets, dev.ops.stats().tx_dropped),
        (1, 2),
        "a longer frame and an empty skb are dropped"
    );
    assert!(!skbs.borrow().is_live(long) && !skbs.borrow().is_live(empty));
    pass(&plat, 1_000_000);
    assert_eq!(plat.root().nic.frames_sent(), 1);
    dev.unregister();
    assert_eq!(skbs.borrow().live(), 0);
    assert_eq!(plat.violations(), Vec::<String>::new());
}

/// Post 17-fragment packets to a device that completes nothing until the
/// queue stops (free < TX_STOP_THRESH); returns the free descriptors.
fn fill_until_stopped<O: NetDeviceOps>(
    skbs: &SkbCell<'_>,
    txq: &TxQueue<'_>,
    dev: &mut NetDevice<'_, '_, O>,
    free: impl Fn(&O) -> u32,
) -> u32 {
    while !txq.stopped() {
        let id = alloc(skbs, &[64; 17]);
        assert_eq!(dev.ops.start_xmit(id, false), NetdevTx::Ok);
    }
    free(&dev.ops)
}

fn held() -> NicConfig {
    NicConfig {
        complete_on_request: true,
        ..NicConfig::default()
    }
}

/// Kills tx.rs:168 `<` -> `<=` (a packet of exactly as many
/// descriptors as are free is taken, not answered BUSY) and :81 `-` ->
/// `+`/`/` in tx_free (the free count of a ring with one slot kept
/// empty).
#[test]
fn a_packet_that_exactly_fills_the_ring_is_taken() {
    let plat = HostPlat::new(held());
    open_nic!(plat, skbs, txq, napi, dev, weight: 64, bql: false, timeo: 5_000_000_000);
    let free = fill_until_stopped(&skbs, &txq, &mut dev, |a| a.tx_free());
    // Three 17-descriptor packets in 64 slots, one kept empty.
    assert_eq!(free, 64 - 1 - 3 * 17, "free descriptors once stopped");
    let id = alloc(&skbs, &vec![64; free as usize]);
    assert_eq!(dev.ops.start_xmit(id, false), NetdevTx::Ok);
    assert_eq!((dev.ops.tx_free(), dev.ops.stats().busy), (0, 0));
    dev.unregister();
    assert_eq!(skbs.borrow().live(), 0);
}

/// Kills tx.rs:171 delete `!`: BUSY on a running queue (after a false
/// wake) stops it, or the stack would call again at once.
#[test]
fn busy_after_a_false_wake_stops_the_queue() {
    let plat = HostPlat::new(held());
    open_nic!(plat, skbs, txq, napi, dev, weight: 64, bql: false, timeo: 5_000_000_000);
    let free = fill_until_stopped(&skbs, &txq, &mut dev, |a| a.tx_free());
    assert!(free < 17, "{free} free");
    assert!(txq.wake(QueueReason::Reclaim), "the false wake");
    assert!(!txq.stopped());
    let id = alloc(&skbs, &[64; 17]);
    assert_eq!(dev.ops.start_xmit(id, false), NetdevTx::Busy);
    assert!(txq.stopped(), "BUSY left the queue running");
    skbs.borrow_mut().free(id).unwrap();
    dev.unregister();
    assert_eq!(skbs.borrow().live(), 0);
}

/// Kills ops.rs:31 `<impl NetDeviceOps for Adapter>::tx_timeout` ->
/// `()`: the watchdog of a netdev that owns its adapter (the single-CPU
/// shape) reaches ndo_tx_timeout, which resets the stuck ring and
/// restarts the queue.
#[test]
fn the_watchdog_reaches_the_owned_adapter() {
    let plat = HostPlat::new(held());
    open_nic!(plat, skbs, txq, napi, dev, weight: 64, bql: false, timeo: 1_000_000);
    fill_until_stopped(&skbs, &txq, &mut dev, |a| a.tx_free());
    pass(&plat, 2_000_000);
    assert!(dev.watchdog_tick(), "the watchdog fired");
    assert_eq!(dev.ops.stats().tx_timeouts, 1, "ndo_tx_timeout ran");
    assert!(!txq.stopped(), "the reset restarted the queue");
    assert_eq!(dev.ops.tx_free(), 63, "the stuck packets were aborted");
    dev.unregister();
    assert_eq!(skbs.borrow().live(), 0);
}

/// The NapiComplete markers' args: (rx done, weight) of each poll that
/// completed.
fn completes(plat: &HostPlat) -> Vec<Vec<u64>> {
    plat.markers()
        .into_iter()
        .filter(|r| r.marker == Marker::NapiComplete)
        .map(|r| r.args)
        .collect()
}

/// Kills ops.rs:164 `+=` -> `*=` (run_irq_work returns the RX frames it
/// processed) and :165 `&&` -> `||` (a poll that used its whole budget
/// reported as complete): eight frames arrive at once for a NAPI weight
/// of 4, so one interrupt runs three polls (4, 4, 0).
#[test]
fn a_poll_over_budget_repolls_and_is_not_reported_complete() {
    let plat = HostPlat::new(NicConfig::default());
    open_nic!(plat, skbs, txq, napi, dev, weight: 4, bql: false, timeo: 5_000_000_000);
    for i in 0..8 {
        let id = alloc(&skbs, &[64]);
        assert_eq!(dev.ops.start_xmit(id, i < 7), NetdevTx::Ok);
    }
    pass(&plat, 1_000_000);
    assert_eq!(plat.root().nic.frames_sent(), 8);
    let before = completes(&plat).len();
    assert_eq!(dev.ops.run_irq_work(), 8, "RX frames of the interrupt");
    assert_eq!(dev.ops.stats().rx_packets, 8);
    assert_eq!(completes(&plat)[before..], [vec![0, 4]]);
    dev.unregister();
    assert_eq!(skbs.borrow().live(), 0);
}

/// Kills ops.rs:45 `<impl NapiHandler for Adapter>::irq_enable` -> `()`:
/// a poll through the owned adapter that completes under budget unmasks
/// the causes the MSI handler masked.
#[test]
fn a_poll_through_the_owned_adapter_re_enables_the_causes() {
    let plat = HostPlat::new(NicConfig::default());
    open_nic!(plat, skbs, txq, napi, dev, weight: 64, bql: false, timeo: 5_000_000_000);
    let id = alloc(&skbs, &[64]);
    assert_eq!(dev.ops.start_xmit(id, false), NetdevTx::Ok);
    pass(&plat, 1_000_000);
    assert!(dev.ops.handle_irq(), "the completion scheduled NAPI");
    let ring = regs::INT_TX | regs::INT_RX;
    assert_eq!(dev.ops.regs().read(regs::INT_ENABLE) & ring, 0, "masked");
    let r = napi.poll(64, &mut dev.ops);
    assert!(r.completed);
    assert_eq!(
        dev.ops.regs().read(regs::INT_ENABLE) & ring,
        ring,
        "re-armed"
    );
    dev.unregister();
    assert_eq!(skbs.borrow().live(), 0);
}

/// Kills ops.rs:135 `+` -> `*` (the TX vector taken as vector 0) and
/// :137 `+` -> `-`/`*` (the misc vector left pending): the TX and the RX
/// vector each schedule NAPI alone; the misc vector schedules nothing
/// and is taken all the same.
#[test]
fn the_msi_handler_takes_each_nic_vector() {
    let plat = HostPlat::new(NicConfig::default());
    open_nic!(plat, skbs, txq, napi, dev, weight: 64, bql: false, timeo: 5_000_000_000);
    let raise = |v: u16| {
        plat.irqs
            .signal(0xfee0_0000, u32::from(NIC_VECTOR_BASE) + u32::from(v));
        plat.irqs.accept();
    };
    for v in [pci::MSIX_TX, pci::MSIX_RX] {
        raise(v);
        assert!(dev.ops.handle_irq(), "vector {v} alone schedules NAPI");
        assert!(napi.poll(64, &mut dev.ops).completed);
    }
    raise(pci::MSIX_MISC);
    assert!(!dev.ops.handle_irq(), "misc schedules nothing");
    let misc = NIC_VECTOR_BASE + pci::MSIX_MISC as u8;
    assert!(!plat.take_irq(misc), "the handler took the misc vector");
    dev.unregister();
    assert_eq!(skbs.borrow().live(), 0);
}

/// Kills ops.rs:115 `ack_irq` -> `()` and :116 `!=` -> `==`: causes
/// latched during open, before the interrupts are enabled (as Linux's
/// igc_up clears ICR), are acknowledged and do not fire at enable.
#[test]
fn open_acknowledges_causes_latched_before_it() {
    let plat = HostPlat::new(NicConfig {
        irq_in_window: Some(IrqWindow {
            start: WindowStart::OpenEnter,
            causes: regs::INT_TX | regs::INT_RX | regs::INT_ERR,
            at_write: Some(1),
        }),
        ..NicConfig::default()
    });
    open_nic!(plat, skbs, txq, napi, dev, weight: 64, bql: false, timeo: 5_000_000_000);
    let forced = plat
        .log
        .snapshot()
        .iter()
        .any(|e| format!("{:?}", e.kind).contains("forced at write"));
    assert!(forced, "the window forced its causes during open");
    assert_eq!(
        plat.irqs
            .delivered
            .load(std::sync::atomic::Ordering::SeqCst),
        0,
        "a stale cause fired at enable"
    );
    dev.unregister();
    assert_eq!(skbs.borrow().live(), 0);
}

/// Kills tx.rs:462 `-` -> `+`/`/` (the wake-early switch's threshold no
/// longer early), :475 delete `!` and :348 delete `!` (the wake and stop
/// records, `Marker::QueueFree`, sent only in BENCH mode): the matrix's
/// wake-early and stop-early cases, run here, are caught by the host's
/// queue-thresholds oracle over this run's log.
#[test]
fn wake_early_and_stop_early_are_caught_by_queue_thresholds() {
    let threshold_cases: Vec<vmm::scenarios::Case> = vmm::scenarios::cases()
        .into_iter()
        .filter(|c| [DriverMutant::WakeEarly, DriverMutant::StopEarly].contains(&c.driver_mutant))
        .collect();
    assert_eq!(threshold_cases.len(), 2, "{threshold_cases:?}");
    for c in threshold_cases {
        for seed in c.first_seed..c.first_seed + c.seeds {
            let s = vmm::scenarios::setup(c.scenario, c.variant, seed);
            let (plat, _) =
                HostPlat::run_scenario(s.nic, c.scenario, seed, c.driver_mutant, s.knobs);
            let findings = plat.host_findings(!s.allow_busy);
            assert!(
                findings.iter().any(|f| f.starts_with("queue-thresholds")),
                "{} seed {seed}: {findings:?}",
                c.name()
            );
        }
    }
}

/// Kills tx.rs:279 `+` -> `*` (the sequence never advances): xmit marks
/// each skb it posts with its TX sequence number, 0, 1, 2, ... (tx_map;
/// nothing in the driver reads the mark back, a debugger or test does).
#[test]
fn xmit_marks_each_skb_with_its_sequence_number() {
    let plat = HostPlat::new(held());
    open_nic!(plat, skbs, txq, napi, dev, weight: 64, bql: false, timeo: 5_000_000_000);
    let ids: Vec<SkbId> = (0..3).map(|_| alloc(&skbs, &[64])).collect();
    for &id in &ids {
        assert_eq!(dev.ops.start_xmit(id, false), NetdevTx::Ok);
    }
    let marks: Vec<u64> = ids
        .iter()
        .map(|&id| skbs.borrow().get(id).expect("held: not reclaimed").mark())
        .collect();
    assert_eq!(marks, [0, 1, 2]);
    dev.unregister();
    assert_eq!(skbs.borrow().live(), 0);
}

/// Kills tx.rs:100 `||` -> `&&` after `!xmit_more` (no snapshot when the
/// queue stops inside an xmit_more batch): the stop ends the batch, so
/// xmit reports the ring (`Marker::TxRing`, the doorbell-pending oracle's
/// input) and has rung the doorbell for everything posted.
#[test]
fn a_stop_inside_a_batch_ends_it_with_a_ring_snapshot() {
    let plat = HostPlat::new(held());
    open_nic!(plat, skbs, txq, napi, dev, weight: 64, bql: false, timeo: 5_000_000_000);
    let mut sent = 0;
    while !txq.stopped() {
        let id = alloc(&skbs, &[64; 17]);
        assert_eq!(dev.ops.start_xmit(id, true), NetdevTx::Ok);
        sent += 1;
    }
    let snapshots: Vec<Vec<u64>> = plat
        .markers()
        .into_iter()
        .filter(|r| r.marker == Marker::TxRing)
        .map(|r| r.args)
        .collect();
    // args: producer, consumer, BQL queued, completed, flags.
    assert_eq!(snapshots.len(), 1, "{sent} packets: {snapshots:?}");
    assert_eq!(snapshots[0][0], 17 * sent);
    assert_eq!(dev.ops.stats().doorbells, 1);
    dev.unregister();
    assert_eq!(skbs.borrow().live(), 0);
}
