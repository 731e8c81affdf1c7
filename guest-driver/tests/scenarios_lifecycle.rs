//! The lifecycle scenario bodies (scenarios/lifecycle.rs) against the real
//! device model in this process, on virtual time: no KVM needed, and
//! deterministic. Each correct run must pass with no monitor violation;
//! each driver mutant must trip the guest oracle the matrix names for it
//! (vmm/src/scenarios/lifecycle.rs, whose set-ups these runs use), and
//! the host's own oracles (`vmm::oracles`) hold on every correct run; the
//! VM runs of the matrix remain the judge of record.

#[path = "common/hostplat.rs"]
mod hostplat;

use std::sync::atomic::Ordering;

use hostplat::HostPlat;
use nic_model::abi::{DriverMutant, Group, Marker, Scenario, NUM_KNOBS};
use nic_model::events::EventKind;
use nic_model::NicConfig;
use nicproof_guest::scenarios::Verdict;

/// The device and knobs of (`s`, `variant`, `seed`): the host's own
/// set-up (`vmm::scenarios::setup`), as the VM gets them.
fn setup(s: Scenario, variant: u64, seed: u64) -> (NicConfig, [u64; NUM_KNOBS]) {
    let vmm::scenarios::Setup { nic, knobs, .. } = vmm::scenarios::setup(s, variant, seed);
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
                assert_eq!(
                    plat.violations(),
                    Vec::<String>::new(),
                    "{what}: DMA monitor"
                );
                let allow_busy = vmm::scenarios::setup(s, variant, seed).allow_busy;
                assert_eq!(
                    plat.host_findings(!allow_busy),
                    Vec::<String>::new(),
                    "{what}: host oracles"
                );
                assert_eq!(
                    plat.rx_bad.load(Ordering::SeqCst),
                    0,
                    "{what}: frames received corrupted"
                );
                assert_eq!(
                    plat.root().nic.live_maps(),
                    0,
                    "{what}: the monitor's live maps"
                );
            }
        }
    }
}

#[test]
fn each_driver_mutant_trips_the_guest_oracle_the_matrix_names() {
    let cases = [
        (
            Scenario::InvalidMac,
            0,
            DriverMutant::AcceptsInvalidMac,
            "mac-address:",
        ),
        (
            Scenario::InvalidMac,
            1,
            DriverMutant::AcceptsInvalidMac,
            "mac-address:",
        ),
        (
            Scenario::InvalidMac,
            2,
            DriverMutant::AcceptsInvalidMac,
            "mac-address:",
        ),
        (
            Scenario::StopUnderFlood,
            0,
            DriverMutant::NoUnmapAtStop,
            "dma-maps:",
        ),
        (
            Scenario::StopUnderFlood,
            0,
            DriverMutant::NoDisableAtStop,
            "quiesce:",
        ),
        (
            Scenario::InflightAtStop,
            0,
            DriverMutant::NoUnmapAtStop,
            "dma-maps:",
        ),
        (
            Scenario::Unregister,
            0,
            DriverMutant::UnregisterNoStop,
            "auto-close:",
        ),
        (
            Scenario::Unregister,
            2,
            DriverMutant::UnregisterNoStop,
            "auto-close:",
        ),
        (
            Scenario::MaxFragsFill,
            0,
            DriverMutant::NoStopInAdvance,
            "stop-early:",
        ),
        (
            Scenario::MaxFragsFill,
            0,
            DriverMutant::ThresholdOffByOne,
            "stuck-stopped:",
        ),
        (
            Scenario::BusyOwnership,
            0,
            DriverMutant::BusyFrees,
            "busy-ownership:",
        ),
        (
            Scenario::BusyOwnership,
            0,
            DriverMutant::BusyKeepsRef,
            "busy-ownership:",
        ),
        (
            Scenario::IrqWindow,
            0,
            DriverMutant::IrqMaskUnconditional,
            "quiesce:",
        ),
    ];
    for (s, variant, m, prefix) in cases {
        for seed in [1, 2, 3] {
            let (plat, v) = run(s, variant, seed, m);
            let what = format!("{}/{variant} x {} seed {seed}", s.name(), m.name());
            assert!(!v.pass, "{what}: passed: {}", v.text);
            assert!(
                plat.fails().iter().any(|f| f.starts_with(prefix)),
                "{what}: no `{prefix}` in {:?}",
                plat.fails()
            );
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
