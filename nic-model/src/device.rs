//! The NIC's register core: registers, rings, DMA, interrupts, reset,
//! fault knobs and device mutants.
//!
//! Bus-agnostic like vm-superio's `Serial`: the VMM (or a test) calls
//! [`Nic::bar_read`]/[`Nic::bar_write`] with BAR offsets, the config
//! accessors for PCI, [`Nic::advance`] with virtual time, and
//! [`Nic::on_guest_marker`] with the driver's markers. Everything else is
//! synchronous: a TX doorbell transmits inside the MMIO write (as QEMU's
//! e1000 does), so a run depends only on its inputs and the times given.
//!
//! Every guest-memory access goes through one gate (`Nic::gate`, via `dma_read`/`dma_write`).
//! It blocks accesses no hardware could make (outside RAM, into the
//! device's own BAR, bus mastering off), latching a device fault, and
//! hands the rest to the [`DmaMonitor`] to log and judge.

use crate::abi::{self, pci as ids, regs, DeviceError, DeviceMutant, Marker};
use crate::backend::Backend;
use crate::config::{BackendConfig, NicConfig, WindowStart};
use crate::error::NicError;
use crate::events::{DmaDir, EventKind, EventLog};
use crate::monitor::{self, DmaCause, DmaMonitor, GateState, Violation};
use crate::msix::{self, Delivery, MsiSink, Msix};
use crate::pci::{ConfigSpace, MSIX_CAP_DWORD};
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap};

/// How many transmitted frames [`Nic::tx_frame`] keeps.
pub const RECENT_FRAMES: usize = 1024;
/// Descriptor poll period of the r8169-like knob, in ns.
pub const POLL_PERIOD_NS: u64 = 50_000;
/// Delay and period of a mutant's stray DMA or interrupt, in ns.
const GHOST_PERIOD_NS: u64 = 20_000;
/// How many stray accesses a mutant makes after each disable.
const GHOST_COUNT: u32 = 16;
/// Most timer expiries one [`Nic::advance`] call runs.
const MAX_TIMERS_PER_ADVANCE: u32 = 1024;
/// Bytes of a descriptor.
const DESC_SIZE: u64 = 16;
/// Offset of `TxDesc::status`.
const TXD_STATUS_OFFSET: u64 = 12;
/// Offset of `RxDesc::len` (followed by `status`).
const RXD_LEN_OFFSET: u64 = 10;
/// Most TX descriptors fetched in one read burst. Like the descriptor
/// cache of e1000-class NICs, a burst takes every posted descriptor up to
/// this many (and up to the ring's end) in one DMA, so a small packet
/// costs one descriptor access per burst instead of one per descriptor.
pub const TX_PREFETCH: u32 = 64;

/// One ring's registers and progress.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Ring {
    base: u64,
    size: u32,
    /// Next descriptor to process (free-running); the HEAD register.
    head: u32,
    tail: u32,
    /// Next descriptor to fetch (TX only; `head..fetched` are in the
    /// prefetch cache).
    fetched: u32,
    /// First descriptor of the packet being gathered (TX only).
    pkt_start: u32,
    /// Faulted: ignores doorbells until reset.
    stopped: bool,
}

impl Ring {
    fn mask(&self) -> Option<u32> {
        (self.size >= 2 && self.size <= regs::MAX_RING && self.size.is_power_of_two())
            .then(|| self.size - 1)
    }
    fn desc_addr(&self, idx: u32, mask: u32) -> u64 {
        self.base.wrapping_add(u64::from(idx & mask) * DESC_SIZE)
    }
}

/// Register state; `Default` is the state after reset.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Regs {
    ctrl: u32,
    resetting: bool,
    eeprom: u32,
    tx: Ring,
    rx: Ring,
    int_cause: u32,
    int_enable: u32,
    coal_tx_frames: u32,
    coal_tx_usecs: u32,
    coal_rx_frames: u32,
    coal_rx_usecs: u32,
    err_code: u32,
    err_addr: u64,
    stat_tx: u32,
    stat_rx: u32,
    stat_rx_drops: u32,
    /// Completions since the last TX interrupt (coalescing).
    tx_uncoalesced: u32,
    /// Frames since the last RX interrupt.
    rx_uncoalesced: u32,
}

/// Virtual-time deadlines, in ns.
#[derive(Clone, Copy, Debug, Default)]
struct Timers {
    reset_done: Option<u64>,
    tx_coal: Option<u64>,
    rx_coal: Option<u64>,
    poll: Option<u64>,
    ghost_dma: Option<u64>,
    ghost_irq: Option<u64>,
}

/// The gate refused an access (a fault is latched).
#[derive(Debug)]
struct Blocked;

/// Packets of the current fetch burst whose completion is due: EOP
/// indexes `first..=last` (free-running) hold `count` of them.
#[derive(Clone, Copy, Debug, Default)]
struct TxWriteBack {
    first: u32,
    last: u32,
    count: u32,
}

impl TxWriteBack {
    fn add(&mut self, eop: u32) {
        if self.count == 0 {
            self.first = eop;
        }
        self.last = eop;
        self.count += 1;
    }
}

/// Why the TX walk ended early.
enum TxStop {
    /// A fault to latch (code, address).
    Fault(DeviceError, u64),
    /// The gate refused an access (its fault is latched already).
    Blocked,
}

/// The NIC model.
pub struct Nic {
    cfg: NicConfig,
    mem: GuestMemoryMmap,
    msi: Arc<dyn MsiSink>,
    log: EventLog,
    pci: ConfigSpace,
    msix: Msix,
    regs: Regs,
    timers: Timers,
    monitor: DmaMonitor,
    backend: Backend,
    /// The `capture` tap (a pcap backend), if configured.
    capture: Option<Backend>,
    now_ns: u64,
    /// Gather buffer, reused for every frame.
    frame: Vec<u8>,
    /// Recent frames by sequence number; buffers are recycled.
    recent: VecDeque<(u64, Vec<u8>)>,
    tx_seq: u64,
    rx_seq: u64,
    tx_irqs: u64,
    completed: u64,
    /// Stall knob: armed until it fires once.
    stall_armed: bool,
    stalled: bool,
    /// TX completions held for TEST_COMPLETE (EOP slots).
    held: VecDeque<u32>,
    /// First descriptor (free-running) of the oldest held packet: its
    /// slots stay the device's until TEST_COMPLETE, so the tail check
    /// counts from here while `held` is not empty.
    held_from: u32,
    /// The TX descriptors of the last fetch burst, free-running indexes
    /// `tx_burst_start..regs.tx.fetched`, as read (the device owns them
    /// until their packets complete). Each is kept as its two
    /// little-endian words: the address, then
    /// len | flags << 16 | rsvd << 24 | status << 32 | cookie << 48.
    tx_cache: Box<[[u64; 2]; TX_PREFETCH as usize]>,
    tx_burst_start: u32,
    /// Completions processed but not yet written back (see
    /// [`Nic::write_back_tx`]).
    tx_wb: TxWriteBack,
    /// The first frame that could not be written to a pcap file (the
    /// backend or the capture tap), as a message naming the file.
    output_error: Option<String>,
    ghost_dma_left: u32,
    ghost_dma_addr: u64,
    ghost_irq_left: u32,
    /// Device time of the oldest TX completion / RX frame written back
    /// since its cause was last latched (`completion-unsignalled`).
    tx_unsignalled_since: Option<u64>,
    rx_unsignalled_since: Option<u64>,
    /// `irq_in_window` knob: window starts seen, and register writes
    /// left before the forced interrupt of the current window.
    window_starts: u64,
    window_left: Option<u64>,
}

/// The ceiling of the `completion-unsignalled` bound (device time): 10
/// times the nicproof driver's 200 us coalescing deadline. Linux asks for
/// "finite time"; a coalescing timer set longer than this is held to it.
pub const SIGNAL_BOUND_NS: u64 = 2_000_000;

/// Slack on the coalescing deadline for the `completion-unsignalled`
/// bound: the device's own timer fires exactly on time, so this only
/// absorbs where a check falls relative to the timer's event.
pub const SIGNAL_SLACK_NS: u64 = 100_000;

/// How long a completion (frame) written back without its cause may wait
/// under the coalescing the driver programmed: its `*_USECS` timer, armed
/// at the first held completion, plus [`SIGNAL_SLACK_NS`], within
/// [`SIGNAL_BOUND_NS`]. A frame count alone bounds nothing (only more
/// traffic reaches it), so with no timer armed a held completion is a
/// finding at once.
pub fn signal_bound_ns(usecs: u32) -> u64 {
    (u64::from(usecs) * 1000 + SIGNAL_SLACK_NS).min(SIGNAL_BOUND_NS)
}

impl std::fmt::Debug for Nic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nic")
            .field("regs", &self.regs)
            .field("now_ns", &self.now_ns)
            .finish()
    }
}

impl Nic {
    /// A NIC over guest memory `mem`, sending MSIs to `msi` and logging
    /// into `log`. BAR0 starts at `abi::layout::NIC_BAR0_DEFAULT`.
    pub fn new(
        cfg: NicConfig,
        mem: GuestMemoryMmap,
        msi: Arc<dyn MsiSink>,
        log: EventLog,
    ) -> Result<Self, NicError> {
        let backend = Backend::open(&cfg.backend)?;
        let capture = cfg
            .capture
            .as_ref()
            .map(|path| Backend::open(&BackendConfig::Pcap(path.clone())))
            .transpose()?;
        Ok(Self {
            monitor: DmaMonitor::new(cfg.monitor, log.clone()),
            stall_armed: cfg.stall_completions_after.is_some(),
            cfg,
            mem,
            msi,
            log,
            pci: ConfigSpace::nic(abi::layout::NIC_BAR0_DEFAULT),
            msix: Msix::default(),
            regs: Regs::default(),
            timers: Timers::default(),
            backend,
            capture,
            now_ns: 0,
            frame: Vec::with_capacity(abi::MAX_FRAME_LEN as usize),
            recent: VecDeque::with_capacity(RECENT_FRAMES),
            tx_seq: 0,
            rx_seq: 0,
            tx_irqs: 0,
            completed: 0,
            stalled: false,
            held: VecDeque::new(),
            held_from: 0,
            tx_cache: Box::new([[0; 2]; TX_PREFETCH as usize]),
            tx_burst_start: 0,
            tx_wb: TxWriteBack::default(),
            output_error: None,
            ghost_dma_left: 0,
            ghost_dma_addr: 0,
            ghost_irq_left: 0,
            tx_unsignalled_since: None,
            rx_unsignalled_since: None,
            window_starts: 0,
            window_left: None,
        })
    }

    // ----------------------------------------------------------------
    // Observation API for the VMM and tests.
    // ----------------------------------------------------------------

    /// The configuration this device runs with.
    pub fn config(&self) -> &NicConfig {
        &self.cfg
    }

    /// The shared event log.
    pub fn log(&self) -> &EventLog {
        &self.log
    }

    /// Every monitor violation so far.
    pub fn violations(&self) -> &[Violation] {
        self.monitor.violations()
    }

    /// Live dma-map ranges the monitor knows of.
    pub fn live_maps(&self) -> usize {
        self.monitor.live_maps()
    }

    /// The bytes of transmitted frame `seq`, if still kept.
    pub fn tx_frame(&self, seq: u64) -> Option<&[u8]> {
        let first = self.recent.front()?.0;
        let i = usize::try_from(seq.checked_sub(first)?).ok()?;
        self.recent.get(i).map(|(_, f)| f.as_slice())
    }

    /// Frames transmitted since the run began.
    pub fn frames_sent(&self) -> u64 {
        self.tx_seq
    }

    /// The current virtual time.
    pub fn now_ns(&self) -> u64 {
        self.now_ns
    }

    /// The first frame that could not be written to a pcap file (backend
    /// or capture), naming the file: the run must report it.
    pub fn output_error(&self) -> Option<&str> {
        self.output_error.as_deref()
    }

    /// Register `off` as a guest read would return it, without logging
    /// the read (for checkers such as the fuzz harness).
    pub fn register(&self, off: u32) -> u32 {
        self.dword_read(u64::from(off))
    }

    /// The DMA window is open for business: TX or RX enabled (used by
    /// the VMM to check "enable bits still set" at stop).
    pub fn enabled(&self) -> bool {
        self.regs.ctrl & (regs::CTRL_TX_EN | regs::CTRL_RX_EN) != 0
    }

    // ----------------------------------------------------------------
    // Driver markers and time.
    // ----------------------------------------------------------------

    /// A driver marker. Call it after logging the marker, so the
    /// monitor's details can cite that event's sequence number.
    pub fn on_guest_marker(&mut self, marker: Marker, args: &[u64]) {
        self.monitor.flush();
        let seq = (self.log.len() as u64).saturating_sub(1);
        self.monitor.on_marker(marker, args, seq);
        self.check_signalled();
        if let Some(w) = self.cfg.irq_in_window {
            let start = match w.start {
                WindowStart::StopEnter => Marker::StopEnter,
                WindowStart::OpenEnter => Marker::OpenEnter,
                WindowStart::NapiDisable => Marker::NapiDisable,
            };
            // napi-disable counts only when NAPI went off (args[1] = 1).
            let starts = marker == start && (start != Marker::NapiDisable || args.get(1) == Some(&1));
            if starts {
                let n = self.window_starts;
                self.window_starts += 1;
                self.window_left = Some(w.at_write.unwrap_or(n));
                self.window_write();
            }
        }
    }

    /// One step of the `irq_in_window` count (a register write, or the
    /// window's start): raise the causes when the count reaches zero.
    fn window_write(&mut self) {
        let Some(left) = self.window_left else { return };
        if left > 0 {
            self.window_left = Some(left - 1);
            return;
        }
        self.window_left = None;
        let Some(w) = self.cfg.irq_in_window else { return };
        let n = w.at_write.unwrap_or(self.window_starts - 1);
        let text = if self.regs.resetting {
            format!("knob: interrupt {:#x} not forced at write {n} (resetting)", w.causes)
        } else {
            format!("knob: interrupt {:#x} forced at write {n} after {:?}", w.causes, w.start)
        };
        self.monitor.emit(EventKind::Note { text });
        if !self.regs.resetting {
            self.raise_causes(w.causes);
        }
        self.monitor.flush();
    }

    /// `completion-unsignalled`: while TX (RX) is enabled, a completion
    /// (frame) written back must get its cause latched within the bound
    /// its coalescing settings give ([`signal_bound_ns`]), and while one
    /// waits a coalescing timer must be armed: with none (moderation by
    /// frame count alone, the mvneta 01b23da3607d hang) nothing but more
    /// traffic would ever signal it. Reported once per episode.
    fn check_signalled(&mut self) {
        if !self.monitor.enabled() {
            return;
        }
        let now = self.now_ns;
        let ctrl = self.regs.ctrl;
        for (tx, enabled, timer) in [
            (true, ctrl & regs::CTRL_TX_EN != 0, self.timers.tx_coal),
            (false, ctrl & regs::CTRL_RX_EN != 0, self.timers.rx_coal),
        ] {
            let since = if tx { self.tx_unsignalled_since } else { self.rx_unsignalled_since };
            let Some(t) = since.filter(|_| enabled) else { continue };
            let (what, frames, usecs) = if tx {
                ("TX completion", self.regs.coal_tx_frames, self.regs.coal_tx_usecs)
            } else {
                ("RX frame", self.regs.coal_rx_frames, self.regs.coal_rx_usecs)
            };
            let bound = signal_bound_ns(usecs);
            let late = now.saturating_sub(t) > bound;
            let never = timer.is_none();
            if !(late || never) {
                continue;
            }
            if tx {
                self.tx_unsignalled_since = None;
            } else {
                self.rx_unsignalled_since = None;
            }
            let why = if late {
                format!("not signalled {} us later (bound {} us)", (now - t) / 1000, bound / 1000)
            } else {
                "held with no coalescing timer armed: only more traffic would signal it".to_string()
            };
            self.monitor.violate(
                monitor::RULE_COMPLETION_UNSIGNALLED,
                format!("{what} written back at {} us {why} (coalescing: {frames} frames, {usecs} us)", t / 1000),
            );
        }
    }

    /// The earliest virtual time at which [`Nic::advance`] has work.
    pub fn next_deadline(&self) -> Option<u64> {
        let t = self.timers;
        [
            t.reset_done,
            t.tx_coal,
            t.rx_coal,
            t.poll,
            t.ghost_dma,
            t.ghost_irq,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Move virtual time to `now_ns` (never backwards) and run every
    /// timer due by then, in deadline order.
    pub fn advance(&mut self, now_ns: u64) {
        let target = self.now_ns.max(now_ns);
        // Each timer runs at its own deadline, so events carry the time
        // they happened at and periodic timers catch up one period at a
        // time. The bound caps the work of one call; a longer backlog
        // continues on the next call.
        for _ in 0..MAX_TIMERS_PER_ADVANCE {
            let Some(due) = self.next_deadline().filter(|&d| d <= target) else {
                break;
            };
            self.now_ns = self.now_ns.max(due);
            let t = self.timers;
            if t.reset_done == Some(due) {
                self.timers.reset_done = None;
                self.finish_reset();
            } else if t.tx_coal == Some(due) {
                self.fire_tx_irq();
            } else if t.rx_coal == Some(due) {
                self.fire_rx_irq();
            } else if t.poll == Some(due) {
                self.timers.poll = None;
                self.poll_rings();
            } else if t.ghost_dma == Some(due) {
                self.timers.ghost_dma = None;
                self.ghost_dma();
            } else if t.ghost_irq == Some(due) {
                self.timers.ghost_irq = None;
                self.ghost_irq();
            }
        }
        self.now_ns = target;
        self.check_signalled();
        self.monitor.flush();
    }

    // ----------------------------------------------------------------
    // PCI configuration space.
    // ----------------------------------------------------------------

    /// Read configuration dword `reg` (the MSI-X control reflects state).
    pub fn config_read(&self, reg: usize) -> u32 {
        self.pci.read(reg)
    }

    /// Write configuration space at byte `offset`.
    pub fn config_write(&mut self, offset: u8, data: &[u8]) {
        let mut v = [0u8; 4];
        let n = data.len().min(4);
        v[..n].copy_from_slice(&data[..n]);
        self.monitor.emit(EventKind::ConfigWrite {
            offset,
            value: u32::from_le_bytes(v),
            size: n as u8,
        });
        let bus_master = self.bus_master();
        self.pci.write(offset, data);
        self.sync_gate_state();
        if usize::from(offset / 4) == MSIX_CAP_DWORD {
            self.msix.set_msg_ctrl(self.pci.msix_msg_ctrl());
            self.deliver_pending();
        } else if self.bus_master() && !bus_master {
            // Messages held while bus mastering was off go out now.
            self.deliver_pending();
        }
        self.monitor.flush();
    }

    /// BAR0's current address.
    pub fn bar0(&self) -> u64 {
        self.pci.bar0()
    }

    /// The BAR offset of an access at `gpa` of `len` bytes, if BAR0 is
    /// decoded (memory space on) and contains it entirely.
    pub fn bar_offset(&self, gpa: u64, len: usize) -> Option<u64> {
        if self.pci.command() & ids::CMD_MEMORY == 0 {
            return None;
        }
        let off = gpa.checked_sub(self.pci.bar0())?;
        (off.checked_add(len as u64)? <= ids::BAR0_SIZE).then_some(off)
    }

    fn bus_master(&self) -> bool {
        self.pci.command() & ids::CMD_BUS_MASTER != 0
    }

    // ----------------------------------------------------------------
    // BAR0 accesses.
    // ----------------------------------------------------------------

    /// Read BAR0 at `off`. Widths 4 and 8 (two dwords) are native;
    /// 1 and 2 return bytes of the containing dword; others read ones,
    /// as does any access not wholly inside BAR0 (whatever `off` is).
    pub fn bar_read(&mut self, off: u64, data: &mut [u8]) {
        let value: u64 = match data.len() {
            // Beyond the BAR (an offset the caller did not bound): ones,
            // and no offset arithmetic that could wrap onto a register.
            n if !in_bar(off, n) => u64::MAX,
            8 => u64::from(self.dword_read(off)) | u64::from(self.dword_read(off + 4)) << 32,
            1 | 2 | 4 => {
                let d = self.dword_read(off & !3);
                let b = d.to_le_bytes();
                let lane = (off & 3) as usize;
                let mut v = [0u8; 8];
                let n = data.len().min(4 - lane);
                v[..n].copy_from_slice(&b[lane..lane + n]);
                u64::from_le_bytes(v)
            }
            _ => u64::MAX,
        };
        let bytes = value.to_le_bytes();
        for (i, d) in data.iter_mut().enumerate() {
            *d = bytes.get(i).copied().unwrap_or(0xff);
        }
        self.monitor.emit(EventKind::MmioRead {
            offset: off,
            value,
            size: data.len() as u8,
        });
        self.monitor.flush();
    }

    /// Write BAR0 at `off`. Dword-aligned widths 4 and 8 (low dword first)
    /// only: registers have side effects, so any other write is dropped and
    /// latches `DeviceError::BadAccess`, as does any write not wholly
    /// inside BAR0 (whatever `off` is).
    pub fn bar_write(&mut self, off: u64, data: &[u8]) {
        let mut v = [0u8; 8];
        let n = data.len().min(8);
        v[..n].copy_from_slice(&data[..n]);
        let value = u64::from_le_bytes(v);
        self.monitor.emit(EventKind::MmioWrite {
            offset: off,
            value,
            size: data.len() as u8,
        });
        match data.len() {
            n if !in_bar(off, n) => {
                self.monitor.emit(EventKind::Note {
                    text: format!("{n}-byte BAR write at {off:#x} is outside BAR0"),
                });
                self.fault(DeviceError::BadAccess, off, None);
            }
            4 if off.is_multiple_of(4) => self.dword_write(off, value as u32),
            8 if off.is_multiple_of(4) => {
                self.dword_write(off, value as u32);
                self.dword_write(off + 4, (value >> 32) as u32);
            }
            // A driver bug, not a request: latch it so the run reports it.
            // No ring is stopped: the write touched no ring.
            n => {
                self.monitor.emit(EventKind::Note {
                    text: format!("{n}-byte BAR write at {off:#x} dropped"),
                });
                self.fault(DeviceError::BadAccess, off, None);
            }
        }
        self.monitor.flush();
        self.window_write();
    }

    fn dword_read(&self, off: u64) -> u32 {
        let t = u64::from(ids::MSIX_TABLE_OFFSET);
        let p = u64::from(ids::MSIX_PBA_OFFSET);
        if (t..p).contains(&off) {
            return self.msix.table_read(off - t);
        }
        if (p..ids::BAR0_SIZE).contains(&off) {
            return self.msix.pba_read(off - p);
        }
        let r = &self.regs;
        let Ok(off) = u32::try_from(off) else {
            return u32::MAX;
        };
        match off {
            regs::CTRL => r.ctrl,
            regs::STATUS => {
                let mut s = 0;
                if r.resetting {
                    s |= regs::STATUS_RESETTING;
                } else {
                    s |= regs::STATUS_LINK_UP;
                }
                if r.err_code != 0 {
                    s |= regs::STATUS_ERROR;
                }
                s
            }
            regs::EEPROM => r.eeprom,
            regs::TX_BASE_LO => r.tx.base as u32,
            regs::TX_BASE_HI => (r.tx.base >> 32) as u32,
            regs::TX_SIZE => r.tx.size,
            regs::TX_HEAD => r.tx.head,
            regs::TX_TAIL => r.tx.tail,
            regs::RX_BASE_LO => r.rx.base as u32,
            regs::RX_BASE_HI => (r.rx.base >> 32) as u32,
            regs::RX_SIZE => r.rx.size,
            regs::RX_HEAD => r.rx.head,
            regs::RX_TAIL => r.rx.tail,
            regs::INT_CAUSE => r.int_cause,
            regs::INT_ENABLE => r.int_enable,
            regs::COAL_TX_FRAMES => r.coal_tx_frames,
            regs::COAL_TX_USECS => r.coal_tx_usecs,
            regs::COAL_RX_FRAMES => r.coal_rx_frames,
            regs::COAL_RX_USECS => r.coal_rx_usecs,
            regs::ERR_CODE => r.err_code,
            regs::ERR_ADDR_LO => r.err_addr as u32,
            regs::ERR_ADDR_HI => (r.err_addr >> 32) as u32,
            regs::STAT_TX_FRAMES => r.stat_tx,
            regs::STAT_RX_FRAMES => r.stat_rx,
            regs::STAT_RX_DROPS => r.stat_rx_drops,
            _ => 0, // WO and unassigned registers read zero
        }
    }

    fn dword_write(&mut self, off: u64, v: u32) {
        let t = u64::from(ids::MSIX_TABLE_OFFSET);
        let p = u64::from(ids::MSIX_PBA_OFFSET);
        if (t..p).contains(&off) {
            if self.msix.table_write(off - t, v) {
                self.deliver_pending();
            }
            return;
        }
        let Ok(off) = u32::try_from(off) else { return };
        if off >= p as u32 {
            return; // PBA is read-only
        }
        if self.regs.resetting && off != regs::ERR_CLEAR {
            // The register file is not ready; the write is lost and the
            // driver learns it from the error latch.
            let ring = match off {
                regs::TX_BASE_LO..=regs::TX_TAIL => Some(true),
                regs::RX_BASE_LO..=regs::RX_TAIL => Some(false),
                _ => None,
            };
            self.fault(DeviceError::WriteDuringReset, u64::from(off), ring);
            return;
        }
        self.monitor.on_reg_write(off, v);
        let r = &mut self.regs;
        match off {
            regs::CTRL => self.write_ctrl(v),
            regs::EEPROM if v & regs::EEPROM_START != 0 => {
                // The read completes at once: DONE is set on the next read.
                let word = (v >> regs::EEPROM_ADDR_SHIFT) & 0xff;
                let mac = self.cfg.eeprom_mac();
                let data = match word as usize {
                    w @ 0..=2 => u32::from(u16::from_le_bytes([mac[2 * w], mac[2 * w + 1]])),
                    _ => 0xffff, // an erased EEPROM word
                };
                r.eeprom = word << regs::EEPROM_ADDR_SHIFT
                    | regs::EEPROM_DONE
                    | data << regs::EEPROM_DATA_SHIFT;
            }
            regs::TX_BASE_LO => r.tx.base = r.tx.base & !0xffff_ffff | u64::from(v),
            regs::TX_BASE_HI => r.tx.base = r.tx.base & 0xffff_ffff | u64::from(v) << 32,
            regs::TX_SIZE => r.tx.size = v,
            regs::TX_TAIL => {
                r.tx.tail = v;
                self.process_tx();
            }
            regs::RX_BASE_LO => r.rx.base = r.rx.base & !0xffff_ffff | u64::from(v),
            regs::RX_BASE_HI => r.rx.base = r.rx.base & 0xffff_ffff | u64::from(v) << 32,
            regs::RX_SIZE => r.rx.size = v,
            regs::RX_TAIL => {
                r.rx.tail = v;
                self.check_rx_ring();
            }
            regs::INT_CAUSE => r.int_cause &= !v,
            regs::INT_ENABLE => {
                let old = r.int_enable;
                r.int_enable = v;
                // Causes already latched and now enabled fire at once.
                let newly = v & !old & r.int_cause;
                if newly != 0 {
                    self.raise_causes(newly);
                }
                if old & !v != 0 {
                    self.arm_ghost_irq();
                }
            }
            regs::COAL_TX_FRAMES => r.coal_tx_frames = v,
            regs::COAL_TX_USECS => r.coal_tx_usecs = v,
            regs::COAL_RX_FRAMES => r.coal_rx_frames = v,
            regs::COAL_RX_USECS => r.coal_rx_usecs = v,
            regs::ERR_CLEAR => {
                r.err_code = 0;
                r.err_addr = 0;
            }
            regs::TEST_COMPLETE => self.complete_held(),
            _ => {} // RO or unassigned
        }
    }

    fn write_ctrl(&mut self, v: u32) {
        if v & regs::CTRL_RESET != 0 {
            if self.cfg.mutant == DeviceMutant::ResetIgnored {
                self.monitor.emit(EventKind::Note {
                    text: "mutant: reset ignored".into(),
                });
            } else {
                self.start_reset();
            }
            self.check_reset_took_effect();
            return;
        }
        let old = self.regs.ctrl;
        let new = v & (regs::CTRL_TX_EN | regs::CTRL_RX_EN);
        self.regs.ctrl = new;
        self.sync_gate_state();
        if old & !new != 0 {
            self.on_disable(old);
        }
        if new & !old != 0 && self.cfg.dma_until_disabled && self.timers.poll.is_none() {
            self.timers.poll = Some(self.now_ns.saturating_add(POLL_PERIOD_NS));
        }
        if new & !old & regs::CTRL_TX_EN != 0 {
            // Descriptors posted while disabled are picked up now.
            self.process_tx();
        }
    }

    /// TX or RX just lost its enable bit (`old` were the bits before).
    fn on_disable(&mut self, old: u32) {
        if self.cfg.mutant == DeviceMutant::DmaAfterDisable {
            let r = &self.regs;
            let ring = if old & regs::CTRL_TX_EN != 0 {
                r.tx
            } else {
                r.rx
            };
            self.ghost_dma_addr = ring.desc_addr(ring.head, ring.mask().unwrap_or(0));
            self.ghost_dma_left = GHOST_COUNT;
            self.timers.ghost_dma = Some(self.now_ns.saturating_add(GHOST_PERIOD_NS));
        }
        self.arm_ghost_irq();
    }

    fn arm_ghost_irq(&mut self) {
        if self.cfg.mutant == DeviceMutant::IrqAfterDisable {
            self.ghost_irq_left = GHOST_COUNT;
            self.timers.ghost_irq = Some(self.now_ns.saturating_add(GHOST_PERIOD_NS));
        }
    }

    // ----------------------------------------------------------------
    // Reset.
    // ----------------------------------------------------------------

    fn start_reset(&mut self) {
        self.monitor.emit(EventKind::ResetStart);
        let old = self.regs.ctrl;
        if old & (regs::CTRL_TX_EN | regs::CTRL_RX_EN) != 0 {
            self.on_disable(old);
        }
        self.regs = Regs::default();
        self.tx_unsignalled_since = None;
        self.rx_unsignalled_since = None;
        self.held.clear();
        self.tx_wb = TxWriteBack::default();
        self.tx_burst_start = 0;
        self.frame.clear();
        self.stalled = false;
        // Mutant timers survive: that is what makes them mutants.
        self.timers = Timers {
            ghost_dma: self.timers.ghost_dma,
            ghost_irq: self.timers.ghost_irq,
            ..Timers::default()
        };
        let delay = self.cfg.reset_delay_us.saturating_mul(1000);
        if delay == 0 {
            self.finish_reset();
        } else {
            self.regs.resetting = true;
            self.timers.reset_done = Some(self.now_ns.saturating_add(delay));
        }
        self.sync_gate_state();
    }

    fn finish_reset(&mut self) {
        self.regs.resetting = false;
        self.sync_gate_state();
        self.monitor.emit(EventKind::ResetDone);
        self.raise_causes(regs::INT_RESET_DONE);
    }

    /// Right after a reset request the device must be quiescent: rings
    /// and enables cleared, and either done or visibly resetting.
    fn check_reset_took_effect(&mut self) {
        let r = &self.regs;
        let quiet = r.ctrl == 0
            && r.int_enable == 0
            && r.tx == Ring::default()
            && r.rx == Ring::default()
            && self.held.is_empty()
            && (self.cfg.reset_delay_us == 0 || r.resetting);
        if !quiet && self.monitor.enabled() {
            self.monitor.violate(
                monitor::RULE_RESET_INEFFECTIVE,
                format!(
                    "right after the reset write: ctrl={:#x} int_enable={:#x} tx head/tail {}/{}",
                    r.ctrl, r.int_enable, r.tx.head, r.tx.tail
                ),
            );
        }
    }

    // ----------------------------------------------------------------
    // Faults and interrupts.
    // ----------------------------------------------------------------

    /// Latch `code` (first fault wins), stop the ring it concerns
    /// (`Some(true)` TX, `Some(false)` RX) and raise the error cause.
    fn fault(&mut self, code: DeviceError, addr: u64, ring: Option<bool>) {
        self.monitor.emit(EventKind::DeviceFault {
            code: code as u32,
            addr,
        });
        let r = &mut self.regs;
        if r.err_code == 0 {
            r.err_code = code as u32;
            r.err_addr = addr;
        }
        match ring {
            Some(true) => r.tx.stopped = true,
            Some(false) => r.rx.stopped = true,
            None => {}
        }
        self.raise_causes(regs::INT_ERR);
    }

    /// Latch causes and send the vectors of those enabled.
    fn raise_causes(&mut self, bits: u32) {
        self.regs.int_cause |= bits;
        let enabled = bits & self.regs.int_enable;
        for (bit, vector) in [
            (regs::INT_TX, ids::MSIX_TX),
            (regs::INT_RX, ids::MSIX_RX),
            (regs::INT_ERR | regs::INT_RESET_DONE, ids::MSIX_MISC),
        ] {
            if enabled & bit != 0 {
                self.raise_vector(vector, true);
            }
        }
    }

    fn raise_vector(&mut self, vector: u16, cause_enabled: bool) {
        if vector == ids::MSIX_TX {
            self.tx_irqs += 1;
            if self.cfg.drop_nth_tx_irq == Some(self.tx_irqs) {
                self.monitor.emit(EventKind::Note {
                    text: format!("knob: TX interrupt #{} dropped", self.tx_irqs),
                });
                return;
            }
        }
        let d = if self.bus_master() {
            self.msix.raise(vector, self.msi.as_ref())
        } else {
            // An MSI is a memory write: held in the PBA until bus
            // mastering returns (`config_write` delivers it then).
            self.msix.hold(vector)
        };
        let seq = match d {
            Delivery::Disabled => self.monitor.push(EventKind::Note {
                text: format!("vector {vector} not sent: MSI-X disabled"),
            }),
            _ => self.monitor.push(EventKind::Irq {
                vector,
                masked: !matches!(d, Delivery::Sent(_)),
            }),
        };
        self.monitor
            .check_irq(vector, cause_enabled, matches!(d, Delivery::Sent(_)), seq);
        if let Delivery::Refused(addr) = d {
            self.refuse_msi(vector, addr);
        }
    }

    /// Send vectors whose pending bit may now go out (never with bus
    /// mastering off, never outside the MSI window: those stay pending).
    fn deliver_pending(&mut self) {
        if !self.bus_master() {
            return;
        }
        for vector in self.msix.take_deliverable() {
            let e = self.msix.table[usize::from(vector)];
            if !msix::MSI_WINDOW.contains(&e.addr()) {
                self.msix.pba |= 1 << vector;
                self.refuse_msi(vector, e.addr());
                continue;
            }
            self.msi.signal(e.addr(), e.data);
            let seq = self.monitor.push(EventKind::Irq {
                vector,
                masked: false,
            });
            self.monitor.check_irq(vector, true, true, seq);
        }
    }

    /// Vector `vector`'s message address `addr` is outside the MSI window:
    /// the message was not sent (its PBA bit stays set). A violation, and
    /// a device fault with the error interrupt, unless the refused vector
    /// is the error vector itself (then the fault is latched silently:
    /// raising it again would only be refused again).
    #[cold]
    fn refuse_msi(&mut self, vector: u16, addr: u64) {
        if self.monitor.enabled() {
            self.monitor.violate(
                monitor::RULE_MSI_BAD_ADDRESS,
                format!(
                    "vector {vector} message address {addr:#x} is outside 0xfee00000-0xfeefffff: not sent, PBA bit kept"
                ),
            );
        }
        if vector != ids::MSIX_MISC {
            return self.fault(DeviceError::BadMsiAddress, addr, None);
        }
        self.monitor.emit(EventKind::DeviceFault {
            code: DeviceError::BadMsiAddress as u32,
            addr,
        });
        let r = &mut self.regs;
        if r.err_code == 0 {
            r.err_code = DeviceError::BadMsiAddress as u32;
            r.err_addr = addr;
        }
        r.int_cause |= regs::INT_ERR;
    }

    fn fire_tx_irq(&mut self) {
        self.tx_unsignalled_since = None;
        self.timers.tx_coal = None;
        self.regs.tx_uncoalesced = 0;
        self.raise_causes(regs::INT_TX);
    }

    fn fire_rx_irq(&mut self) {
        self.rx_unsignalled_since = None;
        self.timers.rx_coal = None;
        self.regs.rx_uncoalesced = 0;
        self.raise_causes(regs::INT_RX);
    }

    // ----------------------------------------------------------------
    // The DMA gate.
    // ----------------------------------------------------------------

    /// Check an access; false if the device must not make it. Inlined
    /// into each call site, so the cause is a constant there and the
    /// monitor's per-cause checks fold away (the monitor's cost budget is
    /// 5%: nic-model README, benchmark).
    #[inline(always)]
    fn gate(&mut self, dir: DmaDir, addr: u64, len: u64, cause: DmaCause) -> bool {
        let in_ram = usize::try_from(len)
            .is_ok_and(|n| GuestMemoryBackend::check_range(&self.mem, GuestAddress(addr), n));
        if !in_ram
            || monitor::overlaps(addr, len, self.pci.bar0(), ids::BAR0_SIZE)
            || !self.bus_master()
        {
            self.block(dir, addr, len, cause, in_ram);
            return false;
        }
        debug_assert_eq!(
            self.monitor.device_state(),
            self.gate_state(),
            "monitor state out of step"
        );
        self.monitor.check_dma(dir, addr, len, cause);
        true
    }

    /// What the monitor judges DMAs against; reported on every change
    /// ([`Nic::sync_gate_state`]) rather than built per access.
    fn gate_state(&self) -> GateState {
        GateState {
            bus_master: self.bus_master(),
            tx_enabled: self.regs.ctrl & regs::CTRL_TX_EN != 0,
            rx_enabled: self.regs.ctrl & regs::CTRL_RX_EN != 0,
            resetting: self.regs.resetting,
        }
    }

    /// Tell the monitor the enable, reset or bus-master state changed.
    fn sync_gate_state(&mut self) {
        let st = self.gate_state();
        self.monitor.set_device_state(st);
    }

    /// An access the device refuses: a device fault, and a violation.
    #[cold]
    #[inline(never)]
    fn block(&mut self, dir: DmaDir, addr: u64, len: u64, cause: DmaCause, in_ram: bool) {
        let ring = match cause {
            DmaCause::TxDesc(_) | DmaCause::TxData | DmaCause::TxStatus(_) => Some(true),
            DmaCause::RxDesc(_) | DmaCause::RxData | DmaCause::RxStatus(_) => Some(false),
            DmaCause::Poll { .. } | DmaCause::Ghost => None,
        };
        // The BAR first: in a real VM it sits in the MMIO window, which is
        // never RAM, so checking RAM first would hide every DMA aimed at the
        // device's own registers behind "outside RAM".
        let (code, rule) = if monitor::overlaps(addr, len, self.pci.bar0(), ids::BAR0_SIZE) {
            (DeviceError::AddressInBar, monitor::RULE_DMA_INTO_BAR)
        } else if !in_ram {
            (
                DeviceError::AddressOutsideRam,
                monitor::RULE_DMA_OUTSIDE_RAM,
            )
        } else {
            (DeviceError::BusMasterOff, monitor::RULE_DMA_BUS_MASTER_OFF)
        };
        if self.monitor.enabled() {
            self.monitor.violate(
                rule,
                format!("{} {dir:?} {addr:#x}+{len} blocked", cause.name()),
            );
        }
        self.fault(code, addr, ring);
    }

    #[inline(always)]
    fn dma_read(&mut self, addr: u64, buf: &mut [u8], cause: DmaCause) -> Result<(), Blocked> {
        if !self.gate(DmaDir::Read, addr, buf.len() as u64, cause) {
            return Err(Blocked);
        }
        // The gate checked the range, so this cannot fail; if it does,
        // treat it like an address outside RAM rather than panic.
        self.mem
            .read_slice(buf, GuestAddress(addr))
            .map_err(|_| Blocked)
    }

    #[inline(always)]
    fn dma_write(&mut self, addr: u64, buf: &[u8], cause: DmaCause) -> Result<(), Blocked> {
        if !self.gate(DmaDir::Write, addr, buf.len() as u64, cause) {
            return Err(Blocked);
        }
        self.mem
            .write_slice(buf, GuestAddress(addr))
            .map_err(|_| Blocked)
    }

    // ----------------------------------------------------------------
    // Transmit.
    // ----------------------------------------------------------------

    fn tx_can_run(&self) -> bool {
        let r = &self.regs;
        r.ctrl & regs::CTRL_TX_EN != 0 && !r.resetting && !r.tx.stopped && !self.stalled
    }

    /// Walk posted TX descriptors; at most `MAX_WORK_PER_DOORBELL`.
    ///
    /// Descriptors are fetched in bursts ([`TX_PREFETCH`]) and completions
    /// written back once per burst ([`Nic::write_back_tx`]), so a small
    /// packet costs the gate one data read plus a share of two burst
    /// accesses, as on e1000-class hardware.
    fn process_tx(&mut self) {
        if !self.tx_can_run() {
            return;
        }
        let walked = self.walk_tx();
        // Completions of packets sent before a fault still go out.
        self.write_back_tx();
        match walked {
            Ok(()) if self.cfg.mutant == DeviceMutant::PhantomCompletion => {
                self.phantom_completion();
            }
            Ok(()) | Err(TxStop::Blocked) => {}
            Err(TxStop::Fault(code, addr)) => self.fault(code, addr, Some(true)),
        }
    }

    /// The descriptor walk of [`Nic::process_tx`]; completions it makes
    /// due are left in `tx_wb` for the caller to write back.
    fn walk_tx(&mut self) -> Result<(), TxStop> {
        let ring = self.regs.tx;
        let Some(mask) = ring.mask() else {
            return Err(TxStop::Fault(
                DeviceError::BadRingSize,
                u64::from(ring.size),
            ));
        };
        // The tail must lie between HEAD and the oldest slot the device
        // still owns (the packet being gathered, or held completions) plus
        // the ring. Behind HEAD (moved back into a half-gathered packet),
        // HEAD would never meet it again and the walk would run on
        // through unposted slots.
        let owned_from = if self.held.is_empty() {
            ring.pkt_start
        } else {
            self.held_from
        };
        let posted = ring.tail.wrapping_sub(owned_from);
        if posted > ring.size || posted < ring.head.wrapping_sub(owned_from) {
            return Err(TxStop::Fault(DeviceError::BadTail, u64::from(ring.tail)));
        }
        let mut work = 0;
        while self.regs.tx.head != self.regs.tx.tail && work < abi::MAX_WORK_PER_DOORBELL {
            if self.stall_now() || self.held.len() >= regs::MAX_RING as usize {
                break;
            }
            let idx = self.regs.tx.head;
            let cached = self.regs.tx.fetched.wrapping_sub(self.tx_burst_start);
            if idx.wrapping_sub(self.tx_burst_start) >= cached {
                self.fetch_tx_burst(mask, abi::MAX_WORK_PER_DOORBELL - work)?;
            }
            work += 1;
            let frags = idx.wrapping_sub(self.regs.tx.pkt_start);
            let daddr = ring.desc_addr(idx, mask);
            if frags >= abi::MAX_DESC_PER_PACKET {
                return Err(TxStop::Fault(DeviceError::NoEndOfPacket, daddr));
            }
            let at = idx.wrapping_sub(self.tx_burst_start) as usize;
            let [addr, word] = self.tx_cache[at % TX_PREFETCH as usize];
            let (len, flags) = (word as u16, (word >> 16) as u8);
            self.regs.tx.head = idx.wrapping_add(1);
            if len == 0 {
                return Err(TxStop::Fault(DeviceError::ZeroLength, daddr));
            }
            let have = self.frame.len();
            if have + usize::from(len) > abi::MAX_FRAME_LEN as usize {
                return Err(TxStop::Fault(DeviceError::FrameTooBig, addr));
            }
            self.frame.resize(have + usize::from(len), 0);
            let mut frame = std::mem::take(&mut self.frame);
            let r = self.dma_read(addr, &mut frame[have..], DmaCause::TxData);
            self.frame = frame;
            r.map_err(|_| TxStop::Blocked)?;
            if flags & abi::TXD_EOP != 0 {
                let pkt_start = self.regs.tx.pkt_start;
                self.regs.tx.pkt_start = self.regs.tx.head;
                let seq = self.transmit();
                if self.cfg.complete_on_request {
                    if self.held.is_empty() {
                        self.held_from = pkt_start;
                    }
                    self.held.push_back(idx & mask);
                } else {
                    self.tx_wb.add(idx);
                }
                // The frame arrives after its completion is written, as
                // on a wire: TX interrupt first, then RX.
                if matches!(self.backend, Backend::Loopback) {
                    self.write_back_tx();
                    let frame = std::mem::take(&mut self.frame);
                    self.receive(&frame, seq);
                    self.frame = frame;
                }
                self.frame.clear();
            }
        }
        Ok(())
    }

    /// Fetch the next burst of posted descriptors, from HEAD, in one DMA:
    /// at most [`TX_PREFETCH`], `budget`, and the slots left before the
    /// ring wraps (a burst is one contiguous read).
    fn fetch_tx_burst(&mut self, mask: u32, budget: u32) -> Result<(), TxStop> {
        // The due completions are written back from the cache: first.
        self.write_back_tx();
        let r = self.regs.tx;
        let start = r.head;
        // At most the ring: `walk_tx` checked the tail against the packet
        // start, and HEAD is at or past it.
        let mut posted = r.tail.wrapping_sub(start);
        if self.cfg.mutant == DeviceMutant::PrefetchPastTail {
            posted = TX_PREFETCH;
        }
        let n = posted
            .min(TX_PREFETCH)
            .min(r.size - (start & mask))
            .min(budget)
            .max(1);
        let bytes = n as usize * DESC_SIZE as usize;
        let mut raw = [0u8; TX_PREFETCH as usize * DESC_SIZE as usize];
        self.dma_read(
            r.desc_addr(start, mask),
            &mut raw[..bytes],
            DmaCause::TxDesc(start & mask),
        )
        .map_err(|_| TxStop::Blocked)?;
        for (slot, d) in self.tx_cache.iter_mut().zip(raw[..bytes].chunks_exact(16)) {
            let w = |i: usize| u64::from_le_bytes(d[i..i + 8].try_into().unwrap_or_default());
            *slot = [w(0), w(8)];
        }
        self.tx_burst_start = start;
        self.regs.tx.fetched = start.wrapping_add(n);
        Ok(())
    }

    fn stall_now(&mut self) -> bool {
        if let (true, Some(n)) = (self.stall_armed, self.cfg.stall_completions_after) {
            // Completions not yet written back count: they will be.
            if self.completed + u64::from(self.tx_wb.count) >= n {
                self.stall_armed = false;
                self.stalled = true;
                self.monitor.emit(EventKind::Note {
                    text: "knob: TX stalled".into(),
                });
            }
        }
        self.stalled
    }

    /// Keep the first pcap write failure (later frames fail the same way).
    #[cold]
    fn record_output_error(&mut self, path: String, e: pcap_file::PcapError) {
        if self.output_error.is_none() {
            self.monitor.emit(EventKind::Note {
                text: format!("pcap {path}: write failed: {e}"),
            });
            self.output_error = Some(format!(
                "cannot write {path}: {e} (the capture is incomplete)"
            ));
        }
    }

    /// Log the gathered frame, keep a copy by seq and hand it to a
    /// non-loopback backend. Returns its sequence number.
    fn transmit(&mut self) -> u64 {
        let (len, hash) = (self.frame.len() as u32, frame_hash(&self.frame));
        let seq = self.tx_seq;
        self.tx_seq += 1;
        self.regs.stat_tx = self.regs.stat_tx.wrapping_add(1);
        self.monitor.emit(EventKind::TxFrame { seq, len, hash });
        let mut keep = if self.recent.len() >= RECENT_FRAMES {
            self.recent.pop_front().map(|(_, v)| v).unwrap_or_default()
        } else {
            Vec::with_capacity(abi::MAX_FRAME_LEN as usize)
        };
        keep.clear();
        keep.extend_from_slice(&self.frame);
        self.recent.push_back((seq, keep));
        let sent = self.backend.send(&self.frame, self.now_ns);
        if let (Err(e), BackendConfig::Pcap(path)) = (sent, &self.cfg.backend) {
            self.record_output_error(path.clone(), e);
        }
        if let Some(tap) = &mut self.capture {
            if let (Err(e), Some(path)) = (tap.send(&self.frame, self.now_ns), &self.cfg.capture) {
                self.record_output_error(path.clone(), e);
            }
        }
        seq
    }

    /// Write back the due completions of the current burst as one DMA:
    /// the descriptors from the first due EOP to the last, as fetched,
    /// with DONE in each EOP's status (e1000-class NICs write back whole
    /// descriptors too). Descriptor by descriptor in ring order, each as
    /// two aligned 8-byte stores with the status in the second, so a
    /// driver reclaiming on another vCPU never sees a DONE before the rest
    /// of its descriptor, and no descriptor is written again once its DONE
    /// is visible.
    fn write_back_tx(&mut self) {
        let wb = std::mem::take(&mut self.tx_wb);
        if wb.count == 0 {
            return;
        }
        let ring = self.regs.tx;
        let Some(mask) = ring.mask() else { return };
        let n = wb.last.wrapping_sub(wb.first).wrapping_add(1);
        let addr = ring.desc_addr(wb.first, mask);
        let len = u64::from(n) * DESC_SIZE;
        if !self.gate(
            DmaDir::Write,
            addr,
            len,
            DmaCause::TxStatus(wb.first & mask),
        ) {
            return;
        }
        // Aligned 8-byte stores where the ring allows; a misaligned ring
        // (or one across two RAM regions) gets plain copies, same order.
        let dst = self.mem.get_slice(GuestAddress(addr), len as usize).ok();
        const STATUS: u64 = 0xffff << 32;
        let first = wb.first.wrapping_sub(self.tx_burst_start);
        for k in 0..n {
            let [a, mut w] = self.tx_cache[(first.wrapping_add(k) % TX_PREFETCH) as usize];
            if (w >> 16) as u8 & abi::TXD_EOP != 0 {
                w = w & !STATUS | u64::from(abi::TXD_STAT_DONE) << 32;
            }
            let off = k as usize * DESC_SIZE as usize;
            let stored = dst.as_ref().is_some_and(|d| {
                d.store(a, off, Ordering::Relaxed).is_ok()
                    && d.store(w, off + 8, Ordering::Release).is_ok()
            });
            if !stored {
                let at = addr + off as u64;
                let _ = self.mem.write_slice(&a.to_le_bytes(), GuestAddress(at));
                let _ = self.mem.write_slice(&w.to_le_bytes(), GuestAddress(at + 8));
            }
        }
        for _ in 0..wb.count {
            self.count_tx_completion();
        }
    }

    /// A completion went out: count it and moderate the TX interrupt.
    fn count_tx_completion(&mut self) {
        self.completed += 1;
        let r = &mut self.regs;
        let (frames, usecs) = (r.coal_tx_frames, r.coal_tx_usecs);
        if moderate(
            &mut r.tx_uncoalesced,
            frames,
            usecs,
            &mut self.timers.tx_coal,
            self.now_ns,
        ) {
            self.fire_tx_irq();
        } else if self.tx_unsignalled_since.is_none() {
            self.tx_unsignalled_since = Some(self.now_ns);
        }
    }

    /// One held completion (TEST_COMPLETE): the status word alone.
    fn write_tx_completion(&mut self, slot: u32) {
        // The base is guest-written: wrap like the hardware's address adder.
        let addr = self
            .regs
            .tx
            .base
            .wrapping_add(u64::from(slot) * DESC_SIZE)
            .wrapping_add(TXD_STATUS_OFFSET);
        if self
            .dma_write(
                addr,
                &abi::TXD_STAT_DONE.to_le_bytes(),
                DmaCause::TxStatus(slot),
            )
            .is_err()
        {
            return;
        }
        self.count_tx_completion();
    }

    /// TEST_COMPLETE: write every held completion, but only while TX is
    /// enabled (a disabled ring makes no DMA; they stay held until TX is
    /// back) and no reset is running.
    fn complete_held(&mut self) {
        if self.regs.ctrl & regs::CTRL_TX_EN == 0 || self.regs.resetting {
            return;
        }
        while let Some(slot) = self.held.pop_front() {
            self.write_tx_completion(slot);
        }
    }

    /// Mutant: a completion for the slot at the tail, which the driver
    /// has not posted (unless the ring is full).
    fn phantom_completion(&mut self) {
        let ring = self.regs.tx;
        let Some(mask) = ring.mask() else { return };
        if ring.tail.wrapping_sub(ring.pkt_start) >= ring.size {
            return;
        }
        let slot = ring.tail & mask;
        let addr = ring.desc_addr(slot, mask).wrapping_add(TXD_STATUS_OFFSET);
        let _ = self.dma_write(
            addr,
            &abi::TXD_STAT_DONE.to_le_bytes(),
            DmaCause::TxStatus(slot),
        );
    }

    // ----------------------------------------------------------------
    // Receive.
    // ----------------------------------------------------------------

    /// Validate the RX ring after a doorbell.
    fn check_rx_ring(&mut self) {
        let r = self.regs.rx;
        if r.stopped || self.regs.resetting {
            return;
        }
        if r.mask().is_none() {
            self.fault(DeviceError::BadRingSize, u64::from(r.size), Some(false));
        } else if r.tail.wrapping_sub(r.head) > r.size {
            self.fault(DeviceError::BadTail, u64::from(r.tail), Some(false));
        }
    }

    /// Put one frame (TX sequence `seq`) into the next RX buffer.
    fn receive(&mut self, frame: &[u8], seq: u64) {
        let r = self.regs.rx;
        if self.regs.ctrl & regs::CTRL_RX_EN == 0 || self.regs.resetting || r.stopped {
            self.regs.stat_rx_drops = self.regs.stat_rx_drops.wrapping_add(1);
            return;
        }
        let Some(mask) = r.mask() else {
            return self.fault(DeviceError::BadRingSize, u64::from(r.size), Some(false));
        };
        let posted = r.tail.wrapping_sub(r.head);
        if posted > r.size {
            return self.fault(DeviceError::BadTail, u64::from(r.tail), Some(false));
        }
        if posted == 0 {
            self.regs.stat_rx_drops = self.regs.stat_rx_drops.wrapping_add(1);
            return;
        }
        let slot = r.head & mask;
        let daddr = r.desc_addr(slot, mask);
        let mut raw = [0u8; DESC_SIZE as usize];
        if self
            .dma_read(daddr, &mut raw, DmaCause::RxDesc(slot))
            .is_err()
        {
            return;
        }
        let addr = u64::from_le_bytes(raw[0..8].try_into().unwrap_or_default());
        let buf_len = u16::from_le_bytes([raw[8], raw[9]]);
        self.regs.rx.head = r.head.wrapping_add(1);
        if buf_len == 0 {
            return self.fault(DeviceError::ZeroLength, daddr, Some(false));
        }
        if frame.len() > usize::from(buf_len) {
            return self.fault(DeviceError::LengthTooBig, addr, Some(false));
        }
        if self.dma_write(addr, frame, DmaCause::RxData).is_err() {
            return;
        }
        let len = frame.len() as u16; // <= buf_len, a u16
        let mut wb = [0u8; 4];
        wb[..2].copy_from_slice(&len.to_le_bytes());
        wb[2..].copy_from_slice(&abi::RXD_STAT_DONE.to_le_bytes());
        if self
            .dma_write(
                daddr.wrapping_add(RXD_LEN_OFFSET),
                &wb,
                DmaCause::RxStatus(slot),
            )
            .is_err()
        {
            return;
        }
        self.rx_seq += 1;
        self.regs.stat_rx = self.regs.stat_rx.wrapping_add(1);
        self.monitor.emit(EventKind::RxFrame {
            seq,
            addr,
            len: u32::from(len),
        });
        let r = &mut self.regs;
        let (frames, usecs) = (r.coal_rx_frames, r.coal_rx_usecs);
        if moderate(
            &mut r.rx_uncoalesced,
            frames,
            usecs,
            &mut self.timers.rx_coal,
            self.now_ns,
        ) {
            self.fire_rx_irq();
        } else if self.rx_unsignalled_since.is_none() {
            self.rx_unsignalled_since = Some(self.now_ns);
        }
    }

    // ----------------------------------------------------------------
    // Knob and mutant activity on timers.
    // ----------------------------------------------------------------

    /// r8169-like: re-read the next descriptor of each enabled ring.
    fn poll_rings(&mut self) {
        if !self.cfg.dma_until_disabled || self.regs.resetting || !self.enabled() {
            return;
        }
        let mut raw = [0u8; DESC_SIZE as usize];
        for (bit, ring, tx) in [
            (regs::CTRL_TX_EN, self.regs.tx, true),
            (regs::CTRL_RX_EN, self.regs.rx, false),
        ] {
            if let (true, Some(mask), false) =
                (self.regs.ctrl & bit != 0, ring.mask(), ring.stopped)
            {
                let addr = ring.desc_addr(ring.head, mask);
                let _ = self.dma_read(addr, &mut raw, DmaCause::Poll { tx });
            }
        }
        if self.enabled() {
            self.timers.poll = Some(self.now_ns.saturating_add(POLL_PERIOD_NS));
        }
    }

    fn ghost_dma(&mut self) {
        if self.enabled() || self.ghost_dma_left == 0 {
            return; // re-enabled: the ring is legitimately active again
        }
        self.ghost_dma_left -= 1;
        let mut raw = [0u8; DESC_SIZE as usize];
        let _ = self.dma_read(self.ghost_dma_addr, &mut raw, DmaCause::Ghost);
        if self.ghost_dma_left > 0 {
            self.timers.ghost_dma = Some(self.now_ns.saturating_add(GHOST_PERIOD_NS));
        }
    }

    fn ghost_irq(&mut self) {
        if self.ghost_irq_left == 0 {
            return;
        }
        self.ghost_irq_left -= 1;
        self.regs.int_cause |= regs::INT_TX;
        let enabled = self.regs.int_enable & regs::INT_TX != 0;
        self.raise_vector(ids::MSIX_TX, enabled);
        if self.ghost_irq_left > 0 {
            self.timers.ghost_irq = Some(self.now_ns.saturating_add(GHOST_PERIOD_NS));
        }
    }
}

/// Whether `len` bytes at BAR offset `off` lie inside BAR0.
fn in_bar(off: u64, len: usize) -> bool {
    off.checked_add(len as u64)
        .is_some_and(|end| end <= ids::BAR0_SIZE)
}

/// Interrupt moderation for one more completed (TX) or received (RX)
/// frame: true if the interrupt is due now (`frames` since the last one,
/// 0 or 1 = each); otherwise arm the `usecs` timer if it is set and not
/// running yet.
fn moderate(
    count: &mut u32,
    frames: u32,
    usecs: u32,
    timer: &mut Option<u64>,
    now_ns: u64,
) -> bool {
    *count += 1;
    if *count >= frames.max(1) {
        return true;
    }
    if usecs > 0 && timer.is_none() {
        *timer = Some(now_ns.saturating_add(u64::from(usecs) * 1000));
    }
    false
}

/// The hash logged with every `TxFrame`: 8 bytes per step, so hashing a
/// 1500-byte frame costs far less than copying it did. The host checker
/// recomputes it over received bytes.
pub fn frame_hash(data: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut h = data.len() as u64 ^ K;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes(c.try_into().unwrap_or_default());
        h = (h ^ w).wrapping_mul(K).rotate_left(29);
    }
    let mut last = [0u8; 8];
    last[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
    h = (h ^ u64::from_le_bytes(last)).wrapping_mul(K);
    h ^ (h >> 32)
}
