//! What the valgrind-counted examples share (nic-model's `tx_instructions`
//! and `monitor_scaling`, guest-driver's `driver_instructions`), included
//! with `#[path]`: examples cannot share a module otherwise, and this is no
//! part of either library's API.

use std::process::{Command, ExitCode};

/// This program's path, to run itself again as a child under valgrind; or
/// the exit code to end with: success when valgrind is missing (the
/// `table` is skipped, after saying how to get valgrind and `rerun` it),
/// failure when the path is unknown.
pub fn self_under_valgrind(table: &str, rerun: &str) -> Result<String, ExitCode> {
    if Command::new("valgrind").arg("--version").output().is_err() {
        println!(
            "{table} skipped: valgrind is not installed (apt-get install valgrind, then `{rerun}`)"
        );
        return Err(ExitCode::SUCCESS);
    }
    std::env::current_exe()
        .map(|p| p.to_string_lossy().into_owned())
        .map_err(|e| {
            eprintln!("cannot find this program's path: {e}");
            ExitCode::FAILURE
        })
}

/// Instructions of one run of `exe --child ARGS` under cachegrind (no
/// cache simulation); `what` names the child in errors.
#[allow(dead_code)] // driver_instructions reads cachegrind's file instead
pub fn instructions(exe: &str, args: &[String], what: &str) -> Result<u64, String> {
    let out = Command::new("valgrind")
        .args([
            "--tool=cachegrind",
            "--cache-sim=no",
            "--cachegrind-out-file=/dev/null",
        ])
        .arg(exe)
        .arg("--child")
        .args(args)
        .output()
        .map_err(|e| format!("running valgrind: {e}"))?;
    let err = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!("child {what} failed: {err}"));
    }
    // "==123== I   refs:      33,050,028"
    err.lines()
        .find_map(|l| {
            l.split_once("I   refs:")
                .map(|(_, n)| n.trim().replace(',', ""))
        })
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| format!("no 'I refs' line in valgrind's output: {err}"))
}
