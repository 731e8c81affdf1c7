//! Receive: `igc_clean_rx_irq` and the RX buffers (one page_pool-like
//! area, a fixed buffer per slot).

use core::sync::atomic::{fence, Ordering};

use super::stats::inc;
use super::{ring, Adapter, Rings, RX_BUF_LEN, RX_TAIL_BATCH};
use crate::abi::{regs as r, Marker, RxDesc, RXD_STAT_DONE, RXD_STAT_ERR};

fn rx_buf_addr(rg: &Rings, idx: u32) -> u64 {
    rg.rx_bufs.phys + u64::from(idx & (rg.rx.size - 1)) * u64::from(RX_BUF_LEN)
}

pub(super) fn rx_desc(rg: &Rings, idx: u32) -> RxDesc {
    RxDesc {
        addr: rx_buf_addr(rg, idx),
        buf_len: RX_BUF_LEN as u16,
        ..RxDesc::default()
    }
}

impl<'a, 'e> Adapter<'a, 'e> {
    /// `igc_clean_rx_irq`: deliver up to `budget` frames, refill. NAPI
    /// side only.
    pub fn clean_rx_irq(&self, budget: u32) -> u32 {
        let Some(rg) = self.rings() else { return 0 };
        let (mut prod, mut cons) = (
            rg.rx_prod.load(Ordering::Relaxed),
            rg.rx_cons.load(Ordering::Relaxed),
        );
        let mut done = 0;
        while done < budget {
            let (status, len) = ring::rx_status(&rg.rx, cons);
            if status & RXD_STAT_DONE == 0 {
                break;
            }
            fence(Ordering::Acquire);
            let addr = rx_buf_addr(rg, cons);
            if status & RXD_STAT_ERR == 0 {
                // Deliver: the host compares these bytes with the frame
                // it transmitted as number `rx_seq`, during this exit.
                let seq = self.rx_seq.fetch_add(1, Ordering::Relaxed);
                if !self.cfg.bench {
                    self.plat
                        .marker(Marker::RxDeliver, &[addr, u64::from(len), seq]);
                }
                inc(&self.st.rx_packets, 1);
            } else {
                inc(&self.st.rx_errors, 1);
            }
            // The consumed slot's neighbour gets its buffer back.
            rg.rx.write(prod, rx_desc(rg, prod));
            prod = prod.wrapping_add(1);
            cons = cons.wrapping_add(1);
            done += 1;
        }
        rg.rx_prod.store(prod, Ordering::Relaxed);
        rg.rx_cons.store(cons, Ordering::Relaxed);
        // Give buffers back in groups (igc's IGC_RX_BUFFER_WRITE): one
        // register exit per RX_TAIL_BATCH frames, while the device still
        // holds most of the ring.
        if prod.wrapping_sub(rg.rx_tail.load(Ordering::Relaxed)) >= RX_TAIL_BATCH {
            fence(Ordering::Release);
            rg.rx_tail.store(prod, Ordering::Relaxed);
            self.regs.write(r::RX_TAIL, prod);
        }
        done
    }
}
