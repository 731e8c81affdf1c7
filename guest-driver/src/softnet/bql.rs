//! Byte queue limits: `lib/dynamic_queue_limits.c` (dql).
//!
//! Counters are free-running `u32`s compared with wrapping arithmetic,
//! as in Linux. The enqueue side (`queued`) runs in xmit, the
//! completion side (`completed`) in NAPI; they share `num_queued` and
//! `adj_limit`, so every field is an atomic accessed with Relaxed
//! ordering (the ordering that matters comes from the fences in
//! [`super::queue`]). Time is in nanoseconds instead of jiffies.
//!
//! Where Linux BUGs or WARNs, this returns an error and changes nothing:
//! the guest must never crash on a driver bug we want the oracles to see.

use super::sync::{AtomicU32, AtomicU64, Ordering::Relaxed};

/// Default `max_limit` (Linux `DQL_MAX_LIMIT`).
pub const DQL_MAX_LIMIT: u32 = (u32::MAX / 2) - (u32::MAX / 16);
/// Largest single `queued` count (Linux `DQL_MAX_OBJECT`).
pub const DQL_MAX_OBJECT: u32 = u32::MAX / 16;
/// Default slack hold time: one second (Linux uses HZ jiffies).
pub const DEFAULT_SLACK_HOLD_NS: u64 = 1_000_000_000;

/// A BQL accounting error (Linux would BUG or WARN).
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
        }
    }
}

/// Dynamic queue limit state.
#[derive(Debug)]
pub struct Dql {
    // Enqueue side (xmit).
    num_queued: AtomicU32,
    adj_limit: AtomicU32,
    last_obj_cnt: AtomicU32,
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
    slack_hold_ns: u64,
}

/// `POSDIFF(a, b)`: `a - b` if positive as a signed difference, else 0.
fn posdiff(a: u32, b: u32) -> u32 {
    if (a.wrapping_sub(b) as i32) > 0 {
        a.wrapping_sub(b)
    } else {
        0
    }
}

impl Dql {
    /// `dql_init`: default limits, the given slack hold time, reset.
    pub fn new(slack_hold_ns: u64, now_ns: u64) -> Self {
        Self {
            num_queued: AtomicU32::new(0),
            adj_limit: AtomicU32::new(0),
            last_obj_cnt: AtomicU32::new(0),
            limit: AtomicU32::new(0),
            num_completed: AtomicU32::new(0),
            prev_ovlimit: AtomicU32::new(0),
            prev_num_queued: AtomicU32::new(0),
            prev_last_obj_cnt: AtomicU32::new(0),
            lowest_slack: AtomicU32::new(u32::MAX),
            slack_start_time: AtomicU64::new(now_ns),
            max_limit: AtomicU32::new(DQL_MAX_LIMIT),
            min_limit: AtomicU32::new(0),
            slack_hold_ns,
        }
    }

    /// Set the limit bounds (sysfs `limit_min`/`limit_max`).
    pub fn set_bounds(&self, min_limit: u32, max_limit: u32) {
        self.min_limit.store(min_limit, Relaxed);
        self.max_limit.store(max_limit.max(min_limit), Relaxed);
    }

    /// `dql_queued`: record `count` bytes handed to the device.
    pub fn queued(&self, count: u32) -> Result<(), BqlError> {
        if count > DQL_MAX_OBJECT {
            return Err(BqlError::ObjectTooBig(count));
        }
        self.last_obj_cnt.store(count, Relaxed);
        let q = self.num_queued.load(Relaxed).wrapping_add(count);
        self.num_queued.store(q, Relaxed);
        Ok(())
    }

    /// `dql_avail`: bytes that may still be queued; negative means over
    /// the limit (the queue gets STACK_XOFF).
    pub fn avail(&self) -> i32 {
        self.adj_limit
            .load(Relaxed)
            .wrapping_sub(self.num_queued.load(Relaxed)) as i32
    }

    /// `dql_completed`: record `count` bytes completed and adapt the limit.
    pub fn completed(&self, count: u32, now_ns: u64) -> Result<(), BqlError> {
        let num_queued = self.num_queued.load(Relaxed);
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
        let all_prev_completed = posdiff(completed, prev_num_queued);
        let prev_ovlimit = self.prev_ovlimit.load(Relaxed);

        if (ovlimit != 0 && inprogress == 0) || (prev_ovlimit != 0 && all_prev_completed != 0) {
            // Starved: grow by what was sent and completed in the last
            // interval plus the previous over-limit.
            limit = limit
                .wrapping_add(posdiff(completed, prev_num_queued))
                .wrapping_add(prev_ovlimit);
            self.slack_start_time.store(now_ns, Relaxed);
            self.lowest_slack.store(u32::MAX, Relaxed);
        } else if inprogress != 0 && prev_inprogress != 0 && all_prev_completed == 0 {
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
            if now_ns > start.saturating_add(self.slack_hold_ns) {
                limit = posdiff(limit, self.lowest_slack.load(Relaxed));
                self.slack_start_time.store(now_ns, Relaxed);
                self.lowest_slack.store(u32::MAX, Relaxed);
            }
        }

        let limit = limit.clamp(self.min_limit.load(Relaxed), self.max_limit.load(Relaxed));
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
        Ok(())
    }

    /// `dql_reset`, allowed only when the ring holds no packet
    /// (`ring_inflight == 0`): the driver has reclaimed or aborted all.
    pub fn reset(&self, ring_inflight: u32, now_ns: u64) -> Result<(), BqlError> {
        if ring_inflight != 0 {
            return Err(BqlError::ResetWithNonEmptyRing(ring_inflight));
        }
        let min = self.min_limit.load(Relaxed);
        self.limit.store(min, Relaxed);
        // Linux leaves adj_limit stale until the next completion; zeroing
        // it with the counters keeps avail = limit - queued meaningful.
        self.adj_limit.store(min, Relaxed);
        self.num_queued.store(0, Relaxed);
        self.num_completed.store(0, Relaxed);
        self.last_obj_cnt.store(0, Relaxed);
        self.prev_num_queued.store(0, Relaxed);
        self.prev_last_obj_cnt.store(0, Relaxed);
        self.prev_ovlimit.store(0, Relaxed);
        self.lowest_slack.store(u32::MAX, Relaxed);
        self.slack_start_time.store(now_ns, Relaxed);
        Ok(())
    }

    /// Bytes handed to the device and not yet completed.
    pub fn inflight(&self) -> u32 {
        self.num_queued
            .load(Relaxed)
            .wrapping_sub(self.num_completed.load(Relaxed))
    }

    /// A consistent-enough snapshot for markers and tests.
    pub fn snapshot(&self) -> DqlSnapshot {
        DqlSnapshot {
            num_queued: self.num_queued.load(Relaxed),
            num_completed: self.num_completed.load(Relaxed),
            limit: self.limit.load(Relaxed),
            adj_limit: self.adj_limit.load(Relaxed),
            min_limit: self.min_limit.load(Relaxed),
            max_limit: self.max_limit.load(Relaxed),
        }
    }
}

/// Plain copy of the dql counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DqlSnapshot {
    /// Bytes ever queued (wrapping).
    pub num_queued: u32,
    /// Bytes ever completed (wrapping).
    pub num_completed: u32,
    /// Current limit.
    pub limit: u32,
    /// `limit + num_completed` at the last completion.
    pub adj_limit: u32,
    /// Lower bound of the limit.
    pub min_limit: u32,
    /// Upper bound of the limit.
    pub max_limit: u32,
}
