//! The CPL3 task (`--cpl 3`, `abi::knob::CPL`): boot, the IDT and
//! interrupt entry stay at CPL0; the scenarios, the softnet core and the
//! driver run at CPL3 on each vCPU, as a user-space driver does (DPDK,
//! ixy).
//!
//! Why: this machine's software KVM emulates CPL0 guest code at about
//! 1 µs per instruction, while CPL3 code runs natively
//! (shared/notes/kvm-limits.md).
//!
//! The task shares the kernel's address space: the VMM's page tables are
//! user-accessible throughout (code, data, stacks, heap, DMA pool, BAR0,
//! the clock page), so the driver reaches MMIO and DMA memory directly.
//! Its TSS I/O bitmap allows every port, so port I/O (PCI configuration,
//! control and scheduling ports, serial) stays one instruction with no
//! kernel entry, and the deterministic scheduler sees the same exits in
//! both modes. The task runs with IF = 0; interrupts are enabled only
//! inside the platform's wait, exactly as at CPL0. What CPL3 may not do
//! (`sti`/`cli`, `hlt`, MSRs, `lidt`) goes through a
//! system call ([`syscall`]): the idle request (`sti; out; cli`), the wall clock's
//! wait, wake IPIs and the fatal paths; none is on the per-packet path.
//!
//! An interrupt taken at CPL3 switches to this CPU's interrupt stack
//! (TSS RSP0); the CPL0 handler acknowledges it, marks it pending and
//! returns, as at CPL0. Exceptions in the task are reported by the same
//! CPL0 path (vector, error code, rip, CR2).

use super::apic;
use super::cpu::{self, rdmsr, MSR_GS_BASE};
use nicproof_guest::kernel::smp::MAX_CPUS;

/// GDT selectors (entry.rs lays the GDT out as `syscall`/`sysret` would
/// want it: kernel code, kernel data, user code32, user data, user code64).
pub const USER_DS: u16 = 0x20 | 3;
/// User 64-bit code selector.
pub const USER_CS: u16 = 0x28 | 3;
/// First TSS descriptor (16 bytes each, one per CPU).
const TSS_SELECTOR_BASE: u16 = 0x30;
/// GDT index of the first TSS descriptor.
const TSS_GDT_INDEX: usize = TSS_SELECTOR_BASE as usize / 8;

/// Task RFLAGS: IF = 0 (interrupts only inside the wait, as at CPL0),
/// IOPL 0, bit 1 reserved-one. (This machine's KVM backend ignores a
/// guest IOPL of 3 at CPL3: `out` and `sti` still raise #GP there; the
/// TSS I/O bitmap is honoured.)
const USER_RFLAGS: u64 = 1 << 1;

/// Bytes of each CPU's interrupt stack (exception reports format text
/// on it).
const INT_STACK_SIZE: usize = 16 << 10;

/// 64-bit TSS (Intel SDM 8.7): RSP0 for interrupts taken at CPL3, and
/// an I/O permission bitmap that lets the task use every port.
#[repr(C, packed(4))]
struct Tss {
    _reserved0: u32,
    rsp: [u64; 3],
    _reserved1: u64,
    ist: [u64; 7],
    _reserved2: u64,
    _reserved3: u16,
    iomap_base: u16,
    /// I/O permission bitmap: every port allowed (0 bits), then the
    /// terminating all-ones byte the CPU may read past the last port.
    iomap: [u8; IOMAP_BYTES + 1],
}

const IOMAP_BYTES: usize = 65536 / 8;

const TSS_SIZE: usize = core::mem::size_of::<Tss>();
/// Offset of the I/O bitmap in the TSS.
const IOMAP_OFFSET: usize = 104;
const _: () = assert!(TSS_SIZE >= IOMAP_OFFSET + IOMAP_BYTES + 1);

#[repr(C, align(16))]
struct IntStack([u8; INT_STACK_SIZE]);

struct PerCpuTask {
    tss: [Tss; MAX_CPUS],
    stacks: [IntStack; MAX_CPUS],
}

struct TaskCell(core::cell::UnsafeCell<PerCpuTask>);
// SAFETY: each CPU writes only its own TSS, once, before it enters CPL3;
// the stacks are used only by the CPU whose TSS points at them.
unsafe impl Sync for TaskCell {}

static TASK: TaskCell = TaskCell(core::cell::UnsafeCell::new(PerCpuTask {
    tss: [const {
        Tss {
            _reserved0: 0,
            rsp: [0; 3],
            _reserved1: 0,
            ist: [0; 7],
            _reserved2: 0,
            _reserved3: 0,
            iomap_base: IOMAP_OFFSET as u16,
            iomap: {
                let mut m = [0u8; IOMAP_BYTES + 1];
                m[IOMAP_BYTES] = 0xff;
                m
            },
        }
    }; MAX_CPUS],
    stacks: [const { IntStack([0; INT_STACK_SIZE]) }; MAX_CPUS],
}));

/// Whether the running code is at CPL3 (one native instruction there).
#[inline(always)]
pub fn at_cpl3() -> bool {
    let cs: u16;
    // SAFETY: reading CS has no side effect.
    unsafe {
        core::arch::asm!("mov {:x}, cs", out(reg) cs, options(nomem, nostack, preserves_flags))
    };
    cs & 3 == 3
}

extern "C" {
    static mut nicproof_gdt: [u64; TSS_GDT_INDEX + 2 * MAX_CPUS];
}

/// Give CPU `cpu` its TSS (RSP0 = its interrupt stack), then leave CPL0
/// for good: return to the caller at CPL3 on the same stack, with IOPL 3
/// and IF = 0. Called once per CPU, at CPL0, with IF = 0.
pub fn enter(cpu: u32) {
    let cpu = cpu as usize % MAX_CPUS;
    let task = TASK.0.get();
    // SAFETY: this CPU's own TSS and stack slot (see TaskCell); the GDT
    // is writable (.data) and this CPU's TSS descriptor pair is its own.
    unsafe {
        let stack_top = core::ptr::addr_of!((*task).stacks[cpu]) as u64 + INT_STACK_SIZE as u64;
        let tss = core::ptr::addr_of_mut!((*task).tss[cpu]);
        core::ptr::addr_of_mut!((*tss).rsp).write_unaligned([stack_top, 0, 0]);
        let base = tss as u64;
        let limit = (IOMAP_OFFSET + IOMAP_BYTES) as u64;
        // Available 64-bit TSS (type 9), present, DPL 0.
        let low = (limit & 0xffff)
            | (base & 0xff_ffff) << 16
            | 0x89 << 40
            | (limit >> 16 & 0xf) << 48
            | (base >> 24 & 0xff) << 56;
        let gdt = core::ptr::addr_of_mut!(nicproof_gdt) as *mut u64;
        gdt.add(TSS_GDT_INDEX + 2 * cpu).write_volatile(low);
        gdt.add(TSS_GDT_INDEX + 2 * cpu + 1)
            .write_volatile(base >> 32);
        let sel = TSS_SELECTOR_BASE + 16 * cpu as u16;
        core::arch::asm!("ltr {:x}", in(reg) sel, options(nostack, preserves_flags));
    }
    // Data segments get the user selector first (an IRET to CPL3 would
    // null a DPL-0 one, and loading GS clears its base), then GS base is
    // written back, then IRETQ drops to CPL3 at the next instruction with
    // the same stack pointer.
    let gs_base = rdmsr(MSR_GS_BASE);
    // SAFETY: the frame built here returns to label 2 below with the same
    // rsp; every page is user-accessible (VMM page tables); rax, rcx and
    // rdx are declared clobbered; no Rust-visible memory changes.
    unsafe {
        core::arch::asm!(
            "mov ds, {ds:x}",
            "mov es, {ds:x}",
            "mov fs, {ds:x}",
            "mov gs, {ds:x}",
            "mov ecx, {msr}",
            "mov eax, {lo:e}",
            "mov edx, {hi:e}",
            "wrmsr",
            "mov rax, rsp",
            "push {ds}",
            "push rax",
            "push {rflags}",
            "push {cs}",
            "lea rax, [rip + 2f]",
            "push rax",
            "iretq",
            "2:",
            ds = in(reg) USER_DS as u64,
            lo = in(reg) gs_base as u32,
            hi = in(reg) (gs_base >> 32) as u32,
            msr = const MSR_GS_BASE,
            rflags = const USER_RFLAGS,
            cs = const USER_CS as u64,
            out("rax") _, out("rcx") _, out("rdx") _,
        );
    }
}

/// [`syscall`] operations.
pub mod op {
    /// Wall clock: arm the timer at TSC `a` (`b` ns from now), `sti; hlt;
    /// cli`, disarm.
    pub const WAIT_WALL: u64 = 1;
    /// `sti; hlt; cli` (an idle CPU in wall-clock mode).
    pub const HLT: u64 = 2;
    /// Send IPI `b` to CPU `a` (wall clock).
    pub const IPI: u64 = 3;
    /// `cli; hlt` forever.
    pub const HALT_FOREVER: u64 = 4;
    /// Load an empty IDT (the triple-fault bad guest).
    pub const LOAD_EMPTY_IDT: u64 = 5;
    /// Deterministic mode's idle request: `sti; out a, b; cli` (port `a`,
    /// value `b`), so a pending interrupt is taken right after the `out`.
    pub const STI_OUT_CLI: u64 = 6;
}

/// The bytes after the `ud2` of a [`syscall`]: "NP", so a stray `ud2`
/// in the task is still reported as #UD.
const SYSCALL_SIGNATURE: [u8; 4] = [0x0f, 0x0b, 0x4e, 0x50];

/// Ask the kernel for a privileged operation from CPL3.
///
/// This machine's KVM backend (PVM) offers no usable way in: `int 0x80`
/// at CPL3 raises #UD, and `syscall` lands at LSTAR in a mode where
/// `sti` and port I/O still fault. Exceptions are delivered through the
/// IDT to CPL0 as on hardware, so the call is a marked `ud2`: the #UD
/// handler recognises [`SYSCALL_SIGNATURE`] at the faulting rip, runs
/// [`handle`] and returns past it.
#[inline(always)]
pub fn syscall(op: u64, a: u64, b: u64) {
    // SAFETY: the #UD handler runs `handle` and returns after the
    // signature with every register but rflags' arithmetic bits intact
    // (the interrupt stub saves the scratch registers); memory may change
    // meanwhile (interrupts are taken inside the wait), so not `nomem`.
    unsafe {
        core::arch::asm!("ud2", ".byte 0x4e, 0x50", in("rax") op, in("rdi") a, in("rsi") b, options(nostack));
    }
}

/// From idt::dispatch for #UD: if the fault is a [`syscall`], run it at
/// CPL0 (IF = 0), step the task past it and return true.
pub fn try_syscall(frame: &mut super::idt::Frame) -> bool {
    if frame.cs & 3 != 3 {
        return false;
    }
    // SAFETY: the task's code is mapped (it just faulted on it); reading 4
    // bytes at rip stays inside the kernel image's text.
    let bytes = unsafe { core::ptr::read_unaligned(frame.rip as *const [u8; 4]) };
    if bytes != SYSCALL_SIGNATURE {
        return false;
    }
    handle(frame.rax, frame.rdi, frame.rsi);
    frame.rip += SYSCALL_SIGNATURE.len() as u64;
    true
}

fn handle(op: u64, a: u64, b: u64) {
    match op {
        op::WAIT_WALL => {
            apic::arm(a, b);
            cpu::sti_hlt_cli();
            apic::disarm();
        }
        op::HLT => cpu::sti_hlt_cli(),
        op::IPI => apic::send_ipi(a as u32, b as u8),
        op::HALT_FOREVER => cpu::halt_forever(),
        op::LOAD_EMPTY_IDT => super::idt::load_empty(),
        op::STI_OUT_CLI => cpu::sti_out_cli(a as u16, b as u32),
        _ => {}
    }
}
