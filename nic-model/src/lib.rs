//! nicproof's NIC model.
//!
//! `abi` is `no_std` and shared with the guest driver. Everything else
//! (the device, PCI configuration space, MSI-X, the DMA monitor and the
//! event log) needs `std` and is behind the default `std` feature.
#![cfg_attr(not(feature = "std"), no_std)]

pub mod abi;

#[cfg(feature = "std")]
pub mod events;
