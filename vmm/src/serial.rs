//! COM1 (0x3f8) on vm-superio's 16550: output is shown live (unless
//! quiet) and kept for the report.

use std::io::{self, Write};
use std::sync::{Arc, Mutex};

use vm_device::bus::PioAddress;
use vm_device::MutDevicePio;
use vm_superio::{Serial, Trigger};

/// COM1 base port.
pub const COM1: u16 = 0x3f8;
/// Number of COM1 ports.
pub const COM1_LEN: u16 = 8;
/// Serial output kept per run; older bytes are dropped.
const MAX_KEPT: usize = 4 << 20;

/// The guest polls the line status register, so the serial interrupt has
/// nowhere to go; wiring it (irqfd on GSI 4) waits for a guest that uses it.
pub struct NoIrq;

impl Trigger for NoIrq {
    type E = io::Error;
    fn trigger(&self) -> io::Result<()> {
        Ok(())
    }
}

/// Captured serial output, shared with the report.
#[derive(Clone, Default)]
pub struct SerialLog(Arc<Mutex<Vec<u8>>>);

impl SerialLog {
    /// Everything kept so far, lossily decoded.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }

    /// The last `n` lines.
    pub fn tail(&self, n: usize) -> Vec<String> {
        let t = self.text();
        let lines: Vec<&str> = t.lines().collect();
        lines[lines.len().saturating_sub(n)..]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }
}

/// The writer behind the UART: keeps bytes and optionally echoes them.
pub struct SerialOut {
    log: SerialLog,
    echo: bool,
}

impl Write for SerialOut {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        {
            let mut v = self.log.0.lock().unwrap_or_else(|e| e.into_inner());
            if v.len() + buf.len() > MAX_KEPT {
                let drop = (v.len() + buf.len() - MAX_KEPT).min(v.len());
                v.drain(..drop);
            }
            v.extend_from_slice(buf);
        }
        if self.echo {
            // Serial output is best effort: a closed stdout must not stop the VM.
            let _ = io::stdout().write_all(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.echo {
            let _ = io::stdout().flush();
        }
        Ok(())
    }
}

/// COM1 as a port-I/O device.
pub struct SerialDevice(Serial<NoIrq, vm_superio::serial::NoEvents, SerialOut>);

impl SerialDevice {
    /// A UART writing into `log`, echoing to stdout if `echo`.
    pub fn new(log: SerialLog, echo: bool) -> Self {
        Self(Serial::new(NoIrq, SerialOut { log, echo }))
    }
}

impl MutDevicePio for SerialDevice {
    fn pio_read(&mut self, _base: PioAddress, offset: u16, data: &mut [u8]) {
        // String I/O may hand us several bytes for one port: read each.
        for b in data.iter_mut() {
            *b = self.0.read(offset as u8);
        }
    }

    fn pio_write(&mut self, _base: PioAddress, offset: u16, data: &[u8]) {
        for b in data {
            // NoIrq cannot fail and a full output is dropped by SerialOut,
            // so the only error (a trigger error) is impossible here.
            let _ = self.0.write(offset as u8, *b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_written_to_thr_are_kept() {
        let log = SerialLog::default();
        let mut d = SerialDevice::new(log.clone(), false);
        d.pio_write(PioAddress(COM1), 0, b"one\ntwo\nthree\n");
        assert_eq!(log.tail(2), vec!["two".to_string(), "three".to_string()]);
        let mut lsr = [0u8];
        d.pio_read(PioAddress(COM1), 5, &mut lsr);
        assert_ne!(
            lsr[0] & 0x20,
            0,
            "THR empty, so a polling guest never waits"
        );
    }
}
