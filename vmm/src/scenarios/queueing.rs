//! Host half of the queueing scenarios (see guest-driver/src/scenarios/queueing.rs).

use super::{Case, Setup};
use nic_model::abi::Scenario;

/// The set-up of one of this group's scenarios, or None if it is not ours.
pub fn setup(scenario: Scenario, _variant: u64, _seed: u64) -> Option<Setup> {
    match scenario {
        _ => None,
    }
}

/// This group's cases of the matrix.
pub fn cases() -> Vec<Case> {
    Vec::new()
}
