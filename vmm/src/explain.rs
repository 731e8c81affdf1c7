//! Why a run failed, for people: the first cause (the earliest finding,
//! the rule it breaks and the command that shows it again), findings of
//! one kind grouped into one line, and `nicproof explain`'s view of one
//! event with the history that leads to it.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

use nic_model::abi::{regs, Marker};
use nic_model::events::{Event, EventKind, Source};
use nic_model::monitor::overlaps;

use crate::decode;
use crate::oracles::{arg, marker_of};
use crate::outcome::{Finding, Report, RunSettings};
use crate::rules;

/// How wide a line of findings may get before it is cut (the whole text
/// is in the JSON report).
pub const MAX_LINE: usize = 160;

/// Findings of one kind: same oracle, same text once event numbers are
/// masked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    /// The rule the findings name.
    pub oracle: String,
    /// The first finding's text.
    pub detail: String,
    /// How many findings are of this kind.
    pub count: usize,
    /// Event number of the earliest one.
    pub first: u64,
    /// Event number of the latest one.
    pub last: u64,
}

impl fmt::Display for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.count == 1 {
            write!(f, "#{} {}: {}", self.first, self.oracle, self.detail)
        } else {
            write!(
                f,
                "{} x {}: {} (first #{}, last #{})",
                self.count, self.oracle, self.detail, self.first, self.last
            )
        }
    }
}

/// `text` with every number masked (`#361`, `0x20d204c`, `+21`):
/// findings that differ only in the events, addresses or sizes they
/// name are one kind.
pub(crate) fn kind_key(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            // A number, with a 0x prefix and hex digits if it has one.
            let hex = c == '0' && chars.peek() == Some(&'x');
            if hex {
                chars.next();
            }
            while chars.peek().is_some_and(|d| {
                if hex {
                    d.is_ascii_hexdigit()
                } else {
                    d.is_ascii_digit()
                }
            }) {
                chars.next();
            }
            out.push('N');
        } else {
            out.push(c);
        }
    }
    out
}

/// The findings grouped by kind, in order of their first event.
pub fn group(findings: &[Finding]) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    let mut index: BTreeMap<(String, String), usize> = BTreeMap::new();
    for f in findings {
        let key = (f.oracle.clone(), kind_key(&f.detail));
        match index.get(&key) {
            Some(&i) => {
                let g = &mut groups[i];
                g.count += 1;
                g.first = g.first.min(f.seq);
                g.last = g.last.max(f.seq);
            }
            None => {
                index.insert(key, groups.len());
                groups.push(Group {
                    oracle: f.oracle.clone(),
                    detail: f.detail.clone(),
                    count: 1,
                    first: f.seq,
                    last: f.seq,
                });
            }
        }
    }
    groups.sort_by_key(|g| g.first);
    groups
}

/// The earliest finding (the first of equals in report order).
pub fn first_cause(findings: &[Finding]) -> Option<&Finding> {
    findings.iter().min_by_key(|f| f.seq)
}

/// `s` cut to `max` characters with a pointer to where it is whole.
pub fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let head: String = s.chars().take(max).collect();
    format!("{head}... (cut; the JSON report, --json FILE, has it whole)")
}

/// The rule lines of a finding: its sentence and, where it is one of the
/// document's rules, the document's line.
pub fn rule_lines(oracle: &str, detail: &str) -> Vec<String> {
    let Some(r) = rules::rule_for(oracle, detail) else {
        return Vec::new();
    };
    let mut v = vec![format!("rule: {}", r.statement())];
    if let Some(q) = r.quote() {
        v.push(format!(
            "Softnet Driver Issues, {}: \"{}\"",
            q.section, q.text
        ));
    }
    v
}

/// The failed outcome's lines: first cause, the findings grouped, then
/// the reasons no finding stands for (a power-off code, a missing
/// verdict, a protocol error).
pub fn render_failed(f: &mut fmt::Formatter<'_>, r: &Report, reasons: &[String]) -> fmt::Result {
    let other: Vec<&String> = reasons
        .iter()
        .filter(|reason| {
            !r.findings
                .iter()
                .any(|f| !f.detail.is_empty() && reason.contains(&f.detail))
        })
        .collect();
    if let Some(fc) = first_cause(&r.findings) {
        writeln!(
            f,
            "  first cause: {}",
            cut(
                &format!("#{} {}: {}", fc.seq, fc.oracle, fc.detail),
                MAX_LINE
            )
        )?;
        for l in rule_lines(&fc.oracle, &fc.detail) {
            writeln!(f, "    {l}")?;
        }
        writeln!(
            f,
            "    see it again: {}",
            RunSettings::command(r, "--events run.jsonl")
        )?;
        writeln!(f, "                  nicproof explain run.jsonl")?;
        let groups = group(&r.findings);
        writeln!(
            f,
            "  findings: {} in {} kind(s), by first event:",
            r.findings.len(),
            groups.len()
        )?;
        for g in &groups {
            writeln!(f, "    {}", cut(&g.to_string(), MAX_LINE))?;
        }
    }
    for reason in other {
        writeln!(f, "  reason: {}", cut(reason, MAX_LINE))?;
    }
    Ok(())
}

/// Why `nicproof explain` cannot use a file or a SEQ: one line that
/// names the file, says what is wrong with it and what to do instead,
/// and an exit code of its own ([`Self::exit_code`]).
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    /// There is no such file.
    #[error(
        "{path}: no such file; record an event log with `nicproof run ... --events {path}` \
         (a failed report prints the command under `see it again`)"
    )]
    Missing {
        /// The log file, as given.
        path: String,
    },
    /// The file exists but cannot be read (a directory, no permission).
    #[error(
        "cannot read {path}: {why}; explain reads the event log file that \
         `nicproof run ... --events FILE` writes"
    )]
    Unreadable {
        /// The log file, as given.
        path: String,
        /// The operating system's reason.
        why: String,
    },
    /// The file holds no event (no line, or only blank ones).
    #[error(
        "{path} is empty: it holds no event; record a run into it with \
         `nicproof run ... --events {path}`"
    )]
    Empty {
        /// The log file, as given.
        path: String,
    },
    /// The last line is cut short (the run was killed while writing).
    #[error(
        "{path} is truncated at line {line}: the line is cut short ({why}), so the run that \
         wrote it was stopped mid-write; record it again with `nicproof run ... --events {path}`, \
         or explain the complete lines: `head -n {complete} {path} > cut.jsonl; \
         nicproof explain cut.jsonl`"
    )]
    Truncated {
        /// The log file, as given.
        path: String,
        /// 1-based number of the cut line.
        line: usize,
        /// Complete lines before it.
        complete: usize,
        /// The parser's complaint about that line.
        why: String,
    },
    /// The file is something else: not text, or a line that is not an
    /// event of the log `nicproof run --events` writes.
    #[error(
        "{path} is not a nicproof event log: {what}; explain reads the JSON lines that \
         `nicproof run ... --events FILE` writes (a `--json` report or a `--perfetto` \
         timeline is not one)"
    )]
    Foreign {
        /// The log file, as given.
        path: String,
        /// What is wrong, with the line number.
        what: String,
    },
    /// SEQ is not an event of the log.
    #[error(
        "event #{seq} is {where_} {path}, whose events are #{first}..=#{last}; \
         `nicproof explain {path} --log` lists them"
    )]
    NoEvent {
        /// The SEQ asked for.
        seq: u64,
        /// "past the end of" or "not in".
        where_: &'static str,
        /// The log file, as given.
        path: String,
        /// The log's first event number.
        first: u64,
        /// The log's last event number.
        last: u64,
    },
}

impl ExplainError {
    /// `nicproof explain`'s exit code for this error: one per kind, after
    /// the run outcomes' 0..=8 (README "Exit codes").
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Missing { .. } => 10,
            Self::Unreadable { .. } => 11,
            Self::Empty { .. } => 12,
            Self::Truncated { .. } => 13,
            Self::Foreign { .. } => 14,
            Self::NoEvent { .. } => 15,
        }
    }
}

/// Read a saved `--events` log: the file `nicproof run --events` writes,
/// one JSON event per line. A last line cut short (a JSON event begun, no
/// newline after it) is [`ExplainError::Truncated`]; any other line that
/// is not an event, or a file that is not text, is `Foreign`.
pub fn read_log(path: &std::path::Path) -> Result<Vec<Event>, ExplainError> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ExplainError::Missing {
            path: shown.clone(),
        },
        _ => ExplainError::Unreadable {
            path: shown.clone(),
            why: e.to_string(),
        },
    })?;
    let Ok(text) = String::from_utf8(bytes) else {
        return Err(ExplainError::Foreign {
            path: shown,
            what: "it is not text (not UTF-8)".into(),
        });
    };
    let lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .collect();
    let mut log = Vec::with_capacity(lines.len());
    for (k, &(i, l)) in lines.iter().enumerate() {
        match serde_json::from_str::<Event>(l) {
            Ok(e) => log.push(e),
            // Cut short: the last line, begun as an event, and the file
            // does not end with the newline every event line gets.
            Err(e)
                if k + 1 == lines.len() && l.starts_with("{\"seq\":") && !text.ends_with('\n') =>
            {
                return Err(ExplainError::Truncated {
                    path: shown,
                    line: i + 1,
                    complete: i,
                    why: e.to_string(),
                })
            }
            Err(e) => {
                return Err(ExplainError::Foreign {
                    path: shown,
                    what: format!("line {} is not an event ({e})", i + 1),
                })
            }
        }
    }
    if log.is_empty() {
        return Err(ExplainError::Empty { path: shown });
    }
    Ok(log)
}

/// Check that event `seq` is in `log` (read from `path`).
pub fn check_seq(log: &[Event], seq: u64, path: &std::path::Path) -> Result<(), ExplainError> {
    if log.iter().any(|e| e.seq == seq) {
        return Ok(());
    }
    let (first, last) = (
        log.first().map_or(0, |e| e.seq),
        log.last().map_or(0, |e| e.seq),
    );
    Err(ExplainError::NoEvent {
        seq,
        where_: if seq > last {
            "past the end of"
        } else {
            "not in"
        },
        path: path.display().to_string(),
        first,
        last,
    })
}

/// The findings a log carries (`finding` events, appended by the run);
/// for an older log without them, the monitor's violations and the host
/// oracles over the log.
pub fn findings_of(log: &[Event]) -> Vec<Finding> {
    let stored: Vec<Finding> = log
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Finding { oracle, at, detail } => Some(Finding {
                oracle: oracle.clone(),
                seq: *at,
                detail: detail.clone(),
            }),
            _ => None,
        })
        .collect();
    if !stored.is_empty() {
        return stored;
    }
    // As `judge::run` names them: the monitor's violations and a failing
    // verdict, then the host oracles.
    let mut f = crate::judge::log_findings(log);
    f.extend(
        crate::oracles::check_all(log, true)
            .into_iter()
            .map(|o| Finding {
                oracle: o.oracle.name().into(),
                seq: o.seq,
                detail: o.detail,
            }),
    );
    f
}

/// Events shown around the one explained.
pub const AROUND: usize = 20;

/// Markers the driver reports about its own life (the "last driver
/// markers" before an event).
fn is_driver_marker(e: &Event) -> bool {
    e.source == Source::Guest && matches!(e.kind, EventKind::Marker { .. })
}

/// `nicproof explain`: event `seq` of `log` (with `finding` naming why it
/// matters, if it is a first cause) and the history that leads to it.
pub fn explain_at(log: &[Event], seq: u64, finding: Option<&Finding>) -> String {
    let mut out = String::new();
    let Some(pos) = log.iter().position(|e| e.seq == seq) else {
        let _ = writeln!(out, "event #{seq} is not in the log");
        return out;
    };
    let e = &log[pos];
    if let Some(f) = finding {
        let _ = writeln!(out, "first cause: #{} {}: {}", f.seq, f.oracle, f.detail);
        for l in rule_lines(&f.oracle, &f.detail) {
            let _ = writeln!(out, "  {l}");
        }
    }
    let _ = writeln!(out, "event: {}", decode::line(e));
    let before = &log[..pos];
    match &e.kind {
        EventKind::Dma { addr, len, .. } => dma_history(&mut out, before, *addr, *len),
        EventKind::Irq { vector, .. } => irq_history(&mut out, before, *vector),
        EventKind::Marker { marker, args, .. }
            if marker == Marker::DmaUnmap.name() || marker == Marker::DmaMap.name() =>
        {
            dma_history(&mut out, before, arg(args, 1), arg(args, 2))
        }
        _ => {}
    }
    let drivers: Vec<&Event> = before
        .iter()
        .rev()
        .filter(|e| is_driver_marker(e))
        .take(5)
        .collect();
    if !drivers.is_empty() {
        let _ = writeln!(out, "last driver markers before it:");
        for d in drivers.iter().rev() {
            let _ = writeln!(out, "  {}", decode::line(d));
        }
    }
    let from = pos.saturating_sub(AROUND / 2);
    let to = (pos + AROUND / 2 + 1).min(log.len());
    let _ = writeln!(
        out,
        "events #{}..#{} (decoded):",
        log[from].seq,
        log[to - 1].seq
    );
    for ev in &log[from..to] {
        let mark = if ev.seq == seq { ">" } else { " " };
        let _ = writeln!(out, "{mark} {}", decode::line(ev));
    }
    out
}

/// For a DMA of `addr+len`: every map and unmap of an overlapping range
/// before it, and whether it was mapped at the time.
fn dma_history(out: &mut String, before: &[Event], addr: u64, len: u64) {
    let mut live = false;
    let mut lines = Vec::new();
    for e in before {
        let Some((m, args, _)) = marker_of(e) else {
            continue;
        };
        if !matches!(m, Marker::DmaMap | Marker::DmaUnmap) {
            continue;
        }
        if overlaps(addr, len.max(1), arg(args, 1), arg(args, 2).max(1)) {
            live = m == Marker::DmaMap;
            lines.push(decode::line(e));
        }
    }
    let _ = writeln!(
        out,
        "maps of {addr:#x}+{len} before it: {} ({})",
        lines.len(),
        match (lines.is_empty(), live) {
            (true, _) => "never mapped",
            (false, true) => "mapped at the time",
            (false, false) => "unmapped by then",
        }
    );
    // The last few say enough; a buffer recycled a thousand times does not need all.
    for l in lines.iter().skip(lines.len().saturating_sub(6)) {
        let _ = writeln!(out, "  {l}");
    }
}

/// For an interrupt on `vector`: its MSI-X mask bit and the device's
/// enable state (INT_ENABLE, CTRL) as last written before it, and whether
/// the driver's stop had returned.
fn irq_history(out: &mut String, before: &[Event], vector: u16) {
    let ctrl_off = u64::from(nic_model::abi::pci::MSIX_TABLE_OFFSET) + 16 * u64::from(vector) + 12;
    let last_write = |off: u64| {
        before
            .iter()
            .rev()
            .find(|e| matches!(e.kind, EventKind::MmioWrite { offset, .. } if offset == off))
    };
    let show = |name: &str, e: Option<&Event>, what: &dyn Fn(u64) -> String| match e {
        Some(
            e @ Event {
                kind: EventKind::MmioWrite { value, .. },
                ..
            },
        ) => {
            format!("{name} {value:#x} ({}) written at #{}", what(*value), e.seq)
        }
        _ => format!("{name} never written (reset value)"),
    };
    let _ = writeln!(
        out,
        "vector {vector} ({}): {}",
        decode::vector_name(vector),
        show(
            &format!("MSIX[{vector}].ctrl"),
            last_write(ctrl_off),
            &|v| if v & 1 != 0 {
                "masked".into()
            } else {
                "unmasked".into()
            }
        )
    );
    let _ = writeln!(
        out,
        "device: {}; {}",
        show(
            "INT_ENABLE",
            last_write(u64::from(regs::INT_ENABLE)),
            &|v| format!(
                "tx {} rx {} err {}",
                v & regs::INT_TX as u64 != 0,
                v & regs::INT_RX as u64 != 0,
                v & regs::INT_ERR as u64 != 0
            )
        ),
        show("CTRL", last_write(u64::from(regs::CTRL)), &|v| format!(
            "tx-en {} rx-en {}",
            v & regs::CTRL_TX_EN as u64 != 0,
            v & regs::CTRL_RX_EN as u64 != 0
        ))
    );
    let stopped = before.iter().rev().find_map(|e| match marker_of(e) {
        Some((Marker::StopExit, _, _)) => Some(Some(e.seq)),
        Some((Marker::OpenEnter, _, _)) => Some(None),
        _ => None,
    });
    if let Some(Some(at)) = stopped {
        let _ = writeln!(
            out,
            "the driver's stop returned at #{at}: no interrupt may follow"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nic_model::events::DmaDir;

    fn f(oracle: &str, seq: u64, detail: &str) -> Finding {
        Finding {
            oracle: oracle.into(),
            seq,
            detail: detail.into(),
        }
    }

    #[test]
    fn repeated_findings_are_one_line_with_count_first_and_last() {
        let fs = vec![
            f("guest-verdict", 900, "fail: reset-poll: x"),
            f("device-error", 360, "write-during-reset at #359"),
            f("device-error", 380, "write-during-reset at #379"),
            f(
                "reset-wait",
                358,
                "unmapped while the reset started at #357 was still running",
            ),
            f("device-error", 370, "write-during-reset at #369"),
        ];
        let g = group(&fs);
        assert_eq!(g.len(), 3);
        assert_eq!((g[0].oracle.as_str(), g[0].count), ("reset-wait", 1));
        assert_eq!((g[1].count, g[1].first, g[1].last), (3, 360, 380));
        assert_eq!(
            g[1].to_string(),
            "3 x device-error: write-during-reset at #359 (first #360, last #380)"
        );
        assert_eq!(
            g[0].to_string(),
            "#358 reset-wait: unmapped while the reset started at #357 was still running"
        );
        assert_eq!(first_cause(&fs).unwrap().seq, 358);
        // Different texts stay apart; numbers and addresses do not split a kind.
        assert_eq!(group(&[f("a", 1, "x #1"), f("a", 2, "y #2")]).len(), 2);
        assert_eq!(
            group(&[f("a", 1, "at 0x10 code 9"), f("a", 2, "at 0x2f code 9")]).len(),
            1
        );
        assert_eq!(
            kind_key("0x20d204c+21 unmapped at #360"),
            "N+N unmapped at #N"
        );
    }

    #[test]
    fn long_lines_are_cut_with_a_pointer_to_the_json() {
        let s = "x".repeat(300);
        let c = cut(&s, 100);
        assert!(
            c.starts_with(&"x".repeat(100)) && c.contains("--json"),
            "{c}"
        );
        assert_eq!(cut("short", 100), "short");
    }

    fn ev(seq: u64, source: Source, kind: EventKind) -> Event {
        Event {
            seq,
            time_ns: 0,
            source,
            kind,
        }
    }

    fn marker(seq: u64, m: Marker, args: &[u64]) -> Event {
        ev(
            seq,
            Source::Guest,
            EventKind::Marker {
                marker: m.name().into(),
                args: args.to_vec(),
                text: String::new(),
                cpu: None,
            },
        )
    }

    #[test]
    fn a_dma_is_explained_by_its_maps_and_the_last_markers() {
        let log = vec![
            marker(0, Marker::OpenEnter, &[]),
            marker(1, Marker::DmaMap, &[0x1000, 64, 0]),
            marker(2, Marker::DmaMap, &[0x9000, 64, 0]),
            marker(3, Marker::DmaUnmap, &[0x1000, 64]),
            marker(4, Marker::StopExit, &[]),
            ev(
                5,
                Source::Device,
                EventKind::Dma {
                    dir: DmaDir::Read,
                    addr: 0x1010,
                    len: 16,
                    cause: "ghost".into(),
                },
            ),
        ];
        let fd = f("dma-after-stop", 5, "ghost Read 0x1010+16");
        let s = explain_at(&log, 5, Some(&fd));
        assert!(
            s.starts_with("first cause: #5 dma-after-stop: ghost Read 0x1010+16\n  rule: "),
            "{s}"
        );
        assert!(
            s.contains("After the ndo_stop routine has been called"),
            "{s}"
        );
        // The overlapping map and unmap, and not the unrelated map at #2.
        assert!(
            s.contains(
                "maps of 0x1010+16 before it: 2 (unmapped by then)\n  \
                 #1 guest marker dma-map addr=0x1000 len=64 dir=to-device\n  \
                 #3 guest marker dma-unmap addr=0x1000 len=64\nlast driver markers"
            ),
            "{s}"
        );
        assert!(s.contains("last driver markers before it:"), "{s}");
        assert!(
            s.contains("> #5 device dma dir=read addr=0x1010 len=16 cause=ghost"),
            "{s}"
        );
    }

    #[test]
    fn an_interrupt_is_explained_by_its_mask_and_enable_state() {
        let msix1 = u64::from(nic_model::abi::pci::MSIX_TABLE_OFFSET) + 16 + 12;
        let log = vec![
            ev(
                0,
                Source::Device,
                EventKind::MmioWrite {
                    offset: msix1,
                    value: 0,
                    size: 4,
                },
            ),
            ev(
                1,
                Source::Device,
                EventKind::MmioWrite {
                    offset: u64::from(regs::INT_ENABLE),
                    value: 0,
                    size: 4,
                },
            ),
            marker(2, Marker::StopExit, &[]),
            ev(
                3,
                Source::Device,
                EventKind::Irq {
                    vector: 1,
                    masked: false,
                },
            ),
        ];
        let s = explain_at(&log, 3, None);
        assert!(
            s.contains("vector 1 (rx): MSIX[1].ctrl 0x0 (unmasked) written at #0"),
            "{s}"
        );
        assert!(
            s.contains("INT_ENABLE 0x0 (tx false rx false err false) written at #1"),
            "{s}"
        );
        assert!(s.contains("CTRL never written"), "{s}");
        assert!(s.contains("the driver's stop returned at #2"), "{s}");
    }

    #[test]
    fn findings_come_from_the_log_or_are_recomputed() {
        let mut log = vec![ev(
            0,
            Source::Device,
            EventKind::Violation {
                rule: "dma-after-stop".into(),
                detail: "x".into(),
            },
        )];
        assert_eq!(findings_of(&log)[0].oracle, "dma-after-stop");
        log.push(ev(
            1,
            Source::Vmm,
            EventKind::Finding {
                oracle: "skb-ledger".into(),
                at: 0,
                detail: "y".into(),
            },
        ));
        assert_eq!(findings_of(&log), vec![f("skb-ledger", 0, "y")]);
    }
}
