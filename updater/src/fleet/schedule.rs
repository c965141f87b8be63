//! When the daemon looks at the index. A fleet that powers up together (after an outage, a factory
//! flash) must not poll together. Every poll comes `interval` after the previous one, give or take
//! half the jitter, so devices never fall into step; the first one comes where it would in a fleet
//! that had been polling forever (the renewal process's equilibrium: a length-biased interval,
//! entered at a uniform point), so polls are spread evenly from the first second on.
use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub interval: Duration,
    /// At most `interval`.
    pub jitter: Duration,
}

impl Schedule {
    pub fn first_delay(&self, rng: &mut fastrand::Rng) -> Duration {
        let shortest = (self.interval - self.jitter / 2).as_secs_f64();
        let longest = (self.interval + self.jitter / 2).as_secs_f64();
        // Longer intervals are more likely to contain a given moment: density ∝ length.
        let length =
            (shortest * shortest + rng.f64() * (longest * longest - shortest * shortest)).sqrt();
        Duration::from_secs_f64(rng.f64() * length)
    }

    pub fn next_delay(&self, rng: &mut fastrand::Rng) -> Duration {
        self.interval - self.jitter / 2 + uniform(rng, self.jitter)
    }
}

fn uniform(rng: &mut fastrand::Rng, upto: Duration) -> Duration {
    let millis = upto.as_millis() as u64;
    Duration::from_millis(if millis == 0 { 0 } else { rng.u64(0..millis) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_stay_within_the_window() {
        let schedule = Schedule {
            interval: Duration::from_secs(600),
            jitter: Duration::from_secs(120),
        };
        let mut rng = fastrand::Rng::with_seed(1);
        for _ in 0..1000 {
            assert!(schedule.first_delay(&mut rng) < Duration::from_secs(660));
            let next = schedule.next_delay(&mut rng);
            assert!((Duration::from_secs(540)..Duration::from_secs(660)).contains(&next));
        }
        let none = Schedule {
            interval: Duration::from_secs(60),
            jitter: Duration::ZERO,
        };
        assert!(none.first_delay(&mut rng) < Duration::from_secs(60));
        assert_eq!(none.next_delay(&mut rng), Duration::from_secs(60));
    }
}
