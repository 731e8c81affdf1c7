//! Hostile guests end to end: for every abuse of the `hostile` scenario
//! the host survives (the run ends passed or failed, never a panic or a
//! timeout), the device latches the named error and raises the error
//! interrupt, and the run's report names that error in its `device-error`
//! check. A device error nobody expected fails the run and is named too.
//! These boot real VMs (/dev/kvm) and fail without it.

use nic_model::abi::{knob, pci, Abuse, DeviceError, Scenario, NUM_KNOBS};
use nicproof_tests::*;
use serde_json::Value;
use vmm::checks::Status;
use vmm::oracles::device_error_name;
use vmm::outcome::Outcome;
use vmm::scenarios::hostile::FUZZ_VARIANT;
use vmm::vm::RunOptions;

/// The row of the checks table that names device errors.
const ROW: &str = "device latched no unexpected error";

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn every_abuse_ends_normally_and_the_report_names_its_device_error() {
    for &abuse in Abuse::ALL {
        let a = abuse.meta();
        let variant = format!("variant={}", abuse as u32);
        let r = run(
            &guest_image(),
            &["--scenario", "hostile", "--knob", &variant],
        );
        let ctx = format!("{}: {}\n{}", abuse.name(), r.stdout, r.stderr);
        assert!(
            matches!(r.outcome(), "passed" | "failed"),
            "host did not survive {ctx}"
        );
        let checks = r.report["checks"].as_array().cloned().unwrap_or_default();
        let row = checks
            .iter()
            .find(|c| c["check"] == ROW)
            .unwrap_or_else(|| panic!("no {ROW} row: {ctx}"));
        let errors = strings(&row["errors"]);
        let code = a.error as u32;
        let want = format!("{} (code {code}) at ", device_error_name(code));
        assert_eq!(errors.len(), 1, "{ctx}");
        assert!(
            errors[0].starts_with(&want) && errors[0].ends_with(", expected"),
            "{errors:?} {ctx}"
        );
        assert_eq!(row["status"], "held", "{ctx}");
        // Only the blocked-DMA rule may fail the run, and it must.
        let found: Vec<&str> = r.report["findings"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| f["oracle"].as_str())
            .collect();
        match a.blocked {
            [] => assert_eq!(r.outcome(), "passed", "{ctx}"),
            rules => assert!(
                r.outcome() == "failed"
                    && !found.is_empty()
                    && found.iter().all(|f| rules.iter().any(|r| r.name() == *f)),
                "{found:?} {ctx}"
            ),
        }
        // The device raised the error interrupt (misc vector) and the
        // guest read the same code from ERR_CODE.
        let misc = r
            .events
            .iter()
            .filter(|e| e["event"] == "irq" && e["vector"] == u64::from(pci::MSIX_MISC))
            .count();
        let faults = r
            .events
            .iter()
            .filter(|e| e["event"] == "device-fault" && e["code"] == u64::from(code))
            .count();
        assert!(faults >= 1, "{ctx}");
        // Write-during-reset: the reset cleared INT_ENABLE, so no vector.
        if a.error != DeviceError::WriteDuringReset {
            assert!(misc >= 1, "no error interrupt: {ctx}");
        }
        let seen = r
            .markers("phase")
            .into_iter()
            .find(|m| m["args"][0] == 2)
            .unwrap_or_else(|| panic!("no phase 2: {ctx}"));
        assert_eq!(seen["args"][1], u64::from(code), "{ctx}");
    }
}

/// The check fails (and names the error) when the scenario does not say
/// the fault is expected: the same zero-length abuse, judged with no
/// expectation, fails the run by `device-error`.
#[test]
fn an_unexpected_device_error_fails_the_run_and_is_named() {
    let mut knobs = [0; NUM_KNOBS];
    knobs[knob::VARIANT] = 2;
    let mut opts = RunOptions::for_scenario(guest_image(), Scenario::Hostile, 0, &knobs);
    assert_eq!(opts.expect_fault, Some(DeviceError::ZeroLength));
    opts.expect_fault = None;
    opts.quiet = true;
    let r = vmm::run(&opts);
    assert!(
        matches!(r.report.outcome, Outcome::Failed { .. }),
        "{:?}",
        r.report.outcome
    );
    let f = r
        .report
        .findings
        .iter()
        .find(|f| f.oracle == "device-error")
        .expect("a device-error finding");
    assert!(f.detail.contains("zero-length (code 1)"), "{}", f.detail);
    let row = r
        .checks
        .iter()
        .find(|c| c.check == ROW)
        .expect("the device-error row");
    assert_eq!(row.status, Status::Failed);
    assert_eq!(row.failed_by, vec!["device-error".to_string()]);
    assert!(
        row.errors[0].starts_with("zero-length (code 1)")
            && row.errors[0].ends_with(", unexpected"),
        "{:?}",
        row.errors
    );
}

/// Seeded register and descriptor garbage (the fuzz variant): every run
/// ends normally and judged, and the report names every error the device
/// latched, one line per DeviceFault event, each unexpected (the fuzz
/// expects nothing). Over the seeds the device latches several kinds of
/// error, so the fuzz is not vacuous.
#[test]
fn fuzzed_registers_and_descriptors_end_normally_with_every_error_named() {
    let variant = format!("variant={FUZZ_VARIANT}");
    let mut codes = std::collections::BTreeSet::new();
    for seed in 0..12 {
        let seed = seed.to_string();
        let r = run(
            &guest_image(),
            &["--scenario", "hostile", "--knob", &variant, "--seed", &seed],
        );
        let ctx = format!("seed {seed}: {}\n{}", r.stdout, r.stderr);
        assert!(
            matches!(r.outcome(), "passed" | "failed"),
            "host did not end the run normally {ctx}"
        );
        let faults: Vec<u64> = r
            .events
            .iter()
            .filter(|e| e["event"] == "device-fault")
            .filter_map(|e| e["code"].as_u64())
            .collect();
        codes.extend(faults.iter().copied());
        let checks = r.report["checks"].as_array().cloned().unwrap_or_default();
        let row = checks
            .iter()
            .find(|c| c["check"] == ROW)
            .unwrap_or_else(|| panic!("no {ROW} row: {ctx}"));
        let errors = strings(&row["errors"]);
        assert_eq!(errors.len(), faults.len(), "{ctx}");
        for (e, code) in errors.iter().zip(&faults) {
            let name = device_error_name(*code as u32);
            assert!(
                e.starts_with(&format!("{name} (code {code})")) && e.ends_with(", unexpected"),
                "{e} {ctx}"
            );
        }
        // The device is the correct one: no rule only a device breaks.
        for e in r.events.iter().filter(|e| e["event"] == "violation") {
            let rule = e["rule"].as_str().unwrap_or("");
            assert!(
                !nic_model::fuzz::DEVICE_RULES.contains(&rule),
                "{rule}: {} {ctx}",
                e["detail"]
            );
        }
        if !faults.is_empty() {
            assert_eq!(
                (r.outcome(), &row["status"]),
                ("failed", &Value::from("FAILED")),
                "{ctx}"
            );
        }
    }
    assert!(codes.len() >= 3, "the fuzz provoked only {codes:?}");
    // The MSI-X table abuse, the doorbells with bus mastering off and the
    // tails moved back each showed in at least one seed.
    for e in [
        DeviceError::BadMsiAddress,
        DeviceError::BusMasterOff,
        DeviceError::BadTail,
    ] {
        assert!(
            codes.contains(&(e as u64)),
            "{e:?} never latched: {codes:?}"
        );
    }
}
