//! x86_64 boot state: memory layout, page tables, GDT, registers, CPUID, MSRs.
pub mod cpuid;
pub mod layout;
pub mod msr;
pub mod regs;
