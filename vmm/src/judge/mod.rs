//! Judging a run, in one place:
//!
//! - [`outcome`]: how the VM ended and what its log holds (the guest's
//!   verdict, the device monitor's violations, control protocol errors);
//! - [`run`]: then the host oracles (`crate::oracles`) over the whole log,
//!   each finding named by its rule of the catalogue
//!   (`nic_model::rules::Rule`), and the report's table of checks
//!   ([`checks`]) laid out from them;
//! - [`job`]: a matrix job's report against its case's expectation
//!   (`expect.rs`).

pub mod checks;
mod expect;

pub use expect::{expect_text, job, names, reasons_of, rule_names};

use nic_model::abi::DeviceError;
use nic_model::events::{Event, EventKind, EventLog};
use nic_model::rules::Rule;

use crate::control::End;
use crate::oracles;
use crate::outcome::{Finding, Outcome};
use crate::vm::RunOptions;

/// Turn how the run ended and what the log holds (the guest's verdict,
/// the device monitor's violations, control protocol errors) into the
/// outcome.
pub fn outcome(end: End, events: &EventLog, protocol_errors: &[String]) -> Outcome {
    match end {
        End::Panic { message, location } => Outcome::GuestPanic { message, location },
        End::Exception {
            vector,
            error_code,
            rip,
            cr2,
            cpu,
        } => Outcome::CpuException {
            vector,
            error_code,
            rip,
            cr2,
            cpu,
        },
        End::TripleFault { cpu, regs } => Outcome::TripleFault { cpu, regs },
        End::HostError(message) => Outcome::HostError { message },
        End::Timeout => Outcome::Timeout {
            limit_secs: 0.0,
            last_serial: vec![],
            last_events: events.tail(10),
        },
        End::Failed(reason) => Outcome::Failed {
            reasons: vec![reason],
        },
        End::Deadlock { cpus } => Outcome::Deadlock {
            cpus: cpus
                .into_iter()
                .map(|(cpu, rip)| crate::outcome::IdleCpu { cpu, rip })
                .collect(),
        },
        End::PowerOff(code) => {
            let mut reasons = Vec::new();
            if code != 0 {
                reasons.push(format!("guest powered off with exit code {code}"));
            }
            let mut verdicts = 0;
            for e in events.snapshot() {
                match e.kind {
                    EventKind::Verdict { pass, text } => {
                        verdicts += 1;
                        if !pass {
                            reasons.push(format!("guest verdict: fail: {text}"));
                        }
                    }
                    EventKind::Violation { rule, detail } => {
                        reasons.push(format!("violation #{} {rule}: {detail}", e.seq));
                    }
                    _ => {}
                }
            }
            if verdicts == 0 {
                reasons.push("the guest sent no verdict".into());
            }
            reasons.extend(
                protocol_errors
                    .iter()
                    .map(|e| format!("control protocol error: {e}")),
            );
            if reasons.is_empty() {
                Outcome::Passed
            } else {
                Outcome::Failed { reasons }
            }
        }
    }
}

/// What the host's NIC wrapper knows at the end of a run.
pub struct NicEnd {
    /// DMA ranges the device still holds mapped.
    pub live_maps: usize,
    /// An output (the capture) that could not be written in full.
    pub output_error: Option<String>,
}

/// A judged run.
pub struct Judged {
    /// The run's outcome after the host oracles (a pass may become
    /// `Failed`; a capture that lost frames makes it a `HostError`).
    pub outcome: Outcome,
    /// Every finding of a failed run, named by its rule (empty otherwise).
    pub findings: Vec<Finding>,
    /// The table of checks (empty for a run without a NIC).
    pub checks: Vec<checks::Check>,
}

/// Judge a finished run: its [`outcome`], then, for a run with a NIC,
/// the host oracles and the table of checks. A capture that lost frames
/// is a host failure whatever the run showed (nothing lost silently).
pub fn run(outcome: Outcome, log: &[Event], opts: &RunOptions, nic: Option<NicEnd>) -> Judged {
    let mut o = outcome;
    let mut findings = Vec::new();
    let has_nic = nic.is_some();
    if let Some(nic) = nic {
        let eeprom = opts.nic.as_ref().map(|c| c.eeprom_mac());
        let expect = Expected {
            allow_busy: opts.allow_busy,
            fault: opts.expect_fault,
            tx_timeout: opts.expect_tx_timeout,
        };
        (o, findings) = with_oracles(o, log, eeprom, nic.live_maps, &expect);
        if let Some(message) = nic.output_error {
            o = Outcome::HostError { message };
        }
    }
    if matches!(o, Outcome::Failed { .. }) {
        findings.splice(0..0, log_findings(log));
    } else {
        findings.clear();
    }
    let checks = if has_nic {
        checks::table(log, &o, &findings, opts.allow_busy)
    } else {
        Vec::new()
    };
    Judged {
        outcome: o,
        findings,
        checks,
    }
}

/// What the scenario provokes on purpose (`scenarios::Setup`).
struct Expected {
    allow_busy: bool,
    fault: Option<DeviceError>,
    tx_timeout: bool,
}

/// Add the host oracles' findings to a finished run's outcome. Only runs
/// that ended normally (passed or failed) are judged: a panic, fault or
/// timeout already says what went wrong.
fn with_oracles(
    outcome: Outcome,
    log: &[Event],
    eeprom: Option<[u8; 6]>,
    live_maps: usize,
    expect: &Expected,
) -> (Outcome, Vec<Finding>) {
    let mut reasons = match outcome {
        Outcome::Passed => Vec::new(),
        Outcome::Failed { reasons } => reasons,
        other => return (other, Vec::new()),
    };
    let mut named = Vec::new();
    let mut findings = oracles::check_all(log, !expect.allow_busy);
    findings.extend(oracles::device_error(log, expect.fault));
    findings.extend(oracles::tx_timeout(log, expect.tx_timeout));
    if let Some(mac) = eeprom {
        findings.extend(oracles::mac_address(log, mac));
    }
    for f in findings {
        let r = format!("oracle {}: {} (event #{})", f.oracle, f.detail, f.seq);
        if !reasons.contains(&r) {
            reasons.push(r);
        }
        named.push(Finding {
            oracle: f.oracle.name().into(),
            seq: f.seq,
            detail: f.detail,
        });
    }
    // The device's own count of live maps, when the driver's markers
    // (the dma-maps ledger) show none live: the two disagree.
    if live_maps > 0 && oracles::live_dma_maps(log) == 0 {
        let detail = format!("{live_maps} DMA range(s) still mapped at the end");
        reasons.push(format!("device monitor: {detail}"));
        let seq = log.last().map_or(0, |e| e.seq);
        named.push(Finding {
            oracle: Rule::DeviceLiveMaps.name().into(),
            seq,
            detail,
        });
    }
    if reasons.is_empty() {
        (Outcome::Passed, named)
    } else {
        (Outcome::Failed { reasons }, named)
    }
}

/// The findings [`outcome`] turned into reasons, named: device monitor
/// violations by rule and a failing guest verdict as `guest-verdict`.
pub fn log_findings(log: &[Event]) -> Vec<Finding> {
    log.iter()
        .filter_map(|e| match &e.kind {
            EventKind::Violation { rule, detail } => Some(Finding {
                oracle: rule.clone(),
                seq: e.seq,
                detail: detail.clone(),
            }),
            EventKind::Verdict { pass: false, text } => Some(Finding {
                oracle: Rule::GuestVerdict.name().into(),
                seq: e.seq,
                detail: text.clone(),
            }),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use nic_model::events::Source;

    fn log(kinds: Vec<EventKind>) -> EventLog {
        let l = EventLog::new();
        for k in kinds {
            l.push(Source::Guest, k);
        }
        l
    }

    #[test]
    fn pass_needs_verdict_poweroff_zero_and_no_violation() {
        let ok = log(vec![EventKind::Verdict {
            pass: true,
            text: String::new(),
        }]);
        assert_eq!(outcome(End::PowerOff(0), &ok, &[]), Outcome::Passed);
        let Outcome::Failed { reasons } = outcome(End::PowerOff(3), &ok, &["bad".into()]) else {
            panic!()
        };
        assert_eq!(reasons.len(), 2);
        let none = log(vec![]);
        assert!(matches!(
            outcome(End::PowerOff(0), &none, &[]),
            Outcome::Failed { .. }
        ));
        let viol = log(vec![
            EventKind::Verdict {
                pass: true,
                text: String::new(),
            },
            EventKind::Violation {
                rule: "dma-after-stop".into(),
                detail: "x".into(),
            },
        ]);
        let Outcome::Failed { reasons } = outcome(End::PowerOff(0), &viol, &[]) else {
            panic!()
        };
        assert!(reasons[0].contains("dma-after-stop"), "{reasons:?}");
        let fail = log(vec![EventKind::Verdict {
            pass: false,
            text: "lost frame".into(),
        }]);
        assert!(matches!(
            outcome(End::PowerOff(0), &fail, &[]),
            Outcome::Failed { .. }
        ));
    }

    /// device-live-maps fires only when the device holds maps the
    /// dma-maps ledger does not (typed, where it once matched a reason's
    /// text).
    #[test]
    fn device_live_maps_only_where_the_ledger_shows_none() {
        use nic_model::abi::Marker;
        let marker = |m: Marker, args: &[u64]| EventKind::Marker {
            marker: m.name().into(),
            args: args.to_vec(),
            text: String::new(),
            cpu: None,
        };
        let verdict = EventKind::Verdict {
            pass: true,
            text: String::new(),
        };
        let expect = Expected {
            allow_busy: true,
            fault: None,
            tx_timeout: false,
        };
        let kinds = |leak: bool| {
            let mut v = vec![marker(Marker::DmaMap, &[0x1000, 64, 0])];
            if !leak {
                v.push(marker(Marker::DmaUnmap, &[0x1000, 64]));
            }
            v.push(verdict.clone());
            v
        };
        let oracles_of = |leak: bool, device_maps: usize| {
            let l = log(kinds(leak)).snapshot();
            let (_, f) = with_oracles(Outcome::Passed, &l, None, device_maps, &expect);
            f.into_iter().map(|f| f.oracle).collect::<Vec<_>>()
        };
        // The ledger shows the leak: dma-maps alone.
        let leak = oracles_of(true, 1);
        assert!(
            leak.contains(&"dma-maps".to_string())
                && !leak.contains(&"device-live-maps".to_string()),
            "{leak:?}"
        );
        // The ledger is clean but the device holds a map: device-live-maps.
        assert!(oracles_of(false, 1).contains(&"device-live-maps".to_string()));
        assert!(!oracles_of(false, 0).contains(&"device-live-maps".to_string()));
    }
}
