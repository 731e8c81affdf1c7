//! A run's identity: its (scenario, seed, mutants, knobs, backend,
//! clock), written into every event log as one VMM note, read back by
//! `nicproof replay`; and reading a saved events file.

use std::path::{Path, PathBuf};

use nic_model::abi::{knob, DeviceMutant, DriverMutant, Scenario, NUM_KNOBS};
use nic_model::config::BackendConfig;
use nic_model::events::{Event, EventKind, Source};

use crate::arch::x86_64::layout;
use crate::sim::ClockMode;
use crate::vm::RunOptions;

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
    BadIdentity {
        /// The note's text.
        text: String,
        /// What is wrong with it.
        why: String,
    },
    /// The events file cannot be read.
    #[error("cannot read {path}")]
    Read {
        /// The events file.
        path: String,
        /// The read error.
        #[source]
        source: std::io::Error,
    },
    /// A line of the file is not an [`Event`].
    #[error(
        "{path} line {line} is not a nicproof event ({why}); replay reads the file \
         `nicproof run --events FILE` writes"
    )]
    NotEvents {
        /// The events file.
        path: String,
        /// The 1-based line number.
        line: usize,
        /// The JSON parser's complaint.
        why: String,
    },
    /// The file has no events.
    #[error("{path} holds no events; write one with `nicproof run --events FILE`")]
    Empty {
        /// The events file.
        path: String,
    },
    /// The log was made by a VMM with another vCPU count.
    #[error("the run had {file} vCPUs; this nicproof boots {this}")]
    Ncpus {
        /// vCPUs of the logged run.
        file: u32,
        /// vCPUs this VMM boots.
        this: u32,
    },
}

/// Everything that picks a run's events: replaying it needs only this
/// and the guest image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunIdentity {
    /// The scenario the guest ran.
    pub scenario: Scenario,
    /// The run's seed.
    pub seed: u64,
    /// The driver mutant the guest ran.
    pub driver_mutant: DriverMutant,
    /// The device mutant the NIC ran.
    pub device_mutant: DeviceMutant,
    /// The knobs the guest got (the scenario's set-up merged with the
    /// command line's), so `variant` and `bad-guest` are in here too.
    pub knobs: [u64; NUM_KNOBS],
    /// vCPUs the VMM booted (a replay needs the same count).
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
    pub(super) fn compared_note(&self) -> String {
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

pub(super) fn is_identity(source: Source, text: &str) -> bool {
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
