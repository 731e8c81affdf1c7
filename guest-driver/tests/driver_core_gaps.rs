//! Tests for the survivors of cargo-mutants over guest-driver/src/driver's
//! core files (mod.rs, dma.rs, ring.rs, rx.rs: mutation/driver-core.md):
//! probe's bounded EEPROM and reset waits against a device whose EEPROM or
//! reset never finishes, the napi_disable wait in stop, RX batching and
//! budget, DMA ranges, and MSI-X teardown at unbind. Each test names the
//! mutants it kills.
//!
//! The driver runs here on [`Clock`], the host machine ([`HostPlat`]) seen
//! through a stricter platform: time moves by an odd step on every look
//! (a real clock does not tick in round 100 ns steps, so an `==` deadline
//! test never hits), a sleep lasts until its deadline unless an interrupt
//! arrives (the host machine would also end it at the device's next
//! internal event, which wakes no real CPU), and virtual time past the
//! test's bound panics (an unbounded wait fails the test instead of
//! hanging it).

#[path = "common/hostplat.rs"]
mod hostplat;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use hostplat::HostPlat;
use nic_model::abi::{knob, layout, pci as ids, regs, DriverMutant, Marker, RunConfig, NUM_KNOBS};
use nic_model::config::DEFAULT_MAC;
use nic_model::{InvalidMac, NicConfig};
use nicproof_guest::driver::dma::{DmaDir, DmaMapper, MapError};
use nicproof_guest::driver::sync::SkbCell;
use nicproof_guest::driver::{Adapter, DriverConfig, ProbeError, DEFAULT_TX_RING};
use nicproof_guest::platform::Platform;
use nicproof_guest::softnet::napi::Napi;
use nicproof_guest::softnet::netdev::{AddrAssignType, NetDeviceOps, NetdevTx};
use nicproof_guest::softnet::queue::TxQueue;
use nicproof_guest::softnet::skb::{Frag, SkbPool};
use nicproof_guest::softnet::{PlatformEnv, SoftnetMutants};

/// Extra virtual time every clock read costs on top of HostPlat's 100 ns.
const CLOCK_JITTER_NS: u64 = 37;

/// The host machine through a stricter platform (see the module doc).
struct Clock<'p> {
    p: &'p HostPlat,
    /// Virtual time past which a clock read panics.
    limit_ns: AtomicU64,
    /// Sleeps (`wait_until` calls) so far.
    waits: AtomicU64,
    /// (BAR0 offset, value) of every register write.
    writes: Mutex<Vec<(u32, u32)>>,
    /// STATUS reads so far.
    status_reads: AtomicU64,
}

impl<'p> Clock<'p> {
    fn new(p: &'p HostPlat) -> Self {
        Self {
            p,
            limit_ns: AtomicU64::new(u64::MAX),
            waits: AtomicU64::new(0),
            writes: Mutex::new(Vec::new()),
            status_reads: AtomicU64::new(0),
        }
    }

    fn now(&self) -> u64 {
        self.p.now.load(Ordering::SeqCst)
    }

    /// Panic once virtual time passes `now + ns`.
    fn bound(&self, ns: u64) {
        self.limit_ns.store(self.now() + ns, Ordering::SeqCst);
    }

    /// Values written to register `off` so far.
    fn written(&self, off: u32) -> Vec<u32> {
        self.writes
            .lock()
            .unwrap()
            .iter()
            .filter(|w| w.0 == off)
            .map(|w| w.1)
            .collect()
    }
}

fn bar_off(addr: u64) -> u32 {
    (addr - layout::NIC_BAR0_DEFAULT) as u32
}

impl Platform for Clock<'_> {
    fn pci_read32(&self, bdf: (u8, u8, u8), offset: u8) -> u32 {
        self.p.pci_read32(bdf, offset)
    }
    fn pci_write32(&self, bdf: (u8, u8, u8), offset: u8, value: u32) {
        self.p.pci_write32(bdf, offset, value)
    }
    fn mmio_read32(&self, addr: u64) -> u32 {
        if bar_off(addr) == regs::STATUS {
            self.status_reads.fetch_add(1, Ordering::SeqCst);
        }
        self.p.mmio_read32(addr)
    }
    fn mmio_write32(&self, addr: u64, value: u32) {
        self.writes.lock().unwrap().push((bar_off(addr), value));
        self.p.mmio_write32(addr, value)
    }
    fn now_ns(&self) -> u64 {
        let t = self.p.now_ns() + CLOCK_JITTER_NS;
        self.p.advance_to(t);
        let limit = self.limit_ns.load(Ordering::SeqCst);
        assert!(
            t <= limit,
            "virtual time {t} ns passed the test's bound {limit} ns: an unbounded wait"
        );
        t
    }
    fn wait_until(&self, deadline_ns: u64) {
        self.waits.fetch_add(1, Ordering::SeqCst);
        // An interrupt already requested ends the wait at once.
        if self.p.irqs.accept() {
            return;
        }
        let before = self.p.irqs.delivered.load(Ordering::SeqCst);
        while self.now() < deadline_ns && self.p.irqs.delivered.load(Ordering::SeqCst) == before {
            self.p.wait_until(deadline_ns);
        }
    }
    fn marker(&self, marker: Marker, args: &[u64]) {
        self.p.marker(marker, args)
    }
    fn marker_text(&self, marker: Marker, args: &[u64], text: &str) {
        self.p.marker_text(marker, args, text)
    }
    fn cpu_id(&self) -> u32 {
        self.p.cpu_id()
    }
    fn take_irq(&self, vector: u8) -> bool {
        self.p.take_irq(vector)
    }
}

fn cfg(tx_ring: u32, rx_ring: u32) -> DriverConfig {
    DriverConfig {
        tx_ring,
        rx_ring,
        mutant: DriverMutant::None,
        seed: 1,
        irq_cpu: 0,
        bench: false,
    }
}

/// Probe on a fresh machine with `dev`, through [`Clock`]; `f` gets the
/// probe's result (an Err leaves nothing to drive).
fn with_probe<R>(
    dev: NicConfig,
    dcfg: DriverConfig,
    f: impl FnOnce(&Clock<'_>, Result<Adapter<'_, '_>, ProbeError>, &TxQueue<'_>, &Napi) -> R,
) -> R {
    let plat = HostPlat::new(dev);
    let clock = Clock::new(&plat);
    let env = PlatformEnv(&clock);
    let skbs = SkbCell::new(SkbPool::new(256, &env));
    let txq = TxQueue::new(0, true, SoftnetMutants::NONE, &env);
    let napi = Napi::new(64);
    let r = Adapter::probe(&clock, plat.dma_pool(), dcfg, &skbs, &txq, &napi);
    f(&clock, r, &txq, &napi)
}

/// One probed and opened driver, with the skb pool to send from.
struct Up<'c, 'p, 'a, 'e> {
    clock: &'c Clock<'p>,
    nic: Adapter<'a, 'e>,
    skbs: &'a SkbCell<'e>,
    txq: &'a TxQueue<'e>,
    napi: &'a Napi,
    sent: u64,
}

impl Up<'_, '_, '_, '_> {
    /// Send `n` one-fragment frames of distinct contents (a doorbell
    /// each), running the interrupts and NAPI for 300 us after every 16th
    /// (so rings of any size keep up).
    fn send(&mut self, n: u64) {
        for _ in 0..n {
            // Offsets and lengths vary, so every frame's bytes differ.
            let k = self.sent;
            let frag = Frag {
                addr: layout::PAYLOAD_BASE + (k * 61) % 4096,
                len: 60 + (k % 7) as u32,
            };
            let id = self.skbs.borrow_mut().alloc(&[], &[frag]).unwrap();
            assert_eq!(self.nic.start_xmit(id, false), NetdevTx::Ok);
            self.sent += 1;
            if self.sent.is_multiple_of(16) {
                self.pump(300);
            }
        }
    }

    /// Send one-fragment frames, with nothing reclaimed, until the
    /// driver stops its queue (ring low). Returns how many.
    fn fill(&mut self) -> u64 {
        let mut n = 0;
        while !self.txq.stopped() {
            let frag = Frag {
                addr: layout::PAYLOAD_BASE + n * 64,
                len: 60,
            };
            let id = self.skbs.borrow_mut().alloc(&[], &[frag]).unwrap();
            assert_eq!(self.nic.start_xmit(id, false), NetdevTx::Ok);
            n += 1;
        }
        self.sent += n;
        n
    }

    /// Take interrupts and run NAPI for `us` microseconds.
    fn pump(&self, us: u64) {
        let end = self.clock.now() + us * 1000;
        while self.clock.now() < end {
            self.nic.wait_until(end);
            self.nic.run_irq_work();
        }
    }
}

/// Probe and open a driver with `dcfg` on a fresh machine with `dev`.
fn with_up<R>(
    dev: NicConfig,
    dcfg: DriverConfig,
    f: impl FnOnce(&mut Up<'_, '_, '_, '_>, &HostPlat) -> R,
) -> R {
    let plat = HostPlat::new(dev);
    let clock = Clock::new(&plat);
    let env = PlatformEnv(&clock);
    let skbs = SkbCell::new(SkbPool::new(1024, &env));
    let txq = TxQueue::new(0, false, SoftnetMutants::NONE, &env);
    let napi = Napi::new(64);
    let nic = Adapter::probe(&clock, plat.dma_pool(), dcfg, &skbs, &txq, &napi).expect("probe");
    let mut up = Up {
        clock: &clock,
        nic,
        skbs: &skbs,
        txq: &txq,
        napi: &napi,
        sent: 0,
    };
    up.nic.open().expect("open");
    let r = f(&mut up, &plat);
    drop(up);
    r
}

fn napi_disable_marks(plat: &HostPlat) -> Vec<u64> {
    plat.markers()
        .into_iter()
        .filter(|r| r.marker == Marker::NapiDisable)
        .map(|r| r.args[0])
        .collect()
}

// ------------------------------------------------------------ probe

/// Kills mod.rs `read_mac -> Ok([1; 6])` and `w << EEPROM_ADDR_SHIFT` ->
/// `w >> ...` (every word read from address 0): the EEPROM's address is
/// the probe's, word by word.
#[test]
fn probe_takes_the_permanent_address_from_the_eeprom() {
    with_probe(NicConfig::default(), cfg(64, 64), |_, r, _, _| {
        let nic = r.expect("probe");
        assert_eq!(nic.mac, DEFAULT_MAC);
        assert_eq!(nic.addr_assign, AddrAssignType::Perm);
    });
}

/// An EEPROM that takes 50 us per word is waited for: the address is
/// the EEPROM's. Kills mod.rs `v & EEPROM_DONE` -> `v | EEPROM_DONE`
/// (takes the word before it is there) and the deadline's `>` -> `<`
/// (gives up at the first busy poll).
#[test]
fn probe_waits_for_a_slow_eeprom() {
    let dev = NicConfig {
        eeprom_delay_us: 50,
        ..NicConfig::default()
    };
    with_probe(dev, cfg(64, 64), |_, r, _, _| {
        let nic = r.expect("probe");
        assert_eq!(
            (nic.mac, nic.addr_assign),
            (DEFAULT_MAC, AddrAssignType::Perm)
        );
    });
}

/// An EEPROM read that never completes fails probe with EepromTimeout
/// after about the 10 ms bound (never unbounded). Kills mod.rs
/// `now_ns() + EEPROM_TIMEOUT_NS` -> `*` (a deadline ~10^7 times later)
/// and `now > deadline` -> `now == deadline` (a clock that steps past the
/// exact value never meets it).
#[test]
fn dead_eeprom_fails_probe_with_eeprom_timeout_in_bounded_time() {
    let dev = NicConfig {
        eeprom_delay_us: u64::MAX,
        ..NicConfig::default()
    };
    let plat = HostPlat::new(dev);
    let clock = Clock::new(&plat);
    clock.bound(50_000_000);
    let env = PlatformEnv(&clock);
    let skbs = SkbCell::new(SkbPool::new(8, &env));
    let txq = TxQueue::new(0, true, SoftnetMutants::NONE, &env);
    let napi = Napi::new(64);
    let r = Adapter::probe(&clock, plat.dma_pool(), cfg(64, 64), &skbs, &txq, &napi);
    assert_eq!(r.err(), Some(ProbeError::EepromTimeout));
    let probe_exit = plat
        .markers()
        .into_iter()
        .find(|r| r.marker == Marker::ProbeExit)
        .expect("probe-exit");
    assert_ne!(probe_exit.args[0], 0, "probe-exit reports the failure");
}

/// A reset that never finishes fails probe with ResetTimeout, bounded
/// (100 ms). Kills mod.rs `now - start > RESET_TIMEOUT_NS` -> `now /
/// start` and -> `==` (the first waits ~forever, the second never meets
/// the exact value).
#[test]
fn wedged_reset_fails_probe_with_reset_timeout_in_bounded_time() {
    let plat = HostPlat::new(NicConfig {
        hang_nth_reset: Some(1),
        ..NicConfig::default()
    });
    let clock = Clock::new(&plat);
    clock.bound(150_000_000);
    let env = PlatformEnv(&clock);
    let skbs = SkbCell::new(SkbPool::new(8, &env));
    let txq = TxQueue::new(0, true, SoftnetMutants::NONE, &env);
    let napi = Napi::new(64);
    let r = Adapter::probe(&clock, plat.dma_pool(), cfg(64, 64), &skbs, &txq, &napi);
    assert_eq!(r.err(), Some(ProbeError::ResetTimeout));
    assert!(clock.now() >= 100_000_000, "gave up before the bound");
}

/// Random addresses (an invalid EEPROM address) depend on the whole
/// seed: seeds 0-7 give 8 different ones. Kills mod.rs `cfg.seed ^
/// 0x6d61_6321` -> `|` (seeds 0 and 1 agree) and -> `&` (0 and 2 agree).
#[test]
fn random_addresses_differ_for_every_seed() {
    let mut seen = Vec::new();
    for seed in 0..8 {
        let dev = NicConfig {
            invalid_mac: Some(InvalidMac::Zero),
            ..NicConfig::default()
        };
        let mac = with_probe(
            dev,
            DriverConfig {
                seed,
                ..cfg(64, 64)
            },
            |_, r, _, _| {
                let nic = r.expect("probe");
                assert_eq!(nic.addr_assign, AddrAssignType::Random);
                nic.mac
            },
        );
        assert!(!seen.contains(&mac), "seed {seed} repeats {mac:x?}");
        seen.push(mac);
    }
}

/// Only power-of-two TX rings of 64..=MAX_RING are taken from the run
/// configuration. Kills mod.rs `is_power_of_two() && in range` -> `||`.
#[test]
fn run_config_takes_only_valid_tx_ring_sizes() {
    for (asked, got) in [
        (0, DEFAULT_TX_RING),
        (100, DEFAULT_TX_RING),
        (32, DEFAULT_TX_RING),
        (8192, DEFAULT_TX_RING),
        (128, 128),
        (4096, 4096),
    ] {
        let mut knobs = [0u64; NUM_KNOBS];
        knobs[knob::TX_RING] = asked;
        let rc = RunConfig {
            magic: nic_model::abi::control::CONTROL_MAGIC,
            version: nic_model::abi::PROTOCOL_VERSION,
            scenario: 0,
            driver_mutant: 0,
            seed: 1,
            device_mutant: 0,
            ncpus: 1,
            tsc_khz: 1_000_000,
            knobs,
            clock: 0,
        };
        assert_eq!(DriverConfig::from_run(&rc).tx_ring, got, "asked {asked}");
    }
}

// ------------------------------------------------------------- reset

/// A reset that never finishes at stop: stop gives up after the bound,
/// counts it, and returns. Kills mod.rs `now - start > RESET_TIMEOUT_NS`
/// -> `==` and -> `now / start` in reset_and_wait (stop would wait
/// forever).
#[test]
fn wedged_reset_at_stop_is_counted_and_bounded() {
    let dev = NicConfig {
        hang_nth_reset: Some(2),
        ..NicConfig::default()
    };
    with_up(dev, cfg(64, 64), |up, plat| {
        up.send(4);
        up.pump(1000);
        up.clock.bound(150_000_000);
        let t0 = up.clock.now();
        up.nic.stop();
        assert!(up.clock.now() - t0 >= 100_000_000, "gave up early");
        assert_eq!(up.nic.stats().reset_timeouts, 1);
        assert!(!up.nic.is_open());
        assert_eq!(up.nic.dma_pages_used(), 0, "stop freed the rings anyway");
        assert_eq!(plat.rx_bad.load(Ordering::SeqCst), 0);
    });
}

/// A 2 ms reset at stop, late in the run: waited for (no timeout),
/// with backing-off sleeps, so it costs few STATUS reads and ends soon
/// after the device is done. Kills mod.rs reset_and_wait's `now - start`
/// -> `now + start` (a spurious timeout once the clock passed 50 ms),
/// `wait_until(now + pause)` -> `now * pause` (sleeps for seconds),
/// `pause * 2` -> `pause + 2` and -> `pause / 2` (hundreds of polls).
#[test]
fn slow_reset_at_stop_is_waited_for_with_backoff() {
    let dev = NicConfig {
        reset_delay_us: 2_000,
        ..NicConfig::default()
    };
    with_up(dev, cfg(64, 64), |up, plat| {
        up.send(4);
        up.pump(200_000);
        let (t0, reads0) = (up.clock.now(), up.clock.status_reads.load(Ordering::SeqCst));
        up.nic.stop();
        let (took, reads) = (
            up.clock.now() - t0,
            up.clock.status_reads.load(Ordering::SeqCst) - reads0,
        );
        assert_eq!(up.nic.stats().reset_timeouts, 0);
        assert_eq!(plat.violations(), Vec::<String>::new());
        assert!(
            (2_000_000..6_000_000).contains(&took),
            "stop took {took} ns for a 2 ms reset"
        );
        assert!(reads <= 16, "{reads} STATUS reads for a 2 ms reset");
    });
}

// ------------------------------------------------------ napi_disable

/// Stop right after an interrupt scheduled a poll that has not run yet
/// (the poll is ours: NAPI runs on this CPU): stop runs it down and
/// disables NAPI before it touches the device. Kills mod.rs `down`'s
/// `now_ns() < deadline` -> `==` and -> `>` (stop goes on with NAPI still
/// scheduled), and `wait_until`'s `cpu_id() == irq_cpu` -> `!=` (the
/// interrupt is not taken on the CPU it targets).
#[test]
fn stop_with_a_poll_pending_disables_napi() {
    with_up(NicConfig::default(), cfg(64, 64), |up, plat| {
        up.send(1);
        let end = up.clock.now() + 1_000_000;
        while !up.napi.is_scheduled() && up.clock.now() < end {
            up.nic.wait_until(end);
        }
        assert!(up.napi.is_scheduled(), "the interrupt scheduled a poll");
        up.nic.stop();
        assert_eq!(napi_disable_marks(plat), vec![0, 1], "open, then stop");
        assert_eq!(plat.host_findings(true), Vec::<String>::new());
    });
}

/// On another CPU, the interrupt is not this CPU's to handle.
#[test]
fn an_interrupt_for_another_cpu_is_not_handled_here() {
    let dcfg = DriverConfig {
        irq_cpu: 1,
        ..cfg(64, 64)
    };
    with_up(NicConfig::default(), dcfg, |up, _| {
        up.send(1);
        up.nic.wait_until(up.clock.now() + 1_000_000);
        assert!(!up.napi.is_scheduled());
    });
}

/// A poll that never finishes on another CPU: stop's napi_disable
/// gives up after its bound (100 ms), sleeping 10 us between tries, and
/// says so in its marker. Kills mod.rs `down`'s deadline `now + bound` ->
/// `now * bound`, and `wait_until(now_ns() + 10_000)` -> `-` (spins) and
/// -> `*` (sleeps for seconds).
#[test]
fn stop_gives_up_on_a_poll_that_never_ends_in_bounded_time() {
    with_up(NicConfig::default(), cfg(64, 64), |up, plat| {
        assert!(up.napi.schedule(), "a poll now runs elsewhere, for good");
        up.clock.bound(150_000_000);
        let (t0, w0) = (up.clock.now(), up.clock.waits.load(Ordering::SeqCst));
        up.nic.ndo_stop(false);
        let waits = up.clock.waits.load(Ordering::SeqCst) - w0;
        let took = up.clock.now() - t0;
        assert!(took >= 100_000_000, "gave up after {took} ns");
        assert!(
            (9_000..=10_100).contains(&waits),
            "{waits} sleeps in 100 ms of 10 us tries"
        );
        assert_eq!(napi_disable_marks(plat), vec![0, 0], "not disabled");
        assert!(!up.nic.is_open());
    });
}

// ---------------------------------------------------------- RX, rings

/// RX buffers go back to the device RX_TAIL_BATCH (32) at a time: the
/// tail written at open, then again only once 32 were refilled. Kills
/// mod.rs's initial `rx_tail = rs - 1` -> `rs + 1` (writes after the
/// first frame) and -> `rs / 1` (one frame late).
#[test]
fn rx_tail_is_written_back_in_batches_of_32() {
    with_up(NicConfig::default(), cfg(64, 256), |up, plat| {
        up.send(31);
        up.pump(2_000);
        assert_eq!(up.nic.stats().rx_packets, 31);
        assert_eq!(up.clock.written(regs::RX_TAIL), vec![255], "open's only");
        up.send(1);
        up.pump(2_000);
        assert_eq!(up.clock.written(regs::RX_TAIL), vec![255, 255 + 32]);
        assert_eq!(plat.rx_bad.load(Ordering::SeqCst), 0);
    });
}

/// clean_rx_irq delivers at most its budget. Kills rx.rs `done < budget`
/// -> `<=`.
#[test]
fn clean_rx_stops_at_its_budget() {
    with_up(NicConfig::default(), cfg(64, 64), |up, _| {
        up.send(8);
        // Let the device deliver without running NAPI.
        let end = up.clock.now() + 2_000_000;
        while up.clock.now() < end {
            up.clock.wait_until(end);
        }
        assert_eq!(up.nic.clean_rx_irq(4), 4);
        assert_eq!(up.nic.clean_rx_irq(3), 3);
        assert_eq!(up.nic.clean_rx_irq(64), 1);
    });
}

/// open takes whole rings' worth of DMA memory for any ring size, and
/// stop gives it all back. Kills mod.rs `dma_pages_used -> 0` and
/// `ring * size_of::<TxDesc>()` -> `+` / `/` for the TX and RX rings
/// (a 1024-entry TX ring or 512-entry RX ring in one page).
#[test]
fn open_allocates_whole_rings_and_stop_frees_them() {
    for (ts, rs) in [(64u32, 64u32), (1024, 256), (256, 512)] {
        with_up(NicConfig::default(), cfg(ts, rs), |up, plat| {
            let pages = |n: u32| (u64::from(n) * 16).div_ceil(4096) as usize;
            let bufs = (rs as usize * 2048).div_ceil(4096);
            assert_eq!(
                up.nic.dma_pages_used(),
                pages(ts) + pages(rs) + bufs,
                "tx {ts}, rx {rs}"
            );
            // Both rings wrap at least once.
            up.send(u64::from(ts.max(rs)) + 40);
            up.pump(5_000);
            assert_eq!(plat.violations(), Vec::<String>::new());
            assert_eq!(plat.rx_bad.load(Ordering::SeqCst), 0);
            assert_eq!(plat.rx_ok.load(Ordering::SeqCst), up.sent);
            up.nic.stop();
            assert_eq!(up.nic.dma_pages_used(), 0);
        });
    }
}

/// Open, traffic, stop, twice: every frame of the second period is
/// matched to the right transmitted frame (the count resumes from the
/// device's frame count at the first stop), and the host's interrupt
/// oracles see open re-enable NAPI. Kills mod.rs
/// `wire_base.fetch_add(sent) + sent` -> `*` and `if !self.cfg.bench` ->
/// `if self.cfg.bench` in `up` (no napi-disable 0 marker at open: the
/// second open's INT_ENABLE write looks like an interrupt handled after
/// napi_disable).
#[test]
fn reopen_resumes_rx_numbering_and_reenables_napi() {
    with_up(NicConfig::default(), cfg(64, 64), |up, plat| {
        up.send(5);
        up.pump(2_000);
        up.nic.stop();
        up.nic.open().expect("reopen");
        up.send(7);
        up.pump(2_000);
        up.nic.stop();
        assert_eq!(plat.rx_ok.load(Ordering::SeqCst), 12);
        assert_eq!(plat.rx_bad.load(Ordering::SeqCst), 0);
        assert_eq!(napi_disable_marks(plat), vec![0, 1, 0, 1]);
        assert_eq!(plat.host_findings(true), Vec::<String>::new());
    });
}

// --------------------------------------------------------------- DMA

/// Kills dma.rs map's `len == 0 || beyond RAM` -> `&&` and `end >
/// RAM_SIZE` -> `==` / `>=`: empty and out-of-RAM ranges are refused, a
/// range ending exactly at the end of RAM is not.
#[test]
fn map_refuses_empty_and_out_of_ram_ranges_only() {
    let plat = HostPlat::new(NicConfig::default());
    let d = DmaMapper::new();
    let ram = layout::RAM_SIZE;
    let bad = Err(MapError::BadRange);
    assert_eq!(d.map(&plat, 0x10_0000, 0, DmaDir::ToDevice), bad);
    assert_eq!(d.map(&plat, ram - 4, 8, DmaDir::ToDevice), bad);
    assert_eq!(d.map(&plat, ram, 8, DmaDir::ToDevice), bad);
    assert_eq!(d.map(&plat, u64::MAX, 2, DmaDir::ToDevice), bad);
    assert_eq!(
        d.map(&plat, ram - 4096, 4096, DmaDir::ToDevice),
        Ok(ram - 4096)
    );
    assert_eq!(d.live(), 1);
}

/// Kills dma.rs `set_premapped -> ()`: maps inside the premapped range
/// are free (no marker, no live mapping), and `None` unmaps the range.
#[test]
fn premapped_range_makes_maps_inside_it_free() {
    let plat = HostPlat::new(NicConfig::default());
    let d = DmaMapper::new();
    let (base, size) = (layout::PAYLOAD_BASE, layout::PAYLOAD_SIZE);
    d.set_premapped(&plat, Some((base, size)));
    assert_eq!((plat.count(Marker::DmaMap), d.live()), (1, 1));
    assert_eq!(
        d.map(&plat, base + 100, 60, DmaDir::ToDevice),
        Ok(base + 100)
    );
    d.unmap(&plat, base + 100, 60);
    assert_eq!((plat.count(Marker::DmaMap), d.live()), (1, 1), "free");
    d.set_premapped(&plat, None);
    assert_eq!((plat.count(Marker::DmaUnmap), d.live()), (1, 0));
}

// ------------------------------------------------------------ unbind

/// When the driver lets the device go (after unregister), every MSI-X
/// vector is masked and MSI-X is off (pci_free_irq_vectors in igc's
/// remove); while bound, they are on and unmasked.
#[test]
fn unbind_masks_every_vector_and_turns_msix_off() {
    let plat = HostPlat::new(NicConfig::default());
    let pci;
    {
        let env = PlatformEnv(&plat);
        let skbs = SkbCell::new(SkbPool::new(8, &env));
        let txq = TxQueue::new(0, true, SoftnetMutants::NONE, &env);
        let napi = Napi::new(64);
        let nic =
            Adapter::probe(&plat, plat.dma_pool(), cfg(64, 64), &skbs, &txq, &napi).expect("probe");
        pci = nic.pci;
        let mut dev = nicproof_guest::softnet::netdev::NetDevice::new(nic, &txq, 5_000_000_000);
        let (mac, how) = (dev.ops.mac, dev.ops.addr_assign);
        dev.set_dev_addr(mac, how);
        dev.register().unwrap();
        dev.open().unwrap();
        assert_ne!(plat.pci_read32(pci.bdf, pci.msix_cap) & 1 << 31, 0, "on");
        dev.unregister();
    }
    let ctrl = plat.pci_read32(pci.bdf, pci.msix_cap) >> 16;
    assert_eq!(ctrl & 1 << 15, 0, "MSI-X enable off after unbind");
    for i in 0..u32::from(ids::MSIX_VECTORS) {
        let e = u64::from(ids::MSIX_TABLE_OFFSET + i * 16 + 12);
        assert_eq!(
            plat.mmio_read32(pci.bar0 + e) & 1,
            1,
            "vector {i} masked after unbind"
        );
    }
}

// ------------------------------------------------- watchdog, stop abort

/// A device that stalled after 4 completions, with the queue stopped on
/// a low ring: the watchdog's ndo_tx_timeout reclaims the 4 (a lost
/// interrupt, recovered as mlx5e does), so it neither resets the device
/// nor wakes the queue (the ring is still below the start threshold).
/// Kills mod.rs ndo_tx_timeout's `reclaimed == 0 && is_open()` -> `||`
/// (resets anyway), and `tx_free() >= TX_START_THRESH && stopped()` ->
/// `||` and `>=` -> `<` (wake below the threshold).
#[test]
fn tx_timeout_with_some_progress_neither_resets_nor_wakes_early() {
    let dev = NicConfig {
        stall_completions_after: Some(4),
        ..NicConfig::default()
    };
    with_up(dev, cfg(64, 64), |up, plat| {
        let n = up.fill();
        let resets = |p: &HostPlat| {
            p.log
                .snapshot()
                .iter()
                .filter(|e| e.kind == nic_model::events::EventKind::ResetStart)
                .count()
        };
        let before = resets(plat);
        up.nic.ndo_tx_timeout(true);
        assert_eq!(up.nic.stats().tx_completed, 4);
        assert!(up.nic.tx_free() < nic_model::abi::TX_START_THRESH);
        assert_eq!(resets(plat), before, "no reset: something completed");
        assert_eq!(up.nic.stats().tx_aborted, 0);
        assert!(up.txq.stopped(), "not woken below the start threshold");
        up.nic.stop();
        assert_eq!(up.nic.stats().tx_aborted, n - 4);
        assert_eq!(up.nic.dma.live(), 0);
        assert_eq!(up.skbs.borrow().live(), 0);
    });
}

/// The `no-unmap-at-stop` switch leaks every mapping stop would undo:
/// the three rings and each in-flight packet's buffer. Kills mod.rs
/// down's `unmap && !premapped` -> `||` (the switch would still unmap
/// the in-flight buffers).
#[test]
fn no_unmap_at_stop_leaks_rings_and_in_flight_buffers() {
    let dev = NicConfig {
        stall_completions_after: Some(4),
        ..NicConfig::default()
    };
    let dcfg = DriverConfig {
        mutant: DriverMutant::NoUnmapAtStop,
        ..cfg(64, 64)
    };
    with_up(dev, dcfg, |up, _| {
        let n = up.fill();
        up.nic.stop();
        assert_eq!(up.nic.stats().tx_aborted, n);
        assert_eq!(up.nic.dma.live(), 3 + n);
    });
}
