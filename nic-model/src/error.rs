//! Errors of the NIC model's host-side set-up paths.
//!
//! Guest-caused faults are never `Err`s: they latch the device's error
//! register and are logged (see `device/`). Only host configuration
//! (opening a pcap file, bad knobs) returns these.

use thiserror::Error;

/// Failures building or configuring a [`crate::Nic`].
#[derive(Debug, Error)]
pub enum NicError {
    /// The pcap backend could not be created.
    #[error("pcap backend {path}: {source}")]
    Pcap {
        /// File the backend writes.
        path: String,
        /// What pcap-file reported.
        #[source]
        source: pcap_file::PcapError,
    },
    /// The pcap output file could not be created.
    #[error("create {path}: {source}")]
    CreateFile {
        /// File the backend writes.
        path: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A device-mutant name that `abi::DeviceMutant` does not know.
    #[error("unknown device mutant {0:?}")]
    UnknownMutant(String),
}
