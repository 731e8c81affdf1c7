//! PCI configuration space and configuration mechanism #1.
//!
//! [`ConfigSpace`] is 64 dwords with a parallel writable-bits mask (as
//! cloud-hypervisor's `configuration.rs`); BAR sizing falls out of the
//! mask: writing all ones reads back `!(size - 1) | flags`.
//! [`PciRoot`] decodes ports 0xCF8..=0xCFF for a host bridge at 00:00.0
//! and the NIC at 00:01.0, and routes MMIO to the NIC's BAR0. Anything
//! unclaimed reads as all ones.
//!
//! IDs (abi::pci): vendor 0x4e50 ("NP") is not assigned in pci.ids, so
//! no real driver binds; device 0x0000 is the bridge, 0x0001 the NIC.

use crate::abi::pci as ids;
use crate::device::Nic;

/// Dwords of type-0 configuration space we model (256 bytes).
pub const CONFIG_DWORDS: usize = 64;
/// Dword index of BAR0.
pub const BAR0_DWORD: usize = (ids::REG_BAR0 / 4) as usize;
/// Config offset of the MSI-X capability.
pub const MSIX_CAP_OFFSET: u8 = 0x40;
/// Dword index of the MSI-X capability header (ID, next, message control).
pub const MSIX_CAP_DWORD: usize = (MSIX_CAP_OFFSET / 4) as usize;
/// BAR0 flags: memory, 64-bit (type 0b10), not prefetchable.
const BAR_MEM64: u32 = 0b100;
/// Status register bit 4: a capability list is present.
const STATUS_CAP_LIST: u32 = 1 << 4;

/// One function's configuration space.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigSpace {
    regs: [u32; CONFIG_DWORDS],
    writable: [u32; CONFIG_DWORDS],
}

impl ConfigSpace {
    /// The host bridge: class 06/00/00, no BARs, nothing writable.
    pub fn host_bridge() -> Self {
        let mut c = Self {
            regs: [0; CONFIG_DWORDS],
            writable: [0; CONFIG_DWORDS],
        };
        c.regs[0] = u32::from(ids::BRIDGE_DEVICE_ID) << 16 | u32::from(ids::VENDOR_ID);
        c.regs[2] = 0x0600_0000;
        c
    }

    /// The NIC: class 02/00/00, a 64-bit memory BAR0 placed at `bar0`,
    /// memory and bus-master enable writable, an MSI-X capability whose
    /// table and PBA live in BAR0.
    pub fn nic(bar0: u64) -> Self {
        let mut c = Self {
            regs: [0; CONFIG_DWORDS],
            writable: [0; CONFIG_DWORDS],
        };
        c.regs[0] = u32::from(ids::NIC_DEVICE_ID) << 16 | u32::from(ids::VENDOR_ID);
        c.regs[1] = STATUS_CAP_LIST << 16;
        c.writable[1] = u32::from(ids::CMD_MEMORY | ids::CMD_BUS_MASTER);
        c.regs[2] = u32::from(ids::NIC_CLASS) << 24;
        // BAR0/BAR1: the size probe reads back the mask, flags stay.
        c.writable[BAR0_DWORD] = !(ids::BAR0_SIZE as u32 - 1) & 0xffff_fff0;
        c.writable[BAR0_DWORD + 1] = u32::MAX;
        c.set_bar0(bar0);
        // Subsystem IDs repeat the function's own.
        c.regs[11] = c.regs[0];
        c.regs[(ids::REG_CAP_PTR / 4) as usize] = u32::from(MSIX_CAP_OFFSET);
        // Interrupt line is scratch for the OS; pin 0 = no INTx.
        c.writable[15] = 0xff;
        // MSI-X: ID, next = 0, message control = table size - 1; only
        // enable (bit 31) and function mask (bit 30) are writable.
        c.regs[MSIX_CAP_DWORD] =
            u32::from(ids::MSIX_VECTORS - 1) << 16 | u32::from(ids::CAP_ID_MSIX);
        c.writable[MSIX_CAP_DWORD] = 0xc000_0000;
        c.regs[MSIX_CAP_DWORD + 1] = ids::MSIX_TABLE_OFFSET; // BIR 0
        c.regs[MSIX_CAP_DWORD + 2] = ids::MSIX_PBA_OFFSET; // BIR 0
        c
    }

    /// Read dword `i` (all ones beyond the modelled space).
    pub fn read(&self, i: usize) -> u32 {
        self.regs.get(i).copied().unwrap_or(u32::MAX)
    }

    /// Write `data` at byte `offset`, honouring the writable mask.
    /// Accesses that cross a dword are ignored (mechanism #1 cannot
    /// produce them).
    pub fn write(&mut self, offset: u8, data: &[u8]) {
        let (i, lane) = (usize::from(offset / 4), usize::from(offset % 4));
        if data.is_empty() || lane + data.len() > 4 || i >= CONFIG_DWORDS {
            return;
        }
        let mut bytes = [0u8; 4];
        bytes[lane..lane + data.len()].copy_from_slice(data);
        let mut lanes = 0u32;
        for b in lane..lane + data.len() {
            lanes |= 0xff << (8 * b);
        }
        let m = self.writable[i] & lanes;
        self.regs[i] = self.regs[i] & !m | u32::from_le_bytes(bytes) & m;
    }

    /// The PCI command register.
    pub fn command(&self) -> u16 {
        self.regs[1] as u16
    }

    /// BAR0's guest-physical address (as the guest or VMM placed it).
    pub fn bar0(&self) -> u64 {
        u64::from(self.regs[BAR0_DWORD + 1]) << 32
            | u64::from(self.regs[BAR0_DWORD] & !(ids::BAR0_SIZE as u32 - 1))
    }

    /// Place BAR0 (VMM default placement).
    pub fn set_bar0(&mut self, addr: u64) {
        self.regs[BAR0_DWORD] = (addr as u32) & self.writable[BAR0_DWORD] | BAR_MEM64;
        self.regs[BAR0_DWORD + 1] = (addr >> 32) as u32;
    }

    /// MSI-X message control (upper half of the capability header).
    pub fn msix_msg_ctrl(&self) -> u16 {
        (self.regs[MSIX_CAP_DWORD] >> 16) as u16
    }
}

/// Configuration mechanism #1 plus MMIO routing for the root bus.
pub struct PciRoot {
    config_address: u32,
    bridge: ConfigSpace,
    /// The NIC at 00:01.0.
    pub nic: Nic,
}

/// Config-address enable bit.
const CFG_ENABLE: u32 = 1 << 31;

impl PciRoot {
    /// A root bus holding the host bridge and `nic`.
    pub fn new(nic: Nic) -> Self {
        Self {
            config_address: 0,
            bridge: ConfigSpace::host_bridge(),
            nic,
        }
    }

    /// Decode the latched address: (bus, device, function, dword).
    fn target(&self) -> Option<(u8, u8, u8, usize)> {
        let a = self.config_address;
        (a & CFG_ENABLE != 0).then_some((
            (a >> 16) as u8,
            ((a >> 11) & 0x1f) as u8,
            ((a >> 8) & 7) as u8,
            ((a >> 2) & 0x3f) as usize,
        ))
    }

    /// A read from port `0xcf8 + port_offset`.
    pub fn pio_read(&mut self, port_offset: u16, data: &mut [u8]) {
        let off = usize::from(port_offset);
        let value = match off {
            0..=3 => Some((self.config_address, off)),
            4..=7 => self.target().map(|(b, d, f, reg)| {
                let v = match (b, d, f) {
                    t if t == ids::BRIDGE_DEVFN => self.bridge.read(reg),
                    t if t == ids::NIC_DEVFN => self.nic.config_read(reg),
                    _ => u32::MAX, // unclaimed function: vendor 0xffff
                };
                (v, off - 4)
            }),
            _ => None,
        };
        data.fill(0xff);
        if let Some((v, lane)) = value {
            let bytes = v.to_le_bytes();
            if lane + data.len() <= 4 {
                data.copy_from_slice(&bytes[lane..lane + data.len()]);
            }
        }
    }

    /// A write to port `0xcf8 + port_offset`.
    pub fn pio_write(&mut self, port_offset: u16, data: &[u8]) {
        let off = usize::from(port_offset);
        match off {
            0..=3 if off + data.len() <= 4 => {
                // Partial writes merge by byte lane, as on real chipsets.
                let mut b = self.config_address.to_le_bytes();
                b[off..off + data.len()].copy_from_slice(data);
                self.config_address = u32::from_le_bytes(b);
            }
            4..=7 if off - 4 + data.len() <= 4 => {
                if let Some((b, d, f, reg)) = self.target() {
                    // Offsets fit a byte: reg < 64, lane < 4.
                    let cfg_off = (reg * 4 + off - 4) as u8;
                    if (b, d, f) == ids::NIC_DEVFN {
                        self.nic.config_write(cfg_off, data);
                    }
                    // The bridge has nothing writable; others are absent.
                }
            }
            _ => {}
        }
    }

    /// A guest MMIO read at `gpa`; false (and all ones) if unclaimed.
    pub fn mmio_read(&mut self, gpa: u64, data: &mut [u8]) -> bool {
        match self.nic.bar_offset(gpa, data.len()) {
            Some(off) => {
                self.nic.bar_read(off, data);
                true
            }
            None => {
                data.fill(0xff);
                false
            }
        }
    }

    /// A guest MMIO write at `gpa`; false if unclaimed (dropped).
    pub fn mmio_write(&mut self, gpa: u64, data: &[u8]) -> bool {
        match self.nic.bar_offset(gpa, data.len()) {
            Some(off) => {
                self.nic.bar_write(off, data);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bar_sizing_protocol_reads_back_size_and_keeps_flags() {
        let mut c = ConfigSpace::nic(0xe000_0000);
        assert_eq!(c.bar0(), 0xe000_0000);
        c.write(ids::REG_BAR0, &[0xff; 4]);
        c.write(ids::REG_BAR0 + 4, &[0xff; 4]);
        let lo = c.read(BAR0_DWORD);
        assert_eq!(lo & 0xf, BAR_MEM64, "64-bit memory BAR flags survive");
        assert_eq!(!(lo & !0xf) as u64 + 1, ids::BAR0_SIZE);
        assert_eq!(c.read(BAR0_DWORD + 1), u32::MAX);
        c.write(ids::REG_BAR0, &0xd000_0000u32.to_le_bytes());
        c.write(ids::REG_BAR0 + 4, &1u32.to_le_bytes());
        assert_eq!(c.bar0(), 0x1_d000_0000);
    }

    #[test]
    fn only_memory_and_bus_master_are_writable_in_command() {
        let mut c = ConfigSpace::nic(0);
        c.write(ids::REG_COMMAND, &[0xff, 0xff]);
        assert_eq!(c.command(), ids::CMD_MEMORY | ids::CMD_BUS_MASTER);
        // The status half is read-only and says "capability list".
        assert_eq!(c.read(1) >> 16, STATUS_CAP_LIST);
        // Vendor/device are read-only.
        c.write(0, &[0, 0, 0, 0]);
        assert_eq!(c.read(0) & 0xffff, u32::from(ids::VENDOR_ID));
    }

    #[test]
    fn msix_capability_layout() {
        let c = ConfigSpace::nic(0);
        assert_eq!(
            c.read((ids::REG_CAP_PTR / 4) as usize) & 0xff,
            u32::from(MSIX_CAP_OFFSET)
        );
        let hdr = c.read(MSIX_CAP_DWORD);
        assert_eq!(hdr & 0xff, u32::from(ids::CAP_ID_MSIX));
        assert_eq!((hdr >> 8) & 0xff, 0, "last capability");
        assert_eq!(c.msix_msg_ctrl() & 0x7ff, ids::MSIX_VECTORS - 1);
        assert_eq!(c.read(MSIX_CAP_DWORD + 1), ids::MSIX_TABLE_OFFSET);
        assert_eq!(c.read(MSIX_CAP_DWORD + 2), ids::MSIX_PBA_OFFSET);
    }

    #[test]
    fn cross_dword_and_out_of_range_writes_are_ignored() {
        let mut c = ConfigSpace::nic(0);
        let before = c.clone();
        c.write(3, &[0xff, 0xff]);
        c.write(255, &[0xff]);
        c.write(4, &[]);
        assert_eq!(c, before);
        assert_eq!(c.read(64), u32::MAX);
    }
}
