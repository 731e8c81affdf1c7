//! Instructions per transmitted packet with the DMA monitor on and off,
//! counted by valgrind (cachegrind): exact and repeatable, where time on a
//! shared 2-core machine drifts by several percent between runs. The same
//! four cases and device as the paired timing table (`benches/tx.rs`).
//!
//! `make bench` runs it: `cargo run --release -p nic-model --example
//! tx_instructions`. Each case and mode runs twice under valgrind, with
//! 100 and 300 doorbells of 256 packets, and the difference divided by
//! 200 × 256 is the per-packet count, free of set-up and start-up costs.
//! Without valgrind it says how to get it and exits 0 (the timing table
//! still stands).

#[path = "common/cachegrind.rs"]
mod cachegrind;

use nic_model::test_utils::{tx_bench_device, BENCH_BATCH};
use std::process::ExitCode;

const CASES: [(u16, u16); 4] = [(64, 1), (64, 4), (1500, 1), (1500, 4)];
const FEW: u32 = 100;
const MANY: u32 = 300;
/// The budget for the monitor: 5 % of the device's own work.
const TARGET: f64 = 1.05;

/// Child mode: `--child FRAME FRAGS on|off DOORBELLS`.
fn child(frame: u16, frags: u16, monitor: bool, doorbells: u32) {
    let mut h = tx_bench_device(frame, frags, monitor);
    for _ in 0..doorbells {
        h.bench_doorbell(frags);
        h.bench_clear();
    }
    assert!(
        h.rules().is_empty(),
        "benchmark set-up is a correct driver: {:?}",
        h.rules()
    );
}

/// Instructions of one child run under cachegrind.
fn count(exe: &str, frame: u16, frags: u16, monitor: bool, doorbells: u32) -> Result<u64, String> {
    let mode = if monitor { "on" } else { "off" };
    let args = [
        frame.to_string(),
        frags.to_string(),
        mode.to_string(),
        doorbells.to_string(),
    ];
    cachegrind::instructions(exe, &args, &format!("{frame}B x{frags} {mode}"))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--child") {
        let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
        let (Ok(frame), Ok(frags), Ok(n)) = (arg(2).parse(), arg(3).parse(), arg(5).parse()) else {
            eprintln!("usage: tx_instructions [--child FRAME FRAGS on|off DOORBELLS]");
            return ExitCode::from(2);
        };
        child(frame, frags, arg(4) == "on", n);
        return ExitCode::SUCCESS;
    }
    let exe = match cachegrind::self_under_valgrind(
        "instruction table",
        "cargo run --release -p nic-model --example tx_instructions",
    ) {
        Ok(exe) => exe,
        Err(code) => return code,
    };
    println!(
        "\ninstructions per packet, DMA monitor off and on (valgrind; ({MANY} - {FEW}) doorbells of \
         {BENCH_BATCH} packets)"
    );
    println!(
        "{:<14} {:>8} {:>8} {:>8} {:>9}  target <= 5 %",
        "case", "off", "on", "on-off", "on/off"
    );
    let per_packet = f64::from((MANY - FEW) * BENCH_BATCH);
    for (frame, frags) in CASES {
        let mut row = [0f64; 2];
        for (i, monitor) in [false, true].into_iter().enumerate() {
            let few = count(&exe, frame, frags, monitor, FEW);
            let many = count(&exe, frame, frags, monitor, MANY);
            match (few, many) {
                (Ok(a), Ok(b)) => row[i] = b.saturating_sub(a) as f64 / per_packet,
                (Err(e), _) | (_, Err(e)) => {
                    eprintln!("{e}");
                    return ExitCode::FAILURE;
                }
            }
        }
        let ratio = row[1] / row[0];
        println!(
            "{:<14} {:>8.0} {:>8.0} {:>8.0} {:>9.3}  {}",
            format!("{frame}B-{frags}desc"),
            row[0],
            row[1],
            row[1] - row[0],
            ratio,
            if ratio <= TARGET { "met" } else { "MISSED" }
        );
    }
    ExitCode::SUCCESS
}
