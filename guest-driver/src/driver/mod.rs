//! The nicproof NIC driver, shaped like Linux igc (style.md items 9-11):
//! [`Nic::probe`], `open`, `xmit_frame` (+ `tx_map`, `maybe_stop_tx`),
//! `poll` ([`Nic::clean_tx_irq`], [`Nic::clean_rx_irq`]), `down`/`close`.
//!
//! Portable: the machine is a `&dyn Platform` (PCI config, MMIO through
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

use alloc::vec::Vec;
use core::cell::RefCell;
use core::sync::atomic::{fence, AtomicU32, Ordering};

use crate::abi::{
    self, regs as r, DriverMutant as Mutant, Marker, QueueReason, RxDesc, TxDesc, MAX_DESC_PER_PACKET,
    MAX_SKB_FRAGS, RXD_STAT_DONE, RXD_STAT_ERR, TXD_EOP, TXD_STAT_DONE,
};
use crate::platform::Platform;
use crate::softnet::errno::{ENODEV, ENOMEM};
use crate::softnet::napi::{Napi, NapiHandler};
use crate::softnet::netdev::{is_valid_ether_addr, mac_to_u64, random_ether_addr, AddrAssignType, NetDeviceOps, NetdevTx};
use crate::softnet::queue::TxQueue;
use crate::softnet::skb::{SkbId, SkbPool};

use dma::{DmaDir, DmaMapper, DmaPool, DmaRegion};
use pci::PciNic;
use regs::Regs;
use ring::Ring;

/// Default TX ring size (descriptors).
pub const DEFAULT_TX_RING: u32 = 256;
/// Default RX ring size (buffers).
pub const DEFAULT_RX_RING: u32 = 256;
/// Size of one RX buffer: a whole frame fits (abi::MAX_FRAME_LEN).
pub const RX_BUF_LEN: u32 = 2048;
/// Stop the queue when fewer descriptors than a worst-case packet remain.
pub const TX_STOP_THRESH: u32 = MAX_DESC_PER_PACKET;
/// Restart it once this many are free again (softnet.md §0).
pub const TX_START_THRESH: u32 = 2 * MAX_SKB_FRAGS;
/// Bound on the reset wait (e1000e/hermit style: never unbounded).
pub const RESET_TIMEOUT_NS: u64 = 100_000_000;
/// Bound on one EEPROM word read.
const EEPROM_TIMEOUT_NS: u64 = 10_000_000;
/// TX/RX interrupt moderation: frames per interrupt and a deadline, so
/// a lone frame still completes in bounded time (mvneta 01b23da3607d).
const COAL_FRAMES: u32 = 32;
/// Refilled RX buffers handed back per RX_TAIL write.
const RX_TAIL_BATCH: u32 = 32;
const COAL_USECS: u32 = 200;

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
    tx_buf: Vec<TxBuf>,
    /// next_to_use: written by xmit only.
    tx_prod: AtomicU32,
    /// next_to_clean: written by reclaim only.
    tx_cons: AtomicU32,
    /// Last value written to TX_TAIL.
    tx_tail: u32,
    rx_prod: u32,
    rx_cons: u32,
    /// Last value written to RX_TAIL.
    rx_tail: u32,
}

impl Rings {
    /// Free TX descriptors; one slot stays empty so full and empty differ.
    fn tx_free(&self) -> u32 {
        tx_free(self.tx.size, &self.tx_prod, &self.tx_cons)
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

/// The driver's private data (igc's `adapter`).
pub struct Nic<'a, 'e> {
    plat: &'a dyn Platform,
    regs: Regs<'a>,
    /// What PCI probing found.
    pub pci: PciNic,
    /// The hardware address in use.
    pub mac: [u8; 6],
    /// Whether it came from the EEPROM or was generated.
    pub addr_assign: AddrAssignType,
    cfg: DriverConfig,
    pool: DmaPool,
    /// Map/unmap ledger.
    pub dma: DmaMapper,
    skbs: &'a RefCell<SkbPool<'e>>,
    txq: &'a TxQueue<'e>,
    napi: &'a Napi,
    rings: Option<Rings>,
    /// References the `busy-keeps-ref` mutant wrongly keeps.
    kept: Vec<SkbId>,
    /// Frames received since probe: the TX sequence each should match.
    rx_seq: u64,
    /// Frames posted since probe (the skb mark).
    tx_seq: u64,
    /// Counters.
    pub stats: NicStats,
}

impl<'a, 'e> Nic<'a, 'e> {
    /// `igc_probe`: find the NIC, place BAR0, enable memory and bus
    /// mastering, program MSI-X, reset, read and validate the MAC.
    /// Reports ProbeEnter/ProbeExit.
    pub fn probe(
        plat: &'a dyn Platform,
        pool: DmaPool,
        cfg: DriverConfig,
        skbs: &'a RefCell<SkbPool<'e>>,
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
        plat: &'a dyn Platform,
        pool: DmaPool,
        cfg: DriverConfig,
        skbs: &'a RefCell<SkbPool<'e>>,
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
            pool,
            dma: DmaMapper::new(),
            skbs,
            txq,
            napi,
            rings: None,
            kept: Vec::new(),
            rx_seq: 0,
            tx_seq: 0,
            stats: NicStats::default(),
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
    fn reset_and_wait(&mut self) -> bool {
        self.regs.write(r::CTRL, r::CTRL_RESET);
        let start = self.plat.now_ns();
        let mut pause = 2_000u64;
        loop {
            if self.regs.read(r::STATUS) & r::STATUS_RESETTING == 0 {
                return true;
            }
            let now = self.plat.now_ns();
            if now - start > RESET_TIMEOUT_NS {
                self.stats.reset_timeouts += 1;
                return false;
            }
            self.plat.wait_until(now + pause);
            pause = (pause * 2).min(500_000);
        }
    }

    /// The mutant this driver runs.
    pub fn mutant(&self) -> Mutant {
        self.cfg.mutant
    }

    /// Whether the rings are allocated (between open and stop).
    pub fn is_open(&self) -> bool {
        self.rings.is_some()
    }

    /// Free TX descriptors (0 when closed).
    pub fn tx_free(&self) -> u32 {
        self.rings.as_ref().map_or(0, Rings::tx_free)
    }

    /// Packets posted and not yet reclaimed.
    pub fn tx_in_flight(&self) -> u32 {
        self.rings.as_ref().map_or(0, |rg| {
            let (p, c) = (rg.tx_prod.load(Ordering::Acquire), rg.tx_cons.load(Ordering::Acquire));
            (c..p).filter(|&i| rg.tx_buf[(i & (rg.tx.size - 1)) as usize].skb.is_some()).count() as u32
        })
    }

    /// DMA pages still allocated (rings, buffers).
    pub fn dma_pages_used(&self) -> usize {
        self.pool.pages_used()
    }

    /// BAR0 registers (for tests and the scenario's statistics).
    pub fn regs(&self) -> &Regs<'a> {
        &self.regs
    }

    /// `igc_setup_all_tx/rx_resources` + `igc_configure`: allocate and
    /// map rings and buffers, program the device, post RX buffers.
    fn setup_rings(&mut self) -> Result<Rings, i32> {
        let (ts, rs) = (self.cfg.tx_ring, self.cfg.rx_ring);
        let desc = core::mem::size_of::<TxDesc>() as u64;
        let tx_mem = self.pool.alloc(u64::from(ts) * desc).ok_or(ENOMEM)?;
        let Some(rx_mem) = self.pool.alloc(u64::from(rs) * desc) else {
            self.pool.free(tx_mem);
            return Err(ENOMEM);
        };
        let Some(rx_bufs) = self.pool.alloc(u64::from(rs) * u64::from(RX_BUF_LEN)) else {
            self.pool.free(tx_mem);
            self.pool.free(rx_mem);
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
                [tx_mem, rx_mem, rx_bufs].into_iter().for_each(|m| self.pool.free(m));
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
            tx_buf: alloc::vec![TxBuf::default(); ts as usize],
            tx_prod: AtomicU32::new(0),
            tx_cons: AtomicU32::new(0),
            tx_tail: 0,
            rx_prod: rs - 1,
            rx_cons: 0,
            rx_tail: rs - 1,
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
        w(r::COAL_TX_USECS, COAL_USECS);
        w(r::COAL_RX_FRAMES, COAL_FRAMES);
        w(r::COAL_RX_USECS, COAL_USECS);
        Ok(rings)
    }

    /// Give back everything `setup_rings` took. `unmap` false is the
    /// `no-unmap-at-stop` mutant.
    fn free_rings(&mut self, rg: Rings, unmap: bool) {
        if unmap {
            self.dma.set_premapped(self.plat, None);
        }
        for m in [rg.tx.mem, rg.rx.mem, rg.rx_bufs] {
            if unmap {
                self.dma.unmap(self.plat, m.phys, m.len);
            }
            self.pool.free(m);
        }
    }

    /// `igc_tx_map` + `igc_xmit_frame_ring`.
    fn xmit_frame(&mut self, skb: SkbId, xmit_more: bool) -> NetdevTx {
        if self.cfg.mutant == Mutant::ReclaimOnXmit {
            self.clean_tx_irq();
        }
        let Some(rg) = self.rings.as_ref() else {
            // Not open: the stack never calls us then; drop to be safe.
            return self.drop_skb(skb, xmit_more);
        };
        let (nr, bytes, head_len) = match self.skbs.borrow().get(skb) {
            Ok(s) => (s.nr_descs(), s.len(), s.head_len()),
            Err(_) => {
                // A freed skb came back: only a driver that freed on BUSY
                // (busy-frees) causes this. Report, never touch it.
                self.stats.stale_skbs += 1;
                self.plat.marker_text(Marker::OracleFail, &[u64::from(skb.0)], "busy-ownership: xmit got a freed skb");
                return NetdevTx::Ok;
            }
        };
        if nr == 0 || nr > MAX_DESC_PER_PACKET || bytes > abi::MAX_FRAME_LEN {
            return self.drop_skb(skb, xmit_more);
        }
        // Full ring at entry: only after a false wake (allowed, rare).
        // BUSY keeps no reference and frees nothing.
        if rg.tx_free() < nr {
            self.stats.busy += 1;
            if !self.txq.stopped() {
                self.txq.stop(QueueReason::RingLow);
            }
            match self.cfg.mutant {
                Mutant::BusyFrees => {
                    let _ = self.skbs.borrow_mut().free(skb);
                }
                Mutant::BusyKeepsRef => self.kept.push(skb),
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
        let n = {
            let pool = self.skbs.borrow();
            let Ok(s) = pool.get(skb) else { return NetdevTx::Ok };
            let mut n = 0;
            if s.head_len() != 0 {
                frags[0] = (s.head_addr(), s.head_len());
                n = 1;
            }
            for f in s.frags() {
                frags[n] = (f.addr, f.len);
                n += 1;
            }
            n
        };
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
        let Some(rg) = self.rings.as_mut() else { return NetdevTx::Ok };
        let prod = rg.tx_prod.load(Ordering::Relaxed);
        let mask = rg.tx.size - 1;
        for (i, &(addr, len)) in frags[..n].iter().enumerate() {
            let idx = prod.wrapping_add(i as u32);
            let last = i + 1 == n;
            rg.tx.write(idx, TxDesc { addr, len: len as u16, flags: if last { TXD_EOP } else { 0 }, ..TxDesc::default() });
            rg.tx_buf[(idx & mask) as usize] = TxBuf { skb: None, dma: addr, len, eop: 0, bytes: 0 };
        }
        let first = &mut rg.tx_buf[(prod & mask) as usize];
        first.skb = Some(skb);
        first.eop = prod.wrapping_add(n as u32 - 1);
        first.bytes = bytes;
        let _ = self.skbs.borrow_mut().set_mark(skb, self.tx_seq);
        self.tx_seq += 1;
        self.stats.tx_packets += 1;
        let new_prod = prod.wrapping_add(n as u32);
        // Index stored before the stop macro reads free space.
        rg.tx_prod.store(new_prod, Ordering::Release);
        let rg = self.rings.as_ref().expect("rings checked above");
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
        self.txq.maybe_stop(|| tx_free(size, &rg.tx_prod, &rg.tx_cons), TX_STOP_THRESH, TX_START_THRESH)
    }

    /// Write TX_TAIL if descriptors were posted since the last doorbell.
    fn ring_tx_doorbell(&mut self) {
        let Some(rg) = self.rings.as_mut() else { return };
        let prod = rg.tx_prod.load(Ordering::Relaxed);
        if prod == rg.tx_tail {
            return;
        }
        // wmb: descriptors reach memory before the device sees the tail.
        fence(Ordering::Release);
        rg.tx_tail = prod;
        self.regs.write(r::TX_TAIL, prod);
        self.stats.doorbells += 1;
    }

    /// Drop: free the skb and return OK (ibmvnic 7f5b030830fe); the last
    /// skb of a batch still rings for the ones before it (bnxt e8d8c5d80f5e).
    fn drop_skb(&mut self, skb: SkbId, xmit_more: bool) -> NetdevTx {
        let _ = self.skbs.borrow_mut().free(skb);
        self.stats.tx_dropped += 1;
        if !xmit_more {
            self.ring_tx_doorbell();
        }
        NetdevTx::Ok
    }

    /// `igc_clean_tx_irq`: reclaim completed packets (unmap, free, BQL
    /// completed), store the consumer index, then completed_wake.
    /// Returns packets reclaimed.
    pub fn clean_tx_irq(&mut self) -> u32 {
        let Some(rg) = self.rings.as_mut() else { return 0 };
        let mask = rg.tx.size - 1;
        let prod = rg.tx_prod.load(Ordering::Acquire);
        let mut cons = rg.tx_cons.load(Ordering::Relaxed);
        let (mut pkts, mut bytes) = (0u32, 0u32);
        while cons != prod {
            let first = rg.tx_buf[(cons & mask) as usize];
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
                let b = &mut rg.tx_buf[(i & mask) as usize];
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
        self.stats.tx_completed += u64::from(pkts);
        let size = rg.tx.size;
        let late = self.cfg.mutant == Mutant::ConsIndexLate;
        if !late {
            rg.tx_cons.store(cons, Ordering::Release);
        }
        let (p, c) = (&rg.tx_prod, &rg.tx_cons);
        let woke = self.txq.completed_wake(pkts, bytes, || tx_free(size, p, c), TX_START_THRESH);
        if late {
            rg.tx_cons.store(cons, Ordering::Release);
        }
        if woke.is_err() {
            self.plat.marker_text(Marker::OracleFail, &[u64::from(bytes)], "bql: completed more than queued");
        }
        pkts
    }

    /// `igc_clean_rx_irq`: deliver up to `budget` frames, refill.
    pub fn clean_rx_irq(&mut self, budget: u32) -> u32 {
        let Some(rg) = self.rings.as_mut() else { return 0 };
        let mut done = 0;
        while done < budget {
            let (status, len) = ring::rx_status(&rg.rx, rg.rx_cons);
            if status & RXD_STAT_DONE == 0 {
                break;
            }
            fence(Ordering::Acquire);
            let addr = rx_buf_addr(rg, rg.rx_cons);
            if status & RXD_STAT_ERR == 0 {
                // Deliver: the host compares these bytes with the frame
                // it transmitted as number `rx_seq`, during this exit.
                if !self.cfg.bench {
                    self.plat.marker(Marker::RxDeliver, &[addr, u64::from(len), self.rx_seq]);
                }
                self.rx_seq += 1;
                self.stats.rx_packets += 1;
            } else {
                self.stats.rx_errors += 1;
            }
            // The consumed slot's neighbour gets its buffer back.
            rg.rx.write(rg.rx_prod, rx_desc(rg, rg.rx_prod));
            rg.rx_prod = rg.rx_prod.wrapping_add(1);
            rg.rx_cons = rg.rx_cons.wrapping_add(1);
            done += 1;
        }
        // Give buffers back in groups (igc's IGC_RX_BUFFER_WRITE): one
        // register exit per RX_TAIL_BATCH frames, while the device still
        // holds most of the ring.
        if rg.rx_prod.wrapping_sub(rg.rx_tail) >= RX_TAIL_BATCH {
            fence(Ordering::Release);
            rg.rx_tail = rg.rx_prod;
            self.regs.write(r::RX_TAIL, rg.rx_prod);
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

    /// `igc_down` + `igc_free_all_tx/rx_resources`.
    fn down(&mut self) {
        let m = self.cfg.mutant;
        // netif_tx_disable: the stack calls no xmit from here.
        self.txq.stop(QueueReason::Lifecycle);
        // napi_disable: no poll runs after this (bounded: a running poll
        // on another CPU finishes quickly).
        let deadline = self.plat.now_ns() + RESET_TIMEOUT_NS;
        while !self.napi.try_disable() && self.plat.now_ns() < deadline {
            self.plat.wait_until(self.plat.now_ns() + 10_000);
        }
        if m != Mutant::NoDisableAtStop {
            self.regs.write(r::INT_ENABLE, 0);
            self.regs.write(r::CTRL, 0);
            // The reset drops fetched-but-unfinished work; wait for it.
            if m == Mutant::NoResetPoll {
                self.regs.write(r::CTRL, r::CTRL_RESET);
            } else {
                self.reset_and_wait();
            }
        }
        // Abort in-flight packets: unmap and free (macb 27f575836cfe).
        let unmap = m != Mutant::NoUnmapAtStop;
        if let Some(rg) = self.rings.as_mut() {
            let mask = rg.tx.size - 1;
            let prod = rg.tx_prod.load(Ordering::Relaxed);
            let mut i = rg.tx_cons.load(Ordering::Relaxed);
            while i != prod {
                let b = &mut rg.tx_buf[(i & mask) as usize];
                if unmap && b.len != 0 {
                    self.dma.unmap(self.plat, b.dma, u64::from(b.len));
                }
                if let Some(skb) = b.skb {
                    let _ = self.skbs.borrow_mut().free(skb);
                    self.stats.tx_aborted += 1;
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
        for skb in core::mem::take(&mut self.kept) {
            let _ = self.skbs.borrow_mut().free(skb);
        }
        if let Some(rg) = self.rings.take() {
            self.free_rings(rg, unmap);
        }
    }

    /// Send the Bql marker (queued, completed, limit) for the host.
    pub fn report_bql(&self) {
        let s = self.txq.dql().snapshot();
        self.plat.marker(Marker::Bql, &[u64::from(s.num_queued), u64::from(s.num_completed), u64::from(s.limit)]);
    }
}

fn rx_buf_addr(rg: &Rings, idx: u32) -> u64 {
    rg.rx_bufs.phys + u64::from(idx & (rg.rx.size - 1)) * u64::from(RX_BUF_LEN)
}

fn rx_desc(rg: &Rings, idx: u32) -> RxDesc {
    RxDesc { addr: rx_buf_addr(rg, idx), buf_len: RX_BUF_LEN as u16, ..RxDesc::default() }
}

/// One step of splitmix64 (the seed's random MAC).
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl NetDeviceOps for Nic<'_, '_> {
    /// `__igc_open`.
    fn open(&mut self) -> Result<(), i32> {
        // dev_open validated the address already; the driver checks
        // again (the accepts-invalid-mac mutant skips both).
        if !is_valid_ether_addr(&self.mac) && self.cfg.mutant != Mutant::AcceptsInvalidMac {
            return Err(crate::softnet::errno::EADDRNOTAVAIL);
        }
        self.up()
    }

    /// `__igc_close`.
    fn stop(&mut self) {
        self.down();
    }

    fn start_xmit(&mut self, skb: SkbId, xmit_more: bool) -> NetdevTx {
        self.xmit_frame(skb, xmit_more)
    }

    /// First recover a lost completion interrupt the way mlx5e does (poll
    /// the ring ourselves); if nothing completed, the device is stuck:
    /// reset it and start again, as bnxt does (in-flight packets are
    /// aborted and freed).
    fn tx_timeout(&mut self, _txq: u32) {
        self.stats.tx_timeouts += 1;
        if self.clean_tx_irq() == 0 && self.rings.is_some() {
            self.down();
            if self.up().is_err() {
                self.plat.marker_text(Marker::OracleFail, &[], "tx_timeout: could not reopen after reset");
            }
        } else if self.tx_free() >= TX_START_THRESH && self.txq.stopped() {
            self.txq.wake(QueueReason::Timeout);
        }
    }
}

impl Nic<'_, '_> {
    /// `igc_up`: rings, NAPI, interrupts, enable, start the queue.
    fn up(&mut self) -> Result<(), i32> {
        let rings = self.setup_rings()?;
        let rx_tail = rings.rx_prod;
        self.rings = Some(rings);
        self.napi.enable();
        self.ack_irq();
        self.regs.write(r::INT_ENABLE, r::INT_TX | r::INT_RX | r::INT_ERR);
        self.regs.write(r::CTRL, r::CTRL_TX_EN | r::CTRL_RX_EN);
        fence(Ordering::Release);
        self.regs.write(r::RX_TAIL, rx_tail);
        self.txq.start(QueueReason::Lifecycle);
        Ok(())
    }
}

impl NapiHandler for Nic<'_, '_> {
    fn clean_tx(&mut self) {
        // No INT_CAUSE acknowledge here: the device sends an MSI for every
        // cause it raises, latched or not, and two register exits per
        // poll would cost more than the whole reclaim.
        if self.cfg.mutant != Mutant::ReclaimOnXmit {
            self.clean_tx_irq();
        }
    }

    fn clean_rx(&mut self, budget: u32) -> u32 {
        self.clean_rx_irq(budget)
    }

    fn irq_enable(&mut self) {
        // Causes stay enabled in INT_ENABLE; MSI-X is edge-triggered and
        // nothing was masked, so there is nothing to undo.
    }
}
