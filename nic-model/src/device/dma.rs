//! The one DMA gate: every guest-memory access the device makes goes
//! through `Nic::gate` (via `dma_read`/`dma_write`), which blocks what no
//! hardware could do and hands the rest to the [`DmaMonitor`](crate::monitor::DmaMonitor).

use super::Nic;
use crate::abi::{pci as ids, regs, DeviceError};
use crate::events::DmaDir;
use crate::monitor::{self, DmaCause, GateState};
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend};

/// The gate refused an access (a fault is latched).
#[derive(Debug)]
pub(super) struct Blocked;

impl Nic {
    /// Check an access; false if the device must not make it. Inlined
    /// into each call site, so the cause is a constant there and the
    /// monitor's per-cause checks fold away (the monitor's cost budget is
    /// 5%: nic-model README, benchmark).
    #[inline(always)]
    pub(super) fn gate(&mut self, dir: DmaDir, addr: u64, len: u64, cause: DmaCause) -> bool {
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
    pub(super) fn sync_gate_state(&mut self) {
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
    pub(super) fn dma_read(
        &mut self,
        addr: u64,
        buf: &mut [u8],
        cause: DmaCause,
    ) -> Result<(), Blocked> {
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
    pub(super) fn dma_write(
        &mut self,
        addr: u64,
        buf: &[u8],
        cause: DmaCause,
    ) -> Result<(), Blocked> {
        if !self.gate(DmaDir::Write, addr, buf.len() as u64, cause) {
            return Err(Blocked);
        }
        self.mem
            .write_slice(buf, GuestAddress(addr))
            .map_err(|_| Blocked)
    }
}
