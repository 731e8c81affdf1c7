//! What a new user found on the command line (issue 15): output files
//! that cannot be written, guest images that are not the kernel, knobs
//! out of range, a matrix filter that selects nothing, and a default
//! guest image that only worked from the workspace root. Each test was
//! shown failing before its fix.

use nicproof_tests::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn nicproof(args: &[&str]) -> Output {
    Command::new(nicproof_bin())
        .args(args)
        .output()
        .expect("spawning nicproof")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("nicproof-careless-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("scratch dir");
    d
}

/// The exit code of a host error (the report's `host-error`).
const HOST_ERROR: i32 = 6;
/// The exit code of a bad command line.
const USAGE: i32 = 7;

#[test]
fn every_output_file_that_cannot_be_written_is_a_host_error_naming_it() {
    let guest = guest_image();
    let g = guest.to_str().expect("utf-8 path");
    let missing_dir = "/nonexistent-nicproof-dir/out";
    for (flag, path) in [
        ("--json", "/dev/full"),
        ("--events", "/dev/full"),
        ("--pcap", "/dev/full"),
        ("--json", missing_dir),
        ("--events", missing_dir),
    ] {
        let out = nicproof(&[
            "run", "--guest", g, "--quiet", "--knob", "frames=2", flag, path,
        ]);
        let err = text(&out.stdout) + &text(&out.stderr);
        assert_eq!(out.status.code(), Some(HOST_ERROR), "{flag} {path}: {err}");
        assert!(
            err.contains(path),
            "{flag} {path}: the error names the file: {err}"
        );
    }
    for flag in ["--json", "--junit"] {
        let out = nicproof(&[
            "matrix",
            "--guest",
            g,
            "--jobs",
            "1",
            "--filter",
            "hostile/2:none:none#0",
            flag,
            "/dev/full",
        ]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(HOST_ERROR), "matrix {flag}: {err}");
        assert!(err.contains("/dev/full"), "matrix {flag}: {err}");
    }
}

/// `e` with its ELF header field at `off` replaced by `bytes`.
fn patched(e: &[u8], off: usize, bytes: &[u8]) -> Vec<u8> {
    let mut v = e.to_vec();
    v[off..off + bytes.len()].copy_from_slice(bytes);
    v
}

#[test]
fn a_guest_that_is_not_a_static_x86_64_kernel_elf_is_refused_up_front() {
    let real = std::fs::read(guest_image()).expect("guest image");
    let tiny = tiny_elf(&Asm::default().halt().0, &[]);
    let cases: Vec<(&str, PathBuf)> = vec![
        (
            "aarch64",
            write_guest("aarch64", &patched(&tiny, 18, &183u16.to_le_bytes())),
        ),
        (
            "real-aarch64",
            write_guest("real-aarch64", &patched(&real, 18, &183u16.to_le_bytes())),
        ),
        ("elf32", write_guest("elf32", &patched(&tiny, 4, &[1]))),
        (
            "big-endian",
            write_guest("big-endian", &patched(&tiny, 5, &[2])),
        ),
        (
            "shared-object",
            write_guest("dyn", &patched(&tiny, 16, &3u16.to_le_bytes())),
        ),
        (
            "entry-0",
            write_guest("entry0", &patched(&tiny, 24, &0u64.to_le_bytes())),
        ),
        ("/bin/ls", PathBuf::from("/bin/ls")),
    ];
    for (what, path) in cases {
        let out = nicproof(&[
            "run",
            "--scenario",
            "empty",
            "--guest",
            path.to_str().unwrap(),
            "--quiet",
        ]);
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert_eq!(
            out.status.code(),
            Some(HOST_ERROR),
            "{what}: {stdout}{stderr}"
        );
        assert!(
            stdout.contains("needs a static x86-64 kernel ELF (build it with make guest)"),
            "{what}: {stdout}{stderr}"
        );
    }
}

#[test]
fn knobs_out_of_range_are_usage_errors_that_say_the_range() {
    for (knob, want) in [
        ("tx-ring=3", "tx-ring"),
        ("tx-ring=100000", "4096"),
        ("tx-ring=0x100000000", "tx-ring"),
        ("bench=2", "bench"),
        ("frames=abc", "frames"),
    ] {
        let out = nicproof(&["run", "--guest", "/nonexistent", "--knob", knob]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(USAGE), "{knob}: {err}");
        assert!(err.contains(want), "{knob}: {err}");
        assert!(out.stdout.is_empty(), "{knob}: a report was printed");
    }
    let out = nicproof(&[
        "run",
        "--guest",
        "/nonexistent",
        "--scenario",
        "hostile",
        "--knob",
        "variant=14",
    ]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(USAGE), "{err}");
    assert!(err.contains("variant") && err.contains("100"), "{err}");
}

#[test]
fn the_seed_takes_hex_like_the_knobs() {
    let r = run(&guest_image(), &["--scenario", "empty", "--seed", "0x10"]);
    assert_eq!(
        (r.code, r.outcome()),
        (0, "passed"),
        "{}{}",
        r.stdout,
        r.stderr
    );
    assert_eq!(r.report["seed"], 16);
}

#[test]
fn a_matrix_filter_that_selects_nothing_is_an_error_unless_allowed() {
    let out = nicproof(&["matrix", "--filter", "nomatch", "--list"]);
    assert_eq!(out.status.code(), Some(USAGE), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("nomatch"),
        "{}",
        text(&out.stderr)
    );
    let out = nicproof(&["matrix", "--filter", "nomatch", "--list", "--allow-empty"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

/// The workspace's own guest image, next to the binary's target dir.
fn run_elsewhere(env_guest: Option<&Path>, dir: &Path, extra: &[&str]) -> Output {
    let mut cmd = Command::new(nicproof_bin());
    cmd.current_dir(dir).env_remove("NICPROOF_GUEST");
    if let Some(g) = env_guest {
        cmd.env("NICPROOF_GUEST", g);
    }
    cmd.args(["run", "--scenario", "empty", "--quiet"])
        .args(extra);
    cmd.output().expect("spawning nicproof")
}

#[test]
fn the_default_guest_is_found_from_any_folder_and_a_missing_one_says_where_it_looked() {
    let dir = scratch("cwd");
    // NICPROOF_GUEST names the image.
    let out = run_elsewhere(Some(&guest_image()), &dir, &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    // Without it, the image next to the binary's workspace (the binary
    // under test is the workspace's own, target/<profile>/nicproof).
    if nicproof_bin().starts_with(workspace())
        && workspace().join("images/nicproof-guest").is_file()
    {
        let out = run_elsewhere(None, &dir, &[]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
    }
    // A missing image: a host error naming where it looked, and no
    // empty --events file left behind.
    let events = dir.join("events.jsonl");
    let out = run_elsewhere(
        Some(Path::new("/nonexistent/guest")),
        &dir,
        &["--events", events.to_str().unwrap()],
    );
    let all = text(&out.stdout) + &text(&out.stderr);
    assert_eq!(out.status.code(), Some(HOST_ERROR), "{all}");
    assert!(
        all.contains("/nonexistent/guest") && all.contains("NICPROOF_GUEST"),
        "{all}"
    );
    assert!(!events.exists(), "an empty --events file was left: {all}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn list_and_descriptions_carry_no_internal_numbers_or_stale_claims() {
    let out = nicproof(&["list"]);
    let list = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0));
    for line in list.lines().filter(|l| l.starts_with("  ")) {
        let desc = line
            .split_whitespace()
            .skip(1)
            .collect::<Vec<_>>()
            .join(" ");
        let first = desc.split_whitespace().next().unwrap_or("");
        assert!(
            !(first.ends_with(':')
                && (first[..first.len() - 1].parse::<u32>().is_ok() || first == "Extra:")),
            "internal numbering in `list`: {line}"
        );
    }
    let lost_wake = list
        .lines()
        .find(|l| l.trim_start().starts_with("lost-wake"))
        .expect("lost-wake listed");
    assert!(!lost_wake.contains("two vCPUs"), "{lost_wake}");
    let readme = std::fs::read_to_string(workspace().join("README.md")).expect("README");
    assert!(
        !readme.contains("Known gap: a BAR0 address"),
        "stale README gap"
    );
}

#[test]
fn a_capture_that_fills_up_mid_run_is_a_host_error_naming_it() {
    // The pcap header fits the 1 KiB file-size limit, the frames do not:
    // the writes fail mid-run (EFBIG), which must end the run as a host
    // error naming the file, not a pass with a truncated capture.
    let dir = scratch("fsize");
    let pcap = dir.join("cap.pcap");
    let script = format!(
        "ulimit -f 1; exec '{}' run --guest '{}' --quiet --knob frames=32 --pcap '{}'",
        nicproof_bin().display(),
        guest_image().display(),
        pcap.display()
    );
    let out = Command::new("sh")
        .args(["-c", &script])
        .output()
        .expect("sh");
    let all = text(&out.stdout) + &text(&out.stderr);
    assert_eq!(out.status.code(), Some(HOST_ERROR), "{all}");
    assert!(all.contains(pcap.to_str().unwrap()), "{all}");
    let _ = std::fs::remove_dir_all(&dir);
}
