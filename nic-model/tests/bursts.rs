//! TX descriptor bursts and completion write-back, and the monitor's
//! judgement of multi-slot accesses and of its own shortcuts (the window
//! mask and the per-cause map hit), which must never hide a rule that
//! has started to apply.

use nic_model::abi::{self, layout, regs, Marker};
use nic_model::events::{DmaDir, EventKind, EventLog};
use nic_model::monitor::*;
use nic_model::test_utils::*;
use nic_model::{BackendConfig, NicConfig, TX_PREFETCH};
use vm_memory::{Bytes, GuestAddress};

const PAY: u64 = layout::PAYLOAD_BASE;

/// (cause, dir, addr, len) of every DMA in the log.
fn dmas(h: &TestHelper) -> Vec<(String, DmaDir, u64, u64)> {
    h.log
        .snapshot()
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::Dma {
                dir,
                addr,
                len,
                cause,
            } => Some((cause.to_string(), dir, addr, len)),
            _ => None,
        })
        .collect()
}

fn of(d: &[(String, DmaDir, u64, u64)], cause: &str) -> Vec<(u64, u64)> {
    d.iter()
        .filter(|x| x.0 == cause)
        .map(|x| (x.2, x.3))
        .collect()
}

fn null_device(ring: u32) -> TestHelper {
    let mut h = TestHelper::new(NicConfig {
        backend: BackendConfig::Null,
        ..Default::default()
    });
    h.open(ring);
    h
}

fn read_desc(h: &TestHelper, slot: u32) -> [u8; 16] {
    let mut b = [0u8; 16];
    let a = TX_RING + u64::from(slot & (h.ring_size - 1)) * 16;
    h.mem.read_slice(&mut b, GuestAddress(a)).unwrap();
    b
}

#[test]
fn one_doorbell_is_one_fetch_and_one_write_back_that_keeps_the_descriptors() {
    let mut h = null_device(64);
    // 10 single-descriptor packets, then 3 of 3 fragments: 19 slots.
    let mut eops = Vec::new();
    for i in 0..10u64 {
        eops.push(h.post(&[(PAY + i * 0x100, 60)]));
    }
    for i in 0..3u64 {
        let base = PAY + 0x10_000 + i * 0x1000;
        eops.push(h.post(&[(base, 20), (base + 0x400, 20), (base + 0x800, 20)]));
    }
    // A cookie the driver keeps in a posted descriptor comes back as is.
    let mut d = read_desc(&h, 11);
    d[14] = 0xab;
    h.mem
        .write_slice(&d, GuestAddress(TX_RING + 11 * 16))
        .unwrap();
    let before: Vec<[u8; 16]> = (0..19).map(|s| read_desc(&h, s)).collect();
    h.doorbell();

    let d = dmas(&h);
    assert_eq!(
        of(&d, "tx-desc"),
        vec![(TX_RING, 19 * 16)],
        "one burst for 19 posted slots"
    );
    assert_eq!(
        of(&d, "tx-status"),
        vec![(TX_RING, 19 * 16)],
        "one write-back from the first EOP (slot 0) to the last (slot 18)"
    );
    assert_eq!(of(&d, "tx-data").len(), 10 + 9);
    for s in 0..19u32 {
        let after = read_desc(&h, s);
        let want = if eops.contains(&s) {
            abi::TXD_STAT_DONE
        } else {
            0
        };
        assert_eq!(
            u16::from_le_bytes([after[12], after[13]]),
            want,
            "status of slot {s}"
        );
        // Everything but the status is what the driver posted.
        assert_eq!(after[..12], before[s as usize][..12], "slot {s}");
        assert_eq!(after[14..], before[s as usize][14..], "slot {s}");
    }
    assert_eq!(h.nic().frames_sent(), 13);
    assert!(h.rules().is_empty(), "{:?}", h.nic().violations());
}

#[test]
fn a_burst_never_crosses_the_ring_end_nor_tx_prefetch() {
    let mut h = null_device(16);
    for i in 0..12u64 {
        h.post(&[(PAY + i * 0x100, 60)]);
    }
    h.doorbell();
    // 8 more: slots 12..16 then 0..4, one doorbell.
    for i in 0..8u64 {
        h.post(&[(PAY + 0x2000 + i * 0x100, 60)]);
    }
    h.doorbell();
    let desc = of(&dmas(&h), "tx-desc");
    assert_eq!(
        desc,
        vec![
            (TX_RING, 12 * 16),
            (TX_RING + 12 * 16, 4 * 16),
            (TX_RING, 4 * 16)
        ]
    );
    assert!(h.rules().is_empty(), "{:?}", h.nic().violations());

    let mut h = null_device(256);
    for i in 0..100u64 {
        h.post(&[(PAY + i * 0x100, 60)]);
    }
    h.doorbell();
    let n = u64::from(TX_PREFETCH);
    let desc = of(&dmas(&h), "tx-desc");
    assert_eq!(
        desc,
        vec![(TX_RING, n * 16), (TX_RING + n * 16, (100 - n) * 16)]
    );
    assert_eq!(h.nic().frames_sent(), 100);
    assert!(h.rules().is_empty(), "{:?}", h.nic().violations());
}

#[test]
fn a_packet_split_across_bursts_completes_in_the_second() {
    let mut h = null_device(16);
    for i in 0..14u64 {
        h.post(&[(PAY + i * 0x100, 60)]);
    }
    h.doorbell();
    // Slots 14, 15, 0, 1: one packet of four fragments across the wrap.
    let eop = h.post(&[
        (PAY + 0x4000, 30),
        (PAY + 0x4100, 30),
        (PAY + 0x4200, 30),
        (PAY + 0x4300, 30),
    ]);
    h.doorbell();
    assert_eq!(eop, 17);
    assert_eq!(h.tx_status(1), abi::TXD_STAT_DONE);
    let st = of(&dmas(&h), "tx-status");
    assert_eq!(
        st.last(),
        Some(&(TX_RING + 16, 16)),
        "write-back of slot 1 alone"
    );
    assert_eq!(h.nic().tx_frame(14).map(<[u8]>::len), Some(120));
    assert!(h.rules().is_empty(), "{:?}", h.nic().violations());
}

#[test]
fn with_loopback_each_completion_is_written_before_its_frame_is_received() {
    let mut h = TestHelper::new(NicConfig::default());
    h.open(16);
    for i in 0..4u64 {
        h.post(&[(PAY + i * 0x100, 60)]);
    }
    h.doorbell();
    let d = dmas(&h);
    let order: Vec<&str> = d
        .iter()
        .filter(|x| x.0 == "tx-status" || x.0 == "rx-data")
        .map(|x| x.0.as_str())
        .collect();
    assert_eq!(order, ["tx-status", "rx-data"].repeat(4));
    assert!(h.rules().is_empty(), "{:?}", h.nic().violations());
}

#[test]
fn stall_after_n_completions_holds_with_bursts() {
    let mut h = TestHelper::new(NicConfig {
        backend: BackendConfig::Null,
        stall_completions_after: Some(5),
        ..Default::default()
    });
    h.open(16);
    for i in 0..8u64 {
        h.post(&[(PAY + i * 0x100, 60)]);
    }
    h.doorbell();
    let done = (0..8)
        .filter(|&s| h.tx_status(s) == abi::TXD_STAT_DONE)
        .count();
    assert_eq!(done, 5);
    assert!(h.rules().is_empty(), "{:?}", h.nic().violations());
}

// ------------------------------------------------ the monitor by itself

const RING: u64 = 0x10_0000;
const BUF: u64 = 0x20_0000;

/// A monitor over a 16-slot TX ring with `tail` posted, the ring and a
/// buffer mapped, TX and RX enabled, after open.
fn monitor(tail: u32) -> DmaMonitor {
    let mut m = DmaMonitor::new(true, EventLog::new());
    m.on_marker(Marker::OpenEnter, &[], 0);
    m.on_marker(Marker::DmaMap, &[0, RING, 16 * 16, 2], 1);
    m.on_marker(Marker::DmaMap, &[0, BUF, 0x1000, 0], 2);
    m.on_reg_write(regs::TX_BASE_LO, RING as u32);
    m.on_reg_write(regs::TX_SIZE, 16);
    m.on_reg_write(regs::TX_TAIL, tail);
    m.set_device_state(GateState {
        bus_master: true,
        tx_enabled: true,
        rx_enabled: true,
        resetting: false,
    });
    m
}

fn rules(m: &DmaMonitor) -> Vec<&'static str> {
    m.violations().iter().map(|v| v.rule).collect()
}

#[test]
fn monitor_judges_burst_fetches_by_what_was_posted() {
    let mut m = monitor(6);
    m.check_dma(DmaDir::Read, RING, 4 * 16, DmaCause::TxDesc(0));
    m.check_dma(DmaDir::Read, RING + 4 * 16, 2 * 16, DmaCause::TxDesc(4));
    assert!(rules(&m).is_empty(), "{:?}", m.violations());
    // One slot more than posted.
    let mut m = monitor(6);
    m.check_dma(DmaDir::Read, RING, 7 * 16, DmaCause::TxDesc(0));
    assert_eq!(rules(&m), vec![RULE_DESC_UNPOSTED]);
    // Out of order: the burst skips slot 0.
    let mut m = monitor(6);
    m.check_dma(DmaDir::Read, RING + 16, 2 * 16, DmaCause::TxDesc(1));
    assert_eq!(rules(&m), vec![RULE_DESC_UNPOSTED]);
    // Across the ring's end (slots 14, 15, 0): one read cannot do that;
    // its last 16 bytes are past the ring's map, too.
    let mut m = monitor(14);
    m.check_dma(DmaDir::Read, RING, 14 * 16, DmaCause::TxDesc(0));
    m.on_reg_write(regs::TX_TAIL, 17);
    m.check_dma(DmaDir::Read, RING + 14 * 16, 3 * 16, DmaCause::TxDesc(14));
    assert_eq!(rules(&m), vec![RULE_DMA_UNMAPPED, RULE_DESC_UNPOSTED]);
}

#[test]
fn monitor_judges_write_backs_by_what_was_fetched() {
    let mut m = monitor(8);
    m.check_dma(DmaDir::Read, RING, 4 * 16, DmaCause::TxDesc(0));
    // Slots 0..4 fetched: writing back 0..3, then 3 (one status word).
    m.check_dma(DmaDir::Write, RING, 3 * 16, DmaCause::TxStatus(0));
    m.check_dma(DmaDir::Write, RING + 3 * 16 + 12, 2, DmaCause::TxStatus(3));
    assert!(rules(&m).is_empty(), "{:?}", m.violations());
    // A write-back reaching a slot never fetched.
    let mut m = monitor(8);
    m.check_dma(DmaDir::Read, RING, 4 * 16, DmaCause::TxDesc(0));
    m.check_dma(DmaDir::Write, RING, 5 * 16, DmaCause::TxStatus(0));
    assert_eq!(rules(&m), vec![RULE_COMPLETION_UNPOSTED]);
    // A second write-back of slots already completed.
    let mut m = monitor(8);
    m.check_dma(DmaDir::Read, RING, 4 * 16, DmaCause::TxDesc(0));
    m.check_dma(DmaDir::Write, RING, 2 * 16, DmaCause::TxStatus(0));
    m.check_dma(DmaDir::Write, RING, 16, DmaCause::TxStatus(0));
    assert_eq!(rules(&m), vec![RULE_COMPLETION_UNPOSTED]);
}

/// The shortcuts: after an access passes (and fills the hit), every
/// change that makes the same access wrong must be seen on the next one.
#[test]
fn monitor_shortcuts_never_hide_a_rule_that_starts_to_apply() {
    let read = |m: &mut DmaMonitor| m.check_dma(DmaDir::Read, BUF + 0x100, 64, DmaCause::TxData);
    type Change = fn(&mut DmaMonitor);
    let cases: [(&str, Change, &str); 6] = [
        (
            "unmap",
            |m| m.on_marker(Marker::DmaUnmap, &[0, BUF, 0x1000], 9),
            RULE_DMA_UNMAPPED,
        ),
        (
            "stop-exit",
            |m| m.on_marker(Marker::StopExit, &[], 9),
            RULE_DMA_AFTER_STOP,
        ),
        (
            "tx disabled",
            |m| {
                m.set_device_state(GateState {
                    bus_master: true,
                    tx_enabled: false,
                    rx_enabled: true,
                    resetting: false,
                })
            },
            RULE_DMA_DEVICE_DISABLED,
        ),
        (
            "reset",
            |m| {
                m.set_device_state(GateState {
                    bus_master: true,
                    tx_enabled: false,
                    rx_enabled: false,
                    resetting: true,
                })
            },
            RULE_DMA_DURING_RESET,
        ),
        (
            "remapped from-device",
            |m| {
                m.on_marker(Marker::DmaUnmap, &[0, BUF, 0x1000], 9);
                m.on_marker(Marker::DmaMap, &[0, BUF, 0x1000, 1], 10);
            },
            RULE_DMA_WRONG_DIRECTION,
        ),
        (
            "remapped shorter",
            |m| {
                m.on_marker(Marker::DmaUnmap, &[0, BUF, 0x1000], 9);
                m.on_marker(Marker::DmaMap, &[0, BUF, 0x100, 0], 10);
            },
            RULE_DMA_UNMAPPED,
        ),
    ];
    for (what, change, rule) in cases {
        let mut m = monitor(0);
        read(&mut m);
        read(&mut m);
        assert!(rules(&m).is_empty(), "{what}: {:?}", m.violations());
        change(&mut m);
        read(&mut m);
        assert!(rules(&m).contains(&rule), "{what}: {:?}", m.violations());
    }
    // A hit for reads says nothing about writes, nor one cause about another.
    let mut m = monitor(0);
    read(&mut m);
    m.check_dma(DmaDir::Write, BUF + 0x100, 64, DmaCause::TxData);
    assert_eq!(rules(&m), vec![RULE_DMA_WRONG_DIRECTION]);
    let mut m = monitor(0);
    m.set_device_state(GateState {
        bus_master: true,
        tx_enabled: true,
        rx_enabled: false,
        resetting: false,
    });
    read(&mut m);
    m.check_dma(DmaDir::Read, BUF + 0x100, 64, DmaCause::RxData);
    assert!(
        rules(&m).contains(&RULE_DMA_DEVICE_DISABLED),
        "{:?}",
        m.violations()
    );
    // Just past the hit's end is outside the map.
    let mut m = monitor(0);
    read(&mut m);
    m.check_dma(DmaDir::Read, BUF + 0x1000 - 32, 64, DmaCause::TxData);
    assert_eq!(rules(&m), vec![RULE_DMA_UNMAPPED]);
}

#[test]
fn a_misaligned_ring_still_gets_its_completions() {
    let mut h = null_device(16);
    // The driver moves the TX ring 4 bytes off alignment (still mapped).
    let base = TX_RING + 4;
    h.w(regs::TX_BASE_LO, base as u32);
    for slot in 0..3u64 {
        let addr = PAY + slot * 0x100;
        h.fill(addr, 60);
        h.map(addr, 60, 0);
        let mut d = [0u8; 16];
        d[0..8].copy_from_slice(&addr.to_le_bytes());
        d[8..10].copy_from_slice(&60u16.to_le_bytes());
        d[10] = abi::TXD_EOP;
        h.mem
            .write_slice(&d, GuestAddress(base + slot * 16))
            .unwrap();
    }
    h.w(regs::TX_TAIL, 3);
    for slot in 0..3u64 {
        let st: u16 = h.mem.read_obj(GuestAddress(base + slot * 16 + 12)).unwrap();
        assert_eq!(st, abi::TXD_STAT_DONE, "slot {slot}");
    }
    assert_eq!(h.nic().frames_sent(), 3);
    assert!(h.rules().is_empty(), "{:?}", h.nic().violations());
}
