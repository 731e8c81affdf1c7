//! BQL (Linux dql) invariants, over random sequences
//! of sends, completions, resets and time, against a FIFO model of the
//! packets in flight.
mod common;

use std::collections::VecDeque;

use common::RecEnv;
use nicproof_guest::abi::Marker;
use nicproof_guest::softnet::bql::{BqlError, Dql, DQL_MAX_LIMIT, DQL_MAX_OBJECT};
use nicproof_guest::softnet::queue::{TxQueue, STACK_XOFF};
use nicproof_guest::softnet::SoftnetMutants;
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    /// Send a packet of this many bytes; `more` = xmit_more.
    Send { bytes: u32, more: bool },
    /// Complete the oldest `pkts` packets.
    Complete { pkts: usize },
    /// Complete one byte more than is in flight (must be refused).
    OverComplete,
    /// Reset; the driver says how many packets it still has posted.
    Reset,
    /// Time passes.
    Sleep { ns: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1u32..=1522, any::<bool>()).prop_map(|(bytes, more)| Op::Send { bytes, more }),
        4 => (0usize..=4).prop_map(|pkts| Op::Complete { pkts }),
        1 => Just(Op::OverComplete),
        1 => Just(Op::Reset),
        2 => (0u64..=2_000_000_000).prop_map(|ns| Op::Sleep { ns }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn dql_invariants_hold(ops in prop::collection::vec(op(), 1..200), min in 0u32..3000) {
        let env = RecEnv::leaked();
        let q = TxQueue::new(0, true, SoftnetMutants::NONE, env);
        q.dql().set_limit_min(min).unwrap();
        let mut fifo: VecDeque<u32> = VecDeque::new();
        // Linux clamps the limit at completion (and our reset), not when
        // the bounds are set.
        let mut clamped = false;

        for op in ops {
            match op {
                Op::Send { bytes, more } => {
                    q.sent_queue_more(bytes, more).unwrap();
                    fifo.push_back(bytes);
                    if !more {
                        // Invariant 3: over the limit implies STACK_XOFF
                        // once a non-batched sent-queue returns.
                        prop_assert_eq!(q.dql().avail() < 0, q.state() & STACK_XOFF != 0);
                    }
                }
                Op::Complete { pkts } => {
                    let pkts = pkts.min(fifo.len());
                    // Invariant 4: completed bytes are the sent bytes.
                    let bytes: u32 = fifo.drain(..pkts).sum();
                    q.completed_queue(pkts as u32, bytes).unwrap();
                    if bytes != 0 {
                        clamped = true;
                        let s = q.dql().snapshot();
                        prop_assert_eq!(s.adj_limit, s.limit.wrapping_add(s.num_completed));
                    }
                }
                Op::OverComplete => {
                    let before = q.dql().snapshot();
                    let inflight = q.dql().inflight();
                    prop_assert_eq!(
                        q.completed_queue(1, inflight + 1),
                        Err(BqlError::CompletedAboveQueued { count: inflight + 1, inflight })
                    );
                    prop_assert_eq!(q.dql().snapshot(), before);
                }
                Op::Reset => {
                    let posted = fifo.len() as u32;
                    let r = q.reset_queue(posted);
                    if posted == 0 {
                        prop_assert_eq!(r, Ok(()));
                        prop_assert_eq!(q.state() & STACK_XOFF, 0);
                        clamped = true;
                    } else {
                        // Invariant 5: never with packets on the ring.
                        prop_assert_eq!(r, Err(BqlError::ResetWithNonEmptyRing(posted)));
                    }
                }
                Op::Sleep { ns } => env.advance(ns),
            }
            let s = q.dql().snapshot();
            // Invariant 1: completed never exceeds queued.
            prop_assert_eq!(q.dql().inflight(), fifo.iter().sum::<u32>());
            // Invariant 2: the limit stays within its bounds.
            prop_assert!(!clamped || s.min_limit <= s.limit);
            prop_assert!(s.limit <= s.max_limit);
        }

        // Quiescence: complete everything; BQL is empty and running.
        let bytes: u32 = fifo.iter().sum();
        if !fifo.is_empty() {
            q.completed_queue(fifo.len() as u32, bytes).unwrap();
        }
        prop_assert_eq!(q.dql().inflight(), 0);
        prop_assert!(q.dql().avail() >= 0);
        prop_assert_eq!(q.state() & STACK_XOFF, 0, "STACK_XOFF with avail >= 0 at quiescence");
    }
}

#[test]
fn starved_queue_grows_its_limit() {
    let d = Dql::new(100, 0);
    d.queued(1000, 0).unwrap();
    assert!(d.avail() < 0);
    d.completed(1000, 1).unwrap();
    let s = d.snapshot();
    assert_eq!(
        s.limit, 1000,
        "over limit and drained: grow by what completed"
    );
    assert_eq!(s.adj_limit, 2000);
    assert_eq!(d.avail(), 1000);
}

#[test]
fn busy_queue_shrinks_after_the_slack_hold_time() {
    let d = Dql::new(1_000, 0);
    // Grow the limit first.
    d.queued(10_000, 0).unwrap();
    d.completed(10_000, 1).unwrap();
    let grown = d.snapshot().limit;
    assert_eq!(grown, 10_000);
    // Stay busy (never drained) with little completed per interval.
    let mut t = 2;
    for _ in 0..5 {
        d.queued(1_000, 0).unwrap();
        d.queued(1_000, 0).unwrap();
        d.completed(1_000, t).unwrap();
        t += 600;
    }
    assert!(
        d.snapshot().limit < grown,
        "slack found over the hold time is given back"
    );
}

#[test]
fn oversized_object_is_refused() {
    let d = Dql::new(1_000, 0);
    assert_eq!(
        d.queued(DQL_MAX_OBJECT + 1, 0),
        Err(BqlError::ObjectTooBig(DQL_MAX_OBJECT + 1))
    );
    assert_eq!(d.inflight(), 0);
}

#[test]
fn limits_above_dql_max_limit_are_refused_like_sysfs() {
    let d = Dql::new(100, 0);
    assert_eq!(
        d.set_limit_max(DQL_MAX_LIMIT + 1),
        Err(BqlError::LimitAboveMax(DQL_MAX_LIMIT + 1))
    );
    assert_eq!(BqlError::LimitAboveMax(0).errno(), Some(22));
    assert_eq!(d.set_limit_min(DQL_MAX_LIMIT), Ok(()));
    assert_eq!(d.set_limit(5000), Ok(()));
    assert_eq!(d.snapshot().limit, 5000);
    // Linux clamps only at a completion; with min above max, max wins.
    d.set_limit_max(100).unwrap();
    d.queued(10, 0).unwrap();
    d.completed(10, 0).unwrap();
    assert_eq!(d.snapshot().limit, 100);
}

#[test]
fn stall_thrs_takes_4_to_128_jiffies_in_ms() {
    let d = Dql::new(100, 0);
    // HZ 100: 10 ms a jiffy, rounded up.
    assert_eq!(
        d.set_stall_thrs_ms(30, 0),
        Err(BqlError::StallThrsOutOfRange(3))
    );
    assert_eq!(
        d.set_stall_thrs_ms(1281, 0),
        Err(BqlError::StallThrsOutOfRange(129))
    );
    assert_eq!(d.set_stall_thrs_ms(1280, 0), Ok(()));
    assert_eq!(d.snapshot().stall_thrs, 128);
    assert_eq!(d.set_stall_thrs_ms(0, 0), Ok(()));
}

#[test]
fn reset_keeps_adj_limit_like_linux() {
    let d = Dql::new(100, 0);
    d.queued(100, 0).unwrap();
    d.completed(100, 0).unwrap();
    let adj = d.snapshot().adj_limit;
    assert_ne!(adj, 0);
    d.reset(0, 5).unwrap();
    let s = d.snapshot();
    assert_eq!(
        (s.num_queued, s.limit, s.adj_limit),
        (0, 0, adj),
        "dql_reset leaves adj_limit"
    );
    assert_eq!(
        d.avail() as u32,
        adj,
        "so the first send after a reset is not over the limit"
    );
}

#[test]
fn a_completion_that_retires_exactly_the_previous_queue_is_all_prev_completed() {
    // The issue-17 reproducer: Linux's AFTER_EQ (>= 0), not POSDIFF (> 0).
    let d = Dql::new(100, 0);
    d.queued(100, 0).unwrap();
    d.completed(50, 0).unwrap();
    d.queued(10, 0).unwrap();
    d.completed(50, 0).unwrap();
    let s = d.snapshot();
    assert_eq!(
        (s.limit, s.adj_limit, s.prev_ovlimit, d.avail()),
        (100, 200, 0, 90)
    );
}

#[test]
fn a_stall_is_reported_at_the_late_completion() {
    let env = RecEnv::leaked();
    let q = TxQueue::new(3, true, SoftnetMutants::NONE, env);
    const MS: u64 = 1_000_000;
    q.dql().set_stall_thrs_ms(100, 0).unwrap(); // 10 jiffies
                                                // Prompt completions: no stall.
    for _ in 0..5 {
        q.sent_queue(1000).unwrap();
        env.advance(MS);
        q.completed_queue(1, 1000).unwrap();
    }
    assert_eq!(env.count(Marker::BqlStall), 0);
    // Queued, then nothing completes for 150 ms.
    env.advance(20 * MS);
    q.sent_queue(1000).unwrap();
    env.advance(150 * MS);
    q.completed_queue(1, 1000).unwrap();
    let stalls: Vec<_> = env
        .markers()
        .into_iter()
        .filter(|(m, _)| *m == Marker::BqlStall)
        .collect();
    assert_eq!(stalls.len(), 1, "{stalls:?}");
    // queue 3, 150 ms = 15 or 16 jiffies, threshold 10, first stall.
    let a = &stalls[0].1;
    assert_eq!((a[0], a[2], a[3]), (3, 10, 1));
    assert!((15..=16).contains(&a[1]), "{a:?}");
    assert_eq!(q.dql().snapshot().stall_cnt, 1);
}
