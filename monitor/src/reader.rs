//! The ring-buffer reader: waits for the ring to become readable and drains it in batches.
//! It never blocks the kernel (the kernel never waits for us; a full ring drops and counts).

use std::time::Duration;

use aya::maps::{MapData, RingBuf};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use crate::event::decode::{self, RawRecord};

/// How often the reader looks at the ring when the kernel has not woken it.
pub const POLL_INTERVAL: Duration = Duration::from_millis(10);

pub struct Reader {
    ring: AsyncFd<RingBuf<MapData>>,
    tick: tokio::time::Interval,
    /// Records that did not decode (counted, never fatal).
    pub decode_errors: u64,
}

impl Reader {
    pub fn new(ring: RingBuf<MapData>) -> std::io::Result<Reader> {
        // SAFETY: the ring buffer owns its map fd, which stays open and the same for as long as
        // the RingBuf lives, and the AsyncFd owns the RingBuf.
        let ring = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
            .map_err(|e| e.into_parts().1)?;
        let mut tick = tokio::time::interval(POLL_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Ok(Reader {
            ring,
            tick,
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
    ///
    /// The kernel sends records without waking us until a sixteenth of the ring is unread
    /// (`Settings::wake_bytes`), so besides the ring's readiness this also looks every
    /// `POLL_INTERVAL`: that bounds how late a record is read at low rates.
    pub async fn next_batch(
        &mut self,
        out: &mut Vec<RawRecord>,
        max: usize,
    ) -> std::io::Result<()> {
        loop {
            self.drain_ready(out, max);
            if !out.is_empty() {
                return Ok(());
            }
            tokio::select! {
                ready = self.ring.readable_mut() => ready?.clear_ready(),
                _ = self.tick.tick() => {}
            }
        }
    }
}
