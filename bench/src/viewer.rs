//! One synthetic viewer's playback as a plain state machine over a clock it is given: the
//! buffer fills as segments arrive and drains while playing; an empty buffer stalls playback;
//! the QoE figures (startup time, rebuffering, average bitrate, switches) fall out of it. The
//! network shell (`loadgen`) feeds it real downloads; tests feed it simulated ones.

use crate::abr::{self, ThroughputEstimate};

/// How a viewer plays.
#[derive(Debug, Clone)]
pub struct ViewerSettings {
    /// Rendition bitrates, bit/s, ascending.
    pub ladder: Vec<u64>,
    /// Segment duration, seconds.
    pub segment_s: f64,
    /// Seconds of buffer before playback starts (and resumes after a stall).
    pub startup_buffer_s: f64,
    /// The buffer the viewer fills up to before pausing downloads.
    pub target_buffer_s: f64,
}

/// QoE of one session (definitions as players and CTA/WAVE use them).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Qoe {
    /// From the first request to the first frame, seconds; `None` if playback never started.
    pub startup_s: Option<f64>,
    /// Seconds spent stalled after playback started.
    pub stalled_s: f64,
    /// Stalls after playback started.
    pub stalls: u32,
    /// Seconds of content played.
    pub played_s: f64,
    /// Played-time-weighted bitrate, bit/s.
    pub average_bitrate_bps: f64,
    /// Rendition changes between consecutive segments.
    pub switches: u32,
}

impl Qoe {
    /// Stalled time over stalled plus played time.
    pub fn rebuffering_ratio(&self) -> f64 {
        let total = self.stalled_s + self.played_s;
        if total > 0.0 { self.stalled_s / total } else { 0.0 }
    }
}

/// A viewer's state.
#[derive(Debug, Clone)]
pub struct Viewer {
    settings: ViewerSettings,
    estimate: ThroughputEstimate,
    /// Seconds of media buffered, each with the bitrate it was fetched at.
    buffer: std::collections::VecDeque<(f64, u64)>,
    playing: bool,
    started_at: f64,
    now: f64,
    current: Option<usize>,
    qoe: Qoe,
    bitrate_seconds: f64,
}

impl Viewer {
    /// A viewer that makes its first request at `now`.
    pub fn new(settings: ViewerSettings, now: f64) -> Self {
        Self {
            settings,
            estimate: ThroughputEstimate::default(),
            buffer: Default::default(),
            playing: false,
            started_at: now,
            now,
            current: None,
            qoe: Qoe::default(),
            bitrate_seconds: 0.0,
        }
    }

    /// Seconds of media in the buffer.
    pub fn buffer_s(&self) -> f64 {
        self.buffer.iter().map(|(s, _)| s).sum()
    }

    /// The rendition to fetch next, or `None` while the buffer is full.
    pub fn next_rendition(&self) -> Option<usize> {
        if self.buffer_s() + self.settings.segment_s > self.settings.target_buffer_s {
            return None;
        }
        let current = self.current.unwrap_or(0);
        Some(abr::choose(
            &self.settings.ladder,
            self.estimate.bps(),
            self.buffer_s(),
            current,
        ))
    }

    /// Plays (or stalls) until `now`.
    pub fn advance(&mut self, now: f64) {
        let mut dt = (now - self.now).max(0.0);
        self.now = now;
        if !self.playing {
            // Before the first frame this is startup time; after it, a stall.
            if self.qoe.startup_s.is_some() {
                self.qoe.stalled_s += dt;
            }
            return;
        }
        while dt > 0.0 {
            let Some((seconds, bitrate)) = self.buffer.front_mut() else {
                // Ran dry: a stall until enough is buffered again.
                self.playing = false;
                self.qoe.stalls += 1;
                self.qoe.stalled_s += dt;
                return;
            };
            let step = dt.min(*seconds);
            *seconds -= step;
            dt -= step;
            self.qoe.played_s += step;
            self.bitrate_seconds += step * *bitrate as f64;
            if *seconds <= 1e-9 {
                self.buffer.pop_front();
            }
        }
    }

    /// A segment of rendition `index` arrived at `now`: `bytes` that took `download_s`.
    pub fn segment_arrived(&mut self, now: f64, index: usize, bytes: u64, download_s: f64) {
        self.advance(now);
        self.estimate.record(bytes, download_s);
        if self.current.is_some_and(|c| c != index) {
            self.qoe.switches += 1;
        }
        self.current = Some(index);
        self.buffer
            .push_back((self.settings.segment_s, self.settings.ladder[index]));
        if !self.playing && self.buffer_s() >= self.settings.startup_buffer_s {
            self.playing = true;
            if self.qoe.startup_s.is_none() {
                self.qoe.startup_s = Some(now - self.started_at);
            }
        }
    }

    /// The figures so far, at `now`.
    pub fn qoe(&mut self, now: f64) -> Qoe {
        self.advance(now);
        let mut q = self.qoe.clone();
        q.average_bitrate_bps = if q.played_s > 0.0 {
            self.bitrate_seconds / q.played_s
        } else {
            0.0
        };
        q
    }

    /// The throughput the viewer estimates, bit/s (what it reports to a steering server).
    pub fn throughput_bps(&self) -> Option<f64> {
        self.estimate.bps()
    }

    /// The rendition last fetched.
    pub fn current(&self) -> Option<usize> {
        self.current
    }
}

/// A bandwidth trace: (start second, kbit/s) steps, as in trace files of `time kbps` lines.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace(pub Vec<(f64, f64)>);

impl Trace {
    /// Parses `time_s kbps` lines (blank lines and `#` comments ignored); times must rise and
    /// rates be positive. Errors name the line.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut steps: Vec<(f64, f64)> = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let bad = |why: &str| format!("trace line {}: {why}: `{line}`", n + 1);
            let mut fields = line.split_whitespace();
            let (Some(t), Some(k), None) = (fields.next(), fields.next(), fields.next()) else {
                return Err(bad("expected two numbers, time in seconds and kbit/s"));
            };
            let t: f64 = t.parse().map_err(|_| bad("time is not a number"))?;
            let k: f64 = k.parse().map_err(|_| bad("rate is not a number"))?;
            if !(t.is_finite() && t >= 0.0) || steps.last().is_some_and(|(prev, _)| t <= *prev) {
                return Err(bad("times must start at 0 or later and rise"));
            }
            if !(k.is_finite() && k > 0.0) {
                return Err(bad("rate must be above 0"));
            }
            steps.push((t, k));
        }
        if steps.is_empty() {
            return Err("trace has no lines".into());
        }
        Ok(Self(steps))
    }

    /// The rate at second `t`, bit/s.
    pub fn bps_at(&self, t: f64) -> f64 {
        let k = self
            .0
            .iter()
            .take_while(|(start, _)| *start <= t)
            .last()
            .unwrap_or(&self.0[0])
            .1;
        k * 1000.0
    }

    /// Seconds it takes to receive `bytes` starting at second `t`.
    pub fn download_time(&self, t: f64, bytes: u64) -> f64 {
        let mut left = bytes as f64 * 8.0;
        let mut now = t;
        loop {
            let rate = self.bps_at(now);
            let next_change = self.0.iter().map(|(s, _)| *s).find(|s| *s > now);
            match next_change {
                Some(change) if left > rate * (change - now) => {
                    left -= rate * (change - now);
                    now = change;
                }
                _ => return now - t + left / rate,
            }
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    fn settings() -> ViewerSettings {
        ViewerSettings {
            ladder: vec![800_000, 2_500_000, 5_000_000, 8_000_000],
            segment_s: 2.0,
            startup_buffer_s: 2.0,
            target_buffer_s: 20.0,
        }
    }

    /// Plays `seconds` of wall time on `trace` with simulated downloads; returns the QoE and
    /// each segment's (start time, rendition).
    fn simulate(trace: &Trace, seconds: f64) -> (Qoe, Vec<(f64, usize)>) {
        let s = settings();
        let mut viewer = Viewer::new(s.clone(), 0.0);
        let mut now = 0.0;
        let mut fetched = Vec::new();
        while now < seconds {
            match viewer.next_rendition() {
                Some(index) => {
                    let bytes = (s.ladder[index] as f64 * s.segment_s / 8.0) as u64;
                    let took = trace.download_time(now, bytes);
                    fetched.push((now, index));
                    now += took;
                    viewer.segment_arrived(now, index, bytes, took);
                }
                None => {
                    now += 0.1;
                    viewer.advance(now);
                }
            }
        }
        (viewer.qoe(now), fetched)
    }

    #[test]
    fn ample_bandwidth_reaches_the_top_rendition_and_stays() {
        let trace = Trace::parse("0 50000\n").unwrap();
        let (qoe, fetched) = simulate(&trace, 120.0);
        let first_top = fetched
            .iter()
            .position(|(_, i)| *i == 3)
            .expect("reached the top");
        assert!(
            fetched[first_top..].iter().all(|(_, i)| *i == 3),
            "stayed: {fetched:?}"
        );
        assert_eq!(qoe.stalls, 0);
        assert!(qoe.startup_s.unwrap() < 1.0, "{qoe:?}");
        assert_eq!(qoe.switches, 3, "0→1→2→3: {fetched:?}");
    }

    #[test]
    fn a_drop_from_10_to_1_mbit_switches_down_before_any_stall() {
        let trace = Trace::parse("# seconds kbit/s\n0 10000\n60 1000\n").unwrap();
        let (qoe, fetched) = simulate(&trace, 180.0);
        let before: Vec<usize> = fetched
            .iter()
            .filter(|(t, _)| *t < 60.0)
            .map(|(_, i)| *i)
            .collect();
        assert_eq!(
            *before.last().unwrap(),
            3,
            "on 10 Mbit/s it plays 8 Mbit/s: {fetched:?}"
        );
        let after: Vec<usize> = fetched
            .iter()
            .filter(|(t, _)| *t > 75.0)
            .map(|(_, i)| *i)
            .collect();
        assert!(
            after.iter().all(|i| *i == 0),
            "on 1 Mbit/s only the 0.8 Mbit/s rendition fits: {fetched:?}"
        );
        // The buffer built at 10 Mbit/s carries the viewer through the drop.
        assert_eq!(qoe.stalls, 0, "{qoe:?} {fetched:?}");
        assert!(qoe.average_bitrate_bps > 800_000.0 && qoe.average_bitrate_bps < 8_000_000.0);
        assert!(qoe.rebuffering_ratio() == 0.0);
    }

    #[test]
    fn too_little_bandwidth_for_any_rendition_stalls_and_says_so() {
        // 0.5 Mbit/s for a 0.8 Mbit/s rendition: each 2 s segment takes 3.2 s to arrive, so
        // about 1.2 s of every 3.2 s is spent stalled once playing.
        let trace = Trace::parse("0 500\n").unwrap();
        let (qoe, _) = simulate(&trace, 120.0);
        assert!(qoe.stalls > 10, "{qoe:?}");
        let ratio = qoe.rebuffering_ratio();
        assert!(
            (0.3..0.45).contains(&ratio),
            "expected about 1.2/3.2: {ratio} {qoe:?}"
        );
    }

    #[test]
    fn bad_trace_lines_are_named() {
        assert!(Trace::parse("").unwrap_err().contains("no lines"));
        assert!(Trace::parse("0 100\nx 200\n").unwrap_err().contains("line 2"));
        assert!(Trace::parse("5 100\n2 200\n").unwrap_err().contains("rise"));
        assert!(Trace::parse("0 0\n").unwrap_err().contains("above 0"));
        assert!(Trace::parse("0 1 2\n").unwrap_err().contains("two numbers"));
    }

    #[test]
    fn downloads_cross_rate_changes() {
        let trace = Trace::parse("0 8000\n1 800\n").unwrap();
        // 1.5 MB: 1 s at 8 Mbit/s moves 1 MB, the other 0.5 MB at 0.8 Mbit/s takes 5 s.
        assert!((trace.download_time(0.0, 1_500_000) - 6.0).abs() < 1e-9);
    }
}
