//! Plugs nic-model's PCI root (host bridge + NIC) into a [`Vm`]: config
//! mechanism #1 on 0xcf8..0xcff, BAR0 in the MMIO window, MSI-X through
//! `KVM_SIGNAL_MSI`, guest markers into the DMA monitor, a host check of
//! every delivered frame's bytes, and a clock thread for the device's
//! timers (reset delay, coalescing, fault knobs).
//!
//! Device time is in ns: every MMIO or PIO access first moves the device
//! to "now". With the wall clock, now is wall time since the run started
//! and the clock thread sleeps until the device's next deadline. In
//! deterministic mode (`sim`), now is the VMM's virtual time and the
//! scheduler runs the device's timers (there is no clock thread); its
//! interrupts tell the scheduler which vCPU they woke. A device access
//! never blocks on anything but the device lock.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nic_model::abi::{layout, pci, Marker};
use nic_model::config::NicConfig;
use nic_model::device::Nic;
use nic_model::events::{EventKind, EventLog, Source};
use nic_model::msix::MsiSink;
use nic_model::pci::PciRoot;
use nic_model::rules::Rule;
use vm_device::bus::{MmioAddress, MmioRange, PioAddress, PioRange};
use vm_device::device_manager::{MmioManager, PioManager};
use vm_device::{MutDeviceMmio, MutDevicePio};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::irq::KvmMsi;
use crate::sim::{DeviceClock, Sim, SimMsi};
use crate::vm::{Vm, VmError};

/// Longest the clock thread sleeps between checks of the stop flag.
const CLOCK_MAX_SLEEP: Duration = Duration::from_millis(2);

/// The PCI root shared by the vCPU threads, the marker hook and the clock.
#[derive(Clone)]
pub struct NicHandle {
    root: Arc<Mutex<PciRoot>>,
    clock: DeviceTime,
}

/// Where the device's "now" comes from.
#[derive(Clone)]
enum DeviceTime {
    Wall(Instant),
    Virtual(Arc<Sim>),
}

impl NicHandle {
    fn lock(&self) -> MutexGuard<'_, PciRoot> {
        // A poisoned lock means a device panic on another thread; the vCPU
        // loop turns that panic into a host error, so keep serving.
        self.root.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn now_ns(&self) -> u64 {
        match &self.clock {
            DeviceTime::Wall(start) => start.elapsed().as_nanos() as u64,
            DeviceTime::Virtual(sim) => sim.now(),
        }
    }

    /// Lock the root with the device's clock moved to now.
    fn at_now(&self) -> MutexGuard<'_, PciRoot> {
        let now = self.now_ns();
        let mut root = self.lock();
        root.nic.advance(now);
        root
    }

    /// Number of DMA ranges the driver still has mapped.
    pub fn live_maps(&self) -> usize {
        self.lock().nic.live_maps()
    }

    /// The first frame a pcap file could not take, naming the file.
    pub fn output_error(&self) -> Option<String> {
        self.lock().nic.output_error().map(str::to_string)
    }
}

struct PciPorts(NicHandle);

impl MutDevicePio for PciPorts {
    fn pio_read(&mut self, _base: PioAddress, offset: u16, data: &mut [u8]) {
        self.0.at_now().pio_read(offset, data);
    }
    fn pio_write(&mut self, _base: PioAddress, offset: u16, data: &[u8]) {
        self.0.at_now().pio_write(offset, data);
    }
}

struct MmioWindow(NicHandle);

impl MutDeviceMmio for MmioWindow {
    fn mmio_read(&mut self, base: MmioAddress, offset: u64, data: &mut [u8]) {
        // Unclaimed addresses read all ones (PciRoot fills them).
        self.0.at_now().mmio_read(base.0 + offset, data);
    }
    fn mmio_write(&mut self, base: MmioAddress, offset: u64, data: &[u8]) {
        self.0.at_now().mmio_write(base.0 + offset, data);
    }
}

/// Check a delivered frame against the one the device transmitted, on
/// the host (the guest never touches payload bytes). A mismatch, a bad
/// address or an unknown sequence number is a violation in the log.
fn check_delivery(mem: &GuestMemoryMmap, root: &PciRoot, log: &EventLog, args: &[u64]) {
    let (addr, len, seq) = (
        args.get(1).copied().unwrap_or(0),
        args.get(2).copied().unwrap_or(0),
        args.get(3).copied().unwrap_or(0),
    );
    let fail = |detail: String| {
        log.push(
            Source::Vmm,
            EventKind::Violation {
                rule: Rule::RxContent.name().into(),
                detail,
            },
        );
    };
    let Some(sent) = root.nic.tx_frame(seq) else {
        return fail(format!(
            "delivered frame claims TX seq {seq}, which the device never sent"
        ));
    };
    if len != sent.len() as u64 {
        return fail(format!(
            "frame {seq}: delivered {len} bytes, sent {}",
            sent.len()
        ));
    }
    let mut got = vec![0u8; sent.len()];
    if mem.read_slice(&mut got, GuestAddress(addr)).is_err() {
        return fail(format!(
            "frame {seq}: buffer {addr:#x}+{len} is outside guest RAM"
        ));
    }
    if let Some(i) = got.iter().zip(sent).position(|(a, b)| a != b) {
        fail(format!(
            "frame {seq}: byte {i} at {:#x} is {:#04x}, sent {:#04x}",
            addr + i as u64,
            got[i],
            sent[i]
        ));
    }
}

impl DeviceClock for NicHandle {
    fn next_deadline(&self) -> Option<u64> {
        self.lock().nic.next_deadline()
    }
    fn advance(&self, now_ns: u64) {
        self.lock().nic.advance(now_ns);
    }
}

/// Build the NIC and plug it into `vm`. Returns the handle and, with the
/// wall clock, the clock thread (which ends when the VM's stop flag is
/// set).
pub fn attach(vm: &mut Vm, cfg: NicConfig) -> Result<(NicHandle, Option<JoinHandle<()>>), VmError> {
    let kvm_msi: Arc<dyn MsiSink> = Arc::new(KvmMsi(vm.vm_fd.clone()));
    let (msi, clock) = match &vm.sim {
        None => (kvm_msi, DeviceTime::Wall(Instant::now())),
        Some(sim) => (
            Arc::new(SimMsi {
                inner: kvm_msi,
                sim: sim.clone(),
            }) as Arc<dyn MsiSink>,
            DeviceTime::Virtual(sim.clone()),
        ),
    };
    let nic = Nic::new(cfg, vm.mem.clone(), msi, vm.events.clone())
        .map_err(|e| VmError::Device(e.to_string()))?;
    let handle = NicHandle {
        root: Arc::new(Mutex::new(PciRoot::new(nic))),
        clock,
    };

    vm.io.register_pio(
        PioRange::new(PioAddress(pci::CONFIG_ADDRESS_PORT), 8)?,
        Arc::new(Mutex::new(PciPorts(handle.clone()))),
    )?;
    vm.io.register_mmio(
        MmioRange::new(
            MmioAddress(layout::MMIO_WINDOW_BASE),
            layout::MMIO_WINDOW_SIZE,
        )?,
        Arc::new(Mutex::new(MmioWindow(handle.clone()))),
    )?;

    let (h, mem, log) = (handle.clone(), vm.mem.clone(), vm.events.clone());
    vm.on_marker(Box::new(move |marker: Marker, args: &[u64]| {
        // The hook gets the record's args after the marker id; the device
        // and check_delivery take them as in the record (args[0] = id).
        let mut full = [0u64; 6];
        full[0] = marker as u64;
        for (d, s) in full[1..].iter_mut().zip(args) {
            *d = *s;
        }
        let mut root = h.at_now();
        root.nic.on_guest_marker(marker, &full);
        if marker == Marker::RxDeliver {
            check_delivery(&mem, &root, &log, &full);
        }
    }));

    if let Some(sim) = &vm.sim {
        sim.set_device(Arc::new(handle.clone()));
        return Ok((handle, None));
    }
    let (h, stop) = (handle.clone(), vm.stop.clone());
    let clock = std::thread::Builder::new()
        .name("nic-clock".into())
        .spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let next = h.at_now().nic.next_deadline();
                let now = h.now_ns();
                let wait = next.map_or(CLOCK_MAX_SLEEP, |d| {
                    Duration::from_nanos(d.saturating_sub(now)).min(CLOCK_MAX_SLEEP)
                });
                std::thread::sleep(wait.max(Duration::from_micros(20)));
            }
        })
        .map_err(|e| VmError::Device(format!("spawning the clock thread: {e}")))?;
    Ok((handle, Some(clock)))
}
