//! Receive: one frame into the next posted RX buffer.

use super::irq::moderate;
use super::regs::DESC_SIZE;
use super::Nic;
use crate::abi::{self, regs, DeviceError, DeviceMutant, RxDesc};
use crate::events::EventKind;
use crate::monitor::DmaCause;
use core::mem::offset_of;

/// Offset of `RxDesc::len`, followed by `status`: the write-back.
const RXD_LEN_OFFSET: u64 = offset_of!(RxDesc, len) as u64;
const _: () = assert!(offset_of!(RxDesc, status) == offset_of!(RxDesc, len) + 2);
const _: () = assert!(offset_of!(RxDesc, addr) == 0);

impl Nic {
    /// Validate the RX ring after a doorbell.
    pub(super) fn check_rx_ring(&mut self) {
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
    pub(super) fn receive(&mut self, frame: &[u8], seq: u64) {
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
        let b = offset_of!(RxDesc, buf_len);
        let buf_len = u16::from_le_bytes([raw[b], raw[b + 1]]);
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
        let reported = match self.cfg.mutant {
            // Its descriptor says 4 bytes less than it wrote.
            DeviceMutant::RxStripsFcs => len.saturating_sub(4),
            _ => len,
        };
        let mut wb = [0u8; 4];
        wb[..2].copy_from_slice(&reported.to_le_bytes());
        wb[2..].copy_from_slice(&abi::RXD_STAT_DONE.to_le_bytes());
        if self
            .dma_write(
                r.field_addr(slot, mask, RXD_LEN_OFFSET),
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
}
