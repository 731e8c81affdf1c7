//! The stop/wake protocol on real threads: a producer fills a small ring
//! through `maybe_stop`, a consumer reclaims through `completed_wake`.
//! A lost wake leaves the producer waiting on a stopped queue that the
//! consumer, polling continuously, never wakes; a bounded wait turns that
//! into a failure instead of a hang. loom proves the protocol; this runs
//! the same code at speed on the host's CPUs, where a missing fence lets
//! the consumer's index store pass its load of the stop bit. Whether this
//! machine ever shows that reordering is timing, so no test here claims
//! to catch the no-fence mutant: loom_stop_wake.rs does, by construction.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use nicproof_guest::softnet::queue::TxQueue;
use nicproof_guest::softnet::{NoEnv, SoftnetMutants};

static ENV: NoEnv = NoEnv;

const RING: u32 = 8;
const STOP: u32 = 2;
const START: u32 = 4;
const PACKETS: u32 = 20_000;
/// A stopped queue not woken within this long lost its wake (the
/// consumer polls continuously, so a wake is due within microseconds).
const STUCK: Duration = Duration::from_secs(2);

fn free(prod: &AtomicU32, cons: &AtomicU32) -> u32 {
    RING - prod
        .load(Ordering::Acquire)
        .wrapping_sub(cons.load(Ordering::Acquire))
}

#[derive(Debug)]
#[allow(dead_code)] // printed
struct Stats {
    /// Full ring on entry (tolerated false wakes).
    busy: u32,
    /// maybe_stop results 0 (stopped) or -1 (raced, restarted).
    stops: u32,
    polls: u32,
    /// completed_wake results 0 (woken).
    wakes: u32,
}

/// The run's counters, or why it got stuck.
fn run(bql: bool, mutants: SoftnetMutants) -> Result<Stats, String> {
    let q = TxQueue::new(0, bql, mutants, &ENV);
    let (prod, cons) = (AtomicU32::new(0), AtomicU32::new(0));
    let (done, abort) = (AtomicBool::new(false), AtomicBool::new(false));

    thread::scope(|s| {
        let producer = s.spawn(|| {
            let (mut sent, mut busy, mut stops) = (0, 0, 0u32);
            let mut waiting_since: Option<Instant> = None;
            while sent < PACKETS {
                if q.xmit_stopped() {
                    let since = *waiting_since.get_or_insert_with(Instant::now);
                    if since.elapsed() > STUCK {
                        let why = format!(
                            "stuck stopped after {sent} packets: state {:#x}, prod {}, cons {}",
                            q.state(),
                            prod.load(Ordering::Relaxed),
                            cons.load(Ordering::Relaxed)
                        );
                        abort.store(true, Ordering::Release);
                        return Err(why);
                    }
                    thread::yield_now();
                    continue;
                }
                waiting_since = None;
                if free(&prod, &cons) == 0 {
                    busy += 1; // false wake: the entry check catches it
                    thread::yield_now();
                    continue;
                }
                q.sent_queue(64).unwrap();
                prod.fetch_add(1, Ordering::Release);
                if q.maybe_stop(|| free(&prod, &cons), STOP, START) != 1 {
                    stops += 1;
                }
                sent += 1;
            }
            done.store(true, Ordering::Release);
            Ok((busy, stops))
        });
        let consumer = s.spawn(|| {
            let (mut polls, mut wakes) = (0u32, 0u32);
            loop {
                let finished = done.load(Ordering::Acquire);
                let p = prod.load(Ordering::Acquire);
                let pkts = p.wrapping_sub(cons.load(Ordering::Relaxed));
                // The consumer index is stored before the macro.
                cons.store(p, Ordering::Release);
                if q.completed_wake(pkts, pkts * 64, || free(&prod, &cons), START)
                    .unwrap()
                    == 0
                {
                    wakes += 1;
                }
                polls = polls.wrapping_add(1);
                if (finished && pkts == 0) || abort.load(Ordering::Acquire) {
                    return (polls, wakes);
                }
                if pkts == 0 {
                    // Idle: let the producer have the CPU (2 shared cores).
                    thread::yield_now();
                }
            }
        });
        let (busy, stops) = producer.join().unwrap()?;
        let (polls, wakes) = consumer.join().unwrap();
        if q.xmit_stopped() {
            return Err("queue left stopped with an empty ring".into());
        }
        assert_eq!(q.dql().inflight(), 0);
        Ok(Stats {
            busy,
            stops,
            polls,
            wakes,
        })
    })
}

#[test]
fn real_threads_never_lose_a_wake() {
    let st = run(false, SoftnetMutants::NONE).unwrap();
    eprintln!("no bql: {PACKETS} packets: {st:?}");
    assert!(
        st.stops > 0,
        "the ring must fill for the test to mean anything"
    );
}

#[test]
fn real_threads_never_lose_a_wake_with_bql() {
    let st = run(true, SoftnetMutants::NONE).unwrap();
    eprintln!("bql: {PACKETS} packets: {st:?}");
    assert!(
        st.stops > 0,
        "the ring must fill for the test to mean anything"
    );
}
