//! Harness for the end-to-end tests.
pub mod containerd;
pub mod docker;
