//! The ring-buffer reader: waits for the ring to become readable and drains it in batches.
//! It never blocks the kernel (the kernel never waits for us; a full ring drops and counts).
//!
//! Two modes. While records come, the kernel sends them without waking us and we look every
//! `POLL_INTERVAL` (a wakeup per record was most of the cost of an exec). After
//! `IDLE_POLLS` empty looks we go to sleep: the kernel is told (`READER_ASLEEP`) to wake
//! us with the next record, and the tick slows to `ASLEEP_POLL`. An idle machine then sees
//! the daemon about once a second instead of a few hundred context switches a second, and
//! the first record after a quiet spell is read at once instead of up to 10 ms later.

use std::time::Duration;

use aya::maps::{Array, MapData, RingBuf};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::time::{Instant, Interval, MissedTickBehavior};

use crate::event::decode::{self, RawRecord};

/// How often the reader looks at the ring when the kernel has not woken it.
pub const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// Empty looks in a row after which the reader goes to sleep (100 ms without a record).
const IDLE_POLLS: u32 = 10;

/// The tick while asleep. Only a backstop: a program that read `READER_ASLEEP` just before we
/// set it sends without waking us, and its record waits for this tick (or the next record).
pub const ASLEEP_POLL: Duration = Duration::from_secs(1);

fn ticker(period: Duration) -> Interval {
    let mut tick = tokio::time::interval_at(Instant::now() + period, period);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    tick
}

pub struct Reader {
    ring: AsyncFd<RingBuf<MapData>>,
    /// The kernel's `READER_ASLEEP` flag, which only the reader writes.
    asleep_flag: Array<MapData, u32>,
    asleep: bool,
    empty_polls: u32,
    tick: Interval,
    /// Records that did not decode (counted, never fatal).
    pub decode_errors: u64,
}

impl Reader {
    pub fn new(
        ring: RingBuf<MapData>,
        asleep_flag: Array<MapData, u32>,
    ) -> std::io::Result<Reader> {
        // SAFETY: the ring buffer owns its map fd, which stays open and the same for as long as
        // the RingBuf lives, and the AsyncFd owns the RingBuf.
        let ring = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
            .map_err(|e| e.into_parts().1)?;
        Ok(Reader {
            ring,
            asleep_flag,
            asleep: false,
            empty_polls: 0,
            tick: ticker(POLL_INTERVAL),
            decode_errors: 0,
        })
    }

    /// Tell the kernel to wake us with every record, and slow the tick. If the flag cannot be
    /// written, stay awake: polling is slower to idle, never late.
    fn fall_asleep(&mut self) {
        if self.asleep_flag.set(0, 1, 0).is_ok() {
            self.asleep = true;
            self.tick = ticker(ASLEEP_POLL);
        } else {
            self.empty_polls = 0;
        }
    }

    fn wake_up(&mut self) {
        self.empty_polls = 0;
        if !self.asleep {
            return;
        }
        if self.asleep_flag.set(0, 0, 0).is_err() {
            // Still woken by every record: costlier, never late. Try again next time.
            return;
        }
        self.asleep = false;
        self.tick = ticker(POLL_INTERVAL);
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
    /// Awake, the kernel sends records without waking us until a sixteenth of the ring is
    /// unread (`Settings::wake_bytes`), so besides the ring's readiness this also looks every
    /// `POLL_INTERVAL`: that bounds how late a record is read at low rates. Asleep, the next
    /// record wakes us (see the module's doc).
    pub async fn next_batch(
        &mut self,
        out: &mut Vec<RawRecord>,
        max: usize,
    ) -> std::io::Result<()> {
        loop {
            self.drain_ready(out, max);
            if !out.is_empty() {
                self.wake_up();
                return Ok(());
            }
            if !self.asleep && self.empty_polls >= IDLE_POLLS {
                self.fall_asleep();
                // Look once more: what was sent before the kernel saw the flag woke nobody.
                continue;
            }
            tokio::select! {
                ready = self.ring.readable_mut() => ready?.clear_ready(),
                _ = self.tick.tick() => {
                    if !self.asleep {
                        self.empty_polls += 1;
                    }
                }
            }
        }
    }
}
