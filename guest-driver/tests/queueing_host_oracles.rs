//! The two queueing mutants only the host catches, against the real
//! device model in this process (virtual time, no KVM):
//!
//! - `drop-skips-doorbell` on batch-last-dropped: the host's
//!   `doorbell-pending` oracle (vmm/src/oracles.rs) compares each
//!   `Marker::TxRing` snapshot's posted index with the last TX_TAIL write
//!   the device saw;
//! - `bql-miscount` on bql-random: the host's `bql-balance` oracle
//!   compares the snapshot's BQL counters with the bytes of the frames the
//!   device sent since its last reset;
//! - `reclaim-in-service-task` on bql-random: the host's `bql-stall` oracle
//!   reports each `Marker::BqlStall` the guest's BQL stall detector
//!   (Linux's, armed at 1280 ms on bql-random) raises.
//!
//! guest-driver cannot depend on the vmm crate, so [`uncovered`] and
//! [`unbalanced`] restate those two rules over this run's event log (the
//! same log a VM run hands the oracles); the matrix cases run the oracles
//! themselves in VMs. The correct driver must never trip either rule in
//! any single-CPU queueing scenario, or in default with xmit_more batches.

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

fn is_open_enter(e: &Event) -> bool {
    matches!(&e.kind, EventKind::Marker { marker, .. } if marker == Marker::OpenEnter.name())
}

/// doorbell-pending's rule: the first snapshot whose posted index lies
/// beyond the last TX_TAIL write (since the last reset or open), as
/// (posted, tail, at stop).
fn uncovered(log: &[Event]) -> Option<(u32, u32, bool)> {
    let mut tail = 0u32;
    for e in log {
        match &e.kind {
            EventKind::ResetStart => tail = 0,
            EventKind::MmioWrite { offset, value, .. } if *offset == u64::from(abi::regs::TX_TAIL) => tail = *value as u32,
            _ if is_open_enter(e) => tail = 0,
            _ => {}
        }
        if let Some(a) = tx_ring(e) {
            let posted = a[0] as u32;
            if (posted.wrapping_sub(tail) as i32) > 0 {
                return Some((posted, tail, a[4] & abi::TX_RING_AT_STOP != 0));
            }
        }
    }
    None
}

/// bql-balance's rule: the first snapshot (BQL on) where completed >
/// sent or sent > queued, or, at stop with an empty ring, the three
/// differ; as (queued, completed, sent).
fn unbalanced(log: &[Event]) -> Option<(u32, u32, u32)> {
    let mut sent = 0u64;
    for e in log {
        match &e.kind {
            EventKind::ResetStart => sent = 0,
            EventKind::TxFrame { len, .. } => sent += u64::from(*len),
            _ => {}
        }
        let Some(a) = tx_ring(e) else { continue };
        if a[4] & abi::TX_RING_BQL == 0 {
            continue;
        }
        let (q, c, s) = (a[2] as u32, a[3] as u32, sent as u32);
        let empty_at_stop = a[4] & abi::TX_RING_AT_STOP != 0 && a[0] == a[1];
        if (s.wrapping_sub(c) as i32) < 0 || (q.wrapping_sub(s) as i32) < 0 || (empty_at_stop && (c != s || q != s)) {
            return Some((q, c, s));
        }
    }
    None
}

/// How many snapshots the run reported, and how many at stop entry.
fn snapshots(log: &[Event]) -> (usize, usize) {
    let all: Vec<&[u64]> = log.iter().filter_map(tx_ring).collect();
    (all.len(), all.iter().filter(|a| a[4] & abi::TX_RING_AT_STOP != 0).count())
}

#[test]
fn correct_driver_covers_every_batch_and_balances_bql() {
    // Default (xmit_more batches of 16) and every queueing scenario.
    let scenarios = std::iter::once(Scenario::Default).chain(Scenario::of_group(abi::Group::Queueing));
    for s in scenarios {
        for seed in [1, 2, 3] {
            let (plat, v) = run(s, seed, DriverMutant::None);
            let what = format!("{} seed {seed}", s.name());
            assert!(v.pass, "{what}: {}", v.text);
            let log = plat.log.snapshot();
            let (n, at_stop) = snapshots(&log);
            // Not vacuous: every run ends batches and stops at least once.
            assert!(n > at_stop && at_stop >= 1, "{what}: {n} snapshots, {at_stop} at stop");
            assert_eq!(uncovered(&log), None, "{what}: doorbell-pending");
            assert_eq!(unbalanced(&log), None, "{what}: bql-balance");
            assert_eq!(plat.count(Marker::BqlStall), 0, "{what}: bql-stall");
        }
    }
}

#[test]
fn reclaim_in_service_task_is_caught_by_bql_stall() {
    for seed in [1, 2, 3] {
        let (plat, _v) = run(Scenario::BqlRandom, seed, DriverMutant::ReclaimInServiceTask);
        let what = format!("seed {seed}");
        let stalls: Vec<Vec<u64>> =
            plat.markers().into_iter().filter(|r| r.marker == Marker::BqlStall).map(|r| r.args).collect();
        assert!(!stalls.is_empty(), "{what}: no stall reported");
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
        let (plat, v) = run(Scenario::BatchLastDropped, seed, DriverMutant::DropSkipsDoorbell);
        let what = format!("seed {seed}");
        assert!(!v.pass, "{what}: passed: {}", v.text);
        let (posted, tail, at_stop) = uncovered(&plat.log.snapshot()).unwrap_or_else(|| panic!("{what}: not uncovered"));
        // Found where the batch ended, not only at stop: the descriptors
        // of every packet but the dropped last one posted, none rung.
        assert!(!at_stop, "{what}: found only at stop");
        assert!(posted >= 1 && tail == 0, "{what}: posted {posted}, tail {tail}");
        // The guest sees it too, as frames that never complete.
        assert!(plat.fails().iter().any(|f| f.starts_with("doorbell:")), "{what}: {:?}", plat.fails());
    }
}

#[test]
fn bql_miscount_is_caught_by_bql_balance() {
    for seed in [1, 2, 3] {
        let (plat, v) = run(Scenario::BqlRandom, seed, DriverMutant::BqlMiscount);
        let what = format!("seed {seed}");
        // Found at a stop with an empty ring: all sent, BQL short of it.
        let (q, c, s) = unbalanced(&plat.log.snapshot()).unwrap_or_else(|| panic!("{what}: balanced"));
        assert!(c < s && s == q, "{what}: queued {q}, completed {c}, sent {s}");
        // The guest sees it too, at its first idle wait with every
        // descriptor reclaimed and BQL bytes still in flight, and ends the
        // traffic there instead of stalling until its deadline (its own
        // end-of-run BQL check passes: it runs after the stop's reset).
        assert!(!v.pass, "{what}: passed: {}", v.text);
        assert!(
            plat.fails().iter().any(|f| f.starts_with("bql: bytes in flight with every descriptor reclaimed")),
            "{what}: {:?}",
            plat.fails()
        );
        assert_eq!(plat.count(Marker::TxTimeout), 0, "{what}: found before any transmit timeout");
    }
}
