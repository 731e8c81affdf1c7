//! One thread per vCPU: run it, dispatch its exits, stop when told.
//!
//! Stopping: the controller sets `stop` and kicks the thread with
//! [`kick_signal`]. The handler sets `immediate_exit` in the thread's
//! `kvm_run` (Firecracker `vstate/vcpu.rs`), so a kick that lands just
//! before KVM_RUN still makes it return at once; the loop then sees
//! `stop` and never re-enters the guest.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Once};

use kvm_bindings::kvm_run;
use kvm_ioctls::{VcpuExit, VcpuFd};
use vm_device::bus::{MmioAddress, PioAddress};
use vm_device::device_manager::{IoManager, MmioManager, PioManager};

use crate::control::{End, VmEvent};
use crate::outcome::RegsDump;
use crate::sim::{Request, Sim};
use nic_model::abi::sched;

/// VM exits per reason.
pub type ExitCounts = BTreeMap<String, u64>;

/// Each vCPU's rip when its thread stopped running it, by vCPU index.
pub type FinalRips = Arc<std::sync::Mutex<BTreeMap<u32, u64>>>;

thread_local! {
    // The kvm_run page of the vCPU this thread runs, for the kick handler.
    static KVM_RUN_PTR: Cell<*mut kvm_run> = const { Cell::new(std::ptr::null_mut()) };
    // The vCPU this thread runs: a device served from one of its exits
    // (the control port) learns which vCPU wrote to it.
    static CURRENT_CPU: Cell<Option<u32>> = const { Cell::new(None) };
}

/// The vCPU whose exit the calling thread is serving (`None` off a vCPU
/// thread: device timers, host-side tests).
pub fn current_cpu() -> Option<u32> {
    CURRENT_CPU.with(Cell::get)
}

extern "C" fn kick_handler(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    KVM_RUN_PTR.with(|p| {
        let run = p.get();
        if !run.is_null() {
            // SAFETY:
            // - `run` points at this thread's mmapped kvm_run page; it is set
            //   only while the owning VcpuFd is alive on this thread and
            //   cleared before the VcpuFd is dropped.
            // - The handler runs on the same thread, so nothing else writes
            //   the page concurrently from userspace.
            unsafe { std::ptr::addr_of_mut!((*run).immediate_exit).write_volatile(1) };
        }
    });
}

/// The real-time signal used to kick vCPU threads out of KVM_RUN.
pub fn kick_signal() -> libc::c_int {
    vmm_sys_util::signal::SIGRTMIN()
}

/// Install the kick handler once per process.
pub fn register_kick_handler() -> Result<(), vmm_sys_util::errno::Error> {
    static ONCE: Once = Once::new();
    let mut res = Ok(());
    ONCE.call_once(|| {
        res = vmm_sys_util::signal::register_signal_handler(kick_signal(), kick_handler)
    });
    res
}

/// What a vCPU thread needs.
pub struct VcpuCtx {
    /// The vCPU's index (0: the boot vCPU).
    pub cpu: u32,
    /// The PIO/MMIO devices its exits dispatch to.
    pub io: Arc<IoManager>,
    /// The run's stop flag: set, the thread leaves its loop.
    pub stop: Arc<AtomicBool>,
    /// Where the thread reports the run's end and other events.
    pub tx: Sender<VmEvent>,
    /// Where the thread records its rip when it stops.
    pub rips: FinalRips,
    /// `--gdb`: the session every vCPU runs under (held before each
    /// entry while gdb has the guest stopped).
    pub gdb: Option<Arc<crate::gdb::Hub>>,
    /// Deterministic mode: the scheduler this vCPU runs under.
    pub sim: Option<Arc<Sim>>,
}

pub(crate) enum Action {
    Continue,
    Shutdown,
    End(End),
}

pub(crate) fn dispatch(exit: VcpuExit<'_>, io: &IoManager) -> (&'static str, Action) {
    match exit {
        VcpuExit::IoIn(port, data) => {
            // Unclaimed ports read all ones (a PCI scan needs vendor 0xffff).
            data.fill(0xff);
            let _ = io.pio_read(PioAddress(port), data);
            ("io-in", Action::Continue)
        }
        VcpuExit::IoOut(port, data) => {
            if io.pio_write(PioAddress(port), data).is_err() {
                tracing::trace!(port, ?data, "write to unclaimed port");
            }
            ("io-out", Action::Continue)
        }
        VcpuExit::MmioRead(addr, data) => {
            data.fill(0xff);
            let _ = io.mmio_read(MmioAddress(addr), data);
            ("mmio-read", Action::Continue)
        }
        VcpuExit::MmioWrite(addr, data) => {
            if io.mmio_write(MmioAddress(addr), data).is_err() {
                tracing::trace!(addr, ?data, "write to unclaimed MMIO");
            }
            ("mmio-write", Action::Continue)
        }
        VcpuExit::Intr => ("intr", Action::Continue),
        VcpuExit::Shutdown => ("shutdown", Action::Shutdown),
        // With the in-kernel irqchip, HLT is handled by KVM and never gets
        // here; if it does, nothing could ever wake this vCPU.
        VcpuExit::Hlt => (
            "hlt",
            Action::End(End::HostError("unexpected HLT exit".into())),
        ),
        VcpuExit::FailEntry(reason, cpu) => (
            "fail-entry",
            Action::End(End::HostError(format!(
                "KVM entry failed: reason {reason:#x} on cpu {cpu}"
            ))),
        ),
        VcpuExit::InternalError => (
            "internal-error",
            Action::End(End::HostError("KVM internal error".into())),
        ),
        VcpuExit::SystemEvent(kind, data) => (
            "system-event",
            Action::End(End::HostError(format!("KVM system event {kind} {data:?}"))),
        ),
        other => (
            "other",
            Action::End(End::HostError(format!("unhandled VM exit {other:?}"))),
        ),
    }
}

pub(crate) fn regs_dump(fd: &VcpuFd) -> RegsDump {
    let mut d = RegsDump::default();
    if let Ok(r) = fd.get_regs() {
        (
            d.rip, d.rsp, d.rflags, d.rax, d.rbx, d.rcx, d.rdx, d.rsi, d.rdi, d.rbp,
        ) = (
            r.rip, r.rsp, r.rflags, r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rbp,
        );
    }
    if let Ok(s) = fd.get_sregs() {
        (d.cr0, d.cr2, d.cr3, d.cr4, d.efer, d.idt_base, d.idt_limit) =
            (s.cr0, s.cr2, s.cr3, s.cr4, s.efer, s.idt.base, s.idt.limit);
    }
    d
}

struct ClearKvmRunPtr;

impl Drop for ClearKvmRunPtr {
    fn drop(&mut self) {
        KVM_RUN_PTR.with(|p| p.set(std::ptr::null_mut()));
    }
}

/// [`run`], but a panic inside it (a device model bug, say) ends the run
/// as a host error at once instead of leaving the VM to time out.
pub fn run_catching(fd: VcpuFd, ctx: VcpuCtx) -> ExitCounts {
    let (cpu, stop, tx) = (ctx.cpu, ctx.stop.clone(), ctx.tx.clone());
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(fd, ctx))).unwrap_or_else(|p| {
        let msg = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "non-string panic".into());
        stop.store(true, Ordering::SeqCst);
        let _ = tx.send(VmEvent::End(End::HostError(format!(
            "vcpu{cpu} thread panicked: {msg}"
        ))));
        ExitCounts::new()
    })
}

/// A scheduling request (`abi::sched`) from `cpu`, as its 32-bit word.
fn sched_request(sim: &Sim, cpu: u32, data: &[u8], tx: &Sender<VmEvent>) -> Request {
    let word = data.try_into().map(u32::from_le_bytes).unwrap_or(u32::MAX);
    match word & 0xff {
        _ if data.len() != 4 => {
            let _ = tx.send(VmEvent::ProtocolError(format!(
                "{}-byte write to the scheduling port; use 32-bit out",
                data.len()
            )));
            Request::Continue
        }
        w if w == sched::IDLE => Request::Idle(sim.idle_deadline(cpu)),
        w if w == sched::YIELD => Request::Yield,
        // An ordinary exit: the scheduler may switch here.
        w if w == sched::POINT => Request::Continue,
        w if w == sched::IPI => {
            sim.send_ipi((word >> 16) & 0xff, (word >> 8) as u8);
            Request::Continue
        }
        _ => {
            let _ = tx.send(VmEvent::ProtocolError(format!(
                "unknown scheduling request {word:#x}"
            )));
            Request::Continue
        }
    }
}

/// The vectors pending in `fd`'s LAPIC (its IRR: eight 32-bit registers
/// from offset 0x200, 16 bytes apart).
fn pending_vectors(fd: &VcpuFd) -> Result<Vec<u8>, kvm_ioctls::Error> {
    let lapic = fd.get_lapic()?;
    let mut v = Vec::new();
    for reg in 0..8usize {
        let at = 0x200 + 0x10 * reg;
        let bytes: Vec<u8> = lapic.regs[at..at + 4].iter().map(|&b| b as u8).collect();
        let bits = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        v.extend(
            (0..32)
                .filter(|b| bits & (1 << b) != 0)
                .map(|b| (reg * 32 + b) as u8),
        );
    }
    Ok(v)
}

/// Run `fd` until the run stops or this vCPU ends it; return its exits.
pub fn run(mut fd: VcpuFd, mut ctx: VcpuCtx) -> ExitCounts {
    let mut counts = ExitCounts::new();
    KVM_RUN_PTR.with(|p| p.set(fd.get_kvm_run()));
    CURRENT_CPU.with(|c| c.set(Some(ctx.cpu)));
    // Declared after `fd` is owned, so it drops first: the pointer is gone
    // before the kvm_run page is unmapped, even when a device panics.
    let _clear = ClearKvmRunPtr;
    let gdb = ctx.gdb.take();
    if let Some(hub) = &gdb {
        hub.register(ctx.cpu, &fd);
    }
    if let Some(sim) = &ctx.sim {
        if !sim.wait_turn(ctx.cpu) {
            if let Some(hub) = &gdb {
                hub.leave(ctx.cpu);
            }
            return counts;
        }
    }
    let end = loop {
        if ctx.stop.load(Ordering::SeqCst) {
            break None;
        }
        // `--gdb`: held here while gdb has the guest stopped.
        if let Some(hub) = &gdb {
            if !hub.before_run(ctx.cpu, &fd) {
                break None;
            }
        }
        if let Some(sim) = &ctx.sim {
            sim.publish_clock();
        }
        let mut req = Request::Continue;
        let mut debug_rip = None;
        let (name, action) = match fd.run() {
            // A breakpoint or single step of the gdb session.
            Ok(VcpuExit::Debug(arch)) if gdb.is_some() => {
                debug_rip = Some(arch.pc);
                ("debug", Action::Continue)
            }
            Ok(VcpuExit::IoOut(port, data)) if port == sched::SCHED_PORT && ctx.sim.is_some() => {
                let sim = ctx.sim.as_deref().expect("checked in the guard");
                req = sched_request(sim, ctx.cpu, data, &ctx.tx);
                ("sched", Action::Continue)
            }
            Ok(exit) => dispatch(exit, &ctx.io),
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
                fd.set_kvm_immediate_exit(0);
                ("interrupted", Action::Continue)
            }
            Err(e) => (
                "error",
                Action::End(End::HostError(format!("KVM_RUN on cpu {}: {e}", ctx.cpu))),
            ),
        };
        if let Some(hub) = &gdb {
            hub.after_run(ctx.cpu, &fd, debug_rip);
        }
        *counts.entry(name.to_string()).or_insert(0) += 1;
        match action {
            // A signal (the stop kick) is no guest progress: no time, no
            // scheduling point; nor is a stop for gdb.
            Action::Continue if name == "interrupted" || name == "debug" => {}
            Action::Continue => {
                if let Some(sim) = &ctx.sim {
                    sim.charge(name);
                    let rip = match req {
                        Request::Idle(_) => fd.get_regs().map(|r| r.rip).unwrap_or(0),
                        _ => 0,
                    };
                    if !sim.schedule(ctx.cpu, req, rip) {
                        break None;
                    }
                    if let Request::Idle(_) = req {
                        // It re-enters with IF=1: hand it one held
                        // interrupt, so it takes exactly one (sim.rs).
                        match pending_vectors(&fd) {
                            Ok(v) if v.is_empty() => sim.deliver_held(ctx.cpu),
                            // The last one is not taken yet (the guest
                            // blocks it): nothing more until it is.
                            Ok(v) if v.len() == 1 => {}
                            Ok(v) => {
                                break Some(End::HostError(format!(
                                    "cpu {} leaves its idle request with {} interrupts pending \
                                 (vectors {}): how many it takes is host timing, so the run \
                                 would not replay",
                                    ctx.cpu,
                                    v.len(),
                                    v.iter()
                                        .map(|x| format!("{x:#x}"))
                                        .collect::<Vec<_>>()
                                        .join(", ")
                                )))
                            }
                            Err(e) => {
                                break Some(End::HostError(format!(
                                    "KVM_GET_LAPIC on cpu {}: {e}",
                                    ctx.cpu
                                )))
                            }
                        }
                    }
                }
            }
            // Never re-enter KVM_RUN after a shutdown.
            Action::Shutdown => {
                break Some(End::TripleFault {
                    cpu: ctx.cpu,
                    regs: regs_dump(&fd),
                })
            }
            Action::End(e) => break Some(e),
        }
    };
    if let Some(hub) = &gdb {
        hub.leave(ctx.cpu);
    }
    if let Ok(r) = fd.get_regs() {
        ctx.rips
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(ctx.cpu, r.rip);
    }
    if let Some(e) = end {
        ctx.stop.store(true, Ordering::SeqCst);
        let _ = ctx.tx.send(VmEvent::End(e));
    }
    counts
}
