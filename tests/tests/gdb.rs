//! `nicproof run --gdb PORT` (issue 12): a scripted `gdb -batch` session
//! (gdb is installed by `make tools`) attaches before the first
//! instruction, breaks in the driver's start_xmit (`Adapter::xmit_frame`),
//! reads registers there, single-steps, hits the breakpoint again, and
//! lets the run finish: it still passes. On two vCPUs each is a gdb
//! thread, and a breakpoint stops the AP. A port in use is a one-line
//! host error; `--cpl 3` is refused in one line.

use nicproof_tests::*;
use std::net::TcpListener;
use std::process::{Command, Stdio};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn gdb_breaks_in_start_xmit_reads_registers_and_steps() {
    let (out, vm) = gdb_session(
        &["--knob", "frames=4"],
        &[
            "break nicproof_guest::driver::Adapter::xmit_frame",
            "continue",
            "info registers rip rsp",
            "stepi",
            "info registers rip",
            "continue",
            "print $pc",
            "delete",
            "continue",
        ],
    );
    let report = String::from_utf8_lossy(&vm.stdout);
    assert_eq!(
        out.matches("Breakpoint 1, nicproof_guest::driver::Adapter::xmit_frame")
            .count(),
        2,
        "{out}"
    );
    let bp = breakpoint_address(&out);
    let rips: Vec<&str> = out.lines().filter(|l| l.starts_with("rip ")).collect();
    assert_eq!(rips.len(), 2, "{out}");
    assert!(rips[0].contains(&bp), "stopped at the breakpoint: {out}");
    assert!(!rips[1].contains(&bp), "stepi moved: {out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("rsp ") && l.contains("0x")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("$1 = ") && l.contains(&format!("{bp} <"))),
        "the second stop is at the breakpoint: {out}"
    );
    assert!(out.contains("exited normally"), "{out}");
    assert_eq!(vm.status.code(), Some(0), "{report}");
    assert!(report.contains("outcome: PASSED"), "{report}");
}

/// `nicproof run <args> --gdb PORT` waiting for gdb, and gdb's batch
/// output for `commands` against it, then the run's report.
fn gdb_session(args: &[&str], commands: &[&str]) -> (String, std::process::Output) {
    let port = free_port();
    let mut vm = Command::new(nicproof_bin())
        .args(["run", "--guest", guest_image().to_str().unwrap()])
        .args(["--quiet", "--timeout", "120"])
        .args(args)
        .args(["--gdb", &port.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning nicproof");
    // It says so once it listens (before the guest's first instruction).
    let mut err = std::io::BufReader::new(vm.stderr.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut err, &mut first).unwrap();
    assert!(
        first.contains(&format!("waiting for gdb: target remote 127.0.0.1:{port}")),
        "{first}"
    );
    let mut gdb = Command::new("gdb");
    gdb.args(["-batch", "-nx", "-ex", &format!("target remote :{port}")]);
    for c in commands {
        gdb.args(["-ex", c]);
    }
    let gdb = gdb
        .arg(guest_image())
        .output()
        .expect("gdb is missing: `make tools` installs it");
    let out =
        String::from_utf8_lossy(&gdb.stdout).into_owned() + &String::from_utf8_lossy(&gdb.stderr);
    (out, vm.wait_with_output().unwrap())
}

/// Where gdb set breakpoint 1 (`Breakpoint 1 at 0x2121: file ...`).
fn breakpoint_address(out: &str) -> String {
    out.lines()
        .find(|l| l.starts_with("Breakpoint 1 at 0x"))
        .and_then(|l| l.split_whitespace().nth(3))
        .map(|a| a.trim_end_matches(':').to_string())
        .expect("breakpoint address")
}

/// The value of `info registers REG` lines (`rip 0x2121 0x2121 <f+4>`),
/// in order.
fn reg_values<'a>(out: &'a str, reg: &str) -> Vec<&'a str> {
    out.lines()
        .filter(|l| l.split_whitespace().next() == Some(reg))
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect()
}

#[test]
fn gdb_sees_each_vcpu_as_a_thread_and_stops_on_the_ap() {
    // smp, on the (default) virtual clock: NAPI polls on vCPU 1, so the
    // breakpoint stops the AP; gdb lists both vCPUs, reads each one's
    // registers, steps the AP, and the run goes on to pass.
    let (out, vm) = gdb_session(
        &["--scenario", "smp"],
        &[
            "break nicproof_guest::driver::Adapter::napi_poll",
            "continue",
            "info threads",
            "thread 1",
            "info registers rip",
            "thread 2",
            "info registers rip rsp",
            "stepi",
            "info registers rip",
            "delete",
            "continue",
        ],
    );
    let report = String::from_utf8_lossy(&vm.stdout);
    assert!(
        out.contains("Thread 2 hit Breakpoint 1"),
        "the AP (vCPU 1) stopped at the breakpoint: {out}"
    );
    let threads: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("Thread 1.1 ") || l.contains("Thread 1.2 "))
        .collect();
    assert_eq!(threads.len(), 2, "info threads lists both vCPUs: {out}");
    assert!(
        threads[1].starts_with('*') && threads[1].contains("napi_poll"),
        "{out}"
    );
    assert!(
        threads[0].contains("(vCPU 0)") && threads[1].contains("(vCPU 1)"),
        "{out}"
    );
    let bp = breakpoint_address(&out);
    let rips = reg_values(&out, "rip");
    assert_eq!(rips.len(), 3, "{out}");
    assert_ne!(rips[0], bp, "vCPU 0 is elsewhere: {out}");
    assert_eq!(rips[1], bp, "vCPU 1 is at the breakpoint: {out}");
    assert_ne!(rips[2], rips[1], "stepi moved vCPU 1: {out}");
    assert_eq!(reg_values(&out, "rsp").len(), 1, "{out}");
    assert!(out.contains("exited normally"), "{out}");
    assert_eq!(vm.status.code(), Some(0), "{report}");
    assert!(report.contains("clock: virtual"), "{report}");
    assert!(
        report.contains("vCPUs: boot vCPU 0, and 1 started"),
        "{report}"
    );
}

#[test]
fn gdb_refuses_cpl3_in_one_line() {
    // This KVM backend fires no breakpoint in CPL3 code (see vmm/src/gdb.rs).
    let o = Command::new(nicproof_bin())
        .args(["run", "--guest", guest_image().to_str().unwrap()])
        .args(["--cpl", "3", "--gdb", &free_port().to_string()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(7), "{err}");
    assert!(
        err.contains("--gdb debugs the driver at CPL0") && err.trim().lines().count() == 1,
        "{err}"
    );
}

#[test]
fn a_gdb_port_in_use_is_a_one_line_error_with_its_own_exit_code() {
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    let r = run(&guest_image(), &["--scenario", "boot", "--gdb", &port]);
    assert_eq!(
        (r.code, r.outcome()),
        (9, "gdb-cannot-listen"),
        "{}",
        r.stdout
    );
    let msg = r.report["message"].as_str().unwrap();
    assert!(
        msg.starts_with(&format!("--gdb {port}: cannot listen on 127.0.0.1:{port}"))
            && !msg.contains('\n'),
        "{msg}"
    );
}
