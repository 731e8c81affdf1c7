//! The paravirtual control port (abi::control): records out, run
//! configuration in, power-off. Under QEMU the port is absent and reads
//! all ones; records then go nowhere and power-off uses isa-debug-exit.

use super::cpu::{self, inl, outl, outl_mem};
use core::sync::atomic::{AtomicBool, Ordering};
use nicproof_guest::abi::control::{
    CONFIG_PORT, CONTROL_MAGIC, CONTROL_PORT, QEMU_DEBUG_EXIT_PORT,
};
use nicproof_guest::abi::{Record, RunConfig, PROTOCOL_VERSION};
use nicproof_guest::kernel::record;

static PRESENT: AtomicBool = AtomicBool::new(false);

/// Probe the port (one `in`); remembers the answer for [`present`].
pub fn detect() -> bool {
    let here = inl(CONTROL_PORT) == CONTROL_MAGIC;
    PRESENT.store(here, Ordering::Relaxed);
    here
}

/// Whether the nicproof VMM's control port answered at boot.
#[inline]
pub fn present() -> bool {
    PRESENT.load(Ordering::Relaxed)
}

/// Send one record. The host copies it (and its text) during the exit,
/// so stack buffers are fine. Records above 4 GiB cannot be named in a
/// 32-bit `out` and are dropped (the kernel keeps all memory below).
pub fn send(r: &Record) {
    if !present() {
        return;
    }
    if let Ok(gpa) = u32::try_from(r as *const Record as u64) {
        outl_mem(CONTROL_PORT, gpa);
    }
}

/// Why the host's run configuration was not usable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// No control port (e.g. under QEMU).
    NoPort,
    /// The host wrote a different magic (or nothing).
    BadMagic(u32),
    /// The host speaks another protocol version.
    BadVersion(u32),
}

/// Ask the host for the run configuration.
pub fn read_config() -> Result<RunConfig, ConfigError> {
    if !present() {
        return Err(ConfigError::NoPort);
    }
    let mut cfg = RunConfig::default();
    let gpa = &mut cfg as *mut RunConfig as u64;
    // The stack lives below 4 GiB (layout::AP_STACK_BASE), so this fits.
    outl_mem(CONFIG_PORT, gpa as u32);
    // SAFETY: `cfg` is a live local; the volatile read makes sure the
    // compiler reads what the host wrote during the `out` exit.
    let cfg = unsafe { core::ptr::read_volatile(&cfg) };
    if cfg.magic != CONTROL_MAGIC {
        return Err(ConfigError::BadMagic(cfg.magic));
    }
    if cfg.version != PROTOCOL_VERSION {
        return Err(ConfigError::BadVersion(cfg.version));
    }
    Ok(cfg)
}

/// Power the machine off with an exit code (kernel::record::exit_code).
/// Under nicproof the host stops the VM on the record; under QEMU
/// isa-debug-exit ends it with status `(code << 1) | 1`. If neither
/// works, the CPU halts with interrupts off (the VMM's time limit ends it).
pub fn power_off(code: u64) -> ! {
    send(&record::power_off(code));
    outl(QEMU_DEBUG_EXIT_PORT, code as u32);
    cpu::halt_forever()
}
