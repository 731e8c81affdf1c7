//! The scenario context the matrix groups (lifecycle, queueing) share:
//! the stack one scenario runs on, its set-up, the helpers every group
//! uses and the end-of-run ledger.
//!
//! Group-specific state and helpers stay in the group's module (as an
//! extension trait on [`Ctx`] there).

use alloc::format;
use alloc::string::String;

use super::{Verdict, PAYLOAD};
use crate::abi::{DriverMutant, Marker, RunConfig, MAX_SKB_FRAGS};
use crate::driver::dma::DmaPool;
use crate::driver::sync::SkbCell;
use crate::driver::{splitmix64, Adapter, AdapterOps, DriverConfig};
use crate::platform::Platform;
use crate::softnet::napi::{Napi, NAPI_POLL_WEIGHT};
use crate::softnet::netdev::NetDevice;
use crate::softnet::queue::TxQueue;
use crate::softnet::skb::{Frag, SkbError, SkbId, SkbPool};
use crate::softnet::{PlatformEnv, SoftnetMutants};

pub(crate) type Dev<'q, 'n, 'a, 'e> = NetDevice<'q, 'e, AdapterOps<'n, 'a, 'e>>;

/// The stack one scenario runs on (all borrowed from [`with_stack`]'s frame).
pub(crate) struct Ctx<'q, 'n, 'a, 'e> {
    pub(crate) plat: &'a (dyn Platform + Sync),
    pub(crate) cfg: &'q RunConfig,
    pub(crate) mutant: DriverMutant,
    pub(crate) skbs: &'a SkbCell<'e>,
    pub(crate) txq: &'a TxQueue<'e>,
    pub(crate) napi: &'a Napi,
    pub(crate) nic: &'n Adapter<'a, 'e>,
    pub(crate) dev: Dev<'q, 'n, 'a, 'e>,
    rng: u64,
    /// The first guest oracle failure (the verdict's text).
    failed: Option<String>,
}

/// What differs between the groups' stacks.
pub(crate) struct Stack {
    /// skbs the pool holds.
    pub(crate) pool_skbs: u16,
    /// Whether the TX queue runs BQL.
    pub(crate) bql: bool,
    /// The netdev's watchdog_timeo.
    pub(crate) watchdog_timeo_ns: u64,
    /// XORed into the run's seed for the scenario's own rng.
    pub(crate) seed_salt: u64,
}

/// Build the stack (skb pool, TX queue, NAPI, probed NIC, registered
/// netdev) and run `body` on it. A failed probe or register is the
/// verdict without running `body`.
pub(crate) fn with_stack(
    plat: &(dyn Platform + Sync),
    cfg: &RunConfig,
    pool: DmaPool,
    stack: Stack,
    body: impl FnOnce(Ctx<'_, '_, '_, '_>) -> Verdict,
) -> Verdict {
    let mutant = DriverMutant::from_u32(cfg.driver_mutant).unwrap_or(DriverMutant::None);
    let env = PlatformEnv(plat);
    let skbs = SkbCell::new(SkbPool::new(stack.pool_skbs, &env));
    let txq = TxQueue::new(
        0,
        stack.bql,
        SoftnetMutants::from_driver_mutant(mutant),
        &env,
    );
    let napi = Napi::new(NAPI_POLL_WEIGHT);
    let nic = match Adapter::probe(plat, pool, DriverConfig::from_run(cfg), &skbs, &txq, &napi) {
        Ok(n) => n,
        Err(e) => return Verdict::fail(format!("probe failed: {e:?}")),
    };
    let mut dev = NetDevice::new(
        AdapterOps {
            nic: &nic,
            napi_here: true,
        },
        &txq,
        stack.watchdog_timeo_ns,
    );
    dev.set_dev_addr(nic.mac, nic.addr_assign);
    if let Err(e) = dev.register() {
        return Verdict::fail(format!("register failed: errno {e}"));
    }
    body(Ctx {
        plat,
        cfg,
        mutant,
        skbs: &skbs,
        txq: &txq,
        napi: &napi,
        nic: &nic,
        dev,
        rng: cfg.seed ^ stack.seed_salt,
        failed: None,
    })
}

impl Ctx<'_, '_, '_, '_> {
    /// Report a guest oracle failure; the first one becomes the verdict.
    pub(crate) fn fail(&mut self, why: &str) {
        self.plat.marker_text(Marker::OracleFail, &[], why);
        if self.failed.is_none() {
            self.failed = Some(String::from(why));
        }
    }

    pub(crate) fn check(&mut self, ok: bool, why: &str) {
        if !ok {
            self.fail(why);
        }
    }

    pub(crate) fn rand(&mut self) -> u64 {
        self.rng = splitmix64(self.rng);
        self.rng
    }

    /// A seeded frame shape of mixed traffic: 1..=4 fragments and
    /// 60..=1200 bytes in all, as (fragments, bytes).
    #[inline]
    pub(crate) fn mixed_shape(&mut self) -> (usize, u32) {
        let r = self.rand();
        (1 + (r % 4) as usize, 60 + ((r >> 8) % 1140) as u32)
    }

    pub(crate) fn phase(&self, n: u64, name: &str) {
        self.plat.marker_text(Marker::Phase, &[n], name);
    }

    pub(crate) fn open(&mut self) -> Result<(), String> {
        self.dev
            .open()
            .map_err(|e| format!("open failed: errno {e}"))?;
        self.dev.set_carrier(true);
        Ok(())
    }

    /// An skb of `nfrags` (at most MAX_SKB_FRAGS) fragments of `frag_len`
    /// bytes each from the payload pool, at a seeded offset that leaves
    /// `slack` bytes before the pool's end (the host fills and checks the
    /// bytes), with an optional linear head (copied into the skb).
    pub(crate) fn payload_skb(
        &mut self,
        head: &[u8],
        nfrags: usize,
        frag_len: u32,
        slack: u64,
    ) -> Result<SkbId, SkbError> {
        let mut frags = [Frag::default(); MAX_SKB_FRAGS as usize];
        let base = PAYLOAD.0 + self.rand() % (PAYLOAD.1 - slack);
        for (k, f) in frags.iter_mut().take(nfrags).enumerate() {
            *f = Frag {
                addr: base + k as u64 * u64::from(frag_len),
                len: frag_len,
            };
        }
        self.skbs.borrow_mut().alloc(head, &frags[..nfrags])
    }

    /// A poll point: the NIC's interrupt handler for whatever fired since
    /// the last wait, then the NAPI poll it scheduled (or one left
    /// scheduled over budget), as the interrupt exit would run it. Without
    /// an interrupt nothing is reclaimed or received. Returns RX frames.
    pub(crate) fn poll(&self) -> u32 {
        self.nic.run_irq_work()
    }

    /// Sleep until the next interrupt (at most `bound_ns`; not at all if
    /// a poll is still scheduled), then run a poll point: one NAPI round
    /// as the device's next interrupt brings it. Returns RX frames.
    pub(crate) fn wait_and_poll(&self, bound_ns: u64) -> u32 {
        if !self.napi.is_scheduled() {
            self.nic.wait_until(self.plat.now_ns() + bound_ns);
        }
        self.poll()
    }

    /// Run poll points until `done` holds, sleeping until the next
    /// interrupt in between; false after `bound_ns`.
    pub(crate) fn poll_until(&self, bound_ns: u64, mut done: impl FnMut(&Self) -> bool) -> bool {
        let deadline = self.plat.now_ns() + bound_ns;
        loop {
            self.poll();
            if done(self) {
                return true;
            }
            if self.plat.now_ns() > deadline {
                return self.last_chance() && done(self);
            }
            if !self.napi.is_scheduled() {
                self.nic.wait_until(deadline + 1);
            }
        }
    }

    /// At a deadline: open the interrupt window once (a wait of at most
    /// 100 us, which ends at once if an interrupt is pending; shorter
    /// ones can expire before the platform enables interrupts, at ~1 us
    /// per CPL0 instruction here) and run a poll point, so an interrupt
    /// that arrived in time but was not taken (a loaded host descheduled
    /// the vCPU across the deadline, and a wait whose deadline has passed
    /// returns without enabling interrupts) is handled before the caller
    /// gives up. Returns true (for `&&` chains).
    pub(crate) fn last_chance(&self) -> bool {
        self.nic.wait_until(self.plat.now_ns() + 100_000);
        self.poll();
        true
    }

    /// The end-of-run ledger (after unregister): the Summary marker, then
    /// the leak checks. Returns the BUSY count (each group judges it).
    pub(crate) fn end_ledger(&mut self) -> u64 {
        let live_skbs = self.skbs.borrow().live();
        let live_maps = self.nic.dma.live();
        let busy = self.dev.busy_count() + self.nic.stats().busy;
        let inflight = self.txq.dql().inflight();
        self.txq.report_bql();
        self.plat.marker(
            Marker::Summary,
            &[u64::from(live_skbs), live_maps, busy, u64::from(inflight)],
        );
        self.check(
            live_skbs == 0,
            &format!("skb-ledger: {live_skbs} skbs live at the end"),
        );
        self.check(
            live_maps == 0,
            &format!("dma-maps: {live_maps} mappings live at the end"),
        );
        self.check(
            inflight == 0,
            &format!("bql: {inflight} bytes in flight at the end"),
        );
        let bad = self.skbs.borrow().bad_frees();
        self.check(
            bad == 0,
            &format!("skb-ledger: {bad} double or stale frees"),
        );
        busy
    }

    /// The verdict: the first guest oracle failure, or a pass with
    /// `text` (built only for a pass).
    pub(crate) fn verdict(self, text: impl FnOnce() -> String) -> Verdict {
        match self.failed {
            Some(why) => Verdict::fail(why),
            None => Verdict {
                pass: true,
                text: text(),
            },
        }
    }
}
