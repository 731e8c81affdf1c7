//! The real guest kernel (images/nicproof-guest, built by `make guest`)
//! on the real VMM: normal boot, both vCPUs, the control-port round trip,
//! and each bad-guest switch ending in its own outcome.

use nic_model::abi::{BAD_GUEST_FAULT_ADDR, BAD_GUEST_PANIC_MSG};
use nicproof_tests::*;

#[test]
fn boot_scenario_passes_on_both_vcpus_with_echo() {
    let r = run(
        &guest_image(),
        &[
            "--scenario",
            "boot",
            "--knob",
            "echo=0xc0ffee",
            "--timeout",
            "60",
        ],
    );
    assert_eq!((r.code, r.outcome()), (0, "passed"), "{r:#?}");
    assert!(
        r.report["stats"]["cpus_online"]
            .as_array()
            .is_some_and(|c| c.iter().any(|v| v == 1)),
        "no CpuOnline from cpu 1: {r:#?}"
    );
    let echo = r.markers("echo");
    assert_eq!(echo.len(), 1, "{:#?}", r.events);
    assert_eq!(echo[0]["args"][0], 0xc0ffee, "the ECHO knob came back");
    assert!(
        r.report["stats"]["boot_to_ready_ms"].as_f64().is_some(),
        "no Ready record"
    );
}

#[test]
fn empty_scenario_passes() {
    let r = run(&guest_image(), &["--scenario", "empty", "--timeout", "60"]);
    assert_eq!((r.code, r.outcome()), (0, "passed"), "{r:#?}");
}

#[test]
fn bad_guest_panic_is_a_guest_panic() {
    let r = bad_guest("panic", &["--timeout", "60"]);
    assert_eq!((r.code, r.outcome()), (2, "guest-panic"), "{r:#?}");
    assert_eq!(r.report["message"], BAD_GUEST_PANIC_MSG);
    assert!(
        r.report["location"]
            .as_str()
            .is_some_and(|l| l.contains(".rs:")),
        "{r:#?}"
    );
}

#[test]
fn bad_guest_page_fault_is_vector_14_at_the_known_address() {
    let r = bad_guest("page-fault", &["--timeout", "60"]);
    assert_eq!((r.code, r.outcome()), (3, "cpu-exception"), "{r:#?}");
    assert_eq!(r.report["vector"], 14);
    assert_eq!(r.report["cr2"], BAD_GUEST_FAULT_ADDR);
}

#[test]
fn bad_guest_triple_fault_is_a_triple_fault() {
    let r = bad_guest("triple-fault", &["--timeout", "60"]);
    assert_eq!((r.code, r.outcome()), (4, "triple-fault"), "{r:#?}");
    assert!(
        r.report["regs"]["rip"].as_u64().is_some_and(|rip| rip != 0),
        "{r:#?}"
    );
}

#[test]
fn bad_guest_endless_loop_times_out_within_its_limit() {
    let t = std::time::Instant::now();
    let r = bad_guest("endless-loop", &["--timeout", "2"]);
    assert_eq!((r.code, r.outcome()), (5, "timeout"), "{r:#?}");
    assert!(t.elapsed().as_secs_f64() < 15.0, "took {:?}", t.elapsed());
    assert!(
        r.report["last_serial"]
            .as_array()
            .is_some_and(|l| !l.is_empty()),
        "the timeout report shows the last serial lines: {r:#?}"
    );
}

/// A circular wait (each CPU idles, no deadline, until the other's flag):
/// the virtual clock's scheduler ends it as its own outcome naming both
/// vCPUs' rips, at once; the wall clock can only time out.
#[test]
fn bad_guest_deadlock_is_exit_8_with_both_rips() {
    let t = std::time::Instant::now();
    let r = bad_guest("deadlock", &["--timeout", "60"]);
    assert_eq!((r.code, r.outcome()), (8, "deadlock"), "{r:#?}");
    assert!(t.elapsed().as_secs_f64() < 30.0, "took {:?}", t.elapsed());
    let cpus = r.report["cpus"]
        .as_array()
        .expect("deadlock names its vCPUs");
    let ids: Vec<u64> = cpus.iter().filter_map(|c| c["cpu"].as_u64()).collect();
    assert_eq!(ids, [0, 1], "{r:#?}");
    assert!(
        cpus.iter()
            .all(|c| c["rip"].as_u64().is_some_and(|rip| rip != 0)),
        "{r:#?}"
    );
    assert!(r.stdout.contains("cpu 1 idle at rip 0x"), "{}", r.stdout);
    let wall = bad_guest("deadlock", &["--clock", "wall", "--timeout", "2"]);
    assert_eq!((wall.code, wall.outcome()), (5, "timeout"), "{wall:#?}");
}

#[test]
fn bench_prints_min_median_max_per_metric() {
    let out = nicproof_with_guest(&["bench", "--scenario", "empty", "--runs", "3"]);
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{s}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(s.contains("metric (3 runs)") && s.contains("median"), "{s}");
    for metric in [
        "vm set-up (ms)",
        "boot-to-ready (ms)",
        "whole run (ms)",
        "vm exits, total",
        "exits: io-out",
    ] {
        let line = s
            .lines()
            .map(str::trim_start)
            .find(|l| l.starts_with(metric))
            .unwrap_or_else(|| panic!("{metric} missing:\n{s}"));
        let nums: Vec<f64> = line[metric.len()..]
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect();
        assert_eq!(nums.len(), 3, "{line}");
        assert!(
            nums[0] <= nums[1] && nums[1] <= nums[2],
            "min <= median <= max: {line}"
        );
    }
}
