//! Differential test: Linux's dql and netdev queue helpers (compiled from
//! their C in this crate) against the guest's softnet core
//! (guest-driver/src/softnet/{bql,queue}.rs), driven by the same seeded
//! random operations. After every step every field of `struct dql` and
//! the queue, every return value, every get_desc evaluation, every
//! reschedule, WARN and stall report must be equal. Half the sequences
//! run with BQL (CONFIG_BQL), a tenth without, the rest with the stall
//! detector on.
//!
//! Steps: NICPROOF_DIFF_STEPS (default 120,000); seeds start at
//! NICPROOF_DIFF_SEED (default 1). A failure prints the seed, the step,
//! the operations that led there and both sides' fields.

use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};

use std::sync::Mutex;

use linux_ref::{set_jiffies, LinuxQueue, SysfsFile};
use nicproof_guest::abi::{Marker, QueueReason};
use nicproof_guest::softnet::bql::{BqlError, DQL_MAX_LIMIT, DQL_MAX_OBJECT};
use nicproof_guest::softnet::queue::TxQueue;
use nicproof_guest::softnet::{SoftnetEnv, SoftnetMutants};

const HZ: u64 = linux_ref::HZ;
const NS_PER_JIFFY: u64 = 1_000_000_000 / HZ;
const DEFAULT_STEPS: u64 = 120_000;

/// The Rust side's clock (kept equal to Linux's jiffies), reschedules and
/// stall reports.
#[derive(Default)]
struct Env {
    jiffies: AtomicU64,
    schedules: AtomicU64,
    stalls: Mutex<Vec<Vec<u64>>>,
}

impl SoftnetEnv for Env {
    fn now_ns(&self) -> u64 {
        self.jiffies
            .load(Ordering::Relaxed)
            .wrapping_mul(NS_PER_JIFFY)
    }
    fn jiffies(&self) -> u64 {
        self.jiffies.load(Ordering::Relaxed)
    }
    fn marker(&self, m: Marker, args: &[u64]) {
        if m == Marker::BqlStall {
            self.stalls.lock().unwrap().push(args.to_vec());
        }
    }
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
    Complete {
        pkts: usize,
        extra: u32,
    },
    CompletedWake {
        pkts: usize,
        script: Vec<u32>,
        start: u32,
        down: bool,
    },
    TryStop {
        script: Vec<u32>,
        start: u32,
    },
    MaybeStop {
        script: Vec<u32>,
        stop: u32,
        start: u32,
    },
    Stop,
    Start,
    Wake,
    Schedule,
    Freeze,
    Unfreeze,
    Reset,
    /// dql alone: `dql_queued`, `dql_completed` (bytes; may BUG), `dql_reset`.
    DqlQueued(u32),
    DqlCompleted(u32),
    DqlReset,
    /// A `byte_queue_limits/` write (value; "max" for the limits).
    Store(SysfsFile, u32),
    StoreMax(i32),
}

fn size(r: &mut Rng) -> u32 {
    match r.below(20) {
        0 => 0,
        // Around DQL_MAX_OBJECT: above it Linux WARNs and ignores.
        1 => DQL_MAX_OBJECT - 2 + r.below(5) as u32,
        2 => (r.below(u64::from(DQL_MAX_OBJECT)) + 1) as u32,
        3..=5 => (r.below(65_536) + 1) as u32,
        _ => (r.below(1522) + 60) as u32,
    }
}

fn script(r: &mut Rng) -> Vec<u32> {
    (0..1 + r.below(3)).map(|_| r.below(40) as u32).collect()
}

fn limit_value(r: &mut Rng) -> u32 {
    match r.below(6) {
        0 => DQL_MAX_LIMIT + r.below(3) as u32,
        1 => r.next() as u32,
        2 => 0,
        _ => r.below(200_000) as u32,
    }
}

fn gen(r: &mut Rng, fifo: &VecDeque<u32>) -> Op {
    if r.chance(3) {
        return match r.below(12) {
            0 => Op::Schedule,
            1 => Op::Freeze,
            2 => Op::Unfreeze,
            3 => Op::DqlQueued(size(r)),
            4 => Op::DqlCompleted(if r.chance(50) {
                fifo.front().copied().unwrap_or(0)
            } else {
                r.below(5000) as u32
            }),
            5 => Op::DqlReset,
            6 => Op::Store(SysfsFile::Limit, limit_value(r)),
            7 => Op::Store(SysfsFile::LimitMax, limit_value(r)),
            8 => Op::Store(
                SysfsFile::LimitMin,
                if r.chance(50) {
                    r.below(20_000) as u32
                } else {
                    limit_value(r)
                },
            ),
            9 => Op::Store(
                SysfsFile::HoldTime,
                match r.below(4) {
                    0 => r.next() as u32,
                    _ => r.below(3000) as u32,
                },
            ),
            10 => Op::Store(
                SysfsFile::StallThrs,
                match r.below(5) {
                    0 => 0,
                    1 => r.next() as u32,
                    _ => r.below(600) as u32,
                },
            ),
            _ => match r.below(2) {
                0 => Op::Store(SysfsFile::StallMax, 0),
                _ => Op::StoreMax(r.below(3) as i32),
            },
        };
    }
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
            let extra = if r.chance(2) {
                1 + r.below(100) as u32
            } else {
                0
            };
            Op::Complete { pkts, extra }
        }
        70..=79 => Op::CompletedWake {
            pkts: r.below(fifo.len() as u64 + 1) as usize,
            script: script(r),
            start: r.below(40) as u32,
            down: r.chance(20),
        },
        80..=84 => Op::TryStop {
            script: script(r),
            start: r.below(40) as u32,
        },
        85..=91 => Op::MaybeStop {
            script: script(r),
            stop: r.below(40) as u32,
            start: r.below(40) as u32,
        },
        92..=93 => Op::Stop,
        94 => Op::Start,
        95..=97 => Op::Wake,
        _ => Op::Reset,
    }
}

/// Both sides' whole state, in Linux's terms.
#[derive(Debug, PartialEq, Eq)]
struct View {
    f: linux_ref::Fields,
    avail: i32,
    /// netif_tx_queue_stopped, netif_xmit_stopped, frozen_or_stopped,
    /// frozen_or_drv_stopped.
    preds: [bool; 4],
}

fn view_c(c: &LinuxQueue) -> View {
    let mut f = c.fields();
    // The Rust queue stamps trans_start in ns (README, "Softnet core vs
    // Linux"): compare it so.
    f.trans_start = f.trans_start.wrapping_mul(NS_PER_JIFFY);
    View {
        f,
        avail: c.dql_avail(),
        preds: [
            c.stopped(),
            c.xmit_stopped(),
            c.frozen_or_stopped(),
            c.frozen_or_drv_stopped(),
        ],
    }
}

fn view_rust(q: &TxQueue<'_>, env: &Env) -> View {
    let d = q.dql().snapshot();
    let f = linux_ref::Fields {
        num_queued: d.num_queued.into(),
        adj_limit: d.adj_limit.into(),
        last_obj_cnt: d.last_obj_cnt.into(),
        stall_thrs: d.stall_thrs.into(),
        history_head: d.history_head,
        history: d.history,
        limit: d.limit.into(),
        num_completed: d.num_completed.into(),
        prev_ovlimit: d.prev_ovlimit.into(),
        prev_num_queued: d.prev_num_queued.into(),
        prev_last_obj_cnt: d.prev_last_obj_cnt.into(),
        lowest_slack: d.lowest_slack.into(),
        slack_start_time: d.slack_start_time,
        max_limit: d.max_limit.into(),
        min_limit: d.min_limit.into(),
        slack_hold_time: d.slack_hold_time.into(),
        stall_max: d.stall_max.into(),
        last_reap: d.last_reap,
        stall_cnt: d.stall_cnt,
        trans_start: q.trans_start(),
        state: q.state().into(),
        schedules: env.schedules.load(Ordering::Relaxed),
    };
    View {
        f,
        avail: q.dql().avail(),
        preds: [
            q.stopped(),
            q.xmit_stopped(),
            q.xmit_frozen_or_stopped(),
            q.xmit_frozen_or_drv_stopped(),
        ],
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

/// Counts of what one run saw, for the summary line.
#[derive(Default)]
struct Tally {
    steps: u64,
    stalls: u64,
    bugs: u64,
    warns: u64,
    refused: u64,
    schedules: u64,
}

/// Run one seeded sequence of `steps` operations; Err describes the first
/// divergence.
fn run_sequence(seed: u64, steps: u64, tally: &mut Tally) -> Result<(), String> {
    let mut r = Rng(seed);
    let env: &'static Env = Box::leak(Box::default());
    let mut jiffies = match r.below(4) {
        0 => 0,
        1 => u64::from(u32::MAX) - r.below(4 * HZ),
        2 => u64::MAX - r.below(4 * HZ),
        _ => r.next(),
    };
    set_jiffies(jiffies);
    env.jiffies.store(jiffies, Ordering::Relaxed);
    let bql = !r.chance(10);
    let c = LinuxQueue::new(bql, HZ as u32);
    let q = TxQueue::new(0, bql, SoftnetMutants::NONE, env);
    if bql && r.chance(50) {
        // The stall detector on from the start (40..=1280 ms).
        let ms = 40 + r.below(1241) as u32;
        let lr = c.store(SysfsFile::StallThrs, ms);
        let rr = q.dql().set_stall_thrs_ms(ms, jiffies);
        assert!(
            lr > 0 && rr.is_ok(),
            "stall_thrs {ms} ms: Linux {lr}, Rust {rr:?}"
        );
    }
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
                "seed {seed} (bql {bql}) step {step}: {what}\n  Linux: {:?}\n  Rust:  {:?}\nlast operations:\n{}",
                view_c(&c),
                view_rust(&q, env),
                ops.join("\n")
            )
        };
        let (warns0, stall0) = (linux_ref::warns(), linux_ref::stall_event().count);
        let rust_stalls0 = env.stalls.lock().unwrap().len();
        // Rust's ObjectTooBig errors this step (Linux's WARNs).
        let mut too_big = 0u64;
        let mut note = |e: &BqlError| {
            if matches!(e, BqlError::ObjectTooBig(_)) {
                too_big += 1;
            }
        };
        let reads = Cell::new(0);
        let bug = |r: &Result<(), ()>| if r.is_err() { "BUG" } else { "ok" };
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
                if let Err(e) = &rr {
                    note(e);
                }
                if bql && *n <= DQL_MAX_OBJECT {
                    fifo.push_back(*n);
                }
                (String::new(), String::new())
            }
            Op::SentQueueMore(n, more) => {
                let lr = c.sent_queue_more(*n, *more);
                // Rust returns the WARN as an error in place of the bool.
                let rr = match q.sent_queue_more(*n, *more) {
                    Ok(b) => b,
                    Err(e) => {
                        note(&e);
                        lr
                    }
                };
                if bql && *n <= DQL_MAX_OBJECT {
                    fifo.push_back(*n);
                }
                (format!("{lr}"), format!("{rr}"))
            }
            Op::Complete { pkts, extra } => {
                let bytes = fifo
                    .iter()
                    .take(*pkts)
                    .fold(0u32, |a, b| a.wrapping_add(*b))
                    .wrapping_add(*extra);
                let lr = c.completed_queue(*pkts as u32, bytes);
                let rr = q.completed_queue(*pkts as u32, bytes).map_err(|_| ());
                if lr.is_ok() {
                    fifo.drain(..*pkts);
                }
                (bug(&lr).into(), bug(&rr).into())
            }
            Op::CompletedWake {
                pkts,
                script,
                start,
                down,
            } => {
                let bytes = fifo
                    .iter()
                    .take(*pkts)
                    .fold(0u32, |a, b| a.wrapping_add(*b));
                c.set_desc(script);
                let lr = c.completed_wake(*pkts as u32, bytes, *start, *down);
                let rr = q
                    .completed_wake_cond(
                        *pkts as u32,
                        bytes,
                        desc_fn(script, &reads),
                        *start,
                        *down,
                    )
                    .map_err(|_| ());
                if lr.is_ok() {
                    fifo.drain(..*pkts);
                }
                (
                    format!("{lr:?} reads {}", c.desc_reads()),
                    format!("{rr:?} reads {}", reads.get()),
                )
            }
            Op::TryStop { script, start } => {
                c.set_desc(script);
                let lr = c.try_stop(*start);
                let rr = q.try_stop(desc_fn(script, &reads), *start);
                (
                    format!("{lr} reads {}", c.desc_reads()),
                    format!("{rr} reads {}", reads.get()),
                )
            }
            Op::MaybeStop {
                script,
                stop,
                start,
            } => {
                c.set_desc(script);
                let lr = c.maybe_stop(*stop, *start);
                let rr = q.maybe_stop(desc_fn(script, &reads), *stop, *start);
                (
                    format!("{lr} reads {}", c.desc_reads()),
                    format!("{rr} reads {}", reads.get()),
                )
            }
            Op::Stop => {
                c.stop();
                q.stop(QueueReason::RingLow);
                (String::new(), String::new())
            }
            Op::Start => {
                c.start();
                q.start(QueueReason::RingLow);
                (String::new(), String::new())
            }
            Op::Wake => {
                // netif_tx_wake_queue returns nothing; Rust says whether
                // DRV_XOFF was set: check it against Linux's state before.
                let was = c.stopped();
                c.wake();
                let rr = q.wake(QueueReason::Reclaim);
                (format!("{was}"), format!("{rr}"))
            }
            Op::Schedule => {
                c.schedule();
                q.schedule();
                (String::new(), String::new())
            }
            Op::Freeze => {
                c.freeze();
                q.freeze();
                (String::new(), String::new())
            }
            Op::Unfreeze => {
                c.unfreeze();
                q.unfreeze();
                (String::new(), String::new())
            }
            Op::Reset => {
                c.reset_queue();
                let rr = q.reset_queue(0);
                fifo.clear();
                (
                    String::new(),
                    String::from(if rr.is_err() { "refused" } else { "" }),
                )
            }
            Op::DqlQueued(n) => {
                c.dql_queued(*n);
                if let Err(e) = q.dql().queued(*n, jiffies) {
                    note(&e);
                }
                if *n <= DQL_MAX_OBJECT {
                    fifo.push_back(*n);
                }
                (String::new(), String::new())
            }
            Op::DqlCompleted(n) => {
                let lr = c.dql_completed(*n);
                let rr = q.dql().completed(*n, jiffies);
                // A stall found by dql alone is Linux's tracepoint too.
                if let Ok(Some(s)) = &rr {
                    env.marker(
                        Marker::BqlStall,
                        &[
                            0,
                            u64::from(s.len),
                            u64::from(s.thrs),
                            s.count,
                            NS_PER_JIFFY,
                        ],
                    );
                }
                if lr.is_ok() {
                    // Bytes, not packets: the FIFO no longer matches whole
                    // packets, so start it over from what is in flight.
                    fifo.clear();
                    let inflight = q.dql().inflight();
                    if inflight != 0 {
                        fifo.push_back(inflight);
                    }
                }
                (bug(&lr).into(), bug(&rr.map(|_| ()).map_err(|_| ())).into())
            }
            Op::DqlReset => {
                c.dql_reset();
                let rr = q.dql().reset(0, jiffies);
                fifo.clear();
                (
                    String::new(),
                    String::from(if rr.is_err() { "refused" } else { "" }),
                )
            }
            Op::Store(file, v) => {
                let lr = c.store(*file, *v);
                let d = q.dql();
                let rr = match file {
                    SysfsFile::Limit => d.set_limit(*v),
                    SysfsFile::LimitMax => d.set_limit_max(*v),
                    SysfsFile::LimitMin => d.set_limit_min(*v),
                    SysfsFile::HoldTime => {
                        d.set_hold_time_ms(*v);
                        Ok(())
                    }
                    SysfsFile::StallThrs => d.set_stall_thrs_ms(*v, jiffies),
                    SysfsFile::StallMax => {
                        d.clear_stall_max();
                        Ok(())
                    }
                };
                if lr < 0 {
                    tally.refused += 1;
                }
                let lr = if lr < 0 {
                    format!("errno {}", -lr)
                } else {
                    String::from("ok")
                };
                let rr = match rr {
                    Ok(()) => String::from("ok"),
                    Err(e) => format!("errno {}", e.errno().unwrap_or(-1)),
                };
                (lr, rr)
            }
            Op::StoreMax(which) => {
                let lr = c.store_max(*which);
                let d = q.dql();
                let rr = match which {
                    0 => d.set_limit(DQL_MAX_LIMIT),
                    1 => d.set_limit_max(DQL_MAX_LIMIT),
                    _ => d.set_limit_min(DQL_MAX_LIMIT),
                };
                (format!("{}", lr > 0), format!("{}", rr.is_ok()))
            }
        };
        if lin != rus {
            return Err(fail(format!(
                "return values differ: Linux {lin}, Rust {rus}"
            )));
        }
        if lin == "BUG" || lin.starts_with("Err") {
            tally.bugs += 1;
        }
        let warned = linux_ref::warns() - warns0;
        if warned != too_big {
            return Err(fail(format!(
                "Linux WARNed {warned} times, Rust refused {too_big} objects"
            )));
        }
        tally.warns += warned;
        let ev = linux_ref::stall_event();
        let stalls = env.stalls.lock().unwrap().clone();
        match (ev.count - stall0, stalls.len() - rust_stalls0) {
            (0, 0) => {}
            (1, 1) => {
                let a = &stalls[stalls.len() - 1];
                if (a[1], a[2]) != (ev.len, ev.thrs) || ev.now != jiffies {
                    return Err(fail(format!(
                        "stall reports differ: Linux {ev:?}, Rust {a:?}"
                    )));
                }
                tally.stalls += 1;
            }
            (l, r) => return Err(fail(format!("Linux reported {l} stalls, Rust {r}"))),
        }
        if view_c(&c) != view_rust(&q, env) {
            return Err(fail(String::from("state differs")));
        }
    }
    tally.steps += steps;
    tally.schedules += c.fields().schedules;
    Ok(())
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

#[test]
fn softnet_core_matches_linux_step_for_step() {
    let steps = env_u64("NICPROOF_DIFF_STEPS", DEFAULT_STEPS);
    let first_seed = env_u64("NICPROOF_DIFF_SEED", 1);
    assert!(steps > 0, "NICPROOF_DIFF_STEPS=0 selects no step");
    let (mut done, mut seed, mut failures, mut tally) =
        (0u64, first_seed, Vec::new(), Tally::default());
    while done < steps {
        let mut r = Rng(seed ^ 0x5eed);
        let n = (200 + r.below(3000)).min(steps - done);
        if let Err(e) = run_sequence(seed, n, &mut tally) {
            failures.push(e);
        }
        done += n;
        seed += 1;
    }
    let sequences = seed - first_seed;
    eprintln!(
        "differential: {done} steps in {sequences} seeded sequences, {} diverged; {} equal steps with \
         {} stalls detected, {} BUGs and {} WARNs refused alike, {} sysfs writes refused alike, {} reschedules",
        failures.len(),
        tally.steps,
        tally.stalls,
        tally.bugs,
        tally.warns,
        tally.refused,
        tally.schedules
    );
    if let Some(first) = failures.first() {
        panic!(
            "{} of {sequences} sequences diverge from Linux; the first:\n{first}",
            failures.len()
        );
    }
}
