//! The one result of a run: what happened, for humans and as JSON, with a
//! distinct process exit code per kind.

use std::collections::BTreeMap;
use std::fmt;

use nic_model::events::Event;
use serde::{Deserialize, Serialize};

use crate::symbols::CodeLocation;

/// General-purpose registers and control state at a triple fault.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegsDump {
    /// Instruction pointer.
    pub rip: u64,
    /// Stack pointer.
    pub rsp: u64,
    /// Flags register.
    pub rflags: u64,
    /// General-purpose register rax.
    pub rax: u64,
    /// General-purpose register rbx.
    pub rbx: u64,
    /// General-purpose register rcx.
    pub rcx: u64,
    /// General-purpose register rdx.
    pub rdx: u64,
    /// General-purpose register rsi.
    pub rsi: u64,
    /// General-purpose register rdi.
    pub rdi: u64,
    /// Frame pointer.
    pub rbp: u64,
    /// Control register 0 (protection and paging enables).
    pub cr0: u64,
    /// Control register 2: the last page-fault address.
    pub cr2: u64,
    /// Control register 3: the page-table root.
    pub cr3: u64,
    /// Control register 4 (PAE, and other extension enables).
    pub cr4: u64,
    /// Extended feature enable register (long mode).
    pub efer: u64,
    /// Interrupt descriptor table base address.
    pub idt_base: u64,
    /// Interrupt descriptor table limit (size - 1, in bytes).
    pub idt_limit: u16,
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum Outcome {
    /// Guest verdict pass, power-off 0, no host-side violation.
    Passed,
    /// The run finished but something is wrong; every reason is listed.
    Failed {
        /// Every reason, one line each, for humans.
        reasons: Vec<String>,
    },
    /// The guest panicked.
    GuestPanic {
        /// The panic message the guest sent.
        message: String,
        /// The guest source location (`file:line:col`) of the panic.
        location: String,
    },
    /// The guest reported an unhandled CPU exception.
    CpuException {
        /// Exception vector (e.g. 14 for a page fault).
        vector: u64,
        /// The error code the CPU pushed (0 for vectors without one).
        error_code: u64,
        /// Guest rip of the faulting instruction.
        rip: u64,
        /// cr2 at the exception: the faulting address of a page fault.
        cr2: u64,
        /// The vCPU that took it.
        cpu: u64,
    },
    /// A vCPU shut down (triple fault).
    TripleFault {
        /// The vCPU that shut down.
        cpu: u32,
        /// Its registers at the shutdown exit.
        regs: RegsDump,
    },
    /// The wall-clock limit passed first.
    Timeout {
        /// The wall-clock limit that passed, in seconds.
        limit_secs: f64,
        /// The last lines of serial output, to show where the guest was.
        last_serial: Vec<String>,
        /// The last events of the log, to show what the device last saw.
        last_events: Vec<Event>,
    },
    /// The host could not run the VM (set-up error, KVM error, bad input).
    HostError {
        /// What failed on the host, for humans.
        message: String,
    },
    /// `--gdb PORT` could not listen (the port is in use, say): its own
    /// outcome and exit code, so a script can pick another port.
    GdbCannotListen {
        /// Which port and why, for humans.
        message: String,
    },
    /// Deterministic mode: every vCPU waited (idle with no deadline) and
    /// no device timer was due, so nothing could ever run again.
    Deadlock {
        /// Every waiting vCPU and where it idled.
        cpus: Vec<IdleCpu>,
    },
}

/// A vCPU waiting at a scheduler deadlock: where it asked to idle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdleCpu {
    /// The vCPU index.
    pub cpu: u32,
    /// Guest rip of its idle request.
    pub rip: u64,
}

impl Outcome {
    /// Process exit code; documented in `--help` and README.
    pub fn exit_code(&self) -> i32 {
        match self {
            Outcome::Passed => 0,
            Outcome::Failed { .. } => 1,
            Outcome::GuestPanic { .. } => 2,
            Outcome::CpuException { .. } => 3,
            Outcome::TripleFault { .. } => 4,
            Outcome::Timeout { .. } => 5,
            Outcome::HostError { .. } => 6,
            Outcome::Deadlock { .. } => 8,
            Outcome::GdbCannotListen { .. } => 9,
        }
    }

    /// Short kebab-case name.
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Passed => "passed",
            Outcome::Failed { .. } => "failed",
            Outcome::GuestPanic { .. } => "guest-panic",
            Outcome::CpuException { .. } => "cpu-exception",
            Outcome::TripleFault { .. } => "triple-fault",
            Outcome::Timeout { .. } => "timeout",
            Outcome::HostError { .. } => "host-error",
            Outcome::GdbCannotListen { .. } => "gdb-cannot-listen",
            Outcome::Deadlock { .. } => "deadlock",
        }
    }
}

/// Exit code for a command line the VMM could not accept.
pub const EXIT_USAGE: i32 = 7;

/// Measurements of one run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Building the VM: KVM set-up, image load, payload fill.
    #[serde(default)]
    pub setup_ms: f64,
    /// From the boot CPU's first KVM_RUN to the guest's Ready record.
    pub boot_to_ready_ms: Option<f64>,
    /// From the boot CPU's first KVM_RUN to the end of the run.
    pub run_ms: f64,
    /// VM exits seen by userspace, per reason, all vCPUs.
    pub exits: BTreeMap<String, u64>,
    /// Application processors (vCPUs other than the boot vCPU 0) whose
    /// guest code reported CpuOnline, in arrival order. The boot vCPU never
    /// sends one, so a run on the boot vCPU alone leaves this empty.
    pub cpus_online: Vec<u64>,
    /// Events in the log.
    pub events: usize,
    /// Each vCPU's rip when the run stopped it, by vCPU index (a
    /// timeout's report names where every vCPU was).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub vcpu_rips: BTreeMap<u32, u64>,
    /// Which clock ran: `wall` or `virtual` (`sim::ClockMode`).
    #[serde(default)]
    pub clock: String,
    /// Deterministic mode: virtual time at the end, in ms.
    #[serde(default)]
    pub virtual_ms: Option<f64>,
    /// Deterministic mode: idle jumps (the clock moved to the next deadline
    /// because every vCPU waited).
    #[serde(default)]
    pub idle_jumps: u64,
    /// Deterministic mode: virtual ms the idle jumps skipped.
    #[serde(default)]
    pub skipped_ms: f64,
    /// Deterministic mode: scheduler choices between two or more vCPUs.
    #[serde(default)]
    pub sched_choices: u64,
    /// Deterministic mode: priority changes among the vCPUs.
    #[serde(default)]
    pub sched_switches: u64,
}

impl Stats {
    /// The report's clock line.
    pub fn clock_line(&self) -> String {
        match self.virtual_ms {
            Some(v) => format!(
                "virtual ({v:.3} ms of virtual time; {} idle jumps skipped {:.3} ms; \
                 one vCPU at a time, {} scheduler choices, {} priority changes)",
                self.idle_jumps, self.skipped_ms, self.sched_choices, self.sched_switches
            ),
            None if self.clock.is_empty() => "wall".into(),
            None => self.clock.clone(),
        }
    }

    /// Total exits.
    pub fn total_exits(&self) -> u64 {
        self.exits.values().sum()
    }

    /// Which vCPUs ran guest code, in words, for the report
    /// (`cpus_online` alone printed `[]` for a normal one-vCPU run).
    pub fn vcpus(&self) -> String {
        if self.cpus_online.is_empty() {
            // run_ms is measured from the first KVM_RUN: exactly zero
            // means the VM never ran (a host error during set-up).
            if self.run_ms == 0.0 {
                return "none ran".into();
            }
            return "boot vCPU 0 only (the guest started no other)".into();
        }
        let aps: Vec<String> = self.cpus_online.iter().map(u64::to_string).collect();
        format!("boot vCPU 0, and {} started by the guest", aps.join(", "))
    }
}

/// One named finding of a run: which oracle or monitor rule saw what, at
/// which event. The matrix judges `Expect::Caught` on these instead of
/// parsing the human reason texts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// The name of the rule broken (`nic_model::rules::Rule::name`): a
    /// host oracle, a device monitor rule, `guest-verdict` (the guest's
    /// failing verdict, detail = its text) or `device-live-maps`.
    pub oracle: String,
    /// Sequence number of the event that shows it.
    pub seq: u64,
    /// What went wrong, for humans (guest oracles: the guest's text).
    pub detail: String,
}

impl Finding {
    /// The catalogue's rule this finding names (None: a name the
    /// catalogue lacks, e.g. from a report of another version).
    pub fn rule(&self) -> Option<nic_model::rules::Rule> {
        nic_model::rules::Rule::from_name(&self.oracle)
    }
}

/// Everything a run reports.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The scenario's name.
    pub scenario: String,
    /// The run's seed (guest choices, payload bytes, vCPU schedule).
    pub seed: u64,
    /// The driver mutant's name (`none` for the correct driver).
    pub driver_mutant: String,
    /// The device mutant's name (`none` for the correct device).
    pub device_mutant: String,
    /// How the run ended (flattened into the report's JSON).
    #[serde(flatten)]
    pub outcome: Outcome,
    /// Counters and timings of the run.
    pub stats: Stats,
    /// The findings behind a `failed` outcome, structured (empty when the
    /// run passed or ended another way).
    #[serde(default)]
    pub findings: Vec<Finding>,
    /// Everything the guest wrote to COM1.
    #[serde(default)]
    pub serial: String,
    /// The guest addresses the outcome names (an exception's rip, a
    /// triple fault's, each vCPU's at a timeout) with function and
    /// file:line from the guest's symbols.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub locations: Vec<CodeLocation>,
    /// The rest of what picks the run (with scenario, seed and mutants
    /// above), so a saved report says how to run it again.
    #[serde(flatten, default)]
    pub settings: RunSettings,
}

/// The settings of a run beyond scenario, seed and mutants.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSettings {
    /// Knobs the guest got that are not zero, by `--knob` name (the
    /// scenario's own set-up merged with the command line's).
    #[serde(default)]
    pub knobs: BTreeMap<String, u64>,
    /// Where transmitted frames went, as `--backend` takes it (empty: no NIC).
    #[serde(default)]
    pub backend: String,
    /// Which clock the device and guest ran on: `virtual` (the VMM's,
    /// deterministic) or `wall` (host wall time); `--clock` takes it.
    #[serde(default)]
    pub clock: String,
}

impl RunSettings {
    /// The `nicproof run` command line that runs `r` again (with
    /// `extra` arguments appended, e.g. `--events FILE`).
    pub fn command(r: &Report, extra: &str) -> String {
        let mut c = format!("nicproof run --scenario {} --seed {}", r.scenario, r.seed);
        if r.driver_mutant != "none" {
            c += &format!(" --mutant {}", r.driver_mutant);
        }
        if r.device_mutant != "none" {
            c += &format!(" --device-mutant {}", r.device_mutant);
        }
        // The driver's privilege level is --cpl (default 3); a report
        // without the knob ran at CPL0.
        for (k, v) in r.settings.knobs.iter().filter(|(k, _)| k.as_str() != "cpl") {
            c += &format!(" --knob {k}={v}");
        }
        if !r.settings.knobs.contains_key("cpl") {
            c += " --cpl 0";
        }
        if !r.settings.backend.is_empty() && r.settings.backend != "loopback" {
            c += &format!(" --backend {}", r.settings.backend);
        }
        if !extra.is_empty() {
            c += " ";
            c += extra;
        }
        c
    }
}

impl Report {
    /// The guest addresses worth symbolizing for this outcome, named.
    pub fn addresses(&self) -> Vec<(String, u64)> {
        match &self.outcome {
            Outcome::CpuException { rip, cpu, .. } => vec![(format!("cpu {cpu} rip"), *rip)],
            Outcome::TripleFault { cpu, regs } => vec![(format!("cpu {cpu} rip"), regs.rip)],
            Outcome::Timeout { .. } => self
                .stats
                .vcpu_rips
                .iter()
                .map(|(cpu, rip)| (format!("cpu {cpu} rip at the deadline"), *rip))
                .collect(),
            _ => Vec::new(),
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "nicproof report: scenario {} seed {} driver-mutant {} device-mutant {}",
            self.scenario, self.seed, self.driver_mutant, self.device_mutant
        )?;
        // Which privilege level the guest's driver task ran at (knob cpl).
        let cpl = match self.settings.knobs.get("cpl") {
            Some(3) => "CPL3 (user task)",
            _ => "CPL0 (kernel)",
        };
        writeln!(f, "clock: {}; driver at {cpl}", self.stats.clock_line())?;
        writeln!(
            f,
            "outcome: {} (exit code {})",
            self.outcome.name().to_uppercase(),
            self.outcome.exit_code()
        )?;
        match &self.outcome {
            Outcome::Passed => {}
            Outcome::Failed { reasons } => crate::explain::render_failed(f, self, reasons)?,
            Outcome::GuestPanic { message, location } => writeln!(f, "  panic at {location}: {message}")?,
            Outcome::CpuException { vector, error_code, rip, cr2, cpu } => writeln!(
                f,
                "  cpu {cpu}: vector {vector} ({}) error code {error_code:#x} rip {rip:#x} cr2 {cr2:#x}",
                exception_name(*vector)
            )?,
            Outcome::TripleFault { cpu, regs } => {
                writeln!(f, "  cpu {cpu} shut down (triple fault)")?;
                writeln!(
                    f,
                    "  rip {:#x} rsp {:#x} rflags {:#x} cr0 {:#x} cr2 {:#x} cr3 {:#x} cr4 {:#x} efer {:#x} idt {:#x}/{}",
                    regs.rip, regs.rsp, regs.rflags, regs.cr0, regs.cr2, regs.cr3, regs.cr4, regs.efer,
                    regs.idt_base, regs.idt_limit
                )?;
                writeln!(
                    f,
                    "  rax {:#x} rbx {:#x} rcx {:#x} rdx {:#x} rsi {:#x} rdi {:#x} rbp {:#x}",
                    regs.rax, regs.rbx, regs.rcx, regs.rdx, regs.rsi, regs.rdi, regs.rbp
                )?;
            }
            Outcome::Timeout { limit_secs, last_serial, last_events } => {
                writeln!(f, "  no power-off within {limit_secs} s")?;
                for l in last_serial {
                    writeln!(f, "  serial| {l}")?;
                }
                for e in last_events {
                    writeln!(f, "  event | {}", crate::decode::line(e))?;
                }
            }
            Outcome::HostError { message } | Outcome::GdbCannotListen { message } => {
                writeln!(f, "  {message}")?
            }
            Outcome::Deadlock { cpus } => {
                writeln!(f, "  every vCPU waits with no deadline and no device timer is due")?;
                for c in cpus {
                    writeln!(f, "  cpu {} idle at rip {:#x}", c.cpu, c.rip)?;
                }
            }
        }
        for l in &self.locations {
            writeln!(f, "  {l}")?;
        }
        let s = &self.stats;
        let ready = s
            .boot_to_ready_ms
            .map_or("-".to_string(), |v| format!("{v:.1} ms"));
        let exits: Vec<String> = s.exits.iter().map(|(k, v)| format!("{k} {v}")).collect();
        writeln!(
            f,
            "set-up {:.1} ms, boot-to-ready {ready}, run {:.1} ms, {} events",
            s.setup_ms, s.run_ms, s.events
        )?;
        writeln!(f, "vCPUs: {}", s.vcpus())?;
        write!(f, "vm exits: {} ({})", s.total_exits(), exits.join(", "))
    }
}

/// Mnemonic of an x86 exception vector.
pub fn exception_name(vector: u64) -> &'static str {
    const NAMES: [&str; 21] = [
        "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "CSO", "#TS", "#NP", "#SS",
        "#GP", "#PF", "-", "#MF", "#AC", "#MC", "#XM", "#VE",
    ];
    NAMES.get(vector as usize).copied().unwrap_or("?")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(outcome: Outcome) -> Report {
        Report {
            scenario: "boot".into(),
            seed: 7,
            driver_mutant: "none".into(),
            device_mutant: "none".into(),
            outcome,
            stats: Stats {
                run_ms: 1.5,
                ..Default::default()
            },
            findings: vec![],
            serial: "[cpu0 INFO ] hi\n".into(),
            locations: vec![],
            settings: RunSettings::default(),
        }
    }

    #[test]
    fn json_round_trips_and_is_tagged() {
        let cases = [
            Outcome::Passed,
            Outcome::Failed {
                reasons: vec!["no verdict".into()],
            },
            Outcome::GuestPanic {
                message: "boom".into(),
                location: "src/main.rs:3:5".into(),
            },
            Outcome::CpuException {
                vector: 14,
                error_code: 0,
                rip: 0x20_0000,
                cr2: 0xdead,
                cpu: 1,
            },
            Outcome::TripleFault {
                cpu: 0,
                regs: RegsDump {
                    rip: 5,
                    ..Default::default()
                },
            },
            Outcome::Timeout {
                limit_secs: 1.0,
                last_serial: vec!["x".into()],
                last_events: vec![],
            },
            Outcome::HostError {
                message: "no kvm".into(),
            },
            Outcome::Deadlock {
                cpus: vec![IdleCpu {
                    cpu: 1,
                    rip: 0x20_1000,
                }],
            },
            Outcome::GdbCannotListen {
                message: "--gdb 1234: cannot listen".into(),
            },
        ];
        let mut codes = Vec::new();
        for o in cases {
            let r = report(o.clone());
            let j = serde_json::to_string(&r).unwrap();
            let v: serde_json::Value = serde_json::from_str(&j).unwrap();
            assert_eq!(v["outcome"], o.name(), "{j}");
            assert_eq!(serde_json::from_str::<Report>(&j).unwrap(), r);
            codes.push(o.exit_code());
            assert!(!r.to_string().is_empty());
        }
        codes.dedup();
        assert_eq!(
            codes,
            vec![0, 1, 2, 3, 4, 5, 6, 8, 9],
            "exit codes are distinct"
        );
    }

    #[test]
    fn the_vcpus_line_says_who_ran() {
        let mut s = Stats::default();
        assert_eq!(s.vcpus(), "none ran");
        s.run_ms = 3.0;
        assert_eq!(s.vcpus(), "boot vCPU 0 only (the guest started no other)");
        s.cpus_online = vec![1];
        assert_eq!(s.vcpus(), "boot vCPU 0, and 1 started by the guest");
        s.cpus_online = vec![1, 2];
        assert_eq!(s.vcpus(), "boot vCPU 0, and 1, 2 started by the guest");
        let r = Report {
            stats: s,
            ..report(Outcome::Passed)
        };
        assert!(
            r.to_string()
                .contains("\nvCPUs: boot vCPU 0, and 1, 2 started by the guest\n"),
            "{r}"
        );
    }

    #[test]
    fn exception_json_has_the_fields_tests_read() {
        let j = serde_json::to_value(report(Outcome::CpuException {
            vector: 14,
            error_code: 2,
            rip: 1,
            cr2: 0x100_dead_b000,
            cpu: 0,
        }))
        .unwrap();
        assert_eq!(j["vector"], 14);
        assert_eq!(j["cr2"], 0x100_dead_b000u64);
        assert_eq!(j["stats"]["run_ms"], 1.5);
    }
}
