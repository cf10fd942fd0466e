//! The WebCluster API (v1alpha1): types, defaults, the CRD and offline validation.

mod crd;
pub mod formats;
mod spec;
mod status;
pub mod validate;

pub use crd::crd;
pub use spec::*;
pub use status::*;
