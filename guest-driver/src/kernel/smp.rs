//! Running a job on another CPU: one mailbox per CPU.
//!
//! The boot CPU starts an application processor (AP) with a
//! `RecordKind::StartCpu` record; the AP comes up in the kernel's work
//! loop, marks itself online and then sleeps (`sti; hlt`) until a job is
//! posted to its mailbox. Posting wakes it with an IPI (the `kick` hook
//! the kernel installs); when the job returns, the AP records completion
//! and kicks the poster, so a poster sleeping in [`wait_done`] wakes at
//! once.
//!
//! A job is a plain `fn(usize)`. To hand it context, pass a pointer as the
//! argument and keep the pointee alive until [`is_done`] says so, e.g.
//! `smp::post(1, napi_job::<P>, &ctx as *const Ctx<P> as usize)`. A job
//! may run for as long as it likes (a NAPI service loop that waits with
//! `Platform::wait_until` and watches a stop flag is fine); the mailbox
//! stays busy until it returns.
//!
//! One job per CPU at a time: [`post`] returns [`SmpError::Busy`] while
//! the previous one has not finished.
//!
//! Application processors start only on request: [`start`] asks the VMM
//! (through the kernel's hook) and waits until the CPU is online. The boot
//! CPU (0) has no mailbox loop; jobs go to CPUs 1.. only.

use crate::platform::Platform;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

/// Most CPUs the kernel handles.
pub const MAX_CPUS: usize = 8;

/// A job run on another CPU, with its argument.
pub type Job = fn(usize);

/// Why a job could not be posted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmpError {
    /// The CPU index is beyond [`MAX_CPUS`].
    NoSuchCpu(u32),
    /// The CPU has not come online.
    Offline(u32),
    /// The CPU is still running (or about to run) an earlier job.
    Busy(u32),
    /// The kernel cannot start this CPU (no such vCPU, no VMM control
    /// port, or CPU 0).
    CannotStart(u32),
    /// The CPU was asked to start but did not come online in time.
    StartTimeout(u32),
}

/// Identifies a posted job; see [`is_done`] and [`wait_done`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ticket {
    cpu: u32,
    seq: u64,
}

impl Ticket {
    /// The CPU the job runs on.
    pub fn cpu(&self) -> u32 {
        self.cpu
    }
}

struct Mailbox {
    /// Set by a poster that owns the mailbox; cleared after completion.
    claimed: AtomicBool,
    job: AtomicUsize,
    arg: AtomicUsize,
    poster: AtomicU32,
    /// Sequence number of the last posted job.
    posted: AtomicU64,
    /// Sequence number of the last finished job.
    done: AtomicU64,
}

impl Mailbox {
    const fn new() -> Self {
        Self {
            claimed: AtomicBool::new(false),
            job: AtomicUsize::new(0),
            arg: AtomicUsize::new(0),
            poster: AtomicU32::new(0),
            posted: AtomicU64::new(0),
            done: AtomicU64::new(0),
        }
    }
}

static MAILBOXES: [Mailbox; MAX_CPUS] = [const { Mailbox::new() }; MAX_CPUS];
static ONLINE: AtomicU32 = AtomicU32::new(0);
/// `fn(u32)` that wakes a CPU (sends it the wake IPI); 0 = none.
static KICK: AtomicUsize = AtomicUsize::new(0);
/// `fn() -> u32` giving the current CPU; 0 = none (CPU 0 assumed).
static CURRENT: AtomicUsize = AtomicUsize::new(0);
/// `fn(u32) -> bool` asking for a CPU to be started; 0 = none.
static START: AtomicUsize = AtomicUsize::new(0);
/// CPUs whose start was requested (each is requested once).
static REQUESTED: AtomicU32 = AtomicU32::new(0);
/// `fn()` run by every spin-wait iteration ([`relax`]); 0 = none.
static RELAX: AtomicUsize = AtomicUsize::new(0);

/// The kernel's side of SMP, installed once by the boot CPU.
#[derive(Clone, Copy, Debug)]
pub struct Hooks {
    /// Wake `cpu` from `hlt` (the wake IPI).
    pub kick: fn(u32),
    /// The running CPU's index.
    pub current: fn() -> u32,
    /// Ask for `cpu` to be started (StartCpu record); false if it cannot be.
    pub start: fn(u32) -> bool,
    /// One spin-wait iteration: `pause`, or, when the VMM runs one vCPU
    /// at a time (deterministic mode), a yield request, since the CPU
    /// being waited for cannot run while this one spins.
    pub relax: fn(),
}

/// Install the kernel's hooks (boot CPU, once, before any AP starts).
pub fn install_hooks(h: Hooks) {
    KICK.store(h.kick as usize, Ordering::Release);
    CURRENT.store(h.current as usize, Ordering::Release);
    START.store(h.start as usize, Ordering::Release);
    RELAX.store(h.relax as usize, Ordering::Release);
}

/// One iteration of a spin-wait (a lock held by another CPU): the
/// kernel's hook, else `core::hint::spin_loop`.
#[inline]
pub fn relax() {
    let r = RELAX.load(Ordering::Acquire);
    if r == 0 {
        core::hint::spin_loop();
    } else {
        // SAFETY: RELAX holds 0 or a `fn()` stored by `install_hooks`.
        let f: fn() = unsafe { core::mem::transmute::<usize, fn()>(r) };
        f();
    }
}

/// Start `cpu` if it is not online yet and wait up to `timeout_ns` for it
/// to come online. A start is requested at most once per CPU; later calls
/// only wait.
pub fn start<P: Platform + ?Sized>(p: &P, cpu: u32, timeout_ns: u64) -> Result<(), SmpError> {
    if cpu as usize >= MAX_CPUS {
        return Err(SmpError::NoSuchCpu(cpu));
    }
    if is_online(cpu) {
        return Ok(());
    }
    if REQUESTED.fetch_or(1 << cpu, Ordering::AcqRel) & (1 << cpu) == 0 {
        let h = START.load(Ordering::Acquire);
        // SAFETY: START holds 0 or a `fn(u32) -> bool` stored by `install_hooks`.
        let started = h != 0 && unsafe { core::mem::transmute::<usize, fn(u32) -> bool>(h) }(cpu);
        if !started {
            REQUESTED.fetch_and(!(1 << cpu), Ordering::AcqRel);
            return Err(SmpError::CannotStart(cpu));
        }
    }
    if wait_online(p, cpu, timeout_ns) {
        Ok(())
    } else {
        Err(SmpError::StartTimeout(cpu))
    }
}

/// Wake `cpu` if it sleeps in `Platform::wait_until` (sends the wake
/// IPI). Use it after publishing something that CPU waits for, e.g. NAPI
/// on CPU 1 waking a transmit queue CPU 0 is waiting on. A no-op before
/// the kernel installed its hooks.
pub fn wake(cpu: u32) {
    kick(cpu)
}

fn kick(cpu: u32) {
    let k = KICK.load(Ordering::Acquire);
    if k != 0 {
        // SAFETY: KICK holds 0 or a `fn(u32)` stored by `install_hooks`.
        let f: fn(u32) = unsafe { core::mem::transmute::<usize, fn(u32)>(k) };
        f(cpu);
    }
}

fn current() -> u32 {
    let c = CURRENT.load(Ordering::Acquire);
    if c == 0 {
        return 0;
    }
    // SAFETY: CURRENT holds 0 or a `fn() -> u32` stored by `install_hooks`.
    let f: fn() -> u32 = unsafe { core::mem::transmute::<usize, fn() -> u32>(c) };
    f()
}

/// Mark `cpu` online (called by the AP itself) and wake CPU 0, which may
/// be waiting for it in [`wait_online`].
pub fn set_online(cpu: u32) {
    if (cpu as usize) < MAX_CPUS {
        ONLINE.fetch_or(1 << cpu, Ordering::AcqRel);
        kick(0);
    }
}

/// Whether `cpu` has come online.
pub fn is_online(cpu: u32) -> bool {
    (cpu as usize) < MAX_CPUS && ONLINE.load(Ordering::Acquire) & (1 << cpu) != 0
}

/// Post `job(arg)` to run on `cpu`.
pub fn post(cpu: u32, job: Job, arg: usize) -> Result<Ticket, SmpError> {
    if cpu as usize >= MAX_CPUS {
        return Err(SmpError::NoSuchCpu(cpu));
    }
    if !is_online(cpu) {
        return Err(SmpError::Offline(cpu));
    }
    let mb = &MAILBOXES[cpu as usize];
    if mb
        .claimed
        .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        return Err(SmpError::Busy(cpu));
    }
    mb.job.store(job as usize, Ordering::Relaxed);
    mb.arg.store(arg, Ordering::Relaxed);
    mb.poster.store(current(), Ordering::Relaxed);
    // Only the claimant writes `posted`, so load + store is race-free.
    let seq = mb.posted.load(Ordering::Relaxed) + 1;
    // Release: the job, arg and poster above are visible before `posted`.
    mb.posted.store(seq, Ordering::Release);
    kick(cpu);
    Ok(Ticket { cpu, seq })
}

/// Whether `cpu` has a posted job it has not run yet.
pub fn has_work(cpu: u32) -> bool {
    let Some(mb) = MAILBOXES.get(cpu as usize) else {
        return false;
    };
    mb.posted.load(Ordering::Acquire) != mb.done.load(Ordering::Relaxed)
}

/// Run the job posted to `cpu`, if any (called by that CPU's work loop).
/// Returns whether a job ran.
pub fn run_pending(cpu: u32) -> bool {
    let Some(mb) = MAILBOXES.get(cpu as usize) else {
        return false;
    };
    let seq = mb.posted.load(Ordering::Acquire);
    if seq == mb.done.load(Ordering::Relaxed) {
        return false;
    }
    let job = mb.job.load(Ordering::Relaxed);
    let arg = mb.arg.load(Ordering::Relaxed);
    let poster = mb.poster.load(Ordering::Relaxed);
    // SAFETY: `job` was stored by `post` from a `Job` before the Release
    // store of `posted` that the Acquire load above observed.
    let f: Job = unsafe { core::mem::transmute::<usize, Job>(job) };
    f(arg);
    // Release: the job's effects are visible to whoever sees `done`.
    mb.done.store(seq, Ordering::Release);
    mb.claimed.store(false, Ordering::Release);
    kick(poster);
    true
}

/// Whether the job behind `t` has finished.
pub fn is_done(t: Ticket) -> bool {
    MAILBOXES[t.cpu as usize].done.load(Ordering::Acquire) >= t.seq
}

/// Sleep until the job behind `t` finishes or `timeout_ns` passes.
/// Returns whether it finished.
pub fn wait_done<P: Platform + ?Sized>(p: &P, t: Ticket, timeout_ns: u64) -> bool {
    wait_for(p, timeout_ns, || is_done(t))
}

/// Sleep until `cpu` is online or `timeout_ns` passes.
pub fn wait_online<P: Platform + ?Sized>(p: &P, cpu: u32, timeout_ns: u64) -> bool {
    wait_for(p, timeout_ns, || is_online(cpu))
}

/// Sleep (`Platform::wait_until`) until `cond()` holds or `timeout_ns`
/// passes; returns the final value of `cond()`.
pub fn wait_for<P: Platform + ?Sized>(
    p: &P,
    timeout_ns: u64,
    mut cond: impl FnMut() -> bool,
) -> bool {
    let deadline = p.now_ns().saturating_add(timeout_ns);
    loop {
        if cond() {
            return true;
        }
        if p.now_ns() >= deadline {
            return cond();
        }
        p.wait_until(deadline);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::Marker;
    use std::sync::atomic::AtomicU64;
    use std::time::Instant;

    struct HostPlatform(Instant);
    impl Platform for HostPlatform {
        fn pci_read32(&self, _: (u8, u8, u8), _: u8) -> u32 {
            u32::MAX
        }
        fn pci_write32(&self, _: (u8, u8, u8), _: u8, _: u32) {}
        fn mmio_read32(&self, _: u64) -> u32 {
            0
        }
        fn mmio_write32(&self, _: u64, _: u32) {}
        fn now_ns(&self) -> u64 {
            self.0.elapsed().as_nanos() as u64
        }
        fn wait_until(&self, _: u64) {
            std::thread::yield_now();
        }
        fn marker(&self, _: Marker, _: &[u64]) {}
        fn marker_text(&self, _: Marker, _: &[u64], _: &str) {}
        fn cpu_id(&self) -> u32 {
            0
        }
    }

    static COUNTER: AtomicU64 = AtomicU64::new(0);
    fn add(arg: usize) {
        COUNTER.fetch_add(arg as u64, Ordering::SeqCst);
    }

    // Each test uses its own CPU numbers: the mailboxes are statics.
    #[test]
    fn job_runs_on_the_ap_and_completes() {
        let p = HostPlatform(Instant::now());
        let cpu = 5;
        assert_eq!(post(cpu, add, 1), Err(SmpError::Offline(cpu)));
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        let ap = std::thread::spawn(move || {
            set_online(cpu);
            while !s2.load(Ordering::SeqCst) {
                if !run_pending(cpu) {
                    std::thread::yield_now();
                }
            }
        });
        assert!(wait_online(&p, cpu, 5_000_000_000));
        for i in 1..=3u64 {
            let t = post(cpu, add, 10).unwrap();
            assert_eq!(t.cpu(), cpu);
            assert!(wait_done(&p, t, 5_000_000_000));
            assert_eq!(COUNTER.load(Ordering::SeqCst), 10 * i);
        }
        stop.store(true, Ordering::SeqCst);
        ap.join().unwrap();
    }

    #[test]
    fn second_post_is_busy_until_the_first_ran() {
        let cpu = 6;
        set_online(cpu);
        let t = post(cpu, add, 0).unwrap();
        assert_eq!(post(cpu, add, 0), Err(SmpError::Busy(cpu)));
        assert!(!is_done(t) && has_work(cpu));
        assert!(run_pending(cpu));
        assert!(is_done(t) && !has_work(cpu));
        assert!(!run_pending(cpu));
        let t2 = post(cpu, add, 0).unwrap();
        assert!(!is_done(t2));
        assert!(run_pending(cpu));
        assert!(is_done(t2));
    }

    fn no_kick(_: u32) {}
    fn cpu0() -> u32 {
        0
    }
    fn spawn_ap(cpu: u32) -> bool {
        if cpu != 4 {
            return false;
        }
        std::thread::spawn(move || {
            set_online(cpu);
            loop {
                if !run_pending(cpu) {
                    std::thread::yield_now();
                }
            }
        });
        true
    }

    #[test]
    fn start_requests_once_and_waits_for_online() {
        let p = HostPlatform(Instant::now());
        install_hooks(Hooks {
            kick: no_kick,
            current: cpu0,
            start: spawn_ap,
            relax: core::hint::spin_loop,
        });
        assert_eq!(start(&p, 3, 1_000_000), Err(SmpError::CannotStart(3)));
        assert_eq!(start(&p, 3, 1_000_000), Err(SmpError::CannotStart(3)));
        assert_eq!(start(&p, 4, 5_000_000_000), Ok(()));
        // Already online: no second request (spawn_ap would start a second loop).
        assert_eq!(start(&p, 4, 0), Ok(()));
        let t = post(4, add, 0).unwrap();
        assert!(wait_done(&p, t, 5_000_000_000));
        assert_eq!(
            start(&p, MAX_CPUS as u32, 0),
            Err(SmpError::NoSuchCpu(MAX_CPUS as u32))
        );
    }

    #[test]
    fn bad_cpu_and_timeout() {
        let p = HostPlatform(Instant::now());
        assert_eq!(
            post(MAX_CPUS as u32, add, 0),
            Err(SmpError::NoSuchCpu(MAX_CPUS as u32))
        );
        assert!(!is_online(99));
        let start = Instant::now();
        assert!(!wait_online(&p, 7, 1_000_000));
        assert!(start.elapsed().as_micros() >= 1_000);
    }
}
