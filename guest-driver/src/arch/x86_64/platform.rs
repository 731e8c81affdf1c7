//! The kernel's implementation of `nicproof_guest::platform::Platform`.
//!
//! `KernelPlatform` is a zero-sized handle: everything it needs is global
//! (clock factors, control-port presence) or per CPU (GS base), so the
//! same value works on every CPU and can be shared with jobs run through
//! `kernel::smp`.
//!
//! Two clocks (abi `RunConfig::clock`):
//! - wall: the TSC, and `wait_until` sleeps in `hlt` with the x2APIC
//!   timer armed;
//! - virtual (deterministic mode, `abi::sched`): the VMM's virtual time,
//!   read from the clock page without an exit, and `wait_until` is an
//!   "idle until T" request to the VMM's scheduler. No timer, no TSC:
//!   nothing the guest does depends on wall time.

use super::{apic, control, cpu, percpu, serial};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};
use nicproof_guest::abi::pci::{CONFIG_ADDRESS_PORT, CONFIG_DATA_PORT};
use nicproof_guest::abi::{layout, sched, Marker};
use nicproof_guest::driver::sync::SpinLock;
use nicproof_guest::kernel::record;
use nicproof_guest::kernel::smp;
use nicproof_guest::kernel::time::TscClock;
use nicproof_guest::platform::Platform;

/// Longest single sleep in `wait_until`: callers loop on their condition,
/// so a bounded sleep keeps a bad deadline from hanging a CPU.
const MAX_SLEEP_NS: u64 = 100_000_000;

struct ClockCell(UnsafeCell<Option<TscClock>>);
// SAFETY: written once by the boot CPU (`set_clock`) before interrupts
// are enabled or another CPU starts; read-only afterwards.
unsafe impl Sync for ClockCell {}
static CLOCK: ClockCell = ClockCell(UnsafeCell::new(None));

/// PCI configuration mechanism #1 is two ports: keep CPUs from mixing
/// their address and data accesses.
static PCI_LOCK: SpinLock<()> = SpinLock::new(());

/// Deterministic mode: time and idling belong to the VMM.
static VIRTUAL: AtomicBool = AtomicBool::new(false);

/// Use the VMM's virtual clock and scheduler (boot CPU, before any
/// other CPU starts or anything reads the time).
pub fn set_virtual_clock(on: bool) {
    VIRTUAL.store(on, Ordering::Relaxed);
}

/// Whether the VMM's virtual clock runs (deterministic mode).
#[inline(always)]
pub fn virtual_clock() -> bool {
    VIRTUAL.load(Ordering::Relaxed)
}

#[inline(always)]
fn virtual_now() -> u64 {
    // SAFETY: the clock page is guest RAM below 4 GiB (identity mapped),
    // reserved for it in abi::layout; the VMM writes it between entries,
    // so a volatile read sees the value of the last entry.
    unsafe { core::ptr::read_volatile((layout::CLOCK_PAGE + sched::NOW) as *const u64) }
}

/// Deterministic mode: ask the VMM to idle this CPU until `deadline_ns`
/// (`u64::MAX`: until an interrupt) or an interrupt for it.
pub fn idle_request(deadline_ns: u64) {
    let slot = layout::CLOCK_PAGE + sched::deadline_slot(percpu::cpu_id());
    // SAFETY: this CPU's own slot of the clock page (see virtual_now);
    // the VMM reads it during the `out` exit below.
    unsafe { core::ptr::write_volatile(slot as *mut u64, deadline_ns) };
    if super::user::at_cpl3() {
        super::user::syscall(
            super::user::op::STI_OUT_CLI,
            sched::SCHED_PORT as u64,
            sched::IDLE as u64,
        );
    } else {
        cpu::sti_out_cli(sched::SCHED_PORT, sched::IDLE);
    }
}

/// Deterministic mode: a spin-wait iteration lets the other CPU run.
pub fn yield_request() {
    cpu::outl(sched::SCHED_PORT, sched::YIELD);
}

/// Deterministic mode: interrupt `cpu` with `vector` through the VMM
/// (which then knows the CPU may leave its idle wait).
pub fn ipi_request(cpu: u32, vector: u8) {
    cpu::outl(sched::SCHED_PORT, sched::ipi(cpu, vector));
}

/// Deterministic mode: a scheduling point (`abi::sched::POINT`), the
/// other CPU may run here.
pub fn point_request() {
    cpu::outl(sched::SCHED_PORT, sched::POINT);
}

/// Install the TSC clock. Boot CPU only, before anything reads the time.
pub fn set_clock(c: TscClock) {
    // SAFETY: see ClockCell: single writer, before any reader exists.
    unsafe { *CLOCK.0.get() = Some(c) };
}

#[inline(always)]
fn clock() -> Option<TscClock> {
    // SAFETY: see ClockCell: never written after boot.
    unsafe { *CLOCK.0.get() }
}

/// Handle to the machine for the driver and the softnet core.
#[derive(Clone, Copy, Debug, Default)]
pub struct KernelPlatform;

fn pci_address(bdf: (u8, u8, u8), offset: u8) -> u32 {
    let (bus, dev, func) = bdf;
    0x8000_0000
        | (bus as u32) << 16
        | ((dev & 0x1f) as u32) << 11
        | ((func & 7) as u32) << 8
        | (offset & 0xfc) as u32
}

impl Platform for KernelPlatform {
    fn pci_read32(&self, bdf: (u8, u8, u8), offset: u8) -> u32 {
        let _g = PCI_LOCK.lock();
        cpu::outl(CONFIG_ADDRESS_PORT, pci_address(bdf, offset));
        cpu::inl(CONFIG_DATA_PORT)
    }

    fn pci_write32(&self, bdf: (u8, u8, u8), offset: u8, value: u32) {
        let _g = PCI_LOCK.lock();
        cpu::outl(CONFIG_ADDRESS_PORT, pci_address(bdf, offset));
        cpu::outl(CONFIG_DATA_PORT, value);
    }

    fn mmio_read32(&self, addr: u64) -> u32 {
        // SAFETY: the identity map covers 0..4 GiB and BARs live in the
        // MMIO window, where every access exits to the VMM; a volatile u32
        // access is one `mov` the VMM can decode.
        unsafe { core::ptr::read_volatile(addr as *const u32) }
    }

    fn mmio_write32(&self, addr: u64, value: u32) {
        // SAFETY: as for mmio_read32.
        unsafe { core::ptr::write_volatile(addr as *mut u32, value) }
    }

    fn now_ns(&self) -> u64 {
        if virtual_clock() {
            return virtual_now();
        }
        match clock() {
            Some(c) => c.ticks_to_ns(cpu::rdtsc()),
            None => 0,
        }
    }

    fn wait_until(&self, deadline_ns: u64) {
        if virtual_clock() {
            // No cap (MAX_SLEEP_NS): a wait without an end must be seen
            // as such, so a deadlock ends the run instead of spinning.
            if virtual_now() < deadline_ns {
                idle_request(deadline_ns);
            }
            return;
        }
        let Some(c) = clock() else { return };
        let now = c.ticks_to_ns(cpu::rdtsc());
        if now >= deadline_ns {
            return;
        }
        let left = (deadline_ns - now).min(MAX_SLEEP_NS);
        if !apic::available() {
            // No timer to wake us: poll the clock (bounded by `left`).
            while c.ticks_to_ns(cpu::rdtsc()) < now + left {
                core::hint::spin_loop();
            }
            return;
        }
        if super::user::at_cpl3() {
            // The same arm, sti; hlt; cli and disarm, in the kernel.
            super::user::syscall(super::user::op::WAIT_WALL, c.ns_to_ticks(now + left), left);
            return;
        }
        apic::arm(c.ns_to_ticks(now + left), left);
        // Interrupts are only ever enabled here: a wake-up that became
        // pending after the caller checked its condition ends the hlt.
        cpu::sti_hlt_cli();
        apic::disarm();
    }

    fn marker(&self, marker: Marker, args: &[u64]) {
        self.marker_text(marker, args, "");
    }

    fn marker_text(&self, marker: Marker, args: &[u64], text: &str) {
        if control::present() {
            control::send(&record::marker(marker, args, text));
        } else {
            // Under QEMU the markers are the only trace: print them.
            serial::write_parts(&["marker ", marker.name(), " ", text, "\n"]);
        }
    }

    fn cpu_id(&self) -> u32 {
        percpu::cpu_id()
    }

    fn sched_point(&self) {
        // Wall clock: the CPUs run in parallel, every instruction is a
        // point. Virtual clock with one CPU: nobody to switch to.
        if virtual_clock() && smp::is_online(1) {
            point_request();
        }
    }
}
