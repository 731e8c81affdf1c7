//! nicproof's minimal KVM VMM: boots the guest kernel directly in 64-bit
//! mode on two vCPUs, serves the control port and COM1, and turns the run
//! into one [`outcome::Report`].
//!
//! Seam for devices: build a [`vm::Vm`], register PIO/MMIO devices on
//! `vm.io` (the MMIO window is `layout::MMIO_WINDOW_BASE..+SIZE`; 0xcf8..
//! 0xcff is free for the PCI bus), give the device `vm.mem.clone()`,
//! `vm.events.clone()` and an [`irq::KvmMsi`] over `vm.vm_fd`, feed it
//! markers with [`vm::Vm::on_marker`], then [`vm::Vm::run`].

#![warn(missing_docs)]

pub mod arch;
pub mod bench;
pub mod control;
pub mod decode;
pub mod explain;
pub mod gdb;
pub mod guest_image;
pub mod irq;
pub mod judge;
pub mod matrix;
pub mod nic;
pub mod oracles;
pub mod outcome;
pub mod payload;
pub mod perfetto;
pub mod replay;
pub mod rules;
pub mod scenarios;
pub mod serial;
pub mod sim;
pub mod symbols;
pub mod vcpu;
pub mod vm;

/// The report's table of checks (part of [`judge`]).
pub use judge::checks;

use nic_model::config::NicConfig;
use nic_model::events::{Event, EventKind};
use outcome::{Finding, Outcome, Report, Stats};
use vm::{RunOptions, Vm};

/// A finished run: the report (with the serial output), the event log and
/// the table of checks (empty for runs without a NIC or not judged).
pub struct RunResult {
    /// The run's report, as printed and written with `--json`.
    pub report: Report,
    /// The run's event log, ending with one `finding` event per finding.
    pub events: Vec<Event>,
    /// The table of checks.
    pub checks: Vec<checks::Check>,
}

/// The run's findings as `finding` events at the end of its log, so a
/// saved log says on its own what failed (`nicproof explain`).
fn append_findings(events: &mut Vec<Event>, findings: &[Finding]) {
    let (mut seq, time_ns) = events.last().map_or((0, 0), |e| (e.seq + 1, e.time_ns));
    for f in findings {
        events.push(Event {
            seq,
            time_ns,
            source: nic_model::events::Source::Vmm,
            kind: EventKind::Finding {
                oracle: f.oracle.clone(),
                at: f.seq,
                detail: f.detail.clone(),
            },
        });
        seq += 1;
    }
}

/// The knobs, backend and clock of a run, for its report.
fn settings(opts: &RunOptions) -> outcome::RunSettings {
    let knobs = opts
        .knobs
        .iter()
        .enumerate()
        .filter(|(_, v)| **v != 0)
        .map(|(i, v)| {
            (
                nic_model::abi::knob::ALL
                    .iter()
                    .find(|k| k.index == i)
                    .map_or_else(|| format!("knob{i}"), |k| k.name.to_string()),
                *v,
            )
        })
        .collect();
    outcome::RunSettings {
        knobs,
        backend: opts
            .nic
            .as_ref()
            .map(|n| replay::backend_text(&n.backend))
            .unwrap_or_default(),
        // Virtual: the VMM's clock (vmm/src/sim.rs); wall: host time
        // (vmm/src/nic.rs's clock thread).
        clock: opts.clock.name().into(),
    }
}

/// Build and run one VM. Never panics on anything the guest does;
/// set-up failures become a `host-error` outcome.
pub fn run(opts: &RunOptions) -> RunResult {
    let t = std::time::Instant::now();
    let built = Vm::new(opts).and_then(|mut vm| {
        let nic = match &opts.nic {
            Some(cfg) => {
                let cfg = NicConfig {
                    mutant: opts.device_mutant,
                    ..cfg.clone()
                };
                Some(nic::attach(&mut vm, cfg)?)
            }
            None => None,
        };
        Ok((vm, nic))
    });
    let (outcome, findings, stats, events, serial, checks) = match built {
        Ok((vm, nic)) => {
            let setup_ms = t.elapsed().as_secs_f64() * 1e3;
            let events = vm.events.clone();
            let serial = vm.serial().clone();
            let (o, s) = vm.run();
            let log = events.snapshot();
            let nic = nic.map(|(handle, clock)| {
                // The clock thread ends on the VM's stop flag, set by run().
                if let Some(clock) = clock {
                    let _ = clock.join();
                }
                judge::NicEnd {
                    live_maps: handle.live_maps(),
                    output_error: handle.output_error(),
                }
            });
            let judge::Judged {
                outcome: o,
                findings,
                checks,
            } = judge::run(o, &log, opts, nic);
            (
                o,
                findings,
                Stats { setup_ms, ..s },
                log,
                serial.text(),
                checks,
            )
        }
        Err(e) => (
            match e {
                vm::VmError::Gdb(_) => Outcome::GdbCannotListen {
                    message: e.to_string(),
                },
                _ => Outcome::HostError {
                    message: e.to_string(),
                },
            },
            Vec::new(),
            Stats::default(),
            Vec::new(),
            String::new(),
            Vec::new(),
        ),
    };
    let mut report = Report {
        scenario: opts.scenario.name().into(),
        seed: opts.seed,
        driver_mutant: opts.driver_mutant.name().into(),
        device_mutant: opts.device_mutant.name().into(),
        outcome,
        stats,
        findings,
        serial,
        locations: Vec::new(),
        settings: settings(opts),
    };
    report.locations = symbols::locate_all(&opts.guest, &report.addresses());
    let mut events = events;
    append_findings(&mut events, &report.findings);
    RunResult {
        report,
        events,
        checks,
    }
}
