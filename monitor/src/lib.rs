//! The monitor daemon as a library: each module is one stage of an event's path (see
//! ARCHITECTURE.md), so that stages can be tested without the others, and the rule engine
//! without a kernel.

pub mod alert;
pub mod append_output;
pub mod cli;
pub mod config;
pub mod container;
pub mod daemon;
pub mod enforce;
pub mod event;
pub mod metrics;
pub mod output;
pub mod pipeline;
pub mod probe;
pub mod process;
pub mod reader;
pub mod reload;
pub mod rules;
pub mod trace;
pub mod webserver;
