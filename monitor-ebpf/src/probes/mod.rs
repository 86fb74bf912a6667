//! The programs, one module per hook family. Each program entry is thin and calls a `try_`
//! function; errors only mean "nothing to send".

pub mod enforce;
pub mod file;
pub mod network;
pub mod process;
pub mod syscalls;
