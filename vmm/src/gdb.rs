//! `nicproof run --gdb PORT`: a gdb remote stub for the boot vCPU, on the
//! gdbstub crate (as Firecracker and cloud-hypervisor do). The run waits
//! for gdb to attach before the guest's first instruction; gdb then reads
//! and writes registers and memory (the guest is identity mapped, so a
//! guest address is a guest-physical one), sets breakpoints (up to four,
//! in the debug registers: KVM_GUESTDBG_USE_HW_BP) and single-steps
//! (KVM_GUESTDBG_SINGLESTEP). VM exits for I/O are served as in a normal
//! run while the guest runs under gdb; when gdb detaches the run goes on.

use std::collections::BTreeSet;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::Ordering;

use gdbstub::common::Signal;
use gdbstub::conn::ConnectionExt;
use gdbstub::stub::run_blocking::{BlockingEventLoop, Event, WaitForStopReasonError};
use gdbstub::stub::{GdbStub, SingleThreadStopReason};
use gdbstub::target::ext::base::singlethread::{
    SingleThreadBase, SingleThreadResume, SingleThreadResumeOps, SingleThreadSingleStep,
    SingleThreadSingleStepOps,
};
use gdbstub::target::ext::base::BaseOps;
use gdbstub::target::ext::breakpoints::{
    Breakpoints, BreakpointsOps, SwBreakpoint, SwBreakpointOps,
};
use gdbstub::target::{Target, TargetError, TargetResult};
use gdbstub_arch::x86::reg::X86_64CoreRegs;
use gdbstub_arch::x86::X86_64_SSE;
use kvm_bindings::{
    kvm_guest_debug, KVM_GUESTDBG_ENABLE, KVM_GUESTDBG_SINGLESTEP, KVM_GUESTDBG_USE_HW_BP,
};
use kvm_ioctls::{VcpuExit, VcpuFd};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::control::End;
use crate::vcpu::{dispatch, regs_dump, Action, ExitCounts, VcpuCtx};

/// Breakpoints at once: gdb's software breakpoints (`break`) are set
/// as x86 debug-register breakpoints, DR0..DR3. (This machine's KVM
/// backend cannot exit on an int3 under guest debug: it reports an
/// internal error; debug registers and single steps work.)
pub const MAX_BREAKPOINTS: usize = 4;

/// Why `--gdb PORT` cannot listen.
#[derive(Debug, thiserror::Error)]
pub enum GdbError {
    #[error("--gdb {port}: cannot listen on 127.0.0.1:{port}: {source}")]
    Listen {
        port: u16,
        #[source]
        source: std::io::Error,
    },
}

/// Listen on `127.0.0.1:port` (before the VM starts, so a port in use is
/// a set-up error, not a hang).
pub fn listen(port: u16) -> Result<TcpListener, GdbError> {
    TcpListener::bind(("127.0.0.1", port)).map_err(|source| GdbError::Listen { port, source })
}

/// The boot vCPU under gdb.
struct VcpuTarget<'a> {
    fd: &'a mut VcpuFd,
    ctx: &'a VcpuCtx,
    mem: GuestMemoryMmap,
    counts: &'a mut ExitCounts,
    /// gdb's breakpoint addresses (at most [`MAX_BREAKPOINTS`]).
    breakpoints: BTreeSet<u64>,
    step: bool,
    /// How the run ended while the guest ran under gdb (the normal loop
    /// reports it).
    ended: Option<End>,
}

impl VcpuTarget<'_> {
    fn set_debug(&self, on: bool) -> Result<(), String> {
        let mut control = 0;
        if on {
            control = KVM_GUESTDBG_ENABLE;
            if self.step {
                control |= KVM_GUESTDBG_SINGLESTEP;
            }
        }
        let mut dbg = kvm_guest_debug {
            control,
            ..Default::default()
        };
        if on && !self.breakpoints.is_empty() {
            // Hardware execution breakpoints: DR0..DR3, enabled locally in DR7.
            dbg.control |= KVM_GUESTDBG_USE_HW_BP;
            for (i, &a) in self.breakpoints.iter().enumerate() {
                dbg.arch.debugreg[i] = a;
                dbg.arch.debugreg[7] |= 1 << (2 * i);
            }
        }
        self.fd
            .set_guest_debug(&dbg)
            .map_err(|e| format!("KVM_SET_GUEST_DEBUG: {e}"))
    }

    /// Run the vCPU until it stops for gdb, or the run ends.
    fn run_until_stop(&mut self) -> Result<Option<SingleThreadStopReason<u64>>, String> {
        self.set_debug(true)?;
        if self.ctx.stop.load(Ordering::SeqCst) {
            return Ok(Some(SingleThreadStopReason::Exited(0)));
        }
        let (name, action) = match self.fd.run() {
            Ok(VcpuExit::Debug(arch)) => {
                *self.counts.entry("debug".into()).or_insert(0) += 1;
                // A debug-register hit at one of gdb's addresses, else a step.
                return Ok(Some(if self.breakpoints.contains(&arch.pc) {
                    SingleThreadStopReason::SwBreak(())
                } else {
                    SingleThreadStopReason::DoneStep
                }));
            }
            Ok(exit) => dispatch(exit, &self.ctx.io),
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
                self.fd.set_kvm_immediate_exit(0);
                ("interrupted", Action::Continue)
            }
            Err(e) => return Err(format!("KVM_RUN on cpu 0: {e}")),
        };
        *self.counts.entry(name.to_string()).or_insert(0) += 1;
        self.ended = match action {
            Action::Continue => return Ok(None),
            Action::Shutdown => Some(End::TripleFault {
                cpu: self.ctx.cpu,
                regs: regs_dump(self.fd),
            }),
            Action::End(e) => Some(e),
        };
        Ok(Some(SingleThreadStopReason::Exited(0)))
    }
}

impl Target for VcpuTarget<'_> {
    type Arch = X86_64_SSE;
    type Error = String;

    fn base_ops(&mut self) -> BaseOps<'_, Self::Arch, Self::Error> {
        BaseOps::SingleThread(self)
    }

    fn support_breakpoints(&mut self) -> Option<BreakpointsOps<'_, Self>> {
        Some(self)
    }
}

impl SingleThreadBase for VcpuTarget<'_> {
    fn read_registers(&mut self, regs: &mut X86_64CoreRegs) -> TargetResult<(), Self> {
        let r = self
            .fd
            .get_regs()
            .map_err(|e| TargetError::Fatal(format!("KVM_GET_REGS: {e}")))?;
        regs.regs = [
            r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rbp, r.rsp, r.r8, r.r9, r.r10, r.r11,
            r.r12, r.r13, r.r14, r.r15,
        ];
        regs.rip = r.rip;
        regs.eflags = r.rflags as u32;
        if let Ok(s) = self.fd.get_sregs() {
            regs.segments.cs = u32::from(s.cs.selector);
            regs.segments.ss = u32::from(s.ss.selector);
            regs.segments.ds = u32::from(s.ds.selector);
            regs.segments.es = u32::from(s.es.selector);
            regs.segments.fs = u32::from(s.fs.selector);
            regs.segments.gs = u32::from(s.gs.selector);
        }
        Ok(())
    }

    fn write_registers(&mut self, regs: &X86_64CoreRegs) -> TargetResult<(), Self> {
        let mut r = self
            .fd
            .get_regs()
            .map_err(|e| TargetError::Fatal(format!("KVM_GET_REGS: {e}")))?;
        let g = regs.regs;
        (r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rbp, r.rsp) =
            (g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7]);
        (r.r8, r.r9, r.r10, r.r11, r.r12, r.r13, r.r14, r.r15) =
            (g[8], g[9], g[10], g[11], g[12], g[13], g[14], g[15]);
        r.rip = regs.rip;
        r.rflags = u64::from(regs.eflags);
        self.fd
            .set_regs(&r)
            .map_err(|e| TargetError::Fatal(format!("KVM_SET_REGS: {e}")))
    }

    fn read_addrs(&mut self, start: u64, data: &mut [u8]) -> TargetResult<usize, Self> {
        // Outside guest RAM (or past its end) reads as unreadable memory.
        self.mem
            .read_slice(data, GuestAddress(start))
            .map_err(|_| TargetError::NonFatal)?;
        Ok(data.len())
    }

    fn write_addrs(&mut self, start: u64, data: &[u8]) -> TargetResult<(), Self> {
        self.mem
            .write_slice(data, GuestAddress(start))
            .map_err(|_| TargetError::NonFatal)
    }

    fn support_resume(&mut self) -> Option<SingleThreadResumeOps<'_, Self>> {
        Some(self)
    }
}

impl SingleThreadResume for VcpuTarget<'_> {
    fn resume(&mut self, _signal: Option<Signal>) -> Result<(), Self::Error> {
        self.step = false;
        Ok(())
    }

    fn support_single_step(&mut self) -> Option<SingleThreadSingleStepOps<'_, Self>> {
        Some(self)
    }
}

impl SingleThreadSingleStep for VcpuTarget<'_> {
    fn step(&mut self, _signal: Option<Signal>) -> Result<(), Self::Error> {
        self.step = true;
        Ok(())
    }
}

impl Breakpoints for VcpuTarget<'_> {
    fn support_sw_breakpoint(&mut self) -> Option<SwBreakpointOps<'_, Self>> {
        Some(self)
    }
}

impl SwBreakpoint for VcpuTarget<'_> {
    fn add_sw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        if self.breakpoints.len() >= MAX_BREAKPOINTS && !self.breakpoints.contains(&addr) {
            return Ok(false);
        }
        self.breakpoints.insert(addr);
        Ok(true)
    }

    fn remove_sw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        Ok(self.breakpoints.remove(&addr))
    }
}

enum EventLoop<'a> {
    _Never(std::marker::PhantomData<&'a ()>),
}

impl<'a> BlockingEventLoop for EventLoop<'a> {
    type Target = VcpuTarget<'a>;
    type Connection = TcpStream;
    type StopReason = SingleThreadStopReason<u64>;

    fn wait_for_stop_reason(
        target: &mut VcpuTarget<'a>,
        conn: &mut TcpStream,
    ) -> Result<Event<Self::StopReason>, WaitForStopReasonError<String, std::io::Error>> {
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
            if let Some(stop) = target
                .run_until_stop()
                .map_err(WaitForStopReasonError::Target)?
            {
                return Ok(Event::TargetStopped(stop));
            }
        }
    }

    fn on_interrupt(_target: &mut VcpuTarget<'a>) -> Result<Option<Self::StopReason>, String> {
        Ok(Some(SingleThreadStopReason::Signal(Signal::SIGINT)))
    }
}

/// Wait for gdb on `listener`, then let it drive the vCPU until it
/// detaches or the run ends. Returns how the vCPU ended the run, if it
/// did under gdb.
pub fn serve(
    fd: &mut VcpuFd,
    ctx: &VcpuCtx,
    mem: GuestMemoryMmap,
    listener: TcpListener,
    counts: &mut ExitCounts,
) -> Option<End> {
    tracing::info!("waiting for gdb on {:?}", listener.local_addr());
    eprintln!(
        "nicproof: waiting for gdb: target remote {}",
        listener
            .local_addr()
            .map_or_else(|_| "?".into(), |a| a.to_string())
    );
    let Ok((stream, _)) = listener.accept() else {
        return None;
    };
    let _ = stream.set_nodelay(true);
    let mut target = VcpuTarget {
        fd,
        ctx,
        mem,
        counts,
        breakpoints: BTreeSet::new(),
        step: false,
        ended: None,
    };
    let res = GdbStub::new(stream).run_blocking::<EventLoop<'_>>(&mut target);
    if let Err(e) = &res {
        eprintln!("nicproof: gdb session ended: {e}");
    }
    // Run on without debug exits.
    target.breakpoints.clear();
    let _ = target.set_debug(false);
    target.ended.take()
}
