//! End-to-end: the cases of `capture.rs`, with the exit program on the raw `sys_exit`
//! tracepoint (`capture.syscall_hook: raw_sys_exit`), where 32-bit syscalls arrive too.

const HOOK: &str = "raw_sys_exit";

include!("capture_cases.rs");
