//! MSI-X: the vector table and pending-bit array in BAR0, the function
//! mask and enable from the capability, and delivery through an
//! [`MsiSink`].
//!
//! Shape after cloud-hypervisor `pci/src/msix.rs`: entries start masked;
//! a vector raised while masked sets its PBA bit, and unmasking it (or
//! the function) delivers it and clears the bit.

use crate::abi::pci::MSIX_VECTORS;

/// Where MSI messages go. The VMM implements it with `KVM_SIGNAL_MSI`
/// (or an irqfd); tests record the calls.
pub trait MsiSink: Send + Sync {
    /// Deliver one message; false if the platform refused it.
    fn signal(&self, addr: u64, data: u32) -> bool;
}

/// A sink that drops every message (for benchmarks and set-ups that do
/// not care about interrupts).
#[derive(Debug, Default)]
pub struct NullMsi;

impl MsiSink for NullMsi {
    fn signal(&self, _addr: u64, _data: u32) -> bool {
        true
    }
}

/// Bytes per table entry.
pub const ENTRY_SIZE: u64 = 16;
/// Vector-control bit 0: the vector is masked.
const VECTOR_CTRL_MASK: u32 = 1;
/// Message control bit 15: MSI-X enable.
pub const MSG_CTRL_ENABLE: u16 = 1 << 15;
/// Message control bit 14: function mask.
pub const MSG_CTRL_FUNCTION_MASK: u16 = 1 << 14;

/// One table entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsixEntry {
    /// Message address, low dword.
    pub addr_lo: u32,
    /// Message address, high dword.
    pub addr_hi: u32,
    /// Message data.
    pub data: u32,
    /// Vector control (bit 0 = masked).
    pub ctrl: u32,
}

impl Default for MsixEntry {
    fn default() -> Self {
        // PCI spec: every vector is masked after reset.
        Self {
            addr_lo: 0,
            addr_hi: 0,
            data: 0,
            ctrl: VECTOR_CTRL_MASK,
        }
    }
}

/// The local APIC's MSI window: x86 interrupt messages are writes to
/// 0xFEExxxxx; anything else would be a DMA write somewhere else.
pub const MSI_WINDOW: std::ops::RangeInclusive<u64> = 0xfee0_0000..=0xfeef_ffff;

impl MsixEntry {
    fn masked(&self) -> bool {
        self.ctrl & VECTOR_CTRL_MASK != 0
    }
    /// The 64-bit message address.
    pub fn addr(&self) -> u64 {
        u64::from(self.addr_hi) << 32 | u64::from(self.addr_lo)
    }
}

/// What [`Msix::raise`] did with a vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// A message went to the sink (`true` if it accepted it).
    Sent(bool),
    /// Masked: the PBA bit is set.
    Pending,
    /// MSI-X is disabled: nothing happened (the NIC has no INTx).
    Disabled,
    /// The entry's address (`.0`) is outside [`MSI_WINDOW`]: nothing was
    /// sent and the PBA bit is set (the caller latches the fault).
    Refused(u64),
}

/// The MSI-X state of one function.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Msix {
    /// The vector table.
    pub table: [MsixEntry; MSIX_VECTORS as usize],
    /// Pending bits, one per vector.
    pub pba: u64,
    /// Capability enable bit.
    pub enabled: bool,
    /// Capability function-mask bit.
    pub function_masked: bool,
}

impl Msix {
    /// Raise `vector`: send it, or latch it if masked.
    pub fn raise(&mut self, vector: u16, sink: &dyn MsiSink) -> Delivery {
        let Some(e) = self.table.get(usize::from(vector)) else {
            return Delivery::Disabled;
        };
        if !self.enabled {
            return Delivery::Disabled;
        }
        if self.function_masked || e.masked() {
            self.pba |= 1 << vector;
            return Delivery::Pending;
        }
        if !MSI_WINDOW.contains(&e.addr()) {
            self.pba |= 1 << vector;
            return Delivery::Refused(e.addr());
        }
        Delivery::Sent(sink.signal(e.addr(), e.data))
    }

    /// Hold `vector` in the PBA without sending it (bus mastering is off:
    /// an MSI is a memory write, which PCI forbids then); it goes out from
    /// [`Msix::take_deliverable`] once sending is allowed again.
    pub fn hold(&mut self, vector: u16) -> Delivery {
        if !self.enabled || usize::from(vector) >= self.table.len() {
            return Delivery::Disabled;
        }
        self.pba |= 1 << vector;
        Delivery::Pending
    }

    /// Vectors whose pending bit is set and which may now be delivered;
    /// clears their bits. Called after any mask, enable or bus-master
    /// change. The caller checks each address (see [`MSI_WINDOW`]).
    pub fn take_deliverable(&mut self) -> Vec<u16> {
        if !self.enabled || self.function_masked || self.pba == 0 {
            return Vec::new();
        }
        let mut out = Vec::new();
        for v in 0..MSIX_VECTORS {
            if self.pba & (1 << v) != 0 && !self.table[usize::from(v)].masked() {
                self.pba &= !(1 << v);
                out.push(v);
            }
        }
        out
    }

    /// Read a dword of the table (`off` relative to the table start).
    /// Out-of-range or unaligned reads return all ones.
    pub fn table_read(&self, off: u64) -> u32 {
        let (i, f) = ((off / ENTRY_SIZE) as usize, off % ENTRY_SIZE);
        match (self.table.get(i), f) {
            (Some(e), 0) => e.addr_lo,
            (Some(e), 4) => e.addr_hi,
            (Some(e), 8) => e.data,
            (Some(e), 12) => e.ctrl,
            _ => u32::MAX,
        }
    }

    /// Write a dword of the table. Returns true if a mask bit changed
    /// (the caller then delivers pending vectors).
    pub fn table_write(&mut self, off: u64, value: u32) -> bool {
        let (i, f) = ((off / ENTRY_SIZE) as usize, off % ENTRY_SIZE);
        let Some(e) = self.table.get_mut(i) else {
            return false;
        };
        match f {
            0 => e.addr_lo = value & !3, // message addresses are dword aligned
            4 => e.addr_hi = value,
            8 => e.data = value,
            12 => {
                let old = e.ctrl;
                e.ctrl = value & VECTOR_CTRL_MASK;
                return old != e.ctrl;
            }
            _ => {}
        }
        false
    }

    /// Read a dword of the PBA (`off` relative to the PBA start).
    pub fn pba_read(&self, off: u64) -> u32 {
        match off {
            0 => self.pba as u32,
            4 => (self.pba >> 32) as u32,
            _ => u32::MAX,
        }
    }

    /// The capability's message-control word.
    pub fn msg_ctrl(&self) -> u16 {
        let mut v = MSIX_VECTORS - 1;
        if self.enabled {
            v |= MSG_CTRL_ENABLE;
        }
        if self.function_masked {
            v |= MSG_CTRL_FUNCTION_MASK;
        }
        v
    }

    /// Apply a message-control write (only enable and function mask are
    /// writable).
    pub fn set_msg_ctrl(&mut self, v: u16) {
        self.enabled = v & MSG_CTRL_ENABLE != 0;
        self.function_masked = v & MSG_CTRL_FUNCTION_MASK != 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Rec(Mutex<Vec<(u64, u32)>>);
    impl MsiSink for Rec {
        fn signal(&self, addr: u64, data: u32) -> bool {
            self.0.lock().unwrap().push((addr, data));
            true
        }
    }

    fn programmed() -> Msix {
        let mut m = Msix::default();
        for v in 0..3u64 {
            m.table_write(v * 16, 0xfee0_0000);
            m.table_write(v * 16 + 8, 0x40 + v as u32);
        }
        m.set_msg_ctrl(MSG_CTRL_ENABLE);
        m
    }

    #[test]
    fn entries_start_masked_and_latch_pending() {
        let sink = Rec::default();
        let mut m = programmed();
        assert_eq!(m.raise(1, &sink), Delivery::Pending);
        assert_eq!(m.pba_read(0), 0b10);
        assert!(sink.0.lock().unwrap().is_empty());
        assert!(m.table_write(16 + 12, 0)); // unmask vector 1
        assert_eq!(m.take_deliverable(), vec![1]);
        assert_eq!(m.pba, 0);
    }

    #[test]
    fn function_mask_holds_every_vector() {
        let sink = Rec::default();
        let mut m = programmed();
        for v in 0..3u64 {
            m.table_write(v * 16 + 12, 0);
        }
        m.set_msg_ctrl(MSG_CTRL_ENABLE | MSG_CTRL_FUNCTION_MASK);
        assert_eq!(m.raise(0, &sink), Delivery::Pending);
        assert_eq!(m.raise(2, &sink), Delivery::Pending);
        assert!(m.take_deliverable().is_empty(), "function mask still set");
        m.set_msg_ctrl(MSG_CTRL_ENABLE);
        assert_eq!(m.take_deliverable(), vec![0, 2]);
        assert_eq!(m.raise(2, &sink), Delivery::Sent(true));
        assert_eq!(sink.0.lock().unwrap().as_slice(), &[(0xfee0_0000, 0x42)]);
    }

    #[test]
    fn addresses_outside_the_lapic_window_are_refused_and_stay_pending() {
        let sink = Rec::default();
        let mut m = programmed();
        m.table_write(12, 0);
        m.table_write(4, 1); // 0x1_fee00000
        assert_eq!(m.raise(0, &sink), Delivery::Refused(0x1_fee0_0000));
        assert_eq!(m.pba, 1);
        assert!(sink.0.lock().unwrap().is_empty());
        assert_eq!(m.hold(1), Delivery::Pending);
        assert_eq!(m.pba, 0b11);
    }

    #[test]
    fn disabled_msix_sends_nothing_and_bad_offsets_read_ones() {
        let sink = Rec::default();
        let mut m = Msix::default();
        assert_eq!(m.raise(0, &sink), Delivery::Disabled);
        assert_eq!(m.raise(7, &sink), Delivery::Disabled);
        assert_eq!(m.table_read(3 * 16), u32::MAX);
        assert_eq!(m.table_read(2), u32::MAX);
        assert_eq!(m.pba_read(8), u32::MAX);
        assert_eq!(m.msg_ctrl(), MSIX_VECTORS - 1);
        assert!(!m.table_write(99 * 16, 1));
    }
}
