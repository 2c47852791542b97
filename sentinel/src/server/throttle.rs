//! In-memory limits on guessing: a sliding-window attempt counter (per client address, per
//! user for re-authentication) and growing delays after failures (per account and address
//! pair, and per account). Both are bounded LRU maps: under a spray of addresses the least
//! recently used entries are evicted, one by one, never the whole table at once.
//!
//! Delays, not locks: the `free`-th failure starts a wait of `base`, each further one doubles
//! it (up to `cap`), attempts during a wait are refused without counting (so an attacker
//! cannot keep extending it), and the wait ends by itself.

use std::num::NonZeroUsize;
use std::sync::Mutex;

use lru::LruCache;

const NS: i64 = 1_000_000_000;

fn cache<V>(capacity: usize) -> Mutex<LruCache<String, V>> {
    let cap = NonZeroUsize::new(capacity.max(1)).unwrap_or(NonZeroUsize::MIN);
    Mutex::new(LruCache::new(cap))
}

/// Sliding-window attempt counter per key (client address, or user for re-authentication).
pub struct RateLimiter {
    max: usize,
    window_ns: i64,
    hits: Mutex<LruCache<String, Vec<i64>>>,
}

impl RateLimiter {
    pub fn new(max: usize, window_secs: u64) -> RateLimiter {
        Self::with_capacity(max, window_secs, 100_000)
    }

    pub fn with_capacity(max: usize, window_secs: u64, capacity: usize) -> RateLimiter {
        RateLimiter {
            max,
            window_ns: (window_secs as i64).saturating_mul(NS),
            hits: cache(capacity),
        }
    }

    /// Records an attempt; false when the key is over its budget.
    pub fn allow(&self, key: &str, now_ns: i64) -> bool {
        let Ok(mut map) = self.hits.lock() else {
            return false;
        };
        let v = map.get_or_insert_mut(key.to_string(), Vec::new);
        v.retain(|&t| now_ns - t < self.window_ns);
        if v.len() >= self.max {
            return false;
        }
        v.push(now_ns);
        true
    }

    pub fn len(&self) -> usize {
        self.hits.lock().map(|m| m.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Clone, Copy, Debug)]
struct Failures {
    count: u32,
    last_ns: i64,
    wait_until_ns: i64,
}

/// Growing delays after failed attempts, per key.
pub struct Delays {
    free: u32,
    base_ns: i64,
    cap_ns: i64,
    /// Failures older than this are forgotten.
    forget_ns: i64,
    map: Mutex<LruCache<String, Failures>>,
}

impl Delays {
    pub fn new(free: u32, base_secs: u64, cap_secs: u64, capacity: usize) -> Delays {
        let cap_ns = (cap_secs.max(base_secs).max(1) as i64).saturating_mul(NS);
        Delays {
            free,
            base_ns: (base_secs.max(1) as i64).saturating_mul(NS),
            cap_ns,
            forget_ns: cap_ns.saturating_mul(4).max(3600 * NS),
            map: cache(capacity),
        }
    }

    /// Nanoseconds still to wait before the next attempt for `key`, if any.
    pub fn wait(&self, key: &str, now_ns: i64) -> Option<i64> {
        let Ok(mut m) = self.map.lock() else {
            return Some(self.cap_ns);
        };
        let f = m.get(key).copied()?;
        if now_ns - f.last_ns > self.forget_ns {
            m.pop(key);
            return None;
        }
        (f.wait_until_ns > now_ns).then(|| f.wait_until_ns - now_ns)
    }

    /// Counts a failure (only call it for attempts that were allowed to run).
    pub fn fail(&self, key: &str, now_ns: i64) {
        let Ok(mut m) = self.map.lock() else { return };
        let f = m.get_or_insert_mut(key.to_string(), || Failures {
            count: 0,
            last_ns: now_ns,
            wait_until_ns: 0,
        });
        if now_ns - f.last_ns > self.forget_ns {
            f.count = 0;
        }
        f.count = f.count.saturating_add(1);
        f.last_ns = now_ns;
        if f.count >= self.free {
            let doublings = (f.count - self.free).min(40);
            let d = self
                .base_ns
                .saturating_mul(1i64 << doublings)
                .min(self.cap_ns);
            f.wait_until_ns = now_ns.saturating_add(d);
        }
    }

    pub fn clear(&self, key: &str) {
        if let Ok(mut m) = self.map.lock() {
            m.pop(key);
        }
    }

    pub fn len(&self) -> usize {
        self.map.lock().map(|m| m.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limiter_caps_attempts_per_window() {
        let r = RateLimiter::new(3, 60);
        assert!(r.allow("ip", 0) && r.allow("ip", 1) && r.allow("ip", 2));
        assert!(!r.allow("ip", 3));
        assert!(r.allow("other", 3));
        assert!(r.allow("ip", 61_000_000_000));
    }

    #[test]
    fn a_full_limiter_evicts_the_oldest_entry_not_everyone() {
        let r = RateLimiter::with_capacity(2, 60, 100);
        assert!(r.allow("victim-watch", 0) && r.allow("victim-watch", 1));
        assert!(!r.allow("victim-watch", 2), "over budget");
        // A spray of 99 new addresses fills the table without reaching the watched one.
        for i in 0..99 {
            r.allow(&format!("spray-{i}"), 3);
        }
        assert_eq!(r.len(), 100);
        assert!(
            !r.allow("victim-watch", 4),
            "the watched address kept its count"
        );
        // One more address evicts only the least recently used entry.
        r.allow("spray-new", 5);
        assert_eq!(r.len(), 100);
        assert!(!r.allow("victim-watch", 6));
    }

    #[test]
    fn delays_grow_expire_and_are_not_extended_while_waiting() {
        let d = Delays::new(3, 1, 8, 1000);
        let s = NS;
        d.fail("k", 0);
        d.fail("k", 0);
        assert_eq!(d.wait("k", 0), None, "free failures");
        d.fail("k", 0);
        assert_eq!(d.wait("k", 0), Some(s), "the third failure starts a wait");
        assert_eq!(d.wait("k", s), None, "the wait ends by itself");
        d.fail("k", s);
        assert_eq!(d.wait("k", s), Some(2 * s), "doubles");
        d.fail("k", 3 * s);
        d.fail("k", 7 * s);
        d.fail("k", 15 * s);
        assert_eq!(d.wait("k", 15 * s), Some(8 * s), "capped");
        d.clear("k");
        assert_eq!(d.wait("k", 15 * s), None);
    }
}
