//! Guest instructions and memory operands per looped-back packet, counted
//! by valgrind (cachegrind) on the host build: the work a CPL0 guest pays
//! for at about 0.75 us per instruction plus 0.6 us per memory operand
//! (issue 16), exact and repeatable where time on a shared machine is not.
//!
//! The child runs the `default` scenario in benchmark mode (knob `bench=1`,
//! as `nicproof bench --net` does) on the tests' in-process machine
//! (`tests/common/hostplat.rs`: the real device model behind the guest's
//! `Platform`). Cachegrind attributes every instruction to the function it
//! executes in (inlined code to its caller); the functions of the guest
//! crate (`nicproof_guest::`) are the guest's work, split into the driver,
//! the softnet core and the scenario that makes the packets; the machine
//! (device model, DMA monitor, this process) is the VM's host side and not
//! counted. Each case runs with 100 and 500 frames, and the difference
//! divided by 400 is the per-packet cost, free of probe, open and stop.
//!
//! `make bench` runs it: `cargo run --release -p guest-driver --example
//! driver_instructions`. Without valgrind it says how to get it and exits 0.

#[path = "../../nic-model/examples/common/cachegrind.rs"]
mod cachegrind;
#[path = "../tests/common/hostplat.rs"]
mod hostplat;

use hostplat::HostPlat;
use nic_model::abi::{
    control, knob, DriverMutant, Marker, RunConfig, Scenario, NUM_KNOBS, PROTOCOL_VERSION,
};
use nic_model::NicConfig;
use nicproof_guest::platform::Platform;
use nicproof_guest::scenarios::run_with_pool;
use std::collections::BTreeMap;
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicU64, Ordering};

const FEW: u64 = 100;
const MANY: u64 = 500;
/// xmit_more batches: none, and the loopback bench's 16.
const BATCHES: [u64; 2] = [1, 16];

/// The machine as the guest sees it, counting what costs a CPL0 guest
/// more than its instructions: clock reads (the virtual clock page or
/// `rdtsc` and a multiply in the guest) and VM exits (MMIO, markers).
struct Counting<'p> {
    plat: &'p HostPlat,
    clock_reads: AtomicU64,
    exits: AtomicU64,
}

impl Counting<'_> {
    fn exit(&self) {
        self.exits.fetch_add(1, Ordering::Relaxed);
    }
}

impl Platform for Counting<'_> {
    fn pci_read32(&self, bdf: (u8, u8, u8), offset: u8) -> u32 {
        self.exit();
        self.plat.pci_read32(bdf, offset)
    }
    fn pci_write32(&self, bdf: (u8, u8, u8), offset: u8, value: u32) {
        self.exit();
        self.plat.pci_write32(bdf, offset, value)
    }
    fn mmio_read32(&self, addr: u64) -> u32 {
        self.exit();
        self.plat.mmio_read32(addr)
    }
    fn mmio_write32(&self, addr: u64, value: u32) {
        self.exit();
        self.plat.mmio_write32(addr, value)
    }
    fn now_ns(&self) -> u64 {
        self.clock_reads.fetch_add(1, Ordering::Relaxed);
        self.plat.now_ns()
    }
    fn wait_until(&self, deadline_ns: u64) {
        self.plat.wait_until(deadline_ns)
    }
    fn marker(&self, marker: Marker, args: &[u64]) {
        self.exit();
        self.plat.marker(marker, args)
    }
    fn marker_text(&self, marker: Marker, args: &[u64], text: &str) {
        self.exit();
        self.plat.marker_text(marker, args, text)
    }
    fn cpu_id(&self) -> u32 {
        self.plat.cpu_id()
    }
    fn take_irq(&self, vector: u8) -> bool {
        self.plat.take_irq(vector)
    }
    fn sched_point(&self) {
        self.plat.sched_point()
    }
}

/// Child mode: `--child FRAMES BATCH`. Prints `clock-reads N exits M`.
fn child(frames: u64, batch: u64) -> ExitCode {
    let mut knobs = [0; NUM_KNOBS];
    knobs[knob::BENCH] = 1;
    knobs[knob::FRAMES] = frames;
    knobs[knob::BATCH] = batch;
    let cfg = RunConfig {
        magic: control::CONTROL_MAGIC,
        version: PROTOCOL_VERSION,
        scenario: Scenario::Default as u32,
        driver_mutant: DriverMutant::None as u32,
        seed: 1,
        device_mutant: 0,
        ncpus: 1,
        tsc_khz: 1_000_000,
        knobs,
        clock: 0,
    };
    let plat = HostPlat::new(NicConfig::default());
    let counting = Counting {
        plat: &plat,
        clock_reads: AtomicU64::new(0),
        exits: AtomicU64::new(0),
    };
    let v = run_with_pool(&counting, &cfg, plat.dma_pool());
    if !v.as_ref().is_some_and(|v| v.pass) || !plat.violations().is_empty() {
        eprintln!(
            "the benchmark run is a correct driver, but: {v:?} {:?}",
            plat.violations()
        );
        return ExitCode::FAILURE;
    }
    println!(
        "clock-reads {} exits {}",
        counting.clock_reads.load(Ordering::Relaxed),
        counting.exits.load(Ordering::Relaxed)
    );
    ExitCode::SUCCESS
}

/// Events of one part of the guest: instructions (Ir) and data reads and
/// writes (Dr, Dw: the memory operands).
#[derive(Clone, Copy, Debug, Default)]
struct Cost {
    ir: u64,
    dr: u64,
    dw: u64,
}

impl Cost {
    fn add(&mut self, o: Cost) {
        self.ir += o.ir;
        self.dr += o.dr;
        self.dw += o.dw;
    }
}

/// Which part of the guest a (demangled) function name belongs to, by its
/// leading path (trait impls read
/// `<nicproof_guest::driver::.. as nicproof_guest::softnet::..>::f`).
fn part(func: &str) -> Option<&'static str> {
    // The guest's own functions and its trait impls; not the machine's
    // impls of guest traits (`<..hostplat::HostPlat as nicproof_guest::..>`).
    let rest = func
        .trim_start_matches('<')
        .strip_prefix("nicproof_guest::")?;
    Some(if rest.starts_with("driver::") {
        "driver"
    } else if rest.starts_with("softnet::") {
        "softnet"
    } else {
        "scenario"
    })
}

/// Cost per guest part of one child run under cachegrind.
fn count(exe: &str, frames: u64, batch: u64) -> Result<Sample, String> {
    let out_file = std::env::temp_dir().join(format!(
        "nicproof-cg-{}-{frames}-{batch}",
        std::process::id()
    ));
    let out = Command::new("valgrind")
        .args(["--tool=cachegrind", "--cache-sim=yes"])
        .arg(format!("--cachegrind-out-file={}", out_file.display()))
        .arg(exe)
        .args(["--child", &frames.to_string(), &batch.to_string()])
        .output()
        .map_err(|e| format!("running valgrind: {e}"))?;
    let text = std::fs::read_to_string(&out_file);
    let _ = std::fs::remove_file(&out_file);
    if !out.status.success() {
        return Err(format!(
            "child frames={frames} batch={batch} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let text = text.map_err(|e| format!("reading {}: {e}", out_file.display()))?;
    // "clock-reads N exits M"
    let stdout = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| {
        let mut w = stdout.split_whitespace().skip_while(|w| *w != name);
        w.nth(1)
            .and_then(|n| n.parse().ok())
            .ok_or(format!("no {name} in the child's output: {stdout}"))
    };
    Ok(Sample {
        parts: parse(&text)?,
        clock_reads: field("clock-reads")?,
        exits: field("exits")?,
    })
}

/// One child run: cost per guest part, clock reads and VM exits.
struct Sample {
    parts: BTreeMap<&'static str, Cost>,
    clock_reads: u64,
    exits: u64,
}

/// Sum a cachegrind output file's lines per guest part.
fn parse(text: &str) -> Result<BTreeMap<&'static str, Cost>, String> {
    let events: Vec<&str> = text
        .lines()
        .find_map(|l| l.strip_prefix("events:"))
        .ok_or("no events line in cachegrind's output")?
        .split_whitespace()
        .collect();
    let col = |name: &str| {
        events
            .iter()
            .position(|e| *e == name)
            .ok_or(format!("no {name} event"))
    };
    let (ir, dr, dw) = (col("Ir")?, col("Dr")?, col("Dw")?);
    let mut sums = BTreeMap::new();
    let mut cur = None;
    for l in text.lines() {
        if let Some(f) = l.strip_prefix("fn=") {
            cur = part(f);
            continue;
        }
        let Some(p) = cur else { continue };
        let mut nums = l.split_whitespace();
        if !nums
            .next()
            .is_some_and(|n| n.chars().all(|c| c.is_ascii_digit()))
        {
            continue; // not a "line counts..." row
        }
        let v: Vec<u64> = nums.map(|n| n.parse().unwrap_or(0)).collect();
        let at = |i: usize| v.get(i).copied().unwrap_or(0);
        sums.entry(p).or_insert_with(Cost::default).add(Cost {
            ir: at(ir),
            dr: at(dr),
            dw: at(dw),
        });
    }
    Ok(sums)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--child") {
        let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
        let (Ok(frames), Ok(batch)) = (arg(2).parse(), arg(3).parse()) else {
            eprintln!("usage: driver_instructions [--child FRAMES BATCH]");
            return ExitCode::from(2);
        };
        return child(frames, batch);
    }
    let exe = match cachegrind::self_under_valgrind(
        "driver instruction table",
        "cargo run --release -p guest-driver --example driver_instructions",
    ) {
        Ok(exe) => exe,
        Err(code) => return code,
    };
    println!(
        "\nguest work per looped-back packet, default scenario in bench mode (valgrind on the host build; \
         ({MANY} - {FEW}) frames): instructions / memory operands, then clock reads and VM exits"
    );
    println!(
        "{:<6} {:>13} {:>13} {:>13} {:>13} {:>7} {:>7}",
        "batch", "driver", "softnet", "scenario", "guest total", "clock", "exits"
    );
    let per_packet = (MANY - FEW) as f64;
    for batch in BATCHES {
        let (few, many) = match (count(&exe, FEW, batch), count(&exe, MANY, batch)) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        };
        let mut cells = Vec::new();
        let mut total = (0f64, 0f64);
        for p in ["driver", "softnet", "scenario"] {
            let a = few.parts.get(p).copied().unwrap_or_default();
            let b = many.parts.get(p).copied().unwrap_or_default();
            let ir = b.ir.saturating_sub(a.ir) as f64 / per_packet;
            let mem = (b.dr + b.dw).saturating_sub(a.dr + a.dw) as f64 / per_packet;
            total.0 += ir;
            total.1 += mem;
            cells.push(format!("{ir:.0} / {mem:.0}"));
        }
        cells.push(format!("{:.0} / {:.0}", total.0, total.1));
        let clock = many.clock_reads.saturating_sub(few.clock_reads) as f64 / per_packet;
        let exits = many.exits.saturating_sub(few.exits) as f64 / per_packet;
        println!(
            "{:<6} {:>13} {:>13} {:>13} {:>13} {:>7.2} {:>7.3}",
            batch, cells[0], cells[1], cells[2], cells[3], clock, exits
        );
    }
    ExitCode::SUCCESS
}
