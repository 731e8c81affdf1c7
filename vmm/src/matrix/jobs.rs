//! The matrix's cases as jobs: one per (case, seed), repeated
//! (`--repeat`) and partitioned (`--partition`).

use std::path::Path;
use std::time::Duration;

use nic_model::abi::{DriverMutant, Group, Scenario};

use crate::scenarios::Case;

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
    /// The matrix case: scenario, variant, mutants and what to expect.
    pub case: Case,
    /// The seed the child runs with.
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

/// Scenarios of the catalogue (`abi::Scenario`, beyond its boot group)
/// that no case of `cases` runs.
pub fn uncovered(cases: &[Case]) -> Vec<String> {
    Scenario::ALL
        .iter()
        .filter(|s| s.group() != Group::Boot)
        .filter(|s| !cases.iter().any(|c| c.scenario == **s))
        .map(|s| s.name().to_string())
        .collect()
}
