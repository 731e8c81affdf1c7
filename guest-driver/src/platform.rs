//! The narrow interface between the portable guest logic (softnet core,
//! driver) and the machine it runs on.
//!
//! The kernel binary implements [`Platform`] with port I/O, volatile MMIO,
//! the x2APIC and the control port. Host tests implement it with mocks or
//! with nic-model's device over plain guest memory, so the driver and the
//! softnet core run unchanged under `cargo test`.
//!
//! Keeping `cli`/`sti`, `hlt`, MSRs and EOI behind this trait also keeps a
//! later move of the data path to CPL3 cheap.

use crate::abi::Marker;

/// Machine services the driver and softnet core need.
pub trait Platform {
    /// 32-bit read of the PCI configuration space of `bus:dev.func` at
    /// `offset` (dword aligned).
    fn pci_read32(&self, bdf: (u8, u8, u8), offset: u8) -> u32;
    /// 32-bit write of the PCI configuration space.
    fn pci_write32(&self, bdf: (u8, u8, u8), offset: u8, value: u32);
    /// Volatile 32-bit MMIO read at physical address `addr`.
    fn mmio_read32(&self, addr: u64) -> u32;
    /// Volatile 32-bit MMIO write at physical address `addr`.
    fn mmio_write32(&self, addr: u64, value: u32);
    /// Monotonic time in nanoseconds.
    fn now_ns(&self) -> u64;
    /// Sleep until an interrupt arrives or `deadline_ns` passes
    /// (`sti; hlt` with a timer armed). Always returns; callers re-check
    /// their condition, so a spurious wake-up is harmless.
    fn wait_until(&self, deadline_ns: u64);
    /// Report a marker to the host (one control-port record).
    fn marker(&self, marker: Marker, args: &[u64]);
    /// Report a marker with text.
    fn marker_text(&self, marker: Marker, args: &[u64], text: &str);
    /// The APIC ID of the CPU running this code.
    fn cpu_id(&self) -> u32;
    /// Clear device vector `vector`'s pending bit and say whether it was
    /// set: an MSI arrived since the last look. The kernel's interrupt
    /// entry sets these bits (`kernel::irq::raise`); interrupts are taken
    /// only inside [`Self::wait_until`], so a driver that looks here after
    /// each wait handles every interrupt at the point the CPU took it.
    fn take_irq(&self, vector: u8) -> bool {
        crate::kernel::irq::take(vector)
    }
    /// A scheduling point before a shared access of a lockless protocol
    /// (`abi::sched::POINT`): under the VMM's one-vCPU-at-a-time
    /// scheduler another CPU may run here. Nothing elsewhere.
    fn sched_point(&self) {}
}
