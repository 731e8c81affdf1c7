//! x86_64: entry (direct 64-bit and PVH), GDT, IDT and interrupt entry,
//! x2APIC and its timer, serial, the control port, per-CPU data, and the
//! kernel's [`platform::KernelPlatform`].

pub mod apic;
pub mod control;
pub mod cpu;
pub mod entry;
pub mod idt;
pub mod logger;
pub mod percpu;
pub mod pit;
pub mod platform;
pub mod serial;
pub mod user;
