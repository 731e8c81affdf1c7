//! The one ordered event log that device (host) and driver (guest) both
//! write, and that every oracle reads.
//!
//! Each event has a sequence number on one clock. `time_ns` is wall time
//! since the run started ([`EventLog::new`]), or the VMM's virtual time in
//! deterministic mode ([`EventLog::with_clock`]), where it repeats run
//! after run and replay compares it.

use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Who produced an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// The NIC model.
    Device,
    /// The guest, through the control port.
    Guest,
    /// The VMM itself.
    Vmm,
}

/// Direction of a DMA access, seen from the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DmaDir {
    /// The device read guest memory.
    Read,
    /// The device wrote guest memory.
    Write,
}

/// What happened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum EventKind {
    /// A register read through BAR0.
    MmioRead {
        /// Byte offset into BAR0.
        offset: u64,
        /// The value read.
        value: u64,
        /// Access width in bytes.
        size: u8,
    },
    /// A register write through BAR0.
    MmioWrite {
        /// Byte offset into BAR0.
        offset: u64,
        /// The value written.
        value: u64,
        /// Access width in bytes.
        size: u8,
    },
    /// A PCI configuration space write.
    ConfigWrite {
        /// Byte offset into configuration space.
        offset: u8,
        /// The value written.
        value: u32,
        /// Access width in bytes.
        size: u8,
    },
    /// A device access to guest memory, made through the DMA gate.
    /// `cause` is a stable name (`tx-desc`, `tx-data`, ...); it is a
    /// `Cow` so the device logs a static name without allocating on
    /// every access (compare it with `==` against a `&str`).
    Dma {
        /// Read from or write to guest memory.
        dir: DmaDir,
        /// Guest physical address.
        addr: u64,
        /// Bytes.
        len: u64,
        /// What the access is for (`tx-desc`, `tx-data`, ...).
        cause: Cow<'static, str>,
    },
    /// An MSI-X message sent (or, if `masked`, latched in the PBA).
    Irq {
        /// The MSI-X vector.
        vector: u16,
        /// Latched in the PBA instead of sent.
        masked: bool,
    },
    /// A reset began.
    ResetStart,
    /// A reset finished.
    ResetDone,
    /// A frame left the device: `seq` counts frames since the run began.
    /// (JSON key `frame`: the event's own `seq` sits beside it, flattened.)
    TxFrame {
        /// Frames sent since the run began.
        #[serde(rename = "frame")]
        seq: u64,
        /// Bytes.
        len: u32,
        /// [`crate::frame_hash`] of its bytes.
        hash: u64,
    },
    /// A frame was written into an RX buffer.
    RxFrame {
        /// The TX frame it is (loopback).
        #[serde(rename = "frame")]
        seq: u64,
        /// The RX buffer's guest physical address.
        addr: u64,
        /// Bytes written.
        len: u32,
    },
    /// The device latched a fault in its error register.
    DeviceFault {
        /// A [`crate::abi::DeviceError`] code.
        code: u32,
        /// The address or value it concerns.
        addr: u64,
    },
    /// A DMA monitor check failed.
    Violation {
        /// The rule's stable name ([`crate::rules::Rule::name`]).
        rule: String,
        /// What went wrong.
        detail: String,
    },
    /// A guest marker ([`crate::abi::Marker`] by name) with its arguments.
    Marker {
        /// The marker's name.
        marker: String,
        /// Its arguments (`args[1..]` of the record: the id is left out).
        args: Vec<u64>,
        /// Its text, if any.
        text: String,
        /// The vCPU whose control-port write carried it (`None` where no
        /// vCPU sends markers: host-side test rigs, logs saved before the
        /// field existed).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cpu: Option<u32>,
    },
    /// A guest log line.
    Log {
        /// 1 error .. 5 trace.
        level: u8,
        /// The line.
        text: String,
    },
    /// The guest's own verdict.
    Verdict {
        /// Every guest-side check held.
        pass: bool,
        /// Why.
        text: String,
    },
    /// Anything else the VMM wants on the timeline (vCPU start, exits).
    Note {
        /// The note.
        text: String,
    },
    /// A finding of the run's judgement (a host oracle, a monitor rule,
    /// the guest's verdict), appended by the VMM after the run so that
    /// the log alone says what failed; `at` is the event that shows it.
    Finding {
        /// The rule's stable name.
        oracle: String,
        /// The event that shows it.
        at: u64,
        /// What went wrong.
        detail: String,
    },
}

/// One entry of the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Position on the one clock, from 0.
    pub seq: u64,
    /// Wall time since the log was created (informational).
    pub time_ns: u64,
    /// Producer.
    pub source: Source,
    /// Payload.
    #[serde(flatten)]
    pub kind: EventKind,
}

impl Event {
    /// The form replay compares: everything but wall time.
    pub fn canonical(&self) -> String {
        format!("{} {:?} {:?}", self.seq, self.source, self.kind)
    }
}

/// Stable names of the device's DMA causes. A compact DMA record (see
/// [`Batch::dma`]) stores an index into this table.
pub const DMA_CAUSES: [&str; 8] = [
    "tx-desc",
    "tx-data",
    "tx-status",
    "rx-desc",
    "rx-data",
    "rx-status",
    "poll",
    "ghost",
];

/// One stored entry. Most events of a run are device DMA accesses, and
/// they sit on the device's hot path (one or more per packet), so they
/// are kept inline in 16 bytes and a batch of them is published with one
/// copy; every other event (about 100 bytes as an [`Event`]) lives in a
/// side table. Time and source are kept once per published batch.
/// [`EventLog::snapshot`] expands all of it into the one public form, so
/// readers never see this.
#[derive(Clone, Copy, Debug)]
struct Entry {
    /// A DMA's address, or an other event's index into its batch's
    /// events in `Inner::others`.
    word: u64,
    /// A DMA's length. The device's accesses are at most a frame or a
    /// descriptor burst (its buffers are sized from 16-bit lengths), so 32
    /// bits always hold it.
    len: u32,
    /// [`Entry::OTHER`], or a DMA's cause (index into [`DMA_CAUSES`]) |
    /// [`Entry::WRITE`] for a write.
    tag: u32,
}

impl Entry {
    const OTHER: u32 = u32::MAX;
    const WRITE: u32 = 1 << 8;

    #[inline(always)]
    fn dma(dir: DmaDir, addr: u64, len: u64, cause: u8) -> Self {
        debug_assert!(len <= u64::from(u32::MAX));
        let w = if dir == DmaDir::Write { Self::WRITE } else { 0 };
        Self {
            word: addr,
            len: len as u32,
            tag: u32::from(cause) | w,
        }
    }

    fn other(i: usize) -> Self {
        Self {
            word: i as u64,
            len: 0,
            tag: Self::OTHER,
        }
    }
}

/// Where one published batch starts, when and from whom.
#[derive(Clone, Copy, Debug)]
struct BatchMark {
    first: usize,
    time_ns: u64,
    source: Source,
    others_base: usize,
}

#[derive(Debug, Default)]
struct Inner {
    /// One entry per sequence number.
    entries: Vec<Entry>,
    others: Vec<EventKind>,
    /// Ordered by `first`; the first batch starts at 0.
    batches: Vec<BatchMark>,
}

impl Inner {
    fn expand(&self, seq: usize, b: &BatchMark) -> Event {
        let e = self.entries[seq];
        let (source, kind) = if e.tag == Entry::OTHER {
            (
                b.source,
                self.others[b.others_base + e.word as usize].clone(),
            )
        } else {
            let cause = (e.tag & 0xff) as usize;
            let dir = if e.tag & Entry::WRITE != 0 {
                DmaDir::Write
            } else {
                DmaDir::Read
            };
            let kind = EventKind::Dma {
                dir,
                addr: e.word,
                len: u64::from(e.len),
                cause: Cow::Borrowed(DMA_CAUSES.get(cause).copied().unwrap_or("?")),
            };
            (Source::Device, kind)
        };
        Event {
            seq: seq as u64,
            time_ns: b.time_ns,
            source,
            kind,
        }
    }

    /// Events `from..` in the public form.
    fn expand_from(&self, from: usize) -> Vec<Event> {
        let mut out = Vec::with_capacity(self.entries.len().saturating_sub(from));
        let mut bi = self
            .batches
            .partition_point(|b| b.first <= from)
            .saturating_sub(1);
        for seq in from..self.entries.len() {
            while bi + 1 < self.batches.len() && self.batches[bi + 1].first <= seq {
                bi += 1;
            }
            out.push(self.expand(seq, &self.batches[bi]));
        }
        out
    }

    fn mark(&mut self, time_ns: u64, source: Source) {
        let m = BatchMark {
            first: self.entries.len(),
            time_ns,
            source,
            others_base: self.others.len(),
        };
        self.batches.push(m);
    }
}

/// The events of one device entry point (a register access, a timer),
/// gathered without the log's lock and published in order by
/// [`EventLog::publish`]: taking the lock and the clock per event cost
/// more than the work they record.
#[derive(Debug, Default)]
pub struct Batch {
    entries: Vec<Entry>,
    kinds: Vec<EventKind>,
}

impl Batch {
    /// An empty batch with room for `n` events.
    pub fn with_capacity(n: usize) -> Self {
        Self {
            entries: Vec::with_capacity(n),
            kinds: Vec::with_capacity(n / 4),
        }
    }

    /// Queue a device DMA access in compact form; `cause` indexes
    /// [`DMA_CAUSES`]. It reads back as `EventKind::Dma` from the device.
    #[inline(always)]
    pub fn dma(&mut self, dir: DmaDir, addr: u64, len: u64, cause: u8) {
        self.entries.push(Entry::dma(dir, addr, len, cause));
    }

    /// Queue any event.
    pub fn push(&mut self, kind: EventKind) {
        self.entries.push(Entry::other(self.kinds.len()));
        self.kinds.push(kind);
    }

    /// True if nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// A shared, append-only, ordered event log. Cloning shares the log.
#[derive(Clone)]
pub struct EventLog {
    inner: Arc<Mutex<Inner>>,
    clock: LogClock,
}

/// Where an event's `time_ns` comes from.
#[derive(Clone, Debug)]
enum LogClock {
    /// Wall time since the log was created.
    Wall(Instant),
    /// A virtual clock in ns, owned by someone else (the VMM).
    Shared(Arc<AtomicU64>),
}

impl Default for EventLog {
    fn default() -> Self {
        Self::new()
    }
}

impl EventLog {
    /// A new, empty log whose clock starts now.
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner::default())),
            clock: LogClock::Wall(Instant::now()),
        }
    }

    /// A new, empty log whose events carry the time in `clock` (ns).
    pub fn with_clock(clock: Arc<AtomicU64>) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner::default())),
            clock: LogClock::Shared(clock),
        }
    }

    fn time_ns(&self) -> u64 {
        match &self.clock {
            LogClock::Wall(start) => start.elapsed().as_nanos() as u64,
            LogClock::Shared(c) => c.load(Ordering::Acquire),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A poisoned lock only means another thread panicked mid-push;
        // the log is still valid, so keep logging.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Append an event and return its sequence number.
    pub fn push(&self, source: Source, kind: EventKind) -> u64 {
        let time_ns = self.time_ns();
        let mut v = self.lock();
        let seq = v.entries.len();
        v.mark(time_ns, source);
        v.entries.push(Entry::other(0));
        v.others.push(kind);
        seq as u64
    }

    /// Append every event in `batch` (draining it) under one lock and one
    /// clock read; returns the first sequence number. Compact DMA records
    /// are device events whatever `source` says.
    pub fn publish(&self, source: Source, batch: &mut Batch) -> u64 {
        let time_ns = self.time_ns();
        let mut v = self.lock();
        let first = v.entries.len() as u64;
        if batch.entries.is_empty() {
            return first;
        }
        v.mark(time_ns, source);
        v.entries.extend_from_slice(&batch.entries);
        batch.entries.clear();
        v.others.append(&mut batch.kinds);
        first
    }

    /// Append every event in `kinds` (draining it) as one batch; returns
    /// the first sequence number.
    pub fn push_batch(&self, source: Source, kinds: &mut Vec<EventKind>) -> u64 {
        let mut b = Batch {
            entries: (0..kinds.len()).map(Entry::other).collect(),
            kinds: std::mem::take(kinds),
        };
        self.publish(source, &mut b)
    }

    /// A copy of every event so far.
    pub fn snapshot(&self) -> Vec<Event> {
        self.lock().expand_from(0)
    }

    /// Number of events so far.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// True if nothing was logged yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drop every event; sequence numbers restart at 0. For benchmarks
    /// that must keep memory flat, never for a run being judged.
    pub fn clear(&self) {
        let mut v = self.lock();
        v.entries.clear();
        v.others.clear();
        v.batches.clear();
    }

    /// The last `n` events.
    pub fn tail(&self, n: usize) -> Vec<Event> {
        let v = self.lock();
        v.expand_from(v.entries.len().saturating_sub(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_are_dense_and_ordered() {
        let log = EventLog::new();
        assert_eq!(log.push(Source::Device, EventKind::ResetStart), 0);
        assert_eq!(
            log.push(
                Source::Guest,
                EventKind::Log {
                    level: 3,
                    text: "x".into()
                }
            ),
            1
        );
        let s = log.snapshot();
        assert_eq!(s.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![0, 1]);
        assert_eq!(log.tail(1)[0].source, Source::Guest);
    }

    #[test]
    fn batches_keep_sequence_numbers_dense() {
        let log = EventLog::new();
        log.push(Source::Guest, EventKind::ResetStart);
        let mut b = vec![EventKind::ResetDone, EventKind::ResetStart];
        assert_eq!(log.push_batch(Source::Device, &mut b), 1);
        assert!(b.is_empty());
        assert_eq!(log.push(Source::Vmm, EventKind::ResetDone), 3);
        let s = log.snapshot();
        assert_eq!(
            s.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![0, 1, 2, 3]
        );
        assert_eq!(s[2].kind, EventKind::ResetStart);
    }

    #[test]
    fn compact_dma_records_read_back_in_order() {
        let log = EventLog::new();
        log.push(Source::Guest, EventKind::ResetStart);
        let mut b = Batch::with_capacity(4);
        b.dma(DmaDir::Read, 0x1000, 16, 0);
        b.push(EventKind::TxFrame {
            seq: 0,
            len: 60,
            hash: 7,
        });
        b.dma(DmaDir::Write, 0x1008, 4, 2);
        assert_eq!(log.publish(Source::Device, &mut b), 1);
        assert!(b.is_empty());
        let s = log.snapshot();
        assert_eq!(s.len(), 4);
        assert_eq!(
            s.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![0, 1, 2, 3]
        );
        assert_eq!(
            s[1].kind,
            EventKind::Dma {
                dir: DmaDir::Read,
                addr: 0x1000,
                len: 16,
                cause: "tx-desc".into()
            }
        );
        assert_eq!(s[1].source, Source::Device);
        assert_eq!(
            s[2].kind,
            EventKind::TxFrame {
                seq: 0,
                len: 60,
                hash: 7
            }
        );
        assert!(matches!(&s[3].kind, EventKind::Dma { cause, len: 4, .. } if cause == "tx-status"));
        assert_eq!(log.tail(2), s[2..].to_vec());
        // Batches after the first keep their own source and others.
        log.push(Source::Vmm, EventKind::Note { text: "n".into() });
        let mut b = Batch::default();
        b.push(EventKind::ResetDone);
        b.dma(DmaDir::Write, 8, 1, 4);
        assert_eq!(log.publish(Source::Device, &mut b), 5);
        let t = log.tail(4);
        assert_eq!(
            t.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![3, 4, 5, 6]
        );
        assert_eq!(
            (t[1].source, &t[1].kind),
            (Source::Vmm, &EventKind::Note { text: "n".into() })
        );
        assert_eq!(
            (t[2].source, &t[2].kind),
            (Source::Device, &EventKind::ResetDone)
        );
        assert!(matches!(&t[3].kind, EventKind::Dma { cause, .. } if cause == "rx-data"));
        assert_eq!(log.snapshot()[3..].to_vec(), t);
        // The point of the compact form: a DMA costs 16 bytes, not ~100.
        assert_eq!(std::mem::size_of::<Entry>(), 16);
        log.clear();
        assert!(log.is_empty() && log.snapshot().is_empty());
    }

    #[test]
    fn frame_events_round_trip_through_json() {
        // Event is flattened: a payload field named `seq` would collide
        // with the event's own and the JSON line would not parse back.
        for kind in [
            EventKind::TxFrame {
                seq: 5,
                len: 60,
                hash: 9,
            },
            EventKind::RxFrame {
                seq: 6,
                addr: 0x1000,
                len: 60,
            },
        ] {
            let e = Event {
                seq: 42,
                time_ns: 1,
                source: Source::Device,
                kind,
            };
            let j = serde_json::to_string(&e).unwrap();
            assert_eq!(serde_json::from_str::<Event>(&j).unwrap(), e, "{j}");
        }
    }

    #[test]
    fn canonical_form_ignores_wall_time() {
        let a = Event {
            seq: 3,
            time_ns: 1,
            source: Source::Vmm,
            kind: EventKind::ResetDone,
        };
        let b = Event {
            time_ns: 999,
            ..a.clone()
        };
        assert_eq!(a.canonical(), b.canonical());
    }
}
