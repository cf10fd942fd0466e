//! What the steps remember between reconciles, per WebCluster (by uid), so a
//! deleted WebCluster leaves nothing behind: the driver forgets its entry when
//! the WebCluster's watch reports it gone, and keeps only listed WebClusters
//! after a relist.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

/// One `V` per WebCluster uid.
pub struct ClusterMemory<V> {
    entries: Mutex<HashMap<String, V>>,
}

impl<V> Default for ClusterMemory<V> {
    fn default() -> Self {
        Self { entries: Mutex::new(HashMap::new()) }
    }
}

impl<V: Default> ClusterMemory<V> {
    /// `f` of the entry of `uid` (a default one if there is none yet).
    pub fn with<T>(&self, uid: &str, f: impl FnOnce(&mut V) -> T) -> Option<T> {
        let mut entries = self.entries.lock().ok()?;
        Some(f(entries.entry(uid.to_string()).or_default()))
    }

    /// `f` of the entry of `uid`, if there is one.
    pub fn read<T>(&self, uid: &str, f: impl FnOnce(&V) -> T) -> Option<T> {
        self.entries.lock().ok()?.get(uid).map(f)
    }

    /// Forgets the WebCluster `uid`.
    pub fn forget(&self, uid: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(uid);
        }
    }

    /// Forgets every WebCluster not in `live`.
    pub fn retain(&self, live: &HashSet<String>) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.retain(|uid, _| live.contains(uid));
        }
    }

    /// WebClusters remembered.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().map(|e| e.len()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deleted_and_unlisted_clusters_are_forgotten() {
        let memory = ClusterMemory::<u32>::default();
        for uid in ["a", "b", "c"] {
            memory.with(uid, |v| *v += 1);
        }
        assert_eq!(memory.read("a", |v| *v), Some(1));
        memory.forget("a");
        assert_eq!((memory.read("a", |v| *v), memory.len()), (None, 2));
        memory.retain(&HashSet::from(["c".to_string()]));
        assert_eq!(memory.len(), 1);
    }
}
