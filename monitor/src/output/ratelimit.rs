//! Falco's output rate limiter (`outputs: {rate, max_burst}`), as a token bucket per rule, so
//! that one noisy rule cannot silence the others.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::config::RateLimitConfig;

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Token buckets, one per rule: each starts full (`max_burst` tokens), gains `rate` tokens a
/// second up to `max_burst`, and an alert passes when it can take one token.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    max_burst: f64,
    buckets: Mutex<HashMap<Arc<str>, Bucket>>,
}

impl RateLimiter {
    /// `None` when `rate` is 0: no limit.
    pub fn new(cfg: &RateLimitConfig) -> Option<RateLimiter> {
        (cfg.rate > 0.0).then(|| RateLimiter {
            rate: cfg.rate,
            max_burst: cfg.max_burst as f64,
            buckets: Mutex::new(HashMap::new()),
        })
    }

    pub fn allow(&self, rule: &Arc<str>) -> bool {
        self.allow_at(rule, Instant::now())
    }

    /// As [`RateLimiter::allow`], at a given instant (tests drive the clock).
    pub fn allow_at(&self, rule: &Arc<str>, now: Instant) -> bool {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let bucket = buckets.entry(rule.clone()).or_insert(Bucket {
            tokens: self.max_burst,
            last: now,
        });
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.max_burst);
        bucket.last = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bursts_then_refills_at_the_rate_per_rule() {
        let rl = RateLimiter::new(&RateLimitConfig {
            rate: 2.0,
            max_burst: 3,
        })
        .unwrap();
        let (a, b): (Arc<str>, Arc<str>) = (Arc::from("a"), Arc::from("b"));
        let t0 = Instant::now();
        let passed = (0..10).filter(|_| rl.allow_at(&a, t0)).count();
        assert_eq!(passed, 3, "a burst of max_burst passes");
        // Another rule has its own bucket.
        assert!(rl.allow_at(&b, t0));
        // Half a second at 2/s gives one token back, and no more.
        let t1 = t0 + Duration::from_millis(500);
        assert!(rl.allow_at(&a, t1));
        assert!(!rl.allow_at(&a, t1));
        // A long pause refills to max_burst, not beyond.
        let t2 = t1 + Duration::from_secs(60);
        assert_eq!((0..10).filter(|_| rl.allow_at(&a, t2)).count(), 3);
    }

    #[test]
    fn rate_zero_means_no_limiter() {
        assert!(
            RateLimiter::new(&RateLimitConfig {
                rate: 0.0,
                max_burst: 1
            })
            .is_none()
        );
    }
}
