//! Regression tests for what a hostile guest found in the device and the
//! monitor (issue 15): each was shown failing before its fix.

use nic_model::abi::{self, layout, pci as ids, regs, DeviceError};
use nic_model::events::EventKind;
use nic_model::monitor::*;
use nic_model::test_utils::*;
use nic_model::NicConfig;

const PAY: u64 = layout::PAYLOAD_BASE;

fn opened(cfg: NicConfig) -> TestHelper {
    let mut h = TestHelper::new(cfg);
    h.open(16);
    h
}

fn dmas(h: &TestHelper) -> usize {
    h.log
        .snapshot()
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Dma { .. }))
        .count()
}

/// Post one descriptor at the helper's tail without ringing.
fn post_raw(h: &mut TestHelper, addr: u64, len: u16, flags: u8) {
    h.fill(addr, usize::from(len));
    h.map(addr, u64::from(len), 0);
    let d = abi::TxDesc {
        addr,
        len,
        flags,
        ..Default::default()
    };
    h.write_tx_desc(h.tx_tail, d);
    h.tx_tail = h.tx_tail.wrapping_add(1);
}

#[test]
fn tx_tail_moved_back_behind_head_latches_bad_tail() {
    let mut h = opened(NicConfig::default());
    // Two fragments of a three-fragment packet: the device gathers them
    // and waits for the rest (HEAD 2, packet start 0).
    post_raw(&mut h, PAY, 60, 0);
    post_raw(&mut h, PAY + 64, 60, 0);
    h.doorbell();
    assert_eq!(h.r(regs::TX_HEAD), 2);
    let before = dmas(&h);
    // The tail moves back into the half-gathered packet, behind HEAD.
    h.w(regs::TX_TAIL, 1);
    assert_eq!(h.r(regs::ERR_CODE), DeviceError::BadTail as u32);
    assert_eq!(h.nic().frames_sent(), 0, "nothing sent from unposted slots");
    assert!(h.r(regs::TX_HEAD) <= 2, "HEAD {}", h.r(regs::TX_HEAD));
    assert!(dmas(&h) - before <= 1, "{} DMAs", dmas(&h) - before);
    let r = h.rules();
    assert!(!r.contains(&RULE_DESC_UNPOSTED), "{r:?}");
}

/// Read the PBA's low dword.
fn pba(h: &mut TestHelper) -> u32 {
    h.bar_read(u64::from(ids::MSIX_PBA_OFFSET))
}

fn set_command(h: &mut TestHelper, cmd: u16) {
    h.cfg_write(ids::NIC_DEVFN.1, ids::REG_COMMAND, u32::from(cmd));
}

#[test]
fn msi_waits_in_the_pba_while_bus_mastering_is_off() {
    let mut h = opened(NicConfig::default());
    let sent = h.msi.vectors().len();
    // Bus mastering off, then a doorbell: the DMA is refused and the
    // error cause latched, but the error message must not go out.
    set_command(&mut h, ids::CMD_MEMORY);
    h.send(&[(PAY, 60)]);
    assert_eq!(h.r(regs::ERR_CODE), DeviceError::BusMasterOff as u32);
    assert_eq!(h.msi.vectors().len(), sent, "{:?}", h.msi.vectors());
    assert_eq!(pba(&mut h), 1 << ids::MSIX_MISC, "pending in the PBA");
    // Bus mastering back: the pending message is delivered, once.
    set_command(&mut h, ids::CMD_MEMORY | ids::CMD_BUS_MASTER);
    assert_eq!(h.msi.vectors()[sent..], [ids::MSIX_MISC]);
    assert_eq!(pba(&mut h), 0);
}

/// Point vector `v`'s message address at `lo`/`hi`.
fn set_msi_addr(h: &mut TestHelper, v: u16, lo: u32, hi: u32) {
    let t = u64::from(ids::MSIX_TABLE_OFFSET) + u64::from(v) * 16;
    h.bar_write(t, lo);
    h.bar_write(t + 4, hi);
}

#[test]
fn msi_to_an_address_outside_the_lapic_window_is_refused() {
    let bar = layout::NIC_BAR0_DEFAULT;
    for (lo, hi) in [
        (0x0010_0000, 0),                         // guest RAM
        (0xd000_0000, 0),                         // unmapped
        (bar as u32, (bar >> 32) as u32),         // the device's BAR
        (bar as u32 + ids::MSIX_TABLE_OFFSET, 0), // its MSI-X table
        (0xfec0_0000, 0),                         // the IOAPIC
        (0xfee0_0000, 1),                         // 0x1_fee00000
        (0xfef0_0000, 0),                         // just past the window
    ] {
        let mut h = opened(NicConfig::default());
        set_msi_addr(&mut h, ids::MSIX_TX, lo, hi);
        let sent = h.msi.sent.lock().unwrap().len();
        h.send(&[(PAY, 60)]);
        assert_eq!(h.nic().frames_sent(), 1);
        let msgs = h.msi.sent.lock().unwrap().clone();
        assert!(
            msgs.iter()
                .all(|&(a, _)| (0xfee0_0000..0xfef0_0000).contains(&a)),
            "{lo:#x}/{hi:#x}: {msgs:x?}"
        );
        assert_eq!(
            h.r(regs::ERR_CODE),
            DeviceError::BadMsiAddress as u32,
            "{lo:#x}/{hi:#x}"
        );
        assert_eq!(h.r(regs::ERR_ADDR_LO), lo);
        assert_eq!(h.r(regs::ERR_ADDR_HI), hi);
        assert!(h.rules().contains(&RULE_MSI_BAD_ADDRESS), "{:?}", h.rules());
        assert_ne!(pba(&mut h) & 1 << ids::MSIX_TX, 0, "the PBA bit stays");
        // The error interrupt (a good address) still went out (and the
        // looped-back frame's RX one); the TX one did not.
        let data: Vec<u32> = msgs[sent..].iter().map(|m| m.1).collect();
        let vector = |v: u16| MSI_DATA_BASE + u32::from(v);
        assert!(data.contains(&vector(ids::MSIX_MISC)), "{data:x?}");
        assert!(!data.contains(&vector(ids::MSIX_TX)), "{data:x?}");
        // Repaired address and a mask toggle deliver the pending message.
        set_msi_addr(&mut h, ids::MSIX_TX, MSI_ADDR as u32, 0);
        let ctrl = u64::from(ids::MSIX_TABLE_OFFSET) + u64::from(ids::MSIX_TX) * 16 + 12;
        h.bar_write(ctrl, 1);
        h.bar_write(ctrl, 0);
        assert_eq!(pba(&mut h), 0);
        assert_eq!(h.msi.vectors().last(), Some(&ids::MSIX_TX));
    }
}

#[test]
fn msi_every_vector_bad_does_not_recurse() {
    let mut h = opened(NicConfig::default());
    for v in 0..ids::MSIX_VECTORS {
        set_msi_addr(&mut h, v, 0x1000, 0);
    }
    let sent = h.msi.vectors().len();
    h.send(&[(PAY, 60)]);
    assert_eq!(h.msi.vectors().len(), sent);
    assert_eq!(h.r(regs::ERR_CODE), DeviceError::BadMsiAddress as u32);
}

#[test]
fn bar_access_with_an_offset_near_u64_max_does_not_wrap() {
    let mut h = opened(NicConfig::default());
    let ctrl = h.r(regs::CTRL);
    for off in [u64::MAX - 3, u64::MAX - 7, u64::MAX, ids::BAR0_SIZE - 4] {
        let mut d = [0u8; 8];
        h.nic().bar_read(off, &mut d);
        assert_eq!(d, [0xff; 8], "{off:#x}");
        // An 8-byte write whose high dword would land on CTRL if wrapped.
        h.nic()
            .bar_write(off, &(u64::from(regs::CTRL_RESET) << 32).to_le_bytes());
        assert_eq!(h.r(regs::CTRL), ctrl, "{off:#x}");
    }
    assert_eq!(h.r(regs::ERR_CODE), DeviceError::BadAccess as u32);
}

#[test]
fn descriptor_poll_with_only_tx_enabled_is_no_violation() {
    let mut h = opened(NicConfig {
        dma_until_disabled: true,
        ..Default::default()
    });
    h.w(regs::CTRL, regs::CTRL_TX_EN);
    h.advance(200_000);
    let polls = h
        .log
        .snapshot()
        .iter()
        .filter(|e| matches!(&e.kind, EventKind::Dma { cause, .. } if cause == "poll"))
        .count();
    assert!(polls >= 3, "polls {polls}");
    assert!(h.rules().is_empty(), "{:?}", h.nic().violations());
    // And with only RX enabled.
    h.w(regs::CTRL, regs::CTRL_RX_EN);
    h.advance(200_000);
    assert!(h.rules().is_empty(), "{:?}", h.nic().violations());
}

#[test]
fn held_completions_count_against_the_ring() {
    let mut h = opened(NicConfig {
        complete_on_request: true,
        ..Default::default()
    });
    // Sixteen packets fill the 16-slot ring; their completions are held.
    for i in 0..16 {
        h.send(&[(PAY + i * 64, 60)]);
    }
    assert_eq!(h.nic().frames_sent(), 16);
    // A driver that reuses slots whose completions never came back.
    h.send(&[(PAY + 0x2000, 60)]);
    assert_eq!(h.r(regs::ERR_CODE), DeviceError::BadTail as u32);
    assert_eq!(h.nic().frames_sent(), 16, "no slot reused");
    h.w(regs::TEST_COMPLETE, 1);
    let r = h.rules();
    assert!(!r.contains(&RULE_COMPLETION_UNPOSTED), "{r:?}");
}

#[test]
fn virtual_time_near_u64_max_does_not_overflow_a_timer() {
    // Found by the fuzzer (fuzz/regressions/nic/timer-overflow): the
    // poll timer re-armed at now + period overflowed.
    let mut h = opened(NicConfig {
        dma_until_disabled: true,
        ..Default::default()
    });
    h.w(regs::COAL_TX_FRAMES, 4);
    h.w(regs::COAL_TX_USECS, u32::MAX);
    h.advance(u64::MAX - 10);
    h.send(&[(PAY, 60)]);
    h.nic().advance(u64::MAX);
    assert_eq!(h.nic().now_ns(), u64::MAX);
    assert_eq!(h.nic().frames_sent(), 1);
}

#[test]
fn held_completions_are_not_written_while_tx_is_disabled() {
    // Found by the fuzzer (fuzz/regressions/nic/held-completion-after-disable).
    let mut h = opened(NicConfig {
        complete_on_request: true,
        ..Default::default()
    });
    let a = h.send(&[(PAY, 60)]);
    h.w(regs::CTRL, regs::CTRL_RX_EN);
    h.w(regs::TEST_COMPLETE, 1);
    assert_eq!(h.tx_status(a), 0, "no completion DMA with TX disabled");
    assert!(h.rules().is_empty(), "{:?}", h.nic().violations());
    h.w(regs::CTRL, regs::CTRL_TX_EN | regs::CTRL_RX_EN);
    h.w(regs::TEST_COMPLETE, 1);
    assert_eq!(h.tx_status(a), abi::TXD_STAT_DONE, "held until TX is back");
    assert!(h.rules().is_empty(), "{:?}", h.nic().violations());
}
