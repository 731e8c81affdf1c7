//! Test environment for the softnet core: a settable clock and a marker
//! recorder.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;

use nicproof_guest::abi::Marker;
use nicproof_guest::softnet::SoftnetEnv;

#[derive(Default)]
pub struct RecEnv {
    now: AtomicU64,
    log: Mutex<Vec<(Marker, Vec<u64>)>>,
    pub schedules: AtomicU32,
}

impl RecEnv {
    /// A leaked environment, so queues borrowing it can live anywhere.
    pub fn leaked() -> &'static RecEnv {
        Box::leak(Box::default())
    }
    pub fn set_now(&self, ns: u64) {
        self.now.store(ns, Ordering::Relaxed);
    }
    pub fn advance(&self, ns: u64) {
        self.now.fetch_add(ns, Ordering::Relaxed);
    }
    pub fn markers(&self) -> Vec<(Marker, Vec<u64>)> {
        self.log.lock().unwrap().clone()
    }
    pub fn kinds(&self) -> Vec<Marker> {
        self.markers().into_iter().map(|(m, _)| m).collect()
    }
    pub fn count(&self, m: Marker) -> usize {
        self.kinds().iter().filter(|&&k| k == m).count()
    }
    pub fn clear(&self) {
        self.log.lock().unwrap().clear();
    }
}

impl SoftnetEnv for RecEnv {
    fn now_ns(&self) -> u64 {
        self.now.load(Ordering::Relaxed)
    }
    fn marker(&self, marker: Marker, args: &[u64]) {
        self.log.lock().unwrap().push((marker, args.to_vec()));
    }
    fn netif_schedule(&self, _queue: u32) {
        self.schedules.fetch_add(1, Ordering::Relaxed);
    }
}
