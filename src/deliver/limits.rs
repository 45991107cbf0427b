//! Per-destination limits that live across dispatch passes: a send rate (`rate_per_second`) and
//! a circuit breaker. Both are in memory: after a restart a destination starts closed, unpaced
//! history forgotten, which at worst sends one probe early.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Spaces sends evenly at `per_second`, across all of a destination's concurrent senders.
pub struct Pace {
    interval: Duration,
    next: Mutex<Instant>,
}

impl Pace {
    pub fn new(per_second: f64) -> Pace {
        Pace {
            interval: Duration::from_secs_f64(1.0 / per_second.max(0.001)),
            next: Mutex::new(Instant::now()),
        }
    }

    /// Blocks until this send's slot.
    pub fn wait(&self) {
        let at = match self.next.lock() {
            Ok(mut next) => {
                let at = (*next).max(Instant::now());
                *next = at + self.interval;
                at
            }
            Err(_) => return,
        };
        let now = Instant::now();
        if at > now {
            std::thread::sleep(at - now);
        }
    }
}

/// Opens after a pass in which the destination failed with an error that may pass (down,
/// refusing for now): no pass tries it until the cool-down is over (1 s, doubling per failed
/// pass, at most `MAX`); then one pass probes it (half-open) and a success closes it.
#[derive(Debug, Default)]
pub struct Breaker {
    failed_passes: u32,
    open_until: Option<Instant>,
}

impl Breaker {
    pub const MAX: Duration = Duration::from_secs(60);

    /// Whether a pass may try the destination now.
    pub fn allows(&self, now: Instant) -> bool {
        self.open_until.is_none_or(|t| now >= t)
    }

    pub fn failed(&mut self, now: Instant) {
        let wait = Duration::from_secs(1u64 << self.failed_passes.min(6)).min(Self::MAX);
        self.failed_passes = self.failed_passes.saturating_add(1);
        self.open_until = Some(now + wait);
    }

    pub fn succeeded(&mut self) {
        self.failed_passes = 0;
        self.open_until = None;
    }

    pub fn is_open(&self) -> bool {
        self.open_until.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breaker_backs_off_and_closes_on_success() {
        let t = Instant::now();
        let mut b = Breaker::default();
        assert!(b.allows(t));
        b.failed(t);
        assert!(!b.allows(t + Duration::from_millis(999)));
        assert!(b.allows(t + Duration::from_secs(1)));
        b.failed(t);
        assert!(!b.allows(t + Duration::from_millis(1999)));
        for _ in 0..20 {
            b.failed(t);
        }
        assert!(b.allows(t + Breaker::MAX));
        b.succeeded();
        assert!(b.allows(t) && !b.is_open());
    }

    #[test]
    fn pace_spaces_sends() {
        let p = Pace::new(200.0);
        let t = Instant::now();
        for _ in 0..21 {
            p.wait();
        }
        assert!(
            t.elapsed() >= Duration::from_millis(95),
            "{:?}",
            t.elapsed()
        );
    }
}
