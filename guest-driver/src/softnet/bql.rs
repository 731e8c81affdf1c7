//! Byte queue limits: `lib/dynamic_queue_limits.c` and
//! `include/linux/dynamic_queue_limits.h` (dql) of Linux 6.12, stall
//! detector included, plus the `byte_queue_limits/` sysfs setters of
//! `net/core/net-sysfs.c`.
//!
//! Bit for bit what Linux computes: the `linux-ref` crate's differential
//! test runs this and Linux's C side by side and compares every field
//! after every step. Counters are free-running `u32`s (`unsigned int`),
//! times are jiffies in a `u64` (`unsigned long` on x86_64), `stall_thrs`
//! and `stall_max` are `u16` values (`unsigned short`), all compared and
//! truncated as the C does. The enqueue side (`queued`) runs in xmit, the
//! completion side (`completed`) in NAPI; they share `num_queued`,
//! `adj_limit` and the stall history, so every field is an atomic (the
//! history with the release/acquire pair Linux's `smp_wmb`/`smp_rmb`
//! give it; the rest Relaxed, ordered by the fences in [`super::queue`]).
//!
//! Deviations, each deliberate (README, "Softnet core vs Linux"):
//! - Where Linux BUGs (`completed` above what is in flight) this returns
//!   an error and changes nothing; where it WARNs and ignores (`queued`
//!   of an object above `DQL_MAX_OBJECT`) this returns an error, also
//!   changing nothing: the guest must never crash on a driver bug the
//!   oracles are there to see.
//! - [`Dql::reset`] takes the number of packets the driver still has
//!   posted and refuses to reset with any (the virtio-net bug: their
//!   completions would later exceed what is queued). Linux resets anyway.
//! - Time comes in as jiffies from the caller ([`ns_to_jiffies`] of the
//!   guest clock, [`HZ`] = 100, `CONFIG_HZ_100`), not from a global.

use super::sync::{
    AtomicU32, AtomicU64,
    Ordering::{Acquire, Relaxed, Release},
};

/// Ticks per second of the jiffies clock (`CONFIG_HZ_100`): the coarsest
/// Linux offers, so sysfs's 128-jiffy ceiling on `stall_thrs` is 1.28 s,
/// room enough for this slow guest's own reclaim (see
/// `scenarios::BQL_STALL_THRS_MS`).
pub const HZ: u64 = 100;
/// Nanoseconds per jiffy.
pub const NS_PER_JIFFY: u64 = 1_000_000_000 / HZ;
/// Default `max_limit` (Linux `DQL_MAX_LIMIT`).
pub const DQL_MAX_LIMIT: u32 = (u32::MAX / 2) - DQL_MAX_OBJECT;
/// Largest single `queued` count (Linux `DQL_MAX_OBJECT`).
pub const DQL_MAX_OBJECT: u32 = u32::MAX / 16;
/// Words of stall history (Linux `DQL_HIST_LEN`).
pub const DQL_HIST_LEN: usize = 4;
/// Default slack hold time: HZ jiffies, as every netdev queue gets
/// (`netdev_init_one_queue`: `dql_init(&queue->dql, HZ)`).
pub const DEFAULT_SLACK_HOLD: u32 = HZ as u32;
/// Linux `MAX_JIFFY_OFFSET`: what `msecs_to_jiffies` returns for a
/// negative (as `int`) number of milliseconds.
pub const MAX_JIFFY_OFFSET: u64 = ((i64::MAX >> 1) - 1) as u64;
/// Bits per history word (`BITS_PER_LONG`).
const BITS_PER_LONG: u64 = 64;
/// `stall_thrs` bounds in jiffies that sysfs accepts (besides 0 = off).
pub const STALL_THRS_MIN: u32 = 4;
/// See [`STALL_THRS_MIN`]: `4 / 2 * BITS_PER_LONG`.
pub const STALL_THRS_MAX: u32 = 4 / 2 * BITS_PER_LONG as u32;

/// Guest nanoseconds to jiffies.
pub fn ns_to_jiffies(ns: u64) -> u64 {
    ns / NS_PER_JIFFY
}

/// `msecs_to_jiffies` for HZ = 100: round up; negative as `int` is
/// "infinite" (`MAX_JIFFY_OFFSET`).
pub fn msecs_to_jiffies(ms: u32) -> u64 {
    if (ms as i32) < 0 {
        return MAX_JIFFY_OFFSET;
    }
    u64::from(ms).div_ceil(1000 / HZ)
}

/// `jiffies_to_msecs` for HZ = 100 (an `unsigned int`: truncates).
pub fn jiffies_to_msecs(j: u64) -> u32 {
    ((1000 / HZ).wrapping_mul(j)) as u32
}

/// `time_after(a, b)`: `a` is later than `b`, wrap-safe.
fn time_after(a: u64, b: u64) -> bool {
    (b.wrapping_sub(a) as i64) < 0
}

/// `time_after_eq(a, b)`.
fn time_after_eq(a: u64, b: u64) -> bool {
    (a.wrapping_sub(b) as i64) >= 0
}

/// A BQL error: where Linux would BUG or WARN, or a setting it refuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BqlError {
    /// `completed(n)` with `n` above the bytes in flight (Linux BUG_ON).
    CompletedAboveQueued {
        /// Bytes the caller completed.
        count: u32,
        /// Bytes that were in flight.
        inflight: u32,
    },
    /// `queued(n)` with `n > DQL_MAX_OBJECT` (Linux WARN_ON, ignored).
    ObjectTooBig(u32),
    /// Reset while the ring still held packets (the virtio-net bug):
    /// their completions would later exceed what is queued.
    ResetWithNonEmptyRing(u32),
    /// `limit`, `limit_max` or `limit_min` above `DQL_MAX_LIMIT` (sysfs
    /// refuses with EINVAL).
    LimitAboveMax(u32),
    /// `stall_thrs` outside 4..=128 jiffies and not 0 (sysfs ERANGE).
    StallThrsOutOfRange(u32),
}

impl BqlError {
    /// The errno Linux's sysfs store returns for a refused setting.
    pub fn errno(self) -> Option<i32> {
        match self {
            Self::LimitAboveMax(_) => Some(22),
            Self::StallThrsOutOfRange(_) => Some(34),
            _ => None,
        }
    }
}

impl core::fmt::Display for BqlError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::CompletedAboveQueued { count, inflight } => {
                write!(f, "bql: completed {count} bytes with {inflight} in flight")
            }
            Self::ObjectTooBig(n) => write!(f, "bql: queued object of {n} bytes"),
            Self::ResetWithNonEmptyRing(n) => {
                write!(f, "bql: reset with {n} packets still on the ring")
            }
            Self::LimitAboveMax(n) => write!(f, "bql: limit {n} above DQL_MAX_LIMIT"),
            Self::StallThrsOutOfRange(j) => {
                write!(f, "bql: stall_thrs of {j} jiffies outside 4..=128")
            }
        }
    }
}

/// What the stall detector saw (Linux's `dql_stall_detected` tracepoint).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StallReport {
    /// `stall_thrs` in jiffies.
    pub thrs: u16,
    /// Jiffies from the oldest unreaped queueing to this completion.
    pub len: u32,
    /// The previous completion (jiffies).
    pub last_reap: u64,
    /// The history's head (jiffies / 64).
    pub hist_head: u64,
    /// Now (jiffies).
    pub now: u64,
    /// Stalls so far on this queue, this one included.
    pub count: u64,
}

/// Dynamic queue limit state (`struct dql`), field for field.
#[derive(Debug)]
pub struct Dql {
    // Enqueue side (xmit).
    num_queued: AtomicU32,
    adj_limit: AtomicU32,
    last_obj_cnt: AtomicU32,
    /// `unsigned short` in Linux.
    stall_thrs: AtomicU32,
    history_head: AtomicU64,
    history: [AtomicU64; DQL_HIST_LEN],
    // Completion side (NAPI).
    limit: AtomicU32,
    num_completed: AtomicU32,
    prev_ovlimit: AtomicU32,
    prev_num_queued: AtomicU32,
    prev_last_obj_cnt: AtomicU32,
    lowest_slack: AtomicU32,
    slack_start_time: AtomicU64,
    // Configuration.
    max_limit: AtomicU32,
    min_limit: AtomicU32,
    slack_hold_time: AtomicU32,
    // Stall statistics.
    /// `unsigned short` in Linux.
    stall_max: AtomicU32,
    last_reap: AtomicU64,
    stall_cnt: AtomicU64,
}

/// `POSDIFF(a, b)`: `a - b` if positive as a signed difference, else 0.
fn posdiff(a: u32, b: u32) -> u32 {
    if (a.wrapping_sub(b) as i32) > 0 {
        a.wrapping_sub(b)
    } else {
        0
    }
}

/// `AFTER_EQ(a, b)`: `a - b >= 0` as a signed difference.
fn after_eq(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) >= 0
}

/// Linux's `__clamp`: `hi` wins when `lo > hi` (no panic).
fn clamp(val: u32, lo: u32, hi: u32) -> u32 {
    if val >= hi {
        hi
    } else if val <= lo {
        lo
    } else {
        val
    }
}

impl Dql {
    /// `dql_init(hold_time)` at jiffies `now`: default limits, stall
    /// detection off, reset.
    pub fn new(hold_time: u32, now: u64) -> Self {
        let d = Self {
            num_queued: AtomicU32::new(0),
            adj_limit: AtomicU32::new(0),
            last_obj_cnt: AtomicU32::new(0),
            stall_thrs: AtomicU32::new(0),
            history_head: AtomicU64::new(0),
            history: core::array::from_fn(|_| AtomicU64::new(0)),
            limit: AtomicU32::new(0),
            num_completed: AtomicU32::new(0),
            prev_ovlimit: AtomicU32::new(0),
            prev_num_queued: AtomicU32::new(0),
            prev_last_obj_cnt: AtomicU32::new(0),
            lowest_slack: AtomicU32::new(u32::MAX),
            slack_start_time: AtomicU64::new(0),
            max_limit: AtomicU32::new(DQL_MAX_LIMIT),
            min_limit: AtomicU32::new(0),
            slack_hold_time: AtomicU32::new(hold_time),
            stall_max: AtomicU32::new(0),
            last_reap: AtomicU64::new(0),
            stall_cnt: AtomicU64::new(0),
        };
        d.reset_all(now);
        d
    }

    /// `dql_queue_stall`: mark jiffy `now` in the history ring.
    fn queue_stall(&self, now: u64) {
        let now_hi = now / BITS_PER_LONG;
        let head = self.history_head.load(Relaxed);
        if now_hi != head {
            // About to reuse slots: clear them (the multiplication masks
            // the high bits, as in Linux).
            for i in 0..DQL_HIST_LEN as u64 {
                if now_hi.wrapping_mul(BITS_PER_LONG)
                    == head.wrapping_add(i).wrapping_mul(BITS_PER_LONG)
                {
                    break;
                }
                let slot = (head.wrapping_add(i).wrapping_add(1) % DQL_HIST_LEN as u64) as usize;
                self.history[slot].store(0, Relaxed);
            }
            // smp_wmb: the cleared slots before the new head.
            self.history_head.store(now_hi, Release);
        }
        let slot = &self.history[(now_hi % DQL_HIST_LEN as u64) as usize];
        let map = slot.load(Relaxed);
        let bit = 1u64 << (now % BITS_PER_LONG);
        if map & bit == 0 {
            slot.store(map | bit, Relaxed);
        }
    }

    /// `dql_queued`: record `count` bytes handed to the device at jiffies
    /// `now`. Above `DQL_MAX_OBJECT` nothing is recorded (Linux WARNs).
    pub fn queued(&self, count: u32, now: u64) -> Result<(), BqlError> {
        self.queued_at(count, || now)
    }

    /// [`Self::queued`] with the time read only if the stall detector
    /// needs it: off (as it is unless armed), a queued packet costs no
    /// clock read.
    pub fn queued_at(&self, count: u32, now: impl FnOnce() -> u64) -> Result<(), BqlError> {
        if count > DQL_MAX_OBJECT {
            return Err(BqlError::ObjectTooBig(count));
        }
        self.last_obj_cnt.store(count, Relaxed);
        let q = self.num_queued.load(Relaxed).wrapping_add(count);
        self.num_queued.store(q, Relaxed);
        if self.stall_thrs.load(Relaxed) != 0 {
            self.queue_stall(now());
        }
        Ok(())
    }

    /// `dql_avail`: bytes that may still be queued; negative means over
    /// the limit (the queue gets STACK_XOFF).
    pub fn avail(&self) -> i32 {
        self.adj_limit
            .load(Relaxed)
            .wrapping_sub(self.num_queued.load(Relaxed)) as i32
    }

    /// `dql_completed`: record `count` bytes completed at jiffies `now`,
    /// adapt the limit, and run the stall check. Returns the stall it
    /// detected, if any.
    pub fn completed(&self, count: u32, now: u64) -> Result<Option<StallReport>, BqlError> {
        let num_queued = self.num_queued.load(Relaxed);
        // Read with num_queued, as Linux does (same cache line).
        let stall_thrs = self.stall_thrs.load(Relaxed) as u16;
        let num_completed = self.num_completed.load(Relaxed);
        let inflight = num_queued.wrapping_sub(num_completed);
        if count > inflight {
            return Err(BqlError::CompletedAboveQueued { count, inflight });
        }
        let completed = num_completed.wrapping_add(count);
        let mut limit = self.limit.load(Relaxed);
        let mut ovlimit = posdiff(inflight, limit);
        let inprogress = num_queued.wrapping_sub(completed);
        let prev_num_queued = self.prev_num_queued.load(Relaxed);
        let prev_inprogress = prev_num_queued.wrapping_sub(num_completed);
        let all_prev_completed = after_eq(completed, prev_num_queued);
        let prev_ovlimit = self.prev_ovlimit.load(Relaxed);

        if (ovlimit != 0 && inprogress == 0) || (prev_ovlimit != 0 && all_prev_completed) {
            // Starved: grow by what was sent and completed in the last
            // interval plus the previous over-limit.
            limit = limit
                .wrapping_add(posdiff(completed, prev_num_queued))
                .wrapping_add(prev_ovlimit);
            self.slack_start_time.store(now, Relaxed);
            self.lowest_slack.store(u32::MAX, Relaxed);
        } else if inprogress != 0 && prev_inprogress != 0 && !all_prev_completed {
            // Busy the whole interval: shrink by the lowest slack seen
            // over the hold time.
            let slack = posdiff(
                limit.wrapping_add(prev_ovlimit),
                2u32.wrapping_mul(completed.wrapping_sub(num_completed)),
            );
            let slack_last_objs = if prev_ovlimit != 0 {
                posdiff(self.prev_last_obj_cnt.load(Relaxed), prev_ovlimit)
            } else {
                0
            };
            let slack = slack.max(slack_last_objs);
            if slack < self.lowest_slack.load(Relaxed) {
                self.lowest_slack.store(slack, Relaxed);
            }
            let start = self.slack_start_time.load(Relaxed);
            let hold = u64::from(self.slack_hold_time.load(Relaxed));
            if time_after(now, start.wrapping_add(hold)) {
                limit = posdiff(limit, self.lowest_slack.load(Relaxed));
                self.slack_start_time.store(now, Relaxed);
                self.lowest_slack.store(u32::MAX, Relaxed);
            }
        }

        let limit = clamp(
            limit,
            self.min_limit.load(Relaxed),
            self.max_limit.load(Relaxed),
        );
        if limit != self.limit.load(Relaxed) {
            self.limit.store(limit, Relaxed);
            ovlimit = 0;
        }
        self.adj_limit.store(limit.wrapping_add(completed), Relaxed);
        self.prev_ovlimit.store(ovlimit, Relaxed);
        self.prev_last_obj_cnt
            .store(self.last_obj_cnt.load(Relaxed), Relaxed);
        self.num_completed.store(completed, Relaxed);
        self.prev_num_queued.store(num_queued, Relaxed);
        Ok(self.check_stall(stall_thrs, now))
    }

    /// `dql_check_stall`: at least `stall_thrs` jiffies without a
    /// completion, with something queued in the first half of them.
    fn check_stall(&self, stall_thrs: u16, now: u64) -> Option<StallReport> {
        if stall_thrs == 0 {
            return None;
        }
        let thrs = u64::from(stall_thrs);
        let last_reap = self.last_reap.load(Relaxed);
        let mut report = None;
        if time_after_eq(now, last_reap.wrapping_add(thrs)) {
            loop {
                // smp_rmb: pairs with the release in queue_stall.
                let hist_head = self.history_head.load(Acquire);
                // The oldest sample of the ring.
                let mut start = hist_head
                    .wrapping_sub(DQL_HIST_LEN as u64)
                    .wrapping_add(1)
                    .wrapping_mul(BITS_PER_LONG);
                // Continue from the last reap.
                if time_after(last_reap.wrapping_add(1), start) {
                    start = last_reap.wrapping_add(1);
                }
                // The newest sample a completion should have followed.
                let mut end = hist_head
                    .wrapping_mul(BITS_PER_LONG)
                    .wrapping_add(BITS_PER_LONG - 1);
                // Only up to now - stall_thrs / 2.
                if time_after(end.wrapping_add(thrs / 2), now) {
                    end = now.wrapping_sub(thrs / 2);
                }
                let mut t = start;
                while time_after_eq(end, t) {
                    let bit = t % (DQL_HIST_LEN as u64 * BITS_PER_LONG);
                    let word = self.history[(bit / BITS_PER_LONG) as usize].load(Relaxed);
                    if word & (1 << (bit % BITS_PER_LONG)) != 0 {
                        break;
                    }
                    t = t.wrapping_add(1);
                }
                if !time_after_eq(end, t) {
                    break;
                }
                // The producer moved the ring meanwhile: look again.
                if hist_head != self.history_head.load(Relaxed) {
                    continue;
                }
                let count = self.stall_cnt.load(Relaxed).wrapping_add(1);
                self.stall_cnt.store(count, Relaxed);
                let len = now.wrapping_sub(t);
                let max = (self.stall_max.load(Relaxed) as u16).max(len as u16);
                self.stall_max.store(u32::from(max), Relaxed);
                report = Some(StallReport {
                    thrs: stall_thrs,
                    len: len as u32,
                    last_reap,
                    hist_head,
                    now,
                    count,
                });
                break;
            }
        }
        self.last_reap.store(now, Relaxed);
        report
    }

    /// `dql_reset` at jiffies `now`, allowed only when the ring holds no
    /// packet (`ring_inflight == 0`: the driver has reclaimed or aborted
    /// all). As in Linux, `adj_limit` keeps its value until the next
    /// completion.
    pub fn reset(&self, ring_inflight: u32, now: u64) -> Result<(), BqlError> {
        if ring_inflight != 0 {
            return Err(BqlError::ResetWithNonEmptyRing(ring_inflight));
        }
        self.reset_all(now);
        Ok(())
    }

    fn reset_all(&self, now: u64) {
        self.limit.store(self.min_limit.load(Relaxed), Relaxed);
        self.num_queued.store(0, Relaxed);
        self.num_completed.store(0, Relaxed);
        self.last_obj_cnt.store(0, Relaxed);
        self.prev_num_queued.store(0, Relaxed);
        self.prev_last_obj_cnt.store(0, Relaxed);
        self.prev_ovlimit.store(0, Relaxed);
        self.lowest_slack.store(u32::MAX, Relaxed);
        self.slack_start_time.store(now, Relaxed);
        self.last_reap.store(now, Relaxed);
        self.history_head.store(now / BITS_PER_LONG, Relaxed);
        for h in &self.history {
            h.store(0, Relaxed);
        }
    }

    /// sysfs `limit`: set the current limit (EINVAL above
    /// `DQL_MAX_LIMIT`). The bounds apply at the next completion.
    pub fn set_limit(&self, limit: u32) -> Result<(), BqlError> {
        self.limit.store(Self::check_limit(limit)?, Relaxed);
        Ok(())
    }

    /// sysfs `limit_max` (EINVAL above `DQL_MAX_LIMIT`). Linux does not
    /// order it against `limit_min`: with `min > max` the clamp gives max.
    pub fn set_limit_max(&self, max: u32) -> Result<(), BqlError> {
        self.max_limit.store(Self::check_limit(max)?, Relaxed);
        Ok(())
    }

    /// sysfs `limit_min` (EINVAL above `DQL_MAX_LIMIT`).
    pub fn set_limit_min(&self, min: u32) -> Result<(), BqlError> {
        self.min_limit.store(Self::check_limit(min)?, Relaxed);
        Ok(())
    }

    fn check_limit(v: u32) -> Result<u32, BqlError> {
        if v > DQL_MAX_LIMIT {
            Err(BqlError::LimitAboveMax(v))
        } else {
            Ok(v)
        }
    }

    /// sysfs `hold_time` in milliseconds (stored in jiffies, truncated to
    /// `unsigned int` as Linux does).
    pub fn set_hold_time_ms(&self, ms: u32) {
        self.slack_hold_time
            .store(msecs_to_jiffies(ms) as u32, Relaxed);
    }

    /// sysfs `stall_thrs` in milliseconds at jiffies `now`: 0 turns the
    /// detector off; otherwise 4..=128 jiffies (40..=1280 ms at HZ 100),
    /// else ERANGE. Turning it on starts the reap clock at `now`.
    pub fn set_stall_thrs_ms(&self, ms: u32, now: u64) -> Result<(), BqlError> {
        let value = msecs_to_jiffies(ms) as u32;
        if value != 0 && !(STALL_THRS_MIN..=STALL_THRS_MAX).contains(&value) {
            return Err(BqlError::StallThrsOutOfRange(value));
        }
        if self.stall_thrs.load(Relaxed) == 0 && value != 0 {
            self.last_reap.store(now, Release);
        }
        self.stall_thrs.store(value, Release);
        Ok(())
    }

    /// sysfs `stall_max` write: clear the longest stall seen.
    pub fn clear_stall_max(&self) {
        self.stall_max.store(0, Relaxed);
    }

    /// Bytes handed to the device and not yet completed (sysfs
    /// `inflight`).
    pub fn inflight(&self) -> u32 {
        self.num_queued
            .load(Relaxed)
            .wrapping_sub(self.num_completed.load(Relaxed))
    }

    /// A copy of every field, for markers and tests.
    pub fn snapshot(&self) -> DqlSnapshot {
        DqlSnapshot {
            num_queued: self.num_queued.load(Relaxed),
            adj_limit: self.adj_limit.load(Relaxed),
            last_obj_cnt: self.last_obj_cnt.load(Relaxed),
            stall_thrs: self.stall_thrs.load(Relaxed) as u16,
            history_head: self.history_head.load(Relaxed),
            history: core::array::from_fn(|i| self.history[i].load(Relaxed)),
            limit: self.limit.load(Relaxed),
            num_completed: self.num_completed.load(Relaxed),
            prev_ovlimit: self.prev_ovlimit.load(Relaxed),
            prev_num_queued: self.prev_num_queued.load(Relaxed),
            prev_last_obj_cnt: self.prev_last_obj_cnt.load(Relaxed),
            lowest_slack: self.lowest_slack.load(Relaxed),
            slack_start_time: self.slack_start_time.load(Relaxed),
            max_limit: self.max_limit.load(Relaxed),
            min_limit: self.min_limit.load(Relaxed),
            slack_hold_time: self.slack_hold_time.load(Relaxed),
            stall_max: self.stall_max.load(Relaxed) as u16,
            last_reap: self.last_reap.load(Relaxed),
            stall_cnt: self.stall_cnt.load(Relaxed),
        }
    }
}

/// Plain copy of every `struct dql` field (Linux's names and order).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DqlSnapshot {
    /// Bytes ever queued (wrapping).
    pub num_queued: u32,
    /// `limit + num_completed` at the last completion.
    pub adj_limit: u32,
    /// Bytes of the last queueing.
    pub last_obj_cnt: u32,
    /// Stall threshold in jiffies (0 = off).
    pub stall_thrs: u16,
    /// History ring head (jiffies / 64).
    pub history_head: u64,
    /// History ring: a bit per jiffy something was queued.
    pub history: [u64; DQL_HIST_LEN],
    /// Current limit.
    pub limit: u32,
    /// Bytes ever completed (wrapping).
    pub num_completed: u32,
    /// Over-limit at the previous completion.
    pub prev_ovlimit: u32,
    /// `num_queued` at the previous completion.
    pub prev_num_queued: u32,
    /// `last_obj_cnt` at the previous completion.
    pub prev_last_obj_cnt: u32,
    /// Lowest slack seen in this hold period.
    pub lowest_slack: u32,
    /// Start of this hold period (jiffies).
    pub slack_start_time: u64,
    /// Upper bound of the limit.
    pub max_limit: u32,
    /// Lower bound of the limit.
    pub min_limit: u32,
    /// Hold period (jiffies).
    pub slack_hold_time: u32,
    /// Longest stall seen (jiffies).
    pub stall_max: u16,
    /// Last completion (jiffies).
    pub last_reap: u64,
    /// Stalls detected.
    pub stall_cnt: u64,
}

/// The constants and time helpers against Linux's values (HZ = 100,
/// 64-bit `long`): cargo-mutants' survivors in this file changed them
/// with no behaviour the host tests reached.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_linuxs() {
        // include/linux/dynamic_queue_limits.h: UINT_MAX / 16 and
        // (UINT_MAX / 2) - DQL_MAX_OBJECT.
        assert_eq!(DQL_MAX_OBJECT, 0x0fff_ffff);
        assert_eq!(DQL_MAX_LIMIT, 0x7000_0000);
        // include/linux/jiffies.h: ((LONG_MAX >> 1) - 1).
        assert_eq!(MAX_JIFFY_OFFSET, 0x3fff_ffff_ffff_fffe);
        assert_eq!(msecs_to_jiffies(u32::MAX), MAX_JIFFY_OFFSET);
    }

    #[test]
    fn jiffies_to_msecs_is_ten_per_jiffy() {
        assert_eq!(jiffies_to_msecs(0), 0);
        assert_eq!(jiffies_to_msecs(128), 1280);
        assert_eq!(jiffies_to_msecs(7), 70);
    }

    #[test]
    fn time_after_is_strict_and_wrap_safe() {
        assert!(!time_after(5, 5));
        assert!(!time_after(4, 5));
        assert!(time_after(6, 5));
        assert!(time_after(1, u64::MAX), "across the wrap");
        assert!(!time_after(u64::MAX, 1));
        assert!(time_after_eq(5, 5) && !time_after_eq(4, 5) && time_after_eq(0, u64::MAX));
    }
}
