//! Kernel services that are plain logic, so they build and test on the host.
//!
//! The machine-specific half (entry, IDT, x2APIC, ports) lives in the
//! kernel binary (`src/arch/x86_64/`); it feeds these modules:
//! - [`record`]: builds the control-port [`crate::abi::Record`]s;
//! - [`time`]: TSC ticks <-> nanoseconds without a division per call;
//! - [`irq`]: per-vector pending flags and optional handlers, set by the
//!   interrupt entry and consumed by the driver;
//! - [`smp`]: the mailbox through which one CPU runs a job on another.

pub mod irq;
pub mod record;
pub mod smp;
pub mod time;
