//! `struct net_device`: ops, UP/DOWN, register/unregister with
//! auto-close, address validation, and a tiny qdisc that feeds xmit in
//! `xmit_more` batches.
//!
//! The core itself reports the ndo entry/exit markers (open, stop) and
//! BUSY returns, so no driver can forget them; in particular
//! `StopExit` is sent only after `ndo_stop` has returned, and from then
//! on the host allows no DMA or interrupt.

use alloc::collections::VecDeque;

use super::errno::EADDRNOTAVAIL;
use super::queue::TxQueue;
use super::skb::SkbId;
use super::watchdog::Watchdog;
use super::SoftnetEnv;
use crate::abi::{Marker, QueueReason};

/// `netdev_tx_t`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetdevTx {
    /// The driver owns the skb now (sent, or dropped and freed).
    Ok,
    /// Hard error: the driver kept no reference and freed nothing; the
    /// stack requeues the skb.
    Busy,
}

/// The driver's `net_device_ops`.
pub trait NetDeviceOps {
    /// `ndo_open`: rings, device, NAPI, interrupts, start the queue.
    /// Errors are negative-free errno values (e.g. `ENOMEM`).
    fn open(&mut self) -> Result<(), i32>;
    /// `ndo_stop`: when it returns, no DMA or interrupt may follow and
    /// every in-flight skb is completed or freed.
    fn stop(&mut self);
    /// `ndo_start_xmit`; `xmit_more` says more skbs follow at once, so
    /// the doorbell may wait.
    fn start_xmit(&mut self, skb: SkbId, xmit_more: bool) -> NetdevTx;
    /// `ndo_tx_timeout` for queue `txq`.
    fn tx_timeout(&mut self, txq: u32);
}

/// `addr_assign_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum AddrAssignType {
    /// `NET_ADDR_PERM`: from the hardware.
    Perm = 0,
    /// `NET_ADDR_RANDOM`: generated because the hardware's was invalid.
    Random = 1,
}

/// Registration and administrative state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DevState {
    /// Not registered (before register, after unregister).
    Unregistered,
    /// Registered, DOWN.
    Down,
    /// Registered, UP (ndo_open succeeded).
    Up,
}

/// `is_valid_ether_addr`: not all zero and not multicast (broadcast is
/// multicast).
pub fn is_valid_ether_addr(a: &[u8; 6]) -> bool {
    a[0] & 1 == 0 && a.iter().any(|&b| b != 0)
}

/// `eth_random_addr` from 48 random bits: unicast, locally administered.
pub fn random_ether_addr(bits: u64) -> [u8; 6] {
    let b = bits.to_le_bytes();
    [(b[0] & 0xfe) | 0x02, b[1], b[2], b[3], b[4], b[5]]
}

/// A MAC address as the u64 used in markers (byte 0 lowest).
pub fn mac_to_u64(a: &[u8; 6]) -> u64 {
    let mut b = [0u8; 8];
    b[..6].copy_from_slice(a);
    u64::from_le_bytes(b)
}

/// What a [`NetDevice::qdisc_run`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QdiscRun {
    /// skbs the driver accepted (OK).
    pub sent: u32,
    /// BUSY returns (requeued).
    pub busy: u32,
}

/// A FIFO qdisc holding skbs the stack wants to send.
pub struct Qdisc {
    q: VecDeque<SkbId>,
    limit: usize,
}

impl Qdisc {
    /// A qdisc holding up to `limit` skbs (allocated once).
    pub fn new(limit: usize) -> Self {
        Self {
            q: VecDeque::with_capacity(limit),
            limit,
        }
    }
    /// Enqueue; gives the skb back when full (the caller drops it).
    pub fn enqueue(&mut self, skb: SkbId) -> Result<(), SkbId> {
        if self.q.len() >= self.limit {
            return Err(skb);
        }
        self.q.push_back(skb);
        Ok(())
    }
    /// Queued skbs.
    pub fn len(&self) -> usize {
        self.q.len()
    }
    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.q.is_empty()
    }
    /// Take everything (to free it when the device goes away).
    pub fn drain(&mut self) -> impl Iterator<Item = SkbId> + '_ {
        self.q.drain(..)
    }
}

/// A network device.
pub struct NetDevice<'q, 'e, O: NetDeviceOps> {
    /// The driver.
    pub ops: O,
    queue: &'q TxQueue<'e>,
    env: &'e (dyn SoftnetEnv + Sync),
    state: DevState,
    dev_addr: [u8; 6],
    addr_assign_type: AddrAssignType,
    carrier: bool,
    watchdog: Watchdog,
    busy: u64,
    /// BUSY returns after a false wake (see [`Self::xmit`]).
    false_wake_busy: u64,
    /// [`TxQueue::wakes`] at the entry of the last call that returned OK.
    wakes_at_ok: u32,
    stop_calls: u64,
}

impl<'q, 'e, O: NetDeviceOps> NetDevice<'q, 'e, O> {
    /// `alloc_etherdev` + setup: unregistered, DOWN, no carrier.
    pub fn new(ops: O, queue: &'q TxQueue<'e>, watchdog_timeo_ns: u64) -> Self {
        Self {
            ops,
            queue,
            env: queue.env(),
            state: DevState::Unregistered,
            dev_addr: [0; 6],
            addr_assign_type: AddrAssignType::Perm,
            carrier: false,
            watchdog: Watchdog::new(watchdog_timeo_ns),
            busy: 0,
            false_wake_busy: 0,
            wakes_at_ok: queue.wakes(),
            stop_calls: 0,
        }
    }

    /// The transmit queue.
    pub fn queue(&self) -> &'q TxQueue<'e> {
        self.queue
    }
    /// Current state.
    pub fn state(&self) -> DevState {
        self.state
    }
    /// Whether the device is UP.
    pub fn is_up(&self) -> bool {
        self.state == DevState::Up
    }
    /// The hardware address.
    pub fn dev_addr(&self) -> [u8; 6] {
        self.dev_addr
    }
    /// How the address was assigned.
    pub fn addr_assign_type(&self) -> AddrAssignType {
        self.addr_assign_type
    }
    /// Set the hardware address (probe); no validation here, as in Linux
    /// (open validates).
    pub fn set_dev_addr(&mut self, addr: [u8; 6], how: AddrAssignType) {
        self.dev_addr = addr;
        self.addr_assign_type = how;
    }
    /// BUSY returns seen by the stack, those after a false wake left
    /// out ([`Self::false_wake_busy_count`]).
    pub fn busy_count(&self) -> u64 {
        self.busy
    }
    /// BUSY returns after a false wake: the queue was woken since the
    /// driver last accepted an skb (Linux allows these; the driver's
    /// full-ring check at entry returns BUSY then).
    pub fn false_wake_busy_count(&self) -> u64 {
        self.false_wake_busy
    }
    /// Times `ndo_stop` was called.
    pub fn stop_calls(&self) -> u64 {
        self.stop_calls
    }
    /// `netif_carrier_on/off`.
    pub fn set_carrier(&mut self, on: bool) {
        self.carrier = on;
    }
    /// Carrier state.
    pub fn carrier(&self) -> bool {
        self.carrier
    }
    /// The watchdog (its fire count).
    pub fn watchdog(&self) -> &Watchdog {
        &self.watchdog
    }

    /// `register_netdev`: Unregistered → DOWN.
    pub fn register(&mut self) -> Result<(), i32> {
        if self.state != DevState::Unregistered {
            return Err(super::errno::EBUSY);
        }
        self.state = DevState::Down;
        self.env.marker(
            Marker::Register,
            &[mac_to_u64(&self.dev_addr), self.addr_assign_type as u64],
        );
        Ok(())
    }

    /// `dev_open`: validate the address (`-EADDRNOTAVAIL`, ndo_open not
    /// called), then `ndo_open`. Opening an UP device does nothing.
    pub fn open(&mut self) -> Result<(), i32> {
        match self.state {
            DevState::Up => return Ok(()),
            DevState::Unregistered => return Err(super::errno::ENODEV),
            DevState::Down => {}
        }
        if !is_valid_ether_addr(&self.dev_addr) {
            return Err(EADDRNOTAVAIL);
        }
        self.env.marker(Marker::OpenEnter, &[]);
        let r = self.ops.open();
        self.env
            .marker(Marker::OpenExit, &[r.err().unwrap_or(0) as u64]);
        if r.is_ok() {
            self.state = DevState::Up;
            // dev_activate's netif_trans_update: the watchdog judges a
            // queue the driver left stopped from the open, not from a
            // stop (or a fire) before the close.
            self.queue.trans_update();
        }
        r
    }

    /// `dev_close`: `ndo_stop` once if UP; nothing if DOWN.
    pub fn close(&mut self) {
        if self.state != DevState::Up {
            return;
        }
        self.env.marker(Marker::StopEnter, &[]);
        self.stop_calls += 1;
        self.ops.stop();
        self.env.marker(Marker::StopExit, &[]);
        self.state = DevState::Down;
    }

    /// `unregister_netdev`: auto-close (stop exactly once if UP, never
    /// if DOWN), then Unregistered. `skip_close` is the
    /// `unregister-no-stop` mutant.
    pub fn unregister_with(&mut self, skip_close: bool) {
        if self.state == DevState::Unregistered {
            return;
        }
        let was_up = self.is_up();
        self.env
            .marker(Marker::UnregisterEnter, &[u64::from(was_up)]);
        if !skip_close {
            self.close();
        }
        self.state = DevState::Unregistered;
        self.env.marker(Marker::UnregisterExit, &[]);
    }

    /// `unregister_netdev`.
    pub fn unregister(&mut self) {
        self.unregister_with(false)
    }

    /// One skb through `ndo_start_xmit`, as `dev_hard_start_xmit` does.
    /// Refused (BUSY without calling the driver) if the device is not UP
    /// or the queue is stopped or frozen: the stack never calls xmit then
    /// (`netif_xmit_frozen_or_stopped`).
    pub fn xmit(&mut self, skb: SkbId, xmit_more: bool) -> NetdevTx {
        let r = self.xmit_one(skb, xmit_more);
        if r == NetdevTx::Ok {
            self.queue.trans_update();
        }
        r
    }

    /// [`Self::xmit`] without the `trans_start` stamp, which
    /// [`Self::qdisc_run`] makes once per run.
    fn xmit_one(&mut self, skb: SkbId, xmit_more: bool) -> NetdevTx {
        if !self.is_up() || self.queue.xmit_frozen_or_stopped() {
            return NetdevTx::Busy;
        }
        // Sampled at entry: a wake that lands while this call runs (after
        // its stop in advance) comes after the skb it posts.
        let wakes = self.queue.wakes();
        let r = self.ops.start_xmit(skb, xmit_more);
        match r {
            NetdevTx::Ok => self.wakes_at_ok = wakes,
            NetdevTx::Busy => {
                // A false wake: the completion read enough room and woke
                // the queue, but the room was used by the time of this
                // call (the read was stale). Without a wake since the
                // last OK, the driver failed to stop in advance.
                let false_wake = self.queue.wakes() != self.wakes_at_ok;
                if false_wake {
                    self.false_wake_busy += 1;
                } else {
                    self.busy += 1;
                }
                self.env
                    .marker(Marker::XmitBusy, &[u64::from(skb.0), u64::from(false_wake)]);
            }
        }
        r
    }

    /// `qdisc_run`: dequeue up to `batch` skbs at a time and hand them to
    /// the driver with `xmit_more` set on all but the last of each batch.
    /// Stops when the qdisc is empty or the queue stops; a BUSY skb is
    /// requeued at the head.
    pub fn qdisc_run(&mut self, q: &mut Qdisc, batch: u32) -> QdiscRun {
        let run = self.qdisc_run_batches(q, batch);
        // txq_trans_cond_update once per run rather than per skb: the
        // stamp is a clock read (a platform call here, where Linux reads
        // `jiffies`), and the watchdog only needs the time of the last
        // progress, which the end of the run bounds.
        if run.sent > 0 {
            self.queue.trans_update();
        }
        run
    }

    fn qdisc_run_batches(&mut self, q: &mut Qdisc, batch: u32) -> QdiscRun {
        let batch = batch.max(1) as usize;
        let mut run = QdiscRun::default();
        while self.is_up() && !q.is_empty() && !self.queue.xmit_frozen_or_stopped() {
            let n = batch.min(q.len());
            for i in 0..n {
                if self.queue.xmit_frozen_or_stopped() {
                    return run;
                }
                let Some(skb) = q.q.pop_front() else {
                    return run;
                };
                match self.xmit_one(skb, i + 1 < n) {
                    NetdevTx::Ok => run.sent += 1,
                    NetdevTx::Busy => {
                        run.busy += 1;
                        q.q.push_front(skb);
                        return run;
                    }
                }
            }
        }
        run
    }

    /// One `dev_watchdog` tick: calls `ndo_tx_timeout` (and reports it)
    /// if the queue is stopped without progress beyond `watchdog_timeo`.
    /// Returns whether it fired.
    pub fn watchdog_tick(&mut self) -> bool {
        let running = self.is_up() && self.carrier;
        match self.watchdog.check(self.queue, running) {
            Some(stall) => {
                let txq = self.queue.index();
                self.env.marker(Marker::TxTimeout, &[u64::from(txq), stall]);
                // dev_watchdog freezes the queues around ndo_tx_timeout.
                self.queue.freeze();
                self.ops.tx_timeout(txq);
                self.queue.unfreeze();
                true
            }
            None => false,
        }
    }

    /// Start the queue from `ndo_open` (helper for drivers).
    pub fn start_queue(&self) {
        self.queue.start(QueueReason::Lifecycle);
    }
}
