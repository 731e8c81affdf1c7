//! The queueing scenario bodies (scenarios/queueing.rs) against the real
//! device model in this process, on virtual time: no KVM needed, and
//! deterministic. Each correct run must pass with no monitor violation;
//! each driver mutant must trip the guest oracle the matrix names for it
//! (vmm/src/scenarios/queueing.rs, whose device set-ups `setup()`
//! mirrors; the VM runs of the matrix remain the judge of record).
//!
//! The in-process machine (`HostPlat`) is tests/common/hostplat.rs.

#[path = "common/hostplat.rs"]
mod hostplat;

use std::sync::atomic::Ordering;

use hostplat::HostPlat;
use nic_model::abi::{control, knob, DriverMutant, RunConfig, Scenario, NUM_KNOBS, PROTOCOL_VERSION};
use nic_model::NicConfig;
use nicproof_guest::scenarios::{run_with_pool, Verdict};

/// The device and knobs of `s`, as vmm/src/scenarios/queueing.rs sets
/// them up for the VM (seeded choices fixed here).
fn setup(s: Scenario, seed: u64) -> (NicConfig, [u64; NUM_KNOBS]) {
    let mut nic = NicConfig::default();
    let mut knobs = [0u64; NUM_KNOBS];
    match s {
        Scenario::LostWake | Scenario::FalseWake => {
            nic.complete_on_request = true;
            knobs[knob::TX_RING] = 64;
        }
        Scenario::BqlRandom => {
            knobs[knob::TX_RING] = 64;
            knobs[knob::FRAMES] = 48;
            knobs[knob::BATCH] = 1 + seed % 8;
        }
        Scenario::BatchLastDropped => knobs[knob::BATCH] = 2 + seed % 7,
        Scenario::ClonePairs => knobs[knob::FRAMES] = 4,
        Scenario::DroppedIrq => nic.drop_nth_tx_irq = Some(1 + seed % 3),
        Scenario::Watchdog => {
            nic.stall_completions_after = Some(2 + seed % 4);
            knobs[knob::TX_RING] = 64;
        }
        Scenario::Soak => knobs[knob::CYCLES] = 5,
        _ => {}
    }
    (nic, knobs)
}

fn run(s: Scenario, seed: u64, mutant: DriverMutant) -> (HostPlat, Verdict) {
    let (nic, knobs) = setup(s, seed);
    let plat = HostPlat::new(nic);
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
    };
    let v = run_with_pool(&plat, &cfg, plat.dma_pool()).expect("a NIC scenario");
    (plat, v)
}

/// Every queueing scenario that runs on one CPU (lost-wake variant 1
/// needs the guest kernel's second CPU).
const SINGLE_CPU: &[Scenario] = &[
    Scenario::LostWake,
    Scenario::FalseWake,
    Scenario::BqlRandom,
    Scenario::BatchLastDropped,
    Scenario::ClonePairs,
    Scenario::TimelyCompletion,
    Scenario::DroppedIrq,
    Scenario::SmallBudget,
    Scenario::Watchdog,
    Scenario::Soak,
];

#[test]
fn correct_driver_passes_every_queueing_scenario() {
    for &s in SINGLE_CPU {
        assert!(nicproof_guest::scenarios::queueing::SCENARIOS.contains(&s));
        for seed in [1, 2, 3] {
            let (plat, v) = run(s, seed, DriverMutant::None);
            let what = format!("{} seed {seed}", s.name());
            assert!(v.pass, "{what}: {}", v.text);
            assert_eq!(plat.fails(), Vec::<String>::new(), "{what}: guest oracles");
            assert_eq!(plat.violations(), Vec::<String>::new(), "{what}: DMA monitor");
            assert_eq!(plat.rx_bad.load(Ordering::SeqCst), 0, "{what}: frames received corrupted");
            assert_eq!(plat.root().nic.live_maps(), 0, "{what}: the monitor's live maps");
        }
    }
}

#[test]
fn each_driver_mutant_trips_the_guest_oracle_the_matrix_names() {
    let cases = [
        (Scenario::LostWake, DriverMutant::NoRecheck, "stuck-stopped:"),
        (Scenario::LostWake, DriverMutant::ThresholdOffByOne, "stuck-stopped:"),
        (Scenario::LostWake, DriverMutant::WakeInverted, "stuck-stopped:"),
        (Scenario::LostWake, DriverMutant::ConsIndexLate, "stuck-stopped:"),
        (Scenario::TimelyCompletion, DriverMutant::ReclaimOnXmit, "timely:"),
        (Scenario::SmallBudget, DriverMutant::ReclaimOnXmit, "small-budget:"),
        (Scenario::ClonePairs, DriverMutant::WritesClonedHead, "clone-head:"),
        (Scenario::Watchdog, DriverMutant::NoWatchdog, "watchdog:"),
        (Scenario::Soak, DriverMutant::NoUnmapAtStop, "soak:"),
    ];
    for (s, m, prefix) in cases {
        for seed in [1, 2, 3] {
            let (plat, v) = run(s, seed, m);
            let what = format!("{} x {} seed {seed}", s.name(), m.name());
            assert!(!v.pass, "{what}: passed: {}", v.text);
            assert!(plat.fails().iter().any(|f| f.starts_with(prefix)), "{what}: no `{prefix}` in {:?}", plat.fails());
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
