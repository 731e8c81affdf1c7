//! A run's event log as a timeline: Chrome trace-event JSON, which
//! ui.perfetto.dev and chrome://tracing open. Times are the log's wall
//! times (`time_ns`), in microseconds.
//!
//! Tracks: per vCPU, the driver's markers (instants) and its lifecycle
//! calls (spans), from the vCPU each marker came from (the log records
//! it); scenario phases as spans; the device's TX and RX engines (their
//! DMA and frames), all DMA, interrupts, resets and register writes; the
//! run's violations and findings as instants on their own track; and
//! counters for TX ring occupancy, queue stopped, BQL limit and BQL bytes
//! in flight. Markers of a log without vCPUs (host-side rigs) share one
//! "driver markers" track.

use nic_model::abi::Marker;
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

/// Markers and lifecycle spans of a log that does not say which vCPU
/// sent them.
const T_MARKERS: u32 = 1;
const T_LIFECYCLE: u32 = 2;
const T_PHASES: u32 = 3;
const T_LOG: u32 = 4;
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

/// Track ids of vCPU `cpu`: (markers, lifecycle), after every fixed track.
pub fn vcpu_tracks(cpu: u32) -> (u32, u32) {
    let base = 100 + 2 * cpu;
    (base, base + 1)
}

/// The (markers, lifecycle) tracks of a marker sent from `cpu`.
fn driver_tracks(cpu: Option<u32>) -> (u32, u32) {
    cpu.map_or((T_MARKERS, T_LIFECYCLE), vcpu_tracks)
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
    cpus.sort_unstable();
    cpus.dedup();
    for cpu in &cpus {
        let (markers, lifecycle) = driver_tracks(*cpu);
        let who = cpu.map_or_else(|| "driver".to_string(), |c| format!("vCPU {c} driver"));
        track(&mut out, PID_GUEST, markers, &format!("{who} markers"));
        track(&mut out, PID_GUEST, lifecycle, &format!("{who} lifecycle"));
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
