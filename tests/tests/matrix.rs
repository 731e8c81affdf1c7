//! The whole scenario matrix through the binary (`nicproof matrix`), and
//! the matrix runner's own contracts: partitions cover every job once, a
//! broken run makes it exit non-zero with a JUnit failure, and the loom
//! table names real failing loom tests. These need /dev/kvm and fail
//! (never skip) without it.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};

use nicproof_tests::*;
use serde_json::Value;

fn matrix(args: &[&str]) -> Output {
    Command::new(nicproof_bin())
        .arg("matrix")
        .args(args)
        .output()
        .expect("spawning nicproof matrix")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn list(extra: &[&str]) -> Vec<String> {
    let out = matrix(&[&["--list"], extra].concat());
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout).lines().map(str::to_string).collect()
}

fn scratch(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!(
        "nicproof-matrix-test-{}-{name}",
        std::process::id()
    ));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// Every (case, seed) of `vmm::scenarios::cases()` runs as a VM and meets
/// its expectation. Scenarios whose guest body is still the stub are
/// reported as SKIPPED-UNIMPLEMENTED (counted in the printed summary),
/// never passed silently.
///
/// CI runners split it with `NICPROOF_MATRIX_PARTITION=K/N` (this runner
/// runs its share of the VMs; see README "Spreading the matrix") and may
/// ask for the JUnit file at `NICPROOF_MATRIX_JUNIT`.
#[test]
fn every_case_of_the_matrix_meets_its_expectation() {
    let dir = scratch("full");
    let (json, junit) = (dir.join("matrix.json"), dir.join("junit.xml"));
    let jobs = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .to_string();
    let guest = guest_image();
    let partition = std::env::var("NICPROOF_MATRIX_PARTITION").ok();
    let mut args = vec![
        "--guest".to_string(),
        guest.display().to_string(),
        "--jobs".into(),
        jobs,
        "--skip-unimplemented".into(),
        "--json".into(),
        json.display().to_string(),
        "--junit".into(),
        junit.display().to_string(),
    ];
    if let Some(p) = &partition {
        args.extend(["--partition".to_string(), p.clone()]);
    }
    let out = matrix(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let stdout = text(&out.stdout);
    // The matrix is the point of this test: show it, pass or fail.
    println!("{stdout}");
    assert!(
        out.status.success(),
        "matrix failed:\n{stdout}\n{}",
        text(&out.stderr)
    );

    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("matrix JSON")).expect("JSON");
    let results = summary["results"].as_array().expect("results");
    let ran: BTreeSet<String> = results
        .iter()
        .map(|r| r["name"].as_str().unwrap_or("").to_string())
        .collect();
    let mut all = vmm::matrix::jobs(&vmm::scenarios::cases());
    if let Some(p) = &partition {
        let (k, n) = vmm::matrix::parse_partition(p).expect("NICPROOF_MATRIX_PARTITION");
        all = vmm::matrix::partition(all, k, n);
    }
    let want: BTreeSet<String> = all.iter().map(|j| j.name()).collect();
    assert_eq!(ran, want, "the matrix ran exactly the jobs of cases()");
    for r in results {
        let status = r["status"].as_str().unwrap_or("");
        assert!(
            matches!(status, "passed" | "caught" | "skipped-unimplemented"),
            "{}: {status}: {}",
            r["name"],
            r["reasons"]
        );
        if status == "caught" {
            assert!(
                r["matched"].as_array().is_some_and(|m| !m.is_empty()),
                "{r}"
            );
        }
    }
    // The correct driver on the default scenario is always implemented.
    if partition.is_none() {
        assert!(results
            .iter()
            .any(|r| r["name"] == "default:none:none#0" && r["status"] == "passed"));
    }
    let xml = std::fs::read_to_string(&junit).expect("JUnit file");
    assert!(
        xml.contains(&format!("tests=\"{}\" failures=\"0\"", results.len())),
        "{xml}"
    );
    if let Some(keep) = std::env::var_os("NICPROOF_MATRIX_JUNIT") {
        std::fs::write(&keep, &xml).expect("writing NICPROOF_MATRIX_JUNIT");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--partition K/N` for K = 1..=N together list every job exactly once.
#[test]
fn partitions_together_run_every_case_exactly_once() {
    let all = list(&[]);
    assert!(all.len() >= 9, "{all:?}");
    assert_eq!(
        all.iter().collect::<BTreeSet<_>>().len(),
        all.len(),
        "job names are unique"
    );
    for n in [1usize, 2, 3, 4, 7] {
        let mut parts: Vec<String> = (1..=n)
            .flat_map(|k| list(&["--partition", &format!("{k}/{n}")]))
            .collect();
        assert_eq!(parts.len(), all.len(), "{n} partitions run every job once");
        parts.sort();
        let mut sorted = all.clone();
        sorted.sort();
        assert_eq!(parts, sorted, "{n} partitions");
    }
    for bad in ["0/2", "3/2", "x"] {
        let out = matrix(&["--list", "--partition", bad]);
        assert_eq!(
            out.status.code(),
            Some(7),
            "--partition {bad}: {}",
            text(&out.stderr)
        );
    }
}

/// A run that cannot pass (the guest image is garbage: every VM ends as a
/// host error) makes the matrix exit 1, with the reason in the summary and
/// a JUnit error (a host error, not a failure of the case), for a pass case
/// and for a mutant case alike.
#[test]
fn a_broken_run_fails_the_matrix_with_its_reason() {
    let dir = scratch("broken");
    let guest = dir.join("not-an-elf");
    std::fs::write(&guest, b"this is not an ELF image").expect("write");
    let junit = dir.join("junit.xml");
    let out = matrix(&[
        "--guest",
        &guest.display().to_string(),
        "--filter",
        "default:no-unmap-at-stop:none#0",
        "--junit",
        &junit.display().to_string(),
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("MISSED") && stdout.contains("host error"),
        "{stdout}"
    );
    let out = matrix(&[
        "--guest",
        &guest.display().to_string(),
        "--filter",
        "default:none:none#0",
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("FAIL") && stdout.contains("0 passed, 0 caught, 1 failed"),
        "{stdout}"
    );
    let xml = std::fs::read_to_string(&junit).expect("JUnit file");
    assert!(
        xml.contains("failures=\"0\" errors=\"1\"")
            && xml.contains("<error message=\"MISSED (host-error)")
            && xml.contains("name=\"default:no-unmap-at-stop:none#0\""),
        "{xml}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Each mutant shown as `loom` in the matrix names a test of the loom
/// model that exists and is marked to fail (the model finds the bug);
/// `make test` runs that file.
#[test]
fn loom_table_names_real_failing_model_tests() {
    let path = workspace().join(vmm::matrix::LOOM_FILE);
    let src = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    for (mutant, test) in vmm::matrix::LOOM {
        let at = src
            .find(&format!("fn {test}()"))
            .unwrap_or_else(|| panic!("{}: no fn {test} for {}", path.display(), mutant.name()));
        let attrs = &src[src[..at].rfind("\n\n").unwrap_or(0)..at];
        assert!(
            attrs.contains("#[should_panic"),
            "{test} must expect the model to fail:\n{attrs}"
        );
    }
    assert!(Path::new(&path).exists());
}
