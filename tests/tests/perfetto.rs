//! `--perfetto FILE` on two vCPUs (issue 12): the driver has a markers
//! track and a lifecycle track per vCPU, from the vCPU each marker came
//! from (the log's `cpu`), with markers on both in an `smp` run; every
//! violation and finding of the log is an instant event; the counter
//! tracks are there; the xmit batch and NAPI poll spans pair up with the
//! markers and register writes they are derived from, one per batch end
//! and per `napi-complete`, well nested.

use nicproof_tests::*;
use serde_json::Value;
use std::process::Command;

#[test]
fn an_smp_timeline_has_a_track_per_vcpu_and_every_finding() {
    let dir = std::env::temp_dir().join(format!("nicproof-perfetto-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (log, trace) = (dir.join("smp.jsonl"), dir.join("smp.trace.json"));
    // Caught on two vCPUs: NAPI runs on CPU 1, the lifecycle on CPU 0.
    let out = Command::new(nicproof_bin())
        .args(["run", "--guest", guest_image().to_str().unwrap(), "--quiet"])
        .args(["--scenario", "smp", "--knob", "variant=1"])
        .args(["--mutant", "irq-mask-unconditional", "--events"])
        .arg(&log)
        .arg("--perfetto")
        .arg(&trace)
        .output()
        .expect("spawning nicproof");
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{report}");

    let saved: Vec<Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // The log says which vCPU sent each marker.
    for cpu in [0, 1] {
        assert!(
            saved
                .iter()
                .any(|e| e["event"] == "marker" && e["cpu"] == cpu),
            "no marker from vCPU {cpu}"
        );
    }

    let t: Value = serde_json::from_slice(&std::fs::read(&trace).unwrap()).unwrap();
    let evs = t["traceEvents"].as_array().unwrap();
    let track = |name: &str| {
        evs.iter()
            .find(|e| e["name"] == "thread_name" && e["args"]["name"] == name)
            .map(|e| (e["pid"].clone(), e["tid"].clone()))
    };
    let mut marker_tracks = Vec::new();
    for cpu in [0, 1] {
        let markers = track(&format!("vCPU {cpu} driver markers"))
            .unwrap_or_else(|| panic!("no markers track for vCPU {cpu}"));
        assert!(
            track(&format!("vCPU {cpu} driver lifecycle")).is_some(),
            "no lifecycle track for vCPU {cpu}"
        );
        // Each vCPU's markers sit on its own track, and only there.
        let on = |tid: &(Value, Value), e: &Value| e["pid"] == tid.0 && e["tid"] == tid.1;
        let mine: Vec<&Value> = evs
            .iter()
            .filter(|e| e["ph"] == "i" && on(&markers, e))
            .collect();
        let sent = saved
            .iter()
            .filter(|e| e["event"] == "marker" && e["cpu"] == cpu)
            .count();
        assert_eq!(mine.len(), sent, "vCPU {cpu}: track vs log");
        assert!(mine.iter().all(|e| e["args"]["cpu"] == cpu));
        marker_tracks.push(markers);
    }
    assert_ne!(marker_tracks[0], marker_tracks[1]);
    assert!(
        track("driver markers").is_none(),
        "every marker came from a vCPU"
    );
    // NAPI polls run on CPU 1, the lifecycle on CPU 0.
    let name_on = |name: &str, tid: &(Value, Value)| {
        evs.iter()
            .any(|e| e["name"] == name && e["pid"] == tid.0 && e["tid"] == tid.1)
    };
    assert!(name_on("napi-complete", &marker_tracks[1]));
    assert!(name_on("stop-enter", &marker_tracks[0]));
    let lifecycle0 = track("vCPU 0 driver lifecycle").unwrap();
    assert!(evs.iter().any(|e| e["ph"] == "X"
        && e["name"] == "stop"
        && e["pid"] == lifecycle0.0
        && e["tid"] == lifecycle0.1));

    xmit_and_napi_spans_pair_up(&saved, evs);

    // Every violation and finding of the log is an instant on the timeline.
    let judged: Vec<&Value> = saved
        .iter()
        .filter(|e| e["event"] == "violation" || e["event"] == "finding")
        .collect();
    assert!(!judged.is_empty(), "the mutant is caught: {report}");
    for j in judged {
        let name = match j["event"].as_str() {
            Some("violation") => format!("violation {}", j["rule"].as_str().unwrap()),
            _ => format!("finding {}", j["oracle"].as_str().unwrap()),
        };
        assert!(
            evs.iter()
                .any(|e| e["ph"] == "i" && e["name"] == name && e["args"]["seq"] == j["seq"]),
            "{name} #{} is not on the timeline",
            j["seq"]
        );
    }
    for c in [
        "TX ring occupancy",
        "queue stopped",
        "BQL limit",
        "BQL bytes in flight",
    ] {
        assert!(
            evs.iter().any(|e| e["ph"] == "C" && e["name"] == c),
            "no counter {c}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The spans on the track named `name`: (from, to, span).
fn spans_on<'a>(evs: &'a [Value], name: &str) -> Vec<(u64, u64, &'a Value)> {
    let Some(t) = evs
        .iter()
        .find(|e| e["name"] == "thread_name" && e["args"]["name"] == name)
    else {
        return Vec::new();
    };
    evs.iter()
        .filter(|e| e["ph"] == "X" && e["pid"] == t["pid"] && e["tid"] == t["tid"])
        .map(|e| {
            let n = |k: &str| e["args"][k].as_u64().expect("span args from/to");
            (n("from"), n("to"), e)
        })
        .collect()
}

/// The xmit batch and NAPI poll spans of each vCPU against the log they
/// come from: one xmit batch per `tx-ring` snapshot that ends a batch
/// (not the one at stop entry), from start_xmit's first map or queue stop
/// (or its doorbell) with only xmit markers of that vCPU in between; one
/// `napi poll` per `napi-complete`; every NAPI span from the MSI handler's
/// mask while NAPI is on, with no napi_disable inside (one that
/// `napi_disable` ends ends there); every track's spans well nested.
fn xmit_and_napi_spans_pair_up(saved: &[Value], evs: &[Value]) {
    let at = |seq: u64| &saved[seq as usize];
    let is_marker = |e: &Value, cpu: u64, names: &[&str]| {
        e["event"] == "marker" && e["cpu"] == cpu && names.iter().any(|n| e["marker"] == *n)
    };
    let xmit_markers = [
        "dma-map",
        "dma-unmap",
        "skb-free",
        "queue-stop",
        "queue-wake",
        "queue-free",
        "bql",
        "bql-stall",
        "oracle-fail",
    ];
    let mmio = |e: &Value, reg: u64| e["event"] == "mmio-write" && e["offset"] == reg;
    let (tx_tail, int_enable) = (0x20, 0x54);
    let (mut xmits, mut polls) = (0, 0);
    for cpu in [0u64, 1] {
        let mut ends: Vec<u64> = saved
            .iter()
            .filter(|e| is_marker(e, cpu, &["tx-ring"]) && e["args"][4].as_u64().unwrap() & 1 == 0)
            .map(|e| e["seq"].as_u64().unwrap())
            .collect();
        let batches = spans_on(evs, &format!("vCPU {cpu} driver xmit batches"));
        let mut got: Vec<u64> = batches.iter().map(|s| s.1).collect();
        got.sort_unstable();
        ends.sort_unstable();
        assert_eq!(
            got, ends,
            "vCPU {cpu}: one xmit batch per batch-end tx-ring"
        );
        for &(from, to, span) in &batches {
            assert_eq!(span["name"], "xmit batch");
            let first = at(from);
            assert!(
                from == to
                    || mmio(first, tx_tail)
                    || is_marker(first, cpu, &["queue-stop"])
                    || (is_marker(first, cpu, &["dma-map"]) && first["args"][2] == 0),
                "xmit batch #{from}..#{to} starts at {first}"
            );
            for e in &saved[from as usize + 1..to as usize] {
                assert!(
                    e["event"] != "marker" || e["cpu"] != cpu || is_marker(e, cpu, &xmit_markers),
                    "xmit batch #{from}..#{to} holds {e}"
                );
            }
            if let Some(d) = span["args"]["doorbell"].as_u64() {
                assert!(mmio(at(d), tx_tail), "doorbell #{d} is no TX_TAIL write");
                assert!(d <= to, "doorbell #{d} after the batch #{from}..#{to}");
            }
        }
        xmits += batches.len();

        let completes: Vec<u64> = saved
            .iter()
            .filter(|e| is_marker(e, cpu, &["napi-complete"]))
            .map(|e| e["seq"].as_u64().unwrap())
            .collect();
        let napi = spans_on(evs, &format!("vCPU {cpu} driver NAPI polls"));
        let mut got: Vec<u64> = napi
            .iter()
            .filter(|s| s.2["name"] == "napi poll")
            .map(|s| s.1)
            .collect();
        got.sort_unstable();
        assert_eq!(
            got, completes,
            "vCPU {cpu}: one napi poll per napi-complete"
        );
        let napi_disable = |e: &Value| e["event"] == "marker" && e["marker"] == "napi-disable";
        for &(from, to, span) in &napi {
            let first = at(from);
            assert!(
                from == to
                    || (mmio(first, int_enable) && first["value"].as_u64().unwrap() & 3 == 0),
                "{span}: starts at {first}"
            );
            // Scheduled while NAPI was on, and no napi_disable before its end.
            let last_switch = saved[..from as usize]
                .iter()
                .rev()
                .find(|e| napi_disable(e));
            assert!(
                last_switch.is_none_or(|e| e["args"][0] == 0),
                "{span}: starts while NAPI is disabled ({})",
                last_switch.unwrap()
            );
            assert!(
                !saved[from as usize..to as usize].iter().any(napi_disable),
                "{span}: spans a napi_disable"
            );
            match span["name"].as_str().unwrap() {
                "napi poll" => {}
                "napi poll (disabled before complete)" => assert!(
                    napi_disable(at(to)) && at(to)["args"][0] == 1,
                    "{span}: ends at {}",
                    at(to)
                ),
                other => panic!("{span}: a NAPI span named {other} in a run that ends"),
            }
        }
        polls += got.len();
    }
    // smp: xmit on CPU 0, NAPI on CPU 1.
    assert!(
        xmits > 0 && polls > 0,
        "{xmits} xmit batches, {polls} polls"
    );
    assert!(spans_on(evs, "vCPU 1 driver xmit batches").is_empty());
    assert!(!spans_on(evs, "vCPU 1 driver NAPI polls").is_empty());

    // Well nested: on each track two spans are disjoint or one holds the
    // other (by event number; times may tie), and none runs backwards.
    let mut tracks: Vec<(&Value, &Value)> = evs
        .iter()
        .filter(|e| e["ph"] == "X")
        .map(|e| (&e["pid"], &e["tid"]))
        .collect();
    tracks.dedup();
    for (pid, tid) in tracks {
        let mut on: Vec<(u64, u64, f64)> = evs
            .iter()
            .filter(|e| e["ph"] == "X" && e["pid"] == *pid && e["tid"] == *tid)
            .map(|e| {
                let n = |k: &str| e["args"][k].as_u64().unwrap();
                (n("from"), n("to"), e["dur"].as_f64().unwrap())
            })
            .collect();
        on.sort_by_key(|s| (s.0, std::cmp::Reverse(s.1)));
        for (i, a) in on.iter().enumerate() {
            assert!(a.0 <= a.1 && a.2 >= 0.0, "span {a:?} runs backwards");
            for b in &on[i + 1..] {
                assert!(
                    b.0 >= a.1 || b.1 <= a.1,
                    "track {pid}/{tid}: spans #{}..#{} and #{}..#{} overlap",
                    a.0,
                    a.1,
                    b.0,
                    b.1
                );
            }
        }
    }
}
