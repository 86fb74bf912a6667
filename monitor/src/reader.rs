//! The ring-buffer reader: waits for the ring to become readable and drains it in batches.
//! It never blocks the kernel (the kernel never waits for us; a full ring drops and counts).

use aya::maps::{MapData, RingBuf};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use crate::event::decode::{self, RawRecord};

pub struct Reader {
    ring: AsyncFd<RingBuf<MapData>>,
    /// Records that did not decode (counted, never fatal).
    pub decode_errors: u64,
}

impl Reader {
    pub fn new(ring: RingBuf<MapData>) -> std::io::Result<Reader> {
        // SAFETY: the ring buffer owns its map fd, which stays open and the same for as long as
        // the RingBuf lives, and the AsyncFd owns the RingBuf.
        let ring = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
            .map_err(|e| e.into_parts().1)?;
        Ok(Reader {
            ring,
            decode_errors: 0,
        })
    }

    /// Decodes up to `max` records already in the ring into `out`, without waiting: at
    /// shutdown, for the events that happened before the signal but were not read yet.
    pub fn drain_ready(&mut self, out: &mut Vec<RawRecord>, max: usize) {
        let ring = self.ring.get_mut();
        let mut errors = 0;
        while out.len() < max {
            let Some(item) = ring.next() else { break };
            match decode::decode(&item) {
                Ok(r) => out.push(r),
                Err(_) => errors += 1,
            }
        }
        self.decode_errors += errors;
    }

    /// Wait for records, then decode up to `max` of them into `out`.
    pub async fn next_batch(
        &mut self,
        out: &mut Vec<RawRecord>,
        max: usize,
    ) -> std::io::Result<()> {
        loop {
            let mut guard = self.ring.readable_mut().await?;
            let ring = guard.get_inner_mut();
            let mut errors = 0;
            while out.len() < max {
                let Some(item) = ring.next() else { break };
                match decode::decode(&item) {
                    Ok(r) => out.push(r),
                    Err(_) => errors += 1,
                }
            }
            self.decode_errors += errors;
            if out.is_empty() {
                guard.clear_ready();
                continue;
            }
            if out.len() < max {
                guard.clear_ready();
            }
            return Ok(());
        }
    }
}
