//! The scenario matrix: every (case, seed) of [`scenarios::cases`] run as
//! a real VM and judged against the case's [`Expect`].
//!
//! Each run is a child process (`nicproof run ... --json FILE --quiet`),
//! `jobs` at a time. Children rather than threads because a run owns
//! process-global state: the vCPU kick is a process-wide signal handler,
//! and a host bug that panics, hangs or leaks in one VM must cost that
//! case only, not the matrix. A child that outlives its scenario's
//! timeout by [`GRACE`] is killed and reported as a miss.
//!
//! Judging (see `crate::judge::job`): a `Pass` case must pass; a `Caught(rules)`
//! case must end `failed` with at least one [`Finding`] naming one of
//! `rules` of the catalogue (a host oracle, a device monitor rule, or `guest:<prefix>` for
//! the guest's own oracle texts and its failing verdict). Anything else,
//! including a timeout or panic, is a miss, with the run's reasons.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nic_model::abi::{DeviceMutant, DriverMutant};
use serde::{Deserialize, Serialize};

use crate::judge::{self, expect_text};
use crate::outcome::Report;
use crate::scenarios::{self, Case, Expect};

/// How long a child may outlive its scenario's own timeout (the VMM
/// enforces that one itself; this only catches a hung host).
pub const GRACE: Duration = Duration::from_secs(30);

/// The verdict text of a scenario whose guest body is still a stub
/// (guest-driver/src/scenarios/{lifecycle,queueing}.rs).
pub const UNIMPLEMENTED: &str = "is not implemented yet";

/// Mutants a model checker catches rather than a VM: the loom model of
/// the stop/wake protocol (guest-driver/tests/loom_stop_wake.rs, run by
/// `make test`). Shown as `loom` in the matrix; never run here, and a
/// test checks each named function exists and expects the model to fail.
pub const LOOM: &[(DriverMutant, &str)] = &[
    (DriverMutant::NoFence, "missing_fence_loses_a_wake"),
    (DriverMutant::NoRecheck, "missing_recheck_loses_a_wake"),
    (
        DriverMutant::WakeInverted,
        "inverted_wake_condition_never_wakes",
    ),
    (
        DriverMutant::ThresholdOffByOne,
        "gt_for_ge_in_wake_misses_exact_threshold",
    ),
    (
        DriverMutant::ConsIndexLate,
        "consumer_index_stored_after_the_macro_loses_a_wake",
    ),
];

/// The loom test file [`LOOM`] names functions of (relative to the workspace).
pub const LOOM_FILE: &str = "guest-driver/tests/loom_stop_wake.rs";

/// One VM run of the matrix: a case and one of its seeds.
#[derive(Clone, Debug)]
pub struct Job {
    pub case: Case,
    pub seed: u64,
    /// Which repetition (`--repeat`), 0 for the first.
    pub repeat: u32,
}

impl Job {
    /// `scenario[/variant]:driver-mutant:device-mutant#seed`, unique in the matrix.
    pub fn name(&self) -> String {
        match self.repeat {
            0 => format!("{}#{}", self.case.name(), self.seed),
            r => format!("{}#{}~{r}", self.case.name(), self.seed),
        }
    }

    /// Arguments of the `nicproof run` child.
    pub fn run_args(&self, guest: &Path, json: &Path) -> Vec<String> {
        let c = &self.case;
        vec![
            "run".into(),
            "--scenario".into(),
            c.scenario.name().into(),
            "--mutant".into(),
            c.driver_mutant.name().into(),
            "--device-mutant".into(),
            c.device_mutant.name().into(),
            "--seed".into(),
            self.seed.to_string(),
            "--knob".into(),
            format!("variant={}", c.variant),
            "--guest".into(),
            guest.display().to_string(),
            "--json".into(),
            json.display().to_string(),
            "--quiet".into(),
        ]
    }
}

/// Every (case, seed) in matrix order.
pub fn jobs(cases: &[Case]) -> Vec<Job> {
    cases
        .iter()
        .flat_map(|c| {
            (c.first_seed..c.first_seed + c.seeds.max(1)).map(move |seed| Job {
                case: c.clone(),
                seed,
                repeat: 0,
            })
        })
        .collect()
}

/// `jobs` `n` times over (repetitions 0..n, each a separate job named
/// `...#seed~r`), to find cases that pass or catch only some of the time:
/// the matrix cell then shows how many of the runs were good.
pub fn repeated(jobs: Vec<Job>, n: u32) -> Vec<Job> {
    (0..n.max(1))
        .flat_map(|r| {
            jobs.iter().map(move |j| Job {
                repeat: r,
                ..j.clone()
            })
        })
        .collect()
}

/// Partition `k` of `n` (1-based, as cargo-nextest's `count:K/N`): every
/// n-th job starting at the k-th. The partitions are disjoint and cover
/// every job; round-robin keeps slow seeds of one case apart.
pub fn partition(jobs: Vec<Job>, k: usize, n: usize) -> Vec<Job> {
    jobs.into_iter()
        .enumerate()
        .filter(|(i, _)| n <= 1 || i % n == k - 1)
        .map(|(_, j)| j)
        .collect()
}

/// Parse `K/N` with 1 <= K <= N.
pub fn parse_partition(s: &str) -> Result<(usize, usize), String> {
    let bad = || format!("--partition wants K/N with 1 <= K <= N, got `{s}`");
    let (k, n) = s.split_once('/').ok_or_else(bad)?;
    let (k, n): (usize, usize) = (k.parse().map_err(|_| bad())?, n.parse().map_err(|_| bad())?);
    if k == 0 || k > n {
        return Err(bad());
    }
    Ok((k, n))
}

/// How a job ended against its expectation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// A `Pass` case passed.
    Passed,
    /// A `Caught` case failed and a listed oracle named it.
    Caught,
    /// A `Pass` case did not pass.
    Failed,
    /// A `Caught` case passed, failed by another oracle, or ended another way.
    Missed,
    /// The scenario's guest body is still the stub (only with
    /// `skip_unimplemented`; otherwise it is Failed/Missed).
    SkippedUnimplemented,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Passed => "PASS",
            Status::Caught => "CAUGHT",
            Status::Failed => "FAIL",
            Status::Missed => "MISSED",
            Status::SkippedUnimplemented => "SKIPPED-UNIMPLEMENTED",
        }
    }

    /// Whether the matrix as a whole fails on it.
    pub fn is_bad(self) -> bool {
        matches!(self, Status::Failed | Status::Missed)
    }
}

/// The judged result of one job.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JobResult {
    pub name: String,
    pub scenario: String,
    pub variant: u64,
    pub driver_mutant: String,
    pub device_mutant: String,
    pub seed: u64,
    /// `pass` or `caught by a|b`.
    pub expect: String,
    pub status: Status,
    /// The run's outcome name (`passed`, `failed`, `timeout`, ...; `no-report`
    /// when the child left no report).
    pub outcome: String,
    /// The expected oracles that did name the run (Caught only).
    pub matched: Vec<String>,
    /// Why the job is bad (or, for Caught, what the run reported).
    pub reasons: Vec<String>,
    /// Wall time of the child, seconds.
    pub secs: f64,
    /// [`report_digest`] of the child's report (empty: no report).
    #[serde(default)]
    pub digest: String,
}

/// A digest of a report without its wall-time figures (set-up, boot and
/// run times): with the virtual clock, repeats of one job give the same
/// digest (`nicproof matrix --repeat`). FNV-1a over the report's JSON.
pub fn report_digest(r: &Report) -> String {
    let mut r = r.clone();
    (r.stats.setup_ms, r.stats.boot_to_ready_ms, r.stats.run_ms) = (0.0, None, 0.0);
    // Signals that kicked a vCPU out of KVM_RUN at the end are host timing.
    r.stats.exits.remove("interrupted");
    let json = serde_json::to_string(&r).unwrap_or_default();
    let h = json
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    format!("{h:016x}")
}

/// What to run.
#[derive(Clone, Debug)]
pub struct Options {
    /// The `nicproof` binary the children run.
    pub bin: PathBuf,
    /// The guest image.
    pub guest: PathBuf,
    /// Children at a time.
    pub jobs: usize,
    pub skip_unimplemented: bool,
    /// The clock every child runs with (`nicproof run --clock`).
    pub clock: crate::sim::ClockMode,
    /// The driver task's privilege level in every child (`--cpl`).
    pub cpl: u64,
}

/// A private scratch directory for the children's reports, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> std::io::Result<Self> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let p =
            std::env::temp_dir().join(format!("nicproof-matrix-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&p)?;
        Ok(Self(p))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Last `n` lines of a file (the child's stderr), for a report-less miss.
fn tail(path: &Path, n: usize) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| format!("stderr| {l}"))
        .collect()
}

/// Run one job as a child and judge it.
fn run_job(opts: &Options, dir: &Path, idx: usize, job: &Job) -> JobResult {
    let json = dir.join(format!("{idx}.json"));
    let stderr_path = dir.join(format!("{idx}.stderr"));
    let limit = scenarios::setup(job.case.scenario, job.case.variant, job.seed).timeout + GRACE;
    let t = Instant::now();
    let ended = std::fs::File::create(&stderr_path)
        .and_then(|err| {
            Command::new(&opts.bin)
                .args(job.run_args(&opts.guest, &json))
                .args(["--clock", opts.clock.name()])
                .args(["--cpl", &opts.cpl.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(err)
                .spawn()
        })
        .map_err(|e| format!("could not start {}: {e}", opts.bin.display()))
        .and_then(|mut child| loop {
            match child.try_wait() {
                Ok(Some(status)) => break Ok(status),
                Ok(None) if t.elapsed() > limit => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break Err(format!("killed: the child ran past {} s", limit.as_secs()));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                Err(e) => break Err(format!("waiting for the child: {e}")),
            }
        });
    let secs = t.elapsed().as_secs_f64();
    let report: Result<Report, String> = ended.and_then(|status| {
        let text = std::fs::read_to_string(&json)
            .map_err(|e| format!("child exited {status} and left no report: {e}"))?;
        serde_json::from_str(&text)
            .map_err(|e| format!("child exited {status}; report unreadable: {e}"))
    });
    let c = &job.case;
    let digest = report.as_ref().map(report_digest).unwrap_or_default();
    let (status, outcome, matched, reasons) = match report {
        Ok(r) => {
            let (s, m, why) = judge::job(&c.expect, &r, opts.skip_unimplemented);
            (s, r.outcome.name().to_string(), m, why)
        }
        Err(e) => {
            let bad = if c.expect == Expect::Pass {
                Status::Failed
            } else {
                Status::Missed
            };
            let mut why = vec![e];
            why.extend(tail(&stderr_path, 5));
            (bad, "no-report".to_string(), vec![], why)
        }
    };
    JobResult {
        name: job.name(),
        scenario: c.scenario.name().into(),
        variant: c.variant,
        driver_mutant: c.driver_mutant.name().into(),
        device_mutant: c.device_mutant.name().into(),
        seed: job.seed,
        expect: expect_text(&c.expect),
        status,
        outcome,
        matched,
        reasons,
        secs,
        digest,
    }
}

/// The whole matrix run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Summary {
    pub jobs: usize,
    pub wall_secs: f64,
    pub results: Vec<JobResult>,
    /// Mutants caught by the loom model instead (`LOOM`), by name => test fn.
    pub loom: BTreeMap<String, String>,
    /// Matrix scenarios no case runs at all ([`uncovered`]), shown so a
    /// scenario that is not in the matrix yet is never silently absent.
    #[serde(default)]
    pub uncovered: Vec<String>,
}

/// Scenarios of `abi::Scenario` (beyond the VMM's own `empty` and `boot`)
/// that no case of `cases` runs.
pub fn uncovered(cases: &[Case]) -> Vec<String> {
    use nic_model::abi::Scenario;
    Scenario::ALL
        .iter()
        .filter(|s| !matches!(s, Scenario::Empty | Scenario::Boot))
        .filter(|s| !cases.iter().any(|c| c.scenario == **s))
        .map(|s| s.name().to_string())
        .collect()
}

/// Run `jobs` (in matrix order in the summary), `opts.jobs` at a time.
/// `progress` sees each result as it finishes.
pub fn run(
    opts: &Options,
    jobs: &[Job],
    progress: &(dyn Fn(&JobResult) + Sync),
) -> std::io::Result<Summary> {
    let scratch = Scratch::new()?;
    let next = Mutex::new(0usize);
    let results: Mutex<Vec<Option<JobResult>>> = Mutex::new(vec![None; jobs.len()]);
    let t = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..opts.jobs.clamp(1, jobs.len().max(1)) {
            s.spawn(|| loop {
                let idx = {
                    let mut n = next.lock().unwrap_or_else(|e| e.into_inner());
                    let i = *n;
                    *n += 1;
                    i
                };
                let Some(job) = jobs.get(idx) else { break };
                let r = run_job(opts, &scratch.0, idx, job);
                progress(&r);
                results.lock().unwrap_or_else(|e| e.into_inner())[idx] = Some(r);
            });
        }
    });
    let results = results
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .flatten()
        .collect();
    Ok(Summary {
        jobs: opts.jobs,
        wall_secs: t.elapsed().as_secs_f64(),
        results,
        loom: LOOM
            .iter()
            .map(|(m, f)| (m.name().to_string(), f.to_string()))
            .collect(),
        uncovered: Vec::new(),
    })
}

impl Summary {
    pub fn count(&self, s: Status) -> usize {
        self.results.iter().filter(|r| r.status == s).count()
    }

    /// Whether every Pass case passed and every Caught case was caught
    /// (skipped-unimplemented jobs aside, which are counted and shown).
    pub fn ok(&self) -> bool {
        !self.results.iter().any(|r| r.status.is_bad())
    }

    /// Per-job wall times: (min, median, max) seconds.
    pub fn times(&self) -> Option<(f64, f64, f64)> {
        let mut t: Vec<f64> = self.results.iter().map(|r| r.secs).collect();
        t.sort_by(f64::total_cmp);
        Some((*t.first()?, t[t.len() / 2], *t.last()?))
    }

    /// The matrix (scenario rows x mutant columns), the jobs with their
    /// times, the reasons of every bad job, and the totals.
    /// With `--repeat`: whether every job's repeats gave the same report
    /// digest, naming the jobs whose did not. `None` without repeats.
    pub fn repeat_digests(&self) -> Option<String> {
        let mut by_job: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for r in &self.results {
            let base = r.name.split('~').next().unwrap_or(&r.name);
            by_job.entry(base).or_default().push(&r.digest);
        }
        let runs = by_job.values().map(Vec::len).max().unwrap_or(0);
        if runs < 2 {
            return None;
        }
        let differ: Vec<&str> = by_job
            .iter()
            .filter(|(_, d)| d.iter().any(|x| x.is_empty() || *x != d[0]))
            .map(|(n, _)| *n)
            .collect();
        Some(if differ.is_empty() {
            format!(
                "report digests: all {} jobs gave identical reports in each of their {runs} runs",
                by_job.len()
            )
        } else {
            format!(
                "report digests: {} of {} jobs differ between runs: {}",
                differ.len(),
                by_job.len(),
                differ.join(", ")
            )
        })
    }

    pub fn human(&self) -> String {
        let mut out = String::new();
        // Columns: `none`, then each mutant present (driver, then device),
        // then the loom-only ones, each under a letter with a legend.
        let mut cols: Vec<String> = Vec::new();
        let col_of = |r: &JobResult| -> String {
            match (r.driver_mutant.as_str(), r.device_mutant.as_str()) {
                ("none", "none") => "none".into(),
                (d, "none") => d.into(),
                (_, dev) => format!("device:{dev}"),
            }
        };
        for m in DriverMutant::ALL
            .iter()
            .map(|m| m.name().to_string())
            .chain(
                DeviceMutant::ALL
                    .iter()
                    .map(|m| format!("device:{}", m.name())),
            )
        {
            let present = self.results.iter().any(|r| col_of(r) == m)
                || (m != "none" && self.loom.contains_key(&m));
            if (present || m == "none") && !cols.contains(&m) {
                cols.push(m);
            }
        }
        let mut rows: Vec<String> = Vec::new();
        for r in &self.results {
            let row = if r.variant == 0 {
                r.scenario.clone()
            } else {
                format!("{}/{}", r.scenario, r.variant)
            };
            if !rows.contains(&row) {
                rows.push(row);
            }
        }
        let letter = |i: usize| -> String {
            if i == 0 {
                "none".into()
            } else {
                char::from(b'A' + ((i - 1) % 26) as u8).to_string() + &"'".repeat((i - 1) / 26)
            }
        };
        let w = rows.iter().map(String::len).max().unwrap_or(8).max(10);
        let _ = write!(out, "{:<w$}", "scenario");
        for i in 0..cols.len() {
            let _ = write!(out, " {:>6}", letter(i));
        }
        out.push('\n');
        for row in rows.iter().map(Some).chain([None]) {
            let _ = write!(out, "{:<w$}", row.map_or("(loom)", |s| s.as_str()));
            for col in &cols {
                let cell = match row {
                    None => {
                        if self.loom.contains_key(col) {
                            "loom".to_string()
                        } else {
                            "-".to_string()
                        }
                    }
                    Some(row) => {
                        let hits: Vec<&JobResult> = self
                            .results
                            .iter()
                            .filter(|r| {
                                let rr = if r.variant == 0 {
                                    r.scenario.clone()
                                } else {
                                    format!("{}/{}", r.scenario, r.variant)
                                };
                                &rr == row && &col_of(r) == col
                            })
                            .collect();
                        cell(&hits)
                    }
                };
                let _ = write!(out, " {cell:>6}");
            }
            out.push('\n');
        }
        out.push_str("columns:");
        for (i, c) in cols.iter().enumerate().skip(1) {
            let _ = write!(out, "{} {}={c}", if i == 1 { "" } else { "," }, letter(i));
        }
        out.push_str(
            "\ncells: pass/FAIL (none), caught/MISSED (mutants), loom = caught by the loom model (",
        );
        out.push_str(LOOM_FILE);
        out.push_str(
            "), skip = SKIPPED-UNIMPLEMENTED, - = not in the matrix; n/m = n good of m runs (seeds x repeats)\n\n",
        );
        for r in &self.results {
            let by = if r.matched.is_empty() {
                String::new()
            } else {
                format!(" <- {}", r.matched.join(", "))
            };
            let _ = writeln!(
                out,
                "{:<21} {:<48} {:>6.2} s  {}{by}",
                r.status.name(),
                r.name,
                r.secs,
                r.expect
            );
            if r.status.is_bad() || r.status == Status::SkippedUnimplemented {
                for why in r.reasons.iter().take(8) {
                    let _ = writeln!(out, "    {why}");
                }
            }
        }
        if let Some((min, med, max)) = self.times() {
            let _ = writeln!(
                out,
                "\nper-job wall time: min {min:.2} s, median {med:.2} s, max {max:.2} s; whole matrix {:.1} s with {} jobs at a time",
                self.wall_secs, self.jobs
            );
            let mut by_time: Vec<&JobResult> = self.results.iter().collect();
            by_time.sort_by(|a, b| b.secs.total_cmp(&a.secs));
            let longest: Vec<String> =
                by_time.iter().take(3).map(|r| format!("{} {:.2} s", r.name, r.secs)).collect();
            let _ = writeln!(out, "longest jobs: {}", longest.join(", "));
        }
        if let Some(line) = self.repeat_digests() {
            let _ = writeln!(out, "{line}");
        }
        if !self.uncovered.is_empty() {
            let _ = writeln!(
                out,
                "NOT IN THE MATRIX: {} scenario(s) have no case yet: {}",
                self.uncovered.len(),
                self.uncovered.join(", ")
            );
        }
        let skipped = self.count(Status::SkippedUnimplemented);
        let _ = writeln!(
            out,
            "matrix: {} passed, {} caught, {} failed, {} missed, {skipped} skipped-unimplemented ({} jobs){}",
            self.count(Status::Passed),
            self.count(Status::Caught),
            self.count(Status::Failed),
            self.count(Status::Missed),
            self.results.len(),
            if skipped > 0 { " -- SKIPPED-UNIMPLEMENTED scenarios are not yet checked" } else { "" }
        );
        out
    }

    /// JUnit XML: one testcase per job, failure message = its reasons.
    pub fn junit(&self) -> String {
        // A job whose host failed (no VM, no report) is an error, not a
        // failure of the case: CI tells "nicproof broke" from "the driver
        // broke". Names are the job names alone, so a case keeps its
        // history whatever it did; what happened goes in the message.
        let host_error = |r: &JobResult| matches!(r.outcome.as_str(), "host-error" | "no-report");
        let errors = self.results.iter().filter(|r| r.status.is_bad() && host_error(r)).count();
        let failures = self.results.iter().filter(|r| r.status.is_bad()).count() - errors;
        let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let _ = writeln!(
            x,
            "<testsuites><testsuite name=\"nicproof-matrix\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"{}\" time=\"{:.3}\">",
            self.results.len(),
            self.count(Status::SkippedUnimplemented),
            self.wall_secs
        );
        for r in &self.results {
            let _ = write!(
                x,
                "  <testcase classname=\"matrix.{}\" name=\"{}\" time=\"{:.3}\">",
                xml(&r.scenario),
                xml(&r.name),
                r.secs
            );
            let body = xml(&r.reasons.join("\n"));
            match r.status {
                Status::Failed | Status::Missed => {
                    let first = r.reasons.first().map_or("", String::as_str);
                    let tag = if host_error(r) { "error" } else { "failure" };
                    let _ = write!(
                        x,
                        "<{tag} message=\"{} ({}), expected {}: {}\" type=\"{}\">{body}</{tag}>",
                        r.status.name(),
                        r.outcome,
                        xml(&r.expect),
                        xml(first),
                        r.status.name()
                    );
                }
                Status::SkippedUnimplemented => {
                    let _ = write!(
                        x,
                        "<skipped message=\"scenario body not implemented yet\"/>"
                    );
                }
                Status::Passed | Status::Caught => {
                    let what = if r.matched.is_empty() {
                        format!("{} ({}), expected {}", r.status.name(), r.outcome, r.expect)
                    } else {
                        format!("{} ({}): caught by {}", r.status.name(), r.outcome, r.matched.join(", "))
                    };
                    let _ = write!(x, "<system-out>{}</system-out>", xml(&what));
                }
            }
            x.push_str("</testcase>\n");
        }
        x.push_str("</testsuite></testsuites>\n");
        x
    }
}

/// One matrix cell from the jobs (seeds) of a row and column.
fn cell(hits: &[&JobResult]) -> String {
    if hits.is_empty() {
        return "-".into();
    }
    let n = hits.len();
    let count = |s: Status| hits.iter().filter(|r| r.status == s).count();
    let (good, word, badword) = if hits[0].expect == "pass" {
        (count(Status::Passed), "pass", "FAIL")
    } else {
        (count(Status::Caught), "caught", "MISSED")
    };
    let skipped = count(Status::SkippedUnimplemented);
    if skipped == n {
        "skip".into()
    } else if good == n {
        word.into()
    } else if n == 1 {
        badword.into()
    } else {
        format!("{good}/{n}")
    }
}

/// Escape text for an XML attribute or element.
fn xml(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            // XML 1.0 forbids most control characters even escaped.
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' => o.push('?'),
            c => o.push(c),
        }
    }
    o
}

/// `matrix --compare-clocks`: the same jobs under `--clock wall` and the
/// virtual clock, run alternately, side by side. Per clock: the whole
/// matrix's wall time (median over the rounds), the sum and median of the
/// per-job times, the three longest jobs (median over the rounds) and the
/// outcome counts; then virtual/wall ratios.
pub fn clock_comparison(runs: &[(crate::sim::ClockMode, Summary)]) -> String {
    use crate::sim::ClockMode;
    fn median(mut v: Vec<f64>) -> f64 {
        v.sort_by(f64::total_cmp);
        match v.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        }
    }
    struct Figures {
        whole: f64,
        sum: f64,
        job_median: f64,
        longest: Vec<(String, f64)>,
        counts: Vec<String>,
    }
    let figures = |clock: ClockMode| {
        let of: Vec<&Summary> = runs.iter().filter(|(c, _)| *c == clock).map(|(_, s)| s).collect();
        let mut per_job: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
        for s in &of {
            for r in &s.results {
                per_job.entry(r.name.as_str()).or_default().push(r.secs);
            }
        }
        let job: Vec<(String, f64)> = per_job.into_iter().map(|(n, t)| (n.to_string(), median(t))).collect();
        let mut longest = job.clone();
        longest.sort_by(|a, b| b.1.total_cmp(&a.1));
        longest.truncate(3);
        Figures {
            whole: median(of.iter().map(|s| s.wall_secs).collect()),
            sum: median(of.iter().map(|s| s.results.iter().map(|r| r.secs).sum()).collect()),
            job_median: median(job.iter().map(|j| j.1).collect()),
            longest,
            counts: of
                .iter()
                .map(|s| {
                    format!(
                        "{} passed, {} caught, {} failed, {} missed",
                        s.count(Status::Passed),
                        s.count(Status::Caught),
                        s.count(Status::Failed),
                        s.count(Status::Missed)
                    )
                })
                .collect(),
        }
    };
    let (w, v) = (figures(ClockMode::Wall), figures(ClockMode::Virtual));
    let rounds = runs.iter().filter(|(c, _)| *c == ClockMode::Wall).count();
    let jobs = runs.first().map_or(0, |(_, s)| s.results.len());
    let at_a_time = runs.first().map_or(0, |(_, s)| s.jobs);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "matrix under both clocks: {jobs} jobs, {at_a_time} at a time, {rounds} round(s) each, alternating; medians over the rounds"
    );
    let _ = writeln!(out, "{:<34} {:>12} {:>12} {:>13}", "", "--clock wall", "virtual", "virtual/wall");
    let mut row = |name: &str, a: f64, b: f64| {
        let _ = writeln!(out, "{name:<34} {a:>12.2} {b:>12.2} {:>13.2}", b / a);
    };
    row("whole matrix, s", w.whole, v.whole);
    row("sum of job times, s", w.sum, v.sum);
    row("median job, s", w.job_median, v.job_median);
    row(
        "longest job, s",
        w.longest.first().map_or(f64::NAN, |j| j.1),
        v.longest.first().map_or(f64::NAN, |j| j.1),
    );
    for (name, f) in [("wall", &w), ("virtual", &v)] {
        let l: Vec<String> = f.longest.iter().map(|(n, t)| format!("{n} {t:.2} s")).collect();
        let _ = writeln!(out, "longest jobs, {name}: {}", l.join(", "));
        for (i, c) in f.counts.iter().enumerate() {
            let _ = writeln!(out, "round {}, {name}: {c}", i + 1);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::job as judge;
    use crate::outcome::{Finding, Outcome};
    use nic_model::rules::Rule;
    use crate::outcome::Stats;

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
            results: [("a#0", a, Status::Passed), ("b#0", b, if missed { Status::Missed } else { Status::Caught })]
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
        assert!(t.lines().any(|l| l.starts_with("whole matrix") && l.contains("11.00") && l.contains("5.00") && l.ends_with("0.45")), "{t}");
        assert!(t.contains("longest jobs, wall: b#0 9.00 s, a#0 2.00 s"), "{t}");
        assert!(t.contains("round 2, wall: 1 passed, 0 caught, 0 failed, 1 missed"), "{t}");
        assert!(t.contains("round 1, virtual: 1 passed, 1 caught, 0 failed, 0 missed"), "{t}");
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
                r("default:no-unmap-at-stop:none#0", Status::Caught, "failed", "caught by dma-maps"),
                r("default:none:none#0", Status::Failed, "host-error", "pass"),
                r("smp:none:none#0", Status::Failed, "no-report", "pass"),
                r("default:none:none#1", Status::Failed, "failed", "pass"),
            ],
            loom: BTreeMap::new(),
            uncovered: vec![],
        };
        let j = s.junit();
        for name in ["default:no-unmap-at-stop:none#0", "default:none:none#0", "smp:none:none#0"] {
            assert!(j.contains(&format!("name=\"{name}\"")), "stable name {name}: {j}");
        }
        assert!(!j.contains("name=\"default:no-unmap-at-stop:none#0 ("), "{j}");
        assert!(j.contains("failures=\"1\" errors=\"2\""), "{j}");
        assert_eq!(j.matches("<error ").count(), 2, "{j}");
        assert!(j.contains("caught by dma-maps"), "the outcome is in the message: {j}");
    }
}
