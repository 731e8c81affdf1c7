//! The VMM end to end with tiny hand-assembled guests: the control-port
//! protocol, both vCPUs, every way a run can end, and bad guest input.
//! These need /dev/kvm and fail (never skip) without it.

use nic_model::abi::{control, knob, layout, Marker, RecordKind};
use nicproof_tests::*;

fn u64_of(v: &serde_json::Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a u64: {v}"))
}

fn text_slot(s: &str) -> [u8; 64] {
    let mut t = [0u8; 64];
    t[..s.len()].copy_from_slice(s.as_bytes());
    t
}

fn slot(i: u64) -> u64 {
    TINY_RECORDS + 64 * i
}

/// BSP: magic, config, echo + magic + payload word in a marker, start the
/// AP, wait for it, log, verdict pass, power off 0. AP: CpuOnline, flag.
fn protocol_guest() -> Vec<u8> {
    let echo = slot(0) as u32;
    let mut bsp = Asm::default();
    bsp.in32(control::CONTROL_PORT)
        .store_eax(echo + 32) // args[2] = magic
        .out32(control::CONFIG_PORT, TINY_CONFIG as u32)
        .copy64(TINY_CONFIG as u32 + 40 + 8 * knob::ECHO as u32, echo + 24) // args[1] = knob
        .copy64(TINY_CONFIG as u32 + 16, echo + 48) // args[4] = seed
        .copy64(layout::PAYLOAD_BASE as u32 + 8, echo + 40) // args[3] = payload word 1
        .send(0)
        .send(1)
        .wait8(TINY_FLAG as u32)
        .send(2)
        .send(3)
        .send(4)
        .spin();
    let mut ap = Asm::default();
    ap.send(5).store8(TINY_FLAG as u32, 1).halt();
    let mut code = Asm::default();
    code.jump_if_ap(i32::try_from(bsp.0.len()).unwrap());
    code.0.extend_from_slice(&bsp.0);
    code.0.extend_from_slice(&ap.0);
    let hello = "hello from a tiny guest";
    let records = [
        record(
            RecordKind::Marker,
            None,
            [Marker::Echo as u64, 0, 0, 0, 0, 0],
        ),
        record(
            RecordKind::StartCpu,
            None,
            [1, TINY_BASE, 0x7_0000, 0, 0, 0],
        ),
        record(
            RecordKind::Log,
            Some((slot(6), hello.len() as u32)),
            [3, 0, 0, 0, 0, 0],
        ),
        record(RecordKind::Verdict, Some((slot(7), 2)), [1, 0, 0, 0, 0, 0]),
        record(RecordKind::PowerOff, None, [0; 6]),
        record(RecordKind::CpuOnline, None, [1, 0, 0, 0, 0, 0]),
        text_slot(hello),
        text_slot("ok"),
    ];
    tiny_elf(&code.0, &records)
}

/// Under the virtual clock one vCPU runs at a time: the boot CPU of the
/// protocol guest spins on a flag without ever exiting, so the AP that
/// would set it never runs. The run still ends, at the wall-clock limit,
/// with its last events.
#[test]
fn a_guest_that_never_exits_ends_at_the_wall_limit() {
    let g = write_guest("protocol-virtual", &protocol_guest());
    let r = run(
        &g,
        &["--scenario", "boot", "--timeout", "2", "--clock", "virtual"],
    );
    assert_eq!((r.code, r.outcome()), (5, "timeout"), "{r:#?}");
    assert!(r.stdout.contains("clock: virtual"), "{}", r.stdout);
    assert!(
        r.stdout.contains("event |"),
        "the last events are shown: {}",
        r.stdout
    );
}

#[test]
fn protocol_round_trip_on_both_vcpus_passes() {
    let g = write_guest("protocol", &protocol_guest());
    let r = run(
        &g,
        &[
            "--scenario",
            "boot",
            "--seed",
            "77",
            "--knob",
            "echo=0xfeed",
            "--timeout",
            "30",
            // This guest spins and halts as for parallel vCPUs; the virtual
            // clock's one-at-a-time scheduler needs the guest to idle and
            // yield through abi::sched (see the next test).
            "--clock",
            "wall",
        ],
    );
    assert_eq!((r.code, r.outcome()), (0, "passed"), "{r:#?}");
    let echo = r.markers("echo");
    assert_eq!(echo.len(), 1, "{:#?}", r.events);
    let args = &echo[0]["args"];
    assert_eq!(u64_of(&args[0]), 0xfeed, "knob came back");
    assert_eq!(
        u64_of(&args[1]),
        u64::from(control::CONTROL_MAGIC),
        "magic read"
    );
    assert_eq!(
        u64_of(&args[2]),
        vmm::payload::word(77, 1),
        "payload pool filled from the seed"
    );
    assert_eq!(u64_of(&args[3]), 77, "seed in the RunConfig");
    assert_eq!(
        r.report["stats"]["cpus_online"],
        serde_json::json!([1]),
        "the AP ran guest code"
    );
    assert!(r
        .events
        .iter()
        .any(|e| e["event"] == "log" && e["text"] == "hello from a tiny guest"));
    assert_eq!(r.notes("start-cpu 1"), 1);
    assert!(r.stdout.contains("outcome: PASSED"), "{}", r.stdout);
}

#[test]
fn unclaimed_ports_and_mmio_read_all_ones() {
    let rec = slot(0) as u32;
    let mut a = Asm::default();
    a.out32(0xcf8, 0x8000_1000) // config address of 00:02.0 (the NIC is 00:01.0)
        .in32(0xcfc)
        .store_eax(rec + 24)
        .load32(layout::MMIO_WINDOW_BASE)
        .store_eax(rec + 32)
        .in32(0x1234)
        .store_eax(rec + 40)
        .send_records(3)
        .spin();
    let recs = marker_then_pass(Marker::Phase);
    let r = run(
        &write_guest("unclaimed", &tiny_elf(&a.0, &recs)),
        &["--scenario", "boot", "--timeout", "30"],
    );
    assert_eq!((r.code, r.outcome()), (0, "passed"), "{r:#?}");
    let args = &r.markers("phase")[0]["args"];
    assert_eq!(
        u64_of(&args[0]),
        0xffff_ffff,
        "no PCI function at 00:02.0: vendor 0xffff"
    );
    assert_eq!(
        u64_of(&args[1]),
        0xffff_ffff,
        "BAR0 does not decode until memory space is enabled"
    );
    assert_eq!(u64_of(&args[2]), 0xffff_ffff, "unclaimed port");
    assert!(r.report["stats"]["exits"]["mmio-read"].as_u64() >= Some(1));
}

#[test]
fn triple_fault_reports_registers() {
    let mut a = Asm::default();
    a.ud2();
    let r = run(
        &write_guest("ud2", &tiny_elf(&a.0, &[])),
        &["--scenario", "boot", "--timeout", "30"],
    );
    assert_eq!((r.code, r.outcome()), (4, "triple-fault"), "{r:#?}");
    assert_eq!(
        u64_of(&r.report["regs"]["rip"]),
        TINY_BASE,
        "the empty boot IDT turns #UD into a shutdown"
    );
    assert_eq!(u64_of(&r.report["cpu"]), 0);
}

#[test]
fn endless_loop_times_out_within_its_limit() {
    let mut a = Asm::default();
    a.spin();
    let t = std::time::Instant::now();
    let r = run(
        &write_guest("spin", &tiny_elf(&a.0, &[])),
        &["--scenario", "boot", "--timeout", "1"],
    );
    assert_eq!((r.code, r.outcome()), (5, "timeout"), "{r:#?}");
    assert_eq!(r.report["limit_secs"], 1.0);
    assert!(
        t.elapsed().as_secs_f64() < 10.0,
        "run took {:?}",
        t.elapsed()
    );
}

#[test]
fn panic_and_exception_records_end_the_run() {
    let mut a = Asm::default();
    a.send(0).spin();
    let file = slot(2);
    let panic = [
        record(
            RecordKind::Panic,
            Some((slot(1), 4)),
            [42, 7, file, 7, 0, 0],
        ),
        text_slot("boom"),
        text_slot("main.rs"),
    ];
    let r = run(
        &write_guest("panic", &tiny_elf(&a.0, &panic)),
        &["--scenario", "boot", "--timeout", "30"],
    );
    assert_eq!((r.code, r.outcome()), (2, "guest-panic"), "{r:#?}");
    assert_eq!(r.report["message"], "boom");
    assert_eq!(r.report["location"], "main.rs:42:7");

    let exc = [record(
        RecordKind::Exception,
        None,
        [14, 2, 0x20_0040, 0x100_dead_b000, 0, 0],
    )];
    let r = run(
        &write_guest("exc", &tiny_elf(&a.0, &exc)),
        &["--scenario", "boot", "--timeout", "30"],
    );
    assert_eq!((r.code, r.outcome()), (3, "cpu-exception"), "{r:#?}");
    assert_eq!(
        (u64_of(&r.report["vector"]), u64_of(&r.report["cr2"])),
        (14, 0x100_dead_b000)
    );
}

#[test]
fn bad_guest_pointers_fail_the_run_without_hurting_the_host() {
    let mut a = Asm::default();
    a.out32(control::CONTROL_PORT, 0xffff_fff0) // record beyond RAM
        .out32(control::CONFIG_PORT, 0xffff_ff00) // config beyond RAM
        .send(0) // log with a wild text pointer
        .send(1) // StartCpu for a cpu that does not exist
        .send(2)
        .send(3)
        .spin();
    let recs = [
        record(
            RecordKind::Log,
            Some((u64::MAX - 3, u32::MAX)),
            [1, 0, 0, 0, 0, 0],
        ),
        record(RecordKind::StartCpu, None, [9, TINY_BASE, 0, 0, 0, 0]),
        record(RecordKind::Verdict, None, [1, 0, 0, 0, 0, 0]),
        record(RecordKind::PowerOff, None, [0; 6]),
    ];
    let r = run(
        &write_guest("badptr", &tiny_elf(&a.0, &recs)),
        &["--scenario", "boot", "--timeout", "30"],
    );
    assert_eq!((r.code, r.outcome()), (1, "failed"), "{r:#?}");
    let reasons = r.report["reasons"].to_string();
    assert_eq!(
        r.report["reasons"].as_array().map(Vec::len),
        Some(4),
        "{reasons}"
    );
    assert!(
        reasons.contains("record address 0xfffffff0") && reasons.contains("cpu 9"),
        "{reasons}"
    );
}

#[test]
fn bad_command_lines_and_images_give_clear_errors() {
    let mut a = Asm::default();
    a.spin();
    let g = write_guest("cli", &tiny_elf(&a.0, &[]));
    let r = run(&g, &["--scenario", "no-such-scenario"]);
    assert_eq!(r.code, vmm::outcome::EXIT_USAGE, "{r:#?}");
    assert!(
        r.stderr.contains("unknown scenario `no-such-scenario`") && r.stderr.contains("boot"),
        "{}",
        r.stderr
    );
    let r = run(&g, &["--mutant", "nope"]);
    assert!(r.code != 0 && r.stderr.contains("no-fence"), "{}", r.stderr);

    let missing = std::env::temp_dir().join("nicproof-no-such-image");
    let r = run(&missing, &["--scenario", "boot"]);
    assert_eq!((r.code, r.outcome()), (6, "host-error"), "{r:#?}");
    assert!(r.report["message"].as_str().unwrap().contains("make guest"));
    let r = std::process::Command::new(nicproof_bin())
        .env(vmm::vm::KVM_DEVICE_ENV, "/nonexistent/kvm")
        .args(["run", "--scenario", "boot", "--guest"])
        .arg(&g)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&r.stdout);
    assert_eq!(r.status.code(), Some(6), "{stdout}");
    assert!(
        stdout.contains("/nonexistent/kvm not found") && stdout.contains("modprobe"),
        "{stdout}"
    );
    let not_elf = write_guest("text", b"#!/bin/sh\necho not a kernel\n");
    let r = run(&not_elf, &["--scenario", "boot"]);
    assert!(
        r.report["message"].as_str().unwrap().contains("not an ELF"),
        "{r:#?}"
    );
}

#[test]
fn list_names_every_scenario_and_mutant() {
    let out = std::process::Command::new(nicproof_bin())
        .arg("list")
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for name in nic_model::abi::Scenario::ALL.iter().map(|s| s.name()) {
        assert!(s.contains(name), "{name} missing from:\n{s}");
    }
    for name in nic_model::abi::DriverMutant::ALL.iter().map(|s| s.name()) {
        assert!(s.contains(name), "{name} missing");
    }
}
