//! Descriptor rings in DMA memory, read and written with volatile
//! accesses (the device reads and writes them behind the compiler's back).

use core::ptr::{read_volatile, write_volatile};

use crate::abi::{RxDesc, TxDesc};

use super::dma::DmaRegion;

/// A ring of `N` descriptors of type `D` in a DMA region.
pub struct Ring<D> {
    /// Where the descriptors live.
    pub mem: DmaRegion,
    /// Number of descriptors (a power of two).
    pub size: u32,
    _d: core::marker::PhantomData<D>,
}

impl<D: Copy> Ring<D> {
    /// A ring of `size` descriptors over `mem` (which must hold them).
    pub fn new(mem: DmaRegion, size: u32) -> Self {
        debug_assert!(size.is_power_of_two());
        debug_assert!(u64::from(size) * core::mem::size_of::<D>() as u64 <= mem.len);
        Self { mem, size, _d: core::marker::PhantomData }
    }

    fn slot_ptr(&self, idx: u32) -> *mut D {
        let slot = (idx & (self.size - 1)) as usize;
        // SAFETY: slot < size and the region holds `size` descriptors.
        unsafe { self.mem.ptr.cast::<D>().add(slot) }
    }

    /// Read the descriptor of free-running index `idx`.
    pub fn read(&self, idx: u32) -> D {
        // SAFETY: in bounds (slot_ptr) and aligned: the region is page
        // aligned and descriptors are 16 bytes.
        unsafe { read_volatile(self.slot_ptr(idx)) }
    }

    /// Write the descriptor of free-running index `idx`.
    pub fn write(&self, idx: u32, d: D) {
        // SAFETY: as in `read`.
        unsafe { write_volatile(self.slot_ptr(idx), d) }
    }
}

/// Read only the status word of a TX descriptor (what the device writes back).
pub fn tx_status(ring: &Ring<TxDesc>, idx: u32) -> u16 {
    let p = ring.slot_ptr(idx);
    // SAFETY: in bounds; `status` is a field of the descriptor.
    unsafe { read_volatile(core::ptr::addr_of!((*p).status)) }
}

/// Read only the status and length of an RX descriptor.
pub fn rx_status(ring: &Ring<RxDesc>, idx: u32) -> (u16, u16) {
    let p = ring.slot_ptr(idx);
    // SAFETY: in bounds; fields of the descriptor.
    unsafe { (read_volatile(core::ptr::addr_of!((*p).status)), read_volatile(core::ptr::addr_of!((*p).len))) }
}
