//! The lifecycle scenarios really set up the situation they are named
//! for. The matrix (tests/tests/matrix.rs) checks pass/caught; these
//! check that a pass is not vacuous: work was in flight at stop, the MAC
//! was replaced, the queue was woken at exactly its threshold, BUSY
//! happened on a full ring, map failures happened, the reset was slow.
//! They boot real VMs (/dev/kvm) and fail without it.

use nicproof_tests::*;

/// The phase-2 marker: (packets posted but not completed, not received).
fn in_flight_at_stop(r: &Run) -> (u64, u64) {
    let m = r.markers("phase");
    let p = m
        .iter()
        .find(|m| args_of(m).first() == Some(&2))
        .expect("phase 2 marker");
    let a = args_of(p);
    (a[1], a[2])
}

#[test]
fn stops_happen_with_work_in_flight_and_abort_it() {
    for s in [
        "stop-under-flood",
        "inflight-at-stop",
        "rx-after-stop",
        "msix-masked-at-stop",
    ] {
        let r = passed(s, &[]);
        let (tx, rx) = in_flight_at_stop(&r);
        assert!(tx + rx > 0, "{s}: nothing in flight at stop");
        let stops = r.markers("stop-exit").len();
        assert_eq!(stops, 2, "{s}: stop under load, then stop after the reopen");
    }
    // The device holds completions: packets are still owned by the
    // driver at stop, so stop must abort (free and unmap) them.
    let r = passed("inflight-at-stop", &[]);
    assert!(in_flight_at_stop(&r).0 > 0);
}

#[test]
fn invalid_eeprom_addresses_are_replaced_by_a_random_unicast_one() {
    for v in ["0", "1", "2"] {
        let r = passed("invalid-mac", &["--knob", &format!("variant={v}")]);
        let p = args_of(r.markers("probe-exit")[0]);
        let mac = p[1].to_le_bytes();
        assert_eq!(p[2], 1, "variant {v}: addr_assign_type RANDOM");
        assert_eq!(
            mac[0] & 0x03,
            0x02,
            "variant {v}: unicast, locally administered {mac:x?}"
        );
    }
    let r = passed("invalid-mac", &["--knob", "variant=3"]);
    let p = args_of(r.markers("probe-exit")[0]);
    assert_eq!(p[2], 0, "a valid EEPROM address is kept as permanent");
    assert_eq!(&p[1].to_le_bytes()[..6], &nic_model::config::DEFAULT_MAC);
}

#[test]
fn unregister_stops_once_per_up_period_and_never_when_down() {
    for (v, stops) in [("0", 1), ("1", 1), ("2", 4)] {
        let r = passed("unregister", &["--knob", &format!("variant={v}")]);
        assert_eq!(r.markers("stop-enter").len(), stops, "variant {v}");
        let up = args_of(r.markers("unregister-enter")[0])[0];
        assert_eq!(
            up,
            u64::from(v != "1"),
            "variant {v}: unregister saw the device UP"
        );
    }
}

#[test]
fn max_frags_fill_wakes_at_exactly_the_start_threshold() {
    let r = passed("max-frags-fill", &[]);
    // Reason 4 = QueueReason::Reclaim: the completed_wake after the one
    // packet the stalled device completed (34 descriptors free).
    let wakes = r
        .markers("queue-wake")
        .iter()
        .filter(|m| args_of(m).first() == Some(&4))
        .count();
    assert!(wakes >= 1, "no reclaim wake");
    assert_eq!(r.markers("xmit-busy").len(), 0);
}

#[test]
fn busy_ownership_really_returns_busy_once_on_a_full_ring() {
    let r = passed("busy-ownership", &[]);
    assert_eq!(r.markers("xmit-busy").len(), 1);
}

#[test]
fn map_failure_drops_packets_and_slow_reset_is_slow() {
    let r = passed("map-failure", &[]);
    let v = r
        .events
        .iter()
        .find(|e| e["event"] == "verdict")
        .expect("verdict");
    let t = v["text"].as_str().unwrap_or_default();
    assert!(!t.contains(" 0 dropped"), "no packet was dropped: {t}");
    let r = passed("slow-reset", &[]);
    let starts: Vec<u64> = r
        .events
        .iter()
        .filter(|e| e["event"] == "reset-start")
        .map(|e| e["time_ns"].as_u64().unwrap_or(0))
        .collect();
    let dones: Vec<u64> = r
        .events
        .iter()
        .filter(|e| e["event"] == "reset-done")
        .map(|e| e["time_ns"].as_u64().unwrap_or(0))
        .collect();
    assert!(!dones.is_empty() && starts.len() == dones.len());
    // Every reset took at least the 500 µs floor of the seeded delay.
    for (s, d) in starts.iter().zip(&dones) {
        assert!(d - s >= 500_000, "reset took {} ns", d - s);
    }
}
