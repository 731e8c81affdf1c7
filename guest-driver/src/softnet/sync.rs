//! Atomics shim: under `--cfg loom` the real queue and NAPI code run on
//! loom's model-checked atomics; otherwise on `core`'s.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

#[cfg(not(loom))]
pub(crate) use core::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
