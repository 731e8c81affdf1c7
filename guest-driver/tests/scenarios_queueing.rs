//! The queueing scenario bodies (scenarios/queueing.rs) against the real
//! device model in this process, on virtual time: no KVM needed, and
//! deterministic. Each correct run must pass with no monitor violation;
//! each driver mutant must trip the guest oracle the matrix names for it
//! (vmm/src/scenarios/queueing.rs, whose set-ups these runs use), and
//! the host's own oracles (`vmm::oracles`) hold on every correct run; the
//! VM runs of the matrix remain the judge of record.
//!
//! The in-process machine (`HostPlat`) is tests/common/hostplat.rs.

#[path = "common/hostplat.rs"]
mod hostplat;
#[path = "common/queueing_setup.rs"]
mod queueing_setup;

use std::sync::atomic::Ordering;

use hostplat::HostPlat;
use nic_model::abi::{DriverMutant, Group, Scenario};
use nicproof_guest::scenarios::Verdict;

fn run(s: Scenario, seed: u64, mutant: DriverMutant) -> (HostPlat, Verdict) {
    let (nic, knobs) = queueing_setup::setup(s, seed);
    HostPlat::run_scenario(nic, s, seed, mutant, knobs)
}

/// Every queueing scenario of the catalogue, in its variant 0 (lost-wake
/// variant 1 needs the guest kernel's second CPU).
#[test]
fn correct_driver_passes_every_queueing_scenario() {
    for s in Scenario::of_group(Group::Queueing) {
        for seed in [1, 2, 3] {
            let (plat, v) = run(s, seed, DriverMutant::None);
            let what = format!("{} seed {seed}", s.name());
            assert!(v.pass, "{what}: {}", v.text);
            assert_eq!(plat.fails(), Vec::<String>::new(), "{what}: guest oracles");
            assert_eq!(
                plat.violations(),
                Vec::<String>::new(),
                "{what}: DMA monitor"
            );
            assert_eq!(
                plat.host_findings(true),
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

#[test]
fn each_driver_mutant_trips_the_guest_oracle_the_matrix_names() {
    let cases = [
        (
            Scenario::LostWake,
            DriverMutant::NoRecheck,
            "stuck-stopped:",
        ),
        (
            Scenario::LostWake,
            DriverMutant::ThresholdOffByOne,
            "stuck-stopped:",
        ),
        (
            Scenario::LostWake,
            DriverMutant::WakeInverted,
            "stuck-stopped:",
        ),
        (
            Scenario::LostWake,
            DriverMutant::ConsIndexLate,
            "stuck-stopped:",
        ),
        (
            Scenario::TimelyCompletion,
            DriverMutant::ReclaimOnXmit,
            "timely:",
        ),
        (
            Scenario::SmallBudget,
            DriverMutant::ReclaimOnXmit,
            "small-budget:",
        ),
        (
            Scenario::ClonePairs,
            DriverMutant::WritesClonedHead,
            "clone-head:",
        ),
        (Scenario::Watchdog, DriverMutant::NoWatchdog, "watchdog:"),
        (Scenario::Soak, DriverMutant::NoUnmapAtStop, "soak:"),
    ];
    for (s, m, prefix) in cases {
        for seed in [1, 2, 3] {
            let (plat, v) = run(s, seed, m);
            let what = format!("{} x {} seed {seed}", s.name(), m.name());
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
fn no_fence_is_not_caught_on_one_cpu() {
    // Honest limit: the forced windows are sequential, so a missing fence
    // changes nothing here (the loom model catches it); if this starts
    // failing, the scenario became a catcher and the matrix should say so.
    let (_, v) = run(Scenario::LostWake, 1, DriverMutant::NoFence);
    assert!(v.pass, "{}", v.text);
}
