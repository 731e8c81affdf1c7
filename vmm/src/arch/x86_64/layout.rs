//! Guest physical layout: the shared constants live in
//! `nic_model::abi::layout`; this file adds what only the VMM needs.

pub use nic_model::abi::layout::*;

/// Address KVM uses for the real-mode TSS (three pages). Intel needs it,
/// AMD ignores it; it sits in the hole below 4 GiB, clear of RAM and of
/// the MMIO window (Firecracker uses the same value).
pub const KVM_TSS_ADDRESS: usize = 0xfffb_d000;

/// Number of vCPUs every VM gets: the boot CPU and one AP the guest starts.
pub const NCPUS: u32 = 2;

/// GDT selectors of the boot GDT written at [`BOOT_GDT`].
pub const CODE_SELECTOR: u16 = 0x08;
/// Data selector (all data segments and SS).
pub const DATA_SELECTOR: u16 = 0x10;
/// Task register selector.
pub const TSS_SELECTOR: u16 = 0x18;

/// 2 MiB page size of the identity map.
pub const HUGE_PAGE: u64 = 2 << 20;
