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
    /// Whether `min_requests` is per MiB of body, so that a large object needs more requests
    /// than a small one (popularity per byte, as GDSF ranks objects).
    by_size: bool,
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
    /// With `by_size`, the threshold is `min_requests` per MiB of body (at least one request).
    pub fn with_size(min_requests: u32, by_size: bool, window: u64) -> Self {
        let window = window.max(16);
        // About as many counters per row as requests in a window: collisions stay rare
        // among the objects that matter.
        let buckets = (window.next_power_of_two() as u32).clamp(1024, 1 << 20);
        Self {
            min_requests,
            by_size,
            window,
            state: (min_requests > 1).then(|| {
                Mutex::new(Sketch {
                    counts: CountMinSketch::new(4, buckets),
                    since_halving: 0,
                })
            }),
        }
    }

    /// Whether objects are chosen at all (a threshold above one request).
    pub fn is_selective(&self) -> bool {
        self.state.is_some()
    }

    /// The requests an object of `bytes` (unknown: `None`) needs.
    pub fn threshold(&self, bytes: Option<u64>) -> u32 {
        const MIB: u64 = 1 << 20;
        match bytes {
            Some(b) if self.by_size => {
                (u64::from(self.min_requests) * b).div_ceil(MIB).clamp(1, 1 << 20) as u32
            }
            _ => self.min_requests,
        }
    }

    /// Counts one request for the object `key`; returns its estimate now (0 when every
    /// object is admitted and nothing is counted).
    pub fn record(&self, key: &str) -> u32 {
        let Some(state) = &self.state else {
            return 0;
        };
        let mut s = state.lock();
        s.since_halving += 1;
        if s.since_halving >= self.window {
            s.counts.halve();
            s.since_halving = 0;
        }
        s.counts.update(key);
        s.counts.estimate(key)
    }

    /// Whether a request that brought `key`'s estimate to `count` is the one that earned an
    /// object of `bytes` the disk. An update adds one to every row, so the estimate (their
    /// minimum) grows by exactly one per request and crosses the threshold once.
    pub fn earned_now(&self, count: u32, bytes: u64) -> bool {
        self.is_selective() && count == self.threshold(Some(bytes))
    }

    /// Gives the object `key` the disk at once (a pre-warm fetch asks for it, whatever its
    /// size).
    pub fn prefer(&self, key: &str) {
        let Some(state) = &self.state else { return };
        let mut s = state.lock();
        let have = s.counts.estimate(key);
        let want = if self.by_size { 1 << 20 } else { self.min_requests };
        if have < want {
            s.counts.update_with_weight(key, want - have);
        }
    }

    /// Whether the object `key`, of `bytes` when known, has earned the disk.
    pub fn admits(&self, key: &str, bytes: Option<u64>) -> bool {
        self.state
            .as_ref()
            .is_none_or(|s| s.lock().counts.estimate(key) >= self.threshold(bytes))
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn an_object_earns_the_disk_with_its_requests() {
        let a = Admission::with_size(2, false, 1000);
        let earned = |count| a.earned_now(count, 1000);
        assert!(!a.admits("k1", None), "never asked for");
        assert!(!earned(a.record("k1")));
        assert!(!a.admits("k1", None), "once is not enough");
        assert!(earned(a.record("k1")), "the second request earns it");
        assert!(a.admits("k1", None));
        assert!(!earned(a.record("k1")), "earned once, not again");
        assert!(!a.admits("k2", None), "another object has its own count");
        // A threshold of 1 admits everything, as foyer would by itself, and counts nothing.
        let all = Admission::with_size(1, false, 1000);
        assert!(all.admits("anything", None));
        assert!(
            !all.earned_now(all.record("anything"), 1000),
            "no request earns what every object has"
        );
    }

    #[test]
    fn a_preferred_object_has_the_disk_at_once() {
        let a = Admission::with_size(16, false, 1000);
        a.prefer("prewarmed");
        assert!(a.admits("prewarmed", None));
        assert!(!a.admits("other", None));
        let sized = Admission::with_size(4, true, 1000);
        sized.prefer("big");
        assert!(
            sized.admits("big", Some(1 << 30)),
            "pre-warmed, whatever its size"
        );
    }

    #[test]
    fn by_size_a_large_object_needs_more_requests() {
        const MIB: u64 = 1 << 20;
        let a = Admission::with_size(4, true, 10_000);
        assert_eq!(
            a.threshold(Some(200_000)),
            1,
            "a 200 KB segment: its first request"
        );
        assert_eq!(a.threshold(Some(MIB)), 4);
        assert_eq!(a.threshold(Some(2 * MIB + MIB / 2)), 10);
        assert_eq!(a.threshold(None), 4, "size unknown: the plain threshold");
        assert_eq!(a.threshold(Some(0)), 1);
        let mut count = 0;
        for _ in 0..9 {
            count = a.record("big");
            assert!(!a.earned_now(count, 2 * MIB + MIB / 2));
        }
        assert!(!a.admits("big", Some(2 * MIB + MIB / 2)));
        assert!(a.admits("big", Some(MIB)), "9 requests are enough for 1 MiB");
        assert!(
            a.earned_now(a.record("big"), 2 * MIB + MIB / 2),
            "the tenth earns 2.5 MiB"
        );
        assert_eq!(count, 9);
    }

    #[test]
    fn popularity_fades_with_the_window() {
        let a = Admission::with_size(3, false, 100);
        for _ in 0..4 {
            a.record("was-hot");
        }
        assert!(a.admits("was-hot", None));
        // Two windows of other requests halve its count twice: 4 -> 2 -> 1.
        for i in 0..200 {
            a.record(&format!("other-{i}"));
        }
        assert!(
            !a.admits("was-hot", None),
            "old popularity must not hold the disk"
        );
        // Steady popularity keeps its place across halvings.
        let b = Admission::with_size(3, false, 100);
        for i in 0..1000 {
            b.record("steady");
            for j in 0..9 {
                b.record(&format!("cold-{i}-{j}"));
            }
        }
        assert!(b.admits("steady", None));
        assert!(!b.admits("cold-999-8", None));
    }
}
