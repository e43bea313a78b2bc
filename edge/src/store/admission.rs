//! Which objects earn a place on the disk tier. foyer's disk tier evicts first in, first out
//! by block, so what it keeps is decided by what it lets in. An object goes to disk once it
//! has been asked for `min_requests` times in the recent past, by a TinyLFU-style estimate
//! (a count-min sketch of requests per object, halved every `window` requests so that old
//! popularity fades); below that it stays in the memory tier only, and one that reaches the
//! threshold while still in memory is written to disk then. Objects are stored as chunks of
//! one size, so ranking objects by requests ranks the disk's bytes by popularity per byte,
//! which is what a Zipf workload over segments of mixed sizes rewards
//! (`../shared/notes/cache-policy.md`; measured in `bench/README.md`).

use datasketches::countmin::CountMinSketch;
use parking_lot::Mutex;

/// The admission policy of the disk tier.
pub struct Admission {
    min_requests: u32,
    window: u64,
    /// `None` when every object is admitted: nothing to count, no lock on the request path.
    state: Option<Mutex<Sketch>>,
}

struct Sketch {
    counts: CountMinSketch<u32>,
    /// Requests recorded since the last halving.
    since_halving: u64,
}

impl Admission {
    /// Admits objects with at least `min_requests` recent requests (1 admits every object),
    /// halving every count each `window` requests.
    pub fn new(min_requests: u32, window: u64) -> Self {
        let window = window.max(16);
        // About as many counters per row as requests in a window: collisions stay rare
        // among the objects that matter.
        let buckets = (window.next_power_of_two() as u32).clamp(1024, 1 << 20);
        Self {
            min_requests,
            window,
            state: (min_requests > 1).then(|| {
                Mutex::new(Sketch {
                    counts: CountMinSketch::new(4, buckets),
                    since_halving: 0,
                })
            }),
        }
    }

    /// Counts one request for the object `key`; returns whether this request is the one that
    /// made it earn the disk (its estimate reached the threshold now).
    pub fn record(&self, key: &str) -> bool {
        let Some(state) = &self.state else {
            return false;
        };
        let mut s = state.lock();
        s.since_halving += 1;
        if s.since_halving >= self.window {
            s.counts.halve();
            s.since_halving = 0;
        }
        s.counts.update(key);
        // An update adds one to every row, so the estimate (their minimum) grew by exactly one.
        s.counts.estimate(key) == self.min_requests
    }

    /// Gives the object `key` the disk at once (a pre-warm fetch asks for it).
    pub fn prefer(&self, key: &str) {
        let Some(state) = &self.state else { return };
        let mut s = state.lock();
        let have = s.counts.estimate(key);
        if have < self.min_requests {
            s.counts.update_with_weight(key, self.min_requests - have);
        }
    }

    /// Whether the object `key` has earned the disk.
    pub fn admits(&self, key: &str) -> bool {
        self.state
            .as_ref()
            .is_none_or(|s| s.lock().counts.estimate(key) >= self.min_requests)
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn an_object_earns_the_disk_with_its_requests() {
        let a = Admission::new(2, 1000);
        assert!(!a.admits("k1"), "never asked for");
        assert!(!a.record("k1"));
        assert!(!a.admits("k1"), "once is not enough");
        assert!(a.record("k1"), "the second request earns it");
        assert!(a.admits("k1"));
        assert!(!a.record("k1"), "earned once, not again");
        assert!(!a.admits("k2"), "another object has its own count");
        // A threshold of 1 admits everything, as foyer would by itself, and counts nothing.
        let all = Admission::new(1, 1000);
        assert!(all.admits("anything"));
        assert!(!all.record("anything"), "no request earns what every object has");
    }

    #[test]
    fn a_preferred_object_has_the_disk_at_once() {
        let a = Admission::new(16, 1000);
        a.prefer("prewarmed");
        assert!(a.admits("prewarmed"));
        assert!(!a.admits("other"));
    }

    #[test]
    fn popularity_fades_with_the_window() {
        let a = Admission::new(3, 100);
        for _ in 0..4 {
            a.record("was-hot");
        }
        assert!(a.admits("was-hot"));
        // Two windows of other requests halve its count twice: 4 -> 2 -> 1.
        for i in 0..200 {
            a.record(&format!("other-{i}"));
        }
        assert!(!a.admits("was-hot"), "old popularity must not hold the disk");
        // Steady popularity keeps its place across halvings.
        let b = Admission::new(3, 100);
        for i in 0..1000 {
            b.record("steady");
            for j in 0..9 {
                b.record(&format!("cold-{i}-{j}"));
            }
        }
        assert!(b.admits("steady"));
        assert!(!b.admits("cold-999-8"));
    }
}
