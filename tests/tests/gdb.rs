//! `nicproof run --gdb PORT` (issue 12): a scripted `gdb -batch` session
//! (gdb is installed by `make tools`) attaches before the first
//! instruction, breaks in the driver's start_xmit (`Adapter::xmit_frame`),
//! reads registers there, single-steps, hits the breakpoint again, and
//! lets the run finish: it still passes. A port in use is a one-line
//! host error.

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
    let port = free_port();
    let mut vm = Command::new(nicproof_bin())
        .args([
            "run",
            "--guest",
            guest_image().to_str().unwrap(),
            "--quiet",
            "--timeout",
            "120",
        ])
        .args(["--knob", "frames=4", "--gdb", &port.to_string()])
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
    let gdb = Command::new("gdb")
        .args(["-batch", "-nx"])
        .args(["-ex", &format!("target remote :{port}")])
        .args(["-ex", "break nicproof_guest::driver::Adapter::xmit_frame"])
        .args(["-ex", "continue", "-ex", "info registers rip rsp"])
        .args(["-ex", "stepi", "-ex", "info registers rip"])
        .args(["-ex", "continue", "-ex", "print $pc"])
        .args(["-ex", "delete", "-ex", "continue"])
        .arg(guest_image())
        .output()
        .expect("gdb is missing: `make tools` installs it");
    let out =
        String::from_utf8_lossy(&gdb.stdout).into_owned() + &String::from_utf8_lossy(&gdb.stderr);
    let vm = vm.wait_with_output().unwrap();
    let report = String::from_utf8_lossy(&vm.stdout);
    assert_eq!(
        out.matches("Breakpoint 1, nicproof_guest::driver::Adapter::xmit_frame")
            .count(),
        2,
        "{out}"
    );
    let bp = out
        .lines()
        .find(|l| l.starts_with("Breakpoint 1 at 0x"))
        .and_then(|l| l.split_whitespace().nth(3))
        .map(|a| a.trim_end_matches(':').to_string())
        .expect("breakpoint address");
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

#[test]
fn a_gdb_port_in_use_is_a_one_line_host_error() {
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    let r = run(&guest_image(), &["--scenario", "boot", "--gdb", &port]);
    assert_eq!((r.code, r.outcome()), (6, "host-error"), "{}", r.stdout);
    let msg = r.report["message"].as_str().unwrap();
    assert!(
        msg.starts_with(&format!("--gdb {port}: cannot listen on 127.0.0.1:{port}"))
            && !msg.contains('\n'),
        "{msg}"
    );
}
