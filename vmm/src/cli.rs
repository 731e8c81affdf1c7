//! Command line (clap): `nicproof run`, `list`, `bench`, `matrix`, `replay`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use clap::{Args, Parser, Subcommand};
use nic_model::abi::{knob, Abuse, BadGuest, DeviceMutant, DriverMutant, Scenario, NUM_KNOBS};
use nic_model::config::BackendConfig;
use nic_model::rules::Rule;
use vmm::bench::NetPlan;
use vmm::sim::ClockMode;
use vmm::vm::RunOptions;

const EXIT_CODES: &str = "Exit codes: 0 passed, 1 failed (reasons listed), 2 guest panic, \
3 CPU exception, 4 triple fault, 5 timeout, 6 host error (no KVM, bad guest image, KVM failure), \
7 bad command line, 9 `--gdb PORT` cannot listen (port in use).";

/// The guest image's usual place, relative to the workspace.
pub const DEFAULT_GUEST: &str = "images/nicproof-guest";

/// Failures of the host rather than of the command line: exit 6, as a
/// run's `host-error` outcome.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// An output file (`--json`, `--events`, `--pcap`, `--junit`) could
    /// not be written fully.
    #[error("cannot write {}", path.display())]
    Output {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// No guest image where nicproof looked.
    #[error("no guest image: looked at {looked}; build it with make guest, or name it with --guest or NICPROOF_GUEST")]
    GuestNotFound { looked: String },
}

/// The guest image: `--guest` as given (the run reports it if it is
/// missing or unusable), else `$NICPROOF_GUEST`, else [`DEFAULT_GUEST`] in
/// the current folder or in the workspace the binary was built in
/// (`<workspace>/target/<profile>/nicproof`); the first that exists.
pub fn resolve_guest(arg: Option<&Path>) -> Result<PathBuf, HostError> {
    let env = std::env::var_os("NICPROOF_GUEST");
    let candidates: Vec<(PathBuf, &str)> = match (arg, &env) {
        (Some(p), _) => return Ok(p.to_path_buf()),
        (None, Some(p)) => vec![(PathBuf::from(p), "NICPROOF_GUEST")],
        (None, None) => {
            let mut v = vec![(PathBuf::from(DEFAULT_GUEST), "current folder")];
            let exe = std::env::current_exe().ok();
            if let Some(ws) = exe.as_deref().and_then(|e| e.ancestors().nth(3)) {
                v.push((ws.join(DEFAULT_GUEST), "the binary's workspace"));
            }
            v
        }
    };
    let mut looked = Vec::new();
    for (p, from) in candidates {
        if p.is_file() {
            return Ok(p);
        }
        looked.push(format!("{} ({from})", p.display()));
    }
    if env.is_none() {
        looked.push("NICPROOF_GUEST (unset)".into());
    }
    Err(HostError::GuestNotFound {
        looked: looked.join(", "),
    })
}

/// nicproof: boot a guest NIC driver on a minimal KVM VMM with an emulated
/// PCI NIC, and judge every DMA and interrupt against the driver's life.
#[derive(Parser, Debug)]
#[command(name = "nicproof", version, after_help = EXIT_CODES)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Boot one VM for (scenario, seed, mutants) and print its report.
    #[command(after_help = EXIT_CODES)]
    Run(RunArgs),
    /// List scenarios, driver mutants, device mutants, bad guests, knobs and rules.
    List,
    /// Boot the same VM several times; print boot-to-ready time, run time
    /// and VM exits per reason (min / median / max).
    Bench(BenchArgs),
    /// Run every (case, seed) of the scenario matrix as a VM (child
    /// processes), judge each against its expectation, print the matrix.
    /// Exit 1 if a pass case failed or a mutant was missed.
    Matrix(MatrixArgs),
    /// Run the (scenario, seed, mutants, knobs) of a saved `run --events`
    /// file again and compare the two event logs in replay form.
    /// Exit 0 identical, 1 diverged (the first difference is shown),
    /// 6 host error, 7 bad input (no such file, not an events file, no
    /// run identity).
    Replay(ReplayArgs),
    /// Explain a saved `run --events` log: its first cause (or event SEQ)
    /// with the history that leads to it, decoded. Exit 0 explained;
    /// a log it cannot use: 10 no such file, 11 unreadable, 12 empty,
    /// 13 truncated, 14 not a nicproof event log, 15 no event SEQ; 7 bad
    /// command line.
    Explain(ExplainArgs),
}

#[derive(Args, Debug)]
pub struct ExplainArgs {
    /// Event log written by `nicproof run --events FILE`.
    pub file: PathBuf,
    /// Explain this event instead of the first cause.
    #[arg(long, value_name = "SEQ")]
    pub at: Option<u64>,
    /// Print the whole log decoded instead (one line per event; with
    /// --json, one JSON object per line).
    #[arg(long)]
    pub log: bool,
    /// With --log: decoded JSON lines instead of text.
    #[arg(long)]
    pub json: bool,
    /// Write the log as a timeline (Chrome trace-event JSON, for
    /// ui.perfetto.dev or chrome://tracing) to FILE.
    #[arg(long, value_name = "FILE")]
    pub perfetto: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// Event log written by `nicproof run --events FILE`.
    pub file: PathBuf,
    /// Guest kernel ELF (the one the saved run used) [default:
    /// $NICPROOF_GUEST, else images/nicproof-guest in the current folder or
    /// in the binary's workspace].
    #[arg(long)]
    pub guest: Option<PathBuf>,
    /// Wall-clock limit of the replay run in seconds [default: the scenario's].
    #[arg(long)]
    pub timeout: Option<f64>,
    /// Write the replay run's event log as JSON lines to OUT.
    #[arg(long, value_name = "OUT")]
    pub events: Option<PathBuf>,
}

impl ReplayArgs {
    /// The replay run's options, from the file's run identity (a `pcap:`
    /// backend writes to [`Self::pcap_scratch`]).
    pub fn options(&self, id: &vmm::replay::RunIdentity) -> Result<RunOptions> {
        let mut o = id.options(self.guest()?, &self.pcap_scratch())?;
        if let Some(t) = self.timeout {
            o.timeout = timeout(t)?;
        }
        o.quiet = true;
        Ok(o)
    }

    /// The guest image (see [`resolve_guest`]).
    pub fn guest(&self) -> Result<PathBuf, HostError> {
        resolve_guest(self.guest.as_deref())
    }

    /// Where the replay of a `pcap:` run writes its frames: a file of its
    /// own in the temp dir, never the saved run's capture.
    pub fn pcap_scratch(&self) -> PathBuf {
        std::env::temp_dir().join(format!("nicproof-replay-{}.pcap", std::process::id()))
    }
}

#[derive(Args, Debug)]
pub struct MatrixArgs {
    /// Guest kernel ELF (built by `make guest`) [default: $NICPROOF_GUEST,
    /// else images/nicproof-guest in the current folder or in the binary's
    /// workspace].
    #[arg(long)]
    pub guest: Option<PathBuf>,
    /// VMs at a time [default: number of CPUs].
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Only jobs whose name (scenario[/variant]:mutant:device-mutant#seed)
    /// contains this.
    #[arg(long)]
    pub filter: Option<String>,
    /// Only partition K of N (1-based, round-robin over the jobs, as
    /// cargo-nextest's count:K/N), for spreading over CI runners.
    #[arg(long, value_name = "K/N")]
    pub partition: Option<String>,
    /// Print the selected job names, one a line, and run nothing.
    #[arg(long)]
    pub list: bool,
    /// Selecting no job at all is not an error (without it, a --filter or
    /// --partition that selects nothing is: a typo would hide every job).
    #[arg(long)]
    pub allow_empty: bool,
    /// Run every selected job this many times (to find flaky cases; each
    /// cell then shows good/runs).
    #[arg(long, default_value_t = 1)]
    pub repeat: u32,
    /// Write the summary as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write JUnit XML (one testcase per job) to FILE.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Report jobs whose guest scenario body is still the "not implemented
    /// yet" stub as SKIPPED-UNIMPLEMENTED (counted, listed) instead of
    /// failing them.
    #[arg(long)]
    pub skip_unimplemented: bool,
    /// The clock every job runs with (see `nicproof run --clock`).
    #[arg(long, default_value = "virtual", value_name = "wall|virtual", value_parser = parse_clock)]
    pub clock: ClockMode,
    /// Privilege level of every job's driver task (see `nicproof run --cpl`).
    #[arg(long, default_value_t = DEFAULT_CPL, value_name = "0|3", value_parser = parse_cpl)]
    pub cpl: u64,
    /// Run the whole selection ROUNDS times under each clock, alternating
    /// (wall, virtual, wall, ...), and print the two side by side with
    /// their ratio (--clock is ignored). The exit status is the virtual
    /// clock's: a race the seeded scheduler finds may be missed by the
    /// wall clock, and that is a figure, not a failure.
    #[arg(long, value_name = "ROUNDS", default_value_t = 0)]
    pub compare_clocks: u32,
}

#[derive(Args, Debug)]
pub struct VmArgs {
    /// Guest kernel ELF (built by `make guest`) [default: $NICPROOF_GUEST,
    /// else images/nicproof-guest in the current folder or in the binary's
    /// workspace].
    #[arg(long)]
    pub guest: Option<PathBuf>,
    /// Seed for every guest-side random choice and the payload pattern
    /// (decimal or 0x-hex).
    #[arg(long, default_value = "0", value_parser = parse_seed)]
    pub seed: u64,
    /// Wall-clock limit in seconds; the run ends as `timeout` after it
    /// [default: the scenario's, 60 s for most].
    #[arg(long)]
    pub timeout: Option<f64>,
    /// `virtual`: the VMM's virtual clock, one vCPU at a time under a
    /// scheduler seeded by --seed, idle time skipped: the same run every
    /// time. `wall`: wall time, the x2APIC timer, vCPUs in parallel
    /// [default: virtual].
    #[arg(long, value_name = "wall|virtual", value_parser = parse_clock)]
    pub clock: Option<ClockMode>,
    /// Privilege level of the guest's driver task: 0 (in the kernel) or 3
    /// (a user task; boot and interrupt entry stay at CPL0). Sets the knob
    /// `cpl` [default: 3, the faster on this machine's KVM; 0 with `run --gdb`].
    #[arg(long, value_name = "0|3", value_parser = parse_cpl)]
    pub cpl: Option<u64>,
}

/// The driver task's privilege level when `--cpl` is not given: CPL3,
/// whose code this machine's software KVM runs natively (CPL0 code is
/// emulated at about 1 us per instruction).
pub const DEFAULT_CPL: u64 = 3;

fn parse_cpl(v: &str) -> Result<u64, String> {
    match v {
        "0" => Ok(0),
        "3" => Ok(3),
        _ => Err("expected 0 or 3".into()),
    }
}

fn parse_clock(v: &str) -> Result<ClockMode, String> {
    ClockMode::from_name(v).ok_or_else(|| "expected wall or virtual".into())
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Scenario name (see `nicproof list`).
    #[arg(long, default_value = "default")]
    pub scenario: String,
    /// Driver mutant name: a deliberately broken driver (see `nicproof list`).
    #[arg(long, default_value = "none")]
    pub mutant: String,
    /// Device mutant name: a deliberately broken device (see `nicproof list`).
    #[arg(long, default_value = "none")]
    pub device_mutant: String,
    /// Make the guest misbehave, to test outcome reporting (names and
    /// outcomes in `nicproof list`).
    #[arg(long, default_value = "none")]
    pub bad_guest: String,
    /// Set a scenario knob, NAME=VALUE (repeatable; names in `nicproof list`;
    /// VALUE decimal or 0x-hex).
    #[arg(long = "knob", value_name = "NAME=VALUE")]
    pub knobs: Vec<String>,
    /// Write the report as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write the event log as JSON lines to FILE.
    #[arg(long, value_name = "FILE")]
    pub events: Option<PathBuf>,
    /// Write the run's timeline to FILE (Chrome trace-event JSON: open it
    /// in ui.perfetto.dev): per vCPU the driver's markers and its
    /// lifecycle, xmit batch and NAPI poll spans, the device's TX/RX engines, DMA, interrupts, resets, violations, and
    /// counters for ring occupancy, queue state and BQL.
    #[arg(long, value_name = "FILE")]
    pub perfetto: Option<PathBuf>,
    /// Write every frame the NIC transmits to FILE (pcap; timestamps are the
    /// device clock). With loopback this is also what the RX side received.
    #[arg(long, value_name = "FILE")]
    pub pcap: Option<PathBuf>,
    /// Where transmitted frames go: `loopback` (back into the NIC's RX
    /// ring), `null` (dropped; counted and logged only) or `pcap:FILE`
    /// (written to FILE, nothing comes back) [default: the scenario's,
    /// loopback for all of today's]. With `null` or `pcap:` no frame is
    /// received, so scenarios that check loopback RX (`default` among
    /// them) fail, and say so: that is the expected result, not a bug.
    /// The backend is part of the run identity in `--events`, so
    /// `nicproof replay` reruns with it (a `pcap:` run's replay writes to a
    /// temporary file, not FILE).
    #[arg(long, value_name = "loopback|null|pcap:FILE", value_parser = parse_backend)]
    pub backend: Option<BackendConfig>,
    /// Do not show the guest's serial output live (it is still kept for the report).
    #[arg(long)]
    pub quiet: bool,
    /// Wait for gdb on 127.0.0.1:PORT before the guest's first instruction
    /// (`target remote :PORT` with the guest ELF): registers, memory,
    /// breakpoints, single step; one gdb thread per vCPU. Give --timeout room.
    #[arg(long, value_name = "PORT")]
    pub gdb: Option<u16>,
    #[command(flatten)]
    pub vm: VmArgs,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Scenario to boot.
    #[arg(long, default_value = "empty")]
    pub scenario: String,
    /// Number of runs (with --net: repetitions of the five runs).
    #[arg(long, default_value_t = 10)]
    pub runs: usize,
    /// Loopback bench instead of boots: the default scenario in benchmark
    /// mode; packets/s and VM exits per packet with and without xmit_more
    /// batching, and the cost of one open/stop cycle (--scenario ignored).
    #[arg(long)]
    pub net: bool,
    /// --net: frames of the short runs.
    #[arg(long, default_value_t = 100)]
    pub frames_lo: u64,
    /// --net: frames of the long runs.
    #[arg(long, default_value_t = 500)]
    pub frames_hi: u64,
    /// --net: batch size compared with no batching.
    #[arg(long, default_value_t = 16)]
    pub batch: u64,
    /// --net: open/stop cycles of the cycle run.
    #[arg(long, default_value_t = 20)]
    pub cycles: u64,
    /// Write the figures as JSON to FILE (--net).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// --net: run every repetition's five runs with the driver task at
    /// CPL0 and then at CPL3, side by side, and print both tables and the
    /// CPL3/CPL0 ratios (--cpl is then ignored).
    #[arg(long)]
    pub compare_cpl: bool,
    /// --net: run every run with `--clock wall` and then the default
    /// virtual clock, interleaved run by run, and print both side by side
    /// with their ratio (--clock is ignored).
    #[arg(long)]
    pub compare_clocks: bool,
    #[command(flatten)]
    pub vm: VmArgs,
}

fn names<T: Copy>(all: &[T], name: fn(T) -> &'static str) -> String {
    all.iter().map(|v| name(*v)).collect::<Vec<_>>().join(", ")
}

pub fn scenario(s: &str) -> Result<Scenario> {
    Scenario::from_name(s).ok_or_else(|| {
        anyhow!(
            "unknown scenario `{s}`; known: {}",
            names(Scenario::ALL, Scenario::name)
        )
    })
}

fn driver_mutant(s: &str) -> Result<DriverMutant> {
    DriverMutant::from_name(s).ok_or_else(|| {
        anyhow!(
            "unknown driver mutant `{s}`; known: {}",
            names(DriverMutant::ALL, DriverMutant::name)
        )
    })
}

fn device_mutant(s: &str) -> Result<DeviceMutant> {
    DeviceMutant::from_name(s).ok_or_else(|| {
        anyhow!(
            "unknown device mutant `{s}`; known: {}",
            names(DeviceMutant::ALL, DeviceMutant::name)
        )
    })
}

fn bad_guest(s: &str) -> Result<BadGuest> {
    BadGuest::from_name(s).ok_or_else(|| {
        anyhow!(
            "unknown bad guest `{s}`; known: {}",
            names(BadGuest::ALL, BadGuest::name)
        )
    })
}

fn parse_u64(v: &str) -> Result<u64, String> {
    match v.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16),
        None => v.parse(),
    }
    .map_err(|_| format!("`{v}` is not a number (decimal or 0x-hex)"))
}

/// `--seed`: decimal or 0x-hex, like the knobs.
fn parse_seed(v: &str) -> Result<u64, String> {
    parse_u64(v)
}

/// The values `k` accepts, in words.
fn knob_range(k: &knob::KnobSpec) -> String {
    match (k.pow2, k.max) {
        (true, max) => format!("0, or a power of two {}..={max}", k.min),
        (false, u64::MAX) => "any".into(),
        (false, max) => format!("0..={max}"),
    }
}

fn parse_knob(kv: &str, knobs: &mut [u64; NUM_KNOBS]) -> Result<()> {
    let Some((name, value)) = kv.split_once('=') else {
        bail!("--knob wants NAME=VALUE, got `{kv}`")
    };
    let Some(k) = knob::ALL.iter().find(|k| k.name == name) else {
        bail!(
            "unknown knob `{name}`; known: {}",
            knob::ALL
                .iter()
                .map(|k| k.name)
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let v = parse_u64(value).map_err(|e| anyhow!("knob {name}: {e}"))?;
    if !k.accepts(v) {
        bail!(
            "knob {name}={value} is out of range: {name} takes {}",
            knob_range(k)
        );
    }
    knobs[k.index] = v;
    Ok(())
}

/// `--backend` values; a clap value parser, so a bad one is a usage error
/// that shows the accepted forms.
/// The `--backend` forms; the same parser reads a run identity's
/// `backend=` field, so what `run` accepts, `replay` reads back.
fn parse_backend(v: &str) -> Result<BackendConfig, String> {
    vmm::replay::parse_backend(v)
}

fn timeout(secs: f64) -> Result<Duration> {
    Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| anyhow!("--timeout must be a positive number of seconds"))
}

impl MatrixArgs {
    /// The guest image (see [`resolve_guest`]).
    pub fn guest(&self) -> Result<PathBuf, HostError> {
        resolve_guest(self.guest.as_deref())
    }
}

impl VmArgs {
    /// The guest image (see [`resolve_guest`]).
    pub fn guest(&self) -> Result<PathBuf, HostError> {
        resolve_guest(self.guest.as_deref())
    }

    fn options(&self, scenario: Scenario, knobs: &[u64; NUM_KNOBS]) -> Result<RunOptions> {
        let mut o = RunOptions::for_scenario(self.guest()?, scenario, self.seed, knobs);
        o.knobs[knob::CPL] = self.cpl.unwrap_or(DEFAULT_CPL);
        if let Some(t) = self.timeout {
            o.timeout = timeout(t)?;
        }
        o.clock = self.clock.unwrap_or_default();
        Ok(o)
    }
}

impl RunArgs {
    /// Validate names and build the run options.
    pub fn options(&self) -> Result<RunOptions> {
        let mut knobs = [0; NUM_KNOBS];
        for kv in &self.knobs {
            parse_knob(kv, &mut knobs)?;
        }
        let bg = bad_guest(&self.bad_guest)?;
        if bg != BadGuest::None {
            knobs[knob::BAD_GUEST] = bg as u64;
        }
        let sc = scenario(&self.scenario)?;
        if let Some(ok) = vmm::scenarios::variants(sc) {
            let v = knobs[knob::VARIANT];
            if !ok.contains(&v) {
                let list = ok.iter().map(u64::to_string).collect::<Vec<_>>().join(", ");
                bail!(
                    "knob variant={v} is out of range: scenario {} takes variant {list}",
                    sc.name()
                );
            }
        }
        let (dm, devm) = (
            driver_mutant(&self.mutant)?,
            device_mutant(&self.device_mutant)?,
        );
        let mut o = self.vm.options(sc, &knobs)?;
        o.driver_mutant = dm;
        o.device_mutant = devm;
        o.quiet = self.quiet;
        o.gdb = self.gdb;
        if self.gdb.is_some() {
            // On either clock (under the virtual one, time stands still
            // while gdb holds the guest). This KVM backend does not fire
            // debug-register breakpoints in CPL3 code (measured: a
            // breakpoint at start_xmit never stops a --cpl 3 run), and it
            // cannot hand an int3 to the VMM, so the driver runs at CPL0.
            if self.vm.cpl == Some(3) {
                bail!("--gdb debugs the driver at CPL0: drop --cpl 3 (breakpoints do not hit CPL3 code on this KVM)");
            }
            o.knobs[knob::CPL] = 0;
        }
        if let Some(path) = &self.pcap {
            let Some(nic) = o.nic.as_mut() else {
                bail!(
                    "--pcap: scenario {} has no NIC to capture from",
                    self.scenario
                );
            };
            nic.capture = Some(path.to_string_lossy().into_owned());
        }
        if let Some(b) = &self.backend {
            let Some(nic) = o.nic.as_mut() else {
                bail!("--backend: scenario {} has no NIC", self.scenario);
            };
            nic.backend = b.clone();
        }
        Ok(o)
    }
}

impl BenchArgs {
    /// Validate and build the run options (quiet).
    pub fn options(&self) -> Result<RunOptions> {
        if self.runs == 0 {
            bail!("--runs must be at least 1");
        }
        let mut o = self
            .vm
            .options(scenario(&self.scenario)?, &[0; NUM_KNOBS])?;
        o.quiet = true;
        Ok(o)
    }

    /// The loopback bench's plan and one run's options per entry of
    /// `bench::net_runs` (quiet); `cpl` overrides `--cpl`.
    pub fn net_options(&self, cpl: Option<u64>) -> Result<(NetPlan, Vec<(String, RunOptions)>)> {
        if self.runs == 0 {
            bail!("--runs must be at least 1");
        }
        if self.frames_lo == 0 || self.frames_hi <= self.frames_lo {
            bail!("--frames-hi must be more than --frames-lo, which must be at least 1");
        }
        if self.batch < 2 || self.cycles == 0 {
            bail!("--batch must be at least 2 and --cycles at least 1");
        }
        let plan = NetPlan {
            frames_lo: self.frames_lo,
            frames_hi: self.frames_hi,
            batch: self.batch,
            cycles: self.cycles,
        };
        let runs = vmm::bench::net_runs(&plan)
            .into_iter()
            .map(|(name, knobs)| {
                let mut o = self.vm.options(Scenario::Default, &knobs)?;
                if let Some(cpl) = cpl {
                    o.knobs[knob::CPL] = cpl;
                }
                o.quiet = true;
                Ok((name, o))
            })
            .collect::<Result<_>>()?;
        Ok((plan, runs))
    }
}

/// The text of `nicproof list`: every table of the catalogue
/// (`nic_model::abi`, `nic_model::rules`), each value with its doc.
pub fn list() -> String {
    // A doc comment from abi.rs on one line, its intra-doc links as code.
    fn doc(d: &'static str) -> String {
        d.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .replace("[`", "`")
            .replace("`]", "`")
    }
    // A mutant's doc and the rules it breaks.
    fn breaks(d: &'static str, r: &[Rule]) -> String {
        match r {
            [] => doc(d),
            r => format!(
                "{} ({})",
                doc(d),
                r.iter().map(|r| r.name()).collect::<Vec<_>>().join(", ")
            ),
        }
    }
    let mut s = String::from("scenarios (group; variants):\n");
    let desc = |v: &mut String, name: &str, d: &str| v.push_str(&format!("  {name:<22} {d}\n"));
    for sc in Scenario::ALL {
        let variants = sc
            .variants()
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(",");
        desc(
            &mut s,
            sc.name(),
            &format!("{} ({}; {variants})", doc(sc.doc()), sc.group().name()),
        );
    }
    s.push_str("hostile abuses (--scenario hostile --knob variant=N; latches; blocked by):\n");
    for a in Abuse::ALL {
        let m = a.meta();
        let blocked: Vec<_> = m.blocked.iter().map(|r| r.name()).collect();
        let blocked = if blocked.is_empty() {
            "nothing blocked".into()
        } else {
            blocked.join(", ")
        };
        desc(
            &mut s,
            &format!("{} {}", *a as u32, a.name()),
            &format!("{} ({:?}; {blocked})", doc(a.doc()), m.error),
        );
    }
    s.push_str("driver mutants (--mutant; breaks):\n");
    for m in DriverMutant::ALL {
        desc(&mut s, m.name(), &breaks(m.doc(), m.breaks()));
    }
    s.push_str("device mutants (--device-mutant; breaks):\n");
    for m in DeviceMutant::ALL {
        desc(&mut s, m.name(), &breaks(m.doc(), m.breaks()));
    }
    s.push_str("bad guests (--bad-guest):\n");
    for b in BadGuest::ALL {
        desc(&mut s, b.name(), &doc(b.doc()));
    }
    s.push_str("knobs (--knob NAME=VALUE):\n");
    for k in knob::ALL {
        desc(&mut s, k.name, &format!("{} [{}]", k.doc, knob_range(k)));
    }
    // From the one catalogue of rules (nic_model::rules).
    s.push_str("rules (judged by; report row):\n");
    for r in Rule::ALL {
        desc(
            &mut s,
            r.name(),
            &format!(
                "{} ({}; {})",
                r.statement(),
                r.judge().name(),
                r.row().title()
            ),
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file that exists, to stand for the guest image where only the
    /// options are built (the test binary itself).
    fn any_file() -> &'static str {
        static EXE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        EXE.get_or_init(|| {
            std::env::current_exe()
                .expect("test exe")
                .display()
                .to_string()
        })
    }

    #[test]
    fn knob_ranges_come_from_the_catalogue_and_the_seed_takes_hex() {
        let mut k = [0; NUM_KNOBS];
        for bad in [
            "tx-ring=3",
            "tx-ring=100000",
            "tx-ring=0x100000000",
            "bench=2",
            "frames=100001",
        ] {
            let e = parse_knob(bad, &mut k).unwrap_err().to_string();
            assert!(
                e.contains("out of range") && e.contains(bad.split('=').next().unwrap()),
                "{e}"
            );
        }
        assert!(parse_knob("frames=abc", &mut k)
            .unwrap_err()
            .to_string()
            .contains("knob frames"));
        parse_knob("tx-ring=0x400", &mut k).unwrap();
        assert_eq!(k[knob::TX_RING], 1024);
        parse_knob("tx-ring=0", &mut k).unwrap();
        assert_eq!(parse_seed("0x10"), Ok(16));
        assert!(list().contains("tx-ring") && list().contains("power of two 64..=4096"));
        let hostile = |v: &str| {
            let argv = [
                "nicproof",
                "run",
                "--guest",
                any_file(),
                "--scenario",
                "hostile",
                "--knob",
                v,
            ];
            match Cli::try_parse_from(argv).unwrap().command {
                Command::Run(r) => r.options().map(|_| ()),
                _ => unreachable!("parsed a run command"),
            }
        };
        assert!(hostile("variant=13").is_ok() && hostile("variant=100").is_ok());
        assert!(hostile("variant=14")
            .unwrap_err()
            .to_string()
            .contains("13, 100"));
    }

    #[test]
    fn unknown_names_list_the_known_ones() {
        let e = scenario("nope").unwrap_err().to_string();
        assert!(
            e.contains("unknown scenario `nope`") && e.contains("boot"),
            "{e}"
        );
        let mut k = [0; NUM_KNOBS];
        parse_knob("echo=0x2a", &mut k).unwrap();
        assert_eq!(k[knob::ECHO], 42);
        assert!(parse_knob("zz=1", &mut k)
            .unwrap_err()
            .to_string()
            .contains("echo"));
        assert!(parse_knob("echo", &mut k).is_err());
        assert!(bad_guest("page-fault").is_ok() && bad_guest("x").is_err());
        assert!(list().contains("no-fence"));
        for r in Rule::ALL {
            assert!(
                list().contains(&format!("  {:<22} {}", r.name(), r.statement())),
                "{r}"
            );
        }
    }

    #[test]
    fn backend_is_the_scenarios_unless_given_and_bad_values_are_usage_errors() {
        let run = |extra: &[&str]| -> Result<RunArgs, clap::Error> {
            let mut argv = vec!["nicproof", "run", "--guest", any_file()];
            argv.extend_from_slice(extra);
            match Cli::try_parse_from(argv)?.command {
                Command::Run(r) => Ok(r),
                _ => unreachable!("parsed a run command"),
            }
        };
        let backend = |extra: &[&str]| run(extra).unwrap().options().unwrap().nic.unwrap().backend;
        assert_eq!(backend(&[]), BackendConfig::Loopback);
        assert_eq!(backend(&["--backend", "null"]), BackendConfig::Null);
        assert_eq!(backend(&["--backend", "loopback"]), BackendConfig::Loopback);
        assert_eq!(
            backend(&["--backend", "pcap:/tmp/a:b.pcap"]),
            BackendConfig::Pcap("/tmp/a:b.pcap".into())
        );
        for bad in ["tap", "pcap:", "Null", ""] {
            let e = run(&["--backend", bad]).unwrap_err();
            assert_eq!(e.kind(), clap::error::ErrorKind::ValueValidation, "{bad}");
            assert!(e.to_string().contains("--backend"), "{e}");
        }
    }

    #[test]
    fn net_bench_plan_is_validated_and_runs_default_in_bench_mode() {
        let parse = |extra: &[&str]| {
            let mut argv = vec!["nicproof", "bench", "--net", "--guest", any_file()];
            argv.extend_from_slice(extra);
            match Cli::try_parse_from(argv).unwrap().command {
                Command::Bench(b) => b.net_options(None),
                _ => unreachable!("parsed a bench command"),
            }
        };
        let (plan, runs) = parse(&[]).unwrap();
        assert_eq!(plan, NetPlan::default());
        assert_eq!(runs.len(), 5);
        assert!(runs
            .iter()
            .all(|(_, o)| o.scenario == Scenario::Default && o.knobs[knob::BENCH] == 1 && o.quiet));
        assert_eq!(runs[3].1.knobs[knob::BATCH], 16);
        assert_eq!(runs[4].1.knobs[knob::CYCLES], 20);
        for bad in [
            &["--frames-hi", "100"][..],
            &["--batch", "1"],
            &["--cycles", "0"],
            &["--runs", "0"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
