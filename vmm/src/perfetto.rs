//! A run's event log as a timeline: Chrome trace-event JSON, which
//! ui.perfetto.dev and chrome://tracing open. Times are the log's wall
//! times (`time_ns`), in microseconds.
//!
//! Tracks: per vCPU, the driver's markers (instants), its lifecycle
//! calls (spans), its xmit batches and its NAPI polls (spans), from the
//! vCPU each marker came from (the log records it); scenario phases as
//! spans; the device's TX and RX engines (their
//! DMA and frames), all DMA, interrupts, resets and register writes; the
//! run's violations and findings as instants on their own track; and
//! counters for TX ring occupancy, queue stopped, BQL limit and BQL bytes
//! in flight. Markers of a log without vCPUs (host-side rigs) share one
//! "driver markers" track.
//!
//! The xmit and NAPI spans are derived on the host from events the log
//! already has, so the guest pays no extra VM exit for them and event
//! numbers and seeded schedules stay as they were ([`xmit_batches`],
//! [`napi_polls`]). The driver marks no ndo_start_xmit entry or exit, so
//! an xmit span is one xmit_more batch: the start_xmit calls up to the
//! one that ends the batch with its `tx-ring` snapshot (after the TX_TAIL
//! doorbell, if it rang). A NAPI span runs from the MSI handler's mask
//! and acknowledge (`napi_schedule`) to `napi_complete_done`; a poll that
//! used its whole budget stays scheduled, so its next poll is in the
//! same span.

use nic_model::abi::{self, Marker};
use nic_model::events::{Event, EventKind};
use serde_json::{json, Value};

use crate::decode;
use crate::oracles::{arg, marker_of};

/// Process ids of the trace.
const PID_GUEST: u32 = 1;
const PID_DEVICE: u32 = 2;
const PID_JUDGE: u32 = 3;

/// Track (thread) ids and names of the fixed tracks; each vCPU adds two
/// ([`vcpu_tracks`]).
pub const TRACKS: &[(u32, u32, &str)] = &[
    (PID_GUEST, 3, "scenario phases"),
    (PID_GUEST, 4, "guest log"),
    (PID_DEVICE, 10, "TX engine"),
    (PID_DEVICE, 11, "RX engine"),
    (PID_DEVICE, 12, "DMA"),
    (PID_DEVICE, 13, "interrupts"),
    (PID_DEVICE, 14, "resets"),
    (PID_DEVICE, 15, "registers"),
    (PID_JUDGE, 20, "violations and findings"),
];

/// Markers, lifecycle, xmit and NAPI spans of a log that does not say
/// which vCPU sent them.
const T_MARKERS: u32 = 1;
const T_LIFECYCLE: u32 = 2;
const T_PHASES: u32 = 3;
const T_LOG: u32 = 4;
const T_XMIT: u32 = 5;
const T_NAPI: u32 = 6;
const T_TX: u32 = 10;
const T_RX: u32 = 11;
const T_DMA: u32 = 12;
const T_IRQ: u32 = 13;
const T_RESET: u32 = 14;
const T_REGS: u32 = 15;
const T_FINDINGS: u32 = 20;

/// Names of the counter tracks.
pub const COUNTERS: &[&str] = &[
    "TX ring occupancy",
    "queue stopped",
    "BQL limit",
    "BQL bytes in flight",
];

/// Name of the xmit batch spans ([`xmit_batches`]).
pub const XMIT_SPAN: &str = "xmit batch";
/// Name of the NAPI poll spans that end in `napi_complete_done`
/// ([`napi_polls`]).
pub const NAPI_SPAN: &str = "napi poll";

/// Track ids of vCPU `cpu`: (markers, lifecycle), after every fixed track.
pub fn vcpu_tracks(cpu: u32) -> (u32, u32) {
    let base = 100 + 4 * cpu;
    (base, base + 1)
}

/// Track ids of vCPU `cpu`'s (xmit batches, NAPI polls) spans.
pub fn vcpu_span_tracks(cpu: u32) -> (u32, u32) {
    let base = 100 + 4 * cpu;
    (base + 2, base + 3)
}

/// The (markers, lifecycle) tracks of a marker sent from `cpu`.
fn driver_tracks(cpu: Option<u32>) -> (u32, u32) {
    cpu.map_or((T_MARKERS, T_LIFECYCLE), vcpu_tracks)
}

/// The (xmit, NAPI) span tracks of a marker sent from `cpu`.
fn span_tracks(cpu: Option<u32>) -> (u32, u32) {
    cpu.map_or((T_XMIT, T_NAPI), vcpu_span_tracks)
}

fn cpu_of(e: &Event) -> Option<u32> {
    match &e.kind {
        EventKind::Marker { cpu, .. } => *cpu,
        _ => None,
    }
}

/// Markers start_xmit (or the stack around it, within one batch) can
/// send: a run of these on one vCPU that ends in a `tx-ring` snapshot is
/// one xmit batch. Reclaim markers are here because the lost-wake window
/// and `reclaim-on-xmit` reclaim inside xmit.
fn in_xmit(m: Marker) -> bool {
    matches!(
        m,
        Marker::DmaMap
            | Marker::DmaUnmap
            | Marker::SkbFree
            | Marker::QueueStop
            | Marker::QueueWake
            | Marker::QueueFree
            | Marker::Bql
            | Marker::BqlStall
            | Marker::OracleFail
            | Marker::TxRing
    )
}

/// Whether marker `m` (arguments `args`) is start_xmit's own work, which
/// a batch can begin with: a TX map (a NAPI poll maps only RX buffers) or
/// a stop of the queue (a BUSY return maps nothing).
fn starts_xmit(m: Marker, args: &[u64]) -> bool {
    match m {
        Marker::DmaMap => arg(args, 3) == 0,
        Marker::QueueStop => true,
        _ => false,
    }
}

/// The xmit batch spans of `log`: (track, span). One per `tx-ring`
/// snapshot that ends a batch (not the one at ndo_stop entry), on the
/// vCPU that sent it, from the first marker of start_xmit's own work
/// before it on that vCPU (a TX map or a queue stop, with only xmit
/// markers between; the snapshot itself when there is none, as for a
/// batch that is a single BUSY return) to the snapshot. `doorbell` is
/// the last TX_TAIL write in between, if any.
pub fn xmit_batches(log: &[Event]) -> Vec<(Option<u32>, Value)> {
    let mut out = Vec::new();
    // Per vCPU: the first event of the current run of xmit markers.
    let mut start: Vec<(Option<u32>, Option<&Event>)> = Vec::new();
    let mut doorbell: Option<&Event> = None;
    for e in log {
        if let EventKind::MmioWrite { offset, .. } = e.kind {
            if offset == u64::from(abi::regs::TX_TAIL) {
                doorbell = Some(e);
            }
            continue;
        }
        let Some((m, args, _)) = marker_of(e) else {
            continue;
        };
        let cpu = cpu_of(e);
        let i = match start.iter().position(|(c, _)| *c == cpu) {
            Some(i) => i,
            None => {
                start.push((cpu, None));
                start.len() - 1
            }
        };
        let run = &mut start[i].1;
        if lifecycle(m).is_some() {
            // A doorbell the open or stop did not follow with a batch
            // end belongs to no batch.
            doorbell = None;
        }
        if !in_xmit(m) {
            *run = None;
            continue;
        }
        if m == Marker::TxRing {
            // The doorbell of this batch, if it rang: the last TX_TAIL
            // write since the previous snapshot.
            let rang = doorbell.take();
            if arg(args, 5) & abi::TX_RING_AT_STOP == 0 {
                // A batch with no map or stop of its own (a single BUSY
                // return) starts at its doorbell.
                let from = run.or(rang).unwrap_or(e);
                let mut v = span(from, e, span_tracks(cpu).0, XMIT_SPAN);
                v["args"]["next_to_post"] = json!(arg(args, 1));
                v["args"]["bql_queued"] = json!(arg(args, 3));
                v["args"]["doorbell"] = json!(rang.map(|d| d.seq));
                out.push((cpu, v));
            }
            *run = None;
            continue;
        }
        if run.is_none() && starts_xmit(m, args) {
            *run = Some(e);
        }
    }
    out
}

fn pid_of(tid: u32) -> u32 {
    TRACKS
        .iter()
        .find(|t| t.1 == tid)
        .map_or(PID_GUEST, |t| t.0)
}

fn us(e: &Event) -> f64 {
    e.time_ns as f64 / 1e3
}

fn instant(e: &Event, tid: u32, name: &str) -> Value {
    json!({
        "ph": "i", "s": "t", "name": name, "ts": us(e), "pid": pid_of(tid), "tid": tid,
        "args": decode::json(e),
    })
}

fn span(start: &Event, end: &Event, tid: u32, name: &str) -> Value {
    json!({
        "ph": "X", "name": name, "ts": us(start), "dur": (us(end) - us(start)).max(0.0),
        "pid": pid_of(tid), "tid": tid,
        "args": { "from": start.seq, "to": end.seq },
    })
}

fn counter(e: &Event, name: &str, value: u64) -> Value {
    json!({ "ph": "C", "name": name, "ts": us(e), "pid": PID_GUEST, "args": { "value": value } })
}

/// The lifecycle span a marker opens or closes: (name, opens).
fn lifecycle(m: Marker) -> Option<(&'static str, bool)> {
    Some(match m {
        Marker::ProbeEnter => ("probe", true),
        Marker::ProbeExit => ("probe", false),
        Marker::OpenEnter => ("open", true),
        Marker::OpenExit => ("open", false),
        Marker::StopEnter => ("stop", true),
        Marker::StopExit => ("stop", false),
        Marker::UnregisterEnter => ("unregister", true),
        Marker::UnregisterExit => ("unregister", false),
        _ => return None,
    })
}

/// The NAPI poll spans of `log`: (vCPU, span). A span opens at the MSI
/// handler's mask (an INT_ENABLE write with the TX and RX causes off)
/// when an INT_CAUSE write acknowledges TX or RX after it (the handler
/// scheduled NAPI), unless NAPI is disabled (`napi-disable` 1
/// until 0: a handler that acknowledges then, as `irq-mask-unconditional`
/// does, schedules nothing) or a span is open (SCHED is held: the poll is
/// pending). It ends at `napi-complete` ([`NAPI_SPAN`], on that marker's
/// vCPU: the poll's), at `napi-disable` 1 (stop took SCHED from a poll
/// that never completed), or at the end of the log. A `napi-complete`
/// with no open span (its schedule's writes were not seen) is a span of
/// its own length.
pub fn napi_polls(log: &[Event]) -> Vec<(Option<u32>, Value)> {
    use abi::regs::{INT_CAUSE, INT_ENABLE, INT_RX, INT_TX};
    let ring = u64::from(INT_TX | INT_RX);
    let mut out = Vec::new();
    let mut enabled = true;
    let mut open: Option<&Event> = None;
    // The last INT_ENABLE write that masked TX and RX, since NAPI was
    // last enabled or disabled (another vCPU's writes may come between
    // it and the acknowledge).
    let mut mask: Option<&Event> = None;
    // The vCPU the last poll completed on, for a span left open.
    let mut poll_cpu: Option<u32> = None;
    for e in log {
        if let EventKind::MmioWrite { offset, value, .. } = e.kind {
            if offset == u64::from(INT_ENABLE) {
                mask = (value & ring == 0).then_some(e);
            } else if offset == u64::from(INT_CAUSE) && value & ring != 0 && enabled {
                open = open.or(mask);
            }
            continue;
        }
        let Some((m, args, _)) = marker_of(e) else {
            continue;
        };
        match m {
            Marker::NapiComplete => {
                let from = open.take().unwrap_or(e);
                let mut v = span(from, e, 0, NAPI_SPAN);
                v["args"]["rx"] = json!(arg(args, 1));
                v["args"]["budget"] = json!(arg(args, 2));
                poll_cpu = cpu_of(e);
                out.push((poll_cpu, v));
            }
            Marker::NapiDisable if arg(args, 1) == 1 => {
                (enabled, mask) = (false, None);
                if let Some(from) = open.take() {
                    let name = format!("{NAPI_SPAN} (disabled before complete)");
                    out.push((poll_cpu.or(cpu_of(e)), span(from, e, 0, &name)));
                }
            }
            // Open's acknowledge of what latched while down follows
            // (no handler's mask before it).
            Marker::NapiDisable => (enabled, mask) = (true, None),
            _ => {}
        }
    }
    if let (Some(from), Some(last)) = (open, log.last()) {
        let name = format!("{NAPI_SPAN} (never completed)");
        out.push((poll_cpu, span(from, last, 0, &name)));
    }
    out
}

/// The trace of `log`.
pub fn trace(log: &[Event]) -> Value {
    let mut out: Vec<Value> = Vec::new();
    for (pid, name) in [
        (PID_GUEST, "guest"),
        (PID_DEVICE, "device (NIC model)"),
        (PID_JUDGE, "judgement"),
    ] {
        out.push(json!({"ph": "M", "name": "process_name", "pid": pid, "args": {"name": name}}));
    }
    let track = |out: &mut Vec<Value>, pid: u32, tid: u32, name: &str| {
        out.push(json!({"ph": "M", "name": "thread_name", "pid": pid, "tid": tid, "args": {"name": name}}));
        out.push(json!({"ph": "M", "name": "thread_sort_index", "pid": pid, "tid": tid, "args": {"sort_index": tid}}));
    };
    // The driver's tracks first: one pair per vCPU that sent a marker.
    let mut cpus: Vec<Option<u32>> = log
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Marker { cpu, .. } => Some(*cpu),
            _ => None,
        })
        .collect();
    let xmits = xmit_batches(log);
    let polls = napi_polls(log);
    cpus.extend(xmits.iter().chain(&polls).map(|(cpu, _)| *cpu));
    cpus.sort_unstable();
    cpus.dedup();
    for cpu in &cpus {
        let (markers, lifecycle) = driver_tracks(*cpu);
        let (xmit, napi) = span_tracks(*cpu);
        let who = cpu.map_or_else(|| "driver".to_string(), |c| format!("vCPU {c} driver"));
        track(&mut out, PID_GUEST, markers, &format!("{who} markers"));
        track(&mut out, PID_GUEST, lifecycle, &format!("{who} lifecycle"));
        track(&mut out, PID_GUEST, xmit, &format!("{who} xmit batches"));
        track(&mut out, PID_GUEST, napi, &format!("{who} NAPI polls"));
    }
    for (cpu, mut v) in xmits {
        v["tid"] = json!(span_tracks(cpu).0);
        out.push(v);
    }
    for (cpu, mut v) in polls {
        v["tid"] = json!(span_tracks(cpu).1);
        out.push(v);
    }
    for &(pid, tid, name) in TRACKS {
        track(&mut out, pid, tid, name);
    }
    // Lifecycle spans still open: (track, name, start).
    let mut open: Vec<(u32, &'static str, &Event)> = Vec::new();
    let mut phase: Option<(&Event, String)> = None;
    let mut reset: Option<&Event> = None;
    for e in log {
        match &e.kind {
            EventKind::Marker {
                marker, text, cpu, ..
            } => {
                let name = if text.is_empty() {
                    marker.clone()
                } else {
                    format!("{marker}: {text}")
                };
                let (t_markers, t_lifecycle) = driver_tracks(*cpu);
                out.push(instant(e, t_markers, &name));
                let Some((m, args, text)) = marker_of(e) else {
                    continue;
                };
                if let Some((span_name, opens)) = lifecycle(m) {
                    if opens {
                        open.push((t_lifecycle, span_name, e));
                    } else if let Some(i) = open
                        .iter()
                        .rposition(|(t, n, _)| *t == t_lifecycle && *n == span_name)
                    {
                        let (_, _, start) = open.remove(i);
                        out.push(span(start, e, t_lifecycle, span_name));
                    }
                }
                match m {
                    Marker::Phase => {
                        if let Some((start, name)) = phase.take() {
                            out.push(span(start, e, T_PHASES, &name));
                        }
                        phase = Some((
                            e,
                            if text.is_empty() {
                                format!("phase {}", arg(args, 1))
                            } else {
                                text.to_string()
                            },
                        ));
                    }
                    Marker::TxRing => {
                        out.push(counter(
                            e,
                            COUNTERS[0],
                            arg(args, 1).wrapping_sub(arg(args, 2)),
                        ));
                        out.push(counter(
                            e,
                            COUNTERS[3],
                            arg(args, 3).wrapping_sub(arg(args, 4)),
                        ));
                    }
                    Marker::QueueStop => out.push(counter(e, COUNTERS[1], 1)),
                    Marker::QueueWake => out.push(counter(e, COUNTERS[1], 0)),
                    Marker::Bql => out.push(counter(e, COUNTERS[2], arg(args, 3))),
                    _ => {}
                }
            }
            EventKind::Dma { cause, .. } => {
                let name = format!("dma {cause}");
                out.push(instant(e, T_DMA, &name));
                if cause.starts_with("tx") {
                    out.push(instant(e, T_TX, &name));
                } else if cause.starts_with("rx") {
                    out.push(instant(e, T_RX, &name));
                }
            }
            EventKind::TxFrame { seq, len, .. } => {
                out.push(instant(e, T_TX, &format!("tx frame {seq} ({len} B)")))
            }
            EventKind::RxFrame { seq, len, .. } => {
                out.push(instant(e, T_RX, &format!("rx frame {seq} ({len} B)")))
            }
            EventKind::Irq { vector, masked } => {
                let m = if *masked { " (masked, pending)" } else { "" };
                out.push(instant(
                    e,
                    T_IRQ,
                    &format!("irq {} {}{m}", vector, decode::vector_name(*vector)),
                ));
            }
            EventKind::ResetStart => {
                out.push(instant(e, T_RESET, "reset start"));
                reset = Some(e);
            }
            EventKind::ResetDone => {
                if let Some(start) = reset.take() {
                    out.push(span(start, e, T_RESET, "reset"));
                }
            }
            EventKind::MmioWrite { offset, .. } => {
                out.push(instant(e, T_REGS, &decode::reg_name(*offset)))
            }
            EventKind::DeviceFault { code, .. } => out.push(instant(
                e,
                T_FINDINGS,
                &format!("device error {}", crate::oracles::device_error_name(*code)),
            )),
            EventKind::Violation { rule, .. } => {
                out.push(instant(e, T_FINDINGS, &format!("violation {rule}")))
            }
            EventKind::Finding { oracle, at, .. } => {
                // At the time of the event it points at.
                let when = log.iter().find(|x| x.seq == *at).unwrap_or(e);
                let mut v = instant(when, T_FINDINGS, &format!("finding {oracle}"));
                v["args"] = decode::json(e);
                out.push(v);
            }
            EventKind::Log { text, .. } => out.push(instant(e, T_LOG, text)),
            EventKind::Verdict { pass, text } => {
                let tid = if *pass { T_LOG } else { T_FINDINGS };
                out.push(instant(
                    e,
                    tid,
                    &format!("verdict {}: {text}", if *pass { "pass" } else { "fail" }),
                ));
            }
            EventKind::MmioRead { .. } | EventKind::ConfigWrite { .. } | EventKind::Note { .. } => {
            }
        }
    }
    // Spans still open at the end of the log end there.
    if let Some(last) = log.last() {
        for (tid, name, start) in open {
            out.push(span(start, last, tid, &format!("{name} (never returned)")));
        }
        if let Some((start, name)) = phase {
            out.push(span(start, last, T_PHASES, &name));
        }
        if let Some(start) = reset {
            out.push(span(start, last, T_RESET, "reset (never done)"));
        }
    }
    json!({ "traceEvents": out, "displayTimeUnit": "ns" })
}

#[cfg(test)]
mod tests {
    use super::*;
    use nic_model::events::{DmaDir, Source};

    fn ev(seq: u64, t: u64, source: Source, kind: EventKind) -> Event {
        Event {
            seq,
            time_ns: t,
            source,
            kind,
        }
    }
    fn marker(seq: u64, t: u64, m: Marker, args: &[u64]) -> Event {
        ev(
            seq,
            t,
            Source::Guest,
            EventKind::Marker {
                marker: m.name().into(),
                args: args.to_vec(),
                text: String::new(),
                cpu: None,
            },
        )
    }

    #[test]
    fn spans_counters_and_violations_land_on_their_tracks() {
        let log = vec![
            marker(0, 1000, Marker::OpenEnter, &[]),
            marker(1, 3000, Marker::OpenExit, &[0]),
            marker(2, 4000, Marker::TxRing, &[5, 2, 300, 100, 2]),
            ev(
                3,
                5000,
                Source::Device,
                EventKind::Dma {
                    dir: DmaDir::Read,
                    addr: 1,
                    len: 2,
                    cause: "tx-data".into(),
                },
            ),
            ev(
                4,
                5000,
                Source::Device,
                EventKind::Violation {
                    rule: "dma-after-stop".into(),
                    detail: "x".into(),
                },
            ),
            marker(5, 6000, Marker::StopEnter, &[]),
            ev(
                6,
                7000,
                Source::Vmm,
                EventKind::Finding {
                    oracle: "reset-wait".into(),
                    at: 3,
                    detail: "y".into(),
                },
            ),
        ];
        let t = trace(&log);
        let evs = t["traceEvents"].as_array().unwrap();
        let open = evs
            .iter()
            .find(|v| v["ph"] == "X" && v["name"] == "open")
            .unwrap();
        assert_eq!(
            (open["ts"].as_f64(), open["dur"].as_f64()),
            (Some(1.0), Some(2.0))
        );
        let occ = evs
            .iter()
            .find(|v| v["ph"] == "C" && v["name"] == COUNTERS[0])
            .unwrap();
        assert_eq!(occ["args"]["value"], 3);
        let inflight = evs
            .iter()
            .find(|v| v["ph"] == "C" && v["name"] == COUNTERS[3])
            .unwrap();
        assert_eq!(inflight["args"]["value"], 200);
        assert!(evs
            .iter()
            .any(|v| v["tid"] == T_TX && v["name"] == "dma tx-data"));
        assert!(evs
            .iter()
            .any(|v| v["tid"] == T_FINDINGS && v["name"] == "violation dma-after-stop"));
        let f = evs
            .iter()
            .find(|v| v["name"] == "finding reset-wait")
            .unwrap();
        assert_eq!(
            f["ts"].as_f64(),
            Some(5.0),
            "a finding sits at the event it points at"
        );
        assert!(evs.iter().any(|v| v["name"] == "stop (never returned)"));
    }

    fn write(seq: u64, offset: u32, value: u64) -> Event {
        ev(
            seq,
            seq * 1000,
            Source::Device,
            EventKind::MmioWrite {
                offset: u64::from(offset),
                value,
                size: 4,
            },
        )
    }

    /// The spans of `trace(log)` named `name`, as (tid, from, to).
    fn spans(log: &[Event], name: &str) -> Vec<(u64, u64, u64)> {
        let t = trace(log);
        t["traceEvents"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| v["ph"] == "X" && v["name"] == name)
            .map(|v| {
                let n = |k: &str| v["args"][k].as_u64().unwrap();
                (v["tid"].as_u64().unwrap(), n("from"), n("to"))
            })
            .collect()
    }

    #[test]
    fn xmit_batches_run_from_their_first_map_or_doorbell_to_the_snapshot() {
        use abi::regs::TX_TAIL;
        let m = |seq, mk, args: &[u64]| on(0, marker(seq, seq * 1000, mk, args));
        let log = vec![
            m(0, Marker::OpenExit, &[0]),
            m(1, Marker::SkbAlloc, &[7, 60]),
            // Two skbs of one batch: maps, a stop, the doorbell, the snapshot.
            m(2, Marker::DmaMap, &[0x1000, 60, 0]),
            m(3, Marker::DmaMap, &[0x2000, 60, 0]),
            m(4, Marker::QueueStop, &[2]),
            write(5, TX_TAIL, 2),
            m(6, Marker::TxRing, &[2, 0, 120, 0, 2]),
            // An RX refill map and a poll are no xmit.
            m(7, Marker::DmaMap, &[0x3000, 2048, 1]),
            m(8, Marker::NapiComplete, &[0, 64]),
            // A reclaim's unmap starts no batch: one BUSY return is a
            // batch from its doorbell.
            m(9, Marker::DmaUnmap, &[0x1000, 60]),
            write(10, TX_TAIL, 3),
            m(11, Marker::TxRing, &[3, 0, 180, 0, 2]),
            // A TX map that a non-xmit marker follows is no batch's start.
            m(12, Marker::DmaMap, &[0x4000, 60, 0]),
            m(13, Marker::Phase, &[1]),
            // A batch that starts by stopping the queue.
            m(14, Marker::QueueStop, &[1]),
            write(15, TX_TAIL, 4),
            m(16, Marker::TxRing, &[4, 0, 240, 0, 2]),
            // A doorbell before an open is no later batch's.
            write(17, TX_TAIL, 4),
            m(18, Marker::OpenEnter, &[]),
            m(19, Marker::TxRing, &[4, 4, 240, 240, 2]),
            // The snapshot at stop entry ends no batch.
            m(20, Marker::StopEnter, &[]),
            m(21, Marker::TxRing, &[4, 4, 240, 240, 3]),
        ];
        let (xmit, _) = vcpu_span_tracks(0);
        let x = u64::from(xmit);
        assert_eq!(
            spans(&log, XMIT_SPAN),
            vec![(x, 2, 6), (x, 10, 11), (x, 14, 16), (x, 19, 19)]
        );
        let t = trace(&log);
        let args: Vec<(Value, Value, Value)> = t["traceEvents"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| v["name"] == XMIT_SPAN)
            .map(|v| {
                let a = &v["args"];
                (
                    a["doorbell"].clone(),
                    a["next_to_post"].clone(),
                    a["bql_queued"].clone(),
                )
            })
            .collect();
        assert_eq!(
            args,
            vec![
                (json!(5), json!(2), json!(120)),
                (json!(10), json!(3), json!(180)),
                (json!(15), json!(4), json!(240)),
                (Value::Null, json!(4), json!(240)),
            ]
        );
    }

    #[test]
    fn napi_polls_run_from_the_handlers_mask_to_napi_complete() {
        use abi::regs::{INT_CAUSE, INT_ENABLE};
        let m = |seq, mk, args: &[u64]| on(1, marker(seq, seq * 1000, mk, args));
        let log = vec![
            m(0, Marker::NapiDisable, &[0]),
            // Open's acknowledge of a latched cause schedules nothing.
            write(1, INT_CAUSE, 3),
            // The handler: mask, (another vCPU's doorbell), acknowledge.
            write(2, INT_ENABLE, 4),
            write(3, abi::regs::TX_TAIL, 9),
            write(4, INT_CAUSE, 3),
            m(5, Marker::DmaUnmap, &[0x1000, 60]),
            write(6, INT_ENABLE, 7),
            m(7, Marker::NapiComplete, &[0, 64]),
            // Scheduled again (an error-only acknowledge is no schedule),
            // then stop's napi_disable takes SCHED.
            write(8, INT_ENABLE, 4),
            write(9, INT_CAUSE, 4),
            write(10, INT_CAUSE, 1),
            on(0, marker(11, 11_000, Marker::NapiDisable, &[1])),
            // A handler that acknowledges while NAPI is off schedules nothing.
            write(12, INT_ENABLE, 4),
            write(13, INT_CAUSE, 3),
            // Stop's INT_ENABLE 0 is no handler's mask for open's acknowledge.
            write(14, INT_ENABLE, 0),
            on(0, marker(15, 15_000, Marker::NapiDisable, &[0])),
            write(16, INT_CAUSE, 3),
            write(17, INT_ENABLE, 7),
            // Enabled again: the handler schedules.
            write(18, INT_ENABLE, 4),
            write(19, INT_CAUSE, 3),
            m(20, Marker::NapiComplete, &[1, 64]),
            // A complete whose schedule was not seen.
            m(21, Marker::NapiComplete, &[0, 64]),
            // A mask and an error-only acknowledge schedule nothing.
            write(22, INT_ENABLE, 4),
            write(23, INT_CAUSE, 4),
            m(24, Marker::NapiComplete, &[0, 64]),
            // Scheduled at the end of the log.
            write(25, INT_ENABLE, 4),
            write(26, INT_CAUSE, 2),
        ];
        let (_, napi) = vcpu_span_tracks(1);
        let n = u64::from(napi);
        assert_eq!(
            spans(&log, NAPI_SPAN),
            vec![(n, 2, 7), (n, 18, 20), (n, 21, 21), (n, 24, 24)]
        );
        assert_eq!(
            spans(&log, "napi poll (disabled before complete)"),
            vec![(n, 8, 11)]
        );
        assert_eq!(
            spans(&log, "napi poll (never completed)"),
            vec![(n, 25, 26)]
        );
    }

    fn on(cpu: u32, mut e: Event) -> Event {
        if let EventKind::Marker { cpu: c, .. } = &mut e.kind {
            *c = Some(cpu);
        }
        e
    }

    #[test]
    fn each_vcpu_has_its_own_marker_and_lifecycle_tracks() {
        // Open on CPU 0 interleaved with a poll on CPU 1: the open span
        // still pairs up on CPU 0's track.
        let log = vec![
            on(0, marker(0, 1000, Marker::OpenEnter, &[])),
            on(1, marker(1, 2000, Marker::OpenEnter, &[])),
            on(1, marker(2, 2500, Marker::NapiComplete, &[0, 64])),
            on(0, marker(3, 3000, Marker::OpenExit, &[0])),
        ];
        let t = trace(&log);
        let evs = t["traceEvents"].as_array().unwrap();
        let named = |name: &str| {
            evs.iter()
                .find(|v| v["name"] == "thread_name" && v["args"]["name"] == name)
                .map(|v| v["tid"].as_u64().unwrap() as u32)
        };
        assert_eq!(named("vCPU 0 driver markers"), Some(vcpu_tracks(0).0));
        assert_eq!(named("vCPU 1 driver lifecycle"), Some(vcpu_tracks(1).1));
        assert_eq!(named("driver markers"), None, "no marker without a vCPU");
        assert_eq!(
            named("vCPU 1 driver xmit batches"),
            Some(vcpu_span_tracks(1).0)
        );
        assert_eq!(
            named("vCPU 0 driver NAPI polls"),
            Some(vcpu_span_tracks(0).1)
        );
        // Every track of every vCPU is its own, and no fixed track's.
        let mut tids: Vec<u32> = TRACKS.iter().map(|t| t.1).collect();
        tids.extend([T_MARKERS, T_LIFECYCLE, T_XMIT, T_NAPI]);
        for cpu in 0..4 {
            let ((a, b), (c, d)) = (vcpu_tracks(cpu), vcpu_span_tracks(cpu));
            tids.extend([a, b, c, d]);
        }
        let n = tids.len();
        tids.sort_unstable();
        tids.dedup();
        assert_eq!(tids.len(), n, "track ids collide");
        let napi = evs.iter().find(|v| v["name"] == "napi-complete").unwrap();
        assert_eq!(napi["tid"], vcpu_tracks(1).0);
        let open = evs
            .iter()
            .find(|v| v["ph"] == "X" && v["name"] == "open")
            .unwrap();
        assert_eq!(open["tid"], vcpu_tracks(0).1);
        assert_eq!(open["args"]["from"], 0);
        assert!(evs
            .iter()
            .any(|v| v["name"] == "open (never returned)" && v["tid"] == vcpu_tracks(1).1));
    }
}
