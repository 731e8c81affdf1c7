//! Edges of the skb pool and `net_device` that the other softnet tests
//! left unread (issue 14). Each test names the cargo-mutants mutants it
//! was written for; their verdicts are in mutation/softnet-skb-netdev.md.
mod common;

use common::RecEnv;
use nicproof_guest::abi::{Marker, QueueReason};
use nicproof_guest::platform::Platform;
use nicproof_guest::softnet::errno::EBUSY;
use nicproof_guest::softnet::netdev::{
    mac_to_u64, AddrAssignType, NetDevice, NetDeviceOps, NetdevTx, Qdisc, QdiscRun,
};
use nicproof_guest::softnet::queue::TxQueue;
use nicproof_guest::softnet::skb::{Frag, SkbId};
use nicproof_guest::softnet::skb::{SkbPool, HEAD_CAP};
use nicproof_guest::softnet::{PlatformEnv, SoftnetEnv, SoftnetMutants};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;

const ETH: [u8; 14] = [0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00];
const MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];

/// `gso_size` is stored, read back, copied by `cow_head` into the private
/// block, and a fresh skb starts at 0 (skb.rs `gso_size -> 0/1`: no test
/// and no caller read gso_size before).
#[test]
fn gso_size_is_kept_and_copied_by_cow_head() {
    let mut pool = SkbPool::new(4, RecEnv::leaked());
    let a = pool.alloc(&ETH, &[]).unwrap();
    assert_eq!(pool.get(a).unwrap().gso_size(), 0);
    pool.set_gso_size(a, 1448).unwrap();
    assert_eq!(pool.get(a).unwrap().gso_size(), 1448);
    let b = pool.clone_skb(a).unwrap();
    assert_eq!(pool.get(b).unwrap().gso_size(), 1448, "the clone shares it");
    pool.cow_head(b).unwrap();
    pool.set_gso_size(b, 536).unwrap();
    assert_eq!(pool.get(b).unwrap().gso_size(), 536);
    assert_eq!(
        pool.get(a).unwrap().gso_size(),
        1448,
        "the private copy's write stays private"
    );
    pool.free(a).unwrap();
    let c = pool.alloc(&ETH, &[]).unwrap();
    assert_eq!(
        pool.get(c).unwrap().gso_size(),
        0,
        "a reused block is reset"
    );
}

/// A head of exactly HEAD_CAP bytes fits (skb.rs `head.len() > HEAD_CAP`
/// -> `>=` refused it; softnet_skb tested only HEAD_CAP + 1, and only
/// queueing_host_oracles saw it, through a whole driver run).
#[test]
fn a_head_of_exactly_head_cap_bytes_fits() {
    let mut pool = SkbPool::new(2, RecEnv::leaked());
    let head = [0xa5; HEAD_CAP];
    let id = pool.alloc(&head, &[]).unwrap();
    assert_eq!(pool.get(id).unwrap().head(), &head[..]);
    assert_eq!(pool.get(id).unwrap().len(), HEAD_CAP as u32);
}

/// is_live is false for a freed skb and for a stale id of a reused slot
/// (skb.rs `is_live -> true`: softnet_skb only asked about live skbs;
/// driver_lifecycle's ledger tests see it too).
#[test]
fn freed_and_stale_ids_are_not_live() {
    let mut pool = SkbPool::new(1, RecEnv::leaked());
    let a = pool.alloc(&ETH, &[]).unwrap();
    assert!(pool.is_live(a));
    pool.free(a).unwrap();
    assert!(!pool.is_live(a), "freed");
    let b = pool.alloc(&ETH, &[]).unwrap();
    assert!(pool.is_live(b));
    assert!(!pool.is_live(a), "stale: same slot, older generation");
}

/// The ledger's counters: allocs counts allocations and clones, frees
/// the successful frees, refused frees count apart (skb.rs `allocs -> 1`,
/// `frees -> 1`: the tests only ever expected 1 of each, and nothing
/// outside the tests reads these counters).
#[test]
fn ledger_counts_every_alloc_clone_and_free() {
    let mut pool = SkbPool::new(4, RecEnv::leaked());
    let a = pool.alloc(&ETH, &[]).unwrap();
    let b = pool.alloc(&ETH, &[]).unwrap();
    let c = pool.clone_skb(a).unwrap();
    assert_eq!((pool.allocs(), pool.frees(), pool.live()), (3, 0, 3));
    for id in [a, b, c] {
        pool.free(id).unwrap();
    }
    assert!(pool.free(b).is_err());
    assert_eq!(
        (pool.allocs(), pool.frees(), pool.bad_frees(), pool.live()),
        (3, 3, 1, 0)
    );
}

/// `len`, `is_empty` and `nr_descs` for skbs without a head, without
/// fragments and with neither.
#[test]
fn lengths_and_descriptor_counts_without_head_or_frags() {
    let mut pool = SkbPool::new(4, RecEnv::leaked());
    let frag = Frag {
        addr: 0x200_0000,
        len: 1000,
    };
    let frags_only = pool.alloc(&[], &[frag, frag]).unwrap();
    let s = pool.get(frags_only).unwrap();
    assert_eq!((s.len(), s.nr_descs(), s.head_len()), (2000, 2, 0));
    assert!(!s.is_empty());
    let head_only = pool.alloc(&ETH, &[]).unwrap();
    let s = pool.get(head_only).unwrap();
    assert_eq!((s.len(), s.nr_descs(), s.head_len()), (14, 1, 14));
    assert!(!s.is_empty());
    let empty = pool.alloc(&[], &[]).unwrap();
    let s = pool.get(empty).unwrap();
    assert_eq!((s.len(), s.nr_descs()), (0, 0));
    assert!(s.is_empty());
}

/// A driver that accepts everything except the skbs it is told to refuse.
#[derive(Default)]
struct Ops {
    opens: u32,
    stops: u32,
    refuse: Vec<u32>,
    accepted: Vec<u32>,
}

impl NetDeviceOps for Ops {
    fn open(&mut self) -> Result<(), i32> {
        self.opens += 1;
        Ok(())
    }
    fn stop(&mut self) {
        self.stops += 1;
    }
    fn start_xmit(&mut self, skb: SkbId, _xmit_more: bool) -> NetdevTx {
        if self.refuse.contains(&skb.0) {
            return NetdevTx::Busy;
        }
        self.accepted.push(skb.0);
        NetdevTx::Ok
    }
    fn tx_timeout(&mut self, _txq: u32) {}
}

fn device() -> (NetDevice<'static, 'static, Ops>, &'static RecEnv) {
    let env = RecEnv::leaked();
    let q: &'static TxQueue<'static> =
        Box::leak(Box::new(TxQueue::new(0, false, SoftnetMutants::NONE, env)));
    let mut dev = NetDevice::new(Ops::default(), q, 1_000);
    dev.set_dev_addr(MAC, AddrAssignType::Perm);
    (dev, env)
}

/// register reports the address and how it was assigned, and refuses a
/// second registration (netdev.rs `mac_to_u64 -> 0/1`, `dev_addr ->
/// [0; 6]/[1; 6]`).
#[test]
fn register_reports_the_address_and_its_assign_type_once() {
    let (mut dev, env) = device();
    assert_eq!(mac_to_u64(&MAC), 0x5634_1200_5452, "byte 0 lowest");
    dev.set_dev_addr(MAC, AddrAssignType::Random);
    assert_eq!(dev.dev_addr(), MAC);
    assert_eq!(dev.addr_assign_type(), AddrAssignType::Random);
    dev.register().unwrap();
    assert_eq!(
        env.markers(),
        vec![(Marker::Register, vec![0x5634_1200_5452, 1])]
    );
    assert_eq!(dev.register(), Err(EBUSY), "already registered");
    assert_eq!(env.count(Marker::Register), 1);
}

/// `stop_calls` counts every ndo_stop (netdev.rs `stop_calls -> 1`:
/// softnet_netdev only ever expected 1; scenarios_lifecycle sees it).
#[test]
fn stop_calls_counts_every_stop() {
    let (mut dev, _) = device();
    dev.register().unwrap();
    assert_eq!(dev.stop_calls(), 0);
    for n in 1..=3 {
        dev.open().unwrap();
        dev.close();
        assert_eq!(dev.stop_calls(), n);
    }
    assert_eq!(dev.ops.stops, 3);
}

/// A new device has no carrier; set_carrier turns it on and off
/// (netdev.rs `carrier -> true`: the watchdog reads the field, and the
/// queueing scenario only reports the getter's value).
#[test]
fn carrier_follows_set_carrier() {
    let (mut dev, _) = device();
    assert!(!dev.carrier(), "alloc_etherdev: no carrier");
    dev.set_carrier(true);
    assert!(dev.carrier());
    dev.set_carrier(false);
    assert!(!dev.carrier());
}

/// A BUSY after the queue was woken since the last accepted skb is a
/// false wake: counted apart from the plain BUSY returns and flagged in
/// the XmitBusy marker (netdev.rs `false_wake_busy += 1` -> `-=`/`*=`,
/// `false_wake_busy_count -> 0/1`, `busy_count -> 1`).
#[test]
fn busy_after_a_wake_is_counted_as_a_false_wake() {
    let (mut dev, env) = device();
    dev.register().unwrap();
    dev.open().unwrap();
    dev.ops.refuse = vec![2, 3];
    assert_eq!(dev.xmit(SkbId(1), false), NetdevTx::Ok);
    dev.queue().stop(QueueReason::RingLow);
    assert!(dev.queue().wake(QueueReason::Reclaim));
    env.clear();
    assert_eq!(dev.xmit(SkbId(2), false), NetdevTx::Busy);
    assert_eq!(dev.xmit(SkbId(3), false), NetdevTx::Busy);
    assert_eq!(dev.false_wake_busy_count(), 2);
    assert_eq!(dev.busy_count(), 0, "false wakes are not driver BUSYs");
    assert_eq!(
        env.markers(),
        vec![
            (Marker::XmitBusy, vec![2, 1]),
            (Marker::XmitBusy, vec![3, 1])
        ]
    );
    // An accepted skb re-arms: the next BUSY is the driver's.
    dev.ops.refuse.clear();
    assert_eq!(dev.xmit(SkbId(4), false), NetdevTx::Ok);
    dev.ops.refuse = vec![5];
    assert_eq!(dev.xmit(SkbId(5), false), NetdevTx::Busy);
    assert_eq!((dev.busy_count(), dev.false_wake_busy_count()), (1, 2));
}

/// An accepted skb stamps `trans_start` (the watchdog's progress); a
/// BUSY does not (netdev.rs xmit `r == Ok` -> `!=`).
#[test]
fn xmit_stamps_trans_start_only_when_the_driver_accepts() {
    let (mut dev, env) = device();
    dev.register().unwrap();
    dev.open().unwrap();
    env.set_now(500);
    assert_eq!(dev.xmit(SkbId(1), false), NetdevTx::Ok);
    assert_eq!(dev.queue().trans_start(), 500);
    dev.ops.refuse = vec![2];
    env.set_now(900);
    assert_eq!(dev.xmit(SkbId(2), false), NetdevTx::Busy);
    assert_eq!(dev.queue().trans_start(), 500, "BUSY is no progress");
}

/// qdisc_run stamps `trans_start` once if it sent anything, never if it
/// sent nothing (netdev.rs `run.sent > 0` -> `==`, `<`, `>=`).
#[test]
fn qdisc_run_stamps_trans_start_only_after_progress() {
    let (mut dev, env) = device();
    dev.register().unwrap();
    dev.open().unwrap();
    let mut q = Qdisc::new(8);
    env.set_now(300);
    dev.ops.refuse = vec![1];
    q.enqueue(SkbId(1)).unwrap();
    assert_eq!(dev.qdisc_run(&mut q, 4), QdiscRun { sent: 0, busy: 1 });
    assert_eq!(dev.queue().trans_start(), 0, "nothing sent: no stamp");
    dev.ops.refuse.clear();
    env.set_now(700);
    q.enqueue(SkbId(2)).unwrap();
    assert_eq!(dev.qdisc_run(&mut q, 4), QdiscRun { sent: 2, busy: 0 });
    assert_eq!(dev.queue().trans_start(), 700);
}

/// A DOWN device's qdisc keeps its skbs and the driver is not asked
/// (netdev.rs qdisc_run_batches `is_up() && ...` -> `||`: the run then
/// reported a BUSY for a device that was never asked).
#[test]
fn qdisc_run_on_a_down_device_does_nothing() {
    let (mut dev, env) = device();
    dev.register().unwrap();
    let mut q = Qdisc::new(8);
    q.enqueue(SkbId(1)).unwrap();
    assert_eq!(dev.qdisc_run(&mut q, 4), QdiscRun::default());
    assert_eq!(q.len(), 1);
    assert!(dev.ops.accepted.is_empty());
    assert_eq!(env.count(Marker::XmitBusy), 0);
}

/// The qdisc's limit, and drain handing back everything in order (the
/// scenarios free what drain returns at unregister; netdev.rs `drain ->
/// empty()/once(..)`).
#[test]
fn qdisc_limit_and_drain() {
    let mut q = Qdisc::new(2);
    assert!(q.is_empty());
    q.enqueue(SkbId(7)).unwrap();
    q.enqueue(SkbId(8)).unwrap();
    assert_eq!(q.enqueue(SkbId(9)), Err(SkbId(9)), "full: given back");
    assert_eq!(q.len(), 2);
    let drained: Vec<SkbId> = q.drain().collect();
    assert_eq!(drained, vec![SkbId(7), SkbId(8)]);
    assert!(q.is_empty());
    assert_eq!(q.drain().count(), 0);
}

/// start_queue clears DRV_XOFF and reports a lifecycle wake
/// (netdev.rs `start_queue -> ()`).
#[test]
fn start_queue_restarts_a_stopped_queue() {
    let (dev, env) = device();
    dev.queue().stop(QueueReason::RingLow);
    assert!(dev.queue().stopped());
    env.clear();
    dev.start_queue();
    assert!(!dev.queue().stopped());
    assert_eq!(
        env.markers(),
        vec![(Marker::QueueWake, vec![QueueReason::Lifecycle as u64, 0])]
    );
}

/// A platform that only counts what the softnet core asks of it.
#[derive(Default)]
struct CountingPlatform {
    now: AtomicU64,
    sched_points: AtomicU32,
    markers: Mutex<Vec<Marker>>,
}

impl Platform for CountingPlatform {
    fn pci_read32(&self, _: (u8, u8, u8), _: u8) -> u32 {
        unreachable!("the softnet core does no PCI")
    }
    fn pci_write32(&self, _: (u8, u8, u8), _: u8, _: u32) {
        unreachable!("the softnet core does no PCI")
    }
    fn mmio_read32(&self, _: u64) -> u32 {
        unreachable!("the softnet core does no MMIO")
    }
    fn mmio_write32(&self, _: u64, _: u32) {
        unreachable!("the softnet core does no MMIO")
    }
    fn now_ns(&self) -> u64 {
        self.now.load(Ordering::Relaxed)
    }
    fn wait_until(&self, _: u64) {}
    fn marker(&self, marker: Marker, _: &[u64]) {
        self.markers.lock().unwrap().push(marker);
    }
    fn marker_text(&self, marker: Marker, args: &[u64], _: &str) {
        self.marker(marker, args);
    }
    fn cpu_id(&self) -> u32 {
        0
    }
    fn sched_point(&self) {
        self.sched_points.fetch_add(1, Ordering::Relaxed);
    }
}

/// PlatformEnv hands the platform's clock, markers and scheduling points
/// to the softnet core: try_stop's scheduling point (between the
/// producer's free-space read and its stop bit) reaches the platform,
/// where the VMM's one-vCPU-at-a-time scheduler may switch CPUs (mod.rs
/// `PlatformEnv::sched_point -> ()`: the host platforms had no
/// scheduling point, so dropping it was invisible to every host test).
#[test]
fn platform_env_forwards_clock_markers_and_sched_points() {
    let plat = CountingPlatform::default();
    plat.now.store(123_456_789, Ordering::Relaxed);
    let env = PlatformEnv(&plat);
    assert_eq!(env.now_ns(), 123_456_789);
    let q = TxQueue::new(0, false, SoftnetMutants::NONE, &env);
    assert_eq!(
        q.trans_start(),
        123_456_789,
        "the queue reads the platform clock"
    );
    // 1 free descriptor, start threshold 2: try_stop stops the queue.
    assert_eq!(q.try_stop(|| 1, 2), 0);
    assert_eq!(plat.sched_points.load(Ordering::Relaxed), 1);
    assert!(q.stopped());
    assert_eq!(
        *plat.markers.lock().unwrap(),
        vec![Marker::QueueStop],
        "the queue's markers reach the platform"
    );
}
