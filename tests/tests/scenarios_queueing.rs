//! The queueing scenarios really set up the situation they are named
//! for. The matrix (tests/tests/matrix.rs) checks pass/caught; these
//! check that a pass is not vacuous: lost-wake restarted the queue from
//! the re-check and from the reclaim, the watchdog fired on a stalled
//! device and traffic resumed, an interrupt was really dropped, the soak
//! ran the cycle count NICPROOF_SOAK_CYCLES asked for.
//! They boot real VMs (/dev/kvm) and fail without it.

use nicproof_tests::*;

/// Reasons (abi::QueueReason) of the queue markers with this name.
fn reasons(r: &Run, marker: &str) -> Vec<u64> {
    r.markers(marker)
        .iter()
        .filter_map(|m| args_of(m).first().copied())
        .collect()
}

#[test]
fn lost_wake_restarts_from_the_recheck_and_from_the_reclaim() {
    let r = passed("lost-wake", &[]);
    // Round 1: the reclaim landed in the window, the re-check restarted
    // it (queue-wake with QueueReason::Raced = 3). Round 2: the reclaim woke it (Reclaim = 4).
    assert!(
        reasons(&r, "queue-wake").contains(&3),
        "no restart by the re-check: {:?}",
        reasons(&r, "queue-wake")
    );
    assert!(
        reasons(&r, "queue-wake").contains(&4),
        "no wake by the reclaim: {:?}",
        reasons(&r, "queue-wake")
    );
    // The ring stopped it both times (RingLow = 1), not BQL (off here).
    assert_eq!(
        reasons(&r, "queue-stop")
            .iter()
            .filter(|&&x| x == 1)
            .count(),
        2
    );
}

/// Variant 1 has no forced window: transmit on CPU 0, NAPI on CPU 1, and
/// the seeded scheduler alone decides where CPU 1 runs. On seed 298 it
/// switches to NAPI inside try_stop's window (between the free-space
/// read and the stop bit) with completions ready: the correct driver's
/// re-check restarts the queue (Raced = 3), and without the re-check the
/// same interleaving leaves it stopped on a free ring. Seed 1 takes no
/// such switch (the window is not hit on every seed).
#[test]
fn the_seeded_scheduler_alone_finds_the_missing_recheck_on_two_vcpus() {
    let seed = ["--knob", "variant=1", "--seed", "298"];
    let ok = run(
        &guest_image(),
        &[&["--scenario", "lost-wake"][..], &seed].concat(),
    );
    assert_eq!(ok.outcome(), "passed", "{}", ok.stdout);
    assert!(
        reasons(&ok, "queue-wake").contains(&3),
        "no restart by the re-check: {:?}",
        reasons(&ok, "queue-wake")
    );
    let bad = run(
        &guest_image(),
        &[
            &["--scenario", "lost-wake", "--mutant", "no-recheck"][..],
            &seed,
        ]
        .concat(),
    );
    assert_eq!(bad.outcome(), "failed", "{}", bad.stdout);
    assert!(
        bad.stdout
            .contains("lost wake: queue stopped with a free ring"),
        "{}",
        bad.stdout
    );
    let other = run(
        &guest_image(),
        &[
            "--scenario",
            "lost-wake",
            "--knob",
            "variant=1",
            "--seed",
            "1",
        ],
    );
    assert_eq!(other.outcome(), "passed", "{}", other.stdout);
    assert!(
        !reasons(&other, "queue-wake").contains(&3),
        "{:?}",
        reasons(&other, "queue-wake")
    );
}

#[test]
fn watchdog_fires_on_the_stalled_device_and_traffic_resumes() {
    let r = passed("watchdog", &[]);
    assert_eq!(r.notes("knob: TX stalled"), 1, "the device never stalled");
    // At least one ndo_tx_timeout. Completions are reclaimed only when
    // their interrupt is taken, so on a loaded host (a vCPU descheduled
    // for longer than the 5 ms watchdog_timeo) a BQL stop can time out
    // before the stall too; its reclaim then finds the completions and
    // does not reset, and the stall's own timeout follows.
    let timeouts = r.markers("tx-timeout");
    assert!(!timeouts.is_empty(), "no ndo_tx_timeout");
    // The reset inside the last tx_timeout, then traffic completes again.
    let t = timeouts.last().unwrap()["seq"].as_u64().unwrap();
    let freed_after = r
        .markers("skb-free")
        .iter()
        .filter(|m| m["seq"].as_u64().unwrap() > t)
        .count();
    assert!(freed_after > 0, "nothing freed after the timeout");
}

#[test]
fn dropped_irq_really_drops_one_and_every_skb_is_still_freed() {
    for seed in ["1", "2", "3"] {
        let r = run(
            &guest_image(),
            &["--scenario", "dropped-irq", "--seed", seed],
        );
        assert_eq!(r.outcome(), "passed", "seed {seed}: {}", r.stdout);
        assert_eq!(
            r.notes("knob: TX interrupt #"),
            1,
            "seed {seed}: no interrupt dropped"
        );
    }
}

#[test]
fn batch_last_dropped_drops_exactly_the_last_and_rings_for_the_rest() {
    let r = passed("batch-last-dropped", &[]);
    let v = r
        .events
        .iter()
        .find(|e| e["event"] == "verdict")
        .expect("a verdict");
    assert!(
        v["text"]
            .as_str()
            .unwrap()
            .contains("last dropped, all completed"),
        "{v}"
    );
    // The posted frames went out: one doorbell-carried batch reached the wire.
    let sent = r.events.iter().filter(|e| e["event"] == "tx-frame").count();
    let dropped_last = v["text"]
        .as_str()
        .unwrap()
        .split(": ")
        .nth(1)
        .unwrap()
        .to_string();
    assert!(
        sent >= 1,
        "no frame of the batch reached the wire ({dropped_last})"
    );
}

#[test]
fn soak_runs_the_cycles_the_environment_asks_for() {
    // The VMM reads NICPROOF_SOAK_CYCLES when it sets the scenario up;
    // each cycle is one stop, plus the one at unregister.
    std::env::set_var("NICPROOF_SOAK_CYCLES", "7");
    let r = passed("soak", &[]);
    std::env::remove_var("NICPROOF_SOAK_CYCLES");
    assert_eq!(r.markers("stop-exit").len(), 8, "7 cycles + unregister");
}
