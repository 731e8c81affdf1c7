//! `nicproof run --gdb PORT`: a gdb remote stub for the guest on the
//! gdbstub crate (as Firecracker and cloud-hypervisor do), one gdb thread
//! per vCPU (thread N+1 is vCPU N; an AP appears once the guest starts
//! it). The run waits for gdb to attach before the guest's first
//! instruction; gdb then reads and writes registers of any vCPU, guest
//! memory (the guest is identity mapped, so a guest address is a
//! guest-physical one), sets breakpoints and single-steps, all-stop: when
//! one vCPU stops, every other is kicked out of the guest and held until
//! gdb resumes. VM exits for I/O are served by the vCPU threads as in a
//! normal run (their one loop, [`crate::vcpu::run`], asks the [`Hub`]
//! before each entry); when gdb detaches the run goes on without debug.
//!
//! Breakpoints: gdb's `break` asks for a software breakpoint (`Z0`); the
//! stub sets it in the x86 debug registers (DR0..DR3, KVM_GUESTDBG_USE_HW_BP)
//! of every vCPU instead of writing an int3, so at most four at once.
//! Why, measured on this machine's software KVM backend: at CPL0 an int3
//! under KVM_GUESTDBG_USE_SW_BP ends the run with a KVM internal error;
//! at CPL3 it is not intercepted at all (the guest's own #BP handler
//! reports exception 3), and debug-register breakpoints never fire in
//! CPL3 code. Debug-register hits and single steps
//! (KVM_GUESTDBG_SINGLESTEP) of CPL0 code exit as `KVM_EXIT_DEBUG`, so
//! `run --gdb` runs the driver at CPL0 (and refuses `--cpl 3`). An
//! instruction breakpoint in a debug register is a fault, reported before
//! the instruction runs: the stop is at the breakpoint's address with no
//! rip to rewind.
//!
//! Either clock works: under the virtual one a vCPU held for gdb holds
//! the scheduler's turn, so virtual time stands still while gdb looks.
//! (A vCPU waiting for its turn has nothing to step until the scheduler
//! gives it one: with scheduler locking on, step the vCPU that stopped.)

use std::collections::{BTreeMap, BTreeSet};
use std::net::{TcpListener, TcpStream};
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use gdbstub::common::{Signal, Tid};
use gdbstub::conn::ConnectionExt;
use gdbstub::stub::run_blocking::{BlockingEventLoop, Event, WaitForStopReasonError};
use gdbstub::stub::{GdbStub, MultiThreadStopReason};
use gdbstub::target::ext::base::multithread::{
    MultiThreadBase, MultiThreadResume, MultiThreadResumeOps, MultiThreadSchedulerLocking,
    MultiThreadSchedulerLockingOps, MultiThreadSingleStep, MultiThreadSingleStepOps,
};
use gdbstub::target::ext::base::BaseOps;
use gdbstub::target::ext::breakpoints::{
    Breakpoints, BreakpointsOps, SwBreakpoint, SwBreakpointOps,
};
use gdbstub::target::ext::thread_extra_info::{ThreadExtraInfo, ThreadExtraInfoOps};
use gdbstub::target::{Target, TargetError, TargetResult};
use gdbstub_arch::x86::reg::X86_64CoreRegs;
use gdbstub_arch::x86::X86_64_SSE;
use kvm_bindings::{
    kvm_guest_debug, kvm_regs, kvm_sregs, KVM_GUESTDBG_ENABLE, KVM_GUESTDBG_SINGLESTEP,
    KVM_GUESTDBG_USE_HW_BP,
};
use kvm_ioctls::VcpuFd;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

/// Breakpoints at once: one per debug register, DR0..DR3.
pub const MAX_BREAKPOINTS: usize = 4;

/// How often a held or waiting thread looks at the run's stop flag.
const POLL: Duration = Duration::from_millis(20);

/// Why `--gdb PORT` cannot listen.
#[derive(Debug, thiserror::Error)]
pub enum GdbError {
    /// Binding the TCP listener failed (e.g. the port is in use).
    #[error("--gdb {port}: cannot listen on 127.0.0.1:{port}: {source}")]
    Listen {
        /// The port asked for.
        port: u16,
        /// The bind error.
        #[source]
        source: std::io::Error,
    },
}

/// Listen on `127.0.0.1:port` (before the VM starts, so a port in use is
/// a set-up error, not a hang).
pub fn listen(port: u16) -> Result<TcpListener, GdbError> {
    TcpListener::bind(("127.0.0.1", port)).map_err(|source| GdbError::Listen { port, source })
}

/// Why a vCPU stopped for gdb.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    /// At one of gdb's breakpoints.
    Breakpoint,
    /// A single step done.
    Step,
    /// A debug exit gdb did not ask for.
    Trap,
}

/// One vCPU as gdb sees it.
struct CpuState {
    /// Its thread, to kick it out of KVM_RUN.
    thread: libc::pthread_t,
    /// Inside KVM_RUN (or about to enter it).
    running: bool,
    /// Registers as of its last exit (the vCPU thread owns the fd).
    regs: kvm_regs,
    sregs: kvm_sregs,
    /// gdb's register write, applied before the next entry.
    pending: Option<kvm_regs>,
    /// gdb's action for it on the next resume: None (unmentioned),
    /// continue (false) or step (true).
    action: Option<bool>,
    /// Step: armed at its next entry.
    step: bool,
    /// Kept stopped while the others run (gdb's scheduler locking: it
    /// steps one vCPU over a breakpoint with the others frozen).
    held: bool,
    /// The debug state last set on its fd: (breakpoint generation, step).
    applied: Option<(u64, bool)>,
    /// Its thread ended.
    gone: bool,
}

#[derive(Default)]
struct HubState {
    cpus: BTreeMap<u32, CpuState>,
    /// All-stop: every vCPU is held before its next entry.
    paused: bool,
    /// gdb detached (or never will come): run without debug.
    detached: bool,
    breakpoints: BTreeSet<u64>,
    /// Bumped on every breakpoint change, so each vCPU re-arms.
    generation: u64,
    /// Stops not yet reported to gdb, oldest first.
    stops: Vec<(u32, Stop)>,
    /// The next resume leaves unmentioned vCPUs stopped.
    lock_unmentioned: bool,
}

/// Where the vCPU threads and the gdb session meet.
pub struct Hub {
    state: Mutex<HubState>,
    changed: Condvar,
    mem: GuestMemoryMmap,
    /// The run's stop flag.
    stop: Arc<AtomicBool>,
}

impl Hub {
    /// A hub that holds every vCPU before its first instruction until gdb
    /// resumes it.
    pub fn new(mem: GuestMemoryMmap, stop: Arc<AtomicBool>) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(HubState {
                paused: true,
                ..Default::default()
            }),
            changed: Condvar::new(),
            mem,
            stop,
        })
    }

    fn lock(&self) -> MutexGuard<'_, HubState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait<'a>(&self, g: MutexGuard<'a, HubState>, t: Duration) -> MutexGuard<'a, HubState> {
        self.changed
            .wait_timeout(g, t)
            .map(|(g, _)| g)
            .unwrap_or_else(|e| e.into_inner().0)
    }

    /// vCPU `cpu` starts on the calling thread.
    pub fn register(&self, cpu: u32, fd: &VcpuFd) {
        let mut s = self.lock();
        s.cpus.insert(
            cpu,
            CpuState {
                // SAFETY: pthread_self has no preconditions.
                thread: unsafe { libc::pthread_self() },
                running: false,
                regs: fd.get_regs().unwrap_or_default(),
                sregs: fd.get_sregs().unwrap_or_default(),
                pending: None,
                action: None,
                step: false,
                held: false,
                applied: None,
                gone: false,
            },
        );
        self.changed.notify_all();
    }

    /// vCPU `cpu`'s thread is done with the guest.
    pub fn leave(&self, cpu: u32) {
        if let Some(c) = self.lock().cpus.get_mut(&cpu) {
            (c.gone, c.running) = (true, false);
        }
        self.changed.notify_all();
    }

    /// Before each KVM_RUN of `cpu`: wait while gdb holds the vCPUs, then
    /// apply gdb's register writes and arm its breakpoints and step.
    /// False if the run is stopping.
    pub fn before_run(&self, cpu: u32, fd: &VcpuFd) -> bool {
        let mut s = self.lock();
        let held = |s: &HubState| s.paused || s.cpus.get(&cpu).is_some_and(|c| c.held);
        while held(&s) && !s.detached {
            if self.stop.load(Ordering::SeqCst) {
                return false;
            }
            s = self.wait(s, POLL);
        }
        let (detached, generation) = (s.detached, s.generation);
        let bps: Vec<u64> = s.breakpoints.iter().copied().collect();
        let Some(c) = s.cpus.get_mut(&cpu) else {
            return true;
        };
        if let Some(r) = c.pending.take() {
            if let Err(e) = fd.set_regs(&r) {
                tracing::warn!("gdb: KVM_SET_REGS on cpu {cpu}: {e}");
            }
        }
        let want = (!detached).then_some((generation, c.step));
        if c.applied != want {
            let mut dbg = kvm_guest_debug::default();
            if let Some((_, step)) = want {
                dbg.control = KVM_GUESTDBG_ENABLE;
                if step {
                    dbg.control |= KVM_GUESTDBG_SINGLESTEP;
                }
                if !bps.is_empty() {
                    // Execution breakpoints: DRi = address, DR7 local enable
                    // (R/W and LEN 0: instruction fetch).
                    dbg.control |= KVM_GUESTDBG_USE_HW_BP;
                    for (i, &a) in bps.iter().enumerate().take(MAX_BREAKPOINTS) {
                        dbg.arch.debugreg[i] = a;
                        dbg.arch.debugreg[7] |= 1 << (2 * i);
                    }
                }
            }
            if let Err(e) = fd.set_guest_debug(&dbg) {
                tracing::warn!("gdb: KVM_SET_GUEST_DEBUG on cpu {cpu}: {e}");
            }
            c.applied = want;
        }
        c.running = true;
        true
    }

    /// After each KVM_RUN of `cpu`: keep its registers for gdb; `debug` is
    /// the rip of a debug exit, which stops every vCPU for gdb.
    pub fn after_run(&self, cpu: u32, fd: &VcpuFd, debug: Option<u64>) {
        let mut s = self.lock();
        let bp = debug.is_some_and(|pc| s.breakpoints.contains(&pc));
        let Some(c) = s.cpus.get_mut(&cpu) else {
            return;
        };
        c.running = false;
        if let Ok(r) = fd.get_regs() {
            c.regs = r;
        }
        if let Ok(r) = fd.get_sregs() {
            c.sregs = r;
        }
        if debug.is_some() {
            let why = if bp {
                Stop::Breakpoint
            } else if c.step {
                Stop::Step
            } else {
                Stop::Trap
            };
            if !s.detached {
                s.paused = true;
                s.stops.push((cpu, why));
            }
        }
        self.changed.notify_all();
    }

    /// Hold every vCPU: kick those in the guest and wait until each is
    /// out (or the run stops).
    fn pause_all(&self) {
        let mut s = self.lock();
        s.paused = true;
        loop {
            let running: Vec<libc::pthread_t> = s
                .cpus
                .values()
                .filter(|c| c.running && !c.gone)
                .map(|c| c.thread)
                .collect();
            if running.is_empty() || self.stop.load(Ordering::SeqCst) {
                return;
            }
            for t in running {
                // SAFETY: the thread is alive (it has not left the hub,
                // which it does before it ends); the kick handler only
                // sets immediate_exit.
                unsafe { libc::pthread_kill(t, crate::vcpu::kick_signal()) };
            }
            s = self.wait(s, Duration::from_millis(1));
        }
    }

    /// gdb went away: run on without debug.
    fn detach(&self) {
        let mut s = self.lock();
        (s.detached, s.paused) = (true, false);
        for c in s.cpus.values_mut() {
            (c.held, c.step) = (false, false);
        }
        s.breakpoints.clear();
        s.stops.clear();
        self.changed.notify_all();
    }
}

fn tid(cpu: u32) -> Tid {
    NonZeroUsize::new(cpu as usize + 1).expect("cpu + 1 > 0")
}

fn cpu_of(tid: Tid) -> u32 {
    (tid.get() - 1) as u32
}

/// The guest as gdb's target: one thread per vCPU.
struct Guest {
    hub: Arc<Hub>,
}

impl Target for Guest {
    type Arch = X86_64_SSE;
    type Error = String;

    fn base_ops(&mut self) -> BaseOps<'_, Self::Arch, Self::Error> {
        BaseOps::MultiThread(self)
    }

    fn support_breakpoints(&mut self) -> Option<BreakpointsOps<'_, Self>> {
        Some(self)
    }
}

impl MultiThreadBase for Guest {
    fn read_registers(&mut self, regs: &mut X86_64CoreRegs, tid: Tid) -> TargetResult<(), Self> {
        let s = self.hub.lock();
        let c = s.cpus.get(&cpu_of(tid)).ok_or(TargetError::NonFatal)?;
        let r = c.pending.unwrap_or(c.regs);
        regs.regs = [
            r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rbp, r.rsp, r.r8, r.r9, r.r10, r.r11,
            r.r12, r.r13, r.r14, r.r15,
        ];
        regs.rip = r.rip;
        regs.eflags = r.rflags as u32;
        let sr = &c.sregs;
        regs.segments.cs = u32::from(sr.cs.selector);
        regs.segments.ss = u32::from(sr.ss.selector);
        regs.segments.ds = u32::from(sr.ds.selector);
        regs.segments.es = u32::from(sr.es.selector);
        regs.segments.fs = u32::from(sr.fs.selector);
        regs.segments.gs = u32::from(sr.gs.selector);
        Ok(())
    }

    fn write_registers(&mut self, regs: &X86_64CoreRegs, tid: Tid) -> TargetResult<(), Self> {
        let mut s = self.hub.lock();
        let c = s.cpus.get_mut(&cpu_of(tid)).ok_or(TargetError::NonFatal)?;
        let mut r = c.pending.unwrap_or(c.regs);
        let g = regs.regs;
        (r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rbp, r.rsp) =
            (g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7]);
        (r.r8, r.r9, r.r10, r.r11, r.r12, r.r13, r.r14, r.r15) =
            (g[8], g[9], g[10], g[11], g[12], g[13], g[14], g[15]);
        r.rip = regs.rip;
        r.rflags = u64::from(regs.eflags);
        c.pending = Some(r);
        Ok(())
    }

    fn read_addrs(&mut self, start: u64, data: &mut [u8], _tid: Tid) -> TargetResult<usize, Self> {
        // Outside guest RAM (or past its end) reads as unreadable memory.
        self.hub
            .mem
            .read_slice(data, GuestAddress(start))
            .map_err(|_| TargetError::NonFatal)?;
        Ok(data.len())
    }

    fn write_addrs(&mut self, start: u64, data: &[u8], _tid: Tid) -> TargetResult<(), Self> {
        self.hub
            .mem
            .write_slice(data, GuestAddress(start))
            .map_err(|_| TargetError::NonFatal)
    }

    fn list_active_threads(&mut self, active: &mut dyn FnMut(Tid)) -> Result<(), Self::Error> {
        for (&cpu, c) in &self.hub.lock().cpus {
            if !c.gone {
                active(tid(cpu));
            }
        }
        Ok(())
    }

    fn support_resume(&mut self) -> Option<MultiThreadResumeOps<'_, Self>> {
        Some(self)
    }

    fn support_thread_extra_info(&mut self) -> Option<ThreadExtraInfoOps<'_, Self>> {
        Some(self)
    }
}

/// `info threads` names each thread's vCPU: `Thread 1.2 (vCPU 1)`.
impl ThreadExtraInfo for Guest {
    fn thread_extra_info(&self, tid: Tid, buf: &mut [u8]) -> Result<usize, Self::Error> {
        let name = format!("vCPU {}", cpu_of(tid));
        let n = name.len().min(buf.len());
        buf[..n].copy_from_slice(&name.as_bytes()[..n]);
        Ok(n)
    }
}

impl MultiThreadResume for Guest {
    fn resume(&mut self) -> Result<(), Self::Error> {
        let mut s = self.hub.lock();
        // A stop gdb has not seen is dropped: a vCPU held at a breakpoint
        // faults on it again when it runs (debug-register breakpoints are
        // faults), so it is reported again unless gdb removed it.
        s.stops.clear();
        let lock = std::mem::take(&mut s.lock_unmentioned);
        for c in s.cpus.values_mut() {
            c.step = c.action == Some(true);
            c.held = lock && c.action.is_none();
        }
        s.paused = false;
        self.hub.changed.notify_all();
        Ok(())
    }

    fn clear_resume_actions(&mut self) -> Result<(), Self::Error> {
        let mut s = self.hub.lock();
        s.lock_unmentioned = false;
        for c in s.cpus.values_mut() {
            c.action = None;
        }
        Ok(())
    }

    fn set_resume_action_continue(
        &mut self,
        tid: Tid,
        _signal: Option<Signal>,
    ) -> Result<(), Self::Error> {
        if let Some(c) = self.hub.lock().cpus.get_mut(&cpu_of(tid)) {
            c.action = Some(false);
        }
        Ok(())
    }

    fn support_single_step(&mut self) -> Option<MultiThreadSingleStepOps<'_, Self>> {
        Some(self)
    }

    fn support_scheduler_locking(&mut self) -> Option<MultiThreadSchedulerLockingOps<'_, Self>> {
        Some(self)
    }
}

impl MultiThreadSchedulerLocking for Guest {
    fn set_resume_action_scheduler_lock(&mut self) -> Result<(), Self::Error> {
        self.hub.lock().lock_unmentioned = true;
        Ok(())
    }
}

impl MultiThreadSingleStep for Guest {
    fn set_resume_action_step(
        &mut self,
        tid: Tid,
        _signal: Option<Signal>,
    ) -> Result<(), Self::Error> {
        if let Some(c) = self.hub.lock().cpus.get_mut(&cpu_of(tid)) {
            c.action = Some(true);
        }
        Ok(())
    }
}

impl Breakpoints for Guest {
    fn support_sw_breakpoint(&mut self) -> Option<SwBreakpointOps<'_, Self>> {
        Some(self)
    }
}

/// gdb's software breakpoints, kept in the debug registers (see the
/// module docs for why not an int3).
impl SwBreakpoint for Guest {
    fn add_sw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        let mut s = self.hub.lock();
        if s.breakpoints.len() >= MAX_BREAKPOINTS && !s.breakpoints.contains(&addr) {
            return Ok(false);
        }
        if s.breakpoints.insert(addr) {
            s.generation += 1;
        }
        Ok(true)
    }

    fn remove_sw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        let mut s = self.hub.lock();
        let had = s.breakpoints.remove(&addr);
        if had {
            s.generation += 1;
        }
        Ok(had)
    }
}

enum EventLoop {}

impl BlockingEventLoop for EventLoop {
    type Target = Guest;
    type Connection = TcpStream;
    type StopReason = MultiThreadStopReason<u64>;

    fn wait_for_stop_reason(
        target: &mut Guest,
        conn: &mut TcpStream,
    ) -> Result<Event<Self::StopReason>, WaitForStopReasonError<String, std::io::Error>> {
        let hub = target.hub.clone();
        loop {
            // A byte from gdb while the guest runs is Ctrl-C.
            if conn
                .peek()
                .map_err(WaitForStopReasonError::Connection)?
                .is_some()
            {
                let b = conn.read().map_err(WaitForStopReasonError::Connection)?;
                return Ok(Event::IncomingData(b));
            }
            let first = {
                let mut s = hub.lock();
                if s.stops.is_empty() && !hub.stop.load(Ordering::SeqCst) {
                    s = hub.wait(s, Duration::from_millis(5));
                }
                (!s.stops.is_empty()).then(|| s.stops.remove(0))
            };
            if let Some((cpu, why)) = first {
                hub.pause_all();
                let t = tid(cpu);
                return Ok(Event::TargetStopped(match why {
                    Stop::Breakpoint => MultiThreadStopReason::SwBreak(t),
                    Stop::Step | Stop::Trap => MultiThreadStopReason::SignalWithThread {
                        tid: t,
                        signal: Signal::SIGTRAP,
                    },
                }));
            }
            if hub.stop.load(Ordering::SeqCst) {
                // The run ended (power-off, a failure, the timeout).
                return Ok(Event::TargetStopped(MultiThreadStopReason::Exited(0)));
            }
        }
    }

    fn on_interrupt(target: &mut Guest) -> Result<Option<Self::StopReason>, String> {
        target.hub.pause_all();
        Ok(Some(MultiThreadStopReason::Signal(Signal::SIGINT)))
    }
}

/// Wait for gdb on `listener` (on a thread of its own), then serve it
/// until it detaches or the run ends.
pub fn spawn_server(
    listener: TcpListener,
    hub: Arc<Hub>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let addr = listener
        .local_addr()
        .map_or_else(|_| "?".into(), |a| a.to_string());
    tracing::info!("waiting for gdb on {addr}");
    eprintln!("nicproof: waiting for gdb: target remote {addr}");
    std::thread::Builder::new()
        .name("gdb".into())
        .spawn(move || {
            // Polled, so a run that ends (its timeout) with no gdb ends
            // this thread too.
            let _ = listener.set_nonblocking(true);
            let stream = loop {
                match listener.accept() {
                    Ok((stream, _)) => break stream,
                    Err(e)
                        if e.kind() == std::io::ErrorKind::WouldBlock
                            && !hub.stop.load(Ordering::SeqCst) =>
                    {
                        std::thread::sleep(POLL)
                    }
                    Err(_) => {
                        hub.detach();
                        return;
                    }
                }
            };
            let _ = stream.set_nonblocking(false);
            let _ = stream.set_nodelay(true);
            // gdb's first question is which thread stopped: the boot vCPU,
            // held before its first instruction.
            {
                let mut s = hub.lock();
                while !s.cpus.contains_key(&0) && !hub.stop.load(Ordering::SeqCst) {
                    s = hub.wait(s, POLL);
                }
            }
            let mut target = Guest { hub: hub.clone() };
            if let Err(e) = GdbStub::new(stream).run_blocking::<EventLoop>(&mut target) {
                eprintln!("nicproof: gdb session ended: {e}");
            }
            hub.detach();
        })
}
