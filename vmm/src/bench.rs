//! `nicproof bench`: boot the same VM several times and summarise
//! boot-to-ready time, run time and VM exits (min / median / max).

use std::collections::BTreeSet;
use std::fmt::Write as _;

use crate::outcome::Stats;

/// min, median, max of `v` (which must not be empty).
pub fn min_med_max(v: &mut [f64]) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    let med = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    (v[0], med, v[n - 1])
}

/// The bench table for these runs' stats.
pub fn table(runs: &[Stats]) -> String {
    let mut out = String::new();
    if runs.is_empty() {
        return out;
    }
    let _ = writeln!(
        out,
        "{:<28} {:>10} {:>10} {:>10}",
        format!("metric ({} runs)", runs.len()),
        "min",
        "median",
        "max"
    );
    let mut row = |name: &str, mut v: Vec<f64>, prec: usize| {
        let (a, b, c) = min_med_max(&mut v);
        let _ = writeln!(out, "{name:<28} {a:>10.prec$} {b:>10.prec$} {c:>10.prec$}");
    };
    row(
        "vm set-up (ms)",
        runs.iter().map(|s| s.setup_ms).collect(),
        2,
    );
    row(
        "boot-to-ready (ms)",
        runs.iter()
            .map(|s| s.boot_to_ready_ms.unwrap_or(f64::NAN))
            .collect(),
        2,
    );
    row("whole run (ms)", runs.iter().map(|s| s.run_ms).collect(), 2);
    row(
        "vm exits, total",
        runs.iter().map(|s| s.total_exits() as f64).collect(),
        0,
    );
    let reasons: BTreeSet<&String> = runs.iter().flat_map(|s| s.exits.keys()).collect();
    for r in reasons {
        row(
            &format!("  exits: {r}"),
            runs.iter()
                .map(|s| *s.exits.get(r).unwrap_or(&0) as f64)
                .collect(),
            0,
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(min_med_max(&mut [3.0, 1.0, 2.0]), (1.0, 2.0, 3.0));
        assert_eq!(min_med_max(&mut [4.0, 1.0, 2.0, 3.0]), (1.0, 2.5, 4.0));
    }

    #[test]
    fn table_lists_every_exit_reason() {
        let mut a = Stats {
            run_ms: 2.0,
            boot_to_ready_ms: Some(1.0),
            ..Default::default()
        };
        a.exits.insert("io-out".into(), 10);
        let mut b = a.clone();
        b.exits.insert("mmio-read".into(), 4);
        let t = table(&[a, b]);
        assert!(
            t.contains("exits: io-out") && t.contains("exits: mmio-read"),
            "{t}"
        );
    }
}
