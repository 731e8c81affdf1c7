//! The scenario matrix: every (case, seed) of [`crate::scenarios::cases`] run as
//! a real VM and judged against the case's [`crate::scenarios::Expect`].
//!
//! Each run is a child process (`nicproof run ... --json FILE --quiet`),
//! `jobs` at a time. Children rather than threads because a run owns
//! process-global state: the vCPU kick is a process-wide signal handler,
//! and a host bug that panics, hangs or leaks in one VM must cost that
//! case only, not the matrix. A child that outlives its scenario's
//! timeout by [`GRACE`] is killed and reported as a miss.
//!
//! Judging (see `crate::judge::job`): a `Pass` case must pass; a `Caught(rules)`
//! case must end `failed` with at least one finding naming one of
//! `rules` of the catalogue (a host oracle, a device monitor rule, or `guest:<prefix>` for
//! the guest's own oracle texts and its failing verdict). Anything else,
//! including a timeout or panic, is a miss, with the run's reasons.
//!
//! Three files: `jobs.rs` (the cases as jobs: seeds, repeats,
//! partitions), `runner.rs` (the children, `jobs` at a time) and
//! `report.rs` (each job's result, the matrix table, JSON, JUnit and the
//! clock comparison).

mod jobs;
mod report;
mod runner;

pub use jobs::*;
pub use report::*;
pub use runner::*;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::job as judge;
    use crate::outcome::Stats;
    use crate::outcome::{Finding, Outcome, Report};
    use crate::scenarios::{self, Case, Expect};
    use nic_model::abi::DriverMutant;
    use nic_model::rules::Rule;
    use std::collections::BTreeMap;

    fn report(outcome: Outcome, findings: &[(&str, &str)]) -> Report {
        Report {
            scenario: "default".into(),
            seed: 0,
            driver_mutant: "none".into(),
            device_mutant: "none".into(),
            outcome,
            stats: Stats::default(),
            findings: findings
                .iter()
                .map(|(o, d)| Finding {
                    oracle: o.to_string(),
                    seq: 1,
                    detail: d.to_string(),
                })
                .collect(),
            serial: String::new(),
            locations: vec![],
            settings: Default::default(),
        }
    }

    fn failed() -> Outcome {
        Outcome::Failed {
            reasons: vec!["x".into()],
        }
    }

    #[test]
    fn pass_and_caught_are_judged_by_outcome_and_oracle_name() {
        let pass = Expect::Pass;
        let by = Expect::Caught(&[Rule::DmaMaps, Rule::GuestBql]);
        assert_eq!(
            judge(&pass, &report(Outcome::Passed, &[]), false).0,
            Status::Passed
        );
        assert_eq!(
            judge(&pass, &report(failed(), &[]), false).0,
            Status::Failed
        );
        let (s, m, _) = judge(&by, &report(failed(), &[("dma-maps", "leak")]), false);
        assert_eq!((s, m), (Status::Caught, vec!["dma-maps".to_string()]));
        // Guest prefixes match the guest's oracle texts and its verdict only.
        assert_eq!(
            judge(
                &by,
                &report(failed(), &[("guest-oracles", "bql: over")]),
                false
            )
            .0,
            Status::Caught
        );
        assert_eq!(
            judge(
                &by,
                &report(failed(), &[("guest-verdict", "bql: x")]),
                false
            )
            .0,
            Status::Caught
        );
        assert_eq!(
            judge(&by, &report(failed(), &[("skb-ledger", "bql: x")]), false).0,
            Status::Missed
        );
        // Wrong oracle, a pass, or another ending is a miss, with reasons.
        let (s, _, why) = judge(&by, &report(failed(), &[("no-busy", "busy")]), false);
        assert_eq!(s, Status::Missed);
        assert!(
            why[0].contains("no finding names dma-maps|guest:bql") && why[0].contains("no-busy"),
            "{why:?}"
        );
        assert_eq!(
            judge(&by, &report(Outcome::Passed, &[]), false).0,
            Status::Missed
        );
        let to = Outcome::Timeout {
            limit_secs: 1.0,
            last_serial: vec![],
            last_events: vec![],
        };
        let (s, _, why) = judge(&by, &report(to, &[("dma-maps", "x")]), false);
        assert_eq!(s, Status::Missed);
        assert!(why[0].contains("timeout"), "{why:?}");
    }

    #[test]
    fn the_stub_verdict_is_skipped_only_when_asked() {
        let stub = report(
            failed(),
            &[(
                "guest-verdict",
                "scenario tx-timeout is not implemented yet",
            )],
        );
        assert_eq!(judge(&Expect::Pass, &stub, false).0, Status::Failed);
        assert_eq!(
            judge(&Expect::Pass, &stub, true).0,
            Status::SkippedUnimplemented
        );
        assert_eq!(
            judge(&Expect::Caught(&[Rule::DmaMaps]), &stub, true).0,
            Status::SkippedUnimplemented
        );
        let real = report(failed(), &[("guest-verdict", "lost wake")]);
        assert_eq!(judge(&Expect::Pass, &real, true).0, Status::Failed);
    }

    #[test]
    fn uncovered_lists_scenarios_without_a_case() {
        use nic_model::abi::Scenario;
        let u = uncovered(&[Case::pass(Scenario::Default, 0)]);
        assert!(u.contains(&"smp".to_string()) && !u.contains(&"default".to_string()));
        assert!(!u.contains(&"boot".to_string()) && !u.contains(&"empty".to_string()));
    }

    #[test]
    fn partitions_cover_every_job_exactly_once() {
        let all = jobs(&scenarios::cases());
        let names: Vec<String> = all.iter().map(Job::name).collect();
        let mut uniq = names.clone();
        uniq.sort();
        uniq.dedup();
        assert_eq!(uniq.len(), names.len(), "job names are unique");
        let twice = repeated(all.clone(), 2);
        assert_eq!(twice.len(), 2 * all.len());
        assert_eq!(twice[0].name(), names[0]);
        assert_eq!(twice[all.len()].name(), format!("{}~1", names[0]));
        for n in 1..=5 {
            let mut seen: Vec<String> = (1..=n)
                .flat_map(|k| partition(all.clone(), k, n))
                .map(|j| j.name())
                .collect();
            seen.sort();
            assert_eq!(seen, uniq, "partitions of {n}");
        }
        assert_eq!(parse_partition("2/3"), Ok((2, 3)));
        assert!(
            parse_partition("0/3").is_err()
                && parse_partition("4/3").is_err()
                && parse_partition("x").is_err()
        );
    }

    #[test]
    fn summary_shows_the_matrix_and_junit_escapes() {
        let r = |dm: DriverMutant, status, expect: &str| JobResult {
            name: format!("default:{}:none#0", dm.name()),
            scenario: "default".into(),
            variant: 0,
            driver_mutant: dm.name().into(),
            device_mutant: "none".into(),
            seed: 0,
            expect: expect.into(),
            status,
            outcome: "failed".into(),
            matched: vec![],
            reasons: vec!["a <b> & \"c\"".into()],
            secs: 0.5,
            digest: String::new(),
        };
        let s = Summary {
            jobs: 2,
            wall_secs: 1.0,
            results: vec![
                r(DriverMutant::None, Status::Passed, "pass"),
                r(
                    DriverMutant::NoUnmapAtStop,
                    Status::Missed,
                    "caught by dma-maps",
                ),
            ],
            loom: LOOM
                .iter()
                .map(|(m, f)| (m.name().to_string(), f.to_string()))
                .collect(),
            uncovered: vec!["soak".into()],
        };
        let h = s.human();
        assert!(
            h.contains("NOT IN THE MATRIX: 1 scenario(s) have no case yet: soak"),
            "{h}"
        );
        assert!(
            h.contains("MISSED") && h.contains("loom") && h.contains("no-unmap-at-stop"),
            "{h}"
        );
        assert!(h.contains("1 passed, 0 caught, 0 failed, 1 missed"), "{h}");
        assert!(!s.ok());
        let j = s.junit();
        assert!(
            j.contains("tests=\"2\" failures=\"1\"")
                && j.contains("a &lt;b&gt; &amp; &quot;c&quot;"),
            "{j}"
        );
        assert!(!j.contains("<b>"));
    }

    #[test]
    fn clock_comparison_gives_medians_and_virtual_over_wall_ratios() {
        use crate::sim::ClockMode;
        let summary = |wall_secs: f64, a: f64, b: f64, missed: bool| Summary {
            jobs: 2,
            wall_secs,
            results: [
                ("a#0", a, Status::Passed),
                (
                    "b#0",
                    b,
                    if missed {
                        Status::Missed
                    } else {
                        Status::Caught
                    },
                ),
            ]
            .into_iter()
            .map(|(name, secs, status)| JobResult {
                name: name.into(),
                scenario: "default".into(),
                variant: 0,
                driver_mutant: "none".into(),
                device_mutant: "none".into(),
                seed: 0,
                expect: "pass".into(),
                status,
                outcome: "passed".into(),
                matched: vec![],
                reasons: vec![],
                secs,
                digest: String::new(),
            })
            .collect(),
            loom: BTreeMap::new(),
            uncovered: vec![],
        };
        let runs = [
            (ClockMode::Wall, summary(10.0, 2.0, 8.0, true)),
            (ClockMode::Virtual, summary(4.0, 1.0, 3.0, false)),
            (ClockMode::Wall, summary(12.0, 2.0, 10.0, true)),
            (ClockMode::Virtual, summary(6.0, 1.0, 5.0, false)),
        ];
        let t = clock_comparison(&runs);
        assert!(t.contains("2 jobs, 2 at a time, 2 round(s) each"), "{t}");
        // Whole matrix: medians 11 and 5, ratio 0.45.
        assert!(
            t.lines().any(|l| l.starts_with("whole matrix")
                && l.contains("11.00")
                && l.contains("5.00")
                && l.ends_with("0.45")),
            "{t}"
        );
        assert!(
            t.contains("longest jobs, wall: b#0 9.00 s, a#0 2.00 s"),
            "{t}"
        );
        assert!(
            t.contains("round 2, wall: 1 passed, 0 caught, 0 failed, 1 missed"),
            "{t}"
        );
        assert!(
            t.contains("round 1, virtual: 1 passed, 1 caught, 0 failed, 0 missed"),
            "{t}"
        );
    }

    #[test]
    fn junit_names_are_stable_outcomes_are_messages_and_host_errors_are_errors() {
        let r = |name: &str, status, outcome: &str, expect: &str| JobResult {
            name: name.into(),
            scenario: "default".into(),
            variant: 0,
            driver_mutant: "none".into(),
            device_mutant: "none".into(),
            seed: 0,
            expect: expect.into(),
            status,
            outcome: outcome.into(),
            matched: vec!["dma-maps".into()],
            reasons: vec!["why".into()],
            secs: 0.5,
            digest: String::new(),
        };
        let s = Summary {
            jobs: 1,
            wall_secs: 1.0,
            results: vec![
                r(
                    "default:no-unmap-at-stop:none#0",
                    Status::Caught,
                    "failed",
                    "caught by dma-maps",
                ),
                r("default:none:none#0", Status::Failed, "host-error", "pass"),
                r("smp:none:none#0", Status::Failed, "no-report", "pass"),
                r("default:none:none#1", Status::Failed, "failed", "pass"),
            ],
            loom: BTreeMap::new(),
            uncovered: vec![],
        };
        let j = s.junit();
        for name in [
            "default:no-unmap-at-stop:none#0",
            "default:none:none#0",
            "smp:none:none#0",
        ] {
            assert!(
                j.contains(&format!("name=\"{name}\"")),
                "stable name {name}: {j}"
            );
        }
        assert!(
            !j.contains("name=\"default:no-unmap-at-stop:none#0 ("),
            "{j}"
        );
        assert!(j.contains("failures=\"1\" errors=\"2\""), "{j}");
        assert_eq!(j.matches("<error ").count(), 2, "{j}");
        assert!(
            j.contains("caught by dma-maps"),
            "the outcome is in the message: {j}"
        );
    }
}
