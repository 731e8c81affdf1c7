//! The event log decoded for people: register offsets by their abi name
//! (`TX_TAIL`, `MSIX[1].ctrl`), addresses and register values in hex,
//! marker arguments by name (`skb`, `addr`, `len`), interrupt vectors by
//! what they signal. `nicproof explain` prints it; the raw `--events`
//! file stays what replay reads.

use nic_model::abi::{pci, regs, Marker, QueueReason};
use nic_model::events::{DmaDir, Event, EventKind};
use serde_json::{json, Map, Value};

/// The abi name of a BAR0 offset.
pub fn reg_name(offset: u64) -> String {
    let Ok(off) = u32::try_from(offset) else {
        return format!("{offset:#x}");
    };
    let msix_table = pci::MSIX_TABLE_OFFSET;
    let msix_end = msix_table + 16 * u32::from(pci::MSIX_VECTORS);
    if (msix_table..msix_end).contains(&off) {
        let v = (off - msix_table) / 16;
        let field = match (off - msix_table) % 16 {
            0 => "addr_lo",
            4 => "addr_hi",
            8 => "data",
            12 => "ctrl",
            _ => return format!("MSIX[{v}]+{:#x}", (off - msix_table) % 16),
        };
        return format!("MSIX[{v}].{field}");
    }
    if (pci::MSIX_PBA_OFFSET..pci::MSIX_PBA_OFFSET + 8).contains(&off) {
        return "MSIX_PBA".into();
    }
    let name = match off {
        regs::CTRL => "CTRL",
        regs::STATUS => "STATUS",
        regs::EEPROM => "EEPROM",
        regs::TX_BASE_LO => "TX_BASE_LO",
        regs::TX_BASE_HI => "TX_BASE_HI",
        regs::TX_SIZE => "TX_SIZE",
        regs::TX_HEAD => "TX_HEAD",
        regs::TX_TAIL => "TX_TAIL",
        regs::RX_BASE_LO => "RX_BASE_LO",
        regs::RX_BASE_HI => "RX_BASE_HI",
        regs::RX_SIZE => "RX_SIZE",
        regs::RX_HEAD => "RX_HEAD",
        regs::RX_TAIL => "RX_TAIL",
        regs::INT_CAUSE => "INT_CAUSE",
        regs::INT_ENABLE => "INT_ENABLE",
        regs::COAL_TX_FRAMES => "COAL_TX_FRAMES",
        regs::COAL_TX_USECS => "COAL_TX_USECS",
        regs::COAL_RX_FRAMES => "COAL_RX_FRAMES",
        regs::COAL_RX_USECS => "COAL_RX_USECS",
        regs::ERR_CODE => "ERR_CODE",
        regs::ERR_ADDR_LO => "ERR_ADDR_LO",
        regs::ERR_ADDR_HI => "ERR_ADDR_HI",
        regs::ERR_CLEAR => "ERR_CLEAR",
        regs::STAT_TX_FRAMES => "STAT_TX_FRAMES",
        regs::STAT_RX_FRAMES => "STAT_RX_FRAMES",
        regs::STAT_RX_DROPS => "STAT_RX_DROPS",
        regs::TEST_COMPLETE => "TEST_COMPLETE",
        _ => return format!("{offset:#x}"),
    };
    name.into()
}

/// What an MSI-X vector signals.
pub fn vector_name(vector: u16) -> &'static str {
    match vector {
        pci::MSIX_TX => "tx",
        pci::MSIX_RX => "rx",
        pci::MSIX_MISC => "misc",
        _ => "?",
    }
}

/// How an argument is shown.
#[derive(Clone, Copy)]
enum Arg {
    Hex(&'static str),
    Dec(&'static str),
    Reason,
    Direction,
}

impl Arg {
    fn name(self) -> &'static str {
        match self {
            Arg::Hex(n) | Arg::Dec(n) => n,
            Arg::Reason => "reason",
            Arg::Direction => "dir",
        }
    }
}

/// The arguments of each marker as `abi::Marker`'s docs number them
/// (the log's `args[0]` is the docs' `args[1]`).
fn marker_args(m: Marker) -> &'static [Arg] {
    use Arg::*;
    match m {
        Marker::ProbeExit => &[Dec("err"), Hex("mac"), Dec("addr_assign_type")],
        Marker::OpenExit => &[Dec("err")],
        Marker::UnregisterEnter => &[Dec("was_up")],
        Marker::DmaMap => &[Hex("addr"), Dec("len"), Direction],
        Marker::DmaUnmap => &[Hex("addr"), Dec("len")],
        Marker::QueueStop | Marker::QueueWake => &[Reason],
        Marker::SkbAlloc => &[Dec("skb"), Dec("len")],
        Marker::SkbClone => &[Dec("skb"), Dec("orig")],
        Marker::SkbFree | Marker::XmitBusy => &[Dec("skb")],
        Marker::RxDeliver => &[Hex("addr"), Dec("len"), Dec("tx_seq")],
        Marker::TxTimeout => &[Dec("queue")],
        Marker::Bql => &[Dec("queued"), Dec("completed"), Dec("limit")],
        Marker::Echo => &[Dec("echo")],
        Marker::Phase => &[Dec("phase")],
        Marker::Summary => &[
            Dec("live_skbs"),
            Dec("live_maps"),
            Dec("busy_returns"),
            Dec("bql_in_flight"),
        ],
        Marker::TxRing => &[
            Dec("next_post"),
            Dec("next_reclaim"),
            Dec("bql_queued"),
            Dec("bql_completed"),
            Hex("flags"),
        ],
        _ => &[],
    }
}

fn reason_name(v: u64) -> String {
    let r = [
        QueueReason::RingLow,
        QueueReason::Bql,
        QueueReason::Raced,
        QueueReason::Reclaim,
        QueueReason::Lifecycle,
        QueueReason::Timeout,
    ]
    .into_iter()
    .find(|r| *r as u64 == v);
    match r {
        Some(QueueReason::RingLow) => "ring-low".into(),
        Some(QueueReason::Bql) => "bql".into(),
        Some(QueueReason::Raced) => "raced".into(),
        Some(QueueReason::Reclaim) => "reclaim".into(),
        Some(QueueReason::Lifecycle) => "lifecycle".into(),
        Some(QueueReason::Timeout) => "timeout".into(),
        None => v.to_string(),
    }
}

fn arg_value(a: Arg, v: u64) -> Value {
    match a {
        Arg::Hex(_) => json!(format!("{v:#x}")),
        Arg::Dec(_) => json!(v),
        Arg::Reason => json!(reason_name(v)),
        Arg::Direction => json!(match v {
            0 => "to-device".to_string(),
            1 => "from-device".to_string(),
            2 => "bidirectional".to_string(),
            v => v.to_string(),
        }),
    }
}

/// A marker's arguments by name, in the abi's order (unnamed extra
/// arguments as `argN`, left out when zero: the control record pads
/// every marker to five).
pub fn named_args(marker: &str, args: &[u64]) -> Vec<(String, Value)> {
    let spec = Marker::from_name(marker).map_or(&[][..], marker_args);
    args.iter()
        .enumerate()
        .filter_map(|(i, &v)| match spec.get(i) {
            Some(&a) => Some((a.name().to_string(), arg_value(a, v))),
            None if v == 0 => None,
            None => Some((format!("arg{}", i + 1), json!(v))),
        })
        .collect()
}

/// One event as a decoded JSON object.
pub fn json(e: &Event) -> Value {
    let mut o = Map::new();
    o.insert("seq".into(), json!(e.seq));
    o.insert(
        "t_us".into(),
        json!((e.time_ns as f64 / 1e3 * 10.0).round() / 10.0),
    );
    o.insert(
        "source".into(),
        serde_json::to_value(e.source).unwrap_or(Value::Null),
    );
    o.insert("event".into(), json!(kind_name(&e.kind)));
    for (k, v) in fields(&e.kind) {
        let v = match v {
            Field::One(v) => v,
            Field::Args(a) => Value::Object(a.into_iter().collect()),
        };
        o.insert(k.into(), v);
    }
    Value::Object(o)
}

enum Field {
    One(Value),
    Args(Vec<(String, Value)>),
}

/// The decoded fields of a kind, in the order a line shows them.
fn fields(kind: &EventKind) -> Vec<(&'static str, Field)> {
    let hex = |v: u64| json!(format!("{v:#x}"));
    let fields: Vec<(&str, Value)> = match kind {
        EventKind::MmioRead {
            offset,
            value,
            size,
        }
        | EventKind::MmioWrite {
            offset,
            value,
            size,
        } => {
            vec![
                ("reg", json!(reg_name(*offset))),
                ("value", hex(*value)),
                ("size", json!(size)),
            ]
        }
        EventKind::ConfigWrite {
            offset,
            value,
            size,
        } => {
            vec![
                ("offset", hex(u64::from(*offset))),
                ("value", hex(u64::from(*value))),
                ("size", json!(size)),
            ]
        }
        EventKind::Dma {
            dir,
            addr,
            len,
            cause,
        } => vec![
            (
                "dir",
                json!(if *dir == DmaDir::Read {
                    "read"
                } else {
                    "write"
                }),
            ),
            ("addr", hex(*addr)),
            ("len", json!(len)),
            ("cause", json!(cause)),
        ],
        EventKind::Irq { vector, masked } => {
            vec![
                ("vector", json!(vector)),
                ("signals", json!(vector_name(*vector))),
                ("masked", json!(masked)),
            ]
        }
        EventKind::ResetStart | EventKind::ResetDone => vec![],
        EventKind::TxFrame { seq, len, hash } => vec![
            ("frame", json!(seq)),
            ("len", json!(len)),
            ("hash", hex(*hash)),
        ],
        EventKind::RxFrame { seq, addr, len } => vec![
            ("frame", json!(seq)),
            ("addr", hex(*addr)),
            ("len", json!(len)),
        ],
        EventKind::DeviceFault { code, addr } => vec![
            ("error", json!(crate::oracles::device_error_name(*code))),
            ("code", json!(code)),
            ("addr", hex(*addr)),
        ],
        EventKind::Violation { rule, detail } => {
            vec![("rule", json!(rule)), ("detail", json!(detail))]
        }
        EventKind::Marker {
            marker,
            args,
            text,
            cpu,
        } => {
            let mut v = vec![
                ("marker", Field::One(json!(marker))),
                ("args", Field::Args(named_args(marker, args))),
            ];
            if !text.is_empty() {
                v.push(("text", Field::One(json!(text))));
            }
            if let Some(cpu) = cpu {
                v.push(("cpu", Field::One(json!(cpu))));
            }
            return v;
        }
        EventKind::Log { level, text } => vec![("level", json!(level)), ("text", json!(text))],
        EventKind::Verdict { pass, text } => vec![("pass", json!(pass)), ("text", json!(text))],
        EventKind::Note { text } => vec![("text", json!(text))],
        EventKind::Finding { oracle, at, detail } => {
            vec![
                ("oracle", json!(oracle)),
                ("at", json!(at)),
                ("detail", json!(detail)),
            ]
        }
    };
    fields
        .into_iter()
        .map(|(k, v)| (k, Field::One(v)))
        .collect()
}

/// The `event` name of a kind, as the raw log spells it.
pub fn kind_name(k: &EventKind) -> String {
    serde_json::to_value(k)
        .ok()
        .and_then(|v| v.get("event").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

/// One event as one line of text: `#358 guest dma-unmap addr=0x20d204c len=21`.
pub fn line(e: &Event) -> String {
    let src = serde_json::to_value(e.source).ok();
    let src = src.as_ref().and_then(Value::as_str).unwrap_or("?");
    let mut s = format!("#{} {src} {}", e.seq, kind_name(&e.kind));
    let show = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    for (k, f) in fields(&e.kind) {
        match (k, f) {
            (_, Field::Args(a)) => {
                for (ak, av) in a {
                    s = format!("{s} {ak}={}", show(&av));
                }
            }
            ("marker" | "reg", Field::One(v)) => s = format!("{s} {}", show(&v)),
            ("text" | "detail", Field::One(v)) => s = format!("{s} \"{}\"", show(&v)),
            (k, Field::One(v)) => s = format!("{s} {k}={}", show(&v)),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use nic_model::events::Source;

    fn ev(kind: EventKind) -> Event {
        Event {
            seq: 7,
            time_ns: 1500,
            source: Source::Device,
            kind,
        }
    }

    #[test]
    fn registers_are_named_from_the_abi() {
        assert_eq!(reg_name(u64::from(regs::TX_TAIL)), "TX_TAIL");
        assert_eq!(reg_name(u64::from(regs::INT_ENABLE)), "INT_ENABLE");
        assert_eq!(reg_name(0x2000 + 16 + 12), "MSIX[1].ctrl");
        assert_eq!(reg_name(u64::from(pci::MSIX_PBA_OFFSET)), "MSIX_PBA");
        assert_eq!(reg_name(0x1ff0), "0x1ff0");
    }

    #[test]
    fn an_mmio_write_decodes_with_name_and_hex_value() {
        let e = ev(EventKind::MmioWrite {
            offset: u64::from(regs::TX_TAIL),
            value: 0xfee0_0000,
            size: 4,
        });
        let j = json(&e);
        assert_eq!(j["reg"], "TX_TAIL");
        assert_eq!(j["value"], "0xfee00000");
        assert_eq!(j["event"], "mmio-write");
        assert_eq!(j["t_us"], 1.5);
        assert_eq!(
            line(&e),
            "#7 device mmio-write TX_TAIL value=0xfee00000 size=4"
        );
    }

    #[test]
    fn marker_arguments_are_named() {
        let e = ev(EventKind::Marker {
            marker: "dma-map".into(),
            args: vec![34414668, 21, 0],
            text: String::new(),
            cpu: None,
        });
        let j = json(&e);
        assert_eq!(j["args"]["addr"], "0x20d204c");
        assert_eq!(j["args"]["len"], 21);
        assert_eq!(j["args"]["dir"], "to-device");
        let e = ev(EventKind::Marker {
            marker: "queue-stop".into(),
            args: vec![2, 9, 0, 0, 0],
            text: String::new(),
            cpu: None,
        });
        assert_eq!(line(&e), "#7 device marker queue-stop reason=bql arg2=9");
        let e = ev(EventKind::Marker {
            marker: "skb-alloc".into(),
            args: vec![3, 60],
            text: String::new(),
            cpu: None,
        });
        assert_eq!(json(&e)["args"], json!({"skb": 3, "len": 60}));
        let e = ev(EventKind::Marker {
            marker: "napi-complete".into(),
            args: vec![2, 64],
            text: String::new(),
            cpu: Some(1),
        });
        assert_eq!(json(&e)["cpu"], 1);
        assert!(line(&e).ends_with(" cpu=1"), "{}", line(&e));
    }

    #[test]
    fn every_kind_decodes_with_its_event_name() {
        let kinds = vec![
            EventKind::Dma {
                dir: DmaDir::Write,
                addr: 0x1000,
                len: 16,
                cause: "tx-status".into(),
            },
            EventKind::Irq {
                vector: 1,
                masked: true,
            },
            EventKind::DeviceFault {
                code: 3,
                addr: 0x10,
            },
            EventKind::Finding {
                oracle: "skb-ledger".into(),
                at: 3,
                detail: "x".into(),
            },
            EventKind::ResetStart,
        ];
        for k in kinds {
            let j = json(&ev(k.clone()));
            let raw = serde_json::to_value(ev(k)).unwrap();
            assert_eq!(j["event"], raw["event"]);
        }
        assert_eq!(
            json(&ev(EventKind::Irq {
                vector: 1,
                masked: false
            }))["signals"],
            "rx"
        );
        assert_eq!(
            line(&ev(EventKind::Dma {
                dir: DmaDir::Read,
                addr: 0x10002f0,
                len: 16,
                cause: "ghost".into()
            })),
            "#7 device dma dir=read addr=0x10002f0 len=16 cause=ghost"
        );
    }
}
