//! Differential test: Linux's dql and netdev queue helpers (compiled from
//! their C in this crate) against the guest's softnet core
//! (guest-driver/src/softnet/{bql,queue}.rs), driven by the same seeded
//! random operations. After every step every field, every return value
//! and every reschedule must be equal.
//!
//! Steps: NICPROOF_DIFF_STEPS (default 120,000); seeds start at
//! NICPROOF_DIFF_SEED (default 1). A failure prints the seed, the step,
//! the operations that led there and both sides' fields.

use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};

use linux_ref::{set_jiffies, LinuxQueue};
use nicproof_guest::abi::Marker;
use nicproof_guest::softnet::bql::DQL_MAX_OBJECT;
use nicproof_guest::softnet::queue::TxQueue;
use nicproof_guest::softnet::{SoftnetEnv, SoftnetMutants};

const HZ: u64 = linux_ref::HZ;
const NS_PER_JIFFY: u64 = 1_000_000_000 / HZ;
const DEFAULT_STEPS: u64 = 120_000;

/// The Rust side's clock (kept equal to Linux's jiffies) and reschedules.
#[derive(Default)]
struct Env {
    jiffies: AtomicU64,
    schedules: AtomicU64,
}

impl SoftnetEnv for Env {
    fn now_ns(&self) -> u64 {
        self.jiffies.load(Ordering::Relaxed).wrapping_mul(NS_PER_JIFFY)
    }
    fn marker(&self, _: Marker, _: &[u64]) {}
    fn netif_schedule(&self, _queue: u32) {
        self.schedules.fetch_add(1, Ordering::Relaxed);
    }
}

/// splitmix64: the seeded generator (no dependency, stable across versions).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
}

#[derive(Clone, Debug)]
enum Op {
    Tick(u64),
    SentQueue(u32),
    SentQueueMore(u32, bool),
    /// Complete the `pkts` oldest packets (`extra` bytes more: a BUG).
    Complete { pkts: usize, extra: u32 },
    CompletedWake { pkts: usize, script: Vec<u32>, start: u32, down: bool },
    TryStop { script: Vec<u32>, start: u32 },
    MaybeStop { script: Vec<u32>, stop: u32, start: u32 },
    Stop,
    Start,
    Wake,
    Reset,
}

fn size(r: &mut Rng) -> u32 {
    match r.below(20) {
        0 => 0,
        1 => DQL_MAX_OBJECT - r.below(4) as u32,
        2 => (r.below(u64::from(DQL_MAX_OBJECT)) + 1) as u32,
        3..=5 => (r.below(65_536) + 1) as u32,
        _ => (r.below(1522) + 60) as u32,
    }
}

fn script(r: &mut Rng) -> Vec<u32> {
    (0..1 + r.below(3)).map(|_| r.below(40) as u32).collect()
}

fn gen(r: &mut Rng, fifo: &VecDeque<u32>) -> Op {
    match r.below(100) {
        0..=14 => Op::Tick(match r.below(10) {
            0..=5 => r.below(3),
            6..=8 => r.below(2 * HZ),
            _ => r.below(1 << 40),
        }),
        15..=34 => Op::SentQueue(size(r)),
        35..=49 => Op::SentQueueMore(size(r), r.chance(60)),
        50..=69 => {
            let pkts = r.below(fifo.len() as u64 + 1) as usize;
            let extra = if r.chance(2) { 1 + r.below(100) as u32 } else { 0 };
            Op::Complete { pkts, extra }
        }
        70..=79 => Op::CompletedWake {
            pkts: r.below(fifo.len() as u64 + 1) as usize,
            script: script(r),
            start: r.below(40) as u32,
            down: r.chance(20),
        },
        80..=84 => Op::TryStop { script: script(r), start: r.below(40) as u32 },
        85..=91 => Op::MaybeStop { script: script(r), stop: r.below(40) as u32, start: r.below(40) as u32 },
        92..=93 => Op::Stop,
        94 => Op::Start,
        95..=97 => Op::Wake,
        _ => Op::Reset,
    }
}

/// What both sides expose, for comparison.
#[derive(Debug, PartialEq, Eq)]
struct View {
    num_queued: u64,
    num_completed: u64,
    limit: u64,
    adj_limit: u64,
    min_limit: u64,
    max_limit: u64,
    avail: i64,
    state: u64,
    trans_start_ns: u64,
    schedules: u64,
}

fn view_c(c: &LinuxQueue) -> View {
    let f = c.fields();
    View {
        num_queued: f.num_queued,
        num_completed: f.num_completed,
        limit: f.limit,
        adj_limit: f.adj_limit,
        min_limit: f.min_limit,
        max_limit: f.max_limit,
        avail: i64::from(c.dql_avail()),
        state: f.state,
        trans_start_ns: f.trans_start.wrapping_mul(NS_PER_JIFFY),
        schedules: f.schedules,
    }
}

fn view_rust(q: &TxQueue<'_>, env: &Env) -> View {
    let s = q.dql().snapshot();
    View {
        num_queued: s.num_queued.into(),
        num_completed: s.num_completed.into(),
        limit: s.limit.into(),
        adj_limit: s.adj_limit.into(),
        min_limit: s.min_limit.into(),
        max_limit: s.max_limit.into(),
        avail: q.dql().avail().into(),
        state: q.state().into(),
        trans_start_ns: q.trans_start(),
        schedules: env.schedules.load(Ordering::Relaxed),
    }
}

/// A get_desc that replays `script` (the last value repeats) and counts
/// its evaluations, like the C glue's.
fn desc_fn<'a>(script: &'a [u32], reads: &'a Cell<u32>) -> impl Fn() -> u32 + 'a {
    move || {
        let i = reads.get() as usize;
        reads.set(reads.get() + 1);
        script[i.min(script.len() - 1)]
    }
}

/// Run one seeded sequence of `steps` operations; Err describes the first
/// divergence.
fn run_sequence(seed: u64, steps: u64) -> Result<(), String> {
    let mut r = Rng(seed);
    let env: &'static Env = Box::leak(Box::default());
    let mut jiffies = match r.below(4) {
        0 => 0,
        1 => u64::from(u32::MAX) - r.below(4 * HZ),
        2 => u64::MAX - r.below(4 * HZ),
        _ => r.next() >> 8,
    };
    // The Rust side keeps time in ns: stay where jiffies * NS_PER_JIFFY
    // does not wrap.
    jiffies %= u64::MAX / NS_PER_JIFFY - (1 << 41);
    set_jiffies(jiffies);
    env.jiffies.store(jiffies, Ordering::Relaxed);
    let c = LinuxQueue::new(true, HZ as u32);
    let q = TxQueue::new(0, true, SoftnetMutants::NONE, env);
    let mut fifo: VecDeque<u32> = VecDeque::new();
    let mut trail: VecDeque<(u64, Op)> = VecDeque::new();

    for step in 0..steps {
        let op = gen(&mut r, &fifo);
        trail.push_back((step, op.clone()));
        if trail.len() > 16 {
            trail.pop_front();
        }
        let fail = |what: String| {
            let ops: Vec<String> = trail.iter().map(|(s, o)| format!("  {s}: {o:?}")).collect();
            format!(
                "seed {seed} step {step}: {what}\n  Linux: {:?}\n  Rust:  {:?}\nlast operations:\n{}",
                view_c(&c),
                view_rust(&q, env),
                ops.join("\n")
            )
        };
        let reads = Cell::new(0);
        let (lin, rus): (String, String) = match &op {
            Op::Tick(d) => {
                jiffies = jiffies.wrapping_add(*d);
                set_jiffies(jiffies);
                env.jiffies.store(jiffies, Ordering::Relaxed);
                (String::new(), String::new())
            }
            Op::SentQueue(n) => {
                c.sent_queue(*n);
                let rr = q.sent_queue(*n);
                if *n <= DQL_MAX_OBJECT {
                    fifo.push_back(*n);
                }
                (String::new(), format!("{}", if rr.is_err() && *n <= DQL_MAX_OBJECT { "unexpected error" } else { "" }))
            }
            Op::SentQueueMore(n, more) => {
                let lr = c.sent_queue_more(*n, *more);
                let rr = q.sent_queue_more(*n, *more);
                if *n <= DQL_MAX_OBJECT {
                    fifo.push_back(*n);
                }
                (format!("{lr:?}"), format!("{:?}", rr.unwrap_or(lr)))
            }
            Op::Complete { pkts, extra } => {
                let bytes = fifo.iter().take(*pkts).fold(0u32, |a, b| a.wrapping_add(*b)).wrapping_add(*extra);
                let lr = c.completed_queue(*pkts as u32, bytes);
                let rr = q.completed_queue(*pkts as u32, bytes).map_err(|_| ());
                if lr.is_ok() {
                    fifo.drain(..*pkts);
                }
                (format!("{lr:?}"), format!("{rr:?}"))
            }
            Op::CompletedWake { pkts, script, start, down } => {
                let bytes = fifo.iter().take(*pkts).fold(0u32, |a, b| a.wrapping_add(*b));
                c.set_desc(script);
                let lr = c.completed_wake(*pkts as u32, bytes, *start, *down);
                let rr = q.completed_wake_cond(*pkts as u32, bytes, desc_fn(script, &reads), *start, *down).map_err(|_| ());
                if lr.is_ok() {
                    fifo.drain(..*pkts);
                }
                (format!("{lr:?} reads {}", c.desc_reads()), format!("{rr:?} reads {}", reads.get()))
            }
            Op::TryStop { script, start } => {
                c.set_desc(script);
                let lr = c.try_stop(*start);
                let rr = q.try_stop(desc_fn(script, &reads), *start);
                (format!("{lr} reads {}", c.desc_reads()), format!("{rr} reads {}", reads.get()))
            }
            Op::MaybeStop { script, stop, start } => {
                c.set_desc(script);
                let lr = c.maybe_stop(*stop, *start);
                let rr = q.maybe_stop(desc_fn(script, &reads), *stop, *start);
                (format!("{lr} reads {}", c.desc_reads()), format!("{rr} reads {}", reads.get()))
            }
            Op::Stop => {
                c.stop();
                q.stop(nicproof_guest::abi::QueueReason::RingLow);
                (String::new(), String::new())
            }
            Op::Start => {
                c.start();
                q.start(nicproof_guest::abi::QueueReason::RingLow);
                (String::new(), String::new())
            }
            Op::Wake => {
                c.wake();
                q.wake(nicproof_guest::abi::QueueReason::Reclaim);
                (String::new(), String::new())
            }
            Op::Reset => {
                c.reset_queue();
                let rr = q.reset_queue(0);
                fifo.clear();
                (String::new(), format!("{}", if rr.is_err() { "error" } else { "" }))
            }
        };
        if lin != rus {
            return Err(fail(format!("return values differ: Linux {lin}, Rust {rus}")));
        }
        if view_c(&c) != view_rust(&q, env) {
            return Err(fail(String::from("state differs")));
        }
    }
    Ok(())
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.replace('_', "").parse().ok()).unwrap_or(default)
}

#[test]
fn softnet_core_matches_linux_step_for_step() {
    let steps = env_u64("NICPROOF_DIFF_STEPS", DEFAULT_STEPS);
    let first_seed = env_u64("NICPROOF_DIFF_SEED", 1);
    assert!(steps > 0, "NICPROOF_DIFF_STEPS=0 selects no step");
    let (mut done, mut seed, mut failures) = (0u64, first_seed, Vec::new());
    while done < steps {
        let mut r = Rng(seed ^ 0x5eed);
        let n = (200 + r.below(3000)).min(steps - done);
        if let Err(e) = run_sequence(seed, n) {
            failures.push(e);
        }
        done += n;
        seed += 1;
    }
    let sequences = seed - first_seed;
    eprintln!("differential: {done} steps in {sequences} seeded sequences, {} diverged", failures.len());
    if let Some(first) = failures.first() {
        panic!("{} of {sequences} sequences diverge from Linux; the first:\n{first}", failures.len());
    }
}
