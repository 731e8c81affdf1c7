//! The VM: KVM handles, guest memory, the I/O buses, the event log, and
//! the run controller that starts vCPUs and decides the outcome.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kvm_bindings::{
    kvm_mp_state, kvm_userspace_memory_region, Msrs, KVM_MAX_CPUID_ENTRIES, KVM_MP_STATE_RUNNABLE,
};
use kvm_ioctls::{Cap, Kvm, VcpuFd, VmFd};
use linux_loader::loader::{elf, Elf, KernelLoader};
use nic_model::abi::{
    control, knob, BootInfo, DeviceMutant, DriverMutant, RunConfig, Scenario, BOOT_INFO_MAGIC,
    NUM_KNOBS, PROTOCOL_VERSION,
};
use nic_model::events::{EventKind, EventLog, Source};
use vm_device::bus::{PioAddress, PioRange};
use vm_device::device_manager::{IoManager, PioManager};
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap};
use vmm_sys_util::signal::Killable;

use crate::arch::x86_64::{cpuid, layout, msr, regs};
use crate::control::{ControlPort, End, MarkerHook, MarkerHooks, VmEvent};
use crate::outcome::{Outcome, Stats};
use crate::serial::{SerialDevice, SerialLog, COM1, COM1_LEN};
use crate::sim::{ClockMode, Sim};
use crate::vcpu::{self, ExitCounts, VcpuCtx};

/// What to run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Guest kernel ELF.
    pub guest: PathBuf,
    /// The scenario the guest runs (sent in its run config).
    pub scenario: Scenario,
    /// The run's seed: it picks the guest's random choices, the payload
    /// bytes and the virtual clock's schedule.
    pub seed: u64,
    /// The driver mutant the guest runs.
    pub driver_mutant: DriverMutant,
    /// The device mutant the NIC runs.
    pub device_mutant: DeviceMutant,
    /// RunConfig knobs (see `abi::knob`).
    pub knobs: [u64; NUM_KNOBS],
    /// Wall-clock limit of the run.
    pub timeout: Duration,
    /// Do not echo serial output live.
    pub quiet: bool,
    /// The NIC plugged into the PCI bus (`None`: an empty bus). Its
    /// `mutant` is overridden by `device_mutant`.
    pub nic: Option<nic_model::config::NicConfig>,
    /// The scenario provokes BUSY on purpose (see `scenarios::Setup`).
    pub allow_busy: bool,
    /// The device error the scenario provokes on purpose (see
    /// `scenarios::Setup`); any other latched error fails the run.
    pub expect_fault: Option<nic_model::abi::DeviceError>,
    /// `--gdb PORT`: the boot vCPU waits for gdb on 127.0.0.1:PORT.
    pub gdb: Option<u16>,
    /// The scenario provokes `ndo_tx_timeout` on purpose (see
    /// `scenarios::Setup`); otherwise a call is the `tx-timeout` finding.
    pub expect_tx_timeout: bool,
    /// Which clock runs (`sim`): virtual (deterministic) by default.
    pub clock: ClockMode,
    /// A determinism stress: kick every vCPU thread out of KVM_RUN this
    /// often (as host preemption does, at random guest instructions).
    /// A deterministic run gives the same log with it; default from
    /// [`KICK_EVERY_ENV`] (microseconds), so matrix children inherit it.
    pub kick_every: Option<Duration>,
}

/// Environment variable naming [`RunOptions::kick_every`] in microseconds.
pub const KICK_EVERY_ENV: &str = "NICPROOF_KICK_EVERY_US";

/// [`RunOptions::kick_every`] from [`KICK_EVERY_ENV`] (unset, 0 or not a
/// number: none).
pub fn kick_every_from_env() -> Option<Duration> {
    std::env::var(KICK_EVERY_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|&us| us > 0)
        .map(Duration::from_micros)
}

impl RunOptions {
    /// Options for `scenario` with its host set-up (`scenarios::setup`):
    /// device knobs, guest knobs (non-zero `knobs` override), timeout.
    pub fn for_scenario(
        guest: PathBuf,
        scenario: Scenario,
        seed: u64,
        knobs: &[u64; NUM_KNOBS],
    ) -> Self {
        let s = crate::scenarios::setup(scenario, knobs[knob::VARIANT], seed);
        let mut merged = s.knobs;
        for (m, k) in merged.iter_mut().zip(knobs) {
            if *k != 0 {
                *m = *k;
            }
        }
        Self {
            guest,
            scenario,
            seed,
            knobs: merged,
            timeout: s.timeout,
            nic: Some(s.nic),
            allow_busy: s.allow_busy,
            expect_fault: s.expect_fault,
            expect_tx_timeout: s.expect_tx_timeout,
            ..Default::default()
        }
    }
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            guest: PathBuf::from("images/nicproof-guest"),
            scenario: Scenario::Default,
            seed: 0,
            driver_mutant: DriverMutant::None,
            device_mutant: DeviceMutant::None,
            knobs: [0; NUM_KNOBS],
            timeout: Duration::from_secs(60),
            quiet: false,
            nic: Some(nic_model::config::NicConfig::default()),
            allow_busy: false,
            expect_fault: None,
            gdb: None,
            expect_tx_timeout: false,
            clock: ClockMode::default(),
            kick_every: kick_every_from_env(),
        }
    }
}

/// Errors while building the VM.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    /// The KVM device is missing.
    #[error("{path} not found ({source}): load the KVM module (`modprobe kvm_intel` or `modprobe kvm_amd`) on a host with virtualization enabled")]
    KvmMissing {
        /// The KVM device path.
        path: String,
        /// The open error.
        source: kvm_ioctls::Error,
    },
    /// The KVM device is not accessible.
    #[error("no permission to open {path} ({source}): add your user to the kvm group (`sudo usermod -aG kvm $USER`, then log in again) or run as root")]
    KvmPermission {
        /// The KVM device path.
        path: String,
        /// The open error.
        source: kvm_ioctls::Error,
    },
    /// Any other failure opening KVM.
    #[error("cannot open {path}: {source}")]
    KvmOpen {
        /// The KVM device path.
        path: String,
        /// The open error.
        source: kvm_ioctls::Error,
    },
    /// The device opened but does not speak KVM API 12.
    #[error("{path} is not a usable KVM device (KVM_GET_API_VERSION gave {version}, want 12)")]
    KvmApi {
        /// The KVM device path.
        path: String,
        /// The API version it reported.
        version: i32,
    },
    /// A KVM ioctl failed.
    #[error("{what}: {source}")]
    Kvm {
        /// The ioctl or step that failed.
        what: &'static str,
        /// The ioctl's error.
        source: kvm_ioctls::Error,
    },
    /// Guest memory could not be created.
    #[error("guest memory: {0}")]
    Memory(String),
    /// The guest image is missing or unusable.
    #[error("guest image {path}: {reason}")]
    GuestImage {
        /// The guest image path.
        path: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// Boot structures could not be written.
    #[error(transparent)]
    Regs(#[from] regs::RegsError),
    /// `--gdb PORT` cannot listen (the port is in use, say).
    #[error(transparent)]
    Gdb(#[from] crate::gdb::GdbError),
    /// The NIC could not be built.
    #[error("NIC: {0}")]
    Device(String),
    /// Two devices claim the same ports.
    #[error("device bus: {0}")]
    Bus(#[from] vm_device::bus::Error),
}

fn kvm(what: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> VmError {
    move |source| VmError::Kvm { what, source }
}

/// A built VM, ready to run. Devices may be added to [`Vm::io`] before
/// [`Vm::run`] (the NIC's PCI bus plugs in here).
pub struct Vm {
    /// The VM fd (for irqchip routes and `signal_msi`).
    pub vm_fd: Arc<VmFd>,
    /// Guest RAM, one region at GPA 0.
    pub mem: GuestMemoryMmap,
    /// The one ordered event log.
    pub events: EventLog,
    /// PIO and MMIO dispatch; unclaimed reads return all ones.
    pub io: IoManager,
    /// Set when the run is over; no vCPU re-enters the guest after it.
    pub stop: Arc<AtomicBool>,
    /// Deterministic mode's clock and scheduler (`None`: wall clock).
    pub sim: Option<Arc<Sim>>,
    hooks: MarkerHooks,
    /// Boot CPU first, then the parked APs.
    vcpus: Vec<Option<VcpuFd>>,
    entry: u64,
    serial: SerialLog,
    tx: Sender<VmEvent>,
    rx: Receiver<VmEvent>,
    timeout: Duration,
    kick_every: Option<Duration>,
    /// Each vCPU's rip when its thread ended (the report names where
    /// every vCPU was at a timeout).
    rips: vcpu::FinalRips,
    /// `--gdb`: where gdb attaches (taken when the run starts).
    gdb: Option<std::net::TcpListener>,
    /// `--gdb`: the session every vCPU runs under, once the run started.
    gdb_hub: Option<Arc<crate::gdb::Hub>>,
    // Keeps /dev/kvm open for the VM's lifetime.
    _kvm: Kvm,
}

/// Environment variable naming the KVM device (default `/dev/kvm`); the
/// tests point it at a missing path to check the error message.
pub const KVM_DEVICE_ENV: &str = "NICPROOF_KVM";

fn open_kvm() -> Result<Kvm, VmError> {
    let path = std::env::var(KVM_DEVICE_ENV).unwrap_or_else(|_| "/dev/kvm".into());
    let c_path = std::ffi::CString::new(path.clone()).map_err(|_| VmError::KvmOpen {
        path: path.clone(),
        source: kvm_ioctls::Error::new(libc::EINVAL),
    })?;
    let kvm = Kvm::new_with_path(&c_path).map_err(|source| kvm_open_error(path.clone(), source))?;
    // A path that opens but is not KVM (or a KVM too old) fails here.
    match kvm.get_api_version() {
        12 => Ok(kvm),
        version => Err(VmError::KvmApi { path, version }),
    }
}

/// Name the fix for each way opening the KVM device fails.
fn kvm_open_error(path: String, source: kvm_ioctls::Error) -> VmError {
    match source.errno() {
        libc::ENOENT | libc::ENXIO | libc::ENODEV => VmError::KvmMissing { path, source },
        libc::EACCES | libc::EPERM => VmError::KvmPermission { path, source },
        _ => VmError::KvmOpen { path, source },
    }
}

fn load_guest(mem: &GuestMemoryMmap, path: &std::path::Path) -> Result<u64, VmError> {
    let bad = |reason: String| VmError::GuestImage {
        path: path.display().to_string(),
        reason,
    };
    let image =
        std::fs::read(path).map_err(|e| bad(format!("{e}: {}", crate::guest_image::NEEDS)))?;
    crate::guest_image::check(&image).map_err(bad)?;
    let mut file = std::io::Cursor::new(image);
    let res =
        Elf::load(mem, None, &mut file, Some(GuestAddress(1 << 20))).map_err(|e| match e {
            linux_loader::loader::Error::Elf(
                elf::Error::InvalidElfMagicNumber | elf::Error::ReadElfHeader,
            ) => bad("not an ELF file".into()),
            e => bad(format!("cannot load: {e}")),
        })?;
    Ok(res.kernel_load.0)
}

fn encode_boot_info(b: &BootInfo) -> Vec<u8> {
    let mut v = Vec::with_capacity(core::mem::size_of::<BootInfo>());
    v.extend_from_slice(&b.magic.to_le_bytes());
    v.extend_from_slice(&b.ncpus.to_le_bytes());
    v.extend_from_slice(&b.tsc_khz.to_le_bytes());
    v.extend_from_slice(&b.ram_size.to_le_bytes());
    v
}

/// Fill the payload pool through a small reused buffer: it stays in
/// cache, and only guest RAM takes page faults (a whole-pool Vec doubled
/// the VM's set-up time).
fn write_payload(mem: &GuestMemoryMmap, seed: u64) -> Result<(), VmError> {
    const CHUNK: u64 = 64 << 10;
    let mut buf = vec![0u8; CHUNK as usize];
    for off in (0..layout::PAYLOAD_SIZE).step_by(CHUNK as usize) {
        let n = CHUNK.min(layout::PAYLOAD_SIZE - off) as usize;
        crate::payload::fill_at(seed, off / 8, &mut buf[..n]);
        mem.write_slice(&buf[..n], GuestAddress(layout::PAYLOAD_BASE + off))
            .map_err(|e| VmError::Memory(e.to_string()))?;
    }
    Ok(())
}

impl Vm {
    /// Create the VM: memory, irqchip, vCPUs, boot state, guest image,
    /// payload pool, serial and control port.
    pub fn new(opts: &RunOptions) -> Result<Self, VmError> {
        let kvm_sys = open_kvm()?;
        let vm_fd = Arc::new(kvm_sys.create_vm().map_err(kvm("KVM_CREATE_VM"))?);
        let mem =
            GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), layout::RAM_SIZE as usize)])
                .map_err(|e| VmError::Memory(e.to_string()))?;
        let host = mem
            .get_host_address(GuestAddress(0))
            .map_err(|e| VmError::Memory(e.to_string()))?;
        let region = kvm_userspace_memory_region {
            slot: 0,
            guest_phys_addr: 0,
            memory_size: layout::RAM_SIZE,
            userspace_addr: host as u64,
            flags: 0,
        };
        // SAFETY:
        // - `host` is the start of a live mmap of RAM_SIZE bytes owned by
        //   `mem`, which lives in the returned Vm as long as `vm_fd`.
        // - Slot 0 is the only slot and does not overlap anything.
        unsafe { vm_fd.set_user_memory_region(region) }
            .map_err(kvm("KVM_SET_USER_MEMORY_REGION"))?;
        vm_fd
            .set_tss_address(layout::KVM_TSS_ADDRESS)
            .map_err(kvm("KVM_SET_TSS_ADDR"))?;
        // Before any vCPU: PIC, IOAPIC and a LAPIC per vCPU.
        vm_fd.create_irq_chip().map_err(kvm("KVM_CREATE_IRQCHIP"))?;

        let entry = load_guest(&mem, &opts.guest)?;
        regs::write_page_tables(&mem)?;
        regs::write_gdt_idt(&mem)?;

        let supported = kvm_sys
            .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
            .map_err(kvm("KVM_GET_SUPPORTED_CPUID"))?;
        let tsc_deadline = kvm_sys.check_extension(Cap::TscDeadlineTimer);
        let mut vcpus = Vec::new();
        for cpu in 0..layout::NCPUS {
            let fd = vm_fd
                .create_vcpu(u64::from(cpu))
                .map_err(kvm("KVM_CREATE_VCPU"))?;
            let mut c = supported.clone();
            cpuid::patch(&mut c, cpu, layout::NCPUS, tsc_deadline);
            fd.set_cpuid2(&c).map_err(kvm("KVM_SET_CPUID2"))?;
            let entries = msr::boot_msr_entries();
            let msrs = Msrs::from_entries(&entries)
                .map_err(|e| VmError::Memory(format!("MSR list: {e:?}")))?;
            let written = fd.set_msrs(&msrs).map_err(kvm("KVM_SET_MSRS"))?;
            if written != entries.len() {
                return Err(VmError::Kvm {
                    what: "KVM_SET_MSRS (partial)",
                    source: kvm_ioctls::Error::new(libc::EINVAL),
                });
            }
            regs::set_fpu(&fd)?;
            regs::set_lint(&fd)?;
            vcpus.push(Some(fd));
        }
        // The boot CPU enters now; APs get their state on StartCpu.
        let bsp = vcpus[0].as_ref().expect("just pushed");
        regs::set_long_mode_sregs(bsp)?;
        regs::set_entry_regs(bsp, entry, layout::BOOT_STACK_TOP, 0)?;
        let tsc_khz = u64::from(bsp.get_tsc_khz().map_err(kvm("KVM_GET_TSC_KHZ"))?);

        let boot = BootInfo {
            magic: BOOT_INFO_MAGIC,
            ncpus: layout::NCPUS,
            tsc_khz,
            ram_size: layout::RAM_SIZE,
        };
        mem.write_slice(&encode_boot_info(&boot), GuestAddress(layout::BOOT_INFO))
            .map_err(|e| VmError::Memory(e.to_string()))?;
        write_payload(&mem, opts.seed)?;

        let config = RunConfig {
            magic: control::CONTROL_MAGIC,
            version: PROTOCOL_VERSION,
            scenario: opts.scenario as u32,
            driver_mutant: opts.driver_mutant as u32,
            seed: opts.seed,
            device_mutant: opts.device_mutant as u32,
            ncpus: layout::NCPUS,
            tsc_khz,
            knobs: opts.knobs,
            clock: opts.clock.abi(),
        };
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let (events, sim) = match opts.clock {
            ClockMode::Wall => (EventLog::new(), None),
            ClockMode::Virtual => {
                let now = Arc::new(AtomicU64::new(0));
                let sim = Arc::new(Sim::new(
                    layout::NCPUS,
                    opts.seed,
                    now.clone(),
                    mem.clone(),
                    stop.clone(),
                    tx.clone(),
                ));
                sim.set_msi(Arc::new(crate::irq::KvmMsi(vm_fd.clone())));
                sim.publish_clock();
                (EventLog::with_clock(now), Some(sim))
            }
        };
        let serial = SerialLog::default();
        let mut io = IoManager::new();
        io.register_pio(
            PioRange::new(PioAddress(COM1), COM1_LEN)?,
            Arc::new(Mutex::new(SerialDevice::new(serial.clone(), !opts.quiet))),
        )?;
        let hooks = MarkerHooks::default();
        let port = ControlPort::new(
            mem.clone(),
            layout::RAM_SIZE,
            config,
            events.clone(),
            tx.clone(),
            stop.clone(),
            hooks.clone(),
        )
        .with_sim(sim.clone());
        io.register_pio(
            PioRange::new(PioAddress(control::CONTROL_PORT), 8)?,
            Arc::new(Mutex::new(port)),
        )?;
        // The run's identity first, so a saved log is all `nicproof replay` needs.
        events.push(
            Source::Vmm,
            EventKind::Note {
                text: crate::replay::RunIdentity::of(opts).note(),
            },
        );
        // 0xcf8..0xcff stay unclaimed until the PCI bus is plugged in, so
        // every config read returns all ones: "no device here".
        events.push(
            Source::Vmm,
            EventKind::Note {
                text: format!(
                    "vm ready: entry {entry:#x}, {} cpus, tsc {tsc_khz} kHz, scenario {}, seed {}, bad-guest knob {}",
                    layout::NCPUS,
                    opts.scenario.name(),
                    opts.seed,
                    opts.knobs[knob::BAD_GUEST]
                ),
            },
        );
        Ok(Self {
            vm_fd,
            mem,
            events,
            io,
            stop,
            sim,
            hooks,
            vcpus,
            entry,
            serial,
            tx,
            rx,
            timeout: opts.timeout,
            kick_every: opts.kick_every,
            rips: vcpu::FinalRips::default(),
            gdb: opts.gdb.map(crate::gdb::listen).transpose()?,
            gdb_hub: None,
            _kvm: kvm_sys,
        })
    }

    /// Run `hook` on every known guest marker, after it is logged (the
    /// device's DMA monitor plugs in here).
    pub fn on_marker(&self, hook: MarkerHook) {
        self.hooks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(hook);
    }

    /// The guest's entry point.
    pub fn entry(&self) -> u64 {
        self.entry
    }

    /// Captured serial output.
    pub fn serial(&self) -> &SerialLog {
        &self.serial
    }

    fn spawn(
        &mut self,
        cpu: u32,
        fd: VcpuFd,
        io: &Arc<IoManager>,
    ) -> std::io::Result<JoinHandle<ExitCounts>> {
        let ctx = VcpuCtx {
            cpu,
            io: io.clone(),
            stop: self.stop.clone(),
            tx: self.tx.clone(),
            rips: self.rips.clone(),
            gdb: self.gdb_hub.clone(),
            sim: self.sim.clone(),
        };
        std::thread::Builder::new()
            .name(format!("vcpu{cpu}"))
            .spawn(move || vcpu::run_catching(fd, ctx))
    }

    fn start_ap(
        &mut self,
        cpu: u64,
        entry: u64,
        stack: u64,
        io: &Arc<IoManager>,
    ) -> Result<JoinHandle<ExitCounts>, String> {
        let idx = usize::try_from(cpu).map_err(|_| format!("StartCpu for cpu {cpu}"))?;
        let fd = match self.vcpus.get_mut(idx) {
            Some(slot) if idx > 0 => slot
                .take()
                .ok_or_else(|| format!("cpu {cpu} started twice"))?,
            _ => {
                return Err(format!(
                    "StartCpu for cpu {cpu}: only cpus 1..{} can be started",
                    layout::NCPUS
                ))
            }
        };
        let setup = || -> Result<(), VmError> {
            regs::set_long_mode_sregs(&fd)?;
            regs::set_entry_regs(&fd, entry, stack, cpu)?;
            // With an in-kernel irqchip, APs start UNINITIALIZED (waiting
            // for INIT/SIPI); RUNNABLE makes them run the state just set.
            fd.set_mp_state(kvm_mp_state {
                mp_state: KVM_MP_STATE_RUNNABLE,
            })
            .map_err(kvm("KVM_SET_MP_STATE"))
        };
        setup().map_err(|e| format!("starting cpu {cpu}: {e}"))?;
        self.spawn(idx as u32, fd, io)
            .map_err(|e| format!("spawning vcpu thread: {e}"))
    }

    /// Run until the guest powers off, fails, or the timeout passes.
    pub fn run(mut self) -> (Outcome, Stats) {
        let mut stats = Stats::default();
        if let Err(e) = vcpu::register_kick_handler() {
            return (
                Outcome::HostError {
                    message: format!("installing the vCPU kick handler: {e}"),
                },
                stats,
            );
        }
        let io = Arc::new(std::mem::take(&mut self.io));
        let mut gdb_thread = None;
        if let Some(listener) = self.gdb.take() {
            let hub = crate::gdb::Hub::new(self.mem.clone(), self.stop.clone());
            match crate::gdb::spawn_server(listener, hub.clone()) {
                Ok(t) => gdb_thread = Some(t),
                Err(e) => {
                    let message = format!("spawning the gdb thread: {e}");
                    return (Outcome::HostError { message }, stats);
                }
            }
            self.gdb_hub = Some(hub);
        }
        let mut threads = Vec::new();
        let mut protocol_errors = Vec::new();
        let start = Instant::now();
        let deadline = start + self.timeout;
        let bsp = self.vcpus[0]
            .take()
            .expect("boot cpu is created in Vm::new");
        let end = match self.spawn(0, bsp, &io) {
            Err(e) => End::HostError(format!("spawning vcpu thread: {e}")),
            Ok(t) => {
                threads.push(t);
                loop {
                    let left = deadline.saturating_duration_since(Instant::now());
                    let wait = self.kick_every.map_or(left, |k| k.min(left));
                    match self.rx.recv_timeout(wait) {
                        Ok(VmEvent::End(e)) => break e,
                        Ok(VmEvent::StartCpu { cpu, entry, stack }) => {
                            match self.start_ap(cpu, entry, stack, &io) {
                                Ok(t) => threads.push(t),
                                Err(e) => protocol_errors.push(e),
                            }
                        }
                        Ok(VmEvent::CpuOnline(cpu)) => stats.cpus_online.push(cpu),
                        Ok(VmEvent::Ready(at)) => {
                            stats
                                .boot_to_ready_ms
                                .get_or_insert(at.duration_since(start).as_secs_f64() * 1e3);
                        }
                        Ok(VmEvent::ProtocolError(e)) => protocol_errors.push(e),
                        Err(RecvTimeoutError::Timeout) if Instant::now() < deadline => {
                            // kick_every: a stray exit at whatever guest
                            // instruction each vCPU is at.
                            for t in &threads {
                                let _ = t.kill(vcpu::kick_signal());
                            }
                        }
                        Err(RecvTimeoutError::Timeout) => break End::Timeout,
                        Err(RecvTimeoutError::Disconnected) => {
                            break End::HostError("event channel closed".into())
                        }
                    }
                }
            }
        };
        stats.run_ms = start.elapsed().as_secs_f64() * 1e3;
        self.stop.store(true, Ordering::SeqCst);
        stats.clock = if self.sim.is_some() {
            "virtual"
        } else {
            "wall"
        }
        .into();
        if let Some(sim) = &self.sim {
            sim.shutdown();
        }
        let stuck = stop_threads(threads, &mut stats);
        if let Some(t) = gdb_thread {
            // Let gdb hear that the run ended ("exited") before the process
            // does; a gdb that sits stopped at its prompt is not waited for.
            let grace = Instant::now() + Duration::from_secs(2);
            while !t.is_finished() && Instant::now() < grace {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        stats.vcpu_rips = self.rips.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(sim) = &self.sim {
            // After the vCPU threads ended: the last exit is charged.
            let s = sim.stats();
            stats.virtual_ms = Some(s.virtual_ns as f64 / 1e6);
            stats.idle_jumps = s.jumps;
            stats.skipped_ms = s.skipped_ns as f64 / 1e6;
            stats.sched_choices = s.choices;
            stats.sched_switches = s.switches;
        }
        stats.events = self.events.len();
        let mut outcome = match end {
            End::Timeout => Outcome::Timeout {
                limit_secs: self.timeout.as_secs_f64(),
                last_serial: self.serial.tail(10),
                last_events: self.events.tail(10),
            },
            end => crate::judge::outcome(end, &self.events, &protocol_errors),
        };
        if stuck > 0 && matches!(outcome, Outcome::Passed) {
            outcome = Outcome::HostError {
                message: format!("{stuck} vCPU thread(s) did not stop"),
            };
        }
        (outcome, stats)
    }
}

/// Kick every vCPU thread until it returns, then merge the exit counts.
/// Returns how many threads were still running after the grace period.
fn stop_threads(threads: Vec<JoinHandle<ExitCounts>>, stats: &mut Stats) -> usize {
    let grace = Instant::now() + Duration::from_secs(2);
    let mut stuck = 0;
    for t in threads {
        // Repeat the kick: one sent between the stop check and KVM_RUN is
        // covered by immediate_exit, but repeating costs nothing and also
        // covers a thread that had not installed its kvm_run pointer yet.
        while !t.is_finished() && Instant::now() < grace {
            let _ = t.kill(vcpu::kick_signal());
            std::thread::sleep(Duration::from_millis(1));
        }
        if !t.is_finished() {
            stuck += 1;
            continue; // detach rather than hang the host
        }
        if let Ok(counts) = t.join() {
            for (k, v) in counts {
                *stats.exits.entry(k).or_insert(0) += v;
            }
        }
    }
    stuck
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kvm_open_errors_say_how_to_fix_them() {
        let msg =
            |errno| kvm_open_error("/dev/kvm".into(), kvm_ioctls::Error::new(errno)).to_string();
        assert!(
            msg(libc::ENOENT).contains("modprobe kvm_intel"),
            "{}",
            msg(libc::ENOENT)
        );
        assert!(msg(libc::EACCES).contains("kvm group") && msg(libc::EACCES).contains("root"));
        assert!(msg(libc::EBUSY).starts_with("cannot open /dev/kvm"));
    }
}
