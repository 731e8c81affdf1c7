//! DMA memory for rings and buffers, and the map/unmap ledger.
//!
//! [`DmaPool`] hands out page-aligned, physically contiguous regions of
//! a window (in the guest: `abi::layout::DMA_POOL_*`, identity mapped,
//! so phys == virt; in host tests: a slice of the model's guest memory,
//! so the pointer is a host address). [`DmaMapper`] is the driver's
//! view of the IOMMU: every map and unmap is reported to the host as a
//! marker (the device's DMA monitor only admits accesses inside mapped
//! ranges) and counted, so "live maps at the end" is a checkable number.

use core::sync::atomic::{AtomicU64, Ordering};

use crate::abi::Marker;
use crate::platform::Platform;

/// Page size of the pool.
pub const PAGE: u64 = 4096;
/// Most pages a pool manages (16 MiB of 4 KiB pages).
const MAX_PAGES: usize = 4096;

/// A region of DMA memory: its bus (guest physical) address and where
/// the driver reaches it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DmaRegion {
    /// Guest physical address, what the device is given.
    pub phys: u64,
    /// CPU pointer to the same bytes.
    pub ptr: *mut u8,
    /// Length in bytes (a multiple of [`PAGE`]).
    pub len: u64,
}

/// First-fit page allocator over one contiguous window.
pub struct DmaPool {
    phys_base: u64,
    virt_base: *mut u8,
    pages: usize,
    used: [u64; MAX_PAGES / 64],
}

// SAFETY: the pool only hands out addresses; callers synchronise use of
// the memory itself (the driver owns what it allocated).
unsafe impl Send for DmaPool {}

impl DmaPool {
    /// A pool over `len` bytes at guest physical `phys_base`, reachable
    /// by the CPU at `virt_base`.
    ///
    /// # Safety
    /// `virt_base..virt_base + len` must be valid, writable memory that
    /// nothing else uses for as long as the pool and its regions live.
    pub unsafe fn new(phys_base: u64, virt_base: *mut u8, len: u64) -> Self {
        let pages = ((len / PAGE) as usize).min(MAX_PAGES);
        Self {
            phys_base,
            virt_base,
            pages,
            used: [0; MAX_PAGES / 64],
        }
    }

    fn is_used(&self, p: usize) -> bool {
        self.used[p / 64] & (1 << (p % 64)) != 0
    }

    fn set(&mut self, p: usize, on: bool) {
        if on {
            self.used[p / 64] |= 1 << (p % 64);
        } else {
            self.used[p / 64] &= !(1 << (p % 64));
        }
    }

    /// Allocate at least `len` bytes, page aligned. Contents are
    /// whatever the last user left: callers initialise what they use.
    pub fn alloc(&mut self, len: u64) -> Option<DmaRegion> {
        let n = len.div_ceil(PAGE).max(1) as usize;
        let mut start = 0;
        while start + n <= self.pages {
            match (start..start + n).find(|&p| self.is_used(p)) {
                Some(busy) => start = busy + 1,
                None => {
                    (start..start + n).for_each(|p| self.set(p, true));
                    let off = start as u64 * PAGE;
                    return Some(DmaRegion {
                        phys: self.phys_base + off,
                        // SAFETY: off + n pages lies inside the window given to `new`.
                        ptr: unsafe { self.virt_base.add(off as usize) },
                        len: n as u64 * PAGE,
                    });
                }
            }
        }
        None
    }

    /// Return a region from [`DmaPool::alloc`].
    pub fn free(&mut self, r: DmaRegion) {
        let first = ((r.phys - self.phys_base) / PAGE) as usize;
        let n = (r.len / PAGE) as usize;
        (first..(first + n).min(self.pages)).for_each(|p| self.set(p, false));
    }

    /// Pages in use (for leak checks).
    pub fn pages_used(&self) -> usize {
        self.used.iter().map(|w| w.count_ones() as usize).sum()
    }
}

/// Direction of a mapping, as the DmaMap marker encodes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum DmaDir {
    /// The device reads (TX buffers).
    ToDevice = 0,
    /// The device writes (RX buffers).
    FromDevice = 1,
    /// Both (descriptor rings).
    Bidirectional = 2,
}

/// Why a map failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// Zero length, or a range outside guest RAM.
    BadRange,
    /// An injected failure (the map-failure scenario).
    Injected,
}

/// The driver's map/unmap ledger. Mapping is the identity here (no
/// IOMMU); what matters is that the host sees every map and unmap.
/// Transmit maps and reclaim unmaps may run on different CPUs, so the
/// counters are atomic.
pub struct DmaMapper {
    live: AtomicU64,
    maps: AtomicU64,
    fail_every: AtomicU64,
    /// A range mapped once for a whole open (benchmark mode's payload
    /// pool, like an AF_XDP umem): maps inside it cost nothing. Only
    /// open and stop change it. (base, size); size 0 = none.
    premapped: (AtomicU64, AtomicU64),
}

impl DmaMapper {
    /// A ledger with nothing mapped.
    pub const fn new() -> Self {
        Self {
            live: AtomicU64::new(0),
            maps: AtomicU64::new(0),
            fail_every: AtomicU64::new(0),
            premapped: (AtomicU64::new(0), AtomicU64::new(0)),
        }
    }

    /// Fail every n-th map (0 = never), to exercise the drop path.
    pub fn set_fail_every(&self, n: u64) {
        self.fail_every.store(n, Ordering::Relaxed);
    }

    /// Map `len` bytes at `addr` for the device; returns the bus address.
    pub fn map(
        &self,
        plat: &dyn Platform,
        addr: u64,
        len: u64,
        dir: DmaDir,
    ) -> Result<u64, MapError> {
        // Inside the premapped range is inside RAM: no second range check.
        if self.premapped().contains(addr, len) {
            return Ok(addr);
        }
        if len == 0
            || addr
                .checked_add(len)
                .is_none_or(|end| end > crate::abi::layout::RAM_SIZE)
        {
            return Err(MapError::BadRange);
        }
        let n = self.maps.fetch_add(1, Ordering::Relaxed) + 1;
        let every = self.fail_every.load(Ordering::Relaxed);
        if every != 0 && n.is_multiple_of(every) {
            return Err(MapError::Injected);
        }
        self.live.fetch_add(1, Ordering::Relaxed);
        plat.marker(Marker::DmaMap, &[addr, len, dir as u64]);
        Ok(addr)
    }

    /// Undo a [`DmaMapper::map`].
    pub fn unmap(&self, plat: &dyn Platform, addr: u64, len: u64) {
        if self.premapped().contains(addr, len) {
            return;
        }
        let _ = self
            .live
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_sub(1))
            });
        plat.marker(Marker::DmaUnmap, &[addr, len]);
    }

    /// The premapped range, read once for all the maps of a packet or the
    /// unmaps of a poll (the per-piece check is then plain arithmetic).
    pub fn premapped(&self) -> Premapped {
        Premapped {
            base: self.premapped.0.load(Ordering::Relaxed),
            size: self.premapped.1.load(Ordering::Relaxed),
        }
    }

    /// Map `[base, base + size)` once (reported) so later maps inside it
    /// are free; `None` unmaps it again. Only while nothing transmits.
    pub fn set_premapped(&self, plat: &dyn Platform, range: Option<(u64, u64)>) {
        let (base, size) = (
            self.premapped.0.load(Ordering::Relaxed),
            self.premapped.1.swap(0, Ordering::Relaxed),
        );
        if size != 0 {
            self.unmap(plat, base, size);
        }
        if let Some((base, size)) = range {
            if self.map(plat, base, size, DmaDir::ToDevice).is_ok() {
                self.premapped.0.store(base, Ordering::Relaxed);
                self.premapped.1.store(size, Ordering::Relaxed);
            }
        }
    }

    /// Mappings not yet unmapped.
    pub fn live(&self) -> u64 {
        self.live.load(Ordering::Relaxed)
    }
}

/// The range [`DmaMapper::set_premapped`] mapped for the whole open (size 0:
/// none), as read at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Premapped {
    base: u64,
    size: u64,
}

impl Premapped {
    /// Whether the `len` bytes at `addr` (at least one) lie inside: a map
    /// there is free, needs no unmap, and gives `addr` back as the bus
    /// address.
    #[inline]
    pub fn contains(&self, addr: u64, len: u64) -> bool {
        let off = addr.wrapping_sub(self.base);
        len != 0 && off < self.size && len <= self.size - off
    }
}

impl Default for DmaMapper {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn premapped_contains_only_whole_nonempty_pieces_inside() {
        let p = Premapped {
            base: 0x1000,
            size: 0x100,
        };
        assert!(p.contains(0x1000, 1) && p.contains(0x1000, 0x100) && p.contains(0x10ff, 1));
        assert!(
            !p.contains(0x1000, 0),
            "an empty piece is a bad range, not free"
        );
        assert!(!p.contains(0xfff, 2) && !p.contains(0x10ff, 2) && !p.contains(0x1100, 1));
        assert!(!p.contains(u64::MAX, u64::MAX), "no overflow");
        assert!(
            !Premapped { base: 0, size: 0 }.contains(0, 1),
            "none premapped"
        );
    }

    #[test]
    fn pool_allocates_first_fit_and_reuses_freed_pages() {
        let mut mem = vec![0u8; 8 * PAGE as usize];
        // SAFETY: `mem` outlives the pool and nothing else touches it.
        let mut pool = unsafe { DmaPool::new(0x100_0000, mem.as_mut_ptr(), mem.len() as u64) };
        let a = pool.alloc(1).unwrap();
        let b = pool.alloc(2 * PAGE).unwrap();
        assert_eq!((a.phys, a.len), (0x100_0000, PAGE));
        assert_eq!((b.phys, b.len), (0x100_0000 + PAGE, 2 * PAGE));
        pool.free(a);
        assert_eq!(pool.alloc(PAGE).unwrap().phys, 0x100_0000);
        assert!(pool.alloc(6 * PAGE).is_none(), "only 5 pages are left");
        assert_eq!(pool.pages_used(), 3);
    }

    /// A full pool hands out nothing, not the page past its window.
    #[test]
    fn pool_never_allocates_past_its_window() {
        let mut mem = vec![0u8; 4 * PAGE as usize];
        // SAFETY: `mem` outlives the pool and nothing else touches it.
        let mut pool = unsafe { DmaPool::new(0x100_0000, mem.as_mut_ptr(), 3 * PAGE) };
        for p in 0..3 {
            assert_eq!(pool.alloc(PAGE).unwrap().phys, 0x100_0000 + p * PAGE);
        }
        assert_eq!(pool.alloc(PAGE), None, "three pages, all in use");
        assert_eq!(pool.pages_used(), 3);
    }
}
