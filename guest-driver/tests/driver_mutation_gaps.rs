//! Tests for survivors of the sampled cargo-mutants run over
//! guest-driver/src/driver (README, Mutation score): each names the
//! mutant it kills.

#[path = "common/hostplat.rs"]
mod hostplat;

use hostplat::HostPlat;
use nic_model::abi::{knob, DriverMutant, Marker, Scenario, NUM_KNOBS};
use nic_model::NicConfig;

fn run(mutant: DriverMutant) -> HostPlat {
    let mut knobs = [0u64; NUM_KNOBS];
    knobs[knob::FRAMES] = 16;
    knobs[knob::BATCH] = 4;
    let (plat, v) =
        HostPlat::run_scenario(NicConfig::default(), Scenario::Default, 42, mutant, knobs);
    assert!(
        mutant != DriverMutant::None || v.pass,
        "correct driver: {}",
        v.text
    );
    plat.settle();
    plat
}

/// Kills mod.rs `if !self.cfg.bench` -> `if self.cfg.bench` in `down`:
/// the host's irq-after-napi-disable oracle and the irq_in_window knob
/// count from this marker, so a run without it judges nothing there.
#[test]
fn stop_marks_napi_disabled() {
    let plat = run(DriverMutant::None);
    let marks: Vec<Vec<u64>> = plat
        .markers()
        .into_iter()
        .filter(|r| r.marker == Marker::NapiDisable)
        .map(|r| r.args)
        .collect();
    // Every `down` marks (open marks one too, before NAPI is enabled);
    // the one at stop must see NAPI disabled.
    assert!(marks.contains(&vec![1]), "napi-disable markers: {marks:?}");
}

/// Kills mod.rs `!self.is_open()` -> `self.is_open()` in
/// `run_deferred_work`: the doorbell-after-stop switch must still ring
/// the doorbell after stop, and the host oracle must name it.
#[test]
fn doorbell_after_stop_switch_is_caught_by_its_oracle() {
    let plat = run(DriverMutant::None);
    assert_eq!(plat.host_findings(true), Vec::<String>::new());
    let plat = run(DriverMutant::DoorbellAfterStop);
    let findings = plat.host_findings(true);
    assert!(
        findings
            .iter()
            .any(|f| f.starts_with("doorbell-after-stop")),
        "{findings:?}"
    );
}
