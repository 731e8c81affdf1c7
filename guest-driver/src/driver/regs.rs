//! The one door to BAR0: every register access of the driver goes
//! through [`Regs`], by the names in [`crate::abi::regs`].

use crate::platform::Platform;

/// BAR0 of the NIC, reached through the platform's volatile MMIO.
#[derive(Clone, Copy)]
pub struct Regs<'p> {
    plat: &'p (dyn Platform + Sync),
    base: u64,
}

impl<'p> Regs<'p> {
    /// Registers of a BAR0 mapped at physical address `base`.
    pub fn new(plat: &'p (dyn Platform + Sync), base: u64) -> Self {
        Self { plat, base }
    }

    /// Read the register at byte offset `off` (an `abi::regs` constant).
    pub fn read(&self, off: u32) -> u32 {
        self.plat.mmio_read32(self.base + u64::from(off))
    }

    /// Write the register at byte offset `off`.
    pub fn write(&self, off: u32, value: u32) {
        self.plat.mmio_write32(self.base + u64::from(off), value)
    }
}
