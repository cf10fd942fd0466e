//! The one harness of every integration test and of the convergence bench:
//! the local cluster and its test namespaces, CRD installation, waits on
//! conditions (never fixed sleeps), child processes killed on drop, free ports,
//! raw HTTP and Prometheus scrapes, WebCluster conditions, temporary folders
//! and the invalid-manifest corpus.
//!
//! Included as a module by each test crate (`#[path = "harness/mod.rs"] mod
//! harness;`) and by the bench (`#[path = "../../tests/harness/mod.rs"]`)
//! rather than built as a crate of its own: a helper crate could not use the
//! operator's own types (`WebCluster`, `Metrics`) without a dev-dependency
//! cycle, which links the library twice and makes those types mismatch. Each
//! crate uses a part of it, hence `dead_code` is allowed here.
//!
//! Every test that needs the cluster starts it (`hack/cluster.sh up`, a no-op
//! when it runs): a missing toolchain or a cluster that does not start FAILS
//! the test with the script's output; nothing is ever skipped.
#![allow(dead_code)]

pub mod cluster;
pub mod conditions;
pub mod corpus;
pub mod fs;
pub mod helm;
pub mod http;
pub mod pods;
pub mod process;
pub mod wait;
