//! TSC time base: ticks <-> nanoseconds by multiply and shift.
//!
//! Every guest instruction costs about 1 µs on a software KVM backend,
//! so the scale factors are computed once and each conversion is one 64x64
//! multiply and a shift (no 128-bit division).

/// Fixed-point scale between TSC ticks and nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TscClock {
    /// ns per tick, as a 32.32 fixed-point number.
    ns_per_tick: u64,
    /// ticks per ns, as a 32.32 fixed-point number.
    ticks_per_ns: u64,
    tsc_khz: u64,
}

impl TscClock {
    /// A clock for a TSC running at `tsc_khz` kHz. Returns `None` for 0
    /// or for rates above 2^32 kHz (4 THz), which cannot be real.
    pub const fn new(tsc_khz: u64) -> Option<Self> {
        if tsc_khz == 0 || tsc_khz > u32::MAX as u64 {
            return None;
        }
        // 1 tick = 1e6 / tsc_khz ns; 1e6 << 32 fits in u64 (about 4.3e15).
        let ns_per_tick = (1_000_000u64 << 32) / tsc_khz;
        // tsc_khz < 2^32, so tsc_khz << 32 fits in u64.
        let ticks_per_ns = (tsc_khz << 32) / 1_000_000;
        Some(Self {
            ns_per_tick,
            ticks_per_ns,
            tsc_khz,
        })
    }

    /// The rate this clock was built for.
    pub const fn tsc_khz(&self) -> u64 {
        self.tsc_khz
    }

    /// Nanoseconds for `ticks` TSC ticks (saturating at u64::MAX).
    #[inline]
    pub fn ticks_to_ns(&self, ticks: u64) -> u64 {
        mul_shift(ticks, self.ns_per_tick)
    }

    /// TSC ticks for `ns` nanoseconds (saturating at u64::MAX).
    #[inline]
    pub fn ns_to_ticks(&self, ns: u64) -> u64 {
        mul_shift(ns, self.ticks_per_ns)
    }
}

/// `(a * b) >> 32` in 128-bit precision, saturated to u64.
#[inline]
fn mul_shift(a: u64, b: u64) -> u64 {
    let wide = (a as u128 * b as u128) >> 32;
    if wide > u64::MAX as u128 {
        u64::MAX
    } else {
        wide as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_impossible_rates() {
        assert_eq!(TscClock::new(0), None);
        assert_eq!(TscClock::new(1 << 33), None);
    }

    #[test]
    fn one_second_round_trips_at_real_rates() {
        // 2,445,402 kHz is what KVM reports on this machine.
        for khz in [1_000_000u64, 2_445_402, 3_000_000, 999] {
            let c = TscClock::new(khz).unwrap();
            let ticks_per_s = khz * 1000;
            let ns = c.ticks_to_ns(ticks_per_s);
            assert!(ns.abs_diff(1_000_000_000) <= 2, "khz {khz}: {ns} ns");
            let t = c.ns_to_ticks(1_000_000_000);
            // ticks_per_ns carries 32 fractional bits: error < 1e9 / 2^32 ticks.
            assert!(t.abs_diff(ticks_per_s) <= 1, "khz {khz}: {t} ticks");
        }
    }

    #[test]
    fn small_and_huge_values() {
        let c = TscClock::new(2_000_000).unwrap();
        assert_eq!(c.ticks_to_ns(0), 0);
        assert_eq!(c.ticks_to_ns(2), 1);
        assert_eq!(c.ns_to_ticks(1_000), 2_000);
        assert_eq!(c.ns_to_ticks(u64::MAX), u64::MAX);
        // A TSC near wrap-around still converts without overflow.
        assert_eq!(c.ticks_to_ns(u64::MAX), u64::MAX / 2);
    }
}
