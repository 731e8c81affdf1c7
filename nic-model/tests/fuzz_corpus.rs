//! The fuzz corpus and every saved finding, replayed through the same
//! harness the cargo-fuzz target runs (`nic_model::fuzz::run`), as an
//! ordinary test: no nightly, no libFuzzer. `make fuzz` grows the corpus;
//! a finding is saved under `fuzz/regressions/nic/` once fixed.

use nic_model::abi::DeviceMutant;
use nic_model::NicConfig;
use std::path::{Path, PathBuf};

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    v
}

fn replay(sub: &str) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz")
        .join(sub);
    let files = inputs(&dir);
    let mut failed = Vec::new();
    for f in &files {
        let data = std::fs::read(f).expect("read input");
        if let Err(finding) = nic_model::fuzz::run(&data) {
            failed.push(format!("{}: {finding}", f.display()));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
    files.len()
}

#[test]
fn corpus_replays_clean() {
    let n = replay("corpus/nic");
    assert!(n >= 8, "the hand-made corpus is missing ({n} inputs)");
}

#[test]
fn saved_findings_replay_clean() {
    replay("regressions/nic");
}

/// The checks catch a broken device: the corpus input that sends
/// packets, run against device mutants, is a finding for each.
#[test]
fn the_checks_catch_device_mutants() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/nic");
    let data = std::fs::read(dir.join("open-send")).expect("seed open-send");
    let clean =
        nic_model::fuzz::run_with(NicConfig::default(), &data[1..]).expect("correct device");
    assert_eq!(clean.frames, 3, "{clean:?}");
    for (m, rule) in [
        (DeviceMutant::PrefetchPastTail, "desc-unposted"),
        (DeviceMutant::PhantomCompletion, "completion-unposted"),
        (DeviceMutant::DmaAfterDisable, "dma-device-disabled"),
    ] {
        let cfg = NicConfig {
            mutant: m,
            ..NicConfig::default()
        };
        // Disable TX after the traffic so the stray DMA has its moment.
        let mut input = data[1..].to_vec();
        input.extend_from_slice(&[5, 0, 0, 0, 0, 0, 0, 13, 0, 200]);
        match nic_model::fuzz::run_with(cfg, &input) {
            Err(f) => assert!(f.0.contains(rule), "{m:?}: {f}"),
            Ok(s) => panic!("{m:?} not caught: {s:?}"),
        }
    }
}
