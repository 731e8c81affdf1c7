//! NAPI: interrupt mitigation by polling with a budget.
//!
//! State bits as in Linux: SCHED (a poll is pending or running; owned by
//! whoever set it), MISSED (an IRQ arrived while SCHED was held, so the
//! poller must go round again instead of completing), DISABLE (no new
//! schedule; `napi_disable` waits for the running poll to end).
//!
//! The poll contract (Documentation/networking/napi.rst) is enforced by
//! [`Napi::poll`], not left to the driver: TX completions are always
//! reclaimed, whatever the budget; budget 0 means TX only: no RX and no
//! `napi_complete_done`; RX work never exceeds the budget; only a poll
//! that used less than its budget completes and re-enables the IRQ.

use super::sync::{AtomicU32, Ordering};

/// A poll is scheduled or running.
pub const NAPI_SCHED: u32 = 1 << 0;
/// An IRQ came while SCHED was held: poll again.
pub const NAPI_MISSED: u32 = 1 << 1;
/// Disabled: schedule is refused.
pub const NAPI_DISABLE: u32 = 1 << 2;

/// Internal: `napi_disable` owns SCHED (no poll can be running).
const NAPI_DISABLED_OWNED: u32 = 1 << 3;

/// Default poll weight (Linux `NAPI_POLL_WEIGHT`).
pub const NAPI_POLL_WEIGHT: u32 = 64;

/// The driver side of a poll.
pub trait NapiHandler {
    /// Reclaim TX completions (unmap, free, BQL completed, wake). Runs on
    /// every poll and ignores the budget.
    fn clean_tx(&mut self);
    /// Receive at most `budget` frames (never called with 0); returns the
    /// number processed.
    fn clean_rx(&mut self, budget: u32) -> u32;
    /// Re-enable the device interrupt after `napi_complete_done`.
    fn irq_enable(&mut self);
}

/// What one [`Napi::poll`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PollResult {
    /// RX frames processed.
    pub rx_done: u32,
    /// Whether `napi_complete_done` ran and released SCHED (then the
    /// driver's `irq_enable` ran too). A poll that gave SCHED up to a
    /// pending `napi_disable` did neither.
    pub completed: bool,
    /// Whether the poll must run again (budget used up or an IRQ was
    /// missed); SCHED is still held.
    pub repoll: bool,
}

/// One NAPI context.
pub struct Napi {
    state: AtomicU32,
    weight: u32,
}

impl Napi {
    /// A disabled context (drivers enable it in open).
    pub fn new(weight: u32) -> Self {
        Self {
            state: AtomicU32::new(NAPI_SCHED | NAPI_DISABLE | NAPI_DISABLED_OWNED),
            weight,
        }
    }

    /// The poll weight (the budget of one normal poll).
    pub fn weight(&self) -> u32 {
        self.weight
    }

    /// Raw state bits.
    pub fn state(&self) -> u32 {
        self.state.load(Ordering::Acquire)
    }

    /// `napi_enable`: clear DISABLE and SCHED.
    pub fn enable(&self) {
        self.state.store(0, Ordering::Release);
    }

    /// `napi_schedule_prep`: from the IRQ handler. True if the caller now
    /// owns SCHED and must arrange a poll; false if disabled or a poll is
    /// already pending (then MISSED makes it go round again).
    pub fn schedule(&self) -> bool {
        let mut cur = self.state.load(Ordering::Acquire);
        loop {
            if cur & NAPI_DISABLE != 0 {
                return false;
            }
            let new = if cur & NAPI_SCHED != 0 {
                cur | NAPI_MISSED
            } else {
                cur | NAPI_SCHED
            };
            match self
                .state
                .compare_exchange(cur, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return cur & NAPI_SCHED == 0,
                Err(v) => cur = v,
            }
        }
    }

    /// Whether a poll is scheduled (SCHED held, not by disable).
    pub fn is_scheduled(&self) -> bool {
        self.state() & (NAPI_SCHED | NAPI_DISABLE) == NAPI_SCHED
    }

    /// `napi_complete_done`: release SCHED unless an IRQ was missed, in
    /// which case clear MISSED, keep SCHED and return false (re-poll).
    pub fn complete_done(&self) -> bool {
        let mut cur = self.state.load(Ordering::Acquire);
        loop {
            let (new, done) = if cur & NAPI_MISSED != 0 {
                (cur & !NAPI_MISSED, false)
            } else {
                (cur & !NAPI_SCHED, true)
            };
            match self
                .state
                .compare_exchange(cur, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return done,
                Err(v) => cur = v,
            }
        }
    }

    /// One poll with `budget`; the caller owns SCHED (from
    /// [`Self::schedule`] or a previous `repoll`).
    pub fn poll(&self, budget: u32, h: &mut dyn NapiHandler) -> PollResult {
        h.clean_tx();
        if budget == 0 {
            return PollResult {
                rx_done: 0,
                completed: false,
                repoll: true,
            };
        }
        let rx_done = h.clean_rx(budget).min(budget);
        if rx_done < budget && self.complete_done() {
            h.irq_enable();
            return PollResult {
                rx_done,
                completed: true,
                repoll: false,
            };
        }
        if self.state() & NAPI_DISABLE != 0 {
            // napi_disable is waiting: give SCHED up instead of
            // re-polling, without re-enabling the IRQ.
            self.state
                .fetch_and(!(NAPI_SCHED | NAPI_MISSED), Ordering::AcqRel);
            return PollResult {
                rx_done,
                completed: false,
                repoll: false,
            };
        }
        PollResult {
            rx_done,
            completed: false,
            repoll: true,
        }
    }

    /// Poll with the weight until the context completes or `max_rounds`
    /// polls ran (bounded so a flood cannot starve the caller).
    pub fn run(&self, h: &mut dyn NapiHandler, max_rounds: u32) -> u32 {
        let mut rx = 0;
        for _ in 0..max_rounds {
            let r = self.poll(self.weight, h);
            rx += r.rx_done;
            if !r.repoll {
                break;
            }
        }
        rx
    }

    /// `napi_disable`: set DISABLE so no new schedule succeeds, then take
    /// SCHED once no poll is pending or running. Returns true when the
    /// context is disabled (SCHED now ours); until then the caller waits
    /// (the running poll finishes and releases SCHED) and calls again.
    pub fn try_disable(&self) -> bool {
        let mut cur = self.state.load(Ordering::Acquire);
        loop {
            // SCHED free: take it for good. Held (by a poll, or already by
            // us, DISABLED_OWNED then set and kept): only forbid new
            // schedules; the answer is whether we own it.
            let want = if cur & NAPI_SCHED == 0 {
                cur | NAPI_DISABLE | NAPI_SCHED | NAPI_DISABLED_OWNED
            } else {
                cur | NAPI_DISABLE
            };
            match self
                .state
                .compare_exchange(cur, want, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return want & NAPI_DISABLED_OWNED != 0,
                Err(v) => cur = v,
            }
        }
    }

    /// Whether the context is fully disabled.
    pub fn is_disabled(&self) -> bool {
        self.state() & NAPI_DISABLED_OWNED != 0
    }
}
