//! README "Debugging a failure": its command block runs verbatim, each
//! line with the exit code it states (`# exit N`, else 0), in a scratch
//! directory where `nicproof` is on PATH and `images/nicproof-guest` is
//! the guest image, as in a checkout after `make build`.

use nicproof_tests::*;
use std::process::Command;

/// The lines of the block after `<!-- walkthrough -->`, with their exit codes.
fn walkthrough() -> Vec<(String, i32)> {
    let readme = std::fs::read_to_string(workspace().join("README.md")).expect("README.md");
    let after = readme
        .split("<!-- walkthrough -->")
        .nth(1)
        .expect("a walkthrough block in README.md");
    let block = after
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a ```sh block");
    block
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| match l.split_once("  # exit ") {
            Some((cmd, code)) => (cmd.to_string(), code.trim().parse().expect("an exit code")),
            None => (l.to_string(), 0),
        })
        .collect()
}

#[test]
fn the_debugging_walkthrough_runs_verbatim() {
    let dir = std::env::temp_dir().join(format!("nicproof-readme-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("images")).unwrap();
    let guest = dir.join("images/nicproof-guest");
    let _ = std::fs::remove_file(&guest);
    std::fs::copy(guest_image(), &guest).unwrap();
    let bin_dir = nicproof_bin().parent().unwrap().to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let steps = walkthrough();
    assert!(steps.len() >= 5, "{steps:?}");
    let (mut outputs, mut errors) = (Vec::new(), Vec::new());
    for (cmd, want) in &steps {
        let o = Command::new("bash")
            .args(["-o", "pipefail", "-c", cmd])
            .current_dir(&dir)
            .env("PATH", &path)
            .output()
            .expect("bash");
        let (out, err) = (
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr),
        );
        assert_eq!(o.status.code(), Some(*want), "`{cmd}`:\n{out}\n{err}");
        assert!(!err.contains("panicked"), "`{cmd}`: {err}");
        outputs.push(out.into_owned());
        errors.push(err.into_owned());
    }
    // What the README says each step shows.
    assert!(outputs[0].contains("caught"), "{}", outputs[0]);
    assert!(outputs[1].contains("  first cause: #"), "{}", outputs[1]);
    assert!(dir.join("run.trace.json").exists() && dir.join("run.jsonl").exists());
    assert!(
        outputs[3].starts_with("first cause: #") && outputs[3].contains("maps of "),
        "{}",
        outputs[3]
    );
    assert!(outputs[4].contains("event: #10 "), "{}", outputs[4]);
    assert_eq!(outputs[5].lines().count(), 3, "{}", outputs[5]);
    assert!(
        outputs[5]
            .lines()
            .all(|l| l.contains("mmio-write TX_TAIL value=0x")),
        "{}",
        outputs[5]
    );
    assert!(
        outputs[6].contains("\"event\":\"finding\""),
        "{}",
        outputs[6]
    );
    assert!(
        errors[7].starts_with("nicproof: error: missing.jsonl: no such file;"),
        "{}",
        errors[7]
    );
    // The timeline of step 3 has the driver's xmit batches and NAPI polls:
    // one per batch-end tx-ring snapshot and per napi-complete of the log.
    let log = std::fs::read_to_string(dir.join("run.jsonl")).unwrap();
    let markers = |name: &str, at_stop: bool| {
        log.lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|e| e["marker"] == name)
            .filter(|e| (e["args"][4].as_u64().unwrap() & 1 == 1) == at_stop)
            .count()
    };
    let trace: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("run.trace.json")).unwrap()).unwrap();
    let spans = |name: &str| {
        trace["traceEvents"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["ph"] == "X" && e["name"] == name)
            .count()
    };
    let (batches, polls) = (spans("xmit batch"), spans("napi poll"));
    assert!(
        batches > 0 && polls > 0,
        "{batches} xmit batches, {polls} polls"
    );
    assert_eq!(batches, markers("tx-ring", false));
    assert_eq!(polls, markers("napi-complete", false));
    let _ = std::fs::remove_dir_all(&dir);
}
