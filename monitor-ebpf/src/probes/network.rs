//! Sockets: the connection tuple of the fd a network syscall used, read from the kernel's
//! `struct sock` at exit, so that connect/accept events carry both ends as Falco shows them.

use monitor_common::SockTuple;

use crate::{maps, task};

#[inline(always)]
pub fn socket_tuple(fd: i64) -> Option<SockTuple> {
    task::socket_tuple(&maps::offsets(), fd)
}
