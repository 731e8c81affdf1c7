//! The whole VM matrix as one cargo test, so that cargo-mutants can run
//! its survivors through real VMs (`make mutants-vm`): the test builds the
//! guest image from this source tree (mutated or not), then runs
//! `nicproof matrix --guest` on it. The matrix exits non-zero when a case
//! that must pass fails or a mutant switch is no longer caught, so a source
//! mutant that changes anything the matrix observes fails this test.
//!
//! Only built with `--features vm-matrix` (so `cargo test --workspace`
//! does not run the matrix twice: tests/tests/matrix.rs runs it for
//! `make test`). It needs /dev/kvm and the release `nicproof` binary,
//! which it takes from `NICPROOF_BIN` (the Makefile sets it; cargo-mutants
//! copies only the sources into its scratch tree, not target/).

use std::path::PathBuf;
use std::process::Command;

#[test]
fn the_vm_matrix_passes_on_the_guest_built_from_this_tree() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("guest-driver lives in the workspace")
        .to_path_buf();
    let nicproof = std::env::var_os("NICPROOF_BIN").map(PathBuf::from).expect(
        "NICPROOF_BIN is not set: run through `make mutants-vm`, or set it to target/release/nicproof",
    );
    // Where the mutated guest builds: outside the scratch tree, so every
    // mutant's build is incremental.
    let guest_target = std::env::var_os("NICPROOF_MUTANT_GUEST_TARGET")
        .map_or_else(|| root.join("target/mutant-guest"), PathBuf::from);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let build = Command::new(cargo)
        .current_dir(&root)
        .args([
            "build",
            "-p",
            "guest-driver",
            "--bin",
            "nicproof-guest",
            "--release",
            "--target",
            "x86_64-unknown-none",
            "--target-dir",
        ])
        .arg(&guest_target)
        // The guest is built for the bare-metal target: none of the host
        // test build's flags apply to it.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .status()
        .expect("spawning cargo build for the guest");
    assert!(build.success(), "the guest did not build from this tree");
    let guest = guest_target.join("x86_64-unknown-none/release/nicproof-guest");
    let jobs = std::env::var("NICPROOF_MUTANT_MATRIX_JOBS").unwrap_or_else(|_| "2".into());
    let out = Command::new(&nicproof)
        .args(["matrix", "--jobs", &jobs, "--guest"])
        .arg(&guest)
        .output()
        .unwrap_or_else(|e| panic!("spawning {}: {e}", nicproof.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    // The jobs that went wrong, not the whole table.
    for line in stdout
        .lines()
        .filter(|l| l.contains("FAIL") || l.contains("MISSED") || l.contains(" missed"))
    {
        println!("{line}");
    }
    assert!(
        out.status.success(),
        "the matrix rejects the guest built from this tree ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}
