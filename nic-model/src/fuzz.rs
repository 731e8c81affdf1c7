//! The in-tree fuzz harness: one function, [`run`], that turns any byte
//! string into operations a hostile guest could make (configuration
//! space, BAR0 at every width and offset, MSI-X table writes, doorbells,
//! guest memory contents, driver markers, time) on a fresh device with
//! the monitor on, and checks after every operation:
//!
//! - no panic (the caller sees one) and bounded work: at most
//!   [`MAX_EVENTS_PER_OP`] events per operation;
//! - every DMA the device made lies inside RAM and outside BAR0, and none
//!   with bus mastering off;
//! - every RAM byte that changed is covered by a DMA write logged in the
//!   same operation (the harness's own writes are tracked in a shadow);
//! - every MSI went into the LAPIC window, and none with bus mastering off;
//! - every fault the device logged is visible in its registers (ERR_CODE,
//!   STATUS error bit, INT_CAUSE error bit);
//! - no monitor rule that only a device can break ([`DEVICE_RULES`]) is
//!   broken: the device is the correct one, so such a violation is a
//!   device bug or a monitor false positive. Rules about the driver
//!   (unmapped buffers, DMA after a stop the fuzzer declared with the
//!   device still enabled, refused accesses) are the hostile guest's doing.
//!
//! The cargo-fuzz target (`fuzz/fuzz_targets/nic.rs`) panics on a
//! [`Finding`]; `tests/fuzz_corpus.rs` replays the corpus and every saved
//! finding through the same function, as an ordinary test.

use crate::abi::{self, pci as ids, regs, Marker};
use crate::events::{DmaDir, EventKind, EventLog};
use crate::monitor;
use crate::msix::MSI_WINDOW;
use crate::test_utils::{report_marker, root_with_nic, rx_desc_bytes, tx_desc_bytes, RecordingMsi};
use crate::{BackendConfig, NicConfig, PciRoot};
use std::sync::Arc;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

/// Guest RAM of a fuzz run: small, so the per-operation memory diff is
/// cheap, but large enough for rings, payloads and RX buffers.
pub const RAM: u64 = 0x2_0000;
const TX_RING: u64 = 0x1000;
const RX_RING: u64 = 0x3000;
const PAYLOAD: u64 = 0x8000;
const RX_BUFS: u64 = 0x1_0000;
const RX_BUF: u16 = 2048;
const RING: u32 = 16;
const MSI_ADDR: u32 = 0xfee0_0000;
const MSI_DATA: u32 = 0x40;

/// Most events one operation may log: a doorbell walks at most
/// `MAX_WORK_PER_DOORBELL` descriptors (each a data read, a frame, its
/// loopback RX and interrupts), an advance at most 1024 timers.
pub const MAX_EVENTS_PER_OP: usize = 16 * abi::MAX_WORK_PER_DOORBELL as usize + 8 * 1024;

/// Rules only a device can break: the correct device must never.
pub const DEVICE_RULES: &[&str] = &[
    monitor::RULE_DMA_DEVICE_DISABLED,
    monitor::RULE_DMA_DURING_RESET,
    monitor::RULE_DESC_UNPOSTED,
    monitor::RULE_COMPLETION_UNPOSTED,
    monitor::RULE_IRQ_WHILE_DISABLED,
    monitor::RULE_RESET_INEFFECTIVE,
];

/// A check that failed: which operation, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding(pub String);

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What one input did (for the corpus test's summary).
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    /// Operations run.
    pub ops: usize,
    /// Events logged.
    pub events: usize,
    /// Frames transmitted.
    pub frames: u64,
    /// Faults the device latched.
    pub faults: usize,
}

/// Reads the input; zeros once it runs out.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    fn u32(&mut self) -> u32 {
        u32::from(self.u16()) | u32::from(self.u16()) << 16
    }
    fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | u64::from(self.u32()) << 32
    }
    fn pick<T: Copy>(&mut self, of: &[T]) -> T {
        of[usize::from(self.u8()) % of.len()]
    }
}

struct Harness {
    root: PciRoot,
    log: EventLog,
    msi: Arc<RecordingMsi>,
    mem: GuestMemoryMmap,
    /// RAM as the harness last saw it (its own writes included).
    shadow: Vec<u8>,
    /// Scratch for the RAM diff (reused).
    now_ram: Vec<u8>,
    /// Faults logged so far.
    faults: usize,
    now: u64,
}

const REGS: &[u32] = &[
    regs::CTRL,
    regs::STATUS,
    regs::EEPROM,
    regs::TX_BASE_LO,
    regs::TX_BASE_HI,
    regs::TX_SIZE,
    regs::TX_HEAD,
    regs::TX_TAIL,
    regs::RX_BASE_LO,
    regs::RX_BASE_HI,
    regs::RX_SIZE,
    regs::RX_HEAD,
    regs::RX_TAIL,
    regs::INT_CAUSE,
    regs::INT_ENABLE,
    regs::COAL_TX_FRAMES,
    regs::COAL_TX_USECS,
    regs::COAL_RX_FRAMES,
    regs::COAL_RX_USECS,
    regs::ERR_CODE,
    regs::ERR_ADDR_HI,
    regs::ERR_CLEAR,
    regs::TEST_COMPLETE,
];

impl Harness {
    fn new(cfg: NicConfig) -> Self {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), RAM as usize)])
            .expect("anonymous guest memory");
        let (root, log, msi) = root_with_nic(cfg, &mem);
        Self {
            root,
            log,
            msi,
            mem,
            shadow: vec![0; RAM as usize],
            now_ram: vec![0; RAM as usize],
            faults: 0,
            now: 0,
        }
    }

    /// A guest write to RAM (clipped to RAM), tracked in the shadow.
    fn poke(&mut self, addr: u64, bytes: &[u8]) {
        let Some(end) = addr.checked_add(bytes.len() as u64).filter(|&e| e <= RAM) else {
            return;
        };
        let _ = self.mem.write_slice(bytes, GuestAddress(addr));
        self.shadow[addr as usize..end as usize].copy_from_slice(bytes);
    }

    fn cfg_write(&mut self, dev: u8, off: u8, data: &[u8]) {
        let addr = 1u32 << 31 | u32::from(dev) << 11 | u32::from(off & 0xfc);
        self.root.pio_write(0, &addr.to_le_bytes());
        self.root.pio_write(4 + u16::from(off & 3), data);
    }

    fn w(&mut self, off: u32, v: u32) {
        let gpa = self.root.nic.bar0().wrapping_add(u64::from(off));
        self.root.mmio_write(gpa, &v.to_le_bytes());
    }

    fn marker(&mut self, m: Marker, args: &[u64]) {
        report_marker(&self.log, &mut self.root.nic, m, args);
    }

    fn tx_desc(&mut self, slot: u32, addr: u64, len: u16, flags: u8) {
        let d = abi::TxDesc {
            addr,
            len,
            flags,
            ..Default::default()
        };
        self.poke(TX_RING + u64::from(slot % RING) * 16, &tx_desc_bytes(d));
    }

    fn rx_desc(&mut self, slot: u32, addr: u64, buf_len: u16) {
        let d = abi::RxDesc {
            addr,
            buf_len,
            ..Default::default()
        };
        self.poke(RX_RING + u64::from(slot % RING) * 16, &rx_desc_bytes(d));
    }

    /// What a correct driver's open does, as one operation, so inputs
    /// reach a working device in a few bytes.
    fn open(&mut self) {
        self.marker(Marker::OpenEnter, &[]);
        let cmd = u32::from(ids::CMD_MEMORY | ids::CMD_BUS_MASTER);
        self.cfg_write(ids::NIC_DEVFN.1, ids::REG_COMMAND, &cmd.to_le_bytes());
        let t = u64::from(ids::MSIX_TABLE_OFFSET);
        for v in 0..u32::from(ids::MSIX_VECTORS) {
            let e = t + u64::from(v) * 16;
            for (k, x) in [MSI_ADDR, 0, MSI_DATA + v, 0].into_iter().enumerate() {
                self.w((e + k as u64 * 4) as u32, x);
            }
        }
        let ctrl = (1u32 << 31).to_le_bytes();
        self.cfg_write(ids::NIC_DEVFN.1, crate::pci::MSIX_CAP_OFFSET, &ctrl);
        self.w(regs::CTRL, regs::CTRL_RESET);
        for _ in 0..100 {
            if self.root.nic.register(regs::STATUS) & regs::STATUS_RESETTING == 0 {
                break;
            }
            self.advance(100_000);
        }
        let ring = u64::from(RING) * 16;
        self.marker(Marker::DmaMap, &[TX_RING, ring, 2]);
        self.marker(Marker::DmaMap, &[RX_RING, ring, 2]);
        self.marker(Marker::DmaMap, &[PAYLOAD, RX_BUFS - PAYLOAD, 0]);
        self.marker(Marker::DmaMap, &[RX_BUFS, u64::from(RING) * 2048, 1]);
        for (r, v) in [
            (regs::TX_BASE_LO, TX_RING as u32),
            (regs::TX_BASE_HI, 0),
            (regs::TX_SIZE, RING),
            (regs::RX_BASE_LO, RX_RING as u32),
            (regs::RX_BASE_HI, 0),
            (regs::RX_SIZE, RING),
        ] {
            self.w(r, v);
        }
        for i in 0..RING {
            self.rx_desc(i, RX_BUFS + u64::from(i) * u64::from(RX_BUF), RX_BUF);
        }
        let head = self.root.nic.register(regs::RX_HEAD);
        self.w(regs::RX_TAIL, head.wrapping_add(RING));
        self.w(
            regs::INT_ENABLE,
            regs::INT_TX | regs::INT_RX | regs::INT_ERR,
        );
        self.w(regs::CTRL, regs::CTRL_TX_EN | regs::CTRL_RX_EN);
        self.marker(Marker::OpenExit, &[0]);
    }

    fn advance(&mut self, ns: u64) {
        self.now = self.now.saturating_add(ns);
        self.root.nic.advance(self.now);
    }

    /// Addresses worth giving the device.
    fn addr(&mut self, b: &mut Input<'_>) -> u64 {
        let bar = self.root.nic.bar0();
        match b.u8() % 12 {
            0 => TX_RING,
            1 => RX_RING,
            2 => PAYLOAD + u64::from(b.u16() % 0x7000),
            3 => RAM - u64::from(b.u8() % 64),
            4 => RAM,
            5 => bar,
            6 => bar + u64::from(ids::MSIX_TABLE_OFFSET),
            7 => u64::from(MSI_ADDR),
            8 => u64::MAX - u64::from(b.u8()),
            9 => 1 << 40,
            10 => u64::from(b.u32()) % RAM,
            _ => b.u64(),
        }
    }

    /// One operation from `b`.
    fn op(&mut self, b: &mut Input<'_>) {
        let nic_dev = ids::NIC_DEVFN.1;
        match b.u8() % 18 {
            0 => self.open(),
            1 => {
                let dev = b.pick(&[nic_dev, nic_dev, 0, 2]);
                let any = b.u8();
                let off = b.pick(&[
                    ids::REG_COMMAND,
                    ids::REG_BAR0,
                    ids::REG_BAR0 + 4,
                    0x40,
                    0x42,
                    0x43,
                    0x3c,
                    any,
                ]);
                let n = b.pick(&[1usize, 2, 4, 4]);
                let v = b.u32().to_le_bytes();
                self.cfg_write(dev, off, &v[..n]);
            }
            2 => {
                let addr = b.u32();
                self.root
                    .pio_write(b.u8().into(), &addr.to_le_bytes()[..b.pick(&[1, 2, 4])]);
                let mut d = [0u8; 4];
                let n = b.pick(&[1, 2, 4]);
                self.root.pio_read(u16::from(b.u8() % 8), &mut d[..n]);
            }
            3 | 4 => {
                let write = b.u8() & 1 == 0;
                let n = b.pick(&[4usize, 4, 8, 1, 2, 3, 0, 16]);
                let wild = b.u8().is_multiple_of(8);
                let off = if wild {
                    let any = b.u64();
                    b.pick(&[
                        u64::MAX - 3,
                        u64::MAX - 7,
                        u64::MAX,
                        ids::BAR0_SIZE - 4,
                        ids::BAR0_SIZE,
                        any,
                    ])
                } else {
                    u64::from(b.u16()) % ids::BAR0_SIZE
                };
                let mut data = [0u8; 16];
                data[..8].copy_from_slice(&b.u64().to_le_bytes());
                match (wild, write) {
                    (true, true) => self.root.nic.bar_write(off, &data[..n]),
                    (true, false) => self.root.nic.bar_read(off, &mut data[..n]),
                    (false, true) => {
                        let gpa = self.root.nic.bar0().wrapping_add(off);
                        self.root.mmio_write(gpa, &data[..n]);
                    }
                    (false, false) => {
                        let gpa = self.root.nic.bar0().wrapping_add(off);
                        self.root.mmio_read(gpa, &mut data[..n]);
                    }
                }
            }
            5 => {
                let r = b.pick(REGS);
                let v = match b.u8() % 4 {
                    0 => b.u32(),
                    1 => u32::from(b.u8()),
                    2 => regs::CTRL_TX_EN | regs::CTRL_RX_EN,
                    _ => RING,
                };
                self.w(r, v);
            }
            6 => {
                let v = u32::from(b.u8() % 4);
                let field = u32::from(b.u8() % 4) * 4;
                let value = match b.u8() % 8 {
                    0 | 1 => MSI_ADDR | u32::from(b.u8()) << 12,
                    2 => 0,
                    3 => 1,
                    4 => self.root.nic.bar0() as u32 + ids::MSIX_TABLE_OFFSET,
                    5 => 0xfec0_0000,
                    6 => MSI_DATA + v,
                    _ => b.u32(),
                };
                self.w(ids::MSIX_TABLE_OFFSET + v * 16 + field, value);
            }
            7 | 8 => {
                let (head, tail) = if b.u8() & 1 == 0 {
                    (regs::TX_HEAD, regs::TX_TAIL)
                } else {
                    (regs::RX_HEAD, regs::RX_TAIL)
                };
                let h = self.root.nic.register(head);
                let v = match b.u8() % 4 {
                    // Forwards or backwards from HEAD.
                    0..=2 => h.wrapping_add(i32::from(b.u8() as i8) as u32),
                    _ => b.u32(),
                };
                self.w(tail, v);
            }
            9 => {
                let head = self.root.nic.register(regs::TX_HEAD);
                let slot = head.wrapping_add(u32::from(b.u8() % 8));
                let addr = self.addr(b);
                let any = b.u16();
                let len = b.pick(&[60, 64, 1, 0, 1514, 1600, 2048, any]);
                let flags = b.u8() & (abi::TXD_EOP | 0x80);
                self.tx_desc(slot, addr, len, flags);
            }
            10 => {
                let head = self.root.nic.register(regs::RX_HEAD);
                let slot = head.wrapping_add(u32::from(b.u8() % 8));
                let addr = self.addr(b);
                let any = b.u16();
                let len = b.pick(&[RX_BUF, 16, 0, 64, any]);
                self.rx_desc(slot, addr, len);
            }
            11 => {
                let addr = u64::from(b.u32()) % RAM;
                let n = usize::from(b.u8() % 32);
                let bytes: Vec<u8> = (0..n).map(|_| b.u8()).collect();
                self.poke(addr, &bytes);
            }
            12 => {
                let m = b.pick(&[
                    Marker::DmaMap,
                    Marker::DmaUnmap,
                    Marker::StopEnter,
                    Marker::StopExit,
                    Marker::OpenEnter,
                    Marker::OpenExit,
                ]);
                let (addr, len, dir) = (self.addr(b), u64::from(b.u16()), u64::from(b.u8() % 3));
                self.marker(m, &[addr, len, dir]);
            }
            13 => {
                let ns = match b.u8() % 4 {
                    0 => u64::from(b.u8()) * 1000,
                    1 => u64::from(b.u16()) * 1000,
                    2 => u64::from(b.u32()),
                    _ => u64::MAX / 2,
                };
                self.advance(ns);
            }
            14 => {
                // A well-formed packet of 1-3 fragments, then the doorbell.
                let tail = self.root.nic.register(regs::TX_TAIL);
                let n = 1 + u32::from(b.u8() % 3);
                for k in 0..n {
                    let addr = PAYLOAD + u64::from(b.u8()) * 64;
                    let flags = if k + 1 == n { abi::TXD_EOP } else { 0 };
                    self.tx_desc(tail.wrapping_add(k), addr, 60, flags);
                }
                self.w(regs::TX_TAIL, tail.wrapping_add(n));
            }
            15 => {
                let bm = if b.u8() & 1 == 0 {
                    ids::CMD_BUS_MASTER
                } else {
                    0
                };
                let cmd = u32::from(ids::CMD_MEMORY | bm);
                self.cfg_write(nic_dev, ids::REG_COMMAND, &cmd.to_le_bytes());
            }
            16 => {
                self.w(regs::CTRL, regs::CTRL_RESET);
                self.advance(u64::from(b.u8()) * 10_000);
            }
            _ => self.w(regs::TEST_COMPLETE, 1),
        }
    }

    /// The checks after operation `i` (its events from `first`).
    fn check(
        &mut self,
        i: usize,
        first: usize,
        msgs_before: usize,
        bm_before: bool,
    ) -> Result<(), Finding> {
        let nic = &self.root.nic;
        let n = self.log.len() - first;
        // The last events before the finding say what led to it.
        let log = self.log.clone();
        let fail = |what: String| {
            let recent: Vec<String> = log.tail(40).iter().map(|e| e.canonical()).collect();
            Err(Finding(format!(
                "op {i}: {what}\nlast events:\n  {}",
                recent.join("\n  ")
            )))
        };
        if n > MAX_EVENTS_PER_OP {
            return fail(format!("{n} events in one operation"));
        }
        let events = self.log.tail(n);
        let bar = nic.bar0();
        let bm_after = nic.config_read(1) & u32::from(ids::CMD_BUS_MASTER) != 0;
        let mut writes = Vec::new();
        let mut faults = Vec::new();
        // An ERR_CLEAR or reset write in the operation may legitimately
        // hide a fault it logged before.
        let mut clears = false;
        for e in &events {
            match &e.kind {
                EventKind::MmioWrite {
                    offset,
                    value,
                    size,
                } => {
                    let dwords = [
                        (*offset, *value as u32),
                        (offset.wrapping_add(4), (*value >> 32) as u32),
                    ];
                    for (off, v) in &dwords[..if *size == 8 { 2 } else { 1 }] {
                        clears |= *off == u64::from(regs::ERR_CLEAR)
                            || (*off == u64::from(regs::CTRL) && v & regs::CTRL_RESET != 0);
                    }
                }
                EventKind::Dma {
                    dir,
                    addr,
                    len,
                    cause,
                } => {
                    let end = addr.checked_add(*len);
                    if end.is_none_or(|end| end > RAM) {
                        return fail(format!("{cause} DMA {addr:#x}+{len} outside RAM"));
                    }
                    if monitor::overlaps(*addr, *len, bar, ids::BAR0_SIZE) {
                        return fail(format!("{cause} DMA {addr:#x}+{len} into BAR0 at {bar:#x}"));
                    }
                    if !bm_before && !bm_after {
                        return fail(format!(
                            "{cause} DMA {addr:#x}+{len} with bus mastering off"
                        ));
                    }
                    if *dir == DmaDir::Write {
                        writes.push((*addr, *addr + *len));
                    }
                }
                EventKind::DeviceFault { code, addr } => faults.push((*code, *addr)),
                EventKind::Violation { rule, detail } if DEVICE_RULES.contains(&rule.as_str()) => {
                    return fail(format!("the correct device broke {rule}: {detail}"));
                }
                _ => {}
            }
        }
        let msgs = self.msi.sent.lock().unwrap_or_else(|e| e.into_inner());
        for &(addr, data) in &msgs[msgs_before..] {
            if !MSI_WINDOW.contains(&addr) {
                return fail(format!("MSI {data:#x} sent to {addr:#x}"));
            }
            if !bm_before && !bm_after {
                return fail(format!("MSI {data:#x} sent with bus mastering off"));
            }
        }
        drop(msgs);
        if !faults.is_empty() && !clears {
            let (code, status, cause) = (
                nic.register(regs::ERR_CODE),
                nic.register(regs::STATUS),
                nic.register(regs::INT_CAUSE),
            );
            if code == 0 || status & regs::STATUS_ERROR == 0 || cause & regs::INT_ERR == 0 {
                return fail(format!(
                    "faults {faults:?} logged but ERR_CODE {code}, STATUS {status:#x}, INT_CAUSE {cause:#x}"
                ));
            }
        }
        // RAM the device changed must be covered by a logged DMA write.
        self.faults += faults.len();
        let _ = self.mem.read_slice(&mut self.now_ram, GuestAddress(0));
        // Whole-slice and chunk compares (memcmp): a byte loop here would
        // be instrumented by the fuzzer's coverage and dominate the run.
        if self.now_ram != self.shadow {
            let chunks = self.now_ram.chunks(64).zip(self.shadow.chunks(64));
            for (c, (now, old)) in chunks.enumerate().filter(|(_, (n, o))| n != o) {
                for (k, (x, y)) in now.iter().zip(old.iter()).enumerate() {
                    let a = (c * 64 + k) as u64;
                    if x != y && !writes.iter().any(|&(s, e)| s <= a && a < e) {
                        return fail(format!(
                            "RAM byte {a:#x} changed ({y:#x} -> {x:#x}) with no DMA write logged"
                        ));
                    }
                }
            }
            self.shadow.copy_from_slice(&self.now_ram);
        }
        Ok(())
    }
}

/// Run the operations `data` encodes on a fresh device; the first byte
/// picks the configuration (knobs, backend). Returns what the input did,
/// or the first check that failed.
pub fn run(data: &[u8]) -> Result<Stats, Finding> {
    let (&k, rest) = data.split_first().unwrap_or((&0, &[]));
    let cfg = NicConfig {
        reset_delay_us: if k & 1 != 0 { 100 } else { 0 },
        complete_on_request: k & 2 != 0,
        dma_until_disabled: k & 4 != 0,
        stall_completions_after: (k & 8 != 0).then_some(3),
        drop_nth_tx_irq: (k & 16 != 0).then_some(2),
        backend: if k & 32 != 0 {
            BackendConfig::Null
        } else {
            BackendConfig::Loopback
        },
        ..NicConfig::default()
    };
    run_with(cfg, rest)
}

/// [`run`] with a given configuration (tests use it with device mutants,
/// to show the checks catch a broken device).
pub fn run_with(cfg: NicConfig, data: &[u8]) -> Result<Stats, Finding> {
    let mut b = Input(data);
    let mut h = Harness::new(cfg);
    let mut stats = Stats::default();
    while !b.0.is_empty() {
        let first = h.log.len();
        let msgs = h.msi.sent.lock().unwrap_or_else(|e| e.into_inner()).len();
        let bm = h.root.nic.config_read(1) & u32::from(ids::CMD_BUS_MASTER) != 0;
        h.op(&mut b);
        h.check(stats.ops, first, msgs, bm)?;
        stats.ops += 1;
    }
    stats.events = h.log.len();
    stats.frames = h.root.nic.frames_sent();
    stats.faults = h.faults;
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MsiSink;

    #[test]
    fn a_ram_write_without_a_logged_dma_is_a_finding() {
        let mut h = Harness::new(NicConfig::default());
        h.open();
        let first = h.log.len();
        assert_eq!(h.check(0, first, 0, true), Ok(()));
        // What a device writing RAM behind the gate would leave.
        let _ = h.mem.write_slice(&[0xaa], GuestAddress(PAYLOAD + 3));
        let f = h.check(1, first, 0, true).unwrap_err();
        assert!(f.0.contains("no DMA write logged"), "{f}");
    }

    #[test]
    fn an_msi_outside_the_window_or_without_bus_mastering_is_a_finding() {
        let mut h = Harness::new(NicConfig::default());
        let first = h.log.len();
        h.msi.signal(0x1000, 0x40);
        assert!(h
            .check(0, first, 0, true)
            .unwrap_err()
            .0
            .contains("sent to 0x1000"));
        h.msi.signal(u64::from(MSI_ADDR), 0x40);
        assert!(h
            .check(1, first, 1, false)
            .unwrap_err()
            .0
            .contains("bus mastering off"));
    }
}
