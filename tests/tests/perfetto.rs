//! `--perfetto FILE` on two vCPUs (issue 12): the driver has a markers
//! track and a lifecycle track per vCPU, from the vCPU each marker came
//! from (the log's `cpu`), with markers on both in an `smp` run; every
//! violation and finding of the log is an instant event; the counter
//! tracks are there.

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
