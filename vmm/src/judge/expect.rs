//! A matrix job's report against its case's expectation: a `Pass` case
//! must pass; a `Caught(rules)` case must end `failed` with at least one
//! finding naming one of `rules` of the catalogue (a host oracle, a
//! device monitor rule, or `guest:<prefix>` for the guest's own oracle
//! texts and its failing verdict). Anything else, including a timeout or
//! a panic, is a miss, with the run's reasons.

use nic_model::rules::Rule;

use crate::matrix::{Status, UNIMPLEMENTED};
use crate::outcome::{Finding, Outcome, Report};
use crate::scenarios::Expect;

/// A case's expectation as the matrix prints it.
pub fn expect_text(e: &Expect) -> String {
    match e {
        Expect::Pass => "pass".into(),
        Expect::Caught(by) => format!("caught by {}", rule_names(by)),
    }
}

/// Whether `f` is a finding of the expected `rule`: one named by it, or
/// for a guest rule (`guest:<prefix>`) a guest finding whose text starts
/// with its prefix.
pub fn names(rule: Rule, f: &Finding) -> bool {
    match rule.guest_prefix() {
        Some(prefix) => {
            (f.oracle == Rule::GuestOracles.name() || f.oracle == Rule::GuestVerdict.name())
                && f.detail.starts_with(prefix)
        }
        None => f.oracle == rule.name(),
    }
}

/// The expected rules as the matrix prints them: `a|b`.
pub fn rule_names(by: &[Rule]) -> String {
    by.iter().map(|r| r.name()).collect::<Vec<_>>().join("|")
}

/// An outcome's reasons, one line each, as a job result shows them.
pub fn reasons_of(o: &Outcome) -> Vec<String> {
    match o {
        Outcome::Passed => vec![],
        Outcome::Failed { reasons } => reasons.clone(),
        Outcome::GuestPanic { message, location } => {
            vec![format!("guest panic at {location}: {message}")]
        }
        Outcome::CpuException {
            vector,
            rip,
            cr2,
            cpu,
            ..
        } => vec![format!(
            "cpu {cpu}: exception {vector} ({}) rip {rip:#x} cr2 {cr2:#x}",
            crate::outcome::exception_name(*vector)
        )],
        Outcome::TripleFault { cpu, regs } => {
            vec![format!("cpu {cpu} triple fault at rip {:#x}", regs.rip)]
        }
        Outcome::Deadlock { cpus } => {
            let at: Vec<String> = cpus
                .iter()
                .map(|c| format!("cpu {} at rip {:#x}", c.cpu, c.rip))
                .collect();
            vec![format!(
                "scheduler deadlock: every vCPU idles with no deadline ({})",
                at.join(", ")
            )]
        }
        Outcome::Timeout {
            limit_secs,
            last_serial,
            ..
        } => {
            let mut v = vec![format!("timeout: no power-off within {limit_secs} s")];
            v.extend(
                last_serial
                    .iter()
                    .rev()
                    .take(3)
                    .rev()
                    .map(|l| format!("serial| {l}")),
            );
            v
        }
        Outcome::HostError { message } => vec![format!("host error: {message}")],
        Outcome::GdbCannotListen { message } => vec![message.clone()],
    }
}

/// Judge a matrix job's finished run against its case's `expect`:
/// (status, the expected rules that named it, reasons).
/// `skip_unimplemented` turns a run whose guest verdict is the stub's
/// into SkippedUnimplemented.
pub fn job(
    expect: &Expect,
    report: &Report,
    skip_unimplemented: bool,
) -> (Status, Vec<String>, Vec<String>) {
    let reasons = reasons_of(&report.outcome);
    let stub = report
        .findings
        .iter()
        .any(|f| f.oracle == Rule::GuestVerdict.name() && f.detail.contains(UNIMPLEMENTED));
    match expect {
        Expect::Pass if report.outcome == Outcome::Passed => (Status::Passed, vec![], vec![]),
        Expect::Pass if stub && skip_unimplemented => {
            (Status::SkippedUnimplemented, vec![], reasons)
        }
        Expect::Pass => (Status::Failed, vec![], reasons),
        Expect::Caught(by) => {
            let failed = matches!(report.outcome, Outcome::Failed { .. });
            let matched: Vec<String> = by
                .iter()
                .filter(|&&r| failed && report.findings.iter().any(|f| names(r, f)))
                .map(|r| r.name().to_string())
                .collect();
            if !matched.is_empty() {
                return (Status::Caught, matched, reasons);
            }
            if stub && skip_unimplemented {
                return (Status::SkippedUnimplemented, vec![], reasons);
            }
            let why = match &report.outcome {
                Outcome::Passed => "the run passed: nothing caught the mutant".to_string(),
                Outcome::Failed { .. } => {
                    let mut found: Vec<&str> =
                        report.findings.iter().map(|f| f.oracle.as_str()).collect();
                    found.dedup();
                    format!(
                        "failed, but no finding names {}: found [{}]",
                        rule_names(by),
                        found.join(", ")
                    )
                }
                other => format!("ended {} instead of failed", other.name()),
            };
            let mut v = vec![why];
            v.extend(reasons);
            (Status::Missed, vec![], v)
        }
    }
}
