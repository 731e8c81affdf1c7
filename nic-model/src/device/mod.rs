//! The NIC's register core, split by engine as Firecracker's devices and
//! Linux's igc are: [`regs`] (register file, BAR0 and configuration
//! accesses, reset), [`dma`] (the one gate every guest-memory access goes
//! through), [`tx`] (descriptor fetch, gather, transmit, completion
//! write-back), [`rx`] (receive into posted buffers), [`irq`] (causes,
//! MSI-X delivery, moderation, the `completion-unsignalled` check) and
//! [`faults`] (the fault knobs and device mutants: ghost DMA and
//! interrupts, phantom completions, stalls, descriptor polling, forced
//! interrupts in a window).
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

mod dma;
mod faults;
mod irq;
mod regs;
mod rx;
mod tx;

pub use faults::POLL_PERIOD_NS;
pub use irq::{signal_bound_ns, SIGNAL_BOUND_NS, SIGNAL_SLACK_NS};
pub use tx::{frame_hash, TX_PREFETCH};

use self::regs::Regs;
use self::tx::TxWriteBack;
use crate::abi::{self, Marker};
use crate::backend::Backend;
use crate::config::{BackendConfig, NicConfig, WindowStart};
use crate::error::NicError;
use crate::events::EventLog;
use crate::monitor::{DmaMonitor, Violation};
use crate::msix::{MsiSink, Msix};
use crate::pci::ConfigSpace;
use std::collections::VecDeque;
use std::sync::Arc;
use vm_memory::GuestMemoryMmap;

/// How many transmitted frames [`Nic::tx_frame`] keeps.
pub const RECENT_FRAMES: usize = 1024;

/// Most timer expiries one [`Nic::advance`] call runs.
const MAX_TIMERS_PER_ADVANCE: u32 = 1024;

/// Virtual-time deadlines, in ns.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Timers {
    reset_done: Option<u64>,
    tx_coal: Option<u64>,
    rx_coal: Option<u64>,
    poll: Option<u64>,
    ghost_dma: Option<u64>,
    ghost_irq: Option<u64>,
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
    /// Reset requests since power-on (`NicConfig::hang_nth_reset`).
    resets: u64,
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
            resets: 0,
        })
    }

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
        self.regs.ctrl & (abi::regs::CTRL_TX_EN | abi::regs::CTRL_RX_EN) != 0
    }

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
            let starts =
                marker == start && (start != Marker::NapiDisable || args.get(1) == Some(&1));
            if starts {
                let n = self.window_starts;
                self.window_starts += 1;
                self.window_left = Some(w.at_write.unwrap_or(n));
                self.window_write();
            }
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
}
