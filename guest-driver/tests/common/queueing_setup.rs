//! The device and knobs of each queueing scenario as
//! vmm/src/scenarios/queueing.rs sets them up for the VM (seeded choices
//! fixed here), for the host tests that run the scenario bodies in this
//! process. Included with `#[path = "common/queueing_setup.rs"] mod
//! queueing_setup;`.
#![allow(dead_code)]

use nic_model::abi::{knob, Scenario, NUM_KNOBS};
use nic_model::NicConfig;

/// The device and knobs of `s`; `Default` gets xmit_more batches of 16.
pub fn setup(s: Scenario, seed: u64) -> (NicConfig, [u64; NUM_KNOBS]) {
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
        Scenario::Default => knobs[knob::BATCH] = 16,
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
