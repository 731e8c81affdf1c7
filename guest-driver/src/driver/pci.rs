//! Finding the NIC on PCI, placing BAR0 and programming MSI-X.

use crate::abi::{layout, pci};
use crate::platform::Platform;

use super::regs::Regs;

/// Config offset of BAR1 (the high dword of the 64-bit BAR0).
const REG_BAR1: u8 = pci::REG_BAR0 + 4;
/// MSI-X message control: enable.
const MSIX_ENABLE: u32 = 1 << 15;
/// MSI-X message control: function mask.
const MSIX_FUNCTION_MASK: u32 = 1 << 14;
/// MSI-X table entry: vector control, mask bit.
const MSIX_ENTRY_MASKED: u32 = 1;
/// Size of one MSI-X table entry.
const MSIX_ENTRY_SIZE: u32 = 16;
/// The LAPIC's MSI address window.
const MSI_ADDR_BASE: u32 = 0xfee0_0000;
/// First interrupt vector the NIC uses: TX, RX and misc take
/// `NIC_VECTOR_BASE + abi::pci::MSIX_*` (the kernel's vector plan).
pub use crate::kernel::irq::VECTOR_NIC_BASE as NIC_VECTOR_BASE;

/// What probing PCI found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PciNic {
    /// Bus, device, function.
    pub bdf: (u8, u8, u8),
    /// Physical address of BAR0.
    pub bar0: u64,
    /// BAR0 size from the sizing protocol.
    pub bar0_size: u64,
    /// Config offset of the MSI-X capability.
    pub msix_cap: u8,
    /// Number of MSI-X table entries.
    pub msix_vectors: u16,
}

/// Why PCI set-up failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PciError {
    /// No function with the NIC's vendor and device id on bus 0.
    NotFound,
    /// BAR0 is not a 64-bit memory BAR or reports a bad size.
    BadBar,
    /// No MSI-X capability, or too few vectors.
    NoMsix,
}

/// Scan bus 0 for the NIC by vendor and device id.
pub fn find_nic(plat: &dyn Platform) -> Option<(u8, u8, u8)> {
    let want = u32::from(pci::NIC_DEVICE_ID) << 16 | u32::from(pci::VENDOR_ID);
    (0..32u8)
        .map(|dev| (0, dev, 0))
        .find(|&bdf| plat.pci_read32(bdf, 0) == want)
}

/// Size BAR0 with the write-all-ones protocol, keep the VMM's placement
/// (or place it at the default), enable memory decode and bus mastering,
/// and find the MSI-X capability.
pub fn setup(plat: &dyn Platform, bdf: (u8, u8, u8)) -> Result<PciNic, PciError> {
    let cmd = plat.pci_read32(bdf, pci::REG_COMMAND);
    let mem_bus = u32::from(pci::CMD_MEMORY | pci::CMD_BUS_MASTER);
    // Decode off while the BAR temporarily holds all ones.
    plat.pci_write32(bdf, pci::REG_COMMAND, cmd & !mem_bus & 0xffff);
    let lo = plat.pci_read32(bdf, pci::REG_BAR0);
    let hi = plat.pci_read32(bdf, REG_BAR1);
    // Bits 2:1 = 0b10: a 64-bit memory BAR.
    if lo & 0x7 != 0x4 {
        return Err(PciError::BadBar);
    }
    plat.pci_write32(bdf, pci::REG_BAR0, 0xffff_ffff);
    plat.pci_write32(bdf, REG_BAR1, 0xffff_ffff);
    let size_lo = plat.pci_read32(bdf, pci::REG_BAR0) & !0xf;
    let size_hi = plat.pci_read32(bdf, REG_BAR1);
    let mask = u64::from(size_hi) << 32 | u64::from(size_lo);
    let size = (!mask).wrapping_add(1);
    let mut base = u64::from(hi) << 32 | u64::from(lo & !0xf);
    if base == 0 {
        base = layout::NIC_BAR0_DEFAULT;
    }
    plat.pci_write32(bdf, pci::REG_BAR0, (base as u32) | (lo & 0xf));
    plat.pci_write32(bdf, REG_BAR1, (base >> 32) as u32);
    if size < pci::BAR0_SIZE || !size.is_power_of_two() {
        return Err(PciError::BadBar);
    }
    plat.pci_write32(bdf, pci::REG_COMMAND, (cmd | mem_bus) & 0xffff);

    let (msix_cap, msix_vectors) = find_msix(plat, bdf).ok_or(PciError::NoMsix)?;
    if msix_vectors < pci::MSIX_VECTORS {
        return Err(PciError::NoMsix);
    }
    Ok(PciNic {
        bdf,
        bar0: base,
        bar0_size: size,
        msix_cap,
        msix_vectors,
    })
}

/// Walk the capability list (bounded: 48 entries fit in config space).
fn find_msix(plat: &dyn Platform, bdf: (u8, u8, u8)) -> Option<(u8, u16)> {
    let mut ptr = (plat.pci_read32(bdf, pci::REG_CAP_PTR) & 0xfc) as u8;
    for _ in 0..48 {
        if ptr < 0x40 {
            return None;
        }
        let head = plat.pci_read32(bdf, ptr);
        if head as u8 == pci::CAP_ID_MSIX {
            return Some((ptr, ((head >> 16) & 0x7ff) as u16 + 1));
        }
        ptr = ((head >> 8) & 0xfc) as u8;
    }
    None
}

/// Program every NIC vector to `NIC_VECTOR_BASE + i` on the CPU with
/// APIC id `dest`, in the order PCIe asks: function masked while entries
/// are written, each entry masked while written, then unmasked.
pub fn setup_msix(plat: &dyn Platform, nic: &PciNic, regs: &Regs<'_>, dest: u32) {
    let ctrl_off = nic.msix_cap;
    let ctrl = plat.pci_read32(nic.bdf, ctrl_off) & 0xffff;
    plat.pci_write32(
        nic.bdf,
        ctrl_off,
        ctrl | (MSIX_ENABLE | MSIX_FUNCTION_MASK) << 16,
    );
    for i in 0..u32::from(pci::MSIX_VECTORS) {
        let e = pci::MSIX_TABLE_OFFSET + i * MSIX_ENTRY_SIZE;
        regs.write(e + 12, MSIX_ENTRY_MASKED);
        regs.write(e, MSI_ADDR_BASE | (dest & 0xff) << 12);
        regs.write(e + 4, 0);
        regs.write(e + 8, u32::from(NIC_VECTOR_BASE) + i);
        regs.write(e + 12, 0);
    }
    plat.pci_write32(nic.bdf, ctrl_off, ctrl | MSIX_ENABLE << 16);
}

/// Mask every vector and turn MSI-X off (used when the driver unbinds).
pub fn teardown_msix(plat: &dyn Platform, nic: &PciNic, regs: &Regs<'_>) {
    for i in 0..u32::from(pci::MSIX_VECTORS) {
        regs.write(
            pci::MSIX_TABLE_OFFSET + i * MSIX_ENTRY_SIZE + 12,
            MSIX_ENTRY_MASKED,
        );
    }
    let ctrl = plat.pci_read32(nic.bdf, nic.msix_cap) & 0xffff;
    plat.pci_write32(nic.bdf, nic.msix_cap, ctrl);
}
