//! The health of one upstream node (a parent or an origin) as a plain state machine: probes
//! and real requests report outcomes, the node goes down after enough consecutive failures
//! and comes back after enough consecutive successful probes, or, for a node nobody probes,
//! after a rest when one trial request succeeds. Time is passed in, so tests drive a clock.

use std::time::{Duration, Instant};

/// Thresholds, from the `[health]` config section.
#[derive(Debug, Clone, Copy)]
pub struct HealthPolicy {
    /// Consecutive failures that mark a node down.
    pub fail_after: u32,
    /// Consecutive successful probes that mark a down node up.
    pub rise_after: u32,
    /// For a node that is not probed: how long it rests, once down, before a trial request.
    pub retry_down_after: Duration,
}

/// Where an outcome was observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// An active probe.
    Probe,
    /// A real request.
    Traffic,
}

/// A change of state, for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// The node was marked down.
    Down,
    /// The node was marked up.
    Up,
}

/// One node's health.
#[derive(Debug, Clone)]
pub struct Health {
    up: bool,
    /// Whether probes decide when a down node comes back.
    probed: bool,
    failures: u32,
    successes: u32,
    /// When the node was last marked down, or last given a trial request.
    rested_since: Option<Instant>,
}

impl Health {
    /// A node starts up: a new edge should not refuse its parents before it has tried them.
    pub fn new(probed: bool) -> Self {
        Self {
            up: true,
            probed,
            failures: 0,
            successes: 0,
            rested_since: None,
        }
    }

    /// Whether the node is marked up.
    pub fn is_up(&self) -> bool {
        self.up
    }

    /// Whether a request may go to this node now. A down node that nobody probes gets one trial
    /// request per `retry_down_after`; taking it restarts the rest, so a flood of requests sends
    /// one, not all, to a node that may still be dead.
    pub fn admit(&mut self, now: Instant, policy: &HealthPolicy) -> bool {
        if self.up {
            return true;
        }
        if self.probed {
            return false;
        }
        match self.rested_since {
            Some(since) if now.duration_since(since) < policy.retry_down_after => false,
            _ => {
                self.rested_since = Some(now);
                true
            }
        }
    }

    /// Records an outcome; returns the transition it caused, if any.
    pub fn observe(
        &mut self,
        ok: bool,
        source: Source,
        now: Instant,
        policy: &HealthPolicy,
    ) -> Option<Transition> {
        if ok {
            self.failures = 0;
            if self.up {
                return None;
            }
            // A probed node comes back on probes alone: one lucky request through a half-dead
            // node must not undo what the probes see.
            if self.probed && source == Source::Traffic {
                return None;
            }
            self.successes += 1;
            let needed = if self.probed { policy.rise_after } else { 1 };
            if self.successes >= needed {
                self.up = true;
                self.successes = 0;
                self.rested_since = None;
                return Some(Transition::Up);
            }
            None
        } else {
            self.successes = 0;
            if !self.up {
                self.rested_since = Some(now);
                return None;
            }
            self.failures += 1;
            if self.failures >= policy.fail_after {
                self.up = false;
                self.failures = 0;
                self.rested_since = Some(now);
                return Some(Transition::Down);
            }
            None
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    const POLICY: HealthPolicy = HealthPolicy {
        fail_after: 3,
        rise_after: 2,
        retry_down_after: Duration::from_secs(10),
    };

    #[test]
    fn consecutive_failures_mark_down_and_a_success_resets_the_count() {
        let t = Instant::now();
        let mut h = Health::new(true);
        assert_eq!(h.observe(false, Source::Traffic, t, &POLICY), None);
        assert_eq!(h.observe(false, Source::Traffic, t, &POLICY), None);
        assert_eq!(h.observe(true, Source::Traffic, t, &POLICY), None);
        assert_eq!(h.observe(false, Source::Probe, t, &POLICY), None);
        assert_eq!(h.observe(false, Source::Probe, t, &POLICY), None);
        assert!(h.is_up());
        assert_eq!(
            h.observe(false, Source::Traffic, t, &POLICY),
            Some(Transition::Down)
        );
        assert!(!h.is_up());
    }

    #[test]
    fn a_probed_node_comes_back_on_probes_only() {
        let t = Instant::now();
        let mut h = Health::new(true);
        for _ in 0..3 {
            h.observe(false, Source::Probe, t, &POLICY);
        }
        assert!(!h.admit(t + Duration::from_secs(3600), &POLICY));
        assert_eq!(h.observe(true, Source::Traffic, t, &POLICY), None);
        assert_eq!(h.observe(true, Source::Probe, t, &POLICY), None);
        assert_eq!(h.observe(false, Source::Probe, t, &POLICY), None);
        assert_eq!(h.observe(true, Source::Probe, t, &POLICY), None);
        assert_eq!(h.observe(true, Source::Probe, t, &POLICY), Some(Transition::Up));
        assert!(h.admit(t, &POLICY));
    }

    #[test]
    fn an_unprobed_node_gets_one_trial_per_rest() {
        let t0 = Instant::now();
        let mut h = Health::new(false);
        for _ in 0..3 {
            h.observe(false, Source::Traffic, t0, &POLICY);
        }
        assert!(!h.admit(t0 + Duration::from_secs(9), &POLICY));
        let t1 = t0 + Duration::from_secs(10);
        assert!(h.admit(t1, &POLICY), "the rest is over: one trial");
        assert!(!h.admit(t1, &POLICY), "and only one");
        // The trial fails: another full rest.
        h.observe(false, Source::Traffic, t1, &POLICY);
        assert!(!h.admit(t1 + Duration::from_secs(9), &POLICY));
        let t2 = t1 + Duration::from_secs(10);
        assert!(h.admit(t2, &POLICY));
        assert_eq!(
            h.observe(true, Source::Traffic, t2, &POLICY),
            Some(Transition::Up)
        );
        assert!(h.admit(t2, &POLICY));
    }
}
