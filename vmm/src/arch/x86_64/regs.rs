//! 64-bit boot state written by the VMM: identity page tables, the boot
//! GDT/IDT, and the registers every vCPU starts with (Firecracker
//! `arch/x86_64/regs.rs`, direct long-mode entry).

use kvm_bindings::{kvm_fpu, kvm_regs, kvm_segment, kvm_sregs};
use kvm_ioctls::VcpuFd;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::layout::*;

/// Errors while writing boot state.
#[derive(Debug, thiserror::Error)]
pub enum RegsError {
    /// Guest memory write failed.
    #[error("writing boot structures to guest memory: {0}")]
    Memory(#[from] vm_memory::GuestMemoryError),
    /// A KVM register ioctl failed.
    #[error("{what}: {source}")]
    Kvm {
        /// The ioctl that failed.
        what: &'static str,
        /// The ioctl's error.
        source: kvm_ioctls::Error,
    },
}

fn kvm(what: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> RegsError {
    move |source| RegsError::Kvm { what, source }
}

// Page-table entry bits.
const PTE_PRESENT: u64 = 1 << 0;
const PTE_WRITE: u64 = 1 << 1;
/// User-accessible: the guest's CPL3 driver task (`--cpl 3`) shares the
/// kernel's address space (code, data, stacks, heap, DMA pool, BAR0, the
/// clock page). CR4.SMEP/SMAP stay off, so CPL0 is unaffected.
const PTE_USER: u64 = 1 << 2;
const PTE_PWT: u64 = 1 << 3;
const PTE_PCD: u64 = 1 << 4;
const PTE_HUGE: u64 = 1 << 7;

// Control register bits.
const CR0_PE: u64 = 1 << 0;
const CR0_ET: u64 = 1 << 4;
const CR0_NW: u64 = 1 << 29;
const CR0_CD: u64 = 1 << 30;
const CR0_PG: u64 = 1 << 31;
const CR4_PAE: u64 = 1 << 5;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;
const EFER_NXE: u64 = 1 << 11;

/// Number of page directories needed for the identity map.
pub const NUM_PD: u64 = IDENTITY_MAP_SIZE / (512 * HUGE_PAGE);

/// The 2 MiB page-directory entry mapping `addr`. Everything from the MMIO
/// window up (BARs, IOAPIC, LAPIC) is uncached (PCD|PWT) so device
/// registers are never cached or combined.
pub fn pd_entry(addr: u64) -> u64 {
    let cache = if addr >= MMIO_WINDOW_BASE {
        PTE_PCD | PTE_PWT
    } else {
        0
    };
    addr | PTE_PRESENT | PTE_WRITE | PTE_USER | PTE_HUGE | cache
}

/// Identity-map 0..IDENTITY_MAP_SIZE with 2 MiB pages at PML4/PDPT/PD_BASE.
pub fn write_page_tables(mem: &GuestMemoryMmap) -> Result<(), RegsError> {
    mem.write_obj(
        PDPT | PTE_PRESENT | PTE_WRITE | PTE_USER,
        GuestAddress(PML4),
    )?;
    for d in 0..NUM_PD {
        let pd = PD_BASE + d * 0x1000;
        mem.write_obj(
            pd | PTE_PRESENT | PTE_WRITE | PTE_USER,
            GuestAddress(PDPT + d * 8),
        )?;
        // One write per directory: build the 4 KiB page on the host.
        let mut page = Vec::with_capacity(4096);
        for i in 0..512u64 {
            page.extend_from_slice(&pd_entry((d * 512 + i) * HUGE_PAGE).to_le_bytes());
        }
        mem.write_slice(&page, GuestAddress(pd))?;
    }
    Ok(())
}

/// Encode a GDT descriptor from flags (access byte in bits 7:0, flags
/// nibble in 15:12), base and limit (Firecracker `gdt_entry`).
pub const fn gdt_entry(flags: u16, base: u32, limit: u32) -> u64 {
    let (flags, base, limit) = (flags as u64, base as u64, limit as u64);
    ((base & 0xff00_0000) << (56 - 24))
        | ((flags & 0x0000_f0ff) << 40)
        | ((limit & 0x000f_0000) << (48 - 16))
        | ((base & 0x00ff_ffff) << 16)
        | (limit & 0x0000_ffff)
}

/// The boot GDT: null, 64-bit code, data, TSS.
pub const BOOT_GDT_ENTRIES: [u64; 4] = [
    gdt_entry(0, 0, 0),
    gdt_entry(0xa09b, 0, 0xfffff),
    gdt_entry(0xc093, 0, 0xfffff),
    gdt_entry(0x808b, 0, 0xfffff),
];

/// Decode a GDT descriptor into the segment KVM loads for `selector`.
pub fn segment_from_gdt(entry: u64, selector: u16) -> kvm_segment {
    let bits = |shift: u32, mask: u64| ((entry >> shift) & mask) as u8;
    let base = ((entry >> 16) & 0x00ff_ffff) | ((entry >> 32) & 0xff00_0000);
    let raw_limit = ((entry & 0xffff) | ((entry >> 32) & 0x000f_0000)) as u32;
    let g = bits(55, 1);
    let present = bits(47, 1);
    kvm_segment {
        base,
        limit: if g == 1 {
            (raw_limit << 12) | 0xfff
        } else {
            raw_limit
        },
        selector,
        type_: bits(40, 0xf),
        present,
        dpl: bits(45, 3),
        db: bits(54, 1),
        s: bits(44, 1),
        l: bits(53, 1),
        g,
        avl: bits(52, 1),
        unusable: u8::from(present == 0),
        padding: 0,
    }
}

/// Write the boot GDT and an empty IDT (limit 7: any exception before the
/// guest loads its own IDT triple-faults and shows up as a Shutdown exit).
pub fn write_gdt_idt(mem: &GuestMemoryMmap) -> Result<(), RegsError> {
    for (i, e) in BOOT_GDT_ENTRIES.iter().enumerate() {
        mem.write_obj(*e, GuestAddress(BOOT_GDT + 8 * i as u64))?;
    }
    mem.write_obj(0u64, GuestAddress(BOOT_IDT))?;
    Ok(())
}

/// Put `vcpu` in 64-bit mode on the VMM's GDT and page tables.
pub fn set_long_mode_sregs(vcpu: &VcpuFd) -> Result<(), RegsError> {
    let mut s: kvm_sregs = vcpu.get_sregs().map_err(kvm("KVM_GET_SREGS"))?;
    let code = segment_from_gdt(BOOT_GDT_ENTRIES[1], CODE_SELECTOR);
    let data = segment_from_gdt(BOOT_GDT_ENTRIES[2], DATA_SELECTOR);
    let tss = segment_from_gdt(BOOT_GDT_ENTRIES[3], TSS_SELECTOR);
    s.gdt.base = BOOT_GDT;
    s.gdt.limit = (BOOT_GDT_ENTRIES.len() * 8 - 1) as u16;
    s.idt.base = BOOT_IDT;
    s.idt.limit = 7;
    s.cs = code;
    s.ds = data;
    s.es = data;
    s.fs = data;
    s.gs = data;
    s.ss = data;
    s.tr = tss;
    s.cr3 = PML4;
    s.cr4 |= CR4_PAE;
    // Caches on (KVM's reset value has CD|NW set): the guest expects WB RAM.
    s.cr0 = (s.cr0 & !(CR0_CD | CR0_NW)) | CR0_PE | CR0_ET | CR0_PG;
    s.efer |= EFER_LME | EFER_LMA | EFER_NXE;
    vcpu.set_sregs(&s).map_err(kvm("KVM_SET_SREGS"))
}

/// Entry registers: rip = entry, rsp = stack, rdi = boot info, rsi = cpu.
pub fn set_entry_regs(vcpu: &VcpuFd, entry: u64, stack: u64, cpu: u64) -> Result<(), RegsError> {
    let regs = kvm_regs {
        rflags: 0x2, // bit 1 is reserved-one; IF stays clear
        rip: entry,
        rsp: stack,
        rbp: stack,
        rdi: BOOT_INFO,
        rsi: cpu,
        ..Default::default()
    };
    vcpu.set_regs(&regs).map_err(kvm("KVM_SET_REGS"))
}

/// x87/SSE reset state (Firecracker `setup_fpu`).
pub fn set_fpu(vcpu: &VcpuFd) -> Result<(), RegsError> {
    let fpu = kvm_fpu {
        fcw: 0x37f,
        mxcsr: 0x1f80,
        ..Default::default()
    };
    vcpu.set_fpu(&fpu).map_err(kvm("KVM_SET_FPU"))
}

const APIC_LVT0: usize = 0x350;
const APIC_LVT1: usize = 0x360;
const APIC_MODE_NMI: u32 = 0x4;
const APIC_MODE_EXTINT: u32 = 0x7;

/// LINT0 = ExtINT, LINT1 = NMI, as a PC's firmware leaves them
/// (Firecracker `interrupts.rs set_lint`).
pub fn set_lint(vcpu: &VcpuFd) -> Result<(), RegsError> {
    let mut lapic = vcpu.get_lapic().map_err(kvm("KVM_GET_LAPIC"))?;
    for (reg, mode) in [(APIC_LVT0, APIC_MODE_EXTINT), (APIC_LVT1, APIC_MODE_NMI)] {
        let mut b = [0u8; 4];
        for (i, x) in b.iter_mut().enumerate() {
            *x = lapic.regs[reg + i] as u8;
        }
        let v = (u32::from_le_bytes(b) & !0x700) | (mode << 8);
        for (i, x) in v.to_le_bytes().iter().enumerate() {
            lapic.regs[reg + i] = *x as _;
        }
    }
    vcpu.set_lapic(&lapic).map_err(kvm("KVM_SET_LAPIC"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mem() -> GuestMemoryMmap {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap()
    }

    #[test]
    fn page_tables_identity_map_4gib_and_uncache_the_mmio_window() {
        let m = mem();
        write_page_tables(&m).unwrap();
        let pml4: u64 = m.read_obj(GuestAddress(PML4)).unwrap();
        assert_eq!(pml4, PDPT | 7);
        assert_eq!(NUM_PD, 4);
        for d in 0..4 {
            let pdpte: u64 = m.read_obj(GuestAddress(PDPT + 8 * d)).unwrap();
            assert_eq!(pdpte, (PD_BASE + 0x1000 * d) | 7);
        }
        let pde = |addr: u64| -> u64 {
            let idx = addr / HUGE_PAGE;
            m.read_obj(GuestAddress(PD_BASE + 8 * idx)).unwrap()
        };
        assert_eq!(pde(0), 0x87);
        assert_eq!(pde(KERNEL_START), KERNEL_START | 0x87);
        assert_eq!(pde(MMIO_WINDOW_BASE), MMIO_WINDOW_BASE | 0x87 | 0x18);
        assert_eq!(
            pde(MMIO_WINDOW_BASE - HUGE_PAGE) & 0x18,
            0,
            "RAM below the window is cached"
        );
        let last = IDENTITY_MAP_SIZE - HUGE_PAGE;
        assert_eq!(pde(last), last | 0x9f);
        // Nothing beyond the four directories was touched.
        let after: u64 = m.read_obj(GuestAddress(PD_BASE + 4 * 0x1000)).unwrap();
        assert_eq!(after, 0);
    }

    #[test]
    fn gdt_entries_match_the_known_encodings() {
        // Reference values from Firecracker's gdt tests / the SDM layout.
        assert_eq!(BOOT_GDT_ENTRIES[0], 0);
        assert_eq!(BOOT_GDT_ENTRIES[1], 0x00af_9b00_0000_ffff);
        assert_eq!(BOOT_GDT_ENTRIES[2], 0x00cf_9300_0000_ffff);
        assert_eq!(BOOT_GDT_ENTRIES[3], 0x008f_8b00_0000_ffff);
        assert_eq!(gdt_entry(0x93, 0x1234_5678, 0xabcde), 0x120a_9334_5678_bcde);
    }

    #[test]
    fn segments_decode_long_mode_code_and_data() {
        let cs = segment_from_gdt(BOOT_GDT_ENTRIES[1], CODE_SELECTOR);
        assert_eq!(
            (cs.l, cs.db, cs.present, cs.s, cs.type_, cs.g),
            (1, 0, 1, 1, 0xb, 1)
        );
        assert_eq!(
            (cs.limit, cs.base, cs.selector, cs.unusable),
            (0xffff_ffff, 0, 8, 0)
        );
        let ds = segment_from_gdt(BOOT_GDT_ENTRIES[2], DATA_SELECTOR);
        assert_eq!((ds.l, ds.db, ds.type_), (0, 1, 3));
        let tr = segment_from_gdt(BOOT_GDT_ENTRIES[3], TSS_SELECTOR);
        assert_eq!((tr.type_, tr.s, tr.present), (0xb, 0, 1));
        let null = segment_from_gdt(0, 0);
        assert_eq!(null.unusable, 1);
    }
}
