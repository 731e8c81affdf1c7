//! Fault knobs and device mutants that act on their own: ghost DMA and
//! interrupts after a disable, phantom completions, the TX stall, the
//! r8169-like descriptor poll and the forced interrupt of `irq_in_window`.

use super::regs::DESC_SIZE;
use super::tx::TXD_STATUS_OFFSET;
use super::Nic;
use crate::abi::{self, pci as ids, regs, DeviceMutant};
use crate::events::EventKind;
use crate::monitor::DmaCause;

/// Descriptor poll period of the r8169-like knob, in ns.
pub const POLL_PERIOD_NS: u64 = 50_000;

/// Delay and period of a mutant's stray DMA or interrupt, in ns.
const GHOST_PERIOD_NS: u64 = 20_000;

/// How many stray accesses a mutant makes after each disable.
const GHOST_COUNT: u32 = 16;

impl Nic {
    /// One step of the `irq_in_window` count (a register write, or the
    /// window's start): raise the causes when the count reaches zero.
    pub(super) fn window_write(&mut self) {
        let Some(left) = self.window_left else { return };
        if left > 0 {
            self.window_left = Some(left - 1);
            return;
        }
        self.window_left = None;
        let Some(w) = self.cfg.irq_in_window else {
            return;
        };
        let n = self.window_starts - 1;
        let text = if self.regs.resetting {
            format!(
                "knob: interrupt {:#x} not forced at write {n} (resetting)",
                w.causes
            )
        } else {
            format!(
                "knob: interrupt {:#x} forced at write {n} after {:?}",
                w.causes, w.start
            )
        };
        self.monitor.emit(EventKind::Note { text });
        if !self.regs.resetting {
            self.raise_causes(w.causes);
        }
        self.monitor.flush();
    }

    /// TX or RX just lost its enable bit (`old` were the bits before).
    pub(super) fn on_disable(&mut self, old: u32) {
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

    pub(super) fn arm_ghost_irq(&mut self) {
        if self.cfg.mutant == DeviceMutant::IrqAfterDisable {
            self.ghost_irq_left = GHOST_COUNT;
            self.timers.ghost_irq = Some(self.now_ns.saturating_add(GHOST_PERIOD_NS));
        }
    }

    pub(super) fn stall_now(&mut self) -> bool {
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

    /// Mutant: a completion for the slot at the tail, which the driver
    /// has not posted (unless the ring is full).
    pub(super) fn phantom_completion(&mut self) {
        let ring = self.regs.tx;
        let Some(mask) = ring.mask() else { return };
        if ring.tail.wrapping_sub(ring.pkt_start) >= ring.size {
            return;
        }
        let slot = ring.tail & mask;
        let addr = ring.field_addr(slot, mask, TXD_STATUS_OFFSET);
        let _ = self.dma_write(
            addr,
            &abi::TXD_STAT_DONE.to_le_bytes(),
            DmaCause::TxStatus(slot),
        );
    }

    /// r8169-like: re-read the next descriptor of each enabled ring.
    pub(super) fn poll_rings(&mut self) {
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

    pub(super) fn ghost_dma(&mut self) {
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

    pub(super) fn ghost_irq(&mut self) {
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
