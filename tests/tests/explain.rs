//! Seeing why a run failed (issue 12): the report's first cause and
//! grouped findings, guest addresses with function and file:line,
//! `nicproof explain` on a saved log (and its bad-input errors), the
//! decoded log, and the `--perfetto` timeline.

use nicproof_tests::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("nicproof-explain-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

/// `nicproof <args>`: (exit code, stdout, stderr).
fn nicproof(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(nicproof_bin())
        .args(args)
        .output()
        .expect("spawning nicproof");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// The slow-reset run whose driver does not wait for its reset: the
/// report's first 23 reasons used to be 15 copies of one device error.
fn no_reset_poll() -> Run {
    run(
        &guest_image(),
        &[
            "--scenario",
            "slow-reset",
            "--knob",
            "variant=1",
            "--mutant",
            "no-reset-poll",
        ],
    )
}

#[test]
fn a_failed_report_leads_with_its_first_cause_and_groups_repeats() {
    let r = no_reset_poll();
    assert_eq!((r.code, r.outcome()), (1, "failed"), "{}", r.stdout);
    let first_seq = r.report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["seq"].as_u64().unwrap())
        .min()
        .unwrap();
    // The second line says which clock ran; the outcome follows it.
    assert!(
        r.stdout
            .lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("clock: virtual")),
        "{}",
        r.stdout
    );
    let lines: Vec<&str> = r
        .stdout
        .lines()
        .filter(|l| !l.starts_with("clock: "))
        .collect();
    assert!(lines[1].starts_with("outcome: FAILED"), "{}", r.stdout);
    // The line after the outcome is the earliest finding, with its rule
    // and the document's words, and how to see it again.
    assert!(
        lines[2].starts_with(&format!("  first cause: #{first_seq} reset-wait: ")),
        "{}",
        r.stdout
    );
    assert!(
        lines[3].starts_with("    rule: ndo_stop must wait for the device's reset"),
        "{}",
        r.stdout
    );
    assert_eq!(
        lines[4],
        "    Softnet Driver Issues, close/stop 1: \"If necessary, poll or wait for completion of any reset commands.\""
    );
    assert!(
        lines[5].ends_with("nicproof run --scenario slow-reset --seed 0 --mutant no-reset-poll --knob variant=1 --events run.jsonl"),
        "{}",
        r.stdout
    );
    // Findings of one kind are one line with count, first and last event
    // (how many device errors a too-early reset latches depends on its
    // wall-time delay; the repeated reset-wait findings are always there).
    let n = r.report["findings"].as_array().unwrap().len();
    let head = lines
        .iter()
        .position(|l| l.starts_with("  findings: "))
        .expect("a findings line");
    let listed: Vec<&str> = lines[head + 1..]
        .iter()
        .take_while(|l| l.starts_with("    "))
        .copied()
        .collect();
    assert!(
        lines[head].starts_with(&format!("  findings: {n} in {} kind(s)", listed.len())),
        "{}",
        r.stdout
    );
    assert!(listed.len() < n, "nothing grouped:\n{}", r.stdout);
    assert!(
        listed
            .iter()
            .any(|l| l.contains(" x reset-wait: ") && l.contains("(first #")),
        "{}",
        r.stdout
    );
    let n_errors = r.report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["oracle"] == "device-error")
        .count();
    if n_errors > 1 {
        assert!(
            r.stdout
                .contains(&format!("    {n_errors} x device-error: ")),
            "{}",
            r.stdout
        );
    }
    // No line is a screen wider than the cut (plus its pointer to --json).
    let widest = r.stdout.lines().map(|l| l.chars().count()).max().unwrap();
    assert!(widest < 260, "a {widest}-character line:\n{}", r.stdout);
    // (Whether a line needs cutting depends on how many device errors the
    // early reset latched; the cut and its --json pointer are unit-tested
    // in explain.rs and checks.rs.)
    // The JSON report carries what reproduces the run.
    assert_eq!(r.report["knobs"]["variant"], 1);
    assert_eq!(r.report["backend"], "loopback");
    assert_eq!(r.report["clock"], "virtual");
    assert_eq!(r.report["exit_code"], 1);
    // The findings are in the event log too, each pointing at its event.
    let in_log: Vec<&Value> = r
        .events
        .iter()
        .filter(|e| e["event"] == "finding")
        .collect();
    assert_eq!(in_log.len(), r.report["findings"].as_array().unwrap().len());
    assert!(in_log
        .iter()
        .any(|e| e["oracle"] == "reset-wait" && e["at"] == first_seq));
}

#[test]
fn explain_shows_the_first_cause_with_its_history_and_the_timeline_has_every_track() {
    let (log, trace) = (scratch("sr.jsonl"), scratch("sr.trace.json"));
    // (The test library's `run` keeps no files: this one names its own.)
    let (code, _, err) = nicproof(&[
        "run",
        "--guest",
        guest_image().to_str().unwrap(),
        "--quiet",
        "--scenario",
        "slow-reset",
        "--knob",
        "variant=1",
        "--mutant",
        "no-reset-poll",
        "--events",
        log.to_str().unwrap(),
        "--perfetto",
        trace.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{err}");
    let (code, out, err) = nicproof(&["explain", log.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("first cause: #"), "{out}");
    assert!(out.contains(" reset-wait: "), "{out}");
    assert!(
        out.contains("event: #") && out.contains("guest marker dma-unmap addr=0x"),
        "{out}"
    );
    // For an unmap: the map of that range before it, the driver's last
    // markers (its stop had begun) and the events around, decoded.
    assert!(
        out.contains("(mapped at the time)") && out.contains("guest marker dma-map addr=0x"),
        "{out}"
    );
    assert!(
        out.contains("last driver markers before it:") && out.contains("marker stop-enter"),
        "{out}"
    );
    assert!(
        out.contains("device mmio-write CTRL value=0x4") && out.contains("device reset-start"),
        "{out}"
    );
    assert_eq!(
        out.lines().filter(|l| l.starts_with("> #")).count(),
        1,
        "{out}"
    );
    // The 20 events around it: ten before, ten after (mid-log here).
    let around: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.starts_with("events #"))
        .collect();
    let range = around[0]
        .strip_prefix("events #")
        .and_then(|r| r.strip_suffix(" (decoded):"))
        .and_then(|r| r.split_once("..#"))
        .map(|(a, b)| (a.parse::<u64>().unwrap(), b.parse::<u64>().unwrap()))
        .unwrap_or_else(|| panic!("no events header: {out}"));
    assert_eq!(range.1 - range.0, 20, "{out}");
    assert_eq!(around.len(), 22, "{out}");
    assert!(around[1..]
        .iter()
        .all(|l| l.starts_with("  #") || l.starts_with("> #")));
    assert!(around[11].starts_with("> #"), "{out}");

    // The decoded log: register names, hex values, named marker args, findings.
    let (code, dec, _) = nicproof(&["explain", log.to_str().unwrap(), "--log", "--json"]);
    assert_eq!(code, 0);
    let dec: Vec<Value> = dec
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        dec.iter()
            .any(|e| e["reg"] == "TX_TAIL"
                && e["value"].as_str().is_some_and(|v| v.starts_with("0x")))
    );
    assert!(dec.iter().any(|e| e["marker"] == "skb-alloc"
        && e["args"]["skb"].is_u64()
        && e["args"]["len"].is_u64()));
    assert!(dec
        .iter()
        .any(|e| e["event"] == "finding" && e["oracle"] == "device-error"));

    // The timeline: every track named, and every violation and finding of the log on it.
    let t: Value =
        serde_json::from_slice(&std::fs::read(&trace).unwrap()).expect("the trace is JSON");
    let evs = t["traceEvents"].as_array().unwrap();
    let tracks: Vec<&str> = evs
        .iter()
        .filter(|e| e["name"] == "thread_name")
        .filter_map(|e| e["args"]["name"].as_str())
        .collect();
    for want in [
        "vCPU 0 driver markers",
        "vCPU 0 driver lifecycle",
        "TX engine",
        "RX engine",
        "DMA",
        "interrupts",
        "resets",
        "violations and findings",
    ] {
        assert!(tracks.contains(&want), "no track {want}: {tracks:?}");
    }
    for c in ["TX ring occupancy", "queue stopped", "BQL bytes in flight"] {
        assert!(
            evs.iter().any(|e| e["ph"] == "C" && e["name"] == c),
            "no counter {c}"
        );
    }
    assert!(
        evs.iter().any(|e| e["ph"] == "X" && e["name"] == "stop"),
        "no stop span"
    );
    assert!(
        evs.iter().any(|e| e["ph"] == "X" && e["name"] == "reset"),
        "no reset span"
    );
    let saved = nicproof_tests_read_events(&log);
    let findings: Vec<&Value> = saved.iter().filter(|e| e["event"] == "finding").collect();
    assert!(!findings.is_empty());
    for f in findings {
        let on_track = evs.iter().any(|e| {
            e["ph"] == "i"
                && e["name"] == format!("finding {}", f["oracle"].as_str().unwrap())
                && e["args"]["seq"] == f["seq"]
        });
        assert!(on_track, "finding {f} is not on the timeline");
    }
    let _ = std::fs::remove_file(&log);
    let _ = std::fs::remove_file(&trace);
}

fn nicproof_tests_read_events(p: &Path) -> Vec<Value> {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn a_device_that_dmas_after_disable_is_one_grouped_line_and_every_violation_is_on_the_timeline() {
    let (log, trace) = (scratch("ghost.jsonl"), scratch("ghost.trace.json"));
    let (code, out, err) = nicproof(&[
        "run",
        "--guest",
        guest_image().to_str().unwrap(),
        "--quiet",
        "--device-mutant",
        "dma-after-disable",
        "--events",
        log.to_str().unwrap(),
        "--perfetto",
        trace.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{out}{err}");
    let saved = nicproof_tests_read_events(&log);
    let violations: Vec<&Value> = saved.iter().filter(|e| e["event"] == "violation").collect();
    assert!(violations.len() > 1, "{out}");
    // Repeats of one rule and text are one line, not one each.
    let ghost_lines = out.lines().filter(|l| l.contains("ghost")).count();
    assert!(
        ghost_lines < violations.len(),
        "{ghost_lines} ghost lines for {} violations:\n{out}",
        violations.len()
    );
    assert!(
        out.contains(" x dma-after-stop: ") || out.contains(" x dma-"),
        "{out}"
    );
    let t: Value = serde_json::from_slice(&std::fs::read(&trace).unwrap()).unwrap();
    let evs = t["traceEvents"].as_array().unwrap();
    for v in violations {
        let name = format!("violation {}", v["rule"].as_str().unwrap());
        assert!(
            evs.iter()
                .any(|e| e["ph"] == "i" && e["name"] == name && e["args"]["seq"] == v["seq"]),
            "violation #{} not on the timeline",
            v["seq"]
        );
    }
    // Explaining a ghost DMA: the range's maps (all undone by then).
    let ghost = saved
        .iter()
        .find(|e| e["event"] == "dma" && e["cause"] == "ghost")
        .expect("a ghost DMA");
    let seq = ghost["seq"].to_string();
    let (code, out, _) = nicproof(&["explain", log.to_str().unwrap(), "--at", &seq]);
    assert_eq!(code, 0);
    assert!(
        out.contains(&format!("event: #{seq} device dma dir=")),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "maps of {}+16 before it: ",
            ghost["addr"]
                .as_u64()
                .map_or(String::new(), |a| format!("{a:#x}"))
        )),
        "{out}"
    );
    assert!(
        out.contains("last driver markers before it:") && out.contains("marker stop-enter"),
        "{out}"
    );
    let _ = std::fs::remove_file(&log);
    let _ = std::fs::remove_file(&trace);
}

#[test]
fn guest_addresses_are_printed_with_function_and_line() {
    let r = run(
        &guest_image(),
        &["--scenario", "boot", "--bad-guest", "page-fault"],
    );
    assert_eq!(r.code, 3, "{}", r.stdout);
    let l = &r.report["locations"][0];
    assert_eq!(l["what"], "cpu 0 rip");
    assert_eq!(l["addr"], r.report["rip"]);
    let frames = l["frames"].as_array().expect("frames");
    assert!(
        frames
            .iter()
            .any(|f| f["function"].as_str().unwrap().ends_with("bad_guest")
                && f["file"] == "guest-driver/src/main.rs"),
        "{l}"
    );
    assert!(
        r.stdout.contains(" in core::ptr::read_volatile at "),
        "{}",
        r.stdout
    );

    let r = run(
        &guest_image(),
        &["--scenario", "boot", "--bad-guest", "triple-fault"],
    );
    assert_eq!(r.code, 4);
    assert!(
        r.report["locations"][0]["frames"][0]["line"]
            .as_u64()
            .unwrap()
            > 0,
        "{}",
        r.report
    );

    // A timeout says where each vCPU was at the deadline.
    let r = run(
        &guest_image(),
        &[
            "--scenario",
            "boot",
            "--bad-guest",
            "endless-loop",
            "--timeout",
            "1",
        ],
    );
    assert_eq!(r.code, 5);
    let l = &r.report["locations"][0];
    assert_eq!(l["what"], "cpu 0 rip at the deadline", "{}", r.report);
    assert!(
        l["frames"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["function"].as_str().unwrap().ends_with("bad_guest")),
        "{l}"
    );
    assert!(
        r.stdout.contains("cpu 0 rip at the deadline 0x"),
        "{}",
        r.stdout
    );
}

/// Each kind of log `explain` cannot use: one line on stderr that names
/// the file, says what is wrong and what to do next, and an exit code of
/// its own, never a panic.
#[test]
fn explain_refuses_bad_input_with_one_line_and_an_exit_code_per_kind() {
    let good = scratch("good.jsonl");
    let (code, _, err) = nicproof(&[
        "run",
        "--guest",
        guest_image().to_str().unwrap(),
        "--quiet",
        "--scenario",
        "boot",
        "--events",
        good.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let text = std::fs::read_to_string(&good).unwrap();
    // A passing run's log: nothing to blame, still exit 0.
    let (code, out, _) = nicproof(&["explain", good.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(out.starts_with("no finding in this log"), "{out}");
    let (empty, truncated, foreign, binary, report) = (
        scratch("empty.jsonl"),
        scratch("cut.jsonl"),
        scratch("foreign.jsonl"),
        scratch("binary.jsonl"),
        scratch("report.json"),
    );
    std::fs::write(&empty, "\n\n").unwrap();
    // Cut inside the last line; the complete lines before it explain.
    let cut_at = text.len() - 10;
    std::fs::write(&truncated, &text[..cut_at]).unwrap();
    let cut_line = text[..cut_at].lines().count();
    std::fs::write(&foreign, "{\"hello\": \"world\"}\n").unwrap();
    std::fs::write(&binary, [0x7f, b'E', b'L', b'F', 0xff, 0xfe, b'\n']).unwrap();
    std::fs::write(&report, "{\n  \"scenario\": \"boot\"\n}\n").unwrap();
    let last = text.lines().count() - 1;
    let past = (last + 5).to_string();
    let dir = std::env::temp_dir();
    let p = |f: &Path| f.to_str().unwrap().to_string();
    let cases: Vec<(Vec<String>, i32, Vec<String>)> = vec![
        (
            vec!["/nonexistent/run.jsonl".into()],
            10,
            vec![
                "/nonexistent/run.jsonl: no such file".into(),
                "--events /nonexistent/run.jsonl".into(),
            ],
        ),
        (
            vec![p(&dir)],
            11,
            vec![format!("cannot read {}", p(&dir)), "--events FILE".into()],
        ),
        (
            vec![p(&empty)],
            12,
            vec![
                format!("{} is empty", p(&empty)),
                format!("--events {}", p(&empty)),
            ],
        ),
        (
            vec![p(&truncated)],
            13,
            vec![
                format!("{} is truncated at line {cut_line}", p(&truncated)),
                format!("head -n {} {}", cut_line - 1, p(&truncated)),
            ],
        ),
        (
            vec![p(&foreign)],
            14,
            vec![
                format!("{} is not a nicproof event log: line 1", p(&foreign)),
                "--events FILE".into(),
            ],
        ),
        (
            vec![p(&binary)],
            14,
            vec![format!(
                "{} is not a nicproof event log: it is not text",
                p(&binary)
            )],
        ),
        (
            vec![p(&report)],
            14,
            vec![format!(
                "{} is not a nicproof event log: line 1",
                p(&report)
            )],
        ),
        (
            vec![p(&good), "--at".into(), past.clone()],
            15,
            vec![
                format!("event #{past} is past the end of {}", p(&good)),
                format!("#0..=#{last}"),
                format!("nicproof explain {} --log", p(&good)),
            ],
        ),
    ];
    for (args, want_code, wants) in cases {
        let mut argv = vec!["explain"];
        argv.extend(args.iter().map(String::as_str));
        let (code, out, err) = nicproof(&argv);
        assert_eq!(code, want_code, "{argv:?}: {out}{err}");
        assert_eq!(err.lines().count(), 1, "{argv:?}: not one line: {err}");
        assert!(!err.contains("panicked"), "{argv:?}: {err}");
        for want in wants {
            assert!(err.contains(&want), "{argv:?}: no `{want}` in: {err}");
        }
    }
    // The way out the truncated file's error gives works.
    let head = scratch("head.jsonl");
    let complete: String = text[..cut_at]
        .lines()
        .take(cut_line - 1)
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&head, complete).unwrap();
    let (code, out, err) = nicproof(&["explain", head.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    for f in [good, empty, truncated, foreign, binary, report, head] {
        let _ = std::fs::remove_file(f);
    }
}
