//! Interrupts: causes, MSI-X delivery, moderation, error latching and
//! the `completion-unsignalled` check.

use super::Nic;
use crate::abi::{pci as ids, regs, DeviceError};
use crate::events::EventKind;
use crate::monitor;
use crate::msix::{self, Delivery};

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

/// Interrupt moderation for one more completed (TX) or received (RX)
/// frame: true if the interrupt is due now (`frames` since the last one,
/// 0 or 1 = each); otherwise arm the `usecs` timer if it is set and not
/// running yet.
pub(super) fn moderate(
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

impl Nic {
    /// `completion-unsignalled`: while TX (RX) is enabled, a completion
    /// (frame) written back must get its cause latched within the bound
    /// its coalescing settings give ([`signal_bound_ns`]), and while one
    /// waits a coalescing timer must be armed: with none (moderation by
    /// frame count alone, the mvneta 01b23da3607d hang) nothing but more
    /// traffic would ever signal it. Reported once per episode.
    pub(super) fn check_signalled(&mut self) {
        if !self.monitor.enabled() {
            return;
        }
        let now = self.now_ns;
        let ctrl = self.regs.ctrl;
        for (tx, enabled, timer) in [
            (true, ctrl & regs::CTRL_TX_EN != 0, self.timers.tx_coal),
            (false, ctrl & regs::CTRL_RX_EN != 0, self.timers.rx_coal),
        ] {
            let since = if tx {
                self.tx_unsignalled_since
            } else {
                self.rx_unsignalled_since
            };
            let Some(t) = since.filter(|_| enabled) else {
                continue;
            };
            let (what, frames, usecs) = if tx {
                (
                    "TX completion",
                    self.regs.coal_tx_frames,
                    self.regs.coal_tx_usecs,
                )
            } else {
                (
                    "RX frame",
                    self.regs.coal_rx_frames,
                    self.regs.coal_rx_usecs,
                )
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
                format!(
                    "not signalled {} us later (bound {} us)",
                    (now - t) / 1000,
                    bound / 1000
                )
            } else {
                "held with no coalescing timer armed: only more traffic would signal it".to_string()
            };
            self.monitor.violate(
                monitor::RULE_COMPLETION_UNSIGNALLED,
                format!(
                    "{what} written back at {} us {why} (coalescing: {frames} frames, {usecs} us)",
                    t / 1000
                ),
            );
        }
    }

    /// Latch `code` (first fault wins), stop the ring it concerns
    /// (`Some(true)` TX, `Some(false)` RX) and raise the error cause.
    pub(super) fn fault(&mut self, code: DeviceError, addr: u64, ring: Option<bool>) {
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
    pub(super) fn raise_causes(&mut self, bits: u32) {
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

    pub(super) fn raise_vector(&mut self, vector: u16, cause_enabled: bool) {
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
    pub(super) fn deliver_pending(&mut self) {
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

    pub(super) fn fire_tx_irq(&mut self) {
        self.tx_unsignalled_since = None;
        self.timers.tx_coal = None;
        self.regs.tx_uncoalesced = 0;
        self.raise_causes(regs::INT_TX);
    }

    pub(super) fn fire_rx_irq(&mut self) {
        self.rx_unsignalled_since = None;
        self.timers.rx_coal = None;
        self.regs.rx_uncoalesced = 0;
        self.raise_causes(regs::INT_RX);
    }
}
