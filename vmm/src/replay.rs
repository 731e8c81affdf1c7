//! Replay: the same (scenario, seed, mutants, knobs) run again gives the
//! same event log in *replay form*. [`ReplayForm::of`] builds that form,
//! [`ReplayForm::first_difference`] names where two forms part, and
//! [`RunIdentity`] is the run's parameters, written into every event log
//! as one VMM note (so a saved `--events` file is all a replay needs).
//!
//! A run with the virtual clock (the default, `sim`) is compared whole
//! and strictly: every event in order with its sequence number and its
//! virtual time, interrupts in the merged stream, no collapsing and no
//! masking (only the identity note is compared as parsed, and the host's
//! TSC frequency in the `vm ready` note is masked). The rest of this doc
//! is the looser form kept for `--clock wall` runs.
//!
//! What is compared for a wall-clock run, and why (found by diffing
//! repeated runs' logs):
//! - Wall time never ([`Event::canonical`] leaves `time_ns` out), nor
//!   sequence numbers (they shift when an interrupt lands elsewhere).
//! - `merged`: the whole timeline of every source **without device `irq`
//!   events**. Every other device event (register access, DMA, frame,
//!   violation) is caused synchronously by a guest register access, so
//!   its place among the guest's markers is fixed; an interrupt is raised
//!   by the device clock, which is wall time (vmm/src/nic.rs), so where it
//!   lands between two guest markers depends on host scheduling.
//! - `device`: the device's own stream in order, **with** its interrupts:
//!   how many interrupts, and between which DMAs, must repeat.
//! - Collapsed: consecutive identical MMIO reads (same offset, size and
//!   value) count once. A polling loop (reset wait, ring poll) reads the
//!   same register a number of times that depends on how long a wall-time
//!   device delay took; a read that returns a new value, or any access in
//!   between, is kept.
//! - Masked: numbers before ` us` / ` pps` in guest log and verdict texts
//!   (the guest reports its own wall-time measurements), and before ` kHz`
//!   in VMM notes (the host's TSC frequency).
//! - The identity note is compared as parsed, not as text: an older note
//!   without `backend=` equals one naming the scenario's backend, and a
//!   `pcap:` backend's file name is left out (a replay writes its frames
//!   to a scratch file, never over the saved run's capture; which file the
//!   frames went to changes no event).
//!
//! Not claimed: see [`NOT_CLAIMED`].

use std::fmt;
use std::path::{Path, PathBuf};

use nic_model::abi::{knob, DeviceMutant, DriverMutant, Scenario, NUM_KNOBS};
use nic_model::config::BackendConfig;
use nic_model::events::{Event, EventKind, Source};

use crate::arch::x86_64::layout;
use crate::sim::ClockMode;
use crate::vm::RunOptions;

/// What replay does not promise, for users and the CLI.
pub const NOT_CLAIMED: &str = "Runs with the virtual clock (the default) replay whole: every event, \
interrupts and virtual times included. For --clock wall runs, not claimed: smp (two guest CPUs interleave their markers freely) \
and device behaviour driven by device timers alone (the dma-after-disable / irq-after-disable \
mutants' ghost timers, completion coalescing timeouts as in busy-ownership and napi-budget-zero, \
reset delays): those events race the guest \
in wall time, so such runs may differ without a bug.";

/// The prefix of the VMM note that carries a run's identity.
pub const IDENTITY_PREFIX: &str = "run: ";

/// Why a saved event log cannot be replayed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The log has no identity note.
    #[error(
        "no run identity in the event log (no VMM note starting `{IDENTITY_PREFIX}`); \
         it was written by an older nicproof: re-run with `nicproof run --events FILE`"
    )]
    NoIdentity,
    /// The identity note does not parse.
    #[error("bad run identity `{text}`: {why}")]
    BadIdentity { text: String, why: String },
    /// The events file cannot be read.
    #[error("cannot read {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A line of the file is not an [`Event`].
    #[error(
        "{path} line {line} is not a nicproof event ({why}); replay reads the file \
         `nicproof run --events FILE` writes"
    )]
    NotEvents {
        path: String,
        line: usize,
        why: String,
    },
    /// The file has no events.
    #[error("{path} holds no events; write one with `nicproof run --events FILE`")]
    Empty { path: String },
    /// The log was made by a VMM with another vCPU count.
    #[error("the run had {file} vCPUs; this nicproof boots {this}")]
    Ncpus { file: u32, this: u32 },
}

/// Everything that picks a run's events: replaying it needs only this
/// and the guest image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunIdentity {
    pub scenario: Scenario,
    pub seed: u64,
    pub driver_mutant: DriverMutant,
    pub device_mutant: DeviceMutant,
    /// The knobs the guest got (the scenario's set-up merged with the
    /// command line's), so `variant` and `bad-guest` are in here too.
    pub knobs: [u64; NUM_KNOBS],
    pub ncpus: u32,
    /// Where the run's transmitted frames went (`nicproof run --backend`):
    /// with `null` or `pcap:` nothing comes back, so the run's events differ
    /// from a loopback run's.
    pub backend: BackendConfig,
    /// Which clock ran (a note without `clock=` is an older, wall-clock run).
    pub clock: ClockMode,
}

/// The `--backend` text of a backend: `loopback`, `null`, `pcap:FILE`.
pub fn backend_text(b: &BackendConfig) -> String {
    match b {
        BackendConfig::Loopback => "loopback".into(),
        BackendConfig::Null => "null".into(),
        BackendConfig::Pcap(path) => format!("pcap:{path}"),
    }
}

/// Parse a [`backend_text`] (the forms `nicproof run --backend` takes).
pub fn parse_backend(v: &str) -> Result<BackendConfig, String> {
    match v {
        "loopback" => Ok(BackendConfig::Loopback),
        "null" => Ok(BackendConfig::Null),
        _ => match v.strip_prefix("pcap:") {
            Some("") => Err("pcap: needs a file name, e.g. pcap:out.pcap".into()),
            Some(path) => Ok(BackendConfig::Pcap(path.into())),
            None => Err("expected loopback, null or pcap:FILE".into()),
        },
    }
}

/// The note's backend field. It comes last and runs to the end of the
/// note, so a pcap file name may hold spaces.
const BACKEND_FIELD: &str = " backend=";

impl RunIdentity {
    /// The identity of a run about to start.
    pub fn of(opts: &RunOptions) -> Self {
        Self {
            scenario: opts.scenario,
            seed: opts.seed,
            driver_mutant: opts.driver_mutant,
            device_mutant: opts.device_mutant,
            knobs: opts.knobs,
            ncpus: layout::NCPUS,
            backend: opts
                .nic
                .as_ref()
                .map(|n| n.backend.clone())
                .unwrap_or_default(),
            clock: opts.clock,
        }
    }

    /// The note text: `run: scenario=.. seed=.. mutant=.. device-mutant=..
    /// ncpus=.. knobs=k0,k1,.. backend=..` (all knobs, in `abi::knob`
    /// order; the backend as `--backend` takes it, last).
    pub fn note(&self) -> String {
        let knobs: Vec<String> = self.knobs.iter().map(u64::to_string).collect();
        format!(
            "{IDENTITY_PREFIX}scenario={} seed={} mutant={} device-mutant={} ncpus={} clock={} knobs={}{BACKEND_FIELD}{}",
            self.scenario.name(),
            self.seed,
            self.driver_mutant.name(),
            self.device_mutant.name(),
            self.ncpus,
            self.clock.name(),
            knobs.join(","),
            backend_text(&self.backend)
        )
    }

    /// The note as replay compares it: a pcap backend's file name left
    /// out (see the module doc).
    fn compared_note(&self) -> String {
        match self.backend {
            BackendConfig::Pcap(_) => Self {
                backend: BackendConfig::Pcap("FILE".into()),
                ..self.clone()
            }
            .note(),
            _ => self.note(),
        }
    }

    /// Parse a [`Self::note`] text.
    pub fn parse(text: &str) -> Result<Self, ReplayError> {
        let bad = |why: String| ReplayError::BadIdentity {
            text: text.into(),
            why,
        };
        let rest = text
            .strip_prefix(IDENTITY_PREFIX)
            .ok_or_else(|| bad(format!("does not start with `{IDENTITY_PREFIX}`")))?;
        // The backend runs to the end (the other fields hold no spaces).
        let (rest, backend) = match rest.split_once(BACKEND_FIELD) {
            Some((r, b)) => (
                r,
                Some(parse_backend(b).map_err(|why| bad(format!("backend: {why}")))?),
            ),
            None => (rest, None),
        };
        let field = |name: &str| {
            rest.split(' ')
                .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
                .ok_or_else(|| bad(format!("no `{name}=`")))
        };
        let num = |name: &str, v: &str| {
            v.parse::<u64>()
                .map_err(|_| bad(format!("{name} `{v}` is not a number")))
        };
        let scenario = field("scenario")?;
        let scenario = Scenario::from_name(scenario)
            .ok_or_else(|| bad(format!("unknown scenario `{scenario}`")))?;
        let mutant = field("mutant")?;
        let driver_mutant = DriverMutant::from_name(mutant)
            .ok_or_else(|| bad(format!("unknown mutant `{mutant}`")))?;
        let dm = field("device-mutant")?;
        let device_mutant = DeviceMutant::from_name(dm)
            .ok_or_else(|| bad(format!("unknown device mutant `{dm}`")))?;
        let values = field("knobs")?
            .split(',')
            .map(|v| num("knob", v))
            .collect::<Result<Vec<_>, _>>()?;
        let knobs: [u64; NUM_KNOBS] = values
            .try_into()
            .map_err(|v: Vec<u64>| bad(format!("{} knobs, expected {NUM_KNOBS}", v.len())))?;
        let ncpus = num("ncpus", field("ncpus")?)?;
        // Before the virtual clock existed every run was a wall-clock run.
        let clock = match field("clock") {
            Ok(c) => ClockMode::from_name(c).ok_or_else(|| bad(format!("unknown clock `{c}`")))?,
            Err(_) => ClockMode::Wall,
        };
        let seed = num("seed", field("seed")?)?;
        // A note from before the backend was recorded: those runs could
        // only use the scenario's.
        let backend = backend.unwrap_or_else(|| {
            crate::scenarios::setup(scenario, knobs[knob::VARIANT], seed)
                .nic
                .backend
        });
        Ok(Self {
            scenario,
            seed,
            driver_mutant,
            device_mutant,
            knobs,
            ncpus: u32::try_from(ncpus).map_err(|_| bad(format!("ncpus {ncpus}")))?,
            backend,
            clock,
        })
    }

    /// The identity note's text in a run's log: its first VMM note with
    /// the prefix, as written.
    pub fn find_note(log: &[Event]) -> Result<&str, ReplayError> {
        log.iter()
            .find_map(|e| match &e.kind {
                EventKind::Note { text } if is_identity(e.source, text) => Some(text.as_str()),
                _ => None,
            })
            .ok_or(ReplayError::NoIdentity)
    }

    /// The identity in a run's log (see [`Self::find_note`]).
    pub fn find(log: &[Event]) -> Result<Self, ReplayError> {
        Self::parse(Self::find_note(log)?)
    }

    /// True if a note `text` names no backend (an older nicproof's: the
    /// parsed identity then has the scenario's).
    pub fn note_lacks_backend(text: &str) -> bool {
        !text.contains(BACKEND_FIELD)
    }

    /// Options that run this identity again with `guest` (the scenario's
    /// own timeout; the device set-up follows from scenario, variant knob
    /// and seed, as in the first run; the backend is the run's, except
    /// that a `pcap:` backend writes to `pcap_scratch`, so the saved run's
    /// capture is never overwritten).
    pub fn options(&self, guest: PathBuf, pcap_scratch: &Path) -> Result<RunOptions, ReplayError> {
        if self.ncpus != layout::NCPUS {
            return Err(ReplayError::Ncpus {
                file: self.ncpus,
                this: layout::NCPUS,
            });
        }
        let mut o = RunOptions::for_scenario(guest, self.scenario, self.seed, &self.knobs);
        o.driver_mutant = self.driver_mutant;
        o.device_mutant = self.device_mutant;
        o.clock = self.clock;
        if let Some(nic) = o.nic.as_mut() {
            nic.backend = match &self.backend {
                BackendConfig::Pcap(_) => {
                    BackendConfig::Pcap(pcap_scratch.to_string_lossy().into_owned())
                }
                b => b.clone(),
            };
        }
        Ok(o)
    }

    /// Why this run is outside what replay claims, if it is.
    pub fn outside_claim(&self) -> Option<&'static str> {
        if self.clock == ClockMode::Virtual {
            return None;
        }
        match (self.scenario, self.device_mutant) {
            (Scenario::Smp, _) => Some("smp runs interleave two CPUs' markers freely"),
            (Scenario::BusyOwnership | Scenario::NapiBudgetZero, _) => {
                Some("an RX interrupt of this scenario comes from the coalescing timer")
            }
            (_, DeviceMutant::DmaAfterDisable | DeviceMutant::IrqAfterDisable) => {
                Some("this device mutant acts from a wall-time ghost timer")
            }
            _ => None,
        }
    }
}

fn is_identity(source: Source, text: &str) -> bool {
    source == Source::Vmm && text.starts_with(IDENTITY_PREFIX)
}

/// Read an events file (`nicproof run --events`: one JSON [`Event`] per
/// line; blank lines are skipped).
pub fn read_events(path: &std::path::Path) -> Result<Vec<Event>, ReplayError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ReplayError::Read {
        path: shown.clone(),
        source,
    })?;
    let mut log = Vec::new();
    for (i, l) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let e = serde_json::from_str(l).map_err(|e| ReplayError::NotEvents {
            path: shown.clone(),
            line: i + 1,
            why: e.to_string(),
        })?;
        log.push(e);
    }
    if log.is_empty() {
        return Err(ReplayError::Empty { path: shown });
    }
    Ok(log)
}

/// One event of a virtual-clock run as replay compares it: all of it,
/// virtual time included (see the module doc).
pub fn strict_line(e: &Event) -> String {
    let mut e = e.clone();
    match &mut e.kind {
        EventKind::Note { text } if is_identity(e.source, text) => {
            if let Ok(id) = RunIdentity::parse(text) {
                *text = id.compared_note();
            }
        }
        EventKind::Note { text } => *text = mask_numbers(text, &["kHz"]),
        _ => {}
    }
    format!("t={} {}", e.time_ns, e.canonical())
}

/// One event as replay compares it (see the module doc).
pub fn replay_line(e: &Event) -> String {
    let mut e = e.clone();
    match &mut e.kind {
        EventKind::Log { text, .. } | EventKind::Verdict { text, .. } => {
            *text = mask_numbers(text, &["us", "pps"]);
        }
        EventKind::Note { text } if is_identity(e.source, text) => {
            // A note that does not parse is compared as written.
            if let Ok(id) = RunIdentity::parse(text) {
                *text = id.compared_note();
            }
        }
        EventKind::Note { text } => *text = mask_numbers(text, &["kHz"]),
        // The run's findings point at event numbers, which shift with
        // interrupts; the events they point at are compared themselves.
        EventKind::Finding { at, detail, .. } => {
            *at = 0;
            *detail = crate::explain::kind_key(detail);
        }
        _ => {}
    }
    let c = e.canonical();
    // canonical() starts with the sequence number.
    c.split_once(' ')
        .map_or(c.clone(), |(_, rest)| rest.to_string())
}

/// `in 455032 us (140 pps)` -> `in N us (N pps)`.
pub fn mask_timings(text: &str) -> String {
    mask_numbers(text, &["us", "pps"])
}

/// Replace each number followed by a word starting with one of `units`
/// by `N` (a leading `(` is kept).
fn mask_numbers(text: &str, units: &[&str]) -> String {
    let words: Vec<&str> = text.split(' ').collect();
    let mut out = Vec::with_capacity(words.len());
    for (i, w) in words.iter().enumerate() {
        let digits = w.trim_start_matches('(');
        let unit = words
            .get(i + 1)
            .is_some_and(|n| units.iter().any(|u| n.starts_with(u)));
        if unit && !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            out.push(format!("{}N", &w[..w.len() - digits.len()]));
        } else {
            out.push((*w).to_string());
        }
    }
    out.join(" ")
}

/// One stream of replay lines, with the `seq` each came from (to find it
/// in the events file; seqs are not compared).
#[derive(Clone, Debug, Default)]
pub struct Stream {
    pub lines: Vec<String>,
    pub seqs: Vec<u64>,
}

impl Stream {
    fn push(&mut self, seq: u64, line: String) {
        self.lines.push(line);
        self.seqs.push(seq);
    }

    /// Number of lines.
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    /// True if there are no lines.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }
}

/// Which stream of a [`ReplayForm`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamName {
    Merged,
    Device,
}

impl fmt::Display for StreamName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StreamName::Merged => "merged",
            StreamName::Device => "device",
        })
    }
}

/// A log in replay form (see the module doc). Two forms are equal when
/// their lines are; seqs do not count.
#[derive(Clone, Debug, Default)]
pub struct ReplayForm {
    /// Every source in order, without device interrupts.
    pub merged: Stream,
    /// The device's own events in order, with its interrupts.
    pub device: Stream,
}

impl PartialEq for ReplayForm {
    fn eq(&self, other: &Self) -> bool {
        self.merged.lines == other.merged.lines && self.device.lines == other.device.lines
    }
}

fn is_irq(e: &Event) -> bool {
    e.source == Source::Device && matches!(e.kind, EventKind::Irq { .. })
}

/// Lines of context shown before a divergence.
const CONTEXT: usize = 3;

impl ReplayForm {
    /// The replay form of a log: strict for a virtual-clock run (its
    /// identity note says so), loose for a wall-clock one.
    pub fn of(log: &[Event]) -> Self {
        let virtual_clock = RunIdentity::find(log).is_ok_and(|id| id.clock == ClockMode::Virtual);
        if virtual_clock {
            let mut f = Self::default();
            for e in log {
                let line = strict_line(e);
                if e.source == Source::Device {
                    f.device.push(e.seq, line.clone());
                }
                f.merged.push(e.seq, line);
            }
            return f;
        }
        let mut f = Self::default();
        let mut last_read: Option<&EventKind> = None;
        for e in log {
            // Collapse a repeated poll: same read as the device's previous
            // event. Interrupts in between do not break a poll (they are
            // timed by the device clock too).
            if let EventKind::MmioRead { .. } = e.kind {
                if last_read == Some(&e.kind) {
                    continue;
                }
            }
            if e.source == Source::Device && !is_irq(e) {
                last_read = matches!(e.kind, EventKind::MmioRead { .. }).then_some(&e.kind);
            }
            let line = replay_line(e);
            if e.source == Source::Device {
                f.device.push(e.seq, line.clone());
            }
            if !is_irq(e) {
                f.merged.push(e.seq, line);
            }
        }
        f
    }

    /// Where `got` first parts from `self` (the expected form): the merged
    /// stream is checked first, then the device stream. `None` if equal.
    pub fn first_difference(&self, got: &ReplayForm) -> Option<Divergence> {
        [
            (StreamName::Merged, &self.merged, &got.merged),
            (StreamName::Device, &self.device, &got.device),
        ]
        .into_iter()
        .find_map(|(stream, x, y)| {
            let i = (0..x.len().max(y.len())).find(|&i| x.lines.get(i) != y.lines.get(i))?;
            let side = |s: &Stream| Side {
                len: s.len(),
                seq: s.seqs.get(i).copied(),
                line: s.lines.get(i).cloned(),
            };
            Some(Divergence {
                stream,
                index: i,
                context: x.lines[i.saturating_sub(CONTEXT)..i].to_vec(),
                expected: side(x),
                got: side(y),
            })
        })
    }
}

/// One side of a [`Divergence`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Side {
    /// Lines in this side's stream.
    pub len: usize,
    /// The event's `seq` in its log (`None`: the stream ended).
    pub seq: Option<u64>,
    /// The line (`None`: the stream ended).
    pub line: Option<String>,
}

/// The first place two replay forms differ.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Divergence {
    pub stream: StreamName,
    /// Line index in the stream.
    pub index: usize,
    /// The (equal) lines just before it.
    pub context: Vec<String>,
    pub expected: Side,
    pub got: Side,
}

impl fmt::Display for Divergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} stream differs at line {} (expected {} lines, got {}):",
            self.stream, self.index, self.expected.len, self.got.len
        )?;
        for c in &self.context {
            writeln!(f, "  before   : {c}")?;
        }
        for (name, s) in [("expected", &self.expected), ("got     ", &self.got)] {
            match (&s.line, s.seq) {
                (Some(l), Some(seq)) => writeln!(f, "  {name} : {l}   (seq {seq})")?,
                _ => writeln!(f, "  {name} : <end of stream>")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(seq: u64, source: Source, kind: EventKind) -> Event {
        Event {
            seq,
            time_ns: seq * 7,
            source,
            kind,
        }
    }

    fn rd(v: u64) -> Event {
        ev(
            0,
            Source::Device,
            EventKind::MmioRead {
                offset: 8,
                value: v,
                size: 4,
            },
        )
    }

    /// Only repeated identical reads collapse; a changed value, a write or
    /// a guest marker in between keeps both; interrupts leave `merged`.
    #[test]
    fn replay_form_collapses_polls_only() {
        let wr = ev(
            0,
            Source::Device,
            EventKind::MmioWrite {
                offset: 0,
                value: 1,
                size: 4,
            },
        );
        let irq = ev(
            0,
            Source::Device,
            EventKind::Irq {
                vector: 0,
                masked: false,
            },
        );
        let f = ReplayForm::of(&[rd(1), rd(1), irq, rd(1), rd(2), rd(2), wr, rd(2)]);
        assert_eq!(f.device.len(), 5, "{:#?}", f.device); // rd1 irq rd2 wr rd2
        assert_eq!(f.merged.len(), 4, "{:#?}", f.merged);
        assert!(f.device.lines.iter().any(|l| l.contains("Irq")));
        assert!(!f.merged.lines.iter().any(|l| l.contains("Irq")));
        assert_eq!(
            mask_timings("64 received in 455032 us (140 pps), 0 open/stop cycles (0 us each)"),
            "64 received in N us (N pps), 0 open/stop cycles (N us each)"
        );
        assert_eq!(mask_timings("seed 7 frames 64"), "seed 7 frames 64");
    }

    #[test]
    fn first_difference_names_stream_index_and_seqs() {
        let dma = |addr| {
            ev(
                9,
                Source::Device,
                EventKind::Dma {
                    dir: nic_model::events::DmaDir::Read,
                    addr,
                    len: 16,
                    cause: "tx-desc".into(),
                },
            )
        };
        let a = ReplayForm::of(&[rd(1), rd(2), dma(0x1000), rd(3)]);
        let b = ReplayForm::of(&[rd(1), rd(2), dma(0x2000), rd(3)]);
        assert_eq!(a.first_difference(&a.clone()), None);
        let d = a.first_difference(&b).expect("differs");
        assert_eq!(
            (d.stream, d.index, d.context.len()),
            (StreamName::Merged, 2, 2)
        );
        assert_eq!(d.expected.seq, Some(9));
        assert!(
            d.expected
                .line
                .as_deref()
                .is_some_and(|l| l.contains("4096")),
            "{d}"
        );
        assert!(
            d.got.line.as_deref().is_some_and(|l| l.contains("8192")),
            "{d}"
        );
        // A shorter log ends early: the missing side says so.
        let c = ReplayForm::of(&[rd(1), rd(2)]);
        let d = a.first_difference(&c).expect("shorter");
        assert_eq!((d.index, d.got.line.clone()), (2, None));
        assert!(d.to_string().contains("<end of stream>"), "{d}");
        // Only the seq changed: still equal.
        let mut shifted = a.clone();
        shifted.merged.seqs.iter_mut().for_each(|s| *s += 5);
        assert_eq!(a, shifted);
    }

    #[test]
    fn identity_round_trips_and_rejects_garbage() {
        let mut knobs = [0; NUM_KNOBS];
        knobs[3] = 16;
        // The identity of real options: the scenario's set-up knobs merged in.
        let mut opts = RunOptions::for_scenario("g".into(), Scenario::Default, 42, &knobs);
        opts.driver_mutant = DriverMutant::NoUnmapAtStop;
        opts.device_mutant = DeviceMutant::ResetIgnored;
        let id = RunIdentity::of(&opts);
        assert_eq!(RunIdentity::parse(&id.note()).unwrap(), id);
        // The clock is in the note; a note without it is a wall-clock run.
        assert!(id.note().contains(" clock=virtual "), "{}", id.note());
        let old = RunIdentity::parse(&id.note().replace(" clock=virtual", "")).unwrap();
        assert_eq!(old, RunIdentity { clock: ClockMode::Wall, ..id.clone() });
        assert!(RunIdentity::parse(&id.note().replace("clock=virtual", "clock=tsc")).is_err());
        let log = [
            ev(
                0,
                Source::Guest,
                EventKind::Note {
                    text: "run: scenario=nope".into(),
                },
            ),
            ev(1, Source::Vmm, EventKind::Note { text: id.note() }),
        ];
        assert_eq!(RunIdentity::find(&log).unwrap(), id);
        assert!(matches!(
            RunIdentity::find(&log[..1]),
            Err(ReplayError::NoIdentity)
        ));
        for bad in [
            id.note().replace("seed=42", "seed=x"),
            id.note().replace("scenario=default", "scenario=nope"),
            id.note().replace(",16,", ",16,,"),
            id.note().replace(" mutant=", " mutnat="),
        ] {
            let e = RunIdentity::parse(&bad).unwrap_err();
            assert!(matches!(e, ReplayError::BadIdentity { .. }), "{bad}: {e}");
        }
        let other = RunIdentity {
            ncpus: 9,
            ..id.clone()
        };
        assert!(matches!(
            other.options("g".into(), Path::new("s.pcap")),
            Err(ReplayError::Ncpus { file: 9, .. })
        ));
        let o = id.options("g".into(), Path::new("s.pcap")).unwrap();
        assert_eq!(
            (o.seed, o.device_mutant, o.knobs[3]),
            (42, DeviceMutant::ResetIgnored, 16)
        );
        assert_eq!(RunIdentity::of(&o), id);
    }

    /// The backend is in the note and comes back from it; a note without
    /// one (an older nicproof's) means the scenario's; a pcap run replays
    /// into the scratch file, and its file name is not compared.
    #[test]
    fn identity_carries_the_backend() {
        let mut opts = RunOptions::for_scenario("g".into(), Scenario::Default, 7, &[0; NUM_KNOBS]);
        let id = |o: &RunOptions| RunIdentity::of(o);
        assert_eq!(id(&opts).backend, BackendConfig::Loopback);
        assert!(
            id(&opts).note().ends_with(" backend=loopback"),
            "{}",
            id(&opts).note()
        );
        for b in [
            BackendConfig::Null,
            BackendConfig::Pcap("/tmp/my run backend=x.pcap".into()),
        ] {
            opts.nic.as_mut().unwrap().backend = b.clone();
            let i = id(&opts);
            assert_eq!(RunIdentity::parse(&i.note()).unwrap(), i, "{}", i.note());
            assert_eq!(parse_backend(&backend_text(&b)), Ok(b));
        }
        // The pcap run: the replay writes to the scratch file only.
        let pcap = id(&opts);
        let o = pcap
            .options("g".into(), Path::new("/scratch.pcap"))
            .unwrap();
        assert_eq!(
            o.nic.unwrap().backend,
            BackendConfig::Pcap("/scratch.pcap".into())
        );
        let note = |text: String| ev(0, Source::Vmm, EventKind::Note { text });
        let other_file = RunIdentity {
            backend: BackendConfig::Pcap("elsewhere.pcap".into()),
            ..pcap.clone()
        };
        assert_eq!(
            replay_line(&note(pcap.note())),
            replay_line(&note(other_file.note()))
        );
        let null = RunIdentity {
            backend: BackendConfig::Null,
            ..pcap.clone()
        };
        assert_ne!(
            replay_line(&note(pcap.note())),
            replay_line(&note(null.note()))
        );
        // An older note: the scenario's backend, and it compares equal to
        // the note naming it.
        let loopback = id(&RunOptions::for_scenario(
            "g".into(),
            Scenario::Default,
            7,
            &[0; NUM_KNOBS],
        ));
        let old = loopback.note().replace(" backend=loopback", "");
        assert!(
            RunIdentity::note_lacks_backend(&old)
                && !RunIdentity::note_lacks_backend(&loopback.note())
        );
        assert_eq!(RunIdentity::parse(&old).unwrap(), loopback);
        assert_eq!(replay_line(&note(old)), replay_line(&note(loopback.note())));
        for bad in ["tap", "pcap:", ""] {
            let e = RunIdentity::parse(&format!(
                "{} backend={bad}",
                loopback.note().replace(" backend=loopback", "")
            ))
            .unwrap_err();
            assert!(e.to_string().contains("backend:"), "{bad}: {e}");
        }
    }

    #[test]
    fn read_events_names_what_is_wrong() {
        let dir = std::env::temp_dir().join(format!("nicproof-replay-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("a.jsonl");
        let good = serde_json::to_string(&rd(5)).unwrap();
        std::fs::write(&p, format!("{good}\n\n{good}\n")).unwrap();
        assert_eq!(read_events(&p).unwrap(), vec![rd(5), rd(5)]);
        std::fs::write(&p, format!("{good}\n{{\"outcome\": \"passed\"}}\n")).unwrap();
        assert!(matches!(
            read_events(&p),
            Err(ReplayError::NotEvents { line: 2, .. })
        ));
        std::fs::write(&p, "\n").unwrap();
        assert!(matches!(read_events(&p), Err(ReplayError::Empty { .. })));
        assert!(matches!(
            read_events(&dir.join("missing")),
            Err(ReplayError::Read { .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn host_tsc_is_masked_in_notes() {
        let n = |t: &str| replay_line(&ev(0, Source::Vmm, EventKind::Note { text: t.into() }));
        assert_eq!(
            n("2 cpus, tsc 2400000 kHz, seed 3"),
            n("2 cpus, tsc 3100000 kHz, seed 3")
        );
        assert_ne!(n("seed 3"), n("seed 4"));
    }
}
