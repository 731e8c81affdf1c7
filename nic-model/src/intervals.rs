//! The DMA monitor's live maps: an interval tree keyed by start address
//! (a treap; each node also holds the largest end in its subtree), so the
//! question every checked DMA asks, "the live map with the nearest start
//! at or below `addr` that reaches `end`", costs O(log n) whether a map
//! is found or not. A plain ordered map answers a miss by walking every
//! map below the address: a guest with many small maps and a stream of
//! bad DMAs made the host's work per access linear (issue 16).
//!
//! Priorities come from a fixed hash of the start address, so the shape,
//! like everything else in a run, is deterministic.

/// One live map: `[start, end)`, its direction and how often the same
/// start is mapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapEntry {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
    /// Direction as in `Marker::DmaMap` (0 to device, 1 from, 2 both).
    pub dir: u64,
    /// Live dma-maps of this start (a re-map of the same start keeps the
    /// wider range and counts).
    pub count: u32,
}

#[derive(Debug)]
struct Node {
    e: MapEntry,
    prio: u64,
    /// Largest `end` in this subtree.
    max_end: u64,
    left: Tree,
    right: Tree,
}

type Tree = Option<Box<Node>>;

fn max_end(t: &Tree) -> u64 {
    t.as_ref().map_or(0, |n| n.max_end)
}

impl Node {
    fn fix(&mut self) {
        self.max_end = self
            .e
            .end
            .max(max_end(&self.left))
            .max(max_end(&self.right));
    }
}

/// splitmix64: a node's heap priority from its start. A bijection (an
/// added constant, xor-shifts and odd multipliers are each invertible),
/// so two starts never share a priority.
fn prio(start: u64) -> u64 {
    let mut z = start.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Live maps by start address.
#[derive(Debug, Default)]
pub struct MapTree {
    root: Tree,
    /// Live dma-maps, counting re-maps of one start.
    live: usize,
}

impl MapTree {
    /// Map `[start, end)`: a new entry, or (same start) the wider range
    /// and one more count. One descent: a start's priority is a hash of
    /// it, so below a node of lower priority it cannot be present.
    pub fn map(&mut self, start: u64, end: u64, dir: u64) {
        self.live += 1;
        let p = prio(start);
        // Every node passed on the way down gets `end` in its subtree.
        // A raw cursor: the safe form (check, then borrow again) costs a
        // second test per level, and this loop's cost per level is what
        // grows with the number of live maps.
        let mut t: *mut Tree = &mut self.root;
        // SAFETY: `t` is `&mut self.root` or a child link of a node
        // reached from it, all owned by `self`, which is borrowed mutably
        // for this call; no other reference into the tree is live, and
        // the node's borrow ends before `t` moves on.
        while let Some(n) = (unsafe { &mut *t }).as_deref_mut() {
            // `prio` is a bijection, so equal priorities mean the same
            // start: one test per level stops at the entry itself or where
            // it belongs.
            if p >= n.prio {
                break;
            }
            if end > n.max_end {
                n.max_end = end;
            }
            t = if start < n.e.start {
                &mut n.left
            } else {
                &mut n.right
            };
        }
        // SAFETY: as above; the last use of the cursor.
        let t = unsafe { &mut *t };
        if let Some(n) = t.as_mut().filter(|n| n.e.start == start) {
            // Mapped again: the wider range, one more count.
            n.e.end = n.e.end.max(end);
            n.e.count += 1;
            n.max_end = n.max_end.max(end);
            return;
        }
        let (left, right) = Self::split(t.take(), start);
        let mut n = Box::new(Node {
            e: MapEntry {
                start,
                end,
                dir,
                count: 1,
            },
            prio: p,
            max_end: end,
            left,
            right,
        });
        n.fix();
        *t = Some(n);
    }

    /// (starts below `key`, starts at or above it).
    fn split(t: Tree, key: u64) -> (Tree, Tree) {
        let Some(mut n) = t else { return (None, None) };
        if n.e.start < key {
            let (l, r) = Self::split(n.right.take(), key);
            n.right = l;
            n.fix();
            (Some(n), r)
        } else {
            let (l, r) = Self::split(n.left.take(), key);
            n.left = r;
            n.fix();
            (l, Some(n))
        }
    }

    fn merge(a: Tree, b: Tree) -> Tree {
        match (a, b) {
            (None, t) | (t, None) => t,
            (Some(mut a), Some(mut b)) => {
                if a.prio > b.prio {
                    a.right = Self::merge(a.right.take(), Some(b));
                    a.fix();
                    Some(a)
                } else {
                    b.left = Self::merge(Some(a), b.left.take());
                    b.fix();
                    Some(b)
                }
            }
        }
    }

    /// Unmap the map starting at `start`: one count less, the entry gone
    /// at zero. False if no map starts there.
    pub fn unmap(&mut self, start: u64) -> bool {
        // One descent to the entry, remembering the highest link on the
        // path whose node's largest end equals the entry's subtree's:
        // largest ends do not grow on the way down, so the ancestors above
        // it have a larger one, which the removal cannot change. Only the
        // path from there (usually a few nodes) is fixed up, on the way
        // back from `remove`.
        let mut t: *mut Tree = &mut self.root;
        let mut fix_from = t;
        let mut fix_max = u64::MAX;
        let n = loop {
            // SAFETY: `t` is `&mut self.root` or a child link of a node
            // reached from it, all owned by `self`, which is borrowed
            // mutably for this call; no other reference into the tree is
            // live (the previous node's borrow ended when `t` moved on).
            let Some(n) = (unsafe { &mut *t }).as_deref_mut() else {
                return false;
            };
            if n.max_end < fix_max {
                (fix_from, fix_max) = (t, n.max_end);
            }
            if n.e.start == start {
                break n;
            }
            t = if start < n.e.start {
                &mut n.left
            } else {
                &mut n.right
            };
        };
        self.live -= 1;
        if n.e.count > 1 {
            // Mapped again: one count less, the range and the tree as they are.
            n.e.count -= 1;
            return true;
        }
        // A deeper map reaching further keeps every ancestor's largest end:
        // only the entry's own link changes.
        let from = if n.max_end > n.e.end { t } else { fix_from };
        // SAFETY: `from` is `t` or a link above it on the same path (a
        // parent of what `n` borrows), and `n` is not used again: this is
        // the only live reference into the tree.
        Self::remove(unsafe { &mut *from }, start)
    }

    fn remove(t: &mut Tree, start: u64) -> bool {
        let Some(n) = t else { return false };
        let found = if start < n.e.start {
            Self::remove(&mut n.left, start)
        } else if start > n.e.start {
            Self::remove(&mut n.right, start)
        } else if n.e.count > 1 {
            n.e.count -= 1;
            true
        } else {
            let (l, r) = (n.left.take(), n.right.take());
            *t = Self::merge(l, r);
            return true;
        };
        if found {
            n.fix();
        }
        found
    }

    /// The live map with the nearest start at or below `addr` whose end
    /// reaches `end` (so it covers `[addr, end)` when `addr < end`).
    pub fn covering(&self, addr: u64, end: u64) -> Option<MapEntry> {
        // Walk the search path of `addr`. Every node on it that starts at
        // or below `addr` is a fallback for what lies deeper (nearer):
        // itself, then its left subtree (all below it). Keep the deepest
        // fallback that can answer; a subtree whose largest end falls
        // short of `end` is never entered.
        let mut best: Option<&Node> = None;
        let mut cur = self.root.as_deref();
        while let Some(n) = cur {
            if n.max_end < end {
                break;
            }
            if n.e.start > addr {
                cur = n.left.as_deref();
            } else {
                if n.e.end >= end || max_end(&n.left) >= end {
                    best = Some(n);
                }
                cur = n.right.as_deref();
            }
        }
        let n = best?;
        if n.e.end >= end {
            return Some(n.e);
        }
        // The rightmost node of its left subtree that reaches `end`.
        let mut cur = n.left.as_deref();
        while let Some(x) = cur {
            if max_end(&x.right) >= end {
                cur = x.right.as_deref();
            } else if x.e.end >= end {
                return Some(x.e);
            } else {
                cur = x.left.as_deref();
            }
        }
        None
    }

    /// Live dma-maps (re-maps of one start counted).
    pub fn live(&self) -> usize {
        self.live
    }

    /// Every entry by start (for Debug output).
    pub fn entries(&self) -> Vec<MapEntry> {
        fn walk(t: &Tree, out: &mut Vec<MapEntry>) {
            if let Some(n) = t {
                walk(&n.left, out);
                out.push(n.e);
                walk(&n.right, out);
            }
        }
        let mut v = Vec::new();
        walk(&self.root, &mut v);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// The ordered-map walk the tree replaces: the reference.
    fn naive(m: &BTreeMap<u64, (u64, u64, u32)>, addr: u64, end: u64) -> Option<MapEntry> {
        m.range(..=addr)
            .rev()
            .find(|(_, e)| e.0 >= end)
            .map(|(&start, &(e, dir, count))| MapEntry {
                start,
                end: e,
                dir,
                count,
            })
    }

    /// Heap order of priorities, search order of starts and every node's
    /// largest end; returns the subtree's largest end.
    fn check_shape(t: &Tree, lo: u64, hi: u64) -> u64 {
        let Some(n) = t else { return 0 };
        assert!((lo..=hi).contains(&n.e.start), "order at {}", n.e.start);
        for c in [&n.left, &n.right].into_iter().flatten() {
            assert!(c.prio < n.prio, "heap at {}", n.e.start);
        }
        let lm = check_shape(&n.left, lo, n.e.start.saturating_sub(1));
        let rm = check_shape(&n.right, n.e.start.saturating_add(1), hi);
        assert_eq!(
            n.max_end,
            n.e.end.max(lm).max(rm),
            "max end at {}",
            n.e.start
        );
        n.max_end
    }

    #[test]
    fn priorities_of_nearby_starts_differ() {
        let mut seen = std::collections::HashSet::new();
        for start in (0..20_000u64).chain(u64::MAX - 20_000..=u64::MAX) {
            assert!(seen.insert(prio(start)), "start {start}");
        }
    }

    #[test]
    fn matches_the_ordered_map_walk_on_random_maps_and_queries() {
        let mut seed = 7u64;
        let mut rnd = |n: u64| {
            seed = prio(seed);
            seed % n
        };
        for round in 0..40 {
            let (mut t, mut m) = (MapTree::default(), BTreeMap::new());
            // Small address space so maps overlap, nest and repeat.
            let span = 1 + rnd(if round % 2 == 0 { 200 } else { 1 << 40 });
            for _ in 0..600 {
                let start = rnd(span);
                match rnd(3) {
                    0 | 1 => {
                        let end = start + 1 + rnd(span / 4 + 1);
                        let dir = rnd(3);
                        t.map(start, end, dir);
                        m.entry(start)
                            .and_modify(|e: &mut (u64, u64, u32)| {
                                e.0 = e.0.max(end);
                                e.2 += 1;
                            })
                            .or_insert((end, dir, 1));
                    }
                    _ => {
                        let had = match m.get_mut(&start) {
                            Some(e) if e.2 > 1 => {
                                e.2 -= 1;
                                true
                            }
                            Some(_) => m.remove(&start).is_some(),
                            None => false,
                        };
                        assert_eq!(t.unmap(start), had);
                    }
                }
                let addr = rnd(span + 10);
                let end = addr + rnd(span / 8 + 2);
                assert_eq!(
                    t.covering(addr, end),
                    naive(&m, addr, end),
                    "round {round}: [{addr}, {end})"
                );
                assert_eq!(t.live(), m.values().map(|e| e.2 as usize).sum::<usize>());
                check_shape(&t.root, 0, u64::MAX);
            }
            let all: Vec<MapEntry> = m
                .iter()
                .map(|(&start, &(end, dir, count))| MapEntry {
                    start,
                    end,
                    dir,
                    count,
                })
                .collect();
            assert_eq!(t.entries(), all);
        }
    }

    #[test]
    fn ends_at_the_top_of_the_address_space() {
        let mut t = MapTree::default();
        t.map(u64::MAX - 16, u64::MAX, 2);
        assert_eq!(
            t.covering(u64::MAX - 8, u64::MAX).map(|e| e.start),
            Some(u64::MAX - 16)
        );
        assert!(t.unmap(u64::MAX - 16));
        assert_eq!(t.covering(u64::MAX - 8, u64::MAX), None);
    }
}
