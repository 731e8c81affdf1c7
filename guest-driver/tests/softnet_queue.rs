//! Every return path of the netdev_queues.h macros and the BQL hooks.
mod common;

use std::cell::Cell;

use common::RecEnv;
use nicproof_guest::abi::{Marker, QueueReason};
use nicproof_guest::softnet::bql::BqlError;
use nicproof_guest::softnet::queue::{TxQueue, DRV_XOFF, STACK_XOFF};
use nicproof_guest::softnet::SoftnetMutants;

fn queue(bql: bool, mutants: SoftnetMutants) -> (TxQueue<'static>, &'static RecEnv) {
    let env = RecEnv::leaked();
    (TxQueue::new(0, bql, mutants, env), env)
}

const STOP: u32 = 18;
const START: u32 = 34;

#[test]
fn maybe_stop_leaves_running_with_enough_room() {
    let (q, env) = queue(false, SoftnetMutants::NONE);
    assert_eq!(q.maybe_stop(|| STOP, STOP, START), 1);
    assert!(!q.stopped());
    assert!(env.markers().is_empty());
}

#[test]
fn maybe_stop_stops_when_room_stays_low() {
    let (q, env) = queue(false, SoftnetMutants::NONE);
    env.set_now(7_000);
    assert_eq!(q.maybe_stop(|| STOP - 1, STOP, START), 0);
    assert!(q.stopped() && q.xmit_stopped());
    assert_eq!(q.state(), DRV_XOFF);
    assert_eq!(q.trans_start(), 7_000, "stop stamps trans_start");
    assert_eq!(
        env.markers(),
        vec![(Marker::QueueStop, vec![QueueReason::RingLow as u64, 0])]
    );
}

#[test]
fn try_stop_restarts_when_a_completion_raced() {
    let (q, env) = queue(false, SoftnetMutants::NONE);
    // First read (maybe_stop's check) is low; the re-check after the stop
    // bit sees a concurrent completion's room.
    let reads = Cell::new(0);
    let get = || {
        reads.set(reads.get() + 1);
        if reads.get() == 1 {
            0
        } else {
            START
        }
    };
    assert_eq!(q.maybe_stop(get, STOP, START), -1);
    assert_eq!(reads.get(), 2, "get_desc is re-read after the stop bit");
    assert!(!q.stopped());
    assert_eq!(env.kinds(), vec![Marker::QueueStop, Marker::QueueWake]);
    assert_eq!(env.markers()[1].1[0], QueueReason::Raced as u64);
    // Restart is start, not wake: no reschedule from inside xmit.
    assert_eq!(env.schedules.load(std::sync::atomic::Ordering::Relaxed), 0);
}

#[test]
fn try_stop_reports_stopped_when_room_below_start() {
    let (q, _) = queue(false, SoftnetMutants::NONE);
    assert_eq!(q.try_stop(|| START - 1, START), 0);
    assert!(q.stopped());
}

#[test]
fn no_recheck_mutant_stays_stopped_despite_room() {
    let (q, _) = queue(
        false,
        SoftnetMutants {
            no_recheck: true,
            ..SoftnetMutants::NONE
        },
    );
    assert_eq!(q.try_stop(|| START, START), 0);
    assert!(q.stopped());
}

#[test]
fn completed_wake_wakes_a_stopped_queue_with_room() {
    let (q, env) = queue(false, SoftnetMutants::NONE);
    q.stop(QueueReason::RingLow);
    env.clear();
    assert_eq!(q.completed_wake(1, 60, || START, START), Ok(0));
    assert!(!q.stopped());
    assert_eq!(
        env.markers(),
        vec![(Marker::QueueWake, vec![QueueReason::Reclaim as u64, 0])]
    );
    assert_eq!(env.schedules.load(std::sync::atomic::Ordering::Relaxed), 1);
}

#[test]
fn completed_wake_returns_1_when_already_running() {
    let (q, env) = queue(false, SoftnetMutants::NONE);
    assert_eq!(q.completed_wake(1, 60, || START, START), Ok(1));
    assert!(env.markers().is_empty());
}

#[test]
fn completed_wake_down_cond_vetoes() {
    let (q, _) = queue(false, SoftnetMutants::NONE);
    q.stop(QueueReason::Lifecycle);
    assert_eq!(q.completed_wake_cond(1, 60, || START, START, true), Ok(1));
    assert!(q.stopped());
}

#[test]
fn completed_wake_returns_minus_1_without_room_or_packets() {
    let (q, _) = queue(false, SoftnetMutants::NONE);
    q.stop(QueueReason::RingLow);
    assert_eq!(q.completed_wake(1, 60, || START - 1, START), Ok(-1));
    assert_eq!(
        q.completed_wake(0, 0, || START * 2, START),
        Ok(-1),
        "pkts == 0 never wakes"
    );
    assert!(q.stopped());
}

#[test]
fn threshold_mutant_misses_exact_threshold() {
    let (q, _) = queue(
        false,
        SoftnetMutants {
            threshold_off_by_one: true,
            ..SoftnetMutants::NONE
        },
    );
    q.stop(QueueReason::RingLow);
    assert_eq!(q.completed_wake(1, 60, || START, START), Ok(-1));
    assert!(
        q.stopped(),
        "free == start_thrs must wake; the mutant does not"
    );
    assert_eq!(q.completed_wake(1, 60, || START + 1, START), Ok(0));
}

#[test]
fn wake_inverted_mutant_never_wakes_in_normal_operation() {
    let (q, _) = queue(
        false,
        SoftnetMutants {
            wake_inverted: true,
            ..SoftnetMutants::NONE
        },
    );
    q.stop(QueueReason::RingLow);
    assert_eq!(q.completed_wake(1, 60, || START * 2, START), Ok(1));
    assert!(q.stopped());
}

#[test]
fn start_and_wake_differ_in_rescheduling() {
    let (q, env) = queue(false, SoftnetMutants::NONE);
    assert!(
        !q.wake(QueueReason::Reclaim),
        "waking a running queue is a no-op"
    );
    q.stop(QueueReason::RingLow);
    q.start(QueueReason::Lifecycle);
    assert_eq!(env.schedules.load(std::sync::atomic::Ordering::Relaxed), 0);
    q.stop(QueueReason::RingLow);
    assert!(q.wake(QueueReason::Reclaim));
    assert_eq!(env.schedules.load(std::sync::atomic::Ordering::Relaxed), 1);
}

#[test]
fn bql_sets_stack_xoff_over_limit_and_completion_clears_it() {
    let (q, env) = queue(true, SoftnetMutants::NONE);
    // Limit starts at 0: the first packet goes, then BQL stops the queue.
    q.sent_queue(1000).unwrap();
    assert_eq!(q.state(), STACK_XOFF);
    assert!(
        q.xmit_stopped() && !q.stopped(),
        "STACK_XOFF is not a driver stop"
    );
    assert_eq!(
        env.markers().last().unwrap(),
        &(Marker::QueueStop, vec![QueueReason::Bql as u64, 0])
    );
    q.completed_queue(1, 1000).unwrap();
    assert_eq!(q.state(), 0, "a starved queue grows its limit and restarts");
    assert!(q.dql().snapshot().limit >= 1000);
    assert_eq!(q.dql().inflight(), 0);
}

#[test]
fn bql_xmit_more_only_accounts_and_says_when_to_ring() {
    let (q, _) = queue(true, SoftnetMutants::NONE);
    assert_eq!(
        q.sent_queue_more(500, true),
        Ok(false),
        "more follows, queue running: no doorbell"
    );
    assert_eq!(q.state() & STACK_XOFF, 0, "xmit_more defers STACK_XOFF");
    q.stop(QueueReason::RingLow);
    assert_eq!(
        q.sent_queue_more(500, true),
        Ok(true),
        "driver stopped the queue: ring now"
    );
    assert_eq!(q.sent_queue_more(500, false), Ok(true));
    assert_ne!(q.state() & STACK_XOFF, 0);
    assert_eq!(q.dql().inflight(), 1500);
}

#[test]
fn bql_completion_above_queued_is_refused() {
    let (q, _) = queue(true, SoftnetMutants::NONE);
    q.sent_queue(100).unwrap();
    assert_eq!(
        q.completed_queue(1, 101),
        Err(BqlError::CompletedAboveQueued {
            count: 101,
            inflight: 100
        })
    );
    assert_eq!(
        q.dql().inflight(),
        100,
        "a refused completion changes nothing"
    );
    assert!(q.completed_wake(1, 101, || START, START).is_err());
}

#[test]
fn bql_reset_needs_an_empty_ring() {
    let (q, _) = queue(true, SoftnetMutants::NONE);
    q.sent_queue(100).unwrap();
    assert_eq!(q.reset_queue(1), Err(BqlError::ResetWithNonEmptyRing(1)));
    assert_ne!(q.state() & STACK_XOFF, 0);
    assert_eq!(q.reset_queue(0), Ok(()));
    assert_eq!(q.state(), 0);
    assert_eq!(q.dql().inflight(), 0);
}

#[test]
fn without_bql_completed_wake_still_fences_and_accounts_nothing() {
    let (q, _) = queue(false, SoftnetMutants::NONE);
    q.sent_queue(100).unwrap();
    assert_eq!(q.dql().inflight(), 0);
    q.stop(QueueReason::RingLow);
    assert_eq!(q.completed_wake(1, 100, || START, START), Ok(0));
}

#[test]
fn xmit_timeout_measures_stopped_time() {
    let (q, env) = queue(false, SoftnetMutants::NONE);
    env.set_now(1_000);
    assert_eq!(q.xmit_timeout(10), None, "running queue never times out");
    q.stop(QueueReason::RingLow);
    env.set_now(1_010);
    assert_eq!(q.xmit_timeout(10), None);
    env.set_now(1_011);
    assert_eq!(q.xmit_timeout(10), Some(11));
}

#[test]
fn mutants_map_from_driver_mutant_ids() {
    use nicproof_guest::abi::DriverMutant as D;
    assert!(SoftnetMutants::from_driver_mutant(D::NoFence).no_fence);
    assert!(SoftnetMutants::from_driver_mutant(D::NoRecheck).no_recheck);
    assert!(SoftnetMutants::from_driver_mutant(D::ThresholdOffByOne).threshold_off_by_one);
    assert!(SoftnetMutants::from_driver_mutant(D::WakeInverted).wake_inverted);
    assert_eq!(
        SoftnetMutants::from_driver_mutant(D::BusyFrees),
        SoftnetMutants::NONE
    );
}

#[test]
fn stuck_stopped_oracle_flags_only_unwakeable_queues() {
    let (q, _) = queue(true, SoftnetMutants::NONE);
    assert_eq!(q.stuck_stopped(START, START), None, "running");
    q.stop(QueueReason::RingLow);
    assert_eq!(
        q.stuck_stopped(START - 1, START),
        None,
        "stopped, waiting for room"
    );
    assert_eq!(q.stuck_stopped(START, START), Some(DRV_XOFF));
    q.wake(QueueReason::Reclaim);
    q.sent_queue(100).unwrap(); // limit 0: STACK_XOFF, legitimately
    assert_eq!(q.stuck_stopped(START, START), None);
    // A completion that forgets to clear STACK_XOFF is what the oracle
    // catches; simulate it with the dql alone.
    q.dql().completed(100, 0).unwrap();
    assert_eq!(q.stuck_stopped(START, START), Some(STACK_XOFF));
}

#[test]
fn bql_snapshot_marker_carries_the_counters() {
    let (q, env) = queue(true, SoftnetMutants::NONE);
    q.sent_queue(300).unwrap();
    q.completed_queue(1, 300).unwrap();
    env.clear();
    q.report_bql();
    assert_eq!(env.markers(), vec![(Marker::Bql, vec![300, 300, 300, 0])]);
}

#[test]
fn bql_restart_does_not_reschedule_a_queue_the_driver_stopped() {
    // netif_schedule_queue skips a queue with an XOFF bit still set.
    let (q, env) = queue(true, SoftnetMutants::NONE);
    q.sent_queue(100).unwrap(); // limit 0: STACK_XOFF
    q.stop(QueueReason::RingLow);
    q.completed_queue(1, 100).unwrap();
    assert_eq!(q.state(), DRV_XOFF, "STACK_XOFF cleared, DRV_XOFF kept");
    assert_eq!(env.schedules.load(std::sync::atomic::Ordering::Relaxed), 0);
    // The driver's wake reschedules it.
    assert!(q.wake(QueueReason::Reclaim));
    assert_eq!(env.schedules.load(std::sync::atomic::Ordering::Relaxed), 1);
}

#[test]
fn a_frozen_queue_is_not_stopped_but_gets_no_xmit() {
    let (q, _env) = queue(true, SoftnetMutants::NONE);
    q.freeze();
    assert!(!q.stopped() && !q.xmit_stopped());
    assert!(q.xmit_frozen_or_stopped() && q.xmit_frozen_or_drv_stopped());
    q.unfreeze();
    assert!(!q.xmit_frozen_or_stopped());
}
