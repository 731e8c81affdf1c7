//! Interrupt delivery for devices: MSI messages through `KVM_SIGNAL_MSI`
//! on the in-kernel irqchip (no routing table needed; measured as fast
//! as an irqfd on the development machine).

use std::sync::Arc;

use kvm_bindings::kvm_msi;
use kvm_ioctls::VmFd;
use nic_model::msix::MsiSink;

/// An [`MsiSink`] that injects into the VM.
pub struct KvmMsi(pub Arc<VmFd>);

impl MsiSink for KvmMsi {
    /// True if KVM delivered the message (`Ok(>0)`); false if the guest
    /// blocked it (`Ok(0)`, e.g. its LAPIC is disabled) or the ioctl
    /// failed. A refused message is the device's to record, never a panic.
    fn signal(&self, addr: u64, data: u32) -> bool {
        let msi = kvm_msi {
            address_lo: addr as u32,
            address_hi: (addr >> 32) as u32,
            data,
            ..Default::default()
        };
        match self.0.signal_msi(msi) {
            Ok(n) => n > 0,
            Err(e) => {
                tracing::warn!("KVM_SIGNAL_MSI {addr:#x}/{data:#x}: {e}");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvm_ioctls::Kvm;

    #[test]
    fn delivery_follows_the_guest_lapic_state() {
        let kvm = Kvm::new().expect("this test needs /dev/kvm (see README: Requirements)");
        let vm = kvm.create_vm().unwrap();
        vm.create_irq_chip().unwrap();
        let vcpu = vm.create_vcpu(0).unwrap();
        let sink = KvmMsi(Arc::new(vm));
        // Fixed delivery, vector 0x40, to APIC id 0. At reset the LAPIC is
        // software-disabled (SVR bit 8 clear), so KVM refuses it.
        assert!(!sink.signal(0xfee0_0000, 0x40));
        // Enable it as a guest would (SVR = 0x1ff): now it is delivered.
        let mut lapic = vcpu.get_lapic().unwrap();
        lapic.regs[0xf0] = 0xff_u8 as _;
        lapic.regs[0xf1] = 0x01;
        vcpu.set_lapic(&lapic).unwrap();
        assert!(sink.signal(0xfee0_0000, 0x40));
    }
}
