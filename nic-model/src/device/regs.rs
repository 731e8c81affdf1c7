//! The register file: rings, BAR0 and PCI configuration accesses, CTRL
//! and reset.

use super::faults::POLL_PERIOD_NS;
use super::tx::TxWriteBack;
use super::{Nic, Timers};
use crate::abi::{self, pci as ids, regs, DeviceError, DeviceMutant, TxDesc};
use crate::events::EventKind;
use crate::monitor;
use crate::pci::MSIX_CAP_DWORD;

/// Bytes of a descriptor (TX and RX descriptors are the same size).
pub(super) const DESC_SIZE: u64 = core::mem::size_of::<TxDesc>() as u64;
const _: () = assert!(core::mem::size_of::<abi::RxDesc>() as u64 == DESC_SIZE);

/// One ring's registers and progress.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Ring {
    pub(super) base: u64,
    pub(super) size: u32,
    /// Next descriptor to process (free-running); the HEAD register.
    pub(super) head: u32,
    pub(super) tail: u32,
    /// Next descriptor to fetch (TX only; `head..fetched` are in the
    /// prefetch cache).
    pub(super) fetched: u32,
    /// First descriptor of the packet being gathered (TX only).
    pub(super) pkt_start: u32,
    /// Faulted: ignores doorbells until reset.
    pub(super) stopped: bool,
}

impl Ring {
    pub(super) fn mask(&self) -> Option<u32> {
        regs::ring_size_ok(self.size).then(|| self.size - 1)
    }
    /// The guest address of descriptor `idx`. The base is guest-written,
    /// so the sum wraps like a hardware address adder (it never panics);
    /// the DMA gate refuses and reports wherever it lands outside RAM, and
    /// the monitor anything outside the driver's maps.
    pub(super) fn desc_addr(&self, idx: u32, mask: u32) -> u64 {
        self.base.wrapping_add(u64::from(idx & mask) * DESC_SIZE)
    }

    /// The guest address of the field at byte `offset` of descriptor
    /// `idx`, wrapping as [`Ring::desc_addr`] does.
    pub(super) fn field_addr(&self, idx: u32, mask: u32, offset: u64) -> u64 {
        self.desc_addr(idx, mask).wrapping_add(offset)
    }
}

/// Register state; `Default` is the state after reset.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Regs {
    pub(super) ctrl: u32,
    pub(super) resetting: bool,
    pub(super) eeprom: u32,
    /// Device time from which the EEPROM read in progress reads back
    /// done (`NicConfig::eeprom_delay_us`).
    pub(super) eeprom_ready_ns: u64,
    pub(super) tx: Ring,
    pub(super) rx: Ring,
    pub(super) int_cause: u32,
    pub(super) int_enable: u32,
    pub(super) coal_tx_frames: u32,
    pub(super) coal_tx_usecs: u32,
    pub(super) coal_rx_frames: u32,
    pub(super) coal_rx_usecs: u32,
    pub(super) err_code: u32,
    pub(super) err_addr: u64,
    pub(super) stat_tx: u32,
    pub(super) stat_rx: u32,
    pub(super) stat_rx_drops: u32,
    /// Completions since the last TX interrupt (coalescing).
    pub(super) tx_uncoalesced: u32,
    /// Frames since the last RX interrupt.
    pub(super) rx_uncoalesced: u32,
}

/// Whether `len` bytes at BAR offset `off` lie inside BAR0.
fn in_bar(off: u64, len: usize) -> bool {
    off.checked_add(len as u64)
        .is_some_and(|end| end <= ids::BAR0_SIZE)
}

impl Nic {
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

    pub(super) fn bus_master(&self) -> bool {
        self.pci.command() & ids::CMD_BUS_MASTER != 0
    }

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

    pub(super) fn dword_read(&self, off: u64) -> u32 {
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
            // A read still in progress: its address, neither DONE nor data.
            regs::EEPROM if self.now_ns < r.eeprom_ready_ns => {
                r.eeprom & ((1 << regs::EEPROM_DATA_SHIFT) - 1) & !regs::EEPROM_DONE
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
                // The read completes at once (DONE is set on the next
                // read), or after the configured delay.
                let word = (v >> regs::EEPROM_ADDR_SHIFT) & 0xff;
                let mac = self.cfg.eeprom_mac();
                let data = match word as usize {
                    w @ 0..=2 => u32::from(u16::from_le_bytes([mac[2 * w], mac[2 * w + 1]])),
                    _ => 0xffff, // an erased EEPROM word
                };
                r.eeprom = word << regs::EEPROM_ADDR_SHIFT
                    | regs::EEPROM_DONE
                    | data << regs::EEPROM_DATA_SHIFT;
                r.eeprom_ready_ns = self
                    .now_ns
                    .saturating_add(self.cfg.eeprom_delay_us.saturating_mul(1000));
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
        self.resets += 1;
        let delay = self.cfg.reset_delay_us.saturating_mul(1000);
        if self.cfg.hang_nth_reset == Some(self.resets) {
            // Wedged: no timer, STATUS_RESETTING for good.
            self.regs.resetting = true;
        } else if delay == 0 {
            self.finish_reset();
        } else {
            self.regs.resetting = true;
            self.timers.reset_done = Some(self.now_ns.saturating_add(delay));
        }
        self.sync_gate_state();
    }

    pub(super) fn finish_reset(&mut self) {
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
}
