//! The credential type, shared by every rail crate (`railgate_rail::Secret`).

pub use railgate_rail::Secret;
