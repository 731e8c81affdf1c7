//! Host half of the hostile-guest scenario (see
//! guest-driver/src/scenarios/hostile.rs): after a normal probe and open
//! the guest programs the device badly, one abuse per knob VARIANT. The
//! host must survive it (no panic, hang or out-of-bounds access), the
//! device must latch the named error, and the report must name it in its
//! `device-error` check.

use std::time::Duration;

use super::{Case, Expect, Setup};
use nic_model::abi::{DeviceError, Scenario};
use nic_model::rules::Rule;

/// One abuse: its variant number, name, the error the device must latch
/// and the monitor rule of the DMA it blocks (empty: nothing blocked).
pub struct Abuse {
    pub variant: u64,
    pub name: &'static str,
    pub error: DeviceError,
    pub blocked_rule: &'static [Rule],
}

/// Every abuse, by variant. The guest's table
/// (guest-driver/src/scenarios/hostile.rs `ABUSES`) lists the same
/// errors in the same order; the guest fails its verdict and the host its
/// `device-error` check if the device latches anything else.
pub const ABUSES: &[Abuse] = &[
    Abuse { variant: 0, name: "outside-ram", error: DeviceError::AddressOutsideRam, blocked_rule: &[Rule::DmaOutsideRam] },
    Abuse { variant: 1, name: "in-bar", error: DeviceError::AddressInBar, blocked_rule: &[Rule::DmaIntoBar] },
    Abuse { variant: 2, name: "zero-length", error: DeviceError::ZeroLength, blocked_rule: &[] },
    Abuse { variant: 3, name: "frame-too-big", error: DeviceError::FrameTooBig, blocked_rule: &[] },
    Abuse { variant: 4, name: "no-eop", error: DeviceError::NoEndOfPacket, blocked_rule: &[] },
    Abuse { variant: 5, name: "bad-ring-size", error: DeviceError::BadRingSize, blocked_rule: &[] },
    Abuse { variant: 6, name: "bad-tail", error: DeviceError::BadTail, blocked_rule: &[] },
    Abuse { variant: 7, name: "write-during-reset", error: DeviceError::WriteDuringReset, blocked_rule: &[] },
    Abuse { variant: 8, name: "bus-master-off", error: DeviceError::BusMasterOff, blocked_rule: &[Rule::DmaBusMasterOff] },
    Abuse { variant: 9, name: "rx-buffer-too-small", error: DeviceError::LengthTooBig, blocked_rule: &[] },
    Abuse { variant: 10, name: "rx-into-bar", error: DeviceError::AddressInBar, blocked_rule: &[Rule::DmaIntoBar] },
    Abuse { variant: 11, name: "ring-outside-ram", error: DeviceError::AddressOutsideRam, blocked_rule: &[Rule::DmaOutsideRam] },
    Abuse { variant: 12, name: "ring-too-large", error: DeviceError::BadRingSize, blocked_rule: &[] },
    Abuse { variant: 13, name: "rx-bad-tail", error: DeviceError::BadTail, blocked_rule: &[] },
];

/// The variant whose guest makes seeded register and descriptor garbage
/// (guest-driver/src/scenarios/hostile.rs `fuzz`). Not a matrix case:
/// which errors it provokes depends on the seed, so nothing is expected
/// and every latched error fails the run; tests/tests/hostile.rs checks
/// over many seeds that the host ends every run normally and names every
/// error.
pub const FUZZ_VARIANT: u64 = 100;

/// The hostile scenario's variants: one per abuse, and the fuzz variant.
pub fn variants(scenario: Scenario) -> Option<Vec<u64>> {
    (scenario == Scenario::Hostile)
        .then(|| ABUSES.iter().map(|a| a.variant).chain([FUZZ_VARIANT]).collect())
}

/// A reset long enough (virtual µs) for the guest's next register write
/// to land inside it (write-during-reset).
const SLOW_RESET_US: u64 = 2_000;

/// The set-up of the hostile scenario, or None if `scenario` is not it.
pub fn setup(scenario: Scenario, variant: u64, _seed: u64) -> Option<Setup> {
    if scenario != Scenario::Hostile {
        return None;
    }
    let mut s = Setup { timeout: Duration::from_secs(30), ..Setup::default() };
    // An unknown variant expects nothing: the guest fails its verdict.
    let abuse = ABUSES.iter().find(|a| a.variant == variant);
    s.expect_fault = abuse.map(|a| a.error);
    if variant == FUZZ_VARIANT || abuse.is_some_and(|a| a.error == DeviceError::WriteDuringReset) {
        s.nic.reset_delay_us = SLOW_RESET_US;
    }
    Some(s)
}

/// One case per abuse. Each run must end normally with the named error
/// latched (the `device-error` check demands exactly it, and the guest's
/// verdict too); an abuse whose DMA the device blocks is also a monitor
/// violation, so that case is caught by the blocked-DMA rule.
pub fn cases() -> Vec<Case> {
    ABUSES
        .iter()
        .map(|a| match a.blocked_rule {
            [] => Case::pass(Scenario::Hostile, a.variant),
            rule => Case { expect: Expect::Caught(rule), ..Case::pass(Scenario::Hostile, a.variant) },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_abuse_expects_its_error_and_has_a_case() {
        let cases = cases();
        for (i, a) in ABUSES.iter().enumerate() {
            assert_eq!(a.variant, i as u64, "{}", a.name);
            let s = setup(Scenario::Hostile, a.variant, 1).unwrap();
            assert_eq!(s.expect_fault, Some(a.error), "{}", a.name);
            let c = cases.iter().find(|c| c.variant == a.variant).unwrap_or_else(|| panic!("{} has no case", a.name));
            assert_eq!(c.expect == Expect::Pass, a.blocked_rule.is_empty(), "{}", a.name);
        }
        assert_eq!(setup(Scenario::Hostile, 99, 1).unwrap().expect_fault, None);
        assert!(setup(Scenario::Default, 0, 1).is_none());
        assert!(setup(Scenario::Hostile, 7, 1).unwrap().nic.reset_delay_us > 0);
        let fuzz = setup(Scenario::Hostile, FUZZ_VARIANT, 1).unwrap();
        assert_eq!(fuzz.expect_fault, None);
        assert!(fuzz.nic.reset_delay_us > 0);
        assert!(cases.iter().all(|c| c.variant != FUZZ_VARIANT));
    }
}
