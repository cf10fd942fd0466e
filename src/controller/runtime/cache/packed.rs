//! The compact form of a cached view: its JSON.

use std::marker::PhantomData;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// A slimmed object kept as its JSON. k8s-openapi structs are wide: a
/// StatefulSet takes 2.6 KB even when empty, its slimmed JSON a few hundred
/// bytes (about 10 KB of structs per WebCluster before). A reconcile decodes
/// the handful it reads.
pub struct Packed<K> {
    json: Arc<[u8]>,
    kind: PhantomData<fn() -> K>,
}

impl<K> Clone for Packed<K> {
    fn clone(&self) -> Self {
        Self { json: self.json.clone(), kind: PhantomData }
    }
}

impl<K: Serialize + DeserializeOwned> Packed<K> {
    /// Encodes `object`.
    pub fn pack(object: &K) -> Self {
        let json = serde_json::to_vec(object).unwrap_or_else(|error| {
            tracing::warn!(%error, "cannot encode a cached object; it reads as missing");
            Vec::new()
        });
        Self { json: json.into(), kind: PhantomData }
    }

    /// The object; `None` if it could not be kept (the caller treats it as not cached).
    pub fn unpack(&self) -> Option<K> {
        serde_json::from_slice(&self.json).ok()
    }
}
