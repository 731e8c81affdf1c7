//! The one ordered event log that device (host) and driver (guest) both
//! write, and that every oracle reads.
//!
//! Each event has a sequence number on one clock. `time_ns` is wall time
//! since the run started and is for humans only: replay compares the
//! [`Event::canonical`] form, which leaves it out.

use serde::{Deserialize, Serialize};
use std::borrow::Cow;
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
    MmioRead { offset: u64, value: u64, size: u8 },
    /// A register write through BAR0.
    MmioWrite { offset: u64, value: u64, size: u8 },
    /// A PCI configuration space write.
    ConfigWrite { offset: u8, value: u32, size: u8 },
    /// A device access to guest memory, made through the DMA gate.
    /// `cause` is a stable name (`tx-desc`, `tx-data`, ...); it is a
    /// `Cow` so the device logs a static name without allocating on
    /// every access (compare it with `==` against a `&str`).
    Dma { dir: DmaDir, addr: u64, len: u64, cause: Cow<'static, str> },
    /// An MSI-X message sent (or, if `masked`, latched in the PBA).
    Irq { vector: u16, masked: bool },
    /// A reset began.
    ResetStart,
    /// A reset finished.
    ResetDone,
    /// A frame left the device: `seq` counts frames since the run began.
    /// (JSON key `frame`: the event's own `seq` sits beside it, flattened.)
    TxFrame {
        #[serde(rename = "frame")]
        seq: u64,
        len: u32,
        hash: u64,
    },
    /// A frame was written into an RX buffer.
    RxFrame {
        #[serde(rename = "frame")]
        seq: u64,
        addr: u64,
        len: u32,
    },
    /// The device latched a fault in its error register.
    DeviceFault { code: u32, addr: u64 },
    /// A DMA monitor check failed.
    Violation { rule: String, detail: String },
    /// A guest marker ([`crate::abi::Marker`] by name) with its arguments.
    Marker { marker: String, args: Vec<u64>, text: String },
    /// A guest log line.
    Log { level: u8, text: String },
    /// The guest's own verdict.
    Verdict { pass: bool, text: String },
    /// Anything else the VMM wants on the timeline (vCPU start, exits).
    Note { text: String },
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

/// A shared, append-only, ordered event log. Cloning shares the log.
#[derive(Clone)]
pub struct EventLog {
    inner: Arc<Mutex<Vec<Event>>>,
    start: Instant,
}

impl Default for EventLog {
    fn default() -> Self {
        Self::new()
    }
}

impl EventLog {
    /// A new, empty log whose clock starts now.
    pub fn new() -> Self {
        Self { inner: Arc::new(Mutex::new(Vec::new())), start: Instant::now() }
    }

    /// Append an event and return its sequence number.
    pub fn push(&self, source: Source, kind: EventKind) -> u64 {
        let time_ns = self.start.elapsed().as_nanos() as u64;
        // A poisoned lock only means another thread panicked mid-push;
        // the Vec is still valid, so keep logging.
        let mut v = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let seq = v.len() as u64;
        v.push(Event { seq, time_ns, source, kind });
        seq
    }

    /// Append every event in `kinds` (draining it) under one lock and one
    /// clock read; returns the first sequence number. A device uses it to
    /// publish the events of one register access at once: taking the lock
    /// and the clock per event cost more than the work they record.
    pub fn push_batch(&self, source: Source, kinds: &mut Vec<EventKind>) -> u64 {
        let time_ns = self.start.elapsed().as_nanos() as u64;
        let mut v = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let first = v.len() as u64;
        v.extend(kinds.drain(..).enumerate().map(|(i, kind)| Event {
            seq: first + i as u64,
            time_ns,
            source,
            kind,
        }));
        first
    }

    /// A copy of every event so far.
    pub fn snapshot(&self) -> Vec<Event> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Number of events so far.
    pub fn len(&self) -> usize {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// True if nothing was logged yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drop every event; sequence numbers restart at 0. For benchmarks
    /// that must keep memory flat, never for a run being judged.
    pub fn clear(&self) {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// The last `n` events.
    pub fn tail(&self, n: usize) -> Vec<Event> {
        let v = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        v[v.len().saturating_sub(n)..].to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_are_dense_and_ordered() {
        let log = EventLog::new();
        assert_eq!(log.push(Source::Device, EventKind::ResetStart), 0);
        assert_eq!(log.push(Source::Guest, EventKind::Log { level: 3, text: "x".into() }), 1);
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
        assert_eq!(s.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![0, 1, 2, 3]);
        assert_eq!(s[2].kind, EventKind::ResetStart);
    }

    #[test]
    fn frame_events_round_trip_through_json() {
        // Event is flattened: a payload field named `seq` would collide
        // with the event's own and the JSON line would not parse back.
        for kind in [
            EventKind::TxFrame { seq: 5, len: 60, hash: 9 },
            EventKind::RxFrame { seq: 6, addr: 0x1000, len: 60 },
        ] {
            let e = Event { seq: 42, time_ns: 1, source: Source::Device, kind };
            let j = serde_json::to_string(&e).unwrap();
            assert_eq!(serde_json::from_str::<Event>(&j).unwrap(), e, "{j}");
        }
    }

    #[test]
    fn canonical_form_ignores_wall_time() {
        let a = Event { seq: 3, time_ns: 1, source: Source::Vmm, kind: EventKind::ResetDone };
        let b = Event { time_ns: 999, ..a.clone() };
        assert_eq!(a.canonical(), b.canonical());
    }
}
