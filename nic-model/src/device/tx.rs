//! Transmit: descriptor fetch in bursts, gather, transmit, and completion
//! write-back.

use super::irq::moderate;
use super::regs::DESC_SIZE;
use super::{Nic, RECENT_FRAMES};
use crate::abi::{self, regs, DeviceError, DeviceMutant, TxDesc};
use crate::backend::Backend;
use crate::config::BackendConfig;
use crate::events::{DmaDir, EventKind};
use crate::monitor::DmaCause;
use core::mem::offset_of;
use std::sync::atomic::Ordering;
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend};

/// Offset of `TxDesc::status`, the word a held completion writes.
pub(super) const TXD_STATUS_OFFSET: u64 = offset_of!(TxDesc, status) as u64;

/// Where a field of a [`TxDesc`] at byte `offset` sits in the
/// descriptor's second little-endian word (bytes 8..16), as the burst
/// cache keeps it.
const fn word1_shift(offset: usize) -> u32 {
    assert!(offset >= 8 && offset < 16);
    ((offset - 8) * 8) as u32
}
/// Shift of `TxDesc::len`, `flags` and `status` in the second word.
const LEN_SHIFT: u32 = word1_shift(offset_of!(TxDesc, len));
const FLAGS_SHIFT: u32 = word1_shift(offset_of!(TxDesc, flags));
const STATUS_SHIFT: u32 = word1_shift(offset_of!(TxDesc, status));
/// The address is the first word.
const _: () = assert!(offset_of!(TxDesc, addr) == 0);

/// Most TX descriptors fetched in one read burst. Like the descriptor
/// cache of e1000-class NICs, a burst takes every posted descriptor up to
/// this many (and up to the ring's end) in one DMA, so a small packet
/// costs one descriptor access per burst instead of one per descriptor.
pub const TX_PREFETCH: u32 = 64;

/// Packets of the current fetch burst whose completion is due: EOP
/// indexes `first..=last` (free-running) hold `count` of them.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct TxWriteBack {
    pub(super) first: u32,
    pub(super) last: u32,
    pub(super) count: u32,
}

impl TxWriteBack {
    fn add(&mut self, eop: u32) {
        if self.count == 0 {
            self.first = eop;
        }
        self.last = eop;
        self.count += 1;
    }
}

/// Why the TX walk ended early.
enum TxStop {
    /// A fault to latch (code, address).
    Fault(DeviceError, u64),
    /// The gate refused an access (its fault is latched already).
    Blocked,
}

/// The hash logged with every `TxFrame`: 8 bytes per step, so hashing a
/// 1500-byte frame costs far less than copying it did. The host checker
/// recomputes it over received bytes.
pub fn frame_hash(data: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut h = data.len() as u64 ^ K;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes(c.try_into().unwrap_or_default());
        h = (h ^ w).wrapping_mul(K).rotate_left(29);
    }
    let mut last = [0u8; 8];
    last[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
    h = (h ^ u64::from_le_bytes(last)).wrapping_mul(K);
    h ^ (h >> 32)
}

impl Nic {
    fn tx_can_run(&self) -> bool {
        let r = &self.regs;
        r.ctrl & regs::CTRL_TX_EN != 0 && !r.resetting && !r.tx.stopped && !self.stalled
    }

    /// Walk posted TX descriptors; at most `MAX_WORK_PER_DOORBELL`.
    ///
    /// Descriptors are fetched in bursts ([`TX_PREFETCH`]) and completions
    /// written back once per burst ([`Nic::write_back_tx`]), so a small
    /// packet costs the gate one data read plus a share of two burst
    /// accesses, as on e1000-class hardware.
    pub(super) fn process_tx(&mut self) {
        if !self.tx_can_run() {
            return;
        }
        let walked = self.walk_tx();
        // Completions of packets sent before a fault still go out.
        self.write_back_tx();
        match walked {
            Ok(()) if self.cfg.mutant == DeviceMutant::PhantomCompletion => {
                self.phantom_completion();
            }
            Ok(()) | Err(TxStop::Blocked) => {}
            Err(TxStop::Fault(code, addr)) => self.fault(code, addr, Some(true)),
        }
    }

    /// The descriptor walk of [`Nic::process_tx`]; completions it makes
    /// due are left in `tx_wb` for the caller to write back.
    fn walk_tx(&mut self) -> Result<(), TxStop> {
        let ring = self.regs.tx;
        let Some(mask) = ring.mask() else {
            return Err(TxStop::Fault(
                DeviceError::BadRingSize,
                u64::from(ring.size),
            ));
        };
        // The tail must lie between HEAD and the oldest slot the device
        // still owns (the packet being gathered, or held completions) plus
        // the ring. Behind HEAD (moved back into a half-gathered packet),
        // HEAD would never meet it again and the walk would run on
        // through unposted slots.
        let owned_from = if self.held.is_empty() {
            ring.pkt_start
        } else {
            self.held_from
        };
        let posted = ring.tail.wrapping_sub(owned_from);
        if posted > ring.size || posted < ring.head.wrapping_sub(owned_from) {
            return Err(TxStop::Fault(DeviceError::BadTail, u64::from(ring.tail)));
        }
        let mut work = 0;
        while self.regs.tx.head != self.regs.tx.tail && work < abi::MAX_WORK_PER_DOORBELL {
            if self.stall_now() || self.held.len() >= regs::MAX_RING as usize {
                break;
            }
            let idx = self.regs.tx.head;
            let cached = self.regs.tx.fetched.wrapping_sub(self.tx_burst_start);
            if idx.wrapping_sub(self.tx_burst_start) >= cached {
                self.fetch_tx_burst(mask, abi::MAX_WORK_PER_DOORBELL - work)?;
            }
            work += 1;
            let frags = idx.wrapping_sub(self.regs.tx.pkt_start);
            let daddr = ring.desc_addr(idx, mask);
            if frags >= abi::MAX_DESC_PER_PACKET {
                return Err(TxStop::Fault(DeviceError::NoEndOfPacket, daddr));
            }
            let at = idx.wrapping_sub(self.tx_burst_start) as usize;
            let [addr, word] = self.tx_cache[at % TX_PREFETCH as usize];
            let (len, flags) = ((word >> LEN_SHIFT) as u16, (word >> FLAGS_SHIFT) as u8);
            self.regs.tx.head = idx.wrapping_add(1);
            if len == 0 {
                return Err(TxStop::Fault(DeviceError::ZeroLength, daddr));
            }
            let have = self.frame.len();
            if have + usize::from(len) > abi::MAX_FRAME_LEN as usize {
                return Err(TxStop::Fault(DeviceError::FrameTooBig, addr));
            }
            self.frame.resize(have + usize::from(len), 0);
            let mut frame = std::mem::take(&mut self.frame);
            let r = self.dma_read(addr, &mut frame[have..], DmaCause::TxData);
            self.frame = frame;
            r.map_err(|_| TxStop::Blocked)?;
            if flags & abi::TXD_EOP != 0 {
                let pkt_start = self.regs.tx.pkt_start;
                self.regs.tx.pkt_start = self.regs.tx.head;
                let seq = self.transmit();
                if self.cfg.complete_on_request {
                    if self.held.is_empty() {
                        self.held_from = pkt_start;
                    }
                    self.held.push_back(idx & mask);
                } else {
                    self.tx_wb.add(idx);
                }
                // The frame arrives after its completion is written, as
                // on a wire: TX interrupt first, then RX.
                if matches!(self.backend, Backend::Loopback) {
                    self.write_back_tx();
                    let frame = std::mem::take(&mut self.frame);
                    self.receive(&frame, seq);
                    self.frame = frame;
                }
                self.frame.clear();
            }
        }
        Ok(())
    }

    /// Fetch the next burst of posted descriptors, from HEAD, in one DMA:
    /// at most [`TX_PREFETCH`], `budget`, and the slots left before the
    /// ring wraps (a burst is one contiguous read).
    fn fetch_tx_burst(&mut self, mask: u32, budget: u32) -> Result<(), TxStop> {
        // The due completions are written back from the cache: first.
        self.write_back_tx();
        let r = self.regs.tx;
        let start = r.head;
        // At most the ring: `walk_tx` checked the tail against the packet
        // start, and HEAD is at or past it.
        let mut posted = r.tail.wrapping_sub(start);
        if self.cfg.mutant == DeviceMutant::PrefetchPastTail {
            posted = TX_PREFETCH;
        }
        let n = posted
            .min(TX_PREFETCH)
            .min(r.size - (start & mask))
            .min(budget)
            .max(1);
        let bytes = n as usize * DESC_SIZE as usize;
        let mut raw = [0u8; TX_PREFETCH as usize * DESC_SIZE as usize];
        self.dma_read(
            r.desc_addr(start, mask),
            &mut raw[..bytes],
            DmaCause::TxDesc(start & mask),
        )
        .map_err(|_| TxStop::Blocked)?;
        for (slot, d) in self
            .tx_cache
            .iter_mut()
            .zip(raw[..bytes].chunks_exact(DESC_SIZE as usize))
        {
            let w = |i: usize| u64::from_le_bytes(d[i..i + 8].try_into().unwrap_or_default());
            *slot = [w(0), w(8)];
        }
        self.tx_burst_start = start;
        self.regs.tx.fetched = start.wrapping_add(n);
        Ok(())
    }

    /// Keep the first pcap write failure (later frames fail the same way).
    #[cold]
    fn record_output_error(&mut self, path: String, e: pcap_file::PcapError) {
        if self.output_error.is_none() {
            self.monitor.emit(EventKind::Note {
                text: format!("pcap {path}: write failed: {e}"),
            });
            self.output_error = Some(format!(
                "cannot write {path}: {e} (the capture is incomplete)"
            ));
        }
    }

    /// Log the gathered frame, keep a copy by seq and hand it to a
    /// non-loopback backend. Returns its sequence number.
    pub(super) fn transmit(&mut self) -> u64 {
        let (len, hash) = (self.frame.len() as u32, frame_hash(&self.frame));
        let seq = self.tx_seq;
        self.tx_seq += 1;
        self.regs.stat_tx = self.regs.stat_tx.wrapping_add(1);
        self.monitor.emit(EventKind::TxFrame { seq, len, hash });
        let mut keep = if self.recent.len() >= RECENT_FRAMES {
            self.recent.pop_front().map(|(_, v)| v).unwrap_or_default()
        } else {
            Vec::with_capacity(abi::MAX_FRAME_LEN as usize)
        };
        keep.clear();
        keep.extend_from_slice(&self.frame);
        self.recent.push_back((seq, keep));
        let sent = self.backend.send(&self.frame, self.now_ns);
        if let (Err(e), BackendConfig::Pcap(path)) = (sent, &self.cfg.backend) {
            self.record_output_error(path.clone(), e);
        }
        if let Some(tap) = &mut self.capture {
            if let (Err(e), Some(path)) = (tap.send(&self.frame, self.now_ns), &self.cfg.capture) {
                self.record_output_error(path.clone(), e);
            }
        }
        seq
    }

    /// Write back the due completions of the current burst as one DMA:
    /// the descriptors from the first due EOP to the last, as fetched,
    /// with DONE in each EOP's status (e1000-class NICs write back whole
    /// descriptors too). Descriptor by descriptor in ring order, each as
    /// two aligned 8-byte stores with the status in the second, so a
    /// driver reclaiming on another vCPU never sees a DONE before the rest
    /// of its descriptor, and no descriptor is written again once its DONE
    /// is visible.
    pub(super) fn write_back_tx(&mut self) {
        let wb = std::mem::take(&mut self.tx_wb);
        if wb.count == 0 {
            return;
        }
        let ring = self.regs.tx;
        let Some(mask) = ring.mask() else { return };
        let n = wb.last.wrapping_sub(wb.first).wrapping_add(1);
        let addr = ring.desc_addr(wb.first, mask);
        let len = u64::from(n) * DESC_SIZE;
        if !self.gate(
            DmaDir::Write,
            addr,
            len,
            DmaCause::TxStatus(wb.first & mask),
        ) {
            return;
        }
        // Aligned 8-byte stores where the ring allows; a misaligned ring
        // (or one across two RAM regions) gets plain copies, same order.
        let dst = self.mem.get_slice(GuestAddress(addr), len as usize).ok();
        const STATUS: u64 = 0xffff << STATUS_SHIFT;
        let first = wb.first.wrapping_sub(self.tx_burst_start);
        for k in 0..n {
            let [a, mut w] = self.tx_cache[(first.wrapping_add(k) % TX_PREFETCH) as usize];
            if (w >> FLAGS_SHIFT) as u8 & abi::TXD_EOP != 0 {
                w = w & !STATUS | u64::from(abi::TXD_STAT_DONE) << STATUS_SHIFT;
            }
            let off = k as usize * DESC_SIZE as usize;
            let stored = dst.as_ref().is_some_and(|d| {
                d.store(a, off, Ordering::Relaxed).is_ok()
                    && d.store(w, off + 8, Ordering::Release).is_ok()
            });
            if !stored {
                let at = addr + off as u64;
                let _ = self.mem.write_slice(&a.to_le_bytes(), GuestAddress(at));
                let _ = self.mem.write_slice(&w.to_le_bytes(), GuestAddress(at + 8));
            }
        }
        for _ in 0..wb.count {
            self.count_tx_completion();
        }
    }

    /// A completion went out: count it and moderate the TX interrupt.
    fn count_tx_completion(&mut self) {
        self.completed += 1;
        let r = &mut self.regs;
        let (frames, usecs) = (r.coal_tx_frames, r.coal_tx_usecs);
        if moderate(
            &mut r.tx_uncoalesced,
            frames,
            usecs,
            &mut self.timers.tx_coal,
            self.now_ns,
        ) {
            self.fire_tx_irq();
        } else if self.tx_unsignalled_since.is_none() {
            self.tx_unsignalled_since = Some(self.now_ns);
        }
    }

    /// One held completion (TEST_COMPLETE): the status word alone.
    fn write_tx_completion(&mut self, slot: u32) {
        // `slot` was masked when the completion was held: no mask now
        // (the ring may have been resized since).
        let addr = self.regs.tx.field_addr(slot, u32::MAX, TXD_STATUS_OFFSET);
        if self
            .dma_write(
                addr,
                &abi::TXD_STAT_DONE.to_le_bytes(),
                DmaCause::TxStatus(slot),
            )
            .is_err()
        {
            return;
        }
        self.count_tx_completion();
    }

    /// TEST_COMPLETE: write every held completion, but only while TX is
    /// enabled (a disabled ring makes no DMA; they stay held until TX is
    /// back) and no reset is running.
    pub(super) fn complete_held(&mut self) {
        if self.regs.ctrl & regs::CTRL_TX_EN == 0 || self.regs.resetting {
            return;
        }
        while let Some(slot) = self.held.pop_front() {
            self.write_tx_completion(slot);
        }
    }
}
