//! The in-process machine the driver's host tests run on.
//!
//! [`HostPlat`] implements the guest's `Platform` with nic-model's PCI
//! root and BAR0 over plain guest memory, with the DMA monitor on and
//! virtual time, so a scenario body runs here exactly as in the guest.
//!
//! Included by the tests that need it with
//! `#[path = "common/hostplat.rs"] mod hostplat;` (not through
//! `common/mod.rs`, so the softnet tests do not build the device model).
#![allow(dead_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use nic_model::abi::{
    control, layout, regs, DriverMutant, Marker, RunConfig, Scenario, NUM_KNOBS, PROTOCOL_VERSION,
};
use nic_model::events::{EventKind, EventLog, Source};
use nic_model::msix::MsiSink;
use nic_model::test_utils::guest_memory;
use nic_model::{Nic, NicConfig, PciRoot};
use nicproof_guest::driver::dma::DmaPool;
use nicproof_guest::platform::Platform;
use nicproof_guest::scenarios::{run_with_pool, Verdict};
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap};

/// A marker as the guest sent it.
#[derive(Clone, Debug)]
pub struct Rec {
    pub marker: Marker,
    pub args: Vec<u64>,
    pub text: String,
}

/// What `wait_until` does before it sleeps to the next device event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// Jump straight to the device's next event or the deadline.
    Direct,
    /// First let the other "CPU" (thread) run, as hlt would.
    YieldFirst,
}

/// This machine's interrupt controller, as the guest kernel sees it. An
/// MSI (data = vector) first sits in `irr` (the local APIC's request
/// register: the CPU runs with interrupts off); the CPU takes it at its
/// next wait, where it becomes a pending bit the driver takes
/// (`kernel::irq` in the guest), and the wait ends.
#[derive(Debug, Default)]
pub struct PendingIrqs {
    irr: [AtomicU64; 4],
    pending: [AtomicU64; 4],
    /// MSI messages delivered, in all.
    pub delivered: AtomicU64,
}

impl PendingIrqs {
    /// Take every requested interrupt (sti): true if there was one.
    pub fn accept(&self) -> bool {
        let mut any = false;
        for (irr, p) in self.irr.iter().zip(&self.pending) {
            let w = irr.swap(0, Ordering::SeqCst);
            p.fetch_or(w, Ordering::SeqCst);
            any |= w != 0;
        }
        any
    }
    pub fn take(&self, vector: u8) -> bool {
        let bit = 1u64 << (vector & 63);
        self.pending[usize::from(vector >> 6)].fetch_and(!bit, Ordering::SeqCst) & bit != 0
    }
}

impl MsiSink for PendingIrqs {
    fn signal(&self, _addr: u64, data: u32) -> bool {
        let v = (data & 0xff) as u8;
        self.irr[usize::from(v >> 6)].fetch_or(1u64 << (v & 63), Ordering::SeqCst);
        self.delivered.fetch_add(1, Ordering::SeqCst);
        true
    }
}

/// The machine: the NIC on a PCI root, guest memory, virtual time.
pub struct HostPlat {
    /// Interrupts the NIC sent and the driver has not taken.
    pub irqs: Arc<PendingIrqs>,
    pub root: Mutex<PciRoot>,
    pub mem: GuestMemoryMmap,
    pub log: EventLog,
    pub now: AtomicU64,
    markers: Mutex<Vec<Rec>>,
    pub rx_ok: AtomicU64,
    pub rx_bad: AtomicU64,
    wait: Wait,
}

impl HostPlat {
    /// A fresh machine whose `wait_until` jumps straight ahead.
    pub fn new(cfg: NicConfig) -> Self {
        Self::with_wait(cfg, Wait::Direct)
    }

    /// A fresh machine whose `wait_until` first yields the thread, for
    /// tests that run a second "CPU" on another thread.
    pub fn yielding(cfg: NicConfig) -> Self {
        Self::with_wait(cfg, Wait::YieldFirst)
    }

    pub fn with_wait(cfg: NicConfig, wait: Wait) -> Self {
        let mem = guest_memory();
        // The VMM fills the payload pool with a seeded pattern at boot.
        let pattern: Vec<u8> = (0..layout::PAYLOAD_SIZE)
            .map(|i| (i.wrapping_mul(31) ^ (i >> 9)) as u8)
            .collect();
        mem.write_slice(&pattern, GuestAddress(layout::PAYLOAD_BASE))
            .expect("payload pool");
        let log = EventLog::new();
        let irqs = Arc::new(PendingIrqs::default());
        let nic = Nic::new(cfg, mem.clone(), irqs.clone(), log.clone()).expect("nic");
        Self {
            irqs,
            root: Mutex::new(PciRoot::new(nic)),
            mem,
            log,
            now: AtomicU64::new(0),
            markers: Mutex::new(Vec::new()),
            rx_ok: AtomicU64::new(0),
            rx_bad: AtomicU64::new(0),
            wait,
        }
    }

    pub fn root(&self) -> MutexGuard<'_, PciRoot> {
        self.root.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The guest's DMA window, reached through this process's mapping.
    pub fn dma_pool(&self) -> DmaPool {
        let ptr = self
            .mem
            .get_host_address(GuestAddress(layout::DMA_POOL_BASE))
            .expect("dma pool in RAM");
        // SAFETY: the window lies inside the one RAM region, which lives
        // as long as `self`; only the driver under test writes it.
        unsafe { DmaPool::new(layout::DMA_POOL_BASE, ptr, layout::DMA_POOL_SIZE) }
    }

    pub fn markers(&self) -> Vec<Rec> {
        self.markers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn count(&self, m: Marker) -> usize {
        self.markers().iter().filter(|r| r.marker == m).count()
    }

    /// The texts of the guest's oracle-fail markers, in order.
    pub fn fails(&self) -> Vec<String> {
        self.markers()
            .into_iter()
            .filter(|r| r.marker == Marker::OracleFail)
            .map(|r| r.text)
            .collect()
    }

    pub fn advance_to(&self, t: u64) {
        let t = self.now.fetch_max(t, Ordering::SeqCst).max(t);
        self.root().nic.advance(t);
    }

    /// A fresh machine with `nic`, after running scenario `s` on one CPU
    /// with `knobs` (the RunConfig a VM run would get); returns the machine
    /// and the guest's verdict.
    pub fn run_scenario(
        nic: NicConfig,
        s: Scenario,
        seed: u64,
        mutant: DriverMutant,
        knobs: [u64; NUM_KNOBS],
    ) -> (Self, Verdict) {
        let plat = Self::new(nic);
        let cfg = RunConfig {
            magic: control::CONTROL_MAGIC,
            version: PROTOCOL_VERSION,
            scenario: s as u32,
            driver_mutant: mutant as u32,
            seed,
            device_mutant: 0,
            ncpus: 1,
            tsc_khz: 1_000_000,
            knobs,
            clock: 0,
        };
        let v = run_with_pool(&plat, &cfg, plat.dma_pool()).expect("a NIC scenario");
        (plat, v)
    }

    /// Let a millisecond of device time pass (in 100 us steps), so
    /// anything a stopped device would still do shows.
    pub fn settle(&self) {
        let t = self.now.load(Ordering::SeqCst);
        for k in 1..=10 {
            self.advance_to(t + k * 100_000);
        }
    }

    pub fn violations(&self) -> Vec<String> {
        self.root()
            .nic
            .violations()
            .iter()
            .map(|v| format!("{v:?}"))
            .collect()
    }

    /// The monitor rule each violation names, in order (the typed field,
    /// not its Debug text).
    /// The host oracles' findings over this run's log, as a VM run is
    /// judged (`vmm::oracles::check_all`), one `rule: detail` line each.
    pub fn host_findings(&self, expect_no_busy: bool) -> Vec<String> {
        vmm::oracles::check_all(&self.log.snapshot(), expect_no_busy)
            .into_iter()
            .map(|f| format!("{}: {}", f.oracle, f.detail))
            .collect()
    }

    pub fn violation_rules(&self) -> Vec<&'static str> {
        self.root()
            .nic
            .violations()
            .iter()
            .map(|v| v.rule)
            .collect()
    }

    /// Device events (DMA, IRQ, doorbell) after the last stop-exit.
    pub fn activity_after_stop(&self) -> Vec<String> {
        let events = self.log.snapshot();
        let Some(stop) = events.iter().rposition(|e| matches!(&e.kind, EventKind::Marker { marker, .. } if marker == Marker::StopExit.name())) else {
            return vec!["no stop-exit marker".into()];
        };
        events[stop..]
            .iter()
            .filter(|e| match &e.kind {
                EventKind::Dma { .. } | EventKind::Irq { .. } => true,
                EventKind::MmioWrite { offset, .. } => {
                    *offset == u64::from(regs::TX_TAIL) || *offset == u64::from(regs::RX_TAIL)
                }
                _ => false,
            })
            .map(|e| format!("{} {:?}", e.seq, e.kind))
            .collect()
    }

    /// Whether the last reset finished before the last stop-exit.
    pub fn reset_done_before_stop_exit(&self) -> bool {
        let events = self.log.snapshot();
        let stop = events.iter().rposition(|e| matches!(&e.kind, EventKind::Marker { marker, .. } if marker == Marker::StopExit.name()));
        let done = events
            .iter()
            .rposition(|e| matches!(e.kind, EventKind::ResetDone));
        let start = events
            .iter()
            .rposition(|e| matches!(e.kind, EventKind::ResetStart));
        matches!((stop, done, start), (Some(s), Some(d), Some(st)) if d < s && st < d)
    }
}

impl Platform for HostPlat {
    fn pci_read32(&self, bdf: (u8, u8, u8), offset: u8) -> u32 {
        let mut root = self.root();
        root.pio_write(0, &cfg_addr(bdf, offset).to_le_bytes());
        let mut d = [0u8; 4];
        root.pio_read(4, &mut d);
        u32::from_le_bytes(d)
    }
    fn pci_write32(&self, bdf: (u8, u8, u8), offset: u8, value: u32) {
        let mut root = self.root();
        root.pio_write(0, &cfg_addr(bdf, offset).to_le_bytes());
        root.pio_write(4, &value.to_le_bytes());
    }
    fn mmio_read32(&self, addr: u64) -> u32 {
        let mut d = [0u8; 4];
        self.root().mmio_read(addr, &mut d);
        u32::from_le_bytes(d)
    }
    fn mmio_write32(&self, addr: u64, value: u32) {
        self.root().mmio_write(addr, &value.to_le_bytes());
    }
    fn now_ns(&self) -> u64 {
        // Every look at the clock costs a little virtual time, so a
        // polling loop always reaches its deadline.
        let t = self.now.fetch_add(100, Ordering::SeqCst) + 100;
        self.root().nic.advance(t);
        t
    }
    fn wait_until(&self, deadline_ns: u64) {
        if self.wait == Wait::YieldFirst {
            std::thread::yield_now();
        }
        // An interrupt requested while the CPU ran ends the wait at once
        // (sti; hlt).
        if self.irqs.accept() {
            return;
        }
        // Sleep until the device's next event (an interrupt) or the deadline.
        let now = self.now.load(Ordering::SeqCst);
        let next = self
            .root()
            .nic
            .next_deadline()
            .filter(|&d| d > now && d < deadline_ns);
        self.advance_to(next.unwrap_or(deadline_ns));
        self.irqs.accept();
    }
    fn marker(&self, marker: Marker, args: &[u64]) {
        self.marker_text(marker, args, "")
    }
    fn marker_text(&self, marker: Marker, args: &[u64], text: &str) {
        self.log.push(
            Source::Guest,
            EventKind::Marker {
                marker: marker.name().into(),
                args: args.to_vec(),
                text: text.into(),
                cpu: None,
            },
        );
        let mut full = vec![marker as u64];
        full.extend_from_slice(args);
        let mut root = self.root();
        root.nic.on_guest_marker(marker, &full);
        if marker == Marker::RxDeliver {
            // The host's byte-for-byte check of each delivery, done
            // during the "exit".
            let (addr, len, seq) = (args[0], args[1] as usize, args[2]);
            let mut got = vec![0u8; len];
            let same = self.mem.read_slice(&mut got, GuestAddress(addr)).is_ok()
                && root.nic.tx_frame(seq) == Some(&got[..]);
            if same { &self.rx_ok } else { &self.rx_bad }.fetch_add(1, Ordering::SeqCst);
        }
        drop(root);
        self.markers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Rec {
                marker,
                args: args.to_vec(),
                text: text.into(),
            });
    }
    fn cpu_id(&self) -> u32 {
        0
    }
    fn take_irq(&self, vector: u8) -> bool {
        self.irqs.take(vector)
    }
}

/// A PCI configuration address (port 0xcf8 format) for `bdf`/`offset`.
pub fn cfg_addr(bdf: (u8, u8, u8), offset: u8) -> u32 {
    1 << 31
        | u32::from(bdf.0) << 16
        | u32::from(bdf.1) << 11
        | u32::from(bdf.2) << 8
        | u32::from(offset & 0xfc)
}

/// Probe the driver on `$plat` (64-descriptor rings, seed 1, NAPI on CPU
/// 0) with `skbs` skb slots, BQL on or off, NAPI weight `weight`, driver
/// mutant `mutant` and the watchdog at `timeo` ns, then register its
/// netdev (whose ops is the owned `Adapter`: the single-CPU shape),
/// binding the skb pool, TX queue, NAPI context and netdev to the given
/// names. The caller opens it. A macro because the netdev borrows the
/// pool, queue and NAPI context, which must live in the caller's frame;
/// include this module with `#[macro_use]` to use it.
#[allow(unused_macros)]
macro_rules! registered_nic {
    ($plat:ident, $skbs:ident, $txq:ident, $napi:ident, $dev:ident,
     skbs: $pool:expr, bql: $bql:expr, weight: $weight:expr, mutant: $mutant:expr,
     timeo: $timeo:expr) => {
        let env = nicproof_guest::softnet::PlatformEnv(&$plat);
        let $skbs = nicproof_guest::driver::sync::SkbCell::new(
            nicproof_guest::softnet::skb::SkbPool::new($pool, &env),
        );
        let $txq = nicproof_guest::softnet::queue::TxQueue::new(
            0,
            $bql,
            nicproof_guest::softnet::SoftnetMutants::NONE,
            &env,
        );
        let $napi = nicproof_guest::softnet::napi::Napi::new($weight);
        let cfg = nicproof_guest::driver::DriverConfig {
            tx_ring: 64,
            rx_ring: 64,
            mutant: $mutant,
            seed: 1,
            irq_cpu: 0,
            bench: false,
        };
        let nic = nicproof_guest::driver::Adapter::probe(
            &$plat,
            $plat.dma_pool(),
            cfg,
            &$skbs,
            &$txq,
            &$napi,
        )
        .expect("probe");
        let mut $dev = nicproof_guest::softnet::netdev::NetDevice::new(nic, &$txq, $timeo);
        let (mac, how) = ($dev.ops.mac, $dev.ops.addr_assign);
        $dev.set_dev_addr(mac, how);
        $dev.register().unwrap();
    };
}
