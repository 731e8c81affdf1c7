//! The nicproof NIC driver, shaped like Linux igc (style.md items 9-11),
//! split as igc's files are:
//!
//! - this module: the [`Adapter`] (igc's `igc_adapter`), [`Adapter::probe`],
//!   ring set-up, `up`/`down` and the `ndo_open`/`ndo_stop`/`ndo_tx_timeout`
//!   bodies;
//! - [`tx`]: `xmit_frame` (+ `tx_map`, `maybe_stop_tx`), the doorbell and
//!   [`Adapter::clean_tx_irq`];
//! - [`rx`]: [`Adapter::clean_rx_irq`] and the RX buffers;
//! - [`stats`]: the counters ([`NicStats`]);
//! - [`ops`]: what the stack and the kernel call: the MSI-X handler, the NAPI
//!   poll loop, and the three trait adaptors ([`NetDeviceOps`] for
//!   [`Adapter`] and [`AdapterOps`], [`NapiHandler`] through [`NapiSide`]).
//!
//! Portable: the machine is a `&(dyn Platform + Sync)` (PCI config, MMIO through
//! [`regs::Regs`], time, markers), DMA memory a [`dma::DmaPool`], and the
//! stack is the softnet core (skb pool, [`TxQueue`], [`Napi`]). The same
//! code runs in the guest kernel and in host tests against nic-model.
//!
//! The driver-side mutants of `abi::DriverMutant` are runtime switches
//! read from the run configuration; each is a small, named deviation in
//! the step it breaks (grep `Mutant::`).
//!
//! [`NetDeviceOps`]: crate::softnet::netdev::NetDeviceOps
//! [`NapiHandler`]: crate::softnet::napi::NapiHandler

pub mod dma;
mod ops;
pub mod pci;
pub mod regs;
pub mod ring;
mod rx;
mod stats;
pub mod sync;
mod tx;

/// The shared seeded generator (the seed's random MAC, scenario choices).
pub use crate::abi::splitmix64;
pub use ops::{AdapterOps, NapiSide};
pub use stats::NicStats;

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::cell::UnsafeCell;
use core::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

use crate::abi::{self, regs as r, DriverMutant as Mutant, Marker, QueueReason, RxDesc, TxDesc};
use crate::platform::Platform;
use crate::softnet::errno::{ENODEV, ENOMEM};
use crate::softnet::napi::Napi;
use crate::softnet::netdev::{is_valid_ether_addr, mac_to_u64, random_ether_addr, AddrAssignType};
use crate::softnet::queue::TxQueue;
use crate::softnet::skb::SkbId;

use dma::{DmaDir, DmaMapper, DmaPool, DmaRegion};
use pci::PciNic;
use regs::Regs;
use ring::Ring;
use rx::post_rx_buf;
use stats::{inc, Counters};
use sync::{SkbCell, SpinLock};
use tx::TxBuf;

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
        let tx_ring = if ring.is_power_of_two() && (64..=r::MAX_RING).contains(&ring) {
            ring
        } else {
            DEFAULT_TX_RING
        };
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

/// The driver's private data (igc's `adapter`).
///
/// Every method takes `&self`, so the transmit side (xmit, stop, the
/// watchdog) and the NAPI side (reclaim, receive) can run on different
/// CPUs: the TX ring between them is single-producer single-consumer,
/// coordinated only by its two indexes and the queue's stop/wake
/// protocol (softnet.md §1). `open` and `stop` replace the rings; they
/// run on the transmit side with NAPI disabled, so nothing else touches
/// the rings then.
pub struct Adapter<'a, 'e> {
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
    /// the stop window, see [`Adapter::inject_reclaim_in_stop_window`].
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
unsafe impl Sync for Adapter<'_, '_> {}

/// `igc_remove`'s `pci_free_irq_vectors`: when the driver lets the
/// device go (after unregister, or a probe that failed after PCI set-up),
/// every MSI-X vector is masked and MSI-X turned off, so nothing the
/// device still raises reaches a CPU that no longer has a handler for it.
impl Drop for Adapter<'_, '_> {
    fn drop(&mut self) {
        pci::teardown_msix(self.plat, &self.pci, &self.regs);
    }
}

impl<'a, 'e> Adapter<'a, 'e> {
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
            Ok(nic) => plat.marker(
                Marker::ProbeExit,
                &[0, mac_to_u64(&nic.mac), nic.addr_assign as u64],
            ),
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
            self.regs
                .write(r::EEPROM, w << r::EEPROM_ADDR_SHIFT | r::EEPROM_START);
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
                maps[..i]
                    .iter()
                    .for_each(|&(a, l, _)| self.dma.unmap(self.plat, a, l));
                [tx_mem, rx_mem, rx_bufs]
                    .into_iter()
                    .for_each(|m| pool.free(m));
                return Err(ENOMEM);
            }
        }
        if self.cfg.bench {
            self.dma.set_premapped(
                self.plat,
                Some((abi::layout::PAYLOAD_BASE, abi::layout::PAYLOAD_SIZE)),
            );
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
            post_rx_buf(&rings, i);
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
        w(
            r::COAL_TX_USECS,
            if self.cfg.mutant == Mutant::CoalFramesOnly {
                0
            } else {
                COAL_USECS
            },
        );
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
            self.plat
                .marker(Marker::NapiDisable, &[u64::from(self.napi.is_disabled())]);
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
            let slots = rg.slots();
            // Packet by packet, as reclaim walks them.
            while i != prod {
                // SAFETY: NAPI is disabled, so reclaim's slots are ours.
                let first = unsafe { slots.get(i) };
                let (skb, eop, premapped) = (first.skb.take(), first.eop, first.premapped);
                // Not the start of a packet, or an end past the producer:
                // ring state is corrupt; free nothing more.
                if skb.is_none() || eop.wrapping_sub(i) >= prod.wrapping_sub(i) {
                    break;
                }
                if unmap && !premapped {
                    let mut j = i;
                    loop {
                        // SAFETY: inside the packet, in [cons, prod).
                        let b = unsafe { slots.get(j) };
                        if b.len != 0 {
                            self.dma.unmap(self.plat, b.dma, u64::from(b.len));
                        }
                        if j == eop {
                            break;
                        }
                        j = j.wrapping_add(1);
                    }
                }
                if let Some(skb) = skb {
                    let _ = self.skbs.borrow_mut().free(skb);
                    inc(&self.st.tx_aborted, 1);
                }
                i = eop.wrapping_add(1);
            }
            rg.tx_cons.store(prod, Ordering::Release);
        }
        // The ring is empty now, so BQL may be reset.
        if self.txq.reset_queue(0).is_err() {
            self.plat
                .marker_text(Marker::OracleFail, &[], "bql: reset with packets in flight");
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
        let times = if self.cfg.mutant == Mutant::StopTwice {
            2
        } else {
            1
        };
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
                self.plat.marker_text(
                    Marker::OracleFail,
                    &[],
                    "tx_timeout: could not reopen after reset",
                );
            }
        } else if self.tx_free() >= TX_START_THRESH && self.txq.stopped() {
            self.txq.wake(QueueReason::Timeout);
        }
    }
}
