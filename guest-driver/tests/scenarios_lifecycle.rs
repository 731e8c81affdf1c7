//! The lifecycle scenario bodies (scenarios/lifecycle.rs) against the real
//! device model in this process, on virtual time: no KVM needed, and
//! deterministic. Each correct run must pass with no monitor violation;
//! each driver mutant must trip the guest oracle the matrix names for it
//! (vmm/src/scenarios/lifecycle.rs, whose device set-ups `device()`
//! mirrors; the VM runs of the matrix remain the judge of record).

#[path = "common/hostplat.rs"]
mod hostplat;

use std::sync::atomic::Ordering;

use hostplat::HostPlat;
use nic_model::abi::{knob, regs, DriverMutant, Group, Marker, Scenario, NUM_KNOBS};
use nic_model::events::EventKind;
use nic_model::{InvalidMac, IrqWindow, NicConfig, WindowStart};
use nicproof_guest::scenarios::Verdict;

/// The device and knobs of `s`, as vmm/src/scenarios/lifecycle.rs sets
/// them up for the VM (the reset delay is seeded differently, in the same
/// 0.5-5 ms range).
fn setup(s: Scenario, variant: u64, seed: u64) -> (NicConfig, [u64; NUM_KNOBS]) {
    let mut nic = NicConfig::default();
    let mut knobs = [0u64; NUM_KNOBS];
    knobs[knob::VARIANT] = variant;
    match s {
        Scenario::InvalidMac => {
            nic.invalid_mac = [Some(InvalidMac::Zero), Some(InvalidMac::Multicast), Some(InvalidMac::Broadcast), None][variant as usize];
            knobs[knob::FRAMES] = 8;
        }
        Scenario::SlowReset => nic.reset_delay_us = 500 + seed * 997 % 4500,
        Scenario::DmaUntilDisabled => nic.dma_until_disabled = true,
        Scenario::InflightAtStop => nic.stall_completions_after = Some(1 + seed % 2),
        Scenario::Unregister => knobs[knob::CYCLES] = 3,
        Scenario::MaxFragsFill => {
            nic.stall_completions_after = Some(1);
            knobs[knob::TX_RING] = 64;
        }
        Scenario::BusyOwnership => {
            nic.complete_on_request = true;
            knobs[knob::TX_RING] = 64;
        }
        Scenario::IrqWindow => {
            let start = match variant {
                1 => WindowStart::OpenEnter,
                3 => WindowStart::NapiDisable,
                _ => WindowStart::StopEnter,
            };
            nic.irq_in_window = Some(IrqWindow { start, causes: regs::INT_TX | regs::INT_RX });
            nic.reset_delay_us = if variant == 2 || variant == 3 { 300 } else { 0 };
            knobs[knob::CYCLES] = if variant == 1 { 18 } else { 8 };
        }
        _ => {}
    }
    (nic, knobs)
}

/// Run scenario `s` on a fresh machine, then let a millisecond of device
/// time pass so anything a stopped device would still do shows.
fn run(s: Scenario, variant: u64, seed: u64, mutant: DriverMutant) -> (HostPlat, Verdict) {
    let (nic, knobs) = setup(s, variant, seed);
    let (plat, v) = HostPlat::run_scenario(nic, s, seed, mutant, knobs);
    plat.settle();
    (plat, v)
}

#[test]
fn correct_driver_passes_every_lifecycle_scenario() {
    // Every lifecycle scenario and variant of the catalogue.
    for s in Scenario::of_group(Group::Lifecycle) {
        for &variant in s.variants() {
            for seed in [1, 2, 3] {
                let (plat, v) = run(s, variant, seed, DriverMutant::None);
                let what = format!("{}/{variant} seed {seed}", s.name());
                assert!(v.pass, "{what}: {}", v.text);
                assert_eq!(plat.fails(), Vec::<String>::new(), "{what}: guest oracles");
                assert_eq!(plat.violations(), Vec::<String>::new(), "{what}: DMA monitor");
                assert_eq!(plat.rx_bad.load(Ordering::SeqCst), 0, "{what}: frames received corrupted");
                assert_eq!(plat.root().nic.live_maps(), 0, "{what}: the monitor's live maps");
            }
        }
    }
}

#[test]
fn each_driver_mutant_trips_the_guest_oracle_the_matrix_names() {
    let cases = [
        (Scenario::InvalidMac, 0, DriverMutant::AcceptsInvalidMac, "mac-address:"),
        (Scenario::InvalidMac, 1, DriverMutant::AcceptsInvalidMac, "mac-address:"),
        (Scenario::InvalidMac, 2, DriverMutant::AcceptsInvalidMac, "mac-address:"),
        (Scenario::StopUnderFlood, 0, DriverMutant::NoUnmapAtStop, "dma-maps:"),
        (Scenario::StopUnderFlood, 0, DriverMutant::NoDisableAtStop, "quiesce:"),
        (Scenario::InflightAtStop, 0, DriverMutant::NoUnmapAtStop, "dma-maps:"),
        (Scenario::Unregister, 0, DriverMutant::UnregisterNoStop, "auto-close:"),
        (Scenario::Unregister, 2, DriverMutant::UnregisterNoStop, "auto-close:"),
        (Scenario::MaxFragsFill, 0, DriverMutant::NoStopInAdvance, "stop-early:"),
        (Scenario::MaxFragsFill, 0, DriverMutant::ThresholdOffByOne, "stuck-stopped:"),
        (Scenario::BusyOwnership, 0, DriverMutant::BusyFrees, "busy-ownership:"),
        (Scenario::BusyOwnership, 0, DriverMutant::BusyKeepsRef, "busy-ownership:"),
        (Scenario::IrqWindow, 0, DriverMutant::IrqMaskUnconditional, "quiesce:"),
    ];
    for (s, variant, m, prefix) in cases {
        for seed in [1, 2, 3] {
            let (plat, v) = run(s, variant, seed, m);
            let what = format!("{}/{variant} x {} seed {seed}", s.name(), m.name());
            assert!(!v.pass, "{what}: passed: {}", v.text);
            assert!(plat.fails().iter().any(|f| f.starts_with(prefix)), "{what}: no `{prefix}` in {:?}", plat.fails());
        }
    }
}

#[test]
fn no_reset_poll_unmaps_while_the_slow_reset_runs() {
    // The host's reset-wait oracle, on this log: a dma-unmap marker
    // between the device's reset-start and reset-done.
    let unmap_during_reset = |m: DriverMutant| {
        let (plat, _) = run(Scenario::SlowReset, 0, 1, m);
        let mut resetting = false;
        plat.log.snapshot().iter().any(|e| match &e.kind {
            EventKind::ResetStart => {
                resetting = true;
                false
            }
            EventKind::ResetDone => {
                resetting = false;
                false
            }
            EventKind::Marker { marker, .. } => resetting && marker == Marker::DmaUnmap.name(),
            _ => false,
        })
    };
    assert!(!unmap_during_reset(DriverMutant::None));
    assert!(unmap_during_reset(DriverMutant::NoResetPoll));
}
