//! Command line (clap): `nicproof run`, `list`, `bench`, `matrix`, `replay`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use nic_model::abi::{knob, BadGuest, DeviceMutant, DriverMutant, Scenario, NUM_KNOBS};
use nic_model::config::BackendConfig;
use vmm::bench::NetPlan;
use vmm::sim::ClockMode;
use vmm::vm::RunOptions;

const EXIT_CODES: &str = "Exit codes: 0 passed, 1 failed (reasons listed), 2 guest panic, \
3 CPU exception, 4 triple fault, 5 timeout, 6 host error (no KVM, bad guest image, KVM failure), \
7 bad command line.";

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
    /// List scenarios, driver mutants, device mutants, bad guests and knobs.
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
}

#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// Event log written by `nicproof run --events FILE`.
    pub file: PathBuf,
    /// Guest kernel ELF (the one the saved run used).
    #[arg(long, default_value = "images/nicproof-guest")]
    pub guest: PathBuf,
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
        let mut o = id.options(self.guest.clone(), &self.pcap_scratch())?;
        if let Some(t) = self.timeout {
            o.timeout = timeout(t)?;
        }
        o.quiet = true;
        Ok(o)
    }

    /// Where the replay of a `pcap:` run writes its frames: a file of its
    /// own in the temp dir, never the saved run's capture.
    pub fn pcap_scratch(&self) -> PathBuf {
        std::env::temp_dir().join(format!("nicproof-replay-{}.pcap", std::process::id()))
    }
}

#[derive(Args, Debug)]
pub struct MatrixArgs {
    /// Guest kernel ELF (built by `make guest`).
    #[arg(long, default_value = "images/nicproof-guest")]
    pub guest: PathBuf,
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
}

#[derive(Args, Debug)]
pub struct VmArgs {
    /// Guest kernel ELF (built by `make guest`).
    #[arg(long, default_value = "images/nicproof-guest")]
    pub guest: PathBuf,
    /// Seed for every guest-side random choice and the payload pattern.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Wall-clock limit in seconds; the run ends as `timeout` after it
    /// [default: the scenario's, 60 s for most].
    #[arg(long)]
    pub timeout: Option<f64>,
    /// `virtual`: the VMM's virtual clock, one vCPU at a time under a
    /// scheduler seeded by --seed, idle time skipped: the same run every
    /// time. `wall`: wall time, the x2APIC timer, vCPUs in parallel.
    #[arg(long, default_value = "virtual", value_name = "wall|virtual", value_parser = parse_clock)]
    pub clock: ClockMode,
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
    /// Make the guest misbehave, to test outcome reporting:
    /// none, panic, page-fault, triple-fault, endless-loop.
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
    #[command(flatten)]
    pub vm: VmArgs,
}

/// Knob names accepted by `--knob`, with their RunConfig index.
pub const KNOBS: &[(&str, usize, &str)] = &[
    (
        "frames",
        knob::FRAMES,
        "frames the scenario sends (0 = default)",
    ),
    (
        "bad-guest",
        knob::BAD_GUEST,
        "bad-guest switch (use --bad-guest)",
    ),
    (
        "tx-ring",
        knob::TX_RING,
        "TX ring size (0 = driver default)",
    ),
    ("batch", knob::BATCH, "xmit_more batch size"),
    ("cycles", knob::CYCLES, "up/down cycles for the soak"),
    (
        "bench",
        knob::BENCH,
        "1 = benchmark mode: no per-packet markers (see abi.rs knob::BENCH)",
    ),
    (
        "variant",
        knob::VARIANT,
        "scenario variant (see abi.rs knob::VARIANT)",
    ),
    (
        "echo",
        knob::ECHO,
        "value the guest echoes back in a Marker::Echo record",
    ),
    (
        "deadline-ms",
        knob::DEADLINE_MS,
        "ms the default scenario waits for its frames (0 = 10 s + 50 ms per frame)",
    ),
];

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

const BAD_GUESTS: [BadGuest; 5] = [
    BadGuest::None,
    BadGuest::Panic,
    BadGuest::PageFault,
    BadGuest::TripleFault,
    BadGuest::EndlessLoop,
];

fn bad_guest(s: &str) -> Result<BadGuest> {
    BAD_GUESTS
        .into_iter()
        .find(|b| b.name() == s)
        .ok_or_else(|| {
            anyhow!(
                "unknown bad guest `{s}`; known: {}",
                names(&BAD_GUESTS, BadGuest::name)
            )
        })
}

fn parse_u64(v: &str) -> Result<u64> {
    match v.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16),
        None => v.parse(),
    }
    .with_context(|| format!("`{v}` is not a number"))
}

fn parse_knob(kv: &str, knobs: &mut [u64; NUM_KNOBS]) -> Result<()> {
    let Some((name, value)) = kv.split_once('=') else {
        bail!("--knob wants NAME=VALUE, got `{kv}`")
    };
    let Some(&(_, idx, _)) = KNOBS.iter().find(|k| k.0 == name) else {
        bail!(
            "unknown knob `{name}`; known: {}",
            KNOBS.iter().map(|k| k.0).collect::<Vec<_>>().join(", ")
        )
    };
    knobs[idx] = parse_u64(value)?;
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

impl VmArgs {
    fn options(&self, scenario: Scenario, knobs: &[u64; NUM_KNOBS]) -> Result<RunOptions> {
        let mut o = RunOptions::for_scenario(self.guest.clone(), scenario, self.seed, knobs);
        if let Some(t) = self.timeout {
            o.timeout = timeout(t)?;
        }
        o.clock = self.clock;
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
        let mut o = self.vm.options(scenario(&self.scenario)?, &knobs)?;
        o.driver_mutant = driver_mutant(&self.mutant)?;
        o.device_mutant = device_mutant(&self.device_mutant)?;
        o.quiet = self.quiet;
        if let Some(path) = &self.pcap {
            let Some(nic) = o.nic.as_mut() else {
                bail!("--pcap: scenario {} has no NIC to capture from", self.scenario);
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
        let mut o = self.vm.options(scenario(&self.scenario)?, &[0; NUM_KNOBS])?;
        o.quiet = true;
        Ok(o)
    }

    /// The loopback bench's plan and one run's options per entry of
    /// `bench::net_runs` (quiet).
    pub fn net_options(&self) -> Result<(NetPlan, Vec<(String, RunOptions)>)> {
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
                o.quiet = true;
                Ok((name, o))
            })
            .collect::<Result<_>>()?;
        Ok((plan, runs))
    }
}

/// The text of `nicproof list`.
pub fn list() -> String {
    // A doc comment from abi.rs on one line, for ids without a hand-written
    // line below.
    fn doc(d: &'static str) -> String {
        d.split_whitespace().collect::<Vec<_>>().join(" ")
    }
    let mut s = String::from("scenarios:\n");
    let desc = |v: &mut String, name: &str, d: &str| v.push_str(&format!("  {name:<22} {d}\n"));
    for sc in Scenario::ALL {
        let fallback = doc(sc.doc());
        desc(
            &mut s,
            sc.name(),
            match sc {
                Scenario::Empty => "boot, report ready, power off (boot benchmark)",
                Scenario::Boot => "boot, exercise the control port and both vCPUs",
                Scenario::Default => "probe, open, loopback mixed frames, check, stop, unregister",
                Scenario::Smp => "default with transmit on CPU 0 and NAPI on CPU 1",
                _ => &fallback,
            },
        );
    }
    s.push_str("driver mutants (--mutant):\n");
    for m in DriverMutant::ALL {
        let fallback = doc(m.doc());
        desc(
            &mut s,
            m.name(),
            match m {
                DriverMutant::None => "the correct driver",
                DriverMutant::NoFence => "no fence in try_stop / completed_wake",
                DriverMutant::NoRecheck => "no re-check after setting the stop bit",
                DriverMutant::ThresholdOffByOne => "`>` for `>=` in the stop threshold",
                DriverMutant::WakeInverted => "wake condition inverted",
                DriverMutant::ConsIndexLate => "consumer index stored after completed_wake",
                DriverMutant::BusyFrees => "BUSY returned with the skb freed",
                DriverMutant::BusyKeepsRef => "BUSY returned with a reference kept",
                DriverMutant::NoStopInAdvance => "BUSY returned instead of stopping in advance",
                DriverMutant::NoUnmapAtStop => "no DMA unmap at stop",
                DriverMutant::NoResetPoll => "no reset poll at stop",
                DriverMutant::UnregisterNoStop => "unregister of an UP device does not call stop",
                DriverMutant::WritesClonedHead => "writes a cloned skb's shared head",
                DriverMutant::ReclaimOnXmit => "reclaims completions only on the next transmit",
                DriverMutant::NoWatchdog => "no watchdog",
                DriverMutant::AcceptsInvalidMac => "accepts an invalid MAC",
                DriverMutant::NoDisableAtStop => "does not disable TX/RX and interrupts at stop",
                DriverMutant::DoorbellAfterStop => "rings the TX doorbell after stop returned",
                DriverMutant::DropSkipsDoorbell => "no doorbell when the last skb of an xmit_more batch is dropped",
                DriverMutant::BqlMiscount => "BQL completions counted 4 bytes short per packet",
                // Ids added to abi after this list was written show their
                // doc comment, and never break the build.
                #[allow(unreachable_patterns)]
                _ => &fallback,
            },
        );
    }
    s.push_str("device mutants (--device-mutant):\n");
    for m in DeviceMutant::ALL {
        let fallback = doc(m.doc());
        desc(
            &mut s,
            m.name(),
            match m {
                DeviceMutant::None => "the correct device",
                DeviceMutant::DmaAfterDisable => "keeps DMAing after TX/RX are disabled",
                DeviceMutant::IrqAfterDisable => "raises an interrupt after being disabled",
                DeviceMutant::ResetIgnored => "ignores reset",
                DeviceMutant::PhantomCompletion => "completes a descriptor never posted",
                DeviceMutant::PrefetchPastTail => "fetches TX descriptors past the tail",
                #[allow(unreachable_patterns)]
                _ => &fallback,
            },
        );
    }
    s.push_str("bad guests (--bad-guest):\n");
    for b in BAD_GUESTS {
        desc(
            &mut s,
            b.name(),
            match b {
                BadGuest::None => "behave",
                BadGuest::Panic => "panic with a known message (outcome guest-panic)",
                BadGuest::PageFault => "read an unmapped address (outcome cpu-exception, #PF)",
                BadGuest::TripleFault => "fault with an empty IDT (outcome triple-fault)",
                BadGuest::EndlessLoop => "spin with interrupts off (outcome timeout)",
            },
        );
    }
    s.push_str("knobs (--knob NAME=VALUE):\n");
    for (name, _, d) in KNOBS {
        desc(&mut s, name, d);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }

    #[test]
    fn backend_is_the_scenarios_unless_given_and_bad_values_are_usage_errors() {
        let run = |extra: &[&str]| -> Result<RunArgs, clap::Error> {
            let mut argv = vec!["nicproof", "run"];
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
            let mut argv = vec!["nicproof", "bench", "--net"];
            argv.extend_from_slice(extra);
            match Cli::try_parse_from(argv).unwrap().command {
                Command::Bench(b) => b.net_options(),
                _ => unreachable!("parsed a bench command"),
            }
        };
        let (plan, runs) = parse(&[]).unwrap();
        assert_eq!(plan, NetPlan::default());
        assert_eq!(runs.len(), 5);
        assert!(runs.iter().all(|(_, o)| o.scenario == Scenario::Default && o.knobs[knob::BENCH] == 1 && o.quiet));
        assert_eq!(runs[3].1.knobs[knob::BATCH], 16);
        assert_eq!(runs[4].1.knobs[knob::CYCLES], 20);
        for bad in [&["--frames-hi", "100"][..], &["--batch", "1"], &["--cycles", "0"], &["--runs", "0"]] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
