//! The report's table of checks (issue 5): one row per
//! `nic_model::rules::Row`, with its status and the evidence the event
//! log holds for it. Which row a finding fails is its rule's, from the
//! catalogue (`nic_model::rules::Rule::row`).
//!
//! The verdict is not decided here: `judge::run` decides it (the guest's
//! verdict, the device monitor, `oracles`) and this module only lays the
//! result out. A row is FAILED when one of the run's findings belongs to
//! it, or when the guest's end-of-run summary contradicts it (the guest
//! fails its own verdict on the same values); every finding no row claims
//! lands in the last row, so a failed run always shows a FAILED row and a
//! passed one never does.

use std::collections::BTreeMap;
use std::fmt;

use nic_model::abi::{self, Marker};
use nic_model::events::{DmaDir, Event, EventKind};
use nic_model::rules::{Row, Rule};
use serde::{Deserialize, Serialize};

use crate::oracles::{self, after_stop, arg, doorbell, marker_of};
use crate::outcome::{Finding, Outcome};

/// A check's result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    /// The run gives what the check needs and no finding breaks it.
    #[serde(rename = "held")]
    Held,
    /// A finding of the run breaks the check.
    #[serde(rename = "FAILED")]
    Failed,
    /// The run has nothing to judge it on (e.g. no stop, no summary).
    #[serde(rename = "n.a.")]
    NotApplicable,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Held => "held",
            Status::Failed => "FAILED",
            Status::NotApplicable => "n.a.",
        })
    }
}

/// One row of the table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// What the host asserts, as issue 5 words it.
    pub check: String,
    /// Whether it held for this run.
    pub status: Status,
    /// Evidence counts, by name (also rendered in the human table).
    pub counts: BTreeMap<String, u64>,
    /// Names of the findings (oracles, monitor rules) behind a FAILED.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_by: Vec<String>,
    /// The device errors latched (device-error row only): decoded name,
    /// code, address, event seq, and whether the scenario expected it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

/// Everything counted in one pass over the log.
#[derive(Default)]
struct Tally {
    dma: u64,
    dma_reads: u64,
    dma_writes: u64,
    dma_bytes: u64,
    irqs: u64,
    doorbells: u64,
    resets: u64,
    tx_frames: u64,
    rx_frames: u64,
    rx_delivered: u64,
    maps: u64,
    unmaps: u64,
    skb_allocs: u64,
    skb_clones: u64,
    skb_frees: u64,
    busy: u64,
    /// BUSY returns the stack marked as after a false wake.
    busy_false_wake: u64,
    stop_exits: u64,
    unregisters: u64,
    probes: u64,
    guest_oracle_fails: u64,
    /// Device faults: (seq, code, addr).
    faults: Vec<(u64, u32, u64)>,
    /// args of the last Summary marker: live skbs, live maps, BUSY, BQL.
    summary: Option<[u64; 4]>,
    /// args of the last Bql marker: queued, completed, limit.
    bql: Option<[u64; 3]>,
    dma_after_stop: u64,
    irqs_after_stop: u64,
    doorbells_after_stop: u64,
    /// tx-ring snapshots: all, at stop entry, with BQL on.
    tx_rings: u64,
    tx_rings_at_stop: u64,
    tx_rings_bql: u64,
    /// BQL stall-detector reports.
    bql_stalls: u64,
    napi_completes: u64,
    tx_timeouts: u64,
    int_enable_writes: u64,
}

fn tally(log: &[Event]) -> Tally {
    let mut t = Tally::default();
    for e in log {
        match &e.kind {
            EventKind::Dma { dir, len, .. } => {
                t.dma += 1;
                t.dma_bytes += len;
                match dir {
                    DmaDir::Read => t.dma_reads += 1,
                    DmaDir::Write => t.dma_writes += 1,
                }
            }
            EventKind::Irq { .. } => t.irqs += 1,
            EventKind::ResetStart => t.resets += 1,
            EventKind::TxFrame { .. } => t.tx_frames += 1,
            EventKind::RxFrame { .. } => t.rx_frames += 1,
            EventKind::DeviceFault { code, addr } => t.faults.push((e.seq, *code, *addr)),
            EventKind::MmioWrite { offset, .. } if *offset == u64::from(abi::regs::INT_ENABLE) => {
                t.int_enable_writes += 1
            }
            _ => {}
        }
        if doorbell(e).is_some() {
            t.doorbells += 1;
        }
        let Some((m, args, _)) = marker_of(e) else {
            continue;
        };
        match m {
            Marker::DmaMap => t.maps += 1,
            Marker::DmaUnmap => t.unmaps += 1,
            Marker::SkbAlloc => t.skb_allocs += 1,
            Marker::SkbClone => t.skb_clones += 1,
            Marker::SkbFree => t.skb_frees += 1,
            Marker::XmitBusy if oracles::arg(args, 2) == 1 => t.busy_false_wake += 1,
            Marker::XmitBusy => t.busy += 1,
            Marker::RxDeliver => t.rx_delivered += 1,
            Marker::StopExit => t.stop_exits += 1,
            Marker::UnregisterExit => t.unregisters += 1,
            Marker::ProbeExit => t.probes += 1,
            Marker::NapiComplete => t.napi_completes += 1,
            Marker::TxTimeout => t.tx_timeouts += 1,
            Marker::OracleFail => t.guest_oracle_fails += 1,
            Marker::Summary => t.summary = Some([1, 2, 3, 4].map(|i| arg(args, i))),
            Marker::Bql => t.bql = Some([1, 2, 3].map(|i| arg(args, i))),
            Marker::BqlStall => t.bql_stalls += 1,
            Marker::TxRing => {
                let flags = arg(args, 5);
                t.tx_rings += 1;
                t.tx_rings_at_stop += u64::from(flags & abi::TX_RING_AT_STOP != 0);
                t.tx_rings_bql += u64::from(flags & abi::TX_RING_BQL != 0);
            }
            _ => {}
        }
    }
    for e in after_stop(log) {
        match &e.kind {
            EventKind::Dma { .. } => t.dma_after_stop += 1,
            EventKind::Irq { .. } => t.irqs_after_stop += 1,
            _ => {}
        }
        if doorbell(e).is_some() {
            t.doorbells_after_stop += 1;
        }
    }
    t
}

/// The row a finding fails besides the verdict row: its rule's (from
/// the catalogue), or for the guest's own findings the rule their text
/// names. None: only the verdict row.
fn finding_row(f: &Finding) -> (Option<Row>, bool) {
    match f.rule().map(Rule::row) {
        Some(Row::Verdict) | None => {
            let guest = Rule::of_guest_text(&f.detail)
                .map(Rule::row)
                .filter(|&r| r != Row::Verdict);
            (guest, true)
        }
        Some(r) => (Some(r), false),
    }
}

fn counts(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|&(k, v)| (k.to_string(), v)).collect()
}

/// The table for a judged run. `findings` are the run's structured
/// findings (empty for a passed run); `allow_busy` marks scenarios that
/// provoke BUSY on purpose. Returns no rows for an outcome that was not
/// judged by the oracles (panic, fault, timeout, host error).
pub fn table(
    log: &[Event],
    outcome: &Outcome,
    findings: &[Finding],
    allow_busy: bool,
) -> Vec<Check> {
    if !matches!(outcome, Outcome::Passed | Outcome::Failed { .. }) {
        return Vec::new();
    }
    let t = tally(log);
    let stopped = t.stop_exits > 0;
    let summary = t.summary;
    let na_unless = |cond: bool| {
        if cond {
            Status::Held
        } else {
            Status::NotApplicable
        }
    };
    let rows = vec![
        (
            Row::DmaAfterStop,
            na_unless(stopped),
            counts(&[
                ("dma-accesses", t.dma),
                ("dma-after-stop", t.dma_after_stop),
                ("stop-exits", t.stop_exits),
            ]),
        ),
        (
            Row::IrqAfterStop,
            na_unless(stopped),
            counts(&[
                ("interrupts", t.irqs),
                ("interrupts-after-stop", t.irqs_after_stop),
            ]),
        ),
        (
            Row::DoorbellAfterStop,
            na_unless(stopped),
            counts(&[
                ("doorbells", t.doorbells),
                ("doorbells-after-stop", t.doorbells_after_stop),
            ]),
        ),
        (
            Row::DmaMapped,
            na_unless(t.dma > 0),
            counts(&[
                ("dma-checked", t.dma),
                ("dma-reads", t.dma_reads),
                ("dma-writes", t.dma_writes),
                ("dma-bytes", t.dma_bytes),
            ]),
        ),
        (
            Row::Device,
            na_unless(t.probes > 0),
            counts(&[("resets", t.resets), ("interrupts", t.irqs)]),
        ),
        (
            Row::Maps,
            na_unless(t.maps > 0 || summary.is_some()),
            counts(&[
                ("maps", t.maps),
                ("unmaps", t.unmaps),
                ("live-maps-at-end", summary.map_or(0, |s| s[1])),
            ]),
        ),
        (
            Row::Skb,
            na_unless(t.skb_allocs > 0 || summary.is_some()),
            counts(&[
                ("skbs-allocated", t.skb_allocs),
                ("skbs-cloned", t.skb_clones),
                ("skbs-freed", t.skb_frees),
                ("live-skbs-at-end", summary.map_or(0, |s| s[0])),
            ]),
        ),
        (
            Row::Bql,
            na_unless(summary.is_some() || t.bql.is_some() || t.tx_rings_bql > 0),
            counts(&[
                ("bql-balance-checks", t.tx_rings_bql),
                ("bql-in-flight", summary.map_or(0, |s| s[3])),
                ("bql-queued", t.bql.map_or(0, |b| b[0])),
                ("bql-completed", t.bql.map_or(0, |b| b[1])),
                ("bql-stalls", t.bql_stalls),
            ]),
        ),
        (
            Row::Busy,
            na_unless(!allow_busy && (t.probes > 0 || summary.is_some())),
            counts(&[
                ("busy-returns", t.busy.max(summary.map_or(0, |s| s[2]))),
                ("busy-after-false-wake", t.busy_false_wake),
            ]),
        ),
        (
            Row::Frames,
            na_unless(t.rx_delivered > 0),
            counts(&[
                ("frames-sent", t.tx_frames),
                ("frames-received", t.rx_frames),
                ("frames-byte-checked", t.rx_delivered),
            ]),
        ),
        (
            Row::AutoClose,
            na_unless(t.unregisters > 0),
            counts(&[("unregisters", t.unregisters)]),
        ),
        (
            Row::Mac,
            na_unless(t.probes > 0),
            counts(&[("probes", t.probes)]),
        ),
        (
            Row::DeviceError,
            na_unless(t.probes > 0 || !t.faults.is_empty()),
            counts(&[("device-errors", t.faults.len() as u64)]),
        ),
        (
            Row::DoorbellPending,
            na_unless(t.tx_rings > 0),
            counts(&[
                ("batch-end-checks", t.tx_rings - t.tx_rings_at_stop),
                ("stop-entry-checks", t.tx_rings_at_stop),
            ]),
        ),
        (
            Row::Irq,
            na_unless(t.probes > 0),
            counts(&[
                ("napi-completes", t.napi_completes),
                ("int-enable-writes", t.int_enable_writes),
                ("tx-timeouts", t.tx_timeouts),
            ]),
        ),
        (
            Row::Verdict,
            Status::Held,
            counts(&[("guest-oracle-failures", t.guest_oracle_fails)]),
        ),
    ];
    let mut failed_by: Vec<Vec<String>> = vec![Vec::new(); rows.len()];
    fn claim(failed_by: &mut [Vec<String>], row: usize, name: &str) {
        if !failed_by[row].iter().any(|n| n == name) {
            failed_by[row].push(name.to_string());
        }
    }
    for f in findings {
        // Guest oracle texts name their rule; they count there too.
        let (row, verdict) = finding_row(f);
        if let Some(r) = row {
            claim(&mut failed_by, r.index(), &f.oracle);
        }
        if verdict {
            claim(&mut failed_by, Row::Verdict.index(), &f.oracle);
        }
    }
    // The guest's end-of-run summary: the guest fails its verdict on the
    // same values, so these agree with the outcome.
    if let Some([skbs, maps, busy, bql]) = summary {
        if skbs != 0 {
            claim(&mut failed_by, Row::Skb.index(), "guest-summary");
        }
        if maps != 0 {
            claim(&mut failed_by, Row::Maps.index(), "guest-summary");
        }
        if bql != 0 {
            claim(&mut failed_by, Row::Bql.index(), "guest-summary");
        }
        if busy != 0 && !allow_busy {
            claim(&mut failed_by, Row::Busy.index(), "guest-summary");
        }
    }
    // A failed run whose reasons carry no finding (e.g. a protocol error
    // or a bad power-off code) still shows FAILED somewhere.
    if matches!(outcome, Outcome::Failed { .. }) && failed_by.iter().all(Vec::is_empty) {
        claim(&mut failed_by, Row::Verdict.index(), "outcome");
    }
    // Each latched error by name; those a device-error finding names
    // are the unexpected ones (the rest the scenario provoked on purpose).
    let errors: Vec<String> = t
        .faults
        .iter()
        .map(|&(seq, code, addr)| {
            let bad = findings
                .iter()
                .any(|f| f.rule() == Some(Rule::DeviceError) && f.seq == seq);
            let how = if bad { "unexpected" } else { "expected" };
            format!(
                "{} (code {code}) at {addr:#x}, event #{seq}, {how}",
                oracles::device_error_name(code)
            )
        })
        .collect();
    rows.into_iter()
        .zip(failed_by)
        .enumerate()
        .map(|(i, ((row, status, counts), failed_by))| Check {
            check: row.title().to_string(),
            status: if failed_by.is_empty() {
                status
            } else {
                Status::Failed
            },
            counts,
            failed_by,
            errors: if i == Row::DeviceError.index() {
                errors.clone()
            } else {
                Vec::new()
            },
        })
        .collect()
}

/// Characters of evidence a row of the human table shows.
pub const MAX_EVIDENCE: usize = 110;

/// The human table.
pub fn render(checks: &[Check]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    if checks.is_empty() {
        return out;
    }
    let w = checks.iter().map(|c| c.check.len()).max().unwrap_or(0);
    let _ = writeln!(out, "{:<w$}  {:<6}  evidence", "check", "status");
    for c in checks {
        let mut ev: Vec<String> = c.counts.iter().map(|(k, v)| format!("{k} {v}")).collect();
        if !c.failed_by.is_empty() {
            ev.push(format!("failed by: {}", c.failed_by.join(", ")));
        }
        ev.extend(c.errors.iter().cloned());
        // A row lists every latched error; past a screen's width the rest is in --json.
        let ev = crate::explain::cut(&ev.join(", "), MAX_EVIDENCE);
        let _ = writeln!(out, "{:<w$}  {:<6}  {}", c.check, c.status.to_string(), ev);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oracles;
    use nic_model::abi::regs;
    use nic_model::events::Source;

    fn marker(m: Marker, args: &[u64]) -> EventKind {
        EventKind::Marker {
            marker: m.name().into(),
            args: args.to_vec(),
            text: String::new(),
            cpu: None,
        }
    }

    fn dma() -> EventKind {
        EventKind::Dma {
            dir: DmaDir::Read,
            addr: 0x1000,
            len: 64,
            cause: "tx-data".into(),
        }
    }

    fn log(kinds: Vec<EventKind>) -> Vec<Event> {
        kinds
            .into_iter()
            .enumerate()
            .map(|(i, kind)| Event {
                seq: i as u64,
                time_ns: 0,
                source: Source::Guest,
                kind,
            })
            .collect()
    }

    /// A whole clean life: probe, open, one frame, stop, unregister.
    fn clean_life() -> Vec<EventKind> {
        vec![
            marker(Marker::ProbeExit, &[0, 0x0100_0000_0002, 0]),
            marker(Marker::OpenEnter, &[]),
            marker(Marker::DmaMap, &[0x1000, 64, 0]),
            marker(Marker::SkbAlloc, &[1, 64]),
            EventKind::MmioWrite {
                offset: u64::from(regs::TX_TAIL),
                value: 1,
                size: 4,
            },
            marker(Marker::TxRing, &[1, 0, 64, 0, abi::TX_RING_BQL]),
            dma(),
            EventKind::TxFrame {
                seq: 0,
                len: 64,
                hash: 0,
            },
            EventKind::Irq {
                vector: 0,
                masked: false,
            },
            marker(Marker::RxDeliver, &[0x2000, 64, 0]),
            marker(Marker::SkbFree, &[1]),
            marker(Marker::DmaUnmap, &[0x1000, 64]),
            marker(Marker::StopEnter, &[]),
            marker(
                Marker::TxRing,
                &[1, 1, 64, 64, abi::TX_RING_BQL | abi::TX_RING_AT_STOP],
            ),
            marker(Marker::StopExit, &[]),
            marker(Marker::UnregisterEnter, &[0]),
            marker(Marker::UnregisterExit, &[]),
            marker(Marker::Bql, &[64, 64, 1000]),
            marker(Marker::Summary, &[0, 0, 0, 0]),
        ]
    }

    /// The findings `judge::run` attaches to a failed run (host oracles only).
    fn judged(log: &[Event]) -> (Outcome, Vec<Finding>) {
        let f: Vec<Finding> = oracles::check_all(log, true)
            .into_iter()
            .map(Finding::from)
            .collect();
        if f.is_empty() {
            (Outcome::Passed, f)
        } else {
            (
                Outcome::Failed {
                    reasons: f.iter().map(|f| f.detail.clone()).collect(),
                },
                f,
            )
        }
    }

    fn row<'a>(t: &'a [Check], name: &str) -> &'a Check {
        t.iter()
            .find(|c| c.check == name)
            .unwrap_or_else(|| panic!("no row {name}"))
    }

    /// Row `name` of `t`, asserted FAILED by `oracle` alone.
    fn failed_row<'a>(t: &'a [Check], name: &str, oracle: &str) -> &'a Check {
        let r = row(t, name);
        assert_eq!(
            (r.status, &r.failed_by[..]),
            (Status::Failed, &[oracle.to_string()][..]),
            "{}",
            render(t)
        );
        r
    }

    #[test]
    fn clean_run_holds_every_check_with_its_evidence() {
        let l = log(clean_life());
        let (o, f) = judged(&l);
        assert_eq!(o, Outcome::Passed);
        let t = table(&l, &o, &f, false);
        assert!(t.iter().all(|c| c.status == Status::Held), "{}", render(&t));
        // One row per row of the catalogue, in its order.
        let titles: Vec<&str> = t.iter().map(|c| c.check.as_str()).collect();
        assert_eq!(
            titles,
            Row::ALL.iter().map(|r| r.title()).collect::<Vec<_>>()
        );
        let dma = row(&t, "every DMA inside a mapped range");
        assert_eq!(dma.counts["dma-checked"], 1);
        let skb = row(&t, "every skb freed exactly once");
        assert_eq!(
            (skb.counts["skbs-allocated"], skb.counts["skbs-freed"]),
            (1, 1)
        );
        assert_eq!(
            row(&t, "delivered frames match sent bytes").counts["frames-byte-checked"],
            1
        );
        assert_eq!(
            row(&t, "no doorbell after stop-exit").counts["doorbells"],
            1
        );
    }

    #[test]
    fn a_failing_oracle_shows_failed_in_its_row() {
        // Double free: the skb-ledger oracle fails the run...
        let mut k = clean_life();
        k.insert(10, marker(Marker::SkbFree, &[1]));
        let l = log(k);
        let (o, f) = judged(&l);
        assert!(matches!(o, Outcome::Failed { .. }));
        let t = table(&l, &o, &f, false);
        // ...and the table says so, in that row and only there.
        let skb = row(&t, "every skb freed exactly once");
        assert_eq!(skb.status, Status::Failed, "{}", render(&t));
        assert_eq!(skb.failed_by, vec!["skb-ledger"]);
        assert_eq!(t.iter().filter(|c| c.status == Status::Failed).count(), 1);
        assert!(render(&t).contains("FAILED"));
    }

    #[test]
    fn events_after_stop_are_counted_and_fail_their_rows() {
        let mut k = clean_life();
        let at = k.len() - 2;
        k.insert(
            at,
            EventKind::MmioWrite {
                offset: u64::from(regs::RX_TAIL),
                value: 3,
                size: 4,
            },
        );
        k.insert(at, dma());
        let l = log(k);
        let (o, mut f) = judged(&l);
        // The device monitor's live violation, as judge::run names it.
        f.push(Finding {
            oracle: Rule::DmaAfterStop.name().into(),
            seq: 1,
            detail: String::new(),
        });
        let t = table(&l, &o, &f, false);
        let d = row(&t, "no DMA after stop-exit");
        assert_eq!((d.status, d.counts["dma-after-stop"]), (Status::Failed, 1));
        let b = row(&t, "no doorbell after stop-exit");
        assert_eq!(
            (b.status, b.counts["doorbells-after-stop"]),
            (Status::Failed, 1)
        );
        assert_eq!(row(&t, "no interrupt after stop-exit").status, Status::Held);
    }

    #[test]
    fn failed_run_always_has_a_failed_row_and_summary_values_count() {
        let l = log(clean_life());
        let o = Outcome::Failed {
            reasons: vec!["power-off code 3".into()],
        };
        let t = table(&l, &o, &[], false);
        assert_eq!(
            row(&t, "guest verdict and other oracles").status,
            Status::Failed
        );
        // A guest oracle text naming BQL lands in the BQL row as well.
        let f = [Finding {
            oracle: "guest-oracles".into(),
            seq: 0,
            detail: "bql: 60 bytes in flight at the end".into(),
        }];
        let t = table(&l, &o, &f, false);
        assert_eq!(row(&t, "BQL back to zero").status, Status::Failed);
        assert_eq!(
            row(&t, "guest verdict and other oracles").status,
            Status::Failed
        );
        // BQL in flight in the summary is FAILED even before any text.
        let mut k = clean_life();
        *k.last_mut().unwrap() = marker(Marker::Summary, &[0, 0, 0, 60]);
        let t = table(&log(k), &o, &[], false);
        let b = row(&t, "BQL back to zero");
        assert_eq!((b.status, b.counts["bql-in-flight"]), (Status::Failed, 60));
    }

    #[test]
    fn a_device_error_is_named_in_its_row() {
        let mut k = clean_life();
        k.insert(
            5,
            EventKind::DeviceFault {
                code: 3,
                addr: 0x400_1000,
            },
        );
        let l = log(k);
        // Unexpected: the oracle's finding fails the row, which names it.
        let f: Vec<Finding> = oracles::device_error(&l, None)
            .into_iter()
            .map(Finding::from)
            .collect();
        let o = Outcome::Failed {
            reasons: vec!["x".into()],
        };
        let t = table(&l, &o, &f, false);
        let r = failed_row(&t, "device latched no unexpected error", "device-error");
        assert_eq!(
            r.errors,
            vec!["address-outside-ram (code 3) at 0x4001000, event #5, unexpected"]
        );
        assert!(render(&t).contains("address-outside-ram"));
        // Fifteen latched errors do not make a row 1,000 characters wide.
        let many: Vec<EventKind> = (0..15)
            .map(|i| EventKind::DeviceFault {
                code: 9,
                addr: i * 4,
            })
            .collect();
        let t = table(&log(many), &o, &[], false);
        let wide = render(&t).lines().map(str::len).max().unwrap();
        assert!(wide < 240, "{}", render(&t));
        assert!(render(&t).contains("--json"));
        // Expected: no finding, the row holds and still names the error.
        let t = table(&l, &Outcome::Passed, &[], false);
        let r = row(&t, "device latched no unexpected error");
        assert_eq!(r.status, Status::Held);
        assert!(r.errors[0].ends_with(", expected"), "{:?}", r.errors);
        assert_eq!(t.iter().filter(|c| !c.errors.is_empty()).count(), 1);
    }

    #[test]
    fn tx_ring_findings_land_in_their_rows() {
        // One batch of 2 posted and never rung, then a stop with BQL
        // short of the 64 bytes the device sent (from clean_life).
        let bql = abi::TX_RING_BQL;
        let k = clean_life()
            .into_iter()
            .map(|e| match &e {
                EventKind::Marker {
                    marker: m, args, ..
                } if m == Marker::TxRing.name() => match args[4] {
                    f if f == bql => marker(Marker::TxRing, &[2, 0, 64, 0, bql]),
                    _ => marker(Marker::TxRing, &[1, 1, 64, 60, bql | abi::TX_RING_AT_STOP]),
                },
                _ => e,
            })
            .collect();
        let l = log(k);
        let (o, f) = judged(&l);
        let t = table(&l, &o, &f, false);
        let d = failed_row(
            &t,
            "every posted descriptor gets a doorbell",
            "doorbell-pending",
        );
        assert_eq!(
            (d.counts["batch-end-checks"], d.counts["stop-entry-checks"]),
            (1, 1)
        );
        let b = failed_row(&t, "BQL back to zero", "bql-balance");
        assert_eq!(b.counts["bql-balance-checks"], 2);
        assert_eq!(
            row(&t, "guest verdict and other oracles").status,
            Status::Held
        );
        // Without snapshots (BENCH mode) the doorbell row has nothing to judge.
        let quiet: Vec<EventKind> = clean_life()
            .into_iter()
            .filter(
                |e| !matches!(e, EventKind::Marker { marker: m, .. } if m == Marker::TxRing.name()),
            )
            .collect();
        let t = table(&log(quiet), &Outcome::Passed, &[], false);
        assert_eq!(
            row(&t, "every posted descriptor gets a doorbell").status,
            Status::NotApplicable
        );
    }

    #[test]
    fn unjudged_outcomes_and_provoked_busy() {
        let l = log(clean_life());
        assert!(table(
            &l,
            &Outcome::HostError {
                message: "x".into()
            },
            &[],
            false
        )
        .is_empty());
        let t = table(&l, &Outcome::Passed, &[], true);
        assert_eq!(
            row(&t, "BUSY returned zero times").status,
            Status::NotApplicable
        );
        let empty = table(&[], &Outcome::Passed, &[], false);
        assert_eq!(
            row(&empty, "no DMA after stop-exit").status,
            Status::NotApplicable
        );
        let j = serde_json::to_value(&t).unwrap();
        assert_eq!(j[0]["status"], "held");
    }
}
