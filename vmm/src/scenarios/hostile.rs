//! Host half of the hostile-guest scenario (see
//! guest-driver/src/scenarios/hostile.rs): after a normal probe and open
//! the guest programs the device badly, one abuse per knob VARIANT. The
//! host must survive it (no panic, hang or out-of-bounds access), the
//! device must latch the named error, and the report must name it in its
//! `device-error` check.

use std::time::Duration;

use super::{Case, Expect, Setup};
use nic_model::abi::{Abuse, Scenario, HOSTILE_FUZZ_VARIANT};

/// The variant whose guest makes seeded register and descriptor garbage
/// (guest-driver/src/scenarios/hostile.rs `fuzz`). Not a matrix case:
/// which errors it provokes depends on the seed, so nothing is expected
/// and every latched error fails the run; tests/tests/hostile.rs checks
/// over many seeds that the host ends every run normally and names every
/// error.
pub const FUZZ_VARIANT: u64 = HOSTILE_FUZZ_VARIANT;

/// The hostile scenario's variants: one per abuse of the catalogue
/// (`abi::Abuse`), and the fuzz variant.
pub fn variants(scenario: Scenario) -> Option<Vec<u64>> {
    (scenario == Scenario::Hostile).then(|| {
        Abuse::ALL
            .iter()
            .map(|&a| a as u64)
            .chain([FUZZ_VARIANT])
            .collect()
    })
}

/// A reset long enough (virtual µs) for the guest's next register write
/// to land inside it (write-during-reset).
const SLOW_RESET_US: u64 = 2_000;

/// The set-up of the hostile scenario, or None if `scenario` is not it.
pub fn setup(scenario: Scenario, variant: u64, _seed: u64) -> Option<Setup> {
    if scenario != Scenario::Hostile {
        return None;
    }
    let mut s = Setup {
        timeout: Duration::from_secs(30),
        ..Setup::default()
    };
    // An unknown variant expects nothing: the guest fails its verdict.
    let abuse = u32::try_from(variant).ok().and_then(Abuse::from_u32);
    s.expect_fault = abuse.map(|a| a.meta().error);
    if variant == FUZZ_VARIANT || abuse == Some(Abuse::WriteDuringReset) {
        s.nic.reset_delay_us = SLOW_RESET_US;
    }
    Some(s)
}

/// The matrix case of abuse `variant` (the catalogue's `Scenario::Hostile`
/// variants): each run must end normally with the named error latched
/// (the `device-error` check demands exactly it, and the guest's verdict
/// too); an abuse whose DMA the device blocks is also a monitor
/// violation, so that case is caught by the blocked-DMA rule.
pub fn case(variant: u64) -> Case {
    let blocked = u32::try_from(variant)
        .ok()
        .and_then(Abuse::from_u32)
        .map_or(&[][..], |a| a.meta().blocked);
    match blocked {
        [] => Case::pass(Scenario::Hostile, variant),
        rule => Case {
            expect: Expect::Caught(rule),
            ..Case::pass(Scenario::Hostile, variant)
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_abuse_expects_its_error_and_has_a_case() {
        let cases = super::super::cases();
        for &a in Abuse::ALL {
            let s = setup(Scenario::Hostile, a as u64, 1).unwrap();
            assert_eq!(s.expect_fault, Some(a.meta().error), "{}", a.name());
            let c = cases
                .iter()
                .find(|c| c.scenario == Scenario::Hostile && c.variant == a as u64)
                .unwrap_or_else(|| panic!("{} has no case", a.name()));
            assert_eq!(
                c.expect == Expect::Pass,
                a.meta().blocked.is_empty(),
                "{}",
                a.name()
            );
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
