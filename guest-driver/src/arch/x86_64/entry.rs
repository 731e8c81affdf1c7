//! Entry points, the GDT, the PVH note and the interrupt stubs.
//!
//! One ELF, two ways in:
//! - `_start` (the ELF entry): the nicproof VMM enters here in 64-bit
//!   mode with its own page tables (0..4 GiB identity), rdi = boot info,
//!   rsi = CPU index, IF = 0.
//! - `nicproof_pvh_start32` (named by the Xen PVH note): QEMU `-kernel`
//!   enters here in 32-bit protected mode, paging off, ebx =
//!   `hvm_start_info`. The stub switches to long mode on static page
//!   tables (no run-time table building) and joins the same path.
//!
//! Application processors enter at [`ap_entry_address`], with the stack
//! the boot CPU asked for in its StartCpu record. Under QEMU they come
//! through INIT-SIPI instead: the real-mode [`trampoline`] (copied to
//! [`TRAMPOLINE_ADDR`]) enters long mode and picks the stack by APIC ID.

use core::arch::global_asm;
use nicproof_guest::abi::layout;

/// Top of the boot CPU's stack: slot 0 of the per-CPU stack area (the
/// VMM's boot stack below 0x9000 is too small for a Rust kernel).
pub const BSP_STACK_TOP: u64 = layout::AP_STACK_BASE + layout::AP_STACK_SIZE;

/// Top of CPU `cpu`'s stack.
pub const fn stack_top(cpu: u32) -> u64 {
    layout::AP_STACK_BASE + (cpu as u64 + 1) * layout::AP_STACK_SIZE
}

/// Value kept in the lowest word of each CPU's stack: if it changes, the
/// stack overflowed (there are no guard pages: RAM is mapped with 2 MiB
/// pages). A cheap, partial check: one store at start, one load at the end.
const STACK_CANARY: u64 = 0x4e50_5354_4143_4b21; // "NPSTACK!"

fn stack_bottom(cpu: u32) -> *mut u64 {
    (layout::AP_STACK_BASE + cpu as u64 * layout::AP_STACK_SIZE) as *mut u64
}

/// Write `cpu`'s stack canary (by that CPU, at entry).
pub fn paint_stack_canary(cpu: u32) {
    // SAFETY: the lowest word of the CPU's own stack slot, far below the
    // stack pointer at entry; identity-mapped RAM reserved for stacks.
    unsafe { core::ptr::write_volatile(stack_bottom(cpu), STACK_CANARY) }
}

/// Whether `cpu`'s stack canary is intact.
pub fn stack_canary_intact(cpu: u32) -> bool {
    // SAFETY: as for `paint_stack_canary`; a read only.
    unsafe { core::ptr::read_volatile(stack_bottom(cpu)) == STACK_CANARY }
}

/// Where the INIT-SIPI trampoline is copied under QEMU (SIPI vector 8).
pub const TRAMPOLINE_ADDR: u64 = 0x8000;

/// The real-mode trampoline's bytes in the image.
pub fn trampoline() -> &'static [u8] {
    let start = nicproof_tramp_start as *const () as usize;
    let end = nicproof_tramp_end as *const () as usize;
    // SAFETY: both symbols delimit the trampoline in .rodata (entry asm).
    unsafe { core::slice::from_raw_parts(start as *const u8, end - start) }
}

extern "C" {
    fn nicproof_tramp_start();
    fn nicproof_tramp_end();
    fn nicproof_ap_entry();
    fn nicproof_isr_stubs();
}

/// Address the VMM must start an application processor at.
pub fn ap_entry_address() -> u64 {
    nicproof_ap_entry as *const () as u64
}

/// Where the linker puts the interrupt stubs (build.rs passes
/// `--section-start=.nicproof_isr=0x201000`): the first page after the
/// ELF headers at `layout::KERNEL_START`; lld lays the rest of the image
/// out after it.
pub const ISR_STUBS_BASE: u64 = 0x20_1000;
const _: () = assert!(ISR_STUBS_BASE + 4096 <= layout::AP_STACK_BASE);

/// Address of the first interrupt stub as linked; stub `v` is at
/// `+ 16 * v`. Equals [`ISR_STUBS_BASE`] in a correctly linked image.
pub fn isr_stubs_address() -> u64 {
    nicproof_isr_stubs as *const () as u64
}

global_asm!(
    r#"
    .section .text.nicproof_entry, "ax"
    .code64

    /* Direct 64-bit entry (boot CPU): rdi = boot info, rsi = CPU index. */
    .global _start
_start:
    movq ${bsp_stack}, %rsp
    call nicproof_load_gdt
    xorl %ebp, %ebp
    call {kmain}
    ud2

    /* Application processors: rsp = their stack, rsi = CPU index. */
    .global nicproof_ap_entry
nicproof_ap_entry:
    andq $-16, %rsp
    call nicproof_load_gdt
    xorl %ebp, %ebp
    call {ap_main}
    ud2

    /* Load our GDT and reload every segment but fs/gs (their bases are
       per-CPU data, set later through MSRs). Clobbers rax only. */
nicproof_load_gdt:
    lgdt nicproof_gdt_ptr(%rip)
    pushq $0x08
    leaq 2f(%rip), %rax
    pushq %rax
    lretq
2:  movl $0x10, %eax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    ret

    /* PVH entry: 32-bit protected mode, paging off, ebx = start_info. */
    .code32
    .global nicproof_pvh_start32
nicproof_pvh_start32:
    cli
    movl %ebx, %edi
    lgdtl nicproof_gdt_ptr
    movl %cr4, %eax
    orl $0x20, %eax                 /* PAE */
    movl %eax, %cr4
    movl $nicproof_pvh_pml4, %eax
    movl %eax, %cr3
    movl $0xc0000080, %ecx          /* EFER */
    rdmsr
    orl $0x100, %eax                /* LME */
    wrmsr
    movl %cr0, %eax
    orl $0x80000001, %eax           /* PG | PE */
    movl %eax, %cr0
    ljmpl $0x08, $nicproof_pvh_start64

    .code64
nicproof_pvh_start64:
    movl %edi, %edi                 /* upper halves are undefined after the switch */
    xorl %esi, %esi
    jmp _start

    /* QEMU application processors, after the trampoline below: the CPU
       index is the initial APIC ID (CPUID.1:EBX[31:24]); take that CPU's
       stack slot and join the normal AP entry. */
    .global nicproof_qemu_ap64
nicproof_qemu_ap64:
    movl $0x10, %eax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movl $1, %eax
    cpuid
    shrl $24, %ebx
    movl %ebx, %esi
    leaq 1(%rsi), %rax
    imulq ${stack_size}, %rax
    addq ${stack_base}, %rax
    movq %rax, %rsp
    xorl %edi, %edi
    jmp nicproof_ap_entry

    /* Real-mode trampoline for INIT-SIPI under QEMU (no nicproof VMM to
       start CPUs in 64-bit mode). Copied to TRAMPOLINE_ADDR; position
       independent in 16-bit terms (data addressed relative to CS). */
    .section .rodata.nicproof_trampoline, "a"
    .global nicproof_tramp_start
    .global nicproof_tramp_end
    .code16
nicproof_tramp_start:
    cli
    movw %cs, %ax
    movw %ax, %ds
    lgdtl (nicproof_tramp_gdt_ptr - nicproof_tramp_start)
    movl %cr4, %eax
    orl $0x20, %eax
    movl %eax, %cr4
    movl $nicproof_pvh_pml4, %eax
    movl %eax, %cr3
    movl $0xc0000080, %ecx
    rdmsr
    orl $0x100, %eax
    wrmsr
    movl %cr0, %eax
    orl $0x80000001, %eax
    movl %eax, %cr0
    ljmpl $0x08, $nicproof_qemu_ap64
    .balign 4
nicproof_tramp_gdt_ptr:
    .word 23
    .long nicproof_gdt
nicproof_tramp_end:
    .code64

    /* GDT: null, 64-bit code (0x08), data (0x10), then the CPL3 task's
       segments in syscall/sysret order: user code32 (0x18, unused), user
       data (0x20), user 64-bit code (0x28); then one 16-byte TSS slot per
       CPU from 0x30, filled by user::enter (`ltr` sets the busy bit: the
       table is writable). Accessed bits are preset. The trampoline loads
       only the first three entries. */
    .section .data.nicproof_gdt, "aw"
    .balign 16
    .global nicproof_gdt
nicproof_gdt:
    .quad 0
    .quad 0x00af9b000000ffff
    .quad 0x00cf93000000ffff
    .quad 0x00cffb000000ffff
    .quad 0x00cff3000000ffff
    .quad 0x00affb000000ffff
    .fill 2 * {max_cpus}, 8, 0
nicproof_gdt_end:
nicproof_gdt_ptr:
    .word nicproof_gdt_end - nicproof_gdt - 1
    .quad nicproof_gdt

    /* PVH page tables, built by the assembler: 0..4 GiB identity mapped
       with 2 MiB pages, user-accessible (the CPL3 task, user.rs); the top
       GiB (MMIO window, IOAPIC, LAPIC) uncached. */
    .section .data.nicproof_pvh_pt, "aw"
    .balign 4096
nicproof_pvh_pml4:
    .quad nicproof_pvh_pdpt + 0x7
    .fill 511, 8, 0
nicproof_pvh_pdpt:
    .quad nicproof_pvh_pd + 0x0007
    .quad nicproof_pvh_pd + 0x1007
    .quad nicproof_pvh_pd + 0x2007
    .quad nicproof_pvh_pd + 0x3007
    .fill 508, 8, 0
nicproof_pvh_pd:
    .set pde, 0
    .rept 2048
    .if pde >= 1536
    .quad (pde << 21) | 0x9f        /* P RW US PWT PCD PS */
    .else
    .quad (pde << 21) | 0x87        /* P RW US PS */
    .endif
    .set pde, pde + 1
    .endr

    /* Xen PVH note (XEN_ELFNOTE_PHYS32_ENTRY = 18), 4-aligned so QEMU
       and linux-loader agree on where the descriptor starts. */
    .section .note.Xen, "a", @note
    .balign 4
    .long 4
    .long 8
    .long 18
    .asciz "Xen"
    .balign 4
    .quad nicproof_pvh_start32

    /* Interrupt stubs, 16 bytes each: push a zero error code where the
       CPU pushes none, push the vector, join the common path. */
    .section .nicproof_isr, "ax"
    .balign 4096
    .global nicproof_isr_stubs
nicproof_isr_stubs:
    .set vec, 0
    .rept 256
    .balign 16
    .if (vec == 8) || (vec == 10) || (vec == 11) || (vec == 12) || (vec == 13) || (vec == 14) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
    .else
    pushq $0
    .endif
    pushq $vec
    jmp nicproof_isr_common
    .set vec, vec + 1
    .endr

    /* The CPU aligned rsp to 16 and pushed 5 words; error code and vector
       make 7, the 9 scratch registers 16: rsp is 16-aligned at the call. */
nicproof_isr_common:
    pushq %rax
    pushq %rcx
    pushq %rdx
    pushq %rsi
    pushq %rdi
    pushq %r8
    pushq %r9
    pushq %r10
    pushq %r11
    movq %rsp, %rdi
    cld
    call {dispatch}
    popq %r11
    popq %r10
    popq %r9
    popq %r8
    popq %rdi
    popq %rsi
    popq %rdx
    popq %rcx
    popq %rax
    addq $16, %rsp
    iretq
"#,
    bsp_stack = const BSP_STACK_TOP,
    stack_base = const layout::AP_STACK_BASE,
    stack_size = const layout::AP_STACK_SIZE,
    kmain = sym crate::boot::kmain,
    ap_main = sym crate::boot::ap_main,
    dispatch = sym super::idt::dispatch,
    max_cpus = const nicproof_guest::kernel::smp::MAX_CPUS,
    options(att_syntax)
);
