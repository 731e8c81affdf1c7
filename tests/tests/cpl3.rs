//! The driver task at CPL3 (`--cpl 3`): the same run as at CPL0, event for
//! event, and the task's faults reported as the kernel's are.

use nic_model::abi::{BAD_GUEST_FAULT_ADDR, BAD_GUEST_PANIC_MSG};
use nicproof_tests::*;

/// Page-fault error code bit 2: the access came from CPL3.
const PF_USER: u64 = 1 << 2;

#[test]
fn default_at_cpl3_replays_the_cpl0_event_log_exactly() {
    let args = [
        "--scenario",
        "default",
        "--knob",
        "frames=24",
        "--timeout",
        "60",
    ];
    let k = run(&guest_image(), &[&args[..], &["--cpl", "0"]].concat());
    let u = run(&guest_image(), &[&args[..], &["--cpl", "3"]].concat());
    assert_eq!((k.code, k.outcome()), (0, "passed"), "{k:#?}");
    assert_eq!((u.code, u.outcome()), (0, "passed"), "{u:#?}");
    assert_eq!(u.report["knobs"]["cpl"], 3, "{:#?}", u.report);
    assert!(k.report["knobs"].get("cpl").is_none(), "{:#?}", k.report);
    // Event 0 is the run's identity (its knobs differ); everything after
    // it, virtual times included, must be the same.
    assert!(k.events.len() > 100, "{} events", k.events.len());
    assert_eq!(k.events.len(), u.events.len());
    for (a, b) in k.events.iter().zip(&u.events).skip(1) {
        assert_eq!(a, b, "first difference between CPL0 and CPL3");
    }
}

#[test]
fn the_report_says_which_privilege_level_ran() {
    let out = nicproof_with_guest(&["run", "--scenario", "empty", "--cpl", "3"]);
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{s}");
    assert!(s.contains("driver at CPL3 (user task)"), "{s}");
    let bad = nicproof_with_guest(&["run", "--scenario", "empty", "--cpl", "2"]);
    assert_eq!(
        bad.status.code(),
        Some(7),
        "--cpl 2 is a bad command line (exit 7)"
    );
}

#[test]
fn a_page_fault_in_the_task_is_reported_as_a_user_access() {
    let r = bad_guest("page-fault", &["--cpl", "3", "--timeout", "60"]);
    assert_eq!((r.code, r.outcome()), (3, "cpu-exception"), "{r:#?}");
    assert_eq!(r.report["vector"], 14);
    assert_eq!(r.report["cr2"], BAD_GUEST_FAULT_ADDR);
    // The CPU says the faulting access was made at CPL3: the task really
    // runs there.
    let code = r.report["error_code"].as_u64().unwrap_or(0);
    assert_ne!(code & PF_USER, 0, "error code {code:#x}: not a user access");
}

#[test]
fn a_panic_in_the_task_is_a_guest_panic() {
    let r = bad_guest("panic", &["--cpl", "3", "--timeout", "60"]);
    assert_eq!((r.code, r.outcome()), (2, "guest-panic"), "{r:#?}");
    assert_eq!(r.report["message"], BAD_GUEST_PANIC_MSG);
}

#[test]
fn both_vcpus_run_the_task_at_cpl3() {
    for sc in ["boot", "smp"] {
        let r = run(
            &guest_image(),
            &["--scenario", sc, "--cpl", "3", "--timeout", "60"],
        );
        assert_eq!((r.code, r.outcome()), (0, "passed"), "{sc}: {r:#?}");
    }
}
