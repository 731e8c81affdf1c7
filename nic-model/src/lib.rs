//! nicproof's NIC model.
//!
//! `abi` is `no_std` and shared with the guest driver. Everything else
//! (the device, PCI configuration space, MSI-X, the DMA monitor and the
//! event log) needs `std` and is behind the default `std` feature.
//!
//! Entry points: [`Nic`] (the device core), [`PciRoot`] (configuration
//! mechanism #1 and MMIO routing), [`NicConfig`] (knobs, mutant,
//! backend), [`MsiSink`] (how interrupts leave), and the one catalogue of
//! rules in [`rules`].
#![warn(missing_docs)]
#![cfg_attr(not(feature = "std"), no_std)]

pub mod abi;
pub mod rules;
pub mod udp;

#[cfg(feature = "std")]
pub mod events;

#[cfg(feature = "std")]
pub mod backend;
#[cfg(feature = "std")]
pub mod config;
#[cfg(feature = "std")]
pub mod device;
#[cfg(feature = "std")]
pub mod error;
#[cfg(feature = "std")]
#[doc(hidden)]
pub mod fuzz;
#[cfg(feature = "std")]
mod intervals;
#[cfg(feature = "std")]
pub mod monitor;
#[cfg(feature = "std")]
pub mod msix;
#[cfg(feature = "std")]
pub mod pci;
#[cfg(feature = "std")]
#[doc(hidden)]
pub mod test_utils;

#[cfg(feature = "std")]
pub use config::{BackendConfig, InvalidMac, IrqWindow, NicConfig, WindowStart};
#[cfg(feature = "std")]
pub use device::{frame_hash, Nic, TX_PREFETCH};
#[cfg(feature = "std")]
pub use error::NicError;
#[cfg(feature = "std")]
pub use monitor::Violation;
#[cfg(feature = "std")]
pub use msix::{MsiSink, NullMsi};
#[cfg(feature = "std")]
pub use pci::PciRoot;
