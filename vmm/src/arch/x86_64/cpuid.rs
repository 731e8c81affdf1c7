//! Per-vCPU CPUID, patched from KVM's supported set
//! (vmm-reference `filter_cpuid`, trimmed to what our guest reads).

use kvm_bindings::CpuId;

/// Leaf 1 ECX: x2APIC.
const ECX_X2APIC: u32 = 1 << 21;
/// Leaf 1 ECX: TSC-deadline timer.
const ECX_TSC_DEADLINE: u32 = 1 << 24;
/// Leaf 1 ECX: running under a hypervisor.
const ECX_HYPERVISOR: u32 = 1 << 31;
/// Leaf 1 EDX: more than one logical processor per package.
const EDX_HTT: u32 = 1 << 28;

/// Patch `cpuid` for vCPU `cpu` of `ncpus`: APIC id, x2APIC, hypervisor bit,
/// logical processor count. `tsc_deadline` says whether KVM has the cap.
pub fn patch(cpuid: &mut CpuId, cpu: u32, ncpus: u32, tsc_deadline: bool) {
    for e in cpuid.as_mut_slice() {
        match e.function {
            1 => {
                // EBX[31:24] initial APIC id, EBX[23:16] logical count.
                e.ebx = (e.ebx & 0x0000_ffff) | (cpu << 24) | ((ncpus & 0xff) << 16);
                e.ecx |= ECX_X2APIC | ECX_HYPERVISOR;
                if tsc_deadline {
                    e.ecx |= ECX_TSC_DEADLINE;
                }
                if ncpus > 1 {
                    e.edx |= EDX_HTT;
                }
            }
            // Extended topology: EDX is the x2APIC id on every sub-leaf.
            0xb => e.edx = cpu,
            _ => {}
        }
    }
}
