//! nicproof's minimal KVM VMM: boots the guest kernel directly in 64-bit
//! mode on two vCPUs, serves the control port and COM1, and turns the run
//! into one [`outcome::Report`].
//!
//! Seam for devices: build a [`vm::Vm`], register PIO/MMIO devices on
//! `vm.io` (the MMIO window is `layout::MMIO_WINDOW_BASE..+SIZE`; 0xcf8..
//! 0xcff is free for the PCI bus), give the device `vm.mem.clone()`,
//! `vm.events.clone()` and an [`irq::KvmMsi`] over `vm.vm_fd`, feed it
//! markers with [`vm::Vm::on_marker`], then [`vm::Vm::run`].

pub mod arch;
pub mod bench;
pub mod control;
pub mod irq;
pub mod outcome;
pub mod payload;
pub mod serial;
pub mod vcpu;
pub mod vm;

use nic_model::events::Event;
use outcome::{Outcome, Report, Stats};
use vm::{RunOptions, Vm};

/// A finished run: the report (with the serial output) and the event log.
pub struct RunResult {
    pub report: Report,
    pub events: Vec<Event>,
}

/// Build and run one VM. Never panics on anything the guest does;
/// set-up failures become a `host-error` outcome.
pub fn run(opts: &RunOptions) -> RunResult {
    let t = std::time::Instant::now();
    let (outcome, stats, events, serial) = match Vm::new(opts) {
        Ok(vm) => {
            let setup_ms = t.elapsed().as_secs_f64() * 1e3;
            let events = vm.events.clone();
            let serial = vm.serial().clone();
            let (o, s) = vm.run();
            (o, Stats { setup_ms, ..s }, events.snapshot(), serial.text())
        }
        Err(e) => (
            Outcome::HostError {
                message: e.to_string(),
            },
            Stats::default(),
            Vec::new(),
            String::new(),
        ),
    };
    let report = Report {
        scenario: opts.scenario.name().into(),
        seed: opts.seed,
        driver_mutant: opts.driver_mutant.name().into(),
        device_mutant: opts.device_mutant.name().into(),
        outcome,
        stats,
        serial,
    };
    RunResult { report, events }
}
