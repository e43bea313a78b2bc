//! Rendition choice for synthetic viewers: a throughput rule with a buffer guard, the shape of
//! dash.js's default (its DYNAMIC strategy starts on throughput and leans on the buffer once
//! it is full). Chosen because it is what most web players in the field run, so load that
//! looks like theirs; BOLA alone starts too timidly for startup-time figures.
//!
//! - Throughput is estimated as the lower of a fast and a slow exponentially weighted average
//!   of segment download rates, weighted by download time (a drop shows at once in the fast
//!   one; a spike must last to lift the slow one).
//! - Down: at once, to the highest rendition under 90% of the estimate.
//! - Up: one step at a time, and only with enough buffer to absorb a wrong guess.

/// Half-lives of the two averages, seconds of download time.
const FAST_HALF_LIFE: f64 = 3.0;
const SLOW_HALF_LIFE: f64 = 8.0;
/// Share of the estimate a rendition may use.
const SAFETY: f64 = 0.9;
/// Buffer needed before switching up, seconds.
const UP_SWITCH_BUFFER: f64 = 8.0;

/// The two averages of the download rate.
#[derive(Debug, Clone, Default)]
pub struct ThroughputEstimate {
    fast: Option<f64>,
    slow: Option<f64>,
}

impl ThroughputEstimate {
    /// Records one download of `bytes` that took `seconds`.
    pub fn record(&mut self, bytes: u64, seconds: f64) {
        let seconds = seconds.max(1e-3);
        let rate = bytes as f64 * 8.0 / seconds;
        let blend = |avg: &mut Option<f64>, half_life: f64| {
            let keep = 0.5f64.powf(seconds / half_life);
            *avg = Some(match *avg {
                Some(a) => a * keep + rate * (1.0 - keep),
                None => rate,
            });
        };
        blend(&mut self.fast, FAST_HALF_LIFE);
        blend(&mut self.slow, SLOW_HALF_LIFE);
    }

    /// Bits per second, once a download was recorded.
    pub fn bps(&self) -> Option<f64> {
        Some(self.fast?.min(self.slow?))
    }
}

/// The rendition to fetch next: an index into `ladder` (bitrates in bit/s, ascending), given
/// the estimate, the buffer level in seconds and the current index. With no estimate yet, the
/// lowest rendition (fast startup).
pub fn choose(ladder: &[u64], estimate_bps: Option<f64>, buffer_s: f64, current: usize) -> usize {
    let Some(estimate) = estimate_bps else {
        return 0;
    };
    let fits = ladder
        .iter()
        .rposition(|&b| b as f64 <= estimate * SAFETY)
        .unwrap_or(0);
    if fits <= current {
        fits
    } else if buffer_s >= UP_SWITCH_BUFFER {
        current + 1
    } else {
        current
    }
}

#[cfg(test)]
mod test {
    use super::*;

    const LADDER: [u64; 4] = [800_000, 2_500_000, 5_000_000, 8_000_000];

    #[test]
    fn the_estimate_falls_fast_and_rises_slowly() {
        let mut e = ThroughputEstimate::default();
        assert_eq!(e.bps(), None);
        for _ in 0..10 {
            e.record(1_250_000, 1.0); // 10 Mbit/s
        }
        assert!((e.bps().unwrap() - 10e6).abs() < 1.0);
        e.record(125_000, 1.0); // one second at 1 Mbit/s
        let after_drop = e.bps().unwrap();
        assert!(after_drop < 9e6, "a drop shows at once: {after_drop}");
        let mut spiky = ThroughputEstimate::default();
        for _ in 0..10 {
            spiky.record(125_000, 1.0);
        }
        spiky.record(12_500_000, 1.0); // one second at 100 Mbit/s
        assert!(
            spiky.bps().unwrap() < 10e6,
            "a spike is discounted: {:?}",
            spiky.bps()
        );
    }

    #[test]
    fn down_at_once_up_one_step_with_buffer() {
        assert_eq!(choose(&LADDER, None, 0.0, 3), 0, "no estimate: start low");
        assert_eq!(
            choose(&LADDER, Some(3e6), 20.0, 3),
            1,
            "down at once to what fits"
        );
        assert_eq!(choose(&LADDER, Some(50e6), 20.0, 0), 1, "up one step");
        assert_eq!(
            choose(&LADDER, Some(50e6), 4.0, 0),
            0,
            "no up-switch on a thin buffer"
        );
        assert_eq!(
            choose(&LADDER, Some(0.5e6), 20.0, 2),
            0,
            "nothing fits: the lowest"
        );
        assert_eq!(choose(&LADDER, Some(50e6), 30.0, 3), 3, "stays at the top");
    }
}
