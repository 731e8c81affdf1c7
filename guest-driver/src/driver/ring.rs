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
        Self {
            mem,
            size,
            _d: core::marker::PhantomData,
        }
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

/// Where a field at byte `offset` of a 16-byte descriptor sits in its
/// second little-endian word (bytes 8..16).
const fn word1_shift(offset: usize) -> u32 {
    assert!(offset >= 8 && offset < 16);
    ((offset - 8) * 8) as u32
}
const _: () =
    assert!(core::mem::offset_of!(TxDesc, addr) == 0 && core::mem::size_of::<TxDesc>() == 16);
const _: () =
    assert!(core::mem::offset_of!(RxDesc, addr) == 0 && core::mem::size_of::<RxDesc>() == 16);
const TXD_LEN_SHIFT: u32 = word1_shift(core::mem::offset_of!(TxDesc, len));
const TXD_FLAGS_SHIFT: u32 = word1_shift(core::mem::offset_of!(TxDesc, flags));
const RXD_BUF_LEN_SHIFT: u32 = word1_shift(core::mem::offset_of!(RxDesc, buf_len));

impl<D: Copy> Ring<D> {
    /// Write descriptor `idx` as its two little-endian words, two aligned
    /// 8-byte stores: built as a struct on the stack, a descriptor is
    /// copied field by field (six loads and six stores), and each memory
    /// operand costs as much as an instruction in an emulated guest.
    fn write_words(&self, idx: u32, w: [u64; 2]) {
        let p = self.slot_ptr(idx).cast::<u64>();
        // SAFETY: in bounds (slot_ptr); 8-byte aligned: the region is page
        // aligned and descriptors are 16 bytes (asserted above).
        unsafe {
            write_volatile(p, w[0].to_le());
            write_volatile(p.add(1), w[1].to_le());
        }
    }
}

impl Ring<TxDesc> {
    /// Write TX descriptor `idx`: `addr`, `len`, `flags`; status, cookie
    /// and the reserved byte zero (as `TxDesc { addr, len, flags,
    /// ..Default::default() }`).
    pub fn write_tx(&self, idx: u32, addr: u64, len: u16, flags: u8) {
        self.write_words(
            idx,
            [
                addr,
                u64::from(len) << TXD_LEN_SHIFT | u64::from(flags) << TXD_FLAGS_SHIFT,
            ],
        );
    }
}

impl Ring<RxDesc> {
    /// Write RX descriptor `idx`: buffer `addr` of `buf_len` bytes; length
    /// and status zero (as `RxDesc { addr, buf_len, ..Default::default() }`).
    pub fn write_rx(&self, idx: u32, addr: u64, buf_len: u16) {
        self.write_words(idx, [addr, u64::from(buf_len) << RXD_BUF_LEN_SHIFT]);
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
    unsafe {
        (
            read_volatile(core::ptr::addr_of!((*p).status)),
            read_volatile(core::ptr::addr_of!((*p).len)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The two-store writers give the same bytes as the descriptor
    /// structs they replace.
    #[test]
    fn word_writes_match_the_descriptor_structs() {
        let mut mem = alloc::vec![0u64; 64];
        let region = DmaRegion {
            phys: 0x10_0000,
            ptr: mem.as_mut_ptr().cast(),
            len: 512,
        };
        let tx: Ring<TxDesc> = Ring::new(region, 16);
        let dirty = TxDesc {
            status: 0xffff,
            cookie: 7,
            rsvd: 9,
            ..TxDesc::default()
        };
        tx.write(3, dirty);
        assert_eq!(tx.read(3 + 16), dirty, "write, then read the same slot");
        tx.write_tx(3 + 16, 0x1234_5678_9abc, 1514, crate::abi::TXD_EOP);
        let want = TxDesc {
            addr: 0x1234_5678_9abc,
            len: 1514,
            flags: crate::abi::TXD_EOP,
            ..TxDesc::default()
        };
        assert_eq!(tx.read(3), want);
        let rx: Ring<RxDesc> = Ring::new(
            DmaRegion {
                ptr: region.ptr.wrapping_add(256),
                ..region
            },
            16,
        );
        rx.write(
            5,
            RxDesc {
                len: 60,
                status: 1,
                rsvd: 3,
                ..RxDesc::default()
            },
        );
        rx.write_rx(5, 0xfeed_0000, 2048);
        assert_eq!(
            rx.read(5),
            RxDesc {
                addr: 0xfeed_0000,
                buf_len: 2048,
                ..RxDesc::default()
            }
        );
    }
}
