//! Host-side oracles: pure functions over the one event log.
//!
//! The device's DMA monitor already judges each DMA and interrupt as it
//! happens (`EventKind::Violation`). These oracles judge what only the
//! whole timeline shows: doorbells after stop, skb ownership, DMA maps
//! left behind, auto-close, BUSY returns and the MAC the driver chose.
//! Each returns findings; an empty list means the rule held.

use nic_model::abi::{self, Marker, QueueReason};
use nic_model::events::{Event, EventKind};
use nic_model::rules::Rule;
use std::collections::BTreeMap;

/// One broken rule, with the sequence number of the event that shows it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// The rule broken (its name is the finding's stable name).
    pub oracle: Rule,
    /// Sequence number of the offending event (or of the last event).
    pub seq: u64,
    /// What went wrong, for humans.
    pub detail: String,
}

/// The report's form of a finding: the rule by its stable name.
impl From<Finding> for crate::outcome::Finding {
    fn from(f: Finding) -> Self {
        Self {
            oracle: f.oracle.name().into(),
            seq: f.seq,
            detail: f.detail,
        }
    }
}

/// The marker an event carries, with its args and text (None for other
/// events and unknown marker names).
pub fn marker_of(e: &Event) -> Option<(Marker, &[u64], &str)> {
    match &e.kind {
        EventKind::Marker {
            marker, args, text, ..
        } => Marker::from_name(marker).map(|m| (m, args.as_slice(), text.as_str())),
        _ => None,
    }
}

/// Argument `i` of a marker, numbered as in `abi::Marker`'s docs (the
/// record's `args[0]` is the marker id, which the log leaves out).
pub fn arg(args: &[u64], i: usize) -> u64 {
    i.checked_sub(1)
        .and_then(|i| args.get(i))
        .copied()
        .unwrap_or(0)
}

/// Run every oracle. `expect_busy_free` is false for scenarios that
/// provoke BUSY on purpose (their own guest oracle judges ownership).
pub fn check_all(log: &[Event], expect_no_busy: bool) -> Vec<Finding> {
    // The device monitor's violations are judged by `judge::outcome` already.
    let mut f = Vec::new();
    f.extend(doorbell_after_stop(log));
    f.extend(doorbell_pending(log));
    f.extend(bql_balance(log));
    f.extend(bql_stall(log));
    f.extend(skb_ledger(log));
    f.extend(dma_maps(log));
    f.extend(auto_close(log));
    if expect_no_busy {
        f.extend(no_busy(log));
    }
    f.extend(guest_oracles(log));
    f.extend(reset_wait(log));
    f.extend(irq_reenable(log));
    f.extend(irq_enabled_after_stop(log));
    f.extend(irq_after_napi_disable(log));
    f.extend(queue_thresholds(log));
    f
}

/// The stop and wake rule itself, not only its outcome: the driver's
/// ring check stops the queue only with fewer than
/// [`abi::TX_STOP_THRESH`] descriptors free (a worst-case packet no longer
/// fits), and reclaim wakes it only with at least
/// [`abi::TX_START_THRESH`] free (the 894d7508316e class: a wake one
/// descriptor early passes every outcome check). From the driver's
/// `queue-free` markers.
pub fn queue_thresholds(log: &[Event]) -> Vec<Finding> {
    log.iter()
        .filter_map(|e| {
            let (Marker::QueueFree, args, _) = marker_of(e)? else { return None };
            let (woke, free) = (arg(args, 1) == 1, arg(args, 2));
            let detail = if woke && free < u64::from(abi::TX_START_THRESH) {
                format!("queue woken with {free} descriptors free, below the start threshold {}", abi::TX_START_THRESH)
            } else if !woke && free >= u64::from(abi::TX_STOP_THRESH) {
                format!("queue stopped with {free} descriptors free, a worst-case packet ({}) still fits", abi::TX_STOP_THRESH)
            } else {
                return None;
            };
            Some(Finding { oracle: Rule::QueueThresholds, seq: e.seq, detail })
        })
        .collect()
}

/// The causes a NAPI poll masks and `napi_complete_done` restores.
const NAPI_CAUSES: u64 = (abi::regs::INT_TX | abi::regs::INT_RX) as u64;

/// INT_ENABLE as the device holds it after event `e`, given its value
/// before: a BAR0 write sets it, a reset clears it. (A write the device
/// refuses during a reset is taken as made: the register log alone does
/// not say, and the device latches that error for `device-error`.)
fn int_enable_after(e: &Event, before: u64) -> u64 {
    match &e.kind {
        EventKind::MmioWrite { offset, value, .. }
            if *offset == u64::from(abi::regs::INT_ENABLE) =>
        {
            *value
        }
        EventKind::ResetStart => 0,
        _ => before,
    }
}

/// After a NAPI poll that finished under budget (`napi-complete`), the
/// TX and RX causes its interrupt masked are enabled again: otherwise the
/// device can never signal the next completion or frame, and the TX ring
/// hangs with nothing to reclaim it (the hung-completion class of
/// softnet.md: mvneta, bnxt). Checked at the marker, which the driver
/// sends as its poll returns, before the CPU can idle.
pub fn irq_reenable(log: &[Event]) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut ie = 0u64;
    for e in log {
        ie = int_enable_after(e, ie);
        if let Some((Marker::NapiComplete, _, _)) = marker_of(e) {
            if ie & NAPI_CAUSES != NAPI_CAUSES {
                out.push(Finding {
                    oracle: Rule::IrqReenable,
                    seq: e.seq,
                    detail: format!("a NAPI poll completed under budget with INT_ENABLE {ie:#x}: TX/RX causes left masked"),
                });
            }
        }
    }
    out
}

/// After stop returns, no interrupt cause is enabled: INT_ENABLE is 0 at
/// stop-exit and nothing sets a cause again before the next open (an
/// interrupt handler that masks by writing a fixed value, say, turns
/// causes back on for a device that is down).
pub fn irq_enabled_after_stop(log: &[Event]) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut ie = 0u64;
    let mut down_since: Option<u64> = None;
    for e in log {
        let before = ie;
        ie = int_enable_after(e, ie);
        match marker_of(e) {
            Some((Marker::StopExit, _, _)) => {
                down_since = Some(e.seq);
                if ie != 0 {
                    out.push(Finding {
                        oracle: Rule::IrqEnabledAfterStop,
                        seq: e.seq,
                        detail: format!("stop returned with INT_ENABLE {ie:#x}"),
                    });
                }
            }
            Some((Marker::OpenEnter, _, _)) => down_since = None,
            _ => {
                if let (Some(at), true) = (down_since, ie != 0 && ie != before) {
                    out.push(Finding {
                        oracle: Rule::IrqEnabledAfterStop,
                        seq: e.seq,
                        detail: format!(
                            "INT_ENABLE set to {ie:#x} after stop-exit #{at}, before any open"
                        ),
                    });
                }
            }
        }
    }
    out
}

/// Once the driver's `napi_disable` returned in stop (`napi-disable`
/// with 1) and until open enables NAPI again (`napi-disable` with 0), an
/// interrupt handler must refuse the schedule and touch nothing: its
/// acknowledge (an INT_CAUSE write) or its mask (an INT_ENABLE write
/// other than stop's 0) would act on a device being torn down, with the
/// poll it asks for aimed at rings stop frees. Stop itself writes only
/// INT_ENABLE 0, CTRL and the reset in that window.
pub fn irq_after_napi_disable(log: &[Event]) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut disabled_at: Option<u64> = None;
    for e in log {
        if let Some((Marker::NapiDisable, args, _)) = marker_of(e) {
            disabled_at = (arg(args, 1) == 1).then_some(e.seq);
            continue;
        }
        let Some(at) = disabled_at else { continue };
        let EventKind::MmioWrite { offset, value, .. } = &e.kind else {
            continue;
        };
        let what = if *offset == u64::from(abi::regs::INT_CAUSE) {
            "INT_CAUSE"
        } else if *offset == u64::from(abi::regs::INT_ENABLE) && *value != 0 {
            "INT_ENABLE"
        } else {
            continue;
        };
        out.push(Finding {
            oracle: Rule::IrqAfterNapiDisable,
            seq: e.seq,
            detail: format!("{what} written with {value:#x} after napi_disable returned (napi-disable #{at}): an interrupt handled while NAPI is off"),
        });
    }
    out
}

/// `ndo_tx_timeout` is the watchdog's last resort: in a run that does
/// not provoke it on purpose (`expected` false), any call is a finding:
/// completions stalled long enough to stop the queue for the whole
/// watchdog period.
pub fn tx_timeout(log: &[Event], expected: bool) -> Vec<Finding> {
    if expected {
        return Vec::new();
    }
    log.iter()
        .filter_map(|e| match marker_of(e) {
            Some((Marker::TxTimeout, args, _)) => Some(Finding {
                oracle: Rule::TxTimeout,
                seq: e.seq,
                detail: format!(
                    "ndo_tx_timeout on queue {} after a {} ms stall",
                    arg(args, 1),
                    arg(args, 2) / 1_000_000
                ),
            }),
            _ => None,
        })
        .collect()
}

/// Stop waits for its reset (softnet.md scenario 3): nothing is unmapped
/// while a reset is still running (the device may still be fetching),
/// and the stop-exit marker comes after the device's ResetDone.
pub fn reset_wait(log: &[Event]) -> Vec<Finding> {
    let mut out = Vec::new();
    // (seq of ResetStart, an early unmap was already reported)
    let mut resetting: Option<(u64, bool)> = None;
    for e in log {
        match &e.kind {
            EventKind::ResetStart => resetting = Some((e.seq, false)),
            EventKind::ResetDone => resetting = None,
            _ => {
                let Some((at, reported)) = resetting.as_mut() else {
                    continue;
                };
                let what = match marker_of(e) {
                    Some((Marker::DmaUnmap, args, _)) if !*reported => {
                        *reported = true;
                        format!(
                            "{:#x}+{} unmapped while the reset started at #{at} was still running",
                            arg(args, 1),
                            arg(args, 2)
                        )
                    }
                    Some((Marker::StopExit, _, _)) => {
                        format!("stop returned while the reset started at #{at} was still running")
                    }
                    _ => continue,
                };
                out.push(Finding {
                    oracle: Rule::ResetWait,
                    seq: e.seq,
                    detail: what,
                });
            }
        }
    }
    out
}

/// The events between a stop-exit and the next open-enter: the window in
/// which no doorbell, DMA or interrupt may happen.
pub fn after_stop(log: &[Event]) -> impl Iterator<Item = &Event> {
    let mut stopped = false;
    log.iter().filter(move |e| {
        match marker_of(e) {
            Some((Marker::StopExit, ..)) => stopped = true,
            Some((Marker::OpenEnter, ..)) => stopped = false,
            _ => {}
        }
        stopped
    })
}

/// A doorbell (TX or RX tail write): (register, value written).
pub fn doorbell(e: &Event) -> Option<(u32, u64)> {
    match &e.kind {
        EventKind::MmioWrite { offset, value, .. } => {
            let off = *offset as u32;
            (off == abi::regs::TX_TAIL || off == abi::regs::RX_TAIL).then_some((off, *value))
        }
        _ => None,
    }
}

/// No doorbell (TX or RX tail write) between stop-exit and the next open.
pub fn doorbell_after_stop(log: &[Event]) -> Vec<Finding> {
    after_stop(log)
        .filter_map(|e| {
            let (off, value) = doorbell(e)?;
            Some(Finding {
                oracle: Rule::DoorbellAfterStop,
                seq: e.seq,
                detail: format!("doorbell write {value:#x} to {off:#x} after stop-exit"),
            })
        })
        .collect()
}

/// Every descriptor the driver posted is covered by a TX doorbell when
/// start_xmit ends a batch (no xmit_more, BUSY, or the queue stopped) and
/// when stop begins: the driver's next index (`Marker::TxRing`) is the
/// TX_TAIL value the device last saw. A dropped last skb of an xmit_more
/// batch must still flush the doorbell for the packets posted before it
/// (softnet.md, rule on xmit_more). Reported once per open period; a
/// tail beyond the posted index is the device monitor's to judge.
pub fn doorbell_pending(log: &[Event]) -> Vec<Finding> {
    let mut out = Vec::new();
    // The tail the device last saw: 0 after a reset, and the driver
    // starts its indexes at 0 on every open.
    let (mut tail, mut reported) = (0u32, false);
    for e in log {
        match (&e.kind, marker_of(e)) {
            (EventKind::ResetStart, _) | (_, Some((Marker::OpenEnter, ..))) => {
                (tail, reported) = (0, false)
            }
            (EventKind::MmioWrite { offset, value, .. }, _)
                if *offset == u64::from(abi::regs::TX_TAIL) =>
            {
                tail = *value as u32;
            }
            (_, Some((Marker::TxRing, args, _))) => {
                let posted = arg(args, 1) as u32;
                let pending = posted.wrapping_sub(tail) as i32;
                if pending > 0 && !reported {
                    reported = true;
                    let when = if arg(args, 5) & abi::TX_RING_AT_STOP != 0 {
                        "at stop entry"
                    } else {
                        "when start_xmit ended its batch"
                    };
                    out.push(Finding {
                        oracle: Rule::DoorbellPending,
                        seq: e.seq,
                        detail: format!(
                            "{pending} descriptor(s) posted up to index {posted:#x} but the last TX doorbell wrote {tail:#x} {when}"
                        ),
                    });
                }
            }
            _ => {}
        }
    }
    out
}

/// BQL counts what the device really sent (softnet.md scenario 11). At
/// every `Marker::TxRing` snapshot with BQL on: the bytes BQL completed
/// never exceed the bytes the device transmitted since its last reset,
/// which never exceed the bytes BQL queued; and at stop entry with an
/// empty ring (every posted packet reclaimed) the three are equal. The
/// guest's end-of-run check runs after stop has reset BQL, so completions
/// never reported to BQL show only here.
pub fn bql_balance(log: &[Event]) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut sent = 0u64;
    for e in log {
        match &e.kind {
            EventKind::ResetStart => sent = 0,
            EventKind::TxFrame { len, .. } => sent += u64::from(*len),
            _ => {}
        }
        let Some((Marker::TxRing, args, _)) = marker_of(e) else {
            continue;
        };
        let flags = arg(args, 5);
        if flags & abi::TX_RING_BQL == 0 {
            continue;
        }
        // dql counters are free-running u32s: compare as Linux does.
        let (queued, completed, sent) = (arg(args, 3) as u32, arg(args, 4) as u32, sent as u32);
        let empty_at_stop = flags & abi::TX_RING_AT_STOP != 0 && arg(args, 1) == arg(args, 2);
        let detail = if (sent.wrapping_sub(completed) as i32) < 0 {
            format!(
                "BQL completed {completed} bytes but the device sent only {sent} since its reset"
            )
        } else if (queued.wrapping_sub(sent) as i32) < 0 {
            format!("the device sent {sent} bytes since its reset but BQL queued only {queued}")
        } else if empty_at_stop && (completed != sent || queued != sent) {
            format!("stop with an empty ring: the device sent {sent} bytes, BQL queued {queued} and completed {completed}")
        } else {
            continue;
        };
        out.push(Finding {
            oracle: Rule::BqlBalance,
            seq: e.seq,
            detail,
        });
    }
    out
}

/// No queue stalls with TX completions pending (softnet.md §2, the stall
/// detector of 6025b9135f7a): every `Marker::BqlStall` the guest's BQL
/// (Linux's `dql_check_stall`, bit for bit) reported is a finding. Its
/// rule: at a TX completion, `stall_thrs` jiffies or more had passed since
/// the previous one while TX queued in the first half of that time was
/// still pending. The watchdog only sees stopped queues; this sees a
/// running queue whose completions come late.
pub fn bql_stall(log: &[Event]) -> Vec<Finding> {
    let mut out = Vec::new();
    for e in log {
        let Some((Marker::BqlStall, args, _)) = marker_of(e) else {
            continue;
        };
        let (queue, len, thrs, count, ns) = (
            arg(args, 1),
            arg(args, 2),
            arg(args, 3),
            arg(args, 4),
            arg(args, 5),
        );
        let ms = |j: u64| j.saturating_mul(ns) / 1_000_000;
        out.push(Finding {
            oracle: Rule::BqlStall,
            seq: e.seq,
            detail: format!(
                "TX queue {queue}: no completion for {len} jiffies ({} ms) with TX pending, over stall_thrs {thrs} ({} ms); stall {count} on this queue",
                ms(len),
                ms(thrs)
            ),
        });
    }
    out
}

/// Every skb is freed exactly once: no double free, no free of an
/// unknown skb, nothing live at the end.
pub fn skb_ledger(log: &[Event]) -> Vec<Finding> {
    let mut live: BTreeMap<u64, u64> = BTreeMap::new();
    let mut out = Vec::new();
    for e in log {
        let Some((m, args, _)) = marker_of(e) else {
            continue;
        };
        match m {
            // The map update is the arm's work, so it stays in the body
            // rather than in a match guard (where clippy's collapsible_match
            // would put it).
            Marker::SkbAlloc | Marker::SkbClone => {
                let id = arg(args, 1);
                if live.insert(id, e.seq).is_some() {
                    out.push(Finding {
                        oracle: Rule::SkbLedger,
                        seq: e.seq,
                        detail: format!("skb {id} allocated while still live"),
                    });
                }
            }
            Marker::SkbFree => {
                let id = arg(args, 1);
                if live.remove(&id).is_none() {
                    out.push(Finding {
                        oracle: Rule::SkbLedger,
                        seq: e.seq,
                        detail: format!("skb {id} freed but not live (double free?)"),
                    });
                }
            }
            _ => {}
        }
    }
    let last = log.last().map_or(0, |e| e.seq);
    for (id, at) in live {
        out.push(Finding {
            oracle: Rule::SkbLedger,
            seq: last,
            detail: format!("skb {id} (allocated at #{at}) never freed"),
        });
    }
    out
}

/// Every DMA map is unmapped exactly once, with the length it was
/// mapped with, and nothing stays mapped at the end. The same address may
/// be mapped to the device more than once at a time (two in-flight frames
/// whose fragments start at the same payload byte): Linux's dma-debug
/// allows overlapping `DMA_TO_DEVICE` mappings (`active_cacheline_insert`
/// ignores them) and flags overlapping mappings the device may write.
/// An unmap takes the live mapping of its address with its length, else
/// the oldest one.
pub fn dma_maps(log: &[Event]) -> Vec<Finding> {
    let (mut out, live) = dma_ledger(log);
    let last = log.last().map_or(0, |e| e.seq);
    for (addr, maps) in live {
        for (len, _, at) in maps {
            out.push(Finding {
                oracle: Rule::DmaMaps,
                seq: last,
                detail: format!("{addr:#x}+{len} (mapped at #{at}) still mapped at the end"),
            });
        }
    }
    out
}

/// The DMA mappings the driver's markers leave live at the end of `log`
/// (each is a `dma-maps` finding).
pub fn live_dma_maps(log: &[Event]) -> usize {
    dma_ledger(log).1.values().map(Vec::len).sum()
}

/// Live DMA mappings by address: (length, direction, seq of the map).
type Ledger = BTreeMap<u64, Vec<(u64, u64, u64)>>;

/// [`dma_maps`]'s ledger: the findings of the map and unmap markers as
/// they come, and the mappings live at the end.
fn dma_ledger(log: &[Event]) -> (Vec<Finding>, Ledger) {
    let mut live = Ledger::new();
    let mut out = Vec::new();
    for e in log {
        let Some((m, args, _)) = marker_of(e) else {
            continue;
        };
        match m {
            Marker::DmaMap => {
                let (addr, len, dir) = (arg(args, 1), arg(args, 2), arg(args, 3));
                let maps = live.entry(addr).or_default();
                if maps.iter().any(|&(_, d, _)| d != DMA_TO_DEVICE)
                    || (!maps.is_empty() && dir != DMA_TO_DEVICE)
                {
                    out.push(Finding {
                        oracle: Rule::DmaMaps,
                        seq: e.seq,
                        detail: format!("{addr:#x} mapped twice"),
                    });
                }
                maps.push((len, dir, e.seq));
            }
            Marker::DmaUnmap => {
                let (addr, len) = (arg(args, 1), arg(args, 2));
                let maps = live.entry(addr).or_default();
                let taken = match maps.iter().position(|&(l, _, _)| l == len) {
                    Some(i) => Some(maps.remove(i)),
                    None if !maps.is_empty() => Some(maps.remove(0)),
                    None => None,
                };
                if maps.is_empty() {
                    live.remove(&addr);
                }
                match taken {
                    None => out.push(Finding {
                        oracle: Rule::DmaMaps,
                        seq: e.seq,
                        detail: format!("unmap of {addr:#x} which is not mapped"),
                    }),
                    Some((mapped, _, _)) if mapped != len => out.push(Finding {
                        oracle: Rule::DmaMaps,
                        seq: e.seq,
                        detail: format!("unmap of {addr:#x} with length {len} mapped as {mapped}"),
                    }),
                    _ => {}
                }
            }
            _ => {}
        }
    }
    (out, live)
}

/// `Marker::DmaMap`'s direction: to the device.
const DMA_TO_DEVICE: u64 = 0;

/// unregister of an UP device calls stop exactly once; of a DOWN device
/// never. Counted twice: the core's stop-enter markers (the stack called
/// ndo_stop) and, when the driver reports them, its own ndo-stop entries
/// (the driver's stop ran), so a driver that closes twice is seen too.
pub fn auto_close(log: &[Event]) -> Vec<Finding> {
    let mut out = Vec::new();
    let driver_reports = log
        .iter()
        .any(|e| matches!(marker_of(e), Some((Marker::NdoStop, _, _))));
    // (seq, was_up, core stop calls, driver stop entries)
    let mut inside: Option<(u64, bool, u32, u32)> = None;
    for e in log {
        let Some((m, args, _)) = marker_of(e) else {
            continue;
        };
        match m {
            Marker::UnregisterEnter => inside = Some((e.seq, arg(args, 1) == 1, 0, 0)),
            Marker::StopEnter => {
                if let Some((_, _, n, _)) = inside.as_mut() {
                    *n += 1;
                }
            }
            Marker::NdoStop => {
                if let Some((_, _, _, d)) = inside.as_mut() {
                    *d += 1;
                }
            }
            Marker::UnregisterExit => {
                if let Some((at, up, n, d)) = inside.take() {
                    let want = u32::from(up);
                    let state = if up { "UP" } else { "DOWN" };
                    if n != want {
                        out.push(Finding {
                            oracle: Rule::AutoClose,
                            seq: e.seq,
                            detail: format!("unregister of a {state} device (#{at}) called stop {n} times, expected {want}"),
                        });
                    } else if driver_reports && d != want {
                        out.push(Finding {
                            oracle: Rule::AutoClose,
                            seq: e.seq,
                            detail: format!("unregister of a {state} device (#{at}) entered the driver's ndo_stop {d} times, expected {want}"),
                        });
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// start_xmit never returned BUSY, except after a false wake: Linux
/// lets a completion wake the queue on a free count that the producer
/// has used up by the time it runs (its read was stale), and the
/// driver's full-ring check at entry then returns BUSY
/// (shared/notes/softnet.md, scenario 7). Such a BUSY is excused when
/// the stack's marker says the queue was woken since the driver last
/// accepted an skb, and the log agrees: a wake (reclaim or watchdog)
/// after the driver's last stop in advance (its `queue-free` stop
/// marker) and after the previous BUSY. A driver that does not stop in
/// advance fills the ring with accepted skbs after each wake, so its
/// BUSY is never excused.
pub fn no_busy(log: &[Event]) -> Vec<Finding> {
    let mut woken_since_stop = false;
    let mut out = Vec::new();
    for e in log {
        match marker_of(e) {
            Some((Marker::QueueFree, args, _)) if arg(args, 1) == 0 => woken_since_stop = false,
            Some((Marker::QueueWake, args, _))
                if arg(args, 1) == QueueReason::Reclaim as u64
                    || arg(args, 1) == QueueReason::Timeout as u64 =>
            {
                woken_since_stop = true
            }
            Some((Marker::XmitBusy, args, _)) => {
                let false_wake = arg(args, 2) == 1 && woken_since_stop;
                woken_since_stop = false;
                if !false_wake {
                    out.push(Finding {
                        oracle: Rule::NoBusy,
                        seq: e.seq,
                        detail: format!("start_xmit returned BUSY for skb {}", arg(args, 1)),
                    });
                }
            }
            _ => {}
        }
    }
    out
}

/// True for an address `is_valid_ether_addr` accepts: not zero, not
/// multicast (broadcast is multicast).
pub fn is_valid_ether_addr(mac: [u8; 6]) -> bool {
    mac != [0; 6] && mac[0] & 1 == 0
}

/// Unpack the MAC a ProbeExit marker carries (low byte first).
pub fn mac_from_u64(v: u64) -> [u8; 6] {
    let b = v.to_le_bytes();
    [b[0], b[1], b[2], b[3], b[4], b[5]]
}

/// The driver registered a valid address: the EEPROM's if it was valid,
/// else a random unicast one marked random (or probe failed).
pub fn mac_address(log: &[Event], eeprom: [u8; 6]) -> Vec<Finding> {
    let mut out = Vec::new();
    for e in log {
        let Some((Marker::ProbeExit, args, _)) = marker_of(e) else {
            continue;
        };
        if arg(args, 1) != 0 {
            continue; // probe refused the device: allowed
        }
        let used = mac_from_u64(arg(args, 2));
        let random = arg(args, 3) == 1;
        let bad = if !is_valid_ether_addr(used) {
            Some(format!("registered invalid address {used:02x?}"))
        } else if is_valid_ether_addr(eeprom) && (used != eeprom || random) {
            Some(format!(
                "EEPROM address {eeprom:02x?} is valid but {used:02x?} (random={random}) was used"
            ))
        } else if !is_valid_ether_addr(eeprom) && !random {
            Some(format!(
                "EEPROM address {eeprom:02x?} is invalid but the replacement is not marked random"
            ))
        } else {
            None
        };
        if let Some(detail) = bad {
            out.push(Finding {
                oracle: Rule::MacAddress,
                seq: e.seq,
                detail,
            });
        }
    }
    out
}

/// Failures the guest's own oracles reported.
pub fn guest_oracles(log: &[Event]) -> Vec<Finding> {
    log.iter()
        .filter_map(|e| match marker_of(e) {
            Some((Marker::OracleFail, _, text)) => Some(Finding {
                oracle: Rule::GuestOracles,
                seq: e.seq,
                detail: text.to_string(),
            }),
            _ => None,
        })
        .collect()
}

/// Kebab-case name of a device error code (`abi::DeviceError` by name,
/// e.g. `address-outside-ram`); `unknown-N` for codes the ABI lacks.
pub fn device_error_name(code: u32) -> String {
    let Some(e) = abi::DeviceError::from_code(code) else {
        return format!("unknown-{code}");
    };
    let mut out = String::new();
    for (i, c) in format!("{e:?}").chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('-');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// The device latched an error (`EventKind::DeviceFault`): something the
/// guest gave it was malformed. A fault fails the run unless the scenario
/// expects exactly that error; an expected error that never came fails
/// it too (a hostile scenario that provoked nothing proved nothing).
pub fn device_error(log: &[Event], expected: Option<abi::DeviceError>) -> Vec<Finding> {
    let want = expected.map(|e| e as u32);
    let mut seen_expected = false;
    let mut out = Vec::new();
    for e in log {
        let EventKind::DeviceFault { code, addr } = e.kind else {
            continue;
        };
        if Some(code) == want {
            seen_expected = true;
            continue;
        }
        let also = want.map_or(String::new(), |w| {
            format!(" (expected {})", device_error_name(w))
        });
        out.push(Finding {
            oracle: Rule::DeviceError,
            seq: e.seq,
            detail: format!(
                "device latched {} (code {code}) at {addr:#x}{also}",
                device_error_name(code)
            ),
        });
    }
    if let (Some(w), false) = (want, seen_expected) {
        out.push(Finding {
            oracle: Rule::DeviceError,
            seq: log.last().map_or(0, |e| e.seq),
            detail: format!(
                "expected the device to latch {} (code {w}); it did not",
                device_error_name(w)
            ),
        });
    }
    out
}

#[cfg(test)]
mod device_error_tests {
    use super::*;
    use abi::DeviceError;
    use nic_model::events::Source;

    fn fault(seq: u64, e: DeviceError) -> Event {
        Event {
            seq,
            time_ns: 0,
            source: Source::Device,
            kind: EventKind::DeviceFault {
                code: e as u32,
                addr: 0x4000_1000,
            },
        }
    }

    #[test]
    fn names_decode_the_abi_errors() {
        assert_eq!(device_error_name(3), "address-outside-ram");
        assert_eq!(device_error_name(10), "bus-master-off");
        assert_eq!(device_error_name(99), "unknown-99");
    }

    #[test]
    fn a_fault_fails_unless_expected_and_an_expected_one_must_come() {
        let log = [fault(7, DeviceError::AddressOutsideRam)];
        let f = device_error(&log, None);
        assert_eq!(f.len(), 1);
        assert_eq!((f[0].oracle, f[0].seq), (Rule::DeviceError, 7));
        assert!(
            f[0].detail
                .contains("address-outside-ram (code 3) at 0x40001000"),
            "{}",
            f[0].detail
        );
        assert!(device_error(&log, Some(DeviceError::AddressOutsideRam)).is_empty());
        let wrong = device_error(&log, Some(DeviceError::ZeroLength));
        assert_eq!(wrong.len(), 2, "{wrong:?}");
        assert!(
            wrong[0].detail.contains("expected zero-length"),
            "{}",
            wrong[0].detail
        );
        assert!(
            wrong[1].detail.contains("it did not"),
            "{}",
            wrong[1].detail
        );
        assert!(device_error(&[], None).is_empty());
        assert_eq!(device_error(&[], Some(DeviceError::BadTail)).len(), 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nic_model::events::Source;

    fn log(items: &[(Marker, &[u64])]) -> Vec<Event> {
        items
            .iter()
            .enumerate()
            .map(|(i, (m, a))| Event {
                seq: i as u64,
                time_ns: 0,
                source: Source::Guest,
                kind: EventKind::Marker {
                    marker: m.name().into(),
                    args: a.to_vec(),
                    text: String::new(),
                    cpu: None,
                },
            })
            .collect()
    }

    #[test]
    fn skb_ledger_finds_double_free_and_leak() {
        let ok = log(&[(Marker::SkbAlloc, &[1, 60]), (Marker::SkbFree, &[1])]);
        assert!(skb_ledger(&ok).is_empty());
        let double = log(&[
            (Marker::SkbAlloc, &[1, 60]),
            (Marker::SkbFree, &[1]),
            (Marker::SkbFree, &[1]),
        ]);
        assert_eq!(skb_ledger(&double).len(), 1);
        let leak = log(&[
            (Marker::SkbAlloc, &[1, 60]),
            (Marker::SkbClone, &[2, 1]),
            (Marker::SkbFree, &[1]),
        ]);
        assert!(skb_ledger(&leak)[0].detail.contains("skb 2"));
    }

    #[test]
    fn dma_maps_finds_leaks_and_bad_unmaps() {
        let ok = log(&[
            (Marker::DmaMap, &[0x1000, 64, 0]),
            (Marker::DmaUnmap, &[0x1000, 64]),
        ]);
        assert!(dma_maps(&ok).is_empty());
        let leak = log(&[(Marker::DmaMap, &[0x1000, 64, 0])]);
        assert_eq!(dma_maps(&leak).len(), 1);
        let wrong_len = log(&[
            (Marker::DmaMap, &[0x1000, 64, 0]),
            (Marker::DmaUnmap, &[0x1000, 32]),
        ]);
        assert!(dma_maps(&wrong_len)[0].detail.contains("length"));
        // Two frames' fragments at the same byte, both to the device, in
        // flight together and unmapped in either order: fine.
        let shared = log(&[
            (Marker::DmaMap, &[0x1000, 22, 0]),
            (Marker::DmaMap, &[0x1000, 40, 0]),
            (Marker::DmaUnmap, &[0x1000, 22]),
            (Marker::DmaUnmap, &[0x1000, 40]),
        ]);
        assert!(dma_maps(&shared).is_empty(), "{:?}", dma_maps(&shared));
        // A buffer the device may write, mapped twice: flagged.
        let rx_twice = log(&[
            (Marker::DmaMap, &[0x1000, 64, 1]),
            (Marker::DmaMap, &[0x1000, 64, 1]),
        ]);
        assert!(dma_maps(&rx_twice)[0].detail.contains("mapped twice"));
        let double_unmap = log(&[
            (Marker::DmaMap, &[0x1000, 64, 0]),
            (Marker::DmaUnmap, &[0x1000, 64]),
            (Marker::DmaUnmap, &[0x1000, 64]),
        ]);
        assert!(dma_maps(&double_unmap)[0].detail.contains("not mapped"));
    }

    #[test]
    fn auto_close_counts_stops_inside_unregister() {
        let up_ok = log(&[
            (Marker::UnregisterEnter, &[1]),
            (Marker::StopEnter, &[]),
            (Marker::UnregisterExit, &[]),
        ]);
        assert!(auto_close(&up_ok).is_empty());
        let up_no_stop = log(&[
            (Marker::UnregisterEnter, &[1]),
            (Marker::UnregisterExit, &[]),
        ]);
        assert_eq!(auto_close(&up_no_stop).len(), 1);
        let down_stop = log(&[
            (Marker::UnregisterEnter, &[0]),
            (Marker::StopEnter, &[]),
            (Marker::UnregisterExit, &[]),
        ]);
        assert_eq!(auto_close(&down_stop).len(), 1);
    }

    #[test]
    fn doorbell_after_stop_until_next_open() {
        let mut l = log(&[(Marker::StopExit, &[]), (Marker::OpenEnter, &[])]);
        l.insert(1, tx_tail(1, 1));
        l.push(tx_tail(3, 1));
        let f = doorbell_after_stop(&l);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].seq, 1);
    }

    #[test]
    fn bql_stall_reports_each_stall_marker() {
        assert!(bql_stall(&log(&[(Marker::Bql, &[1, 1, 0, 0])])).is_empty());
        // queue 0, 50 jiffies, thrs 25, first stall, 4 ms a jiffy.
        let f = bql_stall(&log(&[
            (Marker::Bql, &[1, 1, 0, 0]),
            (Marker::BqlStall, &[0, 50, 25, 1, 4_000_000]),
        ]));
        assert_eq!(f.len(), 1);
        assert_eq!((f[0].oracle, f[0].seq), (Rule::BqlStall, 1));
        assert!(
            f[0].detail.contains("50 jiffies (200 ms)")
                && f[0].detail.contains("stall_thrs 25 (100 ms)"),
            "{}",
            f[0].detail
        );
    }

    #[test]
    fn mac_oracle_wants_eeprom_address_or_marked_random() {
        let eeprom = [0x02, 0, 0, 0, 0, 1];
        let as_u64 = |m: [u8; 6]| u64::from_le_bytes([m[0], m[1], m[2], m[3], m[4], m[5], 0, 0]);
        assert!(mac_address(
            &log(&[(Marker::ProbeExit, &[0, as_u64(eeprom), 0])]),
            eeprom
        )
        .is_empty());
        let other = [0x02, 0, 0, 0, 0, 2];
        assert_eq!(
            mac_address(&log(&[(Marker::ProbeExit, &[0, as_u64(other), 0])]), eeprom).len(),
            1
        );
        let mcast = [0x01, 0, 0x5e, 0, 0, 1];
        // An invalid EEPROM address kept as permanent is caught...
        assert_eq!(
            mac_address(&log(&[(Marker::ProbeExit, &[0, as_u64(mcast), 0])]), mcast).len(),
            1
        );
        // ...a random unicast replacement marked random is not.
        assert!(
            mac_address(&log(&[(Marker::ProbeExit, &[0, as_u64(other), 1])]), mcast).is_empty()
        );
        // A refused probe is allowed.
        assert!(mac_address(&log(&[(Marker::ProbeExit, &[22, 0, 0])]), mcast).is_empty());
    }

    /// The markers of a correct driver's false wake (lost-wake/1 seed 57
    /// with a scheduling point between the completion's free-space read
    /// and its wake, events #3720..3772): the producer stops in advance
    /// with 4 free, the completion wakes it on a stale read of 48, the
    /// next xmit finds the ring full and returns BUSY.
    #[test]
    fn a_busy_after_a_false_wake_is_excused_and_no_other() {
        let (ring_low, reclaim, bql) = (
            QueueReason::RingLow as u64,
            QueueReason::Reclaim as u64,
            QueueReason::Bql as u64,
        );
        let stop = [
            (Marker::QueueStop, &[ring_low, 0][..]),
            (Marker::QueueFree, &[0, 4]),
        ];
        let wake = [
            (Marker::QueueWake, &[reclaim, 0][..]),
            (Marker::QueueFree, &[1, 48]),
        ];
        let busy = |false_wake: u64| (Marker::XmitBusy, vec![131085, false_wake]);
        let with = |parts: &[&[(Marker, &[u64])]], tail: &[(Marker, Vec<u64>)]| {
            let mut v: Vec<(Marker, Vec<u64>)> = parts
                .iter()
                .flat_map(|p| p.iter().map(|(m, a)| (*m, a.to_vec())))
                .collect();
            v.extend(tail.iter().cloned());
            let refs: Vec<(Marker, &[u64])> = v.iter().map(|(m, a)| (*m, &a[..])).collect();
            no_busy(&log(&refs))
        };
        // The false wake: excused.
        assert_eq!(with(&[&stop, &wake], &[busy(1)]), vec![]);
        // The stack saw no wake since the last OK: the driver did not
        // stop in advance.
        assert_eq!(with(&[&stop, &wake], &[busy(0)]).len(), 1);
        // The stack claims a wake the log does not show (none after the
        // stop, or only a BQL one): not excused.
        assert_eq!(with(&[&wake, &stop], &[busy(1)]).len(), 1);
        assert_eq!(
            with(&[&stop, &[(Marker::QueueWake, &[bql, 0])]], &[busy(1)]).len(),
            1
        );
        // One wake excuses one BUSY.
        assert_eq!(with(&[&stop, &wake], &[busy(1), busy(1)]).len(), 1);
    }

    #[test]
    fn busy_and_guest_oracle_failures_are_reported() {
        assert_eq!(no_busy(&log(&[(Marker::XmitBusy, &[7])])).len(), 1);
        assert_eq!(guest_oracles(&log(&[(Marker::OracleFail, &[])])).len(), 1);
    }

    /// A TxRing snapshot: next to post, next to reclaim, BQL queued and
    /// completed, flags.
    fn tx_ring(seq: u64, args: [u64; 5]) -> Event {
        at(log(&[(Marker::TxRing, &args)]), seq)
    }

    fn dev(seq: u64, kind: EventKind) -> Event {
        Event {
            seq,
            time_ns: 0,
            source: Source::Device,
            kind,
        }
    }

    /// A 4-byte write of `value` to register `reg`, as the device logs it.
    fn reg_write(seq: u64, reg: u32, value: u64) -> Event {
        dev(
            seq,
            EventKind::MmioWrite {
                offset: u64::from(reg),
                value,
                size: 4,
            },
        )
    }

    fn tx_tail(seq: u64, v: u64) -> Event {
        reg_write(seq, abi::regs::TX_TAIL, v)
    }

    #[test]
    fn doorbell_pending_wants_the_tail_at_every_batch_end() {
        // Batch of 3 posted, doorbell 3, snapshot 3: covered.
        let ok = vec![tx_tail(0, 3), tx_ring(1, [3, 0, 0, 0, 0])];
        assert!(doorbell_pending(&ok).is_empty());
        // Last skb dropped without the flush: 3 posted, tail still 0,
        // found at the batch end and not again at stop.
        let bad = vec![
            tx_ring(0, [3, 0, 0, 0, 0]),
            tx_ring(1, [3, 0, 0, 0, abi::TX_RING_AT_STOP]),
        ];
        let f = doorbell_pending(&bad);
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(
            f[0].detail.contains("3 descriptor(s)") && f[0].detail.contains("batch"),
            "{}",
            f[0].detail
        );
        // A reset and a new open start again from index 0.
        let reopened = vec![
            tx_tail(0, 9),
            dev(1, EventKind::ResetStart),
            tx_ring(2, [0, 0, 0, 0, 0]),
            tx_tail(3, 2),
            tx_ring(4, [2, 0, 0, 0, 0]),
        ];
        assert!(doorbell_pending(&reopened).is_empty());
        // Indexes wrap: a tail of 0xffff_fffe leaves 3 before index 1.
        let f = doorbell_pending(&[tx_tail(0, 0xffff_fffe), tx_ring(1, [1, 0, 0, 0, 0])]);
        assert!(f.len() == 1 && f[0].detail.starts_with("3 "), "{f:?}");
    }

    #[test]
    fn bql_balance_follows_the_bytes_the_device_sent() {
        let bql = abi::TX_RING_BQL;
        let stop = bql | abi::TX_RING_AT_STOP;
        let frame = |seq, len| dev(seq, EventKind::TxFrame { seq, len, hash: 0 });
        // 100 + 60 sent, all reclaimed and reported: balanced at stop.
        let ok = vec![
            frame(0, 100),
            tx_ring(1, [2, 1, 160, 100, bql]),
            frame(2, 60),
            tx_ring(3, [2, 2, 160, 160, stop]),
        ];
        assert!(bql_balance(&ok).is_empty(), "{:?}", bql_balance(&ok));
        // One round never reported: empty ring at stop, completed short.
        let short = vec![
            frame(0, 100),
            frame(1, 60),
            tx_ring(2, [2, 2, 160, 60, stop]),
        ];
        let f = bql_balance(&short);
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(f[0].detail.contains("completed 60"), "{}", f[0].detail);
        // Frames still on the ring at stop: only the bounds apply.
        assert!(bql_balance(&[frame(0, 100), tx_ring(1, [2, 1, 160, 0, stop])]).is_empty());
        // More completed than sent, or more sent than queued.
        assert_eq!(
            bql_balance(&[frame(0, 100), tx_ring(1, [1, 1, 100, 160, bql])]).len(),
            1
        );
        assert_eq!(
            bql_balance(&[frame(0, 100), tx_ring(1, [1, 0, 60, 0, bql])]).len(),
            1
        );
        // BQL off (lost-wake): nothing to judge; a reset clears the bytes.
        assert!(bql_balance(&[
            frame(0, 100),
            tx_ring(1, [1, 1, 0, 0, abi::TX_RING_AT_STOP])
        ])
        .is_empty());
        assert!(bql_balance(&[
            frame(0, 100),
            dev(1, EventKind::ResetStart),
            tx_ring(2, [0, 0, 0, 0, stop])
        ])
        .is_empty());
    }

    #[test]
    fn stop_exit_during_a_reset_is_found() {
        let mut l = log(&[(Marker::StopEnter, &[]), (Marker::StopExit, &[])]);
        let dev = |seq, kind| Event {
            seq,
            time_ns: 0,
            source: Source::Device,
            kind,
        };
        // Reset started and finished inside stop: fine.
        let mut ok = l.clone();
        ok.insert(1, dev(10, EventKind::ResetStart));
        ok.insert(2, dev(11, EventKind::ResetDone));
        assert!(reset_wait(&ok).is_empty());
        // Stop returned first: found, and the reset's start is named.
        l.insert(1, dev(10, EventKind::ResetStart));
        let f = reset_wait(&l);
        assert_eq!(f.len(), 1);
        assert!(f[0].detail.contains("#10"), "{}", f[0].detail);
        // Unmapping during the reset is found too (once per reset).
        let unmaps = log(&[
            (Marker::DmaUnmap, &[0x1000, 64]),
            (Marker::DmaUnmap, &[0x2000, 64]),
        ]);
        let mut early = ok.clone();
        early.splice(2..2, unmaps);
        let f = reset_wait(&early);
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(
            f[0].detail.contains("0x1000+64 unmapped"),
            "{}",
            f[0].detail
        );
    }

    fn int_enable(seq: u64, v: u64) -> Event {
        reg_write(seq, abi::regs::INT_ENABLE, v)
    }

    /// Every interrupt cause enabled.
    const ALL_CAUSES: u64 = (abi::regs::INT_TX | abi::regs::INT_RX | abi::regs::INT_ERR) as u64;

    fn at(mut e: Vec<Event>, seq: u64) -> Event {
        let mut e = e.remove(0);
        e.seq = seq;
        e
    }

    #[test]
    fn irq_reenable_wants_the_napi_causes_back_at_napi_complete() {
        let done = || log(&[(Marker::NapiComplete, &[3, 64])]);
        let all = ALL_CAUSES;
        let err = u64::from(abi::regs::INT_ERR);
        // Masked by the handler, restored by the poll: held.
        let ok = vec![
            int_enable(0, all),
            int_enable(1, err),
            int_enable(2, all),
            at(done(), 3),
        ];
        assert!(irq_reenable(&ok).is_empty());
        // Left masked: found at the marker.
        let bad = vec![int_enable(0, all), int_enable(1, err), at(done(), 2)];
        let f = irq_reenable(&bad);
        assert_eq!((f.len(), f[0].seq), (1, 2), "{f:?}");
        assert!(f[0].detail.contains("0x4"), "{}", f[0].detail);
        // A reset clears INT_ENABLE too.
        let reset = vec![
            int_enable(0, all),
            dev(1, EventKind::ResetStart),
            at(done(), 2),
        ];
        assert_eq!(irq_reenable(&reset).len(), 1);
    }

    #[test]
    fn irq_enabled_after_stop_wants_zero_until_the_next_open() {
        let all = ALL_CAUSES;
        let m = |seq, mk: Marker| at(log(&[(mk, &[])]), seq);
        let ok = vec![
            int_enable(0, all),
            int_enable(1, 0),
            m(2, Marker::StopExit),
            m(3, Marker::OpenEnter),
            int_enable(4, all),
        ];
        assert!(irq_enabled_after_stop(&ok).is_empty());
        // Stop returned with causes on.
        let f = irq_enabled_after_stop(&[int_enable(0, all), m(1, Marker::StopExit)]);
        assert_eq!((f.len(), f[0].seq), (1, 1), "{f:?}");
        // Turned back on after stop (a handler masking with a constant).
        let late = vec![
            int_enable(0, 0),
            m(1, Marker::StopExit),
            int_enable(2, u64::from(abi::regs::INT_ERR)),
        ];
        let f = irq_enabled_after_stop(&late);
        assert_eq!((f.len(), f[0].seq), (1, 2), "{f:?}");
        assert!(
            f[0].detail.contains("after stop-exit #1"),
            "{}",
            f[0].detail
        );
    }

    #[test]
    fn irq_after_napi_disable_wants_the_device_left_alone_until_napi_enable() {
        let all = ALL_CAUSES;
        let napi = |seq, on: u64| at(log(&[(Marker::NapiDisable, &[on])]), seq);
        let cause = |seq| reg_write(seq, abi::regs::INT_CAUSE, 3);
        // Stop's own INT_ENABLE 0, then open's acknowledge and enable after napi_enable.
        let ok = vec![
            napi(0, 1),
            int_enable(1, 0),
            napi(2, 0),
            cause(3),
            int_enable(4, all),
        ];
        assert!(irq_after_napi_disable(&ok).is_empty());
        // A handler's acknowledge and mask between disable and enable.
        let bad = vec![
            cause(0),
            napi(1, 1),
            int_enable(2, u64::from(abi::regs::INT_ERR)),
            cause(3),
            int_enable(4, 0),
            napi(5, 0),
        ];
        let f = irq_after_napi_disable(&bad);
        assert_eq!(f.iter().map(|f| f.seq).collect::<Vec<_>>(), [2, 3], "{f:?}");
        assert!(f[0].detail.contains("napi-disable #1"), "{}", f[0].detail);
        // A napi_disable that did not finish (args 0) opens no window.
        assert!(irq_after_napi_disable(&[napi(0, 0), cause(1)]).is_empty());
    }

    #[test]
    fn auto_close_counts_the_drivers_own_stops() {
        let once = log(&[
            (Marker::UnregisterEnter, &[1]),
            (Marker::StopEnter, &[]),
            (Marker::NdoStop, &[]),
            (Marker::StopExit, &[]),
            (Marker::UnregisterExit, &[]),
        ]);
        assert!(auto_close(&once).is_empty());
        let twice = log(&[
            (Marker::UnregisterEnter, &[1]),
            (Marker::StopEnter, &[]),
            (Marker::NdoStop, &[]),
            (Marker::NdoStop, &[]),
            (Marker::StopExit, &[]),
            (Marker::UnregisterExit, &[]),
        ]);
        let f = auto_close(&twice);
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(f[0].detail.contains("ndo_stop 2 times"), "{}", f[0].detail);
    }

    #[test]
    fn queue_thresholds_judge_each_stop_and_wake() {
        let (stop, start) = (
            u64::from(abi::TX_STOP_THRESH),
            u64::from(abi::TX_START_THRESH),
        );
        let ok = log(&[
            (Marker::QueueFree, &[0, stop - 1]),
            (Marker::QueueFree, &[1, start]),
        ]);
        assert!(queue_thresholds(&ok).is_empty());
        let early_wake = log(&[(Marker::QueueFree, &[1, start - 1])]);
        let f = queue_thresholds(&early_wake);
        assert_eq!(f.len(), 1);
        assert!(
            f[0].detail.contains("below the start threshold"),
            "{}",
            f[0].detail
        );
        let early_stop = log(&[(Marker::QueueFree, &[0, stop])]);
        assert!(queue_thresholds(&early_stop)[0]
            .detail
            .contains("still fits"));
    }

    #[test]
    fn tx_timeout_is_a_finding_unless_expected() {
        let l = log(&[(Marker::TxTimeout, &[0, 5_000_000_000])]);
        let f = tx_timeout(&l, false);
        assert_eq!(f.len(), 1);
        assert!(f[0].detail.contains("5000 ms"), "{}", f[0].detail);
        assert!(tx_timeout(&l, true).is_empty());
    }
}
