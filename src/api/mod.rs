//! The WebCluster API (v1alpha1): types, defaults and offline validation.

mod spec;
mod status;
pub mod validate;

pub use spec::*;
pub use status::*;
