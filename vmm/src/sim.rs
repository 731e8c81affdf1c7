//! Deterministic mode: one virtual clock and a seeded vCPU scheduler
//! (shared/design.md, "Time and interrupts: a deterministic simulation").
//!
//! - **Time** is a number the VMM owns. It moves only when a vCPU exits,
//!   by a fixed cost per exit kind ([`exit_cost_ns`]), and by jumping to
//!   the next deadline when every vCPU idles. The device's timers and the
//!   event log read it; the guest reads it from the clock page
//!   (`abi::layout::CLOCK_PAGE`), which is written before every entry.
//! - **One vCPU runs at a time.** After every exit the running vCPU's
//!   thread calls [`Sim::schedule`], which picks the next vCPU and blocks
//!   until this one is picked again. Guest code between two exits is
//!   deterministic (one CPU, no timer, interrupts only inside the guest's
//!   idle request), so the whole run is a function of its seed.
//! - **The pick** is PCT-style: each vCPU has a priority drawn from the
//!   run's seed; the highest-priority runnable vCPU runs; at each choice
//!   between two or more vCPUs the running one drops to the lowest
//!   priority with probability 1/[`CHANGE_ONE_IN`]. A vCPU that asked to
//!   yield (a guest spin-wait) is not picked while another can run.
//! - **Interrupts are held, then delivered one per idle request.** The
//!   guest takes interrupts only in its idle request (`sti; out; cli`).
//!   On this machine's KVM (PVM, an instruction emulator for CPL0 code)
//!   the first pending vector is injected when the vCPU re-enters, but a
//!   second one lands before the `cli` only if some host event (a
//!   preemption, a signal) happens to make the vCPU exit in those few
//!   instructions: host timing. So every MSI and IPI for a vCPU is held
//!   here (one per vector, as the LAPIC's IRR would) and the highest
//!   vector goes into KVM just before the vCPU re-enters from an idle
//!   request, one per request; a vCPU with one held stays runnable.
//! - **Idle is a request** (`abi::sched::IDLE`). When no vCPU can run,
//!   time jumps to the earliest of the device's next deadline and the
//!   idle vCPUs' deadlines; the device runs there, and the interrupts it
//!   raises wake their vCPUs. With no deadline anywhere the run ends as a
//!   scheduler deadlock, naming each vCPU's rip.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use nic_model::abi::{layout, sched};
use nic_model::msix::MsiSink;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::control::{End, VmEvent};

/// Which clock a run uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClockMode {
    /// Today's behaviour: wall time, TSC, x2APIC timer, vCPUs in parallel.
    Wall,
    /// The VMM's virtual clock and seeded scheduler (this module).
    #[default]
    Virtual,
}

impl ClockMode {
    /// The name `--clock` takes.
    pub fn name(self) -> &'static str {
        match self {
            ClockMode::Wall => "wall",
            ClockMode::Virtual => "virtual",
        }
    }

    /// Parse a [`Self::name`].
    pub fn from_name(s: &str) -> Option<Self> {
        match s {
            "wall" => Some(ClockMode::Wall),
            "virtual" => Some(ClockMode::Virtual),
            _ => None,
        }
    }

    /// The value of `RunConfig::clock` for the guest.
    pub fn abi(self) -> u64 {
        match self {
            ClockMode::Wall => sched::CLOCK_WALL,
            ClockMode::Virtual => sched::CLOCK_VIRTUAL,
        }
    }
}

/// Virtual time one exit costs, in ns: every guest exit, port, MMIO or
/// scheduling request alike. Time moves only at exits, so this cost
/// stands for the exit *and the guest code before it*: on the development
/// machine CPL0 guest code is emulated at about 1 µs per instruction and
/// the default scenario spends 300-400 µs of wall time per exit (more
/// under load). 1 ms is that of a loaded machine: the guest's
/// time-bounded polls (a 100 µs poll for up to 2 s) then take fewer
/// rounds than under the wall clock, and every scenario's timing still
/// holds (the matrix passes with 0 failed, 0 missed; with 300 µs it did
/// too, but its longest jobs took twice their wall-clock time).
pub const EXIT_COST_NS: u64 = 1_000_000;

/// Virtual time an exit of kind `kind` (as counted in the report) costs.
pub fn exit_cost_ns(kind: &str) -> u64 {
    match kind {
        "io-in" | "io-out" | "mmio-read" | "mmio-write" | "sched" => EXIT_COST_NS,
        // Signals (the stop kick) and failures are not guest progress.
        _ => 0,
    }
}

/// At each choice the running vCPU loses its priority with probability
/// 1 in this.
pub const CHANGE_ONE_IN: u64 = 16;

/// What a vCPU asks for at an exit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// Nothing: an ordinary exit (the scheduler may still switch).
    Continue,
    /// A spin-wait: let another vCPU run first.
    Yield,
    /// Idle until this virtual time (`u64::MAX`: no deadline) or an
    /// interrupt.
    Idle(u64),
}

/// The device's timers, as the scheduler drives them.
pub trait DeviceClock: Send + Sync {
    /// The earliest virtual time the device has work at.
    fn next_deadline(&self) -> Option<u64>;
    /// Run the device's timers up to `now_ns`.
    fn advance(&self, now_ns: u64);
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CpuState {
    /// Not started (an AP the guest has not asked for).
    Off,
    /// Can run.
    Ready,
    /// Waiting for an interrupt or this virtual time.
    Idle(u64),
}

struct State {
    cpus: Vec<CpuState>,
    /// rip at the vCPU's last idle request (for a deadlock report).
    rips: Vec<u64>,
    prio: Vec<u64>,
    running: Option<u32>,
    rng: u64,
    /// Scheduling choices made between two or more vCPUs.
    choices: u64,
    /// Priority changes made.
    switches: u64,
    /// Idle jumps made, and the virtual time they skipped.
    jumps: u64,
    skipped_ns: u64,
    ended: bool,
}

/// splitmix64: a tiny, well-mixed, seedable generator.
fn next_random(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Figures of a deterministic run, for the report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Virtual time at the end, ns.
    pub virtual_ns: u64,
    /// Scheduling choices made between two or more vCPUs.
    pub choices: u64,
    /// Priority changes made.
    pub switches: u64,
    /// Idle jumps made (every vCPU waited, so the clock jumped).
    pub jumps: u64,
    /// Virtual time the idle jumps skipped, ns.
    pub skipped_ns: u64,
}

/// The virtual clock and scheduler of one run.
pub struct Sim {
    state: Mutex<State>,
    turn: Condvar,
    now: Arc<AtomicU64>,
    /// Interrupts for each vCPU not yet handed to KVM: MSI (address,
    /// data) by vector (see the module comment). Locked after `state`
    /// and the device, never before them (the device posts here).
    held: Vec<Mutex<BTreeMap<u8, (u64, u32)>>>,
    device: Mutex<Option<Arc<dyn DeviceClock>>>,
    mem: GuestMemoryMmap,
    msi: Mutex<Option<Arc<dyn MsiSink>>>,
    stop: Arc<AtomicBool>,
    tx: Sender<VmEvent>,
}

/// How long a waiting vCPU thread sleeps between checks of the stop flag.
const STOP_POLL: Duration = Duration::from_millis(10);

impl Sim {
    /// A scheduler for `ncpus` vCPUs (the boot vCPU runs first), seeded
    /// by the run's seed; `now` is the clock the event log reads.
    pub fn new(
        ncpus: u32,
        seed: u64,
        now: Arc<AtomicU64>,
        mem: GuestMemoryMmap,
        stop: Arc<AtomicBool>,
        tx: Sender<VmEvent>,
    ) -> Self {
        let mut rng = seed ^ 0x6e69_6370_726f_6f66; // "nicproof"
        let prio = (0..ncpus).map(|_| next_random(&mut rng) >> 8).collect();
        let mut cpus = vec![CpuState::Off; ncpus as usize];
        cpus[0] = CpuState::Ready;
        Self {
            state: Mutex::new(State {
                cpus,
                rips: vec![0; ncpus as usize],
                prio,
                running: Some(0),
                rng,
                choices: 0,
                switches: 0,
                jumps: 0,
                skipped_ns: 0,
                ended: false,
            }),
            turn: Condvar::new(),
            now,
            held: (0..ncpus).map(|_| Mutex::new(BTreeMap::new())).collect(),
            device: Mutex::new(None),
            mem,
            msi: Mutex::new(None),
            stop,
            tx,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The virtual time in ns.
    pub fn now(&self) -> u64 {
        self.now.load(Ordering::Acquire)
    }

    /// Let the scheduler drive the device's timers.
    pub fn set_device(&self, d: Arc<dyn DeviceClock>) {
        *self.device.lock().unwrap_or_else(|e| e.into_inner()) = Some(d);
    }

    /// Where the scheduler sends IPIs (the VM's MSI path).
    pub fn set_msi(&self, m: Arc<dyn MsiSink>) {
        *self.msi.lock().unwrap_or_else(|e| e.into_inner()) = Some(m);
    }

    fn device(&self) -> Option<Arc<dyn DeviceClock>> {
        self.device
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn held(&self, cpu: usize) -> MutexGuard<'_, BTreeMap<u8, (u64, u32)>> {
        self.held[cpu].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `cpu` has an interrupt held for it.
    fn has_held(&self, cpu: usize) -> bool {
        !self.held(cpu).is_empty()
    }

    /// Hold the MSI (`addr`, `data`) for the vCPU it names (destination
    /// APIC id: address bits 12..20, physical mode as the guest programs
    /// it); it goes into KVM when that vCPU next leaves an idle request
    /// ([`Self::deliver_held`]). False if it names no vCPU of this run
    /// (the caller sends it at once, as KVM would route it).
    pub fn hold(&self, addr: u64, data: u32) -> bool {
        let cpu = ((addr >> 12) & 0xff) as usize;
        if cpu >= self.held.len() {
            return false;
        }
        self.held(cpu).insert(data as u8, (addr, data));
        true
    }

    /// Hand `cpu`'s highest held vector to KVM. The vCPU thread calls it
    /// when `cpu` re-enters from an idle request (IF=1) with nothing
    /// pending in its LAPIC, so the guest takes exactly this one.
    pub fn deliver_held(&self, cpu: u32) {
        let Some(held) = self.held.get(cpu as usize) else {
            return;
        };
        let Some((_, (addr, data))) = held.lock().unwrap_or_else(|e| e.into_inner()).pop_last()
        else {
            return;
        };
        let msi = self.msi.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(m) = msi {
            // Refused (the guest's LAPIC is off): lost, as it would be.
            m.signal(addr, data);
        }
    }

    /// `abi::sched::IPI`: send `vector` to `cpu` as an MSI.
    pub fn send_ipi(&self, cpu: u32, vector: u8) {
        let (addr, data) = (0xfee0_0000 | u64::from(cpu) << 12, u32::from(vector));
        if !self.hold(addr, data) {
            if let Some(m) = self.msi.lock().unwrap_or_else(|e| e.into_inner()).clone() {
                m.signal(addr, data);
            }
        }
    }

    /// Move time by the cost of an exit.
    pub fn charge(&self, kind: &str) {
        self.now.fetch_add(exit_cost_ns(kind), Ordering::AcqRel);
    }

    /// Write the time into the clock page (before every entry).
    pub fn publish_clock(&self) {
        let _ = self
            .mem
            .write_obj(self.now(), GuestAddress(layout::CLOCK_PAGE + sched::NOW));
    }

    /// The idle deadline `cpu` wrote into its clock-page slot.
    pub fn idle_deadline(&self, cpu: u32) -> u64 {
        self.mem
            .read_obj(GuestAddress(layout::CLOCK_PAGE + sched::deadline_slot(cpu)))
            .unwrap_or(u64::MAX)
    }

    /// The guest asked to start `cpu` (StartCpu record): it can be picked
    /// from now on. Its thread waits for its turn ([`Self::wait_turn`]).
    pub fn start_cpu(&self, cpu: u64) {
        let mut s = self.lock();
        if let Some(c) = usize::try_from(cpu).ok().and_then(|i| s.cpus.get_mut(i)) {
            if *c == CpuState::Off && cpu != 0 {
                *c = CpuState::Ready;
            }
        }
    }

    /// Block until `cpu` may run; false if the run is over.
    pub fn wait_turn(&self, cpu: u32) -> bool {
        self.wait_turn_locked(self.lock(), cpu)
    }

    /// [`Sim::wait_turn`] with the state already locked (the scheduler
    /// hands the turn over and waits under one lock).
    fn wait_turn_locked(&self, mut s: MutexGuard<'_, State>, cpu: u32) -> bool {
        loop {
            if self.stop.load(Ordering::SeqCst) || s.ended {
                return false;
            }
            if s.running == Some(cpu) {
                return true;
            }
            s = self
                .turn
                .wait_timeout(s, STOP_POLL)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Wake every waiting vCPU thread (the run is over), and let go of
    /// the device (whose interrupt path holds this scheduler: a cycle).
    pub fn shutdown(&self) {
        self.lock().ended = true;
        self.turn.notify_all();
        self.device.lock().unwrap_or_else(|e| e.into_inner()).take();
    }

    /// Figures for the report.
    pub fn stats(&self) -> SimStats {
        let s = self.lock();
        SimStats {
            virtual_ns: self.now(),
            choices: s.choices,
            switches: s.switches,
            jumps: s.jumps,
            skipped_ns: s.skipped_ns,
        }
    }

    /// `cpu` (which is running) exited with `req`: pick who runs next,
    /// and block until `cpu` is picked again. False if the run is over.
    pub fn schedule(&self, cpu: u32, req: Request, rip: u64) -> bool {
        let mut s = self.lock();
        // A terminal record (power-off, panic) ended the run during this
        // exit: nothing may happen after it, device timers included
        // (whether the controller has already shut the scheduler down is
        // host timing).
        if self.stop.load(Ordering::SeqCst) || s.ended {
            drop(s);
            self.turn.notify_all();
            return false;
        }
        let me = cpu as usize;
        let mut yielded = false;
        match req {
            Request::Continue => {}
            Request::Yield => yielded = true,
            Request::Idle(until) => {
                s.cpus[me] = CpuState::Idle(until);
                s.rips[me] = rip;
            }
        }
        let device = self.device();
        if let Some(d) = &device {
            // Timers that came due during this exit's time.
            if d.next_deadline().is_some_and(|t| t <= self.now()) {
                d.advance(self.now());
            }
        }
        let next = loop {
            if self.stop.load(Ordering::SeqCst) || s.ended {
                drop(s);
                self.turn.notify_all();
                return false;
            }
            let now = self.now();
            for (i, c) in s.cpus.iter_mut().enumerate() {
                if let CpuState::Idle(until) = *c {
                    if until <= now || self.has_held(i) {
                        // It re-enters with IF=1 (sti just before its
                        // idle `out`): a held interrupt is delivered then.
                        *c = CpuState::Ready;
                    }
                }
            }
            let ready: Vec<usize> = (0..s.cpus.len())
                .filter(|&i| s.cpus[i] == CpuState::Ready)
                .collect();
            if ready.is_empty() {
                let idle = s.cpus.iter().filter_map(|c| match c {
                    CpuState::Idle(t) if *t != u64::MAX => Some(*t),
                    _ => None,
                });
                let dev = device.as_ref().and_then(|d| d.next_deadline());
                match idle.chain(dev).min() {
                    None => {
                        let cpus = s
                            .cpus
                            .iter()
                            .enumerate()
                            .filter(|(_, c)| matches!(c, CpuState::Idle(_)))
                            .map(|(i, _)| (i as u32, s.rips[i]))
                            .collect();
                        s.ended = true;
                        self.stop.store(true, Ordering::SeqCst);
                        let _ = self.tx.send(VmEvent::End(End::Deadlock { cpus }));
                        drop(s);
                        self.turn.notify_all();
                        return false;
                    }
                    Some(t) => {
                        let t = t.max(now);
                        s.jumps += 1;
                        s.skipped_ns += t - now;
                        self.now.store(t, Ordering::Release);
                        if let Some(d) = &device {
                            d.advance(t);
                        }
                        continue;
                    }
                }
            }
            if ready.len() == 1 {
                break ready[0];
            }
            s.choices += 1;
            if s.cpus[me] == CpuState::Ready
                && next_random(&mut s.rng).is_multiple_of(CHANGE_ONE_IN)
            {
                let lowest = s.prio.iter().min().copied().unwrap_or(0);
                s.prio[me] = lowest.saturating_sub(1);
                s.switches += 1;
            }
            let pick = ready
                .iter()
                .copied()
                .filter(|&i| !(yielded && i == me))
                .max_by_key(|&i| s.prio[i])
                .unwrap_or(me);
            break pick;
        };
        s.running = Some(next as u32);
        if next != me {
            self.turn.notify_all();
        }
        self.wait_turn_locked(s, cpu)
    }
}

/// The device's [`MsiSink`] in deterministic mode: the scheduler holds
/// each interrupt until its vCPU's next idle request ([`Sim::hold`]).
pub struct SimMsi {
    /// Where a message naming no vCPU goes at once.
    pub inner: Arc<dyn MsiSink>,
    /// The scheduler that holds the others.
    pub sim: Arc<Sim>,
}

impl MsiSink for SimMsi {
    fn signal(&self, addr: u64, data: u32) -> bool {
        self.sim.hold(addr, data) || self.inner.signal(addr, data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generator_is_seeded() {
        let (mut a, mut b, mut c) = (1, 1, 2);
        let x: Vec<u64> = (0..4).map(|_| next_random(&mut a)).collect();
        let y: Vec<u64> = (0..4).map(|_| next_random(&mut b)).collect();
        let z: Vec<u64> = (0..4).map(|_| next_random(&mut c)).collect();
        assert_eq!(x, y);
        assert_ne!(x, z);
    }

    fn sim(ncpus: u32) -> (Sim, std::sync::mpsc::Receiver<VmEvent>) {
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 0x10000)]).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let now = Arc::new(AtomicU64::new(0));
        (
            Sim::new(ncpus, 1, now, mem, Arc::new(AtomicBool::new(false)), tx),
            rx,
        )
    }

    #[test]
    fn idle_with_a_deadline_jumps_time_and_without_one_is_a_deadlock() {
        let (s, rx) = sim(2);
        s.charge("io-out");
        assert_eq!(s.now(), EXIT_COST_NS);
        // Alone and idle until 5 ms: time jumps there and it runs again.
        assert!(s.schedule(0, Request::Idle(5_000_000), 0x1000));
        assert_eq!(s.now(), 5_000_000);
        assert_eq!(s.stats().jumps, 1);
        // An interrupt held: idle ends at once, no jump.
        assert!(s.hold(0xfee0_0000, 0x40));
        assert!(s.schedule(0, Request::Idle(u64::MAX), 0x1000));
        assert_eq!((s.now(), s.stats().jumps), (5_000_000, 1));
        // Its thread hands it over on re-entry.
        s.deliver_held(0);
        // Idle for ever with nothing due: a deadlock naming its rip.
        assert!(!s.schedule(0, Request::Idle(u64::MAX), 0x2345));
        match rx.try_recv() {
            Ok(VmEvent::End(End::Deadlock { cpus })) => assert_eq!(cpus, vec![(0, 0x2345)]),
            e => panic!("{e:?}"),
        }
        assert!(s.stop.load(Ordering::SeqCst));
    }

    /// Records every message handed to "KVM".
    #[derive(Default)]
    struct Kvm(Mutex<Vec<u32>>);

    impl MsiSink for Kvm {
        fn signal(&self, _addr: u64, data: u32) -> bool {
            self.0.lock().unwrap().push(data);
            true
        }
    }

    #[test]
    fn held_interrupts_wake_their_vcpu_and_go_in_one_at_a_time_highest_first() {
        let (s, _rx) = sim(2);
        let kvm = Arc::new(Kvm::default());
        s.set_msi(kvm.clone());
        let given = || kvm.0.lock().unwrap().clone();
        // Two vectors for CPU 0, one of them twice (coalesced, as in IRR).
        assert!(s.hold(0xfee0_0000, 0x41));
        assert!(s.hold(0xfee0_0000, 0x42));
        assert!(s.hold(0xfee0_0000, 0x41));
        // APIC id 5 is no vCPU of this run: the caller sends it itself.
        assert!(!s.hold(0xfee0_5000, 0x43));
        // Held, not given: an idle request ends at once (no time jump).
        assert!(s.schedule(0, Request::Idle(u64::MAX), 0x1000));
        assert_eq!((given(), s.stats().jumps), (vec![], 0));
        // Each delivery hands over one, highest first.
        s.deliver_held(0);
        assert_eq!(given(), vec![0x42]);
        assert!(s.schedule(0, Request::Idle(u64::MAX), 0x1000));
        s.deliver_held(0);
        assert_eq!(given(), vec![0x42, 0x41]);
        // An IPI is held the same way.
        s.send_ipi(0, 0x50);
        assert_eq!(given(), vec![0x42, 0x41]);
        assert!(s.schedule(0, Request::Idle(u64::MAX), 0x1000));
        s.deliver_held(0);
        s.deliver_held(0);
        s.deliver_held(7);
        assert_eq!(given(), vec![0x42, 0x41, 0x50]);
        // Nothing held any more: idle for ever is a deadlock.
        assert!(!s.schedule(0, Request::Idle(u64::MAX), 0x1000));
    }

    #[test]
    fn clock_names_round_trip() {
        for m in [ClockMode::Wall, ClockMode::Virtual] {
            assert_eq!(ClockMode::from_name(m.name()), Some(m));
        }
        assert_eq!(ClockMode::from_name("tsc"), None);
        assert_eq!(ClockMode::default(), ClockMode::Virtual);
    }
}
