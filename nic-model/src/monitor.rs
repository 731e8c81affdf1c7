//! The DMA monitor: the oracle half of the one DMA gate.
//!
//! The device (`device/dma.rs`) routes every guest-memory access through
//! `Nic::dma`, which asks this monitor to judge it. The monitor keeps its
//! own view of what the driver allows, built only from the driver's
//! markers (dma-map, dma-unmap, open-enter, stop-exit) and from the
//! register writes it observes, never from the device's internal state,
//! so a broken device (a mutant) cannot hide its own mistakes.
//!
//! A failed check is a [`Violation`], logged as
//! `EventKind::Violation { rule, detail }` right after the access it
//! judges; the access itself is not blocked (the oracle watches, the
//! device decides). Rule names are stable: tests and reports match them.
//! The `RULE_*` names are the catalogue's ([`crate::rules::Rule`]).

use crate::abi::{regs, Marker};
use crate::events::{Batch, DmaDir, EventKind, EventLog, Source, DMA_CAUSES};
use crate::intervals::{MapEntry, MapTree};
use crate::rules::Rule;

/// A DMA after the driver's stop-exit marker, before the next open.
pub const RULE_DMA_AFTER_STOP: &str = Rule::DmaAfterStop.name();
/// A DMA outside every range the driver has mapped.
pub const RULE_DMA_UNMAPPED: &str = Rule::DmaUnmapped.name();
/// A device write into a to-device mapping, or a read of a from-device one.
pub const RULE_DMA_WRONG_DIRECTION: &str = Rule::DmaWrongDirection.name();
/// A DMA attempted with bus mastering off (the device blocks it).
pub const RULE_DMA_BUS_MASTER_OFF: &str = Rule::DmaBusMasterOff.name();
/// A DMA for a ring whose enable bit is clear.
pub const RULE_DMA_DEVICE_DISABLED: &str = Rule::DmaDeviceDisabled.name();
/// A DMA while a reset is in progress.
pub const RULE_DMA_DURING_RESET: &str = Rule::DmaDuringReset.name();
/// A DMA address outside guest RAM (the device blocks it).
pub const RULE_DMA_OUTSIDE_RAM: &str = Rule::DmaOutsideRam.name();
/// A DMA address inside the device's own BAR (the device blocks it).
pub const RULE_DMA_INTO_BAR: &str = Rule::DmaIntoBar.name();
/// A descriptor fetched out of order or beyond what the driver posted.
pub const RULE_DESC_UNPOSTED: &str = Rule::DescUnposted.name();
/// A completion written for a descriptor the device never fetched.
pub const RULE_COMPLETION_UNPOSTED: &str = Rule::CompletionUnposted.name();
/// An interrupt message delivered after stop-exit.
pub const RULE_IRQ_AFTER_STOP: &str = Rule::IrqAfterStop.name();
/// An interrupt raised for a cause the driver has not enabled.
pub const RULE_IRQ_WHILE_DISABLED: &str = Rule::IrqWhileDisabled.name();
/// A reset that did not return the device to its reset state.
pub const RULE_RESET_INEFFECTIVE: &str = Rule::ResetIneffective.name();
/// An MSI-X message aimed outside the local APIC window (the device
/// refuses to send it).
pub const RULE_MSI_BAD_ADDRESS: &str = Rule::MsiBadAddress.name();
/// A dma-unmap of a range that is not mapped.
pub const RULE_UNMAP_UNMAPPED: &str = Rule::UnmapUnmapped.name();
/// A TX completion or RX frame written back while the device was enabled
/// whose interrupt cause was not latched within the bound its coalescing
/// settings give ([`crate::device::signal_bound_ns`]), or that waits with
/// no coalescing timer to ever signal it (interrupt moderation by frame
/// count alone: the mvneta 01b23da3607d hang).
pub const RULE_COMPLETION_UNSIGNALLED: &str = Rule::CompletionUnsignalled.name();

/// What the DMA is for; decides which ring checks apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DmaCause {
    /// Fetch of TX descriptors from ring slot `.0` (a burst: the length
    /// says how many).
    TxDesc(u32),
    /// Read of TX fragment data.
    TxData,
    /// Completion write-back from TX slot `.0`: one status word, or whole
    /// descriptors up to the last completed EOP (the length says).
    TxStatus(u32),
    /// Fetch of an RX descriptor at slot `.0`.
    RxDesc(u32),
    /// Write of received frame data.
    RxData,
    /// Length/status write-back into RX slot `.0`.
    RxStatus(u32),
    /// An r8169-style descriptor poll (knob `dma_until_disabled`) of the
    /// TX ring (`tx: true`) or the RX ring: judged against that ring's
    /// enable bit.
    Poll {
        /// The TX ring (else RX).
        tx: bool,
    },
    /// A mutant's stray access.
    Ghost,
}

impl DmaCause {
    /// Stable name used in `EventKind::Dma::cause`.
    pub fn name(self) -> &'static str {
        DMA_CAUSES[usize::from(self.id())]
    }
    /// Index into [`DMA_CAUSES`], the log's compact form.
    pub fn id(self) -> u8 {
        match self {
            Self::TxDesc(_) => 0,
            Self::TxData => 1,
            Self::TxStatus(_) => 2,
            Self::RxDesc(_) => 3,
            Self::RxData => 4,
            Self::RxStatus(_) => 5,
            Self::Poll { .. } => 6,
            Self::Ghost => 7,
        }
    }
    fn is_tx(self) -> bool {
        matches!(
            self,
            Self::TxDesc(_) | Self::TxData | Self::TxStatus(_) | Self::Poll { tx: true }
        )
    }
}

/// One failed check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Sequence number of the Violation event in the log.
    pub seq: u64,
    /// Stable rule name (`RULE_*`).
    pub rule: &'static str,
    /// What happened and which earlier events it relates to.
    pub detail: String,
}

/// The monitor's own copy of one ring, built from register writes.
#[derive(Clone, Copy, Debug, Default)]
struct ShadowRing {
    base: u64,
    size: u32,
    /// `size - 1` if the size is a valid ring size (set with `size`).
    valid_mask: Option<u32>,
    tail: u32,
    /// Next slot index (free-running) the device may fetch.
    fetched: u32,
    /// Oldest fetched slot whose completion is not yet written.
    done: u32,
}

impl ShadowRing {
    fn set_size(&mut self, size: u32) {
        self.size = size;
        self.valid_mask = (size.is_power_of_two() && size <= regs::MAX_RING).then(|| size - 1);
    }
    #[inline(always)]
    fn mask(&self) -> Option<u32> {
        self.valid_mask
    }
    /// If `n` slots from `slot` are the next ones the driver posted (and
    /// do not wrap: a burst is one contiguous read), advance and say so.
    /// (The hot path: the message is built by `fetch_error` only on failure.)
    #[inline(always)]
    fn fetch(&mut self, slot: u32, n: u32) -> bool {
        let Some(m) = self.mask() else { return true };
        let posted = self.tail.wrapping_sub(self.fetched);
        if n == 0
            || n > posted
            || posted > self.size
            || slot != self.fetched & m
            || slot + n > self.size
        {
            return false;
        }
        self.fetched = self.fetched.wrapping_add(n);
        true
    }
    fn fetch_error(&self, slot: u32, n: u32) -> String {
        let m = self.mask().unwrap_or(0);
        format!(
            "fetched {n} slot(s) from {slot}; next posted is {} with {} posted (tail {})",
            self.fetched & m,
            self.tail.wrapping_sub(self.fetched),
            self.tail
        )
    }
    /// If the `n` slots from `slot` were fetched and not yet completed,
    /// advance past them and say so.
    #[inline(always)]
    fn complete(&mut self, slot: u32, n: u32) -> bool {
        let Some(m) = self.mask() else { return true };
        let open = self.fetched.wrapping_sub(self.done);
        let d = slot.wrapping_sub(self.done & m) & m;
        if n == 0 || d.saturating_add(n) > open || open > self.size {
            return false;
        }
        self.done = self.done.wrapping_add(d + n);
        true
    }
    fn complete_error(&self, slot: u32, n: u32) -> String {
        let m = self.mask().unwrap_or(0);
        format!(
            "completion for {n} slot(s) from {slot}; fetched-not-completed window is {} slots from {}",
            self.fetched.wrapping_sub(self.done),
            self.done & m
        )
    }
}

/// A cached map range `[start, end)` (see `DmaMonitor::hits`).
#[derive(Clone, Copy, Debug)]
struct MapHit {
    start: u64,
    end: u64,
}

/// Hit slots: the six ring and data causes, times two directions.
const HIT_SLOTS: usize = 12;

/// The hit slot of an access, if its cause has one (poll and ghost
/// accesses always take the full check).
#[inline(always)]
fn hit_slot(cause: DmaCause, dir: DmaDir) -> Option<usize> {
    let id = usize::from(cause.id());
    (id < HIT_SLOTS / 2).then(|| id * 2 + usize::from(dir == DmaDir::Write))
}

impl MapHit {
    // start > end: contains nothing.
    const NONE: Self = Self { start: 1, end: 0 };
    /// Map direction (0 = to device, 1 = from device, 2 = both) as bits.
    fn allow_bits(map_dir: u64) -> u8 {
        match map_dir {
            0 => 1,
            1 => 2,
            _ => 3,
        }
    }
}

fn dir_bit(dir: DmaDir) -> u8 {
    match dir {
        DmaDir::Read => 1,
        DmaDir::Write => 2,
    }
}

/// Device state the enable checks judge against; the device reports it
/// with [`DmaMonitor::set_device_state`] each time it changes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GateState {
    /// PCI command bus-master bit.
    pub bus_master: bool,
    /// CTRL_TX_EN.
    pub tx_enabled: bool,
    /// CTRL_RX_EN.
    pub rx_enabled: bool,
    /// STATUS_RESETTING.
    pub resetting: bool,
}

/// The DMA monitor of one device.
pub struct DmaMonitor {
    enabled: bool,
    log: EventLog,
    /// Live dma-maps by start: an interval tree, so a lookup is O(log n)
    /// whether it finds a map or not.
    mapped: MapTree,
    /// Sequence number of the stop-exit marker while the window is shut.
    stopped_at: Option<u64>,
    tx: ShadowRing,
    rx: ShadowRing,
    violations: Vec<Violation>,
    /// Device events of the current register access, not yet published.
    pending: Batch,
    /// Per (cause, direction), the last live map that let such an access
    /// through with every window rule met: the next access of that kind
    /// inside it passes with two compares. Emptied whenever a map, the
    /// stop marker or the device state changes, so a hit never hides a
    /// rule that has since started to apply.
    hits: [MapHit; HIT_SLOTS],
    /// The device state last reported.
    state: GateState,
    /// Why a DMA would break a window rule now (`CLOSED_*` bits; 0 = the
    /// window is open for both rings). Recomputed whenever the state or
    /// the stop marker changes, so the per-access check is one test.
    closed: u8,
}

/// TX is disabled (`closed` bit).
const CLOSED_TX: u8 = 1;
/// RX is disabled.
const CLOSED_RX: u8 = 2;
/// A reset is in progress.
const CLOSED_RESET: u8 = 4;
/// After stop-exit, before the next open.
const CLOSED_STOPPED: u8 = 8;

impl std::fmt::Debug for DmaMonitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DmaMonitor")
            .field("enabled", &self.enabled)
            .field("mapped", &self.mapped.entries())
            .field("stopped_at", &self.stopped_at)
            .field("violations", &self.violations)
            .finish()
    }
}

impl DmaMonitor {
    /// A monitor that logs into `log`; `enabled = false` skips every
    /// check and DMA event (benchmarks only).
    pub fn new(enabled: bool, log: EventLog) -> Self {
        Self {
            enabled,
            log,
            mapped: MapTree::default(),
            stopped_at: None,
            tx: ShadowRing::default(),
            rx: ShadowRing::default(),
            violations: Vec::new(),
            pending: Batch::with_capacity(1024),
            hits: [MapHit::NONE; HIT_SLOTS],
            state: GateState::default(),
            closed: CLOSED_TX | CLOSED_RX,
        }
    }

    /// The device's enable bits or reset state changed.
    pub fn set_device_state(&mut self, st: GateState) {
        self.state = st;
        self.update_closed();
    }

    /// The state the monitor judges against (tests assert the device
    /// keeps it in step).
    pub fn device_state(&self) -> GateState {
        self.state
    }

    fn update_closed(&mut self) {
        self.hits = [MapHit::NONE; HIT_SLOTS];
        let st = self.state;
        let bit = |cond: bool, b: u8| if cond { b } else { 0 };
        self.closed = bit(!st.tx_enabled, CLOSED_TX)
            | bit(!st.rx_enabled, CLOSED_RX)
            | bit(st.resetting, CLOSED_RESET)
            | bit(self.stopped_at.is_some(), CLOSED_STOPPED);
    }

    /// Queue a device event; [`DmaMonitor::flush`] publishes the queue.
    pub fn emit(&mut self, kind: EventKind) {
        self.pending.push(kind);
    }

    /// Publish queued events, then `kind`; returns its sequence number.
    pub fn push(&mut self, kind: EventKind) -> u64 {
        self.flush();
        self.log.push(Source::Device, kind)
    }

    /// Publish queued events (end of every device entry point).
    pub fn flush(&mut self) {
        if !self.pending.is_empty() {
            self.log.publish(Source::Device, &mut self.pending);
        }
    }

    /// Whether checks run.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Every violation so far.
    pub fn violations(&self) -> &[Violation] {
        &self.violations
    }

    /// Record a violation in the log and the list.
    pub fn violate(&mut self, rule: &'static str, detail: String) {
        tracing::debug!(rule, %detail, "dma monitor violation");
        let seq = self.push(EventKind::Violation {
            rule: rule.to_string(),
            detail: detail.clone(),
        });
        self.violations.push(Violation { seq, rule, detail });
    }

    /// A driver marker, as the VMM decoded it from the control port.
    /// Only the ones that shape the DMA window matter here.
    pub fn on_marker(&mut self, marker: Marker, args: &[u64], seq: u64) {
        let arg = |i: usize| args.get(i).copied().unwrap_or(0);
        self.hits = [MapHit::NONE; HIT_SLOTS];
        match marker {
            Marker::DmaMap => {
                let (addr, len, dir) = (arg(1), arg(2), arg(3));
                // Same start mapped again: the wider range, counted twice.
                self.mapped.map(addr, addr.saturating_add(len), dir);
            }
            Marker::DmaUnmap => {
                let (addr, len) = (arg(1), arg(2));
                if !self.mapped.unmap(addr) {
                    self.violate(
                        RULE_UNMAP_UNMAPPED,
                        format!("dma-unmap {addr:#x}+{len} at seq {seq} matches no live map"),
                    );
                }
            }
            Marker::StopExit => self.stopped_at = Some(seq),
            Marker::OpenEnter => self.stopped_at = None,
            _ => {}
        }
        self.update_closed();
    }

    /// Number of live dma-map ranges.
    pub fn live_maps(&self) -> usize {
        self.mapped.live()
    }

    /// A register write the device accepted; feeds the ring shadows.
    pub fn on_reg_write(&mut self, off: u32, v: u32) {
        match off {
            regs::TX_BASE_LO => self.tx.base = self.tx.base & !0xffff_ffff | u64::from(v),
            regs::TX_BASE_HI => self.tx.base = self.tx.base & 0xffff_ffff | u64::from(v) << 32,
            regs::TX_SIZE => self.tx.set_size(v),
            regs::TX_TAIL => self.tx.tail = v,
            regs::RX_BASE_LO => self.rx.base = self.rx.base & !0xffff_ffff | u64::from(v),
            regs::RX_BASE_HI => self.rx.base = self.rx.base & 0xffff_ffff | u64::from(v) << 32,
            regs::RX_SIZE => self.rx.set_size(v),
            regs::RX_TAIL => self.rx.tail = v,
            regs::CTRL if v & regs::CTRL_RESET != 0 => {
                self.tx = ShadowRing::default();
                self.rx = ShadowRing::default();
            }
            _ => {}
        }
    }

    /// Judge one DMA that the device's own checks let through. Logs the
    /// Dma event first, then any violations.
    ///
    /// This runs for every access (one data read per small packet, plus a
    /// share of the TX bursts), so the passing case is one 16-byte log
    /// record, the ring-order check of ring causes and, on a hit, two
    /// compares; the full check and the messages are out of line
    /// (`check_dma_slow`, `report_dma`).
    #[inline(always)]
    pub fn check_dma(&mut self, dir: DmaDir, addr: u64, len: u64, cause: DmaCause) {
        if !self.enabled {
            return;
        }
        // The Dma event is queued; a violation publishes it first, so each
        // Violation directly follows the access it judges.
        self.pending.dma(dir, addr, len, cause.id());
        // Ring order is state that every access advances: always checked.
        let ring_ok = match cause {
            DmaCause::TxDesc(s) => self.tx.fetch(s, slots(len)),
            DmaCause::TxStatus(s) => self.tx.complete(s, slots(len)),
            DmaCause::RxDesc(s) => self.rx.fetch(s, slots(len)),
            DmaCause::RxStatus(s) => self.rx.complete(s, slots(len)),
            _ => true,
        };
        // The window and map rules: a hit means an access of this kind
        // inside this map passed them since the last change.
        if let (Some(slot), Some(end)) = (hit_slot(cause, dir), addr.checked_add(len)) {
            let h = self.hits[slot];
            if ring_ok && h.start <= addr && end <= h.end {
                return;
            }
        }
        self.check_dma_slow(dir, addr, len, cause, ring_ok);
    }

    /// The full window and map check; fills the hit slot on a pass.
    #[inline(never)]
    fn check_dma_slow(&mut self, dir: DmaDir, addr: u64, len: u64, cause: DmaCause, ring_ok: bool) {
        let window_ok = match cause {
            // A stray access is judged against whichever ring is enabled.
            DmaCause::Ghost => {
                self.closed & (CLOSED_RESET | CLOSED_STOPPED) == 0
                    && self.closed & (CLOSED_TX | CLOSED_RX) != CLOSED_TX | CLOSED_RX
            }
            c if c.is_tx() => self.closed & !CLOSED_RX == 0,
            _ => self.closed & !CLOSED_TX == 0,
        };
        // One lookup serves the pass and, passed on, the report.
        let map = addr
            .checked_add(len)
            .and_then(|end| self.mapped.covering(addr, end));
        match map {
            Some(e) if window_ok && MapHit::allow_bits(e.dir) & dir_bit(dir) != 0 => {
                if let Some(slot) = hit_slot(cause, dir) {
                    self.hits[slot] = MapHit {
                        start: e.start,
                        end: e.end,
                    };
                }
                if !ring_ok {
                    self.report_dma(dir, addr, len, cause, ring_ok, map);
                }
            }
            _ => self.report_dma(dir, addr, len, cause, ring_ok, map),
        }
    }

    /// The failing half of [`DmaMonitor::check_dma`]: one violation per
    /// broken rule, in a fixed order. `map` is the check's own lookup.
    #[cold]
    #[inline(never)]
    fn report_dma(
        &mut self,
        dir: DmaDir,
        addr: u64,
        len: u64,
        cause: DmaCause,
        ring_ok: bool,
        map: Option<MapEntry>,
    ) {
        let st = self.state;
        let ring_enabled = match cause {
            DmaCause::Ghost => st.tx_enabled || st.rx_enabled,
            c if c.is_tx() => st.tx_enabled,
            _ => st.rx_enabled,
        };
        let map = map.map(|e| e.dir);
        let what = || format!("{} {:?} {addr:#x}+{len}", cause.name(), dir);
        if let Some(stop) = self.stopped_at {
            self.violate(
                RULE_DMA_AFTER_STOP,
                format!("{} after stop-exit at seq {stop}", what()),
            );
        }
        if st.resetting {
            self.violate(RULE_DMA_DURING_RESET, what());
        } else if !ring_enabled {
            self.violate(RULE_DMA_DEVICE_DISABLED, what());
        }
        match map {
            None => self.violate(
                RULE_DMA_UNMAPPED,
                format!("{} is in no live dma-map", what()),
            ),
            Some(d) if (d == 0 && dir == DmaDir::Write) || (d == 1 && dir == DmaDir::Read) => self
                .violate(
                    RULE_DMA_WRONG_DIRECTION,
                    format!("{} into a map of direction {d}", what()),
                ),
            Some(_) => {}
        }
        if !ring_ok {
            let n = slots(len);
            let (rule, e) = match cause {
                DmaCause::TxDesc(s) => (RULE_DESC_UNPOSTED, self.tx.fetch_error(s, n)),
                DmaCause::RxDesc(s) => (RULE_DESC_UNPOSTED, self.rx.fetch_error(s, n)),
                DmaCause::TxStatus(s) => (RULE_COMPLETION_UNPOSTED, self.tx.complete_error(s, n)),
                DmaCause::RxStatus(s) => (RULE_COMPLETION_UNPOSTED, self.rx.complete_error(s, n)),
                _ => return,
            };
            self.violate(rule, format!("{}: {e}", what()));
        }
    }

    /// Judge an interrupt the device raised: `enabled` says whether its
    /// cause was enabled in INT_ENABLE, `delivered` whether a message
    /// actually went out.
    pub fn check_irq(&mut self, vector: u16, enabled: bool, delivered: bool, irq_seq: u64) {
        if !self.enabled {
            return;
        }
        if !enabled {
            self.violate(
                RULE_IRQ_WHILE_DISABLED,
                format!("vector {vector} raised (event {irq_seq}) for a cause not in INT_ENABLE"),
            );
        }
        if let (Some(stop), true) = (self.stopped_at, delivered) {
            self.violate(
                RULE_IRQ_AFTER_STOP,
                format!(
                    "vector {vector} delivered (event {irq_seq}) after stop-exit at seq {stop}"
                ),
            );
        }
    }
}

/// How many 16-byte descriptor slots an access of `len` bytes that
/// starts in slot `s` (of a `DmaCause` naming `s`) touches: a burst of
/// whole descriptors, or one status word.
#[inline(always)]
fn slots(len: u64) -> u32 {
    u32::try_from(len.div_ceil(16)).unwrap_or(u32::MAX)
}

/// Whether `[addr, addr+len)` overlaps `[base, base+size)`.
pub fn overlaps(addr: u64, len: u64, base: u64, size: u64) -> bool {
    let end = addr.saturating_add(len);
    addr < base.saturating_add(size) && base < end
}
