//! The device and knobs of each queueing scenario: the host's own set-up
//! (`vmm::scenarios::setup`, variant 0), for the host tests that run the
//! scenario bodies in this process. Included with
//! `#[path = "common/queueing_setup.rs"] mod queueing_setup;`.
#![allow(dead_code)]

use nic_model::abi::{knob, Scenario, NUM_KNOBS};
use nic_model::NicConfig;

/// The device and knobs of `s` as the VM gets them; `Default` gets
/// xmit_more batches of 16 here.
pub fn setup(s: Scenario, seed: u64) -> (NicConfig, [u64; NUM_KNOBS]) {
    let vmm::scenarios::Setup { nic, mut knobs, .. } = vmm::scenarios::setup(s, 0, seed);
    if s == Scenario::Default {
        knobs[knob::BATCH] = 16;
    }
    (nic, knobs)
}
