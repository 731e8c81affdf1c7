//! The nicproof guest kernel binary: entry, platform, then the library.
//!
//! Boot (boot CPU): GS/GDT/IDT, control-port probe, run configuration,
//! TSC rate, x2APIC, heap, logger, then a `Ready` record; then the
//! bad-guest switch and the scenario. Application processors come up in
//! [`boot::ap_main`] and serve their `kernel::smp` mailbox.
//!
//! Every guest instruction costs about 1 µs on this machine's KVM, so the
//! path to `Ready` avoids loops, logging and big memory writes.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "nicproof-guest is a guest kernel: build it with `make guest` (target x86_64-unknown-none)"
    );
    std::process::exit(2);
}

#[cfg(target_os = "none")]
mod arch;

#[cfg(target_os = "none")]
mod boot {
    extern crate alloc;

    use crate::arch::x86_64::logger::FmtBuf;
    use crate::arch::x86_64::platform::{self, KernelPlatform};
    use crate::arch::x86_64::{apic, control, cpu, entry, idt, logger, percpu, pit, serial, user};
    use alloc::string::String;
    use core::fmt::Write;
    use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
    use linked_list_allocator::LockedHeap;
    use log::{error, info, warn};
    use nicproof_guest::abi::control::CONTROL_MAGIC;
    use nicproof_guest::abi::{
        knob, layout, sched, BadGuest, BootInfo, Marker, RunConfig, Scenario, BAD_GUEST_FAULT_ADDR,
        BAD_GUEST_PANIC_MSG, BOOT_INFO_MAGIC, PROTOCOL_VERSION, PVH_START_MAGIC,
    };
    use nicproof_guest::kernel::irq::{self, VECTOR_TIMER, VECTOR_WAKE};
    use nicproof_guest::kernel::record::{self, exit_code};
    use nicproof_guest::kernel::smp::{self, MAX_CPUS};
    use nicproof_guest::kernel::time::TscClock;
    use nicproof_guest::platform::Platform;

    #[global_allocator]
    static HEAP: LockedHeap = LockedHeap::empty();

    /// How the kernel was entered and what the loader told it.
    enum BootSource {
        /// The nicproof VMM's direct 64-bit entry with its BootInfo.
        Direct(BootInfo),
        /// PVH (QEMU): address of the NUL-terminated command line, or 0.
        Pvh { cmdline: u64 },
        /// Neither magic matched.
        Unknown,
    }

    fn boot_source(ptr: u64) -> BootSource {
        if ptr == 0 || ptr >= layout::IDENTITY_MAP_SIZE {
            return BootSource::Unknown;
        }
        // SAFETY: below 4 GiB is identity mapped; both structures start
        // with a u32 magic, and the loader put one of them at `ptr`.
        let magic = unsafe { core::ptr::read_volatile(ptr as *const u32) };
        match magic {
            BOOT_INFO_MAGIC => {
                // SAFETY: the magic says a BootInfo is there.
                BootSource::Direct(unsafe { core::ptr::read_volatile(ptr as *const BootInfo) })
            }
            // hvm_start_info: cmdline_paddr is the u64 at offset 24.
            // SAFETY: the magic says an hvm_start_info is there.
            PVH_START_MAGIC => BootSource::Pvh {
                cmdline: unsafe { core::ptr::read_volatile((ptr + 24) as *const u64) },
            },
            _ => BootSource::Unknown,
        }
    }

    /// Run configuration from a QEMU `-append` line: `scenario=NAME
    /// bad-guest=NAME echo=N ncpus=N` (ncpus must match `-smp`); unknown
    /// words are ignored.
    fn config_from_cmdline(addr: u64) -> RunConfig {
        let mut cfg = RunConfig {
            magic: CONTROL_MAGIC,
            version: PROTOCOL_VERSION,
            scenario: Scenario::Empty as u32,
            ncpus: 1,
            ..RunConfig::default()
        };
        if addr == 0 || addr >= layout::IDENTITY_MAP_SIZE {
            return cfg;
        }
        // SAFETY: identity-mapped RAM; the loader wrote a C string there.
        // The length is bounded, so a missing NUL cannot run away.
        let bytes = unsafe { core::slice::from_raw_parts(addr as *const u8, 512) };
        let len = bytes.iter().position(|&b| b == 0).unwrap_or(0);
        let line = core::str::from_utf8(&bytes[..len]).unwrap_or("");
        for word in line.split_ascii_whitespace() {
            let Some((k, v)) = word.split_once('=') else {
                continue;
            };
            match k {
                "scenario" => {
                    if let Some(s) = Scenario::from_name(v) {
                        cfg.scenario = s as u32;
                    }
                }
                "bad-guest" => {
                    if let Some(b) = BadGuest::from_name(v) {
                        cfg.knobs[knob::BAD_GUEST] = b as u64;
                    }
                }
                "echo" => cfg.knobs[knob::ECHO] = v.parse().unwrap_or(0),
                "ncpus" => cfg.ncpus = v.parse().unwrap_or(1),
                _ => {}
            }
        }
        cfg
    }

    /// vCPUs the VMM created (BootInfo, else RunConfig; 1 under QEMU).
    static NCPUS: AtomicU32 = AtomicU32::new(1);

    fn kick(cpu: u32) {
        if platform::virtual_clock() {
            platform::ipi_request(cpu, VECTOR_WAKE);
        } else {
            if user::at_cpl3() {
                user::syscall(user::op::IPI, cpu as u64, VECTOR_WAKE as u64);
            } else {
                apic::send_ipi(cpu, VECTOR_WAKE);
            }
        }
    }

    /// smp's spin-wait hook: under the VMM's scheduler only one CPU runs,
    /// so a spinning CPU must hand over to the one it waits for.
    fn relax() {
        if platform::virtual_clock() {
            platform::yield_request();
        } else {
            core::hint::spin_loop();
        }
    }

    /// smp's start hook. Under nicproof: ask the VMM (StartCpu) to enter
    /// `cpu` in 64-bit mode at the AP entry on its own stack. Under QEMU:
    /// INIT-SIPI through a real-mode trampoline (the `ncpus=` word of the
    /// command line says how many CPUs `-smp` gave).
    fn start_cpu(cpu: u32) -> bool {
        if cpu == 0 || cpu as usize >= MAX_CPUS || cpu >= NCPUS.load(Ordering::Relaxed) {
            return false;
        }
        if control::present() {
            control::send(&record::start_cpu(
                cpu as u64,
                entry::ap_entry_address(),
                entry::stack_top(cpu),
            ));
            return true;
        }
        if !apic::available() {
            return false;
        }
        let code = entry::trampoline();
        // SAFETY: TRAMPOLINE_ADDR is low RAM the PVH path does not use (the
        // boot stack is at 6 MiB, start_info was read at boot); copying the
        // same bytes again for a second AP is harmless.
        unsafe {
            core::ptr::copy_nonoverlapping(
                code.as_ptr(),
                entry::TRAMPOLINE_ADDR as *mut u8,
                code.len(),
            )
        };
        apic::send_init_sipi(cpu, (entry::TRAMPOLINE_ADDR >> 12) as u8);
        true
    }

    /// Boot CPU entry (from `_start`): rdi = boot info, rsi = CPU index.
    pub extern "C" fn kmain(boot_ptr: u64, _cpu: u64) -> ! {
        percpu::init(0);
        entry::paint_stack_canary(0);
        idt::check();
        idt::load();
        let source = boot_source(boot_ptr);
        let port = control::detect();
        let cfg = if port {
            control::read_config()
        } else {
            match source {
                BootSource::Pvh { cmdline } => Ok(config_from_cmdline(cmdline)),
                _ => Ok(config_from_cmdline(0)),
            }
        };
        let (info_khz, info_cpus) = match &source {
            BootSource::Direct(bi) => (bi.tsc_khz, bi.ncpus),
            _ => (0, 0),
        };
        let cfg_khz = cfg.as_ref().map(|c| c.tsc_khz).unwrap_or(0);
        let tsc_khz = [info_khz, cfg_khz]
            .into_iter()
            .find(|&k| k != 0)
            .or_else(pit::calibrate_tsc_khz);
        // Time must advance even without a known rate, or every bounded
        // wait would spin forever: guess 1 GHz and say so (boot fails on it).
        let clock = tsc_khz.and_then(TscClock::new);
        CLOCK_GUESSED.store(clock.is_none(), Ordering::Relaxed);
        platform::set_clock(
            clock
                .or(TscClock::new(1_000_000))
                .expect("1 GHz is a valid TSC rate"),
        );
        platform::set_virtual_clock(
            cfg.as_ref()
                .is_ok_and(|c| port && c.clock == sched::CLOCK_VIRTUAL),
        );
        apic::probe();
        apic::init_cpu();
        apic::mask_pic();
        // SAFETY: the heap range is RAM reserved for it in abi::layout,
        // used by nothing else; initialised once, before any allocation.
        unsafe {
            HEAP.lock()
                .init(layout::HEAP_BASE as *mut u8, layout::HEAP_SIZE as usize)
        };
        logger::init(log::LevelFilter::Info);
        let ncpus = if info_cpus != 0 {
            info_cpus
        } else {
            cfg.as_ref().map(|c| c.ncpus).unwrap_or(1)
        };
        NCPUS.store(ncpus.max(1), Ordering::Relaxed);
        smp::install_hooks(smp::Hooks {
            kick,
            current: percpu::cpu_id,
            start: start_cpu,
            relax,
        });
        if CLOCK_GUESSED.load(Ordering::Relaxed) {
            warn!("TSC rate unknown: assuming 1 GHz");
        }

        let pvh = matches!(source, BootSource::Pvh { .. });
        let scenario = cfg.as_ref().map(|c| c.scenario as u64).unwrap_or(u64::MAX);
        // The TSC is wall time: in deterministic mode send the virtual time.
        let stamp = if platform::virtual_clock() {
            KernelPlatform.now_ns()
        } else {
            cpu::rdtsc()
        };
        control::send(&record::ready(scenario, tsc_khz.unwrap_or(0), pvh, stamp));

        let p = KernelPlatform;
        let cfg = match cfg {
            Ok(c) => c,
            Err(e) => {
                let mut b = FmtBuf::<96>::new();
                let _ = write!(b, "run configuration unusable: {e:?}");
                finish(false, b.as_str());
            }
        };
        if !port {
            let mut b = FmtBuf::<160>::new();
            let _ = write!(
                b,
                "nicproof guest: {} boot, no control port, scenario {}, TSC {} kHz",
                if pvh { "PVH" } else { "direct" },
                Scenario::from_u32(cfg.scenario)
                    .map(|s| s.name())
                    .unwrap_or("?"),
                tsc_khz.unwrap_or(0)
            );
            info!("{}", b.as_str());
        }
        if cfg.knobs[knob::CPL] == 3 {
            // From here on this CPU runs the task at CPL3 (user.rs); CPUs
            // started later follow (ap_main).
            TASK_CPL3.store(true, Ordering::Relaxed);
            user::enter(0);
        }
        bad_guest(cfg.knobs[knob::BAD_GUEST]);
        let (pass, reason) = run_scenario(&p, &cfg, NCPUS.load(Ordering::Relaxed));
        finish(pass, reason.as_str())
    }

    /// Report the verdict and power off.
    fn finish(mut pass: bool, mut reason: &str) -> ! {
        for cpu in 0..MAX_CPUS as u32 {
            if (cpu == 0 || smp::is_online(cpu)) && !entry::stack_canary_intact(cpu) {
                error!("cpu{} overflowed its stack (canary overwritten)", cpu);
                (pass, reason) = (false, "a CPU overflowed its stack");
            }
        }
        control::send(&record::verdict(pass, reason));
        if !control::present() {
            serial::write_parts(&[
                "VERDICT ",
                if pass { "pass: " } else { "fail: " },
                reason,
                "\n",
            ]);
        }
        control::power_off(if pass {
            exit_code::PASS
        } else {
            exit_code::FAIL
        })
    }

    /// Dispatch by scenario: `empty` and `boot` exercise the kernel
    /// itself; every NIC scenario belongs to `nicproof_guest::scenarios`.
    fn run_scenario(p: &KernelPlatform, cfg: &RunConfig, ncpus: u32) -> (bool, Cow) {
        match Scenario::from_u32(cfg.scenario) {
            Some(Scenario::Empty) => (true, Cow::Static("empty: booted")),
            Some(Scenario::Boot) => match scenario_boot(p, cfg, ncpus) {
                Ok(()) => (
                    true,
                    Cow::Static("boot: echo, timer, CPU 1 and wake IPIs work"),
                ),
                Err(why) => (false, Cow::Static(why)),
            },
            Some(_) => match nicproof_guest::scenarios::run(p, cfg) {
                Some(v) => (v.pass, Cow::Owned(v.text)),
                None => (
                    false,
                    Cow::Static("scenario has no body in nicproof_guest::scenarios"),
                ),
            },
            None => (false, Cow::Static("unknown scenario id")),
        }
    }

    /// A verdict text: static, or built by a scenario on the heap.
    enum Cow {
        Static(&'static str),
        Owned(String),
    }

    impl Cow {
        fn as_str(&self) -> &str {
            match self {
                Cow::Static(s) => s,
                Cow::Owned(s) => s,
            }
        }
    }

    /// Set (boot CPU, before any other starts) when the driver task runs
    /// at CPL3 (`abi::knob::CPL`).
    static TASK_CPL3: AtomicBool = AtomicBool::new(false);

    /// Set when the TSC rate is a guess (see kmain).
    static CLOCK_GUESSED: AtomicBool = AtomicBool::new(false);

    /// Result of the CPU 1 job: (CPU it ran on) << 32 | (arg + 1).
    static JOB_RESULT: AtomicU64 = AtomicU64::new(0);

    fn boot_job(arg: usize) {
        let v = (percpu::cpu_id() as u64) << 32 | (arg as u64 + 1);
        JOB_RESULT.store(v, Ordering::Release);
    }

    fn scenario_boot(p: &KernelPlatform, cfg: &RunConfig, ncpus: u32) -> Result<(), &'static str> {
        p.marker(Marker::Echo, &[cfg.knobs[knob::ECHO]]);

        // The timer: sleep 2 ms; the wake-up must come from the timer.
        if CLOCK_GUESSED.load(Ordering::Relaxed) {
            return Err("boot: TSC rate unknown (neither boot info nor PIT gave it)");
        }
        // If the host deschedules this vCPU for the whole 2 ms before the
        // first sleep, the loop never sleeps and no timer fires: that says
        // nothing about the timer, so try again (a few times, bounded).
        let (mut slept, mut fired, mut sleeps) = (0, 0, 0u32);
        for _attempt in 0..5 {
            let t0 = p.now_ns();
            let fired0 = irq::count(VECTOR_TIMER);
            let deadline = t0 + 2_000_000;
            sleeps = 0;
            while p.now_ns() < deadline && sleeps < 1000 {
                p.wait_until(deadline);
                sleeps += 1;
            }
            slept = p.now_ns() - t0;
            fired = irq::count(VECTOR_TIMER).wrapping_sub(fired0);
            if sleeps > 0 {
                break;
            }
        }
        info!(
            "boot: slept {} us for 2000 us: {} timer irqs, {} sleeps",
            slept / 1000,
            fired,
            sleeps
        );
        if slept < 2_000_000 {
            return Err("boot: wait_until gave up before the deadline");
        }
        // In deterministic mode the VMM's scheduler wakes the idle CPU
        // at its deadline: no timer interrupt is involved.
        if apic::available() && !platform::virtual_clock() && fired == 0 {
            return Err("boot: the x2APIC timer never fired");
        }

        // CPU 1: start it, run a job on it, check the result.
        if ncpus < 2 {
            return Err("boot: needs 2 vCPUs (under QEMU: -smp 2 and ncpus=2)");
        }
        let t1 = p.now_ns();
        match smp::start(p, 1, 2_000_000_000) {
            Ok(()) => {}
            Err(smp::SmpError::StartTimeout(_)) => {
                return Err("boot: CPU 1 did not come online within 2 s")
            }
            Err(_) => return Err("boot: CPU 1 cannot be started"),
        }
        let t2 = p.now_ns();
        let ticket = smp::post(1, boot_job, 41).map_err(|_| "boot: could not post to CPU 1")?;
        if !smp::wait_done(p, ticket, 2_000_000_000) {
            return Err("boot: the job on CPU 1 did not finish within 2 s");
        }
        let t3 = p.now_ns();
        check_job(41)?;
        // CPU 1 may have found the first job before it ever slept. Give it
        // 1 ms to reach `hlt`, so the second job can only start if the wake
        // IPI is delivered.
        let nap = p.now_ns() + 1_000_000;
        while p.now_ns() < nap {
            p.wait_until(nap);
        }
        let t4 = p.now_ns();
        let ticket =
            smp::post(1, boot_job, 99).map_err(|_| "boot: could not post a second job to CPU 1")?;
        if !smp::wait_done(p, ticket, 2_000_000_000) {
            return Err(
                "boot: a job posted to a sleeping CPU 1 did not finish within 2 s (wake IPI lost?)",
            );
        }
        let t5 = p.now_ns();
        check_job(99)?;
        info!(
            "boot: CPU 1 online after {} us; job round trips {} us (awake) and {} us (asleep); wake IPIs {}",
            (t2 - t1) / 1000,
            (t3 - t2) / 1000,
            (t5 - t4) / 1000,
            irq::count(VECTOR_WAKE)
        );
        Ok(())
    }

    fn check_job(arg: u64) -> Result<(), &'static str> {
        let r = JOB_RESULT.load(Ordering::Acquire);
        if r & 0xffff_ffff != arg + 1 {
            return Err("boot: the CPU 1 job did not compute arg + 1");
        }
        if r >> 32 != 1 {
            return Err("boot: the job ran on the wrong CPU");
        }
        Ok(())
    }

    /// Deliberately bad guests (abi::BadGuest), for the VMM's outcome tests.
    fn bad_guest(knob: u64) {
        match BadGuest::from_u64(knob) {
            None | Some(BadGuest::None) => {}
            Some(BadGuest::Panic) => panic!("{}", BAD_GUEST_PANIC_MSG),
            Some(BadGuest::PageFault) => {
                warn!("bad guest: reading unmapped {:#x}", BAD_GUEST_FAULT_ADDR);
                // SAFETY: not safe at all, on purpose: the address is above
                // the identity map, so this takes #PF, which the exception
                // path reports before powering off.
                let v = unsafe { core::ptr::read_volatile(BAD_GUEST_FAULT_ADDR as *const u64) };
                // Unreachable in practice; keeps the read from being elided.
                error!("bad guest: read {v:#x} from an unmapped address");
            }
            Some(BadGuest::TripleFault) => {
                warn!("bad guest: triple fault");
                if user::at_cpl3() {
                    user::syscall(user::op::LOAD_EMPTY_IDT, 0, 0);
                } else {
                    idt::load_empty();
                }
                // SAFETY: on purpose: with an empty IDT, #UD escalates to
                // #GP, #DF and a triple fault (the VMM sees a shutdown).
                unsafe { core::arch::asm!("ud2", options(nomem, nostack)) };
            }
            Some(BadGuest::EndlessLoop) => {
                warn!("bad guest: endless loop with interrupts off");
                // The CPL3 task already runs with IF = 0 (and may not cli).
                if !user::at_cpl3() {
                    cpu::cli();
                }
                loop {
                    core::hint::spin_loop();
                }
            }
            Some(BadGuest::Deadlock) => deadlock(),
        }
    }

    /// Set by CPU 0 once it saw CPU 1's flag, and the other way round:
    /// each waits for the other's first, so neither is ever set.
    static DEADLOCK_FLAGS: [AtomicBool; 2] = [AtomicBool::new(false), AtomicBool::new(false)];

    /// One side of the circular wait: wait (no deadline) for the other
    /// CPU's flag, then set ours.
    fn wait_for_the_other(me: usize) {
        let p = KernelPlatform;
        while !DEADLOCK_FLAGS[1 - me].load(Ordering::Acquire) {
            p.wait_until(u64::MAX);
        }
        DEADLOCK_FLAGS[me].store(true, Ordering::Release);
    }

    fn deadlock_job(_: usize) {
        wait_for_the_other(1);
    }

    /// The deadlock bad guest: CPU 1 and CPU 0 each wait for the other
    /// with no deadline. The virtual clock's scheduler ends the run as a
    /// deadlock naming both rips; the wall clock's waits wake every
    /// 100 ms and loop until the run's timeout.
    fn deadlock() {
        warn!("bad guest: both CPUs wait for each other");
        let p = KernelPlatform;
        if smp::start(&p, 1, 2_000_000_000).is_err() || smp::post(1, deadlock_job, 0).is_err() {
            panic!("bad guest deadlock: cannot start CPU 1");
        }
        wait_for_the_other(0);
        error!("bad guest: the circular wait ended");
    }

    /// Application processor entry (from `nicproof_ap_entry`).
    pub extern "C" fn ap_main(_boot_ptr: u64, cpu: u64) -> ! {
        if cpu == 0 || cpu >= MAX_CPUS as u64 {
            cpu::halt_forever();
        }
        let cpu = cpu as u32;
        percpu::init(cpu);
        entry::paint_stack_canary(cpu);
        idt::load();
        apic::init_cpu();
        control::send(&record::cpu_online(cpu as u64));
        if TASK_CPL3.load(Ordering::Relaxed) {
            user::enter(cpu);
        }
        smp::set_online(cpu);
        loop {
            // IF is 0 here: a kick that arrives after this check stays
            // pending and ends the hlt below.
            if !smp::run_pending(cpu) {
                if platform::virtual_clock() {
                    platform::idle_request(u64::MAX);
                } else if user::at_cpl3() {
                    user::syscall(user::op::HLT, 0, 0);
                } else {
                    cpu::sti_hlt_cli();
                }
            }
        }
    }

    #[panic_handler]
    fn panic(info: &core::panic::PanicInfo) -> ! {
        if !percpu::enter_fatal() {
            control::power_off(exit_code::PANIC);
        }
        let mut msg = FmtBuf::<512>::new();
        let _ = write!(msg, "{}", info.message());
        let (file, line, col) = info
            .location()
            .map(|l| (l.file(), l.line(), l.column()))
            .unwrap_or(("?", 0, 0));
        control::send(&record::panic(msg.as_str(), file, line, col));
        let mut head = FmtBuf::<160>::new();
        let _ = write!(
            head,
            "PANIC cpu{} at {}:{}:{}: ",
            percpu::cpu_id(),
            file,
            line,
            col
        );
        serial::write_unlocked(head.as_str());
        serial::write_unlocked(msg.as_str());
        serial::write_unlocked("\n");
        control::power_off(exit_code::PANIC)
    }
}
