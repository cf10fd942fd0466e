//! Shared files: one ReadWriteMany claim mounted at every listed path, or the
//! S3 coordinates and credentials as environment variables.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSetPersistentVolumeClaimRetentionPolicy;
use k8s_openapi::api::core::v1::{
    EnvVar, PersistentVolumeClaim, PersistentVolumeClaimSpec, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::meta::{Component, Parent};
use super::pod::{from_secret, plain};
use super::{Child, names};
use crate::api::{DeletionPolicy, SharedMount, VolumeSize};

/// The files claim, unless the user brings an existing one.
pub fn objects(parent: &Parent) -> Vec<Child> {
    let Some(volume) = parent.spec.storage.as_ref().and_then(|s| s.volume.as_ref()) else { return Vec::new() };
    if volume.existing_claim.is_some() {
        return Vec::new();
    }
    vec![
        PersistentVolumeClaim {
            metadata: parent.data_meta(names::files(parent.name), Component::Files, "webcluster"),
            spec: Some(claim_spec("ReadWriteMany", &volume.size, volume.storage_class_name.clone())),
            ..PersistentVolumeClaim::default()
        }
        .into(),
    ]
}

fn claim_spec(access_mode: &str, size: &Quantity, storage_class_name: Option<String>) -> PersistentVolumeClaimSpec {
    PersistentVolumeClaimSpec {
        access_modes: Some(vec![access_mode.into()]),
        resources: Some(VolumeResourceRequirements {
            requests: Some(BTreeMap::from([("storage".to_string(), size.clone())])),
            limits: None,
        }),
        storage_class_name,
        ..PersistentVolumeClaimSpec::default()
    }
}

/// A StatefulSet's per-pod claim template.
pub fn claim_template(
    parent: &Parent,
    name: &str,
    size: &VolumeSize,
    component: Component,
    software: &str,
) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(parent.labels(component, software)),
            ..ObjectMeta::default()
        },
        spec: Some(claim_spec("ReadWriteOnce", &size.size, size.storage_class_name.clone())),
        ..PersistentVolumeClaim::default()
    }
}

/// Claims of StatefulSets follow `deletionPolicy`; scaling down never deletes them.
pub fn claim_retention(parent: &Parent) -> Option<StatefulSetPersistentVolumeClaimRetentionPolicy> {
    let when_deleted = match parent.spec.deletion_policy {
        DeletionPolicy::Retain => "Retain",
        DeletionPolicy::Delete => "Delete",
    };
    Some(StatefulSetPersistentVolumeClaimRetentionPolicy {
        when_deleted: Some(when_deleted.into()),
        when_scaled: Some("Retain".into()),
    })
}

/// The claim app pods mount, if any.
pub fn claim_name(parent: &Parent) -> Option<String> {
    let volume = parent.spec.storage.as_ref()?.volume.as_ref()?;
    Some(volume.existing_claim.clone().unwrap_or_else(|| names::files(parent.name)))
}

/// Where the shared volume is mounted.
pub fn shared_mounts<'a>(parent: &Parent<'a>) -> &'a [SharedMount] {
    parent.spec.storage.as_ref().and_then(|s| s.volume.as_ref()).map(|v| v.mounts.as_slice()).unwrap_or_default()
}

/// `WEBCLUSTER_FILES_DIR`, or the `WEBCLUSTER_S3_*` set.
pub fn env(parent: &Parent) -> Vec<EnvVar> {
    let Some(storage) = &parent.spec.storage else { return Vec::new() };
    if let Some(first) = storage.volume.as_ref().and_then(|v| v.mounts.first()) {
        return vec![plain("WEBCLUSTER_FILES_DIR", &first.path)];
    }
    let Some(s3) = &storage.s3 else { return Vec::new() };
    let optional = |value: &Option<String>| value.clone().unwrap_or_default();
    let credentials = &s3.credentials_secret_ref;
    vec![
        plain("WEBCLUSTER_S3_BUCKET", &s3.bucket),
        plain("WEBCLUSTER_S3_ENDPOINT", &optional(&s3.endpoint)),
        plain("WEBCLUSTER_S3_REGION", &optional(&s3.region)),
        plain("WEBCLUSTER_S3_PREFIX", &optional(&s3.prefix)),
        from_secret("WEBCLUSTER_S3_ACCESS_KEY_ID", &credentials.name, &credentials.access_key_id_key),
        from_secret("WEBCLUSTER_S3_SECRET_ACCESS_KEY", &credentials.name, &credentials.secret_access_key_key),
    ]
}
