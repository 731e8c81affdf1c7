//! Builders for the 64-byte control-port [`Record`]s (abi::control).
//!
//! Text is passed by address: the guest identity-maps RAM, so a pointer
//! is also the guest-physical address the host reads. The text must stay
//! alive until the record has been sent (the host copies it during the
//! `out` exit, before the vCPU resumes).

use crate::abi::{control::MAX_TEXT, Marker, Record, RecordKind};

/// Power-off codes the kernel uses (`args[0]` of [`RecordKind::PowerOff`],
/// and QEMU's isa-debug-exit value).
pub mod exit_code {
    /// The scenario's verdict was pass.
    pub const PASS: u64 = 0;
    /// The scenario's verdict was fail.
    pub const FAIL: u64 = 1;
    /// The kernel panicked.
    pub const PANIC: u64 = 2;
    /// A CPU exception was taken.
    pub const EXCEPTION: u64 = 3;
}

fn with_text(kind: RecordKind, text: &str, args: [u64; 6]) -> Record {
    // Cut at MAX_TEXT on a char boundary so the host always gets UTF-8.
    let mut len = text.len().min(MAX_TEXT as usize);
    while !text.is_char_boundary(len) {
        len -= 1;
    }
    Record {
        kind: kind as u32,
        text_len: len as u32,
        text_ptr: if len == 0 { 0 } else { text.as_ptr() as u64 },
        args,
    }
}

fn plain(kind: RecordKind, args: [u64; 6]) -> Record {
    Record {
        kind: kind as u32,
        text_len: 0,
        text_ptr: 0,
        args,
    }
}

/// A log line; `level` is 1 (error) ..= 5 (trace), as `log::Level as u64`.
pub fn log(level: u64, text: &str) -> Record {
    with_text(RecordKind::Log, text, [level, 0, 0, 0, 0, 0])
}

/// A marker: `args[0]` = marker id, `args` follow in `args[1..]` (at most 5
/// are kept; extra ones are dropped).
pub fn marker(m: Marker, args: &[u64], text: &str) -> Record {
    let mut a = [0u64; 6];
    a[0] = m as u64;
    let n = args.len().min(5);
    a[1..1 + n].copy_from_slice(&args[..n]);
    with_text(RecordKind::Marker, text, a)
}

/// The guest's own verdict.
pub fn verdict(pass: bool, reason: &str) -> Record {
    with_text(RecordKind::Verdict, reason, [pass as u64, 0, 0, 0, 0, 0])
}

/// A panic with its location.
pub fn panic(message: &str, file: &str, line: u32, col: u32) -> Record {
    let args = [
        line as u64,
        col as u64,
        file.as_ptr() as u64,
        file.len() as u64,
        0,
        0,
    ];
    with_text(RecordKind::Panic, message, args)
}

/// A CPU exception.
pub fn exception(vector: u64, error_code: u64, rip: u64, cr2: u64, cpu: u64) -> Record {
    plain(
        RecordKind::Exception,
        [vector, error_code, rip, cr2, cpu, 0],
    )
}

/// Power off with an [`exit_code`].
pub fn power_off(code: u64) -> Record {
    plain(RecordKind::PowerOff, [code, 0, 0, 0, 0, 0])
}

/// Ask the VMM to start `cpu` at `entry` with `stack_top`.
pub fn start_cpu(cpu: u64, entry: u64, stack_top: u64) -> Record {
    plain(RecordKind::StartCpu, [cpu, entry, stack_top, 0, 0, 0])
}

/// An application processor is up.
pub fn cpu_online(cpu: u64) -> Record {
    plain(RecordKind::CpuOnline, [cpu, 0, 0, 0, 0, 0])
}

/// Boot finished: `args[0]` = scenario id, `args[1]` = TSC kHz in use,
/// `args[2]` = boot path (0 direct 64-bit entry, 1 PVH), `args[3]` = the TSC
/// when Ready was sent (guest-side boot time = `args[3]` / `args[1]` ms).
pub fn ready(scenario: u64, tsc_khz: u64, pvh: bool, tsc: u64) -> Record {
    plain(
        RecordKind::Ready,
        [scenario, tsc_khz, pvh as u64, tsc, 0, 0],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_places_id_then_args() {
        let r = marker(Marker::Echo, &[7, 8], "");
        assert_eq!(r.kind, RecordKind::Marker as u32);
        assert_eq!(r.args, [Marker::Echo as u64, 7, 8, 0, 0, 0]);
        assert_eq!((r.text_ptr, r.text_len), (0, 0));
        let many = marker(Marker::Summary, &[1, 2, 3, 4, 5, 6, 7], "x");
        assert_eq!(many.args, [Marker::Summary as u64, 1, 2, 3, 4, 5]);
        assert_eq!(many.text_len, 1);
    }

    #[test]
    fn text_is_cut_at_max_on_a_char_boundary() {
        // 'é' is two bytes; MAX_TEXT is even, so put one byte first to make
        // the cut fall inside a character.
        let mut s = String::from("a");
        while s.len() < 2 * MAX_TEXT as usize {
            s.push('é');
        }
        let r = verdict(false, &s);
        assert_eq!(r.text_len, MAX_TEXT - 1);
        assert_eq!(r.text_ptr, s.as_ptr() as u64);
        assert!(s.is_char_boundary(r.text_len as usize));
        assert_eq!(r.args[0], 0);
        assert_eq!(verdict(true, "ok").args[0], 1);
    }

    #[test]
    fn panic_and_exception_layout() {
        let p = panic("boom", "src/main.rs", 12, 5);
        assert_eq!(p.kind, RecordKind::Panic as u32);
        assert_eq!(&p.args[..2], &[12, 5]);
        assert_eq!(p.args[3], "src/main.rs".len() as u64);
        let e = exception(14, 2, 0x20_1000, 0xdead_b000, 1);
        assert_eq!(e.args, [14, 2, 0x20_1000, 0xdead_b000, 1, 0]);
        assert_eq!(RecordKind::from_u32(e.kind), Some(RecordKind::Exception));
    }
}
