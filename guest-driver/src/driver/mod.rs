//! The nicproof NIC driver, shaped like Linux igc (style.md items 9-11):
//! [`Nic::probe`], `open`, `xmit_frame` (+ `tx_map`, `maybe_stop_tx`),
//! `poll` ([`Nic::clean_tx_irq`], [`Nic::clean_rx_irq`]), `down`/`close`.
//!
//! Portable: the machine is a `&(dyn Platform + Sync)` (PCI config, MMIO through
//! [`regs::Regs`], time, markers), DMA memory a [`dma::DmaPool`], and the
//! stack is the softnet core (skb pool, [`TxQueue`], [`Napi`]). The same
//! code runs in the guest kernel and in host tests against nic-model.
//!
//! The driver-side mutants of `abi::DriverMutant` are runtime switches
//! read from the run configuration; each is a small, named deviation in
//! the step it breaks (grep `Mutant::`).

pub mod dma;
pub mod pci;
pub mod regs;
pub mod ring;
pub mod sync;

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::cell::UnsafeCell;
use core::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

use crate::abi::{
    self, regs as r, DriverMutant as Mutant, Marker, QueueReason, RxDesc, TxDesc, MAX_DESC_PER_PACKET,
    RXD_STAT_DONE, RXD_STAT_ERR, TXD_EOP, TXD_STAT_DONE,
};
use crate::platform::Platform;
use crate::softnet::errno::{ENODEV, ENOMEM};
use crate::softnet::napi::{Napi, NapiHandler};
use crate::softnet::netdev::{is_valid_ether_addr, mac_to_u64, random_ether_addr, AddrAssignType, NetDeviceOps, NetdevTx};
use crate::softnet::queue::TxQueue;
use crate::softnet::skb::SkbId;

use dma::{DmaDir, DmaMapper, DmaPool, DmaRegion};
use pci::PciNic;
use regs::Regs;
use ring::Ring;
use sync::{SkbCell, SpinLock};

/// Default TX ring size (descriptors).
pub const DEFAULT_TX_RING: u32 = 256;
/// Default RX ring size (buffers).
pub const DEFAULT_RX_RING: u32 = 256;
/// Size of one RX buffer: a whole frame fits (abi::MAX_FRAME_LEN).
pub const RX_BUF_LEN: u32 = 2048;
/// Stop the queue when fewer descriptors than a worst-case packet remain.
pub const TX_STOP_THRESH: u32 = abi::TX_STOP_THRESH;
/// Restart it once this many are free again (softnet.md §0).
pub const TX_START_THRESH: u32 = abi::TX_START_THRESH;
/// Bound on the reset wait (e1000e/hermit style: never unbounded).
pub const RESET_TIMEOUT_NS: u64 = 100_000_000;
/// Bound on one EEPROM word read.
const EEPROM_TIMEOUT_NS: u64 = 10_000_000;
/// TX/RX interrupt moderation: frames per interrupt, and a deadline in
/// microseconds so a lone frame still completes in bounded time (mvneta
/// 01b23da3607d).
const COAL_FRAMES: u32 = 32;
const COAL_USECS: u32 = 200;
/// Refilled RX buffers handed back per RX_TAIL write.
const RX_TAIL_BATCH: u32 = 32;

/// Driver settings from the run configuration.
#[derive(Clone, Copy, Debug)]
pub struct DriverConfig {
    /// TX ring size (power of two).
    pub tx_ring: u32,
    /// RX ring size (power of two).
    pub rx_ring: u32,
    /// The driver mutant to run (None = correct driver).
    pub mutant: Mutant,
    /// Seed for the random MAC.
    pub seed: u64,
    /// APIC id that receives the NIC's interrupts.
    pub irq_cpu: u32,
    /// Benchmark mode (knob BENCH): no per-packet markers; the payload
    /// pool is mapped once per open.
    pub bench: bool,
}

impl DriverConfig {
    /// Settings from a RunConfig.
    pub fn from_run(cfg: &abi::RunConfig) -> Self {
        let ring = cfg.knobs[abi::knob::TX_RING] as u32;
        let tx_ring = if ring.is_power_of_two() && (64..=r::MAX_RING).contains(&ring) { ring } else { DEFAULT_TX_RING };
        Self {
            tx_ring,
            rx_ring: DEFAULT_RX_RING,
            mutant: Mutant::from_u32(cfg.driver_mutant).unwrap_or(Mutant::None),
            seed: cfg.seed,
            irq_cpu: 0,
            bench: cfg.knobs[abi::knob::BENCH] != 0,
        }
    }
}

/// Why probe failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeError {
    /// PCI discovery or set-up failed.
    Pci(pci::PciError),
    /// The device did not finish its reset in time.
    ResetTimeout,
    /// An EEPROM read did not complete.
    EepromTimeout,
}

/// One TX ring slot's software state (igc's `tx_buffer`).
#[derive(Clone, Copy, Default)]
struct TxBuf {
    /// Set on the first slot of a packet: the skb to free at completion.
    skb: Option<SkbId>,
    /// Mapped address and length of this slot's fragment (0 = unmapped).
    dma: u64,
    len: u32,
    /// On the first slot: free-running index of the packet's EOP slot.
    eop: u32,
    /// On the first slot: bytes of the packet (for BQL).
    bytes: u32,
}

/// Everything `open` allocates and `stop` frees.
struct Rings {
    tx: Ring<TxDesc>,
    rx: Ring<RxDesc>,
    rx_bufs: DmaRegion,
    /// Slot states. Slots in [tx_cons, tx_prod) belong to reclaim, the
    /// rest to xmit; ownership passes with the index stores
    /// (Release) and loads (Acquire), so no slot is touched by both
    /// sides at once.
    tx_buf: Box<[UnsafeCell<TxBuf>]>,
    /// next_to_use: written by xmit only.
    tx_prod: AtomicU32,
    /// next_to_clean: written by reclaim only.
    tx_cons: AtomicU32,
    /// Last value written to TX_TAIL (xmit side only).
    tx_tail: AtomicU32,
    /// RX state: NAPI side only (atomics so `Rings` can be shared).
    rx_prod: AtomicU32,
    rx_cons: AtomicU32,
    /// Last value written to RX_TAIL.
    rx_tail: AtomicU32,
}

// SAFETY: the UnsafeCell slots follow the ownership protocol above; every
// other field is atomic or read-only after open.
unsafe impl Sync for Rings {}
// SAFETY: the raw pointers inside point at DMA memory the driver owns.
unsafe impl Send for Rings {}

impl Rings {
    /// Free TX descriptors; one slot stays empty so full and empty differ.
    fn tx_free(&self) -> u32 {
        tx_free(self.tx.size, &self.tx_prod, &self.tx_cons)
    }

    /// The slot of free-running index `idx`.
    ///
    /// # Safety
    /// The caller owns the slot under the protocol on `tx_buf`, and holds
    /// no other reference to it.
    #[allow(clippy::mut_from_ref)]
    unsafe fn slot(&self, idx: u32) -> &mut TxBuf {
        // SAFETY: in bounds by the mask; exclusive by the caller's contract.
        unsafe { &mut *self.tx_buf[(idx & (self.tx.size - 1)) as usize].get() }
    }
}

fn tx_free(size: u32, prod: &AtomicU32, cons: &AtomicU32) -> u32 {
    let used = prod.load(Ordering::Acquire).wrapping_sub(cons.load(Ordering::Acquire));
    (size - 1).saturating_sub(used)
}

/// Counters the scenario and tests read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NicStats {
    /// Packets posted to the ring.
    pub tx_packets: u64,
    /// Packets dropped at xmit (map failure, empty or stale skb).
    pub tx_dropped: u64,
    /// Packets completed by the device.
    pub tx_completed: u64,
    /// Packets aborted at stop.
    pub tx_aborted: u64,
    /// Frames delivered to the stack.
    pub rx_packets: u64,
    /// Frames the device flagged as faulty.
    pub rx_errors: u64,
    /// BUSY returns (full ring at entry).
    pub busy: u64,
    /// Doorbells written.
    pub doorbells: u64,
    /// Stale skb ids handed to xmit (only a mutant makes these).
    pub stale_skbs: u64,
    /// Resets that did not finish within the bound.
    pub reset_timeouts: u64,
    /// ndo_tx_timeout calls.
    pub tx_timeouts: u64,
}

/// The live counters behind [`NicStats`] (each side bumps its own).
#[derive(Default)]
struct Counters {
    tx_packets: AtomicU64,
    tx_dropped: AtomicU64,
    tx_completed: AtomicU64,
    tx_aborted: AtomicU64,
    rx_packets: AtomicU64,
    rx_errors: AtomicU64,
    busy: AtomicU64,
    doorbells: AtomicU64,
    stale_skbs: AtomicU64,
    reset_timeouts: AtomicU64,
    tx_timeouts: AtomicU64,
}

fn inc(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// The driver's private data (igc's `adapter`).
///
/// Every method takes `&self`, so the transmit side (xmit, stop, the
/// watchdog) and the NAPI side (reclaim, receive) can run on different
/// CPUs: the TX ring between them is single-producer single-consumer,
/// coordinated only by its two indexes and the queue's stop/wake
/// protocol (softnet.md §1). `open` and `stop` replace the rings; they
/// run on the transmit side with NAPI disabled, so nothing else touches
/// the rings then.
pub struct Nic<'a, 'e> {
    plat: &'a (dyn Platform + Sync),
    regs: Regs<'a>,
    /// What PCI probing found.
    pub pci: PciNic,
    /// The hardware address in use.
    pub mac: [u8; 6],
    /// Whether it came from the EEPROM or was generated.
    pub addr_assign: AddrAssignType,
    cfg: DriverConfig,
    pool: SpinLock<DmaPool>,
    /// Map/unmap ledger.
    pub dma: DmaMapper,
    skbs: &'a SkbCell<'e>,
    txq: &'a TxQueue<'e>,
    napi: &'a Napi,
    /// Some between open and stop; see the type's doc for who may
    /// replace it.
    rings: UnsafeCell<Option<Rings>>,
    /// References the `busy-keeps-ref` mutant wrongly keeps.
    kept: SpinLock<Vec<SkbId>>,
    /// Frames received since probe: the TX sequence each should match.
    rx_seq: AtomicU64,
    /// Frames posted since probe (the skb mark).
    tx_seq: AtomicU64,
    /// Frames the device transmitted before the last reset at stop
    /// (STAT_TX_FRAMES counts from reset): where `rx_seq` resumes.
    wire_base: AtomicU64,
    st: Counters,
    /// Test hook (lost-wake scenario): reclaim this many more times in
    /// the stop window, see [`Nic::inject_reclaim_in_stop_window`].
    stop_window_reclaims: AtomicU32,
    /// `reclaim-in-service-task` mutant: when its service task next runs.
    slow_reclaim_due_ns: AtomicU64,
    /// The causes INT_ENABLE holds while open and no poll is pending
    /// (0 when closed): what the MSI handler masks from and
    /// `napi_complete_done` restores.
    int_enable: AtomicU32,
}

// SAFETY: shared state is atomic, locked, or (rings) replaced only while
// the other side is quiesced, as the type's doc says.
unsafe impl Sync for Nic<'_, '_> {}

impl<'a, 'e> Nic<'a, 'e> {
    /// `igc_probe`: find the NIC, place BAR0, enable memory and bus
    /// mastering, program MSI-X, reset, read and validate the MAC.
    /// Reports ProbeEnter/ProbeExit.
    pub fn probe(
        plat: &'a (dyn Platform + Sync),
        pool: DmaPool,
        cfg: DriverConfig,
        skbs: &'a SkbCell<'e>,
        txq: &'a TxQueue<'e>,
        napi: &'a Napi,
    ) -> Result<Self, ProbeError> {
        plat.marker(Marker::ProbeEnter, &[]);
        let r = Self::probe_inner(plat, pool, cfg, skbs, txq, napi);
        match &r {
            Ok(nic) => plat.marker(Marker::ProbeExit, &[0, mac_to_u64(&nic.mac), nic.addr_assign as u64]),
            Err(_) => plat.marker(Marker::ProbeExit, &[ENODEV as u64, 0, 0]),
        }
        r
    }

    fn probe_inner(
        plat: &'a (dyn Platform + Sync),
        pool: DmaPool,
        cfg: DriverConfig,
        skbs: &'a SkbCell<'e>,
        txq: &'a TxQueue<'e>,
        napi: &'a Napi,
    ) -> Result<Self, ProbeError> {
        let bdf = pci::find_nic(plat).ok_or(ProbeError::Pci(pci::PciError::NotFound))?;
        let pci = pci::setup(plat, bdf).map_err(ProbeError::Pci)?;
        let regs = Regs::new(plat, pci.bar0);
        let mut nic = Self {
            plat,
            regs,
            pci,
            mac: [0; 6],
            addr_assign: AddrAssignType::Perm,
            cfg,
            pool: SpinLock::new(pool),
            dma: DmaMapper::new(),
            skbs,
            txq,
            napi,
            rings: UnsafeCell::new(None),
            kept: SpinLock::new(Vec::new()),
            rx_seq: AtomicU64::new(0),
            tx_seq: AtomicU64::new(0),
            wire_base: AtomicU64::new(0),
            st: Counters::default(),
            stop_window_reclaims: AtomicU32::new(0),
            slow_reclaim_due_ns: AtomicU64::new(0),
            int_enable: AtomicU32::new(0),
        };
        // A known state whatever the firmware (or a previous owner) left.
        if !nic.reset_and_wait() {
            return Err(ProbeError::ResetTimeout);
        }
        pci::setup_msix(plat, &nic.pci, &nic.regs, cfg.irq_cpu);
        let mac = nic.read_mac()?;
        if is_valid_ether_addr(&mac) || cfg.mutant == Mutant::AcceptsInvalidMac {
            nic.mac = mac;
        } else {
            // eth_hw_addr_random: a unicast, locally administered address.
            nic.mac = random_ether_addr(splitmix64(cfg.seed ^ 0x6d61_6321));
            nic.addr_assign = AddrAssignType::Random;
        }
        Ok(nic)
    }

    /// Words 0..3 of the EEPROM hold the MAC, low byte first.
    fn read_mac(&self) -> Result<[u8; 6], ProbeError> {
        let mut mac = [0u8; 6];
        for w in 0..3u32 {
            self.regs.write(r::EEPROM, w << r::EEPROM_ADDR_SHIFT | r::EEPROM_START);
            let deadline = self.plat.now_ns() + EEPROM_TIMEOUT_NS;
            let v = loop {
                let v = self.regs.read(r::EEPROM);
                if v & r::EEPROM_DONE != 0 {
                    break v;
                }
                if self.plat.now_ns() > deadline {
                    return Err(ProbeError::EepromTimeout);
                }
            };
            let word = (v >> r::EEPROM_DATA_SHIFT) as u16;
            mac[2 * w as usize..2 * w as usize + 2].copy_from_slice(&word.to_le_bytes());
        }
        Ok(mac)
    }

    /// Start a reset and poll STATUS until it ends, bounded. Sleeps
    /// between polls so a slow reset costs few register reads.
    fn reset_and_wait(&self) -> bool {
        self.regs.write(r::CTRL, r::CTRL_RESET);
        let start = self.plat.now_ns();
        let mut pause = 2_000u64;
        loop {
            if self.regs.read(r::STATUS) & r::STATUS_RESETTING == 0 {
                return true;
            }
            let now = self.plat.now_ns();
            if now - start > RESET_TIMEOUT_NS {
                inc(&self.st.reset_timeouts, 1);
                return false;
            }
            self.wait_until(now + pause);
            pause = (pause * 2).min(500_000);
        }
    }

    /// Sleep until an interrupt or `deadline_ns`, then run the MSI
    /// handler for what this CPU took ([`Self::handle_irq`]): the kernel
    /// takes interrupts only inside the wait, so this is where they land.
    /// On a CPU the NIC's MSI-X entries do not target, only the wait.
    pub fn wait_until(&self, deadline_ns: u64) {
        self.plat.wait_until(deadline_ns);
        if self.plat.cpu_id() == self.cfg.irq_cpu {
            self.handle_irq();
        }
    }

    /// The mutant this driver runs.
    pub fn mutant(&self) -> Mutant {
        self.cfg.mutant
    }

    /// The rings, if open.
    fn rings(&self) -> Option<&Rings> {
        // SAFETY: only up()/down() replace the Option, and they run when
        // no other user of the rings is active (see the type's doc).
        unsafe { (*self.rings.get()).as_ref() }
    }

    /// Replace the rings (open/stop only).
    ///
    /// # Safety
    /// No xmit, reclaim or receive may run concurrently, and no
    /// reference from [`Self::rings`] may be alive.
    unsafe fn set_rings(&self, r: Option<Rings>) -> Option<Rings> {
        // SAFETY: exclusive by the caller's contract.
        unsafe { core::mem::replace(&mut *self.rings.get(), r) }
    }

    /// Whether the rings are allocated (between open and stop).
    pub fn is_open(&self) -> bool {
        self.rings().is_some()
    }

    /// Free TX descriptors (0 when closed).
    pub fn tx_free(&self) -> u32 {
        self.rings().map_or(0, Rings::tx_free)
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> NicStats {
        let c = &self.st;
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        NicStats {
            tx_packets: g(&c.tx_packets),
            tx_dropped: g(&c.tx_dropped),
            tx_completed: g(&c.tx_completed),
            tx_aborted: g(&c.tx_aborted),
            rx_packets: g(&c.rx_packets),
            rx_errors: g(&c.rx_errors),
            busy: g(&c.busy),
            doorbells: g(&c.doorbells),
            stale_skbs: g(&c.stale_skbs),
            reset_timeouts: g(&c.reset_timeouts),
            tx_timeouts: g(&c.tx_timeouts),
        }
    }

    /// Deferred work a stopped driver must have cancelled. The correct
    /// driver has none after stop; the `doorbell-after-stop` mutant still
    /// runs a batch-flush that writes the TX doorbell (the host's
    /// doorbell-after-stop oracle catches it).
    pub fn run_deferred_work(&self) {
        if self.cfg.mutant == Mutant::DoorbellAfterStop && !self.is_open() {
            self.regs.write(r::TX_TAIL, self.stats().doorbells as u32);
        }
    }

    /// DMA pages still allocated (rings, buffers).
    pub fn dma_pages_used(&self) -> usize {
        self.pool.lock().pages_used()
    }

    /// BAR0 registers (for tests and the scenario's statistics).
    pub fn regs(&self) -> &Regs<'a> {
        &self.regs
    }

    /// `igc_setup_all_tx/rx_resources` + `igc_configure`: allocate and
    /// map rings and buffers, program the device, post RX buffers.
    fn setup_rings(&self) -> Result<Rings, i32> {
        let (ts, rs) = (self.cfg.tx_ring, self.cfg.rx_ring);
        let desc = core::mem::size_of::<TxDesc>() as u64;
        let mut pool = self.pool.lock();
        let tx_mem = pool.alloc(u64::from(ts) * desc).ok_or(ENOMEM)?;
        let Some(rx_mem) = pool.alloc(u64::from(rs) * desc) else {
            pool.free(tx_mem);
            return Err(ENOMEM);
        };
        let Some(rx_bufs) = pool.alloc(u64::from(rs) * u64::from(RX_BUF_LEN)) else {
            pool.free(tx_mem);
            pool.free(rx_mem);
            return Err(ENOMEM);
        };
        // The rings are mapped whole; RX buffers as one page_pool-like
        // area, mapped once per open rather than per frame.
        let maps = [
            (tx_mem.phys, tx_mem.len, DmaDir::Bidirectional),
            (rx_mem.phys, rx_mem.len, DmaDir::Bidirectional),
            (rx_bufs.phys, rx_bufs.len, DmaDir::FromDevice),
        ];
        for (i, &(a, l, d)) in maps.iter().enumerate() {
            if self.dma.map(self.plat, a, l, d).is_err() {
                maps[..i].iter().for_each(|&(a, l, _)| self.dma.unmap(self.plat, a, l));
                [tx_mem, rx_mem, rx_bufs].into_iter().for_each(|m| pool.free(m));
                return Err(ENOMEM);
            }
        }
        if self.cfg.bench {
            self.dma.set_premapped(self.plat, Some((abi::layout::PAYLOAD_BASE, abi::layout::PAYLOAD_SIZE)));
        }
        let rings = Rings {
            tx: Ring::new(tx_mem, ts),
            rx: Ring::new(rx_mem, rs),
            rx_bufs,
            tx_buf: (0..ts).map(|_| UnsafeCell::new(TxBuf::default())).collect(),
            tx_prod: AtomicU32::new(0),
            tx_cons: AtomicU32::new(0),
            tx_tail: AtomicU32::new(0),
            rx_prod: AtomicU32::new(rs - 1),
            rx_cons: AtomicU32::new(0),
            rx_tail: AtomicU32::new(rs - 1),
        };
        for i in 0..rs - 1 {
            rings.rx.write(i, rx_desc(&rings, i));
        }
        let w = |off, v| self.regs.write(off, v);
        w(r::TX_BASE_LO, tx_mem.phys as u32);
        w(r::TX_BASE_HI, (tx_mem.phys >> 32) as u32);
        w(r::TX_SIZE, ts);
        w(r::RX_BASE_LO, rx_mem.phys as u32);
        w(r::RX_BASE_HI, (rx_mem.phys >> 32) as u32);
        w(r::RX_SIZE, rs);
        w(r::COAL_TX_FRAMES, COAL_FRAMES);
        // The mutant leaves TX moderation without its deadline.
        w(r::COAL_TX_USECS, if self.cfg.mutant == Mutant::CoalFramesOnly { 0 } else { COAL_USECS });
        w(r::COAL_RX_FRAMES, COAL_FRAMES);
        w(r::COAL_RX_USECS, COAL_USECS);
        Ok(rings)
    }

    /// Give back everything `setup_rings` took. `unmap` false is the
    /// `no-unmap-at-stop` mutant.
    fn free_rings(&self, rg: Rings, unmap: bool) {
        if unmap {
            self.dma.set_premapped(self.plat, None);
        }
        for m in [rg.tx.mem, rg.rx.mem, rg.rx_bufs] {
            if unmap {
                self.dma.unmap(self.plat, m.phys, m.len);
            }
            self.pool.lock().free(m);
        }
    }

    /// `igc_xmit_frame`: one skb, then a [`Marker::TxRing`] snapshot if
    /// this call ends the batch (the stack will not call again before a
    /// doorbell is due: no xmit_more, BUSY, or a stopped queue), so the
    /// host can check that every posted descriptor got its doorbell.
    fn xmit_frame(&self, skb: SkbId, xmit_more: bool) -> NetdevTx {
        let ret = self.xmit_frame_ring(skb, xmit_more);
        if !xmit_more || ret == NetdevTx::Busy || self.txq.xmit_stopped() {
            self.report_tx_ring(false);
        }
        ret
    }

    /// The TX ring and its BQL counters for the host's doorbell-pending
    /// and bql-balance oracles (`Marker::TxRing`). Not in BENCH mode: a
    /// marker is a VM exit.
    fn report_tx_ring(&self, at_stop: bool) {
        let Some(rg) = self.rings() else { return };
        if self.cfg.bench {
            return;
        }
        let d = self.txq.dql().snapshot();
        let mut flags = if at_stop { abi::TX_RING_AT_STOP } else { 0 };
        if self.txq.bql_enabled() {
            flags |= abi::TX_RING_BQL;
        }
        let (prod, cons) = (rg.tx_prod.load(Ordering::Acquire), rg.tx_cons.load(Ordering::Acquire));
        self.plat.marker(
            Marker::TxRing,
            &[u64::from(prod), u64::from(cons), u64::from(d.num_queued), u64::from(d.num_completed), flags],
        );
    }

    /// `igc_tx_map` + `igc_xmit_frame_ring`. Transmit side only.
    fn xmit_frame_ring(&self, skb: SkbId, xmit_more: bool) -> NetdevTx {
        if self.cfg.mutant == Mutant::ReclaimOnXmit {
            self.clean_tx_irq();
        }
        let Some(rg) = self.rings() else {
            // Not open: the stack never calls us then; drop to be safe.
            return self.drop_skb(skb, xmit_more);
        };
        let got = self.skbs.borrow().get(skb).map(|s| (s.nr_descs(), s.len(), s.head_len()));
        let Ok((nr, bytes, head_len)) = got else {
            // A freed skb came back: only a driver that freed on BUSY
            // (busy-frees) causes this. Report, never touch it.
            inc(&self.st.stale_skbs, 1);
            self.plat.marker_text(Marker::OracleFail, &[u64::from(skb.0)], "busy-ownership: xmit got a freed skb");
            return NetdevTx::Ok;
        };
        if nr == 0 || nr > MAX_DESC_PER_PACKET || bytes > abi::MAX_FRAME_LEN {
            return self.drop_skb(skb, xmit_more);
        }
        // Full ring at entry: only after a false wake (allowed, rare).
        // BUSY keeps no reference and frees nothing.
        if rg.tx_free() < nr {
            inc(&self.st.busy, 1);
            if !self.txq.stopped() {
                self.txq.stop(QueueReason::RingLow);
            }
            match self.cfg.mutant {
                Mutant::BusyFrees => {
                    let _ = self.skbs.borrow_mut().free(skb);
                }
                Mutant::BusyKeepsRef => self.kept.lock().push(skb),
                _ => {}
            }
            // Packets posted earlier in this xmit_more batch must still
            // reach the device: the batch ends here.
            self.ring_tx_doorbell();
            return NetdevTx::Busy;
        }
        // The hardware wants our address as the source (as some MACs
        // do without insertion support): writing the head of a clone
        // needs a private copy first (skb_cow_head, d4ca73591916).
        if head_len >= 12 {
            let mut pool = self.skbs.borrow_mut();
            let head = if self.cfg.mutant == Mutant::WritesClonedHead {
                pool.head_mut_unchecked(skb)
            } else {
                match pool.cow_head(skb) {
                    Ok(()) => pool.head_mut(skb),
                    Err(e) => Err(e),
                }
            };
            match head {
                Ok(h) => h[6..12].copy_from_slice(&self.mac),
                Err(_) => {
                    drop(pool);
                    return self.drop_skb(skb, xmit_more);
                }
            }
        }
        let mut frags = [(0u64, 0u32); MAX_DESC_PER_PACKET as usize];
        let mut n = 0;
        {
            let pool = self.skbs.borrow();
            let Ok(s) = pool.get(skb) else { return NetdevTx::Ok };
            if s.head_len() != 0 {
                frags[0] = (s.head_addr(), s.head_len());
                n = 1;
            }
            for f in s.frags() {
                frags[n] = (f.addr, f.len);
                n += 1;
            }
        }
        // Map everything before touching the ring, so a failure needs
        // no descriptor rollback.
        for i in 0..n {
            let (a, l) = frags[i];
            match self.dma.map(self.plat, a, u64::from(l), DmaDir::ToDevice) {
                Ok(bus) => frags[i].0 = bus,
                Err(_) => {
                    frags[..i].iter().for_each(|&(a, l)| self.dma.unmap(self.plat, a, u64::from(l)));
                    return self.drop_skb(skb, xmit_more);
                }
            }
        }
        let prod = rg.tx_prod.load(Ordering::Relaxed);
        for (i, &(addr, len)) in frags[..n].iter().enumerate() {
            let idx = prod.wrapping_add(i as u32);
            let last = i + 1 == n;
            rg.tx.write(idx, TxDesc { addr, len: len as u16, flags: if last { TXD_EOP } else { 0 }, ..TxDesc::default() });
            // SAFETY: slots from prod on belong to xmit until prod is published.
            *unsafe { rg.slot(idx) } = TxBuf { skb: None, dma: addr, len, eop: 0, bytes: 0 };
        }
        // SAFETY: as above.
        let first = unsafe { rg.slot(prod) };
        first.skb = Some(skb);
        first.eop = prod.wrapping_add(n as u32 - 1);
        first.bytes = bytes;
        let seq = self.tx_seq.fetch_add(1, Ordering::Relaxed);
        let _ = self.skbs.borrow_mut().set_mark(skb, seq);
        inc(&self.st.tx_packets, 1);
        // Publish the slots, and store the index before the stop macro
        // reads free space (it fences against reclaim's index store).
        rg.tx_prod.store(prod.wrapping_add(n as u32), Ordering::Release);
        if self.cfg.mutant != Mutant::NoStopInAdvance {
            self.maybe_stop_tx(rg);
        }
        // maybe_stop before the BQL hook (fbnic's order): with
        // xmit_more, ring only if the queue stopped.
        let ring_now = self.txq.sent_queue_more(bytes, xmit_more).unwrap_or(true);
        if ring_now {
            self.ring_tx_doorbell();
        }
        NetdevTx::Ok
    }

    /// `igc_maybe_stop_tx`: stop while a worst-case packet still fits.
    fn maybe_stop_tx(&self, rg: &Rings) -> i32 {
        let size = rg.tx.size;
        let first = core::cell::Cell::new(true);
        let seen = core::cell::Cell::new(None);
        let get_desc = || {
            let free = tx_free(size, &rg.tx_prod, &rg.tx_cons);
            if seen.get().is_none() {
                seen.set(Some(free));
            }
            // The lost-wake window, forced: the stop macro has read a
            // low free count and not yet set the stop bit when a NAPI
            // poll (as an interrupt would run it here) reclaims and sees
            // a running queue, so only the re-check can restart it.
            if first.replace(false) && free < TX_STOP_THRESH && self.take_stop_window_reclaim() {
                self.clean_tx_irq();
            }
            free
        };
        let stop_thrs = if self.cfg.mutant == Mutant::StopEarly { TX_START_THRESH + 1 } else { TX_STOP_THRESH };
        let r = self.txq.maybe_stop(get_desc, stop_thrs, TX_START_THRESH);
        if r == 0 && !self.cfg.bench {
            // Stopped: the free count the stop decision read.
            self.plat.marker(Marker::QueueFree, &[0, u64::from(seen.get().unwrap_or(0))]);
        }
        r
    }

    /// Test hook for the lost-wake scenario: the next `times` stops of
    /// the queue run a reclaim between reading the free count and setting
    /// the stop bit (transmit and NAPI on one CPU, so this is the only
    /// way to land a completion in that window deterministically).
    pub fn inject_reclaim_in_stop_window(&self, times: u32) {
        self.stop_window_reclaims.store(times, Ordering::Relaxed);
    }

    fn take_stop_window_reclaim(&self) -> bool {
        self.stop_window_reclaims.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1)).is_ok()
    }

    /// Write TX_TAIL if descriptors were posted since the last doorbell.
    fn ring_tx_doorbell(&self) {
        let Some(rg) = self.rings() else { return };
        let prod = rg.tx_prod.load(Ordering::Relaxed);
        if prod == rg.tx_tail.load(Ordering::Relaxed) {
            return;
        }
        // wmb: descriptors reach memory before the device sees the tail.
        fence(Ordering::Release);
        rg.tx_tail.store(prod, Ordering::Relaxed);
        self.regs.write(r::TX_TAIL, prod);
        inc(&self.st.doorbells, 1);
    }

    /// Drop: free the skb and return OK (ibmvnic 7f5b030830fe); the last
    /// skb of a batch still rings for the ones before it (bnxt e8d8c5d80f5e).
    fn drop_skb(&self, skb: SkbId, xmit_more: bool) -> NetdevTx {
        let _ = self.skbs.borrow_mut().free(skb);
        inc(&self.st.tx_dropped, 1);
        // The mutant returns as if a dropped skb had nothing to flush.
        if !xmit_more && self.cfg.mutant != Mutant::DropSkipsDoorbell {
            self.ring_tx_doorbell();
        }
        NetdevTx::Ok
    }

    /// `igc_clean_tx_irq`: reclaim completed packets (unmap, free, BQL
    /// completed), store the consumer index, then completed_wake.
    /// NAPI side only. Returns packets reclaimed.
    pub fn clean_tx_irq(&self) -> u32 {
        let Some(rg) = self.rings() else { return 0 };
        let prod = rg.tx_prod.load(Ordering::Acquire);
        let mut cons = rg.tx_cons.load(Ordering::Relaxed);
        let (mut pkts, mut bytes) = (0u32, 0u32);
        while cons != prod {
            // SAFETY: [cons, prod) belongs to reclaim (prod loaded Acquire).
            let first = *unsafe { rg.slot(cons) };
            let Some(skb) = first.skb else {
                // Not the start of a packet: ring state is corrupt. Stop
                // reclaiming rather than free the wrong thing.
                break;
            };
            if ring::tx_status(&rg.tx, first.eop) & TXD_STAT_DONE == 0 {
                break;
            }
            // dma_rmb: read the rest only after seeing DONE.
            fence(Ordering::Acquire);
            let mut i = cons;
            loop {
                // SAFETY: still inside [cons, prod).
                let b = unsafe { rg.slot(i) };
                self.dma.unmap(self.plat, b.dma, u64::from(b.len));
                *b = TxBuf::default();
                if i == first.eop {
                    break;
                }
                i = i.wrapping_add(1);
            }
            let _ = self.skbs.borrow_mut().free(skb);
            pkts += 1;
            bytes += first.bytes;
            cons = first.eop.wrapping_add(1);
        }
        if pkts == 0 {
            return 0;
        }
        inc(&self.st.tx_completed, u64::from(pkts));
        let size = rg.tx.size;
        let late = self.cfg.mutant == Mutant::ConsIndexLate;
        // The index goes out before completed_wake's fence (which pairs
        // with the one in try_stop); the mutant stores it after.
        if !late {
            rg.tx_cons.store(cons, Ordering::Release);
        }
        let (p, c) = (&rg.tx_prod, &rg.tx_cons);
        // The mutant counts completions 4 bytes (an FCS) short per
        // packet: a length taken elsewhere than the one xmit reported.
        let bql_bytes = if self.cfg.mutant == Mutant::BqlMiscount { bytes.saturating_sub(4 * pkts) } else { bytes };
        let start_thrs = if self.cfg.mutant == Mutant::WakeEarly { TX_START_THRESH - 1 } else { TX_START_THRESH };
        let seen = core::cell::Cell::new(0);
        let get_desc = || {
            let free = tx_free(size, p, c);
            seen.set(free);
            free
        };
        let woke = self.txq.completed_wake(pkts, bql_bytes, get_desc, start_thrs);
        if woke == Ok(0) && !self.cfg.bench {
            // Woken: the free count the wake decision read.
            self.plat.marker(Marker::QueueFree, &[1, u64::from(seen.get())]);
        }
        if late {
            rg.tx_cons.store(cons, Ordering::Release);
        }
        if woke.is_err() {
            self.plat.marker_text(Marker::OracleFail, &[u64::from(bytes)], "bql: completed more than queued");
        }
        pkts
    }

    /// The driver's service timer (igc's watchdog task), run from the
    /// scenario's timer tick on the CPU that runs NAPI. The correct driver
    /// does nothing here: its reclaim runs from the completion interrupt's
    /// poll. The `reclaim-in-service-task` mutant reclaims only here.
    pub fn service_timer(&self) {
        if self.cfg.mutant == Mutant::ReclaimInServiceTask {
            self.clean_tx_on_slow_timer();
        }
    }

    /// The `reclaim-in-service-task` mutant's reclaim: only from a
    /// periodic service task (every 2 s, a timer independent of
    /// interrupts), never from the completion interrupt's poll, so
    /// completions reach BQL up to two seconds late.
    fn clean_tx_on_slow_timer(&self) {
        const SERVICE_PERIOD_NS: u64 = 2_000_000_000;
        let now = self.plat.now_ns();
        let due = self.slow_reclaim_due_ns.load(Ordering::Relaxed);
        if due == 0 {
            self.slow_reclaim_due_ns.store(now + SERVICE_PERIOD_NS, Ordering::Relaxed);
        } else if now >= due {
            self.slow_reclaim_due_ns.store(0, Ordering::Relaxed);
            self.clean_tx_irq();
        }
    }

    /// `igc_clean_rx_irq`: deliver up to `budget` frames, refill. NAPI
    /// side only.
    pub fn clean_rx_irq(&self, budget: u32) -> u32 {
        let Some(rg) = self.rings() else { return 0 };
        let (mut prod, mut cons) = (rg.rx_prod.load(Ordering::Relaxed), rg.rx_cons.load(Ordering::Relaxed));
        let mut done = 0;
        while done < budget {
            let (status, len) = ring::rx_status(&rg.rx, cons);
            if status & RXD_STAT_DONE == 0 {
                break;
            }
            fence(Ordering::Acquire);
            let addr = rx_buf_addr(rg, cons);
            if status & RXD_STAT_ERR == 0 {
                // Deliver: the host compares these bytes with the frame
                // it transmitted as number `rx_seq`, during this exit.
                let seq = self.rx_seq.fetch_add(1, Ordering::Relaxed);
                if !self.cfg.bench {
                    self.plat.marker(Marker::RxDeliver, &[addr, u64::from(len), seq]);
                }
                inc(&self.st.rx_packets, 1);
            } else {
                inc(&self.st.rx_errors, 1);
            }
            // The consumed slot's neighbour gets its buffer back.
            rg.rx.write(prod, rx_desc(rg, prod));
            prod = prod.wrapping_add(1);
            cons = cons.wrapping_add(1);
            done += 1;
        }
        rg.rx_prod.store(prod, Ordering::Relaxed);
        rg.rx_cons.store(cons, Ordering::Relaxed);
        // Give buffers back in groups (igc's IGC_RX_BUFFER_WRITE): one
        // register exit per RX_TAIL_BATCH frames, while the device still
        // holds most of the ring.
        if prod.wrapping_sub(rg.rx_tail.load(Ordering::Relaxed)) >= RX_TAIL_BATCH {
            fence(Ordering::Release);
            rg.rx_tail.store(prod, Ordering::Relaxed);
            self.regs.write(r::RX_TAIL, prod);
        }
        done
    }

    /// Acknowledge the interrupt causes (W1C).
    fn ack_irq(&self) {
        let cause = self.regs.read(r::INT_CAUSE);
        if cause != 0 {
            self.regs.write(r::INT_CAUSE, cause);
        }
    }

    /// The NIC's MSI-X handler (igc_msix_ring), for every vector that
    /// fired since the last look: TX or RX schedules NAPI, which masks
    /// both causes (igc's auto-mask) and acknowledges them; completions
    /// after the acknowledge latch again and fire when the poll, done
    /// under budget, re-enables the causes (`NapiSide::irq_enable`). The
    /// misc vector (error latch, reset done) needs no work here: the
    /// paths that wait for those read STATUS. Runs where the interrupt
    /// was taken, on the CPU its MSI-X entry targets: the kernel takes
    /// interrupts only inside the platform's wait, so calling this after
    /// each wait handles every interrupt where it landed. Returns whether
    /// it scheduled a poll. A disabled NAPI (stop under way or done)
    /// refuses the schedule and the handler touches nothing.
    pub fn handle_irq(&self) -> bool {
        let base = pci::NIC_VECTOR_BASE;
        let mut ring = self.plat.take_irq(base + abi::pci::MSIX_TX as u8);
        ring |= self.plat.take_irq(base + abi::pci::MSIX_RX as u8);
        let _ = self.plat.take_irq(base + abi::pci::MSIX_MISC as u8);
        if ring && self.cfg.mutant == Mutant::IrqMaskUnconditional {
            self.regs.write(r::INT_ENABLE, r::INT_ERR);
            self.regs.write(r::INT_CAUSE, r::INT_TX | r::INT_RX);
            return self.napi.schedule();
        }
        if !ring || !self.napi.schedule() {
            return false;
        }
        let ie = self.int_enable.load(Ordering::Acquire) & !(r::INT_TX | r::INT_RX);
        self.regs.write(r::INT_ENABLE, ie);
        self.regs.write(r::INT_CAUSE, r::INT_TX | r::INT_RX);
        true
    }

    /// `net_rx_action` for this driver's NAPI: up to `max_rounds` polls
    /// of the weight while the context stays scheduled (the caller owns
    /// SCHED: the MSI handler set it, or an earlier poll used its whole
    /// budget). Each poll that ends in `napi_complete_done` is reported
    /// to the host ([`Marker::NapiComplete`], not in BENCH mode), which
    /// checks that the causes are enabled again by then. Returns RX
    /// frames processed.
    pub fn napi_poll(&self, max_rounds: u32) -> u32 {
        let mut rx = 0;
        for _ in 0..max_rounds {
            let w = self.napi.weight();
            let res = self.napi.poll(w, &mut NapiSide(self));
            rx += res.rx_done;
            if res.completed && !self.cfg.bench {
                self.plat.marker(Marker::NapiComplete, &[u64::from(res.rx_done), u64::from(w)]);
            }
            if !res.repoll {
                break;
            }
        }
        rx
    }

    /// The interrupt exit path on a CPU that runs NAPI: the MSI handler
    /// for whatever fired, then the NET_RX softirq if a poll is
    /// scheduled (one scheduled earlier and left over budget too).
    /// Returns RX frames processed.
    pub fn run_irq_work(&self) -> u32 {
        self.handle_irq();
        if self.napi.is_scheduled() {
            self.napi_poll(4)
        } else {
            0
        }
    }

    /// `igc_up`: rings, NAPI, interrupts, enable, start the queue.
    /// Transmit side, with NAPI still disabled.
    fn up(&self) -> Result<(), i32> {
        let rings = self.setup_rings()?;
        let rx_tail = rings.rx_prod.load(Ordering::Relaxed);
        // SAFETY: NAPI is disabled and the queue stopped: nobody else
        // looks at the rings.
        unsafe { self.set_rings(Some(rings)) };
        self.napi.enable();
        if !self.cfg.bench {
            self.plat.marker(Marker::NapiDisable, &[0]);
        }
        self.ack_irq();
        let causes = r::INT_TX | r::INT_RX | r::INT_ERR;
        self.int_enable.store(causes, Ordering::Release);
        self.regs.write(r::INT_ENABLE, causes);
        self.regs.write(r::CTRL, r::CTRL_TX_EN | r::CTRL_RX_EN);
        fence(Ordering::Release);
        self.regs.write(r::RX_TAIL, rx_tail);
        self.txq.start(QueueReason::Lifecycle);
        Ok(())
    }

    /// `igc_down` + `igc_free_all_tx/rx_resources`. Transmit side.
    /// `napi_here`: NAPI runs on this CPU, so a poll an interrupt
    /// scheduled and that has not run yet is ours to run (in Linux the
    /// softirq would run it while napi_disable sleeps).
    fn down(&self, napi_here: bool) {
        let m = self.cfg.mutant;
        // netif_tx_disable: the stack calls no xmit from here.
        self.txq.stop(QueueReason::Lifecycle);
        // napi_disable: no poll runs after this (bounded: a running poll
        // on another CPU finishes quickly).
        let deadline = self.plat.now_ns() + RESET_TIMEOUT_NS;
        while !self.napi.try_disable() && self.plat.now_ns() < deadline {
            if napi_here {
                // Sees DISABLE pending and gives SCHED up.
                self.napi_poll(1);
            } else {
                self.plat.wait_until(self.plat.now_ns() + 10_000);
            }
        }
        // From here an interrupt handler must leave the device alone (the
        // host's irq-after-napi-disable; the irq_in_window knob can force
        // interrupts counted from this marker).
        if !self.cfg.bench {
            self.plat.marker(Marker::NapiDisable, &[u64::from(self.napi.is_disabled())]);
        }
        // With xmit and NAPI quiet, the ring and BQL agree with each other.
        self.report_tx_ring(true);
        self.int_enable.store(0, Ordering::Release);
        if m != Mutant::NoDisableAtStop {
            self.regs.write(r::INT_ENABLE, 0);
            self.regs.write(r::CTRL, 0);
            // Frames the device sent this period but we never received
            // are dropped with the RX ring: the next delivered frame is
            // the device's next transmitted one (the host's content check
            // pairs them by this number). The reset below clears the count.
            let sent = u64::from(self.regs.read(r::STAT_TX_FRAMES));
            let base = self.wire_base.fetch_add(sent, Ordering::Relaxed) + sent;
            self.rx_seq.store(base, Ordering::Relaxed);
            // The reset drops fetched-but-unfinished work; wait for it.
            if m == Mutant::NoResetPoll {
                self.regs.write(r::CTRL, r::CTRL_RESET);
            } else {
                self.reset_and_wait();
            }
        }
        // Abort in-flight packets: unmap and free (macb 27f575836cfe).
        let unmap = m != Mutant::NoUnmapAtStop;
        if let Some(rg) = self.rings() {
            let prod = rg.tx_prod.load(Ordering::Acquire);
            let mut i = rg.tx_cons.load(Ordering::Acquire);
            while i != prod {
                // SAFETY: NAPI is disabled, so reclaim's slots are ours.
                let b = unsafe { rg.slot(i) };
                if unmap && b.len != 0 {
                    self.dma.unmap(self.plat, b.dma, u64::from(b.len));
                }
                if let Some(skb) = b.skb {
                    let _ = self.skbs.borrow_mut().free(skb);
                    inc(&self.st.tx_aborted, 1);
                }
                *b = TxBuf::default();
                i = i.wrapping_add(1);
            }
            rg.tx_cons.store(prod, Ordering::Release);
        }
        // The ring is empty now, so BQL may be reset.
        if self.txq.reset_queue(0).is_err() {
            self.plat.marker_text(Marker::OracleFail, &[], "bql: reset with packets in flight");
        }
        let kept = core::mem::take(&mut *self.kept.lock());
        for skb in kept {
            let _ = self.skbs.borrow_mut().free(skb);
        }
        // SAFETY: xmit is not running (we are its side) and NAPI is
        // disabled; the reference from rings() above is no longer used.
        if let Some(rg) = unsafe { self.set_rings(None) } {
            self.free_rings(rg, unmap);
        }
    }

    /// `ndo_stop` body (shared by the trait impls): reports its entry
    /// ([`Marker::NdoStop`], so the host counts the driver's own stops,
    /// not only the core's calls), then `down`. The `stop-twice` mutant
    /// closes again, as a second teardown path would.
    pub fn ndo_stop(&self, napi_here: bool) {
        let times = if self.cfg.mutant == Mutant::StopTwice { 2 } else { 1 };
        for _ in 0..times {
            self.plat.marker(Marker::NdoStop, &[]);
            self.down(napi_here);
        }
    }

    /// `ndo_open` body (shared by the trait impls).
    pub fn ndo_open(&self) -> Result<(), i32> {
        // dev_open validated the address already; the driver checks
        // again (the accepts-invalid-mac mutant skips both).
        if !is_valid_ether_addr(&self.mac) && self.cfg.mutant != Mutant::AcceptsInvalidMac {
            return Err(crate::softnet::errno::EADDRNOTAVAIL);
        }
        self.up()
    }

    /// First recover a lost completion interrupt the way mlx5e does (poll
    /// the ring ourselves, safe only with NAPI on this CPU); if nothing
    /// completed, the device is stuck: reset it and start again, as bnxt
    /// does (in-flight packets are aborted and freed).
    pub fn ndo_tx_timeout(&self, napi_here: bool) {
        inc(&self.st.tx_timeouts, 1);
        let reclaimed = if napi_here { self.clean_tx_irq() } else { 0 };
        if reclaimed == 0 && self.is_open() {
            self.down(napi_here);
            if self.up().is_err() {
                self.plat.marker_text(Marker::OracleFail, &[], "tx_timeout: could not reopen after reset");
            }
        } else if self.tx_free() >= TX_START_THRESH && self.txq.stopped() {
            self.txq.wake(QueueReason::Timeout);
        }
    }
}

fn rx_buf_addr(rg: &Rings, idx: u32) -> u64 {
    rg.rx_bufs.phys + u64::from(idx & (rg.rx.size - 1)) * u64::from(RX_BUF_LEN)
}

fn rx_desc(rg: &Rings, idx: u32) -> RxDesc {
    RxDesc { addr: rx_buf_addr(rg, idx), buf_len: RX_BUF_LEN as u16, ..RxDesc::default() }
}

/// The shared seeded generator (the seed's random MAC, scenario choices).
pub use crate::abi::splitmix64;

/// The single-CPU shape: the netdev owns the driver, and NAPI runs on the
/// same CPU as xmit.
impl NetDeviceOps for Nic<'_, '_> {
    /// `__igc_open`.
    fn open(&mut self) -> Result<(), i32> {
        self.ndo_open()
    }

    /// `__igc_close`.
    fn stop(&mut self) {
        self.ndo_stop(true);
    }

    fn start_xmit(&mut self, skb: SkbId, xmit_more: bool) -> NetdevTx {
        self.xmit_frame(skb, xmit_more)
    }

    fn tx_timeout(&mut self, _txq: u32) {
        self.ndo_tx_timeout(true);
    }
}

impl NapiHandler for Nic<'_, '_> {
    fn clean_tx(&mut self) {
        NapiSide(self).clean_tx()
    }

    fn clean_rx(&mut self, budget: u32) -> u32 {
        self.clean_rx_irq(budget)
    }

    fn irq_enable(&mut self) {
        NapiSide(self).irq_enable()
    }
}

/// The driver as the netdev's ops through a shared reference, so that
/// [`NapiSide`] can poll the same driver (on this CPU or another).
pub struct NicOps<'n, 'a, 'e> {
    /// The driver.
    pub nic: &'n Nic<'a, 'e>,
    /// Whether NAPI runs on the transmit CPU (then tx_timeout may reclaim
    /// itself; otherwise reclaim belongs to the other CPU).
    pub napi_here: bool,
}

impl NetDeviceOps for NicOps<'_, '_, '_> {
    fn open(&mut self) -> Result<(), i32> {
        self.nic.ndo_open()
    }

    fn stop(&mut self) {
        self.nic.ndo_stop(self.napi_here);
    }

    fn start_xmit(&mut self, skb: SkbId, xmit_more: bool) -> NetdevTx {
        self.nic.xmit_frame(skb, xmit_more)
    }

    fn tx_timeout(&mut self, _txq: u32) {
        self.nic.ndo_tx_timeout(self.napi_here);
    }
}

/// The NAPI side of the driver, for a poll on any CPU.
pub struct NapiSide<'n, 'a, 'e>(pub &'n Nic<'a, 'e>);

impl NapiHandler for NapiSide<'_, '_, '_> {
    fn clean_tx(&mut self) {
        // No INT_CAUSE acknowledge here: the device sends an MSI for every
        // cause it raises, latched or not, and two register exits per
        // poll would cost more than the whole reclaim.
        match self.0.cfg.mutant {
            Mutant::ReclaimOnXmit => {}
            // Its reclaim runs from the service timer instead
            // (`Nic::service_timer`).
            Mutant::ReclaimInServiceTask => {}
            _ => {
                self.0.clean_tx_irq();
            }
        }
    }

    fn clean_rx(&mut self, budget: u32) -> u32 {
        self.0.clean_rx_irq(budget)
    }

    fn irq_enable(&mut self) {
        // Undo the MSI handler's mask (igc_ring_irq_enable). Causes that
        // latched meanwhile fire at once. The mutant forgets: after its
        // first poll the driver takes no more TX or RX interrupts.
        if self.0.cfg.mutant != Mutant::IrqNotReenabled {
            self.0.regs.write(r::INT_ENABLE, self.0.int_enable.load(Ordering::Acquire));
        }
    }
}
