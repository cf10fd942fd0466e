//! webcluster-operator: runs a PHP web application on many nodes from one
//! `WebCluster` manifest.
//!
//! The code is a pipeline: [`api`] (the custom resource and its validation),
//! [`desired`] (pure functions from a WebCluster to its child objects),
//! [`controller`] (each reconcile: observe → plan → apply → prune → report, with
//! its infrastructure in `controller::runtime`), and [`render`] (the offline
//! front end of the builder).

#![forbid(unsafe_code)]

pub mod api;
pub mod controller;
pub mod desired;
pub mod render;
