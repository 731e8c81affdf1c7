//! Linux's own C for byte queue limits (`lib/dynamic_queue_limits.c`,
//! `include/linux/dynamic_queue_limits.h`) and the netdev queue helpers
//! (`include/linux/netdevice.h`, `net/core/dev.c`,
//! `include/net/netdev_queues.h`, the BQL sysfs setters of
//! `net/core/net-sysfs.c`), copied verbatim from Linux 6.12.118 into
//! `csrc/upstream` (see `csrc/extract.sh`) and compiled with
//! single-threaded shims for jiffies, barriers and bit operations.
//!
//! Test only: the differential test (`tests/differential.rs`) drives
//! [`LinuxQueue`] and the guest's softnet core with the same seeded
//! operations and compares every field after every step. The reference's
//! results keep Linux's shape: `Err(())` is a BUG, where the kernel dies.
//! The C is GPL-2.0 and stays in this crate; nothing else links it.

#![allow(clippy::result_unit_err)]

use std::os::raw::{c_int, c_long, c_uint, c_ulong};

/// What a BUG_ON in `dql_completed` returns through the glue (the kernel
/// would have died; nothing changed).
pub const REF_BUG: i32 = -1000;
/// Linux's HZ in this build (CONFIG_HZ_100, as the guest's softnet core).
pub const HZ: u64 = 100;

/// Every field of `struct dql` and the queue, widened to u64.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fields {
    pub num_queued: u64,
    pub adj_limit: u64,
    pub last_obj_cnt: u64,
    pub stall_thrs: u64,
    pub history_head: u64,
    pub history: [u64; 4],
    pub limit: u64,
    pub num_completed: u64,
    pub prev_ovlimit: u64,
    pub prev_num_queued: u64,
    pub prev_last_obj_cnt: u64,
    pub lowest_slack: u64,
    pub slack_start_time: u64,
    pub max_limit: u64,
    pub min_limit: u64,
    pub slack_hold_time: u64,
    pub stall_max: u64,
    pub last_reap: u64,
    pub stall_cnt: u64,
    pub trans_start: u64,
    pub state: u64,
    pub schedules: u64,
}

/// The last `dql_stall_detected` tracepoint and how many fired.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StallEvent {
    pub count: u64,
    pub thrs: u64,
    pub len: u64,
    pub last_reap: u64,
    pub hist_head: u64,
    pub now: u64,
    pub hist: [u64; 4],
}

#[repr(C)]
struct CQueue {
    _opaque: [u8; 0],
}

extern "C" {
    fn ref_set_jiffies(j: c_ulong);
    fn ref_warns() -> c_ulong;
    fn ref_stall_event(out: *mut StallEvent);
}

macro_rules! variant {
    ($modname:ident, $($name:ident = $sym:expr; ($($arg:ident: $ty:ty),*) $(-> $ret:ty)?;)*) => {
        mod $modname {
            use super::*;
            extern "C" {
                $(#[link_name = $sym] pub fn $name($($arg: $ty),*) $(-> $ret)?;)*
            }
        }
    };
}

macro_rules! both {
    ($($name:ident ($($arg:ident: $ty:ty),*) $(-> $ret:ty)?;)*) => {
        variant!(bql, $($name = concat!("ref_bql_", stringify!($name)); ($($arg: $ty),*) $(-> $ret)?;)*);
        variant!(nobql, $($name = concat!("ref_nobql_", stringify!($name)); ($($arg: $ty),*) $(-> $ret)?;)*);
        /// The entry points of one build (with or without CONFIG_BQL).
        #[allow(non_snake_case)]
        struct Api { $($name: unsafe extern "C" fn($($ty),*) $(-> $ret)?,)* }
        static BQL: Api = Api { $($name: bql::$name,)* };
        static NOBQL: Api = Api { $($name: nobql::$name,)* };
    };
}

both! {
    set_desc(v: *const c_uint, n: c_uint);
    desc_reads() -> c_uint;
    new(hold_time: c_uint) -> *mut CQueue;
    free(q: *mut CQueue);
    fields(q: *const CQueue, f: *mut Fields);
    dql_queued(q: *mut CQueue, n: c_uint);
    dql_avail(q: *const CQueue) -> c_int;
    dql_completed(q: *mut CQueue, n: c_uint) -> c_int;
    dql_reset(q: *mut CQueue);
    stop(q: *mut CQueue);
    start(q: *mut CQueue);
    wake(q: *mut CQueue);
    schedule(q: *mut CQueue);
    freeze(q: *mut CQueue);
    unfreeze(q: *mut CQueue);
    stopped(q: *const CQueue) -> c_int;
    xmit_stopped(q: *const CQueue) -> c_int;
    frozen_or_stopped(q: *const CQueue) -> c_int;
    frozen_or_drv_stopped(q: *const CQueue) -> c_int;
    sent_queue(q: *mut CQueue, bytes: c_uint);
    sent_queue_more(q: *mut CQueue, bytes: c_uint, more: c_int) -> c_int;
    completed_queue(q: *mut CQueue, pkts: c_uint, bytes: c_uint) -> c_int;
    reset_queue(q: *mut CQueue);
    try_stop(q: *mut CQueue, start_thrs: c_uint) -> c_int;
    maybe_stop(q: *mut CQueue, stop_thrs: c_uint, start_thrs: c_uint) -> c_int;
    completed_wake(q: *mut CQueue, pkts: c_uint, bytes: c_uint, start_thrs: c_uint, down: c_int) -> c_int;
    store_limit(q: *mut CQueue, v: c_uint) -> c_long;
    store_limit_max(q: *mut CQueue, v: c_uint) -> c_long;
    store_limit_min(q: *mut CQueue, v: c_uint) -> c_long;
    store_hold_time(q: *mut CQueue, v: c_uint) -> c_long;
    store_stall_thrs(q: *mut CQueue, v: c_uint) -> c_long;
    store_stall_max(q: *mut CQueue, v: c_uint) -> c_long;
    store_max_keyword(q: *mut CQueue, which: c_int) -> c_long;
}

/// Set Linux's `jiffies` (shared by every [`LinuxQueue`]).
pub fn set_jiffies(j: u64) {
    // SAFETY: a plain store to the shim's global; the C is single-threaded
    // and the test runs one sequence at a time per process (see
    // `LinuxQueue`).
    unsafe { ref_set_jiffies(j as c_ulong) }
}

/// WARN_ON_ONCE conditions met so far (`dql_queued` of a too-big object).
pub fn warns() -> u64 {
    // SAFETY: reads the shim's counter.
    unsafe { ref_warns() as u64 }
}

/// The last stall tracepoint.
pub fn stall_event() -> StallEvent {
    let mut e = StallEvent::default();
    // SAFETY: writes one StallEvent (same layout as the C struct).
    unsafe { ref_stall_event(&mut e) };
    e
}

/// Which `byte_queue_limits/` file a [`LinuxQueue::store`] writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SysfsFile {
    Limit,
    LimitMax,
    LimitMin,
    HoldTime,
    StallThrs,
    StallMax,
}

/// One Linux `struct netdev_queue` (with its dql), from a kernel built
/// with CONFIG_BQL or without. The C state is global (jiffies, the
/// get_desc script, the BUG escape): use queues from one thread only.
pub struct LinuxQueue {
    q: *mut CQueue,
    api: &'static Api,
}

impl LinuxQueue {
    /// `dql_init(hold_time)` on a zeroed queue, `trans_start = jiffies`.
    pub fn new(bql: bool, hold_time: u32) -> Self {
        let api = if bql { &BQL } else { &NOBQL };
        // SAFETY: allocates and initialises a queue the C owns until drop.
        let q = unsafe { (api.new)(hold_time) };
        assert!(!q.is_null());
        Self { q, api }
    }

    /// Every field.
    pub fn fields(&self) -> Fields {
        let mut f = Fields::default();
        // SAFETY: q is live; writes one Fields (same layout as the C).
        unsafe { (self.api.fields)(self.q, &mut f) };
        f
    }

    /// The values get_desc returns at its 1st, 2nd, ... evaluation (the
    /// last repeats; at most 4).
    pub fn set_desc(&self, script: &[u32]) {
        // SAFETY: the C copies at most 4 values from the slice.
        unsafe { (self.api.set_desc)(script.as_ptr(), script.len() as c_uint) }
    }

    /// How often get_desc was evaluated since `set_desc`.
    pub fn desc_reads(&self) -> u32 {
        // SAFETY: reads the glue's counter.
        unsafe { (self.api.desc_reads)() }
    }
}

macro_rules! methods {
    ($($(#[$doc:meta])* $name:ident($($arg:ident: $ty:ty => $conv:expr),*) -> $ret:ty = |$r:ident| $out:expr;)*) => {
        impl LinuxQueue {
            $($(#[$doc])* pub fn $name(&self, $($arg: $ty),*) -> $ret {
                // SAFETY: q is live and owned by self; single-threaded C.
                let $r = unsafe { (self.api.$name)(self.q, $($conv),*) };
                $out
            })*
        }
    };
}

methods! {
    /// `dql_queued`.
    dql_queued(n: u32 => n) -> () = |r| r;
    /// `dql_avail`.
    dql_avail() -> i32 = |r| r;
    /// `dql_completed`; `Err(())` where Linux BUGs.
    dql_completed(n: u32 => n) -> Result<(), ()> = |r| if r == REF_BUG { Err(()) } else { Ok(()) };
    /// `dql_reset`.
    dql_reset() -> () = |r| r;
    /// `netif_tx_stop_queue`.
    stop() -> () = |r| r;
    /// `netif_tx_start_queue`.
    start() -> () = |r| r;
    /// `netif_tx_wake_queue`.
    wake() -> () = |r| r;
    /// `netif_schedule_queue`.
    schedule() -> () = |r| r;
    /// `netif_freeze_queues` for this queue.
    freeze() -> () = |r| r;
    /// `netif_unfreeze_queues` for this queue.
    unfreeze() -> () = |r| r;
    /// `netif_tx_queue_stopped`.
    stopped() -> bool = |r| r != 0;
    /// `netif_xmit_stopped`.
    xmit_stopped() -> bool = |r| r != 0;
    /// `netif_xmit_frozen_or_stopped`.
    frozen_or_stopped() -> bool = |r| r != 0;
    /// `netif_xmit_frozen_or_drv_stopped`.
    frozen_or_drv_stopped() -> bool = |r| r != 0;
    /// `netdev_tx_sent_queue`.
    sent_queue(bytes: u32 => bytes) -> () = |r| r;
    /// `__netdev_tx_sent_queue`.
    sent_queue_more(bytes: u32 => bytes, more: bool => c_int::from(more)) -> bool = |r| r != 0;
    /// `netdev_tx_completed_queue`; `Err(())` where Linux BUGs.
    completed_queue(pkts: u32 => pkts, bytes: u32 => bytes) -> Result<(), ()> = |r| if r == REF_BUG { Err(()) } else { Ok(()) };
    /// `netdev_tx_reset_queue`.
    reset_queue() -> () = |r| r;
    /// `netif_txq_try_stop` (get_desc from [`LinuxQueue::set_desc`]).
    try_stop(start_thrs: u32 => start_thrs) -> i32 = |r| r;
    /// `netif_txq_maybe_stop`.
    maybe_stop(stop_thrs: u32 => stop_thrs, start_thrs: u32 => start_thrs) -> i32 = |r| r;
    /// `__netif_txq_completed_wake`; `Err(())` where Linux BUGs.
    completed_wake(pkts: u32 => pkts, bytes: u32 => bytes, start_thrs: u32 => start_thrs, down: bool => c_int::from(down)) -> Result<i32, ()> = |r| if r == REF_BUG { Err(()) } else { Ok(r) };
}

impl LinuxQueue {
    /// Write `value` (decimal) to a `byte_queue_limits/` file: the
    /// length written, or `-errno`.
    pub fn store(&self, file: SysfsFile, value: u32) -> i64 {
        let f = match file {
            SysfsFile::Limit => self.api.store_limit,
            SysfsFile::LimitMax => self.api.store_limit_max,
            SysfsFile::LimitMin => self.api.store_limit_min,
            SysfsFile::HoldTime => self.api.store_hold_time,
            SysfsFile::StallThrs => self.api.store_stall_thrs,
            SysfsFile::StallMax => self.api.store_stall_max,
        };
        // SAFETY: q is live; the glue formats the value itself.
        unsafe { f(self.q, value) }
    }

    /// Write "max" to `limit` (0), `limit_max` (1) or `limit_min` (2).
    pub fn store_max(&self, which: i32) -> i64 {
        assert!((0..3).contains(&which));
        // SAFETY: as for store; `which` (checked above) indexes a 3-entry table.
        unsafe { (self.api.store_max_keyword)(self.q, which) }
    }
}

impl Drop for LinuxQueue {
    fn drop(&mut self) {
        // SAFETY: frees what new allocated, once.
        unsafe { (self.api.free)(self.q) }
    }
}
