//! Property test: random MMIO writes, config writes, descriptor contents,
//! markers and time steps never panic the device, each step does bounded
//! work, and the log stays consistent.

use nic_model::abi::{self, layout, regs, DeviceError, Marker};
use nic_model::events::EventKind;
use nic_model::test_utils::*;
use nic_model::NicConfig;
use proptest::prelude::*;
use std::collections::HashMap;

#[derive(Clone, Debug)]
enum Op {
    Reg {
        off: u32,
        val: u32,
    },
    Reg64 {
        off: u32,
        val: u64,
    },
    Cfg {
        reg: u8,
        val: u32,
    },
    TxDesc {
        slot: u32,
        addr: u64,
        len: u16,
        flags: u8,
    },
    RxDesc {
        slot: u32,
        addr: u64,
        buf_len: u16,
    },
    Marker {
        m: u32,
        a: u64,
        b: u64,
    },
    Advance(u64),
    /// A well-formed packet posted the driver's way, then the doorbell.
    Send {
        frags: u8,
        len: u16,
    },
}

/// Offsets worth hitting often, plus anything in the BAR.
fn reg_off() -> impl Strategy<Value = u32> {
    prop_oneof![
        4 => prop::sample::select(vec![
            regs::CTRL, regs::EEPROM, regs::TX_BASE_LO, regs::TX_BASE_HI, regs::TX_SIZE,
            regs::TX_TAIL, regs::RX_BASE_LO, regs::RX_SIZE, regs::RX_TAIL, regs::INT_CAUSE,
            regs::INT_ENABLE, regs::COAL_TX_FRAMES, regs::COAL_TX_USECS, regs::ERR_CLEAR,
            regs::TEST_COMPLETE, 0x2000, 0x200c, 0x201c, 0x3000,
        ]),
        1 => (0u32..0x4000).prop_map(|o| o & !3),
    ]
}

/// Addresses: mostly the payload pool and rings, sometimes anywhere.
fn addr() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => (0u64..0x10000).prop_map(|o| layout::PAYLOAD_BASE + o),
        1 => (0u64..0x2000).prop_map(|o| TX_RING + o),
        1 => any::<u64>(),
        1 => Just(layout::NIC_BAR0_DEFAULT),
        1 => Just(layout::RAM_SIZE - 8),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (reg_off(), prop_oneof![any::<u32>(), 0u32..64]).prop_map(|(off, val)| Op::Reg { off, val }),
        1 => (reg_off(), any::<u64>()).prop_map(|(off, val)| Op::Reg64 { off, val }),
        1 => (prop::sample::select(vec![0x04u8, 0x10, 0x14, 0x40]), any::<u32>()).prop_map(|(reg, val)| Op::Cfg { reg, val }),
        4 => (0u32..64, addr(), prop_oneof![0u16..100, any::<u16>()], any::<u8>())
            .prop_map(|(slot, addr, len, flags)| Op::TxDesc { slot, addr, len, flags }),
        2 => (0u32..64, addr(), prop_oneof![0u16..2048, any::<u16>()])
            .prop_map(|(slot, addr, buf_len)| Op::RxDesc { slot, addr, buf_len }),
        1 => (1u32..25, addr(), 0u64..5000).prop_map(|(m, a, b)| Op::Marker { m, a, b }),
        2 => (0u64..2_000_000).prop_map(Op::Advance),
        4 => (1u8..5, 1u16..400).prop_map(|(frags, len)| Op::Send { frags, len }),
    ]
}

/// Events one step may add: every descriptor of a doorbell's work can
/// cost a handful of events (DMA, violations, frames, interrupts).
const MAX_EVENTS_PER_STEP: usize = 16 * abi::MAX_WORK_PER_DOORBELL as usize + 64;

fn run(cfg: NicConfig, open: bool, ops: &[Op]) {
    let mut h = TestHelper::new(cfg);
    if open {
        h.open(16);
    } else {
        h.enable_pci();
    }
    let bar = h.nic().bar0();
    for op in ops {
        let before = h.log.len();
        match *op {
            Op::Reg { off, val } => h.bar_write(u64::from(off), val),
            Op::Reg64 { off, val } => {
                h.root.mmio_write(bar + u64::from(off), &val.to_le_bytes());
            }
            Op::Cfg { reg, val } => h.cfg_write(1, reg, val),
            Op::TxDesc {
                slot,
                addr,
                len,
                flags,
            } => h.write_tx_desc(
                slot,
                abi::TxDesc {
                    addr,
                    len,
                    flags,
                    ..Default::default()
                },
            ),
            Op::RxDesc {
                slot,
                addr,
                buf_len,
            } => h.write_rx_desc(
                slot,
                abi::RxDesc {
                    addr,
                    buf_len,
                    ..Default::default()
                },
            ),
            Op::Marker { m, a, b } => {
                if let Some(m) = Marker::from_u32(m) {
                    h.marker(m, &[a, b, 2]);
                }
            }
            Op::Advance(ns) => h.advance(ns),
            Op::Send { frags, len } => {
                let f: Vec<(u64, u16)> = (0..u64::from(frags))
                    .map(|i| (layout::PAYLOAD_BASE + i * 0x800, len))
                    .collect();
                h.send(&f);
            }
        }
        // Reading every register is side-effect free and must not panic.
        // Go straight to the BAR: the ops may have moved it or turned
        // memory decoding off.
        let mut d = [0u8; 4];
        for r in (0..0x120).step_by(4) {
            h.nic().bar_read(r, &mut d);
        }
        let grew = h.log.len() - before;
        assert!(
            grew <= MAX_EVENTS_PER_STEP + 80,
            "{op:?} added {grew} events"
        );
    }
    check_log(&mut h);
}

fn check_log(h: &mut TestHelper) {
    let ev = h.log.snapshot();
    let mut tx: HashMap<u64, u32> = HashMap::new();
    for (i, e) in ev.iter().enumerate() {
        assert_eq!(e.seq, i as u64, "dense sequence numbers");
        match &e.kind {
            EventKind::TxFrame { seq, len, .. } => {
                assert!(
                    *len >= 1 && *len <= abi::MAX_FRAME_LEN,
                    "frame length {len}"
                );
                assert!(tx.insert(*seq, *len).is_none(), "TX seq {seq} twice");
            }
            EventKind::RxFrame { seq, len, .. } => {
                assert_eq!(tx.get(seq), Some(len), "RX frame {seq} matches a TX frame");
            }
            EventKind::DeviceFault { code, .. } => {
                assert!(matches!(DeviceError::from_code(*code), Some(c) if c != DeviceError::None));
            }
            EventKind::Dma { len, addr, .. } => {
                assert!(addr
                    .checked_add(*len)
                    .is_some_and(|end| end <= layout::RAM_SIZE));
            }
            EventKind::Violation { .. } => {
                assert!(h.nic().violations().iter().any(|v| v.seq == e.seq));
            }
            _ => {}
        }
    }
    assert_eq!(
        h.nic().violations().len(),
        ev.iter()
            .filter(|e| matches!(e.kind, EventKind::Violation { .. }))
            .count()
    );
    let mut d = [0u8; 4];
    h.nic().bar_read(u64::from(regs::ERR_CODE), &mut d);
    let code = u32::from_le_bytes(d);
    assert!(DeviceError::from_code(code).is_some(), "ERR_CODE {code}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_guest_never_breaks_the_device(
        open in any::<bool>(),
        knob in 0usize..4 + abi::DeviceMutant::ALL.len(),
        ops in prop::collection::vec(op(), 1..60),
    ) {
        let mut cfg = NicConfig { reset_delay_us: 200, ..Default::default() };
        match knob {
            1 => cfg.dma_until_disabled = true,
            2 => cfg.complete_on_request = true,
            3 => cfg.stall_completions_after = Some(3),
            // Every device mutant of the catalogue (4: the correct one).
            k if k >= 4 => cfg.mutant = abi::DeviceMutant::ALL[k - 4],
            _ => {}
        }
        run(cfg, open, &ops);
    }
}

#[test]
fn a_full_ring_of_max_fragment_packets_is_bounded_work() {
    // Worst case for one doorbell: the largest ring, every descriptor
    // posted.
    let mut h = TestHelper::new(NicConfig::default());
    h.open(regs::MAX_RING);
    let frags: Vec<(u64, u16)> = (0..abi::MAX_DESC_PER_PACKET as u64)
        .map(|i| (layout::PAYLOAD_BASE + i * 64, 64))
        .collect();
    let mut n = 0;
    while n + abi::MAX_DESC_PER_PACKET <= regs::MAX_RING {
        h.post(&frags);
        n += abi::MAX_DESC_PER_PACKET;
    }
    let before = h.log.len();
    h.doorbell();
    let grew = h.log.len() - before;
    assert!(grew <= MAX_EVENTS_PER_STEP, "{grew} events");
    assert_eq!(
        h.nic().frames_sent(),
        u64::from(n / abi::MAX_DESC_PER_PACKET)
    );
    assert!(h.rules().is_empty(), "{:?}", h.rules());
}

proptest! {
    /// Any port offset, width and value on 0xcf8..=0xcff, and any MMIO
    /// address and width, is answered without panicking; unclaimed reads
    /// are all ones.
    #[test]
    fn random_bus_accesses_never_panic(
        accesses in prop::collection::vec(
            (any::<bool>(), 0u16..10, 0usize..10, any::<u64>(), prop_oneof![Just(layout::NIC_BAR0_DEFAULT), any::<u64>()], 0u64..0x4010),
            1..200,
        ),
    ) {
        let mut h = TestHelper::new(NicConfig::default());
        h.enable_pci();
        for (pio, port, width, val, base, off) in accesses {
            let bytes = val.to_le_bytes();
            let mut buf = vec![0u8; width];
            if pio {
                if val & 1 == 0 {
                    h.root.pio_write(port, &bytes[..width.min(8)]);
                } else {
                    h.root.pio_read(port, &mut buf);
                }
            } else {
                let gpa = base.wrapping_add(off);
                if val & 1 == 0 {
                    h.root.mmio_write(gpa, &bytes[..width.min(8)]);
                } else if !h.root.mmio_read(gpa, &mut buf) {
                    prop_assert!(buf.iter().all(|&b| b == 0xff));
                }
            }
        }
    }
}
