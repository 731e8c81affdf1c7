//! Model check of the lockless stop/wake protocol on the REAL softnet
//! queue code (`TxQueue::maybe_stop` / `completed_wake`), with loom.
//!
//! Run: RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=3 cargo test -p guest-driver
//!      --release --test loom_stop_wake --target-dir target/loom (as make test does)
//!
//! Producer (xmit): accounts BQL, stores `prod`, then maybe_stop, the
//! order the Linux driver doc prescribes. Consumer (NAPI): reclaims,
//! stores `cons`, then completed_wake. After both finish, a queue that is
//! still stopped although a full packet's room is free can never be
//! woken again: the lost wake ("stuck stopped"). With the fences the
//! model passes; each mutant that breaks the protocol is found.
#![cfg(loom)]

use std::sync::atomic::Ordering::{Acquire, Release};

use loom::sync::atomic::AtomicU32;
use loom::sync::Arc;
use loom::thread;
use nicproof_guest::softnet::queue::{TxQueue, STACK_XOFF};
use nicproof_guest::softnet::{NoEnv, SoftnetMutants};

static ENV: NoEnv = NoEnv;

/// Packets the producer tries to send.
const PACKETS: u32 = 3;
/// Reclaim polls the consumer runs.
const POLLS: u32 = 2;
/// Bytes per packet (non-zero, so the wake side fences).
const BYTES: u32 = 100;
/// Every packet `BYTES` long.
const SAME_SIZE: &[u32] = &[BYTES];

#[derive(Clone, Copy)]
struct Model {
    ring: u32,
    stop_thrs: u32,
    start_thrs: u32,
    bql: bool,
    /// BQL's lowest limit; a high one keeps STACK_XOFF out of the way so
    /// the DRV_XOFF race relies on the fence inside the BQL completion.
    bql_min_limit: u32,
    mutants: SoftnetMutants,
    /// The driver-side `cons-index-late` mutant: the consumer stores its
    /// index after completed_wake instead of before.
    cons_late: bool,
    /// Packets the producer tries to send and polls the consumer runs.
    packets: u32,
    polls: u32,
    /// Packet `i` is `sizes[i % sizes.len()]` bytes.
    sizes: &'static [u32],
    /// BQL's limit pinned (`limit_min` = `limit_max`) at this many bytes
    /// by a one-byte packet sent and completed before the threads start
    /// (a fresh dql's `adj_limit` is 0, so its first packet always stops
    /// the queue); `None` keeps `bql_min_limit` and a high maximum.
    bql_fixed_limit: Option<u32>,
}

impl Model {
    fn size(&self, packet: u32) -> u32 {
        self.sizes[packet as usize % self.sizes.len()]
    }
}

struct Ring {
    prod: AtomicU32,
    cons: AtomicU32,
    size: u32,
}

impl Ring {
    /// Free slots as the producer's `get_desc` sees them: fresh loads.
    fn free(&self) -> u32 {
        let p = self.prod.load(Acquire);
        let c = self.cons.load(Acquire);
        self.size - p.wrapping_sub(c)
    }
}

fn check(m: Model) {
    loom::model(move || {
        let q = Arc::new(TxQueue::new(0, m.bql, m.mutants, &ENV));
        if let Some(limit) = m.bql_fixed_limit {
            q.dql().set_limit_min(limit).unwrap();
            q.dql().set_limit_max(limit).unwrap();
            q.sent_queue(1).unwrap();
            q.completed_queue(1, 1).unwrap();
            assert_eq!(q.state(), 0, "the warm-up packet leaves the queue running");
        } else {
            q.dql().set_limit_min(m.bql_min_limit).unwrap();
            q.dql().set_limit_max(u32::MAX / 4).unwrap();
        }
        let r = Arc::new(Ring {
            prod: AtomicU32::new(0),
            cons: AtomicU32::new(0),
            size: m.ring,
        });

        let (pq, pr) = (q.clone(), r.clone());
        let producer = thread::spawn(move || {
            let mut busy = 0;
            for i in 0..m.packets {
                // The stack never calls xmit on a stopped queue.
                if pq.xmit_stopped() {
                    continue;
                }
                // Full ring on entry: the tolerated false-wake BUSY path.
                if pr.free() == 0 {
                    busy += 1;
                    continue;
                }
                // The driver doc's order: BQL sent, producer index, then
                // maybe_stop. Storing `prod` here also stands for the
                // doorbell, after which the device may complete it.
                pq.sent_queue(m.size(i)).expect("bql accounting");
                let p = pr.prod.load(Acquire);
                pr.prod.store(p.wrapping_add(1), Release);
                pq.maybe_stop(|| pr.free(), m.stop_thrs, m.start_thrs);
            }
            busy
        });

        let (cq, cr) = (q.clone(), r.clone());
        let consumer = thread::spawn(move || {
            for _ in 0..m.polls {
                let p = cr.prod.load(Acquire);
                let c = cr.cons.load(Acquire);
                let pkts = p.wrapping_sub(c);
                let bytes = (c..p).map(|i| m.size(i)).sum();
                // The consumer index is stored before the macro.
                if !m.cons_late {
                    cr.cons.store(p, Release);
                }
                cq.completed_wake(pkts, bytes, || cr.free(), m.start_thrs)
                    .expect("bql accounting");
                if m.cons_late {
                    cr.cons.store(p, Release);
                }
            }
        });

        producer.join().unwrap();
        consumer.join().unwrap();

        let free = r.free();
        if q.stopped() && free >= m.start_thrs {
            panic!(
                "stuck stopped: DRV_XOFF set with {free} free (start_thrs {})",
                m.start_thrs
            );
        }
        if q.state() & STACK_XOFF != 0 && q.dql().avail() >= 0 {
            panic!(
                "stuck stopped: STACK_XOFF set with dql avail {}",
                q.dql().avail()
            );
        }
    });
}

/// Two slots, stop when full, restart with one free.
fn base() -> Model {
    Model {
        ring: 2,
        stop_thrs: 1,
        start_thrs: 1,
        bql: false,
        bql_min_limit: 0,
        mutants: SoftnetMutants::NONE,
        cons_late: false,
        packets: PACKETS,
        polls: POLLS,
        sizes: SAME_SIZE,
        bql_fixed_limit: None,
    }
}

#[test]
fn fenced_protocol_never_loses_a_wake() {
    check(base());
}

/// BQL on with a limit that never stops the queue: the wake side's only
/// fence is the one inside `netdev_tx_completed_queue` (301f227fc860).
fn bql_piggyback() -> Model {
    Model {
        bql: true,
        bql_min_limit: 100 * BYTES,
        ..base()
    }
}

#[test]
fn fenced_protocol_with_bql_never_loses_a_wake() {
    check(bql_piggyback());
}

/// BQL on from limit 0: STACK_XOFF stops and restarts the queue too.
#[test]
fn fenced_protocol_with_bql_stack_xoff_never_loses_a_wake() {
    check(Model {
        bql: true,
        ..base()
    });
}

#[test]
#[should_panic(expected = "stuck")]
fn missing_fence_loses_a_wake() {
    check(Model {
        mutants: SoftnetMutants {
            no_fence: true,
            ..SoftnetMutants::NONE
        },
        ..base()
    });
}

/// A finding, kept as a test: with BQL on, `netdev_tx_completed_queue`
/// ends in a test-and-clear of STACK_XOFF, an acquire-release RMW on the
/// same state word as the producer's stop bit. Either RMW reads the
/// other, so the pair is ordered even without the fences: the missing
/// fence only loses wakes with BQL off (as on x86, where every locked RMW
/// is a full barrier).
#[test]
fn missing_fence_is_masked_by_the_bql_state_rmw() {
    check(Model {
        mutants: SoftnetMutants {
            no_fence: true,
            ..SoftnetMutants::NONE
        },
        ..bql_piggyback()
    });
}

#[test]
#[should_panic(expected = "stuck")]
fn missing_recheck_loses_a_wake() {
    check(Model {
        mutants: SoftnetMutants {
            no_recheck: true,
            ..SoftnetMutants::NONE
        },
        ..base()
    });
}

#[test]
#[should_panic(expected = "stuck")]
fn inverted_wake_condition_never_wakes() {
    check(Model {
        mutants: SoftnetMutants {
            wake_inverted: true,
            ..SoftnetMutants::NONE
        },
        ..base()
    });
}

#[test]
fn start_threshold_equal_to_ring_is_fine_with_ge() {
    check(Model {
        start_thrs: 2,
        ..base()
    });
}

#[test]
#[should_panic(expected = "stuck")]
fn gt_for_ge_in_wake_misses_exact_threshold() {
    check(Model {
        start_thrs: 2,
        mutants: SoftnetMutants {
            threshold_off_by_one: true,
            ..SoftnetMutants::NONE
        },
        ..base()
    });
}

#[test]
#[should_panic(expected = "stuck")]
fn consumer_index_stored_after_the_macro_loses_a_wake() {
    check(Model {
        cons_late: true,
        ..base()
    });
}

/// NAPI scheduling across CPUs: an IRQ (new work + `schedule`) racing
/// with the poller's `complete_done` is never lost: either the IRQ finds
/// SCHED free and polls itself, or it sets MISSED and the poller goes
/// round again.
#[test]
fn napi_irq_racing_complete_is_never_lost() {
    use nicproof_guest::softnet::napi::Napi;

    fn poll_until_complete(napi: &Napi, work: &AtomicU32) {
        loop {
            work.swap(0, std::sync::atomic::Ordering::AcqRel);
            if napi.complete_done() {
                return;
            }
        }
    }

    loom::model(|| {
        let napi = Arc::new(Napi::new(64));
        napi.enable();
        let work = Arc::new(AtomicU32::new(1));
        assert!(napi.schedule());

        let (n, w) = (napi.clone(), work.clone());
        let poller = thread::spawn(move || poll_until_complete(&n, &w));
        let (n, w) = (napi.clone(), work.clone());
        let irq = thread::spawn(move || {
            w.fetch_add(1, Release);
            if n.schedule() {
                poll_until_complete(&n, &w);
            }
        });
        poller.join().unwrap();
        irq.join().unwrap();
        assert_eq!(
            work.load(Acquire),
            0,
            "lost IRQ: work left with no poll owed"
        );
        assert!(!napi.is_scheduled());
    });
}

/// Other ring shapes: a 3-slot ring with hysteresis (stop below 2,
/// restart at 3 = all free) and one that stops below 1 but restarts at 2.
#[test]
fn fenced_protocol_holds_for_other_thresholds() {
    for (ring, stop_thrs, start_thrs) in [(3, 2, 3), (3, 1, 2)] {
        check(Model {
            ring,
            stop_thrs,
            start_thrs,
            ..base()
        });
    }
}

/// BQL's own stop racing a completion: the producer's `sent_queue` finds
/// the queue over its limit, and before it sets STACK_XOFF the consumer
/// completes the packet before it and so brings it back under (a limit
/// of one packet: the second is over until the first completes). The
/// consumer saw no STACK_XOFF to clear, so the producer's re-check after
/// its fence must clear it itself: else it stays stopped under the limit
/// and nothing will ever clear it.
#[test]
fn bql_recheck_clears_stack_xoff_a_completion_raced() {
    check(Model {
        ring: 4,
        bql: true,
        bql_fixed_limit: Some(BYTES),
        packets: 2,
        polls: 1,
        ..base()
    });
}

/// The completion that makes room must see a concurrent DRV_XOFF even when
/// it leaves BQL over its limit (a 10-byte packet completes while a
/// 100-byte one is queued against a 50-byte limit): then the BQL
/// completion does not touch the state word, so only its fence
/// (`netdev_tx_completed_queue`'s smp_mb, which `netif_txq_completed_wake`
/// relies on, 301f227fc860) orders the consumer's index store before its
/// read of the stop bit. Without it the wake waits for a later completion.
#[test]
fn bql_completion_over_the_limit_still_wakes() {
    check(Model {
        bql: true,
        bql_fixed_limit: Some(50),
        sizes: &[10, 100],
        packets: 2,
        polls: 1,
        ..base()
    });
}
