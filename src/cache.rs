//! A bounded map for the caches in front of git and GitHub: at most a set number of entries, the oldest inserted
//! evicted first, so memory stays flat however long the process runs.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::Mutex;

/// A thread-safe map holding at most `capacity` entries; inserting past it evicts the oldest insertion.
pub struct Bounded<K, V> {
    capacity: usize,
    inner: Mutex<(HashMap<K, V>, VecDeque<K>)>,
}

impl<K: Hash + Eq + Clone, V: Clone> Bounded<K, V> {
    pub fn new(capacity: usize) -> Bounded<K, V> {
        Bounded { capacity: capacity.max(1), inner: Mutex::new((HashMap::new(), VecDeque::new())) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (HashMap<K, V>, VecDeque<K>)> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, key: &K) -> Option<V> {
        self.lock().0.get(key).cloned()
    }

    pub fn insert(&self, key: K, value: V) {
        let mut guard = self.lock();
        let (map, order) = &mut *guard;
        if map.insert(key.clone(), value).is_none() {
            order.push_back(key);
        }
        while order.len() > self.capacity {
            if let Some(old) = order.pop_front() {
                map.remove(&old);
            }
        }
    }

    pub fn remove(&self, key: &K) {
        let mut guard = self.lock();
        let (map, order) = &mut *guard;
        if map.remove(key).is_some() {
            order.retain(|k| k != key);
        }
    }

    pub fn len(&self) -> usize {
        self.lock().0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_holds_more_than_its_capacity_and_evicts_the_oldest() {
        let c = Bounded::new(3);
        for i in 0..10 {
            c.insert(i, i * 10);
            assert!(c.len() <= 3);
        }
        assert_eq!((c.get(&6), c.get(&7), c.get(&9)), (None, Some(70), Some(90)));
        // Replacing a value keeps one entry for the key.
        c.insert(9, 1);
        assert_eq!((c.len(), c.get(&9)), (3, Some(1)));
    }
}
