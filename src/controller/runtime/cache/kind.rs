//! The cache of one kind: digests (and views) by namespace and name, and
//! whether its first full list has arrived.

use std::collections::{HashMap, HashSet};
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};

use super::digest::Digest;

/// One cached object.
pub struct Entry<V> {
    /// The object's metadata digest.
    pub digest: Digest,
    /// What is kept beside it.
    pub view: V,
}

/// Entries of one kind by namespace, then name (a namespace is stored once).
type Entries<V> = HashMap<String, HashMap<String, Entry<V>>>;

/// The cache of one kind.
pub struct KindCache<V> {
    entries: RwLock<Entries<V>>,
    /// The first full list has arrived.
    listed: AtomicBool,
    /// The API server serves the kind (false while its CRD is missing).
    served: AtomicBool,
}

impl<V> Default for KindCache<V> {
    fn default() -> Self {
        Self { entries: RwLock::new(HashMap::new()), listed: AtomicBool::new(false), served: AtomicBool::new(true) }
    }
}

impl<V> KindCache<V> {
    /// `f` of one entry, read in place.
    pub fn read<T>(&self, namespace: &str, name: &str, f: impl FnOnce(&Entry<V>) -> T) -> Option<T> {
        let entries = self.entries.read().ok()?;
        entries.get(namespace)?.get(name).map(f)
    }

    /// Stores one entry.
    pub fn insert(&self, (namespace, name): (String, String), entry: Entry<V>) {
        if let Ok(mut entries) = self.entries.write() {
            entries.entry(namespace).or_default().insert(name, entry);
        }
    }

    /// Forgets one entry.
    pub fn remove(&self, (namespace, name): &(String, String)) {
        if let Ok(mut entries) = self.entries.write()
            && let Some(names) = entries.get_mut(namespace)
        {
            names.remove(name);
            if names.is_empty() {
                entries.remove(namespace);
            }
        }
    }

    /// After a (re)list: drops what the list did not contain.
    pub fn retain(&self, listed: &HashSet<(String, String)>) {
        if let Ok(mut entries) = self.entries.write() {
            for (namespace, names) in entries.iter_mut() {
                names.retain(|name, _| listed.contains(&(namespace.clone(), name.clone())));
            }
            entries.retain(|_, names| !names.is_empty());
        }
        self.listed.store(true, Ordering::Release);
    }

    /// Names of the objects in `namespace` whose controller is `uid`, data objects excluded.
    pub fn controlled_by(&self, namespace: &str, uid: &str) -> Vec<String> {
        let Ok(entries) = self.entries.read() else { return Vec::new() };
        let names = entries.get(namespace).into_iter().flatten();
        names.filter(|(_, e)| e.digest.controlled_by(uid) && !e.digest.is_data()).map(|(n, _)| n.clone()).collect()
    }

    /// The first full list has arrived.
    pub fn listed(&self) -> bool {
        self.listed.load(Ordering::Acquire)
    }

    /// The API server serves the kind.
    pub fn served(&self) -> bool {
        self.served.load(Ordering::Acquire)
    }

    /// Whether the API server serves the kind; while it does not, the cache
    /// is empty and counts as listed.
    pub fn set_served(&self, served: bool) {
        self.served.store(served, Ordering::Release);
        if !served {
            self.retain(&HashSet::new());
        }
    }
}
