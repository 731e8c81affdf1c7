//! The NIC model under hostile guest operations, with the monitor on:
//! `nic_model::fuzz::run` interprets the input and checks every operation;
//! a failed check is a finding (a panic libFuzzer saves as a crash).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(finding) = nic_model::fuzz::run(data) {
        panic!("finding: {finding}");
    }
});
