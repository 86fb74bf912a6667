//! Empty library target: lets the daemon depend on this crate so that cargo rebuilds the
//! embedded object when it changes (aya template).
#![no_std]
