//! TSC calibration against the 8254 PIT, for QEMU (PVH path), where no
//! boot info carries the TSC rate. Under nicproof the VMM passes it.

use super::cpu::{inb, outb, rdtsc};

const PIT_HZ: u64 = 1_193_182;
/// Calibration window: 10 ms of PIT channel 2.
const WINDOW_MS: u64 = 10;
/// Poll bound: each `in` exits to the hypervisor (~5 µs), so 1e6 polls
/// is several seconds; a PIT that never counts cannot hang the boot.
const MAX_POLLS: u32 = 1_000_000;

/// Measure the TSC rate in kHz; None if the PIT did not count down.
pub fn calibrate_tsc_khz() -> Option<u64> {
    let count = (PIT_HZ * WINDOW_MS / 1000) as u16;
    // Gate channel 2 on, speaker off.
    let gate = inb(0x61);
    outb(0x61, (gate & !0x02) | 0x01);
    // Channel 2, lobyte/hibyte, mode 0 (interrupt on terminal count).
    outb(0x43, 0b1011_0000);
    outb(0x42, count as u8);
    outb(0x42, (count >> 8) as u8);
    let t0 = rdtsc();
    let mut polls = 0;
    // Bit 5 of port 0x61 is channel 2's output: it goes high at zero.
    while inb(0x61) & 0x20 == 0 {
        polls += 1;
        if polls == MAX_POLLS {
            return None;
        }
    }
    let t1 = rdtsc();
    outb(0x61, gate);
    let khz = (t1 - t0) / WINDOW_MS;
    (khz > 0).then_some(khz)
}
