//! nicproof's guest: the parts that also build and test on the host.
//!
//! On `x86_64-unknown-none` this is `no_std`; on the host it is a normal
//! library so the softnet core (rings, queue state, BQL, skb ledger) runs
//! under `cargo test` and loom.
#![warn(missing_docs)]
#![cfg_attr(target_os = "none", no_std)]

extern crate alloc;

pub use nic_model::abi;

pub mod driver;
pub mod kernel;
pub mod platform;
pub mod scenarios;
pub mod softnet;
