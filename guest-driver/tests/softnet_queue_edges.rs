//! Edges of the queue state the main queue tests leave out: accessors,
//! the frozen/driver-stopped predicate on every state, the BQL restart
//! exactly at the limit, and what a completion must leave alone. Each
//! test was written for a cargo-mutants survivor of
//! guest-driver/src/softnet/queue.rs (README, Mutation score).
mod common;

use std::sync::atomic::Ordering;

use common::RecEnv;
use nicproof_guest::abi::{Marker, QueueReason};
use nicproof_guest::softnet::queue::{TxQueue, DRV_XOFF, FROZEN, STACK_XOFF};
use nicproof_guest::softnet::SoftnetMutants;

fn queue(index: u32, bql: bool, mutants: SoftnetMutants) -> (TxQueue<'static>, &'static RecEnv) {
    let env = RecEnv::leaked();
    (TxQueue::new(index, bql, mutants, env), env)
}

/// A BQL queue whose limit stays at `limit` after every completion.
fn pinned(limit: u32) -> (TxQueue<'static>, &'static RecEnv) {
    let (q, env) = queue(0, true, SoftnetMutants::NONE);
    q.dql().set_limit_min(limit).unwrap();
    q.dql().set_limit_max(limit).unwrap();
    (q, env)
}

#[test]
fn accessors_return_what_the_queue_was_built_with() {
    let m = SoftnetMutants {
        no_fence: true,
        threshold_off_by_one: true,
        ..SoftnetMutants::NONE
    };
    let (q, env) = queue(3, true, m);
    assert_eq!(q.index(), 3);
    assert_eq!(q.mutants(), m);
    assert!(q.bql_enabled());
    let (plain, _) = queue(0, false, SoftnetMutants::NONE);
    assert!(!plain.bql_enabled());
    // Markers carry the queue's own index.
    q.stop(QueueReason::RingLow);
    assert_eq!(
        env.markers(),
        vec![(Marker::QueueStop, vec![QueueReason::RingLow as u64, 3])]
    );
}

#[test]
fn frozen_or_drv_stopped_on_every_state() {
    // netif_xmit_frozen_or_drv_stopped: DRV_XOFF or FROZEN; STACK_XOFF
    // alone does not count.
    for state in 0..8u32 {
        let (q, _) = queue(0, true, SoftnetMutants::NONE);
        if state & DRV_XOFF != 0 {
            q.stop(QueueReason::RingLow);
        }
        if state & STACK_XOFF != 0 {
            q.sent_queue(100).unwrap(); // limit 0: STACK_XOFF
        }
        if state & FROZEN != 0 {
            q.freeze();
        }
        assert_eq!(q.state(), state);
        assert_eq!(
            q.xmit_frozen_or_drv_stopped(),
            state & (DRV_XOFF | FROZEN) != 0,
            "state {state:#b}"
        );
        assert_eq!(q.xmit_frozen_or_stopped(), state != 0, "state {state:#b}");
        assert_eq!(
            q.xmit_stopped(),
            state & (DRV_XOFF | STACK_XOFF) != 0,
            "state {state:#b}"
        );
    }
}

#[test]
fn trans_update_stamps_the_current_time() {
    let (q, env) = queue(0, false, SoftnetMutants::NONE);
    env.set_now(5_000);
    q.trans_update();
    assert_eq!(q.trans_start(), 5_000);
    env.set_now(9_000);
    q.trans_update();
    assert_eq!(q.trans_start(), 9_000);
}

#[test]
fn bql_restart_reschedules_a_queue_only_bql_stopped() {
    // netif_schedule_queue after the STACK_XOFF clear: no driver stop
    // remains, so the qdisc runs again.
    let (q, env) = queue(0, true, SoftnetMutants::NONE);
    q.sent_queue(100).unwrap(); // limit 0: STACK_XOFF
    assert_eq!(q.state(), STACK_XOFF);
    q.completed_queue(1, 100).unwrap();
    assert_eq!(q.state(), 0);
    assert_eq!(env.schedules.load(Ordering::Relaxed), 1);
    assert_eq!(
        env.markers().last().unwrap(),
        &(Marker::QueueWake, vec![QueueReason::Bql as u64, 0])
    );
}

#[test]
fn bql_restart_exactly_at_the_limit_and_not_below_it() {
    let (q, env) = pinned(1000);
    q.sent_queue(600).unwrap(); // adj_limit 0 before any completion
    assert_eq!(q.state(), STACK_XOFF);
    q.dql().queued(600, 0).unwrap(); // an xmit_more packet behind it
                                     // 100 completed: limit 1000 + 100 completed - 1200 queued < 0.
    q.completed_queue(1, 100).unwrap();
    assert!(q.dql().avail() < 0);
    assert_eq!(q.state(), STACK_XOFF, "still over the limit: stays stopped");
    assert_eq!(env.schedules.load(Ordering::Relaxed), 0);
    // 100 more: avail exactly 0, which is room (dql_avail >= 0).
    q.completed_queue(1, 100).unwrap();
    assert_eq!(q.dql().avail(), 0);
    assert_eq!(q.state(), 0, "at the limit the queue restarts");
    assert_eq!(env.schedules.load(Ordering::Relaxed), 1);
}

#[test]
fn a_completion_under_the_limit_reports_no_wake() {
    let (q, env) = pinned(1000);
    q.sent_queue(100).unwrap();
    q.completed_queue(1, 100).unwrap(); // restarted; adj_limit now 1100
    q.sent_queue(300).unwrap();
    assert_eq!(q.state(), 0);
    env.clear();
    env.schedules.store(0, Ordering::Relaxed);
    q.completed_queue(1, 300).unwrap();
    assert!(
        env.markers().is_empty(),
        "no STACK_XOFF was set: nothing to wake"
    );
    assert_eq!(env.schedules.load(Ordering::Relaxed), 0);
    // With the driver's stop bit and FROZEN set, the completion clears
    // STACK_XOFF only.
    q.sent_queue(100).unwrap();
    q.stop(QueueReason::RingLow);
    q.freeze();
    env.clear();
    q.completed_queue(1, 100).unwrap();
    assert_eq!(q.state(), DRV_XOFF | FROZEN);
    assert!(env.markers().is_empty());
}

#[test]
fn without_bql_completed_queue_accounts_nothing() {
    // netdev_tx_completed_queue is a no-op without BQL: no dql
    // completion (which would refuse 100 bytes never queued).
    let (q, env) = queue(0, false, SoftnetMutants::NONE);
    assert_eq!(q.completed_queue(1, 100), Ok(()));
    assert_eq!(q.dql().snapshot().num_completed, 0);
    assert!(env.markers().is_empty());
    // With BQL, a zero-byte completion is a no-op too.
    let (b, env) = queue(0, true, SoftnetMutants::NONE);
    b.sent_queue(100).unwrap();
    env.clear();
    assert_eq!(b.completed_queue(0, 0), Ok(()));
    assert_eq!(b.state(), STACK_XOFF);
    assert!(env.markers().is_empty());
}
