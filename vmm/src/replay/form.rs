//! The replay form of an event log: what replay compares (strictly for
//! the virtual clock, collapsed and masked for `--clock wall`; see the
//! module doc of `replay`), and where two forms part.

use std::fmt;

use nic_model::events::{Event, EventKind, Source};

use super::identity::{is_identity, RunIdentity};
use crate::sim::ClockMode;

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
    /// The replay lines, compared between runs.
    pub lines: Vec<String>,
    /// The event `seq` of each line, same index.
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
    /// [`ReplayForm::merged`].
    Merged,
    /// [`ReplayForm::device`].
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
    /// The stream they differ in.
    pub stream: StreamName,
    /// Line index in the stream.
    pub index: usize,
    /// The (equal) lines just before it.
    pub context: Vec<String>,
    /// The recorded run's side.
    pub expected: Side,
    /// The replayed run's side.
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
