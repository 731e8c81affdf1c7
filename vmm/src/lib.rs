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
pub mod nic;
pub mod oracles;
pub mod outcome;
pub mod payload;
pub mod scenarios;
pub mod serial;
pub mod vcpu;
pub mod vm;

use nic_model::events::Event;
use outcome::{Outcome, Report, Stats};
use nic_model::config::NicConfig;
use vm::{RunOptions, Vm};

/// Add the host oracles' findings to a finished run's outcome. Only runs
/// that ended normally (passed or failed) are judged: a panic, fault or
/// timeout already says what went wrong.
fn judge_with_oracles(
    outcome: Outcome,
    log: &[Event],
    eeprom: Option<[u8; 6]>,
    live_maps: usize,
    allow_busy: bool,
) -> Outcome {
    let mut reasons = match outcome {
        Outcome::Passed => Vec::new(),
        Outcome::Failed { reasons } => reasons,
        other => return other,
    };
    let mut findings = oracles::check_all(log, !allow_busy);
    if let Some(mac) = eeprom {
        findings.extend(oracles::mac_address(log, mac));
    }
    for f in findings {
        let r = format!("oracle {}: {} (event #{})", f.oracle, f.detail, f.seq);
        if !reasons.contains(&r) {
            reasons.push(r);
        }
    }
    if live_maps > 0 && reasons.iter().all(|r| !r.contains("still mapped")) {
        reasons.push(format!("device monitor: {live_maps} DMA range(s) still mapped at the end"));
    }
    if reasons.is_empty() {
        Outcome::Passed
    } else {
        Outcome::Failed { reasons }
    }
}

/// A finished run: the report (with the serial output) and the event log.
pub struct RunResult {
    pub report: Report,
    pub events: Vec<Event>,
}

/// Build and run one VM. Never panics on anything the guest does;
/// set-up failures become a `host-error` outcome.
pub fn run(opts: &RunOptions) -> RunResult {
    let t = std::time::Instant::now();
    let built = Vm::new(opts).and_then(|mut vm| {
        let nic = match &opts.nic {
            Some(cfg) => {
                let cfg = NicConfig { mutant: opts.device_mutant, ..cfg.clone() };
                Some(nic::attach(&mut vm, cfg)?)
            }
            None => None,
        };
        Ok((vm, nic))
    });
    let (outcome, stats, events, serial) = match built {
        Ok((vm, nic)) => {
            let setup_ms = t.elapsed().as_secs_f64() * 1e3;
            let events = vm.events.clone();
            let serial = vm.serial().clone();
            let (mut o, s) = vm.run();
            let log = events.snapshot();
            if let Some((handle, clock)) = nic {
                // The clock thread ends on the VM's stop flag, set by run().
                let _ = clock.join();
                let eeprom = opts.nic.as_ref().map(|c| c.eeprom_mac());
                o = judge_with_oracles(o, &log, eeprom, handle.live_maps(), opts.allow_busy);
            }
            (o, Stats { setup_ms, ..s }, log, serial.text())
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
