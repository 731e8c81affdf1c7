//! Running the jobs: each a child `nicproof run ... --json FILE`, `jobs`
//! at a time, killed past its scenario's timeout plus [`GRACE`], judged
//! by `crate::judge::job`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::jobs::{Job, GRACE, LOOM};
use super::report::{report_digest, JobResult, Status, Summary};
use crate::judge::{self, expect_text};
use crate::outcome::Report;
use crate::scenarios::{self, Expect};

/// What to run.
#[derive(Clone, Debug)]
pub struct Options {
    /// The `nicproof` binary the children run.
    pub bin: PathBuf,
    /// The guest image.
    pub guest: PathBuf,
    /// Children at a time.
    pub jobs: usize,
    /// Count a job whose scenario's guest body is still the stub as
    /// skipped instead of failed or missed.
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
