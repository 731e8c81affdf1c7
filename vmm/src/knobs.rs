//! The scenario knobs by name: one table for `--knob NAME=VALUE`,
//! `nicproof list`, and the report's knobs and replay command.

use nic_model::abi::knob;

/// Knob names accepted by `--knob`, with their RunConfig index.
pub const KNOBS: &[(&str, usize, &str)] = &[
    (
        "frames",
        knob::FRAMES,
        "frames the scenario sends (0 = default)",
    ),
    (
        "bad-guest",
        knob::BAD_GUEST,
        "bad-guest switch (use --bad-guest)",
    ),
    (
        "tx-ring",
        knob::TX_RING,
        "TX ring size (0 = driver default)",
    ),
    ("batch", knob::BATCH, "xmit_more batch size"),
    ("cycles", knob::CYCLES, "up/down cycles for the soak"),
    (
        "bench",
        knob::BENCH,
        "1 = benchmark mode: no per-packet markers (see abi.rs knob::BENCH)",
    ),
    (
        "variant",
        knob::VARIANT,
        "scenario variant (see abi.rs knob::VARIANT)",
    ),
    (
        "echo",
        knob::ECHO,
        "value the guest echoes back in a Marker::Echo record",
    ),
    (
        "deadline-ms",
        knob::DEADLINE_MS,
        "ms the default scenario waits for its frames (0 = 10 s + 50 ms per frame)",
    ),
];

/// The `--knob` name of knob index `idx`.
pub fn name(idx: usize) -> Option<&'static str> {
    KNOBS.iter().find(|k| k.1 == idx).map(|k| k.0)
}
