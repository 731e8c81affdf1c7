//! The one definition of everything guest and host must agree on.
//!
//! This module is `no_std` and dependency-free: the guest kernel
//! (`guest-driver`, built for `x86_64-unknown-none`) and the host
//! (`vmm`, `nic-model`) both import it, so the register map, the
//! descriptor layout, the control-port protocol and the names of
//! scenarios and mutants exist exactly once.
//!
//! Conventions: offsets are byte offsets into BAR0; access types are
//! RW (read/write), RO (read only, writes ignored), W1C (write one to
//! clear), WO (write only, reads return 0). All registers are 32 bits
//! and little endian; 8-byte accesses are split into two dwords.

#![allow(clippy::identity_op)]

// ---------------------------------------------------------------------------
// Guest physical memory layout (set up by the VMM, relied on by the guest).
// ---------------------------------------------------------------------------

/// Physical memory map shared by VMM and guest.
pub mod layout {
    /// GDT written by the VMM for direct 64-bit entry.
    pub const BOOT_GDT: u64 = 0x500;
    /// Empty IDT written by the VMM (the guest loads its own early).
    pub const BOOT_IDT: u64 = 0x520;
    /// `hvm_start_info` for the PVH path (QEMU) or [`super::BootInfo`]
    /// for the direct path: the guest tells them apart by magic.
    pub const BOOT_INFO: u64 = 0x6000;
    /// Initial stack top of the boot CPU on direct entry.
    pub const BOOT_STACK_TOP: u64 = 0x8ff0;
    /// PML4 of the VMM-built identity map.
    pub const PML4: u64 = 0x9000;
    /// PDPT of the identity map.
    pub const PDPT: u64 = 0xa000;
    /// Four page directories (2 MiB pages) identity-mapping 0..4 GiB.
    pub const PD_BASE: u64 = 0xb000;
    /// Size of the identity map built by the VMM.
    pub const IDENTITY_MAP_SIZE: u64 = 4 << 30;
    /// Where the kernel image is linked (lld's default for static EXEC).
    pub const KERNEL_START: u64 = 0x20_0000;
    /// Guest RAM size given by the VMM.
    pub const RAM_SIZE: u64 = 64 << 20;
    /// Payload pool: filled by the host with a seeded pattern at boot so
    /// the guest builds frames from addresses and lengths only and never
    /// copies or generates payload bytes (CPL0 is emulated here).
    pub const PAYLOAD_BASE: u64 = 32 << 20;
    /// Size of the payload pool.
    pub const PAYLOAD_SIZE: u64 = 8 << 20;
    /// DMA pool: rings and RX buffers come from here (page aligned,
    /// physically contiguous; identity mapped so phys == virt).
    pub const DMA_POOL_BASE: u64 = 16 << 20;
    /// Size of the DMA pool.
    pub const DMA_POOL_SIZE: u64 = 16 << 20;
    /// Guest heap (allocator arena) start.
    pub const HEAP_BASE: u64 = 8 << 20;
    /// Guest heap size.
    pub const HEAP_SIZE: u64 = 8 << 20;
    /// Per-CPU stacks for application processors: CPU n's stack top is
    /// `AP_STACK_BASE + (n + 1) * AP_STACK_SIZE`.
    pub const AP_STACK_BASE: u64 = 6 << 20;
    /// Size of one AP stack.
    pub const AP_STACK_SIZE: u64 = 64 << 10;
    /// 32-bit MMIO window where the VMM places BARs (no memslot: every
    /// access exits). Kept clear of the IOAPIC (0xfec0_0000) and the
    /// LAPIC (0xfee0_0000).
    pub const MMIO_WINDOW_BASE: u64 = 0xe000_0000;
    /// Size of the MMIO window.
    pub const MMIO_WINDOW_SIZE: u64 = 0x1000_0000;
    /// Default address of the NIC's BAR0 if the driver leaves it.
    pub const NIC_BAR0_DEFAULT: u64 = MMIO_WINDOW_BASE;
    /// The virtual clock page (deterministic mode, [`super::sched`]): the
    /// VMM writes the virtual time here before every guest entry, and
    /// each CPU writes its idle deadline into its slot.
    pub const CLOCK_PAGE: u64 = 0x5000;
}

// ---------------------------------------------------------------------------
// PCI identity and configuration.
// ---------------------------------------------------------------------------

/// PCI identity of the functions the VMM exposes.
pub mod pci {
    /// Configuration mechanism #1 address port.
    pub const CONFIG_ADDRESS_PORT: u16 = 0xcf8;
    /// Configuration mechanism #1 data port (0xcfc..0xcff).
    pub const CONFIG_DATA_PORT: u16 = 0xcfc;
    /// Host bridge: 00:00.0. Vendor 0x1d0f? No: we use IDs that are not
    /// listed in pci.ids, so no OS binds a real driver to our devices.
    pub const BRIDGE_DEVFN: (u8, u8, u8) = (0, 0, 0);
    /// The NIC: 00:01.0.
    pub const NIC_DEVFN: (u8, u8, u8) = (0, 1, 0);
    /// Vendor ID of both functions ("NP"), unassigned in pci.ids.
    pub const VENDOR_ID: u16 = 0x4e50;
    /// Device ID of the host bridge.
    pub const BRIDGE_DEVICE_ID: u16 = 0x0000;
    /// Device ID of the NIC.
    pub const NIC_DEVICE_ID: u16 = 0x0001;
    /// Class code of the NIC: network controller, ethernet.
    pub const NIC_CLASS: u8 = 0x02;
    /// Size of BAR0 (register file, MSI-X table and PBA).
    pub const BAR0_SIZE: u64 = 0x4000;
    /// Command register: memory space enable.
    pub const CMD_MEMORY: u16 = 1 << 1;
    /// Command register: bus master enable (gates all DMA).
    pub const CMD_BUS_MASTER: u16 = 1 << 2;
    /// Config offset of the command register.
    pub const REG_COMMAND: u8 = 0x04;
    /// Config offset of BAR0 (low dword; BAR1 holds the high dword).
    pub const REG_BAR0: u8 = 0x10;
    /// Config offset of the capability pointer.
    pub const REG_CAP_PTR: u8 = 0x34;
    /// Capability ID of MSI-X.
    pub const CAP_ID_MSIX: u8 = 0x11;
    /// MSI-X vectors: TX completion, RX, error/misc.
    pub const MSIX_VECTORS: u16 = 3;
    /// MSI-X table offset in BAR0.
    pub const MSIX_TABLE_OFFSET: u32 = 0x2000;
    /// MSI-X PBA offset in BAR0.
    pub const MSIX_PBA_OFFSET: u32 = 0x3000;
    /// MSI-X vector index for TX completions.
    pub const MSIX_TX: u16 = 0;
    /// MSI-X vector index for RX.
    pub const MSIX_RX: u16 = 1;
    /// MSI-X vector index for errors and misc causes.
    pub const MSIX_MISC: u16 = 2;
}

// ---------------------------------------------------------------------------
// Register map of BAR0.
// ---------------------------------------------------------------------------

/// BAR0 register offsets and bits.
pub mod regs {
    /// Control (RW): [`CTRL_TX_EN`], [`CTRL_RX_EN`], [`CTRL_RESET`].
    pub const CTRL: u32 = 0x000;
    /// Status (RO): [`STATUS_RESETTING`], [`STATUS_LINK_UP`], [`STATUS_ERROR`].
    pub const STATUS: u32 = 0x004;
    /// EEPROM read (RW): write `addr << EEPROM_ADDR_SHIFT | EEPROM_START`;
    /// when [`EEPROM_DONE`] reads back set, bits 31:16 hold the word.
    /// Words 0..3 hold the MAC address, low byte first.
    pub const EEPROM: u32 = 0x008;
    /// TX ring base, low dword (RW; written while TX is disabled).
    pub const TX_BASE_LO: u32 = 0x010;
    /// TX ring base, high dword (RW).
    pub const TX_BASE_HI: u32 = 0x014;
    /// TX ring size in descriptors (RW): a power of two, 2..=[`MAX_RING`].
    pub const TX_SIZE: u32 = 0x018;
    /// TX head (RO): next descriptor the device will process (it may have
    /// fetched a few more: descriptors are fetched in bursts).
    pub const TX_HEAD: u32 = 0x01c;
    /// TX tail (RW, doorbell): one past the last descriptor posted.
    /// Indexes are free-running modulo 2^32; the slot is `idx & (size-1)`.
    pub const TX_TAIL: u32 = 0x020;
    /// RX ring base, low dword (RW).
    pub const RX_BASE_LO: u32 = 0x030;
    /// RX ring base, high dword (RW).
    pub const RX_BASE_HI: u32 = 0x034;
    /// RX ring size in descriptors (RW).
    pub const RX_SIZE: u32 = 0x038;
    /// RX head (RO): next buffer the device will fill.
    pub const RX_HEAD: u32 = 0x03c;
    /// RX tail (RW, doorbell): one past the last buffer given.
    pub const RX_TAIL: u32 = 0x040;
    /// Interrupt cause (W1C): `INT_*` bits latched by the device.
    pub const INT_CAUSE: u32 = 0x050;
    /// Interrupt enable (RW): a cause raises its MSI-X vector only if
    /// its bit is set here.
    pub const INT_ENABLE: u32 = 0x054;
    /// TX coalescing: frames per interrupt (RW, 0 or 1 = every frame).
    pub const COAL_TX_FRAMES: u32 = 0x060;
    /// TX coalescing: microseconds after the first pending completion
    /// (RW, 0 = no timer; completions then wait for the frame count).
    pub const COAL_TX_USECS: u32 = 0x064;
    /// RX coalescing: frames per interrupt (RW).
    pub const COAL_RX_FRAMES: u32 = 0x068;
    /// RX coalescing: microseconds (RW).
    pub const COAL_RX_USECS: u32 = 0x06c;
    /// First fault found (RO): an [`super::DeviceError`] code, 0 if none.
    pub const ERR_CODE: u32 = 0x070;
    /// Guest address involved in the first fault, low dword (RO).
    pub const ERR_ADDR_LO: u32 = 0x074;
    /// Guest address involved in the first fault, high dword (RO).
    pub const ERR_ADDR_HI: u32 = 0x078;
    /// Write any value to clear the error latch (WO).
    pub const ERR_CLEAR: u32 = 0x07c;
    /// Frames transmitted since reset (RO).
    pub const STAT_TX_FRAMES: u32 = 0x080;
    /// Frames received since reset (RO).
    pub const STAT_RX_FRAMES: u32 = 0x084;
    /// Frames dropped for lack of RX buffers (RO).
    pub const STAT_RX_DROPS: u32 = 0x088;
    /// Test hook (WO): complete all fetched-but-uncompleted TX work now.
    /// Used with the `complete-on-request` fault knob.
    pub const TEST_COMPLETE: u32 = 0x100;

    /// CTRL: transmitter enable.
    pub const CTRL_TX_EN: u32 = 1 << 0;
    /// CTRL: receiver enable.
    pub const CTRL_RX_EN: u32 = 1 << 1;
    /// CTRL: start a reset (self-clearing; see [`STATUS_RESETTING`]).
    pub const CTRL_RESET: u32 = 1 << 2;

    /// STATUS: a reset is in progress; nothing else may be programmed.
    pub const STATUS_RESETTING: u32 = 1 << 0;
    /// STATUS: link is up.
    pub const STATUS_LINK_UP: u32 = 1 << 1;
    /// STATUS: the error latch holds a fault (see [`ERR_CODE`]).
    pub const STATUS_ERROR: u32 = 1 << 2;

    /// EEPROM: start a read.
    pub const EEPROM_START: u32 = 1 << 0;
    /// EEPROM: the read finished; data is valid.
    pub const EEPROM_DONE: u32 = 1 << 1;
    /// EEPROM: word address shift.
    pub const EEPROM_ADDR_SHIFT: u32 = 8;
    /// EEPROM: data shift.
    pub const EEPROM_DATA_SHIFT: u32 = 16;

    /// Interrupt cause: TX completions written back.
    pub const INT_TX: u32 = 1 << 0;
    /// Interrupt cause: RX frames written back.
    pub const INT_RX: u32 = 1 << 1;
    /// Interrupt cause: the error latch was set.
    pub const INT_ERR: u32 = 1 << 2;
    /// Interrupt cause: reset finished.
    pub const INT_RESET_DONE: u32 = 1 << 3;

    /// Largest ring the device accepts.
    pub const MAX_RING: u32 = 4096;

    /// Whether the device accepts a TX_SIZE/RX_SIZE of `size`
    /// descriptors: a power of two from 2 to [`MAX_RING`] (anything else
    /// latches `BadRingSize`). The device and its monitor both ask here.
    pub const fn ring_size_ok(size: u32) -> bool {
        size >= 2 && size <= MAX_RING && size.is_power_of_two()
    }
}

// ---------------------------------------------------------------------------
// Descriptors.
// ---------------------------------------------------------------------------

/// Most fragments of one skb besides its linear head (Linux MAX_SKB_FRAGS).
pub const MAX_SKB_FRAGS: u32 = 17;
/// Worst-case descriptors one packet may take: head plus every fragment.
pub const MAX_DESC_PER_PACKET: u32 = MAX_SKB_FRAGS + 1;
/// Largest frame the device transmits or receives (without FCS).
pub const MAX_FRAME_LEN: u32 = 1522;
/// Smallest frame (an Ethernet header).
pub const MIN_FRAME_LEN: u32 = 14;
/// Most descriptors the device processes per doorbell before it yields;
/// bounds the work one MMIO exit can cause.
pub const MAX_WORK_PER_DOORBELL: u32 = 2 * regs::MAX_RING;

/// The stop threshold of the softnet rule (driver.rst's sample
/// `netif_txq_maybe_stop(txq, avail, MAX_SKB_FRAGS + 1, ...)`): the queue
/// stops once fewer TX descriptors than a worst-case packet are free.
pub const TX_STOP_THRESH: u32 = MAX_DESC_PER_PACKET;
/// The start threshold (`2 * MAX_SKB_FRAGS`): a stopped queue is woken
/// only once this many descriptors are free again.
pub const TX_START_THRESH: u32 = 2 * MAX_SKB_FRAGS;

/// TX descriptor flag: last descriptor of a packet.
pub const TXD_EOP: u8 = 1 << 0;
/// TX descriptor status (written by the device on the EOP descriptor):
/// the packet was processed.
pub const TXD_STAT_DONE: u16 = 1 << 0;
/// TX descriptor status: the packet was dropped because of an error.
pub const TXD_STAT_ERR: u16 = 1 << 1;

/// A TX descriptor. One packet is 1..=[`MAX_DESC_PER_PACKET`]
/// consecutive descriptors, the last with [`TXD_EOP`].
///
/// Once posted (behind TX_TAIL) a descriptor belongs to the device until
/// its packet completes: the device fetches descriptors in bursts and
/// does not read them again, and writes back whole descriptors (as
/// fetched, with the EOP's `status` set), so the driver must not change a
/// posted descriptor, `cookie` included.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxDesc {
    /// Guest physical address of the fragment.
    pub addr: u64,
    /// Fragment length in bytes (1..=[`MAX_FRAME_LEN`]).
    pub len: u16,
    /// `TXD_*` flags, written by the driver.
    pub flags: u8,
    /// Reserved, zero.
    pub rsvd: u8,
    /// `TXD_STAT_*`, written by the device on the EOP descriptor.
    pub status: u16,
    /// Opaque to the device; the driver may keep a slot cookie here.
    pub cookie: u16,
}

/// RX descriptor status: the buffer holds a received frame.
pub const RXD_STAT_DONE: u16 = 1 << 0;
/// RX descriptor status: the frame was truncated or faulty.
pub const RXD_STAT_ERR: u16 = 1 << 1;

/// An RX descriptor: one buffer, one frame.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxDesc {
    /// Guest physical address of the buffer.
    pub addr: u64,
    /// Buffer size in bytes, written by the driver.
    pub buf_len: u16,
    /// Frame length, written by the device.
    pub len: u16,
    /// `RXD_STAT_*`, written by the device.
    pub status: u16,
    /// Reserved, zero.
    pub rsvd: u16,
}

const _: () = assert!(core::mem::size_of::<TxDesc>() == 16);
const _: () = assert!(core::mem::size_of::<RxDesc>() == 16);

/// Error codes latched in [`regs::ERR_CODE`]: the first fault found.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceError {
    /// No fault.
    None = 0,
    /// A descriptor length of zero.
    ZeroLength = 1,
    /// A length beyond the buffer or the maximum frame.
    LengthTooBig = 2,
    /// A DMA address outside guest RAM.
    AddressOutsideRam = 3,
    /// A DMA address inside the device's own BAR (DMA re-entry).
    AddressInBar = 4,
    /// A ring size that is zero, not a power of two or too large.
    BadRingSize = 5,
    /// A tail beyond the ring (more posted than the ring holds).
    BadTail = 6,
    /// A descriptor chain without end-of-packet within the limit.
    NoEndOfPacket = 7,
    /// A frame beyond [`MAX_FRAME_LEN`].
    FrameTooBig = 8,
    /// A register written during reset.
    WriteDuringReset = 9,
    /// DMA attempted with bus mastering off.
    BusMasterOff = 10,
    /// A BAR0 write narrower than 4 bytes or not dword-aligned: registers
    /// have side effects, so the device drops it (ERR_ADDR = offset).
    BadAccess = 11,
    /// An MSI-X message address outside the local APIC window
    /// 0xFEE00000-0xFEEFFFFF (or with a non-zero high dword): the message
    /// is not sent and its PBA bit stays set (ERR_ADDR = the address).
    BadMsiAddress = 12,
}

impl DeviceError {
    /// Decode a register value.
    pub fn from_code(code: u32) -> Option<Self> {
        use DeviceError::*;
        Some(match code {
            0 => None,
            1 => ZeroLength,
            2 => LengthTooBig,
            3 => AddressOutsideRam,
            4 => AddressInBar,
            5 => BadRingSize,
            6 => BadTail,
            7 => NoEndOfPacket,
            8 => FrameTooBig,
            9 => WriteDuringReset,
            10 => BusMasterOff,
            11 => BadAccess,
            12 => BadMsiAddress,
            _ => return Option::None,
        })
    }
}

/// One step of splitmix64: the one seeded generator of every seeded choice,
/// guest-side (random MAC, scenario choices) and host-side (device knobs
/// such as reset delays), so a (scenario, seed) pair means the same on both.
pub const fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

// ---------------------------------------------------------------------------
// Paravirtual control port.
// ---------------------------------------------------------------------------

/// The paravirtual control port: host → guest run configuration and
/// guest → host typed records.
///
/// Protocol (all accesses are 32-bit):
/// - `in CONTROL_PORT` returns [`control::CONTROL_MAGIC`] under nicproof (an
///   absent port reads all ones, e.g. under QEMU).
/// - `out CONFIG_PORT, gpa`: the host writes a [`RunConfig`] at `gpa`.
/// - `out CONTROL_PORT, gpa`: the host reads the [`Record`] at `gpa`
///   (and its text, if any) and acts on it before the vCPU resumes, so
///   a record is ordered with every device event on the host timeline.
pub mod control {
    /// Record doorbell / magic port.
    pub const CONTROL_PORT: u16 = 0x600;
    /// Configuration request port.
    pub const CONFIG_PORT: u16 = 0x604;
    /// Value read from [`CONTROL_PORT`] under nicproof ("NPCF").
    pub const CONTROL_MAGIC: u32 = 0x4e50_4346;
    /// QEMU's isa-debug-exit port, used for power-off when the control
    /// port is absent: the exit status is `(code << 1) | 1`.
    pub const QEMU_DEBUG_EXIT_PORT: u16 = 0xf4;
    /// Longest record text the host accepts; longer texts are cut.
    pub const MAX_TEXT: u32 = 1024;
}

/// Deterministic mode ([`RunConfig::clock`] = [`sched::CLOCK_VIRTUAL`]):
/// the VMM owns time and runs one vCPU at a time. The guest reads the
/// time from [`layout::CLOCK_PAGE`] (no exit) and asks the VMM's
/// scheduler, with one 32-bit `out` to [`sched::SCHED_PORT`], to idle,
/// to let the other CPU run, or to interrupt another CPU.
pub mod sched {
    /// [`super::RunConfig::clock`]: wall time (TSC, x2APIC timer, vCPUs in parallel).
    pub const CLOCK_WALL: u64 = 0;
    /// [`super::RunConfig::clock`]: the VMM's virtual clock and scheduler.
    pub const CLOCK_VIRTUAL: u64 = 1;
    /// The scheduling port (32-bit `out`; the command in the low byte).
    pub const SCHED_PORT: u16 = 0x608;
    /// Idle until the deadline in this CPU's slot of the clock page, or
    /// until an interrupt for it is pending (slot = `u64::MAX`: no
    /// deadline). The guest sends it with `sti` just before, so a
    /// pending interrupt is taken right after the `out`.
    pub const IDLE: u32 = 1;
    /// Spin-wait: let another CPU run first.
    pub const YIELD: u32 = 2;
    /// Send interrupt `vector` (bits 8..16) to CPU `cpu` (bits 16..24):
    /// the wake IPI, delivered by the VMM so it can wake an idle CPU.
    pub const IPI: u32 = 3;
    /// A scheduling point: the scheduler may switch CPUs here as at any
    /// exit. The guest sends it inside a lockless protocol's window (the
    /// TX queue's try_stop, between the free-space read and the stop
    /// bit), only with a second CPU online: one vCPU at a time switches
    /// only at exits, and that window holds none otherwise.
    pub const POINT: u32 = 4;
    /// Offset in the clock page of the virtual time in ns (u64).
    pub const NOW: u64 = 0;
    /// Offset in the clock page of CPU `cpu`'s idle deadline (u64).
    pub const fn deadline_slot(cpu: u32) -> u64 {
        64 + 8 * cpu as u64
    }
    /// The command word of an [`IPI`].
    pub const fn ipi(cpu: u32, vector: u8) -> u32 {
        IPI | (vector as u32) << 8 | (cpu & 0xff) << 16
    }
}

/// Magic of [`BootInfo`].
pub const BOOT_INFO_MAGIC: u32 = 0x4e50_4249; // "NPBI"
/// Magic of a PVH `hvm_start_info`.
pub const PVH_START_MAGIC: u32 = 0x336e_c578;

/// Boot information the VMM writes at [`layout::BOOT_INFO`] for direct
/// 64-bit entry (its address also arrives in `rdi`, the CPU index in `rsi`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct BootInfo {
    /// [`BOOT_INFO_MAGIC`].
    pub magic: u32,
    /// Number of vCPUs.
    pub ncpus: u32,
    /// TSC frequency in kHz (there is no CPUID leaf for it here).
    pub tsc_khz: u64,
    /// Guest RAM size in bytes.
    pub ram_size: u64,
}

/// Number of numeric knobs in a [`RunConfig`].
pub const NUM_KNOBS: usize = 16;

/// The run configuration the host hands the guest.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunConfig {
    /// [`control::CONTROL_MAGIC`].
    pub magic: u32,
    /// Protocol version ([`PROTOCOL_VERSION`]).
    pub version: u32,
    /// A [`Scenario`] id.
    pub scenario: u32,
    /// A [`DriverMutant`] id (0 = correct driver).
    pub driver_mutant: u32,
    /// The seed for every guest-side random choice.
    pub seed: u64,
    /// A [`DeviceMutant`] id (0 = correct device), for the record.
    pub device_mutant: u32,
    /// Number of vCPUs.
    pub ncpus: u32,
    /// TSC frequency in kHz.
    pub tsc_khz: u64,
    /// Scenario knobs; meaning per [`knob`] index.
    pub knobs: [u64; NUM_KNOBS],
    /// Which clock runs: [`sched::CLOCK_WALL`] or [`sched::CLOCK_VIRTUAL`].
    pub clock: u64,
}

/// Current control protocol version.
pub const PROTOCOL_VERSION: u32 = 2;

/// Indexes into [`RunConfig::knobs`].
pub mod knob {
    /// Number of frames the scenario sends (0 = scenario default).
    pub const FRAMES: usize = 0;
    /// Bad-guest switch ([`super::BadGuest`]), 0 = none.
    pub const BAD_GUEST: usize = 1;
    /// TX ring size (0 = driver default).
    pub const TX_RING: usize = 2;
    /// Batch size for xmit_more (0 or 1 = no batching).
    pub const BATCH: usize = 3;
    /// Up/down cycles for the soak (0 = scenario default).
    pub const CYCLES: usize = 4;
    /// Echo: the guest sends this value back in a Marker::Echo record
    /// (control-port round-trip test).
    pub const ECHO: usize = 5;
    /// Benchmark mode (1 = on): no per-packet markers (skb ledger, DMA
    /// map/unmap, RX delivery); the driver maps the payload pool once
    /// per open instead, as an AF_XDP umem is mapped at bind time, so the
    /// DMA monitor still checks every access.
    pub const BENCH: usize = 6;
    /// Scenario variant (e.g. invalid-mac: 0 zero, 1 multicast,
    /// 2 broadcast, 3 valid; unregister: 0 up, 1 down, 2 repeated).
    pub const VARIANT: usize = 7;
    /// How long the default scenario waits for its frames to come back,
    /// in ms (0 = 10 s + 50 ms per frame). Runs whose frames cannot come
    /// back (a null or pcap backend) use it to fail fast.
    pub const DEADLINE_MS: usize = 8;
    /// Privilege level of the guest's driver task: 0 runs the scenarios,
    /// the softnet core and the driver at CPL0 with the kernel; 3 runs
    /// them in a CPL3 task on each vCPU (boot, interrupt entry and
    /// exceptions stay at CPL0). This machine's software KVM emulates CPL0
    /// code at about 1 us per instruction and runs CPL3 code natively, so
    /// `nicproof` sets 3 unless `--cpl 0` (or `--gdb`) says otherwise.
    pub const CPL: usize = 9;

    /// One knob as the command line sets it: its name, its index in
    /// `RunConfig::knobs`, the values it accepts and what it does. [`ALL`]
    /// is the one catalogue: `--knob` parsing, range checks and
    /// `nicproof list` all iterate it.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct KnobSpec {
        /// Name on the command line (`--knob NAME=VALUE`).
        pub name: &'static str,
        /// Index into `RunConfig::knobs`.
        pub index: usize,
        /// Smallest accepted value besides 0 (0 always means the default
        /// or off).
        pub min: u64,
        /// Largest accepted value.
        pub max: u64,
        /// Only powers of two are accepted (besides 0).
        pub pow2: bool,
        /// What it does (one line).
        pub doc: &'static str,
    }

    impl KnobSpec {
        /// Whether `v` is a value this knob accepts.
        pub const fn accepts(&self, v: u64) -> bool {
            v == 0 || (v >= self.min && v <= self.max && (!self.pow2 || v.is_power_of_two()))
        }
    }

    const fn spec(
        name: &'static str,
        index: usize,
        min: u64,
        max: u64,
        doc: &'static str,
    ) -> KnobSpec {
        KnobSpec {
            name,
            index,
            min,
            max,
            pow2: false,
            doc,
        }
    }

    /// Every knob the command line sets (`bad-guest` is normally set with
    /// `--bad-guest`). Ranges are what the guest honours: beyond them it
    /// used to clamp or fall back silently.
    pub const ALL: &[KnobSpec] = &[
        spec(
            "frames",
            FRAMES,
            0,
            100_000,
            "frames the scenario sends (0 = default)",
        ),
        spec(
            "bad-guest",
            BAD_GUEST,
            0,
            5,
            "bad-guest switch (use --bad-guest)",
        ),
        KnobSpec {
            pow2: true,
            ..spec(
                "tx-ring",
                TX_RING,
                64,
                super::regs::MAX_RING as u64,
                "TX ring size (0 = driver default; else a power of two from 64)",
            )
        },
        spec(
            "batch",
            BATCH,
            0,
            64,
            "xmit_more batch size (0 or 1 = none)",
        ),
        spec("cycles", CYCLES, 0, 10_000, "up/down cycles for the soak"),
        spec(
            "bench",
            BENCH,
            0,
            1,
            "1 = benchmark mode: no per-packet markers",
        ),
        spec(
            "variant",
            VARIANT,
            0,
            u64::MAX,
            "scenario variant (which ones: nicproof list)",
        ),
        spec(
            "echo",
            ECHO,
            0,
            u64::MAX,
            "value the guest echoes back in a Marker::Echo record",
        ),
        spec(
            "deadline-ms",
            DEADLINE_MS,
            0,
            3_600_000,
            "ms the default scenario waits for its frames (0 = 10 s + 50 ms per frame)",
        ),
        spec(
            "cpl",
            CPL,
            3,
            3,
            "privilege level of the driver task: 0 (kernel) or 3 (user task); set it with --cpl",
        ),
    ];
}

/// The address the page-fault bad guest reads (above the identity map).
pub const BAD_GUEST_FAULT_ADDR: u64 = 0x0000_0100_dead_b000;
/// The message of the panic bad guest.
pub const BAD_GUEST_PANIC_MSG: &str = "bad guest: deliberate panic";

/// A guest → host record, 64 bytes, read by the host at the address
/// written to [`control::CONTROL_PORT`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Record {
    /// A [`RecordKind`].
    pub kind: u32,
    /// Length of the text at `text_ptr` (0 = none).
    pub text_len: u32,
    /// Guest physical address of UTF-8 text.
    pub text_ptr: u64,
    /// Kind-specific arguments.
    pub args: [u64; 6],
}

const _: () = assert!(core::mem::size_of::<Record>() == 64);

/// What a [`Record`] says.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordKind {
    /// A log line: `args[0]` = level (1 error .. 5 trace), text = line.
    Log = 1,
    /// A driver/softnet marker: `args[0]` = [`Marker`], `args[1..]` per marker.
    Marker = 2,
    /// The guest's own verdict: `args[0]` = 1 pass / 0 fail, text = reason.
    Verdict = 3,
    /// A panic: text = message, `args[0]` = line, `args[1]` = column,
    /// `args[2]`/`args[3]` = file name pointer/length.
    Panic = 4,
    /// A CPU exception: args = vector, error code, rip, cr2, cpu.
    Exception = 5,
    /// Power off: `args[0]` = exit code.
    PowerOff = 6,
    /// Start an application processor: args = cpu, entry, stack top.
    /// The VMM enters it in 64-bit mode with rdi = boot info, rsi = cpu.
    StartCpu = 7,
    /// An application processor is running: `args[0]` = cpu.
    CpuOnline = 8,
    /// The guest finished boot and read its configuration.
    Ready = 9,
}

impl RecordKind {
    /// Decode a record kind.
    pub fn from_u32(v: u32) -> Option<Self> {
        use RecordKind::*;
        Some(match v {
            1 => Log,
            2 => Marker,
            3 => Verdict,
            4 => Panic,
            5 => Exception,
            6 => PowerOff,
            7 => StartCpu,
            8 => CpuOnline,
            9 => Ready,
            _ => return None,
        })
    }
}

macro_rules! id_enum {
    ($(#[$m:meta])* $name:ident { $($(#[doc = $vdoc:literal])* $var:ident = $val:expr, $s:expr;)* }) => {
        $(#[$m])*
        #[repr(u32)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($(#[doc = $vdoc])* $var = $val,)* }
        impl $name {
            /// Every value, in id order.
            pub const ALL: &'static [$name] = &[$($name::$var,)*];
            /// Decode an id.
            pub fn from_u32(v: u32) -> Option<Self> {
                match v { $($val => Some($name::$var),)* _ => None }
            }
            /// The kebab-case name used on the command line and in reports.
            pub fn name(self) -> &'static str {
                match self { $($name::$var => $s,)* }
            }
            /// Look a name up.
            pub fn from_name(s: &str) -> Option<Self> {
                match s { $($s => Some($name::$var),)* _ => None }
            }
            /// The value's doc comment, one line per source line (for
            /// `nicproof list`: one definition, here).
            pub fn doc(self) -> &'static str {
                match self { $($name::$var => concat!($($vdoc, "\n",)* ""),)* }
            }
        }
    };
}

/// An [`id_enum!`] whose every value also carries catalogue data of type
/// `$meta` (after `=>`), returned by its `meta()`: one line per value
/// declares its id, name, doc and data together.
macro_rules! meta_enum {
    ($(#[$m:meta])* $name:ident: $meta:ty { $($(#[doc = $vdoc:literal])* $var:ident = $val:literal, $s:literal => $data:expr;)* }) => {
        id_enum! { $(#[$m])* $name { $($(#[doc = $vdoc])* $var = $val, $s;)* } }
        impl $name {
            /// The value's catalogue entry.
            pub const fn meta(self) -> $meta {
                match self { $($name::$var => $data,)* }
            }
        }
    };
}

id_enum! {
    /// Markers the driver and softnet core report (`args[0]` of a
    /// [`RecordKind::Marker`] record). Arguments follow in `args[1..]`.
    Marker {
        /// Probe started.
        ProbeEnter = 1, "probe-enter";
        /// Probe finished: `args[1]` = 0 ok / errno, `args[2]` = MAC as u64,
        /// `args[3]` = addr_assign_type (0 permanent, 1 random).
        ProbeExit = 2, "probe-exit";
        /// ndo_open entry.
        OpenEnter = 3, "open-enter";
        /// ndo_open exit: `args[1]` = 0 ok / errno.
        OpenExit = 4, "open-exit";
        /// ndo_stop entry.
        StopEnter = 5, "stop-enter";
        /// ndo_stop exit: from here no DMA or interrupt may happen.
        StopExit = 6, "stop-exit";
        /// register_netdev.
        Register = 7, "register";
        /// unregister_netdev entry: `args[1]` = 1 if the device was UP.
        UnregisterEnter = 8, "unregister-enter";
        /// unregister_netdev exit.
        UnregisterExit = 9, "unregister-exit";
        /// dma_map: `args[1]` = addr, `args[2]` = len, `args[3]` = direction
        /// (0 to device, 1 from device, 2 both).
        DmaMap = 10, "dma-map";
        /// dma_unmap: `args[1]` = addr, `args[2]` = len.
        DmaUnmap = 11, "dma-unmap";
        /// Queue stopped: `args[1]` = [`QueueReason`].
        QueueStop = 12, "queue-stop";
        /// Queue woken or restarted: `args[1]` = [`QueueReason`].
        QueueWake = 13, "queue-wake";
        /// skb allocated: `args[1]` = skb id, `args[2]` = len.
        SkbAlloc = 14, "skb-alloc";
        /// skb cloned: `args[1]` = new id, `args[2]` = original id.
        SkbClone = 15, "skb-clone";
        /// skb freed: `args[1]` = skb id.
        SkbFree = 16, "skb-free";
        /// start_xmit returned BUSY: `args[1]` = skb id, `args[2]` = 1
        /// when the queue was woken since the driver last accepted an
        /// skb (a false wake: the stack's count, not the driver's).
        XmitBusy = 17, "xmit-busy";
        /// A frame was delivered to the stack: `args[1]` = buffer addr,
        /// `args[2]` = len, `args[3]` = TX sequence it should match. The host
        /// compares the bytes with what the device transmitted.
        RxDeliver = 18, "rx-deliver";
        /// ndo_tx_timeout was called: `args[1]` = queue.
        TxTimeout = 19, "tx-timeout";
        /// BQL snapshot: `args[1]` = queued, `args[2]` = completed, `args[3]` = limit.
        Bql = 20, "bql";
        /// A guest-side oracle failed: text says which and why.
        OracleFail = 21, "oracle-fail";
        /// Control-port round trip: `args[1]` = the ECHO knob.
        Echo = 22, "echo";
        /// A scenario phase began: `args[1]` = phase number, text = name.
        Phase = 23, "phase";
        /// Counters at the end: `args[1]` = live skbs, `args[2]` = live maps,
        /// `args[3]` = BUSY returns, `args[4]` = BQL in flight.
        Summary = 24, "summary";
        /// TX ring snapshot (not in BENCH mode), when start_xmit ends a
        /// batch (xmit_more false, BUSY, or the queue stopped) and at
        /// ndo_stop entry: `args[1]` = free-running index of the next
        /// descriptor to post, `args[2]` = next descriptor to reclaim,
        /// `args[3]` = BQL bytes queued, `args[4]` = BQL bytes completed,
        /// `args[5]` = [`TX_RING_AT_STOP`] | [`TX_RING_BQL`] flags. The host
        /// checks it against the TX_TAIL writes and frames it saw.
        TxRing = 25, "tx-ring";
        /// BQL's stall detector (Linux `dql_check_stall`) fired at a TX
        /// completion: no completion for at least `stall_thrs` jiffies
        /// although TX was queued in the first half of that time.
        /// `args[1]` = queue, `args[2]` = stall length and `args[3]` =
        /// `stall_thrs` (jiffies), `args[4]` = stalls so far on the queue,
        /// `args[5]` = ns per jiffy.
        BqlStall = 26, "bql-stall";
        /// A NAPI poll ended in `napi_complete_done` (it used less than its
        /// budget and released SCHED): `args[1]` = RX frames it processed,
        /// `args[2]` = its budget. The driver has re-enabled the interrupt
        /// causes it masked by now; the host checks INT_ENABLE.
        NapiComplete = 27, "napi-complete";
        /// The driver's TX ring at a stop or wake of its queue:
        /// `args[1]` = 0 stopped by its ring check (after maybe_stop), 1
        /// woken by reclaim (completed_wake), `args[2]` = the free
        /// descriptors that check read. The host compares them with
        /// [`TX_STOP_THRESH`] and [`TX_START_THRESH`].
        QueueFree = 28, "queue-free";
        /// The driver's own ndo_stop was entered (reported by the driver,
        /// where stop-enter is the core's): the host counts these inside
        /// unregister.
        NdoStop = 29, "ndo-stop";
        /// The driver's NAPI context changed: `args[1]` = 1 when
        /// `napi_disable` returned in stop (no poll runs and no schedule
        /// succeeds from here), 0 when open enabled it again. In between,
        /// an interrupt handler must leave the device alone (host oracle
        /// `irq-after-napi-disable`); the `irq_in_window` knob can count
        /// from here.
        NapiDisable = 30, "napi-disable";
    }
}

/// [`Marker::TxRing`] flag: the snapshot is taken at ndo_stop entry.
pub const TX_RING_AT_STOP: u64 = 1 << 0;
/// [`Marker::TxRing`] flag: BQL accounting is on for the queue.
pub const TX_RING_BQL: u64 = 1 << 1;

/// Why a queue changed state (`args[1]` of QueueStop/QueueWake).
#[repr(u64)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueReason {
    /// Driver stop in advance: fewer than a worst-case packet free.
    RingLow = 1,
    /// BQL limit reached (STACK_XOFF).
    Bql = 2,
    /// try_stop raced with a completion and restarted (-1).
    Raced = 3,
    /// Woken by NAPI reclaim (completed_wake).
    Reclaim = 4,
    /// Stopped or started by open/stop.
    Lifecycle = 5,
    /// Started by the watchdog's recovery.
    Timeout = 6,
}

// ---------------------------------------------------------------------------
// The catalogue of scenarios, mutants, hostile abuses and bad guests.
//
// Each is declared once, here, with everything the host and the guest need
// to know about it: the guest's dispatch, `nicproof list`, the CLI's help
// and errors, the matrix's case table and the tests all iterate these
// tables. CONTRIBUTING.md has the recipes for adding one.
// ---------------------------------------------------------------------------

use crate::rules::Rule;

/// Which module runs a scenario, on the guest
/// (guest-driver/src/scenarios/) and on the host (vmm/src/scenarios/).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Group {
    /// No NIC work (boot benchmarks, the control port): not in the matrix.
    Boot,
    /// The default traffic run and its two-vCPU form (scenarios/default.rs).
    Traffic,
    /// The driver's life: probe, open, stop, unregister (lifecycle.rs).
    Lifecycle,
    /// The TX queue: stop, wake, BQL, completions (queueing.rs).
    Queueing,
    /// A guest that programs the device badly (hostile.rs).
    Hostile,
}

impl Group {
    /// Stable name, as `nicproof list` prints it.
    pub const fn name(self) -> &'static str {
        match self {
            Group::Boot => "boot",
            Group::Traffic => "traffic",
            Group::Lifecycle => "lifecycle",
            Group::Queueing => "queueing",
            Group::Hostile => "hostile",
        }
    }
}

/// A scenario's catalogue entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScenarioSpec {
    /// The module that runs it.
    pub group: Group,
    /// Its variants (knob VARIANT): the matrix runs each of them (a
    /// [`Group::Boot`] scenario none).
    pub variants: &'static [u64],
}

const fn sc(group: Group, variants: &'static [u64]) -> ScenarioSpec {
    ScenarioSpec { group, variants }
}

meta_enum! {
    /// Scenarios the guest knows, with their group and variants. The
    /// host's `nicproof list` prints them.
    Scenario: ScenarioSpec {
        /// Boot, report ready, power off: no NIC work (the boot benchmark).
        Empty = 0, "empty" => sc(Group::Boot, &[0]);
        /// Boot and exercise the control port and both vCPUs.
        Boot = 1, "boot" => sc(Group::Boot, &[0]);
        /// Probe, open, send mixed frames through loopback, check, stop,
        /// unregister.
        Default = 2, "default" => sc(Group::Traffic, &[0]);
        /// The default scenario with transmit on CPU 0 and NAPI on CPU 1
        /// (variant 1: then eight open/stop cycles with an interrupt
        /// forced after napi_disable).
        Smp = 3, "smp" => sc(Group::Traffic, &[0, 1]);
        /// The EEPROM MAC is zero, multicast, broadcast or valid (knob VARIANT 0..=3).
        InvalidMac = 10, "invalid-mac" => sc(Group::Lifecycle, &[0, 1, 2, 3]);
        /// ndo_stop under a TX+RX flood.
        StopUnderFlood = 11, "stop-under-flood" => sc(Group::Lifecycle, &[0]);
        /// The reset takes a random 0-5 ms (variant 1: 50 ms).
        SlowReset = 12, "slow-reset" => sc(Group::Lifecycle, &[0, 1]);
        /// The device keeps DMAing until its enable bit is cleared (r8169).
        DmaUntilDisabled = 13, "dma-until-disabled" => sc(Group::Lifecycle, &[0]);
        /// Packets in flight at stop; the device completes nothing.
        InflightAtStop = 14, "inflight-at-stop" => sc(Group::Lifecycle, &[0]);
        /// Unregister while UP (variant 0), while DOWN (1), after repeated
        /// cycles (2).
        Unregister = 15, "unregister" => sc(Group::Lifecycle, &[0, 1, 2]);
        /// Fill the ring with max-fragment skbs (knob VARIANT 1: reclaim
        /// leaves one descriptor short of the start threshold).
        MaxFragsFill = 16, "max-frags-fill" => sc(Group::Lifecycle, &[0, 1]);
        /// A full ring at xmit entry: BUSY keeps no reference, frees nothing.
        BusyOwnership = 17, "busy-ownership" => sc(Group::Lifecycle, &[0]);
        /// Map failure: the skb is dropped, freed once, OK returned.
        MapFailure = 18, "map-failure" => sc(Group::Lifecycle, &[0]);
        /// NAPI poll with budget 0: TX reclaim only.
        NapiBudgetZero = 19, "napi-budget-zero" => sc(Group::Lifecycle, &[0]);
        /// RX frames arriving after stop are never DMAed.
        RxAfterStop = 20, "rx-after-stop" => sc(Group::Lifecycle, &[0]);
        /// MSI-X masked at stop; no pending interrupt fires later.
        MsixMaskedAtStop = 21, "msix-masked-at-stop" => sc(Group::Lifecycle, &[0]);
        /// Stop racing a completion interrupt.
        StopRacesIrq = 22, "stop-races-irq" => sc(Group::Lifecycle, &[0]);
        /// An interrupt forced at every point of the stop (knob VARIANT 0;
        /// 2: with a 300 us reset, so stop takes it inside), open (1) or
        /// post-napi_disable (3) sequence, one point per open/stop cycle
        /// (the device's `irq_in_window` knob); the handler must leave a
        /// down device alone and every reopen must work.
        IrqWindow = 23, "irq-window" => sc(Group::Lifecycle, &[0, 1, 2, 3]);
        /// The lost-wake window: one vCPU (variant 1: transmit and NAPI on
        /// two).
        LostWake = 30, "lost-wake" => sc(Group::Queueing, &[0, 1]);
        /// Complete exactly when the producer restarts (false wakes).
        FalseWake = 31, "false-wake" => sc(Group::Queueing, &[0]);
        /// BQL with random sizes and xmit_more batches.
        BqlRandom = 32, "bql-random" => sc(Group::Queueing, &[0]);
        /// The last packet of an xmit_more batch dropped (map error).
        BatchLastDropped = 33, "batch-last-dropped" => sc(Group::Queueing, &[0]);
        /// Clone pairs: shared head and frags never written.
        ClonePairs = 34, "clone-pairs" => sc(Group::Queueing, &[0]);
        /// Fewer packets than the coalescing threshold, then idle.
        TimelyCompletion = 35, "timely-completion" => sc(Group::Queueing, &[0]);
        /// The device drops one completion interrupt.
        DroppedIrq = 36, "dropped-irq" => sc(Group::Queueing, &[0]);
        /// A sender with a small send budget (SNDBUF-like).
        SmallBudget = 37, "small-budget" => sc(Group::Queueing, &[0]);
        /// The device stops completing: the watchdog must fire.
        Watchdog = 38, "watchdog" => sc(Group::Queueing, &[0]);
        /// Up/down cycles under load (knob CYCLES).
        Soak = 39, "soak" => sc(Group::Queueing, &[0]);
        /// After probe/open the guest programs the device badly, one
        /// [`Abuse`] per knob VARIANT (wild or BAR DMA address, zero length,
        /// frame too big, no end of packet, bad ring size, bad tail, write
        /// during reset, bus master off, ...); the device must latch the
        /// abuse's error. Variant [`HOSTILE_FUZZ_VARIANT`] makes seeded
        /// garbage instead (not a matrix case).
        Hostile = 50, "hostile" => sc(Group::Hostile, &HOSTILE_VARIANTS);
    }
}

impl Scenario {
    /// The module that runs it.
    pub const fn group(self) -> Group {
        self.meta().group
    }

    /// Its variants (knob VARIANT), each a case of the matrix.
    pub const fn variants(self) -> &'static [u64] {
        self.meta().variants
    }

    /// Every scenario of `group`, in id order.
    pub fn of_group(group: Group) -> impl Iterator<Item = Scenario> {
        Scenario::ALL
            .iter()
            .copied()
            .filter(move |s| s.group() == group)
    }
}

meta_enum! {
    /// Deliberately broken drivers (runtime switches in the guest), each
    /// with the rules it breaks: a matrix case running it must expect
    /// some of them (and only them), and every mutant has one (or a loom
    /// test, `vmm::matrix::LOOM`).
    DriverMutant: &'static [Rule] {
        /// The correct driver.
        None = 0, "none" => &[];
        /// No fence in try_stop / completed_wake.
        NoFence = 1, "no-fence" => &[Rule::GuestStuckStopped, Rule::GuestLostWake];
        /// No re-check after setting the stop bit.
        NoRecheck = 2, "no-recheck" => &[Rule::GuestStuckStopped, Rule::GuestLostWake];
        /// `>` for `>=` in the stop threshold.
        ThresholdOffByOne = 3, "threshold-gt" => &[Rule::GuestStuckStopped];
        /// The wake condition inverted (down_cond un-negated).
        WakeInverted = 4, "wake-inverted" => &[Rule::GuestStuckStopped];
        /// Consumer index stored after completed_wake.
        ConsIndexLate = 5, "cons-index-late" => &[Rule::GuestStuckStopped];
        /// BUSY returned with the skb freed.
        BusyFrees = 6, "busy-frees" => &[Rule::GuestBusyOwnership];
        /// BUSY returned with a reference kept.
        BusyKeepsRef = 7, "busy-keeps-ref" => &[Rule::GuestBusyOwnership];
        /// BUSY returned instead of stopping in advance.
        NoStopInAdvance = 8, "no-stop-in-advance" => &[Rule::NoBusy, Rule::GuestStopEarly];
        /// No DMA unmap at stop.
        NoUnmapAtStop = 9, "no-unmap-at-stop" => &[Rule::DmaMaps, Rule::GuestDmaMaps, Rule::GuestSoak];
        /// No reset poll at stop.
        NoResetPoll = 10, "no-reset-poll" => &[Rule::ResetWait, Rule::GuestResetPoll];
        /// unregister of an UP device does not call stop.
        UnregisterNoStop = 11, "unregister-no-stop" => &[Rule::AutoClose, Rule::GuestAutoClose];
        /// Writes a cloned skb's shared head.
        WritesClonedHead = 12, "writes-cloned-head" => &[Rule::GuestCloneHead];
        /// Reclaims completions only on the next transmit.
        ReclaimOnXmit = 13, "reclaim-on-xmit" => &[Rule::GuestTimely, Rule::GuestSmallBudget];
        /// No watchdog.
        NoWatchdog = 14, "no-watchdog" => &[Rule::GuestWatchdog];
        /// Accepts an invalid MAC.
        AcceptsInvalidMac = 15, "accepts-invalid-mac" => &[Rule::MacAddress, Rule::GuestMacAddress];
        /// Does not disable the device (TX/RX enable, interrupts) at stop.
        NoDisableAtStop = 16, "no-disable-at-stop" =>
            &[Rule::GuestQuiesce, Rule::DmaAfterStop, Rule::IrqAfterStop, Rule::DmaUnmapped];
        /// A deferred doorbell flush (a timer or NAPI path stop did not
        /// cancel) rings the TX doorbell after stop returned.
        DoorbellAfterStop = 17, "doorbell-after-stop" => &[Rule::DoorbellAfterStop];
        /// The last skb of an xmit_more batch is dropped (DMA map failure)
        /// and the driver returns without the doorbell for the packets
        /// already posted.
        DropSkipsDoorbell = 18, "drop-skips-doorbell" => &[Rule::DoorbellPending];
        /// TX completions are reported to BQL 4 bytes (an FCS) short per
        /// packet, so the completed bytes fall behind the bytes sent.
        BqlMiscount = 19, "bql-miscount" => &[Rule::BqlBalance];
        /// TX reclaim runs only from a periodic service task (every 2 s),
        /// not from the completion poll: completions reach BQL up to 2 s
        /// late, and BQL's stall detector (armed at 1280 ms on
        /// bql-random) sees the queue stalled.
        ReclaimInServiceTask = 20, "reclaim-in-service-task" => &[Rule::BqlStall];
        /// The poll's `napi_complete_done` path does not re-enable the TX
        /// and RX causes the MSI handler masked: after its first poll the
        /// driver takes no more completion or RX interrupts.
        IrqNotReenabled = 21, "irq-not-reenabled" => &[Rule::IrqReenable];
        /// TX interrupt moderation by frame count alone (tx-usecs 0), as
        /// mvneta before 01b23da3607d: fewer completions than the frame
        /// threshold never raise the TX interrupt.
        CoalFramesOnly = 22, "coal-frames-only" => &[Rule::CompletionUnsignalled];
        /// The MSI handler masks and acknowledges before asking NAPI, and
        /// masks by writing a constant (INT_ENABLE = INT_ERR) instead of
        /// the causes it holds: an interrupt handled while the device is
        /// down turns the error cause back on.
        IrqMaskUnconditional = 23, "irq-mask-unconditional" =>
            &[Rule::IrqAfterNapiDisable, Rule::IrqEnabledAfterStop, Rule::DeviceError];
        /// Reclaim wakes the queue one descriptor early (start threshold
        /// - 1): a wake with less room than the rule's start threshold.
        WakeEarly = 24, "wake-early" => &[Rule::QueueThresholds];
        /// The ring check stops the queue while a worst-case packet still
        /// fits (stop threshold = start threshold + 1).
        StopEarly = 25, "stop-early" => &[Rule::QueueThresholds];
        /// The driver's stop runs its close routine twice (a teardown path
        /// that closes again): two ndo_stop entries for one dev_close.
        StopTwice = 26, "stop-twice" => &[Rule::AutoClose];
    }
}

impl DriverMutant {
    /// The rules it breaks (none for the correct driver).
    pub const fn breaks(self) -> &'static [Rule] {
        self.meta()
    }
}

meta_enum! {
    /// Deliberately broken devices (runtime switches in nic-model), each
    /// with the rules it breaks (as [`DriverMutant`]).
    DeviceMutant: &'static [Rule] {
        /// The correct device.
        None = 0, "none" => &[];
        /// Keeps DMAing after TX/RX are disabled.
        DmaAfterDisable = 1, "dma-after-disable" => &[Rule::DmaDeviceDisabled, Rule::DmaAfterStop];
        /// Raises an interrupt after being disabled.
        IrqAfterDisable = 2, "irq-after-disable" => &[Rule::IrqWhileDisabled, Rule::IrqAfterStop];
        /// Ignores reset.
        ResetIgnored = 3, "reset-ignored" => &[Rule::ResetIneffective];
        /// Writes a completion for a descriptor never posted.
        PhantomCompletion = 4, "phantom-completion" => &[Rule::CompletionUnposted];
        /// Its descriptor cache reads a whole burst whatever TX_TAIL says,
        /// so it fetches slots the driver has not posted (and later sends
        /// what they held then).
        PrefetchPastTail = 5, "prefetch-past-tail" => &[Rule::DescUnposted];
        /// Reports every received frame 4 bytes short in its RX
        /// descriptor, as if it had stripped an FCS the frame never
        /// carried (CRC stripping assumed on a port whose MAC already
        /// strips it): the stack gets every frame truncated.
        RxStripsFcs = 6, "rx-strips-fcs" => &[Rule::RxContent];
    }
}

impl DeviceMutant {
    /// The rules it breaks (none for the correct device).
    pub const fn breaks(self) -> &'static [Rule] {
        self.meta()
    }
}

/// A hostile abuse's catalogue entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AbuseSpec {
    /// The error the device must latch.
    pub error: DeviceError,
    /// The monitor rule of the DMA the device blocks (empty: the abuse
    /// blocks no DMA, and its matrix case passes).
    pub blocked: &'static [Rule],
}

const fn abuse(error: DeviceError, blocked: &'static [Rule]) -> AbuseSpec {
    AbuseSpec { error, blocked }
}

meta_enum! {
    /// The hostile scenario's abuses: its knob VARIANT is the id. The
    /// guest commits the abuse (guest-driver/src/scenarios/hostile.rs);
    /// the device must latch the named error, and the host's
    /// `device-error` check demands exactly it (vmm/src/scenarios/hostile.rs).
    Abuse: AbuseSpec {
        /// A TX descriptor addressed outside guest RAM.
        OutsideRam = 0, "outside-ram" => abuse(DeviceError::AddressOutsideRam, &[Rule::DmaOutsideRam]);
        /// A TX descriptor addressed at the NIC's own registers.
        InBar = 1, "in-bar" => abuse(DeviceError::AddressInBar, &[Rule::DmaIntoBar]);
        /// A TX descriptor of length zero.
        ZeroLength = 2, "zero-length" => abuse(DeviceError::ZeroLength, &[]);
        /// A frame longer than the largest Ethernet frame.
        FrameTooBig = 3, "frame-too-big" => abuse(DeviceError::FrameTooBig, &[]);
        /// Descriptors up to the tail with no end of packet.
        NoEop = 4, "no-eop" => abuse(DeviceError::NoEndOfPacket, &[]);
        /// A TX ring size that is not a power of two.
        BadRingSize = 5, "bad-ring-size" => abuse(DeviceError::BadRingSize, &[]);
        /// A TX tail beyond the ring.
        BadTail = 6, "bad-tail" => abuse(DeviceError::BadTail, &[]);
        /// A register write while the device resets.
        WriteDuringReset = 7, "write-during-reset" => abuse(DeviceError::WriteDuringReset, &[]);
        /// A doorbell with PCI bus mastering off.
        BusMasterOff = 8, "bus-master-off" => abuse(DeviceError::BusMasterOff, &[Rule::DmaBusMasterOff]);
        /// An RX buffer smaller than the frame it gets.
        RxBufferTooSmall = 9, "rx-buffer-too-small" => abuse(DeviceError::LengthTooBig, &[]);
        /// An RX buffer at the NIC's own registers.
        RxIntoBar = 10, "rx-into-bar" => abuse(DeviceError::AddressInBar, &[Rule::DmaIntoBar]);
        /// A TX ring based outside guest RAM.
        RingOutsideRam = 11, "ring-outside-ram" => abuse(DeviceError::AddressOutsideRam, &[Rule::DmaOutsideRam]);
        /// A TX ring larger than the device allows.
        RingTooLarge = 12, "ring-too-large" => abuse(DeviceError::BadRingSize, &[]);
        /// An RX tail beyond the ring.
        RxBadTail = 13, "rx-bad-tail" => abuse(DeviceError::BadTail, &[]);
    }
}

/// The hostile variant that makes seeded register and descriptor garbage
/// instead of one [`Abuse`]. Not a matrix case: which errors it provokes
/// depends on the seed (tests/tests/hostile.rs runs it over many).
pub const HOSTILE_FUZZ_VARIANT: u64 = 100;

/// The hostile scenario's matrix variants: every [`Abuse`] id.
pub const HOSTILE_VARIANTS: [u64; Abuse::ALL.len()] = {
    let mut v = [0; Abuse::ALL.len()];
    let mut i = 0;
    while i < v.len() {
        v[i] = Abuse::ALL[i] as u64;
        i += 1;
    }
    v
};

id_enum! {
    /// Deliberately bad guests (knob `bad-guest`), for testing the VMM's
    /// outcome reporting.
    BadGuest {
        /// Behave.
        None = 0, "none";
        /// `panic!` with a known message (outcome guest-panic).
        Panic = 1, "panic";
        /// Read an unmapped address (outcome cpu-exception, #PF with a
        /// known CR2).
        PageFault = 2, "page-fault";
        /// Load an empty IDT and fault (outcome triple-fault).
        TripleFault = 3, "triple-fault";
        /// Spin forever with interrupts off (outcome timeout).
        EndlessLoop = 4, "endless-loop";
        /// Both CPUs wait for each other with no deadline (a circular
        /// wait): under the virtual clock, outcome deadlock with both
        /// rips (--clock wall: timeout).
        Deadlock = 5, "deadlock";
    }
}

impl BadGuest {
    /// Decode a knob value.
    pub fn from_u64(v: u64) -> Option<Self> {
        u32::try_from(v).ok().and_then(Self::from_u32)
    }
}
