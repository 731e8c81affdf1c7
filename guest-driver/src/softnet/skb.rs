//! Socket buffers from a fixed pool.
//!
//! An skb is a small header record ([`SkbId`] names it) pointing at a
//! data block: a linear head of at most [`HEAD_CAP`] bytes that the
//! guest may write (Ethernet and upper headers) and the shared info:
//! page fragments as (guest-physical address, length) pairs into the
//! host-filled payload pool, a `gso_size`, and `dataref`, the number of
//! skbs sharing the block. A clone shares the block (`dataref` + 1) and
//! both skbs become `cloned`; writing the head of a cloned skb needs
//! [`SkbPool::cow_head`] first, which gives it a private copy.
//!
//! Nothing is allocated per packet: slots and data blocks come from
//! tables sized once. The pool is not thread-safe; its owner serialises
//! access (e.g. a spinlock shared by xmit and reclaim; the pool is
//! `Send`, so such a lock needs no `unsafe`). Ids carry a
//! generation, so a stale or double free is detected, refused, and still
//! reported as a second `SkbFree` marker for the host's ledger.

use alloc::boxed::Box;
use alloc::vec::Vec;

use super::SoftnetEnv;
use crate::abi::{Marker, MAX_SKB_FRAGS};

/// Largest linear head (bytes the guest itself may write).
pub const HEAD_CAP: usize = 64;
/// Most page fragments per skb.
pub const MAX_FRAGS: usize = MAX_SKB_FRAGS as usize;

/// A page fragment: guest-physical address and length.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Frag {
    /// Guest-physical address.
    pub addr: u64,
    /// Length in bytes.
    pub len: u32,
}

/// Names a live skb: slot index in the low 16 bits, generation above.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SkbId(pub u32);

impl SkbId {
    fn new(index: u16, gen: u16) -> Self {
        Self(u32::from(index) | u32::from(gen) << 16)
    }
    fn index(self) -> usize {
        (self.0 & 0xffff) as usize
    }
    fn gen(self) -> u16 {
        (self.0 >> 16) as u16
    }
}

/// Errors of the skb pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SkbError {
    /// No free slot or data block (`-ENOMEM`).
    Exhausted,
    /// The head exceeds [`HEAD_CAP`].
    HeadTooBig(usize),
    /// More than [`MAX_FRAGS`] fragments.
    TooManyFrags(usize),
    /// The id is not a live skb: a double free or a stale id.
    NotLive(SkbId),
    /// Writing the head of a clone that shares it: call `cow_head` first.
    SharedHead(SkbId),
}

impl core::fmt::Display for SkbError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Exhausted => write!(f, "skb: pool exhausted"),
            Self::HeadTooBig(n) => write!(f, "skb: head of {n} bytes exceeds {HEAD_CAP}"),
            Self::TooManyFrags(n) => write!(f, "skb: {n} fragments exceed {MAX_FRAGS}"),
            Self::NotLive(id) => {
                write!(f, "skb: {:#x} is not live (double free or stale id)", id.0)
            }
            Self::SharedHead(id) => write!(f, "skb: {:#x} shares its head with a clone", id.0),
        }
    }
}

/// Shared info plus linear head: what clones share.
#[derive(Clone, Copy)]
struct Data {
    head: [u8; HEAD_CAP],
    head_len: u16,
    nr_frags: u8,
    gso_size: u16,
    /// Skbs referencing this block; 0 = free.
    dataref: u16,
    frags: [Frag; MAX_FRAGS],
}

const EMPTY_DATA: Data = Data {
    head: [0; HEAD_CAP],
    head_len: 0,
    nr_frags: 0,
    gso_size: 0,
    dataref: 0,
    frags: [Frag { addr: 0, len: 0 }; MAX_FRAGS],
};

#[derive(Clone, Copy, Default)]
struct Slot {
    gen: u16,
    live: bool,
    cloned: bool,
    data: u16,
    mark: u64,
}

/// A read-only view of one skb.
#[derive(Clone, Copy)]
pub struct SkbRef<'a> {
    id: SkbId,
    slot: &'a Slot,
    data: &'a Data,
}

impl SkbRef<'_> {
    /// The skb's id.
    pub fn id(&self) -> SkbId {
        self.id
    }
    /// Guest-physical address of the linear head (the pool is identity
    /// mapped in the guest; on the host it is just a stable address).
    pub fn head_addr(&self) -> u64 {
        self.data.head.as_ptr() as u64
    }
    /// The linear head bytes.
    pub fn head(&self) -> &[u8] {
        &self.data.head[..usize::from(self.data.head_len)]
    }
    /// Length of the linear head.
    pub fn head_len(&self) -> u32 {
        u32::from(self.data.head_len)
    }
    /// The page fragments (`skb_shinfo(skb)->frags`).
    pub fn frags(&self) -> &[Frag] {
        &self.data.frags[..usize::from(self.data.nr_frags)]
    }
    /// Total length: head plus fragments (`skb->len`).
    pub fn len(&self) -> u32 {
        self.head_len() + self.frags().iter().map(|f| f.len).sum::<u32>()
    }
    /// Whether the skb has no bytes at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Descriptors needed: head (if any) plus one per fragment.
    pub fn nr_descs(&self) -> u32 {
        u32::from(self.data.head_len != 0) + u32::from(self.data.nr_frags)
    }
    /// `skb_shinfo(skb)->gso_size`.
    pub fn gso_size(&self) -> u16 {
        self.data.gso_size
    }
    /// `skb_cloned`: this skb was cloned and the data is still shared.
    pub fn is_cloned(&self) -> bool {
        self.slot.cloned && self.data.dataref != 1
    }
    /// Number of skbs sharing the data block.
    pub fn dataref(&self) -> u16 {
        self.data.dataref
    }
    /// The caller's tag (e.g. the TX sequence number).
    pub fn mark(&self) -> u64 {
        self.slot.mark
    }
}

/// The skb pool and ledger.
pub struct SkbPool<'e> {
    slots: Box<[Slot]>,
    data: Box<[Data]>,
    free_slots: Vec<u16>,
    free_data: Vec<u16>,
    live: u32,
    allocs: u64,
    frees: u64,
    bad_frees: u64,
    markers: bool,
    env: &'e (dyn SoftnetEnv + Sync),
}

impl<'e> SkbPool<'e> {
    /// A pool of `capacity` skbs and as many data blocks (≤ 65535).
    /// The environment must be `Sync` so the pool is `Send` and can sit
    /// in a lock shared by the xmit and reclaim CPUs.
    pub fn new(capacity: u16, env: &'e (dyn SoftnetEnv + Sync)) -> Self {
        let n = usize::from(capacity);
        Self {
            slots: alloc::vec![Slot::default(); n].into_boxed_slice(),
            data: alloc::vec![EMPTY_DATA; n].into_boxed_slice(),
            // Popped from the end: hand out low indexes first.
            free_slots: (0..capacity).rev().collect(),
            free_data: (0..capacity).rev().collect(),
            live: 0,
            allocs: 0,
            frees: 0,
            bad_frees: 0,
            markers: true,
            env,
        }
    }

    /// Turn the per-skb markers (alloc, clone, free) on or off. Each is a
    /// VM exit in the guest; benchmarks turn them off and rely on the
    /// ledger's counters ([`Self::live`], [`Self::bad_frees`]).
    pub fn set_markers(&mut self, on: bool) {
        self.markers = on;
    }

    fn report(&self, marker: Marker, args: &[u64]) {
        if self.markers {
            self.env.marker(marker, args);
        }
    }

    fn take_slot(&mut self, data: u16) -> Option<SkbId> {
        let i = self.free_slots.pop()?;
        let s = &mut self.slots[usize::from(i)];
        s.gen = s.gen.wrapping_add(1);
        s.live = true;
        s.cloned = false;
        s.data = data;
        s.mark = 0;
        self.live += 1;
        self.allocs += 1;
        Some(SkbId::new(i, s.gen))
    }

    /// `alloc_skb` + put: an skb with a copied linear head and fragments.
    pub fn alloc(&mut self, head: &[u8], frags: &[Frag]) -> Result<SkbId, SkbError> {
        if head.len() > HEAD_CAP {
            return Err(SkbError::HeadTooBig(head.len()));
        }
        if frags.len() > MAX_FRAGS {
            return Err(SkbError::TooManyFrags(frags.len()));
        }
        if self.free_slots.is_empty() {
            return Err(SkbError::Exhausted);
        }
        let d = self.free_data.pop().ok_or(SkbError::Exhausted)?;
        let block = &mut self.data[usize::from(d)];
        block.head[..head.len()].copy_from_slice(head);
        block.head_len = head.len() as u16;
        block.frags[..frags.len()].copy_from_slice(frags);
        block.nr_frags = frags.len() as u8;
        block.gso_size = 0;
        block.dataref = 1;
        let id = self.take_slot(d).ok_or(SkbError::Exhausted)?;
        // The length only for the marker (xmit sums it itself).
        if self.markers {
            let len = self.get(id).map(|s| s.len()).unwrap_or(0);
            self.report(Marker::SkbAlloc, &[u64::from(id.0), u64::from(len)]);
        }
        Ok(id)
    }

    fn slot(&self, id: SkbId) -> Result<&Slot, SkbError> {
        match self.slots.get(id.index()) {
            Some(s) if s.live && s.gen == id.gen() => Ok(s),
            _ => Err(SkbError::NotLive(id)),
        }
    }

    /// A view of a live skb.
    pub fn get(&self, id: SkbId) -> Result<SkbRef<'_>, SkbError> {
        let slot = self.slot(id)?;
        Ok(SkbRef {
            id,
            slot,
            data: &self.data[usize::from(slot.data)],
        })
    }

    /// Whether `id` names a live skb.
    pub fn is_live(&self, id: SkbId) -> bool {
        self.slot(id).is_ok()
    }

    /// `skb_clone`: a new skb sharing head and fragments; both become
    /// cloned.
    pub fn clone_skb(&mut self, id: SkbId) -> Result<SkbId, SkbError> {
        let d = self.slot(id)?.data;
        let new = self.take_slot(d).ok_or(SkbError::Exhausted)?;
        self.slots[id.index()].cloned = true;
        self.slots[new.index()].cloned = true;
        self.slots[new.index()].mark = self.slots[id.index()].mark;
        self.data[usize::from(d)].dataref += 1;
        self.report(Marker::SkbClone, &[u64::from(new.0), u64::from(id.0)]);
        Ok(new)
    }

    /// `kfree_skb`: drop this skb and, with the last reference, its data.
    pub fn free(&mut self, id: SkbId) -> Result<(), SkbError> {
        // Reported before the check: a double free shows on the host as
        // a second SkbFree for the same id.
        self.report(Marker::SkbFree, &[u64::from(id.0)]);
        let d = match self.slot(id) {
            Ok(s) => s.data,
            Err(e) => {
                self.bad_frees += 1;
                return Err(e);
            }
        };
        self.slots[id.index()].live = false;
        self.free_slots.push(id.index() as u16);
        let block = &mut self.data[usize::from(d)];
        block.dataref -= 1;
        if block.dataref == 0 {
            self.free_data.push(d);
        }
        self.live -= 1;
        self.frees += 1;
        Ok(())
    }

    /// The head for writing, refused while it is shared with a clone.
    pub fn head_mut(&mut self, id: SkbId) -> Result<&mut [u8], SkbError> {
        if self.get(id)?.is_cloned() {
            return Err(SkbError::SharedHead(id));
        }
        self.head_mut_unchecked(id)
    }

    /// The head for writing even if shared. Only the `writes-cloned-head`
    /// mutant uses this: it corrupts the clone's view of the packet.
    pub fn head_mut_unchecked(&mut self, id: SkbId) -> Result<&mut [u8], SkbError> {
        let d = usize::from(self.slot(id)?.data);
        let len = usize::from(self.data[d].head_len);
        Ok(&mut self.data[d].head[..len])
    }

    /// `skb_cow_head`: make the head private if it is shared (copy head
    /// and shared info into a fresh block, drop one reference to the
    /// old). Fails only when the pool has no free block.
    pub fn cow_head(&mut self, id: SkbId) -> Result<(), SkbError> {
        let old = usize::from(self.slot(id)?.data);
        if !self.get(id)?.is_cloned() {
            return Ok(());
        }
        let new = self.free_data.pop().ok_or(SkbError::Exhausted)?;
        let mut copy = self.data[old];
        copy.dataref = 1;
        self.data[usize::from(new)] = copy;
        // dataref > 1 here, so the old block stays alive.
        self.data[old].dataref -= 1;
        let s = &mut self.slots[id.index()];
        s.data = new;
        s.cloned = false;
        Ok(())
    }

    /// Set `gso_size` (refused on a shared block, like the head).
    pub fn set_gso_size(&mut self, id: SkbId, gso: u16) -> Result<(), SkbError> {
        if self.get(id)?.is_cloned() {
            return Err(SkbError::SharedHead(id));
        }
        let d = usize::from(self.slot(id)?.data);
        self.data[d].gso_size = gso;
        Ok(())
    }

    /// Tag an skb (the driver keeps its TX sequence number here).
    pub fn set_mark(&mut self, id: SkbId, mark: u64) -> Result<(), SkbError> {
        self.slot(id)?;
        self.slots[id.index()].mark = mark;
        Ok(())
    }

    /// Live skbs.
    pub fn live(&self) -> u32 {
        self.live
    }
    /// Successful allocations and clones so far.
    pub fn allocs(&self) -> u64 {
        self.allocs
    }
    /// Successful frees so far.
    pub fn frees(&self) -> u64 {
        self.frees
    }
    /// Refused frees (double or stale).
    pub fn bad_frees(&self) -> u64 {
        self.bad_frees
    }
    /// Data blocks in use (≤ live skbs).
    pub fn data_blocks_in_use(&self) -> usize {
        self.data.len() - self.free_data.len()
    }
}
