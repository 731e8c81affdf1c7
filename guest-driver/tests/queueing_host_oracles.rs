//! The queueing mutants only the host catches, against the real device
//! model in this process (virtual time, no KVM), judged by the host's own
//! oracles (`vmm::oracles`) over this run's event log (the same log a VM
//! run hands them):
//!
//! - `drop-skips-doorbell` on batch-last-dropped: `doorbell-pending`
//!   compares each `Marker::TxRing` snapshot's posted index with the last
//!   TX_TAIL write the device saw;
//! - `bql-miscount` on bql-random: `bql-balance` compares the snapshot's
//!   BQL counters with the bytes of the frames the device sent since its
//!   last reset;
//! - `reclaim-in-service-task` on bql-random: `bql-stall` reports each
//!   `Marker::BqlStall` the guest's BQL stall detector (Linux's, armed at
//!   1280 ms on bql-random) raises.
//!
//! The correct driver must trip none of the host oracles in any
//! single-CPU queueing scenario, or in default with xmit_more batches.

#[path = "common/hostplat.rs"]
mod hostplat;
#[path = "common/queueing_setup.rs"]
mod queueing_setup;

use hostplat::HostPlat;
use nic_model::abi::{self, DriverMutant, Marker, Scenario};
use nic_model::events::{Event, EventKind};
use nicproof_guest::scenarios::Verdict;

fn run(s: Scenario, seed: u64, mutant: DriverMutant) -> (HostPlat, Verdict) {
    let (nic, knobs) = queueing_setup::setup(s, seed);
    HostPlat::run_scenario(nic, s, seed, mutant, knobs)
}

fn tx_ring(e: &Event) -> Option<&[u64]> {
    match &e.kind {
        EventKind::Marker { marker, args, .. } if marker == Marker::TxRing.name() => Some(args),
        _ => None,
    }
}

/// The host oracle `oracle`'s findings over the run's log, with the
/// event each points at.
fn found(
    log: &[Event],
    oracle: fn(&[Event]) -> Vec<vmm::oracles::Finding>,
) -> Vec<(vmm::oracles::Finding, Event)> {
    oracle(log)
        .into_iter()
        .filter_map(|f| Some((f.clone(), log.iter().find(|e| e.seq == f.seq)?.clone())))
        .collect()
}

/// How many snapshots the run reported, and how many at stop entry.
fn snapshots(log: &[Event]) -> (usize, usize) {
    let all: Vec<&[u64]> = log.iter().filter_map(tx_ring).collect();
    (
        all.len(),
        all.iter()
            .filter(|a| a[4] & abi::TX_RING_AT_STOP != 0)
            .count(),
    )
}

#[test]
fn correct_driver_covers_every_batch_and_balances_bql() {
    // Default (xmit_more batches of 16) and every queueing scenario.
    let scenarios =
        std::iter::once(Scenario::Default).chain(Scenario::of_group(abi::Group::Queueing));
    for s in scenarios {
        for seed in [1, 2, 3] {
            let (plat, v) = run(s, seed, DriverMutant::None);
            let what = format!("{} seed {seed}", s.name());
            assert!(v.pass, "{what}: {}", v.text);
            let log = plat.log.snapshot();
            let (n, at_stop) = snapshots(&log);
            // Not vacuous: every run ends batches and stops at least once.
            assert!(
                n > at_stop && at_stop >= 1,
                "{what}: {n} snapshots, {at_stop} at stop"
            );
            assert_eq!(
                plat.host_findings(true),
                Vec::<String>::new(),
                "{what}: host oracles"
            );
        }
    }
}

#[test]
fn reclaim_in_service_task_is_caught_by_bql_stall() {
    for seed in [1, 2, 3] {
        let (plat, _v) = run(
            Scenario::BqlRandom,
            seed,
            DriverMutant::ReclaimInServiceTask,
        );
        let what = format!("seed {seed}");
        let stalls: Vec<Vec<u64>> = plat
            .markers()
            .into_iter()
            .filter(|r| r.marker == Marker::BqlStall)
            .map(|r| r.args)
            .collect();
        assert!(!stalls.is_empty(), "{what}: no stall reported");
        assert_eq!(
            vmm::oracles::bql_stall(&plat.log.snapshot()).len(),
            stalls.len(),
            "{what}: bql-stall"
        );
        // args: queue, len, thrs, count, ns per jiffy. Every stall is at
        // least the threshold, 128 jiffies (1280 ms), and the count runs
        // 1, 2, ...
        for (i, a) in stalls.iter().enumerate() {
            assert_eq!(a[2], 128, "{what}: {a:?}");
            assert!(a[1] >= a[2], "{what}: stall shorter than stall_thrs: {a:?}");
            assert_eq!(a[3], i as u64 + 1, "{what}: {a:?}");
        }
    }
}

#[test]
fn drop_skips_doorbell_is_caught_by_doorbell_pending() {
    for seed in [1, 2, 3] {
        let (plat, v) = run(
            Scenario::BatchLastDropped,
            seed,
            DriverMutant::DropSkipsDoorbell,
        );
        let what = format!("seed {seed}");
        assert!(!v.pass, "{what}: passed: {}", v.text);
        let log = plat.log.snapshot();
        let found = found(&log, vmm::oracles::doorbell_pending);
        let (f, at) = found
            .first()
            .unwrap_or_else(|| panic!("{what}: doorbell-pending found nothing"));
        // Found where the batch ended, not only at stop: the descriptors
        // of every packet but the dropped last one posted, none rung.
        let a = tx_ring(at).unwrap_or_else(|| panic!("{what}: {f:?} not at a tx-ring snapshot"));
        assert!(
            a[4] & abi::TX_RING_AT_STOP == 0,
            "{what}: found only at stop: {}",
            f.detail
        );
        assert!(
            a[0] >= 1
                && f.detail
                    .ends_with("wrote 0x0 when start_xmit ended its batch"),
            "{what}: {}",
            f.detail
        );
        // The guest sees it too, as frames that never complete.
        assert!(
            plat.fails().iter().any(|f| f.starts_with("doorbell:")),
            "{what}: {:?}",
            plat.fails()
        );
    }
}

#[test]
fn bql_miscount_is_caught_by_bql_balance() {
    let mut guest_saw = 0;
    for seed in [1, 2, 3] {
        let (plat, v) = run(Scenario::BqlRandom, seed, DriverMutant::BqlMiscount);
        let what = format!("seed {seed}");
        // Found at a stop with an empty ring: all sent, BQL short of it.
        let log = plat.log.snapshot();
        let found = found(&log, vmm::oracles::bql_balance);
        let (f, at) = found
            .first()
            .unwrap_or_else(|| panic!("{what}: bql-balance found nothing"));
        let a = tx_ring(at).unwrap_or_else(|| panic!("{what}: {f:?} not at a tx-ring snapshot"));
        let (queued, completed) = (a[2], a[3]);
        assert!(
            a[4] & abi::TX_RING_AT_STOP != 0 && a[0] == a[1],
            "{what}: {}",
            f.detail
        );
        assert!(
            completed < queued && f.detail.starts_with("stop with an empty ring"),
            "{what}: {}",
            f.detail
        );
        // The guest may see it too, at an idle wait that finds every
        // descriptor reclaimed and BQL bytes still in flight (whether one
        // does depends on the seeded batches), and then ends the traffic
        // there instead of stalling until its deadline (its own end-of-run
        // BQL check passes: it runs after the stop's reset).
        if !v.pass {
            guest_saw += 1;
            assert!(
                plat.fails()
                    .iter()
                    .any(|f| f.starts_with("bql: bytes in flight with every descriptor reclaimed")),
                "{what}: {:?}",
                plat.fails()
            );
        }
        assert_eq!(
            plat.count(Marker::TxTimeout),
            0,
            "{what}: found before any transmit timeout"
        );
    }
    assert!(guest_saw >= 1, "the guest's own bql check never fired");
}
