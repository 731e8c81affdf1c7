//! Scenario bodies the kernel dispatches to by `abi::Scenario`.
//!
//! A scenario is portable (it runs on a `Platform`), so host tests run the
//! very same body against nic-model over plain guest memory.

pub mod default;
pub mod hostile;
pub mod lifecycle;
pub mod queueing;

mod ctx;

use alloc::string::String;

use crate::abi::{layout, Group, RunConfig, Scenario};
use crate::driver::dma::DmaPool;
use crate::platform::Platform;

/// A scenario's own verdict (the host judges the log independently).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// Whether every guest-side check held.
    pub pass: bool,
    /// Why (the first failure, or a one-line summary).
    pub text: String,
}

impl Verdict {
    /// A failing verdict.
    pub fn fail(text: impl Into<String>) -> Self {
        Self {
            pass: false,
            text: text.into(),
        }
    }
}

/// The DMA pool of the guest kernel: `layout::DMA_POOL_*`, identity mapped.
#[cfg(target_os = "none")]
pub fn guest_dma_pool() -> DmaPool {
    // SAFETY: the VMM identity-maps all RAM and this window is reserved
    // for DMA memory by abi::layout; only the driver uses it, and only
    // one pool is made per scenario run.
    unsafe {
        DmaPool::new(
            layout::DMA_POOL_BASE,
            layout::DMA_POOL_BASE as *mut u8,
            layout::DMA_POOL_SIZE,
        )
    }
}

/// Run the NIC scenario `cfg.scenario` with DMA memory from `pool`.
/// Returns None for scenarios that are not NIC scenarios (empty, boot).
pub fn run_with_pool(
    plat: &(dyn Platform + Sync),
    cfg: &RunConfig,
    pool: DmaPool,
) -> Option<Verdict> {
    let s = Scenario::from_u32(cfg.scenario)?;
    // Each group module answers for its own scenarios (the catalogue's
    // `abi::Group`).
    Some(match s.group() {
        Group::Boot => return None,
        Group::Traffic if s == Scenario::Smp => run_smp(plat, cfg, pool),
        Group::Traffic => default::run(plat, cfg, pool, default::Mode::Single),
        Group::Lifecycle => lifecycle::run(plat, cfg, s, pool),
        Group::Queueing => queueing::run(plat, cfg, s, pool),
        Group::Hostile => hostile::run(plat, cfg, pool),
    })
}

/// The smp scenario: NAPI on CPU 1 through the kernel's AP mailbox.
#[cfg(target_os = "none")]
fn run_smp(plat: &(dyn Platform + Sync), cfg: &RunConfig, pool: DmaPool) -> Verdict {
    use crate::kernel::smp;

    fn trampoline(arg: usize) {
        // SAFETY: `arg` points at a `&(dyn Fn() + Sync)` on the poster's
        // stack, which stays alive until the poster saw the job finish.
        let f = unsafe { &*(arg as *const &(dyn Fn() + Sync)) };
        f();
    }
    let par = |a: &(dyn Fn() + Sync), b: &mut dyn FnMut()| -> bool {
        if smp::start(plat, 1, 2_000_000_000).is_err() {
            return false;
        }
        let fat: &(dyn Fn() + Sync) = a;
        let Ok(ticket) = smp::post(1, trampoline, &fat as *const _ as usize) else {
            return false;
        };
        b();
        // `a` ends once `b` set its stop flag; it must not outlive `fat`.
        if !smp::wait_done(plat, ticket, 10_000_000_000) {
            panic!("smp: the NAPI job on CPU 1 did not stop");
        }
        true
    };
    default::run(plat, cfg, pool, default::Mode::Smp(&par))
}

/// Without the guest kernel there is no second CPU to post to; host
/// tests call `default::run` with `Mode::Smp` and a thread instead.
#[cfg(not(target_os = "none"))]
fn run_smp(_plat: &(dyn Platform + Sync), _cfg: &RunConfig, _pool: DmaPool) -> Verdict {
    Verdict::fail(
        "smp: needs the guest kernel's second CPU (host tests use default::run with Mode::Smp)",
    )
}

/// The kernel's entry: run a NIC scenario on the guest's DMA pool.
#[cfg(target_os = "none")]
pub fn run(plat: &(dyn Platform + Sync), cfg: &RunConfig) -> Option<Verdict> {
    run_with_pool(plat, cfg, guest_dma_pool())
}

/// Bytes of payload the host fills at `layout::PAYLOAD_BASE`.
pub const PAYLOAD: (u64, u64) = (layout::PAYLOAD_BASE, layout::PAYLOAD_SIZE);

/// BQL's stall detector threshold (sysfs `stall_thrs`; Linux leaves it
/// off by default) on bql-random's queue: 1280 ms = 128 jiffies at HZ
/// 100, sysfs's ceiling. No completion for that long with TX queued in its
/// first half is reported (`Marker::BqlStall`) and is a finding (host
/// oracle `bql-stall`). The device completes within its 200 us
/// coalescing deadline, but the guest's own reclaim is slow here (a VM
/// exit per unmap marker on a software KVM): the correct default
/// scenario, with its 32-packet reclaims, showed up to 180 ms between
/// completions in a `--jobs 2` matrix and 536 ms under `make test`. So
/// the detector is armed only on bql-random, whose reclaims BQL keeps
/// small, and at the ceiling.
pub const BQL_STALL_THRS_MS: u32 = 1280;

/// Turn BQL's stall detector on for `txq` if it runs BQL and the run is
/// bql-random.
pub(crate) fn arm_bql_stall_detector(txq: &crate::softnet::queue::TxQueue<'_>, cfg: &RunConfig) {
    if txq.bql_enabled() && cfg.scenario == Scenario::BqlRandom as u32 {
        // 100 ms is within sysfs's 4..=128 jiffies: cannot be refused.
        let _ = txq
            .dql()
            .set_stall_thrs_ms(BQL_STALL_THRS_MS, txq.env().jiffies());
    }
}
