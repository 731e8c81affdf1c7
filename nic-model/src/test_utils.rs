//! Test fixtures: guest memory, a recording MSI sink, and a
//! [`TestHelper`] that drives the NIC the way a driver does (through
//! PCI config mechanism #1 and BAR0 MMIO, with dma-map markers), so unit
//! tests, the proptest, the benchmark and the guest-driver's host tests
//! can share one set-up. Shape after Firecracker's net `test_utils.rs`.

use crate::abi::{self, layout, pci as ids, regs, Marker};
use crate::events::{EventKind, EventLog, Source};
use crate::{MsiSink, Nic, NicConfig, PciRoot};
use std::sync::{Arc, Mutex};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

/// TX ring address used by [`TestHelper::open`].
pub const TX_RING: u64 = layout::DMA_POOL_BASE;
/// RX ring address.
pub const RX_RING: u64 = layout::DMA_POOL_BASE + 0x1_0000;
/// First RX buffer; buffers are [`RX_BUF_SIZE`] apart.
pub const RX_BUFS: u64 = layout::DMA_POOL_BASE + 0x10_0000;
/// Size of each RX buffer.
pub const RX_BUF_SIZE: u16 = 2048;
/// MSI address the helper programs (the LAPIC window).
pub const MSI_ADDR: u64 = 0xfee0_0000;
/// MSI data of vector `v` is `MSI_DATA_BASE + v`.
pub const MSI_DATA_BASE: u32 = 0x40;

/// Guest memory like the VMM's: one region of `layout::RAM_SIZE` at 0.
pub fn guest_memory() -> GuestMemoryMmap {
    GuestMemoryMmap::from_ranges(&[(GuestAddress(0), layout::RAM_SIZE as usize)])
        .expect("anonymous guest memory")
}

/// An MSI sink that records every message.
#[derive(Debug, Default)]
pub struct RecordingMsi {
    /// (address, data) of every message, in order.
    pub sent: Mutex<Vec<(u64, u32)>>,
}

impl RecordingMsi {
    /// MSI-X vectors delivered so far (decoded from the data).
    pub fn vectors(&self) -> Vec<u16> {
        let v = self.sent.lock().unwrap_or_else(|e| e.into_inner());
        v.iter().map(|&(_, d)| (d - MSI_DATA_BASE) as u16).collect()
    }
}

impl MsiSink for RecordingMsi {
    fn signal(&self, addr: u64, data: u32) -> bool {
        self.sent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((addr, data));
        true
    }
}

/// A NIC with `cfg` over `mem` on a root bus, with its event log and a
/// recording MSI sink.
pub fn root_with_nic(
    cfg: NicConfig,
    mem: &GuestMemoryMmap,
) -> (PciRoot, EventLog, Arc<RecordingMsi>) {
    let log = EventLog::new();
    let msi = Arc::new(RecordingMsi::default());
    let nic = Nic::new(cfg, mem.clone(), msi.clone(), log.clone()).expect("nic");
    (PciRoot::new(nic), log, msi)
}

/// Report a driver marker as the VMM does: log it (args led by the
/// marker id, as in the control record), then tell the NIC, so the
/// monitor's details can cite the marker's sequence number.
pub fn report_marker(log: &EventLog, nic: &mut Nic, m: Marker, args: &[u64]) {
    let mut all = vec![m as u64];
    all.extend_from_slice(args);
    log.push(
        Source::Guest,
        EventKind::Marker {
            marker: m.name().into(),
            args: all.clone(),
            text: String::new(),
            cpu: None,
        },
    );
    nic.on_guest_marker(m, &all);
}

/// `d` as the 16 bytes the device fetches from the TX ring.
pub fn tx_desc_bytes(d: abi::TxDesc) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[0..8].copy_from_slice(&d.addr.to_le_bytes());
    b[8..10].copy_from_slice(&d.len.to_le_bytes());
    b[10] = d.flags;
    b[11] = d.rsvd;
    b[12..14].copy_from_slice(&d.status.to_le_bytes());
    b[14..16].copy_from_slice(&d.cookie.to_le_bytes());
    b
}

/// `d` as the 16 bytes the device fetches from the RX ring.
pub fn rx_desc_bytes(d: abi::RxDesc) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[0..8].copy_from_slice(&d.addr.to_le_bytes());
    b[8..10].copy_from_slice(&d.buf_len.to_le_bytes());
    b[10..12].copy_from_slice(&d.len.to_le_bytes());
    b[12..14].copy_from_slice(&d.status.to_le_bytes());
    b
}

/// A driver-like harness around one NIC on a root bus.
pub struct TestHelper {
    /// The root bus with the NIC.
    pub root: PciRoot,
    /// The shared log.
    pub log: EventLog,
    /// Interrupts sent.
    pub msi: Arc<RecordingMsi>,
    /// Guest memory (shares the NIC's mapping).
    pub mem: GuestMemoryMmap,
    /// Virtual time, in ns.
    pub now: u64,
    /// Ring size used by `open`.
    pub ring_size: u32,
    /// Driver-side TX tail (free-running).
    pub tx_tail: u32,
    /// Driver-side RX tail.
    pub rx_tail: u32,
    /// Live maps the helper made: (addr, len).
    maps: Vec<(u64, u64)>,
}

impl TestHelper {
    /// A NIC with `cfg` over fresh guest memory, BAR0 at its default.
    pub fn new(cfg: NicConfig) -> Self {
        let mem = guest_memory();
        let (root, log, msi) = root_with_nic(cfg, &mem);
        Self {
            root,
            log,
            msi,
            mem,
            now: 0,
            ring_size: 16,
            tx_tail: 0,
            rx_tail: 0,
            maps: Vec::new(),
        }
    }

    /// The NIC.
    pub fn nic(&mut self) -> &mut Nic {
        &mut self.root.nic
    }

    /// Read configuration dword `reg` of `dev` on bus 0 via 0xcf8/0xcfc.
    pub fn cfg_read(&mut self, dev: u8, reg: u8) -> u32 {
        let addr = 1u32 << 31 | u32::from(dev) << 11 | u32::from(reg & 0xfc);
        self.root.pio_write(0, &addr.to_le_bytes());
        let mut d = [0u8; 4];
        self.root.pio_read(4, &mut d);
        u32::from_le_bytes(d)
    }

    /// Write configuration dword at `reg` of `dev`.
    pub fn cfg_write(&mut self, dev: u8, reg: u8, v: u32) {
        let addr = 1u32 << 31 | u32::from(dev) << 11 | u32::from(reg & 0xfc);
        self.root.pio_write(0, &addr.to_le_bytes());
        self.root.pio_write(4, &v.to_le_bytes());
    }

    /// Turn on memory decoding and bus mastering.
    pub fn enable_pci(&mut self) {
        self.cfg_write(
            ids::NIC_DEVFN.1,
            ids::REG_COMMAND,
            u32::from(ids::CMD_MEMORY | ids::CMD_BUS_MASTER),
        );
    }

    /// Program all MSI-X vectors (unmasked) and enable MSI-X.
    pub fn setup_msix(&mut self) {
        let t = u64::from(ids::MSIX_TABLE_OFFSET);
        for v in 0..u64::from(ids::MSIX_VECTORS) {
            self.bar_write(t + v * 16, MSI_ADDR as u32);
            self.bar_write(t + v * 16 + 4, 0);
            self.bar_write(t + v * 16 + 8, MSI_DATA_BASE + v as u32);
            self.bar_write(t + v * 16 + 12, 0);
        }
        self.cfg_write(ids::NIC_DEVFN.1, crate::pci::MSIX_CAP_OFFSET, 1 << 31);
    }

    /// 32-bit write at BAR0 offset `off`.
    pub fn bar_write(&mut self, off: u64, v: u32) {
        let gpa = self.root.nic.bar0() + off;
        self.root.mmio_write(gpa, &v.to_le_bytes());
    }

    /// 32-bit read at BAR0 offset `off`.
    pub fn bar_read(&mut self, off: u64) -> u32 {
        let gpa = self.root.nic.bar0() + off;
        let mut d = [0u8; 4];
        self.root.mmio_read(gpa, &mut d);
        u32::from_le_bytes(d)
    }

    /// Write register `r`.
    pub fn w(&mut self, r: u32, v: u32) {
        self.bar_write(u64::from(r), v);
    }

    /// Read register `r`.
    pub fn r(&mut self, r: u32) -> u32 {
        self.bar_read(u64::from(r))
    }

    /// Advance virtual time by `ns`.
    pub fn advance(&mut self, ns: u64) {
        self.now += ns;
        self.root.nic.advance(self.now);
    }

    /// Report a driver marker as the VMM would: log it, then tell the NIC.
    pub fn marker(&mut self, m: Marker, args: &[u64]) {
        report_marker(&self.log, &mut self.root.nic, m, args);
    }

    /// dma_map `[addr, addr+len)` in direction `dir` (0 to device, 1 from, 2 both).
    pub fn map(&mut self, addr: u64, len: u64, dir: u64) {
        self.maps.push((addr, len));
        self.marker(Marker::DmaMap, &[addr, len, dir]);
    }

    /// dma_unmap everything the helper mapped.
    pub fn unmap_all(&mut self) {
        for (a, l) in std::mem::take(&mut self.maps) {
            self.marker(Marker::DmaUnmap, &[a, l]);
        }
    }

    /// Reset the device and wait (in virtual time) until it is done.
    pub fn reset(&mut self) {
        self.w(regs::CTRL, regs::CTRL_RESET);
        for _ in 0..1000 {
            if self.r(regs::STATUS) & regs::STATUS_RESETTING == 0 {
                return;
            }
            self.advance(100_000);
        }
    }

    /// A driver-like open: PCI on, MSI-X, reset, rings of `ring_size`
    /// mapped and programmed, every RX buffer posted, interrupts and
    /// TX/RX enabled.
    pub fn open(&mut self, ring_size: u32) {
        self.marker(Marker::OpenEnter, &[]);
        self.ring_size = ring_size;
        self.enable_pci();
        self.setup_msix();
        self.reset();
        let bytes = u64::from(ring_size) * 16;
        self.map(TX_RING, bytes, 2);
        self.map(RX_RING, bytes, 2);
        self.w(regs::TX_BASE_LO, TX_RING as u32);
        self.w(regs::TX_BASE_HI, (TX_RING >> 32) as u32);
        self.w(regs::TX_SIZE, ring_size);
        self.w(regs::RX_BASE_LO, RX_RING as u32);
        self.w(regs::RX_BASE_HI, 0);
        self.w(regs::RX_SIZE, ring_size);
        self.tx_tail = 0;
        self.rx_tail = 0;
        for i in 0..ring_size {
            let buf = RX_BUFS + u64::from(i) * u64::from(RX_BUF_SIZE);
            self.map(buf, u64::from(RX_BUF_SIZE), 1);
            let d = abi::RxDesc {
                addr: buf,
                buf_len: RX_BUF_SIZE,
                ..Default::default()
            };
            self.write_rx_desc(i, d);
        }
        self.rx_tail = ring_size;
        self.w(regs::RX_TAIL, self.rx_tail);
        self.w(
            regs::INT_ENABLE,
            regs::INT_TX | regs::INT_RX | regs::INT_ERR,
        );
        self.w(regs::CTRL, regs::CTRL_TX_EN | regs::CTRL_RX_EN);
        self.marker(Marker::OpenExit, &[0]);
    }

    /// Write TX descriptor `slot` (index modulo ring size).
    pub fn write_tx_desc(&mut self, slot: u32, d: abi::TxDesc) {
        let a = TX_RING + u64::from(slot & (self.ring_size - 1)) * 16;
        self.mem
            .write_slice(&tx_desc_bytes(d), GuestAddress(a))
            .expect("ring in RAM");
    }

    /// Write RX descriptor `slot`.
    pub fn write_rx_desc(&mut self, slot: u32, d: abi::RxDesc) {
        let a = RX_RING + u64::from(slot & (self.ring_size - 1)) * 16;
        self.mem
            .write_slice(&rx_desc_bytes(d), GuestAddress(a))
            .expect("ring in RAM");
    }

    /// Read back TX descriptor `slot`'s status.
    pub fn tx_status(&self, slot: u32) -> u16 {
        let a = TX_RING + u64::from(slot & (self.ring_size - 1)) * 16 + 12;
        self.mem
            .read_obj::<u16>(GuestAddress(a))
            .expect("ring in RAM")
    }

    /// Read back RX descriptor `slot`: (len, status).
    pub fn rx_writeback(&self, slot: u32) -> (u16, u16) {
        let a = RX_RING + u64::from(slot & (self.ring_size - 1)) * 16 + 10;
        let len = self
            .mem
            .read_obj::<u16>(GuestAddress(a))
            .expect("ring in RAM");
        let st = self
            .mem
            .read_obj::<u16>(GuestAddress(a + 2))
            .expect("ring in RAM");
        (len, st)
    }

    /// Fill `[addr, addr+len)` with a pattern derived from `addr`.
    pub fn fill(&mut self, addr: u64, len: usize) {
        let bytes: Vec<u8> = (0..len).map(|i| (addr as usize + i * 7) as u8).collect();
        self.mem
            .write_slice(&bytes, GuestAddress(addr))
            .expect("payload in RAM");
    }

    /// Post one packet of fragments `(addr, len)` (mapped to-device,
    /// payload filled), without ringing the doorbell. Returns the EOP slot.
    pub fn post(&mut self, frags: &[(u64, u16)]) -> u32 {
        let n = frags.len();
        for (i, &(addr, len)) in frags.iter().enumerate() {
            self.fill(addr, usize::from(len));
            self.map(addr, u64::from(len), 0);
            let flags = if i + 1 == n { abi::TXD_EOP } else { 0 };
            let d = abi::TxDesc {
                addr,
                len,
                flags,
                ..Default::default()
            };
            self.write_tx_desc(self.tx_tail, d);
            self.tx_tail = self.tx_tail.wrapping_add(1);
        }
        self.tx_tail.wrapping_sub(1)
    }

    /// Ring the TX doorbell with the helper's tail.
    pub fn doorbell(&mut self) {
        self.w(regs::TX_TAIL, self.tx_tail);
    }

    /// Post one packet and ring the doorbell. Returns the EOP slot.
    pub fn send(&mut self, frags: &[(u64, u16)]) -> u32 {
        let s = self.post(frags);
        self.doorbell();
        s
    }

    /// A driver-like stop: disable interrupts and TX/RX, reset and wait,
    /// unmap everything, then report stop-exit.
    pub fn stop(&mut self) {
        self.marker(Marker::StopEnter, &[]);
        self.w(regs::INT_ENABLE, 0);
        self.w(regs::CTRL, 0);
        self.reset();
        self.unmap_all();
        self.marker(Marker::StopExit, &[]);
    }

    /// Rule names of every violation so far.
    pub fn rules(&self) -> Vec<&'static str> {
        self.root.nic.violations().iter().map(|v| v.rule).collect()
    }

    /// Device faults logged so far (codes).
    pub fn faults(&self) -> Vec<u32> {
        self.log
            .snapshot()
            .into_iter()
            .filter_map(|e| match e.kind {
                EventKind::DeviceFault { code, .. } => Some(code),
                _ => None,
            })
            .collect()
    }
}

/// Packets per doorbell in the TX benchmarks.
pub const BENCH_BATCH: u32 = 256;

/// The TX benchmarks' device (`benches/tx.rs`, `examples/tx_instructions.rs`):
/// null backend (the host-only path), a ring of `MAX_RING` descriptors all
/// posted once as `frame`-byte packets of `frags` fragments (the pattern
/// repeats, so [`TestHelper::bench_doorbell`] only moves the tail), one map
/// over every payload, an interrupt per 64 completions like a moderated
/// NIC under load.
pub fn tx_bench_device(frame: u16, frags: u16, monitor: bool) -> TestHelper {
    let ring = regs::MAX_RING;
    let mut h = TestHelper::new(NicConfig {
        backend: crate::BackendConfig::Null,
        monitor,
        ..Default::default()
    });
    h.open(ring);
    h.w(regs::COAL_TX_FRAMES, 64);
    h.marker(Marker::DmaMap, &[layout::PAYLOAD_BASE, 1 << 20, 0]);
    let frag_len = frame / frags;
    for slot in 0..ring {
        let k = slot % u32::from(frags);
        let last = k + 1 == u32::from(frags);
        let addr = layout::PAYLOAD_BASE
            + u64::from(slot % 256) * 2048
            + u64::from(k) * u64::from(frag_len);
        let len = if last {
            frame - frag_len * (frags - 1)
        } else {
            frag_len
        };
        h.fill(addr, usize::from(len));
        let flags = if last { abi::TXD_EOP } else { 0 };
        h.write_tx_desc(
            slot,
            abi::TxDesc {
                addr,
                len,
                flags,
                ..Default::default()
            },
        );
    }
    h
}

impl TestHelper {
    /// One benchmark doorbell: [`BENCH_BATCH`] more packets of `frags`
    /// descriptors each (see [`tx_bench_device`]).
    pub fn bench_doorbell(&mut self, frags: u16) {
        self.tx_tail = self.tx_tail.wrapping_add(BENCH_BATCH * u32::from(frags));
        self.doorbell();
    }

    /// Drop the log and the sent interrupts between benchmark doorbells
    /// (outside the timed region), so memory stays flat.
    pub fn bench_clear(&mut self) {
        self.log.clear();
        self.msi
            .sent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}
