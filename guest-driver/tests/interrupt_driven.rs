//! NAPI runs only when the NIC's interrupt schedules it (issue 14): the
//! default scenario against the device model on virtual time, with the
//! interrupts it sends delivered through this machine's interrupt
//! controller (hostplat's `PendingIrqs`).

#[path = "common/hostplat.rs"]
mod hostplat;

use std::sync::atomic::Ordering;

use hostplat::HostPlat;
use nic_model::abi::{knob, DriverMutant, Marker, Scenario, NUM_KNOBS};
use nic_model::NicConfig;

fn default_run(mutant: DriverMutant) -> (HostPlat, nicproof_guest::scenarios::Verdict) {
    let mut knobs = [0u64; NUM_KNOBS];
    // Virtual time: a hung run reaches its deadline at once.
    knobs[knob::DEADLINE_MS] = 2_000;
    HostPlat::run_scenario(NicConfig::default(), Scenario::Default, 3, mutant, knobs)
}

#[test]
fn the_correct_driver_polls_on_interrupts_and_re_arms_them() {
    let (plat, v) = default_run(DriverMutant::None);
    assert!(v.pass, "{}", v.text);
    let msis = plat.irqs.delivered.load(Ordering::SeqCst);
    let completes = plat.count(Marker::NapiComplete) as u64;
    assert!(completes > 0, "no NAPI poll completed");
    // Every completed poll was scheduled by an interrupt (nothing else
    // schedules NAPI on the data path).
    assert!(
        completes <= msis,
        "{completes} polls completed on {msis} interrupts"
    );
    assert_eq!(
        plat.count(Marker::TxTimeout),
        0,
        "the watchdog had to step in"
    );
}

/// The example: a driver that stops taking the device's
/// interrupts after its first poll passed the timer-polled guest with 2
/// interrupts instead of 128. Now nothing reclaims its ring.
#[test]
fn a_driver_that_stops_taking_interrupts_after_its_first_poll_fails() {
    let (plat, v) = default_run(DriverMutant::IrqNotReenabled);
    assert!(!v.pass, "{}", v.text);
    assert!(
        v.text.contains("timed out before every frame came back"),
        "{}",
        v.text
    );
    let (_, good) = default_run(DriverMutant::None);
    assert!(good.pass);
    let msis = plat.irqs.delivered.load(Ordering::SeqCst);
    assert!(msis < 8, "{msis} interrupts with the causes left masked");
}
