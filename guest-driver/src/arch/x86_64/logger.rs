//! `log` backend: each line goes to the serial port and, under nicproof,
//! to the control port as a RecordKind::Log record.
//!
//! Formatting costs thousands of emulated instructions per line here, so
//! the kernel logs sparingly (nothing before Ready).

use super::{control, percpu, serial};
use core::fmt::Write;
use log::{Level, LevelFilter, Log, Metadata};
use nicproof_guest::kernel::record;

/// A small stack buffer for formatting without the heap.
pub struct FmtBuf<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> FmtBuf<N> {
    pub fn new() -> Self {
        Self {
            buf: [0; N],
            len: 0,
        }
    }
    pub fn as_str(&self) -> &str {
        // SAFETY: only whole `str`s or prefixes cut at char boundaries are
        // copied in (write_str), so buf[..len] is UTF-8.
        unsafe { core::str::from_utf8_unchecked(&self.buf[..self.len]) }
    }
}

impl<const N: usize> Write for FmtBuf<N> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let room = N - self.len;
        let mut n = s.len().min(room);
        while !s.is_char_boundary(n) {
            n -= 1;
        }
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}
struct Logger;

static LOGGER: Logger = Logger;

impl Log for Logger {
    fn enabled(&self, m: &Metadata) -> bool {
        m.level() <= log::max_level()
    }

    fn log(&self, r: &log::Record) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let mut b = FmtBuf::<256>::new();
        // A plain literal needs no formatting pass.
        let text = match r.args().as_str() {
            Some(s) => s,
            None => {
                let _ = write!(b, "{}", r.args());
                b.as_str()
            }
        };
        let cpu = percpu::cpu_id();
        let cpu_digit = [b'0' + (cpu % 10) as u8];
        let cpu_str = core::str::from_utf8(&cpu_digit).unwrap_or("?");
        serial::write_parts(&[
            "[cpu",
            cpu_str,
            " ",
            level_name(r.level()),
            "] ",
            text,
            "\n",
        ]);
        control::send(&record::log(r.level() as u64, text));
    }

    fn flush(&self) {}
}

fn level_name(l: Level) -> &'static str {
    match l {
        Level::Error => "ERROR",
        Level::Warn => "WARN ",
        Level::Info => "INFO ",
        Level::Debug => "DEBUG",
        Level::Trace => "TRACE",
    }
}

/// Install the logger (boot CPU, once).
pub fn init(level: LevelFilter) {
    // Only fails if a logger is already set, which cannot happen here.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}
