//! The hostile guest (`abi::Scenario::Hostile`): after a normal probe and
//! open, program the device badly through its real registers and
//! descriptors, one abuse per knob VARIANT, and check that the device
//! latched the named error instead of doing it. Variant [`FUZZ_VARIANT`]
//! makes seeded register and descriptor garbage instead ([`fuzz`]).
//!
//! The abuses, with the error each must make the device latch, are the
//! catalogue's `abi::Abuse` (the host half, vmm/src/scenarios/hostile.rs,
//! reads the same table). The driver enables INT_ERR but
//! has no error path of its own, so the scenario reads STATUS, ERR_CODE,
//! ERR_ADDR and INT_CAUSE directly, reports what it saw in a Phase
//! marker, gives the error interrupt a moment to land (`sti; hlt`), and
//! stops the device (ndo_stop resets it).
//!
//! Descriptors go into a page of the scenario's own (TX is re-pointed at
//! it), so the driver's ring and ledger stay untouched; the page and the
//! payload the device may read are DMA-mapped like any driver buffer, so
//! the only thing wrong is the abuse itself. Guest oracle texts start with
//! `hostile:`.

use alloc::format;
use alloc::string::String;
use core::ptr::write_volatile;

use super::ctx::{self, Ctx, Stack};
use super::{Verdict, PAYLOAD};
use crate::abi::{
    knob, layout, pci, regs as r, Abuse, DeviceError, Marker, RunConfig, RxDesc, TxDesc,
    HOSTILE_FUZZ_VARIANT, MAX_DESC_PER_PACKET, TXD_EOP,
};
use crate::driver::dma::{DmaDir, DmaPool, DmaRegion, PAGE};
use crate::driver::regs::Regs;
use crate::platform::Platform;
use crate::softnet::watchdog::DEFAULT_WATCHDOG_TIMEO_NS;

/// Descriptors in the scenario's ring page.
const RING: u32 = (PAGE / 16) as u32;
/// Payload bytes the device may read (mapped to-device).
const PAYLOAD_MAP: u64 = PAGE;
/// Bound on each wait for the device (virtual ns).
const WAIT_NS: u64 = 50_000_000;
/// How long to sit in `sti; hlt` after the fault so the error interrupt
/// lands before stop.
const IRQ_GRACE_NS: u64 = 1_000_000;

/// The variant that runs [`fuzz`] instead of one named abuse.
pub const FUZZ_VARIANT: u64 = HOSTILE_FUZZ_VARIANT;
/// Operations one fuzz run makes.
const FUZZ_OPS: u32 = 48;

/// Run the abuse of `cfg.knobs[VARIANT]` with DMA memory from `pool`.
pub fn run(plat: &(dyn Platform + Sync), cfg: &RunConfig, mut pool: DmaPool) -> Verdict {
    let variant = cfg.knobs[knob::VARIANT];
    let abuse_of = u32::try_from(variant).ok().and_then(Abuse::from_u32);
    if abuse_of.is_none() && variant != FUZZ_VARIANT {
        return Verdict::fail(format!("hostile: no abuse for variant {variant}"));
    }
    let (Some(ring), Some(rx_ring)) = (pool.alloc(PAGE), pool.alloc(PAGE)) else {
        return Verdict::fail("hostile: no DMA pages for the rings");
    };
    let stack = Stack {
        pool_skbs: 8,
        bql: false,
        watchdog_timeo_ns: DEFAULT_WATCHDOG_TIMEO_NS,
        seed_salt: 0x4057,
    };
    ctx::with_stack(plat, cfg, pool, stack, |mut c| {
        let mapped = c.open().and_then(|()| map_pages(&c, &ring, &rx_ring));
        let seen = mapped.clone().map(|()| match abuse_of {
            Some(a) => abuse(&mut c, a, ring, rx_ring),
            None => fuzz(&mut c, &ring, &rx_ring),
        });
        let seen = match seen {
            Ok(s) => s,
            Err(e) => {
                c.fail(&e);
                String::new()
            }
        };
        c.dev.unregister();
        c.check(
            !c.nic.is_open(),
            "hostile: the device is still open after unregister",
        );
        // Stop reset the device: nothing can DMA from these any more.
        if mapped.is_ok() {
            c.nic.dma.unmap(plat, ring.phys, ring.len);
            c.nic.dma.unmap(plat, rx_ring.phys, rx_ring.len);
            c.nic.dma.unmap(plat, PAYLOAD.0, PAYLOAD_MAP);
        }
        let busy = c.end_ledger();
        c.check(busy == 0, &format!("hostile: {busy} BUSY returns"));
        c.verdict(|| seen)
    })
}

/// Wait (bounded, `sti; hlt` between looks) until `done` holds.
fn wait_for(plat: &dyn Platform, mut done: impl FnMut() -> bool) -> bool {
    let deadline = plat.now_ns() + WAIT_NS;
    loop {
        if done() {
            return true;
        }
        let now = plat.now_ns();
        if now > deadline {
            return false;
        }
        plat.wait_until(now + 100_000);
    }
}

/// Post `descs` in the scenario's ring from index `tail` and ring the
/// doorbell past them.
fn post(c: &Ctx<'_, '_, '_, '_>, ring: &DmaRegion, tail: u32, descs: impl Iterator<Item = TxDesc>) {
    let mut t = tail;
    for d in descs {
        let slot = (t & (RING - 1)) as usize;
        // SAFETY: slot < RING and the page holds RING 16-byte descriptors;
        // the page is ours (allocated before probe), 16-byte aligned.
        unsafe { write_volatile(ring.ptr.cast::<TxDesc>().add(slot), d) };
        t = t.wrapping_add(1);
    }
    core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
    c.nic.regs().write(r::TX_TAIL, t);
}

/// Point RX at `page` (RX disabled meanwhile) with `d` in the slot the
/// device fills next.
fn repoint_rx(regs: &Regs<'_>, page: &DmaRegion, d: RxDesc) {
    let ctrl = regs.read(r::CTRL);
    regs.write(r::CTRL, ctrl & !r::CTRL_RX_EN);
    let slot = (regs.read(r::RX_HEAD) & (RING - 1)) as usize;
    // SAFETY: slot < RING and the page holds RING 16-byte descriptors;
    // the page is ours (allocated before probe), 16-byte aligned.
    unsafe { write_volatile(page.ptr.cast::<RxDesc>().add(slot), d) };
    core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
    regs.write(r::RX_BASE_LO, page.phys as u32);
    regs.write(r::RX_BASE_HI, (page.phys >> 32) as u32);
    regs.write(r::RX_SIZE, RING);
    regs.write(r::CTRL, ctrl);
}

fn desc(addr: u64, len: u16, flags: u8) -> TxDesc {
    TxDesc {
        addr,
        len,
        flags,
        ..TxDesc::default()
    }
}

/// DMA-map our two ring pages and the payload the device may read.
fn map_pages(c: &Ctx<'_, '_, '_, '_>, ring: &DmaRegion, rx_ring: &DmaRegion) -> Result<(), String> {
    let (plat, dma) = (c.plat, &c.nic.dma);
    dma.map(plat, ring.phys, ring.len, DmaDir::Bidirectional)
        .map_err(|e| format!("hostile: map ring: {e:?}"))?;
    dma.map(plat, rx_ring.phys, rx_ring.len, DmaDir::Bidirectional)
        .map_err(|e| format!("hostile: map RX ring: {e:?}"))?;
    dma.map(plat, PAYLOAD.0, PAYLOAD_MAP, DmaDir::ToDevice)
        .map_err(|e| format!("hostile: map payload: {e:?}"))?;
    Ok(())
}

/// Point both rings at our pages, `RING` descriptors each (TX and RX
/// disabled meanwhile, as the register map asks).
fn repoint_both(regs: &Regs<'_>, ring: &DmaRegion, rx_ring: &DmaRegion) {
    let ctrl = regs.read(r::CTRL);
    regs.write(r::CTRL, 0);
    for (lo, hi, size, page) in [
        (r::TX_BASE_LO, r::TX_BASE_HI, r::TX_SIZE, ring),
        (r::RX_BASE_LO, r::RX_BASE_HI, r::RX_SIZE, rx_ring),
    ] {
        regs.write(lo, page.phys as u32);
        regs.write(hi, (page.phys >> 32) as u32);
        regs.write(size, RING);
    }
    regs.write(r::CTRL, ctrl);
}

/// Seeded register and descriptor garbage: `FUZZ_OPS` operations, each a
/// descriptor written into one of our ring pages, a ring base, a ring
/// size, a doorbell, any other register, a reset (with a write inside
/// it), bus mastering toggled, an MSI-X table entry aimed anywhere (the
/// LAPIC window, guest RAM, the device's own BAR and table, the IOAPIC, a
/// high dword), a doorbell rung with bus mastering off around it, or the
/// TX tail moved back behind HEAD. The MSI-X table is put back as it was
/// at the end, masked while it is rewritten so a message that waited in
/// the PBA goes out to a good address. Every address the device is given is
/// one of ours, outside RAM or in BAR0, and ring sizes stay within a
/// page, so whatever the device does it cannot write guest memory the
/// kernel lives in; everything else is fair game. The host must end the
/// run normally and name every error the device latched.
fn fuzz(c: &mut Ctx<'_, '_, '_, '_>, ring: &DmaRegion, rx_ring: &DmaRegion) -> String {
    let (plat, nic) = (c.plat, c.nic);
    let regs = nic.regs();
    let bdf = nic.pci.bdf;
    let cmd = plat.pci_read32(bdf, pci::REG_COMMAND) & 0xffff;
    let targets = [
        PAYLOAD.0,
        ring.phys,
        rx_ring.phys,
        layout::RAM_SIZE + PAGE,
        nic.pci.bar0,
        1 << 40,
    ];
    let bases = [
        ring.phys,
        rx_ring.phys,
        layout::RAM_SIZE,
        nic.pci.bar0,
        1 << 40,
    ];
    let sizes = [RING, 2, 16, 0, 3, RING - 1, r::MAX_RING * 2, u32::MAX];
    let others = [
        r::CTRL,
        r::INT_CAUSE,
        r::INT_ENABLE,
        r::COAL_TX_FRAMES,
        r::COAL_TX_USECS,
        r::COAL_RX_FRAMES,
        r::COAL_RX_USECS,
        r::ERR_CLEAR,
        r::TEST_COMPLETE,
        r::EEPROM,
        r::STATUS,
        r::TX_HEAD,
        0x0ffc,
        pci::MSIX_PBA_OFFSET,
    ];
    repoint_both(regs, ring, rx_ring);
    let table = |v: u16, field: u32| pci::MSIX_TABLE_OFFSET + u32::from(v) * 16 + field;
    let mut saved = [[0u32; 4]; pci::MSIX_VECTORS as usize];
    for (v, e) in (0..).zip(saved.iter_mut()) {
        for (f, d) in (0..).zip(e.iter_mut()) {
            *d = regs.read(table(v, f * 4));
        }
    }
    let msi_targets = [
        0xfee0_0000u64,
        0xfee0_1000,
        ring.phys,
        nic.pci.bar0,
        nic.pci.bar0 + u64::from(pci::MSIX_TABLE_OFFSET),
        0xfec0_0000,
        1 << 32 | 0xfee0_0000,
    ];
    let mut latched = 0u32;
    for _ in 0..FUZZ_OPS {
        let x = c.rand();
        let pick = |n: usize, shift: u32| (x >> shift) as usize % n;
        let tx = x & 64 == 0;
        match x % 10 {
            0 => {
                let page = if tx { ring } else { rx_ring };
                // Near the device's head, where its walk will find it.
                let head = regs.read(if tx { r::TX_HEAD } else { r::RX_HEAD });
                let slot = (head.wrapping_add(pick(4, 8) as u32) & (RING - 1)) as usize;
                let d = TxDesc {
                    addr: targets[pick(targets.len(), 20)],
                    len: (x >> 32) as u16 % 2048,
                    flags: (x >> 48) as u8 & TXD_EOP,
                    ..TxDesc::default()
                };
                // SAFETY: slot < RING and the page holds RING 16-byte
                // descriptors; the page is ours, 16-byte aligned.
                unsafe { write_volatile(page.ptr.cast::<TxDesc>().add(slot), d) };
            }
            1 => {
                let (lo, hi) = if tx {
                    (r::TX_BASE_LO, r::TX_BASE_HI)
                } else {
                    (r::RX_BASE_LO, r::RX_BASE_HI)
                };
                let b = bases[pick(bases.len(), 8)];
                regs.write(lo, b as u32);
                regs.write(hi, (b >> 32) as u32);
            }
            2 => regs.write(
                if tx { r::TX_SIZE } else { r::RX_SIZE },
                sizes[pick(sizes.len(), 8)],
            ),
            3 => {
                let (head, tail) = if tx {
                    (r::TX_HEAD, r::TX_TAIL)
                } else {
                    (r::RX_HEAD, r::RX_TAIL)
                };
                // Mostly a few descriptors past head (so the device walks
                // the garbage), sometimes anything.
                let v = if x & 3 != 0 {
                    regs.read(head).wrapping_add(pick(24, 8) as u32)
                } else {
                    (x >> 8) as u32
                };
                regs.write(tail, v);
            }
            // Any other register, any value, but never the reset bit
            // here: a reset zeroes the bases (see the next arm).
            4 => {
                let off = others[pick(others.len(), 8)];
                let v = (x >> 32) as u32;
                let on = if x & 3 != 0 {
                    r::CTRL_TX_EN | r::CTRL_RX_EN
                } else {
                    0
                };
                regs.write(
                    off,
                    if off == r::CTRL {
                        (v | on) & !r::CTRL_RESET
                    } else {
                        v
                    },
                );
            }
            5 => {
                regs.write(r::CTRL, r::CTRL_RESET);
                if x & 1 == 0 {
                    regs.write(r::TX_TAIL, (x >> 8) as u32);
                }
                wait_for(plat, || regs.read(r::STATUS) & r::STATUS_RESETTING == 0);
                repoint_both(regs, ring, rx_ring);
                regs.write(r::CTRL, r::CTRL_TX_EN | r::CTRL_RX_EN);
            }
            6 => {
                let bm = if tx {
                    cmd
                } else {
                    cmd & !u32::from(pci::CMD_BUS_MASTER)
                };
                plat.pci_write32(bdf, pci::REG_COMMAND, bm);
            }
            // An MSI-X entry aimed anywhere, or masked/unmasked.
            7 => {
                let v = pick(pci::MSIX_VECTORS as usize, 8) as u16;
                let a = msi_targets[pick(msi_targets.len(), 12)];
                match pick(3, 20) {
                    0 => {
                        regs.write(table(v, 0), a as u32);
                        regs.write(table(v, 4), (a >> 32) as u32);
                        // A reset clears INT_ENABLE: the error cause (the
                        // driver has no handler of its own for it) makes
                        // the next fault raise the misc vector.
                        regs.write(r::INT_ENABLE, r::INT_ERR);
                    }
                    1 => regs.write(table(v, 8), (x >> 32) as u32),
                    _ => regs.write(table(v, 12), (x >> 32) as u32 & 1),
                }
            }
            // A doorbell rung with bus mastering off around it.
            8 => {
                plat.pci_write32(bdf, pci::REG_COMMAND, cmd & !u32::from(pci::CMD_BUS_MASTER));
                let head = regs.read(r::TX_HEAD);
                regs.write(r::TX_TAIL, head.wrapping_add(1 + pick(4, 8) as u32));
                if x & 0x100 == 0 {
                    plat.pci_write32(bdf, pci::REG_COMMAND, cmd);
                }
            }
            // The TX tail moved back behind HEAD, after some fragments
            // without end-of-packet (a half-gathered packet).
            _ => {
                let head = regs.read(r::TX_HEAD);
                let frags = 1 + pick(3, 8) as u32;
                post(c, ring, head, (0..frags).map(|_| desc(PAYLOAD.0, 60, 0)));
                regs.write(
                    r::TX_TAIL,
                    head.wrapping_add(frags)
                        .wrapping_sub(1 + pick(frags as usize + 1, 12) as u32),
                );
            }
        }
        if regs.read(r::STATUS) & r::STATUS_ERROR != 0 {
            latched += 1;
            regs.write(r::ERR_CLEAR, 0);
            // A fault stopped its ring until reset (a write during reset
            // stops the ring for after the reset too); mostly reset, so
            // later operations reach the device's descriptor walk again.
            if x & 0x300 != 0x300 {
                regs.write(r::CTRL, r::CTRL_RESET);
                wait_for(plat, || regs.read(r::STATUS) & r::STATUS_RESETTING == 0);
                repoint_both(regs, ring, rx_ring);
                regs.write(r::CTRL, r::CTRL_TX_EN | r::CTRL_RX_EN);
            }
        }
    }
    plat.pci_write32(bdf, pci::REG_COMMAND, cmd);
    for (v, e) in (0..).zip(saved) {
        regs.write(table(v, 12), 1);
        for (f, d) in (0..).zip(e) {
            regs.write(table(v, f * 4), d);
        }
    }
    let t = plat.now_ns();
    wait_for(plat, || plat.now_ns() > t + IRQ_GRACE_NS);
    let seen = format!("hostile fuzz: {FUZZ_OPS} operations, {latched} error latches cleared");
    plat.marker_text(Marker::Phase, &[2, u64::from(latched)], &seen);
    seen
}

/// Commit abuse `a` and check the device latched its error; returns what
/// the device showed.
fn abuse(c: &mut Ctx<'_, '_, '_, '_>, a: Abuse, ring: DmaRegion, rx_ring: DmaRegion) -> String {
    let (name, want) = (a.name(), a.meta().error);
    let plat = c.plat;
    let nic = c.nic;
    let regs = nic.regs();
    // Re-point TX at our page, with TX disabled as the register map asks.
    let ctrl = regs.read(r::CTRL);
    regs.write(r::CTRL, ctrl & !r::CTRL_TX_EN);
    regs.write(r::TX_BASE_LO, ring.phys as u32);
    regs.write(r::TX_BASE_HI, (ring.phys >> 32) as u32);
    regs.write(r::TX_SIZE, RING);
    regs.write(r::CTRL, ctrl);
    let tail = regs.read(r::TX_TAIL);
    c.phase(1, &format!("hostile {name}"));
    let bdf = nic.pci.bdf;
    let cmd = plat.pci_read32(bdf, pci::REG_COMMAND) & 0xffff;
    let data = PAYLOAD.0;
    match a {
        Abuse::OutsideRam => post(
            c,
            &ring,
            tail,
            [desc(layout::RAM_SIZE + PAGE, 64, TXD_EOP)].into_iter(),
        ),
        // The device would read its own registers as frame data.
        Abuse::InBar => post(
            c,
            &ring,
            tail,
            [desc(nic.pci.bar0, 64, TXD_EOP)].into_iter(),
        ),
        Abuse::ZeroLength => post(c, &ring, tail, [desc(data, 0, TXD_EOP)].into_iter()),
        // 2000 bytes in one packet: beyond MAX_FRAME_LEN.
        Abuse::FrameTooBig => post(
            c,
            &ring,
            tail,
            [desc(data, 1000, 0), desc(data, 1000, TXD_EOP)].into_iter(),
        ),
        // A chain with no end: one more fragment than a packet may have.
        Abuse::NoEop => post(
            c,
            &ring,
            tail,
            (0..=MAX_DESC_PER_PACKET).map(|_| desc(data, 60, 0)),
        ),
        Abuse::BadRingSize => {
            regs.write(r::TX_SIZE, RING - 1);
            regs.write(r::TX_TAIL, tail);
        }
        Abuse::BadTail => regs.write(r::TX_TAIL, tail.wrapping_add(RING + 1)),
        Abuse::WriteDuringReset => {
            regs.write(r::CTRL, r::CTRL_RESET);
            regs.write(r::TX_BASE_LO, ring.phys as u32);
        }
        Abuse::BusMasterOff => {
            plat.pci_write32(bdf, pci::REG_COMMAND, cmd & !u32::from(pci::CMD_BUS_MASTER));
            post(c, &ring, tail, [desc(data, 64, TXD_EOP)].into_iter());
        }
        // RX abuses: the next RX buffer (in our RX page) is too small for
        // the frame, or lies in BAR0 (the device would write its own
        // registers); a valid 64-byte frame through loopback fills it.
        Abuse::RxBufferTooSmall | Abuse::RxIntoBar => {
            let (buf, len) = if a == Abuse::RxIntoBar {
                (nic.pci.bar0, 2048)
            } else {
                (data, 16)
            };
            repoint_rx(
                nic.regs(),
                &rx_ring,
                RxDesc {
                    addr: buf,
                    buf_len: len,
                    ..RxDesc::default()
                },
            );
            post(c, &ring, tail, [desc(data, 64, TXD_EOP)].into_iter());
        }
        // The descriptor ring itself beyond RAM: the fetch is refused.
        Abuse::RingOutsideRam => {
            regs.write(r::CTRL, ctrl & !r::CTRL_TX_EN);
            regs.write(r::TX_BASE_LO, 0);
            regs.write(r::TX_BASE_HI, 1); // 4 GiB, far beyond RAM_SIZE
            regs.write(r::CTRL, ctrl);
            regs.write(r::TX_TAIL, tail.wrapping_add(1));
        }
        Abuse::RingTooLarge => {
            regs.write(r::TX_SIZE, r::MAX_RING * 2);
            regs.write(r::TX_TAIL, tail.wrapping_add(1));
        }
        Abuse::RxBadTail => {
            let head = regs.read(r::RX_HEAD);
            regs.write(r::RX_TAIL, head.wrapping_add(r::MAX_RING * 4));
        }
    }
    let latched = wait_for(plat, || regs.read(r::STATUS) & r::STATUS_ERROR != 0);
    let (code, cause) = (regs.read(r::ERR_CODE), regs.read(r::INT_CAUSE));
    let addr = u64::from(regs.read(r::ERR_ADDR_LO)) | u64::from(regs.read(r::ERR_ADDR_HI)) << 32;
    let seen = format!("hostile {name}: STATUS error {latched}, ERR_CODE {code} at {addr:#x}, INT_CAUSE {cause:#x}");
    plat.marker_text(Marker::Phase, &[2, u64::from(code), addr], &seen);
    // Let the error interrupt (misc vector) land; then undo what would
    // stop the driver's own stop from working normally.
    let t = plat.now_ns();
    wait_for(plat, || plat.now_ns() > t + IRQ_GRACE_NS);
    if want == DeviceError::BusMasterOff {
        plat.pci_write32(bdf, pci::REG_COMMAND, cmd);
    }
    if want == DeviceError::WriteDuringReset {
        wait_for(plat, || regs.read(r::STATUS) & r::STATUS_RESETTING == 0);
    }
    c.check(
        latched,
        &format!("hostile: {name}: STATUS never showed an error"),
    );
    c.check(
        code == want as u32,
        &format!(
            "hostile: {name}: expected ERR_CODE {} ({want:?}), read {code}",
            want as u32
        ),
    );
    c.check(
        cause & r::INT_ERR != 0,
        &format!("hostile: {name}: INT_ERR not latched (INT_CAUSE {cause:#x})"),
    );
    seen
}
