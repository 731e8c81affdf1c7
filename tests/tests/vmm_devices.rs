//! The device seam, in process: devices registered on `Vm::io` see the
//! guest's accesses, marker hooks see markers, and a device that panics
//! ends the run as a host error at once (never a hang or a host crash).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nic_model::abi::{layout, Marker, Scenario};
use nicproof_tests::*;
use vm_device::bus::{MmioAddress, MmioRange, PioAddress, PioRange};
use vm_device::device_manager::{MmioManager, PioManager};
use vm_device::{MutDeviceMmio, MutDevicePio};
use vmm::outcome::Outcome;
use vmm::vm::{RunOptions, Vm};

fn vm_for(name: &str, code: &Asm, records: &[[u8; 64]]) -> Vm {
    let opts = RunOptions {
        guest: write_guest(name, &tiny_elf(&code.0, records)),
        scenario: Scenario::Boot,
        timeout: Duration::from_secs(30),
        quiet: true,
        ..Default::default()
    };
    Vm::new(&opts).unwrap_or_else(|e| panic!("building the VM: {e}"))
}

/// Remembers writes; reads return a fixed value.
#[derive(Default)]
struct Probe {
    writes: Vec<(u64, Vec<u8>)>,
}

impl MutDeviceMmio for Probe {
    fn mmio_read(&mut self, _: MmioAddress, _: u64, data: &mut [u8]) {
        data.copy_from_slice(&0x1234_5678u32.to_le_bytes()[..data.len()]);
    }
    fn mmio_write(&mut self, _: MmioAddress, off: u64, data: &[u8]) {
        self.writes.push((off, data.to_vec()));
    }
}

#[test]
fn mmio_devices_and_marker_hooks_plug_into_the_vm() {
    let rec = TINY_RECORDS as u32;
    let mut a = Asm::default();
    a.load32(layout::MMIO_WINDOW_BASE + 0x10) // read the device
        .store_eax(rec + 24) // into the marker's first argument
        .send_records(3)
        .spin();
    let recs = marker_then_pass(Marker::StopExit);
    let mut vm = vm_for("mmio", &a, &recs);
    let probe = Arc::new(Mutex::new(Probe::default()));
    vm.io
        .register_mmio(
            MmioRange::new(MmioAddress(layout::MMIO_WINDOW_BASE), 0x1000).unwrap(),
            probe.clone(),
        )
        .unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    vm.on_marker(Box::new(move |m, args| {
        s2.lock().unwrap().push((m, args[0]))
    }));
    let (outcome, stats) = vm.run();
    assert_eq!(outcome, Outcome::Passed);
    assert_eq!(*seen.lock().unwrap(), vec![(Marker::StopExit, 0x1234_5678)]);
    assert_eq!(stats.exits.get("mmio-read"), Some(&1));
}

struct Boom;

impl MutDevicePio for Boom {
    fn pio_read(&mut self, _: PioAddress, _: u16, _: &mut [u8]) {}
    fn pio_write(&mut self, _: PioAddress, _: u16, _: &[u8]) {
        panic!("device model bug");
    }
}

#[test]
fn a_panicking_device_ends_the_run_as_a_host_error_at_once() {
    let mut a = Asm::default();
    a.out32(0x99, 1).spin();
    let mut vm = vm_for("boom", &a, &[]);
    vm.io
        .register_pio(
            PioRange::new(PioAddress(0x99), 4).unwrap(),
            Arc::new(Mutex::new(Boom)),
        )
        .unwrap();
    let t = Instant::now();
    let (outcome, _) = vm.run();
    match outcome {
        Outcome::HostError { message } => {
            assert!(message.contains("device model bug"), "{message}")
        }
        o => panic!("expected a host error, got {o:?}"),
    }
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "took {:?}",
        t.elapsed()
    );
}
