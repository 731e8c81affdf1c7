//! The `nicproof run` command line: `--backend` picks where transmitted
//! frames go (and a bad value is a usage error), and the report says in
//! words which vCPUs ran.
//!
//! The backend runs use the `default` scenario with 4 frames: it checks
//! that every frame comes back through loopback, so with `null` or
//! `pcap:` it must fail, and only on that (the guest waits ~10 s for the
//! frames before it gives up).

use nic_model::frame_hash;
use nicproof_tests::*;
use std::fs::File;

/// `(len, hash)` of every frame the device transmitted, from its events.
fn sent(r: &Run) -> Vec<(u64, u64)> {
    r.events
        .iter()
        .filter(|e| e["event"] == "tx-frame")
        .map(|e| (e["len"].as_u64().unwrap(), e["hash"].as_u64().unwrap()))
        .collect()
}

/// The run failed because no frame came back, and for nothing else: the
/// only findings are the guest's verdict and its oracle, and the host's
/// byte check saw nothing to check.
fn fails_only_on_missing_rx(r: &Run) {
    assert_eq!(
        (r.code, r.outcome()),
        (1, "failed"),
        "{}\n{}",
        r.stdout,
        r.stderr
    );
    assert!(
        r.stdout.contains("before every frame came back"),
        "{}",
        r.stdout
    );
    let findings: Vec<&str> = r.report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| f["oracle"].as_str().unwrap())
        .collect();
    assert_eq!(findings, ["guest-verdict", "guest-oracles"], "{}", r.stdout);
    assert!(
        r.events.iter().all(|e| e["event"] != "rx-frame"),
        "a frame was received with a backend that returns none"
    );
    let rx = r.report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["check"] == "delivered frames match sent bytes")
        .expect("the delivered-frames row");
    assert_eq!(
        (&rx["status"], &rx["counts"]["frames-received"]),
        (&"n.a.".into(), &0.into()),
        "{rx}"
    );
}

#[test]
fn backend_null_drops_every_frame_and_the_report_names_the_rx_failure() {
    let r = run(&guest_image(), &no_rx_args("null"));
    fails_only_on_missing_rx(&r);
    assert_eq!(sent(&r).len(), 4, "{}", r.stdout);
}

#[test]
fn backend_pcap_writes_the_transmitted_frames_and_returns_none() {
    let path =
        std::env::temp_dir().join(format!("nicproof-cli-backend-{}.pcap", std::process::id()));
    let arg = format!("pcap:{}", path.display());
    let r = run(&guest_image(), &no_rx_args(&arg));
    let mut got = Vec::new();
    if let Ok(f) = File::open(&path) {
        let mut reader = pcap_file::pcap::PcapReader::new(f).expect("a pcap file");
        while let Some(pkt) = reader.next_packet() {
            let pkt = pkt.expect("a whole packet");
            got.push((pkt.data.len() as u64, frame_hash(&pkt.data)));
        }
    }
    let _ = std::fs::remove_file(&path);
    fails_only_on_missing_rx(&r);
    let sent = sent(&r);
    assert_eq!(sent.len(), 4, "{}", r.stdout);
    assert_eq!(
        got, sent,
        "the backend file holds the transmitted frames in order"
    );
}

#[test]
fn a_bad_backend_is_a_usage_error_that_shows_the_forms() {
    for bad in ["tap", "pcap:"] {
        let out = std::process::Command::new(nicproof_bin())
            .args(["run", "--guest", "/nonexistent", "--backend", bad])
            .output()
            .expect("spawning nicproof");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(7), "{bad}: {err}");
        assert!(
            err.contains("--backend") && err.contains("pcap:"),
            "{bad}: {err}"
        );
        assert!(out.stdout.is_empty(), "{bad}: a report was printed");
    }
}

#[test]
fn the_report_says_which_vcpus_ran() {
    let r = run(
        &guest_image(),
        &["--scenario", "default", "--knob", "frames=4"],
    );
    assert_eq!(r.outcome(), "passed", "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains("\nvCPUs: boot vCPU 0 only (the guest started no other)\n"),
        "{}",
        r.stdout
    );
    let r = run(&guest_image(), &["--scenario", "boot"]);
    assert_eq!(r.outcome(), "passed", "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains("\nvCPUs: boot vCPU 0, and 1 started by the guest\n"),
        "{}",
        r.stdout
    );
}
