//! The matrix's results: each job's [`JobResult`], the whole run's
//! [`Summary`] and its forms (the table of scenario rows by mutant
//! columns, JSON, JUnit, the clock comparison).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use nic_model::abi::{DeviceMutant, DriverMutant};
use serde::{Deserialize, Serialize};

use super::jobs::LOOM_FILE;
use crate::outcome::Report;

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
    /// The status as the matrix table and summary print it.
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
    /// The job's name ([`super::Job::name`]: case, seed, repeat).
    pub name: String,
    /// The scenario's name.
    pub scenario: String,
    /// The scenario variant (the `variant` knob).
    pub variant: u64,
    /// The driver mutant's name (`none`: the correct driver).
    pub driver_mutant: String,
    /// The device mutant's name (`none`: the correct device).
    pub device_mutant: String,
    /// The seed the child ran with.
    pub seed: u64,
    /// `pass` or `caught by a|b`.
    pub expect: String,
    /// The verdict on the job.
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
    let h = json.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    format!("{h:016x}")
}

/// The whole matrix run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Summary {
    /// Children run at a time (`--jobs`).
    pub jobs: usize,
    /// Wall time of the whole matrix, seconds.
    pub wall_secs: f64,
    /// Every job's result, in job order.
    pub results: Vec<JobResult>,
    /// Mutants caught by the loom model instead (`LOOM`), by name => test fn.
    pub loom: BTreeMap<String, String>,
    /// Matrix scenarios no case runs at all ([`super::uncovered`]), shown so a
    /// scenario that is not in the matrix yet is never silently absent.
    #[serde(default)]
    pub uncovered: Vec<String>,
}

impl Summary {
    /// How many jobs ended with status `s`.
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

    /// The matrix for humans: a grid (one row per scenario and variant,
    /// one column per mutant, plus the loom row), then every job's line
    /// with the reasons of bad ones, then wall times and repeat digests.
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
            let longest: Vec<String> = by_time
                .iter()
                .take(3)
                .map(|r| format!("{} {:.2} s", r.name, r.secs))
                .collect();
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
        let errors = self
            .results
            .iter()
            .filter(|r| r.status.is_bad() && host_error(r))
            .count();
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
                        format!(
                            "{} ({}): caught by {}",
                            r.status.name(),
                            r.outcome,
                            r.matched.join(", ")
                        )
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
        let of: Vec<&Summary> = runs
            .iter()
            .filter(|(c, _)| *c == clock)
            .map(|(_, s)| s)
            .collect();
        let mut per_job: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
        for s in &of {
            for r in &s.results {
                per_job.entry(r.name.as_str()).or_default().push(r.secs);
            }
        }
        let job: Vec<(String, f64)> = per_job
            .into_iter()
            .map(|(n, t)| (n.to_string(), median(t)))
            .collect();
        let mut longest = job.clone();
        longest.sort_by(|a, b| b.1.total_cmp(&a.1));
        longest.truncate(3);
        Figures {
            whole: median(of.iter().map(|s| s.wall_secs).collect()),
            sum: median(
                of.iter()
                    .map(|s| s.results.iter().map(|r| r.secs).sum())
                    .collect(),
            ),
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
    let _ = writeln!(
        out,
        "{:<34} {:>12} {:>12} {:>13}",
        "", "--clock wall", "virtual", "virtual/wall"
    );
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
        let l: Vec<String> = f
            .longest
            .iter()
            .map(|(n, t)| format!("{n} {t:.2} s"))
            .collect();
        let _ = writeln!(out, "longest jobs, {name}: {}", l.join(", "));
        for (i, c) in f.counts.iter().enumerate() {
            let _ = writeln!(out, "round {}, {name}: {c}", i + 1);
        }
    }
    out
}
