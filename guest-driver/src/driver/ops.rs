//! What the stack and the kernel call: the MSI-X handler, the NAPI poll
//! loop, and the three trait adaptors (the netdev ops on the driver
//! itself and through a shared reference, and the NAPI side).

use core::sync::atomic::Ordering;

use super::{pci, Adapter};
use crate::abi::{self, regs as r, DriverMutant as Mutant, Marker};
use crate::softnet::napi::NapiHandler;
use crate::softnet::netdev::{NetDeviceOps, NetdevTx};
use crate::softnet::skb::SkbId;

/// The single-CPU shape: the netdev owns the driver, and NAPI runs on the
/// same CPU as xmit.
impl NetDeviceOps for Adapter<'_, '_> {
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

impl NapiHandler for Adapter<'_, '_> {
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
pub struct AdapterOps<'n, 'a, 'e> {
    /// The driver.
    pub nic: &'n Adapter<'a, 'e>,
    /// Whether NAPI runs on the transmit CPU (then tx_timeout may reclaim
    /// itself; otherwise reclaim belongs to the other CPU).
    pub napi_here: bool,
}

impl NetDeviceOps for AdapterOps<'_, '_, '_> {
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
pub struct NapiSide<'n, 'a, 'e>(pub &'n Adapter<'a, 'e>);

impl NapiHandler for NapiSide<'_, '_, '_> {
    fn clean_tx(&mut self) {
        // No INT_CAUSE acknowledge here: the device sends an MSI for every
        // cause it raises, latched or not, and two register exits per
        // poll would cost more than the whole reclaim.
        match self.0.cfg.mutant {
            Mutant::ReclaimOnXmit => {}
            // Its reclaim runs from the service timer instead
            // (`Adapter::service_timer`).
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
            self.0
                .regs
                .write(r::INT_ENABLE, self.0.int_enable.load(Ordering::Acquire));
        }
    }
}

impl<'a, 'e> Adapter<'a, 'e> {
    /// Acknowledge the interrupt causes (W1C).
    pub(super) fn ack_irq(&self) {
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
                self.plat.marker(
                    Marker::NapiComplete,
                    &[u64::from(res.rx_done), u64::from(w)],
                );
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
}
