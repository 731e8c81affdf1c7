//! `nicproof bench`: boot the same VM several times and summarise
//! boot-to-ready time, run time and VM exits (min / median / max).

use std::collections::BTreeSet;
use std::fmt::Write as _;

use nic_model::abi::{knob, NUM_KNOBS};
use serde::Serialize;

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

/// The loopback bench (`nicproof bench --net`): the default scenario in
/// benchmark mode (knob BENCH=1: no per-packet markers) in five
/// configurations, run side by side in each repetition so load on the
/// machine hits them alike. Per-packet and per-cycle figures are
/// differences between two runs that differ in one knob only, so boot,
/// probe and teardown cancel out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct NetPlan {
    /// Frames of the short runs.
    pub frames_lo: u64,
    /// Frames of the long runs (must be more than `frames_lo`).
    pub frames_hi: u64,
    /// xmit_more batch size compared with no batching (1).
    pub batch: u64,
    /// Open/stop cycles of the cycle run (compared with none).
    pub cycles: u64,
}

impl Default for NetPlan {
    fn default() -> Self {
        Self {
            frames_lo: 100,
            frames_hi: 500,
            batch: 16,
            cycles: 20,
        }
    }
}

/// The runs of one repetition, in order: name and knobs.
pub fn net_runs(p: &NetPlan) -> Vec<(String, [u64; NUM_KNOBS])> {
    let run = |frames: u64, batch: u64, cycles: u64| {
        let mut k = [0; NUM_KNOBS];
        k[knob::BENCH] = 1;
        k[knob::FRAMES] = frames;
        k[knob::BATCH] = batch;
        k[knob::CYCLES] = cycles;
        (format!("frames={frames} batch={batch} cycles={cycles}"), k)
    };
    vec![
        run(p.frames_lo, 1, 0),
        run(p.frames_hi, 1, 0),
        run(p.frames_lo, p.batch, 0),
        run(p.frames_hi, p.batch, 0),
        run(p.frames_lo, p.batch, p.cycles),
    ]
}

/// What one run of the loopback bench gives: the host's stats and the
/// guest's verdict text (which carries its own clock's figures).
#[derive(Clone, Debug, Default)]
pub struct NetSample {
    /// The host's stats of the run (exits, run time).
    pub stats: Stats,
    /// The guest's verdict text, with its own clock's figures.
    pub verdict: String,
}

/// Figures of one repetition (NaN where a difference is not positive,
/// which only load noise produces).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct NetFigures {
    /// Packets per second, marginal (host clock), no batching.
    pub pps_unbatched: f64,
    /// Packets per second, marginal (host clock), batched.
    pub pps_batched: f64,
    /// Packets per second over the long run's traffic phase, guest clock.
    pub guest_pps_unbatched: f64,
    /// Packets per second over the long run's traffic phase, guest clock,
    /// batched.
    pub guest_pps_batched: f64,
    /// VM exits per packet, marginal, no batching.
    pub exits_per_packet_unbatched: f64,
    /// VM exits per packet, marginal, batched.
    pub exits_per_packet_batched: f64,
    /// Host milliseconds per open/stop cycle, marginal.
    pub cycle_ms: f64,
    /// VM exits per open/stop cycle, marginal.
    pub cycle_exits: f64,
    /// Microseconds per cycle on the guest clock.
    pub guest_cycle_us: f64,
}

/// The number just before `suffix` in `text` (e.g. "1234 pps").
fn number_before(text: &str, suffix: &str) -> f64 {
    text.find(suffix)
        .and_then(|end| {
            let head = text[..end].trim_end();
            let start = head
                .rfind(|c: char| !c.is_ascii_digit())
                .map_or(0, |i| i + 1);
            head[start..].parse().ok()
        })
        .unwrap_or(f64::NAN)
}

fn positive(v: f64) -> f64 {
    if v > 0.0 {
        v
    } else {
        f64::NAN
    }
}

/// Figures from the samples of one repetition (in `net_runs` order).
pub fn net_figures(p: &NetPlan, s: &[NetSample; 5]) -> NetFigures {
    let frames = (p.frames_hi - p.frames_lo) as f64;
    let exits = |i: usize| s[i].stats.total_exits() as f64;
    let ms = |i: usize| s[i].stats.run_ms;
    let cycles = p.cycles.max(1) as f64;
    NetFigures {
        pps_unbatched: frames / positive((ms(1) - ms(0)) / 1e3),
        pps_batched: frames / positive((ms(3) - ms(2)) / 1e3),
        guest_pps_unbatched: number_before(&s[1].verdict, "pps"),
        guest_pps_batched: number_before(&s[3].verdict, "pps"),
        exits_per_packet_unbatched: (exits(1) - exits(0)) / frames,
        exits_per_packet_batched: (exits(3) - exits(2)) / frames,
        cycle_ms: positive(ms(4) - ms(2)) / cycles,
        cycle_exits: (exits(4) - exits(2)) / cycles,
        guest_cycle_us: number_before(&s[4].verdict, "us each"),
    }
}

/// The loopback bench table: min / median / max over the repetitions.
pub fn net_table(p: &NetPlan, figs: &[NetFigures]) -> String {
    let mut out = String::new();
    if figs.is_empty() {
        return out;
    }
    let _ = writeln!(
        out,
        "{:<44} {:>10} {:>10} {:>10}",
        format!("loopback, BENCH=1 ({} repetitions)", figs.len()),
        "min",
        "median",
        "max"
    );
    let mut row = |name: String, f: fn(&NetFigures) -> f64, prec: usize| {
        let mut v: Vec<f64> = figs.iter().map(f).collect();
        let (a, b, c) = min_med_max(&mut v);
        let _ = writeln!(out, "{name:<44} {a:>10.prec$} {b:>10.prec$} {c:>10.prec$}");
    };
    let b = p.batch;
    row(
        "packets/s, batch 1 (host, marginal)".into(),
        |f| f.pps_unbatched,
        0,
    );
    row(
        format!("packets/s, batch {b} (host, marginal)"),
        |f| f.pps_batched,
        0,
    );
    row(
        "packets/s, batch 1 (guest clock)".into(),
        |f| f.guest_pps_unbatched,
        0,
    );
    row(
        format!("packets/s, batch {b} (guest clock)"),
        |f| f.guest_pps_batched,
        0,
    );
    row(
        "vm exits/packet, batch 1".into(),
        |f| f.exits_per_packet_unbatched,
        3,
    );
    row(
        format!("vm exits/packet, batch {b}"),
        |f| f.exits_per_packet_batched,
        3,
    );
    row(
        format!("exits/packet ratio, batch 1 / batch {b}"),
        |f| f.exits_per_packet_unbatched / f.exits_per_packet_batched,
        1,
    );
    row(
        "open/stop cycle, ms (host, marginal)".into(),
        |f| f.cycle_ms,
        2,
    );
    row(
        "open/stop cycle, us (guest clock)".into(),
        |f| f.guest_cycle_us,
        0,
    );
    row("open/stop cycle, vm exits".into(), |f| f.cycle_exits, 1);
    let _ = writeln!(
        out,
        "marginal = (long run - short run) / difference: frames {} vs {}, cycles {} vs 0",
        p.frames_hi, p.frames_lo, p.cycles
    );
    out
}

/// One row of a [`side_by_side`] table: label, figure, decimals.
type Row = (String, fn(&NetFigures) -> f64, usize);

/// Two configurations of the loopback bench side by side: each figure's
/// median under `a` and under `b`, and the median of the per-repetition
/// ratios b/a (the two runs of one repetition ran back to back, so load
/// on the machine hits them alike; the ratio of the medians would pair
/// figures of different moments). `head` names the table and its three
/// columns, each `width` wide (the ratio column 2 wider). Empty unless
/// both have the same number of repetitions (at least one).
fn side_by_side(
    head: [&str; 4],
    width: usize,
    rows: &[Row],
    a: &[NetFigures],
    b: &[NetFigures],
) -> String {
    let mut out = String::new();
    if a.is_empty() || a.len() != b.len() {
        return out;
    }
    let rw = width + 2;
    let _ = writeln!(
        out,
        "{:<44} {:>width$} {:>width$} {:>rw$}",
        head[0], head[1], head[2], head[3]
    );
    let med = |v: &[NetFigures], f: fn(&NetFigures) -> f64| {
        let mut x: Vec<f64> = v.iter().map(f).collect();
        min_med_max(&mut x).1
    };
    for (name, f, prec) in rows {
        let mut ratios: Vec<f64> = a.iter().zip(b).map(|(x, y)| f(y) / f(x)).collect();
        let (_, r, _) = min_med_max(&mut ratios);
        let (x, y) = (med(a, *f), med(b, *f));
        let _ = writeln!(
            out,
            "{name:<44} {x:>width$.prec$} {y:>width$.prec$} {r:>rw$.2}"
        );
    }
    out
}

/// CPL0 against CPL3 (`bench --net --compare-cpl`), host-clock figures
/// (`side_by_side`). Guest-clock figures are left out: under the
/// virtual clock they are the same at both levels by construction.
pub fn cpl_table(p: &NetPlan, cpl0: &[NetFigures], cpl3: &[NetFigures]) -> String {
    let b = p.batch;
    let rows: [Row; 5] = [
        (
            "packets/s, batch 1 (host, marginal)".into(),
            |f| f.pps_unbatched,
            0,
        ),
        (
            format!("packets/s, batch {b} (host, marginal)"),
            |f| f.pps_batched,
            0,
        ),
        (
            "open/stop cycle, ms (host, marginal)".into(),
            |f| f.cycle_ms,
            2,
        ),
        (
            "vm exits/packet, batch 1".into(),
            |f| f.exits_per_packet_unbatched,
            3,
        ),
        (
            format!("vm exits/packet, batch {b}"),
            |f| f.exits_per_packet_batched,
            3,
        ),
    ];
    let title = format!("CPL0 vs CPL3 ({} repetitions, medians)", cpl0.len());
    side_by_side([&title, "CPL0", "CPL3", "CPL3/CPL0"], 10, &rows, cpl0, cpl3)
}

/// The loopback bench under both clocks (`--compare-clocks`),
/// `side_by_side`: wall then virtual. Host figures are wall time
/// either way; the guest clock's are wall time under `--clock wall` and
/// virtual time under the default.
pub fn net_clock_table(p: &NetPlan, wall: &[NetFigures], virt: &[NetFigures]) -> String {
    let b = p.batch;
    let rows: [Row; 9] = [
        (
            "packets/s, batch 1 (host, marginal)".into(),
            |f| f.pps_unbatched,
            0,
        ),
        (
            format!("packets/s, batch {b} (host, marginal)"),
            |f| f.pps_batched,
            0,
        ),
        (
            "packets/s, batch 1 (guest clock)".into(),
            |f| f.guest_pps_unbatched,
            0,
        ),
        (
            format!("packets/s, batch {b} (guest clock)"),
            |f| f.guest_pps_batched,
            0,
        ),
        (
            "vm exits/packet, batch 1".into(),
            |f| f.exits_per_packet_unbatched,
            3,
        ),
        (
            format!("vm exits/packet, batch {b}"),
            |f| f.exits_per_packet_batched,
            3,
        ),
        (
            "open/stop cycle, ms (host, marginal)".into(),
            |f| f.cycle_ms,
            2,
        ),
        (
            "open/stop cycle, us (guest clock)".into(),
            |f| f.guest_cycle_us,
            0,
        ),
        ("open/stop cycle, vm exits".into(), |f| f.cycle_exits, 1),
    ];
    let title = format!("loopback, BENCH=1 (median of {})", wall.len());
    let mut out = side_by_side(
        [&title, "--clock wall", "virtual", "virtual/wall"],
        12,
        &rows,
        wall,
        virt,
    );
    if !out.is_empty() {
        let _ = writeln!(
            out,
            "each run under both clocks, interleaved; marginal = (long run - short run) / difference: frames {} vs {}, cycles {} vs 0; ratio = median of the per-run ratios",
            p.frames_hi, p.frames_lo, p.cycles
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpl_table_gives_medians_and_the_median_of_per_repetition_ratios() {
        let f = |pps: f64| NetFigures {
            pps_unbatched: pps,
            pps_batched: 2.0 * pps,
            guest_pps_unbatched: 0.0,
            guest_pps_batched: 0.0,
            exits_per_packet_unbatched: 1.0,
            exits_per_packet_batched: 0.25,
            cycle_ms: 1.0,
            cycle_exits: 0.0,
            guest_cycle_us: 0.0,
        };
        let (k, u) = (
            [f(100.0), f(200.0), f(400.0)],
            [f(1000.0), f(1000.0), f(8000.0)],
        );
        let t = cpl_table(&NetPlan::default(), &k, &u);
        // Medians 200 and 1000; ratios 10, 5, 20: median 10 (not 1000/200).
        let row = t
            .lines()
            .find(|l| l.starts_with("packets/s, batch 1 "))
            .unwrap();
        assert_eq!(
            row.split_whitespace().rev().take(3).collect::<Vec<_>>(),
            ["10.00", "1000", "200"]
        );
        assert!(t.contains("vm exits/packet, batch 16"), "{t}");
        assert_eq!(
            cpl_table(&NetPlan::default(), &k, &u[..2]),
            "",
            "unpaired repetitions"
        );
        // The clocks' table: the same statistic, its own columns.
        let t = net_clock_table(&NetPlan::default(), &k, &u);
        let row = t
            .lines()
            .find(|l| l.starts_with("packets/s, batch 1 (host"))
            .unwrap();
        assert_eq!(
            row.split_whitespace().rev().take(3).collect::<Vec<_>>(),
            ["10.00", "1000", "200"]
        );
        assert!(
            t.starts_with("loopback, BENCH=1 (median of 3)") && t.contains("virtual/wall"),
            "{t}"
        );
        assert!(t.contains("open/stop cycle, vm exits"), "{t}");
    }

    fn sample(run_ms: f64, exits: u64, verdict: &str) -> NetSample {
        let mut stats = Stats {
            run_ms,
            ..Default::default()
        };
        stats.exits.insert("mmio-write".into(), exits);
        NetSample {
            stats,
            verdict: verdict.into(),
        }
    }

    #[test]
    fn net_figures_are_differences_between_paired_runs() {
        let p = NetPlan {
            frames_lo: 100,
            frames_hi: 500,
            batch: 16,
            cycles: 10,
        };
        assert_eq!(net_runs(&p).len(), 5);
        assert_eq!(net_runs(&p)[3].1[knob::BATCH], 16);
        let s = [
            sample(100.0, 300, ""),
            sample(
                500.0,
                700,
                "default: 500 frames sent, 500 received in 9 us (1234 pps), x",
            ),
            sample(100.0, 140, ""),
            sample(300.0, 200, "(4321 pps)"),
            sample(150.0, 240, "20 open/stop cycles (77 us each), 0 live"),
        ];
        let f = net_figures(&p, &s);
        assert_eq!(f.pps_unbatched, 1000.0);
        assert_eq!(f.pps_batched, 2000.0);
        assert_eq!(f.exits_per_packet_unbatched, 1.0);
        assert_eq!(f.exits_per_packet_batched, 0.15);
        assert_eq!((f.cycle_ms, f.cycle_exits), (5.0, 10.0));
        assert_eq!(
            (f.guest_pps_unbatched, f.guest_pps_batched, f.guest_cycle_us),
            (1234.0, 4321.0, 77.0)
        );
        // A long run faster than the short one (noise) is no figure.
        let mut noisy = s.clone();
        noisy[1].stats.run_ms = 50.0;
        assert!(net_figures(&p, &noisy).pps_unbatched.is_nan());
        let t = net_table(&p, &[f, f]);
        assert!(
            t.contains("vm exits/packet, batch 16") && t.contains("0.150"),
            "{t}"
        );
    }

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
