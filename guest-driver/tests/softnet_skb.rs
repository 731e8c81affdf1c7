//! skb pool: clone semantics, cow_head, the ledger.
mod common;

use common::RecEnv;
use nicproof_guest::abi::Marker;
use nicproof_guest::softnet::skb::{Frag, SkbError, SkbPool, HEAD_CAP, MAX_FRAGS};

const ETH: [u8; 14] = [0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00];

fn frags(n: usize) -> Vec<Frag> {
    (0..n)
        .map(|i| Frag {
            addr: 0x200_0000 + 4096 * i as u64,
            len: 100 + i as u32,
        })
        .collect()
}

#[test]
fn alloc_builds_head_and_frags() {
    let env = RecEnv::leaked();
    let mut pool = SkbPool::new(4, env);
    let id = pool.alloc(&ETH, &frags(2)).unwrap();
    let s = pool.get(id).unwrap();
    assert_eq!(s.head(), &ETH);
    assert_eq!(s.frags(), &frags(2)[..]);
    assert_eq!(s.len(), 14 + 100 + 101);
    assert_eq!(s.nr_descs(), 3);
    assert!(!s.is_cloned());
    assert_eq!(pool.live(), 1);
    assert_eq!(
        env.markers(),
        vec![(Marker::SkbAlloc, vec![u64::from(id.0), 215])]
    );
}

#[test]
fn alloc_rejects_oversized_head_and_too_many_frags() {
    let mut pool = SkbPool::new(4, RecEnv::leaked());
    assert_eq!(
        pool.alloc(&[0; HEAD_CAP + 1], &[]),
        Err(SkbError::HeadTooBig(HEAD_CAP + 1))
    );
    assert_eq!(
        pool.alloc(&ETH, &frags(MAX_FRAGS + 1)),
        Err(SkbError::TooManyFrags(MAX_FRAGS + 1))
    );
    assert!(pool.alloc(&ETH, &frags(MAX_FRAGS)).is_ok());
    assert_eq!(pool.live(), 1);
}

#[test]
fn clone_shares_data_and_marks_both_cloned() {
    let env = RecEnv::leaked();
    let mut pool = SkbPool::new(4, env);
    let a = pool.alloc(&ETH, &frags(1)).unwrap();
    pool.set_mark(a, 77).unwrap();
    let b = pool.clone_skb(a).unwrap();
    let (sa, sb) = (pool.get(a).unwrap(), pool.get(b).unwrap());
    assert_eq!(sa.head_addr(), sb.head_addr(), "clones share the head");
    assert_eq!(sa.dataref(), 2);
    assert!(sa.is_cloned() && sb.is_cloned());
    assert_eq!(sb.mark(), 77);
    assert_eq!(pool.data_blocks_in_use(), 1);
    assert_eq!(
        env.markers()[1],
        (Marker::SkbClone, vec![u64::from(b.0), u64::from(a.0)])
    );
}

#[test]
fn writing_a_cloned_head_needs_cow_and_leaves_the_other_unchanged() {
    let mut pool = SkbPool::new(4, RecEnv::leaked());
    let a = pool.alloc(&ETH, &frags(3)).unwrap();
    let b = pool.clone_skb(a).unwrap();
    assert_eq!(pool.head_mut(b).err(), Some(SkbError::SharedHead(b)));
    assert_eq!(pool.set_gso_size(b, 1400), Err(SkbError::SharedHead(b)));

    pool.cow_head(b).unwrap();
    let (ha, hb) = (
        pool.get(a).unwrap().head_addr(),
        pool.get(b).unwrap().head_addr(),
    );
    assert_ne!(ha, hb, "cow gives a private head");
    assert!(!pool.get(b).unwrap().is_cloned());
    assert!(
        !pool.get(a).unwrap().is_cloned(),
        "the original is the only user of its block now"
    );
    assert_eq!(
        pool.get(b).unwrap().frags(),
        &frags(3)[..],
        "shared info copied"
    );

    pool.head_mut(b).unwrap()[12] = 0x81; // e.g. VLAN insertion
    assert_eq!(
        pool.get(a).unwrap().head(),
        &ETH,
        "the clone's writer did not touch shared data"
    );
    assert_eq!(pool.get(b).unwrap().head()[12], 0x81);
    assert_eq!(pool.data_blocks_in_use(), 2);
    // cow on a private head is a no-op.
    pool.cow_head(b).unwrap();
    assert_eq!(pool.get(b).unwrap().head_addr(), hb);
}

#[test]
fn the_unchecked_writer_corrupts_the_clone_which_is_what_the_mutant_shows() {
    let mut pool = SkbPool::new(4, RecEnv::leaked());
    let a = pool.alloc(&ETH, &[]).unwrap();
    let b = pool.clone_skb(a).unwrap();
    pool.head_mut_unchecked(b).unwrap()[0] = 0xff;
    assert_eq!(pool.get(a).unwrap().head()[0], 0xff);
}

#[test]
fn data_is_released_with_the_last_reference() {
    let mut pool = SkbPool::new(4, RecEnv::leaked());
    let a = pool.alloc(&ETH, &[]).unwrap();
    let b = pool.clone_skb(a).unwrap();
    pool.free(a).unwrap();
    assert_eq!(pool.data_blocks_in_use(), 1);
    assert_eq!(pool.get(b).unwrap().head(), &ETH);
    assert!(!pool.get(b).unwrap().is_cloned(), "dataref back to 1");
    pool.free(b).unwrap();
    assert_eq!(pool.data_blocks_in_use(), 0);
    assert_eq!(pool.live(), 0);
}

#[test]
fn double_free_is_refused_counted_and_still_visible_to_the_host() {
    let env = RecEnv::leaked();
    let mut pool = SkbPool::new(2, env);
    let a = pool.alloc(&ETH, &[]).unwrap();
    pool.free(a).unwrap();
    assert_eq!(pool.free(a), Err(SkbError::NotLive(a)));
    assert_eq!(pool.bad_frees(), 1);
    assert_eq!((pool.allocs(), pool.frees()), (1, 1));
    assert_eq!(
        env.count(Marker::SkbFree),
        2,
        "the host ledger sees both frees"
    );
}

#[test]
fn stale_ids_do_not_reach_a_reused_slot() {
    let mut pool = SkbPool::new(1, RecEnv::leaked());
    let a = pool.alloc(&ETH, &[]).unwrap();
    pool.free(a).unwrap();
    let b = pool.alloc(&ETH, &[]).unwrap();
    assert_ne!(a, b, "same slot, new generation");
    assert!(pool.get(a).is_err());
    assert_eq!(pool.free(a), Err(SkbError::NotLive(a)));
    assert!(pool.is_live(b));
}

#[test]
fn exhaustion_is_an_error_not_a_panic() {
    let mut pool = SkbPool::new(2, RecEnv::leaked());
    let a = pool.alloc(&ETH, &[]).unwrap();
    let _b = pool.clone_skb(a).unwrap();
    assert_eq!(pool.alloc(&ETH, &[]), Err(SkbError::Exhausted));
    assert_eq!(pool.clone_skb(a), Err(SkbError::Exhausted));
    // As many data blocks as slots, and a cloned skb shares its block, so
    // cow_head always finds a free block even in a full pool.
    let mut pool = SkbPool::new(2, RecEnv::leaked());
    let a = pool.alloc(&ETH, &[]).unwrap();
    let b = pool.clone_skb(a).unwrap();
    let _c = pool.alloc(&ETH, &[]);
    assert_eq!(pool.live(), 2);
    assert!(pool.cow_head(b).is_ok());
}

#[test]
fn markers_can_be_turned_off_for_benchmarks_while_the_ledger_still_counts() {
    let env = RecEnv::leaked();
    let mut pool = SkbPool::new(2, env);
    pool.set_markers(false);
    let a = pool.alloc(&ETH, &[]).unwrap();
    pool.free(a).unwrap();
    assert!(pool.free(a).is_err());
    assert!(env.markers().is_empty());
    assert_eq!(
        (pool.allocs(), pool.frees(), pool.bad_frees(), pool.live()),
        (1, 1, 1, 0)
    );
}

#[test]
fn softnet_types_can_be_shared_between_cpus() {
    fn send<T: Send>() {}
    fn sync<T: Sync>() {}
    send::<SkbPool<'static>>();
    sync::<nicproof_guest::softnet::queue::TxQueue<'static>>();
    sync::<nicproof_guest::softnet::napi::Napi>();
}

#[test]
fn errors_explain_themselves() {
    use nicproof_guest::softnet::bql::BqlError;
    let e = SkbError::NotLive(nicproof_guest::softnet::skb::SkbId(0x10003));
    assert_eq!(
        e.to_string(),
        "skb: 0x10003 is not live (double free or stale id)"
    );
    let b = BqlError::ResetWithNonEmptyRing(2);
    assert_eq!(b.to_string(), "bql: reset with 2 packets still on the ring");
}

mod ledger_prop {
    use super::*;
    use nicproof_guest::softnet::skb::SkbId;
    use proptest::prelude::*;
    use std::collections::HashMap;

    #[derive(Clone, Debug)]
    enum Op {
        Alloc(u8),
        Clone(usize),
        Free(usize),
        /// Free an skb already freed (must be refused).
        DoubleFree(usize),
        /// cow_head then write the first head byte.
        Write(usize, u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => any::<u8>().prop_map(Op::Alloc),
            2 => any::<usize>().prop_map(Op::Clone),
            3 => any::<usize>().prop_map(Op::Free),
            1 => any::<usize>().prop_map(Op::DoubleFree),
            2 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Op::Write(i, b)),
        ]
    }

    proptest! {
        /// Against a model that knows each live skb's expected head byte:
        /// no write through one skb is ever seen through another, the
        /// ledger's counts match, and frees are exact.
        #[test]
        fn ledger_and_clone_isolation(ops in proptest::collection::vec(op(), 1..120)) {
            let mut pool = SkbPool::new(8, RecEnv::leaked());
            let mut live: Vec<(SkbId, u8)> = Vec::new();
            let mut dead: Vec<SkbId> = Vec::new();
            let mut bad = 0;
            for op in ops {
                match op {
                    Op::Alloc(b) => {
                        let mut head = ETH;
                        head[0] = b;
                        match pool.alloc(&head, &frags(1)) {
                            Ok(id) => live.push((id, b)),
                            Err(e) => prop_assert_eq!(e, SkbError::Exhausted),
                        }
                    }
                    Op::Clone(i) if !live.is_empty() => {
                        let (id, b) = live[i % live.len()];
                        match pool.clone_skb(id) {
                            Ok(c) => live.push((c, b)),
                            Err(e) => prop_assert_eq!(e, SkbError::Exhausted),
                        }
                    }
                    Op::Free(i) if !live.is_empty() => {
                        let (id, _) = live.swap_remove(i % live.len());
                        prop_assert_eq!(pool.free(id), Ok(()));
                        dead.push(id);
                    }
                    Op::DoubleFree(i) if !dead.is_empty() => {
                        let id = dead[i % dead.len()];
                        prop_assert_eq!(pool.free(id), Err(SkbError::NotLive(id)));
                        bad += 1;
                    }
                    Op::Write(i, b) if !live.is_empty() => {
                        let k = i % live.len();
                        let id = live[k].0;
                        // A full pool still has a block for the copy.
                        prop_assert_eq!(pool.cow_head(id), Ok(()));
                        pool.head_mut(id).unwrap()[0] = b;
                        live[k].1 = b;
                    }
                    _ => {}
                }
                prop_assert_eq!(pool.live() as usize, live.len());
                prop_assert_eq!(pool.bad_frees(), bad);
                let mut refs: HashMap<u64, u16> = HashMap::new();
                for &(id, b) in &live {
                    let s = pool.get(id).unwrap();
                    prop_assert_eq!(s.head()[0], b, "a write leaked into another skb");
                    *refs.entry(s.head_addr()).or_default() += 1;
                }
                for &(id, _) in &live {
                    let s = pool.get(id).unwrap();
                    prop_assert_eq!(s.dataref(), refs[&s.head_addr()]);
                }
                prop_assert_eq!(pool.data_blocks_in_use(), refs.len());
            }
        }
    }
}
